//! The Confluence REST client: a [`Fetcher`] over Cloud's REST v2 or Data Center's REST v1.
//!
//! Listings page through every configured space (v2: cursor links, v1: `start`/`limit`), following
//! the `next` link until there is none (a short page is not the end), and carry version numbers
//! so the pipeline skips unchanged pages without fetching their bodies. A fetch returns the page
//! with its storage-format body converted to Markdown, its ancestors, labels and web link; 404
//! ("deleted or not visible to this account") is [`Fetched::Gone`]. Only `current` pages are
//! indexed: trashed, archived (hidden from Confluence's own search by default), draft and
//! historical pages are removed from the index.

mod http;
mod parts;
mod permissions;
mod v1;
mod v2;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::settings::{ApiVersion, ConfluenceSettings};
use async_trait::async_trait;
use docbrain_core::{
    CallHealth, Fetched, Fetcher, ListedAccess, PageId, PageStatus, PageStream, PageSummary,
    ReadAccess, Reader, Scope,
};
use docbrain_http::RetryPolicy;
use futures::{stream, StreamExt, TryStreamExt};
use reqwest::Url;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::SourceError;
use http::{Auth, Http};

/// How the client reaches and reads a Confluence site: the deployment's settings plus the
/// client's own tuning.
#[derive(Debug, Clone)]
pub struct ConfluenceConfig {
    /// The `CONFLUENCE_*` settings.
    pub site: ConfluenceSettings,
    /// Results asked for per listing request (the server may return fewer).
    pub page_size: u32,
    /// Retries of each request.
    pub retry: RetryPolicy,
    /// The largest answer read; a longer one is an error, never buffered whole.
    pub max_body_bytes: usize,
    /// Runs attachment extraction in a child process; `None` (the default): this binary, which
    /// must call [`crate::extract::serve_if_child`] first in `main` (else attachments fail,
    /// counted, with that reason).
    pub extractor: Option<crate::extract::Extractor>,
}

/// What a listing said of a page: its version, space, and rule and place.
#[derive(Debug, Clone, Copy)]
struct Listing<'a> {
    version: Option<u64>,
    space_key: &'a str,
    access: &'a ListedAccess,
}

/// Whether a rule is read now, or may take layers the current crawl has read already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Every layer read now (a webhook's re-read, a fetch on its own).
    Exact,
    /// Layers read earlier in this crawl serve again (no older than the crawl, which is what
    /// its writes are stamped with).
    Crawl,
}

/// Where a page sits: what its read rule depends on.
#[derive(Debug)]
struct Located {
    space_key: String,
    /// v2's numeric space id.
    space_id: Option<String>,
    /// Ancestor ids, root first.
    ancestors: Vec<PageId>,
    /// Whether `ancestors` reaches the top of the tree (else the rule cannot be known).
    whole: bool,
}

/// A page's chain of ancestors as read: ids root first, the titles of those that have one,
/// and whether it was read to the top.
#[derive(Debug)]
struct Chain {
    ids: Vec<PageId>,
    titles: Vec<String>,
    whole: bool,
}

impl Chain {
    /// The chain of a page at the top of its space.
    fn top() -> Self {
        Self {
            ids: Vec::new(),
            titles: Vec::new(),
            whole: true,
        }
    }
}

impl From<ConfluenceSettings> for ConfluenceConfig {
    fn from(site: ConfluenceSettings) -> Self {
        Self {
            page_size: match site.api_version {
                ApiVersion::V2 => 250,
                ApiVersion::V1 => 100,
            },
            retry: RetryPolicy::default(),
            // A listing page of 250 pages with bodies is a few MB.
            max_body_bytes: 32 * 1024 * 1024,
            extractor: None,
            site,
        }
    }
}

