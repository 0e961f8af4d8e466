//! rb1 blocks a trace at a time: the streaming writer ([`Rb1Builder`]) and the
//! page-by-page reader compaction uses ([`Rb1Cursor`]).

use async_trait::async_trait;
use tempo_api::trace_id::TraceId;

use super::{DATA_MAGIC, FORMAT, PageEntry, VERSION, decode_pages, encode_index};
use crate::block::build::{BlockBuilder, BloomBuilder, BuildHints, BuiltBlock, Object, SpoolDir};
use crate::block::meta::{self, BlockMeta};
use crate::block::{EncodedTraces, EncodingSettings, TraceCursor, TraceRecord, corrupt_data};
use crate::error::{Error, Result};
use crate::store::BlockStore;

/// An rb1 block being written into its spool file: pages are compressed and appended as
/// they fill; the index and bloom shards stay in memory (small).
pub struct Rb1Builder {
    meta: BlockMeta,
    out: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    spool: SpoolDir,
    page_size: usize,
    compressor: zstd::bulk::Compressor<'static>,
    raw: Vec<u8>,
    first: Option<TraceId>,
    last: TraceId,
    traces: u32,
    pages: Vec<PageEntry>,
    blooms: BloomBuilder,
    start_ns: u64,
    end_ns: u64,
}

impl Rb1Builder {
    /// Start block `block_id` of `tenant` in `spool`.
    pub fn new(
        s: &EncodingSettings,
        tenant: &str,
        block_id: uuid::Uuid,
        spool: SpoolDir,
        hints: BuildHints,
    ) -> Result<Self> {
        use std::io::Write;
        let path = spool.file("data");
        let spool_err = |source| Error::Spool {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::create(&path).map_err(spool_err)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(DATA_MAGIC).map_err(spool_err)?;
        out.write_all(&VERSION.to_le_bytes()).map_err(spool_err)?;
        // Pages carry zstd's content checksum, as `rb1::encode` writes them.
        let mut compressor = zstd::bulk::Compressor::new(s.zstd_level)
            .map_err(|e| Error::Internal(format!("rb1 encode: {e}")))?;
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .map_err(|e| Error::Internal(format!("rb1 encode: {e}")))?;
        Ok(Rb1Builder {
            meta: BlockMeta {
                format: FORMAT.into(),
                block_id,
                tenant_id: tenant.to_owned(),
                start_time: String::new(),
                end_time: String::new(),
                total_objects: 0,
                total_spans: 0,
                size: (DATA_MAGIC.len() + 2) as u64,
                encoding: "zstd".into(),
                bloom_shards: 0,
                compaction_level: 0,
            },
            out,
            path,
            spool,
            page_size: s.page_size,
            compressor,
            raw: Vec::with_capacity(s.page_size + 4096),
            first: None,
            last: [0; 16],
            traces: 0,
            pages: Vec::new(),
            blooms: BloomBuilder::new(hints.traces, s.bloom_fp, s.bloom_shard_bytes),
            start_ns: u64::MAX,
            end_ns: 0,
        })
    }

    fn flush_page(&mut self) -> Result<()> {
        let Some(first) = self.first.take() else {
            return Ok(());
        };
        use std::io::Write;
        let compressed = self
            .compressor
            .compress(&self.raw)
            .map_err(|e| Error::Internal(format!("rb1 encode: {e}")))?;
        self.out
            .write_all(&compressed)
            .map_err(|source| Error::Spool {
                path: self.path.clone(),
                source,
            })?;
        self.pages.push(PageEntry {
            first,
            last: self.last,
            offset: self.meta.size,
            len: compressed.len() as u32,
            traces: self.traces,
        });
        self.meta.size += compressed.len() as u64;
        self.raw.clear();
        self.traces = 0;
        Ok(())
    }
}

impl BlockBuilder for Rb1Builder {
    fn push(&mut self, t: &TraceRecord<'_>) -> Result<()> {
        if self.meta.total_objects > 0 && t.id <= self.last {
            return Err(Error::Internal(format!(
                "rb1 encode: trace {} is out of order",
                tempo_api::trace_id::trace_id_to_hex(&t.id)
            )));
        }
        self.raw.extend_from_slice(&t.id);
        self.raw
            .extend_from_slice(&(t.data.len() as u32).to_le_bytes());
        self.raw.extend_from_slice(t.data);
        self.first.get_or_insert(t.id);
        self.last = t.id;
        self.traces += 1;
        self.blooms.insert(&t.id);
        self.meta.total_objects += 1;
        self.meta.total_spans += t.spans as u64;
        self.start_ns = self.start_ns.min(t.start_ns);
        self.end_ns = self.end_ns.max(t.end_ns);
        if self.raw.len() >= self.page_size {
            self.flush_page()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<BuiltBlock> {
        self.flush_page()?;
        use std::io::Write;
        self.out.flush().map_err(|source| Error::Spool {
            path: self.path.clone(),
            source,
        })?;
        let b = *self;
        let mut meta = b.meta;
        meta.start_time = meta::rfc3339(if b.start_ns == u64::MAX {
            0
        } else {
            b.start_ns
        });
        meta.end_time = meta::rfc3339(b.end_ns);
        let blooms = b.blooms.finish();
        meta.bloom_shards = blooms.len() as u32;
        let size = meta.size;
        Ok(BuiltBlock {
            meta,
            objects: vec![
                ("data", Object::File(b.path, size)),
                ("index", Object::Bytes(encode_index(&b.pages))),
            ],
            blooms,
            spool: b.spool,
        })
    }
}

/// Traces of an rb1 block in id order, a few pages per ranged read.
pub struct Rb1Cursor {
    store: BlockStore,
    tenant: String,
    id: uuid::Uuid,
    data_key: String,
    pages: std::vec::IntoIter<PageEntry>,
}

impl Rb1Cursor {
    /// Over the pages of the block whose data object is `data_key`.
    pub fn new(
        store: BlockStore,
        tenant: String,
        id: uuid::Uuid,
        data_key: String,
        pages: Vec<PageEntry>,
    ) -> Self {
        Rb1Cursor {
            store,
            tenant,
            id,
            data_key,
            pages: pages.into_iter(),
        }
    }
}

/// Compressed page bytes fetched per read of a cursor.
const CURSOR_READ_BYTES: u64 = 4 * 1024 * 1024;

#[async_trait]
impl TraceCursor for Rb1Cursor {
    async fn next_batch(&mut self) -> Result<Option<EncodedTraces>> {
        let mut batch: Vec<PageEntry> = Vec::new();
        let mut bytes = 0u64;
        while bytes < CURSOR_READ_BYTES {
            let Some(p) = self.pages.next() else {
                break;
            };
            bytes += p.len as u64;
            batch.push(p);
        }
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(None);
        };
        let corrupt = |message: String| corrupt_data(&self.tenant, &self.id, message);
        // A damaged index may hold offsets that overflow or run backwards.
        let start = first.offset;
        let end = last
            .offset
            .checked_add(last.len as u64)
            .filter(|end| *end >= start)
            .ok_or_else(|| corrupt(format!("page at offset {} is out of range", last.offset)))?;
        let data = self.store.get_range(&self.data_key, start..end).await?;
        let (tenant, id) = (self.tenant.clone(), self.id);
        crate::cpu::compaction_threads()
            .run(move || {
                let mut out = Vec::new();
                decode_pages(&data, start, &batch, &mut out)
                    .map_err(|message| corrupt_data(&tenant, &id, message))?;
                Ok(Some(out))
            })
            .await?
    }
}
