//! The duty rota: weekly shifts per staff device, each in its own time
//! zone: an IANA zone such as `Europe/Zurich` (daylight saving included,
//! from the system's time zone database, or the copy built into the
//! server where the system has none) or a fixed offset from UTC. A device
//! on shift counts as on duty, as if it had said `hotline duty on`.

use hotline_proto::DeviceId;
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use serde::Deserialize;

/// One weekly shift, as written in the configuration:
///
/// ```toml
/// [[rota]]
/// device = "4b25754818f38262748c4ef92dbdc01a"
/// days = ["mon", "tue", "wed", "thu", "fri"]
/// start = "08:00"
/// end = "16:00"        # an end before the start runs past midnight
/// time_zone = "Europe/Zurich"   # or utc_offset = "+01:00"; neither: UTC
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    /// The staff device (32 hex digits, as `hotline devices` shows).
    pub device: String,
    /// Days the shift starts on: mon, tue, wed, thu, fri, sat, sun.
    pub days: Vec<String>,
    /// Local start time, HH:MM.
    pub start: String,
    /// Local end time, HH:MM.
    pub end: String,
    /// The local time zone by its IANA name, such as "Europe/Zurich" or
    /// "America/Bogota": local times follow its daylight saving rules.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Or a fixed offset from UTC, such as "+01:00" or "-05:00".
    #[serde(default)]
    pub utc_offset: Option<String>,
}

/// A parsed shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    /// Who.
    pub device: DeviceId,
    /// Bit `d` set: the shift starts on weekday `d` (0 = Monday).
    days: u8,
    /// Minutes after local midnight.
    start: u32,
    /// Minutes after local midnight.
    end: u32,
    /// Where its local times are.
    zone: TimeZone,
}

/// Why a shift is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rota shift {index}: {reason}")]
pub struct ShiftError {
    /// Which shift (from 1).
    pub index: usize,
    /// What is wrong.
    pub reason: &'static str,
}

fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let m = i32::try_from(minutes(rest)?).ok()?;
    (m <= 14 * 60).then_some(sign * m * 60)
}

impl ShiftConfig {
    fn parse(&self, index: usize) -> Result<Shift, ShiftError> {
        let err = |reason| ShiftError { index, reason };
        let device = self
            .device
            .parse()
            .map_err(|_| err("device is not a device id"))?;
        let mut days = 0u8;
        for d in &self.days {
            let i = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .position(|n| n.eq_ignore_ascii_case(d.trim()))
                .ok_or(err("days must be mon, tue, wed, thu, fri, sat or sun"))?;
            days |= 1 << i;
        }
        if days == 0 {
            return Err(err("no days"));
        }
        let start = minutes(&self.start).ok_or(err("start must be HH:MM"))?;
        let end = minutes(&self.end).ok_or(err("end must be HH:MM"))?;
        if start == end {
            return Err(err("start and end are the same"));
        }
        let zone = match (&self.time_zone, &self.utc_offset) {
            (Some(_), Some(_)) => return Err(err("give time_zone or utc_offset, not both")),
            (Some(name), None) => TimeZone::get(name.trim()).map_err(|_| {
                err("time_zone is not a known IANA time zone (such as Europe/Zurich)")
            })?,
            (None, Some(o)) => offset(o)
                .and_then(|secs| Offset::from_seconds(secs).ok())
                .map(TimeZone::fixed)
                .ok_or(err("utc_offset must look like +01:00"))?,
            (None, None) => TimeZone::UTC,
        };
        Ok(Shift {
            device,
            days,
            start,
            end,
            zone,
        })
    }
}

/// Parses every shift.
pub fn parse(shifts: &[ShiftConfig]) -> Result<Vec<Shift>, ShiftError> {
    shifts
        .iter()
        .enumerate()
        .map(|(i, s)| s.parse(i + 1))
        .collect()
}

impl Shift {
    /// Whether the shift covers the moment `unix` (seconds since the epoch).
    pub fn covers(&self, unix: u64) -> bool {
        let Some(instant) = i64::try_from(unix)
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
        else {
            return false;
        };
        // The wall clock where the officer is, at that instant.
        let local = self.zone.to_datetime(instant);
        let weekday = u32::from(local.weekday().to_monday_zero_offset().unsigned_abs());
        let minute =
            u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs());
        let starts_on = |d: u32| self.days & (1 << d) != 0;
        if self.start < self.end {
            starts_on(weekday) && (self.start..self.end).contains(&minute)
        } else {
            // Overnight: the evening part today, or the morning part of a
            // shift that started yesterday.
            (starts_on(weekday) && minute >= self.start)
                || (starts_on((weekday + 6) % 7) && minute < self.end)
        }
    }
}

