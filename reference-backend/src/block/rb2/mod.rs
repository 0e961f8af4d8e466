//! Block format `rb2`: columnar, one Parquet file, one row per span, rows sorted by trace id.
//!
//! ```text
//! <tenant>/<block-id>/data       Parquet (zstd); key-value metadata rb2.magic = "rb2",
//!                                rb2.version = "1", rb2.base_ns (block start, unix ns),
//!                                rb2.dedicated (JSON list of dedicated attribute keys)
//! <tenant>/<block-id>/bloom-<n>  the rb1 bloom shards (`block::bloom`)
//! <tenant>/<block-id>/meta.json  format "rb2", written last
//! ```
//!
//! Rows: the spans of each trace in their input order (resource by resource, scope by scope),
//! traces by ascending id. A trace never spans two row groups; a row group is cut once its
//! encoded size reaches `parquet_row_group_size_bytes`. Columns (`?` = nullable):
//!
//! | column | type | holds |
//! |---|---|---|
//! | `trace_id`? | fixed 16 | the trace id, on the trace's first row only (null marks "same trace"); page statistics |
//! | `trace_start`? | u64 | earliest span start − `rb2.base_ns`, first row only |
//! | `trace_duration`? | u64 | latest end − earliest start, first row only |
//! | `root_service`?, `root_name`? | dict string | `service.name` and name of the first span without a parent, first row only; null without one |
//! | `group` | u8 | 2 = row starts a `ResourceSpans`, 1 = starts a `ScopeSpans`, 0 = same as the row before |
//! | `res` | dict binary | encoded `ResourceSpans` without its scopes (resource + schema URL) |
//! | `scope` | dict binary | encoded `ScopeSpans` without its spans (scope + schema URL) |
//! | `service`? | dict string | the resource's string `service.name` |
//! | `span_id`? | fixed 8 | span id |
//! | `parent`? | i32 | −1 no parent; n = the span id of the trace's n-th span; null: see `parent_id` |
//! | `parent_id`? | fixed 8 | a parent id that is no span of the trace |
//! | `odd`? | binary | encoded `Span{trace_id, span_id, parent_span_id, end}` when any of them does not fit the columns above (other trace id, ids not 8 bytes, end before start); then it wins |
//! | `name`, `kind`, `trace_state`, `flags` | dict string, i32, dict string, u32 | as in OTLP |
//! | `start` | u64 | start − trace start |
//! | `duration` | u64 | end − start (0 when end < start) |
//! | `status_code`?, `status_message`? | i32, dict string | null when the span has no status |
//! | `dropped_attrs`, `dropped_events`, `dropped_links` | u32 | dropped counts |
//! | `events`? | binary | encoded `Span{events}` with event times relative to the span start |
//! | `links`? | binary | encoded `Span{links}` |
//! | `attrs` | list of struct | the span attributes not in a dedicated column, in order: `key` (dict string) and exactly one of `s` (dict string), `i` (i64), `d` (f64), `b` (bool), `raw` (the whole encoded `KeyValue`: bytes, arrays, kvlists, empty values) |
//! | `ded<N>_s`?, `ded<N>_i`?, `ded<N>_pos`? | dict string, i64, u32 | dedicated attribute N (`parquet_dedicated_columns`): the first attribute with that key when it is a string or an int, and its position in the attribute list |
//!
//! Reading a trace back gives exactly the `TracesData` written (empty resource and scope
//! entries, which carry no span, are not kept). A lookup checks the bloom shard, picks the
//! row group by `trace_id` statistics and the page by the page index, decodes `trace_id`
//! there to find the trace's rows, then reads every column for those rows only (ranged
//! reads of the pages involved). Search (`search`) reads only the columns a query needs.

mod builder;
mod cols;
mod cursor;
mod eval;
mod fetch;
mod hits;
mod kvscan;
mod read;
mod schema;
mod search;
#[cfg(test)]
mod tests;
mod write;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::arrow::push_decoder::RowGroupSelection;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use tempo_api::trace_id::TraceId;
use uuid::Uuid;

use super::bloom::{self, Bloom};
use super::build::{BlockBuilder, BuildHints, BuiltBlock, Object, SpoolDir};
use super::damaged::{DamagedBlock, name_block};
use super::meta::{self, BlockMeta};
use super::{
    BlockFormat, BlockInput, BlockReader, EncodingSettings, TraceCursor, TraceRecord, load_blooms,
    object_key, put_block, tags_all,
};
use crate::error::{Error, Result};
use crate::search::{Expr, SearchPlan, SearchResult, TagSummary};
use crate::store::BlockStore;
use fetch::{FetchError, Fetcher, Footer};

