//! Turns settings into the pipeline's parts, with errors that name the variable to fix; shared
//! by the `docbrain` and `docbrain-server` binaries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use docbrain_confluence::{ApiVersion, ConfluenceClient, ConfluenceConfig};
use docbrain_core::{Embedder, IndexStore};
use docbrain_index::{
    EmbeddedStore, LocalEmbedder, OpenSearchConfig, OpenSearchStore, RemoteConfig,
};

use crate::args::{Common, ConfluenceArgs, Provider, StoreKind};

/// Builds the Confluence client from the `CONFLUENCE_*` settings.
///
/// # Errors
/// A missing or wrong setting, named.
pub fn confluence(args: &ConfluenceArgs) -> anyhow::Result<ConfluenceClient> {
    let base_url = args
        .confluence_base_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .context("CONFLUENCE_BASE_URL is not set: use https://<site>.atlassian.net/wiki for Cloud or your Data Center address")?;
    let token = args
        .confluence_api_token
        .clone()
        .filter(|t| !t.is_empty())
        .context("CONFLUENCE_API_TOKEN is not set: an API token (Cloud) or a personal access token (Data Center)")?;
    let version: ApiVersion = args.confluence_api_version.parse()?;
    let mut config = ConfluenceConfig::new(base_url, version, token);
    config.email.clone_from(&args.confluence_user_email);
    config.space_keys = args.space_keys();
    config.tls_verify = args.confluence_tls_verify;
    Ok(ConfluenceClient::new(config)?)
}

/// Opens the configured index: the embedded file in the data folder, or OpenSearch.
///
/// # Errors
/// When the folder cannot be opened or holds an index of another schema; when OpenSearch is
/// unreachable, refuses the credentials or lacks the k-NN plugin.
pub async fn store(common: &Common) -> anyhow::Result<Arc<dyn IndexStore>> {
    Ok(match common.index_store {
        StoreKind::Embedded => Arc::new(EmbeddedStore::open(&common.data_dir)?),
        StoreKind::Opensearch => {
            let mut config = OpenSearchConfig::new(
                common.opensearch_url.clone(),
                common.opensearch_index.clone(),
            );
            config.username.clone_from(&common.opensearch_username);
            config.password.clone_from(&common.opensearch_password);
            config.tls_verify = common.opensearch_tls_verify;
            Arc::new(OpenSearchStore::connect(config).await?)
        }
    })
}

/// Loads (local) or connects to (remote) the configured embedder.
///
/// # Errors
/// A missing or wrong setting, named; or what loading or the probe call met.
pub async fn embedder(common: &Common) -> anyhow::Result<Arc<dyn Embedder>> {
    let remote = match common.embed_provider {
        Provider::Local => return local(common).await,
        Provider::Openai => {
            let mut c = RemoteConfig::openai(
                common
                    .embed_model_id
                    .clone()
                    .unwrap_or_else(|| "text-embedding-3-small".into()),
            );
            c.base_url.clone_from(&common.openai_base_url);
            c.api_key = common.openai_api_key.clone().filter(|k| !k.is_empty());
            if c.api_key.is_none() && c.base_url.contains("api.openai.com") {
                bail!("OPENAI_API_KEY is not set: EMBED_PROVIDER=openai needs an API key (or set OPENAI_BASE_URL to a service that needs none)");
            }
            c.dimensions = common.embed_dimensions;
            c
        }
        Provider::Ollama => {
            let mut c = RemoteConfig::ollama(
                common
                    .embed_model_id
                    .clone()
                    .unwrap_or_else(|| "nomic-embed-text".into()),
            );
            c.base_url.clone_from(&common.ollama_base_url);
            c.tls_verify = common.ollama_tls_verify;
            c
        }
    };
    let mut config = remote;
    if let Some(n) = common.embed_batch_size {
        config.batch_size = n;
    }
    if let Some(n) = common.embed_concurrency {
        config.concurrency = n;
    }
    config.retry.timeout = Duration::from_secs(common.embed_timeout_secs.max(1));
    Ok(Arc::new(config.connect().await?))
}

async fn local(common: &Common) -> anyhow::Result<Arc<dyn Embedder>> {
    if let Some(id) = &common.embed_model_id {
        if !LocalEmbedder::runs(id) {
            bail!(
                "EMBED_MODEL_ID={id} cannot run locally: the local provider runs {}; unset EMBED_MODEL_ID, or set EMBED_PROVIDER=openai or ollama",
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
