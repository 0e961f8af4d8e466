//! Config parsing tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

#[test]
fn empty_file_gives_defaults() {
    let c = Config::parse("").unwrap();
    assert_eq!(c.server.http_listen_port, 3200);
    assert_eq!(
        c.distributor.receivers.otlp.protocols.grpc.endpoint,
        "127.0.0.1:4317"
    );
    assert_eq!(c.ingester.trace_idle_period.get(), Duration::from_secs(5));
    assert_eq!(
        c.overrides.defaults.global.max_bytes_per_trace.as_u64(),
        5_000_000
    );
}

#[test]
fn durations_and_sizes_are_typed() {
    let c = Config::parse(
        "live_store:\n  trace_idle_period: 250ms\n  max_block_bytes: 1MiB\nstorage:\n  trace:\n    backend: memory\n",
    )
    .unwrap();
    assert_eq!(
        c.ingester.trace_idle_period.get(),
        Duration::from_millis(250)
    );
    assert_eq!(c.ingester.max_block_bytes.as_u64(), 1024 * 1024);
    assert_eq!(c.storage.trace.backend, Backend::Memory);
}

#[test]
fn unknown_key_is_named_with_its_position() {
    let err = Config::parse("server:\n  http_listen_port: 3200\n  http_listen_prot: 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("http_listen_prot"), "{err}");
    assert!(err.contains('3'), "line number missing: {err}");
}

#[test]
fn bad_duration_is_explained() {
    let err = Config::parse("live_store:\n  trace_idle_period: soon\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid duration"), "{err}");
}

#[test]
fn s3_needs_a_bucket() {
    let err = Config::parse("storage:\n  trace:\n    backend: s3\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("storage.trace.s3.bucket"), "{err}");
}

#[test]
fn secrets_are_redacted_in_rendered_config() {
    let c = Config::parse(
        "storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: b\n      secret_key: hunter2\n",
    )
    .unwrap();
    let yaml = c.to_yaml();
    assert!(!yaml.contains("hunter2"));
    assert!(yaml.contains("<redacted>"));
}
