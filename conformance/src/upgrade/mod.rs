//! Upgrade N → N+1 on one store and one data directory.
//!
//! 1. Start N; write a corpus: one part put in object storage (N's `flush`: a call, a wait
//!    until a blocks-only read finds it, or both), one part only in N's WAL. Both must read
//!    back through N.
//! 2. Stop N: killed once the WAL-only part is in its WAL when N+1 declares it replays N's WAL,
//!    else flushed (N's `flush`, every trace) and stopped gracefully.
//! 3. `upgrade.config_migration`: N's config, as rendered, checked by N+1 against the declared
//!    outcome.
//! 4. Start N+1 (on N's ports under load): the whole corpus by id and by search (waiting, for
//!    a target that declares `search_backend_after`, until the corpus is old enough to be
//!    searched in blocks), then writes, flushed with N+1's `flush`.
//! 5. Stop N+1; start N again (`upgrade.rollback`, as declared: reads, or fails cleanly).
//! 6. Start N+1 again: everything still reads (`upgrade.rollback_no_damage`).
//!
//! Verdicts then go through the path's declared deviations, like a `run`'s.

pub mod checks;
mod flow;
pub mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::cases::{Case, Run};
use crate::outcome::judge;
use crate::runner::{CaseResult, Outcome, TargetRun};
use crate::spec::{TargetFile, UpgradeExpectation};
use crate::store::Store;
use crate::target;

/// Traces in each part of the corpus.
pub const PART_SIZE: usize = 3;

const CASES: [(&str, &str); 8] = [
    (
        "upgrade.declared_path",
        "the newer target declares an upgrade from the older one (no skipped release)",
    ),
    (
        "upgrade.config_migration",
        "the older config is accepted by the newer target, or rejected naming the keys, as declared",
    ),
    (
        "upgrade.read_by_id",
        "every trace the older target acknowledged (flushed blocks and WAL-only) reads back by id, unchanged",
    ),
    (
        "upgrade.read_by_search",
        "the older target's traces are found by tag search after the upgrade",
    ),
    (
        "upgrade.write_after",
        "the newer target accepts writes on the upgraded store and reads them back",
    ),
    (
        "upgrade.rollback",
        "the older target started again reads the newer data, or fails cleanly (no wrong data), as declared",
    ),
    (
        "upgrade.rollback_no_damage",
        "after the rollback attempt the newer target still reads everything",
    ),
    (
        "upgrade.availability_gap",
        "under load, no acknowledged write is lost across the switch (the gap is reported)",
    ),
];

/// The upgrade cases (run by `conformance upgrade`).
pub fn cases() -> Vec<Case> {
    CASES
        .iter()
        .map(|(id, description)| Case {
            id,
            needs: &[],
            profile: None,
            description,
            run: Run::Upgrade,
        })
        .collect()
}

/// Options of one upgrade run.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Scratch directory (data dir, configs, logs).
    pub work_dir: PathBuf,
    /// A loadgen scenario driven while the targets are swapped.
    pub under_load: Option<PathBuf>,
}

/// The state of one upgrade run: the two targets, what N+1 declares, verdicts so far.
struct Flow<'a> {
    from: &'a TargetFile,
    to: &'a TargetFile,
    exp: UpgradeExpectation,
    verdicts: BTreeMap<&'static str, Outcome>,
    notes: Vec<String>,
}

impl Flow<'_> {
    fn set(&mut self, id: &'static str, o: Outcome) {
        self.verdicts.entry(id).or_insert(o);
    }

    fn check(&mut self, id: &'static str, r: anyhow::Result<()>) {
        self.set(id, crate::runner::verdict(r));
    }

    fn fail_rest(&mut self, why: &str) {
        for (id, _) in CASES {
            self.set(id, Outcome::Fail(why.to_owned()));
        }
    }
}

/// Run the upgrade flow `from` → `to` on `store`.
pub async fn run_upgrade(
    from: &TargetFile,
    to: &TargetFile,
    store: &Store,
    opts: &UpgradeOptions,
) -> TargetRun {
    let exp = to
        .upgrade_from(&from.name)
        .cloned()
        .unwrap_or_else(|| UpgradeExpectation::full(&from.name));
    let mut f = Flow {
        from,
        to,
        exp,
        verdicts: BTreeMap::new(),
        notes: Vec::new(),
    };
    let started = Instant::now();
    for file in [from, to] {
        if let Some(u) = target::unavailable_here(file).await {
            let why = format!("{}: {}", file.name, u.reason);
            for (id, _) in CASES {
                f.set(
                    id,
                    if u.required {
                        Outcome::Fail(why.clone())
                    } else {
                        Outcome::Skip(why.clone())
                    },
                );
            }
        }
    }
    if f.verdicts.is_empty()
        && let Err(e) = flow::flow(&mut f, store, opts).await
    {
        f.notes.push(format!("flow stopped: {e:#}"));
        f.fail_rest(&format!("not reached: {e:#}"));
    }
    let seconds = started.elapsed().as_secs_f64();
    TargetRun {
        target: format!("{} → {}", from.name, to.name),
        store: store.spec.name().to_owned(),
        command: "upgrade".into(),
        notes: f.notes,
        results: CASES
            .iter()
            .map(|(id, description)| CaseResult {
                id: (*id).to_owned(),
                description: (*description).to_owned(),
                outcome: judge(
                    f.verdicts
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| Outcome::Fail("not reached".into())),
                    f.exp.deviations.get(*id),
                ),
                seconds,
            })
            .collect(),
    }
}
