//! The simulator's HTTP side: routing, auth, faults and the response shapes of both APIs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use bytes::Bytes;
use docbrain_core::PageStatus;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LINK, RETRY_AFTER};
use hyper::service::service_fn;
use hyper::{Request as HttpRequest, Response};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{
    permissions, Request, Route, SimAttachment, SimComment, SimPage, State, API_TOKEN, EMAIL, PAT,
};

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) async fn serve(listener: TcpListener, state: Arc<Mutex<State>>, addr: SocketAddr) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(req, &state, addr).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(req: HttpRequest<Incoming>, state: &Mutex<State>, addr: SocketAddr) -> Answer {
    if req.method() == hyper::Method::POST && req.uri().path().starts_with("/_sim/pages") {
        return control_edit(req, state).await;
    }
    if req.method() == hyper::Method::POST && req.uri().path() == "/_sim/restrictions" {
        return control_restrict(req.uri().query().unwrap_or_default(), state);
    }
    if req.method() == hyper::Method::POST && req.uri().path() == "/v1/embeddings" {
        return stand_in_embeddings(req).await;
    }
    let uri = req.uri().to_string();
    let method = req.method().to_string();
    let url = Url::parse(&format!("http://{addr}{uri}"))
        .unwrap_or_else(|_| Url::parse("http://invalid/").unwrap_or_else(|_| unreachable!()));
    let segments = site_segments(&url);
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route = route_of(&seg, &query);
    let v2 = seg.first() == Some(&"wiki");
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let at = std::time::Instant::now();
    let latency = enter(state);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let answer = {
        let mut s = lock(state);
        if let Some(fault) = take_fault(&mut s, route) {
            fault
        } else if method != "GET" {
            error(405, v2, "Method Not Allowed")
        } else if !authorized(v2, authorization.as_deref()) {
            unauthorized(v2)
        } else {
            let base = format!("http://{addr}");
            get(&s, &seg, &query, &base, v2)
        }
    };
    let mut s = lock(state);
    s.in_flight -= 1;
    s.log.push(Request {
        method,
        uri,
        route,
        status: answer.status().as_u16(),
        at,
    });
    answer
}

/// The URL's path segments, without the API gateway's `/ex/confluence/{cloudId}` prefix.
fn site_segments(url: &Url) -> Vec<String> {
    // Atlassian's API gateway (scoped tokens) serves the site under `/ex/confluence/{cloudId}`.
    url.path_segments()
        .map(|s| s.map(str::to_owned).collect::<Vec<_>>())
        .map(|s| match s.as_slice() {
            [ex, product, _cloud, rest @ ..] if ex == "ex" && product == "confluence" => {
                rest.to_vec()
            }
            _ => s,
        })
        .unwrap_or_default()
}

/// The route family a request's path segments belong to, as faults and the log name it.
fn route_of(seg: &[&str], query: &dyn Fn(&str) -> Option<String>) -> Route {
    match seg {
        [.., "content", _, "child", "comment"] | [.., "content", "search"] => Route::Comments,
        [.., "content", _, "child", "attachment"]
        | ["wiki", "api", "v2", "pages", _, "attachments"] => Route::Attachments,
        ["download", ..] | ["wiki", "download", ..] => Route::Download,
        ["wiki", "api", "v2", "spaces", _, "permissions"]
        | ["rest", "api", "space", _, "permissions", ..]
        | ["wiki", "rest", "api", "space", _]
        | [.., "restriction", "byOperation", "read"]
        | [.., "user", "memberof"]
        | ["rest", "api", "user"] => Route::Permissions,
        ["wiki", "api", "v2", "spaces", ..] if seg.len() <= 5 => Route::Spaces,
        ["wiki", "api", "v2", "spaces", _, "pages"] => Route::PageList,
        ["wiki", "api", "v2", "pages", _] if query("body-format").is_some() => Route::PageBody,
        ["wiki", "api", "v2", "pages" | "folders", _, ..] => Route::PageMeta,
        ["rest", "api", "space", ..] => Route::Spaces,
        ["rest", "api", "content"] | ["wiki", "rest", "api", "content"] => Route::PageList,
        ["rest", "api", "content", _]
            if query("expand").is_some_and(|e| e.contains("body.storage")) =>
        {
            Route::PageBody
        }
        ["rest", "api", "content", _] => Route::PageMeta,
        _ => Route::Other,
    }
}

/// Counts a request in flight (and the peak) and returns the latency it is to be served with.
fn enter(state: &Mutex<State>) -> std::time::Duration {
    let mut s = lock(state);
    s.in_flight += 1;
    s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
    s.latency
}

/// The answer to an authorized `GET`: that of the first route family that knows the path, or 404.
///
/// The families' paths do not overlap, so asking them in turn answers as one `match` would.
fn get(
    s: &State,
    seg: &[&str],
    query: &dyn Fn(&str) -> Option<String>,
    base: &str,
    v2: bool,
) -> Answer {
    v2_route(s, seg, query, base)
        .or_else(|| permissions_route(s, seg, query))
        .or_else(|| v1_route(s, seg, query, base))
        .unwrap_or_else(|| error(404, v2, "Not Found"))
}

