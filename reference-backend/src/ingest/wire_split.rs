//! Splitting an OTLP protobuf request by trace without decoding span contents.
//!
//! Decoding every span into prost structs (and re-encoding it into fragments) was most of
//! the ingest cost. Here only the request's framing and each resource and scope are
//! decoded; spans stay as borrowed bytes. Each span is still validated completely by a
//! walker that allocates nothing: wire types of every known field, UTF-8 of every string,
//! nesting depth, and Tempo's id rules. The rare span with an attribute value longer than
//! `max_attribute_bytes` is decoded, truncated and re-encoded as before.

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tempo_api::trace_id::TraceId;

use super::batch::{SpanAt, SpanIds, SpanSource, SplitBatch, TraceGroups, head, truncate_kvs};
use crate::error::{Error, Result};

#[derive(Clone, PartialEq, prost::Message)]
struct RawRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<RawResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<RawScopeSpans>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawScopeSpans {
    #[prost(message, optional, tag = "1")]
    scope: Option<InstrumentationScope>,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    spans: Vec<Bytes>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

/// What the walker learns about one span.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpanInfo {
    /// Length of `trace_id` in bytes.
    pub trace_id_len: usize,
    /// The trace id when it is 16 bytes.
    pub trace_id: TraceId,
    /// Length of `span_id`.
    pub span_id_len: usize,
    /// True when the span id is all zero bytes.
    pub span_id_zero: bool,
    /// `start_time_unix_nano`.
    pub start: u64,
    /// `end_time_unix_nano`.
    pub end: u64,
    /// Longest string or bytes attribute value anywhere in the span.
    pub max_value_len: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Msg {
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bytes,
    Str,
    Varint,
    Fixed64,
    Fixed32,
    Message(Msg),
}

/// The schema of the span message tree (opentelemetry/proto/trace/v1 and common/v1).
fn kind(msg: Msg, field: u32) -> Option<Kind> {
    use Kind::*;
    Some(match (msg, field) {
        (Msg::Span, 1 | 2 | 4) => Bytes,
        (Msg::Span, 3 | 5) => Str,
        (Msg::Span, 6 | 10 | 12 | 14) => Varint,
        (Msg::Span, 7 | 8) => Fixed64,
        (Msg::Span, 9) => Message(Msg::KeyValue),
        (Msg::Span, 11) => Message(Msg::Event),
        (Msg::Span, 13) => Message(Msg::Link),
        (Msg::Span, 15) => Message(Msg::Status),
        (Msg::Span, 16) => Fixed32,
        (Msg::Event, 1) => Fixed64,
        (Msg::Event, 2) => Str,
        (Msg::Event, 3) => Message(Msg::KeyValue),
        (Msg::Event, 4) => Varint,
        (Msg::Link, 1 | 2) => Bytes,
        (Msg::Link, 3) => Str,
        (Msg::Link, 4) => Message(Msg::KeyValue),
        (Msg::Link, 5) => Varint,
        (Msg::Link, 6) => Fixed32,
        (Msg::Status, 2) => Str,
        (Msg::Status, 3) => Varint,
        (Msg::KeyValue, 1) => Str,
        (Msg::KeyValue, 2) => Message(Msg::AnyValue),
        (Msg::KeyValue, 3) => Varint,
        (Msg::AnyValue, 1) => Str,
        (Msg::AnyValue, 2 | 3 | 8) => Varint,
        (Msg::AnyValue, 4) => Fixed64,
        (Msg::AnyValue, 5) => Message(Msg::ArrayValue),
        (Msg::AnyValue, 6) => Message(Msg::KvList),
        (Msg::AnyValue, 7) => Bytes,
        (Msg::ArrayValue, 1) => Message(Msg::AnyValue),
        (Msg::KvList, 1) => Message(Msg::KeyValue),
        _ => return None,
    })
}

/// Deepest nesting accepted (prost's own recursion limit is 100).
const MAX_DEPTH: u32 = 64;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A varint, refused where prost refuses it: past 10 bytes, or a 10th byte that
    /// overflows 64 bits.
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b >= 2 {
                    return Err("varint overflows 64 bits");
                }
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or("field runs past its message")?;
        self.pos = end;
        Ok(s)
    }
}

