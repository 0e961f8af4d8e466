//! The release table `reference-backend releases` prints.

use std::fmt::Write;

use super::ReleaseId;
use super::config_rules::CHANGES;

/// WAL format every release writes and replays (unchanged so far, so each release
/// replays the WAL of the one before it).
pub const WAL_FORMAT: &str = "wal1";

/// The documented way from release 1 to release 3.
pub const UPGRADE_PATH: &[&str] = &[
    "1 -> 2: swap the binary on the same store and WAL directory; release 2 replays release 1's WAL, \
     reads rb1 blocks and writes rb2. Rename the keys it warns about.",
    "2: set compactor.compaction.rewrite_old_formats: true (or wait for block_retention) until no \
     rb1 block is left (reference_backend_blocks{format=\"rb1\"} on /metrics shows 0).",
    "2 -> 3: replace the ingester section with live_store and swap the binary.",
    "Skipping release 2 fails: release 3 cannot read rb1 blocks, and every query that touches one \
     fails with an error naming the block.",
    "Rolling back 2 -> 1 works only while release 2 writes rb1 (storage.trace.block.version: rb1); \
     rb2 blocks are unreadable to release 1.",
];

/// The table as text.
pub fn render() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<7} {:<10} {:<6} config changes",
        "release", "writes", "reads", "wal"
    );
    for r in ReleaseId::ALL {
        let changes: Vec<String> = CHANGES
            .iter()
            .filter(|c| c.release() == r)
            .map(|c| c.describe())
            .collect();
        let writes = if r == ReleaseId::R2 {
            "rb2|rb1"
        } else {
            r.default_write_format()
        };
        let first = changes
            .first()
            .map(String::as_str)
            .unwrap_or(if r == ReleaseId::R1 {
                "(first release)"
            } else {
                "none"
            });
        let _ = writeln!(
            out,
            "{:<8} {:<7} {:<10} {:<6} {first}",
            r.number(),
            writes,
            r.reads().join(","),
            WAL_FORMAT
        );
        for c in changes.iter().skip(1) {
            let _ = writeln!(out, "{:<34} {c}", "");
        }
    }
    let _ = writeln!(out, "\nupgrade path:");
    for step in UPGRADE_PATH {
        let _ = writeln!(out, "  - {step}");
    }
    out
}
