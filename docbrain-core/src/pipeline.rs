//! The one ingest pipeline both binaries and library users call.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::access::{Caller, Reader};
use crate::chunk::EmbeddedChunk;
use crate::chunker::Chunker;
use crate::embedder::Embedder;
use crate::error::{Error, ErrorKind, Result};
use crate::fetcher::{Fetcher, Scope};
use crate::page::{Fetched, NotIndexed, Page, PageId, PageSummary, Part, PartRef, PartText};
use crate::readers::ReaderCache;
use crate::search::{SearchFilter, SearchHit, SearchRequest, MAX_K};
use crate::store::{IndexStore, IndexedPage, PageState, ReplaceOutcome, STATE_BATCH};
use crate::text::printable;

/// Settings of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOptions {
    /// A sync refuses to delete more than this share (0.0–1.0) of a space's indexed pages at
    /// once, since a truncated listing looks exactly like a mass deletion.
    pub max_delete_fraction: f64,
    /// Deleting up to this many pages of a space always passes the guard, whatever the share
    /// (a space of one or two pages can lose one).
    pub delete_floor: usize,
    /// Lifts the mass-deletion guard for one run.
    pub allow_mass_delete: bool,
    /// How many chunks are sent to the embedder at once.
    pub embed_batch_size: usize,
    /// How many changed pages a sync fetches and indexes at once.
    pub fetch_concurrency: usize,
    /// How long a user's groups, once looked up for a search, are trusted
    /// (`PERMISSION_CACHE_TTL`): the bound on how stale a membership change can be.
    pub reader_ttl: Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            max_delete_fraction: 0.5,
            delete_floor: 2,
            allow_mass_delete: false,
            embed_batch_size: 16,
            fetch_concurrency: 4,
            reader_ttl: Duration::from_secs(300),
        }
    }
}

/// What happened to one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOutcome {
    /// The page's chunks were replaced.
    Updated {
        /// Chunks the page now has.
        chunks: u32,
        /// Chunks that were embedded.
        embedded: u32,
        /// Chunks whose vectors were reused.
        reused: u32,
    },
    /// The index already held this version and content.
    Unchanged,
    /// The index holds a newer version; nothing was written.
    Stale {
        /// The version the index holds.
        held: u64,
        /// The version that arrived.
        fetched: u64,
    },
    /// The page was removed from the index.
    Deleted {
        /// Chunks removed.
        chunks: u64,
    },
    /// The page is gone or not live, and the index did not hold it.
    Absent,
    /// The source returned an older version than asked for (replication lag); nothing was
    /// written. See [`Pipeline::reconcile_at_least`].
    Behind {
        /// The version the source returned.
        fetched: u64,
        /// The version asked for.
        wanted: u64,
    },
}

/// Whom an access change reaches beyond one page ([`Pipeline::pages_reached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    /// Every page below this one (its restrictions or place changed).
    Below(&'a PageId),
    /// Every page of this space (its permissions changed).
    Space(&'a str),
}

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
struct Walk {
    /// A digest of each page listed so far ([`Walk::key`]): 16 bytes a page.
    seen: HashSet<u128>,
    spaces: BTreeSet<String>,
    truncated: bool,
}

impl Walk {
    fn key(id: &PageId) -> u128 {
        let mut h = crate::hash::StableHasher::new();
        h.field(id.as_str());
        h.finish()
    }

    /// Admits a listed page the first time the listing names it, within the scope's page
    /// limit (past it, the listing is `stop`ped).
    fn admit(
        &mut self,
        summary: PageSummary,
        scope: &Scope,
        stop: &AtomicBool,
    ) -> Option<PageSummary> {
        let key = Self::key(&summary.id);
        if self.seen.contains(&key) {
            return None;
        }
        if scope
            .page_limit
            .is_some_and(|limit| self.seen.len() >= limit)
        {
            self.truncated = true;
            stop.store(true, Ordering::Relaxed);
            return None;
        }
        self.seen.insert(key);
        if scope.spaces.is_empty() {
            self.spaces.insert(summary.space_key.clone());
        }
        Some(summary)
    }

    /// Whether the listing named page `id`.
    fn listed(&self, id: &PageId) -> bool {
        self.seen.contains(&Self::key(id))
    }
}

/// What the index holds of one listed page: its state, whether the parts it lists have their
/// records, and their chunks.
struct Held {
    state: PageState,
    parts_present: bool,
    part_chunks: u64,
}

impl Held {
    /// The chunks of the page and its parts.
    fn chunks(&self) -> u64 {
        u64::from(self.state.chunk_count) + self.part_chunks
    }
}

/// What the index holds of a crawled space after the listing.
#[derive(Default)]
struct SpaceHeld {
    /// The pages it holds.
    pages: usize,
    /// Whether one of them is this source's (not only records from before sources were kept).
    ours: bool,
    /// Those the listing did not name.
    doomed: Vec<PageState>,
}

/// What the index holds that the listing did not speak for.
struct Unlisted {
    spaces: BTreeMap<String, SpaceHeld>,
    /// Parts out of step with their page.
    parts: Vec<PageState>,
}

/// Decides each listed page of a batch against what the index holds of the batch.
fn decide(batch: Vec<Result<PageSummary>>, mut held: HashMap<PageId, Held>) -> Vec<Step> {
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
fn tally(
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
struct Began {
    started_ms: u64,
    rule_changes: u64,
}

/// One listed entry: a failed listing or index read, a page to fetch (with the chunks the
/// index held of it), or one held at its version and parts (its rule is checked).
enum Step {
    Fail(Error),
    Fetch(PageSummary, u64),
    Access(PageSummary, Box<Held>),
}

/// The source of a search-only pipeline.
#[derive(Debug)]
struct NoSource;

#[async_trait::async_trait]
impl Fetcher for NoSource {
    fn list<'a>(&'a self, _: &'a Scope) -> crate::fetcher::PageStream<'a> {
        Box::pin(futures::stream::once(async { Err(no_source()) }))
    }
    async fn fetch(&self, _: &PageId) -> Result<Fetched> {
        Err(no_source())
    }
}

fn no_source() -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        "this pipeline was built for search only: configure a source to sync",
    )
}

/// Fetch → chunk → embed → index, for one page or a whole crawl.
///
/// Cheap to clone; holds its parts as `Arc<dyn …>`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    fetcher: Arc<dyn Fetcher>,
    chunker: Arc<dyn Chunker>,
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn IndexStore>,
    options: PipelineOptions,
    readers: Arc<ReaderCache>,
    /// The source's [`Fetcher::source_id`], asked once: records keep it.
    source: Arc<str>,
    /// How attachments have gone since the pipeline was built.
    attachments: Arc<AttachmentTally>,
}

impl Pipeline {
    /// Returns a pipeline over the given parts, binding the store to the embedder's model.
    ///
    /// # Errors
    /// When the store was built with another model or dimension.
    pub async fn new(
        fetcher: Arc<dyn Fetcher>,
        chunker: Arc<dyn Chunker>,
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn IndexStore>,
    ) -> Result<Self> {
        store.bind_model(&embedder.model()).await?;
        Ok(Self {
            source: fetcher.source_id().into(),
            fetcher,
            chunker,
            embedder,
            store,
            options: PipelineOptions::default(),
            readers: Arc::default(),
            attachments: Arc::default(),
        })
    }

    /// Returns a pipeline for search only: it has no source, so [`Pipeline::sync`] and
    /// [`Pipeline::reconcile`] fail with [`ErrorKind::InvalidConfig`].
    ///
    /// # Errors
    /// When the store was built with another model or dimension.
    pub async fn searcher(embedder: Arc<dyn Embedder>, store: Arc<dyn IndexStore>) -> Result<Self> {
        Self::new(
            Arc::new(NoSource),
            Arc::new(crate::chunker::MarkdownChunker::default()),
            embedder,
            store,
        )
        .await
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: PipelineOptions) -> Self {
        self.options = options;
        self
    }

