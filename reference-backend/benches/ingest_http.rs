#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Acceptance figure: OTLP/HTTP protobuf ingest with WAL fsync, per backend core.
//!
//! The release backend runs as a child process pinned to CPU 0 (`taskset -c 0`, one tokio
//! worker); this process is the load client, pinned to CPU 1. The client posts 100-span
//! requests (10 traces × 10 typical spans, every trace id unique) over HTTP/1.1 keep-alive
//! with `INFLIGHT` requests outstanding, warms up, then measures a fixed window:
//! spans acknowledged per second, the backend's CPU seconds (utime + stime of every thread
//! from `/proc/<pid>/stat`, so the WAL writer, blocking pool and block flushes count),
//! spans per backend CPU-second, request latency, and WAL fsyncs from `/metrics`.
//! Blocks are cut during the run (1 s idle period, 10 s block age). After the window the
//! client stops and calls `/flush`; the "all-in" figure divides every acknowledged span by
//! the backend CPU from the first request to the end of that flush, so it includes writing
//! every span into a block exactly once. At the end a sample of acknowledged traces is read
//! back with `GET /api/traces/<id>`.
//!
//! The machine should be otherwise idle: the bench waits (up to `INGEST_QUIET_WAIT`
//! seconds, default 120) for a quiet machine and reports the CPU other processes used
//! during the window.
//!
//! `cargo bench -p reference-backend --bench ingest_http`
//! Environment: `INGEST_SECONDS` (window, default 15), `INGEST_WARMUP_SECONDS` (default 3),
//! `INGEST_INFLIGHT` (default 48), `INGEST_QUIET_WAIT` (default 120), `INGEST_PERF=FILE`
//! (record the backend with `perf record -g` over the window into FILE),
//! `REFERENCE_BACKEND_BIN` (measure another build of the backend).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{BackendProcess, Rng};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use parking_lot::Mutex;
use prost::Message;
use tempo_api::trace_id::{TraceId, trace_id_to_hex};

const TRACES_PER_REQUEST: usize = 10;
const SPANS_PER_TRACE: u32 = 10;
const SPANS_PER_REQUEST: u64 = TRACES_PER_REQUEST as u64 * SPANS_PER_TRACE as u64;
/// Distinct request bodies; trace ids are patched into them per request.
const TEMPLATES: usize = 64;
/// Marker the template trace ids start with, to find them in the encoding.
const MARKER: [u8; 8] = *b"\xfeTRACEID";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An encoded request whose trace ids can be rewritten in place.
struct Template {
    bytes: Vec<u8>,
    /// For each trace of the request, the offsets of its 16 id bytes (one per span).
    id_offsets: Vec<Vec<usize>>,
}

impl Template {
    fn new(rng: &mut Rng) -> Self {
        let ids: Vec<TraceId> = (0..TRACES_PER_REQUEST)
            .map(|k| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&MARKER);
                id[8..].copy_from_slice(&(k as u64).to_be_bytes());
                id
            })
            .collect();
        let bytes = common::typical_request(&ids, SPANS_PER_TRACE, rng).encode_to_vec();
        let mut id_offsets = vec![Vec::new(); TRACES_PER_REQUEST];
        let mut i = 0;
        while i + 16 <= bytes.len() {
            if bytes[i..i + 8] == MARKER {
                let k = u64::from_be_bytes(bytes[i + 8..i + 16].try_into().unwrap()) as usize;
                id_offsets[k].push(i);
                i += 16;
            } else {
                i += 1;
            }
        }
        for offs in &id_offsets {
            assert_eq!(offs.len(), SPANS_PER_TRACE as usize, "marker not unique");
        }
        Template { bytes, id_offsets }
    }

    /// The body of request `seq`, and its trace ids.
    fn build(&self, seq: u64) -> (Bytes, [TraceId; TRACES_PER_REQUEST]) {
        let mut body = self.bytes.clone();
        let mut ids = [[0u8; 16]; TRACES_PER_REQUEST];
        for (k, offs) in self.id_offsets.iter().enumerate() {
            let id = common::trace_id_of(seq * TRACES_PER_REQUEST as u64 + k as u64);
            for &o in offs {
                body[o..o + 16].copy_from_slice(&id);
            }
            ids[k] = id;
        }
        (Bytes::from(body), ids)
    }
}

