//! The in-memory copy of the index's vectors, scanned exactly for k-NN.
//!
//! Brute force over contiguous rows beats an approximate graph at this scale and never misses a
//! neighbour for lack of a graph edge. The scan reads an 8-bit copy of each vector (a quarter of
//! the memory traffic of f32, which is what bounds the scan), keeps the best few times `k`
//! candidates, then rescores those exactly in f32.

use std::collections::HashMap;

use docbrain_core::{ReadAccess, Reader};

/// Vectors of all chunks, row-major, with their chunk row ids, spaces and read rules.
#[derive(Debug, Default)]
pub(crate) struct VectorCache {
    dimension: usize,
    ids: Vec<i64>,
    spaces: Vec<u32>,
    /// Each row's read rule, as an index into `rule_list`.
    rules: Vec<u32>,
    rule_ids: HashMap<String, u32>,
    rule_list: Vec<ReadAccess>,
    data: Vec<f32>,
    /// Each row quantised to i8 with its own scale: `v ≈ quantised * scale`.
    quantised: Vec<i8>,
    scales: Vec<f32>,
    rows: HashMap<i64, usize>,
    space_ids: HashMap<String, u32>,
}

impl VectorCache {
    pub(crate) fn new(dimension: usize) -> Self {
        Self {
            dimension,
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    fn space_id(&mut self, space: &str) -> u32 {
        let next = self.space_ids.len() as u32;
        *self.space_ids.entry(space.to_string()).or_insert(next)
    }

    /// Interns a read rule (the page record's JSON); one that does not parse admits nobody.
    fn rule_id(&mut self, access: &str) -> u32 {
        if let Some(id) = self.rule_ids.get(access) {
            return *id;
        }
        let id = self.rule_list.len() as u32;
        self.rule_list
            .push(serde_json::from_str(access).unwrap_or_else(|_| ReadAccess::nobody()));
        self.rule_ids.insert(access.to_owned(), id);
        id
    }

    /// Returns which rows a search of `space` by `reader` may return (no reader: no
    /// permission filter), or `None` when none can be (an unknown space).
    pub(crate) fn keep(&self, space: Option<&str>, reader: Option<&Reader>) -> Option<Keep> {
        let space = match space {
            Some(s) => Some(*self.space_ids.get(s)?),
            None => None,
        };
        let readable = reader.map(|r| self.rule_list.iter().map(|rule| rule.admits(r)).collect());
        Some(Keep { space, readable })
    }

    /// Whether the mirror holds row `id` and `keep` lets it through.
    pub(crate) fn keeps(&self, keep: &Keep, id: i64) -> bool {
        self.rows.get(&id).is_some_and(|&row| keep.row(self, row))
    }

    /// Adds (or replaces) one row; `access` is its page's read rule as stored.
    pub(crate) fn insert(&mut self, id: i64, space: &str, access: &str, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dimension);
        self.remove(id);
        let space = self.space_id(space);
        let rule = self.rule_id(access);
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
        self.spaces.push(space);
        self.rules.push(rule);
        self.data.extend_from_slice(vector);
        let (q, scale) = quantise(vector);
        self.quantised.extend_from_slice(&q);
        self.scales.push(scale);
    }

    /// Removes one row by swapping the last row into its place.
    pub(crate) fn remove(&mut self, id: i64) {
        let Some(row) = self.rows.remove(&id) else {
            return;
        };
        let last = self.ids.len() - 1;
        if row != last {
            let moved = self.ids[last];
            self.ids[row] = moved;
            self.spaces[row] = self.spaces[last];
            self.rules[row] = self.rules[last];
            self.scales[row] = self.scales[last];
            let d = self.dimension;
            self.data.copy_within(last * d..(last + 1) * d, row * d);
            self.quantised
                .copy_within(last * d..(last + 1) * d, row * d);
            self.rows.insert(moved, row);
        }
        self.ids.pop();
        self.spaces.pop();
        self.rules.pop();
        self.scales.pop();
        self.data.truncate(last * self.dimension);
        self.quantised.truncate(last * self.dimension);
    }

    /// Returns the ids of the `k` rows `keep` lets through with the highest dot product with
    /// `query`, best first. The filter applies during the scan, so no hit is lost to it.
    pub(crate) fn top_k(&self, query: &[f32], k: usize, keep: &Keep) -> Vec<(i64, f32)> {
        if k == 0 || self.ids.is_empty() || query.len() != self.dimension {
            return Vec::new();
        }
        let (query_q, _) = quantise(query);
        let shortlist = (k * 4).max(64);
        let n = self.ids.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(4);
        let per = n.div_ceil(threads).max(8192);
        let candidates: Vec<usize> = if per >= n {
            self.scan(&query_q, 0..n, shortlist, keep)
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..n)
                    .step_by(per)
                    .map(|start| {
                        let end = (start + per).min(n);
                        let query_q = &query_q;
                        scope.spawn(move || self.scan(query_q, start..end, shortlist, keep))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        let d = self.dimension;
        let mut best: Vec<(i64, f32)> = candidates
            .into_iter()
            .map(|row| {
                (
                    self.ids[row],
                    dot(query, &self.data[row * d..(row + 1) * d]),
                )
            })
            .collect();
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        best.truncate(k);
        best
    }

    /// Returns the rows of `rows` with the `keep` highest approximate scores.
    fn scan(
        &self,
        query: &[i8],
        rows: std::ops::Range<usize>,
        best: usize,
        keep: &Keep,
    ) -> Vec<usize> {
        let d = self.dimension;
        let mut scored: Vec<(usize, f32)> = Vec::with_capacity(rows.len());
        for row in rows {
            if !keep.row(self, row) {
                continue;
            }
            let q = &self.quantised[row * d..(row + 1) * d];
            scored.push((row, dot_i8(query, q) as f32 * self.scales[row]));
        }
        if scored.len() > best {
            scored.select_nth_unstable_by(best - 1, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(best);
        }
        scored.into_iter().map(|(row, _)| row).collect()
    }
}

/// Which rows a search may return: of one space, and readable by the reader.
#[derive(Debug)]
pub(crate) struct Keep {
    space: Option<u32>,
    /// Per rule: whether the reader may read pages under it; `None`: no permission filter.
    readable: Option<Vec<bool>>,
}

impl Keep {
    fn row(&self, cache: &VectorCache, row: usize) -> bool {
        self.space.is_none_or(|s| cache.spaces[row] == s)
            && self
                .readable
                .as_ref()
                .is_none_or(|r| r.get(cache.rules[row] as usize) == Some(&true))
    }
}

/// Quantises a vector to i8 with one scale: `v[i] ≈ q[i] * scale`.
fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    let q = v
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scale)
}

/// Integer dot product; integer sums are associative, so this plain form vectorises.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum()
}

/// Dot product with eight independent accumulators, so the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = "[]";