    /// Returns the index store.
    pub fn store(&self) -> &Arc<dyn IndexStore> {
        &self.store
    }

    /// Returns the embedder.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// How attachments have gone since the pipeline was built: read and indexed, skipped,
    /// failed (each failure is logged, named in its page's record and tried again at the next
    /// crawl).
    pub fn attachment_counts(&self) -> AttachmentCounts {
        let t = &self.attachments;
        AttachmentCounts {
            indexed: t.indexed.load(Ordering::Relaxed),
            skipped: t.skipped.load(Ordering::Relaxed),
            skipped_too_large: t.too_large.load(Ordering::Relaxed),
            failed: t.failed.load(Ordering::Relaxed),
        }
    }

    /// Brings one page of the index in line with its source: a live page is upserted with its
    /// parts, a page that is gone, trashed or otherwise not current loses all its chunks and
    /// parts. The id of a part the index holds (a comment) brings its page in line.
    ///
    /// # Errors
    /// Fetch, embedding or store failures; the index is left as it was.
    pub async fn reconcile(&self, id: &PageId) -> Result<PageOutcome> {
        self.reconcile_at_least(id, None).await
    }

    /// Like [`Pipeline::reconcile`], but when the source returns a current page older than
    /// version `wanted` (an event named a version the API does not serve yet), nothing is
    /// written and the answer is [`PageOutcome::Behind`]: ask again later.
    ///
    /// # Errors
    /// Fetch, embedding or store failures; the index is left as it was.
    pub async fn reconcile_at_least(
        &self,
        id: &PageId,
        wanted: Option<u64>,
    ) -> Result<PageOutcome> {
        // A part (a comment) is brought in line with its page.
        let part_of = self.store.page(id).await?.and_then(|held| held.parent);
        let id = part_of.as_ref().unwrap_or(id);
        let read_ms = crate::text::now_ms();
        let fetched = self.fetcher.fetch(id).await?;
        if let (Fetched::Page(page), Some(wanted)) = (&fetched, wanted) {
            if page.status.is_indexed() && page.version < wanted {
                debug!(page_id = %id, fetched = page.version, wanted, "the source is behind the version asked for");
                return Ok(PageOutcome::Behind {
                    fetched: page.version,
                    wanted,
                });
            }
        }
        self.apply_read_at(id, fetched, read_ms).await
    }

    /// Brings page `id` in line with a state already fetched from the source (what
    /// [`Pipeline::reconcile`] does after its fetch).
    ///
    /// # Errors
    /// Embedding or store failures; the index is left as it was.
    pub async fn apply(&self, id: &PageId, fetched: Fetched) -> Result<PageOutcome> {
        self.apply_read_at(id, fetched, crate::text::now_ms()).await
    }

    /// [`Pipeline::apply`] of a state whose fetch began at `read_ms`.
    async fn apply_read_at(
        &self,
        id: &PageId,
        fetched: Fetched,
        read_ms: u64,
    ) -> Result<PageOutcome> {
        match fetched {
            Fetched::Page(page) => self.upsert_read_at(page, read_ms).await,
            Fetched::Gone => self.remove(id, "is gone").await,
        }
    }

    /// Returns the source.
    pub fn fetcher(&self) -> &Arc<dyn Fetcher> {
        &self.fetcher
    }

    /// Indexes `page` as given: chunks it, embeds the chunks whose content changed and replaces
    /// the page's chunks atomically. A page that is not current is removed instead.
    ///
    /// # Errors
    /// Embedding or store failures; the index is left as it was.
    pub async fn upsert(&self, page: Page) -> Result<PageOutcome> {
        self.upsert_read_at(page, crate::text::now_ms()).await
    }

    /// [`Pipeline::upsert`] of a page whose rule was read from `read_ms` on.
    async fn upsert_read_at(&self, page: Page, read_ms: u64) -> Result<PageOutcome> {
        if !page.status.is_indexed() {
            let why = format!("is {:?}", page.status).to_lowercase();
            return self.remove(&page.id, &why).await;
        }
        let held = self.store.page(&page.id).await?;
        if let Some(held) = held.as_ref().filter(|h| h.version > page.version) {
            debug!(page_id = %page.id, held = held.version, fetched = page.version, "skipped stale version");
            return Ok(PageOutcome::Stale {
                held: held.version,
                fetched: page.version,
            });
        }
        // Parts first: the page's record then names only parts the index holds.
        let held_refs = held.as_ref().map_or(&[][..], |h| h.parts.as_slice());
        let (refs, parts) = self.write_parts(&page, held_refs, read_ms).await?;
        // Writing parts may take a while (downloads, extraction): the page is judged against
        // its record as it is now, so a later read written meanwhile is seen to have won.
        let held = self.store.page(&page.id).await?;
        let lost = held.as_ref().is_some_and(|h| {
            IndexedPage {
                version: page.version,
                access_read_ms: read_ms,
                ..h.clone()
            }
            .is_stale_against(h.version, h.access_read_ms)
        });
        let outcome = if lost {
            PageOutcome::Stale {
                held: held.as_ref().map_or(page.version, |h| h.version),
                fetched: page.version,
            }
        } else {
            self.write_record(&page, held.as_ref(), None, refs, read_ms)
                .await?
        };
        if matches!(outcome, PageOutcome::Stale { .. }) {
            // A later read of the page won: the parts this call wrote carry a rule older than
            // its, or are ones it no longer lists. They go, unless the winner wrote them since;
            // what the winner lists stays.
            self.delete_own_parts(&page.id, &parts.written_ids, read_ms)
                .await?;
            return Ok(outcome);
        }
        let gone: Vec<PartRef> = held
            .iter()
            .flat_map(|h| &h.parts)
            .filter(|r| !page.parts.iter().any(|p| p.id == r.id))
            .cloned()
            .collect();
        self.delete_parts(&page.id, &gone).await?;
        Ok(match outcome {
            PageOutcome::Updated {
                chunks,
                embedded,
                reused,
            } => PageOutcome::Updated {
                chunks: chunks + parts.chunks,
                embedded: embedded + parts.embedded,
                reused: reused + parts.chunks - parts.embedded,
            },
            PageOutcome::Unchanged if !parts.written_ids.is_empty() => {
                let chunks = held.map_or(0, |h| h.chunk_count);
                PageOutcome::Updated {
                    chunks: chunks + parts.chunks,
                    embedded: parts.embedded,
                    reused: chunks + parts.chunks - parts.embedded,
                }
            }
            other => other,
        })
    }

