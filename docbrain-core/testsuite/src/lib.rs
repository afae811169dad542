//! The `IndexStore` conformance suite of DocBrain Sync: every store runs it (as a
//! dev-dependency).
//!
//! Each check takes a fresh, empty store and panics with a message naming what broke.
//! [`run`] runs them all:
//!
//! ```text
//! docbrain_testsuite::run(|| async { Arc::new(MyStore::open_temp()) as Arc<dyn IndexStore> }).await;
//! ```
//!
//! Beside it, what the workspace's tests share: [`until`] (one wait for a condition, with a
//! bound) and [`Running`] (a child process that never outlives its test).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod rng;
mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use docbrain_core::{
    Chunk, EmbeddedChunk, Embedder, ErrorKind, IndexStore, IndexedPage, Layer, ModelInfo, PageId,
    Principal, ReadAccess, Reader, ReplaceOutcome, SearchFilter, SearchRequest,
};

pub use rng::Rng;
pub use support::{until, Running};

/// A deterministic embedder for tests: a text's vector is its letter frequencies, so texts that
/// share words are near. Counts the texts it embedded.
#[derive(Debug, Default)]
pub struct LetterEmbedder {
    embedded: AtomicUsize,
}

impl LetterEmbedder {
    /// Returns how many texts were embedded so far.
    pub fn embedded(&self) -> usize {
        self.embedded.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Embedder for LetterEmbedder {
    fn model(&self) -> ModelInfo {
        ModelInfo {
            model_id: "test/letters".into(),
            dimension: 26,
        }
    }

    async fn embed(&self, texts: &[String]) -> docbrain_core::Result<Vec<Vec<f32>>> {
        self.embedded.fetch_add(texts.len(), Ordering::SeqCst);
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = [0.0f32; 26];
                for b in t.to_lowercase().bytes().filter(u8::is_ascii_lowercase) {
                    v[usize::from(b - b'a')] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

/// The dimension of the suite's vectors.
pub const DIMENSION: usize = 4;

fn model() -> ModelInfo {
    ModelInfo {
        model_id: "testsuite/axis".into(),
        dimension: DIMENSION,
    }
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIMENSION];
    v[i % DIMENSION] = 1.0;
    v
}

fn record(id: &str, space: &str, title: &str, version: u64, chunks: u32) -> IndexedPage {
    IndexedPage {
        id: id.into(),
        space_key: space.into(),
        title: title.into(),
        version,
        url: Some(format!("https://wiki.example.com/pages/{id}")),
        ancestors: vec!["Home".into()],
        labels: vec!["ops".into()],
        content_hash: format!("hash-{id}-{version}"),
        chunk_count: chunks,
        ancestor_ids: vec!["1".into()],
        access: ReadAccess::anyone(),
        access_read_ms: 0,
        source: String::new(),
        parent: None,
        parts: Vec::new(),
    }
}

fn chunks(id: &str, title: &str, texts: &[(&str, usize)]) -> Vec<EmbeddedChunk> {
    let page_id = PageId::from(id);
    texts
        .iter()
        .enumerate()
        .map(|(i, (text, dir))| EmbeddedChunk {
            chunk: Chunk::new(
                &page_id,
                i as u32,
                vec![title.into(), format!("Section {i}")],
                text,
                10,
            ),
            vector: axis(*dir),
        })
        .collect()
}

async fn put(
    store: &dyn IndexStore,
    id: &str,
    space: &str,
    title: &str,
    version: u64,
    texts: &[(&str, usize)],
) -> ReplaceOutcome {
    store
        .replace_page(
            &record(id, space, title, version, texts.len() as u32),
            &chunks(id, title, texts),
        )
        .await
        .unwrap()
}

fn request(text: &str, dir: usize, k: usize, space: Option<&str>) -> SearchRequest {
    SearchRequest {
        text: text.into(),
        vector: axis(dir),
        k,
        filter: SearchFilter {
            space_key: space.map(Into::into),
            ..SearchFilter::default()
        },
        reader: None,
    }
}

fn layer(tokens: &[&str]) -> Layer {
    tokens
        .iter()
        .filter_map(|t| Principal::from_token(t))
        .collect()
}

async fn put_with(
    store: &dyn IndexStore,
    id: &str,
    space: &str,
    access: ReadAccess,
    text: &str,
    dir: usize,
) {
    let page = IndexedPage {
        access,
        ..record(id, space, &format!("Page {id}"), 1, 1)
    };
    let outcome = store
        .replace_page(&page, &chunks(id, &page.title, &[(text, dir)]))
        .await
        .unwrap();
    assert_eq!(outcome, ReplaceOutcome::Replaced);
}

async fn seen_by(
    store: &dyn IndexStore,
    reader: Option<Reader>,
    space: Option<&str>,
    k: usize,
) -> Vec<String> {
    let mut request = request("payroll", 0, k, space);
    request.reader = reader;
    let mut ids: Vec<String> = store
        .search(&request)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.page_id.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Search returns only pages the reader may read, filtering inside the query: a readable page
/// ranked below many unreadable ones is still found.
async fn filters_by_permission(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    // More unreadable pages than either ranking's candidate depth, all ranked first.
    for i in 0..70 {
        let access = ReadAccess::of([layer(&["group:hr"])]);
        put_with(
            store,
            &format!("s{i:02}"),
            "HR",
            access,
            "payroll payroll payroll salary",
            0,
        )
        .await;
    }
    put_with(
        store,
        "open",
        "ENG",
        ReadAccess::anyone(),
        "notes on payroll tooling",
        1,
    )
    .await;
    let two_layers = ReadAccess::of([layer(&["group:staff"]), layer(&["user:ann", "group:leads"])]);
    put_with(store, "ann", "ENG", two_layers, "payroll review for ann", 2).await;
    put_with(
        store,
        "none",
        "ENG",
        ReadAccess::nobody(),
        "payroll figures nobody reads",
        3,
    )
    .await;

    let anonymous = seen_by(store, Some(Reader::anonymous()), None, 5).await;
    assert_eq!(anonymous, ["open"], "anonymous readers see open pages only");
    let stranger = seen_by(store, Some(Reader::user("zed", ["staff"])), None, 5).await;
    assert_eq!(stranger, ["open"], "one layer of two is not enough");
    let ann = seen_by(store, Some(Reader::user("ann", ["staff"])), None, 10).await;
    assert_eq!(ann, ["ann", "open"]);
    let lead = seen_by(
        store,
        Some(Reader::user("lee", ["staff", "leads"])),
        None,
        10,
    )
    .await;
    assert_eq!(lead, ["ann", "open"]);
    let hr = seen_by(store, Some(Reader::user("hana", ["hr"])), None, 3).await;
    assert_eq!(hr.len(), 3, "k caps the hits: {hr:?}");
    assert!(
        hr.iter().all(|id| id.starts_with('s') || id == "open"),
        "{hr:?}"
    );
    let hr_eng = seen_by(store, Some(Reader::user("hana", ["hr"])), Some("ENG"), 10).await;
    assert_eq!(
        hr_eng,
        ["open"],
        "the space filter and the permission filter both apply"
    );
    let everything = seen_by(store, None, Some("ENG"), 10).await;
    assert_eq!(
        everything,
        ["ann", "none", "open"],
        "no reader: no permission filter"
    );

    // The rule is read back as written, and a new rule applies at once.
    let held = store.page(&"ann".into()).await.unwrap().unwrap();
    assert_eq!(held.access.layers().len(), 2);
    assert_eq!(held.ancestor_ids, [PageId::from("1")]);
    put_with(
        store,
        "ann",
        "ENG",
        ReadAccess::anyone(),
        "payroll review for ann",
        2,
    )
    .await;
    let anonymous = seen_by(store, Some(Reader::anonymous()), None, 5).await;
    assert_eq!(
        anonymous,
        ["ann", "open"],
        "a lifted restriction shows the page"
    );
}

/// Runs every check, each on a fresh store from `new_store`.
pub async fn run<F, Fut>(mut new_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn IndexStore>>,
{
    binds_one_model(new_store().await.as_ref()).await;
    replaces_and_reads_back(new_store().await.as_ref()).await;
    shrinking_page_leaves_no_orphans(new_store().await.as_ref()).await;
    never_rolls_back_a_version(new_store().await.as_ref()).await;
    keeps_the_rule_read_last(new_store().await.as_ref()).await;
    deletes_every_chunk(new_store().await.as_ref()).await;
    deletes_only_the_version_read(new_store().await.as_ref()).await;
    hybrid_search_finds_by_keyword_and_vector(new_store().await.as_ref()).await;
    filters_by_space_and_respects_k(new_store().await.as_ref()).await;
    filters_by_permission(new_store().await.as_ref()).await;
    records_sync_time(new_store().await.as_ref()).await;
    notes_rule_changes(new_store().await.as_ref()).await;
    keeps_parts_apart_from_pages(new_store().await.as_ref()).await;
}

/// A page's parts (comments) are records of their own: each names its page, the page lists
/// them, both read back as written; they are counted apart from pages, found by search as
/// their own hits, and a crawl sees them among the states.
async fn keeps_parts_apart_from_pages(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    let part = IndexedPage {
        parent: Some("300".into()),
        title: "Comment by Carol".into(),
        ..record("301", "ENG", "Comment by Carol", 2, 1)
    };
    store
        .replace_page(
            &part,
            &chunks("301", "Comment by Carol", &[("flamingo check", 3)]),
        )
        .await
        .unwrap();
    let page = IndexedPage {
        parts: vec![docbrain_core::PartRef {
            id: "301".into(),
            version: 2,
            kind: docbrain_core::PartKind::Comment,
            not_indexed: None,
        }],
        ..record("300", "ENG", "Deploys", 1, 1)
    };
    put(store, "299", "ENG", "Other", 1, &[("unrelated", 1)]).await;
    store
        .replace_page(&page, &chunks("300", "Deploys", &[("run the pipeline", 0)]))
        .await
        .unwrap();
    assert_eq!(store.page(&"301".into()).await.unwrap(), Some(part.clone()));
    assert_eq!(store.page(&"300".into()).await.unwrap(), Some(page.clone()));
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pages, stats.parts, stats.chunks), (2, 1, 3));
    let states = store.page_states(None, 10).await.unwrap();
    let of = |id: &str| states.iter().find(|s| s.id.as_str() == id).unwrap();
    assert_eq!(of("301").parent, part.parent);
    assert_eq!(of("300").parts, page.parts);
    assert_eq!(of("300").parent, None);
    let hits = store
        .search(&request("flamingo", 3, 5, None))
        .await
        .unwrap();
    assert_eq!(hits.first().map(|h| h.page_id.as_str()), Some("301"));
    assert_eq!(hits[0].title, "Comment by Carol");
    store.delete_page(&"301".into()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().parts, 0);
}

/// The first model binds; the same model binds again; another model or dimension is refused.
async fn binds_one_model(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    store.bind_model(&model()).await.unwrap();
    let other = ModelInfo {
        model_id: "other/model".into(),
        dimension: DIMENSION,
    };
    let err = store.bind_model(&other).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(
        err.to_string().contains("testsuite/axis"),
        "error should name the bound model: {err}"
    );
    let wider = ModelInfo {
        model_id: "testsuite/axis".into(),
        dimension: DIMENSION + 1,
    };
    assert_eq!(
        store.bind_model(&wider).await.unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    assert_eq!(store.stats().await.unwrap().dimension, Some(DIMENSION));
}

/// A replaced page reads back with its record, chunk count and reusable vectors.
async fn replaces_and_reads_back(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    let outcome = put(
        store,
        "100",
        "ENG",
        "Runbook",
        3,
        &[("restart the broker", 0), ("check disk usage", 1)],
    )
    .await;
    assert_eq!(outcome, ReplaceOutcome::Replaced);
    let page = store
        .page(&"100".into())
        .await
        .unwrap()
        .expect("page should be indexed");
    assert_eq!(page, record("100", "ENG", "Runbook", 3, 2));
    assert!(store.page(&"999".into()).await.unwrap().is_none());
    let vectors = store.chunk_vectors(&"100".into()).await.unwrap();
    let expected = chunks(
        "100",
        "Runbook",
        &[("restart the broker", 0), ("check disk usage", 1)],
    );
    assert_eq!(vectors.len(), 2);
    for c in &expected {
        let v = vectors
            .iter()
            .find(|(h, _)| *h == c.chunk.content_hash)
            .expect("vector by content hash");
        assert_eq!(v.1, c.vector);
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pages, stats.chunks), (1, 2));
    assert_eq!(store.list_pages().await.unwrap(), vec![page.clone()]);
    // What a crawl keeps is the record's, with one shared copy of each rule.
    put(store, "101", "OPS", "Pager", 1, &[("page the on-call", 2)]).await;
    // Read one at a time, in id order, each after the last.
    let first = store.page_states(None, 1).await.unwrap();
    let mut states = first.clone();
    states.extend(store.page_states(Some(&first[0].id), 1).await.unwrap());
    assert!(store
        .page_states(Some(&states[1].id), 1)
        .await
        .unwrap()
        .is_empty());
    let both = store.page_states(None, 5).await.unwrap();
    assert_eq!(both, states, "all of them within the limit");
    assert!(
        Arc::ptr_eq(&both[0].access, &both[1].access),
        "one copy of a rule the pages of one read share"
    );
    let mut of = store
        .page_states_of(&["101".into(), "999".into(), "100".into()])
        .await
        .unwrap();
    of.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(of, states, "the held ones of the ids asked for");
    assert!(store.page_states_of(&[]).await.unwrap().is_empty());
    assert_eq!(
        states
            .iter()
            .map(|s| (
                s.id.as_str(),
                s.space_key.as_str(),
                s.title.as_str(),
                s.version,
                s.chunk_count
            ))
            .collect::<Vec<_>>(),
        [
            ("100", "ENG", "Runbook", 3, 2),
            ("101", "OPS", "Pager", 1, 1)
        ]
    );
    assert_eq!(*states[0].access, page.access);
    assert_eq!(
        states[0].place,
        docbrain_core::PageState::place_of(&page.ancestor_ids)
    );
    assert_ne!(states[0].place, docbrain_core::PageState::place_of(&[]));
    store.delete_page(&"101".into()).await.unwrap();
    let read: Vec<(u32, String)> = store
        .chunks(&"100".into())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.position, c.text))
        .collect();
    assert_eq!(
        read,
        [
            (0, "restart the broker".into()),
            (1, "check disk usage".into())
        ],
        "chunks read back in order"
    );
    assert!(store.chunks(&"999".into()).await.unwrap().is_empty());
}

/// Replacing a page with fewer chunks removes the others, from search too.
async fn shrinking_page_leaves_no_orphans(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    put(
        store,
        "7",
        "ENG",
        "Pager",
        1,
        &[
            ("alpha escalation", 0),
            ("bravo rotation", 1),
            ("charlie handover", 2),
        ],
    )
    .await;
    put(
        store,
        "7",
        "ENG",
        "Pager",
        2,
        &[("alpha escalation updated", 0)],
    )
    .await;
    assert_eq!(store.stats().await.unwrap().chunks, 1);
    let hits = store
        .search(&request("charlie handover", 2, 10, None))
        .await
        .unwrap();
    assert!(!hits.is_empty(), "the remaining chunk still answers");
    assert!(
        hits.iter().all(|h| !h.text.contains("charlie")),
        "orphan chunk found: {hits:?}"
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk_id, "7:0");
}

/// An older version never replaces a newer one; the same version may (sources without versions).
async fn never_rolls_back_a_version(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    put(store, "5", "ENG", "Deploy", 4, &[("version four text", 0)]).await;
    let outcome = put(store, "5", "ENG", "Deploy", 3, &[("version three text", 0)]).await;
    assert_eq!(outcome, ReplaceOutcome::Stale { held: 4 });
    let hits = store
        .search(&request("version text", 0, 5, None))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text, "version four text");
    assert_eq!(store.page(&"5".into()).await.unwrap().unwrap().version, 4);
    let outcome = put(
        store,
        "5",
        "ENG",
        "Deploy",
        4,
        &[("version four edited", 0)],
    )
    .await;
    assert_eq!(outcome, ReplaceOutcome::Replaced);
}

/// Of two writes of one version, the one whose rule was read later stays: a slow writer (a
/// crawl that embedded for seconds) never puts back an open rule over a restriction a faster
/// one (a webhook) wrote since.
async fn keeps_the_rule_read_last(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    let write = |access: ReadAccess, read_ms: u64| {
        let page = IndexedPage {
            access,
            access_read_ms: read_ms,
            ..record("8", "ENG", "Salary", 3, 1)
        };
        async move {
            store
                .replace_page(&page, &chunks("8", "Salary", &[("salary bands", 0)]))
                .await
                .unwrap()
        }
    };
    let hr = ReadAccess::of([layer(&["group:hr"])]);
    assert_eq!(write(hr.clone(), 2_000).await, ReplaceOutcome::Replaced);
    assert_eq!(
        write(ReadAccess::anyone(), 1_000).await,
        ReplaceOutcome::Stale { held: 3 }
    );
    assert_eq!(store.page(&"8".into()).await.unwrap().unwrap().access, hr);
    store.flush().await.unwrap();
    assert!(seen_by(store, Some(Reader::anonymous()), None, 5)
        .await
        .is_empty());
    assert_eq!(
        seen_by(store, None, None, 5).await,
        ["8"],
        "the page is there"
    );
    assert_eq!(
        write(ReadAccess::anyone(), 3_000).await,
        ReplaceOutcome::Replaced
    );
    store.flush().await.unwrap();
    assert_eq!(
        seen_by(store, Some(Reader::anonymous()), None, 5).await,
        ["8"]
    );
}

/// Deleting a page removes its record and every chunk; deleting an absent page is a no-op.
async fn deletes_every_chunk(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    put(store, "1", "ENG", "One", 1, &[("first", 0), ("second", 1)]).await;
    put(store, "2", "ENG", "Two", 1, &[("third", 2)]).await;
    assert_eq!(store.delete_page(&"1".into()).await.unwrap(), 2);
    assert_eq!(store.delete_page(&"1".into()).await.unwrap(), 0);
    assert!(store.page(&"1".into()).await.unwrap().is_none());
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pages, stats.chunks), (1, 1));
    let hits = store
        .search(&request("first second", 0, 10, None))
        .await
        .unwrap();
    assert!(!hits.is_empty(), "page 2 still answers");
    assert!(hits.iter().all(|h| h.page_id.as_str() == "2"), "{hits:?}");
}

