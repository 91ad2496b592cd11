//! Envelopes: one message sealed once, readable by each chosen device.
//!
//! 1. The content (a random message id, the sender's counter, a timestamp
//!    and the message: see [`super::content`]) is encoded, length-prefixed and zero-padded to a fixed
//!    bucket size, so an SOS looks like any other short message.
//! 2. It is sealed with ChaCha20-Poly1305 under a fresh random content key.
//! 3. The content key is sealed to every recipient device's prekey with
//!    HPKE (RFC 9180, base mode).
//! 4. The whole body is signed by the sender's identity key; receivers
//!    check the signature before parsing anything.
//!
//! Exact layouts are in docs/protocol.md; vectors in docs/test-vectors/.

use prost::Message as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::digest;
use zeroize::Zeroizing;

use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityKeyPair, IdentityPublicKey, Signature};
use crate::pb;

use super::content::Message;
use super::suite::{self, EncryptionKeyPair, EncryptionPublicKey, Randomness, SUITE};

/// Envelope format version.
pub const VERSION: u32 = 1;
/// Sizes the padded content is rounded up to.
pub const BUCKETS: [usize; 4] = [1024, 4096, 16384, 65536];
/// Most recipient devices one envelope may carry.
pub const MAX_RECIPIENTS: usize = 256;
/// The longest text (in bytes) that always fits the largest bucket,
/// whatever the other fields of [`Content`] hold: the bucket less the
/// 4-byte length prefix, the largest protobuf encoding of the other
/// fields and of the text's own tag and length (128 bytes in all, rounded
/// up: 55 for the id, counter, timestamp, thread and the text's tag and
/// length; 33 for kind, category and priority, negative numbers
/// included; 37 for the longest language tag), and of the longest sender
/// label (its bytes, a tag and a length).
pub const MAX_BODY_LEN: usize =
    BUCKETS[BUCKETS.len() - 1] - 4 - 128 - (crate::invite::MAX_LABEL_BYTES + 2);
/// The longest text (in bytes) of a CASE_REQUEST, CASE_SHARE or
/// CASE_REPLY content that always fits the largest bucket, whatever its
/// other fields hold: [`MAX_BODY_LEN`] less the case fields' largest
/// encoding (64 bytes, rounded up: 19 for `case_id`, 25 for a
/// `checkin_offer` of two 10-byte numbers, 12 for a `programme` number;
/// each with its two-byte tag).
pub const MAX_CASE_TEXT_LEN: usize = MAX_BODY_LEN - 64;
pub(crate) const LABEL: &[u8] = b"hotline/1 envelope";
const CONTENT_LABEL: &[u8] = b"hotline/1 content";
const WRAP_LABEL: &[u8] = b"hotline/1 wrap";
/// The HPKE `info` for wrapping content keys.
pub const HPKE_INFO: &[u8] = b"hotline/1 content key";

/// Who can open an envelope: a device and the prekey to seal to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// The device.
    pub device_id: DeviceId,
    /// Which of its prekeys.
    pub prekey_id: u32,
    /// That prekey's public key (verified by the caller).
    pub key: EncryptionPublicKey,
}

/// What an envelope carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Random; the same id means the same message (retries, replays).
    pub message_id: [u8; 16],
    /// The sender device's counter.
    pub counter: u64,
    /// The sender's clock, seconds since the Unix epoch.
    pub timestamp: u64,
    /// What it says: kind, category, priority, text, language.
    pub message: Message,
    /// The alert the message belongs to (0: none; an SOS: 0, its alert is
    /// the one raised with it). Only the recipients see it.
    pub thread: u64,
    /// The sender's label from its invite (empty: none), as the sender
    /// describes itself: see [`crate::invite::check_label`].
    pub sender_label: String,
}

/// An envelope as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEnvelope {
    /// Whose identity key verifies the signature.
    pub sender: DeviceId,
    /// The exact bytes signed (an `EnvelopeBody`).
    pub body: Vec<u8>,
    /// The sender's signature.
    pub signature: Signature,
}

/// An opened envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The verified sender.
    pub sender: DeviceId,
    /// The roster version the sender used.
    pub roster_version: u64,
    /// The content.
    pub content: Content,
}

