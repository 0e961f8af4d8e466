//! Load while targets are swapped: a probe that writes one small trace every few
//! milliseconds to the fixed OTLP endpoint and records when writes were acknowledged (the
//! availability gap is the longest stretch without one), plus an optional loadgen scenario
//! driven at the same endpoint.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::checks::Written;
use crate::fixtures;
use crate::otlp::{Sender, Transport};

/// Pause between probe writes.
const PROBE_EVERY: Duration = Duration::from_millis(25);

/// What the probe saw.
#[derive(Debug, Default)]
pub struct ProbeResult {
    /// Acknowledged traces (read back at the end).
    pub acked: Vec<Written>,
    /// Writes refused or failed.
    pub failed: u64,
    /// Longest time between two acknowledged writes.
    pub gap: Duration,
}

/// A running probe and loadgen run.
pub struct Load {
    stop: Arc<AtomicBool>,
    probe: JoinHandle<ProbeResult>,
    loadgen: Option<JoinHandle<Result<loadgen::report::model::Report, String>>>,
}

impl Load {
    /// Start the probe (and the scenario, when given) against fixed endpoints.
    pub fn start(
        sender: Sender,
        transport: Transport,
        scenario: Option<&Path>,
        otlp: &str,
        query: &str,
        tenant: Option<String>,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let probe = tokio::spawn(async move {
            let mut r = ProbeResult::default();
            let mut last_ok = Instant::now();
            while !flag.load(Ordering::Acquire) {
                let (id, spans) = fixtures::simple_trace("upgrade-probe", 1);
                let ok = matches!(
                    sender.send(transport, &fixtures::request(spans.clone()), false).await,
                    Ok(a) if a.ok() && a.rejected_spans == 0
                );
                if ok {
                    r.gap = r.gap.max(last_ok.elapsed());
                    last_ok = Instant::now();
                    r.acked.push(Written {
                        id,
                        spans,
                        part: "probe writes during the switch",
                    });
                } else {
                    r.failed += 1;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
            r.gap = r.gap.max(last_ok.elapsed());
            r
        });
        let loadgen = match scenario {
            None => None,
            Some(path) => {
                let scenario = loadgen::scenario::Scenario::load(path)
                    .map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))?;
                let opts = loadgen::run::RunOptions {
                    scenario_file: path.display().to_string(),
                    target: loadgen::target::TargetOverrides {
                        otlp: Some(otlp.to_owned()),
                        query: Some(query.to_owned()),
                        protocol: None,
                        tenant,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                Some(tokio::spawn(async move {
                    loadgen::run::run(scenario, &opts)
                        .await
                        .map_err(|e| e.to_string())
                }))
            }
        };
        Ok(Self {
            stop,
            probe,
            loadgen,
        })
    }

    /// Stop the probe and wait for the scenario to finish; returns the probe's result and a
    /// one-line loadgen summary with the spans it found lost.
    pub async fn finish(self) -> (ProbeResult, Option<(String, u64)>) {
        self.stop.store(true, Ordering::Release);
        let probe = self.probe.await.unwrap_or_default();
        let loadgen = match self.loadgen {
            None => None,
            Some(h) => Some(match h.await {
                Ok(Ok(report)) => {
                    let lost = loadgen::run::lost_spans(report.verification.as_ref());
                    let t = &report.totals;
                    (
                        format!(
                            "loadgen: {} spans sent, {} accepted, {} requests of {} ok, {lost} acknowledged spans lost",
                            t.spans_sent, t.spans_accepted, t.requests_ok, t.requests_sent
                        ),
                        lost,
                    )
                }
                Ok(Err(e)) => (format!("loadgen failed: {e}"), 0),
                Err(e) => (format!("loadgen task failed: {e}"), 0),
            }),
        };
        (probe, loadgen)
    }
}
