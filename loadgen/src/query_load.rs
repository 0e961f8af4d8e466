//! Query load: trace-by-id lookups and tag searches sent open-loop while the load runs.
//!
//! Each kind of query has its own evenly spaced schedule. A query is sent at its intended
//! time whatever happened to earlier ones; when [`CONCURRENCY`] queries are in flight the
//! next one waits for a slot and its latency still counts from its intended time (the
//! coordinated-omission correction the scheduler applies to exports). Latency of the
//! queries that succeeded goes into HDR histograms (µs); failures are counted by cause.
//!
//! Lookups ask for traces already sent: a random sequence number of this shard at or
//! below the highest one the backend acknowledged at least [`MIN_AGE`] earlier, turned
//! into its trace id with [`trace_id`]. Searches ask for `service.name=<service>` for the
//! services of the workload mix, in turn.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use opentelemetry_proto::tonic::common::v1::any_value;
use parking_lot::Mutex;
use tempo_api::TempoClient;
use tempo_api::client::ClientError;
use tempo_api::search::SearchRequest;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::report::model::QueryLoadResult;
use crate::scenario::QueryLoad;
use crate::scheduler::{SeqWatermark, wait_until};
use crate::shapes::ids::{Rng, trace_id};
use crate::stats::hist;
use crate::workload::Mix;

/// Most queries in flight at once.
pub const CONCURRENCY: usize = 32;
/// A trace is looked up only once it was acknowledged at least this long ago.
pub const MIN_AGE: Duration = Duration::from_millis(200);
/// Distinct error causes kept for the report.
const MAX_ERROR_KINDS: usize = 10;

/// What the driver needs besides the query client.
pub struct Config {
    /// Rates.
    pub rates: QueryLoad,
    /// Workload seed (trace ids are a function of seed and sequence number).
    pub seed: u64,
    /// This shard's index and the shard count (sequence numbers `index + k·count`).
    pub shard: (u64, u64),
    /// Highest sequence number acknowledged so far, raised by the scheduler.
    pub sent: Arc<SeqWatermark>,
    /// Service names to search for.
    pub services: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    TraceById,
    Search,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::TraceById => "trace_by_id",
            Kind::Search => "search",
        }
    }
}

struct Stats {
    by_id: Histogram<u64>,
    search: Histogram<u64>,
    by_id_errors: u64,
    search_errors: u64,
    error_messages: BTreeMap<String, u64>,
}

impl Stats {
    fn ok(&mut self, kind: Kind, latency: Duration) {
        let h = match kind {
            Kind::TraceById => &mut self.by_id,
            Kind::Search => &mut self.search,
        };
        hist::record(h, latency.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    fn error(&mut self, kind: Kind, cause: &str, n: u64) {
        match kind {
            Kind::TraceById => self.by_id_errors += n,
            Kind::Search => self.search_errors += n,
        }
        let key = format!("{}: {cause}", kind.label());
        if self.error_messages.contains_key(&key) || self.error_messages.len() < MAX_ERROR_KINDS {
            *self.error_messages.entry(key).or_insert(0) += n;
        }
    }
}

/// An evenly spaced schedule; `next` is `None` when the rate is 0.
struct Stream {
    kind: Kind,
    next: Option<Instant>,
    every: Duration,
}

impl Stream {
    fn new(kind: Kind, per_second: f64, first: Instant) -> Self {
        let on = per_second.is_finite() && per_second > 0.0;
        Stream {
            kind,
            next: on.then_some(first),
            every: Duration::from_secs_f64(if on { 1.0 / per_second } else { 1.0 }),
        }
    }

    /// The intended time of the next query when it is due by `now`, advancing past it.
    fn take(&mut self, now: Instant) -> Option<Instant> {
        let at = self.next.filter(|t| *t <= now)?;
        self.next = Some(at + self.every);
        Some(at)
    }
}

/// Sends queries in the background until [`QueryDriver::finish`].
pub struct QueryDriver {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<QueryLoadResult>,
    stats: Arc<Mutex<Stats>>,
}

/// A result with no queries and one note (query load configured but not run).
pub fn skipped(q: &QueryLoad, note: String) -> QueryLoadResult {
    QueryLoadResult {
        trace_by_id_per_second: q.trace_by_id_per_second,
        search_per_second: q.search_per_second,
        notes: vec![note],
        ..QueryLoadResult::default()
    }
}

/// Service names in the workload mix (from each shape's first template).
pub fn services(mix: &Mix) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in mix.entries() {
        let t = e.shape.template(mix.seed(), 0, e.profile, &e.params);
        let names = t
            .parts
            .iter()
            .flat_map(|p| &p.resource_spans)
            .filter_map(|rs| rs.resource.as_ref())
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == "service.name")
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            });
        for n in names {
            if !out.contains(&n) && out.len() < 16 {
                out.push(n);
            }
        }
    }
    out
}

