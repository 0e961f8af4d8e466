//! OTLP/gRPC receiver (`opentelemetry.proto.collector.trace.v1.TraceService/Export`).
//!
//! The service is mounted with a pass-through codec: tonic hands over the raw request bytes
//! (after gzip, within the size cap) and decoding happens in `Ingester::push` on the
//! blocking pool, not on an async worker.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::Payload;
use crate::state::AppState;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Server codec for the OTLP trace Export method: requests are handed over as raw bytes
/// (after tonic's framing and gzip), responses are encoded with prost. Also used by
/// `loadgen sink`.
#[derive(Default, Clone, Copy)]
pub struct RawCodec;

/// Decoder half of [`RawCodec`].
pub struct RawDecoder;
/// Encoder half of [`RawCodec`].
pub struct ProstEncoder;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ProstEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl Encoder for ProstEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encode response: {e}")))
    }
}

/// The gRPC trace service.
#[derive(Clone)]
pub struct TraceGrpc {
    state: Arc<AppState>,
    max_message: usize,
}

impl TraceGrpc {
    /// Service over the app state.
    pub fn new(state: Arc<AppState>) -> Self {
        let p = &state.config.distributor.receivers.otlp.protocols.grpc;
        let max_message = p.max_decompressed_bytes.as_u64() as usize;
        TraceGrpc { state, max_message }
    }
}

impl NamedService for TraceGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct Export(Arc<AppState>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let org = request
                .metadata()
                .get(tempo_api::tenant::ORG_ID_METADATA)
                .map(|v| v.as_bytes().to_vec());
            let tenant =
                crate::tenant::resolve_for(&state.config, org.as_deref()).map_err(|e| {
                    state.metrics.reject(e.discard_reason(), "", 0);
                    e.to_grpc_status()
                })?;
            let core = state.core().map_err(|e| {
                state.metrics.reject(e.discard_reason(), &tenant, 0);
                e.to_grpc_status()
            })?;
            let body = request.into_inner();
            let outcome = core
                .ingester
                .push(&tenant, Payload::Protobuf(body))
                .await
                .map_err(|e| e.to_grpc_status())?;
            let partial = (outcome.rejected_spans > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: outcome.rejected_spans as i64,
                error_message: outcome.message,
            });
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success: partial,
            }))
        })
    }
}

impl<B> Service<http::Request<B>> for TraceGrpc
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let state = self.state.clone();
        let max = self.max_message;
        Box::pin(async move {
            let mut accept = tonic::codec::EnabledCompressionEncodings::default();
            accept.enable(tonic::codec::CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(accept, accept)
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(Export(state), req).await)
        })
    }
}
