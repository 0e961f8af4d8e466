#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::otlp::common::v1 as oc;
use crate::otlp::resource::v1 as orc;
use crate::otlp::trace::v1 as ot;
use oc::any_value::Value;
use serde_json::json;

const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc7, 0x00,
];
const SPAN_ID: [u8; 8] = [0x5a, 0x4e, 0xe9, 0xc9, 0x9e, 0x17, 0x58, 0x90];

fn any(v: Value) -> oc::AnyValue {
    oc::AnyValue { value: Some(v) }
}

fn kv(key: &str, v: Value) -> oc::KeyValue {
    oc::KeyValue {
        key: key.to_string(),
        value: Some(any(v)),
        key_strindex: 0,
    }
}

fn every_value_kind() -> Vec<oc::KeyValue> {
    vec![
        kv("s", Value::StringValue("hello".into())),
        kv("s0", Value::StringValue(String::new())),
        kv("b", Value::BoolValue(true)),
        kv("b0", Value::BoolValue(false)),
        kv("i", Value::IntValue(-9_007_199_254_740_993)),
        kv("i0", Value::IntValue(0)),
        kv("d", Value::DoubleValue(2.5)),
        kv("dinf", Value::DoubleValue(f64::INFINITY)),
        kv(
            "a",
            Value::ArrayValue(oc::ArrayValue {
                values: vec![any(Value::IntValue(1)), any(Value::StringValue("x".into()))],
            }),
        ),
        kv(
            "kv",
            Value::KvlistValue(oc::KeyValueList {
                values: vec![kv("inner", Value::BoolValue(true))],
            }),
        ),
        kv("bytes", Value::BytesValue(vec![0, 1, 2, 255])),
        kv("bytes0", Value::BytesValue(Vec::new())),
        oc::KeyValue {
            key: "none".into(),
            value: Some(oc::AnyValue { value: None }),
            key_strindex: 0,
        },
        oc::KeyValue {
            key: "novalue".into(),
            value: None,
            key_strindex: 0,
        },
    ]
}

