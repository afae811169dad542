//! The source side of the pipeline.

use std::fmt::Debug;

use async_trait::async_trait;
use futures_core::stream::BoxStream;

use crate::error::Result;
use crate::health::CallHealth;
use crate::page::{Fetched, Page, PageId, PageSummary, Part, PartText};
use crate::read_access::{ReadAccess, Reader};

/// A stream of listing entries, produced page by page as the source paginates.
pub type PageStream<'a> = BoxStream<'a, Result<PageSummary>>;

/// Which part of a source a crawl covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Space keys to crawl; empty means every space the fetcher is configured for.
    pub spaces: Vec<String>,
    /// Index at most this many pages (`CONFLUENCE_PAGE_LIMIT`); a crawl cut short by the limit
    /// deletes nothing for being unlisted.
    pub page_limit: Option<usize>,
}

impl Scope {
    /// Returns the scope of everything the fetcher is configured for.
    pub fn all() -> Self {
        Self::default()
    }

    /// Returns a scope of the given spaces.
    pub fn spaces<I, S>(spaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            spaces: spaces.into_iter().map(Into::into).collect(),
            page_limit: None,
        }
    }

    /// Returns this scope limited to `limit` pages (0 means unlimited).
    pub fn with_page_limit(mut self, limit: usize) -> Self {
        self.page_limit = (limit > 0).then_some(limit);
        self
    }
}

/// A source of pages: Confluence, a folder of exports, or anything a library user writes.
#[async_trait]
pub trait Fetcher: Debug + Send + Sync + 'static {
    /// Lists the live pages of `scope` with their versions, as a stream.
    ///
    /// A listing that fails midway must yield an error item rather than end early: the
    /// pipeline deletes what a complete listing no longer names, so a silently truncated
    /// listing would delete pages that still exist.
    fn list<'a>(&'a self, scope: &'a Scope) -> PageStream<'a>;

    /// Fetches one page with its body, or [`Fetched::Gone`] when it no longer exists or is not
    /// visible.
    ///
    /// # Errors
    /// Transport, authorisation and decoding failures; "not found" is `Ok(Fetched::Gone)`.
    async fn fetch(&self, id: &PageId) -> Result<Fetched>;

    /// Fetches a listed page for a crawl. A source whose listing gave the page's rule and place
    /// ([`PageSummary::access`]) may keep them instead of reading them again, when the body it
    /// fetches is of the listed version and sits where the listing said. The default fetches.
    ///
    /// # Errors
    /// As [`Fetcher::fetch`].
    async fn fetch_listed(&self, summary: &PageSummary) -> Result<Fetched> {
        self.fetch(&summary.id).await
    }

    /// The text of part `part` of `page` whose [`Part::body`] the source left to read on
    /// demand (an attachment: downloaded and extracted). The pipeline asks only for parts whose
    /// version the index does not hold. The default skips it.
    ///
    /// # Errors
    /// A download or extraction that failed: the part is counted as failed and tried again at
    /// the next crawl; the page and the crawl go on.
    async fn fetch_part(&self, _page: &Page, _part: &Part) -> Result<PartText> {
        Ok(PartText::Skipped("this source reads no attachments".into()))
    }

    /// Who may read page `id` now, without fetching its body: a crawl calls this for pages whose
    /// version it already holds, to catch permission-only changes. Sources without permissions
    /// answer [`ReadAccess::anyone`] (the default).
    ///
    /// # Errors
    /// Transport failures; permissions that cannot be read are [`ReadAccess::nobody`].
    async fn read_access(&self, _id: &PageId) -> Result<ReadAccess> {
        Ok(ReadAccess::anyone())
    }

    /// The principals of user `who` (an account id, or a username on Data Center): the user
    /// and their groups. The default knows no groups.
    ///
    /// # Errors
    /// [`crate::ErrorKind::NotFound`] when the source knows no such user; transport failures.
    async fn reader(&self, who: &str) -> Result<Reader> {
        Ok(Reader::user(who, Vec::<String>::new()))
    }

    /// How calls to a remote source have gone, for metrics and alerts; `None` (the default)
    /// for sources that make no remote calls.
    fn health(&self) -> Option<CallHealth> {
        None
    }

    /// Names this source among others that may share an index (`local:/docs`,
    /// `confluence:https://site/wiki`): pages keep it, and a crawl considers only its own
    /// source's pages, so a folder's pages are never "gone from Confluence". Never holds a
    /// credential. The default, empty, claims no pages but those of the spaces it lists.
    fn source_id(&self) -> String {
        String::new()
    }

    /// Checks with one cheap call that the source answers and accepts its credentials, for a
    /// long-running front door to say so at start. The default has nothing to check.
    ///
    /// # Errors
    /// What a crawl would fail with: refused credentials, an address that does not answer.
    async fn check(&self) -> Result<()> {
        Ok(())
    }
}
