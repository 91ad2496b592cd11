//! Target `setup`: frames and the set-up exchange (before a device is
//! authenticated: what any peer on the network can send).
//!
//! Selector: 0 frames, 1 `Challenge`, 2 `SetupRequest`, 3 set-up response.

use hotline_proto::frame::{self, FrameError, HEADER_LEN, MAX_FRAME_LEN, MAX_SETUP_FRAME_LEN};
use hotline_proto::message::{
    Challenge, SetupRequest, decode_setup_response, encode_setup_response,
};

use crate::{round_trip, select};

/// The limits a stream may enforce, picked by the second byte.
const LIMITS: [usize; 5] = [MAX_FRAME_LEN, MAX_SETUP_FRAME_LEN, 0, 1, 300];

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 4) else {
        return;
    };
    match which {
        0 => {
            let Some((limit, rest)) = bytes.split_first() else {
                return;
            };
            frames(rest, LIMITS[usize::from(*limit) % LIMITS.len()]);
        }
        1 => {
            if let Ok(c) = Challenge::decode(bytes) {
                round_trip("Challenge", &c, Challenge::encode, Challenge::decode);
            }
            within_limit(bytes, MAX_SETUP_FRAME_LEN);
        }
        2 => {
            if let Ok(r) = SetupRequest::decode(bytes) {
                let e = round_trip(
                    "SetupRequest",
                    &r,
                    SetupRequest::encode,
                    SetupRequest::decode,
                );
                assert!(
                    e.len() <= MAX_SETUP_FRAME_LEN,
                    "a set-up request the server accepts fits the set-up frame limit"
                );
            }
            within_limit(bytes, MAX_SETUP_FRAME_LEN);
        }
        _ => {
            if let Ok(r) = decode_setup_response(bytes) {
                round_trip(
                    "SetupResponse",
                    &r,
                    encode_setup_response,
                    decode_setup_response,
                );
            }
            within_limit(bytes, MAX_SETUP_FRAME_LEN);
        }
    }
}

/// A payload passes the frame layer of a stream with limit `max` exactly
/// when it is no longer than `max`: a decoder behind it never sees more.
pub(crate) fn within_limit(payload: &[u8], max: usize) {
    let Ok(framed) = frame::encode(payload) else {
        assert!(
            payload.len() > MAX_FRAME_LEN,
            "encode refused a small payload"
        );
        return;
    };
    match frame::decode_exact(&framed, max) {
        Ok(p) => {
            assert!(p.len() <= max, "a frame over the limit was accepted");
            assert_eq!(p, payload, "the payload came back changed");
        }
        Err(FrameError::TooLarge { len, max: m }) => {
            assert_eq!(m, max);
            assert_eq!(len, payload.len());
            assert!(len > max, "a frame within the limit was refused");
        }
        Err(e) => panic!("a whole frame was refused: {e}"),
    }
}

/// Reads `bytes` as a stream of frames under `max`.
fn frames(bytes: &[u8], max: usize) {
    if let Some(header) = bytes.first_chunk::<HEADER_LEN>() {
        let announced = u32::from_be_bytes(*header) as usize;
        match frame::payload_len(*header, max) {
            Ok(n) => assert!(n == announced && n <= max, "payload_len over the limit"),
            Err(FrameError::TooLarge { len, .. }) => {
                assert!(
                    len == announced && len > max,
                    "payload_len refused a frame within the limit"
                )
            }
            Err(e) => panic!("payload_len: unexpected {e}"),
        }
    }
    let exact = frame::decode_exact(bytes, max);
    let mut rest = bytes;
    let mut first = true;
    loop {
        match frame::split(rest, max) {
            Ok((payload, after)) => {
                assert!(
                    payload.len() <= max,
                    "split returned a frame over the limit"
                );
                assert_eq!(
                    HEADER_LEN + payload.len() + after.len(),
                    rest.len(),
                    "split lost or invented bytes"
                );
                let header = frame::encode(payload).expect("a payload within the limit encodes");
                assert_eq!(
                    &rest[..HEADER_LEN + payload.len()],
                    header.as_slice(),
                    "the frame is not header || payload"
                );
                if first {
                    match &exact {
                        Ok(p) => assert!(after.is_empty() && *p == payload),
                        Err(e) => assert!(
                            !after.is_empty() && *e == FrameError::TrailingBytes,
                            "decode_exact refused one whole frame: {e}"
                        ),
                    }
                }
                if after.is_empty() {
                    return;
                }
                rest = after;
            }
            Err(e) => {
                if first {
                    assert_eq!(
                        exact.as_ref().err(),
                        Some(&e),
                        "decode_exact and split disagree"
                    );
                }
                match e {
                    FrameError::Truncated => assert!(
                        rest.len() < HEADER_LEN
                            || u32::from_be_bytes(rest[..HEADER_LEN].try_into().expect("4 bytes"))
                                as usize
                                > rest.len() - HEADER_LEN,
                        "a complete frame was called truncated"
                    ),
                    FrameError::TooLarge { len, .. } => assert!(len > max),
                    FrameError::TrailingBytes => panic!("split never reports trailing bytes"),
                }
                return;
            }
        }
        first = false;
    }
}
