//! The HTTP plumbing the remote embedders share: one JSON POST with bounded retries.
//!
//! 429 and 5xx answers, connection failures and timeouts are retried with exponential backoff
//! and jitter, honouring `Retry-After` (seconds or an HTTP date) up to a cap; every other answer
//! is final. Error bodies are read as text first: a proxy may answer HTML.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

pub use docbrain_core::retry::RetryPolicy;
use docbrain_core::retry::{parse_retry_after, retry, Attempt, Retried};

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

/// Returns how long `Retry-After` asks to wait, if it is present and readable.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
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
) -> Result<Value, Failure> {
    let attempt = |_| async move {
        let mut request = client.post(url).json(body).timeout(policy.timeout);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| Attempt::Retry {
            problem: transport_problem(&e),
            retry_after: None,
        })?;
        let status = response.status();
        let asked = retry_after(response.headers(), SystemTime::now());
        let text = response.text().await.unwrap_or_default();
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
    };
    retry(policy, what, attempt).await.map_err(|e| match e {
        Retried::Fatal(f) => f,
        Retried::Exhausted { attempts, last } => Failure::Exhausted { attempts, last },
    })
}

fn transport_problem(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        // reqwest's Display can include the URL but never headers, so no secret leaks here.
        format!("transport error: {e}")
    }
}

/// The first 300 characters of a body, on one line.
pub(crate) fn snippet(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Builds the HTTP client of a remote embedder.
pub(crate) fn client(tls_verify: bool) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(!tls_verify)
        .user_agent(concat!("docbrain/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Cuts `text` to at most `max_chars` characters, on a character boundary.
pub(crate) fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
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
    fn truncates_on_char_boundaries_and_normalises() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
        assert_eq!(normalise(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
