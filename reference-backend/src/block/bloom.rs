//! Sharded bloom filter over trace ids.
//!
//! Shard of a trace id = `fnv32a(id) % shards` (Tempo's rule). Each shard is an object:
//! `"RBBLOOM\0" version:u16le k:u32le bits:u64le words:u64le* crc32c:u32le`.

use tempo_api::trace_id::TraceId;

const MAGIC: &[u8; 8] = b"RBBLOOM\0";
const VERSION: u16 = 1;
/// Most shards a block has (writers never make more).
pub const MAX_SHARDS: usize = 1000;
/// Most hash functions a shard may use (writers use 1 to 16); a damaged header with more
/// would make every lookup loop that many times.
const MAX_HASHES: u32 = 64;

/// FNV-1a 32-bit hash.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn fnv64a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Which shard holds `id`.
pub fn shard_of(id: &TraceId, shards: u32) -> usize {
    (fnv32a(id) % shards.max(1)) as usize
}

/// One bloom filter shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    k: u32,
    bits: u64,
    words: Vec<u64>,
}

impl Bloom {
    /// A filter for `n` items at false-positive rate `fp`, at most `max_bytes` big.
    pub fn with_capacity(n: usize, fp: f64, max_bytes: usize) -> Self {
        let ln2 = std::f64::consts::LN_2;
        let want = (-(n.max(1) as f64) * fp.ln() / (ln2 * ln2)).ceil() as u64;
        let bits = want.clamp(64, (max_bytes.max(8) as u64) * 8).div_ceil(64) * 64;
        let k = ((bits as f64 / n.max(1) as f64) * ln2)
            .round()
            .clamp(1.0, 16.0) as u32;
        Bloom {
            k,
            bits,
            words: vec![0; (bits / 64) as usize],
        }
    }

    fn positions(&self, id: &TraceId) -> impl Iterator<Item = u64> + '_ {
        let h1 = fnv64a(id);
        let h2 = fnv64a(&h1.to_le_bytes()) | 1;
        (0..self.k as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.bits)
    }

    /// Add an id.
    pub fn insert(&mut self, id: &TraceId) {
        let h1 = fnv64a(id);
        let h2 = fnv64a(&h1.to_le_bytes()) | 1;
        for i in 0..self.k as u64 {
            let p = h1.wrapping_add(i.wrapping_mul(h2)) % self.bits;
            self.words[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    /// False means surely absent.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        self.positions(id)
            .all(|p| self.words[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    /// Serialize with magic, version and checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26 + self.words.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.k.to_le_bytes());
        out.extend_from_slice(&self.bits.to_le_bytes());
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parse; `Err` says what is wrong.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() < 26 || &b[..8] != MAGIC {
            return Err("not a bloom filter (bad magic)".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("bloom filter checksum mismatch".into());
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(format!("bloom filter version {version} is not supported"));
        }
        let k = u32::from_le_bytes([b[10], b[11], b[12], b[13]]);
        let mut bits8 = [0u8; 8];
        bits8.copy_from_slice(&b[14..22]);
        let bits = u64::from_le_bytes(bits8);
        let words: Vec<u64> = body[22..]
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect();
        if bits == 0 || words.len() as u64 * 64 != bits || k == 0 {
            return Err("bloom filter header does not match its size".into());
        }
        if k > MAX_HASHES {
            return Err(format!(
                "bloom filter uses {k} hash functions, more than {MAX_HASHES}"
            ));
        }
        Ok(Bloom { k, bits, words })
    }
}

/// Empty shards sized for `count` ids.
pub fn empty_shards(count: usize, fp: f64, shard_bytes: usize) -> Vec<Bloom> {
    let ln2 = std::f64::consts::LN_2;
    let total_bits = (-(count.max(1) as f64) * fp.ln() / (ln2 * ln2)).ceil() as usize;
    let shards = total_bits
        .div_ceil(shard_bytes.max(1) * 8)
        .clamp(1, MAX_SHARDS);
    let per_shard = count.div_ceil(shards);
    (0..shards)
        .map(|_| Bloom::with_capacity(per_shard, fp, shard_bytes))
        .collect()
}

/// Build the shards for a set of ids.
pub fn build_shards(ids: &[TraceId], fp: f64, shard_bytes: usize) -> Vec<Bloom> {
    let mut blooms = empty_shards(ids.len(), fp, shard_bytes);
    let shards = blooms.len() as u32;
    for id in ids {
        blooms[shard_of(id, shards)].insert(id);
    }
    blooms
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn id(n: u32) -> TraceId {
        let mut t = [0u8; 16];
        t[12..].copy_from_slice(&n.to_be_bytes());
        t
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let ids: Vec<TraceId> = (0..10_000).map(id).collect();
        let shards = build_shards(&ids, 0.01, 4096);
        assert!(shards.len() > 1);
        let n = shards.len() as u32;
        for i in &ids {
            assert!(shards[shard_of(i, n)].may_contain(i));
        }
        let fps = (10_000..30_000)
            .map(id)
            .filter(|i| shards[shard_of(i, n)].may_contain(i))
            .count();
        assert!(fps < 600, "false positives: {fps} of 20000");
    }

    #[test]
    fn serialization_round_trips_and_detects_damage() {
        let mut b = Bloom::with_capacity(10, 0.01, 1024);
        b.insert(&id(7));
        let mut bytes = b.to_bytes();
        assert_eq!(Bloom::from_bytes(&bytes).unwrap(), b);
        bytes[30] ^= 0xff;
        assert!(Bloom::from_bytes(&bytes).unwrap_err().contains("checksum"));
    }

    #[test]
    fn absurd_hash_counts_are_refused() {
        // A header with a valid checksum but 2^32 - 1 hash functions (found by fuzzing
        // `block_meta`): every lookup would loop that many times.
        let mut bytes = Bloom::with_capacity(10, 0.01, 1024).to_bytes();
        bytes[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        let body = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
        let e = Bloom::from_bytes(&bytes).unwrap_err();
        assert!(e.contains("hash functions"), "{e}");
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
    }
}
