//! Columnar search of one rb2 block.
//!
//! Per row group, in trace-id order: skip it when its statistics rule the plan out (time
//! range, trace duration, equality on dictionary columns the expression requires); else
//! read only the columns the expression needs, evaluate it to a span mask (`eval`), keep
//! traces with a matching span that pass the trace filters, and read the columns results
//! show for just those traces' first rows and first `spss` matched spans. Stops once
//! `limit` traces are found, so the answer is the first `limit` matching traces by id —
//! what an evaluator walking the block's traces in order returns.

use std::collections::HashMap;

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, UInt64Array};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use parquet::arrow::arrow_reader::RowSelection;
use parquet::arrow::push_decoder::RowGroupSelection;
use parquet::file::statistics::Statistics;
use prost::Message;
use tempo_api::trace_id::TraceId;

use super::Rb2Reader;
use super::cols::{self, Attrs};
use super::eval::{self, Batch, Needs, dedicated_index, first, kv_value};
use super::fetch::{FetchError, Fetcher, Footer};
use super::schema::{self as s, A_B, A_D, A_I, A_KEY, A_S};
use crate::error::Result;
use crate::search::ast::{Cond, Expr, Field, Intrinsic, Op, Scope, Static, ValueRef};
use crate::search::{HitValue, SearchPlan, SearchResult, SpanHit, TraceHit};

/// A trace that matched, before its result columns are read.
struct Candidate {
    id: TraceId,
    first_row: usize,
    start_ns: u64,
    duration_ns: u64,
    matched: u32,
    /// Up to `spss` matched rows.
    rows: Vec<usize>,
}

/// Search `r` for `plan`.
pub async fn run(r: &Rb2Reader, plan: &SearchPlan) -> Result<SearchResult> {
    let footer = &*r.footer;
    let f = r.fetcher();
    let mut needs = eval::needs(&plan.filter, &footer.dedicated);
    for c in [s::TRACE_ID, s::TRACE_START, s::TRACE_DURATION] {
        needs.col(c);
    }
    let projection = needs.projection(footer);
    let required = required(&plan.filter);
    let referenced = referenced(&plan.filter);
    let mut out = SearchResult::default();
    for rg in 0..footer.parquet().num_row_groups() {
        if out.traces.len() >= plan.limit {
            break;
        }
        if pruned(footer, rg, plan, &required) {
            continue;
        }
        let ranges = Fetcher::chunk_ranges(footer, rg, &projection);
        let bytes = f.get_ranges(&ranges).await.map_err(|e| r.fetch_err(e))?;
        let (cands, traces, spans) = crate::cpu::run_heavy(|| {
            let mut dec =
                footer.decoder(projection.clone(), vec![RowGroupSelection::new(rg, None)])?;
            dec.push_ranges(ranges, bytes).map_err(|e| e.to_string())?;
            let batch = decode_all(dec)?;
            filter(&batch, footer, plan)
        })
        .map_err(|m| r.corrupt(m))?;
        out.inspected_traces += traces;
        out.inspected_spans += spans;
        let take = cands.len().min(plan.limit - out.traces.len());
        if take > 0 {
            let hits = hits(r, &f, rg, &cands[..take], &referenced).await?;
            out.traces.extend(hits);
        }
    }
    out.inspected_bytes = f.fetched();
    Ok(out)
}

fn decode_all(
    mut dec: parquet::arrow::push_decoder::ParquetPushDecoder,
) -> Result<RecordBatch, String> {
    let mut batches = Vec::new();
    loop {
        match dec.try_decode().map_err(|e| e.to_string())? {
            parquet::DecodeResult::Data(b) => batches.push(b),
            parquet::DecodeResult::Finished => break,
            parquet::DecodeResult::NeedsData(r) => {
                return Err(format!("column chunk ranges {r:?} were not fetched"));
            }
        }
    }
    match batches.len() {
        1 => Ok(batches.remove(0)),
        0 => Err("row group decoded to nothing".into()),
        _ => {
            let schema = batches[0].schema();
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())
        }
    }
}

