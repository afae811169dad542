//! CPU-heavy work (converting and chunking large pages) off the async threads, and at most one
//! core short of all of them at once: the async threads always keep a core for the requests
//! that must answer within milliseconds (a webhook's acknowledgement, a search).

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// Work of this many bytes of input or more goes to [`spawn`]; below it the hop costs more
/// than it spares.
pub const LARGE: usize = 32 * 1024;

/// One permit per core but one (at least one).
fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// Runs `work` on tokio's blocking pool once a core is free for it, and returns its result; a
/// panic in `work` resumes here.
pub async fn spawn<T, F>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    // The semaphore is never closed, so a permit always comes.
    let _permit = permits().acquire().await.ok();
    match tokio::task::spawn_blocking(work).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
