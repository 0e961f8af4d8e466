//! Reports: the JSON model and its renderings.
//!
//! `report.json` ([`model::Report`]) is the canonical record of a run; everything else is
//! computed from it: [`render_markdown`] (`report.md`), [`render_html`] (`report.html`,
//! self-contained with inline SVG charts), [`compare()`] (A/B across versions, with
//! regression gates) and [`merge()`] (shards of one run).

mod charts;
pub mod compare;
mod format;
mod gate;
pub mod html;
pub mod markdown;
pub mod merge;
pub mod model;
pub mod pace;
mod sections;
pub mod sizing;
mod summary;
mod svg;

use std::path::{Path, PathBuf};

pub use compare::{
    CompareThresholds, Comparison, Limit, LimitKind, Metric, MetricComparison, compare,
    parse_threshold, render_comparison,
};
pub use html::render_html;
pub use markdown::render_markdown;
pub use merge::merge;
pub use model::{Report, SCHEMA_VERSION};

use crate::error::{Error, Result};

/// Paths of the files [`write_all`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReports {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

/// Write `report.json` (pretty), `report.md` and `report.html` into `dir`, creating it.
///
/// Each file is written under a temporary name in `dir` and renamed into place, so a
/// reader never sees a half-written report.
pub fn write_all(report: &Report, dir: &Path) -> Result<WrittenReports> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut json = serde_json::to_string_pretty(report).map_err(|e| Error::Report {
        path: dir.join("report.json").display().to_string(),
        message: format!("cannot serialize: {e}"),
    })?;
    json.push('\n');
    let written = WrittenReports {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
    };
    write_atomic(&written.json, json.as_bytes())?;
    write_atomic(&written.markdown, render_markdown(report).as_bytes())?;
    write_atomic(&written.html, render_html(report).as_bytes())?;
    Ok(written)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |p: &Path, source| Error::Io {
        path: p.to_path_buf(),
        source,
    };
    // A sibling temporary name (plain `fs::write`, so the file gets the usual permissions,
    // not a private temp file's 0600), then an atomic rename.
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}

/// Read a `report.json`. Fails with an error naming the file when it cannot be read, is
/// not JSON, is not a loadgen report, or has a `schema_version` other than
/// [`SCHEMA_VERSION`].
pub fn load(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| Error::Report {
        path: path.display().to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    match value.get("schema_version").map(serde_json::Value::as_u64) {
        None => {
            return Err(bad(
                "not a loadgen report: it has no schema_version field".to_owned()
            ));
        }
        Some(Some(v)) if v == u64::from(SCHEMA_VERSION) => {}
        Some(Some(v)) => {
            return Err(bad(format!(
                "schema_version {v} is not supported: this loadgen reads schema_version \
                 {SCHEMA_VERSION}; use the loadgen version that wrote it (or re-run)"
            )));
        }
        Some(None) => {
            return Err(bad(
                "schema_version is not a non-negative integer".to_owned()
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| bad(format!("does not match the report schema: {e}")))
}
