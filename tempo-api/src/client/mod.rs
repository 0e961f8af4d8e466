//! Async HTTP client for Tempo's query API (plain `http://`; no TLS is
//! compiled in).

#[cfg(test)]
mod tests;

use crate::buildinfo::BuildInfo;
use crate::otlp::trace::v1::{ResourceSpans, TracesData};
use crate::proto::{PARTIAL_STATUS_PARTIAL, TraceByIdResponseProto};
use crate::search::{
    SearchRequest, SearchResponse, SearchTagValuesResponse, SearchTagValuesV2Response,
    SearchTagsResponse, SearchTagsV2Response, TagsRequest,
};
use crate::tenant::ORG_ID_HEADER;
use crate::trace_id::{TraceId, trace_id_to_hex};
use crate::trace_json::{
    STATUS_PARTIAL, TraceByIdMetrics, TraceByIdV2Otlp, TraceByIdV2Response, TraceV1,
};
use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// `Accept` value for JSON bodies.
pub const ACCEPT_JSON: &str = "application/json";
/// `Accept` value for protobuf bodies (matched by substring in Tempo).
pub const ACCEPT_PROTOBUF: &str = "application/protobuf";
/// Request timeout used unless [`TempoClient::with_timeout`] changes it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of an error body [`ClientError::Status`] keeps.
const MAX_ERROR_BODY: usize = 4096;

/// Failure of a [`TempoClient`] call. Every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL or a built URL is unusable.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The offending URL text.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting, sending or reading failed (includes timeouts).
    #[error("request to {url} failed: {source}")]
    Transport {
        /// Request URL.
        url: String,
        /// Underlying reqwest error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an unexpected status.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// Request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Response body (lossy UTF-8, truncated to 4 KiB).
        body: String,
    },
    /// The body did not decode as the expected JSON or protobuf.
    #[error("cannot decode response from {url}: {reason}")]
    Decode {
        /// Request URL.
        url: String,
        /// Decoder message.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status for [`ClientError::Status`], else `None`.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response returned as-is, for checks on status codes and error bodies.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Request URL.
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Content-Type` header, if present and ASCII.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(CONTENT_TYPE)?.to_str().ok()
    }

    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn into_status_error(self) -> ClientError {
        let mut body = self.text();
        if body.len() > MAX_ERROR_BODY {
            let mut cut = MAX_ERROR_BODY;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        ClientError::Status {
            url: self.url,
            status: self.status,
            body,
        }
    }

    fn json<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode {
            url: self.url,
            reason: e.to_string(),
        })
    }

    fn proto<T: prost::Message + Default>(self) -> Result<T, ClientError> {
        T::decode(self.body.as_ref()).map_err(|e| ClientError::Decode {
            url: self.url,
            reason: e.to_string(),
        })
    }

    /// 2xx → `Some(self)`, 404 → `None`, anything else → status error.
    fn found(self) -> Result<Option<Self>, ClientError> {
        match self.status {
            404 => Ok(None),
            _ if self.is_success() => Ok(Some(self)),
            _ => Err(self.into_status_error()),
        }
    }

    /// 2xx → `self`, anything else → status error.
    fn ok(self) -> Result<Self, ClientError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.into_status_error())
        }
    }
}

/// Client for one Tempo (or Tempo-compatible) query endpoint.
///
/// ```no_run
/// # async fn demo() -> Result<(), tempo_api::client::ClientError> {
/// use tempo_api::{client::TempoClient, trace_id::parse_trace_id};
/// let client = TempoClient::new("http://localhost:3200")?.with_tenant(Some("team-a".into()));
/// let id = parse_trace_id("5b8efff798038103d269b633813fc700").expect("valid id");
/// if let Some(batches) = client.trace_v1(&id).await? {
///     println!("{} resource spans", batches.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TempoClient {
    http: reqwest::Client,
    base: Url,
    tenant: Option<String>,
    timeout: Duration,
}

