//! Targets: backends the suite can start on a store, stop, kill and start again.
//!
//! | kind | module | kill |
//! |---|---|---|
//! | `reference` | [`reference`]: a reference-backend release in this process or as a child process | abort without flushing / SIGKILL |
//! | `process` | [`process`]: any binary with a rendered config (a Tempo release) | SIGKILL |
//! | `container` | [`container`]: an image through testcontainers, host network | remove the container |
//! | `remote` | [`remote`]: fixed URLs, no lifecycle | — |

pub mod container;
pub mod process;
pub mod reference;
pub mod remote;
pub mod template;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::spec::{HttpCall, Readiness, StopPolicy, TargetFile, TargetKind};
use crate::store::StoreInfo;
pub use template::Ports;

/// Where and how to start a target.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The object store.
    pub store: StoreInfo,
    /// The target's own directory (WAL, rendered config, logs); kept across restarts and
    /// shared by the two targets of an upgrade.
    pub data_dir: PathBuf,
    /// Profile whose overlay applies (`multitenant`, `limits`), if any.
    pub profile: Option<String>,
    /// Ports to listen on (0 = any).
    pub ports: Ports,
}

/// Endpoints of a started target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Query API base URL, `http://127.0.0.1:3200`.
    pub http: String,
    /// OTLP gRPC URL, `http://127.0.0.1:4317`.
    pub otlp_grpc: Option<String>,
    /// OTLP HTTP base URL, `http://127.0.0.1:4318`.
    pub otlp_http: Option<String>,
}

impl Running {
    /// The ports in these URLs (0 where absent), to start a successor on the same ports.
    pub fn ports(&self) -> Ports {
        let port = |u: Option<&String>| {
            u.and_then(|u| reqwest::Url::parse(u).ok())
                .and_then(|u| u.port())
                .unwrap_or(0)
        };
        Ports {
            http: port(Some(&self.http)),
            grpc: port(self.otlp_grpc.as_ref()),
            otlp_http: port(self.otlp_http.as_ref()),
            internal_grpc: 0,
        }
    }
}

/// How a stop went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// SIGKILL was needed after the grace period (reported, not a failure by itself).
    pub forced: bool,
    /// Anything worth telling (pre-stop call answers, shutdown errors).
    pub notes: Vec<String>,
}

/// A config checked without starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVerdict {
    /// Accepted (possibly with warnings).
    pub accepted: bool,
    /// Everything the check printed (errors, warnings).
    pub output: String,
}

/// A backend the suite can drive.
#[async_trait]
pub trait Target: Send {
    /// The target's name.
    fn name(&self) -> &str;
    /// Start on `launch` and wait until ready.
    async fn start(&mut self, launch: &Launch) -> Result<Running>;
    /// Graceful stop: pre-stop calls, then SIGTERM (or in-process shutdown), then SIGKILL
    /// after `policy.grace`.
    async fn stop(&mut self, policy: &StopPolicy) -> Result<StopReport>;
    /// Stop at once, as a crash would.
    async fn kill(&mut self) -> Result<()>;
    /// The last launch, for restarts.
    fn last_launch(&self) -> Option<Launch>;
    /// Check a config without starting (config migration). `work_dir` holds scratch files.
    async fn check_config(&self, config: &str, work_dir: &Path) -> Result<ConfigVerdict>;
    /// Render this target's config for `launch` (what `start` would use), for the config
    /// migration case. Ports stay as given.
    fn rendered_config(&self, launch: &Launch) -> Result<String>;
    /// Graceful stop, then start again on the same launch (same ports).
    async fn restart(&mut self, policy: &StopPolicy, after: Option<&Running>) -> Result<Running> {
        let Some(mut launch) = self.last_launch() else {
            return Err(Error::target(self.name(), "restart before start"));
        };
        self.stop(policy).await?;
        if let Some(r) = after {
            launch.ports = r.ports();
        }
        self.start(&launch).await
    }
}

/// Build the target a file describes.
pub fn build(file: &TargetFile) -> Box<dyn Target> {
    match file.kind {
        TargetKind::Reference => Box::new(reference::ReferenceTarget::new(file.clone())),
        TargetKind::Process => Box::new(process::ProcessTarget::new(file.clone())),
        TargetKind::Container => Box::new(container::ContainerTarget::new(file.clone())),
        TargetKind::Remote => Box::new(remote::RemoteTarget::new(file.clone())),
    }
}

/// Why a target cannot run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// One line: what is missing.
    pub reason: String,
    /// The environment asks for a failure instead of a skip (`TRACEBENCH_REQUIRE_DOCKER=1`
    /// for containers, `TRACEBENCH_REQUIRE_TEMPO=1` for process binaries).
    pub required: bool,
}

