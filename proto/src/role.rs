//! What a device may be.

use std::fmt;
use std::str::FromStr;

use crate::error::DecodeError;
use crate::pb;

/// The role a device is enrolled with. Decided by the invite, fixed for the
/// life of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A human-rights defender at risk.
    Defender,
    /// A duty officer answering alerts.
    Officer,
    /// A coordinator running cases and assistance.
    Coordinator,
    /// An administrator of the organisation and the server.
    Admin,
}

impl Role {
    /// Every role, in order of increasing authority.
    pub const ALL: [Role; 4] = [
        Role::Defender,
        Role::Officer,
        Role::Coordinator,
        Role::Admin,
    ];

    /// The lowercase name used on the command line and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Defender => "defender",
            Role::Officer => "officer",
            Role::Coordinator => "coordinator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role is staff (everyone but defenders).
    pub fn is_staff(self) -> bool {
        self != Role::Defender
    }

    pub(crate) fn from_wire(value: i32) -> Option<Role> {
        match pb::Role::try_from(value).ok()? {
            pb::Role::Unspecified => None,
            pb::Role::Defender => Some(Role::Defender),
            pb::Role::Officer => Some(Role::Officer),
            pb::Role::Coordinator => Some(Role::Coordinator),
            pb::Role::Admin => Some(Role::Admin),
        }
    }

    /// The role in the wire field `field`; an unknown or unspecified
    /// value is an error naming the field.
    pub(crate) fn from_wire_field(value: i32, field: &'static str) -> Result<Role, DecodeError> {
        Role::from_wire(value).ok_or(DecodeError::Invalid(field))
    }

    pub(crate) fn to_wire(self) -> i32 {
        let role = match self {
            Role::Defender => pb::Role::Defender,
            Role::Officer => pb::Role::Officer,
            Role::Coordinator => pb::Role::Coordinator,
            Role::Admin => pb::Role::Admin,
        };
        role as i32
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The text was not one of `defender`, `officer`, `coordinator`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role (expected defender, officer, coordinator or admin)")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or(UnknownRole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(Role::from_wire(role.to_wire()), Some(role));
        }
        assert_eq!("Officer".parse::<Role>(), Ok(Role::Officer));
        assert_eq!("root".parse::<Role>(), Err(UnknownRole));
    }

    #[test]
    fn unspecified_and_unknown_wire_values_are_not_roles() {
        assert_eq!(Role::from_wire(0), None);
        assert_eq!(Role::from_wire(99), None);
        assert_eq!(Role::from_wire(-1), None);
    }
}
