//! Live traces and the head block, per tenant.
//!
//! Accepted fragments land in the live set (trace id → encoded spans). A trace that gets no
//! spans for `trace_idle_period` moves to the tenant's head block. The head block is cut when
//! it is old or big enough, or on `/flush` and shutdown; a cut block stays queryable here
//! until the flusher has written it to the object store. Every trace remembers the oldest
//! WAL segment holding its spans, so the flusher knows which segments are safe to delete.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tempo_api::trace_id::TraceId;
use uuid::Uuid;

use crate::ingest::batch::Fragment;

/// Spans of one trace held in memory, encoded as `TracesData` bytes.
#[derive(Debug, Clone)]
pub struct TraceData {
    /// Concatenated fragments (a valid `TracesData` encoding).
    pub bytes: Vec<u8>,
    /// Span count.
    pub spans: u32,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
    /// Oldest WAL segment holding any of these spans.
    pub min_segment: u64,
    last_append: Instant,
}

impl TraceData {
    fn new(f: Fragment, segment: u64, now: Instant) -> Self {
        TraceData {
            bytes: f.bytes,
            spans: f.spans,
            start_ns: f.start_ns,
            end_ns: f.end_ns,
            min_segment: segment,
            last_append: now,
        }
    }

    fn absorb(&mut self, other: TraceData) {
        self.bytes.extend_from_slice(&other.bytes);
        self.spans += other.spans;
        self.start_ns = self.start_ns.min(other.start_ns);
        self.end_ns = self.end_ns.max(other.end_ns);
        self.min_segment = self.min_segment.min(other.min_segment);
        self.last_append = self.last_append.max(other.last_append);
    }
}

/// A head block that was cut and waits to be written to the object store.
#[derive(Debug)]
pub struct CutBlock {
    /// Block id it will be written under.
    pub id: Uuid,
    /// Owner.
    pub tenant: String,
    /// Traces sorted by id.
    pub traces: Vec<(TraceId, TraceData)>,
    /// Bytes of trace data.
    pub bytes: u64,
}

#[derive(Default)]
struct TenantState {
    live: HashMap<TraceId, TraceData>,
    head: HashMap<TraceId, TraceData>,
    head_bytes: u64,
    head_since: Option<Instant>,
    flushing: Vec<Arc<CutBlock>>,
}

/// All tenants' in-memory traces.
#[derive(Default)]
pub struct LiveStore {
    tenants: Mutex<HashMap<String, TenantState>>,
    bytes: std::sync::atomic::AtomicU64,
}

/// When a head block is cut.
#[derive(Debug, Clone, Copy)]
pub struct CutPolicy {
    /// Cut a head block this old.
    pub max_age: Duration,
    /// Cut a head block this big.
    pub max_bytes: u64,
    /// Cut every non-empty head block (after moving every live trace into it).
    pub force: bool,
}

