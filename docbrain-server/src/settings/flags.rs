//! What both binaries share around [`Settings`]: every variable of [`VARS`] as a flag, and
//! logging to stderr.

use std::io::IsTerminal;

use clap::{Arg, ArgMatches};
use tracing_subscriber::EnvFilter;

use docbrain_core::Result;

use super::{invalid, Group, Settings, VARS};

/// The flags of the variables in `groups` (secrets have none), each reading its variable too,
/// global so they may follow a subcommand.
pub fn args(groups: &[Group]) -> Vec<Arg> {
    VARS.iter()
        .filter(|v| groups.contains(&v.group))
        .filter_map(|v| {
            let flag = v.flag?;
            Some(
                Arg::new(v.name)
                    .long(flag)
                    .env(v.name)
                    .value_name(v.name)
                    .help(v.help)
                    .global(true),
            )
        })
        .collect()
}

/// Reads the settings: a flag of [`args`] over its variable, over the default.
///
/// # Errors
/// [`docbrain_core::ErrorKind::InvalidConfig`] naming the setting to fix.
pub fn read(matches: &ArgMatches) -> Result<Settings> {
    Settings::from_lookup(|name| {
        matches
            .try_get_one::<String>(name)
            .ok()
            .flatten()
            .cloned()
            .or_else(|| std::env::var(name).ok())
    })
}

/// Logs to stderr through `tracing` with the `LOG_LEVEL` filter `level` (else `default`),
/// coloured only on a terminal.
///
/// # Errors
/// When the filter is not valid, naming `LOG_LEVEL`.
pub fn init_logging(level: Option<&str>, default: &str) -> Result<()> {
    let spec = level.unwrap_or(default);
    let mut filter = EnvFilter::try_new(spec).map_err(|e| {
        invalid(format!(
            "LOG_LEVEL={spec} is not a valid log filter ({e}): use error, warn, info, debug or trace"
        ))
    })?;
    // The MCP SDK logs each request's session at info; its warnings are what an operator needs
    // (a filter that names targets is taken as written).
    if !spec.contains('=') {
        if let Ok(quiet) = "rmcp=warn".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

/// What an operator can do about `error` when a part's error has a known remedy (a variable to
/// set, a script to run): the libraries say what is wrong, the front doors print this under it.
pub fn hint(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use docbrain_index::IndexError;
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| {
        let index = e.downcast_ref::<IndexError>().or_else(|| {
            e.downcast_ref::<docbrain_core::Error>()?
                .inner()?
                .downcast_ref::<IndexError>()
        })?;
        Some(match index {
            IndexError::Open { .. } => {
                "check that the folder is writable, or set DOCBRAIN_DATA_DIR to another"
            }
            IndexError::SchemaVersion { .. } => {
                "move the index folder aside and run `docbrain ingest` to rebuild it"
            }
            IndexError::ModelMismatch { .. } => {
                "set EMBED_PROVIDER/EMBED_MODEL_ID back, or re-index into an empty DOCBRAIN_DATA_DIR"
            }
            IndexError::ModelMissing { .. } => {
                "run scripts/fetch-model.sh, or set MODEL_DIR to the folder holding all-MiniLM-L6-v2"
            }
            IndexError::ModelHash { .. } | IndexError::ModelFile { .. } => {
                "delete the model folder and run scripts/fetch-model.sh"
            }
            IndexError::UnsupportedModel { .. } => {
                "unset EMBED_MODEL_ID, or choose EMBED_PROVIDER=openai or ollama for other models"
            }
            _ => return None,
        })
    })
}
