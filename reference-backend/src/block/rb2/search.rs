//! Columnar search of one rb2 block.
//!
//! Per row group, in trace-id order: skip it when its statistics rule the plan out (time
//! range, trace duration, equality on dictionary columns the expression requires); else
//! read only the columns the expression needs, evaluate it to a span mask (`eval`), drop
//! duplicate spans (a span id seen earlier in its trace), and keep traces with a matching
//! span that the trace filters admit. Of all those, the `limit` that start last (ties:
//! lower trace id) become results (`hits`), as [`crate::search::rank`] orders them — the
//! same answer as the generic evaluator over the block's traces.

use arrow::array::{Array, UInt8Array, UInt64Array};
use arrow::buffer::BooleanBuffer;
use arrow::record_batch::RecordBatch;
use parquet::arrow::push_decoder::{ParquetPushDecoder, RowGroupSelection};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::statistics::Statistics;

use super::Rb2Reader;
use super::cols;
use super::eval::{self, Batch, Needs, dedicated_index};
use super::fetch::{Fetcher, Footer};
use super::hits;
use super::kvscan::ChunkAt;
use super::schema::{self as s};
use crate::error::Result;
use crate::search::ast::{Cond, Expr, Field, Intrinsic, Op, Scope, Static};
use crate::search::{SearchPlan, SearchResult};

/// Rows per decoded batch while scanning. The batches of a row group are concatenated
/// for evaluation; decoding it as one batch instead regrows dictionary key buffers page
/// by page (quadratic copying in the parquet reader).
pub const SCAN_BATCH_ROWS: usize = 16 * 1024;

/// A matching trace, before its result columns are read.
pub struct Candidate {
    /// Row group.
    pub rg: usize,
    /// First row of the trace.
    pub first_row: usize,
    /// Row after its last.
    pub end_row: usize,
    /// Matched spans (duplicates excluded).
    pub matched: u32,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest end − earliest start.
    pub duration_ns: u64,
}

/// What scanning one row group found.
struct Scan {
    cands: Vec<Candidate>,
    mask: BooleanBuffer,
    traces: u64,
    spans: u64,
}

