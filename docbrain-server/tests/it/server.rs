//! The routes called in-process, and once through a real listener on loopback.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use docbrain_core::{MemoryStore, Page, Pipeline, Secret};
use docbrain_index::EmbeddedStore;
use docbrain_server::{router, serve, AppState, Metrics, SearchGate};
use docbrain_server::{SearchSettings, ServerSettings};
use docbrain_testsuite::until;
use docbrain_testsuite::LetterEmbedder;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

fn page(id: &str, space: &str, title: &str, body: &str) -> Page {
    Page {
        url: Some(format!("https://wiki.example.com/pages/{id}")),
        ..Page::new(id, space, title, body)
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

    AppState::new(pipeline, None, Default::default(), Default::default())
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
    assert_eq!(r["status"], "ready", "{r}");
    assert!(
        r.get("pages").is_none() && r.get("chunks").is_none(),
        "readiness shows no counts of the index to anyone: {r}"
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
    assert_eq!(
        body["error"],
        "the question is empty: pass it as q=<question>"
    );
    assert_eq!(get("/search?q=+").await.0, 400);
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

/// Calls the router in-process with `headers`.
async fn call_with(state: &AppState, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router(state, request.body(Full::new(Bytes::new())).unwrap()).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

const KEY: &str = "gateway-key-0123456789abcdef0123456789";

/// [`two_pages`] behind a gate with a gateway key, open to anonymous callers or not.
async fn gated(open: bool) -> AppState {
    let state = two_pages().await;
    let gate = SearchGate::new(
        &SearchSettings {
            api_keys: vec![Secret::new(KEY)],
            allow_anonymous: open,
            ..SearchSettings::default()
        },
        "0.0.0.0",
    )
    .unwrap();
    AppState::new(state.pipeline, None, Default::default(), gate)
}

#[tokio::test]
async fn a_keyless_server_answers_only_requests_for_localhost_and_names_no_one() {
    let state = two_pages().await;
    let search = "/search?q=rollback";
    for host in ["localhost:3000", "127.0.0.1:3000", "[::1]:3000"] {
        let (status, body) = call_with(&state, search, &[("host", host)]).await;
        assert_eq!(status, 200, "{host}: {body}");
        assert!(!body["hits"].as_array().unwrap().is_empty(), "{body}");
    }
    // A web page that rebinds its own name to 127.0.0.1 names itself in Host, or in Origin.
    for headers in [
        &[("host", "attacker.example:3000")][..],
        &[
            ("host", "localhost:3000"),
            ("origin", "http://attacker.example"),
        ][..],
    ] {
        for path in [
            search,
            "/search?q=rollback&as=victim",
            "/mcp",
            "/readyz",
            "/metrics",
        ] {
            let (status, body) = call_with(&state, path, headers).await;
            assert_eq!(status, 403, "{path} {headers:?}: {body}");
            assert!(!body.to_string().contains("Deploys"), "{body}");
        }
    }
    // Without a key nobody can be named.
    let (status, body) = call_with(
        &state,
        "/search?q=rollback&as=victim",
        &[("host", "localhost")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("needs a key"),
        "{body}"
    );
}

#[tokio::test]
async fn an_open_index_is_anonymous_without_a_key_and_as_needs_one() {
    let state = gated(true).await;
    let bearer = format!("Bearer {KEY}");
    let (status, body) = call_with(&state, "/search?q=rollback", &[]).await;
    assert_eq!(status, 200, "{body}");
    for path in ["/search?q=rollback&as=bob", "/mcp?as=bob"] {
        let (status, body) = call_with(&state, path, &[]).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (status, _) = call_with(
        &state,
        "/search?q=rollback&as=bob",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200);
    // A wrong key is refused rather than read as anonymous.
    let (status, _) = call_with(
        &state,
        "/search?q=rollback",
        &[("authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_repeated_as_is_refused_so_a_gateway_cannot_be_overridden() {
    let state = gated(false).await;
    let bearer = format!("Bearer {KEY}");
    let (status, body) = call_with(
        &state,
        "/search?q=rollback&as=carol&as=bob",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("more than once"),
        "{body}"
    );
    let (status, _) = call_with(&state, "/search?q=rollback", &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn refused_credentials_make_the_server_unready_saying_so() {
    use docbrain_confluence::simulator::Simulator;
    use docbrain_confluence::ConfluenceSettings;
    use docbrain_confluence::{ApiVersion, ConfluenceClient};
    let sim = Simulator::start().await.unwrap();
    let site = ConfluenceSettings::new(sim.base_url_v1(), ApiVersion::V1, Secret::new("wrong-pat"));
    let pipeline = Pipeline::new(
        Arc::new(ConfluenceClient::new(site).unwrap()),
        Arc::new(docbrain_core::MarkdownChunker::default()),
        Arc::new(LetterEmbedder::default()),
        Arc::new(MemoryStore::new()),
    )
    .await
    .unwrap();
    // What the server does at start: one cheap call.
    assert!(pipeline.fetcher().check().await.is_err());
    let state = AppState::new(pipeline, None, Default::default(), Default::default());
    let (status, body) = call_with(&state, "/readyz", &[("host", "localhost")]).await;
    assert_eq!(status, 503, "{body}");
    let text = body.to_string();
    assert!(text.contains("refuses the account (HTTP 401)"), "{text}");
    assert!(!text.contains("wrong-pat"), "{text}");
}

#[tokio::test]
async fn a_failing_index_answers_500_without_its_internals() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let pipeline = Pipeline::searcher(Arc::new(LetterEmbedder::default()), Arc::new(store))
        .await
        .unwrap();
    pipeline
        .upsert(page("1", "ENG", "Deploys", "Run deploy rollback."))
        .await
        .unwrap();
    // Another process breaks the file under the server.
    let db = dir.path().join(EmbeddedStore::FILE_NAME);
    rusqlite_break(&db);
    let state = AppState::new(pipeline, None, Default::default(), Default::default());
    let (status, body) = call_with(&state, "/search?q=rollback", &[]).await;
    assert_eq!(status, 500, "{body}");
    let text = body.to_string();
    assert!(text.contains("server log"), "{text}");
    for internal in ["chunks", "sqlite", "table", dir.path().to_str().unwrap()] {
        assert!(
            !text.to_lowercase().contains(internal),
            "{internal} in {text}"
        );
    }
}

/// Drops the chunk tables of the SQLite file at `db` from a second connection.
fn rusqlite_break(db: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("DROP TABLE chunks_fts; DROP TABLE chunks;")
        .unwrap();
}

#[tokio::test]
async fn a_real_listener_serves_and_shuts_down() {
    let state = two_pages().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, ServerSettings::default(), async {
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
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "the listener is closed after shutdown"
    );
}

/// Serves a search-only state with `limits` on a port of its own; returns the address and the
/// metrics (the server stops when the test's runtime ends).
async fn listening(limits: ServerSettings) -> (std::net::SocketAddr, Arc<Metrics>) {
    let state = two_pages().await;
    let metrics = state.metrics.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state, limits, std::future::pending()));
    (addr, metrics)
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .expect("the server kept the connection open")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let limits = ServerSettings {
        header_timeout: Duration::from_millis(500),
        ..ServerSettings::default()
    };
    let (addr, metrics) = listening(limits).await;
    // Headers that never end (no secret needed to hold a connection this way).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /confluence/events HTTP/1.1\r\nHost: localhost\r\nContent-Le")
        .await
        .unwrap();
    // A connection that says nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A keep-alive connection left idle after one answer.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for stream in [&mut slow, &mut silent] {
        until_closed(stream, Duration::from_secs(5)).await;
    }
    let answered = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed only after the timeout"
    );
    until(Duration::from_secs(10), "no open connection", || async {
        metrics.open_connections.load(Ordering::Relaxed) == 0
    })
    .await;
}

#[tokio::test]
async fn connections_over_the_cap_get_503_until_one_closes() {
    let limits = ServerSettings {
        max_connections: 2,
        ..ServerSettings::default()
    };
    let (addr, metrics) = listening(limits).await;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    until(Duration::from_secs(10), "two open connections", || async {
        metrics.open_connections.load(Ordering::Relaxed) == 2
    })
    .await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let answer = until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    assert_eq!(metrics.connections_refused.load(Ordering::Relaxed), 1);
    drop(first);
    until(Duration::from_secs(10), "a free slot", || async {
        metrics.open_connections.load(Ordering::Relaxed) == 1
    })
    .await;
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut fourth, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
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
        "error: CONFLUENCE_WEBHOOK_SECRET set but CONFLUENCE_API_TOKEN not set: the webhook fetches each page it is told about from Confluence"
    );
    assert!(!err.contains("s3cret-value"));
}
