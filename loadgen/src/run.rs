//! `loadgen run`: one scenario against one target, from start to the written reports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::info;

use crate::error::Result;
use crate::exporter::sdk::{SdkBatchConfig, SdkDriver};
use crate::progress::Progress;
use crate::query_load::{self, QueryDriver};
use crate::report::model::{
    Environment, GeneratorHealth, Limiter, QueryLoadResult, Report, SCHEMA_VERSION, ScenarioInfo,
    ShardInfo, ThresholdResult, Verification,
};
use crate::report::{pace, sizing};
use crate::resources::Sampler;
use crate::scenario::rate::RatePlan;
use crate::scenario::{ExportMode, Scenario, Thresholds};
use crate::scheduler::{self, Plan, SeqWatermark};
use crate::stats::hist;
use crate::stats::recorder::Recorder;
use crate::target::{RunningTarget, TargetOverrides};
use crate::verify::{Strictness, Verifier};
use crate::workload::Mix;

/// Everything `loadgen run` takes besides the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Scenario file path (for the report).
    pub scenario_file: String,
    /// Where reports go.
    pub out: Option<PathBuf>,
    /// Target overrides.
    pub target: TargetOverrides,
    /// `(index, count)` of this shard.
    pub shard: Option<(u32, u32)>,
    /// Show the live progress line.
    pub progress: bool,
}

