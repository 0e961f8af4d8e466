//! Fidelity: what goes in comes out, for every part of the OTLP data model.

use std::time::Duration;

use anyhow::ensure;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{Span, span};

use super::{Case, Ctx};
use crate::case;
use crate::fixtures::{self, now_ns, s};
use crate::spec::Capability::*;

/// Spans in the large trace.
pub const LARGE_TRACE_SPANS: usize = 10_000;
/// Spans per request when sending the large trace.
const LARGE_TRACE_BATCH: usize = 1_000;

/// The fidelity cases.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "fidelity.any_value_kinds",
            &[],
            None,
            "span and resource attributes of every AnyValue kind (string, bool, int, double, array, kvlist, bytes) round-trip",
            any_value_kinds
        ),
        case!(
            "fidelity.events",
            &[],
            None,
            "span events keep their names, times, attributes and dropped-attribute counts",
            events
        ),
        case!(
            "fidelity.links",
            &[],
            None,
            "span links keep their trace and span ids, trace state, attributes and dropped counts",
            links
        ),
        case!(
            "fidelity.trace_state",
            &[],
            None,
            "the W3C trace state of a span round-trips",
            trace_state
        ),
        case!(
            "fidelity.dropped_counts",
            &[],
            None,
            "dropped attribute, event and link counts of spans, resources and scopes round-trip",
            dropped_counts
        ),
        case!(
            "fidelity.scope_attributes",
            &[],
            None,
            "instrumentation scope name, version and attributes round-trip",
            scope_attributes
        ),
        case!(
            "fidelity.empty_names",
            &[],
            None,
            "empty span, event and scope names round-trip as empty",
            empty_names
        ),
        case!(
            "fidelity.long_attribute_values",
            &[],
            None,
            "a 1 KB attribute value round-trips; a 10 KB one round-trips or is cut to a prefix no shorter than the declared limit",
            long_attribute_values
        ),
        case!(
            "fidelity.retried_span_once",
            &[],
            None,
            "the same span sent twice (a retried export) reads back once",
            retried_span_once
        ),
        case!(
            "fidelity.shared_span_id",
            &[],
            None,
            "a client and a server span sharing one span id (Zipkin style) both read back",
            shared_span_id
        ),
        case!(
            "fidelity.large_trace",
            &[],
            None,
            "a 10,000-span trace sent in 10 requests reads back with every span",
            large_trace
        ),
        case!(
            "fidelity.split_requests",
            &[],
            None,
            "spans of one trace sent in several requests from several services read back as one trace",
            split_requests
        ),
        case!(
            "fidelity.late_spans",
            &[],
            None,
            "spans arriving after the trace was readable (and flushed, when the target can flush) are merged into it",
            late_spans
        ),
    ]
}

async fn write_and_compare(
    cx: &mut Ctx<'_>,
    id: fixtures::TraceId,
    rs: Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
) -> anyhow::Result<()> {
    cx.write(rs.clone()).await?;
    cx.await_equal(&id, &rs).await
}

async fn any_value_kinds(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, mut rs) = fixtures::simple_trace("fidelity-any-value", 2);
    rs[0].scope_spans[0].spans[1]
        .attributes
        .extend(fixtures::every_any_value());
    if let Some(r) = rs[0].resource.as_mut() {
        r.attributes.extend(fixtures::every_any_value());
    }
    write_and_compare(cx, id, rs).await
}

fn event(
    name: &str,
    at: u64,
    attrs: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
    dropped: u32,
) -> span::Event {
    span::Event {
        time_unix_nano: at,
        name: name.into(),
        attributes: attrs,
        dropped_attributes_count: dropped,
    }
}

async fn events(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, mut rs) = fixtures::simple_trace("fidelity-events", 2);
    let sp = &mut rs[0].scope_spans[0].spans[1];
    let at = sp.start_time_unix_nano;
    sp.events = vec![
        event(
            "exception",
            at + 1_000,
            vec![
                s("exception.type", "IOError"),
                s("exception.message", "disk full"),
                fixtures::i("retry", 3),
            ],
            2,
        ),
        event("cache.miss", at + 2_000, vec![], 0),
    ];
    write_and_compare(cx, id, rs).await
}

