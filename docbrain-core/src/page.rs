//! Pages as the pipeline sees them: ids, statuses, listings and fetched pages.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::hash::StableHasher;
use crate::read_access::ReadAccess;

/// A page id. Confluence sends ids as numbers in some payloads and strings in others; this type
/// accepts both and always holds (and serialises) the decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PageId(String);

impl PageId {
    /// Returns a page id from any string-like value.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PageId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for PageId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<u64> for PageId {
    fn from(id: u64) -> Self {
        Self(id.to_string())
    }
}

impl<'de> Deserialize<'de> for PageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PageId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a page id as a number or a string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PageId, E> {
                Ok(PageId::from(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PageId, E> {
                if v < 0 {
                    return Err(E::custom(format!("page id {v} is negative")));
                }
                Ok(PageId(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PageId, E> {
                let v = v.trim();
                if v.is_empty() {
                    return Err(E::custom("page id is empty"));
                }
                Ok(PageId::new(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The lifecycle status of a page. Only [`PageStatus::Current`] pages are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PageStatus {
    /// Published and live.
    Current,
    /// In the space's trash; can be restored.
    Trashed,
    /// Archived: kept out of the index because Confluence hides it from search by default.
    Archived,
    /// Never published.
    Draft,
    /// An old version of a page.
    Historical,
}

impl PageStatus {
    /// Returns whether pages of this status belong in the index.
    pub fn is_indexed(self) -> bool {
        self == Self::Current
    }
}

/// One page with its Markdown body: what a [`crate::Fetcher`] returns for a live page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The page id.
    pub id: PageId,
    /// The key of the space the page lives in.
    pub space_key: String,
    /// The page title.
    pub title: String,
    /// The version number; sources without versions use 0 and let the content hash decide.
    pub version: u64,
    /// The lifecycle status.
    pub status: PageStatus,
    /// A link a person can open.
    pub url: Option<String>,
    /// Titles of the ancestor pages, root first (the breadcrumb above the page).
    pub ancestors: Vec<String>,
    /// Labels on the page.
    pub labels: Vec<String>,
    /// The body as Markdown.
    pub body: String,
    /// Ids of the ancestor pages, root first (a permission change on one of them reaches this
    /// page).
    #[serde(default)]
    pub ancestor_ids: Vec<PageId>,
    /// Who may read the page (not part of [`Page::content_hash`]: a permission change
    /// re-embeds nothing).
    #[serde(default = "ReadAccess::anyone")]
    pub access: ReadAccess,
    /// What the page carries that is searched on its own (its comments), each indexed as a
    /// record of its own under the page: with the page's read rule and place, and leaving the
    /// index with it. Not part of [`Page::content_hash`].
    #[serde(default)]
    pub parts: Vec<Part>,
}

impl Page {
    /// Returns a current page at version 1 with no link, ancestors or labels, readable by
    /// anyone (set those fields afterwards, or with struct update syntax).
    pub fn new(
        id: impl Into<PageId>,
        space_key: impl Into<String>,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            space_key: space_key.into(),
            title: title.into(),
            version: 1,
            status: PageStatus::Current,
            url: None,
            ancestors: Vec::new(),
            labels: Vec::new(),
            body: body.into(),
            ancestor_ids: Vec::new(),
            access: ReadAccess::anyone(),
            parts: Vec::new(),
        }
    }

    /// Returns a stable hash of everything the index keeps of this page (body and metadata).
    pub fn content_hash(&self) -> String {
        let mut h = StableHasher::new();
        h.field(&self.space_key);
        h.field(&self.title);
        h.field(self.url.as_deref().unwrap_or(""));
        for a in &self.ancestors {
            h.field(a);
        }
        h.field("\u{1}");
        for l in &self.labels {
            h.field(l);
        }
        h.field("\u{1}");
        h.field(&self.body);
        h.finish_hex()
    }
}

/// One entry of a listing: enough to decide whether a page must be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSummary {
    /// The page id.
    pub id: PageId,
    /// The space key.
    pub space_key: String,
    /// The title (for logs).
    pub title: String,
    /// The version, when the listing carries it; pages whose version is unchanged are skipped
    /// without fetching their body.
    pub version: Option<u64>,
    /// The page's read rule and place, when the listing carries all they take (Data Center
    /// lists each page's restriction and ancestors); a page whose version and rule the index
    /// holds costs no request then, and a changed one only its body. `None`: the crawl reads
    /// the rule of an unchanged page on its own.
    pub access: Option<ListedAccess>,
    /// [`PageSummary::parts_digest`] of the page's parts (comments) as the listing saw them: a page whose
    /// version the index holds is read again when its parts changed. `None`: the listing does
    /// not say, and only the page's version counts.
    #[serde(default)]
    pub parts: Option<u128>,
}

impl PageSummary {
    /// A digest of a page's parts by id and version, in any order: the same parts, the same
    /// digest. A listing and the index compare parts through it.
    pub fn parts_digest<'a>(parts: impl IntoIterator<Item = (&'a PageId, u64)>) -> u128 {
        let mut parts: Vec<(&PageId, u64)> = parts.into_iter().collect();
        parts.sort_unstable();
        let mut h = StableHasher::new();
        for (id, version) in parts {
            h.field(id.as_str());
            h.field(&version.to_string());
        }
        h.finish()
    }
}

/// What a page carries that is searched as a hit of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PartKind {
    /// A footer or inline comment, or a reply to one.
    Comment,
    /// A file attached to the page (its text extracted).
    Attachment,
}

/// One part of a page (a comment, an attachment), as its source gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its id, unique among the source's pages and parts (Confluence content ids are).
    pub id: PageId,
    /// What it is.
    pub kind: PartKind,
    /// The title its hits show (`Comment by Alice`, an attachment's file name).
    pub title: String,
    /// Its own version: a part whose version and rule the index holds is not embedded again.
    pub version: u64,
    /// A link a person can open (an attachment's download link).
    pub url: Option<String>,
    /// The text as Markdown, when the source has it at hand (a comment); `None`: the pipeline
    /// asks [`crate::Fetcher::fetch_part`] for it, only when the index does not hold this
    /// version (an attachment is downloaded once per version).
    pub body: Option<String>,
    /// The media type, as the source says (attachments).
    #[serde(default)]
    pub media_type: Option<String>,
    /// The size in bytes, as the source says (attachments).
    #[serde(default)]
    pub size: Option<u64>,
}

/// What [`crate::Fetcher::fetch_part`] found for a part.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartText {
    /// Its text, as Markdown.
    Text(String),
    /// Not indexed, and why (too large, a type without text): counted, and not read again
    /// until its version changes.
    Skipped(String),
}

/// What a page's record keeps of one of its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartRef {
    /// The part's id (its own record's).
    pub id: PageId,
    /// The version indexed.
    pub version: u64,
    /// What it is.
    #[serde(default = "comment")]
    pub kind: PartKind,
    /// Why it is not indexed (skipped or failed); `None` when its record holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_indexed: Option<NotIndexed>,
}

