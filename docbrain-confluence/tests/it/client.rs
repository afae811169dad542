//! The Confluence client and crawl against the simulator over real HTTP on loopback, for both
//! API versions.

use std::sync::Arc;
use std::time::Duration;

use docbrain_confluence::simulator::{Fault, Route, Simulator, API_TOKEN, EMAIL, PAT};
use docbrain_confluence::ConfluenceSettings;
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::{
    ErrorKind, Fetched, Fetcher, IndexStore, MarkdownChunker, MemoryStore, PageId, PageOutcome,
    PageStatus, Pipeline, PipelineOptions, Scope, Secret,
};
use docbrain_http::RetryPolicy;
use docbrain_testsuite::{until, LetterEmbedder};
use futures::TryStreamExt;

const VERSIONS: [ApiVersion; 2] = [ApiVersion::V2, ApiVersion::V1];

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(10),
    }
}

fn config(sim: &Simulator, version: ApiVersion, spaces: &[&str]) -> ConfluenceConfig {
    let (base, token) = match version {
        ApiVersion::V2 => (sim.base_url_v2(), API_TOKEN),
        ApiVersion::V1 => (sim.base_url_v1(), PAT),
    };
    let mut site = ConfluenceSettings::new(base, version, Secret::new(token));
    site.email = Some(EMAIL.into());
    site.space_keys = spaces.iter().map(|s| (*s).to_owned()).collect();
    let mut c = ConfluenceConfig::from(site);
    c.retry = quick_retry();
    c.extractor = Some(test_extractor());
    c
}

/// The attachment extractor's child when this test binary is started as one; a plain
/// `--ignored` run does nothing.
#[test]
#[ignore = "the child process of the attachment tests"]
fn extractor_child() {
    docbrain_confluence::extract::serve_if_child();
}

/// This test binary as the attachment extractor: it runs `extractor_child` only.
fn test_extractor() -> docbrain_confluence::extract::Extractor {
    docbrain_confluence::simulator::test_extractor("client::extractor_child")
}

fn client(sim: &Simulator, version: ApiVersion, spaces: &[&str]) -> ConfluenceClient {
    ConfluenceClient::new(config(sim, version, spaces)).unwrap()
}

struct Crawl {
    pipeline: Pipeline,
    store: Arc<MemoryStore>,
    embedder: Arc<LetterEmbedder>,
}

async fn crawl_setup(fetcher: impl Fetcher) -> Crawl {
    crawl_into(fetcher, Arc::new(MemoryStore::new())).await
}

/// A crawl by `fetcher` into `store`.
async fn crawl_into(fetcher: impl Fetcher, store: Arc<MemoryStore>) -> Crawl {
    let embedder = Arc::new(LetterEmbedder::default());
    let pipeline = Pipeline::new(
        Arc::new(fetcher),
        Arc::new(MarkdownChunker::default()),
        embedder.clone(),
        store.clone(),
    )
    .await
    .unwrap();
    Crawl {
        pipeline,
        store,
        embedder,
    }
}

fn body(i: usize) -> String {
    format!("<h2>Part {i}</h2><p>Body of page {i}: how to restart service number {i}.</p>")
}

/// Asserts the index holds exactly the simulator's current pages at their versions.
async fn assert_index_matches(sim: &Simulator, store: &MemoryStore) {
    assert_eq!(
        docbrain_testsuite::indexed_versions(store).await,
        sim.versions(None)
    );
}

#[tokio::test]
async fn listings_follow_next_links_across_short_pages_in_both_versions() {
    let sim = Simulator::start().await.unwrap();
    for i in 0..23 {
        sim.create_page("ENG", &format!("Eng {i}"), &body(i));
    }
    for i in 0..5 {
        sim.create_page("OPS", &format!("Ops {i}"), &body(i));
    }
    let trashed = sim.create_page("ENG", "Old", &body(99));
    sim.set_status(&trashed, PageStatus::Trashed);
    let hidden = sim.create_page("ENG", "Secret", &body(98));
    sim.hide_page(&hidden, true);
    // Servers return fewer results than `limit` asks for: that is not the end of the listing.
    sim.set_max_results(4);
    for version in VERSIONS {
        sim.clear_log();
        let c = client(&sim, version, &["ENG", "OPS"]);
        let scope = Scope::all();
        let listed: Vec<_> = c.list(&scope).try_collect().await.unwrap();
        assert_eq!(listed.len(), 28, "{version}");
        assert!(listed.iter().all(|s| s.version == Some(1)));
        assert_eq!(listed.iter().filter(|s| s.space_key == "OPS").count(), 5);
        assert!(!listed.iter().any(|s| s.id == trashed || s.id == hidden));
        // 23 pages at 4 per answer = 6 requests, 5 pages = 2 (Cloud lists twice: v2 for the
        // pages, v1 for their restrictions and ancestors); no page body fetched.
        let lists = if version == ApiVersion::V2 { 16 } else { 8 };
        assert_eq!(sim.count(Route::PageList), lists, "{version}");
        assert_eq!(sim.count(Route::PageBody), 0, "{version}");
    }
}

#[tokio::test]
async fn a_fetched_page_has_markdown_ancestors_labels_and_a_link() {
    let sim = Simulator::start().await.unwrap();
    let root = sim.create_page("ENG", "Engineering Home", "<p>Welcome</p>");
    let runbooks = sim.create_child("ENG", "Runbooks", "<p>All runbooks</p>", Some(&root));
    let page = sim.create_child(
        "ENG",
        "Redis eviction",
        "<h1>Eviction</h1><ac:structured-macro ac:name=\"code\"><ac:parameter ac:name=\"language\">bash</ac:parameter><ac:plain-text-body><![CDATA[redis-cli info memory]]></ac:plain-text-body></ac:structured-macro>",
        Some(&runbooks),
    );
    sim.set_labels(&page, &["redis", "oncall"]);
    for version in VERSIONS {
        let c = client(&sim, version, &["ENG"]);
        let Fetched::Page(p) = c.fetch(&page).await.unwrap() else {
            panic!("{version}: page is gone");
        };
        assert_eq!(p.title, "Redis eviction");
        assert_eq!(p.space_key, "ENG");
        assert_eq!(p.version, 2, "labels bumped the version");
        assert_eq!(p.status, PageStatus::Current);
        assert_eq!(p.ancestors, ["Engineering Home", "Runbooks"], "{version}");
        assert_eq!(p.labels, ["redis", "oncall"]);
        assert!(p.body.contains("# Eviction"), "{}", p.body);
        assert!(
            p.body.contains("```bash\nredis-cli info memory\n```"),
            "{}",
            p.body
        );
        let url = p.url.unwrap();
        assert!(url.starts_with(&format!("http://{}", sim.addr())), "{url}");
        assert!(
            url.contains(page.as_str()) || url.contains("Redis+eviction"),
            "{url}"
        );
    }
}

#[tokio::test]
async fn deleted_hidden_and_trashed_pages_leave_the_index_and_restored_ones_return() {
    for version in VERSIONS {
        // A fresh Confluence per version: the first run deletes pages for good.
        let sim = Simulator::start().await.unwrap();
        let ids: Vec<PageId> = (0..10)
            .map(|i| sim.create_page("ENG", &format!("Page {i}"), &body(i)))
            .collect();
        let crawl = crawl_setup(client(&sim, version, &["ENG"])).await;
        let first = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(first.pages_updated, 10, "{version}");
        assert_index_matches(&sim, &crawl.store).await;

        sim.delete_page(&ids[0]);
        sim.set_status(&ids[1], PageStatus::Trashed);
        sim.hide_page(&ids[2], true);
        sim.set_status(&ids[3], PageStatus::Archived);
        // The webhook path: reconcile one page at a time.
        for id in &ids[..4] {
            crawl.pipeline.reconcile(id).await.unwrap();
        }
        assert_eq!(crawl.store.list_pages().await.unwrap().len(), 6);
        assert_index_matches(&sim, &crawl.store).await;

        sim.set_status(&ids[1], PageStatus::Current);
        sim.hide_page(&ids[2], false);
        let again = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(again.pages_updated, 2, "{version}: {again:?}");
        assert_index_matches(&sim, &crawl.store).await;
    }
}

