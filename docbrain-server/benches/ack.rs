//! How long `POST /confluence/events` takes to answer a permission event, by the number of
//! pages indexed: the answer journals the event and leaves the pages it reaches to a worker, so
//! it does not grow with the index. Beside it, the cost of reading every record once (what the
//! answer did before, and what the worker now does after it).
//!
//!   cargo bench -p docbrain-server --bench ack            # 1,000 and 100,000 pages
//!   ACK_PAGES=10000 cargo bench -p docbrain-server --bench ack

#![allow(clippy::unwrap_used, clippy::disallowed_methods, clippy::print_stdout)] // a bench: it prints its figures, and a panic is the report

use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Simulator, PAT};
use docbrain_confluence::webhook;
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::settings::{ConfluenceSettings, ServerSettings, WebhookSettings};
use docbrain_core::testsuite::LetterEmbedder;
use docbrain_core::{
    IndexStore, IndexedPage, MarkdownChunker, MemoryStore, Page, Pipeline, Secret,
};
use docbrain_server::{serve, AppState, Metrics, Webhook};
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

    let journal = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let config = WebhookSettings::new(Secret::new(SECRET), journal.path().to_path_buf());
    let hook = Webhook::start(config, &pipeline, metrics.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/confluence/events",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(pipeline, Some(hook), metrics, Default::default());
    let server = tokio::spawn(serve(listener, state, ServerSettings::default(), async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let mut took = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        // A page with 100 indexed pages below it: the worker reaches them after the answer.
        let id = format!("{}", 1_000_000 + i % (pages / 100).max(1));
        let body = sim.permissions_webhook_body(&id.into());
        let signature = webhook::sign(SECRET.as_bytes(), body.as_bytes());
        let started = Instant::now();
        let answer = http
            .post(&url)
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
    let _ = stop.send(());
    server.await.unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
