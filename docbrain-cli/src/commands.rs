//! The commands: ingest, search, status, convert and mcp.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use docbrain_confluence::SourceSettings;
use docbrain_core::{Caller, Pipeline, SearchFilter, SearchRequest, SyncProgress};

use crate::page_hits::{by_page, PageHit};
use docbrain_index::{EmbeddedStore, StoreSettings};
use docbrain_server::{lockfile, mcp, Settings};
use serde_json::json;

use crate::args::{ConvertArgs, IngestArgs, McpArgs, SearchArgs, StatusArgs};
use crate::progress::Progress;

/// Exit code of an ingest that finished but left pages failed or deletions refused.
const INCOMPLETE: u8 = 2;

/// `docbrain ingest`: a full sync of the configured source.
pub(crate) async fn ingest(mut settings: Settings, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    if matches!(settings.source, SourceSettings::None) {
        bail!("LOCAL_DOCS_PATH is not set: point it at a folder of pages, e.g. LOCAL_DOCS_PATH=examples/sample-space (or set SOURCE_TYPE=confluence)");
    }
    settings.pipeline.allow_mass_delete = args.allow_mass_delete;
    let _crawl = lockfile::crawl_lock(&settings.data_dir)?;
    let pipeline = settings.pipeline().await?;
    let store = pipeline.store().clone();
    let scope = settings.scope();
    let bar = (std::io::stderr().is_terminal() && !args.json).then(Progress::new);
    let progress: &dyn SyncProgress = match &bar {
        Some(p) => p,
        None => &(),
    };
    let result = pipeline.sync_with(&scope, progress).await;
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    let stats = store.stats().await?;
    let comments = match stats.parts {
        0 => String::new(),
        n => format!(", {n} comments"),
    };
    println!(
        "Ingestion complete: {} pages, {} chunks{comments}",
        stats.pages, stats.chunks
    );
    println!(
        "  {} pages seen: {} updated, {} unchanged, {} deleted, {} failed; {} chunks embedded, {} reused; {:.1}s",
        report.pages_seen,
        report.pages_updated,
        report.pages_unchanged,
        report.pages_deleted,
        report.pages_failed,
        report.chunks_embedded,
        report.chunks_reused,
        report.elapsed_ms as f64 / 1000.0
    );
    for (id, error) in &report.failures {
        eprintln!("error: page {id} failed: {error}");
    }
    for refusal in &report.refused_deletions {
        eprintln!("error: {refusal}");
    }
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["index_pages"] = json!(stats.pages);
        value["index_chunks"] = json!(stats.chunks);
        value["index_comments"] = json!(stats.parts);
        println!("{value}");
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INCOMPLETE)
    })
}

/// Fails, saying what to do, when the embedded index does not exist yet.
fn require_index(settings: &Settings) -> anyhow::Result<()> {
    let file = settings.data_dir.join(EmbeddedStore::FILE_NAME);
    if settings.store == StoreSettings::Embedded && !file.exists() {
        bail!(
            "no index at {}: run `docbrain ingest` first, or set DOCBRAIN_DATA_DIR to the index folder",
            settings.data_dir.display()
        );
    }
    Ok(())
}

/// A pipeline for reading the index as `as_user` (anonymous without one), and that caller.
/// The source is kept only to look up a user's groups.
async fn reader_pipeline(
    mut settings: Settings,
    as_user: Option<&str>,
) -> anyhow::Result<(Pipeline, Caller)> {
    require_index(&settings)?;
    let caller = settings.caller(as_user);
    if !matches!(caller, Caller::User(_)) {
        settings.source = SourceSettings::None;
    }
    Ok((settings.pipeline().await?, caller))
}

/// `docbrain mcp`: the MCP tools on stdin/stdout, until the client closes them.
pub(crate) async fn mcp(settings: Settings, args: &McpArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, caller) = reader_pipeline(settings, args.as_user.as_deref()).await?;
    mcp::serve_stdio(pipeline, caller).await?;
    Ok(ExitCode::SUCCESS)
}

