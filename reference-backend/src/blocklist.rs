//! The list of flushed blocks per tenant, and their opened readers.
//!
//! Filled by polling the store every `blocklist_poll`, and directly by the flusher after
//! each block it writes. A poll reads each tenant's index (`<tenant>/index.json.gz`, which
//! the compactor rebuilds every cycle) when it is younger than
//! `blocklist_poll_stale_tenant_index`, and lists the tenant's objects otherwise. The first
//! poll of a process always lists, so a restart never misses a block written after the last
//! index. Live blocks have `meta.json` and no `meta.compacted.json`.
//!
//! A poll replaces a tenant's list with what the store says, except that a block missing
//! from a snapshot stays while the snapshot is not newer than the block's last sighting (or
//! its addition by the flusher); for an index, built by a process with its own clock, it
//! must be newer by [`SNAPSHOT_SKEW`]. A block the snapshot shows compacted leaves at once.
//! So a poll racing a flush (or reading an index built just before it) cannot hide a fresh
//! block, and compacted or deleted blocks leave the list.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use tokio::sync::OnceCell;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::block::index::{BlockObjects, TenantIndex, TenantListing, parse_listing};
use crate::block::meta::META_OBJECT;
use crate::block::{BlockMeta, BlockReader, EncodingSettings, format_by_name, object_key};
use crate::error::{Error, Result};
use crate::release::{Mutant, ReleaseId};
use crate::store::BlockStore;

/// How much newer than a block's last sighting an index must be before the block's absence
/// from it counts (covers clock skew between the index builder and this process).
pub const SNAPSHOT_SKEW: Duration = Duration::from_secs(60);

/// One flushed block.
pub struct BlockEntry {
    /// Its descriptor.
    pub meta: BlockMeta,
    reader: OnceCell<Arc<dyn BlockReader>>,
}

impl BlockEntry {
    fn new(meta: BlockMeta) -> Arc<Self> {
        Arc::new(BlockEntry {
            meta,
            reader: OnceCell::new(),
        })
    }

    /// The block's reader, opened on first use. A block in a format outside `readable`
    /// is an error naming the block, its format and the releases that can read it.
    pub async fn reader(
        &self,
        store: &BlockStore,
        settings: &EncodingSettings,
        readable: &Readable,
    ) -> Result<Arc<dyn BlockReader>> {
        if !readable.formats.contains(&self.meta.format.as_str()) {
            let readers: Vec<String> = ReleaseId::readers_of(&self.meta.format)
                .into_iter()
                .map(|r| r.number().to_string())
                .collect();
            return Err(Error::UnreadableBlock {
                tenant: self.meta.tenant_id.clone(),
                block_id: self.meta.block_id.to_string(),
                format: self.meta.format.clone(),
                release: readable.release,
                readers: if readers.is_empty() {
                    "none".into()
                } else {
                    readers.join(", ")
                },
            });
        }
        self.reader
            .get_or_try_init(|| async {
                let format = format_by_name(&self.meta.format, settings).ok_or_else(|| {
                    Error::CorruptBlock {
                        tenant: self.meta.tenant_id.clone(),
                        block_id: self.meta.block_id.to_string(),
                        object: META_OBJECT,
                        message: format!(
                            "block format {:?} cannot be read by this build",
                            self.meta.format
                        ),
                    }
                })?;
                format.open(store, &self.meta).await
            })
            .await
            .cloned()
    }
}

/// The block formats the running release reads.
#[derive(Debug, Clone)]
pub struct Readable {
    /// The running release.
    pub release: ReleaseId,
    /// Formats it reads.
    pub formats: Vec<&'static str>,
}

impl Readable {
    /// What `release` reads (less its predecessor's formats under the
    /// `NoPreviousFormat` mutant).
    pub fn of(release: ReleaseId, mutant: Option<Mutant>) -> Self {
        let mut formats = release.reads().to_vec();
        if mutant == Some(Mutant::NoPreviousFormat) {
            formats.retain(|f| *f == release.default_write_format());
        }
        Readable { release, formats }
    }
}

impl Default for Readable {
    fn default() -> Self {
        Readable::of(ReleaseId::default(), None)
    }
}

/// A block in the list and when the store last showed it (or the flusher added it).
struct Tracked {
    entry: Arc<BlockEntry>,
    seen_at: SystemTime,
}

/// What one index or listing says about a tenant.
struct Snapshot {
    /// When the listing behind it started.
    taken_at: SystemTime,
    /// How much newer than a block's last sighting `taken_at` must be for the block's
    /// absence to count: zero for this process's own listings, [`SNAPSHOT_SKEW`] for an
    /// index (another process's clock).
    margin: Duration,
    live: Vec<BlockMeta>,
    compacted: HashSet<Uuid>,
}

