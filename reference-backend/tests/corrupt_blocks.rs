//! Damaged blocks in object storage: a block whose `data` (rb1 pages, rb2 Parquet column
//! chunks) or index (rb1 `index`, rb2 Parquet footer) bytes are damaged makes every query
//! that needs it answer 500 naming the block (`single-tenant/<block id>`), counted in
//! `reference_backend_corrupt_block_reads_total{object}`; lookups of traces in other
//! blocks and searches and tag requests whose time range leaves the block out keep
//! answering; the process stays up. On rb1 and rb2, on the local backend and on S3 (the
//! embedded S3 server). The damage is written through the store's own API, as a bad disk
//! or a bad upload would leave it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use embedded_s3::{EmbeddedS3, S3Config};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use reference_backend::block::BlockMeta;
use reference_backend::release::ReleaseId;
use reference_backend::store::BlockStore;
use reference_backend::{Backend, Config};
use tempo_api::trace_id::trace_id_to_hex;

/// Block A's traces start here (unix s); block B's two hours later.
const T_A: u64 = 1_700_000_000;
const T_B: u64 = T_A + 7_200;
/// Traces per block.
const TRACES: u64 = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Damage {
    /// The block's trace data: in rb1 a zeroed range (an eighth of the object, at most
    /// 4 KiB) a third into `data` (its one page); in rb2 8 zeroed bytes in the middle of
    /// every column chunk (a search reads only the columns it needs).
    Data,
    /// The index: rb1's `index` object with a zeroed range, rb2's Parquet footer with its
    /// first 64 bytes zeroed.
    Index,
}

/// `common::request`, shifted to start at `start_s`.
fn request_at(first: u64, start_s: u64) -> ExportTraceServiceRequest {
    let mut req = common::request("corrupt", first, TRACES, 3);
    for span in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        let shift = start_s * 1_000_000_000 - 1_700_000_000_000_000_000;
        span.start_time_unix_nano += shift;
        span.end_time_unix_nano += shift;
    }
    req
}

/// The start of a response body, for assertion messages.
fn head(body: &str) -> &str {
    body.char_indices()
        .nth(400)
        .map_or(body, |(i, _)| &body[..i])
}

async fn get(b: &Backend, path: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let base = format!("http://{}{path}", b.addrs.http);
    let url = reqwest::Url::parse_with_params(&base, pairs).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Sum of a metric's samples whose line starts with `prefix`.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// The block holding `start_s`'s traces: its meta.
async fn block_at(store: &BlockStore, start_s: u64) -> BlockMeta {
    for key in store.list_keys().await.unwrap() {
        if !key.ends_with("/meta.json") || !key.starts_with("single-tenant/") {
            continue;
        }
        let bytes = store.get(&key).await.unwrap();
        let meta = BlockMeta::from_json("single-tenant", &key, &bytes).unwrap();
        if meta.time_range_secs().0 == start_s {
            return meta;
        }
    }
    panic!("no block starts at {start_s}");
}

/// Damage one object of `meta`'s block through the store.
async fn damage(store: &BlockStore, meta: &BlockMeta, damage: Damage) -> &'static str {
    let base = format!("{}/{}", meta.tenant_id, meta.block_id);
    let (object, range) = match (meta.format.as_str(), damage) {
        ("rb1", Damage::Index) => {
            let len = store.get(&format!("{base}/index")).await.unwrap().len();
            ("index", len / 2..(len / 2 + 32).min(len - 4))
        }
        ("rb2", Damage::Index) => {
            let data = store.get(&format!("{base}/data")).await.unwrap();
            let n = data.len();
            let footer = u32::from_le_bytes(data[n - 8..n - 4].try_into().unwrap()) as usize;
            let start = n - 8 - footer;
            ("data", start..start + 64)
        }
        ("rb1", Damage::Data) => {
            let len = store.get(&format!("{base}/data")).await.unwrap().len();
            ("data", len / 3..len / 3 + (len / 8).min(4096))
        }
        ("rb2", Damage::Data) => {
            // Every column chunk, so that every query reading the block meets damage.
            let data = store.get(&format!("{base}/data")).await.unwrap();
            let md = parquet::file::metadata::ParquetMetaDataReader::new()
                .parse_and_finish(&data)
                .unwrap();
            let mut bytes = data.to_vec();
            for c in md.row_groups().iter().flat_map(|rg| rg.columns()) {
                let (start, len) = c.byte_range();
                let mid = (start + len / 2) as usize;
                bytes[mid..mid + 8.min(len as usize / 2)].fill(0);
            }
            let key = format!("{base}/data");
            store.put(&key, Bytes::from(bytes)).await.unwrap();
            return "data";
        }
        (f, _) => panic!("format {f}"),
    };
    let key = format!("{base}/{object}");
    let mut bytes = store.get(&key).await.unwrap().to_vec();
    bytes[range].fill(0);
    store.put(&key, Bytes::from(bytes)).await.unwrap();
    if damage == Damage::Index && meta.format == "rb2" {
        "data"
    } else {
        object
    }
}

