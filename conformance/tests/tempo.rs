//! The suite against real Grafana Tempo releases (2.10.8, 3.0.2, 3.0.3 single binaries from
//! `$TRACEBENCH_TEMPO_BIN_DIR`, on the embedded S3 server): each release's catalog ends exactly
//! as its target file declares (every deviation seen, nothing else failing), the upgrade paths
//! pass as declared, and declaring a WAL replay 3.0.3 does not do fails where it should.
//! Without the binaries every test prints one skip line and passes
//! (`TRACEBENCH_REQUIRE_TEMPO=1` makes that a failure).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use conformance::runner::{Outcome, TargetRun, select};
use conformance::spec::{TargetFile, WalExpectation};
use conformance::store::StoreSpec;

/// Every case ended as declared: no failure, and each declared deviation seen (not skipped).
fn assert_as_declared(run: &TargetRun, file: &TargetFile) {
    common::assert_passed(run);
    for id in file.deviations.keys() {
        assert!(
            matches!(common::outcome(run, id), Outcome::KnownDeviation(_)),
            "{id}: declared deviation not seen: {:?}",
            common::outcome(run, id)
        );
    }
}

async fn catalog(name: &str) {
    if common::tempo_bin_dir().is_none() {
        return;
    }
    let file = common::target(name);
    let run = common::run(&file, StoreSpec::EmbeddedS3, &select(None)).await;
    assert_as_declared(&run, &file);
    // The version under test is in the notes, from /api/status/buildinfo.
    let version = name.trim_start_matches("tempo-");
    assert!(
        run.notes
            .iter()
            .any(|n| n.starts_with(&format!("version v{version}"))),
        "{:?}",
        run.notes
    );
    // Search and a flush really ran on Tempo.
    for id in ["search.traceql_attribute", "durability.restart_after_flush"] {
        assert_eq!(common::outcome(&run, id), &Outcome::Pass, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_on_tempo_2_10_8_matches_its_declarations() {
    catalog("tempo-2.10.8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_on_tempo_3_0_3_matches_its_declarations() {
    catalog("tempo-3.0.3").await;
}

/// Every upgrade case passed (the availability gap needs `--under-load`).
fn assert_upgrade_passed(run: &TargetRun) {
    common::assert_passed(run);
    for r in &run.results {
        if r.id != "upgrade.availability_gap" {
            assert_eq!(r.outcome, Outcome::Pass, "{}", r.id);
        }
    }
}

fn note<'a>(run: &'a TargetRun, starts: &str) -> &'a str {
    run.notes
        .iter()
        .find(|n| n.starts_with(starts))
        .unwrap_or_else(|| panic!("no note starting {starts:?} in {:#?}", run.notes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tempo_3_0_2_to_3_0_3_replays_the_wal_and_rolls_back() {
    if common::tempo_bin_dir().is_none() {
        return;
    }
    let run = common::upgrade(
        &common::target("tempo-3.0.2"),
        &common::target("tempo-3.0.3"),
        StoreSpec::EmbeddedS3,
    )
    .await;
    assert_upgrade_passed(&run);
    // The WAL-only part was in 3.0.2's WAL, and not in blocks, when 3.0.2 was killed: 3.0.3
    // read it from the replayed WAL.
    let wal = note(&run, "WAL-only part: in tempo-3.0.2's WAL after");
    assert!(wal.contains("none of it found in blocks yet"), "{wal}");
    assert!(
        note(&run, "search after the upgrade").contains("search_backend_after"),
        "{:?}",
        run.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tempo_2_10_8_to_3_0_3_passes_with_a_flush_before_the_stop() {
    if common::tempo_bin_dir().is_none() {
        return;
    }
    let run = common::upgrade(
        &common::target("tempo-2.10.8"),
        &common::target("tempo-3.0.3"),
        StoreSpec::EmbeddedS3,
    )
    .await;
    assert_upgrade_passed(&run);
    note(
        &run,
        "before the stop: WAL-only part in tempo-2.10.8's object storage",
    );
    // Rolled back, 2.10.8 reads its own six traces and none of 3.0.3's (replication factor 1
    // blocks), without wrong data.
    let rollback = note(&run, "rollback to tempo-2.10.8:");
    assert!(rollback.contains("6 intact, 3 not found"), "{rollback}");
}

/// Declaring that 3.0.3 replays 2.10.8's WAL (it does not): 2.10.8 is killed with a part only
/// in its WAL, and `upgrade.read_by_id` fails naming that part, and only that part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tempo_3_0_3_does_not_replay_the_2_10_8_wal() {
    if common::tempo_bin_dir().is_none() {
        return;
    }
    let mut to = common::target("tempo-3.0.3");
    to.upgrades_from
        .iter_mut()
        .find(|u| u.from == "tempo-2.10.8")
        .unwrap()
        .wal = WalExpectation::Replayed;
    let run = common::upgrade(&common::target("tempo-2.10.8"), &to, StoreSpec::EmbeddedS3).await;
    assert!(!run.passed());
    let Outcome::Fail(why) = common::outcome(&run, "upgrade.read_by_id") else {
        panic!("{:?}", common::outcome(&run, "upgrade.read_by_id"));
    };
    assert!(
        why.starts_with("WAL-only part: 3 of 3 traces unreadable") && why.contains("not found"),
        "{why}"
    );
    assert!(!why.contains("flushed part"), "{why}");
    let wal = note(&run, "WAL-only part: in tempo-2.10.8's WAL after");
    assert!(wal.contains("none of it found in blocks yet"), "{wal}");
}

/// Each bundled Tempo target file's config, rendered for every profile, is accepted by its own
/// release (`-config.verify=true`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_tempo_configs_are_accepted_by_their_release() {
    if common::tempo_bin_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["tempo-2.10.8", "tempo-3.0.2", "tempo-3.0.3"] {
        let file = common::target(name);
        let target = conformance::target::build(&file);
        let mut profiles = vec![None];
        profiles.extend(file.profiles.keys().cloned().map(Some));
        for profile in profiles {
            let launch = conformance::target::Launch {
                store: conformance::store::StoreInfo::Local {
                    path: dir.path().join("store"),
                },
                data_dir: dir.path().join(name),
                profile: profile.clone(),
                ports: conformance::target::Ports {
                    http: 3200,
                    grpc: 4317,
                    otlp_http: 4318,
                    internal_grpc: 9095,
                },
            };
            let config = target.rendered_config(&launch).unwrap();
            let v = target.check_config(&config, dir.path()).await.unwrap();
            assert!(v.accepted, "{name} {profile:?}: {}", v.output);
        }
    }
}
