//! The remote embedders against real HTTP servers on loopback that answer like OpenAI and
//! Ollama do (shapes of requests, answers and error bodies), with injected faults.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::fake::{Fake, Settings};
use docbrain_confluence::LocalFetcher;
use docbrain_core::{
    Embedder, ErrorKind, IndexStore, MarkdownChunker, Pipeline, Scope, SearchFilter, Secret,
};
use docbrain_index::{EmbeddedStore, IndexError, RemoteConfig, RetryPolicy};
use docbrain_testsuite::until;

const KEY: &str = "sk-test-0123456789";

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
    }
}

fn openai(fake: &Fake) -> RemoteConfig {
    let mut c = RemoteConfig::openai("text-embedding-3-small");
    c.base_url = format!("http://{}/v1", fake.addr());
    c.api_key = Some(Secret::new(KEY));
    c.retry = quick_retries();
    c
}

fn ollama(fake: &Fake) -> RemoteConfig {
    let mut c = RemoteConfig::ollama("nomic-embed-text");
    c.base_url = format!("http://{}", fake.addr());
    c.retry = quick_retries();
    c
}

/// The sample space's pages (its attachments are not what these tests are about).
fn sample_space() -> LocalFetcher {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-space");
    LocalFetcher::new(root, "LOCAL").unwrap().with_attachments(
        docbrain_confluence::AttachmentSettings {
            enabled: false,
            ..Default::default()
        },
    )
}

/// Syncs the sample space through `embedder` into a fresh embedded store; returns the pipeline.
async fn ingest(embedder: Arc<dyn Embedder>, dir: &Path) -> Pipeline {
    let store = EmbeddedStore::open(dir).unwrap();
    let pipeline = Pipeline::new(
        Arc::new(sample_space()),
        Arc::new(MarkdownChunker::default()),
        embedder,
        Arc::new(store),
    )
    .await
    .unwrap();
    let report = pipeline.sync(&Scope::all()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.pages_updated, 20, "{report:?}");
    pipeline
}

async fn top_page(pipeline: &Pipeline, question: &str) -> String {
    let hits = pipeline
        .search(question, 3, &SearchFilter::default())
        .await
        .unwrap();
    hits[0].page_id.to_string()
}

#[tokio::test]
async fn openai_ingest_and_search_end_to_end() {
    let fake = Fake::start(Settings::openai(KEY)).await;
    let embedder = openai(&fake).connect().await.unwrap();
    assert_eq!(embedder.model().model_id, "openai:text-embedding-3-small");
    assert_eq!(embedder.model().dimension, 64);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = ingest(Arc::new(embedder), dir.path()).await;
    assert_eq!(
        top_page(&pipeline, "restart the payments service").await,
        "runbooks/payments-service-restart.md"
    );
    assert_eq!(
        pipeline.store().stats().await.unwrap().model_id.as_deref(),
        Some("openai:text-embedding-3-small")
    );
}

#[tokio::test]
async fn ollama_ingest_and_search_end_to_end() {
    let fake = Fake::start(Settings::ollama()).await;
    let embedder = ollama(&fake).connect().await.unwrap();
    assert_eq!(embedder.model().model_id, "ollama:nomic-embed-text");
    let dir = tempfile::tempdir().unwrap();
    let pipeline = ingest(Arc::new(embedder), dir.path()).await;
    assert_eq!(
        top_page(&pipeline, "rotate database credentials in vault").await,
        "runbooks/rotate-credentials.md"
    );
    assert!(
        fake.state.saw_truncate.load(Ordering::SeqCst),
        "Ollama must be asked to truncate"
    );
}

#[tokio::test]
async fn openai_dimensions_are_requested_and_checked() {
    let fake = Fake::start(Settings::openai(KEY)).await;
    let mut config = openai(&fake);
    config.dimensions = Some(32);
    let embedder = config.connect().await.unwrap();
    assert_eq!(embedder.model().dimension, 32);
    let v = embedder
        .embed(&["one".into(), "two words".into()])
        .await
        .unwrap();
    assert_eq!((v.len(), v[0].len()), (2, 32));
    let norm: f32 = v[1].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "vectors are normalised: {norm}");
}

#[tokio::test]
async fn a_rate_limit_burst_loses_nothing() {
    let fake = Fake::start(Settings::openai(KEY)).await;
    let embedder = openai(&fake).connect().await.unwrap();
    fake.state.fail_next(429, Some("0"), 4);
    fake.state
        .fail_next(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), 1);
    fake.state.fail_next(503, None, 2);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = ingest(Arc::new(embedder), dir.path()).await;
    assert_eq!(
        fake.state.failed.load(Ordering::SeqCst),
        7,
        "every injected failure was met"
    );
    assert_eq!(pipeline.store().stats().await.unwrap().pages, 20);
}