/// Why an envelope could not be sealed or opened. The text never holds
/// content or identifiers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The content does not fit the largest bucket.
    #[error("message too large")]
    TooLarge,
    /// No recipients, or too many.
    #[error("an envelope needs between 1 and {MAX_RECIPIENTS} recipients")]
    Recipients,
    /// The signature does not verify under the sender's key.
    #[error("the envelope's signature does not verify")]
    BadSignature,
    /// This device is not among the recipients.
    #[error("the envelope is not addressed to this device")]
    NotForMe,
    /// The prekey it was sealed to is gone (a used one-time prekey).
    #[error("the key this envelope was sealed to is no longer held")]
    KeyGone,
    /// Decryption failed: altered, or sealed to another key.
    #[error("the envelope does not decrypt")]
    Undecryptable,
    /// A public key is not a valid X25519 key.
    #[error("invalid recipient key")]
    BadKey,
    /// A field is wrong.
    #[error("malformed envelope: {0}")]
    Decode(#[from] DecodeError),
}

fn content_aad(sender: &DeviceId, roster_version: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(40);
    a.extend_from_slice(&VERSION.to_be_bytes());
    a.extend_from_slice(&SUITE.to_be_bytes());
    a.extend_from_slice(sender.as_bytes());
    a.extend_from_slice(&roster_version.to_be_bytes());
    super::signed_message(CONTENT_LABEL, &a)
}

fn wrap_aad(
    sender: &DeviceId,
    recipient: &DeviceId,
    prekey_id: u32,
    roster_version: u64,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(nonce);
    ctx.update(ciphertext);
    let mut a = Vec::with_capacity(84);
    a.extend_from_slice(&VERSION.to_be_bytes());
    a.extend_from_slice(&SUITE.to_be_bytes());
    a.extend_from_slice(sender.as_bytes());
    a.extend_from_slice(recipient.as_bytes());
    a.extend_from_slice(&prekey_id.to_be_bytes());
    a.extend_from_slice(&roster_version.to_be_bytes());
    a.extend_from_slice(ctx.finish().as_ref());
    super::signed_message(WRAP_LABEL, &a)
}

/// The content as it is padded and encrypted (a `SealedContent`).
pub(crate) fn encode_content(content: &Content) -> Vec<u8> {
    sealed_content(content).encode_to_vec()
}

/// The `SealedContent` of `content`, in the new form (`body` empty).
fn sealed_content(content: &Content) -> pb::SealedContent {
    let mut c = pb::SealedContent {
        message_id: content.message_id.to_vec().into(),
        counter: content.counter,
        timestamp: content.timestamp,
        thread: content.thread,
        sender_label: content.sender_label.clone(),
        ..Default::default()
    };
    content.message.to_wire(&mut c);
    c
}

/// The bytes [`seal`] pads and encrypts for `content`: its protobuf
/// encoding (published as a test vector).
pub fn encode_sealed_content(content: &Content) -> Vec<u8> {
    encode_content(content)
}

/// Cuts `body` to at most [`MAX_BODY_LEN`] bytes, at a character boundary
/// when it is UTF-8 (an SOS too long is cut, never refused).
pub fn cut_to_fit(body: &[u8]) -> &[u8] {
    if body.len() <= MAX_BODY_LEN {
        return body;
    }
    let mut end = MAX_BODY_LEN;
    while end > MAX_BODY_LEN - 4 && std::str::from_utf8(&body[..end]).is_err() {
        end -= 1;
    }
    &body[..end]
}

/// `u32 length || bytes || zeros`, to the smallest bucket that fits.
pub fn pad(bytes: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let need = 4 + bytes.len();
    let size = *BUCKETS
        .iter()
        .find(|&&b| b >= need)
        .ok_or(EnvelopeError::TooLarge)?;
    let mut out = Vec::with_capacity(size + 16);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out.resize(size, 0);
    Ok(out)
}

/// Reverses [`pad`], refusing anything not exactly in that form.
pub fn unpad(padded: &[u8]) -> Result<&[u8], EnvelopeError> {
    let malformed = EnvelopeError::Decode(DecodeError::Invalid("padding"));
    if !BUCKETS.contains(&padded.len()) {
        return Err(malformed);
    }
    let (len, rest) = padded.split_first_chunk::<4>().ok_or(malformed.clone())?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > rest.len() || rest[len..].iter().any(|&b| b != 0) {
        return Err(malformed);
    }
    Ok(&rest[..len])
}

