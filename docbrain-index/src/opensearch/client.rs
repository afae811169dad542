//! One OpenSearch request with bounded retries, and readable errors.

use docbrain_core::{CallCounter, CallHealth, Secret};
use docbrain_http::one_line;
use docbrain_http::{retry, Attempt, Retried, RetryPolicy};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::Value;

use crate::{http, IndexError};

/// A request body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// No body.
    Empty,
    /// A JSON document.
    Json(&'a Value),
    /// Newline-delimited JSON (`_bulk`, `_msearch`).
    NdJson(&'a str),
}

/// The HTTP side of the OpenSearch store.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    url: String,
    auth: Option<(String, Secret)>,
    retry: RetryPolicy,
    /// How calls to the cluster have gone.
    calls: CallCounter,
}

impl Client {
    pub(crate) fn new(
        url: &str,
        auth: Option<(String, Secret)>,
        tls_verify: bool,
        retry: RetryPolicy,
    ) -> Result<Self, IndexError> {
        let http = crate::http::client(tls_verify)?;
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            auth,
            retry,
            calls: CallCounter::default(),
        })
    }

    /// How calls to the cluster have gone.
    pub(crate) fn health(&self) -> CallHealth {
        self.calls.snapshot()
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request; 2xx and 404 answers come back with their JSON, 429/502/503/504 and
    /// transport failures are retried, anything else is an error saying what failed.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
        what: &str,
    ) -> Result<(u16, Value), IndexError> {
        let target = format!("{}{path}", self.url);
        let attempt = |_| async {
            let outcome = self.attempt(&method, &target, body, what).await;
            self.calls.count(outcome.is_ok());
            outcome
        };
        retry(&self.retry, "opensearch", attempt)
            .await
            .map_err(|e| match e {
                Retried::Fatal(e) => e,
                Retried::Exhausted { attempts, last, .. } => IndexError::OpenSearchUnavailable {
                    url: self.url.clone(),
                    attempts,
                    last,
                },
            })
    }

    /// One attempt of [`Client::call`].
    async fn attempt(
        &self,
        method: &Method,
        target: &str,
        body: Body<'_>,
        what: &str,
    ) -> Result<(u16, Value), Attempt<IndexError>> {
        {
            let mut request = self
                .http
                .request(method.clone(), target)
                .timeout(self.retry.timeout);
            if let Some((user, password)) = &self.auth {
                request = request.basic_auth(user, Some(password.expose()));
            }
            request = match body {
                Body::Empty => request,
                Body::Json(v) => request.json(v),
                Body::NdJson(text) => request
                    .header(CONTENT_TYPE, "application/x-ndjson")
                    .body(text.to_owned()),
            };
            let response = request.send().await.map_err(|e| Attempt::Retry {
                problem: http::transport_problem(&e),
                retry_after: None,
            })?;
            let status = response.status().as_u16();
            let asked = http::retry_after(response.headers());
            // A body that cannot be read whole is a failed attempt, never an empty success.
            let text = http::read_text(response, http::MAX_BODY_BYTES)
                .await
                .map_err(|problem| Attempt::Retry {
                    problem: format!("HTTP {status}, unreadable answer: {problem}"),
                    retry_after: None,
                })?;
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200..=299 | 404 => Ok((status, json)),
                429 | 502 | 503 | 504 => Err(Attempt::Retry {
                    problem: format!("HTTP {status}: {}", reason(&json, &text)),
                    retry_after: asked,
                }),
                401 | 403 => Err(Attempt::Fatal(IndexError::OpenSearchAuth {
                    url: self.url.clone(),
                    status,
                    detail: reason(&json, &text),
                })),
                _ => Err(Attempt::Fatal(IndexError::OpenSearch {
                    url: self.url.clone(),
                    what: what.to_owned(),
                    status,
                    detail: reason(&json, &text),
                })),
            }
        }
    }

    /// The retry policy (bulk item retries use it too).
    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
}

/// OpenSearch's reason for an error, on one line.
pub(crate) fn reason(json: &Value, text: &str) -> String {
    let from_json = json["error"]["root_cause"][0]["reason"]
        .as_str()
        .or_else(|| json["error"]["reason"].as_str())
        .or_else(|| json["error"].as_str())
        .or_else(|| json["message"].as_str());
    one_line(from_json.unwrap_or(text), 300)
}
