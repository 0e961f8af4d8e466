//! Merging blocks: read the inputs a batch at a time in trace-id order (k-way), combine
//! the parts of a trace found in several inputs, and encode one output block in the write
//! format into the local spool as the merge goes, so a job holds a batch of each input and
//! the row group being written, never whole blocks.
//!
//! Combining works on the protobuf encoding without decoding spans: resources and scopes
//! with equal encodings are combined and a span id seen twice is kept once (the first
//! copy), exactly as [`crate::query::merge`] does for a lookup. A trace found in one input
//! only is copied as it is unless it holds a duplicate span id.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::Path;

use tempo_api::trace_id::TraceId;
use uuid::Uuid;

use crate::block::build::{BlockBuilder, BuildHints, BuiltBlock, SpoolDir};
use crate::block::meta::META_OBJECT;
use crate::block::{
    BlockFormat, BlockMeta, EncodingSettings, InMemoryCursor, TraceCursor, TraceRecord,
    format_by_name,
};
use crate::error::{Error, Result};
use crate::store::BlockStore;

use super::encoded::{combine, walk_stats};

/// One trace of a merge output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedTrace {
    /// Trace id.
    pub id: TraceId,
    /// Encoded `TracesData`.
    pub data: Vec<u8>,
    /// Earliest span start (unix ns).
    pub start_ns: u64,
    /// Latest span end (unix ns).
    pub end_ns: u64,
    /// Span count (after de-duplication).
    pub spans: u32,
}

/// The traces of one input fetched and not yet merged.
#[derive(Default)]
struct Queue {
    buffered: VecDeque<(TraceId, Vec<u8>)>,
    done: bool,
}

impl Queue {
    /// Fetch the next batch from `cursor` when nothing is buffered (a cursor may return
    /// empty batches).
    async fn fill(&mut self, cursor: &mut dyn TraceCursor) -> Result<()> {
        while self.buffered.is_empty() && !self.done {
            match cursor.next_batch().await? {
                Some(batch) => {
                    // The trait promises id order; a format that broke it must not make
                    // the output unsorted.
                    if !batch.is_sorted_by(|a, b| a.0 < b.0) {
                        return Err(Error::Internal(
                            "a compaction input returned traces out of id order".into(),
                        ));
                    }
                    self.buffered.extend(batch);
                }
                None => self.done = true,
            }
        }
        Ok(())
    }
}

/// Open `m` and return a cursor over its traces in id order.
async fn open_input(
    store: &BlockStore,
    settings: &EncodingSettings,
    m: &BlockMeta,
) -> Result<Box<dyn TraceCursor>> {
    let format = format_by_name(&m.format, settings).ok_or_else(|| Error::CorruptBlock {
        tenant: m.tenant_id.clone(),
        block_id: m.block_id.to_string(),
        object: META_OBJECT,
        message: format!("block format {:?} cannot be read by this build", m.format),
    })?;
    let reader = format.open(store, m).await?;
    Ok(match reader.cursor() {
        Some(c) => c,
        None => {
            let mut all = reader.read_all().await?;
            all.sort_by_key(|a| a.0);
            Box::new(InMemoryCursor::new(all))
        }
    })
}

