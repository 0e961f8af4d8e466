//! Decode, validate and split one OTLP export request into per-trace fragments.
//!
//! A fragment is the protobuf encoding of one or more `ResourceSpans` entries (field 1 of
//! `TracesData`) holding only the spans of one trace. Fragments concatenate: the bytes of
//! several fragments of a trace are themselves a valid `TracesData`, which is what blocks
//! store and what `Accept: application/protobuf` returns. Nothing here allocates per span
//! beyond the span's own encoding.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tempo_api::trace_id::TraceId;

use crate::error::{Error, Result};

/// The spans of one trace from one request, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Trace id.
    pub trace_id: TraceId,
    /// Spans in this fragment.
    pub spans: u32,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
    /// Encoded `TracesData` field-1 entries.
    pub bytes: Vec<u8>,
}

/// A validated request, split by trace.
#[derive(Debug, Default)]
pub struct SplitBatch {
    /// One fragment per trace id, in first-seen order.
    pub fragments: Vec<Fragment>,
    /// Spans in the request.
    pub spans: u64,
    /// Attribute values that were truncated to `max_attribute_bytes`.
    pub truncated_values: u64,
}

/// Decode an OTLP protobuf request body.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    ExportTraceServiceRequest::decode(body)
        .map_err(|e| Error::InvalidArgument(format!("cannot decode OTLP protobuf request: {e}")))
}

/// Decode an OTLP/JSON request body (hex ids, as the OTLP spec says).
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    serde_json::from_slice(body)
        .map_err(|e| Error::InvalidArgument(format!("cannot decode OTLP JSON request: {e}")))
}

/// Check ids as OTLP and Tempo's distributor do; the whole request is refused on the first
/// bad id, and the message names the field.
pub fn validate(req: &ExportTraceServiceRequest) -> Result<()> {
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for (pi, span) in ss.spans.iter().enumerate() {
                SpanIds::of(&span.trace_id, &span.span_id).check((ri, si, pi))?;
            }
        }
    }
    Ok(())
}

/// What the id rules need to know about one span's ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanIds {
    /// Length of `trace_id` in bytes.
    pub trace_len: usize,
    /// Every byte of `trace_id` is zero.
    pub trace_zero: bool,
    /// Length of `span_id` in bytes.
    pub span_len: usize,
    /// Every byte of `span_id` is zero.
    pub span_zero: bool,
}

impl SpanIds {
    /// From the id fields.
    pub(crate) fn of(trace_id: &[u8], span_id: &[u8]) -> Self {
        SpanIds {
            trace_len: trace_id.len(),
            trace_zero: trace_id.iter().all(|b| *b == 0),
            span_len: span_id.len(),
            span_zero: span_id.iter().all(|b| *b == 0),
        }
    }

    /// Tempo's id rules, plus OTLP's "all zero is invalid" for trace ids: a trace id is 16
    /// bytes and not all zero, a span id 8 bytes and not all zero. Tempo 3.0.3 refuses an
    /// all-zero trace id too, as `received 0 bits` (its receiver drops a zero id when it
    /// re-encodes the request). `at` locates the span for the message.
    pub(crate) fn check(&self, at: SpanAt) -> Result<()> {
        let (ri, si, pi) = at;
        let path = format!("resource_spans[{ri}].scope_spans[{si}].spans[{pi}]");
        if self.trace_len != 16 {
            return Err(Error::InvalidArgument(format!(
                "trace ids must be 128 bit, received {} bits ({path}.trace_id)",
                self.trace_len * 8
            )));
        }
        if self.trace_zero {
            return Err(Error::InvalidArgument(format!(
                "trace ids must not be all zero ({path}.trace_id is 00000000000000000000000000000000)"
            )));
        }
        if self.span_len != 8 || self.span_zero {
            return Err(Error::InvalidArgument(format!(
                "span ids must be 64 bit and not all zero, received {} bits{} ({path}.span_id)",
                self.span_len * 8,
                if self.span_len == 8 { " all zero" } else { "" }
            )));
        }
        Ok(())
    }
}

/// Truncate string attribute values longer than `max` bytes (at a char boundary).
/// Returns how many values were cut.
pub fn truncate_attributes(req: &mut ExportTraceServiceRequest, max: usize) -> u64 {
    let mut cut = 0;
    for rs in &mut req.resource_spans {
        if let Some(r) = rs.resource.as_mut() {
            cut += truncate_kvs(&mut r.attributes, max);
        }
        for ss in &mut rs.scope_spans {
            if let Some(s) = ss.scope.as_mut() {
                cut += truncate_kvs(&mut s.attributes, max);
            }
            for span in &mut ss.spans {
                cut += truncate_kvs(&mut span.attributes, max);
                for e in &mut span.events {
                    cut += truncate_kvs(&mut e.attributes, max);
                }
                for l in &mut span.links {
                    cut += truncate_kvs(&mut l.attributes, max);
                }
            }
        }
    }
    cut
}

