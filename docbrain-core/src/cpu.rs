//! CPU-heavy work (converting and chunking large pages) off the async threads, on threads of
//! its own: one per core but one (at least one), so the async threads always keep a core for
//! the requests that must answer within milliseconds (a webhook's acknowledgement, a search).
//!
//! With the `idle-priority` feature (the server turns it on), on Linux these threads run at the
//! idle priority (`SCHED_IDLE`): a request's thread that wakes takes their core at once rather
//! than waiting out their time slice. The work itself must hold no lock a request needs (it
//! would wait on them); they share only the hand-offs (the queue, the answer's wake-up), each
//! held for an instant.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Result as Caught;

use tracing::warn;

/// Work on this many bytes of input or more goes to the pool; below it the hop costs more than
/// it spares.
pub(crate) const LARGE: usize = 32 * 1024;

type Job = Box<dyn FnOnce() + Send>;

/// Runs `work` over `size` bytes of input and returns its result: at once when the input is
/// small, else on the pool once one of its threads is free. A panic in `work` resumes here;
/// when the caller stops waiting, the work still runs to its end.
pub async fn run<T, F>(size: usize, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(pool) = pool().filter(|_| size >= LARGE) else {
        return work();
    };
    let (done, result) = tokio::sync::oneshot::channel::<Caught<T>>();
    let job: Job = Box::new(move || {
        // The caller may have stopped waiting: then nobody wants the result.
        let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
    });
    if let Err(refused) = pool.send(job) {
        // No thread of the pool is left to take it (never, short of the process ending).
        (refused.0)();
    }
    match result.await {
        Ok(Ok(out)) => out,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => resume_unwind(Box::new("a docbrain-cpu thread dropped its work")),
    }
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
    lower_priority();
    loop {
        // Jobs catch their own panics, so the lock is never poisoned.
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Puts the calling thread at the idle priority (see the module's comment).
#[cfg(all(feature = "idle-priority", target_os = "linux"))]
fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
        warn!(error = %e, "cannot run a converting and chunking thread at the idle priority; requests may wait on it while large pages are read");
    }
}

#[cfg(not(all(feature = "idle-priority", target_os = "linux")))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn small_work_runs_in_place_and_large_work_on_the_pool() {
        let caller = thread_name();
        assert_eq!(run(LARGE - 1, thread_name).await, caller);
        let pooled = run(LARGE, thread_name).await;
        assert!(pooled.starts_with("docbrain-cpu-"), "{pooled}");
    }

    #[tokio::test]
    async fn a_panic_in_pooled_work_resumes_in_the_caller_and_the_pool_goes_on() {
        let caught = tokio::spawn(run(LARGE, || -> u8 { panic!("bad page") })).await;
        let panic = caught.unwrap_err().into_panic();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"bad page"));
        // Every thread of the pool still takes work.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for _ in 0..2 * cores {
            assert_eq!(run(LARGE, || 7).await, 7);
        }
    }

    #[cfg(all(feature = "idle-priority", target_os = "linux"))]
    #[tokio::test]
    async fn pooled_work_runs_at_the_idle_priority() {
        // Field 41 of /proc/thread-self/stat is the policy: 5 is SCHED_IDLE (`ps -L -o cls`
        // shows IDL).
        let policy = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            after_name.split(' ').nth(38).unwrap().to_owned()
        };
        assert_eq!(policy(), "0", "the caller's thread keeps the normal policy");
        assert_eq!(run(LARGE, policy).await, "5");
    }
}
