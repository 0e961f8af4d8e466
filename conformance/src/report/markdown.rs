//! The Markdown report: a matrix of cases × target runs, then every failure and skip with its
//! reason, then notes.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::Report;
use crate::cases::Run;
use crate::outcome::{Counts, Outcome};

fn cell(o: Option<&Outcome>) -> &'static str {
    match o {
        Some(Outcome::Pass) => "✅ pass",
        Some(Outcome::Fail(_)) => "❌ **fail**",
        Some(Outcome::Skip(_)) => "⏭ skip",
        Some(Outcome::KnownDeviation(_)) => "⚠️ known deviation",
        None => "",
    }
}

/// Table cell text: one line, pipes escaped.
pub fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown.
pub fn render(r: &Report) -> String {
    let mut m = format!("# Conformance: {}\n\n", md(&r.title));
    let counts = Counts::of(r.runs.iter().flat_map(|run| &run.results));
    let verdict = if r.passed() { "PASSED" } else { "FAILED" };
    let _ = writeln!(
        m,
        "**{verdict}**: {} (started {}). Known deviations are failures the target file declares, with the reason; they do not fail the run, but one that passes does.\n",
        counts.summary(),
        r.started_at
    );
    for s in &r.skipped_runs {
        let _ = writeln!(m, "- not run: {}", md(s));
    }
    if !r.skipped_runs.is_empty() {
        m.push('\n');
    }
    if r.runs.is_empty() {
        return m;
    }
    let mut ids: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    for c in r.runs.iter().flat_map(|run| &run.results) {
        if seen.insert(c.id.as_str()) {
            ids.push(&c.id);
        }
    }
    m.push_str("| case |");
    for run in &r.runs {
        let _ = write!(m, " {} [{}] |", md(&run.target), run.store);
    }
    m.push_str("\n|---|");
    for _ in &r.runs {
        m.push_str("---|");
    }
    m.push('\n');
    for id in &ids {
        let _ = write!(m, "| `{id}` |");
        for run in &r.runs {
            let _ = write!(m, " {} |", cell(run.outcome(id)));
        }
        m.push('\n');
    }
    for title in ["Failures", "Known deviations", "Skips"] {
        let mut lines = String::new();
        for run in &r.runs {
            for c in &run.results {
                let text = match (&c.outcome, title) {
                    (Outcome::Fail(r), "Failures") | (Outcome::Skip(r), "Skips") => md(r),
                    (Outcome::KnownDeviation(d), "Known deviations") => format!(
                        "known deviation: {} — observed: {}",
                        md(&d.reason),
                        md(&d.observed)
                    ),
                    _ => continue,
                };
                let _ = writeln!(
                    lines,
                    "- **{}** [{}] `{}`: {text}",
                    md(&run.target),
                    run.store,
                    c.id,
                );
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(m, "\n## {title}\n\n{lines}");
        }
    }
    let notes: Vec<String> = r
        .runs
        .iter()
        .flat_map(|run| {
            run.notes
                .iter()
                .map(move |n| format!("- {} [{}]: {}", md(&run.target), run.store, md(n)))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(m, "\n## Notes\n\n{}", notes.join("\n"));
    }
    m
}

/// The catalog as a Markdown table (`conformance list --markdown`).
pub fn catalog_table() -> String {
    let mut m = String::from(
        "| case | needs | profile | runs under | what passing means |\n|---|---|---|---|---|\n",
    );
    for c in crate::cases::catalog() {
        let needs: Vec<String> = c.needs.iter().map(|n| n.name()).collect();
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | {} | {} |",
            c.id,
            if needs.is_empty() {
                "—".into()
            } else {
                needs.join(", ")
            },
            c.profile.unwrap_or("default"),
            match c.run {
                Run::Single(_) => "`run`",
                Run::Upgrade => "`upgrade`",
            },
            md(c.description)
        );
    }
    m
}
