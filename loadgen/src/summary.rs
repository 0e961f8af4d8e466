//! The few lines `loadgen run` prints when it ends: verdict first, then what matters.

use std::fmt::Write;

use crate::report::model::Report;

/// Terminal summary of a report.
pub fn summary_lines(r: &Report) -> String {
    let mut s = String::new();
    let failed: Vec<String> = r
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| format!("{} {} > {}", t.name, t.actual, t.limit))
        .collect();
    if failed.is_empty() {
        let _ = writeln!(s, "PASSED  {}", r.scenario.name);
    } else {
        let _ = writeln!(s, "FAILED  {}: {}", r.scenario.name, failed.join("; "));
    }
    if let Some(v) = &r.verification {
        let lost = crate::run::lost_spans(Some(v));
        if lost > 0 || v.missing_traces > 0 || v.altered_spans > 0 || v.extra_spans > 0 {
            let _ = writeln!(
                s,
                "LOSS    read-back: {} of {} sampled traces missing, {} spans missing, {} altered, {} extra (≈{} spans lost over the run)",
                v.missing_traces,
                v.sampled_traces,
                v.missing_spans,
                v.altered_spans,
                v.extra_spans,
                lost
            );
        } else {
            let _ = writeln!(
                s,
                "read-back: {} of {} sampled traces complete, 0 spans lost; time to queryable p50 {:.0} ms, p99 {:.0} ms",
                v.complete_traces,
                v.sampled_traces,
                v.time_to_queryable.p50,
                v.time_to_queryable.p99
            );
        }
    }
    if let Some(v) = crate::report::pace::verdict(&r.generator) {
        let _ = writeln!(s, "PACE    {}: {}", v.title.to_lowercase(), v.text);
    }
    for n in &r.generator.notes {
        let _ = writeln!(s, "NOTE    {n}");
    }
    let t = &r.totals;
    let _ = writeln!(
        s,
        "sent {} spans in {} requests over {:.1}s: {:.0} spans/s achieved of {:.0} offered; accepted {}, rejected in partial success {}",
        t.spans_sent,
        t.requests_sent,
        r.duration_s,
        r.generator.achieved_spans_per_s,
        r.generator.offered_spans_per_s,
        t.spans_accepted,
        t.spans_rejected_partial
    );
    let outcomes: Vec<String> = t.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "outcomes: {}", outcomes.join(", "));
    let (c, u) = (&r.latency.corrected, &r.latency.uncorrected);
    let _ = writeln!(
        s,
        "export latency (from intended send): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms   (from actual send: p50 {:.1} ms  p99 {:.1} ms)",
        c.p50, c.p99, c.max, u.p50, u.p99
    );
    if let Some(res) = &r.resources {
        let _ = write!(
            s,
            "backend ({}): {:.2} cores, RSS avg {:.0} MiB peak {:.0} MiB, {:.0} spans per CPU-second",
            res.source,
            res.avg_cores,
            res.avg_rss_bytes as f64 / 1048576.0,
            res.peak_rss_bytes as f64 / 1048576.0,
            res.spans_per_core_second
        );
        s.push('\n');
        if let Some(d) = res.discarded_spans {
            let tag = if d > 0 { "DISCARD " } else { "" };
            let _ = write!(
                s,
                "{tag}backend discarded {d} spans (tempo_discarded_spans_total)"
            );
            if let Some(by) = res.discard_reasons() {
                let _ = write!(s, " by reason: {by}");
            }
            s.push('\n');
        }
    }
    if let Some(q) = &r.query_load {
        let _ = writeln!(
            s,
            "queries: trace by id {} ok (p99 {:.1} ms), {} errors; search {} ok (p99 {:.1} ms), {} errors",
            q.trace_by_id.count,
            q.trace_by_id.p99,
            q.trace_by_id_errors,
            q.search.count,
            q.search.p99,
            q.search_errors
        );
        for n in &q.notes {
            let _ = writeln!(s, "NOTE    {n}");
        }
    }
    sizing_lines(r, &mut s);
    s.trim_end().to_owned()
}

/// `SIZING` headline and one line per step.
fn sizing_lines(r: &Report, s: &mut String) {
    let Some(z) = &r.sizing else {
        return;
    };
    match z.highest_held_spans_per_s {
        Some(h) => {
            let _ = write!(s, "SIZING  highest rate that held: {h:.0} spans/s");
            if let Some(c) = z.cpu_cores {
                let _ = write!(s, " on {c:.2} cores");
            }
            if let Some(b) = z.rss_bytes {
                let _ = write!(s, ", RSS {:.0} MiB", b as f64 / 1048576.0);
            }
            if let Some(x) = z.spans_per_core_second {
                let _ = write!(s, ", {x:.0} spans per core-second");
            }
            if let (Some(n), Some(t)) = (z.nodes_needed, z.target_spans_per_s) {
                let _ = write!(
                    s,
                    "; {n} nodes for {t:.0} spans/s at {:.0} % headroom",
                    z.headroom * 100.0
                );
            }
            s.push('\n');
        }
        None => {
            let _ = writeln!(s, "SIZING  no step held");
        }
    }
    for st in &z.steps {
        let verdict = if st.held {
            "held".to_owned()
        } else {
            format!("FAILED ({})", st.reasons.join("; "))
        };
        let _ = write!(
            s,
            "  step {:.0} spans/s: accepted {:.0}/s, p99 ≤ {:.1} ms",
            st.offered_spans_per_s, st.accepted_spans_per_s, st.p99_upper_ms
        );
        if let Some(c) = st.cpu_cores {
            let _ = write!(s, ", {c:.2} cores");
        }
        let _ = writeln!(s, ": {verdict}");
    }
    for n in &z.notes {
        let _ = writeln!(s, "NOTE    {n}");
    }
}
