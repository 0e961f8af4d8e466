//! `large-trace`: 10,000+ spans sent in several parts, some late.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use super::ids::Rng;
use super::kit::{self, Grouped, Lang, MS, US, event, i, s};
use super::{ParamDoc, Params, Shape, TemplatePart, TraceTemplate};
use crate::scenario::SizeProfile;

/// A batch job of service `batch-worker`: a root, about √N chunk spans run by 8 parallel
/// workers, and item spans under each chunk (every fourth a database insert). Spans are
/// sent in `parts` parts of about equal size, in index order with the root last; the last
/// `late_parts` parts are sent `late_delay_ms` after the first (so the root arrives late,
/// as with real SDKs that export the root when it ends). Each part is split into
/// `ResourceSpans` of at most 100 spans so the exporter can pack them into requests.
/// Span times are relative to the trace start whatever the part's delay.
///
/// Only [`Shape::variants`] = 4 distinct templates exist (variant modulo 4), so an exporter
/// caching encoded templates holds 4, not 64, multi-megabyte templates.
#[derive(Debug, Clone, Copy, Default)]
pub struct LargeTrace;

const SALT: u64 = 0x1A_26E7;
/// Spans per `ResourceSpans` entry.
const ENTRY_SPANS: usize = 100;
/// Distinct templates.
const DISTINCT: u64 = 4;
/// Parallel workers running chunks.
const WORKERS: u64 = 8;

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "spans",
        default: 10_000.0,
        help: "spans per trace (1–1000000)",
    },
    ParamDoc {
        name: "parts",
        default: 10.0,
        help: "parts the trace is sent in (1–1000, at most `spans`)",
    },
    ParamDoc {
        name: "late_parts",
        default: 2.0,
        help: "trailing parts sent late (at most parts − 1); the last holds the root",
    },
    ParamDoc {
        name: "late_delay_ms",
        default: 2000.0,
        help: "delay of late parts after the first part, in ms",
    },
];

impl Shape for LargeTrace {
    fn name(&self) -> &'static str {
        "large-trace"
    }

    fn describe(&self) -> &'static str {
        "10,000-span batch job sent in parts, the last ones (with the root) late"
    }

    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }

    fn variants(&self) -> u64 {
        DISTINCT
    }

    fn template(
        &self,
        seed: u64,
        variant: u64,
        profile: SizeProfile,
        params: &Params,
    ) -> TraceTemplate {
        let n = kit::count(params, "spans", 10_000, 1, 1_000_000) as usize;
        let parts = kit::count(params, "parts", 10, 1, 1000).min(n as u64) as usize;
        let late = kit::count(params, "late_parts", 2, 0, parts as u64 - 1) as usize;
        let late_delay =
            Duration::from_millis(kit::count(params, "late_delay_ms", 2000, 0, 3_600_000));
        let mut rng = Rng::new(seed, (variant % DISTINCT) ^ SALT);
        let resource =
            kit::service_resource("batch-worker", "3.2.0", Lang::Java, profile, &mut rng);
        let scope = kit::scope("io.opentelemetry.batch", "2.16.0");
        let batch_id = rng.uuid();

        let chunks = if n > 1 {
            ((n - 1) as f64).sqrt().round().max(1.0) as usize
        } else {
            0
        };
        let items = n.saturating_sub(1 + chunks);
        let mut spans: Vec<Span> = Vec::with_capacity(n);
        let mut worker_free = [rng.range(100 * US, MS); WORKERS as usize];
        let mut item_idx = 1 + chunks;
        let mut chunk_spans = Vec::with_capacity(chunks);
        let mut item_spans = Vec::with_capacity(items);
        for c in 0..chunks {
            let w = c % WORKERS as usize;
            let c_start = worker_free[w];
            let mut t = c_start + rng.range(10 * US, 50 * US);
            let mine = items / chunks + usize::from(c < items % chunks);
            for k in 0..mine {
                let dur = rng.range(100 * US, MS);
                let db = k % 4 == 3;
                let (nm, kind) = if db {
                    ("INSERT batch.results", SpanKind::Client)
                } else {
                    ("process-item", SpanKind::Internal)
                };
                let mut sp = kit::span(item_idx, Some(1 + c), nm, kind, t, t + dur);
                if profile != SizeProfile::Minimal {
                    item_attrs(&mut rng, &mut sp, db, &batch_id, c, profile);
                }
                item_spans.push(sp);
                item_idx += 1;
                t += dur + rng.range(5 * US, 20 * US);
            }
            let c_end = t + rng.range(10 * US, 100 * US);
            worker_free[w] = c_end + rng.range(5 * US, 50 * US);
            let mut sp = kit::span(
                1 + c,
                Some(0),
                "process-chunk",
                SpanKind::Internal,
                c_start,
                c_end,
            );
            if profile != SizeProfile::Minimal {
                sp.attributes = vec![
                    s("batch.id", batch_id.clone()),
                    i("batch.chunk.index", c as i64),
                    i("batch.chunk.items", mine as i64),
                    s("thread.name", format!("batch-worker-{w}")),
                ];
            }
            chunk_spans.push(sp);
        }
        let end = worker_free.iter().copied().max().unwrap_or(MS) + rng.range(100 * US, MS);
        let mut root = kit::span(
            0,
            None,
            "POST /v1/batches/{id}/run",
            SpanKind::Server,
            0,
            end,
        );
        if profile != SizeProfile::Minimal {
            root.attributes = vec![
                s("http.request.method", "POST"),
                s("http.route", "/v1/batches/{id}/run"),
                s("url.path", format!("/v1/batches/{batch_id}/run")),
                i("http.response.status_code", 202),
                s("batch.id", batch_id.clone()),
                i("batch.items", items as i64),
            ];
        }
        spans.extend(chunk_spans);
        spans.extend(item_spans);
        spans.push(root);

        let total = spans.len();
        let mut it = spans.into_iter();
        let parts = (0..parts)
            .map(|p| {
                let take = total / parts + usize::from(p < total % parts);
                let chunk: Vec<Span> = it.by_ref().take(take).collect();
                let mut resource_spans = Vec::new();
                let mut rest = chunk.into_iter().peekable();
                while rest.peek().is_some() {
                    let mut g = Grouped::default();
                    for sp in rest.by_ref().take(ENTRY_SPANS) {
                        g.push(0, 0, sp);
                    }
                    resource_spans.extend(g.build(
                        std::slice::from_ref(&resource),
                        std::slice::from_ref(&scope),
                        kit::schema_url(profile),
                    ));
                }
                TemplatePart {
                    delay: if p >= parts - late {
                        late_delay
                    } else {
                        Duration::ZERO
                    },
                    resource_spans,
                }
            })
            .collect();
        TraceTemplate {
            parts,
            span_count: total,
        }
    }
}

