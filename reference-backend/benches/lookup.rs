#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Acceptance figure: trace by id from blocks (release 3: rb2), p99 with 100,000 traces
//! stored locally.
//!
//! Starts the release backend as a child process (local block store in a temp dir),
//! ingests 100,000 go-example traces (one span with an event) over OTLP/HTTP in `BLOCKS`
//! rounds with a `/flush` after each, so every trace sits in one of `BLOCKS` rb2 blocks and
//! nothing is held in memory. Then issues random `GET /api/traces/<id>` (v1 JSON) one at a
//! time and reports latency percentiles; also misses (ids never stored). Then lets the
//! compactor merge the blocks into one (the steady state of a long-running backend) and
//! measures again.
//!
//! `cargo bench -p reference-backend --bench lookup`
//! Environment: `LOOKUP_TRACES` (default 100000), `LOOKUP_BLOCKS` (default 5),
//! `LOOKUP_QUERIES` (default 2000), `LOOKUP_QUIET_WAIT` (seconds to wait for an idle
//! machine before measuring, default 120), `LOOKUP_ROW_GROUP` (rb2 row group target,
//! default the backend's).

mod common;

use std::time::{Duration, Instant};

use common::{BackendProcess, Rng};
use prost::Message;
use tempo_api::trace_id::{TraceId, trace_id_to_hex};

const TRACES_PER_REQUEST: u64 = 100;
const WARMUP_QUERIES: usize = 100;
const MISS_QUERIES: usize = 500;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config_yaml(dir: &std::path::Path) -> String {
    // Nothing is cut on its own: the bench decides when blocks are written (/flush). The
    // compactor stays idle until the bench has measured the flushed blocks.
    let mut yaml = common::backend_yaml(
        dir,
        "trace_idle_period: 30s
  max_block_duration: 1h
  max_block_bytes: 1GiB
  flush_check_period: 1s
  max_live_bytes: 4GiB",
        "4GiB",
    );
    yaml.push_str(&format!(
        "compactor:\n  compaction:\n    compaction_cycle: {COMPACTION_CYCLE_S}s\n    merge_open_windows: true\n"
    ));
    if let Ok(size) = std::env::var("LOOKUP_ROW_GROUP") {
        yaml = yaml.replace(
            "    wal:\n",
            &format!("    block:\n      parquet_row_group_size_bytes: {size}\n    wal:\n"),
        );
    }
    yaml
}

/// The compactor's cycle: long enough that the flushed blocks are measured first.
const COMPACTION_CYCLE_S: u64 = 60;

struct Summary {
    sorted: Vec<Duration>,
}

impl Summary {
    fn new(mut v: Vec<Duration>) -> Self {
        v.sort_unstable();
        Summary { sorted: v }
    }
    fn p(&self, p: f64) -> f64 {
        common::pct_ms(&self.sorted, p)
    }
    fn mean(&self) -> f64 {
        self.sorted.iter().map(Duration::as_secs_f64).sum::<f64>() / self.sorted.len() as f64 * 1e3
    }
}

