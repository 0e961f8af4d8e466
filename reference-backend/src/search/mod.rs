//! Search: TraceQL and tag queries over live traces, head blocks and flushed blocks.
//!
//! Flow: the HTTP parameters become a [`SearchPlan`] (`request`); `q` is parsed by
//! `traceql`, `tags` by `tags`, both into an [`ast::Expr`]. Each source answers with a
//! [`SearchResult`]: live and cut traces and row-oriented blocks through `generic` (decode
//! each trace, evaluate span by span); rb2 through its own columnar evaluator. Results are
//! merged per trace id and cut to `limit`.

pub mod ast;
pub mod duration;
pub mod engine;
pub mod generic;
pub mod http;
pub mod lexer;
pub mod request;
pub mod response;
pub mod tag_summary;
pub mod tags;
pub mod traceql;
#[cfg(test)]
mod traceql_tests;
pub mod vocabulary;

use std::collections::BTreeMap;

use tempo_api::trace_id::TraceId;

pub use ast::Expr;
pub use engine::Searcher;
pub use tag_summary::TagSummary;

/// Everything a source needs to answer one search.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    /// Spanset filter (`Expr::All` for none).
    pub filter: Expr,
    /// Only traces at least this long (ns).
    pub min_duration_ns: Option<u64>,
    /// Only traces at most this long (ns).
    pub max_duration_ns: Option<u64>,
    /// Only traces overlapping `[start, end]` (unix ns), when set.
    pub start_ns: Option<u64>,
    /// See `start_ns`.
    pub end_ns: Option<u64>,
    /// Most traces to return: a source keeps the `limit` hits that start last (ties: lower
    /// trace id first), see [`rank`], so the answer does not depend on how traces are
    /// spread over sources.
    pub limit: usize,
    /// Most matched spans to return per trace (`spss`).
    pub spans_per_spanset: usize,
}

impl SearchPlan {
    /// A plan with no filter beyond `filter`, Tempo's default limit (20) and spss (3).
    pub fn new(filter: Expr) -> Self {
        SearchPlan {
            filter,
            min_duration_ns: None,
            max_duration_ns: None,
            start_ns: None,
            end_ns: None,
            limit: 20,
            spans_per_spanset: 3,
        }
    }

    /// Do a trace's start and end (unix ns) pass the duration and time-range filters?
    /// Durations are inclusive; the range keeps traces overlapping `[start, end]`.
    pub fn admits(&self, start_ns: u64, end_ns: u64) -> bool {
        let duration = end_ns.saturating_sub(start_ns);
        self.min_duration_ns.is_none_or(|m| duration >= m)
            && self.max_duration_ns.is_none_or(|m| duration <= m)
            && self.start_ns.is_none_or(|s| end_ns >= s)
            && self.end_ns.is_none_or(|e| start_ns <= e)
    }
}

/// Order hits most recent start first (ties: lower trace id first) and keep `limit`.
pub fn rank(hits: &mut Vec<TraceHit>, limit: usize) {
    hits.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    hits.truncate(limit);
}

/// One matched span, as search results show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanHit {
    /// Span id.
    pub span_id: [u8; 8],
    /// Span name.
    pub name: String,
    /// Start (unix ns).
    pub start_ns: u64,
    /// Duration (ns).
    pub duration_ns: u64,
    /// Attributes the query referenced, as the span has them (key, value as text).
    pub attributes: Vec<(String, HitValue)>,
}

/// A typed attribute value in a hit.
#[derive(Debug, Clone, PartialEq)]
pub enum HitValue {
    /// String.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// Spans of one service in a trace, and how many of them have status error
/// (`serviceStats` in Tempo's search results).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStat {
    /// Spans whose resource has this `service.name`.
    pub spans: u32,
    /// Of those, spans with status error.
    pub errors: u32,
}

/// Per-service span counts of one trace, keyed by `service.name`. Spans whose resource has
/// no string `service.name` are not counted.
pub type ServiceStats = BTreeMap<String, ServiceStat>;

/// Count one span of `service` (if it has one) into `stats`.
pub fn count_span(stats: &mut ServiceStats, service: Option<&str>, error: bool) {
    let Some(service) = service else {
        return;
    };
    let stat = match stats.get_mut(service) {
        Some(stat) => stat,
        None => stats.entry(service.to_owned()).or_default(),
    };
    stat.spans = stat.spans.saturating_add(1);
    stat.errors = stat.errors.saturating_add(u32::from(error));
}

/// One matched trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceHit {
    /// Trace id.
    pub trace_id: TraceId,
    /// Service of the root span, if the root span was seen.
    pub root_service_name: Option<String>,
    /// Name of the root span, if seen.
    pub root_span_name: Option<String>,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest end − earliest start (ns).
    pub duration_ns: u64,
    /// How many spans matched.
    pub matched: u32,
    /// Up to `spans_per_spanset` matched spans: those that start first (ties: lower span
    /// id first), in that order.
    pub spans: Vec<SpanHit>,
    /// Every span of the trace in this source (duplicates once), per service.
    pub service_stats: ServiceStats,
}

impl TraceHit {
    /// Latest span end (unix ns).
    pub fn end_ns(&self) -> u64 {
        self.start_ns.saturating_add(self.duration_ns)
    }

    /// Fold in a hit for the same trace from another source: matched counts add up, spans
    /// are united (a span id once) and cut to `spans_per_spanset`, the time range widens.
    pub fn absorb(&mut self, other: TraceHit, spans_per_spanset: usize) {
        let end = self.end_ns().max(other.end_ns());
        self.start_ns = self.start_ns.min(other.start_ns);
        self.duration_ns = end.saturating_sub(self.start_ns);
        self.matched = self.matched.saturating_add(other.matched);
        for (service, stat) in other.service_stats {
            let mine = self.service_stats.entry(service).or_default();
            mine.spans = mine.spans.saturating_add(stat.spans);
            mine.errors = mine.errors.saturating_add(stat.errors);
        }
        if self.root_service_name.is_none() {
            self.root_service_name = other.root_service_name;
        }
        if self.root_span_name.is_none() {
            self.root_span_name = other.root_span_name;
        }
        for s in other.spans {
            if !self.spans.iter().any(|x| x.span_id == s.span_id) {
                self.spans.push(s);
            }
        }
        self.spans.sort_by_key(|s| (s.start_ns, s.span_id));
        self.spans.truncate(spans_per_spanset);
    }
}

/// What one source (live store, a block) found, with what it had to read.
#[derive(Debug, Clone, Default)]
pub struct SearchResult {
    /// Matching traces (at most the plan's limit).
    pub traces: Vec<TraceHit>,
    /// Traces looked at.
    pub inspected_traces: u64,
    /// Spans looked at.
    pub inspected_spans: u64,
    /// Bytes read to answer.
    pub inspected_bytes: u64,
}
