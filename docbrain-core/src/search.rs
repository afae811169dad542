//! Search requests and results.

use serde::{Deserialize, Serialize};

use crate::access::{Caller, Reader};
use crate::page::PageId;

/// The most hits one search returns.
pub const MAX_K: usize = 50;

/// Optional filters on a search, and whose permissions it obeys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchFilter {
    /// Only return chunks of this space.
    pub space_key: Option<String>,
    /// Only return chunks of pages this caller may read (anonymous by default).
    #[serde(default)]
    pub caller: Caller,
}

impl SearchFilter {
    /// Returns a filter for `caller` over every space.
    pub fn for_caller(caller: Caller) -> Self {
        Self {
            space_key: None,
            caller,
        }
    }
}

/// A hybrid search request as an [`crate::IndexStore`] receives it: text for BM25 and the
/// embedded query for k-NN.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The user's question, as typed.
    pub text: String,
    /// The embedding of the question.
    pub vector: Vec<f32>,
    /// How many hits to return.
    pub k: usize,
    /// Filters.
    pub filter: SearchFilter,
    /// Only chunks of pages this reader may read; `None`: no permission filter.
    pub reader: Option<Reader>,
}

/// One search result: a chunk and where it lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The chunk id.
    pub chunk_id: String,
    /// The page id.
    pub page_id: PageId,
    /// The page title.
    pub title: String,
    /// The space key.
    pub space_key: String,
    /// Headings above the chunk, page title first.
    pub heading_path: Vec<String>,
    /// A link to the page.
    pub url: Option<String>,
    /// The chunk text.
    pub text: String,
    /// Fused relevance score (reciprocal rank fusion; higher is better).
    pub score: f64,
}

impl SearchHit {
    /// Returns the first `max_chars` characters of the text on one line, for display.
    pub fn snippet(&self, max_chars: usize) -> String {
        crate::text::one_line(&self.text, max_chars)
    }
}

/// Fuses ranked lists of ids by reciprocal rank fusion: `score = Σ 1 / (k + rank)`, rank from 1.
///
/// Returns ids with their fused scores, best first; ties keep the order of first appearance.
pub fn reciprocal_rank_fusion<T: Clone + Eq + std::hash::Hash>(
    lists: &[&[T]],
    k: f64,
) -> Vec<(T, f64)> {
    let mut scores: Vec<(T, f64)> = Vec::new();
    let mut index: std::collections::HashMap<T, usize> = std::collections::HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            let add = 1.0 / (k + rank as f64 + 1.0);
            match index.get(id) {
                Some(&i) => scores[i].1 += add,
                None => {
                    index.insert(id.clone(), scores.len());
                    scores.push((id.clone(), add));
                }
            }
        }
    }
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let bm25 = ["a", "b", "c"];
        let knn = ["c", "a", "d"];
        let fused = reciprocal_rank_fusion(&[&bm25, &knn], 60.0);
        let order: Vec<_> = fused.iter().map(|(id, _)| *id).collect();
        assert_eq!(order, ["a", "c", "b", "d"]);
    }

    #[test]
    fn snippet_cuts_on_chars() {
        let hit = SearchHit {
            chunk_id: "1:0".into(),
            page_id: "1".into(),
            title: "t".into(),
            space_key: "S".into(),
            heading_path: vec![],
            url: None,
            text: "héllo\n\nwörld  again".into(),
            score: 0.0,
        };
        assert_eq!(hit.snippet(7), "héllo w…");
        assert_eq!(hit.snippet(100), "héllo wörld again");
    }
}

/// Common English words that carry no meaning for keyword search ("how do I …").
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our",
    "should", "so", "that", "the", "their", "then", "there", "these", "this", "to", "was", "we",
    "what", "when", "where", "which", "who", "why", "will", "with", "you", "your",
];

/// Returns the distinct lowercase keywords of a question, without stop words, in order.
///
/// When every word is a stop word, the words are kept: a search for "how to" still searches.
pub fn query_terms(text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut seen = std::collections::HashSet::new();
    let keep_all = words.iter().all(|w| STOPWORDS.contains(&w.as_str()));
    words
        .into_iter()
        .filter(|w| keep_all || !STOPWORDS.contains(&w.as_str()))
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

#[cfg(test)]
mod term_tests {
    use super::query_terms;

    #[test]
    fn drops_stop_words_and_duplicates() {
        assert_eq!(
            query_terms("How do I rotate the DB credentials? rotate!"),
            ["rotate", "db", "credentials"]
        );
        assert_eq!(query_terms("how to"), ["how", "to"]);
        assert!(query_terms("  ?! ").is_empty());
    }
}
