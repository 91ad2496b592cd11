//! Length-delimited framing.
//!
//! A frame is a 4-byte big-endian unsigned length `n` followed by exactly `n`
//! bytes of payload (one protobuf message). The reader checks `n` against the
//! limit of the stream *before* it allocates or reads the payload, so a peer
//! cannot make the other end reserve memory by announcing a large frame.

use thiserror::Error;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// The largest payload any stream accepts.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// The largest payload accepted on the set-up stream, before the device has
/// authenticated. Set-up messages are a few hundred bytes at most.
pub const MAX_SETUP_FRAME_LEN: usize = 4 * 1024;

/// Why a frame could not be written or read.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more bytes than the stream allows.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The stream ended before the whole frame arrived.
    #[error("stream ended inside a frame")]
    Truncated,
    /// Bytes followed the frame on a stream that carries exactly one.
    #[error("unexpected bytes after the frame")]
    TrailingBytes,
}

/// Prefixes `payload` with its length.
///
/// Fails if the payload is larger than [`MAX_FRAME_LEN`]: nothing larger
/// would be accepted by the other end.
pub fn encode(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len(),
        max: MAX_FRAME_LEN,
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Reads a length prefix and checks it against `max`.
///
/// Returns the number of payload bytes that follow. Call this before
/// allocating the payload buffer.
pub fn payload_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Splits one complete frame off the front of `bytes`.
///
/// Returns the payload and the bytes after it. For callers that hold a
/// whole buffer (tests, tools); streams use [`payload_len`].
pub fn split(bytes: &[u8], max: usize) -> Result<(&[u8], &[u8]), FrameError> {
    let (header, rest) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(FrameError::Truncated)?;
    let len = payload_len(*header, max)?;
    if rest.len() < len {
        return Err(FrameError::Truncated);
    }
    Ok(rest.split_at(len))
}

/// The payload of a buffer that must hold exactly one frame.
pub fn decode_exact(bytes: &[u8], max: usize) -> Result<&[u8], FrameError> {
    match split(bytes, max)? {
        (payload, []) => Ok(payload),
        _ => Err(FrameError::TrailingBytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let framed = encode(b"hello").expect("small payload");
        assert_eq!(&framed[..4], &[0, 0, 0, 5]);
        let (payload, rest) = split(&framed, MAX_FRAME_LEN).expect("complete frame");
        assert_eq!(payload, b"hello");
        assert!(rest.is_empty());
        assert_eq!(decode_exact(&framed, MAX_FRAME_LEN), Ok(&b"hello"[..]));
        let mut two = framed.clone();
        two.push(0);
        assert_eq!(
            decode_exact(&two, MAX_FRAME_LEN),
            Err(FrameError::TrailingBytes)
        );
    }

    #[test]
    fn empty_payload_is_a_valid_frame() {
        let framed = encode(b"").expect("empty payload");
        assert_eq!(framed, vec![0, 0, 0, 0]);
        assert_eq!(split(&framed, 0), Ok((&b""[..], &b""[..])));
    }

    #[test]
    fn oversized_header_is_refused_before_reading_the_payload() {
        // Announce 4 GiB - 1 with no payload at all: the header alone decides.
        let err = payload_len([0xff; 4], MAX_FRAME_LEN).expect_err("too large");
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u32::MAX as usize,
                max: MAX_FRAME_LEN
            }
        );
        assert_eq!(
            payload_len(
                (MAX_SETUP_FRAME_LEN as u32 + 1).to_be_bytes(),
                MAX_SETUP_FRAME_LEN
            ),
            Err(FrameError::TooLarge {
                len: MAX_SETUP_FRAME_LEN + 1,
                max: MAX_SETUP_FRAME_LEN
            })
        );
        assert_eq!(
            payload_len(
                (MAX_SETUP_FRAME_LEN as u32).to_be_bytes(),
                MAX_SETUP_FRAME_LEN
            ),
            Ok(MAX_SETUP_FRAME_LEN)
        );
    }

    #[test]
    fn encode_refuses_what_the_peer_would_refuse() {
        let big = vec![0u8; MAX_FRAME_LEN + 1];
        assert!(matches!(encode(&big), Err(FrameError::TooLarge { .. })));
        assert!(encode(&big[..MAX_FRAME_LEN]).is_ok());
    }

    #[test]
    fn truncated_frames_are_detected() {
        assert_eq!(split(&[0, 0], 10), Err(FrameError::Truncated));
        assert_eq!(split(&[0, 0, 0, 3, 1, 2], 10), Err(FrameError::Truncated));
    }
}
