//! OTLP/gRPC wire exporter: sends pre-encoded `ExportTraceServiceRequest` bodies as they
//! are (a pass-through codec, no re-encoding) over several HTTP/2 connections used
//! round-robin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

use super::{EncodedRequest, Exporter, ExporterConfig, SendResult, classify};
use crate::error::{Error, Result};
use crate::scenario::Compression;

/// The OTLP trace export method.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Codec that writes pre-encoded request bytes as they are and decodes the response.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThroughCodec;

/// Encoder half of [`PassThroughCodec`].
#[derive(Debug)]
pub struct BytesEncoder;

/// Decoder half of [`PassThroughCodec`].
#[derive(Debug)]
pub struct ResponseDecoder;

impl Codec for PassThroughCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = BytesEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable export response: {e}")))
    }
}

/// OTLP/gRPC exporter over `connections` channels per endpoint.
#[derive(Debug)]
pub struct GrpcExporter {
    channels: Vec<Channel>,
    next: AtomicUsize,
    metadata: MetadataMap,
    gzip: bool,
    timeout: Duration,
}

/// `http://` is added when the endpoint has no scheme; `https` needs TLS, which is not
/// built in.
pub(crate) fn endpoint_uri(endpoint: &str) -> Result<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if e.starts_with("https://") {
        return Err(Error::Target(format!(
            "{e}: TLS is not supported by the wire gRPC exporter; use http://"
        )));
    }
    if e.starts_with("http://") {
        Ok(e.to_owned())
    } else {
        Ok(format!("http://{e}"))
    }
}

/// Request metadata: `x-scope-orgid` for the tenant plus the configured headers.
pub(crate) fn metadata(config: &ExporterConfig) -> Result<MetadataMap> {
    let mut map = MetadataMap::new();
    let pairs = config
        .tenant
        .iter()
        .map(|t| ("x-scope-orgid", t.as_str()))
        .chain(config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (k, v) in pairs {
        let key = AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| Error::Target(format!("invalid gRPC metadata key {k:?}: {e}")))?;
        let value = AsciiMetadataValue::try_from(v)
            .map_err(|e| Error::Target(format!("invalid gRPC metadata value for {k:?}: {e}")))?;
        map.insert(key, value);
    }
    Ok(map)
}

impl GrpcExporter {
    /// Build the channels (connections open lazily on first use). Must run inside a Tokio
    /// runtime, which must outlive the exporter.
    pub async fn connect(config: &ExporterConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::Target("no OTLP endpoint configured".into()));
        }
        let per_endpoint = config.connections.max(1);
        let mut channels = Vec::with_capacity(config.endpoints.len() * per_endpoint);
        for e in &config.endpoints {
            let uri = endpoint_uri(e)?;
            let endpoint = Endpoint::from_shared(uri.clone())
                .map_err(|err| Error::Target(format!("invalid gRPC endpoint {uri}: {err}")))?
                .tcp_nodelay(true)
                .connect_timeout(config.timeout)
                .initial_connection_window_size(16 * 1024 * 1024)
                .initial_stream_window_size(4 * 1024 * 1024)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20));
            for _ in 0..per_endpoint {
                // One `Channel` per connection: each owns its own HTTP/2 connection.
                channels.push(endpoint.connect_lazy());
            }
        }
        Ok(GrpcExporter {
            channels,
            next: AtomicUsize::new(0),
            metadata: metadata(config)?,
            gzip: config.compression == Compression::Gzip,
            timeout: config.timeout,
        })
    }

    /// Number of channels (connections) in rotation.
    pub fn connections(&self) -> usize {
        self.channels.len()
    }

    async fn call(
        &self,
        channel: Channel,
        body: Bytes,
    ) -> std::result::Result<ExportTraceServiceResponse, SendError> {
        let mut grpc = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(4 * 1024 * 1024);
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc.ready()
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        grpc.unary(
            request,
            PathAndQuery::from_static(EXPORT_PATH),
            PassThroughCodec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(SendError::Status)
    }
}

enum SendError {
    Transport(String),
    Status(tonic::Status),
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[async_trait]
impl Exporter for GrpcExporter {
    async fn send(&self, request: EncodedRequest) -> SendResult {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        let channel = self.channels[i].clone();
        let spans = request.spans;
        match tokio::time::timeout(self.timeout, self.call(channel, request.body)).await {
            Err(_) => classify::timeout(spans, self.timeout),
            Ok(Ok(resp)) => classify::from_partial(resp.partial_success.as_ref(), spans),
            Ok(Err(SendError::Status(status))) => classify::grpc_status(&status, spans),
            Ok(Err(SendError::Transport(msg))) => classify::transport(spans, &msg),
        }
    }
}
