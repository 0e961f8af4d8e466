//! Command line: `reference-backend [--release N] [--config FILE] [--config.expand-env]
//! [--listen-report FILE]`, `reference-backend check-config [--release N]
//! [--config.expand-env] FILE` and `reference-backend releases`.
//!
//! Tempo's spellings work too: `-config.file=FILE` and `-config.expand-env=true` (one dash,
//! see [`tempo_style_args`]).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{info, warn};

use crate::config::{Config, LoadOptions};
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
    #[arg(long, short = 'c', visible_alias = "config.file", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `--config.expand-env`.
    #[command(flatten)]
    pub expand_env: ExpandEnv,
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

/// `--config.expand-env[=BOOL]`, for the server and `check-config` alike.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ExpandEnv {
    /// Expand `${VAR}` and `${VAR:-default}` in the config file from the environment
    /// first, as Tempo's `-config.expand-env=true` does (`$${` is a literal `${`).
    #[arg(
        long = "config.expand-env",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub config_expand_env: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file without starting; exit 1 with the problem when invalid.
    CheckConfig {
        /// Check against this release's schema.
        #[arg(long, value_name = "N", default_value_t = ReleaseId::default().number(), value_parser = parse_release)]
        release: u32,
        /// `--config.expand-env`.
        #[command(flatten)]
        expand_env: ExpandEnv,
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

/// Tempo's one-dash spellings of the config flags (`-config.file=F`,
/// `-config.expand-env=true`) rewritten to this command line's (`--config.file=F`, …), so a
/// Tempo command line works unchanged. Other arguments pass through as given.
pub fn tempo_style_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s) if s.starts_with("-config.") => {
                let mut long = OsString::from("-");
                long.push(&a);
                long
            }
            _ => a,
        })
        .collect()
}

fn load(path: Option<&PathBuf>, release: ReleaseId, expand_env: bool) -> anyhow::Result<Config> {
    let Some(p) = path else {
        return Ok(Config {
            release,
            ..Config::default()
        });
    };
    let parsed = Config::load_with(p, release, LoadOptions { expand_env })?;
    for w in &parsed.warnings {
        warn!(file = %p.display(), %release, "{w}");
    }
    Ok(parsed.config)
}

/// Run the command line.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    match &opts.command {
        Some(Command::CheckConfig {
            file,
            release: n,
            expand_env,
        }) => {
            let r = release(*n);
            let options = LoadOptions {
                expand_env: expand_env.config_expand_env,
            };
            let parsed = Config::load_with(file, r, options)?;
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
    let config = load(
        opts.config.as_ref(),
        release(opts.release),
        opts.expand_env.config_expand_env,
    )?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(args: &[&str]) -> Opts {
        let args = tempo_style_args(args.iter().map(OsString::from));
        Opts::try_parse_from(args).unwrap()
    }

    #[test]
    fn tempo_and_own_spellings_of_the_config_flags() {
        for args in [
            &["rb", "-config.file=t.yaml", "-config.expand-env=true"][..],
            &["rb", "--config.file=t.yaml", "--config.expand-env"],
            &["rb", "--config", "t.yaml", "--config.expand-env=true"],
            &["rb", "-c", "t.yaml", "-config.expand-env"],
        ] {
            let o = parse(args);
            assert_eq!(o.config, Some(PathBuf::from("t.yaml")), "{args:?}");
            assert!(o.expand_env.config_expand_env, "{args:?}");
        }
        let o = parse(&["rb", "-config.file=t.yaml", "-config.expand-env=false"]);
        assert!(!o.expand_env.config_expand_env);
        assert!(
            !parse(&["rb", "--config", "t.yaml"])
                .expand_env
                .config_expand_env
        );
        // The flag never takes the next argument as its value.
        let o = parse(&["rb", "check-config", "--config.expand-env", "t.yaml"]);
        match o.command {
            Some(Command::CheckConfig {
                file, expand_env, ..
            }) => assert_eq!(
                (file, expand_env.config_expand_env),
                (PathBuf::from("t.yaml"), true)
            ),
            other => panic!("{other:?}"),
        }
        let e = Opts::try_parse_from(["rb", "--config.expand-env=maybe"]).unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
    }
}
