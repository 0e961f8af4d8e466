//! Writing a block a trace at a time into a local spool directory, then uploading it.
//!
//! Cut head blocks and compaction outputs can be far larger than memory should hold, so
//! formats encode them incrementally ([`BlockBuilder`]): traces arrive in ascending id
//! order, the data object grows in a spool file under `<wal>/blocks/<block-id>/`, and
//! only the small objects (index, bloom shards) stay in memory. [`upload`] then writes the
//! objects in order (large files as multipart uploads), `meta.json` last, and the spool
//! directory is removed when the [`BuiltBlock`] is dropped.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::bloom::{self, Bloom};
use super::meta::{self, BlockMeta};
use super::{TraceRecord, object_key};
use crate::error::{Error, Result};
use crate::store::BlockStore;

/// What a block builder knows before the first trace.
#[derive(Debug, Clone, Copy)]
pub struct BuildHints {
    /// No span of the block starts before this (unix ns).
    pub start_ns: u64,
    /// About how many traces the block will hold (sizes the bloom filter).
    pub traces: usize,
}

/// A block being written from traces pushed in strictly ascending id order.
pub trait BlockBuilder: Send {
    /// Add the next trace (CPU heavy: call off the async workers).
    fn push(&mut self, trace: &TraceRecord<'_>) -> Result<()>;
    /// Finish every object; the block is ready to upload.
    fn finish(self: Box<Self>) -> Result<BuiltBlock>;
}

/// One object of a built block.
#[derive(Debug)]
pub enum Object {
    /// A spool file and its length.
    File(PathBuf, u64),
    /// Bytes in memory.
    Bytes(Vec<u8>),
}

/// A finished block waiting in the spool; dropping it removes the spool directory.
#[derive(Debug)]
pub struct BuiltBlock {
    /// Its `meta.json`.
    pub meta: BlockMeta,
    /// Objects in upload order (before the bloom shards and `meta.json`).
    pub objects: Vec<(&'static str, Object)>,
    /// `bloom-N` objects.
    pub blooms: Vec<Vec<u8>>,
    /// Keeps the spool directory until the upload is done.
    pub spool: SpoolDir,
}

/// A block's directory in the spool, removed when dropped.
#[derive(Debug)]
pub struct SpoolDir {
    path: PathBuf,
}

impl SpoolDir {
    /// Create `<root>/<block_id>/` (empty).
    pub fn create(root: &Path, block_id: Uuid) -> Result<Self> {
        let path = root.join(block_id.to_string());
        let err = |source| Error::Spool {
            path: path.clone(),
            source,
        };
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(err)?;
        }
        std::fs::create_dir_all(&path).map_err(err)?;
        Ok(SpoolDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Remove whatever a crash left in the spool: the data is still in the WAL (a block is
/// only forgotten once its `meta.json` is written).
pub fn clear_spool(root: &Path) -> Result<()> {
    let err = |source| Error::Spool {
        path: root.to_path_buf(),
        source,
    };
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(err)?;
    }
    std::fs::create_dir_all(root).map_err(err)
}

/// Bloom shards built while ids stream by, sized for an expected count up front.
pub struct BloomBuilder {
    shards: Vec<Bloom>,
    count: usize,
}

impl BloomBuilder {
    /// Shards for about `expected` ids (the layout [`bloom::build_shards`] picks for that
    /// many).
    pub fn new(expected: usize, fp: f64, shard_bytes: usize) -> Self {
        BloomBuilder {
            shards: bloom::empty_shards(expected, fp, shard_bytes),
            count: 0,
        }
    }

    /// Add an id.
    pub fn insert(&mut self, id: &tempo_api::trace_id::TraceId) {
        let n = self.shards.len() as u32;
        if let Some(b) = self.shards.get_mut(bloom::shard_of(id, n)) {
            b.insert(id);
        }
        self.count += 1;
    }

    /// Ids added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The serialized shards.
    pub fn finish(self) -> Vec<Vec<u8>> {
        self.shards.iter().map(Bloom::to_bytes).collect()
    }
}

/// Objects of at least this size are uploaded in parts.
const MULTIPART_MIN_BYTES: u64 = 16 * 1024 * 1024;
/// Size of one uploaded part.
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Upload a built block ([`put_objects`]); the spool directory is removed afterwards,
/// whatever the outcome.
pub async fn upload(store: &BlockStore, built: BuiltBlock) -> Result<BlockMeta> {
    let BuiltBlock {
        meta,
        objects,
        blooms,
        spool,
    } = built;
    put_objects(store, &meta, objects, blooms).await?;
    drop(spool);
    Ok(meta)
}

/// Write a block's objects in order (spooled files of [`MULTIPART_MIN_BYTES`] or more as
/// multipart uploads), the bloom shards as `bloom-N`, then `meta.json` last, so readers
/// never see a block whose objects are not all written.
pub async fn put_objects(
    store: &BlockStore,
    meta: &BlockMeta,
    objects: Vec<(&'static str, Object)>,
    blooms: Vec<Vec<u8>>,
) -> Result<()> {
    let (tenant, id) = (meta.tenant_id.as_str(), &meta.block_id);
    for (name, object) in objects {
        let key = object_key(tenant, id, name);
        match object {
            Object::Bytes(b) => store.put(&key, bytes::Bytes::from(b)).await?,
            Object::File(path, len) => {
                store
                    .put_file(&key, &path, len, MULTIPART_MIN_BYTES, PART_BYTES)
                    .await?
            }
        }
    }
    for (i, b) in blooms.into_iter().enumerate() {
        store
            .put(
                &object_key(tenant, id, &format!("bloom-{i}")),
                bytes::Bytes::from(b),
            )
            .await?;
    }
    store
        .put(
            &object_key(tenant, id, meta::META_OBJECT),
            bytes::Bytes::from(meta.to_json()),
        )
        .await
}
