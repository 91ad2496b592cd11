//! Error codes exchanged on the wire, and why a message failed to decode.

use std::fmt;

use thiserror::Error;

use crate::pb;

/// Why a request, stream or connection was refused.
///
/// The numeric values are those of `hotline.v1.ErrorCode` and are also used
/// as QUIC application error codes when a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame did not decode, or a required field was missing or out of range.
    Malformed,
    /// A length prefix exceeded the stream's limit.
    FrameTooLarge,
    /// The peer speaks another protocol version.
    UnsupportedVersion,
    /// A request arrived before authentication.
    NotAuthenticated,
    /// The device did not authenticate in time.
    AuthTimeout,
    /// No device with this id is enrolled.
    UnknownDevice,
    /// The signature does not verify.
    BadSignature,
    /// The device was revoked.
    DeviceRevoked,
    /// No invite with this token exists.
    InviteUnknown,
    /// The invite was already used.
    InviteUsed,
    /// The invite expired.
    InviteExpired,
    /// The device's role does not allow this.
    Forbidden,
    /// The request names something that does not exist.
    NotFound,
    /// A value is well-formed but not acceptable.
    InvalidArgument,
    /// Too many requests or streams.
    RateLimited,
    /// The server cannot complete the request now; nothing changed.
    Unavailable,
    /// A server bug; nothing changed.
    Internal,
    /// The identity key is already enrolled.
    AlreadyEnrolled,
    /// The current state forbids the request.
    FailedPrecondition,
    /// The device opened a newer connection beyond its limit and this one,
    /// its oldest, was closed (a connection close code only).
    Superseded,
    /// A code this version does not know (sent by a newer peer).
    Unknown(u32),
}

impl ErrorCode {
    /// The number sent on the wire and used as a QUIC close code.
    pub fn to_u32(self) -> u32 {
        let code = match self {
            ErrorCode::Malformed => pb::ErrorCode::Malformed,
            ErrorCode::FrameTooLarge => pb::ErrorCode::FrameTooLarge,
            ErrorCode::UnsupportedVersion => pb::ErrorCode::UnsupportedVersion,
            ErrorCode::NotAuthenticated => pb::ErrorCode::NotAuthenticated,
            ErrorCode::AuthTimeout => pb::ErrorCode::AuthTimeout,
            ErrorCode::UnknownDevice => pb::ErrorCode::UnknownDevice,
            ErrorCode::BadSignature => pb::ErrorCode::BadSignature,
            ErrorCode::DeviceRevoked => pb::ErrorCode::DeviceRevoked,
            ErrorCode::InviteUnknown => pb::ErrorCode::InviteUnknown,
            ErrorCode::InviteUsed => pb::ErrorCode::InviteUsed,
            ErrorCode::InviteExpired => pb::ErrorCode::InviteExpired,
            ErrorCode::Forbidden => pb::ErrorCode::Forbidden,
            ErrorCode::NotFound => pb::ErrorCode::NotFound,
            ErrorCode::InvalidArgument => pb::ErrorCode::InvalidArgument,
            ErrorCode::RateLimited => pb::ErrorCode::RateLimited,
            ErrorCode::Unavailable => pb::ErrorCode::Unavailable,
            ErrorCode::Internal => pb::ErrorCode::Internal,
            ErrorCode::AlreadyEnrolled => pb::ErrorCode::AlreadyEnrolled,
            ErrorCode::FailedPrecondition => pb::ErrorCode::FailedPrecondition,
            ErrorCode::Superseded => pb::ErrorCode::Superseded,
            ErrorCode::Unknown(n) => return n,
        };
        code as u32
    }

