//! The settings of this crate's sources, with their defaults: a folder (`SOURCE_TYPE=local`)
//! or a Confluence site (`SOURCE_TYPE=confluence`). A front door reads them from its variables
//! (`docbrain_server::settings`); [`SourceSettings::fetcher`] builds the source they name.

use std::path::PathBuf;
use std::time::Duration;

use docbrain_core::{Error, ErrorKind, Result, Secret};

/// Where pages come from (`SOURCE_TYPE`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceSettings {
    /// No source: a pipeline for search only.
    None,
    /// A folder of exported pages.
    Local(LocalSettings),
    /// Confluence Cloud or Data Center.
    Confluence(ConfluenceSettings),
}

/// `SOURCE_TYPE=local`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSettings {
    /// `LOCAL_DOCS_PATH`: the folder.
    pub path: PathBuf,
    /// `LOCAL_SPACE_KEY`: the space key its pages get.
    pub space_key: String,
    /// `ATTACHMENTS` and its limits: the folder's PDF, DOCX, PPTX, XLSX, CSV and JSON files.
    pub attachments: AttachmentSettings,
}

/// Which Confluence REST API to speak (`CONFLUENCE_API_VERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiVersion {
    /// Cloud's REST v2 under `<base>/api/v2`, basic auth with an email and an API token.
    #[default]
    V2,
    /// Data Center's REST v1 under `<base>/rest/api`, a personal access token as Bearer.
    V1,
}

impl std::str::FromStr for ApiVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v2" | "2" => Ok(Self::V2),
            "v1" | "1" => Ok(Self::V1),
            other => Err(invalid(format!(
                "CONFLUENCE_API_VERSION={other:?} is not a version: use v2 (Cloud) or v1 (Data Center)"
            ))),
        }
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V2 => "v2",
            Self::V1 => "v1",
        })
    }
}

/// `SOURCE_TYPE=confluence`: how to reach and read a Confluence site.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfluenceSettings {
    /// `CONFLUENCE_BASE_URL`: `https://<site>.atlassian.net/wiki` (Cloud) or the site address.
    pub base_url: String,
    /// `CONFLUENCE_API_VERSION`.
    pub api_version: ApiVersion,
    /// `CONFLUENCE_USER_EMAIL`: the Cloud account's email (v2 only).
    pub email: Option<String>,
    /// `CONFLUENCE_API_TOKEN`: a Cloud API token (v2) or a Data Center personal access token.
    pub api_token: Secret,
    /// `CONFLUENCE_SPACE_KEYS`: the spaces a crawl covers; empty means every visible space.
    pub space_keys: Vec<String>,
    /// `CONFLUENCE_PAGE_LIMIT`: index at most this many pages per crawl.
    pub page_limit: Option<usize>,
    /// `CONFLUENCE_TLS_VERIFY`: verify the site's certificate.
    pub tls_verify: bool,
    /// Read each page's permissions (`SEARCH_PERMISSIONS`, on by default).
    pub read_permissions: bool,
    /// `CONFLUENCE_ANONYMOUS_ACCESS`: the site lets anonymous users in, so a space's
    /// anonymous view permission opens its pages to everyone (off: such grants admit nobody).
    pub anonymous_access: bool,
    /// `COMMENTS`: index each page's comments, as hits of their own under the page (on by
    /// default).
    pub comments: bool,
    /// `ATTACHMENTS` and its limits.
    pub attachments: AttachmentSettings,
}

/// Which attachments are read, and within what limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentSettings {
    /// `ATTACHMENTS`: index the text of attachments, as hits of their own under their page
    /// (on by default).
    pub enabled: bool,
    /// `ATTACHMENT_MAX_BYTES`: larger attachments are skipped, never downloaded (10 MiB).
    pub max_bytes: u64,
    /// `ATTACHMENT_MAX_CHARS`: the text kept of one attachment (200,000 characters).
    pub max_chars: usize,
    /// `ATTACHMENT_TIMEOUT`: how long one extraction may take (30 s).
    pub timeout: Duration,
    /// `ATTACHMENT_MEMORY_MB`: the memory one extraction may use (1,024 MiB).
    pub memory_mb: u64,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 10 * 1024 * 1024,
            max_chars: 200_000,
            timeout: Duration::from_secs(30),
            memory_mb: 1024,
        }
    }
}

impl ConfluenceSettings {
    /// Settings for `base_url` with defaults for everything optional.
    pub fn new(base_url: impl Into<String>, api_version: ApiVersion, api_token: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            api_version,
            email: None,
            api_token,
            space_keys: Vec::new(),
            page_limit: None,
            tls_verify: true,
            read_permissions: true,
            anonymous_access: false,
            comments: true,
            attachments: AttachmentSettings::default(),
        }
    }

    /// Checks that the site can be signed in to.
    ///
    /// # Errors
    /// A missing base URL, token, or (v2) email, named.
    pub fn validate(&self) -> Result<()> {
        if self.base_url.trim().is_empty() {
            return Err(invalid("CONFLUENCE_BASE_URL is not set: use https://<site>.atlassian.net/wiki for Cloud or your Data Center address"));
        }
        if self.api_token.is_empty() {
            return Err(invalid("CONFLUENCE_API_TOKEN is not set: an API token (Cloud) or a personal access token (Data Center)"));
        }
        if self.api_version == ApiVersion::V2 && self.email.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("CONFLUENCE_USER_EMAIL is not set: CONFLUENCE_API_VERSION=v2 signs in with the account's email and API token (use v1 for Data Center)"));
        }
        Ok(())
    }
}

pub(crate) fn invalid(message: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}
