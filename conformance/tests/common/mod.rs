//! Helpers shared by the conformance crate's tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use conformance::cases::Case;
use conformance::runner::{Outcome, TargetRun, run_target};
use conformance::spec::TargetFile;
use conformance::store::{Started, Store, StoreSpec};
use conformance::upgrade::{UpgradeOptions, run_upgrade};

/// `scenarios/targets/<name>.yaml` in the repository.
pub fn target_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/targets")
        .join(format!("{name}.yaml"))
}

/// A bundled target file.
pub fn target(name: &str) -> TargetFile {
    TargetFile::load(&target_path(name)).unwrap()
}

/// Start a store that needs no Docker.
pub async fn store(spec: StoreSpec, dir: &Path) -> Store {
    match Store::start(spec, dir).await.unwrap() {
        Started::Ready(s) => *s,
        Started::Skipped(r) => panic!("store {spec} skipped: {r}"),
    }
}

/// Run `cases` against `file` on a fresh store of `spec`.
pub async fn run(file: &TargetFile, spec: StoreSpec, cases: &[Case]) -> TargetRun {
    let dir = tempfile::tempdir().unwrap();
    let s = store(spec, dir.path()).await;
    let run = run_target(file, &s, cases, dir.path()).await;
    s.stop().await;
    run
}

/// Run the upgrade flow on a fresh store of `spec`.
pub async fn upgrade(from: &TargetFile, to: &TargetFile, spec: StoreSpec) -> TargetRun {
    let dir = tempfile::tempdir().unwrap();
    let s = store(spec, dir.path()).await;
    let opts = UpgradeOptions {
        work_dir: dir.path().to_path_buf(),
        under_load: None,
    };
    let run = run_upgrade(from, to, &s, &opts).await;
    s.stop().await;
    run
}

/// Every failure of a run, one per line.
pub fn failures(run: &TargetRun) -> String {
    run.results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some(format!("{}: {why}", r.id)),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Assert nothing failed, and that something passed.
pub fn assert_passed(run: &TargetRun) {
    assert!(
        run.passed(),
        "{} [{}] failed:\n{}",
        run.target,
        run.store,
        failures(run)
    );
    assert!(
        run.results.iter().any(|r| r.outcome == Outcome::Pass),
        "nothing passed"
    );
}

/// The outcome of `id`, which must have been selected.
pub fn outcome<'a>(run: &'a TargetRun, id: &str) -> &'a Outcome {
    run.outcome(id)
        .unwrap_or_else(|| panic!("{id} not in the run"))
}

/// The real Tempo releases the Tempo tests run, as named in `$TRACEBENCH_TEMPO_BIN_DIR`.
pub const TEMPO_BINARIES: [&str; 3] = ["tempo-v2.10.8", "tempo-v3.0.2", "tempo-v3.0.3"];

/// `Some(dir)` when `$TRACEBENCH_TEMPO_BIN_DIR` holds every binary of [`TEMPO_BINARIES`].
/// Otherwise prints one `SKIP` line with the reason (once per test binary, on stderr, past the
/// output capture) and returns `None`; with `TRACEBENCH_REQUIRE_TEMPO=1` it panics instead.
pub fn tempo_bin_dir() -> Option<PathBuf> {
    static SKIP_LINE: std::sync::Once = std::sync::Once::new();
    let reason = match std::env::var_os("TRACEBENCH_TEMPO_BIN_DIR").filter(|v| !v.is_empty()) {
        None => "TRACEBENCH_TEMPO_BIN_DIR is not set (ci/test.sh unpacks ../shared/tempo/*.xz and sets it)".to_owned(),
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let missing: Vec<&str> = TEMPO_BINARIES
                .into_iter()
                .filter(|b| !dir.join(b).is_file())
                .collect();
            if missing.is_empty() {
                return Some(dir);
            }
            format!("{} has no {}", dir.display(), missing.join(", "))
        }
    };
    if std::env::var("TRACEBENCH_REQUIRE_TEMPO").is_ok_and(|v| v == "1") {
        panic!("real Tempo required (TRACEBENCH_REQUIRE_TEMPO=1): {reason}");
    }
    // Straight to the process's stderr, past the test harness's output capture.
    SKIP_LINE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIP real Tempo tests: {reason}");
    });
    None
}
