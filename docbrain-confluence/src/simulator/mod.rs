//! A Confluence on loopback for tests: REST v2 (Cloud) and v1 (Data Center) with the real
//! response shapes, auth checks, both pagination styles, statuses, 404 for deleted or hidden
//! pages, injectable faults and latency, a request log, an edit API, and signed webhooks in
//! both real body shapes.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use docbrain_confluence::simulator::Simulator;
//! let sim = Simulator::start().await?;
//! sim.add_space("ENG", "Engineering");
//! let id = sim.create_page("ENG", "Deploys", "<p>Run deploy.</p>");
//! sim.edit_page(&id, "<p>Run deploy --safe.</p>");
//! println!("v2 at {}, v1 at {}", sim.base_url_v2(), sim.base_url_v1());
//! # Ok(()) }
//! ```

pub mod files;
mod permissions;
mod routes;

pub use permissions::{Grants, SimUser};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use docbrain_core::now_ms;

use docbrain_core::{PageId, PageStatus};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::webhook::{self, BodyShape, PageEvent, PageRef};

/// The Cloud account the simulator accepts (basic auth, REST v2).
pub const EMAIL: &str = "bot@example.com";
/// The Cloud API token the simulator accepts.
pub const API_TOKEN: &str = "sim-api-token";
/// The Data Center personal access token the simulator accepts (Bearer, REST v1).
pub const PAT: &str = "sim-personal-access-token";

/// This test binary as the attachment extractor: it runs only its test `test`, which calls
/// [`crate::extract::serve_if_child`] (an `#[ignore]`d test, so plain runs skip it).
///
/// # Panics
/// When the test binary's path cannot be read.
#[allow(clippy::expect_used)]
pub fn test_extractor(test: &str) -> crate::extract::Extractor {
    crate::extract::Extractor::command(
        std::env::current_exe().expect("the test binary's path"),
        [test, "--exact", "--ignored", "--test-threads=1"]
            .iter()
            .map(Into::into)
            .collect(),
    )
}

/// A page as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPage {
    /// The page id (numeric, as Confluence's are).
    pub id: u64,
    /// The space key.
    pub space_key: String,
    /// The title.
    pub title: String,
    /// The storage-format body.
    pub body: String,
    /// The version number, 1 on creation, +1 per edit.
    pub version: u64,
    /// The status.
    pub status: PageStatus,
    /// The parent page, if any.
    pub parent: Option<u64>,
    /// Labels.
    pub labels: Vec<String>,
    /// Restricted: this account cannot see it (404, not listed).
    pub hidden: bool,
    /// The page's own read restriction, if it has one.
    pub restriction: Option<Grants>,
    /// A Cloud folder, not a page: never listed or fetched as a page, but an ancestor whose
    /// restriction its descendants inherit.
    pub folder: bool,
}

/// A comment as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimComment {
    /// The comment id (from the same counter as pages, as Confluence's content ids are).
    pub id: u64,
    /// The page it is on.
    pub page: u64,
    /// Its author's display name.
    pub author: String,
    /// The storage-format body.
    pub body: String,
    /// The version number, 1 on creation, +1 per edit.
    pub version: u64,
    /// For an inline comment, the page text it is anchored to.
    pub inline: Option<String>,
}

/// An attachment as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAttachment {
    /// The number in its id (`att<id>`).
    pub id: u64,
    /// The page it is attached to.
    pub page: u64,
    /// The file name.
    pub title: String,
    /// The media type.
    pub media_type: String,
    /// The content.
    pub content: Vec<u8>,
    /// The version number, 1 on upload, +1 per new upload.
    pub version: u64,
}

/// Which API call a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Space listing or lookup.
    Spaces,
    /// A page listing request (one page of results).
    PageList,
    /// One page with its body (v2 `body-format=storage`, v1 `expand=body.storage`).
    PageBody,
    /// One page without a body (v2 ancestor titles), or its ancestors.
    PageMeta,
    /// Space permissions, page restrictions, users and their groups.
    Permissions,
    /// Comment listings: a space's (CQL search, which lists attachments too) or a page's
    /// (`child/comment`).
    Comments,
    /// A page's attachment listing.
    Attachments,
    /// An attachment's download.
    Download,
    /// Anything else.
    Other,
}

/// A logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// Which call it was.
    pub route: Route,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// A fault to answer instead of the real response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The HTTP status (429, 503, 500, 401…).
    pub status: u16,
    /// A `Retry-After` value to send, if any (seconds or an HTTP date).
    pub retry_after: Option<String>,
    /// Answer an HTML page instead of JSON (as proxies and Tomcat do).
    pub html: bool,
    /// Only requests of this route (all routes when `None`).
    pub route: Option<Route>,
    /// How many requests it answers; `u32::MAX` until cleared.
    pub times: u32,
    /// Matching requests to let through before the fault starts.
    pub after: u32,
}