/// Merge `inputs` (each in its own format; earlier inputs win duplicate spans) into block
/// `output` of `tenant`, encoded by `format` in a spool directory under `spool_root`.
/// Reads only: the caller uploads the result.
pub async fn merge_into(
    store: &BlockStore,
    settings: &EncodingSettings,
    inputs: &[BlockMeta],
    format: &dyn BlockFormat,
    tenant: &str,
    output: Uuid,
    spool_root: &Path,
) -> Result<BuiltBlock> {
    let mut cursors = Vec::with_capacity(inputs.len());
    for m in inputs {
        cursors.push(open_input(store, settings, m).await?);
    }
    let mut queues: Vec<Queue> = inputs.iter().map(|_| Queue::default()).collect();
    let hints = BuildHints {
        start_ns: inputs.iter().map(super::plan::start_ns).min().unwrap_or(0),
        traces: inputs.iter().map(|m| m.total_objects as usize).sum(),
    };
    let spool = SpoolDir::create(spool_root, output)?;
    let mut builder = format.builder(tenant, output, spool, hints)?;
    // Decoding, combining and encoding run on the compaction thread (background
    // priority); the queues and the builder travel there and back for each step.
    let threads = crate::cpu::compaction_threads();
    loop {
        for (queue, cursor) in queues.iter_mut().zip(cursors.iter_mut()) {
            queue.fill(cursor.as_mut()).await?;
        }
        if queues.iter().all(|q| q.done && q.buffered.is_empty()) {
            break;
        }
        let merged;
        (queues, builder, merged) = threads
            .run(move || {
                let merged = merge_buffered(&mut queues, builder.as_mut());
                (queues, builder, merged)
            })
            .await?;
        merged?;
    }
    threads.run(move || builder.finish()).await?
}

/// Merge and write traces while every input that is not finished has some buffered (so
/// the smallest id is known); stops when one of them runs dry.
fn merge_buffered(inputs: &mut [Queue], builder: &mut dyn BlockBuilder) -> Result<()> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    loop {
        if inputs.iter().any(|i| i.buffered.is_empty() && !i.done) {
            return Ok(());
        }
        let Some(id) = inputs
            .iter()
            .filter_map(|i| i.buffered.front().map(|(id, _)| *id))
            .min()
        else {
            return Ok(());
        };
        parts.clear();
        for input in inputs.iter_mut() {
            while input.buffered.front().is_some_and(|(t, _)| *t == id) {
                if let Some((_, bytes)) = input.buffered.pop_front() {
                    parts.push(bytes);
                }
            }
        }
        let t = merge_trace(id, std::mem::take(&mut parts))?;
        builder.push(&TraceRecord {
            id: t.id,
            data: &t.data,
            start_ns: t.start_ns,
            end_ns: t.end_ns,
            spans: t.spans,
        })?;
    }
}

/// Merge inputs that are each sorted by trace id into one list sorted by id with unique
/// ids. Parts of one trace are combined in input order (earlier inputs win duplicates).
pub fn merge_sorted(inputs: Vec<Vec<(TraceId, Vec<u8>)>>) -> Result<Vec<MergedTrace>> {
    let mut inputs: Vec<std::vec::IntoIter<(TraceId, Vec<u8>)>> = inputs
        .into_iter()
        .map(|mut v| {
            // The trait promises sorted output; a format that breaks it must not make
            // the output block unsorted.
            if !v.is_sorted_by(|a, b| a.0 <= b.0) {
                v.sort_by_key(|a| a.0);
            }
            v.into_iter()
        })
        .collect();
    let mut heads: Vec<Option<(TraceId, Vec<u8>)>> =
        inputs.iter_mut().map(Iterator::next).collect();
    let mut heap: BinaryHeap<Reverse<(TraceId, usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|(id, _)| Reverse((*id, i))))
        .collect();
    let mut out = Vec::new();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    while let Some(Reverse((id, _))) = heap.peek().copied() {
        parts.clear();
        while let Some(Reverse((next, i))) = heap.peek().copied() {
            if next != id {
                break;
            }
            heap.pop();
            if let Some((_, bytes)) = heads[i].take() {
                parts.push(bytes);
            }
            heads[i] = inputs[i].next();
            if let Some((nid, _)) = &heads[i] {
                heap.push(Reverse((*nid, i)));
            }
        }
        out.push(merge_trace(id, std::mem::take(&mut parts))?);
    }
    Ok(out)
}

