//! Chunks: the unit that is embedded, indexed and returned by search.

use serde::{Deserialize, Serialize};

use crate::hash::hash_hex;
use crate::page::PageId;

/// A piece of a page small enough to embed, with the headings above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Deterministic id: `<page id>:<position>`.
    pub id: String,
    /// The page this chunk belongs to.
    pub page_id: PageId,
    /// Position of the chunk within its page, from 0.
    pub position: u32,
    /// The page title followed by the headings above this chunk, outermost first.
    pub heading_path: Vec<String>,
    /// The chunk's Markdown text.
    pub text: String,
    /// Stable hash of the breadcrumb and the chunk's own text (without the overlap carried over
    /// from the previous chunk); an unchanged hash means the vector can be reused.
    pub content_hash: String,
    /// Token count of the embedding text, as the chunker's token counter sees it.
    pub token_count: u32,
}

impl Chunk {
    /// Returns a chunk, computing its id and content hash.
    pub fn new(
        page_id: &PageId,
        position: u32,
        heading_path: Vec<String>,
        text: &str,
        token_count: u32,
    ) -> Self {
        Self::with_overlap(page_id, position, heading_path, None, text, token_count)
    }

    /// Returns a chunk whose text opens with `overlap`, the tail of the previous chunk.
    ///
    /// The overlap is context: it is embedded and searchable but left out of the content hash,
    /// so an edit to the previous chunk's last sentence re-embeds that chunk, not this one too.
    pub fn with_overlap(
        page_id: &PageId,
        position: u32,
        heading_path: Vec<String>,
        overlap: Option<&str>,
        own: &str,
        token_count: u32,
    ) -> Self {
        let breadcrumb = heading_path.join(" > ");
        let content_hash = hash_hex(&format!("{breadcrumb}\n\n{own}"));
        let text = match overlap {
            Some(o) => format!("{o}\n\n{own}"),
            None => own.to_string(),
        };
        Self {
            id: format!("{page_id}:{position}"),
            page_id: page_id.clone(),
            position,
            heading_path,
            text,
            content_hash,
            token_count,
        }
    }

    /// Returns the breadcrumb, `Title > Heading > Subheading`.
    pub fn breadcrumb(&self) -> String {
        self.heading_path.join(" > ")
    }

    /// Returns the text that is embedded: the breadcrumb, a blank line, then the chunk text.
    pub fn embedding_text(&self) -> String {
        format!("{}\n\n{}", self.breadcrumb(), self.text)
    }
}

/// A chunk with its embedding vector, ready to be written to an index.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedChunk {
    /// The chunk.
    pub chunk: Chunk,
    /// Its embedding (L2-normalised by convention).
    pub vector: Vec<f32>,
}