/// Every indexed page's `(id, version)`, to compare with a source's truth.
pub async fn indexed_versions(store: &dyn IndexStore) -> std::collections::BTreeSet<(String, u64)> {
    store
        .list_pages()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id.to_string(), p.version))
        .collect()
}

/// A conditional delete keeps a page the index holds at a newer version than the one read
/// (a crawl's stale listing must not delete what a webhook just restored).
async fn deletes_only_the_version_read(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    put(
        store,
        "7",
        "ENG",
        "Restored",
        3,
        &[("restored text", 0), ("more", 1)],
    )
    .await;
    assert_eq!(store.delete_page_if(&"7".into(), 2).await.unwrap(), None);
    assert_eq!(store.page(&"7".into()).await.unwrap().unwrap().version, 3);
    assert_eq!(store.delete_page_if(&"7".into(), 3).await.unwrap(), Some(2));
    assert!(store.page(&"7".into()).await.unwrap().is_none());
    assert_eq!(store.delete_page_if(&"7".into(), 9).await.unwrap(), Some(0));
}

/// Keyword matches and vector neighbours both surface, carrying page details.
async fn hybrid_search_finds_by_keyword_and_vector(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    put(
        store,
        "10",
        "ENG",
        "Kafka Runbook",
        2,
        &[("rebalance partitions with kafka-reassign", 0)],
    )
    .await;
    put(
        store,
        "11",
        "ENG",
        "Postgres Runbook",
        1,
        &[("vacuum bloated tables nightly", 1)],
    )
    .await;
    put(
        store,
        "12",
        "OPS",
        "Oncall",
        1,
        &[("escalate to the incident commander", 2)],
    )
    .await;

    let hits = store
        .search(&request("how do I rebalance partitions", 3, 3, None))
        .await
        .unwrap();
    assert_eq!(
        hits[0].page_id.as_str(),
        "10",
        "keyword match should rank first: {hits:?}"
    );
    let top = &hits[0];
    assert_eq!(top.title, "Kafka Runbook");
    assert_eq!(top.space_key, "ENG");
    assert_eq!(top.heading_path, ["Kafka Runbook", "Section 0"]);
    assert_eq!(
        top.url.as_deref(),
        Some("https://wiki.example.com/pages/10")
    );
    assert!(top.score > 0.0);

    let hits = store
        .search(&request("zzzz unmatched words", 2, 3, None))
        .await
        .unwrap();
    assert_eq!(
        hits[0].page_id.as_str(),
        "12",
        "nearest vector should rank first: {hits:?}"
    );

    let hits = store
        .search(&request("vacuum tables", 1, 3, None))
        .await
        .unwrap();
    assert_eq!(hits[0].page_id.as_str(), "11");
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "hits not sorted: {hits:?}"
    );
}