/// Write blocks A and B, damage A, restart without the WAL and check every answer.
async fn check(cfg: Config, dir: &Path, damage_kind: Damage) {
    let b = common::start(cfg.clone()).await;
    for (first, start) in [(0, T_A), (10_000, T_B)] {
        let (status, _, body) = common::post_proto(&b, None, &request_at(first, start)).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (status, body) = get(&b, "/flush", &[]).await;
        assert_eq!(status, 204, "/flush: {body}");
    }
    b.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.join("wal")).unwrap();

    let store = BlockStore::from_config(&cfg.storage.trace).unwrap();
    let a = block_at(&store, T_A).await;
    let object = damage(&store, &a, damage_kind).await;
    let named = format!("single-tenant/{}", a.block_id);

    let b = common::start(cfg.clone()).await;
    let in_a = trace_id_to_hex(&common::trace_id(7));
    let in_b = trace_id_to_hex(&common::trace_id(10_007));
    let (sa, sb) = (T_A.to_string(), T_B.to_string());
    let (sb_end, all_end) = ((T_B + 60).to_string(), (T_B + 60).to_string());
    let failing: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/api/traces/{in_a}"), vec![]),
        (format!("/api/v2/traces/{in_a}"), vec![]),
        ("/api/search".into(), vec![("q", "{}")]),
        (
            "/api/search".into(),
            vec![("q", "{}"), ("start", &sa), ("end", &all_end)],
        ),
        ("/api/search".into(), vec![("tags", "service.name=corrupt")]),
        ("/api/search/tags".into(), vec![]),
        ("/api/v2/search/tag/.service.name/values".into(), vec![]),
    ];
    for (path, params) in &failing {
        let (status, body) = get(&b, path, params).await;
        assert_eq!(status, 500, "{path} {params:?}: {}", head(&body));
        assert!(
            body.contains(&named),
            "{path} {params:?} names the block: {}",
            head(&body)
        );
    }
    // Block B keeps answering.
    let (status, body) = get(&b, &format!("/api/traces/{in_b}"), &[]).await;
    assert_eq!(status, 200, "trace in the intact block: {}", head(&body));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let spans: usize = v["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().unwrap())
        .map(|s| s["spans"].as_array().unwrap().len())
        .sum();
    assert_eq!(spans, 3, "{}", head(&body));
    let (status, body) = get(
        &b,
        "/api/search",
        &[
            ("q", "{}"),
            ("start", &sb),
            ("end", &sb_end),
            ("limit", "500"),
        ],
    )
    .await;
    assert_eq!(status, 200, "search over block B only: {}", head(&body));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["traces"].as_array().unwrap().len(), TRACES as usize);
    let (status, body) = get(
        &b,
        "/api/v2/search/tag/.service.name/values",
        &[("start", &sb), ("end", &sb_end)],
    )
    .await;
    assert_eq!(status, 200, "tag values over block B only: {}", head(&body));
    assert!(body.contains("corrupt"), "{}", head(&body));
    let (status, _) = get(&b, &format!("/api/traces/{}", "ab".repeat(16)), &[]).await;
    assert_eq!(status, 404, "an id no block holds");

    let (_, metrics) = get(&b, "/metrics", &[]).await;
    let counted = metric(
        &metrics,
        &format!("reference_backend_corrupt_block_reads_total{{object=\"{object}\"}}"),
    );
    assert_eq!(counted, failing.len() as f64, "{metrics}");
    let (status, _) = get(&b, "/ready", &[]).await;
    assert_eq!(status, 200, "still up");
    b.shutdown().await.unwrap();
}

