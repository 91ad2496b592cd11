//! End-to-end messaging: the roster, prekeys and envelopes.
//!
//! The server opens nothing here. It checks what it can without keys it
//! does not have: that prekeys and envelopes are signed by the device that
//! sends them, that envelopes go only to enrolled devices a sender of that
//! role may write to, and that rosters only move forward.

use hotline_proto::alert::Push;
use hotline_proto::e2e::envelope::SignedEnvelope;
use hotline_proto::e2e::prekey::{PrekeyError, PrekeyKind, SignedPrekey};
use hotline_proto::e2e::roster::SignedRoster;
use hotline_proto::message::{InboxItem, MAX_INBOX_BATCH, PrekeyBundle, Response};
use hotline_proto::{DeviceId, Role};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tracing::info;

use super::{PushTo, Reply, RequestError, Session, Shared};
use crate::domain::mailbox::StoredPrekey;
use crate::store::{RosterRefused, StoreError};

/// The largest envelope the server stores (its wire form): the largest
/// padded content (64 KiB) sealed to a few hundred devices, and within one
/// log record.
pub const MAX_ENVELOPE_BYTES: usize = 96 * 1024;

pub(super) async fn put_roster(
    shared: &Shared,
    roster: SignedRoster,
) -> Result<Reply, RequestError> {
    // The server cannot check the organisation's signature (it does not
    // trust itself with that); clients do. It only keeps versions moving
    // forward, each roster chained to the one it replaces.
    // It must read as a roster, though: the server pages only the staff
    // it lists.
    let body = roster
        .read_unverified()
        .map_err(|_| RequestError::Malformed("the roster does not decode"))?;
    let bytes = roster.encode();
    match shared
        .store_call(move |s| s.put_roster(body.version, body.previous_hash, bytes))
        .await?
    {
        Ok(()) => {
            info!("roster stored");
            Ok(Response::Done.into())
        }
        Err(RosterRefused::NotNewer(_)) => Err(RequestError::FailedPrecondition(
            "a roster with this or a higher version is already stored",
        )),
        Err(RosterRefused::BrokenChain) => Err(RequestError::FailedPrecondition(
            "the roster's previous_hash is not the hash of the roster it replaces (all zeros for the first): sign it again over the current roster",
        )),
    }
}

pub(super) async fn get_roster(shared: &Shared, version: u64) -> Result<Reply, RequestError> {
    let bytes = if version == 0 {
        shared.store_call(|s| s.roster()).await?
    } else {
        // An older version: a reader checks a case event against the
        // roster it names (docs/protocol.md, section 9.5).
        let found = shared
            .store_call(move |s| s.roster_of_version(version))
            .await?;
        if found.is_none() {
            return Err(RequestError::NotFound(
                "the server never accepted a roster of this version",
            ));
        }
        found
    };
    let roster = bytes
        .map(|b| SignedRoster::decode(&b))
        .transpose()
        .map_err(|_| RequestError::Internal("a stored roster does not decode"))?;
    Ok(Response::Roster(roster).into())
}

pub(super) async fn publish_prekeys(
    shared: &Shared,
    session: Session,
    prekeys: Vec<SignedPrekey>,
) -> Result<Reply, RequestError> {
    let id = session.device_id;
    let device = shared.enrolled_device(id)?;
    let now = crate::unix_now();
    let mut stored = Vec::with_capacity(prekeys.len());
    for signed in prekeys {
        let prekey = signed
            .verify(&device.identity_key, now)
            .map_err(prekey_refused)?;
        stored.push(StoredPrekey {
            one_time: prekey.kind == PrekeyKind::OneTime,
            id: prekey.id,
            expires_at: prekey.expires_at,
            signed: signed.encode(),
        });
    }
    // An empty list only asks how many are left: nothing to store.
    if !stored.is_empty() {
        shared
            .store_call(move |s| s.publish_prekeys(id, stored))
            .await?;
    }
    // The owner tops up from the server's count: others may have taken
    // one-time prekeys its own count still holds.
    let one_time = shared.store_read(|s| s.one_time_prekeys_left(&id, now))?;
    Ok(Response::PrekeysPublished { one_time }.into())
}

