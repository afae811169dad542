//! Errors of the index stores and embedders in this crate.

use std::path::PathBuf;

use docbrain_core::ErrorKind;

/// An error from the embedded store or the local model. It says what is wrong; what an operator
/// does about it (a variable to set, a script to run) is the front doors' to say
/// (`docbrain_server::settings::hint`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The index database could not be opened or created.
    #[error("cannot open the index at {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query against the index database failed.
    #[cfg(feature = "embedded")]
    #[error("index database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The index was written by a build with another schema.
    #[error(
        "the index at {path} has schema version {found} but this build reads version {expected}"
    )]
    SchemaVersion {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The version this build reads.
        expected: i64,
    },
    /// The index holds vectors of another model or dimension.
    #[error("the index holds vectors of model {held} (dimension {held_dimension}) but the configured embedder is {configured} (dimension {dimension})")]
    ModelMismatch {
        /// The model the index holds.
        held: String,
        /// Its dimension.
        held_dimension: usize,
        /// The configured model.
        configured: String,
        /// Its dimension.
        dimension: usize,
    },
    /// A vector of the wrong length was offered to the store.
    #[error("chunk {chunk_id} has a vector of dimension {found}, the index expects {expected}")]
    Dimension {
        /// The chunk.
        chunk_id: String,
        /// Its vector length.
        found: usize,
        /// The bound dimension.
        expected: usize,
    },
    /// A file of the local model is missing.
    #[error("model file {path} is missing")]
    ModelMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// The model weights are not the expected ones.
    #[error("model file {path} has sha256 {actual} but {expected} was expected: the file is corrupt or another model")]
    ModelHash {
        /// The weights file.
        path: PathBuf,
        /// Its hash.
        actual: String,
        /// The expected hash.
        expected: String,
    },
    /// The local provider was asked for a model it does not run.
    #[error("the local embedder runs {supported} only, not {requested}")]
    UnsupportedModel {
        /// The model asked for.
        requested: String,
        /// The model it runs.
        supported: &'static str,
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
    /// The model files do not hold what this model needs.
    #[cfg(feature = "local-model")]
    #[error("{path} is not a usable all-MiniLM-L6-v2 file: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokenizer failed.
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    /// The local model's worker thread is gone (it panicked).
    #[cfg(feature = "local-model")]
    #[error("the local model's worker thread stopped: {0}")]
    Worker(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
    /// An embedding service refused the credentials.
    #[error(
        "{provider} refused the credentials at {url} (HTTP {status}): {message}; check {setting}"
    )]
    ProviderAuth {
        /// `openai` or `ollama`.
        provider: &'static str,
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The service's own message.
        message: String,
        /// The setting to check.
        setting: &'static str,
    },
    /// An embedding service does not serve the configured model.
    #[error(
        "{provider} at {url} does not serve model {model} (HTTP {status}): {message}; {}",
        model_hint(provider, model)
    )]
    ProviderModel {
        /// `openai` or `ollama`.
        provider: &'static str,
        /// The endpoint.
        url: String,
        /// The configured model.
        model: String,
        /// The HTTP status.
        status: u16,
        /// The service's own message.
        message: String,
    },
    /// An embedding service rejected one request (the input, usually).
    #[error("{provider} at {url} rejected the request (HTTP {status}): {message}")]
    ProviderRejected {
        /// `openai` or `ollama`.
        provider: &'static str,
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The service's own message.
        message: String,
    },
    /// An embedding service did not answer within the retries.
    #[error("{provider} at {url} did not answer after {attempts} attempts: {last}")]
    ProviderUnavailable {
        /// `openai` or `ollama`.
        provider: &'static str,
        /// The endpoint.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last problem seen.
        last: String,
    },
    /// An embedding service answered something that is not an embeddings response.
    #[error("{provider} at {url} answered something that is not an embeddings response: {detail}")]
    ProviderDecode {
        /// `openai` or `ollama`.
        provider: &'static str,
        /// The endpoint.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// A setting is wrong; the message names it.
    #[error("{0}")]
    InvalidSetting(String),
    /// OpenSearch answered an error.
    #[error("OpenSearch at {url} could not {what} (HTTP {status}): {detail}")]
    OpenSearch {
        /// The cluster URL.
        url: String,
        /// What was being done.
        what: String,
        /// The HTTP status.
        status: u16,
        /// OpenSearch's reason, shortened.
        detail: String,
    },
    /// OpenSearch refused the credentials.
    #[error("OpenSearch at {url} refused the credentials (HTTP {status}): {detail}; check OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD")]
    OpenSearchAuth {
        /// The cluster URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// OpenSearch's reason.
        detail: String,
    },
    /// OpenSearch stayed unreachable or overloaded through every retry.
    #[error("OpenSearch at {url} did not answer after {attempts} attempts (last: {last}): check OPENSEARCH_URL and that the cluster is up")]
    OpenSearchUnavailable {
        /// The cluster URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last problem seen.
        last: String,
    },
    /// The OpenSearch index holds vectors of another model or dimension.
    #[error("OpenSearch index {index} holds vectors of model {held} (dimension {held_dimension}) but the configured embedder is {configured} (dimension {dimension}): set EMBED_PROVIDER/EMBED_MODEL_ID back, or set OPENSEARCH_INDEX to a new index name and run `docbrain ingest` to re-index (then delete the old index)")]
    IndexMismatch {
        /// The index name.
        index: String,
        /// The model the index holds.
        held: String,
        /// Its dimension.
        held_dimension: usize,
        /// The configured model.
        configured: String,
        /// Its dimension.
        dimension: usize,
    },
    /// A stored value could not be decoded.
    #[error("stored {what} is corrupt")]
    Corrupt {
        /// What could not be decoded.
        what: &'static str,
    },
}

/// What to do when a service does not know the configured model.
fn model_hint(provider: &str, model: &str) -> String {
    if provider == "ollama" {
        format!("run `ollama pull {model}` on the server, or fix EMBED_MODEL_ID")
    } else {
        "check EMBED_MODEL_ID and that the key may use it".into()
    }
}

impl IndexError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::ModelMismatch { .. }
            | Self::IndexMismatch { .. }
            | Self::UnsupportedModel { .. }
            | Self::ProviderModel { .. }
            | Self::InvalidSetting(_) => ErrorKind::InvalidConfig,
            Self::ProviderAuth { .. } | Self::OpenSearchAuth { .. } => ErrorKind::Unauthorized,
            Self::OpenSearchUnavailable { .. } => ErrorKind::Transport,
            Self::ProviderRejected { .. } => ErrorKind::Embedding,
            Self::ProviderUnavailable { .. } => ErrorKind::Transport,
            Self::ProviderDecode { .. } => ErrorKind::Decode,
            Self::ModelMissing { .. } | Self::ModelHash { .. } | Self::Tokenizer(_) => {
                ErrorKind::Embedding
            }
            #[cfg(feature = "local-model")]
            Self::ModelFile { .. } | Self::Worker(_) => ErrorKind::Embedding,
            _ => ErrorKind::Storage,
        }
    }
}

impl From<IndexError> for docbrain_core::Error {
    fn from(e: IndexError) -> Self {
        docbrain_core::Error::wrap(e.kind(), e)
    }
}
