//! The sink's OTLP/gRPC service: raw request bytes (tonic handles framing and gzip),
//! counted by the walker.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{Grpc, NamedService, UnaryService};

use super::{MAX_BODY, SinkState, count_spans};

/// gRPC codec: raw request bytes in, prost response out.
#[derive(Clone, Copy)]
struct SinkCodec;
struct RawDecoder;
struct ResponseEncoder;

impl Codec for SinkCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> std::result::Result<Option<Bytes>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Self::Item,
        dst: &mut EncodeBuf<'_>,
    ) -> std::result::Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("encode response: {e}")))
    }
}

#[derive(Clone)]
pub(super) struct SinkGrpc(pub(super) Arc<SinkState>);

impl NamedService for SinkGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

struct Export(Arc<SinkState>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let n = state.arrive();
            let body = request.into_inner();
            let result = match count_spans(&body) {
                Ok(spans) => {
                    state.accept(spans, body.len());
                    Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
                }
                Err(e) => {
                    state.reject();
                    Err(tonic::Status::invalid_argument(e.to_string()))
                }
            };
            state.maybe_stall(n).await;
            result
        })
    }
}

impl<B> Service<http::Request<B>> for SinkGrpc
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let mut accept = tonic::codec::EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(SinkCodec)
                .apply_compression_config(
                    accept,
                    tonic::codec::EnabledCompressionEncodings::default(),
                )
                .apply_max_message_size_config(Some(MAX_BODY), None);
            Ok(grpc.unary(Export(state), req).await)
        })
    }
}