/// The v2 API's content routes (`wiki/api/v2/…`: spaces, pages, folders, attachments).
fn v2_route(
    s: &State,
    seg: &[&str],
    query: &dyn Fn(&str) -> Option<String>,
    base: &str,
) -> Option<Answer> {
    Some(match seg {
        ["wiki", "api", "v2", "spaces"] => v2_spaces(s, query),
        ["wiki", "api", "v2", "spaces", id] => v2_space(s, id),
        ["wiki", "api", "v2", "spaces", id, "pages"] => v2_pages(s, id, query),
        ["wiki", "api", "v2", "pages", id] => v2_page(s, id, query, base),
        ["wiki", "api", "v2", "pages", id, "ancestors"] => v2_ancestors(s, id, false, query),
        ["wiki", "api", "v2", "folders", id, "ancestors"] => v2_ancestors(s, id, true, query),
        ["wiki", "api", "v2", "folders", id] => v2_folder(s, id),
        ["wiki", "api", "v2", "pages", id, "attachments"] => v2_attachments(s, id, query, base),
        _ => return None,
    })
}

/// The permission routes of both APIs: space permissions, read restrictions, users and groups.
fn permissions_route(
    s: &State,
    seg: &[&str],
    query: &dyn Fn(&str) -> Option<String>,
) -> Option<Answer> {
    Some(match seg {
        ["wiki", "rest", "api", "space", key] => {
            permissions::v1_cloud_space(s, key, &query("expand").unwrap_or_default())
        }
        ["rest", "api", "space", key, "permissions", "anonymous"] => {
            permissions::v1_anonymous_permissions(s, key)
        }
        ["wiki", "api", "v2", "spaces", id, "permissions"] => {
            permissions::v2_space_permissions(s, id, query)
        }
        ["rest", "api", "space", key, "permissions"] => permissions::v1_space_permissions(s, key),
        ["wiki", "rest", "api", "content", id, "restriction", "byOperation", "read"] => {
            permissions::restrictions(s, id, true)
        }
        ["rest", "api", "content", id, "restriction", "byOperation", "read"] => {
            permissions::restrictions(s, id, false)
        }
        ["wiki", "rest", "api", "user", "memberof"] => permissions::member_of(s, query, true),
        ["rest", "api", "user", "memberof"] => permissions::member_of(s, query, false),
        ["rest", "api", "user"] => permissions::v1_user(s, query),
        _ => return None,
    })
}

/// The v1 API's content routes (`rest/api/…`, on Cloud `wiki/rest/api/…`) and downloads.
fn v1_route(
    s: &State,
    seg: &[&str],
    query: &dyn Fn(&str) -> Option<String>,
    base: &str,
) -> Option<Answer> {
    Some(match seg {
        ["rest", "api", "space"] => v1_spaces(s, query, base),
        ["rest", "api", "space", key] => v1_space(s, key),
        ["rest", "api", "content", id, "child", "attachment"]
        | ["wiki", "rest", "api", "content", id, "child", "attachment"] => {
            v1_children(s, id, "attachment", query, base)
        }
        ["download", "attachments", page, name]
        | ["wiki", "download", "attachments", page, name] => download(s, page, name),
        ["rest", "api", "content", "search"] | ["wiki", "rest", "api", "content", "search"] => {
            v1_comment_search(s, query, base)
        }
        ["rest", "api", "content", id, "child", "comment"]
        | ["wiki", "rest", "api", "content", id, "child", "comment"] => {
            v1_children(s, id, "comment", query, base)
        }
        ["rest", "api", "content"] => v1_contents(s, query, base, false),
        ["wiki", "rest", "api", "content"] => v1_contents(s, query, base, true),
        ["rest", "api", "content", id] => {
            v1_content(s, id, base, &query("expand").unwrap_or_default())
        }
        _ => return None,
    })
}

/// `POST /_sim/pages/{id}` or `POST /_sim/pages?title=…` with the new storage-format body:
/// edits the page (its version goes up) and, when a target is set, sends the signed
/// `page_updated` webhook Confluence would send. Answers `{"id", "version", "webhook"}`.
async fn control_edit(req: HttpRequest<Incoming>, state: &Mutex<State>) -> Answer {
    let path = req.uri().path().to_owned();
    let title = req.uri().query().and_then(|q| {
        url_pairs(q)
            .into_iter()
            .find(|(k, _)| k == "title")
            .map(|(_, v)| v)
    });
    let body = match edit_body(req.into_body()).await {
        Ok(body) => body,
        Err(message) => return error(400, false, message),
    };
    let edit = match apply_edit(state, &path, title.as_deref(), body) {
        Ok(edit) => edit,
        Err(message) => return error(404, false, message),
    };
    let sent = send_webhook(edit.target, edit.webhook).await;
    respond(
        200,
        &json!({"id": edit.id.to_string(), "version": edit.version, "webhook": sent}),
    )
}

/// A page edited through the control route, and the webhook that tells of it.
struct Edit {
    /// The page's id.
    id: u64,
    /// Its version after the edit.
    version: u64,
    /// Where webhooks go and their secret, if anywhere.
    target: Option<(String, String)>,
    /// The `page_updated` webhook's body.
    webhook: String,
}

/// The new storage-format text a control edit sends, or why it is refused (a 400).
async fn edit_body(body: Incoming) -> Result<String, &'static str> {
    use http_body_util::BodyExt;
    #[allow(clippy::disallowed_methods)] // the body is Limited
    let read = http_body_util::Limited::new(body, 1024 * 1024)
        .collect()
        .await;
    let body = match read {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => return Err("the body could not be read"),
    };
    if body.trim().is_empty() {
        return Err("send the page's new storage-format text as the body");
    }
    Ok(body)
}

