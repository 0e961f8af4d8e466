//! `report.json`: the canonical record of a run. Markdown, HTML, compare and merge are all
//! computed from it. Histograms are stored serialized (HdrHistogram V2 + deflate, base64),
//! so reports merge exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Current `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Report schema version.
    pub schema_version: u32,
    /// loadgen version.
    pub tool_version: String,
    /// Scenario as run (after overrides).
    pub scenario: ScenarioInfo,
    /// What was tested.
    pub target: TargetInfo,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Wall time of the load phase, seconds.
    pub duration_s: f64,
    /// Shards merged into this report (1 for a single run).
    pub shards: Vec<ShardInfo>,
    /// Counts over the whole run.
    pub totals: Totals,
    /// Export latency: `corrected` from the intended send time, `uncorrected` from the
    /// actual send.
    pub latency: LatencyPair,
    /// One point per second.
    pub series: Vec<SecondPoint>,
    /// Is the generator keeping up?
    pub generator: GeneratorHealth,
    /// Read-back results, when verification ran.
    pub verification: Option<Verification>,
    /// Query-load results, when configured.
    pub query_load: Option<QueryLoadResult>,
    /// Cluster sizing from the hold stages, when the scenario asks for it.
    #[serde(default)]
    pub sizing: Option<SizingResult>,
    /// Backend CPU and memory, when measurable.
    pub resources: Option<Resources>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// True when every threshold held.
    pub passed: bool,
    /// Where it ran.
    pub environment: Environment,
    /// Serialized histograms by name (`export_corrected_us`, `export_uncorrected_us`,
    /// `time_to_queryable_ms`, `schedule_lag_us`, `query_trace_by_id_us`, `query_search_us`).
    pub histograms: BTreeMap<String, String>,
}

/// Scenario summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// File it came from.
    pub file: String,
    /// Seed.
    pub seed: u64,
    /// Shapes and weights, e.g. `go-example (typical) ×1`.
    pub mix: Vec<String>,
    /// Rate as text, e.g. `10000 spans/s for 30s` or stages.
    pub rate: String,
    /// Offered rate in spans/s at its peak.
    pub peak_spans_per_s: f64,
    /// Spans per request.
    pub batch: usize,
    /// `grpc`, `http-protobuf`, `http-json`.
    pub protocol: String,
    /// `none` or `gzip`.
    pub compression: String,
    /// `wire` or `sdk`.
    pub mode: String,
    /// The scenario YAML as run.
    pub yaml: String,
}

/// Target summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetInfo {
    /// `embedded` or `otlp`.
    pub kind: String,
    /// OTLP endpoints.
    pub endpoints: Vec<String>,
    /// Query API URL, when read-back is possible.
    pub query_url: Option<String>,
    /// Tenant, when set.
    pub tenant: Option<String>,
    /// `/api/status/buildinfo` version, when the target answers it.
    pub version: Option<String>,
    /// `/api/status/buildinfo` revision.
    pub revision: Option<String>,
}

/// One shard of a (possibly merged) run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    /// Shard index (0-based).
    pub index: u32,
    /// Shard count.
    pub count: u32,
    /// Host it ran on.
    pub host: String,
}

/// Counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Requests due by the schedule.
    pub requests_planned: u64,
    /// Requests sent.
    pub requests_sent: u64,
    /// Requests accepted (fully or partly).
    pub requests_ok: u64,
    /// Spans sent.
    pub spans_sent: u64,
    /// Spans the backend accepted (sent minus refused requests and partial rejects).
    pub spans_accepted: u64,
    /// Spans the backend rejected in partial-success answers.
    pub spans_rejected_partial: u64,
    /// Traces started.
    pub traces_sent: u64,
    /// Request body bytes sent (after compression).
    pub bytes_sent: u64,
    /// Requests by outcome class (`ok`, `rate_limited`, …).
    pub outcomes: BTreeMap<String, u64>,
    /// Up to 10 distinct error messages with their counts.
    pub error_messages: BTreeMap<String, u64>,
}

/// Percentile summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Minimum.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// 50th.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

/// Corrected and uncorrected export latency.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyPair {
    /// From the intended send time (coordinated-omission corrected).
    pub corrected: Percentiles,
    /// From the actual send time.
    pub uncorrected: Percentiles,
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SecondPoint {
    /// Seconds since start.
    pub t: u32,
    /// Spans offered by the schedule in this second.
    pub spans_offered: u64,
    /// Spans sent.
    pub spans_sent: u64,
    /// Spans accepted.
    pub spans_accepted: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Corrected p50, ms.
    pub p50_ms: f64,
    /// Corrected p99, ms.
    pub p99_ms: f64,
    /// Uncorrected p99, ms.
    pub p99_uncorrected_ms: f64,
    /// Largest schedule lag, ms.
    pub max_lag_ms: f64,
    /// Time requests due in this second waited for an in-flight slot while every slot was
    /// busy waiting on the backend, ms (summed over the requests).
    #[serde(default)]
    pub slots_full_ms: f64,
    /// Time the generator was behind its schedule for requests due in this second while a
    /// slot was free (producing, encoding, short of CPU), ms.
    #[serde(default)]
    pub generator_behind_ms: f64,
}

