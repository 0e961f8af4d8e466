//! The crate's error type: problems of the harness itself (a target file that does not parse,
//! a store that does not start, a target that does not become ready). What a case finds wrong
//! with a backend is not an error here but a failed case with its reason.

use std::path::PathBuf;

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop the harness from running a case.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A target file cannot be read or parsed, or is inconsistent.
    #[error("target file {path}: {message}")]
    TargetFile {
        /// File path (or `<inline>`).
        path: PathBuf,
        /// What is wrong (parser messages name the key, line and column).
        message: String,
    },
    /// A config template cannot be rendered or merged.
    #[error("config template of {target}: {message}")]
    Template {
        /// Target name.
        target: String,
        /// What is wrong.
        message: String,
    },
    /// The object store could not be prepared.
    #[error("store {store}: {message}")]
    Store {
        /// Store spec (`embedded-s3`, `minio`, …).
        store: String,
        /// What failed.
        message: String,
    },
    /// A target did not start, did not become ready, or could not be stopped.
    #[error("target {target}: {message}")]
    Target {
        /// Target name.
        target: String,
        /// What failed (with the tail of its log when there is one).
        message: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The command line is inconsistent.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// A target error.
    pub fn target(target: &str, message: impl Into<String>) -> Self {
        Error::Target {
            target: target.to_owned(),
            message: message.into(),
        }
    }

    /// A store error.
    pub fn store(store: &str, message: impl Into<String>) -> Self {
        Error::Store {
            store: store.to_owned(),
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
