//! The list of flushed blocks per tenant, and their opened readers.
//!
//! Filled by listing the store at start and every `blocklist_poll`, and directly by the
//! flusher after each block it writes. Only blocks with a `meta.json` are listed.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::OnceCell;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::block::meta::META_OBJECT;
use crate::block::{BlockMeta, BlockReader, EncodingSettings, format_by_name};
use crate::error::{Error, Result};
use crate::release::{Mutant, ReleaseId};
use crate::store::BlockStore;

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

/// Blocks by tenant.
pub struct BlockList {
    store: BlockStore,
    settings: EncodingSettings,
    readable: Readable,
    tenants: RwLock<HashMap<String, Vec<Arc<BlockEntry>>>>,
}

impl BlockList {
    /// An empty list over `store`, reading what the default release reads.
    pub fn new(store: BlockStore, settings: EncodingSettings) -> Self {
        BlockList {
            store,
            settings,
            readable: Readable::default(),
            tenants: RwLock::new(HashMap::new()),
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
        if !list.iter().any(|b| b.meta.block_id == meta.block_id) {
            list.push(BlockEntry::new(meta));
        }
    }

    /// Blocks of one tenant.
    pub fn blocks(&self, tenant: &str) -> Vec<Arc<BlockEntry>> {
        self.tenants.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Number of blocks per format over all tenants.
    pub fn count_by_format(&self) -> HashMap<String, u64> {
        let mut out: HashMap<String, u64> = HashMap::new();
        for b in self.tenants.read().values().flatten() {
            *out.entry(b.meta.format.clone()).or_default() += 1;
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

    /// Re-read the block list from the store and add blocks not yet known. Blocks are never
    /// dropped here (nothing deletes blocks in this release), so a poll racing a flush cannot
    /// hide a fresh block. A block whose `meta.json` is unreadable is logged and skipped
    /// until the next poll.
    pub async fn poll(&self) -> Result<usize> {
        let keys = self.store.list_keys().await?;
        let mut added = 0;
        for key in keys {
            let parts: Vec<&str> = key.split('/').collect();
            let [tenant, block, META_OBJECT] = parts.as_slice() else {
                continue;
            };
            let Ok(id) = Uuid::parse_str(block) else {
                continue;
            };
            let known = self
                .tenants
                .read()
                .get(*tenant)
                .is_some_and(|l| l.iter().any(|b| b.meta.block_id == id));
            if known {
                continue;
            }
            let bytes = self.store.get(&key).await?;
            match BlockMeta::from_json(tenant, block, &bytes) {
                Ok(meta) => {
                    self.add(meta);
                    added += 1;
                }
                Err(e) => {
                    warn!(%tenant, block = %id, error = %e, "skipping block with unreadable meta.json");
                }
            }
        }
        debug!(added, total = self.len(), "block list polled");
        Ok(added)
    }
}
