//! The arithmetic of the local model: a matrix product against packed right-hand sides, and
//! the row functions of a BERT layer (GELU, softmax, layer norm).
//!
//! On x86-64 with AVX2 and FMA (checked at run time) the product runs a 6×16 register-tiled
//! kernel and the row functions are compiled for those features; elsewhere the same loops run
//! portably. Both paths compute in f32 and differ only in rounding.

#[cfg(target_arch = "x86_64")]
use pulp::{f32x8, x86::V3};

/// Rows of the left-hand side one kernel call computes.
pub const MR: usize = 6;
/// Columns of the right-hand side one kernel call computes.
const NR: usize = 16;
/// Depth of one pass over the right-hand side: a 16-column panel of it (8 KiB) stays in L1
/// beside the rows streaming past it (measured: 128 beats 64 and 256 by 10-45%).
const KC: usize = 128;

/// A right-hand side `B` (k × n) laid out in the order the kernel reads it: blocks of [`KC`]
/// rows, each as 16-column panels stored row by row (the last panel padded with zeros).
#[derive(Debug, Default)]
pub struct Packed {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Packs `B[kk][j] = src[j * ld + kk]`: the transpose of an n × k row-major matrix (a
    /// linear layer's weight, or the keys of an attention head).
    pub fn transposed(src: &[f32], ld: usize, k: usize, n: usize) -> Self {
        let mut packed = Self::default();
        packed.repack_transposed(src, ld, k, n);
        packed
    }

    /// Repacks in place as `B[kk][j] = src[j * ld + kk]`, reusing the allocation.
    pub fn repack_transposed(&mut self, src: &[f32], ld: usize, k: usize, n: usize) {
        self.reset(k, n);
        let mut at = 0;
        for k0 in (0..k).step_by(KC) {
            let kb = KC.min(k - k0);
            for j0 in (0..n).step_by(NR) {
                let panel = &mut self.data[at..at + kb * NR];
                for (c, j) in (j0..n.min(j0 + NR)).enumerate() {
                    let column = &src[j * ld + k0..j * ld + k0 + kb];
                    for (kk, v) in column.iter().enumerate() {
                        panel[kk * NR + c] = *v;
                    }
                }
                at += kb * NR;
            }
        }
    }

    /// Repacks in place as `B[kk][j] = src[kk * ld + j]`: a k × n row-major matrix (the values
    /// of an attention head).
    pub fn repack_rows(&mut self, src: &[f32], ld: usize, k: usize, n: usize) {
        self.reset(k, n);
        let mut at = 0;
        for k0 in (0..k).step_by(KC) {
            let kb = KC.min(k - k0);
            for j0 in (0..n).step_by(NR) {
                let cols = NR.min(n - j0);
                let panel = &mut self.data[at..at + kb * NR];
                for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                    let from = (k0 + kk) * ld + j0;
                    row[..cols].copy_from_slice(&src[from..from + cols]);
                }
                at += kb * NR;
            }
        }
    }

    /// Sizes the buffer for k × n, zeroed (the padding of a last, narrower panel stays zero).
    fn reset(&mut self, k: usize, n: usize) {
        self.k = k;
        self.n = n;
        self.data.clear();
        self.data.resize(k * n.div_ceil(NR) * NR, 0.0);
    }

    /// The columns of `B`.
    pub fn cols(&self) -> usize {
        self.n
    }

    fn panel(&self, k0: usize, kb: usize, p: usize) -> &[f32] {
        let start = k0 * self.n.div_ceil(NR) * NR + p * kb * NR;
        &self.data[start..start + kb * NR]
    }
}

/// A left-hand side: `m` rows of `k` values, row `r` starting at `r * ld`.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// The values.
    pub data: &'a [f32],
    /// The distance between the starts of two rows.
    pub ld: usize,
    /// The number of rows.
    pub m: usize,
}

/// Where a product goes: row `r` of the result starts at `data[r * ld]`.
#[derive(Debug)]
pub struct Out<'a> {
    /// Where the values go.
    pub data: &'a mut [f32],
    /// The distance between the starts of two rows.
    pub ld: usize,
}

