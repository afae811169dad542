//! Heading-aware Markdown chunking.
//!
//! A page is cut into sections by its headings; each section's blocks (paragraphs, lists, fenced
//! code, tables) are packed into chunks of at most `max_tokens`, counted over the breadcrumb and
//! the text together, because both are embedded. Boundaries are content-defined once a chunk is
//! half full (a boundary falls after a block whose hash is even), so editing one paragraph moves
//! the boundaries of its own chunk and rarely more: the chunks after it keep their text, their
//! hash and therefore their vectors.

use std::fmt::Debug;
use std::sync::Arc;

use crate::chunk::Chunk;
use crate::embedder::{Embedder, EstimatedTokens, TokenCounter};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::StableHasher;
use crate::page::Page;

/// Cuts a page into chunks. Synchronous: chunking is pure computation.
pub trait Chunker: Debug + Send + Sync + 'static {
    /// Returns the chunks of `page`, in reading order, positions from 0.
    fn chunk(&self, page: &Page) -> Vec<Chunk>;
}

/// The default chunker: heading-aware, token-budgeted, with a small overlap.
#[derive(Debug, Clone)]
pub struct MarkdownChunker {
    max_tokens: usize,
    overlap_tokens: usize,
    counter: Arc<dyn TokenCounter>,
}

impl Default for MarkdownChunker {
    fn default() -> Self {
        Self {
            max_tokens: Self::DEFAULT_MAX_TOKENS,
            overlap_tokens: Self::DEFAULT_OVERLAP_TOKENS,
            counter: Arc::new(EstimatedTokens),
        }
    }
}

impl MarkdownChunker {
    /// The default budget: the local model reads 256 tokens including its two special tokens.
    pub const DEFAULT_MAX_TOKENS: usize = 254;

    /// The default overlap: tokens a chunk carries over from the one before it.
    pub const DEFAULT_OVERLAP_TOKENS: usize = 32;

    /// A chunker of chunks of at most `max_tokens` that carry `overlap_tokens` over from the
    /// chunk before; it estimates token counts until told how to count them
    /// ([`MarkdownChunker::fit_to`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`] for fewer than 32 tokens, or an overlap of half the
    /// budget or more.
    pub fn new(max_tokens: usize, overlap_tokens: usize) -> Result<Self> {
        if max_tokens < 32 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("chunk size of {max_tokens} tokens is too small: use at least 32"),
            ));
        }
        if overlap_tokens * 2 >= max_tokens {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "chunk overlap of {overlap_tokens} tokens must be less than half the chunk size ({max_tokens})"
                ),
            ));
        }
        Ok(Self {
            max_tokens,
            overlap_tokens,
            counter: Arc::new(EstimatedTokens),
        })
    }

    /// This chunker counting tokens with `counter`.
    #[must_use]
    pub fn counting_with(mut self, counter: Arc<dyn TokenCounter>) -> Self {
        self.counter = counter;
        self
    }

    /// This chunker counting tokens as `embedder`'s model does, when it says how: chunks
    /// then fit the model's input.
    #[must_use]
    pub fn fit_to(self, embedder: &dyn Embedder) -> Self {
        match embedder.token_counter() {
            Some(counter) => self.counting_with(counter),
            None => self,
        }
    }
}

impl Chunker for MarkdownChunker {
    fn chunk(&self, page: &Page) -> Vec<Chunk> {
        let mut packer = Packer {
            chunker: self,
            page,
            chunks: Vec::new(),
        };
        let mut path: Vec<(usize, String)> = Vec::new();
        let mut blocks: Vec<Block<'_>> = Vec::new();
        for block in parse(&page.body) {
            crate::give_way();
            if let Block::Heading { level, text } = block {
                packer.section(&path, &blocks);
                blocks.clear();
                while path.last().is_some_and(|(l, _)| *l >= level) {
                    path.pop();
                }
                let duplicate_title = path.is_empty() && level == 1 && text == page.title;
                if !duplicate_title {
                    path.push((level, text.to_string()));
                }
            } else {
                blocks.push(block);
            }
        }
        packer.section(&path, &blocks);
        packer.chunks
    }
}

