//! Block format `rb1`: row-oriented, zstd pages of trace records sorted by trace id.
//!
//! ```text
//! data    = "RB1DATA\0" version:u16le  page*
//! page    = zstd( record* )            record = trace_id[16] len:u32le TracesData-bytes
//!           (zstd frames carry a content checksum; blocks of earlier builds may not)
//! index   = "RB1INDEX" version:u16le count:u32le entry* crc32c:u32le
//! entry   = first_id[16] last_id[16] offset:u64le len:u32le traces:u32le
//! bloom-N = see `bloom`
//! ```
//! A lookup reads the bloom shard, binary-searches the index, then fetches and
//! decompresses one page with a ranged read.

use std::sync::Arc;

use async_trait::async_trait;

use tempo_api::trace_id::TraceId;

use super::bloom::{self, Bloom};
use super::build::{BlockBuilder, BuildHints, SpoolDir};
use super::damaged::{DamagedBlock, name_block};
use super::meta::{self, BlockMeta};
use super::{
    BlockFormat, BlockInput, BlockReader, EncodingSettings, TraceCursor, corrupt_data, load_blooms,
    object_key, put_block, search_all, tags_all,
};
use crate::error::{Error, Result};
use crate::search::{Expr, SearchPlan, SearchResult, TagSummary};
use crate::store::BlockStore;

mod stream;

/// The `format` value in `meta.json`.
pub const FORMAT: &str = "rb1";
const DATA_MAGIC: &[u8; 8] = b"RB1DATA\0";
const INDEX_MAGIC: &[u8; 8] = b"RB1INDEX";
const VERSION: u16 = 1;
const ENTRY_LEN: usize = 48;

/// One index entry: a page and the ids it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageEntry {
    /// First trace id in the page.
    pub first: TraceId,
    /// Last trace id in the page.
    pub last: TraceId,
    /// Byte offset of the page in `data`.
    pub offset: u64,
    /// Compressed length.
    pub len: u32,
    /// Traces in the page.
    pub traces: u32,
}

/// Encoded objects of one block.
pub struct EncodedBlock {
    /// `data` object.
    pub data: Vec<u8>,
    /// `index` object.
    pub index: Vec<u8>,
    /// `bloom-N` objects.
    pub blooms: Vec<Vec<u8>>,
    /// Page entries (also encoded in `index`).
    pub pages: Vec<PageEntry>,
}

/// Encode the objects of a block (CPU heavy: call off the async runtime).
pub fn encode(input: &BlockInput<'_>, s: &EncodingSettings) -> std::io::Result<EncodedBlock> {
    let mut data = Vec::new();
    data.extend_from_slice(DATA_MAGIC);
    data.extend_from_slice(&VERSION.to_le_bytes());
    let mut pages = Vec::new();
    let mut raw = Vec::with_capacity(s.page_size + 4096);
    let mut page_first: Option<TraceId> = None;
    let mut page_last = [0u8; 16];
    let mut page_traces = 0u32;
    // One compression context for all pages: a fresh context per page allocates and
    // clears several MiB each time (same output as `zstd::bulk::compress`).
    // Each page carries zstd's content checksum, so damage to a page in the store is an
    // error naming the block rather than wrong or undecodable traces.
    let mut compressor = zstd::bulk::Compressor::new(s.zstd_level)?;
    compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    let mut flush_page = |raw: &mut Vec<u8>,
                          first: TraceId,
                          last: TraceId,
                          traces: u32,
                          data: &mut Vec<u8>,
                          pages: &mut Vec<PageEntry>|
     -> std::io::Result<()> {
        let compressed = compressor.compress(raw)?;
        pages.push(PageEntry {
            first,
            last,
            offset: data.len() as u64,
            len: compressed.len() as u32,
            traces,
        });
        data.extend_from_slice(&compressed);
        raw.clear();
        Ok(())
    };
    for t in input.traces {
        raw.extend_from_slice(&t.id);
        raw.extend_from_slice(&(t.data.len() as u32).to_le_bytes());
        raw.extend_from_slice(t.data);
        page_first.get_or_insert(t.id);
        page_last = t.id;
        page_traces += 1;
        if raw.len() >= s.page_size {
            if let Some(first) = page_first.take() {
                flush_page(
                    &mut raw,
                    first,
                    page_last,
                    page_traces,
                    &mut data,
                    &mut pages,
                )?;
            }
            page_traces = 0;
        }
    }
    if let Some(first) = page_first.take() {
        flush_page(
            &mut raw,
            first,
            page_last,
            page_traces,
            &mut data,
            &mut pages,
        )?;
    }
    let index = encode_index(&pages);
    let ids: Vec<TraceId> = input.traces.iter().map(|t| t.id).collect();
    let blooms = bloom::build_shards(&ids, s.bloom_fp, s.bloom_shard_bytes)
        .iter()
        .map(Bloom::to_bytes)
        .collect();
    Ok(EncodedBlock {
        data,
        index,
        blooms,
        pages,
    })
}

