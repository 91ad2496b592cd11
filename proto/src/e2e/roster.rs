//! The staff roster: which devices are staff, with which role and which
//! identity key, signed by the organisation's offline root key.
//!
//! Clients seal messages only to devices in a roster that verifies against
//! the root they pinned at enrollment, has not expired, and is not older
//! than one they have already seen. The server stores and serves rosters
//! but cannot make one: it cannot add a recipient of its own.

use prost::Message;
use ring::digest;

use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityPublicKey, Signature};
use crate::pb;
use crate::role::Role;

use super::org::{OrgKeyPair, OrgPublicKey};

pub(crate) const LABEL: &[u8] = b"hotline/1 roster";
const FORMAT: u32 = 1;

/// One staff device.
/// How long before a roster expires staff and admins are warned (7 days).
pub const EXPIRY_WARNING_SECS: u64 = 7 * 24 * 3600;

/// The warning for staff and admins about a roster that expires at
/// `expires_at` (`None`: there is none), at `now`: `None` while it has
/// more than [`EXPIRY_WARNING_SECS`] left. Carries no id, name or key, so
/// the server may log it.
pub fn expiry_warning(expires_at: Option<u64>, now: u64) -> Option<String> {
    let expires_at = expires_at?;
    if now >= expires_at {
        return Some(format!(
            "the staff roster EXPIRED {} ago (at {}): SOSes are sealed to it with a warning and staff added since cannot read them; an admin must run `hotline org sign-roster` now",
            span(now - expires_at),
            crate::time::date_time(expires_at)
        ));
    }
    let left = expires_at - now;
    (left <= EXPIRY_WARNING_SECS).then(|| {
        format!(
            "the staff roster expires in {} (at {}): an admin must run `hotline org sign-roster` before then",
            span(left),
            crate::time::date_time(expires_at)
        )
    })
}

/// A span of time in words: `3 d 4 h`, `5 h 10 min`, `12 min`.
fn span(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} min", s.div_ceil(60)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// Derived from the identity key.
    pub device_id: DeviceId,
    /// Officer, coordinator or admin.
    pub role: Role,
    /// The device's identity key, which signs its prekeys and envelopes.
    pub identity_key: IdentityPublicKey,
    /// From when the entry is valid.
    pub valid_from: u64,
    /// Until when.
    pub valid_until: u64,
}

/// A verified roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Strictly increasing.
    pub version: u64,
    /// When it was signed.
    pub issued_at: u64,
    /// After this clients refuse it.
    pub expires_at: u64,
    /// SHA-256 of the previous roster's body (zeros for the first).
    pub previous_hash: [u8; 32],
    /// The staff devices.
    pub entries: Vec<RosterEntry>,
}

/// A roster as it travels: the signed bytes and the root's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoster {
    /// The exact bytes signed (a `RosterBody`).
    pub body: Vec<u8>,
    /// The root's signature.
    pub signature: Signature,
}

/// Why a roster was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// Not signed by the pinned organisation root.
    #[error("the roster is not signed by your organisation's root key")]
    BadSignature,
    /// Past its expiry.
    #[error("the roster has expired; an admin must sign a new one")]
    Expired,
    /// Older than a roster this client already accepted.
    #[error(
        "the roster is older (version {got}) than one already seen (version {seen}): rollback refused"
    )]
    Rollback {
        /// The version offered.
        got: u64,
        /// The newest version seen.
        seen: u64,
    },
    /// Same version as one seen, different contents: the root signed two
    /// different rosters under one version, or it is forged.
    #[error("two different rosters carry version {0}")]
    Equivocation(u64),
    /// The next version after the one accepted, but its `previous_hash`
    /// does not name the accepted roster: the chain was forked or forged.
    #[error(
        "roster version {0} does not chain to the version before it that this device accepted: refused"
    )]
    BrokenChain(u64),
    /// A field is wrong.
    #[error("the roster is malformed: {0}")]
    Decode(#[from] DecodeError),
}

