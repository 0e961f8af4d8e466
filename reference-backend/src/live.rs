//! Live traces, head blocks and cut blocks, per tenant: an index into the WAL.
//!
//! Accepted spans are already in the WAL when they get here, so memory keeps only where
//! each trace's fragments are in the segments (segment, offset, length) and the trace's
//! summary; lookups, searches and block writes read the bytes back from the segments
//! (mostly from the page cache). Memory therefore grows with the number of traces not yet
//! in a block, not with their bytes, whatever the rate.
//!
//! A trace that gets no spans for `trace_idle_period` (or has been live for
//! `max_block_duration`) moves to its tenant's head block. The head block is cut when it
//! is old or big enough, or on `/flush`; a cut block stays queryable here until the
//! flusher has written it to the object store. Every trace remembers the oldest WAL
//! segment holding its spans, so the flusher knows which segments are safe to delete: the
//! head block lives in the WAL until it is a block, and a restart rebuilds it by replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tempo_api::trace_id::TraceId;
use uuid::Uuid;

use crate::block::EncodedTraces;
use crate::error::Result;
use crate::wal::{FragmentRef, Located, SegmentFiles};

/// Where one fragment's bytes are in the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Segment number.
    pub segment: u64,
    /// File offset in the segment.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
}

/// One trace not yet in a block: where its spans are and their summary.
#[derive(Debug, Clone)]
pub struct TraceData {
    parts: Vec<Part>,
    /// Bytes of the trace's encoding (the sum of its parts).
    pub bytes: u64,
    /// Span count.
    pub spans: u32,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
    /// Oldest WAL segment holding any of these spans.
    pub min_segment: u64,
    first_append: Instant,
    last_append: Instant,
}

/// Memory one trace entry takes besides its parts (the entry in a hash map with the
/// table's control bytes and free slots).
const ENTRY_BYTES: u64 = (std::mem::size_of::<(TraceId, TraceData)>() + 24) as u64;
/// Memory one part takes.
const PART_BYTES: u64 = std::mem::size_of::<Part>() as u64;

impl TraceData {
    fn new(f: &FragmentRef, segment: u64, now: Instant) -> Self {
        TraceData {
            parts: vec![Part {
                segment,
                offset: f.offset,
                len: f.len,
            }],
            bytes: f.len as u64,
            spans: f.spans,
            start_ns: f.start_ns,
            end_ns: f.end_ns,
            min_segment: segment,
            first_append: now,
            last_append: now,
        }
    }

    fn absorb(&mut self, other: TraceData) {
        self.parts.extend_from_slice(&other.parts);
        self.bytes += other.bytes;
        self.spans += other.spans;
        self.start_ns = self.start_ns.min(other.start_ns);
        self.end_ns = self.end_ns.max(other.end_ns);
        self.min_segment = self.min_segment.min(other.min_segment);
        self.first_append = self.first_append.min(other.first_append);
        self.last_append = self.last_append.max(other.last_append);
    }