/// A Confluence site as a [`Fetcher`].
#[derive(Debug, Clone)]
pub struct ConfluenceClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: Http,
    base: Url,
    version: ApiVersion,
    space_keys: Vec<String>,
    page_size: u32,
    /// Whether page permissions are read (`SEARCH_PERMISSIONS`).
    read_permissions: bool,
    /// Whether the site lets anonymous users in (`CONFLUENCE_ANONYMOUS_ACCESS`).
    anonymous_access: bool,
    /// Whether comments are read (`COMMENTS`).
    comments: bool,
    /// Whether attachments are read, and within what limits (`ATTACHMENTS`, …).
    attachments: crate::settings::AttachmentSettings,
    /// Runs attachment extraction; `None`: this binary, if it serves as the extractor.
    extractor: Option<crate::extract::Extractor>,
    /// Titles of pages seen in listings (ancestor breadcrumbs) and space keys by space id (v2).
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    titles: HashMap<PageId, String>,
    space_keys: HashMap<String, String>,
    /// Fail-closed reasons already warned about.
    warned: HashSet<String>,
    /// Rules read during the current crawl, so an ancestor's restriction read for one page
    /// serves all its descendants: cleared when a crawl starts, never used by webhook re-reads.
    crawl: CrawlRules,
}

/// Permission layers read during one crawl: each space's, and each content's own restriction
/// (`None`: it has none). Only what was read whole is kept; pages read at once that share an
/// ancestor wait for one read of it.
#[derive(Debug, Default)]
struct CrawlRules {
    spaces: HashMap<String, Arc<tokio::sync::OnceCell<docbrain_core::Layer>>>,
    restrictions: HashMap<PageId, Arc<tokio::sync::OnceCell<Option<docbrain_core::Layer>>>>,
}

/// A space a crawl walks.
#[derive(Debug, Clone)]
struct SpaceRef {
    key: String,
    /// v2's numeric space id (v1 lists by key).
    id: Option<String>,
}