/// Gives the page the control route names (by id in `path`, else by `title`) its new `body`,
/// one version up, and builds its `page_updated` webhook; or why not (a 404).
fn apply_edit(
    state: &Mutex<State>,
    path: &str,
    title: Option<&str>,
    body: String,
) -> Result<Edit, &'static str> {
    let mut s = lock(state);
    let found = match (path.strip_prefix("/_sim/pages/"), title) {
        (Some(id), _) if !id.is_empty() => {
            id.parse::<u64>().ok().filter(|k| s.pages.contains_key(k))
        }
        (_, Some(title)) => s.pages.values().find(|p| p.title == title).map(|p| p.id),
        _ => None,
    };
    let Some(id) = found else {
        return Err("no such page: POST /_sim/pages/{id} or /_sim/pages?title=<title>");
    };
    let Some(page) = s.pages.get_mut(&id) else {
        return Err("no such page");
    };
    page.body = body;
    page.version += 1;
    let webhook = page_updated(id, page);
    Ok(Edit {
        id,
        version: page.version,
        target: s.webhook_target.clone(),
        webhook,
    })
}

/// The body of the `page_updated` webhook Data Center sends for page `id` as it is now.
fn page_updated(id: u64, page: &SimPage) -> String {
    let reference = crate::webhook::PageRef {
        id: docbrain_core::PageId::from(id),
        title: Some(page.title.clone()),
        space_key: Some(page.space_key.clone()),
        version: Some(page.version),
    };
    crate::webhook::body(
        crate::webhook::PageEvent::Updated,
        &reference,
        crate::webhook::BodyShape::DataCenter,
        docbrain_core::now_ms(),
    )
}

/// Sends the signed `webhook` to `target` (a URL and secret), if any: `null`, or where it went
/// and the status or error it met.
async fn send_webhook(target: Option<(String, String)>, webhook: String) -> Value {
    match target {
        None => json!(null),
        Some((url, secret)) => {
            let signature = crate::webhook::sign(secret.as_bytes(), webhook.as_bytes());
            let answer = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .header("x-hub-signature", signature)
                .body(webhook)
                .send()
                .await;
            match answer {
                Ok(a) => json!({"url": url, "status": a.status().as_u16()}),
                Err(e) => json!({"url": url, "error": e.to_string()}),
            }
        }
    }
}

/// `POST /v1/embeddings`: a stand-in for an OpenAI-compatible embedding service, for crawl
/// benchmarks whose figures should be the crawl's own (`OPENAI_BASE_URL=http://…/v1`). Each
/// input gets a deterministic unit vector of `dimensions` (default 384) from its bytes.
async fn stand_in_embeddings(req: HttpRequest<Incoming>) -> Answer {
    use http_body_util::BodyExt;
    #[allow(clippy::disallowed_methods)] // the body is Limited
    let read = http_body_util::Limited::new(req.into_body(), 64 * 1024 * 1024)
        .collect()
        .await;
    let Ok(request) = read
        .map_err(|_| ())
        .and_then(|b| serde_json::from_slice::<Value>(&b.to_bytes()).map_err(|_| ()))
    else {
        return error(400, false, "send {\"model\", \"input\": [...]}");
    };
    let Some(inputs) = request["input"].as_array() else {
        return error(400, false, "`input` must be a list of texts");
    };
    let dimension = request["dimensions"].as_u64().unwrap_or(384).clamp(1, 4096) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let mut seed = text
                .as_str()
                .unwrap_or_default()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
            let mut vector: Vec<f64> = (0..dimension)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                })
                .collect();
            let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
            vector.iter_mut().for_each(|x| *x /= norm);
            json!({"object": "embedding", "index": index, "embedding": vector})
        })
        .collect();
    respond(
        200,
        &json!({"object": "list", "data": data, "model": request["model"],
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}),
    )
}

/// `POST /_sim/restrictions?title=…&group=hr[&group=…][&user=…]`: sets the page's read
/// restriction to those groups and users (none: lifts it). Confluence keeps the version.
fn control_restrict(query: &str, state: &Mutex<State>) -> Answer {
    let pairs = url_pairs(query);
    let values = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let Some(title) = values("title").pop() else {
        return error(
            400,
            false,
            "name the page: POST /_sim/restrictions?title=<title>&group=<group>",
        );
    };
    let (groups, users) = (values("group"), values("user"));
    let mut s = lock(state);
    let Some(page) = s.pages.values_mut().find(|p| p.title == title) else {
        return error(404, false, "no such page");
    };
    page.restriction = (!groups.is_empty() || !users.is_empty()).then(|| permissions::Grants {
        anonymous: false,
        users: users.into_iter().collect(),
        groups: groups.into_iter().collect(),
    });
    respond(
        200,
        &json!({"id": page.id.to_string(), "restricted": page.restriction.is_some()}),
    )
}

