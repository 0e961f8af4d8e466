//! Fuzz targets for every parser and reader of tracebench, as plain functions.
//!
//! Each target takes arbitrary bytes and panics only when a property fails: the code under
//! test panicked, or answered in a way it must never answer (a differential disagreement,
//! an error that does not name the block it came from, data accepted that cannot be read
//! back). Unbounded allocation and hangs are caught by libFuzzer's `-rss_limit_mb`,
//! `-malloc_limit_mb` and `-timeout` when the targets run under it.
//!
//! Two callers: the libFuzzer binaries in `fuzz_targets/` (one line each, built by
//! `cargo fuzz` with the `libfuzzer` feature) and `tests/replay.rs`, which replays the
//! committed corpora (`corpus/<target>/`) and a short deterministic mutation run through
//! the same functions under a plain `cargo test`. See `README.md` for commands and results.

mod blocks;
mod ingest;
mod input;
mod search;
mod settings;
mod wal;

pub use blocks::{block_meta, rb1_block, rb2_block};
pub use ingest::{otlp_gzip, otlp_json, wire_split};
pub use search::{logfmt_tags, search_params, traceql};
pub use settings::{config, scenario};
pub use wal::wal_replay;

/// A fuzz target: arbitrary bytes in, a panic when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its binary and of its corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_split", wire_split),
    ("otlp_json", otlp_json),
    ("otlp_gzip", otlp_gzip),
    ("traceql", traceql),
    ("logfmt_tags", logfmt_tags),
    ("search_params", search_params),
    ("config", config),
    ("scenario", scenario),
    ("wal_replay", wal_replay),
    ("rb1_block", rb1_block),
    ("rb2_block", rb2_block),
    ("block_meta", block_meta),
];
