//! Classification of HTTP answers, gRPC statuses and SDK export errors.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use loadgen::exporter::OutcomeClass as C;
use loadgen::exporter::classify::{
    self, ProtoDuration, RetryInfo, RpcAny, RpcStatus, parse_retry_after,
};
use loadgen::exporter::sdk::classify_sdk_message;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

fn retry_info_status(code: i32, message: &str, secs: i64) -> RpcStatus {
    RpcStatus {
        code,
        message: message.into(),
        details: vec![RpcAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration {
                    seconds: secs,
                    nanos: 0,
                }),
            }
            .encode_to_vec(),
        }],
    }
}

#[test]
fn http_success_and_partial_success() {
    let r = classify::http_response(200, &headers(&[PROTO]), &[], 10);
    assert_eq!((r.class, r.rejected_spans, r.message), (C::Ok, 0, None));
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 3,
            error_message: "3 spans too old".into(),
        }),
    };
    let r = classify::http_response(200, &headers(&[PROTO]), &partial.encode_to_vec(), 10);
    assert_eq!((r.class, r.rejected_spans), (C::Partial, 3));
    assert_eq!(r.message.as_deref(), Some("3 spans too old"));
    // OTLP/JSON: int64 as a string (proto3 JSON) or a number.
    for body in [
        r#"{"partialSuccess":{"rejectedSpans":"4","errorMessage":"bad"}}"#,
        r#"{"partialSuccess":{"rejectedSpans":4,"errorMessage":"bad"}}"#,
    ] {
        let r = classify::http_response(200, &headers(&[JSON]), body.as_bytes(), 10);
        assert_eq!((r.class, r.rejected_spans), (C::Partial, 4), "{body}");
    }
    // Zero rejected with a message is a warning: accepted.
    let warn = r#"{"partialSuccess":{"errorMessage":"slow down"}}"#;
    let r = classify::http_response(202, &headers(&[JSON]), warn.as_bytes(), 10);
    assert_eq!((r.class, r.rejected_spans), (C::Ok, 0));
    assert_eq!(r.message.as_deref(), Some("slow down"));
    assert_eq!(
        classify::http_response(200, &headers(&[JSON]), b"{}", 1).class,
        C::Ok
    );
}

#[test]
fn http_429_carries_retry_after_from_header_or_retry_info() {
    let body = RpcStatus {
        code: 8,
        message: "RATE_LIMITED: ingestion rate limit exceeded".into(),
        details: vec![],
    }
    .encode_to_vec();
    let r = classify::http_response(429, &headers(&[PROTO, ("retry-after", "5")]), &body, 7);
    assert_eq!(r.class, C::RateLimited);
    assert_eq!(r.rejected_spans, 7);
    assert_eq!(r.retry_after, Some(Duration::from_secs(5)));
    assert!(r.message.unwrap().starts_with("RATE_LIMITED"));
    // RetryInfo in the protobuf google.rpc.Status body.
    let body = retry_info_status(8, "slow", 3).encode_to_vec();
    let r = classify::http_response(429, &headers(&[PROTO]), &body, 1);
    assert_eq!(r.retry_after, Some(Duration::from_secs(3)));
    // RetryInfo in the JSON form.
    let json = r#"{"code":8,"message":"slow","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2.5s"}]}"#;
    let r = classify::http_response(429, &headers(&[JSON]), json.as_bytes(), 1);
    assert_eq!(r.retry_after, Some(Duration::from_millis(2500)));
    assert_eq!(r.message.as_deref(), Some("slow"));
    // No hint at all.
    let r = classify::http_response(429, &HeaderMap::new(), b"", 1);
    assert_eq!((r.class, r.retry_after), (C::RateLimited, None));
    assert_eq!(r.message.as_deref(), Some("HTTP 429"));
}

#[test]
fn http_status_codes_map_to_classes() {
    for (status, class) in [
        (413, C::TooLarge),
        (400, C::Invalid),
        (401, C::Invalid),
        (403, C::Invalid),
        (404, C::Invalid),
        (405, C::Invalid),
        (415, C::Invalid),
        (408, C::Timeout),
        (500, C::Unavailable),
        (502, C::Unavailable),
        (503, C::Unavailable),
        (504, C::Unavailable),
    ] {
        let r = classify::http_response(
            status,
            &headers(&[("content-type", "text/plain")]),
            b"nope",
            5,
        );
        assert_eq!(r.class, class, "{status}");
        assert_eq!(r.rejected_spans, 5, "{status}");
        assert_eq!(r.message.as_deref(), Some("nope"), "{status}");
    }
    let r = classify::http_response(503, &headers(&[("retry-after", "1")]), b"", 5);
    assert_eq!(
        (r.class, r.retry_after),
        (C::Unavailable, Some(Duration::from_secs(1)))
    );
    // Messages are cut at 200 characters.
    let long = "x".repeat(1000);
    let r = classify::http_response(400, &HeaderMap::new(), long.as_bytes(), 1);
    assert_eq!(r.message.unwrap().len(), 200);
}

