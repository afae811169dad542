//! CPU-heavy work (converting and chunking large pages) off the async threads, and at most one
//! core short of all of them at once: the async threads always keep a core for the requests
//! that must answer within milliseconds (a webhook's acknowledgement, a search).

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

/// Work on this many bytes of input or more goes to the blocking pool; below it the hop costs
/// more than it spares.
pub(crate) const LARGE: usize = 32 * 1024;

/// One permit per core but one (at least one).
fn permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
            Arc::new(Semaphore::new(cores.saturating_sub(1).max(1)))
        })
        .clone()
}

/// Runs `work` over `size` bytes of input and returns its result: at once when the input is
/// small, else on tokio's blocking pool once a core is free for it (or here, when the runtime
/// is shutting down). A panic in `work` resumes here.
pub async fn run<T, F>(size: usize, work: F) -> T
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
{
    if size < LARGE {
        return work();
    }
    let work = Arc::new(work);
    let job = work.clone();
    // The semaphore is never closed, so a permit always comes; it is held until the work
    // ends, even when the caller stops waiting for it.
    let permit = permits().acquire_owned().await.ok();
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    });
    match task.await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => work(),
    }
}
