//! Reading and combining encoded `TracesData` without decoding spans: a walker over
//! protobuf fields, span statistics, and the merge of several parts of one trace.

use std::collections::{HashMap, HashSet};

use prost::encoding::{WireType, decode_varint, encode_key, encode_varint, encoded_len_varint};

/// A field of a protobuf message: number, value and its whole encoding (key included).
struct Field<'a> {
    number: u32,
    value: Value<'a>,
    raw: &'a [u8],
}

enum Value<'a> {
    Varint,
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
}

/// The top-level fields of one message.
fn fields(mut b: &[u8]) -> impl Iterator<Item = Result<Field<'_>, &'static str>> {
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        let start = b;
        let r = (|| {
            let key = decode_varint(&mut b).map_err(|_| "bad field key")?;
            let number = u32::try_from(key >> 3).map_err(|_| "bad field number")?;
            let value = match key & 7 {
                0 => {
                    decode_varint(&mut b).map_err(|_| "bad varint")?;
                    Value::Varint
                }
                1 => {
                    let (v, rest) = b.split_first_chunk::<8>().ok_or("truncated fixed64")?;
                    b = rest;
                    Value::Fixed64(u64::from_le_bytes(*v))
                }
                5 => {
                    let (_, rest) = b.split_first_chunk::<4>().ok_or("truncated fixed32")?;
                    b = rest;
                    Value::Fixed32
                }
                2 => {
                    let len = decode_varint(&mut b).map_err(|_| "bad length")?;
                    let len = usize::try_from(len).map_err(|_| "bad length")?;
                    if len > b.len() {
                        return Err("length runs past the message");
                    }
                    let (v, rest) = b.split_at(len);
                    b = rest;
                    Value::Bytes(v)
                }
                _ => return Err("unsupported wire type"),
            };
            Ok(Field {
                number,
                value,
                raw: &start[..start.len() - b.len()],
            })
        })();
        if r.is_err() {
            b = &[];
        }
        Some(r)
    })
}

/// Sub-messages `number` of a message (resource spans, scope spans, spans).
fn children(b: &[u8], number: u32) -> impl Iterator<Item = Result<&[u8], &'static str>> {
    fields(b).filter_map(move |f| match f {
        Ok(Field {
            number: n,
            value: Value::Bytes(v),
            ..
        }) if n == number => Some(Ok(v)),
        Ok(Field { number: n, .. }) if n == number => Some(Err("wrong wire type")),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    })
}

/// Span id, start and end of an encoded span.
fn span_fields(span: &[u8]) -> Result<(&[u8], u64, u64), &'static str> {
    let (mut id, mut start, mut end): (&[u8], u64, u64) = (&[], 0, 0);
    for f in fields(span) {
        match f? {
            Field {
                number: 2,
                value: Value::Bytes(v),
                ..
            } => id = v,
            Field {
                number: 7,
                value: Value::Fixed64(v),
                ..
            } => start = v,
            Field {
                number: 8,
                value: Value::Fixed64(v),
                ..
            } => end = v,
            _ => {}
        }
    }
    Ok((id, start, end))
}

/// What [`walk_stats`] finds.
pub struct Stats {
    /// Earliest span start.
    pub start: u64,
    /// Latest span end.
    pub end: u64,
    /// Span count.
    pub spans: u32,
    /// Some span id occurs twice.
    pub duplicates: bool,
}

/// Span count, time range and whether any span id repeats, without decoding spans.
pub fn walk_stats(td: &[u8]) -> Result<Stats, &'static str> {
    let mut s = Stats {
        start: u64::MAX,
        end: 0,
        spans: 0,
        duplicates: false,
    };
    let mut ids: HashSet<&[u8]> = HashSet::new();
    for rs in children(td, 1) {
        for ss in children(rs?, 2) {
            for span in children(ss?, 2) {
                let (id, start, end) = span_fields(span?)?;
                s.duplicates |= !ids.insert(id);
                s.start = s.start.min(start);
                s.end = s.end.max(end);
                s.spans = s.spans.saturating_add(1);
            }
        }
    }
    if s.spans == 0 {
        s.start = 0;
    }
    Ok(s)
}

/// Every field of a message except `number`, encoded (the "head" of a container).
fn head_without(b: &[u8], number: u32) -> Result<Vec<u8>, &'static str> {
    let mut head = Vec::new();
    for f in fields(b) {
        let f = f?;
        if f.number != number {
            head.extend_from_slice(f.raw);
        }
    }
    Ok(head)
}

struct Scope<'a> {
    head: Vec<u8>,
    spans: Vec<&'a [u8]>,
}

struct Resource<'a> {
    head: Vec<u8>,
    scopes: Vec<Scope<'a>>,
}

/// Combine encoded `TracesData` parts: equal resources and scopes merged, span ids unique.
pub fn combine(parts: &[Vec<u8>]) -> Result<Vec<u8>, &'static str> {
    let mut resources: Vec<Resource<'_>> = Vec::new();
    let mut by_resource: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut by_scope: HashMap<(usize, Vec<u8>), usize> = HashMap::new();
    let mut seen: HashSet<&[u8]> = HashSet::new();
    for part in parts {
        for rs in children(part, 1) {
            let rs = rs?;
            let rhead = head_without(rs, 2)?;
            let ri = *by_resource.entry(rhead.clone()).or_insert_with(|| {
                resources.push(Resource {
                    head: rhead,
                    scopes: Vec::new(),
                });
                resources.len() - 1
            });
            for ss in children(rs, 2) {
                let ss = ss?;
                let shead = head_without(ss, 2)?;
                let si = *by_scope.entry((ri, shead.clone())).or_insert_with(|| {
                    resources[ri].scopes.push(Scope {
                        head: shead,
                        spans: Vec::new(),
                    });
                    resources[ri].scopes.len() - 1
                });
                for span in children(ss, 2) {
                    let span = span?;
                    let (id, _, _) = span_fields(span)?;
                    if seen.insert(id) {
                        resources[ri].scopes[si].spans.push(span);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for r in &resources {
        let scope_lens: Vec<usize> = r
            .scopes
            .iter()
            .filter(|s| !s.spans.is_empty())
            .map(|s| s.head.len() + s.spans.iter().map(|b| field_len(2, b.len())).sum::<usize>())
            .collect();
        if scope_lens.is_empty() {
            continue;
        }
        let body = r.head.len() + scope_lens.iter().map(|l| field_len(2, *l)).sum::<usize>();
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(body as u64, &mut out);
        out.extend_from_slice(&r.head);
        for (s, len) in r
            .scopes
            .iter()
            .filter(|s| !s.spans.is_empty())
            .zip(scope_lens)
        {
            encode_key(2, WireType::LengthDelimited, &mut out);
            encode_varint(len as u64, &mut out);
            out.extend_from_slice(&s.head);
            for span in &s.spans {
                encode_key(2, WireType::LengthDelimited, &mut out);
                encode_varint(span.len() as u64, &mut out);
                out.extend_from_slice(span);
            }
        }
    }
    Ok(out)
}

/// Encoded length of a length-delimited field `number` holding `len` bytes.
fn field_len(number: u32, len: usize) -> usize {
    prost::encoding::key_len(number) + encoded_len_varint(len as u64) + len
}