#[tokio::test]
async fn pages_outside_the_configured_spaces_are_never_indexed_and_leave_when_moved_out() {
    for version in VERSIONS {
        let sim = Simulator::start().await.unwrap();
        let ours = sim.create_page("ENG", "Ours", &body(1));
        let theirs = sim.create_page("HR", "Salaries", &body(2));
        let crawl = crawl_setup(client(&sim, version, &["ENG"])).await;
        // A site-wide webhook names a page of another space.
        let outcome = crawl.pipeline.reconcile(&theirs).await.unwrap();
        assert_eq!(outcome, PageOutcome::Absent, "{version}");
        crawl.pipeline.reconcile(&ours).await.unwrap();
        assert_eq!(
            crawl.store.list_pages().await.unwrap().len(),
            1,
            "{version}"
        );
        // An indexed page moves out of scope.
        sim.move_page(&ours, "HR");
        let outcome = crawl.pipeline.reconcile(&ours).await.unwrap();
        assert!(
            matches!(outcome, PageOutcome::Deleted { .. }),
            "{version}: {outcome:?}"
        );
        assert!(
            crawl.store.list_pages().await.unwrap().is_empty(),
            "{version}"
        );
    }
}

#[tokio::test]
async fn an_unchanged_thousand_page_space_is_recrawled_without_fetching_a_body() {
    let sim = Simulator::start().await.unwrap();
    for i in 0..1000 {
        sim.create_page("BIG", &format!("Page {i}"), &body(i));
    }
    for version in VERSIONS {
        let crawl = crawl_setup(client(&sim, version, &["BIG"])).await;
        let first = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(first.pages_updated, 1000, "{version}");
        let embedded_once = crawl.embedder.embedded();

        sim.clear_log();
        let second = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(second.pages_unchanged, 1000, "{version}");
        assert_eq!(second.chunks_embedded, 0);
        assert_eq!(crawl.embedder.embedded(), embedded_once, "nothing embedded");
        assert_eq!(
            sim.count(Route::PageBody),
            0,
            "{version}: no page body fetched"
        );
        let listing_requests = sim.count(Route::PageList);
        let expected = match version {
            // 250 per answer, and v1's listing of restrictions and ancestors at 100 per answer.
            ApiVersion::V2 => 4 + 10,
            ApiVersion::V1 => 10, // 100 per answer, restrictions and ancestors included
        };
        assert_eq!(listing_requests, expected, "{version}");

        // One edit: exactly one body fetched on the next crawl.
        let edited = sim.current_pages()[500].id;
        sim.edit_page(&PageId::from(edited), &body(5000));
        sim.clear_log();
        let third = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!((third.pages_updated, third.pages_unchanged), (1, 999));
        assert_eq!(sim.count(Route::PageBody), 1, "{version}");
    }
}

#[tokio::test]
async fn a_rate_limit_storm_and_server_errors_are_waited_out() {
    let sim = Simulator::start().await.unwrap();
    for i in 0..12 {
        sim.create_page("ENG", &format!("Page {i}"), &body(i));
    }
    for version in VERSIONS {
        sim.clear_log();
        sim.inject(Fault::new(429, 5).retry_after("0"));
        sim.inject(Fault::new(503, 2).html().on(Route::PageBody));
        sim.inject(
            Fault::new(503, 1)
                .retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
                .on(Route::PageList),
        );
        let crawl = crawl_setup(client(&sim, version, &["ENG"])).await;
        let report = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert!(report.is_clean(), "{version}: {report:?}");
        assert_eq!(report.pages_updated, 12);
        assert_index_matches(&sim, &crawl.store).await;
        let refused = sim
            .requests()
            .iter()
            .filter(|r| r.status == 429 || r.status == 503)
            .count();
        assert_eq!(
            refused, 8,
            "{version}: every fault was answered and retried"
        );
    }
}

#[tokio::test]
async fn a_rate_limit_storm_at_scale_holds_back_every_request_for_its_retry_after() {
    use docbrain_confluence::simulator::Grants;
    let sim = Simulator::start().await.unwrap();
    for s in 0..4 {
        let space = format!("S{s}");
        sim.set_space_readers(&space, Grants::only(&[], &["staff"]));
        for i in 0..250 {
            sim.create_page(&space, &format!("{space} page {i}"), &body(i));
        }
    }
    for version in VERSIONS {
        let mut config = config(&sim, version, &[]);
        config.retry.max_backoff = Duration::from_secs(30);
        let crawl = crawl_setup(ConfluenceClient::new(config).unwrap()).await;
        let crawl = Crawl {
            pipeline: crawl.pipeline.with_options(PipelineOptions {
                fetch_concurrency: 8,
                ..PipelineOptions::default()
            }),
            ..crawl
        };
        sim.clear_log();
        // 5 ms a call: the crawl after the storm outlasts the tolerance below.
        sim.set_latency(Duration::from_millis(5));
        // 20 refusals once the crawl is under way: two rounds of all 8 requests in flight,
        // then 4 of the next 8 (the other 4 succeed, and their slots would go on at once).
        sim.inject(Fault::new(429, 20).retry_after("1").after(200));
        let report = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert!(report.is_clean(), "{version}: {report:?}");
        assert_eq!(report.pages_updated, 1000, "{version}");
        assert_index_matches(&sim, &crawl.store).await;
        let log = sim.requests();
        let refusals: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
        assert_eq!(refusals.len(), 20, "{version}: the storm was answered");
        // After a 429 asked for a second, only requests already on their way arrive within it.
        for refusal in &refusals {
            let early = log.iter().find(|r| {
                r.at > refusal.at + Duration::from_millis(150)
                    && r.at < refusal.at + Duration::from_millis(950)
            });
            assert!(
                early.is_none(),
                "{version}: {early:?} arrived {:?} after a 429 that asked for 1 s",
                early.map(|r| r.at - refusal.at)
            );
        }
    }
}

#[tokio::test]
async fn a_rate_limit_that_outlasts_the_retries_hands_its_retry_after_to_the_caller() {
    let sim = Simulator::start().await.unwrap();
    let id = sim.create_page("ENG", "Busy", &body(1));
    for version in VERSIONS {
        sim.inject(Fault::new(429, u32::MAX).retry_after("7"));
        let err = client(&sim, version, &["ENG"])
            .fetch(&id)
            .await
            .unwrap_err();
        sim.clear_faults();
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{version}: {err}");
        assert_eq!(
            err.retry_after(),
            Some(Duration::from_secs(7)),
            "{version}: the webhook's own backoff waits what Confluence asked"
        );
    }
}

