//! What the server tells a device about itself and, for admins, about
//! every enrolled device. Invites and revocations need no type of their
//! own: their answers carry an [`crate::invite::Invite`] and a time.

use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityPublicKey};
use crate::pb;
use crate::role::Role;

/// What the server says about the requesting device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInfo {
    /// The requesting device.
    pub device_id: DeviceId,
    /// Its role.
    pub role: Role,
    /// Server time, seconds since the Unix epoch.
    pub server_time: u64,
    /// The server's software version.
    pub server_version: String,
    /// The server's storage: in full for admins, its state only (no
    /// reason, free space) for officers and coordinators, `None` for
    /// defenders.
    pub storage: Option<StorageInfo>,
}

/// The server's storage (in full for admins; only its state for
/// officers and coordinators, see `StatusInfo::storage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageInfo {
    /// Since when (Unix seconds) and why writes are refused, if they are.
    pub degraded: Option<(u64, String)>,
    /// Free bytes on the data directory's filesystem, if known.
    pub free_bytes: Option<u64>,
    /// Served read-only (a recovery choice).
    pub read_only: bool,
    /// The server's warning threshold for free space, if it sent one:
    /// free space under it is low.
    pub warn_below: Option<u64>,
}

impl StatusInfo {
    pub(crate) fn to_wire(&self) -> pb::StatusResponse {
        pb::StatusResponse {
            device_id: self.device_id.as_bytes().to_vec().into(),
            role: self.role.to_wire(),
            server_time: self.server_time,
            server_version: self.server_version.clone(),
            storage: self.storage.as_ref().map(|s| pb::StorageStatus {
                degraded: s.degraded.is_some(),
                degraded_since: s.degraded.as_ref().map_or(0, |(t, _)| *t),
                reason: s
                    .degraded
                    .as_ref()
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default(),
                free_bytes: s.free_bytes.unwrap_or(0),
                free_known: s.free_bytes.is_some(),
                read_only: s.read_only,
                warn_below_bytes: s.warn_below.unwrap_or(0),
            }),
        }
    }

    pub(crate) fn from_wire(s: pb::StatusResponse) -> Result<StatusInfo, DecodeError> {
        Ok(StatusInfo {
            device_id: DeviceId::from_slice(&s.device_id, "device_id")?,
            role: Role::from_wire_field(s.role, "role")?,
            server_time: s.server_time,
            server_version: s.server_version,
            storage: s.storage.map(|st| StorageInfo {
                degraded: st.degraded.then_some((st.degraded_since, st.reason)),
                free_bytes: st.free_known.then_some(st.free_bytes),
                read_only: st.read_only,
                warn_below: (st.warn_below_bytes > 0).then_some(st.warn_below_bytes),
            }),
        })
    }
}

/// One enrolled device, as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device.
    pub device_id: DeviceId,
    /// Its role.
    pub role: Role,
    /// When it enrolled, seconds since the Unix epoch.
    pub enrolled_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// Its identity key (what a roster entry must carry).
    pub identity_key: IdentityPublicKey,
    /// SHA-256 of the token of the invite it enrolled with
    /// ([`crate::invite::InviteToken::digest`]), if the server knows it:
    /// the device that made the invite names it by the label it gave.
    pub invite_digest: Option<[u8; 32]>,
}

impl DeviceInfo {
    pub(crate) fn to_wire(&self) -> pb::DeviceInfo {
        pb::DeviceInfo {
            device_id: self.device_id.as_bytes().to_vec().into(),
            role: self.role.to_wire(),
            enrolled_at: self.enrolled_at,
            revoked_at: self.revoked_at.unwrap_or(0),
            identity_key: self.identity_key.as_bytes().to_vec().into(),
            invite_digest: self
                .invite_digest
                .map(|d| d.to_vec())
                .unwrap_or_default()
                .into(),
        }
    }

    pub(crate) fn from_wire(d: pb::DeviceInfo) -> Result<DeviceInfo, DecodeError> {
        Ok(DeviceInfo {
            device_id: DeviceId::from_slice(&d.device_id, "device_id")?,
            role: Role::from_wire_field(d.role, "role")?,
            enrolled_at: d.enrolled_at,
            revoked_at: (d.revoked_at != 0).then_some(d.revoked_at),
            identity_key: IdentityPublicKey::from_slice(&d.identity_key, "identity_key")?,
            invite_digest: match d.invite_digest.len() {
                0 => None,
                _ => Some(
                    d.invite_digest[..]
                        .try_into()
                        .map_err(|_| DecodeError::Invalid("invite_digest"))?,
                ),
            },
        })
    }
}

/// One staff device's duty state, as [`crate::message::Response::Duty`]
/// lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DutyEntry {
    /// The device.
    pub device_id: DeviceId,
    /// Its role.
    pub role: Role,
    /// It went on duty (`set_duty`) and has not gone off since.
    pub declared: bool,
    /// The server's rota has it on shift now.
    pub on_shift: bool,
    /// It is not on the newest signed roster, so it is not paged.
    pub off_roster: bool,
}

impl DutyEntry {
    /// It counts as on duty (said so, or on shift).
    pub fn on_duty(&self) -> bool {
        self.declared || self.on_shift
    }

    pub(crate) fn to_wire(self) -> pb::DutyEntry {
        pb::DutyEntry {
            device_id: self.device_id.as_bytes().to_vec().into(),
            role: self.role.to_wire(),
            declared: self.declared,
            on_shift: self.on_shift,
            off_roster: self.off_roster,
        }
    }

    pub(crate) fn from_wire(d: pb::DutyEntry) -> Result<DutyEntry, DecodeError> {
        Ok(DutyEntry {
            device_id: DeviceId::from_slice(&d.device_id, "device_id")?,
            role: Role::from_wire_field(d.role, "role")?,
            declared: d.declared,
            on_shift: d.on_shift,
            off_roster: d.off_roster,
        })
    }
}
