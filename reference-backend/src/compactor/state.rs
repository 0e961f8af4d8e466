//! One tenant's blocks as the compactor sees them during a cycle, and the writes that change
//! them (marks, job records, the tenant index). The state is updated after each successful
//! write only, so the index written at the end of a tenant's cycle matches the bucket even
//! when a step failed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::warn;
use uuid::Uuid;

use crate::block::BlockMeta;
use crate::block::index::{
    BlockObjects, COMPACTED_META_OBJECT, CompactedMeta, TenantIndex, TenantListing, system_ns,
};
use crate::block::meta::{META_OBJECT, rfc3339};
use crate::block::object_key;
use crate::error::{Error, Result};
use crate::store::BlockStore;

/// Name of the job record, written in the output block's directory before any of its
/// objects and deleted once every input is marked.
pub const JOB_OBJECT: &str = "compaction.json";

/// Contents of `compaction.json`: what an output block is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// Input block ids.
    pub inputs: Vec<Uuid>,
    /// Compaction level of the output.
    pub compaction_level: u32,
    /// When the job started, RFC 3339.
    pub created_at: String,
}

impl JobRecord {
    /// Parse a `compaction.json` object.
    pub fn from_json(tenant: &str, block_id: &Uuid, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::CorruptBlock {
            tenant: tenant.to_owned(),
            block_id: block_id.to_string(),
            object: JOB_OBJECT,
            message: e.to_string(),
        })
    }
}

/// A tenant's blocks during one cycle.
pub struct TenantState {
    /// Tenant id.
    pub tenant: String,
    /// Objects of every block directory, kept in step with the writes of this cycle.
    pub listing: TenantListing,
    /// Live blocks.
    pub live: BTreeMap<Uuid, BlockMeta>,
    /// Compacted blocks not yet deleted.
    pub compacted: BTreeMap<Uuid, CompactedMeta>,
}

/// Metas read in earlier cycles (objects are immutable except the level rewrite of a
/// fresh output, which the compactor itself makes).
#[derive(Default)]
pub struct MetaCache {
    live: BTreeMap<(String, Uuid), BlockMeta>,
    compacted: BTreeMap<(String, Uuid), CompactedMeta>,
}

impl MetaCache {
    /// Forget blocks that are gone from the bucket.
    pub fn retain(&mut self, listing: &BTreeMap<String, TenantListing>) {
        let present = |(t, id): &(String, Uuid)| listing.get(t).is_some_and(|l| l.contains_key(id));
        self.live.retain(|k, _| present(k));
        self.compacted.retain(|k, _| present(k));
    }

    /// Remember the state's metas after a cycle.
    pub fn update(&mut self, st: &TenantState) {
        self.live.retain(|(t, _), _| t != &st.tenant);
        self.compacted.retain(|(t, _), _| t != &st.tenant);
        for (id, m) in &st.live {
            self.live.insert((st.tenant.clone(), *id), m.clone());
        }
        for (id, c) in &st.compacted {
            self.compacted.insert((st.tenant.clone(), *id), c.clone());
        }
    }
}

impl TenantState {
    /// Build from a listing, reading the metas the cache does not hold. Unreadable metas
    /// are logged and the block is left out (it stays as it is in the bucket).
    pub async fn load(
        store: &BlockStore,
        cache: &MetaCache,
        tenant: &str,
        listing: TenantListing,
    ) -> Result<Self> {
        let mut st = TenantState {
            tenant: tenant.to_owned(),
            listing: TenantListing::new(),
            live: BTreeMap::new(),
            compacted: BTreeMap::new(),
        };
        for (id, objects) in &listing {
            let key = (tenant.to_owned(), *id);
            if objects.is_compacted() {
                let c = match cache.compacted.get(&key) {
                    Some(c) => Some(c.clone()),
                    None => read_compacted(store, tenant, id).await?,
                };
                if let Some(c) = c {
                    st.compacted.insert(*id, c);
                }
            } else if objects.has_meta() {
                let m = match cache.live.get(&key) {
                    Some(m) => Some(m.clone()),
                    None => read_meta(store, tenant, id).await?,
                };
                if let Some(m) = m {
                    st.live.insert(*id, m);
                }
            }
        }
        st.listing = listing;
        Ok(st)
    }

