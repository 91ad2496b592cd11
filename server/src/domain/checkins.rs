//! Safety check-ins: a defender promises to check in every so often; a
//! missed check-in (past a grace period) raises an alert by itself, and the
//! duress code, typed where the normal code goes, raises an
//! immediate-danger alert while looking exactly like a normal check-in.

use std::collections::BTreeMap;

use hotline_proto::DeviceId;

use super::ApplyError;

/// Wrong check-in codes a device may send in [`GUESS_WINDOW_SECS`] before
/// staff are alerted and every check-in of that device is slowed.
pub const WRONG_CODES_ALLOWED: u32 = 5;
/// The window the wrong codes are counted in (from the first of them).
pub const GUESS_WINDOW_SECS: u64 = 3600;

/// One device's wrong check-in codes in its current window. Derived from
/// the log ([`CheckinEvent::WrongCode`]), so a restart of the server gives
/// a guesser no fresh guesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongCodes {
    /// When the window began (the first wrong code in it).
    pub since: u64,
    /// Wrong codes recorded in it (recording stops at the limit).
    pub wrong: u32,
}

impl WrongCodes {
    /// The wrong codes that count at `now`: none once the window is over.
    pub fn at(&self, now: u64) -> u32 {
        if now.saturating_sub(self.since) >= GUESS_WINDOW_SECS {
            0
        } else {
            self.wrong
        }
    }
}

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
    /// That alert's id (unknown for alerts raised by earlier builds).
    pub missed_alert: Option<u64>,
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
        /// The alert raised (absent in records of earlier builds).
        alert: Option<u64>,
    },
    /// A check-in with a code that is neither the normal nor the duress
    /// one, counted towards [`WRONG_CODES_ALLOWED`] (recorded only below
    /// the limit: past it the device is slowed until the window ends).
    WrongCode {
        /// The device.
        defender: DeviceId,
        /// When.
        at: u64,
    },
}

