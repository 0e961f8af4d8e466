//! The whole catalog (search included) against every reference release, in-process, on a
//! local directory and on the embedded S3 server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::runner::{Outcome, select};
use conformance::store::StoreSpec;

async fn catalog(release: u32, spec: StoreSpec) {
    let file = common::target(&format!("reference-{release}"));
    let run = common::run(&file, spec, &select(None)).await;
    common::assert_passed(&run);
    // Search ran, it was not skipped.
    for id in ["search.traceql_attribute", "search.tag_values"] {
        assert_eq!(common::outcome(&run, id), &Outcome::Pass, "{id}");
    }
    // The declared opt-out is a skip with its reason, not a silent pass.
    let Outcome::Skip(reason) = common::outcome(&run, "fidelity.shared_span_id") else {
        panic!("fidelity.shared_span_id should be opted out");
    };
    assert!(reason.starts_with("opted out:"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_1_local() {
    catalog(1, StoreSpec::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_1_embedded_s3() {
    catalog(1, StoreSpec::EmbeddedS3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_2_local() {
    catalog(2, StoreSpec::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_2_embedded_s3() {
    catalog(2, StoreSpec::EmbeddedS3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_3_local() {
    catalog(3, StoreSpec::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_3_embedded_s3() {
    catalog(3, StoreSpec::EmbeddedS3).await;
}

/// A capability the target does not declare skips the case with the capability's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_capabilities_skip_with_their_name() {
    let mut file = common::target("reference-1");
    file.capabilities
        .remove(&conformance::spec::Capability::OtlpHttpJson);
    file.profiles.remove("limits");
    let cases = select(Some("ingest.otlp_http_json,limits.rate_limited"));
    let run = common::run(&file, StoreSpec::Local, &cases).await;
    assert_eq!(
        common::outcome(&run, "ingest.otlp_http_json"),
        &Outcome::Skip("target lacks capability otlp_http_json".into())
    );
    assert_eq!(
        common::outcome(&run, "limits.rate_limited"),
        &Outcome::Skip("target declares no `limits` profile".into())
    );
}