#[tokio::test]
async fn next_links_to_another_host_or_back_to_a_visited_page_are_refused() {
    let sim = Simulator::start().await.unwrap();
    for i in 0..3 {
        sim.create_page("ENG", &format!("Page {i}"), &body(i));
    }
    // Another host (another port on loopback is another origin) that must never see a request.
    let elsewhere = Simulator::start().await.unwrap();
    for version in VERSIONS {
        let c = client(&sim, version, &["ENG"]);
        sim.set_next_link(Some(&format!(
            "{}/rest/api/content?start=3",
            elsewhere.base_url_v1()
        )));
        let err = c
            .list(&Scope::all())
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("not following it with the credentials"),
            "{version}: {err}"
        );
        assert!(
            elsewhere.requests().is_empty(),
            "{version}: the token went elsewhere"
        );

        let space_id = sim.add_space("ENG", "Engineering"); // already there: its id
        let again = match version {
            ApiVersion::V2 => format!("/wiki/api/v2/spaces/{space_id}/pages?limit=250"),
            ApiVersion::V1 => "/rest/api/content?spaceKey=ENG&type=page&status=current".into(),
        };
        sim.set_next_link(Some(&again));
        let err = c
            .list(&Scope::all())
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("would never end"),
            "{version}: {err}"
        );
        sim.set_next_link(None);
    }
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused_not_buffered() {
    let sim = Simulator::start().await.unwrap();
    let id = sim.create_page("ENG", "Huge", &format!("<p>{}</p>", "x".repeat(64 * 1024)));
    for version in VERSIONS {
        let mut c = config(&sim, version, &["ENG"]);
        c.max_body_bytes = 16 * 1024;
        let err = ConfluenceClient::new(c)
            .unwrap()
            .fetch(&id)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("larger than 16384 bytes"),
            "{version}: {err}"
        );
    }
}

#[tokio::test]
async fn an_interrupted_crawl_resumes_where_it_stopped() {
    let sim = Simulator::start().await.unwrap();
    for i in 0..60 {
        sim.create_page("ENG", &format!("Page {i}"), &body(i));
    }
    for version in VERSIONS {
        let crawl = crawl_setup(client(&sim, version, &["ENG"])).await;
        // The token is revoked after 25 page bodies: the crawl stops.
        sim.inject(Fault::new(401, u32::MAX).on(Route::PageBody).after(25));
        let err = crawl.pipeline.sync(&Scope::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{version}: {err}");
        let done = crawl.store.list_pages().await.unwrap().len();
        assert!((20..=25).contains(&done), "{version}: {done} pages indexed");

        sim.clear_faults();
        sim.clear_log();
        let resumed = crawl.pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(resumed.pages_updated as usize, 60 - done, "{version}");
        assert_eq!(
            sim.count(Route::PageBody),
            60 - done,
            "{version}: no page fetched twice"
        );
        assert_index_matches(&sim, &crawl.store).await;
    }
}

#[tokio::test]
async fn a_page_limit_caps_the_crawl_and_deletes_nothing() {
    let sim = Simulator::start().await.unwrap();
    for i in 0..30 {
        sim.create_page("ENG", &format!("Page {i}"), &body(i));
    }
    let crawl = crawl_setup(client(&sim, ApiVersion::V2, &["ENG"])).await;
    crawl.pipeline.sync(&Scope::all()).await.unwrap();
    let limited = crawl
        .pipeline
        .sync(&Scope::all().with_page_limit(10))
        .await
        .unwrap();
    assert_eq!(limited.pages_seen, 10);
    assert_eq!(limited.pages_deleted, 0);
    assert_eq!(crawl.store.list_pages().await.unwrap().len(), 30);
}

#[tokio::test]
async fn refused_credentials_fail_at_once_naming_the_setting() {
    let sim = Simulator::start().await.unwrap();
    sim.create_page("ENG", "Page", &body(1));
    for version in VERSIONS {
        sim.clear_log();
        let mut c = config(&sim, version, &["ENG"]);
        c.site.api_token = Secret::new("wrong-token-value");
        let client = ConfluenceClient::new(c).unwrap();
        let err = client
            .list(&Scope::all())
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        let message = err.to_string();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{message}");
        assert_eq!(sim.requests().len(), 1, "{version}: 401 is not retried");
        assert!(!message.contains("wrong-token-value"), "{message}");
        match version {
            ApiVersion::V2 => assert!(message.contains("CONFLUENCE_USER_EMAIL"), "{message}"),
            ApiVersion::V1 => {
                assert!(message.contains("CONFLUENCE_API_TOKEN"), "{message}");
                assert!(message.contains("(HTML page) HTTP Status 401"), "{message}");
            }
        }
        // A refusal is a failure, and the status it came with is kept for readiness.
        let health = client.health().unwrap();
        assert_eq!(health.failed_calls, 1, "{version}");
        assert_eq!(health.refused, Some(401), "{version}");
        assert!(health.last_success_ms.is_none(), "{version}");
        assert_eq!(
            client.check().await.unwrap_err().kind(),
            ErrorKind::Unauthorized
        );
        let crawl = crawl_setup(client).await;
        let err = crawl.pipeline.sync(&Scope::all()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
    }
    // Right credentials: the check passes.
    for version in VERSIONS {
        client(&sim, version, &["ENG"]).check().await.unwrap();
    }
}

#[tokio::test]
async fn mistyped_addresses_are_named_and_not_retried() {
    let sim = Simulator::start().await.unwrap();
    sim.create_page("ENG", "Page", &body(1));
    let attempt = |base: String, version: ApiVersion| {
        let mut c = ConfluenceConfig::from(ConfluenceSettings {
            email: Some(EMAIL.into()),
            ..ConfluenceSettings::new(base, version, Secret::new(API_TOKEN))
        });
        c.retry = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            ..quick_retry()
        };
        async move {
            let started = std::time::Instant::now();
            let err = ConfluenceClient::new(c).unwrap().check().await.unwrap_err();
            (err.to_string(), started.elapsed())
        }
    };
    // https against a plain-HTTP server.
    let https = format!("https://{}/wiki", sim.addr());
    let (message, took) = attempt(https, ApiVersion::V2).await;
    assert!(message.contains("does not speak TLS"), "{message}");
    assert!(took < Duration::from_millis(200), "not retried: {took:?}");
    // A host that does not resolve.
    let (message, took) = attempt("http://no-such-host.invalid/wiki".into(), ApiVersion::V2).await;
    assert!(
        message.contains("cannot resolve no-such-host.invalid"),
        "{message}"
    );
    assert!(took < Duration::from_millis(200), "not retried: {took:?}");
    // A Cloud address without /wiki: the refusal names the likely cause.
    let (message, _) = attempt(format!("http://{}", sim.addr()), ApiVersion::V2).await;
    assert!(message.contains("does not end with /wiki"), "{message}");
}

#[tokio::test]
async fn settings_and_spaces_that_cannot_work_are_named() {
    let sim = Simulator::start().await.unwrap();
    sim.create_page("ENG", "Page", &body(1));
    for version in VERSIONS {
        // No configured space resolves: the setting is wrong.
        let c = client(&sim, version, &["NOPE"]);
        let err = c
            .list(&Scope::all())
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("NOPE"), "{err}");
        assert!(err.to_string().contains("CONFLUENCE_SPACE_KEYS"), "{err}");
        // One of several vanished: the others are still listed (and the crawl purges it).
        let c = client(&sim, version, &["ENG", "NOPE"]);
        let listed: Vec<_> = c.list(&Scope::all()).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1, "{version}");
    }
    let mut no_email = config(&sim, ApiVersion::V2, &[]);
    no_email.site.email = None;
    let err = ConfluenceClient::new(no_email).unwrap_err().to_string();
    assert!(err.contains("CONFLUENCE_USER_EMAIL"), "{err}");
    let bad_url = ConfluenceSettings::new("confluence.local", ApiVersion::V1, Secret::new("t"));
    let err = ConfluenceClient::new(bad_url).unwrap_err().to_string();
    assert!(err.contains("CONFLUENCE_BASE_URL"), "{err}");
    assert!("v3".parse::<ApiVersion>().is_err());
}

#[tokio::test]
async fn an_unreachable_confluence_is_reported_after_bounded_retries() {
    let sim = Simulator::start().await.unwrap();
    let base = sim.base_url_v1();
    drop(sim);
    until(Duration::from_secs(5), "the simulator stopped", || async {
        reqwest::get(&base).await.is_err()
    })
    .await;
    let mut c = ConfluenceConfig::from(ConfluenceSettings::new(
        base.clone(),
        ApiVersion::V1,
        Secret::new(PAT),
    ));
    c.retry = RetryPolicy {
        max_attempts: 3,
        ..quick_retry()
    };
    let err = ConfluenceClient::new(c)
        .unwrap()
        .fetch(&PageId::from(1u64))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    let message = err.to_string();
    assert!(message.contains("after 3 attempts"), "{message}");
    assert!(message.contains(&base), "{message}");
}

