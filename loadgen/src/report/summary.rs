//! The content shared by the markdown and HTML renderings: the verdict, the warnings that
//! make the numbers untrustworthy, and the summary sections. Both renderers walk the same
//! [`Document`], so they cannot drift apart.

use super::format::{bytes, int, num, pct, ratio};
use super::model::Report;
use super::sections::{
    environment_section, query_section, scenario_section, sizing_section, summary_section,
    thresholds_section, verification_section,
};

/// How an alert should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Good news.
    Pass,
    /// The run failed or lost data.
    Fail,
    /// The numbers need a second look.
    Warn,
    /// For information.
    Info,
}

impl Level {
    /// Upper-case label used in text renderings.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Level::Pass => "OK",
            Level::Fail => "FAILED",
            Level::Warn => "WARNING",
            Level::Info => "NOTE",
        }
    }
}

/// One line at the top of a report.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    /// Severity.
    pub level: Level,
    /// Short title (`Spans lost`).
    pub title: String,
    /// Detail sentence(s).
    pub text: String,
}

/// A table; the first column is a label, the others are values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// Column headers.
    pub header: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

/// A piece of a section.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    /// A paragraph.
    Text(String),
    /// A sub-heading.
    Heading(String),
    /// Label/value pairs.
    KeyValues(Vec<(String, String)>),
    /// A table.
    Table(Table),
    /// A bulleted list rendered as code (examples, messages).
    CodeList(Vec<String>),
    /// A collapsed code block.
    Code {
        /// Disclosure summary.
        summary: String,
        /// Language tag.
        lang: &'static str,
        /// The code.
        text: String,
    },
}

/// A titled section.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// Stable identifier (HTML anchors, chart placement).
    pub id: &'static str,
    /// Title.
    pub title: String,
    /// Content.
    pub blocks: Vec<Block>,
}

/// Everything a rendering shows, in order.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// `PASSED` or `FAILED`.
    pub verdict: Level,
    /// First line: verdict, scenario and target.
    pub headline: String,
    /// Verdict and trust warnings, most important first.
    pub alerts: Vec<Alert>,
    /// The body.
    pub sections: Vec<Section>,
}

