//! Block formats: immutable objects under `<tenant>/<block-id>/` with `meta.json` last.
//!
//! Each format is one module behind [`BlockFormat`]; a block without `meta.json` does not
//! exist for readers, so a crash mid-write leaves nothing visible.

pub mod bloom;
pub mod build;
pub mod damaged;
pub mod index;
pub mod meta;
pub mod rb1;
pub mod rb2;

use std::sync::Arc;

use async_trait::async_trait;
use tempo_api::trace_id::TraceId;
use uuid::Uuid;

use crate::error::Result;
use crate::search::generic::search_encoded;
use crate::search::{Expr, SearchPlan, SearchResult, TagSummary};
use crate::store::BlockStore;
pub use build::{BlockBuilder, BuildHints, BuiltBlock, SpoolDir};
pub use meta::BlockMeta;

/// One trace to write: its encoded `TracesData` bytes and summary.
#[derive(Debug, Clone, Copy)]
pub struct TraceRecord<'a> {
    /// Trace id.
    pub id: TraceId,
    /// Encoded spans (`TracesData` bytes).
    pub data: &'a [u8],
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
    /// Span count.
    pub spans: u32,
}

/// What a block writer needs.
pub struct BlockInput<'a> {
    /// Owner tenant.
    pub tenant: &'a str,
    /// Id of the new block.
    pub block_id: Uuid,
    /// Traces sorted by id, ids unique.
    pub traces: &'a [TraceRecord<'a>],
}

/// Encoding settings shared by formats.
#[derive(Debug, Clone)]
pub struct EncodingSettings {
    /// Target uncompressed page size.
    pub page_size: usize,
    /// Bloom false-positive rate.
    pub bloom_fp: f64,
    /// Bloom shard size in bytes.
    pub bloom_shard_bytes: usize,
    /// zstd level.
    pub zstd_level: i32,
    /// rb2: target size of one Parquet row group (rows are cut at trace boundaries).
    pub row_group_bytes: usize,
    /// rb2: span attributes with their own columns (duplicates removed, order kept).
    pub dedicated_columns: Vec<String>,
}

impl Default for EncodingSettings {
    fn default() -> Self {
        let c = crate::config::BlockConfig::default();
        EncodingSettings::from(&c)
    }
}

impl From<&crate::config::BlockConfig> for EncodingSettings {
    fn from(c: &crate::config::BlockConfig) -> Self {
        EncodingSettings {
            page_size: c.page_size_bytes.as_u64() as usize,
            bloom_fp: c.bloom_filter_false_positive,
            bloom_shard_bytes: c.bloom_filter_shard_size_bytes.as_u64() as usize,
            zstd_level: c.zstd_level,
            row_group_bytes: c.parquet_row_group_size_bytes.as_u64() as usize,
            dedicated_columns: dedupe(&c.parquet_dedicated_columns),
        }
    }
}