    fn all(c: &VectorCache, space: Option<&str>) -> Keep {
        c.keep(space, None).unwrap_or(Keep {
            space: Some(u32::MAX),
            readable: None,
        })
    }

    #[test]
    fn inserts_removes_and_ranks() {
        let mut c = VectorCache::new(3);
        c.insert(1, "A", OPEN, &[1.0, 0.0, 0.0]);
        c.insert(2, "B", OPEN, &[0.0, 1.0, 0.0]);
        c.insert(3, "A", OPEN, &[0.7, 0.7, 0.0]);
        assert_eq!(
            c.top_k(&[1.0, 0.0, 0.0], 2, &all(&c, None))
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(
            c.top_k(&[0.0, 1.0, 0.0], 5, &all(&c, Some("A")))
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            [3, 1]
        );
        assert!(c.top_k(&[0.0, 1.0, 0.0], 5, &all(&c, Some("Z"))).is_empty());
        c.remove(1);
        c.remove(1);
        assert_eq!(c.len(), 2);
        assert_eq!(c.top_k(&[1.0, 0.0, 0.0], 1, &all(&c, None))[0].0, 3);
        c.insert(3, "B", OPEN, &[0.0, 0.0, 1.0]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.top_k(&[0.0, 0.0, 1.0], 1, &all(&c, Some("B")))[0].0, 3);
    }

    #[test]
    fn quantised_scan_returns_the_exact_top_k() {
        let mut state = 42u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let d = 64;
        let mut c = VectorCache::new(d);
        let rows: Vec<Vec<f32>> = (0..20_000)
            .map(|_| (0..d).map(|_| rand()).collect())
            .collect();
        for (i, v) in rows.iter().enumerate() {
            c.insert(i as i64, if i % 2 == 0 { "A" } else { "B" }, OPEN, v);
        }
        for _ in 0..20 {
            let q: Vec<f32> = (0..d).map(|_| rand()).collect();
            let mut exact: Vec<(i64, f32)> = rows
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64, dot(&q, v)))
                .collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let want: Vec<i64> = exact.iter().take(10).map(|x| x.0).collect();
            let got: Vec<i64> = c
                .top_k(&q, 10, &all(&c, None))
                .iter()
                .map(|x| x.0)
                .collect();
            assert_eq!(got, want);
            let got_a = c.top_k(&q, 5, &all(&c, Some("A")));
            let want_a: Vec<i64> = exact
                .iter()
                .filter(|x| x.0 % 2 == 0)
                .take(5)
                .map(|x| x.0)
                .collect();
            assert_eq!(got_a.iter().map(|x| x.0).collect::<Vec<_>>(), want_a);
        }
    }

    #[test]
    fn dot_handles_remainders() {
        let a: Vec<f32> = (0..13).map(|i| i as f32).collect();
        let expected: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), expected);
        let q: Vec<i8> = (0..37).map(|i| (i * 7 - 100) as i8).collect();
        let want: i32 = q.iter().map(|x| i32::from(*x) * i32::from(*x)).sum();
        assert_eq!(dot_i8(&q, &q), want);
    }
}
