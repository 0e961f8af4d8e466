//! Merge the reports of one run's shards (`--shard i/n` on several hosts) into one.
//!
//! What is exact and what is not:
//! - **Histograms** merge exactly (decode, add, encode), and every percentile summary
//!   (export latency, schedule lag, time to queryable, query latency) is recomputed from
//!   the merged histogram. A histogram that one shard has and another lacks, although that
//!   shard has samples for it, is an error: the merge could not be exact.
//! - **Counts** (totals, outcome maps, verification counts, query errors) add.
//! - **Per-second series** are aligned by `t`: counts add; the per-second percentiles
//!   (`p50_ms`, `p99_ms`, `p99_uncorrected_ms`, `max_lag_ms`) cannot be merged from
//!   summaries, so the merged point takes the **maximum** over shards — an upper bound of
//!   the true merged percentile (no shard has more than 1% of its samples above its own
//!   p99, so the union has no more than 1% above the largest p99).
//! - **Rates**: offered/achieved spans/s and the scenario's peak add (each shard's plan is
//!   its share of the scenario's rate).
//! - **Resources**: shards that drove the same backend (same endpoints, source not
//!   `embedded`) measured the same processes, so their samples are averaged, not added;
//!   shards with their own backends (`embedded`, or different endpoints) add up.
//!   Spans per core-second and RSS per 1k spans/s are recomputed from the merged totals.
//! - **Sizing** steps offer the sum of the shards' shares and are measured again from the
//!   merged series and resources (so the per-step p99 stays an upper bound).
//! - **Thresholds** cannot be re-evaluated without the scenario's limits: each threshold
//!   keeps one row per name and limit, failed when any shard failed it, with every shard's
//!   actual value; `passed` is true only when every shard passed.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;

use super::model::{
    Environment, Report, ResourceSample, Resources, SecondPoint, ThresholdResult, Totals,
};
use crate::error::{Error, Result};
use crate::stats::hist;

fn err(input: usize, message: String) -> Error {
    Error::Report {
        path: format!("merge input #{}", input + 1),
        message,
    }
}

