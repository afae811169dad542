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

mod bulk;
mod client;
mod generations;
mod mapping;
mod search;

/// The hits of a listing, only when every shard answered: a listing cut short by a failed
/// shard would miss pages (a crawl's unlisted pass, the pages an access change reaches), so it
/// is an error, never a shorter list.
fn whole_hits(answer: &mut Value) -> Result<Vec<Value>, String> {
    let failed = answer["_shards"]["failed"].as_u64().unwrap_or(0);
    if failed > 0 {
        return Err(format!(
            "{failed} of {} shards failed: {}",
            answer["_shards"]["total"], answer["_shards"]["failures"]
        ));
    }
    match answer["hits"]["hits"].take() {
        Value::Array(hits) => Ok(hits),
        _ => Err("the answer holds no hits".to_owned()),
    }
}

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::settings::OpenSearchSettings;
use async_trait::async_trait;
use docbrain_core::now_ms;
use docbrain_core::{
    reciprocal_rank_fusion, EmbeddedChunk, IndexStats, IndexStore, IndexedChunk, IndexedPage,
    Layer, ModelInfo, PageId, Principal, Reader, ReplaceOutcome, SearchHit, SearchRequest,
};
use docbrain_http::RetryPolicy;
use reqwest::Method;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::http::segment;
use crate::IndexError;
use bulk::Action;
use client::{reason, Body, Client};
use generations::{chunk_doc_id, generation_of};
use mapping::{read_fields, read_filter};

/// The id of the document holding the last-sync time in the pages index.
const SYNC_DOC: &str = "__docbrain_sync__";
/// The id of the document holding when permissions last changed, in the pages index.
const RULES_DOC: &str = "__docbrain_rules__";
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

/// How many records one search of [`IndexStore::list_pages`] reads.
const LIST_BATCH: usize = 5_000;

/// A page record as the store keeps it in `record`.
fn record_of(record: Value) -> Result<IndexedPage, IndexError> {
    serde_json::from_value(record).map_err(|_| IndexError::Corrupt {
        what: "page record",
    })
}

impl OpenSearchStore {
    /// The meta document `id` of the pages index; `None` when it was never written.
    async fn meta_doc(&self, id: &str, what: &str) -> Result<Option<Value>, IndexError> {
        let (status, doc) = self
            .client
            .call(
                Method::GET,
                &format!("/{}/_doc/{id}", self.pages),
                Body::Empty,
                what,
            )
            .await?;
        Ok((status == 200).then_some(doc))
    }

    /// The page and part records in id order: at most `size`, the first after `after`.
    /// `refresh` first makes every write visible to the search that reads them.
    async fn records_after(
        &self,
        after: Option<&PageId>,
        size: usize,
        refresh: bool,
    ) -> docbrain_core::Result<Vec<IndexedPage>> {
        if self.read_model().await?.is_none() {
            return Ok(Vec::new());
        }
        if refresh {
            self.refresh(&self.pages).await?;
        }
        let mut query = json!({
            "size": size,
            "query": {"terms": {"kind": ["page", "part"]}},
            "sort": [{"page_id": "asc"}],
            "_source": ["record"],
        });
        if let Some(after) = after {
            query["search_after"] = json!([after.as_str()]);
        }
        let (_, mut answer) = self
            .client
            .call(
                Method::POST,
                &format!("/{}/_search", self.pages),
                Body::Json(&query),
                "list pages",
            )
            .await?;
        let hits = whole_hits(&mut answer).map_err(|detail| IndexError::OpenSearch {
            url: self.client.url().to_owned(),
            what: "list pages".to_owned(),
            status: 200,
            detail,
        })?;
        let mut records = Vec::with_capacity(hits.len());
        for mut hit in hits {
            records.push(record_of(hit["_source"]["record"].take())?);
        }
        Ok(records)
    }

