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
/// Shortest bound on one lookup (one started at or after its trace's deadline gets this).
const MIN_LOOKUP: Duration = Duration::from_secs(1);
/// How long after the last trace's deadline (`start + delay + timeout`, `start` the later of its intended send and its acknowledgement) the read-back
/// waits for lookups still queued or under way before it counts them as not found.
const FINISH_GRACE: Duration = Duration::from_secs(10);

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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Expected spans the backend did not return.
    pub missing: u64,
    /// Spans returned that were not sent.
    pub extra: u64,
    /// Spans returned with different content.
    pub altered: u64,
    /// What differed in the first altered span (`attributes`, `events`, …).
    pub first_alteration: Option<&'static str>,
}

impl Diff {
    /// True when the trace came back exactly.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.altered == 0
    }
}

type Keyed = HashMap<Vec<u8>, (Option<Resource>, Option<InstrumentationScope>, Span)>;

/// How strictly spans are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Strictness {
    /// Ignore span and link `flags` (the OpenTelemetry SDK sets them itself).
    pub ignore_flags: bool,
}

fn sort_kvs(kvs: &mut [opentelemetry_proto::tonic::common::v1::KeyValue]) {
    kvs.sort_by(|a, b| a.key.cmp(&b.key));
}

/// Attribute order carries no meaning in OTLP; backends and SDKs reorder freely.
fn normalize(span: &Span, s: Strictness) -> Span {
    let mut span = span.clone();
    sort_kvs(&mut span.attributes);
    for e in &mut span.events {
        sort_kvs(&mut e.attributes);
    }
    for l in &mut span.links {
        sort_kvs(&mut l.attributes);
        if s.ignore_flags {
            l.flags = 0;
        }
    }
    if s.ignore_flags {
        span.flags = 0;
    }
    // An unset status with no message means the same as no status at all.
    if span
        .status
        .as_ref()
        .is_some_and(|st| st.code == 0 && st.message.is_empty())
    {
        span.status = None;
    }
    span
}

fn by_span_id(rs: &[ResourceSpans], s: Strictness) -> Keyed {
    let mut out = HashMap::new();
    for r in rs {
        let mut resource = r.resource.clone();
        if let Some(res) = resource.as_mut() {
            sort_kvs(&mut res.attributes);
        }
        for ss in &r.scope_spans {
            let mut scope = ss.scope.clone();
            if let Some(sc) = scope.as_mut() {
                sort_kvs(&mut sc.attributes);
            }
            for span in &ss.spans {
                out.insert(
                    span.span_id.clone(),
                    (resource.clone(), scope.clone(), normalize(span, s)),
                );
            }
        }
    }
    out
}

type Entry = (Option<Resource>, Option<InstrumentationScope>, Span);

/// Name the first part of a span that differs.
fn what_differs(w: &Entry, h: &Entry) -> &'static str {
    let (ws, hs) = (&w.2, &h.2);
    if w.0 != h.0 {
        "resource"
    } else if w.1 != h.1 {
        "scope"
    } else if ws.trace_id != hs.trace_id || ws.parent_span_id != hs.parent_span_id {
        "ids"
    } else if ws.name != hs.name || ws.kind != hs.kind {
        "name or kind"
    } else if ws.start_time_unix_nano != hs.start_time_unix_nano
        || ws.end_time_unix_nano != hs.end_time_unix_nano
    {
        "times"
    } else if ws.attributes != hs.attributes {
        "attributes"
    } else if ws.events != hs.events {
        "events"
    } else if ws.links != hs.links {
        "links"
    } else if ws.status != hs.status {
        "status"
    } else if ws.trace_state != hs.trace_state {
        "trace_state"
    } else if ws.flags != hs.flags {
        "flags"
    } else {
        "dropped counts"
    }
}

