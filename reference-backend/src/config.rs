//! Configuration: a tempo.yaml-shaped YAML file.
//!
//! Every section denies unknown keys, so a typo is an error that names the key with its
//! line and column. Every field has a named default; `validate` checks what serde cannot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

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

/// `compactor`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactorConfig {
    /// Compaction and retention settings.
    pub compaction: CompactionConfig,
}

/// `compactor.compaction`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Turn compaction and retention off.
    pub disabled: bool,
    /// How often the compactor looks for work.
    pub compaction_cycle: HumanDuration,
    /// Blocks whose start times fall in the same window of this length are merged.
    pub compaction_window: HumanDuration,
    /// Most input blocks merged into one output block.
    pub max_compaction_objects: u32,
    /// Largest output block.
    pub max_block_bytes: ByteSize,
    /// Blocks that ended longer ago than this are deleted.
    pub block_retention: HumanDuration,
    /// Compacted input blocks stay this long (marked `meta.compacted.json`) before deletion,
    /// so readers that listed them before compaction can finish.
    pub compacted_block_retention: HumanDuration,
    /// Rewrite readable blocks of older formats into the running release's write format.
    pub rewrite_old_formats: bool,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            compaction_cycle: HumanDuration(Duration::from_secs(30)),
            compaction_window: HumanDuration(Duration::from_secs(60 * 60)),
            max_compaction_objects: 32,
            max_block_bytes: ByteSize::gib(1),
            block_retention: HumanDuration(Duration::from_secs(14 * 24 * 3600)),
            compacted_block_retention: HumanDuration(Duration::from_secs(3600)),
            rewrite_old_formats: false,
        }
    }
}

/// HTTP server for the query API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the query API binds.
    pub http_listen_address: String,
    /// Port the query API binds; 0 picks a free port (see `--listen-report`).
    pub http_listen_port: u16,
    /// How long graceful shutdown may take before the process exits anyway.
    pub graceful_shutdown_timeout: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_listen_address: "127.0.0.1".into(),
            http_listen_port: 3200,
            graceful_shutdown_timeout: HumanDuration(Duration::from_secs(30)),
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
    /// The head block is cut and flushed once it is this old.
    pub max_block_duration: HumanDuration,
    /// The head block is cut and flushed once it holds this many bytes.
    pub max_block_bytes: ByteSize,
    /// How often idle traces are moved and the head block is checked.
    pub flush_check_period: HumanDuration,
    /// Bound on bytes held in memory (live traces, head block and blocks waiting to be
    /// flushed). Past it ingest answers 503 / UNAVAILABLE with `Retry-After`.
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
            max_block_duration: HumanDuration(Duration::from_secs(30 * 60)),
            max_block_bytes: ByteSize::mib(500),
            flush_check_period: HumanDuration(Duration::from_secs(10)),
            max_memory_bytes: ByteSize::gib(1),
            flush_retry_backoff: HumanDuration(Duration::from_millis(100)),
            flush_retry_max_backoff: HumanDuration(Duration::from_secs(10)),
            flush_wait_timeout: HumanDuration(Duration::from_secs(30)),
        }
    }
}

/// `storage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Trace storage.
    pub trace: TraceStorageConfig,
}

/// Which object store holds the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A directory on local disk (`storage.trace.local.path`).
    #[default]
    Local,
    /// Amazon S3 or any S3-compatible store (`storage.trace.s3`).
    S3,
    /// Google Cloud Storage (`storage.trace.gcs`).
    Gcs,
    /// Azure Blob Storage (`storage.trace.azure`).
    Azure,
    /// In process memory; lost on exit (tests only).
    Memory,
}

/// `storage.trace`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceStorageConfig {
    /// Which object store holds the blocks.
    pub backend: Backend,
    /// Settings of the `local` backend.
    pub local: LocalConfig,
    /// Settings of the `s3` backend.
    pub s3: S3Config,
    /// Settings of the `gcs` backend.
    pub gcs: GcsConfig,
    /// Settings of the `azure` backend.
    pub azure: AzureConfig,
    /// Write-ahead log.
    pub wal: WalConfig,
    /// Block encoding.
    pub block: BlockConfig,
    /// How often the block list is re-read from the object store.
    pub blocklist_poll: HumanDuration,
    /// A tenant index (`<tenant>/index.json.gz`) older than this is not trusted: the poll
    /// lists the tenant's objects instead. 0 uses the index however old it is.
    pub blocklist_poll_stale_tenant_index: HumanDuration,
}

impl Default for TraceStorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            local: LocalConfig::default(),
            s3: S3Config::default(),
            gcs: GcsConfig::default(),
            azure: AzureConfig::default(),
            wal: WalConfig::default(),
            block: BlockConfig::default(),
            blocklist_poll: HumanDuration(Duration::from_secs(5 * 60)),
            blocklist_poll_stale_tenant_index: HumanDuration(Duration::from_secs(15 * 60)),
        }
    }
}

