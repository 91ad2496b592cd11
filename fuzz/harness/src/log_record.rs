//! Target `log_record`: the server's stored log records and checkpoints.
//!
//! Selector: 0 a stored record opened with a fixed, real record key; 1
//! bytes sealed as a record and opened again, then with one byte changed;
//! 2 a stored checkpoint; 3 an exported checkpoint line; 4 a segment file
//! (its header and frames, as a start and `verify` read them).

use hotline_server::log::record::{
    self, CHECKPOINT_LEN, Checkpoint, HEADER_LEN, MAIN_KEY_ID, RecordError, VERSION,
};
use hotline_server::log::segment::{self, End, SegmentHeader};
use ring::aead::{CHACHA20_POLY1305, LessSafeKey, UnboundKey};

use crate::select;

/// Bytes of a record's authentication tag.
const TAG_LEN: usize = 16;

/// The fixed record key.
pub fn record_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[0x4C; 32]).expect("32-byte key"))
}

/// The sequence number records are opened at.
pub const SEQ: u64 = 42;

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 5) else {
        return;
    };
    let key = record_key();
    match which {
        0 => stored(&key, bytes),
        1 => {
            let prev = record::chain_hash(SEQ - 1, bytes);
            let sealed =
                record::seal(&key, MAIN_KEY_ID, SEQ, &prev, bytes).expect("sealing never fails");
            assert_eq!(sealed.len(), HEADER_LEN + bytes.len() + TAG_LEN);
            let header = record::header(&sealed).expect("a sealed record has a header");
            assert_eq!(header.prev_hash, prev);
            assert_eq!(header.key_id, MAIN_KEY_ID);
            assert_eq!(record::open(&key, SEQ, &sealed).as_deref(), Ok(bytes));
            assert!(
                record::open(&key, SEQ + 1, &sealed).is_err(),
                "a moved record opened"
            );
            // Any one byte changed: refused.
            let mut bad = sealed;
            let at = bytes.iter().map(|&b| usize::from(b)).sum::<usize>() % bad.len();
            bad[at] ^= 0x01;
            assert!(
                record::open(&key, SEQ, &bad).is_err(),
                "a changed record opened"
            );
            stored(&key, &bad);
        }
        2 => match Checkpoint::from_bytes(bytes) {
            Some(c) => {
                assert_eq!(bytes.len(), CHECKPOINT_LEN);
                assert_eq!(c.to_bytes(), bytes, "a checkpoint reads back differently");
            }
            None => assert_ne!(
                bytes.len(),
                CHECKPOINT_LEN,
                "a checkpoint of the right size refused"
            ),
        },
        4 => segment_file(bytes),
        _ => {
            let text = String::from_utf8_lossy(bytes);
            if let Some((store, c)) = Checkpoint::parse_export(&text) {
                let line = c.export(&store);
                assert_eq!(Checkpoint::parse_export(&line), Some((store, c)));
                assert_eq!(Checkpoint::from_bytes(&c.to_bytes()), Some(c));
            }
        }
    }
}

/// A stored record as read back: refused as malformed exactly when it is
/// too short or of another version, and never opened otherwise (no one
/// but the key's holder can seal one).
fn stored(key: &LessSafeKey, bytes: &[u8]) {
    let well_formed = bytes.len() >= HEADER_LEN + TAG_LEN && bytes[0] == VERSION;
    assert_eq!(record::header(bytes).is_ok(), well_formed);
    match record::open(key, SEQ, bytes) {
        Ok(plain) => assert_eq!(plain.len(), bytes.len() - HEADER_LEN - TAG_LEN),
        Err(RecordError::Malformed) => {
            assert!(!well_formed, "a well-formed record called malformed")
        }
        Err(RecordError::Unauthentic) => assert!(well_formed),
        Err(e) => panic!("opening failed with {e}"),
    }
}

/// A segment file as read back: a header that parses writes back to the
/// same bytes; the frames found lie one after the other inside the file,
/// each re-encodes to exactly its bytes, and where reading stopped is
/// after the last of them (at the end of the file if it ended cleanly).
fn segment_file(bytes: &[u8]) {
    if let Ok(h) = SegmentHeader::parse(bytes) {
        assert_eq!(
            h.to_bytes(),
            bytes[..segment::HEADER_LEN],
            "a segment header reads back differently"
        );
    }
    let (frames, end) = segment::parse_frames(bytes);
    let mut at = segment::HEADER_LEN.min(bytes.len());
    for f in &frames {
        assert_eq!(f.offset as usize, at, "frames do not follow each other");
        assert!(f.payload.end <= bytes.len() && f.payload.start <= f.payload.end);
        assert!(
            f.payload.len() <= segment::MAX_PAYLOAD,
            "an oversized frame read"
        );
        let mut again = Vec::new();
        segment::encode_frame(f.kind, f.seq, &bytes[f.payload.clone()], &mut again);
        assert_eq!(
            again,
            bytes[at..f.payload.end],
            "a frame re-encodes differently"
        );
        at = f.payload.end;
    }
    match end {
        End::Clean => assert_eq!(at, bytes.len(), "a clean end before the end"),
        End::Torn { offset } | End::Bad { offset, .. } => {
            assert_eq!(
                offset as usize, at,
                "reading stopped elsewhere than after the last frame"
            )
        }
    }
}
