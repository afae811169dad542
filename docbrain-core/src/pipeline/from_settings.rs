//! One call from [`Settings`] to a [`Pipeline`].
//!
//! This crate knows no concrete source, store or embedder, so the crates that have them say how
//! to build them: `docbrain-confluence` implements [`SourceBuilder`], `docbrain-index`
//! implements [`IndexBuilder`], and [`Pipeline::from_settings`] puts the parts together with the
//! chunking and guard settings. Neither crate imports the other.

use std::sync::Arc;

use async_trait::async_trait;

use crate::chunker::MarkdownChunker;
use crate::embedder::Embedder;
use crate::error::Result;
use crate::fetcher::{Fetcher, Scope};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::read_access::Caller;
use crate::settings::{EmbedderSettings, Settings, SourceSettings};
use crate::store::IndexStore;

/// Builds the source that [`SourceSettings`] names.
pub trait SourceBuilder: Send + Sync {
    /// Returns the fetcher, or `None` for [`SourceSettings::None`].
    ///
    /// # Errors
    /// A setting the source cannot use (a missing folder, a malformed URL), named.
    fn fetcher(&self, settings: &SourceSettings) -> Result<Option<Arc<dyn Fetcher>>>;
}

/// Builds the index store and the embedder that [`Settings`] name.
#[async_trait]
pub trait IndexBuilder: Send + Sync {
    /// Opens (embedded) or connects to (OpenSearch) the store.
    ///
    /// # Errors
    /// An unreachable or unusable store, with what to fix.
    async fn store(&self, settings: &Settings) -> Result<Arc<dyn IndexStore>>;

    /// Loads (local) or connects to (remote) the embedder.
    ///
    /// # Errors
    /// A missing model, key or service, with what to fix.
    async fn embedder(&self, settings: &EmbedderSettings) -> Result<Arc<dyn Embedder>>;
}

impl Settings {
    /// The pipeline options these settings imply.
    pub fn pipeline_options(&self) -> PipelineOptions {
        let mut options = PipelineOptions {
            max_delete_fraction: self.guards.max_delete_fraction,
            delete_floor: self.guards.delete_floor,
            allow_mass_delete: self.guards.allow_mass_delete,
            reader_ttl: self.search.cache_ttl,
            ..PipelineOptions::default()
        };
        if let SourceSettings::Confluence(c) = &self.source {
            options.fetch_concurrency = c.fetch_concurrency;
        }
        options
    }

    /// Whose permissions a search obeys: the user named (`as`, `--as`), else anonymous; no
    /// one's with `SEARCH_PERMISSIONS=off`.
    pub fn caller(&self, as_user: Option<&str>) -> Caller {
        Caller::named(as_user, self.search.permissions)
    }

    /// The scope a full crawl covers (`CONFLUENCE_PAGE_LIMIT`).
    pub fn scope(&self) -> Scope {
        match &self.source {
            SourceSettings::Confluence(c) => {
                Scope::all().with_page_limit(c.page_limit.unwrap_or(0))
            }
            _ => Scope::all(),
        }
    }
}