#[tokio::test]
async fn crawl_fetches_pages_concurrently_within_the_bound() {
    let sim = Simulator::start().await.unwrap();
    for i in 0..16 {
        sim.create_page("ENG", &format!("Page {i}"), &body(i));
    }
    sim.set_latency(Duration::from_millis(40));
    let crawl = crawl_setup(client(&sim, ApiVersion::V1, &["ENG"])).await;
    let pipeline = crawl.pipeline.with_options(PipelineOptions {
        fetch_concurrency: 8,
        ..PipelineOptions::default()
    });
    let report = pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(report.pages_updated, 16);
    let peak = sim.peak_in_flight();
    assert!((2..=8).contains(&peak), "peak of {peak} requests at once");
}

/// The read rule of a fetched page, with the calls it took.
async fn fetched_access(c: &ConfluenceClient, id: &PageId) -> docbrain_core::ReadAccess {
    match c.fetch(id).await.unwrap() {
        Fetched::Page(page) => page.access,
        Fetched::Gone => panic!("page {id} is gone"),
    }
}

#[tokio::test]
async fn a_page_reads_its_space_permission_and_every_restriction_above_it() {
    use docbrain_confluence::simulator::{Grants, SimUser};
    use docbrain_core::{Principal, Reader};
    for version in VERSIONS {
        let sim = Simulator::start().await.unwrap();
        // Three groups on one space: v2 pages space permissions three to an answer.
        sim.set_space_readers("ENG", Grants::only(&["ann"], &["staff", "eng", "ops"]));
        let top = sim.create_page("ENG", "Top", "<p>top</p>");
        let mid = sim.create_child("ENG", "Mid", "<p>mid</p>", Some(&top));
        let leaf = sim.create_child("ENG", "Leaf", "<p>leaf</p>", Some(&mid));
        sim.restrict_page(&top, Some(Grants::only(&["ann"], &["hr"])));
        sim.restrict_page(&leaf, Some(Grants::only(&["bob"], &["hr"])));
        let c = client(&sim, version, &["ENG"]);
        let access = fetched_access(&c, &leaf).await;
        let (user, group) = match version {
            ApiVersion::V2 => (
                SimUser::account_id as fn(&str) -> String,
                SimUser::group_id as fn(&str) -> String,
            ),
            ApiVersion::V1 => (
                SimUser::user_key as fn(&str) -> String,
                (|g: &str| g.to_owned()) as fn(&str) -> String,
            ),
        };
        let reader =
            |name: &str, groups: &[&str]| Reader::user(user(name), groups.iter().map(|g| group(g)));
        assert_eq!(access.layers().len(), 3, "{version}: {access:?}");
        assert!(access.admits(&reader("zed", &["staff", "hr"])), "{version}");
        assert!(
            !access.admits(&reader("ann", &[])),
            "{version}: the leaf's own restriction"
        );
        assert!(
            !access.admits(&reader("bob", &["eng"])),
            "{version}: the top's restriction"
        );
        assert!(
            !access.admits(&reader("zed", &["hr"])),
            "{version}: the space permission"
        );
        assert!(
            access.layers()[0].contains(&Principal::Group(group("ops"))),
            "{version}: every page of the space permissions read"
        );
        // The same rule without the body, as a crawl reads it for an unchanged page.
        assert_eq!(c.read_access(&leaf).await.unwrap(), access, "{version}");
        // A user's groups, across answers of two.
        sim.add_user("zed", &["staff", "hr", "eng"]);
        let who = match version {
            ApiVersion::V2 => SimUser::account_id("zed"),
            ApiVersion::V1 => "zed".to_owned(),
        };
        assert_eq!(
            c.reader(&who).await.unwrap(),
            reader("zed", &["staff", "hr", "eng"]),
            "{version}"
        );
        // A user Confluence does not know reads what a user without grants reads: the answer
        // does not tell who exists.
        assert_eq!(
            c.reader("no-such-user").await.unwrap(),
            Reader::anonymous(),
            "{version}"
        );
    }
}

/// A chain of `depth` pages under `root` (the last one returned).
fn chain_below(sim: &Simulator, space: &str, root: &PageId, depth: usize) -> PageId {
    let mut at = root.clone();
    for level in 0..depth {
        at = sim.create_child(space, &format!("Level {level}"), "<p>deep</p>", Some(&at));
    }
    at
}

/// A crawl's source that, on its first fetch, restricts `target` and notes the change in the
/// store, as the server does when the permission webhook arrives.
#[derive(Debug)]
struct RestrictedMidCrawl {
    inner: ConfluenceClient,
    sim: Arc<Simulator>,
    store: Arc<MemoryStore>,
    target: PageId,
    done: std::sync::atomic::AtomicBool,
    /// Page bodies fail from then on (the exact re-read cannot happen).
    then_fail: bool,
}

impl RestrictedMidCrawl {
    /// A crawl of ENG in `sim` that restricts `target` on its first fetch (and, with
    /// `then_fail`, fails every page body after it).
    async fn crawl(
        sim: &Arc<Simulator>,
        version: ApiVersion,
        target: &PageId,
        then_fail: bool,
    ) -> Crawl {
        let store = Arc::new(MemoryStore::new());
        let fetcher = Self {
            inner: client(sim, version, &["ENG"]),
            sim: Arc::clone(sim),
            store: Arc::clone(&store),
            target: target.clone(),
            done: std::sync::atomic::AtomicBool::new(false),
            then_fail,
        };
        crawl_into(fetcher, store).await
    }
}

#[async_trait::async_trait]
impl Fetcher for RestrictedMidCrawl {
    fn list<'a>(&'a self, scope: &'a Scope) -> docbrain_core::PageStream<'a> {
        self.inner.list(scope)
    }

    async fn fetch(&self, id: &PageId) -> docbrain_core::Result<Fetched> {
        self.inner.fetch(id).await
    }

    async fn fetch_listed(
        &self,
        summary: &docbrain_core::PageSummary,
    ) -> docbrain_core::Result<Fetched> {
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            use docbrain_confluence::simulator::Grants;
            self.sim
                .restrict_page(&self.target, Some(Grants::only(&[], &["hr"])));
            self.store.note_rules_changed().await?;
        }
        let fetched = self.inner.fetch_listed(summary).await;
        if self.then_fail {
            self.sim
                .inject(Fault::new(503, u32::MAX).on(Route::PageBody));
        }
        fetched
    }

    async fn read_access(&self, id: &PageId) -> docbrain_core::Result<docbrain_core::ReadAccess> {
        self.inner.read_access(id).await
    }
}

#[tokio::test]
async fn a_restriction_noted_during_a_crawl_reaches_the_pages_it_writes_after() {
    use docbrain_confluence::simulator::Grants;
    use docbrain_core::Reader;
    for version in VERSIONS {
        let sim = Arc::new(Simulator::start().await.unwrap());
        sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
        let top = sim.create_page("ENG", "Team", "<p>team</p>");
        let mut below = vec![top.clone()];
        for i in 0..6 {
            below.push(sim.create_child("ENG", &format!("Page {i}"), &body(i), Some(&top)));
        }
        let Crawl {
            pipeline, store, ..
        } = RestrictedMidCrawl::crawl(&sim, version, &top, false).await;
        let report = pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(report.pages_updated, 7, "{version}: {report:?}");
        let staff = Reader::user("ann", ["staff"]);
        for id in &below {
            let held = store.page(id).await.unwrap().unwrap();
            let exact = client(&sim, version, &[]).read_access(id).await.unwrap();
            assert_eq!(held.access, exact, "{version}: page {id}");
            assert!(
                !held.access.admits(&staff),
                "{version}: page {id} keeps the rule listed before the restriction"
            );
        }
    }
}

