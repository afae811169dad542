//! The one ingest pipeline both binaries and library users call.

mod crawl;
mod deletion;
mod permissions;
mod read;
mod reconcile;

pub use crawl::{SyncProgress, SyncReport};
pub use read::{PageText, SpaceSummary};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chunker::Chunker;
use crate::embedder::Embedder;
use crate::error::{Error, ErrorKind, Result};
use crate::fetcher::{Fetcher, Scope};
use crate::page::{Fetched, PageId};
use crate::store::{IndexStore, PageState};

use permissions::ReaderCache;

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
#[non_exhaustive]
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

/// The source of a search-only pipeline.
#[derive(Debug)]
struct NoSource;

#[async_trait::async_trait]
impl Fetcher for NoSource {
    fn list<'a>(&'a self, _: &'a Scope) -> crate::fetcher::PageStream<'a> {
        Box::pin(NoListing(Some(no_source())))
    }
    async fn fetch(&self, _: &PageId) -> Result<Fetched> {
        Err(no_source())
    }
}

/// A listing that fails at once.
struct NoListing(Option<Error>);

impl futures_core::Stream for NoListing {
    type Item = Result<crate::PageSummary>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.get_mut().0.take().map(Err))
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
/// Cheap to clone; holds its parts as `Arc<dyn …>`. Large pages are chunked on the blocking
/// pool of the Tokio runtime it runs on.
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

    /// The options this pipeline runs with.
    pub fn options(&self) -> &PipelineOptions {
        &self.options
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

    /// Returns the source.
    pub fn fetcher(&self) -> &Arc<dyn Fetcher> {
        &self.fetcher
    }

    /// Whether an indexed record is this crawl's to keep in step: its source's, or one from
    /// before sources were kept.
    fn is_mine(&self, state: &PageState) -> bool {
        state.source == *self.source || state.source.is_empty()
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

#[cfg(test)]
mod tests;
