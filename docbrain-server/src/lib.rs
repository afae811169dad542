//! The DocBrain Sync server: the Confluence webhook and search over the same pipeline as the CLI.
//!
//! - `POST /confluence/events`: verifies `X-Hub-Signature`, journals the event on disk, answers
//!   200 within milliseconds; workers ([`Webhook`]) then reconcile the page through the pipeline.
//! - `GET /healthz`, `GET /readyz` (journal and index reachable), `GET /metrics` (Prometheus),
//!   `GET /search?q=…&k=…&space=…`, `/mcp` (the [`mcp`] tools over Streamable HTTP).
//! - An optional schedule ([`run_schedule`]) runs the full crawl inside the server.
//! - [`settings`]: what both binaries read (variables, flags, logging) and
//!   [`Settings::pipeline`]; [`lockfile`]: the crawl lock both take.
//!
//! [`router`] is the whole HTTP surface as a function of the shared state, and [`serve`] runs
//! it on an already-bound listener until a shutdown future resolves, so tests bind port 0.

mod gate;
mod journal;
pub mod lockfile;
pub mod mcp;
mod metrics;
mod queue;
mod ready;
mod routes;
mod schedule;
pub mod settings;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use docbrain_core::Pipeline;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

pub use gate::SearchGate;
pub use mcp::McpEndpoint;
pub use metrics::{Metrics, PartsHealth};
pub use queue::Webhook;
pub use routes::{router, Response};
pub use schedule::run_schedule;
pub use settings::{SearchSettings, ServerSettings, Settings, WebhookSettings};

/// What every request shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The pipeline (search, and the index behind it).
    pub pipeline: Pipeline,
    /// The webhook service, when `CONFLUENCE_WEBHOOK_SECRET` is set.
    pub webhook: Option<Arc<Webhook>>,
    /// The metrics `GET /metrics` renders.
    pub metrics: Arc<Metrics>,
    /// Who may search, and whose permissions results obey.
    pub search: SearchGate,
    /// `/mcp`.
    pub mcp: McpEndpoint,
    /// `/readyz`'s cached verdict on the store and the embedder.
    readiness: Arc<ready::Readiness>,
}

impl AppState {
    /// The state of a server over `pipeline`: the webhook service if any, its metrics, and
    /// search (and MCP) behind `search`.
    pub fn new(
        pipeline: Pipeline,
        webhook: Option<Arc<Webhook>>,
        metrics: Arc<Metrics>,
        search: SearchGate,
    ) -> Self {
        let mcp = McpEndpoint::new(&pipeline, search.requires_key() || search.open());
        Self {
            pipeline,
            webhook,
            metrics,
            search,
            mcp,
            readiness: Arc::default(),
        }
    }
}

