#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Component benchmarks of the write and read paths:
//!
//! * `otlp_split` — split one 100-span OTLP protobuf request (10 traces × 10 typical
//!   ~400-byte spans) the way ingest does (`wire_split`: framing decoded, spans validated
//!   and copied as bytes), and the decoding split used for OTLP/JSON bodies;
//! * `wal_append` — WAL append with fdatasync: one append at a time, and 32 concurrent
//!   appends sharing group commits; each append is the fragments of one 100-span request;
//! * `rb1_encode` — `rb1::encode` of a 10,000-trace block (1-span and 10-span traces);
//! * `rb1_find_trace` — `BlockReader::find_trace` on a 100,000-trace block stored on the
//!   local backend (present ids, and absent ids that the bloom filter answers).
//!
//! `cargo bench -p reference-backend --bench components` (each group waits up to a minute
//! for an otherwise idle machine first).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Rng;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use reference_backend::block::rb1::{self, Rb1};
use reference_backend::block::{BlockFormat, BlockInput, EncodingSettings, TraceRecord};
use reference_backend::config::{Backend, LocalConfig, TraceStorageConfig};
use reference_backend::ingest::batch::{self, Fragment};
use reference_backend::ingest::wire_split;
use reference_backend::metrics::Metrics;
use reference_backend::store::BlockStore;
use reference_backend::wal::Wal;
use tempo_api::trace_id::TraceId;
use uuid::Uuid;

const MAX_ATTR: usize = 2048;
/// Each group first waits this long at most for other processes to go quiet.
const QUIET_WAIT: Duration = Duration::from_secs(60);

/// Encoded 100-span request: 10 traces of 10 spans.
fn request_bytes(rng: &mut Rng) -> Bytes {
    let ids: Vec<TraceId> = (0..10).map(|_| rng.trace_id()).collect();
    Bytes::from(common::typical_request(&ids, 10, rng).encode_to_vec())
}

fn fragments(rng: &mut Rng) -> Vec<Fragment> {
    let req = batch::decode_protobuf(&request_bytes(rng)).unwrap();
    batch::split(req, MAX_ATTR).unwrap().fragments
}

fn otlp_split(c: &mut Criterion) {
    common::wait_for_quiet(0.35, QUIET_WAIT);
    let mut rng = Rng::new(1);
    let body = request_bytes(&mut rng);
    eprintln!(
        "otlp_split input: {} bytes, {:.0} bytes/span",
        body.len(),
        body.len() as f64 / 100.0
    );
    let mut g = c.benchmark_group("otlp_split");
    g.throughput(Throughput::Elements(100));
    g.sample_size(50).measurement_time(Duration::from_secs(5));
    // The ingest path: framing decoded, spans validated by the walker and copied as bytes.
    g.bench_function("wire_split_100_spans", |b| {
        b.iter(|| {
            let (_, r) = wire_split::split_protobuf(black_box(body.clone()), MAX_ATTR).unwrap();
            black_box(r.unwrap())
        })
    });
    // The decoding path (used for OTLP/JSON bodies, and before the wire split existed).
    g.bench_function("decode_validate_split_100_spans", |b| {
        b.iter(|| {
            let req = batch::decode_protobuf(black_box(&body)).unwrap();
            black_box(batch::split(req, MAX_ATTR).unwrap())
        })
    });
    let reference = batch::split(batch::decode_protobuf(&body).unwrap(), MAX_ATTR).unwrap();
    let (_, wire) = wire_split::split_protobuf(body.clone(), MAX_ATTR).unwrap();
    assert_eq!(
        wire.unwrap().fragments,
        reference.fragments,
        "same fragments"
    );
    g.finish();
}

fn wal_append(c: &mut Criterion) {
    common::wait_for_quiet(0.35, QUIET_WAIT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let (wal, _) = Wal::open(dir.path(), metrics.clone()).unwrap();
    let wal = Arc::new(wal);
    let mut rng = Rng::new(2);
    let frags = Arc::new(fragments(&mut rng));
    let record_bytes: usize = frags.iter().map(|f| f.bytes.len() + 40).sum();
    eprintln!(
        "wal_append record: {} fragments, {record_bytes} bytes",
        frags.len()
    );
    // Keep the temp dir small: drop closed segments between samples (not timed).
    let trim = |wal: &Wal, rt: &tokio::runtime::Runtime| {
        let next = rt.block_on(wal.rotate()).unwrap();
        wal.delete_below(next).unwrap();
    };

    let mut g = c.benchmark_group("wal_append");
    g.sample_size(10).measurement_time(Duration::from_secs(8));

    g.throughput(Throughput::Elements(100));
    let fsyncs0 = metrics.wal_fsyncs.get();
    let mut appends = 0u64;
    g.bench_function("sequential_100_spans", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    wal.append("single-tenant", &frags).await.unwrap();
                }
            });
            let took = start.elapsed();
            appends += iters;
            trim(&wal, &rt);
            took
        })
    });
    let seq_fsyncs = metrics.wal_fsyncs.get() - fsyncs0;

    const CONCURRENT: u64 = 32;
    g.throughput(Throughput::Elements(100 * CONCURRENT));
    let fsyncs1 = metrics.wal_fsyncs.get();
    let mut rounds = 0u64;
    g.bench_function("concurrent_32x100_spans", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..CONCURRENT)
                        .map(|_| {
                            let (wal, frags) = (wal.clone(), frags.clone());
                            tokio::spawn(async move {
                                wal.append("single-tenant", &frags).await.unwrap()
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
            });
            let took = start.elapsed();
            rounds += iters;
            trim(&wal, &rt);
            took
        })
    });
    let conc_fsyncs = metrics.wal_fsyncs.get() - fsyncs1;
    g.finish();
    // Rotations add one fsync each; the ratio still shows how appends share fsyncs.
    eprintln!(
        "wal_append: sequential {appends} appends / {seq_fsyncs} fsyncs; \
         concurrent {} appends / {conc_fsyncs} fsyncs ({:.1} appends per fsync)",
        rounds * CONCURRENT,
        (rounds * CONCURRENT) as f64 / conc_fsyncs.max(1) as f64
    );
}

