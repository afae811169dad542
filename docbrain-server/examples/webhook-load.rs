//! Benchmark of `POST /confluence/events` against a `docbrain-server` process on loopback (this
//! process is the load): freshness (event to searchable, for lone edits of a small page; fetches
//! for 100 updates of one page within a second), then acknowledgement latency at a fixed rate
//! and the peak rate.
//!
//! ```sh
//! cargo build --release -p docbrain-server --bins --examples
//! target/release/examples/webhook-load            # FRESH_EDITS=20 LOAD_RATE=1000 LOAD_SECS=10 PEAK_SECS=5 PEAK_CONNS=32
//! ```
//!
//! The server runs with the embedded store and the local model (`MODEL_DIR`), against a
//! simulator in this process holding `LOAD_PAGES` (200) pages; events name those pages in turn,
//! so the workers reconcile in the background while the load runs, as in production.

#![allow(clippy::print_stdout)] // a benchmark prints its figures
#![allow(clippy::disallowed_methods)] // reads the answers of its own server on loopback

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Route, Simulator, PAT};
use docbrain_confluence::webhook::{self, BodyShape, PageEvent};
use docbrain_core::PageId;
use docbrain_testsuite::Running;

const SECRET: &str = "load-test-secret";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rate = env_num("LOAD_RATE", 1000);
    let secs = env_num("LOAD_SECS", 10);
    let peak_secs = env_num("PEAK_SECS", 5);
    let peak_conns = env_num("PEAK_CONNS", 32);
    let pages = env_num("LOAD_PAGES", 200);

    let sim = Simulator::start().await?;
    let bodies = load_pages(&sim, pages);
    let server_bin = server_binary()?;
    let data = tempfile::tempdir()?;
    let (mut server, base) = start_server(&server_bin, data.path(), &sim)?;
    let url = format!("{base}/confluence/events");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    wait_healthy(&client, &base).await?;

    let load = Load {
        client: client.clone(),
        url: url.clone(),
        bodies: Arc::clone(&bodies),
    };

    // Freshness, on a quiet server: lone edits, then a burst.
    let fresh_edits = env_num("FRESH_EDITS", 20);
    let fresh = sim.create_page("ENG", "Fresh page", "<p>Fresh page, first words.</p>");
    let target = Target {
        sim: &sim,
        client: &client,
        url: &url,
        base: &base,
    };
    lone_edits(&target, &fresh, fresh_edits).await?;
    burst(&target, &fresh).await?;

    // Warm-up: connections, page cache.
    for n in 0..200 {
        load.send(n).await;
    }
    fixed_rate(&load, rate, secs).await;
    peak(&load, peak_conns, peak_secs).await;
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}

/// Creates the `pages` pages events name, in the simulator; their `page_updated` bodies.
fn load_pages(sim: &Simulator, pages: u64) -> Arc<Vec<String>> {
    let ids: Vec<PageId> = (0..pages)
        .map(|i| {
            sim.create_page(
                "ENG",
                &format!("Load page {i}"),
                &format!("<p>Body of load page {i}.</p>"),
            )
        })
        .collect();
    Arc::new(
        ids.iter()
            .map(|id| sim.webhook_body(PageEvent::Updated, id, BodyShape::DataCenter))
            .collect(),
    )
}

/// The `docbrain-server` binary beside this example's folder, built in the same profile.
fn server_binary() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let server_bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("docbrain-server"))
        .ok_or("cannot locate target dir")?;
    if !server_bin.exists() {
        return Err(format!(
            "{} not found: cargo build --release -p docbrain-server --bins --examples",
            server_bin.display()
        )
        .into());
    }
    Ok(server_bin)
}

