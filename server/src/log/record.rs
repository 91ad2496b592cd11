//! The on-disk format of log records and checkpoints.
//!
//! A stored record (the value under its sequence number):
//!
//! ```text
//! version (1) = 1 | prev_hash (32) | key_id (16) | nonce (12) | ChaCha20-Poly1305 ciphertext + tag
//! ```
//!
//! * `key_id` is all zeros for the store's record key, or the keyed hash
//!   of a case id for records sealed under that case's subkey.
//! * The associated data is `"hotline/1 record\0" || seq (8, big-endian) ||
//!   version || prev_hash || key_id`: a record moved to another sequence
//!   number or another place in the chain does not open.
//! * The chain hash of a record is
//!   `SHA-256("hotline/1 chain\0" || seq (8) || stored record)`, and each
//!   record's `prev_hash` is the chain hash of the one before it. The first
//!   record's `prev_hash` is `SHA-256("hotline/1 genesis\0" || store id)`.
//!
//! A checkpoint signs the chain head:
//!
//! ```text
//! signed = "hotline/1 checkpoint\0" || store id (16) || seq (8) || head hash (32) || time (8)
//! stored = seq (8) | head hash (32) | time (8) | Ed25519 signature (64)
//! ```

use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce, Tag};
use ring::digest;
use ring::signature::{self, Ed25519KeyPair};

use hotline_proto::identity::fill_random;

/// Record format version.
pub const VERSION: u8 = 1;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 1 + 32 + 16 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// The key id of records sealed under the store's record key.
pub const MAIN_KEY_ID: [u8; 16] = [0; 16];

/// A 32-byte chain hash.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first record.
pub fn genesis(store_id: &[u8; 16]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"hotline/1 genesis\0");
    ctx.update(store_id);
    to_hash(ctx.finish())
}

fn to_hash(d: digest::Digest) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

/// The chain hash of a stored record.
pub fn chain_hash(seq: u64, stored: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"hotline/1 chain\0");
    ctx.update(&seq.to_be_bytes());
    ctx.update(stored);
    to_hash(ctx.finish())
}

fn aad(seq: u64, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(17 + 8 + 1 + 32 + 16);
    a.extend_from_slice(b"hotline/1 record\0");
    a.extend_from_slice(&seq.to_be_bytes());
    a.extend_from_slice(&header[..1 + 32 + 16]);
    a
}

/// The unencrypted parts of a stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The chain hash of the record before.
    pub prev_hash: Hash,
    /// Which key sealed it.
    pub key_id: [u8; 16],
}

/// Why a stored record is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Too short, or an unknown version.
    #[error("record is malformed")]
    Malformed,
    /// The ciphertext, tag or associated data was altered, or the key is
    /// wrong.
    #[error("record does not decrypt (altered, moved, or wrong key)")]
    Unauthentic,
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Randomness,
}

/// Reads the unencrypted header of a stored record.
pub fn header(stored: &[u8]) -> Result<RecordHeader, RecordError> {
    if stored.len() < HEADER_LEN + TAG_LEN || stored[0] != VERSION {
        return Err(RecordError::Malformed);
    }
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&stored[1..33]);
    let mut key_id = [0u8; 16];
    key_id.copy_from_slice(&stored[33..49]);
    Ok(RecordHeader { prev_hash, key_id })
}

/// Seals `plaintext` as record `seq` after `prev_hash`.
pub fn seal(
    key: &LessSafeKey,
    key_id: [u8; 16],
    seq: u64,
    prev_hash: &Hash,
    plaintext: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let mut nonce = [0u8; NONCE_LEN];
    // Random nonces: a sequence number can be reused after a crash lost
    // an unacknowledged record, so it must not be the nonce.
    fill_random(&mut nonce).map_err(|_| RecordError::Randomness)?;
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(VERSION);
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&key_id);
    out.extend_from_slice(&nonce);
    let aad = aad(seq, &out);
    out.extend_from_slice(plaintext);
    let tag: Tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut out[HEADER_LEN..],
        )
        .map_err(|_| RecordError::Malformed)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens stored record `seq` with `key`.
pub fn open(key: &LessSafeKey, seq: u64, stored: &[u8]) -> Result<Vec<u8>, RecordError> {
    header(stored)?;
    let nonce: [u8; NONCE_LEN] = stored[49..HEADER_LEN]
        .try_into()
        .map_err(|_| RecordError::Malformed)?;
    let aad = aad(seq, stored);
    let mut body = stored[HEADER_LEN..].to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut body,
        )
        .map_err(|_| RecordError::Unauthentic)?;
    let len = plain.len();
    body.truncate(len);
    Ok(body)
}

/// A signed statement that the chain had `head` at `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence number of the head record.
    pub seq: u64,
    /// Its chain hash.
    pub head: Hash,
    /// When it was signed.
    pub time: u64,
    /// Ed25519 signature over `Checkpoint::signed_bytes`.
    pub signature: [u8; 64],
}

/// Bytes in a stored checkpoint.
pub const CHECKPOINT_LEN: usize = 8 + 32 + 8 + 64;

