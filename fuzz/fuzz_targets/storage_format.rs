//! The storage-format converter never panics, and what it prints is stable text: converting
//! never loses the input's plain words entirely when the input is plain text.
#![no_main]

use docbrain_confluence::storage_to_markdown;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xhtml) = std::str::from_utf8(data) else {
        return;
    };
    let markdown = storage_to_markdown(xhtml);
    // Plain text without markup comes through.
    if !xhtml.contains(['<', '&', '>', '\\', '*', '_', '`', '#', '[', ']', '|', '-', '+', '!'])
        && xhtml.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && !xhtml.trim().is_empty()
    {
        let first = xhtml.split_whitespace().next().unwrap_or_default();
        assert!(markdown.contains(first), "{xhtml:?} -> {markdown:?}");
    }
});
