//! MinIO when a Docker engine answers (else the one-line reason, and the same cases on the
//! embedded S3 server), and the S3-from-environment store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;

use conformance::runner::{run_target, select};
use conformance::store::{Started, Store, StoreSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minio_or_embedded_s3() {
    let dir = tempfile::tempdir().unwrap();
    let store = match Store::start(StoreSpec::Minio, dir.path()).await.unwrap() {
        Started::Ready(s) => *s,
        Started::Skipped(reason) => {
            assert!(reason.starts_with("docker unavailable"), "{reason}");
            // Straight to the process's stderr, past the test harness's output capture, so
            // every `cargo test` run shows why MinIO did not run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIP minio: {reason}; running the same cases on embedded-s3"
            );
            common::store(StoreSpec::EmbeddedS3, dir.path()).await
        }
    };
    let file = common::target("reference-1");
    let cases = select(Some("ingest.otlp_grpc,fidelity.large_trace,durability"));
    let run = run_target(&file, &store, &cases, dir.path()).await;
    store.stop().await;
    common::assert_passed(&run);
}

#[tokio::test]
async fn s3_env_without_an_endpoint_is_skipped_with_the_reason() {
    if std::env::var("TRACEBENCH_S3_ENDPOINT").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Started::Skipped(reason) = Store::start(StoreSpec::S3Env, dir.path()).await.unwrap() else {
        panic!("no endpoint, no store");
    };
    assert!(reason.contains("TRACEBENCH_S3_ENDPOINT"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_targets_are_skipped_with_the_reason_without_docker() {
    if conformance::docker::available().await.is_ok() || conformance::docker::required() {
        return;
    }
    let file = common::target("tempo-3.0.3-container");
    let run = common::run(&file, StoreSpec::Local, &select(Some("ingest.otlp_grpc"))).await;
    let conformance::runner::Outcome::Skip(reason) = common::outcome(&run, "ingest.otlp_grpc")
    else {
        panic!("expected a skip");
    };
    assert!(
        reason.starts_with("not run here: docker unavailable"),
        "{reason}"
    );
}

/// A process target whose binary is neither in its `binary_dir_env` folder nor on PATH is
/// skipped, naming where it was looked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_targets_without_their_binary_are_skipped_with_the_reason() {
    if std::env::var("TRACEBENCH_REQUIRE_TEMPO").is_ok_and(|v| v == "1") {
        return;
    }
    let mut file = common::target("tempo-3.0.3");
    file.binary = Some("tempo-v0.0.0-not-installed".into());
    let run = common::run(&file, StoreSpec::Local, &select(Some("ingest.otlp_grpc"))).await;
    let conformance::runner::Outcome::Skip(reason) = common::outcome(&run, "ingest.otlp_grpc")
    else {
        panic!("expected a skip: {:?}", run.results);
    };
    assert!(
        reason.starts_with(
            "not run here: tempo-v0.0.0-not-installed not found in $TRACEBENCH_TEMPO_BIN_DIR"
        ) && reason.ends_with("or PATH"),
        "{reason}"
    );
}
