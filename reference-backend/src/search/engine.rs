//! Searches and tag summaries over everything a tenant stored: the traces held in memory
//! (live, head block, cut blocks waiting to upload) and every flushed block whose time
//! range meets the request's. A block that cannot be read fails the request. A
//! cross-tenant read (`X-Scope-OrgID: a|b`) gathers every tenant's data before merging.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tempo_api::trace_id::TraceId;
use tracing::warn;

use super::generic::search_encoded;
use super::{Expr, SearchPlan, TagSummary, TraceHit, rank};
use crate::blocklist::{BlockEntry, BlockList};
use crate::error::Result;
use crate::live::LiveStore;
use crate::metrics::Metrics;

/// How many blocks are read at once.
const CONCURRENT_BLOCKS: usize = 4;
/// Bytes of traces not yet in a block (read back from the WAL) evaluated at once.
const LIVE_CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// The merged answer of a search, with what it read.
#[derive(Debug, Clone, Default)]
pub struct SearchOutcome {
    /// Hits, most recent start first, at most the plan's limit.
    pub hits: Vec<TraceHit>,
    /// Traces looked at.
    pub inspected_traces: u64,
    /// Spans looked at.
    pub inspected_spans: u64,
    /// Bytes of trace data read.
    pub inspected_bytes: u64,
    /// Flushed blocks searched.
    pub total_blocks: u64,
    /// Size of those blocks.
    pub total_block_bytes: u64,
}

/// A merged tag summary, with what it read.
#[derive(Debug, Clone, Default)]
pub struct TagOutcome {
    /// Names and values.
    pub summary: TagSummary,
    /// Flushed blocks read.
    pub total_blocks: u64,
    /// Size of those blocks.
    pub total_block_bytes: u64,
}

/// Answers `/api/search` and the tag endpoints for one backend.
pub struct Searcher {
    live: Arc<LiveStore>,
    blocks: Arc<BlockList>,
    metrics: Arc<Metrics>,
}

impl Searcher {
    /// Over the given live store and block list.
    pub fn new(live: Arc<LiveStore>, blocks: Arc<BlockList>, metrics: Arc<Metrics>) -> Self {
        Searcher {
            live,
            blocks,
            metrics,
        }
    }

    /// Flushed blocks of `tenants` overlapping `[start_ns, end_ns]` (all without a range).
    fn blocks_in_range<S: AsRef<str>>(
        &self,
        tenants: &[S],
        range_ns: Option<(u64, u64)>,
    ) -> Vec<Arc<BlockEntry>> {
        let mut blocks: Vec<_> = tenants
            .iter()
            .flat_map(|t| self.blocks.blocks(t.as_ref()))
            .collect();
        if let Some((start, end)) = range_ns {
            let (start_s, end_s) = (start / 1_000_000_000, end.div_ceil(1_000_000_000));
            blocks.retain(|b| {
                let (bs, be) = b.meta.time_range_secs();
                be >= start_s && bs <= end_s
            });
        }
        blocks
    }

    fn block_failed(&self, block: &BlockEntry, e: &crate::Error) {
        self.metrics.block_read_error(e);
        let tenant = &block.meta.tenant_id;
        warn!(%tenant, block = %block.meta.block_id, error = %e, "search could not read a block");
    }

    /// Run `plan` over `tenant`'s data.
    pub async fn search(&self, tenant: &str, plan: &SearchPlan) -> Result<SearchOutcome> {
        self.search_in(&[tenant], plan).await
    }

