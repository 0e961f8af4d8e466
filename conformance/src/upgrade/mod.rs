//! Upgrade N → N+1 on one store and one data directory.
//!
//! 1. Start N; write a corpus: one part flushed to blocks (the target's flush call), one part
//!    only in N's WAL. Both must read back through N.
//! 2. Stop N: killed when N+1 declares it replays N's WAL, else stopped gracefully (pre-stop
//!    calls, e.g. `/flush`).
//! 3. `upgrade.config_migration`: N's config, as rendered, checked by N+1 against the declared
//!    outcome.
//! 4. Start N+1 (on N's ports under load): the whole corpus by id and by search, then writes.
//! 5. Stop N+1; start N again (`upgrade.rollback`, as declared: reads, or fails cleanly).
//! 6. Start N+1 again: everything still reads (`upgrade.rollback_no_damage`).

pub mod checks;
pub mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cases::{Case, Run, write_with};
use crate::fixtures::{self, s};
use crate::otlp::{Sender, Transport};
use crate::runner::{CaseResult, Outcome, TargetRun, nonce};
use crate::spec::{Capability, TargetFile, TargetKind, UpgradeExpectation};
use crate::store::Store;
use crate::target::{self, Launch, Ports, Running, Target};
use checks::{Written, judge_config, read_all, read_cleanly, search_all};

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

fn sender_for(file: &TargetFile, r: &Running) -> (Sender, Transport) {
    let caps = file.effective_capabilities();
    let t = if caps.contains(&Capability::OtlpGrpc) {
        Transport::Grpc
    } else {
        Transport::HttpProtobuf
    };
    (
        Sender::new(
            r.otlp_grpc.clone(),
            r.otlp_http.clone(),
            file.tenant.clone(),
        ),
        t,
    )
}

async fn write_part(
    file: &TargetFile,
    running: &Running,
    nonce: &str,
    part: &'static str,
) -> anyhow::Result<Vec<Written>> {
    let (sender, t) = sender_for(file, running);
    let mut out = Vec::new();
    for _ in 0..PART_SIZE {
        let (id, mut spans) = fixtures::simple_trace(&format!("upgrade-{nonce}"), 3);
        spans[0].scope_spans[0].spans[0]
            .attributes
            .push(s("conf.upgrade", nonce));
        write_with(&sender, t, spans.clone()).await?;
        out.push(Written { id, spans, part });
    }
    read_all(file, running, &out)
        .await
        .with_context(|| format!("{} did not read back what it acknowledged", file.name))?;
    Ok(out)
}

async fn flush(
    file: &TargetFile,
    running: &Running,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    match &file.flush {
        Some(call) => {
            let status = target::call(&running.http, call)
                .await
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(
                (200..300).contains(&status),
                "{} flush answered {status}",
                file.name
            );
        }
        None => notes.push(format!(
            "{} has no flush call: the `flushed` part may still be only in memory and WAL",
            file.name
        )),
    }
    Ok(())
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
        .unwrap_or(UpgradeExpectation {
            from: from.name.clone(),
            config: Default::default(),
            wal: Default::default(),
            rollback: Default::default(),
        });
    let mut f = Flow {
        from,
        to,
        exp,
        verdicts: BTreeMap::new(),
        notes: Vec::new(),
    };
    let started = Instant::now();
    for file in [from, to] {
        if let Some(reason) = target::unavailable_here(file).await {
            let why = format!("{}: {reason}", file.name);
            for (id, _) in CASES {
                f.set(
                    id,
                    if crate::docker::required() {
                        Outcome::Fail(why.clone())
                    } else {
                        Outcome::Skip(why.clone())
                    },
                );
            }
        }
    }
    if f.verdicts.is_empty()
        && let Err(e) = flow(&mut f, store, opts).await
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
                outcome: f
                    .verdicts
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| Outcome::Fail("not reached".into())),
                seconds,
            })
            .collect(),
    }
}

