//! `docbrain-server`: wiring only; see the `docbrain_server` library for the routes.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use docbrain_cli::{setup, Common, ConfluenceArgs};
use docbrain_core::{MarkdownChunker, Pipeline, PipelineOptions, Scope, Secret};
use docbrain_server::{
    parse_interval, run_schedule, serve, AppState, Metrics, Webhook, WebhookConfig,
};
use tokio::net::TcpListener;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// The same caching allocator as the `docbrain` binary (the local model needs it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_secret(value: &str) -> Result<Secret, String> {
    Ok(Secret::new(value.trim()))
}

/// The Confluence webhook receiver and search server of DocBrain Sync.
#[derive(Debug, Parser)]
#[command(name = "docbrain-server", version, about)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    confluence: ConfluenceArgs,
    /// Address to listen on.
    #[arg(long, env = "SERVER_BIND", default_value = "0.0.0.0")]
    bind: String,
    /// Port to listen on.
    #[arg(long, env = "SERVER_PORT", default_value_t = 3000)]
    port: u16,
    /// Shared secret of the Confluence webhook; the webhook is disabled without it.
    #[arg(long, env = "CONFLUENCE_WEBHOOK_SECRET", hide_env_values = true, value_parser = parse_secret)]
    webhook_secret: Option<Secret>,
    /// Also accept `?token=<secret>` on unsigned deliveries (weaker: the secret travels in the URL).
    #[arg(long, env = "CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN", default_value_t = false, action = clap::ArgAction::Set)]
    webhook_allow_url_token: bool,
    /// Largest webhook body accepted, in bytes.
    #[arg(long, env = "WEBHOOK_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    webhook_max_body_bytes: usize,
    /// Folder of the webhook journal [default: DOCBRAIN_DATA_DIR/journal].
    #[arg(long, env = "WEBHOOK_JOURNAL_DIR")]
    webhook_journal_dir: Option<PathBuf>,
    /// Pages reconciled at once.
    #[arg(long, env = "WEBHOOK_WORKERS", default_value_t = 2)]
    webhook_workers: usize,
    /// Delay between a page's first event and its reconcile, in milliseconds (bursts collapse).
    #[arg(long, env = "WEBHOOK_DEBOUNCE_MS", default_value_t = 1000)]
    webhook_debounce_ms: u64,
    /// Failed reconciles of a page before its events are parked.
    #[arg(long, env = "WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    webhook_max_attempts: u32,
    /// First wait after a failed reconcile, in milliseconds; it doubles per attempt (up to 5 min).
    #[arg(long, env = "WEBHOOK_RETRY_MS", default_value_t = 2000)]
    webhook_retry_ms: u64,
    /// Run the full crawl inside the server at this interval (e.g. 6h).
    #[arg(long, env = "INGEST_SCHEDULE")]
    ingest_schedule: Option<String>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let secret = args.webhook_secret.clone().filter(|s| !s.is_empty());
    let c = &args.confluence;
    if secret.is_some() {
        let has_url = c
            .confluence_base_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty());
        let has_token = c
            .confluence_api_token
            .as_ref()
            .is_some_and(|t| !t.is_empty());
        if !has_url || !has_token {
            bail!("CONFLUENCE_WEBHOOK_SECRET set but missing CONFLUENCE_BASE_URL/API_TOKEN");
        }
        let v2 = c.confluence_api_version.trim().eq_ignore_ascii_case("v2");
        if v2
            && c.confluence_user_email
                .as_deref()
                .is_none_or(|e| e.trim().is_empty())
        {
            bail!("CONFLUENCE_WEBHOOK_SECRET set but missing CONFLUENCE_USER_EMAIL (CONFLUENCE_API_VERSION=v2 signs in with the account's email and API token; use v1 for Data Center)");
        }
    }
    let schedule = args
        .ingest_schedule
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(parse_interval)
        .transpose()?;
    let store = setup::store(&args.common).await?;
    let embedder = setup::embedder(&args.common).await?;
    let needs_source = secret.is_some() || schedule.is_some();
    let pipeline = if needs_source {
        let fetcher = setup::confluence(c)?;
        let chunker = MarkdownChunker::builder()
            .fit_to(embedder.as_ref())
            .build()
            .context("chunker settings")?;
        Pipeline::new(Arc::new(fetcher), Arc::new(chunker), embedder, store)
            .await?
            .with_options(PipelineOptions {
                fetch_concurrency: c.confluence_fetch_concurrency,
                ..PipelineOptions::default()
            })
    } else {
        Pipeline::searcher(embedder, store).await?
    };
    let metrics = Arc::new(Metrics::default());
    let webhook = match secret {
        Some(secret) => {
            let journal_dir = args
                .webhook_journal_dir
                .clone()
                .unwrap_or_else(|| args.common.data_dir.join("journal"));
            let mut config = WebhookConfig::new(secret, journal_dir);
            config.allow_url_token = args.webhook_allow_url_token;
            config.max_body_bytes = args.webhook_max_body_bytes;
            config.workers = args.webhook_workers;
            config.debounce = Duration::from_millis(args.webhook_debounce_ms);
            config.max_attempts = args.webhook_max_attempts.max(1);
            config.retry_initial = Duration::from_millis(args.webhook_retry_ms.max(1));
            if config.allow_url_token {
                warn!("CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN=true: unsigned deliveries with ?token=<secret> are accepted (weaker: the secret travels in the URL and may be logged by proxies)");
            }
            let w = Webhook::start(config, &pipeline, metrics.clone())?;
            info!(journal = %w.config().journal_dir.display(), "webhook enabled at POST /confluence/events");
            Some(w)
        }
        None => {
            info!("webhook disabled: CONFLUENCE_WEBHOOK_SECRET is not set");
            None
        }
    };
    if let Some(every) = schedule {
        let scope = Scope::all().with_page_limit(c.confluence_page_limit);
        tokio::spawn(run_schedule(
            pipeline.clone(),
            scope,
            every,
            metrics.clone(),
        ));
    }
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
    let state = AppState {
        pipeline,
        webhook,
        metrics,
    };
    serve(listener, state, shutdown_signal()).await;
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
        .with_ansi(std::io::stderr().is_terminal())
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
