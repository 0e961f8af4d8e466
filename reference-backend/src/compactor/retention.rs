//! Retention: which blocks expire, which compacted blocks may go, and how a block is
//! deleted.
//!
//! A live block whose end is older than `block_retention` is marked compacted (like a
//! compaction input), so readers drop it from their lists first. A compacted block is
//! deleted once its mark is older than `compacted_block_retention`, which must cover a
//! reader's poll interval so no reader still has it in its list. Deletion removes
//! `meta.json` first (a half-deleted block is never opened) and the mark last (so a crash
//! mid-way leaves a block that is still known as compacted and is deleted next cycle).

use std::time::Duration;

use crate::block::BlockMeta;
use crate::block::index::{BlockObjects, COMPACTED_META_OBJECT, CompactedMeta};
use crate::block::meta::META_OBJECT;
use crate::error::Result;
use crate::store::BlockStore;

use super::plan::end_ns;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Live blocks that ended more than `retention` before `now_ns`.
pub fn expired<'a>(
    live: impl IntoIterator<Item = &'a BlockMeta>,
    retention: Duration,
    now_ns: u64,
) -> Vec<&'a BlockMeta> {
    let cutoff = now_ns.saturating_sub(nanos(retention));
    live.into_iter().filter(|m| end_ns(m) < cutoff).collect()
}

/// Compacted blocks whose mark is at least `grace` old at `now_ns`.
pub fn deletable<'a>(
    compacted: impl IntoIterator<Item = &'a CompactedMeta>,
    grace: Duration,
    now_ns: u64,
) -> Vec<&'a CompactedMeta> {
    compacted
        .into_iter()
        .filter(|c| c.compacted_ns().saturating_add(nanos(grace)) <= now_ns)
        .collect()
}

/// The keys of a block in deletion order: `meta.json`, the other objects, the mark.
pub fn deletion_order(objects: &BlockObjects) -> Vec<String> {
    let rank = |k: &String| match k.rsplit_once('/').map(|(_, n)| n) {
        Some(META_OBJECT) => 0,
        Some(COMPACTED_META_OBJECT) => 2,
        _ => 1,
    };
    let mut keys = objects.keys.clone();
    keys.sort_by_key(rank);
    keys
}

/// Delete every object of a block, one write each, in [`deletion_order`].
pub async fn delete_block(store: &BlockStore, objects: &BlockObjects) -> Result<()> {
    for key in deletion_order(objects) {
        store.delete(&key).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::block::meta::rfc3339;
    use std::time::SystemTime;
    use uuid::Uuid;

    const S: u64 = 1_000_000_000;

    fn block(id: u128, end_s: u64) -> BlockMeta {
        BlockMeta {
            format: "rb1".into(),
            block_id: Uuid::from_u128(id),
            tenant_id: "t".into(),
            start_time: rfc3339(0),
            end_time: rfc3339(end_s * S),
            total_objects: 1,
            total_spans: 1,
            size: 1,
            encoding: "zstd".into(),
            bloom_shards: 1,
            compaction_level: 0,
        }
    }

    #[test]
    fn blocks_expire_after_retention_from_their_end() {
        let live = [block(1, 100), block(2, 200)];
        let ids = |v: Vec<&BlockMeta>| v.iter().map(|m| m.block_id.as_u128()).collect::<Vec<_>>();
        let r = Duration::from_secs(50);
        assert!(expired(&live, r, 150 * S).is_empty());
        assert_eq!(ids(expired(&live, r, 151 * S)), [1]);
        assert_eq!(ids(expired(&live, r, 300 * S)), [1, 2]);
        let mut bad = block(3, 0);
        bad.end_time = "garbage".into();
        assert!(
            expired([&bad], r, u64::MAX).is_empty(),
            "unparsable end never expires"
        );
    }

    #[test]
    fn compacted_blocks_go_after_the_grace_period() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let c = [
            CompactedMeta::new(block(1, 1), at(100)),
            CompactedMeta::new(block(2, 1), at(200)),
        ];
        let g = Duration::from_secs(10);
        assert!(deletable(&c, g, 109 * S).is_empty());
        assert_eq!(deletable(&c, g, 110 * S).len(), 1);
        assert_eq!(deletable(&c, g, 210 * S).len(), 2);
    }

    #[test]
    fn meta_goes_first_and_the_mark_last() {
        let o = BlockObjects {
            keys: vec![
                "t/b/bloom-0".into(),
                "t/b/data".into(),
                "t/b/meta.compacted.json".into(),
                "t/b/meta.json".into(),
            ],
        };
        let order = deletion_order(&o);
        assert_eq!(order.first().unwrap(), "t/b/meta.json");
        assert_eq!(order.last().unwrap(), "t/b/meta.compacted.json");
        assert_eq!(order.len(), 4);
    }
}
