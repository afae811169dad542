//! Racing writers against a real node (`OPENSEARCH_URL`, default http://127.0.0.1:9200):
//! here rather than in `tests/` because one test interleaves the steps of a replace.

#![allow(clippy::unwrap_used)] // a panic is the failure report
#![allow(clippy::disallowed_methods)] // a test client reading the local node

use std::sync::Arc;

use docbrain_core::{
    Chunk, EmbeddedChunk, IndexStore, IndexedPage, ModelInfo, PageId, ReadAccess, ReplaceOutcome,
    SearchFilter, SearchRequest,
};

use super::generations::{Held, ABANDONED_AFTER_MS};
use super::{chunk_doc_id, generation_of, now_ms, OpenSearchConfig, OpenSearchStore};
use crate::http::segment;

const PAGE: &str = "runbooks/race.md";

fn url() -> String {
    std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into())
}

/// Two stores on a fresh index of this test, bound to a 3-dimensional model.
async fn two_writers(test: &str) -> (String, Arc<OpenSearchStore>, Arc<OpenSearchStore>) {
    let index = format!("docbrain-unit-{test}-{}", std::process::id());
    let model = ModelInfo {
        model_id: "test/race".into(),
        dimension: 3,
    };
    let mut stores = Vec::new();
    for _ in 0..2 {
        let store = OpenSearchStore::connect(OpenSearchConfig::new(url(), &index))
            .await
            .unwrap_or_else(|e| panic!("{e}\nstart a node with scripts/opensearch.sh start"));
        store.bind_model(&model).await.unwrap();
        stores.push(Arc::new(store));
    }
    let b = stores.pop().unwrap();
    (index, stores.pop().unwrap(), b)
}

fn page(version: u64, chunks: u32) -> IndexedPage {
    IndexedPage {
        id: PageId::new(PAGE),
        space_key: "ENG".into(),
        title: "Race".into(),
        version,
        url: None,
        ancestors: vec![],
        labels: vec![],
        content_hash: format!("hash-{version}"),
        chunk_count: chunks,
        ancestor_ids: vec![],
        access: ReadAccess::anyone(),
        access_read_ms: 0,
        source: String::new(),
        parent: None,
        parts: Vec::new(),
    }
}

fn chunks(version: u64, n: u32) -> Vec<EmbeddedChunk> {
    (0..n)
        .map(|i| EmbeddedChunk {
            chunk: Chunk::new(
                &PageId::new(PAGE),
                i,
                vec!["Race".into()],
                &format!("version {version} part {i} failover drill"),
                5,
            ),
            vector: vec![1.0, i as f32, version as f32],
        })
        .collect()
}

async fn post(path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{}/{path}", url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What a reader sees after a refresh: the held version, the versions of the chunks search
/// finds, the number of vectors the page holds, and every chunk document in the index.
async fn seen(index: &str, store: &OpenSearchStore) -> (u64, Vec<String>, usize, u64) {
    post(&format!("{index}/_refresh")).await;
    let held = store.page(&PageId::new(PAGE)).await.unwrap().unwrap();
    let request = SearchRequest {
        text: "failover drill".into(),
        vector: vec![1.0, 0.0, 0.0],
        k: 20,
        filter: SearchFilter::default(),
        reader: None,
    };
    let mut versions: Vec<String> = store
        .search(&request)
        .await
        .unwrap()
        .iter()
        .map(|h| h.text.split(' ').nth(1).unwrap_or_default().to_owned())
        .collect();
    versions.sort();
    let vectors = store.chunk_vectors(&PageId::new(PAGE)).await.unwrap().len();
    let count = post(&format!("{index}/_count")).await["count"]
        .as_u64()
        .unwrap();
    (held.version, versions, vectors, count)
}

/// Asserts that readers see version `version` of the page with its two chunks, and that the
/// index holds nothing else.
async fn assert_only(index: &str, store: &OpenSearchStore, version: u64, context: &str) {
    let v = version.to_string();
    assert_eq!(
        seen(index, store).await,
        (version, vec![v.clone(), v], 2, 2),
        "{context}"
    );
}

async fn drop_index(index: &str) {
    reqwest::Client::new()
        .delete(format!("{}/{index}*", url()))
        .send()
        .await
        .unwrap();
}

/// A replace of `version` with `n` chunks stopped after step 1: its chunks are written (and
/// visible to a sweep after a refresh) but the page record is not switched yet.
struct Paused {
    page: IndexedPage,
    chunks: Vec<EmbeddedChunk>,
    generation: String,
    held: Option<Held>,
}

async fn write_then_pause(store: &OpenSearchStore, index: &str, version: u64, n: u32) -> Paused {
    let (page, chunks) = (page(version, n), chunks(version, n));
    let generation = generation_of(&page, &chunks);
    let held = store.held(&page.id).await.unwrap();
    store
        .write_generation(&page, &chunks, &generation, held.as_ref())
        .await
        .unwrap();
    post(&format!("{index}/_refresh")).await;
    Paused {
        page,
        chunks,
        generation,
        held,
    }
}

/// Resumes a paused replace at step 2, with the record it read before pausing.
async fn resume(store: &OpenSearchStore, paused: Paused) -> ReplaceOutcome {
    store
        .switch_to(
            &paused.page,
            &paused.chunks,
            &paused.generation,
            paused.held,
        )
        .await
        .unwrap()
}

/// A newer write paused before its switch while an older write completes: the older write's
/// sweep leaves the newer chunks alone, and the newer write then wins.
#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn an_older_write_never_sweeps_a_newer_write_in_flight() {
    let (index, a, b) = two_writers("inflight").await;
    a.replace_page(&page(1, 3), &chunks(1, 3)).await.unwrap();
    let newer = write_then_pause(&b, &index, 3, 2).await;
    let older = a.replace_page(&page(2, 4), &chunks(2, 4)).await.unwrap();
    assert_eq!(older, ReplaceOutcome::Replaced);
    assert_eq!(resume(&b, newer).await, ReplaceOutcome::Replaced);
    assert_only(&index, &a, 3, "").await;
    drop_index(&index).await;
}

