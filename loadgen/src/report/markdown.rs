//! `report.md`: GitHub-flavoured markdown. The first line is the verdict; the lines right
//! after it list failed thresholds, lost spans, a generator bottleneck and export errors,
//! so nobody reads a latency number without seeing what undermines it.

use std::fmt::Write as _;

use super::format::md_cell;
use super::model::Report;
use super::summary::{self, Block, Table};

/// Render `report` as markdown.
pub fn render_markdown(report: &Report) -> String {
    let doc = summary::build(report);
    let mut out = String::new();
    line(&mut out, &format!("# {}", inline(&doc.headline)));
    out.push('\n');
    for a in &doc.alerts {
        line(
            &mut out,
            &format!(
                "- **{}: {}** — {}",
                a.level.label(),
                inline(&a.title),
                inline(&a.text)
            ),
        );
    }
    for s in &doc.sections {
        out.push('\n');
        line(&mut out, &format!("## {}", inline(&s.title)));
        for b in &s.blocks {
            out.push('\n');
            block(&mut out, b);
        }
    }
    out
}

fn line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

fn block(out: &mut String, b: &Block) {
    match b {
        Block::Text(t) => line(out, &inline(t)),
        Block::Heading(h) => line(out, &format!("### {}", inline(h))),
        Block::KeyValues(items) => {
            for (k, v) in items {
                line(out, &format!("- **{}:** {}", inline(k), inline(v)));
            }
        }
        Block::Table(t) => table(out, t),
        Block::CodeList(items) => {
            for i in items {
                line(out, &format!("- {}", code_span(i)));
            }
        }
        Block::Code {
            summary,
            lang,
            text,
        } => {
            let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
            line(
                out,
                &format!(
                    "<details><summary>{}</summary>",
                    super::format::html(summary)
                ),
            );
            out.push('\n');
            line(out, &format!("{fence}{lang}"));
            line(out, text.trim_end());
            line(out, &fence);
            out.push('\n');
            line(out, "</details>");
        }
    }
}

/// A table: first column left-aligned, the others right-aligned, cells padded so the
/// source reads well in a terminal too.
pub(crate) fn table(out: &mut String, t: &Table) {
    let cells = |r: &[String]| -> Vec<String> { r.iter().map(|c| md_cell(&inline(c))).collect() };
    let header = cells(&t.header);
    let rows: Vec<Vec<String>> = t.rows.iter().map(|r| cells(r)).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count().max(3)).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let fmt_row = |r: &[String]| -> String {
        let mut s = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            let c = r.get(i).map_or("", String::as_str);
            let pad = w.saturating_sub(c.chars().count());
            if i == 0 {
                let _ = write!(s, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(s, " {}{c} |", " ".repeat(pad));
            }
        }
        s
    };
    line(out, &fmt_row(&header));
    let mut sep = String::from("|");
    for (i, w) in widths.iter().enumerate() {
        if i == 0 {
            let _ = write!(sep, " {} |", "-".repeat(*w));
        } else {
            let _ = write!(sep, " {}: |", "-".repeat(w.saturating_sub(1)));
        }
    }
    line(out, &sep);
    for r in &rows {
        line(out, &fmt_row(r));
    }
}

/// Escape the characters that would start markdown markup inside running text.
pub(crate) fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' | '*' | '`' | '[' => {
                out.push('\\');
                out.push(c);
            }
            // `<` only starts HTML before a letter, `/`, `!` or `?`.
            '<' if chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) =>
            {
                out.push_str("\\<");
            }
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn code_span(text: &str) -> String {
    let text = text.replace(['\r', '\n'], " ");
    let ticks = "`".repeat(longest_backtick_run(&text) + 1);
    if ticks.len() > 1 {
        format!("{ticks} {text} {ticks}")
    } else {
        format!("`{text}`")
    }
}

fn longest_backtick_run(text: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}
