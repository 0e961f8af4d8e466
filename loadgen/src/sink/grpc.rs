//! The sink's OTLP/gRPC service: raw request bytes (tonic handles framing and gzip),
//! counted by the walker.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use reference_backend::ingest::grpc::RawCodec;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::{Grpc, NamedService, UnaryService};

use super::{MAX_BODY, SinkState, count_spans};

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
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(
                    accept,
                    tonic::codec::EnabledCompressionEncodings::default(),
                )
                .apply_max_message_size_config(Some(MAX_BODY), None);
            Ok(grpc.unary(Export(state), req).await)
        })
    }
}
