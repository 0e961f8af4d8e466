//! The upgrade flow: the release matrix, and the flow's own verdicts on pairs that work today.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::runner::Outcome;
use conformance::spec::{Capability, ConfigOutcome, UpgradeExpectation};
use conformance::store::StoreSpec;
use conformance::upgrade::{UpgradeOptions, run_upgrade};

/// Release 1 under another name, declaring an upgrade from `reference-1`, without search.
fn release_1_again() -> conformance::spec::TargetFile {
    let mut to = common::target("reference-1");
    to.name = "reference-1-again".into();
    for c in [Capability::SearchTags, Capability::SearchTraceql] {
        to.capabilities.remove(&c);
    }
    to.upgrades_from = vec![UpgradeExpectation {
        from: "reference-1".into(),
        config: Default::default(),
        wal: Default::default(),
        rollback: Default::default(),
    }];
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
        "name: tiny\nrate:\n  value: 200\n  duration: 4s\n  batch: 20\nworkload:\n  mix:\n    - shape: go-example\nverify:\n  sample: 0.5\n  timeout: 10s\n",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs releases 2 in reference-backend (rb2, config migration)"]
async fn release_1_to_2_passes() {
    let run = common::upgrade(
        &common::target("reference-1"),
        &common::target("reference-2"),
        StoreSpec::EmbeddedS3,
    )
    .await;
    common::assert_passed(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs releases 2 and 3 in reference-backend (rb2, config migration)"]
async fn release_2_to_3_passes() {
    let run = common::upgrade(
        &common::target("reference-2"),
        &common::target("reference-3"),
        StoreSpec::EmbeddedS3,
    )
    .await;
    common::assert_passed(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs release 3 in reference-backend (drops rb1)"]
async fn release_1_to_3_reports_unreadable_rb1_blocks() {
    let run = common::upgrade(
        &common::target("reference-1"),
        &common::target("reference-3"),
        StoreSpec::EmbeddedS3,
    )
    .await;
    assert!(!run.passed());
    let Outcome::Fail(why) = common::outcome(&run, "upgrade.declared_path") else {
        panic!("1 → 3 is not declared");
    };
    assert!(why.contains("skips a release"), "{why}");
    let Outcome::Fail(why) = common::outcome(&run, "upgrade.read_by_id") else {
        panic!("release 3 must not read release 1's flushed blocks");
    };
    assert!(why.contains("flushed part"), "{why}");
}