/// The space filter applies to both rankings and `k` caps the hits.
async fn filters_by_space_and_respects_k(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    for i in 0..6 {
        let space = if i % 2 == 0 { "ENG" } else { "OPS" };
        put(
            store,
            &format!("{i}"),
            space,
            &format!("Page {i}"),
            1,
            &[("shared deploy words", i)],
        )
        .await;
    }
    let hits = store
        .search(&request("deploy", 0, 10, Some("OPS")))
        .await
        .unwrap();
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(hits.iter().all(|h| h.space_key == "OPS"));
    let hits = store.search(&request("deploy", 0, 2, None)).await.unwrap();
    assert_eq!(hits.len(), 2);
    let hits = store
        .search(&request("deploy", 0, 5, Some("NOPE")))
        .await
        .unwrap();
    assert!(hits.is_empty());
}

/// The time of the last completed sync is kept.
async fn records_sync_time(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().last_sync_ms, None);
    store.record_sync(1_700_000_000_000).await.unwrap();
    assert_eq!(
        store.stats().await.unwrap().last_sync_ms,
        Some(1_700_000_000_000)
    );
}

/// Noted permission changes are counted, concurrent ones too.
async fn notes_rule_changes(store: &dyn IndexStore) {
    store.bind_model(&model()).await.unwrap();
    assert_eq!(store.rule_changes().await.unwrap(), 0);
    store.note_rules_changed().await.unwrap();
    assert_eq!(store.rule_changes().await.unwrap(), 1);
    futures_util::future::try_join_all((0..8).map(|_| store.note_rules_changed()))
        .await
        .unwrap();
    assert_eq!(store.rule_changes().await.unwrap(), 9);
    assert_eq!(store.stats().await.unwrap().pages, 0, "the note is no page");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use docbrain_core::{IndexStore, MemoryStore};

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        super::run(|| async { Arc::new(MemoryStore::new()) as Arc<dyn IndexStore> }).await;
    }
}
