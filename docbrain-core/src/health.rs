//! How calls to a remote part (the source, the index store, the embedder) have gone: counted as
//! they happen, read as a [`CallHealth`] snapshot for metrics, readiness and alerts.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::text::now_ms;

/// A snapshot of a remote part's calls: every failed attempt counts, retried or not, so an
/// outage shows at once rather than after the retries run out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallHealth {
    /// Calls made (each attempt).
    pub calls: u64,
    /// Attempts that failed: transport errors, timeouts, refusals and error answers.
    pub failed_calls: u64,
    /// When a call last succeeded, in milliseconds since the Unix epoch.
    pub last_success_ms: Option<u64>,
    /// When a call last failed, in milliseconds since the Unix epoch.
    pub last_failure_ms: Option<u64>,
    /// When the part was set up, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// The status of the last answer when it refused the credentials (401, 403) and no call
    /// has succeeded since.
    pub refused: Option<u16>,
}

impl CallHealth {
    /// Seconds since the last successful call, or since the part was set up if none has
    /// succeeded yet: the figure to alert on.
    pub fn seconds_since_success(&self, now_ms: u64) -> f64 {
        now_ms.saturating_sub(self.last_success_ms.unwrap_or(self.since_ms)) as f64 / 1000.0
    }

    /// Whether the most recent call failed (the part is failing now).
    pub fn failing(&self) -> bool {
        self.last_failure_ms > self.last_success_ms
    }
}

/// Counts a remote part's calls as they happen (shared by its clones, lock-free).
#[derive(Debug)]
pub struct CallCounter {
    calls: AtomicU64,
    failed_calls: AtomicU64,
    last_success_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    refused: AtomicU64,
    since_ms: u64,
}

impl Default for CallCounter {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            last_success_ms: AtomicU64::new(0),
            last_failure_ms: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            since_ms: now_ms(),
        }
    }
}

impl CallCounter {
    /// Counts one attempt: `ok` when the part answered as a working one does.
    pub fn count(&self, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // The clock's millisecond may repeat; a later event must still read as later.
        let now = now_ms();
        if ok {
            self.refused.store(0, Ordering::Relaxed);
            let last = self.last_failure_ms.load(Ordering::Relaxed);
            self.last_success_ms
                .store(now.max(last + 1), Ordering::Relaxed);
        } else {
            self.failed_calls.fetch_add(1, Ordering::Relaxed);
            let last = self.last_success_ms.load(Ordering::Relaxed);
            self.last_failure_ms
                .store(now.max(last + 1), Ordering::Relaxed);
        }
    }

    /// Counts one attempt the part refused for its credentials, with the status it answered.
    pub fn refused(&self, status: u16) {
        self.count(false);
        self.refused.store(u64::from(status), Ordering::Relaxed);
    }

    /// How calls have gone so far.
    pub fn snapshot(&self) -> CallHealth {
        let at = |v: &AtomicU64| Some(v.load(Ordering::Relaxed)).filter(|&ms| ms > 0);
        CallHealth {
            calls: self.calls.load(Ordering::Relaxed),
            failed_calls: self.failed_calls.load(Ordering::Relaxed),
            last_success_ms: at(&self.last_success_ms),
            last_failure_ms: at(&self.last_failure_ms),
            since_ms: self.since_ms,
            refused: u16::try_from(self.refused.load(Ordering::Relaxed))
                .ok()
                .filter(|&s| s > 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_outcome_says_whether_a_part_is_failing() {
        let counter = CallCounter::default();
        assert!(!counter.snapshot().failing());
        counter.count(false);
        let failed = counter.snapshot();
        assert!(failed.failing());
        assert_eq!((failed.calls, failed.failed_calls), (1, 1));
        counter.count(true);
        let recovered = counter.snapshot();
        assert!(!recovered.failing());
        assert_eq!((recovered.calls, recovered.failed_calls), (2, 1));
        counter.count(false);
        assert!(counter.snapshot().failing());
        counter.refused(401);
        assert_eq!(counter.snapshot().refused, Some(401));
        counter.count(true);
        assert_eq!(counter.snapshot().refused, None);
    }
}
