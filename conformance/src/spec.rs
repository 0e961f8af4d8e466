//! Target files (`scenarios/targets/*.yaml`): what a backend under test is, how to start and
//! stop it, what it can do, which cases it opts out of and why, and what it promises when
//! upgraded from an earlier target.
//!
//! Every section denies unknown keys, so a typo is an error that names the key, its line
//! and column.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reference_backend::config::HumanDuration;
use reference_backend::release::Mutant;
use serde::{Deserialize, Serialize};

pub use crate::capability::Capability;
use crate::error::{Error, Result};

/// One target file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Short name used in reports and in other files' `upgrades_from`.
    pub name: String,
    /// What this target is (shown in reports).
    #[serde(default)]
    pub description: String,
    /// How the target runs.
    pub kind: TargetKind,
    /// `reference`: the release number (1, 2, 3…).
    #[serde(default)]
    pub release: Option<u32>,
    /// `reference`: in this process, or as a child process of the `reference-backend` binary.
    #[serde(default)]
    pub mode: ReferenceMode,
    /// `process`: the executable; `reference` child mode: the `reference-backend` binary
    /// (default: `$TRACEBENCH_REFERENCE_BACKEND`, then next to this program, then `PATH`).
    #[serde(default)]
    pub binary: Option<String>,
    /// `process`/`container`: arguments (templated, e.g. `-config.file={{config_file}}`);
    /// `reference` child mode: arguments placed before the standard ones.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables of the process or container (templated).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `container`: the image, `repository:tag`.
    #[serde(default)]
    pub image: Option<String>,
    /// The config template, inline. Placeholders are listed in the crate README.
    #[serde(default)]
    pub config: Option<String>,
    /// The config template as a file, relative to this target file.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// Merge the store's `storage.trace` section (backend, local path or S3 settings) over the
    /// rendered config. Tempo and the reference backend share these key names.
    #[serde(default = "yes")]
    pub storage_overlay: bool,
    /// Named config variants some cases need (`multitenant`, `limits`).
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// How to tell that the target is ready.
    #[serde(default)]
    pub readiness: Readiness,
    /// How to stop it.
    #[serde(default)]
    pub stop: StopPolicy,
    /// HTTP calls made before every graceful stop (e.g. Tempo's `/flush`).
    #[serde(default)]
    pub pre_stop: Vec<HttpCall>,
    /// The call that pushes in-memory data to object storage on demand.
    #[serde(default)]
    pub flush: Option<HttpCall>,
    /// `X-Scope-OrgID` sent on every request (profiles may override it).
    #[serde(default)]
    pub tenant: Option<String>,
    /// `remote`: where the backend answers.
    #[serde(default)]
    pub urls: Option<RemoteUrls>,
    /// What the target can do; cases needing anything else are skipped with that reason.
    #[serde(default)]
    pub capabilities: BTreeSet<Capability>,
    /// Cases this target opts out of: case id or pattern (`search.*`) → reason.
    #[serde(default)]
    pub opt_outs: BTreeMap<String, String>,
    /// How long data may take to become visible.
    #[serde(default)]
    pub timings: Timings,
    /// Limits the config (and its `limits` profile) sets, so limit cases know what to send.
    #[serde(default)]
    pub limits: DeclaredLimits,
    /// How to check a config without starting (config migration). Reference targets have a
    /// built-in check.
    #[serde(default)]
    pub config_check: Option<ConfigCheck>,
    /// Earlier targets this one declares it can be upgraded from, with what to expect.
    #[serde(default)]
    pub upgrades_from: Vec<UpgradeExpectation>,
    /// A deliberate defect (self-test of the suite only; never read from a file).
    #[serde(skip)]
    pub mutant: Option<Mutant>,
    /// Where the file was read from (templates resolve relative to it).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// How a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A release of the reference backend (in-process or child process).
    Reference,
    /// An external binary started with a rendered config.
    Process,
    /// A container image (needs a Docker engine).
    Container,
    /// A running backend at fixed URLs; no lifecycle.
    Remote,
}

