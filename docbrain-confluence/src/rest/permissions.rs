//! Who may read a page, as Confluence says, and which groups a user is in.
//!
//! A page's rule has one layer for the space's view permission (v2 `spaces/{id}/permissions` on
//! Cloud; `rest/api/space/{key}/permissions` on Data Center 9.1+) and one per read restriction
//! on the page or any ancestor (`rest/api/content/{id}/restriction/byOperation/read`, on both).
//! Principals are account ids and group ids on Cloud, user keys and group names on Data Center.
//!
//! Fail closed: permissions that cannot be read (the endpoint is missing, or the account may not
//! call it) make the page readable by nobody, with a warning that says what the account needs.
//! Transport failures are errors: the page keeps its indexed state and is tried again.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use crate::settings::ApiVersion;
use docbrain_core::{Layer, PageId, Principal, ReadAccess, Reader};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use super::http::path_of;
use super::v2::{encode, next_url};
use super::{Inner, Listed, Located, Reads};
use crate::SourceError;

/// The most results asked for per permission request.
const LIMIT: usize = 200;
/// A bound on pages of one permission listing (a loop guard, far above any real list).
const MAX_PAGES: usize = 1_000;

/// Why a permission could not be read, for the fail-closed warning.
struct Unreadable(String);

/// The read rule of `page` where it sits: its space's view permission, and the read
/// restriction of each ancestor (every content type: pages, folders, …) and of the page.
pub(super) async fn read_access(
    inner: &Inner,
    page: &PageId,
    at: &Located,
    reads: Reads,
) -> Result<ReadAccess, SourceError> {
    if !at.whole {
        return Ok(fail_closed(
            inner,
            page,
            &Unreadable(format!(
                "the ancestors of page {page} could not be read to the top of the tree (missing, or an answer of an unknown shape), so a restriction above it may be unknown"
            )),
        ));
    }
    let mut layers = Vec::with_capacity(at.ancestors.len() + 2);
    let crawl = reads == Reads::Crawl;
    let cell = crawl.then(|| {
        let mut cache = inner.lock_cache();
        Arc::clone(cache.crawl.spaces.entry(at.space_key.clone()).or_default())
    });
    let read = once(cell, || {
        space_layer(inner, &at.space_key, at.space_id.as_deref())
    });
    match read.await? {
        Ok(layer) => layers.push(layer),
        Err(why) => return Ok(fail_closed(inner, page, &why)),
    }
    for id in at.ancestors.iter().chain([page]) {
        let cell = crawl.then(|| {
            let mut cache = inner.lock_cache();
            Arc::clone(cache.crawl.restrictions.entry(id.clone()).or_default())
        });
        match once(cell, || restriction(inner, id)).await? {
            Ok(own) => layers.extend(own),
            Err(why) => return Ok(fail_closed(inner, page, &why)),
        }
    }
    Ok(ReadAccess::of(layers))
}

/// Reads a layer through `cell` when there is one: the first reader reads, readers of the same
/// layer meanwhile wait for its answer, later ones take it. A failed or unreadable read is not
/// kept (the next reader tries again).
async fn once<T, F, Fut>(
    cell: Option<Arc<OnceCell<T>>>,
    read: F,
) -> Result<Result<T, Unreadable>, SourceError>
where
    T: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Result<T, Unreadable>, SourceError>>,
{
    let Some(cell) = cell else {
        return read().await;
    };
    let got = cell
        .get_or_try_init(|| async {
            match read().await {
                Ok(Ok(layer)) => Ok(layer),
                Ok(Err(why)) => Err(Ok(why)),
                Err(e) => Err(Err(e)),
            }
        })
        .await;
    match got {
        Ok(layer) => Ok(Ok(layer.clone())),
        Err(Ok(why)) => Ok(Err(why)),
        Err(Err(e)) => Err(e),
    }
}

fn fail_closed(inner: &Inner, page: &PageId, why: &Unreadable) -> ReadAccess {
    // One warning per reason, not one per page (the first page it was seen on is named).
    let message = format!(
        "{}; such pages are indexed but visible to nobody until their permissions can be read",
        why.0
    );
    if inner.lock_cache().warned.insert(message.clone()) {
        warn!(page_id = %page, "{message}");
    }
    ReadAccess::nobody()
}