pub(crate) fn truncate_kvs(kvs: &mut [KeyValue], max: usize) -> u64 {
    kvs.iter_mut()
        .filter_map(|kv| kv.value.as_mut())
        .map(|v| truncate_value(v, max))
        .sum()
}

fn truncate_value(v: &mut AnyValue, max: usize) -> u64 {
    match v.value.as_mut() {
        Some(any_value::Value::StringValue(s)) if s.len() > max => {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            1
        }
        Some(any_value::Value::BytesValue(b)) if b.len() > max => {
            b.truncate(max);
            1
        }
        Some(any_value::Value::ArrayValue(a)) => {
            a.values.iter_mut().map(|v| truncate_value(v, max)).sum()
        }
        Some(any_value::Value::KvlistValue(kv)) => truncate_kvs(&mut kv.values, max),
        _ => 0,
    }
}

/// Validate, truncate and split a decoded request.
pub fn split(mut req: ExportTraceServiceRequest, max_attribute_bytes: usize) -> Result<SplitBatch> {
    validate(&req)?;
    let truncated_values = truncate_attributes(&mut req, max_attribute_bytes);
    let mut out = split_valid(&req);
    out.truncated_values = truncated_values;
    Ok(out)
}

/// Location of one span in the request: (resource, scope, span) indexes.
pub(crate) type SpanAt = (usize, usize, usize);

/// Split a request whose ids are known to be valid.
pub fn split_valid(req: &ExportTraceServiceRequest) -> SplitBatch {
    let mut groups = TraceGroups::default();
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for (pi, span) in ss.spans.iter().enumerate() {
                if let Ok(id) = <TraceId>::try_from(span.trace_id.as_slice()) {
                    groups.add(id, (ri, si, pi));
                }
            }
        }
    }
    let source = DecodedSpans {
        req,
        resource_heads: req.resource_spans.iter().map(resource_head).collect(),
        scope_heads: req
            .resource_spans
            .iter()
            .map(|rs| rs.scope_spans.iter().map(scope_head).collect())
            .collect(),
    };
    groups.assemble(&source)
}

/// Spans of a decoded request, re-encoded with prost.
struct DecodedSpans<'a> {
    req: &'a ExportTraceServiceRequest,
    resource_heads: Vec<Vec<u8>>,
    scope_heads: Vec<Vec<Vec<u8>>>,
}

impl DecodedSpans<'_> {
    fn span(&self, (ri, si, pi): SpanAt) -> &Span {
        &self.req.resource_spans[ri].scope_spans[si].spans[pi]
    }
}

impl SpanSource for DecodedSpans<'_> {
    fn resource_head(&self, ri: usize) -> &[u8] {
        &self.resource_heads[ri]
    }
    fn scope_head(&self, ri: usize, si: usize) -> &[u8] {
        &self.scope_heads[ri][si]
    }
    fn span_len(&self, at: SpanAt) -> usize {
        self.span(at).encoded_len()
    }
    fn write_span(&self, at: SpanAt, out: &mut Vec<u8>) {
        self.span(at).encode_raw(out);
    }
    fn times(&self, at: SpanAt) -> (u64, u64) {
        let s = self.span(at);
        (s.start_time_unix_nano, s.end_time_unix_nano)
    }
}

/// Where the fragments' pieces come from: headers of resources and scopes, and spans.
pub(crate) trait SpanSource {
    /// Encoded fields of `ResourceSpans` `ri` other than `scope_spans`.
    fn resource_head(&self, ri: usize) -> &[u8];
    /// Encoded fields of `ScopeSpans` `(ri, si)` other than `spans`.
    fn scope_head(&self, ri: usize, si: usize) -> &[u8];
    /// Length of the span message.
    fn span_len(&self, at: SpanAt) -> usize;
    /// Append the span message (without tag and length).
    fn write_span(&self, at: SpanAt, out: &mut Vec<u8>);
    /// Start and end times (unix ns).
    fn times(&self, at: SpanAt) -> (u64, u64);
}

/// Spans grouped by trace id, in first-seen order.
#[derive(Default)]
pub(crate) struct TraceGroups {
    by_trace: HashMap<TraceId, Vec<SpanAt>>,
    order: Vec<TraceId>,
    total: u64,
}

