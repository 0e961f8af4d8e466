//! Ingest: one implementation behind both OTLP transports.
//!
//! `push` decodes and validates off the async runtime, applies the tenant's rate limit and
//! the memory/WAL bounds, drops spans that would grow a trace past `max_bytes_per_trace`
//! (reported as partial success), appends the rest to the WAL and waits for the fsync,
//! then makes them visible to queries. Every refused or dropped span is counted by reason.

pub mod batch;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod wire_split;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::RwLock;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::live::LiveStore;
use crate::metrics::{Metrics, TenantLabel};
use crate::wal::Wal;
use batch::SplitBatch;
use limits::RateLimiter;

/// Bodies up to this size are split on the async worker; larger ones on the blocking pool.
const INLINE_DECODE_MAX_BYTES: u64 = 256 * 1024;

/// A request body as received, already decompressed.
pub enum Payload {
    /// `application/x-protobuf` or gRPC.
    Protobuf(Bytes),
    /// `application/json` (OTLP/JSON).
    Json(Bytes),
}

/// What happened to an accepted request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// Spans stored.
    pub accepted_spans: u64,
    /// Spans dropped (reported as OTLP partial success).
    pub rejected_spans: u64,
    /// Why spans were dropped, when some were.
    pub message: String,
}

/// Limits the ingester applies.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Truncate attribute values past this.
    pub max_attribute_bytes: usize,
    /// Drop spans that would grow a trace past this.
    pub max_bytes_per_trace: u64,
    /// Memory bound.
    pub max_memory_bytes: u64,
    /// WAL bound.
    pub max_wal_bytes: u64,
    /// How the running release spells the memory bound's key (for the 503 message).
    pub memory_key: String,
}

impl IngestLimits {
    /// From the config.
    pub fn from_config(c: &Config) -> Self {
        IngestLimits {
            max_attribute_bytes: c.overrides.defaults.ingestion.max_attribute_bytes.as_u64()
                as usize,
            max_bytes_per_trace: c.overrides.defaults.global.max_bytes_per_trace.as_u64(),
            max_memory_bytes: c.ingester.max_memory_bytes.as_u64(),
            max_wal_bytes: c.storage.trace.wal.max_bytes.as_u64(),
            memory_key: crate::release::config_rules::key_name(
                "ingester.max_memory_bytes",
                c.release,
            ),
        }
    }
}

/// The write path.
pub struct Ingester {
    limits: IngestLimits,
    rate: RateLimiter,
    live: Arc<LiveStore>,
    wal: Arc<Wal>,
    /// Held shared from WAL append until the spans are in `live`; the flusher takes it
    /// exclusively before deciding which WAL segments are no longer needed.
    pub(crate) wal_gate: Arc<RwLock<()>>,
    metrics: Arc<Metrics>,
}

impl Ingester {
    /// Assemble the write path.
    pub fn new(
        config: &Config,
        live: Arc<LiveStore>,
        wal: Arc<Wal>,
        wal_gate: Arc<RwLock<()>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let ing = &config.overrides.defaults.ingestion;
        Ingester {
            limits: IngestLimits::from_config(config),
            rate: RateLimiter::new(ing.rate_limit_bytes.as_u64(), ing.burst_size_bytes.as_u64()),
            live,
            wal,
            wal_gate,
            metrics,
        }
    }

