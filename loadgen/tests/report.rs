//! Reports: markdown, HTML, write/load, compare and merge, from a realistic report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use loadgen::report::model::{
    Limiter, Pace, Percentiles, Report, ResourceSample, SCHEMA_VERSION, SecondPoint,
};
use loadgen::report::{
    CompareThresholds, LimitKind, Metric, compare, load, merge, parse_threshold, render_comparison,
    render_html, render_markdown, write_all,
};
use loadgen::stats::hist;

/// A 30-second run at 10k spans/s offered, with loss, a generator bottleneck and one failed
/// threshold. The static parts come from `fixtures/report-skeleton.json` (read through
/// `load`); series, histograms and everything computed from them are filled here. `shard`
/// picks the shard index (of 3) and perturbs the data a little.
fn report(shard: u32) -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report-skeleton.json");
    let mut r = load(&path).unwrap();
    let k = u64::from(shard);
    let mut corrected = hist::new_us();
    let mut uncorrected = hist::new_us();
    let mut lag = hist::new_us();
    let mut ttq = hist::new_with_max(3_600_000);
    // 29,000 requests: mostly 2–40 ms, a tail up to 900 ms (corrected) / 300 ms (uncorrected).
    for i in 0..29_000u64 {
        let base = 2_000 + (i * 7919 + k * 13) % 38_000;
        let tail = if i % 100 == 0 {
            200_000 + (i % 7) * 100_000
        } else {
            0
        };
        hist::record(&mut corrected, base + tail);
        hist::record(&mut uncorrected, base + tail / 3);
        hist::record(&mut lag, 50 + (i % 1000) + tail / 10);
    }
    for i in 0..500u64 {
        hist::record(&mut ttq, 800 + (i * 37 + k) % 2_500);
    }
    r.series = (0..30u32)
        .map(|t| {
            let sent = 9_600 + u64::from(t % 5) * 50 + k;
            SecondPoint {
                t,
                spans_offered: 10_000,
                spans_sent: sent,
                spans_accepted: sent - 40,
                errors: u64::from(t % 3),
                p50_ms: 18.0 + f64::from(t % 4),
                p99_ms: 420.0 + f64::from(t * 3),
                p99_uncorrected_ms: 150.0 + f64::from(t),
                max_lag_ms: 30.0 + f64::from(t),
                slots_full_ms: 2.0,
                generator_behind_ms: 600.0,
            }
        })
        .collect();
    let spans_sent: u64 = r.series.iter().map(|p| p.spans_sent).sum();
    let spans_accepted: u64 = r.series.iter().map(|p| p.spans_accepted).sum();
    r.started_at = format!("2026-05-01T10:00:0{shard}Z");
    r.shards[0].index = shard;
    r.shards[0].host = format!("gen-{shard}");
    r.environment.host = format!("gen-{shard}");
    r.totals.spans_sent = spans_sent;
    r.totals.spans_accepted = spans_accepted;
    r.totals.traces_sent = spans_sent / 10;
    r.totals.bytes_sent = spans_sent * 180;
    r.latency.corrected = hist::percentiles(&corrected, 1000.0);
    r.latency.uncorrected = hist::percentiles(&uncorrected, 1000.0);
    r.generator.achieved_spans_per_s = spans_sent as f64 / 30.0;
    r.generator.schedule_lag = hist::percentiles(&lag, 1000.0);
    // The skeleton is a report from before the pace verdict; this run records it.
    r.generator.pace = Some(Pace {
        limited_by: Limiter::Generator,
        max_in_flight: 64,
        slots_full_share: 0.002,
        generator_behind_share: 0.6,
        slot_wait: Percentiles::default(),
        achieved_ratio: r.generator.achieved_spans_per_s / r.generator.offered_spans_per_s,
    });
    let v = r.verification.as_mut().unwrap();
    v.time_to_queryable = hist::percentiles(&ttq, 1.0);
    let res = r.resources.as_mut().unwrap();
    res.samples = (0..30u32)
        .map(|t| ResourceSample {
            t,
            cpu_cores: 1.6 + f64::from(t % 4) * 0.1,
            rss_bytes: (400 + u64::from(t) * 4) * 1024 * 1024,
        })
        .collect();
    res.spans_per_core_second = spans_accepted as f64 / res.cpu_seconds;
    res.received_spans = Some(spans_accepted);
    for (name, h) in [
        ("export_corrected_us", &corrected),
        ("export_uncorrected_us", &uncorrected),
        ("schedule_lag_us", &lag),
        ("time_to_queryable_ms", &ttq),
    ] {
        r.histograms.insert(name.to_owned(), hist::encode(h));
    }
    r
}

