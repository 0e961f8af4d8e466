//! Building OTLP traces for the cases: random ids, spans timed around now, attributes of
//! every kind.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

/// A trace id.
pub type TraceId = [u8; 16];

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A random trace id (never zero).
pub fn trace_id() -> TraceId {
    let mut id = *uuid::Uuid::new_v4().as_bytes();
    id[0] |= 0x10;
    id
}

/// A random span id (never zero).
pub fn span_id() -> Vec<u8> {
    let mut id = uuid::Uuid::new_v4().as_bytes()[..8].to_vec();
    id[0] |= 0x10;
    id
}

/// A typed attribute.
pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
pub fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

/// An integer attribute.
pub fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

/// A span of `trace` named `name`, starting `offset_ms` after `base_ns` and lasting
/// `duration_ms`; server kind, status OK.
pub fn span(
    trace: &TraceId,
    parent: Option<&[u8]>,
    name: &str,
    base_ns: u64,
    offset_ms: u64,
    duration_ms: u64,
) -> Span {
    let start = base_ns + offset_ms * 1_000_000;
    Span {
        trace_id: trace.to_vec(),
        span_id: span_id(),
        parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
        name: name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration_ms * 1_000_000,
        status: Some(Status {
            code: 1,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// A resource with `service.name` and one scope holding `spans`.
pub fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![s("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "conformance".into(),
                version: "1".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An export request of these resource spans.
pub fn request(resource_spans: Vec<ResourceSpans>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest { resource_spans }
}

/// A trace of `n` spans (a root and children) of `service`, starting 10 s ago.
pub fn simple_trace(service: &str, n: usize) -> (TraceId, Vec<ResourceSpans>) {
    let id = trace_id();
    let base = now_ns() - 10_000_000_000;
    let root = span(&id, None, "root", base, 0, 100);
    let root_id = root.span_id.clone();
    let mut spans = vec![root];
    for k in 1..n {
        let mut child = span(
            &id,
            Some(&root_id),
            &format!("child-{k}"),
            base,
            k as u64,
            5,
        );
        child.kind = span::SpanKind::Client as i32;
        child.attributes = vec![s("conformance.case", service), i("child.index", k as i64)];
        spans.push(child);
    }
    (id, vec![resource_spans(service, spans)])
}

/// Attribute values of every `AnyValue` kind, with edge values.
pub fn every_any_value() -> Vec<KeyValue> {
    let array = Value::ArrayValue(ArrayValue {
        values: vec![
            AnyValue {
                value: Some(Value::StringValue("a".into())),
            },
            AnyValue {
                value: Some(Value::IntValue(7)),
            },
            AnyValue {
                value: Some(Value::BoolValue(false)),
            },
        ],
    });
    let kvlist = Value::KvlistValue(KeyValueList {
        values: vec![
            s("inner.string", "x"),
            kv(
                "inner.list",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("deep", Value::DoubleValue(0.5))],
                }),
            ),
        ],
    });
    vec![
        s("t.string", "héllo wörld ✓"),
        s("t.string_empty", ""),
        kv("t.bool_true", Value::BoolValue(true)),
        kv("t.bool_false", Value::BoolValue(false)),
        i("t.int", 42),
        i("t.int_negative", -7),
        i("t.int_max", i64::MAX),
        i("t.int_min", i64::MIN),
        kv("t.double", Value::DoubleValue(3.25)),
        kv("t.double_negative", Value::DoubleValue(-1.0e-9)),
        kv("t.array", array),
        kv(
            "t.array_empty",
            Value::ArrayValue(ArrayValue { values: vec![] }),
        ),
        kv("t.kvlist", kvlist),
        kv("t.bytes", Value::BytesValue(vec![0, 1, 2, 0xfe, 0xff])),
    ]
}

/// All spans of resource spans, in order.
pub fn spans(rs: &[ResourceSpans]) -> impl Iterator<Item = &Span> {
    rs.iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
}

/// Number of spans.
pub fn span_count(rs: &[ResourceSpans]) -> usize {
    spans(rs).count()
}

/// Grow a span by about `bytes` with attributes of 1000 bytes each (under any attribute-value
/// truncation limit, so the span keeps its size through ingest).
pub fn pad(span: &mut Span, bytes: usize) {
    let value = "p".repeat(1000);
    for k in 0..bytes.div_ceil(1015) {
        span.attributes.push(s(&format!("pad.{k}"), &value));
    }
}