pub use write::{EncodedBlock, Encoder, encode};

/// The `format` value in `meta.json`.
pub const FORMAT: &str = "rb2";

/// The rb2 format.
pub struct Rb2 {
    settings: EncodingSettings,
}

impl Rb2 {
    /// With encoding settings.
    pub fn new(settings: EncodingSettings) -> Self {
        Rb2 { settings }
    }
}

#[async_trait]
impl BlockFormat for Rb2 {
    fn name(&self) -> &'static str {
        FORMAT
    }

    async fn write(&self, store: &BlockStore, input: BlockInput<'_>) -> Result<BlockMeta> {
        let encoded = crate::cpu::run_heavy(|| encode(&input, &self.settings))
            .map_err(|e| Error::Internal(format!("rb2 encode: {e}")))?;
        let (tenant, id) = (input.tenant, input.block_id);
        let meta = BlockMeta {
            format: FORMAT.into(),
            block_id: id,
            tenant_id: tenant.to_owned(),
            start_time: meta::rfc3339(encoded.start_ns),
            end_time: meta::rfc3339(encoded.end_ns),
            total_objects: encoded.traces,
            total_spans: encoded.spans,
            size: encoded.data.len() as u64,
            encoding: "zstd".into(),
            bloom_shards: encoded.blooms.len() as u32,
            compaction_level: 0,
        };
        put_block(store, &meta, vec![("data", encoded.data)], encoded.blooms).await?;
        Ok(meta)
    }

    fn builder(
        &self,
        tenant: &str,
        block_id: Uuid,
        spool: SpoolDir,
        hints: BuildHints,
    ) -> Result<Box<dyn BlockBuilder>> {
        let path = spool.file("data");
        let file = std::fs::File::create(&path).map_err(|source| Error::Spool {
            path: path.clone(),
            source,
        })?;
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        Ok(Box::new(Rb2Builder {
            tenant: tenant.to_owned(),
            block_id,
            encoder: Encoder::new(out, &self.settings, hints.start_ns, hints.traces),
            path,
            spool,
        }))
    }

    async fn open(&self, store: &BlockStore, meta: &BlockMeta) -> Result<Arc<dyn BlockReader>> {
        let (tenant, id) = (meta.tenant_id.as_str(), meta.block_id);
        let blooms = load_blooms(store, meta).await?;
        let fetcher = Fetcher::new(store.clone(), object_key(tenant, &id, "data"), meta.size);
        let footer = AssertUnwindSafe(fetcher.footer())
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(FetchError::Corrupt(format!(
                    "the parquet reader failed on damaged data: {}",
                    panic_message(panic.as_ref())
                )))
            });
        let footer = match footer {
            Ok(footer) => footer,
            Err(FetchError::Store(e)) => return Err(e),
            Err(FetchError::Corrupt(m)) => {
                return Ok(Arc::new(DamagedBlock {
                    tenant: tenant.to_owned(),
                    block_id: id.to_string(),
                    object: "data",
                    message: format!("parquet footer: {m}"),
                    blooms,
                }));
            }
        };
        Ok(Arc::new(Rb2Reader {
            store: store.clone(),
            tenant: tenant.to_owned(),
            id,
            size: meta.size,
            footer: Arc::new(footer),
            blooms,
        }))
    }
}

/// An rb2 block being written into its spool file.
struct Rb2Builder {
    tenant: String,
    block_id: Uuid,
    encoder: Encoder<std::io::BufWriter<std::fs::File>>,
    path: std::path::PathBuf,
    spool: SpoolDir,
}

impl BlockBuilder for Rb2Builder {
    fn push(&mut self, t: &TraceRecord<'_>) -> Result<()> {
        self.encoder
            .push(t.id, t.data)
            .map_err(|e| Error::Internal(format!("rb2 encode: {e}")))
    }

