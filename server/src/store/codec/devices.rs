//! Stored forms of invites and devices.

use hotline_proto::{DeviceId, IdentityPublicKey};
use prost::Message;

use super::{CodecError, digest, role_code, role_from_code};
use crate::domain::devices::{Device, InviteRecord};

#[derive(Clone, PartialEq, Message)]
pub(super) struct InviteRow {
    #[prost(bytes = "vec", tag = "1")]
    digest: Vec<u8>,
    #[prost(int32, tag = "2")]
    role: i32,
    #[prost(uint64, tag = "3")]
    created_at: u64,
    #[prost(uint64, tag = "4")]
    expires_at: u64,
    #[prost(uint64, tag = "5")]
    used_at: u64,
    /// 0: not a bootstrap invite (and absent, so older rows read as such).
    #[prost(uint64, tag = "6")]
    bootstrap: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct DeviceRow {
    #[prost(bytes = "vec", tag = "1")]
    identity_key: Vec<u8>,
    #[prost(int32, tag = "2")]
    role: i32,
    #[prost(uint64, tag = "3")]
    enrolled_at: u64,
    #[prost(uint64, tag = "4")]
    revoked_at: u64,
    /// Empty (no panic key: staff, and devices enrolled before panic keys
    /// existed), or 32 bytes.
    #[prost(bytes = "vec", tag = "5")]
    panic_key: Vec<u8>,
    /// Empty (not kept: a device enrolled before issue 12 kept it), or the
    /// SHA-256 of the token of the invite it enrolled with. In an
    /// enrollment event it equals `EnrolledRow.digest`; its presence there
    /// is what makes the state keep it.
    #[prost(bytes = "vec", tag = "6")]
    invite_digest: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct EnrolledRow {
    #[prost(bytes = "vec", tag = "1")]
    digest: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    device: Option<DeviceRow>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct RevokedRow {
    #[prost(bytes = "vec", tag = "1")]
    pub(super) device_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub(super) at: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct PanicKeyRow {
    #[prost(bytes = "vec", tag = "1")]
    device_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
}

pub(super) fn panic_key_row(device_id: &DeviceId, key: &IdentityPublicKey) -> PanicKeyRow {
    PanicKeyRow {
        device_id: device_id.as_bytes().to_vec(),
        key: key.as_bytes().to_vec(),
    }
}

pub(super) fn panic_key_from(
    row: &PanicKeyRow,
) -> Result<(DeviceId, IdentityPublicKey), CodecError> {
    let key: [u8; 32] = row
        .key
        .as_slice()
        .try_into()
        .map_err(|_| CodecError("panic key of the wrong length"))?;
    Ok((
        super::device_id(&row.device_id)?,
        IdentityPublicKey::from_bytes(key),
    ))
}

pub(super) fn invite_row(digest: &[u8; 32], i: &InviteRecord) -> InviteRow {
    InviteRow {
        digest: digest.to_vec(),
        role: role_code(i.role),
        created_at: i.created_at,
        expires_at: i.expires_at,
        used_at: i.used_at.unwrap_or(0),
        bootstrap: i.bootstrap.unwrap_or(0),
    }
}

pub(super) fn invite_from(row: &InviteRow) -> Result<([u8; 32], InviteRecord), CodecError> {
    Ok((
        digest(&row.digest)?,
        InviteRecord {
            role: role_from_code(row.role)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: (row.used_at != 0).then_some(row.used_at),
            bootstrap: (row.bootstrap != 0).then_some(row.bootstrap),
        },
    ))
}

pub(super) fn device_row(d: &Device) -> DeviceRow {
    DeviceRow {
        identity_key: d.identity_key.as_bytes().to_vec(),
        role: role_code(d.role),
        enrolled_at: d.enrolled_at,
        revoked_at: d.revoked_at.unwrap_or(0),
        panic_key: d
            .panic_key
            .map(|k| k.as_bytes().to_vec())
            .unwrap_or_default(),
        invite_digest: d.invite_digest.map(|g| g.to_vec()).unwrap_or_default(),
    }
}

pub(super) fn device_from(row: &DeviceRow) -> Result<Device, CodecError> {
    let key: [u8; 32] = row
        .identity_key
        .as_slice()
        .try_into()
        .map_err(|_| CodecError("identity key of the wrong length"))?;
    let identity_key = IdentityPublicKey::from_bytes(key);
    let panic_key = match row.panic_key.len() {
        0 => None,
        _ => Some(IdentityPublicKey::from_bytes(
            row.panic_key
                .as_slice()
                .try_into()
                .map_err(|_| CodecError("panic key of the wrong length"))?,
        )),
    };
    let invite_digest = match row.invite_digest.len() {
        0 => None,
        _ => Some(digest(&row.invite_digest)?),
    };
    Ok(Device {
        id: identity_key.device_id(),
        identity_key,
        role: role_from_code(row.role)?,
        enrolled_at: row.enrolled_at,
        revoked_at: (row.revoked_at != 0).then_some(row.revoked_at),
        panic_key,
        invite_digest,
    })
}

pub(super) fn enrolled_row(digest: &[u8; 32], device: &Device) -> EnrolledRow {
    EnrolledRow {
        digest: digest.to_vec(),
        device: Some(device_row(device)),
    }
}

pub(super) fn enrolled_from(row: &EnrolledRow) -> Result<([u8; 32], Device), CodecError> {
    let device = row
        .device
        .as_ref()
        .ok_or(CodecError("enrollment without device"))?;
    let spent = digest(&row.digest)?;
    let device = device_from(device)?;
    if device.invite_digest.is_some_and(|d| d != spent) {
        return Err(CodecError("an enrollment naming two invites"));
    }
    Ok((spent, device))
}

pub(super) fn revoked_row(device_id: &DeviceId, at: u64) -> RevokedRow {
    RevokedRow {
        device_id: device_id.as_bytes().to_vec(),
        at,
    }
}
