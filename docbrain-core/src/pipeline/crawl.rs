//! The full crawl: the listing walked in batches against the index, each page decided
//! (fetch, re-check its rule, or skip), then the unlisted deleted under the guard.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::{Error, ErrorKind, Result};
use crate::fetcher::{PageStream, Scope};
use crate::page::{PageId, PageSummary, PartRef};
use crate::store::{PageState, STATE_BATCH};
use crate::text::printable;

use super::{PageOutcome, Pipeline};

/// Figures of one [`Pipeline::sync`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Pages the listing named.
    pub pages_seen: u64,
    /// Pages skipped because the index holds the same version and content.
    pub pages_unchanged: u64,
    /// Pages whose chunks were replaced.
    pub pages_updated: u64,
    /// Pages removed from the index.
    pub pages_deleted: u64,
    /// Pages that failed; their indexed state was left as it was.
    pub pages_failed: u64,
    /// Chunks that were embedded.
    pub chunks_embedded: u64,
    /// Chunks whose vectors were reused.
    pub chunks_reused: u64,
    /// Chunks the synced pages have now.
    pub chunks_total: u64,
    /// Wall time of the sync.
    pub elapsed_ms: u64,
    /// Attachments that could not be read; their pages were indexed, and they are tried again
    /// at the next crawl. Not a failure of the sync.
    #[serde(default)]
    pub attachments_failed: u64,
    /// Per-page failures: `(page id, error)`.
    pub failures: Vec<(PageId, String)>,
    /// Deletions the guard refused, one message per space.
    pub refused_deletions: Vec<String>,
}

impl SyncReport {
    /// Returns whether every page synced and nothing was refused.
    pub fn is_clean(&self) -> bool {
        self.failures.is_empty() && self.refused_deletions.is_empty()
    }
}

/// Observes a sync as it goes (a progress bar, for example). Every method defaults to nothing.
pub trait SyncProgress: Send + Sync {
    /// Called for each page the listing names.
    fn listed(&self, _page: &PageSummary) {}
    /// Called when a listed page has been handled.
    fn page_done(&self, _page: &PageSummary, _outcome: &Result<PageOutcome>) {}
}

impl SyncProgress for () {}

/// What a sync knows about the listing so far.
pub(super) struct Walk {
    /// A digest of each page listed so far ([`Walk::key`]): 16 bytes a page.
    pub(super) seen: HashSet<u128>,
    pub(super) spaces: BTreeSet<String>,
    pub(super) truncated: bool,
}

impl Walk {
    pub(super) fn key(id: &PageId) -> u128 {
        let mut h = crate::hash::StableHasher::new();
        h.field(id.as_str());
        h.finish()
    }

    /// Admits a listed page the first time the listing names it, within the scope's page
    /// limit.
    pub(super) fn admit(&mut self, summary: PageSummary, scope: &Scope) -> Admitted {
        let key = Self::key(&summary.id);
        if self.seen.contains(&key) {
            return Admitted::Again;
        }
        if scope
            .page_limit
            .is_some_and(|limit| self.seen.len() >= limit)
        {
            self.truncated = true;
            return Admitted::PastLimit;
        }
        self.seen.insert(key);
        if scope.spaces.is_empty() {
            self.spaces.insert(summary.space_key.clone());
        }
        Admitted::Yes(summary)
    }

    /// Whether the listing named page `id`.
    pub(super) fn listed(&self, id: &PageId) -> bool {
        self.seen.contains(&Self::key(id))
    }
}

/// The source's listing as the walk reads it: in batches, until it ends, fails or reaches the
/// scope's page limit.
struct Listing<'a> {
    pages: PageStream<'a>,
    stopped: bool,
}

