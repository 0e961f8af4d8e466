//! JUnit XML: one `<testsuite>` per target run, one `<testcase>` per case.

use std::fmt::Write;

use super::Report;
use crate::runner::Outcome;

/// XML text with `& < > " '` escaped and control characters dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The report as JUnit XML.
pub fn render(r: &Report) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let count = |f: fn(&Outcome) -> bool| {
        r.runs
            .iter()
            .flat_map(|run| &run.results)
            .filter(|c| f(&c.outcome))
            .count()
    };
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        escape(&r.title),
        count(|_| true),
        count(|o| matches!(o, Outcome::Fail(_))),
        count(|o| matches!(o, Outcome::Skip(_) | Outcome::KnownDeviation(_))),
    );
    for run in &r.runs {
        let suite = format!("{} [{}]", run.target, run.store);
        let fails = run
            .results
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
            .count();
        let skips = run
            .results
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skip(_) | Outcome::KnownDeviation(_)))
            .count();
        let time: f64 = run.results.iter().map(|c| c.seconds).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skips}\" time=\"{time:.3}\">",
            escape(&suite),
            run.results.len()
        );
        if !run.notes.is_empty() {
            let _ = writeln!(
                x,
                "    <system-out>{}</system-out>",
                escape(&run.notes.join("\n"))
            );
        }
        for c in &run.results {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                escape(&suite),
                escape(&c.id),
                c.seconds
            );
            match &c.outcome {
                Outcome::Pass => x.push_str("/>\n"),
                Outcome::Fail(reason) => {
                    let first = reason.lines().next().unwrap_or_default();
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        escape(first),
                        escape(reason)
                    );
                }
                Outcome::Skip(reason) => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(reason)
                    );
                }
                // JUnit has no "expected failure": shown as skipped, apart from passes and
                // failures, with the declared reason and what was observed.
                Outcome::KnownDeviation(d) => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"known deviation: {}\"/>\n      <system-out>observed: {}</system-out>\n    </testcase>",
                        escape(&d.reason),
                        escape(&d.observed)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
