//! The SDK driver: exact ids and fields through `opentelemetry_sdk` into the reference
//! backend, export observations, and the batch processor's silent drops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgen::exporter::sdk::{ExportCallback, ExportObservation, SdkBatchConfig, SdkDriver};
use loadgen::exporter::{ExporterConfig, OutcomeClass};
use loadgen::scenario::{Compression, Protocol};
use loadgen::sink::{Sink, SinkConfig, Stall};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, any_value,
};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{Status, status::StatusCode};
use parking_lot::Mutex;

use super::*;

type Seen = Arc<Mutex<Vec<ExportObservation>>>;

fn recorder() -> (Seen, ExportCallback) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    (seen, Arc::new(move |o| s.lock().push(o)))
}

fn batch() -> SdkBatchConfig {
    SdkBatchConfig {
        max_export_batch_size: 64,
        scheduled_delay: Duration::from_millis(50),
        max_queue_size: 4096,
        retries: false,
    }
}

const T: u64 = 1_700_000_000_000_000_000;

fn span(trace: u64, id: u8, parent: Option<u8>, name: &str, kind: SpanKind) -> Span {
    let sid = |n: u8| vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, trace as u8, n];
    Span {
        trace_id: trace_id(trace).to_vec(),
        span_id: sid(id),
        parent_span_id: parent.map(sid).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: T + u64::from(id) * 1_000_123,
        end_time_unix_nano: T + u64::from(id) * 1_000_123 + 777_001,
        ..Default::default()
    }
}

fn scope(spans: Vec<Span>) -> ScopeSpans {
    ScopeSpans {
        scope: Some(InstrumentationScope {
            name: "loadgen-test".into(),
            version: "1.2.3".into(),
            ..Default::default()
        }),
        spans,
        ..Default::default()
    }
}

fn resource(svc: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kvs("service.name", svc),
                kvs("deployment.environment", "test"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![scope(spans)],
        ..Default::default()
    }
}

/// Two services, one trace across both, with every field the SDK can carry.
fn workload(trace: u64) -> Vec<ResourceSpans> {
    use any_value::Value as V;
    let mut root = span(trace, 1, None, "GET /checkout", SpanKind::Server);
    root.attributes = vec![
        kvs("http.method", "GET"),
        kv("http.status_code", V::IntValue(200)),
        kv("sample.ratio", V::DoubleValue(0.25)),
        kv("cache.hit", V::BoolValue(true)),
        kv(
            "tags",
            V::ArrayValue(ArrayValue {
                values: ["a", "b"]
                    .map(|s| AnyValue {
                        value: Some(V::StringValue(s.into())),
                    })
                    .to_vec(),
            }),
        ),
    ];
    root.events = vec![Event {
        time_unix_nano: T + 5_000,
        name: "handling request".into(),
        attributes: vec![kvs("http.route", "/checkout")],
        ..Default::default()
    }];
    root.status = Some(Status {
        message: String::new(),
        code: StatusCode::Ok as i32,
    });
    let mut client = span(trace, 2, Some(1), "call payments", SpanKind::Client);
    client.links = vec![Link {
        trace_id: trace_id(trace + 1000).to_vec(),
        span_id: vec![9, 9, 9, 9, 9, 9, 9, 9],
        attributes: vec![kvs("link.kind", "follows")],
        ..Default::default()
    }];
    client.status = Some(Status {
        message: "boom".into(),
        code: StatusCode::Error as i32,
    });
    let server = span(trace, 3, Some(2), "charge", SpanKind::Server);
    let consumer = span(trace, 4, Some(3), "consume", SpanKind::Consumer);
    vec![
        resource("checkout", vec![root, client]),
        resource("payments", vec![server, consumer]),
    ]
}

