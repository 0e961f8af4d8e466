//! Filling templates: the slow path ([`instantiate`], on prost structs, used by the
//! verifier) and the fast path ([`EncodedTemplate`], patching pre-encoded protobuf bytes,
//! used by the wire exporter). Both implement the conventions of [`super::placeholder`]
//! and produce identical traces (tested in `shapes::tests`).
//!
//! Encoded layout: each part is a list of entries, one per `ResourceSpans` of the part,
//! each already prefixed with the `ExportTraceServiceRequest.resource_spans` tag (field 1,
//! length-delimited) and length. Concatenating entries — of one part, several parts or
//! several traces — gives a valid `ExportTraceServiceRequest` body. Ids are protobuf
//! `bytes` of fixed length and times `fixed64`, so patching never changes a length.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;

use super::ids::TraceIds;
use super::placeholder::{self, parse_card, parse_link_trace, parse_span_ref};
use super::{GeneratedTrace, TemplatePart, TraceTemplate};

/// Fill a template with the ids of `(seed, seq)` and shift its times by `start_ns`.
pub fn instantiate(t: &TraceTemplate, seed: u64, seq: u64, start_ns: u64) -> GeneratedTrace {
    let ids = TraceIds::new(seed, seq);
    let tid = ids.trace_id();
    let mut ordinal = 0u64;
    let parts = t
        .parts
        .iter()
        .map(|p| {
            let mut resource_spans = p.resource_spans.clone();
            for span in resource_spans
                .iter_mut()
                .flat_map(|rs| rs.scope_spans.iter_mut())
                .flat_map(|ss| ss.spans.iter_mut())
            {
                if span.trace_id.len() == 16 {
                    span.trace_id = tid.to_vec();
                }
                if let Some(i) = parse_span_ref(&span.span_id) {
                    span.span_id = ids.span_id(i).to_vec();
                }
                if let Some(i) = parse_span_ref(&span.parent_span_id) {
                    span.parent_span_id = ids.span_id(i).to_vec();
                }
                span.start_time_unix_nano = span.start_time_unix_nano.wrapping_add(start_ns);
                span.end_time_unix_nano = span.end_time_unix_nano.wrapping_add(start_ns);
                for e in &mut span.events {
                    e.time_unix_nano = e.time_unix_nano.wrapping_add(start_ns);
                }
                for l in &mut span.links {
                    if let Some(delta) = parse_link_trace(&l.trace_id) {
                        let other = TraceIds::new(seed, seq.wrapping_sub(delta));
                        l.trace_id = other.trace_id().to_vec();
                        if let Some(i) = parse_span_ref(&l.span_id) {
                            l.span_id = other.span_id(i).to_vec();
                        }
                    }
                }
                for a in &mut span.attributes {
                    if let Some(Value::StringValue(v)) =
                        a.value.as_mut().and_then(|v| v.value.as_mut())
                        && let Some(m) = parse_card(v.as_bytes())
                    {
                        *v = placeholder::card_string(ids.card_value(ordinal, m), v.len());
                        ordinal += 1;
                    }
                }
            }
            TemplatePart {
                delay: p.delay,
                resource_spans,
            }
        })
        .collect();
    GeneratedTrace {
        trace_id: tid,
        parts,
        span_count: t.span_count,
    }
}

/// Bias added to times before encoding so that a relative time of 0 is still encoded
/// (proto3 omits zero scalars) and can be patched.
pub(super) const TIME_BIAS: u64 = 1 << 62;

/// A span id to write: span `idx` of this trace.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpanPatch {
    pub(super) off: u32,
    pub(super) idx: u64,
}

/// A time to write: `rel + start_ns`.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimePatch {
    pub(super) off: u32,
    pub(super) rel: u64,
}

/// Rare patches.
#[derive(Debug, Clone, Copy)]
pub(super) enum OtherPatch {
    /// Trace id of trace `seq - delta`.
    LinkTrace { off: u32, delta: u64 },
    /// Span `idx` of trace `seq - delta`.
    LinkSpan { off: u32, delta: u64, idx: u64 },
    /// Cardinality value number `ordinal` (of the trace) modulo `modulus`, `len` bytes.
    Card {
        off: u32,
        len: u32,
        modulus: u64,
        ordinal: u64,
    },
}

/// One encoded `ResourceSpans`, with its request-field prefix, and where to patch it.
#[derive(Debug, Clone, Default)]
pub struct EncodedEntry {
    pub(super) bytes: Vec<u8>,
    pub(super) spans: usize,
    pub(super) trace: Vec<u32>,
    pub(super) span: Vec<SpanPatch>,
    pub(super) time: Vec<TimePatch>,
    pub(super) other: Vec<OtherPatch>,
}

impl EncodedEntry {
    /// Spans in this entry.
    pub fn span_count(&self) -> usize {
        self.spans
    }

