//! How long `POST /confluence/events` takes to answer a permission event, by the number of
//! pages indexed: the answer journals the event and leaves the pages it reaches to a worker, so
//! it does not grow with the index. Beside it, the cost of reading every record once (what the
//! answer did before, and what the worker now does after it).
//!
//! Then the same events while a crawl on the same runtime converts and chunks large pages
//! (`ACK_CRAWL_PAGES` pages of about 1 MB of storage format each, default 24): the answer must
//! not wait on that work.
//!
//!   cargo bench -p docbrain-server --bench ack            # 1,000 and 100,000 pages, then the crawl
//!   ACK_PAGES=10000 cargo bench -p docbrain-server --bench ack

#![allow(clippy::unwrap_used, clippy::disallowed_methods, clippy::print_stdout)] // a bench: it prints its figures, and a panic is the report

use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Simulator, PAT};
use docbrain_confluence::webhook;
use docbrain_confluence::ConfluenceSettings;
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::{
    Embedder, IndexStore, IndexedPage, MarkdownChunker, MemoryStore, ModelInfo, Page, Pipeline,
    Secret,
};
use docbrain_server::{serve, AppState, Metrics, Webhook};
use docbrain_server::{ServerSettings, WebhookSettings};
use docbrain_testsuite::LetterEmbedder;
use tokio::net::TcpListener;

const SECRET: &str = "ack-bench-secret";
const EVENTS: usize = 200;

#[tokio::main]
async fn main() {
    let big: usize = std::env::var("ACK_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    println!("ack of content_permissions_updated, {EVENTS} events one after another, memory store; {cpu}");
    for pages in [1_000, big] {
        run(pages).await;
    }
    let crawl_pages = std::env::var("ACK_CRAWL_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    during_a_crawl(crawl_pages).await;
}

/// About 1 MB of storage format: sections of paragraphs, lists, a table and code.
fn large_body(n: usize) -> String {
    let mut body = String::new();
    for section in 0..120 {
        body.push_str(&format!("<h2>Section {section} of page {n}</h2>"));
        for p in 0..10 {
            body.push_str(&format!(
                "<p>Paragraph {p} of section {section}: <strong>deploys</strong> roll out in waves; <a href=\"https://example.com/{p}\">the runbook</a> says what to check before the next wave starts.</p>"
            ));
        }
        body.push_str(
            "<ul><li>first check</li><li>second check with <code>kubectl get pods</code></li></ul>",
        );
        body.push_str("<table><tbody><tr><th>step</th><th>owner</th></tr><tr><td>drain</td><td>ops</td></tr><tr><td>verify</td><td>dev</td></tr></tbody></table>");
        body.push_str("<ac:structured-macro ac:name=\"code\"><ac:plain-text-body><![CDATA[fn main() { println!(\"wave\"); }]]></ac:plain-text-body></ac:structured-macro>");
    }
    body
}

/// Stands in for an embedder that does its work elsewhere (the local model's own thread, a
/// remote service): no CPU on the async threads.
#[derive(Debug)]
struct Elsewhere;

#[async_trait::async_trait]
impl Embedder for Elsewhere {
    fn model(&self) -> ModelInfo {
        ModelInfo {
            model_id: "elsewhere".into(),
            dimension: 4,
        }
    }
    async fn embed(&self, texts: &[String]) -> docbrain_core::Result<Vec<Vec<f32>>> {
        Ok(vec![vec![0.5; 4]; texts.len()])
    }
}

/// A simulator on a runtime of its own, as Confluence is on machines of its own: its work is
/// not the server's.
fn simulator_apart() -> Simulator {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tx.send(Simulator::start().await.unwrap()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Acks of permission events while a crawl of `pages` large pages runs on the same runtime.
async fn during_a_crawl(pages: usize) {
    let sim = simulator_apart();
    let mut site = ConfluenceSettings::new(sim.base_url_v1(), ApiVersion::V1, Secret::new(PAT));
    site.space_keys = vec!["ENG".into()];
    let bytes: usize = (0..pages)
        .map(|n| {
            let body = large_body(n);
            sim.create_page("ENG", &format!("Large page {n}"), &body);
            body.len()
        })
        .sum();
    // The page the events name (each answer leaves its re-read to a worker).
    let small = sim.create_page("ENG", "Small", "<p>small</p>");
    let pipeline = Pipeline::new(
        Arc::new(ConfluenceClient::new(ConfluenceConfig::from(site)).unwrap()),
        Arc::new(MarkdownChunker::default()),
        Arc::new(Elsewhere),
        Arc::new(MemoryStore::new()),
    )
    .await
    .unwrap();
    let server = start(&pipeline).await;
    let crawl = {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let report = pipeline.sync(&docbrain_core::Scope::all()).await.unwrap();
            (report, started.elapsed())
        })
    };
    // The events come from elsewhere (Confluence), so the client runs on a thread of its own.
    let body = sim.permissions_webhook_body(&small);
    let signature = webhook::sign(SECRET.as_bytes(), body.as_bytes());
    let url = server.url.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let done = done.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let http = reqwest::Client::new();
                let mut took = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    let answer = http
                        .post(&url)
                        .header("x-hub-signature", &signature)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 200);
                    took.push(started.elapsed());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                took
            })
        })
    };
    let (report, crawl_took) = crawl.await.unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut took = client.join().unwrap();
    assert_eq!(report.pages_seen as usize, pages + 1);
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    println!(
        "  during a crawl of {pages} pages ({:.1} MB of storage format, {} chunks, {:.2} s): {} acks, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        bytes as f64 / 1e6,
        report.chunks_total,
        crawl_took.as_secs_f64(),
        took.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(took[took.len() - 1])
    );
    server.stop().await;
}

