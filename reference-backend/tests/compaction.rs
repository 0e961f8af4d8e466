//! The compactor against a real block store on a temp dir: merging, de-duplication,
//! retention, the tenant index, and a crash between every two of its writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use reference_backend::block::index::{
    COMPACTED_META_OBJECT, CompactedMeta, TenantIndex, parse_listing,
};
use reference_backend::block::{
    BlockInput, BlockMeta, EncodingSettings, TraceRecord, format_by_name,
};
use reference_backend::blocklist::BlockList;
use reference_backend::compactor::Compactor;
use reference_backend::config::Config;
use reference_backend::live::LiveStore;
use reference_backend::metrics::Metrics;
use reference_backend::query::{Querier, TimeBounds};
use reference_backend::release::ReleaseId;
use reference_backend::store::BlockStore;
use uuid::Uuid;

const TENANT: &str = "single-tenant";
/// Span times of every test trace (unix seconds).
const BASE_S: u64 = 1_700_000_000;
const GRACE: Duration = Duration::from_secs(3600);

fn config(dir: &Path) -> Config {
    let mut c = common::config(dir);
    c.release = ReleaseId::R2;
    c.storage.trace.block.version = "rb1".into();
    c.compactor.compaction.compacted_block_retention.0 = GRACE;
    c
}

fn store(c: &Config) -> BlockStore {
    BlockStore::from_config(&c.storage.trace).unwrap()
}

/// "Now" for the compactor: a minute after the spans.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(BASE_S + 60)
}

fn later() -> SystemTime {
    now() + GRACE + Duration::from_secs(1)
}

fn trace_id(n: u64) -> [u8; 16] {
    common::trace_id(n)
}

fn span_id(trace: u64, s: u8) -> Vec<u8> {
    let mut id = [0u8; 8];
    id[..7].copy_from_slice(&trace.to_be_bytes()[1..]);
    id[7] = s;
    id.to_vec()
}

