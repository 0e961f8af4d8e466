//! OTLP/gRPC wire exporter (stub).

use async_trait::async_trait;

use super::{EncodedRequest, Exporter, ExporterConfig, OutcomeClass, SendResult};
use crate::error::Result;

/// gRPC exporter.
pub struct GrpcExporter;

impl GrpcExporter {
    /// Connect (stub).
    pub async fn connect(_config: &ExporterConfig) -> Result<Self> {
        Ok(GrpcExporter)
    }
}

#[async_trait]
impl Exporter for GrpcExporter {
    async fn send(&self, request: EncodedRequest) -> SendResult {
        SendResult {
            class: OutcomeClass::Transport,
            rejected_spans: request.spans as u64,
            retry_after: None,
            message: None,
        }
    }
}
