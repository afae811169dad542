//! The DocBrain Sync server: the Confluence webhook and search over the same pipeline as the CLI.
//!
//! - `POST /confluence/events`: verifies `X-Hub-Signature`, journals the event on disk, answers
//!   200 within milliseconds; workers ([`Webhook`]) then reconcile the page through the pipeline.
//! - `GET /healthz`, `GET /readyz` (journal and index reachable), `GET /metrics` (Prometheus),
//!   `GET /search?q=…&k=…&space=…`.
//! - An optional schedule ([`run_schedule`]) runs the full crawl inside the server.
//!
//! [`router`] is the whole HTTP surface as a function of the shared state, and [`serve`] runs
//! it on an already-bound listener until a shutdown future resolves, so tests bind port 0.

mod journal;
mod metrics;
mod queue;
mod routes;
mod schedule;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use docbrain_confluence::Sources;
use docbrain_core::{Pipeline, Settings};
use docbrain_index::Backends;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use metrics::Metrics;
pub use queue::Webhook;
pub use routes::{router, Response};
pub use schedule::run_schedule;

/// What every request shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The pipeline (search, and the index behind it).
    pub pipeline: Pipeline,
    /// The webhook service, when `CONFLUENCE_WEBHOOK_SECRET` is set.
    pub webhook: Option<Arc<Webhook>>,
    /// The metrics `GET /metrics` renders.
    pub metrics: Arc<Metrics>,
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
    /// Another process holds the journal.
    #[error("the webhook journal in {path} is in use by another server ({holder}): give each replica its own WEBHOOK_JOURNAL_DIR, or stop the other one")]
    JournalLocked {
        /// The folder.
        path: std::path::PathBuf,
        /// Who holds it, as it wrote itself down (`pid N on HOST`).
        holder: String,
    },
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
    let pipeline = Pipeline::from_settings(settings, &Sources, &Backends).await?;
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
        tokio::spawn(run_schedule(
            pipeline.clone(),
            settings.scope(),
            every,
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
    let state = AppState {
        pipeline,
        webhook,
        metrics,
    };
    serve(listener, state, shutdown).await;
    info!("stopped");
    Ok(())
}

/// How long in-flight requests may take to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listener` until `shutdown` resolves; then stops accepting, closes idle
/// connections and lets in-flight requests finish for up to [`SHUTDOWN_GRACE`].
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let state = Arc::new(state);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let state = state.clone();
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(router(&state, req).await) }
                });
                let connection = graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
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