/// The decoded pairs of a query string.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    Url::parse(&format!("http://x/?{query}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take_fault(s: &mut State, route: Route) -> Option<Answer> {
    let fault = s
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && f.route.is_none_or(|r| r == route))?;
    if fault.after > 0 {
        fault.after -= 1;
        return None;
    }
    if fault.times != u32::MAX {
        fault.times -= 1;
    }
    let f = fault.clone();
    s.faults.retain(|f| f.times > 0);
    let mut answer = if f.html {
        html(
            f.status,
            &format!("HTTP Status {} – Service trouble", f.status),
        )
    } else if f.status == 429 {
        respond(f.status, &json!({"message": "Rate limit exceeded"}))
    } else {
        respond(
            f.status,
            &json!({"statusCode": f.status, "message": "simulated fault"}),
        )
    };
    if let Some(value) = f.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        answer.headers_mut().insert(RETRY_AFTER, value);
    }
    if f.status == 429 {
        let h = answer.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from_static("100"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
    }
    Some(answer)
}

fn authorized(v2: bool, header: Option<&str>) -> bool {
    let Some(header) = header else {
        return false;
    };
    if v2 {
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{API_TOKEN}"));
        header == format!("Basic {expected}")
    } else {
        header == format!("Bearer {PAT}")
    }
}

fn unauthorized(v2: bool) -> Answer {
    if v2 {
        respond(
            401,
            &json!({"code": 401, "message": "Unauthorized; scope does not match"}),
        )
    } else {
        html(
            401,
            "HTTP Status 401 – Unauthorized</h1><p><b>Message</b> Basic Authentication Failure - Reason : AUTHENTICATED_FAILED</p><h1>",
        )
    }
}

pub(super) fn respond(status: u16, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn html(status: u16, title: &str) -> Answer {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><title>{title}</title><style type=\"text/css\">body {{font-family:Tahoma,Arial,sans-serif;}}</style></head><body><h1>{title}</h1><hr class=\"line\" /><h3>Apache Tomcat</h3></body></html>"
    );
    let mut r = Response::new(Full::new(Bytes::from(page)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=utf-8"),
    );
    r
}

pub(super) fn error(status: u16, v2: bool, title: &str) -> Answer {
    if v2 {
        respond(
            status,
            &json!({"errors": [{"status": status, "code": title.to_uppercase().replace(' ', "_"), "title": title, "detail": null}]}),
        )
    } else {
        respond(
            status,
            &json!({"statusCode": status, "data": {"authorized": false, "valid": true, "allowedInReadOnlyMode": true, "errors": [], "successful": false}, "message": title, "reason": title}),
        )
    }
}

/// A page this account can see (not a folder).
fn visible<'a>(s: &'a State, id: &str) -> Option<&'a SimPage> {
    visible_content(s, id).filter(|p| !p.folder)
}

/// A page or folder this account can see.
pub(super) fn visible_content<'a>(s: &'a State, id: &str) -> Option<&'a SimPage> {
    let id: u64 = id.parse().ok()?;
    s.pages.get(&id).filter(|p| !p.hidden)
}

/// The v2 type name of a page or folder.
fn content_type(p: &SimPage) -> &'static str {
    if p.folder {
        "folder"
    } else {
        "page"
    }
}

fn status_name(status: PageStatus) -> &'static str {
    match status {
        PageStatus::Current => "current",
        PageStatus::Trashed => "trashed",
        PageStatus::Archived => "archived",
        PageStatus::Draft => "draft",
        PageStatus::Historical => "historical",
        _ => "unknown",
    }
}

fn webui(p: &SimPage) -> String {
    let slug: String = p.title.split_whitespace().collect::<Vec<_>>().join("+");
    format!("/spaces/{}/pages/{}/{slug}", p.space_key, p.id)
}

/// A page of a listing: the slice at `offset` and the offset of the next slice, if any.
pub(super) fn window<T: Clone>(
    items: &[T],
    offset: usize,
    limit: usize,
) -> (Vec<T>, Option<usize>) {
    let end = (offset + limit).min(items.len());
    let slice = items.get(offset..end).unwrap_or_default().to_vec();
    (slice, (end < items.len()).then_some(end))
}

fn limit_of(s: &State, query: &dyn Fn(&str) -> Option<String>, default: usize) -> usize {
    query("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(default)
        .clamp(1, 250)
        .min(s.max_results)
}

fn cursor(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\":{offset}}}"))
}

fn offset_of(cursor: Option<String>) -> usize {
    cursor
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .and_then(|v| v["offset"].as_u64())
        .unwrap_or(0) as usize
}

fn with_next(mut answer: Answer, next: Option<String>, base: &str) -> Answer {
    if let Some(next) = next {
        let link = format!("<{next}>; rel=\"next\", <{base}/wiki>; rel=\"base\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            answer.headers_mut().insert(LINK, v);
        }
    }
    answer
}

fn v2_spaces(s: &State, query: &dyn Fn(&str) -> Option<String>) -> Answer {
    let keys: Option<Vec<String>> =
        query("keys").map(|k| k.split(',').map(|k| k.trim().to_owned()).collect());
    let all: Vec<Value> = s
        .spaces
        .iter()
        .filter(|(k, _)| keys.as_ref().is_none_or(|keys| keys.contains(k)))
        .map(|(key, sp)| {
            json!({
                "id": sp.id.to_string(), "key": key, "name": sp.name, "type": "global",
                "status": "current", "authorId": "557058:sim", "createdAt": "2026-01-05T09:00:00.000Z",
                "homepageId": null, "description": null, "icon": null,
                "_links": {"webui": format!("/spaces/{key}")}
            })
        })
        .collect();
    let limit = limit_of(s, query, 25);
    let (results, next) = window(&all, offset_of(query("cursor")), limit);
    let mut links = json!({"base": "/wiki"});
    let next = next.map(|n| {
        let mut path = format!("/wiki/api/v2/spaces?limit={limit}&cursor={}", cursor(n));
        if let Some(k) = query("keys") {
            path.push_str(&format!("&keys={k}"));
        }
        path
    });
    if let Some(n) = &next {
        links["next"] = json!(n);
    }
    respond(200, &json!({"results": results, "_links": links}))
}

