//! Case keys among staff devices (docs/cases.md, "Keys"): which keys to
//! send when a roster adds staff devices, which cases to rotate when one
//! drops them, and what a CASE_KEYS envelope received does.
//!
//! Keys travel in ordinary envelopes (ContentKind CASE_KEYS, at most
//! 500 each) through the message outbox: sealed to the
//! staff devices on the roster, retried when offline, never kept in the
//! history. A key received is kept only if it comes from a staff device on
//! the roster and the case's events of its epoch commit to it; before
//! any event of the epoch is held, every different key received waits
//! (at most four) until one commits to one of them
//! ([`Replica::add_key`]).

use hotline_proto::DeviceId;
use hotline_proto::case::key::CaseKey;
use hotline_proto::case::{CaseId, CaseState};
use hotline_proto::e2e::roster::Roster;

use super::replica::{KeyOutcome, Replica};
use crate::error::ClientError;
use crate::state::StateDir;

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

/// Of `keys` (every key a device a roster adds needs), those no other
/// staff device was seen sending to `device` (docs/cases.md, "Keys and
/// rotation": the first staff device to handle the roster sends them, and
/// the copy of its envelope that reaches the others tells them so).
pub fn not_sent_yet(
    replica: &Replica,
    keys: &[(CaseId, u32, CaseKey)],
    device: &DeviceId,
) -> Vec<(CaseId, u32, CaseKey)> {
    let sent = replica.keys_sent_to(device);
    keys.iter()
        .filter(|(c, e, _)| !sent.contains(&(*c, *e)))
        .cloned()
        .collect()
}

/// Case keys that came in one CASE_KEYS envelope.
#[derive(Debug, Clone)]
pub struct KeysReceived {
    /// Its sender.
    pub sender: DeviceId,
    /// Its sender is a staff device on the roster.
    pub from_staff: bool,
    /// The keys.
    pub keys: Vec<(CaseId, u32, CaseKey)>,
    /// The devices the envelope was sealed to (its signed body says so;
    /// the server stored it for each of them), this one included.
    pub recipients: Vec<DeviceId>,
}

/// Keeps the keys of CASE_KEYS envelopes just opened by a device whose
/// case replica is in `state`, sealed under `storage_key`: those from a
/// staff device on the roster go to [`Replica::add_key`]; on a defender's
/// device (`staff_device` false), or from anyone else, they are ignored.
/// Returns the warnings for the person. A replica that cannot be read or
/// written never stops the inbox (an SOS's text may be behind): the keys
/// are then lost, with a warning, and come again with the next roster
/// change or reopening.
pub fn keep_received(
    state: &StateDir,
    storage_key: &[u8; 32],
    staff_device: bool,
    received: Vec<KeysReceived>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if received.is_empty() {
        return warnings;
    }
    if !staff_device {
        warnings.push(
            "case keys were sent to this device, which is not staff's: they were ignored".into(),
        );
        return warnings;
    }
    let mut replica = match Replica::open(state, storage_key) {
        Ok(r) => r,
        Err(e) => {
            warnings.push(format!(
                "case keys received could not be kept ({e}): ask a staff member to reopen the cases concerned"
            ));
            return warnings;
        }
    };
    let (mut refused, mut failed, mut dropped, mut too_many) = (0usize, 0usize, 0usize, 0usize);
    // Keys the case's events do not use, by case.
    let mut mismatched: std::collections::BTreeMap<CaseId, usize> = Default::default();
    for r in received {
        if !r.from_staff {
            refused += 1;
            continue;
        }
        // The keys this device now holds as the envelope carried them:
        // its other recipients were sent them too.
        let mut held = Vec::new();
        for (case, epoch, key) in r.keys {
            match replica.add_key(&case, epoch, key, r.sender) {
                Ok(KeyOutcome::Kept | KeyOutcome::AlreadyHeld) => held.push((case, epoch)),
                Ok(KeyOutcome::Erased | KeyOutcome::Pending) => {}
                Ok(KeyOutcome::TooMany) => too_many += 1,
                Ok(KeyOutcome::Mismatch) => *mismatched.entry(case).or_default() += 1,
                Ok(KeyOutcome::Candidate { replaced }) => dropped += usize::from(replaced),
                Err(_) => failed += 1,
            }
        }
        // Not recorded (the replica could not be written): this device
        // sends those keys too when the roster adds the device, which is
        // harmless.
        let _ = replica.record_keys_sent(&r.recipients, &held);
    }
    // Keys of cases not known yet wait in one file, written once.
    if let Err(e) = replica.save_pending() {
        warnings.push(format!(
            "case keys of cases this device does not know yet could not be kept ({e}): they come again with the next roster change or reopening"
        ));
    }
    if too_many > 0 {
        warnings.push(format!(
            "{too_many} case key(s) of cases this device does not know were ignored: their sender has {} keys of unknown cases waiting here already",
            crate::cases::replica::MAX_PENDING_KEYS_PER_SENDER
        ));
    }
    if refused > 0 {
        warnings.push(format!(
            "case keys from {refused} sender(s) not on the staff roster were ignored"
        ));
    }
    for (case, n) in mismatched {
        warnings.push(not_needed(&case, n));
    }
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} case key(s) were replaced: a staff device sent another key for an epoch of a case it had sent one for already, before any event of it (only its newest is kept; it may be sending keys that are not the case's)"
        ));
    }
    if failed > 0 {
        warnings.push(format!(
            "{failed} case key(s) received could not be saved in the case replica"
        ));
    }
    warnings
}

