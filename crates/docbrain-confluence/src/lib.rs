//! Page sources for DocBrain Sync.
//!
//! [`LocalFetcher`] reads a folder of pages (DocBrain's `SOURCE_TYPE=local`). The Confluence
//! REST client, the storage-format converter and the webhook payloads join this crate next.

mod error;
mod local;

pub use error::SourceError;
pub use local::LocalFetcher;
