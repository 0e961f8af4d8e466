//! Prometheus metrics served on `/metrics`.
//!
//! Ingest counters use Tempo's names (`tempo_distributor_spans_received_total`,
//! `tempo_discarded_spans_total{reason,tenant}`) so harnesses scrape one vocabulary for both.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label set of per-tenant counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    /// Tenant id.
    pub tenant: String,
}

/// Label set of discard counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscardLabels {
    /// Why the spans were discarded.
    pub reason: String,
    /// Tenant id (empty when the tenant is unknown or invalid).
    pub tenant: String,
}

/// Label set of query metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// Endpoint name (`trace_by_id_v1`, `trace_by_id_v2`).
    pub endpoint: String,
    /// HTTP status class.
    pub status: String,
}

/// Label set of per-endpoint latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// Endpoint name.
    pub endpoint: String,
}

/// Every metric the backend exports.
pub struct Metrics {
    registry: Registry,
    /// Spans accepted, by tenant.
    pub spans_received: Family<TenantLabel, Counter>,
    /// Request bytes accepted, by tenant.
    pub bytes_received: Family<TenantLabel, Counter>,
    /// Spans refused or dropped, by reason and tenant.
    pub discarded_spans: Family<DiscardLabels, Counter>,
    /// Requests refused, by reason and tenant.
    pub rejected_requests: Family<DiscardLabels, Counter>,
    /// Attribute values truncated to `max_attribute_bytes`.
    pub truncated_attributes: Counter,
    /// WAL fsync calls.
    pub wal_fsyncs: Counter,
    /// WAL fsync latency.
    pub wal_fsync_seconds: Histogram,
    /// WAL records appended.
    pub wal_records: Counter,
    /// WAL bytes on disk.
    pub wal_bytes: Gauge<u64, AtomicU64>,
    /// Memory the index of traces not yet in a block takes (live, head, waiting to flush).
    pub memory_bytes: Gauge<u64, AtomicU64>,
    /// Bytes of spans not yet in a block (they are in the WAL).
    pub unflushed_bytes: Gauge<u64, AtomicU64>,
    /// Blocks written to the object store.
    pub blocks_flushed: Counter,
    /// Failed flush attempts (retried).
    pub flush_failures: Counter,
    /// Flush duration (cut to `meta.json` written).
    pub flush_seconds: Histogram,
    /// Queries served, by endpoint and status.
    pub queries: Family<QueryLabels, Counter>,
    /// Query latency, by endpoint.
    pub query_seconds: Family<EndpointLabel, Histogram>,
    /// Blocks whose objects could not be read during a query.
    pub block_read_errors: Counter,
    /// Blocks written by the compactor (merges and format rewrites).
    pub compaction_blocks_written: Counter,
    /// Traces written by the compactor.
    pub compaction_objects_written: Counter,
    /// Input blocks marked compacted after their output was written.
    pub compaction_blocks_compacted: Counter,
    /// Failed compaction steps (retried next cycle).
    pub compaction_errors: Counter,
    /// Blocks marked for deletion by retention.
    pub retention_marked: Counter,
    /// Compacted or expired blocks deleted.
    pub retention_deleted: Counter,
    /// Queries that touched a block in a format the running release cannot read.
    pub unreadable_block_reads: Family<FormatLabel, Counter>,
    /// Queries that touched a block whose objects are damaged, by object.
    pub corrupt_block_reads: Family<ObjectLabel, Counter>,
    /// Blocks in the block list, by format (set when `/metrics` is scraped).
    pub blocks: Family<FormatLabel, Gauge<u64, AtomicU64>>,
}

/// `object` label: which object of a block (`data`, `index`, `bloom`, `meta.json`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabel {
    /// Object name.
    pub object: String,
}