fn sorted_attrs(a: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<String> {
    let mut v: Vec<String> = a
        .iter()
        .map(|kv| format!("{}={:?}", kv.key, kv.value))
        .collect();
    v.sort();
    v
}

fn assert_same(expected: &Span, got: &Span) {
    let n = &expected.name;
    assert_eq!(got.trace_id, expected.trace_id, "{n}");
    assert_eq!(got.span_id, expected.span_id, "{n}");
    assert_eq!(got.parent_span_id, expected.parent_span_id, "{n}");
    assert_eq!(got.name, expected.name);
    assert_eq!(got.kind, expected.kind, "{n}");
    assert_eq!(
        got.start_time_unix_nano, expected.start_time_unix_nano,
        "{n}"
    );
    assert_eq!(got.end_time_unix_nano, expected.end_time_unix_nano, "{n}");
    assert_eq!(
        sorted_attrs(&got.attributes),
        sorted_attrs(&expected.attributes),
        "{n}"
    );
    assert_eq!(got.events.len(), expected.events.len(), "{n}");
    for (g, e) in got.events.iter().zip(&expected.events) {
        assert_eq!((g.time_unix_nano, &g.name), (e.time_unix_nano, &e.name));
        assert_eq!(sorted_attrs(&g.attributes), sorted_attrs(&e.attributes));
    }
    assert_eq!(got.links.len(), expected.links.len(), "{n}");
    for (g, e) in got.links.iter().zip(&expected.links) {
        assert_eq!((&g.trace_id, &g.span_id), (&e.trace_id, &e.span_id));
        assert_eq!(sorted_attrs(&g.attributes), sorted_attrs(&e.attributes));
    }
    let code = |s: &Option<Status>| s.as_ref().map_or(0, |s| s.code);
    let msg = |s: &Option<Status>| s.as_ref().map_or(String::new(), |s| s.message.clone());
    assert_eq!(code(&got.status), code(&expected.status), "{n}");
    assert_eq!(msg(&got.status), msg(&expected.status), "{n}");
}

async fn exact_spans_through(protocol: Protocol) {
    let dir = tempfile::tempdir().unwrap();
    let b = start_backend(backend_config(dir.path(), "multitenancy_enabled: true\n")).await;
    let addr = match protocol {
        Protocol::Grpc => b.addrs.otlp_grpc,
        _ => b.addrs.otlp_http,
    };
    let mut cfg = exporter_config(&[addr], protocol, false);
    cfg.tenant = Some("sdk".into());
    let (seen, on_export) = recorder();
    let driver = SdkDriver::new(&cfg, batch(), on_export).unwrap();
    let work: Vec<ResourceSpans> = (1..=3).flat_map(workload).collect();
    assert_eq!(driver.emit(&work).unwrap(), 12);
    driver.flush().await.unwrap();
    let stats = driver.stats();
    assert_eq!(
        (stats.emitted, stats.exported, stats.failed),
        (12, 12, 0),
        "{stats:?}"
    );
    assert_eq!((stats.unexported(), stats.providers), (0, 2));
    {
        let seen = seen.lock();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|o| o.result.class == OutcomeClass::Ok),
            "{seen:?}"
        );
        assert_eq!(seen.iter().map(|o| o.spans).sum::<usize>(), 12);
    }
    let q = query(&b, Some("sdk"));
    for t in 1..=3 {
        let got = q.trace_v1(&trace_id(t)).await.unwrap().expect("trace");
        let expected = workload(t);
        for rs in &expected {
            let svc = &rs.resource.as_ref().unwrap().attributes[0];
            let g = got
                .iter()
                .find(|g| g.resource.as_ref().unwrap().attributes.contains(svc))
                .expect("service present");
            let attrs = &g.resource.as_ref().unwrap().attributes;
            assert_eq!(
                sorted_attrs(attrs),
                sorted_attrs(&rs.resource.as_ref().unwrap().attributes)
            );
            let ss = &g.scope_spans[0];
            let sc = ss.scope.as_ref().unwrap();
            assert_eq!(
                (sc.name.as_str(), sc.version.as_str()),
                ("loadgen-test", "1.2.3")
            );
            for e in &rs.scope_spans[0].spans {
                let s = ss
                    .spans
                    .iter()
                    .find(|s| s.span_id == e.span_id)
                    .expect("span");
                assert_same(e, s);
            }
        }
    }
    driver.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sdk_spans_keep_exact_ids_and_fields() {
    exact_spans_through(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sdk_spans_keep_exact_ids_and_fields() {
    exact_spans_through(Protocol::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_are_counted_and_failures_observed() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        // Every request arriving in the first 2 s is held: the first export blocks the
        // batch thread while the queue of 10 overflows.
        let stall = Stall {
            after_requests: 0,
            duration: Duration::from_secs(2),
            every: None,
        };
        let sink = Sink::start(SinkConfig {
            stall: Some(stall),
            ..Default::default()
        })
        .await
        .unwrap();
        let cfg = exporter_config(&[sink.grpc_addr], protocol, false);
        let (seen, on_export) = recorder();
        let small = SdkBatchConfig {
            max_export_batch_size: 10,
            scheduled_delay: Duration::from_millis(20),
            max_queue_size: 10,
            retries: false,
        };
        let driver = SdkDriver::new(&cfg, small, on_export).unwrap();
        let one = |t: u64| {
            vec![resource(
                "svc",
                vec![span(t, 1, None, "op", SpanKind::Server)],
            )]
        };
        for t in 0..10 {
            driver.emit(&one(t)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.counts().requests == 0 {
            assert!(Instant::now() < deadline, "no export reached the sink");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for t in 10..510 {
            driver.emit(&one(t)).unwrap();
        }
        driver.flush().await.unwrap();
        let s = driver.stats();
        assert_eq!(s.emitted, 510);
        assert!(s.unexported() >= 480, "{s:?}");
        assert_eq!(s.exported + s.failed + s.unexported(), 510);
        assert_eq!(sink.counts().spans, s.exported, "{protocol:?}");
        assert_eq!(seen.lock().len() as u64, s.exports);
        driver.shutdown().await.unwrap();
        sink.stop().await;
    }
    // An export to nowhere is observed as a transport failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let mut cfg = exporter_config(&[closed], protocol, false);
        cfg.timeout = Duration::from_secs(2);
        let (seen, on_export) = recorder();
        let driver = SdkDriver::new(&cfg, batch(), on_export).unwrap();
        driver.emit(&workload(1)).unwrap();
        driver.flush().await.unwrap();
        let s = driver.stats();
        assert_eq!((s.failed, s.exported), (4, 0), "{protocol:?} {s:?}");
        let seen: Vec<ExportObservation> = seen.lock().clone();
        assert!(
            seen.iter()
                .all(|o| o.result.class == OutcomeClass::Transport),
            "{seen:?}"
        );
        driver.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_sdk_settings_are_refused() {
    let (_, on_export) = recorder();
    let base: ExporterConfig =
        exporter_config(&["127.0.0.1:4317".parse().unwrap()], Protocol::Grpc, false);
    let mut json = base.clone();
    json.protocol = Protocol::HttpJson;
    assert!(SdkDriver::new(&json, batch(), on_export.clone()).is_err());
    let mut gz = base.clone();
    gz.compression = Compression::Gzip;
    assert!(SdkDriver::new(&gz, batch(), on_export.clone()).is_err());
    let mut none = base;
    none.endpoints.clear();
    assert!(SdkDriver::new(&none, batch(), on_export).is_err());
}
