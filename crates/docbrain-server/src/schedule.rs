//! `INGEST_SCHEDULE`: the full crawl inside the server, for users without a cron runner.

use std::sync::Arc;
use std::time::Duration;

use docbrain_core::{Pipeline, Scope};
use tracing::{error, info};

use crate::{Metrics, ServerError};

/// Reads an interval such as `30m`, `6h`, `1d` or `90s`.
///
/// # Errors
/// [`ServerError::Config`] naming `INGEST_SCHEDULE` for anything else (cron expressions
/// included: use the Helm chart's CronJob for those).
pub fn parse_interval(text: &str) -> Result<Duration, ServerError> {
    let text = text.trim();
    let bad = || {
        ServerError::Config(format!(
            "INGEST_SCHEDULE={text:?} is not an interval: use a number with s, m, h or d, e.g. 6h \
             (for cron expressions use a cron runner or the Helm chart's CronJob)"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    if secs < 60 {
        return Err(ServerError::Config(format!(
            "INGEST_SCHEDULE={text} is shorter than a minute: a full crawl every few seconds would hammer Confluence"
        )));
    }
    Ok(Duration::from_secs(secs))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_intervals_and_refuses_cron() {
        assert_eq!(parse_interval("6h").unwrap(), Duration::from_secs(21_600));
        assert_eq!(parse_interval("30m").unwrap(), Duration::from_secs(1_800));
        assert_eq!(parse_interval("1d").unwrap(), Duration::from_secs(86_400));
        for bad in ["0 */6 * * *", "6", "h", "10s", "5 hours"] {
            let err = parse_interval(bad).unwrap_err().to_string();
            assert!(err.contains("INGEST_SCHEDULE"), "{err}");
        }
    }
}
