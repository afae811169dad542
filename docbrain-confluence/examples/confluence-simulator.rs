//! Runs the Confluence simulator on loopback, seeded with a space, until ctrl-c.
//!
//! ```sh
//! cargo run -p docbrain-confluence --features simulator --example confluence-simulator -- \
//!     [--port 8090] [--space ENG] [--from examples/sample-space] [--pages 47] [--latency-ms 50] \
//!     [--webhook-url http://127.0.0.1:3000/confluence/events --webhook-secret SECRET] \
//!     [--scale-pages 100000 --scale-spaces 50]
//! ```
//!
//! `--from` loads every page of a folder the way `LOCAL_DOCS_PATH` reads it (Markdown, text and
//! storage-format `.xml`; titles from front matter or the first heading), Markdown rendered to
//! storage format, and attaches its PDF, DOCX, PPTX, XLSX, CSV and JSON files to the first page
//! of their folder; `--pages` adds generated pages. Two users and a restricted page come too:
//! `alice` (group `staff`) and `bob` (groups `staff`, `hr`), and "Salary bands" readable by `hr`
//! only. With `--webhook-url`, an edit made with
//! `curl -X POST 'http://127.0.0.1:8090/_sim/pages?title=…' --data '<p>new text</p>'` sends
//! the signed `page_updated` webhook Confluence would send. Point DocBrain at it with the
//! printed settings.
//!
//! `--scale-pages` adds a generated site for scale runs (`Simulator::generate_site`: spaces
//! `S0`… readable by `staff`, chains 30 deep, 5% of pages for `hr` only), and the simulator
//! also answers `POST /v1/embeddings` as a fast stand-in embedder
//! (`EMBED_PROVIDER=openai OPENAI_BASE_URL=http://127.0.0.1:<port>/v1`). `--port 0` picks a
//! free port; the printed settings name it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use docbrain_confluence::simulator::{Grants, SimUser, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_confluence::AttachmentSettings;
use docbrain_confluence::LocalFetcher;
use docbrain_core::{Fetched, Fetcher, Scope};
use futures::TryStreamExt;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The pages of `dir` as (folder, title, storage-format body): storage files as they are,
/// Markdown and text rendered to XHTML.
async fn folder_pages(
    dir: &Path,
) -> Result<Vec<(String, String, String)>, Box<dyn std::error::Error>> {
    let only_pages = AttachmentSettings {
        enabled: false,
        ..AttachmentSettings::default()
    };
    let folder = LocalFetcher::new(dir, "SIM")?.with_attachments(only_pages);
    let mut listed: Vec<_> = folder.list(&Scope::all()).try_collect().await?;
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut pages = Vec::with_capacity(listed.len());
    for summary in listed {
        let Fetched::Page(page) = folder.fetch(&summary.id).await? else {
            continue;
        };
        let file = dir.join(summary.id.as_str());
        let body = if file.extension().is_some_and(|e| e == "xml") {
            std::fs::read_to_string(&file)?
        } else {
            let mut html = String::new();
            pulldown_cmark::html::push_html(
                &mut html,
                pulldown_cmark::Parser::new_ext(&page.body, pulldown_cmark::Options::ENABLE_TABLES),
            );
            html
        };
        let parent = summary.id.as_str().rsplit_once('/').map_or("", |(f, _)| f);
        pages.push((parent.to_owned(), page.title, body));
    }
    Ok(pages)
}

