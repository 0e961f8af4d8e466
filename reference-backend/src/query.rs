//! Trace lookup: live traces, head and cut blocks, then flushed blocks (bloom → index →
//! page), merged with duplicate spans removed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use prost::Message;
use tempo_api::trace_id::TraceId;

use crate::blocklist::BlockList;
use crate::error::{Error, Result};
use crate::live::LiveStore;
use crate::metrics::Metrics;
use crate::release::Mutant;

/// Optional `start`/`end` bounds of a lookup, in unix seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeBounds {
    /// Only blocks ending at or after this.
    pub start: Option<u64>,
    /// Only blocks starting at or before this.
    pub end: Option<u64>,
}

/// A found trace.
#[derive(Debug, Default)]
pub struct FoundTrace {
    /// Merged spans.
    pub resource_spans: Vec<ResourceSpans>,
    /// Bytes of encoded span data inspected.
    pub inspected_bytes: u64,
}

/// Looks traces up across memory and blocks.
pub struct Querier {
    live: Arc<LiveStore>,
    blocks: Arc<BlockList>,
    metrics: Arc<Metrics>,
    mutant: Option<Mutant>,
}

impl Querier {
    /// Over the given live store and block list.
    pub fn new(live: Arc<LiveStore>, blocks: Arc<BlockList>, metrics: Arc<Metrics>) -> Self {
        Querier {
            live,
            blocks,
            metrics,
            mutant: None,
        }
    }

    /// The block list lookups read.
    pub fn blocks(&self) -> &Arc<BlockList> {
        &self.blocks
    }

    /// Break lookups on purpose (conformance self-test only).
    #[doc(hidden)]
    pub fn with_mutant(mut self, mutant: Option<Mutant>) -> Self {
        self.mutant = mutant;
        self
    }

    /// Find every span of `id` that `tenant` stored. `None` when there is none.
    pub async fn find_trace(
        &self,
        tenant: &str,
        id: &TraceId,
        bounds: TimeBounds,
    ) -> Result<Option<FoundTrace>> {
        self.find_trace_in(&[tenant], id, bounds).await
    }

    /// Find every span of `id` that any of `tenants` stored (a cross-tenant read), merged
    /// as the parts of one tenant's trace are. `None` when there is none.
    pub async fn find_trace_in<S: AsRef<str>>(
        &self,
        tenants: &[S],
        id: &TraceId,
        bounds: TimeBounds,
    ) -> Result<Option<FoundTrace>> {
        let mut parts = Vec::new();
        for tenant in tenants {
            self.collect_parts(tenant.as_ref(), id, bounds, &mut parts)
                .await?;
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let inspected_bytes = parts.iter().map(|p| p.len() as u64).sum();
        let mut resource_spans = crate::cpu::run_heavy(|| merge(&parts))?;
        if self.mutant == Some(Mutant::DropSpanAttributes) {
            for span in resource_spans
                .iter_mut()
                .flat_map(|r| r.scope_spans.iter_mut())
                .flat_map(|s| s.spans.iter_mut())
            {
                span.attributes.clear();
            }
        }
        Ok(Some(FoundTrace {
            resource_spans,
            inspected_bytes,
        }))
    }
}

impl Querier {
    /// Append the encoded parts of `id` that `tenant` holds in memory and in blocks.
    async fn collect_parts(
        &self,
        tenant: &str,
        id: &TraceId,
        bounds: TimeBounds,
        parts: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        parts.extend(self.live.lookup(tenant, id)?);
        for block in self.blocks.blocks(tenant) {
            let (bs, be) = block.meta.time_range_secs();
            if bounds.start.is_some_and(|s| be < s) || bounds.end.is_some_and(|e| bs > e) {
                continue;
            }
            let found = async {
                let reader = self.blocks.reader(&block).await?;
                reader.find_trace(id).await
            }
            .await;
            match found {
                Ok(Some(bytes)) => parts.push(bytes),
                Ok(None) => {}
                Err(e) => {
                    self.metrics.block_read_error(&e);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Decode encoded parts and merge them: resources and scopes that are equal are combined,
/// and a span id seen twice is kept once (the first copy).
pub fn merge(parts: &[Vec<u8>]) -> Result<Vec<ResourceSpans>> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut by_resource: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut by_scope: HashMap<(usize, Vec<u8>), usize> = HashMap::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for part in parts {
        let td = TracesData::decode(part.as_slice())
            .map_err(|e| Error::Internal(format!("stored trace does not decode: {e}")))?;
        for rs in td.resource_spans {
            let rkey_bytes = [
                rs.resource
                    .as_ref()
                    .map(Message::encode_to_vec)
                    .unwrap_or_default(),
                rs.schema_url.clone().into_bytes(),
            ]
            .concat();
            let ri = *by_resource.entry(rkey_bytes).or_insert_with(|| {
                out.push(ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: Vec::new(),
                    schema_url: rs.schema_url.clone(),
                });
                out.len() - 1
            });
            for ss in rs.scope_spans {
                let skey = [
                    ss.scope
                        .as_ref()
                        .map(Message::encode_to_vec)
                        .unwrap_or_default(),
                    ss.schema_url.clone().into_bytes(),
                ]
                .concat();
                let si = *by_scope.entry((ri, skey)).or_insert_with(|| {
                    out[ri].scope_spans.push(ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: Vec::new(),
                        schema_url: ss.schema_url.clone(),
                    });
                    out[ri].scope_spans.len() - 1
                });
                for span in ss.spans {
                    if seen.insert(span.span_id.clone()) {
                        out[ri].scope_spans[si].spans.push(span);
                    }
                }
            }
        }
    }
    for rs in &mut out {
        rs.scope_spans.retain(|s| !s.spans.is_empty());
    }
    out.retain(|r| !r.scope_spans.is_empty());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ingest::batch::split_valid;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn req(ids: &[u8]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: ids
                        .iter()
                        .map(|i| Span {
                            trace_id: vec![1; 16],
                            span_id: vec![*i; 8],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn duplicates_are_removed_and_equal_resources_combined() {
        let a = split_valid(&req(&[1, 2])).fragments.remove(0).bytes;
        let b = split_valid(&req(&[2, 3])).fragments.remove(0).bytes;
        let merged = merge(&[a, b]).unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].scope_spans.len(), 1);
        let ids: Vec<u8> = merged[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.span_id[0])
            .collect();
        assert_eq!(ids, [1, 2, 3]);
    }
}
