//! Alerts and duty on the store: raising, claiming, closing, duty, and the
//! escalation steps that fall due, each an event in the log.

use hotline_proto::{DeviceId, Role};

use crate::domain::alerts::{
    Alert, AlertError, AlertEvent, AlertState, Close, DutyState, MAX_ALERT_ID, Policies, Raise,
    RaiseError, Sos,
};
use crate::domain::{Event, State};
use crate::log::RecordKey;
use crate::store::{LogStore, StoreError};

/// An escalation step taken: the alert as it now stands and the devices
/// this step paged (to notify now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// The alert after the step.
    pub alert: Alert,
    /// Newly paged devices.
    pub paged: Vec<DeviceId>,
}

/// What wrapping one event in a batch record adds to it, at most.
const RECORD_EVENT_OVERHEAD: usize = 8;
/// Room kept in a record for the batch's own framing.
const RECORD_MARGIN: usize = 1024;

/// A new alert id: random in 1 to [`MAX_ALERT_ID`], not used by any alert
/// (so ids tell nobody how many alerts, records or check-ins came before).
pub(crate) fn fresh_alert_id(state: &State) -> Result<u64, StoreError> {
    use ring::rand::SecureRandom as _;
    let rng = ring::rand::SystemRandom::new();
    // Far fewer alerts than ids: a free one comes at the first draw but
    // for a one-in-a-million chance per existing thousand alerts.
    for _ in 0..1000 {
        let mut b = [0u8; 8];
        rng.fill(&mut b)
            .map_err(|_| StoreError::Io("no randomness".into()))?;
        // The bias of a 64-bit draw reduced to seven digits is below 2^-40.
        let id = u64::from_be_bytes(b) % MAX_ALERT_ID + 1;
        if state.alerts.is_free(id) {
            return Ok(id);
        }
    }
    Err(StoreError::Io("no free alert id".into()))
}

/// Alerts in the order they were raised (ids are random).
fn by_time(mut alerts: Vec<Alert>) -> Vec<Alert> {
    alerts.sort_by_key(|a| (a.raised_at, a.id));
    alerts
}

