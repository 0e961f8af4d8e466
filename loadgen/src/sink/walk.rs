//! Counting spans without decoding: a tag/varint walker over
//! `ExportTraceServiceRequest → ResourceSpans(1) → ScopeSpans(2) → Span(2)`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
/// Why a body is not a well-formed `ExportTraceServiceRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed ExportTraceServiceRequest: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

enum Field<'a> {
    Scalar,
    Len(&'a [u8]),
}

#[inline(always)]
fn varint(buf: &[u8], pos: &mut usize) -> std::result::Result<u64, Malformed> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or(Malformed("truncated varint"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(Malformed("varint longer than 10 bytes"));
        }
    }
}

/// Walk the fields of one message, calling `f(field_number, value)`.
#[inline(always)]
fn fields<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u64, Field<'a>) -> std::result::Result<(), Malformed>,
) -> std::result::Result<(), Malformed> {
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let number = key >> 3;
        if number == 0 || number > 0x1FFF_FFFF {
            return Err(Malformed("invalid field number"));
        }
        let value = match key & 7 {
            0 => {
                varint(buf, &mut pos)?;
                Field::Scalar
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if buf.len() - pos < n {
                    return Err(Malformed("truncated fixed-size field"));
                }
                pos += n;
                Field::Scalar
            }
            2 => {
                let len = varint(buf, &mut pos)?;
                if len > (buf.len() - pos) as u64 {
                    return Err(Malformed("length-delimited field runs past the end"));
                }
                let v = &buf[pos..pos + len as usize];
                pos += len as usize;
                Field::Len(v)
            }
            _ => return Err(Malformed("unsupported wire type")),
        };
        f(number, value)?;
    }
    Ok(())
}

/// Count the spans of an encoded `ExportTraceServiceRequest` without decoding it:
/// only the resource_spans → scope_spans → spans structure is checked.
pub fn count_spans(body: &[u8]) -> std::result::Result<u64, Malformed> {
    let mut spans = 0u64;
    fields(body, |n, v| match (n, v) {
        (1, Field::Len(rs)) => fields(rs, |n, v| match (n, v) {
            (2, Field::Len(ss)) => fields(ss, |n, v| match (n, v) {
                (2, Field::Len(_)) => {
                    spans += 1;
                    Ok(())
                }
                (1..=3, Field::Scalar) => Err(Malformed("ScopeSpans field has a wrong type")),
                _ => Ok(()),
            }),
            (1..=3, Field::Scalar) => Err(Malformed("ResourceSpans field has a wrong type")),
            _ => Ok(()),
        }),
        (1, Field::Scalar) => Err(Malformed("resource_spans is not length-delimited")),
        _ => Ok(()),
    })?;
    Ok(spans)
}

/// Count the spans of an OTLP/JSON request (fully decoded: JSON is slow anyway).
pub fn count_spans_json(body: &[u8]) -> std::result::Result<u64, String> {
    let req: ExportTraceServiceRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON body: {e}"))?;
    Ok(req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum())
}
