//! End-to-end tests of the `docbrain` binary on the sample space, with the real local model.
//! Run `scripts/fetch-model.sh` first (the README's test command does).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use docbrain_core::IndexStore;
use docbrain_index::EmbeddedStore;
use docbrain_testsuite::Running;
use serde_json::Value;

fn sample_space() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-space")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the sample space and an empty data folder.
struct Workspace {
    _dir: tempfile::TempDir,
    docs: PathBuf,
    data: PathBuf,
    env: Vec<(String, String)>,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("space");
        copy_dir(&sample_space(), &docs);
        let data = dir.path().join("data");
        Self {
            _dir: dir,
            docs,
            data,
            env: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_docbrain"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCBRAIN_DATA_DIR", &self.data)
            .env("LOCAL_DOCS_PATH", &self.docs)
            .env("LOG_LEVEL", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        for var in ["MODEL_DIR", "HOME", "XDG_CACHE_HOME"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ingest(&self) -> Value {
        let out = self.run(&["ingest", "--json"]);
        assert!(
            out.status.success(),
            "ingest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_json(&out)
    }

    fn top_page(&self, question: &str) -> String {
        let out = self.run(&["search", question, "--json", "-k", "3"]);
        assert!(
            out.status.success(),
            "search failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = last_json(&out);
        v["hits"][0]["page_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {stdout}"))
}

#[test]
fn ingest_search_edit_and_delete() {
    ingest_search_edit_and_delete_in(&Workspace::new());
}

/// The same journey with the index in a real OpenSearch node (`scripts/opensearch.sh start`).
#[test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
fn ingest_search_edit_and_delete_on_opensearch() {
    let url = std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into());
    let index = format!("docbrain-test-cli-{}", std::process::id());
    let mut ws = Workspace::new();
    ws.env = vec![
        ("INDEX_STORE".into(), "opensearch".into()),
        ("OPENSEARCH_URL".into(), url.clone()),
        ("OPENSEARCH_INDEX".into(), index.clone()),
    ];
    ingest_search_edit_and_delete_in(&ws);
    assert!(
        !ws.data.join(EmbeddedStore::FILE_NAME).exists(),
        "nothing was written to the embedded store"
    );
    let status = last_json(&ws.run(&["status", "--json"]));
    assert_eq!(status["index"], format!("{url}/{index} (OpenSearch)"));
    let out = Command::new("curl")
        .args(["-fsS", "-XDELETE", &format!("{url}/{index},{index}-pages")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ingest_search_edit_and_delete_in(ws: &Workspace) {
    let first = ws.ingest();
    // 20 pages, a PDF and a DOCX.
    assert_eq!(first["pages_seen"], 22);
    assert_eq!(first["pages_updated"], 22);
    let chunks = first["index_chunks"].as_u64().unwrap();
    assert!(chunks >= 40, "{first}");
    assert_eq!(first["chunks_embedded"].as_u64(), Some(chunks));

    for (question, page) in [
        (
            "how do I restart the payments service?",
            "runbooks/payments-service-restart.md",
        ),
        (
            "promote a postgres replica to primary",
            "runbooks/database-failover.md",
        ),
        (
            "what severity is a full outage of checkout",
            "incidents/incident-response.md",
        ),
        ("roll back a bad release", "release/deploy-process.md"),
        // Answers found only inside the sample space's PDF and DOCX.
        (
            "how often does the disaster recovery drill run?",
            "runbooks/disaster-recovery-drill.pdf",
        ),
        (
            "what stipend do on-call engineers get?",
            "onboarding/on-call-handbook.docx",
        ),
        (
            "who gets paged when the primary does not acknowledge",
            "incidents/paging-and-escalation.md",
        ),
    ] {
        assert_eq!(ws.top_page(question), page, "question: {question}");
    }

    let second = ws.ingest();
    assert_eq!(
        (
            second["pages_unchanged"].as_u64(),
            second["chunks_embedded"].as_u64()
        ),
        (Some(22), Some(0))
    );

    let page = ws.docs.join("runbooks/payments-service-restart.md");
    let text = std::fs::read_to_string(&page).unwrap();
    let edited = text.replace(
        "Announce the restart in `#incidents` with the reason.",
        "Announce the restart in `#payments-oncall` and `#incidents` with the reason and the ticket.",
    );
    assert_ne!(text, edited);
    std::fs::write(&page, edited).unwrap();
    let third = ws.ingest();
    assert_eq!(third["pages_updated"], 1, "{third}");
    let embedded = third["chunks_embedded"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&embedded),
        "an edited paragraph re-embedded {embedded} chunks"
    );
    assert_eq!(
        ws.top_page("which channel do I announce a payments restart in"),
        "runbooks/payments-service-restart.md"
    );

    std::fs::remove_file(ws.docs.join("runbooks/disk-full.md")).unwrap();
    let fourth = ws.ingest();
    assert_eq!(fourth["pages_deleted"], 1, "{fourth}");
    assert_eq!(fourth["index_pages"], 21);
    assert_ne!(
        ws.top_page("journalctl vacuum log hosts disk full"),
        "runbooks/disk-full.md"
    );

    let status = ws.run(&["status", "--json"]);
    let status = last_json(&status);
    assert_eq!(status["pages"], 21);
    assert_eq!(status["model_id"], "sentence-transformers/all-MiniLM-L6-v2");
    assert_eq!(status["dimension"], 384);
    assert!(status["last_sync"].as_str().unwrap().ends_with("UTC"));
}

#[test]
fn an_ingest_killed_midway_leaves_a_consistent_index_that_the_next_run_completes() {
    let ws = Workspace::new();
    let mut child = Running::spawn(
        ws.command(&["ingest"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut updated = 0;
    for line in stderr.lines() {
        if line.unwrap().contains("Updated page") {
            updated += 1;
            if updated == 3 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(updated, 3, "ingest ended before it could be killed");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let consistent = |expect_all: bool| {
        runtime.block_on(async {
            let store = EmbeddedStore::open(&ws.data).unwrap();
            let pages = store.list_pages().await.unwrap();
            let counts = store.chunk_counts().await.unwrap();
            for p in &pages {
                assert_eq!(
                    counts.get(&p.id).copied().unwrap_or(0),
                    u64::from(p.chunk_count),
                    "page {} is half-written",
                    p.id
                );
            }
            assert_eq!(counts.len(), pages.len(), "chunks without a page");
            if expect_all {
                assert_eq!(pages.len(), 22);
            } else {
                assert!(
                    (3..16).contains(&pages.len()),
                    "{} pages after the kill",
                    pages.len()
                );
            }
        });
    };
    consistent(false);
    let resumed = ws.ingest();
    assert_eq!(resumed["pages_seen"], 22);
    assert!(
        resumed["pages_unchanged"].as_u64().unwrap() >= 3,
        "{resumed}"
    );
    consistent(true);
    assert_eq!(ws.ingest()["chunks_embedded"], 0);
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn wrong_settings_are_one_line_naming_the_variable() {
    let ws = Workspace::new();
    let out = ws
        .command(&["ingest"])
        .env_remove("LOCAL_DOCS_PATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: LOCAL_DOCS_PATH is not set"),
        "{err}"
    );

    let out = ws
        .command(&["ingest"])
        .env("LOCAL_DOCS_PATH", "/nonexistent/docs")
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("LOCAL_DOCS_PATH /nonexistent/docs is not a readable folder"),
        "{}",
        stderr_of(&out)
    );

    let out = ws
        .command(&["ingest"])
        .env("EMBED_PROVIDER", "bedrock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).starts_with(
            "error: EMBED_PROVIDER=bedrock is not a provider: use local, openai or ollama"
        ),
        "{}",
        stderr_of(&out)
    );

    let out = ws
        .command(&["ingest"])
        .env("MODEL_DIR", "/nonexistent/model")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(
        err.contains("model.safetensors is missing") && err.contains("scripts/fetch-model.sh"),
        "{err}"
    );

    let out = ws
        .command(&["ingest"])
        .env("SOURCE_TYPE", "confluence")
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).starts_with("error: CONFLUENCE_BASE_URL is not set"),
        "{}",
        stderr_of(&out)
    );

    let out = ws
        .command(&["ingest"])
        .env("EMBED_MODEL_ID", "text-embedding-3-small")
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("EMBED_MODEL_ID=text-embedding-3-small cannot run locally"),
        "{}",
        stderr_of(&out)
    );

    let out = ws
        .command(&["ingest"])
        .env("EMBED_PROVIDER", "openai")
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("OPENAI_API_KEY is not set"),
        "{}",
        stderr_of(&out)
    );

    let out = ws
        .command(&["--help"])
        .env("OPENAI_API_KEY", "sk-should-not-show")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-should-not-show"));

    let out = ws.run(&["search", "anything"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("run `docbrain ingest` first"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !ws.data.join("index.sqlite3").exists(),
        "a failed search must not create an index"
    );
}

#[test]
fn a_second_crawl_of_one_data_folder_stops_naming_the_first() {
    let ws = Workspace::new();
    std::fs::create_dir_all(&ws.data).unwrap();
    let held = docbrain_server::lockfile::HeldLock::try_take(&ws.data.join("crawl.lock")).unwrap();
    let out = ws.run(&["ingest"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("another crawl is running on"), "{err}");
    assert!(
        err.contains(&format!("pid {} on ", std::process::id())),
        "{err}"
    );
    drop(held);
    assert!(ws.run(&["ingest"]).status.success());
}

#[test]
fn reading_commands_need_no_crawl_settings_and_announce_no_crawl() {
    let ws = Workspace::new();
    let ingest = ws.run(&["ingest"]);
    assert!(
        stderr_of(&ingest).contains("Fetching pages from"),
        "{}",
        stderr_of(&ingest)
    );
    // `status` with a Confluence source named but not configured: it reads the index only.
    let out = ws
        .command(&["status", "--json"])
        .env("SOURCE_TYPE", "confluence")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(last_json(&out)["pages"], 22);
    let out = ws.run(&["search", "roll back a deploy"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("Fetching pages"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn search_shows_one_hit_per_page_with_its_other_sections_and_code_on_its_lines() {
    let ws = Workspace::new();
    ws.ingest();
    let out = ws.run(&["search", "how do I roll back a bad deploy?", "--top", "3"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let titles: Vec<&str> = text
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(titles.len(), 3, "{text}");
    let mut distinct = titles.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "one hit per page: {text}");
    assert!(titles[0].contains("Deploying and Rolling Back"), "{text}");
    assert!(text.contains("also matches:"), "{text}");
    assert!(
        text.contains("\n   kubectl argo rollouts undo"),
        "code keeps its lines: {text}"
    );
    assert!(!text.contains("score 0."), "{text}");
    // --json keeps every field of the best chunk; --chunks shows chunks as ranked.
    let json = last_json(&ws.run(&["search", "roll back a bad deploy", "--json", "-k", "3"]));
    let hits = json["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert!(
        hits[0]["chunk_id"].is_string() && hits[0]["score"].is_number(),
        "{json}"
    );
    assert!(hits[0]["other_sections"].is_array(), "{json}");
    let raw = last_json(&ws.run(&[
        "search",
        "roll back a bad deploy",
        "--json",
        "--chunks",
        "-k",
        "5",
    ]));
    let pages: Vec<&str> = raw["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["page_id"].as_str())
        .collect();
    assert_eq!(pages.len(), 5);
    let mut distinct = pages.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() < pages.len(),
        "several chunks of one page: {pages:?}"
    );
}

#[test]
fn convert_prints_the_markdown_of_a_storage_format_file() {
    let ws = Workspace::new();
    let out = ws.run(&[
        "convert",
        ws.docs
            .join("release/release-checklist.xml")
            .to_str()
            .unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("## Release day"), "{md}");
    assert!(
        md.contains("- [ ] Tag the release: `git tag mobile-2026.12 && git push --tags`"),
        "{md}"
    );
    assert!(md.contains("MOB-1287") && !md.contains("maxLevel"), "{md}");
    let out = ws.run(&["convert", "/nonexistent.xml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("/nonexistent.xml"),
        "{}",
        stderr_of(&out)
    );
}
