//! Alerts and duty on the store: raising, claiming, closing, duty, and the
//! escalation steps that fall due, each an event in the log.

use hotline_proto::{DeviceId, Role};

use crate::domain::alerts::{
    Alert, AlertError, AlertEvent, AlertOrigin, AlertState, Close, Policies, Priority, RaiseError,
    Tier,
};
use crate::domain::mailbox::MailEvent;
use crate::domain::{Event, State};
use crate::store::{LogStore, StoreError};

/// What became of a close request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Closed; these devices were paged and must hear the all clear.
    Closed(Vec<DeviceId>),
    /// Refused.
    Refused(AlertError),
    /// This device may not close it that way.
    Forbidden,
}

/// An escalation step taken: the alert as it now stands and the devices
/// this step paged (to notify now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// The alert after the step.
    pub alert: Alert,
    /// Newly paged devices.
    pub paged: Vec<DeviceId>,
}

fn members(state: &State, on_shift: &[DeviceId], tier: Tier) -> Vec<DeviceId> {
    let staff = state.staff.iter();
    let on_duty = |id: &DeviceId| state.on_duty.contains(id) || on_shift.contains(id);
    match tier {
        Tier::OnDuty => {
            // Walk the (few) devices on duty, not the whole staff.
            let on: std::collections::BTreeSet<DeviceId> = state
                .on_duty
                .iter()
                .chain(on_shift)
                .filter(|id| state.staff.contains_key(id))
                .copied()
                .collect();
            on.into_iter().collect()
        }
        Tier::Backup => staff
            .filter(|(id, role)| **role == Role::Officer && !on_duty(id))
            .map(|(id, _)| *id)
            .collect(),
        Tier::Coordinators => staff
            .filter(|(_, role)| **role == Role::Coordinator)
            .map(|(id, _)| *id)
            .collect(),
        Tier::Everyone => staff.map(|(id, _)| *id).collect(),
    }
}

impl LogStore {
    /// Stores the alert's envelope for its recipients, raises the alert
    /// and takes the escalation steps now due (paging the on-duty tier), as
    /// one durable batch. Raising with an envelope already stored (a retry)
    /// returns the alert it raised.
    #[allow(clippy::too_many_arguments)]
    pub fn raise_alert(
        &self,
        defender: DeviceId,
        priority: Priority,
        digest: [u8; 32],
        recipients: Vec<DeviceId>,
        envelope: Vec<u8>,
        policies: &Policies,
        on_shift: &[DeviceId],
        now: u64,
    ) -> Result<Result<(Alert, Vec<Paging>), RaiseError>, StoreError> {
        self.check_running()?;
        let mut state = self.lock();
        if let Some(envelope_id) = state.mailbox.digests.get(&digest).copied()
            && let Some(a) = state
                .alerts
                .alerts
                .values()
                .find(|a| a.envelope_id == envelope_id)
        {
            return Ok(Ok((a.clone(), Vec::new())));
        }
        if state.mailbox.digests.contains_key(&digest) {
            return Ok(Err(RaiseError::SentAsMessage));
        }
        // One record holds the message, the alert and the steps due now
        // (paging the on-duty tier): one flush, and all or nothing.
        let seq = self.next_seq(&state);
        let mut events = vec![
            Event::Mail(MailEvent::EnvelopeStored {
                sender: defender,
                digest,
                recipients,
                bytes: envelope,
            }),
            Event::Alert(AlertEvent::Raised {
                defender,
                priority,
                at: now,
                envelope_id: seq,
                origin: AlertOrigin::Sos,
            }),
        ];
        // Room is left for the escalation steps that join this record (each
        // names the devices it pages): the record must fit, since the
        // state changes before it is written.
        if events
            .iter()
            .map(|e| super::codec::encode_event(e).len())
            .sum::<usize>()
            + 16 * 1024
            > crate::log::MAX_RECORD_LEN
        {
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
                .escalate_alert(seq, policies, now, |tier| members(st, on_shift, tier))
        };
        let mut pagings = Vec::new();
        for step in due {
            let event = Event::Alert(step.clone());
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
            .get(&seq)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("a raised alert is missing".into()))?;
        drop(state);
        self.wait(ticket)?;
        Ok(Ok((alert, pagings)))
    }