impl Roster {
    /// Signs the roster with the organisation root (offline, by an admin).
    pub fn sign(&self, root: &OrgKeyPair) -> SignedRoster {
        let body = pb::RosterBody {
            format: FORMAT,
            version: self.version,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            previous_hash: self.previous_hash.to_vec().into(),
            entries: self
                .entries
                .iter()
                .map(|e| pb::RosterEntry {
                    device_id: e.device_id.as_bytes().to_vec().into(),
                    role: e.role.to_wire(),
                    identity_key: e.identity_key.as_bytes().to_vec().into(),
                    valid_from: e.valid_from,
                    valid_until: e.valid_until,
                })
                .collect(),
        }
        .encode_to_vec();
        let signature = root.sign(&super::signed_message(LABEL, &body));
        SignedRoster { body, signature }
    }

    /// The entries valid at `now`.
    pub fn members(&self, now: u64) -> impl Iterator<Item = &RosterEntry> {
        self.entries
            .iter()
            .filter(move |e| e.valid_from <= now && now < e.valid_until)
    }

    /// The entry for `device`, if it is valid at `now`.
    pub fn member(&self, device: &DeviceId, now: u64) -> Option<&RosterEntry> {
        self.members(now).find(|e| e.device_id == *device)
    }

    /// The last second at which the roster was valid: the moment whose
    /// members an SOS is sealed to once the roster has expired.
    pub fn last_valid_moment(&self) -> u64 {
        self.expires_at.saturating_sub(1)
    }
}

/// What a client remembers of the newest roster it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenRoster {
    /// Its version.
    pub version: u64,
    /// SHA-256 of its body.
    pub hash: [u8; 32],
}

