//! The compactor: merges small blocks, rewrites old formats, applies retention and keeps
//! each tenant's index (`<tenant>/index.json.gz`) current.
//!
//! Every `compaction_cycle` it lists the bucket and, per tenant:
//! 1. finishes or cleans up jobs a crash cut short (see below);
//! 2. marks blocks past `block_retention` compacted;
//! 3. runs the jobs [`plan`] chooses (merges only in windows the ingester no longer cuts
//!    blocks into, each job within a read-buffer budget): read and merge the inputs, write the job record
//!    `compaction.json` in the output's directory, the output's objects (its `meta.json`
//!    last), then `meta.compacted.json` on each input, then delete the job record;
//! 4. writes the tenant index;
//! 5. deletes compacted blocks whose mark is older than `compacted_block_retention`
//!    (`meta.json` first, the mark last) and writes the index again.
//!
//! Each step is one object write, and every state between two writes is readable: before
//! the output's `meta.json` the output does not exist for readers; after it, output and
//! inputs are both live and a lookup merges them (spans de-duplicated by id); once marked,
//! inputs leave readers' lists at their next poll but stay readable until deleted. A job
//! record whose output has no `meta.json` marks a partial output: the next cycle deletes
//! it and plans again. A job record beside a complete output marks a job that still has
//! inputs to mark: the next cycle marks them.

pub mod encoded;
pub mod merge;
pub mod plan;
pub mod retention;
pub mod state;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::block::index::{TenantListing, parse_listing, system_ns};
use crate::block::meta::rfc3339;
use crate::block::{BlockFormat, EncodingSettings, format_by_name};
use crate::blocklist::BlockList;
use crate::config::{CompactionConfig, Config};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::release::ReleaseId;
use crate::store::BlockStore;
use plan::{Job, JobKind, PlanLimits};
use state::{JobRecord, MetaCache, TenantState};

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Tenants with blocks.
    pub tenants: usize,
    /// Output blocks written (merges and rewrites).
    pub blocks_written: usize,
    /// Inputs marked compacted.
    pub blocks_compacted: usize,
    /// Blocks marked by retention.
    pub blocks_expired: usize,
    /// Compacted blocks deleted.
    pub blocks_deleted: usize,
    /// Jobs of an earlier cycle finished (inputs marked).
    pub jobs_recovered: usize,
    /// Partial outputs of an earlier cycle deleted.
    pub partial_outputs_removed: usize,
    /// Failed steps (the cycle goes on with the next job or tenant).
    pub errors: Vec<String>,
}

/// Compaction, format rewrites, retention and the tenant index.
pub struct Compactor {
    store: BlockStore,
    settings: EncodingSettings,
    cfg: CompactionConfig,
    release: ReleaseId,
    format: Arc<dyn BlockFormat>,
    metrics: Arc<Metrics>,
    blocks: Option<Arc<BlockList>>,
    /// Where outputs are encoded before upload.
    spool: std::path::PathBuf,
    /// How long after a window's end the ingester may still cut blocks that start in it
    /// (idle period, block age, a flush check): the window is merged only after that.
    settle: Duration,
    cache: Mutex<MetaCache>,
    /// One cycle at a time.
    running: tokio::sync::Mutex<()>,
}

