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

impl Pipeline {
    /// The indexed pages of this source below page `above`: those a change of its
    /// restrictions or place reaches. Read from the index a batch at a time; a webhook's worker
    /// expands such an event through it, after the answer. Parts are not listed: a page's
    /// reconcile carries them.
    ///
    /// # Errors
    /// Store failures.
    pub async fn pages_below(&self, above: &PageId) -> Result<Vec<PageState>> {
        self.pages_where(|s| s.ancestor_ids.contains(above)).await
    }

    /// The indexed pages of this source in space `space`: those a change of the space's
    /// permissions reaches (as [`Pipeline::pages_below`]).
    ///
    /// # Errors
    /// Store failures.
    pub async fn pages_in_space(&self, space: &str) -> Result<Vec<PageState>> {
        self.pages_where(|s| s.space_key == space).await
    }

    async fn pages_where(
        &self,
        reached: impl Fn(&PageState) -> bool + Send + Sync,
    ) -> Result<Vec<PageState>> {
        let mut pages = Vec::new();
        self.store
            .each_state(&mut |s| {
                if reached(&s) && s.parent.is_none() && self.is_mine(&s) {
                    pages.push(s);
                }
                true
            })
            .await?;
        Ok(pages)
    }

    /// Notes in the store that permissions changed (a restriction, a move, a space's
    /// permissions): every crawl sharing the store, in this process or another, then reads
    /// again what it read before rather than write it. Note it before reading the pages the
    /// change reaches ([`Pipeline::pages_below`], [`Pipeline::pages_in_space`]): a page a crawl
    /// writes after that read is then read again, and one it wrote before is among them.
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