fn content_key(bytes: &[u8]) -> Result<LessSafeKey, EnvelopeError> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| EnvelopeError::Undecryptable)?,
    ))
}

/// Seals `content` for `recipients`, signed by `sender`, drawing all
/// randomness (content key, nonce, HPKE ephemeral keys) from `rng`.
pub fn seal(
    sender: &IdentityKeyPair,
    roster_version: u64,
    recipients: &[Recipient],
    content: &Content,
    rng: &mut impl Randomness,
) -> Result<SignedEnvelope, EnvelopeError> {
    seal_signed_by(
        sender.device_id(),
        sender,
        roster_version,
        recipients,
        content,
        rng,
    )
}

/// Seals `content` from device `sender_id` for `recipients`, signed by
/// `signer`: the device's identity key ([`seal`]), or its panic key for
/// an SOS sent without the passphrase (receivers verify such an envelope
/// with the sender's panic key, [`SignedEnvelope::open_signed_by`]).
pub fn seal_signed_by(
    sender_id: DeviceId,
    signer: &IdentityKeyPair,
    roster_version: u64,
    recipients: &[Recipient],
    content: &Content,
    rng: &mut impl Randomness,
) -> Result<SignedEnvelope, EnvelopeError> {
    let padded = Zeroizing::new(pad(&encode_content(content))?);
    seal_padded_signed_by(sender_id, signer, roster_version, recipients, &padded, rng)
}

/// Seals `padded` exactly as given, without checking that it is a padded
/// `SealedContent`. Receivers refuse anything else; this exists so that
/// conformance tests can build the malformed envelopes a hostile sender
/// could. Everything else uses [`seal`].
pub fn seal_padded(
    sender: &IdentityKeyPair,
    roster_version: u64,
    recipients: &[Recipient],
    padded: &[u8],
    rng: &mut impl Randomness,
) -> Result<SignedEnvelope, EnvelopeError> {
    seal_padded_signed_by(
        sender.device_id(),
        sender,
        roster_version,
        recipients,
        padded,
        rng,
    )
}

fn seal_padded_signed_by(
    sender_id: DeviceId,
    signer: &IdentityKeyPair,
    roster_version: u64,
    recipients: &[Recipient],
    padded: &[u8],
    rng: &mut impl Randomness,
) -> Result<SignedEnvelope, EnvelopeError> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(EnvelopeError::Recipients);
    }
    let mut buf = Zeroizing::new(padded.to_vec());
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill(key.as_mut());
    let mut nonce = [0u8; 12];
    rng.fill(&mut nonce);
    let tag = content_key(key.as_ref())?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(content_aad(&sender_id, roster_version)),
            buf.as_mut_slice(),
        )
        .map_err(|_| EnvelopeError::TooLarge)?;
    let mut ciphertext = buf.to_vec();
    ciphertext.extend_from_slice(tag.as_ref());
    let mut wrapped = Vec::with_capacity(recipients.len());
    for r in recipients {
        let aad = wrap_aad(
            &sender_id,
            &r.device_id,
            r.prekey_id,
            roster_version,
            &nonce,
            &ciphertext,
        );
        let (enc, sealed_key) = suite::hpke_seal(&r.key, HPKE_INFO, &aad, key.as_ref(), rng)
            .ok_or(EnvelopeError::BadKey)?;
        wrapped.push(pb::WrappedKey {
            device_id: r.device_id.as_bytes().to_vec().into(),
            prekey_id: r.prekey_id,
            enc: enc.to_vec().into(),
            wrapped: sealed_key.into(),
        });
    }
    let body = pb::EnvelopeBody {
        version: VERSION,
        suite: SUITE,
        sender: sender_id.as_bytes().to_vec().into(),
        roster_version,
        recipients: wrapped,
        nonce: nonce.to_vec().into(),
        ciphertext: ciphertext.into(),
    }
    .encode_to_vec();
    let signature = signer.sign(&super::signed_message(LABEL, &body));
    Ok(SignedEnvelope {
        sender: sender_id,
        body,
        signature,
    })
}

