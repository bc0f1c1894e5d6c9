//! Timestamps as strata writes them: RFC 3339 in UTC with nanoseconds,
//! Docker's format for `Created`, `StartedAt`, log entries and snapshot
//! records, so one function makes them all.

/// The current time, RFC 3339 with nanoseconds (`2026-12-07T02:41:39.123456789Z`).
pub fn now() -> String {
    rfc3339(chrono::Utc::now())
}

/// `t` as strata writes times: RFC 3339 in UTC with nanoseconds.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_rfc3339_utc_with_nanoseconds() {
        let t = super::now();
        let parsed = chrono::DateTime::parse_from_rfc3339(&t).unwrap();
        assert_eq!(parsed.offset().local_minus_utc(), 0);
        assert!(t.ends_with('Z') && t.len() == "2026-12-07T02:41:39.123456789Z".len(), "{t}");
    }
}
