//! A block whose index (rb1 `index`, rb2 Parquet footer) is damaged in the store.
//!
//! Opening such a block does not fail the whole block list: its bloom shards still say
//! which trace ids it may hold, so a lookup of any other trace skips it as usual. Every
//! query that needs the block (a lookup its bloom filter admits, a search or tag request
//! over its time range) fails with [`Error::CorruptBlock`] naming the block, the object
//! and what is wrong, which the query API answers with 500.

use async_trait::async_trait;
use tempo_api::trace_id::TraceId;

use super::BlockReader;
use super::bloom::{self, Bloom};
use crate::error::{Error, Result};
use crate::search::{Expr, SearchPlan, SearchResult, TagSummary};

/// Reader of a block whose index did not parse.
pub struct DamagedBlock {
    /// Tenant.
    pub tenant: String,
    /// Block id.
    pub block_id: String,
    /// The damaged object (`index`, `data`).
    pub object: &'static str,
    /// What is wrong with it.
    pub message: String,
    /// The block's bloom shards (may be empty: then every lookup needs the block).
    pub blooms: Vec<Bloom>,
}

impl DamagedBlock {
    fn error(&self) -> Error {
        Error::CorruptBlock {
            tenant: self.tenant.clone(),
            block_id: self.block_id.clone(),
            object: self.object,
            message: self.message.clone(),
        }
    }
}

#[async_trait]
impl BlockReader for DamagedBlock {
    async fn find_trace(&self, id: &TraceId) -> Result<Option<Vec<u8>>> {
        if !self.blooms.is_empty()
            && !self.blooms[bloom::shard_of(id, self.blooms.len() as u32)].may_contain(id)
        {
            return Ok(None);
        }
        Err(self.error())
    }

    async fn read_all(&self) -> Result<Vec<(TraceId, Vec<u8>)>> {
        Err(self.error())
    }

    async fn search(&self, _plan: &SearchPlan) -> Result<SearchResult> {
        Err(self.error())
    }

    async fn tags(&self, _range_ns: Option<(u64, u64)>, _filter: &Expr) -> Result<TagSummary> {
        Err(self.error())
    }
}

/// Name the block in an error that does not (a stored trace that does not decode, found
/// while searching or summarizing a block): it becomes [`Error::CorruptBlock`] of `object`.
pub fn name_block(e: Error, tenant: &str, block_id: &str, object: &'static str) -> Error {
    match e {
        Error::Internal(message) => Error::CorruptBlock {
            tenant: tenant.to_owned(),
            block_id: block_id.to_owned(),
            object,
            message,
        },
        other => other,
    }
}
