//! The OpenSearch store against a real node (`scripts/opensearch.sh start`; `OPENSEARCH_URL`,
//! default http://127.0.0.1:9200). Each test works in indices of its own and deletes them.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use docbrain_core::testsuite::{self, LetterEmbedder};
use docbrain_core::{
    Chunk, EmbeddedChunk, ErrorKind, IndexStore, IndexedPage, ModelInfo, PageId, ReplaceOutcome,
    SearchFilter, SearchRequest,
};
use docbrain_index::{OpenSearchConfig, OpenSearchStore};

fn url() -> String {
    std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into())
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh index name for this process and test.
fn fresh_index(test: &str) -> String {
    format!(
        "docbrain-test-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

async fn store(index: &str) -> OpenSearchStore {
    OpenSearchStore::connect(OpenSearchConfig::new(url(), index))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no OpenSearch node at {}: {e}\nstart one with scripts/opensearch.sh start",
                url()
            )
        })
}

/// Deletes every index of one test.
async fn cleanup(test: &str) {
    let pattern = format!("docbrain-test-{test}-{}-*", std::process::id());
    reqwest::Client::new()
        .delete(format!("{}/{pattern}", url()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn conformance_suite_passes_against_a_real_node() {
    testsuite::run(|| async {
        let store: Arc<dyn IndexStore> = Arc::new(store(&fresh_index("conf")).await);
        store
    })
    .await;
    cleanup("conf").await;
}

fn model() -> ModelInfo {
    ModelInfo {
        model_id: "test/race".into(),
        dimension: 3,
    }
}

fn page(version: u64, chunks: u32) -> IndexedPage {
    IndexedPage {
        id: PageId::new("runbooks/race.md"),
        space_key: "ENG".into(),
        title: "Race".into(),
        version,
        url: None,
        ancestors: vec![],
        labels: vec![],
        content_hash: format!("hash-{version}"),
        chunk_count: chunks,
    }
}

fn chunks(version: u64, n: u32) -> Vec<EmbeddedChunk> {
    (0..n)
        .map(|i| EmbeddedChunk {
            chunk: Chunk::new(
                &PageId::new("runbooks/race.md"),
                i,
                vec!["Race".into()],
                &format!("version {version} part {i} failover drill"),
                5,
            ),
            vector: vec![1.0, i as f32, version as f32],
        })
        .collect()
}

#[tokio::test]
async fn racing_writers_end_with_the_newest_version_only() {
    let index = fresh_index("race");
    let a = Arc::new(store(&index).await);
    let b = Arc::new(store(&index).await);
    a.bind_model(&model()).await.unwrap();
    b.bind_model(&model()).await.unwrap();
    for round in 0..5u64 {
        let (old, new) = (10 * round + 1, 10 * round + 2);
        let (wa, wb) = (a.clone(), b.clone());
        let older =
            tokio::spawn(async move { wa.replace_page(&page(old, 4), &chunks(old, 4)).await });
        let newer =
            tokio::spawn(async move { wb.replace_page(&page(new, 2), &chunks(new, 2)).await });
        let (older, newer) = (older.await.unwrap().unwrap(), newer.await.unwrap().unwrap());
        assert_eq!(newer, ReplaceOutcome::Replaced);
        assert!(matches!(
            older,
            ReplaceOutcome::Replaced | ReplaceOutcome::Stale { .. }
        ));
        // Another writer's chunks become searchable at the next refresh (1 s by default).
        refresh(&index).await;
        let held = a
            .page(&PageId::new("runbooks/race.md"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.version, new, "round {round}: rolled back");
        let hits = a
            .search(&SearchRequest {
                text: "failover drill".into(),
                vector: vec![1.0, 0.0, 0.0],
                k: 20,
                filter: SearchFilter::default(),
            })
            .await
            .unwrap();
        assert_eq!(hits.len(), 2, "round {round}: {hits:?}");
        assert!(
            hits.iter()
                .all(|h| h.text.starts_with(&format!("version {new} "))),
            "{hits:?}"
        );
        let vectors = a
            .chunk_vectors(&PageId::new("runbooks/race.md"))
            .await
            .unwrap();
        assert_eq!(vectors.len(), 2);
    }
    // Both writers' leftovers are gone: the index holds exactly the live page's chunks.
    refresh(&index).await;
    let count: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/{index}/_count", url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["count"], 2, "{count}");
    cleanup("race").await;
}

async fn refresh(index: &str) {
    reqwest::Client::new()
        .post(format!("{}/{index}/_refresh", url()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn another_model_is_refused_with_how_to_reindex() {
    let index = fresh_index("model");
    let s = store(&index).await;
    s.bind_model(&model()).await.unwrap();
    let other = LetterEmbedder::default();
    let err = s
        .bind_model(&docbrain_core::Embedder::model(&other))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let message = err.to_string();
    assert!(message.contains(&index), "{message}");
    assert!(message.contains("OPENSEARCH_INDEX"), "{message}");
    assert!(message.contains("test/race"), "{message}");
    cleanup("model").await;
}

#[tokio::test]
async fn unreachable_and_misnamed_settings_are_named() {
    let mut config = OpenSearchConfig::new("http://127.0.0.1:9", "docbrain-chunks");
    config.retry.max_attempts = 2;
    config.retry.initial_backoff = std::time::Duration::from_millis(10);
    let err = OpenSearchStore::connect(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("OPENSEARCH_URL"), "{err}");
    let err = OpenSearchStore::connect(OpenSearchConfig::new(url(), "Bad Name"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("OPENSEARCH_INDEX"), "{err}");
}
