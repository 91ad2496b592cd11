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
    let mut replica = super::open_replica(device)?;
    let (mut mismatched, mut refused) = (0usize, 0usize);
    for (r, _) in keys {
        let Kind::CaseKeys(list) = r.message.kind else {
            continue;
        };
        if !r.sender_role.is_some_and(|role| role.is_staff()) {
            refused += 1;
            continue;
        }
        for (case, epoch, key) in list {
            match replica.add_key(&case, epoch, key)? {
                KeyOutcome::Kept | KeyOutcome::AlreadyHeld | KeyOutcome::Erased => {}
                KeyOutcome::Mismatch | KeyOutcome::Conflicting => mismatched += 1,
            }
        }
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
