//! Confluence REST v1 (Data Center): `start`/`limit` listings by space key, one page expanded
//! with its storage body, version, space, ancestors and labels.

use docbrain_core::{Fetched, Page, PageId, PageStatus, ReadAccess};
use reqwest::Url;

use super::http::{path_of, Answer};
use super::v2::encode;
use super::{id_of, labels_of, status_of, walk_listing, Inner, Listed, Located, SpaceRef};
use crate::storage_format::page_body;
use crate::SourceError;

/// The next page of a listing: `_links.next`, relative to `_links.base` (which carries the
/// context path, so it is appended rather than joined).
pub(super) fn next_url(inner: &Inner, answer: &Answer) -> Result<Option<Url>, SourceError> {
    // Relative links are relative to the site (`_links.base`), which is the configured base:
    // resolve them against CONFLUENCE_BASE_URL, never against an address the answer names.
    answer.json["_links"]["next"]
        .as_str()
        .map(|next| inner.url(next.trim_start_matches('/')))
        .transpose()
}

/// Checks that each key names a visible space (all global spaces when `keys` is empty).
pub(super) async fn resolve_spaces(
    inner: &Inner,
    keys: &[String],
) -> Result<Vec<SpaceRef>, SourceError> {
    if keys.is_empty() {
        let mut url = inner.url("rest/api/space")?;
        url.query_pairs_mut()
            .append_pair("type", "global")
            .append_pair("limit", &inner.page_size.to_string());
        let mut found = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let answer = inner
                .get_found(&url, || SourceError::Http {
                    status: 404,
                    path: path_of(&url),
                    detail: "the space endpoint is missing: is CONFLUENCE_BASE_URL the Data Center address?".into(),
                })
                .await?;
            for space in answer.json["results"].as_array().into_iter().flatten() {
                if let Some(key) = space["key"].as_str() {
                    found.push(SpaceRef {
                        key: key.to_owned(),
                        id: None,
                    });
                }
            }
            next = next_url(inner, &answer)?;
        }
        return Ok(found);
    }
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let url = inner.url(&format!("rest/api/space/{}", encode(key)))?;
        if inner.get(&url).await?.is_some() {
            found.push(SpaceRef {
                key: key.clone(),
                id: None,
            });
        }
    }
    super::check_missing(keys, &found)?;
    Ok(found)
}

/// The expansions that give each listed page's own read restriction and its ancestors: its
/// rule, without a request of its own when nothing changed.
pub(super) const RULE_EXPANSIONS: &str =
    "ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group";

/// Lists the current pages of `space` through `rest/api/content`, `limit` to an answer, with
/// `expand`, following `next` links to the end (Data Center's listing; Cloud's v1 one too).
pub(super) async fn content_listing(
    inner: &Inner,
    space: &SpaceRef,
    limit: u32,
    expand: &str,
) -> Result<Vec<Listed>, SourceError> {
    let mut url = inner.url("rest/api/content")?;
    url.query_pairs_mut()
        .append_pair("spaceKey", &space.key)
        .append_pair("type", "page")
        .append_pair("status", "current")
        .append_pair("start", "0")
        .append_pair("limit", &limit.to_string())
        .append_pair("expand", expand);
    walk_listing(inner, url, space, next_url).await
}

/// Lists one space's current pages with their versions (and what their rules take, when
/// permissions are read).
pub(super) async fn list_space(
    inner: &Inner,
    space: &SpaceRef,
) -> Result<Vec<Listed>, SourceError> {
    let expand = if inner.read_permissions {
        format!("version,{RULE_EXPANSIONS}")
    } else {
        "version".to_owned()
    };
    content_listing(inner, space, inner.page_size, &expand).await
}

