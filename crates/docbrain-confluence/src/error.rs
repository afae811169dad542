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
}

impl From<SourceError> for docbrain_core::Error {
    fn from(e: SourceError) -> Self {
        let kind = match &e {
            SourceError::NotAFolder { .. } | SourceError::BadId { .. } => ErrorKind::InvalidConfig,
            SourceError::NotText { .. } => ErrorKind::Decode,
            SourceError::Io { .. } | SourceError::Task(_) => ErrorKind::Transport,
        };
        docbrain_core::Error::wrap(kind, e)
    }
}
