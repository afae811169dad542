//! Webhook tests: our own bodies (tests/fixtures/webhooks) and, opt-in, the captured ones.

use std::path::PathBuf;

use serde_json::Value;

use super::*;

/// The captured bodies (`DOCBRAIN_CAPTURED_FIXTURES`: scripts/test.sh sets it when the captured
/// fixtures are beside the checkout).
fn webhooks() -> PathBuf {
    let root = std::env::var_os("DOCBRAIN_CAPTURED_FIXTURES")
        .expect("DOCBRAIN_CAPTURED_FIXTURES is not set: run scripts/test.sh, which sets it when the captured fixtures exist");
    PathBuf::from(root).join("webhooks")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(webhooks().join(rel)).unwrap()
}

fn ours(file: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks");
    std::fs::read(dir.join(file)).unwrap()
}

#[test]
fn permission_events_name_their_page_or_space() {
    let body = br#"{"timestamp":1,"event":"content_permissions_updated","userKey":"k","content":{"id":42}}"#;
    let (event, page) = page_of(parse(body, None, None).unwrap());
    assert_eq!(event, PageEvent::PermissionsUpdated);
    assert_eq!(page.id.as_str(), "42");
    let body = br#"{"timestamp":1,"event":"space_permissions_updated","userKey":"k","space":{"key":"HR"}}"#;
    assert_eq!(
        parse(body, None, None).unwrap(),
        Delivery::Space {
            event: PageEvent::SpacePermissionsUpdated,
            space_key: "HR".into()
        }
    );
    let body = br#"{"timestamp":1,"event":"space_permissions_updated","space":{}}"#;
    assert!(matches!(
        parse(body, None, None),
        Err(PayloadError::NoSpaceKey { .. })
    ));
    // Without an event name, `content` is not a page (only `page` is).
    let body = br#"{"content":{"id":42}}"#;
    assert!(matches!(
        parse(body, None, None).unwrap(),
        Delivery::Ignored { .. }
    ));
}

