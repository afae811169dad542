//! The HTTP plumbing the OpenSearch store and the remote embedders share: one client builder,
//! one reading of transport failures, and bodies read with a size cap.

use std::time::{Duration, SystemTime};

use docbrain_http::parse_retry_after;
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
#[cfg(feature = "opensearch")]
pub(crate) fn segment(id: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    utf8_percent_encode(id, NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Answers every connection on port 0 with `answer`, raw.
    async fn serve(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let _ = stream.write_all(&answer).await;
                });
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused_declared_or_not() {
        let client = client(true).unwrap();
        // A declared length over the cap: refused before reading.
        let declared = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n{}".to_vec()).await;
        let answer = client.get(&declared).send().await.unwrap();
        let err = read_text(answer, 1024).await.unwrap_err();
        assert!(err.contains("larger than 1024 bytes"), "{err}");
        // A chunked body with no length that keeps coming.
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..8 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b'x'; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let streamed = serve(chunked).await;
        let answer = client.get(&streamed).send().await.unwrap();
        let err = read_text(answer, 1024).await.unwrap_err();
        assert!(err.contains("larger than 1024 bytes"), "{err}");
        // Within the cap, the whole body.
        let answer = client.get(&streamed).send().await.unwrap();
        assert_eq!(read_text(answer, 8192).await.unwrap().len(), 8 * 0x200);
    }
}