/// Search `r` for `plan`.
pub async fn run(r: &Rb2Reader, plan: &SearchPlan) -> Result<SearchResult> {
    let footer = &*r.footer;
    let f = r.fetcher();
    let mut needs = eval::needs(&plan.filter, &footer.dedicated, &footer.plain_keys);
    // `group` marks first rows and duplicates; trace times are decoded only for row groups
    // with a match.
    needs.col(s::GROUP);
    let flat = needs.flat_projection(footer);
    let lists = needs.attr_projection(footer);
    let mut times_needs = Needs::default();
    times_needs.col(s::TRACE_START);
    times_needs.col(s::TRACE_DURATION);
    let times = times_needs.flat_projection(footer);
    let required = required(&plan.filter);
    let mut out = SearchResult::default();
    let mut cands: Vec<Candidate> = Vec::new();
    let mut masks: Vec<Option<BooleanBuffer>> = vec![None; footer.parquet().num_row_groups()];
    for (rg, mask_slot) in masks.iter_mut().enumerate() {
        if plan.limit == 0 || pruned(footer, rg, plan, &required) {
            continue;
        }
        let flat_ranges = Fetcher::chunk_ranges(footer, rg, &flat);
        let time_ranges = Fetcher::chunk_ranges(footer, rg, &times);
        let list_ranges = lists
            .as_ref()
            .map_or_else(Vec::new, |l| Fetcher::chunk_ranges(footer, rg, l));
        let kv_meta = footer
            .parquet()
            .row_group(rg)
            .column(footer.layout.attr_leaves[s::A_KV]);
        let kv_range = needs.kv_raw.then(|| {
            let (start, len) = kv_meta.byte_range();
            start..start + len
        });
        let all: Vec<_> = flat_ranges
            .iter()
            .chain(&time_ranges)
            .chain(&list_ranges)
            .chain(&kv_range)
            .cloned()
            .collect();
        let mut bytes = f.get_ranges(&all).await.map_err(|e| r.fetch_err(e))?;
        let kv_chunk = match &kv_range {
            Some(range) => bytes.pop().map(|b| ChunkAt {
                offset: range.start,
                bytes: b,
            }),
            None => None,
        };
        let list_bytes = bytes.split_off(flat_ranges.len() + time_ranges.len());
        let time_bytes = bytes.split_off(flat_ranges.len());
        let scan = crate::cpu::run_heavy(|| {
            let one = || vec![RowGroupSelection::new(rg, None)];
            let batch = decode_all(footer, &flat, one(), SCAN_BATCH_ROWS, flat_ranges, bytes)?;
            let attrs = match &lists {
                Some(l) => {
                    let mut dec = footer.decoder_with_batch(l.clone(), one(), SCAN_BATCH_ROWS)?;
                    dec.push_ranges(list_ranges, list_bytes)
                        .map_err(|e| e.to_string())?;
                    Some(decode_batches(dec)?)
                }
                None => None,
            };
            let kv_raw = kv_chunk.as_ref().map(|c| (c, kv_meta, footer, rg));
            let mut scan = filter(rg, &batch, attrs.as_deref(), kv_raw, footer, plan)?;
            if !scan.cands.is_empty() {
                // Fixed-width columns: one batch, no concatenation.
                let whole = footer.rows_in(rg);
                let t = decode_all(footer, &times, one(), whole, time_ranges, time_bytes)?;
                admit(&mut scan.cands, &t, footer, plan)?;
            }
            Ok::<_, String>(scan)
        })
        .map_err(|m| r.corrupt(m))?;
        out.inspected_traces += scan.traces;
        out.inspected_spans += scan.spans;
        if !scan.cands.is_empty() {
            cands.extend(scan.cands);
            *mask_slot = Some(scan.mask);
        }
    }
    // The `limit` hits that start last; within a block, row order is trace-id order.
    // Selected in linear time: a search can match most of a block's traces.
    let latest_first = |a: &Candidate, b: &Candidate| {
        b.start_ns
            .cmp(&a.start_ns)
            .then((a.rg, a.first_row).cmp(&(b.rg, b.first_row)))
    };
    if cands.len() > plan.limit {
        cands.select_nth_unstable_by(plan.limit, latest_first);
        cands.truncate(plan.limit);
    }
    cands.sort_unstable_by(latest_first);
    let referenced = plan.filter.referenced_attributes();
    for (rg, mask) in masks.iter().enumerate() {
        let of_rg: Vec<&Candidate> = cands.iter().filter(|c| c.rg == rg).collect();
        let Some(mask) = mask.as_ref().filter(|_| !of_rg.is_empty()) else {
            continue;
        };
        let hits =
            hits::build(r, &f, rg, &of_rg, mask, plan.spans_per_spanset, &referenced).await?;
        out.traces.extend(hits);
    }
    crate::search::rank(&mut out.traces, plan.limit);
    out.inspected_bytes = f.fetched();
    Ok(out)
}

/// Decode `projection` of the given row groups from pushed bytes, `batch_rows` at a time,
/// as one batch.
fn decode_all(
    footer: &Footer,
    projection: &parquet::arrow::ProjectionMask,
    selections: Vec<RowGroupSelection>,
    batch_rows: usize,
    ranges: Vec<std::ops::Range<u64>>,
    bytes: Vec<bytes::Bytes>,
) -> Result<RecordBatch, String> {
    let mut dec = footer.decoder_with_batch(projection.clone(), selections, batch_rows)?;
    dec.push_ranges(ranges, bytes).map_err(|e| e.to_string())?;
    let mut batches = decode_batches(dec)?;
    match batches.len() {
        1 => Ok(batches.remove(0)),
        0 => Err("row group decoded to nothing".into()),
        _ => {
            let schema = batches[0].schema();
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())
        }
    }
}

