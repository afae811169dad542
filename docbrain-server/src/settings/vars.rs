//! The variables, and reading [`Settings`] from them.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use docbrain_confluence::{
    ApiVersion, AttachmentSettings, ConfluenceSettings, LocalSettings, SourceSettings,
};
use docbrain_core::{Result, Secret};
use docbrain_index::{EmbedderSettings, OpenSearchSettings, Provider, StoreSettings};

use super::{invalid, parse_duration, Settings, WebhookSettings};

/// Which part of the settings a variable belongs to (front doors offer the groups they use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Index, embedder and logging: every command.
    Common,
    /// The source and what a crawl may do.
    Sync,
    /// The server and its webhook.
    Server,
}

/// One setting: its environment name, its flag (none for secrets, which never belong on a
/// command line, and for aliases), and a line of help.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// The environment variable.
    pub name: &'static str,
    /// The long flag, without `--`; `None` for secrets and aliases.
    pub flag: Option<&'static str>,
    /// What it sets, with its default.
    pub help: &'static str,
    /// Where it belongs.
    pub group: Group,
}

const fn var(name: &'static str, flag: &'static str, group: Group, help: &'static str) -> Var {
    Var {
        name,
        flag: Some(flag),
        help,
        group,
    }
}

const fn env_only(name: &'static str, group: Group, help: &'static str) -> Var {
    Var {
        name,
        flag: None,
        help,
        group,
    }
}

use Group::{Common, Server, Sync};

