//! The command line. `main.rs` parses and calls [`run`]; tests call [`run`] in-process.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};
use crate::run::RunOptions;
use crate::scenario::{HumanDuration, Protocol, RateUnit, Scenario};
use crate::target::TargetOverrides;

/// Open-loop OTLP load generator with read-back verification and reports.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Opts {
    /// Log filter (`info`, `debug`, …); `RUST_LOG` wins.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write report.json, report.md and report.html.
    Run(RunArgs),
    /// Compare reports of two sides (A = baseline, B = candidate); exit 1 on a regression.
    Compare(CompareArgs),
    /// An OTLP receiver that counts and discards (measures the generator alone).
    Sink(SinkArgs),
    /// List trace shapes and their parameters.
    Shapes,
    /// Merge shard reports into one (histograms merge exactly).
    Merge(MergeArgs),
}

/// `loadgen run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Report directory (default `reports/<scenario name>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the constant rate (in the scenario's unit).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Override the run length (`30s`, `2m`).
    #[arg(long)]
    pub duration: Option<String>,
    /// Send to this OTLP endpoint instead of the scenario's target.
    #[arg(long)]
    pub target_otlp: Option<String>,
    /// Read back through this Tempo query URL.
    #[arg(long)]
    pub target_query: Option<String>,
    /// Sample the backend's CPU and RSS from this local process id.
    #[arg(long, value_name = "PID")]
    pub target_pid: Option<u32>,
    /// Sample the backend's CPU and RSS from this Prometheus `/metrics` URL.
    #[arg(long, value_name = "URL")]
    pub target_metrics: Option<String>,
    /// Override the protocol (`grpc`, `http-protobuf`, `http-json`).
    #[arg(long)]
    pub protocol: Option<String>,
    /// Tenant (`X-Scope-OrgID`).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Run shard `i/n` of the scenario (rate and sequence space split n ways).
    #[arg(long)]
    pub shard: Option<String>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// `loadgen compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Baseline report (A).
    pub a: Option<PathBuf>,
    /// Candidate report (B).
    pub b: Option<PathBuf>,
    /// More baseline runs (repeatable) for medians and a confidence interval.
    #[arg(long = "baseline")]
    pub baseline: Vec<PathBuf>,
    /// More candidate runs (repeatable).
    #[arg(long = "candidate")]
    pub candidate: Vec<PathBuf>,
    /// Gates, e.g. `p99=+10%`, `throughput=-5%`, `errors=+0.01`, `lost=0` (repeatable).
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
}

/// `loadgen sink`.
#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Address to listen on; one port answers OTLP/gRPC and OTLP/HTTP (`POST /v1/traces`).
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub listen: String,
}

/// `loadgen merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Output directory for the merged reports.
    #[arg(long)]
    pub out: PathBuf,
    /// Shard reports (`report.json`).
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
}

/// Parse `i/n`.
pub fn parse_shard(s: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::Usage(format!(
            "--shard {s:?}: expected i/n with 0 ≤ i < n, e.g. 0/3"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn parse_protocol(s: &str) -> Result<Protocol> {
    match s {
        "grpc" => Ok(Protocol::Grpc),
        "http-protobuf" | "http" => Ok(Protocol::HttpProtobuf),
        "http-json" => Ok(Protocol::HttpJson),
        _ => Err(Error::Usage(format!(
            "--protocol {s:?}: expected grpc, http-protobuf or http-json"
        ))),
    }
}

/// Apply command-line overrides to a scenario.
pub fn apply_overrides(mut s: Scenario, a: &RunArgs) -> Result<Scenario> {
    if let Some(r) = a.rate {
        s.rate.value = r;
        s.rate.stages.clear();
    }
    if let Some(d) = &a.duration {
        let d = humantime::parse_duration(d)
            .map_err(|e| Error::Usage(format!("--duration {d:?}: {e}")))?;
        s.rate.duration = HumanDuration(d);
        s.rate.stages.clear();
    }
    if s.rate.stages.is_empty() && s.rate.unit == RateUnit::SpansPerSecond && s.rate.value <= 0.0 {
        return Err(Error::Usage("the rate must be above 0".into()));
    }
    s.validate()?;
    Ok(s)
}

/// Run the command line; the exit code is 0 on success, 1 when a gate failed.
pub async fn run(opts: Opts) -> Result<i32> {
    match opts.command {
        Command::Run(a) => {
            let scenario = apply_overrides(Scenario::load(&a.scenario)?, &a)?;
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("reports").join(&scenario.name));
            let ro = RunOptions {
                scenario_file: a.scenario.display().to_string(),
                out: Some(out.clone()),
                target: TargetOverrides {
                    otlp: a.target_otlp.clone(),
                    query: a.target_query.clone(),
                    pid: a.target_pid,
                    metrics: a.target_metrics.clone(),
                    protocol: a.protocol.as_deref().map(parse_protocol).transpose()?,
                    tenant: a.tenant.clone(),
                },
                shard: a.shard.as_deref().map(parse_shard).transpose()?,
                progress: !a.quiet,
            };
            let report = crate::run::run(scenario, &ro).await?;
            println!("{}", crate::summary::summary_lines(&report));
            println!("reports: {}", out.display());
            Ok(if report.passed { 0 } else { 1 })
        }
        Command::Compare(c) => {
            let mut a_files: Vec<PathBuf> = c.a.into_iter().collect();
            a_files.extend(c.baseline);
            let mut b_files: Vec<PathBuf> = c.b.into_iter().collect();
            b_files.extend(c.candidate);
            if a_files.is_empty() || b_files.is_empty() {
                return Err(Error::Usage(
                    "compare needs a baseline and a candidate: loadgen compare A.json B.json"
                        .into(),
                ));
            }
            let load = |v: &[PathBuf]| -> Result<Vec<_>> {
                v.iter().map(|p| crate::report::load(p)).collect()
            };
            let (a, b) = (load(&a_files)?, load(&b_files)?);
            let th = crate::report::CompareThresholds::parse(&c.thresholds)?;
            let cmp = crate::report::compare(&a, &b, &th);
            println!("{}", crate::report::render_comparison(&cmp));
            Ok(if cmp.regressions.is_empty() { 0 } else { 1 })
        }
        Command::Sink(s) => {
            crate::sink::run_sink(&s.listen, None).await?;
            Ok(0)
        }
        Command::Shapes => {
            for s in crate::shapes::shapes() {
                println!("{:<18} {}", s.name(), s.describe());
                for p in s.params() {
                    println!("    {:<18} default {:<8} {}", p.name, p.default, p.help);
                }
            }
            println!(
                "\nprofiles: minimal (≈65 B/span), typical (≈400–500 B/span), heavy (≈1.2 KB/span)"
            );
            Ok(0)
        }
        Command::Merge(m) => {
            let reports: Vec<_> = m
                .reports
                .iter()
                .map(|p| crate::report::load(p))
                .collect::<Result<_>>()?;
            let merged = crate::report::merge(&reports)?;
            let w = crate::report::write_all(&merged, &m.out)?;
            println!("{}", crate::summary::summary_lines(&merged));
            println!("merged {} reports into {}", reports.len(), w.json.display());
            Ok(if merged.passed { 0 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn shard_syntax() {
        assert_eq!(parse_shard("1/3").unwrap(), (1, 3));
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