/// Combine the parts of one trace.
pub fn merge_trace(id: TraceId, mut parts: Vec<Vec<u8>>) -> Result<MergedTrace> {
    let corrupt = |e: &str| Error::Internal(format!("stored trace does not decode: {e}"));
    if parts.len() == 1 {
        let stats = walk_stats(&parts[0]).map_err(corrupt)?;
        if !stats.duplicates {
            return Ok(MergedTrace {
                id,
                data: parts.pop().unwrap_or_default(),
                start_ns: stats.start,
                end_ns: stats.end,
                spans: stats.spans,
            });
        }
    }
    let data = combine(&parts).map_err(corrupt)?;
    let stats = walk_stats(&data).map_err(corrupt)?;
    Ok(MergedTrace {
        id,
        data,
        start_ns: stats.start,
        end_ns: stats.end,
        spans: stats.spans,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
    use prost::Message;

    fn span(id: u8, start: u64, end: u64) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            name: format!("s{id}"),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    fn td(svc: &str, scope: &str, spans: Vec<Span>) -> Vec<u8> {
        TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(OtlpResource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(svc.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: scope.into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn span_ids(data: &[u8]) -> Vec<u8> {
        let t = TracesData::decode(data).unwrap();
        t.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.span_id[0])
            .collect()
    }

    #[test]
    fn combine_matches_the_query_merge() {
        let a = [
            td("a", "x", vec![span(1, 10, 20), span(2, 5, 30)]),
            td("b", "x", vec![span(3, 7, 8)]),
        ]
        .concat();
        let b = [
            td("a", "x", vec![span(2, 5, 30), span(4, 1, 2)]),
            td("a", "y", vec![span(5, 3, 4)]),
            td("b", "x", vec![span(3, 7, 8)]),
        ]
        .concat();
        let m = merge_trace([1; 16], vec![a.clone(), b.clone()]).unwrap();
        let expected = crate::query::merge(&[a, b]).unwrap();
        let got = TracesData::decode(m.data.as_slice())
            .unwrap()
            .resource_spans;
        assert_eq!(got, expected);
        assert_eq!(span_ids(&m.data), [1, 2, 4, 5, 3]);
        assert_eq!((m.start_ns, m.end_ns, m.spans), (1, 30, 5));
    }

    #[test]
    fn a_single_part_is_copied_unless_it_repeats_a_span() {
        let a = td("a", "x", vec![span(1, 10, 20), span(2, 5, 30)]);
        let m = merge_trace([1; 16], vec![a.clone()]).unwrap();
        assert_eq!(m.data, a);
        assert_eq!((m.start_ns, m.end_ns, m.spans), (5, 30, 2));
        let dup = [a.clone(), td("a", "x", vec![span(1, 10, 20)])].concat();
        let m = merge_trace([1; 16], vec![dup]).unwrap();
        assert_eq!(span_ids(&m.data), [1, 2]);
        assert_eq!(m.spans, 2);
    }

    #[test]
    fn k_way_merge_sorts_and_unites_ids() {
        let part = |id: u8| td("a", "x", vec![span(id, 1, 2)]);
        let tid = |n: u8| [n; 16];
        let inputs = vec![
            vec![(tid(1), part(1)), (tid(3), part(3)), (tid(5), part(5))],
            vec![(tid(2), part(2)), (tid(3), part(3)), (tid(3), part(33))],
            vec![],
            vec![(tid(5), part(55)), (tid(0), part(0))], // unsorted: sorted first
        ];
        let out = merge_sorted(inputs).unwrap();
        let ids: Vec<u8> = out.iter().map(|t| t.id[0]).collect();
        assert_eq!(ids, [0, 1, 2, 3, 5]);
        assert_eq!(span_ids(&out[3].data), [3, 33]);
        assert_eq!(span_ids(&out[4].data), [5, 55]);
        assert_eq!(out[3].spans, 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(merge_trace([1; 16], vec![vec![0x0a, 0xff]]).is_err());
        assert!(merge_trace([1; 16], vec![vec![0x0a, 0x02, 0x12], vec![]]).is_err());
    }
}
