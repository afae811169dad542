//! Confluence Cloud REST v2: spaces by key, cursor-paginated page listings, one page with its
//! storage body, labels and ancestors.

use docbrain_core::{Fetched, Page, PageId, PageStatus, ReadAccess};
use reqwest::Url;

use super::http::{path_of, Answer};
use super::{id_of, labels_of, status_of, walk_listing, Chain, Inner, Listed, Located, SpaceRef};
use crate::storage_format::page_body;
use crate::SourceError;

/// The next page of a listing: `_links.next` or the `Link` header, relative to the site.
pub(super) fn next_url(inner: &Inner, answer: &Answer) -> Result<Option<Url>, SourceError> {
    let next = answer.json["_links"]["next"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| answer.link_next.clone());
    // v2 links start at the site root (`/wiki/api/v2/...`): resolve them under whatever comes
    // before the base's `/wiki` (nothing on a site, `/ex/confluence/{cloudId}` through
    // Atlassian's API gateway for scoped tokens), on the base's host.
    next.map(|n| {
        match (
            n.strip_prefix("/wiki/"),
            inner.base.path().strip_suffix("wiki/"),
        ) {
            (Some(rest), Some(root)) => {
                let mut url = inner.base.clone();
                url.set_path(&format!(
                    "{root}wiki/{}",
                    rest.split('?').next().unwrap_or_default()
                ));
                url.set_query(n.split_once('?').map(|(_, q)| q));
                Ok(url)
            }
            _ => inner.url(&n),
        }
    })
    .transpose()
}

/// Resolves space keys to ids (all current spaces when `keys` is empty).
pub(super) async fn resolve_spaces(
    inner: &Inner,
    keys: &[String],
) -> Result<Vec<SpaceRef>, SourceError> {
    let mut found = Vec::new();
    let mut batches: Vec<String> = keys.chunks(100).map(|c| c.join(",")).collect();
    if keys.is_empty() {
        batches.push(String::new());
    }
    for batch in batches {
        let mut url = inner.url("api/v2/spaces")?;
        url.query_pairs_mut().append_pair("limit", "250");
        if batch.is_empty() {
            url.query_pairs_mut().append_pair("status", "current");
        } else {
            url.query_pairs_mut().append_pair("keys", &batch);
        }
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let answer = inner
                .get_found(&url, || SourceError::Http {
                    status: 404,
                    path: path_of(&url),
                    detail: "the spaces endpoint is missing: is CONFLUENCE_BASE_URL the site's /wiki address?".into(),
                })
                .await?;
            for space in answer.json["results"].as_array().into_iter().flatten() {
                let (Some(key), Some(id)) = (space["key"].as_str(), id_of(&space["id"])) else {
                    continue;
                };
                found.push(SpaceRef {
                    key: key.to_owned(),
                    id: Some(id.as_str().to_owned()),
                });
            }
            next = next_url(inner, &answer)?;
        }
    }
    super::check_missing(keys, &found)?;
    let mut cache = inner.lock_cache();
    for s in &found {
        if let Some(id) = &s.id {
            cache.space_keys.insert(id.clone(), s.key.clone());
        }
    }
    Ok(found)
}

/// Lists one space's current pages with their versions.
pub(super) async fn list_space(
    inner: &Inner,
    space: &SpaceRef,
) -> Result<Vec<Listed>, SourceError> {
    let id = space.id.as_deref().unwrap_or_default();
    let mut url = inner.url(&format!("api/v2/spaces/{id}/pages"))?;
    url.query_pairs_mut()
        .append_pair("limit", &inner.page_size.to_string())
        .append_pair("status", "current");
    walk_listing(inner, url, space, next_url).await
}

