//! Small text helpers every crate's messages and logs use.

/// Returns `text` on one line (runs of white space become one space), cut to at most
/// `max_chars` characters with `…` when it was longer: for error details and snippets.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Returns the first `max_chars` characters of `text`, cut on a character boundary.
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// Returns `text` with control characters escaped (`\n` as `\\n`), for logging text that came
/// from outside (a page title in a webhook body): a newline in it cannot forge a log line.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_and_cuts_on_character_boundaries() {
        assert_eq!(one_line("  a\n\tb  c ", 10), "a b c");
        assert_eq!(one_line("héllo wörld", 5), "héllo…");
        assert_eq!(one_line("", 3), "");
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
        assert!(now_ms() > 1_700_000_000_000);
        assert_eq!(printable("Café — plan"), "Café — plan");
        assert_eq!(
            printable("x\n2026-12-02T00:00:00Z  INFO forged\r\u{1b}[31m"),
            "x\\n2026-12-02T00:00:00Z  INFO forged\\r\\u{1b}[31m"
        );
    }
}
