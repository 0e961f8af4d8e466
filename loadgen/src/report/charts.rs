//! The report's charts, computed from its data and drawn with [`super::svg`].

use hdrhistogram::Histogram;

use super::model::{Percentiles, Report};
use super::svg::{Chart, Series, Side, XScale};
use crate::stats::hist;

const BLUE: &str = "#1f77b4";
const GREEN: &str = "#2ca02c";
const GREY: &str = "#7f7f7f";
const RED: &str = "#d62728";
const ORANGE: &str = "#ff7f0e";
const PURPLE: &str = "#9467bd";

/// A chart and the sentence under it.
pub(crate) struct Figure {
    /// The chart.
    pub chart: Chart,
    /// What to read from it.
    pub caption: &'static str,
}

/// Every chart of the report, in display order. Charts without data are still returned
/// (they render a "No data" note), so a page always has the same five charts.
pub(crate) fn figures(r: &Report) -> Vec<Figure> {
    vec![
        Figure {
            chart: throughput(r),
            caption: "Spans per second offered by the schedule, sent by loadgen and accepted \
                      by the backend; failed requests per second on the right axis. Sent below \
                      offered means the generator fell behind.",
        },
        Figure {
            chart: latency_over_time(r),
            caption: "Export latency per second. Corrected latency counts from the intended \
                      send time, so it includes time spent queued behind a slow backend; a gap \
                      to the uncorrected p99 is that queueing.",
        },
        Figure {
            chart: latency_distribution(r),
            caption: "Whole-run export latency by percentile (HdrHistogram percentile \
                      spectrum; each step right is one more nine).",
        },
        Figure {
            chart: time_to_queryable(r),
            caption: "Time from intended send until a sampled trace was readable through the \
                      query API, by percentile.",
        },
        Figure {
            chart: resources(r),
            caption: "Backend CPU cores (left axis) and resident memory (right axis) per \
                      second.",
        },
    ]
}

fn series(name: &str, color: &'static str, side: Side, points: Vec<(f64, f64)>) -> Series {
    Series {
        name: name.to_owned(),
        color,
        dashed: false,
        side,
        points,
    }
}

fn dashed(mut s: Series) -> Series {
    s.dashed = true;
    s
}

fn throughput(r: &Report) -> Chart {
    let pts = |f: &dyn Fn(&super::model::SecondPoint) -> f64| -> Vec<(f64, f64)> {
        r.series.iter().map(|p| (f64::from(p.t), f(p))).collect()
    };
    Chart {
        kind: "throughput",
        title: "Throughput".to_owned(),
        x_label: "seconds since start".to_owned(),
        y_label: "spans/s".to_owned(),
        y2_label: "failed requests/s".to_owned(),
        x_scale: XScale::Linear,
        series: vec![
            dashed(series(
                "offered",
                GREY,
                Side::Left,
                pts(&|p| p.spans_offered as f64),
            )),
            series("sent", BLUE, Side::Left, pts(&|p| p.spans_sent as f64)),
            series(
                "accepted",
                GREEN,
                Side::Left,
                pts(&|p| p.spans_accepted as f64),
            ),
            series("errors", RED, Side::Right, pts(&|p| p.errors as f64)),
        ],
        empty_reason: "the report has no per-second series".to_owned(),
    }
}

fn latency_over_time(r: &Report) -> Chart {
    // Seconds without any completed request carry zeros, not latencies: skip them.
    let measured: Vec<_> = r
        .series
        .iter()
        .filter(|p| p.p50_ms > 0.0 || p.p99_ms > 0.0 || p.p99_uncorrected_ms > 0.0)
        .collect();
    let pts = |f: &dyn Fn(&super::model::SecondPoint) -> f64| -> Vec<(f64, f64)> {
        measured.iter().map(|p| (f64::from(p.t), f(p))).collect()
    };
    Chart {
        kind: "latency-over-time",
        title: "Export latency over time".to_owned(),
        x_label: "seconds since start".to_owned(),
        y_label: "latency (ms)".to_owned(),
        y2_label: String::new(),
        x_scale: XScale::Linear,
        series: vec![
            series("p50 corrected", BLUE, Side::Left, pts(&|p| p.p50_ms)),
            series("p99 corrected", ORANGE, Side::Left, pts(&|p| p.p99_ms)),
            dashed(series(
                "p99 uncorrected",
                GREY,
                Side::Left,
                pts(&|p| p.p99_uncorrected_ms),
            )),
        ],
        empty_reason: "no request completed".to_owned(),
    }
}