impl SignedEnvelope {
    pub(crate) fn to_wire(&self) -> pb::SignedEnvelope {
        pb::SignedEnvelope {
            sender: self.sender.as_bytes().to_vec().into(),
            body: self.body.clone().into(),
            signature: self.signature.as_bytes().to_vec().into(),
        }
    }

    pub(crate) fn from_wire(m: pb::SignedEnvelope) -> Result<Self, DecodeError> {
        if m.body.len() > crate::frame::MAX_FRAME_LEN {
            return Err(DecodeError::Invalid("body"));
        }
        Ok(SignedEnvelope {
            sender: DeviceId::from_slice(&m.sender, "sender")?,
            body: m.body.to_vec(),
            signature: Signature::from_slice(&m.signature, "signature")?,
        })
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Decodes the outer wrapper only; the body is parsed by
    /// [`SignedEnvelope::open`] after the signature is checked.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(pb::SignedEnvelope::decode(bytes)?)
    }

    /// The recipient device ids, read from the body without verifying the
    /// signature: for the server, which routes by them but cannot open
    /// anything. Fails if the body does not decode, or names a sender
    /// other than the envelope's (which every recipient refuses).
    pub fn recipients_unverified(&self) -> Result<Vec<DeviceId>, DecodeError> {
        let body = pb::EnvelopeBody::decode(self.body.as_slice())?;
        // The sender inside the signed body must be the one outside it:
        // every recipient checks it, so an envelope that fails here could
        // only be dropped by them.
        if DeviceId::from_slice(&body.sender, "sender")? != self.sender {
            return Err(DecodeError::Invalid("sender"));
        }
        if body.recipients.is_empty() || body.recipients.len() > MAX_RECIPIENTS {
            return Err(DecodeError::Invalid("recipients"));
        }
        body.recipients
            .iter()
            .map(|w| DeviceId::from_slice(&w.device_id, "device_id"))
            .collect()
    }

    /// The roster version the sender chose its recipients from, read from
    /// the body without verifying the signature (for the server, which
    /// marks an SOS sealed to an old or expired roster).
    pub fn roster_version_unverified(&self) -> Result<u64, DecodeError> {
        Ok(pb::EnvelopeBody::decode(self.body.as_slice())?.roster_version)
    }

