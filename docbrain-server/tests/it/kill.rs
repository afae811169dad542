//! The `docbrain-server` binary as a process: killed with SIGKILL mid-stream and restarted
//! (every acknowledged event still reaches the index), short of file descriptors, and logging
//! hostile titles. Uses the real local model (`scripts/fetch-model.sh`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Simulator, PAT};
use docbrain_confluence::webhook::{self, BodyShape, PageEvent, PageRef};
use docbrain_core::{IndexStore, PageId};
use docbrain_index::EmbeddedStore;
use docbrain_testsuite::until;

const SECRET: &str = "kill-test-secret";

use crate::support;

use support::Log;

/// Starts the server against the simulator (Data Center, space ENG), optionally with at most
/// `fds` open file descriptors; returns it with its base URL.
fn spawn_server_with(
    sim: &Simulator,
    data: &Path,
    stderr: Stdio,
    fds: Option<u32>,
) -> (support::Running, String) {
    let mut cmd = support::command(fds);
    cmd.env("DOCBRAIN_DATA_DIR", data)
        .env("CONFLUENCE_WEBHOOK_SECRET", SECRET)
        .env("CONFLUENCE_BASE_URL", sim.base_url_v1())
        .env("CONFLUENCE_API_VERSION", "v1")
        .env("CONFLUENCE_API_TOKEN", PAT)
        .env("CONFLUENCE_SPACE_KEYS", "ENG")
        .env("CONFLUENCE_ANONYMOUS_ACCESS", "true")
        .env("WEBHOOK_DEBOUNCE_MS", "50")
        .env("LOG_LEVEL", "info")
        .stderr(stderr);
    support::spawn(cmd)
}

fn spawn_server(sim: &Simulator, data: &Path) -> (support::Running, String) {
    spawn_server_with(sim, data, Stdio::null(), None)
}

async fn wait_healthy(base: &str) {
    until(Duration::from_secs(60), "the server started", || async {
        reqwest::get(format!("{base}/healthz")).await.is_ok()
    })
    .await;
}

