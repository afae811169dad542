//! Settings: everything a deployment configures, as plain data.
//!
//! [`Settings::from_env`] reads the names DocBrain users know (`CONFLUENCE_BASE_URL`,
//! `EMBED_PROVIDER`, `OPENSEARCH_URL`, …) and validates them once, with messages that name the
//! variable to fix; code can build a [`Settings`] directly too (start from
//! [`Settings::default`]). [`crate::Pipeline::from_settings`] turns it into a pipeline. Secrets
//! are [`Secret`]s, so printing settings never shows them. [`VARS`] lists every variable, for
//! front doors that also offer each one as a flag.

mod duration;
mod vars;

use std::path::PathBuf;
use std::time::Duration;

pub use duration::parse_duration;
pub use vars::{Group, Var, VARS};

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// What a deployment configures: source, index, embedder, chunking, guards, webhook, server.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where pages come from.
    pub source: SourceSettings,
    /// Where the index lives.
    pub store: StoreSettings,
    /// `DOCBRAIN_DATA_DIR`: the embedded index's folder (and the journal's, by default).
    pub data_dir: PathBuf,
    /// Which model embeds chunks.
    pub embedder: EmbedderSettings,
    /// How pages are cut into chunks.
    pub chunking: ChunkSettings,
    /// What a crawl may do.
    pub guards: GuardSettings,
    /// The Confluence webhook; `None` when `CONFLUENCE_WEBHOOK_SECRET` is unset.
    pub webhook: Option<WebhookSettings>,
    /// The server's address and schedule.
    pub server: ServerSettings,
    /// Who may search, and whose permissions results obey.
    pub search: SearchSettings,
    /// `LOG_LEVEL`: a tracing filter; `None` lets each front door pick its default.
    pub log_level: Option<String>,
}

impl Default for Settings {
    /// The zero-set-up defaults: no source, the embedded index in `./docbrain-data`, the local
    /// model.
    fn default() -> Self {
        Self {
            source: SourceSettings::None,
            store: StoreSettings::Embedded,
            data_dir: PathBuf::from("./docbrain-data"),
            embedder: EmbedderSettings::default(),
            chunking: ChunkSettings::default(),
            guards: GuardSettings::default(),
            webhook: None,
            server: ServerSettings::default(),
            search: SearchSettings::default(),
            log_level: None,
        }
    }
}

/// Where pages come from (`SOURCE_TYPE`).
#[derive(Debug, Clone, PartialEq)]
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
    /// `CONFLUENCE_FETCH_CONCURRENCY`: pages fetched and indexed at once during a crawl.
    pub fetch_concurrency: usize,
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
            fetch_concurrency: 4,
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
        if self.fetch_concurrency == 0 {
            return Err(invalid("CONFLUENCE_FETCH_CONCURRENCY must be at least 1"));
        }
        Ok(())
    }
}

/// Where the index lives (`INDEX_STORE`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StoreSettings {
    /// One SQLite file in [`Settings::data_dir`].
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

/// How pages are cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSettings {
    /// `CHUNK_MAX_TOKENS`: the chunk budget in model tokens, breadcrumb included (cut to what
    /// the embedder reads).
    pub max_tokens: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self { max_tokens: 254 }
    }
}

/// What a crawl may delete.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardSettings {
    /// `MAX_DELETE_FRACTION`: refuse to delete more than this share (0–1) of a space at once.
    pub max_delete_fraction: f64,
    /// `DELETE_GUARD_FLOOR`: deleting up to this many pages of a space always passes.
    pub delete_floor: usize,
    /// Lifts the guard for one run (`docbrain ingest --allow-mass-delete`).
    pub allow_mass_delete: bool,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            max_delete_fraction: 0.5,
            delete_floor: 2,
            allow_mass_delete: false,
        }
    }
}

