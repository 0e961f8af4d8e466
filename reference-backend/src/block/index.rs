//! What the bucket says about a tenant's blocks: compaction marks (`meta.compacted.json`),
//! the tenant index (`<tenant>/index.json.gz`) and the parse of a bucket listing.
//!
//! A block is *live* while it has `meta.json` and no `meta.compacted.json`. A compacted
//! block keeps its objects for `compacted_block_retention` so that readers holding an older
//! block list can finish; then its objects are deleted, `meta.json` first. The tenant index
//! is Tempo's: gzip JSON `{"created_at", "meta": [...], "compacted": [...]}`, rebuilt by the
//! compactor from a full listing so that pollers read one object instead of listing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::SystemTime;

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::meta::{self, BlockMeta, META_OBJECT};
use super::object_key;
use crate::error::{Error, Result};
use crate::store::BlockStore;

/// Name of the compaction mark of a block.
pub const COMPACTED_META_OBJECT: &str = "meta.compacted.json";
/// Name of the tenant index object (directly under the tenant).
pub const INDEX_OBJECT: &str = "index.json.gz";

/// Contents of `meta.compacted.json`: the block's meta and when it was compacted (or
/// expired by retention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactedMeta {
    /// The block's `meta.json` fields.
    #[serde(flatten)]
    pub meta: BlockMeta,
    /// When the block was marked, RFC 3339 with nanoseconds.
    pub compacted_time: String,
}

impl CompactedMeta {
    /// Mark `meta` as compacted at `at`.
    pub fn new(meta: BlockMeta, at: SystemTime) -> Self {
        CompactedMeta {
            meta,
            compacted_time: meta::rfc3339(system_ns(at)),
        }
    }

    /// The mark time as unix nanoseconds (0 when unparsable, so such a block is deleted
    /// at the first chance rather than never).
    pub fn compacted_ns(&self) -> u64 {
        meta::parse_rfc3339(&self.compacted_time).unwrap_or(0)
    }

    /// Serialize for upload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parse a `meta.compacted.json` object.
    pub fn from_json(tenant: &str, block_id: &str, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::CorruptBlock {
            tenant: tenant.to_owned(),
            block_id: block_id.to_owned(),
            object: COMPACTED_META_OBJECT,
            message: e.to_string(),
        })
    }
}

/// `<tenant>/index.json.gz`: every live and compacted block of a tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantIndex {
    /// When the listing this index was built from started, RFC 3339.
    pub created_at: String,
    /// Live blocks.
    #[serde(default)]
    pub meta: Vec<BlockMeta>,
    /// Compacted blocks not yet deleted.
    #[serde(default)]
    pub compacted: Vec<CompactedMeta>,
}

impl TenantIndex {
    /// Key of a tenant's index.
    pub fn key(tenant: &str) -> String {
        format!("{tenant}/{INDEX_OBJECT}")
    }

    /// `created_at` as a time (`None` when unparsable).
    pub fn created(&self) -> Option<SystemTime> {
        let ns = meta::parse_rfc3339(&self.created_at)?;
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
    }

    /// Gzip JSON encoding.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::Internal(format!("tenant index encode: {e}")))?;
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&json)
            .and_then(|()| gz.finish())
            .map_err(|e| Error::Internal(format!("tenant index gzip: {e}")))
    }

    /// Parse a gzip JSON index.
    pub fn decode(tenant: &str, bytes: &[u8]) -> Result<Self> {
        let corrupt = |message: String| Error::CorruptBlock {
            tenant: tenant.to_owned(),
            block_id: "-".to_owned(),
            object: INDEX_OBJECT,
            message,
        };
        let mut json = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|e| corrupt(format!("gunzip: {e}")))?;
        serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))
    }

    /// Read a tenant's index; `None` when there is none.
    pub async fn read(store: &BlockStore, tenant: &str) -> Result<Option<Self>> {
        match store.get_opt(&Self::key(tenant)).await? {
            Some(b) => Self::decode(tenant, &b).map(Some),
            None => Ok(None),
        }
    }

    /// Write (replace) a tenant's index.
    pub async fn write(&self, store: &BlockStore, tenant: &str) -> Result<()> {
        store
            .put(&Self::key(tenant), Bytes::from(self.encode()?))
            .await
    }
}

/// The objects of one block directory, from a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockObjects {
    /// Full keys of every object of the block, sorted.
    pub keys: Vec<String>,
}

