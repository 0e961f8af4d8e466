//! Regression gates for `compare`: the metrics that can be compared and the limits parsed
//! from command-line text such as `p99=+10%`, `throughput=-5%`, `errors=+0.01`, `lost=0`.

use serde::Serialize;

use super::format::{bytes, int, num, pct, rate, signed};
use super::model::Report;
use super::summary::{accepted_per_s, failed_requests};
use crate::error::{Error, Result};

/// A metric compared between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Spans sent per second (`achieved`).
    Achieved,
    /// Spans the backend accepted per second (`throughput`).
    Throughput,
    /// Corrected export latency p50, ms (`p50`).
    P50,
    /// Corrected export latency p99, ms (`p99`).
    P99,
    /// Corrected export latency p99.9, ms (`p999`).
    P999,
    /// Failed requests / requests sent, a fraction (`errors`).
    Errors,
    /// Estimated spans lost, from read-back (`lost`).
    Lost,
    /// Time-to-queryable p99, ms (`ttq`).
    Ttq,
    /// Backend CPU cores, average (`cpu`).
    Cpu,
    /// Spans accepted per backend core-second (`efficiency`).
    Efficiency,
    /// Backend peak RSS, bytes (`rss`).
    Rss,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 11] = [
        Metric::Achieved,
        Metric::Throughput,
        Metric::P50,
        Metric::P99,
        Metric::P999,
        Metric::Errors,
        Metric::Lost,
        Metric::Ttq,
        Metric::Cpu,
        Metric::Efficiency,
        Metric::Rss,
    ];

    /// Name used in threshold text (`p99=+10%`).
    pub fn key(self) -> &'static str {
        match self {
            Metric::Achieved => "achieved",
            Metric::Throughput => "throughput",
            Metric::P50 => "p50",
            Metric::P99 => "p99",
            Metric::P999 => "p999",
            Metric::Errors => "errors",
            Metric::Lost => "lost",
            Metric::Ttq => "ttq",
            Metric::Cpu => "cpu",
            Metric::Efficiency => "efficiency",
            Metric::Rss => "rss",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Achieved => "achieved spans/s (sent)",
            Metric::Throughput => "accepted spans/s",
            Metric::P50 => "export p50 (corrected)",
            Metric::P99 => "export p99 (corrected)",
            Metric::P999 => "export p99.9 (corrected)",
            Metric::Errors => "error rate",
            Metric::Lost => "lost spans (estimated)",
            Metric::Ttq => "time to queryable p99",
            Metric::Cpu => "backend CPU cores",
            Metric::Efficiency => "spans per core-second",
            Metric::Rss => "backend peak RSS",
        }
    }

    /// True when a larger value is worse (latency, errors, loss, resources).
    pub fn higher_is_worse(self) -> bool {
        !matches!(
            self,
            Metric::Achieved | Metric::Throughput | Metric::Efficiency
        )
    }

    /// The metric's value in `r`, when `r` has it.
    pub fn value(self, r: &Report) -> Option<f64> {
        let lat = &r.latency.corrected;
        let has_lat = lat.count > 0;
        match self {
            Metric::Achieved => Some(r.generator.achieved_spans_per_s),
            Metric::Throughput => Some(accepted_per_s(r)),
            Metric::P50 => has_lat.then_some(lat.p50),
            Metric::P99 => has_lat.then_some(lat.p99),
            Metric::P999 => has_lat.then_some(lat.p999),
            Metric::Errors => (r.totals.requests_sent > 0)
                .then(|| failed_requests(r) as f64 / r.totals.requests_sent as f64),
            Metric::Lost => r
                .verification
                .as_ref()
                .map(|v| v.estimated_lost_spans as f64),
            Metric::Ttq => r
                .verification
                .as_ref()
                .filter(|v| v.time_to_queryable.count > 0)
                .map(|v| v.time_to_queryable.p99),
            Metric::Cpu => r.resources.as_ref().map(|x| x.avg_cores),
            Metric::Efficiency => r.resources.as_ref().map(|x| x.spans_per_core_second),
            Metric::Rss => r.resources.as_ref().map(|x| x.peak_rss_bytes as f64),
        }
    }

    /// A value with its unit.
    pub(crate) fn fmt(self, v: f64) -> String {
        match self {
            Metric::Achieved | Metric::Throughput | Metric::Efficiency => rate(v),
            Metric::P50 | Metric::P99 | Metric::P999 | Metric::Ttq => super::format::ms(v),
            Metric::Errors => pct(v),
            Metric::Lost => int(v.max(0.0).round() as u64),
            Metric::Cpu => num(v, 2),
            Metric::Rss => bytes(v),
        }
    }

    /// A difference with its unit (`+12.3 ms`, `+0.50 pp`).
    pub(crate) fn fmt_delta(self, d: f64) -> String {
        let sign = if d > 0.0 { "+" } else { "" };
        match self {
            Metric::Errors => format!("{sign}{} pp", num(d * 100.0, 2)),
            Metric::Rss => format!("{sign}{}", bytes(d)),
            Metric::P50 | Metric::P99 | Metric::P999 | Metric::Ttq => format!("{} ms", signed(d)),
            _ => signed(d),
        }
    }

    fn parse(name: &str) -> Option<Metric> {
        let m = match name.trim().to_ascii_lowercase().as_str() {
            "achieved" | "sent" => Metric::Achieved,
            "throughput" | "accepted" => Metric::Throughput,
            "p50" => Metric::P50,
            "p99" => Metric::P99,
            "p999" | "p99.9" => Metric::P999,
            "errors" | "error_rate" => Metric::Errors,
            "lost" | "lost_spans" => Metric::Lost,
            "ttq" | "time_to_queryable" => Metric::Ttq,
            "cpu" | "cores" => Metric::Cpu,
            "efficiency" | "spans_per_core_second" => Metric::Efficiency,
            "rss" | "peak_rss" => Metric::Rss,
            _ => return None,
        };
        Some(m)
    }
}

