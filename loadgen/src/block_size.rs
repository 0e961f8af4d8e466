//! Block sizes of the reference backend's formats for a shape: the traces a run of the
//! shape would store, encoded as rb1 and as rb2 with default settings.
//!
//! Each trace's parts are encoded as the backend stores them (one `TracesData` encoding per
//! part, concatenated); traces start 1 ms apart, as at 1,000 traces/s.

use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use reference_backend::block::{BlockInput, EncodingSettings, TraceRecord, rb1, rb2};

use crate::scenario::SizeProfile;
use crate::shapes::{self, Params};

/// Start of the first trace (unix ns).
const START_NS: u64 = 1_700_000_000_000_000_000;
/// Spacing of trace starts.
const STEP_NS: u64 = 1_000_000;

/// One stored trace.
pub struct StoredTrace {
    /// Trace id.
    pub id: [u8; 16],
    /// Concatenated `TracesData` encodings of its parts.
    pub data: Vec<u8>,
    /// Earliest span start.
    pub start_ns: u64,
    /// Latest span end.
    pub end_ns: u64,
    /// Spans.
    pub spans: u32,
}

/// `traces` traces of shape `name` (seed 1), sorted by id; `None` for an unknown shape.
pub fn corpus(name: &str, profile: SizeProfile, traces: u64) -> Option<Vec<StoredTrace>> {
    let shape = shapes::by_name(name)?;
    let params = Params::new();
    let mut out: Vec<StoredTrace> = (0..traces)
        .map(|seq| {
            let t = shapes::generate(shape, 1, seq, START_NS + seq * STEP_NS, profile, &params);
            let mut data = Vec::new();
            let (mut start_ns, mut end_ns) = (u64::MAX, 0);
            for part in &t.parts {
                for s in part
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    start_ns = start_ns.min(s.start_time_unix_nano);
                    end_ns = end_ns.max(s.end_time_unix_nano);
                }
                TracesData {
                    resource_spans: part.resource_spans.clone(),
                }
                .encode(&mut data)
                .ok();
            }
            StoredTrace {
                id: t.trace_id,
                data,
                start_ns,
                end_ns,
                spans: t.span_count as u32,
            }
        })
        .collect();
    out.sort_by_key(|t| t.id);
    out.dedup_by_key(|t| t.id);
    Some(out)
}

/// Encoded sizes of one corpus.
#[derive(Debug, Clone, Copy)]
pub struct BlockSizes {
    /// Traces.
    pub traces: u64,
    /// Spans.
    pub spans: u64,
    /// Bytes of the traces as OTLP protobuf.
    pub protobuf: u64,
    /// rb1 `data` + `index` objects.
    pub rb1: u64,
    /// rb2 `data` object.
    pub rb2: u64,
}

impl BlockSizes {
    /// rb2 size over rb1 size.
    pub fn ratio(&self) -> f64 {
        self.rb2 as f64 / self.rb1.max(1) as f64
    }
}

/// Encode `corpus` as rb1 and rb2 with default settings (bloom filters excluded: both
/// formats write the same ones).
pub fn sizes(corpus: &[StoredTrace]) -> Result<BlockSizes, String> {
    let records: Vec<TraceRecord<'_>> = corpus
        .iter()
        .map(|t| TraceRecord {
            id: t.id,
            data: &t.data,
            start_ns: t.start_ns,
            end_ns: t.end_ns,
            spans: t.spans,
        })
        .collect();
    let input = BlockInput {
        tenant: "single-tenant",
        block_id: uuid::Uuid::nil(),
        traces: &records,
    };
    let settings = EncodingSettings::default();
    let one = rb1::encode(&input, &settings).map_err(|e| format!("rb1: {e}"))?;
    let two = rb2::encode(&input, &settings).map_err(|e| format!("rb2: {e}"))?;
    Ok(BlockSizes {
        traces: records.len() as u64,
        spans: records.iter().map(|r| u64::from(r.spans)).sum(),
        protobuf: records.iter().map(|r| r.data.len() as u64).sum(),
        rb1: (one.data.len() + one.index.len()) as u64,
        rb2: two.data.len() as u64,
    })
}