/// Errors of the server library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The journal folder or file cannot be opened.
    #[error("cannot open the webhook journal in {path}: check that the folder is writable, or set WEBHOOK_JOURNAL_DIR")]
    Journal {
        /// The folder.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Search would be open to anyone who can reach the port.
    #[error("SERVER_BIND={bind} exposes /search to the network without keys: set SEARCH_USER_KEYS (user=key) or SEARCH_API_KEYS (gateway keys; callers send Authorization: Bearer <key>), bind to 127.0.0.1, or set SEARCH_ALLOW_ANONYMOUS=true if this index is meant to be open")]
    SearchExposed {
        /// The address.
        bind: String,
    },
    /// Another process holds the journal.
    #[error("the webhook journal in {path} is in use by another server ({holder}): give each replica its own WEBHOOK_JOURNAL_DIR, or stop the other one")]
    JournalLocked {
        /// The folder.
        path: std::path::PathBuf,
        /// Who holds it, as it wrote itself down (`pid N on HOST`).
        holder: String,
    },
    /// The index could not be read to find the pages an event reaches.
    #[error("cannot read the index to find the pages an event reaches: {0}")]
    Index(String),
    /// An event could not be made durable.
    #[error("cannot write the webhook journal {path}: {detail}")]
    JournalWrite {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
}

/// Builds the pipeline `settings` describe, starts the webhook (when its secret is set) and the
/// in-server crawl (when scheduled), and serves on `SERVER_BIND:SERVER_PORT` until `shutdown`
/// resolves. `on_listening` learns the bound address (port 0 picks a free one).
///
/// # Errors
/// A part that cannot be built, a journal that cannot be opened, an address that cannot be
/// bound; each says what to fix.
pub async fn run(
    settings: &Settings,
    on_listening: impl FnOnce(std::net::SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<(), docbrain_core::Error> {
    use docbrain_core::ErrorKind;
    let search = SearchGate::new(&settings.search, &settings.server.bind)
        .map_err(|e| docbrain_core::Error::wrap(ErrorKind::InvalidConfig, e))?;
    log_search_gate(&search, settings);
    let pipeline = settings.pipeline().await?;
    if pipeline.fetcher().health().is_some() {
        // One cheap call, so wrong credentials or a mistyped address show at start (in the
        // background: an unreachable Confluence must not hold up search or the webhook).
        let fetcher = pipeline.fetcher().clone();
        tokio::spawn(async move {
            match fetcher.check().await {
                Ok(()) => info!("Confluence answered and accepted the credentials"),
                Err(e) => error!("Confluence check failed: {e}; reconciles and crawls fail until this is fixed (/readyz says so)"),
            }
        });
    }
    let metrics = Arc::new(Metrics::default());
    let webhook = match &settings.webhook {
        Some(config) => {
            if config.allow_url_token {
                warn!("CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN=true: unsigned deliveries with ?token=<secret> are accepted (weaker: the secret travels in the URL and may be logged by proxies)");
            }
            let w = Webhook::start(config.clone(), &pipeline, metrics.clone())
                .map_err(|e| docbrain_core::Error::wrap(ErrorKind::InvalidConfig, e))?;
            info!(journal = %config.journal_dir.display(), "webhook enabled at POST /confluence/events");
            Some(w)
        }
        None => {
            info!("webhook disabled: CONFLUENCE_WEBHOOK_SECRET is not set");
            None
        }
    };
    if let Some(every) = settings.server.ingest_schedule {
        metrics.first_crawl_pending();
        tokio::spawn(run_schedule(
            pipeline.clone(),
            settings.scope(),
            every,
            settings.data_dir.clone(),
            metrics.clone(),
        ));
    }
    let (bind, port) = (&settings.server.bind, settings.server.port);
    let addr: std::net::SocketAddr = format!("{bind}:{port}").parse().map_err(|_| {
        docbrain_core::Error::new(
            ErrorKind::InvalidConfig,
            format!("SERVER_BIND={bind} and SERVER_PORT={port} do not form an address"),
        )
    })?;
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        docbrain_core::Error::new(
            ErrorKind::InvalidConfig,
            format!("cannot listen on {addr} ({e}): set SERVER_PORT to a free port"),
        )
    })?;
    let local = listener.local_addr().unwrap_or(addr);
    info!(addr = %local, "listening");
    on_listening(local);
    let state = AppState::new(pipeline, webhook, metrics, search);
    serve(listener, state, settings.server.clone(), shutdown).await;
    info!("stopped");
    Ok(())
}

/// Says at start-up who may search and what they see.
fn log_search_gate(gate: &SearchGate, settings: &Settings) {
    match (gate.requires_key(), settings.search.allow_anonymous) {
        (true, open) => info!(
            gateway_keys = settings.search.api_keys.len(),
            user_keys = settings.search.user_keys.len(),
            anonymous_without_key = open,
            "search requires an API key (Authorization: Bearer): user keys search as their user, gateway keys as the user `as` names"
        ),
        (false, true) => warn!("SEARCH_ALLOW_ANONYMOUS=true: /search answers anyone who can reach the port, without a key"),
        (false, false) => info!(bind = %settings.server.bind, "search is open without a key on this loopback address, to requests for localhost only, as an anonymous user (`as` needs a key)"),
    }
    if gate.filters() {
        info!(
            cache_ttl_secs = settings.pipeline.reader_ttl.as_secs(),
            "search results obey Confluence permissions: callers see what the user named by `as` may read, else only pages open to anonymous users"
        );
    } else {
        warn!("SEARCH_PERMISSIONS=off: every caller sees every indexed page, whatever Confluence restricts");
    }
    if gate.filters() && matches!(settings.source, docbrain_confluence::SourceSettings::None) {
        info!("no Confluence source is configured: `as` users are known without their groups, so group-restricted pages stay hidden from them");
    }
}

/// How long in-flight requests may take to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `shutdown` resolves; then stops accepting, closes idle
/// connections and lets in-flight requests finish for up to [`SHUTDOWN_GRACE`].
///
/// A connection must send each request's headers within `limits.header_timeout` of its start
/// or of its previous answer (so idle keep-alive connections close too); beyond
/// `limits.max_connections` open at once, a new connection is answered 503 and closed. Accept
/// errors (out of file descriptors) back off instead of spinning, and are logged at most once
/// every few seconds.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let state = Arc::new(state);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => {
                        accept_errors.succeeded();
                        conn
                    }
                    Err(e) => {
                        state.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                        let pause = accept_errors.failed(&e);
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(pause) => continue,
                        }
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    state.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(refuse(stream));
                    continue;
                };
                let metrics = state.metrics.clone();
                let state = state.clone();
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(router(&state, req).await) }
                });
                let connection = graceful.watch(
                    http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .serve_connection(TokioIo::new(stream), service),
                );
                metrics.open_connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    metrics.open_connections.fetch_sub(1, Ordering::Relaxed);
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    info!("shutting down: no new connections");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("grace period over; requests still in flight were cut");
    }
    if let Some(webhook) = &state.webhook {
        webhook.shutdown(SHUTDOWN_GRACE).await;
    }
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"too many connections: try again shortly"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Backoff and a rate-limited warning for failed accepts (such as running out of file
/// descriptors), so the loop neither spins nor floods the log.
#[derive(Debug, Default)]
struct AcceptErrors {
    pause: Duration,
    last_warned: Option<Instant>,
    unreported: u64,
}

impl AcceptErrors {
    const FIRST_PAUSE: Duration = Duration::from_millis(5);
    const LONGEST_PAUSE: Duration = Duration::from_secs(1);
    const WARN_EVERY: Duration = Duration::from_secs(5);

    /// Records a failure; returns how long to wait before accepting again.
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.pause = (self.pause * 2).clamp(Self::FIRST_PAUSE, Self::LONGEST_PAUSE);
        self.unreported += 1;
        if self
            .last_warned
            .is_none_or(|at| at.elapsed() >= Self::WARN_EVERY)
        {
            warn!(error = %error, failures = self.unreported, pause_ms = self.pause.as_millis() as u64, "accept failed (out of file descriptors?); backing off");
            self.last_warned = Some(Instant::now());
            self.unreported = 0;
        }
        self.pause
    }

    fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }
}

#[cfg(test)]
mod accept_tests {
    use super::*;

    #[test]
    fn failed_accepts_back_off_and_warn_once_per_interval() {
        let mut errors = AcceptErrors::default();
        let e = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<Duration> = (0..12).map(|_| errors.failed(&e)).collect();
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert_eq!(pauses[11], Duration::from_secs(1), "{pauses:?}");
        // One warning went out; the other eleven wait for the next interval.
        assert_eq!(errors.unreported, 11);
        errors.succeeded();
        assert_eq!(errors.failed(&e), Duration::from_millis(5));
    }
}
