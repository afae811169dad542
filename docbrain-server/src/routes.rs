//! The HTTP routes.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use docbrain_confluence::webhook::{
    self, Delivery, PageEvent, PageRef, PayloadError, SignatureError,
};
use docbrain_core::{printable, Caller, ErrorKind, PageId, SearchFilter, SearchRequest};

use crate::journal::Reach;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::CONTENT_LENGTH;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use tracing::{debug, error as log_error, info, warn};

use crate::gate::Refusal;
use crate::metrics::PartsHealth;
use crate::queue::Webhook;
use crate::{AppState, ServerError};

/// The response type of every route (the MCP route streams; the others answer whole).
pub type Response = hyper::Response<BoxBody<Bytes, Infallible>>;

/// A whole body as a [`Response`] body.
pub(crate) fn whole(bytes: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    Full::new(bytes.into()).boxed()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(whole(body.to_string()))
        .unwrap_or_else(|_| hyper::Response::new(whole(Bytes::new())))
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

/// The first value of parameter `name` in a query string, decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Routes one request: the whole HTTP surface, callable in-process with any body type (tests
/// pass a `Full<Bytes>`; [`crate::serve`] passes hyper's `Incoming`).
pub async fn router<B>(state: &AppState, req: Request<B>) -> Response
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if state.search.checks_host() && req.uri().path() != "/confluence/events" && !local(&req) {
        // A keyless server answers only pages served from this machine: a web page elsewhere
        // reaching it through DNS rebinding names its own host. (Webhook deliveries are signed.)
        return error(
            StatusCode::FORBIDDEN,
            "this server has no search keys, so it answers only requests for localhost: set SEARCH_USER_KEYS or SEARCH_API_KEYS to serve other hosts",
        );
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        (&Method::GET, "/readyz") => readyz(state).await,
        (&Method::GET, "/search") => match admit(state, &req, "/search") {
            Ok(caller) => search(state, req.uri().query(), caller).await,
            Err(refusal) => refused(refusal),
        },
        (_, "/mcp") => match admit(state, &req, "/mcp") {
            Ok(caller) => crate::mcp::handle(state, req, caller).await,
            Err(refusal) => refused(refusal),
        },
        (&Method::GET, "/metrics") => {
            if let Some(w) = &state.webhook {
                state
                    .metrics
                    .queue_depth
                    .store(w.queue_depth() as u64, Ordering::Relaxed);
            }
            hyper::Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/plain; version=0.0.4")
                .body(whole(state.metrics.render(&parts_health(state))))
                .unwrap_or_else(|_| hyper::Response::new(whole(Bytes::new())))
        }
        (_, "/confluence/events") => match &state.webhook {
            None => error(
                StatusCode::NOT_FOUND,
                "the Confluence webhook is disabled: set CONFLUENCE_WEBHOOK_SECRET to enable it",
            ),
            Some(_) if req.method() != Method::POST => {
                error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
            }
            Some(w) => events(state, w, req).await,
        },
        (_, "/healthz" | "/readyz" | "/search" | "/metrics") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// How the pipeline's remote parts have gone, for `/metrics`.
fn parts_health(state: &AppState) -> PartsHealth {
    let store = state.pipeline.store();
    PartsHealth {
        source: state.pipeline.fetcher().health(),
        store: store.health().map(|h| (store.kind(), h)),
        embedder: state.pipeline.embedder().health(),
        retrying: state.webhook.as_ref().map_or(0, |w| w.retrying() as u64),
        attachments: state.pipeline.attachment_counts(),
    }
}

async fn readyz(state: &AppState) -> Response {
    if let Some(w) = &state.webhook {
        if let Err(e) = w.journal().probe().await {
            // The path and the cause are for the operator: this route answers anyone.
            warn!(path = %w.journal().path().display(), error = %e, "readiness: the webhook journal cannot take a write");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the webhook journal cannot take a write (the server log says why)",
            );
        }
    }
    // Counts of the index are not shown: this route answers anyone.
    match state.readiness.check(&state.pipeline).await {
        Ok(()) => {
            let mut body = json!({ "status": "ready" });
            if state.metrics.awaiting_first_crawl() {
                // Ready for events (they are journaled), but search answers from an index the
                // first crawl is still filling.
                body["first_crawl"] = json!("not completed");
            }
            // A Confluence outage does not make this server unready (search still works, events
            // are journaled); it is reported for alerts, as in /metrics.
            if let Some(h) = state.pipeline.fetcher().health() {
                if let Some(status) = h.refused {
                    // Wrong credentials: nothing the webhook is told about can be indexed.
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("Confluence refuses the account (HTTP {status}): check CONFLUENCE_API_TOKEN (and CONFLUENCE_USER_EMAIL on Cloud); the server log says more"),
                    );
                }
                body["confluence"] = json!({
                    "failed_calls": h.failed_calls,
                    "seconds_since_success": h.seconds_since_success(docbrain_core::now_ms()),
                });
            }
            json_response(StatusCode::OK, &body)
        }
        Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

/// `POST /confluence/events`: cap, verify, read, journal, acknowledge.
async fn events<B>(state: &AppState, w: &Webhook, req: Request<B>) -> Response
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let config = w.config();
    let limit = config.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        state.metrics.event("unknown", "rejected");
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body larger than {limit} bytes"),
        );
    }
    let signature = req
        .headers()
        .get("x-hub-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let header_event = req
        .headers()
        .get("x-event-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query = req.uri().query().map(str::to_owned);
    let body = match read_body(req.into_body(), limit, config.body_timeout).await {
        Ok(body) => body,
        Err(answer) => {
            state.metrics.event("unknown", "rejected");
            return answer;
        }
    };
    if let Err(answer) = verify(state, w, &body, signature.as_deref(), query.as_deref()) {
        return answer;
    }
    let delivery = match parse(state, &body, header_event.as_deref(), query.as_deref()) {
        Ok(d) => d,
        Err(answer) => return answer,
    };
    match delivery {
        Delivery::Ignored { event } => {
            debug!(event = %event, "Ignored webhook event {event}");
            state.metrics.event(&event, "ignored");
            json_response(
                StatusCode::OK,
                &json!({ "status": "ignored", "event": event }),
            )
        }
        Delivery::Page { event, page } => accept(state, w, event, Target::Page(page)).await,
        Delivery::Space { event, space_key } => {
            accept(state, w, event, Target::Space(space_key)).await
        }
    }
}

/// Checks a delivery's signature (or, where allowed, its `?token=`); a failure is counted,
/// logged with what to fix, and answered 401.
#[allow(clippy::result_large_err)] // the refusal is the answer itself, as with `read_body`
fn verify(
    state: &AppState,
    w: &Webhook,
    body: &[u8],
    signature: Option<&str>,
    query: Option<&str>,
) -> Result<(), Response> {
    let config = w.config();
    let secret = config.secret.expose().as_bytes();
    let verified = match webhook::verify(secret, body, signature) {
        Ok(()) => Ok(()),
        Err(e) => {
            let token = query_param(query, "token");
            match token {
                Some(t)
                    if config.allow_url_token && webhook::secrets_match(secret, t.as_bytes()) =>
                {
                    Ok(())
                }
                _ => Err(e),
            }
        }
    };
    if let Err(e) = verified {
        state
            .metrics
            .signature_failures
            .fetch_add(1, Ordering::Relaxed);
        let hint = match e {
            SignatureError::Missing => "the delivery is unsigned: set the webhook's secret in Confluence to CONFLUENCE_WEBHOOK_SECRET (Cloud webhooks arrive unsigned: see CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN)",
            _ => "the shared secret does not match: update the webhook's secret in Confluence and CONFLUENCE_WEBHOOK_SECRET to the same value",
        };
        warn!(reason = %e, "Rejected a webhook delivery: {hint}");
        return Err(error(StatusCode::UNAUTHORIZED, "invalid signature"));
    }
    Ok(())
}

/// Reads what a verified delivery asks for; a body that says nothing usable is counted, logged
/// and answered 400.
#[allow(clippy::result_large_err)] // the refusal is the answer itself, as with `read_body`
fn parse(
    state: &AppState,
    body: &[u8],
    header_event: Option<&str>,
    query: Option<&str>,
) -> Result<Delivery, Response> {
    webhook::parse(body, header_event, query_param(query, "event").as_deref()).map_err(|e| {
        state.metrics.event("unknown", "rejected");
        let message = match &e {
            PayloadError::NotJson(_) => "the body is not JSON",
            PayloadError::NoPageId { .. } => "the page event has no usable page id",
            PayloadError::NoSpaceKey { .. } => "the space event has no space key",
        };
        warn!(error = %e, "Rejected a webhook delivery: {message}");
        error(StatusCode::BAD_REQUEST, message)
    })
}

/// What an accepted event is about.
enum Target {
    Page(PageRef),
    Space(String),
}

/// Journals an event (answering only once it is on disk) and queues its page. An access change
/// (a page's restrictions or place, a space's permissions) is noted in the store, and the pages
/// it reaches found, after the answer (`Webhook`'s expander), so the answer never waits on the
/// index.
async fn accept(state: &AppState, w: &Webhook, event: PageEvent, target: Target) -> Response {
    let page_id = match &target {
        Target::Page(page) => Some(page.id.clone()),
        Target::Space(_) => None,
    };
    let journaled = journal(w, event, target).await;
    match journaled {
        Ok(reach) => {
            debug!(event = event.name(), page_id = ?page_id, "journaled webhook event");
            state.metrics.event(event.name(), "accepted");
            // `pages`: those journaled before the answer; the ones an access change reaches
            // beyond its page follow.
            let pages = u8::from(page_id.is_some());
            let mut answer = json!({ "status": "accepted", "event": event.name(), "page_id": page_id, "pages": pages });
            if let Some(reach) = reach {
                answer["reaches"] = json!(reach);
            }
            json_response(StatusCode::OK, &answer)
        }
        Err(e) => {
            log_error!(error = %e, "cannot journal a webhook event; answering 503 so Confluence retries");
            state.metrics.event(event.name(), "rejected");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event could not be journaled",
            )
        }
    }
}

