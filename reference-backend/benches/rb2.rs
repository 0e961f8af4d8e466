#![allow(clippy::unwrap_used, clippy::expect_used)]
//! rb2 search scan rate, one thread: a 1,000,000-span block (100,000 traces × 10 spans,
//! 9 attributes per span: `http.method`, `http.route`, `http.status_code` in their default
//! dedicated columns, 6 in the generic attribute list) in a memory store, searched with
//!
//! * `{ span.http.method = "POST" }` — dedicated column;
//! * `{ span.peer.service = "payments" }` — generic attribute list;
//! * `{ resource.service.name = "cart" }` — resource dictionary;
//! * `{ span.http.method = "PATCH" }` — a value no span has (statistics cannot skip it:
//!   the row groups' min/max straddle it);
//!
//! each with limit 20 (what Grafana asks; every row group is scanned, since the answer is
//! the 20 matching traces that start last, but only 20 results are built) and with no
//! limit (every matching trace built). The throughput is spans inspected
//! (`inspected_spans`) per second.
//!
//! `cargo bench -p reference-backend --bench rb2`

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use common::Rng;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use prost::Message;
use reference_backend::block::rb2::Rb2;
use reference_backend::block::{
    BlockFormat, BlockInput, BlockReader, EncodingSettings, TraceRecord,
};
use reference_backend::search::SearchPlan;
use reference_backend::search::ast::{Cond, Expr, Field, Op, Scope, Static};
use reference_backend::store::BlockStore;
use tempo_api::trace_id::TraceId;

const TRACES: u64 = 100_000;
const SPANS_PER_TRACE: u32 = 10;
const QUIET_WAIT: Duration = Duration::from_secs(60);

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(k: &str, v: impl Into<String>) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

