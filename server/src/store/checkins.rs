//! Check-ins on the store: schedules, check-ins (normal or duress), and
//! the alerts raised for missed ones.

use hotline_proto::DeviceId;

use super::{LogStore, StoreError};
use crate::domain::Event;
use crate::domain::alerts::{AlertEvent, AlertOrigin, Priority};
use crate::domain::checkins::{CheckinEvent, CheckinKind};

impl LogStore {
    /// Sets (interval 0: stops) a defender's check-in schedule.
    pub fn set_checkin(
        &self,
        defender: DeviceId,
        interval_secs: u64,
        grace_secs: u64,
        code: [u8; 32],
        duress: [u8; 32],
        now: u64,
    ) -> Result<(), StoreError> {
        self.check_running()?;
        let state = self.lock();
        let event = CheckinEvent::Set {
            defender,
            interval_secs,
            grace_secs,
            code,
            duress,
            at: now,
        };
        self.commit(state, Event::Checkin(event))?;
        Ok(())
    }

    /// A check-in. A normal and a duress code are recorded alike (a
    /// check-in); a duress code also raises an immediate-danger alert.
    /// Returns what the code was.
    pub fn checkin(
        &self,
        defender: DeviceId,
        digest: [u8; 32],
        now: u64,
    ) -> Result<CheckinKind, StoreError> {
        self.check_running()?;
        let mut state = self.lock();
        let kind = state.checkins.classify(&defender, &digest);
        if kind == CheckinKind::Wrong {
            return Ok(kind);
        }
        let mut last = self.stage(
            &mut state,
            Event::Checkin(CheckinEvent::CheckedIn { defender, at: now }),
        )?;
        if kind == CheckinKind::Duress {
            // Written in the same batch as the check-in: the answer takes
            // one flush either way, so its timing does not tell them apart.
            last = self.stage(
                &mut state,
                Event::Alert(AlertEvent::Raised {
                    defender,
                    priority: Priority::Immediate,
                    at: now,
                    envelope_id: 0,
                    origin: AlertOrigin::Duress,
                }),
            )?;
        }
        drop(state);
        self.wait(last)?;
        Ok(kind)
    }

    /// Raises an alert for every check-in missed past its grace at `now`.
    pub(super) fn raise_missed_checkins(&self, now: u64) -> Result<(), StoreError> {
        let missed = self.lock().checkins.missed(now);
        for (defender, last) in missed {
            let state = self.lock();
            self.commit(
                state,
                Event::Checkin(CheckinEvent::MissedAlerted { defender, last }),
            )?;
            let state = self.lock();
            self.commit(
                state,
                Event::Alert(AlertEvent::Raised {
                    defender,
                    priority: Priority::Urgent,
                    at: now,
                    envelope_id: 0,
                    origin: AlertOrigin::MissedCheckin,
                }),
            )?;
        }
        Ok(())
    }
}
