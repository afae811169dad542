//! Log-safe text and the clock every crate's records and logs use.

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
    fn stamps_and_escapes() {
        assert!(now_ms() > 1_700_000_000_000);
        assert_eq!(printable("Café — plan"), "Café — plan");
        assert_eq!(
            printable("x\n2026-12-02T00:00:00Z  INFO forged\r\u{1b}[31m"),
            "x\\n2026-12-02T00:00:00Z  INFO forged\\r\\u{1b}[31m"
        );
    }
}
