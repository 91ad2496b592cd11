//! Check-ins on the store: schedules, check-ins (normal or duress), and
//! the alerts raised for missed ones.

use hotline_proto::DeviceId;

use super::{LogStore, StoreError};
use crate::domain::alerts::Alert;
use crate::domain::checkins::CheckinKind;
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
        self.check_readable()?;
        let state = self.lock();
        let notice = super::alerts::fresh_alert_id(&state)?;
        let event = state.decide_set_checkin(
            defender,
            interval_secs,
            grace_secs,
            code,
            duress,
            now,
            notice,
        );
        self.commit(state, event)?;
        Ok(())
    }

    /// Whether `device` sent too many wrong check-in codes in the window
    /// that holds `now` (its check-ins are slowed).
    pub fn over_guess_limit(&self, device: &DeviceId, now: u64) -> Result<bool, StoreError> {
        Ok(self.lock().checkins.over_guess_limit(device, now))
    }

    /// A check-in. A normal and a duress code are recorded alike (a
    /// check-in, noted on the missed check-in alert it comes late for); a
    /// duress code also raises an immediate-danger alert. Returns what the
    /// code was, and the missed check-in alert noted, if any.
    pub fn checkin(
        &self,
        defender: DeviceId,
        tag: [u8; 32],
        now: u64,
    ) -> Result<(CheckinKind, Option<Alert>), StoreError> {
        self.check_readable()?;
        let mut state = self.lock();
        let duress_id = super::alerts::fresh_alert_id(&state)?;
        let late = state.late_for(&defender);
        let (kind, event) = state.decide_checkin(defender, &tag, now, duress_id);
        let Some(event) = event else {
            return Ok((kind, None));
        };
        // One record, one flush, either way: neither the answer's timing
        // nor any id tells a duress code apart.
        let ticket = self.stage(&mut state, RecordKey::Main, event)?;
        let noted = late.and_then(|id| state.alerts.alerts.get(&id).cloned());
        drop(state);
        self.wait(ticket)?;
        Ok((kind, noted))
    }

    /// Raises an alert for every check-in missed past its grace at `now`.
    pub(super) fn raise_missed_checkins(&self, now: u64) -> Result<(), StoreError> {
        let missed = self.lock().checkins.missed(now);
        for (defender, last) in missed {
            let state = self.lock();
            // Checked again under this lock: a check-in or a stopped
            // schedule between the two locks ends the lapse, and a record
            // for a lapse that no longer is would not apply at replay.
            let still = state
                .checkins
                .schedules
                .get(&defender)
                .is_some_and(|s| s.last == last && s.missed(now));
            if !still {
                continue;
            }
            let id = super::alerts::fresh_alert_id(&state)?;
            let event = state.decide_missed_checkin(defender, last, id, now);
            self.commit(state, event)?;
        }
        Ok(())
    }
}
