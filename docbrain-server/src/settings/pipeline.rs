//! One call from [`Settings`] to a [`Pipeline`]: the source from `docbrain-confluence`, the
//! store and the embedder from `docbrain-index`, a chunker of `CHUNK_MAX_TOKENS` fitted to the
//! embedder, and the pipeline's options.

use std::sync::Arc;

use docbrain_core::{
    Caller, Embedder, Fetcher, IndexStore, MarkdownChunker, Pipeline, Result, Scope,
};

use super::Settings;
use docbrain_confluence::SourceSettings;

impl Settings {
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

    /// Builds the pipeline these settings describe. Without a source the pipeline is for
    /// search only ([`Pipeline::searcher`]).
    ///
    /// # Errors
    /// The first part that cannot be built, with what to fix; a store bound to another model.
    pub async fn pipeline(&self) -> Result<Pipeline> {
        let fetcher = self.source.fetcher()?;
        let embedder = self.embedder.connect().await?;
        let store = self.store.open(&self.data_dir).await?;
        self.assemble(fetcher, embedder, store).await
    }

    /// The pipeline over parts already built.
    async fn assemble(
        &self,
        fetcher: Option<Arc<dyn Fetcher>>,
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn IndexStore>,
    ) -> Result<Pipeline> {
        let Some(fetcher) = fetcher else {
            return Pipeline::searcher(embedder, store).await;
        };
        let chunker = MarkdownChunker::new(
            self.chunk_max_tokens,
            MarkdownChunker::DEFAULT_OVERLAP_TOKENS,
        )?
        .fit_to(embedder.as_ref());
        Ok(Pipeline::new(fetcher, Arc::new(chunker), embedder, store)
            .await?
            .with_options(self.pipeline.clone()))
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use docbrain_confluence::{ConfluenceSettings, LocalSettings};
    use docbrain_core::{
        ErrorKind, Fetched, MemoryStore, Page, PageId, PageStream, PageSummary, Secret,
    };
    use docbrain_testsuite::LetterEmbedder;

    use super::*;

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

    /// The pipeline `settings` build over [`OneLongPage`] (when they name a source), the
    /// memory store and the letter embedder.
    async fn pipeline(settings: &Settings) -> Pipeline {
        let source = match settings.source {
            SourceSettings::None => None,
            _ => Some(Arc::new(OneLongPage) as Arc<dyn Fetcher>),
        };
        let embedder = Arc::new(LetterEmbedder::default());
        settings
            .assemble(source, embedder, Arc::new(MemoryStore::new()))
            .await
            .unwrap()
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
        settings.chunk_max_tokens = max_tokens;
        let pipeline = pipeline(&settings).await;
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

    #[tokio::test]
    async fn the_guard_concurrency_and_cache_ttl_reach_the_pipeline() {
        let mut settings = local();
        settings.pipeline.max_delete_fraction = 0.1;
        settings.pipeline.delete_floor = 5;
        settings.pipeline.allow_mass_delete = true;
        settings.pipeline.fetch_concurrency = 7;
        settings.pipeline.reader_ttl = std::time::Duration::from_secs(30);
        assert_eq!(pipeline(&settings).await.options(), &settings.pipeline);
    }

    #[test]
    fn the_page_limit_reaches_the_crawl_scope() {
        let mut site = ConfluenceSettings::new("https://x", Default::default(), Secret::new("t"));
        site.page_limit = Some(30);
        let settings = Settings {
            source: SourceSettings::Confluence(site),
            ..Settings::default()
        };
        assert_eq!(settings.scope().page_limit, Some(30));
    }

    #[tokio::test]
    async fn without_a_source_the_pipeline_only_searches() {
        let pipeline = pipeline(&Settings::default()).await;
        let err = pipeline.sync(&Scope::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("configure a source"), "{err}");
    }
}
