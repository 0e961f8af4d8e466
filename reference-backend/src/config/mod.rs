//! Configuration: a tempo.yaml-shaped YAML file.
//!
//! Every section denies unknown keys, so a typo is an error that names the key with its
//! line and column. Every field has a named default; `validate` checks what serde cannot.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

mod compactor;
pub mod env;
mod storage;

pub use compactor::{CompactionConfig, CompactorConfig};
pub use storage::{
    AzureConfig, Backend, BlockConfig, GcsConfig, LocalConfig, S3Config, StorageConfig,
    TraceStorageConfig, WalConfig,
};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The query API's HTTP listener.
    pub server: ServerConfig,
    /// OTLP receivers.
    pub distributor: DistributorConfig,
    /// When true every request must carry `X-Scope-OrgID`; when false all data belongs to
    /// `single-tenant` and the header is ignored (Tempo's behaviour).
    pub multitenancy_enabled: bool,
    /// Live traces, head block cutting and memory bounds.
    pub ingester: IngesterConfig,
    /// Object storage, WAL and block settings.
    pub storage: StorageConfig,
    /// Per-tenant limits.
    pub overrides: OverridesConfig,
    /// Block compaction and retention (release 2 and later).
    pub compactor: CompactorConfig,
    /// Which release's behaviour this process has (set by `--release`, not by the file).
    #[serde(skip)]
    pub release: crate::release::ReleaseId,
    /// A deliberate defect (conformance self-test only).
    #[doc(hidden)]
    #[serde(skip)]
    pub mutant: Option<crate::release::Mutant>,
}

/// HTTP server for the query API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the query API binds.
    pub http_listen_address: String,
    /// Port the query API binds; 0 picks a free port (see `--listen-report`).
    pub http_listen_port: u16,
    /// How long graceful shutdown lets a block write under way finish before stopping
    /// it (what is not in a block stays in the WAL and is replayed at the next start).
    pub graceful_shutdown_timeout: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_listen_address: "127.0.0.1".into(),
            http_listen_port: 3200,
            graceful_shutdown_timeout: HumanDuration(Duration::from_secs(5)),
        }
    }
}

/// Receivers and request limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributorConfig {
    /// Receiver definitions (only OTLP).
    pub receivers: ReceiversConfig,
}

/// `distributor.receivers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiversConfig {
    /// The OTLP receiver.
    pub otlp: OtlpReceiverConfig,
}

/// `distributor.receivers.otlp`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    /// Enabled protocols.
    pub protocols: OtlpProtocols,
}

/// `distributor.receivers.otlp.protocols`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpProtocols {
    /// OTLP over gRPC.
    pub grpc: ProtocolConfig,
    /// OTLP over HTTP (`POST /v1/traces`).
    pub http: ProtocolConfig,
}

impl Default for OtlpProtocols {
    fn default() -> Self {
        Self {
            grpc: ProtocolConfig::with_endpoint("127.0.0.1:4317"),
            http: ProtocolConfig::with_endpoint("127.0.0.1:4318"),
        }
    }
}

/// One OTLP protocol listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolConfig {
    /// `host:port` to bind; port 0 picks a free port.
    pub endpoint: String,
    /// Largest request body accepted as sent on the wire (compressed).
    pub max_request_bytes: ByteSize,
    /// Largest request body accepted after decompression.
    pub max_decompressed_bytes: ByteSize,
}

impl ProtocolConfig {
    fn with_endpoint(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.into(),
            max_request_bytes: DEFAULT_MAX_REQUEST,
            max_decompressed_bytes: DEFAULT_MAX_REQUEST,
        }
    }
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self::with_endpoint("127.0.0.1:0")
    }
}

/// Default request size cap, as Tempo's 16 MiB gRPC message limit.
pub const DEFAULT_MAX_REQUEST: ByteSize = ByteSize::mib(16);

