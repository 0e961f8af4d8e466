//! Reading the Parquet `data` object through the block store: the footer (parsed once
//! per reader, with the page index) and ranged reads driven by parquet's push decoder.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::DecodeResult;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::push_decoder::{
    ParquetPushDecoder, ParquetPushDecoderBuilder, RowGroupSelection,
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataPushDecoder};

use super::schema::{self as s, Layout};
use crate::store::BlockStore;

/// Bytes read from the end of the object in the first request (footer and page index
/// usually fit, so opening takes one read).
const TAIL_GUESS: u64 = 256 * 1024;
/// Ranges closer than this are fetched as one read.
const COALESCE_GAP: u64 = 64 * 1024;

/// The parsed footer of a block's `data` object, cached by the reader.
#[derive(Debug, Clone)]
pub struct Footer {
    /// Parquet metadata (with page index) and the arrow schema.
    pub meta: ArrowReaderMetadata,
    /// Column positions.
    pub layout: Layout,
    /// Unix ns `trace_start` is relative to.
    pub base_ns: u64,
    /// Dedicated attribute keys, in column order.
    pub dedicated: Vec<String>,
    /// Attribute keys whose string values are in `attrs.p`.
    pub plain_keys: HashSet<String>,
}

impl Footer {
    /// Parquet metadata.
    pub fn parquet(&self) -> &Arc<ParquetMetaData> {
        self.meta.metadata()
    }

    /// Check magic, version and layout (see [`check_layout`]) and map the columns.
    pub fn from_metadata(md: ParquetMetaData, file_len: u64) -> Result<Self, String> {
        let kv = md.file_metadata().key_value_metadata();
        let get = |k: &str| {
            kv.and_then(|kv| kv.iter().find(|e| e.key == k))
                .and_then(|e| e.value.clone())
        };
        match get(s::KV_MAGIC).as_deref() {
            Some(s::MAGIC) => {}
            other => return Err(format!("not an rb2 data object (magic {other:?})")),
        }
        match get(s::KV_VERSION).as_deref() {
            Some(s::VERSION) => {}
            other => return Err(format!("rb2 version {other:?} is not supported")),
        }
        let base_ns = get(s::KV_BASE_NS)
            .and_then(|v| v.parse().ok())
            .ok_or("rb2.base_ns is missing")?;
        let dedicated: Vec<String> = get(s::KV_DEDICATED)
            .and_then(|v| serde_json::from_str(&v).ok())
            .ok_or("rb2.dedicated is missing")?;
        let plain_keys: HashSet<String> = get(s::KV_PLAIN_KEYS)
            .and_then(|v| serde_json::from_str(&v).ok())
            .ok_or("rb2.plain_keys is missing")?;
        let layout = Layout::new(md.file_metadata().schema_descr(), dedicated.len())?;
        check_layout(&md, file_len)?;
        let meta = ArrowReaderMetadata::try_new(
            Arc::new(md),
            ArrowReaderOptions::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .with_schema(s::arrow_schema(dedicated.len())),
        )
        .map_err(|e| e.to_string())?;
        Ok(Footer {
            meta,
            layout,
            base_ns,
            dedicated,
            plain_keys,
        })
    }

    /// Projection of whole top-level columns.
    pub fn roots(&self, names: &[&str]) -> ProjectionMask {
        ProjectionMask::roots(
            self.meta.parquet_schema(),
            names.iter().map(|n| self.layout.root(n)),
        )
    }

    /// Projection by parquet leaf index.
    pub fn leaves(&self, leaves: impl IntoIterator<Item = usize>) -> ProjectionMask {
        ProjectionMask::leaves(self.meta.parquet_schema(), leaves)
    }

    /// Rows in row group `rg`.
    pub fn rows_in(&self, rg: usize) -> usize {
        self.parquet()
            .row_groups()
            .get(rg)
            .map_or(0, |r| r.num_rows().max(0) as usize)
    }

