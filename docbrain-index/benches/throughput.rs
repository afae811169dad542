//! Throughput figures of the embedded defaults. Run (release build, real model):
//!
//! ```text
//! scripts/fetch-model.sh && cargo bench -p docbrain-index --bench throughput
//! ```
//!
//! Prints chunker MB/s, local embedding chunks/s at 256 tokens, and embedded index bulk write
//! rate and hybrid search latency p50/p99 at 100k chunks (the storage-format converter's MB/s:
//! `cargo bench -p docbrain-confluence --bench convert`). `BENCH_CHUNKS` changes the index size;
//! `BENCH_PARTS` (a comma-separated subset of `chunker,embed,store,opensearch`) runs
//! only some parts. `opensearch` runs the same store workload against `OPENSEARCH_URL`
//! (default http://127.0.0.1:9200; `scripts/opensearch.sh start`) in a throwaway index.

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use docbrain_core::{
    Chunk, Chunker, EmbeddedChunk, Embedder, IndexStore, IndexedPage, Layer, MarkdownChunker,
    ModelInfo, Page, Principal, ReadAccess, Reader, SearchFilter, SearchRequest, TokenCounter,
};
use docbrain_index::{EmbeddedStore, LocalEmbedder, OpenSearchConfig, OpenSearchStore};
use docbrain_testsuite::Rng;
use futures::StreamExt;
use tokio::runtime::Runtime;

/// The same caching allocator as the binaries (see `LocalEmbedder`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn vocabulary(rng: &mut Rng) -> Vec<String> {
    let syllables = [
        "ka", "ro", "mi", "te", "su", "lan", "dor", "vex", "pa", "qui", "ne", "zo",
    ];
    (0..5000)
        .map(|_| {
            (0..2 + rng.below(3))
                .map(|_| syllables[rng.below(syllables.len())])
                .collect()
        })
        .collect()
}

fn sentence(rng: &mut Rng, vocab: &[String], words: usize) -> String {
    let mut s: Vec<&str> = (0..words)
        .map(|_| vocab[rng.below(vocab.len())].as_str())
        .collect();
    if let Some(first) = s.first_mut() {
        *first = "the";
    }
    s.join(" ") + "."
}

fn markdown(rng: &mut Rng, vocab: &[String], bytes: usize) -> String {
    let mut md = String::new();
    let mut section = 0;
    while md.len() < bytes {
        section += 1;
        md.push_str(&format!("## Section {section}\n\n"));
        for _ in 0..3 {
            md.push_str(&sentence(rng, vocab, 60));
            md.push_str("\n\n");
        }
        md.push_str("```bash\nkubectl rollout restart deploy/api\nkubectl rollout status deploy/api\n```\n\n");
        md.push_str("| host | role |\n|---|---|\n| a | primary |\n| b | replica |\n\n");
    }
    md
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn bench_chunker(
    rng: &mut Rng,
    vocab: &[String],
    counter: Option<Arc<dyn TokenCounter>>,
    label: &str,
) {
    let body = markdown(rng, vocab, 4 << 20);
    let page = Page::new("bench", "B", "Bench", body);
    let chunker = match counter {
        Some(c) => MarkdownChunker::default().counting_with(c),
        None => MarkdownChunker::default(),
    };
    let started = Instant::now();
    let chunks = chunker.chunk(&page);
    let secs = started.elapsed().as_secs_f64();
    let mb = page.body.len() as f64 / 1e6;
    println!(
        "chunker ({label}): {:.1} MB/s ({mb:.1} MB of Markdown into {} chunks in {secs:.2} s)",
        mb / secs,
        chunks.len()
    );
}

async fn bench_embedder(embedder: &LocalEmbedder, batch: usize, rng: &mut Rng, vocab: &[String]) {
    let counter = embedder.token_counter().unwrap();
    // Texts of 254 model tokens (256 with the special tokens).
    let texts: Vec<String> = (0..64)
        .map(|_| {
            let mut words: Vec<&str> = Vec::new();
            loop {
                words.push(vocab[rng.below(vocab.len())].as_str());
                if counter.count(&words.join(" ")) >= 254 {
                    words.pop();
                    break words.join(" ");
                }
            }
        })
        .collect();
    embedder.embed(&texts[..16]).await.unwrap(); // warm-up
    let started = Instant::now();
    embedder.embed(&texts).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "local embedding: {:.1} chunks/s at 256 tokens (64 chunks, batches of {batch}, {:.2} s)",
        texts.len() as f64 / secs,
        secs
    );
}

/// Chunks per page the store benches write.
const CHUNKS_PER_PAGE: usize = 10;