/// Where a reference release runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferenceMode {
    /// `reference_backend::Backend::start` in this process (kill = abort without flushing).
    #[default]
    InProcess,
    /// A child process of the `reference-backend` binary (kill = SIGKILL).
    ChildProcess,
}

/// A config variant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// YAML merged over the rendered config (templated like the config).
    #[serde(default)]
    pub config_overlay: Option<String>,
    /// `X-Scope-OrgID` for this profile.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Readiness check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Readiness {
    /// Path polled until it answers 200.
    pub path: String,
    /// Longest wait.
    pub timeout: HumanDuration,
    /// Pause between polls.
    pub interval: HumanDuration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            path: "/ready".into(),
            timeout: HumanDuration(Duration::from_secs(60)),
            interval: HumanDuration(Duration::from_millis(100)),
        }
    }
}

/// Graceful stop: SIGTERM (or the in-process shutdown), a bounded wait, then SIGKILL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StopPolicy {
    /// How long to wait after SIGTERM before SIGKILL. A SIGKILL after this is reported, not
    /// counted as a failure (Tempo's SIGTERM can hang once it has served a query).
    pub grace: HumanDuration,
}

impl Default for StopPolicy {
    fn default() -> Self {
        Self {
            grace: HumanDuration(Duration::from_secs(15)),
        }
    }
}

/// One HTTP call to the target's query port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    /// `GET` or `POST`.
    #[serde(default = "get")]
    pub method: String,
    /// Path on the query port, e.g. `/flush`.
    pub path: String,
    /// Wait this long after the call answers (e.g. for a block list poll).
    #[serde(default)]
    pub settle: Option<HumanDuration>,
}

fn get() -> String {
    "GET".into()
}

/// URLs of a remote target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteUrls {
    /// Query API base, `http://host:3200`.
    pub query: String,
    /// OTLP gRPC, `http://host:4317`.
    #[serde(default)]
    pub otlp_grpc: Option<String>,
    /// OTLP HTTP base, `http://host:4318` (`/v1/traces` is appended).
    #[serde(default)]
    pub otlp_http: Option<String>,
}

/// How long data may take to become visible, and how often to look.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timings {
    /// A written trace must be readable by id within this.
    pub visible_within: HumanDuration,
    /// A written trace must be found by search within this.
    pub search_visible_within: HumanDuration,
    /// Pause between polls.
    pub poll_interval: HumanDuration,
    /// Longest time one case may take.
    pub case_timeout: HumanDuration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            visible_within: HumanDuration(Duration::from_secs(30)),
            search_visible_within: HumanDuration(Duration::from_secs(60)),
            poll_interval: HumanDuration(Duration::from_millis(250)),
            case_timeout: HumanDuration(Duration::from_secs(300)),
        }
    }
}

/// Limits the target's config sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredLimits {
    /// Largest OTLP request body accepted (default profile).
    pub max_request_bytes: Option<u64>,
    /// Attribute values longer than this are truncated (default profile).
    pub max_attribute_bytes: Option<u64>,
    /// `limits` profile: per-tenant ingestion burst in bytes.
    pub burst_size_bytes: Option<u64>,
    /// `limits` profile: most bytes one trace may hold.
    pub max_bytes_per_trace: Option<u64>,
}

/// A command that validates a config without starting the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigCheck {
    /// Arguments (templated; `{{config_file}}` is the file to check). Exit 0 = accepted.
    pub args: Vec<String>,
}

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
    /// The new target replays the old WAL: the old target is killed after seeding.
    #[default]
    Replayed,
    /// The new target does not read the old WAL: the old target is stopped gracefully
    /// (pre-stop calls, e.g. `/flush`) so everything is in blocks first.
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

impl TargetFile {
    /// Read and check a target file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut file = Self::parse(&text).map_err(|e| match e {
            Error::TargetFile { message, .. } => Error::TargetFile {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        file.source = Some(path.to_path_buf());
        Ok(file)
    }

