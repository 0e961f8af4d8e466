//! Real OpenTelemetry SDK exporters (gRPC and HTTP) into the backend, read back through
//! the Tempo API client: v1 JSON, v1 protobuf and v2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The Go example service's shape: one `main-handler` span with a `handling request` event.
fn emit(provider: &SdkTracerProvider) -> [u8; 16] {
    let tracer = provider.tracer("my-component");
    let mut span = tracer.start("main-handler");
    span.add_event("handling request", vec![KeyValue::new("http.route", "/")]);
    span.set_attribute(KeyValue::new("http.method", "GET"));
    let id = span.span_context().trace_id().to_bytes();
    span.end();
    let child = tracer.in_span("child", |cx| cx.span().span_context().trace_id());
    assert_ne!(child.to_bytes(), [0; 16]);
    id
}

fn resource() -> Resource {
    Resource::builder()
        .with_service_name("my-tempered-app")
        .with_attribute(KeyValue::new("service.version", "1.0.0"))
        .build()
}

async fn check_readable(b: &reference_backend::Backend, id: [u8; 16]) {
    let c = common::client(b);
    let v1 = c.trace_v1(&id).await.unwrap().expect("trace in v1");
    assert_eq!(common::span_names(&v1), ["main-handler"]);
    let span = &v1[0].scope_spans[0].spans[0];
    assert_eq!(span.events[0].name, "handling request");
    assert_eq!(
        v1[0].scope_spans[0].scope.as_ref().unwrap().name,
        "my-component"
    );
    let svc = v1[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|a| a.key == "service.name");
    assert!(format!("{svc:?}").contains("my-tempered-app"));
    let proto = c
        .trace_v1_proto(&id)
        .await
        .unwrap()
        .expect("trace in protobuf");
    assert_eq!(proto, v1);
    let v2 = c.trace_v2(&id).await.unwrap().expect("trace in v2");
    assert_eq!(v2.resource_spans, v1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exporter_spans_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let b = common::start(common::config(dir.path())).await;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", b.addrs.otlp_grpc))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    let id = emit(&provider);
    let p = provider.clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .unwrap();
    check_readable(&b, id).await;
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_exporter_spans_are_readable_after_flush_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let b = common::start(cfg.clone()).await;
    let endpoint = format!("http://{}/v1/traces", b.addrs.otlp_http);
    let provider = tokio::task::spawn_blocking(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(reqwest::blocking::Client::new())
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()
            .unwrap();
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build()
    })
    .await
    .unwrap();
    let id = emit(&provider);
    let p = provider.clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .unwrap();
    check_readable(&b, id).await;
    // Flush to a block, stop, and start again with the WAL gone: served from the block.
    let flush = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(flush.status().as_u16(), 204);
    b.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let b = common::start(cfg).await;
    check_readable(&b, id).await;
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
    b.shutdown().await.unwrap();
}
