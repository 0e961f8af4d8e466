//! Upgrades between releases on the same store and WAL directory: 1→2 and 2→3 keep every
//! trace readable by id and by search, the documented 1→2→3 path (rewrite rb1 blocks on
//! release 2) works, rollbacks fail cleanly or read, and 1→3 straight fails naming the
//! rb1 blocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use reference_backend::release::ReleaseId::{self, R1, R2, R3};
use reference_backend::{Backend, Config};
use tempo_api::search::SearchRequest;
use tempo_api::trace_id::trace_id_to_hex;

use common::{client, post_proto, request, start, trace_id};

const SPANS: u8 = 3;

fn config(dir: &Path, release: ReleaseId) -> Config {
    let mut c = common::config(dir);
    c.release = release;
    // The corpus is timestamped in 2023: keep retention from expiring it.
    c.compactor.compaction.block_retention.0 = Duration::from_secs(20 * 365 * 24 * 3600);
    c
}

async fn flush(b: &Backend) {
    let r = reqwest::get(format!("http://{}/flush", b.addrs.http))
        .await
        .unwrap();
    assert!(r.status().is_success(), "flush: {}", r.status());
}

/// Write traces `first..first+n` with `b` (service `svc`).
async fn write(b: &Backend, svc: &str, first: u64, n: u64) {
    let (status, _, body) = post_proto(b, None, &request(svc, first, n, SPANS)).await;
    assert_eq!(status, 200, "{body:?}");
}

/// Seed with `release`: traces 1..=20 in flushed blocks, 101..=120 only in the WAL (the
/// backend is killed without a final flush).
async fn seed(dir: &Path, release: ReleaseId) {
    let b = start(config(dir, release)).await;
    write(&b, "upgrade", 1, 20).await;
    flush(&b).await;
    write(&b, "upgrade", 101, 20).await;
    b.abort();
}

fn seeded() -> Vec<u64> {
    (1..=20).chain(101..=120).collect()
}

/// Every trace in `ids` comes back by id with all its spans.
async fn readable_by_id(b: &Backend, ids: &[u64]) {
    let c = client(b);
    for n in ids {
        let t = c
            .trace_v1(&trace_id(*n))
            .await
            .unwrap_or_else(|e| panic!("trace {n}: {e}"))
            .unwrap_or_else(|| panic!("trace {n} missing"));
        let spans: usize = t
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(spans, SPANS as usize, "trace {n}");
    }
}

/// A search for `svc` finds exactly `ids`.
async fn readable_by_search(b: &Backend, svc: &str, ids: &[u64]) {
    let req = SearchRequest::traceql(format!("{{ resource.service.name = \"{svc}\" }}"))
        .with_range(1_699_999_000, 1_700_001_000)
        .with_limit(10_000);
    let found: BTreeSet<String> = client(b)
        .search(&req)
        .await
        .unwrap()
        .traces
        .into_iter()
        .map(|t| t.trace_id)
        .collect();
    let want: BTreeSet<String> = ids
        .iter()
        .map(|n| tempo_api::trace_id::trace_id_to_search_hex(&trace_id(*n)))
        .collect();
    assert_eq!(found, want);
}

async fn everything_readable(b: &Backend, ids: &[u64]) {
    readable_by_id(b, ids).await;
    readable_by_search(b, "upgrade", ids).await;
}

fn block_formats(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(tenants) = std::fs::read_dir(dir.join("blocks")) else {
        return out;
    };
    for t in tenants.flatten() {
        for b in std::fs::read_dir(t.path()).into_iter().flatten().flatten() {
            let compacted = b.path().join("meta.compacted.json").exists();
            if let Ok(meta) = std::fs::read(b.path().join("meta.json"))
                && !compacted
            {
                let v: serde_json::Value = serde_json::from_slice(&meta).unwrap();
                out.push(v["format"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_1_to_2_reads_everything_and_rolls_back_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), R1).await;
    assert!(block_formats(dir.path()).iter().all(|f| f == "rb1"));

    let b = start(config(dir.path(), R2)).await;
    everything_readable(&b, &seeded()).await;
    write(&b, "upgrade", 201, 10).await;
    flush(&b).await;
    let mut all = seeded();
    all.extend(201..=210);
    everything_readable(&b, &all).await;
    b.shutdown().await.unwrap();
    assert!(block_formats(dir.path()).contains(&"rb2".to_owned()));

    // Rollback to 1: rb2 blocks are unreadable to release 1, so its queries fail naming
    // the block instead of answering partially…
    let b = start(config(dir.path(), R1)).await;
    let e = client(&b).trace_v1(&trace_id(201)).await.unwrap_err();
    assert!(e.to_string().contains("rb2"), "{e}");
    b.shutdown().await.unwrap();
    // …and nothing was damaged: release 2 still reads all of it.
    let b = start(config(dir.path(), R2)).await;
    everything_readable(&b, &all).await;
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_2_to_3_reads_everything_and_3_rolls_back_to_2() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), R2).await;
    let b = start(config(dir.path(), R3)).await;
    everything_readable(&b, &seeded()).await;
    write(&b, "upgrade", 201, 10).await;
    flush(&b).await;
    b.shutdown().await.unwrap();
    let mut all = seeded();
    all.extend(201..=210);
    let b = start(config(dir.path(), R2)).await;
    everything_readable(&b, &all).await;
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_1_straight_to_3_fails_naming_the_rb1_blocks() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), R1).await;
    let b = start(config(dir.path(), R3)).await;
    let c = client(&b);
    let raw = c
        .trace_raw(&format!("/api/traces/{}", trace_id_to_hex(&trace_id(1))))
        .await
        .unwrap();
    assert_eq!(raw.status, 500, "{}", raw.text());
    let msg = raw.text();
    for needle in [
        "format rb1",
        "release 3 cannot read",
        "releases that can read it: 1, 2",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in {msg}");
    }
    // Search touches the same blocks and fails the same way.
    let e = c
        .search(
            &SearchRequest::traceql("{ resource.service.name = \"upgrade\" }")
                .with_range(1_699_999_000, 1_700_001_000),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rb1"), "{e}");
    let metrics = reqwest::get(format!("http://{}/metrics", b.addrs.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l
            .starts_with("reference_backend_unreadable_block_reads_total{format=\"rb1\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_path_1_to_2_rewrite_then_3_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), R1).await;
    let mut c2 = config(dir.path(), R2);
    let comp = &mut c2.compactor.compaction;
    comp.rewrite_old_formats = true;
    comp.compaction_cycle.0 = Duration::from_millis(100);
    comp.compacted_block_retention.0 = Duration::from_millis(100);
    let b = start(c2).await;
    eprintln!("phase: release 2 before the rewrite");
    everything_readable(&b, &seeded()).await;
    flush(&b).await;
    // Wait (bounded) for the compactor to rewrite every rb1 block.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while block_formats(dir.path()).iter().any(|f| f == "rb1") {
        assert!(
            std::time::Instant::now() < deadline,
            "rb1 blocks left: {:?}",
            block_formats(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("phase: release 2 after the rewrite");
    everything_readable(&b, &seeded()).await;
    b.shutdown().await.unwrap();
    eprintln!("phase: release 3");
    let b = start(config(dir.path(), R3)).await;
    everything_readable(&b, &seeded()).await;
    b.shutdown().await.unwrap();
}