    /// SHA-256 of the wire form: what the server de-duplicates by.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = [0u8; 32];
        h.copy_from_slice(digest::digest(&digest::SHA256, &self.encode()).as_ref());
        h
    }

    /// Checks only the signature (what a server can check).
    pub fn verify_signature(&self, sender_key: &IdentityPublicKey) -> Result<(), EnvelopeError> {
        if sender_key.device_id() != self.sender {
            return Err(EnvelopeError::BadSignature);
        }
        self.verify_signed_by(sender_key)
    }

    /// Checks only the signature, under `signing_key`, which the caller
    /// has tied to the sender by other means (the panic key the sender
    /// enrolled with): no device id derives from it.
    pub fn verify_signed_by(&self, signing_key: &IdentityPublicKey) -> Result<(), EnvelopeError> {
        signing_key
            .verify(&super::signed_message(LABEL, &self.body), &self.signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }

    /// Like [`SignedEnvelope::open`], for an envelope signed by the
    /// sender's panic key `signing_key` rather than its identity key.
    pub fn open_signed_by(
        &self,
        signing_key: &IdentityPublicKey,
        me: &DeviceId,
        key_for: impl FnOnce(u32) -> Option<EncryptionKeyPair>,
    ) -> Result<Opened, EnvelopeError> {
        self.verify_signed_by(signing_key)?;
        self.open_verified(me, key_for)
    }

    /// Verifies the signature with the sender's identity key, then opens the
    /// envelope as device `me`, asking `key_for` for the private prekey with
    /// the given id.
    pub fn open(
        &self,
        sender_key: &IdentityPublicKey,
        me: &DeviceId,
        key_for: impl FnOnce(u32) -> Option<EncryptionKeyPair>,
    ) -> Result<Opened, EnvelopeError> {
        self.verify_signature(sender_key)?;
        self.open_verified(me, key_for)
    }

    /// Opens an envelope whose signature was checked.
    fn open_verified(
        &self,
        me: &DeviceId,
        key_for: impl FnOnce(u32) -> Option<EncryptionKeyPair>,
    ) -> Result<Opened, EnvelopeError> {
        let body = pb::EnvelopeBody::decode(self.body.as_slice()).map_err(DecodeError::from)?;
        if body.version != VERSION {
            return Err(DecodeError::UnsupportedVersion(body.version).into());
        }
        if body.suite != SUITE {
            return Err(DecodeError::Invalid("suite").into());
        }
        if DeviceId::from_slice(&body.sender, "sender")? != self.sender {
            return Err(DecodeError::Invalid("sender").into());
        }
        let nonce: [u8; 12] = body
            .nonce
            .as_ref()
            .try_into()
            .map_err(|_| DecodeError::Invalid("nonce"))?;
        let mine = body
            .recipients
            .iter()
            .find(|w| w.device_id.as_ref() == me.as_bytes())
            .ok_or(EnvelopeError::NotForMe)?;
        let key = key_for(mine.prekey_id).ok_or(EnvelopeError::KeyGone)?;
        let aad = wrap_aad(
            &self.sender,
            me,
            mine.prekey_id,
            body.roster_version,
            &nonce,
            &body.ciphertext,
        );
        let content_key_bytes = Zeroizing::new(
            suite::hpke_open(&key, &mine.enc, HPKE_INFO, &aad, &mine.wrapped)
                .ok_or(EnvelopeError::Undecryptable)?,
        );
        let mut buf = Zeroizing::new(body.ciphertext.to_vec());
        let plain = content_key(&content_key_bytes)?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(content_aad(&self.sender, body.roster_version)),
                buf.as_mut_slice(),
            )
            .map_err(|_| EnvelopeError::Undecryptable)?;
        let content = decode_sealed_content(unpad(plain)?)?;
        Ok(Opened {
            sender: self.sender,
            roster_version: body.roster_version,
            content,
        })
    }
}

