//! Bounded retries with exponential backoff and jitter, honouring a server's `Retry-After`.
//!
//! Every remote call (Confluence, embedding providers, OpenSearch) retries the same way: the
//! operation says whether a failure is worth another attempt, and [`retry`] waits and tries
//! again until the attempts run out.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tracing::warn;

/// How often and how patiently a remote call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first backoff; it doubles per attempt.
    pub initial_backoff: Duration,
    /// The longest wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
pub enum Attempt<E> {
    /// A transient problem: try again, after `retry_after` when the server asked for a wait.
    Retry {
        /// What went wrong, for logs and the final error.
        problem: String,
        /// The wait the server asked for.
        retry_after: Option<Duration>,
    },
    /// A final answer: retrying cannot help.
    Fatal(E),
}

/// Why a retried call failed for good.
#[derive(Debug)]
pub enum Retried<E> {
    /// An attempt failed in a way retrying cannot help.
    Fatal(E),
    /// Every attempt failed with a transient problem.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last problem seen.
        last: String,
        /// The wait the server last asked for (`Retry-After`), for the caller's own retry.
        retry_after: Option<Duration>,
    },
}

/// Runs `op` until it succeeds, fails fatally, or `policy.max_attempts` attempts have failed.
///
/// Waits between attempts double from [`RetryPolicy::initial_backoff`] with up to 25% jitter;
/// a server's `Retry-After` replaces the computed wait. Every wait is capped at
/// [`RetryPolicy::max_backoff`]. Attempts answered with a `Retry-After` do not count toward
/// [`RetryPolicy::max_attempts`] until their waits add up to `max_attempts` × `max_backoff`.
/// Each retry is logged with `what`.
///
/// # Errors
/// [`Retried::Fatal`] with the operation's own error, or [`Retried::Exhausted`].
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, Retried<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let mut backoff = policy.initial_backoff;
    let mut attempt = 0;
    let mut failures = 0;
    // Waits a server asks for are honoured without using up attempts, up to as much waiting as
    // the attempts themselves allow: a rate limit that lasts is waited out, not given up on.
    let mut asked_budget = policy.max_backoff * policy.max_attempts.max(1);
    loop {
        attempt += 1;
        let (problem, asked) = match op(attempt).await {
            Ok(value) => return Ok(value),
            Err(Attempt::Fatal(e)) => return Err(Retried::Fatal(e)),
            Err(Attempt::Retry {
                problem,
                retry_after,
            }) => (problem, retry_after),
        };
        let wait = asked
            .unwrap_or_else(|| jitter(backoff, attempt))
            .min(policy.max_backoff);
        match asked_budget.checked_sub(wait) {
            Some(left) if asked.is_some() => asked_budget = left,
            _ => failures += 1,
        }
        if failures >= policy.max_attempts.max(1) {
            return Err(Retried::Exhausted {
                attempts: attempt,
                last: problem,
                retry_after: asked,
            });
        }
        warn!(what, attempt, wait_ms = wait.as_millis() as u64, problem = %problem, "request failed; retrying");
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

/// Reads a `Retry-After` value: seconds, or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Adds 0–25% to `base`, without a random-number dependency.
fn jitter(base: Duration, attempt: u32) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = (nanos ^ attempt.wrapping_mul(0x9E37_79B9)) % 250;
    base + base * spread / 1000
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn reads_retry_after_as_seconds_or_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let calls = AtomicU32::new(0);
        let out: Result<u32, Retried<()>> = retry(&quick(5), "test", |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt < 3 {
                    Err(Attempt::Retry {
                        problem: "503".into(),
                        retry_after: Some(Duration::from_millis(1)),
                    })
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(out.ok(), Some(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn waits_a_server_asks_for_do_not_use_up_attempts_within_the_budget() {
        // 3 attempts, 5 ms at most between them: a server asking for waits is given 3 × 5 ms
        // of waiting before attempts count, so 3 excused waits come on top of the 3 attempts.
        let calls = AtomicU32::new(0);
        let out: Result<(), Retried<()>> = retry(&quick(3), "test", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(Attempt::Retry {
                    problem: "HTTP 429".into(),
                    retry_after: Some(Duration::from_millis(5)),
                })
            }
        })
        .await;
        assert!(
            matches!(out, Err(Retried::Exhausted { attempts: 6, .. })),
            "{out:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        // A storm shorter than the budget is waited out.
        let calls = AtomicU32::new(0);
        let out: Result<u32, Retried<()>> = retry(&quick(3), "test", |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt <= 4 {
                    Err(Attempt::Retry {
                        problem: "HTTP 429".into(),
                        retry_after: Some(Duration::from_millis(2)),
                    })
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(out.ok(), Some(5), "4 refusals with 3 attempts allowed");
    }

    #[tokio::test]
    async fn stops_at_fatal_and_at_the_attempt_bound() {
        let calls = AtomicU32::new(0);
        let fatal: Result<(), Retried<&str>> = retry(&quick(5), "test", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Attempt::Fatal("401")) }
        })
        .await;
        assert!(matches!(fatal, Err(Retried::Fatal("401"))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let exhausted: Result<(), Retried<()>> = retry(&quick(4), "test", |_| async {
            Err(Attempt::Retry {
                problem: "reset".into(),
                retry_after: None,
            })
        })
        .await;
        match exhausted {
            Err(Retried::Exhausted { attempts, last, .. }) => {
                assert_eq!((attempts, last.as_str()), (4, "reset"));
            }
            other => panic!("expected exhaustion, got {other:?}"),
        }
    }
}