/// Evaluate the filter over a row group; (matching traces, traces, spans) inspected.
fn filter(
    batch: &RecordBatch,
    footer: &Footer,
    plan: &SearchPlan,
) -> Result<(Vec<Candidate>, u64, u64), String> {
    let ids: &FixedSizeBinaryArray = cols::get(batch, s::TRACE_ID)?;
    let t_start: &UInt64Array = cols::get(batch, s::TRACE_START)?;
    let t_dur: &UInt64Array = cols::get(batch, s::TRACE_DURATION)?;
    let rows = batch.num_rows();
    let starts: Vec<usize> = match ids.nulls() {
        Some(n) => n.valid_indices().collect(),
        None => (0..rows).collect(),
    };
    if rows > 0 && starts.first() != Some(&0) {
        return Err("row group does not start with a trace".into());
    }
    let mask = eval::eval(
        &plan.filter,
        &Batch {
            batch,
            starts: &starts,
            dedicated: &footer.dedicated,
        },
    )?;
    let mut cands = Vec::new();
    for (t, &a) in starts.iter().enumerate() {
        let b = starts.get(t + 1).copied().unwrap_or(rows);
        let start_ns = footer.base_ns.wrapping_add(t_start.value(a));
        let duration_ns = t_dur.value(a);
        let end_ns = start_ns.saturating_add(duration_ns);
        if plan.end_ns.is_some_and(|e| start_ns > e)
            || plan.start_ns.is_some_and(|s| end_ns < s)
            || plan.min_duration_ns.is_some_and(|m| duration_ns < m)
            || plan.max_duration_ns.is_some_and(|m| duration_ns > m)
        {
            continue;
        }
        let span_mask = mask.slice(a, b - a);
        let matched = span_mask.count_set_bits();
        if matched == 0 {
            continue;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(ids.value(a));
        cands.push(Candidate {
            id,
            first_row: a,
            start_ns,
            duration_ns,
            matched: matched as u32,
            rows: span_mask
                .set_indices()
                .take(plan.spans_per_spanset)
                .map(|i| a + i)
                .collect(),
        });
    }
    Ok((cands, starts.len() as u64, rows as u64))
}

/// Conditions every matching span must satisfy (those under `&&` only).
fn required(expr: &Expr) -> Vec<&Cond> {
    match expr {
        Expr::All | Expr::Or(..) => Vec::new(),
        Expr::Cond(c) => vec![c],
        Expr::And(a, b) => {
            let mut v = required(a);
            v.extend(required(b));
            v
        }
    }
}

/// Attributes results show, by scope and key, first reference of each key only.
fn referenced(expr: &Expr) -> Vec<(Scope, String)> {
    let mut out: Vec<(Scope, String)> = Vec::new();
    for c in expr.conditions() {
        if let Field::Attr { scope, key } = &c.field
            && !out.iter().any(|(_, k)| k == key)
        {
            out.push((*scope, key.clone()));
        }
    }
    out
}

fn u64_stats(st: Option<&Statistics>) -> Option<(u64, u64)> {
    let st = st?;
    let le = |b: &[u8]| -> Option<u64> { Some(u64::from_le_bytes(b.try_into().ok()?)) };
    Some((le(st.min_bytes_opt()?)?, le(st.max_bytes_opt()?)?))
}

/// Can row group `rg` hold no match? Only from statistics; never wrong, sometimes unsure.
fn pruned(footer: &Footer, rg: usize, plan: &SearchPlan, required: &[&Cond]) -> bool {
    let Some(meta) = footer.parquet().row_groups().get(rg) else {
        return true;
    };
    let stats = |name: &str| meta.column(footer.layout.leaf(name)).statistics();
    let (Some((min_s, max_s)), Some((min_d, max_d))) = (
        u64_stats(stats(s::TRACE_START)),
        u64_stats(stats(s::TRACE_DURATION)),
    ) else {
        return false;
    };
    let base = footer.base_ns;
    if plan.end_ns.is_some_and(|e| base.wrapping_add(min_s) > e)
        || plan
            .start_ns
            .is_some_and(|st| base.wrapping_add(max_s).saturating_add(max_d) < st)
        || plan.min_duration_ns.is_some_and(|m| max_d < m)
        || plan.max_duration_ns.is_some_and(|m| min_d > m)
    {
        return true;
    }
    for c in required {
        let (Op::Eq, Static::Str(lit)) = (c.op, &c.value) else {
            continue;
        };
        let column = match &c.field {
            Field::Intrinsic(Intrinsic::Name) => s::NAME.to_owned(),
            Field::Intrinsic(Intrinsic::RootServiceName) => s::ROOT_SERVICE.to_owned(),
            Field::Intrinsic(Intrinsic::RootName) => s::ROOT_NAME.to_owned(),
            Field::Attr {
                scope: Scope::Resource,
                key,
            } if key == "service.name" => s::SERVICE.to_owned(),
            Field::Attr {
                scope: Scope::Span,
                key,
            } => match dedicated_index(&footer.dedicated, key) {
                Some(d) => s::ded_s(d),
                None => continue,
            },
            _ => continue,
        };
        let Some(st) = stats(&column) else {
            continue;
        };
        match (st.min_bytes_opt(), st.max_bytes_opt()) {
            (Some(min), Some(max)) => {
                if lit.as_bytes() < min || lit.as_bytes() > max {
                    return true;
                }
            }
            _ => {
                if st.null_count_opt() == Some(meta.num_rows() as u64) {
                    return true;
                }
            }
        }
    }
    false
}

/// Read the result columns for `cands` (rows of row group `rg`) and build their hits.
async fn hits(
    r: &Rb2Reader,
    f: &Fetcher,
    rg: usize,
    cands: &[Candidate],
    referenced: &[(Scope, String)],
) -> Result<Vec<TraceHit>> {
    let footer = &*r.footer;
    let mut rows: Vec<usize> = cands
        .iter()
        .flat_map(|c| std::iter::once(c.first_row).chain(c.rows.iter().copied()))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    let mut needs = Needs::default();
    for c in [
        s::ROOT_SERVICE,
        s::ROOT_NAME,
        s::SPAN_ID,
        s::ODD,
        s::NAME,
        s::START,
        s::DURATION,
    ] {
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
            for l in [A_KEY, A_S, A_I, A_D, A_B] {
                needs.attr[l] = true;
            }
        }
    }
    let selection =
        RowSelection::from_consecutive_ranges(rows.iter().map(|&r| r..r + 1), footer.rows_in(rg));
    let dec = footer
        .decoder(
            needs.projection(footer),
            vec![RowGroupSelection::new(rg, Some(selection))],
        )
        .map_err(|m| r.corrupt(m))?;
    let batches = f.drive(dec).await.map_err(|e: FetchError| r.fetch_err(e))?;
    crate::cpu::run_heavy(|| {
        let batch = match batches.len() {
            1 => batches.into_iter().next().ok_or("no batch")?,
            _ => {
                let schema = footer.meta.schema().clone();
                let projected = batches.first().map_or(schema, |b| b.schema());
                arrow::compute::concat_batches(&projected, &batches).map_err(|e| e.to_string())?
            }
        };
        if batch.num_rows() != rows.len() {
            return Err(format!(
                "read {} result rows, wanted {}",
                batch.num_rows(),
                rows.len()
            ));
        }
        let pos: HashMap<usize, usize> = rows.iter().enumerate().map(|(i, &r)| (r, i)).collect();
        let view = HitView::of(&batch, footer)?;
        cands
            .iter()
            .map(|c| {
                let at = |row: usize| pos.get(&row).copied().ok_or("row not read");
                let first = at(c.first_row)?;
                Ok(TraceHit {
                    trace_id: c.id,
                    root_service_name: view.root_service.get(first).map(str::to_owned),
                    root_span_name: view.root_name.get(first).map(str::to_owned),
                    start_ns: c.start_ns,
                    duration_ns: c.duration_ns,
                    matched: c.matched,
                    spans: c
                        .rows
                        .iter()
                        .map(|&row| view.span_hit(at(row)?, c.start_ns, referenced))
                        .collect::<Result<_, String>>()?,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    })
    .map_err(|m| r.corrupt(m))
}

/// The result columns of the selected rows.
struct HitView<'a> {
    root_service: cols::DictStr<'a>,
    root_name: cols::DictStr<'a>,
    span_id: &'a FixedSizeBinaryArray,
    odd: &'a arrow::array::BinaryArray,
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
            root_service: cols::dict_str(batch, s::ROOT_SERVICE)?,
            root_name: cols::dict_str(batch, s::ROOT_NAME)?,
            span_id: cols::get(batch, s::SPAN_ID)?,
            odd: cols::get(batch, s::ODD)?,
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
        referenced: &[(Scope, String)],
    ) -> Result<SpanHit, String> {
        let mut span_id = [0u8; 8];
        if self.odd.is_valid(i) {
            let ids = Span::decode(self.odd.value(i)).map_err(|e| format!("odd ids: {e}"))?;
            if ids.span_id.len() == 8 {
                span_id.copy_from_slice(&ids.span_id);
            }
        } else {
            span_id.copy_from_slice(self.span_id.value(i));
        }
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
                attributes.push((key.clone(), h));
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
        let (Some(k), Some(sv), Some(iv), Some(dv), Some(bv)) = (a.key, a.s, a.i, a.d, a.b) else {
            return Err("attrs children were not read".into());
        };
        let Some(e) = a.range(i).find(|&e| k.get(e) == Some(key)) else {
            return Ok(None);
        };
        Ok(Some(if let Some(x) = sv.get(e) {
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