    /// A push decoder with an explicit batch size (rows).
    pub fn decoder_with_batch(
        &self,
        projection: ProjectionMask,
        selections: Vec<RowGroupSelection>,
        batch_rows: usize,
    ) -> Result<ParquetPushDecoder, String> {
        ParquetPushDecoderBuilder::new_with_metadata(self.meta.clone())
            .with_projection(projection)
            .with_row_group_selections(selections)
            .with_batch_size(batch_rows.max(1))
            .build()
            .map_err(|e| e.to_string())
    }

    /// Batch size reading `selected` rows of row group `rg` as one batch: scaled by the
    /// most values per row of any projected column (see [`Footer::batch_size`]).
    pub fn batch_for(&self, rg: usize, projection: &ProjectionMask, selected: usize) -> usize {
        let rows = self.rows_in(rg).max(1);
        let all = self.batch_size(&[rg], projection);
        (selected.saturating_mul(all.div_ceil(rows))).max(1)
    }

    /// Batch size that reads each of `rgs` as one batch. The reader reserves its value
    /// buffers for the batch size, so a list column (more values than rows) gets a batch
    /// size of its value count: one allocation instead of regrowing per page.
    pub fn batch_size(&self, rgs: &[usize], projection: &ProjectionMask) -> usize {
        rgs.iter()
            .filter_map(|&rg| self.parquet().row_groups().get(rg))
            .flat_map(|r| {
                let rows = r.num_rows().max(0) as usize;
                r.columns()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| projection.leaf_included(*i))
                    .map(move |(_, c)| rows.max(c.num_values().max(0) as usize))
            })
            .max()
            .unwrap_or(1)
    }
}

/// Check that the footer describes a file the Parquet reader can walk safely: every
/// column chunk lies inside the file, and every page of the offset index inside its
/// chunk, in order, with row indexes inside the row group. The reader trusts these
/// (damaged values make it index out of bounds or overflow), so a damaged footer is
/// refused here as corrupt.
pub fn check_layout(md: &ParquetMetaData, file_len: u64) -> Result<(), String> {
    for (rg, group) in md.row_groups().iter().enumerate() {
        let index = md.page_index_for_row_group(rg);
        let rows = group.num_rows();
        if rows < 0 {
            return Err(format!("row group {rg}: negative row count"));
        }
        for (col, c) in group.columns().iter().enumerate() {
            let bad = |what: String| Err(format!("row group {rg} column {col}: {what}"));
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            let (Ok(start), Ok(len)) = (u64::try_from(start), u64::try_from(len)) else {
                return bad("negative offset or size".into());
            };
            let end = match start.checked_add(len) {
                Some(end) if end <= file_len => end,
                _ => {
                    return bad(format!(
                        "chunk {start}+{len} past the file ({file_len} bytes)"
                    ));
                }
            };
            if c.dictionary_page_offset()
                .is_some_and(|d| d > c.data_page_offset())
                || u64::try_from(c.data_page_offset()).map_or(true, |d| d > end)
            {
                return bad("data page offset outside the chunk".into());
            }
            let Some(pages) = index.page_locations(col) else {
                continue;
            };
            let mut at = start;
            let mut first_row = -1i64;
            for p in pages {
                let (Ok(offset), Ok(size)) = (
                    u64::try_from(p.offset),
                    u64::try_from(p.compressed_page_size),
                ) else {
                    return bad("negative page offset or size".into());
                };
                if offset < at || offset.checked_add(size).is_none_or(|e| e > end) {
                    return bad(format!(
                        "page at {offset}+{size} outside the chunk or out of order"
                    ));
                }
                if p.first_row_index <= first_row || p.first_row_index >= rows.max(1) {
                    return bad(format!("page first row {} out of order", p.first_row_index));
                }
                at = offset + size;
                first_row = p.first_row_index;
            }
        }
    }
    Ok(())
}

/// Ranged reads of one object, counting the bytes fetched.
pub struct Fetcher {
    store: BlockStore,
    key: String,
    len: u64,
    fetched: AtomicU64,
}

/// A fetch failure: the store's error, or a decode problem (corrupt data).
#[derive(Debug)]
pub enum FetchError {
    /// The store failed.
    Store(crate::error::Error),
    /// The bytes are not what the format says.
    Corrupt(String),
}

impl From<crate::error::Error> for FetchError {
    fn from(e: crate::error::Error) -> Self {
        FetchError::Store(e)
    }
}

