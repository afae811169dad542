//! Command-line arguments of the commands; the settings' flags come from
//! [`docbrain_server::settings::flags::args`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keeps a documentation search index in step with Confluence.
#[derive(Debug, Parser)]
#[command(name = "docbrain", version, about)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync the configured source into the index (the scheduled full crawl).
    Ingest(IngestArgs),
    /// Answer a question from the index.
    Search(SearchArgs),
    /// Show what the index holds.
    Status(StatusArgs),
    /// Print the Markdown of a Confluence storage-format file.
    Convert(ConvertArgs),
    /// Serve the index to an AI assistant over MCP on stdin/stdout (tools search_docs,
    /// get_page, list_spaces).
    Mcp(McpArgs),
}

/// `docbrain mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Answer with what this user may read (a Cloud account id or a Data Center username);
    /// without it, what anonymous users may.
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
}

/// `docbrain convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A storage-format (XHTML) file, as `body.storage.value` or a space export holds it.
    pub file: PathBuf,
}

/// `docbrain ingest` (the source, chunking and guard settings are flags of their own).
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Lift the mass-deletion guard for this run.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// `docbrain search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The question.
    pub query: String,
    /// How many hits to show.
    #[arg(short = 'k', long = "top", default_value_t = 5)]
    pub k: usize,
    /// Only search this space.
    #[arg(long)]
    pub space: Option<String>,
    /// Show what this user may read (a Cloud account id or a Data Center username; their
    /// groups are looked up in Confluence); without it, only pages open to anonymous users.
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
    /// Print `{"hits": [...]}`.
    #[arg(long)]
    pub json: bool,
    /// Show the best chunks themselves, several per page if they rank so (default: one hit
    /// per page, naming its other matching sections).
    #[arg(long)]
    pub chunks: bool,
}

/// `docbrain status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}
