//! The rate plan: spans per second over time, and when the n-th span is due.
//!
//! A plan is a list of linear segments (a constant rate is one flat segment; a stage ramps
//! from the previous target to its own). `due(n)` inverts the cumulative integral, so the
//! scheduler knows the intended send time of every request however the rate changes.

use super::{Rate, RateUnit};

/// One linear segment of the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    start: f64,
    len: f64,
    from: f64,
    to: f64,
    /// Spans due before this segment starts.
    before: f64,
}

impl Segment {
    fn spans_within(&self, tau: f64) -> f64 {
        let slope = (self.to - self.from) / self.len;
        self.from * tau + slope * tau * tau / 2.0
    }
    fn total(&self) -> f64 {
        self.spans_within(self.len)
    }
}

/// Spans per second over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePlan {
    segments: Vec<Segment>,
}

impl RatePlan {
    /// The plan of a scenario's `rate`, in spans/s. `spans_per_trace` converts a traces/s
    /// rate (the mean spans per trace of the workload mix).
    pub fn new(rate: &Rate, duration_s: f64, spans_per_trace: f64) -> Self {
        let k = match rate.unit {
            RateUnit::SpansPerSecond => 1.0,
            RateUnit::TracesPerSecond => spans_per_trace.max(1.0),
        };
        let mut raw: Vec<(f64, f64, f64)> = Vec::new(); // (len, from, to)
        if rate.stages.is_empty() {
            raw.push((duration_s, rate.value * k, rate.value * k));
        } else {
            let mut prev = 0.0;
            for s in &rate.stages {
                raw.push((s.duration.0.as_secs_f64(), prev, s.target * k));
                prev = s.target * k;
            }
        }
        let mut segments = Vec::with_capacity(raw.len());
        let (mut start, mut before) = (0.0, 0.0);
        for (len, from, to) in raw {
            if len <= 0.0 {
                continue;
            }
            let seg = Segment {
                start,
                len,
                from,
                to,
                before,
            };
            before += seg.total();
            start += len;
            segments.push(seg);
        }
        RatePlan { segments }
    }

    /// A plan scaled by `factor` (a shard's share).
    pub fn scaled(mut self, factor: f64) -> Self {
        for s in &mut self.segments {
            s.from *= factor;
            s.to *= factor;
            s.before *= factor;
        }
        self
    }

    /// Run length in seconds.
    pub fn duration(&self) -> f64 {
        self.segments.last().map_or(0.0, |s| s.start + s.len)
    }

    /// Spans due over the whole run.
    pub fn total_spans(&self) -> f64 {
        self.segments.last().map_or(0.0, |s| s.before + s.total())
    }