#[test]
fn retry_after_values() {
    assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
    assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(Duration::ZERO)
    );
    // A date in the future (year 2100): about that far away.
    let d = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT").unwrap();
    let expect = Duration::from_secs(4_102_444_800)
        - SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
    assert!(
        d.abs_diff(expect) < Duration::from_secs(5),
        "{d:?} vs {expect:?}"
    );
    assert_eq!(parse_retry_after("soon"), None);
    assert_eq!(parse_retry_after("-1"), None);
    assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT"), None);
}

#[test]
fn grpc_codes_map_to_classes() {
    use tonic::Code;
    for (code, class) in [
        (Code::ResourceExhausted, C::RateLimited),
        (Code::OutOfRange, C::TooLarge),
        (Code::InvalidArgument, C::Invalid),
        (Code::Unauthenticated, C::Invalid),
        (Code::PermissionDenied, C::Invalid),
        (Code::NotFound, C::Invalid),
        (Code::Unimplemented, C::Invalid),
        (Code::FailedPrecondition, C::Invalid),
        (Code::Unavailable, C::Unavailable),
        (Code::Internal, C::Unavailable),
        (Code::Unknown, C::Unavailable),
        (Code::Aborted, C::Unavailable),
        (Code::DataLoss, C::Unavailable),
        (Code::DeadlineExceeded, C::Timeout),
        (Code::Cancelled, C::Timeout),
    ] {
        let r = classify::grpc_status(&tonic::Status::new(code, "m"), 9);
        assert_eq!((r.class, r.rejected_spans), (class, 9), "{code:?}");
        assert_eq!(r.message.as_deref(), Some("m"));
    }
    // tonic's own size errors.
    let s = tonic::Status::new(
        Code::ResourceExhausted,
        "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
    );
    assert_eq!(classify::grpc_status(&s, 1).class, C::TooLarge);
    // Raised locally by the transport (it has a source): not the server's answer.
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let s = tonic::Status::from_error(Box::new(refused));
    assert_eq!(classify::grpc_status(&s, 1).class, C::Transport, "{s:?}");
}

#[test]
fn grpc_retry_after_from_metadata_or_retry_info() {
    let mut s = tonic::Status::resource_exhausted("RATE_LIMITED: slow down");
    s.metadata_mut().insert("retry-after", "4".parse().unwrap());
    let r = classify::grpc_status(&s, 2);
    assert_eq!(r.class, C::RateLimited);
    assert_eq!(r.retry_after, Some(Duration::from_secs(4)));
    let details = retry_info_status(8, "slow", 6).encode_to_vec();
    let s = tonic::Status::with_details(tonic::Code::ResourceExhausted, "slow", details.into());
    assert_eq!(
        classify::grpc_status(&s, 2).retry_after,
        Some(Duration::from_secs(6))
    );
    assert_eq!(classify::retry_info_from_status_details(b"\xff\xff"), None);
}

#[test]
fn partial_success_from_grpc_response() {
    let r = classify::from_partial(None, 4);
    assert_eq!((r.class, r.rejected_spans), (C::Ok, 0));
    let p = ExportTracePartialSuccess {
        rejected_spans: 10,
        error_message: "too many".into(),
    };
    // Never more rejected than sent.
    let r = classify::from_partial(Some(&p), 4);
    assert_eq!((r.class, r.rejected_spans), (C::Partial, 4));
}

#[test]
fn sdk_error_texts() {
    for (msg, class) in [
        ("HTTP export failed with status code: 429", C::RateLimited),
        ("HTTP export failed with status code: 400", C::Invalid),
        ("HTTP export failed with status code: 503", C::Unavailable),
        ("HTTP export failed: network error", C::Transport),
        (
            "TonicTracesClient export failed with gRPC code: ResourceExhausted",
            C::RateLimited,
        ),
        (
            "TonicTracesClient export failed with gRPC code: InvalidArgument",
            C::Invalid,
        ),
        (
            "TonicTracesClient export failed with gRPC code: DeadlineExceeded",
            C::Timeout,
        ),
        (
            "TonicTracesClient export failed with gRPC code: Unavailable",
            C::Unavailable,
        ),
        (
            "TonicTracesClient export failed with gRPC code: Unavailable: tcp connect error: Connection refused",
            C::Transport,
        ),
    ] {
        let r = classify_sdk_message(msg, 3);
        assert_eq!(r.class, class, "{msg}");
        assert_eq!(r.rejected_spans, 3, "{msg}");
    }
}
