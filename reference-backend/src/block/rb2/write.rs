//! Encoding a block: decode each trace, one row per span into arrow columns, Parquet out,
//! a trace at a time ([`Encoder`]).

use std::collections::{HashMap, HashSet};
use std::io::Write;

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
use crate::block::build::BloomBuilder;
use crate::block::{BlockInput, EncodingSettings, TraceRecord};

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

/// Trace bytes held back at the start of a block to choose the plain keys (see
/// [`plain_keys`]) before the first row is written; a block smaller than this chooses from
/// every trace.
pub const SAMPLE_BYTES: usize = 8 * 1024 * 1024;

/// Encode a block held in memory (CPU heavy: call off the async runtime). `Err` says
/// which trace failed.
pub fn encode(input: &BlockInput<'_>, settings: &EncodingSettings) -> Result<EncodedBlock, String> {
    // The records' summaries may be rough; rows store times relative to the exact start.
    let mut base = u64::MAX;
    for t in input.traces {
        let td = decode(&t.id, t.data)?;
        base = base.min(
            spans_of(&td)
                .map(|s| s.start_time_unix_nano)
                .min()
                .unwrap_or(u64::MAX),
        );
    }
    let base = if base == u64::MAX { 0 } else { base };
    let mut sorted: Vec<&TraceRecord<'_>> = input.traces.iter().collect();
    // Lookups and bloom filters rely on id order; the input is sorted already.
    sorted.sort_by_key(|t| t.id);
    let mut enc = Encoder::new(Vec::new(), settings, base, input.traces.len());
    for t in sorted {
        enc.push(t.id, t.data)?;
    }
    let (data, s) = enc.finish()?;
    Ok(EncodedBlock {
        data,
        blooms: s.blooms,
        traces: s.traces,
        spans: s.spans,
        start_ns: s.start_ns,
        end_ns: s.end_ns,
    })
}

fn decode(id: &TraceId, data: &[u8]) -> Result<TracesData, String> {
    TracesData::decode(data).map_err(|e| {
        format!(
            "trace {} does not decode: {e}",
            tempo_api::trace_id::trace_id_to_hex(id)
        )
    })
}

/// What an [`Encoder`] wrote besides the data object.
pub struct Summary {
    /// `bloom-N` objects.
    pub blooms: Vec<Vec<u8>>,
    /// Traces written (traces without spans are dropped).
    pub traces: u64,
    /// Spans written.
    pub spans: u64,
    /// Earliest span start (unix ns; 0 when empty).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
}

/// Writes the Parquet data object of a block into `W` a trace at a time: memory holds
/// the row group being written and the first [`SAMPLE_BYTES`] of traces, never the block.
pub struct Encoder<W: Write + Send> {
    dedicated: Vec<String>,
    zstd_level: i32,
    page_size: usize,
    row_group_bytes: usize,
    base_ns: u64,
    out: Option<W>,
    writer: Option<ArrowWriter<W>>,
    schema: SchemaRef,
    cols: Option<Columns>,
    /// Traces held back until the plain keys are chosen.
    sample: Vec<(TraceId, Vec<u8>)>,
    sample_bytes: usize,
    blooms: BloomBuilder,
    last: Option<TraceId>,
    spans: u64,
    start_ns: u64,
    end_ns: u64,
    /// Input bytes of the rows not yet handed to the writer.
    pending: usize,
}

impl<W: Write + Send> Encoder<W> {
    /// An encoder writing into `out`. No span pushed may start before `base_ns`;
    /// `expected_traces` sizes the bloom filter.
    pub fn new(out: W, settings: &EncodingSettings, base_ns: u64, expected_traces: usize) -> Self {
        let dedicated = settings.dedicated_columns.clone();
        Encoder {
            schema: s::arrow_schema(dedicated.len()),
            dedicated,
            zstd_level: settings.zstd_level,
            page_size: settings.page_size,
            row_group_bytes: settings.row_group_bytes,
            base_ns,
            out: Some(out),
            writer: None,
            cols: None,
            sample: Vec::new(),
            sample_bytes: 0,
            blooms: BloomBuilder::new(
                expected_traces,
                settings.bloom_fp,
                settings.bloom_shard_bytes,
            ),
            last: None,
            spans: 0,
            start_ns: u64::MAX,
            end_ns: 0,
            pending: 0,
        }
    }

