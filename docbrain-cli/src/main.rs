//! `docbrain`: arguments, logging, then [`docbrain_cli::run`].

use std::process::ExitCode;

/// A caching allocator for the many short-lived buffers of fetching, converting and indexing
/// (the local model keeps its own buffers between batches).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Started as an attachment extractor: extract, answer, exit.
    docbrain_confluence::extract::serve_if_child();
    let matches = docbrain_cli::command().get_matches();
    let outcome = docbrain_cli::parse(&matches).and_then(|(cli, settings)| {
        docbrain_cli::init_logging(&cli, &settings)?;
        let runtime = tokio::runtime::Runtime::new()
            .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
        runtime.block_on(docbrain_cli::run(&cli, settings))
    });
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        if let Some(hint) = docbrain_server::settings::flags::hint(e.as_ref()) {
            eprintln!("hint: {hint}");
        }
        ExitCode::FAILURE
    })
}
