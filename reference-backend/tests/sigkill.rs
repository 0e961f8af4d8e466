#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]
//! Durability acceptance test with a real process: clients export continuously over
//! OTLP/HTTP, the backend is SIGKILLed with requests in flight (after one `/flush`, so part
//! of the data is in blocks and part only in the WAL, and with a second `/flush` racing the
//! kill), then restarted on the same directories. Every request that was answered 200 must
//! be readable with all its spans. Three rounds, each killing the restarted process.

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use parking_lot::Mutex;
use prost::Message;
use reference_backend::ListenAddrs;
use tempo_api::TempoClient;

const SPANS_PER_REQUEST: u8 = 20;
const CLIENTS: usize = 4;

/// Fail instead of hanging.
async fn bounded<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?}"))
}

/// The child process; killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// nothing running.
struct ChildGuard {
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// SIGKILL and reap; the signal that ended the process (`None` if it had exited).
    fn kill(&mut self) -> Option<i32> {
        let _ = self.child.kill();
        self.child.wait().ok().and_then(|s| s.signal())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn write_config(dir: &Path) -> PathBuf {
    let quoted = |p: PathBuf| serde_json::to_string(&p.to_str().unwrap()).unwrap();
    let yaml = format!(
        "server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:0
        http:
          endpoint: 127.0.0.1:0
live_store:
  flush_check_period: 100ms
storage:
  trace:
    backend: local
    blocklist_poll: 200ms
    local:
      path: {}
    wal:
      path: {}
",
        quoted(dir.join("blocks")),
        quoted(dir.join("wal")),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Spawn the binary, wait for its listen report and for `/ready`.
async fn spawn_backend(dir: &Path, config: &Path, run: &str) -> (ChildGuard, ListenAddrs) {
    let report = dir.join(format!("listen-{run}.json"));
    let log = dir.join(format!("{run}.log"));
    let out = File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_reference-backend"))
        .arg("--config")
        .arg(config)
        .arg("--listen-report")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn reference-backend");
    let mut guard = ChildGuard { child, log };

    let deadline = Instant::now() + Duration::from_secs(60);
    let addrs: ListenAddrs = loop {
        if let Ok(text) = std::fs::read(&report) {
            break serde_json::from_slice(&text).expect("listen report is JSON");
        }
        if let Some(status) = guard.child.try_wait().unwrap() {
            panic!("{run}: backend exited with {status}:\n{}", guard.log_tail());
        }
        assert!(
            Instant::now() < deadline,
            "{run}: no listen report after 60 s:\n{}",
            guard.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(addrs.http.ip().is_loopback() && addrs.otlp_http.ip().is_loopback());

    let client = TempoClient::new(&format!("http://{}", addrs.http))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if matches!(client.ready().await, Ok(true)) {
            break;
        }
        if let Some(status) = guard.child.try_wait().unwrap() {
            panic!("{run}: backend exited with {status}:\n{}", guard.log_tail());
        }
        assert!(
            Instant::now() < deadline,
            "{run}: not ready after 120 s:\n{}",
            guard.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (guard, addrs)
}

/// What the exporting clients saw.
#[derive(Default)]
struct Exports {
    /// Trace numbers of requests answered 200 without rejected spans.
    acked: Mutex<Vec<u64>>,
    /// Requests sent (trace numbers are 1..=sent).
    sent: AtomicU64,
    /// Requests sent and not answered yet.
    in_flight: AtomicUsize,
    /// Set just before the kill: failures from then on are expected.
    killing: AtomicBool,
    /// Tells the clients to stop.
    stop: AtomicBool,
    /// Unexpected answers before the kill (non-200, partial success, transport error).
    unexpected: Mutex<Vec<String>>,
    /// Requests that failed after the kill (expected).
    failed_after_kill: AtomicUsize,
}

impl Exports {
    fn acked(&self) -> usize {
        self.acked.lock().len()
    }
}

/// Export one trace of `SPANS_PER_REQUEST` spans per request until told to stop.
async fn exporter(url: String, exports: Arc<Exports>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    while !exports.stop.load(Ordering::Acquire) {
        let n = exports.sent.fetch_add(1, Ordering::AcqRel) + 1;
        let body = common::request("sigkill", n, 1, SPANS_PER_REQUEST).encode_to_vec();
        exports.in_flight.fetch_add(1, Ordering::AcqRel);
        let result = async {
            let resp = http
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
            if status != 200 {
                return Err(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            let decoded = ExportTraceServiceResponse::decode(bytes.as_ref())
                .map_err(|e| format!("response does not decode: {e}"))?;
            match decoded.partial_success {
                Some(p) if p.rejected_spans > 0 => Err(format!(
                    "partial success: {} rejected: {}",
                    p.rejected_spans, p.error_message
                )),
                _ => Ok(()),
            }
        }
        .await;
        exports.in_flight.fetch_sub(1, Ordering::AcqRel);
        match result {
            Ok(()) => exports.acked.lock().push(n),
            Err(_) if exports.killing.load(Ordering::Acquire) => {
                exports.failed_after_kill.fetch_add(1, Ordering::AcqRel);
                // The server is gone; don't spin on connection refused.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                exports.unexpected.lock().push(format!("trace {n}: {e}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn wait_acked(exports: &Exports, at_least: usize, what: &str) {
    bounded(what, Duration::from_secs(120), async {
        while exports.acked() < at_least {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn flush(http: SocketAddr) -> u16 {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .get(format!("http://{http}/flush"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A trace read back: its sorted span names, `None` when not found, or the query error.
type Lookup = Result<Option<Vec<String>>, String>;

/// Stop the exporting clients and fail if any request failed before `event` (from then on
/// failures are expected and counted apart).
async fn stop_clients(exports: &Exports, clients: Vec<tokio::task::JoinHandle<()>>, event: &str) {
    exports.stop.store(true, Ordering::Release);
    for c in clients {
        bounded("exporter stop", Duration::from_secs(60), c)
            .await
            .unwrap();
    }
    let unexpected = exports.unexpected.lock().clone();
    assert!(
        unexpected.is_empty(),
        "{} requests failed before {event}, first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
}

/// Read every trace number sent so far from the backend at `http`: each acknowledged one
/// must be there with all its spans; the others (written, but unanswered at a kill) may
/// be there or not, never partial. Returns how many unacknowledged ones are there.
async fn verify(http: SocketAddr, exports: &Exports, child: &ChildGuard, when: &str) -> usize {
    let client = TempoClient::new(&format!("http://{http}"))
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let acked: HashSet<u64> = exports.acked.lock().iter().copied().collect();
    let sent = exports.sent.load(Ordering::Acquire);
    let mut want: Vec<String> = (0..SPANS_PER_REQUEST)
        .map(|s| format!("span-{s}"))
        .collect();
    want.sort();
    let results: Vec<(u64, Lookup)> = bounded(
        "reading every trace back",
        Duration::from_secs(300),
        futures::stream::iter(1..=sent)
            .map(|n| {
                let client = client.clone();
                async move {
                    let r = client
                        .trace_v1(&common::trace_id(n))
                        .await
                        .map(|t| t.map(|rs| common::span_names(&rs)))
                        .map_err(|e| e.to_string());
                    (n, r)
                }
            })
            .buffer_unordered(8)
            .collect(),
    )
    .await;

    let mut missing = Vec::new();
    let mut incomplete = Vec::new();
    let mut errors = Vec::new();
    let mut unacked_present = 0usize;
    for (n, r) in results {
        match r {
            Err(e) => errors.push(format!("trace {n}: {e}")),
            Ok(None) if acked.contains(&n) => missing.push(n),
            Ok(None) => {}
            Ok(Some(names)) if names != want => incomplete.push((n, names.len())),
            Ok(Some(_)) if !acked.contains(&n) => unacked_present += 1,
            Ok(Some(_)) => {}
        }
    }
    missing.sort_unstable();
    incomplete.sort_unstable();
    let log = child.log_tail();
    assert!(errors.is_empty(), "{when}: query errors: {errors:?}\n{log}");
    assert!(
        missing.is_empty(),
        "{when}: {} of {} acknowledged traces lost, e.g. {:?}\n{log}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        incomplete.is_empty(),
        "{when}: traces with missing or extra spans (trace, spans): {incomplete:?}\n{log}"
    );
    unacked_present
}

/// Kill rounds: each kills the process that the previous round restarted, so the WAL
/// replayed at start-up must survive a second crash too.
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_config(dir);
    let (mut child, mut addrs) = spawn_backend(dir, &config, "run0").await;
    let exports = Arc::new(Exports::default());

    for round in 1..=ROUNDS {
        exports.killing.store(false, Ordering::Release);
        exports.stop.store(false, Ordering::Release);
        let url = format!("http://{}/v1/traces", addrs.otlp_http);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(exporter(url.clone(), exports.clone())))
            .collect();

        // Part of the data goes to blocks...
        let at_start = exports.acked();
        wait_acked(&exports, at_start + 100, "100 acknowledged requests").await;
        let status = bounded("/flush", Duration::from_secs(90), flush(addrs.http)).await;
        assert_eq!(status, 204, "round {round}: /flush:\n{}", child.log_tail());
        let at_flush = exports.acked();
        // ...and part only to the WAL.
        wait_acked(
            &exports,
            at_flush + 100,
            "100 acknowledged requests after the flush",
        )
        .await;

        // A second flush races the kill, so the kill may land in a block write.
        let racing_flush = tokio::spawn(flush(addrs.http));
        tokio::time::sleep(Duration::from_millis(5)).await;
        exports.killing.store(true, Ordering::Release);
        let in_flight_at_kill = exports.in_flight.load(Ordering::Acquire);
        let at_kill = exports.acked();
        let signal = child.kill();
        assert_eq!(
            signal,
            Some(9),
            "round {round}: the backend was not ended by SIGKILL:\n{}",
            child.log_tail()
        );
        let _ = bounded("racing /flush", Duration::from_secs(60), racing_flush).await;

        // Clients see failures from now on; let them notice, then stop them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop_clients(&exports, clients, &format!("the kill of round {round}")).await;

        // Restart on the same directories: WAL replay plus the blocks.
        (child, addrs) = spawn_backend(dir, &config, &format!("run{round}")).await;
        let when = format!("after kill {round}");
        let unacked_present = verify(addrs.http, &exports, &child, &when).await;
        println!(
            "sigkill round {round}: {} requests sent so far, acknowledged: {at_start} at the \
             round's start, {at_flush} at the mid-round /flush, {at_kill} at the kill, {} in \
             all; {in_flight_at_kill} in flight at the kill; after restart every acknowledged \
             trace is complete, {unacked_present} unacknowledged ones present",
            exports.sent.load(Ordering::Acquire),
            exports.acked(),
        );
    }
    println!(
        "sigkill: {} requests failed after the kills (expected)",
        exports.failed_after_kill.load(Ordering::Acquire)
    );
    let _ = child.kill();
}

/// SIGTERM while clients export and a `/flush` writes a block: the process ends on its
/// own with status 0 (a hang fails the test; how long it takes is measured by the soak,
/// not asserted here), and after a restart every acknowledged trace is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_cleanly_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_config(dir);
    let (mut child, addrs) = spawn_backend(dir, &config, "term0").await;
    let exports = Arc::new(Exports::default());
    let url = format!("http://{}/v1/traces", addrs.otlp_http);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(exporter(url.clone(), exports.clone())))
        .collect();
    wait_acked(&exports, 200, "200 acknowledged requests").await;
    let racing_flush = tokio::spawn(flush(addrs.http));
    wait_acked(&exports, 300, "300 acknowledged requests").await;

    exports.killing.store(true, Ordering::Release);
    let at_term = exports.acked();
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(term.success(), "kill -TERM failed");
    let status = bounded("exit after SIGTERM", Duration::from_secs(60), async {
        loop {
            if let Some(s) = child.child.try_wait().unwrap() {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        status.success(),
        "the backend did not exit cleanly after SIGTERM: {status}\n{}",
        child.log_tail()
    );
    let _ = bounded("racing /flush", Duration::from_secs(60), racing_flush).await;
    stop_clients(&exports, clients, "SIGTERM").await;
    let log = std::fs::read_to_string(&child.log).unwrap_or_default();
    assert!(log.contains("stopped"), "no clean stop in the log:\n{log}");

    let (child, addrs) = spawn_backend(dir, &config, "term1").await;
    let unacked_present = verify(addrs.http, &exports, &child, "after SIGTERM").await;
    println!(
        "sigterm: {at_term} requests acknowledged at SIGTERM, {} in all; after restart every \
         acknowledged trace is complete, {unacked_present} unacknowledged ones present",
        exports.acked()
    );
}
