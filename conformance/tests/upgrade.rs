//! The upgrade flow: the release matrix (1 → 2 and 2 → 3 pass, 1 → 3 fails on unreadable rb1
//! blocks), in-process and as child processes, under load, and the flow's own verdicts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::runner::{Outcome, TargetRun};
use conformance::spec::{Capability, ConfigOutcome, ReferenceMode, UpgradeExpectation};
use conformance::store::StoreSpec;
use conformance::upgrade::{UpgradeOptions, run_upgrade};
use reference_backend::config::HumanDuration;
use std::time::Duration;

/// Release 1 under another name, declaring an upgrade from `reference-1`, without search.
fn release_1_again() -> conformance::spec::TargetFile {
    let mut to = common::target("reference-1");
    to.name = "reference-1-again".into();
    for c in [Capability::SearchTags, Capability::SearchTraceql] {
        to.capabilities.remove(&c);
    }
    to.upgrades_from = vec![UpgradeExpectation::full("reference-1")];
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_a_compatible_release_passes_on_both_stores() {
    let from = common::target("reference-1");
    for spec in [StoreSpec::Local, StoreSpec::EmbeddedS3] {
        let run = common::upgrade(&from, &release_1_again(), spec).await;
        assert_eq!(
            common::outcome(&run, "upgrade.read_by_search"),
            &Outcome::Skip("reference-1-again lacks capability search_tags".into())
        );
        common::assert_passed(&run);
        for id in [
            "upgrade.read_by_id",
            "upgrade.rollback",
            "upgrade.rollback_no_damage",
        ] {
            assert_eq!(common::outcome(&run, id), &Outcome::Pass, "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_paths_and_unmet_config_expectations_fail_with_reasons() {
    let from = common::target("reference-1");
    let mut to = release_1_again();
    to.upgrades_from[0].config.outcome = ConfigOutcome::Reject;
    to.upgrades_from[0].config.keys = vec!["ingester".into()];
    let run = common::upgrade(&from, &to, StoreSpec::Local).await;
    let Outcome::Fail(why) = common::outcome(&run, "upgrade.config_migration") else {
        panic!("an accepted config must fail a declared rejection");
    };
    assert!(
        why.contains("accepted") && why.contains("ingester"),
        "{why}"
    );

    to.upgrades_from.clear();
    let run = common::upgrade(&from, &to, StoreSpec::Local).await;
    let Outcome::Fail(why) = common::outcome(&run, "upgrade.declared_path") else {
        panic!("an undeclared path must fail");
    };
    assert!(why.contains("declares upgrades from []"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_the_gap_is_reported_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("load.yaml");
    std::fs::write(
        &scenario,
        "name: tiny\nrate:\n  value: 200\n  duration: 4s\n  batch: 20\nworkload:\n  mix:\n    - shape: go-example\nverify:\n  sample: 0.5\n  timeout: 60s\n",
    )
    .unwrap();
    let s = common::store(StoreSpec::Local, dir.path()).await;
    let opts = UpgradeOptions {
        work_dir: dir.path().to_path_buf(),
        under_load: Some(scenario),
    };
    let run = run_upgrade(
        &common::target("reference-1"),
        &release_1_again(),
        &s,
        &opts,
    )
    .await;
    s.stop().await;
    assert_eq!(
        common::outcome(&run, "upgrade.availability_gap"),
        &Outcome::Pass,
        "{}",
        common::failures(&run)
    );
    assert!(
        run.notes.iter().any(|n| n.starts_with("availability gap")),
        "{:?}",
        run.notes
    );
    assert!(
        run.notes.iter().any(|n| n.starts_with("loadgen:")),
        "{:?}",
        run.notes
    );
}

/// Every upgrade case passed (the gap needs `--under-load`).
fn assert_all_passed(run: &TargetRun) {
    common::assert_passed(run);
    for r in &run.results {
        if r.id != "upgrade.availability_gap" {
            assert_eq!(r.outcome, Outcome::Pass, "{}", r.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_1_to_2_passes_with_deprecation_warnings() {
    let run = common::upgrade(
        &common::target("reference-1"),
        &common::target("reference-2"),
        StoreSpec::EmbeddedS3,
    )
    .await;
    assert_all_passed(&run);
    // Release 1's config was accepted with a warning for each renamed key.
    for key in ["page_size_bytes", "max_memory_bytes"] {
        assert!(
            run.notes
                .iter()
                .any(|n| n.contains("config check: warning:") && n.contains(key)),
            "{key}: {:?}",
            run.notes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_2_to_3_passes_and_rejects_the_ingester_section() {
    let run = common::upgrade(
        &common::target("reference-2"),
        &common::target("reference-3"),
        StoreSpec::EmbeddedS3,
    )
    .await;
    assert_all_passed(&run);
    // The rejection was checked, not waved through: release 3 really refuses it.
    let mut to = common::target("reference-3");
    to.upgrades_from[0].config.outcome = ConfigOutcome::Accept;
    let run = common::upgrade(&common::target("reference-2"), &to, StoreSpec::Local).await;
    let Outcome::Fail(why) = common::outcome(&run, "upgrade.config_migration") else {
        panic!("release 3 must reject release 2's config");
    };
    assert!(why.contains("ingester.max_live_bytes"), "{why}");
}

/// The same two upgrades with both releases as child processes: the config check is the
/// binary's `check-config --release N`, whose `warning:` lines are judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_between_child_processes() {
    let child = |name: &str| {
        let mut f = common::target(name);
        f.mode = ReferenceMode::ChildProcess;
        f.binary = Some(env!("CARGO_BIN_EXE_conformance").into());
        f.args = vec!["serve-reference".into()];
        f
    };
    let run = common::upgrade(
        &child("reference-1"),
        &child("reference-2"),
        StoreSpec::Local,
    )
    .await;
    assert_all_passed(&run);
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("warning: ingester.max_memory_bytes is deprecated")),
        "{:?}",
        run.notes
    );
    let run = common::upgrade(
        &child("reference-2"),
        &child("reference-3"),
        StoreSpec::Local,
    )
    .await;
    assert_all_passed(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_1_to_3_reports_unreadable_rb1_blocks() {
    let mut to = common::target("reference-3");
    // Every read of this pair fails; fail after 2 s of polling instead of the usual 10.
    to.timings.visible_within = HumanDuration(Duration::from_secs(2));
    to.timings.search_visible_within = HumanDuration(Duration::from_secs(2));
    let mut from = common::target("reference-1");
    from.timings = to.timings.clone();
    let run = common::upgrade(&from, &to, StoreSpec::EmbeddedS3).await;
    assert!(!run.passed());
    let failed: Vec<&str> = run
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "upgrade.declared_path",
            "upgrade.config_migration",
            "upgrade.read_by_id",
            "upgrade.read_by_search",
            "upgrade.write_after",
            // Not `upgrade.rollback`: release 3 leaves what it has not cut into a block in the
            // WAL when it stops, and release 1 replays that WAL and reads its own rb1 blocks,
            // so the rolled-back release 1 reads everything.
            "upgrade.rollback_no_damage",
        ],
        "{}",
        common::failures(&run)
    );
    let why = |id| match common::outcome(&run, id) {
        Outcome::Fail(why) => why.clone(),
        other => panic!("{id}: {other:?}"),
    };
    assert!(why("upgrade.declared_path").contains("skips a release"));
    // Release 3 refuses release 1's config for its ingester section.
    assert!(
        why("upgrade.config_migration").contains("ingester.max_memory_bytes"),
        "{}",
        why("upgrade.config_migration")
    );
    // Release 1's flushed blocks are rb1, which release 3 cannot read: the reason says so.
    let read = why("upgrade.read_by_id");
    assert!(read.starts_with("flushed part: 3 of 3"), "{read}");
    assert!(
        read.contains("is in format rb1, which release 3 cannot read"),
        "{read}"
    );
    assert!(
        why("upgrade.read_by_search").contains("cannot read"),
        "{}",
        why("upgrade.read_by_search")
    );
}
