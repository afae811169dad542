//! The core of DocBrain Sync: domain types, the traits every part plugs into, and the one
//! ingest [`Pipeline`] that the webhook server, the CLI and library users share.
//!
//! Pages flow **fetch → chunk → embed → index**. Each step is a trait held as `Arc<dyn …>`:
//! [`Fetcher`] (Confluence, a folder, or your own source), [`Chunker`] (synchronous),
//! [`Embedder`] and [`IndexStore`]. This crate depends on no HTTP, database or model crate, so
//! implementing a part never drags in the others.
//!
//! The pipeline keeps the index in step with the source without losing an edit: a store never
//! rolls a page back to an older version, a page is replaced atomically, chunks whose content
//! is unchanged keep their vectors, and a crawl refuses to delete more than a set share of a
//! space at once.
//!
//! ```
//! # use std::sync::Arc;
//! # use async_trait::async_trait;
//! # use docbrain_core::*;
//! # #[derive(Debug)] struct Letters;
//! # #[async_trait] impl Embedder for Letters {
//! #     fn model(&self) -> ModelInfo { ModelInfo { model_id: "letters".into(), dimension: 26 } }
//! #     async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
//! #         Ok(texts.iter().map(|t| { let mut v = vec![0.0f32; 26];
//! #             for b in t.to_lowercase().bytes().filter(u8::is_ascii_lowercase) { v[(b - b'a') as usize] += 1.0; }
//! #             let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6); v.iter().map(|x| x / n).collect() }).collect())
//! #     }
//! # }
//! # #[derive(Debug)] struct OnePage;
//! # #[async_trait] impl Fetcher for OnePage {
//! #     fn list<'a>(&'a self, _: &'a Scope) -> PageStream<'a> {
//! #         Box::pin(futures::stream::iter([Ok(PageSummary { id: "1".into(), space_key: "ENG".into(), title: "Deploys".into(), version: Some(1), access: None, parts: None })]))
//! #     }
//! #     async fn fetch(&self, id: &PageId) -> Result<Fetched> {
//! #         Ok(Fetched::Page(Page::new(id.clone(), "ENG", "Deploys",
//! #             "## Rollback\n\nRun `deploy rollback` to return to the previous release.")))
//! #     }
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let pipeline = Pipeline::new(
//!     Arc::new(OnePage),                  // any Fetcher
//!     Arc::new(MarkdownChunker::default()),
//!     Arc::new(Letters),                  // any Embedder
//!     Arc::new(MemoryStore::new()),       // any IndexStore
//! )
//! .await?;
//!
//! let report = pipeline.sync(&Scope::all()).await?;
//! assert_eq!(report.pages_updated, 1);
//!
//! let hits = pipeline.search("how do I roll back?", 3, &SearchFilter::default()).await?;
//! assert_eq!(hits[0].heading_path, ["Deploys", "Rollback"]);
//!
//! // A second sync finds the version unchanged and embeds nothing.
//! assert_eq!(pipeline.sync(&Scope::all()).await?.chunks_embedded, 0);
//! # Ok::<_, Error>(()) }).unwrap();
//! ```
//!
//! Beside this crate, `docbrain-testsuite` holds the conformance suite every [`IndexStore`]
//! runs in its tests, and `docbrain-http` the retries the HTTP clients share.
//!
//! Settings read from variables and flags, logging and the MCP tools are the front doors' and
//! live in `docbrain-server` (the `docbrain` CLI uses them from there): each part owns its
//! settings (`docbrain-confluence`'s `SourceSettings`, `docbrain-index`'s `StoreSettings` and
//! `EmbedderSettings`, this crate's [`PipelineOptions`]), so adding one never means editing
//! this crate.

mod chunk;
mod chunker;
mod cpu;
mod embedder;
mod error;
mod fetcher;
mod hash;
mod health;
mod memory;
mod page;
mod pipeline;
mod read_access;
mod search;
mod secret;
mod store;
mod text;

pub use chunk::{Chunk, EmbeddedChunk};
pub use chunker::{Chunker, MarkdownChunker};
pub use cpu::{give_way, run_cpu_bound};
pub use embedder::{Embedder, ModelInfo, TokenCounter};
pub use error::{Error, ErrorKind, Result};
pub use fetcher::{Fetcher, PageStream, Scope};
pub use health::{CallCounter, CallHealth};
pub use memory::MemoryStore;
pub use page::{
    Fetched, ListedAccess, NotIndexed, Page, PageId, PageStatus, PageSummary, Part, PartKind,
    PartRef, PartText,
};
pub use pipeline::{
    AttachmentCounts, PageOutcome, PageText, Pipeline, PipelineOptions, SpaceSummary, SyncProgress,
    SyncReport,
};
pub use read_access::{Caller, Layer, Principal, ReadAccess, Reader};
pub use search::{reciprocal_rank_fusion, SearchFilter, SearchHit, SearchRequest};
pub use secret::Secret;
pub use store::{
    IndexStats, IndexStore, IndexedChunk, IndexedPage, PageState, PartsSummary, ReplaceOutcome,
};
pub use text::{now_ms, printable};
