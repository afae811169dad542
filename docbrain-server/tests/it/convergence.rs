//! A randomized convergence test. Each seeded schedule runs random steps against the simulator:
//! creates, edits, moves between spaces (one of them out of scope), trashes, restores and
//! purges; webhook deliveries dropped, duplicated, delayed and reordered; the server killed and
//! restarted on its journal; Confluence outages and 429 storms; crawls running in parallel. At
//! the end (faults cleared, delayed deliveries sent, one crawl as the schedule would run it,
//! the queue empty) the index must equal the simulator's truth for the configured spaces: the
//! same pages at the same versions, and no orphan chunks.
//!
//! Two harnesses: in-process (the webhook service's workers aborted mid-page as the kill; the
//! memory store; many schedules), and the `docbrain-server` binary with SIGKILL as the kill
//! (the embedded store and the local model, `scripts/fetch-model.sh`; crawls run from this
//! process on the same index file). `CONVERGENCE_SCHEDULES` (default 6 in-process, a third of
//! that as processes) schedules of `CONVERGENCE_STEPS` (default 60) steps run in CI;
//! `CONVERGENCE_SEED=<n>` replays one schedule, as a failure says.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Fault, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_confluence::webhook::{self, BodyShape, PageEvent};
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_confluence::{ConfluenceSettings, SourceSettings};
use docbrain_core::{
    MarkdownChunker, MemoryStore, PageId, PageStatus, Pipeline, PipelineOptions, Scope, Secret,
};
use docbrain_http::RetryPolicy;
use docbrain_server::{router, AppState, Metrics, Settings, Webhook, WebhookSettings};
use docbrain_testsuite::{LetterEmbedder, Rng};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Request;

use crate::support;

const SECRET: &str = "convergence-secret";
const IN_SCOPE: [&str; 2] = ["ENG", "OPS"];
const SPACES: [&str; 3] = ["ENG", "OPS", "HR"];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where webhook deliveries go.
#[allow(clippy::large_enum_variant)] // one per test world
enum Front {
    /// The webhook service in this process; `webhook` is `None` only while it restarts.
    InProcess {
        webhook: Option<Arc<Webhook>>,
        state: AppState,
    },
    /// A `docbrain-server` process on loopback.
    Process {
        child: support::Running,
        base: String,
        http: reqwest::Client,
    },
}

struct World {
    sim: Simulator,
    pipeline: Pipeline,
    /// The journal (in-process) or the data folder (process).
    dir: tempfile::TempDir,
    front: Front,
    version: ApiVersion,
    delayed: Vec<String>,
}

fn webhook_settings(journal: &std::path::Path) -> WebhookSettings {
    let mut w = WebhookSettings::new(Secret::new(SECRET), journal.to_path_buf());
    w.debounce = Duration::from_millis(20);
    w.retry_initial = Duration::from_millis(20);
    w.retry_max = Duration::from_millis(200);
    w.max_attempts = 1_000;
    w
}

