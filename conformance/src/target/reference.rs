//! A reference-backend release, in this process (the config parsed with
//! `config_rules::parse` for the release, then `Backend::start`) or as a child process of the
//! `reference-backend` binary (`--release N --config FILE --listen-report FILE`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reference_backend::release::{ReleaseId, config_rules};
use reference_backend::{Backend, Config, ListenAddrs};

use super::process::{Child, run_check, write_file};
use super::{
    ConfigVerdict, Launch, Ports, Running, StopReport, Target, pre_stop, render_args,
    render_config, template, wait_ready,
};
use crate::error::{Error, Result};
use crate::spec::{ReferenceMode, StopPolicy, TargetFile};

/// How long a fixed port may stay busy after the previous holder stopped.
const REBIND_WAIT: Duration = Duration::from_secs(5);

/// A reference release.
pub struct ReferenceTarget {
    file: TargetFile,
    release: u32,
    backend: Option<Backend>,
    child: Option<Child>,
    launch: Option<Launch>,
    running: Option<Running>,
    starts: u32,
}

impl ReferenceTarget {
    /// A target for `file` (kind `reference`).
    pub fn new(file: TargetFile) -> Self {
        let release = file.release.unwrap_or(1);
        Self {
            file,
            release,
            backend: None,
            child: None,
            launch: None,
            running: None,
            starts: 0,
        }
    }

    fn release_id(&self) -> Result<ReleaseId> {
        ReleaseId::from_number(self.release).ok_or_else(|| {
            Error::target(
                &self.file.name,
                format!("reference-backend has no release {}", self.release),
            )
        })
    }

    fn config_path(&self, launch: &Launch) -> PathBuf {
        launch.data_dir.join(format!("{}.yaml", self.file.name))
    }

    /// The rendered config with listeners on 127.0.0.1 at `ports` and the WAL under the
    /// data dir unless the template puts it elsewhere.
    fn config_text(&self, launch: &Launch, ports: Ports) -> Result<String> {
        let path = self.config_path(launch);
        let text = render_config(&self.file, launch, ports, &path)?;
        let wal = launch.data_dir.join("wal").display().to_string();
        let defaults = serde_json::json!({ "storage": { "trace": { "wal": { "path": wal } } } });
        let listeners = serde_json::json!({
            "server": { "http_listen_address": "127.0.0.1", "http_listen_port": ports.http },
            "distributor": { "receivers": { "otlp": { "protocols": {
                "grpc": { "endpoint": format!("127.0.0.1:{}", ports.grpc) },
                "http": { "endpoint": format!("127.0.0.1:{}", ports.otlp_http) },
            } } } },
        });
        let terr = |m: String| Error::Template {
            target: self.file.name.clone(),
            message: m,
        };
        let with_defaults = template::merge_value("", defaults).map_err(terr)?;
        let text = template::merge_yaml(&with_defaults, &text).map_err(terr)?;
        template::merge_value(&text, listeners).map_err(terr)
    }

    /// Parse `text` in this release's spelling (renamed keys accepted with warnings, keys of
    /// other releases rejected), with the file's mutant.
    fn parse(&self, text: &str) -> Result<config_rules::Parsed> {
        let mut parsed = config_rules::parse(text, self.release_id()?)
            .map_err(|e| Error::target(&self.file.name, format!("config rejected: {e}")))?;
        parsed.config.mutant = self.file.mutant;
        Ok(parsed)
    }

    fn config(&self, text: &str) -> Result<Config> {
        let parsed = self.parse(text)?;
        for w in &parsed.warnings {
            tracing::warn!(target_name = %self.file.name, "config: {w}");
        }
        Ok(parsed.config)
    }

