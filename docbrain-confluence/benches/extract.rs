//! Attachment extraction: throughput (MB/s) per type on a generated set of files, in-process and
//! through the child process, beside a Python reference (pypdf, python-docx, python-pptx,
//! openpyxl) run on the same files in the same run; what an unchanged attachment costs a
//! re-crawl; and peak memory of a crawl with a 10 MiB PDF and a 10 MiB XLSX.
//!
//! `scripts/bench-extract.sh` runs it with the reference set up (`EXTRACT_REFERENCE`, a Python
//! with those packages). `cargo bench -p docbrain-confluence --features simulator --bench
//! extract` runs it without.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use docbrain_confluence::extract::{extract, peak_rss_kib, serve_if_child, Extractor, FileType};
use docbrain_confluence::simulator::files::{docx, pdf, pptx, xlsx};
use docbrain_confluence::simulator::{Route, Simulator, PAT};
use docbrain_confluence::ConfluenceSettings;
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::{MarkdownChunker, MemoryStore, Pipeline, Scope, Secret};
use docbrain_testsuite::LetterEmbedder;

const PDF: &str = "application/pdf";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A sentence of about 100 characters, varied by `i`.
fn sentence(i: usize) -> String {
    format!(
        "Step {i}: drain node {} and check that replica {} in zone {} reports healthy within {} seconds.",
        i % 97,
        i % 13,
        i % 5,
        30 + i % 60
    )
}

/// A PDF of `pages` pages of about 1,000 characters each.
fn pdf_of(pages: usize) -> Vec<u8> {
    let texts: Vec<String> = (0..pages)
        .map(|p| {
            (0..10)
                .map(|i| sentence(p * 10 + i))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    pdf(&refs)
}

/// A workbook of `rows` rows of five varied cells.
fn xlsx_of(rows: usize) -> Vec<u8> {
    let cells: Vec<Vec<String>> = (0..rows)
        .map(|r| {
            vec![
                format!("service-{}", r * 7919 % 100_003),
                format!("{}", r * 104_729 % 1_000_003),
                format!("owner {}", r % 389),
                format!("{}.{}", r % 1000, r * 31 % 100),
                format!("region-{}", r % 17),
            ]
        })
        .collect();
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    xlsx(&[("Inventory", rows)])
}

/// The documented set: one file of each type, a few MB each. With the reference, its
/// libraries write the Office files (real packages); else they are built here.
fn files(dir: &Path) -> Vec<(FileType, &'static str, PathBuf)> {
    if let Ok(python) = std::env::var("EXTRACT_REFERENCE") {
        let status = std::process::Command::new(python)
            .arg(reference_script())
            .arg("make")
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::write(dir.join("set.pdf"), pdf_of(3_000)).unwrap();
        return [
            (FileType::Pdf, "set.pdf"),
            (FileType::Docx, "set.docx"),
            (FileType::Pptx, "set.pptx"),
            (FileType::Xlsx, "set.xlsx"),
        ]
        .into_iter()
        .map(|(kind, name)| (kind, name, dir.join(name)))
        .collect();
    }
    let paragraphs: Vec<String> = (0..20_000).map(sentence).collect();
    let docx_paras: Vec<(Option<&str>, &str)> = paragraphs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                if i % 50 == 0 { Some("Heading2") } else { None },
                p.as_str(),
            )
        })
        .collect();
    let slides: Vec<(String, String)> =
        (0..2_000).map(|i| (sentence(i), sentence(i + 7))).collect();
    let deck: Vec<(&str, Option<&str>)> = slides
        .iter()
        .map(|(s, n)| (s.as_str(), Some(n.as_str())))
        .collect();
    let set = [
        (FileType::Pdf, "set.pdf", pdf_of(3_000)),
        (FileType::Docx, "set.docx", docx(&docx_paras)),
        (FileType::Pptx, "set.pptx", pptx(&deck)),
        (FileType::Xlsx, "set.xlsx", xlsx_of(10_000)),
    ];
    set.into_iter()
        .map(|(kind, name, bytes)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            (kind, name, path)
        })
        .collect()
}

/// Seconds per run of `f`, the best of three.
async fn best_of<F, Fut>(mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        f().await;
        best = best.min(started.elapsed().as_secs_f64());
    }
    best
}

/// The reference's seconds per file, by file name: `EXTRACT_REFERENCE` runs
/// `scripts/bench_extract_reference.py` over `dir`.
fn reference(dir: &Path) -> Option<serde_json::Value> {
    let python = std::env::var("EXTRACT_REFERENCE").ok()?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_extract_reference.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).ok()
}

fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_extract_reference.py")
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