impl Listing<'_> {
    /// Adds a listed entry to `batch` when the walk admits it; a failed listing is added and
    /// ends the listing, as do its end and the scope's page limit.
    fn add(
        &mut self,
        next: Option<Result<PageSummary>>,
        batch: &mut Vec<Result<PageSummary>>,
        scope: &Scope,
        progress: &dyn SyncProgress,
        walk: &mut Walk,
    ) {
        match next {
            Some(Ok(summary)) => {
                progress.listed(&summary);
                match walk.admit(summary, scope) {
                    Admitted::Yes(summary) => batch.push(Ok(summary)),
                    Admitted::Again => {}
                    Admitted::PastLimit => self.stopped = true,
                }
            }
            Some(Err(e)) => {
                self.stopped = true;
                batch.push(Err(e));
            }
            None => self.stopped = true,
        }
    }

    /// Adds to `batch` the entries the listing has ready now, up to a batch, without waiting.
    fn add_ready(
        &mut self,
        batch: &mut Vec<Result<PageSummary>>,
        scope: &Scope,
        progress: &dyn SyncProgress,
        walk: &mut Walk,
    ) {
        let mut now = Context::from_waker(Waker::noop());
        while !self.stopped && batch.len() < STATE_BATCH {
            match self.pages.as_mut().poll_next(&mut now) {
                Poll::Ready(next) => self.add(next, batch, scope, progress, walk),
                Poll::Pending => return,
            }
        }
    }
}

/// What the walk waited for: a page brought in line, or the listing's next entry.
enum Next {
    Done(Taken),
    Listed(Option<Result<PageSummary>>),
}

/// One page brought in line: the page, its outcome, and the chunks the index held of it.
type Taken = Result<(PageSummary, Result<PageOutcome>, u64)>;

/// The pages a walk is bringing in line (at most `fetch_concurrency`), polled within the
/// walk's own task as `buffer_unordered` would: a crawl's async work then takes one runtime
/// thread at a time and leaves the others to requests that must answer at once (a webhook's
/// acknowledgement). So few are in hand that polling each on every wake costs nothing.
struct InHand<'a>(Vec<Pin<Box<dyn Future<Output = Taken> + Send + 'a>>>);

impl InHand<'_> {
    /// The next page brought in line; `None` when none is in hand.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Taken>> {
        if self.0.is_empty() {
            return Poll::Ready(None);
        }
        for i in 0..self.0.len() {
            if let Poll::Ready(taken) = self.0[i].as_mut().poll(cx) {
                drop(self.0.swap_remove(i));
                return Poll::Ready(Some(taken));
            }
        }
        Poll::Pending
    }
}

/// What [`Walk::admit`] made of a listed page.
pub(super) enum Admitted {
    /// Named the first time: the walk takes it.
    Yes(PageSummary),
    /// Named before (listings that page over a changing space repeat pages).
    Again,
    /// Past the scope's page limit: the listing is cut short here.
    PastLimit,
}

/// What the index holds of one listed page: its state, whether the parts it lists have their
/// records, and their chunks.
pub(super) struct Held {
    pub(super) state: PageState,
    pub(super) parts_present: bool,
    pub(super) part_chunks: u64,
}

impl Held {
    /// The chunks of the page and its parts.
    pub(super) fn chunks(&self) -> u64 {
        u64::from(self.state.chunk_count) + self.part_chunks
    }
}

/// Decides each listed page of a batch against what the index holds of the batch.
pub(super) fn decide(
    batch: Vec<Result<PageSummary>>,
    mut held: HashMap<PageId, Held>,
) -> Vec<Step> {
    let mut decide = |summary: PageSummary| match (summary.version, held.remove(&summary.id)) {
        (Some(v), Some(h))
            if h.state.version >= v
                && summary
                    .parts
                    .is_none_or(|listed| listed == PartRef::digest(&h.state.parts))
                && h.parts_present =>
        {
            Step::Access(summary, Box::new(h))
        }
        (_, h) => Step::Fetch(summary, h.map_or(0, |h| h.chunks())),
    };
    batch
        .into_iter()
        .map(|item| item.map_or_else(Step::Fail, &mut decide))
        .collect()
}

