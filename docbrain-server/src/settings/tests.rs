use std::collections::HashMap;
use std::sync::Mutex;

use docbrain_confluence::ApiVersion;
use docbrain_core::ErrorKind;
use docbrain_index::Provider;

use super::*;

fn from(pairs: &[(&str, &str)]) -> Result<Settings> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
}

fn error(pairs: &[(&str, &str)]) -> String {
    match from(pairs) {
        Ok(s) => panic!("accepted {pairs:?}: {s:?}"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            e.to_string()
        }
    }
}

const CLOUD: [(&str, &str); 4] = [
    ("CONFLUENCE_BASE_URL", "https://acme.atlassian.net/wiki"),
    ("CONFLUENCE_USER_EMAIL", "bot@acme.com"),
    ("CONFLUENCE_API_TOKEN", "tok-123"),
    ("CONFLUENCE_SPACE_KEYS", " ENG, OPS ,,"),
];

#[test]
fn nothing_set_gives_the_zero_set_up_defaults() {
    let s = from(&[]).unwrap();
    assert_eq!(s, Settings::default());
    assert_eq!(s.source, SourceSettings::None);
    assert_eq!(s.store, StoreSettings::Embedded);
    assert_eq!(s.embedder.provider, Provider::Local);
    // Empty values count as unset.
    assert_eq!(
        from(&[("SOURCE_TYPE", " "), ("SERVER_PORT", "")]).unwrap(),
        s
    );
}

#[test]
fn a_full_deployment_reads_back() {
    let mut pairs = CLOUD.to_vec();
    pairs.extend([
        ("CONFLUENCE_WEBHOOK_SECRET", "whsec"),
        ("WEBHOOK_DEBOUNCE_MS", "250"),
        ("WEBHOOK_WORKERS", "3"),
        ("DOCBRAIN_DATA_DIR", "/data/index"),
        ("INDEX_STORE", "OpenSearch"),
        ("OPENSEARCH_URL", "https://search:9200"),
        ("OPENSEARCH_PASSWORD", "pw"),
        ("EMBED_PROVIDER", "ollama"),
        ("CHUNK_MAX_TOKENS", "128"),
        ("MAX_DELETE_FRACTION", "0.25"),
        ("CONFLUENCE_PAGE_LIMIT", "0"),
        ("CONFLUENCE_TLS_VERIFY", "false"),
        ("INGEST_SCHEDULE", "6h"),
        ("SERVER_PORT", "0"),
        (
            "SEARCH_API_KEYS",
            "key-one-0123456789abcdef0123456789, key-two-0123456789abcdef0123456789,",
        ),
        (
            "SEARCH_USER_KEYS",
            "5570:ann=key-ann-0123456789abcdef0123456789",
        ),
        ("SEARCH_GATEWAY_USERS", "ann, bob"),
        ("CONFLUENCE_ANONYMOUS_ACCESS", "true"),
        ("SEARCH_PERMISSIONS", "off"),
        ("PERMISSION_CACHE_TTL", "30s"),
    ]);
    let s = from(&pairs).unwrap();
    let SourceSettings::Confluence(c) = &s.source else {
        panic!("{:?}", s.source)
    };
    assert_eq!(c.space_keys, ["ENG", "OPS"]);
    assert_eq!(c.api_version, ApiVersion::V2);
    assert_eq!(c.page_limit, None);
    assert!(!c.tls_verify);
    let w = s.webhook.as_ref().unwrap();
    assert_eq!(w.debounce, Duration::from_millis(250));
    assert_eq!(w.workers, 3);
    assert_eq!(w.journal_dir, PathBuf::from("/data/index/journal"));
    let StoreSettings::OpenSearch(os) = &s.store else {
        panic!("{:?}", s.store)
    };
    assert_eq!(os.url, "https://search:9200");
    assert_eq!(s.embedder.provider, Provider::Ollama);
    assert_eq!(s.chunk_max_tokens, 128);
    assert!((s.pipeline.max_delete_fraction - 0.25).abs() < f64::EPSILON);
    assert_eq!(
        s.server.ingest_schedule,
        Some(Duration::from_secs(6 * 3600))
    );
    assert_eq!(s.server.port, 0);
    assert_eq!(s.search.api_keys.len(), 2);
    assert_eq!(s.search.user_keys.len(), 1);
    assert_eq!(s.search.user_keys[0].0, "5570:ann");
    assert_eq!(s.search.gateway_users, ["ann", "bob"]);
    assert!(c.anonymous_access);
    assert!(!s.search.permissions && !c.read_permissions);
    assert_eq!(s.pipeline.reader_ttl, Duration::from_secs(30));
    assert_eq!(s.caller(Some("ann")), docbrain_core::Caller::Unfiltered);
    let printed = format!("{s:?}");
    for secret in ["tok-123", "whsec", "pw\"", "key-one", "key-two", "key-ann"] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
}