impl TraceGroups {
    /// Record that span `at` belongs to trace `id`.
    pub(crate) fn add(&mut self, id: TraceId, at: SpanAt) {
        self.total += 1;
        let order = &mut self.order;
        self.by_trace
            .entry(id)
            .or_insert_with(|| {
                order.push(id);
                Vec::new()
            })
            .push(at);
    }

    /// Encode one fragment per trace.
    pub(crate) fn assemble(self, src: &impl SpanSource) -> SplitBatch {
        let mut fragments = Vec::with_capacity(self.order.len());
        for id in &self.order {
            if let Some(at) = self.by_trace.get(id) {
                fragments.push(encode_fragment(*id, at, src));
            }
        }
        SplitBatch {
            fragments,
            spans: self.total,
            truncated_values: 0,
        }
    }
}

/// Fields of `ResourceSpans` other than `scope_spans` (resource = 1, schema_url = 3).
fn resource_head(rs: &ResourceSpans) -> Vec<u8> {
    head(rs.resource.as_ref(), &rs.schema_url)
}

/// Fields of `ScopeSpans` other than `spans` (scope = 1, schema_url = 3).
fn scope_head(ss: &opentelemetry_proto::tonic::trace::v1::ScopeSpans) -> Vec<u8> {
    head(ss.scope.as_ref(), &ss.schema_url)
}

/// Field 1 (a message) and field 3 (schema URL) of a resource or scope container.
pub(crate) fn head<M: Message>(field1: Option<&M>, schema_url: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(m) = field1 {
        prost::encoding::message::encode(1, m, &mut buf);
    }
    if !schema_url.is_empty() {
        prost::encoding::string::encode(3, &schema_url.to_owned(), &mut buf);
    }
    buf
}

fn len_delimited_len(inner: usize) -> usize {
    1 + encoded_len_varint(inner as u64) + inner
}