/// A space's pages as v2 listed them, with what v1's content listing (which Cloud still serves)
/// says of each rule: its own read restriction and its ancestors, `limit` 100 at a time. v2
/// lists neither; v1's ancestors may leave folders out, so a page is given its listed rule only
/// when v1's chain ends at v2's `parentId` and every page on it sits under a page (none under a
/// folder, whose restriction only the page's own reads see). The rest are read on their own.
pub(super) async fn with_restrictions(
    inner: &Inner,
    space: &SpaceRef,
    listed: &[Listed],
) -> Result<Vec<Listed>, SourceError> {
    let v1 = match super::v1::content_listing(inner, space, 100, super::v1::RULE_EXPANSIONS).await {
        Ok(v1) => v1,
        // No v1 content listing on this site (missing, refused to this token, retired): every
        // unchanged page's rule is read on its own.
        Err(
            e @ (SourceError::SpaceNotFound { .. }
            | SourceError::Decode { .. }
            | SourceError::Unauthorized { .. }
            | SourceError::Http { .. }),
        ) => {
            let message = format!("Confluence's v1 content listing is not available ({e}): a crawl reads each unchanged page's permissions on its own");
            inner.warn_once(&message);
            return Ok(listed
                .iter()
                .map(|(page, _)| (page.clone(), super::ListedRule::default()))
                .collect());
        }
        Err(e) => return Err(e),
    };
    let rules: std::collections::HashMap<&PageId, &super::ListedRule> =
        v1.iter().map(|(page, rule)| (&page.id, rule)).collect();
    // v2's parent of each listed page: a page's parent must be a page, or none at the top.
    let parents: std::collections::HashMap<&PageId, Option<&PageId>> = listed
        .iter()
        .filter_map(|(page, rule)| match &rule.parent {
            Some((None, _)) => Some((&page.id, None)),
            Some((Some(parent), Some(kind))) if kind == "page" => Some((&page.id, Some(parent))),
            _ => None,
        })
        .collect();
    // v1's chain must be v2's, link by link: it starts at the top of the space, each page's
    // parent is the one before it, and the page's parent is its last.
    let same_chain = |id: &PageId, chain: &[PageId]| {
        let mut above: Option<&PageId> = None;
        chain.iter().chain([id]).all(|at| {
            let linked = parents.get(at).is_some_and(|parent| *parent == above);
            above = Some(at);
            linked
        })
    };
    Ok(listed
        .iter()
        .map(|(page, rule)| {
            let whole = rules.get(&page.id).filter(|v1| {
                v1.ancestors
                    .as_ref()
                    .is_some_and(|chain| same_chain(&page.id, chain))
            });
            let rule = match whole {
                Some(v1) => super::ListedRule {
                    own: v1.own.clone(),
                    ancestors: v1.ancestors.clone(),
                    parent: rule.parent.clone(),
                },
                None => super::ListedRule::default(),
            };
            (page.clone(), rule)
        })
        .collect())
}

/// Fetches one page with its body, labels, ancestors and link (its rule not yet read), and
/// whether its chain of ancestors was read to the top. `listed`, the chain a listing gave, is
/// taken without asking for the ancestors when the page's `parentId` is still its last link.
pub(super) async fn fetch(
    inner: &Inner,
    id: &PageId,
    listed: Option<&[PageId]>,
) -> Result<(Fetched, bool), SourceError> {
    let mut url = inner.url(&format!("api/v2/pages/{}", encode(id.as_str())))?;
    url.query_pairs_mut()
        .append_pair("body-format", "storage")
        .append_pair("include-labels", "true");
    let path = path_of(&url);
    let Some(answer) = inner.get(&url).await? else {
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
        .ok_or_else(|| decode("the page has no version.number"))?;
    let storage = json["body"]["storage"]["value"].as_str();
    if status == PageStatus::Current && storage.is_none() {
        return Err(decode("the page has no body.storage.value"));
    }
    let space_id = id_of(&json["spaceId"]).ok_or_else(|| decode("the page has no spaceId"))?;
    let space_key = space_key(inner, space_id.as_str()).await?;
    let chain = match listed {
        _ if status != PageStatus::Current => Chain::top(),
        Some(ids) if parent_is(json, ids.last()) => listed_chain(inner, ids).await?,
        _ => chain_of(inner, id, json).await?,
    };
    let base = json["_links"]["base"].as_str().map_or_else(
        || inner.base.as_str().trim_end_matches('/').to_owned(),
        str::to_owned,
    );
    let url = json["_links"]["webui"]
        .as_str()
        .map(|w| format!("{base}{w}"));
    Ok(Fetched::Page(Page {
        id: id.clone(),
        space_key,
        title,
        version,
        status,
        url,
        ancestors: chain.titles,
        labels: labels_of(&json["labels"]),
        body: page_body(storage).await,
        ancestor_ids: chain.ids,
        access: ReadAccess::nobody(),
        parts: Vec::new(),
    }))
    .map(|fetched| (fetched, chain.whole))
}

/// Where a page sits, without its body: its space key and id, and its ancestors' ids (root
/// first); `None` when it is gone.
pub(super) async fn locate(inner: &Inner, id: &PageId) -> Result<Option<Located>, SourceError> {
    let url = inner.url(&format!("api/v2/pages/{}", encode(id.as_str())))?;
    let path = path_of(&url);
    let Some(answer) = inner.get(&url).await? else {
        return Ok(None);
    };
    let space_id = id_of(&answer.json["spaceId"]).ok_or_else(|| SourceError::Decode {
        path,
        detail: "the page has no spaceId".into(),
    })?;
    let space_key = space_key(inner, space_id.as_str()).await?;
    let chain = chain_of(inner, id, &answer.json).await?;
    Ok(Some(Located {
        space_key,
        space_id: Some(space_id.as_str().to_owned()),
        ancestors: chain.ids,
        whole: chain.whole,
    }))
}

/// The key of a space id, from the cache or `GET /spaces/{id}`.
async fn space_key(inner: &Inner, space_id: &str) -> Result<String, SourceError> {
    if let Some(key) = inner.lock_cache().space_keys.get(space_id) {
        return Ok(key.clone());
    }
    let url = inner.url(&format!("api/v2/spaces/{}", encode(space_id)))?;
    let path = path_of(&url);
    let answer = inner
        .get_found(&url, || SourceError::Decode {
            path: path.clone(),
            detail: format!("the page's space {space_id} is not visible"),
        })
        .await?;
    let key = answer.json["key"]
        .as_str()
        .ok_or_else(|| SourceError::Decode {
            path: path.clone(),
            detail: "the space has no key".into(),
        })?
        .to_owned();
    inner
        .lock_cache()
        .space_keys
        .insert(space_id.to_owned(), key.clone());
    Ok(key)
}

/// Whether the page answer `json` names `parent` as its parent (`null` for none).
fn parent_is(json: &serde_json::Value, parent: Option<&PageId>) -> bool {
    match json.get("parentId") {
        Some(serde_json::Value::Null) => parent.is_none(),
        Some(id) => parent.is_some() && id_of(id).as_ref() == parent,
        None => false,
    }
}

/// A chain of pages a listing gave, with their titles (from the listing's cache).
async fn listed_chain(inner: &Inner, ids: &[PageId]) -> Result<Chain, SourceError> {
    let mut titles = Vec::with_capacity(ids.len());
    for aid in ids {
        titles.extend(title_of(inner, aid, "pages").await?);
    }
    Ok(Chain {
        ids: ids.to_vec(),
        titles,
        whole: true,
    })
}

/// The chain above a page as its answer `json` places it: none when its `parentId` is null;
/// unknown (not whole) when the field is missing or the chain read does not end at that parent.
async fn chain_of(
    inner: &Inner,
    id: &PageId,
    json: &serde_json::Value,
) -> Result<Chain, SourceError> {
    let parent = match json.get("parentId") {
        None => {
            return Ok(Chain {
                whole: false,
                ..Chain::top()
            })
        }
        Some(serde_json::Value::Null) => return Ok(Chain::top()),
        Some(parent) => id_of(parent),
    };
    let mut chain = ancestors(inner, id).await?;
    if parent.is_none() || chain.ids.last() != parent.as_ref() {
        chain.whole = false;
    }
    Ok(chain)
}

/// How many times the ancestors of one page are asked for (each call returns up to
/// `page_size` of them): a loop guard far above any real tree.
const MAX_ANCESTOR_CALLS: usize = 100;

/// The v2 path segment of a content type that can be an ancestor; `None` for a type this
/// client does not know.
fn collection(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "page" => "pages",
        "folder" => "folders",
        "whiteboard" => "whiteboards",
        "database" => "databases",
        "embed" => "embeds",
        _ => return None,
    })
}

