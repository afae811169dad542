//! One authenticated GET against Confluence with bounded retries, and readable errors.
//!
//! 429 and 5xx answers, resets and timeouts are retried (honouring `Retry-After`); 401 and 403
//! fail at once naming the credential to check; 404 is an answer of its own ("gone or not
//! visible"). Error bodies are read as text: Data Center answers a bad token with an HTML page.

use std::time::SystemTime;

use docbrain_core::{CallCounter, CallHealth, Secret};
use docbrain_http::{parse_retry_after, retry, Attempt, Retried, RetryPolicy};
use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tracing::debug;

use super::ApiVersion;
use crate::SourceError;

/// How requests authenticate.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// Cloud: the account's email and an API token.
    Basic { email: String, token: Secret },
    /// Data Center: a personal access token.
    Bearer(Secret),
}

/// A successful JSON answer and the `rel="next"` target of its `Link` header, if any.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) json: Value,
    pub(crate) link_next: Option<String>,
}

/// The HTTP side of the client.
#[derive(Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    auth: Auth,
    retry: RetryPolicy,
    version: ApiVersion,
    base: String,
    max_body_bytes: usize,
    /// How its calls have gone.
    calls: CallCounter,
    /// No request is sent before this instant: a `Retry-After` holds back every request of
    /// the client, not only the one it answered (a rate limit is the account's, not a call's).
    hold: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Http {
    pub(crate) fn new(
        auth: Auth,
        retry: RetryPolicy,
        version: ApiVersion,
        base: &Url,
        tls_verify: bool,
        max_body_bytes: usize,
    ) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(!tls_verify)
            .user_agent(concat!("docbrain/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            auth,
            retry,
            version,
            base: base.as_str().trim_end_matches('/').to_owned(),
            max_body_bytes,
            calls: CallCounter::default(),
            hold: std::sync::Mutex::new(None),
        })
    }

    /// How calls have gone so far.
    pub(crate) fn health(&self) -> CallHealth {
        self.calls.snapshot()
    }

    /// Counts one attempt's outcome: an answer from a working site (a 404 included), or a
    /// failure: a transport error, a retryable answer, a refusal of the credentials.
    fn count<T>(&self, outcome: &Result<T, Attempt<SourceError>>) {
        match outcome {
            Err(Attempt::Fatal(SourceError::Unauthorized { status, .. })) => {
                self.calls.refused(*status);
            }
            other => self.calls.count(other.is_ok()),
        }
    }

    /// GETs `url` as JSON; `Ok(None)` is a 404.
    pub(crate) async fn get(&self, url: &Url) -> Result<Option<Answer>, SourceError> {
        let path = path_of(url);
        self.fetch(url, self.max_body_bytes, |headers, body| {
            let json = serde_json::from_slice(&body).map_err(|e| SourceError::Decode {
                path: path.clone(),
                detail: format!(
                    "not JSON ({e}): {}",
                    detail_of(&String::from_utf8_lossy(&body))
                ),
            })?;
            let link_next = headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            Ok(Answer { json, link_next })
        })
        .await
    }

    /// GETs `url` as bytes, at most `cap` of them (a longer answer is an error); `Ok(None)` is
    /// a 404.
    pub(crate) async fn download(
        &self,
        url: &Url,
        cap: usize,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        self.fetch(url, cap, |_, body| Ok(body)).await
    }

    /// GETs `url` with retries, reading at most `cap` bytes of a successful answer into
    /// `parse`; `Ok(None)` is a 404.
    async fn fetch<T>(
        &self,
        url: &Url,
        cap: usize,
        parse: impl Fn(&HeaderMap, Vec<u8>) -> Result<T, SourceError>,
    ) -> Result<Option<T>, SourceError> {
        let path = path_of(url);
        let parse = &parse;
        let attempt = |_| async {
            let request = self.client.get(url.clone()).timeout(self.retry.timeout);
            let request = match &self.auth {
                Auth::Basic { email, token } => request.basic_auth(email, Some(token.expose())),
                Auth::Bearer(token) => request.bearer_auth(token.expose()),
            };
            let response = request
                .send()
                .await
                .map_err(|e| match self.unreachable(&e) {
                    // Asking again cannot succeed: the address itself is wrong.
                    Some(why) => Attempt::Fatal(SourceError::Config(why)),
                    None => Attempt::Retry {
                        problem: transport_problem(&e),
                        retry_after: None,
                    },
                })?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_body(response, cap).await.map_err(|e| match e {
                // Asking again brings the same answer.
                Unread::TooLarge(detail) => Attempt::Fatal(SourceError::Decode {
                    path: path.clone(),
                    detail,
                }),
                Unread::CutOff(problem) => Attempt::Retry {
                    problem,
                    retry_after: None,
                },
            })?;
            if !self.judge(status, &headers, &body, &path)? {
                return Ok(None);
            }
            parse(&headers, body).map(Some).map_err(Attempt::Fatal)
        };
        let counted = |n| {
            let outcome = attempt(n);
            async move {
                self.held().await;
                let outcome = outcome.await;
                self.count(&outcome);
                if let Err(Attempt::Retry {
                    retry_after: Some(wait),
                    ..
                }) = &outcome
                {
                    self.hold_for((*wait).min(self.retry.max_backoff));
                }
                outcome
            }
        };
        let answer = retry(&self.retry, "confluence", counted)
            .await
            .map_err(|e| match e {
                Retried::Fatal(e) => e,
                Retried::Exhausted {
                    attempts,
                    last,
                    retry_after,
                } => SourceError::Unavailable {
                    base: self.base.clone(),
                    path: path.clone(),
                    attempts,
                    rate_limited: last.starts_with("HTTP 429"),
                    last,
                    retry_after,
                },
            })?;
        debug!(path = %path, found = answer.is_some(), "GET");
        Ok(answer)
    }

    /// Waits out a hold a `Retry-After` put on every request.
    async fn held(&self) {
        let until = *self.lock_hold();
        if let Some(until) = until.filter(|u| *u > tokio::time::Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Holds every request back for `wait` from now (a longer hold already set stays).
    fn hold_for(&self, wait: std::time::Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut hold = self.lock_hold();
        if hold.is_none_or(|h| h < until) {
            *hold = Some(until);
        }
    }

    fn lock_hold(&self) -> std::sync::MutexGuard<'_, Option<tokio::time::Instant>> {
        // An instant is valid whatever a panicking holder left.
        self.hold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What a failed send says about `CONFLUENCE_BASE_URL` when retrying cannot help: a host
    /// name that does not resolve, or a TLS handshake with a server that does not speak TLS.
    fn unreachable(&self, e: &reqwest::Error) -> Option<String> {
        let mut chain = String::new();
        let mut cause: Option<&dyn std::error::Error> = Some(e);
        while let Some(c) = cause {
            chain.push_str(&c.to_string().to_ascii_lowercase());
            chain.push(' ');
            cause = c.source();
        }
        let host = e.url().and_then(|u| u.host_str()).unwrap_or("the host");
        if chain.contains("dns error") || chain.contains("failed to lookup address") {
            return Some(format!(
                "cannot resolve {host}, the host of CONFLUENCE_BASE_URL ({}): check its spelling and this machine's DNS",
                self.base
            ));
        }
        let https = e.url().is_some_and(|u| u.scheme() == "https");
        let plain = [
            "invalidcontenttype",
            "corrupt message",
            "wrong version number",
        ];
        if https && plain.iter().any(|t| chain.contains(t)) {
            return Some(format!(
                "the TLS handshake with {host} failed: CONFLUENCE_BASE_URL says https, but the server does not speak TLS on that port (use http:// if it is plain HTTP, or check the port)"
            ));
        }
        if https && chain.contains("certificate") {
            return Some(format!(
                "the certificate of {host} is not trusted: install its CA on this machine (CONFLUENCE_TLS_VERIFY=false skips the check, for testing only)"
            ));
        }
        None
    }

    /// Whether an answer of `status` is one to read (`false`: a 404); an error to retry or
    /// to stop at otherwise.
    fn judge(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        path: &str,
    ) -> Result<bool, Attempt<SourceError>> {
        if status.is_success() {
            return Ok(true);
        }
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        let text = String::from_utf8_lossy(body);
        let text = text.as_ref();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Attempt::Retry {
                problem: format!("HTTP {}: {}", status.as_u16(), detail_of(text)),
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
            });
        }
        let detail = detail_of(text);
        Err(Attempt::Fatal(match status.as_u16() {
            401 => SourceError::Unauthorized {
                status: 401,
                path: path.to_owned(),
                detail,
                hint: match self.version {
                    ApiVersion::V2 if !self.base.trim_end_matches('/').ends_with("/wiki") => format!(
                        "CONFLUENCE_BASE_URL ({}) does not end with /wiki, where Cloud's REST API \
                        lives (https://<site>.atlassian.net/wiki); if it is right, check \
                        CONFLUENCE_USER_EMAIL and CONFLUENCE_API_TOKEN",
                        self.base
                    ),
                    ApiVersion::V2 => "check CONFLUENCE_USER_EMAIL and CONFLUENCE_API_TOKEN \
                        (Cloud signs in with the account's email and an API token)"
                        .into(),
                    ApiVersion::V1 => "check CONFLUENCE_API_TOKEN (Data Center takes a personal \
                        access token, sent as a Bearer token; for Cloud set CONFLUENCE_API_VERSION=v2)"
                        .into(),
                },
            },
            403 => SourceError::Unauthorized {
                status: 403,
                path: path.to_owned(),
                detail,
                hint: "the account behind CONFLUENCE_API_TOKEN may not use Confluence or view this \
                    content: check its product access and space permissions"
                    .into(),
            },
            other => SourceError::Http {
                status: other,
                path: path.to_owned(),
                detail,
            },
        }))
    }
}

