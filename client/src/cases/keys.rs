//! Case keys among staff devices (docs/cases.md, "Keys"): which keys to
//! send when a roster adds staff devices, which cases to rotate when one
//! drops them, and what a CASE_KEYS envelope received does.
//!
//! Keys travel in ordinary envelopes (ContentKind CASE_KEYS, at most
//! [`MAX_CASE_KEYS`] each) through the message outbox: sealed to the
//! staff devices on the roster, retried when offline, never kept in the
//! history. A key received is kept only if it comes from a staff device on
//! the roster and the case's events of its epoch commit to it
//! ([`Replica::add_key`]).

use hotline_proto::DeviceId;
use hotline_proto::case::key::CaseKey;
use hotline_proto::case::{CaseId, CaseState};
use hotline_proto::e2e::content::{Kind, MAX_CASE_KEYS};
use hotline_proto::e2e::roster::Roster;

use super::replica::{KeyOutcome, Replica};
use crate::error::ClientError;
use crate::messenger::{Device, Received};

/// What a newer roster changed among staff devices, as this replica
/// last saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffChange {
    /// Staff devices on the new roster that were not on the one before.
    pub added: Vec<DeviceId>,
    /// Staff devices on the one before that the new roster drops.
    pub removed: Vec<DeviceId>,
}

/// The staff devices on `roster`, other than `me`.
fn staff_of(roster: &Roster) -> Vec<DeviceId> {
    let mut s: Vec<DeviceId> = roster
        .entries
        .iter()
        .filter(|e| e.role.is_staff())
        .map(|e| e.device_id)
        .collect();
    s.sort();
    s.dedup();
    s
}

/// Compares `roster`'s staff with those of the roster this replica
/// handled before, records the new ones, and marks every case held for a
/// rotation if a staff device was dropped. The first roster a replica
/// handles changes nothing (this device sends the key of each case it
/// opens to the whole roster of the moment).
pub fn roster_seen(
    replica: &mut Replica,
    roster: &Roster,
    me: DeviceId,
) -> Result<StaffChange, ClientError> {
    let now = staff_of(roster);
    let Some(before) = replica.roster_staff() else {
        replica.set_roster_staff(&now)?;
        return Ok(StaffChange::default());
    };
    let change = StaffChange {
        added: now
            .iter()
            .filter(|d| !before.contains(d) && **d != me)
            .copied()
            .collect(),
        removed: before
            .iter()
            .filter(|d| !now.contains(d) && **d != me)
            .copied()
            .collect(),
    };
    if !change.removed.is_empty() {
        replica.mark_rotations(&change.removed)?;
    }
    if now != before {
        replica.set_roster_staff(&now)?;
    }
    Ok(change)
}

/// Every key a staff device joining the roster needs: every epoch of
/// every case requested or open, and of the ledger.
pub fn keys_to_share(replica: &Replica) -> Result<Vec<(CaseId, u32, CaseKey)>, ClientError> {
    let mut out = Vec::new();
    for s in replica.summaries() {
        let wanted = s.ledger || matches!(s.state(), Some(CaseState::Requested | CaseState::Open));
        let Some(case) = s.id().filter(|_| wanted) else {
            continue;
        };
        let file = replica.load(&case)?;
        out.extend(file.keys.iter().map(|(e, k)| (case, *e, k.clone())));
    }
    Ok(out)
}

/// Queues `keys` in `device`'s outbox for `to` (or, `None`, every other
/// staff device on the roster), [`MAX_CASE_KEYS`] an envelope. Returns how
/// many envelopes wait.
pub fn queue_keys(
    device: &mut Device,
    keys: &[(CaseId, u32, CaseKey)],
    to: Option<DeviceId>,
) -> Result<usize, ClientError> {
    let mut n = 0;
    for chunk in keys.chunks(MAX_CASE_KEYS) {
        device.queue_case_keys(chunk, to)?;
        n += 1;
    }
    Ok(n)
}

