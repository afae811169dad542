//! Accepted webhook events and the workers that reconcile them.
//!
//! Events are journaled, then collapsed per page: at most one reconcile of a page is in flight
//! and at most one more is pending, however many events arrive. A page's first event is picked
//! up at once (most edits come alone); events that arrive while it is in flight, or within the
//! debounce after it, collapse into one more reconcile a debounce later, so a burst of edits
//! costs two or three fetches. The fetched state
//! decides what happens (the event name is only logged): a current page is re-indexed, a
//! trashed or missing one is deleted. When the event named a newer version than Confluence
//! returns (replication lag), the page is fetched again with backoff until it appears or a
//! bound passes. Failures retry with backoff; after `max_attempts` the entries are parked in the
//! journal and counted, never retried forever. A journal entry is settled only after success.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::settings::WebhookSettings;
use docbrain_confluence::webhook::{PageEvent, PageRef};
use docbrain_core::{now_ms, printable};
use docbrain_core::{ErrorKind, PageId, PageOutcome, Pipeline};
use tokio::sync::futures::Notified;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::journal::{Entry, Journal, Reach};
use crate::metrics::Metrics;
use crate::ServerError;

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
    slots: Mutex<Slots>,
    notify: Notify,
}

/// The pages in the queue, and when recently finished pages were last done (a page's next
/// event within the debounce of that waits out the rest of it: the trailing edge).
#[derive(Debug, Default)]
struct Slots {
    pages: HashMap<PageId, Slot>,
    finished: HashMap<PageId, Instant>,
}

