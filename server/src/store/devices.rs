//! Devices and invites on the store.

use hotline_proto::{DeviceId, IdentityPublicKey};

use super::{LogStore, StoreError};
use crate::domain::Event;
use crate::domain::devices::{Device, EnrollOutcome, InviteRecord, RevokeOutcome};

impl LogStore {
    /// Saves a new invite under the digest of its token.
    pub fn put_invite(
        &self,
        token_digest: [u8; 32],
        invite: &InviteRecord,
    ) -> Result<(), StoreError> {
        self.check_running()?;
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
        self.check_running()?;
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
        self.check_running()?;
        let state = self.lock();
        let (outcome, event) = state.decide_enroll(token_digest, identity_key, now);
        if let Some(event) = event {
            self.commit(state, event)?;
        }
        Ok(outcome)
    }

    /// The device with this id (revoked or not).
    pub fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.check_running()?;
        Ok(self.lock().devices.get(id).cloned())
    }

    /// The devices with these ids, as far as they are enrolled.
    pub fn devices_by_id(&self, ids: &[DeviceId]) -> Result<Vec<Option<Device>>, StoreError> {
        self.check_running()?;
        let state = self.lock();
        Ok(ids
            .iter()
            .map(|id| state.devices.get(id).cloned())
            .collect())
    }

    /// Every enrolled device, revoked ones included.
    pub fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.check_running()?;
        Ok(self.lock().devices.values().cloned().collect())
    }

    /// Revokes a device, refusing to revoke the last active admin.
    pub fn revoke(&self, id: &DeviceId, now: u64) -> Result<RevokeOutcome, StoreError> {
        self.check_running()?;
        let state = self.lock();
        let (outcome, event) = state.decide_revoke(id, now);
        if let Some(event) = event {
            self.commit(state, event)?;
        }
        Ok(outcome)
    }

    /// Whether any admin device is active.
    pub fn has_active_admin(&self) -> Result<bool, StoreError> {
        self.check_running()?;
        Ok(self.lock().has_active_admin())
    }
}
