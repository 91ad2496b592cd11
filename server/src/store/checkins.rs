//! Check-ins on the store: schedules, check-ins (normal or duress), and
//! the alerts raised for missed ones.

use hotline_proto::DeviceId;

use super::{LogStore, StoreError};
use crate::domain::Event;
use crate::domain::checkins::{CheckinEvent, CheckinKind};
use crate::log::RecordKey;

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
        let (kind, events) = state.decide_checkin(defender, &digest, now);
        // Staged together and waited for once: the answer takes one flush
        // either way, so its timing does not tell a duress code apart.
        let mut last = None;
        for event in events {
            last = Some(self.stage(&mut state, RecordKey::Main, event)?);
        }
        drop(state);
        if let Some(ticket) = last {
            self.wait(ticket)?;
        }
        Ok(kind)
    }

    /// Raises an alert for every check-in missed past its grace at `now`.
    pub(super) fn raise_missed_checkins(&self, now: u64) -> Result<(), StoreError> {
        let events = self.lock().decide_missed_checkins(now);
        for event in events {
            let state = self.lock();
            self.commit(state, event)?;
        }
        Ok(())
    }
}