/// `service.name=<name>` in logfmt, quoted when needed.
fn tag_query(service: &str) -> String {
    if service
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '=')
    {
        format!("service.name={service:?}")
    } else {
        format!("service.name={service}")
    }
}

fn cause(e: &ClientError) -> String {
    match e {
        ClientError::Status { status, .. } => format!("HTTP {status}"),
        ClientError::Transport { source, .. } if source.is_timeout() => "timed out".to_owned(),
        ClientError::Transport { source, .. } if source.is_connect() => {
            "connection failed".to_owned()
        }
        ClientError::Transport { .. } => "request failed".to_owned(),
        ClientError::Decode { .. } => "undecodable response".to_owned(),
        ClientError::InvalidUrl { .. } => "invalid URL".to_owned(),
    }
}

impl QueryDriver {
    /// Probe the trace API version and start sending.
    pub async fn start(client: TempoClient, cfg: Config) -> Self {
        let use_v2 = matches!(client.trace_raw("/api/v2/traces/1").await, Ok(r) if r.status == 200);
        let stats = Arc::new(Mutex::new(Stats {
            by_id: hist::new_us(),
            search: hist::new_us(),
            by_id_errors: 0,
            search_errors: 0,
            error_messages: BTreeMap::new(),
        }));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(drive(client, cfg, use_v2, stopped, stats.clone()));
        QueryDriver { stop, task, stats }
    }

    /// Stop sending, wait for the queries in flight (each bounded by the client timeout)
    /// and return the results with the serialized histograms.
    pub async fn finish(self) -> (QueryLoadResult, BTreeMap<String, String>) {
        let _ = self.stop.send(true);
        let mut result = match self.task.await {
            Ok(r) => r,
            Err(e) => QueryLoadResult {
                notes: vec![format!("the query-load driver failed: {e}")],
                ..QueryLoadResult::default()
            },
        };
        let s = self.stats.lock();
        result.trace_by_id = hist::percentiles(&s.by_id, 1000.0);
        result.search = hist::percentiles(&s.search, 1000.0);
        result.trace_by_id_errors = s.by_id_errors;
        result.search_errors = s.search_errors;
        result.error_messages = s.error_messages.clone();
        if result.search.count == 0 && s.error_messages.contains_key("search: HTTP 404") {
            result.notes.push(
                "the target answered 404 to /api/search: it does not implement search".to_owned(),
            );
        }
        let histograms = BTreeMap::from([
            ("query_trace_by_id_us".to_owned(), hist::encode(&s.by_id)),
            ("query_search_us".to_owned(), hist::encode(&s.search)),
        ]);
        (result, histograms)
    }
}

/// Highest sequence number acknowledged at least [`MIN_AGE`] before `now`, from the
/// snapshots taken at each wake-up (older snapshots are dropped).
fn eligible(snaps: &mut VecDeque<(Instant, Option<u64>)>, now: Instant) -> Option<u64> {
    let cutoff = now.checked_sub(MIN_AGE)?;
    while snaps.get(1).is_some_and(|(t, _)| *t <= cutoff) {
        snaps.pop_front();
    }
    snaps
        .front()
        .filter(|(t, _)| *t <= cutoff)
        .and_then(|(_, s)| *s)
}

/// One query to send.
enum Query {
    /// Look this trace id up.
    Lookup([u8; 16]),
    /// Search with these logfmt tags.
    Search(String),
}

impl Query {
    fn kind(&self) -> Kind {
        match self {
            Query::Lookup(_) => Kind::TraceById,
            Query::Search(_) => Kind::Search,
        }
    }

    /// Send it; `Err` names the cause of a failure.
    async fn send(self, client: &TempoClient, use_v2: bool) -> Result<(), String> {
        match self {
            Query::Lookup(id) => {
                let found = if use_v2 {
                    client.trace_v2(&id).await.map(|t| t.is_some())
                } else {
                    client.trace_v1(&id).await.map(|t| t.is_some())
                };
                match found {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("not found".to_owned()),
                    Err(e) => Err(cause(&e)),
                }
            }
            Query::Search(tags) => client
                .search(&SearchRequest::tags(tags))
                .await
                .map(|_| ())
                .map_err(|e| cause(&e)),
        }
    }
}

/// The earliest query due by `now` (index of its stream and intended time), if any.
fn take_due(streams: &mut [Stream], now: Instant) -> Option<(usize, Instant)> {
    let (i, _) = streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.next.filter(|t| *t <= now).map(|t| (i, t)))
        .min_by_key(|(_, t)| *t)?;
    streams[i].take(now).map(|t| (i, t))
}

