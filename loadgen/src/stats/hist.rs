//! HDR histogram helpers: creation, portable serialization, percentile summaries.

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::error::{Error, Result};
use crate::report::model::Percentiles;

/// A histogram of microseconds from 1 µs to 1 hour, 3 significant digits.
pub fn new_us() -> Histogram<u64> {
    new_with_max(3_600_000_000)
}

/// A histogram from 1 to `max`, 3 significant digits.
pub fn new_with_max(max: u64) -> Histogram<u64> {
    new_with_max_sigfig(max, 3)
}

/// A histogram from 1 to `max` with `sigfig` (1–5, clamped) significant digits.
#[allow(clippy::expect_used)]
pub fn new_with_max_sigfig(max: u64, sigfig: u8) -> Histogram<u64> {
    // `new_with_bounds` only rejects low < 1, high < 2 * low or sigfig > 5; low is 1, high
    // is at least 2 and sigfig is clamped, so this cannot fail whatever the input.
    Histogram::new_with_bounds(1, max.max(2), sigfig.clamp(1, 5))
        .expect("histogram bounds are valid by construction")
}

/// Record `value`, clamping into range.
pub fn record(h: &mut Histogram<u64>, value: u64) {
    let v = value.clamp(h.low(), h.high());
    let _ = h.record(v);
}

/// Serialize as V2 + deflate, base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// Inverse of [`encode`].
pub fn decode(text: &str) -> Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::Other(format!("histogram is not base64: {e}")))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| Error::Other(format!("histogram does not decode: {e:?}")))
}

/// Summary in milliseconds of a histogram whose unit is `unit_per_ms` per millisecond
/// (1000 for µs, 1 for ms).
pub fn percentiles(h: &Histogram<u64>, unit_per_ms: f64) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |v: u64| v as f64 / unit_per_ms;
    Percentiles {
        count: h.len(),
        min: ms(h.min()),
        mean: h.mean() / unit_per_ms,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip_and_merge_are_exact() {
        let mut a = new_us();
        let mut b = new_us();
        for v in 1..=1000 {
            record(&mut a, v);
            record(&mut b, v * 1000);
        }
        let mut merged = decode(&encode(&a)).unwrap();
        merged.add(decode(&encode(&b)).unwrap()).unwrap();
        assert_eq!(merged.len(), 2000);
        assert_eq!(merged.max(), b.max());
        let p = percentiles(&merged, 1000.0);
        assert!(p.p50 >= 0.99 && p.p50 <= 1.01, "{p:?}");
    }
}