/// Run a scenario; returns the report (already written when `out` is set).
pub async fn run(scenario: Scenario, opts: &RunOptions) -> Result<Report> {
    let mix = Arc::new(Mix::new(&scenario.workload)?);
    let (shard_index, shard_count) = opts.shard.unwrap_or((0, 1));
    let duration_s = scenario.duration().as_secs_f64();
    let plan = RatePlan::new(&scenario.rate, duration_s, mix.mean_spans())
        .scaled(1.0 / shard_count as f64);
    let target = RunningTarget::start(&scenario.target, &scenario.rate, &opts.target).await?;
    let verifier = match (&target.query, scenario.verify.enabled) {
        (Some(q), true) => Some(Arc::new(
            Verifier::new(
                q.clone(),
                scenario.verify.clone(),
                Strictness {
                    ignore_flags: scenario.rate.mode == ExportMode::Sdk,
                },
            )
            .await,
        )),
        _ => None,
    };
    let recorder = Arc::new(Recorder::new());
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let run_start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    info!(scenario = %scenario.name, rate = %plan.describe(), target = %target.info.kind, "run starting");
    let sampler = match &target.resources {
        Some(src) => Some(Sampler::start(src.clone()).await),
        None => None,
    };
    let sent = Arc::new(SeqWatermark::default());
    let (query_driver, query_skipped) = start_query_load(
        &scenario,
        &target,
        &mix,
        (shard_index as u64, shard_count as u64),
        sent.clone(),
    )
    .await;
    let cpu_before = crate::resources::process_cpu_seconds();
    let progress = Progress::start(opts.progress, plan.duration(), recorder.clone());
    let t0 = Instant::now();
    let sched = Plan {
        rate: plan.clone(),
        batch: scenario.rate.batch,
        max_in_flight: scenario.rate.max_in_flight,
        shard: (shard_index as u64, shard_count as u64),
        sample: if verifier.is_some() {
            scenario.verify.sample
        } else {
            0.0
        },
        max_samples: scenario.verify.max_traces,
        sent,
    };
    let mut sdk_note = None;
    let stats = match scenario.rate.mode {
        ExportMode::Wire => {
            let exporter: Arc<dyn crate::exporter::Exporter> =
                Arc::from(crate::exporter::wire(&target.exporter).await?);
            scheduler::run(
                sched,
                mix.clone(),
                exporter,
                recorder.clone(),
                verifier.clone(),
                run_start_ns,
            )
            .await
        }
        ExportMode::Sdk => {
            let s = &scenario.rate.sdk;
            let driver = Arc::new(SdkDriver::new(
                &target.exporter,
                SdkBatchConfig {
                    max_export_batch_size: s.max_export_batch_size,
                    scheduled_delay: s.scheduled_delay.0,
                    max_queue_size: s.max_queue_size,
                    retries: true,
                },
                crate::sdk_run::observer(recorder.clone(), Instant::now()),
            )?);
            let st = crate::sdk_run::run(
                sched,
                mix.clone(),
                driver.clone(),
                recorder.clone(),
                verifier.clone(),
                run_start_ns,
            )
            .await;
            let ds = driver.stats();
            if ds.unexported() > 0 {
                sdk_note = Some(format!(
                    "the SDK batch processor never exported {} of {} spans created (queue full: rate.sdk.max_queue_size {}); an instrumented app loses these silently",
                    ds.unexported(),
                    ds.emitted,
                    s.max_queue_size
                ));
            }
            if let Err(e) = driver.shutdown().await {
                tracing::warn!(error = %e, "sdk shutdown");
            }
            st
        }
    };
    let load_elapsed = t0.elapsed().as_secs_f64();
    progress.finish();
    let query_load = match query_driver {
        Some((driver, notes)) => {
            let (mut result, hists) = driver.finish().await;
            result.notes.splice(0..0, notes);
            Some((result, hists))
        }
        None => query_skipped.map(|r| (r, Default::default())),
    };
    let totals = recorder.totals();
    let resources = match sampler {
        Some(s) => s.finish(totals.spans_accepted).await,
        None => None,
    };
    let mut cpu_generator = crate::resources::process_cpu_seconds() - cpu_before;
    if let Some(r) = resources.as_ref().filter(|r| r.source == "embedded") {
        cpu_generator -= r.cpu_seconds;
    }
    let verification = match &verifier {
        Some(v) => {
            info!("waiting for read-back checks");
            let (ver, ttq) = v.finish(totals.spans_accepted).await;
            Some((ver, hist::encode(&ttq)))
        }
        None => None,
    };
    let target_info = target.info.clone();
    let (protocol, compression) = (target.exporter.protocol, target.exporter.compression);
    target.stop().await?;

    let mut histograms = recorder.histograms();
    histograms.insert(
        "generator_lag_us".into(),
        hist::encode(&stats.generator_lag),
    );
    histograms.insert("backlog_wait_us".into(), hist::encode(&stats.backlog_wait));
    let verification = verification.map(|(v, h)| {
        histograms.insert("time_to_queryable_ms".into(), h);
        v
    });
    let query_load = query_load.map(|(q, h)| {
        histograms.extend(h);
        q
    });
    let mut generator = health(
        &plan,
        totals.spans_sent,
        load_elapsed,
        &stats,
        cpu_generator.max(0.0),
        &recorder,
        match scenario.rate.mode {
            ExportMode::Wire => scenario.rate.max_in_flight as u64,
            ExportMode::Sdk => 0,
        },
    );
    generator.notes.extend(sdk_note);
    let latency = recorder.latency();
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: ScenarioInfo {
            protocol: enc(&protocol),
            compression: enc(&compression),
            ..scenario_info(&scenario, &plan, &mix, &opts.scenario_file)
        },
        target: target_info,
        started_at,
        duration_s: load_elapsed,
        shards: vec![ShardInfo {
            index: shard_index,
            count: shard_count,
            host: host_name(),
        }],
        totals,
        latency,
        series: recorder.series(),
        generator,
        verification,
        query_load,
        sizing: None,
        resources,
        thresholds: Vec::new(),
        passed: true,
        environment: environment(),
        histograms,
    };
    report.sizing = scenario.sizing.as_ref().map(|z| {
        let p99_limit = scenario
            .thresholds
            .export_p99
            .map(|d| d.0.as_secs_f64() * 1000.0);
        let mut s = sizing::plan(&plan.holds(), z.target_spans_per_s, z.headroom, p99_limit);
        sizing::measure(&mut s, &report.series, report.resources.as_ref());
        if shard_count > 1 {
            s.notes.push(format!(
                "this shard offered 1/{shard_count} of the load: merge the shards' reports \
                 (loadgen merge) to size from the whole run"
            ));
        }
        s
    });
    report.thresholds = evaluate(&scenario.thresholds, &report, scenario.verify.enabled);
    report.passed = report.thresholds.iter().all(|t| t.passed);
    if let Some(dir) = &opts.out {
        let w = crate::report::write_all(&report, dir)?;
        info!(json = %w.json.display(), markdown = %w.markdown.display(), html = %w.html.display(), "reports written");
    }
    Ok(report)
}

