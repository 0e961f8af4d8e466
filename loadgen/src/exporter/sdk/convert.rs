//! OTLP → OpenTelemetry API conversion for the SDK driver: scopes, attributes, events,
//! links, status, and the id generator fed with each span's exact ids.

use std::cell::Cell;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::Span as _;
use opentelemetry::trace::{
    Event, Link, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags,
    TraceId, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope as ProtoScope, any_value,
};
use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, status::StatusCode};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer};
use prost::Message;

use super::ProviderEntry;

thread_local! {
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Ids for the span being started on this thread (random when none was set).
#[derive(Debug, Default)]
pub(super) struct FedIds(RandomIdGenerator);

impl IdGenerator for FedIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .with(Cell::get)
            .map_or_else(|| self.0.new_trace_id(), |(t, _)| t)
    }
    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .with(Cell::get)
            .map_or_else(|| self.0.new_span_id(), |(_, s)| s)
    }
}

pub(super) fn tracer(
    entry: &ProviderEntry,
    scope: Option<&ProtoScope>,
    schema_url: &str,
) -> SdkTracer {
    let mut key = scope.map(Message::encode_to_vec).unwrap_or_default();
    key.extend_from_slice(schema_url.as_bytes());
    let mut tracers = entry.tracers.lock();
    if let Some(t) = tracers.get(&key) {
        return t.clone();
    }
    let name = scope.map(|s| s.name.clone()).unwrap_or_default();
    let mut b = InstrumentationScope::builder(name);
    if let Some(s) = scope {
        if !s.version.is_empty() {
            b = b.with_version(s.version.clone());
        }
        b = b.with_attributes(s.attributes.iter().map(key_value));
    }
    if !schema_url.is_empty() {
        b = b.with_schema_url(schema_url.to_owned());
    }
    let t = entry.provider.tracer_with_scope(b.build());
    tracers.insert(key, t.clone());
    t
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn trace_id(b: &[u8]) -> TraceId {
    <[u8; 16]>::try_from(b).map_or(TraceId::INVALID, TraceId::from_bytes)
}

fn span_id(b: &[u8]) -> SpanId {
    <[u8; 8]>::try_from(b).map_or(SpanId::INVALID, SpanId::from_bytes)
}

fn kind(k: i32) -> SpanKind {
    match k {
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

pub(super) fn emit_span(tracer: &SdkTracer, s: &ProtoSpan) {
    let tid = trace_id(&s.trace_id);
    let sid = span_id(&s.span_id);
    let state = TraceState::from_str(&s.trace_state).unwrap_or_default();
    let parent = span_id(&s.parent_span_id);
    let cx = if parent == SpanId::INVALID {
        Context::new()
    } else {
        // A local (not remote) sampled parent with the span's trace id.
        Context::new().with_remote_span_context(SpanContext::new(
            tid,
            parent,
            TraceFlags::SAMPLED,
            false,
            state,
        ))
    };
    let events = s
        .events
        .iter()
        .map(|e| {
            Event::new(
                e.name.clone(),
                time(e.time_unix_nano),
                e.attributes.iter().map(key_value).collect(),
                e.dropped_attributes_count,
            )
        })
        .collect();
    let links = s
        .links
        .iter()
        .map(|l| {
            let sc = SpanContext::new(
                trace_id(&l.trace_id),
                span_id(&l.span_id),
                TraceFlags::new((l.flags & 0xff) as u8),
                false,
                TraceState::from_str(&l.trace_state).unwrap_or_default(),
            );
            Link::new(
                sc,
                l.attributes.iter().map(key_value).collect(),
                l.dropped_attributes_count,
            )
        })
        .collect();
    let builder = SpanBuilder::from_name(s.name.clone())
        .with_kind(kind(s.kind))
        .with_start_time(time(s.start_time_unix_nano))
        .with_attributes(s.attributes.iter().map(key_value).collect::<Vec<_>>())
        .with_events(events)
        .with_links(links);
    NEXT_IDS.with(|c| c.set(Some((tid, sid))));
    let mut span = tracer.build_with_context(builder, &cx);
    NEXT_IDS.with(|c| c.set(None));
    if let Some(st) = &s.status {
        if st.code == StatusCode::Ok as i32 {
            span.set_status(Status::Ok);
        } else if st.code == StatusCode::Error as i32 {
            span.set_status(Status::error(st.message.clone()));
        }
    }
    span.end_with_timestamp(time(s.end_time_unix_nano));
}

pub(super) fn key_value(kv: &opentelemetry_proto::tonic::common::v1::KeyValue) -> KeyValue {
    KeyValue::new(
        kv.key.clone(),
        kv.value.as_ref().map_or_else(|| Value::from(""), value),
    )
}

/// An OTLP value as an OTel API value. Bytes, maps and mixed arrays have no API
/// equivalent and become strings (a fidelity loss the read-back verifier must allow).
pub fn value(v: &AnyValue) -> Value {
    use any_value::Value as V;
    match &v.value {
        Some(V::StringValue(s)) => Value::from(s.clone()),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::I64(*i),
        Some(V::DoubleValue(d)) => Value::F64(*d),
        Some(V::ArrayValue(a)) => {
            let items: Vec<Value> = a.values.iter().map(value).collect();
            array(items)
        }
        Some(V::BytesValue(b)) => Value::from(hex::encode(b)),
        Some(V::KvlistValue(kvs)) => Value::from(
            kvs.values
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        kv.value.as_ref().map_or(Value::from(""), value)
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        // No value, or a dictionary reference (profiles only).
        _ => Value::from(""),
    }
}

fn array(items: Vec<Value>) -> Value {
    let all = |f: fn(&Value) -> bool| items.iter().all(f);
    if all(|v| matches!(v, Value::String(_))) {
        Value::Array(Array::String(
            items
                .into_iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect::<Vec<StringValue>>(),
        ))
    } else if all(|v| matches!(v, Value::I64(_))) {
        Value::Array(Array::I64(
            items
                .into_iter()
                .filter_map(|v| if let Value::I64(i) = v { Some(i) } else { None })
                .collect(),
        ))
    } else if all(|v| matches!(v, Value::F64(_))) {
        Value::Array(Array::F64(
            items
                .into_iter()
                .filter_map(|v| if let Value::F64(f) = v { Some(f) } else { None })
                .collect(),
        ))
    } else if all(|v| matches!(v, Value::Bool(_))) {
        Value::Array(Array::Bool(
            items
                .into_iter()
                .filter_map(|v| {
                    if let Value::Bool(b) = v {
                        Some(b)
                    } else {
                        None
                    }
                })
                .collect(),
        ))
    } else {
        Value::from(
            items
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}
