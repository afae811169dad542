//! Implements `Fetcher` for a made-up source (a team's incident log, not Confluence) and plugs
//! it into the same pipeline.
//!
//! Run from the repository root (after `scripts/fetch-model.sh`):
//!
//! ```text
//! cargo run -p example-custom-fetcher
//! ```

#![allow(clippy::print_stdout)] // an example prints what it does

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use docbrain_core::{
    Fetched, Fetcher, MarkdownChunker, MemoryStore, Page, PageId, PageStream, PageSummary,
    Pipeline, Result, Scope, SearchFilter,
};
use docbrain_index::LocalEmbedder;

/// One entry of the incident log.
#[derive(Debug, Clone)]
struct Incident {
    number: u64,
    revision: u64,
    title: &'static str,
    summary: &'static str,
    resolved: bool,
}

/// The source: an in-memory incident log. A real one would call an HTTP API here.
#[derive(Debug, Default)]
struct IncidentLog {
    incidents: Mutex<BTreeMap<u64, Incident>>,
}

impl IncidentLog {
    fn record(&self, incident: Incident) {
        if let Ok(mut log) = self.incidents.lock() {
            log.insert(incident.number, incident);
        }
    }

    fn to_page(i: &Incident) -> Page {
        Page {
            version: i.revision,
            url: Some(format!("https://incidents.example.com/{}", i.number)),
            ancestors: vec!["Incidents".into()],
            labels: vec![if i.resolved { "resolved" } else { "open" }.into()],
            ..Page::new(
                PageId::from(i.number),
                "INC",
                format!("INC-{}: {}", i.number, i.title),
                format!("## Summary\n\n{}", i.summary),
            )
        }
    }
}

#[async_trait]
impl Fetcher for IncidentLog {
    // The listing carries revisions, so unchanged incidents are skipped without a fetch.
    fn list<'a>(&'a self, _scope: &'a Scope) -> PageStream<'a> {
        let items: Vec<Result<PageSummary>> = self
            .incidents
            .lock()
            .map(|log| {
                log.values()
                    .map(|i| {
                        Ok(PageSummary {
                            id: PageId::from(i.number),
                            space_key: "INC".into(),
                            title: i.title.into(),
                            version: Some(i.revision),
                            access: None,
                            parts: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(futures::stream::iter(items))
    }

    // A missing incident is `Gone`: the pipeline removes it from the index.
    async fn fetch(&self, id: &PageId) -> Result<Fetched> {
        let number: u64 = id.as_str().parse().unwrap_or(0);
        let log = self.incidents.lock().map_err(|_| {
            docbrain_core::Error::new(docbrain_core::ErrorKind::Transport, "log poisoned")
        })?;
        Ok(log
            .get(&number)
            .map_or(Fetched::Gone, |i| Fetched::Page(Self::to_page(i))))
    }
}

/// A caching allocator: the model allocates and frees large buffers on every layer, and glibc's
/// malloc hands them back to the OS each time (measured: 5.3 → 8.1 chunks/s with mimalloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let log = Arc::new(IncidentLog::default());
    log.record(Incident {
        number: 101,
        revision: 1,
        title: "Checkout latency spike",
        summary: "A slow query on the orders database made checkout take 9 seconds. Adding an index on orders.customer_id fixed it.",
        resolved: true,
    });
    log.record(Incident {
        number: 102,
        revision: 1,
        title: "Expired TLS certificate on the API gateway",
        summary: "The gateway certificate expired at midnight and mobile clients failed to connect until it was renewed.",
        resolved: true,
    });

    let model_dir =
        std::env::var_os("MODEL_DIR").map_or_else(LocalEmbedder::default_dir, Into::into);
    let embedder = tokio::task::spawn_blocking(move || LocalEmbedder::load(model_dir))
        .await?
        .context("run scripts/fetch-model.sh first")?;
    let chunker = MarkdownChunker::default().fit_to(&embedder);

    // The same pipeline as for Confluence; only the fetcher differs.
    let pipeline = Pipeline::new(
        log.clone(),
        Arc::new(chunker),
        Arc::new(embedder),
        Arc::new(MemoryStore::new()),
    )
    .await?;
    let report = pipeline.sync(&Scope::all()).await?;
    println!("first sync: {} incidents indexed", report.pages_updated);

    let hits = pipeline
        .search("certificate expired", 1, &SearchFilter::default())
        .await?;
    let top = hits.first().context("no hit")?;
    println!(
        "top hit: {} ({})",
        top.title,
        top.url.as_deref().unwrap_or("")
    );
    anyhow::ensure!(top.page_id.as_str() == "102", "expected INC-102 first");

    // A second sync skips both incidents by revision: nothing is fetched or embedded.
    let again = pipeline.sync(&Scope::all()).await?;
    println!(
        "second sync: {} unchanged, {} chunks embedded",
        again.pages_unchanged, again.chunks_embedded
    );
    anyhow::ensure!(again.chunks_embedded == 0);
    Ok(())
}