/// Counts one page's outcome into `report`; a refused credential or a configuration error
/// ends the crawl.
pub(super) fn tally(
    report: &mut SyncReport,
    summary: &PageSummary,
    outcome: Result<PageOutcome>,
    held_chunks: u64,
) -> Result<()> {
    match outcome {
        Ok(PageOutcome::Unchanged | PageOutcome::Stale { .. } | PageOutcome::Behind { .. }) => {
            report.pages_unchanged += 1;
            report.chunks_total += held_chunks;
        }
        Ok(PageOutcome::Updated {
            chunks,
            embedded,
            reused,
        }) => {
            report.pages_updated += 1;
            report.chunks_embedded += u64::from(embedded);
            report.chunks_reused += u64::from(reused);
            report.chunks_total += u64::from(chunks);
        }
        Ok(PageOutcome::Deleted { .. }) => report.pages_deleted += 1,
        Ok(PageOutcome::Absent) => {}
        Err(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::InvalidConfig) => {
            return Err(e);
        }
        Err(e) => {
            warn!(page_id = %summary.id, title = %printable(&summary.title), error = %e, "page failed; its indexed state is kept");
            report.pages_failed += 1;
            report.failures.push((summary.id.clone(), e.to_string()));
        }
    }
    Ok(())
}

/// When a crawl began: the time its rules date from, and the permission changes noted by then.
#[derive(Debug, Clone, Copy)]
pub(super) struct Began {
    pub(super) started_ms: u64,
    pub(super) rule_changes: u64,
}

/// One listed entry: a failed listing or index read, a page to fetch (with the chunks the
/// index held of it), or one held at its version and parts (its rule is checked).
pub(super) enum Step {
    Fail(Error),
    Fetch(PageSummary, u64),
    Access(PageSummary, Box<Held>),
}

impl Pipeline {
    /// Runs a full crawl of `scope`; see [`Pipeline::sync_with`].
    ///
    /// # Errors
    /// As [`Pipeline::sync_with`].
    pub async fn sync(&self, scope: &Scope) -> Result<SyncReport> {
        self.sync_with(scope, &()).await
    }

    /// Runs a full crawl: upserts every listed page whose version or content changed (pages
    /// whose listed version the index already holds are skipped without fetching), then deletes
    /// indexed pages of the crawled spaces that the listing no longer names, unless that would
    /// delete more than [`super::PipelineOptions::max_delete_fraction`] of a space.
    ///
    /// A page that fails is counted in the report and keeps its indexed state. The crawled
    /// spaces are `scope.spaces`, or the spaces the listing named when the scope is empty.
    ///
    /// # Errors
    /// When the listing fails (nothing is deleted then) or a credential is refused.
    pub async fn sync_with(
        &self,
        scope: &Scope,
        progress: &dyn SyncProgress,
    ) -> Result<SyncReport> {
        let started = Instant::now();
        let failed_before = self.attachment_counts().failed;
        // Rules the crawl reads (listed, or layers shared between pages) are as old as this.
        let crawl = Began {
            started_ms: crate::text::now_ms(),
            rule_changes: self.store.rule_changes().await?,
        };
        let mut report = SyncReport::default();
        let mut walk = Walk {
            seen: HashSet::new(),
            spaces: scope.spaces.iter().cloned().collect(),
            truncated: false,
        };
        self.walk(scope, progress, &mut walk, crawl, &mut report)
            .await?;
        if walk.truncated {
            info!(
                limit = scope.page_limit,
                "page limit reached: the listing was cut short, so nothing is deleted for being unlisted"
            );
        } else {
            let unlisted = self.unlisted(scope, &walk).await?;
            for (space, held) in unlisted.spaces {
                self.delete_unlisted_in(&space, held, &mut report).await?;
            }
            self.sweep_parts(&unlisted.parts, crawl).await?;
        }
        self.store.flush().await?;
        if report.is_clean() {
            self.store.record_sync(crate::text::now_ms()).await?;
        }
        report.attachments_failed = self.attachment_counts().failed - failed_before;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The listing, each page compared with the index and brought in line, counted into
    /// `report`. The index is read a batch of listed pages at a time, so the walk holds what it
    /// read of the index for one batch, and one digest per listed page; up to
    /// `fetch_concurrency` pages are brought in line at once. When the walk fails, the pages
    /// in hand run to their end before it returns.
    pub(super) async fn walk(
        &self,
        scope: &Scope,
        progress: &dyn SyncProgress,
        walk: &mut Walk,
        crawl: Began,
        report: &mut SyncReport,
    ) -> Result<()> {
        let mut in_hand = InHand(Vec::new());
        let walked = self
            .walk_in(&mut in_hand, scope, progress, walk, crawl, report)
            .await;
        while poll_fn(|cx| in_hand.poll_next(cx)).await.is_some() {}
        walked
    }

    async fn walk_in<'a>(
        &'a self,
        in_hand: &mut InHand<'a>,
        scope: &'a Scope,
        progress: &dyn SyncProgress,
        walk: &mut Walk,
        crawl: Began,
        report: &mut SyncReport,
    ) -> Result<()> {
        let mut listing = Listing {
            pages: self.fetcher.list(scope),
            stopped: false,
        };
        let mut steps = VecDeque::new();
        let limit = self.options.fetch_concurrency.max(1);
        loop {
            while in_hand.0.len() < limit {
                match steps.pop_front() {
                    Some(Step::Fail(e)) => return Err(e),
                    Some(step) => in_hand.0.push(Box::pin(self.take(step, crawl))),
                    None => break,
                }
            }
            let next = if steps.is_empty() && !listing.stopped && in_hand.0.len() < limit {
                // The listing's next entry; pages that finish meanwhile are counted at once.
                poll_fn(|cx| match in_hand.poll_next(cx) {
                    Poll::Ready(Some(taken)) => Poll::Ready(Next::Done(taken)),
                    _ => listing.pages.as_mut().poll_next(cx).map(Next::Listed),
                })
                .await
            } else {
                match poll_fn(|cx| in_hand.poll_next(cx)).await {
                    Some(taken) => Next::Done(taken),
                    None => return Ok(()),
                }
            };
            match next {
                Next::Listed(entry) => {
                    let mut batch = Vec::new();
                    listing.add(entry, &mut batch, scope, progress, walk);
                    listing.add_ready(&mut batch, scope, progress, walk);
                    if !batch.is_empty() {
                        steps.extend(self.decide(batch).await);
                    }
                }
                Next::Done(taken) => {
                    let (summary, outcome, held_chunks) = taken?;
                    report.pages_seen += 1;
                    progress.page_done(&summary, &outcome);
                    tally(report, &summary, outcome, held_chunks)?;
                }
            }
        }
    }

