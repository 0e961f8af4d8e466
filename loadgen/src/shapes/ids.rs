//! Deterministic ids and a tiny RNG.
//!
//! Trace and span ids are pure functions of `(seed, seq[, index])`, mixed with the
//! SplitMix64 finaliser so that consecutive sequence numbers give unrelated-looking ids
//! (backends shard and index on id bits). For a fixed seed the low half of the trace id is
//! a bijection of `seq`, so distinct sequence numbers always give distinct trace ids; span
//! ids are a bijection of the span index within a trace, so they never repeat inside one
//! trace. Neither id is ever all zero (OTLP treats zero ids as invalid).

/// 2^64 / φ, the SplitMix64 increment.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const SALT_SEED: u64 = 0x5EED_0F7E_ACEB_0A7F;
const SALT_HI: u64 = 0xA076_1D64_78BD_642F;
const SALT_SPAN: u64 = 0xE703_7ED1_A0B4_28DB;
const SALT_CARD: u64 = 0x8EBC_6AF0_9C88_C6E3;

/// The SplitMix64 finaliser: a bijection on `u64` with good avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every id of one trace, derived once from `(seed, seq)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    trace_id: [u8; 16],
    span_base: u64,
}

impl TraceIds {
    /// Ids of trace `seq` of the run seeded with `seed`.
    #[inline]
    pub fn new(seed: u64, seq: u64) -> Self {
        let key = mix64(seed ^ SALT_SEED);
        // Bijective in `seq` for a fixed seed: distinct seqs never share a trace id.
        let lo = mix64(seq.wrapping_add(key));
        let hi = mix64(lo ^ mix64(seed.wrapping_add(SALT_HI)));
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&hi.to_be_bytes());
        trace_id[8..].copy_from_slice(&lo.to_be_bytes());
        if hi == 0 && lo == 0 {
            trace_id[15] = 1;
        }
        TraceIds {
            trace_id,
            span_base: mix64(lo ^ hi.rotate_left(17) ^ SALT_SPAN),
        }
    }

    /// The trace id.
    #[inline]
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The id of span `index` (0-based position within the trace).
    #[inline]
    pub fn span_id(&self, index: u64) -> [u8; 8] {
        let v = mix64(self.span_base.wrapping_add(index.wrapping_mul(GOLDEN)));
        if v == 0 { GOLDEN } else { v }.to_be_bytes()
    }

    /// A value in `0..modulus` for the `ordinal`-th patched attribute value of this trace
    /// (see the `high-cardinality` shape). `modulus` 0 is treated as 1.
    #[inline]
    pub fn card_value(&self, ordinal: u64, modulus: u64) -> u64 {
        mix64(self.span_base ^ mix64(ordinal.wrapping_add(SALT_CARD))) % modulus.max(1)
    }
}

/// Trace id of trace `seq` (never all zero; distinct seqs give distinct ids).
pub fn trace_id(seed: u64, seq: u64) -> [u8; 16] {
    TraceIds::new(seed, seq).trace_id()
}

/// Span id of span `index` of trace `seq` (never zero; distinct within a trace).
pub fn span_id(seed: u64, seq: u64, index: u64) -> [u8; 8] {
    TraceIds::new(seed, seq).span_id(index)
}

/// SplitMix64: a tiny, fast, deterministic RNG for deriving template content.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// An RNG for `(seed, stream)`, e.g. `(seed, variant ^ shape_salt)`.
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng {
            state: mix64(seed ^ mix64(stream.wrapping_add(GOLDEN))),
        }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (`lo` when `hi < lo`).
    #[inline]
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// A uniformly chosen element (`None` for an empty slice).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }

    /// Poisson-distributed count with the given mean (Knuth; fine for small means).
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean.is_nan() || mean <= 0.0 {
            return 0;
        }
        let limit = (-mean.min(30.0)).exp();
        let mut k = 0u64;
        let mut p = self.f64();
        while p > limit && k < 1000 {
            k += 1;
            p *= self.f64();
        }
        k
    }

    /// `n` random lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..n)
            .map(|_| DIGITS[(self.next_u64() >> 60) as usize] as char)
            .collect()
    }

    /// A random UUIDv4-formatted string.
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_distinct_and_nonzero() {
        let mut traces = HashSet::new();
        for seed in [0u64, 1, 42, u64::MAX] {
            for seq in 0..20_000u64 {
                let ids = TraceIds::new(seed, seq);
                assert_ne!(ids.trace_id(), [0u8; 16]);
                assert!(traces.insert(ids.trace_id()));
                if seq < 200 {
                    let spans: HashSet<_> = (0..500).map(|i| ids.span_id(i)).collect();
                    assert_eq!(spans.len(), 500);
                    assert!(!spans.contains(&[0u8; 8]));
                }
            }
        }
        assert_eq!(trace_id(1, 7), TraceIds::new(1, 7).trace_id());
        assert_eq!(span_id(1, 7, 3), TraceIds::new(1, 7).span_id(3));
    }

    #[test]
    fn ids_well_mixed() {
        // Consecutive seqs flip about half the bits of both halves.
        let mut flips = 0u32;
        for seq in 0..1000u64 {
            let a = u128::from_be_bytes(trace_id(1, seq));
            let b = u128::from_be_bytes(trace_id(1, seq + 1));
            flips += (a ^ b).count_ones();
        }
        let mean = flips as f64 / 1000.0;
        assert!((56.0..72.0).contains(&mean), "mean bit flips {mean}");
    }

    #[test]
    fn rng_deterministic_and_bounded() {
        let mut a = Rng::new(3, 9);
        let mut b = Rng::new(3, 9);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let x = a.range(5, 9);
            assert!((5..=9).contains(&x));
            b.range(5, 9);
        }
        let mut r = Rng::new(1, 1);
        let mean = (0..10_000).map(|_| r.poisson(3.0)).sum::<u64>() as f64 / 10_000.0;
        assert!((2.8..3.2).contains(&mean), "poisson mean {mean}");
        assert_eq!(r.uuid().len(), 36);
    }
}
