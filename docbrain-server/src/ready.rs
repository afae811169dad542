//! `/readyz`'s view of the index store and a remote embedder, answered within a second
//! whatever they do.
//!
//! A part whose most recent call failed is unready. Otherwise (and at most once a second, so
//! probes do not hammer it) the store is read once, bounded by [`PROBE_TIMEOUT`]; a part that
//! has been failing for a while is probed again the same way, so readiness returns when it
//! recovers even with no traffic. Messages name the part, never its address.

use std::time::{Duration, Instant};

use docbrain_core::{CallHealth, Pipeline};
use tokio::sync::Mutex;

/// How long one probe may take.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// How long all probes together may take, so `/readyz` answers within a second.
const ALL_PROBES: Duration = Duration::from_millis(900);
/// How long a probe's result is reused.
const FRESH: Duration = Duration::from_secs(1);

/// The last readiness verdict on the store and the embedder, and when it was reached.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// `Ok` when the store (and a remote embedder) can be used, else why not.
    pub(crate) async fn check(&self, pipeline: &Pipeline) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, verdict)) = &*last {
            if at.elapsed() < FRESH {
                return verdict.clone();
            }
        }
        let verdict = tokio::time::timeout(ALL_PROBES, probe(pipeline))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the readiness probes did not finish within {} ms",
                    ALL_PROBES.as_millis()
                ))
            });
        *last = Some((Instant::now(), verdict.clone()));
        verdict
    }
}

/// Probes the store, then a remote embedder that is failing.
async fn probe(pipeline: &Pipeline) -> Result<(), String> {
    let store = pipeline.store();
    let kind = store.kind();
    if store.health().is_some_and(|h| failing_recently(&h)) {
        return Err(format!(
            "the index store ({kind}) is failing: its last call failed (the server log says why)"
        ));
    }
    match tokio::time::timeout(PROBE_TIMEOUT, store.stats()).await {
        Err(_) => {
            return Err(format!(
                "the index store ({kind}) did not answer within {} ms",
                PROBE_TIMEOUT.as_millis()
            ))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the index store cannot be read");
            return Err(format!(
                "the index store ({kind}) cannot be read (the server log says why)"
            ));
        }
        Ok(Ok(_)) => {}
    }
    let embedder = pipeline.embedder();
    if let Some(health) = embedder.health().filter(CallHealth::failing) {
        // Failing: try it once more, so a recovered service is seen without traffic.
        let retry = !failing_recently(&health);
        let recovered = retry
            && matches!(
                tokio::time::timeout(PROBE_TIMEOUT, embedder.embed(&["readiness probe".into()]))
                    .await,
                Ok(Ok(_))
            );
        if !recovered {
            return Err(
                "the embedding service is failing: its last call failed (the server log says why)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Whether the part's last call failed less than a second ago (a fresh failure is taken as
/// is; an older one is probed again).
fn failing_recently(health: &CallHealth) -> bool {
    health.failing()
        && health
            .last_failure_ms
            .is_some_and(|at| docbrain_core::now_ms().saturating_sub(at) < FRESH.as_millis() as u64)
}