thread_local! {
    /// A depth block of the left-hand side's rows, copied together.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out = a · b (+ bias)`.
pub fn matmul(a: Rows<'_>, b: &Packed, bias: Option<&[f32]>, out: Out<'_>) {
    BLOCK.with(|block| {
        let block = &mut block.borrow_mut();
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = V3::try_new() {
            return simd.vectorize(
                #[inline(always)]
                || {
                    matmul_with(
                        a,
                        b,
                        bias,
                        out,
                        block,
                        #[inline(always)]
                        |ap, bp, acc| tile_avx2(simd, ap, bp, acc),
                    );
                },
            );
        }
        matmul_with(a, b, bias, out, block, tile_portable);
    });
}

#[inline(always)]
fn matmul_with(
    a: Rows<'_>,
    b: &Packed,
    bias: Option<&[f32]>,
    out: Out<'_>,
    block: &mut Vec<f32>,
    tile: impl Fn([&[f32]; MR], &[f32], &mut [[f32; NR]; MR]),
) {
    let (k, n, m) = (b.k, b.n, a.m);
    let Out { data: out, ld: ldo } = out;
    if m == 0 {
        return;
    }
    for k0 in (0..k).step_by(KC) {
        let kb = KC.min(k - k0);
        // Rows read against many panels are first copied side by side (measured +10-20% on
        // the dense layers: no cache-set conflicts between rows a few KiB apart).
        let (rows_from, ld, offset) = if n > 2 * NR {
            block.clear();
            for r in 0..m {
                block.extend_from_slice(&a.data[r * a.ld + k0..r * a.ld + k0 + kb]);
            }
            (&block[..], kb, 0)
        } else {
            (a.data, a.ld, k0)
        };
        for p in 0..n.div_ceil(NR) {
            let bp = b.panel(k0, kb, p);
            let (j0, cols) = (p * NR, NR.min(n - p * NR));
            for s in (0..m).step_by(MR) {
                let rows = MR.min(m - s);
                // The kernel reads MR rows of `a` in place; a short last strip repeats its
                // last row, whose results are not stored.
                let strip: [&[f32]; MR] = std::array::from_fn(|r| {
                    let at = (s + r.min(rows - 1)) * ld + offset;
                    &rows_from[at..at + kb]
                });
                let mut acc = [[0.0; NR]; MR];
                for (r, row) in acc.iter_mut().enumerate().take(rows) {
                    let at = (s + r) * ldo + j0;
                    if k0 > 0 {
                        copy_prefix(row, &out[at..at + cols]);
                    } else if let Some(bias) = bias {
                        copy_prefix(row, &bias[j0..j0 + cols]);
                    }
                }
                tile(strip, bp, &mut acc);
                for (r, row) in acc.iter().enumerate().take(rows) {
                    let at = (s + r) * ldo + j0;
                    copy_prefix(&mut out[at..at + cols], row);
                }
            }
        }
    }
}

/// Copies the first `min(to.len(), from.len())` values; a full tile row as one fixed-size
/// copy (a library `memmove` call per row costs more than the row's arithmetic).
#[inline(always)]
fn copy_prefix(to: &mut [f32], from: &[f32]) {
    if let (Ok(to), Ok(from)) = (
        <&mut [f32; NR]>::try_from(&mut *to),
        <&[f32; NR]>::try_from(from),
    ) {
        *to = *from;
        return;
    }
    for (t, f) in to.iter_mut().zip(from) {
        *t = *f;
    }
}

/// `acc += a · b` for one MR × NR tile: `a` is MR rows of kb values, `b` kb steps of NR.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile_avx2(simd: V3, a: [&[f32]; MR], b: &[f32], acc: &mut [[f32; NR]; MR]) {
    let zero = simd.splat_f32x8(0.0);
    let mut v = [[zero; 2]; MR];
    for (vr, row) in v.iter_mut().zip(acc.iter()) {
        *vr = pulp::bytemuck::cast(*row);
    }
    let b: &[f32x8] = pulp::bytemuck::cast_slice(b);
    let kb = b.len() / 2;
    let [a0, a1, a2, a3, a4, a5] = a;
    let (a0, a1, a2, a3, a4, a5) = (
        &a0[..kb],
        &a1[..kb],
        &a2[..kb],
        &a3[..kb],
        &a4[..kb],
        &a5[..kb],
    );
    let b = &b[..2 * kb];
    for kk in 0..kb {
        let (b0, b1) = (b[2 * kk], b[2 * kk + 1]);
        for (vr, x) in v
            .iter_mut()
            .zip([a0[kk], a1[kk], a2[kk], a3[kk], a4[kk], a5[kk]])
        {
            let x = simd.splat_f32x8(x);
            vr[0] = simd.mul_add_f32x8(x, b0, vr[0]);
            vr[1] = simd.mul_add_f32x8(x, b1, vr[1]);
        }
    }
    for (row, vr) in acc.iter_mut().zip(v) {
        *row = pulp::bytemuck::cast(vr);
    }
}