impl ConfluenceClient {
    /// Returns a client for `config`. Nothing is requested until the first listing or fetch.
    ///
    /// # Errors
    /// [`SourceError::Config`] when the base URL is not an http(s) URL, the token is empty, or
    /// v2 is chosen without an email.
    pub fn new(config: impl Into<ConfluenceConfig>) -> Result<Self, SourceError> {
        let ConfluenceConfig {
            site: config,
            page_size,
            retry,
            max_body_bytes,
            extractor,
        } = config.into();
        config
            .validate()
            .map_err(|e| SourceError::Config(e.to_string()))?;
        let trimmed = config.base_url.trim().trim_end_matches('/');
        let base = Url::parse(&format!("{trimmed}/"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                SourceError::Config(format!(
                    "CONFLUENCE_BASE_URL={:?} is not an http(s) URL: use https://<site>.atlassian.net/wiki \
                     for Cloud or your Data Center address",
                    config.base_url
                ))
            })?;
        let auth = match config.api_version {
            ApiVersion::V2 => {
                let email = config.email.unwrap_or_default();
                Auth::Basic {
                    email: email.trim().to_owned(),
                    token: config.api_token,
                }
            }
            ApiVersion::V1 => Auth::Bearer(config.api_token),
        };
        let http = Http::new(
            auth,
            retry,
            config.api_version,
            &base,
            config.tls_verify,
            max_body_bytes,
        )?;
        let space_keys = config
            .space_keys
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                version: config.api_version,
                space_keys,
                page_size: page_size.clamp(1, 250),
                read_permissions: config.read_permissions,
                anonymous_access: config.anonymous_access,
                comments: config.comments,
                attachments: config.attachments.clone(),
                extractor,
                cache: Mutex::new(Cache::default()),
            }),
        })
    }

    /// Whether pages of `space_key` are in scope: every space when no keys are configured.
    pub fn in_scope(&self, space_key: &str) -> bool {
        self.inner.space_keys.is_empty() || self.inner.space_keys.iter().any(|k| k == space_key)
    }

    /// Returns the API version this client speaks.
    pub fn api_version(&self) -> ApiVersion {
        self.inner.version
    }

    /// The read rule of page `id` where it sits. Without permissions read
    /// (`SEARCH_PERMISSIONS=off`) a page admits nobody under a permission filter, so an index
    /// crawled that way never opens up when a server filters by permission later.
    async fn access_at(
        &self,
        id: &PageId,
        at: &Located,
        reads: Reads,
    ) -> Result<ReadAccess, SourceError> {
        if !self.inner.read_permissions {
            return Ok(ReadAccess::nobody());
        }
        permissions::read_access(&self.inner, id, at, reads).await
    }

    /// Fetches page `id` with its rule: the one `listed` gives when the page is still of the
    /// listed version, in the listed space, under the listed ancestors; else read (`reads`).
    ///
    /// Its comments are read with it, unless `parts` (the listing's digest of them) says it has
    /// none.
    async fn fetch_placed(
        &self,
        id: &PageId,
        listed: Option<Listing<'_>>,
        parts: Option<u128>,
        reads: Reads,
    ) -> Result<Fetched, SourceError> {
        let (fetched, whole) = match self.inner.version {
            ApiVersion::V2 => {
                let chain = listed.map(|l| l.access.ancestor_ids.as_slice());
                v2::fetch(&self.inner, id, chain).await?
            }
            ApiVersion::V1 => v1::fetch(&self.inner, id).await?,
        };
        // A page outside CONFLUENCE_SPACE_KEYS (a site-wide webhook, a page moved out) is not
        // ours to index: to the index it is gone.
        Ok(match fetched {
            Fetched::Page(page) if !self.in_scope(&page.space_key) => {
                debug!(page_id = %id, space = %page.space_key, "page is outside CONFLUENCE_SPACE_KEYS; treated as gone");
                Fetched::Gone
            }
            Fetched::Page(mut page) if page.status == PageStatus::Current => {
                page.access = match listed {
                    Some(l)
                        if whole
                            && l.version == Some(page.version)
                            && l.space_key == page.space_key
                            && l.access.ancestor_ids == page.ancestor_ids =>
                    {
                        l.access.rule.clone()
                    }
                    _ => {
                        let located = Located {
                            space_id: self.space_id_of(&page.space_key),
                            space_key: page.space_key.clone(),
                            ancestors: page.ancestor_ids.clone(),
                            whole,
                        };
                        self.access_at(&page.id, &located, reads).await?
                    }
                };
                if parts::read_any(&self.inner) && parts != Some(PageSummary::parts_digest([])) {
                    match parts::read(&self.inner, &page).await {
                        Ok(read) => page.parts = read,
                        // The page and its fresh rule are written all the same; the parts it
                        // held leave with it (none is kept under an older rule) and are read
                        // again at the next crawl.
                        Err(e) => {
                            warn!(page_id = %id, error = %e, "could not list the page's comments and attachments: it is indexed without them until they can be read");
                        }
                    }
                }
                Fetched::Page(page)
            }
            other => other,
        })
    }

    /// v2's id of space `key`, from the spaces seen so far.
    fn space_id_of(&self, key: &str) -> Option<String> {
        self.inner
            .lock_cache()
            .space_keys
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(id, _)| id.clone())
    }

    /// Keeps the titles of the listed pages that are above another one: v2 names the links of
    /// a chain by their titles, read by id. A leaf's title (most pages') is never needed, so
    /// a crawl does not keep one per page.
    fn keep_titles_above(&self, listed: &[Listed]) {
        let above: HashSet<&PageId> = listed
            .iter()
            .flat_map(|(_, rule)| {
                let parent = rule.parent.as_ref().and_then(|(id, _)| id.as_ref());
                rule.ancestors.iter().flatten().chain(parent)
            })
            .collect();
        let mut cache = self.inner.lock_cache();
        for (page, _) in listed.iter().filter(|(p, _)| above.contains(&p.id)) {
            cache.titles.insert(page.id.clone(), page.title.clone());
        }
    }

    /// Lists one space's current pages, following `next` links to the end, with their read
    /// rules and ancestors where the listings give them whole.
    async fn list_space(&self, space: SpaceRef) -> Result<Vec<PageSummary>, SourceError> {
        let read_ms = docbrain_core::now_ms();
        let listed = match self.inner.version {
            ApiVersion::V2 => v2::list_space(&self.inner, &space).await?,
            ApiVersion::V1 => v1::list_space(&self.inner, &space).await?,
        };
        let (listed, rules) = match (self.inner.read_permissions, self.inner.version) {
            (false, _) => {
                let none = vec![None; listed.len()];
                (listed, none)
            }
            (true, ApiVersion::V1) => {
                let rules =
                    permissions::listed_access(&self.inner, &space.key, None, &listed).await?;
                (listed, rules)
            }
            (true, ApiVersion::V2) => {
                let listed = v2::with_restrictions(&self.inner, &space, &listed).await?;
                let rules = permissions::listed_access(
                    &self.inner,
                    &space.key,
                    space.id.as_deref(),
                    &listed,
                )
                .await?;
                (listed, rules)
            }
        };
        let comments = match parts::read_any(&self.inner) {
            true => match parts::list_space(&self.inner, &space.key).await {
                Ok(listed) => Some(listed),
                // Without it, pages whose version is unchanged keep the parts they have; a
                // changed page still reads its own.
                Err(e) => {
                    warn!(space = %space.key, error = %e, "could not list the space's comments and attachments: changes to them on unchanged pages wait for the next crawl");
                    None
                }
            },
            false => None,
        };
        if self.inner.version == ApiVersion::V2 {
            self.keep_titles_above(&listed);
        }
        let pages: Vec<PageSummary> = listed
            .into_iter()
            .zip(rules)
            .map(|((page, placed), rule)| PageSummary {
                access: rule.map(|rule| ListedAccess {
                    rule,
                    ancestor_ids: placed.ancestors.unwrap_or_default(),
                    read_ms,
                }),
                parts: comments.as_ref().map(|listed| {
                    PageSummary::parts_digest(
                        listed
                            .get(&page.id)
                            .into_iter()
                            .flatten()
                            .map(|(id, version)| (id, *version)),
                    )
                }),
                ..page
            })
            .collect();
        info!(space = %space.key, pages = pages.len(), "Fetching pages from space {}... {} pages found", space.key, pages.len());
        Ok(pages)
    }
}

