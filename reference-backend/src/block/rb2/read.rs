//! Rebuilding traces (encoded `TracesData`) from rows of every column.

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use prost::Message;
use tempo_api::trace_id::TraceId;

use super::cols::{All, Attrs};
use super::schema::{GROUP_KIND, GROUP_NEW_RESOURCE, GROUP_NEW_SCOPE, PARENT_NONE};

/// How a span's parent id is stored.
enum ParentRef {
    /// Already known (no parent, an unresolved id, or an odd span).
    Bytes(Vec<u8>),
    /// The span id of the trace's span at this index.
    Index(usize),
}

struct Row {
    span: Span,
    parent: ParentRef,
    group: u8,
    /// Resource entry, on rows that start one.
    res: Option<ResourceSpans>,
    /// Scope entry, on rows that start one.
    scope: Option<ScopeSpans>,
}

/// Collects rows batch by batch and emits one encoded trace per trace id, in row order.
pub struct Assembler {
    base_ns: u64,
    dedicated: Vec<String>,
    current: Option<(TraceId, u64, Vec<Row>)>,
    out: Vec<(TraceId, Vec<u8>)>,
}

impl Assembler {
    /// For a block whose trace starts are relative to `base_ns`.
    pub fn new(base_ns: u64, dedicated: Vec<String>) -> Self {
        Assembler {
            base_ns,
            dedicated,
            current: None,
            out: Vec::new(),
        }
    }

    /// Add every row of `batch` (all columns read). Rows before the first trace start
    /// (a selection that begins mid-trace) are an error.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), String> {
        let c = All::of(batch, self.dedicated.len())?;
        let mut res_cache: Vec<Option<ResourceSpans>> = vec![None; c.res.values.len()];
        let mut scope_cache: Vec<Option<ScopeSpans>> = vec![None; c.scope.values.len()];
        for row in 0..batch.num_rows() {
            if c.trace_id.is_valid(row) {
                self.flush();
                let mut id = [0u8; 16];
                id.copy_from_slice(c.trace_id.value(row));
                let start = self.base_ns.wrapping_add(c.trace_start.value(row));
                self.current = Some((id, start, Vec::new()));
            }
            let Some((id, t_start, rows)) = self.current.as_mut() else {
                return Err("rows before the first trace start".into());
            };
            let group = c.group.value(row) & GROUP_KIND;
            let res = if group >= GROUP_NEW_RESOURCE || rows.is_empty() {
                Some(cached(
                    &mut res_cache,
                    c.res.keys,
                    row,
                    c.res.values,
                    "res",
                )?)
            } else {
                None
            };
            let scope = if group >= GROUP_NEW_SCOPE || rows.is_empty() {
                Some(cached(
                    &mut scope_cache,
                    c.scope.keys,
                    row,
                    c.scope.values,
                    "scope",
                )?)
            } else {
                None
            };
            let (span, parent) = span_of(&c, row, id, *t_start, &self.dedicated)?;
            rows.push(Row {
                span,
                parent,
                group,
                res,
                scope,
            });
        }
        Ok(())
    }

    /// The traces completed so far (every one but the trace still being assembled), in
    /// row order, handed over.
    pub fn take_done(&mut self) -> Vec<(TraceId, Vec<u8>)> {
        std::mem::take(&mut self.out)
    }

    /// Every trace assembled, in row order.
    pub fn finish(mut self) -> Vec<(TraceId, Vec<u8>)> {
        self.flush();
        self.out
    }

    fn flush(&mut self) {
        let Some((id, _, rows)) = self.current.take() else {
            return;
        };
        let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.span.span_id.clone()).collect();
        let mut td = TracesData::default();
        for mut r in rows {
            r.span.parent_span_id = match r.parent {
                ParentRef::Bytes(b) => b,
                ParentRef::Index(i) => ids.get(i).cloned().unwrap_or_default(),
            };
            if let Some(res) = r
                .res
                .filter(|_| r.group >= GROUP_NEW_RESOURCE || td.resource_spans.is_empty())
            {
                td.resource_spans.push(res);
            }
            let Some(rs) = td.resource_spans.last_mut() else {
                continue;
            };
            if let Some(scope) = r.scope
                && (r.group >= GROUP_NEW_SCOPE || rs.scope_spans.is_empty())
            {
                rs.scope_spans.push(scope);
            }
            if let Some(ss) = rs.scope_spans.last_mut() {
                ss.spans.push(r.span);
            }
        }
        self.out.push((id, td.encode_to_vec()));
    }
}

