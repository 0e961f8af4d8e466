//! A/B comparison of runs (e.g. backend version N vs N+1, same scenario and seed).
//!
//! # Statistics
//!
//! Each side may hold several runs. Per metric, each side is summarised by its **median**
//! over runs; the table shows the difference of medians (B − A) and the ratio B/A. When
//! both sides have at least two runs, a **95% percentile-bootstrap interval** for the
//! difference of medians is computed: 2,000 resamples of each side with replacement, seeded
//! with a fixed value so the same inputs always give the same interval. With few runs (fewer
//! than ~5 per side) the interval is coarse; it is an honest "is this noise?" check, not a
//! precise estimate. With one run on a side there is no interval ("n=1, no interval").
//!
//! # Regressions
//!
//! A limit ([`CompareThresholds`]) flags a regression when the medians moved in the
//! metric's bad direction by more than the limit **and**, when an interval exists, the
//! interval excludes zero on the bad side (the change is unlikely to be noise). With n=1
//! the point change alone decides. A [`LimitKind::Bound`] (`lost=0`) is checked against the
//! worst B run and needs no interval. A limit that cannot be checked because a side lacks
//! the metric (e.g. `lost=0` without read-back) is reported as a regression: a gate must
//! not pass silently.

use std::fmt::Write as _;

use serde::Serialize;

pub use super::gate::{CompareThresholds, Limit, LimitKind, Metric, parse_threshold};
use super::model::Report;

/// Bootstrap resamples.
const RESAMPLES: usize = 2000;
/// Bootstrap seed (fixed: the same inputs always give the same interval).
const SEED: u64 = 0x5EED_CAFE_F00D_0001;

/// One metric on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// Which metric.
    pub metric: Metric,
    /// Values of the A runs that have the metric.
    pub a_runs: Vec<f64>,
    /// Values of the B runs that have the metric.
    pub b_runs: Vec<f64>,
    /// Median of A.
    pub a: Option<f64>,
    /// Median of B.
    pub b: Option<f64>,
    /// B − A (medians).
    pub delta: Option<f64>,
    /// B / A (medians), when A is not zero.
    pub ratio: Option<f64>,
    /// 95% bootstrap interval of the difference of medians, when both sides have ≥ 2 runs.
    pub interval: Option<(f64, f64)>,
    /// Limits on this metric and their verdicts (`p99=+10%: FAIL`).
    pub gates: Vec<String>,
    /// True when a limit on this metric flagged a regression.
    pub regressed: bool,
}

/// The result of [`compare`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// What A is (scenario, target, version).
    pub a_label: String,
    /// What B is.
    pub b_label: String,
    /// Runs on side A.
    pub a_count: usize,
    /// Runs on side B.
    pub b_count: usize,
    /// One row per metric.
    pub metrics: Vec<MetricComparison>,
    /// Regressions beyond the limits; non-empty ⇒ the CLI exits 1.
    pub regressions: Vec<String>,
    /// Caveats: different scenarios, saturated backends or generator bottlenecks, changes not
    /// flagged as noise.
    pub notes: Vec<String>,
    /// How the statistics were computed.
    pub method: String,
}

/// Compare runs `a` (baseline) with runs `b` (candidate) under `thresholds`.
pub fn compare(a: &[Report], b: &[Report], thresholds: &CompareThresholds) -> Comparison {
    let mut regressions = Vec::new();
    let mut notes = Vec::new();
    for (side, runs) in [("A", a), ("B", b)] {
        if runs.is_empty() {
            regressions.push(format!("side {side} has no reports: nothing to compare"));
        }
    }
    caveats(a, b, &mut notes);
    let mut metrics = Vec::new();
    for metric in Metric::ALL {
        let row = compare_metric(metric, a, b, thresholds, &mut regressions, &mut notes);
        metrics.push(row);
    }
    let method = if a.len() >= 2 && b.len() >= 2 {
        format!(
            "medians over runs (A n={}, B n={}); 95% percentile-bootstrap interval of the \
             difference of medians ({RESAMPLES} resamples, fixed seed); a regression needs \
             the change beyond its limit and the interval excluding zero",
            a.len(),
            b.len()
        )
    } else {
        format!(
            "A n={}, B n={}: n=1, no interval; a regression is a change beyond its limit \
             (repeat runs per side for an interval)",
            a.len(),
            b.len()
        )
    };
    Comparison {
        a_label: side_label(a),
        b_label: side_label(b),
        a_count: a.len(),
        b_count: b.len(),
        metrics,
        regressions,
        notes,
        method,
    }
}

fn side_label(runs: &[Report]) -> String {
    let mut labels: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} against {}",
                r.scenario.name,
                super::summary::target_label(r)
            )
        })
        .collect();
    labels.dedup();
    match labels.len() {
        0 => "no runs".to_owned(),
        1 => labels.remove(0),
        _ => labels.join(" | "),
    }
}

