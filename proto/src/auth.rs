//! The exact bytes a device signs to enroll and to authenticate.
//!
//! Both transcripts bind three things together: a fresh nonce chosen by the
//! server for this connection, a value exported from this connection's TLS
//! session (channel binding, RFC 5705 / RFC 8446 section 7.5), and the
//! device's identity. A signature captured on one connection is therefore
//! useless on any other, even one the attacker terminates itself.

use crate::identity::{DeviceId, IdentityPublicKey};
use crate::invite::InviteToken;

/// The TLS exporter label for channel binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-hotline/1 channel binding";
/// The TLS exporter context (empty).
pub const EXPORTER_CONTEXT: &[u8] = b"";
/// Bytes exported from the TLS session for channel binding.
pub const CHANNEL_BINDING_LEN: usize = 32;
/// Bytes in the server's nonce.
pub const NONCE_LEN: usize = 32;

const DEVICE_AUTH_CONTEXT: &[u8] = b"hotline/1 device-auth\0";
const ENROLL_CONTEXT: &[u8] = b"hotline/1 enroll\0";
const PANIC_AUTH_CONTEXT: &[u8] = b"hotline/1 panic-auth\0";

/// The server's per-connection challenge.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce(pub [u8; NONCE_LEN]);

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonce(..)")
    }
}

impl Nonce {
    /// A fresh nonce from the system's secure random generator.
    pub fn random() -> Result<Nonce, crate::identity::RandomnessUnavailable> {
        let mut n = [0u8; NONCE_LEN];
        crate::identity::fill_random(&mut n)?;
        Ok(Nonce(n))
    }
}

/// The keying material exported from the connection's TLS session with
/// [`EXPORTER_LABEL`] and [`EXPORTER_CONTEXT`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChannelBinding(pub [u8; CHANNEL_BINDING_LEN]);

impl std::fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelBinding(..)")
    }
}

/// What an enrolled device signs to authenticate:
/// `"hotline/1 device-auth\0" || nonce (32) || channel binding (32) || device id (16)`.
pub fn device_auth_transcript(
    nonce: &Nonce,
    binding: &ChannelBinding,
    device: &DeviceId,
) -> Vec<u8> {
    let mut t = Vec::with_capacity(DEVICE_AUTH_CONTEXT.len() + 32 + 32 + 16);
    t.extend_from_slice(DEVICE_AUTH_CONTEXT);
    t.extend_from_slice(&nonce.0);
    t.extend_from_slice(&binding.0);
    t.extend_from_slice(device.as_bytes());
    t
}

/// What a defender device signs with its panic key to open a panic
/// session (one that may only raise alerts and check in):
/// `"hotline/1 panic-auth\0" || nonce (32) || channel binding (32) || device id (16)`.
/// The distinct label keeps a signature of one kind from passing as the
/// other.
pub fn panic_auth_transcript(
    nonce: &Nonce,
    binding: &ChannelBinding,
    device: &DeviceId,
) -> Vec<u8> {
    let mut t = Vec::with_capacity(PANIC_AUTH_CONTEXT.len() + 32 + 32 + 16);
    t.extend_from_slice(PANIC_AUTH_CONTEXT);
    t.extend_from_slice(&nonce.0);
    t.extend_from_slice(&binding.0);
    t.extend_from_slice(device.as_bytes());
    t
}

/// What a new device signs to enroll when it also registers a panic key:
/// [`enroll_transcript`] followed by the panic public key (32 bytes).
/// Without one it is exactly [`enroll_transcript`].
pub fn enroll_transcript_with_panic_key(
    nonce: &Nonce,
    binding: &ChannelBinding,
    identity: &IdentityPublicKey,
    token: &InviteToken,
    panic_key: Option<&IdentityPublicKey>,
) -> Vec<u8> {
    let mut t = enroll_transcript(nonce, binding, identity, token);
    if let Some(k) = panic_key {
        t.extend_from_slice(k.as_bytes());
    }
    t
}

/// What a new device signs to enroll:
/// `"hotline/1 enroll\0" || nonce (32) || channel binding (32) || identity key (32) || invite token (32)`.
pub fn enroll_transcript(
    nonce: &Nonce,
    binding: &ChannelBinding,
    identity: &IdentityPublicKey,
    token: &InviteToken,
) -> Vec<u8> {
    let mut t = Vec::with_capacity(ENROLL_CONTEXT.len() + 32 * 4);
    t.extend_from_slice(ENROLL_CONTEXT);
    t.extend_from_slice(&nonce.0);
    t.extend_from_slice(&binding.0);
    t.extend_from_slice(identity.as_bytes());
    t.extend_from_slice(token.as_bytes());
    t
}

/// The hash of the TLS 1.3 cipher suite a connection negotiated, which the
/// exporter uses: SHA-256 for `TLS_AES_128_GCM_SHA256` and
/// `TLS_CHACHA20_POLY1305_SHA256`, SHA-384 for `TLS_AES_256_GCM_SHA384`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

