//! The model's forward pass: a BERT encoder over a batch of token sequences, mean-pooled and
//! L2-normalised.
//!
//! The sequences of a batch are laid end to end with no padding: every per-token step (the
//! dense layers, GELU, layer norms) runs over all tokens at once, and only attention looks at
//! one sequence at a time. Work is split over the rayon pool: row blocks for the dense layers,
//! (head, sequence) pairs for attention.

use std::cell::RefCell;
use std::path::Path;

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::error::IndexError;
use docbrain_kernels as kernels;
use docbrain_kernels::{Out, Packed, Rows, MR};

/// The shape of the model, from its `config.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct Config {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    layer_norm_eps: f64,
    max_position_embeddings: usize,
    hidden_act: String,
}

/// A layer norm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// A linear layer: its weight packed for [`kernels::matmul`], and its bias.
struct Linear {
    weight: Packed,
    bias: Vec<f32>,
}

struct Layer {
    /// Query (pre-scaled by 1/√head size), key and value projections side by side.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    output_norm: Norm,
}

/// The loaded encoder.
pub(crate) struct Bert {
    hidden: usize,
    heads: usize,
    eps: f32,
    max_positions: usize,
    words: Vec<f32>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// Per-thread buffers, reused across calls.
#[derive(Default)]
struct Scratch {
    keys: Packed,
    values: Packed,
    scores: Vec<f32>,
    inner: Vec<f32>,
    out: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
    /// The calling thread's activations (x, q/k/v, per-head outputs, their concatenation),
    /// kept between batches so each batch does not fault in fresh pages.
    static ACTIVATIONS: RefCell<[Vec<f32>; 4]> = RefCell::default();
}

fn with_scratch(f: impl FnOnce(&mut Scratch)) {
    SCRATCH.with(|s| f(&mut s.borrow_mut()));
}

/// Returns the error for a model file at `path` that cannot be used, for `reason`.
fn model_file_error(path: &Path, reason: String) -> IndexError {
    IndexError::ModelFile {
        path: path.to_path_buf(),
        reason,
    }
}

/// The tensors of a safetensors file, read by name and checked against the shape expected.
struct Weights<'a> {
    /// The file's path, for errors.
    path: &'a Path,
    file: SafeTensors<'a>,
    /// The model's hidden size.
    hidden: usize,
}