async fn start_webhook(pipeline: &Pipeline, journal: &std::path::Path) -> (Arc<Webhook>, AppState) {
    let started = Instant::now();
    let metrics = Arc::new(Metrics::default());
    let webhook = loop {
        // The previous service's aborted workers may still hold the journal for a moment.
        match Webhook::start(webhook_settings(journal), pipeline, metrics.clone()) {
            Ok(w) => break w,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let state = AppState::new(
        pipeline.clone(),
        Some(webhook.clone()),
        metrics,
        Default::default(),
    );
    (webhook, state)
}

fn site(sim: &Simulator, version: ApiVersion) -> ConfluenceSettings {
    let (base, token) = match version {
        ApiVersion::V2 => (sim.base_url_v2(), API_TOKEN),
        ApiVersion::V1 => (sim.base_url_v1(), PAT),
    };
    let mut site = ConfluenceSettings::new(base, version, Secret::new(token));
    site.email = Some(EMAIL.into());
    site.space_keys = IN_SCOPE.iter().map(|s| (*s).to_owned()).collect();
    site.anonymous_access = true;
    site
}

async fn simulator() -> Simulator {
    let sim = Simulator::start().await.unwrap();
    for space in SPACES {
        sim.add_space(space, space);
    }
    sim
}

/// Starts the server binary on the data folder; returns it with its base URL.
fn spawn_server(sim: &Simulator, version: ApiVersion, data: &Path) -> (support::Running, String) {
    let site = site(sim, version);
    let mut cmd = support::command(None);
    cmd.env("DOCBRAIN_DATA_DIR", data)
        .env("CONFLUENCE_WEBHOOK_SECRET", SECRET)
        .env("CONFLUENCE_BASE_URL", &site.base_url)
        .env("CONFLUENCE_API_VERSION", version.to_string())
        .env("CONFLUENCE_USER_EMAIL", EMAIL)
        .env("CONFLUENCE_API_TOKEN", site.api_token.expose())
        .env("CONFLUENCE_SPACE_KEYS", IN_SCOPE.join(","))
        .env("CONFLUENCE_ANONYMOUS_ACCESS", "true")
        .env("WEBHOOK_DEBOUNCE_MS", "20")
        .env("WEBHOOK_RETRY_MS", "20")
        .env("WEBHOOK_MAX_ATTEMPTS", "1000")
        .env("LOG_LEVEL", "warn");
    support::spawn(cmd)
}

impl World {
    /// The webhook service in this process, over the memory store.
    async fn in_process(version: ApiVersion) -> Self {
        let sim = simulator().await;
        let mut config = ConfluenceConfig::from(site(&sim, version));
        config.retry = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
        };
        let pipeline = Pipeline::new(
            Arc::new(ConfluenceClient::new(config).unwrap()),
            Arc::new(MarkdownChunker::default()),
            Arc::new(LetterEmbedder::default()),
            Arc::new(MemoryStore::new()),
        )
        .await
        .unwrap()
        // Deletions are this test's subject, not the guard (tested on its own).
        .with_options(PipelineOptions {
            max_delete_fraction: 1.0,
            ..PipelineOptions::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let (webhook, state) = start_webhook(&pipeline, dir.path()).await;
        Self {
            sim,
            pipeline,
            dir,
            front: Front::InProcess {
                webhook: Some(webhook),
                state,
            },
            version,
            delayed: Vec::new(),
        }
    }

    /// The server binary over the embedded store; crawls run here, on the same index file.
    async fn process(version: ApiVersion) -> Self {
        let sim = simulator().await;
        let dir = tempfile::tempdir().unwrap();
        let (child, base) = spawn_server(&sim, version, dir.path());
        let mut settings = Settings {
            source: SourceSettings::Confluence(site(&sim, version)),
            data_dir: dir.path().to_owned(),
            ..Settings::default()
        };
        settings.embedder.model_dir = std::env::var_os("MODEL_DIR").map(Into::into);
        settings.pipeline.max_delete_fraction = 1.0;
        let pipeline = settings.pipeline().await.unwrap();
        let world = Self {
            sim,
            pipeline,
            dir,
            front: Front::Process {
                child,
                base,
                http: reqwest::Client::new(),
            },
            version,
            delayed: Vec::new(),
        };
        world.healthy().await;
        world
    }

    async fn healthy(&self) {
        if let Front::Process { base, http, .. } = &self.front {
            let started = Instant::now();
            while http.get(format!("{base}/healthz")).send().await.is_err() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the server did not start"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    fn shape(&self, rng: &mut Rng) -> BodyShape {
        match (self.version, rng.below(2)) {
            (ApiVersion::V1, 0) => BodyShape::DataCenter,
            (ApiVersion::V1, _) => BodyShape::DataCenterFull,
            (ApiVersion::V2, 0) => BodyShape::Cloud,
            (ApiVersion::V2, _) => BodyShape::CloudStringId,
        }
    }

    async fn post(&self, body: &str) {
        let signature = webhook::sign(SECRET.as_bytes(), body.as_bytes());
        let status = match &self.front {
            Front::InProcess { state, .. } => {
                let request = Request::post("/confluence/events")
                    .header("x-hub-signature", signature)
                    .body(Full::new(Bytes::from(body.to_owned())))
                    .unwrap();
                router(state, request).await.status().as_u16()
            }
            Front::Process { base, http, .. } => http
                .post(format!("{base}/confluence/events"))
                .header("x-hub-signature", signature)
                .body(body.to_owned())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        };
        assert_eq!(status, 200, "a delivery was refused");
    }

    /// Delivers an event as the network might: dropped, duplicated, delayed, or as sent.
    async fn deliver(&mut self, rng: &mut Rng, event: PageEvent, id: &PageId) {
        let body = self.sim.webhook_body(event, id, self.shape(rng));
        match rng.below(100) {
            0..=14 => {}
            15..=29 => {
                self.post(&body).await;
                self.post(&body).await;
            }
            30..=49 => self.delayed.push(body),
            _ => self.post(&body).await,
        }
    }

    /// Sends some delayed deliveries, in random order.
    async fn flush_delayed(&mut self, rng: &mut Rng, all: bool) {
        while !self.delayed.is_empty() && (all || rng.chance(50)) {
            let body = self.delayed.swap_remove(rng.below(self.delayed.len()));
            self.post(&body).await;
        }
    }

    /// Kills the server (in-process: its workers aborted mid-page; a process: SIGKILL) and
    /// starts a new one on the same journal.
    async fn restart(&mut self) {
        match &mut self.front {
            Front::InProcess { webhook, state } => {
                if let Some(old) = webhook.take() {
                    old.shutdown(Duration::ZERO).await;
                }
                state.webhook = None;
                let (new, new_state) = start_webhook(&self.pipeline, self.dir.path()).await;
                *webhook = Some(new);
                *state = new_state;
            }
            Front::Process { child, base, .. } => {
                child.kill().unwrap();
                child.wait().unwrap();
                let (new, new_base) = spawn_server(&self.sim, self.version, self.dir.path());
                *child = new;
                *base = new_base;
            }
        }
        self.healthy().await;
    }

    async fn queue_depth(&self) -> usize {
        match &self.front {
            Front::InProcess { webhook, .. } => webhook.as_ref().map_or(0, |w| w.queue_depth()),
            Front::Process { base, http, .. } => {
                let text = http
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                text.lines()
                    .find_map(|l| l.strip_prefix("docbrain_webhook_queue_depth "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(usize::MAX)
            }
        }
    }

    /// A current page of any space, if there is one.
    fn any_page(&self, rng: &mut Rng) -> Option<PageId> {
        let ids: Vec<u64> = self.sim.current_pages().iter().map(|p| p.id).collect();
        (!ids.is_empty()).then(|| PageId::from(ids[rng.below(ids.len())]))
    }

    async fn drained(&self, what: &str) {
        let started = Instant::now();
        loop {
            let depth = self.queue_depth().await;
            if depth == 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the queue did not drain ({what}): {depth} pages left"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn schedule(seed: u64, steps: u64, as_process: bool) {
    let mut rng = Rng::new(seed);
    let version = if seed.is_multiple_of(2) {
        ApiVersion::V2
    } else {
        ApiVersion::V1
    };
    let mut w = if as_process {
        World::process(version).await
    } else {
        World::in_process(version).await
    };
    // The server's own client retries with the default backoff: keep storms short there.
    let storm = if as_process { 4 } else { 8 };
    let mut trashed: Vec<PageId> = Vec::new();
    let mut crawls = Vec::new();
    for step in 0..steps {
        let space = SPACES[rng.below(SPACES.len())];
        match rng.below(100) {
            0..=19 => {
                let id = w.sim.create_page(
                    space,
                    &format!("Page {step}"),
                    &format!("<h2>Step {step}</h2><p>Created in {space} at step {step}.</p>"),
                );
                w.deliver(&mut rng, PageEvent::Created, &id).await;
            }
            20..=44 => {
                if let Some(id) = w.any_page(&mut rng) {
                    w.sim
                        .edit_page(&id, &format!("<p>Edited at step {step}.</p>"));
                    w.deliver(&mut rng, PageEvent::Updated, &id).await;
                }
            }
            45..=54 => {
                if let Some(id) = w.any_page(&mut rng) {
                    w.sim.move_page(&id, space);
                    w.deliver(&mut rng, PageEvent::Updated, &id).await;
                }
            }
            55..=62 => {
                if let Some(id) = w.any_page(&mut rng) {
                    w.sim.set_status(&id, PageStatus::Trashed);
                    trashed.push(id.clone());
                    w.deliver(&mut rng, PageEvent::Trashed, &id).await;
                }
            }
            63..=68 => {
                if !trashed.is_empty() {
                    let id = trashed.swap_remove(rng.below(trashed.len()));
                    w.sim.set_status(&id, PageStatus::Current);
                    w.deliver(&mut rng, PageEvent::Restored, &id).await;
                }
            }
            69..=72 => {
                if let Some(id) = w.any_page(&mut rng) {
                    w.sim.delete_page(&id);
                    trashed.retain(|t| t != &id);
                    w.deliver(&mut rng, PageEvent::Removed, &id).await;
                }
            }
            73..=77 => w.sim.inject(Fault::new(503, 1 + rng.below(storm) as u32)),
            78..=81 => w
                .sim
                .inject(Fault::new(429, 1 + rng.below(storm) as u32).retry_after("0")),
            82..=84 => w.restart().await,
            85..=88 => {
                let pipeline = w.pipeline.clone();
                crawls.push(tokio::spawn(async move {
                    // A crawl may fail under the faults; the next one repairs.
                    let _ = pipeline.sync(&Scope::all()).await;
                }));
            }
            89..=94 => w.flush_delayed(&mut rng, false).await,
            _ => tokio::time::sleep(Duration::from_millis(rng.below(30) as u64)).await,
        }
    }
    // The end of the schedule: the network and Confluence recover, the scheduled crawl runs.
    w.sim.clear_faults();
    w.flush_delayed(&mut rng, true).await;
    for crawl in crawls {
        crawl.await.unwrap();
    }
    w.drained("after the schedule").await;
    let report = w.pipeline.sync(&Scope::all()).await.unwrap();
    assert!(
        report.is_clean(),
        "seed {seed}: the final crawl: {report:?}"
    );
    w.drained("after the final crawl").await;

    let truth = w.sim.versions(Some(&IN_SCOPE));
    let store = w.pipeline.store().clone();
    let indexed = store.list_pages().await.unwrap();
    let held = docbrain_testsuite::indexed_versions(store.as_ref()).await;
    assert_eq!(
        held, truth,
        "seed {seed}: the index differs from Confluence; replay with CONVERGENCE_SEED={seed} cargo test -p docbrain-server --test it convergence"
    );
    let chunks: u64 = indexed.iter().map(|p| u64::from(p.chunk_count)).sum();
    assert_eq!(
        store.stats().await.unwrap().chunks,
        chunks,
        "seed {seed}: orphan chunks; replay with CONVERGENCE_SEED={seed}"
    );
    assert!(
        !truth.is_empty(),
        "seed {seed}: a schedule that ends with no page proves little"
    );
}

fn seeds(default_count: u64, first: u64) -> Vec<u64> {
    match std::env::var("CONVERGENCE_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => (first..first + default_count).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_schedules_converge_to_confluence() {
    let steps = env_num("CONVERGENCE_STEPS", 60);
    for seed in seeds(env_num("CONVERGENCE_SCHEDULES", 6), 1) {
        schedule(seed, steps, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_schedules_with_sigkill_converge_to_confluence() {
    let steps = env_num("CONVERGENCE_STEPS", 60);
    for seed in seeds(env_num("CONVERGENCE_SCHEDULES", 6).div_ceil(3), 1001) {
        schedule(seed, steps, true).await;
    }
}
