//! SDK mode: spans go through the real `opentelemetry_sdk` pipeline (tracer → batch span
//! processor → `opentelemetry-otlp` exporter), as an instrumented application sends them.
//!
//! * One `SdkTracerProvider` per distinct resource (one "process" per service), each with
//!   its own `BatchSpanProcessor` thread and exporter connection; endpoints are assigned
//!   to providers round-robin.
//! * Spans keep the exact ids, parent ids, names, kinds, times, attributes, events, links
//!   and status of the OTLP `ResourceSpans` given to [`SdkDriver::emit`]: the parent
//!   comes from a synthetic parent context and the span id (and a root's trace id) from
//!   an [`IdGenerator`](opentelemetry_sdk::trace::IdGenerator) fed through a thread-local set right before each span starts.
//! * Every `export()` call is timed and classified by a decorator around the OTLP
//!   exporter and reported to the `on_export` callback (on the batch thread: keep it cheap).
//!
//! Fidelity limits: the OTel API has no bytes, map or mixed-type array values (those
//! become strings); span `flags` are set by the SDK (sampled, plus the OTLP
//! "has/is remote" bits); dropped-counts are the SDK's own.
//!
//! **The batch processor silently drops spans when its queue (`max_queue_size`) is full**
//! (it logs once). The SDK does not expose that count, so the driver derives it:
//! [`SdkStats::unexported`] = spans emitted − spans handed to the exporter (exported or
//! failed). After [`SdkDriver::flush`] or [`SdkDriver::shutdown`] nothing is queued any
//! more, so it is exactly the dropped count; reports must show it.

mod convert;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter, SpanLimits,
};
use parking_lot::Mutex;
use prost::Message;

pub use self::convert::value;
use self::convert::{FedIds, emit_span, key_value, tracer};

use super::{ExporterConfig, OutcomeClass, SendResult, classify};
use crate::error::{Error, Result};
use crate::scenario::{Compression, Protocol};

/// Batch span processor settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkBatchConfig {
    /// Spans per export (SDK default 512).
    pub max_export_batch_size: usize,
    /// Export at least this often (SDK default 5 s).
    pub scheduled_delay: Duration,
    /// Queue length; spans beyond it are dropped (SDK default 2048).
    pub max_queue_size: usize,
    /// Keep the OTLP exporter's retries (the SDK default: 3 retries with backoff, honouring
    /// Retry-After); `false` sends each batch once.
    pub retries: bool,
}

impl Default for SdkBatchConfig {
    fn default() -> Self {
        SdkBatchConfig {
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            max_queue_size: 2048,
            retries: true,
        }
    }
}

/// One `export()` call of the SDK's exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportObservation {
    /// Wall time of the call (including the exporter's own retries).
    pub latency: Duration,
    /// Spans in the batch.
    pub spans: usize,
    /// Classified outcome. The SDK hides OTLP partial success (it only logs it), so
    /// accepted exports are always [`OutcomeClass::Ok`].
    pub result: SendResult,
}

/// Receives export observations (called on the batch processor thread).
pub type ExportCallback = Arc<dyn Fn(ExportObservation) + Send + Sync>;

/// Span accounting of a driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SdkStats {
    /// Spans ended into the batch processors.
    pub emitted: u64,
    /// Spans in exports that succeeded.
    pub exported: u64,
    /// Spans in exports that failed.
    pub failed: u64,
    /// Export calls.
    pub exports: u64,
    /// Tracer providers (distinct resources).
    pub providers: usize,
}

impl SdkStats {
    /// Spans never handed to the exporter: still queued, or dropped by a full queue.
    /// Exactly the dropped count after a flush or shutdown.
    pub fn unexported(&self) -> u64 {
        self.emitted.saturating_sub(self.exported + self.failed)
    }
}

#[derive(Default)]
struct Counters {
    emitted: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    exports: AtomicU64,
}

/// The OTLP exporter, timed and classified.
struct Observed {
    inner: opentelemetry_otlp::SpanExporter,
    on_export: ExportCallback,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("inner", &self.inner)
            .finish()
    }
}

