//! Wire exporters against the counting sink and the reference backend.

use std::time::Duration;

use loadgen::exporter::http::{HttpExporter, HttpVersion};
use loadgen::exporter::{Exporter, OutcomeClass, wire};
use loadgen::scenario::Protocol;
use loadgen::sink::{Sink, SinkConfig, Stall};

use super::*;

const PROTOCOLS: [(Protocol, bool); 5] = [
    (Protocol::Grpc, false),
    (Protocol::Grpc, true),
    (Protocol::HttpProtobuf, false),
    (Protocol::HttpProtobuf, true),
    (Protocol::HttpJson, false),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_delivers_to_the_sink_round_robin() {
    let a = Sink::start(SinkConfig::default()).await.unwrap();
    let b = Sink::start(SinkConfig::default()).await.unwrap();
    let mut expect = 0u64;
    for (protocol, gzip) in PROTOCOLS.into_iter().chain([(Protocol::HttpJson, true)]) {
        let cfg = exporter_config(&[a.grpc_addr, b.http_addr], protocol, gzip);
        let exporter = wire(&cfg).await.unwrap();
        // Concurrent sends over 2 endpoints × 2 connections.
        let sends = (0..8u64).map(|i| exporter.send(encoded(&request("svc", i * 10, 2, 5))));
        for r in futures::future::join_all(sends).await {
            assert_eq!(r.class, OutcomeClass::Ok, "{protocol:?} gzip={gzip}: {r:?}");
            assert_eq!(r.rejected_spans, 0);
        }
        expect += 8 * 10;
        let (ca, cb) = (a.counts(), b.counts());
        assert_eq!(ca.spans + cb.spans, expect, "{protocol:?} gzip={gzip}");
        // Round-robin: both endpoints got half.
        assert_eq!(ca.spans, cb.spans, "{protocol:?} gzip={gzip}");
        assert_eq!(ca.rejected + cb.rejected, 0);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_delivers_to_the_sink() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let cfg = exporter_config(&[sink.http_addr], Protocol::HttpProtobuf, false);
    let exporter = HttpExporter::with_version(&cfg, HttpVersion::Http2PriorKnowledge).unwrap();
    let sends = (0..16u64).map(|i| exporter.send(encoded(&request("svc", i, 1, 3))));
    for r in futures::future::join_all(sends).await {
        assert_eq!(r.class, OutcomeClass::Ok, "{r:?}");
    }
    assert_eq!(sink.counts().spans, 48);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_refused() {
    let mut cfg = exporter_config(&[], Protocol::Grpc, false);
    assert!(wire(&cfg).await.is_err());
    cfg.endpoints = vec!["http://127.0.0.1:1".into()];
    cfg.headers.insert("bad header\n".into(), "x".into());
    assert!(wire(&cfg).await.is_err());
    cfg.protocol = Protocol::HttpProtobuf;
    assert!(wire(&cfg).await.is_err());
    cfg.headers.clear();
    cfg.endpoints = vec!["https://example.invalid:4318".into()];
    assert!(wire(&cfg).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_and_timeouts_are_classified() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // A sink that holds every request for 30 s.
    let stall = Stall {
        after_requests: 0,
        duration: Duration::from_secs(30),
        every: None,
    };
    let slow = Sink::start(SinkConfig {
        stall: Some(stall),
        ..Default::default()
    })
    .await
    .unwrap();
    let closed = port;
    for (protocol, gzip) in PROTOCOLS {
        let mut cfg = exporter_config(&[closed], protocol, gzip);
        cfg.timeout = Duration::from_secs(5);
        let r = wire(&cfg)
            .await
            .unwrap()
            .send(encoded(&request("s", 1, 1, 2)))
            .await;
        assert_eq!(r.class, OutcomeClass::Transport, "{protocol:?}: {r:?}");
        assert_eq!(r.rejected_spans, 2);
        let mut cfg = exporter_config(&[slow.http_addr], protocol, gzip);
        cfg.timeout = Duration::from_millis(300);
        let r = wire(&cfg)
            .await
            .unwrap()
            .send(encoded(&request("s", 1, 1, 2)))
            .await;
        assert_eq!(r.class, OutcomeClass::Timeout, "{protocol:?}: {r:?}");
    }
    drop(slow);
}

fn tenant_yaml() -> &'static str {
    "multitenancy_enabled: true\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_is_readable_from_the_backend_with_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let b = start_backend(backend_config(dir.path(), tenant_yaml())).await;
    let q = query(&b, Some("team-a"));
    for (i, (protocol, gzip)) in PROTOCOLS.into_iter().enumerate() {
        let addr = match protocol {
            Protocol::Grpc => b.addrs.otlp_grpc,
            _ => b.addrs.otlp_http,
        };
        let mut cfg = exporter_config(&[addr], protocol, gzip);
        cfg.tenant = Some("team-a".into());
        cfg.headers.insert("x-test".into(), "1".into());
        let exporter = wire(&cfg).await.unwrap();
        let first = 100 * (i as u64 + 1);
        let r = exporter.send(encoded(&request("svc", first, 3, 4))).await;
        assert_eq!(r.class, OutcomeClass::Ok, "{protocol:?} gzip={gzip}: {r:?}");
        for t in first..first + 3 {
            let tr = q.trace_v1(&trace_id(t)).await.unwrap().expect("trace");
            assert_eq!(span_names(&tr), ["span-0", "span-1", "span-2", "span-3"]);
            let child = tr[0].scope_spans[0]
                .spans
                .iter()
                .find(|s| s.name == "span-1")
                .unwrap();
            assert_eq!(child.trace_id, trace_id(t));
            assert_eq!(child.parent_span_id.len(), 8);
        }
        // Without the tenant: refused (401 / UNAUTHENTICATED) → invalid.
        cfg.tenant = None;
        let r = wire(&cfg)
            .await
            .unwrap()
            .send(encoded(&request("svc", 9, 1, 1)))
            .await;
        assert_eq!(r.class, OutcomeClass::Invalid, "{protocol:?}: {r:?}");
    }
    // Another tenant sees nothing.
    let other = query(&b, Some("team-b"));
    assert!(other.trace_v1(&trace_id(100)).await.unwrap().is_none());
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_bad_ids_and_size_limits_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    // ~1 KiB/s with a 6 KiB burst; requests above 20 KiB are too large.
    let yaml = "
overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 1000
      burst_size_bytes: 6000
distributor:
  receivers:
    otlp:
      protocols:
        http:
          max_request_bytes: 20000
          max_decompressed_bytes: 20000
        grpc:
          max_decompressed_bytes: 20000
";
    let b = start_backend(backend_config(dir.path(), yaml)).await;
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
        let addr = match protocol {
            Protocol::Grpc => b.addrs.otlp_grpc,
            _ => b.addrs.otlp_http,
        };
        let cfg = exporter_config(&[addr], protocol, false);
        let exporter = wire(&cfg).await.unwrap();
        // Bad ids: 8-byte trace id → 400 / INVALID_ARGUMENT.
        let mut bad = request("svc", 1, 1, 2);
        bad.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 8];
        let r = exporter.send(encoded(&bad)).await;
        assert_eq!(r.class, OutcomeClass::Invalid, "{protocol:?}: {r:?}");
        assert_eq!(r.rejected_spans, 2);
        assert!(
            r.message.unwrap_or_default().contains("trace ids"),
            "{protocol:?}"
        );
        // Too large: far over 20 KB.
        let r = exporter.send(encoded(&request("svc", 1, 40, 10))).await;
        assert_eq!(r.class, OutcomeClass::TooLarge, "{protocol:?}: {r:?}");
        // ~1.5 KB requests: the burst passes, then 429 / RESOURCE_EXHAUSTED with a hint.
        let mut limited = None;
        for i in 0..20 {
            let r = exporter
                .send(encoded(&request("svc", 1000 + i, 4, 3)))
                .await;
            if r.class != OutcomeClass::Ok {
                limited = Some(r);
                break;
            }
        }
        let r = limited.expect("rate limited within 20 requests");
        assert_eq!(r.class, OutcomeClass::RateLimited, "{protocol:?}: {r:?}");
        assert_eq!(r.rejected_spans, 12);
        assert!(r.retry_after.unwrap() >= Duration::from_secs(1), "{r:?}");
        assert!(r.message.unwrap().starts_with("RATE_LIMITED"));
    }
    b.shutdown().await.unwrap();
}
