//! Checks the upgrade flow makes: a corpus read back through one target, a config judged by
//! another, the rollback's "fails cleanly" rule.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tempo_api::TempoClient;

use crate::cases::{await_all_equal, read_with};
use crate::fixtures::{self, TraceId};
use crate::runner::Outcome;
use crate::spec::{Capability, ConfigExpectation, ConfigOutcome, TargetFile};
use crate::target::{ConfigVerdict, Running};

/// A written trace: its id, what was sent, and which part of the corpus it belongs to.
#[derive(Debug, Clone)]
pub struct Written {
    /// Trace id.
    pub id: TraceId,
    /// Spans as sent.
    pub spans: Vec<ResourceSpans>,
    /// `flushed`, `wal-only`, `written by N+1`, …
    pub part: &'static str,
}

/// A query client for `running` as `file` configures it.
pub fn client(file: &TargetFile, running: &Running) -> anyhow::Result<TempoClient> {
    Ok(TempoClient::new(&running.http)?
        .with_tenant(file.tenant.clone())
        .with_timeout(Duration::from_secs(60)))
}

/// Read every trace through `file`'s target at `running`; `Ok` when all are intact, else a
/// reason that counts the failures per part and quotes the first of each.
pub async fn read_all(
    file: &TargetFile,
    running: &Running,
    traces: &[Written],
) -> anyhow::Result<()> {
    let client = client(file, running)?;
    let v2 = file
        .effective_capabilities()
        .contains(&Capability::TraceByIdV2);
    let pairs: Vec<_> = traces.iter().map(|w| (w.id, w.spans.as_slice())).collect();
    let results = await_all_equal(&client, v2, &pairs, file).await;
    // Parts in corpus order (flushed before WAL-only).
    let mut parts: Vec<(&str, usize, usize, Option<String>)> = Vec::new();
    for (w, r) in traces.iter().zip(results) {
        let entry = match parts.iter_mut().find(|p| p.0 == w.part) {
            Some(e) => e,
            None => {
                parts.push((w.part, 0, 0, None));
                let last = parts.len() - 1;
                &mut parts[last]
            }
        };
        entry.1 += 1;
        if let Some(e) = r {
            entry.2 += 1;
            entry.3.get_or_insert(e);
        }
    }
    let bad: Vec<String> = parts
        .iter()
        .filter(|p| p.2 > 0)
        .map(|p| {
            format!(
                "{}: {} of {} traces unreadable or altered (first: {})",
                p.0,
                p.2,
                p.1,
                p.3.clone().unwrap_or_default()
            )
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", bad.join("; "))
    }
}

/// Rollback that may fail cleanly: every trace is either intact, not found, or answered with
/// an error; a trace answered with different content is damage.
pub async fn read_cleanly(
    file: &TargetFile,
    running: &Running,
    traces: &[Written],
) -> anyhow::Result<String> {
    let client = client(file, running)?;
    let v2 = file
        .effective_capabilities()
        .contains(&Capability::TraceByIdV2);
    #[derive(Clone, Copy, PartialEq)]
    enum Seen {
        Intact,
        Missing,
        Error,
    }
    // What is missing or failing is read again until `visible_within` is up, so "not found"
    // means not found after the time any read is given, not "not listed yet".
    let mut seen = vec![Seen::Missing; traces.len()];
    let deadline = Instant::now() + file.timings.visible_within.get();
    loop {
        for (w, s) in traces.iter().zip(seen.iter_mut()) {
            if *s == Seen::Intact {
                continue;
            }
            *s = match read_with(&client, v2, &w.id).await {
                Ok(None) => Seen::Missing,
                Err(_) => Seen::Error,
                Ok(Some(got)) => {
                    let d = crate::compare::diff(&w.spans, &got);
                    if d.is_empty() {
                        Seen::Intact
                    } else if d.iter().all(|x| x.contains("spans missing")) {
                        Seen::Missing
                    } else {
                        anyhow::bail!(
                            "{} answered trace {} ({}) with wrong content: {}",
                            file.name,
                            hex::encode(w.id),
                            w.part,
                            d.join("; ")
                        );
                    }
                }
            };
        }
        if seen.iter().all(|s| *s == Seen::Intact) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(file.timings.poll_interval.get()).await;
    }
    let count = |k: Seen| seen.iter().filter(|s| **s == k).count();
    Ok(format!(
        "{} intact, {} not found, {} answered with errors: no wrong data",
        count(Seen::Intact),
        count(Seen::Missing),
        count(Seen::Error)
    ))
}

/// Find every corpus trace by `tags=conf.upgrade=<nonce>` over the last hour. A target that
/// declares `search_backend_after` answers newer ranges from recent data only, so the search
/// goes on until the corpus (written at `seeded_at`) is older than that, then for the usual
/// `search_visible_within`. `Ok` carries a note saying how the search was made.
pub async fn search_all(
    file: &TargetFile,
    running: &Running,
    nonce: &str,
    corpus: &[Written],
    seeded_at: Instant,
) -> anyhow::Result<String> {
    let client = client(file, running)?;
    let backend_after = file.search_backend_after.map(|d| d.get());
    let deadline = (seeded_at + backend_after.unwrap_or_default()).max(Instant::now())
        + file.timings.search_visible_within.get();
    let how = match backend_after {
        Some(b) => format!(
            "{} answers ranges newer than {}s from recent data only (`search_backend_after`, Tempo's query_backend_after), so the older release's traces are searched in blocks once older than that",
            file.name,
            b.as_secs()
        ),
        None => format!("{} searches recent data and blocks alike", file.name),
    };
    let started = Instant::now();
    loop {
        let now = fixtures::now_ns() / 1_000_000_000;
        let req = tempo_api::search::SearchRequest::tags(format!("conf.upgrade={nonce}"))
            .with_range((now - 3600) as u32, (now + 60) as u32);
        let resp = client
            .search(&req)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        let found: Vec<fixtures::TraceId> = resp
            .traces
            .iter()
            .filter_map(|t| tempo_api::parse_trace_id(&t.trace_id).ok())
            .collect();
        let missing: Vec<&str> = corpus
            .iter()
            .filter(|w| !found.contains(&w.id))
            .map(|w| w.part)
            .collect();
        if missing.is_empty() {
            return Ok(format!(
                "search after the upgrade: tags=conf.upgrade=<nonce> over the last hour found all {} traces after {:.1}s; {how}",
                corpus.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {} traces not found by tags=conf.upgrade={nonce} over the last hour within {:.0}s (first missing: {}); {how}",
            missing.len(),
            corpus.len(),
            started.elapsed().as_secs_f64(),
            missing[0]
        );
        tokio::time::sleep(file.timings.poll_interval.get()).await;
    }
}

/// Judge a config check against the expectation.
pub fn judge_config(verdict: &ConfigVerdict, exp: &ConfigExpectation) -> Outcome {
    let missing: Vec<&str> = exp
        .keys
        .iter()
        .map(String::as_str)
        .filter(|k| !verdict.output.contains(k))
        .collect();
    // Long enough for a rejection that names a whole section key by key.
    let output: String = verdict.output.trim().chars().take(1500).collect();
    match (exp.outcome, verdict.accepted) {
        (ConfigOutcome::Accept, false) => {
            Outcome::Fail(format!("the previous config was rejected: {output}"))
        }
        (ConfigOutcome::Reject, true) => Outcome::Fail(format!(
            "the previous config was accepted; expected a rejection naming {:?}",
            exp.keys
        )),
        (_, accepted) if !missing.is_empty() => Outcome::Fail(format!(
            "{} without naming {missing:?}: {output}",
            if accepted { "accepted" } else { "rejected" }
        )),
        _ => Outcome::Pass,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn v(accepted: bool, output: &str) -> ConfigVerdict {
        ConfigVerdict {
            accepted,
            output: output.into(),
        }
    }

    #[test]
    fn config_verdicts() {
        let reject = ConfigExpectation {
            outcome: ConfigOutcome::Reject,
            keys: vec!["ingester.trace_idle_period".into()],
        };
        assert_eq!(
            judge_config(&v(false, "unknown key ingester.trace_idle_period"), &reject),
            Outcome::Pass
        );
        let Outcome::Fail(r) = judge_config(&v(false, "bad config"), &reject) else {
            panic!("a rejection that names no key must fail");
        };
        assert!(r.contains("ingester.trace_idle_period"), "{r}");
        assert!(matches!(
            judge_config(&v(true, ""), &reject),
            Outcome::Fail(_)
        ));
        let accept = ConfigExpectation::default();
        assert_eq!(judge_config(&v(true, ""), &accept), Outcome::Pass);
        assert!(matches!(
            judge_config(&v(false, "x"), &accept),
            Outcome::Fail(_)
        ));
        let warned = ConfigExpectation {
            outcome: ConfigOutcome::Accept,
            keys: vec!["page_size_bytes".into(), "max_memory_bytes".into()],
        };
        let both = "warning: storage.trace.block.page_size_bytes is deprecated\n\
                    warning: ingester.max_memory_bytes is deprecated\n";
        assert_eq!(judge_config(&v(true, both), &warned), Outcome::Pass);
        let Outcome::Fail(r) = judge_config(&v(true, ""), &warned) else {
            panic!("an acceptance without the declared warnings must fail");
        };
        assert!(r.contains("accepted without naming"), "{r}");
    }
}