/// Build the document for `r`.
pub(crate) fn build(r: &Report) -> Document {
    let alerts = alerts(r);
    let warnings = alerts
        .iter()
        .skip(1)
        .filter(|a| matches!(a.level, Level::Fail | Level::Warn))
        .count();
    let verdict = if r.passed { Level::Pass } else { Level::Fail };
    let word = if r.passed { "PASSED" } else { "FAILED" };
    let with = match warnings {
        0 => String::new(),
        1 => " with 1 warning".to_owned(),
        n => format!(" with {n} warnings"),
    };
    Document {
        verdict,
        headline: format!(
            "{word}{with}: {} against {}",
            r.scenario.name,
            target_label(r)
        ),
        alerts,
        sections: [
            Some(scenario_section(r)),
            Some(summary_section(r)),
            sizing_section(r),
            Some(thresholds_section(r)),
            Some(verification_section(r)),
            Some(query_section(r)),
            Some(environment_section(r)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

/// `embedded reference backend 0.1.0` or `otlp 10.0.0.5:4317 (version 2.9.1)`.
pub(crate) fn target_label(r: &Report) -> String {
    let t = &r.target;
    let what = if t.kind == "embedded" {
        "the embedded reference backend".to_owned()
    } else {
        match t.endpoints.first() {
            Some(e) => format!("{} {e}", t.kind),
            None => t.kind.clone(),
        }
    };
    match &t.version {
        Some(v) => format!("{what} (version {v})"),
        None => format!("{what} (version unknown)"),
    }
}

/// Spans the backend accepted per second over the load phase.
pub(crate) fn accepted_per_s(r: &Report) -> f64 {
    ratio(r.totals.spans_accepted as f64, r.duration_s)
}

/// Requests that did not succeed.
pub(crate) fn failed_requests(r: &Report) -> u64 {
    r.totals.requests_sent.saturating_sub(r.totals.requests_ok)
}

fn alerts(r: &Report) -> Vec<Alert> {
    let mut out = vec![verdict_alert(r)];
    out.extend(sizing_alert(r));
    loss_alerts(r, &mut out);
    generator_alerts(r, &mut out);
    error_alerts(r, &mut out);
    out
}

fn verdict_alert(r: &Report) -> Alert {
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.passed).collect();
    let total = r.thresholds.len();
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|t| format!("{} = {} (limit {})", t.name, t.actual, t.limit))
            .collect();
        return Alert {
            level: Level::Fail,
            title: format!("{} of {total} thresholds failed", failed.len()),
            text: list.join("; "),
        };
    }
    if !r.passed {
        return Alert {
            level: Level::Fail,
            title: "Run failed".to_owned(),
            text: "the run was marked failed although no threshold failed; see the notes below"
                .to_owned(),
        };
    }
    if total == 0 {
        return Alert {
            level: Level::Info,
            title: "No thresholds were set".to_owned(),
            text: "the run passes by default; add thresholds to the scenario to gate on it"
                .to_owned(),
        };
    }
    let names: Vec<&str> = r.thresholds.iter().map(|t| t.name.as_str()).collect();
    Alert {
        level: Level::Pass,
        title: format!("All {total} thresholds held"),
        text: names.join(", "),
    }
}

/// One line: the highest rate that held, what it cost and the nodes it implies.
fn sizing_alert(r: &Report) -> Option<Alert> {
    let z = r.sizing.as_ref()?;
    let Some(highest) = z.highest_held_spans_per_s else {
        return Some(Alert {
            level: Level::Warn,
            title: "Sizing".to_owned(),
            text: match z.steps.first() {
                Some(s) => format!(
                    "no step held, not even {} spans/s ({}): start lower",
                    int(s.offered_spans_per_s.round() as u64),
                    s.reasons.join("; ")
                ),
                None => "the rate has no hold stages to size from".to_owned(),
            },
        });
    };
    let mut text = format!(
        "Highest rate that held: {} spans/s",
        int(highest.round() as u64)
    );
    match (z.cpu_cores, z.rss_bytes) {
        (Some(c), Some(b)) => {
            text.push_str(&format!(" on {} cores, {} RSS", num(c, 1), bytes(b as f64)));
        }
        (Some(c), None) => text.push_str(&format!(" on {} cores", num(c, 1))),
        _ => text.push_str(" (backend CPU not measured)"),
    }
    if let (Some(n), Some(t)) = (z.nodes_needed, z.target_spans_per_s) {
        text.push_str(&format!(
            "; {n} node{} for {} spans/s at {} % headroom",
            if n == 1 { "" } else { "s" },
            int(t.round() as u64),
            num(z.headroom * 100.0, 0)
        ));
    }
    Some(Alert {
        level: Level::Info,
        title: "Sizing".to_owned(),
        text,
    })
}

fn loss_alerts(r: &Report, out: &mut Vec<Alert>) {
    let Some(v) = &r.verification else {
        out.push(Alert {
            level: Level::Warn,
            title: "Loss unknown".to_owned(),
            text: "read-back verification did not run, so nothing proves the accepted spans \
                   were stored"
                .to_owned(),
        });
        return;
    };
    let accepted = r.totals.spans_accepted;
    if v.missing_spans > 0 || v.missing_traces > 0 || v.estimated_lost_spans > 0 {
        out.push(Alert {
            level: Level::Fail,
            title: "Spans lost".to_owned(),
            text: format!(
                "read-back found {} spans missing in {} sampled traces ({} traces never found); \
                 estimated {} spans lost over the run ({} of {} accepted)",
                int(v.missing_spans),
                int(v.sampled_traces),
                int(v.missing_traces),
                int(v.estimated_lost_spans),
                pct(ratio(v.estimated_lost_spans as f64, accepted as f64)),
                int(accepted),
            ),
        });
    } else if v.sampled_traces == 0 {
        out.push(Alert {
            level: Level::Warn,
            title: "Loss unknown".to_owned(),
            text: "read-back verification sampled no traces".to_owned(),
        });
    } else {
        out.push(Alert {
            level: Level::Pass,
            title: "No loss".to_owned(),
            text: format!(
                "all {} sampled traces came back complete",
                int(v.sampled_traces)
            ),
        });
    }
    if v.altered_spans > 0 || v.extra_spans > 0 {
        out.push(Alert {
            level: Level::Fail,
            title: "Read-back mismatches".to_owned(),
            text: format!(
                "{} spans came back altered and {} came back that were never sent",
                int(v.altered_spans),
                int(v.extra_spans)
            ),
        });
    }
    if let Some(res) = &r.resources
        && let Some(d) = res.discarded_spans
        && d > 0
    {
        let by = res
            .discard_reasons()
            .map(|s| format!(", by reason: {s}"))
            .unwrap_or_default();
        out.push(Alert {
            level: Level::Warn,
            title: "Backend discarded spans".to_owned(),
            text: format!(
                "tempo_discarded_spans_total rose by {} during the run{by}",
                int(d)
            ),
        });
    }
}

fn generator_alerts(r: &Report, out: &mut Vec<Alert>) {
    let g = &r.generator;
    let t = &r.totals;
    let unsent = t.requests_planned.saturating_sub(t.requests_sent);
    let verdict = super::pace::verdict(g);
    let mut parts = Vec::new();
    if let Some(v) = &verdict {
        parts.push(v.text.clone());
    }
    if unsent > 0 {
        parts.push(format!(
            "{} of {} planned requests were never sent",
            int(unsent),
            int(t.requests_planned)
        ));
    }
    parts.extend(g.notes.iter().cloned());
    if parts.is_empty() {
        return;
    }
    let (level, title) = match &verdict {
        Some(v) => (
            match v.severity {
                super::pace::Severity::Warn => Level::Warn,
                super::pace::Severity::Info => Level::Info,
            },
            v.title.clone(),
        ),
        None if unsent > 0 => (Level::Warn, "The generator fell behind".to_owned()),
        None => (Level::Info, "Generator notes".to_owned()),
    };
    out.push(Alert {
        level,
        title,
        text: parts.join("; "),
    });
}

fn error_alerts(r: &Report, out: &mut Vec<Alert>) {
    let t = &r.totals;
    let failed = failed_requests(r);
    let mut parts = Vec::new();
    if failed > 0 {
        let classes: Vec<String> = t
            .outcomes
            .iter()
            .filter(|(k, n)| k.as_str() != "ok" && **n > 0)
            .map(|(k, n)| format!("{k} {}", int(*n)))
            .collect();
        let mut s = format!(
            "{} of {} requests failed ({})",
            int(failed),
            int(t.requests_sent),
            pct(ratio(failed as f64, t.requests_sent as f64))
        );
        if !classes.is_empty() {
            s.push_str(&format!(": {}", classes.join(", ")));
        }
        parts.push(s);
    }
    if t.spans_rejected_partial > 0 {
        parts.push(format!(
            "the backend rejected {} spans in partial-success answers",
            int(t.spans_rejected_partial)
        ));
    }
    if !parts.is_empty() {
        out.push(Alert {
            level: Level::Warn,
            title: "Export errors".to_owned(),
            text: parts.join("; "),
        });
    }
}
