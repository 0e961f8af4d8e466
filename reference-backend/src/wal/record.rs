//! WAL segment and record encoding.
//!
//! ```text
//! segment = header record*
//! header  = "RBWAL\0" version:u16le                      (8 bytes)
//! record  = len:u32le crc32c(body):u32le body            (len = body length)
//! body    = tenant_len:u16le tenant fragment_count:u32le fragment*
//! fragment= trace_id[16] spans:u32le start_ns:u64le end_ns:u64le len:u32le bytes
//! ```

use tempo_api::trace_id::TraceId;

use crate::ingest::batch::Fragment;

/// Segment magic.
pub const MAGIC: &[u8; 6] = b"RBWAL\0";
/// Current segment format version.
pub const VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 8;
/// Length of a record's frame (length and checksum).
pub const FRAME_LEN: usize = 8;
const FRAGMENT_HEAD: usize = 16 + 4 + 8 + 8 + 4;

/// The segment header bytes.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..6].copy_from_slice(MAGIC);
    h[6..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Tenant the fragments belong to.
    pub tenant: String,
    /// The accepted fragments.
    pub fragments: Vec<Fragment>,
}

/// Frame a record (length, checksum, body) ready to append.
pub fn encode(tenant: &str, fragments: &[Fragment]) -> Vec<u8> {
    let body_len = 2
        + tenant.len()
        + 4
        + fragments
            .iter()
            .map(|f| FRAGMENT_HEAD + f.bytes.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(FRAME_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(tenant.len() as u16).to_le_bytes());
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(&(fragments.len() as u32).to_le_bytes());
    for f in fragments {
        out.extend_from_slice(&f.trace_id);
        out.extend_from_slice(&f.spans.to_le_bytes());
        out.extend_from_slice(&f.start_ns.to_le_bytes());
        out.extend_from_slice(&f.end_ns.to_le_bytes());
        out.extend_from_slice(&(f.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&f.bytes);
    }
    let crc = crc32c::crc32c(&out[FRAME_LEN..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// One fragment's summary and where its bytes sit in a segment file: what the live store
/// keeps instead of the bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRef {
    /// Trace id.
    pub trace_id: TraceId,
    /// Spans in the fragment.
    pub spans: u32,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
    /// File offset of the fragment's bytes in its segment.
    pub offset: u64,
    /// Length of the fragment's bytes.
    pub len: u32,
}

/// Where each fragment of a record written at file offset `record_offset` (by
/// [`encode`] with the same tenant and fragments) keeps its bytes.
pub fn fragment_refs(record_offset: u64, tenant: &str, fragments: &[Fragment]) -> Vec<FragmentRef> {
    let mut pos = record_offset + (FRAME_LEN + 2 + tenant.len() + 4) as u64;
    fragments
        .iter()
        .map(|f| {
            pos += FRAGMENT_HEAD as u64;
            let r = FragmentRef {
                trace_id: f.trace_id,
                spans: f.spans,
                start_ns: f.start_ns,
                end_ns: f.end_ns,
                offset: pos,
                len: f.bytes.len() as u32,
            };
            pos += f.bytes.len() as u64;
            r
        })
        .collect()
}

/// The tenant and fragment references of a record body that starts at file offset
/// `body_offset`, without copying fragment bytes. `None` when the body is malformed.
pub fn scan_body(body: &[u8], body_offset: u64) -> Option<(String, Vec<FragmentRef>)> {
    let mut c = Cursor(body);
    let tlen = c.u16()? as usize;
    let tenant = std::str::from_utf8(c.take(tlen)?).ok()?.to_owned();
    let n = c.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(body.len() / FRAGMENT_HEAD));
    for _ in 0..n {
        let trace_id: TraceId = c.take(16)?.try_into().ok()?;
        let spans = c.u32()?;
        let start_ns = c.u64()?;
        let end_ns = c.u64()?;
        let len = c.u32()?;
        let offset = body_offset + (body.len() - c.0.len()) as u64;
        c.take(len as usize)?;
        out.push(FragmentRef {
            trace_id,
            spans,
            start_ns,
            end_ns,
            offset,
            len,
        });
    }
    if !c.0.is_empty() {
        return None;
    }
    Some((tenant, out))
}

/// Length and checksum from a record's frame.
pub fn frame(head: &[u8; FRAME_LEN]) -> (usize, u32) {
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    (len, crc)
}

/// Why reading stopped before the end of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Clean end of data.
    End,
    /// A record runs past the end of the file (a write that never completed).
    Torn {
        /// Offset where the bad record starts.
        offset: usize,
    },
    /// A record's checksum or structure is wrong.
    Corrupt {
        /// Offset where the bad record starts.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Decode all good records of a segment body (after the header).
/// Returns the records and why decoding stopped; offsets are relative to the whole file.
pub fn decode_all(data: &[u8]) -> (Vec<Record>, Stop) {
    let mut records = Vec::new();
    let mut pos = HEADER_LEN;
    loop {
        if pos == data.len() {
            return (records, Stop::End);
        }
        if data.len() - pos < FRAME_LEN {
            return (records, Stop::Torn { offset: pos });
        }
        let len =
            u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let body_start = pos + FRAME_LEN;
        if data.len() - body_start < len {
            return (records, Stop::Torn { offset: pos });
        }
        let body = &data[body_start..body_start + len];
        if crc32c::crc32c(body) != crc {
            return (
                records,
                Stop::Corrupt {
                    offset: pos,
                    reason: "checksum mismatch".into(),
                },
            );
        }
        match decode_body(body) {
            Some(r) => records.push(r),
            None => {
                return (
                    records,
                    Stop::Corrupt {
                        offset: pos,
                        reason: "malformed record body".into(),
                    },
                );
            }
        }
        pos = body_start + len;
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}

fn decode_body(body: &[u8]) -> Option<Record> {
    let mut c = Cursor(body);
    let tlen = c.u16()? as usize;
    let tenant = std::str::from_utf8(c.take(tlen)?).ok()?.to_owned();
    let n = c.u32()? as usize;
    let mut fragments = Vec::with_capacity(n.min(body.len() / FRAGMENT_HEAD));
    for _ in 0..n {
        let trace_id: TraceId = c.take(16)?.try_into().ok()?;
        let spans = c.u32()?;
        let start_ns = c.u64()?;
        let end_ns = c.u64()?;
        let len = c.u32()? as usize;
        let bytes = c.take(len)?.to_vec();
        fragments.push(Fragment {
            trace_id,
            spans,
            start_ns,
            end_ns,
            bytes,
        });
    }
    if !c.0.is_empty() {
        return None;
    }
    Some(Record { tenant, fragments })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn frag(n: u8) -> Fragment {
        Fragment {
            trace_id: [n; 16],
            spans: n as u32,
            start_ns: 10,
            end_ns: 20,
            bytes: vec![n; n as usize * 3],
        }
    }

    fn segment(records: &[Vec<u8>]) -> Vec<u8> {
        let mut s = header().to_vec();
        for r in records {
            s.extend_from_slice(r);
        }
        s
    }

    #[test]
    fn records_round_trip() {
        let a = encode("t1", &[frag(1), frag(2)]);
        let b = encode("single-tenant", &[frag(3)]);
        let (recs, stop) = decode_all(&segment(&[a, b]));
        assert_eq!(stop, Stop::End);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].tenant, "t1");
        assert_eq!(recs[0].fragments, vec![frag(1), frag(2)]);
        assert_eq!(recs[1].fragments, vec![frag(3)]);
    }

    #[test]
    fn torn_tail_keeps_the_good_prefix() {
        let a = encode("t", &[frag(1)]);
        let b = encode("t", &[frag(2)]);
        let mut s = segment(&[a.clone(), b]);
        s.truncate(s.len() - 3);
        let (recs, stop) = decode_all(&s);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            stop,
            Stop::Torn {
                offset: HEADER_LEN + a.len()
            }
        );
    }

    #[test]
    fn fragment_refs_point_at_the_fragment_bytes() {
        let frags = [frag(1), frag(2), frag(5)];
        let a = encode("t1", &[frag(3)]);
        let b = encode("tenant-b", &frags);
        let s = segment(&[a.clone(), b]);
        let at = (HEADER_LEN + a.len()) as u64;
        let refs = fragment_refs(at, "tenant-b", &frags);
        for (r, f) in refs.iter().zip(&frags) {
            let (o, l) = (r.offset as usize, r.len as usize);
            assert_eq!(&s[o..o + l], f.bytes.as_slice());
            assert_eq!((r.trace_id, r.spans), (f.trace_id, f.spans));
        }
        let body_at = at as usize + FRAME_LEN;
        let (tenant, scanned) = scan_body(&s[body_at..], body_at as u64).unwrap();
        assert_eq!(tenant, "tenant-b");
        assert_eq!(scanned, refs);
        assert!(scan_body(&s[body_at..s.len() - 1], body_at as u64).is_none());
    }

    #[test]
    fn flipped_bit_is_detected() {
        let a = encode("t", &[frag(4)]);
        let mut s = segment(&[a]);
        let last = s.len() - 1;
        s[last] ^= 1;
        let (recs, stop) = decode_all(&s);
        assert!(recs.is_empty());
        assert!(matches!(
            stop,
            Stop::Corrupt {
                offset: HEADER_LEN,
                ..
            }
        ));
    }
}
