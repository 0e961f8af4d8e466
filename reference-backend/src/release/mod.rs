//! The backend's releases as data: which block format each writes and reads, its WAL
//! format and its config schema. `--release N` selects one.

pub mod config_rules;
pub mod table;

use std::fmt;

/// A release of the reference backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ReleaseId {
    /// Release 1: rb1 only.
    R1,
    /// Release 2: writes rb2 (or rb1), reads both.
    R2,
    /// Release 3: rb2 only (the newest, and the default).
    #[default]
    R3,
}

impl ReleaseId {
    /// Every release, oldest first.
    pub const ALL: [ReleaseId; 3] = [ReleaseId::R1, ReleaseId::R2, ReleaseId::R3];

    /// The release number.
    pub fn number(self) -> u32 {
        match self {
            ReleaseId::R1 => 1,
            ReleaseId::R2 => 2,
            ReleaseId::R3 => 3,
        }
    }

    /// Release by number.
    pub fn from_number(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.number() == n)
    }

    /// Block formats this release can read.
    pub fn reads(self) -> &'static [&'static str] {
        match self {
            ReleaseId::R1 => &["rb1"],
            ReleaseId::R2 => &["rb1", "rb2"],
            ReleaseId::R3 => &["rb2"],
        }
    }

    /// Block format written when the config does not choose one.
    pub fn default_write_format(self) -> &'static str {
        match self {
            ReleaseId::R1 => "rb1",
            ReleaseId::R2 | ReleaseId::R3 => "rb2",
        }
    }

    /// Does this release run the compactor?
    pub fn has_compactor(self) -> bool {
        self >= ReleaseId::R2
    }

    /// Releases that can read `format`, for error messages.
    pub fn readers_of(format: &str) -> Vec<ReleaseId> {
        Self::ALL
            .into_iter()
            .filter(|r| r.reads().contains(&format))
            .collect()
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "release {}", self.number())
    }
}

/// The block format `config` writes: `storage.trace.block.version` when set, else the
/// release's default.
pub fn write_format(config: &crate::config::Config) -> &str {
    let v = config.storage.trace.block.version.as_str();
    if v.is_empty() {
        config.release.default_write_format()
    } else {
        v
    }
}

/// Deliberately broken behaviours, for the conformance suite's self-test only. A release
/// with a mutant is not a release anyone should run.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// Cannot read blocks of the previous release's format.
    NoPreviousFormat,
    /// Starts without replaying the WAL.
    SkipWalReplay,
    /// Drops span attributes on ingest.
    DropSpanAttributes,
    /// Stores every tenant's data as one tenant.
    IgnoreTenant,
}
