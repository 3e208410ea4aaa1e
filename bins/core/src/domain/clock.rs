//! UTC timestamps as Docker writes them (RFC 3339), both ways, with the calendar checked (jiff).

use jiff::Timestamp;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Now, in UTC, as RFC 3339 (`2026-11-22T01:02:03Z`).
pub fn utc_now() -> String {
    format_utc(now_secs())
}

/// `secs` since the epoch as RFC 3339 in UTC, to the second.
pub fn format_utc(secs: u64) -> String {
    let timestamp = i64::try_from(secs)
        .ok()
        .and_then(|secs| Timestamp::from_second(secs).ok())
        .unwrap_or(Timestamp::MAX);
    timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Seconds since the epoch of `2026-11-22T01:02:03.123456789Z` (fractions
/// dropped; a `+hh:mm`/`-hh:mm` offset is honoured). None if malformed, if
/// the date does not exist (31 February), or before the epoch (Docker's
/// "never started" is the year 1).
pub fn parse_utc(text: &str) -> Option<u64> {
    // jiff also takes a space for the `T` and lowercase letters: Docker writes neither.
    if text.as_bytes().get(10) != Some(&b'T') || !text.is_ascii() {
        return None;
    }
    let timestamp: Timestamp = text.parse().ok()?;
    u64::try_from(timestamp.as_second()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_dates_are_refused() {
        for bad in [
            "2026-02-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-04-31T12:00:00Z",
            "2026-11-22T24:00:00Z",
            "２０２６-11-22T00:44:05Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
        assert_eq!(parse_utc("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    }

    #[test]
    fn format_gives_civil_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_308_245), "2026-11-22T00:44:05Z");
    }

    #[test]
    fn parse_reads_docker_timestamps_and_round_trips() {
        assert_eq!(
            parse_utc("2026-11-22T00:44:05.707314127Z"),
            Some(1_795_308_245)
        );
        assert_eq!(parse_utc("2026-11-22T01:44:05+01:00"), Some(1_795_308_245));
        for secs in [0, 951_782_400, 1_795_308_245, 4_102_444_800] {
            assert_eq!(parse_utc(&format_utc(secs)), Some(secs));
        }
        for bad in [
            "",
            "0001-01-01",
            "2026-13-01T00:00:00Z",
            "2026-11-22 00:44:05Z",
            "2026-11-22T00:44:05",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
        // Docker's "never started" is the year 1; before the epoch is None.
        assert_eq!(parse_utc("0001-01-01T00:00:00Z"), None);
    }
}