/// `count` traces of `spans` spans each, sorted by id, as block input.
struct Traces {
    items: Vec<(TraceId, Vec<u8>, u32)>,
}

impl Traces {
    fn new(count: usize, spans: u32, rng: &mut Rng) -> Self {
        let mut items = Vec::with_capacity(count);
        let per_request = (100 / spans as usize).max(1);
        while items.len() < count {
            let n = per_request.min(count - items.len());
            let ids: Vec<TraceId> = (0..n).map(|_| rng.trace_id()).collect();
            let req = if spans == 1 {
                common::go_example_request(&ids, rng)
            } else {
                common::typical_request(&ids, spans, rng)
            };
            for f in batch::split(req, MAX_ATTR).unwrap().fragments {
                items.push((f.trace_id, f.bytes, f.spans));
            }
        }
        items.sort_unstable_by_key(|t| t.0);
        items.dedup_by(|a, b| a.0 == b.0);
        Traces { items }
    }

    fn records(&self) -> Vec<TraceRecord<'_>> {
        self.items
            .iter()
            .map(|(id, data, spans)| TraceRecord {
                id: *id,
                data,
                start_ns: 1,
                end_ns: 2,
                spans: *spans,
            })
            .collect()
    }

    fn bytes(&self) -> usize {
        self.items.iter().map(|t| t.1.len()).sum()
    }
}

fn rb1_encode(c: &mut Criterion) {
    common::wait_for_quiet(0.35, QUIET_WAIT);
    let settings = EncodingSettings::default();
    let mut g = c.benchmark_group("rb1_encode");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(10_000));
    let mut rng = Rng::new(3);
    for spans in [1u32, 10] {
        let traces = Traces::new(10_000, spans, &mut rng);
        let records = traces.records();
        let input = BlockInput {
            tenant: "single-tenant",
            block_id: Uuid::new_v4(),
            traces: &records,
        };
        let out = rb1::encode(&input, &settings).unwrap();
        eprintln!(
            "rb1_encode {spans}-span traces: {} traces, {:.1} MB raw -> {:.1} MB data, {} pages, {} bloom shards",
            records.len(),
            traces.bytes() as f64 / 1e6,
            out.data.len() as f64 / 1e6,
            out.pages.len(),
            out.blooms.len()
        );
        g.bench_function(format!("10k_traces_x{spans}_span"), |b| {
            b.iter(|| black_box(rb1::encode(black_box(&input), &settings).unwrap()))
        });
    }
    g.finish();
}

fn rb1_find_trace(c: &mut Criterion) {
    common::wait_for_quiet(0.35, QUIET_WAIT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = TraceStorageConfig {
        backend: Backend::Local,
        local: LocalConfig {
            path: dir.path().join("blocks"),
        },
        ..Default::default()
    };
    let store = BlockStore::from_config(&cfg).unwrap();
    let format = Rb1::new(EncodingSettings::default());
    let mut rng = Rng::new(4);
    let traces = Traces::new(100_000, 1, &mut rng);
    let records = traces.records();
    let built = Instant::now();
    let meta = rt
        .block_on(format.write(
            &store,
            BlockInput {
                tenant: "single-tenant",
                block_id: Uuid::new_v4(),
                traces: &records,
            },
        ))
        .unwrap();
    let reader = rt.block_on(format.open(&store, &meta)).unwrap();
    eprintln!(
        "rb1_find_trace block: {} traces, {:.1} MB data, {} bloom shards (built in {:.1?})",
        meta.total_objects,
        meta.size as f64 / 1e6,
        meta.bloom_shards,
        built.elapsed()
    );
    // Lookup order: a fixed random permutation of the stored ids.
    let mut ids: Vec<TraceId> = traces.items.iter().map(|t| t.0).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let absent: Vec<TraceId> = (0..10_000).map(|_| rng.trace_id()).collect();

    let mut g = c.benchmark_group("rb1_find_trace");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    g.bench_function("present_id_100k_trace_block", |b| {
        b.iter(|| {
            let id = ids[next % ids.len()];
            next += 1;
            let found = rt.block_on(reader.find_trace(&id)).unwrap();
            assert!(found.is_some());
            black_box(found)
        })
    });
    let mut next = 0usize;
    g.bench_function("absent_id_100k_trace_block", |b| {
        b.iter(|| {
            let id = absent[next % absent.len()];
            next += 1;
            black_box(rt.block_on(reader.find_trace(&id)).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, otlp_split, wal_append, rb1_encode, rb1_find_trace);
criterion_main!(benches);
