//! Extraction of each type from files built here, and the hostile files that must fail alone.

use std::time::{Duration, Instant};

use super::*;
use crate::simulator::files::{bomb, docx, pdf, pptx, xlsx, zip_of};

#[test]
fn word_paragraphs_keep_their_order_and_headings() {
    let file = docx(&[
        (Some("Heading1"), "Failover"),
        (None, "Promote the replica &amp; repoint the writers."),
        (Some("Heading2"), "Checks"),
        (None, "Lag under 5s"),
    ]);
    let text = extract(FileType::Docx, &file, 10_000).unwrap();
    assert_eq!(
        text,
        "# Failover\n\nPromote the replica & repoint the writers.\n\n## Checks\n\nLag under 5s"
    );
}

#[test]
fn slides_come_in_deck_order_with_notes_and_without_boilerplate() {
    let file = pptx(&[
        ("Quarterly roadmap", Some("Mention the hiring freeze")),
        ("Launch in May", None),
    ]);
    let text = extract(FileType::Pptx, &file, 10_000).unwrap();
    assert_eq!(
        text,
        "## Slide 1\n\nQuarterly roadmap\n\nNotes: Mention the hiring freeze\n\n## Slide 2\n\nLaunch in May"
    );
    assert!(!text.contains("Master") && !text.contains('7'), "{text}");
}

#[test]
fn sheets_read_row_by_row_under_their_names() {
    let file = xlsx(&[
        (
            "Budget",
            vec![vec!["Team", "Amount"], vec!["Platform", "125000"]],
        ),
        ("Notes", vec![vec!["Approved by finance"]]),
    ]);
    let text = extract(FileType::Xlsx, &file, 10_000).unwrap();
    assert_eq!(
        text,
        "## Budget\n\nTeam | Amount\nPlatform | 125000\n\n## Notes\n\nApproved by finance"
    );
    // A long sheet is cut at the row cap, and the text at the character cap.
    let rows: Vec<Vec<&str>> = (0..12_000).map(|_| vec!["row"]).collect();
    let long = extract(FileType::Xlsx, &xlsx(&[("Big", rows)]), 1_000_000).unwrap();
    assert_eq!(long.matches("row").count(), 10_000);
    assert_eq!(
        extract(FileType::Xlsx, &file, 13).unwrap(),
        "## Budget\n\nTe"
    );
}

#[test]
fn pdf_pages_are_read_in_order() {
    let file = pdf(&["The vault unseal key rotates monthly.", "Page two text."]);
    let text = extract(FileType::Pdf, &file, 10_000).unwrap();
    let first = text.find("unseal key").expect("first page's text");
    let second = text.find("Page two").expect("second page's text");
    assert!(first < second, "{text}");
}

#[test]
fn text_like_files_read_as_text() {
    assert_eq!(
        extract(FileType::Text, b"id,owner\n1,platform\n", 100).unwrap(),
        "id,owner\n1,platform"
    );
    assert_eq!(
        extract(FileType::Html, b"<h1>Runbook</h1><p>Restart it.</p>", 100).unwrap(),
        "# Runbook\n\nRestart it."
    );
    assert_eq!(
        extract(
            FileType::Xml,
            b"<a><b>one</b><c>two &amp; three</c></a>",
            100
        )
        .unwrap(),
        "one\ntwo\n&\nthree"
    );
}

#[test]
fn the_type_is_the_media_types_or_the_names_and_the_content_must_agree() {
    let of = |media: Option<&str>, name: &str| FileType::of(media, name);
    assert_eq!(of(Some("application/pdf"), "x"), Ok(FileType::Pdf));
    assert_eq!(
        of(Some("application/octet-stream"), "deck.PPTX"),
        Ok(FileType::Pptx)
    );
    assert_eq!(of(None, "notes.md"), Ok(FileType::Text));
    assert_eq!(
        of(Some("text/csv; charset=utf-8"), "a.bin"),
        Ok(FileType::Text)
    );
    assert!(of(Some("image/png"), "diagram.png")
        .unwrap_err()
        .0
        .contains("image/png"));
    assert!(of(None, "archive.tar.gz").is_err());
    // A PDF by its type whose bytes are not one fails; so does binary "text".
    assert!(matches!(
        extract(FileType::Pdf, b"GIF89a not a pdf", 100),
        Err(ExtractError::Corrupt { .. })
    ));
    assert!(matches!(
        extract(FileType::Text, b"\x00\x01\x02binary", 100),
        Err(ExtractError::Corrupt { .. })
    ));
}

