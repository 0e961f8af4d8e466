//! Self-test: each deliberate defect of the reference backend makes at least one named case
//! fail, so a passing suite means something.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::runner::{Outcome, select};
use conformance::store::StoreSpec;
use reference_backend::release::Mutant;

async fn fails_with_mutant(release: u32, mutant: Mutant, case: &str) {
    let mut file = common::target(&format!("reference-{release}"));
    // Control: the case passes on the release as it is.
    let run = common::run(&file, StoreSpec::Local, &select(Some(case))).await;
    assert_eq!(common::outcome(&run, case), &Outcome::Pass, "control run");
    file.mutant = Some(mutant);
    let run = common::run(&file, StoreSpec::Local, &select(Some(case))).await;
    assert!(
        matches!(common::outcome(&run, case), Outcome::Fail(_)),
        "{mutant:?} should make {case} fail, got {:?}",
        common::outcome(&run, case)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mutant hooks"]
async fn skip_wal_replay_fails_restart_before_flush() {
    fails_with_mutant(1, Mutant::SkipWalReplay, "durability.restart_before_flush").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mutant hooks"]
async fn drop_span_attributes_fails_any_value_kinds() {
    fails_with_mutant(1, Mutant::DropSpanAttributes, "fidelity.any_value_kinds").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mutant hooks"]
async fn ignore_tenant_fails_isolation() {
    fails_with_mutant(1, Mutant::IgnoreTenant, "tenancy.isolation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mutant hooks (and release 2)"]
async fn no_previous_format_fails_read_by_id() {
    let from = common::target("reference-1");
    let mut to = common::target("reference-2");
    let run = common::upgrade(&from, &to, StoreSpec::Local).await;
    assert_eq!(
        common::outcome(&run, "upgrade.read_by_id"),
        &Outcome::Pass,
        "control run"
    );
    to.mutant = Some(Mutant::NoPreviousFormat);
    let run = common::upgrade(&from, &to, StoreSpec::Local).await;
    assert!(
        matches!(
            common::outcome(&run, "upgrade.read_by_id"),
            Outcome::Fail(_)
        ),
        "{:?}",
        common::outcome(&run, "upgrade.read_by_id")
    );
}
