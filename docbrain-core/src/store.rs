//! The index side of the pipeline.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::chunk::EmbeddedChunk;
use crate::embedder::ModelInfo;
use crate::error::Result;
use crate::page::{Page, PageId, PartRef};
use crate::read_access::ReadAccess;
use crate::search::{SearchHit, SearchRequest};

/// What an index keeps about a page (everything but the body, which lives in its chunks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedPage {
    /// The page id.
    pub id: PageId,
    /// The space key.
    pub space_key: String,
    /// The title.
    pub title: String,
    /// The version the index holds.
    pub version: u64,
    /// A link to the page.
    pub url: Option<String>,
    /// Ancestor titles, root first.
    pub ancestors: Vec<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// [`Page::content_hash`] of the indexed state.
    pub content_hash: String,
    /// Number of chunks indexed for the page.
    pub chunk_count: u32,
    /// Ids of the ancestor pages, root first.
    #[serde(default)]
    pub ancestor_ids: Vec<PageId>,
    /// Who may read the page; a record without one (written before permissions were kept)
    /// reads as nobody until a crawl reads them.
    #[serde(default)]
    pub access: ReadAccess,
    /// When the rule was read from the source (milliseconds since the Unix epoch, taken as the
    /// read began; 0: unknown). Of two writes of one version, the rule read later stays.
    #[serde(default)]
    pub access_read_ms: u64,
    /// The source the page came from ([`crate::Fetcher::source_id`]); empty for records
    /// written before sources were recorded. A crawl only ever deletes pages of its own source.
    #[serde(default)]
    pub source: String,
    /// The page this record is a part of (a comment's page); `None` for a page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<PageId>,
    /// The parts of this page the index holds, each a record of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRef>,
}

impl IndexedPage {
    /// Returns the index record of `page` with `chunk_count` chunks.
    pub fn of(page: &Page, chunk_count: u32) -> Self {
        Self {
            id: page.id.clone(),
            space_key: page.space_key.clone(),
            title: page.title.clone(),
            version: page.version,
            url: page.url.clone(),
            ancestors: page.ancestors.clone(),
            labels: page.labels.clone(),
            content_hash: page.content_hash(),
            chunk_count,
            ancestor_ids: page.ancestor_ids.clone(),
            access: page.access.clone(),
            access_read_ms: 0,
            source: String::new(),
            parent: None,
            parts: Vec::new(),
        }
    }

    /// Whether a store holding version `held_version`, its rule read at `held_read_ms`, keeps
    /// what it holds rather than take this record: a newer version, or the same version with a
    /// rule read later (a slow writer never puts back a rule a faster one has replaced, such as
    /// a crawl that embedded for seconds writing over a restriction a webhook just applied).
    pub fn is_stale_against(&self, held_version: u64, held_read_ms: u64) -> bool {
        (held_version, held_read_ms) > (self.version, self.access_read_ms)
    }
}

/// What a crawl reads of an indexed page, a batch at a time: no breadcrumbs, labels or link,
/// its place as a digest and its rule shared with every page of the batch under the same rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageState {
    /// The page id.
    pub id: PageId,
    /// The space key.
    pub space_key: String,
    /// The title (for logs).
    pub title: String,
    /// The version the index holds.
    pub version: u64,
    /// Number of chunks indexed for the page.
    pub chunk_count: u32,
    /// [`IndexedPage::source`].
    pub source: String,
    /// Who may read the page.
    pub access: Arc<ReadAccess>,
    /// [`PageState::place_of`] its ancestor ids.
    pub place: u128,
    /// Its ancestors' ids, root first (an access change above it reaches it).
    pub ancestor_ids: Vec<PageId>,
    /// [`IndexedPage::parent`].
    pub parent: Option<PageId>,
    /// [`IndexedPage::parts`].
    pub parts: Vec<PartRef>,
}

impl PageState {
    /// A digest of a chain of ancestor ids, root first: equal chains, equal digests.
    pub fn place_of(ancestor_ids: &[PageId]) -> u128 {
        let mut h = crate::hash::StableHasher::new();
        for id in ancestor_ids {
            h.field(id.as_str());
        }
        h.finish()
    }
}

