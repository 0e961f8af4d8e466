//! `meta.json`: the block's descriptor in Tempo's style, written last.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Name of the descriptor object.
pub const META_OBJECT: &str = "meta.json";

/// Contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// Block format (`rb1`).
    pub format: String,
    /// Block id.
    #[serde(rename = "blockID")]
    pub block_id: Uuid,
    /// Owner tenant.
    #[serde(rename = "tenantID")]
    pub tenant_id: String,
    /// Earliest span start, RFC 3339 with nanoseconds.
    pub start_time: String,
    /// Latest span end, RFC 3339 with nanoseconds.
    pub end_time: String,
    /// Number of traces.
    pub total_objects: u64,
    /// Number of spans.
    #[serde(default)]
    pub total_spans: u64,
    /// Bytes of the data object.
    pub size: u64,
    /// Compression of data pages.
    pub encoding: String,
    /// Number of bloom filter shards (`bloom-0` … `bloom-<n-1>`).
    pub bloom_shards: u32,
    /// 0 for blocks cut from ingest; higher after compaction.
    #[serde(default)]
    pub compaction_level: u32,
}

/// Format unix nanoseconds as RFC 3339 with nanoseconds.
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// Parse RFC 3339 into unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

impl BlockMeta {
    /// Serialize for upload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parse a `meta.json` object.
    pub fn from_json(tenant: &str, block_id: &str, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::CorruptBlock {
            tenant: tenant.to_owned(),
            block_id: block_id.to_owned(),
            object: META_OBJECT,
            message: e.to_string(),
        })
    }

    /// Start and end as unix seconds, for `start`/`end` query bounds.
    pub fn time_range_secs(&self) -> (u64, u64) {
        let s = parse_rfc3339(&self.start_time).unwrap_or(0) / 1_000_000_000;
        let e = parse_rfc3339(&self.end_time).map_or(u64::MAX, |ns| ns.div_ceil(1_000_000_000));
        (s, e)
    }
}

/// Now as unix nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn meta_uses_tempo_field_names() {
        let m = BlockMeta {
            format: "rb1".into(),
            block_id: Uuid::nil(),
            tenant_id: "single-tenant".into(),
            start_time: rfc3339(1_700_000_000_123_456_789),
            end_time: rfc3339(1_700_000_001_000_000_000),
            total_objects: 2,
            total_spans: 3,
            size: 10,
            encoding: "zstd".into(),
            bloom_shards: 1,
            compaction_level: 0,
        };
        let v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        for k in [
            "format",
            "blockID",
            "tenantID",
            "startTime",
            "endTime",
            "totalObjects",
            "size",
            "encoding",
            "bloomShards",
            "compactionLevel",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["startTime"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(m.time_range_secs(), (1_700_000_000, 1_700_000_001));
        let back = BlockMeta::from_json("t", "b", &m.to_json()).unwrap();
        assert_eq!(back, m);
    }
}
