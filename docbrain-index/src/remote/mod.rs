//! Remote embedders: an OpenAI-compatible `/v1/embeddings` API (OpenAI, vLLM, Hugging Face TEI,
//! LM Studio, gateways) and Ollama's `/api/embed`.
//!
//! Texts are sent in batches, a few requests at a time; 429 and 5xx answers, resets and
//! timeouts are retried (see [`RetryPolicy`]), while refused credentials and unknown models
//! fail at once with a message naming the setting to fix. Inputs are cut to a character budget
//! before sending, and an OpenAI-style "maximum context length" answer halves that budget for
//! the batch, so a long chunk is truncated deliberately instead of failing a crawl. The vector
//! dimension is discovered with one probe call when the embedder connects.

mod api;
mod http;

use std::sync::Arc;

use async_trait::async_trait;
use docbrain_core::{CallCounter, CallHealth, Embedder, ModelInfo, Secret};
use futures::{StreamExt, TryStreamExt};
use tracing::{info, warn};

pub use api::RemoteApi;
pub use http::RetryPolicy;

use crate::error::IndexError;
use docbrain_http::truncate_chars;
use http::{normalise, post_json, Failure};

/// Settings of a remote embedder; [`RemoteConfig::connect`] builds it.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Which API the service speaks.
    pub api: RemoteApi,
    /// The service's base URL (`…/v1` for OpenAI-compatible services, the server root for
    /// Ollama).
    pub base_url: String,
    /// The bearer token (`OPENAI_API_KEY`), when the service wants one.
    pub api_key: Option<Secret>,
    /// The model to ask for (`EMBED_MODEL_ID`).
    pub model: String,
    /// The `dimensions` to request (OpenAI text-embedding-3 models can shorten their vectors).
    pub dimensions: Option<usize>,
    /// Texts per request.
    pub batch_size: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Inputs are cut to this many characters before sending.
    pub max_input_chars: usize,
    /// Whether to verify TLS certificates (`OLLAMA_TLS_VERIFY=false` turns it off).
    pub tls_verify: bool,
    /// Retries and timeouts.
    pub retry: RetryPolicy,
}

impl RemoteConfig {
    /// Returns OpenAI's defaults: the public API, batches of 64, 4 requests at once.
    pub fn openai(model: impl Into<String>) -> Self {
        Self {
            api: RemoteApi::OpenAi,
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: model.into(),
            dimensions: None,
            batch_size: 64,
            concurrency: 4,
            max_input_chars: 8_000,
            tls_verify: true,
            retry: RetryPolicy::default(),
        }
    }

    /// Returns Ollama's defaults: `http://localhost:11434`, batches of 16, 2 requests at once.
    pub fn ollama(model: impl Into<String>) -> Self {
        Self {
            api: RemoteApi::Ollama,
            base_url: "http://localhost:11434".into(),
            batch_size: 16,
            concurrency: 2,
            ..Self::openai(model)
        }
    }

    /// Checks the settings, then asks the service for one embedding to learn the dimension.
    ///
    /// # Errors
    /// [`IndexError::InvalidSetting`] for a bad setting; otherwise what the probe call met:
    /// refused credentials, an unknown model, or a service that does not answer.
    pub async fn connect(self) -> Result<RemoteEmbedder, IndexError> {
        let provider = self.api.name();
        if self.model.trim().is_empty() {
            return Err(IndexError::InvalidSetting(format!(
                "EMBED_MODEL_ID is empty: name the {provider} embedding model to use"
            )));
        }
        if self.batch_size == 0 || self.concurrency == 0 || self.max_input_chars == 0 {
            return Err(IndexError::InvalidSetting(
                "EMBED_BATCH_SIZE and EMBED_CONCURRENCY must be at least 1".into(),
            ));
        }
        let url = self.api.endpoint(&self.base_url).ok_or_else(|| {
            IndexError::InvalidSetting(format!(
                "{}={} is not an http(s) URL",
                self.api.url_setting(),
                self.base_url
            ))
        })?;
        let client = crate::http::client(self.tls_verify)?;
        let mut embedder = RemoteEmbedder {
            inner: Arc::new(Inner {
                config: self,
                url,
                client,
                dimension: 0,
                calls: CallCounter::default(),
            }),
        };
        let probe = embedder
            .embed_batch(&["dimension probe".to_string()])
            .await?;
        let dimension = probe.first().map_or(0, Vec::len);
        let inner = Arc::get_mut(&mut embedder.inner)
            .ok_or_else(|| IndexError::InvalidSetting("embedder shared during connect".into()))?;
        if let Some(asked) = inner.config.dimensions {
            if asked != dimension {
                return Err(IndexError::InvalidSetting(format!(
                    "EMBED_DIMENSIONS={asked} but {provider} returned {dimension}-dimension vectors for {}: unset EMBED_DIMENSIONS or pick a model that supports it",
                    inner.config.model
                )));
            }
        }
        inner.dimension = dimension;
        info!(provider, model = %inner.config.model, dimension, url = %inner.url, "connected to embedding service");
        Ok(embedder)
    }
}

