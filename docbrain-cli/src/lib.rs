//! The `docbrain` command: `ingest` (the scheduled full crawl), `search`, `status`, `convert` and
//! `mcp` (the index for an AI assistant, on stdio).
//!
//! The binary's `main` only parses arguments and sets up logging; the commands live here so
//! that they are one call away for tests and other front ends. Settings come from
//! [`docbrain_server::Settings`] (flags over environment variables, shared with the server),
//! and the commands that crawl or search build their pipeline with [`docbrain_server::Settings::pipeline`].

#![allow(clippy::print_stdout)] // printing results is this crate's job

mod args;
mod commands;
mod page_hits;
mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;

pub use args::{Cli, Command, ConvertArgs, IngestArgs, McpArgs, SearchArgs, StatusArgs};
use clap::{CommandFactory, FromArgMatches};
use docbrain_server::settings::{flags, Group};
use docbrain_server::Settings;

/// The command line: the commands' own arguments and a flag for every setting.
pub fn command() -> clap::Command {
    Cli::command().args(flags::args(&[Group::Common, Group::Sync]))
}

/// Parses the command line and reads the settings.
///
/// # Errors
/// Bad arguments (clap's message) or a setting that is missing or wrong, named.
pub fn parse(matches: &clap::ArgMatches) -> anyhow::Result<(Cli, Settings)> {
    let cli = Cli::from_arg_matches(matches)?;
    let settings = flags::read(matches)?;
    Ok((cli, settings))
}

/// Runs one command.
///
/// # Errors
/// Any failure, with a message that names the setting to fix where one is at fault.
pub async fn run(cli: &Cli, settings: Settings) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Ingest(args) => commands::ingest(settings, args).await,
        Command::Search(args) => commands::search(settings, args).await,
        Command::Status(args) => commands::status(&settings, args).await,
        Command::Convert(args) => commands::convert(args),
        Command::Mcp(args) => commands::mcp(settings, args).await,
    }
}

/// Sets up logging to stderr from `LOG_LEVEL` (default `info`; `warn` while a progress bar
/// draws on a terminal).
///
/// # Errors
/// When `LOG_LEVEL` is not a valid filter.
pub fn init_logging(cli: &Cli, settings: &Settings) -> anyhow::Result<()> {
    let quiet = matches!(cli.command, Command::Ingest(_)) && std::io::stderr().is_terminal();
    let default = if quiet { "warn" } else { "info" };
    Ok(flags::init_logging(settings.log_level.as_deref(), default)?)
}
