//! The MCP front door against a real client: the official Python SDK (PyPI `mcp`, run by
//! `tests/mcp_client.py`) over stdio (`docbrain mcp`) and Streamable HTTP (`/mcp` of the
//! `docbrain-server` binary), on the sample space's index and on a Confluence simulator with
//! restricted pages, while the webhook keeps updating pages. Uses the real local model.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use docbrain_confluence::simulator::{Grants, Simulator, PAT};
use docbrain_confluence::webhook::{BodyShape, PageEvent};
use docbrain_server::Settings;
use docbrain_testsuite::Running;
use serde_json::json;

use crate::support;

const SECRET: &str = "mcp-webhook-secret";

/// Builds the index `vars` describe, as `docbrain ingest` would.
async fn ingest(vars: &[(&str, String)]) {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok().filter(|_| name == "MODEL_DIR"))
    };
    let settings = Settings::from_lookup(lookup).unwrap();
    let pipeline = settings.pipeline().await.unwrap();
    let report = pipeline.sync(&settings.scope()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

fn python() -> String {
    std::env::var("DOCBRAIN_MCP_PYTHON").unwrap_or_else(|_| {
        panic!("DOCBRAIN_MCP_PYTHON is not set: scripts/test.sh installs the Python MCP SDK into .cache/mcp-venv and sets it")
    })
}

/// The `docbrain` binary beside the server's (both are built by `cargo test --workspace`).
fn cli_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_docbrain-server")).with_file_name("docbrain");
    assert!(
        path.exists(),
        "{} is missing: build it with cargo build -p docbrain-cli",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python MCP SDK (DOCBRAIN_MCP_PYTHON) and the local model: scripts/test.sh sets them up"]
async fn the_python_sdk_uses_every_tool_over_both_transports() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-space");
    ingest(&[
        ("LOCAL_DOCS_PATH", docs.display().to_string()),
        ("DOCBRAIN_DATA_DIR", sample.display().to_string()),
        // In this test binary, which is no attachment extractor: the pages only.
        ("ATTACHMENTS", "off".to_owned()),
    ])
    .await;
    let mut open = support::command(None);
    open.env("DOCBRAIN_DATA_DIR", &sample)
        .env("SEARCH_API_KEYS", "key-a-0123456789abcdef0123456789abcdef");
    let (mut open, open_base) = support::spawn(open);

    // A Data Center site with a restricted page, and pages the webhook keeps changing.
    let sim = Simulator::start().await.unwrap();
    sim.add_user("ann", &["staff"]);
    sim.add_user("bob", &["staff", "hr"]);
    sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
    sim.create_page(
        "ENG",
        "Deploy runbook",
        "<p>Shift notes: deploy at ten.</p>",
    );
    let salary = sim.create_page(
        "ENG",
        "Salary bands",
        "<p>Salary bands and shift notes for HR.</p>",
    );
    sim.restrict_page(&salary, Some(Grants::only(&[], &["hr"])));
    // Comments carry their page's rule: an outsider sees neither the page nor its comment.
    let comment = sim.add_comment(
        &salary,
        "Hana",
        "<p>Shift notes: the pay committee meets in October.</p>",
    );
    let shifts: Vec<_> = (0..6)
        .map(|i| {
            sim.create_page(
                "ENG",
                &format!("Shift notes {i}"),
                &format!("<p>Shift notes for week {i}: handover and pager rotation.</p>"),
            )
        })
        .collect();
    let site = dir.path().join("site");
    let confluence = [
        ("SOURCE_TYPE", "confluence".to_owned()),
        ("CONFLUENCE_BASE_URL", sim.base_url_v1()),
        ("CONFLUENCE_API_VERSION", "v1".to_owned()),
        ("CONFLUENCE_API_TOKEN", PAT.to_owned()),
        ("CONFLUENCE_ANONYMOUS_ACCESS", "true".to_owned()),
        ("DOCBRAIN_DATA_DIR", site.display().to_string()),
    ];
    ingest(&confluence).await;
    let mut perm = support::command(None);
    for (k, v) in &confluence {
        perm.env(k, v);
    }
    perm.env("CONFLUENCE_WEBHOOK_SECRET", SECRET)
        .env("WEBHOOK_DEBOUNCE_MS", "50")
        .env("SEARCH_API_KEYS", "key-b-0123456789abcdef0123456789abcdef");
    let (mut perm, perm_base) = support::spawn(perm);

    let mut env = serde_json::Map::new();
    env.insert(
        "DOCBRAIN_DATA_DIR".into(),
        json!(sample.display().to_string()),
    );
    env.insert("LOG_LEVEL".into(), json!("warn"));
    for var in ["MODEL_DIR", "HOME", "PATH"] {
        if let Ok(v) = std::env::var(var) {
            env.insert(var.into(), json!(v));
        }
    }
    let config = json!({
        "stdio": {"command": cli_binary(), "args": ["mcp"], "env": env},
        "open": {"url": format!("{open_base}/mcp"), "key": "key-a-0123456789abcdef0123456789abcdef"},
        "perm": {
            "url": format!("{perm_base}/mcp"), "key": "key-b-0123456789abcdef0123456789abcdef",
            "member": "bob", "outsider": "ann", "outsider_pages": 7,
            "restricted_title": "Salary bands", "restricted_id": salary.to_string(),
            "restricted_comment_id": comment.to_string(), "restricted_comment": "pay committee",
            "query": "salary bands shift notes",
            "load": {"sessions": 20, "calls": 10, "query": "shift notes handover"},
        },
    });
    let config_path = dir.path().join("mcp.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    // While the client runs, pages keep changing through the webhook.
    let stop = Arc::new(AtomicBool::new(false));
    let edits = Arc::new(AtomicUsize::new(0));
    let editor = {
        let (stop, edits) = (stop.clone(), edits.clone());
        let url = format!("{perm_base}/confluence/events");
        let sim = Arc::new(sim);
        let sim2 = sim.clone();
        let task = tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let id = &shifts[n % shifts.len()];
                sim.edit_page(
                    id,
                    &format!("<p>Shift notes, edit {n}: handover and pager rotation.</p>"),
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
                edits.fetch_add(1, Ordering::SeqCst);
                n += 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        (task, sim2)
    };

    let output = tokio::task::spawn_blocking(move || {
        let mut child = Running::spawn(
            Command::new(python)
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py"))
                .arg(&config_path)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .unwrap();
        let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .collect();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (child.wait().unwrap(), lines, stderr)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    editor.0.await.unwrap();
    let (status, lines, stderr) = output;
    assert!(
        status.success(),
        "the Python client failed:\n{}\n{stderr}",
        lines.join("\n")
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("mcp_client: ") && l.ends_with(" checks passed")),
        "{lines:?}"
    );
    assert!(
        edits.load(Ordering::SeqCst) >= 5,
        "pages changed while the sessions ran: {} edits",
        edits.load(Ordering::SeqCst)
    );
    drop(editor.1);
    for child in [&mut open, &mut perm] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
