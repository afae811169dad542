//! A randomized convergence test. Each seeded schedule runs random steps against the simulator:
//! creates, edits, moves between spaces (one of them out of scope), trashes, restores and
//! purges; webhook deliveries dropped, duplicated, delayed and reordered; the webhook service
//! killed (its workers aborted mid-page) and restarted on its journal; Confluence outages and
//! 429 storms; crawls running in parallel. At the end (faults cleared, delayed deliveries sent,
//! one crawl as the schedule would run it, the queue empty) the index must equal the
//! simulator's truth for the configured spaces: the same pages at the same versions, and no
//! orphan chunks.
//!
//! `CONVERGENCE_SCHEDULES` (default 6) schedules of `CONVERGENCE_STEPS` (default 60) steps run
//! in CI; `CONVERGENCE_SEED=<n>` replays one schedule, as a failure says.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
#![allow(clippy::disallowed_methods)] // reads answers the test asked for

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Fault, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_confluence::webhook::{self, BodyShape, PageEvent};
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::retry::RetryPolicy;
use docbrain_core::settings::{ConfluenceSettings, WebhookSettings};
use docbrain_core::testsuite::LetterEmbedder;
use docbrain_core::{
    IndexStore, MarkdownChunker, MemoryStore, PageId, PageStatus, Pipeline, PipelineOptions, Scope,
    Secret,
};
use docbrain_server::{router, AppState, Metrics, Webhook};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Request;

const SECRET: &str = "convergence-secret";
const IN_SCOPE: [&str; 2] = ["ENG", "OPS"];
const SPACES: [&str; 3] = ["ENG", "OPS", "HR"];

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct World {
    sim: Simulator,
    store: Arc<MemoryStore>,
    pipeline: Pipeline,
    journal: tempfile::TempDir,
    /// `None` only while it restarts.
    webhook: Option<Arc<Webhook>>,
    state: AppState,
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
    let state = AppState {
        pipeline: pipeline.clone(),
        webhook: Some(webhook.clone()),
        metrics,
    };
    (webhook, state)
}

impl World {
    async fn new(version: ApiVersion) -> Self {
        let sim = Simulator::start().await.unwrap();
        let (base, token) = match version {
            ApiVersion::V2 => (sim.base_url_v2(), API_TOKEN),
            ApiVersion::V1 => (sim.base_url_v1(), PAT),
        };
        let mut site = ConfluenceSettings::new(base, version, Secret::new(token));
        site.email = Some(EMAIL.into());
        site.space_keys = IN_SCOPE.iter().map(|s| (*s).to_owned()).collect();
        for space in SPACES {
            sim.add_space(space, space);
        }
        let mut config = ConfluenceConfig::from(site);
        config.retry = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(20),
            timeout: Duration::from_secs(5),
        };
        let store = Arc::new(MemoryStore::new());
        let pipeline = Pipeline::new(
            Arc::new(ConfluenceClient::new(config).unwrap()),
            Arc::new(MarkdownChunker::default()),
            Arc::new(LetterEmbedder::default()),
            store.clone(),
        )
        .await
        .unwrap()
        // Deletions are this test's subject, not the guard (tested on its own).
        .with_options(PipelineOptions {
            max_delete_fraction: 1.0,
            ..PipelineOptions::default()
        });
        let journal = tempfile::tempdir().unwrap();
        let (webhook, state) = start_webhook(&pipeline, journal.path()).await;
        Self {
            sim,
            store,
            pipeline,
            journal,
            webhook: Some(webhook),
            state,
            version,
            delayed: Vec::new(),
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
        let request = Request::post("/confluence/events")
            .header(
                "x-hub-signature",
                webhook::sign(SECRET.as_bytes(), body.as_bytes()),
            )
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let status = router(&self.state, request).await.status();
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

    /// Kills the webhook service (workers aborted mid-page) and starts a new one on the journal.
    async fn restart(&mut self) {
        if let Some(old) = self.webhook.take() {
            old.shutdown(Duration::ZERO).await;
        }
        self.state.webhook = None;
        let (webhook, state) = start_webhook(&self.pipeline, self.journal.path()).await;
        self.webhook = Some(webhook);
        self.state = state;
    }

    fn queue_depth(&self) -> usize {
        self.webhook.as_ref().map_or(0, |w| w.queue_depth())
    }

    /// A current page of any space, if there is one.
    fn any_page(&self, rng: &mut Rng) -> Option<PageId> {
        let ids: Vec<u64> = self.sim.current_pages().iter().map(|p| p.id).collect();
        (!ids.is_empty()).then(|| PageId::from(ids[rng.below(ids.len())]))
    }

    async fn drained(&self, what: &str) {
        let started = Instant::now();
        while self.queue_depth() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the queue did not drain ({what}): {} pages left",
                self.queue_depth()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn schedule(seed: u64, steps: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let version = if seed.is_multiple_of(2) {
        ApiVersion::V2
    } else {
        ApiVersion::V1
    };
    let mut w = World::new(version).await;
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
            73..=77 => w.sim.inject(Fault::new(503, 1 + rng.below(8) as u32)),
            78..=81 => w
                .sim
                .inject(Fault::new(429, 1 + rng.below(8) as u32).retry_after("0")),
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

    let truth: BTreeSet<(String, u64)> = w
        .sim
        .current_pages()
        .iter()
        .filter(|p| IN_SCOPE.contains(&p.space_key.as_str()))
        .map(|p| (p.id.to_string(), p.version))
        .collect();
    let indexed = w.store.list_pages().await.unwrap();
    let held: BTreeSet<(String, u64)> = indexed
        .iter()
        .map(|p| (p.id.to_string(), p.version))
        .collect();
    assert_eq!(
        held, truth,
        "seed {seed}: the index differs from Confluence; replay with CONVERGENCE_SEED={seed} cargo test -p docbrain-server --test convergence"
    );
    let chunks: u64 = indexed.iter().map(|p| u64::from(p.chunk_count)).sum();
    assert_eq!(
        w.store.stats().await.unwrap().chunks,
        chunks,
        "seed {seed}: orphan chunks; replay with CONVERGENCE_SEED={seed}"
    );
    assert!(
        !truth.is_empty(),
        "seed {seed}: a schedule that ends with no page proves little"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_schedules_converge_to_confluence() {
    let steps = env_num("CONVERGENCE_STEPS", 60);
    let seeds: Vec<u64> = match std::env::var("CONVERGENCE_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => (1..=env_num("CONVERGENCE_SCHEDULES", 6)).collect(),
    };
    for seed in seeds {
        schedule(seed, steps).await;
    }
}