fn encode_fragment(id: TraceId, at: &[SpanAt], src: &impl SpanSource) -> Fragment {
    let mut bytes = Vec::new();
    let (mut start_ns, mut end_ns) = (u64::MAX, 0u64);
    // `at` is in request order, so spans of one resource (and one scope) are contiguous.
    let mut i = 0;
    while i < at.len() {
        let ri = at[i].0;
        let r_end = i + at[i..].iter().take_while(|a| a.0 == ri).count();
        // Size the ResourceSpans body: head + each ScopeSpans entry.
        let mut scopes: Vec<(usize, usize, usize)> = Vec::new(); // (scope idx, from, to)
        let mut j = i;
        while j < r_end {
            let si = at[j].1;
            let s_end = j + at[j..r_end].iter().take_while(|a| a.1 == si).count();
            scopes.push((si, j, s_end));
            j = s_end;
        }
        let scope_lens: Vec<usize> = scopes
            .iter()
            .map(|&(si, from, to)| {
                let spans: usize = at[from..to]
                    .iter()
                    .map(|a| len_delimited_len(src.span_len(*a)))
                    .sum();
                src.scope_head(ri, si).len() + spans
            })
            .collect();
        let body_len: usize = src.resource_head(ri).len()
            + scope_lens
                .iter()
                .map(|l| len_delimited_len(*l))
                .sum::<usize>();
        bytes.reserve(len_delimited_len(body_len));
        encode_key(1, WireType::LengthDelimited, &mut bytes);
        encode_varint(body_len as u64, &mut bytes);
        bytes.extend_from_slice(src.resource_head(ri));
        for (&(si, from, to), &len) in scopes.iter().zip(&scope_lens) {
            encode_key(2, WireType::LengthDelimited, &mut bytes);
            encode_varint(len as u64, &mut bytes);
            bytes.extend_from_slice(src.scope_head(ri, si));
            for a in &at[from..to] {
                let (s, e) = src.times(*a);
                start_ns = start_ns.min(s);
                end_ns = end_ns.max(e);
                encode_key(2, WireType::LengthDelimited, &mut bytes);
                encode_varint(src.span_len(*a) as u64, &mut bytes);
                src.write_span(*a, &mut bytes);
            }
        }
        i = r_end;
    }
    Fragment {
        trace_id: id,
        spans: at.len() as u32,
        start_ns: if start_ns == u64::MAX { 0 } else { start_ns },
        end_ns,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, TracesData};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: format!("s{trace}-{id}"),
            start_time_unix_nano: 100 + id as u64,
            end_time_unix_nano: 200 + id as u64,
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let rs = |svc: &str, spans: Vec<Span>| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", svc)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: "s".into(),
            }],
            schema_url: "r".into(),
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                rs("a", vec![span(1, 1), span(2, 2), span(1, 3)]),
                rs("b", vec![span(1, 4)]),
            ],
        }
    }

    #[test]
    fn fragments_decode_to_the_spans_of_their_trace() {
        let batch = split(request(), 2048).unwrap();
        assert_eq!(batch.spans, 4);
        assert_eq!(batch.fragments.len(), 2);
        let f1 = &batch.fragments[0];
        assert_eq!(f1.trace_id, [1; 16]);
        assert_eq!(f1.spans, 3);
        assert_eq!((f1.start_ns, f1.end_ns), (101, 204));
        let td = TracesData::decode(f1.bytes.as_slice()).unwrap();
        assert_eq!(td.resource_spans.len(), 2);
        assert_eq!(td.resource_spans[0].schema_url, "r");
        assert_eq!(td.resource_spans[0].scope_spans[0].schema_url, "s");
        let names: Vec<_> = td
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["s1-1", "s1-3", "s1-4"]);
        // Concatenated fragments are one valid TracesData.
        let mut both = f1.bytes.clone();
        both.extend_from_slice(&batch.fragments[1].bytes);
        assert_eq!(
            TracesData::decode(both.as_slice())
                .unwrap()
                .resource_spans
                .len(),
            3
        );
    }

    #[test]
    fn bad_ids_refuse_the_request() {
        let mut r = request();
        r.resource_spans[1].scope_spans[0].spans[0].trace_id = vec![1; 8];
        let e = split(r, 2048).unwrap_err().to_string();
        assert!(
            e.starts_with("trace ids must be 128 bit, received 64 bits"),
            "{e}"
        );
        let mut r = request();
        r.resource_spans[0].scope_spans[0].spans[1].span_id = vec![0; 8];
        let e = split(r, 2048).unwrap_err().to_string();
        assert!(
            e.contains("span ids must be 64 bit and not all zero"),
            "{e}"
        );
    }

    #[test]
    fn all_zero_ids_are_refused_by_the_wire_walker_and_the_decoding_path_alike() {
        type BreakIds = fn(&mut Span);
        let cases: [(&str, BreakIds); 4] = [
            (
                "trace ids must not be all zero (resource_spans[1].scope_spans[0].spans[0].trace_id",
                |s| s.trace_id = vec![0; 16],
            ),
            (
                "span ids must be 64 bit and not all zero, received 64 bits all zero (resource_spans[1].scope_spans[0].spans[0].span_id)",
                |s| s.span_id = vec![0; 8],
            ),
            (
                "trace ids must be 128 bit, received 0 bits (resource_spans[1].scope_spans[0].spans[0].trace_id)",
                |s| s.trace_id = vec![],
            ),
            (
                "span ids must be 64 bit and not all zero, received 0 bits (resource_spans[1].scope_spans[0].spans[0].span_id)",
                |s| s.span_id = vec![],
            ),
        ];
        for (want, break_ids) in cases {
            let mut r = request();
            break_ids(&mut r.resource_spans[1].scope_spans[0].spans[0]);
            let body = bytes::Bytes::from(r.encode_to_vec());
            let (spans, walked) = crate::ingest::wire_split::split_protobuf(body, 2048).unwrap();
            assert_eq!(spans, 4, "the refused request's spans are counted");
            let walked = walked.unwrap_err();
            let decoded = split(r, 2048).unwrap_err();
            assert_eq!(walked.to_string(), decoded.to_string());
            assert!(walked.to_string().starts_with(want), "{walked}");
            assert_eq!(walked.http_status(), http::StatusCode::BAD_REQUEST);
            assert_eq!(walked.grpc_code(), tonic::Code::InvalidArgument);
        }
        // One zero byte is not all zero.
        let mut r = request();
        r.resource_spans[0].scope_spans[0].spans[0].trace_id = [vec![0; 15], vec![1]].concat();
        assert!(split(r, 2048).is_ok());
    }

    #[test]
    fn long_values_are_truncated_at_char_boundaries() {
        let mut r = request();
        r.resource_spans[0].scope_spans[0].spans[0]
            .attributes
            .push(kv("big", &"é".repeat(10)));
        let batch = split(r, 5).unwrap();
        assert_eq!(batch.truncated_values, 1);
        let td = TracesData::decode(batch.fragments[0].bytes.as_slice()).unwrap();
        let v = &td.resource_spans[0].scope_spans[0].spans[0].attributes[0];
        assert_eq!(
            v.value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("éé".into()))
        );
    }
}