fn caveats(a: &[Report], b: &[Report], notes: &mut Vec<String>) {
    let all: Vec<(String, &Report)> = a
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("A#{}", i + 1), r))
        .chain(
            b.iter()
                .enumerate()
                .map(|(i, r)| (format!("B#{}", i + 1), r)),
        )
        .collect();
    if let Some((_, first)) = all.first() {
        let s0 = &first.scenario;
        for (name, r) in &all[1..] {
            let s = &r.scenario;
            let mut diffs = Vec::new();
            if s.name != s0.name {
                diffs.push(format!("scenario {} vs {}", s0.name, s.name));
            }
            if s.seed != s0.seed {
                diffs.push(format!("seed {} vs {}", s0.seed, s.seed));
            }
            if s.rate != s0.rate {
                diffs.push(format!("rate `{}` vs `{}`", s0.rate, s.rate));
            }
            if (
                s.protocol.as_str(),
                s.compression.as_str(),
                s.batch,
                s.mode.as_str(),
            ) != (
                s0.protocol.as_str(),
                s0.compression.as_str(),
                s0.batch,
                s0.mode.as_str(),
            ) {
                diffs.push("protocol, compression, batch or mode".to_owned());
            }
            if r.environment.cpus != first.environment.cpus {
                diffs.push(format!(
                    "{} vs {} CPUs",
                    first.environment.cpus, r.environment.cpus
                ));
            }
            if !diffs.is_empty() {
                notes.push(format!(
                    "{name} differs from A#1: {} — not a like-for-like comparison",
                    diffs.join(", ")
                ));
            }
        }
    }
    for (name, r) in &all {
        notes.extend(super::pace::compare_note(name, &r.generator));
    }
}

fn compare_metric(
    metric: Metric,
    a: &[Report],
    b: &[Report],
    thresholds: &CompareThresholds,
    regressions: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> MetricComparison {
    let values = |runs: &[Report]| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| metric.value(r))
            .filter(|v| v.is_finite())
            .collect()
    };
    let a_runs = values(a);
    let b_runs = values(b);
    let am = median(&a_runs);
    let bm = median(&b_runs);
    let delta = am.zip(bm).map(|(x, y)| y - x);
    let ratio = am.zip(bm).and_then(|(x, y)| (x != 0.0).then(|| y / x));
    let interval = (a_runs.len() >= 2 && b_runs.len() >= 2)
        .then(|| bootstrap_interval(&a_runs, &b_runs, SEED ^ metric as u64));
    // Positive = worse.
    let orient = if metric.higher_is_worse() { 1.0 } else { -1.0 };
    let significant = interval.is_none_or(|(lo, hi)| {
        if metric.higher_is_worse() {
            lo > 0.0
        } else {
            hi < 0.0
        }
    });
    let mut gates = Vec::new();
    let mut regressed = false;
    for limit in thresholds.for_metric(metric) {
        let (exceeded, change) = match limit.kind {
            LimitKind::Bound(v) => {
                let worst = b_runs
                    .iter()
                    .copied()
                    .reduce(|x, y| if (y - x) * orient > 0.0 { y } else { x });
                match worst {
                    None => (None, String::new()),
                    Some(w) => (
                        Some((w - v) * orient > 0.0),
                        format!("worst B run {}", metric.fmt(w)),
                    ),
                }
            }
            LimitKind::Relative(f) => match (am, delta) {
                (Some(x), Some(d)) => {
                    let worse = d * orient;
                    let exceeded = if x == 0.0 {
                        worse > 0.0
                    } else {
                        worse / x.abs() > f
                    };
                    (Some(exceeded), describe(metric, x, d))
                }
                _ => (None, String::new()),
            },
            LimitKind::Absolute(n) => match (am, delta) {
                (Some(x), Some(d)) => (Some(d * orient > n), describe(metric, x, d)),
                _ => (None, String::new()),
            },
        };
        let needs_interval = !matches!(limit.kind, LimitKind::Bound(_));
        let ci = interval
            .map(|(lo, hi)| {
                format!(
                    ", 95% CI of Δ {} .. {}",
                    metric.fmt_delta(lo),
                    metric.fmt_delta(hi)
                )
            })
            .unwrap_or_default();
        match exceeded {
            None => {
                regressed = true;
                gates.push(format!("{}: cannot check", limit.text));
                regressions.push(format!(
                    "{}: cannot check `{}`: a side has no {} data",
                    metric.label(),
                    limit.text,
                    metric.key()
                ));
            }
            Some(true) if !needs_interval || significant => {
                regressed = true;
                gates.push(format!("{}: FAIL", limit.text));
                regressions.push(format!(
                    "{}: {change}{ci} — beyond `{}`",
                    metric.label(),
                    limit.text
                ));
            }
            Some(true) => {
                gates.push(format!("{}: within noise", limit.text));
                notes.push(format!(
                    "{}: {change} is beyond `{}` but the interval{ci} includes zero: not \
                     flagged (could be noise; add runs)",
                    metric.label(),
                    limit.text
                ));
            }
            Some(false) => gates.push(format!("{}: ok", limit.text)),
        }
    }
    MetricComparison {
        metric,
        a_runs,
        b_runs,
        a: am,
        b: bm,
        delta,
        ratio,
        interval,
        gates,
        regressed,
    }
}

