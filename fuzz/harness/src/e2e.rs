//! Target `e2e`: what a client reads of end-to-end encrypted material, all
//! of it written by other devices (or the server) and untrusted until
//! checked.
//!
//! Selector: 0 a `SignedEnvelope` as it arrives; 1 an envelope body signed
//! by the (fixed, real) sender key, opened with the recipient's real
//! prekey; 2 a `SealedContent` padded, sealed and opened with real keys
//! (so that the content decoder inside `open` runs on fuzzed bytes); 3
//! the same without padding (the padding check); 4 a roster; 5 a prekey;
//! 6 the replay guard's saved form.

use std::sync::OnceLock;

use hotline_proto::e2e::envelope::{
    self, EnvelopeError, Opened, Recipient, SignedEnvelope, pad, unpad,
};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_proto::e2e::prekey::SignedPrekey;
use hotline_proto::e2e::replay::{MAX_SKEW_SECS, ReplayGuard};
use hotline_proto::e2e::roster::{RosterError, SeenRoster, SignedRoster};
use hotline_proto::e2e::suite::{DeterministicRandomness, EncryptionKeyPair};
use hotline_proto::fuzzing::{sign_envelope_body, sign_prekey_body, sign_roster_body};
use hotline_proto::{DecodeError, IdentityKeyPair};

use crate::request::read_as_server;
use crate::{round_trip, select};

/// "Now" for every check that needs a clock (2027-01-15).
pub const NOW: u64 = 1_800_000_000;

/// The fixed, real keys every check uses.
#[derive(Debug)]
pub struct Keys {
    /// The sending device (and a prekey's owner).
    pub sender: IdentityKeyPair,
    /// The receiving device.
    pub me: IdentityKeyPair,
    /// The receiving device's prekey number [`PREKEY_ID`].
    pub prekey: EncryptionKeyPair,
    /// The organisation root.
    pub root: OrgKeyPair,
}

/// The id of [`Keys::prekey`].
pub const PREKEY_ID: u32 = 7;

impl Keys {
    pub fn new() -> Keys {
        Keys {
            sender: IdentityKeyPair::from_seed(&[0x51; 32]),
            me: IdentityKeyPair::from_seed(&[0x52; 32]),
            prekey: EncryptionKeyPair::derive(b"hotline fuzz prekey"),
            root: OrgKeyPair::from_seed(&[0x53; 32]),
        }
    }

    /// The receiving device as a sender sees it.
    pub fn recipient(&self) -> Recipient {
        Recipient {
            device_id: self.me.device_id(),
            prekey_id: PREKEY_ID,
            key: self.prekey.public_key(),
        }
    }

    /// Opens `env` as the receiving device.
    pub fn open(&self, env: &SignedEnvelope) -> Result<Opened, EnvelopeError> {
        env.open(&self.sender.public_key(), &self.me.device_id(), |id| {
            (id == PREKEY_ID).then(|| self.prekey.clone())
        })
    }
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new()
    }
}

/// The keys, made once (deriving them costs more than most checks).
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(Keys::new)
}

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 7) else {
        return;
    };
    let keys = keys();
    match which {
        0 => {
            if let Ok(env) = SignedEnvelope::decode(bytes) {
                round_trip(
                    "SignedEnvelope",
                    &env,
                    SignedEnvelope::encode,
                    SignedEnvelope::decode,
                );
                read_as_server(&env);
                if let Ok(opened) = keys.open(&env) {
                    opened_is_sound(keys, &env, &opened);
                }
            }
        }
        1 => {
            let env = sign_envelope_body(&keys.sender, bytes);
            read_as_server(&env);
            match keys.open(&env) {
                Ok(opened) => opened_is_sound(keys, &env, &opened),
                Err(EnvelopeError::BadSignature) => {
                    panic!("a signed envelope failed its signature")
                }
                Err(_) => {}
            }
        }
        2 => {
            if let Ok(padded) = pad(bytes) {
                content(keys, &padded, true);
            }
        }
        3 => content(keys, bytes, unpad(bytes).is_ok()),
        4 => roster(keys, bytes),
        5 => prekey(keys, bytes),
        _ => replay(bytes),
    }
}

/// What an opened envelope must be: from its sender, and its content
/// seals and opens again to the same.
fn opened_is_sound(keys: &Keys, env: &SignedEnvelope, opened: &Opened) {
    assert_eq!(opened.sender, env.sender, "opened as from another sender");
    assert_eq!(opened.sender, keys.sender.device_id());
    reseal(keys, opened);
}

/// Seals the content of `opened` again, from the same sender, and opens it.
fn reseal(keys: &Keys, opened: &Opened) {
    let mut rng = DeterministicRandomness::new(b"reseal");
    match envelope::seal(
        &keys.sender,
        opened.roster_version,
        &[keys.recipient()],
        &opened.content,
        &mut rng,
    ) {
        Ok(again) => {
            let back = keys
                .open(&again)
                .expect("what was opened seals and opens again");
            assert_eq!(&back, opened, "content changed through seal and open");
        }
        // Opened content too large to seal again: only a body beyond what
        // a sender can seal (a hostile sender's, with a long label).
        Err(EnvelopeError::TooLarge) => assert!(
            opened.content.message.text.len() > envelope::MAX_BODY_LEN,
            "opened content of {} bytes cannot be sealed again",
            opened.content.message.text.len()
        ),
        Err(e) => panic!("resealing failed: {e}"),
    }
}

