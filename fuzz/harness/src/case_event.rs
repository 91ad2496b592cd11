//! Target `case_event`: what a staff client (and the server, without the
//! key) reads of a case event, written by another staff device and
//! untrusted until checked (docs/protocol.md, section 9.1).
//!
//! Selector: 0 a `SignedCaseEvent` as it arrives; 1 a `CaseEventBody`
//! signed by the (fixed, real) author key, its header read as the server
//! reads it and opened with the real case key; 2 a `CaseEventContent`
//! padded, sealed under the real case key and opened (so the content
//! decoder inside `open` runs on fuzzed bytes); 3 the same without
//! padding (the padding rule).

use std::sync::OnceLock;

use hotline_proto::IdentityKeyPair;
use hotline_proto::case::seal::{self, CaseEventError, CaseKey, EventDraft};
use hotline_proto::case::{
    CIPHERTEXT_LENS, CaseControl, CaseId, CaseState, EventHeader, MAX_EVENT_BODY_LEN,
    SignedCaseEvent,
};
use hotline_proto::e2e::envelope::{pad, unpad};
use hotline_proto::e2e::suite::DeterministicRandomness;
use hotline_proto::fuzzing::sign_case_event_body;

use crate::{round_trip, select};

/// The fixed, real keys every check uses.
#[derive(Debug)]
pub struct CaseKeys {
    /// The staff device writing the events.
    pub author: IdentityKeyPair,
    /// The case key every event is opened with, whatever its case and
    /// epoch (the commitment check then decides).
    pub key: CaseKey,
}

impl CaseKeys {
    pub fn new() -> CaseKeys {
        CaseKeys {
            author: IdentityKeyPair::from_seed(&[0x61; 32]),
            key: CaseKey::from_bytes([0x62; 32]),
        }
    }

    /// The draft of the events the checks seal.
    pub fn draft() -> EventDraft {
        EventDraft {
            case_id: CaseId::from_bytes([0x63; 16]),
            event_id: [0x64; 16],
            roster_version: 2,
            epoch: 1,
            control: CaseControl {
                state: Some(CaseState::Open),
                ..CaseControl::default()
            },
        }
    }
}

impl Default for CaseKeys {
    fn default() -> Self {
        CaseKeys::new()
    }
}

fn keys() -> &'static CaseKeys {
    static KEYS: OnceLock<CaseKeys> = OnceLock::new();
    KEYS.get_or_init(CaseKeys::new)
}

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 4) else {
        return;
    };
    let keys = keys();
    match which {
        0 => {
            if let Ok(e) = SignedCaseEvent::decode(bytes) {
                round_trip(
                    "SignedCaseEvent",
                    &e,
                    SignedCaseEvent::encode,
                    SignedCaseEvent::decode,
                );
                assert!(e.body.len() <= MAX_EVENT_BODY_LEN, "a body over the limit");
                read_as_server(&e);
                if let Ok((header, _)) =
                    e.open(&keys.author.public_key(), |_, _| Some(keys.key.clone()))
                {
                    assert_eq!(e.header_unverified(), Ok(header));
                }
            }
        }
        1 => {
            let e = sign_case_event_body(&keys.author, bytes);
            assert_eq!(
                e.verify_signature(&keys.author.public_key()),
                Ok(()),
                "a signed event failed its signature"
            );
            let header = read_as_server(&e);
            match e.open(&keys.author.public_key(), |_, _| Some(keys.key.clone())) {
                Ok((h, content)) => {
                    assert_eq!(Some(&h), header.as_ref(), "opened with another header");
                    reseal(keys, &h, &content);
                }
                Err(CaseEventError::BadSignature) => panic!("a signed event failed to verify"),
                Err(_) => {}
            }
        }
        2 => {
            if let Ok(padded) = pad(bytes) {
                content(keys, &padded, true);
            }
        }
        _ => content(keys, bytes, unpad(bytes).is_ok()),
    }
}

/// What the server reads of an event it cannot open: a header that keeps
/// every rule of section 9.1.
fn read_as_server(e: &SignedCaseEvent) -> Option<EventHeader> {
    let h = e.header_unverified().ok()?;
    assert_eq!(h.author, e.author, "a header of another author");
    assert!(h.epoch >= 1, "epoch 0 read");
    assert!(
        CIPHERTEXT_LENS.contains(&h.ciphertext_len),
        "a ciphertext of {} bytes read",
        h.ciphertext_len
    );
    Some(h)
}

/// What was opened seals again, under the same header, and opens to the
/// same content.
fn reseal(
    keys: &CaseKeys,
    h: &EventHeader,
    content: &hotline_proto::case::content::CaseEventContent,
) {
    let draft = EventDraft {
        case_id: h.case_id,
        event_id: h.event_id,
        roster_version: h.roster_version,
        epoch: h.epoch,
        control: h.control,
    };
    let mut rng = DeterministicRandomness::new(b"reseal");
    match seal::seal(&keys.author, &keys.key, &draft, content, &mut rng) {
        Ok(again) => {
            let (h2, c2) = again
                .open(&keys.author.public_key(), |_, _| Some(keys.key.clone()))
                .expect("what was opened seals and opens again");
            assert_eq!(&h2.case_id, &h.case_id);
            assert_eq!(&c2, content, "content changed through seal and open");
        }
        // What fit once fits again: the encoder drops unknown fields and
        // writes minimal varints, so nothing grows.
        Err(e) => panic!("resealing an opened event failed: {e}"),
    }
}

/// `padded` sealed under the real key and opened: only the content
/// decoder (or the padding rule) may refuse it.
fn content(keys: &CaseKeys, padded: &[u8], padding_ok: bool) {
    let mut rng = DeterministicRandomness::new(padded);
    let e = match seal::seal_padded(
        &keys.author,
        &keys.key,
        &CaseKeys::draft(),
        padded,
        &mut rng,
    ) {
        Ok(e) => e,
        Err(e) => panic!("anything can be sealed as is: {e}"),
    };
    let header_ok = read_as_server(&e).is_some();
    match e.open(&keys.author.public_key(), |_, _| Some(keys.key.clone())) {
        Ok((h, content)) => {
            assert!(padding_ok, "an event with bad padding opened");
            assert!(header_ok, "an event whose header is refused opened");
            reseal(keys, &h, &content);
        }
        Err(CaseEventError::Decode(_)) => {}
        Err(e) => panic!("a well-sealed event failed with {e}"),
    }
}
