//! The open-loop scheduler.
//!
//! Request *k* is due when the rate plan says its spans are due; it is sent then whatever
//! happened to earlier requests (open loop). When `max_in_flight` requests are pending the
//! next one waits, and its latency still counts from its intended time (the coordinated
//! omission correction). Two lags are kept apart: how late the generator itself produced a
//! request (`generator lag`: CPU), and how long it then waited for an in-flight slot
//! (`backend backlog`).
//!
//! Requests are produced one after another, so every moment the schedule is behind belongs
//! to exactly one request and one of two causes, reported to the recorder
//! ([`Recorder::pace`]): from the later of its intended time and the previous send until it
//! was ready, the generator was behind with a slot free; from ready until a slot freed up,
//! every slot was busy waiting on the backend. A request that inherits lateness from a
//! slot wait is not blamed on the generator a second time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::exporter::{EncodedRequest, Exporter, OutcomeClass};
use crate::scenario::rate::RatePlan;
use crate::stats::hist;
use crate::stats::recorder::{Observation, Recorder};
use crate::verify::{Expected, Verifier};
use crate::workload::{LatePart, Mix};

/// What the scheduler needs.
pub struct Plan {
    /// Rate plan of this shard.
    pub rate: RatePlan,
    /// Spans per request (a target: trace parts are never split).
    pub batch: usize,
    /// Most requests in flight.
    pub max_in_flight: usize,
    /// This shard's index and the shard count (sequence numbers `index + k·count`).
    pub shard: (u64, u64),
    /// Fraction of traces read back.
    pub sample: f64,
    /// Most traces read back.
    pub max_samples: usize,
    /// Highest sequence number sent and acknowledged so far (shared with the query load).
    pub sent: Arc<SeqWatermark>,
}

/// The highest sequence number whose request the backend accepted, shared between the
/// scheduler (which raises it) and the query-load driver (which looks traces up below it).
///
/// It is raised when the answer arrives, not when the request leaves, so a trace below it
/// was acknowledged, unless its own request failed, or is still in flight, while a later
/// one was already accepted (requests are answered out of order).
#[derive(Debug, Default)]
pub struct SeqWatermark {
    /// Highest sequence number + 1; 0 while nothing was acknowledged.
    next: AtomicU64,
}

impl SeqWatermark {
    /// Note that the request carrying trace `seq` was accepted.
    pub fn record(&self, seq: u64) {
        self.next
            .fetch_max(seq.saturating_add(1), Ordering::Relaxed);
    }