fn v2_space(s: &State, id: &str) -> Answer {
    match s.spaces.iter().find(|(_, sp)| sp.id.to_string() == id) {
        Some((key, sp)) => respond(
            200,
            &json!({"id": id, "key": key, "name": sp.name, "type": "global", "status": "current", "_links": {"webui": format!("/spaces/{key}")}}),
        ),
        None => error(404, true, "Not Found"),
    }
}

fn v2_page_json(s: &State, p: &SimPage, with_body: bool, with_labels: bool) -> Value {
    let space_id = s.spaces.get(&p.space_key).map_or(0, |sp| sp.id);
    let mut v = json!({
        "id": p.id.to_string(), "status": status_name(p.status), "title": p.title,
        "spaceId": space_id.to_string(),
        "parentId": p.parent.map(|x| x.to_string()),
        "parentType": p.parent.and_then(|x| s.pages.get(&x)).map(content_type),
        "position": p.id % 5000, "authorId": "557058:sim", "ownerId": "557058:sim", "lastOwnerId": null,
        "createdAt": "2026-01-05T09:00:00.000Z",
        "version": {"number": p.version, "message": "", "minorEdit": false, "authorId": "557058:sim", "createdAt": "2026-01-05T09:00:00.000Z"},
        "body": {},
        "_links": {"webui": webui(p), "editui": format!("/pages/resumedraft.action?draftId={}", p.id), "tinyui": "/x/AYBfAg"}
    });
    if with_body {
        v["body"] = json!({"storage": {"representation": "storage", "value": p.body}});
    }
    if with_labels {
        let labels: Vec<Value> = p
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| json!({"id": (i + 1).to_string(), "name": l, "prefix": "global"}))
            .collect();
        v["labels"] =
            json!({"results": labels, "meta": {"hasMore": false, "cursor": ""}, "_links": {}});
    }
    v
}

fn v2_pages(s: &State, space_id: &str, query: &dyn Fn(&str) -> Option<String>) -> Answer {
    let Some((key, _)) = s
        .spaces
        .iter()
        .find(|(_, sp)| sp.id.to_string() == space_id)
    else {
        return error(404, true, "Not Found");
    };
    let statuses: Vec<String> = query("status")
        .map(|st| st.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|| vec!["current".into(), "archived".into()]);
    let pages: Vec<&SimPage> = s
        .pages
        .values()
        .filter(|p| &p.space_key == key && !p.hidden && !p.folder)
        .filter(|p| statuses.iter().any(|st| st == status_name(p.status)))
        .collect();
    let limit = limit_of(s, query, 25);
    let with_body = query("body-format").is_some();
    let (slice, next) = window(&pages, offset_of(query("cursor")), limit);
    let results: Vec<Value> = slice
        .iter()
        .map(|p| v2_page_json(s, p, with_body, false))
        .collect();
    let next = next.map(|n| {
        let mut path = format!(
            "/wiki/api/v2/spaces/{space_id}/pages?limit={limit}&status={}&cursor={}",
            statuses.join(","),
            cursor(n)
        );
        if let Some(f) = query("body-format") {
            path.push_str(&format!("&body-format={f}"));
        }
        path
    });
    let next = s.next_link.clone().or(next);
    let mut links = json!({"base": "/wiki"});
    if let Some(n) = &next {
        links["next"] = json!(n);
    }
    let base = String::new();
    with_next(
        respond(200, &json!({"results": results, "_links": links})),
        next,
        &base,
    )
}

fn v2_page(s: &State, id: &str, query: &dyn Fn(&str) -> Option<String>, base: &str) -> Answer {
    let Some(p) = visible(s, id) else {
        return error(404, true, "Not Found");
    };
    let mut v = v2_page_json(
        s,
        p,
        query("body-format").as_deref() == Some("storage"),
        query("include-labels").as_deref() == Some("true"),
    );
    v["_links"]["base"] = json!(format!("{base}/wiki"));
    respond(200, &v)
}

fn chain(s: &State, p: &SimPage) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = p.parent;
    while let Some(id) = at {
        if out.contains(&id) {
            break;
        }
        out.push(id);
        at = s.pages.get(&id).and_then(|a| a.parent);
        if out.len() > 200 {
            break;
        }
    }
    out.reverse();
    out
}