async fn throughput(extractor: &Extractor) {
    let dir = tempfile::tempdir().unwrap();
    let set = files(dir.path());
    let reference = reference(dir.path());
    let made = if std::env::var("EXTRACT_REFERENCE").is_ok() {
        "Office files written by python-docx, python-pptx and openpyxl; the PDF by lopdf"
    } else {
        "files built by docbrain_confluence::simulator::files"
    };
    println!("\n== extraction throughput (best of 3), MB of file per second ({made})");
    println!("| type | file | chars out | in-process | child process | reference |");
    println!("|---|---|---|---|---|---|");
    for (kind, name, path) in &set {
        let bytes = std::fs::read(path).unwrap();
        let size = bytes.len() as u64;
        let chars = extract(*kind, &bytes, usize::MAX).unwrap().chars().count();
        let inline = best_of(|| async {
            extract(*kind, &bytes, usize::MAX).unwrap();
        })
        .await;
        let child = best_of(|| async {
            extractor.extract(*kind, &bytes, usize::MAX).await.unwrap();
        })
        .await;
        let theirs = reference
            .as_ref()
            .and_then(|r| r[name]["seconds"].as_f64())
            .map_or("(not run)".to_owned(), |s| {
                let with = reference
                    .as_ref()
                    .and_then(|r| r[name]["library"].as_str())
                    .unwrap_or("");
                format!("{:.1} MB/s ({with})", mb(size) / s)
            });
        println!(
            "| {} | {:.1} MB | {chars} | {:.1} MB/s | {:.1} MB/s | {theirs} |",
            kind.name(),
            mb(size),
            mb(size) / inline,
            mb(size) / child
        );
    }
}

fn config(sim: &Simulator, extractor: &Extractor) -> ConfluenceConfig {
    let mut site = ConfluenceSettings::new(sim.base_url_v1(), ApiVersion::V1, Secret::new(PAT));
    site.read_permissions = false;
    site.attachments.max_bytes = 16 << 20;
    let mut c = ConfluenceConfig::from(site);
    c.extractor = Some(extractor.clone());
    c
}

async fn pipeline(sim: &Simulator, config: ConfluenceConfig) -> Pipeline {
    let _ = sim;
    Pipeline::new(
        Arc::new(ConfluenceClient::new(config).unwrap()),
        Arc::new(MarkdownChunker::default()),
        Arc::new(LetterEmbedder::default()),
        Arc::new(MemoryStore::new()),
    )
    .await
    .unwrap()
}

async fn unchanged_cost(extractor: &Extractor) {
    let sim = Simulator::start().await.unwrap();
    for i in 0..200 {
        let page = sim.create_page(
            "ENG",
            &format!("Page {i}"),
            &format!("<p>{}</p>", sentence(i)),
        );
        sim.add_attachment(
            &page,
            &format!("notes-{i}.docx"),
            DOCX,
            docx(&[(None, &sentence(i + 1))]),
        );
    }
    let p = pipeline(&sim, config(&sim, extractor)).await;
    let started = Instant::now();
    let first = p.sync(&Scope::all()).await.unwrap();
    let first_s = started.elapsed().as_secs_f64();
    sim.clear_log();
    let started = Instant::now();
    let again = p.sync(&Scope::all()).await.unwrap();
    let again_s = started.elapsed().as_secs_f64();
    println!("\n== what an unchanged attachment costs a re-crawl (200 pages, one DOCX each; Data Center API, no permissions)");
    println!(
        "first crawl: {} pages, {} attachments indexed, {:.2} s; unchanged re-crawl: {} requests ({} downloads, {} attachment listings), {} chunks embedded, {:.3} s",
        first.pages_updated,
        p.attachment_counts().indexed,
        first_s,
        sim.requests().len(),
        sim.count(Route::Download),
        sim.count(Route::Attachments),
        again.chunks_embedded,
        again_s
    );
}

async fn peak_memory() {
    let sim = Simulator::start().await.unwrap();
    let page = sim.create_page("ENG", "Inventory", "<p>Big files.</p>");
    let big_pdf = pdf_of(9_400);
    let big_xlsx = xlsx_of(470_000);
    println!("\n== a crawl with a 10 MiB PDF and a 10 MiB XLSX (ATTACHMENT_MAX_BYTES=16 MiB)");
    println!(
        "files: PDF {:.1} MiB, XLSX {:.1} MiB",
        big_pdf.len() as f64 / 1_048_576.0,
        big_xlsx.len() as f64 / 1_048_576.0
    );
    sim.add_attachment(&page, "big.pdf", PDF, big_pdf);
    sim.add_attachment(&page, "big.xlsx", XLSX, big_xlsx);
    let files_in = peak_rss_kib().unwrap_or(0);
    for memory_mb in [1024u64, 64] {
        // A fresh extractor each run: its peak is this run's.
        let extractor = Extractor::this_binary()
            .unwrap()
            .with_limits(std::time::Duration::from_secs(60), memory_mb << 20);
        let mut c = config(&sim, &extractor);
        c.site.attachments.memory_mb = memory_mb;
        let p = pipeline(&sim, c).await;
        let report = p.sync(&Scope::all()).await.unwrap();
        let counts = p.attachment_counts();
        println!(
            "ATTACHMENT_MEMORY_MB={memory_mb}: {} indexed, {} failed; sync clean: {}; extractor child peak {} MiB; this process (the simulator holding both files included) peak {} MiB, {} MiB once the files were built",
            counts.indexed,
            counts.failed,
            report.is_clean(),
            extractor.peak_kib() / 1024,
            peak_rss_kib().unwrap_or(0) / 1024,
            files_in / 1024
        );
    }
}

fn main() {
    serve_if_child();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let extractor = Extractor::this_binary().unwrap();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    println!("CPU: {cpu}");
    runtime.block_on(async {
        // Memory first, before the throughput set raises this process's peak.
        peak_memory().await;
        throughput(&extractor).await;
        unchanged_cost(&extractor).await;
    });
}
