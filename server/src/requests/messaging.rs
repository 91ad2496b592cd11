//! Requests for end-to-end messaging: the roster, prekeys and envelopes.
//!
//! The server opens nothing here. It checks what it can without keys it
//! does not have: that prekeys and envelopes are signed by the device that
//! sends them, that envelopes go only to enrolled devices a sender of that
//! role may write to, and that rosters only move forward.

use hotline_proto::e2e::envelope::SignedEnvelope;
use hotline_proto::e2e::prekey::{PrekeyKind, SignedPrekey};
use hotline_proto::message::{InboxItem, MAX_INBOX_BATCH, PrekeyBundle, Request, Response};
use hotline_proto::{DeviceId, ErrorCode, Role, WireError};
use tracing::info;

use crate::domain::mailbox::StoredPrekey;
use crate::endpoint::Shared;
use crate::endpoint::connection::{Session, store_error};
use crate::store::Store;

fn refuse(code: ErrorCode, detail: &str) -> Response {
    Response::Error(WireError::new(code, detail))
}

/// Answers one messaging request.
pub(crate) async fn handle(shared: &Shared, session: Session, req: Request) -> Response {
    let result = match req {
        Request::PutRoster(roster) => put_roster(shared, session, roster).await,
        Request::GetRoster => get_roster(shared).await,
        Request::PublishPrekeys(prekeys) => publish_prekeys(shared, session, prekeys).await,
        Request::FetchPrekeys(devices) => fetch_prekeys(shared, session, devices).await,
        Request::SendEnvelope(envelope) => send_envelope(shared, session, envelope).await,
        Request::FetchInbox { after, limit } => fetch_inbox(shared, session, after, limit).await,
        Request::AckInbox { up_to } => {
            let id = session.device_id;
            shared
                .store_call(move |s| s.ack_inbox(id, up_to))
                .await
                .map(|()| Response::Done)
                .map_err(store_error)
        }
        Request::MarkRead(ids) => {
            let me = session.device_id;
            shared
                .store_call(move |s| s.mark_read(me, ids))
                .await
                .map(|()| Response::Done)
                .map_err(store_error)
        }
        Request::Delivery(ids) => shared
            .store_read(|s| s.delivery(&session.device_id, &ids))
            .map(Response::Delivery)
            .map_err(store_error),
        _ => Err(WireError::new(ErrorCode::Internal, "server error")),
    };
    result.unwrap_or_else(Response::Error)
}

async fn put_roster(
    shared: &Shared,
    session: Session,
    roster: hotline_proto::e2e::roster::SignedRoster,
) -> Result<Response, WireError> {
    if session.role != Role::Admin {
        return Ok(refuse(
            ErrorCode::Forbidden,
            "your role may not upload the roster",
        ));
    }
    // The server cannot check the organisation's signature (it does not
    // trust itself with that); clients do. It only keeps versions moving
    // forward.
    let version = roster
        .version_unverified()
        .map_err(|_| WireError::new(ErrorCode::Malformed, "the roster does not decode"))?;
    let bytes = roster.encode();
    match shared
        .store_call(move |s| s.put_roster(version, bytes))
        .await
        .map_err(store_error)?
    {
        Ok(()) => {
            info!("roster stored");
            Ok(Response::Done)
        }
        Err(_current) => Ok(refuse(
            ErrorCode::FailedPrecondition,
            "a roster with this or a higher version is already stored",
        )),
    }
}

async fn get_roster(shared: &Shared) -> Result<Response, WireError> {
    let bytes = shared
        .store_call(|s| s.roster())
        .await
        .map_err(store_error)?;
    let roster = bytes
        .map(|b| hotline_proto::e2e::roster::SignedRoster::decode(&b))
        .transpose()
        .map_err(|_| WireError::new(ErrorCode::Internal, "server error"))?;
    Ok(Response::Roster(roster))
}