    /// Highest rate in the plan.
    pub fn peak(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.from.max(s.to))
            .fold(0.0, f64::max)
    }

    /// Rate at time `t`.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.segments
            .iter()
            .find(|s| t >= s.start && t < s.start + s.len)
            .map_or(0.0, |s| s.from + (s.to - s.from) * (t - s.start) / s.len)
    }

    /// Spans due by time `t`.
    pub fn spans_by(&self, t: f64) -> f64 {
        let Some(s) = self.segments.iter().rev().find(|s| t >= s.start) else {
            return 0.0;
        };
        s.before + s.spans_within((t - s.start).min(s.len))
    }

    /// Time (seconds from start) at which `n` spans are due; `None` past the end.
    pub fn due(&self, n: f64) -> Option<f64> {
        let s = self
            .segments
            .iter()
            .find(|s| n <= s.before + s.total() + 1e-9)?;
        let need = (n - s.before).max(0.0);
        let slope = (s.to - s.from) / s.len;
        let tau = if slope.abs() < 1e-12 {
            if s.from <= 0.0 {
                return None;
            }
            need / s.from
        } else {
            // slope/2 τ² + from τ − need = 0
            let disc = s.from * s.from + 2.0 * slope * need;
            (-s.from + disc.max(0.0).sqrt()) / slope
        };
        Some(s.start + tau.clamp(0.0, s.len))
    }

    /// The stages that hold one rate, as `(start_s, end_s, spans_per_s)` in time order:
    /// flat segments above zero, adjacent ones at the same rate joined (a constant rate is
    /// one hold over the whole run). Ramps are left out.
    pub fn holds(&self) -> Vec<(f64, f64, f64)> {
        let mut out: Vec<(f64, f64, f64)> = Vec::new();
        for s in &self.segments {
            let flat = (s.from - s.to).abs() <= 1e-9 * s.from.abs().max(1.0);
            if !flat || s.from <= 0.0 {
                continue;
            }
            match out.last_mut() {
                Some(last)
                    if (last.1 - s.start).abs() < 1e-9
                        && (last.2 - s.from).abs() <= 1e-9 * s.from.max(1.0) =>
                {
                    last.1 = s.start + s.len;
                }
                _ => out.push((s.start, s.start + s.len, s.from)),
            }
        }
        out
    }

    /// Human description, e.g. `10000 spans/s for 30s`.
    pub fn describe(&self) -> String {
        match self.segments.as_slice() {
            [s] if (s.from - s.to).abs() < 1e-9 => {
                format!("{:.0} spans/s for {:.0}s", s.from, s.len)
            }
            segs => segs
                .iter()
                .map(|s| format!("{:.0}→{:.0} spans/s over {:.0}s", s.from, s.to, s.len))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::scenario::{HumanDuration, Stage};
    use std::time::Duration;

    fn rate(value: f64, stages: Vec<(f64, u64)>) -> Rate {
        let mut r: Rate = serde_saphyr::from_str("value: 1").unwrap();
        r.value = value;
        r.stages = stages
            .into_iter()
            .map(|(target, s)| Stage {
                target,
                duration: HumanDuration(Duration::from_secs(s)),
            })
            .collect();
        r
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let p = RatePlan::new(&rate(1000.0, vec![]), 10.0, 1.0);
        assert_eq!(p.total_spans(), 10_000.0);
        assert!((p.due(100.0).unwrap() - 0.1).abs() < 1e-9);
        assert!((p.due(10_000.0).unwrap() - 10.0).abs() < 1e-9);
        assert!(p.due(10_001.0).is_none());
    }

    #[test]
    fn ramp_then_hold_inverts_the_integral() {
        // 0 → 100 over 10 s (500 spans), then hold 100 for 10 s (1000 spans).
        let p = RatePlan::new(&rate(0.0, vec![(100.0, 10), (100.0, 10)]), 0.0, 1.0);
        assert!((p.total_spans() - 1500.0).abs() < 1e-6);
        assert!((p.spans_by(10.0) - 500.0).abs() < 1e-6);
        // Half the ramp's spans are due at t = 10/√2.
        assert!((p.due(250.0).unwrap() - 10.0 / 2f64.sqrt()).abs() < 1e-6);
        assert!((p.due(1000.0).unwrap() - 15.0).abs() < 1e-6);
        assert_eq!(p.peak(), 100.0);
        assert!((p.rate_at(5.0) - 50.0).abs() < 1e-9);
        for n in [1.0, 77.0, 499.0, 501.0, 1499.0] {
            let t = p.due(n).unwrap();
            assert!((p.spans_by(t) - n).abs() < 1e-6, "n={n}");
        }
    }

    #[test]
    fn holds_are_the_flat_stages_with_neighbours_joined() {
        let p = RatePlan::new(
            &rate(
                0.0,
                vec![(100.0, 1), (100.0, 2), (100.0, 3), (300.0, 1), (300.0, 2)],
            ),
            0.0,
            1.0,
        );
        assert_eq!(p.holds(), vec![(1.0, 6.0, 100.0), (7.0, 9.0, 300.0)]);
        let c = RatePlan::new(&rate(50.0, vec![]), 4.0, 1.0).scaled(0.5);
        assert_eq!(c.holds(), vec![(0.0, 4.0, 25.0)]);
        let zero = RatePlan::new(&rate(0.0, vec![(0.0, 2), (10.0, 1)]), 0.0, 1.0);
        assert!(zero.holds().is_empty());
    }

    #[test]
    fn traces_per_second_and_shards_scale() {
        let mut r = rate(10.0, vec![]);
        r.unit = RateUnit::TracesPerSecond;
        let p = RatePlan::new(&r, 2.0, 5.0).scaled(0.5);
        assert_eq!(p.total_spans(), 50.0);
        assert_eq!(p.peak(), 25.0);
    }
}
