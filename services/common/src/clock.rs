//! Wall-clock helpers: milliseconds since the epoch and RFC 3339 rendering.

use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Renders epoch milliseconds as RFC 3339 UTC with millisecond precision,
/// e.g. `2026-11-22T10:00:00.250Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d) = (dt.year(), dt.month() as u8, dt.day());
    let (h, mi, s, milli) = (dt.hour(), dt.minute(), dt.second(), dt.millisecond());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Renders an `OffsetDateTime` as RFC 3339 UTC.
pub fn rfc3339(dt: OffsetDateTime) -> String {
    rfc3339_ms((dt.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Parses an RFC 3339 timestamp (any offset) into epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|dt| (dt.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let ms = parse_rfc3339_ms("2026-11-22T10:00:00.250Z").expect("parses");
        assert_eq!(rfc3339_ms(ms), "2026-11-22T10:00:00.250Z");
        assert_eq!(parse_rfc3339_ms("2026-11-22T12:00:00+02:00"), parse_rfc3339_ms("2026-11-22T10:00:00Z"));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
