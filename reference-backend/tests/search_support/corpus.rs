//! A fixed corpus with known search answers: six traces over six services, every span
//! kind, the three statuses, string/int/float/bool span attributes, resource attributes,
//! durations from 2 ms to 3 s and starts one minute apart.
//!
//! | # | start | root (service, name) | spans (service name kind status duration attributes) |
//! |---|---|---|---|
//! | 1 | +0 s | frontend `GET /cart` | s1 frontend `GET /cart` server unset 120ms http.method=GET http.status_code=200 http.url=…/cart; s2 cart `GetCart` server ok 80ms cart.items=3 cache.hit=true; s3 db `SELECT carts` client unset 30ms db.system=postgresql db.rows=3 |
//! | 2 | +60 s | frontend `POST /checkout` | s1 frontend server error 900ms http.method=POST http.status_code=500; s2 payment `Charge` server error 700ms payment.amount=42.5 payment.currency=EUR cache.hit=false; s3 db `SELECT accounts` client unset 50ms db.system=postgresql db.rows=1 |
//! | 3 | +120 s | frontend `GET /health` | s1 server ok 2ms http.method=GET http.status_code=200 |
//! | 4 | +180 s | cart `publish cart-updated` | s1 cart producer unset 5ms messaging.system=kafka; s2 worker `process cart-updated` consumer unset 40ms retry.count=0 ratio=0.75 |
//! | 5 | +240 s | (root not received) | s2 cart `GetCart` server unset 10ms http.method=GET "user id"=u-1 |
//! | 6 | +300 s | frontend `GET /search` | s1 frontend server unset 3s http.method=get http.status_code="200" (string); s2 search `search` internal 2.8s; s3–s6 search `shard-0..3` internal 500ms (s5 has span attribute team=override) |
//!
//! Resource attributes: `service.name`, `deployment.environment` (staging for 3 and 4,
//! prod otherwise); service `search` also has `team=discovery`.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// The OTLP export request type.
pub type ExportRequest = ExportTraceServiceRequest;

/// Unix seconds of trace 1's start.
pub const BASE_S: u64 = 1_700_000_000;

/// Span kinds (OTLP numbering).
pub const INTERNAL: i32 = 1;
/// Server.
pub const SERVER: i32 = 2;
/// Client.
pub const CLIENT: i32 = 3;
/// Producer.
pub const PRODUCER: i32 = 4;
/// Consumer.
pub const CONSUMER: i32 = 5;
/// Status codes.
pub const UNSET: i32 = 0;
/// Ok.
pub const OK: i32 = 1;
/// Error.
pub const ERROR: i32 = 2;

/// Trace id of corpus trace `n` (1–6); trace 6's id has leading zero bytes.
pub fn trace_id(n: u8) -> [u8; 16] {
    if n == 6 {
        let mut id = [0u8; 16];
        id[13..].copy_from_slice(&[0x0a, 0xbc, 0xde]);
        return id;
    }
    let mut id = [0u8; 16];
    id[0] = 0xc0;
    id[1] = n;
    id[15] = n;
    id
}

/// Trace `n`'s id as search results print it (hex, leading zeros stripped).
pub fn search_hex(n: u8) -> String {
    tempo_api::trace_id::trace_id_to_search_hex(&trace_id(n))
}

/// Span `s` of trace `n`.
pub fn span_id(n: u8, s: u8) -> [u8; 8] {
    [n, s, 0xee, 0, 0, 0, 0, 0]
}

/// Span id as search results print it (16 hex characters).
pub fn span_hex(n: u8, s: u8) -> String {
    span_id(n, s).iter().map(|b| format!("{b:02x}")).collect()
}