impl LogStore {
    /// Stores the alert's envelope for its recipients, raises the alert
    /// and takes the escalation steps now due (paging the on-duty tier), as
    /// one durable batch. Raising with an envelope already stored (a retry)
    /// returns the alert it raised. A defender with `open_limit` open SOS
    /// alerts (0: no limit) joins its newest instead (see
    /// [`State::decide_raise`]), which is returned.
    pub fn raise_alert(
        &self,
        sos: Sos,
        policies: &Policies,
        on_shift: &[DeviceId],
        now: u64,
        open_limit: u32,
    ) -> Result<Result<(Alert, Vec<Paging>), RaiseError>, StoreError> {
        self.check_writable()?;
        let mut state = self.lock();
        let seq = self.next_seq(&state);
        let id = fresh_alert_id(&state)?;
        let mut events = match state.decide_raise(sos, seq, id, now, open_limit) {
            Ok(Raise::New(events)) => events,
            Ok(Raise::Again(alert)) => return Ok(Ok((alert, Vec::new()))),
            Ok(Raise::Joined {
                alert,
                escalate,
                events,
            }) => {
                return self
                    .join_alert(state, seq, alert, escalate, events, policies, on_shift, now);
            }
            Err(e) => return Ok(Err(e)),
        };
        // The record must fit, since the state changes before it is
        // written. The raise itself always does for an envelope the server
        // accepts; the escalation steps due at once join it only as far as
        // they fit (below), and the next tick takes the rest.
        let mut size = events
            .iter()
            .map(|e| super::codec::encode_event(e).len() + RECORD_EVENT_OVERHEAD)
            .sum::<usize>();
        if size + RECORD_MARGIN > crate::log::MAX_RECORD_LEN {
            return Ok(Err(RaiseError::TooLarge));
        }
        for e in &events {
            state.apply(seq, e)?;
        }
        // This alert's first steps only; any other alert's due steps are
        // the escalation tick's.
        let due = {
            let st: &State = &state;
            st.alerts
                .escalate_alert(id, policies, now, |tier| st.tier_members(on_shift, tier))
        };
        let mut pagings = Vec::new();
        for step in due {
            let event = Event::Alert(step.clone());
            size += super::codec::encode_event(&event).len() + RECORD_EVENT_OVERHEAD;
            if size + RECORD_MARGIN > crate::log::MAX_RECORD_LEN {
                // A large SOS to a large team: this step and the later ones
                // are taken by the next escalation tick, a moment later,
                // rather than the SOS refused.
                break;
            }
            state.apply(seq, &event)?;
            events.push(event);
            let (alert, paged) = match step {
                AlertEvent::Stepped { alert, paged, .. } => (alert, paged),
                AlertEvent::Exhausted { alert } => (alert, Vec::new()),
                _ => continue,
            };
            if let Some(a) = state.alerts.alerts.get(&alert).cloned() {
                pagings.push(Paging { alert: a, paged });
            }
        }
        let ticket = self.submit_applied(&state, seq, &Event::Batch(events))?;
        let alert = state
            .alerts
            .alerts
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("a raised alert is missing".into()))?;
        drop(state);
        self.wait(ticket)?;
        Ok(Ok((alert, pagings)))
    }

    /// Writes the join of an SOS into open alert `id` (`events`, in the
    /// record `seq`): with, if the SOS made it more urgent while nobody
    /// holds it (`escalate`), the first step of the stricter policy,
    /// paging its tier now. Returns the alert and, if its staff are paged
    /// again, every device paged so far.
    #[allow(clippy::too_many_arguments)]
    fn join_alert(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
        seq: u64,
        id: u64,
        escalate: bool,
        mut events: Vec<Event>,
        policies: &Policies,
        on_shift: &[DeviceId],
        now: u64,
    ) -> Result<Result<(Alert, Vec<Paging>), RaiseError>, StoreError> {
        let size = events
            .iter()
            .map(|e| super::codec::encode_event(e).len() + RECORD_EVENT_OVERHEAD)
            .sum::<usize>();
        if size + RECORD_MARGIN > crate::log::MAX_RECORD_LEN {
            return Ok(Err(RaiseError::TooLarge));
        }
        let repage = events
            .iter()
            .any(|e| matches!(e, Event::Alert(AlertEvent::Joined { repage: true, .. })));
        for e in &events {
            state.apply(seq, e)?;
        }
        let priority = state
            .alerts
            .alerts
            .get(&id)
            .map(|a| a.priority)
            .ok_or_else(|| StoreError::Corrupt("a joined alert is missing".into()))?;
        if escalate {
            let first = policies
                .for_priority(priority)
                .steps
                .first()
                .map(|s| state.tier_members(on_shift, s.tier))
                .unwrap_or_default();
            let step = Event::Alert(AlertEvent::Stepped {
                alert: id,
                round: 0,
                step: 0,
                paged: first,
                at: now,
            });
            state.apply(seq, &step)?;
            events.push(step);
        }
        let ticket = self.submit_applied(&state, seq, &Event::Batch(events))?;
        let alert = state
            .alerts
            .alerts
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("a joined alert is missing".into()))?;
        drop(state);
        self.wait(ticket)?;
        let pagings = if repage {
            vec![Paging {
                paged: alert.paged.iter().copied().collect(),
                alert: alert.clone(),
            }]
        } else {
            Vec::new()
        };
        Ok(Ok((alert, pagings)))
    }

    /// The alerts `device` may see, oldest first: staff see all; a
    /// defender its own, except a duress alert and a notice of a schedule
    /// change, which its screen must never show.
    pub fn alerts_for(
        &self,
        device: &DeviceId,
        role: Role,
        open_only: bool,
    ) -> Result<Vec<Alert>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let visible =
            |a: &&Alert| role.is_staff() || (a.defender == *device && a.origin.shown_to_defender());
        Ok(by_time(if open_only {
            state.alerts.open().filter(visible).cloned().collect()
        } else {
            state
                .alerts
                .alerts
                .values()
                .filter(visible)
                .cloned()
                .collect()
        }))
    }

    /// The alert with this id.
    pub fn alert(&self, id: u64) -> Result<Option<Alert>, StoreError> {
        self.check_readable()?;
        Ok(self.lock().alerts.alerts.get(&id).cloned())
    }

    /// The id `viewer` knows the message at log position `envelope` by
    /// (0: none, or not one of its messages).
    pub fn envelope_id_seen_by(&self, envelope: u64, viewer: &DeviceId) -> u64 {
        if envelope == 0 {
            return 0;
        }
        self.lock().mailbox.id_seen_by(envelope, viewer)
    }

    /// [`LogStore::envelope_id_seen_by`] for each of `viewers`, under one
    /// lock.
    pub fn envelope_ids_seen_by(&self, envelope: u64, viewers: &[DeviceId]) -> Vec<u64> {
        if envelope == 0 {
            return vec![0; viewers.len()];
        }
        let state = self.lock();
        viewers
            .iter()
            .map(|v| state.mailbox.id_seen_by(envelope, v))
            .collect()
    }

    /// `by` claims `alert`. Returns who holds it afterwards.
    pub fn claim_alert(
        &self,
        alert: u64,
        by: DeviceId,
    ) -> Result<Result<DeviceId, AlertError>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        match state.alerts.acknowledge(alert, by) {
            Ok(Some(event)) => {
                self.commit(state, Event::Alert(event))?;
                Ok(Ok(by))
            }
            Ok(None) => Ok(Ok(by)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Closes `alert` on behalf of `by` (see [`crate::domain::alerts::Alerts::close`]).
    /// Returns the devices paged so far, who must hear the all clear.
    pub fn close_alert(
        &self,
        alert: u64,
        by: DeviceId,
        role: Role,
        how: Close,
    ) -> Result<Result<Vec<DeviceId>, AlertError>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        match state.alerts.close(alert, by, role, how) {
            Ok((event, paged)) => {
                let event = Event::Batch(vec![
                    Event::Alert(event),
                    Event::Alert(AlertEvent::ClosedBy { alert, by }),
                ]);
                self.commit(state, event)?;
                Ok(Ok(paged))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Puts a staff device on or off duty.
    pub fn set_duty(&self, device: DeviceId, on: bool) -> Result<(), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        if state.on_duty.contains(&device) == on {
            return Ok(());
        }
        self.commit(state, Event::Duty { device, on })?;
        Ok(())
    }

    /// Every staff device on duty now (declared, or in `on_shift`), and
    /// `me` whether on duty or not.
    pub fn duty_status(
        &self,
        on_shift: &[DeviceId],
        me: DeviceId,
    ) -> Result<Vec<DutyState>, StoreError> {
        self.check_readable()?;
        Ok(self.lock().duty_status(on_shift, me))
    }

    /// Records that `device` received the page for `alert`.
    pub fn alert_delivered(&self, alert: u64, device: DeviceId) -> Result<(), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let Some(a) = state.alerts.alerts.get(&alert) else {
            return Ok(());
        };
        if a.delivered.contains(&device) || !a.paged.contains(&device) {
            return Ok(());
        }
        self.commit(state, Event::Alert(AlertEvent::Delivered { alert, device }))?;
        Ok(())
    }

    /// Open alerts paged to `device` that it has not confirmed receiving.
    pub fn undelivered_pages(&self, device: &DeviceId) -> Result<Vec<Alert>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        Ok(by_time(
            state
                .alerts
                .open()
                .filter(|a| {
                    a.state == AlertState::Raised
                        && a.paged.contains(device)
                        && !a.delivered.contains(device)
                })
                .cloned()
                .collect(),
        ))
    }

    /// Stages every escalation step due at `now`; returns what to push
    /// and the last ticket to wait for (before pushing).
    fn stage_escalation(
        &self,
        state: &mut std::sync::MutexGuard<'_, State>,
        policies: &Policies,
        on_shift: &[DeviceId],
        now: u64,
    ) -> Result<(Vec<Paging>, Option<crate::log::Ticket>), StoreError> {
        let due = {
            let st: &State = state;
            st.alerts
                .escalate(policies, now, |tier| st.tier_members(on_shift, tier))
        };
        let mut out = Vec::new();
        let mut last = None;
        for event in due {
            let (alert, paged) = match &event {
                AlertEvent::Stepped { alert, paged, .. } => (*alert, paged.clone()),
                AlertEvent::Exhausted { alert } => (*alert, Vec::new()),
                _ => continue,
            };
            last = Some(self.stage(state, RecordKey::Main, Event::Alert(event))?);
            if let Some(a) = state.alerts.alerts.get(&alert).cloned() {
                out.push(Paging { alert: a, paged });
            }
        }
        Ok((out, last))
    }

    /// Raises alerts for missed check-ins, then takes every escalation step
    /// due at `now`, recorded durably before it is returned for
    /// notification. `on_shift` lists the devices the rota has on duty now.
    pub fn escalate(
        &self,
        policies: &Policies,
        on_shift: &[DeviceId],
        now: u64,
    ) -> Result<Vec<Paging>, StoreError> {
        self.check_readable()?;
        if self.check_writable().is_err() {
            // Steps cannot be saved now; they fall due again (derived from
            // the log) once writes resume.
            return Ok(Vec::new());
        }
        self.raise_missed_checkins(now)?;
        let mut state = self.lock();
        let (pagings, last) = self.stage_escalation(&mut state, policies, on_shift, now)?;
        drop(state);
        if let Some(ticket) = last {
            self.wait(ticket)?;
        }
        Ok(pagings)
    }
}