#[tokio::test]
async fn a_page_read_again_after_a_noted_change_still_counts_as_updated() {
    for version in VERSIONS {
        let sim = Arc::new(Simulator::start().await.unwrap());
        let pages: Vec<_> = (0..4)
            .map(|i| sim.create_page("ENG", &format!("Page {i}"), &body(i)))
            .collect();
        // The change is elsewhere: every page read again finds what was written.
        let elsewhere = sim.create_page("OPS", "Elsewhere", "<p>other</p>");
        let Crawl { pipeline, .. } =
            RestrictedMidCrawl::crawl(&sim, version, &elsewhere, false).await;
        let report = pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(
            report.pages_updated,
            pages.len() as u64,
            "{version}: {report:?}"
        );
        assert_eq!(report.pages_unchanged, 0, "{version}: {report:?}");
    }
}

#[tokio::test]
async fn a_page_that_cannot_be_read_again_after_a_noted_change_leaves_the_index() {
    use docbrain_confluence::simulator::Grants;
    for version in VERSIONS {
        let sim = Arc::new(Simulator::start().await.unwrap());
        sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
        let page = sim.create_page("ENG", "Team", "<p>team</p>");
        let Crawl {
            pipeline, store, ..
        } = RestrictedMidCrawl::crawl(&sim, version, &page, true).await;
        let report = pipeline.sync(&Scope::all()).await.unwrap();
        assert_eq!(report.pages_failed, 1, "{version}: {report:?}");
        assert!(
            store.page(&page).await.unwrap().is_none(),
            "{version}: the page written with the rule listed before the change is withdrawn"
        );
    }
}

#[tokio::test]
async fn pages_under_a_folder_share_the_restrictions_read_above_them_within_a_crawl() {
    use docbrain_confluence::simulator::Grants;
    let sim = Simulator::start().await.unwrap();
    sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
    let top = sim.create_page("ENG", "Team", "<p>team</p>");
    let folder = sim.create_folder("ENG", "Private folder", Some(&top));
    sim.restrict_page(&folder, Some(Grants::only(&[], &["hr"])));
    let mut inside = Vec::new();
    for i in 0..10 {
        inside.push(sim.create_child("ENG", &format!("Inside {i}"), &body(i), Some(&folder)));
    }
    let crawl = crawl_setup(client(&sim, ApiVersion::V2, &["ENG"])).await;
    sim.clear_log();
    let report = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(report.pages_updated, 11, "{report:?}");
    let reads = |id: &PageId| {
        sim.requests()
            .iter()
            .filter(|r| r.uri.contains(&format!("/content/{id}/restriction")))
            .count()
    };
    // v1's listing cannot see the folder, so these pages read their rules on their own; the
    // folder's and the team page's restrictions are read once for all ten.
    assert_eq!(reads(&folder), 1, "{:#?}", sim.requests());
    assert_eq!(reads(&top), 1);
    for id in &inside {
        let held = crawl.store.page(id).await.unwrap().unwrap();
        assert_eq!(held.ancestor_ids, [top.clone(), folder.clone()]);
        // A fresh client: every layer read now.
        let exact = client(&sim, ApiVersion::V2, &[])
            .read_access(id)
            .await
            .unwrap();
        assert_eq!(held.access, exact);
        assert_eq!(held.access.layers().len(), 2, "the space and the folder");
    }
    // A webhook's re-read reads every layer again.
    sim.clear_log();
    crawl.pipeline.reconcile(&inside[0]).await.unwrap();
    assert_eq!(reads(&folder), 1, "exact: {:#?}", sim.requests());
}

#[tokio::test]
async fn a_restriction_at_the_top_of_a_deep_tree_or_on_a_folder_reaches_the_bottom() {
    use docbrain_confluence::simulator::{Grants, SimUser};
    use docbrain_core::Reader;
    let sim = Simulator::start().await.unwrap();
    sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
    let staff = Reader::user(SimUser::account_id("ann"), [SimUser::group_id("staff")]);
    let hr = Reader::user(
        SimUser::account_id("bob"),
        [SimUser::group_id("staff"), SimUser::group_id("hr")],
    );
    // 30 levels under an hr-only root: Cloud answers the 25 closest ancestors by default.
    let root = sim.create_page("ENG", "HR root", "<p>root</p>");
    sim.restrict_page(&root, Some(Grants::only(&[], &["hr"])));
    let deep = chain_below(&sim, "ENG", &root, 30);
    // Asked 10 at a time, the client pages upward from the topmost ancestor it got.
    let mut small = config(&sim, ApiVersion::V2, &["ENG"]);
    small.page_size = 10;
    for c in [
        client(&sim, ApiVersion::V2, &["ENG"]),
        ConfluenceClient::new(small).unwrap(),
    ] {
        let access = fetched_access(&c, &deep).await;
        assert!(
            !access.admits(&staff),
            "the root's restriction is 31 levels up: {access:?}"
        );
        assert!(access.admits(&hr), "{access:?}");
        assert_eq!(c.read_access(&deep).await.unwrap(), access);
        match c.fetch(&deep).await.unwrap() {
            Fetched::Page(page) => {
                assert_eq!(page.ancestor_ids.len(), 30);
                assert_eq!(page.ancestor_ids[0], root);
                assert_eq!(page.ancestors[0], "HR root");
            }
            Fetched::Gone => panic!("gone"),
        }
    }

    // A restricted folder in the chain restricts the pages below it, and names the breadcrumb.
    let top = sim.create_page("ENG", "Team", "<p>team</p>");
    let folder = sim.create_folder("ENG", "Private folder", Some(&top));
    let inside = sim.create_child("ENG", "Inside", "<p>inside</p>", Some(&folder));
    sim.restrict_page(&folder, Some(Grants::only(&[], &["hr"])));
    let c = client(&sim, ApiVersion::V2, &["ENG"]);
    let access = fetched_access(&c, &inside).await;
    assert!(!access.admits(&staff), "{access:?}");
    assert!(access.admits(&hr), "{access:?}");
    match c.fetch(&inside).await.unwrap() {
        Fetched::Page(page) => {
            assert_eq!(page.ancestor_ids, [top.clone(), folder.clone()]);
            assert_eq!(page.ancestors, ["Team", "Private folder"]);
        }
        Fetched::Gone => panic!("gone"),
    }
    // The folder is no page: never listed, never indexed.
    let listed: Vec<_> = c.list(&Scope::all()).try_collect().await.unwrap();
    assert!(listed.iter().all(|p| p.id != folder));

    // An ancestors answer that cannot be read (404) leaves the chain unknown: nobody reads.
    sim.inject(Fault::new(404, u32::MAX).on(Route::PageMeta));
    assert!(fetched_access(&c, &inside).await.is_nobody());
    sim.clear_faults();
}

