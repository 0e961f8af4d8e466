//! The crate's error type.

use std::path::PathBuf;

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a loadgen command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A scenario file is invalid.
    #[error("scenario {path}: {message}")]
    Scenario {
        /// File path (or `<inline>`).
        path: String,
        /// What is wrong (names the key, line and column when the parser knows them).
        message: String,
    },
    /// A report file is invalid.
    #[error("report {path}: {message}")]
    Report {
        /// File path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A target (endpoint, query URL, embedded backend) cannot be used.
    #[error("target: {0}")]
    Target(String),
    /// A command-line value is invalid.
    #[error("invalid argument: {0}")]
    Usage(String),
    /// The embedded backend failed.
    #[error("embedded backend: {0}")]
    Backend(#[from] reference_backend::Error),
    /// A query against the backend failed.
    #[error("query: {0}")]
    Query(#[from] tempo_api::ClientError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}
