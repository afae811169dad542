//! Errors of the page sources in this crate.

use std::path::PathBuf;

use docbrain_core::ErrorKind;

/// An error from a page source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The configured folder does not exist or is not a folder.
    #[error(
        "LOCAL_DOCS_PATH {path} is not a readable folder: point it at a folder of exported pages"
    )]
    NotAFolder {
        /// The configured path.
        path: PathBuf,
    },
    /// A page id does not name a file inside the folder.
    #[error("page id {id:?} is not a path inside the docs folder")]
    BadId {
        /// The id.
        id: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid UTF-8 text.
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
    /// A Confluence setting is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// Confluence refused the credentials (401) or the account's permissions (403).
    #[error("Confluence answered HTTP {status} to GET {path}: {detail}; {hint}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// The request path (never carries credentials).
        path: String,
        /// What the server said, shortened.
        detail: String,
        /// Which setting to check.
        hint: String,
    },
    /// A configured space does not exist or is not visible to the account.
    #[error(
        "Confluence space {key} does not exist or this account cannot see it: check CONFLUENCE_SPACE_KEYS \
         and the account's space permissions"
    )]
    SpaceNotFound {
        /// The space key.
        key: String,
    },
    /// Confluence answered with an error that retrying will not fix.
    #[error("Confluence answered HTTP {status} to GET {path}: {detail}")]
    Http {
        /// The status.
        status: u16,
        /// The request path.
        path: String,
        /// What the server said, shortened.
        detail: String,
    },
    /// Confluence stayed unreachable, rate-limited or failing through every retry.
    #[error("Confluence at {base} did not answer GET {path} after {attempts} attempts (last: {last}): check CONFLUENCE_BASE_URL and that Confluence is up")]
    Unavailable {
        /// The configured base URL.
        base: String,
        /// The request path.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last problem seen.
        last: String,
        /// Whether the last answer was a rate limit.
        rate_limited: bool,
        /// The wait Confluence last asked for (`Retry-After`).
        retry_after: Option<std::time::Duration>,
    },
    /// A search named a user Confluence does not know.
    #[error("Confluence knows no user {who:?}: {hint}")]
    UnknownUser {
        /// The name as given.
        who: String,
        /// What to give instead.
        hint: String,
    },
    /// An answer did not have the shape of the Confluence API.
    #[error("unexpected answer from Confluence to GET {path}: {detail}")]
    Decode {
        /// The request path.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// An attachment's text could not be read (the page is indexed without it).
    #[error("cannot read the text of attachment {name:?}: {detail}")]
    Attachment {
        /// The file name.
        name: String,
        /// Why.
        detail: String,
    },
}

impl From<SourceError> for docbrain_core::Error {
    fn from(e: SourceError) -> Self {
        let kind = match &e {
            SourceError::NotAFolder { .. }
            | SourceError::BadId { .. }
            | SourceError::Config(_)
            | SourceError::SpaceNotFound { .. } => ErrorKind::InvalidConfig,
            SourceError::NotText { .. }
            | SourceError::Decode { .. }
            | SourceError::Attachment { .. } => ErrorKind::Decode,
            SourceError::Unauthorized { .. } => ErrorKind::Unauthorized,
            SourceError::UnknownUser { .. } => ErrorKind::NotFound,
            SourceError::Unavailable {
                rate_limited: true, ..
            } => ErrorKind::RateLimited,
            SourceError::Io { .. }
            | SourceError::Task(_)
            | SourceError::Http { .. }
            | SourceError::Unavailable { .. } => ErrorKind::Transport,
        };
        let retry_after = match &e {
            SourceError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        };
        let error = docbrain_core::Error::wrap(kind, e);
        match retry_after {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        }
    }
}