    /// The alerts `device` may see: staff see all; a defender its own,
    /// except a duress alert, which its screen must never show.
    pub fn alerts_for(
        &self,
        device: &DeviceId,
        role: Role,
        open_only: bool,
    ) -> Result<Vec<Alert>, StoreError> {
        self.check_running()?;
        let state = self.lock();
        let visible = |a: &&Alert| {
            role.is_staff() || (a.defender == *device && a.origin != AlertOrigin::Duress)
        };
        Ok(if open_only {
            state.alerts.open().filter(visible).cloned().collect()
        } else {
            state
                .alerts
                .alerts
                .values()
                .filter(visible)
                .cloned()
                .collect()
        })
    }

    /// `by` claims `alert`. Returns who holds it afterwards.
    pub fn claim_alert(
        &self,
        alert: u64,
        by: DeviceId,
    ) -> Result<Result<DeviceId, AlertError>, StoreError> {
        self.check_running()?;
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

    /// Closes `alert` on behalf of `by`: staff may resolve or cancel; the
    /// alert's defender may cancel (or call a false alarm).
    pub fn close_alert(
        &self,
        alert: u64,
        by: DeviceId,
        role: Role,
        how: Close,
    ) -> Result<CloseOutcome, StoreError> {
        self.check_running()?;
        let state = self.lock();
        let Some(a) = state.alerts.alerts.get(&alert) else {
            return Ok(CloseOutcome::Refused(AlertError::NotFound));
        };
        // A coerced defender must not be able to call off (or even learn
        // of) the alert its duress code raised.
        if a.origin == AlertOrigin::Duress && !role.is_staff() {
            return Ok(CloseOutcome::Refused(AlertError::NotFound));
        }
        if !a.state.is_open() {
            return Ok(CloseOutcome::Refused(AlertError::Closed));
        }
        let allowed = match how {
            Close::Resolved => role.is_staff(),
            Close::Cancelled | Close::FalseAlarm => role.is_staff() || a.defender == by,
        };
        if !allowed {
            return Ok(CloseOutcome::Forbidden);
        }
        let paged: Vec<DeviceId> = a.paged.iter().copied().collect();
        let event = match how {
            Close::Resolved => AlertEvent::Resolved { alert },
            Close::Cancelled => AlertEvent::Cancelled {
                alert,
                false_alarm: false,
            },
            Close::FalseAlarm => AlertEvent::Cancelled {
                alert,
                false_alarm: true,
            },
        };
        self.commit(state, Event::Alert(event))?;
        Ok(CloseOutcome::Closed(paged))
    }

    /// Puts a staff device on or off duty.
    pub fn set_duty(&self, device: DeviceId, on: bool) -> Result<(), StoreError> {
        self.check_running()?;
        let state = self.lock();
        if state.on_duty.contains(&device) == on {
            return Ok(());
        }
        self.commit(state, Event::Duty { device, on })?;
        Ok(())
    }

    /// Records that `device` received the page for `alert`.
    pub fn alert_delivered(&self, alert: u64, device: DeviceId) -> Result<(), StoreError> {
        self.check_running()?;
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
        self.check_running()?;
        let state = self.lock();
        Ok(state
            .alerts
            .open()
            .filter(|a| {
                a.state == AlertState::Raised
                    && a.paged.contains(device)
                    && !a.delivered.contains(device)
            })
            .cloned()
            .collect())
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
                .escalate(policies, now, |tier| members(st, on_shift, tier))
        };
        let mut out = Vec::new();
        let mut last = None;
        for event in due {
            let (alert, paged) = match &event {
                AlertEvent::Stepped { alert, paged, .. } => (*alert, paged.clone()),
                AlertEvent::Exhausted { alert } => (*alert, Vec::new()),
                _ => continue,
            };
            last = Some(self.stage(state, Event::Alert(event))?);
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
        self.check_running()?;
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
