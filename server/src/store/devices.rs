//! Devices and invites on the store.

use hotline_proto::message::RosterStanding;
use hotline_proto::{DeviceId, IdentityPublicKey};

use std::collections::BTreeSet;

use super::{LogStore, StoreError};
use crate::domain::Event;
use crate::domain::alerts::{Alert, AlertEvent, Policies, Tier};
use crate::domain::devices::{Device, EnrollOutcome, InviteRecord, RevokeOutcome};
use crate::log::RecordKey;

/// An alert released because the device holding it was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The alert as it now stands (raised again).
    pub alert: Alert,
    /// The staff to tell: paged for it so far, or on duty now.
    pub tell: Vec<DeviceId>,
}

impl LogStore {
    /// Saves a new invite under the digest of its token.
    pub fn put_invite(
        &self,
        token_digest: [u8; 32],
        invite: &InviteRecord,
    ) -> Result<(), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        if state.invites.contains_key(&token_digest) {
            return Err(StoreError::Corrupt("invite token collision".into()));
        }
        let event = Event::InviteCreated {
            digest: token_digest,
            invite: invite.clone(),
        };
        self.commit(state, event)?;
        Ok(())
    }

    /// Saves a bootstrap admin invite (one the server makes itself),
    /// numbered after every earlier one, which it thereby replaces.
    pub fn put_bootstrap_invite(
        &self,
        token_digest: [u8; 32],
        invite: &InviteRecord,
    ) -> Result<InviteRecord, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        if state.invites.contains_key(&token_digest) {
            return Err(StoreError::Corrupt("invite token collision".into()));
        }
        let invite = InviteRecord {
            bootstrap: Some(state.latest_bootstrap().unwrap_or(0) + 1),
            ..invite.clone()
        };
        let event = Event::InviteCreated {
            digest: token_digest,
            invite: invite.clone(),
        };
        self.commit(state, event)?;
        Ok(invite)
    }

    /// Spends the invite and enrolls `identity_key`, atomically: either
    /// both happen or neither.
    pub fn enroll(
        &self,
        token_digest: [u8; 32],
        identity_key: IdentityPublicKey,
        now: u64,
    ) -> Result<EnrollOutcome, StoreError> {
        self.enroll_with_panic_key(token_digest, identity_key, None, now)
    }

    /// [`LogStore::enroll`], registering a defender device's panic key
    /// with it.
    pub fn enroll_with_panic_key(
        &self,
        token_digest: [u8; 32],
        identity_key: IdentityPublicKey,
        panic_key: Option<IdentityPublicKey>,
        now: u64,
    ) -> Result<EnrollOutcome, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let (outcome, event) = state.decide_enroll(token_digest, identity_key, panic_key, now);
        if let Some(event) = event {
            self.commit(state, event)?;
        }
        Ok(outcome)
    }

    /// The device with this id (revoked or not).
    pub fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.check_readable()?;
        Ok(self.lock().devices.get(id).cloned())
    }

    /// The devices with these ids, as far as they are enrolled.
    pub fn devices_by_id(&self, ids: &[DeviceId]) -> Result<Vec<Option<Device>>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        Ok(ids
            .iter()
            .map(|id| state.devices.get(id).cloned())
            .collect())
    }

    /// Every enrolled device, revoked ones included.
    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.check_readable()?;
        Ok(self.lock().devices.values().cloned().collect())
    }

    /// Revokes a device, refusing to revoke the last active admin.
    pub fn revoke(&self, id: &DeviceId, now: u64) -> Result<RevokeOutcome, StoreError> {
        self.revoke_releasing(id, now, &[], &Policies::default())
            .map(|(outcome, _)| outcome)
    }

    /// Revokes a device, releasing in the same record every alert it
    /// holds (see [`crate::domain::State::decide_revoke`]). Returns, per
    /// released alert, the alert as it now stands and the staff to tell:
    /// every device paged for it so far and every one on duty now
    /// (`on_shift`: those the rota has on duty), if they may read alerts.
    /// A release whose current step pages nobody now is due at once
    /// (under `policies`).
    pub fn revoke_releasing(
        &self,
        id: &DeviceId,
        now: u64,
        on_shift: &[DeviceId],
        policies: &Policies,
    ) -> Result<(RevokeOutcome, Vec<Released>), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let (outcome, event) = state.decide_revoke(id, now);
        let Some(event) = event else {
            return Ok((outcome, Vec::new()));
        };
        let event = state.hasten_empty_releases(event, id, policies, on_shift);
        let released: Vec<u64> = match &event {
            Event::Batch(events) => events
                .iter()
                .filter_map(|e| match e {
                    Event::Alert(AlertEvent::Released { alert, .. }) => Some(*alert),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut state = state;
        let ticket = self.stage(&mut state, RecordKey::Main, event)?;
        let on_duty = state.tier_members(on_shift, Tier::OnDuty);
        let everyone = state.tier_members(on_shift, Tier::Everyone);
        let told = released
            .iter()
            .filter_map(|a| state.alerts.alerts.get(a).cloned())
            .map(|a| {
                let mut devices: BTreeSet<DeviceId> = a
                    .paged
                    .iter()
                    .filter(|d| state.staff.contains_key(d) && state.may_read_alerts(d))
                    .chain(&on_duty)
                    .copied()
                    .collect();
                // Held by the only device that knew of it (a duress alert
                // paged to one officer, say): the whole team hears it is
                // back, rather than nobody until its wait runs out.
                if devices.is_empty() {
                    devices.extend(everyone.iter().copied());
                }
                Released {
                    alert: a,
                    tell: devices.into_iter().collect(),
                }
            })
            .collect();
        drop(state);
        self.wait(ticket)?;
        Ok((outcome, told))
    }

    /// Registers `key` as device `id`'s panic key: `Ok(Err(()))` if it
    /// has another one already (the same one again changes nothing).
    pub fn register_panic_key(
        &self,
        id: &DeviceId,
        key: IdentityPublicKey,
    ) -> Result<Result<(), ()>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        match state.decide_panic_key(id, key) {
            Ok(Some(event)) => {
                self.commit(state, event)?;
                Ok(Ok(()))
            }
            Ok(None) => Ok(Ok(())),
            Err(()) => Ok(Err(())),
        }
    }

    /// Whether any admin device is active.
    pub fn has_active_admin(&self) -> Result<bool, StoreError> {
        self.check_readable()?;
        Ok(self.lock().has_active_admin())
    }

    /// Whether staff device `id` may be paged, claim alerts and reply to
    /// defenders (see [`crate::domain::State::may_read_alerts`]).
    pub fn may_read_alerts(&self, id: &DeviceId) -> Result<bool, StoreError> {
        self.check_readable()?;
        Ok(self.lock().may_read_alerts(id))
    }

    /// The newest roster, as the server reads it.
    pub fn newest_roster(&self) -> Result<Option<crate::domain::devices::RosterView>, StoreError> {
        self.check_readable()?;
        Ok(self.lock().roster.clone())
    }

    /// When the newest roster expires (`None`: there is none), and where
    /// device `id` stands with it.
    pub fn roster_standing(
        &self,
        id: &DeviceId,
    ) -> Result<(Option<u64>, RosterStanding), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        Ok((
            state.roster.as_ref().map(|r| r.expires_at),
            state.roster_standing(id),
        ))
    }
}
