//! loadgen against a real Grafana Tempo 3.0.3 under its DEFAULT limits, at a rate over its
//! live-trace limit (`max_traces_per_user` 10,000 live traces; go-example traces are one
//! span each, so 5,000 spans/s is 5,000 new traces/s, each live for 5–10 s). Tempo answers
//! 200 to every request and drops spans; the run must fail on read-back loss, and the
//! report must show `tempo_discarded_spans_total` by reason.
//!
//! Tempo runs as a process through the suite's own process target (rendered config, ports
//! on 127.0.0.1, `/ready` polled, SIGTERM then SIGKILL after a bounded wait) with all of its
//! state in a temp dir. The binary is `tempo-v3.0.3` from `TRACEBENCH_TEMPO_BIN_DIR` (found
//! as the other real-Tempo tests find it); without it the test prints one skip line and
//! passes, unless `TRACEBENCH_REQUIRE_TEMPO=1`. The config is inline rather than
//! `scenarios/targets/tempo-3.0.3.yaml` because that one raises `max_traces_per_user`, and
//! this test's premise is Tempo's default limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use conformance::spec::TargetFile;
use conformance::store::{Started, Store, StoreSpec};
use conformance::target::{self, Launch, Ports};
use loadgen::run::{RunOptions, run};
use loadgen::scenario::Scenario;

const RELEASE: &str = "tempo-v3.0.3";

/// Tempo 3.0.3, single binary, with no `overrides` section (its default limits) and every
/// path inside the data dir. The internal gRPC server gets its own free port: its default,
/// 9095, would collide with any other Tempo on the machine.
fn target_file(binary: &Path, internal_grpc_port: u16) -> TargetFile {
    let mut f = TargetFile::parse(&format!(
        r#"
name: tempo-3.0.3-default-limits
description: Grafana Tempo 3.0.3 with its default per-tenant limits
kind: process
binary: "{binary}"
args: ["-config.file={{{{config_file}}}}"]
config: |
  server:
    http_listen_address: 127.0.0.1
    http_listen_port: {{{{http_port}}}}
    grpc_listen_address: 127.0.0.1
    grpc_listen_port: {internal_grpc_port}
    log_level: warn
  distributor:
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 127.0.0.1:{{{{grpc_port}}}}
          http:
            endpoint: 127.0.0.1:{{{{otlp_http_port}}}}
  live_store:
    wal:
      path: "{{{{data_dir}}}}/live-store/wal"
    shutdown_marker_dir: "{{{{data_dir}}}}/live-store/shutdown-marker"
  block_builder:
    wal:
      path: "{{{{data_dir}}}}/block-builder/wal"
  backend_scheduler:
    local_work_path: "{{{{data_dir}}}}/backend-scheduler"
  metrics_generator:
    storage:
      path: "{{{{data_dir}}}}/generator"
  storage:
    trace:
      wal:
        path: "{{{{data_dir}}}}/wal"
  usage_report:
    reporting_enabled: false
readiness: {{ path: /ready, timeout: 60s, interval: 250ms }}
# Tempo's SIGTERM hangs once it has served a query: wait, then SIGKILL.
stop: {{ grace: 10s }}
"#,
        binary = binary.display()
    ))
    .unwrap();
    f.source = None;
    f
}

fn scenario(otlp_grpc: &str, http: &str) -> Scenario {
    Scenario::parse(&format!(
        r#"
name: tempo-3.0.3-over-live-trace-limit
description: 5,000 one-span traces/s against Tempo 3.0.3's default max_traces_per_user
target:
  kind: otlp
  endpoints: ["{otlp_grpc}"]
  protocol: grpc
  query: {http}
  metrics: {http}/metrics
rate: {{ value: 5000, duration: 8s, batch: 100, max_in_flight: 64 }}
workload:
  seed: 7
  mix:
    - {{ shape: go-example }}
verify: {{ sample: 0.01, delay: 1s, timeout: 10s }}
"#
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_fails_on_tempo_s_silent_discards_and_names_their_reason() {
    // One skip line (or a panic with TRACEBENCH_REQUIRE_TEMPO=1) when the releases are absent.
    let Some(bin_dir) = common::tempo_bin_dir() else {
        return;
    };
    let binary = bin_dir.join(RELEASE);
    let dir = tempfile::tempdir().unwrap();
    let store = match Store::start(StoreSpec::Local, dir.path()).await.unwrap() {
        Started::Ready(s) => *s,
        Started::Skipped(r) => panic!("local store skipped: {r}"),
    };
    let file = target_file(&binary, target::template::free_port().unwrap());
    let mut tempo = target::build(&file);
    let launch = Launch {
        store: store.info.clone(),
        data_dir: dir.path().join("tempo"),
        profile: None,
        ports: Ports::default(),
    };
    std::fs::create_dir_all(&launch.data_dir).unwrap();
    let running = tempo.start(&launch).await.unwrap();
    let otlp = running.otlp_grpc.clone().unwrap();

    // The premise: Tempo runs with its default live-trace limit.
    let config = reqwest::get(format!("{}/status/config", running.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out = dir.path().join("report");
    let opts = RunOptions {
        scenario_file: "inline".into(),
        out: Some(out.clone()),
        ..RunOptions::default()
    };
    let result = run(scenario(&otlp, &running.http), &opts).await;
    // Stop before asserting, so a failed assertion does not leave Tempo running (the child
    // is also killed on drop).
    let stopped = tempo.stop(&file.stop).await;
    store.stop().await;
    let report = result.unwrap();
    println!("tempo stop: {stopped:?}");
    let console = loadgen::summary::summary_lines(&report);
    println!("{console}");

    assert!(
        config.contains("max_traces_per_user: 10000"),
        "default limit expected:\n{config}"
    );
    assert_eq!(report.target.version.as_deref(), Some("v3.0.3"));

    // The run fails on read-back loss.
    assert!(!report.passed);
    let lost = report
        .thresholds
        .iter()
        .find(|t| t.name == "max_lost_spans")
        .unwrap();
    assert!(!lost.passed, "{lost:?}");
    let v = report.verification.as_ref().unwrap();
    assert!(v.missing_traces > 0, "{v:?}");
    assert!(v.estimated_lost_spans > 0, "{v:?}");

    // Tempo's own counter, by reason.
    let res = report.resources.as_ref().unwrap();
    let by = &res.discarded_by_reason;
    let live = by.get("live_traces_exceeded").copied().unwrap_or(0);
    assert!(live > 0, "{by:?}");
    assert_eq!(
        res.discarded_spans,
        Some(by.values().sum::<u64>()),
        "{by:?}"
    );

    // … in every rendering.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(md.contains("by reason: live_traces_exceeded"), "{md}");
    assert!(html.contains("by reason: live_traces_exceeded"), "{html}");
    assert!(json.contains(r#""live_traces_exceeded":"#), "{json}");
    assert!(
        console
            .lines()
            .any(|l| l.starts_with("DISCARD ") && l.contains("by reason: live_traces_exceeded")),
        "{console}"
    );
    assert!(console.starts_with("FAILED"), "{console}");
}
