//! Cutting head blocks and writing them to the object store.
//!
//! Every `flush_check_period` idle traces move to the head block and head blocks that are
//! old or big enough are cut. A cut block is written with the running format, retried with
//! backoff while the store fails (it stays queryable from memory and its WAL segments stay
//! on disk meanwhile), then registered in the block list. Only after that are WAL
//! segments deleted, and only those that no in-memory trace still needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, watch};
use tracing::{info, warn};

use crate::block::{BlockFormat, BlockInput, TraceRecord};
use crate::blocklist::BlockList;
use crate::config::IngesterConfig;
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
    /// One cut round at a time.
    round: tokio::sync::Mutex<()>,
    /// Blocks being written; `/flush` waits for this to reach zero.
    pending: watch::Sender<usize>,
}

impl Flusher {
    /// Assemble.
    pub fn new(
        live: Arc<LiveStore>,
        wal: Arc<Wal>,
        wal_gate: Arc<RwLock<()>>,
        blocks: Arc<BlockList>,
        format: Arc<dyn BlockFormat>,
        cfg: IngesterConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Flusher {
            live,
            wal,
            wal_gate,
            blocks,
            format,
            cfg,
            metrics,
            round: tokio::sync::Mutex::new(()),
            pending: watch::channel(0).0,
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
            self.live.sweep_idle(self.cfg.trace_idle_period.get());
            self.cut_and_spawn(false).await;
        }
    }

    /// Cut head blocks and start writing each in the background. Returns how many.
    async fn cut_and_spawn(self: &Arc<Self>, force: bool) -> usize {
        let _round = self.round.lock().await;
        // A fresh segment lets older ones be deleted once their traces are flushed.
        if let Err(e) = self.wal.rotate().await {
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

    /// Blocks being written right now.
    pub fn pending(&self) -> usize {
        *self.pending.borrow()
    }

    async fn write_until_done(&self, block: Arc<CutBlock>) {
        let mut backoff = self.cfg.flush_retry_backoff.get();
        let max_backoff = self.cfg.flush_retry_max_backoff.get();
        loop {
            let started = Instant::now();
            match self.write(&block).await {
                Ok(meta) => {
                    self.metrics.blocks_flushed.inc();
                    self.metrics
                        .flush_seconds
                        .observe(started.elapsed().as_secs_f64());
                    info!(tenant = %block.tenant, block = %block.id, traces = meta.total_objects, bytes = meta.size, "block flushed");
                    self.blocks.add(meta);
                    self.live.finish(&block);
                    self.metrics.memory_bytes.set(self.live.bytes());
                    if let Err(e) = self.trim_wal().await {
                        warn!(error = %e, "wal trim failed; segments stay until the next flush");
                    }
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

    async fn write(&self, block: &CutBlock) -> Result<crate::block::BlockMeta> {
        let records: Vec<TraceRecord<'_>> = block
            .traces
            .iter()
            .map(|(id, d)| TraceRecord {
                id: *id,
                data: &d.bytes,
                start_ns: d.start_ns,
                end_ns: d.end_ns,
                spans: d.spans,
            })
            .collect();
        self.format
            .write(
                self.blocks.store(),
                BlockInput {
                    tenant: &block.tenant,
                    block_id: block.id,
                    traces: &records,
                },
            )
            .await
    }

    /// Delete WAL segments whose records are all in durable blocks.
    async fn trim_wal(&self) -> Result<()> {
        // No request may sit between its WAL append and its insert into `live` while we
        // decide: its record would be in a segment no in-memory trace points at yet.
        let _gate = self.wal_gate.write().await;
        let keep_from = self
            .live
            .min_segment()
            .unwrap_or_else(|| self.wal.current());
        let deleted = self.wal.delete_below(keep_from)?;
        if deleted > 0 {
            info!(deleted, keep_from, "wal segments deleted");
        }
        Ok(())
    }
}