/// `docbrain search`: the best chunks for a question.
pub(crate) async fn search(settings: Settings, args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let (pipeline, caller) = reader_pipeline(settings, args.as_user.as_deref()).await?;
    let filter = SearchFilter {
        space_key: args.space.clone(),
        caller,
    };
    if args.chunks {
        let hits = pipeline.search(&args.query, args.k, &filter).await?;
        if args.json {
            println!("{}", json!({ "hits": hits }));
            return Ok(ExitCode::SUCCESS);
        }
        print_hits(
            &args.query,
            hits.into_iter().map(|best| PageHit {
                best,
                other_sections: Vec::new(),
            }),
        );
        return Ok(ExitCode::SUCCESS);
    }
    // One hit per page: ask for enough chunks that `k` pages are likely among them.
    // A `k` out of range goes as it is, for the pipeline to refuse.
    let depth = if (1..=SearchRequest::MAX_K).contains(&args.k) {
        (args.k * 4).min(SearchRequest::MAX_K)
    } else {
        args.k
    };
    let chunks = pipeline.search(&args.query, depth, &filter).await?;
    let pages: Vec<PageHit> = by_page(chunks).into_iter().take(args.k).collect();
    if args.json {
        println!("{}", json!({ "hits": pages }));
        return Ok(ExitCode::SUCCESS);
    }
    print_hits(&args.query, pages.into_iter());
    Ok(ExitCode::SUCCESS)
}

/// Prints hits for a person: title and space, where in the page, the link, the text (code
/// keeps its lines), and the page's other matching sections.
fn print_hits(query: &str, hits: impl Iterator<Item = PageHit>) {
    let mut any = false;
    for (i, page) in hits.enumerate() {
        any = true;
        let hit = &page.best;
        println!("{}. {}  [{}]", i + 1, hit.title, hit.space_key);
        if hit.heading_path.len() > 1 {
            println!("   {}", hit.heading_path.join(" > "));
        }
        if let Some(url) = &hit.url {
            println!("   {url}");
        }
        for line in hit.snippet(300).lines() {
            println!("   {line}");
        }
        if !page.other_sections.is_empty() {
            let names: Vec<String> = page
                .other_sections
                .iter()
                .map(|path| path.last().cloned().unwrap_or_default())
                .collect();
            println!("   also matches: {}", names.join("; "));
        }
        println!();
    }
    if !any {
        println!("No results for {query:?}.");
    }
}

/// `docbrain status`: what the index holds.
pub(crate) async fn status(settings: &Settings, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    require_index(settings)?;
    let store = settings.store.open(&settings.data_dir).await?;
    let stats = store.stats().await?;
    let parts = docbrain_core::PartsSummary::read(&*store).await?;
    let last_sync = stats.last_sync_ms.map(format_utc);
    let location = match &settings.store {
        StoreSettings::Embedded => display(&settings.data_dir.join(EmbeddedStore::FILE_NAME)),
        StoreSettings::OpenSearch(cluster) => format!(
            "{}/{} (OpenSearch)",
            cluster.url.trim_end_matches('/'),
            cluster.index
        ),
        other => format!("{other:?}"),
    };
    if args.json {
        println!(
            "{}",
            json!({
                "index": location,
                "pages": stats.pages,
                "comments": parts.comments,
                "attachments": {
                    "indexed": parts.attachments,
                    "skipped": parts.skipped,
                    "failed": parts.failed,
                },
                "chunks": stats.chunks,
                "model_id": stats.model_id,
                "dimension": stats.dimension,
                "last_sync": last_sync,
                "last_sync_ms": stats.last_sync_ms,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("index:     {location}");
    println!("pages:     {}", stats.pages);
    println!("comments:  {}", parts.comments);
    let skipped: u64 = parts.skipped.values().sum();
    println!(
        "attachments: {} indexed, {skipped} skipped, {} failed (tried again at the next crawl)",
        parts.attachments, parts.failed
    );
    for (why, n) in &parts.skipped {
        println!("  skipped {n}: {why}");
    }
    println!("chunks:    {}", stats.chunks);
    println!(
        "model:     {}",
        stats.model_id.as_deref().unwrap_or("(none yet)")
    );
    println!(
        "dimension: {}",
        stats
            .dimension
            .map_or("(none yet)".into(), |d| d.to_string())
    );
    println!(
        "last sync: {}",
        last_sync.as_deref().unwrap_or("never completed")
    );
    Ok(ExitCode::SUCCESS)
}

/// `docbrain convert`: the Markdown of a storage-format file.
pub(crate) fn convert(args: &ConvertArgs) -> anyhow::Result<ExitCode> {
    let xhtml = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    print!("{}", docbrain_confluence::storage_to_markdown(&xhtml));
    Ok(ExitCode::SUCCESS)
}

fn display(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_795_744_277_000), "2026-11-27 01:51:17 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