/// The mirror image: the older write pauses, the newer completes, then the older resumes,
/// finds itself stale and removes its own chunks.
#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn an_older_write_that_loses_removes_its_own_chunks() {
    let (index, a, b) = two_writers("loser").await;
    a.replace_page(&page(1, 3), &chunks(1, 3)).await.unwrap();
    let older = write_then_pause(&a, &index, 2, 4).await;
    let newer = b.replace_page(&page(3, 2), &chunks(3, 2)).await.unwrap();
    assert_eq!(newer, ReplaceOutcome::Replaced);
    assert_eq!(resume(&a, older).await, ReplaceOutcome::Stale { held: 3 });
    assert_only(&index, &b, 3, "").await;
    drop_index(&index).await;
}

/// A delete racing a newer write: the delete removes what it saw, the newer write then lands
/// whole (a newer version wins over the deletion of an older one).
#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn a_delete_never_sweeps_a_newer_write_in_flight() {
    let (index, a, b) = two_writers("delete").await;
    a.replace_page(&page(1, 3), &chunks(1, 3)).await.unwrap();
    let newer = write_then_pause(&b, &index, 2, 2).await;
    assert_eq!(a.delete_page(&PageId::new(PAGE)).await.unwrap(), 3);
    assert_eq!(resume(&b, newer).await, ReplaceOutcome::Replaced);
    assert_only(&index, &a, 2, "").await;
    drop_index(&index).await;
}

/// Chunks of a crashed write (never switched to, written long ago) go at the next delete,
/// even when their version is newer than the record's; a recent write in flight stays.
#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn abandoned_chunks_are_swept_but_a_write_in_flight_is_not() {
    let (index, a, b) = two_writers("abandoned").await;
    a.replace_page(&page(1, 3), &chunks(1, 3)).await.unwrap();
    let crashed = write_then_pause(&b, &index, 5, 2).await;
    let long_ago = now_ms() - ABANDONED_AFTER_MS - 60_000;
    for position in 0..2 {
        let id = chunk_doc_id(&crashed.page.id, &crashed.generation, position);
        let update = reqwest::Client::new()
            .post(format!("{}/{index}/_update/{}", url(), segment(&id)))
            .json(&serde_json::json!({"doc": {"updated_at": long_ago}}))
            .send()
            .await
            .unwrap();
        assert!(update.status().is_success(), "{}", update.status());
    }
    let in_flight = write_then_pause(&b, &index, 6, 2).await;
    assert_eq!(a.delete_page(&PageId::new(PAGE)).await.unwrap(), 3);
    assert_eq!(resume(&b, in_flight).await, ReplaceOutcome::Replaced);
    assert_only(&index, &a, 6, "").await;
    drop_index(&index).await;
}

/// Free-running races: whatever the interleaving, the newest version ends whole and alone.
#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn racing_writers_end_with_the_newest_version_only() {
    let (index, a, b) = two_writers("race").await;
    for round in 0..10u64 {
        let (old, new) = (10 * round + 1, 10 * round + 2);
        let (wa, wb) = (a.clone(), b.clone());
        let older =
            tokio::spawn(async move { wa.replace_page(&page(old, 4), &chunks(old, 4)).await });
        let newer =
            tokio::spawn(async move { wb.replace_page(&page(new, 2), &chunks(new, 2)).await });
        let (older, newer) = (older.await.unwrap().unwrap(), newer.await.unwrap().unwrap());
        assert_eq!(newer, ReplaceOutcome::Replaced, "round {round}");
        assert!(
            matches!(
                older,
                ReplaceOutcome::Replaced | ReplaceOutcome::Stale { .. }
            ),
            "round {round}: {older:?}"
        );
        assert_only(&index, &a, new, &format!("round {round}")).await;
    }
    drop_index(&index).await;
}

#[test]
fn a_listing_with_a_failed_shard_or_no_hits_is_an_error_never_a_shorter_list() {
    let mut whole = serde_json::json!({
        "_shards": {"total": 2, "successful": 2, "failed": 0},
        "hits": {"hits": [{"_id": "1"}, {"_id": "2"}]}
    });
    assert_eq!(super::whole_hits(&mut whole).unwrap().len(), 2);
    let mut cut = serde_json::json!({
        "_shards": {"total": 2, "successful": 1, "failed": 1, "failures": [{"reason": {"type": "node_disconnected_exception"}}]},
        "hits": {"hits": [{"_id": "1"}]}
    });
    let err = super::whole_hits(&mut cut).unwrap_err();
    assert!(
        err.contains("1 of 2 shards failed") && err.contains("node_disconnected"),
        "{err}"
    );
    let mut empty = serde_json::json!({"_shards": {"total": 1, "failed": 0}});
    assert!(super::whole_hits(&mut empty).is_err());
}
