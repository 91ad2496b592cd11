//! The staff rosters a staff device has accepted, by version, kept so that
//! a case event is checked against the roster its author wrote it under
//! (docs/protocol.md, section 9.5): a device dropped from a later roster
//! keeps the events it wrote before, on every device, whenever it syncs.
//!
//! Only what the check needs is kept of each roster: its staff entries
//! (device id, identity key, validity window). Sealed under the device's
//! storage key in `<home>/rosters.sealed`. All are kept: a roster is
//! small, and an old event needs the roster of its version.

use std::collections::BTreeMap;

use hotline_proto::e2e::roster::Roster;
use hotline_proto::{DeviceId, IdentityPublicKey};
use prost::Message;

use crate::error::ClientError;
use crate::state::StateDir;

const FILE: &str = "rosters.sealed";

#[derive(Clone, PartialEq, Message)]
struct BookRow {
    #[prost(message, repeated, tag = "1")]
    rosters: Vec<RosterRow>,
}

#[derive(Clone, PartialEq, Message)]
struct RosterRow {
    #[prost(uint64, tag = "1")]
    version: u64,
    #[prost(message, repeated, tag = "2")]
    staff: Vec<StaffRow>,
    /// Its `previous_hash` (empty in books saved before it was kept): an
    /// older version fetched later must hash to it.
    #[prost(bytes = "vec", tag = "3")]
    previous_hash: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct StaffRow {
    #[prost(bytes = "vec", tag = "1")]
    device_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    identity_key: Vec<u8>,
    #[prost(uint64, tag = "3")]
    valid_from: u64,
    #[prost(uint64, tag = "4")]
    valid_until: u64,
}

/// A staff entry of an accepted roster.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Staff {
    device_id: DeviceId,
    identity_key: IdentityPublicKey,
    valid_from: u64,
    valid_until: u64,
}

/// The accepted rosters' staff, by roster version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterBook {
    rosters: BTreeMap<u64, Vec<Staff>>,
    /// Each version's `previous_hash`, where known.
    previous: BTreeMap<u64, [u8; 32]>,
}

fn damaged() -> ClientError {
    ClientError::State("the case replica is damaged (rosters)".into())
}

impl RosterBook {
    /// Reads the book from `dir` (empty if there is none yet).
    pub fn load(dir: &StateDir, key: &[u8; 32]) -> Result<RosterBook, ClientError> {
        let Some(bytes) = dir.load_sealed(FILE, key)? else {
            return Ok(RosterBook::default());
        };
        let row = BookRow::decode(bytes.as_slice()).map_err(|_| damaged())?;
        let mut rosters = BTreeMap::new();
        let mut previous = BTreeMap::new();
        for r in row.rosters {
            if let Ok(hash) = <[u8; 32]>::try_from(r.previous_hash.as_slice()) {
                previous.insert(r.version, hash);
            }
            let mut staff = Vec::with_capacity(r.staff.len());
            for s in r.staff {
                staff.push(Staff {
                    device_id: DeviceId::from_bytes(
                        s.device_id.as_slice().try_into().map_err(|_| damaged())?,
                    ),
                    identity_key: IdentityPublicKey::from_bytes(
                        s.identity_key
                            .as_slice()
                            .try_into()
                            .map_err(|_| damaged())?,
                    ),
                    valid_from: s.valid_from,
                    valid_until: s.valid_until,
                });
            }
            rosters.insert(r.version, staff);
        }
        Ok(RosterBook { rosters, previous })
    }

    fn save(&self, dir: &StateDir, key: &[u8; 32]) -> Result<(), ClientError> {
        let row = BookRow {
            rosters: self
                .rosters
                .iter()
                .map(|(version, staff)| RosterRow {
                    version: *version,
                    previous_hash: self
                        .previous
                        .get(version)
                        .map(|h| h.to_vec())
                        .unwrap_or_default(),
                    staff: staff
                        .iter()
                        .map(|s| StaffRow {
                            device_id: s.device_id.as_bytes().to_vec(),
                            identity_key: s.identity_key.as_bytes().to_vec(),
                            valid_from: s.valid_from,
                            valid_until: s.valid_until,
                        })
                        .collect(),
                })
                .collect(),
        };
        dir.save_sealed(FILE, key, &row.encode_to_vec())
    }

    /// Remembers `roster` (one this device accepted: verified under the
    /// organisation root) and saves the book if it is new, with what
    /// another holder of the book saved meanwhile. The first roster held
    /// for a version stays.
    pub fn remember(
        &mut self,
        roster: &Roster,
        dir: &StateDir,
        key: &[u8; 32],
    ) -> Result<(), ClientError> {
        if self.rosters.contains_key(&roster.version) {
            return Ok(());
        }
        let saved = RosterBook::load(dir, key)?;
        for (version, staff) in saved.rosters {
            self.rosters.entry(version).or_insert(staff);
        }
        for (version, hash) in saved.previous {
            self.previous.entry(version).or_insert(hash);
        }
        if self.rosters.contains_key(&roster.version) {
            return Ok(());
        }
        let staff = roster
            .entries
            .iter()
            .filter(|e| e.role.is_staff())
            .map(|e| Staff {
                device_id: e.device_id,
                identity_key: e.identity_key,
                valid_from: e.valid_from,
                valid_until: e.valid_until,
            })
            .collect();
        self.rosters.insert(roster.version, staff);
        self.previous.insert(roster.version, roster.previous_hash);
        self.save(dir, key)
    }

