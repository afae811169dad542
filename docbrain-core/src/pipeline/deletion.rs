//! What a crawl deletes: indexed pages the listing no longer names (confirmed gone, within
//! the guard's share of each space) and parts out of step with their page.

use std::collections::{BTreeMap, HashMap};

use tracing::{debug, info, warn};

use crate::error::{ErrorKind, Result};
use crate::fetcher::Scope;
use crate::page::{Fetched, PageId};
use crate::store::{PageState, STATE_BATCH};
use crate::text::printable;

use super::crawl::{Began, SyncReport, Walk};
use super::{PageOutcome, Pipeline};

/// What the index holds of a crawled space after the listing.
#[derive(Default)]
pub(super) struct SpaceHeld {
    /// The pages it holds.
    pub(super) pages: usize,
    /// Whether one of them is this source's (not only records from before sources were kept).
    pub(super) ours: bool,
    /// Those the listing did not name.
    pub(super) doomed: Vec<PageState>,
}

/// What the index holds that the listing did not speak for.
pub(super) struct Unlisted {
    pub(super) spaces: BTreeMap<String, SpaceHeld>,
    /// Parts out of step with their page.
    pub(super) parts: Vec<PageState>,
}

impl Pipeline {
    /// Reads the index after the listing, a batch at a time: per crawled space, how many pages
    /// it holds and which the listing did not name; and the parts out of step with their page.
    /// What it keeps grows with what is to be deleted or repaired, not with the index.
    pub(super) async fn unlisted(&self, scope: &Scope, walk: &Walk) -> Result<Unlisted> {
        let mut spaces: BTreeMap<String, SpaceHeld> = BTreeMap::new();
        let mut parts = Vec::new();
        let mut after: Option<PageId> = None;
        loop {
            let batch = self.store.page_states(after.as_ref(), STATE_BATCH).await?;
            let full = batch.len() == STATE_BATCH;
            after = batch.last().map(|s| s.id.clone());
            let mut batch_parts = Vec::new();
            for state in batch.into_iter().filter(|s| self.is_mine(s)) {
                if state.parent.is_some() {
                    batch_parts.push(state);
                    continue;
                }
                // With no spaces named, a complete listing speaks for every space of this
                // source: one the listing no longer names has vanished (deleted, or no longer
                // readable).
                let crawled = walk.spaces.contains(&state.space_key) || scope.spaces.is_empty();
                if !crawled {
                    continue;
                }
                let space = spaces.entry(state.space_key.clone()).or_default();
                space.pages += 1;
                space.ours |= state.source == *self.source;
                if !walk.listed(&state.id) {
                    space.doomed.push(state);
                }
            }
            parts.extend(self.out_of_step(batch_parts).await?);
            if !full {
                break;
            }
        }
        spaces.retain(|space, held| walk.spaces.contains(space) || held.ours);
        Ok(Unlisted { spaces, parts })
    }

    /// Those of `parts` whose page the index does not hold (as this source's), does not list
    /// them, or holds under another rule.
    pub(super) async fn out_of_step(&self, parts: Vec<PageState>) -> Result<Vec<PageState>> {
        if parts.is_empty() {
            return Ok(parts);
        }
        let parents: Vec<PageId> = parts.iter().filter_map(|p| p.parent.clone()).collect();
        let pages: HashMap<PageId, PageState> = self
            .store
            .page_states_of(&parents)
            .await?
            .into_iter()
            .filter(|p| self.is_mine(p) && p.parent.is_none())
            .map(|p| (p.id.clone(), p))
            .collect();
        Ok(parts
            .into_iter()
            .filter(|part| {
                let page = part.parent.as_ref().and_then(|id| pages.get(id));
                !page.is_some_and(|p| {
                    *p.access == *part.access && p.parts.iter().any(|r| r.id == part.id)
                })
            })
            .collect())
    }

