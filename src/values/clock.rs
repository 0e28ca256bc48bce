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
