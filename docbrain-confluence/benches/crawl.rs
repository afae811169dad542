//! Crawl throughput against the simulator with 50 ms of latency per call.
//!
//! ```sh
//! cargo bench -p docbrain-confluence --features simulator --bench crawl   # CRAWL_PAGES=400 CRAWL_LATENCY_MS=50
//! ```
//!
//! Prints pages/s for a first crawl (every body fetched; embedding by the deterministic test
//! embedder, so the figure is the crawl's own) at several concurrencies, and for a re-crawl of
//! the unchanged space (listing only).

#![allow(clippy::print_stdout, missing_docs)] // a benchmark prints its figures

use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Route, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_confluence::{ApiVersion, ConfluenceClient};
use docbrain_core::settings::ConfluenceSettings;
use docbrain_core::testsuite::LetterEmbedder;
use docbrain_core::{MarkdownChunker, MemoryStore, Pipeline, PipelineOptions, Scope, Secret};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pages = env_num("CRAWL_PAGES", 400);
    let latency = Duration::from_millis(env_num("CRAWL_LATENCY_MS", 50));
    let sim = Simulator::start().await?;
    for i in 0..pages {
        sim.create_page(
            "ENG",
            &format!("Page {i}"),
            &format!("<h2>Section {i}</h2><p>Body of page {i}, with <strong>some</strong> markup and a <a href=\"https://example.com\">link</a>.</p>"),
        );
    }
    sim.set_latency(latency);
    println!(
        "crawl of {pages} pages, {} ms per call",
        latency.as_millis()
    );
    for version in [ApiVersion::V2, ApiVersion::V1] {
        for concurrency in [1usize, 4, 8, 16] {
            let (base, token) = match version {
                ApiVersion::V2 => (sim.base_url_v2(), API_TOKEN),
                ApiVersion::V1 => (sim.base_url_v1(), PAT),
            };
            let mut config = ConfluenceSettings::new(base, version, Secret::new(token));
            config.email = Some(EMAIL.into());
            config.space_keys = vec!["ENG".into()];
            let pipeline = Pipeline::new(
                Arc::new(ConfluenceClient::new(config)?),
                Arc::new(MarkdownChunker::default()),
                Arc::new(LetterEmbedder::default()),
                Arc::new(MemoryStore::new()),
            )
            .await?
            .with_options(PipelineOptions {
                fetch_concurrency: concurrency,
                ..PipelineOptions::default()
            });
            sim.clear_log();
            let t = Instant::now();
            let first = pipeline.sync(&Scope::all()).await?;
            let first_secs = t.elapsed().as_secs_f64();
            let bodies = sim.count(Route::PageBody);
            sim.clear_log();
            let t = Instant::now();
            let again = pipeline.sync(&Scope::all()).await?;
            let again_secs = t.elapsed().as_secs_f64();
            println!(
                "  {version} concurrency {concurrency:>2}: first crawl {:>6.1} pages/s ({} pages, {bodies} bodies, {first_secs:.1} s); unchanged re-crawl {:>7.1} pages/s ({} listing calls, {} bodies)",
                first.pages_updated as f64 / first_secs,
                first.pages_updated,
                again.pages_unchanged as f64 / again_secs,
                sim.count(Route::PageList),
                sim.count(Route::PageBody),
            );
        }
    }
    Ok(())
}