const SERVICES: [&str; 8] = [
    "frontend", "cart", "checkout", "payments", "shipping", "users", "search", "ads",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const ROUTES: [&str; 6] = [
    "/api/orders/{id}",
    "/api/users/{id}",
    "/api/cart",
    "/api/payments/{id}",
    "/api/catalog",
    "/api/shipping/{id}",
];

fn trace(id: TraceId, rng: &mut Rng, start: u64) -> TracesData {
    let mut by_service: Vec<(usize, Vec<Span>)> = Vec::new();
    let mut ids: Vec<[u8; 8]> = Vec::new();
    for i in 0..SPANS_PER_TRACE {
        let svc = if i == 0 {
            0
        } else {
            rng.below(SERVICES.len() as u64) as usize
        };
        let mut span_id = rng.next_u64().to_be_bytes();
        span_id[0] |= 1;
        let parent = if i == 0 {
            Vec::new()
        } else {
            ids[rng.below(ids.len() as u64) as usize].to_vec()
        };
        ids.push(span_id);
        let method = METHODS[rng.below(4) as usize];
        let route = ROUTES[rng.below(6) as usize];
        let s_start = start + u64::from(i) * 1_000_000 + rng.below(500_000);
        let span = Span {
            trace_id: id.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent,
            name: format!("{method} {route}"),
            kind: if i == 0 { 2 } else { 3 },
            start_time_unix_nano: s_start,
            end_time_unix_nano: s_start + 100_000 + rng.below(20_000_000),
            attributes: vec![
                s("http.method", method),
                s("http.route", route),
                kv(
                    "http.status_code",
                    any_value::Value::IntValue(if rng.below(50) == 0 { 500 } else { 200 }),
                ),
                s("peer.service", SERVICES[rng.below(8) as usize]),
                s(
                    "url.path",
                    route.replace("{id}", &rng.below(100_000).to_string()),
                ),
                s(
                    "network.peer.address",
                    format!("10.42.{}.{}", rng.below(256), rng.below(256)),
                ),
                s(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) okhttp/4.12.0",
                ),
                kv(
                    "retry.count",
                    any_value::Value::IntValue(rng.below(3) as i64),
                ),
                kv("cache.hit", any_value::Value::BoolValue(rng.below(2) == 0)),
            ],
            status: Some(Status {
                code: if rng.below(50) == 0 { 2 } else { 0 },
                message: String::new(),
            }),
            ..Default::default()
        };
        match by_service.iter_mut().find(|(s, _)| *s == svc) {
            Some((_, v)) => v.push(span),
            None => by_service.push((svc, vec![span])),
        }
    }
    TracesData {
        resource_spans: by_service
            .into_iter()
            .map(|(svc, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        s("service.name", SERVICES[svc]),
                        s("service.version", "1.4.2"),
                        s("host.name", format!("{}-{}", SERVICES[svc], svc % 3)),
                        s("telemetry.sdk.language", "go"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
                            .into(),
                        version: "0.53.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn block(rt: &tokio::runtime::Runtime) -> Arc<dyn BlockReader> {
    let mut rng = Rng::new(7);
    let base = 1_700_000_000_000_000_000u64;
    let mut traces: Vec<(TraceId, Vec<u8>)> = (0..TRACES)
        .map(|n| {
            let id = rng.trace_id();
            (
                id,
                trace(id, &mut rng, base + n * 1_000_000).encode_to_vec(),
            )
        })
        .collect();
    traces.sort_by_key(|t| t.0);
    traces.dedup_by_key(|t| t.0);
    let records: Vec<TraceRecord<'_>> = traces
        .iter()
        .map(|(id, d)| TraceRecord {
            id: *id,
            data: d,
            start_ns: 0,
            end_ns: 0,
            spans: SPANS_PER_TRACE,
        })
        .collect();
    let store = BlockStore::memory();
    let fmt = Rb2::new(EncodingSettings::default());
    rt.block_on(async {
        let meta = fmt
            .write(
                &store,
                BlockInput {
                    tenant: "t",
                    block_id: uuid::Uuid::new_v4(),
                    traces: &records,
                },
            )
            .await
            .unwrap();
        eprintln!(
            "rb2 block: {} traces, {} spans, {:.1} MB ({:.1} B/span)",
            meta.total_objects,
            meta.total_spans,
            meta.size as f64 / 1e6,
            meta.size as f64 / meta.total_spans as f64
        );
        fmt.open(&store, &meta).await.unwrap()
    })
}

fn eq(scope: Scope, key: &str, v: &str) -> Expr {
    Expr::Cond(Cond {
        field: Field::Attr {
            scope,
            key: key.into(),
        },
        op: Op::Eq,
        value: Static::Str(v.into()),
        regex: None,
    })
}

fn search(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = block(&rt);
    common::wait_for_quiet(0.35, QUIET_WAIT);
    let mut g = c.benchmark_group("rb2_search");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    for (name, filter) in [
        (
            "dedicated http.method=POST",
            eq(Scope::Span, "http.method", "POST"),
        ),
        (
            "generic peer.service=payments",
            eq(Scope::Span, "peer.service", "payments"),
        ),
        (
            "resource service.name=cart",
            eq(Scope::Resource, "service.name", "cart"),
        ),
        (
            "dedicated http.method=PATCH (no match)",
            eq(Scope::Span, "http.method", "PATCH"),
        ),
    ] {
        for limit in [20usize, usize::MAX] {
            let plan = SearchPlan {
                filter: filter.clone(),
                min_duration_ns: None,
                max_duration_ns: None,
                start_ns: None,
                end_ns: None,
                limit,
                spans_per_spanset: 3,
            };
            let r = rt.block_on(reader.search(&plan)).unwrap();
            eprintln!(
                "{name}, limit {limit}: {} traces, inspected {} traces / {} spans / {:.1} MB",
                r.traces.len(),
                r.inspected_traces,
                r.inspected_spans,
                r.inspected_bytes as f64 / 1e6
            );
            g.throughput(Throughput::Elements(r.inspected_spans));
            let label = if limit == 20 { "limit 20" } else { "no limit" };
            g.bench_function(format!("{name}, {label}"), |b| {
                b.iter(|| black_box(rt.block_on(reader.search(black_box(&plan))).unwrap()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
