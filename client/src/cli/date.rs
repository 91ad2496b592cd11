//! How the commands show a time.

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub(super) fn date(unix: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate.
    let days = (unix / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH:MM UTC` of a Unix time.
pub(super) fn hh_mm(unix: u64) -> String {
    format!("{:02}:{:02} UTC", unix / 3600 % 24, unix / 60 % 60)
}

/// What staff see on a missed check-in alert the defender checked in
/// after: ` (checked in late at HH:MM UTC on YYYY-MM-DD)`, else nothing.
pub(super) fn late(checked_in_at: Option<u64>) -> String {
    checked_in_at
        .map(|t| format!(" (checked in late at {} on {})", hh_mm(t), date(t)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{date, hh_mm, late};

    #[test]
    fn times_of_day() {
        assert_eq!(hh_mm(1_795_910_400 + 13 * 3600 + 7 * 60 + 59), "13:07 UTC");
        assert_eq!(
            late(Some(1_795_910_400 + 60)),
            " (checked in late at 00:01 UTC on 2026-11-29)"
        );
        assert_eq!(late(None), "");
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_795_910_400), "2026-11-29");
    }
}
