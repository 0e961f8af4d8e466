//! The workload: which shape trace `seq` has, its encoded bytes, and whether it is sampled
//! for read-back. Everything is a function of `(seed, seq)`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::scenario::{SizeProfile, Workload};
use crate::shapes::encoded::EncodedTemplate;
use crate::shapes::{self, GeneratedTrace, Params, Shape, VARIANTS};

/// Encoded templates kept per shape before old ones are dropped (large traces are big).
const CACHE_BYTES_PER_SHAPE: usize = 64 * 1024 * 1024;

/// One shape of the mix.
pub struct Entry {
    /// The shape.
    pub shape: &'static dyn Shape,
    /// Size profile.
    pub profile: SizeProfile,
    /// Parameters.
    pub params: Params,
    cumulative: f64,
    /// Mean spans per trace (over a sample of variants).
    pub mean_spans: f64,
    cache: Mutex<TemplateCache>,
}

#[derive(Default)]
struct TemplateCache {
    by_variant: HashMap<u64, Arc<EncodedTemplate>>,
    bytes: usize,
}

/// The weighted shape mix of a scenario.
pub struct Mix {
    seed: u64,
    entries: Vec<Entry>,
    total: f64,
}

/// SplitMix64 finalizer: a well-mixed hash of `x`.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Mix {
    /// Build the mix of a scenario's workload.
    pub fn new(w: &Workload) -> Result<Self> {
        let mut entries = Vec::new();
        let mut total = 0.0;
        for m in &w.mix {
            let shape = shapes::by_name(&m.shape)
                .ok_or_else(|| Error::Usage(format!("unknown shape {:?}", m.shape)))?;
            total += m.weight;
            let sample: Vec<usize> = (0..4)
                .map(|v| shape.template(w.seed, v, m.profile, &m.params).span_count)
                .collect();
            entries.push(Entry {
                shape,
                profile: m.profile,
                params: m.params.clone(),
                cumulative: total,
                mean_spans: sample.iter().sum::<usize>() as f64 / sample.len() as f64,
                cache: Mutex::new(TemplateCache::default()),
            });
        }
        if entries.is_empty() {
            return Err(Error::Usage("the workload mix is empty".into()));
        }
        Ok(Mix {
            seed: w.seed,
            entries,
            total,
        })
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Entries of the mix.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Mean spans per trace over the mix.
    pub fn mean_spans(&self) -> f64 {
        let mut prev = 0.0;
        let mut mean = 0.0;
        for e in &self.entries {
            mean += (e.cumulative - prev) / self.total * e.mean_spans;
            prev = e.cumulative;
        }
        mean
    }

    /// Which entry trace `seq` uses.
    pub fn entry_of(&self, seq: u64) -> usize {
        let u = unit(mix64(self.seed ^ mix64(seq))) * self.total;
        self.entries
            .iter()
            .position(|e| u < e.cumulative)
            .unwrap_or(self.entries.len() - 1)
    }

    /// Is trace `seq` sampled for read-back at rate `fraction`?
    pub fn sampled(&self, seq: u64, fraction: f64) -> bool {
        fraction > 0.0 && unit(mix64(mix64(self.seed.rotate_left(17) ^ seq))) < fraction
    }

    /// The encoded template of trace `seq` (cached per variant).
    pub fn encoded(&self, entry: usize, seq: u64) -> Arc<EncodedTemplate> {
        let e = &self.entries[entry];
        // `template(v) == template(v % variants())`: large shapes keep fewer variants.
        let variant = seq % VARIANTS % e.shape.variants().max(1);
        if let Some(t) = e.cache.lock().by_variant.get(&variant) {
            return t.clone();
        }
        let t = Arc::new(EncodedTemplate::new(
            &e.shape.template(self.seed, variant, e.profile, &e.params),
        ));
        let mut c = e.cache.lock();
        let size = t.encoded_len();
        if c.bytes + size > CACHE_BYTES_PER_SHAPE {
            c.by_variant.clear();
            c.bytes = 0;
        }
        c.bytes += size;
        c.by_variant.insert(variant, t.clone());
        t
    }

    /// The trace `seq` as sent (the verifier's slow path).
    pub fn generate(&self, entry: usize, seq: u64, start_ns: u64) -> GeneratedTrace {
        let e = &self.entries[entry];
        shapes::generate(e.shape, self.seed, seq, start_ns, e.profile, &e.params)
    }
}

/// A part of a trace waiting for its (late) send time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LatePart {
    /// Seconds × 1e9 from the run start when it is due.
    pub due_ns: u64,
    /// Trace.
    pub seq: u64,
    /// Mix entry.
    pub entry: usize,
    /// Part index.
    pub part: usize,
    /// Trace start (unix ns).
    pub start_ns: u64,
}

/// Delay of a part, as a duration.
pub fn part_delay(t: &EncodedTemplate, part: usize) -> Duration {
    t.part_delay(part)
}
