//! Exporters: how encoded OTLP requests reach a backend, and how answers are classified.
//!
//! `wire` exporters send prebuilt protobuf bodies over tonic (gRPC) or HTTP/1.1 / HTTP/2
//! with connection reuse over several connections. The `sdk` driver instead pushes spans
//! through `opentelemetry_sdk`'s batch processor and the `opentelemetry-otlp` exporter.

pub mod classify;
pub mod grpc;
pub mod http;
pub mod sdk;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::scenario::{Compression, Protocol};

/// One OTLP export request, encoded as `ExportTraceServiceRequest` protobuf.
#[derive(Debug, Clone)]
pub struct EncodedRequest {
    /// Protobuf body.
    pub body: Bytes,
    /// Spans in it.
    pub spans: u32,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// Accepted entirely.
    Ok,
    /// Accepted with some spans rejected (OTLP partial success).
    Partial,
    /// 429 / RESOURCE_EXHAUSTED.
    RateLimited,
    /// 413 / OUT_OF_RANGE / message too large.
    TooLarge,
    /// 400 / INVALID_ARGUMENT and other client errors.
    Invalid,
    /// 503 / UNAVAILABLE, 5xx.
    Unavailable,
    /// No answer within the timeout.
    Timeout,
    /// Connection refused, reset, TLS or protocol errors.
    Transport,
}

impl OutcomeClass {
    /// True when the backend accepted the request (fully or partly).
    pub fn accepted(self) -> bool {
        matches!(self, OutcomeClass::Ok | OutcomeClass::Partial)
    }

    /// Stable name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Ok => "ok",
            OutcomeClass::Partial => "partial",
            OutcomeClass::RateLimited => "rate_limited",
            OutcomeClass::TooLarge => "too_large",
            OutcomeClass::Invalid => "invalid",
            OutcomeClass::Unavailable => "unavailable",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::Transport => "transport",
        }
    }
}

/// The classified answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// Class.
    pub class: OutcomeClass,
    /// Spans the backend said it rejected (partial success), or all spans when refused.
    pub rejected_spans: u64,
    /// `Retry-After` / gRPC `retry-after` when given.
    pub retry_after: Option<Duration>,
    /// Backend's error message, if any (first 200 characters).
    pub message: Option<String>,
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Endpoints (gRPC: `http://host:port`; HTTP: base URL, `/v1/traces` appended when the
    /// URL has no path).
    pub endpoints: Vec<String>,
    /// Protocol.
    pub protocol: Protocol,
    /// Compression.
    pub compression: Compression,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Tenant (`X-Scope-OrgID` / `x-scope-orgid`).
    pub tenant: Option<String>,
    /// Connections per endpoint.
    pub connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Sends encoded requests.
#[async_trait]
pub trait Exporter: Send + Sync {
    /// Send one request and classify the answer. Never panics; transport problems are
    /// classified, not returned as errors.
    async fn send(&self, request: EncodedRequest) -> SendResult;
}

/// Build the wire exporter for a config.
pub async fn wire(config: &ExporterConfig) -> Result<Box<dyn Exporter>> {
    match config.protocol {
        Protocol::Grpc => Ok(Box::new(grpc::GrpcExporter::connect(config).await?)),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            Ok(Box::new(http::HttpExporter::new(config)?))
        }
    }
}