/// The space's view permission as a layer. Anonymous access counts only where the site lets
/// anonymous users in (`CONFLUENCE_ANONYMOUS_ACCESS`), and is read where Atlassian documents
/// it: Cloud's v1 space `anonymousAccess`, Data Center's `permissions/anonymous`.
async fn space_layer(
    inner: &Inner,
    key: &str,
    id: Option<&str>,
) -> Result<Result<Layer, Unreadable>, SourceError> {
    let mut layer = match (inner.version, id) {
        (ApiVersion::V2, Some(id)) => v2_space_readers(inner, key, id).await?,
        (ApiVersion::V2, None) => Err(Unreadable(format!(
            "space {key} has no id to read permissions by"
        ))),
        (ApiVersion::V1, _) => v1_space_readers(inner, key).await?,
    };
    if let Ok(layer) = &mut layer {
        if inner.anonymous_access && anonymous_reads(inner, key).await? {
            layer.insert(Principal::Anonymous);
        }
    }
    Ok(layer)
}

/// Cloud: the users and groups holding `read`/`space` in v2 `spaces/{id}/permissions`.
async fn v2_space_readers(
    inner: &Inner,
    key: &str,
    id: &str,
) -> Result<Result<Layer, Unreadable>, SourceError> {
    let mut layer = Layer::new();
    let mut url = inner.url(&format!("api/v2/spaces/{}/permissions", encode(id)))?;
    url.query_pairs_mut()
        .append_pair("limit", &LIMIT.to_string());
    let mut next = Some(url);
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        let Some(answer) = permission_call(inner, &url, "space permissions").await? else {
            return Ok(Err(Unreadable(format!(
                "space {key}'s permissions are not visible to this account (404 on {})",
                path_of(&url)
            ))));
        };
        let Some(results) = answer.json["results"].as_array() else {
            return Ok(Err(Unreadable(format!(
                "space {key}'s permissions came back without `results` ({})",
                path_of(&url)
            ))));
        };
        for entry in results {
            let op = &entry["operation"];
            if op["key"] == "read" && op["targetType"] == "space" {
                layer.extend(principal(inner, &entry["principal"], "id", "id"));
            }
        }
        if pages < MAX_PAGES {
            next = next_url(inner, &answer)?;
        }
    }
    Ok(Ok(layer))
}

/// Data Center 9.1+: the users and groups holding `read`/`space` in
/// `rest/api/space/{key}/permissions`.
async fn v1_space_readers(
    inner: &Inner,
    key: &str,
) -> Result<Result<Layer, Unreadable>, SourceError> {
    let url = inner.url(&format!("rest/api/space/{}/permissions", encode(key)))?;
    let Some(answer) = permission_call(inner, &url, "space permissions").await? else {
        return Ok(Err(Unreadable(
            "this Confluence Data Center has no space permissions endpoint (GET rest/api/space/{key}/permissions came in 9.1): \
             upgrade to 9.1 or later, or set SEARCH_PERMISSIONS=off for an index every caller may read"
                .into(),
        )));
    };
    let Some(entries) = entries(&answer.json) else {
        return Ok(Err(Unreadable(format!(
            "space {key}'s permissions came back in an unknown shape ({})",
            path_of(&url)
        ))));
    };
    let mut layer = Layer::new();
    for entry in entries {
        let op = &entry["operation"];
        if op["operationKey"] == "read" && op["targetType"] == "space" {
            layer.extend(principal(inner, &entry["subject"], "userKey", "name"));
        }
    }
    Ok(Ok(layer))
}

/// The entries of a Data Center permission answer: a JSON array, or `{"results": [...]}`.
fn entries(json: &Value) -> Option<&[Value]> {
    match json {
        Value::Array(a) => Some(a.as_slice()),
        other => other["results"].as_array().map(Vec::as_slice),
    }
}

/// Whether anonymous users may view space `key`: Cloud's v1 space answer carries a `read`/
/// `space` permission with `anonymousAccess: true`; Data Center lists anonymous users' space
/// operations at `permissions/anonymous`. What cannot be read grants nothing.
async fn anonymous_reads(inner: &Inner, key: &str) -> Result<bool, SourceError> {
    let (url, what) = match inner.version {
        ApiVersion::V2 => {
            let mut url = inner.url(&format!("rest/api/space/{}", encode(key)))?;
            url.query_pairs_mut().append_pair("expand", "permissions");
            (url, "anonymous access")
        }
        ApiVersion::V1 => (
            inner.url(&format!(
                "rest/api/space/{}/permissions/anonymous",
                encode(key)
            ))?,
            "anonymous access",
        ),
    };
    let Some(answer) = permission_call(inner, &url, what).await? else {
        return Ok(false);
    };
    Ok(match inner.version {
        ApiVersion::V2 => answer.json["permissions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| {
                p["anonymousAccess"] == true
                    && p["operation"]["operation"] == "read"
                    && p["operation"]["targetType"] == "space"
            }),
        ApiVersion::V1 => entries(&answer.json).into_iter().flatten().any(|p| {
            p["operation"]["operationKey"] == "read" && p["operation"]["targetType"] == "space"
        }),
    })
}

