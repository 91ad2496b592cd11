//! How both ends show a time to a person: UTC, so that a server's banner
//! and a client's output agree whatever their time zones. Not part of the
//! wire format, which carries seconds since the Unix epoch.

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn date(unix: u64) -> String {
    let (y, m, d) = civil(unix);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
pub fn date_time(unix: u64) -> String {
    format!("{} {} UTC", date(unix), time_of_day(unix))
}

/// `HH:MM` (UTC) of a Unix time.
pub fn time_of_day(unix: u64) -> String {
    let secs = unix % 86_400;
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// Year, month, day of a Unix time: Howard Hinnant's civil-from-days,
/// to avoid a date crate.
fn civil(unix: u64) -> (i64, i64, i64) {
    let days = (unix / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_795_910_400), "2026-11-29");
        assert_eq!(
            date_time(1_795_910_400 + 13 * 3600 + 7 * 60 + 59),
            "2026-11-29 13:07 UTC"
        );
        assert_eq!(time_of_day(86_399), "23:59");
    }
}