/// Builds [`PageState`]s that share one copy of each distinct rule.
#[derive(Debug, Default)]
struct PageStates {
    rules: HashSet<Arc<ReadAccess>>,
    states: Vec<PageState>,
}

impl PageStates {
    /// Adds the state of `page`.
    fn push(&mut self, page: IndexedPage) {
        let access = match self.rules.get(&page.access) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(page.access);
                self.rules.insert(Arc::clone(&shared));
                shared
            }
        };
        self.states.push(PageState {
            place: PageState::place_of(&page.ancestor_ids),
            ancestor_ids: page.ancestor_ids,
            id: page.id,
            space_key: page.space_key,
            title: page.title,
            version: page.version,
            chunk_count: page.chunk_count,
            source: page.source,
            access,
            parent: page.parent,
            parts: page.parts,
        });
    }

    /// The states added.
    fn into_vec(self) -> Vec<PageState> {
        self.states
    }
}

impl PageState {
    /// The states of `pages`, which share one copy of each distinct rule (a crawl holds a
    /// batch of them, and most pages of a space share their rule).
    pub fn from_pages(pages: impl IntoIterator<Item = IndexedPage>) -> Vec<PageState> {
        let mut states = PageStates::default();
        for page in pages {
            states.push(page);
        }
        states.into_vec()
    }
}

/// How many states [`IndexStore::each_state`] and a crawl read from a store at once.
pub(crate) const STATE_BATCH: usize = 1_000;

/// What an index holds of pages' parts, read from the pages' records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsSummary {
    /// Comments indexed.
    pub comments: u64,
    /// Attachments indexed.
    pub attachments: u64,
    /// Attachments skipped, by reason.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Attachments whose reading failed (tried again at the next crawl).
    pub failed: u64,
}

impl PartsSummary {
    /// The summary of the parts of the pages `store` holds.
    ///
    /// # Errors
    /// Store failures.
    pub async fn read(store: &dyn IndexStore) -> Result<Self> {
        let mut summary = Self::default();
        store
            .each_state(&mut |state| {
                for part in &state.parts {
                    match (&part.not_indexed, part.kind) {
                        (None, crate::PartKind::Comment) => summary.comments += 1,
                        (None, _) => summary.attachments += 1,
                        (Some(crate::NotIndexed::Skipped(why)), _) => {
                            *summary.skipped.entry(why.clone()).or_default() += 1;
                        }
                        (Some(crate::NotIndexed::Failed(_)), _) => summary.failed += 1,
                    }
                }
                true
            })
            .await?;
        Ok(summary)
    }
}

/// A chunk as an index returns it for reading a page back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedChunk {
    /// Position within the page, from 0.
    pub position: u32,
    /// The page title followed by the headings above the chunk.
    pub heading_path: Vec<String>,
    /// The chunk text (opening with the overlap carried from the previous chunk, if any).
    pub text: String,
}

/// The result of [`IndexStore::replace_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplaceOutcome {
    /// The page's chunks were replaced.
    Replaced,
    /// The store already holds a newer version; nothing was written.
    Stale {
        /// The version the store holds.
        held: u64,
    },
}

/// What an index holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    /// Number of pages.
    pub pages: u64,
    /// Number of page parts (comments), each a record of its own.
    #[serde(default)]
    pub parts: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// The model the vectors come from, once bound.
    pub model_id: Option<String>,
    /// The vector dimension, once bound.
    pub dimension: Option<usize>,
    /// When the last full sync completed, in milliseconds since the Unix epoch.
    pub last_sync_ms: Option<u64>,
}