impl Inner {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache only memoises lookups; a poisoned lock still holds valid entries.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Logs `message` as a warning the first time it comes up (one line per reason, not per
    /// page).
    fn warn_once(&self, message: &str) {
        if self.lock_cache().warned.insert(message.to_owned()) {
            warn!("{message}");
        }
    }

    /// Whether `url` is on the configured site (same scheme, host and port as the base URL).
    fn on_site(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// `base` joined with a path relative to it (`api/v2/pages/1`).
    fn url(&self, relative: &str) -> Result<Url, SourceError> {
        self.base.join(relative).map_err(|e| {
            SourceError::Config(format!("cannot build a URL from CONFLUENCE_BASE_URL: {e}"))
        })
    }

    /// GETs `url`; a 404 is `Ok(None)`.
    async fn get(&self, url: &Url) -> Result<Option<http::Answer>, SourceError> {
        self.http.get(url).await
    }

    /// GETs `url` where a 404 means the answer's shape was wrong (a listing, a space).
    async fn get_found(
        &self,
        url: &Url,
        missing: impl FnOnce() -> SourceError,
    ) -> Result<http::Answer, SourceError> {
        self.get(url).await?.ok_or_else(missing)
    }
}

#[async_trait]
impl Fetcher for ConfluenceClient {
    fn list<'a>(&'a self, scope: &'a Scope) -> PageStream<'a> {
        let keys: Vec<String> = if scope.spaces.is_empty() {
            self.inner.space_keys.clone()
        } else {
            scope.spaces.clone()
        };
        let spaces = async move {
            info!(
                api = %self.inner.version,
                spaces = %if keys.is_empty() { "(all visible)".to_owned() } else { keys.join(",") },
                "Crawling Confluence"
            );
            self.inner.lock_cache().crawl = CrawlRules::default();
            if !self.inner.read_permissions {
                warn!("SEARCH_PERMISSIONS=off: pages indexed now carry no read rule; a server that filters by permission (SEARCH_PERMISSIONS=on) shows them to nobody until a crawl with SEARCH_PERMISSIONS=on reads their permissions");
            }
            let spaces = match self.inner.version {
                ApiVersion::V2 => v2::resolve_spaces(&self.inner, &keys).await?,
                ApiVersion::V1 => v1::resolve_spaces(&self.inner, &keys).await?,
            };
            let pages = stream::iter(spaces)
                .then(move |space| self.list_space(space))
                .map_ok(|pages| stream::iter(pages.into_iter().map(Ok::<_, SourceError>)))
                .try_flatten();
            Ok::<_, SourceError>(pages)
        };
        Box::pin(
            stream::once(spaces)
                .try_flatten()
                .map_err(docbrain_core::Error::from),
        )
    }

    async fn check(&self) -> docbrain_core::Result<()> {
        let path = match self.inner.version {
            ApiVersion::V2 => "api/v2/spaces",
            ApiVersion::V1 => "rest/api/space",
        };
        let mut url = self.inner.url(path)?;
        url.query_pairs_mut().append_pair("limit", "1");
        self.inner
            .get_found(&url, || SourceError::Http {
                status: 404,
                path: http::path_of(&url),
                detail: match self.inner.version {
                    ApiVersion::V2 => "the spaces endpoint is missing: is CONFLUENCE_BASE_URL the site's /wiki address (https://<site>.atlassian.net/wiki)?".into(),
                    ApiVersion::V1 => "the space endpoint is missing: is CONFLUENCE_BASE_URL the Data Center address (with its context path)?".into(),
                },
            })
            .await?;
        Ok(())
    }

    fn source_id(&self) -> String {
        format!(
            "confluence:{}",
            self.inner.base.as_str().trim_end_matches('/')
        )
    }

    fn health(&self) -> Option<CallHealth> {
        Some(self.inner.http.health())
    }

    async fn fetch(&self, id: &PageId) -> docbrain_core::Result<Fetched> {
        Ok(self.fetch_placed(id, None, None, Reads::Exact).await?)
    }

    async fn fetch_listed(&self, summary: &PageSummary) -> docbrain_core::Result<Fetched> {
        let listed = summary
            .access
            .as_ref()
            .filter(|_| self.inner.read_permissions && summary.version.is_some())
            .map(|l| Listing {
                version: summary.version,
                space_key: &summary.space_key,
                access: l,
            });
        Ok(self
            .fetch_placed(&summary.id, listed, summary.parts, Reads::Crawl)
            .await?)
    }

    async fn fetch_part(
        &self,
        _page: &docbrain_core::Page,
        part: &docbrain_core::Part,
    ) -> docbrain_core::Result<docbrain_core::PartText> {
        let limits = &self.inner.attachments;
        let extractor = match &self.inner.extractor {
            Some(extractor) => extractor.clone(),
            None => {
                crate::extract::Extractor::this_binary().map_err(|e| SourceError::Attachment {
                    name: part.title.clone(),
                    detail: e.to_string(),
                })?
            }
        }
        .with_limits(limits.timeout, limits.memory_mb.saturating_mul(1 << 20));
        Ok(parts::text(&self.inner, &extractor, part).await?)
    }

    async fn read_access(&self, id: &PageId) -> docbrain_core::Result<ReadAccess> {
        if !self.inner.read_permissions {
            return Ok(ReadAccess::nobody());
        }
        let located = match self.inner.version {
            ApiVersion::V2 => v2::locate(&self.inner, id).await?,
            ApiVersion::V1 => v1::locate(&self.inner, id).await?,
        };
        Ok(match located {
            // Gone: the reconcile this difference triggers removes it.
            None => ReadAccess::nobody(),
            // Only a crawl asks this, for pages whose rule its listing could not give.
            Some(located) => self.access_at(id, &located, Reads::Crawl).await?,
        })
    }

    async fn reader(&self, who: &str) -> docbrain_core::Result<Reader> {
        Ok(permissions::reader(&self.inner, who).await?)
    }
}

/// Configured spaces that do not resolve: an error when none does (CONFLUENCE_SPACE_KEYS is
/// wrong), else a warning per missing space. A space that vanished (deleted, or no longer
/// readable) lists no pages, so the crawl removes its indexed ones, under the deletion guard.
fn check_missing(keys: &[String], found: &[SpaceRef]) -> Result<(), SourceError> {
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !found.iter().any(|s| &s.key == *k))
        .collect();
    if let (Some(first), true) = (missing.first(), found.is_empty()) {
        return Err(SourceError::SpaceNotFound {
            key: (*first).clone(),
        });
    }
    for key in missing {
        warn!(space = %key, "space {key} does not exist or this account cannot see it: its indexed pages go (under the deletion guard); check CONFLUENCE_SPACE_KEYS and the account's space permissions");
    }
    Ok(())
}

/// Reads a page id that may be a number or a string.
fn id_of(value: &Value) -> Option<PageId> {
    serde_json::from_value(value.clone()).ok()
}

/// Reads a status; `deleted` and unknown statuses read as `None` (treated as gone).
fn status_of(value: &Value) -> Option<PageStatus> {
    serde_json::from_value(value.clone()).ok()
}

/// Follows a space's listing from `first` through every `next` link (read by `next_url`, which
/// differs per API version) and returns its summaries.
async fn walk_listing(
    inner: &Inner,
    first: Url,
    space: &SpaceRef,
    next_url: fn(&Inner, &http::Answer) -> Result<Option<Url>, SourceError>,
) -> Result<Vec<Listed>, SourceError> {
    let mut pages = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        let path = http::path_of(&url);
        check_next(inner, &url, &mut seen)?;
        let answer = inner
            .get_found(&url, || SourceError::SpaceNotFound {
                key: space.key.clone(),
            })
            .await?;
        pages.extend(summaries(
            inner,
            &answer.json["results"],
            &space.key,
            &path,
        )?);
        next = next_url(inner, &answer)?;
    }
    Ok(pages)
}