    /// Add the next trace; ids must be strictly ascending.
    pub fn push(&mut self, id: TraceId, data: &[u8]) -> Result<(), String> {
        if self.last.is_some_and(|l| l >= id) {
            return Err(format!(
                "trace {} is out of order",
                tempo_api::trace_id::trace_id_to_hex(&id)
            ));
        }
        self.last = Some(id);
        if self.writer.is_some() {
            return self.encode_trace(id, data);
        }
        self.sample.push((id, data.to_vec()));
        self.sample_bytes += data.len();
        if self.sample_bytes >= SAMPLE_BYTES {
            self.start()?;
        }
        Ok(())
    }

    /// Choose the plain keys from the sample, open the writer and write the sample.
    fn start(&mut self) -> Result<(), String> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let sample = std::mem::take(&mut self.sample);
        let decoded: Vec<(TraceId, TracesData)> = sample
            .iter()
            .map(|(id, b)| decode(id, b).map(|td| (*id, td)))
            .collect::<Result<_, _>>()?;
        let plain = plain_keys(&decoded);
        let kv = vec![
            ParquetKv::new(s::KV_MAGIC.to_owned(), s::MAGIC.to_owned()),
            ParquetKv::new(s::KV_VERSION.to_owned(), s::VERSION.to_owned()),
            ParquetKv::new(s::KV_BASE_NS.to_owned(), self.base_ns.to_string()),
            ParquetKv::new(
                s::KV_DEDICATED.to_owned(),
                serde_json::to_string(&self.dedicated).unwrap_or_else(|_| "[]".into()),
            ),
            ParquetKv::new(s::KV_PLAIN_KEYS.to_owned(), {
                let mut keys: Vec<&String> = plain.iter().collect();
                keys.sort();
                serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into())
            }),
        ];
        let props = s::writer_properties(
            self.zstd_level,
            page_rows(self.page_size),
            self.page_size,
            kv,
            self.dedicated.len(),
        );
        // The arrow schema is not embedded: readers know it from the dedicated column count.
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true);
        self.writer = Some(
            ArrowWriter::try_new_with_options(out, self.schema.clone(), options)
                .map_err(|e| format!("parquet writer: {e}"))?,
        );
        self.cols = Some(Columns::new(self.dedicated.len(), plain));
        for ((id, td), (_, bytes)) in decoded.iter().zip(&sample) {
            self.add_rows(id, td, bytes.len())?;
        }
        Ok(())
    }

    fn encode_trace(&mut self, id: TraceId, data: &[u8]) -> Result<(), String> {
        let td = decode(&id, data)?;
        self.add_rows(&id, &td, data.len())
    }

    fn add_rows(&mut self, id: &TraceId, td: &TracesData, len: usize) -> Result<(), String> {
        let (Some(writer), Some(cols)) = (self.writer.as_mut(), self.cols.as_mut()) else {
            return Err("parquet writer not open".into());
        };
        let mut start = u64::MAX;
        for sp in spans_of(td) {
            start = start.min(sp.start_time_unix_nano);
            self.end_ns = self.end_ns.max(sp.end_time_unix_nano);
        }
        if start < self.base_ns {
            return Err(format!(
                "trace {} starts before the block base {}",
                tempo_api::trace_id::trace_id_to_hex(id),
                self.base_ns
            ));
        }
        let n = cols.push_trace(id, td, self.base_ns, &self.dedicated);
        if n == 0 {
            return Ok(());
        }
        self.start_ns = self.start_ns.min(start);
        self.blooms.insert(id);
        self.spans += n as u64;
        self.pending += len;
        // Batches stay well below a row group, so row groups end close to their target.
        if cols.rows >= BATCH_ROWS || self.pending >= (self.row_group_bytes / 4).max(1) {
            self.pending = 0;
            write_batch(writer, cols, &self.schema)?;
            if writer.in_progress_size() >= self.row_group_bytes {
                writer.flush().map_err(|e| format!("parquet flush: {e}"))?;
            }
        }
        Ok(())
    }

    /// Write what is left and close the object.
    pub fn finish(mut self) -> Result<(W, Summary), String> {
        self.start()?;
        let (Some(mut writer), Some(mut cols)) = (self.writer.take(), self.cols.take()) else {
            return Err("parquet writer not open".into());
        };
        if cols.rows > 0 {
            write_batch(&mut writer, &mut cols, &self.schema)?;
        }
        let out = writer
            .into_inner()
            .map_err(|e| format!("parquet close: {e}"))?;
        let traces = self.blooms.count() as u64;
        Ok((
            out,
            Summary {
                blooms: self.blooms.finish(),
                traces,
                spans: self.spans,
                start_ns: if self.start_ns == u64::MAX {
                    0
                } else {
                    self.start_ns
                },
                end_ns: self.end_ns,
            },
        ))
    }
}

fn write_batch<W: Write + Send>(
    writer: &mut ArrowWriter<W>,
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
