//! A page's parts: its comments and attachments. A crawl lists a space's parts in bulk (id,
//! version, page) to find the pages whose parts changed; a page's parts are listed when the page
//! is read, and an attachment is downloaded and its text extracted only when the index does not
//! hold its version ([`text`]).
//!
//! Comments are read through REST v1 on both API versions (Cloud serves it under
//! `/wiki/rest/api`, as it does restrictions): v1's child listing returns every comment of a
//! page (footer, inline and replies) in one paged request, where v2's `pages/{id}/footer-comments`
//! and `inline-comments` take two and leave replies out (one more request per thread). CQL
//! search lists a space's comments and attachments in bulk, which v2 cannot. Attachments are
//! listed per page by each version's own endpoint (v2 `pages/{id}/attachments`, v1
//! `content/{id}/child/attachment`) and downloaded from their own download link.

use std::collections::HashMap;

use crate::settings::ApiVersion;
use docbrain_core::{Page, PageId, Part, PartKind, PartText};
use reqwest::Url;
use serde_json::Value;

use super::http::path_of;
use super::v2::encode;
use super::{id_of, Inner};
use crate::extract::{Extractor, FileType};
use crate::{storage_to_markdown, SourceError};

/// The parts of a space's pages as a listing names them: by page, each part's id and version.
pub(super) type Listed = HashMap<PageId, Vec<(PageId, u64)>>;

/// The content types of the parts read (`comment`, `attachment`), for CQL.
fn types(inner: &Inner) -> Vec<&'static str> {
    let mut types = Vec::new();
    if inner.comments {
        types.push("comment");
    }
    if inner.attachments.enabled {
        types.push("attachment");
    }
    types
}

/// Whether any parts are read.
pub(super) fn read_any(inner: &Inner) -> bool {
    !types(inner).is_empty()
}

/// Lists the parts of space `key` through CQL search (`type in (comment, attachment)`),
/// following `next` links to the end.
pub(super) async fn list_space(inner: &Inner, key: &str) -> Result<Listed, SourceError> {
    let mut url = inner.url("rest/api/content/search")?;
    let quoted = key.replace('\\', "\\\\").replace('"', "\\\"");
    url.query_pairs_mut()
        .append_pair(
            "cql",
            &format!(
                "space=\"{quoted}\" and type in ({})",
                types(inner).join(", ")
            ),
        )
        .append_pair("expand", "version,container")
        .append_pair("limit", &inner.page_size.to_string());
    let mut listed = Listed::new();
    walk(inner, url, super::v1::next_url, |path, comments| {
        for comment in comments {
            let (Some(id), Some(page), Some(version)) = (
                id_of(&comment["id"]),
                id_of(&comment["container"]["id"]),
                comment["version"]["number"].as_u64(),
            ) else {
                return Err(SourceError::Decode {
                    path: path.to_owned(),
                    detail: "a listed part has no id, container.id or version.number".into(),
                });
            };
            listed.entry(page).or_default().push((id, version));
        }
        Ok(())
    })
    .await?;
    Ok(listed)
}

/// Reads the parts of `page`: its comments with their bodies, its attachments without.
pub(super) async fn read(inner: &Inner, page: &Page) -> Result<Vec<Part>, SourceError> {
    let mut parts = Vec::new();
    if inner.comments {
        parts.extend(comments(inner, page).await?);
    }
    if inner.attachments.enabled {
        parts.extend(attachments(inner, page).await?);
    }
    Ok(parts)
}

/// Reads the comments of `page` with their bodies (`child/comment`, every depth).
async fn comments(inner: &Inner, page: &Page) -> Result<Vec<Part>, SourceError> {
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
    walk(inner, url, super::v1::next_url, |path, comments| {
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
        body: Some(body),
        media_type: None,
        size: None,
    })
}