async fn publish_prekeys(
    shared: &Shared,
    session: Session,
    prekeys: Vec<SignedPrekey>,
) -> Result<Response, WireError> {
    let id = session.device_id;
    let device = shared.enrolled_device(id)?;
    let now = crate::unix_now();
    let mut stored = Vec::with_capacity(prekeys.len());
    for signed in prekeys {
        let prekey = signed.verify(&device.identity_key, now).map_err(|_| {
            WireError::new(
                ErrorCode::BadSignature,
                "a prekey is not validly signed by this device",
            )
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
        .await
        .map_err(store_error)?;
    Ok(Response::Done)
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

async fn fetch_prekeys(
    shared: &Shared,
    session: Session,
    devices: Vec<DeviceId>,
) -> Result<Response, WireError> {
    let now = crate::unix_now();
    let mut bundles = Vec::with_capacity(devices.len());
    for id in devices {
        let Some(device) = shared
            .store_call(move |s| s.device(&id))
            .await
            .map_err(store_error)?
        else {
            return Ok(refuse(
                ErrorCode::NotFound,
                "a requested device is not enrolled",
            ));
        };
        if device.revoked_at.is_some() {
            continue;
        }
        if !may_address(session.role, &session.device_id, device.role, &id) {
            return Ok(refuse(
                ErrorCode::Forbidden,
                "your role may not write to that device",
            ));
        }
        let prekey = shared
            .store_call(move |s| s.take_prekey(&id, now))
            .await
            .map_err(store_error)?
            .map(|b| SignedPrekey::decode(&b))
            .transpose()
            .map_err(|_| WireError::new(ErrorCode::Internal, "server error"))?;
        bundles.push(PrekeyBundle {
            device_id: id,
            identity_key: device.identity_key,
            role: device.role,
            prekey,
        });
    }
    Ok(Response::PrekeyBundles(bundles))
}

/// Checks an envelope a device sends: signed by that device, addressed
/// to enrolled devices it may write to. Returns its recipients, or the
/// refusal to answer with.
/// The largest envelope the server stores (its wire form): the largest
/// padded content (64 KiB) sealed to a few hundred devices, and within one
/// log record.
pub const MAX_ENVELOPE_BYTES: usize = 96 * 1024;

pub(crate) async fn check_envelope(
    shared: &Shared,
    session: Session,
    envelope: &SignedEnvelope,
) -> Result<Result<Vec<DeviceId>, Response>, WireError> {
    if envelope.body.len() + 128 > MAX_ENVELOPE_BYTES {
        return Ok(Err(refuse(
            ErrorCode::InvalidArgument,
            "the message is too large",
        )));
    }
    if envelope.sender != session.device_id {
        return Ok(Err(refuse(
            ErrorCode::Forbidden,
            "an envelope must be sent by its signer",
        )));
    }
    let sender = shared.enrolled_device(session.device_id)?;
    envelope
        .verify_signature(&sender.identity_key)
        .map_err(|_| {
            WireError::new(
                ErrorCode::BadSignature,
                "the envelope is not signed by this device",
            )
        })?;
    let recipients = envelope
        .recipients_unverified()
        .map_err(|_| WireError::new(ErrorCode::Malformed, "the envelope does not decode"))?;
    let ids = recipients.clone();
    let devices = shared
        .store_read(|s| s.devices_by_id(&ids))
        .map_err(store_error)?;
    for (id, device) in recipients.iter().zip(devices) {
        let Some(device) = device else {
            return Ok(Err(refuse(
                ErrorCode::NotFound,
                "a recipient is not enrolled",
            )));
        };
        if !may_address(session.role, &session.device_id, device.role, id) {
            return Ok(Err(refuse(
                ErrorCode::Forbidden,
                "your role may not write to that device",
            )));
        }
    }
    Ok(Ok(recipients))
}

async fn send_envelope(
    shared: &Shared,
    session: Session,
    envelope: SignedEnvelope,
) -> Result<Response, WireError> {
    let recipients = match check_envelope(shared, session, &envelope).await? {
        Ok(r) => r,
        Err(refusal) => return Ok(refusal),
    };
    let digest = envelope.digest();
    let bytes = envelope.encode();
    let sender = session.device_id;
    let (id, duplicate) = shared
        .store_call(move |s| s.store_envelope(sender, digest, recipients, bytes))
        .await
        .map_err(store_error)?;
    Ok(Response::EnvelopeAccepted { id, duplicate })
}

async fn fetch_inbox(
    shared: &Shared,
    session: Session,
    after: u64,
    limit: u32,
) -> Result<Response, WireError> {
    let id = session.device_id;
    let limit = limit.min(MAX_INBOX_BATCH) as usize;
    let items = shared
        .store_call(move |s| s.inbox(&id, after, limit))
        .await
        .map_err(store_error)?;
    let mut out = Vec::with_capacity(items.len());
    for (id, bytes) in items {
        let envelope = SignedEnvelope::decode(&bytes)
            .map_err(|_| WireError::new(ErrorCode::Internal, "server error"))?;
        let sender = envelope.sender;
        let Some(device) = shared
            .store_call(move |s| s.device(&sender))
            .await
            .map_err(store_error)?
        else {
            continue;
        };
        out.push(InboxItem {
            id,
            envelope,
            sender_identity_key: device.identity_key,
        });
    }
    Ok(Response::Inbox(out))
}