/// Fetches one page expanded with body, version, space, ancestors and labels (its rule not yet
/// read), and whether its ancestors came whole (Data Center lists them all, root first). The id
/// of a comment or attachment (a Data Center event may name only that) fetches its page.
pub(super) async fn fetch(inner: &Inner, id: &PageId) -> Result<(Fetched, bool), SourceError> {
    let Some((id, path, answer)) = content_or_container(inner, id).await? else {
        return Ok((Fetched::Gone, true));
    };
    let json = &answer.json;
    let decode = |detail: &str| SourceError::Decode {
        path: path.clone(),
        detail: detail.to_owned(),
    };
    let Some(status) = status_of(&json["status"]) else {
        return Ok((Fetched::Gone, true));
    };
    let title = json["title"]
        .as_str()
        .ok_or_else(|| decode("the page has no title"))?
        .to_owned();
    let version = json["version"]["number"]
        .as_u64()
        .ok_or_else(|| decode("the page has no version.number (expand=version)"))?;
    let space_key = json["space"]["key"]
        .as_str()
        .ok_or_else(|| decode("the page has no space.key (expand=space)"))?
        .to_owned();
    let storage = json["body"]["storage"]["value"].as_str();
    if status == PageStatus::Current && storage.is_none() {
        return Err(decode("the page has no body.storage.value"));
    }
    let ancestors = json["ancestors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["title"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let ancestor_ids = ancestor_ids(json);
    let base = json["_links"]["base"].as_str().map_or_else(
        || inner.base.as_str().trim_end_matches('/').to_owned(),
        str::to_owned,
    );
    let url = json["_links"]["webui"]
        .as_str()
        .map(|w| format!("{base}{w}"));
    Ok(Fetched::Page(Page {
        id,
        space_key,
        title,
        version,
        status,
        url,
        ancestors,
        labels: labels_of(&json["metadata"]["labels"]),
        body: page_body(storage).await,
        ancestor_ids,
        access: ReadAccess::nobody(),
        parts: Vec::new(),
    }))
    .map(|fetched| (fetched, ancestors_whole(json)))
}

/// The content `id` names, expanded for a fetch, with its request path; for a comment or an
/// attachment, the content it belongs to (one hop at most). `None` when it is gone.
async fn content_or_container(
    inner: &Inner,
    id: &PageId,
) -> Result<Option<(PageId, String, Answer)>, SourceError> {
    let mut id = id.clone();
    // A comment's or attachment's container is a page (or a blog post); one hop at most.
    for _ in 0..2 {
        let mut url = inner.url(&format!("rest/api/content/{}", encode(id.as_str())))?;
        url.query_pairs_mut().append_pair(
            "expand",
            "body.storage,version,space,ancestors,metadata.labels,container",
        );
        let Some(found) = inner.get(&url).await? else {
            return Ok(None);
        };
        match (
            found.json["type"].as_str(),
            id_of(&found.json["container"]["id"]),
        ) {
            (Some("comment" | "attachment"), Some(container)) => id = container,
            (Some("comment" | "attachment"), None) => return Ok(None),
            _ => return Ok(Some((id, path_of(&url), found))),
        }
    }
    Ok(None)
}

/// The ids of `expand=ancestors`, root first (an entry without one is skipped, and the chain
/// is then not whole).
fn ancestor_ids(json: &serde_json::Value) -> Vec<PageId> {
    json["ancestors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| id_of(&a["id"]))
        .collect()
}

/// Whether `expand=ancestors` came as a list whose every entry has an id.
fn ancestors_whole(json: &serde_json::Value) -> bool {
    json["ancestors"]
        .as_array()
        .is_some_and(|a| a.iter().all(|x| id_of(&x["id"]).is_some()))
}

/// Where a page sits, without its body; `None` when it is gone.
pub(super) async fn locate(inner: &Inner, id: &PageId) -> Result<Option<Located>, SourceError> {
    let mut url = inner.url(&format!("rest/api/content/{}", encode(id.as_str())))?;
    url.query_pairs_mut()
        .append_pair("expand", "space,ancestors");
    let path = path_of(&url);
    let Some(answer) = inner.get(&url).await? else {
        return Ok(None);
    };
    let space_key = answer.json["space"]["key"]
        .as_str()
        .ok_or_else(|| SourceError::Decode {
            path,
            detail: "the page has no space.key (expand=space)".into(),
        })?
        .to_owned();
    Ok(Some(Located {
        space_key,
        space_id: None,
        ancestors: ancestor_ids(&answer.json),
        whole: ancestors_whole(&answer.json),
    }))
}