/// A clean run: passed, no loss, no bottleneck, no errors.
fn clean() -> Report {
    let mut r = report(0);
    r.passed = true;
    r.thresholds.retain(|t| t.passed);
    r.generator.bottleneck = false;
    if let Some(p) = r.generator.pace.as_mut() {
        p.limited_by = Limiter::KeptUp;
    }
    r.generator.notes.clear();
    r.totals.requests_planned = r.totals.requests_sent;
    r.totals.requests_ok = r.totals.requests_sent;
    r.totals.outcomes.remove("rate_limited");
    if let Some(v) = r.verification.as_mut() {
        v.missing_traces = 0;
        v.missing_spans = 0;
        v.estimated_lost_spans = 0;
        v.complete_traces = v.sampled_traces;
    }
    r
}

fn data_points(html: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for part in html.split("<svg class=\"chart\"").skip(1) {
        let attr = |name: &str| {
            let start = part.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let len = part[start..].find('"').unwrap();
            part[start..start + len].to_owned()
        };
        out.insert(attr("data-chart"), attr("data-points").parse().unwrap());
    }
    out
}

#[test]
fn markdown_leads_with_verdict_loss_and_bottleneck() {
    let md = render_markdown(&report(0));
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[0].starts_with("# FAILED"), "{}", lines[0]);
    assert!(lines[0].contains("ingest-10k") && lines[0].contains("2.9.1"));
    let head = lines[..8].join("\n");
    assert!(head.contains("1 of 2 thresholds failed"), "{head}");
    assert!(
        head.contains("export_p99 = 612 ms (limit < 250 ms)"),
        "{head}"
    );
    assert!(head.contains("Spans lost"), "{head}");
    assert!(head.contains("estimated 2,340 spans lost"), "{head}");
    assert!(head.contains("The generator was the bottleneck"), "{head}");
    assert!(head.contains("rate_limited 30"), "{head}");
    // Summary tables.
    assert!(md.contains("| Offered spans/s "), "{md}");
    assert!(
        md.lines()
            .any(|l| l.starts_with("| Offered spans/s") && l.contains("10,000"))
    );
    assert!(
        md.lines()
            .any(|l| l.starts_with("| Export, corrected") && l.contains(" ms"))
    );
    assert!(md.lines().any(|l| l.starts_with("| Spans per core-second")));
    assert!(
        md.lines()
            .any(|l| l.starts_with("| RSS per 1k spans/s") && l.contains("MiB"))
    );
    assert!(
        md.lines()
            .any(|l| l.starts_with("| export_p99") && l.contains("FAIL"))
    );
    assert!(
        md.contains("## Verification") && md.contains("`trace 5b8efff798038103: 2 spans missing`")
    );
    assert!(md.contains("2.9.1 (revision abc1234)"));
    // Pipes in cells are escaped, so tables keep their columns.
    assert!(md.contains("429 Too Many Requests \\| ingestion rate limit"));
    assert!(md.contains("```yaml") && md.contains("</details>"));
}

/// A report written before loadgen told a saturated backend from a slow generator still
/// loads, and its flag is shown without naming a cause.
#[test]
fn reports_without_the_pace_verdict_still_render_and_compare() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report-skeleton.json");
    let old = load(&path).unwrap();
    assert!(old.generator.pace.is_none() && old.generator.bottleneck);
    assert!(old.series.iter().all(|p| p.slots_full_ms == 0.0));
    let md = render_markdown(&old);
    assert!(md.contains("The generator fell behind"), "{md}");
    assert!(md.contains("cause is unknown"), "{md}");
    let c = compare(
        std::slice::from_ref(&old),
        &[report(1)],
        &CompareThresholds::default(),
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.starts_with("A#1") && n.contains("cause is unknown")),
        "{:?}",
        c.notes
    );
    assert!(
        c.notes
            .iter()
            .any(|n| n.starts_with("B#1") && n.contains("generator was the bottleneck")),
        "{:?}",
        c.notes
    );
}