impl BlockObjects {
    /// Does the block have an object named `name`?
    pub fn has(&self, name: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.rsplit_once('/').is_some_and(|(_, n)| n == name))
    }

    /// Has `meta.json` (written completely, possibly compacted since).
    pub fn has_meta(&self) -> bool {
        self.has(META_OBJECT)
    }

    /// Has the compaction mark.
    pub fn is_compacted(&self) -> bool {
        self.has(COMPACTED_META_OBJECT)
    }

    /// Visible to readers: `meta.json` and no compaction mark.
    pub fn is_live(&self) -> bool {
        self.has_meta() && !self.is_compacted()
    }
}

/// Blocks of one tenant by id.
pub type TenantListing = BTreeMap<Uuid, BlockObjects>;

/// Group listed keys by tenant and block (`<tenant>/<uuid>/<object>`); other keys (tenant
/// indexes, files at the root) are ignored.
pub fn parse_listing(keys: impl IntoIterator<Item = String>) -> BTreeMap<String, TenantListing> {
    let mut out: BTreeMap<String, TenantListing> = BTreeMap::new();
    for key in keys {
        let mut parts = key.splitn(3, '/');
        let (Some(tenant), Some(block), Some(object)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if object.is_empty() || object.contains('/') {
            continue;
        }
        let Ok(id) = Uuid::parse_str(block) else {
            continue;
        };
        let tenant = tenant.to_owned();
        out.entry(tenant)
            .or_default()
            .entry(id)
            .or_default()
            .keys
            .push(key);
    }
    for blocks in out.values_mut() {
        for b in blocks.values_mut() {
            b.keys.sort();
        }
    }
    out
}

/// Key of an object of a block (re-exported for callers holding a meta).
pub fn block_key(meta: &BlockMeta, object: &str) -> String {
    object_key(&meta.tenant_id, &meta.block_id, object)
}

/// `at` as unix nanoseconds (0 before the epoch).
pub fn system_ns(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    fn meta(id: u128) -> BlockMeta {
        BlockMeta {
            format: "rb1".into(),
            block_id: Uuid::from_u128(id),
            tenant_id: "t".into(),
            start_time: meta::rfc3339(1_700_000_000_000_000_000),
            end_time: meta::rfc3339(1_700_000_001_000_000_000),
            total_objects: 1,
            total_spans: 1,
            size: 10,
            encoding: "zstd".into(),
            bloom_shards: 1,
            compaction_level: 0,
        }
    }

    #[test]
    fn index_round_trips_with_tempo_field_names() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100);
        let ix = TenantIndex {
            created_at: meta::rfc3339(system_ns(at)),
            meta: vec![meta(1)],
            compacted: vec![CompactedMeta::new(meta(2), at)],
        };
        let bytes = ix.encode().unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        let back = TenantIndex::decode("t", &bytes).unwrap();
        assert_eq!(back, ix);
        assert_eq!(back.created(), Some(at));
        let mut json = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut json)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert!(v["created_at"].is_string());
        assert_eq!(v["meta"][0]["blockID"], Uuid::from_u128(1).to_string());
        assert_eq!(v["compacted"][0]["blockID"], Uuid::from_u128(2).to_string());
        assert_eq!(
            v["compacted"][0]["compactedTime"],
            "2023-11-14T22:15:00.000000000Z"
        );
    }

    #[test]
    fn corrupt_index_is_an_error_naming_the_tenant() {
        let e = TenantIndex::decode("acme", b"not gzip").unwrap_err();
        assert!(e.to_string().contains("acme"), "{e}");
    }

    #[test]
    fn listing_groups_blocks_and_ignores_other_keys() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let keys = vec![
            format!("t1/{a}/data"),
            format!("t1/{a}/meta.json"),
            format!("t1/{b}/meta.json"),
            format!("t1/{b}/meta.compacted.json"),
            "t1/index.json.gz".to_owned(),
            "tempo_cluster_seed.json".to_owned(),
            "t2/not-a-uuid/meta.json".to_owned(),
            format!("t2/{a}/data"),
        ];
        let l = parse_listing(keys);
        assert_eq!(l.len(), 2);
        assert!(l["t1"][&a].is_live());
        assert!(!l["t1"][&b].is_live());
        assert!(l["t1"][&b].is_compacted());
        assert_eq!(l["t1"][&a].keys.len(), 2);
        assert!(!l["t2"][&a].has_meta(), "a partial block is not live");
    }

    #[test]
    fn compacted_meta_keeps_meta_fields_flat() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let c = CompactedMeta::new(meta(3), at);
        let v: serde_json::Value = serde_json::from_slice(&c.to_json()).unwrap();
        assert_eq!(v["format"], "rb1");
        assert_eq!(v["compactedTime"], "1970-01-01T00:00:10.000000000Z");
        let back = CompactedMeta::from_json("t", "b", &c.to_json()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.compacted_ns(), 10_000_000_000);
    }
}
