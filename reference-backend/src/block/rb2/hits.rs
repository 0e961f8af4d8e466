//! Search results of one row group: for the chosen traces, every row's trace id, root
//! facts, start, span id, service and status (to pick the matched spans and count spans
//! per service), then the result columns of the `spss` matched spans that start first
//! (ties: lower span id) — the spans the generic evaluator reports.

use arrow::array::{Array, FixedSizeBinaryArray, Int32Array, Int64Array, UInt8Array, UInt64Array};
use arrow::buffer::BooleanBuffer;
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, status};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::push_decoder::RowGroupSelection;
use prost::Message;
use tempo_api::trace_id::TraceId;

use super::Rb2Reader;
use super::cols::{self, Attrs};
use super::eval::{Needs, dedicated_index, first, kv_value};
use super::fetch::{Fetcher, Footer};
use super::schema::{self as s, A_B, A_D, A_I, A_KV, A_P};
use super::search::Candidate;
use crate::error::Result;
use crate::search::ast::{Scope, ValueRef};
use crate::search::{HitValue, ServiceStats, SpanHit, TraceHit, count_span};

/// Rows read for results, with where each row landed in the batch.
struct Rows {
    batch: RecordBatch,
    /// Sorted rows of the selection (empty: the whole row group was read).
    rows: Vec<usize>,
}

impl Rows {
    fn at(&self, row: usize) -> Result<usize, String> {
        if self.rows.is_empty() {
            return (row < self.batch.num_rows())
                .then_some(row)
                .ok_or_else(|| "row outside the row group".into());
        }
        self.rows
            .binary_search(&row)
            .map_err(|_| format!("row {row} was not read"))
    }
}

/// Read `projection` for `rows` (sorted, unique) of row group `rg`: a row selection when
/// they are few, else the whole row group (many scattered selections decode slower).
async fn read_rows(
    r: &Rb2Reader,
    f: &Fetcher,
    rg: usize,
    projection: ProjectionMask,
    rows: Vec<usize>,
) -> Result<Rows> {
    let footer = &*r.footer;
    let total = footer.rows_in(rg);
    let dense = rows.len().saturating_mul(8) > total;
    let selection = (!dense)
        .then(|| RowSelection::from_consecutive_ranges(rows.iter().map(|&r| r..r + 1), total));
    let selected = if dense { total } else { rows.len() };
    let batch_rows = footer.batch_for(rg, &projection, selected);
    let dec = footer
        .decoder_with_batch(
            projection,
            vec![RowGroupSelection::new(rg, selection)],
            batch_rows,
        )
        .map_err(|m| r.corrupt(m))?;
    let batches = f.drive(dec).await.map_err(|e| r.fetch_err(e))?;
    let batch = match batches.len() {
        1 => batches.into_iter().next(),
        0 => None,
        _ => Some(
            arrow::compute::concat_batches(&batches[0].schema(), &batches)
                .map_err(|e| r.corrupt(e.to_string()))?,
        ),
    }
    .ok_or_else(|| r.corrupt("result rows decoded to nothing".into()))?;
    let rows = if dense { Vec::new() } else { rows };
    let want = if rows.is_empty() { total } else { rows.len() };
    if batch.num_rows() != want {
        return Err(r.corrupt(format!(
            "read {} result rows, wanted {want}",
            batch.num_rows()
        )));
    }
    Ok(Rows { batch, rows })
}

