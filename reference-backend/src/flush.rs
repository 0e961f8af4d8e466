//! Cutting head blocks and writing them to the object store.
//!
//! Every `flush_check_period` idle traces move to the head block and head blocks that are
//! old or big enough are cut. A cut block is written with the running format a trace at a
//! time: its spans are read back from the WAL in id order and encoded into a spool file
//! (`<wal>/blocks/<block-id>/`), which is then uploaded (in parts when large), `meta.json`
//! last. One block is written at a time; a failed write is retried with backoff while the
//! block stays queryable from the WAL. Only after `meta.json` is written is the block
//! registered in the block list and are WAL segments deleted, and only those that no
//! trace still needs.
//!
//! Shutdown does not wait for everything to become blocks: what is not in a block stays
//! in the WAL, which the next start replays. It lets a block write under way finish for
//! up to `server.graceful_shutdown_timeout`, then stops it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, Semaphore, watch};
use tracing::{info, warn};

use crate::block::build::{self, BuildHints, SpoolDir};
use crate::block::{BlockFormat, BlockMeta, TraceRecord};
use crate::blocklist::BlockList;
use crate::config::IngesterConfig;
use crate::cpu::BackgroundThreads;
use crate::error::{Error, Result};
use crate::live::{CutBlock, CutPolicy, LiveStore};
use crate::metrics::Metrics;
use crate::wal::Wal;

/// Writes cut blocks and trims the WAL.
pub struct Flusher {
    live: Arc<LiveStore>,
    wal: Arc<Wal>,
    wal_gate: Arc<RwLock<()>>,
    blocks: Arc<BlockList>,
    format: Arc<dyn BlockFormat>,
    cfg: IngesterConfig,
    metrics: Arc<Metrics>,
    /// Where blocks are encoded before upload.
    spool: PathBuf,
    /// One cut round at a time.
    round: tokio::sync::Mutex<()>,
    /// At most [`WRITERS`] block writes at a time: encoding uses a core each, and blocks
    /// waiting to be written cost only their index in memory (their spans are in the WAL).
    writing: Semaphore,
    /// Blocks cut and not yet written; `/flush` waits for this to reach zero.
    pending: watch::Sender<usize>,
    /// Set at shutdown: writes stop at the next trace and are not retried.
    stopping: Arc<AtomicBool>,
    /// Where blocks are encoded: [`WRITERS`] long-lived threads at normal priority (block
    /// writes free the WAL and memory, so they must keep up; see
    /// [`crate::cpu::BACKGROUND_NICE`]).
    encoder: BackgroundThreads,
}

/// Blocks written at once: at high rates one core cannot encode as fast as spans arrive.
const WRITERS: usize = 2;