/// Live traces and block cutting.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngesterConfig {
    /// A trace with no new spans for this long moves from the live set to the head block.
    pub trace_idle_period: HumanDuration,
    /// The head block is cut and flushed once it is this old; a trace still receiving
    /// spans after this long moves to the head block anyway.
    pub max_block_duration: HumanDuration,
    /// The head block is cut and flushed once it holds this many bytes of spans.
    pub max_block_bytes: ByteSize,
    /// How often idle traces are moved and the head block is checked.
    pub flush_check_period: HumanDuration,
    /// Bound on the memory of the index of traces not yet in a block (live traces, head
    /// block and blocks waiting to be written; their spans are in the WAL). It fills only
    /// while blocks cannot be written; past it ingest answers 503 / UNAVAILABLE with
    /// `Retry-After`.
    pub max_memory_bytes: ByteSize,
    /// First delay between retries of a failed flush; doubles up to `flush_retry_max_backoff`.
    pub flush_retry_backoff: HumanDuration,
    /// Longest delay between retries of a failed flush.
    pub flush_retry_max_backoff: HumanDuration,
    /// How long `/flush` waits for its blocks to be written before answering 503 (the
    /// blocks stay queued and retried; their data stays in the WAL).
    pub flush_wait_timeout: HumanDuration,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        Self {
            trace_idle_period: HumanDuration(Duration::from_secs(5)),
            max_block_duration: HumanDuration(Duration::from_secs(30)),
            max_block_bytes: ByteSize::mib(256),
            flush_check_period: HumanDuration(Duration::from_secs(1)),
            max_memory_bytes: ByteSize::mib(256),
            flush_retry_backoff: HumanDuration(Duration::from_millis(100)),
            flush_retry_max_backoff: HumanDuration(Duration::from_secs(10)),
            flush_wait_timeout: HumanDuration(Duration::from_secs(30)),
        }
    }
}

/// `overrides`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverridesConfig {
    /// Limits applied to every tenant.
    pub defaults: TenantLimits,
}

/// `overrides.defaults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Ingestion limits.
    pub ingestion: IngestionLimits,
    /// Limits on whole traces.
    pub global: GlobalLimits,
}

/// `overrides.defaults.ingestion`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestionLimits {
    /// Sustained ingest rate per tenant, in bytes of OTLP protobuf per second.
    pub rate_limit_bytes: ByteSize,
    /// Token-bucket burst per tenant, in bytes.
    pub burst_size_bytes: ByteSize,
    /// Attribute values longer than this are truncated.
    pub max_attribute_bytes: ByteSize,
}

impl Default for IngestionLimits {
    fn default() -> Self {
        Self {
            rate_limit_bytes: ByteSize::b(15_000_000),
            burst_size_bytes: ByteSize::b(20_000_000),
            max_attribute_bytes: ByteSize::b(2048),
        }
    }
}

/// `overrides.defaults.global`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalLimits {
    /// Spans that would grow one trace past this are discarded (`trace_too_large`).
    pub max_bytes_per_trace: ByteSize,
}

impl Default for GlobalLimits {
    fn default() -> Self {
        Self {
            max_bytes_per_trace: ByteSize::b(5_000_000),
        }
    }
}

/// A duration written as Go/humantime text (`5s`, `30m`, `1h30m`, `250ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

pub(crate) fn redact<S: Serializer>(value: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(if value.is_empty() { "" } else { "<redacted>" })
}

/// How a config file is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Expand `${VAR}` and `${VAR:-default}` from the environment before parsing, as
    /// Tempo's `-config.expand-env=true` does (see [`env`]).
    pub expand_env: bool,
}

impl Config {
    /// Read, parse and validate a config file for the default release.
    pub fn load(path: &Path) -> Result<Self> {
        Ok(Self::load_for(path, crate::release::ReleaseId::default())?.config)
    }

    /// Read, parse and validate a config file written for `release`.
    pub fn load_for(
        path: &Path,
        release: crate::release::ReleaseId,
    ) -> Result<crate::release::config_rules::Parsed> {
        Self::load_with(path, release, LoadOptions::default())
    }