/// Generator self-check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GeneratorHealth {
    /// Offered rate (spans/s, whole run).
    pub offered_spans_per_s: f64,
    /// Achieved rate (spans/s sent, whole run).
    pub achieved_spans_per_s: f64,
    /// Schedule lag (intended → actual send), ms.
    pub schedule_lag: Percentiles,
    /// Generator CPU seconds during the run (this process, minus an embedded backend when
    /// its share can be measured).
    pub cpu_seconds: f64,
    /// Cores the generator used on average.
    pub cpu_cores: f64,
    /// True when the generator itself, not the backend, limited the run
    /// (`pace.limited_by` is `generator`).
    pub bottleneck: bool,
    /// What set the pace, with the evidence. Absent in reports of loadgen versions that did
    /// not tell a saturated backend from a slow generator (they only set `bottleneck`).
    #[serde(default)]
    pub pace: Option<Pace>,
    /// Plain-language findings, most important first.
    pub notes: Vec<String>,
}

/// Who set the pace of a run (or of a sizing step).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Limiter {
    /// The schedule held: achieved at least 95 % of the offered rate and requests left on
    /// time (schedule lag p99 within 100 ms).
    #[default]
    KeptUp,
    /// The backend answered too slowly for `max_in_flight`: every slot was busy waiting on
    /// it while requests were due. The figures describe the backend at saturation.
    BackendSaturated,
    /// The generator itself fell behind while in-flight slots were free (CPU-bound
    /// scheduling or encoding). The figures describe loadgen, not the backend.
    Generator,
}

/// Why requests left late, measured by the scheduler. Every moment the schedule was behind
/// is either a due request waiting for a slot (all `max_in_flight` busy) or the generator
/// producing late with a slot free; the two shares say which dominated.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Pace {
    /// The verdict drawn from the evidence below.
    pub limited_by: Limiter,
    /// `rate.max_in_flight` (0 in sdk mode, where the SDK's batch processor sends).
    pub max_in_flight: u64,
    /// Share of the load phase a due request spent waiting because every in-flight slot
    /// was busy waiting on the backend (0–1).
    pub slots_full_share: f64,
    /// Share of the load phase the generator was behind its schedule while a slot was
    /// free (0–1).
    pub generator_behind_share: f64,
    /// Per request: the wait for a free slot, ms.
    pub slot_wait: Percentiles,
    /// Achieved / offered spans per second.
    pub achieved_ratio: f64,
}

/// Read-back verification.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Verification {
    /// Traces sampled for read-back.
    pub sampled_traces: u64,
    /// Sampled traces found complete and unaltered.
    pub complete_traces: u64,
    /// Sampled traces never found.
    pub missing_traces: u64,
    /// Spans expected but not returned.
    pub missing_spans: u64,
    /// Spans returned that were not sent.
    pub extra_spans: u64,
    /// Spans returned with different content.
    pub altered_spans: u64,
    /// Estimated spans lost over the whole run (missing fraction × spans accepted).
    pub estimated_lost_spans: u64,
    /// Time from intended send to first successful read, ms.
    pub time_to_queryable: Percentiles,
    /// Traces checked by tag search.
    pub search_checked: u64,
    /// Of those, found by search.
    pub search_found: u64,
    /// Up to 10 example problems (`trace 5b8e…: 2 spans missing`).
    pub examples: Vec<String>,
}

