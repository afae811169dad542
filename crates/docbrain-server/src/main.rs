//! `docbrain-server`: wiring only; see the `docbrain_server` library for the routes.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use docbrain_cli::{setup, Common};
use docbrain_core::{Pipeline, Secret};
use docbrain_server::{serve, AppState};
use tokio::net::TcpListener;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// The same caching allocator as the `docbrain` binary (the local model needs it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value.trim()))
}

/// Serves health, readiness and search over the DocBrain Sync index.
#[derive(Debug, Parser)]
#[command(name = "docbrain-server", version, about)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Address to listen on.
    #[arg(long, env = "SERVER_BIND", default_value = "0.0.0.0")]
    bind: String,
    /// Port to listen on.
    #[arg(long, env = "SERVER_PORT", default_value_t = 3000)]
    port: u16,
    /// Shared secret of the Confluence webhook.
    #[arg(long, env = "CONFLUENCE_WEBHOOK_SECRET", hide_env_values = true, value_parser = parse_secret)]
    webhook_secret: Option<Secret>,
    /// Confluence base URL.
    #[arg(long, env = "CONFLUENCE_BASE_URL")]
    confluence_base_url: Option<String>,
    /// Confluence API token.
    #[arg(long, env = "CONFLUENCE_API_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    confluence_api_token: Option<Secret>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    match &args.webhook_secret {
        Some(secret) if !secret.is_empty() => {
            let has_url = args
                .confluence_base_url
                .as_deref()
                .is_some_and(|u| !u.is_empty());
            let has_token = args
                .confluence_api_token
                .as_ref()
                .is_some_and(|t| !t.is_empty());
            if !has_url || !has_token {
                bail!("CONFLUENCE_WEBHOOK_SECRET set but missing CONFLUENCE_BASE_URL/API_TOKEN");
            }
            bail!("the Confluence webhook is not available in this build yet: unset CONFLUENCE_WEBHOOK_SECRET to serve search only");
        }
        _ => info!("webhook disabled: CONFLUENCE_WEBHOOK_SECRET is not set"),
    }
    let store = setup::store(&args.common).await?;
    let embedder = setup::embedder(&args.common).await?;
    let pipeline = Pipeline::searcher(embedder, store).await?;
    let addr: SocketAddr = format!("{}:{}", args.bind, args.port)
        .parse()
        .with_context(|| {
            format!(
                "SERVER_BIND={} and SERVER_PORT={} do not form an address",
                args.bind, args.port
            )
        })?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}: set SERVER_PORT to a free port"))?;
    info!(%addr, "listening");
    serve(listener, AppState { pipeline }, shutdown_signal()).await;
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = args
        .common
        .log_level
        .clone()
        .unwrap_or_else(|| "info".into());
    let Ok(filter) = EnvFilter::try_new(&spec) else {
        eprintln!("error: LOG_LEVEL={spec} is not a valid log filter: use error, warn, info, debug or trace");
        return ExitCode::FAILURE;
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