    /// Writes the records of `page`'s parts (a part whose version, rule and place the index
    /// holds is left as it is; a changed one re-embeds only its own changed chunks), and
    /// returns what the page's record keeps of them. A part read on demand (an attachment) is
    /// read only when the index does not hold its version; one that is skipped or fails to be
    /// read has no record (the old one goes), and is named so in the page's record.
    async fn write_parts(
        &self,
        page: &Page,
        held_refs: &[PartRef],
        read_ms: u64,
    ) -> Result<(Vec<PartRef>, PartCounts)> {
        let mut refs = Vec::with_capacity(page.parts.len());
        let mut counts = PartCounts::default();
        for part in &page.parts {
            let mut record = part_page(page, part);
            let held = self.store.page(&part.id).await?;
            let mut reference = PartRef {
                id: part.id.clone(),
                version: part.version,
                kind: part.kind,
                not_indexed: None,
            };
            if part.body.is_none() {
                let skipped = held_refs.iter().find(|r| {
                    r.id == part.id
                        && r.version == part.version
                        && matches!(r.not_indexed, Some(NotIndexed::Skipped(_)))
                });
                if let Some(skipped) = skipped {
                    refs.push(skipped.clone());
                    continue;
                }
                if let Some(held) = held.as_ref().filter(|h| holds(h, &record, &page.id)) {
                    counts.chunks += held.chunk_count;
                    refs.push(reference);
                    continue;
                }
                let outcome = self.fetcher.fetch_part(page, part).await;
                let tally = &self.attachments;
                match outcome {
                    Ok(PartText::Text(text)) => {
                        tally.indexed.fetch_add(1, Ordering::Relaxed);
                        record.body = text;
                    }
                    Ok(PartText::Skipped(why)) => {
                        tally.skipped.fetch_add(1, Ordering::Relaxed);
                        if why.contains("ATTACHMENT_MAX_BYTES") {
                            tally.too_large.fetch_add(1, Ordering::Relaxed);
                        }
                        debug!(page_id = %page.id, part = %part.id, "skipped '{}': {why}", printable(&part.title));
                        reference.not_indexed = Some(NotIndexed::Skipped(why));
                    }
                    // Whatever the reason (a refused or blocked download included), one file
                    // fails alone: the page and its rule are still written.
                    Err(e) => {
                        warn!(page_id = %page.id, part = %part.id, error = %e, "could not read '{}' of page '{}'; tried again at the next crawl", printable(&part.title), printable(&page.title));
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        reference.not_indexed = Some(NotIndexed::Failed(e.to_string()));
                    }
                }
                if reference.not_indexed.is_some() {
                    if held.is_some() {
                        self.store.delete_page(&part.id).await?;
                    }
                    refs.push(reference);
                    continue;
                }
            }
            let held_chunks = held.as_ref().map_or(0, |h| h.chunk_count);
            match self
                .write_record(&record, held.as_ref(), Some(&page.id), Vec::new(), read_ms)
                .await?
            {
                PageOutcome::Updated {
                    chunks, embedded, ..
                } => {
                    counts.written_ids.push(reference.clone());
                    counts.chunks += chunks;
                    counts.embedded += embedded;
                }
                PageOutcome::Stale { .. }
                    if held.as_ref().is_some_and(|h| {
                        h.version > record.version
                            && h.access_read_ms < read_ms
                            && h.parent.as_ref() == Some(&page.id)
                            && (h.access != record.access || h.ancestor_ids != record.ancestor_ids)
                    }) =>
                {
                    // The index holds a newer version under a rule read before this one (this
                    // read lags on the part, not on the rule): it goes rather than stay under
                    // the older rule; the page lists this older version, so the next crawl
                    // finds the newer one listed and reads it.
                    self.store.delete_page(&part.id).await?;
                }
                _ => counts.chunks += held_chunks,
            }
            refs.push(reference);
        }
        Ok((refs, counts))
    }

    /// Writes the record of `page` (a part of page `parent`, or a page with parts `parts`):
    /// chunks it, embeds the chunks whose content the index does not hold and replaces its
    /// chunks atomically; nothing when the index holds the same version, content, rule, place
    /// and parts.
    async fn write_record(
        &self,
        page: &Page,
        held: Option<&IndexedPage>,
        parent: Option<&PageId>,
        parts: Vec<PartRef>,
        read_ms: u64,
    ) -> Result<PageOutcome> {
        if let Some(held) = held {
            if held.version > page.version {
                return Ok(PageOutcome::Stale {
                    held: held.version,
                    fetched: page.version,
                });
            }
            if held.version == page.version && held.content_hash == page.content_hash() {
                if held.access == page.access
                    && held.ancestor_ids == page.ancestor_ids
                    && held.parts == parts
                    && held.parent.as_ref() == parent
                {
                    return Ok(PageOutcome::Unchanged);
                }
                if held.access != page.access {
                    info!(page_id = %page.id, "permissions of '{}' changed; re-indexing without embedding", printable(&page.title));
                }
            }
        }
        let chunks = self.chunker.chunk(page);
        let mut cached: HashMap<String, Vec<f32>> = if held.is_some() {
            self.store
                .chunk_vectors(&page.id)
                .await?
                .into_iter()
                .collect()
        } else {
            HashMap::new()
        };
        let missing: Vec<usize> = (0..chunks.len())
            .filter(|&i| !cached.contains_key(&chunks[i].content_hash))
            .collect();
        let mut fresh: HashMap<usize, Vec<f32>> = HashMap::new();
        let dimension = self.embedder.model().dimension;
        for batch in missing.chunks(self.options.embed_batch_size.max(1)) {
            let texts: Vec<String> = batch.iter().map(|&i| chunks[i].embedding_text()).collect();
            let vectors = self.embedder.embed(&texts).await?;
            if vectors.len() != texts.len() || vectors.iter().any(|v| v.len() != dimension) {
                return Err(Error::new(
                    ErrorKind::Embedding,
                    format!(
                        "embedder returned {} vectors for {} texts (expected dimension {dimension})",
                        vectors.len(),
                        texts.len()
                    ),
                ));
            }
            fresh.extend(batch.iter().copied().zip(vectors));
        }
        let embedded = missing.len() as u32;
        let total = chunks.len() as u32;
        let mut out = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.into_iter().enumerate() {
            let vector = match fresh.remove(&i) {
                Some(v) => v,
                None => cached.get(&chunk.content_hash).cloned().ok_or_else(|| {
                    Error::new(ErrorKind::Embedding, "a reused vector went missing")
                })?,
            };
            out.push(EmbeddedChunk { chunk, vector });
        }
        cached.clear();
        let record = IndexedPage {
            access_read_ms: read_ms,
            source: self.source.to_string(),
            parent: parent.cloned(),
            parts,
            ..IndexedPage::of(page, total)
        };
        match self.store.replace_page(&record, &out).await? {
            ReplaceOutcome::Replaced => {
                match parent {
                    None => info!(
                        page_id = %page.id, space = %page.space_key, version = page.version,
                        chunks = total, embedded,
                        "Updated page '{}' — {total} chunks re-indexed", printable(&page.title)
                    ),
                    Some(parent) => debug!(
                        page_id = %parent, part = %page.id, version = page.version,
                        chunks = total, embedded,
                        "Updated '{}' of the page — {total} chunks re-indexed", printable(&page.title)
                    ),
                }
                Ok(PageOutcome::Updated {
                    chunks: total,
                    embedded,
                    reused: total - embedded,
                })
            }
            ReplaceOutcome::Stale { held } => Ok(PageOutcome::Stale {
                held,
                fetched: page.version,
            }),
        }
    }

    async fn remove(&self, id: &PageId, why: &str) -> Result<PageOutcome> {
        let Some(held) = self.store.page(id).await? else {
            debug!(page_id = %id, "page {why} and is not indexed");
            return Ok(PageOutcome::Absent);
        };
        // Parts first: a part never outlives its page's record, even for a moment.
        self.delete_parts(id, &held.parts).await?;
        let chunks = self.store.delete_page(id).await?;
        info!(page_id = %id, chunks, "Deleted page '{}' ({why}) — {chunks} chunks removed", printable(&held.title));
        Ok(PageOutcome::Deleted { chunks })
    }

    /// Deletes the records of parts `parts` of page `page` that a write of a read begun at
    /// `read_ms` put there and no later write has replaced.
    async fn delete_own_parts(&self, page: &PageId, parts: &[PartRef], read_ms: u64) -> Result<()> {
        for part in parts {
            let held = self.store.page(&part.id).await?;
            let own = held.is_some_and(|h| {
                h.parent.as_ref() == Some(page)
                    && h.version == part.version
                    && h.access_read_ms == read_ms
            });
            if own {
                self.store.delete_page(&part.id).await?;
                debug!(page_id = %page, part = %part.id, "removed a part a later read of its page replaced");
            }
        }
        Ok(())
    }