    /// Decides, for a batch of listed pages, which the index holds at their listed version
    /// and parts (their rule is then checked) and which are fetched.
    pub(super) async fn decide(&self, batch: Vec<Result<PageSummary>>) -> Vec<Step> {
        let ids: Vec<PageId> = batch
            .iter()
            .filter_map(|s| s.as_ref().ok().map(|s| s.id.clone()))
            .collect();
        match self.held_of(&ids).await {
            Ok(held) => decide(batch, held),
            Err(e) => vec![Step::Fail(e)],
        }
    }

    /// What the index holds of pages `ids` (this source's): each state, whether every part it
    /// lists as indexed has its record (one lost to a race has the page read again), and the
    /// chunks of its parts.
    pub(super) async fn held_of(&self, ids: &[PageId]) -> Result<HashMap<PageId, Held>> {
        let pages: Vec<PageState> = self
            .store
            .page_states_of(ids)
            .await?
            .into_iter()
            .filter(|s| self.is_mine(s) && s.parent.is_none())
            .collect();
        let part_ids: Vec<PageId> = pages
            .iter()
            .flat_map(|p| &p.parts)
            .filter(|r| r.not_indexed.is_none())
            .map(|r| r.id.clone())
            .collect();
        let parts = match part_ids.is_empty() {
            true => Vec::new(),
            false => self.store.page_states_of(&part_ids).await?,
        };
        let parts: HashMap<&PageId, &PageState> = parts
            .iter()
            .filter(|p| self.is_mine(p) && p.parent.is_some())
            .map(|p| (&p.id, p))
            .collect();
        Ok(pages
            .into_iter()
            .map(|state| {
                let listed = state.parts.iter().filter(|r| r.not_indexed.is_none());
                let parts_present = listed.clone().all(|r| parts.contains_key(&r.id));
                let part_chunks = listed
                    .filter_map(|r| parts.get(&r.id))
                    .filter(|p| p.parent.as_ref() == Some(&state.id))
                    .map(|p| u64::from(p.chunk_count))
                    .sum();
                let held = Held {
                    state,
                    parts_present,
                    part_chunks,
                };
                (held.state.id.clone(), held)
            })
            .collect())
    }