/// The `index` object for `pages`.
pub(crate) fn encode_index(pages: &[PageEntry]) -> Vec<u8> {
    let mut index = Vec::with_capacity(14 + pages.len() * ENTRY_LEN + 4);
    index.extend_from_slice(INDEX_MAGIC);
    index.extend_from_slice(&VERSION.to_le_bytes());
    index.extend_from_slice(&(pages.len() as u32).to_le_bytes());
    for p in pages {
        index.extend_from_slice(&p.first);
        index.extend_from_slice(&p.last);
        index.extend_from_slice(&p.offset.to_le_bytes());
        index.extend_from_slice(&p.len.to_le_bytes());
        index.extend_from_slice(&p.traces.to_le_bytes());
    }
    let crc = crc32c::crc32c(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    index
}

/// Parse an `index` object.
pub fn decode_index(b: &[u8]) -> Result<Vec<PageEntry>, String> {
    if b.len() < 18 || &b[..8] != INDEX_MAGIC {
        return Err("not an rb1 index (bad magic)".into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("index checksum mismatch".into());
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != VERSION {
        return Err(format!("rb1 index version {version} is not supported"));
    }
    let count = u32::from_le_bytes([b[10], b[11], b[12], b[13]]) as usize;
    let entries = &body[14..];
    if entries.len() != count * ENTRY_LEN {
        return Err("index length does not match its entry count".into());
    }
    Ok(entries
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let mut first = [0u8; 16];
            let mut last = [0u8; 16];
            let mut off = [0u8; 8];
            first.copy_from_slice(&e[..16]);
            last.copy_from_slice(&e[16..32]);
            off.copy_from_slice(&e[32..40]);
            PageEntry {
                first,
                last,
                offset: u64::from_le_bytes(off),
                len: u32::from_le_bytes([e[40], e[41], e[42], e[43]]),
                traces: u32::from_le_bytes([e[44], e[45], e[46], e[47]]),
            }
        })
        .collect())
}

/// Decode `pages` of a data object whose bytes from offset `base` on are `data`, appending
/// every record to `out` (what a whole-block read and the compaction cursor both do).
pub fn decode_pages(
    data: &[u8],
    base: u64,
    pages: &[PageEntry],
    out: &mut Vec<(TraceId, Vec<u8>)>,
) -> Result<(), String> {
    for p in pages {
        // A damaged index may hold offsets before `base` or past the object.
        let page = p
            .offset
            .checked_sub(base)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| Some(at..at.checked_add(p.len as usize)?))
            .and_then(|r| data.get(r))
            .ok_or_else(|| format!("page at offset {} runs past the object", p.offset))?;
        let raw = zstd::stream::decode_all(page)
            .map_err(|e| format!("page at offset {}: {e}", p.offset))?;
        for (tid, bytes) in page_records(&raw)? {
            out.push((tid, bytes.to_vec()));
        }
    }
    Ok(())
}

/// Every record of a decompressed page, in order: `(trace id, TracesData bytes)`.
pub fn page_records(page: &[u8]) -> Result<Vec<(TraceId, &[u8])>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < page.len() {
        if page.len() - pos < 20 {
            return Err("page record header runs past the page".into());
        }
        let len = u32::from_le_bytes([
            page[pos + 16],
            page[pos + 17],
            page[pos + 18],
            page[pos + 19],
        ]) as usize;
        let start = pos + 20;
        if page.len() - start < len {
            return Err("page record runs past the page".into());
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&page[pos..pos + 16]);
        out.push((id, &page[start..start + len]));
        pos = start + len;
    }
    Ok(out)
}

/// Find `id` in a decompressed page.
pub fn scan_page(page: &[u8], id: &TraceId) -> Result<Option<Vec<u8>>, String> {
    Ok(page_records(page)?
        .into_iter()
        .find(|(t, _)| t == id)
        .map(|(_, b)| b.to_vec()))
}

/// The rb1 format.
pub struct Rb1 {
    settings: EncodingSettings,
}

impl Rb1 {
    /// With encoding settings.
    pub fn new(settings: EncodingSettings) -> Self {
        Rb1 { settings }
    }
}