    /// Parse and check target-file text.
    pub fn parse(text: &str) -> Result<Self> {
        let file: TargetFile = serde_saphyr::from_str(text).map_err(|e| Error::TargetFile {
            path: PathBuf::from("<inline>"),
            message: e.to_string(),
        })?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::TargetFile {
                path: self.source.clone().unwrap_or_else(|| "<inline>".into()),
                message: m,
            })
        };
        match self.kind {
            TargetKind::Reference if self.release.is_none() => {
                return bad("kind reference needs `release`".into());
            }
            TargetKind::Process if self.binary.is_none() => {
                return bad("kind process needs `binary`".into());
            }
            TargetKind::Container if self.image.is_none() => {
                return bad("kind container needs `image` (repository:tag)".into());
            }
            TargetKind::Remote if self.urls.is_none() => {
                return bad("kind remote needs `urls.query`".into());
            }
            _ => {}
        }
        if self.config.is_some() && self.config_file.is_some() {
            return bad("give `config` or `config_file`, not both".into());
        }
        for p in self.profiles.keys() {
            if !matches!(p.as_str(), "multitenant" | "limits") {
                return bad(format!(
                    "unknown profile {p:?}: profiles are `multitenant` and `limits`"
                ));
            }
        }
        Ok(())
    }

    /// The config template text (inline, or read relative to this file).
    pub fn config_template(&self) -> Result<String> {
        if let Some(t) = &self.config {
            return Ok(t.clone());
        }
        let Some(rel) = &self.config_file else {
            return Ok(String::new());
        };
        let path = match &self.source {
            Some(src) if rel.is_relative() => src.parent().unwrap_or(Path::new(".")).join(rel),
            _ => rel.clone(),
        };
        std::fs::read_to_string(&path).map_err(|e| Error::io(path, e))
    }

    /// Capabilities in effect: a remote target has no lifecycle whatever it declares.
    pub fn effective_capabilities(&self) -> BTreeSet<Capability> {
        let mut caps = self.capabilities.clone();
        if self.kind == TargetKind::Remote {
            caps.remove(&Capability::Lifecycle);
            caps.remove(&Capability::Wal);
        }
        if self.flush.is_none() {
            caps.remove(&Capability::Flush);
        }
        caps
    }

    /// The declared reason when `case_id` is opted out.
    pub fn opt_out(&self, case_id: &str) -> Option<&str> {
        self.opt_outs
            .iter()
            .find(|(pattern, _)| pattern_matches(pattern, case_id))
            .map(|(_, reason)| reason.as_str())
    }

    /// What this target declares about an upgrade from `from`.
    pub fn upgrade_from(&self, from: &str) -> Option<&UpgradeExpectation> {
        self.upgrades_from.iter().find(|u| u.from == from)
    }
}

/// `*` matches any run of characters; a pattern without `*` matches the id exactly or as a
/// dotted prefix (`search` matches `search.limit`). Comma-separated patterns match if any does.
pub fn pattern_matches(pattern: &str, id: &str) -> bool {
    pattern.split(',').map(str::trim).any(|p| {
        if p.is_empty() {
            return false;
        }
        if !p.contains('*') {
            return id == p || id.starts_with(&format!("{p}."));
        }
        glob(p.as_bytes(), id.as_bytes())
    })
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("search.*", "search.limit"));
        assert!(pattern_matches("search", "search.limit"));
        assert!(!pattern_matches("search", "searchx.limit"));
        assert!(pattern_matches("*.large_trace", "fidelity.large_trace"));
        assert!(pattern_matches("ingest.gzip, query.*", "query.unknown_id"));
        assert!(!pattern_matches("query.by_id_v1", "query.by_id_v1_json"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = TargetFile::parse("name: x\nkind: remote\nurls: {query: 'http://a'}\nrelase: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("relase"), "{e}");
    }

    #[test]
    fn kinds_need_their_fields() {
        let e = TargetFile::parse("name: x\nkind: reference\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("release"), "{e}");
        let f = TargetFile::parse(
            "name: x\nkind: remote\nurls: {query: 'http://a'}\ncapabilities: [lifecycle, otlp_grpc]\nopt_outs: {'search.*': no search}\n",
        )
        .unwrap();
        assert!(!f.effective_capabilities().contains(&Capability::Lifecycle));
        assert_eq!(f.opt_out("search.limit"), Some("no search"));
        assert_eq!(Capability::OtlpGrpc.name(), "otlp_grpc");
    }
}
