//! loadgen: an open-loop OTLP load generator that mimics instrumented applications,
//! measures latency from the intended send time, reads traces back to prove nothing was
//! lost, and writes reports people read and CI gates on. See the crate README.

pub mod block_size;
pub mod cli;
pub mod error;
pub mod exporter;
pub mod progress;
pub mod query_load;
pub mod report;
pub mod resources;
pub mod run;
pub mod scenario;
pub mod scheduler;
pub mod sdk_run;
pub mod shapes;
pub mod sink;
pub mod slope;
pub mod stats;
pub mod summary;
pub mod target;
pub mod verify;
pub mod workload;

pub use error::{Error, Result};