impl Pipeline {
    /// Builds the pipeline `settings` describe: the source from `sources`, the store and the
    /// embedder from `index`, a chunker of `CHUNK_MAX_TOKENS` fitted to the embedder, and the
    /// guards. Without a source the pipeline is for search only ([`Pipeline::searcher`]).
    ///
    /// ```text
    /// let settings = Settings::from_env()?;
    /// let pipeline =
    ///     Pipeline::from_settings(&settings, &docbrain_confluence::Sources, &docbrain_index::Backends)
    ///         .await?;
    /// ```
    ///
    /// # Errors
    /// The first part that cannot be built, with what to fix; a store bound to another model.
    pub async fn from_settings(
        settings: &Settings,
        sources: &dyn SourceBuilder,
        index: &dyn IndexBuilder,
    ) -> Result<Self> {
        let fetcher = sources.fetcher(&settings.source)?;
        let embedder = index.embedder(&settings.embedder).await?;
        let store = index.store(settings).await?;
        let Some(fetcher) = fetcher else {
            return Self::searcher(embedder, store).await;
        };
        let chunker = MarkdownChunker::builder()
            .max_tokens(settings.chunking.max_tokens)
            .fit_to(embedder.as_ref())
            .build()?;
        Ok(Self::new(fetcher, Arc::new(chunker), embedder, store)
            .await?
            .with_options(settings.pipeline_options()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::page::{Fetched, Page, PageId, PageSummary};
    use crate::settings::{ConfluenceSettings, LocalSettings};
    use crate::testsuite::LetterEmbedder;
    use crate::{ErrorKind, PageStream, Secret};

    /// One long page in space DOCS.
    #[derive(Debug)]
    struct OneLongPage;

    #[async_trait]
    impl Fetcher for OneLongPage {
        fn list<'a>(&'a self, _: &'a Scope) -> PageStream<'a> {
            Box::pin(futures::stream::iter([Ok(PageSummary {
                id: "1".into(),
                space_key: "DOCS".into(),
                title: "Long".into(),
                version: Some(1),
                access: None,
                parts: None,
            })]))
        }
        async fn fetch(&self, id: &PageId) -> Result<Fetched> {
            let body: String = (0..40)
                .map(|i| {
                    format!("Paragraph {i} explains one more step of the rollout in detail.\n\n")
                })
                .collect();
            Ok(Fetched::Page(Page::new(id.clone(), "DOCS", "Long", body)))
        }
    }

    struct Parts;

    impl SourceBuilder for Parts {
        fn fetcher(&self, settings: &SourceSettings) -> Result<Option<Arc<dyn Fetcher>>> {
            Ok(match settings {
                SourceSettings::None => None,
                _ => Some(Arc::new(OneLongPage)),
            })
        }
    }

    #[async_trait]
    impl IndexBuilder for Parts {
        async fn store(&self, _: &Settings) -> Result<Arc<dyn IndexStore>> {
            Ok(Arc::new(MemoryStore::new()))
        }
        async fn embedder(&self, _: &EmbedderSettings) -> Result<Arc<dyn Embedder>> {
            Ok(Arc::new(LetterEmbedder::default()))
        }
    }

    fn local() -> Settings {
        Settings {
            source: SourceSettings::Local(LocalSettings {
                path: "docs".into(),
                space_key: "DOCS".into(),
                attachments: Default::default(),
            }),
            ..Settings::default()
        }
    }

    async fn chunks_with(max_tokens: usize) -> u64 {
        let mut settings = local();
        settings.chunking.max_tokens = max_tokens;
        let pipeline = Pipeline::from_settings(&settings, &Parts, &Parts)
            .await
            .unwrap();
        pipeline.sync(&settings.scope()).await.unwrap().chunks_total
    }

    #[tokio::test]
    async fn the_chunk_budget_reaches_the_chunker() {
        let (small, large) = (chunks_with(80).await, chunks_with(254).await);
        assert!(
            small > large && large >= 1,
            "80 tokens: {small} chunks, 254: {large}"
        );
    }

    #[test]
    fn the_guards_and_crawl_settings_reach_the_pipeline() {
        let mut settings = local();
        settings.guards.max_delete_fraction = 0.1;
        settings.guards.allow_mass_delete = true;
        let options = settings.pipeline_options();
        assert!((options.max_delete_fraction - 0.1).abs() < f64::EPSILON);
        assert!(options.allow_mass_delete);
        let mut site = ConfluenceSettings::new("https://x", Default::default(), Secret::new("t"));
        site.fetch_concurrency = 7;
        site.page_limit = Some(30);
        settings.source = SourceSettings::Confluence(site);
        assert_eq!(settings.pipeline_options().fetch_concurrency, 7);
        assert_eq!(settings.scope().page_limit, Some(30));
    }

    #[tokio::test]
    async fn without_a_source_the_pipeline_only_searches() {
        let pipeline = Pipeline::from_settings(&Settings::default(), &Parts, &Parts)
            .await
            .unwrap();
        let err = pipeline.sync(&Scope::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("configure a source"), "{err}");
    }
}
