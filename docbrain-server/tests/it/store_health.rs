//! Health that tells the truth about the index store and a remote embedder: each is taken away
//! under a running server (the real OpenSearch node behind a loopback proxy that is cut, and an
//! OpenAI-compatible stand-in that stops listening) while Confluence edits keep arriving.
//! Events stay acknowledged and are all indexed after recovery; `/readyz` answers within a
//! second, 503 naming the part during the outage and 200 after; the failure counters rise and
//! the seconds since success grow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Simulator, PAT};
use docbrain_confluence::webhook::{self, BodyShape, PageEvent};
use docbrain_confluence::ConfluenceSettings;
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::{MarkdownChunker, PageId, Pipeline, Secret};
use docbrain_http::RetryPolicy;
use docbrain_index::{OpenSearchConfig, OpenSearchStore, RemoteConfig};
use docbrain_server::WebhookSettings;
use docbrain_server::{router, AppState, Metrics, Webhook};
use docbrain_testsuite::until;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const SECRET: &str = "health-secret";
const KEY: &str = "sk-health";

/// A TCP proxy on loopback to `target` that can be cut (every connection dropped, the port
/// closed) and restored on the same port: a store outage as the server sees it.
struct Proxy {
    addr: SocketAddr,
    target: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxy = Self {
            addr: listener.local_addr().unwrap(),
            target: target.to_owned(),
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropped with the task: aborting it cuts every connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

struct World {
    sim: Simulator,
    state: AppState,
    proxy: Proxy,
    fake: crate::fake::Fake,
    index: String,
    node: String,
    _dir: tempfile::TempDir,
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
    }
}

impl World {
    async fn new() -> Self {
        let node =
            std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into());
        let target = node
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let proxy = Proxy::start(&target).await;
        let fake = crate::fake::Fake::start(crate::fake::Settings::openai(KEY)).await;
        let sim = Simulator::start().await.unwrap();
        sim.set_anonymous_access(true);
        let mut site = ConfluenceSettings::new(sim.base_url_v1(), ApiVersion::V1, Secret::new(PAT));
        site.anonymous_access = true;
        let mut config = ConfluenceConfig::from(site);
        config.retry = quick();
        let index = format!("docbrain-test-health-{}", std::process::id());
        let mut store = OpenSearchConfig::new(format!("http://{}", proxy.addr), &index);
        store.retry = quick();
        let mut embedder = RemoteConfig::openai("text-embedding-3-small");
        embedder.base_url = format!("http://{}/v1", fake.addr());
        embedder.api_key = Some(Secret::new(KEY));
        embedder.retry = quick();
        let pipeline = Pipeline::new(
            Arc::new(ConfluenceClient::new(config).unwrap()),
            Arc::new(MarkdownChunker::default()),
            Arc::new(embedder.connect().await.unwrap()),
            Arc::new(
                OpenSearchStore::connect(store)
                    .await
                    .expect("an OpenSearch node: scripts/opensearch.sh start"),
            ),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut hooks = WebhookSettings::new(Secret::new(SECRET), dir.path().join("journal"));
        hooks.debounce = Duration::from_millis(10);
        hooks.retry_initial = Duration::from_millis(200);
        hooks.retry_max = Duration::from_millis(500);
        hooks.max_attempts = 1_000;
        let metrics = Arc::new(Metrics::default());
        let webhook = Webhook::start(hooks, &pipeline, metrics.clone()).unwrap();
        let state = AppState::new(pipeline.clone(), Some(webhook), metrics, Default::default());
        Self {
            sim,
            state,
            proxy,
            fake,
            index,
            node,
            _dir: dir,
        }
    }

