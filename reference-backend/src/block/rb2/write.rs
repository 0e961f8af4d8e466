//! Encoding a block: decode each trace, one row per span into arrow columns, Parquet out.

use std::collections::{HashMap, HashSet};

use arrow::datatypes::SchemaRef;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, TracesData};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::file::metadata::KeyValue as ParquetKv;
use prost::Message;
use tempo_api::trace_id::TraceId;

use super::builder::Columns;
use super::schema as s;
use crate::block::bloom::{self, Bloom};
use crate::block::{BlockInput, EncodingSettings};

/// Rows per record batch handed to the parquet writer (rounded up to a trace boundary).
const BATCH_ROWS: usize = 8192;
/// Most rows per data page: small pages keep a lookup's reads and decoding short.
const MAX_PAGE_ROWS: usize = 4096;

/// Rows per data page for a target page size: at most one row per 64 bytes, so the
/// default 256 KiB gives 4096-row pages and tiny test pages split often.
fn page_rows(page_size: usize) -> usize {
    (page_size / 64).clamp(8, MAX_PAGE_ROWS)
}

/// The encoded objects of one block.
pub struct EncodedBlock {
    /// The Parquet `data` object.
    pub data: Vec<u8>,
    /// `bloom-N` objects.
    pub blooms: Vec<Vec<u8>>,
    /// Traces written (traces without spans are dropped: they have nothing to store).
    pub traces: u64,
    /// Spans written.
    pub spans: u64,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
}

/// Encode a block (CPU heavy: call off the async runtime). `Err` says which trace failed.
pub fn encode(input: &BlockInput<'_>, settings: &EncodingSettings) -> Result<EncodedBlock, String> {
    let dedicated = &settings.dedicated_columns;
    let mut decoded: Vec<(TraceId, TracesData)> = input
        .traces
        .iter()
        .map(|t| {
            TracesData::decode(t.data)
                .map(|td| (t.id, td))
                .map_err(|e| {
                    format!(
                        "trace {} does not decode: {e}",
                        tempo_api::trace_id::trace_id_to_hex(&t.id)
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    // Lookups and bloom filters rely on id order; the input is sorted already.
    decoded.sort_by_key(|a| a.0);
    let sizes = decoded.iter().map(|(_, td)| td.encoded_len());
    let mut start_ns = u64::MAX;
    let mut end_ns = 0u64;
    for (_, td) in &decoded {
        for sp in spans_of(td) {
            start_ns = start_ns.min(sp.start_time_unix_nano);
            end_ns = end_ns.max(sp.end_time_unix_nano);
        }
    }
    let base_ns = if start_ns == u64::MAX { 0 } else { start_ns };
    let plain = plain_keys(&decoded);
    let kv = vec![
        ParquetKv::new(s::KV_MAGIC.to_owned(), s::MAGIC.to_owned()),
        ParquetKv::new(s::KV_VERSION.to_owned(), s::VERSION.to_owned()),
        ParquetKv::new(s::KV_BASE_NS.to_owned(), base_ns.to_string()),
        ParquetKv::new(
            s::KV_DEDICATED.to_owned(),
            serde_json::to_string(dedicated).unwrap_or_else(|_| "[]".into()),
        ),
        ParquetKv::new(s::KV_PLAIN_KEYS.to_owned(), {
            let mut keys: Vec<&String> = plain.iter().collect();
            keys.sort();
            serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into())
        }),
    ];
    let schema = s::arrow_schema(dedicated.len());
    let props = s::writer_properties(
        settings.zstd_level,
        page_rows(settings.page_size),
        settings.page_size,
        kv,
        dedicated.len(),
    );
    // The arrow schema is not embedded: readers know it from the dedicated column count.
    let options = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    let mut writer = ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options)
        .map_err(|e| format!("parquet writer: {e}"))?;
    let mut cols = Columns::new(dedicated.len(), plain);
    let mut ids = Vec::with_capacity(decoded.len());
    let mut spans = 0u64;
    // Input bytes of the rows not yet handed to the writer: batches stay well below a
    // row group, so row groups end close to their target size.
    let mut pending = 0usize;
    let batch_bytes = (settings.row_group_bytes / 4).max(1);
    for ((id, td), rec) in decoded.iter().zip(sizes) {
        let n = cols.push_trace(id, td, base_ns, dedicated);
        if n == 0 {
            continue;
        }
        ids.push(*id);
        spans += n as u64;
        pending += rec;
        if cols.rows >= BATCH_ROWS || pending >= batch_bytes {
            pending = 0;
            write_batch(&mut writer, &mut cols, &schema)?;
            if writer.in_progress_size() >= settings.row_group_bytes {
                writer.flush().map_err(|e| format!("parquet flush: {e}"))?;
            }
        }
    }
    if cols.rows > 0 {
        write_batch(&mut writer, &mut cols, &schema)?;
    }
    let data = writer
        .into_inner()
        .map_err(|e| format!("parquet close: {e}"))?;
    let blooms = bloom::build_shards(&ids, settings.bloom_fp, settings.bloom_shard_bytes)
        .iter()
        .map(Bloom::to_bytes)
        .collect();
    Ok(EncodedBlock {
        data,
        blooms,
        traces: ids.len() as u64,
        spans,
        start_ns: base_ns,
        end_ns,
    })
}

fn write_batch(
    writer: &mut ArrowWriter<Vec<u8>>,
    cols: &mut Columns,
    schema: &SchemaRef,
) -> Result<(), String> {
    let batch = cols.finish(schema)?;
    writer
        .write(&batch)
        .map_err(|e| format!("parquet write: {e}"))
}

/// A key with more distinct string values than this (or more bytes of them) keeps its
/// strings in the plain column: a dictionary of them would be large to read for a lookup
/// and slow to rebuild for a search.
const DICT_MAX_VALUES: usize = 1024;
/// See [`DICT_MAX_VALUES`].
const DICT_MAX_BYTES: usize = 64 * 1024;

/// Span attribute keys whose string values are too varied for a dictionary.
fn plain_keys(traces: &[(TraceId, TracesData)]) -> HashSet<String> {
    let mut seen: HashMap<&str, (HashSet<&str>, usize)> = HashMap::new();
    let mut plain: HashSet<String> = HashSet::new();
    for (_, td) in traces {
        for sp in spans_of(td) {
            for kv in &sp.attributes {
                let Some(any_value::Value::StringValue(v)) =
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
                else {
                    continue;
                };
                if plain.contains(&kv.key) {
                    continue;
                }
                let (values, bytes) = seen.entry(&kv.key).or_default();
                if values.insert(v) {
                    *bytes += v.len();
                    if values.len() > DICT_MAX_VALUES || *bytes > DICT_MAX_BYTES {
                        plain.insert(kv.key.clone());
                        seen.remove(kv.key.as_str());
                    }
                }
            }
        }
    }
    plain
}

/// Every span of a decoded trace, in order.
pub fn spans_of(td: &TracesData) -> impl Iterator<Item = &Span> {
    td.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
}

/// The string `service.name` of a resource, if it has one.
pub fn service_name(rs: &ResourceSpans) -> Option<&str> {
    let kv = rs
        .resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")?;
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(v) => Some(v),
        _ => None,
    }
}
