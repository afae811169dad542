//! The HTTP routes.

use bytes::Bytes;
use docbrain_core::SearchFilter;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use tracing::warn;

use crate::AppState;

/// The response type of every route.
pub type Response = hyper::Response<Full<Bytes>>;

/// The most hits one search may ask for.
const MAX_K: usize = 100;

fn json_response(status: StatusCode, body: &Value) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

/// Decodes `%XX` and `+` in a query-string component.
fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| decode(k) == name)
        .map(|(_, v)| decode(v))
}

/// Routes one request.
pub async fn router(state: &AppState, req: Request<Incoming>) -> Response {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        (&Method::GET, "/readyz") => match state.pipeline.store().stats().await {
            Ok(stats) => json_response(
                StatusCode::OK,
                &json!({ "status": "ready", "pages": stats.pages, "chunks": stats.chunks }),
            ),
            Err(e) => {
                warn!(error = %e, "index not reachable");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("index not reachable: {e}"),
                )
            }
        },
        (&Method::GET, "/search") => search(state, req.uri().query()).await,
        (_, "/confluence/events") => error(
            StatusCode::NOT_FOUND,
            "the Confluence webhook is not available in this build",
        ),
        (_, "/healthz" | "/readyz" | "/search") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn search(state: &AppState, query: Option<&str>) -> Response {
    let Some(q) = query_param(query, "q").filter(|q| !q.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing query parameter q");
    };
    let k = match query_param(query, "k") {
        None => 5,
        Some(k) => match k.parse::<usize>() {
            Ok(k) if (1..=MAX_K).contains(&k) => k,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("k must be a number from 1 to {MAX_K}"),
                )
            }
        },
    };
    let filter = SearchFilter {
        space_key: query_param(query, "space").filter(|s| !s.is_empty()),
    };
    match state.pipeline.search(&q, k, &filter).await {
        Ok(hits) => json_response(StatusCode::OK, &json!({ "hits": hits })),
        Err(e) => {
            warn!(error = %e, "search failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("search failed: {e}"),
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
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
    }
}
