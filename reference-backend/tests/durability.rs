//! Restarts: WAL replay after a crash, blocks after a flush, torn WAL tails, and the
//! memory bound answering 503 and recovering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{client, config, post_proto, request, start, trace_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_flush_is_recovered_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Nothing is cut on its own during the test.
    cfg.ingester.trace_idle_period.0 = Duration::from_secs(3600);
    let b = start(cfg.clone()).await;
    for i in 0..10 {
        let (status, _, _) = post_proto(&b, None, &request("svc", i * 10, 10, 3)).await;
        assert_eq!(status, 200);
    }
    b.abort();
    let b = start(cfg.clone()).await;
    let c = client(&b);
    for t in 0..100 {
        let got = c.trace_v1(&trace_id(t)).await.unwrap();
        let spans = got.map(|r| common::span_names(&r).len());
        assert_eq!(spans, Some(3), "trace {t} after replay");
    }
    // Replayed data is flushed like any other, and the WAL shrinks after.
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    b.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let b = start(cfg).await;
    let got = client(&b).trace_v1(&trace_id(42)).await.unwrap().unwrap();
    assert_eq!(common::span_names(&got).len(), 3);
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_one_trace_across_wal_and_blocks_are_merged_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let b = start(cfg.clone()).await;
    let id = trace_id(7);
    assert_eq!(post_proto(&b, None, &request("a", 7, 1, 2)).await.0, 200);
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    // The same spans again (a client retry) plus a new one: duplicates are removed.
    assert_eq!(post_proto(&b, None, &request("a", 7, 1, 3)).await.0, 200);
    let got = client(&b).trace_v1(&id).await.unwrap().unwrap();
    assert_eq!(common::span_names(&got), ["span-0", "span-1", "span-2"]);
    b.abort();
    let b = start(cfg).await;
    let got = client(&b).trace_v1(&id).await.unwrap().unwrap();
    assert_eq!(common::span_names(&got), ["span-0", "span-1", "span-2"]);
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_wal_tail_is_truncated_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.ingester.trace_idle_period.0 = Duration::from_secs(3600);
    let b = start(cfg.clone()).await;
    assert_eq!(post_proto(&b, None, &request("svc", 1, 1, 1)).await.0, 200);
    assert_eq!(post_proto(&b, None, &request("svc", 2, 1, 1)).await.0, 200);
    b.abort();
    // Cut the newest non-empty segment in the middle of its last record.
    let mut segs: Vec<_> = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 8)
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let b = start(cfg).await;
    let c = client(&b);
    assert!(c.trace_v1(&trace_id(1)).await.unwrap().is_some());
    assert!(c.trace_v1(&trace_id(2)).await.unwrap().is_none());
    // And the backend keeps working.
    assert_eq!(post_proto(&b, None, &request("svc", 3, 1, 1)).await.0, 200);
    assert!(c.trace_v1(&trace_id(3)).await.unwrap().is_some());
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bound_answers_503_then_recovers_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.ingester.max_memory_bytes = bytesize::ByteSize::kib(64);
    cfg.ingester.trace_idle_period.0 = Duration::from_secs(3600);
    let b = start(cfg).await;
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let (status, retry, body) = post_proto(&b, None, &request("svc", i * 10, 10, 2)).await;
        match status {
            200 => accepted.push(i),
            503 => {
                refused = Some((retry, body));
                break;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    let (retry, body) = refused.expect("memory bound reached");
    assert!(retry.is_some(), "503 carries Retry-After");
    assert!(String::from_utf8_lossy(&body).contains("memory bound"));
    // Flushing frees memory; ingest works again and nothing accepted is lost.
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        post_proto(&b, None, &request("svc", 10_000, 1, 1)).await.0,
        200
    );
    let c = client(&b);
    for i in accepted {
        assert!(c.trace_v1(&trace_id(i * 10 + 9)).await.unwrap().is_some());
    }
    let metrics = reqwest::get(format!("http://{}/metrics", b.addrs.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(
        "tempo_discarded_spans_total{reason=\"backpressure\",tenant=\"single-tenant\"} 20"
    ));
    b.shutdown().await.unwrap();
}
