//! Capabilities: what a target declares it can do; each case lists the ones it needs.

use serde::{Deserialize, Serialize};

/// Things a target can do. A case lists the ones it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// OTLP over gRPC.
    OtlpGrpc,
    /// OTLP/HTTP with protobuf bodies.
    OtlpHttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    OtlpHttpJson,
    /// gzip request bodies.
    Gzip,
    /// OTLP partial success for spans dropped inside an accepted request.
    PartialSuccess,
    /// Trace and span ids are validated on ingest (16 and 8 bytes, span id not zero).
    IdValidation,
    /// A request size cap (`limits.max_request_bytes`).
    RequestSizeLimit,
    /// `GET /api/traces/{id}`.
    TraceByIdV1,
    /// `GET /api/v2/traces/{id}`.
    TraceByIdV2,
    /// Protobuf answers with `Accept: application/protobuf`.
    ProtobufResponses,
    /// `/api/search` with `tags`.
    SearchTags,
    /// `/api/search` with TraceQL `q`.
    SearchTraceql,
    /// `/api/search/tags` and `/api/v2/search/tags`.
    TagNames,
    /// `/api/search/tag/{tag}/values` and the v2 form.
    TagValues,
    /// `q` on `/api/v2/search/tag/{tag}/values`: only spans matching the TraceQL filter
    /// contribute values (what Grafana's query builder uses for its drop-downs).
    FilteredTagValues,
    /// Can be stopped, killed and started again on the same data.
    Lifecycle,
    /// Acknowledged writes survive a kill (write-ahead log).
    Wal,
    /// Has a flush call (`flush` in the target file).
    Flush,
    /// Tenants from `X-Scope-OrgID` (the `multitenant` profile).
    Multitenancy,
    /// Per-tenant ingestion rate limits (the `limits` profile).
    RateLimits,
    /// `tempo_discarded_spans_total` on `/metrics`.
    DiscardMetrics,
}

impl Capability {
    /// The snake_case name used in files and reports.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}
