//! Accepted webhook events and the workers that reconcile them.
//!
//! Events are journaled, then collapsed per page: at most one reconcile of a page is in flight
//! and at most one more is pending, however many events arrive. A page is picked up a short
//! debounce after its first event, so a burst of edits costs one fetch. The fetched state
//! decides what happens (the event name is only logged): a current page is re-indexed, a
//! trashed or missing one is deleted. When the event named a newer version than Confluence
//! returns (replication lag), the page is fetched again with backoff until it appears or a
//! bound passes. Failures retry with backoff; after `max_attempts` the entries are parked in the
//! journal and counted, never retried forever. A journal entry is settled only after success.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use docbrain_confluence::webhook::{PageEvent, PageRef};
use docbrain_core::{ErrorKind, Fetched, PageId, PageOutcome, PageStatus, Pipeline, Secret};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::journal::{Entry, Journal};
use crate::metrics::Metrics;
use crate::ServerError;

/// Settings of the webhook endpoint and its workers.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `CONFLUENCE_WEBHOOK_SECRET`: the HMAC key of `X-Hub-Signature`.
    pub secret: Secret,
    /// `CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN`: also accept `?token=<secret>` (weaker; for Cloud
    /// webhooks that arrive unsigned).
    pub allow_url_token: bool,
    /// `WEBHOOK_MAX_BODY_BYTES`: larger bodies get 413 unread.
    pub max_body_bytes: usize,
    /// `WEBHOOK_JOURNAL_DIR`: where accepted events are journaled.
    pub journal_dir: PathBuf,
    /// `WEBHOOK_WORKERS`: pages reconciled at once.
    pub workers: usize,
    /// `WEBHOOK_DEBOUNCE_MS`: how long after a page's first event it is picked up.
    pub debounce: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`: failed reconciles of a page before its entries are parked.
    pub max_attempts: u32,
    /// The first wait after a failed reconcile; it doubles per attempt.
    pub retry_initial: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// How long to wait for the version an event named to appear in the API.
    pub lag_bound: Duration,
}

impl WebhookConfig {
    /// Settings with `secret`, journaling into `journal_dir`, and defaults for the rest.
    pub fn new(secret: Secret, journal_dir: PathBuf) -> Self {
        Self {
            secret,
            allow_url_token: false,
            max_body_bytes: 1024 * 1024,
            journal_dir,
            workers: 2,
            debounce: Duration::from_millis(1000),
            max_attempts: 10,
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            lag_bound: Duration::from_secs(120),
        }
    }
}

/// One page waiting for or in reconciliation.
#[derive(Debug)]
struct Slot {
    /// Journal entries this slot settles.
    seqs: Vec<u64>,
    /// The latest event name (for logs).
    event: String,
    /// The title the events carried, if any.
    title: Option<String>,
    /// The newest version an event named.
    want_version: Option<u64>,
    /// When it may be picked up.
    due: Instant,
    /// Failed attempts so far.
    attempts: u32,
    /// When Confluence was first seen lagging behind `want_version`.
    lagging_since: Option<Instant>,
    in_flight: bool,
}

/// A page taken by a worker.
#[derive(Debug)]
struct Job {
    page: PageId,
    seqs: Vec<u64>,
    event: String,
    title: Option<String>,
    want_version: Option<u64>,
    attempts: u32,
    lagging_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct Queue {
    slots: Mutex<HashMap<PageId, Slot>>,
    notify: Notify,
}

/// The webhook service: journal, queue and workers.
#[derive(Debug)]
pub struct Webhook {
    config: WebhookConfig,
    journal: Journal,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    next_seq: AtomicU64,
    stopping: Arc<AtomicBool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Webhook {
    /// Opens the journal, queues what it still holds, and starts the workers.
    ///
    /// # Errors
    /// When the journal cannot be opened.
    pub fn start(
        config: WebhookConfig,
        pipeline: &Pipeline,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ServerError> {
        let (journal, pending) = Journal::open(&config.journal_dir)?;
        let next = pending.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
        let webhook = Arc::new(Self {
            journal,
            queue: Arc::new(Queue::default()),
            metrics,
            // Sequence numbers stay unique across restarts: time-based, above anything replayed.
            next_seq: AtomicU64::new(next.max(now_ms() * 1000)),
            stopping: Arc::new(AtomicBool::new(false)),
            workers: Mutex::new(Vec::new()),
            config,
        });
        if !pending.is_empty() {
            info!(
                pending = pending.len(),
                "Resuming {} journaled webhook events",
                pending.len()
            );
        }
        for entry in pending {
            webhook.enqueue(&entry, Instant::now());
        }
        let mut workers = lock(&webhook.workers);
        for _ in 0..webhook.config.workers.max(1) {
            let w = Arc::clone(&webhook);
            let p = pipeline.clone();
            workers.push(tokio::spawn(async move { w.work(p).await }));
        }
        drop(workers);
        Ok(webhook)
    }

    /// The settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// The journal (readiness checks it).
    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Pages waiting for or in reconciliation.
    pub fn queue_depth(&self) -> usize {
        lock(&self.queue.slots).len()
    }

    /// Journals a page event and queues the page; resolves once the event is on disk.
    ///
    /// # Errors
    /// When the journal cannot be written (the delivery must not be acknowledged then).
    pub async fn accept(&self, event: PageEvent, page: PageRef) -> Result<(), ServerError> {
        let entry = Entry {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            page: page.id,
            event: event.name().to_owned(),
            version: page.version,
            title: page.title,
            at_ms: now_ms(),
        };
        self.journal.add(entry.clone()).await?;
        self.enqueue(&entry, Instant::now() + self.config.debounce);
        Ok(())
    }

    fn enqueue(&self, entry: &Entry, due: Instant) {
        let mut slots = lock(&self.queue.slots);
        let debounce = self.config.debounce;
        let slot = slots.entry(entry.page.clone()).or_insert_with(|| Slot {
            seqs: Vec::new(),
            event: entry.event.clone(),
            title: None,
            want_version: None,
            due,
            attempts: 0,
            lagging_since: None,
            in_flight: false,
        });
        slot.seqs.push(entry.seq);
        slot.event.clone_from(&entry.event);
        if entry.title.is_some() {
            slot.title.clone_from(&entry.title);
        }
        slot.want_version = slot.want_version.max(entry.version);
        if slot.in_flight {
            // Picked up again once the running reconcile ends.
            slot.due = Instant::now() + debounce;
        }
        self.metrics
            .queue_depth
            .store(slots.len() as u64, Ordering::Relaxed);
        drop(slots);
        self.queue.notify.notify_one();
    }

    /// Stops the workers: each finishes the page in hand, for up to `grace`; what is not done
    /// stays journaled for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.queue.notify.notify_waiters();
        let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.workers));
        let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(grace, futures_join(handles))
            .await
            .is_err()
        {
            warn!("webhook workers still busy after the grace period; their pages stay journaled");
            for a in aborts {
                a.abort();
            }
        }
    }

    async fn work(self: Arc<Self>, pipeline: Pipeline) {
        while !self.stopping.load(Ordering::SeqCst) {
            let next = self.take();
            match next {
                Next::Job(job) => self.process(&pipeline, job).await,
                Next::Wait(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.queue.notify.notified() => {}
                    }
                }
            }
        }
    }

    fn take(&self) -> Next {
        let mut slots = lock(&self.queue.slots);
        let now = Instant::now();
        let soonest = slots
            .iter_mut()
            .filter(|(_, s)| !s.in_flight && !s.seqs.is_empty())
            .min_by_key(|(_, s)| s.due);
        match soonest {
            Some((page, slot)) if slot.due <= now => {
                slot.in_flight = true;
                Next::Job(Job {
                    page: page.clone(),
                    seqs: std::mem::take(&mut slot.seqs),
                    event: slot.event.clone(),
                    title: slot.title.clone(),
                    want_version: slot.want_version,
                    attempts: slot.attempts,
                    lagging_since: slot.lagging_since,
                })
            }
            Some((_, slot)) => Next::Wait(slot.due - now),
            None => Next::Wait(Duration::from_secs(3600)),
        }
    }

    async fn process(&self, pipeline: &Pipeline, job: Job) {
        let started = Instant::now();
        let title = match &job.title {
            Some(t) => t.clone(),
            None => pipeline
                .store()
                .page(&job.page)
                .await
                .ok()
                .flatten()
                .map_or_else(|| "(not indexed yet)".to_owned(), |p| p.title),
        };
        info!(event = %job.event, page_id = %job.page, "Processing {} for page '{title}' (id={})", job.event, job.page);
        let fetched = match pipeline.fetcher().fetch(&job.page).await {
            Ok(f) => f,
            Err(e) => {
                self.metrics
                    .confluence_errors
                    .fetch_add(1, Ordering::Relaxed);
                return self.failed(job, &e, started);
            }
        };
        if let (Fetched::Page(page), Some(want)) = (&fetched, job.want_version) {
            if page.status == PageStatus::Current && page.version < want {
                let since = job.lagging_since.unwrap_or(started);
                if since.elapsed() < self.config.lag_bound {
                    debug!(page_id = %job.page, fetched = page.version, want, "Confluence has not caught up with the event yet; fetching again shortly");
                    return self.lagging(job, since);
                }
                warn!(page_id = %job.page, fetched = page.version, want, "Confluence still returns an older version than the event named; indexing what it returns");
            }
        }
        match pipeline.apply(&job.page, fetched).await {
            Ok(outcome) => {
                let label = match outcome {
                    PageOutcome::Updated { .. } => "updated",
                    PageOutcome::Deleted { .. } => "deleted",
                    PageOutcome::Unchanged => "unchanged",
                    PageOutcome::Stale { .. } => "stale",
                    PageOutcome::Absent => "absent",
                };
                if matches!(outcome, PageOutcome::Unchanged | PageOutcome::Absent) {
                    info!(page_id = %job.page, "Page '{title}' (id={}) is {label}; nothing to re-index", job.page);
                }
                self.metrics.reconciled(label, started.elapsed());
                self.settled(job);
            }
            Err(e) => {
                self.metrics.index_errors.fetch_add(1, Ordering::Relaxed);
                self.failed(job, &e, started);
            }
        }
    }

    /// Success: settle the entries; keep the slot if events arrived meanwhile.
    fn settled(&self, job: Job) {
        self.journal.done(job.seqs);
        self.release(&job.page);
    }

    /// Ends a page's turn: the slot goes, or starts afresh when events arrived meanwhile.
    fn release(&self, page: &PageId) {
        let mut slots = lock(&self.queue.slots);
        if let Some(slot) = slots.get_mut(page) {
            if slot.seqs.is_empty() {
                slots.remove(page);
            } else {
                slot.in_flight = false;
                slot.attempts = 0;
                slot.lagging_since = None;
            }
        }
        self.metrics
            .queue_depth
            .store(slots.len() as u64, Ordering::Relaxed);
        drop(slots);
        self.queue.notify.notify_one();
    }

    fn lagging(&self, job: Job, since: Instant) {
        // Poll more slowly the longer Confluence lags: a quarter of the time waited so far.
        let wait = (since.elapsed() / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
        self.requeue(job, wait, Some(since), false);
    }

    fn failed(&self, job: Job, e: &docbrain_core::Error, started: Instant) {
        self.metrics.reconciled("failed", started.elapsed());
        let attempts = job.attempts + 1;
        if attempts >= self.config.max_attempts {
            error!(page_id = %job.page, attempts, error = %e, "Giving up on page {} after {attempts} attempts: {e}; its events are parked in the journal", job.page);
            self.metrics
                .parked
                .fetch_add(job.seqs.len() as u64, Ordering::Relaxed);
            self.journal.park(job.seqs, e.to_string());
            self.release(&job.page);
            return;
        }
        let wait = e.retry_after().map_or_else(
            || {
                backoff(
                    self.config.retry_initial,
                    self.config.retry_max,
                    attempts - 1,
                )
            },
            |asked| asked.min(self.config.retry_max),
        );
        let cause = if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::InvalidConfig) {
            "a setting must be fixed"
        } else {
            "will retry"
        };
        warn!(page_id = %job.page, attempts, wait_ms = wait.as_millis() as u64, error = %e, "Reconciling page {} failed ({cause}): {e}", job.page);
        self.requeue(job, wait, None, true);
    }

    fn requeue(&self, job: Job, wait: Duration, lagging_since: Option<Instant>, failed: bool) {
        let mut slots = lock(&self.queue.slots);
        if let Some(slot) = slots.get_mut(&job.page) {
            let mut seqs = job.seqs;
            seqs.append(&mut slot.seqs);
            slot.seqs = seqs;
            slot.in_flight = false;
            slot.due = Instant::now() + wait;
            slot.attempts = if failed {
                job.attempts + 1
            } else {
                job.attempts
            };
            slot.lagging_since = lagging_since;
        }
        drop(slots);
        self.queue.notify.notify_one();
    }
}

enum Next {
    Job(Job),
    Wait(Duration),
}

fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(max)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}