/// Lists the attachments of `page` (without their content).
async fn attachments(inner: &Inner, page: &Page) -> Result<Vec<Part>, SourceError> {
    let mut url = match inner.version {
        ApiVersion::V2 => inner.url(&format!(
            "api/v2/pages/{}/attachments",
            encode(page.id.as_str())
        ))?,
        ApiVersion::V1 => {
            let mut url = inner.url(&format!(
                "rest/api/content/{}/child/attachment",
                encode(page.id.as_str())
            ))?;
            url.query_pairs_mut()
                .append_pair("expand", "version,extensions")
                .append_pair("start", "0");
            url
        }
    };
    url.query_pairs_mut()
        .append_pair("limit", &inner.page_size.to_string());
    let next_url: NextUrl = match inner.version {
        ApiVersion::V2 => super::v2::next_url,
        ApiVersion::V1 => super::v1::next_url,
    };
    let mut parts = Vec::new();
    walk(inner, url, next_url, |path, listed| {
        for file in listed {
            parts.push(attachment(inner, file).ok_or_else(|| SourceError::Decode {
                path: path.to_owned(),
                detail: "an attachment has no id, title, version.number or download link".into(),
            })?);
        }
        Ok(())
    })
    .await?;
    Ok(parts)
}

/// An attachment as a part: its file name as the title, its download link as the link.
fn attachment(inner: &Inner, file: &Value) -> Option<Part> {
    let download = file["downloadLink"]
        .as_str()
        .or_else(|| file["_links"]["download"].as_str())?;
    let url = inner.url(download.trim_start_matches('/')).ok()?;
    Some(Part {
        id: id_of(&file["id"])?,
        kind: PartKind::Attachment,
        title: file["title"].as_str()?.to_owned(),
        version: file["version"]["number"].as_u64()?,
        url: Some(url.to_string()),
        body: None,
        media_type: file["mediaType"]
            .as_str()
            .or_else(|| file["extensions"]["mediaType"].as_str())
            .map(str::to_owned),
        size: file["fileSize"]
            .as_u64()
            .or_else(|| file["extensions"]["fileSize"].as_u64()),
    })
}

/// Downloads attachment `part` and extracts its text in `extractor`'s child process, within
/// the `ATTACHMENT_*` limits: a file too large or of a type without text is skipped.
pub(super) async fn text(
    inner: &Inner,
    extractor: &Extractor,
    part: &Part,
) -> Result<PartText, SourceError> {
    let limits = &inner.attachments;
    let failed = |detail: String| SourceError::Attachment {
        name: part.title.clone(),
        detail,
    };
    if part.size.is_some_and(|size| size > limits.max_bytes) {
        return Ok(PartText::Skipped(format!(
            "larger than ATTACHMENT_MAX_BYTES ({} bytes)",
            limits.max_bytes
        )));
    }
    let kind = match FileType::of(part.media_type.as_deref(), &part.title) {
        Ok(kind) => kind,
        Err(skip) => return Ok(PartText::Skipped(skip.0)),
    };
    let url = part
        .url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .filter(|u| inner.on_site(u))
        .ok_or_else(|| failed("its download link is not on CONFLUENCE_BASE_URL".into()))?;
    let cap = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
    let bytes = inner
        .http
        .download(&url, cap)
        .await?
        .ok_or_else(|| failed("the download answered 404".into()))?;
    let text = extractor
        .extract(kind, &bytes, limits.max_chars)
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(PartText::Text(text))
}

/// How a listing names its next answer: v1's `_links.next`, or v2's (or its `Link` header).
type NextUrl = fn(&Inner, &super::http::Answer) -> Result<Option<Url>, SourceError>;

/// Hands each answer's `results` of a listing, from `first` through its `next` links (read by
/// `next_url`), to `each` with the answer's path.
async fn walk(
    inner: &Inner,
    first: Url,
    next_url: NextUrl,
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
        next = next_url(inner, &answer)?;
    }
    Ok(())
}
