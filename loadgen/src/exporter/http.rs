//! OTLP/HTTP wire exporter: `POST <endpoint>/v1/traces` with protobuf (sent as is) or
//! OTLP/JSON bodies, optional gzip, over `connections` reqwest clients per endpoint, each
//! with its own keep-alive pool, used round-robin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{EncodedRequest, Exporter, ExporterConfig, OutcomeClass, SendResult, classify};
use crate::error::{Error, Result};
use crate::scenario::{Compression, Protocol};

/// HTTP version the exporter speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 with keep-alive (one request per connection at a time).
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (h2c): requests multiplexed on each
    /// client's connection.
    Http2PriorKnowledge,
}

struct Target {
    client: reqwest::Client,
    url: reqwest::Url,
}

/// OTLP/HTTP exporter.
pub struct HttpExporter {
    targets: Vec<Target>,
    next: AtomicUsize,
    headers: HeaderMap,
    json: bool,
    gzip: bool,
    timeout: Duration,
}

impl std::fmt::Debug for HttpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExporter")
            .field(
                "urls",
                &self
                    .targets
                    .iter()
                    .map(|t| t.url.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("json", &self.json)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

/// The export URL: `/v1/traces` is appended when the URL has no path.
pub fn traces_url(endpoint: &str) -> Result<reqwest::Url> {
    let e = endpoint.trim();
    let with_scheme = if e.contains("://") {
        e.to_owned()
    } else {
        format!("http://{e}")
    };
    let mut url = reqwest::Url::parse(&with_scheme)
        .map_err(|err| Error::Target(format!("invalid OTLP/HTTP endpoint {e:?}: {err}")))?;
    if url.scheme() != "http" {
        return Err(Error::Target(format!(
            "{e}: only http:// endpoints are supported (no TLS built in)"
        )));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path("/v1/traces");
    }
    Ok(url)
}

fn headers(config: &ExporterConfig) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    let content_type = match config.protocol {
        Protocol::HttpJson => "application/json",
        _ => "application/x-protobuf",
    };
    map.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if config.compression == Compression::Gzip {
        map.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let pairs = config
        .tenant
        .iter()
        .map(|t| ("X-Scope-OrgID", t.as_str()))
        .chain(config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (k, v) in pairs {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| Error::Target(format!("invalid header name {k:?}: {e}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|e| Error::Target(format!("invalid header value for {k:?}: {e}")))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// gzip at the default level (what the OTel SDKs use).
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    enc.finish()
}

/// OTLP/JSON (hex ids, camelCase, int64 as strings) of an encoded request.
pub fn protobuf_to_json(body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let req = ExportTraceServiceRequest::decode(body)
        .map_err(|e| format!("request body is not a valid ExportTraceServiceRequest: {e}"))?;
    serde_json::to_vec(&req).map_err(|e| format!("OTLP/JSON encoding failed: {e}"))
}

impl HttpExporter {
    /// Build the clients (HTTP/1.1). Connections open on first use.
    pub fn new(config: &ExporterConfig) -> Result<Self> {
        Self::with_version(config, HttpVersion::Http1)
    }

    /// Build the clients for an HTTP version.
    pub fn with_version(config: &ExporterConfig, version: HttpVersion) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::Target("no OTLP endpoint configured".into()));
        }
        let per_endpoint = config.connections.max(1);
        let mut targets = Vec::with_capacity(config.endpoints.len() * per_endpoint);
        for e in &config.endpoints {
            let url = traces_url(e)?;
            for _ in 0..per_endpoint {
                let mut b = reqwest::Client::builder()
                    .no_proxy()
                    .tcp_nodelay(true)
                    .connect_timeout(config.timeout)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_max_idle_per_host(usize::MAX);
                b = match version {
                    HttpVersion::Http1 => b.http1_only(),
                    HttpVersion::Http2PriorKnowledge => b
                        .http2_prior_knowledge()
                        .http2_initial_connection_window_size(16 * 1024 * 1024)
                        .http2_initial_stream_window_size(4 * 1024 * 1024),
                };
                let client = b
                    .build()
                    .map_err(|err| Error::Target(format!("HTTP client: {err}")))?;
                targets.push(Target {
                    client,
                    url: url.clone(),
                });
            }
        }
        Ok(HttpExporter {
            targets,
            next: AtomicUsize::new(0),
            headers: headers(config)?,
            json: config.protocol == Protocol::HttpJson,
            gzip: config.compression == Compression::Gzip,
            timeout: config.timeout,
        })
    }

    /// Number of clients (connection pools) in rotation.
    pub fn connections(&self) -> usize {
        self.targets.len()
    }

    fn body(&self, body: Bytes) -> std::result::Result<Bytes, String> {
        let body = if self.json {
            Bytes::from(protobuf_to_json(&body)?)
        } else {
            body
        };
        if self.gzip {
            gzip(&body)
                .map(Bytes::from)
                .map_err(|e| format!("gzip: {e}"))
        } else {
            Ok(body)
        }
    }

    async fn post(&self, target: &Target, body: Bytes, spans: u32) -> SendResult {
        let sent = target
            .client
            .post(target.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .timeout(self.timeout)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return request_error(&e, spans, self.timeout),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        match resp.bytes().await {
            Ok(b) => classify::http_response(status, &headers, &b, spans),
            Err(e) if e.is_timeout() => classify::timeout(spans, self.timeout),
            // The status is known; an unreadable body only loses the message.
            Err(_) => classify::http_response(status, &headers, &[], spans),
        }
    }
}

fn request_error(e: &reqwest::Error, spans: u32, timeout: Duration) -> SendResult {
    if e.is_timeout() {
        return classify::timeout(spans, timeout);
    }
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cur = c.source();
    }
    classify::transport(spans, &msg)
}

#[async_trait]
impl Exporter for HttpExporter {
    async fn send(&self, request: EncodedRequest) -> SendResult {
        let spans = request.spans;
        let body = match self.body(request.body) {
            Ok(b) => b,
            Err(msg) => return classify::result(OutcomeClass::Invalid, spans, Some(&msg)),
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        self.post(&self.targets[i], body, spans).await
    }
}
