//! Permission-aware search, end to end: the simulator's users, groups, space permissions and
//! restrictions; the crawl and the webhook keeping each page's read rule current; `/search`
//! answering as a user. Every scenario runs on both API versions and both stores (the
//! OpenSearch runs need a node: scripts/test.sh starts one).
//!
//! A property test builds random restriction trees and users and compares what search returns
//! for each user with Confluence's rule evaluated directly against the simulator.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_confluence::simulator::{Grants, Route, SimUser, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_confluence::webhook::{self, BodyShape, PageEvent};
use docbrain_confluence::ConfluenceSettings;
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::{
    Caller, Embedder, IndexStore, MarkdownChunker, PageId, Pipeline, PipelineOptions, Scope,
    SearchFilter, Secret,
};
use docbrain_http::RetryPolicy;
use docbrain_index::{EmbeddedStore, OpenSearchConfig, OpenSearchStore};
use docbrain_server::{router, AppState, Metrics, SearchGate, Webhook};
use docbrain_server::{SearchSettings, WebhookSettings};
use docbrain_testsuite::until;
use docbrain_testsuite::{LetterEmbedder, Rng};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use serde_json::Value;

const SECRET: &str = "perm-secret";
/// The gateway key the tests search with (it may act for any user).
const GATEWAY: &str = "gateway-key-0123456789abcdef0123456789";
const TTL: Duration = Duration::from_millis(400);

