//! The HPKE suite (RFC 9180) and the randomness the sealing code draws on.
//!
//! Suite 1: DHKEM(X25519, HKDF-SHA256) (KEM id 0x0020), HKDF-SHA256 (KDF id
//! 0x0001), ChaCha20-Poly1305 (AEAD id 0x0003), base mode.

use std::convert::Infallible;

use hpke::rand_core::{TryCryptoRng, TryRng};
use hpke::{Deserializable, Kem as _, Serializable};
use ring::digest;
use zeroize::Zeroizing;

/// Our suite number on the wire.
pub const SUITE: u32 = 1;
/// RFC 9180 identifiers of the suite: KEM, KDF, AEAD.
pub const HPKE_IDS: (u16, u16, u16) = (0x0020, 0x0001, 0x0003);

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// An X25519 public key used with HPKE.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncryptionPublicKey([u8; 32]);

impl EncryptionPublicKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EncryptionPublicKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for EncryptionPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EncryptionPublicKey({}…)",
            &crate::identity::hex(&self.0[..2])
        )
    }
}

/// An X25519 private key used with HPKE. Its bytes are wiped on drop.
#[derive(Clone)]
pub struct EncryptionKeyPair {
    secret: Zeroizing<[u8; 32]>,
    public: EncryptionPublicKey,
}

impl std::fmt::Debug for EncryptionKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl EncryptionKeyPair {
    /// A new key pair from `rng`.
    pub fn generate(rng: &mut impl Randomness) -> EncryptionKeyPair {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill(ikm.as_mut());
        Self::derive(ikm.as_ref())
    }

    /// The key pair RFC 9180's `DeriveKeyPair(ikm)` gives.
    pub fn derive(ikm: &[u8]) -> EncryptionKeyPair {
        let (sk, pk) = Kem::derive_keypair(ikm);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&sk.to_bytes());
        let mut public = [0u8; 32];
        public.copy_from_slice(&pk.to_bytes());
        EncryptionKeyPair {
            secret,
            public: EncryptionPublicKey(public),
        }
    }

    /// The key pair from its stored private key.
    pub fn from_secret(secret: &[u8; 32]) -> Option<EncryptionKeyPair> {
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret).ok()?;
        let pk = Kem::sk_to_pk(&sk);
        let mut public = [0u8; 32];
        public.copy_from_slice(&pk.to_bytes());
        Some(EncryptionKeyPair {
            secret: Zeroizing::new(*secret),
            public: EncryptionPublicKey(public),
        })
    }

    /// The private key bytes, to store (sealed) on the device.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The public key.
    pub fn public_key(&self) -> EncryptionPublicKey {
        self.public
    }
}

/// Base-mode HPKE single-shot seal to `recipient`. Returns `(enc, ciphertext)`.
pub(crate) fn hpke_seal(
    recipient: &EncryptionPublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl Randomness,
) -> Option<([u8; 32], Vec<u8>)> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.0).ok()?;
    let mut adapter = RngAdapter(rng);
    let (enc, ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &hpke::OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
        &mut adapter,
    )
    .ok()?;
    let mut e = [0u8; 32];
    e.copy_from_slice(&enc.to_bytes());
    Some((e, ct))
}

/// Base-mode HPKE single-shot open with `key`.
pub(crate) fn hpke_open(
    key: &EncryptionKeyPair,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(key.secret.as_ref()).ok()?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).ok()?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(&hpke::OpModeR::Base, &sk, &enc, info, ciphertext, aad)
        .ok()
}

/// Where sealing draws its randomness from: the operating system in use,
/// a fixed sequence for test vectors.
pub trait Randomness {
    /// Fills `out`.
    fn fill(&mut self, out: &mut [u8]);
}

/// The operating system's secure random generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRandomness;

impl Randomness for SystemRandomness {
    fn fill(&mut self, out: &mut [u8]) {
        // The OS generator does not fail once the process is running
        // (getrandom blocks until seeded); if it ever did, continuing with
        // predictable keys would be far worse than stopping.
        crate::identity::fill_random(out).expect("the operating system's random generator works");
    }
}

