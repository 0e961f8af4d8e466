//! A tiny inline-SVG line-chart renderer: axes, "nice" ticks, labels, polylines, an
//! optional right-hand axis and a legend. No scripts, no external resources.
//!
//! Every chart is `<svg class="chart" data-chart="KIND" data-points="N">`, N being the
//! number of data points drawn; a chart without data shows a visible "No data" note and
//! has `data-points="0"`.

use std::fmt::Write as _;

use super::format::{html, num};

const W: f64 = 760.0;
const H: f64 = 320.0;
const LEFT: f64 = 72.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 76.0;

/// How x values map to the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XScale {
    /// Plain linear axis (time in seconds).
    Linear,
    /// x is a count of "nines", `-log10(1 - quantile)`: 0 → 0%, 1 → 90%, 2 → 99%, …
    /// (the HdrHistogram percentile-spectrum axis).
    Nines,
}

/// Which y axis a series is drawn against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Left axis.
    Left,
    /// Right axis.
    Right,
}

/// One line.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour (CSS colour).
    pub color: &'static str,
    /// Dashed stroke.
    pub dashed: bool,
    /// Axis.
    pub side: Side,
    /// (x, y) points; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A chart description.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// `data-chart` value.
    pub kind: &'static str,
    /// Title drawn above the plot.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// Left y axis label.
    pub y_label: String,
    /// Right y axis label, when any series uses [`Side::Right`].
    pub y2_label: String,
    /// x scale.
    pub x_scale: XScale,
    /// Lines.
    pub series: Vec<Series>,
    /// Shown instead of the plot when there is nothing to draw.
    pub empty_reason: String,
}

struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    ticks: Vec<f64>,
}

impl Axis {
    fn linear(values: impl Iterator<Item = f64>, from_zero: bool) -> Option<Axis> {
        let (mut lo, mut hi) = min_max(values)?;
        if from_zero {
            lo = lo.min(0.0);
        }
        if hi <= lo {
            hi = lo + if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        }
        let step = nice_step((hi - lo) / 5.0);
        let lo = (lo / step).floor() * step;
        let hi = (hi / step).ceil() * step;
        let mut ticks = Vec::new();
        let mut v = lo;
        while v <= hi + step * 1e-6 && ticks.len() < 50 {
            ticks.push(v);
            v += step;
        }
        Some(Axis {
            lo,
            hi,
            step,
            ticks,
        })
    }

    fn nines(values: impl Iterator<Item = f64>) -> Option<Axis> {
        let (_, hi) = min_max(values)?;
        let hi = hi.ceil().clamp(1.0, 9.0);
        let ticks = (0..=hi as u32).map(f64::from).collect();
        Some(Axis {
            lo: 0.0,
            hi,
            step: 1.0,
            ticks,
        })
    }

    /// A tick label with as many decimals as the step needs (`0.25`, `1.5`, `10`).
    fn label(&self, v: f64) -> String {
        let mut decimals = 0;
        while decimals < 6 {
            let scaled = self.step * 10f64.powi(decimals as i32);
            if (scaled - scaled.round()).abs() < 1e-6 {
                break;
            }
            decimals += 1;
        }
        num(v, decimals)
    }