    /// Deletes the pages of `space` the listing no longer names, unless that is more of the
    /// space than the guard lets go at once.
    pub(super) async fn delete_unlisted_in(
        &self,
        space: &str,
        held: SpaceHeld,
        report: &mut SyncReport,
    ) -> Result<()> {
        let doomed = held.doomed;
        if doomed.is_empty() {
            return Ok(());
        }
        let share = doomed.len() as f64 / held.pages as f64;
        let guarded =
            doomed.len() > self.options.delete_floor && share > self.options.max_delete_fraction;
        if guarded && !self.options.allow_mass_delete {
            let msg = format!(
                "refused to delete {} of the {} indexed pages of space {space} ({:.0}% > the {:.0}% limit): \
                 the listing may be incomplete; if those pages really are gone, run again with --allow-mass-delete",
                doomed.len(),
                held.pages,
                share * 100.0,
                self.options.max_delete_fraction * 100.0
            );
            warn!(space = %space, "{msg}");
            report.refused_deletions.push(msg);
            return Ok(());
        }
        for page in &doomed {
            self.delete_unlisted(page, report).await?;
        }
        Ok(())
    }

    /// Repairs parts out of step with their page (a write cut short, a lost race): a part whose
    /// page the index does not hold, or that its page does not list, goes; one under another
    /// rule or place than its page's has its page read again (and goes if that fails). Each is
    /// judged on records read now, and a part written since the crawl began is left alone (a
    /// webhook may be between writing it and its page).
    pub(super) async fn sweep_parts(&self, parts: &[PageState], crawl: Began) -> Result<()> {
        for part in parts {
            let Some(parent) = &part.parent else { continue };
            let Some(held) = self.store.page(&part.id).await? else {
                continue;
            };
            if held.access_read_ms >= crawl.started_ms || held.parent.as_ref() != Some(parent) {
                continue;
            }
            let page = self.store.page(parent).await?;
            let listed = page
                .as_ref()
                .is_some_and(|p| p.parts.iter().any(|r| r.id == part.id));
            if !listed {
                debug!(part = %part.id, page_id = %parent, "removed a part its page does not hold");
                self.store.delete_page_if(&part.id, held.version).await?;
                continue;
            }
            let mut place = page
                .as_ref()
                .map(|p| p.ancestor_ids.clone())
                .unwrap_or_default();
            place.push(parent.clone());
            if page.is_some_and(|p| p.access == held.access) && held.ancestor_ids == place {
                continue;
            }
            info!(part = %part.id, page_id = %parent, "a part's rule is not its page's: reading the page again");
            if let Err(e) = self.reconcile(parent).await {
                warn!(part = %part.id, page_id = %parent, error = %e, "could not read the page again: its part is taken out of the index until it can");
                self.store.delete_page(&part.id).await?;
            }
        }
        Ok(())
    }

    /// Deletes a page the listing no longer names, once a direct fetch confirms it is gone (a
    /// listing over a space that changes under it can skip live pages), and only while the
    /// index holds the version the crawl read (a webhook may have restored it since).
    pub(super) async fn delete_unlisted(
        &self,
        page: &PageState,
        report: &mut SyncReport,
    ) -> Result<()> {
        let read_ms = crate::text::now_ms();
        match self.fetcher.fetch(&page.id).await {
            Ok(Fetched::Page(live)) if live.status.is_indexed() => {
                debug!(page_id = %page.id, "unlisted but live: the listing skipped it; kept");
                match self.upsert_read_at(live, read_ms).await {
                    Ok(PageOutcome::Updated { .. }) => report.pages_updated += 1,
                    Ok(_) => {}
                    Err(e) => {
                        report.pages_failed += 1;
                        report.failures.push((page.id.clone(), e.to_string()));
                    }
                }
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::InvalidConfig) => {
                return Err(e);
            }
            Err(e) => {
                warn!(page_id = %page.id, error = %e, "cannot confirm that an unlisted page is gone; it is kept");
                report.pages_failed += 1;
                report.failures.push((page.id.clone(), e.to_string()));
                return Ok(());
            }
        }
        match self.store.delete_page_if(&page.id, page.version).await? {
            Some(chunks) => {
                self.delete_parts(&page.id, &page.parts).await?;
                info!(page_id = %page.id, chunks, "Deleted page '{}' (no longer listed) — {chunks} chunks removed", printable(&page.title));
                report.pages_deleted += 1;
            }
            None => {
                debug!(page_id = %page.id, "re-indexed since the crawl read the index; kept");
            }
        }
        Ok(())
    }
}
