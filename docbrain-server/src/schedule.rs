//! `INGEST_SCHEDULE`: the full crawl inside the server, for users without a cron runner.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use docbrain_core::{Pipeline, Scope};
use tracing::{error, info, warn};

use crate::Metrics;

/// Runs a full crawl of `scope` every `every`, one at a time (a crawl that overruns delays the
/// next; one running elsewhere on `data_dir`, such as a cron `docbrain ingest`, skips a turn).
/// The first runs at once when the index holds no page of this source. Crawl and webhook
/// writes race safely: the store never rolls a page back.
pub async fn run_schedule(
    pipeline: Pipeline,
    scope: Scope,
    every: Duration,
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
) {
    let source = pipeline.fetcher().source_id();
    let mut empty = true;
    let read = pipeline
        .store()
        .each_state(&mut |p| {
            empty = p.source != source;
            empty
        })
        .await;
    let empty = match read {
        Ok(()) => empty,
        Err(e) => {
            warn!(error = %e, "cannot read the index to see whether it holds this source's pages; the first crawl waits for the schedule");
            false
        }
    };
    let first = if empty {
        info!(every_secs = every.as_secs(), "Scheduled ingest enabled; the index holds no page of this source yet, so the first crawl starts now");
        tokio::time::Instant::now()
    } else {
        info!(every_secs = every.as_secs(), "Scheduled ingest enabled");
        tokio::time::Instant::now() + every
    };
    let mut ticker = tokio::time::interval_at(first, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let _crawl = match crate::lockfile::crawl_lock(&data_dir) {
            Ok(lock) => lock,
            Err(e) => {
                metrics.crawl("skipped");
                warn!("Scheduled ingest skipped: {e}");
                continue;
            }
        };
        info!("Scheduled ingest starting");
        match pipeline.sync(&scope).await {
            Ok(report) => {
                metrics.first_crawl_done();
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
