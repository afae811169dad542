//! Index stores and embedders for DocBrain Sync.
//!
//! The defaults need nothing installed: [`EmbeddedStore`] keeps chunks, a BM25 index (SQLite
//! FTS5) and vectors in one local file, and [`LocalEmbedder`] runs all-MiniLM-L6-v2 in-process
//! (a forward pass written for it, AVX2/FMA kernels picked at run time), offline once its
//! weights are on disk.
//!
//! [`StoreSettings`] and [`EmbedderSettings`] hold their settings and defaults, and build the
//! store ([`StoreSettings::open`]) and the embedder ([`EmbedderSettings::connect`]) they name.
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `embedded` | yes | [`EmbeddedStore`], the SQLite store |
//! | `local-model` | yes | [`LocalEmbedder`], the in-process model |
//! | `remote` | yes | [`RemoteEmbedder`] for OpenAI-compatible `/v1/embeddings` services and Ollama's `/api/embed` |
//! | `opensearch` | yes | [`OpenSearchStore`], for clusters with the k-NN plugin |

mod backends;
#[cfg(feature = "embedded")]
mod embedded;
mod error;
#[cfg(any(feature = "remote", feature = "opensearch"))]
mod http;
#[cfg(feature = "local-model")]
mod local;
#[cfg(feature = "opensearch")]
mod opensearch;
#[cfg(feature = "remote")]
mod remote;
mod settings;

#[cfg(feature = "embedded")]
pub use embedded::EmbeddedStore;
pub use error::IndexError;
#[cfg(feature = "local-model")]
pub use local::LocalEmbedder;
#[cfg(feature = "opensearch")]
pub use opensearch::{OpenSearchConfig, OpenSearchStore};
#[cfg(feature = "remote")]
pub use remote::{RemoteApi, RemoteConfig, RemoteEmbedder, RetryPolicy};
pub use settings::{EmbedderSettings, OpenSearchSettings, Provider, StoreSettings};