    async fn start_in_process(&mut self, launch: &Launch) -> Result<Running> {
        let config = self.config(&self.config_text(launch, launch.ports)?)?;
        let deadline = Instant::now() + REBIND_WAIT;
        let backend = loop {
            match Backend::start(config.clone()).await {
                Ok(b) => break b,
                Err(reference_backend::Error::Bind { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(Error::target(&self.file.name, e.to_string())),
            }
        };
        let timeout = self.file.readiness.timeout.get();
        match tokio::time::timeout(timeout, backend.wait_ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                backend.abort();
                return Err(Error::target(&self.file.name, e.to_string()));
            }
            Err(_) => {
                backend.abort();
                return Err(Error::target(
                    &self.file.name,
                    format!("not ready within {}s", timeout.as_secs()),
                ));
            }
        }
        let running = running_of(&backend.addrs);
        self.backend = Some(backend);
        Ok(running)
    }

    async fn start_child(&mut self, launch: &Launch) -> Result<Running> {
        let name = self.file.name.clone();
        if self.file.mutant.is_some() {
            return Err(Error::target(&name, "mutants run in-process only"));
        }
        let path = self.config_path(launch);
        write_file(&path, &self.config_text(launch, launch.ports)?)?;
        self.starts += 1;
        let report = launch.data_dir.join(format!("{name}-listen.json"));
        let _ = std::fs::remove_file(&report);
        let mut args = render_args(&self.file, launch, launch.ports, &path, &self.file.args)?;
        args.extend([
            "--release".to_owned(),
            self.release.to_string(),
            "--config".to_owned(),
            path.display().to_string(),
            "--listen-report".to_owned(),
            report.display().to_string(),
        ]);
        let log = super::process::log_path(&launch.data_dir, &name);
        let binary = reference_binary(&self.file);
        let mut child = Child::spawn(&binary, &args, &Default::default(), &launch.data_dir, log)?;
        let deadline = Instant::now() + self.file.readiness.timeout.get();
        let addrs = loop {
            if let Ok(text) = std::fs::read(&report)
                && let Ok(addrs) = serde_json::from_slice::<ListenAddrs>(&text)
            {
                break addrs;
            }
            if let Some(why) = child.exited() {
                return Err(Error::target(&name, why));
            }
            if Instant::now() >= deadline {
                let tail = child.log_tail();
                child.kill().await;
                return Err(Error::target(
                    &name,
                    format!("no listen report within the readiness timeout; log:\n{tail}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let running = running_of(&addrs);
        if let Err(why) = wait_ready(&running.http, &self.file.readiness, || child.exited()).await {
            let tail = child.log_tail();
            child.kill().await;
            return Err(Error::target(&name, format!("{why}\nlog tail:\n{tail}")));
        }
        self.child = Some(child);
        Ok(running)
    }
}

fn running_of(a: &ListenAddrs) -> Running {
    Running {
        http: format!("http://{}", a.http),
        otlp_grpc: Some(format!("http://{}", a.otlp_grpc)),
        otlp_http: Some(format!("http://{}", a.otlp_http)),
    }
}

/// The `reference-backend` binary: the file's `binary`, `$TRACEBENCH_REFERENCE_BACKEND`, a
/// `reference-backend` next to this program (or one directory up, for test binaries in
/// `target/*/deps`), else the name on `PATH`.
pub fn reference_binary(file: &TargetFile) -> String {
    if let Some(b) = &file.binary {
        return b.clone();
    }
    if let Ok(b) = std::env::var("TRACEBENCH_REFERENCE_BACKEND") {
        return b;
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        for d in [Some(dir), dir.parent()].into_iter().flatten() {
            let candidate = d.join("reference-backend");
            if candidate.is_file() {
                return candidate.display().to_string();
            }
        }
    }
    "reference-backend".into()
}

#[async_trait]
impl Target for ReferenceTarget {
    fn name(&self) -> &str {
        &self.file.name
    }

    async fn start(&mut self, launch: &Launch) -> Result<Running> {
        let running = match self.file.mode {
            ReferenceMode::InProcess => self.start_in_process(launch).await?,
            ReferenceMode::ChildProcess => self.start_child(launch).await?,
        };
        self.launch = Some(launch.clone());
        self.running = Some(running.clone());
        Ok(running)
    }

    async fn stop(&mut self, policy: &StopPolicy) -> Result<StopReport> {
        let mut report = StopReport::default();
        if let Some(r) = self.running.take() {
            report.notes = pre_stop(&r.http, &self.file.pre_stop).await;
        }
        if let Some(b) = self.backend.take() {
            match tokio::time::timeout(policy.grace.get(), b.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => report.notes.push(format!("shutdown: {e}")),
                Err(_) => {
                    report.forced = true;
                    report.notes.push(format!(
                        "shutdown did not finish within {}s",
                        policy.grace.get().as_secs()
                    ));
                }
            }
        }
        if let Some(mut c) = self.child.take() {
            report.forced = c.terminate(policy.grace.get()).await;
        }
        Ok(report)
    }

    async fn kill(&mut self) -> Result<()> {
        if let Some(b) = self.backend.take() {
            b.abort();
        }
        if let Some(mut c) = self.child.take() {
            c.kill().await;
        }
        self.running = None;
        Ok(())
    }

    fn last_launch(&self) -> Option<Launch> {
        self.launch.clone()
    }

    async fn check_config(&self, config: &str, work_dir: &Path) -> Result<ConfigVerdict> {
        match self.file.mode {
            // The same parse step `check-config` runs, in-process: warnings are its output.
            ReferenceMode::InProcess => Ok(match self.parse(config) {
                Ok(parsed) => ConfigVerdict {
                    accepted: true,
                    output: parsed
                        .warnings
                        .iter()
                        .map(|w| format!("warning: {w}\n"))
                        .collect(),
                },
                Err(e) => ConfigVerdict {
                    accepted: false,
                    output: e.to_string(),
                },
            }),
            ReferenceMode::ChildProcess => {
                let args = [
                    "check-config".to_owned(),
                    "--release".to_owned(),
                    self.release.to_string(),
                    "{{config_file}}".to_owned(),
                ];
                let mut all = self.file.args.clone();
                all.extend(args);
                run_check(
                    &self.file,
                    &reference_binary(&self.file),
                    &all,
                    config,
                    work_dir,
                )
                .await
            }
        }
    }

    fn rendered_config(&self, launch: &Launch) -> Result<String> {
        self.config_text(launch, launch.ports)
    }
}
