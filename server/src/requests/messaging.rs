//! End-to-end messaging: the roster, prekeys and envelopes.
//!
//! The server opens nothing here. It checks what it can without keys it
//! does not have: that prekeys and envelopes are signed by the device that
//! sends them, that envelopes go only to enrolled devices a sender of that
//! role may write to, and that rosters only move forward.

use hotline_proto::alert::Push;
use hotline_proto::e2e::envelope::SignedEnvelope;
use hotline_proto::e2e::prekey::{PrekeyKind, SignedPrekey};
use hotline_proto::e2e::roster::SignedRoster;
use hotline_proto::message::{InboxItem, MAX_INBOX_BATCH, PrekeyBundle, Response};
use hotline_proto::{DeviceId, Role};
use tracing::info;

use super::{PushTo, Reply, RequestError, Session, Shared};
use crate::domain::mailbox::StoredPrekey;
use crate::store::RosterRefused;

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

pub(super) async fn get_roster(shared: &Shared) -> Result<Reply, RequestError> {
    let bytes = shared.store_call(|s| s.roster()).await?;
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
        let prekey = signed.verify(&device.identity_key, now).map_err(|_| {
            RequestError::BadSignature("a prekey is not validly signed by this device")
        })?;
        stored.push(StoredPrekey {
            one_time: prekey.kind == PrekeyKind::OneTime,
            id: prekey.id,
            expires_at: prekey.expires_at,
            signed: signed.encode(),
        });
    }
    shared
        .store_call(move |s| s.publish_prekeys(id, stored))
        .await?;
    Ok(Response::Done.into())
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
    let mut bundles = Vec::with_capacity(devices.len());
    for id in devices {
        let Some(device) = shared.store_read(|s| s.device(&id))? else {
            return Err(RequestError::NotFound("a requested device is not enrolled"));
        };
        if device.revoked_at.is_some() {
            continue;
        }
        if !may_address(session.role, &session.device_id, device.role, &id) {
            return Err(forbidden_recipient());
        }
        let prekey = shared
            .store_call(move |s| s.take_prekey(&id, now))
            .await?
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

fn forbidden_recipient() -> RequestError {
    RequestError::Forbidden("your role may not write to that device".into())
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
    for (id, bytes) in items {
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