/// Checks that a listing's next request, `url`, is on the configured site and not one it made
/// already (`seen`, which gains it).
fn check_next(inner: &Inner, url: &Url, seen: &mut HashSet<Url>) -> Result<(), SourceError> {
    let path = http::path_of(url);
    if !inner.on_site(url) {
        return Err(SourceError::Decode {
            path,
            detail: format!(
                "the listing's next link leads to {}, not to CONFLUENCE_BASE_URL ({}): not following it with the credentials",
                url.origin().ascii_serialization(),
                inner.base.origin().ascii_serialization()
            ),
        });
    }
    if !seen.insert(url.clone()) {
        return Err(SourceError::Decode {
            path,
            detail: "the listing leads back to a page it already returned: it would never end"
                .into(),
        });
    }
    Ok(())
}

/// What a listing says of a page's read rule (Data Center's expansions).
#[derive(Debug, Clone, Default)]
struct ListedRule {
    /// The page's own read restriction: `Some(None)` none, `None` not listed or of an
    /// unknown shape.
    own: Option<Option<docbrain_core::Layer>>,
    /// Its ancestors' ids, root first, when listed.
    ancestors: Option<Vec<PageId>>,
    /// Cloud v2's parent: `None` when the listing did not say (the key is missing or not an
    /// id), `Some((None, _))` at the top of the space, else its id and `parentType` (`page`,
    /// `folder`, …).
    parent: Option<(Option<PageId>, Option<String>)>,
}

