//! Page sources for DocBrain Sync.
//!
//! - [`ConfluenceClient`]: Confluence Cloud (REST v2) or Data Center (REST v1) as a
//!   [`docbrain_core::Fetcher`] (`SOURCE_TYPE=confluence`).
//! - [`LocalFetcher`]: a folder of exported pages (`SOURCE_TYPE=local`).
//! - [`SourceSettings`]: the sources' settings and defaults; [`SourceSettings::fetcher`] builds
//!   the source they name.
//! - [`storage_to_markdown`]: the storage-format (XHTML) to Markdown converter both use.
//! - [`extract`]: text from attachments (PDF, DOCX, PPTX, XLSX, text), in a child process.
//! - [`webhook`]: `X-Hub-Signature` checks and webhook bodies in the Cloud and Data Center shapes.
//! - `simulator` (feature `simulator`): a Confluence on loopback for tests, with both API
//!   versions, faults, a request log and signed webhooks.

mod error;
pub mod extract;
mod local;
#[cfg(feature = "rest")]
mod rest;
mod settings;
#[cfg(feature = "simulator")]
pub mod simulator;
mod sources;
mod storage_format;
pub mod webhook;

pub use error::SourceError;
pub use local::LocalFetcher;
#[cfg(feature = "rest")]
pub use rest::{ConfluenceClient, ConfluenceConfig};
pub use settings::{
    ApiVersion, AttachmentSettings, ConfluenceSettings, LocalSettings, SourceSettings,
};
pub use storage_format::storage_to_markdown;
