//! Date-time formatting without reading the clock: the codec takes time as
//! an argument and only converts it.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Formats seconds since the epoch as RFC 3339 (UTC, `+00:00`).
pub fn format_rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map(|s| s.replace('Z', "+00:00"))
        .unwrap_or_else(|| secs.to_string())
}

/// Parses RFC 3339 into seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
