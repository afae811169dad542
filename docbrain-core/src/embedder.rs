//! Embedding models and token counting.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;

/// Counts tokens the way a model does, so that chunks fit its input.
pub trait TokenCounter: Debug + Send + Sync {
    /// Returns the number of tokens in `text` (without special tokens).
    fn count(&self, text: &str) -> usize;
}

/// A model-agnostic token estimate for WordPiece/BPE models: one token per punctuation mark,
/// and about one per six characters of a word.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EstimatedTokens;

impl TokenCounter for EstimatedTokens {
    fn count(&self, text: &str) -> usize {
        let mut tokens = 0;
        let mut word = 0usize;
        for c in text.chars() {
            if c.is_alphanumeric() {
                word += 1;
                continue;
            }
            if word > 0 {
                tokens += word.div_ceil(6);
                word = 0;
            }
            if !c.is_whitespace() {
                tokens += 1;
            }
        }
        tokens + word.div_ceil(6)
    }
}

/// Identifies the model an index was built with; vectors of different models never mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub model_id: String,
    /// The vector dimension.
    pub dimension: usize,
}

/// Turns texts into vectors.
#[async_trait]
pub trait Embedder: Debug + Send + Sync + 'static {
    /// Returns the model and dimension of the vectors this embedder produces.
    fn model(&self) -> ModelInfo;

    /// Embeds a batch of texts, returning one L2-normalised vector per text, in order.
    ///
    /// Texts longer than the model accepts are truncated, never rejected.
    ///
    /// # Errors
    /// When the model or the service behind it fails.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;

    /// Returns the model's own token counter, when it has one; chunkers fall back to an
    /// estimate (one token per punctuation mark, about one per six characters of a word).
    fn token_counter(&self) -> Option<Arc<dyn TokenCounter>> {
        None
    }

    /// How calls to a remote embedding service have gone, for metrics and readiness; `None`
    /// (the default) for embedders that run in-process.
    fn health(&self) -> Option<crate::CallHealth> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_words_and_punctuation() {
        let t = EstimatedTokens;
        assert_eq!(t.count(""), 0);
        assert_eq!(t.count("the cat"), 2);
        assert_eq!(t.count("kubectl rollout, now!"), 2 + 2 + 1 + 1 + 1);
    }
}