#[test]
fn discards_are_shown_by_reason() {
    let mut r = report(0);
    let res = r.resources.as_mut().unwrap();
    res.discarded_spans = Some(330_000);
    res.discarded_by_reason = BTreeMap::from([
        ("live_traces_exceeded".to_owned(), 329_990),
        ("trace_too_large".to_owned(), 10),
    ]);
    let md = render_markdown(&r);
    assert!(
        md.contains(
            "tempo_discarded_spans_total rose by 330,000 during the run, by reason: \
             live_traces_exceeded 329,990, trace_too_large 10"
        ),
        "{md}"
    );
    assert!(
        md.lines()
            .any(|l| l.contains("discarded: live_traces_exceeded") && l.contains("329,990")),
        "{md}"
    );
    let html = render_html(&r);
    assert!(html.contains("live_traces_exceeded 329,990"), "{html}");
    let console = loadgen::summary::summary_lines(&r);
    assert!(
        console.contains(
            "DISCARD backend discarded 330000 spans (tempo_discarded_spans_total) by reason: \
             live_traces_exceeded 329,990, trace_too_large 10"
        ),
        "{console}"
    );
}

#[test]
fn markdown_of_a_clean_run_says_passed_and_no_loss() {
    let md = render_markdown(&clean());
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[0].starts_with("# PASSED: ingest-10k"), "{}", lines[0]);
    assert!(lines[2].contains("All 1 thresholds held"), "{md}");
    assert!(md.contains("No loss") && !md.contains("Spans lost"));
    assert!(!md.contains("bottleneck"));
    let mut unverified = clean();
    unverified.verification = None;
    let md = render_markdown(&unverified);
    assert!(
        md.lines()
            .next()
            .unwrap()
            .starts_with("# PASSED with 1 warning"),
        "{md}"
    );
    assert!(md.contains("Loss unknown"));
}

#[test]
fn html_is_self_contained_and_every_chart_has_data() {
    let page = render_html(&report(0));
    assert!(page.starts_with("<!DOCTYPE html>"));
    for banned in [
        "src=", "href=", "url(", "@import", "<script", "<link", "<iframe",
    ] {
        assert!(!page.contains(banned), "page contains {banned}");
    }
    let charts = data_points(&page);
    let kinds = [
        "throughput",
        "latency-over-time",
        "latency-distribution",
        "time-to-queryable",
        "resources",
    ];
    assert_eq!(
        charts.keys().map(String::as_str).collect::<Vec<_>>().len(),
        5
    );
    for k in kinds {
        assert!(charts[k] > 0, "chart {k} drew no points: {charts:?}");
    }
    assert_eq!(charts["throughput"], 4 * 30);
    assert!(!page.contains("No data"));
    assert!(page.contains("FAILED") && page.contains("Spans lost"));
    assert!(page.contains("99.9%") && page.contains("<polyline"));
}

#[test]
fn html_charts_without_data_say_so() {
    let mut r = report(0);
    r.resources = None;
    r.verification = None;
    r.histograms.clear();
    r.series.clear();
    let page = render_html(&r);
    let charts = data_points(&page);
    assert_eq!(charts.len(), 5);
    assert!(charts.values().all(|n| *n == 0), "{charts:?}");
    assert!(page.contains("No data: backend resources were not measured"));
    assert!(page.contains("No data: the report has no export_corrected_us histogram"));
}

#[test]
fn write_all_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run-1");
    let r = report(0);
    let w = write_all(&r, &out).unwrap();
    assert!(w.markdown.exists() && w.html.exists());
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        3,
        "no temp files left"
    );
    // Floats may differ in the last bit (serde_json without `float_roundtrip`); all else
    // is exact.
    let back = load(&w.json).unwrap();
    assert_eq!(back.totals, r.totals);
    assert_eq!(back.series, r.series);
    assert_eq!(back.histograms, r.histograms);
    assert_eq!(back.scenario, r.scenario);
    assert_eq!(back.thresholds, r.thresholds);
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert_eq!(md, render_markdown(&r));
    // `REPORT_TEST_DUMP=dir` keeps example renderings for a human look.
    if let Some(d) = std::env::var_os("REPORT_TEST_DUMP") {
        let d = std::path::PathBuf::from(d);
        write_all(&r, &d.join("failed")).unwrap();
        write_all(&clean(), &d.join("clean")).unwrap();
        write_all(
            &merge(&[report(0), report(1), report(2)]).unwrap(),
            &d.join("merged"),
        )
        .unwrap();
        let limits = CompareThresholds::parse(&["p99=+10%", "lost=0"]).unwrap();
        let a: Vec<Report> = (0..3).map(|_| clean()).collect();
        let b: Vec<Report> = [1.15, 1.2, 1.25]
            .iter()
            .map(|f| slower(clean(), *f))
            .collect();
        std::fs::write(
            d.join("compare.txt"),
            render_comparison(&compare(&a, &b, &limits)),
        )
        .unwrap();
        let one = compare(&a[..1], &[report(0)], &limits);
        std::fs::write(d.join("compare-n1.txt"), render_comparison(&one)).unwrap();
    }
}