/// Blocks by tenant.
pub struct BlockList {
    store: BlockStore,
    settings: EncodingSettings,
    readable: Readable,
    tenants: RwLock<HashMap<String, Vec<Tracked>>>,
    index_staleness: Duration,
    listed: AtomicBool,
}

impl BlockList {
    /// An empty list over `store`, reading what the default release reads.
    pub fn new(store: BlockStore, settings: EncodingSettings) -> Self {
        BlockList {
            store,
            settings,
            readable: Readable::default(),
            tenants: RwLock::new(HashMap::new()),
            index_staleness: crate::config::TraceStorageConfig::default()
                .blocklist_poll_stale_tenant_index
                .get(),
            listed: AtomicBool::new(false),
        }
    }

    /// Read the formats in `readable` (the running release's).
    pub fn with_readable(mut self, readable: Readable) -> Self {
        self.readable = readable;
        self
    }

    /// The formats this list's readers accept.
    pub fn readable(&self) -> &Readable {
        &self.readable
    }

    /// Open `block`'s reader, checking its format against the running release.
    pub async fn reader(&self, block: &BlockEntry) -> Result<Arc<dyn BlockReader>> {
        block
            .reader(&self.store, &self.settings, &self.readable)
            .await
    }

    /// Skip the listing of the first poll: read tenant indexes from the start (tests of
    /// what the index alone shows).
    #[doc(hidden)]
    pub fn skip_first_listing(self) -> Self {
        self.listed.store(true, Ordering::Release);
        self
    }

    /// Use a tenant index only when it is at most this old (zero: of any age).
    pub fn with_index_staleness(mut self, staleness: Duration) -> Self {
        self.index_staleness = staleness;
        self
    }

    /// The store blocks live in.
    pub fn store(&self) -> &BlockStore {
        &self.store
    }

    /// Encoding settings used to open blocks.
    pub fn settings(&self) -> &EncodingSettings {
        &self.settings
    }

    /// Add a block this process just wrote.
    pub fn add(&self, meta: BlockMeta) {
        let mut t = self.tenants.write();
        let list = t.entry(meta.tenant_id.clone()).or_default();
        if !list.iter().any(|b| b.entry.meta.block_id == meta.block_id) {
            list.push(Tracked {
                entry: BlockEntry::new(meta),
                seen_at: SystemTime::now(),
            });
        }
    }

    /// Blocks of one tenant.
    pub fn blocks(&self, tenant: &str) -> Vec<Arc<BlockEntry>> {
        self.tenants
            .read()
            .get(tenant)
            .map(|l| l.iter().map(|b| b.entry.clone()).collect())
            .unwrap_or_default()
    }

    /// Number of blocks per format over all tenants.
    pub fn count_by_format(&self) -> HashMap<String, u64> {
        let mut out: HashMap<String, u64> = HashMap::new();
        for b in self.tenants.read().values().flatten() {
            *out.entry(b.entry.meta.format.clone()).or_default() += 1;
        }
        out
    }

    /// Number of blocks over all tenants.
    pub fn len(&self) -> usize {
        self.tenants.read().values().map(Vec::len).sum()
    }

    /// True when no block is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-read the block list: from each tenant's index when it is fresh, else by listing
    /// the tenant (always by listing on the first poll). Returns how many blocks were new.
    /// A block whose `meta.json` is unreadable is logged and skipped until the next poll.
    pub async fn poll(&self) -> Result<usize> {
        if !self.listed.load(Ordering::Acquire) {
            return self.poll_by_listing().await;
        }
        let started = SystemTime::now();
        let mut tenants: BTreeSet<String> = self.store.list_top_dirs().await?.into_iter().collect();
        tenants.extend(self.tenants.read().keys().cloned());
        let (mut added, mut from_index) = (0, 0);
        let mut to_list = Vec::new();
        for tenant in tenants {
            match TenantIndex::read(&self.store, &tenant).await {
                Ok(Some(ix)) if self.fresh(&ix, started) => {
                    from_index += 1;
                    added += self.apply(&tenant, snapshot_of_index(ix));
                }
                Ok(_) => to_list.push(tenant),
                Err(e) => {
                    warn!(%tenant, error = %e, "tenant index unreadable; listing the tenant");
                    to_list.push(tenant);
                }
            }
        }
        let listed = to_list.len();
        for tenant in to_list {
            let keys = self.store.list_prefix(&tenant).await?;
            let blocks = parse_listing(keys).remove(&tenant).unwrap_or_default();
            let snap = self.snapshot_of_listing(&tenant, &blocks, started).await?;
            added += self.apply(&tenant, snap);
        }
        debug!(
            added,
            from_index,
            listed,
            total = self.len(),
            "block list polled"
        );
        Ok(added)
    }

