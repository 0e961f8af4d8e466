//! `loadgen sink`: an OTLP receiver that counts requests, spans and bytes and discards
//! them, to measure a generator without a backend in the way.
//!
//! Every listener answers both OTLP/gRPC (`TraceService/Export` over h2c) and OTLP/HTTP
//! (`POST /v1/traces`, protobuf or JSON, optionally gzip, HTTP/1.1 or h2c). Protobuf bodies
//! are not decoded: a hand-written tag/varint walker descends
//! `ExportTraceServiceRequest → ResourceSpans(1) → ScopeSpans(2) → Span(2)` and counts the
//! span fields, so the cost is per span, not per byte. Malformed bodies get 400 /
//! `INVALID_ARGUMENT`.
//!
//! A [`Stall`] holds every request arriving in a time window (for latency-correction
//! tests: a 1 s stall must show in the corrected p99).

mod grpc;
mod walk;

use reference_backend::ingest::http::{Format, format_of};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use bytes::Bytes;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::exporter::classify::RpcStatus;
use crate::exporter::grpc::EXPORT_PATH;

use self::grpc::SinkGrpc;
pub use self::walk::{Malformed, count_spans, count_spans_json};

/// Largest request body accepted (wire and decompressed).
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Hold requests for a while (test aid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// The window opens when this many requests have arrived (0: with the first one).
    pub after_requests: u64,
    /// Window length: every request arriving inside it is answered at its end.
    pub duration: Duration,
    /// Reopen the window every this long after it first opened (`None`: once).
    pub every: Option<Duration>,
}

/// Where the sink listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// Listener for OTLP/gRPC (also answers OTLP/HTTP).
    pub grpc_addr: String,
    /// Listener for OTLP/HTTP (also answers OTLP/gRPC). The same address as `grpc_addr`
    /// (with a fixed port) binds one listener.
    pub http_addr: String,
    /// Optional stall.
    pub stall: Option<Stall>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            grpc_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            stall: None,
        }
    }
}

/// What the sink has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Accepted requests.
    pub requests: u64,
    /// Spans in accepted requests.
    pub spans: u64,
    /// Payload bytes of accepted requests (after decompression).
    pub bytes: u64,
    /// Requests refused as malformed or unsupported.
    pub rejected: u64,
    /// Requests held by the stall window.
    pub stalled: u64,
}

#[derive(Default)]
struct Counters {
    arrivals: AtomicU64,
    requests: AtomicU64,
    spans: AtomicU64,
    bytes: AtomicU64,
    rejected: AtomicU64,
    stalled: AtomicU64,
}

struct SinkState {
    counters: Counters,
    stall: Option<Stall>,
    stall_start: OnceLock<Instant>,
}

impl SinkState {
    fn arrive(&self) -> u64 {
        self.counters.arrivals.fetch_add(1, Ordering::Relaxed)
    }

    fn accept(&self, spans: u64, bytes: usize) {
        let c = &self.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.spans.fetch_add(spans, Ordering::Relaxed);
        c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn reject(&self) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Hold the request with arrival index `n` until the end of the stall window it
    /// falls in, if any.
    async fn maybe_stall(&self, n: u64) {
        let Some(stall) = self.stall else { return };
        if n < stall.after_requests {
            return;
        }
        let start = *self.stall_start.get_or_init(Instant::now);
        let now = Instant::now();
        let window = match stall.every {
            Some(p) if !p.is_zero() => {
                let k = now.duration_since(start).as_nanos() / p.as_nanos();
                start + p.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX))
            }
            _ => start,
        };
        let end = window + stall.duration;
        if now < end {
            self.counters.stalled.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(end.into()).await;
        }
    }
}

fn status_body(format: Format, code: tonic::Code, message: &str) -> Vec<u8> {
    match format {
        Format::Protobuf => RpcStatus {
            code: code as i32,
            message: message.to_owned(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Format::Json => serde_json::json!({ "code": code as i32, "message": message })
            .to_string()
            .into_bytes(),
    }
}

fn content_type(format: Format) -> &'static str {
    match format {
        Format::Protobuf => "application/x-protobuf",
        Format::Json => "application/json",
    }
}

fn error(format: Format, status: StatusCode, code: tonic::Code, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, content_type(format))],
        status_body(format, code, message),
    )
        .into_response()
}

async fn http_export(
    State(state): State<Arc<SinkState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let n = state.arrive();
    let response = http_handle(&state, &headers, body).await;
    state.maybe_stall(n).await;
    response
}

