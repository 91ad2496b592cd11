//! The device's identity key, sealed under a passphrase.
//!
//! File layout (all integers big-endian):
//!
//! ```text
//! magic "HLKS" (4) | version 1 (1) | PBKDF2 iterations (4) | salt (16) | nonce (12)
//! | ChaCha20-Poly1305 ciphertext of the 32-byte Ed25519 seed, with tag (48)
//! ```
//!
//! The key is PBKDF2-HMAC-SHA256(passphrase, salt, iterations); the header
//! (everything before the ciphertext) is the associated data, so a changed
//! iteration count or salt is detected like any other change.

use std::num::NonZeroU32;

use hotline_proto::identity::{IdentityKeyPair, IdentitySeed, SEED_LEN, fill_random};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::pbkdf2;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"HLKS";
const VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 4 + 1 + 4 + SALT_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Bytes in a sealed keystore file.
pub const SEALED_LEN: usize = HEADER_LEN + SEED_LEN + TAG_LEN;

/// PBKDF2 iterations for new keystores (OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Fewest iterations a keystore may declare; a file asking for fewer was
/// not written by this program and is refused.
pub const MIN_ITERATIONS: u32 = 100_000;
/// Most iterations a keystore may declare (bounds the time an opened file
/// can make us spend).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Shortest passphrase accepted for a new keystore.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// Why a keystore could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    /// The passphrase is wrong (or the file was altered).
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// The file is not a keystore of a version this program reads.
    #[error("the key file is damaged or not a hotline key file")]
    Damaged,
    /// The new passphrase is too short.
    #[error("the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Randomness,
}

fn derive_key(passphrase: &str, salt: &[u8], iterations: NonZeroU32) -> LessSafeKey {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase.as_bytes(),
        key.as_mut(),
    );
    // CHACHA20_POLY1305 takes exactly 32 bytes.
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key.as_ref()).expect("32-byte key"))
}

/// Seals `seed` under `passphrase` with `iterations` rounds of PBKDF2.
pub fn seal(
    seed: &IdentitySeed,
    passphrase: &str,
    iterations: u32,
) -> Result<Vec<u8>, KeystoreError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(KeystoreError::WeakPassphrase);
    }
    let rounds = NonZeroU32::new(iterations.clamp(MIN_ITERATIONS, MAX_ITERATIONS))
        .ok_or(KeystoreError::Damaged)?;
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut salt).map_err(|_| KeystoreError::Randomness)?;
    fill_random(&mut nonce).map_err(|_| KeystoreError::Randomness)?;
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&rounds.get().to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = derive_key(passphrase, &salt, rounds);
    let mut body = Zeroizing::new(seed.to_vec());
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..]),
            &mut body,
        )
        .map_err(|_| KeystoreError::Damaged)?;
    out.extend_from_slice(&body);
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// A key for the device's other local secrets (prekeys, replay state),
/// derived from the identity seed: `HKDF-SHA256(salt = "", ikm = seed,
/// info = "hotline/1 device storage")`.
pub type StorageKey = Zeroizing<[u8; 32]>;

fn storage_key(seed: &[u8; SEED_LEN]) -> StorageKey {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let mut out = Zeroizing::new([0u8; 32]);
    let info = [&b"hotline/1 device storage"[..]];
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"")
        .extract(seed)
        .expand(&info, Len)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("32 bytes is within HKDF-SHA256's output limit");
    out
}

/// Opens a sealed keystore.
pub fn open(sealed: &[u8], passphrase: &str) -> Result<IdentityKeyPair, KeystoreError> {
    open_with_storage_key(sealed, passphrase).map(|(k, _)| k)
}

/// Opens a sealed keystore and returns the seed itself (for keys other
/// than a device identity, such as the organisation root).
pub fn open_seed(
    sealed: &[u8],
    passphrase: &str,
) -> Result<Zeroizing<[u8; SEED_LEN]>, KeystoreError> {
    let mut out = Zeroizing::new([0u8; SEED_LEN]);
    open_raw(sealed, passphrase, |seed| out.copy_from_slice(seed))?;
    Ok(out)
}