/// An attachment file of a folder: its folder, file name, media type and content.
type FolderFile = (String, String, &'static str, Vec<u8>);

/// The attachment files of `dir`.
fn folder_files(dir: &Path) -> std::io::Result<Vec<FolderFile>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(current) = dirs.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let media = match path.extension().and_then(|e| e.to_str()) {
                Some("pdf") => "application/pdf",
                Some("docx") => {
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                }
                Some("pptx") => {
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation"
                }
                Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                Some("csv") => "text/csv",
                Some("json") => "application/json",
                _ => continue,
            };
            let folder = path
                .parent()
                .and_then(|p| p.strip_prefix(dir).ok())
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((folder, name, media, std::fs::read(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = arg(&args, "--port").map_or(Ok(8090), |p| p.parse())?;
    let space = arg(&args, "--space").unwrap_or_else(|| "ENG".into());
    let generated: usize = arg(&args, "--pages").map_or(Ok(0), |p| p.parse())?;
    let latency: u64 = arg(&args, "--latency-ms").map_or(Ok(0), |p| p.parse())?;
    let scale_pages: u64 = arg(&args, "--scale-pages").map_or(Ok(0), |p| p.parse())?;
    let scale_spaces: u64 = arg(&args, "--scale-spaces").map_or(Ok(50), |p| p.parse())?;

    let sim = Simulator::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    sim.add_space(&space, "Engineering");
    // Its spaces are open to anyone, and the site lets anonymous users in.
    sim.set_anonymous_access(true);
    let mut count = 0;
    let mut files = 0;
    if let Some(dir) = arg(&args, "--from") {
        let mut first_of: std::collections::HashMap<String, docbrain_core::PageId> =
            std::collections::HashMap::new();
        for (folder, title, body) in folder_pages(Path::new(&dir)).await? {
            let id = sim.create_page(&space, &title, &body);
            first_of.entry(folder).or_insert(id);
            count += 1;
        }
        for (folder, name, media, content) in folder_files(Path::new(&dir))? {
            if let Some(page) = first_of.get(&folder) {
                sim.add_attachment(page, &name, media, content);
                files += 1;
            }
        }
    }
    for i in 1..=generated {
        sim.create_page(
            &space,
            &format!("Generated page {i}"),
            &format!("<h2>Section {i}</h2><p>Generated body number {i} for crawl tests.</p>"),
        );
        count += 1;
    }
    if scale_pages > 0 {
        sim.generate_site(scale_pages, scale_spaces);
    }
    sim.add_user("alice", &["staff"]);
    sim.add_user("bob", &["staff", "hr"]);
    let salary = sim.create_page(
        &space,
        "Salary bands",
        "<h2>Bands</h2><p>Salary bands for engineering levels L3 to L7, reviewed every April by HR.</p>",
    );
    sim.restrict_page(&salary, Some(Grants::only(&[], &["hr"])));
    count += 1;
    if let (Some(url), Some(secret)) = (arg(&args, "--webhook-url"), arg(&args, "--webhook-secret"))
    {
        sim.send_edits_to(&url, &secret);
    }
    sim.set_latency(Duration::from_millis(latency));
    let mut out = std::io::stderr().lock();
    use std::io::Write;
    writeln!(
        out,
        "Confluence simulator: {count} pages ({files} attachments) in space {space}{}; users alice (staff) and bob (staff, hr); \"Salary bands\" readable by hr only\n\
         Cloud (v2):       CONFLUENCE_BASE_URL={} CONFLUENCE_USER_EMAIL={EMAIL} CONFLUENCE_API_TOKEN={API_TOKEN} CONFLUENCE_ANONYMOUS_ACCESS=true   (users: {} {})\n\
         Data Center (v1): CONFLUENCE_API_VERSION=v1 CONFLUENCE_BASE_URL={} CONFLUENCE_API_TOKEN={PAT} CONFLUENCE_ANONYMOUS_ACCESS=true   (users: alice bob)\n\
         Edit a page: curl -X POST 'http://{}/_sim/pages?title=Salary+bands' --data '<p>new text</p>'\n\
         ctrl-c stops it.",
        if scale_pages > 0 {
            format!(" (and {scale_pages} generated pages in spaces S0 to S{})", scale_spaces.max(1) - 1)
        } else {
            String::new()
        },
        sim.base_url_v2(),
        SimUser::account_id("alice"),
        SimUser::account_id("bob"),
        sim.base_url_v1(),
        sim.addr(),
    )?;
    drop(out);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