    fn finish(self: Box<Self>) -> Result<BuiltBlock> {
        let Rb2Builder {
            tenant,
            block_id,
            encoder,
            path,
            spool,
        } = *self;
        let (out, s) = encoder
            .finish()
            .map_err(|e| Error::Internal(format!("rb2 encode: {e}")))?;
        let spool_err = |source| Error::Spool {
            path: path.clone(),
            source,
        };
        let file = out.into_inner().map_err(|e| spool_err(e.into_error()))?;
        let size = file.metadata().map_err(spool_err)?.len();
        drop(file);
        let meta = BlockMeta {
            format: FORMAT.into(),
            block_id,
            tenant_id: tenant,
            start_time: meta::rfc3339(s.start_ns),
            end_time: meta::rfc3339(s.end_ns),
            total_objects: s.traces,
            total_spans: s.spans,
            size,
            encoding: "zstd".into(),
            bloom_shards: s.blooms.len() as u32,
            compaction_level: 0,
        };
        Ok(BuiltBlock {
            meta,
            objects: vec![("data", Object::File(path, size))],
            blooms: s.blooms,
            spool,
        })
    }
}

/// An opened rb2 block: footer and bloom shards cached.
pub struct Rb2Reader {
    store: BlockStore,
    tenant: String,
    id: Uuid,
    size: u64,
    footer: Arc<Footer>,
    blooms: Vec<Bloom>,
}

impl Rb2Reader {
    fn fetcher(&self) -> Fetcher {
        Fetcher::new(
            self.store.clone(),
            object_key(&self.tenant, &self.id, "data"),
            self.size,
        )
    }

    fn corrupt(&self, message: String) -> Error {
        crate::block::corrupt_data(&self.tenant, &self.id, message)
    }

    /// Run a read of this block; a panic inside the Parquet or Arrow decoder (they trust
    /// some lengths and offsets of damaged pages) becomes an error naming the block instead
    /// of taking the query's task down.
    async fn guarded<T>(&self, read: impl Future<Output = Result<T>>) -> Result<T> {
        match AssertUnwindSafe(read).catch_unwind().await {
            Ok(r) => r,
            Err(panic) => Err(self.corrupt(format!(
                "the parquet reader failed on damaged data: {}",
                panic_message(panic.as_ref())
            ))),
        }
    }

    fn fetch_err(&self, e: FetchError) -> Error {
        match e {
            FetchError::Store(e) => e,
            FetchError::Corrupt(m) => self.corrupt(m),
        }
    }

    /// Rows of row group `rg` that may hold `id`: from the page whose statistics contain it
    /// to the end of the next page that starts a trace (where the trace must have ended).
    fn candidate_rows(&self, rg: usize, id: &TraceId) -> (usize, usize) {
        let rows = self.footer.rows_in(rg);
        let leaf = self.footer.layout.leaf(schema::TRACE_ID);
        let index = self.footer.parquet().page_index_for_row_group(rg);
        let (Some(ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(ci)), Some(locs)) =
            (index.column_index(leaf), index.page_locations(leaf))
        else {
            return (0, rows);
        };
        let first_row = |p: usize| {
            locs.get(p)
                .map_or(rows, |l| (l.first_row_index.max(0) as usize).min(rows))
        };
        let pages = locs.len().min(ci.num_pages() as usize);
        let Some(p) = (0..pages).find(|&p| {
            !ci.is_null_page(p)
                && ci.min_value(p).is_some_and(|m| m <= id.as_slice())
                && ci.max_value(p).is_some_and(|m| m >= id.as_slice())
        }) else {
            return (0, 0);
        };
        let end = match (p + 1..pages).find(|&q| !ci.is_null_page(q)) {
            Some(q) => first_row(q + 1),
            None => rows,
        };
        (first_row(p), end)
    }

    async fn find_in_row_group(&self, rg: usize, id: &TraceId) -> Result<Option<Vec<u8>>> {
        let (from, to) = self.candidate_rows(rg, id);
        if from >= to {
            return Ok(None);
        }
        let select = |a: usize, b: usize| {
            RowGroupSelection::new(
                rg,
                Some(RowSelection::from(vec![
                    RowSelector::skip(a),
                    RowSelector::select(b - a),
                ])),
            )
        };
        let f = self.fetcher();
        let footer = &self.footer;
        // Phase 1: which rows are the trace's.
        let dec = footer
            .decoder_with_batch(
                footer.roots(&[schema::TRACE_ID]),
                vec![select(from, to)],
                to - from,
            )
            .map_err(|m| self.corrupt(m))?;
        let batches = f.drive(dec).await.map_err(|e| self.fetch_err(e))?;
        let mut offset = from;
        let mut found: Option<(usize, usize)> = None;
        for b in &batches {
            let ids: &arrow::array::FixedSizeBinaryArray =
                cols::get(b, schema::TRACE_ID).map_err(|m| self.corrupt(m))?;
            for r in 0..b.num_rows() {
                use arrow::array::Array;
                if !ids.is_valid(r) {
                    continue;
                }
                match &mut found {
                    None if ids.value(r) == id.as_slice() => found = Some((offset + r, to)),
                    Some((_, end)) if *end == to => *end = offset + r,
                    _ => {}
                }
            }
            offset += b.num_rows();
        }
        let Some((a, b)) = found else {
            return Ok(None);
        };
        // Phase 2: every column of those rows.
        let all = parquet::arrow::ProjectionMask::all();
        let batch = footer.batch_for(rg, &all, b - a);
        let dec = footer
            .decoder_with_batch(all, vec![select(a, b)], batch)
            .map_err(|m| self.corrupt(m))?;
        let batches = f.drive(dec).await.map_err(|e| self.fetch_err(e))?;
        let mut asm = read::Assembler::new(footer.base_ns, footer.dedicated.clone());
        for b in &batches {
            asm.push(b).map_err(|m| self.corrupt(m))?;
        }
        Ok(asm
            .finish()
            .into_iter()
            .find(|(t, _)| t == id)
            .map(|(_, bytes)| bytes))
    }
}

