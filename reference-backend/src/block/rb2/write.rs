//! Encoding a block: decode each trace, one row per span into arrow columns, Parquet out.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BinaryDictionaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder,
    Float64Builder, Int32Builder, Int64Builder, ListArray, StringDictionaryBuilder, StructArray,
    UInt8Builder, UInt32Builder, UInt64Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{Int32Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue as ParquetKv;
use prost::Message;
use tempo_api::trace_id::TraceId;

use super::schema::{self as s, GROUP_NEW_RESOURCE, GROUP_NEW_SCOPE, GROUP_SAME, PARENT_NONE};
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
    let kv = vec![
        ParquetKv::new(s::KV_MAGIC.to_owned(), s::MAGIC.to_owned()),
        ParquetKv::new(s::KV_VERSION.to_owned(), s::VERSION.to_owned()),
        ParquetKv::new(s::KV_BASE_NS.to_owned(), base_ns.to_string()),
        ParquetKv::new(
            s::KV_DEDICATED.to_owned(),
            serde_json::to_string(dedicated).unwrap_or_else(|_| "[]".into()),
        ),
    ];
    let schema = s::arrow_schema(dedicated.len());
    let props = s::writer_properties(
        settings.zstd_level,
        page_rows(settings.page_size),
        settings.page_size,
        kv,
        dedicated.len(),
    );
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
        .map_err(|e| format!("parquet writer: {e}"))?;
    let mut cols = Columns::new(dedicated.len());
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

/// Column builders for a batch of rows.
struct Columns {
    rows: usize,
    trace_id: FixedSizeBinaryBuilder,
    trace_start: UInt64Builder,
    trace_duration: UInt64Builder,
    root_service: StringDictionaryBuilder<Int32Type>,
    root_name: StringDictionaryBuilder<Int32Type>,
    group: UInt8Builder,
    res: BinaryDictionaryBuilder<Int32Type>,
    scope: BinaryDictionaryBuilder<Int32Type>,
    service: StringDictionaryBuilder<Int32Type>,
    span_id: FixedSizeBinaryBuilder,
    parent: Int32Builder,
    parent_id: FixedSizeBinaryBuilder,
    odd: BinaryBuilder,
    name: StringDictionaryBuilder<Int32Type>,
    kind: Int32Builder,
    start: UInt64Builder,
    duration: UInt64Builder,
    status_code: Int32Builder,
    status_message: StringDictionaryBuilder<Int32Type>,
    trace_state: StringDictionaryBuilder<Int32Type>,
    flags: UInt32Builder,
    dropped_attrs: UInt32Builder,
    dropped_events: UInt32Builder,
    dropped_links: UInt32Builder,
    events: BinaryBuilder,
    links: BinaryBuilder,
    attr_offsets: Vec<i32>,
    a_key: StringDictionaryBuilder<Int32Type>,
    a_s: StringDictionaryBuilder<Int32Type>,
    a_i: Int64Builder,
    a_d: Float64Builder,
    a_b: BooleanBuilder,
    a_raw: BinaryBuilder,
    ded: Vec<(
        StringDictionaryBuilder<Int32Type>,
        Int64Builder,
        UInt32Builder,
    )>,
}

impl Columns {
    fn new(dedicated: usize) -> Self {
        Columns {
            rows: 0,
            trace_id: FixedSizeBinaryBuilder::new(16),
            trace_start: UInt64Builder::new(),
            trace_duration: UInt64Builder::new(),
            root_service: StringDictionaryBuilder::new(),
            root_name: StringDictionaryBuilder::new(),
            group: UInt8Builder::new(),
            res: BinaryDictionaryBuilder::new(),
            scope: BinaryDictionaryBuilder::new(),
            service: StringDictionaryBuilder::new(),
            span_id: FixedSizeBinaryBuilder::new(8),
            parent: Int32Builder::new(),
            parent_id: FixedSizeBinaryBuilder::new(8),
            odd: BinaryBuilder::new(),
            name: StringDictionaryBuilder::new(),
            kind: Int32Builder::new(),
            start: UInt64Builder::new(),
            duration: UInt64Builder::new(),
            status_code: Int32Builder::new(),
            status_message: StringDictionaryBuilder::new(),
            trace_state: StringDictionaryBuilder::new(),
            flags: UInt32Builder::new(),
            dropped_attrs: UInt32Builder::new(),
            dropped_events: UInt32Builder::new(),
            dropped_links: UInt32Builder::new(),
            events: BinaryBuilder::new(),
            links: BinaryBuilder::new(),
            attr_offsets: vec![0],
            a_key: StringDictionaryBuilder::new(),
            a_s: StringDictionaryBuilder::new(),
            a_i: Int64Builder::new(),
            a_d: Float64Builder::new(),
            a_b: BooleanBuilder::new(),
            a_raw: BinaryBuilder::new(),
            ded: (0..dedicated)
                .map(|_| {
                    (
                        StringDictionaryBuilder::new(),
                        Int64Builder::new(),
                        UInt32Builder::new(),
                    )
                })
                .collect(),
        }
    }

    /// Append the rows of one trace; returns its span count.
    fn push_trace(
        &mut self,
        id: &TraceId,
        td: &TracesData,
        base_ns: u64,
        dedicated: &[String],
    ) -> usize {
        // Spans with the index of their resource and scope entry.
        let mut spans: Vec<(&Span, usize, usize)> = Vec::new();
        let mut scope_no = 0usize;
        for (ri, rs) in td.resource_spans.iter().enumerate() {
            for ss in &rs.scope_spans {
                for sp in &ss.spans {
                    spans.push((sp, ri, scope_no));
                }
                scope_no += 1;
            }
        }
        if spans.is_empty() {
            return 0;
        }
        let t_start = spans
            .iter()
            .map(|(sp, _, _)| sp.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let t_end = spans
            .iter()
            .map(|(sp, _, _)| sp.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        let root = spans.iter().find(|(sp, _, _)| sp.parent_span_id.is_empty());
        let mut by_id: HashMap<&[u8], usize> = HashMap::with_capacity(spans.len());
        for (i, (sp, _, _)) in spans.iter().enumerate() {
            by_id.entry(sp.span_id.as_slice()).or_insert(i);
        }
        // Encoded resource and scope entries (without their children), once each.
        let res_bytes: Vec<(Vec<u8>, Option<&str>)> = td
            .resource_spans
            .iter()
            .map(|rs| {
                let head = ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: Vec::new(),
                    schema_url: rs.schema_url.clone(),
                };
                (head.encode_to_vec(), service_name(rs))
            })
            .collect();
        let scope_bytes: Vec<Vec<u8>> = td
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| {
                ScopeSpans {
                    scope: ss.scope.clone(),
                    spans: Vec::new(),
                    schema_url: ss.schema_url.clone(),
                }
                .encode_to_vec()
            })
            .collect();

        let mut prev: Option<(usize, usize)> = None;
        for (i, &(sp, ri, si)) in spans.iter().enumerate() {
            if i == 0 {
                self.trace_id.append_value(id).ok();
                self.trace_start.append_value(t_start.wrapping_sub(base_ns));
                self.trace_duration
                    .append_value(t_end.saturating_sub(t_start));
                match root {
                    Some((r, rri, _)) => {
                        match res_bytes[*rri].1 {
                            Some(svc) => self.root_service.append_value(svc),
                            None => self.root_service.append_null(),
                        }
                        self.root_name.append_value(&r.name);
                    }
                    None => {
                        self.root_service.append_null();
                        self.root_name.append_null();
                    }
                }
            } else {
                self.trace_id.append_null();
                self.trace_start.append_null();
                self.trace_duration.append_null();
                self.root_service.append_null();
                self.root_name.append_null();
            }
            self.group.append_value(match prev {
                None => GROUP_NEW_RESOURCE,
                Some((pr, _)) if pr != ri => GROUP_NEW_RESOURCE,
                Some((_, ps)) if ps != si => GROUP_NEW_SCOPE,
                _ => GROUP_SAME,
            });
            prev = Some((ri, si));
            self.res.append_value(&res_bytes[ri].0);
            self.scope.append_value(&scope_bytes[si]);
            match res_bytes[ri].1 {
                Some(svc) => self.service.append_value(svc),
                None => self.service.append_null(),
            }
            self.push_span(id, sp, t_start, &by_id, dedicated);
            self.rows += 1;
        }
        spans.len()
    }

    fn push_span(
        &mut self,
        id: &TraceId,
        sp: &Span,
        t_start: u64,
        by_id: &HashMap<&[u8], usize>,
        dedicated: &[String],
    ) {
        let parent = if sp.parent_span_id.is_empty() {
            Some(PARENT_NONE)
        } else {
            by_id
                .get(sp.parent_span_id.as_slice())
                .and_then(|&i| i32::try_from(i).ok())
        };
        let odd = sp.trace_id.as_slice() != id.as_slice()
            || sp.span_id.len() != 8
            || (parent.is_none() && sp.parent_span_id.len() != 8)
            || sp.end_time_unix_nano < sp.start_time_unix_nano;
        if odd {
            let ids = Span {
                trace_id: sp.trace_id.clone(),
                span_id: sp.span_id.clone(),
                parent_span_id: sp.parent_span_id.clone(),
                end_time_unix_nano: sp.end_time_unix_nano,
                ..Default::default()
            };
            self.odd.append_value(ids.encode_to_vec());
            self.span_id.append_null();
            self.parent.append_null();
            self.parent_id.append_null();
        } else {
            self.odd.append_null();
            self.span_id.append_value(&sp.span_id).ok();
            match parent {
                Some(p) => {
                    self.parent.append_value(p);
                    self.parent_id.append_null();
                }
                None => {
                    self.parent.append_null();
                    self.parent_id.append_value(&sp.parent_span_id).ok();
                }
            }
        }
        self.name.append_value(&sp.name);
        self.kind.append_value(sp.kind);
        self.start
            .append_value(sp.start_time_unix_nano.wrapping_sub(t_start));
        self.duration.append_value(
            sp.end_time_unix_nano
                .saturating_sub(sp.start_time_unix_nano),
        );
        match &sp.status {
            Some(st) => {
                self.status_code.append_value(st.code);
                self.status_message.append_value(&st.message);
            }
            None => {
                self.status_code.append_null();
                self.status_message.append_null();
            }
        }
        self.trace_state.append_value(&sp.trace_state);
        self.flags.append_value(sp.flags);
        self.dropped_attrs.append_value(sp.dropped_attributes_count);
        self.dropped_events.append_value(sp.dropped_events_count);
        self.dropped_links.append_value(sp.dropped_links_count);
        if sp.events.is_empty() {
            self.events.append_null();
        } else {
            let mut events = sp.events.clone();
            for e in &mut events {
                e.time_unix_nano = e.time_unix_nano.wrapping_sub(sp.start_time_unix_nano);
            }
            let holder = Span {
                events,
                ..Default::default()
            };
            self.events.append_value(holder.encode_to_vec());
        }
        if sp.links.is_empty() {
            self.links.append_null();
        } else {
            let holder = Span {
                links: sp.links.clone(),
                ..Default::default()
            };
            self.links.append_value(holder.encode_to_vec());
        }
        self.push_attributes(&sp.attributes, dedicated);
    }

    fn push_attributes(&mut self, attrs: &[KeyValue], dedicated: &[String]) {
        let mut taken: Vec<usize> = Vec::new();
        for (n, key) in dedicated.iter().enumerate() {
            let (ded_s, ded_i, ded_pos) = &mut self.ded[n];
            let found = attrs
                .iter()
                .position(|kv| kv.key == *key)
                .filter(|&p| attrs[p].key_strindex == 0)
                .and_then(|p| {
                    let v = attrs[p].value.as_ref()?.value.as_ref()?;
                    match v {
                        any_value::Value::StringValue(x) => Some((p, Some(x.as_str()), None)),
                        any_value::Value::IntValue(x) => Some((p, None, Some(*x))),
                        _ => None,
                    }
                });
            match found {
                Some((p, sv, iv)) => {
                    taken.push(p);
                    match sv {
                        Some(x) => ded_s.append_value(x),
                        None => ded_s.append_null(),
                    }
                    ded_i.append_option(iv);
                    ded_pos.append_value(p as u32);
                }
                None => {
                    ded_s.append_null();
                    ded_i.append_null();
                    ded_pos.append_null();
                }
            }
        }
        let mut count = 0i32;
        for (p, kv) in attrs.iter().enumerate() {
            if taken.contains(&p) {
                continue;
            }
            count += 1;
            self.a_key.append_value(&kv.key);
            let simple = if kv.key_strindex == 0 {
                kv.value.as_ref().and_then(|v| v.value.as_ref())
            } else {
                None
            };
            let (mut sv, mut iv, mut dv, mut bv) = (None, None, None, None);
            match simple {
                Some(any_value::Value::StringValue(x)) => sv = Some(x.as_str()),
                Some(any_value::Value::IntValue(x)) => iv = Some(*x),
                Some(any_value::Value::DoubleValue(x)) => dv = Some(*x),
                Some(any_value::Value::BoolValue(x)) => bv = Some(*x),
                _ => {}
            }
            let raw = sv.is_none() && iv.is_none() && dv.is_none() && bv.is_none();
            match sv {
                Some(x) => self.a_s.append_value(x),
                None => self.a_s.append_null(),
            }
            self.a_i.append_option(iv);
            self.a_d.append_option(dv);
            self.a_b.append_option(bv);
            if raw {
                self.a_raw.append_value(kv.encode_to_vec());
            } else {
                self.a_raw.append_null();
            }
        }
        let last = self.attr_offsets.last().copied().unwrap_or(0);
        self.attr_offsets.push(last + count);
    }

    /// Take the built rows as a record batch (the builders are reset).
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, String> {
        let offsets = std::mem::replace(&mut self.attr_offsets, vec![0]);
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.a_key.finish()),
            Arc::new(self.a_s.finish()),
            Arc::new(self.a_i.finish()),
            Arc::new(self.a_d.finish()),
            Arc::new(self.a_b.finish()),
            Arc::new(self.a_raw.finish()),
        ];
        let elements = StructArray::try_new(s::attr_fields(), children, None)
            .map_err(|e| format!("attrs: {e}"))?;
        let attrs = ListArray::try_new(
            s::attr_item(),
            OffsetBuffer::new(offsets.into()),
            Arc::new(elements),
            None,
        )
        .map_err(|e| format!("attrs: {e}"))?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.trace_start.finish()),
            Arc::new(self.trace_duration.finish()),
            Arc::new(self.root_service.finish()),
            Arc::new(self.root_name.finish()),
            Arc::new(self.group.finish()),
            Arc::new(self.res.finish()),
            Arc::new(self.scope.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.parent_id.finish()),
            Arc::new(self.odd.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.dropped_attrs.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.dropped_links.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.links.finish()),
            Arc::new(attrs),
        ];
        for (ds, di, dp) in &mut self.ded {
            columns.push(Arc::new(ds.finish()));
            columns.push(Arc::new(di.finish()));
            columns.push(Arc::new(dp.finish()));
        }
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| format!("record batch: {e}"))
    }
}
