//! Helpers of the compaction tests: a temp-dir config in release 2, small rb1 blocks
//! written directly, and checks that every trace is readable exactly once.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use reference_backend::block::index::parse_listing;
use reference_backend::block::{
    BlockInput, BlockMeta, EncodingSettings, TraceRecord, format_by_name,
};
use reference_backend::blocklist::BlockList;
use reference_backend::blocklist::Readable;
use reference_backend::compactor::Compactor;
use reference_backend::config::Config;
use reference_backend::live::LiveStore;
use reference_backend::metrics::Metrics;
use reference_backend::query::{Querier, TimeBounds};
use reference_backend::release::ReleaseId;
use reference_backend::store::BlockStore;
use uuid::Uuid;

pub const TENANT: &str = "single-tenant";
/// Span times of every test trace (unix seconds).
pub const BASE_S: u64 = 1_700_000_000;
pub const GRACE: Duration = Duration::from_secs(3600);

pub fn config(dir: &Path) -> Config {
    let mut c = crate::common::config(dir);
    c.release = ReleaseId::R2;
    c.storage.trace.block.version = "rb1".into();
    c.compactor.compaction.compacted_block_retention.0 = GRACE;
    c
}

pub fn store(c: &Config) -> BlockStore {
    BlockStore::from_config(&c.storage.trace).unwrap()
}

/// "Now" for the compactor: two hours after the spans, so their hour-long compaction
/// window is closed and its blocks are merged.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(BASE_S + 2 * 3600)
}

pub fn later() -> SystemTime {
    now() + GRACE + Duration::from_secs(1)
}

pub fn trace_id(n: u64) -> [u8; 16] {
    crate::common::trace_id(n)
}

pub fn span_id(trace: u64, s: u8) -> Vec<u8> {
    let mut id = [0u8; 8];
    id[..7].copy_from_slice(&trace.to_be_bytes()[1..]);
    id[7] = s;
    id.to_vec()
}

/// Encoded spans `spans` of trace `n`.
pub fn trace_bytes(n: u64, spans: &[u8]) -> Vec<u8> {
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
pub async fn write_block(store: &BlockStore, tenant: &str, traces: &[(u64, &[u8])]) -> BlockMeta {
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
pub async fn seed(store: &BlockStore) -> BTreeMap<u64, BTreeSet<u8>> {
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
pub async fn assert_readable(list: BlockList, expected: &BTreeMap<u64, BTreeSet<u8>>, when: &str) {
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
pub async fn assert_readable_both_ways(
    c: &Config,
    expected: &BTreeMap<u64, BTreeSet<u8>>,
    when: &str,
) {
    let s = EncodingSettings::default();
    assert_readable(
        BlockList::new(store(c), s.clone()).with_readable(Readable::of(c.release, None)),
        expected,
        &format!("{when} (listing)"),
    )
    .await;
    assert_readable(
        BlockList::new(store(c), s)
            .with_readable(Readable::of(c.release, None))
            .skip_first_listing(),
        expected,
        &format!("{when} (index)"),
    )
    .await;
}

/// Live and compacted block ids and the number of block directories of the tenant.
pub async fn bucket(s: &BlockStore) -> (Vec<Uuid>, Vec<Uuid>, usize) {
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

pub fn compactor(c: &Config) -> Compactor {
    Compactor::new(c, store(c), Arc::new(Metrics::new())).unwrap()
}