#[test]
fn load_rejects_other_schema_versions_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old-report.json");
    let mut v = serde_json::to_value(report(0)).unwrap();
    v["schema_version"] = serde_json::json!(SCHEMA_VERSION + 1);
    std::fs::write(&path, v.to_string()).unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.contains("old-report.json"), "{e}");
    assert!(
        e.contains(&format!("schema_version {}", SCHEMA_VERSION + 1)),
        "{e}"
    );

    std::fs::write(&path, r#"{"hello": 1}"#).unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.contains("old-report.json") && e.contains("no schema_version"),
        "{e}"
    );
    let e = load(&dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json"), "{e}");
}

fn slower(mut r: Report, factor: f64) -> Report {
    r.latency.corrected.p99 *= factor;
    r
}

#[test]
fn compare_flags_p99_beyond_threshold_only() {
    let a = clean();
    let limits = CompareThresholds::parse(&["p99=+10%"]).unwrap();
    let c = compare(std::slice::from_ref(&a), &[slower(a.clone(), 1.2)], &limits);
    assert_eq!(c.regressions.len(), 1, "{:?}", c.regressions);
    assert!(c.regressions[0].contains("p99") && c.regressions[0].contains("+20.0%"));
    let text = render_comparison(&c);
    assert!(text.starts_with("REGRESSION"), "{text}");
    assert!(text.contains("n=1, no interval"), "{text}");
    assert!(text.contains("1.200×"), "{text}");

    let c = compare(
        std::slice::from_ref(&a),
        &[slower(a.clone(), 1.05)],
        &limits,
    );
    assert!(c.regressions.is_empty(), "{:?}", c.regressions);
    assert!(render_comparison(&c).starts_with("NO REGRESSION"));
}

#[test]
fn compare_with_several_runs_needs_the_interval_to_exclude_zero() {
    let a: Vec<Report> = [1.0, 1.02, 0.98, 1.01, 0.99]
        .iter()
        .map(|f| slower(clean(), *f))
        .collect();
    let limits = CompareThresholds::parse(&["p99=+10%", "throughput=-5%"]).unwrap();
    // Consistently 20% slower: flagged, with an interval.
    let b: Vec<Report> = [1.2, 1.22, 1.18, 1.21, 1.19]
        .iter()
        .map(|f| slower(clean(), *f))
        .collect();
    let c = compare(&a, &b, &limits);
    assert_eq!(c.regressions.len(), 1, "{:?}", c.regressions);
    let p99 = c.metrics.iter().find(|m| m.metric == Metric::P99).unwrap();
    let (lo, hi) = p99.interval.unwrap();
    assert!(lo > 0.0 && hi > lo);
    assert!(render_comparison(&c).contains("(n=5)"));
    // Median 20% slower, but wildly noisy: not flagged, explained in a note.
    let b: Vec<Report> = [0.7, 1.2, 1.9, 0.8, 1.6]
        .iter()
        .map(|f| slower(clean(), *f))
        .collect();
    let c = compare(&a, &b, &limits);
    assert!(c.regressions.is_empty(), "{:?}", c.regressions);
    assert!(
        c.notes.iter().any(|n| n.contains("includes zero")),
        "{:?}",
        c.notes
    );
}

#[test]
fn compare_gates_loss_and_fails_closed_without_data() {
    let a = clean();
    let limits = CompareThresholds::parse(&["lost=0", "errors=+0.01"]).unwrap();
    let c = compare(std::slice::from_ref(&a), &[report(0)], &limits);
    assert!(
        c.regressions.iter().any(|r| r.contains("lost")),
        "{:?}",
        c.regressions
    );
    assert!(
        c.notes.iter().any(|n| n.contains("bottleneck")),
        "{:?}",
        c.notes
    );
    let mut unverified = a.clone();
    unverified.verification = None;
    let c = compare(std::slice::from_ref(&a), &[unverified], &limits);
    assert!(
        c.regressions
            .iter()
            .any(|r| r.contains("cannot check `lost=0`")),
        "{:?}",
        c.regressions
    );
}

