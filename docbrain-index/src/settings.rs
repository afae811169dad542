//! The settings of this crate's stores and embedders, with their defaults. A front door reads
//! them from its variables (`docbrain_server::settings`); [`StoreSettings::open`] and
//! [`EmbedderSettings::connect`] build what they name.

use std::path::PathBuf;
use std::time::Duration;

use docbrain_core::Secret;

/// Where the index lives (`INDEX_STORE`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum StoreSettings {
    /// One SQLite file in the data folder (`DOCBRAIN_DATA_DIR`).
    #[default]
    Embedded,
    /// An OpenSearch cluster with the k-NN plugin.
    OpenSearch(OpenSearchSettings),
}

/// `INDEX_STORE=opensearch`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSearchSettings {
    /// `OPENSEARCH_URL`.
    pub url: String,
    /// `OPENSEARCH_INDEX`: the chunk index; page records go to `<index>-pages`.
    pub index: String,
    /// `OPENSEARCH_USERNAME` (basic auth), if the cluster needs one.
    pub username: Option<String>,
    /// `OPENSEARCH_PASSWORD`.
    pub password: Option<Secret>,
    /// `OPENSEARCH_TLS_VERIFY`.
    pub tls_verify: bool,
}

impl Default for OpenSearchSettings {
    fn default() -> Self {
        Self {
            url: "http://localhost:9200".into(),
            index: "docbrain-chunks".into(),
            username: None,
            password: None,
            tls_verify: true,
        }
    }
}

/// Embedding providers (`EMBED_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Provider {
    /// all-MiniLM-L6-v2 in-process.
    #[default]
    Local,
    /// An OpenAI-compatible `/v1/embeddings` API.
    OpenAi,
    /// An Ollama server.
    Ollama,
}

/// Which model embeds chunks, and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedderSettings {
    /// `EMBED_PROVIDER`.
    pub provider: Provider,
    /// `EMBED_MODEL_ID`; `None` picks the provider's default.
    pub model_id: Option<String>,
    /// `MODEL_DIR`: the local model's weights; `None` picks the cache folder.
    pub model_dir: Option<PathBuf>,
    /// `OPENAI_API_KEY`.
    pub openai_api_key: Option<Secret>,
    /// `OPENAI_BASE_URL`.
    pub openai_base_url: String,
    /// `EMBED_DIMENSIONS`: the vector size to ask an OpenAI text-embedding-3 model for.
    pub dimensions: Option<usize>,
    /// `OLLAMA_BASE_URL`.
    pub ollama_base_url: String,
    /// `OLLAMA_TLS_VERIFY`.
    pub ollama_tls_verify: bool,
    /// `EMBED_BATCH_SIZE`: texts per remote request; `None` picks the provider's default.
    pub batch_size: Option<usize>,
    /// `EMBED_CONCURRENCY`: remote requests in flight; `None` picks the provider's default.
    pub concurrency: Option<usize>,
    /// `EMBED_TIMEOUT_SECS`: timeout of one remote request.
    pub timeout: Duration,
}

impl Default for EmbedderSettings {
    fn default() -> Self {
        Self {
            provider: Provider::Local,
            model_id: None,
            model_dir: None,
            openai_api_key: None,
            openai_base_url: "https://api.openai.com/v1".into(),
            dimensions: None,
            ollama_base_url: "http://localhost:11434".into(),
            ollama_tls_verify: true,
            batch_size: None,
            concurrency: None,
            timeout: Duration::from_secs(60),
        }
    }
}