/// Every batch `dec` yields (its data was pushed already).
fn decode_batches(mut dec: ParquetPushDecoder) -> Result<Vec<RecordBatch>, String> {
    let mut batches = Vec::new();
    loop {
        match dec.try_decode().map_err(|e| e.to_string())? {
            parquet::DecodeResult::Data(b) => batches.push(b),
            parquet::DecodeResult::Finished => return Ok(batches),
            parquet::DecodeResult::NeedsData(r) => {
                return Err(format!("column chunk ranges {r:?} were not fetched"));
            }
        }
    }
}

/// Evaluate the filter over row group `rg`: its matching traces (times not yet known).
fn filter(
    rg: usize,
    batch: &RecordBatch,
    attrs: Option<&[RecordBatch]>,
    kv_raw: Option<(&ChunkAt, &ColumnChunkMetaData, &Footer, usize)>,
    footer: &Footer,
    plan: &SearchPlan,
) -> Result<Scan, String> {
    let group: &UInt8Array = cols::get(batch, s::GROUP)?;
    let rows = batch.num_rows();
    let groups = group.values();
    let starts: Vec<usize> = (0..rows)
        .filter(|&i| groups[i] & s::GROUP_KIND == s::GROUP_NEW_TRACE)
        .collect();
    if rows > 0 && starts.first() != Some(&0) {
        return Err("row group does not start with a trace".into());
    }
    let firsts = BooleanBuffer::collect_bool(rows, |i| groups[i] & s::GROUP_DUP == 0);
    let mask = &eval::eval(
        &plan.filter,
        &Batch {
            batch,
            attrs,
            starts: &starts,
            dedicated: &footer.dedicated,
            kv_raw,
        },
    )? & &firsts;
    // One pass over the matching rows, trace by trace.
    let mut cands: Vec<Candidate> = Vec::new();
    let mut t = 0usize;
    for row in mask.set_indices() {
        while starts.get(t + 1).is_some_and(|&next| next <= row) {
            t += 1;
        }
        match cands.last_mut() {
            Some(c) if c.first_row == starts[t] => c.matched += 1,
            _ => cands.push(Candidate {
                rg,
                first_row: starts[t],
                end_row: starts.get(t + 1).copied().unwrap_or(rows),
                matched: 1,
                start_ns: 0,
                duration_ns: 0,
            }),
        }
    }
    Ok(Scan {
        cands,
        mask,
        traces: starts.len() as u64,
        spans: firsts.count_set_bits() as u64,
    })
}

/// Fill in the candidates' times and keep those the plan's trace filters admit.
fn admit(
    cands: &mut Vec<Candidate>,
    times: &RecordBatch,
    footer: &Footer,
    plan: &SearchPlan,
) -> Result<(), String> {
    let t_start: &UInt64Array = cols::get(times, s::TRACE_START)?;
    let t_dur: &UInt64Array = cols::get(times, s::TRACE_DURATION)?;
    for c in cands.iter_mut() {
        if !t_start.is_valid(c.first_row) {
            return Err("trace without a start".into());
        }
        c.start_ns = footer.base_ns.wrapping_add(t_start.value(c.first_row));
        // Stored wrapping, so the end is exact; the duration saturates like the evaluator's.
        let end_ns = c.start_ns.wrapping_add(t_dur.value(c.first_row));
        c.duration_ns = end_ns.saturating_sub(c.start_ns);
        c.matched = if plan.admits(c.start_ns, end_ns) {
            c.matched
        } else {
            0
        };
    }
    cands.retain(|c| c.matched > 0);
    Ok(())
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
    // Durations are stored wrapping (end before start reads huge): bounds from them hold
    // only while none is past i64::MAX.
    let sane = max_d <= i64::MAX as u64;
    if plan.end_ns.is_some_and(|e| base.wrapping_add(min_s) > e)
        || plan
            .start_ns
            .is_some_and(|st| sane && base.wrapping_add(max_s).saturating_add(max_d) < st)
        || plan.min_duration_ns.is_some_and(|m| sane && max_d < m)
        || plan.max_duration_ns.is_some_and(|m| sane && min_d > m)
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
