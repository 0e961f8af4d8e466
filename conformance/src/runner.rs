//! Running selected cases against one target on one store: opt-outs and missing capabilities
//! become skips with their reason; the rest run grouped by config profile, one target start
//! per profile, each case bounded in time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::info;

use crate::cases::{Case, Ctx, Run, catalog};
pub use crate::outcome::{CaseResult, KnownDeviation, Outcome, TargetRun, judge, verdict};
use crate::spec::{TargetFile, pattern_matches};
use crate::store::Store;
use crate::target::{self, Launch, Ports};

/// Single-target cases selected by `pattern` (all when `None`).
pub fn select(pattern: Option<&str>) -> Vec<Case> {
    catalog()
        .into_iter()
        .filter(|c| matches!(c.run, Run::Single(_)))
        .filter(|c| pattern.is_none_or(|p| pattern_matches(p, c.id)))
        .collect()
}

/// Why `case` cannot run on `file`, if it cannot.
pub fn skip_reason(file: &TargetFile, case: &Case) -> Option<String> {
    if let Some(reason) = file.opt_out(case.id) {
        return Some(format!("opted out: {reason}"));
    }
    let caps = file.effective_capabilities();
    let missing: Vec<String> = case
        .needs
        .iter()
        .filter(|c| !caps.contains(c))
        .map(|c| c.name())
        .collect();
    if !missing.is_empty() {
        return Some(format!("target lacks capability {}", missing.join(", ")));
    }
    if let Some(p) = case.profile
        && !file.profiles.contains_key(p)
    {
        return Some(format!("target declares no `{p}` profile"));
    }
    None
}

fn result(case: &Case, outcome: Outcome, started: Instant) -> CaseResult {
    CaseResult {
        id: case.id.to_owned(),
        description: case.description.to_owned(),
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// A fresh nonce for attribute values and tenant names.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// Run `cases` against `file` on `store`, with scratch files under `work_dir`.
pub async fn run_target(
    file: &TargetFile,
    store: &Store,
    cases: &[Case],
    work_dir: &Path,
) -> TargetRun {
    let mut run = TargetRun {
        target: file.name.clone(),
        store: store.spec.name().to_owned(),
        command: "run".into(),
        notes: Vec::new(),
        results: Vec::new(),
    };
    if let Some(u) = target::unavailable_here(file).await {
        let outcome = if u.required {
            Outcome::Fail(format!(
                "not run here: {} (and the environment requires it)",
                u.reason
            ))
        } else {
            Outcome::Skip(format!("not run here: {}", u.reason))
        };
        run.results = cases
            .iter()
            .map(|c| result(c, outcome.clone(), Instant::now()))
            .collect();
        return run;
    }
    let mut by_profile: Vec<(Option<&'static str>, Vec<Case>)> = Vec::new();
    for case in cases {
        if let Some(reason) = skip_reason(file, case) {
            run.results
                .push(result(case, Outcome::Skip(reason), Instant::now()));
            continue;
        }
        match by_profile.iter_mut().find(|(p, _)| *p == case.profile) {
            Some((_, v)) => v.push(*case),
            None => by_profile.push((case.profile, vec![*case])),
        }
    }
    for (profile, group) in by_profile {
        let data_dir: PathBuf =
            work_dir.join(format!("{}-{}", file.name, profile.unwrap_or("default")));
        run.results
            .extend(run_group(file, store, profile, &group, &data_dir, &mut run.notes).await);
    }
    let order: Vec<&str> = cases.iter().map(|c| c.id).collect();
    run.results
        .sort_by_key(|r| order.iter().position(|id| *id == r.id));
    run
}

async fn run_group(
    file: &TargetFile,
    store: &Store,
    profile: Option<&str>,
    group: &[Case],
    data_dir: &Path,
    notes: &mut Vec<String>,
) -> Vec<CaseResult> {
    let mut target = target::build(file);
    let launch = Launch {
        store: store.info.clone(),
        data_dir: data_dir.to_path_buf(),
        profile: profile.map(str::to_owned),
        ports: Ports::default(),
    };
    let started = Instant::now();
    let running = match target.start(&launch).await {
        Ok(r) => r,
        Err(e) => {
            return group
                .iter()
                .map(|c| {
                    result(
                        c,
                        Outcome::Fail(format!("target did not start: {e}")),
                        started,
                    )
                })
                .collect();
        }
    };
    if let Ok(c) = tempo_api::TempoClient::new(&running.http)
        && let Ok(b) = c.buildinfo().await
    {
        let note = format!("version {} (revision {})", b.version, b.revision);
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    let tenant = profile
        .and_then(|p| file.profiles.get(p))
        .and_then(|p| p.tenant.clone())
        .or_else(|| file.tenant.clone());
    let mut cx = Ctx {
        file,
        caps: file.effective_capabilities(),
        target: target.as_mut(),
        running,
        tenant,
        nonce: nonce(),
        work_dir: data_dir.to_path_buf(),
        corpus: None,
    };
    let mut out = Vec::new();
    for case in group {
        let Run::Single(body) = case.run else {
            continue;
        };
        info!(case = case.id, target = %file.name, "case starting");
        let t0 = Instant::now();
        let timeout = file.timings.case_timeout.get();
        let outcome = match tokio::time::timeout(timeout, body(&mut cx)).await {
            Ok(r) => verdict(r),
            Err(_) => Outcome::Fail(format!("did not finish within {}s", timeout.as_secs())),
        };
        let outcome = judge(outcome, file.deviation(case.id));
        info!(case = case.id, outcome = outcome.label(), "case done");
        let failed = matches!(outcome, Outcome::Fail(_));
        out.push(result(case, outcome, t0));
        if failed {
            recover(&mut cx).await;
        }
    }
    match cx.target.stop(&file.stop).await {
        Ok(r) => notes.extend(r.notes.into_iter().map(|n| format!("stop: {n}"))),
        Err(e) => notes.push(format!("stop failed: {e}")),
    }
    out
}

/// After a failed case, make sure the target still answers; start it again if not.
async fn recover(cx: &mut Ctx<'_>) {
    let ready = reqwest::get(format!("{}{}", cx.running.http, cx.file.readiness.path))
        .await
        .is_ok_and(|r| r.status().is_success());
    if ready {
        return;
    }
    let Some(launch) = cx.target.last_launch() else {
        return;
    };
    let _ = cx.target.kill().await;
    if let Ok(r) = cx.target.start(&launch).await {
        cx.running = r;
    }
}
