//! loadgen: an open-loop OTLP load generator that mimics instrumented applications,
//! measures latency from the intended send time, reads traces back to prove nothing was
//! lost, and writes reports people read and CI gates on. See the crate README.

pub mod error;
pub mod exporter;
pub mod report;
pub mod scenario;
pub mod shapes;
pub mod sink;
pub mod stats;

pub use error::{Error, Result};
