//! One page brought in line with its source: fetched, chunked, embedded where changed and
//! replaced atomically with its parts, or removed.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use tracing::{debug, info, warn};

use crate::chunk::{Chunk, EmbeddedChunk};
use crate::error::{Error, ErrorKind, Result};
use crate::page::{Fetched, NotIndexed, Page, PageId, Part, PartRef, PartText};
use crate::store::{IndexedPage, ReplaceOutcome};
use crate::text::printable;

use super::{PageOutcome, Pipeline};

/// What writing a page's parts did.
#[derive(Debug, Default, Clone)]
pub(super) struct PartCounts {
    /// The parts whose records were written.
    pub(super) written_ids: Vec<PartRef>,
    /// Chunks the parts have now.
    pub(super) chunks: u32,
    /// Chunks embedded.
    pub(super) embedded: u32,
}

/// Whether `held`, a part's record, is `record` (its page's part at this version) under the
/// page's current rule and place: then nothing is read again.
pub(super) fn holds(held: &IndexedPage, record: &Page, page: &PageId) -> bool {
    held.version == record.version
        && held.parent.as_ref() == Some(page)
        && held.access == record.access
        && held.ancestor_ids == record.ancestor_ids
        && held.ancestors == record.ancestors
        && held.title == record.title
        && held.url == record.url
}

/// The page a part of `page` is indexed as: its own id, title, version, link and text, under
/// the page (the page's breadcrumb and title above it, the page among its ancestors) with the
/// page's read rule.
pub(super) fn part_page(page: &Page, part: &Part) -> Page {
    let mut ancestors = page.ancestors.clone();
    ancestors.push(page.title.clone());
    let mut ancestor_ids = page.ancestor_ids.clone();
    ancestor_ids.push(page.id.clone());
    Page {
        version: part.version,
        url: part.url.clone(),
        ancestors,
        ancestor_ids,
        access: page.access.clone(),
        ..Page::new(
            part.id.clone(),
            page.space_key.clone(),
            part.title.clone(),
            part.body.clone().unwrap_or_default(),
        )
    }
}

impl Pipeline {
    /// Brings one page of the index in line with its source: a live page is upserted with its
    /// parts, a page that is gone, trashed or otherwise not current loses all its chunks and
    /// parts. The id of a part the index holds (a comment) brings its page in line.
    ///
    /// # Errors
    /// Fetch, embedding or store failures; the index is left as it was.
    pub async fn reconcile(&self, id: &PageId) -> Result<PageOutcome> {
        self.reconcile_at_least(id, None).await
    }

    /// Like [`Pipeline::reconcile`], but when the source returns a current page older than
    /// version `wanted` (an event named a version the API does not serve yet), nothing is
    /// written and the answer is [`PageOutcome::Behind`]: ask again later.
    ///
    /// # Errors
    /// Fetch, embedding or store failures; the index is left as it was.
    pub async fn reconcile_at_least(
        &self,
        id: &PageId,
        wanted: Option<u64>,
    ) -> Result<PageOutcome> {
        // A part (a comment) is brought in line with its page.
        let part_of = self.store.page(id).await?.and_then(|held| held.parent);
        let id = part_of.as_ref().unwrap_or(id);
        let read_ms = crate::text::now_ms();
        let fetched = self.fetcher.fetch(id).await?;
        if let (Fetched::Page(page), Some(wanted)) = (&fetched, wanted) {
            if page.status.is_indexed() && page.version < wanted {
                debug!(page_id = %id, fetched = page.version, wanted, "the source is behind the version asked for");
                return Ok(PageOutcome::Behind {
                    fetched: page.version,
                    wanted,
                });
            }
        }
        self.apply_read_at(id, fetched, read_ms).await
    }

