//! Confluence storage format (XHTML with `ac:`/`ri:` elements) to Markdown.
//!
//! Keeps what people search for: headings, paragraphs and emphasis, nested lists, tables
//! (merged cells flattened, cell content on one line), code macros as fenced blocks with their
//! language (CDATA byte for byte), panels as blockquotes naming their kind, expand titles and
//! bodies, status text, Jira keys, links with their targets, mentions, images as
//! `[Image: file]`, task lists as checkboxes and layouts in reading order. Display-only macros
//! (toc, children, …) are dropped; unknown macros keep their body text and never leak their
//! parameters. Malformed markup degrades to text; the converter never fails.

mod markdown;
mod xhtml;

/// Converts a storage-format document to Markdown. Never fails and never panics.
pub fn storage_to_markdown(xhtml: &str) -> String {
    markdown::render(&xhtml::parse(xhtml))
}

#[cfg(feature = "rest")]
/// [`storage_to_markdown`] for a page being fetched: a large page off the async threads
/// ([`docbrain_core::run_cpu_bound`]).
pub(crate) async fn page_body(xhtml: Option<&str>) -> String {
    let Some(x) = xhtml else {
        return String::new();
    };
    let owned = x.to_owned();
    docbrain_core::run_cpu_bound(x.len(), move || storage_to_markdown(&owned)).await
}

#[cfg(test)]
mod tests;