/// Build the hits of `cands` (all in row group `rg`; `mask`: its matching rows).
pub async fn build(
    r: &Rb2Reader,
    f: &Fetcher,
    rg: usize,
    cands: &[&Candidate],
    mask: &BooleanBuffer,
    spss: usize,
    referenced: &[(Scope, &str)],
) -> Result<Vec<TraceHit>> {
    let footer = &*r.footer;
    // 1. Every row of the chosen traces: pick each trace's earliest matched spans and
    //    count its spans per service.
    let matched_rows = |c: &Candidate| -> Vec<usize> {
        mask.slice(c.first_row, c.end_row - c.first_row)
            .set_indices()
            .map(|i| c.first_row + i)
            .collect()
    };
    let mut rows: Vec<usize> = cands.iter().flat_map(|c| c.first_row..c.end_row).collect();
    rows.sort_unstable();
    rows.dedup();
    let mut needs = Needs::default();
    for c in [
        s::TRACE_ID,
        s::ROOT_SERVICE,
        s::ROOT_NAME,
        s::START,
        s::SPAN_ID,
        s::ODD,
        s::GROUP,
        s::SERVICE,
        s::STATUS_CODE,
    ] {
        needs.col(c);
    }
    let first = read_rows(r, f, rg, needs.projection(footer), rows).await?;
    let picked: Vec<(Vec<usize>, ServiceStats)> = crate::cpu::run_heavy(|| {
        let b = &first.batch;
        let start: &UInt64Array = cols::get(b, s::START)?;
        let group: &UInt8Array = cols::get(b, s::GROUP)?;
        let service = cols::dict_str(b, s::SERVICE)?;
        let status: &Int32Array = cols::get(b, s::STATUS_CODE)?;
        let error = status::StatusCode::Error as i32;
        let ids = SpanIds::of(b)?;
        cands
            .iter()
            .map(|c| {
                let mut m: Vec<(u64, Vec<u8>, usize)> = matched_rows(c)
                    .into_iter()
                    .map(|row| {
                        let i = first.at(row)?;
                        Ok((start.value(i), ids.raw(i)?, row))
                    })
                    .collect::<Result<_, String>>()?;
                m.sort();
                let mut stats = ServiceStats::new();
                for row in c.first_row..c.end_row {
                    let i = first.at(row)?;
                    if group.value(i) & s::GROUP_DUP == 0 {
                        let is_error = status.is_valid(i) && status.value(i) == error;
                        count_span(&mut stats, service.get(i), is_error);
                    }
                }
                let chosen = m.into_iter().take(spss).map(|(_, _, row)| row).collect();
                Ok((chosen, stats))
            })
            .collect::<Result<_, String>>()
    })
    .map_err(|m| r.corrupt(m))?;
    // 2. The result columns of the chosen spans.
    let mut rows: Vec<usize> = picked.iter().flat_map(|(rows, _)| rows).copied().collect();
    rows.sort_unstable();
    let mut needs = Needs::default();
    for c in [s::NAME, s::START, s::DURATION, s::SPAN_ID, s::ODD] {
        needs.col(c);
    }
    for (scope, key) in referenced {
        if *scope != Scope::Span {
            needs.col(s::RES);
        }
        if *scope != Scope::Resource {
            if let Some(d) = dedicated_index(&footer.dedicated, key) {
                needs.col(&s::ded_s(d));
                needs.col(&s::ded_i(d));
            }
            for l in [A_KV, A_P, A_I, A_D, A_B] {
                needs.attr[l] = true;
            }
        }
    }
    let spans = read_rows(r, f, rg, needs.projection(footer), rows).await?;
    crate::cpu::run_heavy(|| {
        let head = &first.batch;
        let trace_id: &FixedSizeBinaryArray = cols::get(head, s::TRACE_ID)?;
        let root_service = cols::dict_str(head, s::ROOT_SERVICE)?;
        let root_name = cols::dict_str(head, s::ROOT_NAME)?;
        let view = HitView::of(&spans.batch, footer)?;
        cands
            .iter()
            .zip(picked)
            .map(|(c, (rows, service_stats))| {
                let i = first.at(c.first_row)?;
                let id: TraceId = trace_id
                    .value(i)
                    .try_into()
                    .map_err(|_| "trace id is not 16 bytes")?;
                Ok(TraceHit {
                    trace_id: id,
                    root_service_name: root_service.get(i).map(str::to_owned),
                    root_span_name: root_name.get(i).map(str::to_owned),
                    start_ns: c.start_ns,
                    duration_ns: c.duration_ns,
                    matched: c.matched,
                    spans: rows
                        .iter()
                        .map(|&row| view.span_hit(spans.at(row)?, c.start_ns, referenced))
                        .collect::<Result<_, String>>()?,
                    service_stats,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    })
    .map_err(|m| r.corrupt(m))
}

/// Span ids of read rows (from `span_id`, or `odd` for unusual ids).
struct SpanIds<'a> {
    span_id: &'a FixedSizeBinaryArray,
    odd: &'a arrow::array::BinaryArray,
}

impl<'a> SpanIds<'a> {
    fn of(b: &'a RecordBatch) -> Result<Self, String> {
        Ok(SpanIds {
            span_id: cols::get(b, s::SPAN_ID)?,
            odd: cols::get(b, s::ODD)?,
        })
    }

    /// The span id bytes as stored in OTLP.
    fn raw(&self, i: usize) -> Result<Vec<u8>, String> {
        if self.odd.is_valid(i) {
            let ids = Span::decode(self.odd.value(i)).map_err(|e| format!("odd ids: {e}"))?;
            return Ok(ids.span_id);
        }
        Ok(self.span_id.value(i).to_vec())
    }

    /// As results show it: 8 bytes, zeros when the stored id is not 8 bytes long.
    fn fixed(&self, i: usize) -> Result<[u8; 8], String> {
        Ok(self.raw(i)?.try_into().unwrap_or_default())
    }
}

/// The result columns of the selected rows.
struct HitView<'a> {
    ids: SpanIds<'a>,
    name: cols::DictStr<'a>,
    start: &'a UInt64Array,
    duration: &'a UInt64Array,
    res: Option<cols::DictBin<'a>>,
    attrs: Option<Attrs<'a>>,
    batch: &'a RecordBatch,
    dedicated: &'a [String],
}

impl<'a> HitView<'a> {
    fn of(batch: &'a RecordBatch, footer: &'a Footer) -> Result<Self, String> {
        Ok(HitView {
            ids: SpanIds::of(batch)?,
            name: cols::dict_str(batch, s::NAME)?,
            start: cols::get(batch, s::START)?,
            duration: cols::get(batch, s::DURATION)?,
            res: cols::dict_bin(batch, s::RES).ok(),
            attrs: Attrs::of(batch).ok(),
            batch,
            dedicated: &footer.dedicated,
        })
    }

    fn span_hit(
        &self,
        i: usize,
        trace_start: u64,
        referenced: &[(Scope, &str)],
    ) -> Result<SpanHit, String> {
        let span_id = self.ids.fixed(i)?;
        let mut attributes = Vec::new();
        for (scope, key) in referenced {
            let span_v = match scope {
                Scope::Resource => None,
                _ => self.span_value(i, key)?,
            };
            let v = match (scope, span_v) {
                (Scope::Span, v) | (Scope::Any, v @ Some(_)) => v,
                _ => self.resource_value(i, key)?,
            };
            if let Some(h) = v.and_then(hit_value) {
                attributes.push(((*key).to_owned(), h));
            }
        }
        Ok(SpanHit {
            span_id,
            name: self.name.get(i).unwrap_or_default().to_owned(),
            start_ns: trace_start.wrapping_add(self.start.value(i)),
            duration_ns: self.duration.value(i),
            attributes,
        })
    }

    /// The span's attribute `key` (`Some(Other)` when present with a value no condition
    /// compares).
    fn span_value(&self, i: usize, key: &str) -> Result<Option<OwnedValue>, String> {
        if let Some(d) = dedicated_index(self.dedicated, key) {
            let ds = cols::dict_str(self.batch, &s::ded_s(d))?;
            let di: &Int64Array = cols::get(self.batch, &s::ded_i(d))?;
            if let Some(v) = ds.get(i) {
                return Ok(Some(OwnedValue::Str(v.to_owned())));
            }
            if di.is_valid(i) {
                return Ok(Some(OwnedValue::Int(di.value(i))));
            }
        }
        let a = self.attrs.as_ref().ok_or("attrs were not read")?;
        let (Some(iv), Some(dv), Some(bv)) = (a.i, a.d, a.b) else {
            return Err("attrs children were not read".into());
        };
        let mut found = None;
        for e in a.range(i) {
            let (k, v) = a.key_and_string(e)?;
            if k == key {
                found = Some((e, v));
                break;
            }
        }
        let Some((e, string)) = found else {
            return Ok(None);
        };
        Ok(Some(if let Some(x) = string {
            OwnedValue::Str(x.to_owned())
        } else if iv.is_valid(e) {
            OwnedValue::Int(iv.value(e))
        } else if dv.is_valid(e) {
            OwnedValue::Float(dv.value(e))
        } else if bv.is_valid(e) {
            OwnedValue::Bool(bv.value(e))
        } else {
            OwnedValue::Other
        }))
    }

    fn resource_value(&self, i: usize, key: &str) -> Result<Option<OwnedValue>, String> {
        let res = self.res.as_ref().ok_or("res was not read")?;
        let Some(bytes) = res.get(i) else {
            return Ok(None);
        };
        let rs = ResourceSpans::decode(bytes).map_err(|e| format!("res does not decode: {e}"))?;
        let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        Ok(first(&attrs, key).map(|kv| OwnedValue::from(kv_value(kv))))
    }
}

/// An attribute value read for a result.
enum OwnedValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl From<ValueRef<'_>> for OwnedValue {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Str(s) => OwnedValue::Str(s.to_owned()),
            ValueRef::Int(i) => OwnedValue::Int(i),
            ValueRef::Float(f) => OwnedValue::Float(f),
            ValueRef::Bool(b) => OwnedValue::Bool(b),
            ValueRef::Duration(_) | ValueRef::Other => OwnedValue::Other,
        }
    }
}

fn hit_value(v: OwnedValue) -> Option<HitValue> {
    match v {
        OwnedValue::Str(s) => Some(HitValue::Str(s)),
        OwnedValue::Int(i) => Some(HitValue::Int(i)),
        OwnedValue::Float(f) => Some(HitValue::Float(f)),
        OwnedValue::Bool(b) => Some(HitValue::Bool(b)),
        OwnedValue::Other => None,
    }
}
