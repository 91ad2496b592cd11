//! The organisation's root key (Ed25519). It is created and kept offline by
//! an admin, and signs the staff roster. Its public half travels in every
//! invite; clients pin it at enrollment.

use std::fmt;

use ring::digest;

use crate::error::DecodeError;
use crate::identity::{
    BadSignature, IdentityKeyPair, IdentityPublicKey, RandomnessUnavailable, Signature, hex,
};

/// The root's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgPublicKey([u8; 32]);

impl OrgPublicKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        OrgPublicKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn from_slice(bytes: &[u8], field: &'static str) -> Result<Self, DecodeError> {
        Ok(OrgPublicKey(
            bytes.try_into().map_err(|_| DecodeError::Invalid(field))?,
        ))
    }

    /// `SHA-256("hotline/1 org root" || 0x00 || key)`, shown in groups of
    /// four hex digits for comparing over a phone.
    pub fn fingerprint(&self) -> String {
        let d = digest::digest(
            &digest::SHA256,
            &super::signed_message(b"hotline/1 org root", &self.0),
        );
        hex(d.as_ref())
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks a signature by the root.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), BadSignature> {
        IdentityPublicKey::from_bytes(self.0).verify(message, signature)
    }
}

impl fmt::Debug for OrgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgPublicKey({})", &hex(&self.0)[..8])
    }
}

/// The root key pair. Lives on the admin's offline machine only.
#[derive(Debug)]
pub struct OrgKeyPair(IdentityKeyPair);

impl OrgKeyPair {
    /// A new root from fresh randomness, with the seed to keep.
    pub fn generate() -> Result<(OrgKeyPair, crate::identity::IdentitySeed), RandomnessUnavailable>
    {
        let (pair, seed) = IdentityKeyPair::generate()?;
        Ok((OrgKeyPair(pair), seed))
    }

    /// The root from its seed.
    pub fn from_seed(seed: &[u8; 32]) -> OrgKeyPair {
        OrgKeyPair(IdentityKeyPair::from_seed(seed))
    }

    /// The public key.
    pub fn public_key(&self) -> OrgPublicKey {
        OrgPublicKey(*self.0.public_key().as_bytes())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.0.sign(message)
    }
}