impl SpanExporter for Observed {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let start = Instant::now();
        let r = self.inner.export(batch).await;
        let latency = start.elapsed();
        let result = classify_sdk(&r, u32::try_from(spans).unwrap_or(u32::MAX));
        let c = &self.counters;
        c.exports.fetch_add(1, Ordering::Relaxed);
        if result.class.accepted() {
            c.exported.fetch_add(spans as u64, Ordering::Relaxed);
        } else {
            c.failed.fetch_add(spans as u64, Ordering::Relaxed);
        }
        (self.on_export)(ExportObservation {
            latency,
            spans,
            result,
        });
        r
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Classify an SDK export result. The OTLP exporter only reports the HTTP status code or
/// gRPC code in its error text (`… status code: 429`, `… gRPC code: ResourceExhausted`).
pub fn classify_sdk(r: &OTelSdkResult, spans: u32) -> SendResult {
    match r {
        Ok(()) => classify::result(OutcomeClass::Ok, spans, None),
        Err(OTelSdkError::Timeout(d)) => classify::timeout(spans, *d),
        Err(OTelSdkError::AlreadyShutdown) => classify::transport(spans, "exporter shut down"),
        Err(OTelSdkError::InternalFailure(msg)) => classify_sdk_message(msg, spans),
    }
}

/// Classify the error text of the OTLP exporter.
pub fn classify_sdk_message(msg: &str, spans: u32) -> SendResult {
    let class = if let Some((_, rest)) = msg.split_once("status code: ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits
            .parse()
            .map_or(OutcomeClass::Transport, classify::http_status_class)
    } else if let Some((_, rest)) = msg.split_once("gRPC code: ") {
        let name = rest.split(':').next().unwrap_or("").trim();
        let code = (0..=16)
            .map(tonic::Code::from_i32)
            .find(|c| format!("{c:?}") == name);
        match code.map(classify::grpc_code_class) {
            // A source chain after the code means tonic raised it locally.
            Some(OutcomeClass::Unavailable) if rest.contains(": ") => OutcomeClass::Transport,
            Some(c) => c,
            None => OutcomeClass::Transport,
        }
    } else {
        OutcomeClass::Transport
    };
    classify::result(class, spans, Some(msg))
}

struct ProviderEntry {
    provider: SdkTracerProvider,
    tracers: Mutex<HashMap<Vec<u8>, SdkTracer>>,
}

/// Drives `opentelemetry_sdk` with spans given as OTLP `ResourceSpans`.
pub struct SdkDriver {
    config: ExporterConfig,
    batch: SdkBatchConfig,
    on_export: ExportCallback,
    runtime: Option<tokio::runtime::Handle>,
    providers: Mutex<HashMap<Vec<u8>, Arc<ProviderEntry>>>,
    next_endpoint: AtomicUsize,
    counters: Arc<Counters>,
}

impl SdkDriver {
    /// A driver for `config` (gRPC: call inside the Tokio runtime that will outlive it).
    /// `http-json` and gzip are refused: this build of `opentelemetry-otlp` has neither
    /// (`http-json`, `gzip-http`, `gzip-tonic` features).
    pub fn new(
        config: &ExporterConfig,
        batch: SdkBatchConfig,
        on_export: ExportCallback,
    ) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::Target("no OTLP endpoint configured".into()));
        }
        if config.protocol == Protocol::HttpJson {
            return Err(Error::Target(
                "sdk mode supports grpc and http-protobuf (opentelemetry-otlp is built without http-json)".into(),
            ));
        }
        if config.compression != Compression::None {
            return Err(Error::Target(
                "sdk mode does not support compression (opentelemetry-otlp is built without gzip-tonic/gzip-http)".into(),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        if config.protocol == Protocol::Grpc && runtime.is_none() {
            return Err(Error::Target(
                "sdk mode over gRPC must be set up inside a Tokio runtime".into(),
            ));
        }
        // Validate endpoints and headers now rather than at the first span.
        for e in &config.endpoints {
            match config.protocol {
                Protocol::Grpc => drop(super::grpc::endpoint_uri(e)?),
                _ => drop(super::http::traces_url(e)?),
            }
        }
        super::grpc::metadata(config)?;
        Ok(SdkDriver {
            config: config.clone(),
            batch,
            on_export,
            runtime,
            providers: Mutex::new(HashMap::new()),
            next_endpoint: AtomicUsize::new(0),
            counters: Arc::new(Counters::default()),
        })
    }

    /// Span accounting so far.
    pub fn stats(&self) -> SdkStats {
        let c = &self.counters;
        SdkStats {
            emitted: c.emitted.load(Ordering::Relaxed),
            exported: c.exported.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            exports: c.exports.load(Ordering::Relaxed),
            providers: self.providers.lock().len(),
        }
    }

    fn exporter(&self) -> Result<opentelemetry_otlp::SpanExporter> {
        let i = self.next_endpoint.fetch_add(1, Ordering::Relaxed) % self.config.endpoints.len();
        let endpoint = &self.config.endpoints[i];
        let retry = if self.batch.retries {
            RetryPolicy::default()
        } else {
            RetryPolicy::disabled()
        };
        let built = match self.config.protocol {
            Protocol::Grpc => {
                let _guard = self.runtime.as_ref().map(tokio::runtime::Handle::enter);
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(super::grpc::endpoint_uri(endpoint)?)
                    .with_timeout(self.config.timeout)
                    .with_metadata(super::grpc::metadata(&self.config)?)
                    .with_retry_policy(retry)
                    .build()
            }
            _ => {
                let url = super::http::traces_url(endpoint)?.to_string();
                let mut headers: HashMap<String, String> =
                    self.config.headers.clone().into_iter().collect();
                if let Some(t) = &self.config.tenant {
                    headers.insert("X-Scope-OrgID".into(), t.clone());
                }
                let timeout = self.config.timeout;
                // The blocking client owns a runtime: build it off any async context.
                std::thread::scope(|s| {
                    s.spawn(move || {
                        let client = reqwest::blocking::Client::builder()
                            .no_proxy()
                            .timeout(timeout)
                            .build()
                            .map_err(|e| Error::Target(format!("HTTP client: {e}")))?;
                        Ok::<_, Error>(
                            opentelemetry_otlp::SpanExporter::builder()
                                .with_http()
                                .with_http_client(client)
                                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                                .with_endpoint(url)
                                .with_timeout(timeout)
                                .with_headers(headers)
                                .with_retry_policy(retry)
                                .build(),
                        )
                    })
                    .join()
                    .map_err(|_| Error::Other("OTLP HTTP exporter setup panicked".into()))?
                })?
            }
        };
        built.map_err(|e| Error::Target(format!("OTLP exporter: {e}")))
    }

    fn provider(&self, resource: Option<&ProtoResource>) -> Result<Arc<ProviderEntry>> {
        let key = resource.map(Message::encode_to_vec).unwrap_or_default();
        if let Some(p) = self.providers.lock().get(&key) {
            return Ok(p.clone());
        }
        let attrs = resource
            .map(|r| r.attributes.iter().map(key_value).collect::<Vec<_>>())
            .unwrap_or_default();
        let exporter = Observed {
            inner: self.exporter()?,
            on_export: self.on_export.clone(),
            counters: self.counters.clone(),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(self.batch.max_queue_size.max(1))
            .with_max_export_batch_size(self.batch.max_export_batch_size.max(1))
            .with_scheduled_delay(self.batch.scheduled_delay)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let limit = 100_000;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_id_generator(FedIds::default())
            .with_sampler(Sampler::AlwaysOn)
            .with_span_limits(SpanLimits {
                max_events_per_span: limit,
                max_attributes_per_span: limit,
                max_links_per_span: limit,
                max_attributes_per_event: limit,
                max_attributes_per_link: limit,
            })
            .with_resource(Resource::builder_empty().with_attributes(attrs).build())
            .build();
        let entry = Arc::new(ProviderEntry {
            provider,
            tracers: Mutex::new(HashMap::new()),
        });
        // A concurrent emit may have created one meanwhile: keep the first.
        Ok(self.providers.lock().entry(key).or_insert(entry).clone())
    }

    /// Create and end every span of `batch` through the SDK. Returns the spans emitted.
    /// Cheap per span, but the first span of a new resource builds its provider (an HTTP
    /// provider briefly blocks the calling thread to build a blocking client).
    pub fn emit(&self, batch: &[ResourceSpans]) -> Result<u64> {
        let mut n = 0u64;
        for rs in batch {
            let entry = self.provider(rs.resource.as_ref())?;
            for ss in &rs.scope_spans {
                let tracer = tracer(&entry, ss.scope.as_ref(), &ss.schema_url);
                for span in &ss.spans {
                    emit_span(&tracer, span);
                    n += 1;
                }
            }
        }
        self.counters.emitted.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    fn all(&self) -> Vec<SdkTracerProvider> {
        self.providers
            .lock()
            .values()
            .map(|e| e.provider.clone())
            .collect()
    }

    /// Export everything queued (on the blocking pool). Export failures are reported
    /// through `on_export`, not here; this fails when a flush cannot complete (the SDK
    /// waits at most 5 s per provider).
    pub async fn flush(&self) -> Result<()> {
        let providers = self.all();
        let results = tokio::task::spawn_blocking(move || {
            providers
                .iter()
                .map(|p| p.force_flush())
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Other(format!("sdk flush task: {e}")))?;
        for r in results {
            match r {
                Ok(()) | Err(OTelSdkError::InternalFailure(_)) => {}
                Err(e) => return Err(Error::Other(format!("sdk flush: {e}"))),
            }
        }
        Ok(())
    }

    /// Flush and stop every provider (on the blocking pool); later spans are dropped.
    pub async fn shutdown(&self) -> Result<()> {
        let providers = self.all();
        let timeout = self.config.timeout.max(Duration::from_secs(5)) * 2;
        let results = tokio::task::spawn_blocking(move || {
            providers
                .iter()
                .map(|p| p.shutdown_with_timeout(timeout))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Other(format!("sdk shutdown task: {e}")))?;
        for r in results {
            match r {
                Ok(())
                | Err(OTelSdkError::InternalFailure(_))
                | Err(OTelSdkError::AlreadyShutdown) => {}
                Err(e) => return Err(Error::Other(format!("sdk shutdown: {e}"))),
            }
        }
        Ok(())
    }
}
