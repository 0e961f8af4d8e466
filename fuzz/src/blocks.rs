//! Block readers on corrupt bytes: rb1 (`index` and `data`), rb2 (the Parquet `data`),
//! `meta.json`, `meta.compacted.json`, the tenant index, bucket listings, bloom shards.
//!
//! A reader given damaged objects must answer every query with an error that names the
//! block (`<tenant>/<block id>`), the way the query API then answers 500: never a panic,
//! never an error that hides which block is broken.

use std::sync::{Once, OnceLock};

use bytes::Bytes;
use reference_backend::block::bloom::Bloom;
use reference_backend::block::index::{CompactedMeta, TenantIndex, parse_listing};
use reference_backend::block::meta::META_OBJECT;
use reference_backend::block::{BlockMeta, BlockReader, EncodingSettings, format_by_name, rb1};
use reference_backend::search::traceql::parse_traceql;
use reference_backend::search::{Expr, SearchPlan};
use reference_backend::store::BlockStore;
use tempo_api::trace_id::TraceId;
use uuid::Uuid;

use crate::input::{Input, block_on};

/// Tenant of the fuzzed blocks.
const TENANT: &str = "fuzz-tenant";
/// Id of the fuzzed blocks.
const BLOCK: Uuid = Uuid::from_u128(0x0f1e_2d3c_4b5a_4978_8695_a4b3_c2d1_e0f0);

/// The rb1 reader. Input: a mode byte (bit 0: fix the index checksum so the fuzzer gets
/// past it; bit 1: add the golden block's bloom shard), the `index` object (u16 length
/// prefix), then the `data` object.
pub fn rb1_block(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let mut index = input.chunk().to_vec();
    let data = input.rest();
    if mode & 1 == 1 && index.len() >= 18 {
        let body = index.len() - 4;
        let crc = crc32c::crc32c(&index[..body]);
        index[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let mut ids: Vec<TraceId> = Vec::new();
    if let Ok(pages) = rb1::decode_index(&index) {
        for p in pages.iter().take(8) {
            ids.push(p.first);
            ids.push(p.last);
        }
    }
    let blooms = if mode & 2 == 2 {
        vec![golden_bloom().to_vec()]
    } else {
        Vec::new()
    };
    let objects = vec![("index", index), ("data", data.to_vec())];
    exercise("rb1", data.len() as u64, objects, blooms, &ids);
}

/// The rb2 reader. Input: a mode byte (bit 1: add the golden block's bloom shard), then
/// the Parquet `data` object; `meta.json` gives its true size.
pub fn rb2_block(data: &[u8]) {
    tolerate_decoder_panics();
    let mut input = Input::new(data);
    let mode = input.byte();
    let data = input.rest();
    let blooms = if mode & 2 == 2 {
        vec![golden_bloom().to_vec()]
    } else {
        Vec::new()
    };
    exercise(
        "rb2",
        data.len() as u64,
        vec![("data", data.to_vec())],
        blooms,
        &[],
    );
}

/// libFuzzer's panic hook aborts on every panic, also on one the code under test catches.
/// The rb2 reader catches panics of the Parquet and Arrow decoders on damaged pages and
/// answers with an error naming the block (`Rb2Reader::guarded`): let those unwind to it
/// (noting each on stderr), and abort as before on every other panic.
fn tolerate_decoder_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_decoder = info.location().is_some_and(|l| {
                let f = l.file();
                f.contains("/parquet-") || f.contains("/arrow-")
            });
            if in_decoder {
                if let Some(l) = info.location() {
                    eprintln!("decoder panic (the rb2 reader catches it): {l}");
                }
            } else {
                previous(info);
            }
        }));
    });
}

/// Metadata objects. The first byte picks which:
/// - 0: `meta.json`, then the block opened with the golden rb1 or rb2 objects under it;
/// - 1: `meta.compacted.json`;
/// - 2: a gzip tenant index; 3: its JSON (gzipped here first);
/// - 4: a bucket listing (one key per line);
/// - 5: a bloom shard; 6: the same with its checksum fixed up.
pub fn block_meta(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let rest = input.rest();
    match mode % 7 {
        0 => meta_json(rest),
        1 => {
            if let Ok(m) = CompactedMeta::from_json(TENANT, "b", rest) {
                let _ = m.compacted_ns();
                let _ = m.meta.time_range_secs();
            }
        }
        2 => tenant_index(rest),
        3 => {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            if gz.write_all(rest).is_ok()
                && let Ok(b) = gz.finish()
            {
                tenant_index(&b);
            }
        }
        4 => {
            let keys = String::from_utf8_lossy(rest)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            for (_, blocks) in parse_listing(keys) {
                for b in blocks.values() {
                    let _ = (b.has_meta(), b.is_compacted(), b.is_live());
                }
            }
        }
        m => {
            let mut b = rest.to_vec();
            if m == 6 && b.len() >= 26 {
                let body = b.len() - 4;
                let crc = crc32c::crc32c(&b[..body]);
                b[body..].copy_from_slice(&crc.to_le_bytes());
            }
            if let Ok(bloom) = Bloom::from_bytes(&b) {
                for n in 0..4u8 {
                    let _ = bloom.may_contain(&[n; 16]);
                }
            }
        }
    }
}

fn tenant_index(bytes: &[u8]) {
    if let Ok(ix) = TenantIndex::decode(TENANT, bytes) {
        let _ = ix.created();
        for m in &ix.meta {
            let _ = m.time_range_secs();
        }
        for c in &ix.compacted {
            let _ = c.compacted_ns();
        }
    }
}