impl SignedRoster {
    /// SHA-256 of the body: what the next roster's `previous_hash` names.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = [0u8; 32];
        h.copy_from_slice(digest::digest(&digest::SHA256, &self.body).as_ref());
        h
    }

    /// Verifies against the pinned `root` (before parsing), then checks
    /// expiry at `now`, the entries, and that it is not older than `seen`.
    pub fn verify(
        &self,
        root: &OrgPublicKey,
        now: u64,
        seen: Option<SeenRoster>,
    ) -> Result<Roster, RosterError> {
        self.check(root, Some(now), seen)
    }

    /// Like [`SignedRoster::verify`], without step 2's expiry check: what
    /// an SOS is sealed to when the roster has expired (an SOS is never
    /// refused for a reason the defender cannot fix). The caller checks
    /// `expires_at` and warns; the members to seal to are those valid at
    /// its last valid moment ([`Roster::last_valid_moment`]).
    pub fn verify_even_if_expired(
        &self,
        root: &OrgPublicKey,
        seen: Option<SeenRoster>,
    ) -> Result<Roster, RosterError> {
        self.check(root, None, seen)
    }

    /// The checks of section 7.3 in their order; expiry only with `now`.
    fn check(
        &self,
        root: &OrgPublicKey,
        now: Option<u64>,
        seen: Option<SeenRoster>,
    ) -> Result<Roster, RosterError> {
        root.verify(&super::signed_message(LABEL, &self.body), &self.signature)
            .map_err(|_| RosterError::BadSignature)?;
        let roster = self.read_unverified()?;
        if let Some(now) = now
            && now >= roster.expires_at
        {
            return Err(RosterError::Expired);
        }
        if let Some(seen) = seen {
            if roster.version < seen.version {
                return Err(RosterError::Rollback {
                    got: roster.version,
                    seen: seen.version,
                });
            }
            if roster.version == seen.version && self.hash() != seen.hash {
                return Err(RosterError::Equivocation(roster.version));
            }
            // Only the link to the very next version can be checked: a
            // device that missed versions never saw the rosters between.
            if roster.version == seen.version.saturating_add(1) && roster.previous_hash != seen.hash
            {
                return Err(RosterError::BrokenChain(roster.version));
            }
        }
        Ok(roster)
    }

    /// The roster's body, parsed and checked (format, entries) but with
    /// its signature **not** verified: for the server, which cannot verify
    /// it (it holds no root) yet routes by it, pages only the staff it
    /// lists and warns before it expires. Clients use
    /// [`SignedRoster::verify`].
    pub fn read_unverified(&self) -> Result<Roster, RosterError> {
        let m = pb::RosterBody::decode(self.body.as_slice()).map_err(DecodeError::from)?;
        if m.format != FORMAT {
            return Err(DecodeError::UnsupportedVersion(m.format).into());
        }
        let previous_hash: [u8; 32] = m
            .previous_hash
            .as_ref()
            .try_into()
            .map_err(|_| DecodeError::Invalid("previous_hash"))?;
        let mut entries: Vec<RosterEntry> = Vec::with_capacity(m.entries.len());
        for e in m.entries {
            let identity_key = IdentityPublicKey::from_slice(&e.identity_key, "identity_key")?;
            let device_id = DeviceId::from_slice(&e.device_id, "device_id")?;
            let role = Role::from_wire(e.role).ok_or(DecodeError::Invalid("role"))?;
            if device_id != identity_key.device_id()
                || !role.is_staff()
                || entries.iter().any(|x| x.device_id == device_id)
            {
                return Err(DecodeError::Invalid("entries").into());
            }
            entries.push(RosterEntry {
                device_id,
                role,
                identity_key,
                valid_from: e.valid_from,
                valid_until: e.valid_until,
            });
        }
        Ok(Roster {
            version: m.version,
            issued_at: m.issued_at,
            expires_at: m.expires_at,
            previous_hash,
            entries,
        })
    }

    pub(crate) fn to_wire(&self) -> pb::SignedRoster {
        pb::SignedRoster {
            body: self.body.clone().into(),
            signature: self.signature.as_bytes().to_vec().into(),
        }
    }

    pub(crate) fn from_wire(m: pb::SignedRoster) -> Result<Self, DecodeError> {
        Ok(SignedRoster {
            body: m.body.to_vec(),
            signature: Signature::from_slice(&m.signature, "signature")?,
        })
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Decodes the wire form (not yet verified).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(pb::SignedRoster::decode(bytes)?)
    }

    /// Whether this roster may replace `current` (the roster it follows,
    /// `None` for the first): its `previous_hash` must be the SHA-256 of
    /// `current`'s body, or all zeros for the first roster. Checked by the
    /// server before it stores a roster, without the root's signature.
    pub fn chains_to(&self, current: Option<&SignedRoster>) -> Result<bool, RosterError> {
        let expected = current.map_or([0; 32], SignedRoster::hash);
        Ok(self.read_unverified()?.previous_hash == expected)
    }

    /// The version, read without verifying the signature: for the server,
    /// which keeps the newest roster but cannot check who signed it.
    pub fn version_unverified(&self) -> Result<u64, DecodeError> {
        Ok(pb::RosterBody::decode(self.body.as_slice())?.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeyPair;

    fn roster(version: u64, expires_at: u64) -> Roster {
        let officer = IdentityKeyPair::from_seed(&[1; 32]);
        Roster {
            version,
            issued_at: 10,
            expires_at,
            previous_hash: [0; 32],
            entries: vec![RosterEntry {
                device_id: officer.device_id(),
                role: Role::Officer,
                identity_key: officer.public_key(),
                valid_from: 0,
                valid_until: 1000,
            }],
        }
    }

    #[test]
    fn the_pinned_root_expiry_and_rollback_rules() {
        let root = OrgKeyPair::from_seed(&[7; 32]);
        let impostor = OrgKeyPair::from_seed(&[8; 32]);
        let v2 = roster(2, 500).sign(&root);
        let wire = SignedRoster::decode(&v2.encode()).expect("decodes");
        let accepted = wire.verify(&root.public_key(), 100, None).expect("valid");
        assert_eq!(accepted.version, 2);
        assert_eq!(accepted.members(100).count(), 1);
        assert_eq!(accepted.members(1000).count(), 0);

        // Not signed by the pinned root.
        let forged = roster(3, 500).sign(&impostor);
        assert_eq!(
            forged.verify(&root.public_key(), 100, None),
            Err(RosterError::BadSignature)
        );
        // Expired.
        assert_eq!(
            v2.verify(&root.public_key(), 500, None),
            Err(RosterError::Expired)
        );
        // Expired, yet still verifiable for an SOS, with its last members.
        let expired = v2
            .verify_even_if_expired(&root.public_key(), None)
            .expect("verifies without the expiry check");
        assert_eq!(expired.members(expired.last_valid_moment()).count(), 1);
        assert_eq!(
            forged.verify_even_if_expired(&root.public_key(), None),
            Err(RosterError::BadSignature)
        );
        // Rolled back below what was seen.
        let seen = SeenRoster {
            version: 3,
            hash: [1; 32],
        };
        assert_eq!(
            v2.verify(&root.public_key(), 100, Some(seen)),
            Err(RosterError::Rollback { got: 2, seen: 3 })
        );
        // Same version, other contents.
        let seen = SeenRoster {
            version: 2,
            hash: [1; 32],
        };
        assert_eq!(
            v2.verify(&root.public_key(), 100, Some(seen)),
            Err(RosterError::Equivocation(2))
        );
        let seen = SeenRoster {
            version: 2,
            hash: v2.hash(),
        };
        assert!(v2.verify(&root.public_key(), 100, Some(seen)).is_ok());
        // Any flipped byte of the body breaks the signature.
        for i in 0..v2.body.len() {
            let mut bad = v2.clone();
            bad.body[i] ^= 1;
            assert_eq!(
                bad.verify(&root.public_key(), 100, None),
                Err(RosterError::BadSignature)
            );
        }
    }

    #[test]
    fn the_next_version_must_chain_to_the_one_accepted() {
        let root = OrgKeyPair::from_seed(&[7; 32]);
        let v1 = roster(1, 500).sign(&root);
        let seen = Some(SeenRoster {
            version: 1,
            hash: v1.hash(),
        });
        // The first roster names no predecessor.
        assert_eq!(v1.chains_to(None), Ok(true));
        let mut next = roster(2, 500);
        next.previous_hash = v1.hash();
        let v2 = next.sign(&root);
        assert_eq!(v2.chains_to(Some(&v1)), Ok(true));
        assert!(v2.verify(&root.public_key(), 100, seen).is_ok());
        // All zeros (or any other hash) after version 1 does not chain.
        let unchained = roster(2, 500).sign(&root);
        assert_eq!(unchained.chains_to(Some(&v1)), Ok(false));
        assert_eq!(
            unchained.verify(&root.public_key(), 100, seen),
            Err(RosterError::BrokenChain(2))
        );
        assert_eq!(
            unchained.verify_even_if_expired(&root.public_key(), seen),
            Err(RosterError::BrokenChain(2))
        );
        // After a gap the missing link cannot be checked: accepted.
        let v3 = roster(3, 500).sign(&root);
        assert!(v3.verify(&root.public_key(), 100, seen).is_ok());
    }

    #[test]
    fn expiry_is_warned_a_week_ahead_and_after() {
        let now = 1_000_000;
        assert_eq!(expiry_warning(None, now), None);
        assert_eq!(
            expiry_warning(Some(now + EXPIRY_WARNING_SECS + 1), now),
            None
        );
        let soon = expiry_warning(Some(now + 3 * 86_400 + 7200), now).expect("warned");
        assert!(soon.contains("expires in 3 d 2 h"), "{soon}");
        let gone = expiry_warning(Some(now - 7200), now).expect("warned");
        assert!(gone.contains("EXPIRED 2 h 0 min ago"), "{gone}");
        // An hour's roster is not "0 d 0 h" from expiry.
        let hour = expiry_warning(Some(now + 3000), now).expect("warned");
        assert!(hour.contains("expires in 50 min (at 1970-01-12"), "{hour}");
    }

    #[test]
    fn defenders_and_mismatched_ids_are_not_roster_entries() {
        let root = OrgKeyPair::from_seed(&[7; 32]);
        let mut r = roster(1, 500);
        r.entries[0].role = Role::Defender;
        assert!(matches!(
            r.sign(&root).verify(&root.public_key(), 1, None),
            Err(RosterError::Decode(_))
        ));
        let mut r = roster(1, 500);
        r.entries[0].device_id = IdentityKeyPair::from_seed(&[9; 32]).device_id();
        assert!(matches!(
            r.sign(&root).verify(&root.public_key(), 1, None),
            Err(RosterError::Decode(_))
        ));
    }
}
