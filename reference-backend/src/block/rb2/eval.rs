//! Vectorised evaluation of a search expression over one row group's columns.
//!
//! Every condition becomes a bit mask over the rows (spans). Dictionary columns are
//! evaluated once per dictionary value and then mapped through the keys; resources once
//! per distinct resource; trace-level fields once per trace and spread over its rows.
//! Semantics are those of `search::ast` (a missing attribute never matches, `.x` reads the
//! span attribute if the span has it, else the resource's).

use std::collections::BTreeSet;

use arrow::array::{Array, BooleanBufferBuilder, Int32Array, UInt64Array};
use arrow::buffer::BooleanBuffer;
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use parquet::arrow::ProjectionMask;
use prost::Message;

use super::cols::{self, Attrs, DictStr};
use super::fetch::Footer;
use super::schema::{self as s, A_B, A_D, A_I, A_KEY, A_S};
use crate::search::ast::{Cond, Expr, Field, Intrinsic, Scope, Static, ValueRef};

/// Columns an evaluation reads: top-level names and `attrs` children.
#[derive(Debug, Default, Clone)]
pub struct Needs {
    /// Top-level columns.
    pub cols: BTreeSet<String>,
    /// `attrs` children by [`s::ATTR_FIELDS`] index.
    pub attr: [bool; 6],
}

impl Needs {
    /// Add a top-level column.
    pub fn col(&mut self, name: &str) {
        self.cols.insert(name.to_owned());
    }

    /// Projection reading exactly these columns.
    pub fn projection(&self, f: &Footer) -> ProjectionMask {
        let mut leaves: Vec<usize> = self.cols.iter().map(|c| f.layout.leaf(c)).collect();
        for (i, on) in self.attr.iter().enumerate() {
            if *on {
                leaves.push(f.layout.attr_leaves[i]);
            }
        }
        f.leaves(leaves)
    }
}

/// Which typed `attrs` children can hold a value comparable with `lit`.
fn value_leaves(lit: &Static) -> &'static [usize] {
    match lit {
        Static::Str(_) => &[A_S],
        Static::Bool(_) => &[A_B],
        Static::Int(_) | Static::Float(_) | Static::Duration(_) => &[A_I, A_D],
        Static::Status(_) | Static::Kind(_) => &[A_I],
    }
}

/// Position of `key` among the dedicated columns.
pub fn dedicated_index(dedicated: &[String], key: &str) -> Option<usize> {
    dedicated.iter().position(|k| k == key)
}

/// Columns needed to evaluate `expr`.
pub fn needs(expr: &Expr, dedicated: &[String]) -> Needs {
    let mut n = Needs::default();
    for c in expr.conditions() {
        match &c.field {
            Field::Intrinsic(i) => n.col(intrinsic_column(*i)),
            Field::Attr { scope, key } => {
                if *scope != Scope::Span {
                    n.col(s::RES);
                }
                if *scope == Scope::Resource {
                    continue;
                }
                let ded = dedicated_index(dedicated, key);
                if let Some(d) = ded {
                    n.col(&s::ded_s(d));
                    n.col(&s::ded_i(d));
                }
                // A dedicated string condition on the span scope is decided by the
                // dedicated column alone; anything else may fall back to the list.
                let ded_only =
                    ded.is_some() && *scope == Scope::Span && matches!(c.value, Static::Str(_));
                if !ded_only {
                    n.attr[A_KEY] = true;
                    for &l in value_leaves(&c.value) {
                        n.attr[l] = true;
                    }
                }
            }
        }
    }
    n
}

fn intrinsic_column(i: Intrinsic) -> &'static str {
    match i {
        Intrinsic::Name => s::NAME,
        Intrinsic::Status => s::STATUS_CODE,
        Intrinsic::Kind => s::KIND,
        Intrinsic::Duration => s::DURATION,
        Intrinsic::RootServiceName => s::ROOT_SERVICE,
        Intrinsic::RootName => s::ROOT_NAME,
        Intrinsic::TraceDuration => s::TRACE_DURATION,
    }
}

/// One row group's columns, with its traces' first rows.
pub struct Batch<'a> {
    /// The decoded columns.
    pub batch: &'a RecordBatch,
    /// First row of each trace, ascending; the first is 0.
    pub starts: &'a [usize],
    /// Dedicated attribute keys.
    pub dedicated: &'a [String],
}