    /// Deletes a page unless its record holds a version above `at_most` or changes under us
    /// (the record is deleted with `if_seq_no`, so a racing write wins).
    async fn delete(&self, id: &PageId, at_most: Option<u64>) -> Result<Option<u64>, IndexError> {
        let Some(held) = self.held(id).await? else {
            return Ok(Some(0));
        };
        if at_most.is_some_and(|v| held.record.version > v) {
            return Ok(None);
        }
        // The record goes first: from then on searches drop the page's chunks.
        let removed = self
            .client
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
            .await;
        match removed {
            Err(IndexError::OpenSearch { status: 409, .. }) if at_most.is_some() => {
                return Ok(None);
            }
            other => {
                other?;
            }
        }
        self.dirty.store(true, Ordering::Relaxed);
        let ids = (0..held.record.chunk_count).map(|p| chunk_doc_id(id, &held.generation, p));
        self.bulk(&self.delete_actions(ids), "delete chunks")
            .await?;
        self.sweep(id, None, held.record.version).await?;
        Ok(Some(u64::from(held.record.chunk_count)))
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

    /// The `_source` (`fields` only) of the chunks of the generation page `id`'s record
    /// names, in position order; empty when the page is not indexed.
    async fn current_chunks(
        &self,
        id: &PageId,
        fields: &str,
        what: &str,
    ) -> Result<Vec<Value>, IndexError> {
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
                &format!("/{}/_mget?_source_includes={fields}", self.chunks),
                Body::Json(&json!({ "ids": ids })),
                what,
            )
            .await?;
        Ok(docs["docs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["found"] == true)
            .map(|d| d["_source"].clone())
            .collect())
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
}

#[async_trait]
impl IndexStore for OpenSearchStore {
    fn health(&self) -> Option<docbrain_core::CallHealth> {
        Some(self.client.health())
    }

    fn kind(&self) -> &'static str {
        "opensearch"
    }

    async fn bind_model(&self, model: &ModelInfo) -> docbrain_core::Result<()> {
        let held = match self.read_model().await? {
            Some(held) => {
                self.add_read_fields().await?;
                held
            }
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
        let docs = self
            .current_chunks(id, "content_hash,vector", "read chunk vectors")
            .await?;
        Ok(docs
            .iter()
            .filter_map(|s| {
                let hash = s["content_hash"].as_str()?.to_owned();
                let vector = s["vector"]
                    .as_array()?
                    .iter()
                    .map(|x| x.as_f64().map(|f| f as f32))
                    .collect::<Option<Vec<f32>>>()?;
                Some((hash, vector))
            })
            .collect())
    }

    async fn chunks(&self, id: &PageId) -> docbrain_core::Result<Vec<IndexedChunk>> {
        let docs = self
            .current_chunks(id, "position,heading_path,text", "read a page's chunks")
            .await?;
        Ok(docs
            .iter()
            .filter_map(|s| {
                Some(IndexedChunk {
                    position: u32::try_from(s["position"].as_u64()?).ok()?,
                    heading_path: s["heading_path"]
                        .as_array()?
                        .iter()
                        .filter_map(|h| h.as_str().map(str::to_owned))
                        .collect(),
                    text: s["text"].as_str()?.to_owned(),
                })
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
        if let Some(h) = held
            .as_ref()
            .filter(|h| page.is_stale_against(h.record.version, h.record.access_read_ms))
        {
            return Ok(ReplaceOutcome::Stale {
                held: h.record.version,
            });
        }
        self.write_generation(page, chunks, &generation, held.as_ref())
            .await?;
        Ok(self.switch_to(page, chunks, &generation, held).await?)
    }

    async fn delete_page(&self, id: &PageId) -> docbrain_core::Result<u64> {
        Ok(self.delete(id, None).await?.unwrap_or(0))
    }

    async fn delete_page_if(
        &self,
        id: &PageId,
        at_most: u64,
    ) -> docbrain_core::Result<Option<u64>> {
        Ok(self.delete(id, Some(at_most)).await?)
    }

    async fn list_pages(&self) -> docbrain_core::Result<Vec<IndexedPage>> {
        let mut out: Vec<IndexedPage> = Vec::new();
        loop {
            let after = out.last().map(|p| p.id.clone());
            let batch = self
                .records_after(after.as_ref(), LIST_BATCH, after.is_none())
                .await?;
            let full = batch.len() == LIST_BATCH;
            out.extend(batch);
            if !full {
                return Ok(out);
            }
        }
    }

    async fn page_states(
        &self,
        after: Option<&PageId>,
        limit: usize,
    ) -> docbrain_core::Result<Vec<docbrain_core::PageState>> {
        let pages = self.records_after(after, limit, after.is_none()).await?;
        Ok(docbrain_core::PageState::from_pages(pages))
    }

    async fn page_states_of(
        &self,
        ids: &[PageId],
    ) -> docbrain_core::Result<Vec<docbrain_core::PageState>> {
        if ids.is_empty() || self.read_model().await?.is_none() {
            return Ok(Vec::new());
        }
        // A multi-get reads the records as written, with no refresh.
        let ids: Vec<&str> = ids.iter().map(PageId::as_str).collect();
        let (_, mut answer) = self
            .client
            .call(
                Method::POST,
                &format!("/{}/_mget?_source=kind,record", self.pages),
                Body::Json(&json!({"ids": ids})),
                "read page records",
            )
            .await?;
        let docs = match answer["docs"].take() {
            Value::Array(docs) => docs,
            _ => Vec::new(),
        };
        let mut pages = Vec::new();
        for mut doc in docs {
            let kind = &doc["_source"]["kind"];
            if doc["found"] == true && (kind == "page" || kind == "part") {
                pages.push(record_of(doc["_source"]["record"].take())?);
            }
        }
        Ok(docbrain_core::PageState::from_pages(pages))
    }

    async fn search(&self, request: &SearchRequest) -> docbrain_core::Result<Vec<SearchHit>> {
        self.hybrid_search(request).await
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
                    "query": {"terms": {"kind": ["page", "part"]}},
                    "aggs": {
                        "chunks": {"sum": {"field": "chunk_count"}},
                        "kinds": {"terms": {"field": "kind"}}
                    }
                })),
                "count pages",
            )
            .await?;
        let sync = self.meta_doc(SYNC_DOC, "read the sync time").await?;
        let kind = |name: &str| {
            answer["aggregations"]["kinds"]["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|b| b["key"] == name)
                .and_then(|b| b["doc_count"].as_u64())
                .unwrap_or(0)
        };
        Ok(IndexStats {
            pages: kind("page"),
            parts: kind("part"),
            chunks: answer["aggregations"]["chunks"]["value"]
                .as_f64()
                .unwrap_or(0.0) as u64,
            model_id: Some(model.model_id),
            dimension: Some(model.dimension),
            last_sync_ms: sync.and_then(|d| d["_source"]["last_sync_ms"].as_u64()),
        })
    }

    async fn note_rules_changed(&self) -> docbrain_core::Result<()> {
        let (status, _) = self
            .client
            .call(
                Method::POST,
                // Concurrent notes each count: OpenSearch retries the increment on a conflict.
                &format!("/{}/_update/{RULES_DOC}?retry_on_conflict=20", self.pages),
                Body::Json(&json!({
                    "script": {
                        "source": "def r = ctx._source.record; if (r == null || r.rule_changes == null) { ctx._source.record = ['rule_changes': 1] } else { r.rule_changes += 1 }",
                    },
                    // Under `record` (not indexed), which every version of the mapping allows.
                    "upsert": {"kind": "meta", "record": {"rule_changes": 1}},
                })),
                "note a permission change",
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(IndexError::OpenSearch {
                url: self.client.url().to_owned(),
                what: "note a permission change".into(),
                status,
                detail: format!("the index {} is missing", self.pages),
            }
            .into());
        }
        Ok(())
    }

    async fn rule_changes(&self) -> docbrain_core::Result<u64> {
        let doc = self
            .meta_doc(RULES_DOC, "read how many permission changes were noted")
            .await?;
        Ok(doc
            .and_then(|d| d["_source"]["record"]["rule_changes"].as_u64())
            .unwrap_or(0))
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
