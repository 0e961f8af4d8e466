//! Block write cost per span, one thread busy at a time: microservices traces (typical profile) encoded
//! into an rb2 block the way the backend writes a cut head block (a trace at a time into a
//! spool file), then four such blocks merged into one the way the compactor does (inputs
//! read a row group at a time, merged by trace id, the output encoded as it goes).
//!
//! `cargo bench -p loadgen --bench block_write` (`BLOCK_WRITE_TRACES`, default 40000, per
//! block; `BLOCK_WRITE_ROUNDS`, default 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use loadgen::block_size::{StoredTrace, corpus};
use loadgen::scenario::SizeProfile;
use reference_backend::block::{
    BlockFormat, BuildHints, EncodingSettings, SpoolDir, TraceRecord, build, rb2::Rb2,
};
use reference_backend::store::BlockStore;

/// The reference-backend binary's allocator, so the figures are what the process pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds of the whole process: the merge's decoding and encoding run on the
/// backend's compaction thread while this one waits, so one thread is busy at a time.
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based); after the comm they are 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Run `f` (which returns the size of the block it wrote) and print its wall and CPU time
/// and the block's size per span of `spans`.
fn measure(what: &str, spans: u64, f: impl FnOnce() -> u64) {
    let c0 = process_cpu();
    let t0 = Instant::now();
    let size = f();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu() - c0;
    let spans = spans as f64;
    println!(
        "{what}: {:.0} ms wall, {:.2} µs/span wall, {:.2} µs/span cpu, {:.1} B/span",
        wall * 1e3,
        wall * 1e6 / spans,
        cpu * 1e6 / spans,
        size as f64 / spans
    );
}

fn write_block(
    rt: &tokio::runtime::Runtime,
    format: &Rb2,
    store: &BlockStore,
    spool: &std::path::Path,
    traces: &[StoredTrace],
) -> reference_backend::block::BlockMeta {
    let id = uuid::Uuid::new_v4();
    let dir = SpoolDir::create(spool, id).unwrap();
    let hints = BuildHints {
        start_ns: traces.iter().map(|t| t.start_ns).min().unwrap_or(0),
        traces: traces.len(),
    };
    let mut b = format.builder("single-tenant", id, dir, hints).unwrap();
    for t in traces {
        b.push(&TraceRecord {
            id: t.id,
            data: &t.data,
            start_ns: t.start_ns,
            end_ns: t.end_ns,
            spans: t.spans,
        })
        .unwrap();
    }
    let built = b.finish().unwrap();
    rt.block_on(build::upload(store, built)).unwrap()
}

fn main() {
    let n: u64 = std::env::var("BLOCK_WRITE_TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let rounds: usize = std::env::var("BLOCK_WRITE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let all = corpus("microservices", SizeProfile::Typical, n * 4).unwrap();
    // Four blocks of interleaved ids, as four cut blocks of one window are.
    let mut parts: Vec<Vec<StoredTrace>> = (0..4).map(|_| Vec::new()).collect();
    for (i, t) in all.into_iter().enumerate() {
        parts[i % 4].push(t);
    }
    let spans: u64 = parts[0].iter().map(|t| u64::from(t.spans)).sum();
    let bytes: u64 = parts[0].iter().map(|t| t.data.len() as u64).sum();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let store = BlockStore::memory();
    let format = Rb2::new(EncodingSettings::default());
    println!(
        "block: {} traces, {spans} spans, {:.1} MB protobuf ({:.0} B/span)",
        parts[0].len(),
        bytes as f64 / 1e6,
        bytes as f64 / spans as f64
    );
    for _ in 0..rounds {
        measure("write one block", spans, || {
            write_block(&rt, &format, &store, &spool, &parts[0]).size
        });
    }
    let metas: Vec<_> = parts
        .iter()
        .map(|p| write_block(&rt, &format, &store, &spool, p))
        .collect();
    let in_spans: u64 = metas.iter().map(|m| m.total_spans).sum();
    for _ in 0..rounds {
        measure("merge four blocks", in_spans, || {
            rt.block_on(reference_backend::compactor::merge::merge_into(
                &store,
                &EncodingSettings::default(),
                &metas,
                &format,
                "single-tenant",
                uuid::Uuid::new_v4(),
                &spool,
            ))
            .unwrap()
            .meta
            .size
        });
    }
}