/// A page's ancestors of every content type (pages, folders, whiteboards, databases, embeds),
/// root first, with the titles of those that have one. Cloud returns the `limit` closest
/// ancestors; when a call returns as many as asked, the chain goes on above the topmost one,
/// which is asked for in turn until the top is reached. A chain that cannot be read to the top
/// (a 404, an answer of the wrong shape, a type not known) is [`Chain::whole`] `false`.
async fn ancestors(inner: &Inner, id: &PageId) -> Result<Chain, SourceError> {
    let limit = inner.page_size as usize;
    let mut chain: Vec<(PageId, &'static str)> = Vec::new();
    let mut at = (id.clone(), "pages");
    let mut whole = false;
    for _ in 0..MAX_ANCESTOR_CALLS {
        let mut url = inner.url(&format!(
            "api/v2/{}/{}/ancestors",
            at.1,
            encode(at.0.as_str())
        ))?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        let Some(answer) = inner.get(&url).await? else {
            break;
        };
        let Some(results) = answer.json["results"].as_array() else {
            break;
        };
        let mut above = Vec::with_capacity(results.len());
        for entry in results {
            let kind = entry["type"].as_str().unwrap_or("page");
            match (id_of(&entry["id"]), collection(kind)) {
                (Some(aid), Some(kind)) => above.push((aid, kind)),
                _ => {
                    above.clear();
                    break;
                }
            }
        }
        if above.len() != results.len() {
            break;
        }
        let top = above.first().cloned();
        chain.splice(0..0, above);
        match top {
            Some(top) if results.len() >= limit => at = top,
            _ => {
                whole = true;
                break;
            }
        }
    }
    let mut titles = Vec::with_capacity(chain.len());
    for (aid, kind) in &chain {
        if let Some(title) = title_of(inner, aid, kind).await? {
            titles.push(title);
        }
    }
    Ok(Chain {
        ids: chain.into_iter().map(|(aid, _)| aid).collect(),
        titles,
        whole,
    })
}

/// The title of content `id` in `collection` (for breadcrumbs), from the listing's cache or
/// `GET /{collection}/{id}`; `None` when it cannot be read.
async fn title_of(
    inner: &Inner,
    id: &PageId,
    collection: &str,
) -> Result<Option<String>, SourceError> {
    if let Some(title) = inner.lock_cache().titles.get(id).cloned() {
        return Ok(Some(title));
    }
    let url = inner.url(&format!("api/v2/{collection}/{}", encode(id.as_str())))?;
    let Some(answer) = inner.get(&url).await? else {
        return Ok(None);
    };
    let Some(title) = answer.json["title"].as_str().map(str::to_owned) else {
        return Ok(None);
    };
    inner.lock_cache().titles.insert(id.clone(), title.clone());
    Ok(Some(title))
}

/// Percent-encodes an id or key for a path segment (ids are digits, but nothing is assumed).
pub(super) fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
