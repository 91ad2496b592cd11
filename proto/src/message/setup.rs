//! The set-up exchange that opens every connection: the server's
//! [`Challenge`], the device's [`SetupRequest`] (authenticate or enroll)
//! and the server's answer, a [`Welcome`] or a refusal.

use prost::Message as _;

use crate::auth::{NONCE_LEN, Nonce};
use crate::error::{DecodeError, WireError};
use crate::identity::{DeviceId, IdentityPublicKey, Signature};
use crate::invite::InviteToken;
use crate::role::Role;
use crate::{PROTOCOL_VERSION, pb};

fn check_version(v: u32) -> Result<(), DecodeError> {
    match v {
        0 => Err(DecodeError::Missing("protocol_version")),
        PROTOCOL_VERSION => Ok(()),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

/// The server's first message on a new connection (on a unidirectional
/// stream it opens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Fresh randomness the device must sign.
    pub nonce: Nonce,
}

impl Challenge {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        pb::Challenge {
            protocol_version: PROTOCOL_VERSION,
            nonce: self.nonce.0.to_vec().into(),
        }
        .encode_to_vec()
    }

    /// Parses a frame payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let m = pb::Challenge::decode(bytes)?;
        check_version(m.protocol_version)?;
        let nonce: [u8; NONCE_LEN] = m
            .nonce
            .as_ref()
            .try_into()
            .map_err(|_| DecodeError::Invalid("nonce"))?;
        Ok(Challenge {
            nonce: Nonce(nonce),
        })
    }
}

/// The device's set-up message: authenticate, or enroll with an invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupRequest {
    /// An enrolled device proves it holds its identity key.
    Auth {
        /// Which device.
        device_id: DeviceId,
        /// Signature over [`crate::auth::device_auth_transcript`].
        signature: Signature,
    },
    /// A new device redeems an invite.
    Enroll {
        /// The invite's one-time token.
        token: InviteToken,
        /// The device's new identity key.
        identity_key: IdentityPublicKey,
        /// Signature over [`crate::auth::enroll_transcript`].
        signature: Signature,
        /// A defender device's panic key, which then ends the transcript.
        panic_key: Option<IdentityPublicKey>,
    },
    /// An enrolled defender device proves it holds its panic key: the
    /// session may only raise alerts and check in.
    PanicAuth {
        /// Which device.
        device_id: DeviceId,
        /// Signature with the panic key over
        /// [`crate::auth::panic_auth_transcript`].
        signature: Signature,
    },
}

impl SetupRequest {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let kind = match self {
            SetupRequest::Auth {
                device_id,
                signature,
            } => pb::setup_request::Kind::Auth(pb::AuthProof {
                device_id: device_id.as_bytes().to_vec().into(),
                signature: signature.as_bytes().to_vec().into(),
                panic: false,
            }),
            SetupRequest::PanicAuth {
                device_id,
                signature,
            } => pb::setup_request::Kind::Auth(pb::AuthProof {
                device_id: device_id.as_bytes().to_vec().into(),
                signature: signature.as_bytes().to_vec().into(),
                panic: true,
            }),
            SetupRequest::Enroll {
                token,
                identity_key,
                signature,
                panic_key,
            } => pb::setup_request::Kind::Enroll(pb::EnrollRequest {
                invite_token: token.as_bytes().to_vec().into(),
                identity_key: identity_key.as_bytes().to_vec().into(),
                signature: signature.as_bytes().to_vec().into(),
                panic_key: panic_key
                    .map(|k| k.as_bytes().to_vec())
                    .unwrap_or_default()
                    .into(),
            }),
        };
        pb::SetupRequest {
            protocol_version: PROTOCOL_VERSION,
            kind: Some(kind),
        }
        .encode_to_vec()
    }

    /// Parses a frame payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let m = pb::SetupRequest::decode(bytes)?;
        check_version(m.protocol_version)?;
        match m.kind.ok_or(DecodeError::Missing("kind"))? {
            pb::setup_request::Kind::Auth(a) if a.panic => Ok(SetupRequest::PanicAuth {
                device_id: DeviceId::from_slice(&a.device_id, "device_id")?,
                signature: Signature::from_slice(&a.signature, "signature")?,
            }),
            pb::setup_request::Kind::Auth(a) => Ok(SetupRequest::Auth {
                device_id: DeviceId::from_slice(&a.device_id, "device_id")?,
                signature: Signature::from_slice(&a.signature, "signature")?,
            }),
            pb::setup_request::Kind::Enroll(e) => Ok(SetupRequest::Enroll {
                token: InviteToken::from_slice(&e.invite_token, "invite_token")?,
                identity_key: IdentityPublicKey::from_slice(&e.identity_key, "identity_key")?,
                signature: Signature::from_slice(&e.signature, "signature")?,
                panic_key: match e.panic_key.len() {
                    0 => None,
                    _ => Some(IdentityPublicKey::from_slice(&e.panic_key, "panic_key")?),
                },
            }),
        }
    }
}

/// The server accepted the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The authenticated device.
    pub device_id: DeviceId,
    /// Its role.
    pub role: Role,
    /// Server time, seconds since the Unix epoch.
    pub server_time: u64,
    /// The session was authenticated with the panic key: it may only
    /// raise alerts and check in.
    pub panic: bool,
    /// When the newest roster the server holds expires (`None`: it holds
    /// none, or did not say).
    pub roster_expires_at: Option<u64>,
    /// Whether this device is on that roster.
    pub roster_standing: RosterStanding,
}

