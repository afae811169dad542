//! Durations as operators write them: `90s`, `30m`, `6h`, `1d`.

use std::time::Duration;

/// Reads a duration such as `500ms`, `90s`, `30m`, `6h` or `1d`; `name` is the setting, for the
/// message.
///
/// # Errors
/// [`docbrain_core::ErrorKind::InvalidConfig`] naming `name` for anything else.
pub fn parse_duration(name: &str, text: &str) -> docbrain_core::Result<Duration> {
    let text = text.trim();
    let bad = || {
        super::invalid(format!(
            "{name}={text:?} is not a duration: use a number with ms, s, m, h or d, e.g. 30s, 5m or 6h"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(bad()),
    };
    ms.map(Duration::from_millis).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_unit_and_names_the_setting_otherwise() {
        let d = |t| parse_duration("INGEST_SCHEDULE", t);
        assert_eq!(d("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(d(" 30m ").ok(), Some(Duration::from_secs(1800)));
        assert_eq!(d("6h").ok(), Some(Duration::from_secs(21_600)));
        assert_eq!(d("1d").ok(), Some(Duration::from_secs(86_400)));
        assert_eq!(d("250ms").ok(), Some(Duration::from_millis(250)));
        for wrong in [
            "",
            "6",
            "h",
            "0 */6 * * *",
            "6 hours",
            "-1h",
            "99999999999999999999d",
        ] {
            let e = d(wrong).unwrap_err().to_string();
            assert!(e.starts_with("INGEST_SCHEDULE="), "{wrong}: {e}");
        }
    }
}