#[test]
fn the_source_follows_source_type_then_what_is_set() {
    let local = from(&[("LOCAL_DOCS_PATH", "examples/sample-space")]).unwrap();
    assert!(matches!(&local.source, SourceSettings::Local(l) if l.space_key == "LOCAL"));
    let dc = from(&[
        ("INGEST_SOURCES", "confluence"),
        ("CONFLUENCE_BASE_URL", "https://wiki.corp"),
        ("CONFLUENCE_API_VERSION", "v1"),
        ("CONFLUENCE_API_TOKEN", "pat"),
    ])
    .unwrap();
    assert!(matches!(&dc.source, SourceSettings::Confluence(c) if c.api_version == ApiVersion::V1));
    // A base URL alone (a search-only server's settings) names no source.
    let search_only = from(&[("CONFLUENCE_BASE_URL", "https://wiki.corp")]).unwrap();
    assert_eq!(search_only.source, SourceSettings::None);
}

#[test]
fn each_mistake_names_the_variable_to_fix() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("SOURCE_TYPE", "local")],
            "LOCAL_DOCS_PATH is not set: point it at a folder of pages",
        ),
        (
            &[("SEARCH_PERMISSIONS", "maybe")],
            "SEARCH_PERMISSIONS=\"maybe\" is not true or false",
        ),
        (&[("PERMISSION_CACHE_TTL", "soon")], "PERMISSION_CACHE_TTL"),
        (
            &[("SOURCE_TYPE", "s3")],
            "SOURCE_TYPE=s3 is not a known source: use local or confluence",
        ),
        (
            &[("INGEST_SOURCES", "local,confluence")],
            "INGEST_SOURCES=local,confluence names several sources",
        ),
        (
            &[
                ("CONFLUENCE_API_VERSION", "v3"),
                ("SOURCE_TYPE", "confluence"),
            ],
            "CONFLUENCE_API_VERSION=\"v3\" is not a version: use v2 (Cloud) or v1 (Data Center)",
        ),
        (
            &[("CONFLUENCE_WEBHOOK_SECRET", "s")],
            "CONFLUENCE_WEBHOOK_SECRET set but CONFLUENCE_BASE_URL and CONFLUENCE_API_TOKEN not set",
        ),
        (
            &[
                ("CONFLUENCE_WEBHOOK_SECRET", "s"),
                ("CONFLUENCE_API_TOKEN", "t"),
            ],
            "CONFLUENCE_WEBHOOK_SECRET set but CONFLUENCE_BASE_URL not set",
        ),
        (
            &[
                ("LOCAL_DOCS_PATH", "examples/sample-space"),
                ("CONFLUENCE_BASE_URL", "http://127.0.0.1:8090/wiki"),
                ("CONFLUENCE_API_TOKEN", "t"),
            ],
            "LOCAL_DOCS_PATH and CONFLUENCE_BASE_URL/CONFLUENCE_API_TOKEN are both set",
        ),
        (&[("LOG_LEVEL", "verbose")], "LOG_LEVEL=verbose is not a log filter"),
        (&[("LOG_LEVEL", "docbrain_core=loud")], "LOG_LEVEL=docbrain_core=loud is not a log filter"),
        (
            &[("CONFLUENCE_WEBHOOK_SECRET", "change-me-to-a-long-random-string")],
            "CONFLUENCE_WEBHOOK_SECRET still holds the example's placeholder",
        ),
        (
            &[("SEARCH_API_KEYS", "change-me-to-another-long-random-string")],
            "SEARCH_API_KEYS still holds the example's placeholder",
        ),
        (
            &[("MAX_DELETE_FRACTION", "1.5")],
            "MAX_DELETE_FRACTION=1.5 must be between 0 and 1",
        ),
        (
            &[("MAX_DELETE_FRACTION", "half")],
            "MAX_DELETE_FRACTION=\"half\" is not a number between 0 and 1",
        ),
        (
            &[("SERVER_PORT", "70000")],
            "SERVER_PORT=\"70000\" is not a whole number",
        ),
        (
            &[
                ("OPENSEARCH_TLS_VERIFY", "maybe"),
                ("INDEX_STORE", "opensearch"),
            ],
            "OPENSEARCH_TLS_VERIFY=\"maybe\" is not true or false",
        ),
        (
            &[("INDEX_STORE", "elastic")],
            "INDEX_STORE=elastic is not a store: use embedded or opensearch",
        ),
        (
            &[("EMBED_PROVIDER", "cohere")],
            "EMBED_PROVIDER=cohere is not a provider",
        ),
        (
            &[("CHUNK_MAX_TOKENS", "4")],
            "CHUNK_MAX_TOKENS=4 is too small: use at least 65",
        ),
        (
            &[("INGEST_SCHEDULE", "0 */6 * * *")],
            "use a cron runner or the Helm chart's CronJob",
        ),
        (
            &[("INGEST_SCHEDULE", "30s"), ("LOCAL_DOCS_PATH", "x")],
            "INGEST_SCHEDULE=30s is shorter than a minute",
        ),
        (
            &[("INGEST_SCHEDULE", "1h")],
            "INGEST_SCHEDULE is set but no source is",
        ),
    ];
    for (pairs, expected) in cases {
        let e = error(pairs);
        assert!(e.contains(expected), "{pairs:?}: {e}");
    }
    let mut missing_email = CLOUD.to_vec();
    missing_email.retain(|(k, _)| *k != "CONFLUENCE_USER_EMAIL");
    missing_email.push(("CONFLUENCE_WEBHOOK_SECRET", "s"));
    let e = error(&missing_email);
    assert!(
        e.starts_with("CONFLUENCE_WEBHOOK_SECRET set but CONFLUENCE_USER_EMAIL is not set"),
        "{e}"
    );
}

