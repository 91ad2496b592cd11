//! Prekeys: X25519 public keys a device publishes so that others can seal
//! messages to it while it is offline, each signed by the device's identity
//! key so that the server cannot substitute its own.
//!
//! A device keeps one *last-resort* prekey (rotated on a schedule, used when
//! no one-time prekey is left) and a stock of *one-time* prekeys, each
//! handed out by the server once and deleted by the device after first use.

use prost::Message;

use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey, Signature};
use crate::pb;

use super::suite::EncryptionPublicKey;

pub(crate) const LABEL: &[u8] = b"hotline/1 prekey";

/// What a prekey is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrekeyKind {
    /// Used when no one-time prekey is left; rotated, not deleted on use.
    LastResort,
    /// Used once, then deleted.
    OneTime,
}

/// A verified prekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prekey {
    /// Its owner.
    pub device_id: DeviceId,
    /// Last-resort or one-time.
    pub kind: PrekeyKind,
    /// Unique per device.
    pub id: u32,
    /// The X25519 key.
    pub public_key: EncryptionPublicKey,
    /// When it was made.
    pub created_at: u64,
    /// After this, senders must not use it.
    pub expires_at: u64,
}

/// A prekey as it travels: the signed bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPrekey {
    /// The exact bytes signed (a `PrekeyBody`).
    pub body: Vec<u8>,
    /// The owner's signature.
    pub signature: Signature,
}

/// Why a prekey was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrekeyError {
    /// The signature does not verify under the owner's identity key.
    #[error("prekey signature does not verify")]
    BadSignature,
    /// The prekey belongs to another device than expected.
    #[error("prekey belongs to another device")]
    WrongDevice,
    /// The prekey has expired.
    #[error("prekey has expired")]
    Expired,
    /// The bytes do not decode.
    #[error("prekey does not decode: {0}")]
    Decode(#[from] DecodeError),
}

impl Prekey {
    /// Signs this prekey with its owner's identity.
    pub fn sign(&self, owner: &IdentityKeyPair) -> SignedPrekey {
        let body = pb::PrekeyBody {
            device_id: self.device_id.as_bytes().to_vec().into(),
            kind: match self.kind {
                PrekeyKind::LastResort => pb::PrekeyKind::LastResort as i32,
                PrekeyKind::OneTime => pb::PrekeyKind::OneTime as i32,
            },
            id: self.id,
            public_key: self.public_key.as_bytes().to_vec().into(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
        .encode_to_vec();
        let signature = owner.sign(&super::signed_message(LABEL, &body));
        SignedPrekey { body, signature }
    }
}

impl SignedPrekey {
    /// Verifies the signature with `owner`'s identity key (before parsing),
    /// then parses and checks the owner and expiry.
    pub fn verify(&self, owner: &IdentityPublicKey, now: u64) -> Result<Prekey, PrekeyError> {
        owner
            .verify(&super::signed_message(LABEL, &self.body), &self.signature)
            .map_err(|_| PrekeyError::BadSignature)?;
        let m = pb::PrekeyBody::decode(self.body.as_slice()).map_err(DecodeError::from)?;
        let device_id = DeviceId::from_slice(&m.device_id, "device_id")?;
        if device_id != owner.device_id() {
            return Err(PrekeyError::WrongDevice);
        }
        let kind = match pb::PrekeyKind::try_from(m.kind) {
            Ok(pb::PrekeyKind::LastResort) => PrekeyKind::LastResort,
            Ok(pb::PrekeyKind::OneTime) => PrekeyKind::OneTime,
            _ => return Err(DecodeError::Invalid("kind").into()),
        };
        let key: [u8; 32] = m
            .public_key
            .as_ref()
            .try_into()
            .map_err(|_| DecodeError::Invalid("public_key"))?;
        if now >= m.expires_at {
            return Err(PrekeyError::Expired);
        }
        Ok(Prekey {
            device_id,
            kind,
            id: m.id,
            public_key: EncryptionPublicKey::from_bytes(key),
            created_at: m.created_at,
            expires_at: m.expires_at,
        })
    }

    /// The wire form.
    pub(crate) fn to_wire(&self) -> pb::SignedPrekey {
        pb::SignedPrekey {
            body: self.body.clone().into(),
            signature: self.signature.as_bytes().to_vec().into(),
        }
    }

    /// From the wire form (not yet verified).
    pub(crate) fn from_wire(m: pb::SignedPrekey) -> Result<Self, DecodeError> {
        Ok(SignedPrekey {
            body: m.body.to_vec(),
            signature: Signature::from_slice(&m.signature, "signature")?,
        })
    }

    /// Encodes for storage or transport.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Decodes (the signature is checked by [`SignedPrekey::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(pb::SignedPrekey::decode(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::suite::{EncryptionKeyPair, SystemRandomness};

    fn sample(owner: &IdentityKeyPair) -> Prekey {
        Prekey {
            device_id: owner.device_id(),
            kind: PrekeyKind::OneTime,
            id: 7,
            public_key: EncryptionKeyPair::generate(&mut SystemRandomness).public_key(),
            created_at: 10,
            expires_at: 100,
        }
    }

    #[test]
    fn a_prekey_verifies_only_under_its_owner_and_before_expiry() {
        let owner = IdentityKeyPair::from_seed(&[1; 32]);
        let other = IdentityKeyPair::from_seed(&[2; 32]);
        let prekey = sample(&owner);
        let signed = prekey.sign(&owner);
        let round = SignedPrekey::decode(&signed.encode()).expect("decodes");
        assert_eq!(round.verify(&owner.public_key(), 50), Ok(prekey.clone()));
        assert_eq!(
            round.verify(&other.public_key(), 50),
            Err(PrekeyError::BadSignature)
        );
        assert_eq!(
            round.verify(&owner.public_key(), 100),
            Err(PrekeyError::Expired)
        );
        let mut bad = signed.clone();
        let last = bad.body.len() - 1;
        bad.body[last] ^= 1;
        assert_eq!(
            bad.verify(&owner.public_key(), 50),
            Err(PrekeyError::BadSignature)
        );
        // Signed by `other` for `owner`'s id: refused as the wrong device.
        let forged = Prekey {
            device_id: owner.device_id(),
            ..sample(&other)
        }
        .sign(&other);
        assert_eq!(
            forged.verify(&other.public_key(), 50),
            Err(PrekeyError::WrongDevice)
        );
    }
}
