//! Helpers shared by the integration tests: configs on temp dirs with port 0, requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use embedded_s3::S3Config;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use reference_backend::{Backend, Config};
use tempo_api::TempoClient;

/// A config for one test: every port 0, blocks and WAL under `dir`.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::default();
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

/// Start a backend and wait until it is ready.
pub async fn start(config: Config) -> Backend {
    let b = Backend::start(config).await.expect("start backend");
    tokio::time::timeout(Duration::from_secs(30), b.wait_ready())
        .await
        .expect("ready in time")
        .expect("ready");
    b
}

/// Query client for a backend.
pub fn client(b: &Backend) -> TempoClient {
    TempoClient::new(&format!("http://{}", b.addrs.http))
        .unwrap()
        .with_timeout(Duration::from_secs(10))
}

pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A trace id made from a number (never all zero).
pub fn trace_id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = 0xab;
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

/// A request with `traces` traces of `spans` spans each, service `svc`.
pub fn request(svc: &str, first: u64, traces: u64, spans: u8) -> ExportTraceServiceRequest {
    let mut out = Vec::new();
    for t in first..first + traces {
        for s in 0..spans {
            out.push(Span {
                trace_id: trace_id(t).to_vec(),
                span_id: {
                    let mut id = [0u8; 8];
                    id[..7].copy_from_slice(&t.to_be_bytes()[1..]);
                    id[7] = s + 1;
                    id.to_vec()
                },
                name: format!("span-{s}"),
                start_time_unix_nano: 1_700_000_000_000_000_000 + t * 1000,
                end_time_unix_nano: 1_700_000_000_100_000_000 + t * 1000,
                attributes: vec![kv("http.method", "GET")],
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", svc)],
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

/// POST an OTLP/HTTP protobuf request; returns (status, retry-after, body).
pub async fn post_proto(
    b: &Backend,
    tenant: Option<&str>,
    req: &ExportTraceServiceRequest,
) -> (u16, Option<String>, bytes::Bytes) {
    use prost::Message;
    let http = reqwest::Client::new();
    let mut r = http
        .post(format!("http://{}/v1/traces", b.addrs.otlp_http))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec());
    if let Some(t) = tenant {
        r = r.header("X-Scope-OrgID", t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.bytes().await.unwrap())
}

/// Point `c`'s blocks at `bucket` of the S3 endpoint `endpoint` with `creds` (plain HTTP,
/// path-style addressing, as the embedded S3 server serves them).
pub fn use_s3(c: &mut Config, endpoint: &str, creds: &S3Config, bucket: &str) {
    c.storage.trace.backend = reference_backend::config::Backend::S3;
    let s3 = &mut c.storage.trace.s3;
    s3.bucket = bucket.into();
    s3.endpoint = endpoint.into();
    s3.region = creds.region.clone();
    s3.access_key = creds.access_key.clone();
    s3.secret_key = creds.secret_key.clone();
    s3.insecure = true;
    s3.forcepathstyle = true;
}

/// The value of the unlabelled metric `name` on the backend serving `/metrics` at `addr`.
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("/metrics request")
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.next().unwrap().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}
