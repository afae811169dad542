//! The two indices' mappings, and the model they are bound to.

use super::*;

/// The most permission layers a chunk carries (`read_0` …); a page with more is written as
/// readable by nobody, with a warning. Layers are normalised first, so this takes a page under
/// seven restricted ancestors, each restriction different.
pub(super) const MAX_LAYERS: usize = 8;

/// A token no principal has: it stands for an empty layer (nobody), since OpenSearch reads an
/// empty array as a missing field.
const NOBODY: &str = "!";

/// The chunk fields of a page's read rule: `read_layers` (its count; a chunk without it was
/// written before permissions were kept and admits nobody) and `read_<i>` per layer.
pub(super) fn read_fields(page: &IndexedPage) -> serde_json::Map<String, Value> {
    let mut layers = page.access.layers().to_vec();
    if layers.len() > MAX_LAYERS {
        warn!(page_id = %page.id, layers = layers.len(), "page has more than {MAX_LAYERS} different read restrictions above it; it is indexed but visible to nobody");
        layers = vec![Layer::new()];
    }
    let mut fields = serde_json::Map::new();
    fields.insert("read_layers".into(), json!(layers.len()));
    for (i, layer) in layers.iter().enumerate() {
        let mut tokens: Vec<String> = layer.iter().map(Principal::token).collect();
        if tokens.is_empty() {
            tokens.push(NOBODY.into());
        }
        fields.insert(format!("read_{i}"), json!(tokens));
    }
    fields
}

/// The filter of chunks `reader` may read: every layer a chunk has names one of the reader's
/// principals.
pub(super) fn read_filter(reader: &Reader) -> Value {
    let tokens: Vec<String> = reader.principals().map(Principal::token).collect();
    let mut clauses = vec![json!({"exists": {"field": "read_layers"}})];
    for i in 0..MAX_LAYERS {
        let field = format!("read_{i}");
        clauses.push(json!({"bool": {"should": [
            {"terms": {&field: tokens}},
            {"bool": {"must_not": {"exists": {"field": field}}}}
        ], "minimum_should_match": 1}}));
    }
    json!({"bool": {"filter": clauses}})
}

fn read_mapping() -> serde_json::Map<String, Value> {
    let mut properties = serde_json::Map::new();
    properties.insert("read_layers".into(), json!({"type": "integer"}));
    for i in 0..MAX_LAYERS {
        properties.insert(format!("read_{i}"), json!({"type": "keyword"}));
    }
    properties
}

impl OpenSearchStore {
    /// Adds the permission fields to a chunk index created before they existed (adding fields
    /// is allowed on a live index; its older chunks admit nobody until rewritten).
    pub(super) async fn add_read_fields(&self) -> Result<(), IndexError> {
        self.client
            .call(
                Method::PUT,
                &format!("/{}/_mapping", self.chunks),
                Body::Json(&json!({"properties": read_mapping()})),
                "add the permission fields to the mapping",
            )
            .await
            .map(|_| ())
    }

    pub(super) async fn create_indices(&self, model: &ModelInfo) -> Result<(), IndexError> {
        let mut chunks = json!({
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
        if let Some(properties) = chunks["mappings"]["properties"].as_object_mut() {
            properties.extend(read_mapping());
        }
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

    pub(super) async fn read_model(&self) -> Result<Option<ModelInfo>, IndexError> {
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
}