/// The devices on shift at `unix`.
pub fn on_shift(shifts: &[Shift], unix: u64) -> Vec<DeviceId> {
    let mut out: Vec<DeviceId> = shifts
        .iter()
        .filter(|s| s.covers(unix))
        .map(|s| s.device)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(days: &[&str], start: &str, end: &str) -> ShiftConfig {
        ShiftConfig {
            device: "00".repeat(16),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            start: start.into(),
            end: end.into(),
            time_zone: None,
            utc_offset: None,
        }
    }

    fn shift(days: &[&str], start: &str, end: &str, offset: &str) -> Shift {
        ShiftConfig {
            utc_offset: Some(offset.into()),
            ..config(days, start, end)
        }
        .parse(1)
        .expect("valid")
    }

    fn zoned(days: &[&str], start: &str, end: &str, zone: &str) -> Shift {
        ShiftConfig {
            time_zone: Some(zone.into()),
            ..config(days, start, end)
        }
        .parse(1)
        .expect("valid")
    }

    // 2026-11-30 is a Monday; 1_795_996_800 is its 00:00 UTC.
    const MONDAY: u64 = 1_795_996_800;

    #[test]
    fn day_shifts_in_a_time_zone() {
        let s = shift(&["mon"], "08:00", "16:00", "+01:00");
        assert!(
            !s.covers(MONDAY + 6 * 3600 + 59 * 60),
            "06:59 UTC is 07:59 local"
        );
        assert!(s.covers(MONDAY + 7 * 3600), "08:00 local");
        assert!(s.covers(MONDAY + 14 * 3600 + 59 * 60));
        assert!(!s.covers(MONDAY + 15 * 3600), "16:00 local ends it");
        assert!(!s.covers(MONDAY + 86_400 + 8 * 3600), "not on Tuesday");
    }

    #[test]
    fn overnight_shifts_run_past_midnight() {
        let s = shift(&["sun"], "22:00", "06:00", "-05:00");
        // Sunday 22:00 local = Monday 03:00 UTC; Monday 05:59 local = 10:59 UTC.
        assert!(!s.covers(MONDAY + 2 * 3600 + 59 * 60));
        assert!(s.covers(MONDAY + 3 * 3600));
        assert!(s.covers(MONDAY + 10 * 3600 + 59 * 60));
        assert!(!s.covers(MONDAY + 11 * 3600));
    }

    #[test]
    fn a_named_zone_follows_daylight_saving() {
        // 08:00-16:00 in Zurich: 07:00 UTC in winter (CET, +01:00) and
        // 06:00 UTC in summer (CEST, +02:00). 2026-07-06 is a Monday.
        let s = zoned(&["mon"], "08:00", "16:00", "Europe/Zurich");
        assert!(s.covers(MONDAY + 7 * 3600));
        assert!(!s.covers(MONDAY + 6 * 3600 + 59 * 60));
        const SUMMER_MONDAY: u64 = 1_783_296_000;
        assert!(s.covers(SUMMER_MONDAY + 6 * 3600), "08:00 CEST");
        assert!(!s.covers(SUMMER_MONDAY + 5 * 3600 + 59 * 60));
        assert!(!s.covers(SUMMER_MONDAY + 14 * 3600), "16:00 CEST ends it");
        // The night the clock goes forward (2026-03-29, 02:00 CET becomes
        // 03:00 CEST at 01:00 UTC), a shift starting at 02:30 starts at
        // the jump.
        let night = zoned(&["sun"], "02:30", "04:00", "Europe/Zurich");
        const SPRING_SUNDAY: u64 = 1_774_742_400;
        assert!(!night.covers(SPRING_SUNDAY + 59 * 60), "01:59 CET");
        assert!(night.covers(SPRING_SUNDAY + 3600), "03:00 CEST");
        assert!(!night.covers(SPRING_SUNDAY + 2 * 3600), "04:00 CEST");
        // Bogota has no daylight saving: -05:00 all year.
        let b = zoned(&["mon"], "08:00", "16:00", "America/Bogota");
        assert!(b.covers(MONDAY + 13 * 3600) && b.covers(SUMMER_MONDAY + 13 * 3600));
        assert!(!b.covers(SUMMER_MONDAY + 12 * 3600 + 59 * 60));
    }

    #[test]
    fn bad_shifts_are_refused_with_their_number() {
        let bad = ShiftConfig {
            days: vec!["funday".into()],
            ..config(&[], "08:00", "16:00")
        };
        assert_eq!(parse(&[bad]).expect_err("invalid").index, 1);
        let unknown = ShiftConfig {
            time_zone: Some("Europe/Atlantis".into()),
            ..config(&["mon"], "08:00", "16:00")
        };
        let both = ShiftConfig {
            time_zone: Some("Europe/Zurich".into()),
            utc_offset: Some("+01:00".into()),
            ..config(&["mon"], "08:00", "16:00")
        };
        let ok = config(&["mon"], "08:00", "16:00");
        let e = parse(&[ok, unknown]).expect_err("unknown zone");
        assert_eq!(e.index, 2);
        assert!(e.reason.contains("time_zone"), "{e}");
        assert!(
            parse(&[both])
                .expect_err("both")
                .reason
                .contains("not both")
        );
        assert!(offset("+15:00").is_none());
        assert!(minutes("24:00").is_none());
    }
}