impl Checkpoint {
    fn signed_bytes(store_id: &[u8; 16], seq: u64, head: &Hash, time: u64) -> Vec<u8> {
        let mut m = Vec::with_capacity(21 + 16 + 8 + 32 + 8);
        m.extend_from_slice(b"hotline/1 checkpoint\0");
        m.extend_from_slice(store_id);
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(head);
        m.extend_from_slice(&time.to_be_bytes());
        m
    }

    /// Signs the head.
    pub fn sign(
        key: &Ed25519KeyPair,
        store_id: &[u8; 16],
        seq: u64,
        head: Hash,
        time: u64,
    ) -> Checkpoint {
        let sig = key.sign(&Self::signed_bytes(store_id, seq, &head, time));
        let mut signature = [0u8; 64];
        signature.copy_from_slice(sig.as_ref());
        Checkpoint {
            seq,
            head,
            time,
            signature,
        }
    }

    /// Whether the signature verifies under `public_key`.
    pub fn verify(&self, public_key: &[u8], store_id: &[u8; 16]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
            .verify(
                &Self::signed_bytes(store_id, self.seq, &self.head, self.time),
                &self.signature,
            )
            .is_ok()
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(CHECKPOINT_LEN);
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.head);
        b.extend_from_slice(&self.time.to_be_bytes());
        b.extend_from_slice(&self.signature);
        b
    }

    /// Parses the stored form.
    pub fn from_bytes(b: &[u8]) -> Option<Checkpoint> {
        if b.len() != CHECKPOINT_LEN {
            return None;
        }
        Some(Checkpoint {
            seq: u64::from_be_bytes(b[..8].try_into().ok()?),
            head: b[8..40].try_into().ok()?,
            time: u64::from_be_bytes(b[40..48].try_into().ok()?),
            signature: b[48..].try_into().ok()?,
        })
    }
}

/// Prefix of an exported checkpoint.
pub const EXPORT_PREFIX: &str = "hotline-checkpoint:1:";

impl Checkpoint {
    /// One line an operator can keep off the server:
    /// `hotline-checkpoint:1:<store id>:<seq>:<head>:<time>:<signature>`
    /// (ids, hashes and signature in hex).
    pub fn export(&self, store_id: &[u8; 16]) -> String {
        use hotline_proto::identity::hex;
        format!(
            "{EXPORT_PREFIX}{}:{}:{}:{}:{}",
            hex(store_id),
            self.seq,
            hex(&self.head),
            self.time,
            hex(&self.signature)
        )
    }

    /// Parses an exported checkpoint, returning the store id it names.
    pub fn parse_export(text: &str) -> Option<([u8; 16], Checkpoint)> {
        use hotline_proto::identity::unhex;
        let rest = text.trim().strip_prefix(EXPORT_PREFIX)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [store, seq, head, time, sig] = parts.as_slice() else {
            return None;
        };
        Some((
            unhex(store)?.try_into().ok()?,
            Checkpoint {
                seq: seq.parse().ok()?,
                head: unhex(head)?.try_into().ok()?,
                time: time.parse().ok()?,
                signature: unhex(sig)?.try_into().ok()?,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead::{CHACHA20_POLY1305, UnboundKey};

    fn key(b: u8) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[b; 32]).expect("key"))
    }

    #[test]
    fn a_record_opens_only_where_it_was_sealed() {
        let k = key(1);
        let prev = genesis(&[0; 16]);
        let stored = seal(&k, MAIN_KEY_ID, 7, &prev, b"payload").expect("seal");
        assert_eq!(open(&k, 7, &stored).expect("open"), b"payload");
        assert_eq!(header(&stored).expect("header").prev_hash, prev);
        // Another sequence number, another key, any flipped byte: refused.
        assert_eq!(open(&k, 8, &stored), Err(RecordError::Unauthentic));
        assert_eq!(open(&key(2), 7, &stored), Err(RecordError::Unauthentic));
        for i in 1..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x80;
            assert!(open(&k, 7, &bad).is_err(), "byte {i}");
        }
        let mut bad = stored.clone();
        bad[0] = 2;
        assert_eq!(open(&k, 7, &bad), Err(RecordError::Malformed));
        assert_eq!(open(&k, 7, &stored[..20]), Err(RecordError::Malformed));
    }

    #[test]
    fn the_plaintext_is_not_in_the_stored_bytes() {
        let stored =
            seal(&key(1), MAIN_KEY_ID, 1, &[0; 32], b"MARKER-MARKER-MARKER").expect("seal");
        assert!(!stored.windows(6).any(|w| w == b"MARKER"));
    }

    #[test]
    fn checkpoints_verify_and_round_trip() {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[3; 32]).expect("key");
        let cp = Checkpoint::sign(&pair, &[1; 16], 10, [5; 32], 99);
        let pk = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        assert!(cp.verify(&pk, &[1; 16]));
        assert!(!cp.verify(&pk, &[2; 16]));
        let parsed = Checkpoint::from_bytes(&cp.to_bytes()).expect("parses");
        assert_eq!(parsed, cp);
        let exported = cp.export(&[1; 16]);
        assert_eq!(Checkpoint::parse_export(&exported), Some(([1; 16], cp)));
        assert_eq!(
            Checkpoint::parse_export(&exported[..exported.len() - 2]),
            None
        );
        let mut moved = cp;
        moved.seq = 11;
        assert!(!moved.verify(&pk, &[1; 16]));
    }
}
