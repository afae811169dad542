//! Runs the Confluence simulator on loopback, seeded with a space, until ctrl-c.
//!
//! ```sh
//! cargo run -p docbrain-confluence --features simulator --example confluence-simulator -- \
//!     [--port 8090] [--space ENG] [--pages 47] [--latency-ms 50] [--from examples/sample-space]
//! ```
//!
//! `--from` loads every storage-format `.xml` file of a folder as a page (title from the file
//! name); `--pages` adds generated pages. Point `docbrain ingest` at it with the printed settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docbrain_confluence::simulator::{Simulator, API_TOKEN, EMAIL, PAT};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn storage_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            storage_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "xml") {
            out.push(path);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = arg(&args, "--port").map_or(Ok(8090), |p| p.parse())?;
    let space = arg(&args, "--space").unwrap_or_else(|| "ENG".into());
    let generated: usize = arg(&args, "--pages").map_or(Ok(0), |p| p.parse())?;
    let latency: u64 = arg(&args, "--latency-ms").map_or(Ok(0), |p| p.parse())?;

    let sim = Simulator::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    sim.add_space(&space, "Engineering");
    // Its spaces are open to anyone, and the site lets anonymous users in.
    sim.set_anonymous_access(true);
    let mut files = Vec::new();
    if let Some(dir) = arg(&args, "--from") {
        storage_files(Path::new(&dir), &mut files)?;
        files.sort();
    }
    for file in &files {
        let title = file
            .file_stem()
            .map(|s| s.to_string_lossy().replace('-', " "))
            .unwrap_or_default();
        sim.create_page(&space, &title, &std::fs::read_to_string(file)?);
    }
    for i in 1..=generated {
        sim.create_page(
            &space,
            &format!("Generated page {i}"),
            &format!("<h2>Section {i}</h2><p>Generated body number {i} for crawl tests.</p>"),
        );
    }
    sim.set_latency(Duration::from_millis(latency));
    let mut out = std::io::stderr().lock();
    use std::io::Write;
    writeln!(
        out,
        "Confluence simulator: {} pages in space {space}\n\
         Cloud (v2):       CONFLUENCE_BASE_URL={} CONFLUENCE_USER_EMAIL={EMAIL} CONFLUENCE_API_TOKEN={API_TOKEN} CONFLUENCE_ANONYMOUS_ACCESS=true\n\
         Data Center (v1): CONFLUENCE_API_VERSION=v1 CONFLUENCE_BASE_URL={} CONFLUENCE_API_TOKEN={PAT} CONFLUENCE_ANONYMOUS_ACCESS=true\n\
         ctrl-c stops it.",
        files.len() + generated,
        sim.base_url_v2(),
        sim.base_url_v1()
    )?;
    drop(out);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
