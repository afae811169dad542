//! The OpenSearch store: chunks with BM25 text and `knn_vector`s in one index, page records in
//! a second, hybrid search fused client-side.
//!
//! Two indices: `OPENSEARCH_INDEX` (default `docbrain-chunks`) holds one document per chunk
//! (English-analysed text, a `knn_vector` with HNSW on the lucene engine and cosine similarity,
//! keyword fields for filters), and `<index>-pages` holds one record per page plus the last-sync
//! time. The model id and dimension live in the chunk index's mapping `_meta`.
//!
//! OpenSearch has no transactions, so a replace is ordered to look atomic: the new chunks are
//! written under a new *generation* (ids `<page>@<generation>#<position>`, derived from the
//! content, so a retried write is idempotent), then the page record is switched to that
//! generation with optimistic concurrency (`if_seq_no`), then the old generation is deleted by id.
//! Searches keep only chunks of the generation their page record names, so readers never see a
//! half-replaced page, and a crash between the steps leaves unreferenced chunks that the next
//! replace or delete of that page sweeps away. A sweep spares recent chunks of the writer's own
//! or a newer version: they may be another writer's, written and about to be switched to; after
//! 15 minutes unreferenced they count as abandoned. Nothing needs `_delete_by_query`.

mod client;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use docbrain_core::retry::RetryPolicy;
use docbrain_core::settings::OpenSearchSettings;
use docbrain_core::text::now_ms;
use docbrain_core::{
    reciprocal_rank_fusion, EmbeddedChunk, IndexStats, IndexStore, IndexedPage, ModelInfo, PageId,
    ReplaceOutcome, SearchHit, SearchRequest,
};
use reqwest::Method;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::http::segment;
use crate::IndexError;
use client::{reason, Body, Client};

/// How many candidates each ranking contributes to the fusion.
const CANDIDATES: usize = 50;
/// The `k` constant of reciprocal rank fusion.
const RRF_K: f64 = 60.0;
/// The id of the document holding the last-sync time in the pages index.
const SYNC_DOC: &str = "__docbrain_sync__";
/// Attempts at switching a page record when another writer races.
const SWITCH_ATTEMPTS: u32 = 5;
/// Chunks that no page record has named for this long are a crashed write's, not one in flight.
const ABANDONED_AFTER_MS: u64 = 15 * 60 * 1000;

/// How to reach OpenSearch.
#[derive(Debug, Clone)]
pub struct OpenSearchConfig {
    /// The `OPENSEARCH_*` settings.
    pub cluster: OpenSearchSettings,
    /// Chunks per `_bulk` request.
    pub bulk_batch: usize,
    /// Retries of each request (429/502/503/504, resets, timeouts).
    pub retry: RetryPolicy,
}

impl OpenSearchConfig {
    /// Settings for `url` and `index` with defaults for the rest.
    pub fn new(url: impl Into<String>, index: impl Into<String>) -> Self {
        Self::from(OpenSearchSettings {
            url: url.into(),
            index: index.into(),
            ..OpenSearchSettings::default()
        })
    }
}

impl From<OpenSearchSettings> for OpenSearchConfig {
    fn from(cluster: OpenSearchSettings) -> Self {
        Self {
            cluster,
            bulk_batch: 500,
            retry: RetryPolicy::default(),
        }
    }
}

/// An [`IndexStore`] on an OpenSearch cluster with the k-NN plugin.
#[derive(Debug)]
pub struct OpenSearchStore {
    client: Client,
    chunks: String,
    pages: String,
    bulk_batch: usize,
    /// The model the index is bound to, once known.
    model: Mutex<Option<ModelInfo>>,
    /// Set by writes; the next search refreshes first so a writer reads its own writes.
    dirty: AtomicBool,
}

/// A page record as stored, with its optimistic-concurrency tokens.
struct Held {
    record: IndexedPage,
    generation: String,
    seq_no: u64,
    primary_term: u64,
}

