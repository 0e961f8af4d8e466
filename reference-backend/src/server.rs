//! Starting and stopping a backend: listeners, WAL replay, background loops.
//!
//! [`Backend::start`] binds every listener first (so `/ready` answers 503 during replay),
//! then replays the WAL in the background and installs the read/write core. Tests and
//! harnesses call it in-process; the binary wraps it in `cli::run`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{RwLock, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::block::{EncodingSettings, format_by_name};
use crate::blocklist::BlockList;
use crate::blocklist::Readable;
use crate::compactor::Compactor;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::flush::Flusher;
use crate::ingest::Ingester;
use crate::live::LiveStore;
use crate::metrics::Metrics;
use crate::query::Querier;
use crate::search::Searcher;
use crate::state::{AppState, Core};
use crate::store::BlockStore;
use crate::wal::Wal;

/// How long listeners may take to finish their requests once stopping.
const LISTENER_GRACE: Duration = Duration::from_secs(2);

/// The addresses a backend listens on (useful with port 0).
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ListenAddrs {
    /// Query API.
    pub http: SocketAddr,
    /// OTLP gRPC.
    pub otlp_grpc: SocketAddr,
    /// OTLP HTTP.
    pub otlp_http: SocketAddr,
}

/// A running backend.
pub struct Backend {
    /// Bound addresses.
    pub addrs: ListenAddrs,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    init: watch::Receiver<Option<std::result::Result<(), String>>>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr: addr.to_owned(),
        source,
    })
}

fn local_addr(l: &TcpListener, what: &str) -> Result<SocketAddr> {
    l.local_addr().map_err(|source| Error::Bind {
        addr: what.to_owned(),
        source,
    })
}

impl Backend {
    /// Bind, serve, and start WAL replay in the background.
    pub async fn start(config: Config) -> Result<Backend> {
        config.validate()?;
        let store = BlockStore::from_config(&config.storage.trace)?;
        let metrics = Arc::new(Metrics::new());
        let state = AppState::new(config.clone(), metrics.clone());
        let protocols = &config.distributor.receivers.otlp.protocols;
        let http_l = bind(&format!(
            "{}:{}",
            config.server.http_listen_address, config.server.http_listen_port
        ))
        .await?;
        let grpc_l = bind(&protocols.grpc.endpoint).await?;
        let otlp_http_l = bind(&protocols.http.endpoint).await?;
        let addrs = ListenAddrs {
            http: local_addr(&http_l, "http")?,
            otlp_grpc: local_addr(&grpc_l, "otlp grpc")?,
            otlp_http: local_addr(&otlp_http_l, "otlp http")?,
        };
        info!(http = %addrs.http, otlp_grpc = %addrs.otlp_grpc, otlp_http = %addrs.otlp_http, store = store.describe(), "listening");

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(serve_axum(
            crate::api::router(state.clone()),
            http_l,
            stop_rx.clone(),
        ));
        tasks.push(serve_axum(
            crate::ingest::http::router(state.clone()),
            otlp_http_l,
            stop_rx.clone(),
        ));
        tasks.push(serve_grpc(state.clone(), grpc_l, stop_rx.clone()));

        let (init_tx, init) = watch::channel(None);
        let init_state = state.clone();
        let init_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let r = initialize(init_state, store, init_stop).await;
            if let Err(e) = &r {
                error!(error = %e, "backend failed to start");
            }
            let _ = init_tx.send(Some(r.map_err(|e| e.to_string())));
        }));
        Ok(Backend {
            addrs,
            state,
            stop,
            init,
            tasks,
        })
    }

    /// Wait until WAL replay is done and the backend is ready (or failed to start).
    pub async fn wait_ready(&self) -> Result<()> {
        let mut rx = self.init.clone();
        let r = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Internal("start-up task ended".into()))?;
        match r.as_ref() {
            Some(Ok(())) => Ok(()),
            Some(Err(m)) => Err(Error::Internal(format!("start-up failed: {m}"))),
            None => Err(Error::Internal("start-up task ended".into())),
        }
    }

    /// Shared state (metrics, config).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Graceful stop: refuse new writes, stop the listeners and background loops, let a
    /// block write under way finish (bounded by `server.graceful_shutdown_timeout`).
    /// Everything acknowledged and not yet in a block stays in the WAL, which the next
    /// start replays, so stopping takes about as long at any load.
    pub async fn shutdown(self) -> Result<()> {
        let timeout = self.state.config.server.graceful_shutdown_timeout.get();
        self.state.set_stopping();
        let _ = self.stop.send(true);
        if let Some(core) = self.state.core_for_shutdown() {
            let left = core.flusher.stop(timeout).await;
            if left > 0 {
                info!(
                    blocks = left,
                    "block writes stopped by shutdown; their spans stay in the wal for the next start"
                );
            }
        }
        // Listeners finish the requests they are serving; connections still open after
        // the grace period are closed.
        let deadline = tokio::time::Instant::now() + LISTENER_GRACE;
        for t in self.tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
        Ok(())
    }

    /// Stop at once without flushing, as a crash would (in-process tests).
    pub fn abort(self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn serve_axum(
    router: axum::Router,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(error = %e, "http server failed");
        }
    })
}