    /// [`Config::load_for`], reading the file as `options` say (`--config.expand-env`).
    pub fn load_with(
        path: &Path,
        release: crate::release::ReleaseId,
        options: LoadOptions,
    ) -> Result<crate::release::config_rules::Parsed> {
        let mut text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        if options.expand_env {
            text = env::expand_from_process(&text).map_err(|message| Error::ConfigParse {
                path: path.to_path_buf(),
                message: format!(
                    "expanding environment variables (--config.expand-env): {message}"
                ),
            })?;
        }
        crate::release::config_rules::parse(&text, release).map_err(|e| match e {
            Error::ConfigParse { message, .. } => Error::ConfigParse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parse and validate config text for the default release.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(crate::release::config_rules::parse(text, crate::release::ReleaseId::default())?.config)
    }

    /// Checks that serde cannot express.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::ConfigInvalid(m));
        let protocols = &self.distributor.receivers.otlp.protocols;
        for (name, p) in [("grpc", &protocols.grpc), ("http", &protocols.http)] {
            if p.endpoint.parse::<SocketAddr>().is_err() {
                return invalid(format!(
                    "distributor.receivers.otlp.protocols.{name}.endpoint: {:?} is not host:port (an IP address and a port)",
                    p.endpoint
                ));
            }
            if p.max_request_bytes.as_u64() == 0 || p.max_decompressed_bytes.as_u64() == 0 {
                return invalid(format!(
                    "distributor.receivers.otlp.protocols.{name}: request size limits must be above 0"
                ));
            }
        }
        if format!(
            "{}:{}",
            self.server.http_listen_address, self.server.http_listen_port
        )
        .parse::<SocketAddr>()
        .is_err()
        {
            return invalid(format!(
                "server.http_listen_address: {:?} is not an IP address",
                self.server.http_listen_address
            ));
        }
        let ing = &self.ingester;
        if ing.flush_check_period.get().is_zero() {
            return invalid("ingester.flush_check_period must be above 0".into());
        }
        if ing.max_block_bytes.as_u64() == 0 || ing.max_memory_bytes.as_u64() == 0 {
            return invalid("ingester.max_block_bytes and max_memory_bytes must be above 0".into());
        }
        let trace = &self.storage.trace;
        let fp = trace.block.bloom_filter_false_positive;
        if !(fp > 0.0 && fp < 1.0) {
            return invalid(format!(
                "storage.trace.block.bloom_filter_false_positive must be between 0 and 1, got {fp}"
            ));
        }
        if trace.block.page_size_bytes.as_u64() < 1024 {
            return invalid("storage.trace.block.page_size_bytes must be at least 1KiB".into());
        }
        match trace.backend {
            Backend::S3 if trace.s3.bucket.is_empty() => {
                return invalid("storage.trace.s3.bucket is required when backend is s3".into());
            }
            Backend::Gcs if trace.gcs.bucket_name.is_empty() => {
                return invalid(
                    "storage.trace.gcs.bucket_name is required when backend is gcs".into(),
                );
            }
            Backend::Azure
                if trace.azure.container_name.is_empty()
                    || trace.azure.storage_account_name.is_empty() =>
            {
                return invalid(
                    "storage.trace.azure.container_name and storage_account_name are required when backend is azure"
                        .into(),
                );
            }
            _ => {}
        }
        let lim = &self.overrides.defaults;
        if lim.ingestion.burst_size_bytes.as_u64() == 0
            || lim.ingestion.rate_limit_bytes.as_u64() == 0
        {
            return invalid(
                "overrides.defaults.ingestion.rate_limit_bytes and burst_size_bytes must be above 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// The config as YAML, secrets redacted (for `/status/config`).
    pub fn to_yaml(&self) -> String {
        crate::release::config_rules::render(self)
            .unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