/// Writes `total` chunks in pages of 10 with `concurrency` writers, then times hybrid searches.
async fn bench_store(
    store: Arc<dyn IndexStore>,
    name: &str,
    concurrency: usize,
    rng: &mut Rng,
    vocab: &[String],
    total: usize,
) {
    store
        .bind_model(&ModelInfo {
            model_id: "bench".into(),
            dimension: LocalEmbedder::DIMENSION,
        })
        .await
        .unwrap();
    bench_writes(&store, name, concurrency, rng, vocab, total).await;
    bench_searches(store.as_ref(), name, rng, vocab, total).await;
}

/// Writes `total` random chunks in pages of [`CHUNKS_PER_PAGE`] with `concurrency` writers and
/// prints the rate.
async fn bench_writes(
    store: &Arc<dyn IndexStore>,
    name: &str,
    concurrency: usize,
    rng: &mut Rng,
    vocab: &[String],
    total: usize,
) {
    let per_page = CHUNKS_PER_PAGE;
    let started = Instant::now();
    let mut writes = futures::stream::FuturesUnordered::new();
    for p in 0..total / per_page {
        let chunks = random_chunks(rng, vocab, p);
        let page = bench_page(p);
        let store = Arc::clone(store);
        writes.push(async move { store.replace_page(&page, &chunks).await.unwrap() });
        if writes.len() >= concurrency {
            writes.next().await;
        }
    }
    while writes.next().await.is_some() {}
    store.flush().await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name} writes: {:.0} chunks/s ({total} chunks in pages of {per_page}, {concurrency} writer(s), {secs:.1} s)",
        total as f64 / secs
    );
}

/// Returns a random vector of unit length.
fn unit_vector(rng: &mut Rng, dimension: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dimension).map(|_| rng.unit()).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Returns page `p`'s chunks: a random sentence and a random vector each.
fn random_chunks(rng: &mut Rng, vocab: &[String], p: usize) -> Vec<EmbeddedChunk> {
    let id = format!("{p}");
    (0..CHUNKS_PER_PAGE)
        .map(|i| {
            let vector = unit_vector(rng, LocalEmbedder::DIMENSION);
            EmbeddedChunk {
                chunk: Chunk::new(
                    &id.as_str().into(),
                    i as u32,
                    vec![format!("Page {p}")],
                    &sentence(rng, vocab, 40),
                    60,
                ),
                vector,
            }
        })
        .collect()
}

/// Returns page `p`'s record: one page in four in space OPS, the rest in ENG.
fn bench_page(p: usize) -> IndexedPage {
    IndexedPage {
        id: format!("{p}").as_str().into(),
        space_key: if p.is_multiple_of(4) {
            "OPS".into()
        } else {
            "ENG".into()
        },
        title: format!("Page {p}"),
        version: 1,
        url: None,
        ancestors: vec![],
        labels: vec![],
        content_hash: String::new(),
        chunk_count: CHUNKS_PER_PAGE as u32,
        ancestor_ids: vec![],
        access: access_of(p),
        access_read_ms: 0,
        source: String::new(),
        parent: None,
        parts: Vec::new(),
    }
}

/// Returns a random query (two vocabulary words, a random vector) in `space` for `reader`.
fn random_query(
    rng: &mut Rng,
    vocab: &[String],
    space: Option<&str>,
    reader: Option<Reader>,
) -> SearchRequest {
    SearchRequest {
        text: format!(
            "how do I {} the {}",
            vocab[rng.below(vocab.len())],
            vocab[rng.below(vocab.len())]
        ),
        vector: unit_vector(rng, LocalEmbedder::DIMENSION),
        k: 10,
        filter: SearchFilter {
            space_key: space.map(Into::into),
            ..SearchFilter::default()
        },
        reader,
    }
}

/// Times a first search, then prints hybrid search latencies unfiltered, by space and by
/// permission, and how much the permission filter costs.
async fn bench_searches(
    store: &dyn IndexStore,
    name: &str,
    rng: &mut Rng,
    vocab: &[String],
    total: usize,
) {
    let warm = Instant::now();
    store
        .search(&random_query(rng, vocab, None, None))
        .await
        .unwrap();
    println!(
        "{name} first search: {:.0} ms",
        warm.elapsed().as_secs_f64() * 1e3
    );
    // A user in 3 of the 20 groups: staff, and two team groups.
    let user = Reader::user("u-bench", ["staff", "team-3", "team-11"]);
    let mut p50s = Vec::new();
    for (label, space, reader) in [
        ("all spaces", None, None),
        ("space filter", Some("OPS"), None),
        ("permission filter, user in 3 groups", None, Some(user)),
    ] {
        let times = search_times(store, rng, vocab, space, reader.as_ref()).await;
        println!(
            "{name} hybrid search at {total} chunks ({label}): p50 {:.1} ms, p99 {:.1} ms (200 queries, k=10)",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
        p50s.push(percentile(&times, 0.5));
    }
    println!(
        "{name} permission filter / unfiltered at p50: {:.2}x",
        p50s[2] / p50s[0]
    );
}

/// Runs 200 random searches in `space` for `reader` and returns their times in ms, sorted.
async fn search_times(
    store: &dyn IndexStore,
    rng: &mut Rng,
    vocab: &[String],
    space: Option<&str>,
    reader: Option<&Reader>,
) -> Vec<f64> {
    let mut times = Vec::new();
    for _ in 0..200 {
        let q = random_query(rng, vocab, space, reader.cloned());
        let t = Instant::now();
        let hits = store.search(&q).await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!hits.is_empty());
    }
    times.sort_by(f64::total_cmp);
    times
}