    /// Carries out one step of the walk: the page, its outcome, and the chunks the index held
    /// of it.
    pub(super) async fn take(
        &self,
        step: Step,
        crawl: Began,
    ) -> Result<(PageSummary, Result<PageOutcome>, u64)> {
        match step {
            Step::Fail(e) => Err(e),
            Step::Fetch(summary, held_chunks) => {
                let outcome = self.reconcile_listed(&summary, crawl).await;
                Ok((summary, outcome, held_chunks))
            }
            Step::Access(summary, held) => {
                let outcome = match &summary.access {
                    // The listing gave the rule and place: no request when they are unchanged.
                    Some(listed)
                        if listed.rule == *held.state.access
                            && PageState::place_of(&listed.ancestor_ids) == held.state.place =>
                    {
                        Ok(PageOutcome::Unchanged)
                    }
                    Some(_) => self.reconcile_listed(&summary, crawl).await,
                    None => self.recheck_access(&held.state).await,
                };
                Ok((summary, outcome, held.chunks()))
            }
        }
    }

    /// Brings a listed page whose version or rule the index does not hold in line: its body
    /// fetched, its rule the listing's where the source keeps it.
    ///
    /// Such a rule, or a layer the crawl read earlier, is as old as the crawl (`crawl.started_ms`):
    /// the write is stamped so. When permissions changed since the crawl began (noted in the
    /// store by a webhook, [`Pipeline::note_rules_changed`]), before or while the page is read,
    /// the page is read again exactly; if that fails, the page is taken out of the index rather
    /// than left with a rule that may be too open.
    pub(super) async fn reconcile_listed(
        &self,
        summary: &PageSummary,
        crawl: Began,
    ) -> Result<PageOutcome> {
        let read_ms = summary
            .access
            .as_ref()
            .map_or(crawl.started_ms, |l| l.read_ms.min(crawl.started_ms));
        if self.store.rule_changes().await? != crawl.rule_changes {
            return self.reconcile(&summary.id).await;
        }
        let fetched = self.fetcher.fetch_listed(summary).await?;
        let outcome = self.apply_read_at(&summary.id, fetched, read_ms).await?;
        if !matches!(outcome, PageOutcome::Updated { .. }) {
            return Ok(outcome);
        }
        let changed = match self.store.rule_changes().await {
            Ok(now) => now != crawl.rule_changes,
            Err(e) => return self.withdraw(&summary.id, e).await,
        };
        if !changed {
            return Ok(outcome);
        }
        debug!(page_id = %summary.id, "permissions changed while the page was read; reading it again");
        match self.reconcile(&summary.id).await {
            // Read again as written: this crawl still updated it.
            Ok(PageOutcome::Unchanged) => Ok(outcome),
            Ok(again) => Ok(again),
            Err(e) => self.withdraw(&summary.id, e).await,
        }
    }

    /// Takes page `id` out of the index after `why` kept it from being read exactly, and
    /// returns `why`: the next crawl or event brings it back.
    pub(super) async fn withdraw(&self, id: &PageId, why: Error) -> Result<PageOutcome> {
        warn!(page_id = %id, error = %why, "permissions changed while the page was read and it could not be read again: it is taken out of the index until it can");
        let parts = match self.store.page(id).await {
            Ok(held) => held.map(|h| h.parts).unwrap_or_default(),
            Err(e) => {
                warn!(page_id = %id, error = %e, "could not take the page out of the index");
                return Err(why);
            }
        };
        let deleted = match self.delete_parts(id, &parts).await {
            Ok(()) => self.store.delete_page(id).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            warn!(page_id = %id, error = %e, "could not take the page out of the index");
        }
        Err(why)
    }

    /// Reads again who may read a page whose version the index holds, and re-indexes it (with
    /// no embedding) only when that changed.
    pub(super) async fn recheck_access(&self, held: &PageState) -> Result<PageOutcome> {
        if self.fetcher.read_access(&held.id).await? == *held.access {
            return Ok(PageOutcome::Unchanged);
        }
        self.reconcile(&held.id).await
    }
}
