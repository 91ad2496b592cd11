//! Stored forms of check-in schedules.

use prost::Message;

use super::{CodecError, device_id, digest};
use crate::domain::checkins::{CheckinEvent, Checkins, Schedule, WrongCodes};

#[derive(Clone, PartialEq, Message)]
pub(super) struct CheckinEventRow {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(bytes = "vec", tag = "2")]
    defender: Vec<u8>,
    #[prost(uint64, tag = "3")]
    interval_secs: u64,
    #[prost(uint64, tag = "4")]
    grace_secs: u64,
    #[prost(bytes = "vec", tag = "5")]
    code: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    duress: Vec<u8>,
    #[prost(uint64, tag = "7")]
    at: u64,
    #[prost(bool, tag = "8")]
    alerted: bool,
    #[prost(uint64, tag = "9")]
    alerted_for: u64,
    /// The missed check-in alert raised (0: unknown; absent in earlier
    /// records and snapshots).
    #[prost(uint64, tag = "10")]
    alert: u64,
    /// In a snapshot's `guesses` (kind 4): the wrong codes counted in the
    /// window that began at `at` (absent in earlier snapshots).
    #[prost(uint32, tag = "11")]
    wrong: u32,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct CheckinsRow {
    #[prost(message, repeated, tag = "1")]
    schedules: Vec<CheckinEventRow>,
    /// Wrong check-in codes per device (kind 4 rows; absent in earlier
    /// snapshots: none counted).
    #[prost(message, repeated, tag = "2")]
    guesses: Vec<CheckinEventRow>,
}

pub(super) fn event_row(event: &CheckinEvent) -> CheckinEventRow {
    let mut r = CheckinEventRow::default();
    match event {
        CheckinEvent::Set {
            defender,
            interval_secs,
            grace_secs,
            code,
            duress,
            at,
        } => {
            r.kind = 1;
            r.defender = defender.as_bytes().to_vec();
            r.interval_secs = *interval_secs;
            r.grace_secs = *grace_secs;
            r.code = code.to_vec();
            r.duress = duress.to_vec();
            r.at = *at;
        }
        CheckinEvent::CheckedIn { defender, at } => {
            r.kind = 2;
            r.defender = defender.as_bytes().to_vec();
            r.at = *at;
        }
        CheckinEvent::MissedAlerted {
            defender,
            last,
            alert,
        } => {
            r.kind = 3;
            r.defender = defender.as_bytes().to_vec();
            r.at = *last;
            r.alert = alert.unwrap_or(0);
        }
        CheckinEvent::WrongCode { defender, at } => {
            r.kind = 4;
            r.defender = defender.as_bytes().to_vec();
            r.at = *at;
        }
    }
    r
}

pub(super) fn event_from(r: CheckinEventRow) -> Result<CheckinEvent, CodecError> {
    Ok(match r.kind {
        1 => CheckinEvent::Set {
            defender: device_id(&r.defender)?,
            interval_secs: r.interval_secs,
            grace_secs: r.grace_secs,
            code: digest(&r.code)?,
            duress: digest(&r.duress)?,
            at: r.at,
        },
        2 => CheckinEvent::CheckedIn {
            defender: device_id(&r.defender)?,
            at: r.at,
        },
        3 => CheckinEvent::MissedAlerted {
            defender: device_id(&r.defender)?,
            last: r.at,
            alert: (r.alert != 0).then_some(r.alert),
        },
        4 => CheckinEvent::WrongCode {
            defender: device_id(&r.defender)?,
            at: r.at,
        },
        _ => return Err(CodecError("unknown check-in event")),
    })
}

pub(super) fn checkins_row(checkins: &Checkins) -> CheckinsRow {
    CheckinsRow {
        schedules: checkins
            .schedules
            .iter()
            .map(|(d, s)| CheckinEventRow {
                kind: 1,
                defender: d.as_bytes().to_vec(),
                interval_secs: s.interval_secs,
                grace_secs: s.grace_secs,
                code: s.code.to_vec(),
                duress: s.duress.to_vec(),
                at: s.last,
                alerted: s.alerted_for.is_some(),
                alerted_for: s.alerted_for.unwrap_or(0),
                alert: s.missed_alert.unwrap_or(0),
                wrong: 0,
            })
            .collect(),
        guesses: checkins
            .guesses
            .iter()
            .map(|(d, c)| CheckinEventRow {
                kind: 4,
                defender: d.as_bytes().to_vec(),
                at: c.since,
                wrong: c.wrong,
                ..CheckinEventRow::default()
            })
            .collect(),
    }
}

pub(super) fn checkins_from(row: CheckinsRow) -> Result<Checkins, CodecError> {
    let mut out = Checkins::default();
    for r in row.schedules {
        out.schedules.insert(
            device_id(&r.defender)?,
            Schedule {
                interval_secs: r.interval_secs,
                grace_secs: r.grace_secs,
                code: digest(&r.code)?,
                duress: digest(&r.duress)?,
                last: r.at,
                alerted_for: r.alerted.then_some(r.alerted_for),
                missed_alert: (r.alert != 0).then_some(r.alert),
            },
        );
    }
    for r in row.guesses {
        if r.kind != 4 {
            return Err(CodecError("a wrong-code count of another kind"));
        }
        out.guesses.insert(
            device_id(&r.defender)?,
            WrongCodes {
                since: r.at,
                wrong: r.wrong,
            },
        );
    }
    Ok(out)
}
