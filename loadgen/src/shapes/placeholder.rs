//! Placeholder conventions of [`super::TraceTemplate`]s.
//!
//! Every placeholder has the byte length of what replaces it, so encoded templates are
//! patched in place ([`super::encoded::EncodedTemplate`]):
//!
//! * span `trace_id`: any 16 bytes (by convention zeros) → the trace's id;
//! * span `span_id` / `parent_span_id`, link `span_id`: 8 bytes, big-endian `index + 1`
//!   → the id of span `index` (an empty parent stays empty: a root);
//! * link `trace_id`: 16 bytes, the first 8 zero, the last 8 a big-endian `delta`: delta 0
//!   is this trace, delta `d > 0` is trace `seq - d` (wrapping) of the same seed, whose span
//!   ids the link's span id then refers to. Other 16-byte values are left alone;
//! * times (span start/end, event time) are relative to the trace start and get
//!   `start_ns` added (wrapping);
//! * a span attribute string value `"\u{1}<modulus>"` (decimal) becomes `"v<n>"`, `n` in
//!   `0..modulus` zero-padded to the same width, derived from `(seed, seq, ordinal)` where
//!   `ordinal` counts such values through the trace in send order. This is how a shape
//!   gets per-trace value cardinality while templates are shared by `seq % VARIANTS`.

/// First character of a cardinality placeholder string.
pub const CARD_MARK: u8 = 0x01;

/// Placeholder for span `index` of the trace (span id, parent id or link span id).
pub fn span_ref(index: u64) -> Vec<u8> {
    index.wrapping_add(1).to_be_bytes().to_vec()
}

/// The span index a placeholder span id refers to (8 bytes), else `None`.
#[inline]
pub fn parse_span_ref(b: &[u8]) -> Option<u64> {
    let a: [u8; 8] = b.try_into().ok()?;
    Some(u64::from_be_bytes(a).wrapping_sub(1))
}

/// Placeholder span trace id, and link trace id for a link within the trace.
pub fn this_trace() -> Vec<u8> {
    vec![0; 16]
}

/// Link trace id placeholder for trace `seq - delta` of the same run.
pub fn other_trace(delta: u64) -> Vec<u8> {
    let mut v = vec![0; 16];
    v[8..].copy_from_slice(&delta.to_be_bytes());
    v
}

/// The delta of a link trace id placeholder (0 = this trace), else `None`.
#[inline]
pub fn parse_link_trace(b: &[u8]) -> Option<u64> {
    let a: [u8; 16] = b.try_into().ok()?;
    let hi = u64::from_be_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let lo = u64::from_be_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
    (hi == 0).then_some(lo)
}

/// A cardinality placeholder: becomes one of `modulus` values per trace.
pub fn card(modulus: u64) -> String {
    format!("{}{}", CARD_MARK as char, modulus.max(1))
}

/// The modulus of a cardinality placeholder string, else `None`.
#[inline]
pub fn parse_card(b: &[u8]) -> Option<u64> {
    let (&first, digits) = b.split_first()?;
    if first != CARD_MARK || digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut m = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        m = m * 10 + u64::from(d - b'0');
    }
    (m > 0).then_some(m)
}

/// Write `"v" + value` zero-padded to fill `dst` (same length as the placeholder).
#[inline]
pub fn write_card(dst: &mut [u8], mut value: u64) {
    if let Some((first, digits)) = dst.split_first_mut() {
        *first = b'v';
        for d in digits.iter_mut().rev() {
            *d = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
}

/// The string [`write_card`] writes into a placeholder of `width` bytes.
pub fn card_string(value: u64, width: usize) -> String {
    let mut b = vec![0u8; width];
    write_card(&mut b, value);
    b.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_span_ref(&span_ref(0)), Some(0));
        assert_eq!(parse_span_ref(&span_ref(9999)), Some(9999));
        assert_eq!(parse_span_ref(&[1, 2]), None);
        assert_eq!(parse_link_trace(&this_trace()), Some(0));
        assert_eq!(parse_link_trace(&other_trace(3)), Some(3));
        assert_eq!(parse_link_trace(&[0xff; 16]), None);
        let c = card(1000);
        assert_eq!(c.len(), 5);
        assert_eq!(parse_card(c.as_bytes()), Some(1000));
        assert_eq!(parse_card(b"v0042"), None);
        assert_eq!(card_string(42, c.len()), "v0042");
        assert_eq!(card_string(999, c.len()), "v0999");
    }
}
