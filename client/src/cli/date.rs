//! How the commands show a time (UTC; see `hotline_proto::time`).

pub(super) use hotline_proto::time::{date, date_time};

/// What staff see on a missed check-in alert the defender checked in
/// after: ` (checked in late at HH:MM UTC on YYYY-MM-DD)`, else nothing.
pub(super) fn late(checked_in_at: Option<u64>) -> String {
    checked_in_at
        .map(|t| {
            format!(
                " (checked in late at {} UTC on {})",
                hotline_proto::time::time_of_day(t),
                date(t)
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::late;

    #[test]
    fn a_late_check_in_reads_as_a_time_of_day() {
        assert_eq!(
            late(Some(1_795_910_400 + 60)),
            " (checked in late at 00:01 UTC on 2026-11-29)"
        );
        assert_eq!(late(None), "");
    }
}