fn local_config(dir: &Path, format: &str) -> Config {
    let mut c = common::config(dir);
    c.release = ReleaseId::R2;
    c.storage.trace.block.version = format.into();
    c.ingester.max_block_duration.0 = Duration::from_secs(3600);
    c
}

async fn local(format: &str, d: Damage) {
    let dir = tempfile::tempdir().unwrap();
    check(local_config(dir.path(), format), dir.path(), d).await;
}

async fn s3(format: &str, d: Damage) {
    let dir = tempfile::tempdir().unwrap();
    let s3 = EmbeddedS3::start(dir.path().join("s3"), 0, S3Config::default())
        .await
        .expect("start embedded s3");
    s3.create_bucket("traces").unwrap();
    let mut c = local_config(dir.path(), format);
    common::use_s3(&mut c, &s3.endpoint(), s3.config(), "traces");
    check(c, dir.path(), d).await;
    s3.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb1_damaged_data_local() {
    local("rb1", Damage::Data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb1_damaged_index_local() {
    local("rb1", Damage::Index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb2_damaged_data_local() {
    local("rb2", Damage::Data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb2_damaged_footer_local() {
    local("rb2", Damage::Index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb1_damaged_data_s3() {
    s3("rb1", Damage::Data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb1_damaged_index_s3() {
    s3("rb1", Damage::Index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb2_damaged_data_s3() {
    s3("rb2", Damage::Data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb2_damaged_footer_s3() {
    s3("rb2", Damage::Index).await;
}

/// An rb2 `data` object (found by fuzzing `rb2_block`) on which the Parquet reader itself
/// panics (definition levels past their buffer): a running backend answers 500 naming the
/// block and stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rb2_data_that_panics_the_parquet_reader() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/damaged/rb2-data-decoder-panic"),
    )
    .unwrap();
    let meta = BlockMeta {
        format: "rb2".into(),
        block_id: uuid::Uuid::from_u128(0xdead),
        tenant_id: "single-tenant".into(),
        start_time: "2023-11-14T22:13:20Z".into(),
        end_time: "2023-11-14T22:13:21Z".into(),
        total_objects: 300,
        total_spans: 750,
        size: data.len() as u64,
        encoding: "zstd".into(),
        bloom_shards: 0,
        compaction_level: 0,
    };
    let store = BlockStore::from_config(&cfg.storage.trace).unwrap();
    let base = format!("single-tenant/{}", meta.block_id);
    store
        .put(&format!("{base}/data"), Bytes::from(data))
        .await
        .unwrap();
    store
        .put(&format!("{base}/meta.json"), Bytes::from(meta.to_json()))
        .await
        .unwrap();
    let b = common::start(cfg).await;
    for (path, params) in [
        ("/api/search/tags", vec![]),
        ("/api/v2/search/tag/.service.name/values", vec![]),
    ] {
        let (status, body) = get(&b, path, &params).await;
        assert_eq!(status, 500, "{path}: {}", head(&body));
        assert!(
            body.contains(&base),
            "{path} names the block: {}",
            head(&body)
        );
        assert!(body.contains("parquet reader failed"), "{}", head(&body));
    }
    let (status, _) = get(&b, "/ready", &[]).await;
    assert_eq!(status, 200, "still up");
    let (_, metrics) = get(&b, "/metrics", &[]).await;
    assert_eq!(
        metric(
            &metrics,
            "reference_backend_corrupt_block_reads_total{object=\"data\"}"
        ),
        2.0
    );
    b.shutdown().await.unwrap();
}
