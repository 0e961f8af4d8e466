//! Every bad-input path answers the right status with a message naming the problem, and
//! nothing accepted before it is lost. Also tenancy: isolation and tenant-ID rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use common::{client, config, post_proto, request, start, trace_id};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

async fn post_raw(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let mut r = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry,
        String::from_utf8_lossy(&resp.bytes().await.unwrap()).into_owned(),
    )
}

/// (what, headers, body, expected status, expected message part)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_input_is_refused_with_clear_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.distributor
        .receivers
        .otlp
        .protocols
        .http
        .max_request_bytes = bytesize::ByteSize::kib(64);
    cfg.distributor
        .receivers
        .otlp
        .protocols
        .http
        .max_decompressed_bytes = bytesize::ByteSize::kib(256);
    let b = start(cfg).await;
    let url = format!("http://{}/v1/traces", b.addrs.otlp_http);
    // Something accepted first.
    assert_eq!(post_proto(&b, None, &request("svc", 1, 1, 2)).await.0, 200);

    let proto = [("content-type", "application/x-protobuf")];
    let cases: Vec<Case<'_>> = vec![
        (
            "wrong content type",
            vec![("content-type", "text/plain")],
            b"x".to_vec(),
            415,
            "unsupported content type",
        ),
        (
            "undecodable protobuf",
            proto.to_vec(),
            vec![0xff; 10],
            400,
            "cannot decode OTLP protobuf",
        ),
        (
            "undecodable json",
            vec![("content-type", "application/json")],
            b"{".to_vec(),
            400,
            "cannot decode OTLP JSON",
        ),
        (
            "bad gzip",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            b"nope".to_vec(),
            400,
            "invalid gzip",
        ),
        (
            "unknown encoding",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "br"),
            ],
            b"x".to_vec(),
            415,
            "unsupported content encoding",
        ),
        (
            "body over the cap",
            proto.to_vec(),
            vec![0; 65 * 1024],
            413,
            "exceeds the limit",
        ),
        (
            "gzip bomb over the decompressed cap",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            gzip(&vec![0; 300 * 1024]),
            413,
            "decompressed body",
        ),
    ];
    for (what, headers, body, status, msg) in cases {
        let (s, _, text) = post_raw(&url, &headers, body).await;
        assert_eq!(s, status, "{what}: {text}");
        assert!(
            text.contains(msg),
            "{what}: {text:?} should contain {msg:?}"
        );
    }

    let mut bad_trace = request("svc", 2, 1, 1);
    bad_trace.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 8];
    let (s, _, body) = post_proto(&b, None, &bad_trace).await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("trace ids must be 128 bit, received 64 bits"));
    let mut zero_span = request("svc", 3, 1, 1);
    zero_span.resource_spans[0].scope_spans[0].spans[0].span_id = vec![0; 8];
    let (s, _, body) = post_proto(&b, None, &zero_span).await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("span ids must be 64 bit and not all zero"));

    // JSON with hex ids (OTLP/JSON) and gzip are accepted.
    let json = serde_json::to_vec(&request("svc", 4, 1, 1)).unwrap();
    let (s, _, text) = post_raw(&url, &[("content-type", "application/json")], json).await;
    assert_eq!(s, 200, "{text}");
    let gz = gzip(&request("svc", 5, 1, 1).encode_to_vec());
    let (s, _, _) = post_raw(
        &url,
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        gz,
    )
    .await;
    assert_eq!(s, 200);

    let c = client(&b);
    for t in [1, 4, 5] {
        assert!(
            c.trace_v1(&trace_id(t)).await.unwrap().is_some(),
            "trace {t}"
        );
    }
    for t in [2, 3] {
        assert!(
            c.trace_v1(&trace_id(t)).await.unwrap().is_none(),
            "trace {t}"
        );
    }
    let metrics = reqwest::get(format!("http://{}/metrics", b.addrs.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "tempo_discarded_spans_total{reason=\"invalid_trace_id\",tenant=\"single-tenant\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "tempo_discarded_spans_total{reason=\"invalid_span_id\",tenant=\"single-tenant\"} 1"
    ));
    assert!(metrics.contains("tempo_distributor_spans_received_total{tenant=\"single-tenant\"} 4"));
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_bad_ids_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(config(dir.path())).await;
    assert_eq!(post_proto(&b, None, &request("svc", 9, 1, 1)).await.0, 200);
    let c = client(&b);
    let r = c.trace_raw("/api/traces/xyz").await.unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("trace IDs can only contain hex characters"),
        "{}",
        r.text()
    );
    let r = c
        .trace_raw(&format!("/api/traces/{}", "f".repeat(33)))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("can't be larger than 128 bits"));
    let r = c.trace_raw("/api/traces/123").await.unwrap();
    assert_eq!((r.status, r.body.len()), (404, 0));
    let r = c.trace_raw("/api/v2/traces/123").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"trace":{},"metrics":{}}"#);
    let id = tempo_api::trace_id::trace_id_to_hex(&trace_id(9));
    let r = c
        .trace_raw(&format!("/api/traces/{id}?start=20&end=10"))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("start must be before end"));
    // Upper-case ids work; bounds that cover the data find it.
    let r = c
        .trace_raw(&format!(
            "/api/traces/{}?start=1&end=4000000000",
            id.to_uppercase()
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.multitenancy_enabled = true;
    let b = start(cfg).await;
    assert_eq!(
        post_proto(&b, Some("team-a"), &request("a", 1, 1, 1))
            .await
            .0,
        200
    );
    assert_eq!(
        post_proto(&b, Some("team-b"), &request("b", 2, 1, 1))
            .await
            .0,
        200
    );
    let (s, _, body) = post_proto(&b, None, &request("x", 3, 1, 1)).await;
    assert_eq!(s, 401);
    assert!(String::from_utf8_lossy(&body).contains("no org id"));
    let long = "a".repeat(151);
    for bad in ["..", "a/b", long.as_str()] {
        let (s, _, body) = post_proto(&b, Some(bad), &request("x", 3, 1, 1)).await;
        assert_eq!(s, 400, "{bad}");
        assert!(
            String::from_utf8_lossy(&body).contains("tenant ID"),
            "{bad}"
        );
    }
    let base = common::client(&b);
    let a = base.clone().with_tenant(Some("team-a".into()));
    let bb = base.clone().with_tenant(Some("team-b".into()));
    assert!(a.trace_v1(&trace_id(1)).await.unwrap().is_some());
    assert!(a.trace_v1(&trace_id(2)).await.unwrap().is_none());
    assert!(bb.trace_v1(&trace_id(2)).await.unwrap().is_some());
    assert!(bb.trace_v1(&trace_id(1)).await.unwrap().is_none());
    // Still isolated once in blocks.
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(a.trace_v1(&trace_id(2)).await.unwrap().is_none());
    assert!(bb.trace_v1(&trace_id(2)).await.unwrap().is_some());
    let r = base.trace_raw("/api/traces/1").await.unwrap();
    assert_eq!(r.status, 401);
    assert!(dir.path().join("blocks/team-a").is_dir());
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_statuses_rate_limit_and_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.multitenancy_enabled = true;
    cfg.overrides.defaults.ingestion.rate_limit_bytes = bytesize::ByteSize::b(1000);
    cfg.overrides.defaults.ingestion.burst_size_bytes = bytesize::ByteSize::kib(8);
    cfg.overrides.defaults.global.max_bytes_per_trace = bytesize::ByteSize::b(400);
    let b = start(cfg).await;
    let mut grpc = TraceServiceClient::connect(format!("http://{}", b.addrs.otlp_grpc))
        .await
        .unwrap();
    let with_tenant = |req, t: &str| {
        let mut r = tonic::Request::new(req);
        r.metadata_mut().insert("x-scope-orgid", t.parse().unwrap());
        r
    };
    let e = grpc.export(request("a", 1, 1, 1)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let mut bad = request("a", 1, 1, 1);
    bad.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![];
    let e = grpc.export(with_tenant(bad, "t")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .contains("trace ids must be 128 bit, received 0 bits")
    );
    // A trace that would pass max_bytes_per_trace is partially refused, in partial_success.
    let ok: ExportTraceServiceResponse = grpc
        .export(with_tenant(request("a", 5, 1, 1), "t"))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.partial_success.is_none());
    let partial = grpc
        .export(with_tenant(request("a", 6, 1, 20), "t"))
        .await
        .unwrap()
        .into_inner();
    let p = partial.partial_success.expect("partial success");
    assert_eq!(p.rejected_spans, 20);
    assert!(p.error_message.contains("max_bytes_per_trace"));
    // Burn the burst: RESOURCE_EXHAUSTED with retry-after.
    let mut limited = None;
    for i in 0..100 {
        match grpc
            .export(with_tenant(request("a", 100 + i, 10, 1), "t"))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                limited = Some(e);
                break;
            }
        }
    }
    let e = limited.expect("rate limited");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().starts_with("RATE_LIMITED"));
    assert!(e.metadata().get("retry-after").is_some());
    // Another tenant is not limited; HTTP answers 429 with Retry-After for the first.
    assert!(
        grpc.export(with_tenant(request("a", 900, 1, 1), "other"))
            .await
            .is_ok()
    );
    let (s, retry, _) = post_proto(&b, Some("t"), &request("a", 901, 10, 1)).await;
    assert_eq!(s, 429);
    assert!(retry.is_some());
    let c = common::client(&b).with_tenant(Some("t".into()));
    assert!(c.trace_v1(&trace_id(5)).await.unwrap().is_some());
    b.shutdown().await.unwrap();
}
