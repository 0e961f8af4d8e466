//! Running CPU-heavy work without stalling the async runtime.

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