async fn flow(f: &mut Flow<'_>, store: &Store, opts: &UpgradeOptions) -> anyhow::Result<()> {
    let (from, to) = (f.from, f.to);
    let declared: Vec<&str> = to.upgrades_from.iter().map(|u| u.from.as_str()).collect();
    f.check(
        "upgrade.declared_path",
        match to.upgrade_from(&from.name) {
            Some(_) => Ok(()),
            None => Err(anyhow::anyhow!(
                "{} declares upgrades from {declared:?} only: {} → {} skips a release or is untested",
                to.name,
                from.name,
                to.name
            )),
        },
    );
    for (file, cap) in [(from, Capability::Lifecycle), (to, Capability::Lifecycle)] {
        if file.kind == TargetKind::Remote || !file.effective_capabilities().contains(&cap) {
            anyhow::bail!(
                "{} has no lifecycle: an upgrade needs targets it can start and stop",
                file.name
            );
        }
    }
    if opts.under_load.is_none() {
        f.set(
            "upgrade.availability_gap",
            Outcome::Skip("runs only with --under-load".into()),
        );
    }
    let nonce = nonce();
    let data_dir = opts.work_dir.join("upgrade-data");
    let launch = Launch {
        store: store.info.clone(),
        data_dir: data_dir.clone(),
        profile: None,
        ports: Ports::default(),
    };

    // 1. Seed with N.
    let mut n = target::build(from);
    let run_n = n
        .start(&launch)
        .await
        .with_context(|| format!("start {}", from.name))?;
    let mut corpus = write_part(from, &run_n, &nonce, "flushed part").await?;
    flush(from, &run_n, &mut f.notes).await?;
    corpus.extend(write_part(from, &run_n, &nonce, "WAL-only part").await?);
    let n_config = n.rendered_config(&Launch {
        ports: run_n.ports(),
        ..launch.clone()
    })?;

    let load = match &opts.under_load {
        Some(path) => {
            let (sender, t) = sender_for(from, &run_n);
            let otlp = match t {
                Transport::Grpc => run_n.otlp_grpc.clone(),
                _ => run_n.otlp_http.clone(),
            }
            .unwrap_or_default();
            Some(load::Load::start(
                sender,
                t,
                Some(path),
                &otlp,
                &run_n.http,
                from.tenant.clone(),
            )?)
        }
        None => None,
    };
    if load.is_some() {
        // Let the load reach a steady state on N before the switch.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // 2. Stop N.
    match f.exp.wal {
        crate::spec::WalExpectation::Replayed => n.kill().await?,
        crate::spec::WalExpectation::FlushedBeforeStop => {
            let r = n.stop(&from.stop).await?;
            f.notes
                .extend(r.notes.into_iter().map(|x| format!("{}: {x}", from.name)));
        }
    }
    drop(n);

    // 3. Config migration.
    let mut m = target::build(to);
    let verdict = match m.check_config(&n_config, &opts.work_dir).await {
        Ok(v) => {
            // Warnings of an accepted config are worth reading in the report.
            if v.accepted {
                f.notes.extend(
                    v.output
                        .lines()
                        .filter(|l| l.starts_with("warning:"))
                        .map(|l| format!("{} config check: {l}", to.name)),
                );
            }
            judge_config(&v, &f.exp.config)
        }
        Err(e) => Outcome::Skip(format!("cannot check a config: {e}")),
    };
    f.set("upgrade.config_migration", verdict);

    // 4. N+1 on N's data.
    let ports = if load.is_some() {
        run_n.ports()
    } else {
        Ports::default()
    };
    let launch_m = Launch {
        ports,
        ..launch.clone()
    };
    let run_m = match m.start(&launch_m).await {
        Ok(r) => r,
        Err(e) => {
            let why = format!("{} did not start on {}'s data: {e}", to.name, from.name);
            for id in [
                "upgrade.read_by_id",
                "upgrade.read_by_search",
                "upgrade.write_after",
                "upgrade.availability_gap",
            ] {
                f.set(id, Outcome::Fail(why.clone()));
            }
            if let Some(l) = load {
                l.finish().await;
            }
            return rollback(f, &launch, &corpus, &[]).await;
        }
    };
    f.check("upgrade.read_by_id", read_all(to, &run_m, &corpus).await);
    if to
        .effective_capabilities()
        .contains(&Capability::SearchTags)
    {
        f.check(
            "upgrade.read_by_search",
            search_all(to, &run_m, &nonce, &corpus).await,
        );
    } else {
        f.set(
            "upgrade.read_by_search",
            Outcome::Skip(format!("{} lacks capability search_tags", to.name)),
        );
    }
    let newer = match write_part(to, &run_m, &nonce, "written by the newer target").await {
        Ok(w) => {
            let mut notes = Vec::new();
            let r = flush(to, &run_m, &mut notes).await;
            f.notes.extend(notes);
            f.check("upgrade.write_after", r);
            w
        }
        Err(e) => {
            f.check("upgrade.write_after", Err(e));
            Vec::new()
        }
    };
    if let Some(l) = load {
        let (probe, lg) = l.finish().await;
        f.notes.push(format!(
            "availability gap {:.2}s: the longest time without an acknowledged probe write ({} acknowledged, {} refused or failed)",
            probe.gap.as_secs_f64(),
            probe.acked.len(),
            probe.failed
        ));
        let mut r = read_all(to, &run_m, &probe.acked).await;
        if let Some((summary, lost)) = lg {
            f.notes.push(summary);
            if r.is_ok() && lost > 0 {
                r = Err(anyhow::anyhow!(
                    "loadgen found {lost} acknowledged spans lost"
                ));
            }
        }
        f.check("upgrade.availability_gap", r);
    }
    let r = m.stop(&to.stop).await?;
    f.notes
        .extend(r.notes.into_iter().map(|x| format!("{}: {x}", to.name)));
    drop(m);
    rollback(f, &launch, &corpus, &newer).await
}

async fn rollback(
    f: &mut Flow<'_>,
    launch: &Launch,
    corpus: &[Written],
    newer: &[Written],
) -> anyhow::Result<()> {
    let (from, to) = (f.from, f.to);
    let mut everything = corpus.to_vec();
    everything.extend_from_slice(newer);
    let mut n: Box<dyn Target> = target::build(from);
    let fails_cleanly = f.exp.rollback == crate::spec::RollbackExpectation::FailsCleanly;
    match n.start(launch).await {
        Err(e) if fails_cleanly => {
            f.notes
                .push(format!("rollback: {} refused to start: {e}", from.name));
            f.set("upgrade.rollback", Outcome::Pass);
        }
        Err(e) => f.set(
            "upgrade.rollback",
            Outcome::Fail(format!(
                "{} did not start on data {} wrote: {e}",
                from.name, to.name
            )),
        ),
        Ok(run) => {
            if fails_cleanly {
                match read_cleanly(from, &run, &everything).await {
                    Ok(summary) => {
                        f.notes
                            .push(format!("rollback to {}: {summary}", from.name));
                        f.set("upgrade.rollback", Outcome::Pass);
                    }
                    Err(e) => f.check("upgrade.rollback", Err(e)),
                }
            } else {
                f.check("upgrade.rollback", read_all(from, &run, &everything).await);
            }
            let r = n.stop(&from.stop).await?;
            f.notes
                .extend(r.notes.into_iter().map(|x| format!("{}: {x}", from.name)));
        }
    }
    drop(n);
    let mut m = target::build(to);
    match m.start(launch).await {
        Ok(run) => {
            f.check(
                "upgrade.rollback_no_damage",
                read_all(to, &run, &everything).await,
            );
            let _ = m.stop(&to.stop).await;
        }
        Err(e) => f.set(
            "upgrade.rollback_no_damage",
            Outcome::Fail(format!(
                "{} did not start again after the rollback: {e}",
                to.name
            )),
        ),
    }
    Ok(())
}
