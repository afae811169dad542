//! `docbrain ingest` with `SOURCE_TYPE=confluence` against the simulator, with the real local
//! model: the README's crawl, for both API versions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use docbrain_confluence::simulator::{Grants, Route, SimUser, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_core::{PageId, PageStatus};
use serde_json::Value;

fn storage_pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-space");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "xml") {
                let title = path
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .replace('-', " ");
                out.push((title, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 4, "the sample space has storage-format pages");
    out
}

struct Site {
    sim: Simulator,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Site {
    async fn new() -> Self {
        let sim = Simulator::start().await.unwrap();
        for (title, body) in storage_pages() {
            sim.create_page("ENG", &title, &body);
        }
        for i in 0..12 {
            sim.create_page(
                "OPS",
                &format!("Shift handover {i}"),
                &format!("<h2>Handover {i}</h2><p>Rota notes for week {i}: pager rotation and escalation contacts.</p>"),
            );
        }
        sim.set_max_results(5);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Self {
            sim,
            data,
            _dir: dir,
        }
    }

    fn command(&self, version: &str, token: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_docbrain"));
        let base = if version == "v1" {
            self.sim.base_url_v1()
        } else {
            self.sim.base_url_v2()
        };
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCBRAIN_DATA_DIR", &self.data)
            .env("LOG_LEVEL", "info")
            .env("SOURCE_TYPE", "confluence")
            .env("CONFLUENCE_BASE_URL", base)
            .env("CONFLUENCE_API_VERSION", version)
            .env("CONFLUENCE_USER_EMAIL", EMAIL)
            .env("CONFLUENCE_API_TOKEN", token)
            .env("CONFLUENCE_SPACE_KEYS", "ENG,OPS")
            .env("CONFLUENCE_ANONYMOUS_ACCESS", "true");
        for var in ["MODEL_DIR", "HOME", "XDG_CACHE_HOME"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd
    }

    async fn run(&self, version: &str, token: &str, args: &[&str]) -> Output {
        let mut cmd = self.command(version, token, args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn last_json(out: &Output) -> Value {
    let stdout = text(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_search_and_recrawl_in_both_api_versions() {
    for (version, token) in [("v2", API_TOKEN), ("v1", PAT)] {
        let site = Site::new().await;
        let pages = site.sim.current_pages().len();
        let out = site.run(version, token, &["ingest"]).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{version}: {stderr}");
        assert!(
            stdout.contains(&format!("Ingestion complete: {pages} pages, ")),
            "{version}: {stdout}"
        );
        let eng = pages - 12;
        assert!(
            stderr.contains(&format!(
                "Fetching pages from space ENG... {eng} pages found"
            )),
            "{version}: {stderr}"
        );
        assert!(stderr.contains("Fetching pages from space OPS... 12 pages found"));
        assert!(
            stderr.contains("Crawling Confluence"),
            "{version}: {stderr}"
        );
        assert!(
            !stderr.contains(token),
            "{version}: the token leaked into the logs"
        );

        let out = site
            .run(
                version,
                token,
                &[
                    "search",
                    "evicting keys from the redis cache",
                    "--json",
                    "-k",
                    "3",
                ],
            )
            .await;
        let hits = last_json(&out);
        let top = hits["hits"][0]["title"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(top.to_lowercase().contains("redis"), "{version}: {hits}");
        let url = hits["hits"][0]["url"].as_str().unwrap_or_default();
        assert!(url.starts_with("http://127.0.0.1:"), "{version}: {url}");

        // Unchanged: no page body fetched, nothing embedded.
        site.sim.clear_log();
        let again = last_json(&site.run(version, token, &["ingest", "--json"]).await);
        assert_eq!(
            again["pages_unchanged"].as_u64(),
            Some(pages as u64),
            "{again}"
        );
        assert_eq!(again["chunks_embedded"], 0);
        assert_eq!(site.sim.count(Route::PageBody), 0, "{version}");

        // The redis page restricted to a group: the crawl re-reads its rule (one body fetch, no
        // embedding); anonymous searches lose it, a member finds it with --as.
        let redis = PageId::new(hits["hits"][0]["page_id"].as_str().unwrap());
        site.sim.add_user("ann", &["sre"]);
        site.sim
            .restrict_page(&redis, Some(Grants::only(&[], &["sre"])));
        site.sim.clear_log();
        let restricted = last_json(&site.run(version, token, &["ingest", "--json"]).await);
        assert_eq!(restricted["pages_updated"], 1, "{version}: {restricted}");
        assert_eq!(restricted["chunks_embedded"], 0, "{version}: {restricted}");
        assert_eq!(site.sim.count(Route::PageBody), 1, "{version}");
        let ann = if version == "v1" {
            "ann".to_owned()
        } else {
            SimUser::account_id("ann")
        };
        let question = "evicting keys from the redis cache";
        let anonymous = last_json(
            &site
                .run(version, token, &["search", question, "--json"])
                .await,
        );
        let ids: Vec<&str> = anonymous["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["page_id"].as_str())
            .collect();
        assert!(
            !ids.is_empty() && !ids.contains(&redis.as_str()),
            "{version}: {anonymous}"
        );
        let member = site
            .run(
                version,
                token,
                &["search", question, "--json", "--as", &ann],
            )
            .await;
        // A search looks the user up; it crawls nothing and says nothing of crawling.
        let said = text(&member.stderr);
        assert!(
            !said.contains("Crawling") && !said.contains("Fetching pages"),
            "{said}"
        );
        let member = last_json(&member);
        assert_eq!(
            member["hits"][0]["page_id"],
            redis.as_str(),
            "{version}: {member}"
        );
        site.sim.restrict_page(&redis, None);
        site.run(version, token, &["ingest"]).await;

        // One trashed, one deleted, one edited.
        let ids: Vec<PageId> = site
            .sim
            .current_pages()
            .iter()
            .map(|p| PageId::from(p.id))
            .collect();
        site.sim.set_status(&ids[0], PageStatus::Trashed);
        site.sim.delete_page(&ids[1]);
        site.sim.edit_page(
            &ids[2],
            "<p>Pager rotation moved to the new on-call tool.</p>",
        );
        site.sim.clear_log();
        let third = last_json(&site.run(version, token, &["ingest", "--json"]).await);
        assert_eq!(third["pages_deleted"], 2, "{version}: {third}");
        assert_eq!(third["pages_updated"], 1, "{version}: {third}");
        assert_eq!(third["index_pages"].as_u64(), Some(pages as u64 - 2));
        // The edited page, and one fetch per deletion confirming the page is gone.
        assert_eq!(site.sim.count(Route::PageBody), 3, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_missing_settings_say_what_to_fix() {
    let site = Site::new().await;
    let out = site.run("v1", "not-the-pat-value", &["ingest"]).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("CONFLUENCE_API_TOKEN"), "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(!stderr.contains("not-the-pat-value"), "{stderr}");
    assert_eq!(site.sim.count(Route::PageBody), 0);

    let mut cmd = site.command("v2", API_TOKEN, &["ingest"]);
    cmd.env_remove("CONFLUENCE_BASE_URL");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("CONFLUENCE_BASE_URL is not set"),
        "{}",
        text(&out.stderr)
    );
}