fn fixed64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// Validate one message of the span tree, collecting what `info` needs.
fn walk(buf: &[u8], msg: Msg, depth: u32, info: &mut SpanInfo) -> Result<(), &'static str> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep");
    }
    let mut r = Reader { buf, pos: 0 };
    while r.pos < buf.len() {
        let key = r.varint()?;
        // prost refuses keys past 32 bits; accepting one would store a span no read decodes.
        let key = u32::try_from(key).map_err(|_| "field key out of range")?;
        let field = key >> 3;
        let wire = key & 7;
        if field == 0 {
            return Err("field number 0");
        }
        let expected = kind(msg, field);
        match wire {
            0 => {
                let v = r.varint()?;
                match expected {
                    None | Some(Kind::Varint) => {}
                    Some(_) => return Err("wrong wire type"),
                }
                let _ = v;
            }
            1 => {
                let b = r.take(8)?;
                match (expected, msg, field) {
                    (Some(Kind::Fixed64), Msg::Span, 7) => info.start = fixed64(b),
                    (Some(Kind::Fixed64), Msg::Span, 8) => info.end = fixed64(b),
                    (None | Some(Kind::Fixed64), ..) => {}
                    _ => return Err("wrong wire type"),
                }
            }
            5 => {
                r.take(4)?;
                match expected {
                    None | Some(Kind::Fixed32) => {}
                    Some(_) => return Err("wrong wire type"),
                }
            }
            2 => {
                let len = usize::try_from(r.varint()?).map_err(|_| "length overflow")?;
                let b = r.take(len)?;
                match expected {
                    None => {}
                    Some(Kind::Str) => {
                        std::str::from_utf8(b).map_err(|_| "string is not valid UTF-8")?;
                        if msg == Msg::AnyValue {
                            info.max_value_len = info.max_value_len.max(b.len());
                        }
                    }
                    Some(Kind::Bytes) => match (msg, field) {
                        (Msg::Span, 1) => {
                            info.trace_id_len = b.len();
                            if let Ok(id) = TraceId::try_from(b) {
                                info.trace_id = id;
                            }
                        }
                        (Msg::Span, 2) => {
                            info.span_id_len = b.len();
                            info.span_id_zero = b.iter().all(|x| *x == 0);
                        }
                        (Msg::AnyValue, 7) => {
                            info.max_value_len = info.max_value_len.max(b.len());
                        }
                        _ => {}
                    },
                    Some(Kind::Message(m)) => walk(b, m, depth + 1, info)?,
                    Some(_) => return Err("wrong wire type"),
                }
            }
            _ => return Err("unsupported wire type"),
        }
    }
    Ok(())
}

/// Validate a span message and read its ids, times and longest attribute value.
pub fn inspect_span(b: &[u8]) -> Result<SpanInfo, &'static str> {
    let mut info = SpanInfo::default();
    walk(b, Msg::Span, 0, &mut info)?;
    Ok(info)
}

enum SpanBytes {
    Raw(Bytes),
    Reencoded(Vec<u8>),
}

struct RawSpans {
    resource_heads: Vec<Vec<u8>>,
    scope_heads: Vec<Vec<Vec<u8>>>,
    spans: Vec<Vec<Vec<(SpanBytes, u64, u64)>>>,
}

impl RawSpans {
    fn entry(&self, (ri, si, pi): SpanAt) -> &(SpanBytes, u64, u64) {
        &self.spans[ri][si][pi]
    }
}

impl SpanSource for RawSpans {
    fn resource_head(&self, ri: usize) -> &[u8] {
        &self.resource_heads[ri]
    }
    fn scope_head(&self, ri: usize, si: usize) -> &[u8] {
        &self.scope_heads[ri][si]
    }
    fn span_len(&self, at: SpanAt) -> usize {
        match &self.entry(at).0 {
            SpanBytes::Raw(b) => b.len(),
            SpanBytes::Reencoded(v) => v.len(),
        }
    }
    fn write_span(&self, at: SpanAt, out: &mut Vec<u8>) {
        match &self.entry(at).0 {
            SpanBytes::Raw(b) => out.extend_from_slice(b),
            SpanBytes::Reencoded(v) => out.extend_from_slice(v),
        }
    }
    fn times(&self, at: SpanAt) -> (u64, u64) {
        let e = self.entry(at);
        (e.1, e.2)
    }
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("cannot decode OTLP protobuf request: {e}"))
}