/// The Confluence webhook endpoint and its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// `CONFLUENCE_WEBHOOK_SECRET`: the HMAC key of `X-Hub-Signature`.
    pub secret: Secret,
    /// `CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN`: also accept `?token=<secret>` on unsigned
    /// deliveries (weaker: the secret travels in the URL).
    pub allow_url_token: bool,
    /// `WEBHOOK_MAX_BODY_BYTES`: larger bodies get 413 unread.
    pub max_body_bytes: usize,
    /// `WEBHOOK_BODY_TIMEOUT`: a body that has not arrived whole by then gets 408.
    pub body_timeout: Duration,
    /// `WEBHOOK_JOURNAL_DIR`: where accepted events are journaled.
    pub journal_dir: PathBuf,
    /// `WEBHOOK_WORKERS`: pages reconciled at once.
    pub workers: usize,
    /// `WEBHOOK_DEBOUNCE_MS`: a page's first event is handled at once; events during its
    /// reconcile or within this long after collapse into one more reconcile this long later.
    pub debounce: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`: failed reconciles of a page (or reads of the pages an access
    /// change reaches) before its events are parked.
    pub max_attempts: u32,
    /// `WEBHOOK_RETRY_MS`: the first wait after a failed reconcile; it doubles per attempt.
    pub retry_initial: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// How long to wait for the version an event named to appear in the API.
    pub lag_bound: Duration,
}

impl WebhookSettings {
    /// Settings with `secret`, journaling into `journal_dir`, and defaults for the rest.
    pub fn new(secret: Secret, journal_dir: PathBuf) -> Self {
        Self {
            secret,
            allow_url_token: false,
            max_body_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            journal_dir,
            workers: 2,
            debounce: Duration::from_millis(1000),
            max_attempts: 10,
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            lag_bound: Duration::from_secs(120),
        }
    }
}

/// The fewest characters a search key may have.
pub const MIN_KEY_CHARS: usize = 32;

/// Who may search, and whose permissions results obey.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSettings {
    /// `SEARCH_API_KEYS`: gateway keys (comma-separated): their holder may search as anyone
    /// (`as=<user>`; none: anonymous), or as the users of `gateway_users` when it is set.
    pub api_keys: Vec<Secret>,
    /// `SEARCH_GATEWAY_USERS`: the only users gateway keys may search as (empty: anyone).
    pub gateway_users: Vec<String>,
    /// `SEARCH_USER_KEYS`: keys bound to one user each (`user=key`, comma-separated): their
    /// holder searches as that user and no one else.
    pub user_keys: Vec<(String, Secret)>,
    /// `SEARCH_ALLOW_ANONYMOUS`: serve search without keys on a non-loopback address.
    pub allow_anonymous: bool,
    /// `SEARCH_PERMISSIONS`: filter results by Confluence permissions (on by default); off
    /// serves every indexed page to every caller.
    pub permissions: bool,
    /// `PERMISSION_CACHE_TTL`: how long a user's groups are trusted once looked up.
    pub cache_ttl: Duration,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            gateway_users: Vec::new(),
            user_keys: Vec::new(),
            allow_anonymous: false,
            permissions: true,
            cache_ttl: Duration::from_secs(300),
        }
    }
}

impl SearchSettings {
    /// Checks the keys: long enough to resist guessing, each bound to a user where one is
    /// named, none given twice.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`] naming the variable (never the key).
    pub fn validate(&self) -> Result<()> {
        let short = |var: &str, n: usize| {
            invalid(format!(
                "{var}: key {n} is shorter than {MIN_KEY_CHARS} characters: use long random keys, e.g. `openssl rand -hex 32`"
            ))
        };
        for (n, key) in self.api_keys.iter().enumerate() {
            if key.expose().chars().count() < MIN_KEY_CHARS {
                return Err(short("SEARCH_API_KEYS", n + 1));
            }
        }
        let mut seen: Vec<&str> = self.api_keys.iter().map(Secret::expose).collect();
        for (n, (user, key)) in self.user_keys.iter().enumerate() {
            if user.trim().is_empty() {
                return Err(invalid(format!(
                    "SEARCH_USER_KEYS: entry {} names no user: write user=key",
                    n + 1
                )));
            }
            if key.expose().chars().count() < MIN_KEY_CHARS {
                return Err(short("SEARCH_USER_KEYS", n + 1));
            }
            if seen.contains(&key.expose()) {
                return Err(invalid(format!(
                    "SEARCH_USER_KEYS: the key of entry {} ({user}) is also given elsewhere: every key must be distinct",
                    n + 1
                )));
            }
            seen.push(key.expose());
        }
        Ok(())
    }
}

