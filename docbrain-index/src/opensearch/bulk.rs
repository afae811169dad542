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
        let outcomes =
            item_outcomes(&answer, actions.len()).map_err(|detail| IndexError::OpenSearch {
                url: self.client.url().to_owned(),
                what: what.to_owned(),
                status: 200,
                detail,
            })?;
        let mut rejected = Vec::new();
        for ((status, result), action) in outcomes.into_iter().zip(actions) {
            match status {
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

/// Each item's status and result in a `_bulk` answer, in order. An answer that does not account
/// for every item (a proxy's page, a cut-off body) is an error, never a success.
fn item_outcomes(answer: &Value, expected: usize) -> Result<Vec<(u64, Value)>, String> {
    let items = answer["items"].as_array();
    let (Some(errors), Some(items)) = (answer["errors"].as_bool(), items) else {
        return Err(format!(
            "the _bulk answer is not OpenSearch's (no errors flag and items): {}",
            docbrain_http::one_line(&answer.to_string(), 200)
        ));
    };
    if items.len() != expected {
        return Err(format!(
            "the _bulk answer lists {} items for {expected} sent",
            items.len()
        ));
    }
    Ok(items
        .iter()
        .map(|item| {
            let result = item
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            let status = if errors {
                result["status"].as_u64().unwrap_or(0)
            } else {
                200
            };
            (status, result)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_that_does_not_account_for_every_item_is_an_error() {
        // What an unreadable or foreign body parses to.
        assert!(item_outcomes(&Value::Null, 2).is_err());
        assert!(item_outcomes(&json!({"status": "ok"}), 2).is_err());
        let one = json!({"errors": false, "items": [{"index": {"status": 201}}]});
        let err = item_outcomes(&one, 2).unwrap_err();
        assert!(err.contains("1 items for 2 sent"), "{err}");
        let ok = item_outcomes(&one, 1).unwrap();
        assert_eq!(ok[0].0, 200);
        let mixed = json!({"errors": true, "items": [
            {"index": {"status": 201}},
            {"delete": {"status": 429, "error": {"reason": "busy"}}}
        ]});
        let statuses: Vec<u64> = item_outcomes(&mixed, 2)
            .unwrap()
            .iter()
            .map(|o| o.0)
            .collect();
        assert_eq!(statuses, [201, 429]);
    }
}