/// An embedder backed by a remote service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RemoteEmbedder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RemoteConfig,
    url: String,
    client: reqwest::Client,
    /// 0 until the probe call answered.
    dimension: usize,
    /// How calls to the service have gone.
    calls: CallCounter,
}

impl RemoteEmbedder {
    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
        let inner = &self.inner;
        let api = inner.config.api;
        let provider = api.name();
        let mut max_chars = inner.config.max_input_chars;
        loop {
            let inputs: Vec<&str> = texts.iter().map(|t| truncate_chars(t, max_chars)).collect();
            let body = api.request(&inner.config.model, &inputs, inner.config.dimensions);
            let key = inner.config.api_key.as_ref().map(Secret::expose);
            match post_json(
                &inner.client,
                &inner.url,
                key,
                &body,
                &inner.config.retry,
                provider,
                &inner.calls,
            )
            .await
            {
                Ok(answer) => {
                    let vectors = api
                        .parse(&answer)
                        .map_err(|detail| self.decode_error(detail))?;
                    if vectors.len() != inputs.len() {
                        return Err(self.decode_error(format!(
                            "{} vectors for {} inputs",
                            vectors.len(),
                            inputs.len()
                        )));
                    }
                    if inner.dimension > 0 {
                        if let Some(bad) = vectors.iter().find(|v| v.len() != inner.dimension) {
                            return Err(self.decode_error(format!(
                                "a vector of dimension {} where {} was expected",
                                bad.len(),
                                inner.dimension
                            )));
                        }
                    }
                    return Ok(vectors.into_iter().map(normalise).collect());
                }
                Err(Failure::Status { status, body })
                    if status.as_u16() == 400 && api.is_too_long(&body) && max_chars > 64 =>
                {
                    max_chars /= 2;
                    warn!(
                        provider,
                        max_chars, "input longer than the model accepts; truncating further"
                    );
                }
                Err(failure) => return Err(self.failure(failure)),
            }
        }
    }

    fn decode_error(&self, detail: String) -> IndexError {
        IndexError::ProviderDecode {
            provider: self.inner.config.api.name(),
            url: self.inner.url.clone(),
            detail,
        }
    }

    fn failure(&self, failure: Failure) -> IndexError {
        let inner = &self.inner;
        let api = inner.config.api;
        let provider = api.name();
        let url = inner.url.clone();
        match failure {
            Failure::Decode(detail) => self.decode_error(detail),
            Failure::Exhausted { attempts, last } => IndexError::ProviderUnavailable {
                provider,
                url,
                attempts,
                last,
            },
            Failure::Status { status, body } => {
                let message = api.error_message(&body);
                let status = status.as_u16();
                match status {
                    401 | 403 => IndexError::ProviderAuth {
                        provider,
                        url,
                        status,
                        message,
                        setting: api.key_setting(),
                    },
                    404 => IndexError::ProviderModel {
                        provider,
                        url,
                        model: inner.config.model.clone(),
                        status,
                        message,
                    },
                    _ => IndexError::ProviderRejected {
                        provider,
                        url,
                        status,
                        message,
                    },
                }
            }
        }
    }
}

#[async_trait]
impl Embedder for RemoteEmbedder {
    fn health(&self) -> Option<CallHealth> {
        Some(self.inner.calls.snapshot())
    }

    fn model(&self) -> ModelInfo {
        ModelInfo {
            model_id: format!(
                "{}:{}",
                self.inner.config.api.name(),
                self.inner.config.model
            ),
            dimension: self.inner.dimension,
        }
    }

    async fn embed(&self, texts: &[String]) -> docbrain_core::Result<Vec<Vec<f32>>> {
        let batches: Vec<Vec<String>> = texts
            .chunks(self.inner.config.batch_size)
            .map(<[String]>::to_vec)
            .collect();
        let requests = batches.into_iter().map(|batch| {
            let this = self.clone();
            async move { this.embed_batch(&batch).await }
        });
        let vectors: Vec<Vec<Vec<f32>>> = futures::stream::iter(requests)
            .buffered(self.inner.config.concurrency)
            .try_collect()
            .await?;
        Ok(vectors.into_iter().flatten().collect())
    }
}