/// Merge `reports` (shards of the same scenario and seed) into one report.
pub fn merge(reports: &[Report]) -> Result<Report> {
    let first = reports.first().ok_or_else(|| Error::Report {
        path: "merge".to_owned(),
        message: "no reports to merge".to_owned(),
    })?;
    let mut seen = BTreeSet::new();
    for (i, r) in reports.iter().enumerate() {
        if r.schema_version != first.schema_version {
            return Err(err(
                i,
                format!(
                    "schema_version {} differs from the first report's {}",
                    r.schema_version, first.schema_version
                ),
            ));
        }
        if r.scenario.name != first.scenario.name || r.scenario.seed != first.scenario.seed {
            return Err(err(
                i,
                format!(
                    "scenario `{}` seed {} differs from the first report's `{}` seed {}: only \
                     shards of one run can be merged",
                    r.scenario.name, r.scenario.seed, first.scenario.name, first.scenario.seed
                ),
            ));
        }
        for s in &r.shards {
            if !seen.insert((s.index, s.count)) {
                return Err(err(
                    i,
                    format!(
                        "shard {}/{} appears twice: its counts would be added twice",
                        s.index, s.count
                    ),
                ));
            }
        }
    }
    let hists = merge_histograms(reports)?;
    let recompute = |name: &str, unit_per_ms: f64| {
        hists
            .get(name)
            .map(|h| hist::percentiles(h, unit_per_ms))
            .unwrap_or_default()
    };
    let sum = |f: &dyn Fn(&Report) -> f64| reports.iter().map(f).sum::<f64>();
    let distinct = |f: &dyn Fn(&Report) -> String| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in reports {
            let x = f(r);
            if !v.contains(&x) {
                v.push(x);
            }
        }
        v
    };

    let mut out = first.clone();
    out.tool_version = distinct(&|r| r.tool_version.clone()).join(", ");
    out.scenario.peak_spans_per_s = sum(&|r| r.scenario.peak_spans_per_s);
    let rates = distinct(&|r| r.scenario.rate.clone());
    if reports.len() > 1 {
        out.scenario.rate = format!("{} per shard, {} shards", rates.join(" / "), reports.len());
    }
    let mut endpoints = Vec::new();
    for r in reports {
        for e in &r.target.endpoints {
            if !endpoints.contains(e) {
                endpoints.push(e.clone());
            }
        }
    }
    out.target.endpoints = endpoints;
    let join_opt = |f: &dyn Fn(&Report) -> Option<String>| {
        let v: Vec<String> = distinct(&|r| f(r).unwrap_or_default())
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        (!v.is_empty()).then(|| v.join(" / "))
    };
    out.target.version = join_opt(&|r| r.target.version.clone());
    out.target.revision = join_opt(&|r| r.target.revision.clone());
    out.started_at = reports
        .iter()
        .map(|r| r.started_at.clone())
        .min()
        .unwrap_or_default();
    out.duration_s = reports.iter().map(|r| r.duration_s).fold(0.0, f64::max);
    out.shards = reports.iter().flat_map(|r| r.shards.clone()).collect();
    out.shards.sort_by_key(|s| s.index);
    out.totals = merge_totals(reports);
    out.latency.corrected = recompute("export_corrected_us", 1000.0);
    out.latency.uncorrected = recompute("export_uncorrected_us", 1000.0);
    out.series = merge_series(reports);

    let mut notes = Vec::new();
    let expected = first.shards.first().map_or(1, |s| s.count) as usize;
    if out.shards.len() < expected {
        notes.push(format!(
            "only {} of {expected} shards were merged: totals cover part of the run",
            out.shards.len()
        ));
    }
    for r in reports {
        let label = shard_label(r);
        notes.extend(r.generator.notes.iter().map(|n| {
            if reports.len() > 1 {
                format!("{label}: {n}")
            } else {
                n.clone()
            }
        }));
    }
    let g = &mut out.generator;
    g.offered_spans_per_s = sum(&|r| r.generator.offered_spans_per_s);
    g.achieved_spans_per_s = sum(&|r| r.generator.achieved_spans_per_s);
    g.schedule_lag = recompute("schedule_lag_us", 1000.0);
    g.cpu_seconds = sum(&|r| r.generator.cpu_seconds);
    g.cpu_cores = sum(&|r| r.generator.cpu_cores);
    g.bottleneck = reports.iter().any(|r| r.generator.bottleneck);
    g.pace = super::pace::merge(reports, g.achieved_spans_per_s, g.offered_spans_per_s);

    let with_verification: Vec<&Report> = reports
        .iter()
        .filter(|r| r.verification.is_some())
        .collect();
    out.verification = None;
    if !with_verification.is_empty() {
        if with_verification.len() < reports.len() {
            notes.push(format!(
                "read-back ran on {} of {} shards: loss counts cover only those",
                with_verification.len(),
                reports.len()
            ));
        }
        let mut v = super::model::Verification::default();
        for r in &with_verification {
            if let Some(x) = &r.verification {
                v.sampled_traces += x.sampled_traces;
                v.complete_traces += x.complete_traces;
                v.missing_traces += x.missing_traces;
                v.missing_spans += x.missing_spans;
                v.extra_spans += x.extra_spans;
                v.altered_spans += x.altered_spans;
                v.estimated_lost_spans += x.estimated_lost_spans;
                v.search_checked += x.search_checked;
                v.search_found += x.search_found;
                v.examples.extend(x.examples.iter().cloned());
            }
        }
        v.examples.truncate(10);
        v.time_to_queryable = recompute("time_to_queryable_ms", 1.0);
        out.verification = Some(v);
    }

    let queries: Vec<_> = reports
        .iter()
        .filter_map(|r| r.query_load.as_ref())
        .collect();
    out.query_load = (!queries.is_empty()).then(|| {
        let mut error_messages = BTreeMap::new();
        for q in &queries {
            add_maps(&mut error_messages, &q.error_messages);
        }
        let mut notes: Vec<String> = Vec::new();
        for q in &queries {
            for n in &q.notes {
                if !notes.contains(n) {
                    notes.push(n.clone());
                }
            }
        }
        super::model::QueryLoadResult {
            trace_by_id: recompute("query_trace_by_id_us", 1000.0),
            trace_by_id_errors: queries.iter().map(|q| q.trace_by_id_errors).sum(),
            search: recompute("query_search_us", 1000.0),
            search_errors: queries.iter().map(|q| q.search_errors).sum(),
            trace_by_id_per_second: queries.iter().map(|q| q.trace_by_id_per_second).sum(),
            search_per_second: queries.iter().map(|q| q.search_per_second).sum(),
            error_messages,
            notes,
        }
    });

    out.resources = merge_resources(reports, out.totals.spans_accepted, out.duration_s);
    out.sizing = super::sizing::merge(reports, &out.series, out.resources.as_ref());
    out.thresholds = merge_thresholds(reports);
    out.passed = reports.iter().all(|r| r.passed) && out.thresholds.iter().all(|t| t.passed);
    out.environment = merge_environment(reports);
    out.generator.notes = notes;
    out.histograms = hists
        .iter()
        .map(|(k, h)| (k.clone(), hist::encode(h)))
        .collect();
    Ok(out)
}

