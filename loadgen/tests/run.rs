//! `loadgen run` end to end, in-process: the embedded backend with read-back, loss behind a
//! backend that answers 200 while dropping, coordinated-omission correction against a
//! stalling sink, compare exit codes, and shards merged exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use loadgen::cli::{Command, CompareArgs, MergeArgs, Opts};
use loadgen::run::{RunOptions, run};
use loadgen::scenario::Scenario;
use loadgen::sink::{Sink, SinkConfig, Stall};

fn scenario(yaml: &str) -> Scenario {
    Scenario::parse(yaml).unwrap()
}

fn opts(out: &Path) -> RunOptions {
    RunOptions {
        scenario_file: "inline".into(),
        out: Some(out.to_path_buf()),
        ..RunOptions::default()
    }
}

const EMBEDDED: &str = r#"
name: embedded-smoke
target: { kind: embedded }
rate: { value: 2000, duration: 3s, batch: 50, max_in_flight: 16 }
workload:
  seed: 9
  mix:
    - { shape: go-example, weight: 3 }
    - { shape: microservices, weight: 1 }
verify: { sample: 0.2, delay: 50ms, timeout: 10s }
thresholds: { error_rate: 0.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_run_reads_everything_back_and_writes_three_reports() {
    let dir = std::env::var_os("LOADGEN_EXAMPLE_REPORT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tempfile::tempdir().unwrap().keep());
    let report = run(scenario(EMBEDDED), &opts(&dir)).await.unwrap();
    assert!(report.passed, "{:?}", report.thresholds);
    let v = report.verification.as_ref().unwrap();
    assert!(v.sampled_traces > 50, "{v:?}");
    assert_eq!(v.complete_traces, v.sampled_traces, "{v:?}");
    assert_eq!((v.missing_spans, v.altered_spans, v.extra_spans), (0, 0, 0));
    assert_eq!(report.totals.spans_accepted, report.totals.spans_sent);
    assert!(report.totals.spans_sent >= 5000);
    assert!(report.resources.as_ref().unwrap().cpu_seconds > 0.0);
    assert_eq!(report.target.kind, "embedded");
    for f in ["report.json", "report.md", "report.html"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.starts_with("# PASSED"), "{}", &md[..200.min(md.len())]);
}

/// An OTLP/HTTP endpoint that answers 200 to everything but forwards only every other
/// request to the real backend: silent loss, as Tempo's live-trace limit produces.
async fn dropping_proxy(forward_to: String) -> String {
    let n = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let (n, http, to) = (n.clone(), http.clone(), forward_to.clone());
            async move {
                if n.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
                    let _ = http
                        .post(&to)
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await;
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

async fn reference_backend(dir: &Path, extra: &str) -> reference_backend::Backend {
    let mut c = reference_backend::Config::parse(extra).unwrap();
    c.server.http_listen_port = 0;
    c.distributor.receivers.otlp.protocols.grpc.endpoint = "127.0.0.1:0".into();
    c.distributor.receivers.otlp.protocols.http.endpoint = "127.0.0.1:0".into();
    c.storage.trace.local.path = dir.join("blocks");
    c.storage.trace.wal.path = dir.join("wal");
    let b = reference_backend::Backend::start(c).await.unwrap();
    b.wait_ready().await.unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_loss_is_found_by_read_back_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let backend = reference_backend(dir.path(), "").await;
    let proxy = dropping_proxy(format!("http://{}/v1/traces", backend.addrs.otlp_http)).await;
    let yaml = format!(
        r#"
name: lossy
target:
  kind: otlp
  endpoints: ["{proxy}"]
  protocol: http-protobuf
  query: http://{}
rate: {{ value: 1000, duration: 2s, batch: 20, max_in_flight: 8 }}
verify: {{ sample: 0.3, delay: 50ms, timeout: 2s }}
"#,
        backend.addrs.http
    );
    let out = dir.path().join("report");
    let report = run(scenario(&yaml), &opts(&out)).await.unwrap();
    // Every request was answered 200 …
    assert_eq!(report.totals.requests_ok, report.totals.requests_sent);
    // … yet read-back finds about half the traces missing, and the run fails.
    let v = report.verification.as_ref().unwrap();
    assert!(
        v.missing_traces > 0 && v.missing_traces < v.sampled_traces,
        "{v:?}"
    );
    assert!(v.estimated_lost_spans >= v.missing_spans);
    assert!(!report.passed);
    let lost = report
        .thresholds
        .iter()
        .find(|t| t.name == "max_lost_spans")
        .unwrap();
    assert!(!lost.passed);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# FAILED"));
    assert!(md.contains("Spans lost"), "{}", &md[..400.min(md.len())]);
    backend.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_sink_shows_in_corrected_latency_only() {
    let sink = Sink::start(SinkConfig {
        stall: Some(Stall {
            after_requests: 200,
            duration: Duration::from_millis(1500),
            every: None,
        }),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        r#"
name: stall
target:
  kind: otlp
  endpoints: ["http://{}"]
  protocol: http-protobuf
rate: {{ value: 20000, duration: 3s, batch: 20, max_in_flight: 4 }}
verify: {{ enabled: false }}
"#,
        sink.http_addr
    );
    let report = run(scenario(&yaml), &RunOptions::default()).await.unwrap();
    let l = &report.latency;
    assert!(l.corrected.p99 >= 1000.0, "corrected {:?}", l.corrected);
    assert!(l.uncorrected.p99 < 500.0, "uncorrected {:?}", l.uncorrected);
    assert!(
        l.uncorrected.max >= 1000.0,
        "the stalled requests themselves waited"
    );
    assert_eq!(sink.counts().spans, report.totals.spans_sent);
    sink.stop().await;
}

async fn cli(command: Command) -> i32 {
    loadgen::cli::run(Opts {
        log_level: "warn".into(),
        command,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_exits_by_its_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let base = r#"
name: cmp
target:
  kind: embedded
  backend_config: |
    overrides:
      defaults:
        ingestion:
          rate_limit_bytes: RATE
          burst_size_bytes: 20000
rate: { value: 2000, duration: 2s, batch: 20, max_in_flight: 8 }
verify: { enabled: false }
"#;
    let mut paths = Vec::new();
    for (name, rate) in [("a1", "100MB"), ("a2", "100MB"), ("b", "20000")] {
        let out = dir.path().join(name);
        run(scenario(&base.replace("RATE", rate)), &opts(&out))
            .await
            .unwrap();
        paths.push(out.join("report.json"));
    }
    let compare = |b: &std::path::PathBuf| CompareArgs {
        a: Some(paths[0].clone()),
        b: Some(b.clone()),
        baseline: vec![],
        candidate: vec![],
        thresholds: vec!["errors=+0.01".into()],
    };
    // Same configuration: within the gate.
    assert_eq!(cli(Command::Compare(compare(&paths[1]))).await, 0);
    // A backend rate-limited to ~20 kB/s refuses most requests: the gate trips.
    assert_eq!(cli(Command::Compare(compare(&paths[2]))).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_merge_into_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let backend = reference_backend(dir.path(), "").await;
    let yaml = format!(
        r#"
name: sharded
target:
  kind: otlp
  endpoints: ["http://{}"]
  query: http://{}
rate: {{ value: 3000, duration: 2s, batch: 20, max_in_flight: 8 }}
verify: {{ sample: 0.1, delay: 50ms, timeout: 10s }}
"#,
        backend.addrs.otlp_grpc, backend.addrs.http
    );
    let mut files = Vec::new();
    let mut sent = 0;
    let mut sampled = 0;
    for i in 0..3 {
        let out = dir.path().join(format!("shard-{i}"));
        let mut o = opts(&out);
        o.shard = Some((i, 3));
        let r = run(scenario(&yaml), &o).await.unwrap();
        assert!(r.passed, "shard {i}: {:?}", r.thresholds);
        sent += r.totals.spans_sent;
        sampled += r.verification.as_ref().unwrap().sampled_traces;
        files.push(out.join("report.json"));
    }
    let merged_dir = dir.path().join("merged");
    assert_eq!(
        cli(Command::Merge(MergeArgs {
            out: merged_dir.clone(),
            reports: files,
        }))
        .await,
        0
    );
    let m = loadgen::report::load(&merged_dir.join("report.json")).unwrap();
    assert_eq!(m.totals.spans_sent, sent);
    assert_eq!(m.shards.len(), 3);
    assert_eq!(m.verification.as_ref().unwrap().sampled_traces, sampled);
    assert_eq!(m.latency.corrected.count, m.totals.requests_sent);
    // The shards used disjoint sequence numbers: every span is its own.
    assert_eq!(m.totals.spans_accepted, sent);
    backend.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_mode_spans_go_through_the_real_pipeline_and_read_back() {
    let yaml = r#"
name: sdk-smoke
target: { kind: embedded }
rate:
  value: 1000
  duration: 2s
  batch: 50
  mode: sdk
  sdk: { max_export_batch_size: 256, scheduled_delay: 200ms, max_queue_size: 8192 }
workload:
  seed: 4
  mix:
    - { shape: go-example }
    - { shape: flat, params: { children: 3 } }
verify: { sample: 0.2, delay: 50ms, timeout: 10s }
"#;
    let report = run(scenario(yaml), &RunOptions::default()).await.unwrap();
    assert!(
        report.passed,
        "{:?} {:?}",
        report.thresholds, report.generator.notes
    );
    let v = report.verification.as_ref().unwrap();
    assert!(v.sampled_traces > 20);
    assert_eq!(v.complete_traces, v.sampled_traces, "{v:?}");
    assert_eq!(report.scenario.mode, "sdk");
    assert!(report.totals.requests_sent > 0, "exports observed");
    assert_eq!(report.totals.spans_accepted, report.totals.spans_sent);
}

/// A backend that refuses every request, and a scenario without thresholds: the run still
/// fails, because no request was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_one_acknowledged_request_fails_without_thresholds() {
    let app = axum::Router::new().route(
        "/v1/traces",
        post(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let yaml = format!(
        r#"
name: refused
target:
  kind: otlp
  endpoints: ["http://{addr}"]
  protocol: http-protobuf
rate: {{ value: 500, duration: 1s, batch: 10, max_in_flight: 4 }}
verify: {{ enabled: false }}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let report = run(scenario(&yaml), &opts(&out)).await.unwrap();
    assert!(report.totals.requests_sent > 0);
    assert_eq!(report.totals.requests_ok, 0);
    assert!(!report.passed);
    let gate = report
        .thresholds
        .iter()
        .find(|t| t.name == "requests_acknowledged")
        .unwrap();
    assert!(!gate.passed);
    assert_eq!(gate.actual, format!("0 of {}", report.totals.requests_sent));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# FAILED"), "{}", &md[..200.min(md.len())]);
    assert!(md.contains("requests_acknowledged"));
}