impl Batch<'_> {
    fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Spread one value per trace over the trace's rows.
    fn spread(&self, per_trace: impl Fn(usize) -> bool) -> BooleanBuffer {
        let rows = self.rows();
        let mut b = BooleanBufferBuilder::new(rows);
        for (t, &start) in self.starts.iter().enumerate() {
            let end = self.starts.get(t + 1).copied().unwrap_or(rows);
            b.append_n(end - start, per_trace(start));
        }
        b.finish()
    }
}

/// Evaluate `expr` for every row.
pub fn eval(expr: &Expr, b: &Batch<'_>) -> Result<BooleanBuffer, String> {
    match expr {
        Expr::All => Ok(BooleanBuffer::new_set(b.rows())),
        Expr::Cond(c) => cond(c, b),
        Expr::And(x, y) => {
            let l = eval(x, b)?;
            if l.count_set_bits() == 0 {
                return Ok(l);
            }
            Ok(&l & &eval(y, b)?)
        }
        Expr::Or(x, y) => Ok(&eval(x, b)? | &eval(y, b)?),
    }
}

/// Per dictionary value: does the condition hold for it?
fn dict_lut(d: &DictStr<'_>, c: &Cond) -> Vec<bool> {
    (0..d.values.len())
        .map(|k| c.matches(Some(ValueRef::Str(d.values.value(k)))))
        .collect()
}

/// Rows of a dictionary string column whose value satisfies `c` (null never does).
fn dict_mask(d: &DictStr<'_>, c: &Cond) -> BooleanBuffer {
    let lut = dict_lut(d, c);
    let keys = d.keys.values();
    match d.keys.nulls() {
        None => BooleanBuffer::collect_bool(keys.len(), |i| {
            lut.get(keys[i] as usize).copied().unwrap_or(false)
        }),
        Some(nulls) => BooleanBuffer::collect_bool(keys.len(), |i| {
            nulls.is_valid(i) && lut.get(keys[i] as usize).copied().unwrap_or(false)
        }),
    }
}

fn small_int_mask(a: &Int32Array, c: &Cond) -> BooleanBuffer {
    // Status codes and kinds: a handful of values; unset status reads as 0.
    let lut: Vec<bool> = (0..8).map(|v| c.matches(Some(ValueRef::Int(v)))).collect();
    let vals = a.values();
    let one = |v: i32| match usize::try_from(v).ok().and_then(|u| lut.get(u)) {
        Some(m) => *m,
        None => c.matches(Some(ValueRef::Int(i64::from(v)))),
    };
    match a.nulls() {
        None => BooleanBuffer::collect_bool(vals.len(), |i| one(vals[i])),
        Some(n) => BooleanBuffer::collect_bool(vals.len(), |i| {
            one(if n.is_valid(i) { vals[i] } else { 0 })
        }),
    }
}

fn cond(c: &Cond, b: &Batch<'_>) -> Result<BooleanBuffer, String> {
    let batch = b.batch;
    match &c.field {
        Field::Intrinsic(Intrinsic::Name) => Ok(dict_mask(&cols::dict_str(batch, s::NAME)?, c)),
        Field::Intrinsic(Intrinsic::Status) => {
            Ok(small_int_mask(cols::get(batch, s::STATUS_CODE)?, c))
        }
        Field::Intrinsic(Intrinsic::Kind) => Ok(small_int_mask(cols::get(batch, s::KIND)?, c)),
        Field::Intrinsic(Intrinsic::Duration) => {
            let d: &UInt64Array = cols::get(batch, s::DURATION)?;
            let v = d.values();
            Ok(BooleanBuffer::collect_bool(v.len(), |i| {
                c.matches(Some(ValueRef::Duration(v[i])))
            }))
        }
        Field::Intrinsic(Intrinsic::TraceDuration) => {
            let d: &UInt64Array = cols::get(batch, s::TRACE_DURATION)?;
            Ok(
                b.spread(|row| {
                    d.is_valid(row) && c.matches(Some(ValueRef::Duration(d.value(row))))
                }),
            )
        }
        Field::Intrinsic(i @ (Intrinsic::RootServiceName | Intrinsic::RootName)) => {
            let d = cols::dict_str(batch, intrinsic_column(*i))?;
            let lut = dict_lut(&d, c);
            Ok(b.spread(|row| {
                d.keys.is_valid(row)
                    && lut
                        .get(d.keys.value(row) as usize)
                        .copied()
                        .unwrap_or(false)
            }))
        }
        Field::Attr { scope, key } => attr(c, *scope, key, b),
    }
}

