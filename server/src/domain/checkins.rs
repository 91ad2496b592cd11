//! Safety check-ins: a defender promises to check in every so often; a
//! missed check-in (past a grace period) raises an alert by itself, and the
//! duress code, typed where the normal code goes, raises an
//! immediate-danger alert while looking exactly like a normal check-in.

use std::collections::BTreeMap;

use hotline_proto::DeviceId;

use super::ApplyError;

/// One defender's check-in schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Seconds between check-ins.
    pub interval_secs: u64,
    /// Grace after a missed check-in before the alert.
    pub grace_secs: u64,
    /// Digest of the normal code.
    pub code: [u8; 32],
    /// Digest of the duress code.
    pub duress: [u8; 32],
    /// When the defender last checked in (or set the schedule).
    pub last: u64,
    /// The `last` for which a missed-check-in alert was raised already.
    pub alerted_for: Option<u64>,
}

impl Schedule {
    /// Whether the check-in is overdue past its grace at `now`, and not yet
    /// alerted.
    pub fn missed(&self, now: u64) -> bool {
        self.alerted_for != Some(self.last)
            && now
                > self
                    .last
                    .saturating_add(self.interval_secs)
                    .saturating_add(self.grace_secs)
    }
}

/// What a check-in code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckinKind {
    /// The normal code.
    Normal,
    /// The duress code.
    Duress,
    /// Neither.
    Wrong,
}

/// Check-in events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckinEvent {
    /// A schedule was set (interval 0: removed).
    Set {
        /// The defender.
        defender: DeviceId,
        /// Seconds between check-ins.
        interval_secs: u64,
        /// Grace seconds.
        grace_secs: u64,
        /// Normal code digest.
        code: [u8; 32],
        /// Duress code digest.
        duress: [u8; 32],
        /// When.
        at: u64,
    },
    /// The defender checked in (with either code).
    CheckedIn {
        /// The defender.
        defender: DeviceId,
        /// When.
        at: u64,
    },
    /// A missed check-in was alerted.
    MissedAlerted {
        /// The defender.
        defender: DeviceId,
        /// The check-in time it was missed after.
        last: u64,
    },
}

/// Every schedule, by defender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkins {
    /// The schedules.
    pub schedules: BTreeMap<DeviceId, Schedule>,
}

impl Checkins {
    /// Applies an event.
    pub fn apply(&mut self, event: &CheckinEvent) -> Result<(), ApplyError> {
        match event {
            CheckinEvent::Set {
                defender,
                interval_secs,
                grace_secs,
                code,
                duress,
                at,
            } => {
                if *interval_secs == 0 {
                    self.schedules.remove(defender);
                } else {
                    self.schedules.insert(
                        *defender,
                        Schedule {
                            interval_secs: *interval_secs,
                            grace_secs: *grace_secs,
                            code: *code,
                            duress: *duress,
                            last: *at,
                            alerted_for: None,
                        },
                    );
                }
            }
            CheckinEvent::CheckedIn { defender, at } => {
                if let Some(s) = self.schedules.get_mut(defender) {
                    s.last = (*at).max(s.last);
                }
            }
            CheckinEvent::MissedAlerted { defender, last } => {
                self.schedules
                    .get_mut(defender)
                    .ok_or(ApplyError("a missed check-in without a schedule"))?
                    .alerted_for = Some(*last);
            }
        }
        Ok(())
    }

    /// What `digest` is for `defender`'s schedule. Both comparisons always
    /// run, in constant time, so neither answer takes longer.
    pub fn classify(&self, defender: &DeviceId, digest: &[u8; 32]) -> CheckinKind {
        let Some(s) = self.schedules.get(defender) else {
            return CheckinKind::Wrong;
        };
        let same = |a: &[u8; 32]| a.iter().zip(digest).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        let normal = same(&s.code);
        let duress = same(&s.duress);
        match (normal, duress) {
            (true, _) => CheckinKind::Normal,
            (_, true) => CheckinKind::Duress,
            _ => CheckinKind::Wrong,
        }
    }

    /// Defenders whose check-in is overdue at `now`, with the missed `last`.
    pub fn missed(&self, now: u64) -> Vec<(DeviceId, u64)> {
        self.schedules
            .iter()
            .filter(|(_, s)| s.missed(now))
            .map(|(d, s)| (*d, s.last))
            .collect()
    }
}