fn sample() -> ot::ResourceSpans {
    ot::ResourceSpans {
        resource: Some(orc::Resource {
            attributes: vec![kv("service.name", Value::StringValue("checkout".into()))],
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        }),
        scope_spans: vec![ot::ScopeSpans {
            scope: Some(oc::InstrumentationScope {
                name: "lib".into(),
                version: "1.0".into(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            }),
            spans: vec![ot::Span {
                trace_id: TRACE_ID.to_vec(),
                span_id: SPAN_ID.to_vec(),
                trace_state: String::new(),
                parent_span_id: Vec::new(),
                flags: 0,
                name: "GET /cart".into(),
                kind: ot::span::SpanKind::Server as i32,
                start_time_unix_nano: 1_689_969_302_000_000_000,
                end_time_unix_nano: 1_689_969_302_500_000_000,
                attributes: every_value_kind(),
                dropped_attributes_count: 0,
                events: vec![ot::span::Event {
                    time_unix_nano: 1_689_969_302_100_000_000,
                    name: "exception".into(),
                    attributes: vec![kv("n", Value::IntValue(3))],
                    dropped_attributes_count: 1,
                }],
                dropped_events_count: 0,
                links: vec![ot::span::Link {
                    trace_id: TRACE_ID.to_vec(),
                    span_id: vec![1; 8],
                    trace_state: "k=v".into(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                    flags: 257,
                }],
                dropped_links_count: 2,
                status: Some(ot::Status {
                    message: "boom".into(),
                    code: ot::status::StatusCode::Error as i32,
                }),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        }],
        schema_url: String::new(),
    }
}

fn round_trip(rs: &ot::ResourceSpans) -> ot::ResourceSpans {
    let text = serde_json::to_string(&trace_v1_json(std::slice::from_ref(rs))).unwrap();
    let back: TraceV1 = serde_json::from_str(&text).unwrap();
    let mut otlp = back.into_otlp().unwrap();
    assert_eq!(otlp.len(), 1);
    otlp.remove(0)
}

#[test]
fn every_any_value_kind_round_trips() {
    let rs = sample();
    assert_eq!(round_trip(&rs), rs);
    let mut nan = sample();
    nan.scope_spans[0].spans[0].attributes = vec![kv("nan", Value::DoubleValue(f64::NAN))];
    let back = round_trip(&nan);
    let Some(Value::DoubleValue(d)) = &back.scope_spans[0].spans[0].attributes[0]
        .value
        .as_ref()
        .unwrap()
        .value
    else {
        panic!("not a double")
    };
    assert!(d.is_nan());
}

#[test]
fn any_value_json_shapes() {
    let span = Span::from(&sample().scope_spans[0].spans[0]);
    let attrs = serde_json::to_value(&span.attributes).unwrap();
    assert_eq!(
        attrs,
        json!([
            {"key": "s", "value": {"stringValue": "hello"}},
            {"key": "s0", "value": {"stringValue": ""}},
            {"key": "b", "value": {"boolValue": true}},
            {"key": "b0", "value": {"boolValue": false}},
            {"key": "i", "value": {"intValue": "-9007199254740993"}},
            {"key": "i0", "value": {"intValue": "0"}},
            {"key": "d", "value": {"doubleValue": 2.5}},
            {"key": "dinf", "value": {"doubleValue": "Infinity"}},
            {"key": "a", "value": {"arrayValue": {"values": [
                {"intValue": "1"}, {"stringValue": "x"}
            ]}}},
            {"key": "kv", "value": {"kvlistValue": {"values": [
                {"key": "inner", "value": {"boolValue": true}}
            ]}}},
            {"key": "bytes", "value": {"bytesValue": "AAEC/w=="}},
            {"key": "bytes0", "value": {"bytesValue": ""}},
            {"key": "none", "value": {}},
            {"key": "novalue"}
        ])
    );
}

#[test]
fn span_json_shape_pins_ids_enums_and_strings() {
    let v = serde_json::to_value(trace_v1_json(&[sample()])).unwrap();
    let span = &v["batches"][0]["scopeSpans"][0]["spans"][0];
    // The documented Tempo example: base64, not hex.
    assert_eq!(span["traceId"], "W47/95gDgQPSabYzgT/HAA==");
    assert_eq!(span["spanId"], "Wk7pyZ4XWJA=");
    assert_eq!(span["kind"], "SPAN_KIND_SERVER");
    assert_eq!(
        span["status"],
        json!({"message": "boom", "code": "STATUS_CODE_ERROR"})
    );
    assert_eq!(span["startTimeUnixNano"], "1689969302000000000");
    assert_eq!(span["endTimeUnixNano"], "1689969302500000000");
    assert_eq!(span["events"][0]["timeUnixNano"], "1689969302100000000");
    assert_eq!(span["events"][0]["droppedAttributesCount"], 1);
    assert_eq!(span["links"][0]["flags"], 257);
    assert_eq!(span["links"][0]["spanId"], "AQEBAQEBAQE=");
    assert_eq!(span["droppedLinksCount"], 2);
    // Omitted: empty parent (root span), zero flags, empty trace state.
    for absent in ["parentSpanId", "flags", "traceState", "droppedEventsCount"] {
        assert!(span.get(absent).is_none(), "{absent} should be omitted");
    }
    let rs = &v["batches"][0];
    assert!(rs.get("schemaUrl").is_none());
    assert!(rs.get("resourceSpans").is_none());
    assert_eq!(
        rs["scopeSpans"][0]["scope"],
        json!({"name": "lib", "version": "1.0"})
    );
}

#[test]
fn empty_messages_and_zero_values_are_omitted() {
    let span = ot::Span {
        status: Some(ot::Status::default()),
        ..ot::Span::default()
    };
    // A set but empty message is written as `{}`; everything else omitted.
    assert_eq!(
        serde_json::to_value(Span::from(&span)).unwrap(),
        json!({"status": {}})
    );
    assert_eq!(
        serde_json::to_value(Span::from(&ot::Span::default())).unwrap(),
        json!({})
    );
    let rs = ot::ResourceSpans {
        resource: Some(orc::Resource::default()),
        ..ot::ResourceSpans::default()
    };
    assert_eq!(
        serde_json::to_value(ResourceSpans::from(&rs)).unwrap(),
        json!({"resource": {}})
    );
    let status = ot::Status {
        message: String::new(),
        code: ot::status::StatusCode::Unset as i32,
    };
    assert_eq!(
        serde_json::to_value(Status::from(&status)).unwrap(),
        json!({})
    );
}

#[test]
fn v1_uses_batches_key() {
    let text = serde_json::to_string(&trace_v1_json(&[sample()])).unwrap();
    assert!(text.starts_with(r#"{"batches":[{"resource":"#), "{text}");
    let parsed: TraceV1 = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed.into_otlp().unwrap(), vec![sample()]);
}

#[test]
fn v2_shapes() {
    let empty = trace_by_id_v2_json(&[], 0);
    assert_eq!(
        serde_json::to_string(&empty).unwrap(),
        r#"{"trace":{},"metrics":{}}"#
    );
    assert!(empty.trace.is_empty());

    let full = TraceByIdV2Response {
        status: Some(STATUS_PARTIAL.to_string()),
        message: Some("Trace exceeds maximum size of 10 bytes, a partial trace is returned".into()),
        ..trace_by_id_v2_json(&[sample()], 1234)
    };
    let v = serde_json::to_value(&full).unwrap();
    assert_eq!(v["metrics"], json!({"inspectedBytes": "1234"}));
    assert_eq!(v["status"], "PARTIAL");
    assert_eq!(
        v["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"],
        "SPAN_KIND_SERVER"
    );
    let back: TraceByIdV2Response = serde_json::from_value(v).unwrap();
    let otlp = back.into_otlp().unwrap();
    assert!(otlp.is_partial());
    assert_eq!(otlp.metrics.inspected_bytes, 1234);
    assert_eq!(otlp.resource_spans, vec![sample()]);
}

#[test]
fn v2_tolerates_unknown_fields_and_numeric_metrics() {
    let body = json!({
        "trace": {"resourceSpans": []},
        "metrics": {"inspectedBytes": 42, "backendReads": "3", "additionalMetrics": {"cacheHits": "7"}, "futureField": 1},
        "somethingNew": true
    });
    let parsed: TraceByIdV2Response = serde_json::from_value(body).unwrap();
    assert_eq!(parsed.metrics.inspected_bytes, 42);
    assert_eq!(parsed.metrics.backend_reads, 3);
    assert_eq!(parsed.metrics.additional_metrics["cacheHits"], 7);
    assert!(parsed.status.is_none());
    assert!(parsed.trace.is_empty());
}

#[test]
fn enums_read_as_names_or_numbers() {
    let span: Span = serde_json::from_value(json!({
        "kind": 3, "status": {"code": "STATUS_CODE_OK"}
    }))
    .unwrap();
    let otlp = ot::Span::try_from(span).unwrap();
    assert_eq!(otlp.kind, ot::span::SpanKind::Client as i32);
    assert_eq!(otlp.status.unwrap().code, ot::status::StatusCode::Ok as i32);

    let unknown: Span = serde_json::from_value(json!({"kind": "SPAN_KIND_BOGUS"})).unwrap();
    let err = ot::Span::try_from(unknown).unwrap_err();
    assert_eq!(
        err,
        TraceJsonError::UnknownEnum {
            field: "kind",
            name: "SPAN_KIND_BOGUS".into()
        }
    );
    // A number outside the enum is kept and written back as a number.
    let odd = ot::Span {
        kind: 42,
        ..ot::Span::default()
    };
    assert_eq!(
        serde_json::to_value(Span::from(&odd)).unwrap(),
        json!({"kind": 42})
    );
    for (k, name) in [
        (1, "SPAN_KIND_INTERNAL"),
        (2, "SPAN_KIND_SERVER"),
        (3, "SPAN_KIND_CLIENT"),
        (4, "SPAN_KIND_PRODUCER"),
        (5, "SPAN_KIND_CONSUMER"),
    ] {
        let s = ot::Span {
            kind: k,
            ..ot::Span::default()
        };
        assert_eq!(serde_json::to_value(Span::from(&s)).unwrap()["kind"], name);
    }
}

#[test]
fn int_value_accepts_numbers_when_reading() {
    let v: AnyValue = serde_json::from_value(json!({"intValue": 12})).unwrap();
    assert_eq!(oc::AnyValue::try_from(v).unwrap(), any(Value::IntValue(12)));
    let v: AnyValue = serde_json::from_value(json!({"intValue": "-12"})).unwrap();
    assert_eq!(
        oc::AnyValue::try_from(v).unwrap(),
        any(Value::IntValue(-12))
    );
    assert!(serde_json::from_value::<AnyValue>(json!({"intValue": "1.5"})).is_err());
}

#[test]
fn bad_input_is_rejected() {
    let span: Span = serde_json::from_value(json!({"traceId": "not base64!"})).unwrap();
    assert_eq!(
        ot::Span::try_from(span).unwrap_err(),
        TraceJsonError::InvalidBase64 {
            field: "traceId",
            value: "not base64!".into()
        }
    );
    let two: AnyValue =
        serde_json::from_value(json!({"stringValue": "a", "intValue": "1"})).unwrap();
    assert!(matches!(
        oc::AnyValue::try_from(two),
        Err(TraceJsonError::AmbiguousAnyValue { .. })
    ));
    let bytes: AnyValue = serde_json::from_value(json!({"bytesValue": "%%%"})).unwrap();
    assert!(matches!(
        oc::AnyValue::try_from(bytes),
        Err(TraceJsonError::InvalidBase64 {
            field: "bytesValue",
            ..
        })
    ));
}

#[test]
fn base64_variants_decode() {
    assert_eq!(base64_decode("W47/95gDgQPSabYzgT/HAA==").unwrap(), TRACE_ID);
    assert_eq!(base64_decode("W47/95gDgQPSabYzgT/HAA").unwrap(), TRACE_ID);
    assert_eq!(base64_decode("W47_95gDgQPSabYzgT_HAA==").unwrap(), TRACE_ID);
    assert_eq!(base64_encode(&TRACE_ID), "W47/95gDgQPSabYzgT/HAA==");
}

#[test]
fn parses_tempo_style_document() {
    let doc = r#"{"batches":[{"resource":{"attributes":[{"key":"service.name",
        "value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library",
        "version":"1.0.0"},"spans":[{"traceId":"W47/95gDgQPSabYzgT/HAA==","spanId":"Wk7pyZ4XWJA=",
        "name":"I'm a server span","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1689969302000000000",
        "endTimeUnixNano":"1689970000000000000","attributes":[{"key":"my.span.attr",
        "value":{"stringValue":"some value"}}],"status":{}}]}]}]}"#;
    let trace: TraceV1 = serde_json::from_str(doc).unwrap();
    let otlp = trace.into_otlp().unwrap();
    let span = &otlp[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id, TRACE_ID);
    assert_eq!(span.span_id, SPAN_ID);
    assert_eq!(span.end_time_unix_nano, 1_689_970_000_000_000_000);
    assert_eq!(span.status, Some(ot::Status::default()));
}

#[test]
fn key_value_string_helper() {
    let kv = KeyValue::string("k", "v");
    assert_eq!(
        serde_json::to_value(&kv).unwrap(),
        json!({"key": "k", "value": {"stringValue": "v"}})
    );
}