fn shard_label(r: &Report) -> String {
    match r.shards.as_slice() {
        [s] => format!("shard {}/{}", s.index, s.count),
        _ => format!("{} shards", r.shards.len()),
    }
}

/// Samples a shard recorded for histogram `name`, when the name is a known one.
fn samples_for(r: &Report, name: &str) -> Option<u64> {
    let v = r.verification.as_ref();
    let q = r.query_load.as_ref();
    Some(match name {
        "export_corrected_us" => r.latency.corrected.count,
        "export_uncorrected_us" => r.latency.uncorrected.count,
        "schedule_lag_us" => r.generator.schedule_lag.count,
        "time_to_queryable_ms" => v.map_or(0, |v| v.time_to_queryable.count),
        "query_trace_by_id_us" => q.map_or(0, |q| q.trace_by_id.count),
        "query_search_us" => q.map_or(0, |q| q.search.count),
        _ => return None,
    })
}

fn merge_histograms(reports: &[Report]) -> Result<BTreeMap<String, Histogram<u64>>> {
    let names: BTreeSet<&String> = reports.iter().flat_map(|r| r.histograms.keys()).collect();
    let mut out = BTreeMap::new();
    for name in names {
        let mut parts = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            match r.histograms.get(name) {
                Some(text) => parts.push(
                    hist::decode(text).map_err(|e| err(i, format!("histogram {name}: {e}")))?,
                ),
                None if samples_for(r, name).unwrap_or(0) > 0 => {
                    return Err(err(
                        i,
                        format!(
                            "histogram {name} is missing although the report has samples for \
                             it: cannot merge exactly"
                        ),
                    ));
                }
                None => {}
            }
        }
        let high = parts.iter().map(Histogram::high).max().unwrap_or(2);
        let mut acc = hist::new_with_max(high);
        acc.auto(true);
        for (i, h) in parts.iter().enumerate() {
            acc.add(h)
                .map_err(|e| err(i, format!("histogram {name} does not add: {e:?}")))?;
        }
        out.insert(name.clone(), acc);
    }
    Ok(out)
}

