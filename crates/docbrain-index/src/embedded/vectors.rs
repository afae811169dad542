//! The in-memory copy of the index's vectors, scanned exactly for k-NN.
//!
//! Brute force over contiguous rows beats an approximate graph at this scale (100k chunks of 384
//! floats scan in milliseconds) and never misses a neighbour.

use std::collections::HashMap;

/// Vectors of all chunks, row-major, with their chunk row ids and spaces.
#[derive(Debug, Default)]
pub(crate) struct VectorCache {
    dimension: usize,
    ids: Vec<i64>,
    spaces: Vec<u32>,
    data: Vec<f32>,
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

    /// Adds (or replaces) one row.
    pub(crate) fn insert(&mut self, id: i64, space: &str, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dimension);
        self.remove(id);
        let space = self.space_id(space);
        self.rows.insert(id, self.ids.len());
        self.ids.push(id);
        self.spaces.push(space);
        self.data.extend_from_slice(vector);
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
            let d = self.dimension;
            self.data.copy_within(last * d..(last + 1) * d, row * d);
            self.rows.insert(moved, row);
        }
        self.ids.pop();
        self.spaces.pop();
        self.data.truncate(last * self.dimension);
    }

    /// Returns the ids of the `k` rows with the highest dot product with `query`, best first,
    /// optionally only rows of one space.
    pub(crate) fn top_k(&self, query: &[f32], k: usize, space: Option<&str>) -> Vec<(i64, f32)> {
        if k == 0 || self.ids.is_empty() || query.len() != self.dimension {
            return Vec::new();
        }
        let space = match space {
            Some(s) => match self.space_ids.get(s) {
                Some(id) => Some(*id),
                None => return Vec::new(),
            },
            None => None,
        };
        let n = self.ids.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(4);
        let per = n.div_ceil(threads).max(4096);
        if per >= n {
            let mut best = self.scan(query, 0..n, k, space);
            best.sort_by(|a, b| b.1.total_cmp(&a.1));
            return best;
        }
        let mut best: Vec<(i64, f32)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .step_by(per)
                .map(|start| {
                    let end = (start + per).min(n);
                    scope.spawn(move || self.scan(query, start..end, k, space))
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        best.truncate(k);
        best
    }

    fn scan(
        &self,
        query: &[f32],
        rows: std::ops::Range<usize>,
        k: usize,
        space: Option<u32>,
    ) -> Vec<(i64, f32)> {
        let d = self.dimension;
        let mut scored: Vec<(i64, f32)> = Vec::with_capacity(rows.len());
        for row in rows {
            if space.is_some_and(|s| self.spaces[row] != s) {
                continue;
            }
            scored.push((
                self.ids[row],
                dot(query, &self.data[row * d..(row + 1) * d]),
            ));
        }
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(k);
        }
        scored
    }
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

    #[test]
    fn inserts_removes_and_ranks() {
        let mut c = VectorCache::new(3);
        c.insert(1, "A", &[1.0, 0.0, 0.0]);
        c.insert(2, "B", &[0.0, 1.0, 0.0]);
        c.insert(3, "A", &[0.7, 0.7, 0.0]);
        assert_eq!(
            c.top_k(&[1.0, 0.0, 0.0], 2, None)
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(
            c.top_k(&[0.0, 1.0, 0.0], 5, Some("A"))
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            [3, 1]
        );
        assert!(c.top_k(&[0.0, 1.0, 0.0], 5, Some("Z")).is_empty());
        c.remove(1);
        c.remove(1);
        assert_eq!(c.len(), 2);
        assert_eq!(c.top_k(&[1.0, 0.0, 0.0], 1, None)[0].0, 3);
        c.insert(3, "B", &[0.0, 0.0, 1.0]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.top_k(&[0.0, 0.0, 1.0], 1, Some("B"))[0].0, 3);
    }

    #[test]
    fn dot_handles_remainders() {
        let a: Vec<f32> = (0..13).map(|i| i as f32).collect();
        let expected: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), expected);
    }
}