    /// Where the trace's fragments are, in arrival order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Memory this entry takes.
    fn held(&self) -> u64 {
        ENTRY_BYTES + self.parts.capacity() as u64 * PART_BYTES
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
    /// Bytes of trace data (in the WAL).
    pub bytes: u64,
    /// Memory the block's index takes.
    held: u64,
}

impl CutBlock {
    /// Earliest span start of the block (unix ns; 0 when empty).
    pub fn start_ns(&self) -> u64 {
        self.traces
            .iter()
            .map(|(_, d)| d.start_ns)
            .min()
            .unwrap_or(0)
    }
}

#[derive(Default)]
struct TenantState {
    live: HashMap<TraceId, TraceData>,
    head: HashMap<TraceId, TraceData>,
    head_bytes: u64,
    head_since: Option<Instant>,
    flushing: Vec<Arc<CutBlock>>,
}

/// All tenants' traces not yet in a block.
pub struct LiveStore {
    tenants: Mutex<HashMap<String, TenantState>>,
    files: Arc<SegmentFiles>,
    /// Memory the index takes (see [`LiveStore::memory_bytes`]).
    held: AtomicU64,
    /// Trace bytes not yet in a block (they are in the WAL).
    unflushed: AtomicU64,
}

/// When a head block is cut.
#[derive(Debug, Clone, Copy)]
pub struct CutPolicy {
    /// Cut a head block this old.
    pub max_age: Duration,
    /// Cut a head block this big (bytes of trace data).
    pub max_bytes: u64,
    /// Cut every non-empty head block (after moving every live trace into it).
    pub force: bool,
}

fn add(counter: &AtomicU64, n: i64) {
    if n >= 0 {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    } else {
        counter.fetch_sub(n.unsigned_abs(), Ordering::Relaxed);
    }
}

/// Traces read back from the WAL a chunk at a time (see [`LiveStore::snapshot_where`]).
pub struct Snapshot {
    files: Arc<SegmentFiles>,
    /// Traces sorted by id, each with its parts from every place it is held.
    traces: std::vec::IntoIter<(TraceId, Vec<Located>)>,
    chunk_bytes: usize,
}

impl Snapshot {
    /// The next traces (at least one, about `chunk_bytes` of them), or `None` at the end.
    /// Reads from disk: call it off the async workers.
    pub fn next_chunk(&mut self) -> Result<Option<EncodedTraces>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (id, parts) in self.traces.by_ref() {
            let mut data = Vec::new();
            self.files.read_into(&parts, &mut data)?;
            bytes += data.len();
            out.push((id, data));
            if bytes >= self.chunk_bytes {
                break;
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// Every remaining trace at once.
    pub fn read_all(mut self) -> Result<EncodedTraces> {
        self.chunk_bytes = usize::MAX;
        Ok(self.next_chunk()?.unwrap_or_default())
    }
}

impl Default for LiveStore {
    /// A store with no WAL behind it, for readers over blocks only (tools, tests):
    /// nothing inserted into it can be read back.
    fn default() -> Self {
        LiveStore::new(Arc::new(SegmentFiles::new(std::path::Path::new(""))))
    }
}

impl LiveStore {
    /// An empty store whose fragments are read from the WAL segments behind `files`.
    pub fn new(files: Arc<SegmentFiles>) -> Self {
        LiveStore {
            tenants: Mutex::new(HashMap::new()),
            files,
            held: AtomicU64::new(0),
            unflushed: AtomicU64::new(0),
        }
    }

    /// Memory the store takes: its index of traces not yet in a block (live, head and cut
    /// blocks waiting to upload). The spans themselves are in the WAL.
    pub fn memory_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Bytes of spans not yet in a block (on disk in the WAL).
    pub fn unflushed_bytes(&self) -> u64 {
        self.unflushed.load(Ordering::Relaxed)
    }

    /// The WAL segments the store reads from.
    pub fn files(&self) -> &Arc<SegmentFiles> {
        &self.files
    }

    /// Bytes already held for each of `ids` (live and head), for per-trace limits.
    pub fn trace_sizes(&self, tenant: &str, ids: impl Iterator<Item = TraceId>) -> Vec<u64> {
        let tenants = self.tenants.lock();
        let Some(t) = tenants.get(tenant) else {
            return ids.map(|_| 0).collect();
        };
        ids.map(|id| {
            t.live.get(&id).map_or(0, |d| d.bytes) + t.head.get(&id).map_or(0, |d| d.bytes)
        })
        .collect()
    }

    /// Add accepted fragments that are durable in WAL segment `segment`.
    pub fn insert(&self, tenant: &str, segment: u64, fragments: &[FragmentRef]) {
        let now = Instant::now();
        let added: u64 = fragments.iter().map(|f| f.len as u64).sum();
        let mut held = 0i64;
        let mut tenants = self.tenants.lock();
        let t = match tenants.get_mut(tenant) {
            Some(t) => t,
            None => tenants.entry(tenant.to_owned()).or_default(),
        };
        for f in fragments {
            let data = TraceData::new(f, segment, now);
            match t.live.get_mut(&f.trace_id) {
                Some(existing) => {
                    held -= existing.held() as i64;
                    existing.absorb(data);
                    held += existing.held() as i64;
                }
                None => {
                    held += data.held() as i64;
                    t.live.insert(f.trace_id, data);
                }
            }
        }
        drop(tenants);
        add(&self.held, held);
        add(&self.unflushed, added as i64);
    }

    /// Handles for `parts` (the caller holds the lock, so their segments exist).
    fn locate(&self, parts: &[Part], out: &mut Vec<Located>) -> Result<()> {
        for p in parts {
            out.push(self.files.locate(p.segment, p.offset, p.len)?);
        }
        Ok(())
    }

    /// Spans of `id` not yet in a block: one `TracesData` encoding per place it is held.
    pub fn lookup(&self, tenant: &str, id: &TraceId) -> Result<Vec<Vec<u8>>> {
        let mut places: Vec<Vec<Located>> = Vec::new();
        {
            let tenants = self.tenants.lock();
            let Some(t) = tenants.get(tenant) else {
                return Ok(Vec::new());
            };
            let flushing = t.flushing.iter().filter_map(|b| {
                b.traces
                    .binary_search_by(|(tid, _)| tid.cmp(id))
                    .ok()
                    .map(|i| &b.traces[i].1)
            });
            for d in t
                .live
                .get(id)
                .into_iter()
                .chain(t.head.get(id))
                .chain(flushing)
            {
                let mut parts = Vec::with_capacity(d.parts.len());
                self.locate(&d.parts, &mut parts)?;
                places.push(parts);
            }
        }
        places
            .iter()
            .map(|parts| {
                let mut out = Vec::new();
                self.files.read_into(parts, &mut out)?;
                Ok(out)
            })
            .collect()
    }

    /// Every trace of `tenant` not yet in a block (live, head and cut blocks), one encoding
    /// per trace with all its parts concatenated, sorted by id, read a chunk of about
    /// `chunk_bytes` at a time. Only traces whose merged `[start, end]` (unix ns)
    /// satisfies `keep` are read.
    pub fn snapshot_where(
        &self,
        tenant: &str,
        keep: impl Fn(u64, u64) -> bool,
        chunk_bytes: usize,
    ) -> Result<Snapshot> {
        let tenants = self.tenants.lock();
        let mut traces = Vec::new();
        if let Some(t) = tenants.get(tenant) {
            let mut parts: HashMap<TraceId, Vec<&TraceData>> = HashMap::new();
            let flushing = t
                .flushing
                .iter()
                .flat_map(|b| b.traces.iter().map(|(id, d)| (id, d)));
            for (id, d) in t.live.iter().chain(t.head.iter()).chain(flushing) {
                parts.entry(*id).or_default().push(d);
            }
            for (id, ds) in parts {
                let start = ds.iter().map(|d| d.start_ns).min().unwrap_or(0);
                let end = ds.iter().map(|d| d.end_ns).max().unwrap_or(0);
                if !keep(start, end) {
                    continue;
                }
                let mut located = Vec::new();
                for d in ds {
                    self.locate(&d.parts, &mut located)?;
                }
                traces.push((id, located));
            }
        }
        drop(tenants);
        traces.sort_unstable_by_key(|(id, _)| *id);
        Ok(Snapshot {
            files: self.files.clone(),
            traces: traces.into_iter(),
            chunk_bytes: chunk_bytes.max(1),
        })
    }

    /// Every trace of `tenant` not yet in a block, read at once; see
    /// [`LiveStore::snapshot_where`].
    pub fn snapshot(&self, tenant: &str) -> Result<Vec<(TraceId, Vec<u8>)>> {
        self.snapshot_where(tenant, |_, _| true, usize::MAX)?
            .read_all()
    }

    /// The encoding of one trace of a cut block that is still pending (its segments are
    /// kept until [`LiveStore::finish`]), appended to `out`.
    pub fn read_trace(&self, d: &TraceData, out: &mut Vec<u8>) -> Result<()> {
        let mut parts = Vec::with_capacity(d.parts.len());
        self.locate(&d.parts, &mut parts)?;
        self.files.read_into(&parts, out)
    }

    /// Move traces idle for `idle` (or all, when `idle` is zero), and traces live for
    /// `max_live` or longer, into their head block.
    pub fn sweep_idle(&self, idle: Duration, max_live: Duration) {
        let now = Instant::now();
        let mut held = 0i64;
        let mut tenants = self.tenants.lock();
        for t in tenants.values_mut() {
            let due: Vec<TraceId> = t
                .live
                .iter()
                .filter(|(_, d)| {
                    now.duration_since(d.last_append) >= idle
                        || now.duration_since(d.first_append) >= max_live
                })
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                if let Some(d) = t.live.remove(&id) {
                    t.head_bytes += d.bytes;
                    t.head_since.get_or_insert(now);
                    match t.head.get_mut(&id) {
                        Some(h) => {
                            held -= (h.held() + d.held()) as i64;
                            h.absorb(d);
                            held += h.held() as i64;
                        }
                        None => {
                            t.head.insert(id, d);
                        }
                    }
                }
            }
        }
        drop(tenants);
        add(&self.held, held);
    }

    /// Cut head blocks per `policy`; the cut blocks stay queryable until
    /// [`LiveStore::finish`] is called for them.
    pub fn cut(&self, policy: CutPolicy) -> Vec<Arc<CutBlock>> {
        if policy.force {
            self.sweep_idle(Duration::ZERO, Duration::ZERO);
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
            traces.shrink_to_fit();
            traces.sort_unstable_by_key(|a| a.0);
            let held = traces.iter().map(|(_, d)| d.held()).sum();
            let block = Arc::new(CutBlock {
                id: Uuid::new_v4(),
                tenant: tenant.clone(),
                traces,
                bytes: t.head_bytes,
                held,
            });
            t.head_bytes = 0;
            t.head_since = None;
            t.head.shrink_to(0);
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
        add(&self.held, -(block.held as i64));
        add(&self.unflushed, -(block.bytes as i64));
    }

    /// Oldest WAL segment still needed by a trace not yet in a block.
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