/// Journals what an event asks for: its page; with the pages below it when its restrictions or
/// place changed; every page of a space whose permissions changed. Returns what it reaches
/// beyond its page (`below`, `space`).
async fn journal(
    w: &Webhook,
    event: PageEvent,
    target: Target,
) -> Result<Option<&'static str>, ServerError> {
    match target {
        Target::Page(page) if !event.reaches_descendants() => {
            w.accept(event, page).await?;
            Ok(None)
        }
        Target::Page(page) => {
            let id = page.id.clone();
            w.accept(event, page).await?;
            w.accept_reach(event, id, Reach::Below).await?;
            Ok(Some("below"))
        }
        Target::Space(key) => {
            // The entry's page names the space: it is expanded, never fetched.
            let id = PageId::new(format!("space:{key}"));
            w.accept_reach(event, id, Reach::Space(key)).await?;
            Ok(Some("space"))
        }
    }
}

/// Whether a request names this machine: its `Host` (or absolute URI) and, when present, its
/// `Origin` are loopback names. A request with no `Host` comes from no browser.
fn local<B>(req: &Request<B>) -> bool {
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
    };
    let host = header(hyper::header::HOST).or_else(|| {
        req.uri()
            .authority()
            .map(hyper::http::uri::Authority::as_str)
    });
    host.is_none_or(crate::gate::is_loopback_host)
        && header(hyper::header::ORIGIN).is_none_or(crate::gate::is_loopback_origin)
}

