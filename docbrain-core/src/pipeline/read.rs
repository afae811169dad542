//! The read side: hybrid search filtered by the caller's permissions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::page::PageId;
use crate::read_access::Caller;
use crate::search::{SearchFilter, SearchHit, SearchRequest};
use crate::store::IndexedChunk;

use super::Pipeline;

impl Pipeline {
    /// Answers a question with the `k` best chunks (hybrid BM25 + vector search) of the pages
    /// `filter.caller` may read: the one search path of every front door.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] for an empty question or `k` outside 1..=[`SearchRequest::MAX_K`];
    /// [`ErrorKind::NotFound`] for a space the caller can read nothing in, or a user the source
    /// does not know; embedding or store failures.
    pub async fn search(
        &self,
        query: &str,
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<SearchHit>> {
        let text = query.trim();
        if text.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "the search query is empty",
            ));
        }
        if !(1..=SearchRequest::MAX_K).contains(&k) {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("k must be from 1 to {}", SearchRequest::MAX_K),
            ));
        }
        let reader = self.reader_for(&filter.caller).await?;
        let mut vectors = self.embedder.embed(&[text.to_string()]).await?;
        let vector = vectors.pop().ok_or_else(|| {
            Error::new(
                ErrorKind::Embedding,
                "embedder returned no vector for the query",
            )
        })?;
        let hits = self
            .store
            .search(&SearchRequest {
                text: text.to_string(),
                vector,
                k,
                filter: filter.clone(),
                reader,
            })
            .await?;
        if let (true, Some(space)) = (hits.is_empty(), &filter.space_key) {
            self.known_space(space, &filter.caller).await?;
        }
        Ok(hits)
    }
}

/// One space of the index, as far as a caller may read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceSummary {
    /// The space key.
    pub key: String,
    /// Pages the caller may read.
    pub pages: u64,
    /// Their chunks, their comments' included.
    pub chunks: u64,
    /// When the last full sync completed (every crawled space at once), in milliseconds since
    /// the Unix epoch.
    pub last_sync_ms: Option<u64>,
}

/// A page's indexed text, reassembled from its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageText {
    /// The page id.
    pub page_id: PageId,
    /// The title.
    pub title: String,
    /// The space key.
    pub space_key: String,
    /// A link to the page.
    pub url: Option<String>,
    /// The version the index holds.
    pub version: u64,
    /// The body as Markdown: the chunks in order, each heading once, no overlap repeated.
    pub markdown: String,
}

impl Pipeline {
    /// The spaces holding pages `caller` may read, with counts of those pages, by key.
    ///
    /// # Errors
    /// Store failures; a user the source does not know.
    pub async fn spaces(&self, caller: &Caller) -> Result<Vec<SpaceSummary>> {
        let reader = self.reader_for(caller).await?;
        let last_sync_ms = self.store().stats().await?.last_sync_ms;
        let mut spaces: BTreeMap<String, SpaceSummary> = BTreeMap::new();
        for page in self.store().list_pages().await? {
            if reader.as_ref().is_some_and(|r| !page.access.admits(r)) {
                continue;
            }
            let is_page = page.parent.is_none();
            let entry = spaces
                .entry(page.space_key.clone())
                .or_insert_with(|| SpaceSummary {
                    key: page.space_key.clone(),
                    pages: 0,
                    chunks: 0,
                    last_sync_ms,
                });
            entry.pages += u64::from(is_page);
            entry.chunks += u64::from(page.chunk_count);
        }
        Ok(spaces.into_values().collect())
    }