#[cfg(test)]
mod tests {
    use hotline_proto::{IdentityKeyPair, Role};

    use crate::domain::alerts::{AlertContent, Policies, Priority, Sos, SosMessage};
    use crate::domain::devices::InviteRecord;
    /// The largest envelope the request layer accepts
    /// (`requests::messaging::MAX_ENVELOPE_BYTES`, above this layer).
    const MAX_ENVELOPE_BYTES: usize = 96 * 1024;

    /// Found by the protocol audit: the largest envelope the server
    /// accepts, sealed to the most recipients an envelope may have, was
    /// refused as an SOS ("too large to store"), because room was kept for
    /// escalation steps that would not have needed it. It is raised; steps
    /// that do not fit its record are the next tick's.
    #[test]
    fn the_largest_sos_to_the_largest_team_is_raised() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = super::super::open_in(dir.path());
        let mut staff = Vec::new();
        for n in 0..255u8 {
            let key = IdentityKeyPair::from_seed(&[n; 32]).public_key();
            let invite = InviteRecord {
                role: Role::Officer,
                created_at: 1,
                expires_at: u64::MAX,
                used_at: None,
                bootstrap: None,
            };
            store.put_invite([n; 32], &invite).expect("invite");
            store.enroll([n; 32], key, 2).expect("enroll");
            store.set_duty(key.device_id(), true).expect("on duty");
            staff.push(key.device_id());
        }
        let defender = IdentityKeyPair::from_seed(&[0xff; 32]).public_key();
        store
            .put_invite(
                [0xff; 32],
                &InviteRecord {
                    role: Role::Defender,
                    created_at: 1,
                    expires_at: u64::MAX,
                    used_at: None,
                    bootstrap: None,
                },
            )
            .expect("invite");
        store.enroll([0xff; 32], defender, 2).expect("enroll");
        let sos = Sos {
            defender: defender.device_id(),
            priority: Priority::Immediate,
            message: Some(SosMessage {
                digest: [7; 32],
                recipients: staff,
                envelope: vec![0x5a; MAX_ENVELOPE_BYTES - 128],
            }),
            content: AlertContent::Sealed,
            join: 0,
        };
        let raised = store
            .raise_alert(sos, &Policies::default(), &[], 100, 0)
            .expect("stored")
            .expect("raised, never refused as too large");
        assert_eq!(raised.0.defender, defender.device_id());
    }
}
