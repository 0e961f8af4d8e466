//! Exporters: response classification, the wire exporters (gRPC, HTTP protobuf/JSON,
//! gzip) against the counting sink and a real in-process reference backend, and the SDK
//! driver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "exporters/classify.rs"]
mod classify;
#[path = "exporters/sdk.rs"]
mod sdk;
#[path = "exporters/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use loadgen::exporter::{EncodedRequest, ExporterConfig};
use loadgen::scenario::{Compression, Protocol};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use reference_backend::{Backend, Config};
use tempo_api::TempoClient;

pub fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub fn kvs(k: &str, v: &str) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

/// A trace id made from a number.
pub fn trace_id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = 0x5a;
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

/// `traces` traces of `spans` spans (a root and its children) for service `svc`.
pub fn request(svc: &str, first: u64, traces: u64, spans: u8) -> ExportTraceServiceRequest {
    let mut out = Vec::new();
    for t in first..first + traces {
        for s in 0..spans {
            let sid = |s: u8| {
                let mut id = [0u8; 8];
                id[..7].copy_from_slice(&t.to_be_bytes()[1..]);
                id[7] = s + 1;
                id.to_vec()
            };
            out.push(Span {
                trace_id: trace_id(t).to_vec(),
                span_id: sid(s),
                parent_span_id: if s == 0 { Vec::new() } else { sid(0) },
                name: format!("span-{s}"),
                start_time_unix_nano: 1_700_000_000_000_000_000 + t * 1000,
                end_time_unix_nano: 1_700_000_000_100_000_000 + t * 1000,
                attributes: vec![kvs("http.method", "GET")],
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kvs("service.name", svc)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: out,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn encoded(req: &ExportTraceServiceRequest) -> EncodedRequest {
    let spans = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u32)
        .sum();
    EncodedRequest {
        body: Bytes::from(req.encode_to_vec()),
        spans,
    }
}

pub fn exporter_config(addrs: &[SocketAddr], protocol: Protocol, gzip: bool) -> ExporterConfig {
    ExporterConfig {
        endpoints: addrs.iter().map(|a| format!("http://{a}")).collect(),
        protocol,
        compression: if gzip {
            Compression::Gzip
        } else {
            Compression::None
        },
        headers: Default::default(),
        tenant: None,
        connections: 2,
        timeout: Duration::from_secs(10),
    }
}

/// A backend config on `dir` with every port 0, after `yaml` (overrides, limits).
pub fn backend_config(dir: &Path, yaml: &str) -> Config {
    let mut c = Config::parse(yaml).unwrap();
    c.server.http_listen_port = 0;
    let p = &mut c.distributor.receivers.otlp.protocols;
    p.grpc.endpoint = "127.0.0.1:0".into();
    p.http.endpoint = "127.0.0.1:0".into();
    c.storage.trace.local.path = dir.join("blocks");
    c.storage.trace.wal.path = dir.join("wal");
    c.storage.trace.blocklist_poll.0 = Duration::from_millis(200);
    c.ingester.flush_check_period.0 = Duration::from_millis(100);
    c.server.graceful_shutdown_timeout.0 = Duration::from_secs(20);
    c
}

pub async fn start_backend(config: Config) -> Backend {
    let b = Backend::start(config).await.expect("start backend");
    tokio::time::timeout(Duration::from_secs(30), b.wait_ready())
        .await
        .expect("ready in time")
        .expect("ready");
    b
}

pub fn query(b: &Backend, tenant: Option<&str>) -> TempoClient {
    TempoClient::new(&format!("http://{}", b.addrs.http))
        .unwrap()
        .with_timeout(Duration::from_secs(10))
        .with_tenant(tenant.map(str::to_owned))
}

/// Span names of a fetched trace, sorted.
pub fn span_names(rs: &[ResourceSpans]) -> Vec<String> {
    let mut v: Vec<String> = rs
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.clone())
        .collect();
    v.sort();
    v
}
