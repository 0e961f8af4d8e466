//! The crate's one error type, with its mapping to HTTP and gRPC status.

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the backend, with the context a user needs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file cannot be read.
    #[error("config file {path}: {source}")]
    ConfigRead {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The config file is not valid YAML for this schema.
    #[error("config file {path}: {message}")]
    ConfigParse {
        /// File path.
        path: PathBuf,
        /// Parser message (names the key, line and column).
        message: String,
    },
    /// The config parsed but a value is out of range.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
    /// The request is malformed (bad ids, bad parameters, undecodable body).
    #[error("{0}")]
    InvalidArgument(String),
    /// Multitenancy is on and the request carries no tenant.
    #[error("no org id: the {0} header is required when multitenancy is enabled")]
    MissingTenant(&'static str),
    /// The body's content type is not one this endpoint takes.
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// The body's content encoding is not one this endpoint takes.
    #[error("unsupported content encoding {0:?}: use gzip or none")]
    UnsupportedEncoding(String),
    /// The body is over a configured size cap.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Which size ("request body", "decompressed body").
        what: &'static str,
        /// Observed size (a lower bound when streaming stopped early).
        size: u64,
        /// The configured cap.
        limit: u64,
    },
    /// The tenant is over its ingestion rate.
    #[error(
        "RATE_LIMITED: ingestion rate limit (local: {rate} bytes/s, burst: {burst} bytes) exceeded while adding {size} bytes for user {tenant}"
    )]
    RateLimited {
        /// Tenant.
        tenant: String,
        /// Request size.
        size: u64,
        /// Configured rate.
        rate: u64,
        /// Configured burst.
        burst: u64,
        /// When to try again.
        retry_after: Duration,
    },
    /// A batch is larger than the whole burst, so it can never pass.
    #[error(
        "RATE_LIMITED: batch size ({size} bytes) exceeds ingestion limit (burst: {burst} bytes) for user {tenant}"
    )]
    BatchTooLarge {
        /// Tenant.
        tenant: String,
        /// Request size.
        size: u64,
        /// Configured burst.
        burst: u64,
    },
    /// A memory or disk bound is reached; the client should back off and retry.
    #[error("backpressure: {reason}; retry later")]
    Backpressure {
        /// Which bound.
        reason: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// The backend is starting (WAL replay) or stopping.
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// A WAL file operation failed.
    #[error("wal {path}: {source}")]
    Wal {
        /// Segment path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Writing a block to its local spool file before upload failed.
    #[error("block spool {path}: {source}")]
    Spool {
        /// File or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// An object store operation failed.
    #[error("object store {op} {key}: {source}")]
    Store {
        /// Operation (get, put, list, delete).
        op: &'static str,
        /// Object key.
        key: String,
        /// Cause.
        source: object_store::Error,
    },
    /// A block's objects are unreadable.
    #[error("block {tenant}/{block_id} ({object}): {message}")]
    CorruptBlock {
        /// Tenant.
        tenant: String,
        /// Block id.
        block_id: String,
        /// Object name inside the block.
        object: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A block is in a format the running release cannot read.
    #[error(
        "block {tenant}/{block_id} is in format {format}, which {release} cannot read; releases that can read it: {readers}"
    )]
    UnreadableBlock {
        /// Tenant.
        tenant: String,
        /// Block id.
        block_id: String,
        /// The block's format.
        format: String,
        /// The running release.
        release: crate::release::ReleaseId,
        /// Releases that read `format` ("none" when none does).
        readers: String,
    },
    /// Listening on an address failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// HTTP status for this error, as Tempo's OTLP/HTTP receiver and query API answer.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::InvalidArgument(_) | Error::ConfigInvalid(_) | Error::ConfigParse { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::MissingTenant(_) => StatusCode::UNAUTHORIZED,
            Error::UnsupportedMediaType(_) | Error::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } | Error::BatchTooLarge { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::Backpressure { .. } | Error::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// gRPC code for this error.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Error::InvalidArgument(_) | Error::ConfigInvalid(_) | Error::ConfigParse { .. } => {
                tonic::Code::InvalidArgument
            }
            Error::MissingTenant(_) => tonic::Code::Unauthenticated,
            Error::UnsupportedMediaType(_) | Error::UnsupportedEncoding(_) => {
                tonic::Code::Unimplemented
            }
            Error::PayloadTooLarge { .. } => tonic::Code::OutOfRange,
            Error::RateLimited { .. } | Error::BatchTooLarge { .. } => {
                tonic::Code::ResourceExhausted
            }
            Error::Backpressure { .. } | Error::NotReady(_) => tonic::Code::Unavailable,
            _ => tonic::Code::Internal,
        }
    }

    /// How long a client should wait before retrying, when retrying can help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Backpressure { retry_after, .. } => {
                Some(*retry_after)
            }
            Error::NotReady(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// `Retry-After` header value (whole seconds, at least 1) when retrying can help.
    pub fn retry_after_header(&self) -> Option<http::HeaderValue> {
        self.retry_after()
            .and_then(|a| http::HeaderValue::from_str(&a.as_secs().max(1).to_string()).ok())
    }

    /// The gRPC status, with `retry-after` in metadata when set.
    pub fn to_grpc_status(&self) -> tonic::Status {
        let mut status = tonic::Status::new(self.grpc_code(), self.to_string());
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs().max(1).to_string();
            if let Ok(v) = secs.parse() {
                status.metadata_mut().insert("retry-after", v);
            }
        }
        status
    }

    /// Short label used as the `reason` of discard metrics.
    pub fn discard_reason(&self) -> &'static str {
        match self {
            Error::RateLimited { .. } | Error::BatchTooLarge { .. } => "rate_limited",
            Error::Backpressure { .. } => "backpressure",
            Error::PayloadTooLarge { .. } => "request_too_large",
            Error::MissingTenant(_) => "missing_tenant",
            Error::NotReady(_) => "not_ready",
            Error::InvalidArgument(msg) if msg.starts_with("trace ids") => "invalid_trace_id",
            Error::InvalidArgument(msg) if msg.starts_with("span ids") => "invalid_span_id",
            Error::InvalidArgument(msg)
                if msg.starts_with("tenant")
                    || msg.starts_with("multiple org IDs")
                    || msg.starts_with("no org id") =>
            {
                "invalid_tenant"
            }
            Error::InvalidArgument(_) => "invalid_request",
            Error::UnsupportedMediaType(_) | Error::UnsupportedEncoding(_) => "invalid_request",
            _ => "unknown_error",
        }
    }
}