/// Split a protobuf request. Returns the request's span count (for discard metrics, also
/// when the request is refused) and the split or the reason it was refused.
pub fn split_protobuf(
    body: Bytes,
    max_attribute_bytes: usize,
) -> Result<(u64, Result<SplitBatch>)> {
    let mut req = RawRequest::decode(body).map_err(bad)?;
    let spans: u64 = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum();
    Ok((spans, split_raw(&mut req, max_attribute_bytes)))
}

fn split_raw(req: &mut RawRequest, max_attr: usize) -> Result<SplitBatch> {
    let mut truncated = 0u64;
    let mut groups = TraceGroups::default();
    let mut spans = Vec::with_capacity(req.resource_spans.len());
    for (ri, rs) in req.resource_spans.iter_mut().enumerate() {
        if let Some(r) = rs.resource.as_mut() {
            truncated += truncate_kvs(&mut r.attributes, max_attr);
        }
        let mut scopes = Vec::with_capacity(rs.scope_spans.len());
        for (si, ss) in rs.scope_spans.iter_mut().enumerate() {
            if let Some(s) = ss.scope.as_mut() {
                truncated += truncate_kvs(&mut s.attributes, max_attr);
            }
            let mut out = Vec::with_capacity(ss.spans.len());
            for (pi, raw) in ss.spans.iter().enumerate() {
                let info = inspect_span(raw).map_err(bad)?;
                SpanIds {
                    trace_len: info.trace_id_len,
                    trace_zero: info.trace_id == [0u8; 16],
                    span_len: info.span_id_len,
                    span_zero: info.span_id_zero,
                }
                .check((ri, si, pi))?;
                let bytes = if info.max_value_len > max_attr {
                    let mut span = Span::decode(raw.clone()).map_err(bad)?;
                    truncated += truncate_kvs(&mut span.attributes, max_attr);
                    for e in &mut span.events {
                        truncated += truncate_kvs(&mut e.attributes, max_attr);
                    }
                    for l in &mut span.links {
                        truncated += truncate_kvs(&mut l.attributes, max_attr);
                    }
                    SpanBytes::Reencoded(span.encode_to_vec())
                } else {
                    SpanBytes::Raw(raw.clone())
                };
                groups.add(info.trace_id, (ri, si, pi));
                out.push((bytes, info.start, info.end));
            }
            scopes.push(out);
        }
        spans.push(scopes);
    }
    let source = RawSpans {
        resource_heads: req
            .resource_spans
            .iter()
            .map(|r| head(r.resource.as_ref(), &r.schema_url))
            .collect(),
        scope_heads: req
            .resource_spans
            .iter()
            .map(|r| {
                r.scope_spans
                    .iter()
                    .map(|s| head(s.scope.as_ref(), &s.schema_url))
                    .collect()
            })
            .collect(),
        spans,
    };
    let mut batch = groups.assemble(&source);
    batch.truncated_values = truncated;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ingest::batch::split;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        })
    }

    fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v,
            ..Default::default()
        }
    }

    fn span(t: u8, i: u8, long: usize) -> Span {
        Span {
            trace_id: vec![t; 16],
            span_id: vec![i; 8],
            parent_span_id: vec![9; 8],
            name: format!("op-{i}"),
            kind: 2,
            start_time_unix_nano: 10 + i as u64,
            end_time_unix_nano: 20 + i as u64,
            attributes: vec![
                kv("a", s(&"x".repeat(long))),
                kv(
                    "arr",
                    Some(AnyValue {
                        value: Some(any_value::Value::ArrayValue(ArrayValue {
                            values: vec![
                                s("y").unwrap(),
                                AnyValue {
                                    value: Some(any_value::Value::IntValue(7)),
                                },
                            ],
                        })),
                    }),
                ),
            ],
            events: vec![Event {
                time_unix_nano: 15,
                name: "e".into(),
                attributes: vec![kv("ea", s("v"))],
                ..Default::default()
            }],
            links: vec![Link {
                trace_id: vec![3; 16],
                span_id: vec![4; 8],
                attributes: vec![kv("la", s("w"))],
                flags: 1,
                ..Default::default()
            }],
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
            flags: 0x100,
            ..Default::default()
        }
    }

    fn request(long: usize) -> ExportTraceServiceRequest {
        let rs = |svc: &str, spans: Vec<Span>| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(svc))],
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
                rs("a", vec![span(1, 1, 3), span(2, 2, long), span(1, 3, 3)]),
                rs("b", vec![span(1, 4, 3)]),
            ],
        }
    }

    fn both(req: ExportTraceServiceRequest, max: usize) -> (SplitBatch, SplitBatch) {
        let body = Bytes::from(req.encode_to_vec());
        let (n, fast) = split_protobuf(body, max).unwrap();
        assert_eq!(n, 4);
        (fast.unwrap(), split(req, max).unwrap())
    }

    #[test]
    fn fragments_are_byte_identical_to_the_decoding_split() {
        let (fast, slow) = both(request(3), 2048);
        assert_eq!(fast.fragments, slow.fragments);
        assert_eq!((fast.spans, fast.truncated_values), (4, 0));
    }

    #[test]
    fn long_values_are_truncated_like_the_decoding_split() {
        let (fast, slow) = both(request(5000), 2048);
        assert_eq!(fast.fragments, slow.fragments);
        assert_eq!((fast.truncated_values, slow.truncated_values), (1, 1));
    }

    #[test]
    fn span_walker_reads_ids_times_and_longest_value() {
        let b = span(7, 8, 42).encode_to_vec();
        let info = inspect_span(&b).unwrap();
        assert_eq!(
            (info.trace_id, info.trace_id_len, info.span_id_len),
            ([7; 16], 16, 8)
        );
        assert_eq!((info.start, info.end, info.max_value_len), (18, 28, 42));
        assert!(!info.span_id_zero);
    }

    #[test]
    fn malformed_spans_are_refused() {
        let mut bad_utf8 = span(1, 1, 1).encode_to_vec();
        // name = "op-1": find it and break its UTF-8.
        let at = bad_utf8.windows(4).position(|w| w == b"op-1").unwrap();
        bad_utf8[at] = 0xff;
        assert_eq!(
            inspect_span(&bad_utf8).unwrap_err(),
            "string is not valid UTF-8"
        );
        // Field 7 (start time) sent as a varint: wrong wire type.
        assert_eq!(inspect_span(&[7 << 3, 1]).unwrap_err(), "wrong wire type");
        assert_eq!(
            inspect_span(&[0x0a, 0x05, 1]).unwrap_err(),
            "field runs past its message"
        );
        // Unknown fields are skipped, as prost does (field 99 as a varint).
        assert!(inspect_span(&[0x98, 0x06, 0x01]).is_ok());
        // Found by fuzzing (`wire_split`): keys past 32 bits and varints past 64 bits are
        // refused, as prost refuses them when the stored span is read back.
        let key_past_32_bits = [0xf0, 0xfb, 0xf5, 0xfd, 0x65, 0x00];
        assert!(Span::decode(&key_past_32_bits[..]).is_err());
        assert_eq!(
            inspect_span(&key_past_32_bits).unwrap_err(),
            "field key out of range"
        );
        let varint_past_64_bits = [
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(Span::decode(&varint_past_64_bits[..]).is_err());
        assert_eq!(
            inspect_span(&varint_past_64_bits).unwrap_err(),
            "varint overflows 64 bits"
        );
        let mut req = request(1);
        req.resource_spans[0].scope_spans[0].spans[1].span_id = vec![0; 8];
        let (_, r) = split_protobuf(Bytes::from(req.encode_to_vec()), 2048).unwrap();
        assert!(
            r.unwrap_err()
                .to_string()
                .starts_with("span ids must be 64 bit and not all zero")
        );
        let mut req = request(1);
        req.resource_spans[1].scope_spans[0].spans[0].trace_id = vec![1; 8];
        let (n, r) = split_protobuf(Bytes::from(req.encode_to_vec()), 2048).unwrap();
        assert_eq!(n, 4);
        assert!(
            r.unwrap_err()
                .to_string()
                .starts_with("trace ids must be 128 bit, received 64 bits")
        );
    }
}
