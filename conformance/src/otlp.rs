//! Sending real OTLP: gRPC through the tonic client of opentelemetry-proto, HTTP with protobuf
//! or JSON bodies (optionally gzip) through reqwest. Every answer is returned as an [`Ack`]
//! whatever its status, so cases can check refusals as well as acceptances.

use std::io::Write;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;

/// How a request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP, `application/x-protobuf`.
    HttpProtobuf,
    /// OTLP/HTTP, `application/json`.
    HttpJson,
}

impl Transport {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::HttpProtobuf => "http/protobuf",
            Transport::HttpJson => "http/json",
        }
    }
}

/// The backend's answer to one export.
#[derive(Debug, Clone, Default)]
pub struct Ack {
    /// HTTP status, or for gRPC 200 when OK and the HTTP equivalent of the code otherwise.
    pub http_status: u16,
    /// gRPC status code (0 = OK) for gRPC sends.
    pub grpc_code: Option<i32>,
    /// Spans the backend says it rejected (OTLP partial success).
    pub rejected_spans: i64,
    /// Error or partial-success message.
    pub message: String,
    /// `Retry-After` (header, or gRPC metadata).
    pub retry_after: Option<String>,
}

impl Ack {
    /// Accepted (possibly partially).
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.http_status) && self.grpc_code.unwrap_or(0) == 0
    }

    /// One-line description.
    pub fn describe(&self) -> String {
        let mut s = match self.grpc_code {
            Some(c) => format!("gRPC code {c}"),
            None => format!("HTTP {}", self.http_status),
        };
        if self.rejected_spans > 0 {
            s.push_str(&format!(", {} spans rejected", self.rejected_spans));
        }
        if !self.message.is_empty() {
            let m: String = self.message.chars().take(300).collect();
            s.push_str(&format!(": {m}"));
        }
        s
    }
}

/// Sends exports to one target.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    grpc_url: Option<String>,
    http_url: Option<String>,
    tenant: Option<String>,
}

fn grpc_to_http(code: tonic::Code) -> u16 {
    use tonic::Code::*;
    match code {
        Ok => 200,
        InvalidArgument | FailedPrecondition | OutOfRange => 400,
        Unauthenticated => 401,
        PermissionDenied => 403,
        NotFound => 404,
        ResourceExhausted => 429,
        Unavailable => 503,
        Unimplemented => 501,
        _ => 500,
    }
}