/// Every schedule, by defender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkins {
    /// The schedules.
    pub schedules: BTreeMap<DeviceId, Schedule>,
    /// Wrong codes per device (see [`WrongCodes`]).
    pub guesses: BTreeMap<DeviceId, WrongCodes>,
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
                            missed_alert: None,
                        },
                    );
                }
            }
            CheckinEvent::CheckedIn { defender, at } => {
                if let Some(s) = self.schedules.get_mut(defender) {
                    s.last = (*at).max(s.last);
                }
            }
            CheckinEvent::MissedAlerted {
                defender,
                last,
                alert,
            } => {
                let s = self
                    .schedules
                    .get_mut(defender)
                    .ok_or(ApplyError("a missed check-in without a schedule"))?;
                s.alerted_for = Some(*last);
                s.missed_alert = *alert;
            }
            CheckinEvent::WrongCode { defender, at } => {
                let c = self.guesses.entry(*defender).or_insert(WrongCodes {
                    since: *at,
                    wrong: 0,
                });
                if c.at(*at) == 0 {
                    *c = WrongCodes {
                        since: *at,
                        wrong: 0,
                    };
                }
                c.wrong = c.wrong.saturating_add(1);
            }
        }
        Ok(())
    }

    /// The wrong codes of `device` that count at `now`.
    pub fn wrong_codes(&self, device: &DeviceId, now: u64) -> u32 {
        self.guesses.get(device).map_or(0, |c| c.at(now))
    }

    /// Whether `device` sent [`WRONG_CODES_ALLOWED`] wrong codes in the
    /// window that holds `now`: each of its check-ins is then slowed.
    pub fn over_guess_limit(&self, device: &DeviceId, now: u64) -> bool {
        self.wrong_codes(device, now) >= WRONG_CODES_ALLOWED
    }

    /// What `tag` is for `defender`'s schedule. Both comparisons always
    /// run, in constant time, so neither answer takes longer.
    pub fn classify(&self, defender: &DeviceId, tag: &[u8; 32]) -> CheckinKind {
        let Some(s) = self.schedules.get(defender) else {
            return CheckinKind::Wrong;
        };
        let same = |a: &[u8; 32]| a.iter().zip(tag).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
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
    /// A check-in by `defender` at `now` with a code whose tag is `tag`:
    /// what the code was, and the one event that records it (none for a
    /// wrong code). A normal and a duress code are recorded alike (a
    /// check-in, and the late check-in noted on a missed check-in alert
    /// it follows); a duress code also raises an immediate-danger alert
    /// with id `duress_id` (random, free), in the same record. A wrong
    /// code below the limit is recorded (so that no restart forgets it);
    /// the one that reaches it also raises the urgent, staff-only notice
    /// that someone may be guessing (alert `duress_id`), in its record.
    pub fn decide_checkin(
        &self,
        defender: DeviceId,
        tag: &[u8; 32],
        now: u64,
        duress_id: u64,
    ) -> (CheckinKind, Option<super::Event>) {
        use super::Event;
        use super::alerts::{AlertContent, AlertEvent, AlertOrigin, Priority};
        let kind = self.checkins.classify(&defender, tag);
        if kind == CheckinKind::Wrong {
            let wrong = self.checkins.wrong_codes(&defender, now);
            if wrong >= WRONG_CODES_ALLOWED {
                return (kind, None);
            }
            let counted = Event::Checkin(CheckinEvent::WrongCode { defender, at: now });
            if wrong + 1 < WRONG_CODES_ALLOWED {
                return (kind, Some(counted));
            }
            // The notice pages on the next escalation tick, like a duress
            // alert, never in the answer.
            let notice = Event::Alert(AlertEvent::Raised {
                id: duress_id,
                defender,
                priority: Priority::Urgent,
                at: now,
                envelope_id: 0,
                origin: AlertOrigin::WrongCheckinCodes,
                content: AlertContent::Sealed,
            });
            return (kind, Some(Event::Batch(vec![counted, notice])));
        }
        let mut events = vec![Event::Checkin(CheckinEvent::CheckedIn {
            defender,
            at: now,
        })];
        if let Some(alert) = self.late_for(&defender) {
            events.push(Event::Alert(AlertEvent::CheckedInLate { alert, at: now }));
        }
        if kind == CheckinKind::Duress {
            events.push(Event::Alert(AlertEvent::Raised {
                id: duress_id,
                defender,
                priority: Priority::Immediate,
                at: now,
                envelope_id: 0,
                origin: AlertOrigin::Duress,
                content: AlertContent::Sealed,
            }));
        }
        let event = if events.len() == 1 {
            events.remove(0)
        } else {
            Event::Batch(events)
        };
        (kind, Some(event))
    }

    /// The missed check-in alert a check-in by `defender` now comes late
    /// for: the one raised for the current lapse, if any.
    pub fn late_for(&self, defender: &DeviceId) -> Option<u64> {
        let s = self.checkins.schedules.get(defender)?;
        let alert = s.missed_alert.filter(|_| s.alerted_for == Some(s.last))?;
        self.alerts.alerts.contains_key(&alert).then_some(alert)
    }

    /// `defender` sets its schedule (interval 0: stops it) at `now`: the
    /// event that records it. A change to a schedule that exists, or its
    /// stop, also raises a routine notice to staff (alert `notice_id`,
    /// random, free) in the same record: a coercer holding the phone may
    /// have made it. The defender's device is answered alike either way.
    #[allow(clippy::too_many_arguments)]
    pub fn decide_set_checkin(
        &self,
        defender: DeviceId,
        interval_secs: u64,
        grace_secs: u64,
        code: [u8; 32],
        duress: [u8; 32],
        now: u64,
        notice_id: u64,
    ) -> super::Event {
        use super::Event;
        use super::alerts::{AlertContent, AlertEvent, AlertOrigin, Priority};
        let set = Event::Checkin(CheckinEvent::Set {
            defender,
            interval_secs,
            grace_secs,
            code,
            duress,
            at: now,
        });
        if !self.checkins.schedules.contains_key(&defender) {
            return set;
        }
        // Stopped, nothing will ever be missed again: that is answered
        // as fast as a missed check-in (a coercer must not gain time by
        // stopping rather than letting one lapse). A change is routine.
        let (origin, priority) = if interval_secs == 0 {
            (AlertOrigin::CheckinStopped, Priority::Urgent)
        } else {
            (AlertOrigin::CheckinChanged, Priority::Routine)
        };
        Event::Batch(vec![
            set,
            Event::Alert(AlertEvent::Raised {
                id: notice_id,
                defender,
                priority,
                at: now,
                envelope_id: 0,
                origin,
                content: AlertContent::Sealed,
            }),
        ])
    }

    /// The event that raises alert `id` for `defender`'s check-in missed
    /// after `last`, as one record: the lapse noted (so it alerts once, and
    /// a late check-in finds the alert), then the alert.
    pub fn decide_missed_checkin(
        &self,
        defender: DeviceId,
        last: u64,
        id: u64,
        now: u64,
    ) -> super::Event {
        use super::Event;
        use super::alerts::{AlertContent, AlertEvent, AlertOrigin, Priority};
        Event::Batch(vec![
            Event::Checkin(CheckinEvent::MissedAlerted {
                defender,
                last,
                alert: Some(id),
            }),
            Event::Alert(AlertEvent::Raised {
                id,
                defender,
                priority: Priority::Urgent,
                at: now,
                envelope_id: 0,
                origin: AlertOrigin::MissedCheckin,
                content: AlertContent::Sealed,
            }),
        ])
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
            alert: None,
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
        let (kind, normal) = state.decide_checkin(d, &[1; 32], 1050, 77);
        assert_eq!(kind, CheckinKind::Normal);
        let checked_in = Event::Checkin(CheckinEvent::CheckedIn {
            defender: d,
            at: 1050,
        });
        assert_eq!(normal, Some(checked_in.clone()));
        let (kind, duress) = state.decide_checkin(d, &[2; 32], 1050, 77);
        assert_eq!(kind, CheckinKind::Duress);
        // One record either way: the check-in, then the alert.
        let Some(Event::Batch(duress)) = duress else {
            panic!("a duress check-in is one record");
        };
        assert_eq!(duress[0], checked_in, "recorded as a check-in first");
        assert!(matches!(
            duress[1],
            Event::Alert(AlertEvent::Raised {
                id: 77,
                origin: AlertOrigin::Duress,
                ..
            })
        ));
        // A wrong code is counted in the log (a restart forgets nothing),
        // and changes no schedule.
        let wrong = Event::Checkin(CheckinEvent::WrongCode {
            defender: d,
            at: 1050,
        });
        assert_eq!(
            state.decide_checkin(d, &[3; 32], 1050, 77),
            (CheckinKind::Wrong, Some(wrong.clone()))
        );
        state.apply(2, &wrong).expect("apply");
        assert_eq!(state.checkins.wrong_codes(&d, 1050), 1);
        assert!(state.checkins.missed(1110).is_empty());
        assert_eq!(state.checkins.missed(1111), vec![(d, 1000)]);
    }

    #[test]
    fn a_late_check_in_is_noted_on_its_missed_check_in_alert_once() {
        use crate::domain::alerts::AlertEvent;
        use crate::domain::{Event, State};
        let d = DeviceId::from_bytes([1; 16]);
        let mut state = State::default();
        state.apply(1, &Event::Checkin(schedule(d))).expect("apply");
        let missed = state.decide_missed_checkin(d, 1000, 4242, 1111);
        state.apply(2, &missed).expect("apply");
        assert!(state.checkins.missed(9999).is_empty(), "alerted once");
        assert_eq!(state.late_for(&d), Some(4242));
        // Normal and duress codes note it alike.
        for code in [[1; 32], [2; 32]] {
            let (_, event) = state.decide_checkin(d, &code, 1200, 55);
            let Some(Event::Batch(events)) = event else {
                panic!("a batch");
            };
            assert_eq!(
                events[1],
                Event::Alert(AlertEvent::CheckedInLate {
                    alert: 4242,
                    at: 1200
                })
            );
        }
        let (_, event) = state.decide_checkin(d, &[1; 32], 1200, 55);
        state.apply(3, &event.expect("an event")).expect("apply");
        assert_eq!(state.alerts.alerts[&4242].checked_in_at, Some(1200));
        // The next check-in is on time: nothing more is noted.
        assert_eq!(state.late_for(&d), None);
        let (_, event) = state.decide_checkin(d, &[1; 32], 1250, 55);
        assert!(matches!(event, Some(Event::Checkin(_))));
    }

    #[test]
    fn changing_or_stopping_a_schedule_raises_a_notice_setting_one_does_not() {
        use crate::domain::alerts::{AlertContent, AlertEvent, AlertOrigin, Priority};
        use crate::domain::{Event, State};
        let d = DeviceId::from_bytes([1; 16]);
        let mut state = State::default();
        let first = state.decide_set_checkin(d, 100, 10, [1; 32], [2; 32], 1000, 9);
        assert!(matches!(first, Event::Checkin(CheckinEvent::Set { .. })));
        state.apply(1, &first).expect("apply");
        for (interval, origin, priority) in [
            (200, AlertOrigin::CheckinChanged, Priority::Routine),
            (0, AlertOrigin::CheckinStopped, Priority::Urgent),
        ] {
            let event = state.decide_set_checkin(d, interval, 10, [3; 32], [4; 32], 1010, 9);
            let Event::Batch(events) = event else {
                panic!("the change and its notice are one record");
            };
            assert_eq!(
                events[1],
                Event::Alert(AlertEvent::Raised {
                    id: 9,
                    defender: d,
                    priority,
                    at: 1010,
                    envelope_id: 0,
                    origin,
                    content: AlertContent::Sealed,
                })
            );
        }
    }

    /// The wrong codes are counted per window; the one that reaches the
    /// limit raises the staff's notice in its record; past it nothing more
    /// is recorded until the window ends, when counting starts again.
    #[test]
    fn wrong_codes_are_counted_to_the_limit_and_the_window_starts_over() {
        use crate::domain::alerts::{AlertEvent, AlertOrigin};
        use crate::domain::{Event, State};
        let d = DeviceId::from_bytes([1; 16]);
        let mut state = State::default();
        state.apply(1, &Event::Checkin(schedule(d))).expect("apply");
        let mut seq = 2;
        for n in 1..WRONG_CODES_ALLOWED {
            let (_, event) = state.decide_checkin(d, &[3; 32], 2000 + u64::from(n), 77);
            let event = event.expect("recorded");
            assert!(matches!(
                event,
                Event::Checkin(CheckinEvent::WrongCode { .. })
            ));
            state.apply(seq, &event).expect("apply");
            seq += 1;
        }
        assert!(!state.checkins.over_guess_limit(&d, 2010));
        let (_, last) = state.decide_checkin(d, &[3; 32], 2010, 77);
        let Some(Event::Batch(last)) = last else {
            panic!("the code that reaches the limit is one record with the notice");
        };
        assert!(matches!(
            last[1],
            Event::Alert(AlertEvent::Raised {
                id: 77,
                origin: AlertOrigin::WrongCheckinCodes,
                ..
            })
        ));
        for e in &last {
            state.apply(seq, e).expect("apply");
        }
        assert!(state.checkins.over_guess_limit(&d, 2010));
        assert_eq!(state.decide_checkin(d, &[3; 32], 2020, 78).1, None);
        // The window began at the first wrong code (2001).
        let over = 2001 + GUESS_WINDOW_SECS;
        assert!(!state.checkins.over_guess_limit(&d, over));
        let (_, again) = state.decide_checkin(d, &[3; 32], over, 79);
        state
            .apply(seq + 1, &again.expect("counted again"))
            .expect("apply");
        assert_eq!(state.checkins.wrong_codes(&d, over), 1);
    }
}