/// The path and query of a URL, for messages (credentials never travel in the URL).
pub(crate) fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

fn transport_problem(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        format!("transport error: {e}")
    }
}

/// Why a body was not read.
enum Unread {
    /// Longer than the cap.
    TooLarge(String),
    /// The connection failed mid-body.
    CutOff(String),
}

/// Reads an answer's body, refusing more than `cap` bytes.
async fn read_body(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Unread> {
    let too_big = || Unread::TooLarge(format!("the answer is larger than {cap} bytes"));
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Unread::CutOff(transport_problem(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `rel="next"` target of one `Link` header value.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// What an error body says, on one line: the JSON message, an HTML page's title and message,
/// or the start of the text.
pub(crate) fn detail_of(body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                let first = json.get("errors")?.get(0)?;
                let title = first.get("title").and_then(Value::as_str).unwrap_or("");
                let detail = first.get("detail").and_then(Value::as_str).unwrap_or("");
                Some(format!("{title} {detail}").trim().to_owned())
            });
        if let Some(m) = message.filter(|m| !m.is_empty()) {
            return shorten(&m);
        }
    }
    let lower = body.to_ascii_lowercase();
    if lower.contains("<html") || lower.contains("<!doctype") {
        let text = strip_tags(body);
        return shorten(&format!("(HTML page) {text}"));
    }
    shorten(body)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    let mut skip_until: Option<&str> = None;
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        if let Some(end) = skip_until {
            match lower[i..].find(end) {
                Some(at) => {
                    i += at + end.len();
                    skip_until = None;
                }
                None => break,
            }
            continue;
        }
        let c = bytes[i];
        if c == b'<' {
            if lower[i..].starts_with("<style") {
                skip_until = Some("</style>");
                continue;
            }
            if lower[i..].starts_with("<script") {
                skip_until = Some("</script>");
                continue;
            }
            in_tag = true;
            out.push(' ');
        } else if c == b'>' && in_tag {
            in_tag = false;
        } else if !in_tag {
            let ch_len = html[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&html[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        i += 1;
    }
    out
}

fn shorten(text: &str) -> String {
    docbrain_http::one_line(text, 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_next_link_among_others() {
        let header = "</wiki/api/v2/spaces/98306/pages?limit=2&cursor=eyJpZCI6==>; rel=\"next\", <https://org.atlassian.net/wiki>; rel=\"base\"";
        assert_eq!(
            next_link(header).as_deref(),
            Some("/wiki/api/v2/spaces/98306/pages?limit=2&cursor=eyJpZCI6==")
        );
        assert_eq!(
            next_link("<https://org.atlassian.net/wiki>; rel=\"base\""),
            None
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn error_details_come_from_json_html_or_text() {
        // The shapes Confluence answers errors in, written for this test: Tomcat's HTML page
        // (Data Center), v1's `message`, v2's `errors[].title`, and plain text.
        let tomcat = "<!doctype html><html lang=\"en\"><head><title>HTTP Status 401 – Unauthorized</title>\
            <style type=\"text/css\">body {font-family:Tahoma,Arial,sans-serif;}</style></head>\
            <body><h1>HTTP Status 401 – Unauthorized</h1><p><b>Type</b> Status Report</p>\
            <p><b>Message</b> Basic Authentication Failure - Reason : AUTHENTICATED_FAILED</p></body></html>";
        let html = detail_of(tomcat);
        assert!(html.starts_with("(HTML page) HTTP Status 401"), "{html}");
        assert!(html.contains("Basic Authentication Failure"), "{html}");
        assert!(!html.contains("font-family"), "{html}");
        let v1 = r#"{"statusCode":404,"data":{"authorized":true,"valid":true,"errors":[],"successful":false},"message":"No space with key : NOPE","reason":"Not Found"}"#;
        assert_eq!(detail_of(v1), "No space with key : NOPE");
        let v2 =
            r#"{"errors":[{"status":404,"code":"NOT_FOUND","title":"Not Found","detail":null}]}"#;
        assert_eq!(detail_of(v2), "Not Found");
        assert_eq!(detail_of("  plain\n text "), "plain text");
        assert!(detail_of(&"x".repeat(1000)).chars().count() <= 241);
    }

    #[test]
    #[ignore = "reads the captured fixtures: scripts/test.sh runs it with DOCBRAIN_CAPTURED_FIXTURES"]
    fn captured_error_details_come_from_json_html_or_text() {
        let root = std::env::var_os("DOCBRAIN_CAPTURED_FIXTURES")
            .expect("DOCBRAIN_CAPTURED_FIXTURES is not set: run scripts/test.sh, which sets it when the captured fixtures exist");
        let fixtures = std::path::PathBuf::from(root).join("rest/errors");
        let read = |f: &str| std::fs::read_to_string(fixtures.join(f)).unwrap();
        let html = detail_of(&read("dc-v1.401.bad-pat.tomcat-html.html"));
        assert!(html.starts_with("(HTML page) HTTP Status 401"), "{html}");
        assert!(html.contains("Basic Authentication Failure"), "{html}");
        assert!(!html.contains("font-family"), "{html}");
        assert_eq!(
            detail_of(&read("cloud.403.not-permitted-to-use-confluence.json")),
            "Current user not permitted to use Confluence"
        );
        assert_eq!(
            detail_of(&read(
                "cloud-v2.404.page-not-found-or-no-permission.md2conf-issue113.json"
            )),
            "Not Found"
        );
        assert_eq!(
            detail_of(&read("dc-v1.404.no-space-with-key.sei-cmu-wiki.json")),
            "No space with key : x"
        );
    }
}