#[async_trait]
impl BlockFormat for Rb1 {
    fn name(&self) -> &'static str {
        FORMAT
    }

    async fn write(&self, store: &BlockStore, input: BlockInput<'_>) -> Result<BlockMeta> {
        let encoded = crate::cpu::run_heavy(|| encode(&input, &self.settings))
            .map_err(|e| Error::Internal(format!("rb1 encode: {e}")))?;
        let (tenant, id) = (input.tenant, input.block_id);
        let meta = BlockMeta {
            format: FORMAT.into(),
            block_id: id,
            tenant_id: tenant.to_owned(),
            start_time: meta::rfc3339(input.traces.iter().map(|t| t.start_ns).min().unwrap_or(0)),
            end_time: meta::rfc3339(input.traces.iter().map(|t| t.end_ns).max().unwrap_or(0)),
            total_objects: input.traces.len() as u64,
            total_spans: input.traces.iter().map(|t| t.spans as u64).sum(),
            size: encoded.data.len() as u64,
            encoding: "zstd".into(),
            bloom_shards: encoded.blooms.len() as u32,
            compaction_level: 0,
        };
        put_block(
            store,
            &meta,
            vec![("data", encoded.data), ("index", encoded.index)],
            encoded.blooms,
        )
        .await?;
        Ok(meta)
    }

    fn builder(
        &self,
        tenant: &str,
        block_id: uuid::Uuid,
        spool: SpoolDir,
        hints: BuildHints,
    ) -> Result<Box<dyn BlockBuilder>> {
        Ok(Box::new(stream::Rb1Builder::new(
            &self.settings,
            tenant,
            block_id,
            spool,
            hints,
        )?))
    }

    async fn open(&self, store: &BlockStore, meta: &BlockMeta) -> Result<Arc<dyn BlockReader>> {
        let (tenant, id) = (meta.tenant_id.as_str(), meta.block_id);
        let index_bytes = store.get(&object_key(tenant, &id, "index")).await?;
        let blooms = load_blooms(store, meta).await?;
        let pages = match decode_index(&index_bytes) {
            Ok(pages) => pages,
            Err(message) => {
                return Ok(Arc::new(DamagedBlock {
                    tenant: tenant.to_owned(),
                    block_id: id.to_string(),
                    object: "index",
                    message,
                    blooms,
                }));
            }
        };
        Ok(Arc::new(Rb1Reader {
            store: store.clone(),
            tenant: tenant.to_owned(),
            id,
            data_key: object_key(tenant, &id, "data"),
            size: meta.size,
            pages,
            blooms,
        }))
    }
}

struct Rb1Reader {
    store: BlockStore,
    tenant: String,
    id: uuid::Uuid,
    data_key: String,
    /// Length of `data` (from `meta.json`).
    size: u64,
    pages: Vec<PageEntry>,
    blooms: Vec<Bloom>,
}

#[async_trait]
impl BlockReader for Rb1Reader {
    async fn find_trace(&self, id: &TraceId) -> Result<Option<Vec<u8>>> {
        if !self.blooms.is_empty()
            && !self.blooms[bloom::shard_of(id, self.blooms.len() as u32)].may_contain(id)
        {
            return Ok(None);
        }
        // First page whose last id is >= id.
        let i = self.pages.partition_point(|p| p.last < *id);
        let Some(page) = self.pages.get(i).filter(|p| p.first <= *id) else {
            return Ok(None);
        };
        let corrupt = |message: String| corrupt_data(&self.tenant, &self.id, message);
        let start = page.offset;
        let end = start
            .checked_add(u64::from(page.len))
            .filter(|end| *end <= self.size)
            .ok_or_else(|| {
                corrupt(format!(
                    "page at offset {start} ({} bytes) runs past the object ({} bytes)",
                    page.len, self.size
                ))
            })?;
        let bytes = self.store.get_range(&self.data_key, start..end).await?;
        let raw = zstd::stream::decode_all(bytes.as_ref())
            .map_err(|e| corrupt(format!("page at offset {start}: {e}")))?;
        scan_page(&raw, id).map_err(corrupt)
    }

    fn cursor(&self) -> Option<Box<dyn TraceCursor>> {
        Some(Box::new(stream::Rb1Cursor::new(
            self.store.clone(),
            self.tenant.clone(),
            self.id,
            self.data_key.clone(),
            self.pages.clone(),
        )))
    }

    async fn read_all(&self) -> Result<Vec<(TraceId, Vec<u8>)>> {
        let data = self.store.get(&self.data_key).await?;
        let (tenant, id, pages) = (self.tenant.clone(), self.id, self.pages.clone());
        crate::cpu::run_heavy(move || {
            let mut out = Vec::new();
            decode_pages(&data, 0, &pages, &mut out)
                .map_err(|message| corrupt_data(&tenant, &id, message))?;
            Ok(out)
        })
    }

    async fn search(&self, plan: &SearchPlan) -> Result<SearchResult> {
        search_all(self, plan)
            .await
            .map_err(|e| name_block(e, &self.tenant, &self.id.to_string(), "data"))
    }

    async fn tags(&self, range_ns: Option<(u64, u64)>, filter: &Expr) -> Result<TagSummary> {
        tags_all(self, range_ns, filter)
            .await
            .map_err(|e| name_block(e, &self.tenant, &self.id.to_string(), "data"))
    }
}
