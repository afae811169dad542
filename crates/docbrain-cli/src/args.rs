//! Command-line arguments; every setting also reads the environment name DocBrain users know.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use docbrain_core::Secret;

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value.trim()))
}

/// Keeps a documentation search index in step with Confluence.
#[derive(Debug, Parser)]
#[command(name = "docbrain", version, about)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub common: Common,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command.
#[derive(Debug, Args)]
pub struct Common {
    /// Folder of the embedded index.
    #[arg(
        long,
        env = "DOCBRAIN_DATA_DIR",
        default_value = "./docbrain-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Embedding provider.
    #[arg(long, env = "EMBED_PROVIDER", value_enum, default_value_t = Provider::Local, global = true)]
    pub embed_provider: Provider,
    /// Embedding model id [default: all-MiniLM-L6-v2 (local), text-embedding-3-small (openai),
    /// nomic-embed-text (ollama)].
    #[arg(long, env = "EMBED_MODEL_ID", global = true)]
    pub embed_model_id: Option<String>,
    /// API key of the OpenAI-compatible service.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, value_parser = parse_secret, global = true)]
    pub openai_api_key: Option<Secret>,
    /// Base URL of the OpenAI-compatible service (vLLM, TEI, LM Studio, a gateway).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1",
        global = true
    )]
    pub openai_base_url: String,
    /// Vector size to ask an OpenAI text-embedding-3 model for.
    #[arg(long, env = "EMBED_DIMENSIONS", global = true)]
    pub embed_dimensions: Option<usize>,
    /// Base URL of the Ollama server.
    #[arg(
        long,
        env = "OLLAMA_BASE_URL",
        default_value = "http://localhost:11434",
        global = true
    )]
    pub ollama_base_url: String,
    /// Verify the Ollama server's TLS certificate.
    #[arg(long, env = "OLLAMA_TLS_VERIFY", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub ollama_tls_verify: bool,
    /// Texts per request to a remote embedding service [default: 64 openai, 16 ollama].
    #[arg(long, env = "EMBED_BATCH_SIZE", global = true)]
    pub embed_batch_size: Option<usize>,
    /// Requests in flight at once to a remote embedding service [default: 4 openai, 2 ollama].
    #[arg(long, env = "EMBED_CONCURRENCY", global = true)]
    pub embed_concurrency: Option<usize>,
    /// Timeout of one request to a remote embedding service, in seconds.
    #[arg(long, env = "EMBED_TIMEOUT_SECS", default_value_t = 60, global = true)]
    pub embed_timeout_secs: u64,
    /// Folder holding the local model's weights [default: ~/.cache/docbrain/models/all-MiniLM-L6-v2].
    #[arg(long, env = "MODEL_DIR", global = true)]
    pub model_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `docbrain_core=debug` [default: info, or warn under a progress bar].
    #[arg(long, env = "LOG_LEVEL", global = true)]
    pub log_level: Option<String>,
    /// Where the index lives: the embedded file in DOCBRAIN_DATA_DIR, or OpenSearch.
    #[arg(long, env = "INDEX_STORE", value_enum, default_value_t = StoreKind::Embedded, global = true)]
    pub index_store: StoreKind,
    /// OpenSearch cluster URL (INDEX_STORE=opensearch).
    #[arg(
        long,
        env = "OPENSEARCH_URL",
        default_value = "http://localhost:9200",
        global = true
    )]
    pub opensearch_url: String,
    /// OpenSearch chunk index; page records go to `<index>-pages`.
    #[arg(
        long,
        env = "OPENSEARCH_INDEX",
        default_value = "docbrain-chunks",
        global = true
    )]
    pub opensearch_index: String,
    /// OpenSearch user (basic auth), if the cluster needs one.
    #[arg(long, env = "OPENSEARCH_USERNAME", global = true)]
    pub opensearch_username: Option<String>,
    /// OpenSearch password.
    #[arg(long, env = "OPENSEARCH_PASSWORD", hide_env_values = true, value_parser = parse_secret, global = true)]
    pub opensearch_password: Option<Secret>,
    /// Verify the OpenSearch cluster's TLS certificate.
    #[arg(long, env = "OPENSEARCH_TLS_VERIFY", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub opensearch_tls_verify: bool,
}

/// Index stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// One SQLite file in DOCBRAIN_DATA_DIR.
    Embedded,
    /// An OpenSearch cluster with the k-NN plugin.
    Opensearch,
}