async fn links(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (other_id, other) = fixtures::simple_trace("fidelity-link-target", 1);
    let other_span = other[0].scope_spans[0].spans[0].span_id.clone();
    let (id, mut rs) = fixtures::simple_trace("fidelity-links", 2);
    rs[0].scope_spans[0].spans[1].links = vec![
        span::Link {
            trace_id: other_id.to_vec(),
            span_id: other_span,
            trace_state: "vendor=linked".into(),
            attributes: vec![s("link.reason", "batch"), fixtures::i("link.n", 1)],
            dropped_attributes_count: 1,
            flags: 0,
        },
        span::Link {
            trace_id: id.to_vec(),
            span_id: rs[0].scope_spans[0].spans[0].span_id.clone(),
            ..Default::default()
        },
    ];
    cx.write(other).await?;
    write_and_compare(cx, id, rs).await
}

async fn trace_state(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, mut rs) = fixtures::simple_trace("fidelity-trace-state", 2);
    rs[0].scope_spans[0].spans[0].trace_state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into();
    write_and_compare(cx, id, rs).await
}

async fn dropped_counts(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, mut rs) = fixtures::simple_trace("fidelity-dropped", 2);
    if let Some(r) = rs[0].resource.as_mut() {
        r.dropped_attributes_count = 5;
    }
    if let Some(sc) = rs[0].scope_spans[0].scope.as_mut() {
        sc.dropped_attributes_count = 6;
    }
    let sp = &mut rs[0].scope_spans[0].spans[1];
    sp.dropped_attributes_count = 7;
    sp.dropped_events_count = 8;
    sp.dropped_links_count = 9;
    write_and_compare(cx, id, rs).await
}

async fn scope_attributes(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, mut rs) = fixtures::simple_trace("fidelity-scope", 2);
    rs[0].scope_spans[0].scope = Some(InstrumentationScope {
        name: "io.opentelemetry.contrib.conformance".into(),
        version: "1.2.3-beta".into(),
        attributes: vec![s("scope.team", "tracing"), fixtures::i("scope.level", 2)],
        dropped_attributes_count: 0,
    });
    write_and_compare(cx, id, rs).await
}

async fn empty_names(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, mut rs) = fixtures::simple_trace("fidelity-empty-names", 2);
    if let Some(sc) = rs[0].scope_spans[0].scope.as_mut() {
        sc.name = String::new();
        sc.version = String::new();
    }
    let sp = &mut rs[0].scope_spans[0].spans[1];
    sp.name = String::new();
    let at = sp.start_time_unix_nano;
    sp.events = vec![event("", at, vec![], 0)];
    write_and_compare(cx, id, rs).await
}

async fn long_attribute_values(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let limit = cx.file.limits.max_attribute_bytes.unwrap_or(2048) as usize;
    let short: String = (0..1000)
        .map(|k| char::from(b'a' + (k % 26) as u8))
        .collect();
    let long: String = (0..10_000)
        .map(|k| char::from(b'a' + (k % 26) as u8))
        .collect();
    let (id, mut rs) = fixtures::simple_trace("fidelity-long-values", 2);
    rs[0].scope_spans[0].spans[1]
        .attributes
        .push(s("value.1k", &short));
    rs[0].scope_spans[0].spans[1]
        .attributes
        .push(s("value.10k", &long));
    cx.write(rs.clone()).await?;
    // Everything but the 10 KB value must be exact.
    let mut expected = rs.clone();
    expected[0].scope_spans[0].spans[1].attributes.pop();
    let deadline = std::time::Instant::now() + cx.file.timings.visible_within.get();
    loop {
        if let Some(got) = cx.read(&id).await? {
            let mut got_trimmed = got.clone();
            let mut long_got = None;
            for sp in fixtures_spans_mut(&mut got_trimmed) {
                if let Some(pos) = sp.attributes.iter().position(|kv| kv.key == "value.10k") {
                    long_got = Some(sp.attributes.remove(pos));
                }
            }
            if crate::compare::diff(&expected, &got_trimmed).is_empty() {
                let value =
                    long_got
                        .and_then(|kv| kv.value)
                        .and_then(|v| v.value)
                        .map(|v| {
                            match v {
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            s,
                        ) => s,
                        other => format!("{other:?}"),
                    }
                        });
                let value =
                    value.ok_or_else(|| anyhow::anyhow!("the 10 KB attribute is missing"))?;
                ensure!(
                    long.starts_with(&value),
                    "the 10 KB value came back altered, not cut (first {} chars differ)",
                    value.len().min(40)
                );
                ensure!(
                    value.len() >= limit.min(long.len()),
                    "the 10 KB value was cut to {} bytes, under the declared limit of {limit}",
                    value.len()
                );
                return Ok(());
            }
        }
        if std::time::Instant::now() >= deadline {
            return cx.await_equal(&id, &expected).await;
        }
        tokio::time::sleep(cx.file.timings.poll_interval.get()).await;
    }
}