/// A listed page and what the listing says of its rule.
type Listed = (PageSummary, ListedRule);

/// Reads a listing's summaries; entries without an id or title are a decoding error.
fn summaries(
    inner: &Inner,
    results: &Value,
    space_key: &str,
    path: &str,
) -> Result<Vec<Listed>, SourceError> {
    let results = results.as_array().ok_or_else(|| SourceError::Decode {
        path: path.to_owned(),
        detail: "no `results` array".into(),
    })?;
    results
        .iter()
        .map(|r| {
            let id = id_of(&r["id"]).ok_or_else(|| SourceError::Decode {
                path: path.to_owned(),
                detail: format!("a listed page has no id: {}", shorten_json(r)),
            })?;
            let own = r
                .get("restrictions")
                .and_then(|x| permissions::restriction_layer(inner, &x["read"]["restrictions"]));
            let ancestors = r["ancestors"].as_array().and_then(|a| {
                a.iter()
                    .map(|x| id_of(&x["id"]))
                    .collect::<Option<Vec<_>>>()
            });
            Ok((
                PageSummary {
                    id,
                    space_key: space_key.to_owned(),
                    title: r["title"].as_str().unwrap_or_default().to_owned(),
                    version: r["version"]["number"].as_u64(),
                    access: None,
                    parts: None,
                },
                ListedRule {
                    own,
                    ancestors,
                    parent: match r.get("parentId") {
                        None => None,
                        Some(Value::Null) => Some((None, None)),
                        Some(id) => id_of(id)
                            .map(|id| (Some(id), r["parentType"].as_str().map(str::to_owned))),
                    },
                },
            ))
        })
        .collect()
}

fn shorten_json(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Labels from a `{"results": [{"name": …}]}` object.
fn labels_of(labels: &Value) -> Vec<String> {
    labels["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
