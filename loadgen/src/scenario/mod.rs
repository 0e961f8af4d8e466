//! Scenario files: YAML, every section denies unknown keys (errors name the key, line and
//! column), every field has a default and a doc comment. `validate` checks the rest.

mod measure;
pub mod rate;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use measure::{QueryLoad, Sizing};

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name used in reports.
    pub name: String,
    /// What the scenario is for (shown at the top of reports).
    #[serde(default)]
    pub description: String,
    /// Where to send and read from.
    #[serde(default)]
    pub target: Target,
    /// How fast and for how long.
    pub rate: Rate,
    /// What traces look like.
    #[serde(default)]
    pub workload: Workload,
    /// Read-back checks.
    #[serde(default)]
    pub verify: Verify,
    /// Query requests sent alongside ingest.
    #[serde(default)]
    pub query_load: Option<QueryLoad>,
    /// Cluster sizing from the hold stages.
    #[serde(default)]
    pub sizing: Option<Sizing>,
    /// Pass/fail gates for the exit code.
    #[serde(default)]
    pub thresholds: Thresholds,
}

/// `target`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "kind")]
pub enum Target {
    /// A reference backend started in-process on a temp dir (the default).
    Embedded {
        /// Extra reference-backend config (YAML text merged over the embedded defaults),
        /// e.g. tiny limits to show what loss looks like.
        #[serde(default)]
        backend_config: Option<String>,
        /// Tenant sent as `X-Scope-OrgID` (for a backend_config with multitenancy on).
        #[serde(default)]
        tenant: Option<String>,
        /// Which reference-backend release to run (`reference-backend releases`); the
        /// newest when absent. `backend_config` is read with that release's schema.
        #[serde(default)]
        release: Option<u32>,
    },
    /// Any OTLP endpoint, optionally with Tempo's query API for read-back.
    Otlp {
        /// OTLP endpoint(s): `http://host:4317` for gRPC, `http://host:4318` for HTTP
        /// (`/v1/traces` is appended). Several endpoints are used round-robin.
        endpoints: Vec<String>,
        /// Wire protocol.
        #[serde(default)]
        protocol: Protocol,
        /// Request compression.
        #[serde(default)]
        compression: Compression,
        /// Extra request headers (e.g. auth).
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Tenant sent as `X-Scope-OrgID`.
        #[serde(default)]
        tenant: Option<String>,
        /// Tempo query API base URL for read-back (`http://host:3200`).
        #[serde(default)]
        query: Option<String>,
        /// Prometheus `/metrics` URL of the backend, scraped for CPU, RSS and discards.
        #[serde(default)]
        metrics: Option<String>,
        /// PID of the backend process, when it runs on this machine (CPU and RSS sampling).
        #[serde(default)]
        pid: Option<u32>,
    },
}

impl Default for Target {
    fn default() -> Self {
        Target::Embedded {
            backend_config: None,
            tenant: None,
            release: None,
        }
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// OTLP/gRPC.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
}

/// Request compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// None.
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// Which unit `rate` values are in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    /// Spans per second.
    #[default]
    SpansPerSecond,
    /// Traces per second.
    TracesPerSecond,
}

/// `rate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Unit of `value` and of every stage target.
    #[serde(default)]
    pub unit: RateUnit,
    /// Constant rate (ignored when `stages` is set).
    #[serde(default)]
    pub value: f64,
    /// Ramp/hold stages: each ramps linearly from the previous target to `target` over
    /// `duration` (a stage with the same target holds).
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Run length for a constant rate (the sum of stage durations otherwise).
    #[serde(default = "default_duration")]
    pub duration: HumanDuration,
    /// Most requests in flight at once; a request due while this many are pending waits
    /// (its latency still counts from its intended time).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Spans per request (wire mode).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Exporter mode: prebuilt protobuf (`wire`) or the OpenTelemetry SDK pipeline (`sdk`).
    #[serde(default)]
    pub mode: ExportMode,
    /// Connections to open per endpoint (wire mode).
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Batch span processor settings (`mode: sdk` only).
    #[serde(default)]
    pub sdk: SdkSettings,
}

/// `rate.sdk`: the SDK batch span processor, with the SDK's own defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SdkSettings {
    /// Spans per export.
    #[serde(default = "default_sdk_batch")]
    pub max_export_batch_size: usize,
    /// Export at least this often.
    #[serde(default = "default_sdk_delay")]
    pub scheduled_delay: HumanDuration,
    /// Queue length; the SDK drops spans past it (read-back shows the loss).
    #[serde(default = "default_sdk_queue")]
    pub max_queue_size: usize,
}

fn default_sdk_batch() -> usize {
    512
}
fn default_sdk_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_sdk_queue() -> usize {
    2048
}

impl Default for SdkSettings {
    fn default() -> Self {
        SdkSettings {
            max_export_batch_size: default_sdk_batch(),
            scheduled_delay: default_sdk_delay(),
            max_queue_size: default_sdk_queue(),
        }
    }
}

fn default_duration() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_in_flight() -> usize {
    64
}
fn default_batch() -> usize {
    100
}
fn default_connections() -> usize {
    4
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

/// One ramp/hold stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Rate at the end of the stage.
    pub target: f64,
    /// Stage length.
    pub duration: HumanDuration,
}

/// How requests are produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportMode {
    /// Requests encoded by loadgen (prost) and sent over tonic or HTTP.
    #[default]
    Wire,
    /// Spans created through `opentelemetry_sdk` and exported by `opentelemetry-otlp`,
    /// as an instrumented application does.
    Sdk,
}

