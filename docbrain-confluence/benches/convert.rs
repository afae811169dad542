//! The storage-format converter's throughput on one large page: the sample space's
//! storage-format pages, repeated to about 4 MB.
//!
//! ```text
//! cargo bench -p docbrain-confluence --bench convert
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::time::Instant;

/// Converts a large storage-format page: the sample space's storage-format pages repeated.
fn bench_converter() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-space");
    let mut one = String::new();
    for sub in ["runbooks", "architecture", "release", "incidents"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "xml") {
                one.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let page = one.repeat((4 << 20) / one.len().max(1) + 1);
    let started = Instant::now();
    let markdown = docbrain_confluence::storage_to_markdown(&page);
    let secs = started.elapsed().as_secs_f64();
    let mb = page.len() as f64 / 1e6;
    println!(
        "storage-format converter: {:.1} MB/s ({mb:.1} MB page to {:.1} MB of Markdown in {secs:.2} s)",
        mb / secs,
        markdown.len() as f64 / 1e6
    );
}

fn main() {
    bench_converter();
}
