//! `docbrain-server`: arguments, logging, then [`docbrain_server::run`].

use std::process::ExitCode;

use clap::Command;
use docbrain_server::settings::{flags, Group};

/// A caching allocator for the many short-lived buffers of requests, fetching and indexing
/// (the local model keeps its own buffers between batches).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Started as an attachment extractor: extract, answer, exit.
    docbrain_confluence::extract::serve_if_child();
    let matches = Command::new("docbrain-server")
        .version(env!("CARGO_PKG_VERSION"))
        .about("The Confluence webhook receiver and search server of DocBrain Sync")
        .args(flags::args(&[Group::Common, Group::Sync, Group::Server]))
        .get_matches();
    match run(&matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = flags::hint(e.as_ref()) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let settings = flags::read(matches)?;
    flags::init_logging(settings.log_level.as_deref(), "info")?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    // The bound address on stdout (SERVER_PORT=0 picks a free port): how a supervisor or a
    // test learns it.
    let announce = |addr| {
        #[allow(clippy::print_stdout)] // the one line a front door owes its caller
        {
            println!("listening on http://{addr}");
        }
    };
    runtime.block_on(docbrain_server::run(&settings, announce, shutdown_signal()))?;
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
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