impl Sender {
    /// A sender for the given endpoints (`http://host:port`), with an optional tenant.
    pub fn new(grpc_url: Option<String>, http_url: Option<String>, tenant: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            grpc_url,
            http_url,
            tenant,
        }
    }

    /// The same endpoints as another tenant (`None` sends no tenant header).
    pub fn as_tenant(&self, tenant: Option<&str>) -> Self {
        Self {
            tenant: tenant.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Export `req` over `transport`, gzip-compressed when `gzip`.
    pub async fn send(
        &self,
        transport: Transport,
        req: &ExportTraceServiceRequest,
        gzip: bool,
    ) -> anyhow::Result<Ack> {
        match transport {
            Transport::Grpc => self.send_grpc(req, gzip).await,
            Transport::HttpProtobuf => {
                self.send_http(req.encode_to_vec(), "application/x-protobuf", gzip)
                    .await
            }
            Transport::HttpJson => {
                let body = serde_json::to_vec(req)?;
                self.send_http(body, "application/json", gzip).await
            }
        }
    }

    async fn send_grpc(&self, req: &ExportTraceServiceRequest, gzip: bool) -> anyhow::Result<Ack> {
        let Some(url) = &self.grpc_url else {
            anyhow::bail!("the target has no OTLP gRPC endpoint");
        };
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("connect {url}: {e}"))?;
        // A gRPC server answers a compressed request with a response compressed the same way
        // (grpc-go does), so accept gzip answers as OTLP exporters do.
        let mut client = TraceServiceClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(256 << 20)
            .accept_compressed(CompressionEncoding::Gzip);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let mut request = tonic::Request::new(req.clone());
        if let Some(t) = &self.tenant {
            let v: MetadataValue<_> = t
                .parse()
                .map_err(|_| anyhow::anyhow!("tenant {t:?} is not valid gRPC metadata"))?;
            request.metadata_mut().insert(tempo_api::ORG_ID_METADATA, v);
        }
        match client.export(request).await {
            Ok(resp) => {
                let partial = resp.into_inner().partial_success.unwrap_or_default();
                Ok(Ack {
                    http_status: 200,
                    grpc_code: Some(0),
                    rejected_spans: partial.rejected_spans,
                    message: partial.error_message,
                    retry_after: None,
                })
            }
            Err(status) => Ok(Ack {
                http_status: grpc_to_http(status.code()),
                grpc_code: Some(status.code() as i32),
                rejected_spans: 0,
                message: status.message().to_owned(),
                retry_after: status
                    .metadata()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            }),
        }
    }

    async fn send_http(
        &self,
        body: Vec<u8>,
        content_type: &str,
        gzip: bool,
    ) -> anyhow::Result<Ack> {
        let Some(base) = &self.http_url else {
            anyhow::bail!("the target has no OTLP HTTP endpoint");
        };
        let url = format!("{}/v1/traces", base.trim_end_matches('/'));
        let mut r = self
            .http
            .post(&url)
            .header("content-type", content_type)
            .timeout(Duration::from_secs(60));
        let body = if gzip {
            r = r.header("content-encoding", "gzip");
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&body)?;
            enc.finish()?
        } else {
            body
        };
        if let Some(t) = &self.tenant {
            r = r.header(tempo_api::ORG_ID_HEADER, t);
        }
        let resp = r
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let bytes = resp.bytes().await.unwrap_or_default();
        let mut ack = Ack {
            http_status: status,
            retry_after,
            ..Ack::default()
        };
        if (200..300).contains(&status) {
            let decoded = if is_json {
                serde_json::from_slice::<ExportTraceServiceResponse>(&bytes).ok()
            } else {
                ExportTraceServiceResponse::decode(bytes.as_ref()).ok()
            };
            if let Some(p) = decoded.and_then(|d| d.partial_success) {
                ack.rejected_spans = p.rejected_spans;
                ack.message = p.error_message;
            }
        } else {
            ack.message = status_message(&bytes);
        }
        Ok(ack)
    }
}

/// The message of an error body: OTLP `Status` protobuf, JSON, or plain text.
fn status_message(bytes: &[u8]) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    if let Ok(s) = Status::decode(bytes)
        && !s.message.is_empty()
    {
        return s.message;
    }
    String::from_utf8_lossy(bytes).trim().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::convert::Infallible;

    /// Answer an export the way grpc-go does when the request was gzip-compressed: the
    /// response message gzip-compressed too (`grpc-encoding: gzip`, compressed flag set), whether
    /// or not the client said it accepts gzip.
    async fn grpc_go_answer(_body: axum::body::Bytes) -> axum::response::Response {
        let msg = ExportTraceServiceResponse::default().encode_to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&msg).unwrap();
        let packed = gz.finish().unwrap();
        let mut framed = vec![1u8];
        framed.extend((packed.len() as u32).to_be_bytes());
        framed.extend(packed);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames = futures::stream::iter([
            Ok::<_, Infallible>(hyper::body::Frame::data(bytes::Bytes::from(framed))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ]);
        axum::response::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-encoding", "gzip")
            .body(axum::body::Body::new(http_body_util::StreamBody::new(
                frames,
            )))
            .unwrap()
    }

    /// A gzip export to a server that answers like grpc-go is accepted: the sender takes gzip
    /// answers, as OTLP exporters do. (Tempo's gzip answers were once reported as a refusal,
    /// "Content is compressed with `gzip` which isn't supported", by a client that did not.)
    #[tokio::test]
    async fn gzip_requests_accept_gzip_answers() {
        let app = axum::Router::new().route(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            axum::routing::post(grpc_go_answer),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let sender = Sender::new(Some(format!("http://{addr}")), None, None);
        let (_, rs) = crate::fixtures::simple_trace("gzip-answer", 1);
        let ack = sender
            .send(Transport::Grpc, &crate::fixtures::request(rs), true)
            .await
            .unwrap();
        assert!(ack.ok(), "{}", ack.describe());
        server.abort();
    }
}
