//! Generator throughput on loopback: one generator thread (a current_thread runtime) sends
//! pre-encoded 100-span requests (~450 B/span) to the counting sink running on its own
//! thread, over HTTP/1.1, h2c and gRPC with 16–64 requests in flight; then the SDK mode
//! (spans created through the tracer, batch processor, OTLP exporter) for comparison.
//!
//! `cargo bench -p loadgen --bench wire` (LOADGEN_BENCH_SECS sets the seconds per case,
//! default 5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use loadgen::exporter::http::{HttpExporter, HttpVersion};
use loadgen::exporter::sdk::{SdkBatchConfig, SdkDriver};
use loadgen::exporter::{EncodedRequest, Exporter, ExporterConfig, wire};
use loadgen::scenario::{Compression, Protocol};
use loadgen::sink::{Sink, SinkConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

const SPANS: usize = 100;

fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// One request of `SPANS` spans of a typical HTTP service (~450 B per span encoded).
fn resource_spans(seed: u64) -> ResourceSpans {
    let t0 = 1_750_000_000_000_000_000u64 + seed * 1_000_000;
    let spans = (0..SPANS as u64)
        .map(|n| {
            let trace = seed * 1000 + n / 10;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&0x4bf9_2f35_77b3_4da6u64.to_be_bytes());
            trace_id[8..].copy_from_slice(&trace.to_be_bytes());
            let span_id = ((seed << 32) | (n + 1)).to_be_bytes().to_vec();
            let parent = if n % 10 == 0 {
                Vec::new()
            } else {
                ((seed << 32) | (n - n % 10 + 1)).to_be_bytes().to_vec()
            };
            Span {
                trace_id: trace_id.to_vec(),
                span_id,
                parent_span_id: parent,
                name: "GET /api/v1/orders/{order_id}".into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: t0 + n * 1000,
                end_time_unix_nano: t0 + n * 1000 + 12_345_678,
                attributes: vec![
                    s("http.request.method", "GET"),
                    s("http.route", "/api/v1/orders/{order_id}"),
                    i("http.response.status_code", 200),
                    s(
                        "url.full",
                        "https://shop.example.com/api/v1/orders/48213?expand=items,shipping",
                    ),
                    s("server.address", "orders.shop.svc.cluster.local"),
                    i("server.port", 8080),
                    s("user_agent.original", "okhttp/4.12.0"),
                ],
                events: vec![Event {
                    time_unix_nano: t0 + n * 1000 + 5_000,
                    name: "order loaded".into(),
                    attributes: vec![s("db.system", "postgresql"), i("db.rows", 3)],
                    ..Default::default()
                }],
                status: Some(Status {
                    message: String::new(),
                    code: 1,
                }),
                ..Default::default()
            }
        })
        .collect();
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                s("service.name", "orders"),
                s("service.version", "2.14.1"),
                s("deployment.environment", "production"),
                s("host.name", "orders-7d9f8b6c5-x2k4p"),
                s("telemetry.sdk.language", "go"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp".into(),
                version: "0.52.0".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn config(addr: std::net::SocketAddr, protocol: Protocol, connections: usize) -> ExporterConfig {
    ExporterConfig {
        endpoints: vec![format!("http://{addr}")],
        protocol,
        compression: Compression::None,
        headers: Default::default(),
        tenant: None,
        connections,
        timeout: Duration::from_secs(10),
    }
}

/// Send pre-encoded requests for `dur` with `in_flight` outstanding; returns requests ok.
async fn drive(
    exporter: &dyn Exporter,
    reqs: &[EncodedRequest],
    in_flight: usize,
    dur: Duration,
) -> (u64, u64) {
    let end = Instant::now() + dur;
    let mut pending = FuturesUnordered::new();
    let (mut ok, mut failed, mut next) = (0u64, 0u64, 0usize);
    loop {
        let running = Instant::now() < end;
        while running && pending.len() < in_flight {
            pending.push(exporter.send(reqs[next % reqs.len()].clone()));
            next += 1;
        }
        match pending.next().await {
            Some(r) if r.class.accepted() => ok += 1,
            Some(_) => failed += 1,
            None => break,
        }
    }
    (ok, failed)
}

/// CPU seconds used by the calling thread so far (Linux; 0 elsewhere).
fn thread_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // After the command: state is field 3, utime 14, stime 15 (clock ticks, 100 Hz).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

fn report(name: &str, spans: u64, requests: u64, bytes: u64, secs: f64, extra: &str) {
    println!(
        "{name:<34} {:>11.0} spans/s  {:>8.0} req/s  {:>7.1} MB/s  {extra}",
        spans as f64 / secs,
        requests as f64 / secs,
        bytes as f64 / secs / 1e6,
    );
}

fn main() {
    let secs: u64 = std::env::var("LOADGEN_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dur = Duration::from_secs(secs);
    // The sink: its own thread and runtime (one worker).
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sink_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sink")
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let sink = Arc::new(Sink::start(SinkConfig::default()).await.unwrap());
            tx.send(sink.clone()).unwrap();
            let _ = stop_rx.await;
        });
    });
    let sink: Arc<Sink> = rx.recv().unwrap();

    let batches: Vec<ResourceSpans> = (0..32).map(resource_spans).collect();
    let reqs: Vec<EncodedRequest> = batches
        .iter()
        .map(|rs| EncodedRequest {
            body: Bytes::from(
                ExportTraceServiceRequest {
                    resource_spans: vec![rs.clone()],
                }
                .encode_to_vec(),
            ),
            spans: SPANS as u32,
        })
        .collect();
    let per_span = reqs[0].body.len() / SPANS;
    println!(
        "wire mode: {SPANS}-span requests, {} B each ({per_span} B/span), {secs} s per case, one generator thread",
        reqs[0].body.len()
    );

    let cases: [(&str, Protocol, Option<HttpVersion>, usize); 4] = [
        (
            "http/1.1 protobuf",
            Protocol::HttpProtobuf,
            Some(HttpVersion::Http1),
            1,
        ),
        (
            "h2c protobuf",
            Protocol::HttpProtobuf,
            Some(HttpVersion::Http2PriorKnowledge),
            2,
        ),
        ("grpc", Protocol::Grpc, None, 2),
        ("grpc 4 conns", Protocol::Grpc, None, 4),
    ];
    for (name, protocol, version, conns) in cases {
        for in_flight in [16, 32, 64] {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let before = sink.counts();
            let cpu0 = thread_cpu();
            let t0 = Instant::now();
            let (ok, failed) = rt.block_on(async {
                let cfg = config(sink.http_addr, protocol, conns);
                let exporter: Box<dyn Exporter> = match version {
                    Some(v) => Box::new(HttpExporter::with_version(&cfg, v).unwrap()),
                    None => wire(&cfg).await.unwrap(),
                };
                drive(exporter.as_ref(), &reqs, in_flight, dur).await
            });
            let elapsed = t0.elapsed().as_secs_f64();
            let cpu = thread_cpu() - cpu0;
            let after = sink.counts();
            report(
                &format!("{name} x{in_flight} in flight"),
                after.spans - before.spans,
                after.requests - before.requests,
                after.bytes - before.bytes,
                elapsed,
                &format!(
                    "generator thread CPU {:.0} % (ok {ok}, failed {failed})",
                    100.0 * cpu / elapsed
                ),
            );
        }
    }

    println!(
        "sdk mode (default batch processor: queue 2048, batch 512): spans created through the tracer from the same ResourceSpans, delivered to the sink"
    );
    // Flat out (the SDK drops what it cannot export), then paced at fixed rates.
    let mut sdk_cases: Vec<(Protocol, Option<f64>)> = Vec::new();
    for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
        sdk_cases.push((protocol, None));
        for rate in [100_000.0, 200_000.0, 300_000.0] {
            sdk_cases.push((protocol, Some(rate)));
        }
    }
    for (protocol, rate) in sdk_cases {
        let name = format!(
            "sdk {} {}",
            if protocol == Protocol::Grpc {
                "grpc"
            } else {
                "http"
            },
            rate.map_or("flat out".to_owned(), |r| format!("at {r:.0}/s")),
        );
        // The tonic exporter's IO runs on this runtime; spans are created on the main thread.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let cfg = config(sink.http_addr, protocol, 1);
        let driver = SdkDriver::new(&cfg, SdkBatchConfig::default(), Arc::new(|_| {})).unwrap();
        let before = sink.counts();
        let t0 = Instant::now();
        let mut k = 0usize;
        let mut due = t0;
        while t0.elapsed() < dur {
            if let Some(r) = rate {
                due += Duration::from_secs_f64(SPANS as f64 / r);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            driver
                .emit(std::slice::from_ref(&batches[k % batches.len()]))
                .unwrap();
            k += 1;
        }
        let created = t0.elapsed().as_secs_f64();
        rt.block_on(driver.flush()).unwrap();
        let elapsed = t0.elapsed().as_secs_f64();
        let stats = driver.stats();
        rt.block_on(driver.shutdown()).unwrap();
        let after = sink.counts();
        report(
            &name,
            after.spans - before.spans,
            after.requests - before.requests,
            after.bytes - before.bytes,
            elapsed,
            &format!(
                "(created {:.0}/s, dropped {} of {} = {:.0} %)",
                stats.emitted as f64 / created,
                stats.unexported(),
                stats.emitted,
                100.0 * stats.unexported() as f64 / stats.emitted.max(1) as f64
            ),
        );
    }
    let _ = stop_tx.send(());
    sink_thread.join().unwrap();
}