/// Reads the bytes [`encode_sealed_content`] writes (the plaintext of an
/// envelope, unpadded), in the new form or the old, as the version rule
/// in docs/protocol.md says. Fails only on a malformed encoding, a
/// message id that is not 16 bytes, a `text` that is not UTF-8 or a bad
/// sender label.
pub fn decode_sealed_content(bytes: &[u8]) -> Result<Content, EnvelopeError> {
    let inner = pb::SealedContent::decode(bytes).map_err(DecodeError::from)?;
    let message_id: [u8; 16] = inner
        .message_id
        .as_ref()
        .try_into()
        .map_err(|_| DecodeError::Invalid("message_id"))?;
    if !inner.sender_label.is_empty() {
        crate::invite::check_label(&inner.sender_label)
            .map_err(|_| DecodeError::Invalid("sender_label"))?;
    }
    Ok(Content {
        message_id,
        counter: inner.counter,
        timestamp: inner.timestamp,
        message: Message::from_wire(&inner)?,
        thread: inner.thread,
        sender_label: inner.sender_label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Priority;
    use crate::case::CaseId;
    use crate::case::key::CaseKey;
    use crate::e2e::content::{Category, CheckinOffer, Kind, MAX_CASE_KEYS, Programme};

    fn case_id(n: u8) -> CaseId {
        CaseId::from_bytes([n; 16])
    }

    fn worst_content(message: Message) -> Content {
        Content {
            message_id: [0xff; 16],
            counter: u64::MAX,
            timestamp: u64::MAX,
            message,
            thread: u64::MAX,
            sender_label: "é".repeat(crate::invite::MAX_LABEL_BYTES / 2),
        }
    }

    fn fits(c: &Content) -> bool {
        pad(&encode_content(c)).is_ok()
    }

    #[test]
    fn the_most_case_keys_fit_the_largest_bucket() {
        let keys = (0..MAX_CASE_KEYS)
            .map(|_| (case_id(0xff), u32::MAX, CaseKey::from_bytes([0xff; 32])))
            .collect();
        let c = worst_content(Message::case_keys(keys));
        let encoded = encode_content(&c);
        assert!(fits(&c));
        // Well inside: 61 bytes a key at most.
        assert!(encoded.len() < 32 * 1024, "{}", encoded.len());
        let back = decode_sealed_content(&encoded).expect("reads");
        assert_eq!(back, c);
    }

    #[test]
    fn a_case_text_of_max_case_text_len_always_fits() {
        let worst = |kind: Kind| Message {
            kind,
            category: Some(Category::Unknown(-1)),
            priority: Some(Priority::Routine),
            text: "x".repeat(MAX_CASE_TEXT_LEN),
            language: "abcdefgh-abcdefgh-abcdefgh-abcdefg".into(),
        };
        for kind in [
            Kind::CaseRequest {
                programme: Programme::Unknown(-1),
            },
            Kind::CaseShare {
                case_id: case_id(0xff),
                checkin_offer: Some(CheckinOffer {
                    interval_secs: u64::MAX,
                    grace_secs: u64::MAX,
                }),
            },
            Kind::CaseReply {
                case_id: case_id(0xff),
            },
        ] {
            assert!(fits(&worst_content(worst(kind.clone()))), "{kind:?}");
        }
    }

    #[test]
    fn an_envelope_whose_case_kind_lacks_its_field_is_refused() {
        let content = worst_content(Message::case_reply(case_id(3), "t", ""));
        let mut c =
            pb::SealedContent::decode(encode_content(&content).as_slice()).expect("decodes");
        c.case_id = vec![].into();
        assert_eq!(
            decode_sealed_content(&c.encode_to_vec()),
            Err(EnvelopeError::Decode(DecodeError::Invalid("case_id")))
        );
    }

    #[test]
    fn a_body_of_max_body_len_always_fits_and_one_more_byte_may_not() {
        let content = |len: usize| Content {
            message_id: [0xff; 16],
            counter: u64::MAX,
            timestamp: u64::MAX,
            message: Message {
                kind: crate::e2e::content::Kind::Unknown(-1),
                category: Some(crate::e2e::content::Category::Unknown(-1)),
                priority: Some(crate::alert::Priority::Routine),
                text: "x".repeat(len),
                language: "abcdefgh-abcdefgh-abcdefgh-abcdefg".into(),
            },
            thread: u64::MAX,
            sender_label: "é".repeat(crate::invite::MAX_LABEL_BYTES / 2),
        };
        let fits = |c: &Content| pad(&encode_content(c)).is_ok();
        assert!(fits(&content(MAX_BODY_LEN)));
        // The margin is small: the largest bucket is nearly reached.
        assert!(!fits(&content(MAX_BODY_LEN + 64)));
    }
    use crate::e2e::suite::{DeterministicRandomness, SystemRandomness};

    struct Device {
        identity: IdentityKeyPair,
        prekey: EncryptionKeyPair,
    }

    fn device(seed: u8) -> Device {
        Device {
            identity: IdentityKeyPair::from_seed(&[seed; 32]),
            prekey: EncryptionKeyPair::derive(&[seed; 32]),
        }
    }

    fn recipient(d: &Device) -> Recipient {
        Recipient {
            device_id: d.identity.device_id(),
            prekey_id: 1,
            key: d.prekey.public_key(),
        }
    }

    fn content(body: &[u8]) -> Content {
        Content {
            message_id: [3; 16],
            counter: 9,
            timestamp: 1_800_000_000,
            message: Message::chat(std::str::from_utf8(body).expect("text"), "en"),
            thread: 0,
            sender_label: String::new(),
        }
    }

    #[test]
    fn every_recipient_opens_and_no_one_else() {
        let sender = device(1);
        let (a, b, outsider) = (device(2), device(3), device(4));
        let env = seal(
            &sender.identity,
            5,
            &[recipient(&a), recipient(&b)],
            &content(b"help"),
            &mut SystemRandomness,
        )
        .expect("seal");
        let wire = SignedEnvelope::decode(&env.encode()).expect("decodes");
        for d in [&a, &b] {
            let opened = wire
                .open(
                    &sender.identity.public_key(),
                    &d.identity.device_id(),
                    |_| Some(d.prekey.clone()),
                )
                .expect("opens");
            assert_eq!(opened.content, content(b"help"));
            assert_eq!(opened.roster_version, 5);
        }
        assert_eq!(
            wire.open(
                &sender.identity.public_key(),
                &outsider.identity.device_id(),
                |_| Some(outsider.prekey.clone())
            ),
            Err(EnvelopeError::NotForMe)
        );
        // Claiming to be a recipient with the wrong private key fails too.
        assert_eq!(
            wire.open(
                &sender.identity.public_key(),
                &a.identity.device_id(),
                |_| Some(outsider.prekey.clone())
            ),
            Err(EnvelopeError::Undecryptable)
        );
    }

    /// An SOS sent without the passphrase is signed by the sender's
    /// panic key: it opens with that key, and neither the identity key
    /// nor the plain `open` accepts it.
    #[test]
    fn an_envelope_signed_by_the_panic_key_opens_only_with_it() {
        let sender = device(1);
        let panic = IdentityKeyPair::from_seed(&[7; 32]);
        let a = device(2);
        let env = seal_signed_by(
            sender.identity.device_id(),
            &panic,
            5,
            &[recipient(&a)],
            &content(b"help"),
            &mut SystemRandomness,
        )
        .expect("seal");
        assert_eq!(env.sender, sender.identity.device_id());
        let me = a.identity.device_id();
        let opened = env
            .open_signed_by(&panic.public_key(), &me, |_| Some(a.prekey.clone()))
            .expect("opens with the panic key");
        assert_eq!(opened.content, content(b"help"));
        assert_eq!(opened.sender, sender.identity.device_id());
        assert_eq!(
            env.open(&sender.identity.public_key(), &me, |_| Some(
                a.prekey.clone()
            )),
            Err(EnvelopeError::BadSignature)
        );
        assert_eq!(
            env.open_signed_by(&sender.identity.public_key(), &me, |_| Some(
                a.prekey.clone()
            )),
            Err(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let sender = device(1);
        let a = device(2);
        let env = seal(
            &sender.identity,
            1,
            &[recipient(&a)],
            &content(b"x"),
            &mut SystemRandomness,
        )
        .expect("seal");
        let wire = env.encode();
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            let opened = SignedEnvelope::decode(&bad)
                .map_err(EnvelopeError::from)
                .and_then(|e| {
                    e.open(
                        &sender.identity.public_key(),
                        &a.identity.device_id(),
                        |_| Some(a.prekey.clone()),
                    )
                });
            assert!(opened.is_err(), "byte {i} flipped and still opened");
        }
    }

    #[test]
    fn an_sos_is_as_long_as_any_short_message() {
        let sender = device(1);
        let a = device(2);
        let len = |body: &[u8]| {
            seal(
                &sender.identity,
                1,
                &[recipient(&a)],
                &content(body),
                &mut SystemRandomness,
            )
            .expect("seal")
            .encode()
            .len()
        };
        assert_eq!(len(b"SOS"), len(&[b'x'; 900]));
        assert!(len(&[b'x'; 1100]) > len(b"SOS"));
        let too_big = vec![0u8; 65536];
        assert_eq!(
            seal(
                &sender.identity,
                1,
                &[recipient(&a)],
                &content(&too_big),
                &mut SystemRandomness
            ),
            Err(EnvelopeError::TooLarge)
        );
    }

    #[test]
    fn padding_is_strict() {
        let p = pad(b"abc").expect("pad");
        assert_eq!(p.len(), 1024);
        assert_eq!(unpad(&p), Ok(&b"abc"[..]));
        let mut bad = p.clone();
        bad[500] = 1;
        assert!(unpad(&bad).is_err());
        assert!(unpad(&p[..1000]).is_err());
        let mut long = p;
        long[..4].copy_from_slice(&5000u32.to_be_bytes());
        assert!(unpad(&long).is_err());
    }

    #[test]
    fn sealing_is_deterministic_given_the_randomness() {
        let sender = device(1);
        let a = device(2);
        let seal_with = |seed: &[u8]| {
            seal(
                &sender.identity,
                1,
                &[recipient(&a)],
                &content(b"x"),
                &mut DeterministicRandomness::new(seed),
            )
            .expect("seal")
        };
        assert_eq!(seal_with(b"s"), seal_with(b"s"));
        assert_ne!(seal_with(b"s"), seal_with(b"t"));
    }
}
