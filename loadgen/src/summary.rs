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
        if let Some(d) = res.discarded_spans {
            let _ = write!(s, ", discarded (metrics) {d}");
        }
        s.push('\n');
    }
    s.trim_end().to_owned()
}