/// A server with the webhook over a pipeline.
struct Running {
    /// Its events URL.
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _journal: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Starts the webhook and the server over `pipeline`.
async fn start(pipeline: &Pipeline) -> Running {
    let journal = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let config = WebhookSettings::new(Secret::new(SECRET), journal.path().to_path_buf());
    let hook = Webhook::start(config, pipeline, metrics.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/confluence/events",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(pipeline.clone(), Some(hook), metrics, Default::default());
    let task = tokio::spawn(serve(listener, state, ServerSettings::default(), async {
        let _ = stopped.await;
    }));
    Running {
        url,
        stop,
        task,
        _journal: journal,
    }
}

async fn run(pages: usize) {
    let sim = Simulator::start().await.unwrap();
    let mut site = ConfluenceSettings::new(sim.base_url_v1(), ApiVersion::V1, Secret::new(PAT));
    site.space_keys = vec!["ENG".into()];
    let store = Arc::new(MemoryStore::new());
    for i in 0..pages {
        let mut page = Page::new(format!("{}", 1_000_000 + i), "ENG", format!("Page {i}"), "");
        page.ancestor_ids = vec![format!("{}", 1_000_000 + i / 100).into()];
        store
            .replace_page(&IndexedPage::of(&page, 0), &[])
            .await
            .unwrap();
    }
    let pipeline = Pipeline::new(
        Arc::new(ConfluenceClient::new(ConfluenceConfig::from(site)).unwrap()),
        Arc::new(MarkdownChunker::default()),
        Arc::new(LetterEmbedder::default()),
        store.clone(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let listed = store.list_pages().await.unwrap().len();
    let read_all = started.elapsed();

    let server = start(&pipeline).await;

    let http = reqwest::Client::new();
    let mut took = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        // A page with 100 indexed pages below it: the worker reaches them after the answer.
        let id = format!("{}", 1_000_000 + i % (pages / 100).max(1));
        let body = sim.permissions_webhook_body(&id.into());
        let signature = webhook::sign(SECRET.as_bytes(), body.as_bytes());
        let started = Instant::now();
        let answer = http
            .post(&server.url)
            .header("x-hub-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        took.push(started.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    println!(
        "  {pages:>7} pages indexed: ack p50 {:.2} ms, p99 {:.2} ms; reading every record once takes {:.1} ms ({listed} records)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(read_all)
    );
    server.stop().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
