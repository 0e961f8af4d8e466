//! Running CPU-heavy work without stalling the async runtime: user-facing work (a query's
//! decoding) on the runtime's own workers through [`run_heavy`], background work (block
//! encoding, compaction) on long-lived threads ([`BackgroundThreads`]), compaction's at a
//! lower priority.

use std::sync::{Arc, OnceLock};

use tracing::warn;

use crate::error::{Error, Result};

/// Run `f`, telling a multi-threaded tokio runtime that this worker blocks so other tasks
/// move to other workers. On a current-thread runtime (or none) it simply runs `f`.
pub fn run_heavy<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Nice value of the compaction thread: above the default 0, so when the cores are busy the
/// scheduler serves ingest, queries and block writes first. Compaction can wait (a window
/// merged later only means more blocks to read meanwhile); block writes cannot: they free
/// the WAL and the index of cut traces, so they run at normal priority (at nice 10, with
/// one other busy process on a 2-core machine, they fell behind and memory grew, which
/// `loadgen/tests/soak_rss.rs` caught).
pub const BACKGROUND_NICE: i32 = 10;

/// Set the calling thread's nice value to `nice` (only upwards: lowering it needs a
/// privilege). On Linux the nice value is per thread; elsewhere this does nothing. A failure
/// is logged, not fatal: the thread still works, only at normal priority.
pub fn set_this_thread_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
            tracing::warn!(error = %e, nice, "cannot lower a background thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

type Job = Box<dyn FnOnce() + Send>;

/// Long-lived threads that run jobs handed over from async code, at a nice value of their
/// own.
/// Work that allocates and frees a lot reuses its memory on threads that live on, where
/// short-lived pool threads would each keep what they freed. Thread names start with
/// `rb-worker-` like the runtime's workers, so an embedded backend's CPU figures include
/// them.
pub struct BackgroundThreads {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl BackgroundThreads {
    /// Start `threads` threads named `rb-worker-<name><i>` at nice value `nice` (0: the
    /// process's own priority).
    pub fn start(name: &str, threads: usize, nice: i32) -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rb-worker-{name}{i}"))
                .spawn(move || {
                    if nice > 0 {
                        set_this_thread_nice(nice);
                    }
                    loop {
                        let job = rx.lock().recv();
                        match job {
                            // A job that panics drops its result sender (its caller gets
                            // an error); the thread lives on for the next job.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                warn!(error = %e, thread = name, "cannot start a background thread");
            }
        }
        BackgroundThreads { jobs }
    }

    /// Run `f` on one of the threads and wait for its result (on the blocking pool when
    /// the threads are gone).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.send(job) {
            Ok(()) => rx
                .await
                .map_err(|_| Error::Internal("a background job panicked".into())),
            Err(std::sync::mpsc::SendError(job)) => {
                tokio::task::spawn_blocking(job)
                    .await
                    .map_err(|e| Error::Internal(format!("background task: {e}")))?;
                rx.await
                    .map_err(|_| Error::Internal("a background task stopped".into()))
            }
        }
    }
}

/// The compactor's thread, at [`BACKGROUND_NICE`]: merges decode, combine and encode here,
/// one step at a time, shared by every compactor of the process (one per backend; tests
/// run several).
pub fn compaction_threads() -> &'static BackgroundThreads {
    static THREADS: OnceLock<BackgroundThreads> = OnceLock::new();
    THREADS.get_or_init(|| BackgroundThreads::start("compact", 1, BACKGROUND_NICE))
}