/// Trace `n`'s start, unix ns.
pub fn trace_start_ns(n: u8) -> u64 {
    (BASE_S + 60 * (u64::from(n) - 1)) * 1_000_000_000
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

fn f(key: &str, v: f64) -> KeyValue {
    kv(key, Value::DoubleValue(v))
}

fn b(key: &str, v: bool) -> KeyValue {
    kv(key, Value::BoolValue(v))
}

struct SpanDef {
    svc: &'static str,
    id: u8,
    parent: Option<u8>,
    name: &'static str,
    kind: i32,
    status: i32,
    start_ms: u64,
    dur_ms: u64,
    attrs: Vec<KeyValue>,
}

#[allow(clippy::too_many_arguments)]
fn sp(
    svc: &'static str,
    id: u8,
    parent: Option<u8>,
    name: &'static str,
    kind: i32,
    status: i32,
    (start_ms, dur_ms): (u64, u64),
    attrs: Vec<KeyValue>,
) -> SpanDef {
    SpanDef {
        svc,
        id,
        parent,
        name,
        kind,
        status,
        start_ms,
        dur_ms,
        attrs,
    }
}

fn traces() -> Vec<(u8, &'static str, Vec<SpanDef>)> {
    let mut search = vec![
        sp(
            "frontend",
            1,
            None,
            "GET /search",
            SERVER,
            UNSET,
            (0, 3000),
            vec![s("http.method", "get"), s("http.status_code", "200")],
        ),
        sp(
            "search",
            2,
            Some(1),
            "search",
            INTERNAL,
            UNSET,
            (100, 2800),
            vec![],
        ),
    ];
    for (k, name) in ["shard-0", "shard-1", "shard-2", "shard-3"]
        .into_iter()
        .enumerate()
    {
        let k = k as u8;
        let attrs = if k == 2 {
            vec![s("team", "override")]
        } else {
            vec![]
        };
        search.push(sp(
            "search",
            3 + k,
            Some(2),
            name,
            INTERNAL,
            UNSET,
            (200 + 100 * u64::from(k), 500),
            attrs,
        ));
    }
    vec![
        (
            1,
            "prod",
            vec![
                sp(
                    "frontend",
                    1,
                    None,
                    "GET /cart",
                    SERVER,
                    UNSET,
                    (0, 120),
                    vec![
                        s("http.method", "GET"),
                        i("http.status_code", 200),
                        s("http.url", "https://shop.example/cart"),
                    ],
                ),
                sp(
                    "cart",
                    2,
                    Some(1),
                    "GetCart",
                    SERVER,
                    OK,
                    (10, 80),
                    vec![i("cart.items", 3), b("cache.hit", true)],
                ),
                sp(
                    "db",
                    3,
                    Some(2),
                    "SELECT carts",
                    CLIENT,
                    UNSET,
                    (20, 30),
                    vec![s("db.system", "postgresql"), i("db.rows", 3)],
                ),
            ],
        ),
        (
            2,
            "prod",
            vec![
                sp(
                    "frontend",
                    1,
                    None,
                    "POST /checkout",
                    SERVER,
                    ERROR,
                    (0, 900),
                    vec![s("http.method", "POST"), i("http.status_code", 500)],
                ),
                sp(
                    "payment",
                    2,
                    Some(1),
                    "Charge",
                    SERVER,
                    ERROR,
                    (100, 700),
                    vec![
                        f("payment.amount", 42.5),
                        s("payment.currency", "EUR"),
                        b("cache.hit", false),
                    ],
                ),
                sp(
                    "db",
                    3,
                    Some(2),
                    "SELECT accounts",
                    CLIENT,
                    UNSET,
                    (200, 50),
                    vec![s("db.system", "postgresql"), i("db.rows", 1)],
                ),
            ],
        ),
        (
            3,
            "staging",
            vec![sp(
                "frontend",
                1,
                None,
                "GET /health",
                SERVER,
                OK,
                (0, 2),
                vec![s("http.method", "GET"), i("http.status_code", 200)],
            )],
        ),
        (
            4,
            "staging",
            vec![
                sp(
                    "cart",
                    1,
                    None,
                    "publish cart-updated",
                    PRODUCER,
                    UNSET,
                    (0, 5),
                    vec![s("messaging.system", "kafka")],
                ),
                sp(
                    "worker",
                    2,
                    Some(1),
                    "process cart-updated",
                    CONSUMER,
                    UNSET,
                    (10, 40),
                    vec![i("retry.count", 0), f("ratio", 0.75)],
                ),
            ],
        ),
        (
            5,
            "prod",
            vec![sp(
                "cart",
                2,
                Some(99),
                "GetCart",
                SERVER,
                UNSET,
                (0, 10),
                vec![s("http.method", "GET"), s("user id", "u-1")],
            )],
        ),
        (6, "prod", search),
    ]
}

/// Resource spans of the corpus traces `which` (one resource per trace and service);
/// `keep(trace, span)` chooses spans.
pub fn resource_spans(which: &[u8], keep: impl Fn(u8, u8) -> bool) -> Vec<ResourceSpans> {
    let mut out = Vec::new();
    for (n, env, spans) in traces() {
        if !which.contains(&n) {
            continue;
        }
        let mut services: Vec<&str> = spans.iter().map(|s| s.svc).collect();
        services.dedup();
        for svc in services {
            let mut attrs = vec![s("service.name", svc), s("deployment.environment", env)];
            if svc == "search" {
                attrs.push(s("team", "discovery"));
            }
            let spans: Vec<Span> = spans
                .iter()
                .filter(|d| d.svc == svc && keep(n, d.id))
                .map(|d| to_span(n, d))
                .collect();
            if spans.is_empty() {
                continue;
            }
            out.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: attrs,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
    }
    out
}

fn to_span(n: u8, d: &SpanDef) -> Span {
    let start = trace_start_ns(n) + d.start_ms * 1_000_000;
    Span {
        trace_id: trace_id(n).to_vec(),
        span_id: span_id(n, d.id).to_vec(),
        parent_span_id: d.parent.map(|p| span_id(n, p).to_vec()).unwrap_or_default(),
        name: d.name.into(),
        kind: d.kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + d.dur_ms * 1_000_000,
        attributes: d.attrs.clone(),
        status: (d.status != UNSET).then(|| Status {
            code: d.status,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The whole corpus as one export request.
pub fn request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: resource_spans(&[1, 2, 3, 4, 5, 6], |_, _| true),
    }
}
