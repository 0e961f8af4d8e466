//! The compactor against a real block store on a temp dir: merging, de-duplication,
//! retention, the tenant index, through the server and on S3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod compaction_util;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use compaction_util::*;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use reference_backend::block::index::{COMPACTED_META_OBJECT, CompactedMeta, TenantIndex};
use reference_backend::block::{EncodingSettings, format_by_name};
use reference_backend::blocklist::BlockList;
use reference_backend::blocklist::Readable;
use uuid::Uuid;

#[tokio::test]
async fn blocks_merge_into_one_with_duplicates_removed() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let s = store(&c);
    let expected = seed(&s).await;
    let r = compactor(&c).cycle(now()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.blocks_written, r.blocks_compacted), (1, 3));
    let (live, compacted, _) = bucket(&s).await;
    assert_eq!((live.len(), compacted.len()), (1, 3));

    let ix = TenantIndex::read(&s, TENANT)
        .await
        .unwrap()
        .expect("index written");
    assert_eq!(ix.meta.len(), 1);
    assert_eq!(ix.compacted.len(), 3);
    let out = &ix.meta[0];
    assert_eq!(out.block_id, live[0]);
    assert_eq!(out.compaction_level, 1);
    assert_eq!(out.total_objects, 10);
    let unique_spans: usize = expected.values().map(BTreeSet::len).sum();
    assert_eq!(
        out.total_spans, unique_spans as u64,
        "span 2 of traces 4-5 and 8 stored once"
    );

    // The output itself holds each span once (not only the query's merge).
    let reader = format_by_name("rb1", &EncodingSettings::default())
        .unwrap()
        .open(&s, out)
        .await
        .unwrap();
    let all = reader.read_all().await.unwrap();
    assert_eq!(all.len(), 10);
    for (id, bytes) in &all {
        let td = TracesData::decode(bytes.as_slice()).unwrap();
        let n = td
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .count();
        let want = expected
            .iter()
            .find(|(k, _)| trace_id(**k) == *id)
            .unwrap()
            .1
            .len();
        assert_eq!(n, want);
    }
    assert_readable_both_ways(&c, &expected, "after compaction").await;

    // Inputs go after the grace period; the output stays and is not compacted again.
    let r = compactor(&c).cycle(later()).await.unwrap();
    assert_eq!((r.blocks_deleted, r.blocks_written), (3, 0));
    assert_eq!(bucket(&s).await, (live.clone(), Vec::new(), 1));
    let ix = TenantIndex::read(&s, TENANT).await.unwrap().unwrap();
    assert_eq!((ix.meta.len(), ix.compacted.len()), (1, 0));
    assert_readable_both_ways(&c, &expected, "after deletion").await;
}

#[tokio::test]
async fn outputs_are_compacted_again_with_a_higher_level() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    let s = store(&c);
    let mut expected = seed(&s).await;
    compactor(&c).cycle(now()).await.unwrap();
    write_block(&s, TENANT, &[(11, &[1]), (1, &[9])]).await;
    expected.entry(11).or_default().insert(1);
    expected.entry(1).or_default().insert(9);
    let r = compactor(&c).cycle(now()).await.unwrap();
    assert_eq!((r.blocks_written, r.blocks_compacted), (1, 2));
    let ix = TenantIndex::read(&s, TENANT).await.unwrap().unwrap();
    assert_eq!(ix.meta.len(), 1);
    assert_eq!(ix.meta[0].compaction_level, 2);
    assert_readable_both_ways(&c, &expected, "second level").await;
}

#[tokio::test]
async fn retention_marks_then_deletes_old_blocks_of_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.compactor.compaction.block_retention.0 = Duration::from_secs(24 * 3600);
    let s = store(&c);
    write_block(&s, TENANT, &[(1, &[1])]).await;
    write_block(&s, "other", &[(2, &[1])]).await;
    let day_later = now() + Duration::from_secs(24 * 3600);
    let r = compactor(&c).cycle(day_later).await.unwrap();
    assert_eq!((r.blocks_expired, r.blocks_deleted), (2, 0));
    let list = BlockList::new(store(&c), EncodingSettings::default())
        .with_readable(Readable::of(c.release, None));
    list.poll().await.unwrap();
    assert!(list.is_empty(), "expired blocks leave readers' lists");
    let r = compactor(&c).cycle(day_later + GRACE).await.unwrap();
    assert_eq!(r.blocks_deleted, 2);
    let keys = s.list_keys().await.unwrap();
    assert!(
        keys.iter().all(|k| k.ends_with("index.json.gz")),
        "only tenant indexes remain: {keys:?}"
    );
}