/// Whose permissions a request's answers obey: checks its key and its `as` parameters (see
/// [`crate::SearchGate`]) and logs one audit line.
fn admit<B>(state: &AppState, req: &Request<B>, route: &str) -> Result<Caller, Refusal> {
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    let as_values: Vec<String> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == "as")
            .map(|(_, v)| v.into_owned())
            .collect();
    let admitted = state.search.admit(authorization, &as_values);
    if let Err(refusal) = &admitted {
        let (status, key) = match refusal {
            Refusal::Unauthorized => ("401", "(none valid)"),
            Refusal::BadRequest(_) => ("400", "(not checked)"),
            Refusal::Forbidden { key_id, .. } => ("403", key_id.as_str()),
        };
        let asked: Vec<_> = as_values.iter().map(|a| printable(a)).collect();
        info!(target: "docbrain::audit", route, key, status, "search refused ({status}) for {key} asking as {asked:?}");
    }
    admitted.map(|admitted| {
            let as_user = match &admitted.caller {
                Caller::User(user) => user.as_str(),
                Caller::Anonymous => "(anonymous)",
                Caller::Unfiltered => "(unfiltered)",
            };
            info!(target: "docbrain::audit", route, key = %admitted.key_id, as_user = %printable(as_user), "search by {} as {}", admitted.key_id, printable(as_user));
        admitted.caller
    })
}