    /// Block directories holding a job record.
    pub fn jobs(&self) -> Vec<Uuid> {
        self.listing
            .iter()
            .filter(|(_, o)| o.has(JOB_OBJECT))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Key of an object of a block of this tenant.
    pub fn key(&self, id: &Uuid, object: &str) -> String {
        object_key(&self.tenant, id, object)
    }

    /// Note that an object was written.
    pub fn wrote(&mut self, id: &Uuid, object: &str) {
        let key = self.key(id, object);
        let keys = &mut self.listing.entry(*id).or_default().keys;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    /// Note that an object was deleted.
    pub fn deleted(&mut self, id: &Uuid, object: &str) {
        let key = self.key(id, object);
        if let Some(o) = self.listing.get_mut(id) {
            o.keys.retain(|k| k != &key);
        }
    }

    /// Objects of a block.
    pub fn objects(&self, id: &Uuid) -> BlockObjects {
        self.listing.get(id).cloned().unwrap_or_default()
    }

    /// Mark a live block compacted at `at` (one write). No-op for a block not live.
    pub async fn mark(&mut self, store: &BlockStore, id: &Uuid, at: SystemTime) -> Result<bool> {
        let Some(meta) = self.live.get(id).cloned() else {
            return Ok(false);
        };
        let c = CompactedMeta::new(meta, at);
        store
            .put(
                &self.key(id, COMPACTED_META_OBJECT),
                Bytes::from(c.to_json()),
            )
            .await?;
        self.live.remove(id);
        self.compacted.insert(*id, c);
        self.wrote(id, COMPACTED_META_OBJECT);
        Ok(true)
    }

    /// Write the job record of `output` (one write).
    pub async fn write_job(
        &mut self,
        store: &BlockStore,
        output: &Uuid,
        record: &JobRecord,
    ) -> Result<()> {
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::Internal(format!("job record encode: {e}")))?;
        store
            .put(&self.key(output, JOB_OBJECT), Bytes::from(json))
            .await?;
        self.wrote(output, JOB_OBJECT);
        Ok(())
    }

    /// Delete the job record of `output` (one write).
    pub async fn delete_job(&mut self, store: &BlockStore, output: &Uuid) -> Result<()> {
        store.delete(&self.key(output, JOB_OBJECT)).await?;
        self.deleted(output, JOB_OBJECT);
        Ok(())
    }

    /// Rewrite `meta.json` of a live block (the level of an output whose job was cut short).
    pub async fn rewrite_meta(&mut self, store: &BlockStore, meta: BlockMeta) -> Result<()> {
        store
            .put(
                &self.key(&meta.block_id, META_OBJECT),
                Bytes::from(meta.to_json()),
            )
            .await?;
        self.live.insert(meta.block_id, meta);
        Ok(())
    }

    /// The tenant index of this state, dated `listed_at` (when the listing started).
    pub fn index(&self, listed_at: SystemTime) -> TenantIndex {
        TenantIndex {
            created_at: rfc3339(system_ns(listed_at)),
            meta: self.live.values().cloned().collect(),
            compacted: self.compacted.values().cloned().collect(),
        }
    }
}

async fn read_meta(store: &BlockStore, tenant: &str, id: &Uuid) -> Result<Option<BlockMeta>> {
    let Some(b) = store.get_opt(&object_key(tenant, id, META_OBJECT)).await? else {
        return Ok(None);
    };
    match BlockMeta::from_json(tenant, &id.to_string(), &b) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            warn!(%tenant, block = %id, error = %e, "compactor skips block with unreadable meta.json");
            Ok(None)
        }
    }
}

async fn read_compacted(
    store: &BlockStore,
    tenant: &str,
    id: &Uuid,
) -> Result<Option<CompactedMeta>> {
    let Some(b) = store
        .get_opt(&object_key(tenant, id, COMPACTED_META_OBJECT))
        .await?
    else {
        return Ok(None);
    };
    match CompactedMeta::from_json(tenant, &id.to_string(), &b) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            warn!(%tenant, block = %id, error = %e, "compactor skips block with unreadable meta.compacted.json");
            Ok(None)
        }
    }
}