/// Parse a `meta.json`; open what it describes over the golden objects of its format.
fn meta_json(bytes: &[u8]) {
    let Ok(meta) = BlockMeta::from_json(TENANT, &BLOCK.to_string(), bytes) else {
        return;
    };
    let _ = meta.time_range_secs();
    let Some(fmt) = format_by_name(&meta.format, &EncodingSettings::default()) else {
        return;
    };
    let golden = if meta.format == "rb1" {
        golden_rb1()
    } else {
        golden_rb2()
    };
    let store = BlockStore::memory();
    block_on(async {
        for (name, b) in golden {
            let key = format!("{}/{}/{name}", meta.tenant_id, meta.block_id);
            if store.put(&key, Bytes::from_static(b)).await.is_err() {
                return;
            }
        }
        if let Ok(reader) = fmt.open(&store, &meta).await {
            let _ = reader.find_trace(&[0xab; 16]).await;
            let _ = reader.search(&SearchPlan::new(Expr::All)).await;
        }
    });
}

/// Store `objects` (and `blooms`) as block `BLOCK` of format `format`, open it and run
/// every query kind; each must succeed or fail naming the block.
fn exercise(
    format: &str,
    size: u64,
    objects: Vec<(&'static str, Vec<u8>)>,
    blooms: Vec<Vec<u8>>,
    ids: &[TraceId],
) {
    let Some(fmt) = format_by_name(format, &EncodingSettings::default()) else {
        panic!("{format} is not a format");
    };
    let meta = BlockMeta {
        format: format.into(),
        block_id: BLOCK,
        tenant_id: TENANT.into(),
        start_time: "2023-11-14T22:13:20Z".into(),
        end_time: "2023-11-14T22:13:21Z".into(),
        total_objects: 1,
        total_spans: 1,
        size,
        encoding: "zstd".into(),
        bloom_shards: blooms.len() as u32,
        compaction_level: 0,
    };
    let store = BlockStore::memory();
    block_on(async {
        let mut all = objects;
        all.extend(
            blooms
                .into_iter()
                .enumerate()
                .map(|(i, b)| (if i == 0 { "bloom-0" } else { "bloom-x" }, b)),
        );
        all.push((META_OBJECT, meta.to_json()));
        for (name, b) in all {
            let key = format!("{TENANT}/{BLOCK}/{name}");
            if let Err(e) = store.put(&key, Bytes::from(b)).await {
                panic!("memory store put: {e}");
            }
        }
        let reader = match fmt.open(&store, &meta).await {
            Ok(r) => r,
            Err(e) => return names_block(&e),
        };
        queries(reader.as_ref(), ids, format == "rb2").await;
    });
}

async fn queries(reader: &dyn BlockReader, ids: &[TraceId], columnar: bool) {
    let mut wanted: Vec<TraceId> = ids.to_vec();
    match reader.read_all().await {
        Ok(all) => wanted.extend(all.iter().take(4).map(|(id, _)| *id)),
        Err(e) => names_block(&e),
    }
    wanted.extend((0..3u64).map(golden_id));
    for id in &wanted {
        if let Err(e) = reader.find_trace(id).await {
            names_block(&e);
        }
    }
    // rb1 searches decode whole traces (every plan takes the same path); rb2 reads other
    // columns for each plan.
    let n = if columnar { plans().len() } else { 2 };
    for plan in &plans()[..n] {
        if let Err(e) = reader.search(plan).await {
            names_block(&e);
        }
    }
    if let Err(e) = reader.tags(None, &plans()[1].filter).await {
        names_block(&e);
    }
}

fn names_block(e: &reference_backend::Error) {
    let m = e.to_string();
    assert!(
        m.contains(&format!("{TENANT}/{BLOCK}")),
        "an error reading a damaged block does not name it: {m}"
    );
}

/// Searches touching every column kind: none, a dedicated column, the generic attribute
/// list (raw page scan), resource and intrinsic columns.
fn plans() -> &'static [SearchPlan] {
    static P: OnceLock<Vec<SearchPlan>> = OnceLock::new();
    P.get_or_init(|| {
        [
            "{}",
            r#"{ span.http.method = "GET" }"#,
            r#"{ .k = "x" || span.k2 > 1 }"#,
            r#"{ resource.service.name =~ "golden-.*" && duration > 1ms }"#,
            r#"{ name != "a" && status = error && kind = server }"#,
        ]
        .iter()
        .filter_map(|q| parse_traceql(q).ok())
        .map(|f| SearchPlan {
            limit: 5,
            ..SearchPlan::new(f)
        })
        .collect()
    })
}

/// Trace id `n` of the golden blocks (`tests/common::trace_id` of reference-backend).
fn golden_id(n: u64) -> TraceId {
    let mut id = [0u8; 16];
    id[0] = 0xab;
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

fn golden_bloom() -> &'static [u8] {
    include_bytes!(
        "../../reference-backend/testdata/rb1/single-tenant/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/bloom-0"
    )
}

fn golden_rb1() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("bloom-0", golden_bloom()),
        (
            "index",
            include_bytes!(
                "../../reference-backend/testdata/rb1/single-tenant/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/index"
            ),
        ),
        (
            "data",
            include_bytes!(
                "../../reference-backend/testdata/rb1/single-tenant/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/data"
            ),
        ),
    ]
}

fn golden_rb2() -> Vec<(&'static str, &'static [u8])> {
    vec![
        (
            "bloom-0",
            include_bytes!(
                "../../reference-backend/testdata/rb2/single-tenant/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/bloom-0"
            ),
        ),
        (
            "data",
            include_bytes!(
                "../../reference-backend/testdata/rb2/single-tenant/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/data"
            ),
        ),
    ]
}
