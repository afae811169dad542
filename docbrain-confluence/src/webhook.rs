//! Confluence webhook deliveries: the `X-Hub-Signature` check and the few fields a receiver needs.
//!
//! Data Center signs each delivery with `X-Hub-Signature: sha256=<hex>` (HMAC-SHA256 of the raw
//! body) and names the event in the body (`"event": "page_updated"`), by default with an id-only
//! `"page": {"id": 123}`. Cloud bodies carry no event name at all: the name comes from an
//! `X-Event-Key` header or an `event` query parameter when the receiver registered one URL per
//! event, and otherwise a body with a `page` object means "this page changed". Page ids arrive as
//! numbers or strings. Payloads never carry page bodies: receivers re-fetch the page.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use docbrain_core::PageId;

type HmacSha256 = Hmac<Sha256>;

/// Returns the `X-Hub-Signature` value for `body`: `sha256=` and the lowercase hex HMAC-SHA256.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac_of(secret);
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hmac_of(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"))
}

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature` header.
    #[error("the X-Hub-Signature header is missing")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("the X-Hub-Signature header is not `sha256=<64 hex digits>`")]
    Malformed,
    /// The signature does not match the body under the configured secret.
    #[error("the X-Hub-Signature does not match the body")]
    Mismatch,
    /// No secret is configured, so nothing can be verified.
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Checks `header` (the `X-Hub-Signature` value) against the raw `body` in constant time.
///
/// Hex digits are accepted in either case; the `sha256=` prefix is required.
///
/// # Errors
/// [`SignatureError`] saying what is wrong with the header.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    let mut mac = hmac_of(secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Compares two secrets in constant time (for a URL `token` parameter).
pub fn secrets_match(expected: &[u8], given: &[u8]) -> bool {
    // Comparing HMACs keyed by the expected secret takes the same time whatever `given` is.
    let mut mac = hmac_of(expected);
    mac.update(given);
    let mut reference = hmac_of(expected);
    reference.update(expected);
    mac.verify_slice(&reference.finalize().into_bytes()).is_ok()
}

/// The page events a receiver acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageEvent {
    /// `page_created`.
    Created,
    /// `page_updated`.
    Updated,
    /// `page_restored` (out of the trash).
    Restored,
    /// `page_removed` (purged).
    Removed,
    /// `page_trashed`.
    Trashed,
    /// A Cloud body with no event name: the page changed in some way.
    Changed,
    /// `content_permissions_updated` (Data Center): the page's restrictions changed, which
    /// reaches its descendants too.
    PermissionsUpdated,
    /// `page_moved`: the page has new ancestors, and so have its descendants.
    Moved,
    /// `space_permissions_updated`: every page of the space.
    SpacePermissionsUpdated,
    /// `comment_created`: the page the comment is on (or, when the body names only the
    /// comment, the comment, whose page a reconcile finds).
    CommentCreated,
    /// `comment_updated`: as [`PageEvent::CommentCreated`].
    CommentUpdated,
    /// `comment_removed`: as [`PageEvent::CommentCreated`].
    CommentRemoved,
    /// A Cloud body with a `comment` and no event name: a comment of the page changed.
    CommentChanged,
    /// `attachment_created`: the page the file is attached to (Data Center's `attachedTo`),
    /// else the attachment, whose page a reconcile finds.
    AttachmentCreated,
    /// `attachment_updated` (a new version): as [`PageEvent::AttachmentCreated`].
    AttachmentUpdated,
    /// `attachment_removed` (to the trash): as [`PageEvent::AttachmentCreated`].
    AttachmentRemoved,
    /// `attachment_trashed` (purged from the trash): as [`PageEvent::AttachmentCreated`].
    AttachmentTrashed,
    /// `attachment_restored`: as [`PageEvent::AttachmentCreated`].
    AttachmentRestored,
}

impl PageEvent {
    /// Returns the event's name as Confluence spells it (`page_changed` for a nameless body).
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "page_created",
            Self::Updated => "page_updated",
            Self::Restored => "page_restored",
            Self::Removed => "page_removed",
            Self::Trashed => "page_trashed",
            Self::Changed => "page_changed",
            Self::PermissionsUpdated => "content_permissions_updated",
            Self::Moved => "page_moved",
            Self::SpacePermissionsUpdated => "space_permissions_updated",
            Self::CommentCreated => "comment_created",
            Self::CommentUpdated => "comment_updated",
            Self::CommentRemoved => "comment_removed",
            Self::CommentChanged => "comment_changed",
            Self::AttachmentCreated => "attachment_created",
            Self::AttachmentUpdated => "attachment_updated",
            Self::AttachmentRemoved => "attachment_removed",
            Self::AttachmentTrashed => "attachment_trashed",
            Self::AttachmentRestored => "attachment_restored",
        }
    }

    /// Whether the event reaches the page's descendants too (their ancestors' restrictions
    /// or breadcrumb changed).
    pub fn reaches_descendants(self) -> bool {
        matches!(self, Self::PermissionsUpdated | Self::Moved)
    }

    /// Whether the event is about a part of a page, a comment or an attachment (its page is
    /// reconciled, never removed for it).
    pub fn is_part(self) -> bool {
        matches!(
            self,
            Self::CommentCreated
                | Self::CommentUpdated
                | Self::CommentRemoved
                | Self::CommentChanged
                | Self::AttachmentCreated
                | Self::AttachmentUpdated
                | Self::AttachmentRemoved
                | Self::AttachmentTrashed
                | Self::AttachmentRestored
        )
    }

    /// Returns the event named `name`, if it is one of the page events acted on: Data Center's
    /// names, and the Forge relay's (`avi:confluence:<verb>:page`; an archived or unarchived
    /// page is re-fetched, and its state decides).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "avi:confluence:created:page" => Self::Created,
            "avi:confluence:updated:page" => Self::Updated,
            "avi:confluence:restored:page" => Self::Restored,
            "avi:confluence:deleted:page" => Self::Removed,
            "avi:confluence:trashed:page" => Self::Trashed,
            "avi:confluence:moved:page" => Self::Moved,
            "avi:confluence:permissions_updated:page" => Self::PermissionsUpdated,
            "avi:confluence:archived:page" | "avi:confluence:unarchived:page" => Self::Changed,
            "page_created" => Self::Created,
            "page_updated" => Self::Updated,
            "page_restored" => Self::Restored,
            "page_removed" => Self::Removed,
            "page_trashed" => Self::Trashed,
            "content_permissions_updated" => Self::PermissionsUpdated,
            "page_moved" => Self::Moved,
            "space_permissions_updated" => Self::SpacePermissionsUpdated,
            "comment_created" | "avi:confluence:created:comment" => Self::CommentCreated,
            "comment_updated" | "avi:confluence:updated:comment" => Self::CommentUpdated,
            "comment_removed" | "avi:confluence:deleted:comment" => Self::CommentRemoved,
            "attachment_created" | "avi:confluence:created:attachment" => Self::AttachmentCreated,
            "attachment_updated" | "avi:confluence:updated:attachment" => Self::AttachmentUpdated,
            "attachment_removed" | "avi:confluence:trashed:attachment" => Self::AttachmentRemoved,
            "attachment_trashed" | "avi:confluence:deleted:attachment" => Self::AttachmentTrashed,
            "attachment_restored" | "avi:confluence:restored:attachment" => {
                Self::AttachmentRestored
            }
            _ => return None,
        })
    }
}

/// The page a delivery names, with whatever summary fields the body carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRef {
    /// The page id.
    pub id: PageId,
    /// The title (Cloud, or Data Center with full payloads).
    pub title: Option<String>,
    /// The space key (same).
    pub space_key: Option<String>,
    /// The page version the event is about (same); used to wait out replication lag.
    pub version: Option<u64>,
}

/// What a delivery asks of the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A page event: reconcile the page.
    Page {
        /// The event.
        event: PageEvent,
        /// The page.
        page: PageRef,
    },
    /// A space's permissions changed: reconcile every indexed page of the space.
    Space {
        /// The event.
        event: PageEvent,
        /// The space key.
        space_key: String,
    },
    /// Any other event (blogs, pings, unknown names, unknown JSON): acknowledge and ignore.
    Ignored {
        /// The event name, or a description of the body when it has none.
        event: String,
    },
}

/// Why a delivery's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON.
    #[error("the webhook body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A page event whose `page` has no usable id.
    #[error("the {event} webhook body has no usable page id")]
    NoPageId {
        /// The event name.
        event: String,
    },
    /// A space event whose `space` has no key.
    #[error("the {event} webhook body has no space key")]
    NoSpaceKey {
        /// The event name.
        event: String,
    },
}

/// Reads a delivery.
///
/// The event name is taken from the body's `event` field (or `eventType`, the Forge relay's),
/// else `header_event` (an `X-Event-Key` header), else `query_event` (an `event` query
/// parameter); with none of them, a body with a `page` object is [`PageEvent::Changed`] and
/// anything else is ignored.
///
/// # Errors
/// [`PayloadError`] when the body is not JSON, or a page event names no page id.
pub fn parse(
    body: &[u8],
    header_event: Option<&str>,
    query_event: Option<&str>,
) -> Result<Delivery, PayloadError> {
    let value: Value = serde_json::from_slice(body).map_err(PayloadError::NotJson)?;
    let named = value
        .get("event")
        .or_else(|| value.get("eventType"))
        .and_then(Value::as_str)
        .or(header_event)
        .or(query_event)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    // Data Center names the page of a permission event under `content` (or `page`).
    let page = value
        .get("page")
        .filter(|p| p.is_object())
        .or_else(|| named.and(value.get("content")).filter(|p| p.is_object()));
    if named.and_then(PageEvent::from_name) == Some(PageEvent::SpacePermissionsUpdated) {
        let event = PageEvent::SpacePermissionsUpdated;
        let key = value["space"]["key"]
            .as_str()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| PayloadError::NoSpaceKey {
                event: event.name().into(),
            })?;
        return Ok(Delivery::Space {
            event,
            space_key: key.to_owned(),
        });
    }
    let part_event = match named {
        Some(name) => PageEvent::from_name(name).filter(|e| e.is_part()),
        None if page.is_none() && value.get("comment").is_some_and(Value::is_object) => {
            Some(PageEvent::CommentChanged)
        }
        None => None,
    };
    if let Some(event) = part_event {
        return part_delivery(event, &value);
    }
    let event = match (named, page) {
        (Some(name), _) => match PageEvent::from_name(name) {
            Some(event) => event,
            None => {
                return Ok(Delivery::Ignored {
                    event: name.to_owned(),
                })
            }
        },
        (None, Some(_)) => PageEvent::Changed,
        (None, None) => {
            let what = if value.get("comment").is_some() {
                "comment event (no event name)"
            } else if value.is_object() {
                "unnamed event without a page"
            } else {
                "JSON that is not an object"
            };
            return Ok(Delivery::Ignored { event: what.into() });
        }
    };
    let no_id = || PayloadError::NoPageId {
        event: event.name().into(),
    };
    let page = page.ok_or_else(no_id)?;
    let fields: PageFields = serde_json::from_value(page.clone()).map_err(|_| no_id())?;
    let id = fields.id_as_string.or(fields.id).ok_or_else(no_id)?;
    Ok(Delivery::Page {
        event,
        page: PageRef {
            id,
            title: fields.title,
            space_key: fields.space_key,
            version: fields.version,
        },
    })
}

/// A comment or attachment event: the page the part belongs to when the body names it (Cloud's
/// `comment.parent`, Data Center's `attachedTo`, the Forge relay's `content.container`), else
/// the part itself (Data Center's id-only comment body), whose page a reconcile finds.
fn part_delivery(event: PageEvent, value: &Value) -> Result<Delivery, PayloadError> {
    let no_id = || PayloadError::NoPageId {
        event: event.name().into(),
    };
    let part = ["comment", "attachment", "content"]
        .iter()
        .filter_map(|k| value.get(*k).filter(|c| c.is_object()))
        .chain(value["attachments"].as_array().and_then(|a| a.first()))
        .next();
    let fields = |v: &Value| {
        serde_json::from_value::<PageFields>(v.clone())
            .ok()
            .and_then(|f| f.id_as_string.clone().or(f.id.clone()).map(|id| (id, f)))
    };
    let page = part
        .into_iter()
        .flat_map(|p| ["parent", "container"].map(|k| p.get(k)))
        .chain([value.get("attachedTo")])
        .flatten()
        .filter(|p| p.is_object())
        .find_map(fields);
    let page = match page {
        Some((id, f)) => PageRef {
            id,
            title: f.title,
            space_key: f.space_key,
            version: f.version,
        },
        None => {
            let (id, _) = part.and_then(fields).ok_or_else(no_id)?;
            PageRef {
                id,
                title: None,
                space_key: None,
                version: None,
            }
        }
    };
    Ok(Delivery::Page { event, page })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageFields {
    #[serde(default, deserialize_with = "lenient_id")]
    id: Option<PageId>,
    #[serde(default, deserialize_with = "lenient_id")]
    id_as_string: Option<PageId>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    space_key: Option<String>,
    #[serde(default, deserialize_with = "lenient_version")]
    version: Option<u64>,
}

/// An id that is unusable (empty, negative, an object) reads as absent rather than failing the body.
fn lenient_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PageId>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value::<PageId>(v).ok())
}

/// Cloud sends `"version": 2`; some bodies nest it as `{"number": 2}`.
fn lenient_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(v.as_u64()
        .or_else(|| v.get("number").and_then(Value::as_u64)))
}

/// The shape of a webhook body, as the simulator sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// Data Center's default: `event` in the body and an id-only `page`.
    DataCenter,
    /// Data Center with `confluence.webhooks.id.only.disabled=true`: summary fields too.
    DataCenterFull,
    /// Cloud: no event name; `page` with `id` (a number), `idAsString`, `spaceKey`, `title`,
    /// `version`, `self`, …; `updateTrigger` on updates.
    Cloud,
    /// Cloud as captured in 2026: the same with `id` as a string.
    CloudStringId,
}

/// Writes a webhook body for `event` about `page` in the given shape.
///
/// `page.id` must be numeric for the shapes that send numbers; other ids are sent as strings.
pub fn body(event: PageEvent, page: &PageRef, shape: BodyShape, timestamp_ms: u64) -> String {
    use serde_json::json;
    let numeric_id = |id: &PageId| {
        id.as_str()
            .parse::<u64>()
            .map_or_else(|_| json!(id.as_str()), |n| json!(n))
    };
    let title = page.title.clone().unwrap_or_default();
    let space = page.space_key.clone().unwrap_or_default();
    let version = page.version.unwrap_or(1);
    let mut out = match shape {
        BodyShape::DataCenter => json!({
            "timestamp": timestamp_ms,
            "event": event.name(),
            "userKey": "2c9280839e460b0f019e460ba6440000",
            "page": { "id": numeric_id(&page.id) },
        }),
        BodyShape::DataCenterFull => json!({
            "timestamp": timestamp_ms,
            "event": event.name(),
            "userKey": "2c9280839e460b0f019e460ba6440000",
            "page": {
                "id": numeric_id(&page.id),
                "title": title,
                "contentType": "page",
                "creatorKey": "2c9280839e460b0f019e460ba6440000",
                "lastModifierKey": "2c9280839e460b0f019e460ba6440000",
                "creationDate": timestamp_ms,
                "modificationDate": timestamp_ms,
                "version": version,
                "self": format!("/pages/viewpage.action?pageId={}", page.id),
                "spaceKey": space,
            },
        }),
        BodyShape::Cloud | BodyShape::CloudStringId => {
            let id = if shape == BodyShape::Cloud {
                numeric_id(&page.id)
            } else {
                json!(page.id.as_str())
            };
            json!({
                "userAccountId": "557058:0a1b2c3d-docbrain-simulator",
                "accountType": "customer",
                "timestamp": timestamp_ms,
                "page": {
                    "id": id,
                    "idAsString": page.id.as_str(),
                    "title": title,
                    "spaceKey": space,
                    "contentType": "page",
                    "version": version,
                    "creationDate": timestamp_ms,
                    "modificationDate": timestamp_ms,
                    "creatorAccountId": "557058:0a1b2c3d-docbrain-simulator",
                    "lastModifierAccountId": "557058:0a1b2c3d-docbrain-simulator",
                    "self": format!("/wiki/spaces/{space}/pages/{}", page.id),
                },
            })
        }
    };
    if event == PageEvent::Updated {
        out["updateTrigger"] = json!("edit_page");
        if matches!(shape, BodyShape::Cloud | BodyShape::CloudStringId) {
            out["suppressNotifications"] = json!(false);
        }
    }
    out.to_string()
}

#[cfg(test)]
mod tests;
