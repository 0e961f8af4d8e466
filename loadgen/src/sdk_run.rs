//! The schedule in `sdk` mode: spans are created and ended through `opentelemetry_sdk` at
//! their intended times, and the SDK's batch processor and `opentelemetry-otlp` exporter
//! send them, as in an instrumented application.
//!
//! Export latency here is the duration of each SDK `export()` call (there is no intended
//! send time per export: the batch processor decides when to send). Read-back covers every
//! sampled trace after the final flush, so spans the SDK dropped from a full queue show up
//! as lost, which is what an application owner would lose.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tracing::warn;

use crate::exporter::sdk::{ExportObservation, SdkDriver};
use crate::scheduler::{Plan, SchedulerStats, wait_until};
use crate::stats::hist;
use crate::stats::recorder::{Observation, Recorder};
use crate::verify::{Expected, Verifier};
use crate::workload::Mix;

/// The observation callback that feeds SDK export calls into the recorder.
pub fn observer(recorder: Arc<Recorder>, start: Instant) -> crate::exporter::sdk::ExportCallback {
    Arc::new(move |o: ExportObservation| {
        recorder.observe(&Observation {
            second: start.elapsed().as_secs() as u32,
            spans: o.spans as u64,
            bytes: 0,
            corrected: o.latency,
            uncorrected: o.latency,
            lag: Duration::ZERO,
            result: o.result,
        });
    })
}

/// Run the schedule through the SDK, flush, then submit sampled traces for read-back.
pub async fn run(
    plan: Plan,
    mix: Arc<Mix>,
    driver: Arc<SdkDriver>,
    recorder: Arc<Recorder>,
    verifier: Option<Arc<Verifier>>,
    run_start_unix_ns: u64,
) -> SchedulerStats {
    let mut gen_lag = hist::new_us();
    let (index, count) = plan.shard;
    let mut next_seq = index;
    let mut sampled: Vec<Expected> = Vec::new();
    let mut cum_spans = 0.0f64;
    let mut late: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut late_parts: HashMap<u64, Vec<ResourceSpans>> = HashMap::new();
    let mut late_id = 0u64;
    let mut traces = 0u64;
    let start = Instant::now();
    while let Some(due_s) = plan.rate.due(cum_spans + plan.batch as f64) {
        let due_ns = (due_s * 1e9) as u64;
        let mut batch: Vec<ResourceSpans> = Vec::new();
        let mut spans = 0usize;
        let mut new_traces = 0u64;
        while late.peek().is_some_and(|Reverse((d, _))| *d <= due_ns) {
            if let Some(Reverse((_, id))) = late.pop()
                && let Some(rs) = late_parts.remove(&id)
            {
                spans += count_spans(&rs);
                batch.extend(rs);
            }
        }
        while spans < plan.batch {
            let seq = next_seq;
            next_seq += count;
            let entry = mix.entry_of(seq);
            let start_ns = run_start_unix_ns + due_ns;
            let trace = mix.generate(entry, seq, start_ns);
            new_traces += 1;
            if sampled.len() < plan.max_samples && mix.sampled(seq, plan.sample) {
                sampled.push(Expected {
                    trace_id: trace.trace_id,
                    resource_spans: trace
                        .parts
                        .iter()
                        .flat_map(|p| p.resource_spans.clone())
                        .collect(),
                    sent_at: start + Duration::from_nanos(due_ns),
                });
            }
            for (i, part) in trace.parts.into_iter().enumerate() {
                if i == 0 {
                    spans += count_spans(&part.resource_spans);
                    batch.extend(part.resource_spans);
                } else {
                    late.push(Reverse((due_ns + part.delay.as_nanos() as u64, late_id)));
                    late_parts.insert(late_id, part.resource_spans);
                    late_id += 1;
                }
            }
        }
        traces += new_traces;
        cum_spans += spans as f64;
        let intended = start + Duration::from_nanos(due_ns);
        recorder.offered(due_s as u32, spans as u64, new_traces);
        wait_until(intended).await;
        hist::record(&mut gen_lag, intended.elapsed().as_micros() as u64);
        if let Err(e) = driver.emit(&batch) {
            warn!(error = %e, "sdk emit failed");
        }
    }
    while let Some(Reverse((due_ns, id))) = late.pop() {
        wait_until(start + Duration::from_nanos(due_ns)).await;
        if let Some(rs) = late_parts.remove(&id)
            && let Err(e) = driver.emit(&rs)
        {
            warn!(error = %e, "sdk emit failed");
        }
    }
    if let Err(e) = driver.flush().await {
        warn!(error = %e, "sdk flush incomplete");
    }
    let elapsed = start.elapsed();
    if let Some(v) = verifier {
        for e in sampled {
            v.submit(e);
        }
    }
    SchedulerStats {
        generator_lag: gen_lag,
        backlog_wait: hist::new_us(),
        traces,
        elapsed,
    }
}

fn count_spans(rs: &[ResourceSpans]) -> usize {
    rs.iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}
