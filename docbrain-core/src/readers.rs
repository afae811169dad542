//! Users' groups, looked up through the source when a search names a user, kept for a while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::access::Reader;
use crate::error::Result;
use crate::fetcher::Fetcher;

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