fn item_attrs(
    rng: &mut Rng,
    sp: &mut Span,
    db: bool,
    batch_id: &str,
    chunk: usize,
    profile: SizeProfile,
) {
    let item = rng.range(1, 10_000_000);
    sp.attributes = vec![
        s("batch.id", batch_id),
        i("batch.chunk.index", chunk as i64),
        s("item.id", format!("item-{item:08}")),
        s(
            "item.sku",
            format!("SKU-{}-{}", rng.hex(4).to_uppercase(), rng.range(100, 999)),
        ),
        s(
            "item.status",
            if rng.chance(0.97) {
                "processed"
            } else {
                "skipped"
            },
        ),
        i("item.size_bytes", rng.range(200, 200_000) as i64),
        s(
            "thread.name",
            format!("batch-worker-{}", chunk % WORKERS as usize),
        ),
        s("code.function.name", "com.shop.batch.ItemProcessor.process"),
    ];
    if db {
        sp.attributes.extend([
            s("db.system", "postgresql"),
            s("db.namespace", "batch"),
            s("db.operation.name", "INSERT"),
            s(
                "db.statement",
                "INSERT INTO batch.results (item_id, status, checksum) VALUES ($1, $2, $3)",
            ),
        ]);
    } else {
        sp.attributes.extend([
            s("item.checksum", rng.hex(32)),
            i("item.attempt", 1),
            s(
                "item.category",
                ["books", "garden", "toys", "tools"][rng.below(4) as usize],
            ),
            s("item.warehouse", format!("wh-{}", rng.range(1, 40))),
        ]);
    }
    if profile == SizeProfile::Heavy {
        sp.attributes.extend([
            s(
                "code.file.path",
                "src/main/java/com/shop/batch/ItemProcessor.java",
            ),
            i("code.line.number", rng.range(40, 400) as i64),
            s("item.payload.digest", rng.hex(64)),
            s(
                "item.source.uri",
                format!("s3://shop-batch-input/{batch_id}/items/{item:08}.json"),
            ),
            s(
                "item.owner",
                format!("customer-{}", rng.range(1, 1_000_000)),
            ),
            i("jvm.thread.id", rng.range(20, 400) as i64),
            s(
                "item.trace.note",
                "re-queued after upstream timeout; original attempt recorded in audit log",
            ),
        ]);
        let (st, en) = (sp.start_time_unix_nano, sp.end_time_unix_nano);
        sp.events = vec![
            event(
                st + (en - st) / 4,
                "item.validated",
                vec![s("validator", "schema-v7"), i("rules.checked", 42)],
            ),
            event(
                st + (en - st) / 2,
                "item.transformed",
                vec![
                    s("transform", "normalise-prices"),
                    s("result.digest", rng.hex(40)),
                ],
            ),
        ];
    }
}