/// Every setting [`Settings::from_lookup`] reads.
#[rustfmt::skip]
pub const VARS: &[Var] = &[
    var("DOCBRAIN_DATA_DIR", "data-dir", Common, "Folder of the embedded index [default: ./docbrain-data]"),
    var("INDEX_STORE", "index-store", Common, "Where the index lives: embedded or opensearch [default: embedded]"),
    var("OPENSEARCH_URL", "opensearch-url", Common, "OpenSearch cluster URL [default: http://localhost:9200]"),
    var("OPENSEARCH_INDEX", "opensearch-index", Common, "OpenSearch chunk index; page records go to <index>-pages [default: docbrain-chunks]"),
    var("OPENSEARCH_USERNAME", "opensearch-username", Common, "OpenSearch user (basic auth)"),
    env_only("OPENSEARCH_PASSWORD", Common, "OpenSearch password"),
    var("OPENSEARCH_TLS_VERIFY", "opensearch-tls-verify", Common, "Verify the OpenSearch certificate [default: true]"),
    var("EMBED_PROVIDER", "embed-provider", Common, "Embedding provider: local, openai or ollama [default: local]"),
    var("EMBED_MODEL_ID", "embed-model-id", Common, "Embedding model [default: all-MiniLM-L6-v2, text-embedding-3-small, nomic-embed-text]"),
    var("MODEL_DIR", "model-dir", Common, "Folder of the local model's weights [default: ~/.cache/docbrain/models/all-MiniLM-L6-v2]"),
    env_only("OPENAI_API_KEY", Common, "API key of the OpenAI-compatible service"),
    var("OPENAI_BASE_URL", "openai-base-url", Common, "Base URL of the OpenAI-compatible service [default: https://api.openai.com/v1]"),
    var("EMBED_DIMENSIONS", "embed-dimensions", Common, "Vector size to ask a text-embedding-3 model for"),
    var("OLLAMA_BASE_URL", "ollama-base-url", Common, "Base URL of the Ollama server [default: http://localhost:11434]"),
    var("OLLAMA_TLS_VERIFY", "ollama-tls-verify", Common, "Verify the Ollama certificate [default: true]"),
    var("EMBED_BATCH_SIZE", "embed-batch-size", Common, "Texts per remote embedding request [default: 64 openai, 16 ollama]"),
    var("EMBED_CONCURRENCY", "embed-concurrency", Common, "Remote embedding requests in flight [default: 4 openai, 2 ollama]"),
    var("EMBED_TIMEOUT_SECS", "embed-timeout-secs", Common, "Timeout of one remote embedding request, in seconds [default: 60]"),
    var("SEARCH_PERMISSIONS", "search-permissions", Common, "Filter search results by Confluence permissions: on or off [default: on]"),
    var("PERMISSION_CACHE_TTL", "permission-cache-ttl", Common, "How long a user's groups are trusted once looked up, e.g. 30s or 5m [default: 5m]"),
    var("LOG_LEVEL", "log-level", Common, "Log filter, e.g. info or docbrain_core=debug [default: info]"),
    var("SOURCE_TYPE", "source", Sync, "Where pages come from: local or confluence (INGEST_SOURCES is read too)"),
    env_only("INGEST_SOURCES", Sync, "DocBrain's comma-separated sources; one source per run is supported"),
    var("LOCAL_DOCS_PATH", "docs-path", Sync, "Folder of pages for the local source"),
    var("LOCAL_SPACE_KEY", "space-key", Sync, "Space key of the local source's pages [default: LOCAL]"),
    var("CONFLUENCE_BASE_URL", "confluence-base-url", Sync, "Cloud: https://<site>.atlassian.net/wiki; Data Center: the site address"),
    var("CONFLUENCE_API_VERSION", "confluence-api-version", Sync, "v2 (Cloud) or v1 (Data Center) [default: v2]"),
    var("CONFLUENCE_USER_EMAIL", "confluence-user-email", Sync, "The Cloud account's email (v2)"),
    env_only("CONFLUENCE_API_TOKEN", Sync, "A Cloud API token (v2) or a Data Center personal access token (v1)"),
    var("CONFLUENCE_SPACE_KEYS", "confluence-space-keys", Sync, "Comma-separated space keys to crawl [default: every visible space]"),
    var("CONFLUENCE_PAGE_LIMIT", "confluence-page-limit", Sync, "Index at most this many pages per crawl [default: 0, unlimited]"),
    var("CONFLUENCE_TLS_VERIFY", "confluence-tls-verify", Sync, "Verify Confluence's certificate [default: true]"),
    var("CONFLUENCE_FETCH_CONCURRENCY", "confluence-fetch-concurrency", Sync, "Pages fetched and indexed at once during a crawl [default: 4]"),
    var("CONFLUENCE_ANONYMOUS_ACCESS", "confluence-anonymous-access", Sync, "The site lets anonymous users view spaces that grant it; off, such grants admit nobody [default: false]"),
    var("ATTACHMENTS", "attachments", Sync, "Index the text of attachments (PDF, DOCX, PPTX, XLSX, text) as hits under their page: on or off [default: on]"),
    var("ATTACHMENT_MAX_BYTES", "attachment-max-bytes", Sync, "Larger attachments are skipped, never downloaded [default: 10485760]"),
    var("ATTACHMENT_MAX_CHARS", "attachment-max-chars", Sync, "Text kept of one attachment, in characters [default: 200000]"),
    var("ATTACHMENT_TIMEOUT", "attachment-timeout", Sync, "Time one attachment's extraction may take, e.g. 30s [default: 30s]"),
    var("ATTACHMENT_MEMORY_MB", "attachment-memory-mb", Sync, "Memory one attachment's extraction may use, in MiB [default: 1024]"),
    var("COMMENTS", "comments", Sync, "Index Confluence comments (footer, inline, replies) as hits under their page: on or off [default: on]"),
    var("CHUNK_MAX_TOKENS", "chunk-tokens", Sync, "Chunk budget in model tokens, breadcrumb included [default: 254]"),
    var("MAX_DELETE_FRACTION", "max-delete-fraction", Sync, "Refuse to delete more than this share (0-1) of a space in one run [default: 0.5]"),
    var("DELETE_GUARD_FLOOR", "delete-guard-floor", Sync, "Deleting up to this many pages of a space always passes the guard [default: 2]"),
    var("SERVER_BIND", "bind", Server, "Address to listen on [default: 0.0.0.0]"),
    var("SERVER_PORT", "port", Server, "Port to listen on; 0 picks a free one [default: 3000]"),
    var("SERVER_HEADER_TIMEOUT", "header-timeout", Server, "Time a connection has to send a request's headers, idle keep-alive included [default: 10s]"),
    var("SERVER_MAX_CONNECTIONS", "max-connections", Server, "Connections served at once; more get 503 [default: 256]"),
    env_only("CONFLUENCE_WEBHOOK_SECRET", Server, "Shared secret of the Confluence webhook; the webhook is off without it"),
    var("CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN", "webhook-allow-url-token", Server, "Also accept ?token=<secret> on unsigned deliveries (weaker) [default: false]"),
    var("WEBHOOK_MAX_BODY_BYTES", "webhook-max-body-bytes", Server, "Largest webhook body accepted [default: 1048576]"),
    var("WEBHOOK_BODY_TIMEOUT", "webhook-body-timeout", Server, "Time a webhook body has to arrive whole; later gets 408 [default: 30s]"),
    var("WEBHOOK_JOURNAL_DIR", "webhook-journal-dir", Server, "Folder of the webhook journal [default: DOCBRAIN_DATA_DIR/journal]"),
    var("WEBHOOK_WORKERS", "webhook-workers", Server, "Pages reconciled at once [default: 2]"),
    var("WEBHOOK_DEBOUNCE_MS", "webhook-debounce-ms", Server, "Window after a page's reconcile in which its further events collapse into one more, in ms [default: 1000]"),
    var("WEBHOOK_MAX_ATTEMPTS", "webhook-max-attempts", Server, "Failed reconciles of a page before its events are parked [default: 10]"),
    var("WEBHOOK_RETRY_MS", "webhook-retry-ms", Server, "First wait after a failed reconcile, in ms; it doubles [default: 2000]"),
    env_only("SEARCH_API_KEYS", Server, "Comma-separated gateway keys: their holder may search as any user (as=<user>); required on a non-loopback address unless SEARCH_USER_KEYS is set"),
    env_only("SEARCH_USER_KEYS", Server, "Comma-separated user=key pairs: each key searches as that one user only"),
    var("SEARCH_GATEWAY_USERS", "search-gateway-users", Server, "Comma-separated users gateway keys may search as [default: anyone]"),
    var("SEARCH_ALLOW_ANONYMOUS", "search-allow-anonymous", Server, "Serve /search without keys on any address (an open index) [default: false]"),
    var("INGEST_SCHEDULE", "ingest-schedule", Server, "Run the full crawl inside the server at this interval, e.g. 6h"),
];