fn tile_portable(a: [&[f32]; MR], b: &[f32], acc: &mut [[f32; NR]; MR]) {
    for (kk, bk) in b.chunks_exact(NR).enumerate() {
        for (row, ar) in acc.iter_mut().zip(a) {
            for (c, bv) in row.iter_mut().zip(bk) {
                *c = ar[kk].mul_add(*bv, *c);
            }
        }
    }
}

/// Runs `f` compiled for AVX2 and FMA when the CPU has them (so its loops vectorise).
#[inline(always)]
fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = V3::try_new() {
        return simd.vectorize(f);
    }
    f()
}

/// `c[0] + c[1]·x + c[2]·x² + …` by Horner's rule with fused multiply-adds (single
/// instructions under [`vectorized`] and on aarch64).
#[inline(always)]
fn polynomial(x: f32, c: &[f32]) -> f32 {
    c.iter().rev().fold(0.0, |acc, &k| acc.mul_add(x, k))
}

/// `e^x` to within a few ulp (Cephes' polynomial on a reduced argument), branch-free.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Adding 1.5·2²³ rounds to an integer (ties to even) held in the low mantissa bits;
    // float-to-int conversions would not vectorise.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x.mul_add(std::f32::consts::LOG2_E, SHIFTER);
    let n = shifted - SHIFTER;
    let r = n.mul_add(2.121_944_4e-4, n.mul_add(-0.693_359_4, x));
    let p = polynomial(
        r,
        &[
            0.5,
            1.666_666_5e-1,
            4.166_579_6e-2,
            8.333_452e-3,
            1.398_199_9e-3,
            1.987_569_1e-4,
        ],
    );
    let e = (p * r).mul_add(r, r + 1.0);
    // n is in [-126, 127] after the clamp: 2^n is a normal float whose exponent field is
    // n + 127, read from the low bits of `shifted` (the bits above are shifted out).
    e * f32::from_bits(shifted.to_bits().wrapping_add(127) << 23)
}

/// GELU with the exact (erf) form BERT uses: `x/2 · (1 + erf(x/√2))`, with erfc from
/// Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
fn gelu(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / 0.327_591_1f32.mul_add(z, 1.0);
    let poly = polynomial(
        t,
        &[
            0.254_829_6,
            -0.284_496_74,
            1.421_413_8,
            -1.453_152_1,
            1.061_405_4,
        ],
    ) * t;
    let erfc = poly * exp(-z * z);
    let one_plus_erf = if x >= 0.0 { 2.0 - erfc } else { erfc };
    0.5 * x * one_plus_erf
}

/// Applies GELU to every value.
pub fn gelu_all(values: &mut [f32]) {
    vectorized(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                *v = gelu(*v);
            }
        },
    );
}

#[inline(always)]
fn lane_sum(row: &[f32]) -> f32 {
    let (chunks, rest) = pulp::as_arrays::<8, f32>(row);
    let mut lanes = [0.0f32; 8];
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

#[inline(always)]
fn lane_max(row: &[f32]) -> f32 {
    let (chunks, rest) = pulp::as_arrays::<8, f32>(row);
    let mut lanes = [f32::NEG_INFINITY; 8];
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l = l.max(*v);
        }
    }
    lanes
        .iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// Turns each row of `scores` (rows of `len`) into a probability distribution.
pub fn softmax_rows(scores: &mut [f32], len: usize) {
    vectorized(
        #[inline(always)]
        || {
            for row in scores.chunks_exact_mut(len) {
                let max = lane_max(row);
                for v in row.iter_mut() {
                    *v = exp(*v - max);
                }
                let scale = 1.0 / lane_sum(row);
                for v in row.iter_mut() {
                    *v *= scale;
                }
            }
        },
    );
}

/// For each row: `row = layer_norm(row + residual)` with the given scale, shift and epsilon.
pub fn add_layer_norm(rows: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    vectorized(
        #[inline(always)]
        || {
            for (row, res) in rows
                .chunks_exact_mut(width)
                .zip(residual.chunks_exact(width))
            {
                for (v, r) in row.iter_mut().zip(res) {
                    *v += r;
                }
                layer_norm_row(row, gamma, beta, eps);
            }
        },
    );
}

