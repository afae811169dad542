//! Settings: everything a deployment configures, as plain data, read from the names DocBrain
//! users know.
//!
//! Each part owns its settings and their defaults, next to the code that uses them:
//! [`SourceSettings`] in `docbrain-confluence`, [`StoreSettings`] and [`EmbedderSettings`] in
//! `docbrain-index`, [`PipelineOptions`] in `docbrain-core`; the server's own
//! ([`WebhookSettings`], [`SearchSettings`], [`ServerSettings`]) are here. [`Settings`] gathers
//! them for the front doors, this crate's binary and the `docbrain` CLI, which read the same
//! variables and flags ([`flags`]). They live here, not in the core, so that adding a part never
//! means editing the core and a library user of the pipeline never compiles a flag parser.
//!
//! [`Settings::from_env`] reads the variables (`CONFLUENCE_BASE_URL`, `EMBED_PROVIDER`,
//! `OPENSEARCH_URL`, …) and validates them once, with messages that name the variable to fix;
//! code can build a [`Settings`] directly too (start from [`Settings::default`]).
//! [`Settings::pipeline`] turns it into a pipeline. Secrets are [`Secret`]s, so printing
//! settings never shows them. [`VARS`] lists every variable.

mod duration;
pub mod flags;
mod pipeline;
mod vars;

use std::path::PathBuf;
use std::time::Duration;

use docbrain_confluence::SourceSettings;
use docbrain_core::{Error, ErrorKind, MarkdownChunker, PipelineOptions, Result, Secret};
use docbrain_index::{EmbedderSettings, StoreSettings};

pub use duration::parse_duration;
pub use vars::{Group, Var, VARS};

/// What a deployment configures: source, index, embedder, chunk budget, crawl, webhook, server.
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
    /// `CHUNK_MAX_TOKENS`: the chunk budget in model tokens, breadcrumb included (cut to what
    /// the embedder reads).
    pub chunk_max_tokens: usize,
    /// What a crawl may do (`MAX_DELETE_FRACTION`, `DELETE_GUARD_FLOOR`,
    /// `CONFLUENCE_FETCH_CONCURRENCY`) and how long a user's groups are trusted
    /// (`PERMISSION_CACHE_TTL`).
    pub pipeline: PipelineOptions,
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
            chunk_max_tokens: MarkdownChunker::DEFAULT_MAX_TOKENS,
            pipeline: PipelineOptions::default(),
            webhook: None,
            server: ServerSettings::default(),
            search: SearchSettings::default(),
            log_level: None,
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
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            gateway_users: Vec::new(),
            user_keys: Vec::new(),
            allow_anonymous: false,
            permissions: true,
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
        if !(0.0..=1.0).contains(&self.pipeline.max_delete_fraction) {
            return Err(invalid(format!(
                "MAX_DELETE_FRACTION={} must be between 0 and 1",
                self.pipeline.max_delete_fraction
            )));
        }
        if self.pipeline.fetch_concurrency == 0 {
            return Err(invalid("CONFLUENCE_FETCH_CONCURRENCY must be at least 1"));
        }
        if self.chunk_max_tokens < 65 {
            return Err(invalid(format!(
                "CHUNK_MAX_TOKENS={} is too small: use at least 65 (chunks overlap by 32 tokens)",
                self.chunk_max_tokens
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
