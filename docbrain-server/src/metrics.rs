//! Prometheus metrics, kept in atomics and rendered as text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use docbrain_core::CallHealth;

/// How the remote parts' calls have gone, for [`Metrics::render`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PartsHealth {
    /// Confluence, when it is the source.
    pub source: Option<CallHealth>,
    /// The index store, by kind, when it counts its calls.
    pub store: Option<(&'static str, CallHealth)>,
    /// A remote embedding service.
    pub embedder: Option<CallHealth>,
    /// Pages whose reconcile failed and waits to be tried again.
    pub retrying: u64,
    /// How attachments have gone since start.
    pub attachments: docbrain_core::AttachmentCounts,
}

/// Writes one part's call counters: `<prefix>_calls_total`, `<prefix>_call_failures_total`
/// and `<prefix>_seconds_since_success`.
fn calls(out: &mut String, prefix: &str, what: &str, labels: &str, h: CallHealth, now_ms: u64) {
    let age = h.seconds_since_success(now_ms);
    let _ = writeln!(out, "# HELP {prefix}_calls_total Calls to {what}, each attempt.\n# TYPE {prefix}_calls_total counter\n{prefix}_calls_total{labels} {}", h.calls);
    let _ = writeln!(out, "# HELP {prefix}_call_failures_total Failed calls to {what} (transport errors, timeouts, refusals, error answers), retried or not.\n# TYPE {prefix}_call_failures_total counter\n{prefix}_call_failures_total{labels} {}", h.failed_calls);
    let _ = writeln!(out, "# HELP {prefix}_seconds_since_success Seconds since a call to {what} last succeeded, or since start if none has (alert when it grows).\n# TYPE {prefix}_seconds_since_success gauge\n{prefix}_seconds_since_success{labels} {age:.3}");
}

/// Upper bounds (seconds) of the reconcile latency histogram.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The server's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Deliveries by `(event, outcome)`: outcome is accepted, ignored, rejected.
    events: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Deliveries refused for a missing, malformed or wrong signature.
    pub signature_failures: AtomicU64,
    /// Pages waiting for or in reconciliation.
    pub queue_depth: AtomicU64,
    /// Reconciles by outcome.
    reconciles: Mutex<BTreeMap<&'static str, u64>>,
    /// Errors talking to Confluence.
    pub confluence_errors: AtomicU64,
    /// Errors writing to or reading from the index (embedding included).
    pub index_errors: AtomicU64,
    /// Journal entries given up on after too many attempts.
    pub parked: AtomicU64,
    /// Connections open now.
    pub open_connections: AtomicU64,
    /// Connections answered 503 because `SERVER_MAX_CONNECTIONS` were open.
    pub connections_refused: AtomicU64,
    /// Failed accepts (such as running out of file descriptors).
    pub accept_errors: AtomicU64,
    /// Full crawls run by the schedule, by outcome.
    crawls: Mutex<BTreeMap<&'static str, u64>>,
    /// The schedule's first crawl has not completed yet.
    first_crawl: std::sync::atomic::AtomicBool,
    histogram: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut m = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *m.entry(key).or_insert(0) += 1;
}

