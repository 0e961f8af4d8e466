//! Target files (`scenarios/targets/*.yaml`): what a backend under test is, how to start and
//! stop it, what it can do, which cases it opts out of or is known to fail and why, and what
//! it promises when upgraded from an earlier target.
//!
//! Every section denies unknown keys, so a typo is an error that names the key (with its
//! line and column, unless the file `extends` another).

mod deviation;
mod load;
mod parts;
mod upgrade;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reference_backend::config::HumanDuration;
use reference_backend::release::Mutant;
use serde::{Deserialize, Serialize};

pub use crate::capability::Capability;
use crate::error::{Error, Result};
pub use deviation::Deviation;
pub use parts::{
    ConfigCheck, DeclaredLimits, Flush, HttpCall, Profile, Readiness, RemoteUrls, StopPolicy,
    Timings, WalAppend,
};
pub use upgrade::{
    ConfigExpectation, ConfigOutcome, RollbackExpectation, UpgradeExpectation, WalExpectation,
};

/// One target file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Another target file (relative to this one) whose keys this one starts from: maps merge
    /// key by key, anything else (lists, strings) is replaced, and `null` removes an
    /// inherited key. Relative paths in the merged file resolve against this file.
    #[serde(default, skip_serializing)]
    pub extends: Option<PathBuf>,
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
    /// `process`: the executable (a path, or a name looked up in `binary_dir_env`'s folder,
    /// then on `PATH`); `reference` child mode: the `reference-backend` binary (default:
    /// `$TRACEBENCH_REFERENCE_BACKEND`, then next to this program, then `PATH`).
    #[serde(default)]
    pub binary: Option<String>,
    /// `process`: an environment variable naming a folder to look for `binary` in before
    /// `PATH` (e.g. `TRACEBENCH_TEMPO_BIN_DIR`).
    #[serde(default)]
    pub binary_dir_env: Option<String>,
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
    /// HTTP calls made before every graceful stop.
    #[serde(default)]
    pub pre_stop: Vec<HttpCall>,
    /// How data reaches object storage on demand (a flush call, a wait until a blocks-only
    /// read finds it, or both). Without it the target lacks the `flush` capability.
    #[serde(default)]
    pub flush: Option<Flush>,
    /// How to tell acknowledged traces reached the WAL, when that happens after the
    /// acknowledgement. Without it an acknowledged trace is taken to be in the WAL.
    #[serde(default)]
    pub wal_append: Option<WalAppend>,
    /// Search ranges newer than this are answered from recent (live) data only, so data that
    /// only exists in blocks (another release's, after an upgrade) is found by search only once
    /// it is older than this (Tempo 3.0's `query_frontend.search.query_backend_after`).
    #[serde(default)]
    pub search_backend_after: Option<HumanDuration>,
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
    /// Cases this target is known to fail: case id → reason and what the failure looks like.
    /// They still run; a matching failure is a known deviation, a pass fails the run.
    #[serde(default)]
    pub deviations: BTreeMap<String, Deviation>,
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

impl TargetFile {
    /// Read and check a target file (and the files it `extends`).
    pub fn load(path: &Path) -> Result<Self> {
        let mut file = load::load(path)?;
        file.source = Some(path.to_path_buf());
        file.validate()?;
        Ok(file)
    }

    /// Parse and check target-file text (no `extends`: that needs a file path).
    pub fn parse(text: &str) -> Result<Self> {
        let file = load::parse_text(text, Path::new("<inline>"))?;
        if file.extends.is_some() {
            return Err(Error::TargetFile {
                path: "<inline>".into(),
                message: "`extends` needs the file's path: use TargetFile::load".into(),
            });
        }
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
        if let Some(f) = &self.flush {
            if f.call.is_none() && f.until_found.is_none() {
                return bad("`flush` needs a `call`, an `until_found` path, or both".into());
            }
            if let Some(p) = &f.until_found
                && !p.contains("{trace_id}")
            {
                return bad(format!(
                    "`flush.until_found` {p:?} has no `{{trace_id}}` to fill in"
                ));
            }
        }
        let catalog: Vec<&str> = crate::cases::catalog().iter().map(|c| c.id).collect();
        let upgrade_deviations = self
            .upgrades_from
            .iter()
            .flat_map(|u| u.deviations.iter().map(move |d| (Some(&u.from), d)));
        for (from, (id, d)) in self
            .deviations
            .iter()
            .map(|d| (None, d))
            .chain(upgrade_deviations)
        {
            let at = match from {
                Some(f) => format!("upgrades_from {f:?} deviations.{id}"),
                None => format!("deviations.{id}"),
            };
            if !catalog.contains(&id.as_str()) {
                return bad(format!("{at}: no case has this id (`conformance list`)"));
            }
            if from.is_some() != id.starts_with("upgrade.") {
                return bad(format!(
                    "{at}: upgrade cases are declared under `upgrades_from`, others under `deviations`"
                ));
            }
            if let Err(m) = d.check() {
                return bad(format!("{at}: {m}"));
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

    /// The deviation declared for `case_id`, if any.
    pub fn deviation(&self, case_id: &str) -> Option<&Deviation> {
        self.deviations.get(case_id)
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

    #[test]
    fn deviations_and_flush_are_checked() {
        let base = "name: x\nkind: remote\nurls: {query: 'http://a'}\n";
        let ok = TargetFile::parse(&format!(
            "{base}deviations: {{ingest.gzip: {{reason: r, matches: 'code 12'}}}}\n"
        ))
        .unwrap();
        assert_eq!(ok.deviation("ingest.gzip").unwrap().reason, "r");
        for (extra, says) in [
            (
                "deviations: {ingest.nope: {reason: r, matches: x}}",
                "no case has this id",
            ),
            (
                "deviations: {ingest.gzip: {reason: r, matches: '('}}",
                "regular expression",
            ),
            (
                "deviations: {upgrade.rollback: {reason: r, matches: x}}",
                "under `upgrades_from`",
            ),
            (
                "upgrades_from: [{from: y, deviations: {ingest.gzip: {reason: r, matches: x}}}]",
                "under `upgrades_from`",
            ),
            ("deviations: {ingest.gzip: {reason: r}}", "matches"),
            ("flush: {within: 5s}", "needs a `call`"),
            ("flush: {until_found: /api/traces/x}", "{trace_id}"),
        ] {
            let e = TargetFile::parse(&format!("{base}{extra}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{extra}: {e}");
        }
        let f = TargetFile::parse(&format!(
            "{base}upgrades_from: [{{from: y, deviations: {{upgrade.rollback: {{reason: r, matches: x}}}}}}]\n"
        ))
        .unwrap();
        assert!(
            f.upgrade_from("y")
                .unwrap()
                .deviations
                .contains_key("upgrade.rollback")
        );
    }
}