    /// Run `plan` over the data of every tenant in `tenants` (a cross-tenant read): hits of
    /// one trace id found under several tenants merge as the parts of one tenant's trace do.
    pub async fn search_in<S: AsRef<str>>(
        &self,
        tenants: &[S],
        plan: &SearchPlan,
    ) -> Result<SearchOutcome> {
        let range = plan.start_ns.zip(plan.end_ns);
        let mut live_results = Vec::new();
        for tenant in tenants {
            let mut live = self.live.snapshot_where(
                tenant.as_ref(),
                |s, e| range.is_none_or(|r| e >= r.0 && s <= r.1),
                LIVE_CHUNK_BYTES,
            )?;
            while let Some(r) = crate::cpu::run_heavy(|| {
                let Some(chunk) = live.next_chunk()? else {
                    return Ok::<_, crate::Error>(None);
                };
                let mut r = search_encoded(chunk.iter().map(|(id, b)| (*id, b.as_slice())), plan)?;
                r.inspected_bytes = chunk.iter().map(|(_, b)| b.len() as u64).sum();
                Ok(Some(r))
            })? {
                live_results.push(r);
            }
        }
        let blocks = self.blocks_in_range(tenants, range);
        let mut out = SearchOutcome {
            total_blocks: blocks.len() as u64,
            total_block_bytes: blocks.iter().map(|b| b.meta.size).sum(),
            ..SearchOutcome::default()
        };
        let mut merged: HashMap<TraceId, TraceHit> = HashMap::new();
        let mut add = |r: super::SearchResult, out: &mut SearchOutcome| {
            out.inspected_traces += r.inspected_traces;
            out.inspected_spans += r.inspected_spans;
            out.inspected_bytes += r.inspected_bytes;
            for hit in r.traces {
                match merged.get_mut(&hit.trace_id) {
                    Some(h) => h.absorb(hit, plan.spans_per_spanset),
                    None => {
                        merged.insert(hit.trace_id, hit);
                    }
                }
            }
        };
        for r in live_results {
            add(r, &mut out);
        }
        let list = &self.blocks;
        let mut results = futures::stream::iter(blocks)
            .map(|block| async move {
                let found = async {
                    let reader = list.reader(&block).await?;
                    reader.search(plan).await
                }
                .await;
                found.inspect_err(|e| self.block_failed(&block, e))
            })
            .buffered(CONCURRENT_BLOCKS);
        while let Some(r) = results.try_next().await? {
            add(r, &mut out);
        }
        let mut hits: Vec<TraceHit> = merged.into_values().collect();
        rank(&mut hits, plan.limit);
        out.hits = hits;
        Ok(out)
    }

    /// Tag names and values of `tenant`'s traces overlapping `range_ns` (all without one),
    /// from the spans that match `filter`.
    pub async fn tags(
        &self,
        tenant: &str,
        range_ns: Option<(u64, u64)>,
        filter: &Expr,
    ) -> Result<TagOutcome> {
        self.tags_in(&[tenant], range_ns, filter).await
    }

    /// [`Searcher::tags`] over every tenant in `tenants` (a cross-tenant read): the union.
    pub async fn tags_in<S: AsRef<str>>(
        &self,
        tenants: &[S],
        range_ns: Option<(u64, u64)>,
        filter: &Expr,
    ) -> Result<TagOutcome> {
        let keep = move |s: u64, e: u64| range_ns.is_none_or(|r| e >= r.0 && s <= r.1);
        let mut summary = TagSummary::default();
        for tenant in tenants {
            let mut live = self
                .live
                .snapshot_where(tenant.as_ref(), keep, LIVE_CHUNK_BYTES)?;
            while let Some(s) = crate::cpu::run_heavy(|| {
                let Some(chunk) = live.next_chunk()? else {
                    return Ok::<_, crate::Error>(None);
                };
                let traces = chunk.iter().map(|(id, b)| (*id, b.as_slice()));
                TagSummary::from_encoded(traces, keep, filter).map(Some)
            })? {
                summary.merge(s);
            }
        }
        let blocks = self.blocks_in_range(tenants, range_ns);
        let mut out = TagOutcome {
            summary,
            total_blocks: blocks.len() as u64,
            total_block_bytes: blocks.iter().map(|b| b.meta.size).sum(),
        };
        let list = &self.blocks;
        let mut results = futures::stream::iter(blocks)
            .map(|block| async move {
                let found = async {
                    let reader = list.reader(&block).await?;
                    reader.tags(range_ns, filter).await
                }
                .await;
                found.inspect_err(|e| self.block_failed(&block, e))
            })
            .buffered(CONCURRENT_BLOCKS);
        while let Some(s) = results.try_next().await? {
            out.summary.merge(s);
        }
        Ok(out)
    }
}