/// Encoded spans `spans` of trace `n`.
fn trace_bytes(n: u64, spans: &[u8]) -> Vec<u8> {
    TracesData {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .iter()
                    .map(|s| Span {
                        trace_id: trace_id(n).to_vec(),
                        span_id: span_id(n, *s),
                        name: format!("span-{s}"),
                        start_time_unix_nano: BASE_S * 1_000_000_000 + n * 1000 + *s as u64,
                        end_time_unix_nano: BASE_S * 1_000_000_000 + n * 1000 + 500,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Write one rb1 block holding `traces` (trace number → span numbers).
async fn write_block(store: &BlockStore, tenant: &str, traces: &[(u64, &[u8])]) -> BlockMeta {
    let data: Vec<(u64, Vec<u8>)> = traces
        .iter()
        .map(|(n, s)| (*n, trace_bytes(*n, s)))
        .collect();
    let mut records: Vec<TraceRecord<'_>> = data
        .iter()
        .zip(traces)
        .map(|((n, b), (_, s))| TraceRecord {
            id: trace_id(*n),
            data: b,
            start_ns: BASE_S * 1_000_000_000 + n * 1000,
            end_ns: BASE_S * 1_000_000_000 + n * 1000 + 500,
            spans: s.len() as u32,
        })
        .collect();
    records.sort_by_key(|r| r.id);
    let format = format_by_name("rb1", &EncodingSettings::default()).unwrap();
    format
        .write(
            store,
            BlockInput {
                tenant,
                block_id: Uuid::new_v4(),
                traces: &records,
            },
        )
        .await
        .unwrap()
}

/// Three overlapping blocks; returns what every trace must hold.
async fn seed(store: &BlockStore) -> BTreeMap<u64, BTreeSet<u8>> {
    let one: &[u8] = &[1, 2];
    let two: &[u8] = &[2, 3];
    let b1: Vec<(u64, &[u8])> = (1..=5).map(|n| (n, one)).collect();
    let b2: Vec<(u64, &[u8])> = (4..=8).map(|n| (n, two)).collect();
    let b3: Vec<(u64, &[u8])> = (8..=10).map(|n| (n, &[4u8][..])).collect();
    for b in [&b1, &b2, &b3] {
        write_block(store, TENANT, b).await;
    }
    let mut expected: BTreeMap<u64, BTreeSet<u8>> = BTreeMap::new();
    for (n, spans) in b1.iter().chain(&b2).chain(&b3) {
        expected.entry(*n).or_default().extend(spans.iter());
    }
    expected
}

/// Every trace read through a fresh block list holds exactly its spans, each once.
async fn assert_readable(list: BlockList, expected: &BTreeMap<u64, BTreeSet<u8>>, when: &str) {
    let list = Arc::new(list);
    list.poll().await.unwrap();
    let q = Querier::new(
        Arc::new(LiveStore::default()),
        list,
        Arc::new(Metrics::new()),
    );
    for (n, spans) in expected {
        let found = q
            .find_trace(TENANT, &trace_id(*n), TimeBounds::default())
            .await
            .unwrap_or_else(|e| panic!("{when}: trace {n}: {e}"))
            .unwrap_or_else(|| panic!("{when}: trace {n} not found"));
        let got: Vec<Vec<u8>> = found
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.span_id.clone())
            .collect();
        let want: Vec<Vec<u8>> = spans.iter().map(|s| span_id(*n, *s)).collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, want, "{when}: trace {n} spans (each exactly once)");
    }
}

/// Read through a list built by listing (a process starting) and through the index alone.
async fn assert_readable_both_ways(c: &Config, expected: &BTreeMap<u64, BTreeSet<u8>>, when: &str) {
    let s = EncodingSettings::default();
    assert_readable(
        BlockList::new(store(c), s.clone()),
        expected,
        &format!("{when} (listing)"),
    )
    .await;
    assert_readable(
        BlockList::new(store(c), s).skip_first_listing(),
        expected,
        &format!("{when} (index)"),
    )
    .await;
}

/// Live and compacted block ids and the number of block directories of the tenant.
async fn bucket(s: &BlockStore) -> (Vec<Uuid>, Vec<Uuid>, usize) {
    let listing = parse_listing(s.list_keys().await.unwrap());
    let Some(t) = listing.get(TENANT) else {
        return (Vec::new(), Vec::new(), 0);
    };
    let live = t
        .iter()
        .filter(|(_, o)| o.is_live())
        .map(|(id, _)| *id)
        .collect();
    let compacted = t
        .iter()
        .filter(|(_, o)| o.is_compacted())
        .map(|(id, _)| *id)
        .collect();
    (live, compacted, t.len())
}

fn compactor(c: &Config) -> Compactor {
    Compactor::new(c, store(c), Arc::new(Metrics::new())).unwrap()
}

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
async fn retention_marks_then_deletes_old_blocks_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.compactor.compaction.block_retention.0 = Duration::from_secs(24 * 3600);
    let s = store(&c);
    write_block(&s, TENANT, &[(1, &[1])]).await;
    write_block(&s, "other", &[(2, &[1])]).await;
    let day_later = now() + Duration::from_secs(24 * 3600);
    let r = compactor(&c).cycle(day_later).await.unwrap();
    assert_eq!((r.blocks_expired, r.blocks_deleted), (2, 0));
    let list = BlockList::new(store(&c), EncodingSettings::default());
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
    let list = Arc::new(BlockList::new(store(&c), EncodingSettings::default()));
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

/// A crash after each write of a compaction cycle and of the following deletion cycle: every
/// trace stays readable exactly once, and clean cycles converge to one output block.
#[tokio::test]
async fn a_crash_between_any_two_writes_loses_and_duplicates_nothing() {
    // Writes of a clean run, per phase.
    let (compact_writes, delete_writes) = {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        seed(&store(&c)).await;
        let k = compactor(&c).with_crash_after(u64::MAX);
        k.cycle(now()).await.unwrap();
        let first = k.writes_done();
        let k = compactor(&c).with_crash_after(u64::MAX);
        k.cycle(later()).await.unwrap();
        (first, k.writes_done())
    };
    assert!(compact_writes >= 10, "{compact_writes}");
    assert!(delete_writes >= 16, "{delete_writes}");

    let (mut recovered, mut partial_removed) = (0, 0);
    for (phase, writes) in [("compaction", compact_writes), ("deletion", delete_writes)] {
        for n in 0..writes {
            let dir = tempfile::tempdir().unwrap();
            let c = config(dir.path());
            let s = store(&c);
            let expected = seed(&s).await;
            let when = format!("{phase} crash after {n} writes");
            if phase == "deletion" {
                compactor(&c).cycle(now()).await.unwrap();
            }
            let at = if phase == "deletion" { later() } else { now() };
            let crashed = compactor(&c).with_crash_after(n);
            let r = crashed.cycle(at).await.unwrap();
            assert!(!r.errors.is_empty(), "{when}: the crash is reported");
            assert_eq!(crashed.writes_done(), n);
            assert_readable_both_ways(&c, &expected, &when).await;

            // A fresh process finishes the job; after the grace period only the output stays.
            let r = compactor(&c).cycle(at).await.unwrap();
            assert!(r.errors.is_empty(), "{when}: {:?}", r.errors);
            recovered += r.jobs_recovered;
            partial_removed += r.partial_outputs_removed;
            assert_readable_both_ways(&c, &expected, &format!("{when}, recovered")).await;
            let r = compactor(&c).cycle(later()).await.unwrap();
            assert!(r.errors.is_empty(), "{when}: {:?}", r.errors);
            let (live, compacted, dirs) = bucket(&s).await;
            assert_eq!(
                (live.len(), compacted.len(), dirs),
                (1, 0, 1),
                "{when}: converged"
            );
            let ix = TenantIndex::read(&s, TENANT).await.unwrap().unwrap();
            assert_eq!(ix.meta.iter().map(|m| m.block_id).collect::<Vec<_>>(), live);
            assert_eq!(ix.meta[0].compaction_level, 1, "{when}");
            assert_readable_both_ways(&c, &expected, &format!("{when}, converged")).await;
        }
    }
    // Crashes inside the job left both kinds of leftovers, and the next cycle handled them:
    // partial outputs (before the output's meta.json) and unfinished marks (after it).
    assert!(partial_removed >= 4, "{partial_removed}");
    assert!(recovered >= 4, "{recovered}");
    eprintln!(
        "crash points: {compact_writes} compaction writes, {delete_writes} deletion writes; \
         {partial_removed} partial outputs removed, {recovered} jobs finished"
    );
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
        if live.len() == 1
            && ix.is_some_and(|ix| ix.meta.len() == 1 && ix.meta[0].compaction_level == 1)
        {
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
    assert!(
        metrics.contains("reference_backend_compaction_blocks_written_total 1"),
        "{metrics}"
    );
    b.shutdown().await.unwrap();
}
