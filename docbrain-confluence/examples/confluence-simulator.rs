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
//! storage format; `--pages` adds generated pages. Two users and a restricted page come too:
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
use docbrain_confluence::LocalFetcher;
use docbrain_core::{Fetched, Fetcher, Scope};
use futures::TryStreamExt;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The pages of `dir` as (title, storage-format body): storage files as they are, Markdown
/// and text rendered to XHTML.
async fn folder_pages(dir: &Path) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let folder = LocalFetcher::new(dir, "SIM")?;
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
        pages.push((page.title, body));
    }
    Ok(pages)
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
    if let Some(dir) = arg(&args, "--from") {
        for (title, body) in folder_pages(Path::new(&dir)).await? {
            sim.create_page(&space, &title, &body);
            count += 1;
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
        "Confluence simulator: {count} pages in space {space}{}; users alice (staff) and bob (staff, hr); \"Salary bands\" readable by hr only\n\
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