/// Takes the CASE_KEYS envelopes out of what `device` just opened: their
/// keys go to the case replica if their sender is a staff device on the
/// roster (else they are ignored, with a warning); they are never shown
/// as messages nor kept in the history. Returns the rest.
pub(crate) fn take_case_keys(
    device: &mut Device,
    opened: Vec<(Received, [u8; 16])>,
) -> Result<Vec<(Received, [u8; 16])>, ClientError> {
    let (keys, rest): (Vec<_>, Vec<_>) = opened
        .into_iter()
        .partition(|(r, _)| matches!(r.message.kind, Kind::CaseKeys(_)));
    if keys.is_empty() {
        return Ok(rest);
    }
    if !device.profile().role()?.is_staff() {
        device.warn(
            "case keys were sent to this device, which is not staff's: they were ignored".into(),
        );
        return Ok(rest);
    }
    // A case replica that cannot be read or written never stands between
    // staff and their messages (an SOS's text among them): the keys are
    // then lost, loudly, and come again with the next roster change or
    // reopening.
    let mut replica = match super::open_replica(device) {
        Ok(r) => r,
        Err(e) => {
            device.warn(format!(
                "case keys received could not be kept ({e}): ask a staff member to reopen the cases concerned"
            ));
            return Ok(rest);
        }
    };
    let (mut mismatched, mut refused, mut failed) = (0usize, 0usize, 0usize);
    for (r, _) in keys {
        let Kind::CaseKeys(list) = r.message.kind else {
            continue;
        };
        if !r.sender_role.is_some_and(|role| role.is_staff()) {
            refused += 1;
            continue;
        }
        for (case, epoch, key) in list {
            match replica.add_key(&case, epoch, key) {
                Ok(KeyOutcome::Kept | KeyOutcome::AlreadyHeld | KeyOutcome::Erased) => {}
                Ok(KeyOutcome::Mismatch | KeyOutcome::Conflicting) => mismatched += 1,
                Err(_) => failed += 1,
            }
        }
    }
    if failed > 0 {
        device.warn(format!(
            "{failed} case key(s) received could not be saved in the case replica"
        ));
    }
    if refused > 0 {
        device.warn(format!(
            "case keys from {refused} sender(s) not on the staff roster were ignored"
        ));
    }
    if mismatched > 0 {
        device.warn(format!(
            "{mismatched} case key(s) received were not kept: the case's events commit to another key"
        ));
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::replica::{CaseFile, StoredEvent};
    use crate::cases::testing::{event, staff};
    use crate::state::StateDir;
    use hotline_proto::Role;
    use hotline_proto::e2e::roster::RosterEntry;

    fn roster(version: u64, devices: &[(u8, Role)]) -> Roster {
        Roster {
            version,
            issued_at: 0,
            expires_at: u64::MAX,
            previous_hash: [0; 32],
            entries: devices
                .iter()
                .map(|(n, role)| RosterEntry {
                    device_id: staff(*n).device_id(),
                    role: *role,
                    identity_key: staff(*n).public_key(),
                    valid_from: 0,
                    valid_until: u64::MAX,
                })
                .collect(),
        }
    }

    #[test]
    fn a_roster_adding_staff_is_told_and_one_dropping_staff_marks_each_case_for_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let me = staff(1).device_id();
        let case = CaseId::from_bytes([7; 16]);
        let key = CaseKey::from_bytes([8; 32]);
        let mut file = CaseFile::new(case);
        file.keys.insert(1, key.clone());
        file.add(StoredEvent {
            position: 1,
            at: 1,
            event: event(
                &staff(1),
                &key,
                case,
                [1; 16],
                1,
                Some(CaseState::Open),
                |_| {},
            ),
            author_key: staff(1).public_key(),
        });
        replica.save(&file).expect("save");

        // The first roster handled changes nothing.
        let v1 = roster(1, &[(1, Role::Officer), (2, Role::Admin)]);
        assert_eq!(
            roster_seen(&mut replica, &v1, me).expect("seen"),
            StaffChange::default()
        );
        // A defender on a roster is not staff; a coordinator joins.
        let v2 = roster(
            2,
            &[
                (1, Role::Officer),
                (2, Role::Admin),
                (3, Role::Coordinator),
                (4, Role::Defender),
            ],
        );
        let change = roster_seen(&mut replica, &v2, me).expect("seen");
        assert_eq!(change.added, [staff(3).device_id()]);
        assert!(change.removed.is_empty());
        assert!(replica.rotation(&case).is_none());
        assert_eq!(keys_to_share(&replica).expect("keys"), [(case, 1, key)]);
        // The admin leaves: the case must be rotated past epoch 1.
        let v3 = roster(3, &[(1, Role::Officer), (3, Role::Coordinator)]);
        let change = roster_seen(&mut replica, &v3, me).expect("seen");
        assert_eq!(change.removed, [staff(2).device_id()]);
        let rot = replica.rotation(&case).expect("marked").clone();
        assert_eq!(rot.epoch, 1);
        assert_eq!(rot.removed, [staff(2).device_id().as_bytes().to_vec()]);
        // Kept across a reopen; settled once rotated.
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        assert!(replica.rotation(&case).is_some());
        replica.rotated(&case).expect("rotated");
        assert!(replica.rotation(&case).is_none());
        // The same roster again changes nothing.
        assert_eq!(
            roster_seen(&mut replica, &v3, me).expect("seen"),
            StaffChange::default()
        );
    }
}