    /// Deletes the records of parts `parts` of page `page`: each only while it is still that
    /// page's (an attachment moved to another page stays with it).
    async fn delete_parts(&self, page: &PageId, parts: &[PartRef]) -> Result<()> {
        for part in parts {
            let held = self.store.page(&part.id).await?;
            if held.is_some_and(|h| h.parent.as_ref() == Some(page)) {
                let chunks = self.store.delete_page(&part.id).await?;
                debug!(page_id = %page, part = %part.id, chunks, "removed a part of the page");
            }
        }
        Ok(())
    }

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
    /// delete more than [`PipelineOptions::max_delete_fraction`] of a space.
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
        let stop = AtomicBool::new(false);
        let mut listing = self.walk(scope, progress, &mut walk, &stop, crawl);
        while let Some(done) = listing.next().await {
            let (summary, outcome, held_chunks) = done?;
            report.pages_seen += 1;
            progress.page_done(&summary, &outcome);
            tally(&mut report, &summary, outcome, held_chunks)?;
        }
        drop(listing);
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

    /// The listing, each page compared with the index and brought in line: the page, its
    /// outcome and the chunks the index held of it. The index is read a batch of listed pages
    /// at a time, so the walk holds what it read of the index for one batch, and one digest
    /// per listed page.
    fn walk<'a>(
        &'a self,
        scope: &'a Scope,
        progress: &'a dyn SyncProgress,
        walk: &'a mut Walk,
        stop: &'a AtomicBool,
        crawl: Began,
    ) -> BoxStream<'a, Result<(PageSummary, Result<PageOutcome>, u64)>> {
        self.fetcher
            .list(scope)
            .take_while(|_| futures::future::ready(!stop.load(Ordering::Relaxed)))
            .filter_map(move |item| {
                futures::future::ready(match item {
                    Ok(summary) => {
                        progress.listed(&summary);
                        walk.admit(summary, scope, stop).map(Ok)
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        Some(Err(e))
                    }
                })
            })
            .ready_chunks(STATE_BATCH)
            .then(|batch| self.decide(batch))
            .flat_map(futures::stream::iter)
            .map(move |step| self.take(step, crawl))
            .buffer_unordered(self.options.fetch_concurrency.max(1))
            .boxed()
    }

    /// Whether an indexed record is this crawl's to keep in step: its source's, or one from
    /// before sources were kept.
    fn is_mine(&self, state: &PageState) -> bool {
        state.source == *self.source || state.source.is_empty()
    }

    /// Decides, for a batch of listed pages, which the index holds at their listed version
    /// and parts (their rule is then checked) and which are fetched.
    async fn decide(&self, batch: Vec<Result<PageSummary>>) -> Vec<Step> {
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
    async fn held_of(&self, ids: &[PageId]) -> Result<HashMap<PageId, Held>> {
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
    async fn take(
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

    /// Reads the index after the listing, a batch at a time: per crawled space, how many pages
    /// it holds and which the listing did not name; and the parts out of step with their page.
    /// What it keeps grows with what is to be deleted or repaired, not with the index.
    async fn unlisted(&self, scope: &Scope, walk: &Walk) -> Result<Unlisted> {
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
    async fn out_of_step(&self, parts: Vec<PageState>) -> Result<Vec<PageState>> {
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
    async fn delete_unlisted_in(
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
    async fn sweep_parts(&self, parts: &[PageState], crawl: Began) -> Result<()> {
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

    /// Brings a listed page whose version or rule the index does not hold in line: its body
    /// fetched, its rule the listing's where the source keeps it.
    ///
    /// Such a rule, or a layer the crawl read earlier, is as old as the crawl (`crawl.started_ms`):
    /// the write is stamped so. When permissions changed since the crawl began (noted in the
    /// store by a webhook, [`Pipeline::note_rules_changed`]), before or while the page is read,
    /// the page is read again exactly; if that fails, the page is taken out of the index rather
    /// than left with a rule that may be too open.
    async fn reconcile_listed(&self, summary: &PageSummary, crawl: Began) -> Result<PageOutcome> {
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
            Ok(outcome) => Ok(outcome),
            Err(e) => self.withdraw(&summary.id, e).await,
        }
    }

    /// Takes page `id` out of the index after `why` kept it from being read exactly, and
    /// returns `why`: the next crawl or event brings it back.
    async fn withdraw(&self, id: &PageId, why: Error) -> Result<PageOutcome> {
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

    /// Reads again who may read a page whose version the index holds, and re-indexes it (with
    /// no embedding) only when that changed.
    async fn recheck_access(&self, held: &PageState) -> Result<PageOutcome> {
        if self.fetcher.read_access(&held.id).await? == *held.access {
            return Ok(PageOutcome::Unchanged);
        }
        self.reconcile(&held.id).await
    }

    /// Deletes a page the listing no longer names, once a direct fetch confirms it is gone (a
    /// listing over a space that changes under it can skip live pages), and only while the
    /// index holds the version the crawl read (a webhook may have restored it since).
    async fn delete_unlisted(&self, page: &PageState, report: &mut SyncReport) -> Result<()> {
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

    /// Answers a question with the `k` best chunks (hybrid BM25 + vector search) of the pages
    /// `filter.caller` may read: the one search path of every front door.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] for an empty question or `k` outside 1..=[`MAX_K`];
    /// [`ErrorKind::NotFound`] for a space the caller can read nothing in, or a user the source
    /// does not know; embedding or store failures.
    pub async fn search(
        &self,
        query: &str,
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<SearchHit>> {
        let text = query.trim();
        if text.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "the search query is empty",
            ));
        }
        if !(1..=MAX_K).contains(&k) {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("k must be from 1 to {MAX_K}"),
            ));
        }
        let reader = self.reader_for(&filter.caller).await?;
        let mut vectors = self.embedder.embed(&[text.to_string()]).await?;
        let vector = vectors.pop().ok_or_else(|| {
            Error::new(
                ErrorKind::Embedding,
                "embedder returned no vector for the query",
            )
        })?;
        let hits = self
            .store
            .search(&SearchRequest {
                text: text.to_string(),
                vector,
                k,
                filter: filter.clone(),
                reader,
            })
            .await?;
        if let (true, Some(space)) = (hits.is_empty(), &filter.space_key) {
            self.known_space(space, &filter.caller).await?;
        }
        Ok(hits)
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

/// How attachments have gone, counted as they go.
#[derive(Debug, Default)]
struct AttachmentTally {
    indexed: AtomicU64,
    skipped: AtomicU64,
    too_large: AtomicU64,
    failed: AtomicU64,
}

/// How attachments have gone since a [`Pipeline`] was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentCounts {
    /// Read and indexed (new, or a new version).
    pub indexed: u64,
    /// Skipped: too large, or of a type without text.
    pub skipped: u64,
    /// Of those skipped, the ones over `ATTACHMENT_MAX_BYTES` (the rest have no text to read).
    pub skipped_too_large: u64,
    /// Failed: a damaged or hostile file, a download error.
    pub failed: u64,
}

/// What writing a page's parts did.
#[derive(Debug, Default, Clone)]
struct PartCounts {
    /// The parts whose records were written.
    written_ids: Vec<PartRef>,
    /// Chunks the parts have now.
    chunks: u32,
    /// Chunks embedded.
    embedded: u32,
}

/// Whether `held`, a part's record, is `record` (its page's part at this version) under the
/// page's current rule and place: then nothing is read again.
fn holds(held: &IndexedPage, record: &Page, page: &PageId) -> bool {
    held.version == record.version
        && held.parent.as_ref() == Some(page)
        && held.access == record.access
        && held.ancestor_ids == record.ancestor_ids
        && held.ancestors == record.ancestors
        && held.title == record.title
        && held.url == record.url
}

/// The page a part of `page` is indexed as: its own id, title, version, link and text, under
/// the page (the page's breadcrumb and title above it, the page among its ancestors) with the
/// page's read rule.
fn part_page(page: &Page, part: &Part) -> Page {
    let mut ancestors = page.ancestors.clone();
    ancestors.push(page.title.clone());
    let mut ancestor_ids = page.ancestor_ids.clone();
    ancestor_ids.push(page.id.clone());
    Page {
        version: part.version,
        url: part.url.clone(),
        ancestors,
        ancestor_ids,
        access: page.access.clone(),
        ..Page::new(
            part.id.clone(),
            page.space_key.clone(),
            part.title.clone(),
            part.body.clone().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::chunker::MarkdownChunker;
    use crate::fetcher::PageStream;
    use crate::memory::MemoryStore;
    use crate::page::PageStatus;

    /// A source held in memory, counting body fetches.
    #[derive(Debug, Default)]
    struct Source {
        /// Its [`Fetcher::source_id`].
        name: String,
        pages: Mutex<BTreeMap<PageId, Page>>,
        fetches: AtomicUsize,
        fail_listing_after: Option<usize>,
        failing_page: Option<PageId>,
        versions_in_listing: bool,
        /// A live page the listing skips (paging over a space that changes under it).
        skipped_in_listing: Option<PageId>,
    }

    impl Source {
        fn put(&self, page: Page) {
            self.pages.lock().unwrap().insert(page.id.clone(), page);
        }
        fn edit(&self, id: &str, f: impl FnOnce(&mut Page)) {
            let mut pages = self.pages.lock().unwrap();
            let page = pages.get_mut(&PageId::from(id)).unwrap();
            f(page);
            page.version += 1;
        }
    }

    #[async_trait]
    impl Fetcher for Source {
        fn source_id(&self) -> String {
            self.name.clone()
        }

        fn list<'a>(&'a self, _scope: &'a Scope) -> PageStream<'a> {
            let mut items: Vec<Result<PageSummary>> = self
                .pages
                .lock()
                .unwrap()
                .values()
                .filter(|p| p.status == PageStatus::Current)
                .filter(|p| self.skipped_in_listing.as_ref() != Some(&p.id))
                .map(|p| {
                    Ok(PageSummary {
                        id: p.id.clone(),
                        space_key: p.space_key.clone(),
                        title: p.title.clone(),
                        version: self.versions_in_listing.then_some(p.version),
                        access: None,
                        parts: None,
                    })
                })
                .collect();
            if let Some(n) = self.fail_listing_after {
                items.truncate(n);
                items.push(Err(Error::new(
                    ErrorKind::Transport,
                    "listing connection reset",
                )));
            }
            Box::pin(futures::stream::iter(items))
        }

        async fn fetch(&self, id: &PageId) -> Result<Fetched> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.failing_page.as_ref() == Some(id) {
                return Err(Error::new(ErrorKind::Decode, "malformed page body"));
            }
            Ok(match self.pages.lock().unwrap().get(id) {
                Some(p) => Fetched::Page(p.clone()),
                None => Fetched::Gone,
            })
        }

        async fn read_access(&self, id: &PageId) -> Result<crate::ReadAccess> {
            Ok(self
                .pages
                .lock()
                .unwrap()
                .get(id)
                .map_or_else(crate::ReadAccess::nobody, |p| p.access.clone()))
        }
    }

    type Letters = crate::testsuite::LetterEmbedder;

    fn page(id: &str, space: &str, title: &str, body: &str) -> Page {
        Page {
            url: Some(format!("https://wiki.example.com/{id}")),
            ..Page::new(id, space, title, body)
        }
    }

    fn long_body() -> String {
        (0..60)
            .map(|s| {
                format!(
                    "## Section {s}\n\nStep {s} drains the node and checks the pods.\n\n\
                     Then it verifies that replicas are healthy before moving on.\n\n"
                )
            })
            .collect()
    }

    struct Fixture {
        source: Arc<Source>,
        embedder: Arc<Letters>,
        store: Arc<MemoryStore>,
        pipeline: Pipeline,
    }

    async fn fixture(source: Source) -> Fixture {
        let source = Arc::new(source);
        for i in 0..4 {
            source.put(page(
                &format!("{i}"),
                "ENG",
                &format!("Page {i}"),
                &format!("Body of page {i}."),
            ));
        }
        source.put(page("big", "ENG", "Node Maintenance", &long_body()));
        let embedder = Arc::new(Letters::default());
        let store = Arc::new(MemoryStore::new());
        let chunker = MarkdownChunker::builder()
            .max_tokens(64)
            .overlap_tokens(8)
            .build()
            .unwrap();
        let pipeline = Pipeline::new(
            source.clone(),
            Arc::new(chunker),
            embedder.clone(),
            store.clone(),
        )
        .await
        .unwrap();
        Fixture {
            source,
            embedder,
            store,
            pipeline,
        }
    }

    /// Another source (a folder) of `pages`, and its pipeline on the fixture's store, synced.
    async fn other_source(f: &Fixture, pages: Vec<Page>) -> (Arc<Source>, Pipeline) {
        let folder = Arc::new(Source {
            name: "local:/docs".into(),
            ..Source::default()
        });
        for p in pages {
            folder.put(p);
        }
        let local = Pipeline::new(
            folder.clone(),
            Arc::new(MarkdownChunker::default()),
            f.embedder.clone(),
            f.store.clone(),
        )
        .await
        .unwrap();
        local.sync(&Scope::all()).await.unwrap();
        (folder, local)
    }

    #[tokio::test]
    async fn a_crawl_keeps_only_its_own_sources_pages_in_step() {
        let f = fixture(Source {
            name: "confluence:http://site/wiki".into(),
            ..Source::default()
        })
        .await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        // A folder indexed into the same store (the demo, then the simulator's crawl).
        let docs = (0..3)
            .map(|i| {
                page(
                    &format!("doc{i}"),
                    "LOCAL",
                    &format!("Doc {i}"),
                    "Folder text.",
                )
            })
            .collect();
        let (folder, local) = other_source(&f, docs).await;
        let count = || async { f.store.list_pages().await.unwrap().len() };
        assert_eq!(count().await, 8);
        // Neither crawl takes the other's pages for gone, nor refuses to delete them.
        for crawl in [&f.pipeline, &local] {
            let report = crawl.sync(&Scope::all()).await.unwrap();
            assert_eq!(report.pages_deleted, 0, "{report:?}");
            assert!(report.refused_deletions.is_empty(), "{report:?}");
            assert_eq!(count().await, 8);
        }
        // A page gone from the folder goes; every page of Confluence stays.
        folder.pages.lock().unwrap().remove(&PageId::from("doc0"));
        let report = local.sync(&Scope::all()).await.unwrap();
        assert_eq!(report.pages_deleted, 1, "{report:?}");
        assert_eq!(count().await, 7);
        let held = f.store.page(&"doc1".into()).await.unwrap().unwrap();
        assert_eq!(held.source, "local:/docs");
    }

    #[tokio::test]
    async fn second_sync_fetches_and_embeds_nothing() {
        let f = fixture(Source {
            versions_in_listing: true,
            ..Source::default()
        })
        .await;
        let first = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!((first.pages_seen, first.pages_updated), (5, 5));
        assert!(first.chunks_embedded >= 50, "{first:?}");
        assert_eq!(f.embedder.embedded() as u64, first.chunks_embedded);
        let fetched = f.source.fetches.load(Ordering::SeqCst);

        let second = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!((second.pages_unchanged, second.chunks_embedded), (5, 0));
        assert_eq!(second.chunks_total, first.chunks_total);
        assert_eq!(
            f.source.fetches.load(Ordering::SeqCst),
            fetched,
            "no body fetched"
        );
        assert!(f.store.stats().await.unwrap().last_sync_ms.is_some());
    }

    #[tokio::test]
    async fn a_crawl_catches_a_permission_only_change_and_embeds_nothing() {
        let f = fixture(Source {
            versions_in_listing: true,
            ..Source::default()
        })
        .await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        let embedded = f.embedder.embedded();
        let fetched = f.source.fetches.load(Ordering::SeqCst);
        let restricted = crate::ReadAccess::of([[crate::Principal::Group("hr".into())].into()]);
        // Confluence keeps the version when restrictions change.
        f.source
            .pages
            .lock()
            .unwrap()
            .get_mut(&"big".into())
            .unwrap()
            .access = restricted.clone();

        let report = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(
            (report.pages_updated, report.pages_unchanged),
            (1, 4),
            "{report:?}"
        );
        assert_eq!(report.chunks_embedded, 0);
        assert_eq!(f.embedder.embedded(), embedded, "nothing embedded");
        assert_eq!(
            f.source.fetches.load(Ordering::SeqCst),
            fetched + 1,
            "one body fetched"
        );
        let held = f.store.page(&"big".into()).await.unwrap().unwrap();
        assert_eq!(held.access, restricted);
        let hits = |caller| {
            let filter = SearchFilter::for_caller(caller);
            let pipeline = f.pipeline.clone();
            async move {
                pipeline
                    .search("drains the node", 3, &filter)
                    .await
                    .unwrap()
            }
        };
        for caller in [Caller::Anonymous, Caller::User("hana".into())] {
            // The default source knows no groups: nobody here is in hr.
            let seen = hits(caller.clone()).await;
            assert!(!seen.is_empty(), "{caller:?}");
            assert!(
                seen.iter().all(|h| h.page_id.as_str() != "big"),
                "{caller:?}: {seen:?}"
            );
        }
        let everything = hits(Caller::Unfiltered).await;
        assert_eq!(everything[0].page_id.as_str(), "big");
    }

    #[tokio::test]
    async fn editing_one_paragraph_of_a_long_page_embeds_at_most_two_chunks() {
        let f = fixture(Source::default()).await;
        let first = f.pipeline.sync(&Scope::all()).await.unwrap();
        let big = f.store.page(&"big".into()).await.unwrap().unwrap();
        assert!(big.chunk_count >= 50, "{big:?}");
        f.source.edit("big", |p| {
            p.body = p.body.replace(
                "Step 31 drains the node",
                "Step 31 cordons, then drains the node",
            );
        });
        let second = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(second.pages_updated, 1, "{second:?}");
        assert!(second.chunks_embedded <= 2, "{second:?}");
        assert_eq!(
            second.chunks_embedded + second.chunks_reused,
            u64::from(big.chunk_count)
        );
        assert_eq!(second.chunks_total, first.chunks_total);
        let hits = f
            .pipeline
            .search("cordons", 1, &SearchFilter::default())
            .await
            .unwrap();
        assert!(hits[0].text.contains("cordons, then drains"), "{hits:?}");
    }

    #[tokio::test]
    async fn pages_gone_from_the_listing_are_deleted() {
        let f = fixture(Source::default()).await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        f.source.pages.lock().unwrap().remove(&PageId::from("2"));
        let report = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(report.pages_deleted, 1);
        assert!(f.store.page(&"2".into()).await.unwrap().is_none());
        let hits = f
            .pipeline
            .search("Body of page 2", 10, &SearchFilter::default())
            .await
            .unwrap();
        assert!(!hits.is_empty(), "the other pages still answer");
        assert!(hits.iter().all(|h| h.page_id.as_str() != "2"));
    }

    #[tokio::test]
    async fn a_crawl_over_several_batches_of_the_index_deletes_exactly_the_unlisted() {
        let f = fixture(Source::default()).await;
        // More pages than one batch of the index holds, in two spaces, so the listing and the
        // pass after it each read the index in several batches.
        let n = 2 * STATE_BATCH + 500;
        for i in 0..n {
            let space = if i % 2 == 0 { "ENG" } else { "OPS" };
            let id = format!("p{i:05}");
            f.source.put(page(&id, space, &id, &format!("Body {id}.")));
        }
        let first = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(first.pages_updated as usize, n + 5);
        let gone: Vec<PageId> = (0..n)
            .step_by(97)
            .map(|i| PageId::new(format!("p{i:05}")))
            .collect();
        for id in &gone {
            f.source.pages.lock().unwrap().remove(id);
        }
        let again = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert!(again.is_clean(), "{again:?}");
        assert_eq!(again.pages_deleted as usize, gone.len());
        assert_eq!(again.pages_unchanged as usize, n + 5 - gone.len());
        assert_eq!(again.pages_updated, 0);
        let stats = f.store.stats().await.unwrap();
        assert_eq!(stats.pages as usize, n + 5 - gone.len());
        for id in &gone {
            assert!(f.store.page(id).await.unwrap().is_none(), "{id} deleted");
        }
        assert!(f.store.page(&"p00001".into()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_access_change_reaches_only_this_sources_pages_below_it_or_in_its_space() {
        let f = fixture(Source {
            name: "confluence:http://site/wiki".into(),
            ..Source::default()
        })
        .await;
        f.source.edit("1", |p| p.ancestor_ids = vec!["0".into()]);
        f.source
            .edit("2", |p| p.ancestor_ids = vec!["0".into(), "1".into()]);
        f.pipeline.sync(&Scope::all()).await.unwrap();
        // Another source's page in a space of the same key, "below" page 0.
        let mut doc = page("doc", "ENG", "Doc", "Folder text.");
        doc.ancestor_ids = vec!["0".into()];
        other_source(&f, vec![doc]).await;
        let ids = |states: Vec<PageState>| {
            let mut ids: Vec<String> = states.into_iter().map(|s| s.id.to_string()).collect();
            ids.sort();
            ids
        };
        let below = f
            .pipeline
            .pages_reached(Reach::Below(&"0".into()))
            .await
            .unwrap();
        assert_eq!(ids(below), ["1", "2"]);
        let space = f.pipeline.pages_reached(Reach::Space("ENG")).await.unwrap();
        assert_eq!(ids(space), ["0", "1", "2", "3", "big"]);
    }

    #[tokio::test]
    async fn mass_deletion_is_refused_and_explained() {
        let f = fixture(Source::default()).await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        {
            let mut pages = f.source.pages.lock().unwrap();
            for id in ["0", "1", "2"] {
                pages.remove(&PageId::from(id));
            }
        }
        let report = f.pipeline.sync(&Scope::spaces(["ENG"])).await.unwrap();
        assert_eq!(report.pages_deleted, 0);
        assert_eq!(report.refused_deletions.len(), 1);
        assert!(
            report.refused_deletions[0].contains("3 of the 5 indexed pages of space ENG"),
            "{report:?}"
        );
        assert!(report.refused_deletions[0].contains("--allow-mass-delete"));
        assert_eq!(f.store.stats().await.unwrap().pages, 5);

        let forced = f.pipeline.clone().with_options(PipelineOptions {
            allow_mass_delete: true,
            ..PipelineOptions::default()
        });
        assert_eq!(forced.sync(&Scope::all()).await.unwrap().pages_deleted, 3);
    }

    #[tokio::test]
    async fn a_tiny_space_can_lose_a_page_within_the_floor() {
        let source = Source::default();
        source.put(page(
            "solo",
            "TINY",
            "Only page",
            "The only page of a tiny space.",
        ));
        let f = fixture(source).await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        f.source.pages.lock().unwrap().remove(&PageId::from("solo"));
        // One page of one is 100%, above the 50% share, but within the floor of 2.
        let report = f.pipeline.sync(&Scope::spaces(["TINY"])).await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.pages_deleted, 1);
        // With no floor the share alone decides, and refuses.
        f.source
            .put(page("solo", "TINY", "Only page", "Back again."));
        let strict = f.pipeline.clone().with_options(PipelineOptions {
            delete_floor: 0,
            ..PipelineOptions::default()
        });
        strict.sync(&Scope::spaces(["TINY"])).await.unwrap();
        f.source.pages.lock().unwrap().remove(&PageId::from("solo"));
        let report = strict.sync(&Scope::spaces(["TINY"])).await.unwrap();
        assert_eq!(report.pages_deleted, 0);
        assert_eq!(report.refused_deletions.len(), 1, "{report:?}");
    }

    #[tokio::test]
    async fn a_live_page_the_listing_skipped_is_kept() {
        let f = fixture(Source {
            skipped_in_listing: Some("3".into()),
            ..Source::default()
        })
        .await;
        // Indexed once by a webhook, then a crawl whose listing skips it.
        f.pipeline.reconcile(&"3".into()).await.unwrap();
        let report = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(report.pages_deleted, 0, "{report:?}");
        assert!(report.is_clean(), "{report:?}");
        assert!(f.store.page(&"3".into()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_space_that_vanished_is_purged_under_the_guard() {
        let source = Source::default();
        source.put(page(
            "g1",
            "GONE",
            "Old one",
            "A page of a space about to vanish.",
        ));
        source.put(page("g2", "GONE", "Old two", "Another page of it."));
        let f = fixture(source).await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(f.store.stats().await.unwrap().pages, 7);
        // The space is deleted: its pages vanish from the listing and answer "gone".
        {
            let mut pages = f.source.pages.lock().unwrap();
            pages.remove(&PageId::from("g1"));
            pages.remove(&PageId::from("g2"));
        }
        let report = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(report.pages_deleted, 2, "{report:?}");
        assert_eq!(f.store.stats().await.unwrap().pages, 5);
    }

    /// A source whose every fetch of page 2 first lets a "webhook" index a newer version of
    /// it, then answers with the crawl's stale view: gone.
    #[derive(Debug)]
    struct RacingRestore {
        inner: Arc<Source>,
        store: Arc<MemoryStore>,
        embedder: Arc<Letters>,
    }

    #[async_trait]
    impl Fetcher for RacingRestore {
        fn list<'a>(&'a self, scope: &'a Scope) -> PageStream<'a> {
            self.inner.list(scope)
        }
        async fn fetch(&self, id: &PageId) -> Result<Fetched> {
            if id.as_str() == "2" {
                let webhook = Pipeline::new(
                    self.inner.clone(),
                    Arc::new(MarkdownChunker::default()),
                    self.embedder.clone(),
                    self.store.clone(),
                )
                .await?;
                let mut restored = page("2", "ENG", "Page 2", "Restored body of page 2.");
                restored.version = 5;
                webhook.upsert(restored).await?;
                return Ok(Fetched::Gone);
            }
            self.inner.fetch(id).await
        }
    }

    #[tokio::test]
    async fn a_crawl_never_deletes_what_a_webhook_restored_meanwhile() {
        let f = fixture(Source::default()).await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        // Trashed when the crawl lists...
        f.source.pages.lock().unwrap().remove(&PageId::from("2"));
        let crawl = Pipeline::new(
            Arc::new(RacingRestore {
                inner: f.source.clone(),
                store: f.store.clone(),
                embedder: f.embedder.clone(),
            }),
            Arc::new(MarkdownChunker::default()),
            f.embedder.clone(),
            f.store.clone(),
        )
        .await
        .unwrap();
        // ...restored and re-indexed by a webhook before the crawl deletes it.
        let report = crawl.sync(&Scope::all()).await.unwrap();
        assert_eq!(report.pages_deleted, 0, "{report:?}");
        assert_eq!(f.store.page(&"2".into()).await.unwrap().unwrap().version, 5);
    }

    #[tokio::test]
    async fn a_failed_listing_deletes_nothing() {
        let f = fixture(Source::default()).await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        let truncated = Pipeline::new(
            Arc::new(Source {
                fail_listing_after: Some(1),
                ..Source::default()
            }),
            Arc::new(MarkdownChunker::default()),
            f.embedder.clone(),
            f.store.clone(),
        )
        .await
        .unwrap()
        .with_options(PipelineOptions {
            allow_mass_delete: true,
            ..PipelineOptions::default()
        });
        let err = truncated.sync(&Scope::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport);
        assert_eq!(f.store.stats().await.unwrap().pages, 5);
    }

    #[tokio::test]
    async fn a_failing_page_keeps_its_state_and_the_rest_syncs() {
        let f = fixture(Source {
            failing_page: Some("1".into()),
            ..Source::default()
        })
        .await;
        let report = f.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!((report.pages_updated, report.pages_failed), (4, 1));
        assert_eq!(report.failures[0].0.as_str(), "1");
        assert!(report.failures[0].1.contains("malformed"));
        assert!(!report.is_clean());
        assert!(
            f.store.stats().await.unwrap().last_sync_ms.is_none(),
            "an unclean sync is not recorded"
        );
    }

    #[tokio::test]
    async fn reconcile_follows_the_source_state() {
        let f = fixture(Source::default()).await;
        let outcome = f.pipeline.reconcile(&"0".into()).await.unwrap();
        assert!(
            matches!(
                outcome,
                PageOutcome::Updated {
                    chunks: 1,
                    embedded: 1,
                    reused: 0
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(
            f.pipeline.reconcile(&"0".into()).await.unwrap(),
            PageOutcome::Unchanged
        );

        f.source.edit("0", |p| p.status = PageStatus::Trashed);
        assert_eq!(
            f.pipeline.reconcile(&"0".into()).await.unwrap(),
            PageOutcome::Deleted { chunks: 1 }
        );
        assert_eq!(
            f.pipeline.reconcile(&"0".into()).await.unwrap(),
            PageOutcome::Absent
        );

        f.source.edit("0", |p| p.status = PageStatus::Current);
        assert!(matches!(
            f.pipeline.reconcile(&"0".into()).await.unwrap(),
            PageOutcome::Updated { .. }
        ));
        f.source.pages.lock().unwrap().remove(&PageId::from("0"));
        assert_eq!(
            f.pipeline.reconcile(&"0".into()).await.unwrap(),
            PageOutcome::Deleted { chunks: 1 }
        );
    }

    #[tokio::test]
    async fn an_older_version_never_replaces_a_newer_one() {
        let f = fixture(Source::default()).await;
        let mut newer = page("9", "ENG", "Race", "newer text");
        newer.version = 7;
        f.pipeline.upsert(newer.clone()).await.unwrap();
        let mut older = newer.clone();
        older.version = 6;
        older.body = "older text".into();
        assert_eq!(
            f.pipeline.upsert(older).await.unwrap(),
            PageOutcome::Stale {
                held: 7,
                fetched: 6
            }
        );
        let hits = f
            .pipeline
            .search("text", 5, &SearchFilter::default())
            .await
            .unwrap();
        let hit = hits.iter().find(|h| h.page_id.as_str() == "9").unwrap();
        assert_eq!(hit.text, "newer text");
    }

    #[tokio::test]
    async fn empty_queries_k_out_of_range_and_unknown_spaces_are_refused() {
        let f = fixture(Source::default()).await;
        f.pipeline.sync(&Scope::all()).await.unwrap();
        let search = |q: &'static str, k: usize, space: Option<&str>| {
            let filter = SearchFilter {
                space_key: space.map(Into::into),
                ..SearchFilter::default()
            };
            let pipeline = f.pipeline.clone();
            async move { pipeline.search(q, k, &filter).await }
        };
        let err = search("   ", 5, None).await.unwrap_err();
        assert_eq!(err.to_string(), "the search query is empty");
        for k in [0, MAX_K + 1] {
            let err = search("node", k, None).await.unwrap_err();
            assert_eq!(err.to_string(), "k must be from 1 to 50", "{k}");
        }
        assert_eq!(
            search("node", MAX_K, Some("ENG")).await.unwrap().len(),
            MAX_K
        );
        let err = search("node", 5, Some("OPS")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "no space OPS in the index (spaces: ENG)");
    }

    #[tokio::test]
    async fn reconcile_at_least_writes_nothing_until_the_source_has_the_version() {
        let f = fixture(Source::default()).await;
        let id = PageId::from("1");
        // The event named version 3; the source still serves version 1.
        let outcome = f.pipeline.reconcile_at_least(&id, Some(3)).await.unwrap();
        assert_eq!(
            outcome,
            PageOutcome::Behind {
                fetched: 1,
                wanted: 3
            }
        );
        assert!(
            f.store.page(&id).await.unwrap().is_none(),
            "nothing written"
        );
        f.source
            .edit("1", |p| p.body = "Body of page 1, edited.".into());
        f.source
            .edit("1", |p| p.body = "Body of page 1, edited twice.".into());
        let outcome = f.pipeline.reconcile_at_least(&id, Some(3)).await.unwrap();
        assert!(
            matches!(outcome, PageOutcome::Updated { .. }),
            "{outcome:?}"
        );
        assert_eq!(f.store.page(&id).await.unwrap().unwrap().version, 3);
        // A trashed page is removed whatever version was wanted.
        f.source.edit("1", |p| p.status = PageStatus::Trashed);
        let outcome = f.pipeline.reconcile_at_least(&id, Some(9)).await.unwrap();
        assert!(
            matches!(outcome, PageOutcome::Deleted { .. }),
            "{outcome:?}"
        );
    }

    fn comment(id: &str, body: &str) -> Part {
        Part {
            id: id.into(),
            kind: crate::PartKind::Comment,
            title: "Comment by Carol".into(),
            version: 1,
            url: None,
            body: Some(body.into()),
            media_type: None,
            size: None,
        }
    }

    fn hr_only() -> crate::ReadAccess {
        crate::ReadAccess::of([[crate::Principal::Group("hr".into())].into()])
    }

    async fn anonymous_finds(f: &Fixture, text: &str, id: &str) -> bool {
        f.pipeline
            .search(text, 10, &SearchFilter::default())
            .await
            .unwrap()
            .iter()
            .any(|h| h.page_id.as_str() == id)
    }

    #[tokio::test]
    async fn a_slower_read_that_loses_leaves_none_of_its_parts_behind() {
        let f = fixture(Source::default()).await;
        // Read later: restricted, and the comment deleted.
        let later = Page {
            access: hr_only(),
            ..page("p", "ENG", "Salary bands", "Bands by level.")
        };
        f.pipeline.upsert_read_at(later, 200).await.unwrap();
        // Read earlier, written after: open, with the comment.
        let earlier = Page {
            parts: vec![comment("c", "The zeppelin bonus is paid in March.")],
            ..page("p", "ENG", "Salary bands", "Bands by level.")
        };
        let outcome = f.pipeline.upsert_read_at(earlier, 100).await.unwrap();
        assert!(matches!(outcome, PageOutcome::Stale { .. }), "{outcome:?}");
        assert!(f.store.page(&"c".into()).await.unwrap().is_none());
        assert!(!anonymous_finds(&f, "zeppelin bonus", "c").await);
        assert_eq!(
            f.store.page(&"p".into()).await.unwrap().unwrap().access,
            hr_only()
        );
    }

    #[tokio::test]
    async fn a_slower_read_that_loses_keeps_the_winners_parts() {
        let f = fixture(Source::default()).await;
        let with_comment = |access| Page {
            access,
            parts: vec![comment("c", "The zeppelin bonus is paid in March.")],
            ..page("p", "ENG", "Salary bands", "Bands by level.")
        };
        f.pipeline
            .upsert_read_at(with_comment(hr_only()), 200)
            .await
            .unwrap();
        let outcome = f
            .pipeline
            .upsert_read_at(with_comment(crate::ReadAccess::anyone()), 100)
            .await
            .unwrap();
        assert!(matches!(outcome, PageOutcome::Stale { .. }), "{outcome:?}");
        let kept = f.store.page(&"c".into()).await.unwrap();
        assert_eq!(
            kept.map(|c| c.access),
            Some(hr_only()),
            "the winner's part stays"
        );
        assert!(!anonymous_finds(&f, "zeppelin bonus", "c").await);
    }

    #[tokio::test]
    async fn a_crawl_repairs_parts_out_of_step_with_their_page() {
        let source = Source {
            versions_in_listing: true,
            ..Source::default()
        };
        let f = fixture(source).await;
        f.source.put(Page {
            access: hr_only(),
            parts: vec![comment("c1", "The zeppelin bonus is paid in March.")],
            ..page("p", "ENG", "Salary bands", "Bands by level.")
        });
        f.pipeline.sync(&Scope::all()).await.unwrap();
        let held = f.store.page(&"c1".into()).await.unwrap().unwrap();
        // Left by writes cut short: a part its page does not list, and a listed part under a
        // more open rule than its page's.
        let mut stray = IndexedPage {
            id: "c2".into(),
            access: crate::ReadAccess::anyone(),
            access_read_ms: 1,
            ..held.clone()
        };
        let chunks = |id: &str, text: &str| {
            vec![EmbeddedChunk {
                chunk: crate::Chunk::new(&PageId::from(id), 0, vec!["Comment".into()], text, 8),
                vector: vec![1.0; f.embedder.model().dimension],
            }]
        };
        f.store
            .replace_page(&stray, &chunks("c2", "The osprey stipend doubles."))
            .await
            .unwrap();
        stray.id = "c1".into();
        stray.version = held.version;
        f.store.delete_page(&"c1".into()).await.unwrap();
        f.store
            .replace_page(
                &stray,
                &chunks("c1", "The zeppelin bonus is paid in March."),
            )
            .await
            .unwrap();
        assert!(
            anonymous_finds(&f, "zeppelin bonus", "c1").await,
            "the test leaks to begin with"
        );
        f.pipeline.sync(&Scope::all()).await.unwrap();
        assert!(
            f.store.page(&"c2".into()).await.unwrap().is_none(),
            "the unlisted part goes"
        );
        assert_eq!(
            f.store.page(&"c1".into()).await.unwrap().unwrap().access,
            hr_only()
        );
        assert!(!anonymous_finds(&f, "zeppelin bonus", "c1").await);
        assert!(!anonymous_finds(&f, "osprey stipend", "c2").await);
    }

    #[tokio::test]
    async fn a_removed_page_takes_its_parts_but_not_a_part_moved_to_another_page() {
        let f = fixture(Source::default()).await;
        let with = |id: &str, parts: Vec<Part>| Page {
            parts,
            ..page(id, "ENG", id, "Body.")
        };
        f.pipeline
            .upsert(with("a", vec![comment("c", "Kestrel rota.")]))
            .await
            .unwrap();
        // The part moves to page b (an attachment moved between pages keeps its id).
        let moved = Page {
            version: 2,
            ..with("b", vec![comment("c", "Kestrel rota.")])
        };
        f.pipeline.upsert(moved).await.unwrap();
        f.pipeline
            .upsert(Page {
                version: 2,
                ..with("a", Vec::new())
            })
            .await
            .unwrap();
        assert_eq!(
            f.store.page(&"c".into()).await.unwrap().unwrap().parent,
            Some("b".into())
        );
        f.pipeline
            .upsert(Page {
                status: PageStatus::Trashed,
                version: 3,
                ..with("b", Vec::new())
            })
            .await
            .unwrap();
        assert!(f.store.page(&"c".into()).await.unwrap().is_none());
    }
}