    /// Brings page `id` in line with a state already fetched from the source (what
    /// [`Pipeline::reconcile`] does after its fetch).
    ///
    /// # Errors
    /// Embedding or store failures; the index is left as it was.
    pub async fn apply(&self, id: &PageId, fetched: Fetched) -> Result<PageOutcome> {
        self.apply_read_at(id, fetched, crate::text::now_ms()).await
    }

    /// [`Pipeline::apply`] of a state whose fetch began at `read_ms`.
    pub(super) async fn apply_read_at(
        &self,
        id: &PageId,
        fetched: Fetched,
        read_ms: u64,
    ) -> Result<PageOutcome> {
        match fetched {
            Fetched::Page(page) => self.upsert_read_at(page, read_ms).await,
            Fetched::Gone => self.remove(id, "is gone").await,
        }
    }

    /// Indexes `page` as given: chunks it, embeds the chunks whose content changed and replaces
    /// the page's chunks atomically. A page that is not current is removed instead.
    ///
    /// # Errors
    /// Embedding or store failures; the index is left as it was.
    pub async fn upsert(&self, page: Page) -> Result<PageOutcome> {
        self.upsert_read_at(page, crate::text::now_ms()).await
    }

    /// [`Pipeline::upsert`] of a page whose rule was read from `read_ms` on.
    pub(super) async fn upsert_read_at(&self, page: Page, read_ms: u64) -> Result<PageOutcome> {
        if !page.status.is_indexed() {
            let why = format!("is {:?}", page.status).to_lowercase();
            return self.remove(&page.id, &why).await;
        }
        let held = self.store.page(&page.id).await?;
        if let Some(held) = held.as_ref().filter(|h| h.version > page.version) {
            debug!(page_id = %page.id, held = held.version, fetched = page.version, "skipped stale version");
            return Ok(PageOutcome::Stale {
                held: held.version,
                fetched: page.version,
            });
        }
        // Parts first: the page's record then names only parts the index holds.
        let held_refs = held.as_ref().map_or(&[][..], |h| h.parts.as_slice());
        let (refs, parts) = self.write_parts(&page, held_refs, read_ms).await?;
        // Writing parts may take a while (downloads, extraction): the page is judged against
        // its record as it is now, so a later read written meanwhile is seen to have won.
        let held = self.store.page(&page.id).await?;
        let lost = held.as_ref().is_some_and(|h| {
            IndexedPage {
                version: page.version,
                access_read_ms: read_ms,
                ..h.clone()
            }
            .is_stale_against(h.version, h.access_read_ms)
        });
        let outcome = if lost {
            PageOutcome::Stale {
                held: held.as_ref().map_or(page.version, |h| h.version),
                fetched: page.version,
            }
        } else {
            self.write_record(&page, held.as_ref(), None, refs, read_ms)
                .await?
        };
        if matches!(outcome, PageOutcome::Stale { .. }) {
            // A later read of the page won: the parts this call wrote carry a rule older than
            // its, or are ones it no longer lists. They go, unless the winner wrote them since;
            // what the winner lists stays.
            self.delete_own_parts(&page.id, &parts.written_ids, read_ms)
                .await?;
            return Ok(outcome);
        }
        let gone: Vec<PartRef> = held
            .iter()
            .flat_map(|h| &h.parts)
            .filter(|r| !page.parts.iter().any(|p| p.id == r.id))
            .cloned()
            .collect();
        self.delete_parts(&page.id, &gone).await?;
        Ok(match outcome {
            PageOutcome::Updated {
                chunks,
                embedded,
                reused,
            } => PageOutcome::Updated {
                chunks: chunks + parts.chunks,
                embedded: embedded + parts.embedded,
                reused: reused + parts.chunks - parts.embedded,
            },
            PageOutcome::Unchanged if !parts.written_ids.is_empty() => {
                let chunks = held.map_or(0, |h| h.chunk_count);
                PageOutcome::Updated {
                    chunks: chunks + parts.chunks,
                    embedded: parts.embedded,
                    reused: chunks + parts.chunks - parts.embedded,
                }
            }
            other => other,
        })
    }