    /// Store one export request for `tenant`. Returns only after the accepted spans are in
    /// the WAL on disk.
    pub async fn push(&self, tenant: &str, payload: Payload) -> Result<PushOutcome> {
        let size = match &payload {
            Payload::Protobuf(b) | Payload::Json(b) => b.len() as u64,
        };
        let max_attr = self.limits.max_attribute_bytes;
        let decode = move || -> Result<(u64, Result<SplitBatch>)> {
            match payload {
                Payload::Protobuf(b) => wire_split::split_protobuf(b, max_attr),
                Payload::Json(b) => {
                    let req = batch::decode_json(&b)?;
                    let spans = count_spans(&req);
                    Ok((spans, batch::split(req, max_attr)))
                }
            }
        };
        // A typical batch splits in tens of microseconds: do it in place, since the
        // blocking pool costs two thread switches per request. Large bodies (up to the
        // 16 MiB cap) go to the blocking pool so they never stall an async worker.
        let decoded = if size <= INLINE_DECODE_MAX_BYTES {
            decode()
        } else {
            tokio::task::spawn_blocking(decode)
                .await
                .map_err(|e| Error::Internal(format!("decode task: {e}")))?
        };
        let (spans, decoded) =
            decoded.inspect_err(|e| self.metrics.reject(e.discard_reason(), tenant, 0))?;
        let batch =
            decoded.inspect_err(|e| self.metrics.reject(e.discard_reason(), tenant, spans))?;
        self.metrics
            .truncated_attributes
            .inc_by(batch.truncated_values);
        if let Err(e) = self.admit(tenant, size) {
            self.metrics.reject(e.discard_reason(), tenant, batch.spans);
            return Err(e);
        }
        self.store(tenant, size, batch).await
    }

    /// Rate limit and memory/WAL bounds. Memory holds the index of traces not yet in a
    /// block, and the WAL their spans: both grow only while blocks are not written (a
    /// failing or slow store), so these bounds are what pushes back on clients then.
    fn admit(&self, tenant: &str, size: u64) -> Result<()> {
        let held = self.live.memory_bytes();
        if held >= self.limits.max_memory_bytes {
            return Err(Error::Backpressure {
                reason: format!(
                    "memory bound reached ({held} bytes held, limit {} bytes, {})",
                    self.limits.max_memory_bytes, self.limits.memory_key
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        let wal = self.wal.bytes();
        if wal + size > self.limits.max_wal_bytes {
            return Err(Error::Backpressure {
                reason: format!(
                    "wal bound reached ({wal} bytes on disk, limit {} bytes, storage.trace.wal.max_bytes)",
                    self.limits.max_wal_bytes
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        self.rate.check(tenant, size)
    }

    async fn store(&self, tenant: &str, size: u64, batch: SplitBatch) -> Result<PushOutcome> {
        let mut fragments = batch.fragments;
        let sizes = self
            .live
            .trace_sizes(tenant, fragments.iter().map(|f| f.trace_id));
        let mut rejected = 0u64;
        let mut kept = Vec::with_capacity(fragments.len());
        for (f, held) in fragments.drain(..).zip(sizes) {
            if held + f.bytes.len() as u64 > self.limits.max_bytes_per_trace {
                rejected += f.spans as u64;
            } else {
                kept.push(f);
            }
        }
        let accepted = batch.spans - rejected;
        if !kept.is_empty() {
            let _gate = self.wal_gate.read().await;
            let at = match self.wal.append(tenant, &kept).await {
                Ok(at) => at,
                Err(e) => {
                    self.metrics.reject("wal_error", tenant, batch.spans);
                    return Err(e);
                }
            };
            let refs = crate::wal::record::fragment_refs(at.offset, tenant, &kept);
            self.live.insert(tenant, at.segment, &refs);
            self.metrics.memory_bytes.set(self.live.memory_bytes());
        }
        let label = TenantLabel {
            tenant: tenant.to_owned(),
        };
        self.metrics
            .spans_received
            .get_or_create(&label)
            .inc_by(accepted);
        self.metrics
            .bytes_received
            .get_or_create(&label)
            .inc_by(size);
        self.metrics.discard("trace_too_large", tenant, rejected);
        let message = if rejected > 0 {
            format!(
                "TRACE_TOO_LARGE: {rejected} spans discarded: their traces would exceed max_bytes_per_trace ({} bytes)",
                self.limits.max_bytes_per_trace
            )
        } else {
            String::new()
        };
        Ok(PushOutcome {
            accepted_spans: accepted,
            rejected_spans: rejected,
            message,
        })
    }
}

fn count_spans(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}
