//! Read-back verifier: proves that what the backend acknowledged can be read back intact.
//!
//! Sampled traces are submitted once every request that carried them was acknowledged.
//! Each is polled by id (v2, or v1 when the target has no v2 API; an empty v2 trace means
//! "not found", as Tempo answers) until it is complete or `verify.timeout` passes, then
//! compared span by span with the trace regenerated from `(seed, seq)`: missing, extra and
//! altered spans are counted and time-to-queryable is recorded in an HDR histogram.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use parking_lot::Mutex;
use tempo_api::TempoClient;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::report::model::Verification;
use crate::scenario::Verify;
use crate::stats::hist;

/// How many lookups run at once.
const CONCURRENCY: usize = 32;
/// Most example problems kept for the report.
const MAX_EXAMPLES: usize = 10;

/// One trace to check: what was sent, and when.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The spans as sent (regenerated from the seed).
    pub resource_spans: Vec<ResourceSpans>,
    /// Intended send time of its first part.
    pub sent_at: Instant,
}

/// What one comparison found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Diff {
    /// Expected spans the backend did not return.
    pub missing: u64,
    /// Spans returned that were not sent.
    pub extra: u64,
    /// Spans returned with different content.
    pub altered: u64,
}

impl Diff {
    /// True when the trace came back exactly.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.altered == 0
    }
}

type Keyed<'a> = HashMap<
    &'a [u8],
    (
        Option<&'a Resource>,
        Option<&'a InstrumentationScope>,
        &'a Span,
    ),
>;

fn by_span_id(rs: &[ResourceSpans]) -> Keyed<'_> {
    let mut out = HashMap::new();
    for r in rs {
        for s in &r.scope_spans {
            for span in &s.spans {
                out.insert(
                    span.span_id.as_slice(),
                    (r.resource.as_ref(), s.scope.as_ref(), span),
                );
            }
        }
    }
    out
}

/// Compare what was sent with what came back, span by span (resource, scope and every
/// span field: ids, names, times, attributes, events, links, status).
pub fn compare(expected: &[ResourceSpans], got: &[ResourceSpans]) -> Diff {
    let want = by_span_id(expected);
    let have = by_span_id(got);
    let mut d = Diff::default();
    for (id, w) in &want {
        match have.get(id) {
            None => d.missing += 1,
            Some(h) if h != w => d.altered += 1,
            Some(_) => {}
        }
    }
    d.extra = have.keys().filter(|id| !want.contains_key(*id)).count() as u64;
    d
}

#[derive(Default)]
struct State {
    v: Verification,
    /// Spans of every sampled trace (the denominator of the loss estimate).
    sampled_spans: u64,
    ttq: Option<Histogram<u64>>,
}

/// Runs lookups in the background; [`Verifier::finish`] waits for them.
pub struct Verifier {
    client: TempoClient,
    cfg: Verify,
    use_v2: bool,
    state: Arc<Mutex<State>>,
    permits: Arc<Semaphore>,
    tasks: Mutex<JoinSet<()>>,
}

impl Verifier {
    /// A verifier against the query API behind `client`. Probes whether the target has
    /// Tempo's v2 trace API (it falls back to v1 when not).
    pub async fn new(client: TempoClient, cfg: Verify) -> Self {
        let use_v2 = matches!(client.trace_raw("/api/v2/traces/1").await, Ok(r) if r.status == 200);
        Verifier {
            client,
            cfg,
            use_v2,
            state: Arc::new(Mutex::new(State {
                v: Verification::default(),
                sampled_spans: 0,
                ttq: Some(hist::new_with_max(3_600_000)),
            })),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Check one trace in the background.
    pub fn submit(&self, e: Expected) {
        let client = self.client.clone();
        let cfg = self.cfg.clone();
        let use_v2 = self.use_v2;
        let state = self.state.clone();
        let permits = self.permits.clone();
        {
            let mut g = self.state.lock();
            g.v.sampled_traces += 1;
            g.sampled_spans += by_span_id(&e.resource_spans).len() as u64;
        }
        self.tasks.lock().spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let outcome = poll(&client, use_v2, &cfg, &e).await;
            record(&state, &e, outcome, &cfg);
        });
    }