#[tokio::test]
async fn a_restriction_answer_of_an_unknown_shape_hides_the_page() {
    use docbrain_confluence::simulator::Grants;
    for version in VERSIONS {
        let sim = Simulator::start().await.unwrap();
        sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
        let id = sim.create_page("ENG", "Runbook", "<p>steps</p>");
        let c = client(&sim, version, &["ENG"]);
        assert!(!fetched_access(&c, &id).await.is_nobody(), "{version}");
        for body in [
            // No lists at all, a missing group list, an entry without an id.
            serde_json::json!({"operation": "read"}),
            serde_json::json!({"restrictions": {"user": {"results": []}}}),
            serde_json::json!({"restrictions": {"user": {"results": [{"type": "known", "displayName": "x"}]}, "group": {"results": []}}}),
            serde_json::json!({"restrictions": {"user": {"results": []}, "group": {"results": [{"type": "group"}]}}}),
            // Lists cut short to nothing: someone is named, but not in this answer.
            serde_json::json!({"restrictions": {"user": {"results": [], "size": 3}, "group": {"results": []}}}),
            serde_json::json!({"restrictions": {"user": {"results": []}, "group": {"results": [], "_links": {"next": "/rest/api/x?start=200"}}}}),
        ] {
            sim.set_restriction_answer(Some(body.clone()));
            assert!(
                fetched_access(&c, &id).await.is_nobody(),
                "{version}: {body}"
            );
        }
        sim.set_restriction_answer(None);
        assert!(!fetched_access(&c, &id).await.is_nobody(), "{version}");
    }
}

#[tokio::test]
async fn anonymous_access_counts_only_where_the_site_allows_it() {
    use docbrain_confluence::simulator::Grants;
    use docbrain_core::Reader;
    for version in VERSIONS {
        let sim = Simulator::start().await.unwrap();
        sim.set_space_readers("PUB", Grants::anyone());
        sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
        let open = sim.create_page("PUB", "Welcome", "<p>hi</p>");
        let closed = sim.create_page("ENG", "Runbook", "<p>steps</p>");
        // Closed by default: a space's anonymous grant admits no one.
        let c = client(&sim, version, &[]);
        assert!(
            !fetched_access(&c, &open).await.admits(&Reader::anonymous()),
            "{version}"
        );
        // With CONFLUENCE_ANONYMOUS_ACCESS, read from the documented places.
        let mut on = config(&sim, version, &[]);
        on.site.anonymous_access = true;
        let c = ConfluenceClient::new(on).unwrap();
        assert!(
            fetched_access(&c, &open).await.admits(&Reader::anonymous()),
            "{version}"
        );
        assert!(
            !fetched_access(&c, &closed)
                .await
                .admits(&Reader::anonymous()),
            "{version}"
        );
        let documented = sim.requests().iter().any(|r| match version {
            ApiVersion::V2 => r.uri.starts_with("/wiki/rest/api/space/PUB?"),
            ApiVersion::V1 => r
                .uri
                .starts_with("/rest/api/space/PUB/permissions/anonymous"),
        });
        assert!(documented, "{version}");
    }
}

#[tokio::test]
async fn permissions_that_cannot_be_read_hide_the_page_rather_than_show_it() {
    // Data Center without the space-permissions endpoint (before 9.1) answers 404.
    let sim = Simulator::start().await.unwrap();
    let id = sim.create_page("ENG", "Runbook", "<p>steps</p>");
    let c = client(&sim, ApiVersion::V1, &["ENG"]);
    sim.inject(Fault::new(404, u32::MAX).on(Route::Permissions));
    assert!(fetched_access(&c, &id).await.is_nobody());
    sim.clear_faults();
    assert!(fetched_access(&c, &id).await.is_nobody());

    // Data Center answers 500 where it means 403 (not a space admin): hidden, not an outage.
    sim.inject(Fault::new(500, u32::MAX).on(Route::Permissions));
    assert!(fetched_access(&c, &id).await.is_nobody());
    sim.clear_faults();

    // Cloud: 403 on a permission call hides the page; a 500 is an outage, and the fetch fails
    // (the page keeps its indexed state and is tried again).
    let c = client(&sim, ApiVersion::V2, &["ENG"]);
    sim.inject(Fault::new(403, u32::MAX).on(Route::Permissions));
    assert!(fetched_access(&c, &id).await.is_nobody());
    sim.clear_faults();
    sim.inject(Fault::new(500, u32::MAX).on(Route::Permissions));
    let err = c.fetch(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    sim.clear_faults();
    assert!(fetched_access(&c, &id).await.is_nobody());
}

#[tokio::test]
async fn a_scoped_token_base_url_through_atlassians_gateway_crawls_and_reads_permissions() {
    use docbrain_confluence::simulator::Grants;
    use docbrain_core::Reader;
    let sim = Simulator::start().await.unwrap();
    sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
    for i in 0..7 {
        sim.create_page("ENG", &format!("Page {i}"), &body(i));
    }
    let secret = sim.create_page("ENG", "Secret", "<p>hr only</p>");
    sim.restrict_page(&secret, Some(Grants::only(&[], &["hr"])));
    // https://api.atlassian.com/ex/confluence/{cloudId}/wiki, as scoped tokens need.
    let gateway = format!(
        "http://{}/ex/confluence/a436116f-02ce-4520-8fbb-7301462a1674/wiki",
        sim.addr()
    );
    let mut c = ConfluenceConfig::from(ConfluenceSettings {
        email: Some(EMAIL.into()),
        ..ConfluenceSettings::new(gateway, ApiVersion::V2, Secret::new(API_TOKEN))
    });
    c.retry = quick_retry();
    c.page_size = 3; // next links, relative to the site root, stay under the gateway's prefix
    let client = ConfluenceClient::new(c).unwrap();
    client.check().await.unwrap();
    let listed: Vec<_> = client.list(&Scope::all()).try_collect().await.unwrap();
    assert_eq!(listed.len(), 8);
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.uri.starts_with("/ex/confluence/")),
        "every call through the gateway"
    );
    let Fetched::Page(page) = client.fetch(&secret).await.unwrap() else {
        panic!("gone");
    };
    // Links shown to people point at the site, not at the gateway.
    let url = page.url.unwrap();
    assert!(
        url.starts_with(&format!("http://{}/wiki/spaces/ENG/pages/", sim.addr())),
        "{url}"
    );
    assert!(!page.access.admits(&Reader::anonymous()));
    assert!(
        !page.access.is_nobody(),
        "the restriction was read through the gateway: {:?}",
        page.access
    );
}

#[tokio::test]
async fn a_crawl_with_permissions_reads_rules_in_bulk() {
    for version in VERSIONS {
        crawl_with_permissions_in_bulk(version).await;
    }
}

/// A first crawl costs one body read per page plus shared listings, an unchanged re-crawl no
/// request per page, and the rules so read are the ones read page by page.
async fn crawl_with_permissions_in_bulk(version: ApiVersion) {
    use docbrain_confluence::simulator::Grants;
    let sim = Simulator::start().await.unwrap();
    let mut pages = Vec::new();
    for space in ["ENG", "OPS"] {
        sim.set_space_readers(space, Grants::only(&["ann"], &["staff"]));
        let mut parent: Option<PageId> = None;
        for i in 0..15 {
            let id = sim.create_child(
                space,
                &format!("{space} page {i}"),
                &body(i),
                parent.as_ref(),
            );
            if i % 5 == 0 {
                sim.restrict_page(&id, Some(Grants::only(&[], &["staff", "sre"])));
            }
            if i % 3 == 0 {
                parent = Some(id.clone());
            }
            pages.push(id);
        }
    }
    let crawl = crawl_setup(client(&sim, version, &["ENG", "OPS"])).await;
    sim.clear_log();
    let first = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(first.pages_updated, 30, "{first:?}");
    // P + 4·S + ⌈P/25⌉ = 40: one body read per page, nothing else per page; and one comment
    // listing per space (S = 2).
    let calls = sim.requests().len();
    assert!(
        calls <= 42,
        "{version}: {calls} requests: {:#?}",
        sim.requests()
    );
    assert_eq!(sim.count(Route::PageBody), 30, "{version}");
    let mut restricted = 0;
    for id in &pages {
        let held = crawl.store.page(id).await.unwrap().unwrap();
        // A fresh client: every layer read now.
        let exact = client(&sim, version, &[]).read_access(id).await.unwrap();
        assert_eq!(held.access, exact, "{version}: page {id}");
        restricted += usize::from(held.access.layers().len() > 1);
    }
    assert!(
        restricted >= 6,
        "{version}: restrictions were read: {restricted}"
    );
    sim.clear_log();
    let again = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(again.pages_unchanged, 30, "{again:?}");
    // The budget for S spaces and P pages: 4·S + ⌈P/25⌉ = 10, and a comment listing per space.
    let calls = sim.requests().len();
    assert!(
        calls <= 12,
        "{version}: {calls} requests: {:#?}",
        sim.requests()
    );
    // Still exact: a restriction added above a page is seen in the listing, and only the pages
    // it reaches are read again (nothing embedded).
    let top = &pages[0];
    let held = crawl.store.page(&pages[2]).await.unwrap().unwrap().access;
    sim.restrict_page(top, Some(Grants::only(&[], &["hr"])));
    sim.clear_log();
    let restricted = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert!(restricted.pages_updated >= 1, "{restricted:?}");
    assert_eq!(restricted.chunks_embedded, 0, "{restricted:?}");
    let now = crawl.store.page(&pages[2]).await.unwrap().unwrap().access;
    assert_ne!(
        now, held,
        "the child inherits its ancestor's new restriction"
    );
    assert_eq!(
        sim.count(Route::PageBody) as u64,
        restricted.pages_updated,
        "one body read per changed rule"
    );
    assert!(
        sim.requests().len() as u64 <= 12 + restricted.pages_updated,
        "{version}: and nothing else per page: {:#?}",
        sim.requests()
    );
}

