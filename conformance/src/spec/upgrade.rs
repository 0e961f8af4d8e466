//! What a target declares about being upgraded from an earlier one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Deviation;

/// What upgrading to this target from an earlier one is expected to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeExpectation {
    /// Name of the earlier target.
    pub from: String,
    /// What happens to the earlier target's config.
    #[serde(default)]
    pub config: ConfigExpectation,
    /// Whether the earlier target's WAL is replayed, or must be flushed before the switch.
    #[serde(default)]
    pub wal: WalExpectation,
    /// What the earlier target does when started again on data this one wrote.
    #[serde(default)]
    pub rollback: RollbackExpectation,
    /// Upgrade cases of this path known to fail, with the reason (see the target file's
    /// `deviations`).
    #[serde(default)]
    pub deviations: BTreeMap<String, Deviation>,
}

impl UpgradeExpectation {
    /// Full compatibility: the expectation of a path the newer target does not declare.
    pub fn full(from: &str) -> Self {
        Self {
            from: from.to_owned(),
            config: ConfigExpectation::default(),
            wal: WalExpectation::default(),
            rollback: RollbackExpectation::default(),
            deviations: BTreeMap::new(),
        }
    }
}

/// Expected verdict on the previous config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigExpectation {
    /// `accept` or `reject`.
    #[serde(default)]
    pub outcome: ConfigOutcome,
    /// Keys the message must name (deprecation warnings when accepted, errors when
    /// rejected).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// Accept or reject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigOutcome {
    /// The config is accepted (possibly with warnings).
    #[default]
    Accept,
    /// The config is refused with a message naming the keys.
    Reject,
}

/// What becomes of data only in the earlier target's WAL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalExpectation {
    /// The new target replays the old WAL: the old target is killed once the WAL-only part
    /// is in its WAL (see `wal_append`).
    #[default]
    Replayed,
    /// The new target does not read the old WAL: the old target's data is flushed to blocks
    /// (its `flush`) and it is stopped gracefully.
    FlushedBeforeStop,
}

/// What the earlier target must do on data the later one wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackExpectation {
    /// It reads everything.
    #[default]
    Reads,
    /// It refuses to start, or answers errors or "not found" for the newer data, and
    /// damages nothing (the later target still reads everything afterwards).
    FailsCleanly,
}
