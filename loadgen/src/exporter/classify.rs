//! Response classification: how an OTLP/HTTP status and body, or an OTLP/gRPC
//! `tonic::Status`, maps to a [`SendResult`].
//!
//! The mapping follows the OTLP specification and how Tempo answers (tempo-facts §2):
//!
//! | HTTP | gRPC | class |
//! |---|---|---|
//! | 2xx, no `partial_success` | OK | [`OutcomeClass::Ok`] |
//! | 2xx with `rejected_spans > 0` | OK with `rejected_spans > 0` | [`OutcomeClass::Partial`] |
//! | 429 | RESOURCE_EXHAUSTED | [`OutcomeClass::RateLimited`] |
//! | 413 | OUT_OF_RANGE, "message length too large" | [`OutcomeClass::TooLarge`] |
//! | 400, 401, 403, 404, 405, 415, other 4xx | INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, UNIMPLEMENTED, FAILED_PRECONDITION, ALREADY_EXISTS | [`OutcomeClass::Invalid`] |
//! | 5xx | UNAVAILABLE, INTERNAL, UNKNOWN, ABORTED, DATA_LOSS | [`OutcomeClass::Unavailable`] |
//! | 408 | DEADLINE_EXCEEDED, CANCELLED | [`OutcomeClass::Timeout`] |
//! | — | a status raised by the client's own transport (connect refused, reset) | [`OutcomeClass::Transport`] |
//!
//! `retry_after` comes from the `Retry-After` header (seconds or an HTTP date), the gRPC
//! `retry-after` metadata, or a `google.rpc.RetryInfo` in the error details (protobuf
//! `grpc-status-details-bin` / HTTP `google.rpc.Status` body, or its JSON form).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::{OutcomeClass, SendResult};

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Details (`google.protobuf.Any`).
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<RpcAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcAny {
    /// Type URL.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// Encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// How long to wait.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    /// Seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

fn truncate(message: &str) -> Option<String> {
    let m = message.trim();
    if m.is_empty() {
        None
    } else {
        Some(m.chars().take(200).collect())
    }
}

/// A result of `class` for a request of `spans` spans: refused classes reject every span.
pub fn result(class: OutcomeClass, spans: u32, message: Option<&str>) -> SendResult {
    SendResult {
        class,
        rejected_spans: if class.accepted() { 0 } else { spans as u64 },
        retry_after: None,
        message: message.and_then(truncate),
    }
}

/// No answer within the timeout.
pub fn timeout(spans: u32, timeout: Duration) -> SendResult {
    result(
        OutcomeClass::Timeout,
        spans,
        Some(&format!("no answer within {timeout:?}")),
    )
}

/// The request could not be delivered (connect refused, reset, protocol error).
pub fn transport(spans: u32, message: &str) -> SendResult {
    result(OutcomeClass::Transport, spans, Some(message))
}

/// A successful answer, with or without OTLP partial success.
pub fn from_partial(partial: Option<&ExportTracePartialSuccess>, spans: u32) -> SendResult {
    match partial {
        Some(p) if p.rejected_spans > 0 => SendResult {
            class: OutcomeClass::Partial,
            rejected_spans: (p.rejected_spans as u64).min(spans as u64),
            retry_after: None,
            message: truncate(&p.error_message),
        },
        // `rejected_spans == 0` with a message is a warning: the request was accepted.
        Some(p) => result(OutcomeClass::Ok, spans, Some(&p.error_message)),
        None => result(OutcomeClass::Ok, spans, None),
    }
}

/// Class of an HTTP status code that is not a success.
pub fn http_status_class(status: u16) -> OutcomeClass {
    match status {
        200..=299 => OutcomeClass::Ok,
        429 => OutcomeClass::RateLimited,
        413 => OutcomeClass::TooLarge,
        408 => OutcomeClass::Timeout,
        500..=599 => OutcomeClass::Unavailable,
        _ => OutcomeClass::Invalid,
    }
}

/// Class of a gRPC status code sent by the server.
pub fn grpc_code_class(code: tonic::Code) -> OutcomeClass {
    use tonic::Code;
    match code {
        Code::Ok => OutcomeClass::Ok,
        Code::ResourceExhausted => OutcomeClass::RateLimited,
        Code::OutOfRange => OutcomeClass::TooLarge,
        Code::DeadlineExceeded | Code::Cancelled => OutcomeClass::Timeout,
        Code::Unavailable | Code::Internal | Code::Unknown | Code::Aborted | Code::DataLoss => {
            OutcomeClass::Unavailable
        }
        Code::InvalidArgument
        | Code::Unauthenticated
        | Code::PermissionDenied
        | Code::NotFound
        | Code::Unimplemented
        | Code::FailedPrecondition
        | Code::AlreadyExists => OutcomeClass::Invalid,
    }
}

fn is_too_large_message(message: &str) -> bool {
    message.contains("message length too large")
}

/// Classify a gRPC error status.
///
/// A status that tonic raised locally from a transport error (it carries a `source`)
/// is [`OutcomeClass::Transport`] unless it is a timeout or cancellation.
pub fn grpc_status(status: &tonic::Status, spans: u32) -> SendResult {
    let code = status.code();
    let mut class = grpc_code_class(code);
    if is_too_large_message(status.message()) {
        class = OutcomeClass::TooLarge;
    } else if std::error::Error::source(status).is_some()
        && matches!(class, OutcomeClass::Unavailable)
    {
        class = OutcomeClass::Transport;
    }
    let mut message = status.message().to_owned();
    if message.is_empty() {
        message = format!("{code:?}");
    }
    let mut r = result(class, spans, Some(&message));
    r.retry_after = status
        .metadata()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
        .or_else(|| retry_info_from_status_details(status.details()));
    r
}

/// Classify an OTLP/HTTP answer: status, headers and body (protobuf or JSON, chosen by the
/// response's `Content-Type`).
pub fn http_response(status: u16, headers: &HeaderMap, body: &[u8], spans: u32) -> SendResult {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    if (200..300).contains(&status) {
        return if json {
            from_partial(json_partial(body).as_ref(), spans)
        } else {
            let resp = ExportTraceServiceResponse::decode(body).unwrap_or_default();
            from_partial(resp.partial_success.as_ref(), spans)
        };
    }
    let class = http_status_class(status);
    let (message, info_delay) = if json {
        json_status(body)
    } else {
        match RpcStatus::decode(body) {
            Ok(s) if !s.message.is_empty() || s.code != 0 => {
                (Some(s.message.clone()), retry_info_from_rpc_status(&s))
            }
            // Not a google.rpc.Status (text bytes may parse as unknown fields): show the
            // body when it is text.
            _ => (std::str::from_utf8(body).ok().map(str::to_owned), None),
        }
    };
    let message = message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let mut r = result(class, spans, Some(&message));
    r.retry_after = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
        .or(info_delay);
    r
}

fn json_number(v: &serde_json::Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// `partialSuccess` of an OTLP/JSON response (int64 as number or string).
fn json_partial(body: &[u8]) -> Option<ExportTracePartialSuccess> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let p = v
        .get("partialSuccess")
        .or_else(|| v.get("partial_success"))?;
    Some(ExportTracePartialSuccess {
        rejected_spans: p
            .get("rejectedSpans")
            .or_else(|| p.get("rejected_spans"))
            .and_then(json_number)
            .unwrap_or(0),
        error_message: p
            .get("errorMessage")
            .or_else(|| p.get("error_message"))
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_owned(),
    })
}

/// Message and RetryInfo delay of a JSON `google.rpc.Status`.
fn json_status(body: &[u8]) -> (Option<String>, Option<Duration>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (std::str::from_utf8(body).ok().map(str::to_owned), None);
    };
    let message = v.get("message").and_then(|m| m.as_str()).map(str::to_owned);
    let delay = v
        .get("details")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
        .filter(|d| d.get("@type").and_then(|t| t.as_str()) == Some(RETRY_INFO_TYPE))
        .find_map(|d| {
            d.get("retryDelay")
                .or_else(|| d.get("retry_delay"))
                .and_then(|r| r.as_str())
                .and_then(parse_json_duration)
        });
    (message, delay)
}