#[derive(Default)]
struct Stats {
    /// Latencies of requests sent and answered inside the window.
    latencies: Vec<Duration>,
    /// Spans acknowledged by responses that arrived inside the window.
    spans: u64,
    requests: u64,
    /// Non-200 answers by status (whole run).
    errors: HashMap<u16, u64>,
    rejected_spans: u64,
    /// Every 100th acknowledged request's trace ids.
    sample: Vec<TraceId>,
    /// Acknowledged spans over the whole run.
    total_spans: u64,
}

struct Window {
    start: Instant,
    end: Instant,
}

fn config_yaml(dir: &std::path::Path) -> String {
    // Short idle and block periods so blocks are cut during the run; bounds out of the way.
    common::backend_yaml(
        dir,
        "trace_idle_period: 1s
  max_block_duration: 10s
  max_block_bytes: 500MiB
  flush_check_period: 1s
  max_live_bytes: 12GiB",
        "16GiB",
    )
}

async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

fn main() {
    if !common::running_as_bench() {
        println!("ingest_http: run with `cargo bench --bench ingest_http`; skipped");
        return;
    }
    let seconds = env_or("INGEST_SECONDS", 15);
    let warmup = env_or("INGEST_WARMUP_SECONDS", 3);
    let inflight = env_or("INGEST_INFLIGHT", 48) as usize;
    let quiet_wait = env_or("INGEST_QUIET_WAIT", 120);

    let dir = tempfile::tempdir().unwrap();
    let taskset = common::have_taskset();
    let backend = BackendProcess::start(
        dir.path(),
        &config_yaml(dir.path()),
        taskset.then_some("0"),
        &[("TOKIO_WORKER_THREADS", "1")],
    );
    let client_pinned = taskset && common::pin_self("1");
    let pid = backend.pid();

    let mut rng = Rng::new(7);
    let templates: Arc<Vec<Template>> =
        Arc::new((0..TEMPLATES).map(|_| Template::new(&mut rng)).collect());
    let body_bytes: usize =
        templates.iter().map(|t| t.bytes.len()).sum::<usize>() / templates.len();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(inflight)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ingest_url = format!("http://{}/v1/traces", backend.addrs.otlp_http);
    let api = format!("http://{}", backend.addrs.http);

    common::wait_for_quiet(0.35, Duration::from_secs(quiet_wait));
    let load_start_cpu = common::process_cpu(pid);
    let run_start = Instant::now();
    let window = Arc::new(Window {
        start: run_start + Duration::from_secs(warmup),
        end: run_start + Duration::from_secs(warmup + seconds),
    });
    let stats = Arc::new(Mutex::new(Stats::default()));
    let seq = Arc::new(AtomicU64::new(0));

    struct Sample {
        at: Instant,
        backend_cpu: f64,
        client_cpu: f64,
        busy: Vec<f64>,
        threads: Vec<(u32, String, f64)>,
        metrics: String,
    }
    let (before, after) = rt.block_on(async {
        let mut workers = Vec::new();
        for _ in 0..inflight {
            let (http, url, templates, stats, seq, window) = (
                http.clone(),
                ingest_url.clone(),
                templates.clone(),
                stats.clone(),
                seq.clone(),
                window.clone(),
            );
            workers.push(tokio::spawn(async move {
                while Instant::now() < window.end {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let (body, ids) = templates[n as usize % templates.len()].build(n);
                    let sent = Instant::now();
                    let resp = http
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await;
                    let (status, bytes) = match resp {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            (s, r.bytes().await.unwrap_or_default())
                        }
                        Err(_) => (0, Bytes::new()),
                    };
                    let done = Instant::now();
                    if status != 200 {
                        *stats.lock().errors.entry(status).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    let mut st = stats.lock();
                    let rejected = ExportTraceServiceResponse::decode(bytes.as_ref())
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map_or(0, |p| p.rejected_spans as u64);
                    let accepted = SPANS_PER_REQUEST - rejected;
                    st.rejected_spans += rejected;
                    st.total_spans += accepted;
                    if rejected == 0 && n % 100 == 0 {
                        st.sample.push(ids[(n / 100) as usize % TRACES_PER_REQUEST]);
                    }
                    if done >= window.start && done < window.end {
                        st.spans += accepted;
                        st.requests += 1;
                        if sent >= window.start {
                            st.latencies.push(done - sent);
                        }
                    }
                }
            }));
        }
        let sample = || async {
            Sample {
                at: Instant::now(),
                backend_cpu: common::process_cpu(pid),
                client_cpu: common::process_cpu(std::process::id()),
                busy: common::cpu_busy(),
                threads: common::thread_cpu(pid),
                metrics: get_text(&http, &format!("{api}/metrics")).await,
            }
        };
        tokio::time::sleep_until(window.start.into()).await;
        let perf = std::env::var("INGEST_PERF").ok().map(|out| {
            std::process::Command::new("perf")
                .args([
                    "record",
                    "-F",
                    "999",
                    "-g",
                    "-o",
                    &out,
                    "-p",
                    &pid.to_string(),
                ])
                .args(["--", "sleep", &seconds.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start perf")
        });
        let before = sample().await;
        tokio::time::sleep_until(window.end.into()).await;
        let after = sample().await;
        if let Some(mut p) = perf {
            let _ = p.wait();
        }
        for w in workers {
            w.await.unwrap();
        }
        (before, after)
    });
    // Write everything still in memory into blocks, for the all-in figure.
    let flush_started = Instant::now();
    let flush_status = rt.block_on(async {
        http.post(format!("{api}/flush"))
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    });
    let flush_took = flush_started.elapsed();
    let all_in_cpu = common::process_cpu(pid) - load_start_cpu;
    let final_metrics = rt.block_on(get_text(&http, &format!("{api}/metrics")));

    let elapsed = (after.at - before.at).as_secs_f64();
    let backend_cpu = after.backend_cpu - before.backend_cpu;
    let client_cpu = after.client_cpu - before.client_cpu;
    let m = |s: &Sample, name: &str| common::metric(&s.metrics, name);
    let fsyncs = m(&after, "reference_backend_wal_fsyncs_total")
        - m(&before, "reference_backend_wal_fsyncs_total");
    let records = m(&after, "reference_backend_wal_records_total")
        - m(&before, "reference_backend_wal_records_total");
    let fsync_secs = m(&after, "reference_backend_wal_fsync_seconds_sum")
        - m(&before, "reference_backend_wal_fsync_seconds_sum");
    let blocks = common::metric(&final_metrics, "reference_backend_blocks_flushed_total");
    let blocks_in_window = blocks - m(&before, "reference_backend_blocks_flushed_total");

    let mut st = std::mem::take(&mut *stats.lock());
    st.latencies.sort_unstable();
    let spans_per_s = st.spans as f64 / elapsed;
    let per_cpu = st.spans as f64 / backend_cpu.max(1e-9);
    let all_in = st.total_spans as f64 / all_in_cpu.max(1e-9);
    let busy = |s: &Sample| -> (f64, f64) {
        (
            s.busy.iter().sum::<f64>(),
            s.busy.first().copied().unwrap_or(0.0),
        )
    };
    let (busy_all, busy_cpu0) = (
        busy(&after).0 - busy(&before).0,
        busy(&after).1 - busy(&before).1,
    );
    let other = (busy_all - backend_cpu - client_cpu).max(0.0);
    let other_cpu0 = (busy_cpu0 - backend_cpu).max(0.0);

    // Read back a sample of acknowledged traces.
    let (checked, found) = rt.block_on(async {
        let step = (st.sample.len() / 200).max(1);
        let mut checked = 0;
        let mut found = 0;
        for id in st.sample.iter().step_by(step) {
            let r = http
                .get(format!("{api}/api/traces/{}", trace_id_to_hex(id)))
                .send()
                .await
                .unwrap();
            checked += 1;
            if r.status().as_u16() == 200 {
                found += 1;
            }
        }
        (checked, found)
    });

    println!();
    println!("## OTLP/HTTP protobuf ingest, WAL fsync, backend pinned to one core");
    println!();
    println!(
        "backend pinned to CPU 0: {taskset}; client pinned to CPU 1: {client_pinned}; \
         {inflight} requests in flight; {SPANS_PER_REQUEST} spans/request \
         ({TRACES_PER_REQUEST} traces x {SPANS_PER_TRACE} spans), ~{body_bytes} bytes/request \
         ({:.0} bytes/span); window {elapsed:.1} s after {warmup} s warm-up",
        body_bytes as f64 / SPANS_PER_REQUEST as f64
    );
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!("| spans accepted / s (wall) | {spans_per_s:.0} |");
    println!("| requests / s | {:.0} |", st.requests as f64 / elapsed);
    println!(
        "| ingest MB/s (protobuf) | {:.1} |",
        st.requests as f64 * body_bytes as f64 / elapsed / 1e6
    );
    println!("| backend CPU seconds (utime+stime) | {backend_cpu:.2} |");
    println!(
        "| backend CPU utilisation | {:.0} % of one core |",
        backend_cpu / elapsed * 100.0
    );
    println!("| spans per backend CPU-second (window) | {per_cpu:.0} |");
    println!(
        "| **spans per backend CPU-second, all-in** (whole run + final /flush: {:.1} M spans / {all_in_cpu:.2} CPU-s) | **{all_in:.0}** |",
        st.total_spans as f64 / 1e6
    );
    println!(
        "| request latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        common::pct_ms(&st.latencies, 50.0),
        common::pct_ms(&st.latencies, 99.0),
        common::pct_ms(&st.latencies, 100.0)
    );
    println!(
        "| WAL fsyncs (window) | {fsyncs:.0} ({:.0}/s, {:.1} requests per fsync, mean fsync {:.2} ms) |",
        fsyncs / elapsed,
        records / fsyncs.max(1.0),
        fsync_secs / fsyncs.max(1.0) * 1e3
    );
    println!(
        "| blocks flushed (window / run incl. final /flush) | {blocks_in_window:.0} / {blocks:.0} (final /flush {flush_status} in {:.1} s) |",
        flush_took.as_secs_f64()
    );
    println!(
        "| client CPU seconds | {client_cpu:.2} ({:.0} % of one core) |",
        client_cpu / elapsed * 100.0
    );
    println!(
        "| rejected spans / non-200 answers | {} / {:?} |",
        st.rejected_spans, st.errors
    );
    println!("| acknowledged traces read back | {found} / {checked} |");
    println!(
        "| other processes' CPU during the window | {other:.2} CPU-s ({other_cpu0:.2} on CPU 0) |"
    );
    println!();
    if other > 0.05 * elapsed || other_cpu0 > 0.03 * elapsed {
        println!(
            "WARNING: other processes used {other:.2} CPU-s ({other_cpu0:.2} on the backend's CPU) during the window; figures are disturbed"
        );
    }

    // Where the backend's CPU went, by thread (threads alive at the end).
    let before_t: HashMap<u32, f64> = before.threads.iter().map(|t| (t.0, t.2)).collect();
    let mut by_name: HashMap<String, (usize, f64)> = HashMap::new();
    for (tid, name, s) in &after.threads {
        let d = s - before_t.get(tid).copied().unwrap_or(0.0);
        let e = by_name.entry(name.clone()).or_default();
        e.0 += 1;
        e.1 += d;
    }
    let mut rows: Vec<_> = by_name.into_iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    println!("backend CPU by thread name over the window (live threads):");
    for (name, (n, s)) in rows {
        println!("  {name:<20} x{n:<3} {s:>6.2} s");
    }
    println!();

    let target = 200_000.0;
    if all_in < target || per_cpu < target {
        println!(
            "TARGET MISSED: {all_in:.0} (all-in) / {per_cpu:.0} (window) spans per backend CPU-second, target {target:.0}"
        );
    } else {
        println!(
            "target met: {all_in:.0} (all-in) / {per_cpu:.0} (window) spans per backend CPU-second >= {target:.0}"
        );
    }
    assert!(
        found == checked && checked > 0,
        "acknowledged traces missing: {found}/{checked}\n{}",
        backend.log_tail()
    );
    drop(backend);
}