/// `padded` sealed to the receiving device with real keys and opened:
/// only the content decoder may refuse it.
fn content(keys: &Keys, padded: &[u8], padding_ok: bool) {
    let mut rng = DeterministicRandomness::new(padded);
    let env = envelope::seal_padded(&keys.sender, 3, &[keys.recipient()], padded, &mut rng)
        .expect("anything can be sealed as is");
    match keys.open(&env) {
        Ok(opened) => {
            assert!(padding_ok, "an envelope with bad padding opened");
            assert_eq!(opened.roster_version, 3);
            opened_is_sound(keys, &env, &opened);
        }
        Err(EnvelopeError::Decode(DecodeError::Invalid("padding"))) => {
            assert!(!padding_ok, "good padding refused")
        }
        Err(EnvelopeError::Decode(_)) => {}
        Err(e) => panic!("a well-sealed envelope failed with {e}"),
    }
}

fn roster(keys: &Keys, bytes: &[u8]) {
    if let Ok(r) = SignedRoster::decode(bytes) {
        round_trip(
            "SignedRoster",
            &r,
            SignedRoster::encode,
            SignedRoster::decode,
        );
        let _ = r.read_unverified();
    }
    // The same bytes as the body of a roster the pinned root signed.
    let root = keys.root.public_key();
    let signed = sign_roster_body(&keys.root, bytes);
    let read = signed.read_unverified();
    let verified = signed.verify_even_if_expired(&root, None);
    assert_eq!(read, verified, "verification reads the body differently");
    if let Ok(r) = &read {
        assert_eq!(
            signed.version_unverified(),
            Ok(r.version),
            "two readings of one version"
        );
    }
    let Ok(roster) = verified else {
        return;
    };
    match signed.verify(&root, NOW, None) {
        Ok(r) => {
            assert!(NOW < r.expires_at, "an expired roster verified");
            assert_eq!(r, roster);
        }
        Err(RosterError::Expired) => assert!(NOW >= roster.expires_at),
        Err(e) => panic!("verify refused what verify_even_if_expired took: {e}"),
    }
    for m in roster.members(NOW) {
        assert!(m.role.is_staff(), "a defender on the roster");
        assert_eq!(m.device_id, m.identity_key.device_id());
        assert!(roster.member(&m.device_id, NOW).is_some());
    }
    let _ = roster.last_valid_moment();
    // Seen before: the same roster again is accepted; an older one is not.
    let seen = SeenRoster {
        version: roster.version,
        hash: signed.hash(),
    };
    assert_eq!(
        signed.verify_even_if_expired(&root, Some(seen)).as_ref(),
        Ok(&roster)
    );
    if let Some(newer) = roster.version.checked_add(1) {
        let later = SeenRoster {
            version: newer,
            hash: signed.hash(),
        };
        assert!(matches!(
            signed.verify_even_if_expired(&root, Some(later)),
            Err(RosterError::Rollback { .. })
        ));
    }
    // Signed again from its typed form, it reads the same.
    let again = roster.sign(&keys.root);
    assert_eq!(again.verify_even_if_expired(&root, None), Ok(roster));
}

fn prekey(keys: &Keys, bytes: &[u8]) {
    if let Ok(p) = SignedPrekey::decode(bytes) {
        round_trip(
            "SignedPrekey",
            &p,
            SignedPrekey::encode,
            SignedPrekey::decode,
        );
        let _ = p.verify(&keys.sender.public_key(), NOW);
    }
    let owner = keys.sender.public_key();
    let signed = sign_prekey_body(&keys.sender, bytes);
    if let Ok(p) = signed.verify(&owner, NOW) {
        assert_eq!(p.device_id, owner.device_id(), "a prekey of another device");
        assert!(NOW < p.expires_at, "an expired prekey verified");
        assert_eq!(p.sign(&keys.sender).verify(&owner, NOW), Ok(p.clone()));
        // Under another device's key it never verifies.
        assert!(signed.verify(&keys.me.public_key(), NOW).is_err());
    }
}

fn replay(bytes: &[u8]) {
    let Some(guard) = ReplayGuard::decode(bytes) else {
        assert!(
            !bytes.len().is_multiple_of(24),
            "a well-sized replay state was refused"
        );
        return;
    };
    let saved = round_trip("ReplayGuard", &guard, ReplayGuard::encode, |b| {
        ReplayGuard::decode(b).ok_or("does not decode")
    });
    assert!(saved.len() <= bytes.len(), "the saved form grew");
    // A message seen once is refused the second time.
    let mut g = guard;
    let id = [0xAB; 16];
    if g.check_and_record(id, NOW, NOW + MAX_SKEW_SECS / 2).is_ok() {
        assert!(
            g.check_and_record(id, NOW, NOW + MAX_SKEW_SECS / 2)
                .is_err()
        );
    }
}