#[tokio::test]
async fn comments_are_hits_of_their_own_under_their_page_with_its_rule() {
    for version in VERSIONS {
        comments_under_their_page(version).await;
    }
}

/// Comments are indexed as their own hits under their page, readable by whoever may read the
/// page; a re-crawl reads comments only for pages whose comments changed, and re-embeds only the
/// changed comment; a deleted comment, or its page, takes its hits away.
async fn comments_under_their_page(version: ApiVersion) {
    use docbrain_confluence::simulator::{Grants, SimUser};
    use docbrain_core::{Caller, SearchFilter};
    let sim = Simulator::start().await.unwrap();
    sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
    let deploys = sim.create_page("ENG", "Deploys", "<p>Run the deploy pipeline.</p>");
    let salaries = sim.create_page("ENG", "Salary bands", "<p>Bands by level.</p>");
    sim.restrict_page(&salaries, Some(Grants::only(&[], &["hr"])));
    for i in 0..8 {
        sim.create_page("ENG", &format!("Quiet {i}"), &body(i));
    }
    let footer = sim.add_comment(
        &deploys,
        "Carol",
        "<p>The canary stage waits for the flamingo health check.</p>",
    );
    let inline = sim.add_inline_comment(
        &deploys,
        "Dan",
        "deploy pipeline",
        "<p>Pipeline runs are capped at forty minutes.</p>",
    );
    let secret = sim.add_comment(
        &salaries,
        "Erin",
        "<p>The zeppelin bonus is paid in March.</p>",
    );
    let crawl = crawl_setup(client(&sim, version, &["ENG"])).await;
    let first = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(first.pages_updated, 10, "{version}: {first:?}");
    // Only the two pages with comments had them read.
    assert_eq!(
        sim.count(Route::Comments),
        1 + 2,
        "{version}: {:#?}",
        sim.requests()
    );

    sim.add_user("sam", &["staff"]);
    sim.add_user("hana", &["staff", "hr"]);
    let caller = |name: &str| {
        SearchFilter::for_caller(Caller::User(match version {
            ApiVersion::V2 => SimUser::account_id(name),
            ApiVersion::V1 => name.to_owned(),
        }))
    };
    let staff = caller("sam");
    let hits = crawl
        .pipeline
        .search("flamingo health check", 3, &staff)
        .await
        .unwrap();
    let hit = hits.first().expect("the comment is found");
    assert_eq!(hit.page_id, footer, "{version}: {hits:#?}");
    assert_eq!(hit.title, "Comment by Carol");
    assert_eq!(hit.heading_path[0], "Comment by Carol");
    assert!(
        hit.url
            .as_deref()
            .unwrap()
            .ends_with(&format!("focusedCommentId={footer}")),
        "{hit:?}"
    );
    let record = crawl.store.page(&footer).await.unwrap().unwrap();
    assert_eq!(record.parent.as_ref(), Some(&deploys));
    assert_eq!(record.ancestors, ["Deploys"]);
    let hits = crawl
        .pipeline
        .search("capped forty minutes", 3, &staff)
        .await
        .unwrap();
    assert_eq!(
        hits.first().map(|h| &h.page_id),
        Some(&inline),
        "{version}: {hits:#?}"
    );
    assert!(
        hits[0].text.contains("> deploy pipeline"),
        "{:?}",
        hits[0].text
    );
    // The restricted page's comment: found by hr, by staff not at all.
    let hits = crawl
        .pipeline
        .search("zeppelin bonus", 5, &staff)
        .await
        .unwrap();
    assert!(
        !hits
            .iter()
            .any(|h| h.page_id == secret || h.page_id == salaries),
        "{version}: {hits:#?}"
    );
    let hr = caller("hana");
    let hits = crawl
        .pipeline
        .search("zeppelin bonus", 3, &hr)
        .await
        .unwrap();
    assert_eq!(
        hits.first().map(|h| &h.page_id),
        Some(&secret),
        "{version}: {hits:#?}"
    );

    // Unchanged: no comment is read again, nothing embedded.
    sim.clear_log();
    let again = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(
        (again.pages_unchanged, again.chunks_embedded),
        (10, 0),
        "{version}: {again:?}"
    );
    assert_eq!(
        sim.count(Route::Comments),
        1,
        "{version}: the space's listing only"
    );
    assert_eq!(sim.count(Route::PageBody), 0, "{version}");

    // An edited comment: its page's comments read, only that comment embedded again.
    sim.edit_comment(
        &footer,
        "<p>The canary stage waits for the pelican health check.</p>",
    );
    sim.clear_log();
    let edited = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(edited.pages_updated, 1, "{version}: {edited:?}");
    assert_eq!(edited.chunks_embedded, 1, "{version}: {edited:?}");
    let hits = crawl.pipeline.search("pelican", 3, &staff).await.unwrap();
    assert_eq!(hits.first().map(|h| &h.page_id), Some(&footer), "{version}");
    assert!(hits[0].text.contains("pelican") && !hits[0].text.contains("flamingo"));

    // A deleted comment leaves; a deleted page takes its comments with it.
    sim.delete_comment(&inline);
    crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert!(
        crawl.store.page(&inline).await.unwrap().is_none(),
        "{version}"
    );
    assert_eq!(
        crawl
            .store
            .page(&deploys)
            .await
            .unwrap()
            .unwrap()
            .parts
            .len(),
        1
    );
    sim.delete_page(&deploys);
    crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert!(
        crawl.store.page(&footer).await.unwrap().is_none(),
        "{version}"
    );
    let hits = crawl
        .pipeline
        .search("pelican health check", 5, &staff)
        .await
        .unwrap();
    assert!(
        !hits.iter().any(|h| h.page_id == footer),
        "{version}: {hits:#?}"
    );
    assert!(!hits.is_empty(), "other pages still answer");
}

#[tokio::test]
async fn attachments_of_each_type_are_found_under_their_page_with_its_rule() {
    for version in VERSIONS {
        attachments_under_their_page(version).await;
    }
}