/// Why a prekey being published is refused, as the wire names it: an
/// expired one is `INVALID_ARGUMENT` (the device signs fresh ones; its
/// signature is good), an undecodable one `MALFORMED`, and one not signed
/// by this device (or naming another) `BAD_SIGNATURE`.
fn prekey_refused(e: PrekeyError) -> RequestError {
    match e {
        PrekeyError::Expired => RequestError::InvalidArgument(
            "a prekey has expired; sign fresh prekeys (check this device's clock) and publish them",
        ),
        PrekeyError::Decode(_) => RequestError::Malformed("a prekey does not decode"),
        PrekeyError::BadSignature | PrekeyError::WrongDevice => {
            RequestError::BadSignature("a prekey is not validly signed by this device")
        }
    }
}

/// The window of [`PrekeyBudget`].
const PREKEY_WINDOW_SECS: u64 = 3600;

/// How many one-time prekeys of each target device each requesting device
/// was handed in the current hour. Past the limit a requester gets the
/// target's last-resort prekey, so that no one device can use up another
/// device's one-time prekeys (and with them its forward secrecy). Kept in
/// memory: a restart of the server starts every budget afresh.
#[derive(Debug)]
pub struct PrekeyBudget {
    per_hour: u32,
    used: Mutex<HashMap<(DeviceId, DeviceId), (u64, u32)>>,
}

impl PrekeyBudget {
    /// A budget of `per_hour` one-time prekeys per requester and target.
    pub fn new(per_hour: u32) -> PrekeyBudget {
        PrekeyBudget {
            per_hour,
            used: Mutex::default(),
        }
    }

