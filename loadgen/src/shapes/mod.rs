//! Trace shapes: deterministic trace generators.
//!
//! Every trace is a pure function of `(seed, seq, start_ns)`, so the verifier regenerates
//! what was sent without storing anything. A shape produces a [`TraceTemplate`] for a
//! *variant* (`seq % VARIANTS`) with placeholder ids and times relative to 0;
//! [`instantiate`] fills in the ids of `seq` and shifts times to `start_ns`. The wire
//! exporter encodes each variant once and patches ids and times in the bytes
//! ([`encoded::EncodedTemplate`]), which is what makes ≥ 1M spans/s per thread possible.
//!
//! Placeholder conventions are in [`placeholder`]; ids in [`ids`]. In every shape span 0
//! is the root, so links to another trace's span 0 always point at a real span.

pub mod encoded;
pub mod ids;
pub mod placeholder;

mod catalog;
mod flat;
mod go_example;
mod high_cardinality;
mod kit;
mod large_trace;
mod microservices;
mod random_tree;
#[cfg(test)]
mod tests;
mod walk;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::scenario::SizeProfile;

pub use catalog::{by_name, names, shapes};
pub use flat::Flat;
pub use go_example::GoExample;
pub use high_cardinality::HighCardinality;
pub use large_trace::LargeTrace;
pub use microservices::Microservices;
pub use random_tree::RandomTree;

/// Distinct variants per shape; `seq % VARIANTS` picks one.
pub const VARIANTS: u64 = 64;

/// Shape parameters by name (from the scenario's `params`).
pub type Params = BTreeMap<String, f64>;

/// Documentation of one shape parameter.
#[derive(Debug, Clone, Copy)]
pub struct ParamDoc {
    /// Name in `params`.
    pub name: &'static str,
    /// Default value.
    pub default: f64,
    /// What it controls.
    pub help: &'static str,
}

/// One part of a trace: spans sent together, `delay` after the trace's intended time.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePart {
    /// Send this long after the trace's first part (0 for the main part; late parts > 0).
    pub delay: Duration,
    /// Spans, with placeholder ids (see [`placeholder`]) and times relative to 0.
    pub resource_spans: Vec<ResourceSpans>,
}

/// A trace before ids and times are filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceTemplate {
    /// Parts in send order; the first has delay 0.
    pub parts: Vec<TemplatePart>,
    /// Total spans over all parts.
    pub span_count: usize,
}

/// A trace ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedTrace {
    /// Trace id of every span.
    pub trace_id: [u8; 16],
    /// Parts with real ids and absolute times.
    pub parts: Vec<TemplatePart>,
    /// Total spans.
    pub span_count: usize,
}

/// A trace generator.
pub trait Shape: Send + Sync {
    /// Name used in scenarios.
    fn name(&self) -> &'static str;
    /// One line for `loadgen shapes`.
    fn describe(&self) -> &'static str;
    /// Parameters and their defaults.
    fn params(&self) -> &'static [ParamDoc];
    /// Distinct templates: `template(v)` equals `template(v % variants())`. Always a divisor
    /// of [`VARIANTS`], so an exporter caching encoded templates may key them by
    /// `seq % variants()` (large shapes keep fewer variants to bound that cache).
    fn variants(&self) -> u64 {
        VARIANTS
    }
    /// The template of `variant` (0..VARIANTS). Deterministic in its inputs.
    fn template(
        &self,
        seed: u64,
        variant: u64,
        profile: SizeProfile,
        params: &Params,
    ) -> TraceTemplate;
}

/// Fill a template with the ids of `(seed, seq)` and shift its times by `start_ns`.
pub fn instantiate(t: &TraceTemplate, seed: u64, seq: u64, start_ns: u64) -> GeneratedTrace {
    encoded::instantiate(t, seed, seq, start_ns)
}

/// Generate trace `seq` of `shape` (the slow path the verifier uses).
pub fn generate(
    shape: &dyn Shape,
    seed: u64,
    seq: u64,
    start_ns: u64,
    profile: SizeProfile,
    params: &Params,
) -> GeneratedTrace {
    let t = shape.template(seed, seq % VARIANTS, profile, params);
    instantiate(&t, seed, seq, start_ns)
}