/// `workload`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Seed: with the sequence number it fixes every trace.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Weighted mix of shapes.
    #[serde(default = "default_mix")]
    pub mix: Vec<ShapeWeight>,
}

fn default_seed() -> u64 {
    1
}

fn default_mix() -> Vec<ShapeWeight> {
    vec![ShapeWeight {
        shape: "go-example".into(),
        weight: 1.0,
        profile: SizeProfile::Typical,
        params: BTreeMap::new(),
    }]
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            seed: default_seed(),
            mix: default_mix(),
        }
    }
}

/// One entry of the shape mix.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShapeWeight {
    /// Shape name (`loadgen shapes` lists them).
    pub shape: String,
    /// Relative weight.
    #[serde(default = "one")]
    pub weight: f64,
    /// Span size profile.
    #[serde(default)]
    pub profile: SizeProfile,
    /// Shape parameters (numbers), e.g. `children: 10`.
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
}

fn one() -> f64 {
    1.0
}

/// Bytes per span on the wire, roughly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeProfile {
    /// About 65 bytes: ids, times, name.
    Minimal,
    /// About 400–500 bytes: semantic-convention attributes and an event.
    #[default]
    Typical,
    /// About 1.2 KB: many attributes, events.
    Heavy,
}

/// `verify`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// Turn read-back on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fraction of traces read back (0–1).
    #[serde(default = "default_sample")]
    pub sample: f64,
    /// Wait this long after a trace is sent before the first lookup.
    #[serde(default = "default_verify_delay")]
    pub delay: HumanDuration,
    /// Give up on a trace after this long (it counts as missing).
    #[serde(default = "default_verify_timeout")]
    pub timeout: HumanDuration,
    /// Also check that a tag search finds the trace.
    #[serde(default)]
    pub search: bool,
    /// At most this many traces are checked, however high `sample` is.
    #[serde(default = "default_max_checks")]
    pub max_traces: usize,
}

fn yes() -> bool {
    true
}
fn default_sample() -> f64 {
    0.01
}
fn default_verify_delay() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}
fn default_verify_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_max_checks() -> usize {
    2000
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            enabled: true,
            sample: default_sample(),
            delay: default_verify_delay(),
            timeout: default_verify_timeout(),
            search: false,
            max_traces: default_max_checks(),
        }
    }
}

/// `thresholds`: every set value is a gate; a run that crosses one exits non-zero.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Largest export p99 (intended-time latency).
    #[serde(default)]
    pub export_p99: Option<HumanDuration>,
    /// Largest fraction of requests that failed (0–1).
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Largest number of spans lost (sampled read-back, scaled, plus partial-success rejects).
    #[serde(default)]
    pub max_lost_spans: Option<u64>,
    /// Largest time-to-queryable p99.
    #[serde(default)]
    pub time_to_queryable_p99: Option<HumanDuration>,
    /// Smallest achieved/offered rate ratio (generator keeping up).
    #[serde(default)]
    pub min_achieved_ratio: Option<f64>,
}

/// A duration written as text (`30s`, `250ms`, `2m`): the same type as the backend's config.
pub use reference_backend::config::HumanDuration;

/// Finite and above zero (NaN is not).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl Scenario {
    /// Read and validate a scenario file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Scenario { message, .. } => Error::Scenario {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parse and validate scenario text.
    pub fn parse(text: &str) -> Result<Self> {
        let s: Scenario = serde_saphyr::from_str(text).map_err(|e| Error::Scenario {
            path: "<inline>".into(),
            message: e.to_string(),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::Scenario {
                path: String::new(),
                message: m,
            })
        };
        let r = &self.rate;
        if r.stages.is_empty() && !positive(r.value) {
            return bad("rate.value must be above 0 (or give rate.stages)".into());
        }
        if r.stages
            .iter()
            .any(|s| s.target < 0.0 || s.duration.0.is_zero())
        {
            return bad("rate.stages: every stage needs a target ≥ 0 and a duration > 0".into());
        }
        if r.batch == 0 || r.max_in_flight == 0 || r.connections == 0 {
            return bad(
                "rate.batch, rate.max_in_flight and rate.connections must be above 0".into(),
            );
        }
        if self.workload.mix.is_empty() || self.workload.mix.iter().any(|m| !positive(m.weight)) {
            return bad("workload.mix needs at least one shape, each with a weight above 0".into());
        }
        for m in &self.workload.mix {
            if crate::shapes::by_name(&m.shape).is_none() {
                return bad(format!(
                    "workload.mix: unknown shape {:?} (known: {})",
                    m.shape,
                    crate::shapes::names().join(", ")
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.verify.sample) {
            return bad("verify.sample must be between 0 and 1".into());
        }
        if let Some(q) = &self.query_load {
            q.check().or_else(bad)?;
        }
        if let Some(z) = &self.sizing {
            z.check().or_else(bad)?;
        }
        if let Target::Otlp { endpoints, .. } = &self.target
            && endpoints.is_empty()
        {
            return bad("target.endpoints needs at least one OTLP endpoint".into());
        }
        Ok(())
    }

    /// Total run length.
    pub fn duration(&self) -> Duration {
        if self.rate.stages.is_empty() {
            self.rate.duration.0
        } else {
            self.rate.stages.iter().map(|s| s.duration.0).sum()
        }
    }
}
