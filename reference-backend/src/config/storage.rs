//! `storage`: object store, WAL and block settings.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{HumanDuration, redact};

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