    /// Wait for every lookup, then return the results (`spans_accepted` scales the missing
    /// fraction into an estimate for the whole run) and the time-to-queryable histogram.
    pub async fn finish(&self, spans_accepted: u64) -> (Verification, Histogram<u64>) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        while tasks.join_next().await.is_some() {}
        let mut g = self.state.lock();
        let ttq = g
            .ttq
            .take()
            .unwrap_or_else(|| hist::new_with_max(3_600_000));
        let sampled_spans = g.sampled_spans;
        let v = &mut g.v;
        v.time_to_queryable = hist::percentiles(&ttq, 1.0);
        if sampled_spans > 0 && v.missing_spans > 0 {
            // Missing spans are sampled uniformly, so scale their fraction to the run.
            let frac = v.missing_spans as f64 / sampled_spans as f64;
            v.estimated_lost_spans =
                ((frac * spans_accepted as f64).round() as u64).max(v.missing_spans);
        }
        (v.clone(), ttq)
    }
}

enum Polled {
    Found { diff: Diff, after: Duration },
    NotFound { error: Option<String> },
}

async fn fetch(
    client: &TempoClient,
    use_v2: bool,
    id: &[u8; 16],
) -> Result<Option<Vec<ResourceSpans>>, String> {
    if use_v2 {
        client
            .trace_v2(id)
            .await
            .map(|o| o.map(|t| t.resource_spans))
            .map_err(|e| e.to_string())
    } else {
        client.trace_v1(id).await.map_err(|e| e.to_string())
    }
}

async fn poll(client: &TempoClient, use_v2: bool, cfg: &Verify, e: &Expected) -> Polled {
    let deadline = e.sent_at + cfg.delay.0 + cfg.timeout.0;
    tokio::time::sleep_until((e.sent_at + cfg.delay.0).into()).await;
    let mut wait = Duration::from_millis(50);
    let mut last: Option<Diff> = None;
    let mut error = None;
    loop {
        match fetch(client, use_v2, &e.trace_id).await {
            Ok(Some(got)) => {
                let diff = compare(&e.resource_spans, &got);
                if diff.is_clean() {
                    return Polled::Found {
                        diff,
                        after: e.sent_at.elapsed(),
                    };
                }
                last = Some(diff);
            }
            Ok(None) => {}
            Err(msg) => error = Some(msg),
        }
        if Instant::now() + wait > deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 3 / 2).min(Duration::from_secs(1));
    }
    match last {
        Some(diff) => Polled::Found {
            diff,
            after: e.sent_at.elapsed(),
        },
        None => Polled::NotFound { error },
    }
}

fn record(state: &Mutex<State>, e: &Expected, outcome: Polled, cfg: &Verify) {
    let spans = by_span_id(&e.resource_spans).len() as u64;
    let id = hex::encode(e.trace_id);
    let mut g = state.lock();
    let example = match outcome {
        Polled::Found { diff, after, .. } if diff.is_clean() => {
            g.v.complete_traces += 1;
            if let Some(h) = g.ttq.as_mut() {
                hist::record(h, after.as_millis() as u64);
            }
            None
        }
        Polled::Found { diff, .. } => {
            g.v.missing_spans += diff.missing;
            g.v.extra_spans += diff.extra;
            g.v.altered_spans += diff.altered;
            Some(format!(
                "trace {id}: {} of {spans} spans missing, {} extra, {} altered",
                diff.missing, diff.extra, diff.altered
            ))
        }
        Polled::NotFound { error } => {
            g.v.missing_traces += 1;
            g.v.missing_spans += spans;
            Some(match error {
                Some(err) => format!(
                    "trace {id}: not found after {:?} (last error: {err})",
                    cfg.timeout.0
                ),
                None => format!("trace {id}: not found after {:?}", cfg.timeout.0),
            })
        }
    };
    if let Some(x) = example
        && g.v.examples.len() < MAX_EXAMPLES
    {
        g.v.examples.push(x);
    }
}