impl OpenSearchStore {
    /// Connects to the cluster and checks that it has the k-NN plugin. Indices are created by
    /// [`IndexStore::bind_model`], which knows the dimension.
    ///
    /// # Errors
    /// An unreachable cluster, refused credentials, a cluster without k-NN, or a bad index name.
    pub async fn connect(config: impl Into<OpenSearchConfig>) -> Result<Self, IndexError> {
        let OpenSearchConfig {
            cluster: config,
            bulk_batch,
            retry,
        } = config.into();
        let index = config.index.trim().to_owned();
        let valid = !index.is_empty()
            && index == index.to_lowercase()
            && !index.starts_with(['_', '-', '+'])
            && !index.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']);
        if !valid {
            return Err(IndexError::InvalidSetting(format!(
                "OPENSEARCH_INDEX={:?} is not a valid index name: use lowercase letters, digits, - and _",
                config.index
            )));
        }
        let auth = match (config.username, config.password) {
            (Some(user), Some(password)) if !user.is_empty() => Some((user, password)),
            (Some(user), None) if !user.is_empty() => {
                return Err(IndexError::InvalidSetting(
                    "OPENSEARCH_USERNAME is set but OPENSEARCH_PASSWORD is not".into(),
                ))
            }
            _ => None,
        };
        let client = Client::new(&config.url, auth, config.tls_verify, retry)?;
        let (_, root) = client.call(Method::GET, "/", Body::Empty, "answer").await?;
        let (_, plugins) = client
            .call(
                Method::GET,
                "/_cat/plugins?format=json",
                Body::Empty,
                "list plugins",
            )
            .await?;
        let has_knn = plugins
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["component"] == "opensearch-knn"));
        if !has_knn {
            return Err(IndexError::InvalidSetting(format!(
                "OpenSearch at {} has no k-NN plugin (opensearch-knn): install it, or use a cluster that has it",
                client.url()
            )));
        }
        info!(
            url = client.url(),
            version = root["version"]["number"].as_str().unwrap_or("?"),
            index = %index,
            "Connected to OpenSearch"
        );
        Ok(Self {
            client,
            pages: format!("{index}-pages"),
            chunks: index,
            bulk_batch: bulk_batch.max(1),
            model: Mutex::new(None),
            dirty: AtomicBool::new(false),
        })
    }

    /// The chunk index's name.
    pub fn index(&self) -> &str {
        &self.chunks
    }

    fn bound(&self) -> Option<ModelInfo> {
        self.model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn create_indices(&self, model: &ModelInfo) -> Result<(), IndexError> {
        let chunks = json!({
            "settings": {"index": {"knn": true}},
            "mappings": {
                "dynamic": "strict",
                "_meta": {"docbrain": {"model_id": model.model_id, "dimension": model.dimension, "schema": 1}},
                "properties": {
                    "chunk_id": {"type": "keyword"},
                    "page_id": {"type": "keyword"},
                    "generation": {"type": "keyword"},
                    "space_key": {"type": "keyword"},
                    "status": {"type": "keyword"},
                    "title": {"type": "text", "analyzer": "english"},
                    "heading_path": {"type": "text", "analyzer": "english"},
                    "text": {"type": "text", "analyzer": "english"},
                    "url": {"type": "keyword", "index": false},
                    "position": {"type": "integer"},
                    "content_hash": {"type": "keyword"},
                    "page_version": {"type": "long"},
                    "updated_at": {"type": "date", "format": "epoch_millis"},
                    "vector": {
                        "type": "knn_vector",
                        "dimension": model.dimension,
                        "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
                                   "parameters": {"m": 16, "ef_construction": 128}}
                    }
                }
            }
        });
        let pages = json!({
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "kind": {"type": "keyword"},
                    "page_id": {"type": "keyword"},
                    "space_key": {"type": "keyword"},
                    "generation": {"type": "keyword"},
                    "version": {"type": "long"},
                    "chunk_count": {"type": "integer"},
                    "last_sync_ms": {"type": "long"},
                    "record": {"type": "object", "enabled": false}
                }
            }
        });
        for (name, body) in [(&self.pages, &pages), (&self.chunks, &chunks)] {
            match self
                .client
                .call(
                    Method::PUT,
                    &format!("/{name}"),
                    Body::Json(body),
                    "create the index",
                )
                .await
            {
                Ok(_) => info!(index = %name, "Created OpenSearch index"),
                // Another process created it first: its mapping is checked by the caller.
                Err(IndexError::OpenSearch { detail, .. }) if detail.contains("already exists") => {
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn read_model(&self) -> Result<Option<ModelInfo>, IndexError> {
        let (status, mapping) = self
            .client
            .call(
                Method::GET,
                &format!("/{}/_mapping", self.chunks),
                Body::Empty,
                "read the mapping",
            )
            .await?;
        if status == 404 {
            return Ok(None);
        }
        let index = mapping
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or(Value::Null);
        let meta = &index["mappings"]["_meta"]["docbrain"];
        match (meta["model_id"].as_str(), meta["dimension"].as_u64()) {
            (Some(id), Some(dimension)) => Ok(Some(ModelInfo {
                model_id: id.to_owned(),
                dimension: dimension as usize,
            })),
            _ => Err(IndexError::InvalidSetting(format!(
                "OpenSearch index {} exists but was not created by DocBrain: set OPENSEARCH_INDEX to another name",
                self.chunks
            ))),
        }
    }

    async fn held(&self, id: &PageId) -> Result<Option<Held>, IndexError> {
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

    /// Sends `_bulk` actions in batches; items rejected with 429/503 are retried with backoff,
    /// any other item failure is an error.
    async fn bulk(&self, actions: &[Action], what: &str) -> Result<(), IndexError> {
        let policy = *self.client.retry_policy();
        for batch in actions.chunks(self.bulk_batch) {
            let mut pending: Vec<&Action> = batch.iter().collect();
            let mut attempt = 1;
            let mut backoff = policy.initial_backoff;
            loop {
                pending = self.bulk_once(&pending, what).await?;
                if pending.is_empty() {
                    break;
                }
                if attempt >= policy.max_attempts {
                    return Err(IndexError::OpenSearchUnavailable {
                        url: self.client.url().to_owned(),
                        attempts: attempt,
                        last: format!("{} bulk items still rejected (429/503)", pending.len()),
                    });
                }
                warn!(
                    items = pending.len(),
                    wait_ms = backoff.as_millis() as u64,
                    "OpenSearch rejected bulk items; retrying them"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
                attempt += 1;
            }
        }
        Ok(())
    }

    /// One `_bulk` request; returns the actions rejected with 429/503.
    async fn bulk_once<'a>(
        &self,
        actions: &[&'a Action],
        what: &str,
    ) -> Result<Vec<&'a Action>, IndexError> {
        let mut body = String::new();
        for action in actions {
            body.push_str(&action.meta.to_string());
            body.push('\n');
            if let Some(doc) = &action.doc {
                body.push_str(&doc.to_string());
                body.push('\n');
            }
        }
        let (_, answer) = self
            .client
            .call(Method::POST, "/_bulk", Body::NdJson(&body), what)
            .await?;
        if answer["errors"] != true {
            return Ok(Vec::new());
        }
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        let mut rejected = Vec::new();
        for (item, action) in items.iter().zip(actions) {
            let result = item
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            match result["status"].as_u64().unwrap_or(0) {
                200..=299 => {}
                404 if action.doc.is_none() => {} // deleting what is already gone
                429 | 503 => rejected.push(*action),
                status => {
                    return Err(IndexError::OpenSearch {
                        url: self.client.url().to_owned(),
                        what: what.to_owned(),
                        status: status as u16,
                        detail: reason(&result, "bulk item failed"),
                    })
                }
            }
        }
        Ok(rejected)
    }

    fn delete_actions(&self, ids: impl IntoIterator<Item = String>) -> Vec<Action> {
        ids.into_iter()
            .map(|id| Action {
                meta: json!({"delete": {"_index": self.chunks, "_id": id}}),
                doc: None,
            })
            .collect()
    }

    /// Step 1 of a replace: writes the chunks under `generation`, invisible to search until the
    /// page record names it. A failed write removes what it added, leaving the old state whole.
    async fn write_generation(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
        generation: &str,
        held: Option<&Held>,
    ) -> Result<(), IndexError> {
        let updated_at = now_ms();
        let actions: Vec<Action> = chunks
            .iter()
            .map(|c| Action {
                meta: json!({"index": {"_index": self.chunks, "_id": chunk_doc_id(&page.id, generation, c.chunk.position)}}),
                doc: Some(json!({
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
                })),
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
    async fn switch_to(
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
            if let Some(h) = held.as_ref().filter(|h| h.record.version > page.version) {
                if h.generation != generation {
                    // By id: a search might not see these chunks before a refresh.
                    self.bulk(
                        &self.own_chunks(page, chunks, generation),
                        "delete a stale write",
                    )
                    .await?;
                }
                return Ok(ReplaceOutcome::Stale {
                    held: h.record.version,
                });
            }
            let record = json!({
                "kind": "page",
                "page_id": page.id.as_str(),
                "space_key": page.space_key,
                "generation": generation,
                "version": page.version,
                "chunk_count": page.chunk_count,
                "record": page,
            });
            let path = match &held {
                Some(h) => format!(
                    "/{}/_doc/{}?if_seq_no={}&if_primary_term={}",
                    self.pages,
                    segment(page.id.as_str()),
                    h.seq_no,
                    h.primary_term
                ),
                None => format!(
                    "/{}/_doc/{}?op_type=create",
                    self.pages,
                    segment(page.id.as_str())
                ),
            };
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
                Ok(_) => {}
                Err(IndexError::OpenSearch { status: 409, .. }) => {
                    debug!(page_id = %page.id, "page record changed under us; reading it again");
                    continue;
                }
                Err(e) => return Err(e),
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

    /// Step 3 of a replace: deletes the generation the record named before, then leftovers of
    /// interrupted writes of older versions.
    async fn retire(
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
    fn own_chunks(
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
    async fn sweep(&self, id: &PageId, keep: Option<&str>, below: u64) -> Result<(), IndexError> {
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

    async fn refresh(&self, index: &str) -> Result<(), IndexError> {
        self.client
            .call(
                Method::POST,
                &format!("/{index}/_refresh"),
                Body::Empty,
                "refresh",
            )
            .await
            .map(|_| ())
    }

    /// Keeps the hits whose generation is the one their page record names.
    async fn current_only(&self, hits: Vec<Value>) -> Result<Vec<Value>, IndexError> {
        let ids: Vec<String> = hits
            .iter()
            .filter_map(|h| h["_source"]["page_id"].as_str().map(str::to_owned))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(hits);
        }
        let (_, docs) = self
            .client
            .call(
                Method::POST,
                &format!("/{}/_mget?_source_includes=generation", self.pages),
                Body::Json(&json!({ "ids": ids })),
                "read page records",
            )
            .await?;
        let live: HashMap<String, String> = docs["docs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["found"] == true)
            .filter_map(|d| {
                Some((
                    d["_id"].as_str()?.to_owned(),
                    d["_source"]["generation"].as_str()?.to_owned(),
                ))
            })
            .collect();
        Ok(hits
            .into_iter()
            .filter(|h| {
                let page = h["_source"]["page_id"].as_str().unwrap_or_default();
                let generation = h["_source"]["generation"].as_str().unwrap_or_default();
                live.get(page).is_some_and(|g| g == generation)
            })
            .collect())
    }
}

/// One `_bulk` action: its metadata line and, for index actions, the document.
#[derive(Debug)]
struct Action {
    meta: Value,
    doc: Option<Value>,
}

fn chunk_doc_id(page: &PageId, generation: &str, position: u32) -> String {
    format!("{page}@{generation}#{position}")
}

/// A generation derived from everything written, so the same write gets the same ids.
fn generation_of(page: &IndexedPage, chunks: &[EmbeddedChunk]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&page.version.to_le_bytes());
    eat(page.content_hash.as_bytes());
    for c in chunks {
        eat(&c.chunk.position.to_le_bytes());
        eat(c.chunk.content_hash.as_bytes());
    }
    format!("{}-{h:016x}", page.version)
}

#[async_trait]
impl IndexStore for OpenSearchStore {
    async fn bind_model(&self, model: &ModelInfo) -> docbrain_core::Result<()> {
        let held = match self.read_model().await? {
            Some(held) => held,
            None => {
                self.create_indices(model).await?;
                self.read_model().await?.unwrap_or_else(|| model.clone())
            }
        };
        if held != *model {
            return Err(IndexError::IndexMismatch {
                index: self.chunks.clone(),
                held: held.model_id,
                held_dimension: held.dimension,
                configured: model.model_id.clone(),
                dimension: model.dimension,
            }
            .into());
        }
        *self
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(held);
        Ok(())
    }

    async fn page(&self, id: &PageId) -> docbrain_core::Result<Option<IndexedPage>> {
        Ok(self.held(id).await?.map(|h| h.record))
    }

    async fn chunk_vectors(&self, id: &PageId) -> docbrain_core::Result<Vec<(String, Vec<f32>)>> {
        let Some(held) = self.held(id).await? else {
            return Ok(Vec::new());
        };
        if held.record.chunk_count == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = (0..held.record.chunk_count)
            .map(|p| chunk_doc_id(id, &held.generation, p))
            .collect();
        let (_, docs) = self
            .client
            .call(
                Method::POST,
                &format!(
                    "/{}/_mget?_source_includes=content_hash,vector",
                    self.chunks
                ),
                Body::Json(&json!({ "ids": ids })),
                "read chunk vectors",
            )
            .await?;
        Ok(docs["docs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["found"] == true)
            .filter_map(|d| {
                let hash = d["_source"]["content_hash"].as_str()?.to_owned();
                let vector = d["_source"]["vector"]
                    .as_array()?
                    .iter()
                    .map(|x| x.as_f64().map(|f| f as f32))
                    .collect::<Option<Vec<f32>>>()?;
                Some((hash, vector))
            })
            .collect())
    }

    async fn replace_page(
        &self,
        page: &IndexedPage,
        chunks: &[EmbeddedChunk],
    ) -> docbrain_core::Result<ReplaceOutcome> {
        if let Some(model) = self.bound() {
            if let Some(bad) = chunks.iter().find(|c| c.vector.len() != model.dimension) {
                return Err(IndexError::Dimension {
                    chunk_id: bad.chunk.id.clone(),
                    found: bad.vector.len(),
                    expected: model.dimension,
                }
                .into());
            }
        }
        let generation = generation_of(page, chunks);
        let held = self.held(&page.id).await?;
        if let Some(h) = held.as_ref().filter(|h| h.record.version > page.version) {
            return Ok(ReplaceOutcome::Stale {
                held: h.record.version,
            });
        }
        self.write_generation(page, chunks, &generation, held.as_ref())
            .await?;
        Ok(self.switch_to(page, chunks, &generation, held).await?)
    }

    async fn delete_page(&self, id: &PageId) -> docbrain_core::Result<u64> {
        let Some(held) = self.held(id).await? else {
            return Ok(0);
        };
        // The record goes first: from then on searches drop the page's chunks.
        self.client
            .call(
                Method::DELETE,
                &format!(
                    "/{}/_doc/{}?if_seq_no={}&if_primary_term={}",
                    self.pages,
                    segment(id.as_str()),
                    held.seq_no,
                    held.primary_term
                ),
                Body::Empty,
                "delete the page record",
            )
            .await?;
        self.dirty.store(true, Ordering::Relaxed);
        let ids = (0..held.record.chunk_count).map(|p| chunk_doc_id(id, &held.generation, p));
        self.bulk(&self.delete_actions(ids), "delete chunks")
            .await?;
        self.sweep(id, None, held.record.version).await?;
        Ok(u64::from(held.record.chunk_count))
    }

    async fn list_pages(&self) -> docbrain_core::Result<Vec<IndexedPage>> {
        if self.read_model().await?.is_none() {
            return Ok(Vec::new());
        }
        self.refresh(&self.pages).await?;
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut query = json!({
                "size": 5000,
                "query": {"term": {"kind": "page"}},
                "sort": [{"page_id": "asc"}],
                "_source": ["record"],
            });
            if let Some(a) = &after {
                query["search_after"] = a.clone();
            }
            let (_, answer) = self
                .client
                .call(
                    Method::POST,
                    &format!("/{}/_search", self.pages),
                    Body::Json(&query),
                    "list pages",
                )
                .await?;
            let hits = answer["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for hit in &hits {
                let record: IndexedPage = serde_json::from_value(hit["_source"]["record"].clone())
                    .map_err(|_| IndexError::Corrupt {
                        what: "page record",
                    })?;
                out.push(record);
            }
            match hits.last() {
                Some(last) if hits.len() == 5000 => after = Some(last["sort"].clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn search(&self, request: &SearchRequest) -> docbrain_core::Result<Vec<SearchHit>> {
        if self.dirty.swap(false, Ordering::Relaxed) {
            self.refresh(&self.chunks).await?;
        }
        let depth = request.k.max(CANDIDATES);
        let space = request
            .filter
            .space_key
            .as_ref()
            .map(|s| json!({"term": {"space_key": s}}));
        let mut lexical = json!({
            "bool": {"must": [{"multi_match": {"query": request.text, "fields": ["text", "title^2", "heading_path"]}}]}
        });
        let mut knn = json!({"vector": request.vector, "k": depth});
        if let Some(f) = &space {
            lexical["bool"]["filter"] = json!([f]);
            knn["filter"] = f.clone();
        }
        let source = json!({"excludes": ["vector"]});
        let searches = [
            json!({"size": depth, "_source": source, "query": lexical}),
            json!({"size": depth, "_source": source, "query": {"knn": {"vector": knn}}}),
        ];
        let mut body = String::new();
        for s in &searches {
            body.push_str(&json!({"index": self.chunks}).to_string());
            body.push('\n');
            body.push_str(&s.to_string());
            body.push('\n');
        }
        let (_, answer) = self
            .client
            .call(Method::POST, "/_msearch", Body::NdJson(&body), "search")
            .await?;
        let mut lists: Vec<Vec<Value>> = Vec::new();
        for response in answer["responses"].as_array().into_iter().flatten() {
            if response.get("error").is_some() {
                return Err(IndexError::OpenSearch {
                    url: self.client.url().to_owned(),
                    what: "search".into(),
                    status: response["status"].as_u64().unwrap_or(500) as u16,
                    detail: reason(response, "search failed"),
                }
                .into());
            }
            let hits = response["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            lists.push(self.current_only(hits).await?);
        }
        let mut by_id: HashMap<String, Value> = HashMap::new();
        let ranked: Vec<Vec<String>> = lists
            .into_iter()
            .map(|hits| {
                hits.into_iter()
                    .filter_map(|h| {
                        let id = h["_id"].as_str()?.to_owned();
                        by_id.entry(id.clone()).or_insert(h);
                        Some(id)
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[String]> = ranked.iter().map(Vec::as_slice).collect();
        Ok(reciprocal_rank_fusion(&refs, RRF_K)
            .into_iter()
            .take(request.k)
            .filter_map(|(id, score)| {
                let s = &by_id.get(&id)?["_source"];
                Some(SearchHit {
                    chunk_id: s["chunk_id"].as_str()?.to_owned(),
                    page_id: PageId::new(s["page_id"].as_str()?),
                    title: s["title"].as_str().unwrap_or_default().to_owned(),
                    space_key: s["space_key"].as_str().unwrap_or_default().to_owned(),
                    heading_path: s["heading_path"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    url: s["url"].as_str().map(str::to_owned),
                    text: s["text"].as_str().unwrap_or_default().to_owned(),
                    score,
                })
            })
            .collect())
    }

    async fn stats(&self) -> docbrain_core::Result<IndexStats> {
        let Some(model) = self.read_model().await? else {
            return Ok(IndexStats::default());
        };
        self.refresh(&self.pages).await?;
        let (_, answer) = self
            .client
            .call(
                Method::POST,
                &format!("/{}/_search", self.pages),
                Body::Json(&json!({
                    "size": 0, "track_total_hits": true,
                    "query": {"term": {"kind": "page"}},
                    "aggs": {"chunks": {"sum": {"field": "chunk_count"}}}
                })),
                "count pages",
            )
            .await?;
        let (status, sync) = self
            .client
            .call(
                Method::GET,
                &format!("/{}/_doc/{SYNC_DOC}", self.pages),
                Body::Empty,
                "read the sync time",
            )
            .await?;
        Ok(IndexStats {
            pages: answer["hits"]["total"]["value"].as_u64().unwrap_or(0),
            chunks: answer["aggregations"]["chunks"]["value"]
                .as_f64()
                .unwrap_or(0.0) as u64,
            model_id: Some(model.model_id),
            dimension: Some(model.dimension),
            last_sync_ms: (status == 200)
                .then(|| sync["_source"]["last_sync_ms"].as_u64())
                .flatten(),
        })
    }

    async fn flush(&self) -> docbrain_core::Result<()> {
        self.refresh(&self.chunks).await?;
        self.refresh(&self.pages).await?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(())
    }

    async fn record_sync(&self, unix_ms: u64) -> docbrain_core::Result<()> {
        self.client
            .call(
                Method::PUT,
                &format!("/{}/_doc/{SYNC_DOC}", self.pages),
                Body::Json(&json!({"kind": "meta", "last_sync_ms": unix_ms})),
                "record the sync time",
            )
            .await?;
        Ok(())
    }
}
