//! Sealing a case event under its case key, and opening it
//! (docs/protocol.md, sections 9.1 and 9.2).
//!
//! 1. The content ([`CaseEventContent`]) is encoded and padded to the
//!    envelope buckets (1, 4, 16 or 64 KiB), so an event's size says only
//!    its bucket.
//! 2. It is sealed with ChaCha20-Poly1305 under the key of the case's
//!    current epoch, with associated data binding the case, the epoch, the
//!    author and the event id.
//! 3. The body, with a commitment to the key, is signed by the author's
//!    identity key. Readers check the signature, then the commitment,
//!    before decrypting.

use prost::Message as _;
use ring::aead::{Aad, Nonce};
use zeroize::Zeroizing;

use crate::e2e::envelope::{EnvelopeError, pad, unpad};
use crate::e2e::suite::Randomness;
use crate::error::DecodeError;
use crate::identity::{IdentityKeyPair, IdentityPublicKey};
use crate::pb;

use super::{CaseControl, CaseId, EventHeader, ID_LEN, SIGNATURE_LABEL, SignedCaseEvent, VERSION};

pub use super::key::CaseKey;
pub use crate::pb::CaseEventContent;

/// Why a case event could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseEventError {
    /// The content does not fit the largest bucket.
    #[error("the case event is too large")]
    TooLarge,
    /// The signature does not verify under the author's key.
    #[error("the case event's signature does not verify")]
    BadSignature,
    /// The reader holds no key for the event's case and epoch.
    #[error("no key for this case and epoch is held")]
    NoKey,
    /// The key held for the epoch is not the one the event commits to.
    #[error("the case event was sealed under another key than the one held for its epoch")]
    WrongKey,
    /// Decryption failed: altered.
    #[error("the case event does not decrypt")]
    Undecryptable,
    /// A field is wrong.
    #[error("malformed case event: {0}")]
    Decode(#[from] DecodeError),
}

impl From<EnvelopeError> for CaseEventError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::TooLarge => CaseEventError::TooLarge,
            EnvelopeError::Decode(d) => CaseEventError::Decode(d),
            _ => CaseEventError::Undecryptable,
        }
    }
}

/// What an event says besides its content: where it goes and under which
/// key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The case.
    pub case_id: CaseId,
    /// 16 random bytes, made once for this event (a resend keeps it).
    pub event_id: [u8; ID_LEN],
    /// The roster the author is on.
    pub roster_version: u64,
    /// The epoch of `key`.
    pub epoch: u32,
    /// What the server must see.
    pub control: CaseControl,
}

/// The associated data of an event's ciphertext.
pub fn aad(case_id: &CaseId, epoch: u32, author: &[u8; 16], event_id: &[u8; ID_LEN]) -> Vec<u8> {
    let mut a = Vec::with_capacity(SIGNATURE_LABEL.len() + 1 + 16 + 4 + 16 + 16);
    a.extend_from_slice(SIGNATURE_LABEL);
    a.push(0);
    a.extend_from_slice(case_id.as_bytes());
    a.extend_from_slice(&epoch.to_be_bytes());
    a.extend_from_slice(author);
    a.extend_from_slice(event_id);
    a
}

/// Seals `content` under `key` (the key of `draft.epoch`) and signs it as
/// `author`, drawing the nonce from `rng`.
pub fn seal(
    author: &IdentityKeyPair,
    key: &CaseKey,
    draft: &EventDraft,
    content: &CaseEventContent,
    rng: &mut impl Randomness,
) -> Result<SignedCaseEvent, CaseEventError> {
    let padded = Zeroizing::new(pad(&content.encode_to_vec())?);
    seal_padded(author, key, draft, &padded, rng)
}

/// Seals `padded` as it is (which [`seal`] makes by padding an encoded
/// `CaseEventContent`); readers refuse anything else. [`seal`] is the way
/// to write an event; this exists so that the fuzz targets can make the
/// events a hostile staff device could.
pub fn seal_padded(
    author: &IdentityKeyPair,
    key: &CaseKey,
    draft: &EventDraft,
    padded: &[u8],
    rng: &mut impl Randomness,
) -> Result<SignedCaseEvent, CaseEventError> {
    if draft.epoch == 0 {
        return Err(DecodeError::Invalid("epoch").into());
    }
    let author_id = author.device_id();
    let mut buf = Zeroizing::new(padded.to_vec());
    let mut nonce = [0u8; 12];
    rng.fill(&mut nonce);
    let tag = key
        .aead()
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(
                &draft.case_id,
                draft.epoch,
                author_id.as_bytes(),
                &draft.event_id,
            )),
            buf.as_mut_slice(),
        )
        .map_err(|_| CaseEventError::TooLarge)?;
    let mut ciphertext = buf.to_vec();
    ciphertext.extend_from_slice(tag.as_ref());
    let body = pb::CaseEventBody {
        version: VERSION,
        case_id: draft.case_id.as_bytes().to_vec().into(),
        event_id: draft.event_id.to_vec().into(),
        author: author_id.as_bytes().to_vec().into(),
        roster_version: draft.roster_version,
        epoch: draft.epoch,
        key_commitment: key.commitment(&draft.case_id, draft.epoch).to_vec().into(),
        control: draft.control.to_wire(),
        nonce: nonce.to_vec().into(),
        ciphertext: ciphertext.into(),
    }
    .encode_to_vec();
    let signature = author.sign(&crate::e2e::signed_message(SIGNATURE_LABEL, &body));
    Ok(SignedCaseEvent {
        author: author_id,
        body,
        signature,
    })
}