/// A fixed stream of bytes: `SHA-256(seed || counter)` blocks. For test
/// vectors only: never for real keys or messages.
#[derive(Debug, Clone)]
pub struct DeterministicRandomness {
    seed: Vec<u8>,
    counter: u64,
    buffer: Vec<u8>,
}

impl DeterministicRandomness {
    /// The stream for `seed`.
    pub fn new(seed: &[u8]) -> Self {
        DeterministicRandomness {
            seed: seed.to_vec(),
            counter: 0,
            buffer: Vec::new(),
        }
    }
}

impl Randomness for DeterministicRandomness {
    fn fill(&mut self, out: &mut [u8]) {
        for byte in out.iter_mut() {
            if self.buffer.is_empty() {
                let mut ctx = digest::Context::new(&digest::SHA256);
                ctx.update(&self.seed);
                ctx.update(&self.counter.to_be_bytes());
                self.counter += 1;
                self.buffer = ctx.finish().as_ref().to_vec();
                self.buffer.reverse();
            }
            *byte = self.buffer.pop().unwrap_or_default();
        }
    }
}

/// Lets hpke draw from a [`Randomness`].
struct RngAdapter<'a, R: Randomness>(&'a mut R);

impl<R: Randomness> TryRng for RngAdapter<'_, R> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl<R: Randomness> TryCryptoRng for RngAdapter<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{hex, unhex};

    /// RFC 9180 appendix A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20-Poly1305, base mode): the recipient key pair derived from
    /// ikmR, and the first encryption.
    #[test]
    fn rfc9180_a2_base_mode_vector() {
        let ikm_r =
            unhex("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df").expect("hex");
        let ikm_e =
            unhex("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b").expect("hex");
        let r = EncryptionKeyPair::derive(&ikm_r);
        assert_eq!(
            hex(r.public_key().as_bytes()),
            "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a"
        );
        // The RFC's skRm is 8057…e0fb; hpke 0.15 stores it clamped (…e07b),
        // the same X25519 scalar.
        assert_eq!(
            hex(r.secret_bytes()),
            "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e07b"
        );
        let e = EncryptionKeyPair::derive(&ikm_e);
        assert_eq!(
            hex(e.public_key().as_bytes()),
            "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a"
        );
        // hpke's DeriveKeyPair(random) path: feed it ikmE as the randomness.
        struct Fixed(Vec<u8>);
        impl Randomness for Fixed {
            fn fill(&mut self, out: &mut [u8]) {
                let n = out.len();
                out.copy_from_slice(&self.0[..n]);
                self.0.drain(..n);
            }
        }
        let info = unhex("4f6465206f6e2061204772656369616e2055726e").expect("hex");
        let aad = unhex("436f756e742d30").expect("hex");
        let pt = unhex("4265617574792069732074727574682c20747275746820626561757479").expect("hex");
        let (enc, ct) =
            hpke_seal(&r.public_key(), &info, &aad, &pt, &mut Fixed(ikm_e.clone())).expect("seal");
        assert_eq!(hex(&enc), hex(e.public_key().as_bytes()));
        assert_eq!(
            hex(&ct),
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"
        );
        assert_eq!(hpke_open(&r, &enc, &info, &aad, &ct).expect("open"), pt);
        assert!(hpke_open(&r, &enc, &info, b"other aad", &ct).is_none());
    }

    #[test]
    fn deterministic_randomness_is_a_fixed_stream() {
        let mut a = DeterministicRandomness::new(b"seed");
        let mut b = DeterministicRandomness::new(b"seed");
        let (mut x, mut y) = ([0u8; 50], [0u8; 50]);
        a.fill(&mut x);
        b.fill(&mut y[..20]);
        b.fill(&mut y[20..]);
        assert_eq!(x, y);
        assert_ne!(x[..32], x[32..50].repeat(2)[..32]);
    }
}
