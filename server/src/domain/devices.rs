//! Devices and invites: who is enrolled, with which role, and the
//! one-time invites they enrolled with.

use hotline_proto::{DeviceId, IdentityPublicKey, Role};

/// A device as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Derived from the identity key.
    pub id: DeviceId,
    /// The key it authenticates with.
    pub identity_key: IdentityPublicKey,
    /// What it may do.
    pub role: Role,
    /// When it enrolled (seconds since the Unix epoch).
    pub enrolled_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
}

/// A pending or used invite, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// The role a device enrolled with it gets.
    pub role: Role,
    /// When it was made.
    pub created_at: u64,
    /// After this it is refused.
    pub expires_at: u64,
    /// When a device used it, if one did.
    pub used_at: Option<u64>,
    /// For an admin invite the server made itself (at a start with no
    /// admin, or `hotline-server invite`): its number among those, from 1.
    /// Only the newest of them enrolls: each one replaces the one before.
    pub bootstrap: Option<u64>,
}

/// What became of an enrollment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// The device is enrolled and the invite is spent.
    Enrolled(Device),
    /// No invite has this token.
    InviteUnknown,
    /// The invite was used before.
    InviteUsed,
    /// A newer bootstrap admin invite replaced this one.
    InviteReplaced,
    /// The invite expired.
    InviteExpired,
    /// This identity key is already enrolled.
    AlreadyEnrolled,
}

/// What became of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Revoked now, or earlier at the given time (revoking twice is harmless).
    Revoked {
        /// When.
        revoked_at: u64,
    },
    /// No such device.
    NotFound,
    /// It is the last active admin: revoking it would lock everyone out.
    LastAdmin,
}

impl super::State {
    /// Enrolling `identity_key` with the invite whose token has `digest`,
    /// at `now`: what becomes of it, and the event that records it when
    /// it enrolls.
    pub fn decide_enroll(
        &self,
        digest: [u8; 32],
        identity_key: IdentityPublicKey,
        now: u64,
    ) -> (EnrollOutcome, Option<super::Event>) {
        let Some(invite) = self.invites.get(&digest) else {
            return (EnrollOutcome::InviteUnknown, None);
        };
        if invite.used_at.is_some() {
            return (EnrollOutcome::InviteUsed, None);
        }
        if invite.bootstrap.is_some() && invite.bootstrap != self.latest_bootstrap() {
            return (EnrollOutcome::InviteReplaced, None);
        }
        if now >= invite.expires_at {
            return (EnrollOutcome::InviteExpired, None);
        }
        let id = identity_key.device_id();
        if self.devices.contains_key(&id) {
            return (EnrollOutcome::AlreadyEnrolled, None);
        }
        let device = Device {
            id,
            identity_key,
            role: invite.role,
            enrolled_at: now,
            revoked_at: None,
        };
        let event = super::Event::DeviceEnrolled {
            digest,
            device: device.clone(),
        };
        (EnrollOutcome::Enrolled(device), Some(event))
    }

    /// Revoking device `id` at `now`: what becomes of it, and the event
    /// that records it when it is revoked now. Revoking twice is harmless
    /// (the first time stands); the last active admin is never revoked,
    /// which would lock everyone out.
    pub fn decide_revoke(&self, id: &DeviceId, now: u64) -> (RevokeOutcome, Option<super::Event>) {
        let Some(device) = self.devices.get(id) else {
            return (RevokeOutcome::NotFound, None);
        };
        if let Some(revoked_at) = device.revoked_at {
            return (RevokeOutcome::Revoked { revoked_at }, None);
        }
        if device.role == Role::Admin
            && !self
                .devices
                .values()
                .any(|d| d.role == Role::Admin && d.revoked_at.is_none() && d.id != *id)
        {
            return (RevokeOutcome::LastAdmin, None);
        }
        let event = super::Event::DeviceRevoked {
            device_id: *id,
            at: now,
        };
        (RevokeOutcome::Revoked { revoked_at: now }, Some(event))
    }

    /// The number of the newest bootstrap invite, the only one that
    /// enrolls.
    pub fn latest_bootstrap(&self) -> Option<u64> {
        self.invites.values().filter_map(|i| i.bootstrap).max()
    }

    /// Whether any admin device is active.
    pub fn has_active_admin(&self) -> bool {
        self.staff.values().any(|r| *r == Role::Admin)
    }
}