impl SignedCaseEvent {
    /// Verifies the signature under the author's identity key, reads the
    /// header, asks `key_for(case, epoch)` for the key, checks it against
    /// the event's commitment, and decrypts. An event that fails any step
    /// is refused whole (nothing of it is returned).
    pub fn open(
        &self,
        author_key: &IdentityPublicKey,
        key_for: impl FnOnce(&CaseId, u32) -> Option<CaseKey>,
    ) -> Result<(EventHeader, CaseEventContent), CaseEventError> {
        self.verify_signature(author_key)
            .map_err(|_| CaseEventError::BadSignature)?;
        let header = self.header_unverified()?;
        let key = key_for(&header.case_id, header.epoch).ok_or(CaseEventError::NoKey)?;
        if key.commitment(&header.case_id, header.epoch) != header.key_commitment {
            return Err(CaseEventError::WrongKey);
        }
        let body = pb::CaseEventBody::decode(self.body.as_slice()).map_err(DecodeError::from)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&body.nonce);
        let mut buf = Zeroizing::new(body.ciphertext.to_vec());
        let plain = key
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(
                    &header.case_id,
                    header.epoch,
                    header.author.as_bytes(),
                    &header.event_id,
                )),
                buf.as_mut_slice(),
            )
            .map_err(|_| CaseEventError::Undecryptable)?;
        let content = CaseEventContent::decode(unpad(plain)?).map_err(DecodeError::from)?;
        Ok((header, content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::CaseState;

    struct Counter(u8);
    impl Randomness for Counter {
        fn fill(&mut self, out: &mut [u8]) {
            for b in out {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    fn draft() -> EventDraft {
        EventDraft {
            case_id: CaseId::from_bytes([1; 16]),
            event_id: [2; 16],
            roster_version: 3,
            epoch: 1,
            control: CaseControl {
                state: Some(CaseState::Open),
                ..CaseControl::default()
            },
        }
    }

    #[test]
    fn the_key_commitment_is_sha256_of_label_case_epoch_and_key() {
        // Computed independently: Python's hashlib.sha256(b"hotline/1 case
        // key\x00" + bytes([1]*16) + (1).to_bytes(4, "big") + bytes([7]*32)).
        let c = CaseKey::from_bytes([7; 32]).commitment(&CaseId::from_bytes([1; 16]), 1);
        assert_eq!(
            crate::identity::hex(&c),
            "6f4f5c1298cd5482459b0d551b7eb87ac029b3aca198d70464f711de3d164226"
        );
        // Another epoch or case: another commitment.
        let k = CaseKey::from_bytes([7; 32]);
        assert_ne!(k.commitment(&CaseId::from_bytes([1; 16]), 2), c);
        assert_ne!(k.commitment(&CaseId::from_bytes([9; 16]), 1), c);
    }

    type Change = Box<dyn Fn(&mut pb::CaseEventBody)>;

    /// `e`'s nonce and ciphertext under a body that differs as `change`
    /// says, committed and signed properly.
    fn moved(
        author: &IdentityKeyPair,
        key: &CaseKey,
        e: &SignedCaseEvent,
        change: impl FnOnce(&mut pb::CaseEventBody),
    ) -> SignedCaseEvent {
        let mut b = pb::CaseEventBody::decode(e.body.as_slice()).expect("body");
        change(&mut b);
        let case_id = CaseId::from_slice(&b.case_id, "case_id").expect("case id");
        b.key_commitment = key.commitment(&case_id, b.epoch).to_vec().into();
        let body = b.encode_to_vec();
        let signature = author.sign(&crate::e2e::signed_message(SIGNATURE_LABEL, &body));
        SignedCaseEvent {
            author: author.device_id(),
            body,
            signature,
        }
    }

    #[test]
    fn a_ciphertext_moved_to_another_event_case_or_epoch_does_not_open() {
        let author = IdentityKeyPair::from_seed(&[5; 32]);
        let key = CaseKey::from_bytes([7; 32]);
        let content = CaseEventContent {
            note: "moved".into(),
            ..Default::default()
        };
        let e = seal(&author, &key, &draft(), &content, &mut Counter(0)).expect("sealed");
        let same = moved(&author, &key, &e, |_| {});
        assert!(
            same.open(&author.public_key(), |_, _| Some(key.clone()))
                .is_ok()
        );
        let changes: [Change; 3] = [
            Box::new(|b| b.event_id = vec![3; 16].into()),
            Box::new(|b| b.case_id = vec![4; 16].into()),
            Box::new(|b| b.epoch = 2),
        ];
        for change in changes {
            let other = moved(&author, &key, &e, change);
            assert_eq!(
                other.open(&author.public_key(), |_, _| Some(key.clone())),
                Err(CaseEventError::Undecryptable)
            );
        }
        // Another author who copies the body under its own name: the
        // associated data names the author too.
        let thief = IdentityKeyPair::from_seed(&[6; 32]);
        let stolen = moved(&thief, &key, &e, |b| {
            b.author = thief.device_id().as_bytes().to_vec().into();
        });
        assert_eq!(
            stolen.open(&thief.public_key(), |_, _| Some(key.clone())),
            Err(CaseEventError::Undecryptable)
        );
    }

    #[test]
    fn content_is_padded_to_its_bucket_and_too_large_content_is_refused() {
        let author = IdentityKeyPair::from_seed(&[5; 32]);
        let key = CaseKey::from_bytes([7; 32]);
        let with_note = |len: usize| CaseEventContent {
            note: "x".repeat(len),
            ..Default::default()
        };
        // The note's tag and length take 2 to 4 bytes, the padding's
        // length prefix 4.
        for (len, bucket) in [
            (0, 1024),
            (1000, 1024),
            (1100, 4096),
            (4100, 16384),
            (20_000, 65536),
            (65_000, 65536),
        ] {
            let e =
                seal(&author, &key, &draft(), &with_note(len), &mut Counter(0)).expect("sealed");
            let h = e.header_unverified().expect("header");
            assert_eq!(h.ciphertext_len, bucket + 16, "note of {len} bytes");
            let (_, c) = e
                .open(&author.public_key(), |_, _| Some(key.clone()))
                .expect("opened");
            assert_eq!(c.note.len(), len);
            assert!(e.body.len() <= crate::case::MAX_EVENT_BODY_LEN);
        }
        assert_eq!(
            seal(&author, &key, &draft(), &with_note(65_536), &mut Counter(0)),
            Err(CaseEventError::TooLarge)
        );
    }

    #[test]
    fn the_ciphertext_lengths_are_the_envelope_buckets_and_a_tag() {
        let want: Vec<usize> = crate::e2e::envelope::BUCKETS
            .iter()
            .map(|b| b + 16)
            .collect();
        assert_eq!(crate::case::CIPHERTEXT_LENS.to_vec(), want);
    }

    #[test]
    fn an_event_is_not_sealed_at_epoch_0() {
        let author = IdentityKeyPair::from_seed(&[5; 32]);
        let key = CaseKey::from_bytes([7; 32]);
        let content = CaseEventContent::default();
        let mut d = draft();
        d.epoch = 0;
        assert!(matches!(
            seal(&author, &key, &d, &content, &mut Counter(0)),
            Err(CaseEventError::Decode(DecodeError::Invalid("epoch")))
        ));
    }

    #[test]
    fn an_event_opens_with_its_key_and_with_no_other() {
        let author = IdentityKeyPair::from_seed(&[5; 32]);
        let key = CaseKey::from_bytes([7; 32]);
        let content = CaseEventContent {
            timestamp: 1_800_000_000,
            note: "a note".into(),
            ..Default::default()
        };
        let e = seal(&author, &key, &draft(), &content, &mut Counter(0)).expect("sealed");
        let (h, c) = e
            .open(&author.public_key(), |_, _| Some(key.clone()))
            .expect("opened");
        assert_eq!(c, content);
        assert_eq!(h.control.state, Some(CaseState::Open));
        // The padded content is one bucket and its tag.
        assert_eq!(h.ciphertext_len, 1024 + 16);
        let other = CaseKey::from_bytes([8; 32]);
        assert_eq!(
            e.open(&author.public_key(), |_, _| Some(other)),
            Err(CaseEventError::WrongKey)
        );
        assert_eq!(
            e.open(&author.public_key(), |_, _| None),
            Err(CaseEventError::NoKey)
        );
        let stranger = IdentityKeyPair::from_seed(&[6; 32]);
        assert_eq!(
            e.open(&stranger.public_key(), |_, _| Some(key.clone())),
            Err(CaseEventError::BadSignature)
        );
    }
}
