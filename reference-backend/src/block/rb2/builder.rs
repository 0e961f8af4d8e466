//! Column builders: one trace at a time into one row per span.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BinaryDictionaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder,
    Float64Builder, Int32Builder, Int64Builder, ListArray, StringBuilder, StringDictionaryBuilder,
    StructArray, UInt8Builder, UInt32Builder, UInt64Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{Int32Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use tempo_api::trace_id::TraceId;

use super::schema::{
    self as s, GROUP_NEW_RESOURCE, GROUP_NEW_SCOPE, GROUP_NEW_TRACE, GROUP_SAME, PARENT_NONE,
};
use super::write::service_name;

/// Column builders for a batch of rows.
pub struct Columns {
    /// Rows built and not yet taken.
    pub rows: usize,
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
    a_kv: BinaryDictionaryBuilder<Int32Type>,
    /// Scratch for one `kv` entry.
    kv_buf: Vec<u8>,
    a_p: StringBuilder,
    /// Keys whose string values go to `a_p`.
    plain: HashSet<String>,
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
    /// Empty builders for a block with `dedicated` attribute columns, strings of the
    /// `plain` keys in the plain string column.
    pub fn new(dedicated: usize, plain: HashSet<String>) -> Self {
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
            a_kv: BinaryDictionaryBuilder::new(),
            kv_buf: Vec::new(),
            a_p: StringBuilder::new(),
            plain,
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
    pub fn push_trace(
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
        // A span id seen before in the trace is a duplicate (a retried export): searches
        // ignore it, so trace times and the root come from first copies only.
        let mut by_id: HashMap<&[u8], usize> = HashMap::with_capacity(spans.len());
        let dup: Vec<bool> = spans
            .iter()
            .enumerate()
            .map(|(i, (sp, _, _))| *by_id.entry(sp.span_id.as_slice()).or_insert(i) != i)
            .collect();
        let firsts = || spans.iter().zip(&dup).filter(|(_, d)| !**d).map(|(s, _)| s);
        let t_start = firsts()
            .map(|(sp, _, _)| sp.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let t_end = firsts()
            .map(|(sp, _, _)| sp.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        let root = firsts().find(|(sp, _, _)| sp.parent_span_id.is_empty());
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
                // Wrapping: the end is exact even when it is before the start.
                self.trace_duration
                    .append_value(t_end.wrapping_sub(t_start));
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
            let group = match prev {
                None => GROUP_NEW_TRACE,
                Some((pr, _)) if pr != ri => GROUP_NEW_RESOURCE,
                Some((_, ps)) if ps != si => GROUP_NEW_SCOPE,
                _ => GROUP_SAME,
            };
            self.group
                .append_value(if dup[i] { group | s::GROUP_DUP } else { group });
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
            self.kv_buf.clear();
            self.kv_buf.extend_from_slice(kv.key.as_bytes());
            match sv {
                Some(x) if self.plain.contains(&kv.key) => self.a_p.append_value(x),
                Some(x) => {
                    self.kv_buf.push(s::KV_SEP);
                    self.kv_buf.extend_from_slice(x.as_bytes());
                    self.a_p.append_null();
                }
                None => self.a_p.append_null(),
            }
            self.a_kv.append_value(&self.kv_buf);
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
    pub fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, String> {
        let offsets = std::mem::replace(&mut self.attr_offsets, vec![0]);
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.a_kv.finish()),
            Arc::new(self.a_p.finish()),
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