impl LiveStore {
    /// Bytes held in memory (live + head + waiting to flush).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add_bytes(&self, n: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        if n >= 0 {
            self.bytes.fetch_add(n as u64, Relaxed);
        } else {
            self.bytes.fetch_sub(n.unsigned_abs(), Relaxed);
        }
    }

    /// Bytes already held for each of `ids` (live and head), for per-trace limits.
    pub fn trace_sizes(&self, tenant: &str, ids: impl Iterator<Item = TraceId>) -> Vec<u64> {
        let tenants = self.tenants.lock();
        let Some(t) = tenants.get(tenant) else {
            return ids.map(|_| 0).collect();
        };
        ids.map(|id| {
            t.live.get(&id).map_or(0, |d| d.bytes.len() as u64)
                + t.head.get(&id).map_or(0, |d| d.bytes.len() as u64)
        })
        .collect()
    }

    /// Add accepted fragments that are durable in WAL segment `segment`.
    pub fn insert(&self, tenant: &str, segment: u64, fragments: Vec<Fragment>) {
        let now = Instant::now();
        let added: usize = fragments.iter().map(|f| f.bytes.len()).sum();
        let mut tenants = self.tenants.lock();
        let t = match tenants.get_mut(tenant) {
            Some(t) => t,
            None => tenants.entry(tenant.to_owned()).or_default(),
        };
        for f in fragments {
            let id = f.trace_id;
            let data = TraceData::new(f, segment, now);
            match t.live.get_mut(&id) {
                Some(existing) => existing.absorb(data),
                None => {
                    t.live.insert(id, data);
                }
            }
        }
        drop(tenants);
        self.add_bytes(added as i64);
    }

    /// Spans of `id` held in memory: one `TracesData` encoding per place it is held.
    pub fn lookup(&self, tenant: &str, id: &TraceId) -> Vec<Vec<u8>> {
        let tenants = self.tenants.lock();
        let Some(t) = tenants.get(tenant) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(d) = t.live.get(id) {
            out.push(d.bytes.clone());
        }
        if let Some(d) = t.head.get(id) {
            out.push(d.bytes.clone());
        }
        for b in &t.flushing {
            if let Ok(i) = b.traces.binary_search_by(|(tid, _)| tid.cmp(id)) {
                out.push(b.traces[i].1.bytes.clone());
            }
        }
        out
    }

    /// Every trace of `tenant` held in memory (live, head and cut blocks), one encoding per
    /// trace with all its in-memory parts concatenated, sorted by id. Only traces whose
    /// merged `[start, end]` (unix ns) satisfies `keep` are copied.
    pub fn snapshot_where(
        &self,
        tenant: &str,
        keep: impl Fn(u64, u64) -> bool,
    ) -> Vec<(TraceId, Vec<u8>)> {
        let tenants = self.tenants.lock();
        let Some(t) = tenants.get(tenant) else {
            return Vec::new();
        };
        let mut parts: HashMap<TraceId, Vec<&TraceData>> = HashMap::new();
        let flushing = t
            .flushing
            .iter()
            .flat_map(|b| b.traces.iter().map(|(id, d)| (id, d)));
        for (id, d) in t.live.iter().chain(t.head.iter()).chain(flushing) {
            parts.entry(*id).or_default().push(d);
        }
        let mut out: Vec<(TraceId, Vec<u8>)> = parts
            .into_iter()
            .filter(|(_, ds)| {
                let start = ds.iter().map(|d| d.start_ns).min().unwrap_or(0);
                let end = ds.iter().map(|d| d.end_ns).max().unwrap_or(0);
                keep(start, end)
            })
            .map(|(id, ds)| {
                let mut bytes = Vec::with_capacity(ds.iter().map(|d| d.bytes.len()).sum());
                for d in ds {
                    bytes.extend_from_slice(&d.bytes);
                }
                (id, bytes)
            })
            .collect();
        drop(tenants);
        out.sort_unstable_by_key(|(id, _)| *id);
        out
    }

    /// Every trace of `tenant` held in memory; see [`LiveStore::snapshot_where`].
    pub fn snapshot(&self, tenant: &str) -> Vec<(TraceId, Vec<u8>)> {
        self.snapshot_where(tenant, |_, _| true)
    }

    /// Move traces idle for `idle` (or all, when `idle` is zero) into their head block.
    pub fn sweep_idle(&self, idle: Duration) {
        let now = Instant::now();
        let mut tenants = self.tenants.lock();
        for t in tenants.values_mut() {
            let idle_ids: Vec<TraceId> = t
                .live
                .iter()
                .filter(|(_, d)| now.duration_since(d.last_append) >= idle)
                .map(|(id, _)| *id)
                .collect();
            for id in idle_ids {
                if let Some(d) = t.live.remove(&id) {
                    t.head_bytes += d.bytes.len() as u64;
                    t.head_since.get_or_insert(now);
                    match t.head.get_mut(&id) {
                        Some(h) => h.absorb(d),
                        None => {
                            t.head.insert(id, d);
                        }
                    }
                }
            }
        }
    }

    /// Cut head blocks per `policy`; the cut blocks stay queryable until
    /// [`LiveStore::finish`] is called for them.
    pub fn cut(&self, policy: CutPolicy) -> Vec<Arc<CutBlock>> {
        if policy.force {
            self.sweep_idle(Duration::ZERO);
        }
        let now = Instant::now();
        let mut out = Vec::new();
        let mut tenants = self.tenants.lock();
        for (tenant, t) in tenants.iter_mut() {
            if t.head.is_empty() {
                continue;
            }
            let old = t
                .head_since
                .is_some_and(|s| now.duration_since(s) >= policy.max_age);
            if !(policy.force || old || t.head_bytes >= policy.max_bytes) {
                continue;
            }
            let mut traces: Vec<(TraceId, TraceData)> = t.head.drain().collect();
            traces.sort_unstable_by_key(|a| a.0);
            let block = Arc::new(CutBlock {
                id: Uuid::new_v4(),
                tenant: tenant.clone(),
                traces,
                bytes: t.head_bytes,
            });
            t.head_bytes = 0;
            t.head_since = None;
            t.flushing.push(block.clone());
            out.push(block);
        }
        out
    }

    /// Forget a cut block once it is durable in the object store.
    pub fn finish(&self, block: &CutBlock) {
        let mut tenants = self.tenants.lock();
        if let Some(t) = tenants.get_mut(&block.tenant) {
            t.flushing.retain(|b| b.id != block.id);
        }
        drop(tenants);
        self.add_bytes(-(block.bytes as i64));
    }

    /// Oldest WAL segment still needed by anything held in memory.
    pub fn min_segment(&self) -> Option<u64> {
        let tenants = self.tenants.lock();
        tenants
            .values()
            .flat_map(|t| {
                t.live
                    .values()
                    .chain(t.head.values())
                    .map(|d| d.min_segment)
                    .chain(
                        t.flushing
                            .iter()
                            .flat_map(|b| b.traces.iter().map(|(_, d)| d.min_segment)),
                    )
            })
            .min()
    }

    /// Number of traces held (live + head + waiting), for status output.
    pub fn trace_count(&self) -> usize {
        let tenants = self.tenants.lock();
        tenants
            .values()
            .map(|t| {
                t.live.len()
                    + t.head.len()
                    + t.flushing.iter().map(|b| b.traces.len()).sum::<usize>()
            })
            .sum()
    }
}
