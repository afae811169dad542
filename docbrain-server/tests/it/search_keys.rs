//! The search API key, on the binary: refused without a key or with a wrong one, served with a
//! right one; never in the log or an answer; and no start on a public address without keys.
//! Uses the real local model (`scripts/fetch-model.sh`).

use std::process::Stdio;

use crate::support;

use support::Log;

const KEYS: &str = "alpha-key-7f3a9c0123456789abcdef0123,beta-key-51e2d00123456789abcdef0123";
const ANN_KEY: &str = "ann-key-0123456789abcdef0123456789ab";
const WRONG: &str = "gamma-key-000000";

#[tokio::test]
async fn search_needs_a_valid_key_and_the_key_is_never_logged() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = support::command(None);
    cmd.env("DOCBRAIN_DATA_DIR", data.path())
        .env("SEARCH_API_KEYS", KEYS)
        .env("SEARCH_USER_KEYS", format!("ann={ANN_KEY}"))
        .env("LOG_LEVEL", "debug")
        .stderr(Stdio::piped());
    let (mut child, base) = support::spawn(cmd);
    let log = Log::capture(&mut child);
    let http = reqwest::Client::new();
    let send = |key: Option<&str>, query: &str| {
        let mut request = http.get(format!("{base}/search?q=rollback{query}"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };

    let missing = send(None, "").await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let wrong = send(Some(WRONG), "").await.unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_body = wrong.text().await.unwrap();
    assert!(wrong_body.contains("SEARCH_API_KEYS"), "{wrong_body}");
    for key in KEYS.split(',') {
        let right = send(Some(key), "&as=bob").await.unwrap();
        assert_eq!(right.status(), 200, "{key}");
        let body: serde_json::Value = right.json().await.unwrap();
        assert!(body["hits"].is_array(), "{body}");
    }
    // A user key searches as its user, and only as its user.
    assert_eq!(send(Some(ANN_KEY), "").await.unwrap().status(), 200);
    assert_eq!(send(Some(ANN_KEY), "&as=ann").await.unwrap().status(), 200);
    let other = send(Some(ANN_KEY), "&as=bob").await.unwrap();
    assert_eq!(other.status(), 403);
    // Health and metrics stay open (they carry no indexed content).
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // One audit line per search, naming the key by id and the user searched as.
    log.wait_for(
        "search by user:ann as ann",
        std::time::Duration::from_secs(5),
    )
    .await;
    log.wait_for("as bob", std::time::Duration::from_secs(5))
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let lines = log.finish();
    let audit: Vec<&String> = lines.iter().filter(|l| l.contains("search by ")).collect();
    assert!(
        audit
            .iter()
            .filter(|l| l.contains("gateway:") && l.contains("as bob"))
            .count()
            == 2,
        "{audit:#?}"
    );
    for line in &lines {
        for secret in KEYS.split(',').chain([WRONG, ANN_KEY]) {
            assert!(!line.contains(secret), "a key in the log: {line}");
        }
    }
    assert!(!wrong_body.contains(WRONG));
}

#[test]
fn a_short_key_refuses_to_start_without_printing_it() {
    for (var, value) in [
        ("SEARCH_API_KEYS", "short-key-123"),
        ("SEARCH_USER_KEYS", "ann=short-key-123"),
    ] {
        let out = support::command(None)
            .env(var, value)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(var) && err.contains("shorter than 32"),
            "{err}"
        );
        assert!(!err.contains("short-key-123"), "{err}");
    }
}

#[test]
fn a_public_address_without_keys_refuses_to_start() {
    let out = support::command(None)
        .env("SERVER_BIND", "0.0.0.0")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SERVER_BIND=0.0.0.0 exposes /search")
            && err.contains("SEARCH_API_KEYS")
            && err.contains("SEARCH_ALLOW_ANONYMOUS"),
        "{err}"
    );
}

#[tokio::test]
async fn an_open_index_starts_on_a_public_address_when_asked_for() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = support::command(None);
    cmd.env("DOCBRAIN_DATA_DIR", data.path())
        .env("SERVER_BIND", "0.0.0.0")
        .env("SEARCH_ALLOW_ANONYMOUS", "true")
        .stderr(Stdio::piped());
    let (mut child, base) = support::spawn(cmd);
    let log = Log::capture(&mut child);
    let port = base.rsplit(':').next().unwrap();
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/search?q=x"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    log.wait_for(
        "SEARCH_ALLOW_ANONYMOUS=true",
        std::time::Duration::from_secs(5),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
}