/// Decode histogram `name`; `Err` carries the reason for a "No data" note.
fn histogram(r: &Report, name: &str) -> Result<Histogram<u64>, String> {
    let text = r
        .histograms
        .get(name)
        .ok_or_else(|| format!("the report has no {name} histogram"))?;
    let h = hist::decode(text).map_err(|e| format!("histogram {name}: {e}"))?;
    if h.is_empty() {
        return Err(format!("histogram {name} is empty"));
    }
    Ok(h)
}

/// Percentile spectrum: (nines, value in ms) from an HdrHistogram.
pub(crate) fn spectrum(h: &Histogram<u64>, unit_per_ms: f64) -> Vec<(f64, f64)> {
    let cap = (h.len() as f64).log10().max(1.0);
    let mut out: Vec<(f64, f64)> = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 {
            cap
        } else {
            (-(1.0 - q).log10()).min(cap)
        };
        let y = v.value_iterated_to() as f64 / unit_per_ms;
        if let Some(last) = out.last_mut()
            && last.0 >= x
        {
            // Same x (capped tail): keep the larger value only.
            last.1 = last.1.max(y);
            continue;
        }
        out.push((x, y));
    }
    out
}

/// Spectrum points from a summary when no histogram is stored.
fn spectrum_from_summary(p: &Percentiles) -> Vec<(f64, f64)> {
    if p.count == 0 {
        return Vec::new();
    }
    let cap = (p.count as f64).log10().max(3.0);
    vec![
        (0.0, p.min),
        (0.5f64.log10().abs(), p.p50),
        (1.0, p.p90),
        (2.0, p.p99),
        (3.0, p.p999),
        (cap, p.max),
    ]
}

fn latency_distribution(r: &Report) -> Chart {
    let mut reasons = Vec::new();
    let mut spec = |name: &str| match histogram(r, name) {
        Ok(h) => spectrum(&h, 1000.0),
        Err(e) => {
            reasons.push(e);
            Vec::new()
        }
    };
    let corrected = spec("export_corrected_us");
    let uncorrected = spec("export_uncorrected_us");
    Chart {
        kind: "latency-distribution",
        title: "Export latency by percentile".to_owned(),
        x_label: "percentile".to_owned(),
        y_label: "latency (ms)".to_owned(),
        y2_label: String::new(),
        x_scale: XScale::Nines,
        series: vec![
            series("corrected", ORANGE, Side::Left, corrected),
            dashed(series("uncorrected", GREY, Side::Left, uncorrected)),
        ],
        empty_reason: reasons.join("; "),
    }
}

fn time_to_queryable(r: &Report) -> Chart {
    let (points, reason, name) = match histogram(r, "time_to_queryable_ms") {
        Ok(h) => (spectrum(&h, 1.0), String::new(), "time to queryable"),
        Err(e) => match &r.verification {
            None => (
                Vec::new(),
                "read-back verification did not run".to_owned(),
                "time to queryable",
            ),
            Some(v) => (
                spectrum_from_summary(&v.time_to_queryable),
                e,
                "time to queryable (from summary percentiles)",
            ),
        },
    };
    Chart {
        kind: "time-to-queryable",
        title: "Time to queryable by percentile".to_owned(),
        x_label: "percentile".to_owned(),
        y_label: "time (ms)".to_owned(),
        y2_label: String::new(),
        x_scale: XScale::Nines,
        series: vec![series(name, PURPLE, Side::Left, points)],
        empty_reason: reason,
    }
}

fn resources(r: &Report) -> Chart {
    let samples = r.resources.as_ref().map_or(&[][..], |x| &x.samples[..]);
    let mib = 1024.0 * 1024.0;
    Chart {
        kind: "resources",
        title: "Backend CPU and memory".to_owned(),
        x_label: "seconds since start".to_owned(),
        y_label: "CPU cores".to_owned(),
        y2_label: "RSS (MiB)".to_owned(),
        x_scale: XScale::Linear,
        series: vec![
            series(
                "CPU cores",
                BLUE,
                Side::Left,
                samples
                    .iter()
                    .map(|s| (f64::from(s.t), s.cpu_cores))
                    .collect(),
            ),
            series(
                "RSS",
                GREEN,
                Side::Right,
                samples
                    .iter()
                    .map(|s| (f64::from(s.t), s.rss_bytes as f64 / mib))
                    .collect(),
            ),
        ],
        empty_reason: if r.resources.is_some() {
            "no resource samples were recorded".to_owned()
        } else {
            "backend resources were not measured".to_owned()
        },
    }
}
