//! Crawl throughput against the simulator with 50 ms of latency per call.
//!
//! ```sh
//! cargo bench -p docbrain-confluence --features simulator --bench crawl   # CRAWL_PAGES=400 CRAWL_LATENCY_MS=50
//! ```
//!
//! Prints pages/s for a first crawl (every body fetched; embedding by the deterministic test
//! embedder, so the figure is the crawl's own) at several concurrencies, and for a re-crawl of
//! the unchanged space (listing only).
//!
//! `CRAWL_PART=scale` instead crawls a site with permissions read: `SCALE_PAGES` pages (default
//! 10,000) in `SCALE_SPACES` spaces (default 50), in chains up to 30 deep, 5% of pages
//! restricted, no latency, 8 pages at once; for each API version it prints the requests and
//! pages/s of a first crawl and of an unchanged re-crawl (against the budget 4·S + ⌈P/25⌉), and
//! this process's peak memory (the simulator's pages included); then a first crawl of each
//! version under a 429 storm (10 bursts of 20 refusals asking for a second): pages indexed and
//! failed, and its time.

#![allow(clippy::print_stdout, missing_docs)] // a benchmark prints its figures

use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Fault, Route, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_confluence::ConfluenceSettings;
use docbrain_confluence::{ApiVersion, ConfluenceClient};
use docbrain_core::{MarkdownChunker, MemoryStore, Pipeline, PipelineOptions, Scope, Secret};
use docbrain_testsuite::LetterEmbedder;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A pipeline crawling `spaces` of the simulator (all when empty) with `concurrency` pages at
/// once, into memory, embedding with the deterministic test embedder.
async fn pipeline(
    sim: &Simulator,
    version: ApiVersion,
    spaces: &[&str],
    concurrency: usize,
) -> Result<Pipeline, Box<dyn std::error::Error>> {
    let (base, token) = match version {
        ApiVersion::V2 => (sim.base_url_v2(), API_TOKEN),
        ApiVersion::V1 => (sim.base_url_v1(), PAT),
    };
    let mut config = ConfluenceSettings::new(base, version, Secret::new(token));
    config.email = Some(EMAIL.into());
    config.space_keys = spaces.iter().map(|s| (*s).to_owned()).collect();
    Ok(Pipeline::new(
        Arc::new(ConfluenceClient::new(config)?),
        Arc::new(MarkdownChunker::default()),
        Arc::new(LetterEmbedder::default()),
        Arc::new(MemoryStore::new()),
    )
    .await?
    .with_options(PipelineOptions {
        fetch_concurrency: concurrency,
        ..PipelineOptions::default()
    }))
}

/// This process's peak resident memory in MB (Linux), if it can be read.
fn peak_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

async fn scale() -> Result<(), Box<dyn std::error::Error>> {
    let pages = env_num("SCALE_PAGES", 10_000);
    let spaces = env_num("SCALE_SPACES", 50).max(1);
    let sim = Simulator::start().await?;
    sim.generate_site(pages, spaces);
    println!("scale: {pages} pages in {spaces} spaces, permissions read, 8 at once, no latency");
    let budget = 4 * spaces + pages.div_ceil(25);
    for version in [ApiVersion::V2, ApiVersion::V1] {
        let pipeline = pipeline(&sim, version, &[], 8).await?;
        sim.clear_log();
        let t = Instant::now();
        let first = pipeline.sync(&Scope::all()).await?;
        let first_secs = t.elapsed().as_secs_f64();
        let first_calls = sim.requests().len();
        sim.clear_log();
        let t = Instant::now();
        let again = pipeline.sync(&Scope::all()).await?;
        let again_secs = t.elapsed().as_secs_f64();
        let again_calls = sim.requests().len();
        println!(
            "  {version}: first crawl {} pages in {first_secs:.1} s ({:.0} pages/s), {first_calls} requests ({:.1} per page; budget P + 4·S + ⌈P/25⌉ = {}); unchanged re-crawl {} pages in {again_secs:.2} s, {again_calls} requests (budget 4·S + ⌈P/25⌉ = {budget}); peak memory {} MB",
            first.pages_updated,
            first.pages_updated as f64 / first_secs,
            first_calls as f64 / pages as f64,
            pages + budget,
            again.pages_unchanged,
            peak_mb().map_or_else(|| "?".into(), |m| m.to_string()),
        );
    }
    // A 429 storm over a first crawl: 10 bursts of 20 refusals, each asking for a second,
    // spread over the crawl. Every page must still be indexed, none failed.
    for version in [ApiVersion::V2, ApiVersion::V1] {
        let pipeline = pipeline(&sim, version, &[], 8).await?;
        sim.clear_log();
        let every = u32::try_from(pages / 10).unwrap_or(u32::MAX).max(1);
        for _ in 0..10 {
            sim.inject(Fault::new(429, 20).retry_after("1").after(every));
        }
        let t = Instant::now();
        let stormy = pipeline.sync(&Scope::all()).await?;
        let secs = t.elapsed().as_secs_f64();
        sim.clear_faults();
        let refused = sim.requests().iter().filter(|r| r.status == 429).count();
        println!(
            "  {version} under a 429 storm: {refused} answers of 429 (Retry-After: 1 s) in 10 bursts; {} pages indexed, {} failed, in {secs:.1} s",
            stormy.pages_updated, stormy.pages_failed,
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var("CRAWL_PART").as_deref() == Ok("scale") {
        return scale().await;
    }
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
            let pipeline = pipeline(&sim, version, &["ENG"], concurrency).await?;
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
