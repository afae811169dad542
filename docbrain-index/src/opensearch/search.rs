//! Hybrid search: BM25 and k-NN in one `_msearch`, fused client-side.

use super::*;
/// How many candidates each ranking contributes to the fusion.
pub(super) const CANDIDATES: usize = 50;

/// The `k` constant of reciprocal rank fusion.
pub(super) const RRF_K: f64 = 60.0;

impl OpenSearchStore {
    /// Keeps the hits whose generation is the one their page record names.
    pub(super) async fn current_only(&self, hits: Vec<Value>) -> Result<Vec<Value>, IndexError> {
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

    /// Hybrid search: BM25 and k-NN candidates from one `_msearch`, fused by reciprocal rank,
    /// keeping only chunks of the generation their page record names.
    pub(super) async fn hybrid_search(
        &self,
        request: &SearchRequest,
    ) -> docbrain_core::Result<Vec<SearchHit>> {
        if self.dirty.swap(false, Ordering::Relaxed) {
            self.refresh(&self.chunks).await?;
        }
        let depth = request.k.max(CANDIDATES);
        let body = self.msearch_body(&candidate_searches(request, depth));
        let (_, answer) = self
            .client
            .call(Method::POST, "/_msearch", Body::NdJson(&body), "search")
            .await?;
        let lists = self.current_hit_lists(&answer).await?;
        Ok(fuse(lists, request.k))
    }

    /// Returns the `_msearch` body running each of `searches` on the chunk index.
    fn msearch_body(&self, searches: &[Value]) -> String {
        let mut body = String::new();
        for s in searches {
            body.push_str(&json!({"index": self.chunks}).to_string());
            body.push('\n');
            body.push_str(&s.to_string());
            body.push('\n');
        }
        body
    }

    /// Returns the hits of each response of an `_msearch` answer, keeping only current chunks;
    /// fails on the first response that is an error.
    async fn current_hit_lists(&self, answer: &Value) -> Result<Vec<Vec<Value>>, IndexError> {
        let mut lists: Vec<Vec<Value>> = Vec::new();
        for response in answer["responses"].as_array().into_iter().flatten() {
            if response.get("error").is_some() {
                return Err(IndexError::OpenSearch {
                    url: self.client.url().to_owned(),
                    what: "search".into(),
                    status: response["status"].as_u64().unwrap_or(500) as u16,
                    detail: reason(response, "search failed"),
                });
            }
            let hits = response["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            lists.push(self.current_only(hits).await?);
        }
        Ok(lists)
    }
}

/// Returns the filters `request` asks for: its space and its reader's read rule.
fn search_filters(request: &SearchRequest) -> Vec<Value> {
    let mut filters: Vec<Value> = Vec::new();
    if let Some(space) = &request.filter.space_key {
        filters.push(json!({"term": {"space_key": space}}));
    }
    if let Some(reader) = &request.reader {
        filters.push(read_filter(reader));
    }
    filters
}

/// Returns the BM25 and the k-NN search for `request`, each asking for `depth` candidates.
fn candidate_searches(request: &SearchRequest, depth: usize) -> [Value; 2] {
    let filters = search_filters(request);
    let mut lexical = json!({
        "bool": {"must": [{"multi_match": {"query": request.text, "fields": ["text", "title^2", "heading_path"]}}]}
    });
    let mut knn = json!({"vector": request.vector, "k": depth});
    if !filters.is_empty() {
        // The lucene engine applies a k-NN filter during the graph search, and the BM25
        // query filters before ranking: no hit is lost to either.
        lexical["bool"]["filter"] = json!(filters);
        knn["filter"] = json!({"bool": {"filter": filters}});
    }
    let source = json!({"excludes": ["vector"]});
    [
        json!({"size": depth, "_source": source, "query": lexical}),
        json!({"size": depth, "_source": source, "query": {"knn": {"vector": knn}}}),
    ]
}

/// Fuses the ranked hit `lists` by reciprocal rank into the best `k` search hits.
fn fuse(lists: Vec<Vec<Value>>, k: usize) -> Vec<SearchHit> {
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
    reciprocal_rank_fusion(&refs, RRF_K)
        .into_iter()
        .take(k)
        .filter_map(|(id, score)| search_hit(&by_id.get(&id)?["_source"], score))
        .collect()
}

/// Returns the search hit for a chunk's `_source` with `score`, or `None` when it lacks an id.
fn search_hit(s: &Value, score: f64) -> Option<SearchHit> {
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
}
