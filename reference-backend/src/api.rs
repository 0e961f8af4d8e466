//! The Tempo HTTP query API and operational endpoints.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/traces/{id}` | v1: `{"batches":[…]}` (base64 ids) or protobuf `TracesData` with `Accept: application/protobuf`; 404 with empty body when unknown; 400 for a malformed id |
//! | `GET /api/v2/traces/{id}` | v2: `{"trace":{"resourceSpans":[…]},"metrics":{…}}`; unknown → 200 `{"trace":{},"metrics":{}}` as Tempo answers |
//! | `GET /api/echo` | `echo` |
//! | `GET /ready` | 200 `ready`, or 503 with the reason (WAL replay, shutdown) |
//! | `GET /api/status/buildinfo` | Tempo's buildinfo fields |
//! | `GET /status/config` | the running config as YAML, secrets redacted |
//! | `GET /metrics` | Prometheus text |
//! | `GET|POST /flush` | cut and write every in-memory trace; 204 when done |
//! | `GET /api/search`, `/api/search/tags`, `/api/v2/search/tags`, `/api/search/tag/{tag}/values`, `/api/v2/search/tag/{tag}/values` | see `search::http` |

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use tempo_api::trace_id::parse_trace_id;

use crate::error::Error;
use crate::query::TimeBounds;
use crate::state::AppState;

/// Version reported by `/api/status/buildinfo`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Router of the query listener.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/echo", get(|| async { "echo" }))
        .route("/ready", get(ready))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/status/config", get(status_config))
        .route("/metrics", get(metrics))
        .route("/flush", get(flush).post(flush))
        .merge(crate::search::http::routes())
        .with_state(state)
}

/// The plain-text error answer (status from [`Error::http_status`], `Retry-After` when set).
pub(crate) fn error_response(e: &Error) -> Response {
    let mut resp = (e.http_status(), format!("{e}\n")).into_response();
    if let Some(v) = e.retry_after_header() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf"))
}

/// Parse `start`/`end` (unix seconds), Tempo's way.
fn bounds(params: &HashMap<String, String>) -> Result<TimeBounds, Error> {
    let parse = |k: &str| -> Result<Option<u64>, Error> {
        match params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                Error::InvalidArgument(format!("invalid {k}: {v:?} is not a unix epoch in seconds"))
            }),
        }
    };
    let (start, end) = (parse("start")?, parse("end")?);
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(Error::InvalidArgument(format!(
            "http parameter start must be before end. received start={s} end={e}"
        )));
    }
    Ok(TimeBounds { start, end })
}

/// The tenants a read covers, as every query route resolves them: one, or several with
/// `X-Scope-OrgID: a|b` (multitenancy on), whose data is read and merged.
pub(crate) fn tenants_of(state: &AppState, headers: &HeaderMap) -> Result<Vec<String>, Error> {
    crate::tenant::resolve_reads_for(
        &state.config,
        headers
            .get(tempo_api::tenant::ORG_ID_HEADER)
            .map(HeaderValue::as_bytes),
    )
}

async fn lookup(
    state: &AppState,
    raw_id: &str,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Option<crate::query::FoundTrace>, Error> {
    let id = parse_trace_id(raw_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let bounds = bounds(params)?;
    let tenants = tenants_of(state, headers)?;
    let found = state
        .core()?
        .querier
        .find_trace_in(&tenants, &id, bounds)
        .await?;
    Ok(found)
}

async fn trace_v1(
    State(state): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let resp = match lookup(&state, &raw_id, &headers, &params).await {
        Err(e) => error_response(&e),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Ok(Some(t)) => {
            if wants_protobuf(&headers) {
                let body = TracesData {
                    resource_spans: t.resource_spans,
                }
                .encode_to_vec();
                ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response()
            } else {
                json(&tempo_api::trace_json::trace_v1_json(&t.resource_spans))
            }
        }
    };
    state.metrics.query(
        "trace_by_id_v1",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

async fn trace_v2(
    State(state): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let resp = match lookup(&state, &raw_id, &headers, &params).await {
        Err(e) => error_response(&e),
        Ok(found) => {
            let (spans, inspected) = found
                .map(|t| (t.resource_spans, t.inspected_bytes))
                .unwrap_or_default();
            if wants_protobuf(&headers) {
                let body = tempo_api::proto::TraceByIdResponseProto {
                    trace: (!spans.is_empty()).then_some(TracesData {
                        resource_spans: spans,
                    }),
                    metrics: Some(tempo_api::proto::TraceByIdMetricsProto {
                        inspected_bytes: inspected,
                    }),
                    status: tempo_api::proto::PARTIAL_STATUS_COMPLETE,
                    message: String::new(),
                }
                .encode_to_vec();
                ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response()
            } else {
                json(&tempo_api::trace_json::trace_by_id_v2_json(
                    &spans, inspected,
                ))
            }
        }
    };
    state.metrics.query(
        "trace_by_id_v2",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// A JSON answer.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(&Error::Internal(format!("encode json: {e}"))),
    }
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.not_ready_reason() {
        None => "ready\n".into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn buildinfo() -> Response {
    json(&tempo_api::buildinfo::BuildInfo {
        version: format!("reference-backend-{VERSION}"),
        revision: option_env!("TRACEBENCH_REVISION")
            .unwrap_or("unknown")
            .into(),
        branch: String::new(),
        build_date: String::new(),
        build_user: String::new(),
        go_version: String::new(),
    })
}

async fn status_config(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/yaml")],
        state.config.to_yaml(),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(core) = state.core() {
        for format in ["rb1", "rb2"] {
            state
                .metrics
                .blocks
                .get_or_create(&crate::metrics::FormatLabel {
                    format: format.into(),
                })
                .set(0);
        }
        for (format, n) in core.querier.blocks().count_by_format() {
            state
                .metrics
                .blocks
                .get_or_create(&crate::metrics::FormatLabel { format })
                .set(n);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn flush(State(state): State<Arc<AppState>>) -> Response {
    let core = match state.core() {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let wait = state.config.ingester.flush_wait_timeout.get();
    match core.flusher.flush_all(wait).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}