impl Fault {
    /// A fault answering `status` to the next `times` requests of any route.
    pub fn new(status: u16, times: u32) -> Self {
        Self {
            status,
            retry_after: None,
            html: false,
            route: None,
            times,
            after: 0,
        }
    }

    /// Lets `n` matching requests through first.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }

    /// Sends `Retry-After: value`.
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }

    /// Answers an HTML page.
    pub fn html(mut self) -> Self {
        self.html = true;
        self
    }

    /// Only answers requests of `route`.
    pub fn on(mut self, route: Route) -> Self {
        self.route = Some(route);
        self
    }
}

#[derive(Debug)]
struct Space {
    id: u64,
    name: String,
    /// Who holds the space's view permission (anyone, by default).
    readers: Grants,
}

#[derive(Debug)]
pub(crate) struct State {
    spaces: BTreeMap<String, Space>,
    pages: BTreeMap<u64, SimPage>,
    comments: BTreeMap<u64, SimComment>,
    attachments: BTreeMap<u64, SimAttachment>,
    users: BTreeMap<String, SimUser>,
    /// The site lets anonymous users in.
    anonymous_access: bool,
    /// When set, every read-restriction request is answered with this body.
    pub(crate) restriction_answer: Option<serde_json::Value>,
    /// Where edits made through `POST /_sim/pages` send their signed webhook: URL and secret.
    pub(crate) webhook_target: Option<(String, String)>,
    next_id: u64,
    faults: Vec<Fault>,
    latency: Duration,
    /// The most results one listing response holds, whatever `limit` asked for.
    max_results: usize,
    /// When set, every page listing names this as its `next` link.
    pub(crate) next_link: Option<String>,
    log: Vec<Request>,
    in_flight: usize,
    peak_in_flight: usize,
}

