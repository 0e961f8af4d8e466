//! Command line: `conformance list`, `run`, `upgrade`, and the hidden `serve-reference` that
//! runs a reference release as this program's child process.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use reference_backend::release::ReleaseId;

use crate::outcome::{Counts, Outcome};
use crate::report::{DEFAULT_OUT, Report};
use crate::runner::{run_target, select};
use crate::spec::TargetFile;
use crate::store::{Started, Store, StoreSpec};
use crate::upgrade::{UpgradeOptions, run_upgrade};

/// Black-box conformance and upgrade suite for OTLP tracing backends with Tempo's query API.
#[derive(Debug, Parser)]
#[command(name = "conformance", version)]
pub struct Opts {
    /// Log filter (`warn`, `info`, `conformance=debug`, …); `RUST_LOG` wins.
    #[arg(long, default_value = "warn", global = true)]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the case catalog.
    List {
        /// As a Markdown table (for the README).
        #[arg(long)]
        markdown: bool,
    },
    /// Run the catalog against one target on one store.
    Run {
        /// Target file (`scenarios/targets/*.yaml`).
        #[arg(long, value_name = "FILE")]
        target: PathBuf,
        /// Object store: local, embedded-s3, minio or s3-env.
        #[arg(long, default_value = "local")]
        store: StoreSpec,
        /// Cases to run: ids or patterns (`search.*`, `ingest,query`); default all.
        #[arg(long, value_name = "PATTERN")]
        cases: Option<String>,
        /// Where the reports go.
        #[arg(long, default_value = DEFAULT_OUT)]
        out: PathBuf,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Write with one target, upgrade in place to another, read everything back, roll back.
    Upgrade {
        /// The older target file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The newer target file.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Object store: local, embedded-s3, minio or s3-env.
        #[arg(long, default_value = "local")]
        store: StoreSpec,
        /// A loadgen scenario driven while the targets are swapped.
        #[arg(long, value_name = "SCENARIO")]
        under_load: Option<PathBuf>,
        /// Where the reports go.
        #[arg(long, default_value = DEFAULT_OUT)]
        out: PathBuf,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Merge the `report.json` of several runs into one report (one column per run), e.g.
    /// for a verdict table across targets and upgrade paths.
    Merge {
        /// Title of the merged report.
        #[arg(long, default_value = "merged runs")]
        title: String,
        /// Where the merged reports go.
        #[arg(long)]
        out: PathBuf,
        /// `report.json` files (or directories holding one), in column order.
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
    },
    /// Run a reference-backend release (same flags as `reference-backend`, and its
    /// `check-config`), for child-process targets when the `reference-backend` binary is not
    /// at hand.
    #[command(hide = true, args_conflicts_with_subcommands = true)]
    ServeReference {
        /// Config file, in the release's spelling.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the bound addresses here as JSON.
        #[arg(long)]
        listen_report: Option<PathBuf>,
        /// Release number (default: the newest, as `reference-backend`).
        #[arg(long, default_value_t = ReleaseId::default().number())]
        release: u32,
        /// `check-config`: validate a config without starting.
        #[command(subcommand)]
        check: Option<ServeCommand>,
    },
}

/// What `serve-reference` does instead of serving.
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Validate a config for a release: `warning: …` lines, then ok; exit 1 when rejected.
    CheckConfig {
        /// Release number.
        #[arg(long, default_value_t = ReleaseId::default().number())]
        release: u32,
        /// The config file.
        file: PathBuf,
    },
}

/// Start a store, or explain why it cannot run here.
async fn store(
    spec: StoreSpec,
    dir: &std::path::Path,
    report: &mut Report,
) -> anyhow::Result<Option<Store>> {
    match Store::start(spec, dir).await? {
        Started::Ready(s) => Ok(Some(*s)),
        Started::Skipped(reason) => {
            eprintln!("SKIP store {spec}: {reason}");
            report.skipped_runs.push(format!("store {spec}: {reason}"));
            Ok(None)
        }
    }
}

fn finish(report: &Report, out: &std::path::Path) -> anyhow::Result<u8> {
    let paths = report.write(out)?;
    for run in &report.runs {
        println!(
            "{} {} [{}]: {}",
            if run.passed() { "PASSED" } else { "FAILED" },
            run.target,
            run.store,
            Counts::of(&run.results).summary()
        );
        for c in &run.results {
            match &c.outcome {
                Outcome::Fail(r) => {
                    println!("  fail {}: {}", c.id, r.lines().next().unwrap_or_default())
                }
                Outcome::KnownDeviation(d) => println!("  known deviation {}: {}", c.id, d.reason),
                Outcome::Skip(r) if r.starts_with("not run here") => {
                    println!("  skip {}: {r}", c.id)
                }
                _ => {}
            }
        }
    }
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    println!("reports: {}", shown.join(", "));
    Ok(if report.passed() { 0 } else { 1 })
}

/// Run the command line; returns the exit code (0 only when nothing failed).
pub async fn run(opts: Opts) -> anyhow::Result<u8> {
    match opts.command {
        Command::List { markdown } => {
            if markdown {
                print!("{}", crate::report::markdown::catalog_table());
            } else {
                for c in crate::cases::catalog() {
                    println!("{:<36} {}", c.id, c.description);
                }
            }
            Ok(0)
        }
        Command::Run {
            target,
            store: spec,
            cases,
            out,
            work_dir: dir,
        } => {
            let file = TargetFile::load(&target)?;
            let dir = work_dir(dir.as_deref())?;
            let mut report = Report::new(format!("run {} on {spec}", file.name));
            if let Some(s) = store(spec, &dir, &mut report).await? {
                let selected = select(cases.as_deref());
                anyhow::ensure!(!selected.is_empty(), "no case matches {cases:?}");
                report
                    .runs
                    .push(run_target(&file, &s, &selected, &dir).await);
                s.stop().await;
            }
            finish(&report, &out)
        }
        Command::Upgrade {
            from,
            to,
            store: spec,
            under_load,
            out,
            work_dir: dir,
        } => {
            let (from, to) = (TargetFile::load(&from)?, TargetFile::load(&to)?);
            let dir = work_dir(dir.as_deref())?;
            let mut report = Report::new(format!("upgrade {} → {} on {spec}", from.name, to.name));
            if let Some(s) = store(spec, &dir, &mut report).await? {
                let opts = UpgradeOptions {
                    work_dir: dir.clone(),
                    under_load,
                };
                report.runs.push(run_upgrade(&from, &to, &s, &opts).await);
                s.stop().await;
            }
            finish(&report, &out)
        }
        Command::Merge {
            title,
            out,
            reports,
        } => {
            let mut merged = Report::new(title);
            let mut earliest: Option<String> = None;
            for path in reports {
                let path = if path.is_dir() {
                    path.join("report.json")
                } else {
                    path
                };
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("read {}", path.display()))?;
                let r: Report = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a conformance report", path.display()))?;
                if earliest.as_ref().is_none_or(|e| r.started_at < *e) {
                    earliest = Some(r.started_at.clone());
                }
                merged.skipped_runs.extend(r.skipped_runs);
                merged.runs.extend(r.runs);
            }
            if let Some(e) = earliest {
                merged.started_at = e;
            }
            finish(&merged, &out)
        }
        Command::ServeReference {
            check: Some(ServeCommand::CheckConfig { release, file }),
            ..
        } => {
            let r = release_id(release)?;
            let parsed = reference_backend::Config::load_for(&file, r)?;
            for w in &parsed.warnings {
                println!("warning: {w}");
            }
            println!("{}: ok for {r}", file.display());
            Ok(0)
        }
        Command::ServeReference {
            config,
            listen_report,
            release,
            check: None,
        } => serve_reference(config, listen_report, release).await,
    }
}