fn cached<T: Message + Default + Clone>(
    cache: &mut [Option<T>],
    keys: &arrow::array::Int32Array,
    row: usize,
    values: &arrow::array::BinaryArray,
    what: &str,
) -> Result<T, String> {
    let k = keys.value(row) as usize;
    let slot = cache
        .get_mut(k)
        .ok_or_else(|| format!("{what} dictionary key {k} out of range"))?;
    if slot.is_none() {
        let v = T::decode(values.value(k)).map_err(|e| format!("{what} does not decode: {e}"))?;
        *slot = Some(v);
    }
    slot.clone().ok_or_else(|| format!("{what} cache"))
}

fn span_of(
    c: &All<'_>,
    row: usize,
    id: &TraceId,
    t_start: u64,
    keys: &[String],
) -> Result<(Span, ParentRef), String> {
    let start = t_start.wrapping_add(c.start.value(row));
    let mut span = Span {
        trace_id: id.to_vec(),
        start_time_unix_nano: start,
        end_time_unix_nano: start.wrapping_add(c.duration.value(row)),
        name: c.name.get(row).unwrap_or_default().to_owned(),
        kind: c.kind.value(row),
        trace_state: c.trace_state.get(row).unwrap_or_default().to_owned(),
        flags: c.flags.value(row),
        dropped_attributes_count: c.dropped_attrs.value(row),
        dropped_events_count: c.dropped_events.value(row),
        dropped_links_count: c.dropped_links.value(row),
        ..Default::default()
    };
    if c.status_code.is_valid(row) {
        span.status = Some(Status {
            code: c.status_code.value(row),
            message: c.status_message.get(row).unwrap_or_default().to_owned(),
        });
    }
    let parent = if c.odd.is_valid(row) {
        let ids = Span::decode(c.odd.value(row)).map_err(|e| format!("odd ids: {e}"))?;
        span.trace_id = ids.trace_id;
        span.span_id = ids.span_id;
        span.end_time_unix_nano = ids.end_time_unix_nano;
        ParentRef::Bytes(ids.parent_span_id)
    } else {
        span.span_id = c.span_id.value(row).to_vec();
        if c.parent.is_valid(row) {
            match c.parent.value(row) {
                PARENT_NONE => ParentRef::Bytes(Vec::new()),
                i => ParentRef::Index(usize::try_from(i).map_err(|_| "bad parent index")?),
            }
        } else {
            ParentRef::Bytes(c.parent_id.value(row).to_vec())
        }
    };
    if c.events.is_valid(row) {
        let holder = Span::decode(c.events.value(row)).map_err(|e| format!("events: {e}"))?;
        span.events = holder.events;
        for e in &mut span.events {
            e.time_unix_nano = e.time_unix_nano.wrapping_add(start);
        }
    }
    if c.links.is_valid(row) {
        let holder = Span::decode(c.links.value(row)).map_err(|e| format!("links: {e}"))?;
        span.links = holder.links;
    }
    span.attributes = attributes(&c.attrs, &c.ded, keys, row)?;
    Ok((span, parent))
}

type Ded<'a> = (
    super::cols::DictStr<'a>,
    &'a arrow::array::Int64Array,
    &'a arrow::array::UInt32Array,
);

fn attributes(
    a: &Attrs<'_>,
    ded: &[Ded<'_>],
    keys: &[String],
    row: usize,
) -> Result<Vec<KeyValue>, String> {
    let range = a.range(row);
    let mut out = Vec::with_capacity(range.len() + ded.len());
    let (Some(_), Some(i), Some(d), Some(b), Some(raw)) = (a.p, a.i, a.d, a.b, a.raw) else {
        return Err("attrs columns were not read".into());
    };
    for e in range {
        let (key, string) = a.key_and_string(e)?;
        let value = if let Some(v) = string {
            any_value::Value::StringValue(v.to_owned())
        } else if i.is_valid(e) {
            any_value::Value::IntValue(i.value(e))
        } else if d.is_valid(e) {
            any_value::Value::DoubleValue(d.value(e))
        } else if b.is_valid(e) {
            any_value::Value::BoolValue(b.value(e))
        } else if raw.is_valid(e) {
            out.push(KeyValue::decode(raw.value(e)).map_err(|e| format!("attribute: {e}"))?);
            continue;
        } else {
            return Err("attribute without a value".into());
        };
        out.push(KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }
    let mut placed: Vec<(usize, KeyValue)> = Vec::new();
    for ((ds, di, dp), name) in ded.iter().zip(keys) {
        if !dp.is_valid(row) {
            continue;
        }
        let value = match ds.get(row) {
            Some(v) => any_value::Value::StringValue(v.to_owned()),
            None => any_value::Value::IntValue(di.value(row)),
        };
        placed.push((
            dp.value(row) as usize,
            KeyValue {
                key: name.clone(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            },
        ));
    }
    placed.sort_by_key(|(p, _)| *p);
    for (p, kv) in placed {
        if p > out.len() {
            return Err(format!("dedicated attribute position {p} past the list"));
        }
        out.insert(p, kv);
    }
    Ok(out)
}