/// Where chunks, their vectors and page records live.
///
/// Every store honours the same contract, checked by the conformance suite
/// (`docbrain-testsuite`, beside this crate): replacing a page is atomic, never rolls
/// a page back to an older version, and leaves no chunk of the old state behind.
#[async_trait]
pub trait IndexStore: Debug + Send + Sync + 'static {
    /// Binds the store to a model: records it on first use, and refuses a different model or
    /// dimension afterwards.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidConfig`] naming both models when they differ.
    async fn bind_model(&self, model: &ModelInfo) -> Result<()>;

    /// Returns the record of one page, if indexed.
    async fn page(&self, id: &PageId) -> Result<Option<IndexedPage>>;

    /// Returns the vectors of a page's chunks keyed by content hash, for reuse.
    async fn chunk_vectors(&self, id: &PageId) -> Result<Vec<(String, Vec<f32>)>>;

    /// Returns a page's chunks in position order (empty when the page is not indexed).
    async fn chunks(&self, id: &PageId) -> Result<Vec<IndexedChunk>>;

    /// Atomically replaces a page's record and all its chunks, unless the store holds a newer
    /// version of the page.
    async fn replace_page(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
    ) -> Result<ReplaceOutcome>;

    /// Deletes a page and all its chunks; returns how many chunks were removed.
    async fn delete_page(&self, id: &PageId) -> Result<u64>;

    /// Deletes a page only while the index holds version `at_most` or older; `None` when it
    /// holds a newer one (a webhook wrote it since a crawl read the index), which is kept.
    /// Stores should override this to make the check and the delete one step; the default
    /// reads, then deletes.
    async fn delete_page_if(&self, id: &PageId, at_most: u64) -> Result<Option<u64>> {
        match self.page(id).await? {
            Some(held) if held.version > at_most => Ok(None),
            _ => self.delete_page(id).await.map(Some),
        }
    }

    /// Lists every indexed page.
    async fn list_pages(&self) -> Result<Vec<IndexedPage>>;

    /// Lists what a crawl keeps of indexed pages and parts, in id order: at most `limit` of
    /// them, the first one after `after` (from the first when `None`). A crawl reads the index
    /// a batch at a time through it, so its memory does not grow with the index. The default
    /// reads [`IndexStore::list_pages`]; stores override it to read only the batch.
    async fn page_states(&self, after: Option<&PageId>, limit: usize) -> Result<Vec<PageState>> {
        let mut pages: Vec<IndexedPage> = self
            .list_pages()
            .await?
            .into_iter()
            .filter(|p| after.is_none_or(|after| p.id > *after))
            .collect();
        pages.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(PageState::from_pages(pages.into_iter().take(limit)))
    }

    /// Hands the states the index holds to `each` in id order, a batch at a time (through
    /// [`IndexStore::page_states`]), until `each` returns `false`.
    ///
    /// # Errors
    /// Store failures.
    async fn each_state(&self, each: &mut (dyn FnMut(PageState) -> bool + Send)) -> Result<()> {
        let mut after: Option<PageId> = None;
        loop {
            let batch = self.page_states(after.as_ref(), STATE_BATCH).await?;
            let full = batch.len() == STATE_BATCH;
            after = batch.last().map(|s| s.id.clone());
            for state in batch {
                if !each(state) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The states of those of `ids` the index holds, in any order. The default reads one
    /// record at a time; stores override it to read them in one request.
    async fn page_states_of(&self, ids: &[PageId]) -> Result<Vec<PageState>> {
        let mut pages = Vec::new();
        for id in ids {
            pages.extend(self.page(id).await?);
        }
        Ok(PageState::from_pages(pages))
    }

    /// Hybrid search: BM25 over the text and k-NN over the vectors, fused.
    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>>;

    /// Returns what the index holds.
    async fn stats(&self) -> Result<IndexStats>;

    /// Records that a full sync completed at `unix_ms`.
    async fn record_sync(&self, unix_ms: u64) -> Result<()>;

    /// Notes that permissions changed (a restriction, a move, a space's permissions): a
    /// crawl that read rules before, in any process sharing the store, reads them again rather
    /// than write what it read. Counts the changes, so no clock is compared. Stores shared
    /// between processes must override this and [`IndexStore::rule_changes`]; the default notes
    /// nothing.
    async fn note_rules_changed(&self) -> Result<()> {
        Ok(())
    }

    /// How many changes [`IndexStore::note_rules_changed`] has noted.
    async fn rule_changes(&self) -> Result<u64> {
        Ok(0)
    }

    /// Makes every write so far visible to searches from any process. Stores that search
    /// what they have written at once (the default) do nothing; near-real-time engines refresh.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// How calls to a remote store have gone, for metrics and readiness; `None` (the default)
    /// for stores that make no remote calls.
    fn health(&self) -> Option<crate::CallHealth> {
        None
    }

    /// What the store is, for messages an operator reads (`opensearch`, `embedded`): never an
    /// address or a credential.
    fn kind(&self) -> &'static str {
        "index"
    }
}
