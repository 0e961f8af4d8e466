#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Blocks in S3, through the in-process `embedded-s3` server (real SigV4): a round trip
//! into a fresh backend that only has the bucket, a wrong secret that must make `/flush`
//! fail, and an S3 outage in the middle of a flush that must lose nothing.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use embedded_s3::{EmbeddedS3, S3Config};
use reference_backend::{Backend, Config};

const BUCKET: &str = "traces";
const SPANS_PER_TRACE: u8 = 3;

/// Backend and S3 logs, shown for a failing test when `RUST_LOG` is set.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Fail instead of hanging.
async fn bounded<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?}"))
}

/// A backend config on `dir` (WAL in `dir/wal`) whose blocks go to `bucket` of `s3`.
fn s3_config(dir: &Path, endpoint: &str, creds: &S3Config, bucket: &str) -> Config {
    let mut c = common::config(dir);
    common::use_s3(&mut c, endpoint, creds, bucket);
    c
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        // /flush answers within 30 s (204, or 503 when the store keeps failing).
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET /flush`: (status, body).
async fn flush(addr: SocketAddr) -> (u16, String) {
    let resp = http()
        .get(format!("http://{addr}/flush"))
        .send()
        .await
        .expect("/flush request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Ingest traces `first..first+count` (one request); must be accepted.
async fn ingest(b: &Backend, first: u64, count: u64) {
    let req = common::request("s3-test", first, count, SPANS_PER_TRACE);
    let (status, _, body) = bounded("ingest", Duration::from_secs(30), async {
        common::post_proto(b, None, &req).await
    })
    .await;
    assert_eq!(
        status,
        200,
        "ingest of traces {first}..{} refused: {}",
        first + count,
        String::from_utf8_lossy(&body)
    );
}

/// Every trace in `ids` is readable through v1 and v2 with all its spans.
async fn assert_readable(b: &Backend, ids: &[u64], when: &str) {
    let client = common::client(b);
    let want: Vec<String> = (0..SPANS_PER_TRACE).map(|s| format!("span-{s}")).collect();
    for &n in ids {
        let id = common::trace_id(n);
        let v1 = bounded("trace v1", Duration::from_secs(20), client.trace_v1(&id))
            .await
            .unwrap_or_else(|e| panic!("{when}: trace {n} v1: {e}"))
            .unwrap_or_else(|| panic!("{when}: trace {n} not found (v1)"));
        assert_eq!(common::span_names(&v1), want, "{when}: trace {n} (v1)");
        let v2 = bounded("trace v2", Duration::from_secs(20), client.trace_v2(&id))
            .await
            .unwrap_or_else(|e| panic!("{when}: trace {n} v2: {e}"))
            .unwrap_or_else(|| panic!("{when}: trace {n} not found (v2)"));
        assert_eq!(
            common::span_names(&v2.resource_spans),
            want,
            "{when}: trace {n} (v2)"
        );
    }
}

/// Block directories under `<root>/<bucket>/single-tenant/`, with the file names in each.
fn blocks_on_disk(root: &Path, bucket: &str) -> Vec<(String, BTreeSet<String>)> {
    let tenant = root.join(bucket).join("single-tenant");
    let Ok(dirs) = std::fs::read_dir(&tenant) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in dirs {
        let d = d.unwrap();
        if !d.file_type().unwrap().is_dir() {
            continue;
        }
        let files = std::fs::read_dir(d.path())
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        out.push((d.file_name().to_string_lossy().into_owned(), files));
    }
    out.sort();
    out
}

/// Start a backend; readiness is bounded (see `common::start`).
async fn start(config: Config) -> Backend {
    bounded(
        "backend start",
        Duration::from_secs(60),
        common::start(config),
    )
    .await
}

async fn shutdown(b: Backend) -> reference_backend::Result<()> {
    bounded("backend shutdown", Duration::from_secs(60), b.shutdown()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blocks_round_trip() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(tmp.path().join("s3"), 0, S3Config::default())
        .await
        .expect("start embedded s3");
    s3.create_bucket(BUCKET).unwrap();
    s3.create_bucket("refused").unwrap();
    let creds = s3.config().clone();

    // A backend with a wrong secret: its flush must fail, not silently succeed. /flush
    // answers 503 once `flush_wait_timeout` passes; it runs in the background meanwhile.
    let mut bad_creds = creds.clone();
    bad_creds.secret_key = "not-the-secret".into();
    let mut bad_cfg = s3_config(
        &tmp.path().join("bad"),
        &s3.endpoint(),
        &bad_creds,
        "refused",
    );
    bad_cfg.ingester.flush_retry_backoff.0 = Duration::from_millis(50);
    bad_cfg.ingester.flush_retry_max_backoff.0 = Duration::from_millis(500);
    bad_cfg.server.graceful_shutdown_timeout.0 = Duration::from_secs(1);
    bad_cfg.ingester.flush_wait_timeout.0 = Duration::from_secs(2);
    let bad = start(bad_cfg).await;
    ingest(&bad, 9000, 2).await;
    let bad_http = bad.addrs.http;
    let bad_flush = tokio::spawn(async move {
        bounded(
            "/flush (wrong secret)",
            Duration::from_secs(90),
            flush(bad_http),
        )
        .await
    });

    // The real round trip.
    let ids: Vec<u64> = (1..=8).collect();
    let b1 = start(s3_config(
        &tmp.path().join("b1"),
        &s3.endpoint(),
        &creds,
        BUCKET,
    ))
    .await;
    ingest(&b1, 1, 4).await;
    ingest(&b1, 5, 4).await;
    assert_readable(&b1, &ids, "before flush (memory)").await;
    let (status, body) = bounded("/flush", Duration::from_secs(90), flush(b1.addrs.http)).await;
    assert_eq!(status, 204, "/flush: {body}");
    assert!(common::metric(b1.addrs.http, "reference_backend_blocks_flushed_total").await >= 1.0);

    let blocks = blocks_on_disk(s3.root(), BUCKET);
    assert!(
        !blocks.is_empty(),
        "no block under the s3 root after /flush"
    );
    for (id, files) in &blocks {
        uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("block dir {id}: {e}"));
        for f in ["meta.json", "data", "bloom-0"] {
            assert!(files.contains(f), "block {id} lacks {f}: {files:?}");
        }
    }
    assert_readable(&b1, &ids, "after flush").await;
    shutdown(b1).await.expect("graceful shutdown");

    // A new backend with an empty WAL can only find the traces in the bucket.
    let b2 = start(s3_config(
        &tmp.path().join("b2"),
        &s3.endpoint(),
        &creds,
        BUCKET,
    ))
    .await;
    assert_readable(&b2, &ids, "new backend, empty wal").await;
    let missing = common::trace_id(777);
    assert!(
        common::client(&b2)
            .trace_v1(&missing)
            .await
            .unwrap()
            .is_none(),
        "an id never sent was found"
    );
    shutdown(b2).await.expect("graceful shutdown");

    // The wrong-secret flush.
    let (status, body) = bad_flush.await.unwrap();
    assert_eq!(
        status, 503,
        "/flush with a wrong S3 secret must fail, got {status}: {body}"
    );
    assert!(
        common::metric(bad_http, "reference_backend_flush_failures_total").await > 0.0,
        "no flush failure counted with a wrong secret"
    );
    assert!(
        blocks_on_disk(s3.root(), "refused").is_empty(),
        "objects were written with a wrong secret"
    );
    // The refused blocks stay queryable from memory.
    assert_readable(&bad, &[9000, 9001], "wrong secret, after failed flush").await;
    // Shutdown does not wait for blocks the store refuses: their spans stay in the WAL.
    shutdown(bad)
        .await
        .expect("shutdown with an unwritable store ends, leaving the spans in the wal");
    s3.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_during_flush_loses_nothing() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(tmp.path().join("s3"), 0, S3Config::default())
        .await
        .expect("start embedded s3");
    s3.create_bucket(BUCKET).unwrap();
    let endpoint = s3.endpoint();
    let (root, port, creds) = (s3.root().to_path_buf(), s3.port(), s3.config().clone());

    let mut cfg = s3_config(&tmp.path().join("b1"), &endpoint, &creds, BUCKET);
    cfg.ingester.flush_retry_backoff.0 = Duration::from_millis(50);
    cfg.ingester.flush_retry_max_backoff.0 = Duration::from_millis(500);
    let b1 = start(cfg).await;
    let before: Vec<u64> = (1..=10).collect();
    ingest(&b1, 1, 5).await;
    ingest(&b1, 6, 5).await;

    // Outage: the flush starts while S3 is down and keeps retrying.
    s3.stop().await;
    let addr = b1.addrs.http;
    let first_flush = tokio::spawn(async move {
        bounded("/flush (outage)", Duration::from_secs(90), flush(addr)).await
    });
    bounded("a failed flush attempt", Duration::from_secs(30), async {
        while common::metric(addr, "reference_backend_flush_failures_total").await < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // Ingest keeps working during the outage; everything is served from memory.
    let during: Vec<u64> = (100..=105).collect();
    ingest(&b1, 100, 3).await;
    ingest(&b1, 103, 3).await;
    assert_readable(&b1, &before, "during outage (cut, unflushed)").await;
    assert_readable(&b1, &during, "during outage (live)").await;
    assert!(
        blocks_on_disk(&root, BUCKET).is_empty(),
        "a block was written while s3 was down"
    );

    // Let the flusher fail again (a retry, not only the first attempt) before S3 returns.
    bounded("a failed flush retry", Duration::from_secs(30), async {
        while common::metric(addr, "reference_backend_flush_failures_total").await < 2.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // S3 comes back on the same port and directory.
    let s3 = EmbeddedS3::start(root.clone(), port, creds.clone())
        .await
        .expect("restart embedded s3 on the same port");
    let (status, body) = first_flush.await.unwrap();
    println!(
        "/flush issued during the outage answered {status}: {}",
        body.trim()
    );
    assert!(
        status == 204 || status == 503,
        "/flush during an outage answered {status}: {body}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = bounded(
            "/flush (after outage)",
            Duration::from_secs(90),
            flush(addr),
        )
        .await;
        if status == 204 {
            break;
        }
        assert_eq!(status, 503, "/flush after the outage: {body}");
        assert!(
            Instant::now() < deadline,
            "/flush still failing after s3 came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failures = common::metric(addr, "reference_backend_flush_failures_total").await;
    assert!(failures > 0.0, "no flush failure counted during the outage");
    println!("flush failures counted during the outage: {failures}");
    assert!(!blocks_on_disk(&root, BUCKET).is_empty());
    shutdown(b1).await.expect("graceful shutdown");

    // A new backend with an empty WAL: every trace must be in the bucket.
    let b2 = start(s3_config(&tmp.path().join("b2"), &endpoint, &creds, BUCKET)).await;
    assert_readable(&b2, &before, "new backend: sent before the outage").await;
    assert_readable(&b2, &during, "new backend: sent during the outage").await;
    shutdown(b2).await.expect("graceful shutdown");
    s3.stop().await;
}