/// `format` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FormatLabel {
    /// Block format.
    pub format: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            spans_received: Family::default(),
            bytes_received: Family::default(),
            discarded_spans: Family::default(),
            rejected_requests: Family::default(),
            truncated_attributes: Counter::default(),
            wal_fsyncs: Counter::default(),
            wal_fsync_seconds: latency_histogram(),
            wal_records: Counter::default(),
            wal_bytes: Gauge::default(),
            memory_bytes: Gauge::default(),
            unflushed_bytes: Gauge::default(),
            blocks_flushed: Counter::default(),
            flush_failures: Counter::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            queries: Family::default(),
            query_seconds: Family::new_with_constructor(latency_histogram),
            block_read_errors: Counter::default(),
            unreadable_block_reads: Family::default(),
            corrupt_block_reads: Family::default(),
            blocks: Family::default(),
            compaction_blocks_written: Counter::default(),
            compaction_objects_written: Counter::default(),
            compaction_blocks_compacted: Counter::default(),
            compaction_errors: Counter::default(),
            retention_marked: Counter::default(),
            retention_deleted: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "tempo_distributor_spans_received",
            "Spans accepted by ingest",
            m.spans_received.clone(),
        );
        r.register(
            "tempo_distributor_bytes_received",
            "OTLP request bytes accepted by ingest",
            m.bytes_received.clone(),
        );
        r.register(
            "tempo_discarded_spans",
            "Spans refused or dropped, by reason",
            m.discarded_spans.clone(),
        );
        r.register(
            "reference_backend_rejected_requests",
            "Ingest requests refused, by reason",
            m.rejected_requests.clone(),
        );
        r.register(
            "reference_backend_truncated_attributes",
            "Attribute values truncated to max_attribute_bytes",
            m.truncated_attributes.clone(),
        );
        r.register(
            "reference_backend_wal_fsyncs",
            "WAL fsync calls",
            m.wal_fsyncs.clone(),
        );
        r.register(
            "reference_backend_wal_fsync_seconds",
            "WAL fsync latency",
            m.wal_fsync_seconds.clone(),
        );
        r.register(
            "reference_backend_wal_records",
            "WAL records appended",
            m.wal_records.clone(),
        );
        r.register(
            "reference_backend_wal_bytes",
            "WAL bytes on disk",
            m.wal_bytes.clone(),
        );
        r.register(
            "reference_backend_memory_bytes",
            "Memory the index of traces not yet in a block takes (live, head, waiting to flush)",
            m.memory_bytes.clone(),
        );
        r.register(
            "reference_backend_unflushed_bytes",
            "Bytes of spans not yet in a block (in the WAL)",
            m.unflushed_bytes.clone(),
        );
        r.register(
            "reference_backend_blocks_flushed",
            "Blocks written to the object store",
            m.blocks_flushed.clone(),
        );
        r.register(
            "reference_backend_flush_failures",
            "Failed flush attempts (retried with backoff)",
            m.flush_failures.clone(),
        );
        r.register(
            "reference_backend_flush_seconds",
            "Time to write one block",
            m.flush_seconds.clone(),
        );
        r.register(
            "reference_backend_queries",
            "Queries served by endpoint and status",
            m.queries.clone(),
        );
        r.register(
            "reference_backend_query_seconds",
            "Query latency by endpoint",
            m.query_seconds.clone(),
        );
        r.register(
            "reference_backend_block_read_errors",
            "Blocks that could not be read during a query",
            m.block_read_errors.clone(),
        );
        r.register(
            "reference_backend_unreadable_block_reads",
            "Queries that touched a block whose format this release cannot read",
            m.unreadable_block_reads.clone(),
        );
        r.register(
            "reference_backend_corrupt_block_reads",
            "Queries that touched a block whose objects are damaged (each answered 500 naming the block)",
            m.corrupt_block_reads.clone(),
        );
        r.register(
            "reference_backend_blocks",
            "Blocks in the block list by format (compacted inputs excluded)",
            m.blocks.clone(),
        );
        r.register(
            "reference_backend_compaction_blocks_written",
            "Blocks written by the compactor (merges and format rewrites)",
            m.compaction_blocks_written.clone(),
        );
        r.register(
            "reference_backend_compaction_objects_written",
            "Traces written by the compactor",
            m.compaction_objects_written.clone(),
        );
        r.register(
            "reference_backend_compaction_blocks_compacted",
            "Input blocks marked compacted (meta.compacted.json) after their output was written",
            m.compaction_blocks_compacted.clone(),
        );
        r.register(
            "reference_backend_compaction_errors",
            "Failed compaction, retention or index steps (retried next cycle)",
            m.compaction_errors.clone(),
        );
        r.register(
            "reference_backend_retention_marked_for_deletion",
            "Blocks past block_retention marked for deletion",
            m.retention_marked.clone(),
        );
        r.register(
            "reference_backend_retention_deleted",
            "Compacted or expired blocks deleted after compacted_block_retention",
            m.retention_deleted.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count a failed block read (and, for an unreadable format, which format; for a damaged
    /// block, which object).
    pub fn block_read_error(&self, e: &crate::error::Error) {
        self.block_read_errors.inc();
        match e {
            crate::error::Error::UnreadableBlock { format, .. } => {
                self.unreadable_block_reads
                    .get_or_create(&FormatLabel {
                        format: format.clone(),
                    })
                    .inc();
            }
            crate::error::Error::CorruptBlock { object, .. } => {
                self.corrupt_block_reads
                    .get_or_create(&ObjectLabel {
                        object: (*object).to_owned(),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    /// Count discarded spans.
    pub fn discard(&self, reason: &str, tenant: &str, spans: u64) {
        if spans > 0 {
            self.discarded_spans
                .get_or_create(&DiscardLabels {
                    reason: reason.to_owned(),
                    tenant: tenant.to_owned(),
                })
                .inc_by(spans);
        }
    }

    /// Count a refused request and its spans.
    pub fn reject(&self, reason: &str, tenant: &str, spans: u64) {
        self.rejected_requests
            .get_or_create(&DiscardLabels {
                reason: reason.to_owned(),
                tenant: tenant.to_owned(),
            })
            .inc();
        self.discard(reason, tenant, spans);
    }

    /// Record one query.
    pub fn query(&self, endpoint: &str, status: u16, seconds: f64) {
        self.queries
            .get_or_create(&QueryLabels {
                endpoint: endpoint.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.query_seconds
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_owned(),
            })
            .observe(seconds);
    }

    /// Render the text exposition format, with process CPU and RSS appended.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
        {
            out = format!("# error encoding metrics: {e}\n");
        }
        let p = crate::process::sample();
        out.push_str(&format!(
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n",
            p.cpu_seconds
        ));
        out.push_str(&format!(
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
            p.rss_bytes
        ));
        out.push_str("# EOF\n");
        out
    }
}
