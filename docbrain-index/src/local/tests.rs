//! These tests load the real weights from `MODEL_DIR` (or the default folder); run
//! `scripts/fetch-model.sh` first.

use super::*;

fn model_dir() -> PathBuf {
    std::env::var_os("MODEL_DIR").map_or_else(LocalEmbedder::default_dir, PathBuf::from)
}

fn load() -> LocalEmbedder {
    LocalEmbedder::load(model_dir()).unwrap_or_else(|e| panic!("{e} (run scripts/fetch-model.sh)"))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn matches_the_reference_embedding() {
    let model = load();
    let v = model
        .embed_blocking(&["This is an example sentence".into()])
        .unwrap();
    assert_eq!(v[0].len(), 384);
    // First values of the sentence-transformers reference for this sentence.
    let reference = [
        0.067_657_4_f32,
        0.063_496_1,
        0.048_713_1,
        0.079_305_0,
        0.037_448_0,
    ];
    for (a, b) in v[0].iter().zip(reference) {
        assert!((a - b).abs() < 1e-4, "{:?} vs {reference:?}", &v[0][..5]);
    }
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
}

/// Every dimension of four texts (7 to 256 tokens) against sentence-transformers' vectors,
/// embedded together (one batch, laid end to end) and one by one.
#[test]
fn matches_the_reference_vectors_in_every_dimension() {
    #[derive(serde::Deserialize)]
    struct Reference {
        texts: Vec<String>,
        tokens: Vec<usize>,
        vectors: Vec<Vec<f32>>,
    }
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference-vectors.json"
    );
    let reference: Reference = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(reference.tokens.last(), Some(&LocalEmbedder::MAX_TOKENS));
    let model = load();
    let together = model.embed_blocking(&reference.texts).unwrap();
    let mut worst = 0.0f32;
    for (i, (text, expected)) in reference.texts.iter().zip(&reference.vectors).enumerate() {
        let alone = model.embed_blocking(std::slice::from_ref(text)).unwrap();
        for got in [&together[i], &alone[0]] {
            assert_eq!(got.len(), expected.len());
            for (a, b) in got.iter().zip(expected) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    assert!(worst < 1e-4, "largest difference {worst}");
    assert!(worst > 0.0, "compared nothing");
}

#[test]
fn similar_texts_are_closer_and_batching_does_not_change_results() {
    let model = load();
    let texts: Vec<String> = [
        "How do I restart the payments service?",
        "Restarting the payments service: run systemctl restart payments.",
        "The cafeteria menu for Friday includes pasta.",
        &"long input ".repeat(400),
    ]
    .iter()
    .map(std::string::ToString::to_string)
    .collect();
    let batch = model.embed_blocking(&texts).unwrap();
    assert!(cosine(&batch[0], &batch[1]) > cosine(&batch[0], &batch[2]) + 0.2);
    for (i, t) in texts.iter().enumerate() {
        let alone = model.embed_blocking(std::slice::from_ref(t)).unwrap();
        assert!(
            cosine(&alone[0], &batch[i]) > 0.9999,
            "text {i} differs when batched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_are_coalesced_and_each_gets_its_own_vectors() {
    let model = load();
    let texts: Vec<Vec<String>> = (0..12)
        .map(|i| {
            (0..(i % 3 + 1))
                .map(|j| {
                    format!(
                        "Page {i} paragraph {j}: restart the service number {}.",
                        i * 7 + j
                    )
                })
                .collect()
        })
        .collect();
    let calls = texts.iter().map(|t| {
        let model = model.clone();
        let t = t.clone();
        async move { model.embed(&t).await.unwrap() }
    });
    let answers = futures::future::join_all(calls).await;
    for (t, answer) in texts.iter().zip(answers) {
        let alone = model.embed_blocking(t).unwrap();
        assert_eq!(answer.len(), t.len());
        for (a, b) in answer.iter().zip(&alone) {
            assert!(cosine(a, b) > 0.9999, "a call got another call's vectors");
        }
    }
    assert!(model.embed(&[]).await.unwrap().is_empty());
}

#[test]
fn counts_tokens_with_the_model_tokenizer() {
    let model = load();
    let counter = model.token_counter().unwrap();
    assert_eq!(counter.count("hello world"), 2);
    assert!(
        counter.count(&"word ".repeat(1000)) >= 1000,
        "counting must not truncate"
    );
}

#[test]
fn missing_and_wrong_weights_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalEmbedder::load(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("model.safetensors is missing"),
        "{err}"
    );
    std::fs::write(dir.path().join("model.safetensors"), b"not a model").unwrap();
    let err = LocalEmbedder::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
}