    async fn call(&self, request: Request<Full<Bytes>>) -> (u16, String) {
        let response = router(&self.state, request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.call(
            Request::get(path)
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
    }

    /// Edits page `id` in Confluence and delivers its signed event; the delivery must be
    /// acknowledged whatever the store does.
    async fn edit(&self, id: &PageId, text: &str) -> u64 {
        let version = self.sim.edit_page(id, &format!("<p>{text}</p>")).unwrap();
        let body = self
            .sim
            .webhook_body(PageEvent::Updated, id, BodyShape::DataCenter);
        let (status, answer) = self
            .call(
                Request::post("/confluence/events")
                    .header("content-type", "application/json")
                    .header(
                        "x-hub-signature",
                        webhook::sign(SECRET.as_bytes(), body.as_bytes()),
                    )
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            status, 200,
            "an event during the outage is acknowledged: {answer}"
        );
        version
    }

    /// `/readyz`, timed: it must answer within a second whatever the store does.
    async fn ready(&self) -> (u16, String) {
        let started = Instant::now();
        let answer = self.get("/readyz").await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "/readyz took {:?}",
            started.elapsed()
        );
        answer
    }

    /// A metric's value (the first sample of that name).
    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// Whether the index holds page `id` at `version`, read from the node directly.
    async fn indexed(&self, id: &PageId, version: u64) -> bool {
        let direct = OpenSearchStore::connect(OpenSearchConfig::new(&self.node, &self.index))
            .await
            .unwrap();
        use docbrain_core::IndexStore;
        direct
            .page(id)
            .await
            .unwrap()
            .is_some_and(|p| p.version == version)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn readiness_and_metrics_follow_store_and_embedder_outages() {
    let mut w = World::new().await;
    let pages: Vec<PageId> = (0..4)
        .map(|i| {
            w.sim
                .create_page("ENG", &format!("Runbook {i}"), "<p>first text</p>")
        })
        .collect();
    for id in &pages {
        let version = w.edit(id, "second text").await;
        until(
            Duration::from_secs(10),
            "the first edits are indexed",
            || w.indexed(id, version),
        )
        .await;
    }
    assert_eq!(w.ready().await.0, 200);

    // The store goes away: events are still acknowledged, readiness names the store.
    w.proxy.cut();
    let failures = w.metric("docbrain_index_store_call_failures_total").await;
    let mut versions = Vec::new();
    for (i, id) in pages.iter().enumerate() {
        versions.push(w.edit(id, &format!("edited during the outage {i}")).await);
    }
    until(
        Duration::from_secs(10),
        "readiness reports the store",
        || async {
            let (status, body) = w.ready().await;
            status == 503 && body.contains("index store (opensearch)")
        },
    )
    .await;
    let (_, body) = w.ready().await;
    assert!(
        !body.contains(&w.proxy.addr.to_string()),
        "no address in {body}"
    );
    until(
        Duration::from_secs(10),
        "store failures are counted",
        || async { w.metric("docbrain_index_store_call_failures_total").await > failures },
    )
    .await;
    let age = w.metric("docbrain_index_store_seconds_since_success").await;
    until(
        Duration::from_secs(10),
        "the seconds since success grow",
        || async { w.metric("docbrain_index_store_seconds_since_success").await > age + 0.5 },
    )
    .await;
    assert!(w.metric("docbrain_webhook_retrying").await >= 1.0);

    // Back: every acknowledged event is indexed, and readiness returns.
    w.proxy.restore().await;
    for (id, version) in pages.iter().zip(&versions) {
        until(
            Duration::from_secs(20),
            "the outage's edits are indexed",
            || w.indexed(id, *version),
        )
        .await;
    }
    until(Duration::from_secs(5), "readiness returns", || async {
        w.ready().await.0 == 200
    })
    .await;

    // The embedding service goes away: the same, naming it.
    w.fake.stop().await;
    let failures = w.metric("docbrain_embedder_call_failures_total").await;
    let version = w.edit(&pages[0], "edited while embeddings are down").await;
    until(
        Duration::from_secs(10),
        "readiness reports the embedder",
        || async {
            let (status, body) = w.ready().await;
            status == 503 && body.contains("embedding service")
        },
    )
    .await;
    assert!(w.metric("docbrain_embedder_call_failures_total").await > failures);
    let age = w.metric("docbrain_embedder_seconds_since_success").await;
    until(
        Duration::from_secs(10),
        "the embedder's seconds since success grow",
        || async { w.metric("docbrain_embedder_seconds_since_success").await > age + 0.5 },
    )
    .await;
    w.fake.restart().await;
    until(Duration::from_secs(20), "the edit is indexed", || {
        w.indexed(&pages[0], version)
    })
    .await;
    until(Duration::from_secs(5), "readiness returns", || async {
        w.ready().await.0 == 200
    })
    .await;
    let _ = reqwest::Client::new()
        .delete(format!("{}/{}*", w.node.trim_end_matches('/'), w.index))
        .send()
        .await;
}