    /// The highest acknowledged sequence number, if any.
    pub fn highest(&self) -> Option<u64> {
        self.next.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// A sampled trace waiting for all its parts to be acknowledged.
struct Pending {
    entry: usize,
    start_ns: u64,
    parts_left: usize,
    failed: bool,
    sent_at: Instant,
}

/// Health figures of the generator itself.
pub struct SchedulerStats {
    /// How late requests were produced (µs).
    pub generator_lag: Histogram<u64>,
    /// How long produced requests waited for an in-flight slot (µs).
    pub backlog_wait: Histogram<u64>,
    /// Traces started.
    pub traces: u64,
    /// Wall time of the schedule.
    pub elapsed: Duration,
}

struct Shared {
    recorder: Arc<Recorder>,
    verifier: Option<Arc<Verifier>>,
    mix: Arc<Mix>,
    pending: Mutex<HashMap<u64, Pending>>,
    sent: Arc<SeqWatermark>,
}

/// Run the schedule to its end and wait for every request to finish.
///
/// The schedule runs on a thread of its own (the pacer) that sleeps until each request is
/// due ([`pace_until`]); requests are sent and answered on the runtime's workers. A pacer
/// that spun on the clock instead (the runtime's timer has 1 ms ticks) kept a core busy at
/// 1,000 requests/s (loadgen at 0.99 cores against 0.16 now, at 100k spans/s), taken from
/// the backend when both run on one machine.
pub async fn run(
    plan: Plan,
    mix: Arc<Mix>,
    exporter: Arc<dyn Exporter>,
    recorder: Arc<Recorder>,
    verifier: Option<Arc<Verifier>>,
    run_start_unix_ns: u64,
) -> SchedulerStats {
    let handle = tokio::runtime::Handle::current();
    let started = Instant::now();
    let paced = tokio::task::spawn_blocking(move || {
        handle.block_on(schedule(
            plan,
            mix,
            exporter,
            recorder,
            verifier,
            run_start_unix_ns,
        ))
    })
    .await;
    match paced {
        Ok(stats) => stats,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled: the runtime is shutting down and nothing will read the figures.
            Err(_) => SchedulerStats {
                generator_lag: hist::new_us(),
                backlog_wait: hist::new_us(),
                traces: 0,
                elapsed: started.elapsed(),
            },
        },
    }
}

/// Block the calling thread until `t`. Only for the pacer thread, which runs nothing else:
/// a thread sleep wakes within about 0.1 ms of `t` without using the CPU meanwhile.
fn pace_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// The schedule itself, on the pacer thread.
async fn schedule(
    plan: Plan,
    mix: Arc<Mix>,
    exporter: Arc<dyn Exporter>,
    recorder: Arc<Recorder>,
    verifier: Option<Arc<Verifier>>,
    run_start_unix_ns: u64,
) -> SchedulerStats {
    let shared = Arc::new(Shared {
        recorder,
        verifier,
        mix: mix.clone(),
        pending: Mutex::new(HashMap::new()),
        sent: plan.sent.clone(),
    });
    let permits = Arc::new(Semaphore::new(plan.max_in_flight));
    let (index, count) = plan.shard;
    let mut next_seq = index;
    let mut sampled = 0usize;
    let mut cum_spans = 0.0f64;
    let mut late: BinaryHeap<Reverse<LatePart>> = BinaryHeap::new();
    let mut traces = 0u64;
    let start = Instant::now();
    let mut lag = Lag {
        generator: hist::new_us(),
        backlog: hist::new_us(),
        loop_free: start,
    };
    let end_s = plan.rate.duration();
    while let Some(due_s) = plan.rate.due(cum_spans + plan.batch as f64) {
        let due_ns = (due_s * 1e9) as u64;
        let mut buf: Vec<u8> = Vec::with_capacity(plan.batch * 512);
        let mut spans = 0usize;
        let mut carried: Vec<(u64, bool)> = Vec::new(); // (seq, sampled)
        let mut new_traces = 0u64;
        while late.peek().is_some_and(|Reverse(p)| p.due_ns <= due_ns) {
            let Some(Reverse(p)) = late.pop() else { break };
            let t = mix.encoded(p.entry, p.seq);
            t.instantiate_into(p.part, mix.seed(), p.seq, p.start_ns, &mut buf);
            spans += t.part_spans(p.part);
            carried.push((p.seq, shared.pending.lock().contains_key(&p.seq)));
        }
        while spans < plan.batch {
            let seq = next_seq;
            next_seq += count;
            let entry = mix.entry_of(seq);
            let t = mix.encoded(entry, seq);
            let start_ns = run_start_unix_ns + due_ns;
            t.instantiate_into(0, mix.seed(), seq, start_ns, &mut buf);
            spans += t.part_spans(0);
            new_traces += 1;
            let is_sampled = sampled < plan.max_samples && mix.sampled(seq, plan.sample);
            if is_sampled {
                sampled += 1;
                shared.pending.lock().insert(
                    seq,
                    Pending {
                        entry,
                        start_ns,
                        parts_left: t.part_count(),
                        failed: false,
                        sent_at: start + Duration::from_nanos(due_ns),
                    },
                );
            }
            carried.push((seq, is_sampled));
            for part in 1..t.part_count() {
                late.push(Reverse(LatePart {
                    due_ns: due_ns + t.part_delay(part).as_nanos() as u64,
                    seq,
                    entry,
                    part,
                    start_ns,
                }));
            }
        }
        traces += new_traces;
        cum_spans += spans as f64;
        let intended = start + Duration::from_nanos(due_ns);
        send(
            &shared, &permits, &exporter, buf, spans, carried, intended, due_s, new_traces,
            &mut lag,
        )
        .await;
    }
    // Late parts still queued go out at their own times.
    while let Some(Reverse(p)) = late.pop() {
        let mut buf = Vec::new();
        let t = mix.encoded(p.entry, p.seq);
        t.instantiate_into(p.part, mix.seed(), p.seq, p.start_ns, &mut buf);
        let carried = vec![(p.seq, shared.pending.lock().contains_key(&p.seq))];
        let due_s = p.due_ns as f64 / 1e9;
        let intended = start + Duration::from_nanos(p.due_ns);
        send(
            &shared,
            &permits,
            &exporter,
            buf,
            t.part_spans(p.part),
            carried,
            intended,
            due_s.min(end_s),
            0,
            &mut lag,
        )
        .await;
    }
    // Wait for every in-flight request.
    let _all = permits.acquire_many(plan.max_in_flight as u32).await;
    SchedulerStats {
        generator_lag: lag.generator,
        backlog_wait: lag.backlog,
        traces,
        elapsed: start.elapsed(),
    }
}

/// Sleep until `t` on the runtime's timer (1 ms ticks: it wakes up to about a millisecond
/// late), for pacing that runs on the async workers (SDK mode, the query load). It does
/// not spin: spinning to the microsecond costs a core that the backend on the same machine
/// may need. The wire scheduler paces on a thread of its own instead ([`run`]).
pub(crate) async fn wait_until(t: Instant) {
    if t > Instant::now() {
        tokio::time::sleep_until(t.into()).await;
    }
}

/// The scheduler's own timing state.
struct Lag {
    /// Intended → ready (µs).
    generator: Histogram<u64>,
    /// Ready → sent, waiting for a slot (µs).
    backlog: Histogram<u64>,
    /// When the loop finished handing off the previous request.
    loop_free: Instant,
}

#[allow(clippy::too_many_arguments)]
async fn send(
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    exporter: &Arc<dyn Exporter>,
    buf: Vec<u8>,
    spans: usize,
    carried: Vec<(u64, bool)>,
    intended: Instant,
    due_s: f64,
    new_traces: u64,
    lag: &mut Lag,
) {
    let second = due_s as u32;
    shared.recorder.offered(second, spans as u64, new_traces);
    pace_until(intended);
    let ready = Instant::now();
    hist::record(
        &mut lag.generator,
        ready.saturating_duration_since(intended).as_micros() as u64,
    );
    // Waiting counts as "slots full" only when no slot was free at all.
    let (permit, sent) = match permits.clone().try_acquire_owned() {
        Ok(p) => (p, ready),
        Err(_) => {
            let Ok(p) = permits.clone().acquire_owned().await else {
                return;
            };
            (p, Instant::now())
        }
    };
    let slot_wait = sent.saturating_duration_since(ready);
    hist::record(&mut lag.backlog, slot_wait.as_micros() as u64);
    let behind = ready.saturating_duration_since(intended.max(lag.loop_free));
    shared.recorder.pace(second, slot_wait, behind);
    lag.loop_free = sent;
    let (shared, exporter) = (shared.clone(), exporter.clone());
    let bytes = buf.len() as u64;
    tokio::spawn(async move {
        let request = EncodedRequest {
            body: Bytes::from(buf),
            spans: spans as u32,
        };
        let result = exporter.send(request).await;
        let done = Instant::now();
        let ok = result.class == OutcomeClass::Ok;
        if result.class.accepted()
            && let Some(top) = carried.iter().map(|(seq, _)| *seq).max()
        {
            shared.sent.record(top);
        }
        shared.recorder.observe(&Observation {
            second,
            spans: spans as u64,
            bytes,
            corrected: done.saturating_duration_since(intended),
            uncorrected: done.saturating_duration_since(sent),
            lag: sent.saturating_duration_since(intended),
            result,
        });
        // Acknowledge before releasing the slot: the scheduler's final wait for every
        // slot then also covers read-back submissions.
        for (seq, sampled) in carried {
            if sampled {
                acknowledge(&shared, seq, ok);
            }
        }
        drop(permit);
    });
}

/// One part of sampled trace `seq` finished; submit it for read-back once all did.
fn acknowledge(shared: &Shared, seq: u64, ok: bool) {
    let done = {
        let mut pending = shared.pending.lock();
        let Some(p) = pending.get_mut(&seq) else {
            return;
        };
        p.parts_left = p.parts_left.saturating_sub(1);
        p.failed |= !ok;
        if p.parts_left > 0 {
            return;
        }
        pending.remove(&seq)
    };
    let (Some(p), Some(verifier)) = (done, &shared.verifier) else {
        return;
    };
    if p.failed {
        // Refused at ingest: counted from the responses, not a read-back loss.
        return;
    }
    let trace = shared.mix.generate(p.entry, seq, p.start_ns);
    verifier.submit(Expected {
        trace_id: trace.trace_id,
        resource_spans: trace
            .parts
            .into_iter()
            .flat_map(|part| part.resource_spans)
            .collect(),
        sent_at: p.sent_at,
    });
}