    /// Writes the records of `page`'s parts (a part whose version, rule and place the index
    /// holds is left as it is; a changed one re-embeds only its own changed chunks), and
    /// returns what the page's record keeps of them. A part read on demand (an attachment) is
    /// read only when the index does not hold its version; one that is skipped or fails to be
    /// read has no record (the old one goes), and is named so in the page's record.
    pub(super) async fn write_parts(
        &self,
        page: &Page,
        held_refs: &[PartRef],
        read_ms: u64,
    ) -> Result<(Vec<PartRef>, PartCounts)> {
        let mut refs = Vec::with_capacity(page.parts.len());
        let mut counts = PartCounts::default();
        for part in &page.parts {
            let mut record = part_page(page, part);
            let held = self.store.page(&part.id).await?;
            let reference = part_ref(part);
            if part.body.is_none() {
                let read = self
                    .read_part(page, part, held_refs, held.as_ref(), &mut record)
                    .await?;
                if let Some((kept, chunks)) = read {
                    counts.chunks += chunks;
                    refs.push(kept);
                    continue;
                }
            }
            let held_chunks = held.as_ref().map_or(0, |h| h.chunk_count);
            match self
                .write_record(&record, held.as_ref(), Some(&page.id), Vec::new(), read_ms)
                .await?
            {
                PageOutcome::Updated {
                    chunks, embedded, ..
                } => {
                    counts.written_ids.push(reference.clone());
                    counts.chunks += chunks;
                    counts.embedded += embedded;
                }
                PageOutcome::Stale { .. }
                    if held.as_ref().is_some_and(|h| {
                        h.version > record.version
                            && h.access_read_ms < read_ms
                            && h.parent.as_ref() == Some(&page.id)
                            && (h.access != record.access || h.ancestor_ids != record.ancestor_ids)
                    }) =>
                {
                    // The index holds a newer version under a rule read before this one (this
                    // read lags on the part, not on the rule): it goes rather than stay under
                    // the older rule; the page lists this older version, so the next crawl
                    // finds the newer one listed and reads it.
                    self.store.delete_page(&part.id).await?;
                }
                _ => counts.chunks += held_chunks,
            }
            refs.push(reference);
        }
        Ok((refs, counts))
    }

    /// Reads the text of `part`, listed without it, into `record`; or returns the reference
    /// to keep (with the chunks the index keeps of it) when it is not to be written: skipped
    /// before at this version, held as it is, or unreadable now (its record goes).
    async fn read_part(
        &self,
        page: &Page,
        part: &Part,
        held_refs: &[PartRef],
        held: Option<&IndexedPage>,
        record: &mut Page,
    ) -> Result<Option<(PartRef, u32)>> {
        let skipped = held_refs.iter().find(|r| {
            r.id == part.id
                && r.version == part.version
                && matches!(r.not_indexed, Some(NotIndexed::Skipped(_)))
        });
        if let Some(skipped) = skipped {
            return Ok(Some((skipped.clone(), 0)));
        }
        if let Some(held) = held.filter(|h| holds(h, record, &page.id)) {
            return Ok(Some((part_ref(part), held.chunk_count)));
        }
        let tally = &self.attachments;
        let not_indexed = match self.fetcher.fetch_part(page, part).await {
            Ok(PartText::Text(text)) => {
                tally.indexed.fetch_add(1, Ordering::Relaxed);
                record.body = text;
                return Ok(None);
            }
            Ok(PartText::Skipped(why)) => {
                tally.skipped.fetch_add(1, Ordering::Relaxed);
                if why.contains("ATTACHMENT_MAX_BYTES") {
                    tally.too_large.fetch_add(1, Ordering::Relaxed);
                }
                debug!(page_id = %page.id, part = %part.id, "skipped '{}': {why}", printable(&part.title));
                NotIndexed::Skipped(why)
            }
            // Whatever the reason (a refused or blocked download included), one file fails
            // alone: the page and its rule are still written.
            Err(e) => {
                warn!(page_id = %page.id, part = %part.id, error = %e, "could not read '{}' of page '{}'; tried again at the next crawl", printable(&part.title), printable(&page.title));
                tally.failed.fetch_add(1, Ordering::Relaxed);
                NotIndexed::Failed(e.to_string())
            }
        };
        if held.is_some() {
            self.store.delete_page(&part.id).await?;
        }
        let reference = PartRef {
            not_indexed: Some(not_indexed),
            ..part_ref(part)
        };
        Ok(Some((reference, 0)))
    }