/// The words for `n` keys received for `case` that its events do not use:
/// most often the key of a staff device that lost a race to open the case
/// (two took a request on at once) or to renew its key; its change went
/// again under the case's key, so nothing is lost.
fn not_needed(case: &CaseId, n: usize) -> String {
    let id: String = hotline_proto::identity::hex(case.as_bytes())
        .chars()
        .take(8)
        .collect();
    let keys = if n == 1 {
        "a key from a staff device that lost a race to open the case (or to renew its key) was"
    } else {
        "keys from staff devices that lost a race to open the case (or to renew its key) were"
    };
    format!("case {id}: {keys} not needed: the case uses another one, and nothing is lost")
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

    #[test]
    fn keys_seen_sent_to_a_device_not_yet_on_the_roster_are_not_sent_to_it_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let me = staff(1).device_id();
        let (new, other) = (staff(3).device_id(), staff(2).device_id());
        let (a, b) = (CaseId::from_bytes([7; 16]), CaseId::from_bytes([8; 16]));
        let all = vec![
            (a, 1, CaseKey::from_bytes([1; 32])),
            (a, 2, CaseKey::from_bytes([2; 32])),
            (b, 1, CaseKey::from_bytes([3; 32])),
        ];
        // Before any roster is handled, nothing is recorded (the first
        // roster handled sends nothing anyway).
        replica
            .record_keys_sent(&[new], &[(a, 1)])
            .expect("recorded");
        assert_eq!(keys_not_sent(&replica, &all, &new), 3);
        let v1 = roster(1, &[(1, Role::Officer), (2, Role::Admin)]);
        roster_seen(&mut replica, &v1, me).expect("seen");
        // A copy of another staff device's envelope to the new device (and
        // to this one and a device on the roster) carried case a's keys.
        replica
            .record_keys_sent(&[new, me, other], &[(a, 1), (a, 2)])
            .expect("recorded");
        assert_eq!(not_sent_yet(&replica, &all, &new), [all[2].clone()]);
        // Devices already on the roster handled are not recorded.
        assert_eq!(keys_not_sent(&replica, &all, &other), 3);
        // Kept across a reopen; forgotten once the roster adding it is
        // handled.
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        assert_eq!(keys_not_sent(&replica, &all, &new), 1);
        replica.forget_keys_sent(&[new]).expect("forgotten");
        assert_eq!(keys_not_sent(&replica, &all, &new), 3);
    }

    fn keys_not_sent(replica: &Replica, all: &[(CaseId, u32, CaseKey)], d: &DeviceId) -> usize {
        not_sent_yet(replica, all, d).len()
    }
}