fn comment() -> PartKind {
    PartKind::Comment
}

/// Why a page's part is not indexed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NotIndexed {
    /// Skipped for good at this version (too large, no text to read), and why.
    Skipped(String),
    /// Reading it failed (a damaged or hostile file, a download error), and why: tried again
    /// at the next crawl.
    Failed(String),
}

impl PartRef {
    /// The version a listing is compared with: a failed part's never matches, so the next
    /// crawl tries it again.
    pub fn listed_version(&self) -> u64 {
        match self.not_indexed {
            Some(NotIndexed::Failed(_)) => 0,
            _ => self.version,
        }
    }

    /// [`PageSummary::parts_digest`] of a page's parts as its record keeps them.
    pub fn digest(parts: &[PartRef]) -> u128 {
        PageSummary::parts_digest(parts.iter().map(|r| (&r.id, r.listed_version())))
    }
}

/// What a listing says of who may read a page and where it sits, read whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedAccess {
    /// Who may read the page.
    pub rule: crate::ReadAccess,
    /// The ids of its ancestors, root first.
    pub ancestor_ids: Vec<PageId>,
    /// When the listing that said so began (ms since the Unix epoch): a write of this rule is
    /// as old as that read, so a later exact read (a webhook's) wins over it.
    pub read_ms: u64,
}

/// The state of a page as its source sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per fetch, moved straight into the pipeline: a box would only add an allocation"
)]
pub enum Fetched {
    /// The page exists (its status says whether it is live).
    Page(Page),
    /// The page is deleted, purged or not visible to this account.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_id_accepts_numbers_and_strings() {
        let from_number: PageId = serde_json::from_str("12345").unwrap();
        let from_string: PageId = serde_json::from_str("\"12345\"").unwrap();
        assert_eq!(from_number, from_string);
        assert_eq!(serde_json::to_string(&from_number).unwrap(), "\"12345\"");
    }

    #[test]
    fn page_id_rejects_empty_and_negative() {
        assert!(serde_json::from_str::<PageId>("\"  \"").is_err());
        let err = serde_json::from_str::<PageId>("-4").unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        assert!(serde_json::from_str::<PageId>("{}").is_err());
    }

    #[test]
    fn content_hash_changes_with_body_and_title() {
        let page = Page::new("1", "ENG", "Runbook", "hello");
        let mut edited = page.clone();
        edited.body.push('!');
        let mut renamed = page.clone();
        renamed.title = "Runbook 2".into();
        assert_ne!(page.content_hash(), edited.content_hash());
        assert_ne!(page.content_hash(), renamed.content_hash());
        assert_eq!(page.content_hash(), page.clone().content_hash());
    }
}