    fn frac(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// `0%`, `90%`, `99%`, `99.9%`, … for a count of nines.
pub(crate) fn nines_label(n: f64) -> String {
    match n.round() as u32 {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        k => format!("99.{}%", "9".repeat(k as usize - 2)).replace(".%", "%"),
    }
}

/// Render `chart` as an inline `<svg>` element.
pub(crate) fn render(chart: &Chart) -> String {
    let finite = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let series: Vec<(&Series, Vec<(f64, f64)>)> =
        chart.series.iter().map(|s| (s, finite(s))).collect();
    let n: usize = series.iter().map(|(_, p)| p.len()).sum();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" data-chart="{}" data-points="{n}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}" font-family="system-ui, sans-serif" font-size="12">"#,
        chart.kind,
        html(&chart.title)
    );
    let _ = write!(out, "<title>{}</title>", html(&chart.title));
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="600">{}</text>"#,
        html(&chart.title)
    );
    if n == 0 {
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="#f6f6f6" stroke="#ccc"/><text class="no-data" x="{}" y="{}" text-anchor="middle" font-size="14" fill="#555">No data: {}</text></svg>"##,
            W - 2.0 * LEFT,
            H - TOP - BOTTOM,
            W / 2.0,
            (TOP + H - BOTTOM) / 2.0,
            html(&chart.empty_reason)
        );
        return out;
    }
    let has_right = series
        .iter()
        .any(|(s, p)| s.side == Side::Right && !p.is_empty());
    let right = if has_right { LEFT } else { 48.0 };
    let (px0, px1, py0, py1) = (LEFT, W - right, TOP, H - BOTTOM);
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let side_ys = |side: Side| {
        series
            .iter()
            .filter(move |(s, _)| s.side == side)
            .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
    };
    let xs = all().map(|(x, _)| *x);
    let xa = match chart.x_scale {
        XScale::Linear => Axis::linear(xs, false),
        XScale::Nines => Axis::nines(xs),
    };
    let (Some(xa), Some(ya)) = (xa, Axis::linear(side_ys(Side::Left), true)) else {
        // Only right-axis data: treat it as left.
        return render(&Chart {
            series: chart
                .series
                .iter()
                .map(|s| Series {
                    side: Side::Left,
                    ..s.clone()
                })
                .collect(),
            y_label: chart.y2_label.clone(),
            ..chart.clone()
        });
    };
    let y2a = Axis::linear(side_ys(Side::Right), true);
    let px = |x: f64| px0 + xa.frac(x) * (px1 - px0);
    let py = |a: &Axis, y: f64| py1 - a.frac(y) * (py1 - py0);

    // Grid, ticks and labels.
    out.push_str(r##"<g stroke="#e3e3e3" stroke-width="1">"##);
    for t in &ya.ticks {
        let y = py(&ya, *t);
        let _ = write!(
            out,
            r#"<line x1="{px0}" y1="{y:.1}" x2="{px1}" y2="{y:.1}"/>"#
        );
    }
    for t in &xa.ticks {
        let x = px(*t);
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{py0}" x2="{x:.1}" y2="{py1}"/>"#
        );
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r##"<g stroke="#444" stroke-width="1"><line x1="{px0}" y1="{py1}" x2="{px1}" y2="{py1}"/><line x1="{px0}" y1="{py0}" x2="{px0}" y2="{py1}"/>"##
    );
    if has_right {
        let _ = write!(
            out,
            r#"<line x1="{px1}" y1="{py0}" x2="{px1}" y2="{py1}"/>"#
        );
    }
    out.push_str(r##"</g><g fill="#333">"##);
    for t in &ya.ticks {
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            px0 - 6.0,
            py(&ya, *t) + 4.0,
            ya.label(*t)
        );
    }
    if let (true, Some(a)) = (has_right, &y2a) {
        for t in &a.ticks {
            let _ = write!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="start">{}</text>"#,
                px1 + 6.0,
                py(a, *t) + 4.0,
                a.label(*t)
            );
        }
    }
    for t in &xa.ticks {
        let label = match chart.x_scale {
            XScale::Linear => xa.label(*t),
            XScale::Nines => nines_label(*t),
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            px(*t),
            py1 + 16.0
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
        (px0 + px1) / 2.0,
        py1 + 34.0,
        html(&chart.x_label)
    );
    let _ = write!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (py0 + py1) / 2.0,
        html(&chart.y_label)
    );
    if has_right {
        let _ = write!(
            out,
            r#"<text transform="translate({} {:.1}) rotate(90)" text-anchor="middle">{}</text>"#,
            W - 14.0,
            (py0 + py1) / 2.0,
            html(&chart.y2_label)
        );
    }
    out.push_str("</g>");

    // Lines.
    for (s, pts) in &series {
        let a = match (s.side, &y2a) {
            (Side::Right, Some(a)) => a,
            _ => &ya,
        };
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        if pts.len() == 1 {
            let (x, y) = pts[0];
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                px(x),
                py(a, y),
                s.color
            );
            continue;
        }
        let mut coords = String::new();
        for (x, y) in pts {
            let _ = write!(coords, "{:.1},{:.1} ", px(*x), py(a, *y));
        }
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            s.color,
            coords.trim_end()
        );
    }

    // Legend.
    let mut x = px0;
    let y = H - 14.0;
    for (s, pts) in &series {
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let axis = if has_right && s.side == Side::Right {
            " (right axis)"
        } else {
            ""
        };
        let label = format!("{}{axis}", s.name);
        let note = if pts.is_empty() { " — no data" } else { "" };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{}" x2="{:.1}" y2="{}" stroke="{}" stroke-width="3"{dash}/><text x="{:.1}" y="{}">{}{note}</text>"#,
            y - 4.0,
            x + 22.0,
            y - 4.0,
            s.color,
            x + 28.0,
            y,
            html(&label)
        );
        x += 40.0 + 6.5 * (label.chars().count() + note.chars().count()) as f64;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(180.0), 200.0);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(4.0), "99.99%");
        let a = Axis::linear([3.0, 97.0].into_iter(), true);
        assert!(matches!(a, Some(Axis { lo, hi, .. }) if lo == 0.0 && hi == 100.0));
    }

    #[test]
    fn empty_chart_says_no_data() {
        let svg = render(&Chart {
            kind: "resources",
            title: "t".into(),
            x_label: String::new(),
            y_label: String::new(),
            y2_label: String::new(),
            x_scale: XScale::Linear,
            series: vec![],
            empty_reason: "not measured".into(),
        });
        assert!(svg.contains(r#"data-points="0""#) && svg.contains("No data: not measured"));
    }
}
