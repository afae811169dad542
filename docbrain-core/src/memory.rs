//! An in-memory [`IndexStore`]: for tests, examples and small embedded uses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::chunk::EmbeddedChunk;
use crate::embedder::ModelInfo;
use crate::error::{Error, ErrorKind, Result};
use crate::page::PageId;
use crate::search::{reciprocal_rank_fusion, SearchHit, SearchRequest};
use crate::store::{IndexStats, IndexStore, IndexedChunk, IndexedPage, PageState, ReplaceOutcome};

/// An [`IndexStore`] that keeps everything in memory, with the same contract as the others.
/// Keyword ranking is a plain tf-idf over the chunk text.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    model: Option<ModelInfo>,
    pages: BTreeMap<PageId, IndexedPage>,
    chunks: BTreeMap<PageId, Vec<EmbeddedChunk>>,
    last_sync_ms: Option<u64>,
    rule_changes: u64,
}

impl MemoryStore {
    /// Returns an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| Error::new(ErrorKind::Storage, "memory store lock poisoned"))
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[async_trait]
impl IndexStore for MemoryStore {
    async fn bind_model(&self, model: &ModelInfo) -> Result<()> {
        let mut inner = self.lock()?;
        match &inner.model {
            None => inner.model = Some(model.clone()),
            Some(bound) if bound == model => {}
            Some(bound) => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "the index holds vectors of model {} (dimension {}) but the embedder is {} (dimension {}): re-index into an empty store",
                        bound.model_id, bound.dimension, model.model_id, model.dimension
                    ),
                ))
            }
        }
        Ok(())
    }

    async fn page(&self, id: &PageId) -> Result<Option<IndexedPage>> {
        Ok(self.lock()?.pages.get(id).cloned())
    }

    async fn page_states(&self, after: Option<&PageId>, limit: usize) -> Result<Vec<PageState>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let inner = self.lock()?;
        let from = after.map_or(Unbounded, Excluded);
        let pages = inner.pages.range((from, Unbounded)).take(limit);
        Ok(PageState::from_pages(pages.map(|(_, page)| page.clone())))
    }

    async fn page_states_of(&self, ids: &[PageId]) -> Result<Vec<PageState>> {
        let inner = self.lock()?;
        let pages = ids.iter().filter_map(|id| inner.pages.get(id));
        Ok(PageState::from_pages(pages.cloned()))
    }

    async fn chunk_vectors(&self, id: &PageId) -> Result<Vec<(String, Vec<f32>)>> {
        Ok(self
            .lock()?
            .chunks
            .get(id)
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.chunk.content_hash.clone(), c.vector.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn chunks(&self, id: &PageId) -> Result<Vec<IndexedChunk>> {
        let mut chunks: Vec<IndexedChunk> = self
            .lock()?
            .chunks
            .get(id)
            .into_iter()
            .flatten()
            .map(|c| IndexedChunk {
                position: c.chunk.position,
                heading_path: c.chunk.heading_path.clone(),
                text: c.chunk.text.clone(),
            })
            .collect();
        chunks.sort_by_key(|c| c.position);
        Ok(chunks)
    }

    async fn replace_page(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
    ) -> Result<ReplaceOutcome> {
        let mut inner = self.lock()?;
        if let Some(held) = inner.pages.get(&page.id) {
            if page.is_stale_against(held.version, held.access_read_ms) {
                return Ok(ReplaceOutcome::Stale { held: held.version });
            }
        }
        inner.pages.insert(page.id.clone(), page.clone());
        inner.chunks.insert(page.id.clone(), chunks.to_vec());
        Ok(ReplaceOutcome::Replaced)
    }

    async fn delete_page(&self, id: &PageId) -> Result<u64> {
        let mut inner = self.lock()?;
        inner.pages.remove(id);
        Ok(inner.chunks.remove(id).map_or(0, |c| c.len() as u64))
    }

    async fn delete_page_if(&self, id: &PageId, at_most: u64) -> Result<Option<u64>> {
        let mut inner = self.lock()?;
        if inner.pages.get(id).is_some_and(|p| p.version > at_most) {
            return Ok(None);
        }
        inner.pages.remove(id);
        Ok(Some(inner.chunks.remove(id).map_or(0, |c| c.len() as u64)))
    }

    async fn list_pages(&self) -> Result<Vec<IndexedPage>> {
        Ok(self.lock()?.pages.values().cloned().collect())
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        let inner = self.lock()?;
        let space = request.filter.space_key.as_deref();
        let candidates: Vec<(&IndexedPage, &EmbeddedChunk)> = inner
            .chunks
            .iter()
            .filter_map(|(id, cs)| inner.pages.get(id).map(|p| (p, cs)))
            .filter(|(p, _)| space.is_none_or(|s| p.space_key == s))
            .filter(|(p, _)| request.reader.as_ref().is_none_or(|r| p.access.admits(r)))
            .flat_map(|(p, cs)| cs.iter().map(move |c| (p, c)))
            .collect();
        let terms = request.terms();
        let docs: Vec<Vec<String>> = candidates
            .iter()
            .map(|(_, c)| words(&c.chunk.embedding_text()))
            .collect();
        let n = docs.len() as f64;
        let idf: HashMap<&str, f64> = terms
            .iter()
            .map(|t| {
                let df = docs.iter().filter(|d| d.contains(t)).count() as f64;
                (t.as_str(), (1.0 + n / (df + 1.0)).ln())
            })
            .collect();
        let mut lexical: Vec<(usize, f64)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let s = d.iter().filter_map(|w| idf.get(w.as_str())).sum::<f64>();
                (i, s / (d.len() as f64).sqrt().max(1.0))
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        lexical.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut semantic: Vec<(usize, f32)> = candidates
            .iter()
            .enumerate()
            .map(|(i, (_, c))| (i, dot(&c.vector, &request.vector)))
            .collect();
        semantic.sort_by(|a, b| b.1.total_cmp(&a.1));
        let depth = request.k.max(50);
        let lexical: Vec<usize> = lexical.iter().take(depth).map(|x| x.0).collect();
        let semantic: Vec<usize> = semantic.iter().take(depth).map(|x| x.0).collect();
        Ok(reciprocal_rank_fusion(&[&lexical, &semantic], 60.0)
            .into_iter()
            .take(request.k)
            .map(|(i, score)| {
                let (p, c) = candidates[i];
                SearchHit {
                    chunk_id: c.chunk.id.clone(),
                    page_id: p.id.clone(),
                    title: p.title.clone(),
                    space_key: p.space_key.clone(),
                    heading_path: c.chunk.heading_path.clone(),
                    url: p.url.clone(),
                    text: c.chunk.text.clone(),
                    score,
                }
            })
            .collect())
    }

    async fn stats(&self) -> Result<IndexStats> {
        let inner = self.lock()?;
        Ok(IndexStats {
            pages: inner.pages.values().filter(|p| p.parent.is_none()).count() as u64,
            parts: inner.pages.values().filter(|p| p.parent.is_some()).count() as u64,
            chunks: inner.chunks.values().map(|c| c.len() as u64).sum(),
            model_id: inner.model.as_ref().map(|m| m.model_id.clone()),
            dimension: inner.model.as_ref().map(|m| m.dimension),
            last_sync_ms: inner.last_sync_ms,
        })
    }

    async fn record_sync(&self, unix_ms: u64) -> Result<()> {
        self.lock()?.last_sync_ms = Some(unix_ms);
        Ok(())
    }

    async fn note_rules_changed(&self) -> Result<()> {
        self.lock()?.rule_changes += 1;
        Ok(())
    }

    async fn rule_changes(&self) -> Result<u64> {
        Ok(self.lock()?.rule_changes)
    }
}