impl Flusher {
    /// Assemble; blocks are encoded under `spool`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        live: Arc<LiveStore>,
        wal: Arc<Wal>,
        wal_gate: Arc<RwLock<()>>,
        blocks: Arc<BlockList>,
        format: Arc<dyn BlockFormat>,
        cfg: IngesterConfig,
        metrics: Arc<Metrics>,
        spool: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Flusher {
            live,
            wal,
            wal_gate,
            blocks,
            format,
            cfg,
            metrics,
            spool,
            round: tokio::sync::Mutex::new(()),
            writing: Semaphore::new(WRITERS),
            pending: watch::channel(0).0,
            stopping: Arc::new(AtomicBool::new(false)),
            encoder: BackgroundThreads::start("blk", WRITERS, 0),
        })
    }

    /// The periodic loop; ends when `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let period = self.cfg.flush_check_period.get();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            self.live.sweep_idle(
                self.cfg.trace_idle_period.get(),
                self.cfg.max_block_duration.get(),
            );
            self.cut_and_spawn(false).await;
            self.publish();
        }
    }

    fn publish(&self) {
        self.metrics.memory_bytes.set(self.live.memory_bytes());
        self.metrics
            .unflushed_bytes
            .set(self.live.unflushed_bytes());
    }

    /// Cut head blocks and start writing each in the background. Returns how many.
    async fn cut_and_spawn(self: &Arc<Self>, force: bool) -> usize {
        let _round = self.round.lock().await;
        // A fresh segment lets older ones be deleted once their traces are flushed.
        if let Err(e) = self.wal.rotate_if_written().await {
            warn!(error = %e, "wal rotation before cut failed");
        }
        let cut = self.live.cut(CutPolicy {
            max_age: self.cfg.max_block_duration.get(),
            max_bytes: self.cfg.max_block_bytes.as_u64(),
            force,
        });
        let n = cut.len();
        for block in cut {
            self.pending.send_modify(|p| *p += 1);
            let me = self.clone();
            tokio::spawn(async move {
                me.write_until_done(block).await;
                me.pending.send_modify(|p| *p -= 1);
            });
        }
        n
    }

    /// Move every trace to its head block, cut all, and wait up to `timeout` for every
    /// pending block (including earlier ones still retrying) to be written.
    pub async fn flush_all(self: &Arc<Self>, timeout: Duration) -> Result<usize> {
        let n = self.cut_and_spawn(true).await;
        let mut rx = self.pending.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|p| *p == 0))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(_) => {
                self.trim_wal().await?;
                Ok(n)
            }
            Err(_) => Err(Error::Backpressure {
                reason: format!(
                    "flush incomplete after {timeout:?}: {} blocks still being written (the object store may be failing; they are retried and stay in the wal)",
                    *self.pending.borrow()
                ),
                retry_after: Duration::from_secs(5),
            }),
        }
    }

    /// Shutdown: cut nothing more, let block writes under way finish for up to `timeout`,
    /// then stop them. Returns the blocks left unwritten (their spans stay in the WAL).
    pub async fn stop(&self, timeout: Duration) -> usize {
        let _round = self.round.lock().await;
        let mut rx = self.pending.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|p| *p == 0)).await;
        self.stopping.store(true, Ordering::Release);
        *self.pending.borrow()
    }

    /// Blocks being written right now.
    pub fn pending(&self) -> usize {
        *self.pending.borrow()
    }

    async fn write_until_done(&self, block: Arc<CutBlock>) {
        let mut backoff = self.cfg.flush_retry_backoff.get();
        let max_backoff = self.cfg.flush_retry_max_backoff.get();
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            let started = Instant::now();
            let written = match self.writing.acquire().await {
                Ok(_permit) => self.write(&block).await,
                Err(_) => return,
            };
            match written {
                Ok(meta) => {
                    self.metrics.blocks_flushed.inc();
                    self.metrics
                        .flush_seconds
                        .observe(started.elapsed().as_secs_f64());
                    info!(tenant = %block.tenant, block = %block.id, traces = meta.total_objects, bytes = meta.size, "block flushed");
                    self.blocks.add(meta);
                    self.live.finish(&block);
                    self.publish();
                    if let Err(e) = self.trim_wal().await {
                        warn!(error = %e, "wal trim failed; segments stay until the next flush");
                    }
                    return;
                }
                Err(_) if self.stopping.load(Ordering::Acquire) => {
                    info!(tenant = %block.tenant, block = %block.id, "block write stopped by shutdown; its spans stay in the wal");
                    return;
                }
                Err(e) => {
                    self.metrics.flush_failures.inc();
                    warn!(tenant = %block.tenant, block = %block.id, error = %e, retry_in = ?backoff, "block flush failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }

    /// Encode `block` into the spool off the async workers (reading its spans back from
    /// the WAL in id order), then upload it.
    async fn write(&self, block: &Arc<CutBlock>) -> Result<BlockMeta> {
        let spool = SpoolDir::create(&self.spool, block.id)?;
        let hints = BuildHints {
            start_ns: block.start_ns(),
            traces: block.traces.len(),
        };
        let mut builder = self.format.builder(&block.tenant, block.id, spool, hints)?;
        let (live, b, stopping) = (self.live.clone(), block.clone(), self.stopping.clone());
        let built = self
            .encoder
            .run(move || {
                let mut buf = Vec::new();
                for (id, d) in &b.traces {
                    if stopping.load(Ordering::Acquire) {
                        return Err(Error::NotReady("shutting down"));
                    }
                    buf.clear();
                    live.read_trace(d, &mut buf)?;
                    builder.push(&TraceRecord {
                        id: *id,
                        data: &buf,
                        start_ns: d.start_ns,
                        end_ns: d.end_ns,
                        spans: d.spans,
                    })?;
                }
                builder.finish()
            })
            .await??;
        build::upload(self.blocks.store(), built).await
    }

    /// Delete WAL segments whose records are all in durable blocks.
    async fn trim_wal(&self) -> Result<()> {
        // No request may sit between its WAL append and its insert into `live` while we
        // decide: its record would be in a segment no in-memory trace points at yet. Once
        // decided, later appends go to the open segment (at or above `keep_from`), so the
        // files are deleted after the gate opens again, off the async workers: ingest waits
        // only for the decision, not for the file system (deleting the segments under the
        // gate stalled every request of that moment by about 100 ms at 100k spans/s).
        let keep_from = {
            let _gate = self.wal_gate.write().await;
            self.live
                .min_segment()
                .unwrap_or_else(|| self.wal.current())
        };
        let wal = self.wal.clone();
        let deleted = tokio::task::spawn_blocking(move || wal.delete_below(keep_from))
            .await
            .map_err(|e| Error::Internal(format!("wal trim task: {e}")))??;
        if deleted > 0 {
            info!(deleted, keep_from, "wal segments deleted");
        }
        Ok(())
    }
}
