//! Devices and invites: who is enrolled, with which role, and the
//! one-time invites they enrolled with.

use hotline_proto::{DeviceId, IdentityPublicKey, Role};

/// A device as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Derived from the identity key.
    pub id: DeviceId,
    /// The key it authenticates with.
    pub identity_key: IdentityPublicKey,
    /// What it may do.
    pub role: Role,
    /// When it enrolled (seconds since the Unix epoch).
    pub enrolled_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
}

/// A pending or used invite, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// The role a device enrolled with it gets.
    pub role: Role,
    /// When it was made.
    pub created_at: u64,
    /// After this it is refused.
    pub expires_at: u64,
    /// When a device used it, if one did.
    pub used_at: Option<u64>,
}

/// What became of an enrollment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// The device is enrolled and the invite is spent.
    Enrolled(Device),
    /// No invite has this token.
    InviteUnknown,
    /// The invite was used before.
    InviteUsed,
    /// The invite expired.
    InviteExpired,
    /// This identity key is already enrolled.
    AlreadyEnrolled,
}

/// What became of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Revoked now, or earlier at the given time (revoking twice is harmless).
    Revoked {
        /// When.
        revoked_at: u64,
    },
    /// No such device.
    NotFound,
    /// It is the last active admin: revoking it would lock everyone out.
    LastAdmin,
}
