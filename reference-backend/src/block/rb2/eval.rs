//! Vectorised evaluation of a search expression over one row group's columns.
//!
//! Every condition becomes a bit mask over the rows (spans). Dictionary columns are
//! evaluated once per dictionary value and then mapped through the keys; resources once
//! per distinct resource; trace-level fields once per trace and spread over its rows.
//! Semantics are those of `search::ast` (a missing attribute never matches, `.x` reads the
//! span attribute if the span has it, else the resource's).

use std::collections::{BTreeSet, HashSet};

use arrow::array::{Array, BooleanBufferBuilder, Int32Array, UInt64Array};
use arrow::buffer::BooleanBuffer;
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use parquet::arrow::ProjectionMask;
use prost::Message;

use super::cols::{self, Attrs, DictStr};
use super::fetch::Footer;
use super::kvscan::{self, ChunkAt};
use super::schema::{self as s, A_B, A_D, A_I, A_KV, A_P};
use crate::search::ast::{Cond, Expr, Field, Intrinsic, Scope, Static, ValueRef};
use parquet::file::metadata::ColumnChunkMetaData;

/// Columns an evaluation reads: top-level names and `attrs` children.
#[derive(Debug, Default, Clone)]
pub struct Needs {
    /// Top-level columns.
    pub cols: BTreeSet<String>,
    /// `attrs` children by [`s::ATTR_FIELDS`] index (decoded through arrow).
    pub attr: [bool; s::ATTR_CHILDREN],
    /// Every attribute condition can use the `attrs.kv` fast path (`kvscan`): the raw
    /// `kv` column chunk is wanted instead of arrow `attrs` arrays.
    pub kv_raw: bool,
}

impl Needs {
    /// Add a top-level column.
    pub fn col(&mut self, name: &str) {
        self.cols.insert(name.to_owned());
    }

    /// Projection reading exactly these columns.
    pub fn projection(&self, f: &Footer) -> ProjectionMask {
        f.leaves(self.flat_leaves(f).into_iter().chain(self.attr_leaves(f)))
    }

    /// Projection of the top-level columns only.
    pub fn flat_projection(&self, f: &Footer) -> ProjectionMask {
        f.leaves(self.flat_leaves(f))
    }

    /// Projection of the `attrs` children only, if any is needed.
    pub fn attr_projection(&self, f: &Footer) -> Option<ProjectionMask> {
        let leaves = self.attr_leaves(f);
        (!leaves.is_empty()).then(|| f.leaves(leaves))
    }

    fn flat_leaves(&self, f: &Footer) -> Vec<usize> {
        self.cols.iter().map(|c| f.layout.leaf(c)).collect()
    }

    fn attr_leaves(&self, f: &Footer) -> Vec<usize> {
        (0..s::ATTR_CHILDREN)
            .filter(|&i| self.attr[i])
            .map(|i| f.layout.attr_leaves[i])
            .collect()
    }
}

/// Which typed `attrs` children can hold a value of `key` comparable with `lit`.
fn value_leaves(lit: &Static, key: &str, plain: &HashSet<String>) -> &'static [usize] {
    match lit {
        Static::Str(_) if plain.contains(key) => &[A_P],
        Static::Str(_) => &[],
        Static::Bool(_) => &[A_B],
        Static::Int(_) | Static::Float(_) | Static::Duration(_) => &[A_I, A_D],
        Static::Status(_) | Static::Kind(_) => &[A_I],
    }
}

/// Position of `key` among the dedicated columns.
pub fn dedicated_index(dedicated: &[String], key: &str) -> Option<usize> {
    dedicated.iter().position(|k| k == key)
}

/// Can `kvscan` evaluate `c` (a span attribute compared with a string kept in `kv`)?
fn kv_fast(c: &Cond, plain: &HashSet<String>) -> bool {
    match (&c.field, &c.value) {
        (Field::Attr { scope, key }, Static::Str(_)) => {
            *scope != Scope::Resource && !plain.contains(key)
        }
        _ => false,
    }
}