/// Opens a sealed keystore, also deriving the device storage key.
pub fn open_with_storage_key(
    sealed: &[u8],
    passphrase: &str,
) -> Result<(IdentityKeyPair, StorageKey), KeystoreError> {
    let mut out = None;
    open_raw(sealed, passphrase, |seed| {
        out = Some((IdentityKeyPair::from_seed(seed), storage_key(seed)))
    })?;
    out.ok_or(KeystoreError::Damaged)
}

/// Checks the form of a sealed keystore before any key is derived: its
/// length, magic, version and iteration count. Returns the iteration
/// count, the header (the associated data) and the sealed seed.
fn read_header(sealed: &[u8]) -> Result<(NonZeroU32, &[u8], &[u8]), KeystoreError> {
    if sealed.len() != SEALED_LEN || &sealed[..4] != MAGIC || sealed[4] != VERSION {
        return Err(KeystoreError::Damaged);
    }
    let (header, body) = sealed.split_at(HEADER_LEN);
    let iterations = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(KeystoreError::Damaged);
    }
    let rounds = NonZeroU32::new(iterations).ok_or(KeystoreError::Damaged)?;
    Ok((rounds, header, body))
}

/// What the fuzz targets read a keystore file with: [`read_header`] (the
/// key derivation after it costs a tenth of a second by design, which
/// would stall a fuzzer). Returns the iteration count.
#[doc(hidden)]
pub fn fuzz_read_header(sealed: &[u8]) -> Result<u32, KeystoreError> {
    read_header(sealed).map(|(rounds, _, _)| rounds.get())
}

fn open_raw(
    sealed: &[u8],
    passphrase: &str,
    take: impl FnOnce(&[u8; SEED_LEN]),
) -> Result<(), KeystoreError> {
    let (rounds, header, body) = read_header(sealed)?;
    let salt = &header[9..9 + SALT_LEN];
    let nonce: [u8; NONCE_LEN] = header[9 + SALT_LEN..]
        .try_into()
        .map_err(|_| KeystoreError::Damaged)?;
    let key = derive_key(passphrase, salt, rounds);
    let mut buf = Zeroizing::new(body.to_vec());
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut buf,
        )
        .map_err(|_| KeystoreError::WrongPassphrase)?;
    let seed: &[u8; SEED_LEN] = (&*plain).try_into().map_err(|_| KeystoreError::Damaged)?;
    take(seed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_restores_the_same_identity() {
        let (pair, seed) = IdentityKeyPair::generate().expect("randomness");
        let sealed = seal(&seed, "correct horse", MIN_ITERATIONS).expect("seal");
        assert_eq!(sealed.len(), SEALED_LEN);
        let opened = open(&sealed, "correct horse").expect("open");
        assert_eq!(opened.public_key(), pair.public_key());
    }

    #[test]
    fn wrong_passphrase_and_any_flipped_byte_are_refused() {
        let (_, seed) = IdentityKeyPair::generate().expect("randomness");
        let sealed = seal(&seed, "correct horse", MIN_ITERATIONS).expect("seal");
        assert_eq!(
            open(&sealed, "correct horsf").err(),
            Some(KeystoreError::WrongPassphrase)
        );
        // Flip a byte of the salt, the nonce, the ciphertext and the tag.
        for i in [10, 30, 40, SEALED_LEN - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                open(&bad, "correct horse").err(),
                Some(KeystoreError::WrongPassphrase),
                "byte {i}"
            );
        }
        assert_eq!(
            open(&sealed[..SEALED_LEN - 1], "correct horse").err(),
            Some(KeystoreError::Damaged)
        );
        let mut bad_magic = sealed.clone();
        bad_magic[0] = b'X';
        assert_eq!(
            open(&bad_magic, "correct horse").err(),
            Some(KeystoreError::Damaged)
        );
        let mut few_rounds = sealed;
        few_rounds[5..9].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            open(&few_rounds, "correct horse").err(),
            Some(KeystoreError::Damaged)
        );
    }

    #[test]
    fn short_passphrases_are_refused() {
        let (_, seed) = IdentityKeyPair::generate().expect("randomness");
        assert_eq!(
            seal(&seed, "1234567", MIN_ITERATIONS).err(),
            Some(KeystoreError::WeakPassphrase)
        );
    }
}