/// A block of Markdown, borrowed from the page body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block<'a> {
    Heading { level: usize, text: &'a str },
    Code(Vec<&'a str>),
    Table(Vec<&'a str>),
    Text(Vec<&'a str>),
}

fn fence_of(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start();
    let c = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = t.chars().take_while(|x| *x == c).count();
    (n >= 3).then_some((c, n))
}

fn closes_fence(line: &str, (c, n): (char, usize)) -> bool {
    let t = line.trim();
    t.chars().take_while(|x| *x == c).count() >= n && t.chars().all(|x| x == c)
}

fn heading_of(line: &str) -> Option<(usize, &str)> {
    let t = line.trim_start();
    let level = t.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim_end();
    (!text.is_empty()).then_some((level, text))
}

fn is_table_line(line: &str) -> bool {
    line.trim_start().starts_with('|')
}

fn starts_block(line: &str) -> bool {
    fence_of(line).is_some() || heading_of(line).is_some() || is_table_line(line)
}

fn parse(markdown: &str) -> Vec<Block<'_>> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
        } else if let Some(fence) = fence_of(line) {
            let start = i;
            i += 1;
            while i < lines.len() && !closes_fence(lines[i], fence) {
                i += 1;
            }
            i = (i + 1).min(lines.len());
            blocks.push(Block::Code(lines[start..i].to_vec()));
        } else if let Some((level, text)) = heading_of(line) {
            blocks.push(Block::Heading { level, text });
            i += 1;
        } else if is_table_line(line) {
            let start = i;
            while i < lines.len() && is_table_line(lines[i]) {
                i += 1;
            }
            blocks.push(Block::Table(lines[start..i].to_vec()));
        } else {
            let start = i;
            i += 1;
            while i < lines.len() && !lines[i].trim().is_empty() && !starts_block(lines[i]) {
                i += 1;
            }
            blocks.push(Block::Text(lines[start..i].to_vec()));
        }
    }
    blocks
}

/// Splits `range` of `pieces` into runs that fit `budget`, recursively at the strongest
/// boundary: the one after the piece with the highest [`strength`], among those leaving at least a
/// quarter of the pieces on each side. A boundary's strength depends only on the piece before
/// it, so an edit re-splits only the run that contains it.
fn split(
    pieces: &[Piece],
    range: std::ops::Range<usize>,
    budget: usize,
    out: &mut Vec<std::ops::Range<usize>>,
) {
    let slice = &pieces[range.clone()];
    let total: usize = slice.iter().map(|p| p.tokens).sum();
    if total <= budget || slice.len() < 2 {
        out.push(range);
        return;
    }
    // Balance by piece count, not tokens: an edit changes tokens, never the count.
    let n = slice.len();
    let margin = n / 4;
    let cut = (margin.max(1)..=(n - margin.max(1)))
        .max_by_key(|&i| (strength(&slice[i - 1].text), std::cmp::Reverse(i)))
        .unwrap_or(n / 2);
    let cut = range.start + cut;
    split(pieces, range.start..cut, budget, out);
    split(pieces, cut..range.end, budget, out);
}

/// Returns the strength of the boundary after a piece: a hash of its opening words, which
/// edits inside a paragraph rarely touch.
fn strength(text: &str) -> u64 {
    let end = text.char_indices().nth(24).map_or(text.len(), |(i, _)| i);
    StableHasher::of(&text[..end])
}

/// A unit that is never split further: a paragraph, a group of lines or table rows.
#[derive(Debug)]
struct Piece {
    text: String,
    tokens: usize,
    is_text: bool,
}

struct Packer<'c, 'p> {
    chunker: &'c MarkdownChunker,
    page: &'p Page,
    chunks: Vec<Chunk>,
}