/// Values by name: trimmed, with empty values counted as unset.
pub(super) struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid(format!("{name}={v:?} is not {what}")))
            })
            .transpose()
    }

    fn number<T: FromStr>(&self, name: &str, default: T) -> Result<T> {
        Ok(self.parse(name, "a whole number")?.unwrap_or(default))
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(format!("{name}={other:?} is not true or false"))),
        }
    }

    fn millis(&self, name: &str, default: Duration) -> Result<Duration> {
        Ok(self
            .parse::<u64>(name, "a number of milliseconds")?
            .map_or(default, Duration::from_millis))
    }

    fn duration(&self, name: &str, default: Duration) -> Result<Duration> {
        self.get(name)
            .map_or(Ok(default), |text| parse_duration(name, &text))
    }

    /// A comma-separated list, items trimmed, empty items dropped.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }
}

/// The levels a `LOG_LEVEL` directive may name.
const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Checks a `LOG_LEVEL` filter: comma-separated directives, each a level (`info`) or a target
/// with its level (`docbrain_core=debug`). A bare word that is no level would select a target
/// of that name and silence everything else, so it is refused.
fn log_filter(spec: &str) -> Result<String> {
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!(
                "LOG_LEVEL={spec} is not a log filter: use error, warn, info, debug or trace, or a target with a level such as docbrain_core=debug"
            )));
        }
    }
    Ok(spec.to_owned())
}