/// Page `p`'s read rule, a mix like a company wiki's: most pages readable by staff, one in
/// five open to anyone, one in four restricted to one of 20 teams, one in twenty under a team
/// and a named user as well.
fn access_of(p: usize) -> ReadAccess {
    let layer = |tokens: &[String]| -> Layer {
        tokens
            .iter()
            .filter_map(|t| Principal::from_token(t))
            .collect()
    };
    if p.is_multiple_of(5) {
        return ReadAccess::anyone();
    }
    let mut layers = vec![layer(&["group:staff".into()])];
    if p % 4 == 1 {
        layers.push(layer(&[format!("group:team-{}", p % 20)]));
    }
    if p % 20 == 3 {
        layers.push(layer(&[
            format!("group:team-{}", p % 7),
            format!("user:u-{p}"),
        ]));
    }
    ReadAccess::of(layers)
}

/// Returns the number in environment variable `name`, or `default` when unset or not a number.
fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let total = env_number("BENCH_CHUNKS", 100_000);
    let runtime = Runtime::new().unwrap();
    let mut rng = Rng::new(1);
    let vocab = vocabulary(&mut rng);
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "chunker,embed,store".into());
    let runs = |part: &str| parts.split(',').any(|p| p.trim() == part);
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    if runs("chunker") {
        bench_chunker(&mut rng, &vocab, None, "estimated tokens");
    }
    if runs("chunker") || runs("embed") {
        bench_local_model(&runtime, &mut rng, &vocab, runs("chunker"), runs("embed"));
    }
    if runs("store") {
        bench_embedded_store(&runtime, &mut rng, &vocab, total);
    }
    if runs("opensearch") {
        bench_opensearch(&runtime, &mut rng, &vocab, total);
    }
}

/// Loads the local model (from `MODEL_DIR` or the default folder) and runs the chunker bench
/// with its tokenizer if `chunker`, the embedding bench if `embed`; says so when it cannot load.
fn bench_local_model(
    runtime: &Runtime,
    rng: &mut Rng,
    vocab: &[String],
    chunker: bool,
    embed: bool,
) {
    let model_dir =
        std::env::var_os("MODEL_DIR").map_or_else(LocalEmbedder::default_dir, Into::into);
    match LocalEmbedder::load(model_dir) {
        Ok(embedder) => {
            let batch = env_number("BENCH_BATCH", 16);
            let embedder = embedder.with_batch_size(batch);
            if chunker {
                bench_chunker(rng, vocab, embedder.token_counter(), "model tokenizer");
            }
            if embed {
                runtime.block_on(bench_embedder(&embedder, batch, rng, vocab));
            }
        }
        Err(e) => println!("local embedding: skipped ({e})"),
    }
}

/// Runs the store bench on an embedded store in a temporary folder, then prints its size.
fn bench_embedded_store(runtime: &Runtime, rng: &mut Rng, vocab: &[String], total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let path = store.path().to_path_buf();
    runtime.block_on(bench_store(
        Arc::new(store),
        "embedded store",
        1,
        rng,
        vocab,
        total,
    ));
    println!(
        "embedded store size: {:.0} MB for {total} chunks",
        database_size(&path) as f64 / 1e6
    );
}

/// Returns the bytes of the SQLite database at `path` and its write-ahead log.
fn database_size(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            std::fs::metadata(format!("{}{suffix}", path.display()))
                .ok()
                .map(|m| m.len())
        })
        .sum()
}

/// Runs the store bench against the node at `OPENSEARCH_URL` in a throwaway index, then deletes
/// it; says so when no node answers.
fn bench_opensearch(runtime: &Runtime, rng: &mut Rng, vocab: &[String], total: usize) {
    let url = std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into());
    let index = format!("docbrain-bench-{}", std::process::id());
    match runtime.block_on(OpenSearchStore::connect(OpenSearchConfig::new(
        url.clone(),
        index.clone(),
    ))) {
        Ok(store) => {
            runtime.block_on(bench_store(
                Arc::new(store),
                "opensearch store",
                4,
                rng,
                vocab,
                total,
            ));
            runtime.block_on(async {
                let target = format!("{url}/{index},{index}-pages");
                let _ = reqwest::Client::new().delete(target).send().await;
            });
        }
        Err(e) => {
            println!("opensearch: skipped ({e}); start a node with scripts/opensearch.sh start");
        }
    }
}
