//! The two indices' mappings, and the model they are bound to.

use super::*;
impl OpenSearchStore {
    pub(super) async fn create_indices(&self, model: &ModelInfo) -> Result<(), IndexError> {
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
