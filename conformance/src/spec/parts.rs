//! The smaller sections of a target file: profiles, readiness, stopping, HTTP calls, how data
//! reaches object storage and the WAL, timings, declared limits, config checks.

use std::time::Duration;

use reference_backend::config::HumanDuration;
use serde::{Deserialize, Serialize};

/// A config variant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// YAML merged over the rendered config (templated like the config).
    #[serde(default)]
    pub config_overlay: Option<String>,
    /// `X-Scope-OrgID` for this profile.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Readiness check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Readiness {
    /// Path polled until it answers 200.
    pub path: String,
    /// Longest wait.
    pub timeout: HumanDuration,
    /// Pause between polls.
    pub interval: HumanDuration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            path: "/ready".into(),
            timeout: HumanDuration(Duration::from_secs(60)),
            interval: HumanDuration(Duration::from_millis(100)),
        }
    }
}

/// Graceful stop: SIGTERM (or the in-process shutdown), a bounded wait, then SIGKILL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StopPolicy {
    /// How long to wait after SIGTERM before SIGKILL. A SIGKILL after this is reported, not
    /// counted as a failure (Tempo's SIGTERM can hang once it has served a query).
    pub grace: HumanDuration,
}

impl Default for StopPolicy {
    fn default() -> Self {
        Self {
            grace: HumanDuration(Duration::from_secs(15)),
        }
    }
}

/// One HTTP call to the target's query port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    /// `GET` or `POST`.
    #[serde(default = "get")]
    pub method: String,
    /// Path on the query port, e.g. `/flush`.
    pub path: String,
    /// Wait this long after the call answers (prefer `flush.until_found`, which polls).
    #[serde(default)]
    pub settle: Option<HumanDuration>,
}

fn get() -> String {
    "GET".into()
}

/// How data reaches object storage on demand: a flush call, a wait until a read that only
/// looks at blocks finds each trace, or both (call, then wait). Tempo 2.x has `GET /flush`;
/// Tempo 3.0 has none (its live-store cuts blocks on its own timers), so only the wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flush {
    /// The call that writes in-memory data to blocks (2xx expected).
    #[serde(default)]
    pub call: Option<HttpCall>,
    /// A query-port path that answers a trace from object storage only; `{trace_id}` is the
    /// hex id, e.g. `/querier/api/traces/{trace_id}?mode=blocks`. Polled per trace until it
    /// answers 200 with spans.
    #[serde(default)]
    pub until_found: Option<String>,
    /// Longest wait for `until_found`.
    #[serde(default = "flush_within")]
    pub within: HumanDuration,
}

fn flush_within() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// How to tell that acknowledged traces have reached the write-ahead log, for a target whose
/// acknowledgement comes before the WAL append (Tempo appends a trace to its WAL only when it
/// cuts it from the live traces). The upgrade waits on this before killing the older target,
/// so its WAL-only part really is in the WAL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalAppend {
    /// A counter on `/metrics` that grows by one per trace appended to the WAL (summed over
    /// its labels), e.g. `tempo_live_store_traces_created_total`.
    pub metric: String,
    /// Longest wait for it to grow by the number of traces written.
    #[serde(default = "wal_within")]
    pub within: HumanDuration,
}

fn wal_within() -> HumanDuration {
    HumanDuration(Duration::from_secs(20))
}

/// URLs of a remote target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteUrls {
    /// Query API base, `http://host:3200`.
    pub query: String,
    /// OTLP gRPC, `http://host:4317`.
    #[serde(default)]
    pub otlp_grpc: Option<String>,
    /// OTLP HTTP base, `http://host:4318` (`/v1/traces` is appended).
    #[serde(default)]
    pub otlp_http: Option<String>,
}

/// How long data may take to become visible, and how often to look.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timings {
    /// A written trace must be readable by id within this.
    pub visible_within: HumanDuration,
    /// A written trace must be found by search within this.
    pub search_visible_within: HumanDuration,
    /// Pause between polls.
    pub poll_interval: HumanDuration,
    /// Longest time one case may take.
    pub case_timeout: HumanDuration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            visible_within: HumanDuration(Duration::from_secs(30)),
            search_visible_within: HumanDuration(Duration::from_secs(60)),
            poll_interval: HumanDuration(Duration::from_millis(250)),
            case_timeout: HumanDuration(Duration::from_secs(300)),
        }
    }
}

/// Limits the target's config sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeclaredLimits {
    /// Largest OTLP request body accepted (default profile).
    pub max_request_bytes: Option<u64>,
    /// Attribute values longer than this are truncated (default profile).
    pub max_attribute_bytes: Option<u64>,
    /// `limits` profile: per-tenant ingestion burst in bytes.
    pub burst_size_bytes: Option<u64>,
    /// `limits` profile: most bytes one trace may hold.
    pub max_bytes_per_trace: Option<u64>,
}

/// A command that validates a config without starting the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigCheck {
    /// Arguments (templated; `{{config_file}}` is the file to check). Exit 0 = accepted.
    pub args: Vec<String>,
}