/// `GET /wiki/api/v2/{pages|folders}/{id}/ancestors`: the `limit` (default 25, at most 250)
/// ancestors closest to the content, top first, each as `{id, type}`; the rest are had by
/// asking again for the topmost one.
fn v2_ancestors(
    s: &State,
    id: &str,
    folder: bool,
    query: &dyn Fn(&str) -> Option<String>,
) -> Answer {
    let Some(p) = visible_content(s, id).filter(|p| p.folder == folder) else {
        return error(404, true, "Not Found");
    };
    let limit = query("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 250);
    let all = chain(s, p);
    let results: Vec<Value> = all[all.len().saturating_sub(limit)..]
        .iter()
        .filter_map(|a| s.pages.get(a))
        .map(|a| json!({"id": a.id.to_string(), "type": content_type(a)}))
        .collect();
    respond(
        200,
        &json!({"results": results, "_links": {"base": "/wiki"}}),
    )
}

/// `GET /wiki/api/v2/folders/{id}`.
fn v2_folder(s: &State, id: &str) -> Answer {
    let Some(f) = visible_content(s, id).filter(|p| p.folder) else {
        return error(404, true, "Not Found");
    };
    respond(
        200,
        &json!({"id": f.id.to_string(), "type": "folder", "status": "current", "title": f.title,
                "parentId": f.parent.map(|x| x.to_string()),
                "parentType": f.parent.and_then(|x| s.pages.get(&x)).map(content_type),
                "position": 0, "authorId": "557058:sim", "ownerId": "557058:sim",
                "createdAt": "2026-01-05T09:00:00.000Z",
                "version": {"number": f.version, "message": "", "minorEdit": false, "authorId": "557058:sim", "createdAt": "2026-01-05T09:00:00.000Z"},
                "_links": {"webui": format!("/spaces/{}/folder/{}", f.space_key, f.id), "base": "/wiki"}}),
    )
}

fn v1_links(base: &str, next: Option<String>) -> Value {
    let mut links =
        json!({"base": base, "context": "", "self": format!("{base}/rest/api/content")});
    if let Some(n) = next {
        links["next"] = json!(n);
    }
    links
}

fn v1_spaces(s: &State, query: &dyn Fn(&str) -> Option<String>, base: &str) -> Answer {
    let all: Vec<Value> = s
        .spaces
        .iter()
        .map(|(key, sp)| v1_space_json(key, sp.id, &sp.name))
        .collect();
    let start = query("start").and_then(|x| x.parse().ok()).unwrap_or(0);
    let limit = limit_of(s, query, 25);
    let (results, next) = window(&all, start, limit);
    let next = next.map(|n| format!("/rest/api/space?type=global&limit={limit}&start={n}"));
    respond(
        200,
        &json!({"results": results, "start": start, "limit": limit, "size": results.len(), "_links": v1_links(base, next)}),
    )
}

fn v1_space(s: &State, key: &str) -> Answer {
    match s.spaces.get(key) {
        Some(sp) => respond(200, &v1_space_json(key, sp.id, &sp.name)),
        None => error(404, false, &format!("No space with key : {key}")),
    }
}

fn v1_space_json(key: &str, id: u64, name: &str) -> Value {
    json!({
        "id": id, "key": key, "name": name, "type": "global", "status": "current",
        "_expandable": {"homepage": "", "description": ""},
        "_links": {"webui": format!("/display/{key}"), "self": format!("/rest/api/space/{key}")}
    })
}

fn v1_content_json(s: &State, p: &SimPage, base: &str, expand: &str, cloud: bool) -> Value {
    let mut v = json!({
        "id": p.id.to_string(), "type": "page", "status": status_name(p.status), "title": p.title,
        "_links": {"webui": format!("/display/{}/{}", p.space_key, p.title.replace(' ', "+")),
                   "self": format!("{base}/rest/api/content/{}", p.id), "tinyui": "/x/BAAJ"},
        "_expandable": {"children": format!("/rest/api/content/{}/child", p.id)}
    });
    if expand.contains("version") {
        v["version"] = json!({"number": p.version, "minorEdit": false, "message": "", "when": "2026-01-05T09:00:00.000Z",
            "by": {"type": "known", "username": "sim", "userKey": "2c9280839e460b0f019e460ba6440000", "displayName": "Simulator"}});
    }
    if expand.contains("space") {
        let sp = s.spaces.get(&p.space_key);
        v["space"] = v1_space_json(
            &p.space_key,
            sp.map_or(0, |x| x.id),
            sp.map_or("", |x| x.name.as_str()),
        );
    }
    if expand.contains("ancestors") {
        let ancestors: Vec<Value> = chain(s, p)
            .into_iter()
            .filter_map(|a| s.pages.get(&a))
            .map(|a| json!({"id": a.id.to_string(), "type": "page", "status": "current", "title": a.title}))
            .collect();
        v["ancestors"] = json!(ancestors);
    }
    if expand.contains("body.storage") {
        v["body"] = json!({"storage": {"value": p.body, "representation": "storage"}});
    }
    if expand.contains("restrictions.read.restrictions") {
        v["restrictions"] = json!({"read": {"operation": "read",
            "restrictions": permissions::restriction_lists(p, cloud)}});
    }
    if expand.contains("metadata.labels") {
        let labels: Vec<Value> = p
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| json!({"prefix": "global", "name": l, "id": (i + 1).to_string()}))
            .collect();
        v["metadata"] = json!({"labels": {"results": labels, "start": 0, "limit": 200, "size": p.labels.len()}});
    }
    v
}

