//! The counting sink: the protobuf walker, OTLP/HTTP (protobuf, JSON, gzip) and OTLP/gRPC
//! ingest, rejection of malformed bodies, and the stall window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use loadgen::sink::{
    Sink, SinkConfig, SinkCounts, Stall, count_spans, count_spans_json, rate_line,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `resources` × `scopes` × `spans` spans.
fn request(resources: usize, scopes: usize, spans: usize) -> ExportTraceServiceRequest {
    let mut n = 0u64;
    ExportTraceServiceRequest {
        resource_spans: (0..resources)
            .map(|r| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &format!("svc-{r}"))],
                    ..Default::default()
                }),
                scope_spans: (0..scopes)
                    .map(|_| ScopeSpans {
                        spans: (0..spans)
                            .map(|_| {
                                n += 1;
                                Span {
                                    trace_id: [0xab; 16].to_vec(),
                                    span_id: n.to_be_bytes().to_vec(),
                                    name: "op".into(),
                                    kind: span::SpanKind::Server as i32,
                                    start_time_unix_nano: 1_700_000_000_000_000_000 + n,
                                    end_time_unix_nano: 1_700_000_000_100_000_000 + n,
                                    attributes: vec![kv("http.method", "GET")],
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect(),
    }
}

#[test]
fn walker_counts_spans_like_prost() {
    for (r, s, n) in [
        (0, 0, 0),
        (1, 1, 1),
        (1, 1, 100),
        (3, 2, 7),
        (2, 0, 0),
        (1, 3, 0),
    ] {
        let req = request(r, s, n);
        assert_eq!(
            count_spans(&req.encode_to_vec()).unwrap(),
            (r * s * n) as u64
        );
        let json = serde_json::to_vec(&req).unwrap();
        assert_eq!(count_spans_json(&json).unwrap(), (r * s * n) as u64);
    }
    assert_eq!(count_spans(&[]).unwrap(), 0);
}

#[test]
fn walker_rejects_malformed_bodies() {
    let body = request(1, 1, 3).encode_to_vec();
    // Truncated anywhere inside the structure.
    for cut in [1, 2, 5, body.len() / 2, body.len() - 1] {
        assert!(count_spans(&body[..cut]).is_err(), "cut at {cut}");
    }
    // Wire type 3 (group), field number 0, resource_spans as a varint, 11-byte varint.
    assert!(count_spans(&[0x0b]).is_err());
    assert!(count_spans(&[0x00, 0x01]).is_err());
    assert!(count_spans(&[0x08, 0x01]).is_err());
    assert!(
        count_spans(&[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err()
    );
    // A length that runs past the end.
    assert!(count_spans(&[0x0a, 0x05, 0x12, 0x00]).is_err());
    // Unknown fields are skipped.
    let mut ok = body.clone();
    ok.extend_from_slice(&[0x78, 0x01, 0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(count_spans(&ok).unwrap(), 3);
    assert!(count_spans_json(b"{not json").is_err());
}

#[test]
fn rate_line_shows_rates() {
    let a = SinkCounts::default();
    let b = SinkCounts {
        requests: 20,
        spans: 2000,
        bytes: 2_000_000,
        ..Default::default()
    };
    let line = rate_line(a, b, Duration::from_secs(2));
    assert!(line.contains("spans/s") && line.contains("1000"), "{line}");
    assert!(
        line.contains("requests/s") && line.contains("MB/s"),
        "{line}"
    );
}

async fn start(stall: Option<Stall>) -> Sink {
    Sink::start(SinkConfig {
        stall,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_json_and_gzip_are_counted() {
    let sink = start(None).await;
    let url = format!("http://{}/v1/traces", sink.http_addr);
    let http = reqwest::Client::new();
    let req = request(2, 2, 10);
    let proto = req.encode_to_vec();
    let json = serde_json::to_vec(&req).unwrap();
    let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        ("application/x-protobuf", None, proto.clone()),
        ("application/json", None, json.clone()),
        ("application/x-protobuf", Some("gzip"), gzip(&proto)),
        ("application/json", Some("gzip"), gzip(&json)),
    ];
    for (ct, enc, body) in cases {
        let mut r = http.post(&url).header("content-type", ct).body(body);
        if let Some(e) = enc {
            r = r.header("content-encoding", e);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{ct} {enc:?}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ct)
        );
    }
    let c = sink.counts();
    assert_eq!(c.requests, 4);
    assert_eq!(c.spans, 4 * 40);
    assert_eq!(c.bytes, 2 * proto.len() as u64 + 2 * json.len() as u64);
    assert_eq!(c.rejected, 0);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rejects_bad_input() {
    let sink = start(None).await;
    let url = format!("http://{}/v1/traces", sink.http_addr);
    let http = reqwest::Client::new();
    let post = |ct: &'static str, enc: Option<&'static str>, body: Vec<u8>| {
        let mut r = http.post(&url).header("content-type", ct).body(body);
        if let Some(e) = enc {
            r = r.header("content-encoding", e);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        post("application/x-protobuf", None, vec![0x0a, 0x09, 0x12]).await,
        400
    );
    assert_eq!(post("application/json", None, b"[1,2".to_vec()).await, 400);
    assert_eq!(
        post("application/x-protobuf", Some("gzip"), b"not gzip".to_vec()).await,
        400
    );
    assert_eq!(post("text/plain", None, b"x".to_vec()).await, 415);
    assert_eq!(
        post("application/x-protobuf", Some("br"), vec![]).await,
        415
    );
    let c = sink.counts();
    assert_eq!((c.requests, c.spans, c.rejected), (0, 0, 5));
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_is_counted_and_malformed_is_invalid_argument() {
    let sink = start(None).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", sink.grpc_addr))
        .await
        .unwrap();
    for _ in 0..3 {
        let resp = client.export(request(1, 2, 50)).await.unwrap().into_inner();
        assert!(resp.partial_success.is_none());
    }
    let mut gz = client
        .clone()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    gz.export(request(1, 1, 10)).await.unwrap();
    let c = sink.counts();
    assert_eq!((c.requests, c.spans), (4, 310));
    // The gRPC path is on the HTTP listener too (and vice versa).
    let mut other = TraceServiceClient::connect(format!("http://{}", sink.http_addr))
        .await
        .unwrap();
    other.export(request(1, 1, 1)).await.unwrap();
    assert_eq!(sink.counts().spans, 311);
    // A body that is not an ExportTraceServiceRequest: send raw bytes through the
    // loadgen exporter's pass-through path.
    let exporter = loadgen::exporter::grpc::GrpcExporter::connect(&config(sink.grpc_addr))
        .await
        .unwrap();
    use loadgen::exporter::Exporter;
    let r = exporter
        .send(loadgen::exporter::EncodedRequest {
            body: bytes::Bytes::from_static(&[0x0a, 0x7f, 0x01]),
            spans: 1,
        })
        .await;
    assert_eq!(r.class, loadgen::exporter::OutcomeClass::Invalid, "{r:?}");
    assert_eq!(sink.counts().rejected, 1);
    sink.stop().await;
}

fn config(addr: std::net::SocketAddr) -> loadgen::exporter::ExporterConfig {
    loadgen::exporter::ExporterConfig {
        endpoints: vec![format!("http://{addr}")],
        protocol: loadgen::scenario::Protocol::Grpc,
        compression: loadgen::scenario::Compression::None,
        headers: Default::default(),
        tenant: None,
        connections: 1,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_holds_every_request_in_the_window_once() {
    let stall = Stall {
        after_requests: 2,
        duration: Duration::from_secs(1),
        every: None,
    };
    let sink = start(Some(stall)).await;
    let url = format!("http://{}/v1/traces", sink.http_addr);
    let http = reqwest::Client::new();
    let body = request(1, 1, 5).encode_to_vec();
    let send = || {
        http.post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
    };
    // Before the window: not held.
    for _ in 0..2 {
        assert_eq!(send().await.unwrap().status().as_u16(), 200);
    }
    assert_eq!(sink.counts().stalled, 0);
    // The third request opens the window; it and every request arriving inside it wait
    // for the window's end.
    let t0 = Instant::now();
    let (a, b, c) = tokio::join!(send(), send(), send());
    let held = t0.elapsed();
    for r in [a, b, c] {
        assert_eq!(r.unwrap().status().as_u16(), 200);
    }
    assert!(held >= Duration::from_millis(990), "held only {held:?}");
    assert_eq!(sink.counts().stalled, 3);
    // After the window: never held again.
    for _ in 0..3 {
        assert_eq!(send().await.unwrap().status().as_u16(), 200);
    }
    let c = sink.counts();
    assert_eq!((c.stalled, c.requests, c.spans), (3, 8, 40));
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_listener_when_both_addresses_are_the_same() {
    // Pick a free port, then ask for it for both protocols.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let sink = Sink::start(SinkConfig {
        grpc_addr: addr.clone(),
        http_addr: addr,
        stall: None,
    })
    .await
    .unwrap();
    assert_eq!(sink.grpc_addr, sink.http_addr);
    let mut client = TraceServiceClient::connect(format!("http://{}", sink.grpc_addr))
        .await
        .unwrap();
    client.export(request(1, 1, 2)).await.unwrap();
    assert_eq!(sink.counts().spans, 2);
    sink.stop().await;
}