impl super::State {
    /// A check-in by `defender` at `now` with a code whose digest is
    /// `digest`: what the code was, and the events that record it, each
    /// a record of its own. A normal and a duress code are recorded alike
    /// (a check-in); a duress code also raises an immediate-danger alert.
    pub fn decide_checkin(
        &self,
        defender: DeviceId,
        digest: &[u8; 32],
        now: u64,
    ) -> (CheckinKind, Vec<super::Event>) {
        use super::Event;
        use super::alerts::{AlertContent, AlertEvent, AlertOrigin, Priority};
        let kind = self.checkins.classify(&defender, digest);
        let mut events = Vec::new();
        if kind != CheckinKind::Wrong {
            events.push(Event::Checkin(CheckinEvent::CheckedIn {
                defender,
                at: now,
            }));
        }
        if kind == CheckinKind::Duress {
            events.push(Event::Alert(AlertEvent::Raised {
                defender,
                priority: Priority::Immediate,
                at: now,
                envelope_id: 0,
                origin: AlertOrigin::Duress,
                content: AlertContent::Sealed,
            }));
        }
        (kind, events)
    }

    /// The events that raise an alert for every check-in missed past its
    /// grace at `now`, two for each: the lapse noted (so it alerts once),
    /// then the alert.
    pub fn decide_missed_checkins(&self, now: u64) -> Vec<super::Event> {
        use super::Event;
        use super::alerts::{AlertContent, AlertEvent, AlertOrigin, Priority};
        self.checkins
            .missed(now)
            .into_iter()
            .flat_map(|(defender, last)| {
                [
                    Event::Checkin(CheckinEvent::MissedAlerted { defender, last }),
                    Event::Alert(AlertEvent::Raised {
                        defender,
                        priority: Priority::Urgent,
                        at: now,
                        envelope_id: 0,
                        origin: AlertOrigin::MissedCheckin,
                        content: AlertContent::Sealed,
                    }),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 100 s from 1000, 10 s of grace; code [1; 32], duress [2; 32].
    fn schedule(defender: DeviceId) -> CheckinEvent {
        CheckinEvent::Set {
            defender,
            interval_secs: 100,
            grace_secs: 10,
            code: [1; 32],
            duress: [2; 32],
            at: 1000,
        }
    }

    #[test]
    fn missed_once_per_lapse_and_codes_told_apart() {
        let d = DeviceId::from_bytes([1; 16]);
        let mut c = Checkins::default();
        let set = schedule(d);
        c.apply(&set).expect("apply");
        assert!(c.missed(1110).is_empty());
        assert_eq!(c.missed(1111), vec![(d, 1000)]);
        c.apply(&CheckinEvent::MissedAlerted {
            defender: d,
            last: 1000,
        })
        .expect("apply");
        assert!(c.missed(5000).is_empty(), "one alert per lapse");
        c.apply(&CheckinEvent::CheckedIn {
            defender: d,
            at: 5000,
        })
        .expect("apply");
        assert!(c.missed(5110).is_empty());
        assert_eq!(c.missed(5111), vec![(d, 5000)]);
        assert_eq!(c.classify(&d, &[1; 32]), CheckinKind::Normal);
        assert_eq!(c.classify(&d, &[2; 32]), CheckinKind::Duress);
        assert_eq!(c.classify(&d, &[3; 32]), CheckinKind::Wrong);
    }

    #[test]
    fn a_duress_check_in_records_a_check_in_and_an_alert_a_wrong_code_nothing() {
        use crate::domain::alerts::{AlertEvent, AlertOrigin};
        use crate::domain::{Event, State};
        let d = DeviceId::from_bytes([1; 16]);
        let mut state = State::default();
        let set = schedule(d);
        state.apply(1, &Event::Checkin(set)).expect("apply");
        let (kind, normal) = state.decide_checkin(d, &[1; 32], 1050);
        assert_eq!(kind, CheckinKind::Normal);
        assert_eq!(
            normal,
            vec![Event::Checkin(CheckinEvent::CheckedIn {
                defender: d,
                at: 1050
            })]
        );
        let (kind, duress) = state.decide_checkin(d, &[2; 32], 1050);
        assert_eq!(kind, CheckinKind::Duress);
        assert_eq!(duress[0], normal[0], "recorded as a check-in first");
        assert!(matches!(
            duress[1],
            Event::Alert(AlertEvent::Raised {
                origin: AlertOrigin::Duress,
                ..
            })
        ));
        assert_eq!(
            state.decide_checkin(d, &[3; 32], 1050),
            (CheckinKind::Wrong, vec![])
        );
        assert!(state.decide_missed_checkins(1110).is_empty());
        assert_eq!(state.decide_missed_checkins(1111).len(), 2);
    }
}