    /// Whether the book holds the roster of `version`.
    pub fn holds(&self, version: u64) -> bool {
        self.rosters.contains_key(&version)
    }

    /// The hash the roster of `version` must have, if this device holds
    /// the next version and knows its `previous_hash`.
    pub fn expected_hash(&self, version: u64) -> Option<[u8; 32]> {
        self.previous.get(&version.checked_add(1)?).copied()
    }

    /// Remembers a roster a staff device just accepted, in the book of
    /// its state directory, sealed under `key`.
    pub fn remember_accepted(
        state: &StateDir,
        key: &[u8; 32],
        roster: &Roster,
    ) -> Result<(), ClientError> {
        RosterBook::default().remember(roster, state, key)
    }

    /// Every staff device of every roster held.
    pub fn device_ids(&self) -> Vec<DeviceId> {
        let mut ids: Vec<DeviceId> = self
            .rosters
            .values()
            .flatten()
            .map(|s| s.device_id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The versions held, oldest first.
    pub fn versions(&self) -> Vec<u64> {
        self.rosters.keys().copied().collect()
    }

    /// Whether the roster of `version` (exactly that one; for version 0,
    /// "no roster", the newest held) lists `author` as a staff device
    /// with `key`, valid at `at` (the event's server time). A version not
    /// held lists no one: the sync fetches it first (docs/protocol.md,
    /// section 9.5).
    pub fn lists_staff(
        &self,
        version: u64,
        author: &DeviceId,
        key: &IdentityPublicKey,
        at: u64,
    ) -> bool {
        let staff = if version == 0 {
            self.rosters.values().next_back()
        } else {
            self.rosters.get(&version)
        };
        staff.is_some_and(|staff| {
            staff.iter().any(|s| {
                s.device_id == *author
                    && s.identity_key == *key
                    && s.valid_from <= at
                    && at < s.valid_until
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_proto::Role;
    use hotline_proto::e2e::roster::RosterEntry;

    fn entry(n: u8, role: Role, from: u64, until: u64) -> RosterEntry {
        let k = hotline_proto::IdentityKeyPair::from_seed(&[n; 32]);
        RosterEntry {
            device_id: k.device_id(),
            role,
            identity_key: k.public_key(),
            valid_from: from,
            valid_until: until,
        }
    }

    fn roster(version: u64, entries: Vec<RosterEntry>) -> Roster {
        Roster {
            version,
            issued_at: 0,
            expires_at: u64::MAX,
            previous_hash: [0; 32],
            entries,
        }
    }

    #[test]
    fn the_roster_of_the_events_version_decides_with_its_validity_window_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let key = [3u8; 32];
        let (a, d) = (
            entry(1, Role::Officer, 100, 200),
            entry(2, Role::Defender, 0, 999),
        );
        let mut book = RosterBook::default();
        book.remember(&roster(1, vec![a.clone(), d.clone()]), &state, &key)
            .expect("remember");
        book.remember(&roster(2, vec![]), &state, &key)
            .expect("remember");
        let book = RosterBook::load(&state, &key).expect("load");
        assert_eq!(book.versions(), [1, 2]);
        let listed =
            |v, e: &RosterEntry, at| book.lists_staff(v, &e.device_id, &e.identity_key, at);
        assert!(listed(1, &a, 150));
        // Outside its window, on a roster that dropped it, or a version
        // not held (never another version in its place): refused.
        assert!(!listed(1, &a, 99));
        assert!(!listed(1, &a, 200));
        assert!(!listed(2, &a, 150));
        assert!(!listed(7, &a, 150));
        // A defender is never staff; a wrong key never matches.
        assert!(!listed(1, &d, 150));
        assert!(!book.lists_staff(1, &a.device_id, &d.identity_key, 150));
        assert!(RosterBook::load(&state, &[4u8; 32]).is_err());
    }

    /// An older version fetched later must be the one the next version
    /// held names; what the book knows of that survives a reopen.
    #[test]
    fn the_next_versions_previous_hash_is_kept_to_check_an_older_one_fetched_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let key = [3u8; 32];
        let mut v4 = roster(4, vec![]);
        v4.previous_hash = [7; 32];
        let mut book = RosterBook::default();
        book.remember(&v4, &state, &key).expect("remember");
        let book = RosterBook::load(&state, &key).expect("load");
        assert!(book.holds(4) && !book.holds(3));
        assert_eq!(book.expected_hash(3), Some([7; 32]));
        assert_eq!(book.expected_hash(2), None, "v3 is not held");
        assert_eq!(book.expected_hash(u64::MAX), None);
    }
}
