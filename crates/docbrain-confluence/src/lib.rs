//! Page sources for DocBrain Sync.
//!
//! [`LocalFetcher`] reads a folder of pages (DocBrain's `SOURCE_TYPE=local`). The Confluence
//! REST client, the storage-format converter and the webhook payloads join this crate next.

mod error;
mod local;
mod storage_format;

pub use error::SourceError;
pub use local::LocalFetcher;
pub use storage_format::storage_to_markdown;