/// `row = layer_norm(row)` for every row of `rows`.
pub fn layer_norm(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    vectorized(
        #[inline(always)]
        || {
            for row in rows.chunks_exact_mut(gamma.len()) {
                layer_norm_row(row, gamma, beta, eps);
            }
        },
    );
}

#[inline(always)]
#[allow(clippy::cast_precision_loss)]
fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lane_sum(row) / n;
    for v in row.iter_mut() {
        *v -= mean;
    }
    let mut lanes = [0.0f32; 8];
    let (chunks, rest) = pulp::as_arrays::<8, f32>(row);
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * v;
        }
    }
    let var = (lanes.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>()) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = *v * inv * g + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, bias: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f64; m * n];
        for r in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|kk| f64::from(a[r * k + kk]) * f64::from(w[j * k + kk]))
                    .sum();
                out[r * n + j] = dot + f64::from(bias[j]);
            }
        }
        #[allow(clippy::cast_possible_truncation)]
        out.into_iter().map(|v| v as f32).collect()
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                #[allow(clippy::cast_precision_loss)]
                let v = (s % 2001) as f32 / 1000.0 - 1.0;
                v
            })
            .collect()
    }

    #[test]
    fn products_match_a_plain_product_on_awkward_shapes() {
        // Rows, depth and columns that are not multiples of the tile, and depth over KC.
        for (m, k, n) in [
            (1, 3, 5),
            (7, 32, 17),
            (13, 300, 40),
            (6, 256, 16),
            (50, 600, 33),
        ] {
            let a = values(m * k, 1);
            let w = values(n * k, 2);
            let bias = values(n, 3);
            let b = Packed::transposed(&w, k, k, n);
            let mut out = vec![f32::NAN; m * n];
            let rows = Rows { data: &a, ld: k, m };
            let target = Out {
                data: &mut out,
                ld: n,
            };
            matmul(rows, &b, Some(&bias), target);
            let expected = reference(&a, m, k, &w, n, &bias);
            for (i, (x, y)) in out.iter().zip(&expected).enumerate() {
                assert!((x - y).abs() < 1e-4, "{m}x{k}x{n} at {i}: {x} vs {y}");
            }
            // The portable kernel agrees with whichever ran.
            let mut portable = vec![0.0; m * n];
            matmul_with(
                rows,
                &b,
                Some(&bias),
                Out {
                    data: &mut portable,
                    ld: n,
                },
                &mut Vec::new(),
                tile_portable,
            );
            for (x, y) in portable.iter().zip(&expected) {
                assert!((x - y).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn exp_and_gelu_match_the_standard_library() {
        let mut worst_exp = 0.0f64;
        let mut worst_gelu = 0.0f64;
        for i in -20_000..=20_000 {
            #[allow(clippy::cast_precision_loss)]
            let xf = i as f32 / 1000.0;
            let x = f64::from(xf);
            let e = f64::from(exp(xf));
            worst_exp = worst_exp.max((e - x.exp()).abs() / x.exp());
            let g = f64::from(gelu(xf));
            let exact = 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2));
            worst_gelu = worst_gelu.max((g - exact).abs());
        }
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp}");
        assert!(worst_gelu < 1e-6, "gelu absolute error {worst_gelu}");
    }

    /// erf to double precision by its Taylor series (|x| ≤ 3) or continued fraction.
    fn erf(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let z = x.abs();
            let mut f = 0.0;
            for n in (1..60).rev() {
                f = f64::from(n) / 2.0 / (z + f);
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f);
            return x.signum() * (1.0 - erfc);
        }
        let mut term = x;
        let mut total = x;
        for n in 1..200 {
            term *= -x * x / f64::from(n);
            total += term / f64::from(2 * n + 1);
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let mut scores = vec![1.0, 2.0, 3.0, -50.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0];
        softmax_rows(&mut scores, 5);
        let first: f32 = scores[..5].iter().sum();
        assert!((first - 1.0).abs() < 1e-6);
        assert!(scores[2] > scores[1] && scores[1] > scores[0] && scores[3] < 1e-20);
        assert!((scores[9] - 1.0).abs() < 1e-3);
    }
}
