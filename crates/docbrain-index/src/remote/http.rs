//! The HTTP plumbing the remote embedders share: one JSON POST with bounded retries.
//!
//! 429 and 5xx answers, connection failures and timeouts are retried with exponential backoff
//! and jitter, honouring `Retry-After` (seconds or an HTTP date) up to a cap; every other answer
//! is final. Error bodies are read as text first: a proxy may answer HTML.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use tracing::warn;

/// Retry and timeout settings of a remote embedder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first backoff; it doubles per attempt.
    pub initial_backoff: Duration,
    /// The longest wait between attempts, `Retry-After` included.
    pub max_backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(60),
        }
    }
}

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
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A little jitter (0–25%) without a random-number dependency.
fn jitter(base: Duration, attempt: u32) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = (u64::from(nanos ^ attempt.wrapping_mul(0x9E37_79B9)) % 250) as u32;
    base + base * spread / 1000
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
    let mut attempt = 0;
    let mut backoff = policy.initial_backoff;
    loop {
        attempt += 1;
        let mut request = client.post(url).json(body).timeout(policy.timeout);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let (problem, asked) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let asked = retry_after(response.headers(), SystemTime::now());
                let text = response.text().await.unwrap_or_default();
                if status.is_success() {
                    return serde_json::from_str(&text)
                        .map_err(|e| Failure::Decode(format!("{e} in {}", snippet(&text))));
                }
                if !retryable(status) {
                    return Err(Failure::Status { status, body: text });
                }
                (format!("HTTP {status}: {}", snippet(&text)), asked)
            }
            Err(e) => (transport_problem(&e), None),
        };
        if attempt >= policy.max_attempts {
            return Err(Failure::Exhausted {
                attempts: attempt,
                last: problem,
            });
        }
        let wait = asked
            .unwrap_or_else(|| jitter(backoff, attempt))
            .min(policy.max_backoff);
        warn!(what, attempt, wait_ms = wait.as_millis() as u64, problem = %problem, "embedding request failed; retrying");
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
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
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn reads_retry_after_as_seconds_or_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:05 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(5)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:27:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn truncates_on_char_boundaries_and_normalises() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
        assert_eq!(normalise(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
