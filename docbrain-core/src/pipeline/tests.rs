use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::chunk::EmbeddedChunk;
use crate::chunker::MarkdownChunker;
use crate::fetcher::PageStream;
use crate::memory::MemoryStore;
use crate::page::PageStatus;
use crate::page::{Page, PageSummary, Part};
use crate::read_access::Caller;
use crate::search::{SearchFilter, SearchRequest};
use crate::store::{IndexedPage, STATE_BATCH};

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

/// Letter frequencies as vectors (texts that share words are near), counting the texts embedded.
#[derive(Debug, Default)]
struct Letters(AtomicUsize);

impl Letters {
    fn embedded(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl crate::Embedder for Letters {
    fn model(&self) -> crate::ModelInfo {
        crate::ModelInfo {
            model_id: "test/letters".into(),
            dimension: 26,
        }
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.0.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts.iter().map(|t| letters(t)).collect())
    }
}

fn letters(text: &str) -> Vec<f32> {
    let mut v = [0.0f32; 26];
    for b in text.to_lowercase().bytes().filter(u8::is_ascii_lowercase) {
        v[usize::from(b - b'a')] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / n).collect()
}

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
    let chunker = MarkdownChunker::new(64, 8).unwrap();
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
async fn a_large_page_is_chunked_off_the_async_threads_exactly_as_a_small_one_would_be() {
    let f = fixture(Source::default()).await;
    let body: String = (0..8)
        .map(|_| long_body())
        .collect::<Vec<_>>()
        .join("\n\n## Coda\n\nThe last wave ends here.\n\n");
    assert!(body.len() >= crate::cpu::LARGE, "{}", body.len());
    let page = page("huge", "ENG", "Huge", &body);
    let expected = MarkdownChunker::default().chunk(&page).len();
    let outcome = f.pipeline.upsert(page).await.unwrap();
    assert!(
        matches!(outcome, PageOutcome::Updated { chunks, .. } if chunks as usize == expected),
        "{outcome:?}, expected {expected} chunks"
    );
    let hits = f
        .pipeline
        .search("last wave ends", 3, &SearchFilter::default())
        .await
        .unwrap();
    assert!(hits.iter().any(|h| h.page_id == "huge".into()), "{hits:?}");
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
    let below = f.pipeline.pages_below(&"0".into()).await.unwrap();
    assert_eq!(ids(below), ["1", "2"]);
    let space = f.pipeline.pages_in_space("ENG").await.unwrap();
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
    for k in [0, SearchRequest::MAX_K + 1] {
        let err = search("node", k, None).await.unwrap_err();
        assert_eq!(err.to_string(), "k must be from 1 to 50", "{k}");
    }
    assert_eq!(
        search("node", SearchRequest::MAX_K, Some("ENG"))
            .await
            .unwrap()
            .len(),
        SearchRequest::MAX_K
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

/// A listing that names one page and then pages on without end (a slow space), and a source
/// that refuses the credential for every body.
#[derive(Debug)]
struct RefusedWhileListing;

#[async_trait]
impl Fetcher for RefusedWhileListing {
    fn list<'a>(&'a self, _scope: &'a Scope) -> PageStream<'a> {
        let first = PageSummary {
            id: "1".into(),
            space_key: "ENG".into(),
            title: "First".into(),
            version: Some(1),
            access: None,
            parts: None,
        };
        use futures::StreamExt as _;
        let first: Result<PageSummary> = Ok(first);
        Box::pin(futures::stream::iter([first]).chain(futures::stream::pending()))
    }

    async fn fetch(&self, _: &PageId) -> Result<Fetched> {
        Err(Error::new(ErrorKind::Unauthorized, "token revoked"))
    }
}

#[tokio::test]
async fn a_refused_credential_ends_the_crawl_while_the_listing_is_still_paging() {
    let pipeline = Pipeline::new(
        Arc::new(RefusedWhileListing),
        Arc::new(MarkdownChunker::default()),
        Arc::new(Letters::default()),
        Arc::new(MemoryStore::new()),
    )
    .await
    .unwrap();
    let ended = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        pipeline.sync(&Scope::all()),
    )
    .await
    .expect("the crawl waited on the listing with a refused credential in hand");
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::Unauthorized);
}