#[tokio::test]
async fn a_server_restart_mid_crawl_loses_nothing() {
    let mut settings = Settings::ollama();
    settings.delay = Duration::from_millis(40);
    let mut fake = Fake::start(settings).await;
    let embedder = ollama(&fake).connect().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let embedder: Arc<dyn Embedder> = Arc::new(embedder);
    let pipeline = Pipeline::new(
        Arc::new(sample_space()),
        Arc::new(MarkdownChunker::default()),
        embedder.clone(),
        Arc::new(store),
    )
    .await
    .unwrap();
    let crawl = tokio::spawn(async move { pipeline.sync(&Scope::all()).await });
    // Let a few pages through, then take the server down for a second and bring it back.
    while fake.state.served.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.stop().await;
    let served_before = fake.state.served.load(Ordering::SeqCst);
    // The embedder meets the outage (its calls fail and are retried) while the crawl waits.
    let failed = embedder.health().map_or(0, |h| h.failed_calls);
    until(
        Duration::from_secs(10),
        "a failed call during the outage",
        || async { embedder.health().is_some_and(|h| h.failed_calls > failed) },
    )
    .await;
    assert!(
        !crawl.is_finished(),
        "the crawl must still be waiting for the server"
    );
    fake.restart().await;
    let report = crawl.await.unwrap().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.pages_updated, 20);
    assert!(
        fake.state.served.load(Ordering::SeqCst) > served_before,
        "the crawl went on after the restart"
    );
}

#[tokio::test]
async fn refused_keys_and_unknown_models_fail_at_once_with_the_setting_to_fix() {
    let fake = Fake::start(Settings::openai(KEY)).await;
    let mut config = openai(&fake);
    config.api_key = Some(Secret::new("sk-wrong-secret-value"));
    let err = config.connect().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, IndexError::ProviderAuth { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("OPENAI_API_KEY") && msg.contains("Incorrect API key"),
        "{msg}"
    );
    assert!(
        !msg.contains("sk-wrong-secret-value"),
        "the key leaked: {msg}"
    );
    assert_eq!(
        fake.state.requests.load(Ordering::SeqCst),
        1,
        "401 is not retried"
    );
    assert_eq!(
        docbrain_core::Error::from(err).kind(),
        ErrorKind::Unauthorized
    );

    let mut config = openai(&fake);
    config.model = "text-embedding-9".into();
    let msg = config.connect().await.unwrap_err().to_string();
    assert!(
        msg.contains("does not serve model text-embedding-9") && msg.contains("EMBED_MODEL_ID"),
        "{msg}"
    );

    let fake = Fake::start(Settings::ollama()).await;
    let mut config = ollama(&fake);
    config.model = "mxbai-embed-large".into();
    let err = config.connect().await.unwrap_err();
    assert!(
        err.to_string().contains("ollama pull mxbai-embed-large"),
        "{err}"
    );
    assert_eq!(
        docbrain_core::Error::from(err).kind(),
        ErrorKind::InvalidConfig
    );
}

#[tokio::test]
async fn long_inputs_are_truncated_not_rejected() {
    let mut settings = Settings::openai(KEY);
    settings.max_input_chars = Some(700);
    let fake = Fake::start(settings).await;
    let embedder = openai(&fake).connect().await.unwrap();
    let long = "word ".repeat(1000);
    let v = embedder.embed(&[long, "short".into()]).await.unwrap();
    assert_eq!(v.len(), 2);
    assert!(fake.state.rejected_too_long.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn a_service_that_never_answers_is_reported_after_the_retries() {
    let fake = Fake::start(Settings::ollama()).await;
    let mut config = ollama(&fake);
    config.retry.max_attempts = 3;
    config.retry.initial_backoff = Duration::from_millis(10);
    let mut fake = fake;
    fake.stop().await;
    let err = config.connect().await.unwrap_err();
    assert!(
        err.to_string().contains("did not answer after 3 attempts"),
        "{err}"
    );
    assert_eq!(docbrain_core::Error::from(err).kind(), ErrorKind::Transport);
}

#[tokio::test]
async fn a_model_change_on_an_existing_index_is_refused() {
    let openai_fake = Fake::start(Settings::openai(KEY)).await;
    let ollama_fake = Fake::start(Settings::ollama()).await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn IndexStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let first = openai(&openai_fake).connect().await.unwrap();
    Pipeline::searcher(Arc::new(first), store.clone())
        .await
        .unwrap();
    let second = ollama(&ollama_fake).connect().await.unwrap();
    let err = Pipeline::searcher(Arc::new(second), store)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let msg = err.to_string();
    assert!(
        msg.contains("openai:text-embedding-3-small") && msg.contains("ollama:nomic-embed-text"),
        "{msg}"
    );
    let hint = docbrain_server::settings::flags::hint(&err).unwrap_or_default();
    assert!(hint.contains("re-index"), "{hint}");
}