impl Metrics {
    /// Counts one delivery.
    pub fn event(&self, event: &str, outcome: &'static str) {
        // Event names come from the sender: keep the label set bounded.
        let event = if event.len() <= 48
            && event
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b':')
        {
            event.to_owned()
        } else {
            "other".to_owned()
        };
        bump(&self.events, (event, outcome));
    }

    /// Counts one reconcile and its latency.
    pub fn reconciled(&self, outcome: &'static str, took: Duration) {
        bump(&self.reconciles, outcome);
        let secs = took.as_secs_f64();
        let mut h = self
            .histogram
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts one scheduled crawl.
    pub fn crawl(&self, outcome: &'static str) {
        bump(&self.crawls, outcome);
    }

    /// Notes that a scheduled first crawl is due.
    pub fn first_crawl_pending(&self) {
        self.first_crawl.store(true, Ordering::Relaxed);
    }

    /// Notes that a scheduled crawl completed.
    pub fn first_crawl_done(&self) {
        self.first_crawl.store(false, Ordering::Relaxed);
    }

    /// Whether the schedule's first crawl has not completed yet.
    pub fn awaiting_first_crawl(&self) -> bool {
        self.first_crawl.load(Ordering::Relaxed)
    }

    /// Renders the Prometheus text exposition format, with the remote parts' call counters.
    pub fn render(&self, parts: &PartsHealth) -> String {
        let mut out = String::new();
        render_parts(&mut out, parts);
        self.render_webhook(&mut out);
        self.render_errors_and_http(&mut out);
        out
    }

    /// The webhook's deliveries, queue and reconciles.
    fn render_webhook(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP docbrain_webhook_events_total Webhook deliveries by event and outcome.\n# TYPE docbrain_webhook_events_total counter");
        for ((event, outcome), n) in self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "docbrain_webhook_events_total{{event=\"{event}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        counter(
            out,
            "docbrain_webhook_signature_failures_total",
            "Deliveries refused for a missing, malformed or wrong signature.",
            self.signature_failures.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP docbrain_webhook_queue_depth Pages waiting for or in reconciliation.\n# TYPE docbrain_webhook_queue_depth gauge\ndocbrain_webhook_queue_depth {}", self.queue_depth.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP docbrain_reconciles_total Page reconciles by outcome.\n# TYPE docbrain_reconciles_total counter");
        for (outcome, n) in self
            .reconciles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "docbrain_reconciles_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP docbrain_reconcile_seconds Time from picking a page up to its index write.\n# TYPE docbrain_reconcile_seconds histogram");
        {
            let h = self
                .histogram
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "docbrain_reconcile_seconds_bucket{{le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(out, "docbrain_reconcile_seconds_bucket{{le=\"+Inf\"}} {}\ndocbrain_reconcile_seconds_sum {}\ndocbrain_reconcile_seconds_count {}", h.count, h.sum, h.count);
        }
    }

    /// Failed calls, parked entries, connections and scheduled crawls.
    fn render_errors_and_http(&self, out: &mut String) {
        counter(
            out,
            "docbrain_confluence_errors_total",
            "Failed calls to Confluence (after the client's own retries).",
            self.confluence_errors.load(Ordering::Relaxed),
        );
        counter(
            out,
            "docbrain_index_errors_total",
            "Failed index or embedding operations.",
            self.index_errors.load(Ordering::Relaxed),
        );
        counter(
            out,
            "docbrain_webhook_parked_total",
            "Journal entries given up on after too many attempts.",
            self.parked.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP docbrain_http_open_connections Connections open now.\n# TYPE docbrain_http_open_connections gauge\ndocbrain_http_open_connections {}", self.open_connections.load(Ordering::Relaxed));
        counter(
            out,
            "docbrain_http_connections_refused_total",
            "Connections answered 503 because SERVER_MAX_CONNECTIONS were open.",
            self.connections_refused.load(Ordering::Relaxed),
        );
        counter(
            out,
            "docbrain_http_accept_errors_total",
            "Failed accepts (such as running out of file descriptors).",
            self.accept_errors.load(Ordering::Relaxed),
        );
        let _ = writeln!(out, "# HELP docbrain_scheduled_crawls_total Full crawls run by INGEST_SCHEDULE, by outcome.\n# TYPE docbrain_scheduled_crawls_total counter");
        for (outcome, n) in self
            .crawls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "docbrain_scheduled_crawls_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
    }
}

/// Writes a counter with its help line.
fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

/// The remote parts' calls, the attachments read and the pages waiting to be retried.
fn render_parts(out: &mut String, parts: &PartsHealth) {
    let now = docbrain_core::now_ms();
    if let Some(health) = parts.source {
        calls(out, "docbrain_confluence", "Confluence", "", health, now);
    }
    if let Some((kind, health)) = parts.store {
        let labels = format!("{{store=\"{kind}\"}}");
        calls(
            out,
            "docbrain_index_store",
            "the index store",
            &labels,
            health,
            now,
        );
    }
    if let Some(health) = parts.embedder {
        calls(
            out,
            "docbrain_embedder",
            "the embedding service",
            "",
            health,
            now,
        );
    }
    let a = parts.attachments;
    let _ = writeln!(out, "# HELP docbrain_attachments_total Attachments read since start, by outcome: indexed (new or a new version), skipped by reason (too_large: over ATTACHMENT_MAX_BYTES; unsupported_type: no text to read; docbrain status names each type), failed (tried again at the next crawl).\n# TYPE docbrain_attachments_total counter\ndocbrain_attachments_total{{outcome=\"indexed\"}} {}\ndocbrain_attachments_total{{outcome=\"skipped\",reason=\"too_large\"}} {}\ndocbrain_attachments_total{{outcome=\"skipped\",reason=\"unsupported_type\"}} {}\ndocbrain_attachments_total{{outcome=\"failed\"}} {}", a.indexed, a.skipped_too_large, a.skipped - a.skipped_too_large, a.failed);
    let _ = writeln!(out, "# HELP docbrain_webhook_retrying Pages whose reconcile failed and waits to be tried again (events waiting on Confluence, the store or the embedder).\n# TYPE docbrain_webhook_retrying gauge\ndocbrain_webhook_retrying {}", parts.retrying);
}
