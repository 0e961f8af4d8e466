//! Child-process targets: a generic `process` target (config template with port
//! placeholders, readiness polling, SIGTERM then SIGKILL) and a reference release in child
//! mode, both running this crate's binary (`conformance serve-reference`, the newest release
//! unless told otherwise), so kills are real SIGKILLs of another process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::runner::{Outcome, select};
use conformance::spec::{ReferenceMode, TargetFile};
use conformance::store::StoreSpec;
use conformance::target::{self, Launch, Ports};

const BIN: &str = env!("CARGO_BIN_EXE_conformance");

fn process_target(extra_config: &str) -> TargetFile {
    let mut f = TargetFile::parse(&format!(
        r#"
name: process-reference
kind: process
binary: {BIN}
args: [serve-reference, --config, "{{{{config_file}}}}"]
config: |
  server:
    http_listen_address: 127.0.0.1
    http_listen_port: {{{{http_port}}}}
  distributor:
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 127.0.0.1:{{{{grpc_port}}}}
          http:
            endpoint: 127.0.0.1:{{{{otlp_http_port}}}}
  live_store:
    trace_idle_period: 200ms
    flush_check_period: 100ms
  storage:
    trace:
      blocklist_poll: 200ms
      wal:
        path: "{{{{data_dir}}}}/wal"
{extra_config}
readiness: {{path: /ready, timeout: 30s}}
stop: {{grace: 10s}}
pre_stop: [{{method: POST, path: /flush}}]
flush: {{call: {{method: POST, path: /flush}}}}
capabilities: [otlp_grpc, otlp_http_protobuf, trace_by_id_v1, trace_by_id_v2, lifecycle, wal, flush]
timings: {{visible_within: 10s, poll_interval: 100ms}}
"#
    ))
    .unwrap();
    f.source = None;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_target_survives_sigkill_and_restarts() {
    let file = process_target("");
    let cases = select(Some(
        "ingest.otlp_grpc,ingest.otlp_http_protobuf,durability",
    ));
    let run = common::run(&file, StoreSpec::EmbeddedS3, &cases).await;
    common::assert_passed(&run);
    assert_eq!(
        common::outcome(&run, "durability.sigkill_during_ingest"),
        &Outcome::Pass
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_at_start_is_reported_with_its_log() {
    let file = process_target("  no_such_section: 1\n");
    let dir = tempfile::tempdir().unwrap();
    let mut t = target::build(&file);
    let launch = Launch {
        store: conformance::store::StoreInfo::Local {
            path: dir.path().join("store"),
        },
        data_dir: dir.path().join("data"),
        profile: None,
        ports: Ports::default(),
    };
    std::fs::create_dir_all(&launch.data_dir).unwrap();
    let e = match t.start(&launch).await {
        Ok(_) => panic!("must not start"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("exited"), "{e}");
    assert!(
        e.contains("no_such_section"),
        "the log tail should name the bad key: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_release_as_a_child_process() {
    let mut file = common::target("reference-1");
    file.mode = ReferenceMode::ChildProcess;
    file.binary = Some(BIN.into());
    file.args = vec!["serve-reference".into()];
    let cases = select(Some(
        "ingest.otlp_grpc,durability.restart_before_flush,query.by_id_v1_protobuf",
    ));
    let run = common::run(&file, StoreSpec::Local, &cases).await;
    common::assert_passed(&run);
}
