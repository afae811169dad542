//! The `docbrain` command: `ingest` (the scheduled full crawl), `search`, `status` and `convert`.
//!
//! The binary's `main` only parses arguments and sets up logging; the commands live here so
//! that they are one call away for tests and other front ends.

#![allow(clippy::print_stdout)] // printing results is this crate's job

mod args;
mod commands;
mod progress;
pub mod setup;

use std::io::IsTerminal;
use std::process::ExitCode;

pub use args::{Cli, Command, Common, ConfluenceArgs};
use tracing_subscriber::EnvFilter;

/// Runs one command.
///
/// # Errors
/// Any failure, with a message that names the setting to fix where one is at fault.
pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Ingest(args) => commands::ingest(&cli.common, args).await,
        Command::Search(args) => commands::search(&cli.common, args).await,
        Command::Status(args) => commands::status(&cli.common, args).await,
        Command::Convert(args) => commands::convert(args),
    }
}

/// Sets up logging to stderr from `LOG_LEVEL` (default `info`; `warn` while a progress bar
/// draws on a terminal).
///
/// # Errors
/// When `LOG_LEVEL` is not a valid filter.
pub fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    let quiet = matches!(cli.command, Command::Ingest(_)) && std::io::stderr().is_terminal();
    let default = if quiet { "warn" } else { "info" };
    let spec = cli.common.log_level.as_deref().unwrap_or(default);
    let filter = EnvFilter::try_new(spec).map_err(|e| {
        anyhow::anyhow!("LOG_LEVEL={spec} is not a valid log filter ({e}): use error, warn, info, debug or trace")
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}
