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

use docbrain_core::Pipeline;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use metrics::Metrics;
pub use queue::{Webhook, WebhookConfig};
pub use routes::{router, Response};
pub use schedule::{parse_interval, run_schedule};

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
    /// An event could not be made durable.
    #[error("cannot write the webhook journal {path}: {detail}")]
    JournalWrite {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
    /// A setting is wrong; the message names it.
    #[error("{0}")]
    Config(String),
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
