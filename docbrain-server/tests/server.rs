//! The server through a real listener on loopback and a real HTTP client.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::process::Command;
use std::sync::Arc;

use docbrain_core::testsuite::LetterEmbedder;
use docbrain_core::{MemoryStore, Page, PageStatus, Pipeline};
use docbrain_server::{serve, AppState};
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

#[tokio::test]
async fn health_readiness_and_search_over_a_real_listener() {
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

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        AppState {
            pipeline,
            webhook: None,
            metrics: Default::default(),
        },
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();

    let r = get("/healthz").await.unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(
        (r["status"].as_str(), r["pages"].as_u64()),
        (Some("ready"), Some(2))
    );

    let r = get("/search?q=how+do+I+roll+back%3F&k=1").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let hits = body["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["page_id"], "1");
    assert_eq!(
        hits[0]["heading_path"],
        serde_json::json!(["Deploys", "Rollback"])
    );

    let body: Value = get("/search?q=paged&space=OPS")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["space_key"] == "OPS"));

    let r = get("/search").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "missing query parameter q"
    );
    assert_eq!(get("/search?q=x&k=0").await.unwrap().status(), 400);
    assert_eq!(get("/search?q=x&k=abc").await.unwrap().status(), 400);
    assert_eq!(
        client
            .put(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(get("/nope").await.unwrap().status(), 404);
    let r = client
        .post(format!("{base}/confluence/events"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        get("/healthz").await.is_err(),
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