/// The webhook service: journal, queue and workers.
#[derive(Debug)]
pub struct Webhook {
    config: WebhookSettings,
    journal: Journal,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    next_seq: AtomicU64,
    stopping: Arc<AtomicBool>,
    /// Woken when the service stops (the expander waits on it).
    stopped: Notify,
    /// Journaled events that reach further than their page, for the expander.
    expansions: mpsc::UnboundedSender<Entry>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Webhook {
    /// Opens the journal, queues what it still holds, and starts the workers.
    ///
    /// # Errors
    /// When the journal cannot be opened.
    pub fn start(
        config: WebhookSettings,
        pipeline: &Pipeline,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ServerError> {
        let (journal, pending) = Journal::open(&config.journal_dir)?;
        let next = pending.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
        let (expansions, to_expand) = mpsc::unbounded_channel();
        let webhook = Arc::new(Self {
            journal,
            queue: Arc::new(Queue::default()),
            metrics,
            // Sequence numbers stay unique across restarts: time-based, above anything replayed.
            next_seq: AtomicU64::new(next.max(now_ms() * 1000)),
            stopping: Arc::new(AtomicBool::new(false)),
            stopped: Notify::new(),
            expansions,
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
            webhook.queue_entry(entry);
        }
        let mut workers = lock(&webhook.workers);
        {
            let w = Arc::clone(&webhook);
            let p = pipeline.clone();
            workers.push(tokio::spawn(
                async move { w.expand_all(p, to_expand).await },
            ));
        }
        for _ in 0..webhook.config.workers.max(1) {
            let w = Arc::clone(&webhook);
            let p = pipeline.clone();
            workers.push(tokio::spawn(async move { w.work(p).await }));
        }
        drop(workers);
        Ok(webhook)
    }

    /// The settings.
    pub fn config(&self) -> &WebhookSettings {
        &self.config
    }

    /// The journal (readiness checks it).
    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Pages waiting for or in reconciliation.
    pub fn queue_depth(&self) -> usize {
        lock(&self.queue.slots).pages.len()
    }

    /// Pages whose reconcile failed and that wait to be tried again.
    pub fn retrying(&self) -> usize {
        lock(&self.queue.slots)
            .pages
            .values()
            .filter(|slot| slot.attempts > 0)
            .count()
    }

    /// Journals a page event and queues the page; resolves once the event is on disk.
    ///
    /// # Errors
    /// When the journal cannot be written (the delivery must not be acknowledged then).
    pub async fn accept(&self, event: PageEvent, page: PageRef) -> Result<(), ServerError> {
        self.journal_entry(event.name(), page, None).await
    }

    /// Journals an event that reaches further than its page: every indexed page below page
    /// `page` ([`Reach::Below`]) or of a space ([`Reach::Space`]). Resolves once it is on disk;
    /// the pages it reaches are found after the answer, each then journaled and queued.
    ///
    /// # Errors
    /// When the journal cannot be written (the delivery must not be acknowledged then).
    pub(crate) async fn accept_reach(
        &self,
        event: PageEvent,
        page: PageId,
        reach: Reach,
    ) -> Result<(), ServerError> {
        let page = PageRef {
            id: page,
            title: None,
            space_key: None,
            version: None,
        };
        self.journal_entry(event.name(), page, Some(reach)).await
    }

    async fn journal_entry(
        &self,
        event: &str,
        page: PageRef,
        reach: Option<Reach>,
    ) -> Result<(), ServerError> {
        let entry = Entry {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            page: page.id,
            event: event.to_owned(),
            version: page.version,
            title: page.title,
            at_ms: now_ms(),
            reach,
        };
        self.journal.add(entry.clone()).await?;
        self.queue_entry(entry);
        Ok(())
    }

    /// Hands a journaled entry on: to the expander when it reaches further than its page,
    /// else to the page queue.
    fn queue_entry(&self, entry: Entry) {
        if entry.reach.is_none() {
            self.enqueue(&entry);
        } else if self.expansions.send(entry).is_err() {
            // Only a stopping service has no expander: the entry stays journaled.
            if !self.stopping.load(Ordering::SeqCst) {
                error!("the webhook expander is gone: an access change stays journaled until the next start");
            }
        }
    }

    /// Expands journaled events that reach further than their page: the access change is noted
    /// in the index ([`Self::note`]), then the pages each reaches are journaled and queued as
    /// events of their own, then it is settled. Events waiting with the same reach are
    /// expanded once. A failed read of the index is tried again with backoff, up to
    /// `max_attempts`, then the events are parked (counted, as failed pages are); a stop
    /// leaves them journaled.
    async fn expand_all(
        self: Arc<Self>,
        pipeline: Pipeline,
        mut entries: mpsc::UnboundedReceiver<Entry>,
    ) {
        loop {
            let stopped = self.stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let first = tokio::select! {
                entry = entries.recv() => match entry {
                    Some(entry) => entry,
                    None => return,
                },
                () = &mut stopped => return,
            };
            let mut waiting = vec![first];
            while let Ok(entry) = entries.try_recv() {
                waiting.push(entry);
            }
            if !self.note(&pipeline, stopped.as_mut()).await {
                return;
            }
            for (entry, seqs) in same_reach(waiting) {
                let mut attempts = 0;
                loop {
                    match self.expand(&pipeline, &entry).await {
                        Ok(count) => {
                            info!(event = %printable(&entry.event), pages = count, events = seqs.len(), "Queued the {count} pages an access change reaches");
                            self.journal.done(seqs);
                            break;
                        }
                        Err(e) if attempts + 1 >= self.config.max_attempts => {
                            error!(error = %e, attempts = attempts + 1, "Giving up on an access change after {} attempts: {e}; it is parked in the journal, and the next crawl brings the pages it reaches in line", attempts + 1);
                            self.metrics
                                .parked
                                .fetch_add(seqs.len() as u64, Ordering::Relaxed);
                            self.journal.park(seqs, e.to_string());
                            break;
                        }
                        Err(e) => {
                            attempts += 1;
                            let wait =
                                backoff(self.config.retry_initial, self.config.retry_max, attempts);
                            warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot read the index for the pages an access change reaches; trying again");
                            if !wait_unless_stopped(wait, stopped.as_mut()).await {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Notes in the index that access changed, for the events waiting, all answered before
    /// it: a crawl running now (here or in another process) may hold rules read before the
    /// change, for pages it writes after the expansion reads the index; it reads such a page
    /// again when it finds the note after writing it. Tried again with backoff until it lands
    /// (nothing the expander does can succeed while the index refuses it) or the service
    /// stops (`false`). The answer to a delivery never waits on the index for this.
    async fn note(&self, pipeline: &Pipeline, mut stopped: Pin<&mut Notified<'_>>) -> bool {
        let mut attempts = 0;
        loop {
            // A stop may cut the note short: the events stay journaled, and the next start
            // notes them.
            let noted = tokio::select! {
                noted = pipeline.note_rules_changed() => noted,
                () = stopped.as_mut() => return false,
            };
            match noted {
                Ok(()) => return true,
                Err(e) => {
                    attempts += 1;
                    let wait = backoff(self.config.retry_initial, self.config.retry_max, attempts);
                    warn!(error = %e, attempts, retry_in_ms = wait.as_millis() as u64, "cannot note an access change in the index (crawls under way must learn of it); trying again");
                    if !wait_unless_stopped(wait, stopped.as_mut()).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Journals and queues, as events of their own, the pages `entry` reaches: its own page
    /// (whose first reconcile may have run before the note, beside a crawl writing the rule it
    /// read earlier) and the indexed pages below it, or the indexed pages of its space.
    async fn expand(&self, pipeline: &Pipeline, entry: &Entry) -> Result<usize, ServerError> {
        let (own, pages) = match &entry.reach {
            Some(Reach::Below) => {
                let own = PageRef {
                    id: entry.page.clone(),
                    title: entry.title.clone(),
                    space_key: None,
                    version: None,
                };
                (Some(own), pipeline.pages_below(&entry.page).await)
            }
            Some(Reach::Space(key)) => (None, pipeline.pages_in_space(key).await),
            None => return Ok(0),
        };
        let pages = pages.map_err(|e| ServerError::Index(e.to_string()))?;
        let reached = own.into_iter().chain(pages.into_iter().map(|p| PageRef {
            id: p.id,
            title: Some(p.title),
            space_key: Some(p.space_key),
            version: None,
        }));
        let count = futures::future::try_join_all(
            reached.map(|page| self.journal_entry(&entry.event, page, None)),
        )
        .await?
        .len();
        Ok(count)
    }

    /// Journals one event for each of `pages` and queues them; resolves once all are on disk
    /// (the journal writes them together).
    ///
    /// # Errors
    /// When the journal cannot be written (the delivery must not be acknowledged then).
    pub async fn accept_all(
        &self,
        event: PageEvent,
        pages: Vec<PageRef>,
    ) -> Result<(), ServerError> {
        futures::future::try_join_all(pages.into_iter().map(|page| self.accept(event, page)))
            .await
            .map(|_| ())
    }

    /// Queues a page. A page that is not queued and was not finished within the debounce is
    /// due at once (the leading edge: most edits come alone); events for a page in flight, or
    /// just finished, collapse into one more reconcile a debounce after the last one.
    fn enqueue(&self, entry: &Entry) {
        let mut guard = lock(&self.queue.slots);
        let Slots { pages, finished } = &mut *guard;
        let debounce = self.config.debounce;
        let now = Instant::now();
        finished.retain(|_, at| now.duration_since(*at) < debounce);
        let due = finished.get(&entry.page).map_or(now, |at| *at + debounce);
        let slot = pages.entry(entry.page.clone()).or_insert_with(|| Slot {
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
        self.metrics
            .queue_depth
            .store(pages.len() as u64, Ordering::Relaxed);
        drop(guard);
        self.queue.notify.notify_one();
    }

    /// Stops the workers: each finishes the page in hand, for up to `grace`; what is not done
    /// stays journaled for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.queue.notify.notify_waiters();
        self.stopped.notify_waiters();
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
            .pages
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
        // The event name and title come from the webhook body: escaped, they cannot forge lines.
        let title = printable(&title).into_owned();
        let event = printable(&job.event);
        info!(event = %event, page_id = %job.page, "Processing {event} for page '{title}' (id={})", job.page);
        // Wait for the version the event named only up to the lag bound; then take what the
        // API returns.
        let since = job.lagging_since.unwrap_or(started);
        let wanted = job
            .want_version
            .filter(|_| since.elapsed() < self.config.lag_bound);
        if job.want_version.is_some() && wanted.is_none() {
            warn!(page_id = %job.page, want = job.want_version, "Confluence still lagged behind the event after the bound; indexing what it returns");
        }
        match pipeline.reconcile_at_least(&job.page, wanted).await {
            Ok(PageOutcome::Behind { fetched, wanted }) => {
                debug!(page_id = %job.page, fetched, wanted, "Confluence has not caught up with the event yet; fetching again shortly");
                self.lagging(job, since);
            }
            Ok(outcome) => {
                let label = match outcome {
                    PageOutcome::Updated { .. } => "updated",
                    PageOutcome::Deleted { .. } => "deleted",
                    PageOutcome::Unchanged => "unchanged",
                    PageOutcome::Stale { .. } => "stale",
                    PageOutcome::Absent | PageOutcome::Behind { .. } => "absent",
                    _ => "other",
                };
                if matches!(outcome, PageOutcome::Unchanged | PageOutcome::Absent) {
                    info!(page_id = %job.page, "Page '{title}' (id={}) is {label}; nothing to re-index", job.page);
                }
                self.metrics.reconciled(label, started.elapsed());
                self.settled(job);
            }
            Err(e) => {
                let counter = match e.kind() {
                    ErrorKind::Storage | ErrorKind::Embedding => &self.metrics.index_errors,
                    _ => &self.metrics.confluence_errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
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
        let mut guard = lock(&self.queue.slots);
        let Slots { pages, finished } = &mut *guard;
        let now = Instant::now();
        if let Some(slot) = pages.get_mut(page) {
            if slot.seqs.is_empty() {
                pages.remove(page);
                finished.insert(page.clone(), now);
            } else {
                // Events arrived meanwhile: one more reconcile, a debounce from now.
                slot.in_flight = false;
                slot.attempts = 0;
                slot.lagging_since = None;
                slot.due = now + self.config.debounce;
            }
        }
        self.metrics
            .queue_depth
            .store(pages.len() as u64, Ordering::Relaxed);
        drop(guard);
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
        if let Some(slot) = slots.pages.get_mut(&job.page) {
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

/// Entries grouped by what they reach (below the same page, or the same space: its entries
/// name the same pseudo page), each group with the sequence numbers it settles.
fn same_reach(entries: Vec<Entry>) -> Vec<(Entry, Vec<u64>)> {
    let mut groups: Vec<(Entry, Vec<u64>)> = Vec::new();
    for entry in entries {
        match groups
            .iter_mut()
            .find(|(g, _)| g.reach == entry.reach && g.page == entry.page)
        {
            Some((_, seqs)) => seqs.push(entry.seq),
            None => {
                let seq = entry.seq;
                groups.push((entry, vec![seq]));
            }
        }
    }
    groups
}

/// Waits `wait`; `false` when the service stops first.
async fn wait_unless_stopped(wait: Duration, stopped: Pin<&mut Notified<'_>>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stopped => false,
    }
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