/// Where a device stands with the newest roster the server holds, as the
/// server reads it (it cannot check the roster's signature; clients that
/// pinned the root can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterStanding {
    /// The server did not say (an older server).
    Unknown,
    /// No roster has been uploaded yet.
    NoRoster,
    /// The device is on it.
    OnRoster,
    /// The device is not on it: staff pages, claims and replies are
    /// refused until an admin signs a roster that lists it.
    NotOnRoster,
}

impl RosterStanding {
    fn to_wire(self) -> i32 {
        (match self {
            RosterStanding::Unknown => pb::RosterStanding::Unspecified,
            RosterStanding::NoRoster => pb::RosterStanding::NoRoster,
            RosterStanding::OnRoster => pb::RosterStanding::OnRoster,
            RosterStanding::NotOnRoster => pb::RosterStanding::NotOnRoster,
        }) as i32
    }

    fn from_wire(v: i32) -> RosterStanding {
        match pb::RosterStanding::try_from(v) {
            Ok(pb::RosterStanding::NoRoster) => RosterStanding::NoRoster,
            Ok(pb::RosterStanding::OnRoster) => RosterStanding::OnRoster,
            Ok(pb::RosterStanding::NotOnRoster) => RosterStanding::NotOnRoster,
            _ => RosterStanding::Unknown,
        }
    }
}

/// The server's answer to a [`SetupRequest`].
pub type SetupResponse = Result<Welcome, WireError>;

/// Encodes a [`SetupResponse`] as a frame payload.
pub fn encode_setup_response(r: &SetupResponse) -> Vec<u8> {
    let result = match r {
        Ok(w) => pb::setup_response::Result::Welcome(pb::Welcome {
            device_id: w.device_id.as_bytes().to_vec().into(),
            role: w.role.to_wire(),
            server_time: w.server_time,
            panic: w.panic,
            roster_expires_at: w.roster_expires_at.unwrap_or(0),
            roster_standing: w.roster_standing.to_wire(),
        }),
        Err(e) => pb::setup_response::Result::Error(e.to_wire()),
    };
    pb::SetupResponse {
        result: Some(result),
    }
    .encode_to_vec()
}

/// Parses a [`SetupResponse`] frame payload.
pub fn decode_setup_response(bytes: &[u8]) -> Result<SetupResponse, DecodeError> {
    let m = pb::SetupResponse::decode(bytes)?;
    match m.result.ok_or(DecodeError::Missing("result"))? {
        pb::setup_response::Result::Welcome(w) => Ok(Ok(Welcome {
            device_id: DeviceId::from_slice(&w.device_id, "device_id")?,
            role: Role::from_wire_field(w.role, "role")?,
            server_time: w.server_time,
            panic: w.panic,
            roster_expires_at: (w.roster_expires_at != 0).then_some(w.roster_expires_at),
            roster_standing: RosterStanding::from_wire(w.roster_standing),
        })),
        pb::setup_response::Result::Error(e) => Ok(Err(WireError::from_wire(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use crate::identity::IdentityKeyPair;

    #[test]
    fn setup_messages_round_trip() {
        let pair = IdentityKeyPair::from_seed(&[5; 32]);
        let c = Challenge {
            nonce: Nonce([1; 32]),
        };
        assert_eq!(Challenge::decode(&c.encode()), Ok(c));
        let reqs = [
            SetupRequest::Auth {
                device_id: pair.device_id(),
                signature: pair.sign(b"x"),
            },
            SetupRequest::Enroll {
                token: InviteToken::from_bytes([2; 32]),
                identity_key: pair.public_key(),
                signature: pair.sign(b"y"),
                panic_key: None,
            },
            SetupRequest::Enroll {
                token: InviteToken::from_bytes([2; 32]),
                identity_key: pair.public_key(),
                signature: pair.sign(b"y"),
                panic_key: Some(IdentityKeyPair::from_seed(&[6; 32]).public_key()),
            },
            SetupRequest::PanicAuth {
                device_id: pair.device_id(),
                signature: pair.sign(b"z"),
            },
        ];
        for r in reqs {
            assert_eq!(SetupRequest::decode(&r.encode()), Ok(r));
        }
        let ok: SetupResponse = Ok(Welcome {
            device_id: pair.device_id(),
            role: Role::Coordinator,
            server_time: 12,
            panic: true,
            roster_expires_at: Some(99),
            roster_standing: RosterStanding::NotOnRoster,
        });
        assert_eq!(decode_setup_response(&encode_setup_response(&ok)), Ok(ok));
        let err: SetupResponse = Err(WireError::new(ErrorCode::DeviceRevoked, "revoked"));
        assert_eq!(decode_setup_response(&encode_setup_response(&err)), Ok(err));
    }

    #[test]
    fn missing_and_wrong_fields_are_named() {
        assert_eq!(
            SetupRequest::decode(&[]),
            Err(DecodeError::Missing("protocol_version"))
        );
        let future = pb::SetupRequest {
            protocol_version: 2,
            kind: None,
        };
        assert_eq!(
            SetupRequest::decode(&future.encode_to_vec()),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let no_kind = pb::SetupRequest {
            protocol_version: PROTOCOL_VERSION,
            kind: None,
        };
        assert_eq!(
            SetupRequest::decode(&no_kind.encode_to_vec()),
            Err(DecodeError::Missing("kind"))
        );
    }
}
