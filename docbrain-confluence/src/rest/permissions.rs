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

use docbrain_core::settings::ApiVersion;
use docbrain_core::{Layer, PageId, Principal, ReadAccess, Reader};
use serde_json::Value;
use tracing::warn;

use super::http::path_of;
use super::v2::{encode, next_url};
use super::Inner;
use crate::SourceError;

/// The most results asked for per permission request.
const LIMIT: usize = 200;
/// A bound on pages of one permission listing (a loop guard, far above any real list).
const MAX_PAGES: usize = 1_000;

/// Why a permission could not be read, for the fail-closed warning.
struct Unreadable(String);

/// The read rule of a page in `space` under `ancestors` (root first).
pub(super) async fn read_access(
    inner: &Inner,
    page: &PageId,
    space_key: &str,
    space_id: Option<&str>,
    ancestors: &[PageId],
) -> Result<ReadAccess, SourceError> {
    let mut layers = Vec::with_capacity(ancestors.len() + 2);
    match space_layer(inner, space_key, space_id).await? {
        Ok(layer) => layers.push(layer),
        Err(why) => return Ok(fail_closed(inner, page, &why)),
    }
    for id in ancestors.iter().chain([page]) {
        match restriction(inner, id).await? {
            Ok(Some(layer)) => layers.push(layer),
            Ok(None) => {}
            Err(why) => return Ok(fail_closed(inner, page, &why)),
        }
    }
    Ok(ReadAccess::of(layers))
}

fn fail_closed(inner: &Inner, page: &PageId, why: &Unreadable) -> ReadAccess {
    // One warning per reason, not one per page.
    if inner.lock_cache().warned.insert(why.0.clone()) {
        warn!(page_id = %page, "{}; such pages are indexed but visible to nobody until their permissions can be read", why.0);
    }
    ReadAccess::nobody()
}

/// The space's view permission as a layer.
async fn space_layer(
    inner: &Inner,
    key: &str,
    id: Option<&str>,
) -> Result<Result<Layer, Unreadable>, SourceError> {
    let mut layer = Layer::new();
    match (inner.version, id) {
        (ApiVersion::V2, Some(id)) => {
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
                for entry in answer.json["results"].as_array().into_iter().flatten() {
                    let op = &entry["operation"];
                    if op["key"] == "read" && op["targetType"] == "space" {
                        layer.extend(principal(&entry["principal"], "id", "id"));
                    }
                }
                if pages < MAX_PAGES {
                    next = next_url(inner, &answer)?;
                }
            }
        }
        (ApiVersion::V2, None) => {
            return Ok(Err(Unreadable(format!(
                "space {key} has no id to read permissions by"
            ))))
        }
        (ApiVersion::V1, _) => {
            let url = inner.url(&format!("rest/api/space/{}/permissions", encode(key)))?;
            let Some(answer) = permission_call(inner, &url, "space permissions").await? else {
                return Ok(Err(Unreadable(
                    "this Confluence Data Center has no space permissions endpoint (GET rest/api/space/{key}/permissions came in 9.1): \
                     upgrade to 9.1 or later, or set SEARCH_PERMISSIONS=off for an index every caller may read"
                        .into(),
                )));
            };
            let entries = match &answer.json {
                Value::Array(a) => a.as_slice(),
                other => other["results"].as_array().map_or(&[][..], Vec::as_slice),
            };
            for entry in entries {
                let op = &entry["operation"];
                if op["operationKey"] == "read" && op["targetType"] == "space" {
                    layer.extend(principal(&entry["subject"], "userKey", "name"));
                }
            }
        }
    }
    Ok(Ok(layer))
}

/// A page's own read restriction as a layer; `None` when it has none.
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
    let r = &answer.json["restrictions"];
    let (user_field, group_field) = match inner.version {
        ApiVersion::V2 => ("accountId", "id"),
        ApiVersion::V1 => ("userKey", "name"),
    };
    let mut layer = Layer::new();
    for user in r["user"]["results"].as_array().into_iter().flatten() {
        if let Some(id) = user[user_field].as_str() {
            layer.insert(Principal::User(id.to_owned()));
        }
    }
    for group in r["group"]["results"].as_array().into_iter().flatten() {
        // Cloud names groups by id; an older answer without one falls back to the name.
        if let Some(id) = group[group_field].as_str().or(group["name"].as_str()) {
            layer.insert(Principal::Group(id.to_owned()));
        }
    }
    // Restriction lists longer than one answer would only narrow who may read: a cut list
    // hides the page from some who may, never shows it to someone who may not.
    Ok(Ok((!layer.is_empty()).then_some(layer)))
}

/// A principal of a space permission: `{"type": "user"|"group"|"anonymous", …}`.
fn principal(p: &Value, user_field: &str, group_field: &str) -> Option<Principal> {
    match p["type"].as_str()? {
        "anonymous" => Some(Principal::Anonymous),
        "user" => Some(Principal::User(p[user_field].as_str()?.to_owned())),
        "group" => Some(Principal::Group(
            p[group_field].as_str().or(p["name"].as_str())?.to_owned(),
        )),
        _ => None,
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
    if inner.lock_cache().warned.insert(message.clone()) {
        warn!("{message}");
    }
}

/// The principals of user `who`: an account id on Cloud, a username on Data Center.
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
                return Err(SourceError::UnknownUser {
                    who: who.to_owned(),
                    hint: "Data Center names users by username: pass the login name".into(),
                });
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
            return Err(SourceError::UnknownUser {
                who: who.to_owned(),
                hint: match inner.version {
                    ApiVersion::V2 => "pass the user's Atlassian account id".into(),
                    ApiVersion::V1 => "pass the user's username".into(),
                },
            });
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