impl Rb2Reader {
    async fn lookup(&self, id: &TraceId) -> Result<Option<Vec<u8>>> {
        if !self.blooms.is_empty()
            && !self.blooms[bloom::shard_of(id, self.blooms.len() as u32)].may_contain(id)
        {
            return Ok(None);
        }
        let leaf = self.footer.layout.leaf(schema::TRACE_ID);
        for (rg, meta) in self.footer.parquet().row_groups().iter().enumerate() {
            let stats = meta.column(leaf).statistics();
            let (Some(min), Some(max)) = (
                stats.and_then(|s| s.min_bytes_opt()),
                stats.and_then(|s| s.max_bytes_opt()),
            ) else {
                continue;
            };
            if min <= id.as_slice()
                && id.as_slice() <= max
                && let Some(t) = self.find_in_row_group(rg, id).await?
            {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    async fn read_everything(&self) -> Result<Vec<(TraceId, Vec<u8>)>> {
        let f = self.fetcher();
        let whole = 0..self.size;
        let bytes = f
            .get_ranges(std::slice::from_ref(&whole))
            .await
            .map_err(|e| self.fetch_err(e))?;
        crate::cpu::run_heavy(|| {
            let footer = &self.footer;
            let all = (0..footer.parquet().num_row_groups())
                .map(|rg| RowGroupSelection::new(rg, None))
                .collect();
            // Moderate batches: the assembler carries traces across batch ends.
            let mut dec = footer
                .decoder_with_batch(parquet::arrow::ProjectionMask::all(), all, 16 * 1024)
                .map_err(|m| self.corrupt(m))?;
            dec.push_ranges(vec![whole], bytes)
                .map_err(|e| self.corrupt(e.to_string()))?;
            let mut asm = read::Assembler::new(footer.base_ns, footer.dedicated.clone());
            loop {
                match dec.try_decode().map_err(|e| self.corrupt(e.to_string()))? {
                    parquet::DecodeResult::Data(b) => asm.push(&b).map_err(|m| self.corrupt(m))?,
                    parquet::DecodeResult::Finished => break,
                    parquet::DecodeResult::NeedsData(r) => {
                        return Err(self.corrupt(format!("data ranges {r:?} past the object")));
                    }
                }
            }
            Ok(asm.finish())
        })
    }
}

#[async_trait]
impl BlockReader for Rb2Reader {
    async fn find_trace(&self, id: &TraceId) -> Result<Option<Vec<u8>>> {
        self.guarded(self.lookup(id)).await
    }

    async fn read_all(&self) -> Result<Vec<(TraceId, Vec<u8>)>> {
        self.guarded(self.read_everything()).await
    }

    fn cursor(&self) -> Option<Box<dyn TraceCursor>> {
        Some(Box::new(cursor::Rb2Cursor::new(
            self.fetcher(),
            self.footer.clone(),
            self.tenant.clone(),
            self.id,
        )))
    }

    async fn search(&self, plan: &SearchPlan) -> Result<SearchResult> {
        self.guarded(search::run(self, plan))
            .await
            .map_err(|e| name_block(e, &self.tenant, &self.id.to_string(), "data"))
    }

    async fn tags(&self, range_ns: Option<(u64, u64)>, filter: &Expr) -> Result<TagSummary> {
        tags_all(self, range_ns, filter)
            .await
            .map_err(|e| name_block(e, &self.tenant, &self.id.to_string(), "data"))
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}