    /// Takes one from `requester`'s budget for `target`; false if none is
    /// left this hour.
    fn take(&self, requester: DeviceId, target: DeviceId, now: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() >= 4096 {
            used.retain(|_, (since, _)| now.saturating_sub(*since) < PREKEY_WINDOW_SECS);
        }
        let entry = used.entry((requester, target)).or_insert((now, 0));
        if now.saturating_sub(entry.0) >= PREKEY_WINDOW_SECS {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_hour {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Gives back one taken by [`PrekeyBudget::take`] that was not used
    /// (the target had no one-time prekey left).
    fn give_back(&self, requester: DeviceId, target: DeviceId) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = used.get_mut(&(requester, target)) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

/// Defenders write only to staff (and themselves); staff write to anyone.
fn may_address(
    sender: Role,
    sender_id: &DeviceId,
    recipient: Role,
    recipient_id: &DeviceId,
) -> bool {
    sender.is_staff() || recipient.is_staff() || sender_id == recipient_id
}

pub(super) async fn fetch_prekeys(
    shared: &Shared,
    session: Session,
    devices: Vec<DeviceId>,
) -> Result<Reply, RequestError> {
    let now = crate::unix_now();
    // Every device is checked before any prekey is taken: a refusal for one
    // (a defender naming another defender, say) costs the others nothing.
    let allowed = allowed_recipients(shared, session, devices)?;
    let mut bundles = Vec::with_capacity(allowed.len());
    for (id, device) in allowed {
        let requester = session.device_id;
        let prekey = if shared.prekey_budget.take(requester, id, now) {
            match shared
                .store_call(move |s| s.take_prekey_marked(&id, now))
                .await
            {
                Ok(taken) => {
                    let (bytes, one_time) = taken.unzip();
                    if one_time != Some(true) {
                        shared.prekey_budget.give_back(requester, id);
                    }
                    bytes
                }
                // The storage takes no writes (full, failing, read-only):
                // taking a one-time prekey cannot be saved, but sealing
                // must not wait for it (an SOS's text is sealed with
                // these): the last-resort prekey, which is only read.
                Err(StoreError::Degraded(_) | StoreError::ReadOnly | StoreError::Io(_)) => {
                    shared.prekey_budget.give_back(requester, id);
                    shared.store_read(|s| s.last_resort_prekey(&id, now))?
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            shared.store_read(|s| s.last_resort_prekey(&id, now))?
        };
        let prekey = prekey
            .map(|b| SignedPrekey::decode(&b))
            .transpose()
            .map_err(|_| RequestError::Internal("a stored prekey does not decode"))?;
        bundles.push(PrekeyBundle {
            device_id: id,
            identity_key: device.identity_key,
            role: device.role,
            prekey,
        });
    }
    Ok(Response::PrekeyBundles(bundles).into())
}

/// The last-resort prekey of each of `devices` the session may write to
/// (checked as [`fetch_prekeys`] checks them): only read, nothing is
/// taken, so no budget applies. A defender device keeps them, to seal an
/// SOS with its panic key while the server is out of reach.
pub(super) fn fetch_last_resort_prekeys(
    shared: &Shared,
    session: Session,
    devices: Vec<DeviceId>,
) -> Result<Reply, RequestError> {
    let now = crate::unix_now();
    let allowed = allowed_recipients(shared, session, devices)?;
    let mut bundles = Vec::with_capacity(allowed.len());
    for (id, device) in allowed {
        let prekey = shared
            .store_read(|s| s.last_resort_prekey(&id, now))?
            .map(|b| SignedPrekey::decode(&b))
            .transpose()
            .map_err(|_| RequestError::Internal("a stored prekey does not decode"))?;
        bundles.push(PrekeyBundle {
            device_id: id,
            identity_key: device.identity_key,
            role: device.role,
            prekey,
        });
    }
    Ok(Response::PrekeyBundles(bundles).into())
}

/// The devices of `devices` the session may seal to, each once, with
/// what the store holds of them ([`check_recipient`]); a refusal for one
/// is the answer for all.
fn allowed_recipients(
    shared: &Shared,
    session: Session,
    devices: Vec<DeviceId>,
) -> Result<Vec<(DeviceId, crate::domain::devices::Device)>, RequestError> {
    // A device listed twice is answered once.
    let mut seen = HashSet::with_capacity(devices.len());
    let devices: Vec<DeviceId> = devices.into_iter().filter(|d| seen.insert(*d)).collect();
    let stored = shared.store_read(|s| s.devices_by_id(&devices))?;
    let mut allowed = Vec::with_capacity(devices.len());
    for (id, device) in devices.iter().zip(stored) {
        if let Some(device) = check_recipient(session, id, device.as_ref())? {
            allowed.push((*id, device.clone()));
        }
    }
    Ok(allowed)
}

fn forbidden_recipient() -> RequestError {
    RequestError::Forbidden("your role may not write to that device".into())
}

/// The one answer a defender gets for a device it may not write to,
/// whether that device is unknown, revoked or another defender: anything
/// finer would tell a defender which ids belong to other defenders.
fn not_a_staff_device() -> RequestError {
    RequestError::Forbidden("a defender may write only to staff devices and itself".into())
}

/// Whether `session` may seal to device `id` (`device`: what the store
/// holds of it). `Ok(None)`: a revoked staff device, left out. A defender
/// gets one answer for every device that is not staff (and not itself);
/// staff get the precise one.
fn check_recipient<'d>(
    session: Session,
    id: &DeviceId,
    device: Option<&'d crate::domain::devices::Device>,
) -> Result<Option<&'d crate::domain::devices::Device>, RequestError> {
    let defender = !session.role.is_staff();
    let own = *id == session.device_id;
    match device {
        Some(d) if defender && !own && !d.role.is_staff() => Err(not_a_staff_device()),
        None if defender => Err(not_a_staff_device()),
        None => Err(RequestError::NotFound("a requested device is not enrolled")),
        Some(d) if d.revoked_at.is_some() => Ok(None),
        Some(d) if !may_address(session.role, &session.device_id, d.role, id) => {
            Err(forbidden_recipient())
        }
        Some(d) => Ok(Some(d)),
    }
}

/// Checks an envelope a device sends: not too large, signed by that
/// device, addressed to enrolled devices it may write to. Returns its
/// recipients.
pub(super) fn check_envelope(
    shared: &Shared,
    session: Session,
    envelope: &SignedEnvelope,
) -> Result<Vec<DeviceId>, RequestError> {
    if envelope.body.len() + 128 > MAX_ENVELOPE_BYTES {
        return Err(RequestError::InvalidArgument("the message is too large"));
    }
    if envelope.sender != session.device_id {
        return Err(RequestError::Forbidden(
            "an envelope must be sent by its signer".into(),
        ));
    }
    let sender = shared.enrolled_device(session.device_id)?;
    // A panic-key session signs with the panic key (it cannot reach the
    // identity key without the passphrase); any other with the identity
    // key. Receivers get both keys with the envelope.
    let verified = match (session.panic, sender.panic_key) {
        (true, Some(panic_key)) => envelope.verify_signed_by(&panic_key),
        (true, None) => Err(hotline_proto::e2e::envelope::EnvelopeError::BadSignature),
        (false, _) => envelope.verify_signature(&sender.identity_key),
    };
    verified
        .map_err(|_| RequestError::BadSignature("the envelope is not signed by this device"))?;
    let recipients = envelope
        .recipients_unverified()
        .map_err(|_| RequestError::Malformed("the envelope does not decode"))?;
    let devices = shared.store_read(|s| s.devices_by_id(&recipients))?;
    for (id, device) in recipients.iter().zip(devices) {
        if !session.role.is_staff() {
            // One answer for unknown, revoked and other defenders' devices.
            check_recipient(session, id, device.as_ref())?;
            continue;
        }
        let Some(device) = device else {
            return Err(RequestError::NotFound("a recipient is not enrolled"));
        };
        if !may_address(session.role, &session.device_id, device.role, id) {
            return Err(forbidden_recipient());
        }
    }
    Ok(recipients)
}

/// Sends an envelope; `thread`, the alert a staff device says it answers
/// (the only binding of a message to an alert the server can see: the
/// thread inside the envelope is end-to-end encrypted). A staff reply in
/// the thread of an alert its defender must never learn of (a duress
/// alert, a notice of a schedule change) is refused if it would reach the
/// defender's device. A defender's binding is not looked at: whatever the
/// answer, it must not tell a defender's device such an alert exists.
pub(super) async fn send_envelope(
    shared: &Shared,
    session: Session,
    envelope: SignedEnvelope,
    thread: Option<u64>,
) -> Result<Reply, RequestError> {
    // Staff who cannot read alerts may not answer defenders: the defender
    // would drop a reply from a device not on its roster anyway.
    shared.require_on_roster(session)?;
    let recipients = check_envelope(shared, session, &envelope)?;
    if let Some(alert) = thread.filter(|_| session.role.is_staff()) {
        let Some(a) = shared.store_read(|s| s.alert(alert))? else {
            return Err(RequestError::NotFound("no such alert"));
        };
        if !a.origin.shown_to_defender() && recipients.contains(&a.defender) {
            return Err(RequestError::FailedPrecondition(
                "nothing about this alert may reach its defender's device (the person holding it may be a coercer); write to the team instead",
            ));
        }
    }
    let digest = envelope.digest();
    let bytes = envelope.encode();
    let sender = session.device_id;
    let devices: Vec<DeviceId> = recipients
        .iter()
        .copied()
        .filter(|d| *d != sender)
        .collect();
    let (id, duplicate) = shared
        .store_call(move |s| s.store_envelope(sender, digest, recipients, bytes))
        .await?;
    // Stored: the recipients online now hear of it at once, each by the
    // id it has in that device's own inbox (nothing readable, and not the
    // sender's id); the others find it in their inbox. A retry delivers
    // nothing new and pushes nothing.
    let pushes = if duplicate {
        Vec::new()
    } else {
        let ids = shared.store_read(|s| Ok(s.inbox_ids_of(&digest, &devices)))?;
        devices
            .into_iter()
            .zip(ids)
            .filter(|(_, inbox_id)| *inbox_id != 0)
            .map(|(d, inbox_id)| PushTo {
                devices: vec![d],
                push: Push::Message(inbox_id),
            })
            .collect()
    };
    Ok(Reply::with_pushes(
        Response::EnvelopeAccepted { id, duplicate },
        pushes,
    ))
}

/// The bytes an inbox answer may hold: a frame, less room for the
/// message's own framing.
pub const INBOX_ANSWER_BUDGET: usize = hotline_proto::frame::MAX_FRAME_LEN - 4096;
/// What an inbox item adds to its envelope's bytes, at most: its id, the
/// sender's identity and panic keys, and the protobuf tags and lengths.
const INBOX_ITEM_OVERHEAD: usize = 128;

pub(super) async fn fetch_inbox(
    shared: &Shared,
    session: Session,
    after: u64,
    limit: u32,
) -> Result<Reply, RequestError> {
    let id = session.device_id;
    let limit = limit.min(MAX_INBOX_BATCH) as usize;
    let items = shared
        .store_call(move |s| s.inbox(&id, after, limit))
        .await?;
    let mut out = Vec::with_capacity(items.len());
    // An answer must fit one frame: a few large envelopes (a defender can
    // send them) must never make every fetch of an inbox fail. The batch
    // stops before the one that would not fit; the client fetches again
    // from where it stands. One envelope always fits.
    let mut size = 0usize;
    for (id, bytes) in items {
        size = size.saturating_add(bytes.len() + INBOX_ITEM_OVERHEAD);
        if !out.is_empty() && size > INBOX_ANSWER_BUDGET {
            break;
        }
        let envelope = SignedEnvelope::decode(&bytes)
            .map_err(|_| RequestError::Internal("a stored envelope does not decode"))?;
        let sender = envelope.sender;
        let Some(device) = shared.store_read(|s| s.device(&sender))? else {
            continue;
        };
        out.push(InboxItem {
            id,
            envelope,
            sender_identity_key: device.identity_key,
            sender_panic_key: device.panic_key,
        });
    }
    Ok(Response::Inbox(out).into())
}

pub(super) async fn ack_inbox(
    shared: &Shared,
    session: Session,
    up_to: u64,
) -> Result<Reply, RequestError> {
    let id = session.device_id;
    // An id above every one this device was given names nothing (ids
    // only grow, so one checked now stays valid until the ack is stored).
    if up_to > shared.store_read(|s| s.last_inbox_id(&id))? {
        return Err(RequestError::InvalidArgument(
            "this inbox id was never given to this device: acknowledge the last id fetch_inbox returned",
        ));
    }
    shared.store_call(move |s| s.ack_inbox(id, up_to)).await?;
    Ok(Response::Done.into())
}

pub(super) async fn mark_read(
    shared: &Shared,
    session: Session,
    ids: Vec<u64>,
) -> Result<Reply, RequestError> {
    let me = session.device_id;
    shared.store_call(move |s| s.mark_read(me, ids)).await?;
    Ok(Response::Done.into())
}

pub(super) fn delivery(
    shared: &Shared,
    session: Session,
    ids: &[u64],
) -> Result<Reply, RequestError> {
    let states = shared.store_read(|s| s.delivery(&session.device_id, ids))?;
    Ok(Response::Delivery(states).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(b: u8) -> DeviceId {
        DeviceId::from_bytes([b; 16])
    }

    #[test]
    fn a_requester_gets_a_few_one_time_prekeys_of_a_target_an_hour() {
        let budget = PrekeyBudget::new(2);
        let (me, staff, other) = (dev(1), dev(2), dev(3));
        assert!(budget.take(me, staff, 100));
        assert!(budget.take(me, staff, 101));
        assert!(!budget.take(me, staff, 102), "the third in the hour");
        // Others, and other targets, have their own budgets.
        assert!(budget.take(other, staff, 102));
        assert!(budget.take(me, other, 102));
        // One given back (the target had none left) can be taken again.
        budget.give_back(me, staff);
        assert!(budget.take(me, staff, 103));
        assert!(!budget.take(me, staff, 104));
        // An hour after the first, the budget starts afresh.
        assert!(budget.take(me, staff, 100 + PREKEY_WINDOW_SECS));
        // Zero: never a one-time prekey.
        assert!(!PrekeyBudget::new(0).take(me, staff, 100));
    }
}
