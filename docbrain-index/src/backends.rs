//! [`StoreSettings::open`] and [`EmbedderSettings::connect`]: the store and the embedder the
//! settings name, built from the features compiled in; a backend whose feature is off is
//! refused with the feature to turn on.

use std::path::Path;
use std::sync::Arc;

use docbrain_core::{Embedder, IndexStore, Result};

use crate::settings::{EmbedderSettings, Provider, StoreSettings};
use crate::IndexError;

#[allow(dead_code)] // only reached when a backend's feature is off
fn not_built(setting: &str, feature: &str) -> docbrain_core::Error {
    IndexError::InvalidSetting(format!(
        "{setting} needs docbrain-index built with its `{feature}` feature"
    ))
    .into()
}

impl StoreSettings {
    /// Opens (embedded, in `data_dir`) or connects to (OpenSearch) the store.
    ///
    /// # Errors
    /// An unreachable or unusable store, with what to fix.
    pub async fn open(&self, data_dir: &Path) -> Result<Arc<dyn IndexStore>> {
        match self {
            #[cfg(feature = "embedded")]
            StoreSettings::Embedded => {
                let dir = data_dir.to_owned();
                let store = tokio::task::spawn_blocking(move || crate::EmbeddedStore::open(dir))
                    .await
                    .map_err(|e| IndexError::InvalidSetting(format!("opening the index: {e}")))??;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "embedded"))]
            StoreSettings::Embedded => {
                let _ = data_dir;
                Err(not_built("INDEX_STORE=embedded", "embedded"))
            }
            #[cfg(feature = "opensearch")]
            StoreSettings::OpenSearch(cluster) => Ok(Arc::new(
                crate::OpenSearchStore::connect(cluster.clone()).await?,
            )),
            #[cfg(not(feature = "opensearch"))]
            StoreSettings::OpenSearch(_) => Err(not_built("INDEX_STORE=opensearch", "opensearch")),
        }
    }
}

impl EmbedderSettings {
    /// Loads (local) or connects to (remote) the embedder.
    ///
    /// # Errors
    /// A missing model, key or service, with what to fix.
    pub async fn connect(&self) -> Result<Arc<dyn Embedder>> {
        match self.provider {
            Provider::Local => local(self).await,
            Provider::OpenAi | Provider::Ollama => remote(self).await,
        }
    }
}

#[cfg(feature = "local-model")]
async fn local(settings: &EmbedderSettings) -> Result<Arc<dyn Embedder>> {
    use crate::LocalEmbedder;
    if let Some(id) = &settings.model_id {
        if !LocalEmbedder::runs(id) {
            return Err(IndexError::InvalidSetting(format!(
                "EMBED_MODEL_ID={id} cannot run locally: the local provider runs {}; unset EMBED_MODEL_ID, or set EMBED_PROVIDER=openai or ollama",
                LocalEmbedder::MODEL_ID
            ))
            .into());
        }
    }
    let dir = settings
        .model_dir
        .clone()
        .unwrap_or_else(LocalEmbedder::default_dir);
    let embedder = tokio::task::spawn_blocking(move || LocalEmbedder::load(dir))
        .await
        .map_err(|e| IndexError::InvalidSetting(format!("loading the model: {e}")))??;
    Ok(Arc::new(embedder))
}

#[cfg(not(feature = "local-model"))]
async fn local(_: &EmbedderSettings) -> Result<Arc<dyn Embedder>> {
    Err(not_built("EMBED_PROVIDER=local", "local-model"))
}

#[cfg(feature = "remote")]
async fn remote(settings: &EmbedderSettings) -> Result<Arc<dyn Embedder>> {
    use crate::RemoteConfig;
    let model = |default: &str| settings.model_id.clone().unwrap_or_else(|| default.into());
    let mut config = match settings.provider {
        Provider::OpenAi => {
            let mut c = RemoteConfig::openai(model("text-embedding-3-small"));
            c.base_url.clone_from(&settings.openai_base_url);
            c.api_key = settings.openai_api_key.clone();
            if c.api_key.is_none() && c.base_url.contains("api.openai.com") {
                return Err(IndexError::InvalidSetting("OPENAI_API_KEY is not set: EMBED_PROVIDER=openai needs an API key (or set OPENAI_BASE_URL to a service that needs none)".into()).into());
            }
            c.dimensions = settings.dimensions;
            c
        }
        _ => {
            let mut c = RemoteConfig::ollama(model("nomic-embed-text"));
            c.base_url.clone_from(&settings.ollama_base_url);
            c.tls_verify = settings.ollama_tls_verify;
            c
        }
    };
    if let Some(n) = settings.batch_size {
        config.batch_size = n;
    }
    if let Some(n) = settings.concurrency {
        config.concurrency = n;
    }
    config.retry.timeout = settings.timeout;
    Ok(Arc::new(config.connect().await?))
}

#[cfg(not(feature = "remote"))]
async fn remote(_: &EmbedderSettings) -> Result<Arc<dyn Embedder>> {
    Err(not_built("EMBED_PROVIDER=openai/ollama", "remote"))
}