fn attr(c: &Cond, scope: Scope, key: &str, b: &Batch<'_>) -> Result<BooleanBuffer, String> {
    let rows = b.rows();
    let resource = || -> Result<BooleanBuffer, String> {
        let res = cols::dict_bin(b.batch, s::RES)?;
        let mut lut = Vec::with_capacity(res.values.len());
        for k in 0..res.values.len() {
            let rs = ResourceSpans::decode(res.values.value(k))
                .map_err(|e| format!("res does not decode: {e}"))?;
            let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
            lut.push(c.matches(first(&attrs, key).map(kv_value)));
        }
        let keys = res.keys.values();
        Ok(BooleanBuffer::collect_bool(rows, |i| {
            lut.get(keys[i] as usize).copied().unwrap_or(false)
        }))
    };
    if scope == Scope::Resource {
        return resource();
    }
    let (has, matched) = span_attr(c, key, b)?;
    if scope == Scope::Span {
        return Ok(matched);
    }
    let has = has.ok_or("span attribute presence was not computed")?;
    let res = resource()?;
    Ok(&(&has & &matched) | &(&!&has & &res))
}

/// The value of an attribute as conditions see it.
pub fn kv_value(kv: &KeyValue) -> ValueRef<'_> {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => ValueRef::Str(s),
        Some(any_value::Value::IntValue(i)) => ValueRef::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => ValueRef::Float(*d),
        Some(any_value::Value::BoolValue(b)) => ValueRef::Bool(*b),
        _ => ValueRef::Other,
    }
}

/// The first attribute named `key`.
pub fn first<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

/// Span attribute `key`: (rows that have it — only for `.x` —, rows where `c` holds).
fn span_attr(
    c: &Cond,
    key: &str,
    b: &Batch<'_>,
) -> Result<(Option<BooleanBuffer>, BooleanBuffer), String> {
    let rows = b.rows();
    let ded = match dedicated_index(b.dedicated, key) {
        Some(d) => Some((
            cols::dict_str(b.batch, &s::ded_s(d))?,
            cols::get::<arrow::array::Int64Array>(b.batch, &s::ded_i(d))?,
        )),
        None => None,
    };
    let want_has = matches!(
        &c.field,
        Field::Attr {
            scope: Scope::Any,
            ..
        }
    );
    if let (Some((ds, _)), false, Static::Str(_)) = (&ded, want_has, &c.value) {
        return Ok((None, dict_mask(ds, c)));
    }
    let a = Attrs::of(b.batch)?;
    let key_d = a.key.ok_or("attrs.key was not read")?;
    let key_lut: Vec<bool> = (0..key_d.values.len())
        .map(|k| key_d.values.value(k) == key)
        .collect();
    let s_lut = a.s.map(|d| dict_lut(&d, c));
    let key_idx = key_d.keys.values();
    // Value of list element `e` for the condition (only the children the literal can
    // match were read; any other type cannot match).
    let element = |e: usize| -> bool {
        if let (Some(sd), Some(lut)) = (&a.s, &s_lut)
            && sd.keys.is_valid(e)
        {
            return lut.get(sd.keys.value(e) as usize).copied().unwrap_or(false);
        }
        if let Some(i) = a.i.filter(|i| i.is_valid(e)) {
            return c.matches(Some(ValueRef::Int(i.value(e))));
        }
        if let Some(d) = a.d.filter(|d| d.is_valid(e)) {
            return c.matches(Some(ValueRef::Float(d.value(e))));
        }
        if let Some(bv) = a.b.filter(|bv| bv.is_valid(e)) {
            return c.matches(Some(ValueRef::Bool(bv.value(e))));
        }
        false
    };
    let offsets = a.list.value_offsets();
    let mut has = want_has.then(|| BooleanBufferBuilder::new(rows));
    let mut out = BooleanBufferBuilder::new(rows);
    for row in 0..rows {
        if let Some((ds, di)) = &ded
            && (ds.keys.is_valid(row) || di.is_valid(row))
        {
            let v = match ds.get(row) {
                Some(x) => ValueRef::Str(x),
                None => ValueRef::Int(di.value(row)),
            };
            out.append(c.matches(Some(v)));
            if let Some(h) = &mut has {
                h.append(true);
            }
            continue;
        }
        let (lo, hi) = (offsets[row] as usize, offsets[row + 1] as usize);
        let found = (lo..hi).find(|&e| key_lut.get(key_idx[e] as usize).copied().unwrap_or(false));
        out.append(found.is_some_and(element));
        if let Some(h) = &mut has {
            h.append(found.is_some());
        }
    }
    Ok((has.map(|mut h| h.finish()), out.finish()))
}