async fn http_handle(state: &SinkState, headers: &HeaderMap, body: Body) -> Response {
    let format = match format_of(headers) {
        Ok(f) => f,
        Err(e) => {
            state.reject();
            return error(
                Format::Protobuf,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::Unimplemented,
                &e.to_string(),
            );
        }
    };
    let bad = |status: StatusCode, code: tonic::Code, msg: &str| {
        state.reject();
        error(format, status, code, msg)
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => false,
        Some(v) if v.is_empty() || v == "identity" => false,
        Some(v) if v == "gzip" => true,
        Some(v) => {
            let msg = format!("unsupported content encoding {v:?}");
            return bad(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::Unimplemented,
                &msg,
            );
        }
    };
    let wire = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("cannot read body: {e}");
            return bad(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument, &msg);
        }
    };
    let plain = if gzip {
        let mut out = Vec::with_capacity(wire.len() * 4);
        let read = flate2::read::GzDecoder::new(wire.as_ref())
            .take(MAX_BODY as u64)
            .read_to_end(&mut out);
        if let Err(e) = read {
            let msg = format!("invalid gzip body: {e}");
            return bad(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument, &msg);
        }
        Bytes::from(out)
    } else {
        wire
    };
    let counted = match format {
        Format::Protobuf => count_spans(&plain).map_err(|e| e.to_string()),
        Format::Json => count_spans_json(&plain),
    };
    match counted {
        Ok(spans) => {
            state.accept(spans, plain.len());
            let body: &'static [u8] = match format {
                Format::Protobuf => b"",
                Format::Json => b"{}",
            };
            ([(header::CONTENT_TYPE, content_type(format))], body).into_response()
        }
        Err(msg) => bad(StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument, &msg),
    }
}

fn router(state: Arc<SinkState>) -> Router {
    Router::new()
        .route("/v1/traces", post(http_export))
        .route_service(EXPORT_PATH, SinkGrpc(state.clone()))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// A running sink. Dropping it without [`Sink::stop`] leaves it serving until its
/// runtime shuts down.
pub struct Sink {
    /// Where OTLP/gRPC is answered.
    pub grpc_addr: SocketAddr,
    /// Where OTLP/HTTP is answered.
    pub http_addr: SocketAddr,
    state: Arc<SinkState>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Other(format!("sink: bind {addr}: {e}")))
}

fn local_addr(l: &TcpListener) -> Result<SocketAddr> {
    l.local_addr()
        .map_err(|e| Error::Other(format!("sink: local address: {e}")))
}

impl Sink {
    /// Bind and serve on the current Tokio runtime.
    pub async fn start(config: SinkConfig) -> Result<Sink> {
        let state = Arc::new(SinkState {
            counters: Counters::default(),
            stall: config.stall,
            stall_start: OnceLock::new(),
        });
        let (stop, _) = watch::channel(false);
        let http = bind(&config.http_addr).await?;
        let http_addr = local_addr(&http)?;
        let mut listeners = vec![http];
        let grpc_addr = if config.grpc_addr == config.http_addr && !config.http_addr.ends_with(":0")
        {
            http_addr
        } else {
            let grpc = bind(&config.grpc_addr).await?;
            let a = local_addr(&grpc)?;
            listeners.push(grpc);
            a
        };
        let tasks = listeners
            .into_iter()
            .map(|l| {
                let app = router(state.clone());
                let mut rx = stop.subscribe();
                let l = l.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                tokio::spawn(async move {
                    let shutdown = async move {
                        let _ = rx.wait_for(|s| *s).await;
                    };
                    if let Err(e) = axum::serve(l, app).with_graceful_shutdown(shutdown).await {
                        tracing::error!(error = %e, "sink server failed");
                    }
                })
            })
            .collect();
        Ok(Sink {
            grpc_addr,
            http_addr,
            state,
            stop,
            tasks,
        })
    }

    /// Counts so far.
    pub fn counts(&self) -> SinkCounts {
        let c = &self.state.counters;
        SinkCounts {
            requests: c.requests.load(Ordering::Relaxed),
            spans: c.spans.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            stalled: c.stalled.load(Ordering::Relaxed),
        }
    }

    /// Stop listening; open connections get up to 5 s to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for mut t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}

/// One progress line: rates between two snapshots `elapsed` apart.
pub fn rate_line(prev: SinkCounts, now: SinkCounts, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    format!(
        "spans/s {:>12.0}  requests/s {:>9.0}  MB/s {:>8.1}  (total spans {}, requests {}, rejected {})",
        rate(prev.spans, now.spans),
        rate(prev.requests, now.requests),
        rate(prev.bytes, now.bytes) / 1e6,
        now.spans,
        now.requests,
        now.rejected,
    )
}

/// `loadgen sink --listen ADDR`: serve OTLP/gRPC and OTLP/HTTP on `listen`, print a rate
/// line per second until ctrl-c, then the totals.
pub async fn run_sink(listen: &str, stall: Option<Stall>) -> Result<()> {
    let sink = Sink::start(SinkConfig {
        grpc_addr: listen.to_owned(),
        http_addr: listen.to_owned(),
        stall,
    })
    .await?;
    println!(
        "sink listening on {} (OTLP/gRPC and OTLP/HTTP POST /v1/traces); ctrl-c to stop",
        sink.http_addr
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut prev = sink.counts();
    let mut last = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick.tick() => {
                let now = sink.counts();
                println!("{}", rate_line(prev, now, last.elapsed()));
                prev = now;
                last = Instant::now();
            }
        }
    }
    let total = sink.counts();
    sink.stop().await;
    println!(
        "sink stopped: {} spans in {} requests ({} bytes), {} rejected",
        total.spans, total.requests, total.bytes, total.rejected
    );
    Ok(())
}