/// A fact only inside a PDF, a DOCX, a PPTX or an XLSX is found in the top 3, as a hit of the
/// file under its page; a restricted page's attachment stays hidden; too large and textless
/// files are skipped, hostile ones fail alone; a re-crawl downloads nothing unchanged.
async fn attachments_under_their_page(version: ApiVersion) {
    use docbrain_confluence::simulator::files::{docx, pdf, pptx, xlsx};
    use docbrain_confluence::simulator::{Grants, SimUser};
    use docbrain_core::{Caller, NotIndexed, SearchFilter};
    const PDF: &str = "application/pdf";
    const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    let sim = Simulator::start().await.unwrap();
    sim.set_space_readers("ENG", Grants::only(&[], &["staff"]));
    sim.add_user("sam", &["staff"]);
    let runbooks = sim.create_page("ENG", "Runbooks", "<p>Files for the on-call.</p>");
    for i in 0..6 {
        sim.create_page("ENG", &format!("Quiet {i}"), &body(i));
    }
    let files = [
        sim.add_attachment(
            &runbooks,
            "vault.pdf",
            PDF,
            pdf(&["The vault unseal quorum is three of five keyholders."]),
        ),
        sim.add_attachment(
            &runbooks,
            "onboarding.docx",
            DOCX,
            docx(&[
                (Some("Heading1"), "Day one"),
                (None, "New hires collect the yubikey from the front desk."),
            ]),
        ),
        sim.add_attachment(
            &runbooks,
            "roadmap.pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            pptx(&[(
                "Launch the heron project in May",
                Some("The heron budget is frozen"),
            )]),
        ),
        sim.add_attachment(
            &runbooks,
            "budget.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            xlsx(&[("Budget", vec![vec!["osprey allowance", "125000"]])]),
        ),
    ];
    let image = sim.add_attachment(
        &runbooks,
        "diagram.png",
        "image/png",
        vec![0x89, b'P', b'N', b'G'],
    );
    let huge = sim.add_attachment(
        &runbooks,
        "huge.pdf",
        PDF,
        [b"%PDF-1.5 ".as_slice(), &vec![b' '; 2 << 20]].concat(),
    );
    let garbage = sim.add_attachment(
        &runbooks,
        "garbage.pdf",
        PDF,
        b"%PDF-1.5 not really".to_vec(),
    );
    // The hostile corpus, on a page of its own: each file fails alone.
    let uploads = sim.create_page("ENG", "Uploads", "<p>Files people sent.</p>");
    let hostile = docbrain_confluence::simulator::files::hostile();
    for h in &hostile {
        sim.add_attachment(&uploads, h.file_name, h.media_type, h.content.clone());
    }
    let failed = 1 + hostile.len() as u64;
    let salaries = sim.create_page("ENG", "Salary bands", "<p>Bands.</p>");
    sim.restrict_page(&salaries, Some(Grants::only(&[], &["hr"])));
    let secret = sim.add_attachment(
        &salaries,
        "bands.docx",
        DOCX,
        docx(&[(None, "The zeppelin bonus is paid in March.")]),
    );

    let mut config = config(&sim, version, &["ENG"]);
    config.site.attachments.max_bytes = 1 << 20;
    let crawl = crawl_setup(ConfluenceClient::new(config).unwrap()).await;
    let first = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(first.pages_updated, 9, "{version}: {first:?}");
    assert!(
        first.is_clean(),
        "{version}: an attachment fails alone: {first:?}"
    );
    assert_eq!(first.attachments_failed, failed, "{version}: {first:?}");
    let held = crawl.store.page(&uploads).await.unwrap().unwrap();
    assert!(
        held.parts.len() == hostile.len()
            && held
                .parts
                .iter()
                .all(|r| matches!(r.not_indexed, Some(NotIndexed::Failed(_)))),
        "{version}: each hostile file counted as failed: {:?}",
        held.parts
    );
    let counts = crawl.pipeline.attachment_counts();
    assert_eq!(
        (
            counts.indexed,
            counts.skipped,
            counts.skipped_too_large,
            counts.failed
        ),
        (5, 2, 1, failed),
        "{version}"
    );

    let staff = SearchFilter::for_caller(Caller::User(match version {
        ApiVersion::V2 => SimUser::account_id("sam"),
        ApiVersion::V1 => "sam".to_owned(),
    }));
    for (query, file, name) in [
        ("vault unseal quorum keyholders", &files[0], "vault.pdf"),
        ("yubikey front desk new hires", &files[1], "onboarding.docx"),
        ("heron budget frozen", &files[2], "roadmap.pptx"),
        ("osprey allowance", &files[3], "budget.xlsx"),
    ] {
        let hits = crawl.pipeline.search(query, 3, &staff).await.unwrap();
        let hit = hits.iter().find(|h| &h.page_id == file);
        let hit = hit
            .unwrap_or_else(|| panic!("{version}: {name} in the top 3 for {query:?}: {hits:#?}"));
        assert_eq!(hit.title, name);
        assert!(
            hit.url
                .as_deref()
                .unwrap()
                .contains(&format!("/download/attachments/{runbooks}/{name}")),
            "{hit:?}"
        );
        let record = crawl.store.page(file).await.unwrap().unwrap();
        assert_eq!(
            (record.parent.as_ref(), record.ancestors.as_slice()),
            (Some(&runbooks), ["Runbooks".to_owned()].as_slice())
        );
    }
    let hits = crawl
        .pipeline
        .search("zeppelin bonus", 5, &staff)
        .await
        .unwrap();
    assert!(
        !hits.iter().any(|h| h.page_id == secret),
        "{version}: {hits:#?}"
    );
    let held = crawl.store.page(&runbooks).await.unwrap().unwrap();
    let state = |id: &PageId| {
        held.parts
            .iter()
            .find(|r| &r.id == id)
            .unwrap()
            .not_indexed
            .clone()
    };
    assert!(
        matches!(state(&image), Some(NotIndexed::Skipped(why)) if why.contains("image/png")),
        "{:?}",
        state(&image)
    );
    assert!(
        matches!(state(&huge), Some(NotIndexed::Skipped(why)) if why.contains("ATTACHMENT_MAX_BYTES")),
        "{:?}",
        state(&huge)
    );
    assert!(
        matches!(state(&garbage), Some(NotIndexed::Failed(_))),
        "{:?}",
        state(&garbage)
    );
    assert!(crawl.store.page(&garbage).await.unwrap().is_none());

    // Unchanged: nothing downloaded again but the failed file, tried again.
    sim.clear_log();
    let again = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(again.chunks_embedded, 0, "{version}: {again:?}");
    let downloads: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.route == Route::Download)
        .map(|r| r.uri)
        .collect();
    assert_eq!(downloads.len() as u64, failed, "{version}: {downloads:?}");
    assert!(
        downloads
            .iter()
            .all(|d| d.contains("garbage.pdf") || d.contains(&format!("/{uploads}/"))),
        "only the failed files are downloaded again: {downloads:?}"
    );

    // A new version is downloaded and embedded alone; a deleted file leaves.
    sim.update_attachment(
        &files[0],
        pdf(&["The vault unseal quorum is four of seven keyholders."]),
    );
    sim.delete_attachment(&files[1]);
    sim.clear_log();
    let changed = crawl.pipeline.sync(&Scope::all()).await.unwrap();
    assert_eq!(
        sim.count(Route::Download) as u64,
        1 + failed,
        "{version}: the new version and the failed files"
    );
    assert!(changed.chunks_embedded >= 1, "{changed:?}");
    let hits = crawl
        .pipeline
        .search("four of seven keyholders", 3, &staff)
        .await
        .unwrap();
    assert_eq!(
        hits.first().map(|h| &h.page_id),
        Some(&files[0]),
        "{version}: {hits:#?}"
    );
    assert!(
        crawl.store.page(&files[1]).await.unwrap().is_none(),
        "{version}"
    );
    // The page goes, its files with it.
    sim.delete_page(&runbooks);
    crawl.pipeline.sync(&Scope::all()).await.unwrap();
    for file in &files {
        assert!(
            crawl.store.page(file).await.unwrap().is_none(),
            "{version}: {file}"
        );
    }
}
