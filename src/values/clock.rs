//! Wall-clock time in the two forms the records and the messages use.

/// Now, in Unix seconds (what every record and event keeps).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, in Unix milliseconds (the signed time of a served sign-up form).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The current time as an RFC 5322 date.
pub fn rfc2822_now() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now()).replace("GMT", "+0000")
}

/// A day written YYYY-MM-DD (a configuration's dates).
pub fn parse_day(text: &str) -> Option<time::Date> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// `day` as YYYY-MM-DD, as [`parse_day`] reads it.
pub fn format_day(day: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_read_back_as_written_and_nonsense_is_refused() {
        let day = super::parse_day("2026-12-03").expect("a day");
        assert_eq!(super::format_day(day), "2026-12-03");
        for bad in ["2026-13-01", "2026-02-30", "next week", "2026-12", ""] {
            assert!(super::parse_day(bad).is_none(), "{bad}");
        }
    }
}
