//! Finding placeholders in prost-encoded templates (see [`super::encoded`]).

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use super::encoded::{EncodedEntry, OtherPatch, SpanPatch, TIME_BIAS, TimePatch};
use super::placeholder::{parse_card, parse_link_trace, parse_span_ref};

/// Encode one `ResourceSpans` (times biased) with its request prefix and record patches.
pub(super) fn encode_entry(rs: &ResourceSpans, ordinal: &mut u64) -> EncodedEntry {
    let mut biased = rs.clone();
    for span in biased
        .scope_spans
        .iter_mut()
        .flat_map(|ss| ss.spans.iter_mut())
    {
        span.start_time_unix_nano = span.start_time_unix_nano.wrapping_add(TIME_BIAS);
        span.end_time_unix_nano = span.end_time_unix_nano.wrapping_add(TIME_BIAS);
        for e in &mut span.events {
            e.time_unix_nano = e.time_unix_nano.wrapping_add(TIME_BIAS);
        }
    }
    let mut bytes = Vec::with_capacity(biased.encoded_len() + 6);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut bytes);
    prost::encoding::encode_varint(biased.encoded_len() as u64, &mut bytes);
    biased.encode_raw(&mut bytes);
    let mut e = EncodedEntry {
        spans: rs.scope_spans.iter().map(|ss| ss.spans.len()).sum(),
        ..Default::default()
    };
    let mut w = Walker {
        buf: &bytes,
        entry: &mut e,
        ordinal,
    };
    let ok = w.request_field();
    debug_assert!(ok.is_some(), "prost produced bytes the walker cannot read");
    e.bytes = bytes;
    e
}

/// Walks prost-encoded bytes along the paths where placeholders live.
struct Walker<'a> {
    buf: &'a [u8],
    entry: &'a mut EncodedEntry,
    ordinal: &'a mut u64,
}

/// A field: number, and either a length-delimited range or a fixed64 at an offset.
enum Field {
    Len(u32, usize, usize),
    Fixed64(u32, usize),
    Other,
}

impl Walker<'_> {
    fn varint(&self, pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(*pos)?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// Read the field at `pos`, advancing past it.
    fn field(&self, pos: &mut usize) -> Option<Field> {
        let key = self.varint(pos)?;
        let num = (key >> 3) as u32;
        Some(match key & 7 {
            0 => {
                self.varint(pos)?;
                Field::Other
            }
            1 => {
                let at = *pos;
                *pos += 8;
                Field::Fixed64(num, at)
            }
            2 => {
                let len = self.varint(pos)? as usize;
                let start = *pos;
                *pos += len;
                if *pos > self.buf.len() {
                    return None;
                }
                Field::Len(num, start, *pos)
            }
            5 => {
                *pos += 4;
                Field::Other
            }
            _ => return None,
        })
    }

    /// Call `f` for every field in `start..end`.
    fn each(
        &mut self,
        start: usize,
        end: usize,
        mut f: impl FnMut(&mut Self, Field) -> Option<()>,
    ) -> Option<()> {
        let mut pos = start;
        while pos < end {
            let field = self.field(&mut pos)?;
            f(self, field)?;
        }
        (pos == end).then_some(())
    }

    fn request_field(&mut self) -> Option<()> {
        let end = self.buf.len();
        self.each(0, end, |w, f| match f {
            Field::Len(1, s, e) => w.each(s, e, |w, f| match f {
                Field::Len(2, s, e) => w.scope_spans(s, e),
                _ => Some(()),
            }),
            _ => Some(()),
        })
    }

    fn scope_spans(&mut self, start: usize, end: usize) -> Option<()> {
        self.each(start, end, |w, f| match f {
            Field::Len(2, s, e) => w.span(s, e),
            _ => Some(()),
        })
    }

    fn bytes(&self, s: usize, e: usize) -> &[u8] {
        self.buf.get(s..e).unwrap_or_default()
    }

    fn time(&mut self, at: usize) -> Option<()> {
        let raw: [u8; 8] = self.buf.get(at..at + 8)?.try_into().ok()?;
        let rel = u64::from_le_bytes(raw).wrapping_sub(TIME_BIAS);
        self.entry.time.push(TimePatch {
            off: at as u32,
            rel,
        });
        Some(())
    }

    fn span(&mut self, start: usize, end: usize) -> Option<()> {
        self.each(start, end, |w, f| {
            match f {
                Field::Len(1, s, e) if e - s == 16 => w.entry.trace.push(s as u32),
                Field::Len(2 | 4, s, e) => {
                    if let Some(idx) = parse_span_ref(w.bytes(s, e)) {
                        w.entry.span.push(SpanPatch { off: s as u32, idx });
                    }
                }
                Field::Fixed64(7 | 8, at) => w.time(at)?,
                Field::Len(9, s, e) => w.attribute(s, e)?,
                Field::Len(11, s, e) => w.each(s, e, |w, f| match f {
                    Field::Fixed64(1, at) => w.time(at),
                    _ => Some(()),
                })?,
                Field::Len(13, s, e) => w.link(s, e)?,
                _ => {}
            }
            Some(())
        })
    }

    fn attribute(&mut self, start: usize, end: usize) -> Option<()> {
        self.each(start, end, |w, f| match f {
            Field::Len(2, s, e) => w.each(s, e, |w, f| {
                if let Field::Len(1, s, e) = f
                    && let Some(modulus) = parse_card(w.bytes(s, e))
                {
                    w.entry.other.push(OtherPatch::Card {
                        off: s as u32,
                        len: (e - s) as u32,
                        modulus,
                        ordinal: *w.ordinal,
                    });
                    *w.ordinal += 1;
                }
                Some(())
            }),
            _ => Some(()),
        })
    }

    fn link(&mut self, start: usize, end: usize) -> Option<()> {
        let mut trace: Option<(usize, u64)> = None;
        let mut span: Option<(usize, u64)> = None;
        self.each(start, end, |w, f| {
            match f {
                Field::Len(1, s, e) => trace = parse_link_trace(w.bytes(s, e)).map(|d| (s, d)),
                Field::Len(2, s, e) => span = parse_span_ref(w.bytes(s, e)).map(|i| (s, i)),
                _ => {}
            }
            Some(())
        })?;
        let Some((toff, delta)) = trace else {
            return Some(());
        };
        let e = &mut *self.entry;
        if delta == 0 {
            e.trace.push(toff as u32);
            if let Some((off, idx)) = span {
                e.span.push(SpanPatch {
                    off: off as u32,
                    idx,
                });
            }
        } else {
            e.other.push(OtherPatch::LinkTrace {
                off: toff as u32,
                delta,
            });
            if let Some((off, idx)) = span {
                e.other.push(OtherPatch::LinkSpan {
                    off: off as u32,
                    delta,
                    idx,
                });
            }
        }
        Some(())
    }
}