#[test]
fn thresholds_parse_and_explain_bad_text() {
    let l = parse_threshold("p99=+10%").unwrap();
    assert_eq!((l.metric, l.kind), (Metric::P99, LimitKind::Relative(0.10)));
    let l = parse_threshold("throughput=-5%").unwrap();
    assert_eq!(
        (l.metric, l.kind),
        (Metric::Throughput, LimitKind::Relative(0.05))
    );
    let l = parse_threshold("errors=+0.01").unwrap();
    assert_eq!(
        (l.metric, l.kind),
        (Metric::Errors, LimitKind::Absolute(0.01))
    );
    let l = parse_threshold("lost=0").unwrap();
    assert_eq!((l.metric, l.kind), (Metric::Lost, LimitKind::Bound(0.0)));
    for (bad, why) in [
        ("p99", "METRIC=LIMIT"),
        ("latency=+10%", "unknown metric `latency`"),
        ("p99=-10%", "write p99=+10%"),
        ("throughput=+5%", "write throughput=-5%"),
        ("errors=+1%", "already a rate"),
        ("p99=+fast", "not a number"),
        ("p99=", "empty"),
    ] {
        let e = parse_threshold(bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{bad}`")) && e.contains(why),
            "{bad}: {e}"
        );
    }
    assert!(CompareThresholds::parse(&["p99=+10%", "oops"]).is_err());
}

#[test]
fn merge_of_three_shards_adds_counts_and_histograms() {
    let shards: Vec<Report> = (0..3).map(report).collect();
    let m = merge(&shards).unwrap();
    let sum = |f: &dyn Fn(&Report) -> u64| shards.iter().map(f).sum::<u64>();
    assert_eq!(m.shards.len(), 3);
    assert_eq!(m.totals.spans_sent, sum(&|r| r.totals.spans_sent));
    assert_eq!(m.totals.spans_accepted, sum(&|r| r.totals.spans_accepted));
    assert_eq!(m.totals.outcomes["rate_limited"], 90);
    assert_eq!(
        m.latency.corrected.count,
        sum(&|r| r.latency.corrected.count)
    );
    let h = hist::decode(&m.histograms["export_corrected_us"]).unwrap();
    assert_eq!(h.len(), 3 * 29_000);
    assert_eq!(m.latency.corrected, hist::percentiles(&h, 1000.0));
    let v = m.verification.as_ref().unwrap();
    assert_eq!(v.estimated_lost_spans, 3 * 2_340);
    assert_eq!(v.time_to_queryable.count, 1_500);
    assert_eq!(m.series.len(), 30);
    assert_eq!(m.series[0].spans_offered, 30_000);
    assert_eq!(m.series[7].p99_ms, shards[0].series[7].p99_ms);
    assert!((m.generator.offered_spans_per_s - 30_000.0).abs() < 1e-6);
    // Pace: the worst shard's verdict, the slots of all shards, per-second waits added.
    let pace = m.generator.pace.as_ref().unwrap();
    assert_eq!(pace.limited_by, Limiter::Generator);
    assert_eq!(pace.max_in_flight, 3 * 64);
    assert_eq!(m.series[0].generator_behind_ms, 3.0 * 600.0);
    let mut mixed = shards.clone();
    mixed[1].generator.pace = None;
    assert_eq!(merge(&mixed).unwrap().generator.pace, None);
    assert!(!m.passed);
    assert_eq!(m.thresholds.len(), 2);
    assert!(m.thresholds[0].actual.contains("shard 2/3: 612 ms FAIL"));
    // Same backend measured by every shard: averaged, not tripled.
    let res = m.resources.as_ref().unwrap();
    assert!((res.avg_cores - 1.7).abs() < 1e-9);
    assert_eq!(m.environment.cpus, 6);
    // The merged report renders.
    assert!(render_markdown(&m).contains("3 merged"));
}

#[test]
fn merge_refuses_mismatched_or_duplicate_shards() {
    let mut other = report(1);
    other.scenario.seed = 7;
    let e = merge(&[report(0), other]).unwrap_err().to_string();
    assert!(e.contains("merge input #2") && e.contains("seed 7"), "{e}");
    let mut newer = report(1);
    newer.schema_version = SCHEMA_VERSION + 1;
    let e = merge(&[report(0), newer]).unwrap_err().to_string();
    assert!(e.contains("schema_version"), "{e}");
    let e = merge(&[report(0), report(0)]).unwrap_err().to_string();
    assert!(e.contains("appears twice"), "{e}");
    assert!(merge(&[]).is_err());
}
