//! Traces not yet in a block live in the WAL (memory holds only where they are): a crash
//! with traces live, in the head block and in a cut block waiting for the store loses
//! nothing (the restart rebuilds them from the WAL); head blocks are cut by size, by age
//! and for traces that never go idle; block objects go up in parts; and ingest pushes back
//! only while the object store fails, recovering when it returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use common::{client, config, metric, post_proto, request, start, trace_id};
use embedded_s3::{EmbeddedS3, S3Config};
use reference_backend::{Backend, Config};

/// Fail instead of hanging.
async fn bounded<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?}"))
}

/// Poll `cond` every 20 ms until it holds; fails after `limit`.
async fn until<F: Future<Output = bool>>(what: &str, limit: Duration, mut cond: impl FnMut() -> F) {
    bounded(what, limit, async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn flush(b: &Backend) {
    let r = reqwest::Client::new()
        .get(format!("http://{}/flush", b.addrs.http))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "/flush");
}

/// Trace number → spans expected, every one readable with exactly those spans.
async fn assert_traces(b: &Backend, want: &BTreeMap<u64, usize>, when: &str) {
    let c = client(b);
    for (&n, &spans) in want {
        let got = c
            .trace_v1(&trace_id(n))
            .await
            .unwrap_or_else(|e| panic!("{when}: trace {n}: {e}"))
            .unwrap_or_else(|| panic!("{when}: trace {n} not found"));
        assert_eq!(common::span_names(&got).len(), spans, "{when}: trace {n}");
    }
}

/// Block directories with a `meta.json` under a local store root.
fn blocks_on_disk(root: &Path) -> usize {
    let Ok(tenants) = std::fs::read_dir(root) else {
        return 0;
    };
    tenants
        .flatten()
        .filter(|t| t.path().is_dir())
        .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
        .filter(|b| b.path().join("meta.json").is_file())
        .count()
}

fn wal_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_traces_live_and_in_the_head_block_is_rebuilt_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.ingester.trace_idle_period.0 = Duration::from_millis(300);
    cfg.ingester.flush_check_period.0 = Duration::from_millis(50);
    // The head block is never cut on its own during the test.
    cfg.ingester.max_block_duration.0 = Duration::from_secs(3600);
    let b = start(cfg.clone()).await;
    let mut want = BTreeMap::new();
    for i in 0..20 {
        assert_eq!(
            post_proto(&b, None, &request("head", i * 5, 5, 3)).await.0,
            200
        );
    }
    (0..100).for_each(|n| {
        want.insert(n, 3);
    });
    // Idle for longer than trace_idle_period: the traces move to the head block.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // New traces stay live; trace 7 gets a part live beside its part in the head block.
    let mut extra = request("head", 7, 1, 4);
    extra.resource_spans[0].scope_spans[0].spans.drain(..3);
    assert_eq!(post_proto(&b, None, &extra).await.0, 200);
    want.insert(7, 4);
    assert_eq!(
        post_proto(&b, None, &request("live", 500, 10, 2)).await.0,
        200
    );
    (500..510).for_each(|n| {
        want.insert(n, 2);
    });
    assert_traces(&b, &want, "before the crash").await;
    assert!(metric(b.addrs.http, "reference_backend_unflushed_bytes").await > 0.0);
    assert_eq!(blocks_on_disk(&dir.path().join("blocks")), 0);
    b.abort();

    // The restart rebuilds live traces and the head block from the WAL.
    let b = start(cfg.clone()).await;
    assert_traces(&b, &want, "after the crash").await;
    // Cut and written as usual; the WAL then holds nothing but the open segment.
    flush(&b).await;
    assert!(blocks_on_disk(&dir.path().join("blocks")) >= 1);
    assert_eq!(
        metric(b.addrs.http, "reference_backend_unflushed_bytes").await,
        0.0
    );
    assert_eq!(wal_segments(dir.path()), 1);
    b.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let b = start(cfg).await;
    assert_traces(&b, &want, "from blocks only").await;
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_blocks_are_cut_by_size_by_age_and_for_traces_that_never_go_idle() {
    // By size: 16 KiB of spans per block, never by age.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.ingester.trace_idle_period.0 = Duration::from_millis(50);
    cfg.ingester.flush_check_period.0 = Duration::from_millis(50);
    cfg.ingester.max_block_duration.0 = Duration::from_secs(3600);
    cfg.ingester.max_block_bytes = bytesize::ByteSize::kib(16);
    let b = start(cfg).await;
    let mut want = BTreeMap::new();
    for i in 0..30 {
        assert_eq!(
            post_proto(&b, None, &request("size", i * 10, 10, 3))
                .await
                .0,
            200
        );
        (i * 10..i * 10 + 10).for_each(|n| {
            want.insert(n, 3);
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let root = dir.path().join("blocks");
    until("blocks cut by size", Duration::from_secs(60), || async {
        blocks_on_disk(&root) >= 3
    })
    .await;
    assert_traces(&b, &want, "cut by size").await;
    b.shutdown().await.unwrap();

    // By age: a block at most 300 ms old, whatever its size.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.ingester.trace_idle_period.0 = Duration::from_millis(50);
    cfg.ingester.flush_check_period.0 = Duration::from_millis(50);
    cfg.ingester.max_block_duration.0 = Duration::from_millis(300);
    let b = start(cfg.clone()).await;
    assert_eq!(post_proto(&b, None, &request("age", 1, 4, 2)).await.0, 200);
    let root = dir.path().join("blocks");
    until("a block cut by age", Duration::from_secs(60), || async {
        blocks_on_disk(&root) >= 1
    })
    .await;
    b.shutdown().await.unwrap();

    // A trace that keeps getting spans is still cut once it is max_block_duration old.
    let dir = tempfile::tempdir().unwrap();
    cfg.storage.trace.local.path = dir.path().join("blocks");
    cfg.storage.trace.wal.path = dir.path().join("wal");
    cfg.ingester.trace_idle_period.0 = Duration::from_secs(3600);
    let b = start(cfg).await;
    let root = dir.path().join("blocks");
    let mut sent = 0u8;
    while blocks_on_disk(&root) == 0 {
        assert!(sent < 200, "no block while a trace kept getting spans");
        let mut one = request("busy", 42, 1, sent + 1);
        one.resource_spans[0].scope_spans[0]
            .spans
            .drain(..sent as usize);
        assert_eq!(post_proto(&b, None, &one).await.0, 200);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = client(&b).trace_v1(&trace_id(42)).await.unwrap().unwrap();
    assert_eq!(common::span_names(&got).len(), sent as usize);
    b.shutdown().await.unwrap();
}

fn s3_config(dir: &Path, s3: &EmbeddedS3) -> Config {
    let mut c = config(dir);
    // The test spans are from 2023: retention would expire their blocks mid-test.
    c.compactor.compaction.disabled = true;
    common::use_s3(&mut c, &s3.endpoint(), s3.config(), "traces");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_pushes_back_only_while_the_object_store_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(tmp.path().join("s3"), 0, S3Config::default())
        .await
        .unwrap();
    s3.create_bucket("traces").unwrap();
    let mut cfg = s3_config(&tmp.path().join("b"), &s3);
    cfg.ingester.trace_idle_period.0 = Duration::from_millis(50);
    cfg.ingester.flush_check_period.0 = Duration::from_millis(50);
    cfg.ingester.max_block_duration.0 = Duration::from_millis(200);
    cfg.ingester.flush_retry_backoff.0 = Duration::from_millis(50);
    cfg.ingester.flush_retry_max_backoff.0 = Duration::from_millis(200);
    cfg.ingester.max_memory_bytes = bytesize::ByteSize::kib(128);
    let b = start(cfg).await;
    let mut want = BTreeMap::new();
    let mut next = 0u64;

    // The store keeps up: blocks are written as fast as traces arrive, nothing is refused.
    for _ in 0..60 {
        let (status, _, body) = post_proto(&b, None, &request("bp", next, 10, 2)).await;
        assert_eq!(status, 200, "refused while the store works: {body:?}");
        (next..next + 10).for_each(|n| {
            want.insert(n, 2);
        });
        next += 10;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = b.addrs.http;
    until("blocks written", Duration::from_secs(60), || async {
        metric(addr, "reference_backend_blocks_flushed_total").await >= 2.0
    })
    .await;

    // The store fails: blocks wait, their index fills memory, ingest answers 503.
    let (root, port, creds) = (s3.root().to_path_buf(), s3.port(), s3.config().clone());
    s3.stop().await;
    let mut refused = None;
    for _ in 0..20_000 {
        let (status, retry, body) = post_proto(&b, None, &request("bp", next, 10, 2)).await;
        match status {
            200 => {
                (next..next + 10).for_each(|n| {
                    want.insert(n, 2);
                });
                next += 10;
            }
            503 => {
                refused = Some((retry, String::from_utf8_lossy(&body).into_owned()));
                break;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    let (retry, body) = refused.expect("a 503 while the store is down");
    assert!(retry.is_some(), "503 carries Retry-After");
    assert!(body.contains("memory bound reached"), "{body}");
    assert!(metric(addr, "reference_backend_flush_failures_total").await >= 1.0);

    // Lookups of blocks on the (debug-built) S3 server are slow: read back every 7th trace
    // and the last ones, sent while the store was down.
    let last = next;
    let mut want: BTreeMap<u64, usize> = want
        .into_iter()
        .filter(|(n, _)| n % 7 == 0 || last - n <= 20)
        .collect();

    // The store returns: blocks are written, memory drains, ingest is accepted again.
    let s3 = EmbeddedS3::start(root, port, creds).await.unwrap();
    let retry = request("bp", next, 10, 2);
    until(
        "ingest accepted after the store returned",
        Duration::from_secs(60),
        || {
            let b = &b;
            let retry = &retry;
            async move { post_proto(b, None, retry).await.0 == 200 }
        },
    )
    .await;
    (next..next + 10).for_each(|n| {
        want.insert(n, 2);
    });
    assert_traces(&b, &want, "store back").await;
    flush(&b).await;
    b.shutdown().await.unwrap();
    // Every acknowledged trace reached the bucket.
    let fresh = start(s3_config(&tmp.path().join("fresh"), &s3)).await;
    assert_traces(&fresh, &want, "new backend, bucket only").await;
    fresh.shutdown().await.unwrap();
    s3.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_go_up_in_parts_to_s3_and_to_local_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(tmp.path().join("s3"), 0, S3Config::default())
        .await
        .unwrap();
    s3.create_bucket("traces").unwrap();
    let file = tmp.path().join("object");
    // 12 MiB and a bit: two full parts of 5 MiB and a short last one.
    let data: Vec<u8> = (0..12 * 1024 * 1024 + 123u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let local = config(&tmp.path().join("local"));
    for (what, cfg) in [
        ("s3", s3_config(&tmp.path().join("b"), &s3)),
        ("local", local),
    ] {
        let store = reference_backend::store::BlockStore::from_config(&cfg.storage.trace).unwrap();
        store
            .put_file(
                "t/big/data",
                &file,
                data.len() as u64,
                1024 * 1024,
                5 * 1024 * 1024,
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = store.get("t/big/data").await.unwrap();
        assert_eq!(got.len(), data.len(), "{what}");
        assert!(got.as_ref() == data.as_slice(), "{what}: content differs");
    }
    s3.stop().await;
}