    /// Writes the record of `page` (a part of page `parent`, or a page with parts `parts`):
    /// chunks it, embeds the chunks whose content the index does not hold and replaces its
    /// chunks atomically; nothing when the index holds the same version, content, rule, place
    /// and parts.
    pub(super) async fn write_record(
        &self,
        page: &Page,
        held: Option<&IndexedPage>,
        parent: Option<&PageId>,
        parts: Vec<PartRef>,
        read_ms: u64,
    ) -> Result<PageOutcome> {
        if let Some(outcome) = held.and_then(|held| settled(held, page, parent, &parts)) {
            return Ok(outcome);
        }
        let (chunks, embedded) = self.embed(page, held.is_some()).await?;
        let total = chunks.len() as u32;
        let record = IndexedPage {
            access_read_ms: read_ms,
            source: self.source.to_string(),
            parent: parent.cloned(),
            parts,
            ..IndexedPage::of(page, total)
        };
        match self.store.replace_page(&record, &chunks).await? {
            ReplaceOutcome::Replaced => {
                match parent {
                    None => info!(
                        page_id = %page.id, space = %page.space_key, version = page.version,
                        chunks = total, embedded,
                        "Updated page '{}' — {total} chunks re-indexed", printable(&page.title)
                    ),
                    Some(parent) => debug!(
                        page_id = %parent, part = %page.id, version = page.version,
                        chunks = total, embedded,
                        "Updated '{}' of the page — {total} chunks re-indexed", printable(&page.title)
                    ),
                }
                Ok(PageOutcome::Updated {
                    chunks: total,
                    embedded,
                    reused: total - embedded,
                })
            }
            ReplaceOutcome::Stale { held } => Ok(PageOutcome::Stale {
                held,
                fetched: page.version,
            }),
        }
    }

    /// Chunks `page`: a large one off the async threads ([`crate::run_cpu_bound`]).
    async fn chunk(&self, page: &Page) -> Vec<Chunk> {
        let (chunker, owned) = (self.chunker.clone(), page.clone());
        crate::run_cpu_bound(page.body.len(), move || chunker.chunk(&owned)).await
    }

    /// Chunks `page` and embeds the chunks whose vectors the index does not hold (`reuse`:
    /// it holds an earlier version); returns the chunks with their vectors and how many were
    /// embedded.
    async fn embed(&self, page: &Page, reuse: bool) -> Result<(Vec<EmbeddedChunk>, u32)> {
        let chunks = self.chunk(page).await;
        let cached: HashMap<String, Vec<f32>> = if reuse {
            self.store
                .chunk_vectors(&page.id)
                .await?
                .into_iter()
                .collect()
        } else {
            HashMap::new()
        };
        let missing: Vec<usize> = (0..chunks.len())
            .filter(|&i| !cached.contains_key(&chunks[i].content_hash))
            .collect();
        let mut fresh: HashMap<usize, Vec<f32>> = HashMap::new();
        let dimension = self.embedder.model().dimension;
        for batch in missing.chunks(self.options.embed_batch_size.max(1)) {
            let texts: Vec<String> = batch.iter().map(|&i| chunks[i].embedding_text()).collect();
            let vectors = self.embedder.embed(&texts).await?;
            if vectors.len() != texts.len() || vectors.iter().any(|v| v.len() != dimension) {
                return Err(Error::new(
                    ErrorKind::Embedding,
                    format!(
                        "embedder returned {} vectors for {} texts (expected dimension {dimension})",
                        vectors.len(),
                        texts.len()
                    ),
                ));
            }
            fresh.extend(batch.iter().copied().zip(vectors));
        }
        let mut out = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.into_iter().enumerate() {
            let vector = match fresh.remove(&i) {
                Some(v) => v,
                None => cached.get(&chunk.content_hash).cloned().ok_or_else(|| {
                    Error::new(ErrorKind::Embedding, "a reused vector went missing")
                })?,
            };
            out.push(EmbeddedChunk { chunk, vector });
        }
        Ok((out, missing.len() as u32))
    }

