//! The routes called in-process, and once through a real listener on loopback.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
#![allow(clippy::disallowed_methods)] // a test client reading answers it asked for on loopback

use std::process::Command;
use std::sync::Arc;

use docbrain_core::testsuite::LetterEmbedder;
use docbrain_core::{MemoryStore, Page, PageStatus, Pipeline};
use docbrain_server::{router, serve, AppState};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn page(id: &str, space: &str, title: &str, body: &str) -> Page {
    Page {
        id: id.into(),
        space_key: space.into(),
        title: title.into(),
        version: 1,
        status: PageStatus::Current,
        url: Some(format!("https://wiki.example.com/pages/{id}")),
        ancestors: vec![],
        labels: vec![],
        body: body.into(),
    }
}

/// A search-only state over two pages in two spaces.
async fn two_pages() -> AppState {
    let pipeline = Pipeline::searcher(
        Arc::new(LetterEmbedder::default()),
        Arc::new(MemoryStore::new()),
    )
    .await
    .unwrap();
    pipeline
        .upsert(page(
            "1",
            "ENG",
            "Deploys",
            "## Rollback\n\nRun deploy rollback to return to the previous release.",
        ))
        .await
        .unwrap();
    pipeline
        .upsert(page(
            "2",
            "OPS",
            "Pager",
            "## Escalation\n\nThe secondary is paged after five minutes.",
        ))
        .await
        .unwrap();

    AppState {
        pipeline,
        webhook: None,
        metrics: Default::default(),
    }
}

/// Calls the router in-process: no socket.
async fn call(state: &AppState, method: Method, path: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = router(state, request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn health_readiness_and_search_in_process() {
    let state = two_pages().await;
    let get = |path: &'static str| call(&state, Method::GET, path);

    assert_eq!(get("/healthz").await.0, 200);
    let (_, r) = get("/readyz").await;
    assert_eq!(
        (r["status"].as_str(), r["pages"].as_u64()),
        (Some("ready"), Some(2))
    );

    let (status, body) = get("/search?q=how+do+I+roll+back%3F&k=1").await;
    assert_eq!(status, 200);
    let hits = body["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["page_id"], "1");
    assert_eq!(
        hits[0]["heading_path"],
        serde_json::json!(["Deploys", "Rollback"])
    );

    let (_, body) = get("/search?q=paged&space=OPS").await;
    let hits = body["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{body}");
    assert!(hits.iter().all(|h| h["space_key"] == "OPS"), "{body}");

    let (status, body) = get("/search").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "missing query parameter q");
    assert_eq!(get("/search?q=x&k=0").await.0, 400);
    assert_eq!(get("/search?q=x&k=abc").await.0, 400);
    assert_eq!(call(&state, Method::PUT, "/healthz").await.0, 405);
    assert_eq!(get("/nope").await.0, 404);
    assert_eq!(
        call(&state, Method::POST, "/confluence/events").await.0,
        404,
        "the webhook is off without its secret"
    );
}

#[tokio::test]
async fn a_real_listener_serves_and_shuts_down() {
    let state = two_pages().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/search?q=rollback"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(!body["hits"].as_array().unwrap().is_empty(), "{body}");

    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[test]
fn a_webhook_secret_without_confluence_settings_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_docbrain-server"))
        .env_clear()
        .env("CONFLUENCE_WEBHOOK_SECRET", "s3cret-value")
        .env("CONFLUENCE_BASE_URL", "https://example.atlassian.net/wiki")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: CONFLUENCE_WEBHOOK_SECRET set but missing CONFLUENCE_BASE_URL/API_TOKEN"
    );
    assert!(!err.contains("s3cret-value"));
}