/// A running simulator; it stops when dropped.
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    client: reqwest::Client,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    /// Starts a simulator on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr`.
    ///
    /// # Errors
    /// When `addr` cannot be bound.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            spaces: BTreeMap::new(),
            pages: BTreeMap::new(),
            comments: BTreeMap::new(),
            attachments: BTreeMap::new(),
            users: BTreeMap::new(),
            anonymous_access: false,
            restriction_answer: None,
            webhook_target: None,
            next_id: 100_001,
            faults: Vec::new(),
            latency: Duration::ZERO,
            max_results: 250,
            next_link: None,
            log: Vec::new(),
            in_flight: 0,
            peak_in_flight: 0,
        }));
        let task = tokio::spawn(routes::serve(listener, Arc::clone(&state), addr));
        Ok(Self {
            addr,
            state,
            task,
            client: reqwest::Client::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Cloud base URL (`CONFLUENCE_BASE_URL` for v2): `http://<addr>/wiki`.
    pub fn base_url_v2(&self) -> String {
        format!("http://{}/wiki", self.addr)
    }

    /// The Data Center base URL (`CONFLUENCE_BASE_URL` for v1): `http://<addr>`.
    pub fn base_url_v1(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a space (idempotent) and returns its numeric id.
    pub fn add_space(&self, key: &str, name: &str) -> u64 {
        let mut s = self.state();
        let next = 98_306 + s.spaces.len() as u64 * 1_000;
        s.spaces
            .entry(key.to_owned())
            .or_insert(Space {
                id: next,
                name: name.to_owned(),
                readers: Grants::anyone(),
            })
            .id
    }

    /// Creates a current page at version 1 and returns its id. The space is created if missing.
    pub fn create_page(&self, space: &str, title: &str, storage_body: &str) -> PageId {
        self.create_child(space, title, storage_body, None)
    }

    /// Creates a page under `parent`.
    pub fn create_child(
        &self,
        space: &str,
        title: &str,
        storage_body: &str,
        parent: Option<&PageId>,
    ) -> PageId {
        self.add_space(space, space);
        let mut s = self.state();
        let id = s.next_id;
        s.next_id += 1;
        let parent = parent.and_then(|p| p.as_str().parse().ok());
        s.pages.insert(
            id,
            SimPage {
                id,
                space_key: space.to_owned(),
                title: title.to_owned(),
                body: storage_body.to_owned(),
                version: 1,
                status: PageStatus::Current,
                parent,
                labels: Vec::new(),
                hidden: false,
                restriction: None,
                folder: false,
            },
        );
        PageId::from(id)
    }

    /// Creates a Cloud folder under `parent` (or at the top of the space): it holds pages and
    /// may carry a restriction, but is no page itself.
    pub fn create_folder(&self, space: &str, title: &str, parent: Option<&PageId>) -> PageId {
        let id = self.create_child(space, title, "", parent);
        self.with_page(&id, |p| p.folder = true);
        id
    }

    /// Fills the simulator with a site for scale runs: `pages` pages over `spaces` spaces
    /// `S0`, `S1`, … readable by group `staff`, in chains up to 30 deep (each space's pages in
    /// turn, every 30th starting a new chain), every 20th page restricted to group `hr` (5%).
    /// Bodies are about 1 kB in two sections. Returns the space keys.
    pub fn generate_site(&self, pages: u64, spaces: u64) -> Vec<String> {
        let spaces = spaces.max(1);
        let keys: Vec<String> = (0..spaces).map(|s| format!("S{s}")).collect();
        for key in &keys {
            self.set_space_readers(key, Grants::only(&[], &["staff"]));
        }
        let mut last: Vec<Option<PageId>> = vec![None; keys.len()];
        for i in 0..pages {
            let s = (i % spaces) as usize;
            let parent = if (i / spaces).is_multiple_of(30) {
                None
            } else {
                last[s].clone()
            };
            let body = format!(
                "<h2>Overview {i}</h2><p>Page {i} of space {key} describes how service {i} is run: \
                 who owns it, where its dashboards live, and which alerts page the on-call \
                 engineer. Deploys go out through the pipeline every weekday; a rollback \
                 restores the previous release within minutes.</p>\
                 <h2>Operations {i}</h2><p>To restart service {i}, drain its traffic, restart \
                 the pods one at a time and watch the error rate. Escalate to the owning team \
                 when the error budget of service {i} is spent. Capacity is reviewed every \
                 quarter against the forecast.</p>",
                key = keys[s]
            );
            let id = self.create_child(&keys[s], &format!("Page {i}"), &body, parent.as_ref());
            if i % 20 == 7 {
                self.restrict_page(&id, Some(Grants::only(&[], &["hr"])));
            }
            last[s] = Some(id);
        }
        keys
    }

    /// Sends a signed `page_updated` webhook to `url` (signed with `secret`) for every edit made
    /// through the control route `POST /_sim/pages/{id}` (or `?title=`), whose body is the
    /// page's new storage-format text: how a person edits a page and watches it update.
    pub fn send_edits_to(&self, url: &str, secret: &str) {
        self.state().webhook_target = Some((url.to_owned(), secret.to_owned()));
    }

    /// Answers every read-restriction request with `body` (200) instead of the page's
    /// restriction, until called with `None`: for answers of a shape Confluence should not
    /// send.
    pub fn set_restriction_answer(&self, body: Option<serde_json::Value>) {
        self.state().restriction_answer = body;
    }

    /// Sets whether the site lets anonymous users in (Confluence administration → anonymous
    /// access); off by default, as on a new Cloud site. Off, a space's anonymous grant admits
    /// no one.
    pub fn set_anonymous_access(&self, on: bool) {
        self.state().anonymous_access = on;
    }

    fn with_page<T>(&self, id: &PageId, f: impl FnOnce(&mut SimPage) -> T) -> Option<T> {
        let key: u64 = id.as_str().parse().ok()?;
        self.state().pages.get_mut(&key).map(f)
    }

    /// Replaces a page's body, bumping its version; returns the new version.
    pub fn edit_page(&self, id: &PageId, storage_body: &str) -> Option<u64> {
        self.with_page(id, |p| {
            p.body = storage_body.to_owned();
            p.version += 1;
            p.version
        })
    }

    /// Renames a page, bumping its version.
    pub fn rename_page(&self, id: &PageId, title: &str) -> Option<u64> {
        self.with_page(id, |p| {
            p.title = title.to_owned();
            p.version += 1;
            p.version
        })
    }

    /// Moves a page to another space (created if missing), bumping its version.
    pub fn move_page(&self, id: &PageId, space: &str) -> Option<u64> {
        self.add_space(space, space);
        self.with_page(id, |p| {
            p.space_key = space.to_owned();
            p.version += 1;
            p.version
        })
    }

    /// Sets a page's labels, bumping its version.
    pub fn set_labels(&self, id: &PageId, labels: &[&str]) -> Option<u64> {
        self.with_page(id, |p| {
            p.labels = labels.iter().map(|l| (*l).to_owned()).collect();
            p.version += 1;
            p.version
        })
    }

    /// Sets a page's status (trash, restore, archive…); restoring bumps the version as
    /// Confluence does.
    pub fn set_status(&self, id: &PageId, status: PageStatus) -> Option<u64> {
        self.with_page(id, |p| {
            if status != p.status {
                p.status = status;
                p.version += 1;
            }
            p.version
        })
    }

    /// Adds a footer comment by `author` to page `page` and returns its id.
    pub fn add_comment(&self, page: &PageId, author: &str, storage_body: &str) -> PageId {
        self.insert_comment(page, author, storage_body, None)
    }

    /// Adds an inline comment anchored to the page text `selection`.
    pub fn add_inline_comment(
        &self,
        page: &PageId,
        author: &str,
        selection: &str,
        storage_body: &str,
    ) -> PageId {
        self.insert_comment(page, author, storage_body, Some(selection.to_owned()))
    }

    fn insert_comment(
        &self,
        page: &PageId,
        author: &str,
        storage_body: &str,
        inline: Option<String>,
    ) -> PageId {
        let mut s = self.state();
        let id = s.next_id;
        s.next_id += 1;
        s.comments.insert(
            id,
            SimComment {
                id,
                page: page.as_str().parse().unwrap_or_default(),
                author: author.to_owned(),
                body: storage_body.to_owned(),
                version: 1,
                inline,
            },
        );
        PageId::from(id)
    }

    /// Replaces a comment's body, bumping its version (the page's stays); returns the new one.
    pub fn edit_comment(&self, id: &PageId, storage_body: &str) -> Option<u64> {
        let key: u64 = id.as_str().parse().ok()?;
        let mut s = self.state();
        let comment = s.comments.get_mut(&key)?;
        comment.body = storage_body.to_owned();
        comment.version += 1;
        Some(comment.version)
    }

    /// Deletes a comment (Confluence deletes comments for good).
    pub fn delete_comment(&self, id: &PageId) -> bool {
        id.as_str()
            .parse::<u64>()
            .is_ok_and(|key| self.state().comments.remove(&key).is_some())
    }

    /// Returns a comment as the simulator holds it.
    pub fn comment(&self, id: &PageId) -> Option<SimComment> {
        let key: u64 = id.as_str().parse().ok()?;
        self.state().comments.get(&key).cloned()
    }

    /// Attaches file `title` of type `media_type` to page `page`; returns its id (`att<n>`).
    pub fn add_attachment(
        &self,
        page: &PageId,
        title: &str,
        media_type: &str,
        content: Vec<u8>,
    ) -> PageId {
        let mut s = self.state();
        let id = s.next_id;
        s.next_id += 1;
        s.attachments.insert(
            id,
            SimAttachment {
                id,
                page: page.as_str().parse().unwrap_or_default(),
                title: title.to_owned(),
                media_type: media_type.to_owned(),
                content,
                version: 1,
            },
        );
        PageId::new(format!("att{id}"))
    }

    /// Uploads a new version of attachment `id`; returns its version.
    pub fn update_attachment(&self, id: &PageId, content: Vec<u8>) -> Option<u64> {
        let key: u64 = id.as_str().strip_prefix("att")?.parse().ok()?;
        let mut s = self.state();
        let file = s.attachments.get_mut(&key)?;
        file.content = content;
        file.version += 1;
        Some(file.version)
    }

    /// Deletes attachment `id`.
    pub fn delete_attachment(&self, id: &PageId) -> bool {
        id.as_str()
            .strip_prefix("att")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|key| self.state().attachments.remove(&key).is_some())
    }

    /// Purges a page: it answers 404 from now on.
    pub fn delete_page(&self, id: &PageId) -> bool {
        let Ok(key) = id.as_str().parse::<u64>() else {
            return false;
        };
        self.state().pages.remove(&key).is_some()
    }

    /// Restricts a page so the account cannot see it (404, not listed), or lifts that.
    pub fn hide_page(&self, id: &PageId, hidden: bool) -> bool {
        self.with_page(id, |p| p.hidden = hidden).is_some()
    }

    /// Returns a page as the simulator holds it.
    pub fn page(&self, id: &PageId) -> Option<SimPage> {
        self.with_page(id, |p| p.clone())
    }

    /// Returns every page the account can see with status `current`, by id.
    pub fn current_pages(&self) -> Vec<SimPage> {
        self.state()
            .pages
            .values()
            .filter(|p| p.status == PageStatus::Current && !p.hidden && !p.folder)
            .cloned()
            .collect()
    }

    /// The current pages' `(id, version)`, of `spaces` only when given: what an index in step
    /// with this Confluence holds.
    pub fn versions(&self, spaces: Option<&[&str]>) -> std::collections::BTreeSet<(String, u64)> {
        self.current_pages()
            .into_iter()
            .filter(|p| spaces.is_none_or(|s| s.contains(&p.space_key.as_str())))
            .map(|p| (p.id.to_string(), p.version))
            .collect()
    }

    /// Answers the next matching requests with `fault`.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Delays every answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Makes every page listing name `link` as its `next` link (a hostile or broken server:
    /// another host, or a listing that never ends); `None` restores the real links.
    pub fn set_next_link(&self, link: Option<&str>) {
        self.state().next_link = link.map(str::to_owned);
    }

    /// Caps the results of one listing response (fewer than `limit` asks for, as real servers do).
    pub fn set_max_results(&self, max: usize) {
        self.state().max_results = max.max(1);
    }

    /// Returns the request log.
    pub fn requests(&self) -> Vec<Request> {
        self.state().log.clone()
    }

    /// Counts logged requests of `route`.
    pub fn count(&self, route: Route) -> usize {
        self.state().log.iter().filter(|r| r.route == route).count()
    }

    /// Counts logged requests of `route` for page `id`.
    pub fn count_for(&self, route: Route, id: &PageId) -> usize {
        let needle = format!("/{id}");
        self.state()
            .log
            .iter()
            .filter(|r| {
                r.route == route && r.uri.split('?').next().unwrap_or("").ends_with(&needle)
            })
            .count()
    }

    /// Empties the request log and resets the in-flight peak.
    pub fn clear_log(&self) {
        let mut s = self.state();
        s.log.clear();
        s.peak_in_flight = 0;
    }

    /// The most API requests that were being answered at once since the log was cleared.
    pub fn peak_in_flight(&self) -> usize {
        self.state().peak_in_flight
    }

    /// Returns the webhook body Confluence would send for `event` on page `id` in `shape`.
    pub fn webhook_body(&self, event: PageEvent, id: &PageId, shape: BodyShape) -> String {
        let page = self.page(id);
        let reference = PageRef {
            id: id.clone(),
            title: page.as_ref().map(|p| p.title.clone()),
            space_key: page.as_ref().map(|p| p.space_key.clone()),
            version: page.as_ref().map(|p| p.version),
        };
        webhook::body(event, &reference, shape, now_ms())
    }

    /// The body Confluence sends for comment event `event` (`CommentCreated`, `CommentUpdated`,
    /// `CommentRemoved`) on comment `comment` of page `page`: Data Center's id-only body, or
    /// Cloud's nameless one with the comment's page.
    pub fn comment_webhook_body(
        &self,
        event: PageEvent,
        comment: &PageId,
        page: &PageId,
        shape: BodyShape,
    ) -> String {
        let number = |id: &PageId| id.as_str().parse::<u64>().unwrap_or_default();
        let held = self.page(page);
        let version = self.comment(comment).map_or(1, |c| c.version);
        let body = match shape {
            BodyShape::DataCenter | BodyShape::DataCenterFull => serde_json::json!({
                "timestamp": now_ms(), "event": event.name(),
                "userKey": "2c9280839e460b0f019e460ba6440000",
                "comment": {"id": number(comment)},
            }),
            BodyShape::Cloud | BodyShape::CloudStringId => serde_json::json!({
                "userAccountId": "557058:0a1b2c3d-docbrain-simulator", "accountType": "customer",
                "timestamp": now_ms(),
                "comment": {
                    "id": comment.as_str(), "idAsString": comment.as_str(), "contentType": "comment",
                    "version": version,
                    "parent": {
                        "id": page.as_str(), "idAsString": page.as_str(), "contentType": "page",
                        "title": held.as_ref().map(|p| p.title.clone()),
                        "spaceKey": held.as_ref().map(|p| p.space_key.clone()),
                        "version": held.as_ref().map(|p| p.version),
                    },
                },
            }),
        };
        body.to_string()
    }

    /// POSTs a webhook for `event` on page `id` to `url`, signed with `secret` when given, and
    /// returns the answer's status.
    ///
    /// # Errors
    /// When the receiver cannot be reached.
    pub async fn send_webhook(
        &self,
        url: &str,
        secret: Option<&str>,
        event: PageEvent,
        id: &PageId,
        shape: BodyShape,
    ) -> Result<u16, reqwest::Error> {
        let body = self.webhook_body(event, id, shape);
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-request-id", format!("sim-{}", now_ms()));
        if let Some(secret) = secret {
            request = request.header(
                "x-hub-signature",
                webhook::sign(secret.as_bytes(), body.as_bytes()),
            );
        }
        Ok(request.body(body).send().await?.status().as_u16())
    }
}
