//! Turns settings into the pipeline's parts, with errors that name the variable to fix.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use docbrain_core::{Embedder, IndexStore};
use docbrain_index::{EmbeddedStore, LocalEmbedder};

use crate::args::{Common, Provider};

/// Opens the embedded index in the configured data folder.
pub(crate) fn store(common: &Common) -> anyhow::Result<Arc<dyn IndexStore>> {
    let store = EmbeddedStore::open(&common.data_dir)?;
    Ok(Arc::new(store))
}

/// Loads the configured embedder.
pub(crate) async fn embedder(common: &Common) -> anyhow::Result<Arc<LocalEmbedder>> {
    match common.embed_provider {
        Provider::Local => {}
        other => bail!(
            "EMBED_PROVIDER={} is not available in this build yet: set EMBED_PROVIDER=local",
            format!("{other:?}").to_lowercase()
        ),
    }
    if let Some(id) = &common.embed_model_id {
        if !LocalEmbedder::runs(id) {
            bail!(
                "EMBED_MODEL_ID={id} cannot run locally: the local provider runs {}; unset EMBED_MODEL_ID",
                LocalEmbedder::MODEL_ID
            );
        }
    }
    let dir: PathBuf = common
        .model_dir
        .clone()
        .unwrap_or_else(LocalEmbedder::default_dir);
    let embedder = tokio::task::spawn_blocking(move || LocalEmbedder::load(dir))
        .await
        .context("loading the model")??;
    Ok(Arc::new(embedder))
}

/// Returns the embedder as the pipeline holds it.
pub(crate) fn dyn_embedder(e: &Arc<LocalEmbedder>) -> Arc<dyn Embedder> {
    e.clone()
}