/// Compare what was sent with what came back, span by span (resource, scope and every
/// span field: ids, names, times, attributes, events, links, status; attribute order is
/// ignored).
pub fn compare(expected: &[ResourceSpans], got: &[ResourceSpans], s: Strictness) -> Diff {
    let want = by_span_id(expected, s);
    let have = by_span_id(got, s);
    let mut d = Diff::default();
    for (id, w) in &want {
        match have.get(id) {
            None => d.missing += 1,
            Some(h) if h != w => {
                d.altered += 1;
                d.first_alteration.get_or_insert(what_differs(w, h));
            }
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
    /// Traces whose outcome is recorded.
    recorded: u64,
    /// Spans of the traces not yet recorded.
    pending_spans: u64,
    /// Latest `start + delay + timeout` of the submitted traces.
    last_deadline: Option<Instant>,
}

/// Runs lookups in the background; [`Verifier::finish`] waits for them.
pub struct Verifier {
    client: TempoClient,
    cfg: Verify,
    strictness: Strictness,
    use_v2: bool,
    state: Arc<Mutex<State>>,
    permits: Arc<Semaphore>,
    tasks: Mutex<JoinSet<()>>,
}

impl Verifier {
    /// A verifier against the query API behind `client`. Probes whether the target has
    /// Tempo's v2 trace API (it falls back to v1 when not).
    pub async fn new(client: TempoClient, cfg: Verify, strictness: Strictness) -> Self {
        let use_v2 = matches!(client.trace_raw("/api/v2/traces/1").await, Ok(r) if r.status == 200);
        Verifier {
            client,
            cfg,
            strictness,
            use_v2,
            state: Arc::new(Mutex::new(State {
                v: Verification::default(),
                sampled_spans: 0,
                ttq: Some(hist::new_with_max(3_600_000)),
                recorded: 0,
                pending_spans: 0,
                last_deadline: None,
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
        let strictness = self.strictness;
        let state = self.state.clone();
        let permits = self.permits.clone();
        {
            let mut g = self.state.lock();
            let spans = count_spans(&e.resource_spans);
            g.v.sampled_traces += 1;
            g.sampled_spans += spans;
            g.pending_spans += spans;
            let deadline = Instant::now().max(e.sent_at) + self.cfg.delay.0 + self.cfg.timeout.0;
            g.last_deadline = Some(g.last_deadline.map_or(deadline, |d| d.max(deadline)));
        }
        // A trace is read `delay` after it was sent, or after it was acknowledged when its
        // requests went out late (a backend behind its schedule is not given less time).
        let start = Instant::now().max(e.sent_at);
        self.tasks.lock().spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let outcome = poll(&client, use_v2, &cfg, &e, start, strictness).await;
            let found_clean = matches!(&outcome, Polled::Found { diff, .. } if diff.is_clean());
            record(&state, &e, outcome, &cfg);
            if cfg.search && found_clean {
                let found = found_by_search(&client, &e).await;
                let mut g = state.lock();
                g.v.search_checked += 1;
                g.v.search_found += u64::from(found);
            }
        });
    }

    /// Wait for every lookup, then return the results (`spans_accepted` scales the missing
    /// fraction into an estimate for the whole run) and the time-to-queryable histogram.
    /// The wait is bounded: lookups still queued or under way [`FINISH_GRACE`] after the
    /// last trace's deadline are stopped and their traces counted as not found, so a
    /// backend that answers slowly or not at all cannot hold the run open.
    pub async fn finish(&self, spans_accepted: u64) -> (Verification, Histogram<u64>) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        let last = self.state.lock().last_deadline;
        let until = last.map_or_else(Instant::now, |d| d + FINISH_GRACE);
        let drained = tokio::time::timeout_at(until.into(), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        let mut g = self.state.lock();
        let unchecked = g.v.sampled_traces.saturating_sub(g.recorded);
        if unchecked > 0 {
            let spans = g.pending_spans;
            g.v.missing_traces += unchecked;
            g.v.missing_spans += spans;
            g.recorded += unchecked;
            g.pending_spans = 0;
            // First: it explains the rest of the list.
            {
                g.v.examples.insert(
                    0,
                    format!(
                        "{unchecked} sampled traces not read back by the read-back deadline \
                     (each trace's delay + timeout, then {FINISH_GRACE:?} for queued lookups): \
                     counted as not found"
                    ),
                );
                g.v.examples.truncate(MAX_EXAMPLES);
            }
        }
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

/// Does a tag search on the trace's root service (over the last hour) list the trace?
async fn found_by_search(client: &TempoClient, e: &Expected) -> bool {
    let service = e
        .resource_spans
        .iter()
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                Some(s.clone())
            }
            _ => None,
        });
    let Some(service) = service else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as u32;
    let req = tempo_api::search::SearchRequest::tags(format!("service.name={service}"))
        .with_range(now.saturating_sub(3600), now + 60)
        .with_limit(1000);
    match client.search(&req).await {
        Ok(resp) => resp.traces.iter().any(|t| {
            tempo_api::trace_id::parse_trace_id(&t.trace_id).is_ok_and(|id| id == e.trace_id)
        }),
        Err(_) => false,
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

async fn poll(
    client: &TempoClient,
    use_v2: bool,
    cfg: &Verify,
    e: &Expected,
    start: Instant,
    strictness: Strictness,
) -> Polled {
    let deadline = start + cfg.delay.0 + cfg.timeout.0;
    tokio::time::sleep_until((start + cfg.delay.0).into()).await;
    let mut wait = Duration::from_millis(50);
    let mut last: Option<Diff> = None;
    let mut error = None;
    loop {
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_LOOKUP);
        let fetched = tokio::time::timeout(bound, fetch(client, use_v2, &e.trace_id))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {bound:?}")));
        match fetched {
            Ok(Some(got)) => {
                let diff = compare(&e.resource_spans, &got, strictness);
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
    let spans = count_spans(&e.resource_spans);
    let id = hex::encode(e.trace_id);
    let mut g = state.lock();
    g.recorded += 1;
    g.pending_spans = g.pending_spans.saturating_sub(spans);
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
                "trace {id}: {} of {spans} spans missing, {} extra, {} altered{}",
                diff.missing,
                diff.extra,
                diff.altered,
                diff.first_alteration
                    .map(|w| format!(" (first difference: {w})"))
                    .unwrap_or_default()
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

fn count_spans(rs: &[ResourceSpans]) -> u64 {
    rs.iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};

    fn kv(k: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".into())),
            }),
            ..Default::default()
        }
    }

    fn rs(spans: Vec<Span>) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn span(id: u8, attrs: &[&str]) -> Span {
        Span {
            span_id: vec![id; 8],
            attributes: attrs.iter().map(|a| kv(a)).collect(),
            status: Some(Status::default()),
            flags: 0x100,
            ..Default::default()
        }
    }

    #[test]
    fn missing_extra_and_altered_are_told_apart() {
        let sent = rs(vec![span(1, &["a", "b"]), span(2, &["a"]), span(3, &[])]);
        let got = rs(vec![span(1, &["b", "a"]), span(2, &[]), span(4, &[])]);
        let d = compare(&sent, &got, Strictness::default());
        assert_eq!((d.missing, d.extra, d.altered), (1, 1, 1));
        assert_eq!(d.first_alteration, Some("attributes"));
        assert!(compare(&sent, &sent, Strictness::default()).is_clean());
    }

    #[test]
    fn sdk_owned_fields_are_ignored_only_when_asked() {
        let sent = rs(vec![span(1, &[])]);
        let mut back = span(1, &[]);
        back.flags = 0x301;
        back.status = None;
        let got = rs(vec![back]);
        let strict = compare(&sent, &got, Strictness::default());
        assert_eq!(strict.first_alteration, Some("flags"));
        let sdk = Strictness { ignore_flags: true };
        assert!(compare(&sent, &got, sdk).is_clean());
    }
}

#[cfg(test)]
mod deadline_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::scenario::HumanDuration;

    /// A query API that accepts connections and never answers: the read-back still ends,
    /// and every trace it could not check counts as not found.
    #[tokio::test]
    async fn a_backend_that_never_answers_cannot_hold_the_read_back_open() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let client = TempoClient::new(&format!("http://{addr}"))
            .unwrap()
            .with_timeout(Duration::from_secs(2));
        let cfg = Verify {
            delay: HumanDuration(Duration::ZERO),
            timeout: HumanDuration(Duration::from_millis(500)),
            ..Verify::default()
        };
        let v = Verifier::new(client, cfg, Strictness::default()).await;
        // More lookups than run (one second each) before the deadline passes.
        let n = (CONCURRENCY * 16) as u64;
        for i in 0..n {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i + 1).to_be_bytes());
            v.submit(Expected {
                trace_id: id,
                resource_spans: vec![ResourceSpans {
                    scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                        spans: vec![Span {
                            trace_id: id.to_vec(),
                            span_id: vec![1; 8],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                sent_at: Instant::now(),
            });
        }
        let (result, _) = v.finish(n).await;
        server.abort();
        assert_eq!(result.sampled_traces, n);
        assert_eq!(result.complete_traces, 0);
        assert_eq!(result.missing_traces, n, "{result:?}");
        assert_eq!(result.missing_spans, n, "{result:?}");
        assert!(
            result
                .examples
                .iter()
                .any(|e| e.contains("read-back deadline")),
            "{:?}",
            result.examples
        );
    }
}
