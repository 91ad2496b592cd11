//! Device identity keys (Ed25519), signatures and device ids.
//!
//! Every device creates its own identity key pair; the public half is
//! registered at enrollment. The device id is derived from the public key,
//! so the server cannot give one key's id to another.

use std::fmt;
use std::str::FromStr;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use thiserror::Error;
use zeroize::Zeroizing;

/// Domain separation for device-id derivation.
const DEVICE_ID_CONTEXT: &[u8] = b"hotline/1 device-id\0";

/// Bytes in a device id.
pub const DEVICE_ID_LEN: usize = 16;
/// Bytes in an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes in an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes in the secret seed an identity key pair is made from.
pub const SEED_LEN: usize = 32;

/// A device id: the first 16 bytes of
/// `SHA-256("hotline/1 device-id\0" || identity public key)`.
///
/// Shown to people as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId([u8; DEVICE_ID_LEN]);

impl DeviceId {
    /// The id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; DEVICE_ID_LEN]) -> Self {
        DeviceId(bytes)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; DEVICE_ID_LEN] {
        &self.0
    }

    pub(crate) fn from_slice(
        bytes: &[u8],
        field: &'static str,
    ) -> Result<Self, crate::DecodeError> {
        Ok(DeviceId(
            bytes
                .try_into()
                .map_err(|_| crate::DecodeError::Invalid(field))?,
        ))
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// Device ids are identifiers of people's devices: `Debug` shows only a
/// prefix, so a stray `{:?}` cannot put a whole id in a log.
impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({}…)", &hex(&self.0[..2]))
    }
}

/// The text is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a device id is 32 hexadecimal digits")]
pub struct BadDeviceId;

impl FromStr for DeviceId {
    type Err = BadDeviceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = unhex(s.trim()).ok_or(BadDeviceId)?;
        Ok(DeviceId(bytes.try_into().map_err(|_| BadDeviceId)?))
    }
}

/// An Ed25519 public identity key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityPublicKey([u8; PUBLIC_KEY_LEN]);

/// A signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("signature does not verify")]
pub struct BadSignature;

impl IdentityPublicKey {
    /// The key from its 32 bytes. Any 32 bytes are accepted here; a key that
    /// is not a valid curve point simply never verifies a signature.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        IdentityPublicKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    pub(crate) fn from_slice(
        bytes: &[u8],
        field: &'static str,
    ) -> Result<Self, crate::DecodeError> {
        Ok(IdentityPublicKey(
            bytes
                .try_into()
                .map_err(|_| crate::DecodeError::Invalid(field))?,
        ))
    }

    /// The device id derived from this key.
    pub fn device_id(&self) -> DeviceId {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(DEVICE_ID_CONTEXT);
        ctx.update(&self.0);
        let d = ctx.finish();
        let mut id = [0u8; DEVICE_ID_LEN];
        id.copy_from_slice(&d.as_ref()[..DEVICE_ID_LEN]);
        DeviceId(id)
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), BadSignature> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, &signature.0)
            .map_err(|_| BadSignature)
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({}…)", &hex(&self.0[..2]))
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// The signature from its 64 bytes.
    pub fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Signature(bytes)
    }

    /// The signature's bytes.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    pub(crate) fn from_slice(
        bytes: &[u8],
        field: &'static str,
    ) -> Result<Self, crate::DecodeError> {
        Ok(Signature(
            bytes
                .try_into()
                .map_err(|_| crate::DecodeError::Invalid(field))?,
        ))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(..)")
    }
}

/// The secret seed of an identity key. Wiped from memory when dropped.
pub type IdentitySeed = Zeroizing<[u8; SEED_LEN]>;

/// The system random generator failed: the operating system could not
/// provide randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the system random number generator failed")]
pub struct RandomnessUnavailable;

/// Fills `out` from the operating system's secure random generator.
pub fn fill_random(out: &mut [u8]) -> Result<(), RandomnessUnavailable> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| RandomnessUnavailable)
}

/// A device's identity key pair.
pub struct IdentityKeyPair {
    pair: Ed25519KeyPair,
    public: IdentityPublicKey,
}

impl IdentityKeyPair {
    /// Makes a new key pair from fresh randomness, and returns it with its
    /// seed (what a keystore must keep, encrypted, to restore it).
    pub fn generate() -> Result<(IdentityKeyPair, IdentitySeed), RandomnessUnavailable> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        fill_random(seed.as_mut())?;
        let pair = IdentityKeyPair::from_seed(&seed);
        Ok((pair, seed))
    }

    /// Restores the key pair from its 32-byte seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> IdentityKeyPair {
        // `from_seed_unchecked` only fails on a wrong seed length, which the
        // array type rules out.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .expect("a 32-byte seed is always a valid Ed25519 private key");
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(pair.public_key().as_ref());
        IdentityKeyPair {
            pair,
            public: IdentityPublicKey(public),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> IdentityPublicKey {
        self.public
    }

    /// The device id derived from the public key.
    pub fn device_id(&self) -> DeviceId {
        self.public.device_id()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let sig = self.pair.sign(message);
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        Signature(out)
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Parses hexadecimal (either case). `None` on an odd length or a non-digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1 (empty message).
        let seed: [u8; 32] =
            unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .expect("hex")
                .try_into()
                .expect("32 bytes");
        let pair = IdentityKeyPair::from_seed(&seed);
        assert_eq!(
            hex(pair.public_key().as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = pair.sign(b"");
        assert_eq!(
            hex(sig.as_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(pair.public_key().verify(b"", &sig), Ok(()));
    }

    #[test]
    fn signatures_bind_key_and_message() {
        let (a, _) = IdentityKeyPair::generate().expect("randomness");
        let (b, _) = IdentityKeyPair::generate().expect("randomness");
        let sig = a.sign(b"message");
        assert_eq!(a.public_key().verify(b"message", &sig), Ok(()));
        assert_eq!(a.public_key().verify(b"messagf", &sig), Err(BadSignature));
        assert_eq!(b.public_key().verify(b"message", &sig), Err(BadSignature));
        let mut flipped = *sig.as_bytes();
        flipped[10] ^= 1;
        assert_eq!(
            a.public_key()
                .verify(b"message", &Signature::from_bytes(flipped)),
            Err(BadSignature)
        );
    }

    #[test]
    fn device_id_is_derived_from_the_key_and_parses_back() {
        let (a, seed) = IdentityKeyPair::generate().expect("randomness");
        let again = IdentityKeyPair::from_seed(&seed);
        assert_eq!(a.device_id(), again.device_id());
        let text = a.device_id().to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<DeviceId>(), Ok(a.device_id()));
        assert_eq!(text.to_uppercase().parse::<DeviceId>(), Ok(a.device_id()));
        assert_eq!("abc".parse::<DeviceId>(), Err(BadDeviceId));
        assert_eq!(text[..30].parse::<DeviceId>(), Err(BadDeviceId));
        assert_eq!("zz".repeat(16).parse::<DeviceId>(), Err(BadDeviceId));
    }

    #[test]
    fn debug_output_does_not_reveal_whole_ids_or_keys() {
        let (a, _) = IdentityKeyPair::generate().expect("randomness");
        let full = a.device_id().to_string();
        assert!(!format!("{:?}", a.device_id()).contains(&full));
        assert!(!format!("{a:?}").contains(&hex(a.public_key().as_bytes())));
    }
}
