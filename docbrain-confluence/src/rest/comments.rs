//! Comments: a crawl lists a space's comments in bulk (id, version, page) to find the pages
//! whose comments changed; a page's comments are read with their bodies when the page is.
//!
//! Both API versions read them through REST v1, which Cloud serves under `/wiki/rest/api` as it
//! does restrictions: v1's child listing returns every comment of a page (footer, inline and
//! replies) in one paged request, where v2's `pages/{id}/footer-comments` and
//! `inline-comments` take two and leave replies out (one more request per thread); and CQL
//! search lists a space's comments in bulk, which v2 cannot.

use std::collections::HashMap;

use docbrain_core::{Page, PageId, Part, PartKind};
use reqwest::Url;
use serde_json::Value;

use super::http::path_of;
use super::v2::encode;
use super::{id_of, Inner};
use crate::{storage_to_markdown, SourceError};

/// The comments of a space's pages as a listing names them: by page, each comment's id and
/// version.
pub(super) type Listed = HashMap<PageId, Vec<(PageId, u64)>>;

/// Lists the comments of space `key` through CQL search (`type=comment`), following `next`
/// links to the end.
pub(super) async fn list_space(inner: &Inner, key: &str) -> Result<Listed, SourceError> {
    let mut url = inner.url("rest/api/content/search")?;
    let quoted = key.replace('\\', "\\\\").replace('"', "\\\"");
    url.query_pairs_mut()
        .append_pair("cql", &format!("space=\"{quoted}\" and type=comment"))
        .append_pair("expand", "version,container")
        .append_pair("limit", &inner.page_size.to_string());
    let mut listed = Listed::new();
    walk(inner, url, |path, comments| {
        for comment in comments {
            let (Some(id), Some(page), Some(version)) = (
                id_of(&comment["id"]),
                id_of(&comment["container"]["id"]),
                comment["version"]["number"].as_u64(),
            ) else {
                return Err(SourceError::Decode {
                    path: path.to_owned(),
                    detail: "a listed comment has no id, container.id or version.number".into(),
                });
            };
            listed.entry(page).or_default().push((id, version));
        }
        Ok(())
    })
    .await?;
    Ok(listed)
}

/// Reads the comments of `page` with their bodies (`child/comment`, every depth).
pub(super) async fn read(inner: &Inner, page: &Page) -> Result<Vec<Part>, SourceError> {
    let mut url = inner.url(&format!(
        "rest/api/content/{}/child/comment",
        encode(page.id.as_str())
    ))?;
    url.query_pairs_mut()
        .append_pair(
            "expand",
            "body.storage,version,history,extensions.inlineProperties",
        )
        .append_pair("depth", "all")
        .append_pair("start", "0")
        .append_pair("limit", &inner.page_size.to_string());
    let mut parts = Vec::new();
    walk(inner, url, |path, comments| {
        for comment in comments {
            parts.push(part_of(page, comment).ok_or_else(|| SourceError::Decode {
                path: path.to_owned(),
                detail: "a comment has no id, version.number or body.storage.value".into(),
            })?);
        }
        Ok(())
    })
    .await?;
    Ok(parts)
}

/// A comment as a part of `page`: titled by its author, its inline anchor quoted above it,
/// linked to the page focused on it.
fn part_of(page: &Page, comment: &Value) -> Option<Part> {
    let id = id_of(&comment["id"])?;
    let version = comment["version"]["number"].as_u64()?;
    let storage = comment["body"]["storage"]["value"].as_str()?;
    let author = ["displayName", "publicName", "username"]
        .iter()
        .find_map(|k| comment["history"]["createdBy"][*k].as_str())
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let mut body = String::new();
    if let Some(anchor) = comment["extensions"]["inlineProperties"]["originalSelection"]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        body.push_str("> ");
        body.push_str(anchor);
        body.push_str("\n\n");
    }
    body.push_str(&storage_to_markdown(storage));
    let url = page.url.as_ref().map(|u| {
        let joint = if u.contains('?') { '&' } else { '?' };
        format!("{u}{joint}focusedCommentId={id}")
    });
    Some(Part {
        title: author.map_or_else(|| "Comment".to_owned(), |a| format!("Comment by {a}")),
        id,
        kind: PartKind::Comment,
        version,
        url,
        body,
    })
}

/// Hands each answer's `results` of a v1 listing, from `first` through its `next` links, to
/// `each` with the answer's path.
async fn walk(
    inner: &Inner,
    first: Url,
    mut each: impl FnMut(&str, &[Value]) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    let mut seen = std::collections::HashSet::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        let path = path_of(&url);
        super::check_next(inner, &url, &mut seen)?;
        let answer = inner
            .get_found(&url, || SourceError::Http {
                status: 404,
                path: path.clone(),
                detail:
                    "the comment listing is missing: is CONFLUENCE_BASE_URL the site's address?"
                        .into(),
            })
            .await?;
        let results = answer.json["results"]
            .as_array()
            .ok_or_else(|| SourceError::Decode {
                path: path.clone(),
                detail: "no `results` array".into(),
            })?;
        each(&path, results)?;
        next = super::v1::next_url(inner, &answer)?;
    }
    Ok(())
}
