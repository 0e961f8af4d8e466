//! Encoded templates (stub).

use super::{GeneratedTrace, TraceTemplate};

/// Fill a template (stub).
pub fn instantiate(t: &TraceTemplate, _seed: u64, _seq: u64, _start_ns: u64) -> GeneratedTrace {
    GeneratedTrace {
        trace_id: [0; 16],
        parts: t.parts.clone(),
        span_count: t.span_count,
    }
}