/// A page's own read restriction as a layer; `None` when it has none. Only an answer that has
/// both lists (`restrictions.user.results`, `restrictions.group.results`), each entry with an
/// id, is read; anything else makes the page unreadable, never unrestricted.
async fn restriction(
    inner: &Inner,
    id: &PageId,
) -> Result<Result<Option<Layer>, Unreadable>, SourceError> {
    let mut url = inner.url(&format!(
        "rest/api/content/{}/restriction/byOperation/read",
        encode(id.as_str())
    ))?;
    url.query_pairs_mut()
        .append_pair("expand", "restrictions.user,restrictions.group")
        .append_pair("limit", &LIMIT.to_string());
    let Some(answer) = permission_call(inner, &url, "page restrictions").await? else {
        return Ok(Err(Unreadable(format!(
            "the read restrictions of page {id} are not visible to this account"
        ))));
    };
    Ok(
        restriction_layer(inner, &answer.json["restrictions"]).ok_or_else(|| {
            Unreadable(format!(
                "the read restrictions of content {id} came back in an unknown shape (GET {})",
                path_of(&url)
            ))
        }),
    )
}

/// A read restriction as a layer, from an object holding `user.results` and `group.results`
/// (the restriction endpoint's `restrictions`, or a listing's `restrictions.read.restrictions`);
/// `Some(None)` when it has none, `None` when it is not of that shape or an entry has no id.
pub(super) fn restriction_layer(inner: &Inner, r: &Value) -> Option<Option<Layer>> {
    let (users, groups) = (
        r["user"]["results"].as_array()?,
        r["group"]["results"].as_array()?,
    );
    let (user_field, group_field) = match inner.version {
        ApiVersion::V2 => ("accountId", "id"),
        ApiVersion::V1 => ("userKey", "name"),
    };
    let usable = |v: &Value| {
        v.as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    // A list cut short (more entries than it holds, or a next page) is read as far as it goes:
    // that only narrows who may read, unless nothing is left of it.
    let cut = |list: &Value, held: usize| {
        list["size"]
            .as_u64()
            .is_some_and(|size| size as usize > held)
            || list["_links"]["next"].is_string()
    };
    let cut_short = cut(&r["user"], users.len()) || cut(&r["group"], groups.len());
    let mut layer = Layer::new();
    for user in users {
        layer.insert(Principal::User(usable(&user[user_field])?));
    }
    for group in groups {
        // Cloud names groups by id; an older answer without one falls back to the name.
        layer.insert(Principal::Group(
            usable(&group[group_field]).or_else(|| usable(&group["name"]))?,
        ));
    }
    if cut_short && layer.is_empty() {
        return None;
    }
    Some((!layer.is_empty()).then_some(layer))
}

/// The read rules of a space's pages from its listing alone (Data Center lists each page's own
/// restriction and its ancestors): the space's layer, read once, and the restriction of every
/// ancestor and of the page. A page whose rule the listing cannot give whole (an ancestor not
/// listed, an entry of an unknown shape) gets `None`, and is read on its own.
pub(super) async fn listed_access(
    inner: &Inner,
    space_key: &str,
    space_id: Option<&str>,
    pages: &[Listed],
) -> Result<Vec<Option<ReadAccess>>, SourceError> {
    let space = match space_layer(inner, space_key, space_id).await? {
        Ok(layer) => {
            // Pages the listing cannot place read their rule on their own, with this layer.
            let mut cache = inner.lock_cache();
            let known = OnceCell::new_with(Some(layer.clone()));
            cache
                .crawl
                .spaces
                .insert(space_key.to_owned(), Arc::new(known));
            layer
        }
        Err(why) => {
            let nobody = pages
                .first()
                .map(|(page, _)| fail_closed(inner, &page.id, &why));
            return Ok(pages.iter().map(|_| nobody.clone()).collect());
        }
    };
    let own: std::collections::HashMap<&PageId, &Option<Option<Layer>>> = pages
        .iter()
        .map(|(page, rule)| (&page.id, &rule.own))
        .collect();
    Ok(pages
        .iter()
        .map(|(page, rule)| {
            let mut layers = vec![space.clone()];
            for at in rule.ancestors.as_ref()?.iter().chain([&page.id]) {
                match own.get(at)? {
                    Some(Some(layer)) => layers.push(layer.clone()),
                    Some(None) => {}
                    None => return None,
                }
            }
            Some(ReadAccess::of(layers))
        })
        .collect())
}

/// A user or group holding a space permission: `{"type": "user"|"group", …}`. Other principal
/// types (Cloud's roles, anything new) grant nothing here, with one warning each.
fn principal(inner: &Inner, p: &Value, user_field: &str, group_field: &str) -> Option<Principal> {
    let id = |field: &str| {
        p[field]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    match p["type"].as_str() {
        Some("user") => Some(Principal::User(id(user_field)?)),
        Some("group") => Some(Principal::Group(id(group_field).or_else(|| id("name"))?)),
        other => {
            let message = format!(
                "a space permission names a principal of type {:?}, which DocBrain does not read: it grants no one access in search (a narrower rule than Confluence's)",
                other.unwrap_or("(none)")
            );
            inner.warn_once(&message);
            None
        }
    }
}

/// GETs a permission endpoint; 404 is `Ok(None)`. A refusal (403, or the 500 Data Center may
/// answer when the account is not a space admin) is reported as what the account needs.
async fn permission_call(
    inner: &Inner,
    url: &reqwest::Url,
    what: &str,
) -> Result<Option<super::http::Answer>, SourceError> {
    match inner.get(url).await {
        Err(SourceError::Unauthorized { status: 403, .. }) => {
            refused(inner, what, "403");
            Ok(None)
        }
        Err(SourceError::Unavailable { ref last, .. })
            if inner.version == ApiVersion::V1 && last.starts_with("HTTP 500") =>
        {
            refused(inner, what, "500");
            Ok(None)
        }
        other => other,
    }
}

fn refused(inner: &Inner, what: &str, status: &str) {
    let message = match inner.version {
        ApiVersion::V2 => format!("Confluence refused to show {what} (HTTP {status}): the account behind CONFLUENCE_API_TOKEN needs permission to view the space and its restrictions (and read:space:confluence on a scoped token)"),
        ApiVersion::V1 => format!("Confluence refused to show {what} (HTTP {status}; Data Center answers 500 where it means 403): the account behind CONFLUENCE_API_TOKEN needs the space's Admin permission to read space permissions"),
    };
    inner.warn_once(&message);
}

/// The principals of user `who`: an account id on Cloud, a username on Data Center. A user
/// Confluence does not know reads what a known user with no grants reads (anonymous pages):
/// search answers both alike, so it cannot be used to find out who exists.
pub(super) async fn reader(inner: &Inner, who: &str) -> Result<Reader, SourceError> {
    let who = who.trim();
    let (param, user_id) = match inner.version {
        ApiVersion::V2 => {
            if who.contains('@') {
                return Err(SourceError::UnknownUser {
                    who: who.to_owned(),
                    hint: "Confluence Cloud names users by account id (Atlassian does not let apps look a user up by email): pass the account id".into(),
                });
            }
            ("accountId", who.to_owned())
        }
        ApiVersion::V1 => {
            let mut url = inner.url("rest/api/user")?;
            url.query_pairs_mut().append_pair("username", who);
            let Some(answer) = inner.get(&url).await? else {
                return Ok(unknown(who));
            };
            let key = answer.json["userKey"]
                .as_str()
                .ok_or_else(|| SourceError::Decode {
                    path: path_of(&url),
                    detail: "the user has no userKey".into(),
                })?;
            ("username", key.to_owned())
        }
    };
    let mut groups = BTreeSet::new();
    let mut start = 0;
    for _ in 0..MAX_PAGES {
        let mut url = inner.url("rest/api/user/memberof")?;
        url.query_pairs_mut()
            .append_pair(param, who)
            .append_pair("start", &start.to_string())
            .append_pair("limit", &LIMIT.to_string());
        let Some(answer) = inner.get(&url).await? else {
            return Ok(unknown(who));
        };
        let results = answer.json["results"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for g in results {
            let id = match inner.version {
                ApiVersion::V2 => g["id"].as_str().or(g["name"].as_str()),
                ApiVersion::V1 => g["name"].as_str(),
            };
            groups.extend(id.map(str::to_owned));
        }
        let limit = answer.json["limit"].as_u64().unwrap_or(LIMIT as u64) as usize;
        if results.is_empty() || results.len() < limit {
            break;
        }
        start += results.len();
    }
    Ok(Reader::user(user_id, groups))
}

/// The reader of a user Confluence does not know: no user, no groups.
fn unknown(who: &str) -> Reader {
    debug!(user = %docbrain_core::printable(who), "Confluence knows no such user: searching as a user with no grants");
    Reader::anonymous()
}