#[tokio::test]
async fn poll_reads_the_index_not_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.compactor.compaction.compaction_window.0 = Duration::from_secs(1); // nothing merges
    let s = store(&c);
    let a = write_block(&s, TENANT, &[(1, &[1])]).await;
    compactor(&c).cycle(now()).await.unwrap();
    let list = Arc::new(
        BlockList::new(store(&c), EncodingSettings::default())
            .with_readable(Readable::of(c.release, None)),
    );
    list.poll().await.unwrap(); // the first poll lists
    assert_eq!(list.len(), 1);

    // Behind the index's back: a new block, and block `a` marked compacted.
    let b = write_block(&s, TENANT, &[(2, &[1])]).await;
    let mark = CompactedMeta::new(a.clone(), now());
    s.put(
        &format!("{TENANT}/{}/{COMPACTED_META_OBJECT}", a.block_id),
        mark.to_json().into(),
    )
    .await
    .unwrap();
    list.poll().await.unwrap();
    let ids: Vec<Uuid> = list
        .blocks(TENANT)
        .iter()
        .map(|e| e.meta.block_id)
        .collect();
    assert_eq!(ids, [a.block_id], "the poll saw the index, not the bucket");

    // The next cycle rebuilds the index from a listing.
    compactor(&c).cycle(now()).await.unwrap();
    list.poll().await.unwrap();
    let ids: Vec<Uuid> = list
        .blocks(TENANT)
        .iter()
        .map(|e| e.meta.block_id)
        .collect();
    assert_eq!(ids, [b.block_id]);
}

/// Through a running backend: three flushed blocks (one span sent twice) become one.
#[tokio::test]
async fn the_server_compacts_flushed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.compactor.compaction.compaction_cycle.0 = Duration::from_millis(100);
    // The test spans are from 2023: keep them.
    c.compactor.compaction.block_retention.0 = Duration::from_secs(100 * 365 * 24 * 3600);
    let b = common::start(c.clone()).await;
    let http = reqwest::Client::new();
    let flush = format!("http://{}/flush", b.addrs.http);
    for (first, n) in [(1, 4), (3, 4), (3, 1)] {
        let (status, _, _) =
            common::post_proto(&b, None, &common::request("svc", first, n, 2)).await;
        assert_eq!(status, 200);
        assert!(
            http.post(&flush)
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    let s = store(&c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (live, _, _) = bucket(&s).await;
        let ix = TenantIndex::read(&s, TENANT).await.ok().flatten();
        // One block with every trace; its level depends on whether the compactor ran
        // between the flushes (1) or only after all of them (2 or more is possible too).
        let done = ix.is_some_and(|ix| {
            ix.meta.len() == 1
                && live == [ix.meta[0].block_id]
                && ix.meta[0].total_objects == 6
                && ix.meta[0].compaction_level >= 1
        });
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no compaction: {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ix = TenantIndex::read(&s, TENANT).await.unwrap().unwrap();
    assert_eq!(ix.meta[0].total_objects, 6);
    assert_eq!(
        ix.meta[0].total_spans, 12,
        "the resent spans are stored once"
    );
    let client = common::client(&b);
    for t in 1..=6 {
        let rs = client.trace_v1(&trace_id(t)).await.unwrap().unwrap();
        assert_eq!(common::span_names(&rs), ["span-0", "span-1"], "trace {t}");
    }
    let metrics = http
        .get(format!("http://{}/metrics", b.addrs.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let written: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("reference_backend_compaction_blocks_written_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("compaction metric exported");
    assert!(written >= 1, "{metrics}");
    b.shutdown().await.unwrap();
}

/// The same through S3 (embedded server, real SigV4) under a key prefix: tenant discovery
/// with a delimiter listing, the index, the marks and deletion.
#[tokio::test]
async fn compaction_and_index_polls_work_on_s3_under_a_prefix() {
    use embedded_s3::{EmbeddedS3, S3Config};
    let tmp = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(tmp.path().join("s3"), 0, S3Config::default())
        .await
        .unwrap();
    s3.create_bucket("traces").unwrap();
    let creds = S3Config::default();
    let mut c = config(tmp.path());
    common::use_s3(&mut c, &s3.endpoint(), &creds, "traces");
    c.storage.trace.s3.prefix = "tempo".into();
    let s = store(&c);
    let expected = seed(&s).await;
    assert_eq!(s.list_top_dirs().await.unwrap(), [TENANT]);
    let r = compactor(&c).cycle(now()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.blocks_written, r.blocks_compacted), (1, 3));
    assert_readable_both_ways(&c, &expected, "s3").await;
    let r = compactor(&c).cycle(later()).await.unwrap();
    assert_eq!(r.blocks_deleted, 3);
    let (live, compacted, dirs) = bucket(&s).await;
    assert_eq!((live.len(), compacted.len(), dirs), (1, 0, 1));
    assert_readable_both_ways(&c, &expected, "s3 after deletion").await;
}