impl Fetcher {
    /// Reads of `key` (`len` bytes long).
    pub fn new(store: BlockStore, key: String, len: u64) -> Self {
        Fetcher {
            store,
            key,
            len,
            fetched: AtomicU64::new(0),
        }
    }

    /// Bytes fetched so far.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Fetch `ranges`, reading nearby ranges together; one buffer per range.
    pub async fn get_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>, FetchError> {
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_by_key(|&i| ranges[i].start);
        let mut merged: Vec<Range<u64>> = Vec::new();
        for &i in &order {
            let r = &ranges[i];
            if r.end > self.len || r.start > r.end {
                return Err(FetchError::Corrupt(format!(
                    "range {r:?} outside the object of {} bytes",
                    self.len
                )));
            }
            match merged.last_mut() {
                Some(m) if r.start <= m.end + COALESCE_GAP => m.end = m.end.max(r.end),
                _ => merged.push(r.clone()),
            }
        }
        let mut fetched = Vec::with_capacity(merged.len());
        for m in &merged {
            let b = self.store.get_range(&self.key, m.clone()).await?;
            self.fetched.fetch_add(b.len() as u64, Ordering::Relaxed);
            fetched.push((m.start, b));
        }
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            let i = fetched.partition_point(|(start, _)| *start <= r.start);
            let (start, buf) = &fetched[i.saturating_sub(1)];
            let (a, b) = ((r.start - start) as usize, (r.end - start) as usize);
            if b > buf.len() {
                return Err(FetchError::Corrupt("short read from the store".into()));
            }
            out.push(buf.slice(a..b));
        }
        Ok(out)
    }

    /// Read and parse the footer with its page index.
    pub async fn footer(&self) -> Result<Footer, FetchError> {
        let corrupt = |e: parquet::errors::ParquetError| FetchError::Corrupt(e.to_string());
        let mut dec = ParquetMetaDataPushDecoder::try_new(self.len)
            .map_err(corrupt)?
            .with_page_index_policy(PageIndexPolicy::Optional);
        let tail = self.len.saturating_sub(TAIL_GUESS)..self.len;
        let bytes = self.get_ranges(std::slice::from_ref(&tail)).await?;
        dec.push_ranges(vec![tail], bytes).map_err(corrupt)?;
        loop {
            match dec.try_decode().map_err(corrupt)? {
                DecodeResult::NeedsData(ranges) => {
                    let bytes = self.get_ranges(&ranges).await?;
                    dec.push_ranges(ranges, bytes).map_err(corrupt)?;
                }
                DecodeResult::Data(md) => {
                    return Footer::from_metadata(md, self.len).map_err(FetchError::Corrupt);
                }
                DecodeResult::Finished => {
                    return Err(FetchError::Corrupt("no parquet footer".into()));
                }
            }
        }
    }

    /// Run `decoder` to the end, fetching what it asks for; every batch it yields.
    pub async fn drive(
        &self,
        mut decoder: ParquetPushDecoder,
    ) -> Result<Vec<RecordBatch>, FetchError> {
        let mut out = Vec::new();
        loop {
            match decoder
                .try_decode()
                .map_err(|e| FetchError::Corrupt(e.to_string()))?
            {
                DecodeResult::NeedsData(ranges) => {
                    let bytes = self.get_ranges(&ranges).await?;
                    decoder
                        .push_ranges(ranges, bytes)
                        .map_err(|e| FetchError::Corrupt(e.to_string()))?;
                }
                DecodeResult::Data(b) => out.push(b),
                DecodeResult::Finished => return Ok(out),
            }
        }
    }

    /// Byte ranges of the column chunks `projection` reads in row group `rg`.
    pub fn chunk_ranges(
        footer: &Footer,
        rg: usize,
        projection: &ProjectionMask,
    ) -> Vec<Range<u64>> {
        let Some(rg) = footer.parquet().row_groups().get(rg) else {
            return Vec::new();
        };
        rg.columns()
            .iter()
            .enumerate()
            .filter(|(i, _)| projection.leaf_included(*i))
            .map(|(_, c)| {
                let (start, len) = c.byte_range();
                start..start + len
            })
            .collect()
    }
}
