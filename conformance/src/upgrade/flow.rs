//! The steps of one upgrade: seed N, stop it as N+1 declares, check the config, read and
//! write with N+1, roll back.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::checks::{Written, judge_config, read_all, read_cleanly, search_all};
use super::{Flow, PART_SIZE, UpgradeOptions, load};
use crate::cases::write_with;
use crate::fixtures::{self, TraceId, s};
use crate::otlp::{Sender, Transport};
use crate::persist;
use crate::runner::{Outcome, nonce};
use crate::spec::{Capability, RollbackExpectation, TargetFile, TargetKind, WalExpectation};
use crate::store::Store;
use crate::target::{self, Launch, Ports, Running, Target};

/// Label of the corpus part N put in object storage.
pub const FLUSHED: &str = "flushed part";
/// Label of the corpus part only in N's WAL.
pub const WAL_ONLY: &str = "WAL-only part";
/// Label of what N+1 wrote.
pub const NEWER: &str = "written by the newer target";

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

fn ids(w: &[Written]) -> Vec<TraceId> {
    w.iter().map(|w| w.id).collect()
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

/// `file`'s flush of `written`, described for the notes; `Ok(None)` when it declares none.
async fn flush(
    file: &TargetFile,
    running: &Running,
    written: &[Written],
) -> anyhow::Result<Option<String>> {
    let Some(declared) = &file.flush else {
        return Ok(None);
    };
    let t0 = Instant::now();
    persist::flush(file, running, file.tenant.as_deref(), &ids(written)).await?;
    let mut how = Vec::new();
    if let Some(c) = &declared.call {
        how.push(format!("{} {}", c.method, c.path));
    }
    if let Some(p) = &declared.until_found {
        how.push(format!("every trace found by {p}"));
    }
    Ok(Some(format!(
        "{} in {}'s object storage after {:.1}s ({})",
        written.first().map_or("", |w| w.part),
        file.name,
        t0.elapsed().as_secs_f64(),
        how.join(", then ")
    )))
}

pub(super) async fn flow(
    f: &mut Flow<'_>,
    store: &Store,
    opts: &UpgradeOptions,
) -> anyhow::Result<()> {
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
    for file in [from, to] {
        if file.kind == TargetKind::Remote
            || !file
                .effective_capabilities()
                .contains(&Capability::Lifecycle)
        {
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
    let launch = Launch {
        store: store.info.clone(),
        data_dir: opts.work_dir.join("upgrade-data"),
        profile: None,
        ports: Ports::default(),
    };

    // 1. Seed with N: one part in object storage, one part only in its WAL.
    let mut n = target::build(from);
    let run_n = n
        .start(&launch)
        .await
        .with_context(|| format!("start {}", from.name))?;
    let seeded_at = Instant::now();
    let mut corpus = write_part(from, &run_n, &nonce, FLUSHED).await?;
    match flush(from, &run_n, &corpus).await {
        Ok(Some(note)) => f.notes.push(note),
        Ok(None) => f.notes.push(format!(
            "{} declares no `flush`: the flushed part may still be only in memory and WAL",
            from.name
        )),
        Err(e) => anyhow::bail!("{}'s flush of the first part failed: {e:#}", from.name),
    }
    let mark = persist::wal_mark(from, &run_n).await?;
    let wal_part = write_part(from, &run_n, &nonce, WAL_ONLY).await?;
    corpus.extend(wal_part.iter().cloned());
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

    // 2. Stop N, as N+1 declares.
    match f.exp.wal {
        WalExpectation::Replayed => {
            let waited = persist::await_wal(from, &run_n, mark, wal_part.len())
                .await
                .with_context(|| format!("{}'s WAL-only part", from.name))?;
            let in_blocks =
                persist::count_in_blocks(from, &run_n, from.tenant.as_deref(), &ids(&wal_part))
                    .await?;
            f.notes.push(format!(
                "{WAL_ONLY}: in {}'s WAL {}; {}; then {} was killed",
                from.name,
                if from.wal_append.is_some() {
                    format!(
                        "after {:.1}s (its `wal_append` counter)",
                        waited.as_secs_f64()
                    )
                } else {
                    "when acknowledged".to_owned()
                },
                match in_blocks {
                    Some(0) => "none of it found in blocks yet".to_owned(),
                    Some(k) => format!("{k} of {} traces already found in blocks", wal_part.len()),
                    None => "blocks not checked (no `flush.until_found`)".to_owned(),
                },
                from.name
            ));
            n.kill().await?;
        }
        WalExpectation::FlushedBeforeStop => {
            match flush(from, &run_n, &wal_part).await {
                Ok(Some(note)) => f.notes.push(format!("before the stop: {note}")),
                Ok(None) => f.notes.push(format!(
                    "{} declares no `flush`: stopped without one",
                    from.name
                )),
                Err(e) => anyhow::bail!("{}'s flush before the stop failed: {e:#}", from.name),
            }
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
            // Warnings of an accepted config, and what a rejection said, are worth reading
            // in the report.
            if v.accepted {
                f.notes.extend(
                    v.output
                        .lines()
                        .filter(|l| l.starts_with("warning:"))
                        .map(|l| format!("{} config check: {l}", to.name)),
                );
            } else {
                let said: Vec<&str> = v.output.lines().map(str::trim).take(6).collect();
                f.notes.push(format!(
                    "{} config check rejected {}'s config: {}",
                    to.name,
                    from.name,
                    said.join(" ")
                        .replace(&opts.work_dir.display().to_string(), "<work-dir>")
                ));
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
    let run_m = match m
        .start(&Launch {
            ports,
            ..launch.clone()
        })
        .await
    {
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
        match search_all(to, &run_m, &nonce, &corpus, seeded_at).await {
            Ok(note) => {
                f.notes.push(note);
                f.set("upgrade.read_by_search", Outcome::Pass);
            }
            Err(e) => f.check("upgrade.read_by_search", Err(e)),
        }
    } else {
        f.set(
            "upgrade.read_by_search",
            Outcome::Skip(format!("{} lacks capability search_tags", to.name)),
        );
    }
    let newer = match write_part(to, &run_m, &nonce, NEWER).await {
        Ok(w) => {
            match flush(to, &run_m, &w).await {
                Ok(note) => {
                    f.notes.extend(note);
                    f.set("upgrade.write_after", Outcome::Pass);
                }
                Err(e) => f.check("upgrade.write_after", Err(e)),
            }
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
    let fails_cleanly = f.exp.rollback == RollbackExpectation::FailsCleanly;
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
            if let Ok(r) = m.stop(&to.stop).await {
                f.notes
                    .extend(r.notes.into_iter().map(|x| format!("{}: {x}", to.name)));
            }
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
