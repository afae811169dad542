//! The DocBrain Sync server: `GET /healthz`, `GET /readyz` and `GET /search` over the same
//! pipeline search as the CLI.
//!
//! The Confluence webhook (`POST /confluence/events`) is not in this build yet: the route
//! answers 404 and says so, and the server refuses to start when `CONFLUENCE_WEBHOOK_SECRET`
//! is set, rather than accept events it cannot process.
//!
//! [`router`] is the whole HTTP surface as a function of the shared state, and [`serve`] runs
//! it on an already-bound listener until a shutdown future resolves, so tests bind port 0.

mod routes;

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

pub use routes::{router, Response};

/// What every request shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The pipeline (search, and the index behind it).
    pub pipeline: Pipeline,
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
}