fn v1_contents(
    s: &State,
    query: &dyn Fn(&str) -> Option<String>,
    base: &str,
    cloud: bool,
) -> Answer {
    let Some(key) = query("spaceKey") else {
        return error(400, false, "spaceKey is required by this simulator");
    };
    if !s.spaces.contains_key(&key) {
        return error(404, false, &format!("No space with key : {key}"));
    }
    let status = query("status").unwrap_or_else(|| "current".into());
    let expand = query("expand").unwrap_or_default();
    let pages: Vec<&SimPage> = s
        .pages
        .values()
        .filter(|p| p.space_key == key && !p.hidden && !p.folder && status_name(p.status) == status)
        .collect();
    let start = query("start").and_then(|x| x.parse().ok()).unwrap_or(0);
    let limit = limit_of(s, query, 25);
    let (slice, next) = window(&pages, start, limit);
    let results: Vec<Value> = slice
        .iter()
        .map(|p| v1_content_json(s, p, base, &expand, cloud))
        .collect();
    // Relative to `_links.base`, which carries the context path (`/wiki` on Cloud).
    let next = next.map(|n| {
        format!("/rest/api/content?spaceKey={key}&type=page&status={status}&limit={limit}&start={n}&expand={expand}")
    });
    let next = s.next_link.clone().or(next);
    respond(
        200,
        &json!({"results": results, "start": start, "limit": limit, "size": results.len(), "_links": v1_links(base, next)}),
    )
}

/// A comment of a page the account can see, in v1's shape with the expansions asked for.
fn v1_comment_json(s: &State, c: &SimComment, expand: &str) -> Option<Value> {
    let page = visible(s, &c.page.to_string()).filter(|p| p.status == PageStatus::Current)?;
    let mut v = json!({
        "id": c.id.to_string(), "type": "comment", "status": "current",
        "title": format!("Re: {}", page.title),
        "_links": {"webui": format!("{}?focusedCommentId={}#comment-{}", webui(page), c.id, c.id)},
    });
    if expand.contains("version") {
        v["version"] =
            json!({"number": c.version, "minorEdit": false, "when": "2026-01-05T09:00:00.000Z"});
    }
    if expand.contains("container") {
        v["container"] = json!({"id": page.id.to_string(), "type": "page", "status": "current", "title": page.title});
    }
    if expand.contains("body.storage") {
        v["body"] = json!({"storage": {"value": c.body, "representation": "storage"}});
    }
    if expand.contains("history") {
        v["history"] = json!({"latest": true, "createdDate": "2026-01-05T09:00:00.000Z",
            "createdBy": {"type": "known", "username": c.author.to_lowercase(), "displayName": c.author}});
    }
    if expand.contains("extensions") {
        v["extensions"] = match &c.inline {
            Some(selection) => json!({"location": "inline",
                "inlineProperties": {"originalSelection": selection, "markerRef": format!("m{}", c.id)}}),
            None => json!({"location": "footer"}),
        };
    }
    Some(v)
}

/// `GET rest/api/content/search` for the one CQL query a crawl sends:
/// `space="KEY" and type=comment`.
fn v1_comment_search(s: &State, query: &dyn Fn(&str) -> Option<String>, base: &str) -> Answer {
    let cql = query("cql").unwrap_or_default();
    let parsed = cql.strip_prefix("space=\"").and_then(|rest| {
        let (key, types) = rest.split_once("\" and type")?;
        let types: Vec<&str> = match types.strip_prefix('=') {
            Some(one) => vec![one.trim()],
            None => types
                .trim()
                .strip_prefix("in (")?
                .strip_suffix(')')?
                .split(',')
                .map(str::trim)
                .collect(),
        };
        Some((key, types))
    });
    let Some((key, types)) = parsed else {
        return error(
            400,
            false,
            "this simulator's CQL knows only: space=\"KEY\" and type=T, or type in (T, U)",
        );
    };
    let expand = query("expand").unwrap_or_default();
    let in_space = |page: u64| s.pages.get(&page).is_some_and(|p| p.space_key == key);
    let mut all: Vec<Value> = Vec::new();
    if types.contains(&"comment") {
        all.extend(
            s.comments
                .values()
                .filter(|c| in_space(c.page))
                .filter_map(|c| v1_comment_json(s, c, &expand)),
        );
    }
    if types.contains(&"attachment") {
        all.extend(
            s.attachments
                .values()
                .filter(|a| in_space(a.page))
                .filter_map(|a| v1_attachment_json(s, a, &expand)),
        );
    }
    let start = query("start").and_then(|x| x.parse().ok()).unwrap_or(0);
    let limit = limit_of(s, query, 25);
    let (results, next) = window(&all, start, limit);
    let next = next.map(|n| {
        let mut link = Url::parse("http://sim/rest/api/content/search")
            .unwrap_or_else(|_| unreachable!("a valid URL"));
        link.query_pairs_mut()
            .append_pair("cql", &cql)
            .append_pair("expand", &expand)
            .append_pair("limit", &limit.to_string())
            .append_pair("start", &n.to_string());
        format!("{}?{}", link.path(), link.query().unwrap_or_default())
    });
    respond(
        200,
        &json!({"results": results, "start": start, "limit": limit, "size": results.len(), "_links": v1_links(base, next)}),
    )
}

/// The page of an attachment or comment, when the account can see it and it is current.
fn live_page(s: &State, page: u64) -> Option<&SimPage> {
    visible(s, &page.to_string()).filter(|p| p.status == PageStatus::Current)
}

/// An attachment's download link, relative to the site (`/wiki` on Cloud).
fn download_link(a: &SimAttachment) -> String {
    format!(
        "/download/attachments/{}/{}?version={}&modificationDate=1767603600000&api=v2",
        a.page, a.title, a.version
    )
}