/// The answer to a request the gate refused.
fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorized => unauthorized(),
        Refusal::BadRequest(why) => error(StatusCode::BAD_REQUEST, &why),
        Refusal::Forbidden { why, .. } => error(StatusCode::FORBIDDEN, &why),
    }
}

/// Reads a request body whole, at most `limit` bytes within `timeout`; otherwise the answer
/// to give (413, 408, 400).
pub(crate) async fn read_body<B>(
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Response>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    #[allow(clippy::disallowed_methods)] // the body is Limited
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect());
    match read.await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!("the body did not arrive within {} s", timeout.as_secs_f64()),
        )),
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body larger than {limit} bytes"),
        )),
        Ok(Err(_)) => Err(error(StatusCode::BAD_REQUEST, "the body could not be read")),
    }
}

/// 401 with the challenge; the key given is never echoed or logged.
fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "missing or invalid API key: send Authorization: Bearer <key>, with a key from SEARCH_API_KEYS or SEARCH_USER_KEYS",
    );
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer"),
    );
    response
}

async fn search(state: &AppState, query: Option<&str>, caller: Caller) -> Response {
    let Some(q) = query_param(query, "q").filter(|q| !q.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the question is empty: pass it as q=<question>",
        );
    };
    let k = match query_param(query, "k").map(|k| k.parse::<usize>()) {
        None => 5,
        Some(Ok(k)) => k,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("k must be a number from 1 to {}", SearchRequest::MAX_K),
            )
        }
    };
    let filter = SearchFilter {
        space_key: query_param(query, "space").filter(|s| !s.is_empty()),
        caller,
    };
    match state.pipeline.search(&q, k, &filter).await {
        Ok(hits) => json_response(StatusCode::OK, &json!({ "hits": hits })),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidRequest) => {
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => {
            // The detail (a store address, a cause) is for the operator, not the caller.
            warn!(error = %e, "search failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "search failed (the server log says why)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_parameters() {
        let q = Some("q=roll+back%20a%2Fdeploy&k=3&space=&flag");
        assert_eq!(query_param(q, "q").as_deref(), Some("roll back a/deploy"));
        assert_eq!(query_param(q, "k").as_deref(), Some("3"));
        assert_eq!(query_param(q, "space").as_deref(), Some(""));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(Some("q=100%"), "q").as_deref(), Some("100%"));
        assert_eq!(query_param(Some("q=%C3%A9"), "q").as_deref(), Some("é"));
    }
}
