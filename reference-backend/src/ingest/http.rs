//! OTLP/HTTP receiver: `POST /v1/traces` with protobuf or JSON bodies, optionally gzip.
//!
//! Errors answer with the OTLP/HTTP status codes (400, 401, 413, 415, 429, 503) and a
//! `google.rpc.Status` body (protobuf or JSON, matching the request) whose message names
//! the problem; 429 and 503 carry `Retry-After`.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::{Payload, PushOutcome};
use crate::error::Error;
use crate::state::AppState;

/// Router of the OTLP/HTTP listener.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// How an OTLP/HTTP body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf` (or `application/protobuf`).
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

/// The body format named by `Content-Type` (parameters ignored), or 415's error.
pub fn format_of(headers: &HeaderMap) -> Result<Format, Error> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(Error::UnsupportedMediaType(ct.to_owned())),
    }
}

async fn export(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let format = match format_of(&headers) {
        Ok(f) => f,
        Err(e) => {
            state.metrics.reject(e.discard_reason(), "", 0);
            return error_response(Format::Protobuf, &e);
        }
    };
    match handle(&state, &headers, body, format).await {
        Ok(outcome) => ok_response(format, outcome),
        Err(e) => error_response(format, &e),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    format: Format,
) -> Result<PushOutcome, Error> {
    let protocol = &state.config.distributor.receivers.otlp.protocols.http;
    let max_wire = protocol.max_request_bytes.as_u64();
    let max_plain = protocol.max_decompressed_bytes.as_u64();
    let tenant = crate::tenant::resolve_for(
        &state.config,
        headers
            .get(tempo_api::tenant::ORG_ID_HEADER)
            .map(HeaderValue::as_bytes),
    )
    .inspect_err(|e| state.metrics.reject(e.discard_reason(), "", 0))?;
    let result = async {
        let gzip = match headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => false,
            Some(v) if v.is_empty() || v == "identity" => false,
            Some(v) if v == "gzip" => true,
            Some(v) => return Err(Error::UnsupportedEncoding(v)),
        };
        if let Some(len) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > max_wire
        {
            return Err(Error::PayloadTooLarge {
                what: "request body",
                size: len,
                limit: max_wire,
            });
        }
        let wire = axum::body::to_bytes(body, max_wire as usize)
            .await
            .map_err(|e| too_large_or_bad(e, max_wire))?;
        let plain = if gzip {
            tokio::task::spawn_blocking(move || gunzip(&wire, max_plain))
                .await
                .map_err(|e| Error::Internal(format!("gzip task: {e}")))??
        } else {
            if wire.len() as u64 > max_plain {
                return Err(Error::PayloadTooLarge {
                    what: "decompressed body",
                    size: wire.len() as u64,
                    limit: max_plain,
                });
            }
            wire
        };
        let payload = match format {
            Format::Protobuf => Payload::Protobuf(plain),
            Format::Json => Payload::Json(plain),
        };
        state.core()?.ingester.push(&tenant, payload).await
    }
    .await;
    if let Err(e) = &result {
        // Errors raised inside `push` are counted there; count the transport-level ones.
        if matches!(
            e,
            Error::PayloadTooLarge { .. } | Error::UnsupportedEncoding(_) | Error::NotReady(_)
        ) || matches!(e, Error::InvalidArgument(m) if m.starts_with("cannot read") || m.starts_with("invalid gzip"))
        {
            state.metrics.reject(e.discard_reason(), &tenant, 0);
        }
    }
    result
}

fn too_large_or_bad(e: axum::Error, limit: u64) -> Error {
    let is_limit = std::error::Error::source(&e)
        .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        || e.to_string().contains("length limit");
    if is_limit {
        Error::PayloadTooLarge {
            what: "request body",
            size: limit + 1,
            limit,
        }
    } else {
        Error::InvalidArgument(format!("cannot read request body: {e}"))
    }
}

/// Decompress a gzip body, refusing (413) once it passes `limit` bytes: at most
/// `limit + 1` bytes are ever inflated. Concatenated gzip members are read as one body,
/// as Go's `gzip.Reader` (Tempo's receiver) reads them; bytes after the last member that
/// are not a gzip member are an error, not silently dropped.
pub fn gunzip(wire: &[u8], limit: u64) -> Result<Bytes, Error> {
    let guess = (wire.len() as u64)
        .saturating_mul(4)
        .min(limit.saturating_add(1));
    let mut out = Vec::with_capacity(usize::try_from(guess).unwrap_or(0));
    let mut reader = flate2::read::MultiGzDecoder::new(wire).take(limit.saturating_add(1));
    reader
        .read_to_end(&mut out)
        .map_err(|e| Error::InvalidArgument(format!("invalid gzip body: {e}")))?;
    if out.len() as u64 > limit {
        return Err(Error::PayloadTooLarge {
            what: "decompressed body",
            size: out.len() as u64,
            limit,
        });
    }
    Ok(Bytes::from(out))
}

fn ok_response(format: Format, outcome: PushOutcome) -> Response {
    let partial = (outcome.rejected_spans > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: outcome.rejected_spans as i64,
        error_message: outcome.message.clone(),
    });
    let resp = ExportTraceServiceResponse {
        partial_success: partial,
    };
    match format {
        Format::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            resp.encode_to_vec(),
        )
            .into_response(),
        Format::Json => {
            // OTLP/JSON omits unset fields: a full success is `{}`.
            let body = match &resp.partial_success {
                None => b"{}".to_vec(),
                Some(_) => serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
            };
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

/// `google.rpc.Status { code = 1; message = 2; }`, encoded by hand (no extra proto crate).
fn rpc_status(code: i32, message: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    if code != 0 {
        prost::encoding::int32::encode(1, &code, &mut buf);
    }
    prost::encoding::string::encode(2, &message.to_owned(), &mut buf);
    buf
}

fn error_response(format: Format, e: &Error) -> Response {
    let status: StatusCode = e.http_status();
    let code = e.grpc_code() as i32;
    let message = e.to_string();
    let mut resp = match format {
        Format::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            rpc_status(code, &message),
        )
            .into_response(),
        Format::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "code": code, "message": message }).to_string(),
        )
            .into_response(),
    };
    if let Some(v) = e.retry_after_header() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;

    use super::*;

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn concatenated_members_are_one_body() {
        let mut two = gzip(b"first ");
        two.extend_from_slice(&gzip(b"second"));
        assert_eq!(gunzip(&two, 100).unwrap().as_ref(), b"first second");
        two.extend_from_slice(b"trailing garbage");
        let e = gunzip(&two, 100).unwrap_err().to_string();
        assert!(e.starts_with("invalid gzip body"), "{e}");
    }

    #[test]
    fn inflating_stops_past_the_limit() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        match gunzip(&bomb, 1000) {
            Err(Error::PayloadTooLarge { size, limit, .. }) => {
                assert_eq!((size, limit), (1001, 1000))
            }
            other => panic!("{other:?}"),
        }
    }
}
