//! The hotline wire protocol, shared by server and clients. It does no I/O.
//!
//! # Layout
//!
//! The modules follow the data path of a connection:
//!
//! * [`frame`]: the length-delimited framing every stream uses, with a hard
//!   size limit checked before anything of that size is allocated.
//! * [`message`]: the domain types a frame decodes into. The protobuf types
//!   generated from `proto/hotline/v1/hotline.proto` stay private; every wire
//!   message is parsed here into a type whose fields are known to be present
//!   and in range (parse, don't validate).
//! * [`error`]: the error codes both ends exchange, and why decoding failed.
//! * [`identity`]: device identity keys (Ed25519), signatures and device ids.
//! * [`auth`]: the exact bytes a device signs to enroll and to authenticate,
//!   bound to the TLS session by a keying-material export.
//! * [`invite`]: one-time invites and the certificate pin they carry.
//! * [`role`]: what a device may be.
//! * [`alert`]: alert priorities, states, summaries and server pushes.
//! * [`time`]: how both ends show a time to a person (UTC).
//! * [`case`]: cases: signed, sealed case events as the server sees them
//!   and as staff seal and open them, case keys and their commitment, the
//!   statistics ledger's id, the case sync, and the relocation lifecycle
//!   every reader checks.
//! * [`e2e`]: end-to-end encryption: organisation root, signed staff
//!   roster, prekeys, the content message sealed inside envelopes, sealed
//!   envelopes, replay protection.
//!
//! `docs/protocol.md` at the repository root specifies all of it for
//! independent implementations.

pub mod alert;
pub mod auth;
pub mod case;
pub mod e2e;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod invite;
pub mod message;
pub mod role;
pub mod time;

mod pb;

pub use error::{DecodeError, ErrorCode, WireError};
pub use identity::{DeviceId, IdentityKeyPair, IdentityPublicKey, Signature};
pub use invite::{CertPin, Invite, InviteToken};
pub use role::Role;

/// The protocol version carried in `Challenge` and `SetupRequest`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The TLS application-layer protocol name. A connection that does not
/// negotiate exactly this is refused during the handshake.
pub const ALPN: &[u8] = b"hotline/1";