fn describe(metric: Metric, a: f64, d: f64) -> String {
    let rel = if a != 0.0 {
        format!(" ({})", super::format::signed_pct(d / a.abs()))
    } else {
        String::new()
    };
    format!("{} → {}{rel}", metric.fmt(a), metric.fmt(a + d))
}

/// Median of `v`; `None` when empty.
pub(crate) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// 95% percentile-bootstrap interval of `median(b) - median(a)`.
fn bootstrap_interval(a: &[f64], b: &[f64], seed: u64) -> (f64, f64) {
    let mut rng = SplitMix64(seed);
    let mut diffs = Vec::with_capacity(RESAMPLES);
    let mut buf_a = vec![0.0; a.len()];
    let mut buf_b = vec![0.0; b.len()];
    for _ in 0..RESAMPLES {
        for x in buf_a.iter_mut() {
            *x = a[rng.below(a.len())];
        }
        for x in buf_b.iter_mut() {
            *x = b[rng.below(b.len())];
        }
        if let (Some(ma), Some(mb)) = (median(&buf_a), median(&buf_b)) {
            diffs.push(mb - ma);
        }
    }
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((diffs.len() as f64 - 1.0) * q).round() as usize;
        diffs.get(i).copied().unwrap_or(0.0)
    };
    (at(0.025), at(0.975))
}

/// SplitMix64: tiny, deterministic, good enough for resampling indices.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// Render `c` for the terminal: verdict first, then a markdown table (aligned, so it reads
/// well as plain text too), then notes.
pub fn render_comparison(c: &Comparison) -> String {
    let mut out = String::new();
    if c.regressions.is_empty() {
        let _ = writeln!(out, "NO REGRESSION: B is within every limit given.");
    } else {
        let _ = writeln!(out, "REGRESSION: {} limit(s) exceeded", c.regressions.len());
        for r in &c.regressions {
            let _ = writeln!(out, "- {r}");
        }
    }
    let _ = writeln!(out);
    let runs = |n: usize| {
        if n == 1 {
            "1 run".to_owned()
        } else {
            format!("{n} runs")
        }
    };
    let _ = writeln!(out, "A ({}): {}", runs(c.a_count), c.a_label);
    let _ = writeln!(out, "B ({}): {}", runs(c.b_count), c.b_label);
    let _ = writeln!(out, "Method: {}", c.method);
    let _ = writeln!(out);
    let several = c.a_count >= 2 || c.b_count >= 2;
    let (ha, hb) = if several {
        ("A (median)", "B (median)")
    } else {
        ("A", "B")
    };
    let header = ["Metric", ha, hb, "Δ B−A", "B/A", "95% CI of Δ", "Gate"]
        .map(str::to_owned)
        .to_vec();
    let na = || "n/a".to_owned();
    let rows = c
        .metrics
        .iter()
        .map(|m| {
            let side = |v: Option<f64>, n: usize| match v {
                Some(v) if several => format!("{} (n={n})", m.metric.fmt(v)),
                Some(v) => m.metric.fmt(v),
                None => na(),
            };
            let ci = match m.interval {
                Some((lo, hi)) => {
                    format!("{} .. {}", m.metric.fmt_delta(lo), m.metric.fmt_delta(hi))
                }
                None if m.a.is_some() && m.b.is_some() => "n=1, no interval".to_owned(),
                None => na(),
            };
            vec![
                m.metric.label().to_owned(),
                side(m.a, m.a_runs.len()),
                side(m.b, m.b_runs.len()),
                m.delta.map_or_else(na, |d| m.metric.fmt_delta(d)),
                m.ratio
                    .map_or_else(na, |r| format!("{}×", super::format::num(r, 3))),
                ci,
                if m.gates.is_empty() {
                    "–".to_owned()
                } else {
                    m.gates.join("; ")
                },
            ]
        })
        .collect();
    super::markdown::table(&mut out, &super::summary::Table { header, rows });
    if !c.notes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Notes:");
        for n in &c.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_bootstrap() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let a = [100.0, 101.0, 99.0, 100.5, 100.2];
        let b = [120.0, 121.0, 119.0, 120.5, 119.8];
        let (lo, hi) = bootstrap_interval(&a, &b, 1);
        assert!(lo > 15.0 && hi < 25.0, "{lo} {hi}");
        assert_eq!(bootstrap_interval(&a, &b, 1), (lo, hi), "deterministic");
        let noisy = bootstrap_interval(&[90.0, 130.0, 100.0], &[95.0, 140.0, 105.0], 1);
        assert!(noisy.0 <= 0.0 && noisy.1 >= 0.0, "{noisy:?}");
    }
}