    /// Fails unless `caller` may read some page of `space`: a space they cannot see is as
    /// unknown to them as one that does not exist.
    pub(crate) async fn known_space(&self, space: &str, caller: &Caller) -> Result<()> {
        let spaces = self.spaces(caller).await?;
        if spaces.iter().any(|s| s.key == space) {
            return Ok(());
        }
        let keys: Vec<&str> = spaces.iter().map(|s| s.key.as_str()).collect();
        Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no space {space} in the index (spaces: {})",
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            ),
        ))
    }

    /// The parts (comments) of page `id` as indexed, in the page's order, if `caller` may read
    /// the page: empty for a page that is not indexed or that the caller may not read.
    ///
    /// # Errors
    /// Store failures; a user the source does not know.
    pub async fn page_parts(&self, id: &PageId, caller: &Caller) -> Result<Vec<PageText>> {
        let reader = self.reader_for(caller).await?;
        let Some(page) = self.store().page(id).await? else {
            return Ok(Vec::new());
        };
        if reader.as_ref().is_some_and(|r| !page.access.admits(r)) {
            return Ok(Vec::new());
        }
        let mut parts = Vec::with_capacity(page.parts.len());
        for part in &page.parts {
            // Each part is read under its own record's rule (its page's).
            if let Some(text) = self.page_text(&part.id, caller).await? {
                parts.push(text);
            }
        }
        Ok(parts)
    }

    /// Page `id` as indexed, if `caller` may read it: `None` for a page that is not indexed and
    /// for one the caller may not read alike.
    ///
    /// # Errors
    /// Store failures; a user the source does not know.
    pub async fn page_text(&self, id: &PageId, caller: &Caller) -> Result<Option<PageText>> {
        let reader = self.reader_for(caller).await?;
        let admits = |page: &crate::store::IndexedPage| {
            reader.as_ref().is_none_or(|r| page.access.admits(r))
        };
        // The record and the chunks are two reads: the record is read again after the chunks,
        // and the chunks are kept only when it still names the same version (a version's
        // chunks never change) under a rule that admits the caller. Another process rewriting
        // the page in between makes the read start over.
        for _ in 0..5 {
            let Some(page) = self.store().page(id).await? else {
                return Ok(None);
            };
            if !admits(&page) {
                return Ok(None);
            }
            let chunks = self.store().chunks(id).await?;
            match self.store().page(id).await? {
                Some(after)
                    if after.version == page.version && after.content_hash == page.content_hash =>
                {
                    if !admits(&after) {
                        return Ok(None);
                    }
                    return Ok(Some(PageText {
                        page_id: after.id,
                        title: after.title,
                        space_key: after.space_key,
                        url: after.url,
                        version: after.version,
                        markdown: markdown(&chunks),
                    }));
                }
                Some(_) => continue,
                None => return Ok(None),
            }
        }
        Err(Error::new(
            ErrorKind::Transport,
            format!("page {id} kept changing while it was read: try again"),
        ))
    }
}

/// Joins chunks back into Markdown: a heading where the heading path changes (the title is the
/// path's root, so its children are `##`), and each chunk's text without the overlap it
/// repeats from the one before.
fn markdown(chunks: &[IndexedChunk]) -> String {
    let mut out = String::new();
    let mut previous: Option<&IndexedChunk> = None;
    for chunk in chunks {
        let before = previous.map_or(&[][..], |p| p.heading_path.as_slice());
        let same_section = previous.is_some() && before == chunk.heading_path.as_slice();
        let shared = chunk
            .heading_path
            .iter()
            .zip(before)
            .take_while(|(a, b)| a == b)
            .count()
            .max(1);
        if !same_section {
            for (depth, heading) in chunk.heading_path.iter().enumerate().skip(shared) {
                push_block(&mut out, &format!("{} {heading}", "#".repeat(depth + 1)));
            }
        }
        let text = match previous {
            Some(p) if same_section => without_overlap(&p.text, &chunk.text),
            _ => chunk.text.as_str(),
        };
        push_block(&mut out, text);
        previous = Some(chunk);
    }
    out
}

fn push_block(out: &mut String, block: &str) {
    let block = block.trim();
    if block.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(block);
}

/// `text` without its opening paragraphs that repeat the end of `previous` (the overlap).
fn without_overlap<'a>(previous: &str, text: &'a str) -> &'a str {
    let previous = previous.trim_end();
    text.match_indices("\n\n")
        .map(|(i, _)| i)
        .filter(|&i| i > 0 && previous.ends_with(&text[..i]))
        .last()
        .map_or(text, |i| &text[i + 2..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::{Chunker, MarkdownChunker};
    use crate::page::Page;

    #[test]
    fn chunks_join_back_without_repeating_the_overlap() {
        let body: String = (0..12)
            .map(|s| {
                format!(
                    "## Step {s}\n\nDrain node {s} first. Then check the pods on it.\n\n\
                     Wait until replicas of {s} report healthy. Only then move on.\n\n"
                )
            })
            .collect();
        let page = Page::new("1", "ENG", "Maintenance", format!("Intro line.\n\n{body}"));
        let chunker = MarkdownChunker::new(40, 12).unwrap();
        let chunks: Vec<IndexedChunk> = chunker
            .chunk(&page)
            .into_iter()
            .map(|c| IndexedChunk {
                position: c.position,
                heading_path: c.heading_path,
                text: c.text,
            })
            .collect();
        assert!(
            chunks
                .windows(2)
                .any(|w| w[0].heading_path == w[1].heading_path),
            "some section spans chunks"
        );
        let text = markdown(&chunks);
        let want = format!("Intro line.\n\n{}", body.trim());
        assert_eq!(text, want);
    }

    #[test]
    fn an_overlap_is_only_dropped_when_it_repeats() {
        assert_eq!(without_overlap("a. b.", "b.\n\nc."), "c.");
        assert_eq!(without_overlap("a. x.", "b.\n\nc."), "b.\n\nc.");
        assert_eq!(without_overlap("a.", "c."), "c.");
    }
}