    /// The code for a number received on the wire. Never fails: numbers this
    /// version does not know become [`ErrorCode::Unknown`].
    pub fn from_u32(n: u32) -> ErrorCode {
        let Ok(code) = i32::try_from(n).map(pb::ErrorCode::try_from) else {
            return ErrorCode::Unknown(n);
        };
        match code {
            Ok(pb::ErrorCode::Malformed) => ErrorCode::Malformed,
            Ok(pb::ErrorCode::FrameTooLarge) => ErrorCode::FrameTooLarge,
            Ok(pb::ErrorCode::UnsupportedVersion) => ErrorCode::UnsupportedVersion,
            Ok(pb::ErrorCode::NotAuthenticated) => ErrorCode::NotAuthenticated,
            Ok(pb::ErrorCode::AuthTimeout) => ErrorCode::AuthTimeout,
            Ok(pb::ErrorCode::UnknownDevice) => ErrorCode::UnknownDevice,
            Ok(pb::ErrorCode::BadSignature) => ErrorCode::BadSignature,
            Ok(pb::ErrorCode::DeviceRevoked) => ErrorCode::DeviceRevoked,
            Ok(pb::ErrorCode::InviteUnknown) => ErrorCode::InviteUnknown,
            Ok(pb::ErrorCode::InviteUsed) => ErrorCode::InviteUsed,
            Ok(pb::ErrorCode::InviteExpired) => ErrorCode::InviteExpired,
            Ok(pb::ErrorCode::Forbidden) => ErrorCode::Forbidden,
            Ok(pb::ErrorCode::NotFound) => ErrorCode::NotFound,
            Ok(pb::ErrorCode::InvalidArgument) => ErrorCode::InvalidArgument,
            Ok(pb::ErrorCode::RateLimited) => ErrorCode::RateLimited,
            Ok(pb::ErrorCode::Unavailable) => ErrorCode::Unavailable,
            Ok(pb::ErrorCode::Internal) => ErrorCode::Internal,
            Ok(pb::ErrorCode::AlreadyEnrolled) => ErrorCode::AlreadyEnrolled,
            Ok(pb::ErrorCode::FailedPrecondition) => ErrorCode::FailedPrecondition,
            Ok(pb::ErrorCode::Superseded) => ErrorCode::Superseded,
            Ok(pb::ErrorCode::Unspecified) | Err(_) => ErrorCode::Unknown(n),
        }
    }

    /// A short, stable, lowercase name for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::AuthTimeout => "auth_timeout",
            ErrorCode::UnknownDevice => "unknown_device",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::InviteUnknown => "invite_unknown",
            ErrorCode::InviteUsed => "invite_used",
            ErrorCode::InviteExpired => "invite_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::AlreadyEnrolled => "already_enrolled",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::Superseded => "superseded",
            ErrorCode::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(n) => write!(f, "unknown error code {n}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// An error as it travels on the wire: a code and operator-facing text.
///
/// The detail is written by the server for operators and never holds user
/// data (no ids, names, keys or content).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {detail}")]
pub struct WireError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub detail: String,
}

/// The longest detail text accepted from the wire; longer text is cut.
pub const MAX_DETAIL_LEN: usize = 512;

impl WireError {
    /// An error with the given code and explanation.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        WireError {
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn from_wire(e: pb::Error) -> Self {
        let mut detail = e.detail;
        if detail.len() > MAX_DETAIL_LEN {
            let mut cut = MAX_DETAIL_LEN;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        let code = u32::try_from(e.code).map_or(ErrorCode::Unknown(0), ErrorCode::from_u32);
        WireError { code, detail }
    }

    pub(crate) fn to_wire(&self) -> pb::Error {
        pb::Error {
            code: i32::try_from(self.code.to_u32()).unwrap_or(pb::ErrorCode::Internal as i32),
            detail: self.detail.clone(),
        }
    }
}

/// Why bytes received from a peer could not be turned into a message.
///
/// The text names the field at fault, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes are not a protobuf encoding of the expected message.
    #[error("not a valid protobuf message")]
    Protobuf,
    /// A required field is absent or empty.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field is present but has the wrong length or an unknown value.
    #[error("invalid field `{0}`")]
    Invalid(&'static str),
    /// The message is for a protocol version this end does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u32),
    /// Text that should hold an invite does not.
    #[error("not a hotline invite: {0}")]
    NotAnInvite(&'static str),
}

impl DecodeError {
    /// The error code to answer a peer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::Malformed,
        }
    }
}

impl From<prost::DecodeError> for DecodeError {
    fn from(_: prost::DecodeError) -> Self {
        DecodeError::Protobuf
    }
}

impl From<DecodeError> for WireError {
    fn from(e: DecodeError) -> Self {
        WireError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_numbers() {
        for n in 1..=20 {
            let code = ErrorCode::from_u32(n);
            assert!(!matches!(code, ErrorCode::Unknown(_)), "code {n} is known");
            assert_eq!(code.to_u32(), n);
        }
        assert_eq!(ErrorCode::from_u32(0), ErrorCode::Unknown(0));
        assert_eq!(ErrorCode::from_u32(1000), ErrorCode::Unknown(1000));
        assert_eq!(ErrorCode::from_u32(u32::MAX), ErrorCode::Unknown(u32::MAX));
        assert_eq!(ErrorCode::Unknown(1000).to_u32(), 1000);
    }

    #[test]
    fn long_details_from_the_wire_are_cut_on_a_char_boundary() {
        let e = WireError::from_wire(pb::Error {
            code: 7,
            detail: "é".repeat(MAX_DETAIL_LEN),
        });
        assert_eq!(e.code, ErrorCode::BadSignature);
        assert!(e.detail.len() <= MAX_DETAIL_LEN);
        assert!(e.detail.chars().all(|c| c == 'é'));
    }
}