fn release_id(n: u32) -> anyhow::Result<ReleaseId> {
    ReleaseId::from_number(n).with_context(|| format!("reference-backend has no release {n}"))
}

async fn serve_reference(
    config: Option<PathBuf>,
    listen_report: Option<PathBuf>,
    release: u32,
) -> anyhow::Result<u8> {
    let release = release_id(release)?;
    let c = match &config {
        Some(p) => {
            let parsed = reference_backend::Config::load_for(p, release)?;
            for w in &parsed.warnings {
                eprintln!("warning: {w}");
            }
            parsed.config
        }
        None => reference_backend::Config {
            release,
            ..Default::default()
        },
    };
    let backend = reference_backend::Backend::start(c).await?;
    if let Some(path) = &listen_report {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&backend.addrs)?)?;
        std::fs::rename(&tmp, path)?;
    }
    backend.wait_ready().await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    backend.shutdown().await?;
    Ok(0)
}

/// The scratch directory for a command: `dir` when given, else a fresh one under the system
/// temp dir (kept, so logs can be read after a failure).
pub fn work_dir(dir: Option<&Path>) -> crate::Result<PathBuf> {
    let path = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("conformance-{}", crate::runner::nonce())),
    };
    std::fs::create_dir_all(&path).map_err(|e| crate::Error::io(&path, e))?;
    Ok(path)
}
