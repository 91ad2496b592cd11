//! End-to-end messaging as the server answers it: the prekey bundles a
//! sender seals to, the envelopes waiting in an inbox, how far a sent
//! envelope got, and how much one request may carry.

use crate::e2e::envelope::SignedEnvelope;
use crate::e2e::prekey::SignedPrekey;
use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityPublicKey};
use crate::pb;
use crate::role::Role;

/// Most ids one mark-read or delivery request may name.
pub const MAX_IDS_PER_REQUEST: usize = 500;

/// Most prekeys one request may publish.
pub const MAX_PREKEYS_PER_REQUEST: usize = 200;
/// Most envelopes one inbox answer carries.
pub const MAX_INBOX_BATCH: u32 = 100;

/// One device's keys, as the server hands them to a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrekeyBundle {
    /// The device.
    pub device_id: DeviceId,
    /// Its identity key, as enrolled (staff clients check it against the
    /// roster; for defenders it is the enrolled key).
    pub identity_key: IdentityPublicKey,
    /// Its role.
    pub role: Role,
    /// One of its prekeys, signed by `identity_key`; `None` if it has
    /// published none.
    pub prekey: Option<SignedPrekey>,
}

impl PrekeyBundle {
    pub(crate) fn to_wire(&self) -> pb::PrekeyBundle {
        pb::PrekeyBundle {
            device_id: self.device_id.as_bytes().to_vec().into(),
            identity_key: self.identity_key.as_bytes().to_vec().into(),
            role: self.role.to_wire(),
            prekey: self.prekey.as_ref().map(SignedPrekey::to_wire),
        }
    }

    pub(crate) fn from_wire(b: pb::PrekeyBundle) -> Result<PrekeyBundle, DecodeError> {
        Ok(PrekeyBundle {
            device_id: DeviceId::from_slice(&b.device_id, "device_id")?,
            identity_key: IdentityPublicKey::from_slice(&b.identity_key, "identity_key")?,
            role: Role::from_wire_field(b.role, "role")?,
            prekey: b.prekey.map(SignedPrekey::from_wire).transpose()?,
        })
    }
}

/// One envelope waiting for this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    /// The server's id for it.
    pub id: u64,
    /// The envelope.
    pub envelope: SignedEnvelope,
    /// The sender's identity key as enrolled (checked by the receiver).
    pub sender_identity_key: IdentityPublicKey,
    /// The sender's panic key as enrolled, if it has one: an SOS sent
    /// without the passphrase is signed with it.
    pub sender_panic_key: Option<IdentityPublicKey>,
}

impl InboxItem {
    pub(crate) fn to_wire(&self) -> pb::InboxItem {
        pb::InboxItem {
            id: self.id,
            envelope: Some(self.envelope.to_wire()),
            sender_identity_key: self.sender_identity_key.as_bytes().to_vec().into(),
            sender_panic_key: self
                .sender_panic_key
                .map(|k| k.as_bytes().to_vec())
                .unwrap_or_default()
                .into(),
        }
    }

    pub(crate) fn from_wire(item: pb::InboxItem) -> Result<InboxItem, DecodeError> {
        Ok(InboxItem {
            id: item.id,
            envelope: SignedEnvelope::from_wire(
                item.envelope.ok_or(DecodeError::Missing("envelope"))?,
            )?,
            sender_identity_key: IdentityPublicKey::from_slice(
                &item.sender_identity_key,
                "sender_identity_key",
            )?,
            sender_panic_key: match item.sender_panic_key.len() {
                0 => None,
                _ => Some(IdentityPublicKey::from_slice(
                    &item.sender_panic_key,
                    "sender_panic_key",
                )?),
            },
        })
    }
}

/// How far one envelope got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryState {
    /// Its id.
    pub id: u64,
    /// Devices it was sealed to.
    pub recipients: u32,
    /// Devices that fetched and stored it.
    pub delivered: u32,
    /// Devices that showed it to their person.
    pub read: u32,
}

impl DeliveryState {
    pub(crate) fn to_wire(self) -> pb::DeliveryState {
        pb::DeliveryState {
            id: self.id,
            recipients: self.recipients,
            delivered: self.delivered,
            read: self.read,
        }
    }

    pub(crate) fn from_wire(d: pb::DeliveryState) -> DeliveryState {
        DeliveryState {
            id: d.id,
            recipients: d.recipients,
            delivered: d.delivered,
            read: d.read,
        }
    }
}
