//! OTLP/HTTP wire exporter (stub).

use async_trait::async_trait;

use super::{EncodedRequest, Exporter, ExporterConfig, OutcomeClass, SendResult};
use crate::error::Result;

/// gRPC exporter.
pub struct HttpExporter;

impl HttpExporter {
    /// Build (stub).
    pub fn new(_config: &ExporterConfig) -> Result<Self> {
        Ok(HttpExporter)
    }
}

#[async_trait]
impl Exporter for HttpExporter {
    async fn send(&self, request: EncodedRequest) -> SendResult {
        SendResult {
            class: OutcomeClass::Transport,
            rejected_spans: request.spans as u64,
            retry_after: None,
            message: None,
        }
    }
}