/// Start the query-load driver when the scenario asks for one. Returns the driver with notes
/// for its report, or the report of a query load that cannot run.
async fn start_query_load(
    scenario: &Scenario,
    target: &RunningTarget,
    mix: &Mix,
    shard: (u64, u64),
    sent: Arc<SeqWatermark>,
) -> (Option<(QueryDriver, Vec<String>)>, Option<QueryLoadResult>) {
    let Some(q) = &scenario.query_load else {
        return (None, None);
    };
    let Some(client) = &target.query else {
        let note = "query load skipped: the target has no query URL (set target.query or \
                    --query)";
        return (None, Some(query_load::skipped(q, note.to_owned())));
    };
    let mut rates = q.clone();
    let mut notes = Vec::new();
    if scenario.rate.mode == ExportMode::Sdk && rates.trace_by_id_per_second > 0.0 {
        rates.trace_by_id_per_second = 0.0;
        notes.push(
            "trace-by-id lookups skipped: in sdk mode the SDK decides when spans are sent, so \
             loadgen cannot tell which traces were acknowledged"
                .to_owned(),
        );
    }
    let services = query_load::services(mix);
    let cfg = query_load::Config {
        rates,
        seed: mix.seed(),
        shard,
        sent,
        services,
    };
    let driver = QueryDriver::start(client.clone(), cfg).await;
    (Some((driver, notes)), None)
}

/// The serde name of a unit enum value (`typical`, `wire`, …).
fn enc<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn scenario_info(s: &Scenario, plan: &RatePlan, mix: &Mix, file: &str) -> ScenarioInfo {
    ScenarioInfo {
        name: s.name.clone(),
        description: s.description.clone(),
        file: file.to_owned(),
        seed: mix.seed(),
        mix: s
            .workload
            .mix
            .iter()
            .map(|m| format!("{} ({}) ×{}", m.shape, enc(&m.profile), m.weight))
            .collect(),
        rate: plan.describe(),
        peak_spans_per_s: plan.peak(),
        batch: s.rate.batch,
        protocol: String::new(),
        compression: String::new(),
        mode: enc(&s.rate.mode),
        yaml: serde_saphyr::to_string(s).unwrap_or_default(),
    }
}

/// The generator's self-check: offered vs achieved, schedule lag, CPU, and who set the
/// pace when requests left late (see [`crate::report::pace`]).
fn health(
    plan: &RatePlan,
    spans_sent: u64,
    elapsed: f64,
    stats: &scheduler::SchedulerStats,
    cpu: f64,
    recorder: &Recorder,
    max_in_flight: u64,
) -> GeneratorHealth {
    let offered = plan.total_spans() / plan.duration().max(1e-9);
    let achieved = spans_sent as f64 / elapsed.max(1e-9);
    // Intended → actual send. In sdk mode the SDK sends, so the lag is how late spans were
    // created.
    let lag = if max_in_flight == 0 {
        hist::percentiles(&stats.generator_lag, 1000.0)
    } else {
        hist::percentiles(&recorder.lag(), 1000.0)
    };
    let cores = cpu / elapsed.max(1e-9);
    let spent = recorder.pace_totals();
    let pace = pace::classify(&pace::Evidence {
        max_in_flight,
        elapsed_s: elapsed,
        slots_full_s: spent.slots_full.as_secs_f64(),
        generator_behind_s: spent.generator_behind.as_secs_f64(),
        slot_wait: hist::percentiles(&stats.backlog_wait, 1000.0),
        achieved_ratio: achieved / offered.max(1e-9),
        late_p99_ms: lag.p99,
    });
    GeneratorHealth {
        offered_spans_per_s: offered,
        achieved_spans_per_s: achieved,
        schedule_lag: lag,
        cpu_seconds: cpu,
        cpu_cores: cores,
        bottleneck: pace.limited_by == Limiter::Generator,
        pace: Some(pace),
        notes: Vec::new(),
    }
}

