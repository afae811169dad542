//! Builds a pipeline from settings written in code, the way another Rust service embeds
//! DocBrain Sync: no CLI, no environment variables, one build call.
//!
//! Run from the repository root (after `scripts/fetch-model.sh`):
//!
//! ```text
//! cargo run -p example-from-settings -- "what is a SEV1?"
//! ```

#![allow(clippy::print_stdout)] // an example prints what it does

use docbrain_confluence::{LocalSettings, SourceSettings};
use docbrain_core::SearchFilter;
use docbrain_server::Settings;

/// A caching allocator: the local model allocates and frees large buffers on every layer.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Started as the attachment extractor (PDFs, Office files in the folder): extract, exit.
    docbrain_confluence::extract::serve_if_child();
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "what is a SEV1?".into());
    let data = tempfile::tempdir()?;

    // 1. Settings as plain data: start from the zero-set-up defaults (embedded index, local
    //    model) and say what differs. `Settings::from_env()` reads the same from DocBrain's
    //    environment variables instead.
    let mut settings = Settings {
        source: SourceSettings::Local(LocalSettings {
            path: "examples/sample-space".into(),
            space_key: "ENG".into(),
            attachments: Default::default(),
        }),
        data_dir: data.path().to_owned(),
        ..Settings::default()
    };
    settings.embedder.model_dir = std::env::var_os("MODEL_DIR").map(Into::into);
    settings.chunk_max_tokens = 200;
    settings.validate()?;

    // 2. One call builds the pipeline: the source from `docbrain-confluence`, the store and the
    //    embedder from `docbrain-index`, a chunker fitted to the model, the deletion guard.
    let pipeline = settings.pipeline().await?;

    // 3. The full crawl, then a question.
    let report = pipeline.sync(&settings.scope()).await?;
    println!(
        "synced {} pages into {} chunks ({} embedded)",
        report.pages_seen, report.chunks_total, report.chunks_embedded
    );
    let hits = pipeline
        .search(&question, 3, &SearchFilter::default())
        .await?;
    anyhow::ensure!(!hits.is_empty(), "no hits for {question:?}");
    for hit in hits {
        println!("{:.4}  {}", hit.score, hit.heading_path.join(" > "));
    }
    Ok(())
}