async fn queue_depth(base: &str) -> Option<u64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("docbrain_webhook_queue_depth "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_stream_loses_no_acknowledged_event() {
    let sim = Simulator::start().await.unwrap();
    let ids: Vec<PageId> = (0..12)
        .map(|i| {
            sim.create_page(
                "ENG",
                &format!("Service {i} runbook"),
                &format!(
                    "<h2>Restart</h2><p>Restart service {i} with systemctl restart svc{i}.</p>"
                ),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, base) = spawn_server(&sim, &data);
    let url = format!("{base}/confluence/events");
    wait_healthy(&base).await;
    for (i, id) in ids.iter().enumerate() {
        sim.edit_page(
            id,
            &format!("<h2>Restart</h2><p>Edited: restart service {i} with the deploy tool.</p>"),
        );
        let status = sim
            .send_webhook(
                &url,
                Some(SECRET),
                PageEvent::Updated,
                id,
                BodyShape::DataCenter,
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    // Every event is acknowledged; the last ones are still waiting or being embedded. SIGKILL.
    server.kill().unwrap();
    server.wait().unwrap();
    let done_before_kill = EmbeddedStore::open(&data)
        .unwrap()
        .list_pages()
        .await
        .unwrap()
        .iter()
        .filter(|p| p.version == 2)
        .count();
    assert!(
        done_before_kill < ids.len(),
        "the kill came after every page was done"
    );

    let (mut server, base) = spawn_server(&sim, &data);
    wait_healthy(&base).await;
    until(Duration::from_secs(180), "the journal drained", || async {
        queue_depth(&base).await == Some(0)
    })
    .await;
    // SIGTERM: a graceful stop.
    Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");

    let store = EmbeddedStore::open(&data).unwrap();
    assert_eq!(
        docbrain_testsuite::indexed_versions(&store).await,
        sim.versions(None),
        "the index equals Confluence: nothing lost, nothing stale"
    );
}

#[tokio::test]
async fn a_title_with_a_newline_cannot_forge_a_log_line() {
    let sim = Simulator::start().await.unwrap();
    let id = sim.create_page("ENG", "Innocent", "<p>Body.</p>");
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) =
        spawn_server_with(&sim, &dir.path().join("data"), Stdio::piped(), None);
    let log = Log::capture(&mut server);
    let forged = "x\n2026-12-02T00:00:00.000000Z  INFO FORGED: admin password reset";
    let body = webhook::body(
        PageEvent::Updated,
        &PageRef {
            id: id.clone(),
            title: Some(forged.into()),
            space_key: Some("ENG".into()),
            version: Some(1),
        },
        BodyShape::DataCenterFull,
        1,
    );
    let status = reqwest::Client::new()
        .post(format!("{base}/confluence/events"))
        .header(
            "x-hub-signature",
            webhook::sign(SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    log.wait_for("Processing", Duration::from_secs(30)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let lines = log.finish();
    let processing = lines.iter().find(|l| l.contains("Processing")).unwrap();
    assert!(processing.contains("x\\n2026-12-02"), "{processing}");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("2026-12-02T00:00:00.000000Z")),
        "a forged line: {lines:?}"
    );
}

#[tokio::test]
async fn running_out_of_file_descriptors_backs_off_and_recovers() {
    let sim = Simulator::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) =
        spawn_server_with(&sim, &dir.path().join("data"), Stdio::piped(), Some(64));
    let log = Log::capture(&mut server);
    wait_healthy(&base).await;
    // Far more connections than descriptors: accepts fail with EMFILE while they are open.
    let addr = base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..120 {
        if let Ok(Ok(c)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        {
            held.push(c);
        }
    }
    log.wait_for("accept failed", Duration::from_secs(20)).await;
    let first = Instant::now();
    // The failures go on while the connections are held; the next warning comes only after the
    // rate limit (the old loop spun and logged millions within two seconds).
    until(
        Duration::from_secs(20),
        "a second accept warning",
        || async {
            log.lines()
                .iter()
                .filter(|l| l.contains("accept failed"))
                .count()
                >= 2
        },
    )
    .await;
    let gap = first.elapsed();
    assert!(
        gap >= Duration::from_secs(4),
        "a second accept warning after {gap:?}"
    );
    let second = log
        .lines()
        .into_iter()
        .filter(|l| l.contains("accept failed"))
        .nth(1)
        .unwrap();
    let suppressed: u64 = second
        .split("failures=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failure count in {second}"));
    assert!(
        suppressed > 1,
        "the failures between warnings are counted: {second}"
    );
    drop(held);
    // Descriptors return: the server answers again.
    until(Duration::from_secs(30), "the server recovered", || async {
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    server.kill().unwrap();
    server.wait().unwrap();
    log.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_server_crawls_an_empty_index_at_once() {
    let sim = Simulator::start().await.unwrap();
    sim.create_page(
        "ENG",
        "Kafka runbook",
        "<p>Rebalance the partitions with cruise control.</p>",
    );
    let data = tempfile::tempdir().unwrap();
    let mut cmd = support::command(None);
    cmd.env("DOCBRAIN_DATA_DIR", data.path())
        .env("CONFLUENCE_BASE_URL", sim.base_url_v1())
        .env("CONFLUENCE_API_VERSION", "v1")
        .env("CONFLUENCE_API_TOKEN", PAT)
        .env("CONFLUENCE_SPACE_KEYS", "ENG")
        .env("CONFLUENCE_ANONYMOUS_ACCESS", "true")
        .env("INGEST_SCHEDULE", "1h")
        .env("LOG_LEVEL", "info")
        .stderr(Stdio::piped());
    let (mut child, base) = support::spawn(cmd);
    let log = Log::capture(&mut child);
    log.wait_for("the first crawl starts now", Duration::from_secs(10))
        .await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("{base}{path}"));
        async move {
            let answer = request.send().await.unwrap();
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };
    // Searchable long before the hour the schedule names.
    until(
        Duration::from_secs(60),
        "a hit for cruise control",
        || async {
            let body = get("/search?q=cruise+control").await;
            body["hits"].as_array().is_some_and(|h| !h.is_empty())
        },
    )
    .await;
    // The crawl may have just written its last page; the flag clears when it completes.
    until(Duration::from_secs(30), "the first crawl done", || async {
        get("/readyz").await.get("first_crawl").is_none()
    })
    .await;
    assert_eq!(get("/readyz").await["status"], "ready");
    child.kill().unwrap();
    child.wait().unwrap();
}
