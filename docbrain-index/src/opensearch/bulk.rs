//! `_bulk` writes, with per-item retries.

use super::*;
/// One `_bulk` action: its metadata line and, for index actions, the document.
#[derive(Debug)]
pub(super) struct Action {
    pub(super) meta: Value,
    pub(super) doc: Option<Value>,
}

impl OpenSearchStore {
    /// Sends `_bulk` actions in batches; items rejected with 429/503 are retried with backoff,
    /// any other item failure is an error.
    pub(super) async fn bulk(&self, actions: &[Action], what: &str) -> Result<(), IndexError> {
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
    pub(super) async fn bulk_once<'a>(
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

    pub(super) fn delete_actions(&self, ids: impl IntoIterator<Item = String>) -> Vec<Action> {
        ids.into_iter()
            .map(|id| Action {
                meta: json!({"delete": {"_index": self.chunks, "_id": id}}),
                doc: None,
            })
            .collect()
    }
}
