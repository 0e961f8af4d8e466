//! External processes: a binary started with a rendered config (e.g. a Tempo release), and
//! the child-process plumbing the reference target shares: logs to a file, readiness with a
//! bounded wait, SIGTERM → bounded wait → SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{
    ConfigVerdict, Launch, Ports, Running, StopReport, Target, local_url, pre_stop, render_args,
    render_config, wait_ready,
};
use crate::error::{Error, Result};
use crate::spec::{StopPolicy, TargetFile};

/// Lines of a child's log quoted in errors.
const LOG_TAIL_LINES: usize = 15;

/// A child process whose stdout and stderr go to one log file.
pub struct Child {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Child {
    /// Spawn `program args…` in `cwd` with extra `env`, logging to `log`.
    pub fn spawn(
        program: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        cwd: &Path,
        log: PathBuf,
    ) -> Result<Child> {
        let out = std::fs::File::create(&log).map_err(|e| Error::io(&log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(&log, e))?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .envs(env)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(program, e))?;
        Ok(Child { child, log })
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// `Some(why)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("exited with {status}; log:\n{}", self.log_tail())),
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }

    /// The last lines of the log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. `true` when SIGKILL was needed.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(_) => false,
            Err(_) => {
                self.kill().await;
                true
            }
        }
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// An external binary with a config template.
pub struct ProcessTarget {
    file: TargetFile,
    child: Option<Child>,
    launch: Option<Launch>,
    running: Option<Running>,
    starts: u32,
}

impl ProcessTarget {
    /// A target for `file` (kind `process`).
    pub fn new(file: TargetFile) -> Self {
        Self {
            file,
            child: None,
            launch: None,
            running: None,
            starts: 0,
        }
    }

    fn config_path(&self, launch: &Launch) -> PathBuf {
        launch.data_dir.join(format!("{}.yaml", self.file.name))
    }
}

/// The executable of a process target: `binary` as a path when it has a `/`, else looked up in
/// the folder `binary_dir_env` names (when set), then on `PATH`. `Err` is a one-line reason.
pub fn resolve_binary(file: &TargetFile) -> std::result::Result<PathBuf, String> {
    let name = file.binary.as_deref().unwrap_or_default();
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{name} not found"))
        };
    }
    let mut looked = Vec::new();
    if let Some(var) = &file.binary_dir_env {
        match std::env::var_os(var).filter(|v| !v.is_empty()) {
            Some(dir) => {
                let p = PathBuf::from(&dir).join(name);
                if p.is_file() {
                    return Ok(p);
                }
                looked.push(format!("${var} ({})", PathBuf::from(dir).display()));
            }
            None => looked.push(format!("${var} (not set)")),
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    looked.push("PATH".into());
    Err(format!("{name} not found in {}", looked.join(" or ")))
}

/// `<dir>/<name>-<n>.log` for the first `n` not taken yet: every start of a target on a data
/// dir (restarts, and the same target built again for an upgrade's rollback) keeps its log.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    (1..)
        .map(|n| dir.join(format!("{name}-{n}.log")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{name}.log")))
}

/// Write `text` to `path`, creating the parent directory.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[async_trait]
impl Target for ProcessTarget {
    fn name(&self) -> &str {
        &self.file.name
    }

    async fn start(&mut self, launch: &Launch) -> Result<Running> {
        let name = self.file.name.clone();
        let ports = launch
            .ports
            .allocate()
            .map_err(|e| Error::target(&name, format!("no free port: {e}")))?;
        let config_path = self.config_path(launch);
        let config = render_config(&self.file, launch, ports, &config_path)?;
        write_file(&config_path, &config)?;
        let args = render_args(&self.file, launch, ports, &config_path, &self.file.args)?;
        let env_values: Vec<String> = self.file.env.values().cloned().collect();
        let env_values = render_args(&self.file, launch, ports, &config_path, &env_values)?;
        let env = self.file.env.keys().cloned().zip(env_values).collect();
        self.starts += 1;
        let log = log_path(&launch.data_dir, &self.file.name);
        let binary = resolve_binary(&self.file).map_err(|m| Error::target(&name, m))?;
        let binary = binary.display().to_string();
        let mut child = Child::spawn(&binary, &args, &env, &launch.data_dir, log)?;
        let running = Running {
            http: local_url(ports.http),
            otlp_grpc: Some(local_url(ports.grpc)),
            otlp_http: Some(local_url(ports.otlp_http)),
        };
        if let Err(why) = wait_ready(&running.http, &self.file.readiness, || child.exited()).await {
            let tail = child.log_tail();
            child.kill().await;
            return Err(Error::target(&name, format!("{why}\nlog tail:\n{tail}")));
        }
        self.child = Some(child);
        self.launch = Some(Launch {
            ports,
            ..launch.clone()
        });
        self.running = Some(running.clone());
        Ok(running)
    }

    async fn stop(&mut self, policy: &StopPolicy) -> Result<StopReport> {
        let mut report = StopReport::default();
        if let Some(r) = &self.running {
            report.notes = pre_stop(&r.http, &self.file.pre_stop).await;
        }
        if let Some(mut child) = self.child.take() {
            report.forced = child.terminate(policy.grace.get()).await;
            if report.forced {
                report.notes.push(format!(
                    "did not exit within {}s of SIGTERM; killed",
                    policy.grace.get().as_secs()
                ));
            }
        }
        self.running = None;
        Ok(report)
    }

    async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await;
        }
        self.running = None;
        Ok(())
    }

    fn last_launch(&self) -> Option<Launch> {
        self.launch.clone()
    }

    async fn check_config(&self, config: &str, work_dir: &Path) -> Result<ConfigVerdict> {
        let Some(check) = &self.file.config_check else {
            return Err(Error::target(
                &self.file.name,
                "declares no `config_check` command",
            ));
        };
        let binary = resolve_binary(&self.file).map_err(|m| Error::target(&self.file.name, m))?;
        run_check(
            &self.file,
            &binary.display().to_string(),
            &check.args,
            config,
            work_dir,
        )
        .await
    }

    fn rendered_config(&self, launch: &Launch) -> Result<String> {
        render_config(&self.file, launch, launch.ports, &self.config_path(launch))
    }
}

/// Write `config` to a scratch file and run `binary args…` on it; exit 0 = accepted.
pub async fn run_check(
    file: &TargetFile,
    binary: &str,
    args: &[String],
    config: &str,
    work_dir: &Path,
) -> Result<ConfigVerdict> {
    let path = work_dir.join(format!("check-{}.yaml", file.name));
    write_file(&path, config)?;
    let launch = Launch {
        store: crate::store::StoreInfo::Local {
            path: work_dir.to_path_buf(),
        },
        data_dir: work_dir.to_path_buf(),
        profile: None,
        ports: Ports::default(),
    };
    let args = render_args(file, &launch, Ports::default(), &path, args)?;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(binary)
            .args(&args)
            .current_dir(work_dir)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| Error::target(&file.name, "config check did not finish within 60s"))?
    .map_err(|e| Error::io(binary, e))?;
    Ok(ConfigVerdict {
        accepted: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}
