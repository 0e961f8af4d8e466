//! Golden blocks: blocks written by every released format are committed under `testdata/`
//! and must stay readable by every later build.
//!
//! Regenerate (only when adding a new format, never to "fix" a failure):
//! `TRACEBENCH_WRITE_GOLDEN=1 cargo test -p reference-backend --test golden`
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use reference_backend::block::{
    BlockInput, BlockMeta, EncodingSettings, TraceRecord, format_by_name,
};
use reference_backend::blocklist::{BlockList, Readable};
use reference_backend::config::{Backend, LocalConfig, TraceStorageConfig};
use reference_backend::ingest::batch::split_valid;
use reference_backend::release::ReleaseId;
use reference_backend::store::BlockStore;

const GOLDEN_BLOCK: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0";
const TRACES: u64 = 300;

fn testdata(format: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format)
}

fn store_at(path: PathBuf) -> BlockStore {
    let cfg = TraceStorageConfig {
        backend: Backend::Local,
        local: LocalConfig { path },
        ..Default::default()
    };
    BlockStore::from_config(&cfg).unwrap()
}

/// The corpus: trace n has (n % 4) + 1 spans of service `golden-<n % 3>`.
fn corpus() -> Vec<(reference_backend::ingest::batch::Fragment, u64)> {
    let mut out = Vec::new();
    for n in 0..TRACES {
        let req = common::request(&format!("golden-{}", n % 3), n, 1, (n % 4) as u8 + 1);
        let f = split_valid(&req).fragments.remove(0);
        out.push((f, n));
    }
    out.sort_by_key(|a| a.0.trace_id);
    out
}

async fn write_golden(format: &str) {
    let dir = testdata(format);
    let _ = std::fs::remove_dir_all(&dir);
    let store = store_at(dir);
    let corpus = corpus();
    let records: Vec<TraceRecord<'_>> = corpus
        .iter()
        .map(|(f, _)| TraceRecord {
            id: f.trace_id,
            data: &f.bytes,
            start_ns: f.start_ns,
            end_ns: f.end_ns,
            spans: f.spans,
        })
        .collect();
    let settings = EncodingSettings {
        page_size: 4096,
        ..EncodingSettings::default()
    };
    let fmt = format_by_name(format, &settings).unwrap();
    fmt.write(
        &store,
        BlockInput {
            tenant: "single-tenant",
            block_id: GOLDEN_BLOCK.parse().unwrap(),
            traces: &records,
        },
    )
    .await
    .unwrap();
}

async fn check_golden(format: &str) {
    let store = store_at(testdata(format));
    // Release 2 reads every format there is.
    let list = BlockList::new(store, EncodingSettings::default())
        .with_readable(Readable::of(ReleaseId::R2, None));
    assert_eq!(list.poll().await.unwrap(), 1, "one golden {format} block");
    let blocks = list.blocks("single-tenant");
    let meta: &BlockMeta = &blocks[0].meta;
    assert_eq!(meta.format, format);
    assert_eq!(meta.total_objects, TRACES);
    let reader = blocks[0]
        .reader(list.store(), list.settings(), list.readable())
        .await
        .unwrap();
    for (f, n) in corpus() {
        let got = reader
            .find_trace(&f.trace_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("golden trace {n} missing"));
        let td = TracesData::decode(got.as_slice()).unwrap();
        let expected = TracesData::decode(f.bytes.as_slice()).unwrap();
        assert_eq!(td, expected, "golden trace {n}");
    }
    assert!(
        reader
            .find_trace(&common::trace_id(TRACES + 1))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb1_golden_block_is_readable() {
    if std::env::var_os("TRACEBENCH_WRITE_GOLDEN").is_some() {
        write_golden("rb1").await;
    }
    check_golden("rb1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb2_golden_block_is_readable() {
    if std::env::var_os("TRACEBENCH_WRITE_GOLDEN").is_some() {
        write_golden("rb2").await;
    }
    check_golden("rb2").await;
}
