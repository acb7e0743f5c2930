//! `occurredAt` timestamps: RFC 3339 / ISO 8601 as .NET writes them
//! (`2024-05-01T12:34:56.1234567+02:00`, `…Z`, or without an offset, read
//! as UTC), to milliseconds since the Unix epoch, parsed by `jiff`.

use jiff::Timestamp;

/// Milliseconds since the Unix epoch, or `None` if it does not parse.
pub(super) fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    // With an offset (`Z`, `+02:00`): an instant.
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t.as_millisecond());
    }
    // Without one (.NET's `DateTimeKind.Unspecified`): read as UTC. A
    // bracketed time zone name alone is not accepted.
    if s.contains('[') {
        return None;
    }
    let t = format!("{s}Z").parse::<Timestamp>().ok()?;
    Some(t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_timestamps_parse() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_ms("2024-05-01T12:34:56.789Z"),
            Some(1_714_566_896_789)
        );
        assert_eq!(
            parse_ms("2024-05-01T14:34:56.7891234+02:00"),
            Some(1_714_566_896_789)
        );
        assert_eq!(parse_ms("2024-05-01T12:34:56"), Some(1_714_566_896_000));
        assert_eq!(parse_ms(" 2024-05-01T12:34:56Z "), Some(1_714_566_896_000));
        assert_eq!(parse_ms("2000-02-29T00:00:00-01:30"), Some(951_787_800_000));
        assert_eq!(parse_ms("1969-12-31T23:59:59.999Z"), Some(-1));
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T12:34:56.Z",
            "2024-05-01T12:34:56[Europe/Paris]",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}