/// The channel binding as RFC 8446 §7.5 computes it from the connection's
/// `exporter_master_secret` (what a TLS stack logs as `EXPORTER_SECRET`):
/// `HKDF-Expand-Label(Derive-Secret(secret, EXPORTER_LABEL, ""), "exporter",
/// Hash(EXPORTER_CONTEXT), 32)`. TLS stacks compute this themselves; it is
/// here so that the published vector (`docs/test-vectors/channel-binding.txt`)
/// can be checked, and checked against a real TLS stack, by the test suite.
pub fn channel_binding_from_exporter_secret(
    hash: SuiteHash,
    exporter_secret: &[u8],
) -> ChannelBinding {
    let (alg, digest) = match hash {
        SuiteHash::Sha256 => (ring::hkdf::HKDF_SHA256, &ring::digest::SHA256),
        SuiteHash::Sha384 => (ring::hkdf::HKDF_SHA384, &ring::digest::SHA384),
    };
    let empty = ring::digest::digest(digest, b"");
    let derived = hkdf_expand_label(
        alg,
        exporter_secret,
        EXPORTER_LABEL,
        empty.as_ref(),
        digest.output_len(),
    );
    let context = ring::digest::digest(digest, EXPORTER_CONTEXT);
    let out = hkdf_expand_label(
        alg,
        &derived,
        b"exporter",
        context.as_ref(),
        CHANNEL_BINDING_LEN,
    );
    let mut binding = [0u8; CHANNEL_BINDING_LEN];
    binding.copy_from_slice(&out);
    ChannelBinding(binding)
}

/// RFC 8446 §7.1 `HKDF-Expand-Label(secret, label, context, length)`.
fn hkdf_expand_label(
    alg: ring::hkdf::Algorithm,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    length: usize,
) -> Vec<u8> {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    // Lengths here are fixed and small (labels under 50 bytes, digests,
    // outputs of at most 48 bytes), so the casts cannot truncate.
    let out_len = (length as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let context_len = [context.len() as u8];
    let info: [&[u8]; 6] = [
        &out_len,
        &label_len,
        b"tls13 ",
        label,
        &context_len,
        context,
    ];
    let mut out = vec![0u8; length];
    ring::hkdf::Prk::new_less_safe(alg, secret)
        .expand(&info, Len(length))
        .and_then(|okm| okm.fill(&mut out))
        .unwrap_or_else(|_| unreachable!("a length ring's HKDF accepts"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityKeyPair, hex};

    #[test]
    fn transcripts_have_the_documented_layout() {
        let nonce = Nonce([1; 32]);
        let binding = ChannelBinding([2; 32]);
        let pair = IdentityKeyPair::from_seed(&[3; 32]);
        let t = device_auth_transcript(&nonce, &binding, &pair.device_id());
        assert_eq!(t.len(), 22 + 32 + 32 + 16);
        assert!(t.starts_with(b"hotline/1 device-auth\0"));
        assert_eq!(&t[22..54], &[1; 32]);
        assert_eq!(&t[54..86], &[2; 32]);
        assert_eq!(&t[86..], pair.device_id().as_bytes());

        let token = InviteToken::from_bytes([4; 32]);
        let e = enroll_transcript(&nonce, &binding, &pair.public_key(), &token);
        assert_eq!(e.len(), 17 + 32 * 4);
        assert!(e.starts_with(b"hotline/1 enroll\0"));
        assert_eq!(&e[81..113], pair.public_key().as_bytes());
        assert_eq!(&e[113..], &[4; 32]);

        let panic = IdentityKeyPair::from_seed(&[5; 32]).public_key();
        let with = enroll_transcript_with_panic_key(
            &nonce,
            &binding,
            &pair.public_key(),
            &token,
            Some(&panic),
        );
        assert_eq!(&with[..e.len()], e.as_slice());
        assert_eq!(&with[e.len()..], panic.as_bytes());
        let without =
            enroll_transcript_with_panic_key(&nonce, &binding, &pair.public_key(), &token, None);
        assert_eq!(without, e);

        let p = panic_auth_transcript(&nonce, &binding, &pair.device_id());
        assert_eq!(p.len(), 21 + 32 + 32 + 16);
        assert!(p.starts_with(b"hotline/1 panic-auth\0"));
        assert_eq!(&p[21..], &t[22..], "the same fields after another label");
    }

    #[test]
    fn a_signature_does_not_carry_over_to_another_connection() {
        let pair = IdentityKeyPair::from_seed(&[9; 32]);
        let nonce = Nonce([1; 32]);
        let t1 = device_auth_transcript(&nonce, &ChannelBinding([2; 32]), &pair.device_id());
        let t2 = device_auth_transcript(&nonce, &ChannelBinding([3; 32]), &pair.device_id());
        let sig = pair.sign(&t1);
        assert!(pair.public_key().verify(&t1, &sig).is_ok());
        assert!(pair.public_key().verify(&t2, &sig).is_err());
        // A fixed vector for docs/protocol.md readers.
        assert_eq!(hex(&t1[..4]), "686f746c");
    }
}
