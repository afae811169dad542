//! Replacing a page without transactions: write a new generation of chunks, switch the page
//! record to it with optimistic concurrency, retire the old one (see the module docs).

use super::*;
/// Attempts at switching a page record when another writer races.
pub(super) const SWITCH_ATTEMPTS: u32 = 5;

/// Chunks that no page record has named for this long are a crashed write's, not one in flight.
pub(super) const ABANDONED_AFTER_MS: u64 = 15 * 60 * 1000;

/// A page record as stored, with its optimistic-concurrency tokens.
pub(super) struct Held {
    pub(super) record: IndexedPage,
    pub(super) generation: String,
    pub(super) seq_no: u64,
    pub(super) primary_term: u64,
}

impl OpenSearchStore {
    pub(super) async fn held(&self, id: &PageId) -> Result<Option<Held>, IndexError> {
        let (status, doc) = self
            .client
            .call(
                Method::GET,
                &format!("/{}/_doc/{}", self.pages, segment(id.as_str())),
                Body::Empty,
                "read a page record",
            )
            .await?;
        if status == 404 || doc["found"] != true {
            return Ok(None);
        }
        let record: IndexedPage = serde_json::from_value(doc["_source"]["record"].clone())
            .map_err(|_| IndexError::Corrupt {
                what: "page record",
            })?;
        Ok(Some(Held {
            record,
            generation: doc["_source"]["generation"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            seq_no: doc["_seq_no"].as_u64().unwrap_or(0),
            primary_term: doc["_primary_term"].as_u64().unwrap_or(1),
        }))
    }

    /// Step 1 of a replace: writes the chunks under `generation`, invisible to search until the
    /// page record names it. A failed write removes what it added, leaving the old state whole.
    pub(super) async fn write_generation(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
        generation: &str,
        held: Option<&Held>,
    ) -> Result<(), IndexError> {
        let updated_at = now_ms();
        let read = read_fields(page);
        let actions: Vec<Action> = chunks
            .iter()
            .map(|c| Action {
                meta: json!({"index": {"_index": self.chunks, "_id": chunk_doc_id(&page.id, generation, c.chunk.position)}}),
                doc: Some(with_fields(json!({
                    "chunk_id": c.chunk.id,
                    "page_id": page.id.as_str(),
                    "generation": generation,
                    "space_key": page.space_key,
                    "status": "current",
                    "title": page.title,
                    "heading_path": c.chunk.heading_path,
                    "text": c.chunk.text,
                    "url": page.url,
                    "position": c.chunk.position,
                    "content_hash": c.chunk.content_hash,
                    "page_version": page.version,
                    "updated_at": updated_at,
                    "vector": c.vector,
                }), &read)),
            })
            .collect();
        if let Err(e) = self.bulk(&actions, "write chunks").await {
            if held.map(|h| h.generation.as_str()) != Some(generation) {
                let _ = self
                    .bulk(
                        &self.own_chunks(page, chunks, generation),
                        "undo a failed write",
                    )
                    .await;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Step 2 of a replace: switches the page record to `generation` with optimistic
    /// concurrency, reading the record again when another writer switched it first. A write
    /// that finds a newer version held deletes its own chunks and reports itself stale.
    pub(super) async fn switch_to(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
        generation: &str,
        mut held: Option<Held>,
    ) -> Result<ReplaceOutcome, IndexError> {
        for attempt in 0..SWITCH_ATTEMPTS {
            if attempt > 0 {
                held = self.held(&page.id).await?;
            }
            if let Some(stale) = self
                .give_way_if_stale(page, chunks, generation, held.as_ref())
                .await?
            {
                return Ok(stale);
            }
            if !self.put_record(page, generation, held.as_ref()).await? {
                continue;
            }
            self.dirty.store(true, Ordering::Relaxed);
            if let Some(h) = held {
                self.retire(page, generation, &h).await?;
            }
            return Ok(ReplaceOutcome::Replaced);
        }
        Err(IndexError::OpenSearch {
            url: self.client.url().to_owned(),
            what: "write the page record".into(),
            status: 409,
            detail: format!(
                "page {} kept changing under {SWITCH_ATTEMPTS} attempts",
                page.id
            ),
        })
    }

    /// When the `held` record is newer than `page`, deletes the chunks this write of
    /// `generation` added (unless the record names them) and returns the stale outcome.
    async fn give_way_if_stale(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
        generation: &str,
        held: Option<&Held>,
    ) -> Result<Option<ReplaceOutcome>, IndexError> {
        let Some(h) =
            held.filter(|h| page.is_stale_against(h.record.version, h.record.access_read_ms))
        else {
            return Ok(None);
        };
        if h.generation != generation {
            // By id: a search might not see these chunks before a refresh.
            self.bulk(
                &self.own_chunks(page, chunks, generation),
                "delete a stale write",
            )
            .await?;
        }
        Ok(Some(ReplaceOutcome::Stale {
            held: h.record.version,
        }))
    }

    /// Writes `page`'s record naming `generation`, only over the `held` record (or only if
    /// there is none); returns false when another writer changed the record first.
    async fn put_record(
        &self,
        page: &IndexedPage,
        generation: &str,
        held: Option<&Held>,
    ) -> Result<bool, IndexError> {
        let record = page_record(page, generation);
        let path = self.record_path(&page.id, held);
        match self
            .client
            .call(
                Method::PUT,
                &path,
                Body::Json(&record),
                "write the page record",
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(IndexError::OpenSearch { status: 409, .. }) => {
                debug!(page_id = %page.id, "page record changed under us; reading it again");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Returns the path that writes page `id`'s record over `held` (by its concurrency tokens),
    /// or creates it when nothing is held.
    fn record_path(&self, id: &PageId, held: Option<&Held>) -> String {
        match held {
            Some(h) => format!(
                "/{}/_doc/{}?if_seq_no={}&if_primary_term={}",
                self.pages,
                segment(id.as_str()),
                h.seq_no,
                h.primary_term
            ),
            None => format!(
                "/{}/_doc/{}?op_type=create",
                self.pages,
                segment(id.as_str())
            ),
        }
    }

    /// Step 3 of a replace: deletes the generation the record named before, then leftovers of
    /// interrupted writes of older versions.
    pub(super) async fn retire(
        &self,
        page: &IndexedPage,
        generation: &str,
        old: &Held,
    ) -> Result<(), IndexError> {
        let stale: Vec<String> = if old.generation == generation {
            (page.chunk_count..old.record.chunk_count)
                .map(|p| chunk_doc_id(&page.id, generation, p))
                .collect()
        } else {
            (0..old.record.chunk_count)
                .map(|p| chunk_doc_id(&page.id, &old.generation, p))
                .collect()
        };
        if !stale.is_empty() {
            self.bulk(&self.delete_actions(stale), "delete replaced chunks")
                .await?;
        }
        self.sweep(&page.id, Some(generation), page.version).await
    }

    /// Delete actions for the chunks a write of `generation` added.
    pub(super) fn own_chunks(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
        generation: &str,
    ) -> Vec<Action> {
        self.delete_actions(
            chunks
                .iter()
                .map(|c| chunk_doc_id(&page.id, generation, c.chunk.position)),
        )
    }

    /// Deletes chunks of page `id` that are not of generation `keep` and are either of a
    /// version older than `below` or abandoned (written more than [`ABANDONED_AFTER_MS`] ago):
    /// leftovers of interrupted writes. Recent chunks of the same or a newer version may be
    /// another writer's, written but not yet switched to, and are left alone.
    pub(super) async fn sweep(
        &self,
        id: &PageId,
        keep: Option<&str>,
        below: u64,
    ) -> Result<(), IndexError> {
        let abandoned = now_ms().saturating_sub(ABANDONED_AFTER_MS);
        let mut query = json!({"bool": {
            "filter": [{"term": {"page_id": id.as_str()}}],
            "should": [
                {"range": {"page_version": {"lt": below}}},
                {"range": {"updated_at": {"lt": abandoned}}}
            ],
            "minimum_should_match": 1
        }});
        if let Some(keep) = keep {
            query["bool"]["must_not"] = json!([{"term": {"generation": keep}}]);
        }
        let (status, found) = self
            .client
            .call(
                Method::POST,
                &format!("/{}/_search", self.chunks),
                Body::Json(&json!({"size": 10000, "_source": false, "query": query})),
                "find stale chunks",
            )
            .await?;
        if status == 404 {
            return Ok(());
        }
        let ids: Vec<String> = found["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["_id"].as_str().map(str::to_owned))
            .collect();
        if !ids.is_empty() {
            debug!(page_id = %id, stale = ids.len(), "sweeping stale chunks");
            self.bulk(&self.delete_actions(ids), "delete stale chunks")
                .await?;
        }
        Ok(())
    }
}

/// Returns the page record of `page` naming `generation`.
fn page_record(page: &IndexedPage, generation: &str) -> Value {
    json!({
        "kind": if page.parent.is_some() { "part" } else { "page" },
        "page_id": page.id.as_str(),
        "space_key": page.space_key,
        "generation": generation,
        "version": page.version,
        "chunk_count": page.chunk_count,
        "record": page,
    })
}

/// `doc` with `fields` added.
fn with_fields(mut doc: Value, fields: &serde_json::Map<String, Value>) -> Value {
    if let Some(object) = doc.as_object_mut() {
        object.extend(fields.clone());
    }
    doc
}

pub(super) fn chunk_doc_id(page: &PageId, generation: &str, position: u32) -> String {
    format!("{page}@{generation}#{position}")
}

/// A generation derived from everything written, so the same write gets the same ids.
pub(super) fn generation_of(page: &IndexedPage, chunks: &[EmbeddedChunk]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&page.version.to_le_bytes());
    eat(page.content_hash.as_bytes());
    eat(serde_json::to_string(&page.access)
        .unwrap_or_default()
        .as_bytes());
    for c in chunks {
        eat(&c.chunk.position.to_le_bytes());
        eat(c.chunk.content_hash.as_bytes());
    }
    format!("{}-{h:016x}", page.version)
}
