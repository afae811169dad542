//! The OpenSearch store against a real node (`scripts/opensearch.sh start`; `OPENSEARCH_URL`,
//! default http://127.0.0.1:9200). Each test works in indices of its own and deletes them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use docbrain_core::{ErrorKind, IndexStore, ModelInfo};
use docbrain_index::{OpenSearchConfig, OpenSearchStore};
use docbrain_testsuite::LetterEmbedder;

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
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn conformance_suite_passes_against_a_real_node() {
    docbrain_testsuite::run(|| async {
        let store: Arc<dyn IndexStore> = Arc::new(store(&fresh_index("conf")).await);
        store
    })
    .await;
    cleanup("conf").await;
}

fn model() -> ModelInfo {
    ModelInfo {
        model_id: "test/model".into(),
        dimension: 3,
    }
}

#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
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
    assert!(message.contains("test/model"), "{message}");
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
