//! The local embedder: all-MiniLM-L6-v2 run in-process, fully offline.
//!
//! Weights are read from a folder (`MODEL_DIR`) and hash-checked on load. The tokenizer file
//! shipped with the model truncates at 128 tokens and pads every input to 128; both are reset
//! here (truncate at 256, no padding: `bert` lays a batch's sequences end to end), or long
//! chunks would be cut in half and short ones padded for nothing.
//!
//! Concurrent [`Embedder::embed`] calls (a crawl indexes several pages at once, most of them a
//! chunk or two) are coalesced: one worker thread runs the model, taking every call waiting,
//! up to [`LocalEmbedder::COALESCE_TEXTS`] texts, as one run of batches. Small pages then
//! embed in full batches, and forward passes never compete for the two cores.
//!
//! The forward pass (`bert`, on the `docbrain-kernels` crate) is written for this model: weights packed once
//! at load, no per-operation allocation, AVX2/FMA kernels picked at run time, both cores used.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use async_trait::async_trait;
use docbrain_core::{Embedder, ModelInfo, TokenCounter};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};
use tracing::debug;

use crate::error::IndexError;

mod bert;

use bert::{Bert, Config};

/// all-MiniLM-L6-v2 in-process: 384 dimensions, mean pooling, L2-normalised, 256 tokens.
#[derive(Clone)]
pub struct LocalEmbedder {
    model: Arc<Model>,
    jobs: mpsc::Sender<Job>,
}

struct Model {
    bert: Bert,
    tokenizer: Tokenizer,
    counter: Arc<ModelTokens>,
    batch_size: AtomicUsize,
}

/// One [`Embedder::embed`] call waiting for the worker.
struct Job {
    texts: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, IndexError>>,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model_id", &Self::MODEL_ID)
            .field("batch_size", &self.model.batch_size.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Counts tokens with the model's own tokenizer (no truncation, no special tokens).
struct ModelTokens(Tokenizer);

impl std::fmt::Debug for ModelTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelTokens")
    }
}

impl TokenCounter for ModelTokens {
    fn count(&self, text: &str) -> usize {
        self.0
            .encode_fast(text, false)
            // Should the tokenizer fail, one token per character bounds any WordPiece count:
            // chunks come out smaller, never too long for the model.
            .map_or_else(|_| text.chars().count(), |e| e.len())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IndexError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => IndexError::ModelMissing {
            path: path.to_path_buf(),
        },
        _ => IndexError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

impl LocalEmbedder {
    /// The model this embedder runs.
    pub const MODEL_ID: &'static str = "sentence-transformers/all-MiniLM-L6-v2";
    /// The sha256 of its `model.safetensors` (Hugging Face revision 1110a243).
    pub const WEIGHTS_SHA256: &'static str =
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
    /// Its vector dimension.
    pub const DIMENSION: usize = 384;
    /// The longest input it reads, special tokens included; longer inputs are truncated.
    pub const MAX_TOKENS: usize = 256;
    /// The most texts of waiting calls the worker takes into one run.
    pub const COALESCE_TEXTS: usize = 64;

    /// Returns the folder `scripts/fetch-model.sh` installs into:
    /// `$XDG_CACHE_HOME/docbrain/models/all-MiniLM-L6-v2` (or under `~/.cache`).
    pub fn default_dir() -> PathBuf {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        cache.join("docbrain/models/all-MiniLM-L6-v2")
    }

    /// Returns whether `model_id` names the model this embedder runs (full or short name).
    pub fn runs(model_id: &str) -> bool {
        model_id == Self::MODEL_ID || model_id == "all-MiniLM-L6-v2"
    }

    /// Loads the model from `dir` (`model.safetensors`, `config.json`, `tokenizer.json`),
    /// checking the weights' hash. Blocking: takes about a second.
    ///
    /// # Errors
    /// [`IndexError::ModelMissing`] naming the file to fetch, [`IndexError::ModelHash`] for
    /// other or corrupt weights, or a load failure.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, IndexError> {
        let dir = dir.as_ref();
        let weights_path = dir.join("model.safetensors");
        let weights = read(&weights_path)?;
        let actual = format!("{:x}", Sha256::digest(&weights));
        if actual != Self::WEIGHTS_SHA256 {
            return Err(IndexError::ModelHash {
                path: weights_path,
                actual,
                expected: Self::WEIGHTS_SHA256.into(),
            });
        }
        let config: Config =
            serde_json::from_slice(&read(&dir.join("config.json"))?).map_err(|_| {
                IndexError::Corrupt {
                    what: "model config.json",
                }
            })?;
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.exists() {
            return Err(IndexError::ModelMissing {
                path: tokenizer_path,
            });
        }
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| IndexError::Tokenizer(e.to_string()))?;
        let mut counter = tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| IndexError::Tokenizer(e.to_string()))?
            .with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: Self::MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| IndexError::Tokenizer(e.to_string()))?
            .with_padding(None);
        let bert = Bert::load(&weights_path, &weights, &config)?;
        drop(weights);
        debug!(model = Self::MODEL_ID, dir = %dir.display(), "loaded local embedding model");
        let model = Arc::new(Model {
            bert,
            tokenizer,
            counter: Arc::new(ModelTokens(counter)),
            batch_size: AtomicUsize::new(16),
        });
        let (jobs, queue) = mpsc::channel();
        let worker = Arc::clone(&model);
        std::thread::Builder::new()
            .name("docbrain-embed".into())
            .spawn(move || work(&worker, &queue))
            .map_err(|e| IndexError::Worker(e.to_string()))?;
        Ok(Self { model, jobs })
    }

    /// Sets how many texts run through the model at once (default 16).
    pub fn with_batch_size(self, batch_size: usize) -> Self {
        self.model
            .batch_size
            .store(batch_size.max(1), Ordering::Relaxed);
        self
    }

    /// Embeds texts on the calling thread (blocking), without coalescing; see
    /// [`Embedder::embed`].
    ///
    /// # Errors
    /// When tokenisation or inference fails.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
        self.model.embed(texts)
    }
}

