//! conformance: a black-box suite for OTLP tracing backends that serve Grafana Tempo's query
//! API, and an upgrade runner that writes with release N and reads with N+1 on the same object
//! store and data directory. See the crate README for the flow and a code map.

pub mod capability;
pub mod cases;
pub mod cli;
pub mod compare;
pub mod docker;
pub mod error;
pub mod fixtures;
pub mod otlp;
pub mod outcome;
pub mod persist;
pub mod report;
pub mod runner;
pub mod s3_bucket;
pub mod spec;
pub mod store;
pub mod target;
pub mod upgrade;

pub use error::{Error, Result};