impl TempoClient {
    /// Creates a client for `base_url` (e.g. `http://localhost:3200`, or
    /// with Tempo's `http_api_prefix` as a path, `http://host:3200/tempo`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_string(),
            reason,
        };
        let base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("expected an http:// URL".into()));
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|source| ClientError::Transport {
                url: base_url.to_string(),
                source,
            })?;
        Ok(Self {
            http,
            base,
            tenant: None,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sends `X-Scope-OrgID: <tenant>` on every request (`None` sends none).
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant;
        self
    }

    /// Per-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The tenant sent, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        {
            let Ok(mut path) = url.path_segments_mut() else {
                return Err(ClientError::InvalidUrl {
                    url: self.base.to_string(),
                    reason: "cannot be a base URL".into(),
                });
            };
            path.pop_if_empty().extend(segments);
        }
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    async fn send(&self, url: Url, accept: Option<&str>) -> Result<RawResponse, ClientError> {
        let url_text = url.to_string();
        let transport = |source: reqwest::Error| ClientError::Transport {
            url: url_text.clone(),
            source: source.without_url(),
        };
        let mut req = self.http.get(url.clone()).timeout(self.timeout);
        if let Some(accept) = accept {
            req = req.header(ACCEPT, accept);
        }
        if let Some(tenant) = &self.tenant {
            req = req.header(ORG_ID_HEADER, tenant.as_str());
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport)?;
        Ok(RawResponse {
            url: url_text,
            status,
            headers,
            body,
        })
    }

    /// GET `path_and_query` (e.g. `/api/traces/xyz?start=1`) relative to the
    /// base URL and returns the answer untouched, whatever its status. Only
    /// reqwest's default `Accept: */*` is sent. For checking Tempo's
    /// bad-input answers.
    pub async fn trace_raw(&self, path_and_query: &str) -> Result<RawResponse, ClientError> {
        self.get_raw(path_and_query, None).await
    }

    /// Like [`Self::trace_raw`] with an optional `Accept` header.
    pub async fn get_raw(
        &self,
        path_and_query: &str,
        accept: Option<&str>,
    ) -> Result<RawResponse, ClientError> {
        let text = format!(
            "{}/{}",
            self.base.as_str().trim_end_matches('/'),
            path_and_query.trim_start_matches('/')
        );
        let url = Url::parse(&text).map_err(|e| ClientError::InvalidUrl {
            url: text.clone(),
            reason: e.to_string(),
        })?;
        self.send(url, accept).await
    }

    /// GET a JSON endpoint under the base URL and decode it (2xx required).
    /// `segments` are path segments (percent-encoded as needed).
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = self.url(segments, query)?;
        self.send(url, Some(ACCEPT_JSON)).await?.ok()?.json()
    }

    /// `GET /api/traces/{id}` as JSON. 404 → `None`. A 200 is returned as
    /// is, even with no resource spans.
    pub async fn trace_v1(&self, id: &TraceId) -> Result<Option<Vec<ResourceSpans>>, ClientError> {
        let hex = trace_id_to_hex(id);
        let url = self.url(&["api", "traces", &hex], &[])?;
        let Some(resp) = self.send(url, Some(ACCEPT_JSON)).await?.found()? else {
            return Ok(None);
        };
        let url = resp.url.clone();
        let trace: TraceV1 = resp.json()?;
        trace
            .into_otlp()
            .map(Some)
            .map_err(|e| ClientError::Decode {
                url,
                reason: e.to_string(),
            })
    }

    /// `GET /api/traces/{id}` with `Accept: application/protobuf` (body is
    /// `tempopb.Trace` = OTLP `TracesData`). 404 → `None`.
    pub async fn trace_v1_proto(
        &self,
        id: &TraceId,
    ) -> Result<Option<Vec<ResourceSpans>>, ClientError> {
        let hex = trace_id_to_hex(id);
        let url = self.url(&["api", "traces", &hex], &[])?;
        let Some(resp) = self.send(url, Some(ACCEPT_PROTOBUF)).await?.found()? else {
            return Ok(None);
        };
        Ok(Some(resp.proto::<TracesData>()?.resource_spans))
    }

    /// `GET /api/v2/traces/{id}` as JSON. Tempo answers an unknown trace
    /// with 200 and an empty trace; that, and a 404, map to `None`.
    pub async fn trace_v2(&self, id: &TraceId) -> Result<Option<TraceByIdV2Otlp>, ClientError> {
        let hex = trace_id_to_hex(id);
        let url = self.url(&["api", "v2", "traces", &hex], &[])?;
        let Some(resp) = self.send(url, Some(ACCEPT_JSON)).await?.found()? else {
            return Ok(None);
        };
        let url = resp.url.clone();
        let body: TraceByIdV2Response = resp.json()?;
        if body.trace.is_empty() {
            return Ok(None);
        }
        body.into_otlp().map(Some).map_err(|e| ClientError::Decode {
            url,
            reason: e.to_string(),
        })
    }

    /// `GET /api/v2/traces/{id}` with `Accept: application/protobuf` (body is
    /// `tempopb.TraceByIDResponse`). Empty trace or 404 → `None`.
    pub async fn trace_v2_proto(
        &self,
        id: &TraceId,
    ) -> Result<Option<TraceByIdV2Otlp>, ClientError> {
        let hex = trace_id_to_hex(id);
        let url = self.url(&["api", "v2", "traces", &hex], &[])?;
        let Some(resp) = self.send(url, Some(ACCEPT_PROTOBUF)).await?.found()? else {
            return Ok(None);
        };
        let body: TraceByIdResponseProto = resp.proto()?;
        let resource_spans = body.trace.map(|t| t.resource_spans).unwrap_or_default();
        if resource_spans.is_empty() {
            return Ok(None);
        }
        Ok(Some(TraceByIdV2Otlp {
            resource_spans,
            metrics: TraceByIdMetrics {
                inspected_bytes: body.metrics.map(|m| m.inspected_bytes).unwrap_or(0),
                ..TraceByIdMetrics::default()
            },
            status: (body.status == PARTIAL_STATUS_PARTIAL).then(|| STATUS_PARTIAL.to_string()),
            message: (!body.message.is_empty()).then_some(body.message),
        }))
    }

    /// `GET /api/search`.
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchResponse, ClientError> {
        self.get_json(&["api", "search"], &req.to_query_pairs())
            .await
    }

    /// `GET /api/search/tags`.
    pub async fn search_tags(&self) -> Result<SearchTagsResponse, ClientError> {
        self.search_tags_with(&TagsRequest::default()).await
    }

    /// `GET /api/search/tags` with `scope`, `start`, `end`, `limit`.
    pub async fn search_tags_with(
        &self,
        req: &TagsRequest,
    ) -> Result<SearchTagsResponse, ClientError> {
        self.get_json(&["api", "search", "tags"], &req.to_query_pairs())
            .await
    }

    /// `GET /api/v2/search/tags`.
    pub async fn search_tags_v2(&self) -> Result<SearchTagsV2Response, ClientError> {
        self.search_tags_v2_with(&TagsRequest::default()).await
    }

    /// `GET /api/v2/search/tags` with `scope`, `start`, `end`, `limit`.
    pub async fn search_tags_v2_with(
        &self,
        req: &TagsRequest,
    ) -> Result<SearchTagsV2Response, ClientError> {
        self.get_json(&["api", "v2", "search", "tags"], &req.to_query_pairs())
            .await
    }

    /// `GET /api/search/tag/{tag}/values`.
    pub async fn search_tag_values(
        &self,
        tag: &str,
    ) -> Result<SearchTagValuesResponse, ClientError> {
        self.search_tag_values_with(tag, &TagsRequest::default())
            .await
    }

    /// `GET /api/search/tag/{tag}/values` with `start`, `end`, `limit`.
    pub async fn search_tag_values_with(
        &self,
        tag: &str,
        req: &TagsRequest,
    ) -> Result<SearchTagValuesResponse, ClientError> {
        self.get_json(
            &["api", "search", "tag", tag, "values"],
            &req.to_query_pairs(),
        )
        .await
    }

    /// `GET /api/v2/search/tag/{tag}/values`; `tag` is a TraceQL identifier
    /// such as `resource.service.name` or `.http.method`.
    pub async fn search_tag_values_v2(
        &self,
        tag: &str,
    ) -> Result<SearchTagValuesV2Response, ClientError> {
        self.search_tag_values_v2_with(tag, &TagsRequest::default())
            .await
    }

    /// `GET /api/v2/search/tag/{tag}/values` with `start`, `end`, `limit`.
    pub async fn search_tag_values_v2_with(
        &self,
        tag: &str,
        req: &TagsRequest,
    ) -> Result<SearchTagValuesV2Response, ClientError> {
        self.get_json(
            &["api", "v2", "search", "tag", tag, "values"],
            &req.to_query_pairs(),
        )
        .await
    }

    /// `GET /api/echo`; returns the body (Tempo answers `echo`).
    pub async fn echo(&self) -> Result<String, ClientError> {
        let url = self.url(&["api", "echo"], &[])?;
        Ok(self.send(url, None).await?.ok()?.text())
    }

    /// `GET /ready`: 200 → `true`, 503 → `false`, other → error.
    pub async fn ready(&self) -> Result<bool, ClientError> {
        let url = self.url(&["ready"], &[])?;
        let resp = self.send(url, None).await?;
        match resp.status {
            200 => Ok(true),
            503 => Ok(false),
            _ => Err(resp.into_status_error()),
        }
    }

    /// `GET /api/status/buildinfo`.
    pub async fn buildinfo(&self) -> Result<BuildInfo, ClientError> {
        self.get_json(&["api", "status", "buildinfo"], &[]).await
    }
}