/// How far a metric may move in its bad direction (up for latency, down for throughput).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// B may be worse than A by at most this fraction of A (`p99=+10%` → 0.10).
    Relative(f64),
    /// B may be worse than A by at most this much, in the metric's unit (`errors=+0.01`).
    Absolute(f64),
    /// The worst B run must not be worse than this value (`lost=0`, `throughput=50000`).
    Bound(f64),
}

/// One parsed limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limit {
    /// Metric it applies to.
    pub metric: Metric,
    /// The limit.
    pub kind: LimitKind,
    /// The text it was parsed from.
    pub text: String,
}

/// Regression limits for [`super::compare::compare`]; empty means "report only".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompareThresholds {
    /// Limits, in the order given.
    pub limits: Vec<Limit>,
}

impl CompareThresholds {
    /// Parse every text with [`parse_threshold`].
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self> {
        let limits = texts
            .iter()
            .map(|t| parse_threshold(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(CompareThresholds { limits })
    }

    /// Limits on `metric`.
    pub fn for_metric(&self, metric: Metric) -> impl Iterator<Item = &Limit> {
        self.limits.iter().filter(move |l| l.metric == metric)
    }
}

/// Parse `METRIC=VALUE`. VALUE is
/// - `+N%` / `-N%` (or `N%`): B may be worse than A by at most N percent of A;
/// - `+N` / `-N`: B may be worse than A by at most N in the metric's unit (ms for
///   latencies, spans/s, a fraction for `errors`, spans for `lost`, cores, bytes for `rss`);
/// - `N`: the worst B run must not be worse than N.
///
/// The sign, when given, must point in the metric's bad direction (`+` for latency, errors,
/// loss and resources; `-` for `throughput`, `achieved` and `efficiency`). Metrics:
/// `achieved`, `throughput`, `p50`, `p99`, `p999`, `errors`, `lost`, `ttq`, `cpu`,
/// `efficiency`, `rss`. `errors` takes no `%`: it is already a rate.
pub fn parse_threshold(text: &str) -> Result<Limit> {
    let bad = |why: String| Error::Usage(format!("threshold `{text}`: {why}"));
    let known = Metric::ALL.map(Metric::key).join(", ");
    let (name, value) = text.split_once('=').ok_or_else(|| {
        bad(format!(
            "expected METRIC=LIMIT such as p99=+10% (metrics: {known})"
        ))
    })?;
    let metric = Metric::parse(name).ok_or_else(|| {
        bad(format!(
            "unknown metric `{}` (metrics: {known})",
            name.trim()
        ))
    })?;
    let value = value.trim();
    let (sign, rest) = match value.chars().next() {
        Some('+') => (Some(1.0), &value[1..]),
        Some('-') => (Some(-1.0), &value[1..]),
        Some(_) => (None, value),
        None => return Err(bad("the limit is empty".to_owned())),
    };
    let (relative, digits) = match rest.strip_suffix('%') {
        Some(d) => (true, d.trim()),
        None => (false, rest.trim()),
    };
    let n: f64 = digits
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            bad(format!(
                "`{value}` is not a number like +10%, -5%, +0.01 or 0"
            ))
        })?;
    let bad_sign = if metric.higher_is_worse() { -1.0 } else { 1.0 };
    if sign == Some(bad_sign) {
        let (dir, good) = if metric.higher_is_worse() {
            ("rises", '+')
        } else {
            ("drops", '-')
        };
        return Err(bad(format!(
            "{} regresses when it {dir}; write {}={good}{}",
            metric.key(),
            metric.key(),
            &value[1..]
        )));
    }
    if relative && metric == Metric::Errors {
        return Err(bad(
            "errors is already a rate: give an absolute increase such as errors=+0.01 \
             (one percentage point) or a cap such as errors=0.001"
                .to_owned(),
        ));
    }
    let kind = match (relative, sign) {
        (true, _) => LimitKind::Relative(n / 100.0),
        (false, Some(_)) => LimitKind::Absolute(n),
        (false, None) => LimitKind::Bound(n),
    };
    Ok(Limit {
        metric,
        kind,
        text: text.trim().to_owned(),
    })
}
