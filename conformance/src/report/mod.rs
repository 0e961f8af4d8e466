//! Reports: JUnit XML (CI systems), a Markdown matrix of cases × targets with the reason of
//! every failure and skip (people), and JSON (machines), written under one directory.

pub mod junit;
pub mod markdown;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::runner::TargetRun;

/// Default output directory.
pub const DEFAULT_OUT: &str = "reports/conformance";

/// Everything one command found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What was run (`conformance run …`).
    pub title: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Runs that could not happen here, with the reason (e.g. no Docker for MinIO).
    pub skipped_runs: Vec<String>,
    /// One column per target (or upgrade pair) and store.
    pub runs: Vec<TargetRun>,
}

impl Report {
    /// An empty report titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            skipped_runs: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// True when every selected case passed or was skipped with a reason.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(TargetRun::passed)
    }

    /// Write `junit.xml`, `report.md` and `report.json` under `out`; returns their paths.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io(out, std::io::Error::other(e)))?;
        let files = [
            ("junit.xml", junit::render(self)),
            ("report.md", markdown::render(self)),
            ("report.json", json),
        ];
        let mut paths = Vec::new();
        for (name, text) in files {
            let p = out.join(name);
            std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
            paths.push(p);
        }
        Ok(paths)
    }
}
