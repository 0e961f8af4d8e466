//! Shared state of a running backend, handed to every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::flush::Flusher;
use crate::ingest::Ingester;
use crate::metrics::Metrics;
use crate::query::Querier;
use crate::search::Searcher;

/// The parts that exist once WAL replay is done.
pub struct Core {
    /// Write path.
    pub ingester: Arc<Ingester>,
    /// Read path.
    pub querier: Arc<Querier>,
    /// Search and tag endpoints.
    pub searcher: Arc<Searcher>,
    /// Block cutting and upload.
    pub flusher: Arc<Flusher>,
}

/// Everything handlers need.
pub struct AppState {
    /// The validated config.
    pub config: Config,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    core: OnceLock<Core>,
    stopping: AtomicBool,
}

impl AppState {
    /// State of a backend that is starting.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(AppState {
            config,
            metrics,
            core: OnceLock::new(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Install the core once replay is done; the backend is ready from then on.
    pub fn set_core(&self, core: Core) {
        let _ = self.core.set(core);
    }

    /// The core, or 503 while replay runs or the backend stops.
    pub fn core(&self) -> Result<&Core> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(Error::NotReady("shutting down"));
        }
        self.core.get().ok_or(Error::NotReady("replaying the wal"))
    }

    /// The core even while stopping (for the final flush).
    pub fn core_for_shutdown(&self) -> Option<&Core> {
        self.core.get()
    }

    /// Refuse new work from now on.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// `/ready`: `None` when ready, else the reason.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        self.core().err().map(|e| match e {
            Error::NotReady(r) => r,
            _ => "not ready",
        })
    }
}