fn fmt_ms(ms: f64) -> String {
    format!("{ms:.1} ms")
}

/// Evaluate thresholds. With read-back on and no explicit `max_lost_spans`, any loss fails;
/// without an explicit `error_rate`, a run in which no request was acknowledged fails.
pub fn evaluate(t: &Thresholds, r: &Report, verify_on: bool) -> Vec<ThresholdResult> {
    let mut out = Vec::new();
    if t.error_rate.is_none() && r.totals.requests_sent > 0 && r.totals.requests_ok == 0 {
        out.push(ThresholdResult {
            name: "requests_acknowledged".into(),
            limit: "at least 1".into(),
            actual: format!("0 of {}", r.totals.requests_sent),
            passed: false,
        });
    }
    if let Some(limit) = t.export_p99 {
        let actual = r.latency.corrected.p99;
        out.push(ThresholdResult {
            name: "export_p99".into(),
            limit: fmt_ms(limit.0.as_secs_f64() * 1000.0),
            actual: fmt_ms(actual),
            passed: actual <= limit.0.as_secs_f64() * 1000.0,
        });
    }
    if let Some(limit) = t.error_rate {
        let sent = r.totals.requests_sent.max(1) as f64;
        let actual = (r.totals.requests_sent - r.totals.requests_ok) as f64 / sent;
        out.push(ThresholdResult {
            name: "error_rate".into(),
            limit: format!("{limit:.4}"),
            actual: format!("{actual:.4}"),
            passed: actual <= limit,
        });
    }
    let lost_limit = t.max_lost_spans.or(verify_on.then_some(0));
    if let Some(limit) = lost_limit {
        let actual = lost_spans(r.verification.as_ref()) + r.totals.spans_rejected_partial;
        out.push(ThresholdResult {
            name: "max_lost_spans".into(),
            limit: limit.to_string(),
            actual: actual.to_string(),
            passed: actual <= limit,
        });
    }
    if let (Some(limit), Some(v)) = (t.time_to_queryable_p99, &r.verification) {
        let actual = v.time_to_queryable.p99;
        out.push(ThresholdResult {
            name: "time_to_queryable_p99".into(),
            limit: fmt_ms(limit.0.as_secs_f64() * 1000.0),
            actual: fmt_ms(actual),
            passed: v.complete_traces > 0 && actual <= limit.0.as_secs_f64() * 1000.0,
        });
    }
    if let Some(limit) = t.min_achieved_ratio {
        let g = &r.generator;
        let actual = g.achieved_spans_per_s / g.offered_spans_per_s.max(1e-9);
        out.push(ThresholdResult {
            name: "min_achieved_ratio".into(),
            limit: format!("{limit:.3}"),
            actual: format!("{actual:.3}"),
            passed: actual >= limit,
        });
    }
    out
}

/// Spans lost silently: read-back's estimate (at least what it saw missing).
pub fn lost_spans(v: Option<&Verification>) -> u64 {
    v.map_or(0, |v| v.estimated_lost_spans.max(v.missing_spans))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn environment() -> Environment {
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    Environment {
        host: host_name(),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes,
    }
}

/// Time budget the CLI allows a run beyond its schedule (read-back, shutdown).
pub fn grace(s: &Scenario) -> Duration {
    s.verify.delay.0 + s.verify.timeout.0 + Duration::from_secs(60)
}