/// `storage.trace.local`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Directory that holds the blocks; created when missing.
    pub path: PathBuf,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/blocks"),
        }
    }
}

/// `storage.trace.s3`, with Tempo's key names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Bucket name (must exist).
    pub bucket: String,
    /// `host:port` or URL of the S3 endpoint; empty means AWS.
    pub endpoint: String,
    /// Region (default `us-east-1`).
    pub region: String,
    /// Static access key; empty uses the environment (`AWS_ACCESS_KEY_ID`, …).
    pub access_key: String,
    /// Static secret key.
    #[serde(serialize_with = "redact")]
    pub secret_key: String,
    /// Use plain HTTP.
    pub insecure: bool,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO needs.
    pub forcepathstyle: bool,
    /// Key prefix inside the bucket.
    pub prefix: String,
}

/// `storage.trace.gcs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsConfig {
    /// Bucket name.
    pub bucket_name: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Path of a service-account JSON key; empty uses the environment.
    pub service_account_path: String,
}

/// `storage.trace.azure`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    /// Container name.
    pub container_name: String,
    /// Storage account name.
    pub storage_account_name: String,
    /// Storage account key; empty uses the environment.
    #[serde(serialize_with = "redact")]
    pub storage_account_key: String,
    /// Endpoint override (e.g. Azurite); empty means Azure.
    pub endpoint: String,
    /// Key prefix inside the container.
    pub prefix: String,
}

/// `storage.trace.wal`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Directory of the WAL segments; created when missing.
    pub path: PathBuf,
    /// Bound on WAL bytes on disk; past it ingest answers 503 until flushes catch up.
    pub max_bytes: ByteSize,
    /// Most time a write waits for other writes to share its fsync.
    pub group_commit_max_delay: HumanDuration,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/wal"),
            max_bytes: ByteSize::gib(4),
            group_commit_max_delay: HumanDuration(Duration::ZERO),
        }
    }
}

/// `storage.trace.block`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockConfig {
    /// Target uncompressed size of one data page.
    pub page_size_bytes: ByteSize,
    /// Bloom filter false-positive rate.
    pub bloom_filter_false_positive: f64,
    /// Size of one bloom filter shard.
    pub bloom_filter_shard_size_bytes: ByteSize,
    /// zstd level of data pages.
    pub zstd_level: i32,
    /// Block format new blocks are written in (`rb1` or `rb2`); empty means the release's
    /// default.
    pub version: String,
    /// Target uncompressed size of an rb2 row group.
    pub parquet_row_group_size_bytes: ByteSize,
    /// Span attributes stored in their own rb2 columns (searched without scanning the
    /// generic attribute columns).
    pub parquet_dedicated_columns: Vec<String>,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            page_size_bytes: ByteSize::kib(256),
            bloom_filter_false_positive: 0.01,
            bloom_filter_shard_size_bytes: ByteSize::kib(100),
            zstd_level: 3,
            version: String::new(),
            parquet_row_group_size_bytes: ByteSize::mib(32),
            parquet_dedicated_columns: vec![
                "http.method".into(),
                "http.route".into(),
                "http.status_code".into(),
            ],
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

fn redact<S: Serializer>(value: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(if value.is_empty() { "" } else { "<redacted>" })
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
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server.http_listen_port, 3200);
        assert_eq!(
            c.distributor.receivers.otlp.protocols.grpc.endpoint,
            "127.0.0.1:4317"
        );
        assert_eq!(c.ingester.trace_idle_period.get(), Duration::from_secs(5));
        assert_eq!(
            c.overrides.defaults.global.max_bytes_per_trace.as_u64(),
            5_000_000
        );
    }

    #[test]
    fn durations_and_sizes_are_typed() {
        let c = Config::parse(
            "live_store:\n  trace_idle_period: 250ms\n  max_block_bytes: 1MiB\nstorage:\n  trace:\n    backend: memory\n",
        )
        .unwrap();
        assert_eq!(
            c.ingester.trace_idle_period.get(),
            Duration::from_millis(250)
        );
        assert_eq!(c.ingester.max_block_bytes.as_u64(), 1024 * 1024);
        assert_eq!(c.storage.trace.backend, Backend::Memory);
    }

    #[test]
    fn unknown_key_is_named_with_its_position() {
        let err = Config::parse("server:\n  http_listen_port: 3200\n  http_listen_prot: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http_listen_prot"), "{err}");
        assert!(err.contains('3'), "line number missing: {err}");
    }

    #[test]
    fn bad_duration_is_explained() {
        let err = Config::parse("live_store:\n  trace_idle_period: soon\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn s3_needs_a_bucket() {
        let err = Config::parse("storage:\n  trace:\n    backend: s3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.trace.s3.bucket"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_rendered_config() {
        let c = Config::parse(
            "storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: b\n      secret_key: hunter2\n",
        )
        .unwrap();
        let yaml = c.to_yaml();
        assert!(!yaml.contains("hunter2"));
        assert!(yaml.contains("<redacted>"));
    }
}