/// Query load results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QueryLoadResult {
    /// Trace-by-id latency.
    pub trace_by_id: Percentiles,
    /// Trace-by-id errors.
    pub trace_by_id_errors: u64,
    /// Search latency.
    pub search: Percentiles,
    /// Search errors.
    pub search_errors: u64,
    /// Trace-by-id lookups offered per second.
    #[serde(default)]
    pub trace_by_id_per_second: f64,
    /// Searches offered per second.
    #[serde(default)]
    pub search_per_second: f64,
    /// Failed queries by kind and cause (`search: HTTP 404`), at most 10 causes.
    #[serde(default)]
    pub error_messages: BTreeMap<String, u64>,
    /// Plain-language findings (why queries were skipped or not sent).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Cluster sizing: one step per hold stage, and what the highest step that held means.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SizingResult {
    /// The load the cluster must take, spans/s, when given.
    pub target_spans_per_s: Option<f64>,
    /// Fraction of the highest passing rate kept free on each node.
    pub headroom: f64,
    /// `thresholds.export_p99` in ms, when set (a step's p99 must stay within it).
    pub p99_limit_ms: Option<f64>,
    /// Largest schedule lag a step may show, ms (more means requests left late: the
    /// generator or the in-flight limit, not the backend's answers, set the pace).
    pub lag_limit_ms: f64,
    /// One row per hold stage, in time order.
    pub steps: Vec<SizingStep>,
    /// Offered rate of the highest step that held, spans/s.
    pub highest_held_spans_per_s: Option<f64>,
    /// Backend CPU cores at that step (average over its window).
    pub cpu_cores: Option<f64>,
    /// Backend RSS at that step (average over its window), bytes.
    pub rss_bytes: Option<u64>,
    /// Accepted spans per backend core-second at that step.
    pub spans_per_core_second: Option<f64>,
    /// `ceil(target / (highest held × (1 − headroom)))`, when a target is given.
    pub nodes_needed: Option<u64>,
    /// Plain-language caveats.
    pub notes: Vec<String>,
}

/// One hold stage of a sizing run, measured over its window (the stage minus its first
/// second, which is left to settle).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SizingStep {
    /// Stage start, seconds since the run start.
    pub stage_start_s: f64,
    /// Stage end, seconds since the run start.
    pub stage_end_s: f64,
    /// Whole seconds measured (`[from, to)`).
    pub window: (u32, u32),
    /// Rate the stage held, spans/s.
    pub offered_spans_per_s: f64,
    /// Spans accepted per second over the window.
    pub accepted_spans_per_s: f64,
    /// Requests that failed in the window.
    pub failed_requests: u64,
    /// Largest per-second corrected p99 in the window, ms: an upper bound of the window's
    /// p99 (per-second percentiles cannot be combined exactly).
    pub p99_upper_ms: f64,
    /// Largest schedule lag in the window, ms.
    pub max_lag_ms: f64,
    /// Backend CPU cores averaged over the window, when measured.
    pub cpu_cores: Option<f64>,
    /// Backend RSS averaged over the window, bytes, when measured.
    pub rss_bytes: Option<u64>,
    /// True when accepted ≥ 95 % of offered, no request failed, p99 stayed within the
    /// limit and the schedule lag within its limit.
    pub held: bool,
    /// Why the step did not hold (empty when it held).
    pub reasons: Vec<String>,
    /// Who set the pace when requests left the step late (`None` when they did not, or
    /// when the report predates this field).
    pub limited_by: Option<Limiter>,
}

/// Backend resources.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    /// How they were measured: `process` (pid), `metrics` (scraped) or `embedded`.
    pub source: String,
    /// One sample per second.
    pub samples: Vec<ResourceSample>,
    /// Backend CPU seconds during the run.
    pub cpu_seconds: f64,
    /// Average cores used.
    pub avg_cores: f64,
    /// Average RSS, bytes.
    pub avg_rss_bytes: u64,
    /// Peak RSS, bytes.
    pub peak_rss_bytes: u64,
    /// Spans accepted per backend CPU-second.
    pub spans_per_core_second: f64,
    /// RSS bytes per 1k spans/s of accepted rate.
    pub rss_bytes_per_1k_spans_per_s: f64,
    /// `tempo_discarded_spans_total` delta over the run, when scraped.
    pub discarded_spans: Option<u64>,
    /// The same delta by its `reason` label (`live_traces_exceeded`, `rate_limited`, …),
    /// summed over tenants; empty when nothing was discarded or nothing was scraped.
    #[serde(default)]
    pub discarded_by_reason: BTreeMap<String, u64>,
    /// `tempo_distributor_spans_received_total` delta over the run, when scraped.
    pub received_spans: Option<u64>,
}

impl Resources {
    /// `live_traces_exceeded 330,000, rate_limited 12` (largest first), or `None` when no
    /// reason was recorded.
    pub fn discard_reasons(&self) -> Option<String> {
        let mut v: Vec<(&String, &u64)> = self.discarded_by_reason.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = v
            .iter()
            .map(|(k, n)| format!("{k} {}", super::format::int(**n)))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// One resource sample.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResourceSample {
    /// Seconds since start.
    pub t: u32,
    /// Cores used over the last second.
    pub cpu_cores: f64,
    /// RSS bytes.
    pub rss_bytes: u64,
}

/// One threshold verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    /// Threshold name (`export_p99`, …).
    pub name: String,
    /// Limit as text.
    pub limit: String,
    /// Actual value as text.
    pub actual: String,
    /// Held?
    pub passed: bool,
}

/// Where the run happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// Host name.
    pub host: String,
    /// OS and architecture.
    pub os: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Total memory, bytes.
    pub memory_bytes: u64,
}