/// Embedding providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// all-MiniLM-L6-v2 in-process.
    Local,
    /// An OpenAI-compatible `/v1/embeddings` API.
    Openai,
    /// An Ollama server.
    Ollama,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync the configured source into the index (the scheduled full crawl).
    Ingest(IngestArgs),
    /// Answer a question from the index.
    Search(SearchArgs),
    /// Show what the index holds.
    Status(StatusArgs),
    /// Print the Markdown of a Confluence storage-format file.
    Convert(ConvertArgs),
}

/// `docbrain convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A storage-format (XHTML) file, as `body.storage.value` or a space export holds it.
    pub file: PathBuf,
}

/// Page sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// A folder of pages (`LOCAL_DOCS_PATH`).
    Local,
    /// Confluence Cloud or Data Center.
    Confluence,
}

/// `docbrain ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Where pages come from (`INGEST_SOURCES` is read too).
    #[arg(long, env = "SOURCE_TYPE", value_enum)]
    pub source: Option<Source>,
    /// Comma-separated sources, as DocBrain's `INGEST_SOURCES`; one source per run is supported.
    #[arg(long, env = "INGEST_SOURCES", hide = true)]
    pub ingest_sources: Option<String>,
    /// Folder of pages for the local source.
    #[arg(long, env = "LOCAL_DOCS_PATH")]
    pub docs_path: Option<PathBuf>,
    /// Space key given to the local source's pages.
    #[arg(long, env = "LOCAL_SPACE_KEY", default_value = "LOCAL")]
    pub space_key: String,
    /// Chunk budget in model tokens, breadcrumb included.
    #[arg(long, env = "CHUNK_MAX_TOKENS", default_value_t = 254)]
    pub chunk_tokens: usize,
    /// Refuse to delete more than this share (0-1) of a space's pages in one run.
    #[arg(long, env = "MAX_DELETE_FRACTION", default_value_t = 0.5)]
    pub max_delete_fraction: f64,
    /// Lift the mass-deletion guard for this run.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Confluence settings (`SOURCE_TYPE=confluence`).
    #[command(flatten)]
    pub confluence: ConfluenceArgs,
}

/// How to reach Confluence; shared by `docbrain ingest` and the webhook server.
#[derive(Debug, Clone, Args)]
pub struct ConfluenceArgs {
    /// Cloud: `https://<site>.atlassian.net/wiki`; Data Center: the site address.
    #[arg(long, env = "CONFLUENCE_BASE_URL")]
    pub confluence_base_url: Option<String>,
    /// `v2` (Cloud, default) or `v1` (Data Center).
    #[arg(long, env = "CONFLUENCE_API_VERSION", default_value = "v2")]
    pub confluence_api_version: String,
    /// The Cloud account's email (v2 basic auth).
    #[arg(long, env = "CONFLUENCE_USER_EMAIL")]
    pub confluence_user_email: Option<String>,
    /// A Cloud API token (v2) or a Data Center personal access token (v1).
    #[arg(long, env = "CONFLUENCE_API_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub confluence_api_token: Option<Secret>,
    /// Comma-separated space keys to crawl; empty crawls every space the account sees.
    #[arg(long, env = "CONFLUENCE_SPACE_KEYS", default_value = "")]
    pub confluence_space_keys: String,
    /// Index at most this many pages per crawl (0 = unlimited).
    #[arg(long, env = "CONFLUENCE_PAGE_LIMIT", default_value_t = 0)]
    pub confluence_page_limit: usize,
    /// Verify Confluence's TLS certificate.
    #[arg(long, env = "CONFLUENCE_TLS_VERIFY", default_value_t = true, action = clap::ArgAction::Set)]
    pub confluence_tls_verify: bool,
    /// Pages fetched and indexed at once during a crawl.
    #[arg(long, env = "CONFLUENCE_FETCH_CONCURRENCY", default_value_t = 4)]
    pub confluence_fetch_concurrency: usize,
}

impl ConfluenceArgs {
    /// The configured space keys.
    pub fn space_keys(&self) -> Vec<String> {
        self.confluence_space_keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `docbrain search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The question.
    pub query: String,
    /// How many hits to show.
    #[arg(short = 'k', long = "top", default_value_t = 5)]
    pub k: usize,
    /// Only search this space.
    #[arg(long)]
    pub space: Option<String>,
    /// Print `{"hits": [...]}`.
    #[arg(long)]
    pub json: bool,
}

/// `docbrain status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}
