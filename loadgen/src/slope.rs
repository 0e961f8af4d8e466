//! Whether the backend's memory keeps growing while the load holds: the trend of the RSS
//! samples over a window of the run.
//!
//! The slope is the Theil–Sen estimate (the median of the slopes between every pair of
//! samples), so a single jump (a block being written as the window ends, an allocator
//! growing an arena) does not decide it; a backend that keeps what it ingests shows a
//! steady climb that every pair agrees on. A flat backend's slope is near zero whatever the
//! rate; a leaking one's grows with the rate, so the slope is also given per accepted span.

use crate::report::model::{Report, ResourceSample};

/// The RSS trend over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct RssTrend {
    /// First second of the window (samples with `from < t <= to`).
    pub from: u32,
    /// Last second of the window.
    pub to: u32,
    /// Samples in the window.
    pub samples: usize,
    /// RSS growth, bytes per second (Theil–Sen).
    pub bytes_per_s: f64,
    /// Lowest and highest RSS in the window, bytes.
    pub min_rss: u64,
    /// See `min_rss`.
    pub max_rss: u64,
}

impl RssTrend {
    /// Growth per accepted span at `spans_per_s`: bytes kept for every span taken.
    pub fn bytes_per_span(&self, spans_per_s: f64) -> f64 {
        if spans_per_s > 0.0 {
            self.bytes_per_s / spans_per_s
        } else {
            0.0
        }
    }
}

/// Trend of the samples with `from < t <= to`; `None` with fewer than 3 samples.
pub fn rss_trend(samples: &[ResourceSample], from: u32, to: u32) -> Option<RssTrend> {
    let mut pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t > from && s.t <= to)
        .map(|s| (f64::from(s.t), s.rss_bytes as f64))
        .collect();
    // The sampler's last reading may share its rounded second with the one before.
    pts.dedup_by(|a, b| a.0 == b.0);
    if pts.len() < 3 {
        return None;
    }
    let mut slopes = Vec::with_capacity(pts.len() * (pts.len() - 1) / 2);
    for (i, a) in pts.iter().enumerate() {
        for b in &pts[i + 1..] {
            if b.0 > a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    slopes.sort_by(f64::total_cmp);
    let mid = slopes.len() / 2;
    let median = if slopes.len() % 2 == 1 {
        slopes[mid]
    } else {
        (slopes[mid - 1] + slopes[mid]) / 2.0
    };
    let rss = || pts.iter().map(|p| p.1 as u64);
    Some(RssTrend {
        from,
        to,
        samples: pts.len(),
        bytes_per_s: median,
        min_rss: rss().min().unwrap_or(0),
        max_rss: rss().max().unwrap_or(0),
    })
}

/// One hold stage's trend.
#[derive(Debug, Clone, PartialEq)]
pub struct HoldTrend {
    /// Offered rate of the stage, spans/s.
    pub offered_spans_per_s: f64,
    /// Accepted rate over the measured window, spans/s.
    pub accepted_spans_per_s: f64,
    /// The RSS trend over the stage after `settle` seconds.
    pub trend: RssTrend,
}

/// The RSS trend of every hold stage of a report with a sizing section, each measured
/// after its first `settle` seconds (the backend fills its buffers of live traces then).
/// Stages too short to leave 3 samples are left out.
pub fn hold_trends(report: &Report, settle: u32) -> Vec<HoldTrend> {
    let (Some(sizing), Some(resources)) = (&report.sizing, &report.resources) else {
        return Vec::new();
    };
    sizing
        .steps
        .iter()
        .filter_map(|step| {
            let (from, to) = step.window;
            let trend = rss_trend(&resources.samples, from.saturating_add(settle), to)?;
            Some(HoldTrend {
                offered_spans_per_s: step.offered_spans_per_s,
                accepted_spans_per_s: step.accepted_spans_per_s,
                trend,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn series(rss: impl Fn(u32) -> u64) -> Vec<ResourceSample> {
        (1..=60)
            .map(|t| ResourceSample {
                t,
                cpu_cores: 0.5,
                rss_bytes: rss(t),
            })
            .collect()
    }

    #[test]
    fn a_steady_climb_is_its_slope() {
        let s = series(|t| 100_000_000 + u64::from(t) * 2_000_000);
        let tr = rss_trend(&s, 10, 60).unwrap();
        assert_eq!(tr.samples, 50);
        assert!((tr.bytes_per_s - 2_000_000.0).abs() < 1.0, "{tr:?}");
        assert!((tr.bytes_per_span(10_000.0) - 200.0).abs() < 0.01);
    }

    #[test]
    fn one_late_jump_on_a_flat_line_is_not_growth() {
        // Flat with noise, then a 40 MB step in the last five seconds.
        let s = series(|t| {
            let noise = u64::from(t % 3) * 300_000;
            let step = if t > 55 { 40_000_000 } else { 0 };
            200_000_000 + noise + step
        });
        let tr = rss_trend(&s, 0, 60).unwrap();
        assert!(tr.bytes_per_s.abs() < 100_000.0, "{tr:?}");
        assert_eq!(tr.max_rss - tr.min_rss, 40_600_000);
    }

    #[test]
    fn too_few_samples_give_no_trend() {
        let s = series(|_| 1);
        assert!(rss_trend(&s, 58, 60).is_none());
        assert!(rss_trend(&s, 57, 60).is_some());
    }
}