fn dedupe(keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for k in keys {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

/// A block format: how blocks are written and opened.
#[async_trait]
pub trait BlockFormat: Send + Sync {
    /// The `format` string in `meta.json`.
    fn name(&self) -> &'static str;
    /// Write every object of a block held in memory, `meta.json` last, and return the
    /// meta.
    async fn write(&self, store: &BlockStore, input: BlockInput<'_>) -> Result<BlockMeta>;
    /// Start writing block `block_id` of `tenant` a trace at a time into `spool` (see
    /// [`build`]); upload the result with [`build::upload`].
    fn builder(
        &self,
        tenant: &str,
        block_id: Uuid,
        spool: SpoolDir,
        hints: BuildHints,
    ) -> Result<Box<dyn BlockBuilder>>;
    /// Open a block for reading (loads its index and bloom filters).
    async fn open(&self, store: &BlockStore, meta: &BlockMeta) -> Result<Arc<dyn BlockReader>>;
}

/// Read access to one block.
#[async_trait]
pub trait BlockReader: Send + Sync {
    /// The encoded spans of `id` in this block, if present.
    async fn find_trace(&self, id: &TraceId) -> Result<Option<Vec<u8>>>;

    /// Every trace in the block, sorted by id, as encoded `TracesData` bytes.
    async fn read_all(&self) -> Result<Vec<(TraceId, Vec<u8>)>>;

    /// Every trace in the block in id order, a batch at a time (compaction and format
    /// rewrites read blocks this way). `None`: the format reads whole blocks only, use
    /// [`BlockReader::read_all`].
    fn cursor(&self) -> Option<Box<dyn TraceCursor>> {
        None
    }

    /// Search this block. The default decodes every trace and evaluates span by span
    /// ([`search_all`]); columnar formats override it to read only the columns the plan
    /// needs.
    async fn search(&self, plan: &SearchPlan) -> Result<SearchResult> {
        search_all(self, plan).await
    }

    /// Tag names and values of the block's traces overlapping `range_ns` (`[start, end]`
    /// in unix ns; every trace when `None`), from the spans matching `filter`, for the tag
    /// endpoints. The default decodes every trace ([`tags_all`]); columnar formats may
    /// read only the columns they need.
    async fn tags(&self, range_ns: Option<(u64, u64)>, filter: &Expr) -> Result<TagSummary> {
        tags_all(self, range_ns, filter).await
    }
}

/// Traces as `(id, encoded TracesData)` pairs, in id order.
pub type EncodedTraces = Vec<(TraceId, Vec<u8>)>;

/// Traces of one block in id order, read a part at a time.
#[async_trait]
pub trait TraceCursor: Send {
    /// The next traces, or `None` once every trace was returned.
    async fn next_batch(&mut self) -> Result<Option<EncodedTraces>>;
}

/// A cursor over traces already in memory (one batch).
pub struct InMemoryCursor(Option<EncodedTraces>);

impl InMemoryCursor {
    /// Over `traces` (sorted by id).
    pub fn new(traces: EncodedTraces) -> Self {
        InMemoryCursor(Some(traces))
    }
}

#[async_trait]
impl TraceCursor for InMemoryCursor {
    async fn next_batch(&mut self) -> Result<Option<EncodedTraces>> {
        Ok(self.0.take().filter(|t| !t.is_empty()))
    }
}

/// Search a block by decoding every trace ([`BlockReader::read_all`]) and evaluating span
/// by span.
pub async fn search_all<R: BlockReader + ?Sized>(
    reader: &R,
    plan: &SearchPlan,
) -> Result<SearchResult> {
    let traces = reader.read_all().await?;
    let plan = plan.clone();
    crate::cpu::run_heavy(move || {
        let mut r = search_encoded(traces.iter().map(|(id, b)| (*id, b.as_slice())), &plan)?;
        r.inspected_bytes = traces.iter().map(|(_, b)| b.len() as u64).sum();
        Ok(r)
    })
}

/// Tag summary of a block by decoding every trace ([`BlockReader::read_all`]).
pub async fn tags_all<R: BlockReader + ?Sized>(
    reader: &R,
    range_ns: Option<(u64, u64)>,
    filter: &Expr,
) -> Result<TagSummary> {
    let traces = reader.read_all().await?;
    crate::cpu::run_heavy(|| {
        let keep = |s, e| range_ns.is_none_or(|(start, end)| e >= start && s <= end);
        TagSummary::from_encoded(
            traces.iter().map(|(id, b)| (*id, b.as_slice())),
            keep,
            filter,
        )
    })
}

/// The formats this build can read, by name.
pub fn format_by_name(name: &str, settings: &EncodingSettings) -> Option<Arc<dyn BlockFormat>> {
    match name {
        rb1::FORMAT => Some(Arc::new(rb1::Rb1::new(settings.clone()))),
        rb2::FORMAT => Some(Arc::new(rb2::Rb2::new(settings.clone()))),
        _ => None,
    }
}

/// Upload a block held in memory: `objects` (name, bytes) in order, the bloom shards, then
/// `meta.json` last ([`build::put_objects`]).
pub async fn put_block(
    store: &BlockStore,
    meta: &BlockMeta,
    objects: Vec<(&'static str, Vec<u8>)>,
    blooms: Vec<Vec<u8>>,
) -> Result<()> {
    let objects = objects
        .into_iter()
        .map(|(name, bytes)| (name, build::Object::Bytes(bytes)))
        .collect();
    build::put_objects(store, meta, objects, blooms).await
}

/// Load a block's bloom shards (`bloom-0` … `bloom-<n-1>`).
pub async fn load_blooms(store: &BlockStore, meta: &BlockMeta) -> Result<Vec<bloom::Bloom>> {
    let (tenant, id) = (meta.tenant_id.as_str(), &meta.block_id);
    if meta.bloom_shards as usize > bloom::MAX_SHARDS {
        return Err(crate::error::Error::CorruptBlock {
            tenant: tenant.to_owned(),
            block_id: id.to_string(),
            object: meta::META_OBJECT,
            message: format!(
                "bloomShards {} is more than a block has (at most {})",
                meta.bloom_shards,
                bloom::MAX_SHARDS
            ),
        });
    }
    let mut blooms = Vec::with_capacity(meta.bloom_shards as usize);
    for i in 0..meta.bloom_shards {
        let b = store
            .get(&object_key(tenant, id, &format!("bloom-{i}")))
            .await?;
        blooms.push(bloom::Bloom::from_bytes(&b).map_err(|message| {
            crate::error::Error::CorruptBlock {
                tenant: tenant.to_owned(),
                block_id: id.to_string(),
                object: "bloom",
                message,
            }
        })?);
    }
    Ok(blooms)
}

/// The error for damaged bytes in the data object of block `id` of `tenant`.
pub fn corrupt_data(tenant: &str, id: &Uuid, message: String) -> crate::error::Error {
    crate::error::Error::CorruptBlock {
        tenant: tenant.to_owned(),
        block_id: id.to_string(),
        object: "data",
        message,
    }
}

/// Object key of `object` in a block.
pub fn object_key(tenant: &str, block_id: &Uuid, object: &str) -> String {
    format!("{tenant}/{block_id}/{object}")
}
