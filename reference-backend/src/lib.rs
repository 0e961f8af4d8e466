//! A Tempo-compatible tracing backend: OTLP ingest, WAL, blocks in object storage and the
//! Tempo HTTP query API. See the crate README for the data flow and a code map.

pub mod api;
pub mod block;
pub mod blocklist;
pub mod cli;
pub mod compactor;
pub mod config;
pub mod cpu;
pub mod error;
pub mod flush;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod process;
pub mod query;
pub mod release;
pub mod search;
pub mod server;
pub mod state;
pub mod store;
pub mod tenant;
pub mod wal;

pub use config::Config;
pub use error::{Error, Result};
pub use server::{Backend, ListenAddrs};
