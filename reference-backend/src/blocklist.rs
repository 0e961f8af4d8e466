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
//! from a snapshot stays until a snapshot taken more than [`SNAPSHOT_SKEW`] after the block
//! was last seen (or added by the flusher) still lacks it, unless the snapshot shows it
//! compacted. So a poll racing a flush (or reading an index built just before it) cannot
//! hide a fresh block, and compacted or deleted blocks leave the list.

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
use crate::store::BlockStore;

/// How much newer than a block's last sighting a snapshot must be before the block's absence
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

    /// The block's reader, opened on first use.
    pub async fn reader(
        &self,
        store: &BlockStore,
        settings: &EncodingSettings,
    ) -> Result<Arc<dyn BlockReader>> {
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

/// A block in the list and when the store last showed it (or the flusher added it).
struct Tracked {
    entry: Arc<BlockEntry>,
    seen_at: SystemTime,
}

/// What one index or listing says about a tenant.
struct Snapshot {
    /// When the listing behind it started.
    taken_at: SystemTime,
    live: Vec<BlockMeta>,
    compacted: HashSet<Uuid>,
}

/// Blocks by tenant.
pub struct BlockList {
    store: BlockStore,
    settings: EncodingSettings,
    tenants: RwLock<HashMap<String, Vec<Tracked>>>,
    index_staleness: Duration,
    listed: AtomicBool,
}

impl BlockList {
    /// An empty list over `store`.
    pub fn new(store: BlockStore, settings: EncodingSettings) -> Self {
        BlockList {
            store,
            settings,
            tenants: RwLock::new(HashMap::new()),
            index_staleness: crate::config::TraceStorageConfig::default()
                .blocklist_poll_stale_tenant_index
                .get(),
            listed: AtomicBool::new(false),
        }
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
            let gone = snap.compacted.contains(&id) || snap.taken_at > b.seen_at + SNAPSHOT_SKEW;
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
        compacted: ix.compacted.iter().map(|c| c.meta.block_id).collect(),
        live: ix.meta,
    }
}