fn fixtures_spans_mut(
    rs: &mut [opentelemetry_proto::tonic::trace::v1::ResourceSpans],
) -> impl Iterator<Item = &mut Span> {
    rs.iter_mut()
        .flat_map(|r| r.scope_spans.iter_mut())
        .flat_map(|s| s.spans.iter_mut())
}

async fn retried_span_once(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, rs) = fixtures::simple_trace("fidelity-retried", 3);
    cx.write(rs.clone()).await?;
    cx.write(rs.clone()).await?;
    cx.await_equal(&id, &rs).await
}

async fn shared_span_id(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, mut rs) = fixtures::simple_trace("fidelity-shared-id", 2);
    let spans = &mut rs[0].scope_spans[0].spans;
    let mut server = spans[1].clone();
    spans[1].kind = span::SpanKind::Client as i32;
    spans[1].name = "call".into();
    server.kind = span::SpanKind::Server as i32;
    server.name = "handle".into();
    spans.push(server);
    cx.write(rs.clone()).await?;
    let deadline = std::time::Instant::now() + cx.file.timings.visible_within.get();
    loop {
        let names: Vec<String> = cx
            .read(&id)
            .await?
            .map(|got| fixtures::spans(&got).map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        if names.iter().any(|n| n == "call") && names.iter().any(|n| n == "handle") {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "expected both the client span `call` and the server span `handle`, got {names:?}"
        );
        tokio::time::sleep(cx.file.timings.poll_interval.get()).await;
    }
}

async fn large_trace(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let id = fixtures::trace_id();
    let base = now_ns() - 30_000_000_000;
    let root = fixtures::span(&id, None, "large-root", base, 0, 10_000);
    let root_id = root.span_id.clone();
    let mut all = vec![root];
    for k in 1..LARGE_TRACE_SPANS {
        let mut sp = fixtures::span(&id, Some(&root_id), "op", base, (k % 9_000) as u64, 1);
        sp.attributes = vec![fixtures::i("n", k as i64)];
        all.push(sp);
    }
    let mut sent = Vec::new();
    for chunk in all.chunks(LARGE_TRACE_BATCH) {
        let rs = vec![fixtures::resource_spans("fidelity-large", chunk.to_vec())];
        cx.write(rs.clone()).await?;
        sent.extend(rs);
    }
    let deadline = std::time::Instant::now() + cx.file.timings.visible_within.get() * 2;
    loop {
        let got = cx.read(&id).await?.unwrap_or_default();
        let n = fixtures::span_count(&got);
        if n >= LARGE_TRACE_SPANS {
            let d = crate::compare::diff(&sent, &got);
            ensure!(d.is_empty(), "{}", d.join("; "));
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{n} of {LARGE_TRACE_SPANS} spans read back"
        );
        tokio::time::sleep(
            cx.file
                .timings
                .poll_interval
                .get()
                .max(Duration::from_millis(500)),
        )
        .await;
    }
}

async fn split_requests(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let id = fixtures::trace_id();
    let base = now_ns() - 5_000_000_000;
    let root = fixtures::span(&id, None, "frontend", base, 0, 50);
    let root_id = root.span_id.clone();
    let parts = vec![
        vec![fixtures::resource_spans("split-frontend", vec![root])],
        vec![fixtures::resource_spans(
            "split-cart",
            vec![fixtures::span(&id, Some(&root_id), "cart", base, 1, 10)],
        )],
        vec![fixtures::resource_spans(
            "split-payment",
            vec![
                fixtures::span(&id, Some(&root_id), "pay", base, 12, 20),
                fixtures::span(&id, Some(&root_id), "refund-check", base, 33, 2),
            ],
        )],
    ];
    let mut sent = Vec::new();
    for p in parts {
        cx.write(p.clone()).await?;
        sent.extend(p);
    }
    cx.await_equal(&id, &sent).await
}

async fn late_spans(cx: &mut Ctx<'_>) -> anyhow::Result<()> {
    let (id, first) = fixtures::simple_trace("fidelity-late", 3);
    cx.write(first.clone()).await?;
    cx.await_equal(&id, &first).await?;
    if cx.has(Flush) {
        cx.flush(&[id]).await?;
        cx.await_equal(&id, &first).await?;
    }
    let root_id = first[0].scope_spans[0].spans[0].span_id.clone();
    let base = first[0].scope_spans[0].spans[0].start_time_unix_nano;
    let late = vec![fixtures::resource_spans(
        "fidelity-late",
        vec![fixtures::span(&id, Some(&root_id), "late", base, 90, 5)],
    )];
    cx.write(late.clone()).await?;
    let mut all = first;
    all.extend(late);
    cx.await_equal(&id, &all).await
}
