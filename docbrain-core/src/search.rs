//! Search requests and results.

use serde::{Deserialize, Serialize};

use crate::page::PageId;
use crate::read_access::{Caller, Reader};

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

impl SearchRequest {
    /// The most hits one search returns.
    pub const MAX_K: usize = 50;

    /// The distinct lowercase keywords of the question, without stop words, in order: what a
    /// lexical (BM25) search looks for. When every word is a stop word, the words are kept: a
    /// search for "how to" still searches.
    pub fn terms(&self) -> Vec<String> {
        query_terms(&self.text)
    }
}

impl SearchHit {
    /// Returns the first `max_chars` characters of the text for display: prose on one line,
    /// code blocks (fenced with backticks) with their line breaks.
    pub fn snippet(&self, max_chars: usize) -> String {
        let mut out = String::with_capacity(self.text.len().min(max_chars * 4));
        let mut in_code = false;
        for line in self.text.lines() {
            let fence = line.trim_start().starts_with("```");
            // Code blocks and table rows keep their lines.
            if in_code || fence || line.trim_start().starts_with('|') {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(line.trim_end());
                if fence {
                    in_code = !in_code;
                    if !in_code {
                        out.push('\n');
                    }
                }
            } else {
                for word in line.split_whitespace() {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
            }
        }
        let out = out.trim_end();
        match out.char_indices().nth(max_chars) {
            Some((cut, _)) => format!("{}…", out[..cut].trim_end()),
            None => out.to_owned(),
        }
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

    fn hit(page: &str, path: &[&str], text: &str) -> SearchHit {
        SearchHit {
            chunk_id: format!("{page}-{}", path.len()),
            page_id: page.into(),
            title: format!("Page {page}"),
            space_key: "ENG".into(),
            heading_path: path.iter().map(|s| (*s).to_owned()).collect(),
            url: None,
            text: text.into(),
            score: 0.03,
        }
    }

    #[test]
    fn snippets_keep_code_on_its_lines_and_prose_on_one() {
        let h = hit(
            "1",
            &[],
            "Restart the service:\nthen check it.\n\n```bash\nsystemctl restart pay\njournalctl -u pay\n```\nDone.",
        );
        assert_eq!(
            h.snippet(500),
            "Restart the service: then check it.\n```bash\nsystemctl restart pay\njournalctl -u pay\n```\nDone."
        );
        assert!(h.snippet(10).ends_with('…'));
    }

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

/// The distinct lowercase keywords of `text`, without stop words, in order (see
/// [`SearchRequest::terms`]).
fn query_terms(text: &str) -> Vec<String> {
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