#[test]
fn a_published_hmac_sha256_vector_verifies() {
    // The widely published HMAC-SHA256 example: key "key", the pangram as the body.
    let body = b"The quick brown fox jumps over the lazy dog";
    let header = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
    assert_eq!(sign(b"key", body), header);
    assert_eq!(verify(b"key", body, Some(header)), Ok(()));
    assert_eq!(
        verify(
            b"key",
            body,
            Some(&header.to_uppercase().replace("SHA256", "sha256"))
        ),
        Ok(())
    );
    assert_eq!(
        verify(b"kez", body, Some(header)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(
            b"key",
            b"The quick brown fox jumps over the lazy dog ",
            Some(header)
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(b"", body, Some(header)),
        Err(SignatureError::NoSecret)
    );
    assert_eq!(
        verify(b"key", body, Some(&header[7..])),
        Err(SignatureError::Malformed)
    );
}

#[test]
fn our_bodies_of_each_shape_name_their_event_and_page() {
    for (file, event, id) in [
        ("dc-page_created.json", PageEvent::Created, "4200001"),
        ("dc-page_updated.full.json", PageEvent::Updated, "4200001"),
        ("dc-page_trashed.json", PageEvent::Trashed, "4200002"),
        ("dc-page_restored.json", PageEvent::Restored, "4200002"),
        ("dc-page_removed.json", PageEvent::Removed, "4200003"),
        (
            "cloud-page_updated.numeric-id.json",
            PageEvent::Changed,
            "98310",
        ),
        (
            "cloud-page_trashed.string-id.json",
            PageEvent::Changed,
            "98311",
        ),
    ] {
        let (got, page) = page_of(parse(&ours(file), None, None).unwrap());
        assert_eq!((got, page.id.as_str()), (event, id), "{file}");
    }
    let (_, full) = page_of(parse(&ours("dc-page_updated.full.json"), None, None).unwrap());
    assert_eq!(full.title.as_deref(), Some("Deploys"));
    assert_eq!(full.space_key.as_deref(), Some("ENG"));
    assert_eq!(full.version, Some(7));
    // Cloud: one URL per event names it by query parameter or header (the header wins).
    let trashed = ours("cloud-page_trashed.string-id.json");
    assert_eq!(
        page_of(parse(&trashed, None, Some("page_trashed")).unwrap()).0,
        PageEvent::Trashed
    );
    assert_eq!(
        page_of(parse(&trashed, Some("page_removed"), Some("page_trashed")).unwrap()).0,
        PageEvent::Removed
    );
    // A comment event reconciles the page the comment is on; an id-only Data Center body names
    // the comment, whose page the reconcile finds.
    let (event, page) = page_of(parse(&ours("cloud-comment_created.json"), None, None).unwrap());
    assert_eq!(
        (event, page.id.as_str()),
        (PageEvent::CommentChanged, "98310")
    );
    assert_eq!(page.title.as_deref(), Some("Deploys"));
    let (event, page) = page_of(parse(&ours("dc-comment_removed.json"), None, None).unwrap());
    assert_eq!(
        (event, page.id.as_str()),
        (PageEvent::CommentRemoved, "98401")
    );
    assert!(event.is_part() && !PageEvent::Removed.is_part());
    // Data Center names an attachment's page as `attachedTo`.
    let body = br#"{"timestamp":1,"event":"attachment_created","userKey":"k","attachedTo":{"id":98310},"attachments":[{"id":"att98500"}]}"#;
    let (event, page) = page_of(parse(body, None, None).unwrap());
    assert_eq!(
        (event, page.id.as_str()),
        (PageEvent::AttachmentCreated, "98310")
    );
    // The Forge relay names the page as the part's `container`.
    let body = br#"{"eventType":"avi:confluence:created:comment","content":{"id":"98402","type":"comment","container":{"id":"98310","type":"page"}}}"#;
    let (event, page) = page_of(parse(body, None, None).unwrap());
    assert_eq!(
        (event, page.id.as_str()),
        (PageEvent::CommentCreated, "98310")
    );
    let body = br#"{"timestamp":1,"event":"attachment_trashed","attachments":[{"id":"att98500"}]}"#;
    let (event, page) = page_of(parse(body, None, None).unwrap());
    assert_eq!(
        (event, page.id.as_str()),
        (PageEvent::AttachmentTrashed, "att98500")
    );
    assert!(matches!(
        parse(&ours("dc-space_created.json"), None, None).unwrap(),
        Delivery::Ignored { .. }
    ));
}

#[test]
#[ignore = "reads the captured fixtures: scripts/test.sh runs it with DOCBRAIN_CAPTURED_FIXTURES"]
fn captured_signature_vectors_verify_as_documented() {
    let root = webhooks().join("..");
    let vectors: Value =
        serde_json::from_slice(&std::fs::read(webhooks().join("signature_vectors.json")).unwrap())
            .unwrap();
    let secret = vectors["secret"].as_str().unwrap().as_bytes();
    let files = vectors["files"].as_array().unwrap();
    assert!(files.len() >= 19);
    for f in files {
        let body = std::fs::read(root.join(f["file"].as_str().unwrap())).unwrap();
        let header = f["x_hub_signature"].as_str().unwrap();
        assert_eq!(verify(secret, &body, Some(header)), Ok(()), "{}", f["file"]);
        assert_eq!(sign(secret, &body), header, "{}", f["file"]);
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            verify(secret, &tampered, Some(header)),
            Err(SignatureError::Mismatch)
        );
    }
    let expect = |name: &str| -> Result<(), SignatureError> {
        let case = vectors["inline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        verify(
            case["secret"].as_str().unwrap().as_bytes(),
            case["raw_body"].as_str().unwrap().as_bytes(),
            case["x_hub_signature"].as_str(),
        )
    };
    assert_eq!(expect("dc_page_created_compact"), Ok(()));
    assert_eq!(expect("wrong_secret"), Err(SignatureError::Mismatch));
    assert_eq!(expect("body_reserialised"), Err(SignatureError::Mismatch));
    assert_eq!(expect("uppercase_hex"), Ok(()));
    assert_eq!(expect("missing_prefix"), Err(SignatureError::Malformed));
    assert_eq!(expect("empty_secret_hmac"), Err(SignatureError::NoSecret));
}

#[test]
fn malformed_and_missing_headers_are_told_apart() {
    let body = b"{}";
    assert_eq!(verify(b"s", body, None), Err(SignatureError::Missing));
    for bad in ["sha256=", "sha256=zz", "sha1=abcd", "sha256=0123", ""] {
        assert_eq!(
            verify(b"s", body, Some(bad)),
            Err(SignatureError::Malformed),
            "{bad}"
        );
    }
    let wrong_length_ok_hex = format!("sha256={}", "ab".repeat(31));
    assert_eq!(
        verify(b"s", body, Some(&wrong_length_ok_hex)),
        Err(SignatureError::Malformed)
    );
}

#[test]
fn url_tokens_compare_exactly() {
    assert!(secrets_match(b"s3cret", b"s3cret"));
    assert!(!secrets_match(b"s3cret", b"s3cre"));
    assert!(!secrets_match(b"s3cret", b"s3cret "));
    assert!(!secrets_match(b"s3cret", b""));
}

fn page_of(delivery: Delivery) -> (PageEvent, PageRef) {
    match delivery {
        Delivery::Page { event, page } => (event, page),
        other => panic!("expected a page event, got {other:?}"),
    }
}

#[test]
#[ignore = "reads the captured fixtures: scripts/test.sh runs it with DOCBRAIN_CAPTURED_FIXTURES"]
fn captured_data_center_bodies_name_their_event_and_an_id() {
    for (file, event) in [
        ("dc/page_created.zulip.json", PageEvent::Created),
        ("dc/page_updated.zulip.json", PageEvent::Updated),
        (
            "dc/page_updated.CONSTRUCTED-from-source.json",
            PageEvent::Updated,
        ),
        ("dc/page_trashed.zulip.json", PageEvent::Trashed),
        ("dc/page_restored.zulip.json", PageEvent::Restored),
        (
            "dc/page_removed.CONSTRUCTED-from-source.json",
            PageEvent::Removed,
        ),
        (
            "dc/page_created.full-payload.CONSTRUCTED-from-source.json",
            PageEvent::Created,
        ),
    ] {
        let (got, page) = page_of(parse(&read(file), None, None).unwrap());
        assert_eq!(got, event, "{file}");
        assert!(
            page.id.as_str().bytes().all(|b| b.is_ascii_digit()),
            "{file}: {}",
            page.id
        );
    }
    let (_, full) = page_of(
        parse(
            &read("dc/page_created.full-payload.CONSTRUCTED-from-source.json"),
            None,
            None,
        )
        .unwrap(),
    );
    assert!(full.title.is_some() && full.space_key.is_some() && full.version.is_some());
    let (moved, page) = page_of(parse(&read("dc/page_moved.zulip.json"), None, None).unwrap());
    assert_eq!(moved, PageEvent::Moved);
    assert!(moved.reaches_descendants());
    assert_eq!(page.id.as_str(), "123456");
    assert!(matches!(
        parse(
            &read("dc/not_a_confluence_event.zulip-anomalous.json"),
            None,
            None
        )
        .unwrap(),
        Delivery::Ignored { .. }
    ));
}

#[test]
#[ignore = "reads the captured fixtures: scripts/test.sh runs it with DOCBRAIN_CAPTURED_FIXTURES"]
fn captured_cloud_bodies_have_no_event_name_and_ids_of_both_types() {
    for file in [
        "cloud/page_created.kzkitchen-2024.json",
        "cloud/page_updated.kzkitchen-2024.json",
        "cloud/page_updated.dalstonsemantics-2021.json",
        "cloud/page_trashed.dalstonsemantics-2021.json",
        "cloud/page_removed.dalstonsemantics-2021.json",
        "cloud/page_restored.dalstonsemantics-2021.json",
        "cloud/page_updated.string-id.crewlet.json",
        "cloud/page_created.legacy-2016-userKey.json",
    ] {
        let raw: Value = serde_json::from_slice(&read(file)).unwrap();
        let (event, page) = page_of(parse(&read(file), None, None).unwrap());
        assert_eq!(event, PageEvent::Changed, "{file}");
        let expected_id = match &raw["page"]["id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => panic!("{file}: id {other}"),
        };
        assert_eq!(page.id.as_str(), expected_id, "{file}");
        assert_eq!(
            page.title.as_deref(),
            raw["page"]["title"].as_str(),
            "{file}"
        );
    }
    // One URL per event: the query parameter or header names it.
    let body = read("cloud/page_trashed.dalstonsemantics-2021.json");
    assert_eq!(
        page_of(parse(&body, None, Some("page_trashed")).unwrap()).0,
        PageEvent::Trashed
    );
    assert_eq!(
        page_of(parse(&body, Some("page_removed"), Some("page_trashed")).unwrap()).0,
        PageEvent::Removed
    );
    let (event, page) = page_of(
        parse(
            &read("cloud/comment_created.string-id.crewlet.json"),
            None,
            None,
        )
        .unwrap(),
    );
    assert_eq!(
        (event, page.id.as_str(), page.version),
        (PageEvent::CommentChanged, "10000001", Some(2))
    );
}

#[test]
fn bad_bodies_are_errors_or_ignored_never_panics() {
    assert!(matches!(
        parse(b"{not json", None, None),
        Err(PayloadError::NotJson(_))
    ));
    assert!(matches!(
        parse(br#"{"event":"page_updated","page":{"id":""}}"#, None, None),
        Err(PayloadError::NoPageId { .. })
    ));
    assert!(matches!(
        parse(br#"{"event":"page_updated"}"#, None, None),
        Err(PayloadError::NoPageId { .. })
    ));
    assert!(matches!(
        parse(br#"{"event":"space_created","space":{}}"#, None, None).unwrap(),
        Delivery::Ignored { .. }
    ));
    assert!(matches!(
        parse(b"[1,2]", None, None).unwrap(),
        Delivery::Ignored { .. }
    ));
}

#[test]
fn bodies_written_for_each_shape_read_back() {
    let page = PageRef {
        id: PageId::new("98765"),
        title: Some("Deploys".into()),
        space_key: Some("ENG".into()),
        version: Some(7),
    };
    for shape in [
        BodyShape::DataCenter,
        BodyShape::DataCenterFull,
        BodyShape::Cloud,
        BodyShape::CloudStringId,
    ] {
        for event in [PageEvent::Created, PageEvent::Updated, PageEvent::Trashed] {
            let text = body(event, &page, shape, 1_700_000_000_000);
            let (got, read_back) = page_of(parse(text.as_bytes(), None, None).unwrap());
            let cloud = matches!(shape, BodyShape::Cloud | BodyShape::CloudStringId);
            assert_eq!(got, if cloud { PageEvent::Changed } else { event });
            assert_eq!(read_back.id, page.id);
            if shape != BodyShape::DataCenter {
                assert_eq!(read_back.version, Some(7));
            }
            let json: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                json.get("updateTrigger").is_some(),
                event == PageEvent::Updated
            );
            assert_eq!(json.get("event").is_none(), cloud);
        }
    }
    let dc = body(PageEvent::Created, &page, BodyShape::DataCenter, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&dc).unwrap()["page"],
        serde_json::json!({"id": 98765})
    );
}

#[test]
fn the_forge_relays_bodies_name_their_event_and_page() {
    for (name, want) in [
        ("avi:confluence:created:page", PageEvent::Created),
        ("avi:confluence:updated:page", PageEvent::Updated),
        ("avi:confluence:trashed:page", PageEvent::Trashed),
        ("avi:confluence:restored:page", PageEvent::Restored),
        ("avi:confluence:deleted:page", PageEvent::Removed),
        ("avi:confluence:moved:page", PageEvent::Moved),
        ("avi:confluence:archived:page", PageEvent::Changed),
        ("avi:confluence:unarchived:page", PageEvent::Changed),
        (
            "avi:confluence:permissions_updated:page",
            PageEvent::PermissionsUpdated,
        ),
    ] {
        let body = format!(
            r#"{{"eventType":"{name}","content":{{"id":"100001","type":"page","title":"Runbook","spaceKey":"ENG"}}}}"#
        );
        let (event, page) = page_of(parse(body.as_bytes(), None, None).unwrap());
        assert_eq!(event, want, "{name}");
        assert_eq!(page.id, PageId::from("100001"), "{name}");
        assert_eq!(page.title.as_deref(), Some("Runbook"));
        assert_eq!(page.space_key.as_deref(), Some("ENG"));
    }
    let blog = br#"{"eventType":"avi:confluence:created:blogpost","content":{"id":"7","type":"blogpost"}}"#;
    assert!(matches!(
        parse(blog, None, None).unwrap(),
        Delivery::Ignored { .. }
    ));
}