#[test]
fn every_variable_read_is_listed_in_vars() {
    let asked = Mutex::new(Vec::new());
    // One deployment with every part set, one with the local source inferred.
    let deployments: [&[(&str, &str)]; 2] = [
        &[
            ("SOURCE_TYPE", "confluence"),
            ("INDEX_STORE", "opensearch"),
            ("CONFLUENCE_WEBHOOK_SECRET", "x"),
            ("CONFLUENCE_API_TOKEN", "x"),
            ("CONFLUENCE_BASE_URL", "https://x"),
            ("CONFLUENCE_USER_EMAIL", "a@b"),
        ],
        &[("LOCAL_DOCS_PATH", "docs")],
    ];
    for pairs in deployments {
        Settings::from_lookup(|name| {
            asked.lock().unwrap().push(name.to_owned());
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap();
    }
    let asked = asked.into_inner().unwrap();
    for name in &asked {
        assert!(
            VARS.iter().any(|v| v.name == name),
            "{name} is read but not in VARS"
        );
    }
    for v in VARS {
        assert!(
            asked.iter().any(|n| n == v.name),
            "{} is in VARS but never read",
            v.name
        );
    }
    for secret in [
        "CONFLUENCE_API_TOKEN",
        "CONFLUENCE_WEBHOOK_SECRET",
        "OPENAI_API_KEY",
        "OPENSEARCH_PASSWORD",
    ] {
        let var = VARS.iter().find(|v| v.name == secret).unwrap();
        assert!(
            var.flag.is_none(),
            "{secret} must never be a flag (it would show in ps)"
        );
    }
}

#[test]
fn search_keys_must_be_long_bound_and_distinct_and_are_never_named() {
    let long = "k".repeat(32);
    for (var, value, says) in [
        (
            "SEARCH_API_KEYS",
            "short-key",
            "SEARCH_API_KEYS: key 1 is shorter than 32",
        ),
        (
            "SEARCH_USER_KEYS",
            "ann=short-key",
            "SEARCH_USER_KEYS: key 1 is shorter than 32",
        ),
        ("SEARCH_USER_KEYS", "no-user-named", "user=key"),
        ("SEARCH_USER_KEYS", &format!("={long}"), "names no user"),
    ] {
        let err = from(&[(var, value)]).unwrap_err().to_string();
        assert!(err.contains(says), "{var}={value}: {err}");
        assert!(!err.contains("short-key") && !err.contains(&long), "{err}");
    }
    let err = from(&[
        ("SEARCH_API_KEYS", long.as_str()),
        ("SEARCH_USER_KEYS", &format!("ann={long}")),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("distinct"), "{err}");
    let site = from(&[
        ("CONFLUENCE_BASE_URL", "https://wiki.corp"),
        ("CONFLUENCE_API_VERSION", "v1"),
        ("CONFLUENCE_API_TOKEN", "pat"),
    ])
    .unwrap();
    let SourceSettings::Confluence(c) = &site.source else {
        panic!("{:?}", site.source)
    };
    assert!(
        !c.anonymous_access,
        "closed unless the site is said to be open"
    );
}

#[test]
fn a_crawls_confluence_settings_are_checked_where_the_source_is_built() {
    for (pairs, says) in [
        (
            &[("SOURCE_TYPE", "confluence")][..],
            "CONFLUENCE_BASE_URL is not set",
        ),
        (
            &[
                ("SOURCE_TYPE", "confluence"),
                ("CONFLUENCE_BASE_URL", "https://x"),
            ][..],
            "CONFLUENCE_API_TOKEN is not set",
        ),
        (
            &[
                ("CONFLUENCE_BASE_URL", "https://x"),
                ("CONFLUENCE_API_TOKEN", "t"),
            ][..],
            "CONFLUENCE_USER_EMAIL is not set",
        ),
    ] {
        // Commands that do not crawl (`docbrain status`) read these settings fine.
        let s = from(pairs).unwrap();
        let SourceSettings::Confluence(c) = &s.source else {
            panic!("{:?}", s.source)
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(says), "{pairs:?}: {err}");
    }
}

#[test]
fn the_front_doors_name_the_remedy_of_a_parts_error() {
    let missing = docbrain_index::IndexError::ModelMissing {
        path: "/models/model.safetensors".into(),
    };
    let wrapped = docbrain_core::Error::from(missing);
    assert_eq!(
        wrapped.to_string(),
        "model file /models/model.safetensors is missing"
    );
    let hint = flags::hint(&wrapped).unwrap();
    assert!(
        hint.contains("scripts/fetch-model.sh") && hint.contains("MODEL_DIR"),
        "{hint}"
    );
    let schema = docbrain_core::Error::from(docbrain_index::IndexError::SchemaVersion {
        path: "/data/index.sqlite3".into(),
        found: 99,
        expected: 5,
    });
    assert!(flags::hint(&schema).unwrap().contains("docbrain ingest"));
    let other = docbrain_core::Error::new(ErrorKind::Transport, "connection reset");
    assert_eq!(flags::hint(&other), None);
}

#[test]
fn the_crawl_settings_are_read_for_every_source_and_zero_concurrency_is_refused() {
    let s = from(&[
        ("LOCAL_DOCS_PATH", "docs"),
        ("CONFLUENCE_FETCH_CONCURRENCY", "7"),
        ("DELETE_GUARD_FLOOR", "5"),
    ])
    .unwrap();
    assert_eq!(
        (s.pipeline.fetch_concurrency, s.pipeline.delete_floor),
        (7, 5)
    );
    assert!(error(&[("CONFLUENCE_FETCH_CONCURRENCY", "0")]).contains("at least 1"));
}
