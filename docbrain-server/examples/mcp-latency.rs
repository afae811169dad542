//! Benchmark of the MCP layer: `search_docs` over `/mcp` (Streamable HTTP, one JSON-RPC
//! `tools/call` per POST) beside `GET /search` for the same questions, against one
//! `docbrain-server` process on the sample space's index (embedded store, local model), in the
//! same run, requests interleaved so both see the same machine.
//!
//! ```sh
//! cargo build --release -p docbrain-server --bins --examples
//! target/release/examples/mcp-latency          # MCP_QUERIES=300
//! ```

#![allow(clippy::print_stdout)] // a benchmark prints its figures
#![allow(clippy::disallowed_methods)] // reads the answers of its own server on loopback

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use docbrain_server::Settings;
use serde_json::json;

const KEY: &str = "bench-key-0123456789abcdef0123456789ab";

const QUESTIONS: [&str; 8] = [
    "how do I roll back a bad deploy?",
    "what is a SEV1?",
    "promote a postgres replica",
    "evicting keys from the redis cache",
    "who do I page for an outage?",
    "how do I get access to production?",
    "rotate the database credentials",
    "what does the on-call engineer do first?",
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Started as the attachment extractor (the sample space's PDF and DOCX): extract, exit.
    docbrain_confluence::extract::serve_if_child();
    let queries: usize = std::env::var("MCP_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let server_bin = server_binary()?;

    // The sample space's index, as `docbrain ingest` builds it.
    let data = tempfile::tempdir()?;
    build_index(data.path()).await?;

    let (mut server, base) = start_server(&server_bin, data.path())?;
    let api = Api {
        client: reqwest::Client::new(),
        base,
    };
    api.warm_up().await?;
    let (rest, tools) = api.measure(queries).await?;
    report(rest, tools, queries);
    server.kill()?;
    server.wait()?;
    Ok(())
}

/// The `docbrain-server` binary beside this example's folder, built in the same profile.
fn server_binary() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let server_bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("docbrain-server"))
        .ok_or("cannot locate the target folder")?;
    if !server_bin.exists() {
        return Err(format!(
            "{} not found: cargo build --release -p docbrain-server --bins --examples",
            server_bin.display()
        )
        .into());
    }
    Ok(server_bin)
}

/// Builds the sample space's index in `data`, as `docbrain ingest` does.
async fn build_index(data: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-space");
    let vars = [
        ("LOCAL_DOCS_PATH", docs.display().to_string()),
        ("DOCBRAIN_DATA_DIR", data.display().to_string()),
    ];
    let settings = Settings::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok().filter(|_| name == "MODEL_DIR"))
    })?;
    let pipeline = settings.pipeline().await?;
    pipeline.sync(&settings.scope()).await?;
    drop(pipeline);
    Ok(())
}

/// Starts the server on a free loopback port over the index in `data`; the process and its
/// base URL.
fn start_server(
    server_bin: &Path,
    data: &Path,
) -> Result<(Child, String), Box<dyn std::error::Error>> {
    let mut server = Command::new(server_bin)
        .env("DOCBRAIN_DATA_DIR", data)
        .env("SERVER_BIND", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("SEARCH_API_KEYS", KEY)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the server did not start: {line:?}"))?
        .to_owned();
    Ok((server, base))
}

/// The server's two ways to search: `GET /search` and MCP's `search_docs`.
struct Api {
    /// The client both are asked with.
    client: reqwest::Client,
    /// The server's base URL.
    base: String,
}

impl Api {
    /// `GET /search` for `q`, five hits.
    fn search(&self, q: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}/search", self.base))
            .query(&[("q", q), ("k", "5")])
            .bearer_auth(KEY)
    }

    /// MCP `tools/call` of `search_docs` for `q`, five hits, as JSON-RPC request `n`.
    fn mcp(&self, n: usize, q: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/mcp", self.base))
            .bearer_auth(KEY)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                          "params": {"name": "search_docs", "arguments": {"query": q, "k": 5}}}))
    }

    /// Warms up both paths (first queries load caches), then checks each answers with hits.
    async fn warm_up(&self) -> Result<(), Box<dyn std::error::Error>> {
        for q in QUESTIONS {
            let s: serde_json::Value = self
                .search(q)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let m: serde_json::Value = self
                .mcp(0, q)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let mcp_hits = m["result"]["structuredContent"]["hits"]
                .as_array()
                .map_or(0, Vec::len);
            if s["hits"].as_array().map_or(0, Vec::len) != 5 || mcp_hits != 5 {
                return Err(format!("an answer without 5 hits for {q:?}: {s} / {m}").into());
            }
        }
        Ok(())
    }

    /// Times `queries` questions each way, interleaved: the `/search` and the MCP latencies.
    async fn measure(
        &self,
        queries: usize,
    ) -> Result<(Vec<Duration>, Vec<Duration>), Box<dyn std::error::Error>> {
        let (mut rest, mut tools) = (Vec::with_capacity(queries), Vec::with_capacity(queries));
        for n in 0..queries {
            let q = QUESTIONS[n % QUESTIONS.len()];
            let t = Instant::now();
            self.search(q)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            rest.push(t.elapsed());
            let t = Instant::now();
            let answer = self
                .mcp(n + 1, q)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            tools.push(t.elapsed());
            let answer: serde_json::Value = serde_json::from_slice(&answer)?;
            if answer["result"]["isError"] != false {
                return Err(format!("not an answer: {answer}").into());
            }
        }
        Ok((rest, tools))
    }
}

/// Prints both paths' p50 and p99 over `queries` questions, and what the MCP layer adds.
fn report(mut rest: Vec<Duration>, mut tools: Vec<Duration>, queries: usize) {
    rest.sort();
    tools.sort();
    let (r50, r99, t50, t99) = (
        percentile(&rest, 0.5),
        percentile(&rest, 0.99),
        percentile(&tools, 0.5),
        percentile(&tools, 0.99),
    );
    println!(
        "GET /search:              p50 {:.2} ms, p99 {:.2} ms ({queries} queries, k=5, sample space, local model)",
        ms(r50),
        ms(r99)
    );
    println!(
        "MCP search_docs (HTTP):   p50 {:.2} ms, p99 {:.2} ms (same questions, interleaved)",
        ms(t50),
        ms(t99)
    );
    println!(
        "MCP layer adds {:.2} ms at p50, {:.2} ms at p99",
        ms(t50) - ms(r50),
        ms(t99) - ms(r99)
    );
}