fn add_maps(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

fn merge_totals(reports: &[Report]) -> Totals {
    let mut t = Totals::default();
    for r in reports {
        let x = &r.totals;
        t.requests_planned += x.requests_planned;
        t.requests_sent += x.requests_sent;
        t.requests_ok += x.requests_ok;
        t.spans_sent += x.spans_sent;
        t.spans_accepted += x.spans_accepted;
        t.spans_rejected_partial += x.spans_rejected_partial;
        t.traces_sent += x.traces_sent;
        t.bytes_sent += x.bytes_sent;
        add_maps(&mut t.outcomes, &x.outcomes);
        add_maps(&mut t.error_messages, &x.error_messages);
    }
    // Keep the 10 most frequent messages, as a single run does.
    if t.error_messages.len() > 10 {
        let mut v: Vec<(String, u64)> = std::mem::take(&mut t.error_messages).into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(10);
        t.error_messages = v.into_iter().collect();
    }
    t
}

fn merge_series(reports: &[Report]) -> Vec<SecondPoint> {
    let mut by_t: BTreeMap<u32, SecondPoint> = BTreeMap::new();
    for p in reports.iter().flat_map(|r| r.series.iter()) {
        let m = by_t.entry(p.t).or_insert_with(|| SecondPoint {
            t: p.t,
            ..SecondPoint::default()
        });
        m.spans_offered += p.spans_offered;
        m.spans_sent += p.spans_sent;
        m.spans_accepted += p.spans_accepted;
        m.errors += p.errors;
        m.p50_ms = m.p50_ms.max(p.p50_ms);
        m.p99_ms = m.p99_ms.max(p.p99_ms);
        m.p99_uncorrected_ms = m.p99_uncorrected_ms.max(p.p99_uncorrected_ms);
        m.max_lag_ms = m.max_lag_ms.max(p.max_lag_ms);
        m.slots_full_ms += p.slots_full_ms;
        m.generator_behind_ms += p.generator_behind_ms;
    }
    by_t.into_values().collect()
}

fn merge_resources(reports: &[Report], accepted: u64, duration_s: f64) -> Option<Resources> {
    let with: Vec<(&Report, &Resources)> = reports
        .iter()
        .filter_map(|r| r.resources.as_ref().map(|x| (r, x)))
        .collect();
    let (r0, x0) = *with.first()?;
    let shared = with.iter().all(|(r, x)| {
        x.source != "embedded" && x.source == x0.source && r.target.endpoints == r0.target.endpoints
    });
    let n = with.len() as f64;
    // Same backend seen by every shard: average; separate backends: add.
    let scale = if shared { 1.0 / n } else { 1.0 };
    let mut by_t: BTreeMap<u32, (f64, f64, usize)> = BTreeMap::new();
    for (_, x) in &with {
        for s in &x.samples {
            let e = by_t.entry(s.t).or_insert((0.0, 0.0, 0));
            e.0 += s.cpu_cores;
            e.1 += s.rss_bytes as f64;
            e.2 += 1;
        }
    }
    let samples: Vec<ResourceSample> = by_t
        .into_iter()
        .map(|(t, (cpu, rss, k))| {
            let div = if shared { k as f64 } else { 1.0 };
            ResourceSample {
                t,
                cpu_cores: cpu / div,
                rss_bytes: (rss / div).round() as u64,
            }
        })
        .collect();
    let sum = |f: &dyn Fn(&Resources) -> f64| with.iter().map(|(_, x)| f(x)).sum::<f64>();
    let opt_sum = |f: &dyn Fn(&Resources) -> Option<u64>| {
        let v: Vec<u64> = with.iter().filter_map(|(_, x)| f(x)).collect();
        if v.is_empty() {
            None
        } else if shared {
            v.iter().max().copied()
        } else {
            Some(v.iter().sum())
        }
    };
    let cpu_seconds = sum(&|x| x.cpu_seconds) * scale;
    let avg_rss = sum(&|x| x.avg_rss_bytes as f64) * scale;
    let peak = if shared {
        with.iter()
            .map(|(_, x)| x.peak_rss_bytes)
            .max()
            .unwrap_or(0)
    } else {
        let from_samples = samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
        let sum_of_peaks: u64 = with.iter().map(|(_, x)| x.peak_rss_bytes).sum();
        if from_samples > 0 {
            from_samples
        } else {
            sum_of_peaks
        }
    };
    let accepted_per_s = if duration_s > 0.0 {
        accepted as f64 / duration_s
    } else {
        0.0
    };
    Some(Resources {
        source: x0.source.clone(),
        samples,
        cpu_seconds,
        avg_cores: sum(&|x| x.avg_cores) * scale,
        avg_rss_bytes: avg_rss.round() as u64,
        peak_rss_bytes: peak,
        spans_per_core_second: if cpu_seconds > 0.0 {
            accepted as f64 / cpu_seconds
        } else {
            0.0
        },
        rss_bytes_per_1k_spans_per_s: if accepted_per_s > 0.0 {
            avg_rss / (accepted_per_s / 1000.0)
        } else {
            0.0
        },
        discarded_spans: opt_sum(&|x| x.discarded_spans),
        discarded_by_reason: {
            let mut by: BTreeMap<String, u64> = BTreeMap::new();
            for (_, x) in &with {
                for (k, n) in &x.discarded_by_reason {
                    let e = by.entry(k.clone()).or_insert(0);
                    *e = if shared { (*e).max(*n) } else { *e + n };
                }
            }
            by
        },
        received_spans: opt_sum(&|x| x.received_spans),
    })
}

fn merge_thresholds(reports: &[Report]) -> Vec<ThresholdResult> {
    if let [only] = reports {
        return only.thresholds.clone();
    }
    let mut order: Vec<(String, String)> = Vec::new();
    let mut rows: BTreeMap<(String, String), (bool, Vec<String>)> = BTreeMap::new();
    for r in reports {
        let label = shard_label(r);
        for t in &r.thresholds {
            let key = (t.name.clone(), t.limit.clone());
            if !rows.contains_key(&key) {
                order.push(key.clone());
            }
            let e = rows.entry(key).or_insert((true, Vec::new()));
            e.0 &= t.passed;
            let mark = if t.passed { "" } else { " FAIL" };
            e.1.push(format!("{label}: {}{mark}", t.actual));
        }
    }
    order
        .into_iter()
        .filter_map(|key| {
            let (passed, actuals) = rows.remove(&key)?;
            Some(ThresholdResult {
                name: key.0,
                limit: key.1,
                actual: actuals.join("; "),
                passed,
            })
        })
        .collect()
}

fn merge_environment(reports: &[Report]) -> Environment {
    let mut hosts: Vec<&Environment> = Vec::new();
    for r in reports {
        if !hosts.iter().any(|e| e.host == r.environment.host) {
            hosts.push(&r.environment);
        }
    }
    let join = |f: &dyn Fn(&Environment) -> &str| {
        let mut v: Vec<&str> = Vec::new();
        for e in &hosts {
            if !v.contains(&f(e)) {
                v.push(f(e));
            }
        }
        v.join(", ")
    };
    Environment {
        host: join(&|e| e.host.as_str()),
        os: join(&|e| e.os.as_str()),
        cpus: hosts.iter().map(|e| e.cpus).sum(),
        memory_bytes: hosts.iter().map(|e| e.memory_bytes).sum(),
    }
}