impl Weights<'_> {
    /// Returns the error for this file, for `reason`.
    fn bad(&self, reason: String) -> IndexError {
        model_file_error(self.path, reason)
    }

    /// Returns the first dimension of tensor `name`, or 0 when it is missing.
    fn rows(&self, name: &str) -> usize {
        self.file
            .tensor(name)
            .map_or(0, |t| t.shape().first().copied().unwrap_or(0))
    }

    /// Reads tensor `name`, which must be F32 of `shape`.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, IndexError> {
        let t = self
            .file
            .tensor(name)
            .map_err(|_| self.bad(format!("tensor {name} is missing")))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(self.bad(format!(
                "tensor {name} is {:?} {:?}, not F32 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Reads the layer norm under `prefix`.
    fn norm(&self, prefix: &str) -> Result<Norm, IndexError> {
        let h = self.hidden;
        Ok(Norm {
            gamma: self.tensor(&format!("{prefix}.weight"), &[h])?,
            beta: self.tensor(&format!("{prefix}.bias"), &[h])?,
        })
    }

    /// Reads the linear layer under `prefix`, from `k` inputs to `n` outputs.
    fn linear(&self, prefix: &str, n: usize, k: usize) -> Result<Linear, IndexError> {
        let weight = self.tensor(&format!("{prefix}.weight"), &[n, k])?;
        Ok(Linear {
            weight: Packed::transposed(&weight, k, k, n),
            bias: self.tensor(&format!("{prefix}.bias"), &[n])?,
        })
    }

    /// Reads the query, key and value projections of the layer under `prefix` into one linear
    /// layer, the query's scaled by `scale`.
    fn qkv(&self, prefix: &str, scale: f32) -> Result<Linear, IndexError> {
        let h = self.hidden;
        let mut weight = Vec::with_capacity(3 * h * h);
        let mut bias = Vec::with_capacity(3 * h);
        for (part, factor) in [("query", scale), ("key", 1.0), ("value", 1.0)] {
            let name = format!("{prefix}.attention.self.{part}");
            weight.extend(
                self.tensor(&format!("{name}.weight"), &[h, h])?
                    .iter()
                    .map(|w| w * factor),
            );
            bias.extend(
                self.tensor(&format!("{name}.bias"), &[h])?
                    .iter()
                    .map(|b| b * factor),
            );
        }
        Ok(Linear {
            weight: Packed::transposed(&weight, h, h, 3 * h),
            bias,
        })
    }

    /// Reads encoder layer `i`, whose feed-forward block is `inner` wide.
    fn layer(&self, i: usize, inner: usize, scale: f32) -> Result<Layer, IndexError> {
        let h = self.hidden;
        let p = format!("encoder.layer.{i}");
        Ok(Layer {
            qkv: self.qkv(&p, scale)?,
            attention_out: self.linear(&format!("{p}.attention.output.dense"), h, h)?,
            attention_norm: self.norm(&format!("{p}.attention.output.LayerNorm"))?,
            up: self.linear(&format!("{p}.intermediate.dense"), inner, h)?,
            down: self.linear(&format!("{p}.output.dense"), h, inner)?,
            output_norm: self.norm(&format!("{p}.output.LayerNorm"))?,
        })
    }
}

impl Bert {
    /// Reads the weights from the bytes of `path` (a safetensors file) for `config`.
    pub(crate) fn load(path: &Path, bytes: &[u8], config: &Config) -> Result<Self, IndexError> {
        let h = config.hidden_size;
        if config.hidden_act != "gelu"
            || config.num_attention_heads == 0
            || !h.is_multiple_of(config.num_attention_heads)
        {
            return Err(model_file_error(
                path,
                format!("config.json describes another model ({config:?})"),
            ));
        }
        let file =
            SafeTensors::deserialize(bytes).map_err(|e| model_file_error(path, e.to_string()))?;
        let weights = Weights {
            path,
            file,
            hidden: h,
        };
        #[allow(clippy::cast_precision_loss)]
        let scale = 1.0 / ((h / config.num_attention_heads) as f32).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            layers.push(weights.layer(i, config.intermediate_size, scale)?);
        }
        let vocabulary = weights.rows("embeddings.word_embeddings.weight");
        let words = weights.tensor("embeddings.word_embeddings.weight", &[vocabulary, h])?;
        let types = weights.tensor("embeddings.token_type_embeddings.weight", &[2, h])?;
        #[allow(clippy::cast_possible_truncation)]
        let eps = config.layer_norm_eps as f32;
        Ok(Self {
            hidden: h,
            heads: config.num_attention_heads,
            eps,
            max_positions: config.max_position_embeddings,
            words,
            positions: weights.tensor(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: types[..h].to_vec(),
            embedding_norm: weights.norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// Embeds each sequence of token ids: one unit vector per sequence.
    pub(crate) fn embed(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, IndexError> {
        ACTIVATIONS.with(|buffers| {
            let [x, qkv, heads, context] = &mut *buffers.borrow_mut();
            self.embed_with(sequences, x, qkv, heads, context)
        })
    }

    fn embed_with(
        &self,
        sequences: &[Vec<u32>],
        x: &mut Vec<f32>,
        qkv: &mut Vec<f32>,
        heads: &mut Vec<f32>,
        context: &mut Vec<f32>,
    ) -> Result<Vec<Vec<f32>>, IndexError> {
        let h = self.hidden;
        let total: usize = sequences.iter().map(Vec::len).sum();
        // Every value of these is written before it is read.
        x.resize(total * h, 0.0);
        qkv.resize(total * 3 * h, 0.0);
        heads.resize(total * h, 0.0);
        context.resize(total * h, 0.0);
        let (x, qkv, heads, context) = (
            &mut x[..total * h],
            &mut qkv[..total * 3 * h],
            &mut heads[..total * h],
            &mut context[..total * h],
        );
        let mut starts = Vec::with_capacity(sequences.len());
        let mut at = 0;
        for ids in sequences {
            starts.push(at);
            if ids.len() > self.max_positions {
                return Err(IndexError::Tokenizer(format!(
                    "{} tokens is more than the model's {}",
                    ids.len(),
                    self.max_positions
                )));
            }
            for (p, &id) in ids.iter().enumerate() {
                let id = id as usize;
                let word = self.words.get(id * h..(id + 1) * h).ok_or_else(|| {
                    IndexError::Tokenizer(format!("token id {id} is outside the vocabulary"))
                })?;
                let row = &mut x[(at + p) * h..(at + p + 1) * h];
                let position = &self.positions[p * h..(p + 1) * h];
                for (((v, w), q), t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type)
                {
                    *v = w + q + t;
                }
            }
            at += ids.len();
        }
        let norm = &self.embedding_norm;
        kernels::layer_norm(x, &norm.gamma, &norm.beta, self.eps);
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        for layer in &self.layers {
            self.layer(layer, x, qkv, heads, context, &starts, &lengths);
        }
        Ok(starts
            .iter()
            .zip(&lengths)
            .map(|(&start, &len)| pool(&x[start * h..(start + len) * h], h))
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        layer: &Layer,
        x: &mut [f32],
        qkv: &mut [f32],
        heads: &mut [f32],
        context: &mut [f32],
        starts: &[usize],
        lengths: &[usize],
    ) {
        let h = self.hidden;
        let d = h / self.heads;
        let total = x.len() / h;
        let rows = rows_per_task(total);
        // Queries, keys and values for every token.
        qkv.par_chunks_mut(rows * 3 * h)
            .zip(x.par_chunks(rows * h))
            .for_each(|(out, input)| {
                let a = Rows {
                    data: input,
                    ld: h,
                    m: input.len() / h,
                };
                let out = Out {
                    data: out,
                    ld: 3 * h,
                };
                kernels::matmul(a, &layer.qkv.weight, Some(&layer.qkv.bias), out);
            });
        // Attention, one (head, sequence) at a time, into a head-major buffer.
        let mut tasks = Vec::with_capacity(self.heads * lengths.len());
        for (head, mut rest) in heads.chunks_mut(total * d).enumerate() {
            for (&start, &len) in starts.iter().zip(lengths) {
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(len * d);
                tasks.push((head, start, len, mine));
                rest = tail;
            }
        }
        let qkv = &*qkv;
        tasks.into_par_iter().for_each(|(head, start, len, out)| {
            with_scratch(|s| attend(s, qkv, h, head * d, d, start, len, out));
        });
        // Back to one row per token, heads side by side.
        let heads = &*heads;
        context
            .par_chunks_mut(rows * h)
            .enumerate()
            .for_each(|(block, out)| {
                for (r, row) in out.chunks_exact_mut(h).enumerate() {
                    let t = block * rows + r;
                    for (head, part) in row.chunks_exact_mut(d).enumerate() {
                        let from = (head * total + t) * d;
                        part.copy_from_slice(&heads[from..from + d]);
                    }
                }
            });
        // Attention output, residual, norm; then the feed-forward block, residual, norm.
        let context = &*context;
        x.par_chunks_mut(rows * h)
            .zip(context.par_chunks(rows * h))
            .for_each(|(x, context)| {
                with_scratch(|s| self.feed_forward(layer, s, x, context));
            });
    }

    /// The attention output and the feed-forward block of one row block, each added to `x`
    /// and normalised.
    fn feed_forward(&self, layer: &Layer, s: &mut Scratch, x: &mut [f32], context: &[f32]) {
        let h = self.hidden;
        let m = x.len() / h;
        let inner = layer.up.weight.cols();
        let Scratch {
            inner: hidden, out, ..
        } = s;
        let a = Rows {
            data: context,
            ld: h,
            m,
        };
        self.add_and_norm(a, &layer.attention_out, &layer.attention_norm, x, out);
        hidden.resize(m * inner, 0.0);
        let a = Rows { data: x, ld: h, m };
        let target = Out {
            data: hidden,
            ld: inner,
        };
        kernels::matmul(a, &layer.up.weight, Some(&layer.up.bias), target);
        kernels::gelu_all(hidden);
        let a = Rows {
            data: hidden,
            ld: inner,
            m,
        };
        self.add_and_norm(a, &layer.down, &layer.output_norm, x, out);
    }

    /// `x = layer_norm(x + a · linear)`, with `out` holding the product.
    fn add_and_norm(
        &self,
        a: Rows<'_>,
        linear: &Linear,
        norm: &Norm,
        x: &mut [f32],
        out: &mut Vec<f32>,
    ) {
        out.resize(x.len(), 0.0);
        let target = Out {
            data: out,
            ld: self.hidden,
        };
        kernels::matmul(a, &linear.weight, Some(&linear.bias), target);
        kernels::add_layer_norm(out, x, &norm.gamma, &norm.beta, self.eps);
        x.copy_from_slice(out);
    }
}

/// One head of self-attention over one sequence: `out = softmax(q·kᵀ) · v` (the queries are
/// pre-scaled). `offset` is the head's first column within each of q, k and v.
#[allow(clippy::too_many_arguments)]
fn attend(
    s: &mut Scratch,
    qkv: &[f32],
    h: usize,
    offset: usize,
    d: usize,
    start: usize,
    len: usize,
    out: &mut [f32],
) {
    let ld = 3 * h;
    let base = start * ld + offset;
    s.keys.repack_transposed(&qkv[base + h..], ld, d, len);
    s.scores.resize(len * len, 0.0);
    let queries = Rows {
        data: &qkv[base..],
        ld,
        m: len,
    };
    let scores = Out {
        data: &mut s.scores,
        ld: len,
    };
    kernels::matmul(queries, &s.keys, None, scores);
    kernels::softmax_rows(&mut s.scores, len);
    s.values.repack_rows(&qkv[base + 2 * h..], ld, len, d);
    let weights = Rows {
        data: &s.scores,
        ld: len,
        m: len,
    };
    kernels::matmul(weights, &s.values, None, Out { data: out, ld: d });
}

/// The mean of a sequence's token vectors, scaled to unit length.
fn pool(rows: &[f32], h: usize) -> Vec<f32> {
    let mut mean = vec![0.0f32; h];
    for row in rows.chunks_exact(h) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let count = (rows.len() / h).max(1) as f32;
    mean.iter_mut().for_each(|v| *v /= count);
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|v| *v /= norm);
    mean
}

/// Rows per parallel task: about four tasks per thread, a multiple of the kernel's strip, at
/// most 96 (so a task's feed-forward block stays in L2).
fn rows_per_task(total: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    (total.div_ceil(threads * 4).div_ceil(MR) * MR).clamp(MR, 96)
}