fn serve_grpc(
    state: Arc<AppState>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let svc = crate::ingest::grpc::TraceGrpc::new(state);
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            error!(error = %e, "grpc server failed");
        }
    })
}

/// Directory under the WAL path where blocks are encoded before upload.
pub const SPOOL_DIR: &str = "blocks";

/// Poll the block list, replay the WAL, install the core, start background loops.
async fn initialize(
    state: Arc<AppState>,
    store: BlockStore,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let config = &state.config;
    let metrics = state.metrics.clone();
    let settings = EncodingSettings::from(&config.storage.trace.block);
    let blocks = Arc::new(
        BlockList::new(store, settings.clone())
            .with_readable(Readable::of(config.release, config.mutant))
            .with_index_staleness(config.storage.trace.blocklist_poll_stale_tenant_index.get()),
    );
    if let Err(e) = blocks.poll().await {
        warn!(error = %e, "initial block list poll failed; retrying in the background");
    }
    let wal_dir = config.storage.trace.wal.path.clone();
    let wal_metrics = metrics.clone();
    let (wal, replay) = tokio::task::spawn_blocking(move || Wal::open(&wal_dir, wal_metrics))
        .await
        .map_err(|e| Error::Internal(format!("wal replay task: {e}")))??;
    let wal = Arc::new(wal);
    // Whatever a crash left in the spool is still in the WAL.
    let spool = config.storage.trace.wal.path.join(SPOOL_DIR);
    crate::block::build::clear_spool(&spool)?;
    let live = Arc::new(LiveStore::new(wal.files().clone()));
    let mut spans = 0u64;
    let records = replay.records.len();
    let replayed = if config.mutant == Some(crate::release::Mutant::SkipWalReplay) {
        Vec::new()
    } else {
        replay.records
    };
    // Replay rebuilds the index of every trace not yet in a block (live traces, head
    // blocks and blocks cut but not written before the stop): their spans are still in
    // the segments, which stay until those traces are in blocks.
    for record in replayed {
        spans += record.fragments.iter().map(|f| f.spans as u64).sum::<u64>();
        live.insert(&record.tenant, record.segment, &record.fragments);
    }
    metrics.memory_bytes.set(live.memory_bytes());
    metrics.unflushed_bytes.set(live.unflushed_bytes());
    info!(
        records,
        spans,
        truncated_bytes = replay.truncated_bytes,
        "wal replay restored spans"
    );
    let name = crate::release::write_format(&state.config);
    let format = format_by_name(name, &settings)
        .ok_or_else(|| Error::Internal(format!("block format {name} is not built in")))?;
    let gate = Arc::new(RwLock::new(()));
    let ingester = Arc::new(Ingester::new(
        config,
        live.clone(),
        wal.clone(),
        gate.clone(),
        metrics.clone(),
    ));
    let flusher = Flusher::new(
        live.clone(),
        wal,
        gate,
        blocks.clone(),
        format,
        config.ingester.clone(),
        metrics.clone(),
        spool,
    );
    if config.release.has_compactor() && !config.compactor.compaction.disabled {
        let compactor = Compactor::new(config, blocks.store().clone(), metrics.clone())?
            .with_block_list(blocks.clone());
        tokio::spawn(Arc::new(compactor).run(stop.clone()));
    }
    let searcher = Arc::new(Searcher::new(live.clone(), blocks.clone(), metrics.clone()));
    let querier = Arc::new(Querier::new(live, blocks.clone(), metrics).with_mutant(config.mutant));
    tokio::spawn(flusher.clone().run(stop.clone()));
    tokio::spawn(poll_blocks(
        blocks,
        config.storage.trace.blocklist_poll.get(),
        stop,
    ));
    state.set_core(Core {
        ingester,
        querier,
        searcher,
        flusher,
    });
    info!("ready");
    Ok(())
}

async fn poll_blocks(blocks: Arc<BlockList>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = blocks.poll().await {
            warn!(error = %e, "block list poll failed");
        }
    }
}
