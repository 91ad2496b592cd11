//! The duty rota: weekly shifts per staff device, each in its own time
//! zone (a fixed offset from UTC). A device on shift counts as on duty,
//! as if it had said `hotline duty on`.

use hotline_proto::DeviceId;
use serde::Deserialize;

/// One weekly shift, as written in the configuration:
///
/// ```toml
/// [[rota]]
/// device = "4b25754818f38262748c4ef92dbdc01a"
/// days = ["mon", "tue", "wed", "thu", "fri"]
/// start = "08:00"
/// end = "16:00"        # an end before the start runs past midnight
/// utc_offset = "+01:00"
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
    /// The local time zone as an offset from UTC, such as "+01:00" or "-05:00".
    #[serde(default = "utc")]
    pub utc_offset: String,
}

fn utc() -> String {
    "+00:00".to_owned()
}

/// A parsed shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    /// Who.
    pub device: DeviceId,
    /// Bit `d` set: the shift starts on weekday `d` (0 = Monday).
    days: u8,
    /// Minutes after local midnight.
    start: u32,
    /// Minutes after local midnight.
    end: u32,
    /// Seconds east of UTC.
    offset: i64,
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

fn offset(s: &str) -> Option<i64> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let m = i64::from(minutes(rest)?);
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
        Ok(Shift {
            device,
            days,
            start,
            end,
            offset: offset(&self.utc_offset).ok_or(err("utc_offset must look like +01:00"))?,
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
        let local = i64::try_from(unix)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset);
        let day_index = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday (weekday 3 counting Monday as 0).
        let weekday = (day_index + 3).rem_euclid(7) as u32;
        let minute = (local.rem_euclid(86_400) / 60) as u32;
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

    fn shift(days: &[&str], start: &str, end: &str, offset: &str) -> Shift {
        ShiftConfig {
            device: "00".repeat(16),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            start: start.into(),
            end: end.into(),
            utc_offset: offset.into(),
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
    fn bad_shifts_are_refused_with_their_number() {
        let bad = ShiftConfig {
            device: "00".repeat(16),
            days: vec!["funday".into()],
            start: "08:00".into(),
            end: "16:00".into(),
            utc_offset: utc(),
        };
        assert_eq!(parse(&[bad]).expect_err("invalid").index, 1);
        assert!(offset("+15:00").is_none());
        assert!(minutes("24:00").is_none());
    }
}
