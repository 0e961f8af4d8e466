//! `compactor`: compaction and retention (release 2 and later).

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// `compactor`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactorConfig {
    /// Compaction and retention settings.
    pub compaction: CompactionConfig,
}

/// `compactor.compaction`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Turn compaction and retention off.
    pub disabled: bool,
    /// How often the compactor looks for work.
    pub compaction_cycle: HumanDuration,
    /// Blocks whose start times fall in the same window of this length are merged.
    pub compaction_window: HumanDuration,
    /// Merge blocks of windows the ingester still cuts blocks into, cycle after cycle
    /// (each cycle re-encodes the window's output with the blocks cut since). Off: a window
    /// is merged once its end is `trace_idle_period + max_block_duration +
    /// flush_check_period` past, which keeps compaction off the CPU and memory that
    /// sustained ingest needs. On: fewer blocks sooner (tests that race reads and merges).
    pub merge_open_windows: bool,
    /// Most input blocks merged into one output block.
    pub max_compaction_objects: u32,
    /// Largest output block.
    pub max_block_bytes: ByteSize,
    /// Blocks that ended longer ago than this are deleted.
    pub block_retention: HumanDuration,
    /// Compacted input blocks stay this long (marked `meta.compacted.json`) before deletion,
    /// so readers that listed them before compaction can finish.
    pub compacted_block_retention: HumanDuration,
    /// Rewrite readable blocks of older formats into the running release's write format.
    pub rewrite_old_formats: bool,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            compaction_cycle: HumanDuration(Duration::from_secs(30)),
            compaction_window: HumanDuration(Duration::from_secs(60 * 60)),
            merge_open_windows: false,
            max_compaction_objects: 32,
            max_block_bytes: ByteSize::gib(1),
            block_retention: HumanDuration(Duration::from_secs(14 * 24 * 3600)),
            compacted_block_retention: HumanDuration(Duration::from_secs(3600)),
            rewrite_old_formats: false,
        }
    }
}