/// Where the server listens, and its optional in-server crawl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `SERVER_BIND`.
    pub bind: String,
    /// `SERVER_PORT` (0 picks a free port).
    pub port: u16,
    /// `INGEST_SCHEDULE`: run the full crawl inside the server at this interval.
    pub ingest_schedule: Option<Duration>,
    /// `SERVER_HEADER_TIMEOUT`: how long a connection may take to send a request's headers,
    /// counted from the connection's start or the end of its previous answer (so it is also
    /// the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// `SERVER_MAX_CONNECTIONS`: connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0".into(),
            port: 3000,
            ingest_schedule: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

impl Settings {
    /// Reads and validates the settings from the process environment.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`] naming the variable that is missing or wrong.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads and validates the settings from `lookup` (a variable's value by name; an empty
    /// value counts as unset), e.g. flags over the environment.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`] naming the variable that is missing or wrong.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let settings = vars::read(&vars::Reader::new(&lookup))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the settings as a whole: ranges, and what each part needs.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`] naming the setting to fix.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.guards.max_delete_fraction) {
            return Err(invalid(format!(
                "MAX_DELETE_FRACTION={} must be between 0 and 1",
                self.guards.max_delete_fraction
            )));
        }
        if self.chunking.max_tokens < 65 {
            return Err(invalid(format!(
                "CHUNK_MAX_TOKENS={} is too small: use at least 65 (chunks overlap by 32 tokens)",
                self.chunking.max_tokens
            )));
        }
        if let Some(webhook) = &self.webhook {
            match &self.source {
                SourceSettings::Confluence(c)
                    if !c.base_url.trim().is_empty() && !c.api_token.is_empty() =>
                {
                    c.validate()
                        .map_err(|e| invalid(format!("CONFLUENCE_WEBHOOK_SECRET set but {e}")))?;
                }
                SourceSettings::Confluence(c) => {
                    let missing: Vec<&str> = [
                        ("CONFLUENCE_BASE_URL", c.base_url.trim().is_empty()),
                        ("CONFLUENCE_API_TOKEN", c.api_token.is_empty()),
                    ]
                    .into_iter()
                    .filter_map(|(name, missing)| missing.then_some(name))
                    .collect();
                    return Err(invalid(format!(
                        "CONFLUENCE_WEBHOOK_SECRET set but {} not set: the webhook fetches each page it is told about from Confluence",
                        missing.join(" and ")
                    )));
                }
                _ => {
                    return Err(invalid(
                        "CONFLUENCE_WEBHOOK_SECRET set but CONFLUENCE_BASE_URL and CONFLUENCE_API_TOKEN are not set: the webhook fetches each page it is told about from Confluence",
                    ))
                }
            }
            if webhook.workers == 0 || webhook.max_attempts == 0 {
                return Err(invalid(
                    "WEBHOOK_WORKERS and WEBHOOK_MAX_ATTEMPTS must be at least 1",
                ));
            }
        }
        // A crawl's own Confluence settings are checked where the source is built: commands
        // that do not crawl (`docbrain status`) do not need them.
        self.search.validate()?;
        if self.server.max_connections == 0 || self.server.header_timeout.is_zero() {
            return Err(invalid(
                "SERVER_MAX_CONNECTIONS and SERVER_HEADER_TIMEOUT must be above 0",
            ));
        }
        if let Some(every) = self.server.ingest_schedule {
            if every < Duration::from_secs(60) {
                return Err(invalid(format!(
                    "INGEST_SCHEDULE={}s is shorter than a minute: a full crawl every few seconds would hammer Confluence",
                    every.as_secs()
                )));
            }
            if matches!(self.source, SourceSettings::None) {
                return Err(invalid("INGEST_SCHEDULE is set but no source is: set SOURCE_TYPE=confluence and the CONFLUENCE_* settings"));
            }
        }
        Ok(())
    }
}

pub(crate) fn invalid(message: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

#[cfg(test)]
mod tests;
