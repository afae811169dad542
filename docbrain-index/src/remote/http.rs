//! The HTTP plumbing the remote embedders share: one JSON POST with bounded retries.
//!
//! 429 and 5xx answers, connection failures and timeouts are retried with exponential backoff
//! and jitter, honouring `Retry-After` (seconds or an HTTP date) up to a cap; every other answer
//! is final. Error bodies are read as text first: a proxy may answer HTML.

use reqwest::StatusCode;
use serde_json::Value;

use docbrain_core::CallCounter;
pub use docbrain_http::RetryPolicy;
use docbrain_http::{retry, Attempt, Retried};

/// Why a request failed for good.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A final (non-retryable) HTTP answer.
    Status { status: StatusCode, body: String },
    /// Retries ran out; the last problem seen.
    Exhausted { attempts: u32, last: String },
    /// The answer was not JSON.
    Decode(String),
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// POSTs `body` as JSON to `url` and returns the JSON answer, retrying what is worth retrying.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
    policy: &RetryPolicy,
    what: &str,
    calls: &CallCounter,
) -> Result<Value, Failure> {
    let attempt = |_| async move {
        let outcome = send(client, url, bearer, body, policy).await;
        calls.count(outcome.is_ok());
        outcome
    };
    retry(policy, what, attempt).await.map_err(|e| match e {
        Retried::Fatal(f) => f,
        Retried::Exhausted { attempts, last, .. } => Failure::Exhausted { attempts, last },
    })
}

/// One attempt of [`post_json`].
async fn send(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
    policy: &RetryPolicy,
) -> Result<Value, Attempt<Failure>> {
    {
        let mut request = client.post(url).json(body).timeout(policy.timeout);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| Attempt::Retry {
            problem: crate::http::transport_problem(&e),
            retry_after: None,
        })?;
        let status = response.status();
        let asked = crate::http::retry_after(response.headers());
        let text = crate::http::read_text(response, crate::http::MAX_BODY_BYTES)
            .await
            .map_err(|problem| Attempt::Retry {
                problem: format!("HTTP {status}, unreadable answer: {problem}"),
                retry_after: asked,
            })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                Attempt::Fatal(Failure::Decode(format!("{e} in {}", snippet(&text))))
            });
        }
        if !retryable(status) {
            return Err(Attempt::Fatal(Failure::Status { status, body: text }));
        }
        Err(Attempt::Retry {
            problem: format!("HTTP {status}: {}", snippet(&text)),
            retry_after: asked,
        })
    }
}

/// The first 300 characters of a body, on one line.
pub(crate) fn snippet(text: &str) -> String {
    docbrain_http::one_line(text, 300)
}

/// Scales a vector to unit length (providers differ on whether they do).
pub(crate) fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_unit_length() {
        assert_eq!(normalise(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