    /// Re-read the block list by listing the whole store (ignoring tenant indexes).
    pub async fn poll_by_listing(&self) -> Result<usize> {
        let started = SystemTime::now();
        let mut listing = parse_listing(self.store.list_keys().await?);
        for tenant in self.tenants.read().keys() {
            listing.entry(tenant.clone()).or_default();
        }
        let mut added = 0;
        for (tenant, blocks) in &listing {
            let snap = self.snapshot_of_listing(tenant, blocks, started).await?;
            added += self.apply(tenant, snap);
        }
        self.listed.store(true, Ordering::Release);
        debug!(added, total = self.len(), "block list polled by listing");
        Ok(added)
    }

    fn fresh(&self, ix: &TenantIndex, now: SystemTime) -> bool {
        if self.index_staleness.is_zero() {
            return true;
        }
        ix.created().is_some_and(|c| {
            now.duration_since(c)
                .map_or(true, |age| age <= self.index_staleness)
        })
    }

    async fn snapshot_of_listing(
        &self,
        tenant: &str,
        blocks: &TenantListing,
        taken_at: SystemTime,
    ) -> Result<Snapshot> {
        let known: HashMap<Uuid, BlockMeta> = self
            .tenants
            .read()
            .get(tenant)
            .map(|l| {
                l.iter()
                    .map(|b| (b.entry.meta.block_id, b.entry.meta.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut snap = Snapshot {
            taken_at,
            margin: Duration::ZERO,
            live: Vec::new(),
            compacted: HashSet::new(),
        };
        for (id, objects) in blocks {
            if objects.is_compacted() {
                snap.compacted.insert(*id);
                continue;
            }
            if let Some(m) = known.get(id) {
                snap.live.push(m.clone());
            } else if let Some(m) = self.read_meta(tenant, id, objects).await? {
                snap.live.push(m);
            }
        }
        Ok(snap)
    }

    async fn read_meta(
        &self,
        tenant: &str,
        id: &Uuid,
        objects: &BlockObjects,
    ) -> Result<Option<BlockMeta>> {
        if !objects.has_meta() {
            return Ok(None);
        }
        // Deleted between the listing and now: not live any more.
        let Some(bytes) = self
            .store
            .get_opt(&object_key(tenant, id, META_OBJECT))
            .await?
        else {
            return Ok(None);
        };
        match BlockMeta::from_json(tenant, &id.to_string(), &bytes) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) => {
                warn!(%tenant, block = %id, error = %e, "skipping block with unreadable meta.json");
                Ok(None)
            }
        }
    }

    /// Replace a tenant's list by a snapshot (see the module doc). Returns how many blocks
    /// were new.
    fn apply(&self, tenant: &str, snap: Snapshot) -> usize {
        let mut t = self.tenants.write();
        let mut old: HashMap<Uuid, Tracked> = t
            .remove(tenant)
            .unwrap_or_default()
            .into_iter()
            .map(|b| (b.entry.meta.block_id, b))
            .collect();
        let mut list = Vec::with_capacity(snap.live.len());
        let mut added = 0;
        for meta in snap.live {
            let tracked = match old.remove(&meta.block_id) {
                Some(b) => Tracked {
                    entry: if b.entry.meta == meta {
                        b.entry
                    } else {
                        BlockEntry::new(meta)
                    },
                    seen_at: b.seen_at.max(snap.taken_at),
                },
                None => {
                    added += 1;
                    Tracked {
                        entry: BlockEntry::new(meta),
                        seen_at: snap.taken_at,
                    }
                }
            };
            list.push(tracked);
        }
        for (id, b) in old {
            let gone = snap.compacted.contains(&id) || snap.taken_at > b.seen_at + snap.margin;
            if gone {
                debug!(%tenant, block = %id, "block left the list");
            } else {
                list.push(b);
            }
        }
        if !list.is_empty() {
            t.insert(tenant.to_owned(), list);
        }
        added
    }
}

fn snapshot_of_index(ix: TenantIndex) -> Snapshot {
    Snapshot {
        taken_at: ix.created().unwrap_or(SystemTime::UNIX_EPOCH),
        margin: SNAPSHOT_SKEW,
        compacted: ix.compacted.iter().map(|c| c.meta.block_id).collect(),
        live: ix.meta,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::block::index::{COMPACTED_META_OBJECT, CompactedMeta, system_ns};
    use crate::block::meta::rfc3339;
    use bytes::Bytes;

    fn meta(id: u128) -> BlockMeta {
        BlockMeta {
            format: "rb1".into(),
            block_id: Uuid::from_u128(id),
            tenant_id: "t".into(),
            start_time: rfc3339(1),
            end_time: rfc3339(2),
            total_objects: 1,
            total_spans: 1,
            size: 1,
            encoding: "zstd".into(),
            bloom_shards: 0,
            compaction_level: 0,
        }
    }

    async fn put_meta(store: &BlockStore, m: &BlockMeta) {
        let key = object_key(&m.tenant_id, &m.block_id, META_OBJECT);
        store.put(&key, Bytes::from(m.to_json())).await.unwrap();
    }

    async fn put_index(store: &BlockStore, live: &[BlockMeta], at: SystemTime) {
        let ix = TenantIndex {
            created_at: rfc3339(system_ns(at)),
            meta: live.to_vec(),
            compacted: Vec::new(),
        };
        ix.write(store, "t").await.unwrap();
    }

    fn ids(l: &BlockList) -> Vec<u128> {
        let mut v: Vec<u128> = l
            .blocks("t")
            .iter()
            .map(|b| b.meta.block_id.as_u128())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn poll_drops_compacted_and_deleted_blocks() {
        let store = BlockStore::memory();
        for i in 1..=3 {
            put_meta(&store, &meta(i)).await;
        }
        let list = BlockList::new(store.clone(), EncodingSettings::default());
        assert_eq!(list.poll().await.unwrap(), 3);
        let mark = CompactedMeta::new(meta(1), SystemTime::now());
        let key = object_key("t", &Uuid::from_u128(1), COMPACTED_META_OBJECT);
        store.put(&key, Bytes::from(mark.to_json())).await.unwrap();
        store
            .delete(&object_key("t", &Uuid::from_u128(2), META_OBJECT))
            .await
            .unwrap();
        assert_eq!(list.poll().await.unwrap(), 0);
        assert_eq!(ids(&list), [3]);
    }

    #[tokio::test]
    async fn a_fresh_index_is_read_instead_of_listing() {
        let store = BlockStore::memory();
        put_meta(&store, &meta(1)).await;
        put_meta(&store, &meta(2)).await;
        put_index(&store, &[meta(1)], SystemTime::now()).await;
        let list = BlockList::new(store.clone(), EncodingSettings::default());
        assert_eq!(list.poll().await.unwrap(), 2, "the first poll lists");
        let list = BlockList::new(store.clone(), EncodingSettings::default()).skip_first_listing();
        list.poll().await.unwrap();
        assert_eq!(ids(&list), [1], "block 2 is not in the index");
        let list = list.with_index_staleness(Duration::from_nanos(1));
        list.poll().await.unwrap();
        assert_eq!(ids(&list), [1, 2], "a stale index is replaced by a listing");
    }

    #[tokio::test]
    async fn a_block_the_flusher_added_survives_an_older_index() {
        let store = BlockStore::memory();
        put_meta(&store, &meta(1)).await;
        put_index(
            &store,
            &[meta(1)],
            SystemTime::now() - Duration::from_secs(1),
        )
        .await;
        let list = BlockList::new(store.clone(), EncodingSettings::default()).skip_first_listing();
        list.poll().await.unwrap();
        put_meta(&store, &meta(2)).await;
        list.add(meta(2));
        list.poll().await.unwrap();
        assert_eq!(ids(&list), [1, 2], "the index predates block 2");
        // An index built well after block 2 that lacks it: block 2 is gone.
        put_index(&store, &[meta(1)], SystemTime::now() + 2 * SNAPSHOT_SKEW).await;
        list.poll().await.unwrap();
        assert_eq!(ids(&list), [1]);
    }

    #[tokio::test]
    async fn a_changed_meta_replaces_the_entry() {
        let store = BlockStore::memory();
        put_meta(&store, &meta(1)).await;
        let list = BlockList::new(store.clone(), EncodingSettings::default());
        list.poll().await.unwrap();
        let mut m = meta(1);
        m.compaction_level = 3;
        put_index(&store, &[m], SystemTime::now()).await;
        list.poll().await.unwrap();
        assert_eq!(list.blocks("t")[0].meta.compaction_level, 3);
    }
}