/// Set to 1 to fail, not skip, when a process target's binary (a Tempo release) is missing.
pub const REQUIRE_BINARY_ENV: &str = "TRACEBENCH_REQUIRE_TEMPO";

/// `Some` when `file`'s target cannot run on this machine (a container target without a
/// Docker engine, a process target whose binary is not found); the caller skips its cases,
/// or fails them when the environment requires the target.
pub async fn unavailable_here(file: &TargetFile) -> Option<Unavailable> {
    match file.kind {
        TargetKind::Container => crate::docker::available()
            .await
            .err()
            .map(|reason| Unavailable {
                reason,
                required: crate::docker::required(),
            }),
        TargetKind::Process => process::resolve_binary(file)
            .err()
            .map(|reason| Unavailable {
                reason,
                required: std::env::var(REQUIRE_BINARY_ENV).is_ok_and(|v| v == "1"),
            }),
        TargetKind::Reference | TargetKind::Remote => None,
    }
}

/// The config `file` renders to for `launch` with `ports` and `config_file` as the path the
/// config will be written to: template, then the store overlay, then the profile overlay.
pub fn render_config(
    file: &TargetFile,
    launch: &Launch,
    ports: Ports,
    config_file: &Path,
) -> Result<String> {
    let terr = |m: String| Error::Template {
        target: file.name.clone(),
        message: m,
    };
    let profile = launch.profile.as_ref().and_then(|p| file.profiles.get(p));
    let tenant = profile
        .and_then(|p| p.tenant.as_deref())
        .or(file.tenant.as_deref());
    let vars = template::variables(&launch.store, &launch.data_dir, ports, config_file, tenant);
    let mut text = template::render(&file.config_template()?, &vars).map_err(terr)?;
    if file.storage_overlay {
        text =
            template::merge_value(&text, template::storage_overlay(&launch.store)).map_err(terr)?;
    }
    if let Some(overlay) = profile.and_then(|p| p.config_overlay.as_deref()) {
        let overlay = template::render(overlay, &vars).map_err(terr)?;
        text = template::merge_yaml(&text, &overlay).map_err(terr)?;
    }
    Ok(text)
}

/// Render templated arguments or environment values.
pub fn render_args(
    file: &TargetFile,
    launch: &Launch,
    ports: Ports,
    config_file: &Path,
    args: &[String],
) -> Result<Vec<String>> {
    let vars = template::variables(
        &launch.store,
        &launch.data_dir,
        ports,
        config_file,
        file.tenant.as_deref(),
    );
    args.iter()
        .map(|a| {
            template::render(a, &vars).map_err(|m| Error::Template {
                target: file.name.clone(),
                message: m,
            })
        })
        .collect()
}

/// Make one HTTP call to `base`; returns the status.
pub async fn call(base: &str, c: &HttpCall) -> std::result::Result<u16, String> {
    let url = format!("{}{}", base.trim_end_matches('/'), c.path);
    let client = reqwest::Client::new();
    let req = match c.method.to_ascii_uppercase().as_str() {
        "POST" => client.post(&url),
        _ => client.get(&url),
    };
    let resp = req
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| format!("{} {url}: {e}", c.method))?;
    let status = resp.status().as_u16();
    if let Some(s) = c.settle {
        tokio::time::sleep(s.get()).await;
    }
    Ok(status)
}

/// Run the pre-stop calls; answers go to the stop report's notes.
pub async fn pre_stop(base: &str, calls: &[HttpCall]) -> Vec<String> {
    let mut notes = Vec::new();
    for c in calls {
        match call(base, c).await {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => notes.push(format!("pre-stop {} {} answered {s}", c.method, c.path)),
            Err(e) => notes.push(format!("pre-stop call failed: {e}")),
        }
    }
    notes
}

/// Poll `base + readiness.path` until 200, the time is up, or `exited` says the target died.
pub async fn wait_ready(
    base: &str,
    readiness: &Readiness,
    mut exited: impl FnMut() -> Option<String>,
) -> std::result::Result<(), String> {
    let url = format!("{}{}", base.trim_end_matches('/'), readiness.path);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + readiness.timeout.get();
    loop {
        if let Some(why) = exited() {
            return Err(why);
        }
        let last = match client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) if r.status().as_u16() == 200 => return Ok(()),
            Ok(r) => {
                let status = r.status().as_u16();
                format!(
                    "{url} answered {status}: {}",
                    r.text().await.unwrap_or_default()
                )
            }
            Err(e) => format!("{url}: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "not ready within {}s: {}",
                readiness.timeout.get().as_secs(),
                last.trim()
            ));
        }
        tokio::time::sleep(readiness.interval.get()).await;
    }
}

/// `http://127.0.0.1:{port}`.
pub fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}
