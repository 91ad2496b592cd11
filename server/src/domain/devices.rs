//! Devices and invites: who is enrolled, with which role, and the
//! one-time invites they enrolled with.

use std::collections::{BTreeMap, BTreeSet};

use hotline_proto::e2e::roster::SignedRoster;
use hotline_proto::message::RosterStanding;
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
    /// A defender device's panic key: it authenticates a session that may
    /// only raise alerts and check in (none for staff, and for devices
    /// enrolled before panic keys existed).
    pub panic_key: Option<IdentityPublicKey>,
    /// SHA-256 of the token of the invite it enrolled with, kept since
    /// issue 12 so that the admin device that made the invite can name it
    /// (`DeviceInfo.invite_digest`); `None` for a device whose enrollment
    /// was recorded before (the digest stays in its `DeviceEnrolled`
    /// event, but the state never took it from there, so that stores
    /// written before read and snapshot as they did).
    pub invite_digest: Option<[u8; 32]>,
}

/// The newest roster the server holds, as the server reads it: it cannot
/// verify the organisation's signature (clients do), but only an admin
/// uploads one, and it decides only whom the server pages and lets claim
/// and reply: staff it does not list could not read an alert anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterView {
    /// Its version.
    pub version: u64,
    /// When clients stop accepting it.
    pub expires_at: u64,
    /// The devices it lists (whatever their entries' validity: an expired
    /// roster is still what an SOS is sealed to).
    pub members: BTreeSet<DeviceId>,
    /// Each listed device's entry: what decides who may read and write
    /// cases ([`RosterView::case_staff_at`]).
    pub seats: BTreeMap<DeviceId, Vec<RosterSeat>>,
}

/// A device's entry on the roster, as the case rules read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterSeat {
    /// The role the roster gives it.
    pub role: Role,
    /// The identity key the roster lists for it.
    pub identity_key: IdentityPublicKey,
    /// Its entry is valid from this time (inclusive) ...
    pub valid_from: u64,
    /// ... until this one (exclusive).
    pub valid_until: u64,
}

/// Why a device may not read or write cases (docs/protocol.md, section
/// 9.3, the roster rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStaffRefusal {
    /// The roster does not list it, or lists it with another role than
    /// officer, coordinator or admin, or with another identity key.
    NotStaff,
    /// Its entry is not valid at the time of the request.
    NotValidNow,
}

impl RosterView {
    /// Reads the `SignedRoster` wire bytes the server stored; `None` if
    /// they do not parse (the server then treats every staff device as
    /// on the roster rather than paging nobody).
    pub fn read(bytes: &[u8]) -> Option<RosterView> {
        let roster = SignedRoster::decode(bytes).ok()?.read_unverified().ok()?;
        Some(RosterView {
            version: roster.version,
            expires_at: roster.expires_at,
            members: roster.entries.iter().map(|e| e.device_id).collect(),
            // A device listed more than once: every entry counts, as
            // clients read them.
            seats: roster.entries.iter().fold(BTreeMap::new(), |mut m, e| {
                m.entry(e.device_id)
                    .or_insert_with(Vec::new)
                    .push(RosterSeat {
                        role: e.role,
                        identity_key: e.identity_key,
                        valid_from: e.valid_from,
                        valid_until: e.valid_until,
                    });
                m
            }),
        })
    }

    /// The readers' rule for a case event's author (docs/protocol.md,
    /// sections 9.3 and 9.5), applied by the server to every case request
    /// at its time `at` (for an event, the time it records with it): the
    /// roster lists `id` with identity key `key` and a staff role
    /// (officer, coordinator or admin), and the entry is valid at `at`
    /// (`valid_from <= at < valid_until`). The role of that entry is what
    /// the device may do with cases.
    pub fn case_staff_at(
        &self,
        id: &DeviceId,
        key: &IdentityPublicKey,
        at: u64,
    ) -> Result<Role, CaseStaffRefusal> {
        let staff: Vec<&RosterSeat> = self
            .seats
            .get(id)
            .into_iter()
            .flatten()
            .filter(|s| s.role.is_staff() && s.identity_key == *key)
            .collect();
        if staff.is_empty() {
            return Err(CaseStaffRefusal::NotStaff);
        }
        staff
            .iter()
            .find(|s| s.valid_from <= at && at < s.valid_until)
            .map(|s| s.role)
            .ok_or(CaseStaffRefusal::NotValidNow)
    }
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
    /// A panic key came with an invite for staff: only a defender's
    /// device has one.
    PanicKeyNotForStaff,
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
        panic_key: Option<IdentityPublicKey>,
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
        if panic_key.is_some() && invite.role != Role::Defender {
            return (EnrollOutcome::PanicKeyNotForStaff, None);
        }
        let device = Device {
            id,
            identity_key,
            role: invite.role,
            enrolled_at: now,
            revoked_at: None,
            panic_key,
            invite_digest: Some(digest),
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
    /// which would lock everyone out. Every alert the device holds is
    /// released in the same record (back to raised, its escalation
    /// resuming at the step it had reached): a lost or stolen device must
    /// not keep an SOS from the team.
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
        let revoked = super::Event::DeviceRevoked {
            device_id: *id,
            at: now,
        };
        let released = self.alerts.release_held_by(id, now);
        let event = if released.is_empty() {
            revoked
        } else {
            let mut events = vec![revoked];
            events.extend(released.into_iter().map(super::Event::Alert));
            super::Event::Batch(events)
        };
        (RevokeOutcome::Revoked { revoked_at: now }, Some(event))
    }

    /// The number of the newest bootstrap invite, the only one that
    /// enrolls.
    pub fn latest_bootstrap(&self) -> Option<u64> {
        self.invites.values().filter_map(|i| i.bootstrap).max()
    }

    /// Device `id` registering `key` as its panic key: the event, none if
    /// it has this key already (a retry), `Err` if it has another, is not
    /// a defender's or is not enrolled.
    #[allow(clippy::result_unit_err)]
    pub fn decide_panic_key(
        &self,
        id: &DeviceId,
        key: IdentityPublicKey,
    ) -> Result<Option<super::Event>, ()> {
        let device = self.devices.get(id).ok_or(())?;
        match device.panic_key {
            Some(k) if k == key => Ok(None),
            Some(_) => Err(()),
            None if device.role != Role::Defender => Err(()),
            None => Ok(Some(super::Event::PanicKeyRegistered {
                device_id: *id,
                key,
            })),
        }
    }

    /// Whether any admin device is active.
    pub fn has_active_admin(&self) -> bool {
        self.staff.values().any(|r| *r == Role::Admin)
    }

    /// Whether staff device `id` can read alerts, and so may be paged,
    /// claim them and reply to defenders: it is on the newest roster, or
    /// there is no roster yet (before the organisation signs one, nobody
    /// can read anything and every staff device counts, so that an SOS
    /// still reaches someone), or no device on the roster is an active
    /// staff device any more (a roster left stale: every listed device
    /// revoked), for the same reason.
    pub fn may_read_alerts(&self, id: &DeviceId) -> bool {
        self.roster.as_ref().is_none_or(|r| {
            r.members.contains(id) || !r.members.iter().any(|m| self.staff.contains_key(m))
        })
    }

    /// Where device `id` stands with the newest roster.
    pub fn roster_standing(&self, id: &DeviceId) -> RosterStanding {
        match &self.roster {
            None => RosterStanding::NoRoster,
            Some(r) if r.members.contains(id) => RosterStanding::OnRoster,
            Some(_) => RosterStanding::NotOnRoster,
        }
    }
}