    /// Encoded length (what [`EncodedEntry::write_into`] appends).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Append this entry filled in for `ids` (of `(seed, seq)`) and `start_ns` to `out`.
    pub fn write_into(
        &self,
        ids: &TraceIds,
        seed: u64,
        seq: u64,
        start_ns: u64,
        out: &mut Vec<u8>,
    ) {
        let base = out.len();
        out.extend_from_slice(&self.bytes);
        let buf = &mut out[base..];
        let tid = ids.trace_id();
        for &off in &self.trace {
            put(buf, off, &tid);
        }
        for p in &self.span {
            put(buf, p.off, &ids.span_id(p.idx));
        }
        for p in &self.time {
            put(buf, p.off, &p.rel.wrapping_add(start_ns).to_le_bytes());
        }
        for p in &self.other {
            match *p {
                OtherPatch::LinkTrace { off, delta } => {
                    let other = TraceIds::new(seed, seq.wrapping_sub(delta));
                    put(buf, off, &other.trace_id());
                }
                OtherPatch::LinkSpan { off, delta, idx } => {
                    let other = TraceIds::new(seed, seq.wrapping_sub(delta));
                    put(buf, off, &other.span_id(idx));
                }
                OtherPatch::Card {
                    off,
                    len,
                    modulus,
                    ordinal,
                } => {
                    let (o, l) = (off as usize, len as usize);
                    if let Some(dst) = buf.get_mut(o..o + l) {
                        placeholder::write_card(dst, ids.card_value(ordinal, modulus));
                    }
                }
            }
        }
    }
}

#[inline]
fn put(buf: &mut [u8], off: u32, src: &[u8]) {
    let o = off as usize;
    if let Some(dst) = buf.get_mut(o..o + src.len()) {
        dst.copy_from_slice(src);
    }
}

/// One encoded part of a trace.
#[derive(Debug, Clone, Default)]
pub struct EncodedPart {
    /// When to send it, after the trace's first part.
    pub delay: Duration,
    /// Its `ResourceSpans`, each a self-contained request field.
    pub entries: Vec<EncodedEntry>,
    /// Spans in the part.
    pub span_count: usize,
    /// Encoded length of all entries.
    pub byte_len: usize,
}

/// A template encoded once, patched per trace. Build one per variant and reuse it.
#[derive(Debug, Clone, Default)]
pub struct EncodedTemplate {
    /// Parts in send order.
    pub parts: Vec<EncodedPart>,
    /// Spans over all parts.
    pub span_count: usize,
}

impl EncodedTemplate {
    /// Encode a template and find every placeholder.
    pub fn new(t: &TraceTemplate) -> Self {
        let mut ordinal = 0u64;
        let parts = t
            .parts
            .iter()
            .map(|p| {
                let entries: Vec<EncodedEntry> = p
                    .resource_spans
                    .iter()
                    .map(|rs| super::walk::encode_entry(rs, &mut ordinal))
                    .collect();
                EncodedPart {
                    delay: p.delay,
                    span_count: entries.iter().map(|e| e.spans).sum(),
                    byte_len: entries.iter().map(|e| e.bytes.len()).sum(),
                    entries,
                }
            })
            .collect();
        EncodedTemplate {
            parts,
            span_count: t.span_count,
        }
    }

    /// Append part `part` of trace `(seed, seq)` starting at `start_ns` to `out` (a request
    /// body being built); returns the spans appended (0 if there is no such part).
    pub fn instantiate_into(
        &self,
        part: usize,
        seed: u64,
        seq: u64,
        start_ns: u64,
        out: &mut Vec<u8>,
    ) -> usize {
        let Some(p) = self.parts.get(part) else {
            return 0;
        };
        let ids = TraceIds::new(seed, seq);
        out.reserve(p.byte_len);
        for e in &p.entries {
            e.write_into(&ids, seed, seq, start_ns, out);
        }
        p.span_count
    }

    /// Number of parts.
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }

    /// Spans in part `part` (0 if there is no such part).
    pub fn part_spans(&self, part: usize) -> usize {
        self.parts.get(part).map_or(0, |p| p.span_count)
    }

    /// Send delay of part `part` after the first (zero if there is no such part).
    pub fn part_delay(&self, part: usize) -> Duration {
        self.parts.get(part).map_or(Duration::ZERO, |p| p.delay)
    }

    /// Encoded bytes over all parts (what one whole trace appends).
    pub fn encoded_len(&self) -> usize {
        self.parts.iter().map(|p| p.byte_len).sum()
    }

    /// Append every part (ignoring delays); returns the spans appended.
    pub fn instantiate_all_into(
        &self,
        seed: u64,
        seq: u64,
        start_ns: u64,
        out: &mut Vec<u8>,
    ) -> usize {
        (0..self.parts.len())
            .map(|k| self.instantiate_into(k, seed, seq, start_ns, out))
            .sum()
    }
}