#[derive(Debug, Clone, Copy)]
enum Store {
    Embedded,
    /// The real node; indices named after the test, so each test deletes only its own.
    OpenSearch(&'static str),
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct World {
    sim: Simulator,
    version: ApiVersion,
    pipeline: Pipeline,
    embedder: Arc<LetterEmbedder>,
    /// Searches made (each embeds its query once).
    searches: AtomicUsize,
    state: AppState,
    _dir: tempfile::TempDir,
}

async fn index_store(kind: Store, dir: &std::path::Path) -> Arc<dyn IndexStore> {
    match kind {
        Store::Embedded => Arc::new(EmbeddedStore::open(dir).unwrap()),
        Store::OpenSearch(test) => {
            let url =
                std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://localhost:9200".into());
            let index = format!(
                "docbrain-test-perm-{test}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            );
            Arc::new(
                OpenSearchStore::connect(OpenSearchConfig::new(url, index))
                    .await
                    .expect("an OpenSearch node: scripts/opensearch.sh start"),
            )
        }
    }
}

impl World {
    async fn new(version: ApiVersion, kind: Store) -> Self {
        Self::with(version, kind, true).await
    }

    /// A world whose crawl reads permissions or not (`SEARCH_PERMISSIONS`); searches always
    /// filter by them.
    async fn with(version: ApiVersion, kind: Store, read_permissions: bool) -> Self {
        let sim = Simulator::start().await.unwrap();
        sim.set_anonymous_access(true);
        let (base, token) = match version {
            ApiVersion::V2 => (sim.base_url_v2(), API_TOKEN),
            ApiVersion::V1 => (sim.base_url_v1(), PAT),
        };
        let mut site = ConfluenceSettings::new(base, version, Secret::new(token));
        site.email = Some(EMAIL.into());
        site.anonymous_access = true;
        site.read_permissions = read_permissions;
        let mut config = ConfluenceConfig::from(site);
        config.retry = RetryPolicy {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let embedder = Arc::new(LetterEmbedder::default());
        let pipeline = Pipeline::new(
            Arc::new(ConfluenceClient::new(config).unwrap()),
            Arc::new(MarkdownChunker::default()),
            embedder.clone() as Arc<dyn Embedder>,
            index_store(kind, dir.path()).await,
        )
        .await
        .unwrap()
        .with_options(PipelineOptions {
            reader_ttl: TTL,
            ..PipelineOptions::default()
        });
        let mut hooks = WebhookSettings::new(Secret::new(SECRET), dir.path().join("journal"));
        hooks.debounce = Duration::from_millis(10);
        let metrics = Arc::new(Metrics::default());
        let webhook = Webhook::start(hooks, &pipeline, metrics.clone()).unwrap();
        let gate = SearchGate::new(
            &SearchSettings {
                api_keys: vec![Secret::new(GATEWAY)],
                ..SearchSettings::default()
            },
            "127.0.0.1",
        )
        .unwrap();
        let state = AppState::new(pipeline.clone(), Some(webhook), metrics, gate);
        Self {
            sim,
            version,
            pipeline,
            embedder,
            searches: AtomicUsize::new(0),
            state,
            _dir: dir,
        }
    }

    /// The name `as` takes for a user: the account id on Cloud, the username on Data Center.
    fn who(&self, name: &str) -> String {
        match self.version {
            ApiVersion::V2 => SimUser::account_id(name),
            ApiVersion::V1 => name.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let request = Request::get(path)
            .header("authorization", format!("Bearer {GATEWAY}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = router(&self.state, request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// The titles `user` (a name; `None` for anonymous) finds for `q`, `k` at most.
    async fn seen_k(
        &self,
        user: Option<&str>,
        q: &str,
        k: usize,
        space: Option<&str>,
    ) -> Vec<Value> {
        let mut path = format!("/search?q={q}&k={k}");
        if let Some(user) = user {
            path.push_str(&format!("&as={}", self.who(user)));
        }
        if let Some(space) = space {
            path.push_str(&format!("&space={space}"));
        }
        self.searches.fetch_add(1, Ordering::SeqCst);
        let (status, body) = self.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body["hits"].as_array().cloned().unwrap_or_default()
    }

    async fn seen(&self, user: Option<&str>) -> BTreeSet<String> {
        self.seen_k(user, "zebra", 50, None)
            .await
            .iter()
            .filter_map(|h| h["title"].as_str().map(str::to_owned))
            .collect()
    }

    /// Delivers a signed webhook body in-process.
    async fn deliver(&self, body: String) {
        let request = Request::post("/confluence/events")
            .header("content-type", "application/json")
            .header(
                "x-hub-signature",
                webhook::sign(SECRET.as_bytes(), body.as_bytes()),
            )
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = router(&self.state, request).await;
        assert_eq!(response.status(), 200);
    }

    /// Tells the index that page `id`'s restrictions changed, as each deployment learns it:
    /// Data Center sends `content_permissions_updated`; Cloud sends no event for it, so a page
    /// event (an edit) or the next crawl carries it.
    async fn restrictions_changed(&self, id: &PageId) {
        match self.version {
            ApiVersion::V1 => {
                let before = self.pipeline.store().rule_changes().await.unwrap();
                self.deliver(self.sim.permissions_webhook_body(id)).await;
                // Noted for crawls under way, here or in another process, before the pages it
                // reaches are read (after the answer, which waits on no index).
                let store = self.pipeline.store();
                until(Duration::from_secs(5), "the change is noted", || async {
                    store.rule_changes().await.unwrap() > before
                })
                .await;
            }
            ApiVersion::V2 => {
                self.deliver(
                    self.sim
                        .webhook_body(PageEvent::Updated, id, BodyShape::Cloud),
                )
                .await;
            }
        }
    }

    /// Tells the index about a permission change as each deployment learns it: Data Center
    /// sends `dc_event`; Cloud sends no event for permission changes, so the next crawl finds it
    /// (embedding nothing).
    async fn learn(&self, dc_event: String) {
        match self.version {
            ApiVersion::V1 => self.deliver(dc_event).await,
            ApiVersion::V2 => {
                let report = self.pipeline.sync(&Scope::all()).await.unwrap();
                assert_eq!(report.chunks_embedded, 0, "{report:?}");
            }
        }
    }
}

fn set(titles: &[&str]) -> BTreeSet<String> {
    titles.iter().map(|t| (*t).to_owned()).collect()
}

async fn scenario(version: ApiVersion, kind: Store) {
    let w = World::new(version, kind).await;
    let sim = &w.sim;
    sim.add_user("ann", &["staff"]);
    sim.add_user("bob", &["staff", "hr"]);
    sim.add_user("carl", &[]);
    sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
    sim.set_space_readers("PUB", Grants::anyone());
    let deploy = sim.create_page("ENG", "Deploy runbook", "<p>zebra deploy steps</p>");
    let salary = sim.create_page("ENG", "Salary bands", "<p>zebra salary bands</p>");
    let bonus = sim.create_child("ENG", "Bonus policy", "<p>zebra bonus</p>", Some(&salary));
    sim.create_page("PUB", "Welcome", "<p>zebra welcome</p>");
    sim.restrict_page(&salary, Some(Grants::only(&[], &["hr"])));
    let report = w.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(report.pages_updated, 4, "{report:?}");

    // A restricted page (and its child, through the ancestor) for members only.
    assert_eq!(w.seen(None).await, set(&["Welcome"]));
    assert_eq!(w.seen(Some("carl")).await, set(&["Welcome"]));
    // A user Confluence does not know is answered as one it knows who holds no grant (carl),
    // so the answer does not tell who exists; the miss is remembered, not asked again.
    sim.clear_log();
    assert_eq!(w.seen(Some("nobody")).await, set(&["Welcome"]));
    let calls = sim.count(Route::Permissions);
    assert!(calls > 0);
    assert_eq!(w.seen(Some("nobody")).await, set(&["Welcome"]));
    assert_eq!(
        sim.count(Route::Permissions),
        calls,
        "a repeated guess costs no call"
    );
    assert_eq!(
        w.seen(Some("ann")).await,
        set(&["Welcome", "Deploy runbook"])
    );
    let all = set(&["Welcome", "Deploy runbook", "Salary bands", "Bonus policy"]);
    assert_eq!(w.seen(Some("bob")).await, all);

    // Reading a page back (MCP's get_page) and the spaces (list_spaces) obey the same rule.
    let as_user = |name: &str| Caller::User(w.who(name));
    let page = w.pipeline.page_text(&bonus, &as_user("bob")).await.unwrap();
    assert!(page.is_some_and(|p| p.title == "Bonus policy" && p.markdown == "zebra bonus"));
    assert_eq!(
        w.pipeline.page_text(&bonus, &as_user("ann")).await.unwrap(),
        None
    );
    assert_eq!(
        w.pipeline
            .page_text(&bonus, &Caller::Anonymous)
            .await
            .unwrap(),
        None
    );
    let spaces = |caller: Caller| {
        let pipeline = w.pipeline.clone();
        async move {
            pipeline
                .spaces(&caller)
                .await
                .unwrap()
                .into_iter()
                .map(|s| (s.key, s.pages))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        spaces(as_user("bob")).await,
        [("ENG".into(), 3), ("PUB".into(), 1)]
    );
    assert_eq!(
        spaces(as_user("ann")).await,
        [("ENG".into(), 1), ("PUB".into(), 1)]
    );
    assert_eq!(spaces(Caller::Anonymous).await, [("PUB".into(), 1)]);
    let err = w
        .pipeline
        .search(
            "zebra",
            5,
            &SearchFilter {
                space_key: Some("ENG".into()),
                caller: Caller::Anonymous,
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no space ENG"),
        "a space the caller cannot read is unknown: {err}"
    );

    // Lifting the ancestor's restriction shows the descendant too, embedding nothing (but the
    // questions asked).
    let embedded = w.embedder.embedded() - w.searches.load(Ordering::SeqCst);
    sim.restrict_page(&salary, None);
    w.learn(sim.permissions_webhook_body(&salary)).await;
    until(
        Duration::from_secs(2),
        "ann sees the lifted pages",
        || async { w.seen(Some("ann")).await == all },
    )
    .await;
    assert_eq!(
        w.embedder.embedded() - w.searches.load(Ordering::SeqCst),
        embedded,
        "a permission-only change embeds nothing"
    );
    assert_eq!(w.seen(None).await, set(&["Welcome"]));

    // A restriction added in Confluence hides the page within 2 seconds of its event.
    sim.restrict_page(&deploy, Some(Grants::only(&["bob"], &[])));
    w.restrictions_changed(&deploy).await;
    until(
        Duration::from_secs(2),
        "ann loses the restricted page",
        || async { !w.seen(Some("ann")).await.contains("Deploy runbook") },
    )
    .await;
    assert!(w.seen(Some("bob")).await.contains("Deploy runbook"));
    assert!(w.seen(Some("ann")).await.contains("Bonus policy"));

    // A restriction on the parent, learnt from its event, hides the child as well.
    sim.restrict_page(&salary, Some(Grants::only(&["bob"], &[])));
    w.learn(sim.permissions_webhook_body(&salary)).await;
    until(
        Duration::from_secs(2),
        "the child follows its parent",
        || async { w.seen(Some("ann")).await == set(&["Welcome"]) },
    )
    .await;
    let held = w.pipeline.store().page(&bonus).await.unwrap().unwrap();
    assert_eq!(held.ancestor_ids, std::slice::from_ref(&salary));

    // A space made private hides all of its pages from those outside.
    sim.set_space_readers("PUB", Grants::only(&[], &["staff"]));
    w.learn(sim.space_permissions_webhook_body("PUB")).await;
    // Both at once: while OpenSearch switches a page to its new chunks, a search that runs
    // across the switch may miss the page altogether for a moment (it fails closed).
    until(
        Duration::from_secs(2),
        "the private space hides from all but staff",
        || async { w.seen(None).await.is_empty() && w.seen(Some("ann")).await.contains("Welcome") },
    )
    .await;

    // A user removed from a group keeps access until the cached membership expires, not after.
    sim.set_space_readers("ENG", Grants::only(&[], &["staff", "hr"]));
    sim.restrict_page(&salary, Some(Grants::only(&[], &["hr"])));
    w.learn(sim.permissions_webhook_body(&salary)).await;
    until(
        Duration::from_secs(2),
        "bob reads salary through hr",
        || async { w.seen(Some("bob")).await.contains("Salary bands") },
    )
    .await;
    // Once the cached membership has expired, a search looks bob up afresh (and caches it).
    tokio::time::sleep(TTL).await;
    assert!(w.seen(Some("bob")).await.contains("Salary bands"));
    sim.add_user("bob", &["staff"]);
    let removed = Instant::now();
    assert!(
        w.seen(Some("bob")).await.contains("Salary bands"),
        "the membership is cached for PERMISSION_CACHE_TTL"
    );
    until(TTL * 5, "bob loses salary after the TTL", || async {
        !w.seen(Some("bob")).await.contains("Salary bands")
    })
    .await;
    assert!(
        removed.elapsed() >= TTL / 2,
        "the membership was cached: it changed after {:?}",
        removed.elapsed()
    );
}

#[tokio::test]
async fn permissions_follow_confluence_on_the_embedded_store_v2() {
    scenario(ApiVersion::V2, Store::Embedded).await;
}

#[tokio::test]
async fn permissions_follow_confluence_on_the_embedded_store_v1() {
    scenario(ApiVersion::V1, Store::Embedded).await;
}

#[tokio::test]
async fn a_crawl_that_read_no_permissions_shows_nothing_to_a_filtered_search() {
    for version in [ApiVersion::V2, ApiVersion::V1] {
        // SEARCH_PERMISSIONS=off at the crawl, a permission-filtered server later.
        let w = World::with(version, Store::Embedded, false).await;
        w.sim.set_space_readers("PUB", Grants::anyone());
        w.sim.create_page("PUB", "Welcome", "<p>zebra welcome</p>");
        w.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(w.seen(None).await, set(&[]), "{version}");
        let unfiltered = SearchFilter {
            space_key: None,
            caller: Caller::Unfiltered,
        };
        let hits = w.pipeline.search("zebra", 5, &unfiltered).await.unwrap();
        assert_eq!(
            hits.len(),
            1,
            "{version}: the page is indexed, for SEARCH_PERMISSIONS=off"
        );
    }
}

/// Deletes the indices `test` created in this process.
async fn drop_indices(test: &str) {
    let url = std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://localhost:9200".into());
    let pattern = format!("docbrain-test-perm-{test}-{}-*", std::process::id());
    let _ = reqwest::Client::new()
        .delete(format!("{url}/{pattern}"))
        .send()
        .await;
}

#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn permissions_follow_confluence_on_opensearch() {
    scenario(ApiVersion::V2, Store::OpenSearch("scenario")).await;
    scenario(ApiVersion::V1, Store::OpenSearch("scenario")).await;
    drop_indices("scenario").await;
}

/// Each of `from`, kept `percent` times in a hundred.
fn some<'a>(rng: &mut Rng, from: &[&'a str], percent: u64) -> Vec<&'a str> {
    from.iter()
        .copied()
        .filter(|_| rng.chance(percent))
        .collect()
}

const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const SPACES: [&str; 2] = ["SA", "SB"];

fn grants(rng: &mut Rng) -> Grants {
    Grants::only(&some(rng, &USERS, 25), &some(rng, &GROUPS, 30))
}

/// One random world: users in random groups, spaces open or not, a forest of pages with random
/// restrictions, some with a comment; then every user's search results (pages and comments,
/// a comment readable exactly when its page is) against the rule evaluated directly.
async fn property(seed: u64, kind: Store) {
    let mut rng = Rng::new(seed);
    let version = if seed.is_multiple_of(2) {
        ApiVersion::V2
    } else {
        ApiVersion::V1
    };
    let w = World::new(version, kind).await;
    let sim = &w.sim;
    for user in USERS {
        sim.add_user(user, &some(&mut rng, &GROUPS, 40));
    }
    for space in SPACES {
        let readers = if rng.chance(30) {
            Grants::anyone()
        } else {
            grants(&mut rng)
        };
        sim.set_space_readers(space, readers);
    }
    let mut pages: Vec<(PageId, String)> = Vec::new();
    // The comments: their page, and the title their hits show.
    let mut comments: Vec<(PageId, String)> = Vec::new();
    for i in 0..14 {
        let space = SPACES[rng.below(SPACES.len())];
        let parent = (!pages.is_empty() && rng.chance(60))
            .then(|| pages[rng.below(pages.len())].clone())
            .filter(|(p, _)| sim.page(p).is_some_and(|p| p.space_key == space));
        let title = format!("Page {i}");
        let id = sim.create_child(
            space,
            &title,
            &format!("<p>zebra token{i} notes</p>"),
            parent.as_ref().map(|(p, _)| p),
        );
        if rng.chance(35) {
            sim.restrict_page(&id, Some(grants(&mut rng)));
        }
        if rng.chance(40) {
            sim.add_comment(&id, &title, &format!("<p>zebra token{i} remark</p>"));
            comments.push((id.clone(), format!("Comment by {title}")));
        }
        pages.push((id, title));
    }
    // Every third world also has a chain deeper than the 25 ancestors Cloud answers by default,
    // with a folder in it on Cloud, and restrictions anywhere along it.
    if seed.is_multiple_of(3) {
        let space = SPACES[rng.below(SPACES.len())];
        let mut at: Option<PageId> = None;
        for level in 0..30 {
            if version == ApiVersion::V2 && level == 7 {
                let folder = sim.create_folder(space, "Folder", at.as_ref());
                if rng.chance(50) {
                    sim.restrict_page(&folder, Some(grants(&mut rng)));
                }
                at = Some(folder);
                continue;
            }
            let i = pages.len();
            let title = format!("Page {i}");
            let id = sim.create_child(
                space,
                &title,
                &format!("<p>zebra token{i} deep</p>"),
                at.as_ref(),
            );
            if (level == 0 && rng.chance(70)) || rng.chance(5) {
                sim.restrict_page(&id, Some(grants(&mut rng)));
            }
            pages.push((id.clone(), title));
            at = Some(id);
        }
    }
    w.pipeline.sync(&Scope::all()).await.unwrap();
    let context = format!("seed {seed} ({version}, {kind:?})");
    // What `user` may see (of `space`): the pages they may read, and those pages' comments.
    let allowed_for = |user: Option<&str>, space: Option<&str>| -> BTreeSet<String> {
        pages
            .iter()
            .chain(&comments)
            .filter(|(id, _)| sim.may_read(user, id))
            .filter(|(id, _)| space.is_none_or(|s| sim.page(id).is_some_and(|p| p.space_key == s)))
            .map(|(_, t)| t.clone())
            .collect()
    };
    let readers: Vec<Option<&str>> = std::iter::once(None).chain(USERS.map(Some)).collect();
    for user in readers {
        let allowed = allowed_for(user, None);
        let hits = w.seen_k(user, "zebra", 50, None).await;
        let titles: BTreeSet<String> = hits
            .iter()
            .filter_map(|h| h["title"].as_str().map(str::to_owned))
            .collect();
        sees_all(&titles, &allowed, &format!("{context}: {user:?}"));
        // No snippet carries another page's words.
        for hit in &hits {
            let title = hit["title"].as_str().unwrap();
            let page = title.trim_start_matches("Comment by ");
            let own = format!("token{}", page.trim_start_matches("Page "));
            let text = hit["text"].as_str().unwrap();
            assert!(text.contains(&own), "{context}: {text}");
        }
        // A small k and a space filter never let an unreadable page in, nor drop a readable one.
        let top = w.seen_k(user, "zebra", 3, None).await;
        assert_eq!(top.len(), allowed.len().min(3), "{context}: {user:?} k=3");
        for space in SPACES {
            let in_space = allowed_for(user, Some(space));
            if in_space.is_empty() {
                // A space the user can read nothing in is as unknown as one that is not there.
                let mut path = format!("/search?q=zebra&k=50&space={space}");
                if let Some(user) = user {
                    path.push_str(&format!("&as={}", w.who(user)));
                }
                let (status, body) = w.get(&path).await;
                assert_eq!(status, 400, "{context}: {user:?} in {space}: {body}");
                assert!(!body.to_string().contains("Page "), "{context}: {body}");
                continue;
            }
            let got: BTreeSet<String> = w
                .seen_k(user, "zebra", 50, Some(space))
                .await
                .iter()
                .filter_map(|h| h["title"].as_str().map(str::to_owned))
                .collect();
            sees_all(&got, &in_space, &format!("{context}: {user:?} in {space}"));
        }
    }
    // Restrictions change in Confluence, and a crawl (which reads unchanged pages' rules from
    // its listings where it can) brings every user's results in line again.
    for (id, _) in &pages {
        if rng.chance(30) {
            let grants = rng.chance(50).then(|| grants(&mut rng));
            sim.restrict_page(id, grants);
        }
    }
    let report = w.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(report.chunks_embedded, 0, "{context}: {report:?}");
    for user in std::iter::once(None).chain(USERS.map(Some)) {
        let allowed = allowed_for(user, None);
        let titles: BTreeSet<String> = w
            .seen_k(user, "zebra", 50, None)
            .await
            .iter()
            .filter_map(|h| h["title"].as_str().map(str::to_owned))
            .collect();
        sees_all(
            &titles,
            &allowed,
            &format!("{context}, after the re-crawl: {user:?}"),
        );
    }
}

/// What one search of 50 hits shows a user (`got`) against what they may read (`allowed`): only
/// what they may read, and all of it, or 50 of it when they may read more than one search
/// returns (which 50 is the ranking's).
fn sees_all(got: &BTreeSet<String>, allowed: &BTreeSet<String>, context: &str) {
    let leaked: Vec<&String> = got.difference(allowed).collect();
    assert!(
        leaked.is_empty(),
        "{context}: shown what it may not read: {leaked:?}"
    );
    if allowed.len() <= 50 {
        assert_eq!(got, allowed, "{context}");
    } else {
        assert_eq!(got.len(), 50, "{context}: {got:?} of {allowed:?}");
    }
}

fn seeds() -> u64 {
    std::env::var("PERMISSION_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

#[tokio::test]
async fn search_matches_the_rule_over_random_restriction_trees_embedded() {
    for seed in 0..seeds() {
        property(seed, Store::Embedded).await;
    }
}

#[tokio::test]
#[ignore = "needs an OpenSearch node (OPENSEARCH_URL): scripts/test.sh starts one and runs it"]
async fn search_matches_the_rule_over_random_restriction_trees_opensearch() {
    for seed in 0..seeds() {
        property(seed, Store::OpenSearch("property")).await;
    }
    drop_indices("property").await;
}