/// The worker: takes the first waiting call and every other one waiting (up to
/// [`LocalEmbedder::COALESCE_TEXTS`] texts), embeds them together and answers each; stops when the embedder
/// is dropped.
fn work(model: &Model, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        let mut texts = jobs[0].texts.len();
        while texts < LocalEmbedder::COALESCE_TEXTS {
            let Ok(job) = queue.try_recv() else { break };
            texts += job.texts.len();
            jobs.push(job);
        }
        if jobs.len() == 1 {
            let job = jobs.remove(0);
            let _ = job.reply.send(model.embed(&job.texts));
            continue;
        }
        let all: Vec<String> = jobs.iter().flat_map(|j| j.texts.iter().cloned()).collect();
        match model.embed(&all) {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for job in jobs {
                    let mine: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            // Answer each call with its own outcome, so one bad input fails only its page.
            Err(_) => {
                for job in jobs {
                    let _ = job.reply.send(model.embed(&job.texts));
                }
            }
        }
    }
}

impl Model {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size.load(Ordering::Relaxed).max(1)) {
            // Tokenised on both cores: one thread would take ~5% of the forward pass's time.
            let ids: Vec<Vec<u32>> = batch
                .par_iter()
                .map(|text| {
                    self.tokenizer
                        .encode_fast(text.as_str(), true)
                        .map(|e| e.get_ids().to_vec())
                        .map_err(|e| IndexError::Tokenizer(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            out.extend(self.bert.embed(&ids)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> ModelInfo {
        ModelInfo {
            model_id: Self::MODEL_ID.into(),
            dimension: Self::DIMENSION,
        }
    }

    async fn embed(&self, texts: &[String]) -> docbrain_core::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = |what: &str| IndexError::Worker(what.to_owned());
        self.jobs
            .send(Job {
                texts: texts.to_vec(),
                reply,
            })
            .map_err(|_| stopped("it no longer takes work"))?;
        let vectors = answer.await.map_err(|_| stopped("it dropped a call"))??;
        Ok(vectors)
    }

    fn token_counter(&self) -> Option<Arc<dyn TokenCounter>> {
        Some(self.model.counter.clone())
    }
}

#[cfg(test)]
mod tests;
