//! `INGEST_SCHEDULE`: the full crawl inside the server, for users without a cron runner.

use std::sync::Arc;
use std::time::Duration;

use docbrain_core::{Pipeline, Scope};
use tracing::{error, info};

use crate::Metrics;

/// Runs a full crawl of `scope` every `every`, one at a time (a crawl that overruns delays the
/// next). Crawl and webhook writes race safely: the store never rolls a page back.
pub async fn run_schedule(
    pipeline: Pipeline,
    scope: Scope,
    every: Duration,
    metrics: Arc<Metrics>,
) {
    info!(every_secs = every.as_secs(), "Scheduled ingest enabled");
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        info!("Scheduled ingest starting");
        match pipeline.sync(&scope).await {
            Ok(report) => {
                metrics.crawl(if report.is_clean() {
                    "clean"
                } else {
                    "incomplete"
                });
                let stats = pipeline.store().stats().await.unwrap_or_default();
                info!(
                    updated = report.pages_updated,
                    deleted = report.pages_deleted,
                    failed = report.pages_failed,
                    "Ingestion complete: {} pages, {} chunks",
                    stats.pages,
                    stats.chunks
                );
            }
            Err(e) => {
                metrics.crawl("failed");
                error!(error = %e, "Scheduled ingest failed: {e}");
            }
        }
    }
}