/// Values of the shipped examples (`.env.example`) that must be replaced before use.
fn placeholder(name: &str, value: &str) -> Result<()> {
    let lower = value.to_ascii_lowercase();
    if ["change-me", "your-api-token", "your-search-key"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return Err(invalid(format!(
            "{name} still holds the example's placeholder: set it to a real value (for a secret or key, e.g. `openssl rand -hex 32`)"
        )));
    }
    Ok(())
}

pub(super) fn read(r: &Reader<'_>) -> Result<Settings> {
    for name in [
        "CONFLUENCE_WEBHOOK_SECRET",
        "CONFLUENCE_API_TOKEN",
        "SEARCH_API_KEYS",
        "SEARCH_USER_KEYS",
        "OPENAI_API_KEY",
        "OPENSEARCH_PASSWORD",
    ] {
        if let Some(value) = r.get(name) {
            placeholder(name, &value)?;
        }
    }
    let d = Settings::default();
    let data_dir = r.get("DOCBRAIN_DATA_DIR").map_or(d.data_dir, PathBuf::from);
    let mut server = d.server;
    server.bind = r.get("SERVER_BIND").unwrap_or(server.bind);
    server.port = r.number("SERVER_PORT", server.port)?;
    server.header_timeout = r.duration("SERVER_HEADER_TIMEOUT", server.header_timeout)?;
    server.max_connections = r.number("SERVER_MAX_CONNECTIONS", server.max_connections)?;
    server.ingest_schedule = r
        .get("INGEST_SCHEDULE")
        .map(|t| {
            parse_duration("INGEST_SCHEDULE", &t).map_err(|e| {
                invalid(format!(
                    "{e} (for cron expressions use a cron runner or the Helm chart's CronJob)"
                ))
            })
        })
        .transpose()?;
    let webhook = r
        .secret("CONFLUENCE_WEBHOOK_SECRET")
        .map(|secret| webhook(r, secret, data_dir.join("journal")))
        .transpose()?;
    let mut pipeline = d.pipeline;
    pipeline.max_delete_fraction = r
        .parse("MAX_DELETE_FRACTION", "a number between 0 and 1")?
        .unwrap_or(pipeline.max_delete_fraction);
    pipeline.delete_floor = r.number("DELETE_GUARD_FLOOR", pipeline.delete_floor)?;
    pipeline.fetch_concurrency =
        r.number("CONFLUENCE_FETCH_CONCURRENCY", pipeline.fetch_concurrency)?;
    pipeline.reader_ttl = r.duration("PERMISSION_CACHE_TTL", pipeline.reader_ttl)?;
    let mut search = d.search;
    search.api_keys = r
        .list("SEARCH_API_KEYS")
        .into_iter()
        .map(Secret::new)
        .collect();
    search.user_keys = r
        .list("SEARCH_USER_KEYS")
        .into_iter()
        .map(|entry| match entry.split_once('=') {
            Some((user, key)) => Ok((user.trim().to_owned(), Secret::new(key.trim()))),
            None => Err(invalid(
                "SEARCH_USER_KEYS takes user=key pairs, comma-separated (an entry has no '=')",
            )),
        })
        .collect::<Result<_>>()?;
    search.gateway_users = r.list("SEARCH_GATEWAY_USERS");
    search.allow_anonymous = r.flag("SEARCH_ALLOW_ANONYMOUS", false)?;
    search.permissions = r.flag("SEARCH_PERMISSIONS", true)?;
    let mut source = source(r)?;
    if let SourceSettings::Confluence(c) = &mut source {
        c.read_permissions = search.permissions;
    }
    Ok(Settings {
        source,
        store: store(r)?,
        data_dir,
        embedder: embedder(r)?,
        chunk_max_tokens: r.number("CHUNK_MAX_TOKENS", d.chunk_max_tokens)?,
        pipeline,
        webhook,
        server,
        search,
        log_level: r.get("LOG_LEVEL").map(|l| log_filter(&l)).transpose()?,
    })
}