fn main() {
    if !common::running_as_bench() {
        println!("lookup: run with `cargo bench --bench lookup`; skipped");
        return;
    }
    let traces = env_or("LOOKUP_TRACES", 100_000);
    let blocks = env_or("LOOKUP_BLOCKS", 5).max(1);
    let queries = env_or("LOOKUP_QUERIES", 2000) as usize;

    let dir = tempfile::tempdir().unwrap();
    let backend = BackendProcess::start(dir.path(), &config_yaml(dir.path()), None, &[]);
    let ingest_url = format!("http://{}/v1/traces", backend.addrs.otlp_http);
    let api = format!("http://{}", backend.addrs.http);
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // Ingest in `blocks` rounds, flushing after each round.
    let started = Instant::now();
    let per_block = traces.div_ceil(blocks);
    let mut stored: Vec<TraceId> = Vec::with_capacity(traces as usize);
    let mut bytes_sent = 0usize;
    for b in 0..blocks {
        let first = b * per_block;
        let last = ((b + 1) * per_block).min(traces);
        let bodies: Vec<(Vec<TraceId>, Vec<u8>)> = (first..last)
            .step_by(TRACES_PER_REQUEST as usize)
            .map(|start| {
                let ids: Vec<TraceId> = (start..(start + TRACES_PER_REQUEST).min(last))
                    .map(common::trace_id_of)
                    .collect();
                let mut rng = Rng::new(start);
                let body = common::go_example_request(&ids, &mut rng).encode_to_vec();
                (ids, body)
            })
            .collect();
        std::thread::scope(|s| {
            for chunk in bodies.chunks(bodies.len().div_ceil(8)) {
                let (http, url) = (&http, &ingest_url);
                s.spawn(move || {
                    for (_, body) in chunk {
                        let r = http
                            .post(url)
                            .header("content-type", "application/x-protobuf")
                            .body(body.clone())
                            .send()
                            .unwrap();
                        assert_eq!(r.status().as_u16(), 200, "ingest failed");
                    }
                });
            }
        });
        for (ids, body) in bodies {
            stored.extend(ids);
            bytes_sent += body.len();
        }
        let r = http.post(format!("{api}/flush")).send().unwrap();
        assert_eq!(
            r.status().as_u16(),
            204,
            "flush failed: {}",
            backend.log_tail()
        );
    }
    let ingest_took = started.elapsed();
    let metrics = http
        .get(format!("{api}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let flushed = common::metric(&metrics, "reference_backend_blocks_flushed_total");
    let memory = common::metric(&metrics, "reference_backend_memory_bytes");
    let block_bytes: u64 = walk_size(&dir.path().join("blocks"));

    let get = |id: &TraceId| -> (u16, usize, Duration) {
        let t = Instant::now();
        let r = http
            .get(format!("{api}/api/traces/{}", trace_id_to_hex(id)))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let len = r.bytes().unwrap().len();
        (status, len, t.elapsed())
    };
    let live_blocks = || {
        let text = http
            .get(format!("{api}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        common::metric(&text, "reference_backend_blocks") as u64
    };

    println!();
    println!("## Trace by id from rb2 blocks (release 3, local backend)");
    println!();
    println!(
        "{} go-example traces ({:.0} bytes/request of {TRACES_PER_REQUEST} spans) ingested in {:.1?} \
         in {blocks} rounds + /flush; {flushed:.0} blocks, {:.1} MB on disk; memory held after flush {memory:.0} bytes",
        stored.len(),
        bytes_sent as f64 / (stored.len() as f64 / TRACES_PER_REQUEST as f64),
        ingest_took,
        block_bytes as f64 / 1e6
    );
    assert_eq!(flushed as u64, blocks, "expected {blocks} flushed blocks");
    let flushed_p99 = measure(
        &format!("{blocks} flushed blocks"),
        backend.pid(),
        &stored,
        &get,
        queries,
    );
    assert_eq!(
        live_blocks(),
        blocks,
        "the compactor ran during the first measurement; the machine was too slow for a \
         {COMPACTION_CYCLE_S}s cycle"
    );

    // Steady state: the compactor merges the flushed blocks into one.
    let waited = Instant::now();
    while live_blocks() != 1 {
        assert!(
            waited.elapsed() < Duration::from_secs(3 * COMPACTION_CYCLE_S),
            "the compactor did not merge the blocks: {}",
            backend.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let merged_bytes: u64 = walk_size(&dir.path().join("blocks"));
    let compacted_p99 = measure(
        &format!(
            "1 block after compaction ({:.1} MB in the bucket, inputs included until their grace ends)",
            merged_bytes as f64 / 1e6
        ),
        backend.pid(),
        &stored,
        &get,
        queries,
    );
    println!(
        "backend CPU seconds over the whole run: {:.2}",
        common::process_cpu(backend.pid())
    );
    let p99 = flushed_p99.max(compacted_p99);
    if p99 > 10.0 {
        println!("TARGET MISSED: p99 {p99:.2} ms > 10 ms");
    } else {
        println!("target met: p99 {p99:.2} ms <= 10 ms (worst of both states)");
    }
}

/// Warm up, then `queries` lookups of stored ids and some of unknown ids; prints a table
/// titled `state` and returns the stored-id p99 (ms).
fn measure(
    state: &str,
    backend_pid: u32,
    stored: &[TraceId],
    get: &impl Fn(&TraceId) -> (u16, usize, Duration),
    queries: usize,
) -> f64 {
    let mut rng = Rng::new(99);
    let mut pick = || stored[rng.below(stored.len() as u64) as usize];
    // The first lookup opens every block's reader (index and bloom filters).
    let (status, _, cold) = get(&pick());
    assert_eq!(status, 200);
    for _ in 0..WARMUP_QUERIES {
        assert_eq!(get(&pick()).0, 200);
    }
    common::wait_for_quiet(0.35, Duration::from_secs(env_or("LOOKUP_QUIET_WAIT", 120)));
    let busy0: f64 = common::cpu_busy().iter().sum();
    let ours = || common::process_cpu(backend_pid) + common::process_cpu(std::process::id());
    let ours0 = ours();
    let mut hits = Vec::with_capacity(queries);
    let mut body_bytes = 0usize;
    let measured = Instant::now();
    for _ in 0..queries {
        let (status, len, took) = get(&pick());
        assert_eq!(status, 200, "stored trace not found");
        body_bytes += len;
        hits.push(took);
    }
    let measured = measured.elapsed();
    // CPU used by anything but this process and the backend.
    let other = (common::cpu_busy().iter().sum::<f64>() - busy0 - (ours() - ours0)).max(0.0);
    let mut miss_rng = Rng::new(1234);
    let mut misses = Vec::with_capacity(MISS_QUERIES);
    for _ in 0..MISS_QUERIES {
        let (status, _, took) = get(&miss_rng.trace_id());
        assert_eq!(status, 404);
        misses.push(took);
    }
    let hits = Summary::new(hits);
    let misses = Summary::new(misses);
    println!();
    println!("### {state}");
    println!();
    println!(
        "{queries} sequential random GET /api/traces/<id> (v1 JSON, {:.0} bytes/answer) after {WARMUP_QUERIES} warm-up; {:.0} lookups/s",
        body_bytes as f64 / queries as f64,
        queries as f64 / measured.as_secs_f64()
    );
    println!();
    println!("| lookup | p50 | p90 | p99 | max | mean |");
    println!("|---|---|---|---|---|---|");
    for (name, s) in [("stored id (200)", &hits), ("unknown id (404)", &misses)] {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            s.p(50.0),
            s.p(90.0),
            s.p(99.0),
            s.p(100.0),
            s.mean()
        );
    }
    println!(
        "| first lookup (opens the block readers) | {:.2} ms | | | | |",
        cold.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "other processes' CPU during the stored-id queries: {other:.2} s over {:.1} s",
        measured.as_secs_f64()
    );
    if other > 0.05 * measured.as_secs_f64() {
        println!("WARNING: other processes were busy during the queries; latencies are disturbed");
    }
    hits.p(99.0)
}

fn walk_size(p: &std::path::Path) -> u64 {
    let Ok(md) = std::fs::metadata(p) else {
        return 0;
    };
    if md.is_file() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| walk_size(&e.path())).sum())
        .unwrap_or(0)
}