impl Compactor {
    /// A compactor for `config` (its release, write format, compaction settings) over
    /// `store`.
    pub fn new(config: &Config, store: BlockStore, metrics: Arc<Metrics>) -> Result<Self> {
        let settings = EncodingSettings::from(&config.storage.trace.block);
        let name = crate::release::write_format(config);
        let format = format_by_name(name, &settings).ok_or_else(|| {
            Error::ConfigInvalid(format!(
                "compactor: block format {name} is not built into this binary"
            ))
        })?;
        Ok(Compactor {
            store,
            settings,
            cfg: config.compactor.compaction.clone(),
            release: config.release,
            format,
            metrics,
            blocks: None,
            spool: config.storage.trace.wal.path.join(crate::server::SPOOL_DIR),
            settle: config.ingester.trace_idle_period.get()
                + config.ingester.max_block_duration.get()
                + config.ingester.flush_check_period.get(),
            cache: Mutex::new(MetaCache::default()),
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// Re-poll `blocks` after each cycle that changed something, so this process's
    /// queries see the change at once.
    pub fn with_block_list(mut self, blocks: Arc<BlockList>) -> Self {
        self.blocks = Some(blocks);
        self
    }

    /// Fail every store write after the first `n` (crash-safety tests).
    #[doc(hidden)]
    pub fn with_crash_after(mut self, n: u64) -> Self {
        self.store = self.store.with_crash_after(n);
        self
    }

    /// Writes made so far by a compactor from [`Compactor::with_crash_after`].
    #[doc(hidden)]
    pub fn writes_done(&self) -> u64 {
        self.store.writes_done()
    }

    /// Run a cycle every `compaction_cycle` until `stop` turns true. A cycle cut short by
    /// the stop is safe: the next start finishes or cleans up its job.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let period = self
            .cfg
            .compaction_cycle
            .get()
            .max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                r = self.cycle(SystemTime::now()) => match r {
                    Ok(r) if r != CycleReport { tenants: r.tenants, ..Default::default() } => {
                        info!(
                            tenants = r.tenants,
                            written = r.blocks_written,
                            compacted = r.blocks_compacted,
                            expired = r.blocks_expired,
                            deleted = r.blocks_deleted,
                            recovered = r.jobs_recovered,
                            errors = r.errors.len(),
                            "compaction cycle"
                        );
                    }
                    Ok(_) => debug!("compaction cycle found nothing to do"),
                    Err(e) => {
                        self.metrics.compaction_errors.inc();
                        warn!(error = %e, "compaction cycle failed");
                    }
                },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One cycle at time `now` (retention and grace periods are measured against `now`;
    /// tests pass a clock of their own). Cycles of one compactor do not overlap. Fails only
    /// when the bucket cannot be listed; failed steps are counted, logged and listed in the
    /// report.
    pub async fn cycle(&self, now: SystemTime) -> Result<CycleReport> {
        let _running = self.running.lock().await;
        let listed_at = SystemTime::now();
        let listing = parse_listing(self.store.list_keys().await?);
        self.cache.lock().retain(&listing);
        let mut report = CycleReport::default();
        for (tenant, blocks) in listing {
            report.tenants += 1;
            let before = report.errors.len();
            if let Err(e) = self
                .tenant_cycle(&tenant, blocks, now, listed_at, &mut report)
                .await
            {
                report.errors.push(format!("tenant {tenant}: {e}"));
            }
            for e in &report.errors[before..] {
                self.metrics.compaction_errors.inc();
                warn!(%tenant, error = %e, "compaction step failed");
            }
        }
        let changed = report.blocks_written
            + report.blocks_compacted
            + report.blocks_expired
            + report.blocks_deleted
            > 0;
        if let (true, Some(blocks)) = (changed, &self.blocks)
            && let Err(e) = blocks.poll().await
        {
            warn!(error = %e, "block list poll after compaction failed");
        }
        Ok(report)
    }

    async fn tenant_cycle(
        &self,
        tenant: &str,
        listing: TenantListing,
        now: SystemTime,
        listed_at: SystemTime,
        report: &mut CycleReport,
    ) -> Result<()> {
        let cache = std::mem::take(&mut *self.cache.lock());
        let loaded = TenantState::load(&self.store, &cache, tenant, listing).await;
        *self.cache.lock() = cache;
        let mut st = loaded?;
        let result = self.tenant_steps(&mut st, now, listed_at, report).await;
        self.cache.lock().update(&st);
        result
    }

    async fn tenant_steps(
        &self,
        st: &mut TenantState,
        now: SystemTime,
        listed_at: SystemTime,
        report: &mut CycleReport,
    ) -> Result<()> {
        for output in st.jobs() {
            self.recover(st, &output, now, report).await?;
        }
        let now_ns = system_ns(now);
        let expired: Vec<Uuid> =
            retention::expired(st.live.values(), self.cfg.block_retention.get(), now_ns)
                .iter()
                .map(|m| m.block_id)
                .collect();
        for id in expired {
            match st.mark(&self.store, &id, now).await {
                Ok(_) => {
                    report.blocks_expired += 1;
                    self.metrics.retention_marked.inc();
                }
                Err(e) => report
                    .errors
                    .push(format!("expire {}/{id}: {e}", st.tenant)),
            }
        }
        let readable: Vec<&str> = self
            .release
            .reads()
            .iter()
            .copied()
            .filter(|f| format_by_name(f, &self.settings).is_some())
            .collect();
        let limits = PlanLimits {
            window: self.cfg.compaction_window.get(),
            max_inputs: self.cfg.max_compaction_objects as usize,
            max_bytes: self.cfg.max_block_bytes.as_u64(),
            write_format: self.format.name(),
            readable: &readable,
            rewrite_old_formats: self.cfg.rewrite_old_formats,
            closed_before_ns: if self.cfg.merge_open_windows {
                u64::MAX
            } else {
                now_ns.saturating_sub(u64::try_from(self.settle.as_nanos()).unwrap_or(u64::MAX))
            },
            row_group_bytes: self.settings.row_group_bytes as u64,
            max_read_bytes: plan::JOB_READ_BUDGET,
        };
        let live: Vec<_> = st.live.values().cloned().collect();
        for job in plan::plan(&live, &limits) {
            if let Err(e) = self.run_job(st, &job, now, report).await {
                let ids: Vec<String> = job.inputs.iter().map(|m| m.block_id.to_string()).collect();
                report
                    .errors
                    .push(format!("compact {}/[{}]: {e}", st.tenant, ids.join(", ")));
            }
        }
        st.index(listed_at).write(&self.store, &st.tenant).await?;
        let doomed: Vec<Uuid> = retention::deletable(
            st.compacted.values(),
            self.cfg.compacted_block_retention.get(),
            now_ns,
        )
        .iter()
        .map(|c| c.meta.block_id)
        .collect();
        let mut deleted = 0;
        for id in doomed {
            let objects = st.objects(&id);
            // On failure the block stays in `compacted`: its mark is deleted last, so the
            // bucket still shows it compacted and the next cycle deletes the rest.
            match retention::delete_block(&self.store, &objects).await {
                Ok(()) => {
                    st.compacted.remove(&id);
                    st.listing.remove(&id);
                    deleted += 1;
                    report.blocks_deleted += 1;
                    self.metrics.retention_deleted.inc();
                }
                Err(e) => report
                    .errors
                    .push(format!("delete {}/{id}: {e}", st.tenant)),
            }
        }
        if deleted > 0 {
            st.index(listed_at).write(&self.store, &st.tenant).await?;
        }
        Ok(())
    }

    /// Finish (or clean up after) a job an earlier cycle started.
    async fn recover(
        &self,
        st: &mut TenantState,
        output: &Uuid,
        now: SystemTime,
        report: &mut CycleReport,
    ) -> Result<()> {
        let objects = st.objects(output);
        let Some(bytes) = self
            .store
            .get_opt(&st.key(output, state::JOB_OBJECT))
            .await?
        else {
            return Ok(());
        };
        // An unreadable record still says "this directory is a compaction output"; without
        // its input list the inputs stay live and a later job merges them again.
        let record = match JobRecord::from_json(&st.tenant, output, &bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(tenant = %st.tenant, block = %output, error = %e, "unreadable job record");
                None
            }
        };
        if !objects.has_meta() && !objects.is_compacted() {
            // The output never became visible: remove what was written of it.
            let mut keys = objects.keys.clone();
            keys.retain(|k| !k.ends_with(state::JOB_OBJECT));
            for k in keys {
                self.store.delete(&k).await?;
            }
            st.delete_job(&self.store, output).await?;
            st.listing.remove(output);
            report.partial_outputs_removed += 1;
            info!(tenant = %st.tenant, block = %output, "removed a partial compaction output");
            return Ok(());
        }
        if let Some(record) = record {
            if let Some(meta) = st
                .live
                .get(output)
                .filter(|m| m.compaction_level != record.compaction_level)
            {
                let mut meta = meta.clone();
                meta.compaction_level = record.compaction_level;
                st.rewrite_meta(&self.store, meta).await?;
            }
            for input in &record.inputs {
                if st.mark(&self.store, input, now).await? {
                    report.blocks_compacted += 1;
                    self.metrics.compaction_blocks_compacted.inc();
                }
            }
        }
        st.delete_job(&self.store, output).await?;
        report.jobs_recovered += 1;
        info!(tenant = %st.tenant, block = %output, "finished an interrupted compaction");
        Ok(())
    }

    /// Run one job: merge (reads only), job record, output, marks, job record deleted.
    async fn run_job(
        &self,
        st: &mut TenantState,
        job: &Job,
        now: SystemTime,
        report: &mut CycleReport,
    ) -> Result<()> {
        let output = Uuid::new_v4();
        let level = job.output_level();
        let mut built = merge::merge_into(
            &self.store,
            &self.settings,
            &job.inputs,
            self.format.as_ref(),
            &st.tenant,
            output,
            &self.spool,
        )
        .await?;
        built.meta.compaction_level = level;
        let record = JobRecord {
            inputs: job.inputs.iter().map(|m| m.block_id).collect(),
            compaction_level: level,
            created_at: rfc3339(system_ns(now)),
        };
        st.write_job(&self.store, &output, &record).await?;
        let meta = crate::block::build::upload(&self.store, built).await?;
        st.wrote(&output, crate::block::meta::META_OBJECT);
        report.blocks_written += 1;
        self.metrics.compaction_blocks_written.inc();
        self.metrics
            .compaction_objects_written
            .inc_by(meta.total_objects);
        info!(
            tenant = %st.tenant,
            block = %output,
            kind = ?job.kind,
            inputs = job.inputs.len(),
            traces = meta.total_objects,
            bytes = meta.size,
            level,
            "compacted block written"
        );
        st.live.insert(output, meta);
        for input in &record.inputs {
            if st.mark(&self.store, input, now).await? {
                report.blocks_compacted += 1;
                self.metrics.compaction_blocks_compacted.inc();
            }
        }
        st.delete_job(&self.store, &output).await?;
        if job.kind == JobKind::Rewrite {
            debug!(tenant = %st.tenant, block = %output, "old-format block rewritten");
        }
        Ok(())
    }
}
