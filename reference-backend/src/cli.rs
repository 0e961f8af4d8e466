//! Command line: `reference-backend [--release N] [--config FILE] [--listen-report FILE]`,
//! `reference-backend check-config [--release N] FILE` and `reference-backend releases`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{info, warn};

use crate::config::Config;
use crate::release::ReleaseId;
use crate::server::Backend;

/// A Tempo-compatible tracing backend: OTLP ingest, WAL, blocks in object storage,
/// the Tempo query API.
#[derive(Debug, Parser)]
#[command(
    name = "reference-backend",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Opts {
    /// Config file (tempo.yaml-shaped). Without it every default applies.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the bound addresses as JSON to FILE once listening (for port 0).
    #[arg(long, value_name = "FILE")]
    pub listen_report: Option<PathBuf>,
    /// Behave exactly as this release of the backend (block formats, config schema); see
    /// `reference-backend releases`.
    #[arg(long, value_name = "N", default_value_t = ReleaseId::default().number(), value_parser = parse_release)]
    pub release: u32,
    /// Log filter (`info`, `debug`, `reference_backend=debug`, …); `RUST_LOG` wins.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Subcommand; none starts the backend.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file without starting; exit 1 with the problem when invalid.
    CheckConfig {
        /// Check against this release's schema.
        #[arg(long, value_name = "N", default_value_t = ReleaseId::default().number(), value_parser = parse_release)]
        release: u32,
        /// The config file.
        file: PathBuf,
    },
    /// Print the release table: block formats written and read, WAL format, config
    /// changes, and the documented upgrade path.
    Releases,
}

fn parse_release(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a release number"))?;
    ReleaseId::from_number(n)
        .map(ReleaseId::number)
        .ok_or_else(|| format!("release {n} does not exist (releases: 1, 2, 3)"))
}

fn release(n: u32) -> ReleaseId {
    ReleaseId::from_number(n).unwrap_or_default()
}

fn load(path: Option<&PathBuf>, release: ReleaseId) -> anyhow::Result<Config> {
    let Some(p) = path else {
        return Ok(Config {
            release,
            ..Config::default()
        });
    };
    let parsed = Config::load_for(p, release)?;
    for w in &parsed.warnings {
        warn!(file = %p.display(), %release, "{w}");
    }
    Ok(parsed.config)
}

/// Run the command line.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    match &opts.command {
        Some(Command::CheckConfig { file, release: n }) => {
            let r = release(*n);
            let parsed = Config::load_for(file, r)?;
            for w in &parsed.warnings {
                println!("warning: {w}");
            }
            println!("{}: ok for {r}", file.display());
            return Ok(());
        }
        Some(Command::Releases) => {
            print!("{}", crate::release::table::render());
            return Ok(());
        }
        None => {}
    }
    let config = load(opts.config.as_ref(), release(opts.release))?;
    info!(release = config.release.number(), "starting");
    let backend = Backend::start(config).await?;
    if let Some(path) = &opts.listen_report {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&backend.addrs)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    }
    backend.wait_ready().await?;
    wait_for_signal().await;
    info!("stopping: flushing in-memory traces");
    backend.shutdown().await?;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