/// Starts the server on a free loopback port, storing in `data` and reading from `sim`; the
/// process and its base URL.
fn start_server(
    server_bin: &Path,
    data: &Path,
    sim: &Simulator,
) -> Result<(Running, String), Box<dyn std::error::Error>> {
    let mut server = Running::spawn(
        Command::new(server_bin)
            .env("DOCBRAIN_DATA_DIR", data)
            .env("SERVER_BIND", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("CONFLUENCE_WEBHOOK_SECRET", SECRET)
            .env("CONFLUENCE_BASE_URL", sim.base_url_v1())
            .env("CONFLUENCE_API_VERSION", "v1")
            .env("CONFLUENCE_API_TOKEN", PAT)
            // What is measured is freshness under load, not permissions: every page is searchable.
            .env("SEARCH_PERMISSIONS", "off")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )?;
    // The server prints `listening on http://…` once bound to the port it picked.
    let mut line = String::new();
    let stdout = server.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the server did not start: {line:?}"))?
        .to_owned();
    Ok((server, base))
}

/// Waits (up to a minute) until the server at `base` answers `/healthz`.
async fn wait_healthy(
    client: &reqwest::Client,
    base: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The load: signed `page_updated` events for the load pages in turn, to the events endpoint.
#[derive(Clone)]
struct Load {
    /// The client every event is sent with.
    client: reqwest::Client,
    /// The server's `/confluence/events`.
    url: String,
    /// The events' bodies, one per load page.
    bodies: Arc<Vec<String>>,
}

impl Load {
    /// Event `n`: whether the server acknowledged it (200), and how long that took.
    fn send(&self, n: u64) -> impl Future<Output = (bool, Duration)> {
        let body = self.bodies[(n % self.bodies.len() as u64) as usize].clone();
        let signature = webhook::sign(SECRET.as_bytes(), body.as_bytes());
        let request = self
            .client
            .post(&self.url)
            .header("x-hub-signature", signature)
            .body(body);
        async move {
            let t = Instant::now();
            let ok = request
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            (ok, t.elapsed())
        }
    }
}

/// The server and the simulator, as the freshness measures use them.
struct Target<'a> {
    /// The simulator the server reads.
    sim: &'a Simulator,
    /// The client events and searches are sent with.
    client: &'a reqwest::Client,
    /// The server's `/confluence/events`.
    url: &'a str,
    /// The server's base URL.
    base: &'a str,
}

impl Target<'_> {
    /// Sends the signed webhook for `event` on page `id`, as the simulator would.
    fn post(
        &self,
        event: PageEvent,
        id: &PageId,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
        let body = self.sim.webhook_body(event, id, BodyShape::DataCenter);
        let signature = webhook::sign(SECRET.as_bytes(), body.as_bytes());
        self.client
            .post(self.url)
            .header("x-hub-signature", signature)
            .body(body)
            .send()
    }

    /// Searches for `token` until it is found (within 30 s): how long that took.
    fn searchable(&self, token: String) -> impl Future<Output = Result<Duration, String>> {
        let client = self.client.clone();
        let search = format!("{}/search?q={token}&k=1", self.base);
        async move {
            let started = Instant::now();
            loop {
                if let Ok(r) = client.get(&search).send().await {
                    if r.text().await.is_ok_and(|t| t.contains(&token)) {
                        return Ok(started.elapsed());
                    }
                }
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(format!("{token} never became searchable"));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

/// Freshness of lone edits: event to searchable for `fresh_edits` edits of page `fresh`, each
/// more than the debounce apart.
async fn lone_edits(
    target: &Target<'_>,
    fresh: &PageId,
    fresh_edits: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    target.post(PageEvent::Created, fresh).await?;
    target.searchable("first".into()).await?;
    let mut fresh_lat = Vec::new();
    for n in 0..fresh_edits {
        // Apart by more than the debounce (WEBHOOK_DEBOUNCE_MS, 1 s): each edit comes alone.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let token = format!("zqx{n}fresh");
        target
            .sim
            .edit_page(fresh, &format!("<p>Fresh page, edit {token}.</p>"));
        let sent = Instant::now();
        target.post(PageEvent::Updated, fresh).await?;
        target.searchable(token).await?;
        fresh_lat.push(sent.elapsed());
    }
    fresh_lat.sort();
    println!(
        "freshness: event to searchable p50 {:.0} ms, p99 {:.0} ms ({fresh_edits} lone edits of a one-chunk page, local model)",
        percentile(&fresh_lat, 0.50).as_secs_f64() * 1e3,
        percentile(&fresh_lat, 0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}

/// A burst: 100 updates of page `fresh` within a second, and the page fetches they cost.
async fn burst(target: &Target<'_>, fresh: &PageId) -> Result<(), Box<dyn std::error::Error>> {
    let sim = target.sim;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.clear_log();
    let burst_start = Instant::now();
    let mut last = 0;
    for i in 1..=100u32 {
        last = sim
            .edit_page(
                fresh,
                &format!("<p>Fresh page, burst edit {i} zqxburst{i}.</p>"),
            )
            .unwrap_or(0);
        target.post(PageEvent::Updated, fresh).await?;
        tokio::time::sleep_until((burst_start + Duration::from_millis(9) * i).into()).await;
    }
    let burst = burst_start.elapsed();
    target.searchable("zqxburst100".into()).await?;
    wait_drained(target.client, target.base).await?;
    println!(
        "burst: 100 updates of one page in {:.2} s (to version {last}) cost {} page fetches",
        burst.as_secs_f64(),
        sim.count_for(Route::PageBody, fresh)
    );
    Ok(())
}

/// Waits (up to 30 s) until the server's webhook queue is empty.
async fn wait_drained(
    client: &reqwest::Client,
    base: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    // The queue is empty once the trailing reconcile is done.
    let drained = Instant::now();
    while !client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?
        .contains("docbrain_webhook_queue_depth 0")
    {
        if drained.elapsed() > Duration::from_secs(30) {
            return Err("the queue did not drain".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Phase 1: an open-loop fixed rate, `rate` events a second for `secs` seconds.
async fn fixed_rate(load: &Load, rate: u64, secs: u64) {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((rate * secs) as usize)));
    let failures = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..rate * secs {
        let due = begin + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let fut = load.send(n);
        let latencies = Arc::clone(&latencies);
        let failures = Arc::clone(&failures);
        tasks.push(tokio::spawn(async move {
            let (ok, took) = fut.await;
            if ok {
                latencies.lock().map(|mut l| l.push(took)).ok();
            } else {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let achieved = (rate * secs) as f64 / begin.elapsed().as_secs_f64();
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort();
    println!(
        "fixed rate: {rate}/s for {secs} s (achieved {achieved:.0}/s): ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} failed",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        failures.load(Ordering::Relaxed)
    );
}

/// Phase 2: closed loop, as fast as `peak_conns` connections go for `peak_secs` seconds.
async fn peak(load: &Load, peak_conns: u64, peak_secs: u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..peak_conns {
        let load = load.clone();
        let (done, failed, stop) = (Arc::clone(&done), Arc::clone(&failed), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut n = c * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                let (ok, _) = load.send(n).await;
                n += 1;
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(peak_secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let peak = done.load(Ordering::Relaxed) as f64 / begin.elapsed().as_secs_f64();
    println!(
        "peak: {peak:.0} events/s acknowledged with {peak_conns} connections over {peak_secs} s; {} failed",
        failed.load(Ordering::Relaxed)
    );
}