/// An attachment in v1's shape (CQL search, `child/attachment`).
fn v1_attachment_json(s: &State, a: &SimAttachment, expand: &str) -> Option<Value> {
    let page = live_page(s, a.page)?;
    let mut v = json!({
        "id": format!("att{}", a.id), "type": "attachment", "status": "current", "title": a.title,
        "_links": {"download": download_link(a),
                   "webui": format!("/pages/viewpageattachments.action?pageId={}&preview=/{}/att{}/{}", a.page, a.page, a.id, a.title)},
    });
    if expand.contains("version") {
        v["version"] =
            json!({"number": a.version, "minorEdit": false, "when": "2026-01-05T09:00:00.000Z"});
    }
    if expand.contains("container") {
        v["container"] = json!({"id": page.id.to_string(), "type": "page", "status": "current", "title": page.title});
    }
    if expand.contains("extensions") {
        v["extensions"] =
            json!({"mediaType": a.media_type, "fileSize": a.content.len(), "comment": ""});
    }
    Some(v)
}

/// `GET wiki/api/v2/pages/{id}/attachments`: cursor-paged, v2's shape.
fn v2_attachments(
    s: &State,
    id: &str,
    query: &dyn Fn(&str) -> Option<String>,
    base: &str,
) -> Answer {
    let Some(page) = visible(s, id).filter(|p| p.status == PageStatus::Current) else {
        return error(404, true, "Not Found");
    };
    let all: Vec<Value> = s
        .attachments
        .values()
        .filter(|a| a.page == page.id)
        .map(|a| {
            json!({
                "id": format!("att{}", a.id), "status": "current", "title": a.title,
                "pageId": a.page.to_string(), "mediaType": a.media_type,
                "fileSize": a.content.len(), "fileId": format!("f{}", a.id),
                "version": {"number": a.version, "createdAt": "2026-01-05T09:00:00.000Z"},
                "downloadLink": download_link(a),
                "webuiLink": format!("/pages/viewpageattachments.action?pageId={}", a.page),
                "_links": {"download": download_link(a)},
            })
        })
        .collect();
    let offset = offset_of(query("cursor"));
    let limit = limit_of(s, query, 50);
    let (results, next) = window(&all, offset, limit);
    let next = next.map(|n| {
        format!(
            "/wiki/api/v2/pages/{id}/attachments?limit={limit}&cursor={}",
            cursor(n)
        )
    });
    let mut body = json!({"results": results, "_links": {"base": format!("{base}/wiki")}});
    if let Some(n) = &next {
        body["_links"]["next"] = json!(n);
    }
    with_next(respond(200, &body), next, base)
}

/// `GET download/attachments/{page}/{name}`: the file, when its page is visible.
fn download(s: &State, page: &str, name: &str) -> Answer {
    let found = page.parse::<u64>().ok().and_then(|page| {
        live_page(s, page)?;
        s.attachments
            .values()
            .find(|a| a.page == page && a.title == name)
    });
    match found {
        Some(a) => {
            let mut answer = Response::new(Full::new(Bytes::from(a.content.clone())));
            if let Ok(v) = HeaderValue::from_str(&a.media_type) {
                answer.headers_mut().insert(CONTENT_TYPE, v);
            }
            answer
        }
        None => html(404, "Not Found"),
    }
}

/// `GET rest/api/content/{id}/child/comment` or `…/child/attachment` (`kind`): every comment
/// or attachment of a page the account can see, in v1's shape.
fn v1_children(
    s: &State,
    id: &str,
    kind: &str,
    query: &dyn Fn(&str) -> Option<String>,
    base: &str,
) -> Answer {
    if visible(s, id).is_none_or(|p| p.status != PageStatus::Current) {
        return error(
            404,
            false,
            &format!("No content found with id: ContentId{{id={id}}}"),
        );
    }
    let expand = query("expand").unwrap_or_default();
    let all: Vec<Value> = if kind == "comment" {
        s.comments
            .values()
            .filter(|c| c.page.to_string() == id)
            .filter_map(|c| v1_comment_json(s, c, &expand))
            .collect()
    } else {
        s.attachments
            .values()
            .filter(|a| a.page.to_string() == id)
            .filter_map(|a| v1_attachment_json(s, a, &expand))
            .collect()
    };
    let start = query("start").and_then(|x| x.parse().ok()).unwrap_or(0);
    let limit = limit_of(s, query, 25);
    let (results, next) = window(&all, start, limit);
    let next = next.map(|n| {
        format!(
            "/rest/api/content/{id}/child/{kind}?expand={expand}&depth=all&limit={limit}&start={n}"
        )
    });
    respond(
        200,
        &json!({"results": results, "start": start, "limit": limit, "size": results.len(), "_links": v1_links(base, next)}),
    )
}

fn v1_content(s: &State, id: &str, base: &str, expand: &str) -> Answer {
    let comment = id.parse::<u64>().ok().and_then(|key| s.comments.get(&key));
    if let Some(json) = comment.and_then(|c| v1_comment_json(s, c, expand)) {
        return respond(200, &json);
    }
    // Without a `status` parameter v1 returns only current content.
    match visible(s, id).filter(|p| p.status == PageStatus::Current) {
        Some(p) => respond(200, &v1_content_json(s, p, base, expand, false)),
        None => error(
            404,
            false,
            &format!("No content found with id: ContentId{{id={id}}}"),
        ),
    }
}
