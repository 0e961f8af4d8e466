//! Self-test: each deliberate defect of the reference backend makes at least one named case
//! fail, so a passing suite means something.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::runner::{Outcome, select};
use conformance::store::StoreSpec;
use reference_backend::config::HumanDuration;
use reference_backend::release::Mutant;
use std::time::Duration;

/// A mutant is expected to fail; a short poll keeps each expected failure short (the control
/// runs keep the target file's timing).
const MUTANT_VISIBLE_WITHIN: HumanDuration = HumanDuration(Duration::from_secs(3));

async fn fails_with_mutant(release: u32, mutant: Mutant, case: &str) -> String {
    let mut file = common::target(&format!("reference-{release}"));
    // Control: the case passes on the release as it is.
    let run = common::run(&file, StoreSpec::Local, &select(Some(case))).await;
    assert_eq!(
        common::outcome(&run, case),
        &Outcome::Pass,
        "control run: {}",
        common::failures(&run)
    );
    file.mutant = Some(mutant);
    file.timings.visible_within = MUTANT_VISIBLE_WITHIN;
    let run = common::run(&file, StoreSpec::Local, &select(Some(case))).await;
    match common::outcome(&run, case) {
        Outcome::Fail(why) => why.clone(),
        other => panic!("{mutant:?} should make {case} fail, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_wal_replay_fails_restart_before_flush() {
    let why = fails_with_mutant(1, Mutant::SkipWalReplay, "durability.restart_before_flush").await;
    assert!(why.contains("not found") || why.contains("404"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_span_attributes_fails_any_value_kinds() {
    let why = fails_with_mutant(2, Mutant::DropSpanAttributes, "fidelity.any_value_kinds").await;
    assert!(why.contains("attribute"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_tenant_fails_isolation() {
    let why = fails_with_mutant(3, Mutant::IgnoreTenant, "tenancy.isolation").await;
    assert!(why.contains("read tenant"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    to.timings.visible_within = MUTANT_VISIBLE_WITHIN;
    to.timings.search_visible_within = MUTANT_VISIBLE_WITHIN;
    let run = common::upgrade(&from, &to, StoreSpec::Local).await;
    assert!(
        matches!(
            common::outcome(&run, "upgrade.read_by_id"),
            Outcome::Fail(_)
        ),
        "{:?}",
        common::outcome(&run, "upgrade.read_by_id")
    );
    let Outcome::Fail(why) = common::outcome(&run, "upgrade.read_by_id") else {
        unreachable!()
    };
    assert!(why.contains("flushed part") && why.contains("rb1"), "{why}");
}
