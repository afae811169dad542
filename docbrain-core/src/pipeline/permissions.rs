//! Permissions on the pipeline's side: whom a caller reads as, and the pages an access change
//! reaches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::fetcher::Fetcher;
use crate::page::PageId;
use crate::read_access::{Caller, Reader};
use crate::store::PageState;
use std::sync::Mutex;

use super::Pipeline;

/// Whom an access change reaches beyond one page ([`Pipeline::pages_reached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reach<'a> {
    /// Every page below this one (its restrictions or place changed).
    Below(&'a PageId),
    /// Every page of this space (its permissions changed).
    Space(&'a str),
}

impl Pipeline {
    /// The indexed pages of this source (not their parts: a page's reconcile carries them) an
    /// access change reaches: every page below page `above`, or of space `space`. The index is read a batch
    /// at a time; a webhook's worker expands such an event through it, after the answer.
    ///
    /// # Errors
    /// Store failures.
    pub async fn pages_reached(&self, reach: Reach<'_>) -> Result<Vec<PageState>> {
        let mut reached = Vec::new();
        crate::store::each_state(&*self.store, |s| {
            let hit = match reach {
                Reach::Below(above) => s.ancestor_ids.contains(above),
                Reach::Space(space) => s.space_key == space,
            };
            if hit && s.parent.is_none() && self.is_mine(&s) {
                reached.push(s);
            }
            true
        })
        .await?;
        Ok(reached)
    }

    /// Notes in the store that permissions changed (a restriction, a move, a space's
    /// permissions): every crawl sharing the store, in this process or another, then reads
    /// again what it read before rather than write it.
    ///
    /// # Errors
    /// Store failures.
    pub async fn note_rules_changed(&self) -> Result<()> {
        self.store.note_rules_changed().await
    }

    /// The principals `caller` searches with; `None` for no permission filter.
    pub(crate) async fn reader_for(&self, caller: &Caller) -> Result<Option<Reader>> {
        Ok(match caller {
            Caller::Unfiltered => None,
            Caller::Anonymous => Some(Reader::anonymous()),
            Caller::User(who) => Some(
                self.readers
                    .get(who, self.options.reader_ttl, self.fetcher.as_ref())
                    .await?,
            ),
        })
    }
}

/// At most this many users are remembered; past it, expired entries are dropped, then all.
const MAX_ENTRIES: usize = 10_000;

/// Readers by the name a search gave, with when they were looked up.
#[derive(Debug, Default)]
pub(crate) struct ReaderCache {
    entries: Mutex<HashMap<String, (Instant, Reader)>>,
}

impl ReaderCache {
    /// Returns `who`'s principals, looked up through `fetcher` unless a lookup younger than
    /// `ttl` is held. A failed lookup is not remembered.
    pub(crate) async fn get(
        &self,
        who: &str,
        ttl: Duration,
        fetcher: &dyn Fetcher,
    ) -> Result<Reader> {
        let now = Instant::now();
        if let Some((at, reader)) = self.lock().get(who) {
            if now.duration_since(*at) < ttl {
                return Ok(reader.clone());
            }
        }
        let reader = fetcher.reader(who).await?;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| now.duration_since(*at) < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(who.to_owned(), (now, reader.clone()));
        Ok(reader)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Reader)>> {
        // Entries are whole values; a poisoned lock still holds valid ones.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