/// The hostile corpus with its types, and a document whose entities would expand a
/// billion-fold (billion laughs), which reads as no text.
pub(crate) fn hostile() -> Vec<(&'static str, FileType, Vec<u8>)> {
    let mut all: Vec<(&'static str, FileType, Vec<u8>)> = crate::simulator::files::hostile()
        .into_iter()
        .map(|h| {
            (
                h.what,
                FileType::of(Some(h.media_type), h.file_name).unwrap(),
                h.content,
            )
        })
        .collect();
    let mut dtd = String::from(r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">"#);
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            r#"<!ENTITY lol{i} "{}">"#,
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push_str(&format!(
        "]><w:document {}><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>",
        crate::simulator::files::W
    ));
    all.push((
        "billion laughs",
        FileType::Docx,
        zip_of(&[("word/document.xml", &dtd)]),
    ));
    all
}

#[test]
fn hostile_files_fail_alone_and_quickly() {
    for (what, kind, bytes) in hostile() {
        let started = Instant::now();
        let result = extract(kind, &bytes, 200_000);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {:?}",
            started.elapsed()
        );
        match (what, &result) {
            // Entities a document declares are not expanded: nothing is read, nothing blows up.
            ("billion laughs", Ok(text)) => assert!(text.len() < 100, "{text}"),
            (_, Err(_)) => {}
            (_, Ok(text)) => panic!("{what} read as {} chars", text.len()),
        }
    }
}

/// The extractor's child when this test binary is started as one (`CHILD_ENV` set); a plain
/// `--ignored` run does nothing.
#[test]
#[ignore = "the child process of the extractor tests"]
fn extractor_child() {
    serve_if_child();
}

/// This test binary as the extractor: it runs `extractor_child` only.
pub(crate) fn test_extractor() -> Extractor {
    crate::simulator::test_extractor("extract::tests::extractor_child")
}

#[tokio::test]
async fn the_child_process_extracts_and_fails_without_taking_the_caller_down() {
    let extractor = test_extractor();
    let text = extractor
        .extract(FileType::Docx, &docx(&[(None, "Rotate the keys.")]), 1_000)
        .await
        .unwrap();
    assert_eq!(text, "Rotate the keys.");
    // The child sees none of the caller's environment (HOME, a token…), only CHILD_ENV.
    assert!(std::env::var_os("HOME").is_some());
    let echo = Extractor::command(
        "/bin/sh",
        vec![
            "-c".into(),
            r#"printf 'DOCBRAIN-EXTRACTED {"answer":{"text":"%s"},"peak_kib":null}\n' "${HOME:-none}${DOCBRAIN_EXTRACT_CHILD:+ child}""#.into(),
        ],
    );
    assert_eq!(
        echo.extract(FileType::Text, b"x", 10).await.unwrap(),
        "none child"
    );
    for (what, kind, bytes) in hostile() {
        match extractor.extract(kind, &bytes, 200_000).await {
            Ok(text) => assert!(
                what == "billion laughs" && text.len() < 100,
                "{what}: {text}"
            ),
            Err(e) => assert!(!e.to_string().is_empty(), "{what}"),
        }
    }
    // A file within the expansion budget but past the memory limit kills the child: that
    // file fails, with a reason; the same file with room to spare reads.
    let big = bomb(120);
    let mut starved = test_extractor();
    starved.memory_bytes = 100 << 20;
    let err = starved
        .extract(FileType::Docx, &big, 100)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    let roomy = extractor.extract(FileType::Docx, &big, 100).await;
    assert_eq!(roomy, Ok(String::new()), "with room, it reads (to no text)");
    // A child that hangs is killed at the time limit.
    let mut hang = Extractor::command("sleep", vec!["30".into()]);
    hang.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = hang.extract(FileType::Text, b"x", 10).await.unwrap_err();
    assert!(err.to_string().contains("took longer"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