    pub(super) async fn remove(&self, id: &PageId, why: &str) -> Result<PageOutcome> {
        let Some(held) = self.store.page(id).await? else {
            debug!(page_id = %id, "page {why} and is not indexed");
            return Ok(PageOutcome::Absent);
        };
        // Parts first: a part never outlives its page's record, even for a moment.
        self.delete_parts(id, &held.parts).await?;
        let chunks = self.store.delete_page(id).await?;
        info!(page_id = %id, chunks, "Deleted page '{}' ({why}) — {chunks} chunks removed", printable(&held.title));
        Ok(PageOutcome::Deleted { chunks })
    }

    /// Deletes the records of parts `parts` of page `page` that a write of a read begun at
    /// `read_ms` put there and no later write has replaced.
    pub(super) async fn delete_own_parts(
        &self,
        page: &PageId,
        parts: &[PartRef],
        read_ms: u64,
    ) -> Result<()> {
        for part in parts {
            let held = self.store.page(&part.id).await?;
            let own = held.is_some_and(|h| {
                h.parent.as_ref() == Some(page)
                    && h.version == part.version
                    && h.access_read_ms == read_ms
            });
            if own {
                self.store.delete_page(&part.id).await?;
                debug!(page_id = %page, part = %part.id, "removed a part a later read of its page replaced");
            }
        }
        Ok(())
    }

    /// Deletes the records of parts `parts` of page `page`: each only while it is still that
    /// page's (an attachment moved to another page stays with it).
    pub(super) async fn delete_parts(&self, page: &PageId, parts: &[PartRef]) -> Result<()> {
        for part in parts {
            let held = self.store.page(&part.id).await?;
            if held.is_some_and(|h| h.parent.as_ref() == Some(page)) {
                let chunks = self.store.delete_page(&part.id).await?;
                debug!(page_id = %page, part = %part.id, chunks, "removed a part of the page");
            }
        }
        Ok(())
    }
}

/// A reference to `part` as listed, indexed.
fn part_ref(part: &Part) -> PartRef {
    PartRef {
        id: part.id.clone(),
        version: part.version,
        kind: part.kind,
        not_indexed: None,
    }
}

/// What writing `page` over the record `held` comes to without writing: stale when the index
/// holds a newer version, unchanged when it holds this one with the same content, rule, place
/// and parts; `None` when the record is to be written.
fn settled(
    held: &IndexedPage,
    page: &Page,
    parent: Option<&PageId>,
    parts: &[PartRef],
) -> Option<PageOutcome> {
    if held.version > page.version {
        return Some(PageOutcome::Stale {
            held: held.version,
            fetched: page.version,
        });
    }
    if held.version == page.version && held.content_hash == page.content_hash() {
        if held.access == page.access
            && held.ancestor_ids == page.ancestor_ids
            && held.parts == parts
            && held.parent.as_ref() == parent
        {
            return Some(PageOutcome::Unchanged);
        }
        if held.access != page.access {
            info!(page_id = %page.id, "permissions of '{}' changed; re-indexing without embedding", printable(&page.title));
        }
    }
    None
}