/// Columns needed to evaluate `expr` (`plain`: keys whose strings are in `attrs.p`).
pub fn needs(expr: &Expr, dedicated: &[String], plain: &HashSet<String>) -> Needs {
    let mut n = Needs::default();
    let mut list_conds = 0usize;
    let mut all_fast = true;
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
                    list_conds += 1;
                    all_fast &= kv_fast(c, plain);
                    n.attr[A_KV] = true;
                    for &l in value_leaves(&c.value, key, plain) {
                        n.attr[l] = true;
                    }
                }
            }
        }
    }
    if list_conds > 0 && all_fast {
        n.attr = [false; s::ATTR_CHILDREN];
        n.kv_raw = true;
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
    /// The decoded top-level columns.
    pub batch: &'a RecordBatch,
    /// The decoded `attrs` children (consecutive batches), when the expression reads any.
    pub attrs: Option<&'a [RecordBatch]>,
    /// First row of each trace, ascending; the first is 0.
    pub starts: &'a [usize],
    /// Dedicated attribute keys.
    pub dedicated: &'a [String],
    /// The raw `attrs.kv` column chunk (when [`Needs::kv_raw`]), its metadata, and the
    /// footer to decode it through arrow if the fast path declines.
    pub kv_raw: Option<(&'a ChunkAt, &'a ColumnChunkMetaData, &'a Footer, usize)>,
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

/// Flags of one `attrs.kv` dictionary entry for a condition on `key`.
const IS_KEY: u8 = 1;
/// The entry holds the string value.
const HAS_STR: u8 = 2;
/// That string value satisfies the condition.
const STR_MATCH: u8 = 4;

/// Flags of one `kv` entry: is it `key`, does it hold the value, does the value match.
fn kv_flag(entry: &[u8], key: &str, c: &Cond) -> Result<u8, String> {
    let (ek, ev) = cols::split_kv(entry)?;
    let mut f = 0u8;
    if ek == key {
        f |= IS_KEY;
        if let Some(v) = ev {
            f |= HAS_STR;
            if c.matches(Some(ValueRef::Str(v))) {
                f |= STR_MATCH;
            }
        }
    }
    Ok(f)
}

/// [`kv_flag`] of every dictionary entry.
fn kv_flags(values: &arrow::array::BinaryArray, key: &str, c: &Cond) -> Result<Vec<u8>, String> {
    (0..values.len())
        .map(|k| kv_flag(values.value(k), key, c))
        .collect()
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
    let decoded;
    let attrs: &[RecordBatch] = match (b.attrs, b.kv_raw) {
        (Some(a), _) => a,
        (None, Some((chunk, meta, footer, rg))) => {
            let fast = kvscan::scan(chunk, meta, rows, |e| kv_flag(e, key, c), IS_KEY, STR_MATCH)?;
            if let Some(list) = fast {
                return Ok(with_dedicated(c, ded.as_ref(), want_has, list, rows));
            }
            // Not dictionary-encoded: read the same bytes through arrow.
            decoded = decode_kv(chunk, footer, rg)?;
            &decoded
        }
        (None, None) => return Err("attrs were not read".into()),
    };
    let mut has = want_has.then(|| BooleanBufferBuilder::new(rows));
    let mut out = BooleanBufferBuilder::new(rows);
    // The dictionary is the column chunk's, shared by its batches: flags computed once.
    let mut flags: Option<(*const u8, Vec<u8>)> = None;
    let mut row = 0usize;
    for batch in attrs {
        let a = Attrs::of(batch)?;
        let kv = a.kv.ok_or("attrs.kv was not read")?;
        let id = kv.values.values().as_ptr();
        if flags.as_ref().is_none_or(|(p, _)| *p != id) {
            flags = Some((id, kv_flags(kv.values, key, c)?));
        }
        let lut = flags
            .as_ref()
            .map(|(_, l)| l.as_slice())
            .unwrap_or_default();
        let kv_idx = kv.keys.values();
        let flag = |e: usize| lut.get(kv_idx[e] as usize).copied().unwrap_or(0);
        // Value of list element `e` (a `key` element) for the condition; only the
        // children the literal can match were read, and any other type cannot match.
        let element = |e: usize| -> bool {
            let f = flag(e);
            if f & HAS_STR != 0 {
                return f & STR_MATCH != 0;
            }
            if let Some(p) = a.p.filter(|p| p.is_valid(e)) {
                return c.matches(Some(ValueRef::Str(p.value(e))));
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
        for local in 0..batch.num_rows() {
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
                row += 1;
                continue;
            }
            let (lo, hi) = (offsets[local] as usize, offsets[local + 1] as usize);
            let found = (lo..hi).find(|&e| flag(e) & IS_KEY != 0);
            out.append(found.is_some_and(element));
            if let Some(h) = &mut has {
                h.append(found.is_some());
            }
            row += 1;
        }
    }
    if row != rows {
        return Err(format!("attrs has {row} rows, the row group {rows}"));
    }
    Ok((has.map(|mut h| h.finish()), out.finish()))
}

/// Rows decided by the dedicated column (a value there) take its answer; the others the
/// list's (`list` from `kvscan`, for a string literal).
fn with_dedicated(
    c: &Cond,
    ded: Option<&(DictStr<'_>, &arrow::array::Int64Array)>,
    want_has: bool,
    list: kvscan::KvScan,
    rows: usize,
) -> (Option<BooleanBuffer>, BooleanBuffer) {
    let Some((ds, di)) = ded else {
        return (want_has.then_some(list.has), list.matched);
    };
    let in_ded = BooleanBuffer::collect_bool(rows, |i| ds.keys.is_valid(i) || di.is_valid(i));
    let ded_match = dict_mask(ds, c);
    let matched = &(&in_ded & &ded_match) | &(&!&in_ded & &list.matched);
    let has = want_has.then(|| &in_ded | &list.has);
    (has, matched)
}

/// The `attrs.kv` chunk of row group `rg` through arrow.
fn decode_kv(chunk: &ChunkAt, footer: &Footer, rg: usize) -> Result<Vec<RecordBatch>, String> {
    let projection = footer.leaves([footer.layout.attr_leaves[A_KV]]);
    let mut dec = footer.decoder_with_batch(
        projection,
        vec![parquet::arrow::push_decoder::RowGroupSelection::new(
            rg, None,
        )],
        16 * 1024,
    )?;
    let range = chunk.offset..chunk.offset + chunk.bytes.len() as u64;
    dec.push_ranges(vec![range], vec![chunk.bytes.clone()])
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        match dec.try_decode().map_err(|e| e.to_string())? {
            parquet::DecodeResult::Data(b) => out.push(b),
            parquet::DecodeResult::Finished => return Ok(out),
            parquet::DecodeResult::NeedsData(r) => {
                return Err(format!("attrs.kv ranges {r:?} were not fetched"));
            }
        }
    }
}