impl Packer<'_, '_> {
    fn count(&self, s: &str) -> usize {
        crate::cpu::give_way_now();
        self.chunker.counter.count(s)
    }

    fn section(&mut self, path: &[(usize, String)], blocks: &[Block<'_>]) {
        if blocks.is_empty() {
            return;
        }
        let mut heading_path = vec![self.page.title.clone()];
        heading_path.extend(path.iter().map(|(_, t)| t.clone()));
        let crumb_tokens = self.count(&heading_path.join(" > "));
        let budget = self
            .chunker
            .max_tokens
            .saturating_sub(crumb_tokens)
            .max(self.chunker.overlap_tokens + 16);
        let pieces: Vec<Piece> = blocks.iter().flat_map(|b| self.pieces(b, budget)).collect();

        let mut ranges = Vec::new();
        split(
            &pieces,
            0..pieces.len(),
            budget - self.chunker.overlap_tokens,
            &mut ranges,
        );
        let mut overlap: Option<String> = None;
        for range in ranges {
            let parts: Vec<&Piece> = pieces[range].iter().collect();
            let used: usize = parts.iter().map(|p| p.tokens).sum();
            overlap = self.emit(
                &heading_path,
                overlap.as_deref(),
                &parts,
                crumb_tokens + used,
            );
        }
    }

    /// Pushes a chunk and returns the overlap that opens the next one.
    fn emit(
        &mut self,
        heading_path: &[String],
        overlap: Option<&str>,
        parts: &[&Piece],
        tokens: usize,
    ) -> Option<String> {
        let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
        let overlap_tokens = overlap.map_or(0, |o| self.count(o));
        let position = self.chunks.len() as u32;
        self.chunks.push(Chunk::with_overlap(
            &self.page.id,
            position,
            heading_path.to_vec(),
            overlap,
            &texts.join("\n\n"),
            (tokens + overlap_tokens) as u32,
        ));
        let last = parts.last().filter(|p| p.is_text)?;
        self.tail(&last.text)
    }

    /// Returns the longest run of whole trailing sentences of `text` within the overlap budget.
    fn tail(&self, text: &str) -> Option<String> {
        let max = self.chunker.overlap_tokens;
        if max == 0 {
            return None;
        }
        let cuts = text
            .char_indices()
            .filter(|(i, c)| {
                matches!(c, '.' | '?' | '!' | '\n')
                    && text[i + c.len_utf8()..].starts_with([' ', '\n'])
            })
            .map(|(i, c)| i + c.len_utf8());
        let mut best = None;
        for cut in cuts.collect::<Vec<_>>().into_iter().rev() {
            let tail = text[cut..].trim();
            if tail.is_empty() {
                continue;
            }
            if self.count(tail) > max {
                break;
            }
            best = Some(tail.to_string());
        }
        best
    }

    fn piece(&self, text: String, is_text: bool) -> Piece {
        Piece {
            tokens: self.count(&text),
            text,
            is_text,
        }
    }

    fn pieces(&self, block: &Block<'_>, budget: usize) -> Vec<Piece> {
        match block {
            Block::Heading { .. } => Vec::new(),
            Block::Text(lines) => {
                let whole = self.piece(lines.join("\n"), true);
                if whole.tokens <= budget {
                    return vec![whole];
                }
                let mut out = Vec::new();
                for group in self.group(lines, budget, 0) {
                    let piece = self.piece(group.join("\n"), true);
                    if piece.tokens <= budget {
                        out.push(piece);
                    } else {
                        out.extend(self.split_words(&piece.text, budget));
                    }
                }
                out
            }
            Block::Code(lines) => {
                let whole = self.piece(lines.join("\n"), false);
                if whole.tokens <= budget || lines.len() < 3 {
                    return vec![whole];
                }
                let open = lines[0];
                let (inner, close) = match fence_of(open) {
                    Some(f) if closes_fence(lines[lines.len() - 1], f) => {
                        (&lines[1..lines.len() - 1], lines[lines.len() - 1])
                    }
                    _ => (&lines[1..], "```"),
                };
                let frame = self.count(open) + self.count(close);
                self.group(inner, budget, frame)
                    .into_iter()
                    .map(|g| self.piece(format!("{open}\n{}\n{close}", g.join("\n")), false))
                    .collect()
            }
            Block::Table(lines) => {
                let whole = self.piece(lines.join("\n"), false);
                if whole.tokens <= budget || lines.len() < 3 {
                    return vec![whole];
                }
                let is_separator = |l: &str| {
                    l.contains('-') && l.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
                };
                let header_len = if is_separator(lines[1]) { 2 } else { 1 };
                let header = lines[..header_len].join("\n");
                let frame = self.count(&header);
                self.group(&lines[header_len..], budget, frame)
                    .into_iter()
                    .map(|g| self.piece(format!("{header}\n{}", g.join("\n")), false))
                    .collect()
            }
        }
    }

    /// Groups whole lines so that each group plus `frame` tokens fits the budget.
    fn group<'l>(&self, lines: &[&'l str], budget: usize, frame: usize) -> Vec<Vec<&'l str>> {
        let mut groups = Vec::new();
        let mut current = Vec::new();
        let mut used = frame;
        for &line in lines {
            let n = self.count(line);
            if !current.is_empty() && used + n > budget {
                groups.push(std::mem::take(&mut current));
                used = frame;
            }
            current.push(line);
            used += n;
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }

    /// Splits one over-long line of prose on word boundaries.
    fn split_words(&self, text: &str, budget: usize) -> Vec<Piece> {
        let words: Vec<&str> = text.split_whitespace().collect();
        self.group(&words, budget, 0)
            .into_iter()
            .map(|g| self.piece(g.join(" "), true))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> Page {
        Page::new("42", "ENG", "Deploy Guide", body)
    }

    fn small() -> MarkdownChunker {
        MarkdownChunker::new(64, 8).unwrap()
    }

    #[test]
    fn parses_blocks() {
        let md = "# A\n\npara one\nstill one\n\n```rust\nfn x() {}\n\n# not a heading\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n## B ##\n- item\n- item 2";
        let blocks = parse(md);
        assert_eq!(
            blocks,
            vec![
                Block::Heading {
                    level: 1,
                    text: "A"
                },
                Block::Text(vec!["para one", "still one"]),
                Block::Code(vec!["```rust", "fn x() {}", "", "# not a heading", "```"]),
                Block::Table(vec!["| a | b |", "|---|---|", "| 1 | 2 |"]),
                Block::Heading {
                    level: 2,
                    text: "B"
                },
                Block::Text(vec!["- item", "- item 2"]),
            ]
        );
    }

    #[test]
    fn heading_paths_follow_nesting_and_skip_the_title() {
        let md = "# Deploy Guide\n\nIntro.\n\n## Build\n\nRun make.\n\n### Flags\n\nUse -j.\n\n## Ship\n\nPush it.";
        let chunks = MarkdownChunker::default().chunk(&page(md));
        let paths: Vec<String> = chunks.iter().map(Chunk::breadcrumb).collect();
        assert_eq!(
            paths,
            [
                "Deploy Guide",
                "Deploy Guide > Build",
                "Deploy Guide > Build > Flags",
                "Deploy Guide > Ship"
            ]
        );
        assert_eq!(chunks[3].text, "Push it.");
        assert_eq!(chunks[3].id, "42:3");
        assert!(chunks[2]
            .embedding_text()
            .starts_with("Deploy Guide > Build > Flags\n\n"));
    }

    #[test]
    fn chunks_fit_the_budget_and_keep_every_word() {
        let para = "The service retries failed requests with exponential backoff and jitter. ";
        let md: String = (0..40)
            .map(|i| format!("{para}Paragraph {i} ends here.\n\n"))
            .collect();
        let chunks = small().chunk(&page(&md));
        assert!(chunks.len() > 5, "{}", chunks.len());
        let counter = EstimatedTokens;
        for c in &chunks {
            assert!(counter.count(&c.embedding_text()) <= 64 + 4, "{}", c.text);
        }
        for i in 0..40 {
            let needle = format!("Paragraph {i} ends here.");
            assert!(chunks.iter().any(|c| c.text.contains(&needle)), "{needle}");
        }
    }

    #[test]
    fn code_blocks_are_never_cut_open() {
        let code: String = (0..60).map(|i| format!("echo line {i}\n")).collect();
        let md = format!("Intro text.\n\n```bash\n{code}```\n\nAfter.");
        let chunks = small().chunk(&page(&md));
        for c in &chunks {
            let fences = c.text.lines().filter(|l| l.starts_with("```")).count();
            assert_eq!(fences % 2, 0, "unbalanced fence in {:?}", c.text);
        }
        for i in 0..60 {
            let needle = format!("echo line {i}\n");
            assert_eq!(
                chunks.iter().filter(|c| c.text.contains(&needle)).count(),
                1,
                "{needle}"
            );
        }
        assert!(chunks
            .iter()
            .any(|c| c.text.starts_with("```bash\necho line")));
    }

    #[test]
    fn table_rows_stay_whole_and_keep_the_header() {
        let rows: String = (0..50)
            .map(|i| format!("| host-{i} | 10.0.0.{i} |\n"))
            .collect();
        let md = format!("| Host | Address |\n|---|---|\n{rows}");
        let chunks = small().chunk(&page(&md));
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(
                c.text.starts_with("| Host | Address |\n|---|---|\n"),
                "{}",
                c.text
            );
            assert!(c
                .text
                .lines()
                .all(|l| l.starts_with('|') && l.ends_with('|')));
        }
    }

    #[test]
    fn overlong_lines_split_on_words() {
        let md = "word ".repeat(500);
        let chunks = small().chunk(&page(&md));
        assert!(chunks.len() > 5);
        let total: usize = chunks.iter().map(|c| c.text.matches("word").count()).sum();
        assert!(total >= 500);
    }

    #[test]
    fn editing_one_paragraph_changes_few_chunks() {
        let body = |at: usize, edit: &dyn Fn(String) -> String| -> String {
            (0..150)
                .map(|i| {
                    let words = ["queue depth", "consumer lag", "disk pressure", "error rate"];
                    let mut p = format!("Step {i}: check the {} metrics.", words[i % 4]);
                    if i % 3 == 0 {
                        p.push_str(" Compare them with last week's dashboard before acting.");
                    }
                    if i == at {
                        p = edit(p);
                    }
                    p + "\n\n"
                })
                .collect()
        };
        let c = small();
        let before = c.chunk(&page(&body(usize::MAX, &|p| p)));
        assert!(before.len() >= 50, "{}", before.len());
        let old: std::collections::HashSet<_> = before.iter().map(|c| &c.content_hash).collect();
        let changed = |at: usize, edit: &dyn Fn(String) -> String| {
            let after = c.chunk(&page(&body(at, edit)));
            after
                .iter()
                .filter(|c| !old.contains(&c.content_hash))
                .count()
        };
        for at in 0..150 {
            let append = |p: String| p + " Then page the on-call engineer.";
            let reword = |p: String| p.replace("metrics", "latency and saturation graphs");
            assert!(changed(at, &append) <= 2, "appending to paragraph {at}");
            assert!(changed(at, &reword) <= 2, "rewording paragraph {at}");
            // Boundaries key on a paragraph's opening words, so rewriting those may move one
            // boundary more; that is the known worst case.
            let prefix = |p: String| format!("Important: {p}");
            assert!(changed(at, &prefix) <= 3, "prefixing paragraph {at}");
        }
    }

    #[test]
    fn bad_budgets_are_refused() {
        let err = MarkdownChunker::new(10, 2).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        let err = MarkdownChunker::new(100, 50).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
    }
}
