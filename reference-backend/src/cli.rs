//! Command line: `reference-backend [--config FILE] [--listen-report FILE]` and
//! `reference-backend check-config FILE`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::info;

use crate::config::Config;
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
        /// The config file.
        file: PathBuf,
    },
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

/// Run the command line.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    if let Some(Command::CheckConfig { file }) = &opts.command {
        Config::load(file)?;
        println!("{}: ok", file.display());
        return Ok(());
    }
    let config = load(opts.config.as_ref())?;
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