async fn drive(
    client: TempoClient,
    cfg: Config,
    use_v2: bool,
    mut stop: watch::Receiver<bool>,
    stats: Arc<Mutex<Stats>>,
) -> QueryLoadResult {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let t0 = Instant::now();
    let mut streams = [
        Stream::new(
            Kind::TraceById,
            cfg.rates.trace_by_id_per_second,
            t0 + MIN_AGE,
        ),
        Stream::new(Kind::Search, cfg.rates.search_per_second, t0),
    ];
    let mut snaps: VecDeque<(Instant, Option<u64>)> = VecDeque::from([(t0, cfg.sent.highest())]);
    let mut rng = Rng::new(cfg.seed, 0x0051_E7A1_0AD5);
    let (index, count) = (cfg.shard.0, cfg.shard.1.max(1));
    let mut searches = 0usize;
    let (mut lookups_due, mut lookups_sent) = (0u64, 0u64);
    let mut not_sent = [0u64; 2];
    let mut stopping = false;
    'run: while !stopping {
        let Some(due) = streams.iter().filter_map(|s| s.next).min() else {
            // Nothing scheduled (both rates 0): wait for the stop.
            let _ = stop.changed().await;
            break;
        };
        tokio::select! {
            biased;
            _ = stop.changed() => stopping = true,
            _ = wait_until(due) => {}
        }
        let now = Instant::now();
        snaps.push_back((now, cfg.sent.highest()));
        while let Some((i, intended)) = take_due(&mut streams, now) {
            let query = match streams[i].kind {
                Kind::TraceById => {
                    lookups_due += 1;
                    let Some(top) = eligible(&mut snaps, now).filter(|t| *t >= index) else {
                        continue;
                    };
                    lookups_sent += 1;
                    Query::Lookup(trace_id(
                        cfg.seed,
                        index + rng.below((top - index) / count + 1) * count,
                    ))
                }
                Kind::Search => {
                    searches += 1;
                    Query::Search(
                        cfg.services
                            .get(searches % cfg.services.len().max(1))
                            .map_or_else(|| "loadgen".to_owned(), |s| tag_query(s)),
                    )
                }
            };
            let permit = if stopping {
                // After the stop, only queries that find a free slot right away are sent.
                match permits.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        not_sent[i] += 1;
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    biased;
                    _ = stop.changed() => {
                        not_sent[i] += 1;
                        stopping = true;
                        continue 'run;
                    }
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break 'run,
                    },
                }
            };
            let (client, stats) = (client.clone(), stats.clone());
            tasks.spawn(async move {
                let kind = query.kind();
                let outcome = query.send(&client, use_v2).await;
                let latency = intended.elapsed();
                let mut s = stats.lock();
                match outcome {
                    Ok(()) => s.ok(kind, latency),
                    Err(c) => s.error(kind, &c, 1),
                }
                drop(permit);
            });
        }
    }
    // Count what came due but never got a slot (a backlog behind slow queries).
    let now = Instant::now();
    for (i, s) in streams.iter_mut().enumerate() {
        while s.take(now).is_some() {
            not_sent[i] += 1;
        }
    }
    while tasks.join_next().await.is_some() {}
    let mut notes = Vec::new();
    {
        let mut s = stats.lock();
        for (i, kind) in [Kind::TraceById, Kind::Search].into_iter().enumerate() {
            if not_sent[i] > 0 {
                s.error(
                    kind,
                    "not sent: every query slot was busy when the load ended",
                    not_sent[i],
                );
            }
        }
    }
    if not_sent.iter().sum::<u64>() > 0 {
        notes.push(format!(
            "{} queries were still waiting for one of the {CONCURRENCY} query slots when the \
             load ended: the query path fell behind (counted as errors)",
            not_sent.iter().sum::<u64>()
        ));
    }
    if lookups_due > 0 && lookups_sent == 0 {
        notes.push(format!(
            "no trace had been acknowledged {} ms before any lookup was due: trace-by-id was \
             not measured",
            MIN_AGE.as_millis()
        ));
    }
    QueryLoadResult {
        trace_by_id_per_second: cfg.rates.trace_by_id_per_second,
        search_per_second: cfg.rates.search_per_second,
        notes,
        ..QueryLoadResult::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn only_snapshots_old_enough_are_eligible() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut snaps =
            VecDeque::from([(t0, None), (t0 + ms(100), Some(5)), (t0 + ms(250), Some(9))]);
        assert_eq!(eligible(&mut snaps, t0 + ms(150)), None);
        assert_eq!(eligible(&mut snaps, t0 + ms(250)), None);
        assert_eq!(eligible(&mut snaps, t0 + ms(300)), Some(5));
        assert_eq!(eligible(&mut snaps, t0 + ms(460)), Some(9));
        assert_eq!(snaps.len(), 1);
    }

    #[test]
    fn streams_are_evenly_spaced_and_off_at_zero() {
        let t0 = Instant::now();
        let mut s = Stream::new(Kind::Search, 10.0, t0);
        let due: Vec<_> = std::iter::from_fn(|| s.take(t0 + Duration::from_millis(250))).collect();
        assert_eq!(due.len(), 3);
        assert!(Stream::new(Kind::Search, 0.0, t0).next.is_none());
        assert_eq!(tag_query("a b"), "service.name=\"a b\"");
        assert_eq!(tag_query("my-app"), "service.name=my-app");
    }
}