fn source(r: &Reader<'_>) -> Result<SourceSettings> {
    let named = match r.get("SOURCE_TYPE") {
        Some(s) => Some(s),
        None => match r.get("INGEST_SOURCES") {
            None => None,
            Some(list) => {
                let names: Vec<&str> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                match names.as_slice() {
                    [] => None,
                    [one] => Some((*one).to_owned()),
                    _ => {
                        return Err(invalid(format!(
                            "INGEST_SOURCES={list} names several sources: run one ingest per source"
                        )))
                    }
                }
            }
        },
    };
    // Unnamed, the source is the one whose settings are there: a folder, or a site and its
    // token (a base URL alone, as a search-only deployment may carry, names no source).
    let folder = r.get("LOCAL_DOCS_PATH").is_some();
    let site = r.get("CONFLUENCE_BASE_URL").is_some() && r.get("CONFLUENCE_API_TOKEN").is_some();
    let kind = match named {
        Some(n) => Some(n.to_ascii_lowercase()),
        None if folder && site => {
            return Err(invalid(
                "LOCAL_DOCS_PATH and CONFLUENCE_BASE_URL/CONFLUENCE_API_TOKEN are both set: say which source to use with SOURCE_TYPE=local or SOURCE_TYPE=confluence (or unset the other)",
            ))
        }
        None if folder => Some("local".into()),
        // The webhook's secret names Confluence too: its settings are then checked as such.
        None if site || r.get("CONFLUENCE_WEBHOOK_SECRET").is_some() => Some("confluence".into()),
        None => None,
    };
    match kind.as_deref() {
        None => Ok(SourceSettings::None),
        Some("local") => {
            let path = r.get("LOCAL_DOCS_PATH").ok_or_else(|| {
                invalid("LOCAL_DOCS_PATH is not set: point it at a folder of pages, e.g. LOCAL_DOCS_PATH=examples/sample-space")
            })?;
            Ok(SourceSettings::Local(LocalSettings {
                path: PathBuf::from(path),
                space_key: r.get("LOCAL_SPACE_KEY").unwrap_or_else(|| "LOCAL".into()),
                attachments: attachments(r)?,
            }))
        }
        Some("confluence") => Ok(SourceSettings::Confluence(confluence(r)?)),
        Some(other) => Err(invalid(format!(
            "SOURCE_TYPE={other} is not a known source: use local or confluence"
        ))),
    }
}

fn attachments(r: &Reader<'_>) -> Result<AttachmentSettings> {
    let mut a = AttachmentSettings::default();
    a.enabled = r.flag("ATTACHMENTS", a.enabled)?;
    a.max_bytes = r.number("ATTACHMENT_MAX_BYTES", a.max_bytes)?;
    a.max_chars = r.number("ATTACHMENT_MAX_CHARS", a.max_chars)?;
    a.timeout = r.duration("ATTACHMENT_TIMEOUT", a.timeout)?;
    a.memory_mb = r.number("ATTACHMENT_MEMORY_MB", a.memory_mb)?;
    Ok(a)
}

fn confluence(r: &Reader<'_>) -> Result<ConfluenceSettings> {
    let version = r
        .get("CONFLUENCE_API_VERSION")
        .map_or(Ok(ApiVersion::default()), |v| v.parse())?;
    let mut c = ConfluenceSettings::new(
        r.get("CONFLUENCE_BASE_URL").unwrap_or_default(),
        version,
        r.secret("CONFLUENCE_API_TOKEN")
            .unwrap_or_else(|| Secret::new("")),
    );
    c.email = r.get("CONFLUENCE_USER_EMAIL");
    c.space_keys = r.list("CONFLUENCE_SPACE_KEYS");
    c.page_limit = Some(r.number("CONFLUENCE_PAGE_LIMIT", 0usize)?).filter(|&n| n > 0);
    c.tls_verify = r.flag("CONFLUENCE_TLS_VERIFY", c.tls_verify)?;
    c.anonymous_access = r.flag("CONFLUENCE_ANONYMOUS_ACCESS", c.anonymous_access)?;
    c.comments = r.flag("COMMENTS", c.comments)?;
    c.attachments = attachments(r)?;
    Ok(c)
}

