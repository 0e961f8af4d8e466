//! Search: TraceQL and tag queries over live traces, head blocks and flushed blocks.
//!
//! Flow: the HTTP parameters become a [`SearchPlan`] (`request`); `q` is parsed by
//! `traceql`, `tags` by `tags`, both into an [`ast::Expr`]. Each source answers with a
//! [`SearchResult`]: live and cut traces and row-oriented blocks through `generic` (decode
//! each trace, evaluate span by span); rb2 through its own columnar evaluator. Results are
//! merged per trace id and cut to `limit`.

pub mod ast;
pub mod generic;

use tempo_api::trace_id::TraceId;

pub use ast::Expr;

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
    /// Most traces to return.
    pub limit: usize,
    /// Most matched spans to return per trace (`spss`).
    pub spans_per_spanset: usize,
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
    /// Up to `spans_per_spanset` matched spans.
    pub spans: Vec<SpanHit>,
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
