//! CPU-heavy work (converting and chunking large pages) off the async threads, on threads of
//! its own: one per core but one (at least one), so the async threads always keep a core for
//! the requests that must answer within milliseconds (a webhook's acknowledgement, a search).
//!
//! The work gives its core to a waiting thread every 500 µs ([`give_way`]), so a request's
//! thread that wakes on that core runs at once rather than after the scheduler's time slice
//! (milliseconds). The threads keep the normal priority: a lower one would let a busy host
//! starve them, and a request could wait on a lock one of them holds.

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Result as Caught;
use std::time::{Duration, Instant};

use tracing::warn;

/// Work on this many bytes of input or more goes to the pool; below it the hop costs more than
/// it spares.
pub(crate) const LARGE: usize = 32 * 1024;

/// How long pooled work runs before it gives way.
const TURN: Duration = Duration::from_micros(500);

/// [`give_way`] reads the clock once in this many calls (a call costs a few nanoseconds then).
const CALLS_PER_CHECK: u32 = 16;

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// On a pool thread: when its work began or last gave way, and the calls since the clock
    /// was read. `None` elsewhere.
    static SINCE: Cell<Option<(Instant, u32)>> = const { Cell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// Times this thread gave way.
    static GAVE_WAY: Cell<u64> = const { Cell::new(0) };
}

/// Runs `work` over `size` bytes of input and returns its result: at once when the input is
/// small, else on the pool once one of its threads is free. A panic in `work` resumes here;
/// work whose caller stopped waiting before a thread took it is skipped.
pub async fn run_cpu_bound<T, F>(size: usize, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if size < LARGE {
        return work();
    }
    let Some(pool) = pool() else {
        return work();
    };
    let (done, result) = tokio::sync::oneshot::channel::<Caught<T>>();
    let job: Job = Box::new(move || {
        if !done.is_closed() {
            // The caller may stop waiting meanwhile: then nobody wants the result.
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        }
    });
    if let Err(refused) = pool.send(job) {
        // No thread of the pool is left to take it (never, short of the process ending).
        (refused.0)();
    }
    match result.await {
        Ok(Ok(out)) => out,
        Ok(Err(panic)) => resume_unwind(panic),
        // Every job sends before it ends, and a job is never dropped unrun.
        Err(_) => panic!("a docbrain-cpu thread dropped its work"),
    }
}

/// For loops of work [`run_cpu_bound`] may pool: on a pool thread, yields its core to a thread
/// waiting for it once the work has run for 500 µs since it began or last gave way; elsewhere
/// (and between those times) it does nothing. Call it often: every few microseconds of work.
pub fn give_way() {
    turn(CALLS_PER_CHECK);
}

/// [`give_way`] for loops whose every turn takes microseconds (a token count): reads the clock
/// on every call.
pub(crate) fn give_way_now() {
    turn(1);
}

/// Gives way when the work's turn is over, reading the clock once in `every` calls.
fn turn(every: u32) {
    SINCE.with(|since| {
        let Some((at, calls)) = since.get() else {
            return;
        };
        if calls + 1 < every {
            since.set(Some((at, calls + 1)));
        } else if at.elapsed() < TURN {
            since.set(Some((at, 0)));
        } else {
            std::thread::yield_now();
            #[cfg(test)]
            GAVE_WAY.with(|n| n.set(n.get() + 1));
            since.set(Some((Instant::now(), 0)));
        }
    });
}

/// The pool's queue, its threads started on first use; `None` when no thread could be started
/// (the work then runs where it is asked for).
fn pool() -> Option<&'static Sender<Job>> {
    static POOL: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let (queue, jobs) = channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let started = (0..cores.saturating_sub(1).max(1))
            .filter(|n| {
                let jobs = jobs.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("docbrain-cpu-{n}"))
                    .spawn(move || work_through(&jobs));
                if let Err(e) = &thread {
                    warn!(error = %e, "cannot start a thread for converting and chunking large pages; fewer run at once");
                }
                thread.is_ok()
            })
            .count();
        (started > 0).then_some(queue)
    })
    .as_ref()
}

/// A pool thread: takes jobs one at a time until the queue is gone.
fn work_through(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // Jobs catch their own panics, so the lock is never poisoned.
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        SINCE.with(|since| since.set(Some((Instant::now(), 0))));
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn small_work_runs_in_place_and_large_work_on_the_pool() {
        let caller = thread_name();
        assert_eq!(run_cpu_bound(LARGE - 1, thread_name).await, caller);
        let pooled = run_cpu_bound(LARGE, thread_name).await;
        assert!(pooled.starts_with("docbrain-cpu-"), "{pooled}");
    }

    #[tokio::test]
    async fn a_panic_in_pooled_work_resumes_in_the_caller_and_the_pool_goes_on() {
        let caught = tokio::spawn(run_cpu_bound(LARGE, || -> u8 { panic!("bad page") })).await;
        let panic = caught.unwrap_err().into_panic();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"bad page"));
        // The pool still takes work.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for _ in 0..2 * cores {
            assert_eq!(run_cpu_bound(LARGE, || 7).await, 7);
        }
    }

    #[tokio::test]
    async fn pooled_work_gives_way_every_turn_and_other_work_never() {
        let spin = || {
            let (start, before) = (Instant::now(), GAVE_WAY.with(Cell::get));
            while start.elapsed() < Duration::from_millis(20) {
                give_way();
            }
            GAVE_WAY.with(Cell::get) - before
        };
        // 20 ms of work in turns of 500 µs: at most 40 yields, fewer when a yield hands the
        // core to another thread for a while.
        let pooled = run_cpu_bound(LARGE, spin).await;
        assert!((1..=40).contains(&pooled), "{pooled} yields");
        assert_eq!(spin(), 0, "off the pool, giving way does nothing");
    }
}