/// `"1.5s"` (protobuf JSON Duration).
fn parse_json_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn retry_info_from_rpc_status(status: &RpcStatus) -> Option<Duration> {
    status
        .details
        .iter()
        .filter(|a| a.type_url == RETRY_INFO_TYPE)
        .find_map(|a| RetryInfo::decode(a.value.as_slice()).ok())
        .and_then(|info| info.retry_delay)
        .filter(|d| d.seconds >= 0 && d.nanos >= 0)
        .map(|d| Duration::new(d.seconds as u64, d.nanos as u32))
}

/// The `google.rpc.RetryInfo` delay inside encoded `google.rpc.Status` details
/// (`grpc-status-details-bin`), if any.
pub fn retry_info_from_status_details(details: &[u8]) -> Option<Duration> {
    if details.is_empty() {
        return None;
    }
    RpcStatus::decode(details)
        .ok()
        .as_ref()
        .and_then(retry_info_from_rpc_status)
}

/// Parse a `Retry-After` value: delay seconds (`"5"`, also `"1.5"`) or an IMF-fixdate
/// (`"Sun, 06 Nov 1994 08:49:37 GMT"`, turned into the delay from now, zero if past).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(v)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// IMF-fixdate (RFC 9110 §5.6.7), the only HTTP date format senders may generate.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = s.split_once(", ")?.1;
    let mut parts = rest.split_ascii_whitespace();
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}
