//! The HTTP plumbing the OpenSearch store and the remote embedders share: one client builder,
//! one reading of transport failures, and bodies read with a size cap.

use std::time::{Duration, SystemTime};

use docbrain_core::retry::parse_retry_after;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::IndexError;

/// The largest answer body read (an OpenSearch `_msearch` or `_bulk` answer, a batch of
/// embeddings); anything longer is refused rather than buffered.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Builds an HTTP client; `tls_verify = false` accepts any certificate.
pub(crate) fn client(tls_verify: bool) -> Result<reqwest::Client, IndexError> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(!tls_verify)
        .user_agent(concat!("docbrain/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| IndexError::InvalidSetting(format!("cannot build the HTTP client: {e}")))
}

/// What a failed send means, in words (reqwest's text may hold the URL, never headers).
pub(crate) fn transport_problem(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        format!("transport error: {e}")
    }
}

/// How long `Retry-After` asks to wait, if it is present and readable.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, SystemTime::now())
}

/// Reads an answer's body as text, refusing more than `cap` bytes.
///
/// # Errors
/// A body over the cap, or one cut off mid-way, with what happened.
pub(crate) async fn read_text(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<String, String> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(format!("the answer is larger than {cap} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_problem(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Percent-encodes one path segment (ids may hold `/`).
pub(crate) fn segment(id: &str) -> String {
    utf8_percent_encode(id, NON_ALPHANUMERIC).to_string()
}