fn store(r: &Reader<'_>) -> Result<StoreSettings> {
    match r
        .get("INDEX_STORE")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("embedded") => Ok(StoreSettings::Embedded),
        Some("opensearch") => {
            let d = OpenSearchSettings::default();
            Ok(StoreSettings::OpenSearch(OpenSearchSettings {
                url: r.get("OPENSEARCH_URL").unwrap_or(d.url),
                index: r.get("OPENSEARCH_INDEX").unwrap_or(d.index),
                username: r.get("OPENSEARCH_USERNAME"),
                password: r.secret("OPENSEARCH_PASSWORD"),
                tls_verify: r.flag("OPENSEARCH_TLS_VERIFY", d.tls_verify)?,
            }))
        }
        Some(other) => Err(invalid(format!(
            "INDEX_STORE={other} is not a store: use embedded or opensearch"
        ))),
    }
}

fn embedder(r: &Reader<'_>) -> Result<EmbedderSettings> {
    let d = EmbedderSettings::default();
    let provider = match r
        .get("EMBED_PROVIDER")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("local") => Provider::Local,
        Some("openai") => Provider::OpenAi,
        Some("ollama") => Provider::Ollama,
        Some(other) => {
            return Err(invalid(format!(
                "EMBED_PROVIDER={other} is not a provider: use local, openai or ollama"
            )))
        }
    };
    Ok(EmbedderSettings {
        provider,
        model_id: r.get("EMBED_MODEL_ID"),
        model_dir: r.get("MODEL_DIR").map(PathBuf::from),
        openai_api_key: r.secret("OPENAI_API_KEY"),
        openai_base_url: r.get("OPENAI_BASE_URL").unwrap_or(d.openai_base_url),
        dimensions: r.parse("EMBED_DIMENSIONS", "a whole number")?,
        ollama_base_url: r.get("OLLAMA_BASE_URL").unwrap_or(d.ollama_base_url),
        ollama_tls_verify: r.flag("OLLAMA_TLS_VERIFY", d.ollama_tls_verify)?,
        batch_size: r.parse("EMBED_BATCH_SIZE", "a whole number")?,
        concurrency: r.parse("EMBED_CONCURRENCY", "a whole number")?,
        timeout: Duration::from_secs(r.number("EMBED_TIMEOUT_SECS", d.timeout.as_secs())?.max(1)),
    })
}

fn webhook(r: &Reader<'_>, secret: Secret, journal: PathBuf) -> Result<WebhookSettings> {
    let mut w = WebhookSettings::new(
        secret,
        r.get("WEBHOOK_JOURNAL_DIR").map_or(journal, PathBuf::from),
    );
    w.allow_url_token = r.flag("CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN", false)?;
    w.max_body_bytes = r.number("WEBHOOK_MAX_BODY_BYTES", w.max_body_bytes)?;
    w.body_timeout = r.duration("WEBHOOK_BODY_TIMEOUT", w.body_timeout)?;
    w.workers = r.number("WEBHOOK_WORKERS", w.workers)?;
    w.debounce = r.millis("WEBHOOK_DEBOUNCE_MS", w.debounce)?;
    w.max_attempts = r.number("WEBHOOK_MAX_ATTEMPTS", w.max_attempts)?;
    w.retry_initial = r
        .millis("WEBHOOK_RETRY_MS", w.retry_initial)?
        .max(Duration::from_millis(1));
    Ok(w)
}
