//! Devices: set-up (enroll with an invite, or authenticate), status,
//! invites, the device list and revocation.

use hotline_proto::alert::Push;
use hotline_proto::auth::{self, ChannelBinding, Nonce};
use hotline_proto::message::{DeviceInfo, Response, SetupRequest, StatusInfo, Welcome};
use hotline_proto::{DeviceId, IdentityPublicKey, Invite, InviteToken, Role};
use tracing::info;

use super::{PushTo, Reply, RequestError, Session, Shared};
use crate::domain::devices::{EnrollOutcome, InviteRecord, RevokeOutcome};

/// Whether a device with role `inviter` may invite a device with role
/// `invitee`. Admins invite anyone; duty officers and coordinators may
/// invite the defenders their partner organisations refer.
pub fn may_invite(inviter: Role, invitee: Role) -> bool {
    match inviter {
        Role::Admin => true,
        Role::Officer | Role::Coordinator => invitee == Role::Defender,
        Role::Defender => false,
    }
}

/// The welcome of a device authenticated at `now` (with its panic key if
/// `panic`): its role, and the roster it is (or is not) on.
fn welcome(
    shared: &Shared,
    device_id: DeviceId,
    role: Role,
    panic: bool,
    now: u64,
) -> Result<Welcome, RequestError> {
    let (roster_expires_at, roster_standing) =
        shared.store_read(|s| s.roster_standing(&device_id))?;
    Ok(Welcome {
        device_id,
        role,
        server_time: now,
        panic,
        roster_expires_at,
        roster_standing,
    })
}

/// The set-up step of a connection: enrolls a new device with an invite,
/// or authenticates an enrolled one (with its identity key, or a
/// defender's with its panic key). `nonce` and `binding` are this
/// connection's challenge and channel binding, which the signature covers.
pub async fn setup(
    shared: &Shared,
    req: SetupRequest,
    nonce: &Nonce,
    binding: &ChannelBinding,
) -> Result<Welcome, RequestError> {
    let now = crate::unix_now();
    match req {
        SetupRequest::Auth {
            device_id,
            signature,
        } => {
            let device = shared.enrolled_device(device_id)?;
            let transcript = auth::device_auth_transcript(nonce, binding, &device_id);
            device
                .identity_key
                .verify(&transcript, &signature)
                .map_err(|_| {
                    RequestError::BadSignature("the authentication signature does not verify")
                })?;
            if device.revoked_at.is_some() {
                return Err(RequestError::Revoked);
            }
            welcome(shared, device_id, device.role, false, now)
        }
        SetupRequest::PanicAuth {
            device_id,
            signature,
        } => {
            let device = shared.enrolled_device(device_id)?;
            let transcript = auth::panic_auth_transcript(nonce, binding, &device_id);
            device
                .panic_key
                .ok_or(RequestError::BadSignature(
                    "this device has no panic key; raise the alert with the passphrase",
                ))?
                .verify(&transcript, &signature)
                .map_err(|_| {
                    RequestError::BadSignature("the panic key signature does not verify")
                })?;
            if device.revoked_at.is_some() {
                return Err(RequestError::Revoked);
            }
            welcome(shared, device_id, device.role, true, now)
        }
        SetupRequest::Enroll {
            token,
            identity_key,
            signature,
            panic_key,
        } => {
            let transcript = auth::enroll_transcript_with_panic_key(
                nonce,
                binding,
                &identity_key,
                &token,
                panic_key.as_ref(),
            );
            identity_key.verify(&transcript, &signature).map_err(|_| {
                RequestError::BadSignature("the enrollment signature does not verify")
            })?;
            let digest = token.digest();
            let outcome = shared
                .store_call(move |s| s.enroll_with_panic_key(digest, identity_key, panic_key, now))
                .await?;
            match outcome {
                EnrollOutcome::Enrolled(device) => {
                    info!(role = %device.role, panic_key = device.panic_key.is_some(), "device enrolled");
                    welcome(shared, device.id, device.role, false, now)
                }
                EnrollOutcome::InviteUnknown => Err(RequestError::InviteUnknown),
                EnrollOutcome::InviteUsed => Err(RequestError::InviteUsed),
                EnrollOutcome::InviteReplaced => Err(RequestError::InviteReplaced),
                EnrollOutcome::InviteExpired => Err(RequestError::InviteExpired),
                EnrollOutcome::AlreadyEnrolled => Err(RequestError::AlreadyEnrolled),
                EnrollOutcome::PanicKeyNotForStaff => Err(RequestError::InvalidArgument(
                    "only a defender's device has a panic key; this invite is for staff",
                )),
            }
        }
    }
}

pub(super) fn status(shared: &Shared, session: Session) -> Result<Reply, RequestError> {
    let storage = match session.role {
        // Admins see the storage in full: the state, why, free space.
        Role::Admin => {
            let st = shared.store.storage_state();
            Some(hotline_proto::message::StorageInfo {
                degraded: st.degraded.map(|d| (d.since, d.reason)),
                free_bytes: shared
                    .data_dir
                    .as_deref()
                    .and_then(crate::store::free_bytes),
                read_only: st.read_only,
                warn_below: Some(shared.warn_free_bytes).filter(|b| *b > 0),
            })
        }
        // The duty team sees whether writes (SOSes included) are refused
        // and since when: never why (an error text), the free space or
        // a path.
        Role::Officer | Role::Coordinator => Some(staff_storage(shared)),
        // A defender's device (perhaps seized) learns nothing of it.
        Role::Defender => None,
    };
    Ok(Response::Status(StatusInfo {
        device_id: session.device_id,
        role: session.role,
        server_time: crate::unix_now(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        storage,
    })
    .into())
}

/// The storage as officers and coordinators see it: degraded (and since
/// when) or read-only, nothing more.
fn staff_storage(shared: &Shared) -> hotline_proto::message::StorageInfo {
    let st = shared.store.storage_state();
    hotline_proto::message::StorageInfo {
        degraded: st.degraded.map(|d| (d.since, String::new())),
        free_bytes: None,
        read_only: st.read_only,
        warn_below: None,
    }
}

/// A defender device enrolled before panic keys existed registers one,
/// from a session opened with its identity key (the passphrase). The key
/// it already has is accepted again (a retry); another is refused.
pub(super) async fn register_panic_key(
    shared: &Shared,
    session: Session,
    key: IdentityPublicKey,
) -> Result<Reply, RequestError> {
    let me = session.device_id;
    match shared
        .store_call(move |s| s.register_panic_key(&me, key))
        .await?
    {
        Ok(()) => {
            info!("panic key registered");
            Ok(Response::Done.into())
        }
        Err(()) => Err(RequestError::FailedPrecondition(
            "this device already has another panic key",
        )),
    }
}

pub(super) async fn create_invite(
    shared: &Shared,
    session: Session,
    role: Role,
    ttl_seconds: u64,
) -> Result<Reply, RequestError> {
    if !may_invite(session.role, role) {
        return Err(RequestError::Forbidden(format!(
            "{}s may not invite {role}s",
            session.role
        )));
    }
    let invite = make_invite(shared, role, ttl_seconds, false).await?;
    info!(role = %role, "invite created");
    Ok(Response::InviteCreated { invite }.into())
}

/// Makes and saves a one-time invite for a device of `role`. A
/// `bootstrap` one (an admin invite the server makes itself) replaces every
/// earlier bootstrap invite: only the newest enrolls.
pub async fn make_invite(
    shared: &Shared,
    role: Role,
    ttl_seconds: u64,
    bootstrap: bool,
) -> Result<Invite, RequestError> {
    let token = InviteToken::random().map_err(|_| RequestError::Internal("no randomness"))?;
    let now = crate::unix_now();
    let record = InviteRecord {
        role,
        created_at: now,
        expires_at: now.saturating_add(ttl_seconds),
        used_at: None,
        bootstrap: None,
    };
    let digest = token.digest();
    let expires_at = record.expires_at;
    if bootstrap {
        shared
            .store_call(move |s| s.put_bootstrap_invite(digest, &record))
            .await?;
    } else {
        shared
            .store_call(move |s| s.put_invite(digest, &record))
            .await?;
    }
    Ok(Invite {
        server_addr: shared.advertised_addr.clone(),
        server_name: shared.server_name.clone(),
        cert_pin: shared.pin,
        token,
        role,
        expires_at,
        org_root: None,
        label: None,
    })
}

pub(super) async fn list(shared: &Shared) -> Result<Reply, RequestError> {
    let devices = shared.store_call(|s| s.devices()).await?;
    let list = devices
        .into_iter()
        .map(|d| DeviceInfo {
            device_id: d.id,
            role: d.role,
            enrolled_at: d.enrolled_at,
            revoked_at: d.revoked_at,
            identity_key: d.identity_key,
            invite_digest: d.invite_digest,
        })
        .collect();
    Ok(Response::DeviceList(list).into())
}

pub(super) async fn revoke(shared: &Shared, device_id: DeviceId) -> Result<Reply, RequestError> {
    let now = crate::unix_now();
    let on_shift = crate::domain::rota::on_shift(&shared.rota, now);
    let (outcome, released) = shared
        .store_call({
            let policies = shared.policies.clone();
            move |s| s.revoke_releasing(&device_id, now, &on_shift, &policies)
        })
        .await?;
    match outcome {
        RevokeOutcome::Revoked { revoked_at } => {
            info!(released = released.len(), "device revoked");
            // The team hears that what the device held is theirs again.
            // Each device gets the alert under its own id for the message.
            // The defender, told its alert was held, hears it is not any
            // more (never of an alert it must not see).
            let pushes = released
                .iter()
                .flat_map(|r| {
                    let defender = r
                        .alert
                        .origin
                        .shown_to_defender()
                        .then_some(r.alert.defender);
                    r.tell.iter().copied().chain(defender).map(|device| PushTo {
                        devices: vec![device],
                        push: Push::Released(super::alerts::info_for(shared, &r.alert, &device)),
                    })
                })
                .collect();
            Ok(Reply {
                disconnect: vec![device_id],
                pushes,
                ..Response::DeviceRevoked {
                    device_id,
                    revoked_at,
                }
                .into()
            })
        }
        RevokeOutcome::NotFound => {
            Err(RequestError::NotFound("no device is enrolled with this id"))
        }
        RevokeOutcome::LastAdmin => Err(RequestError::FailedPrecondition(
            "this is the last active admin device; enroll another admin first",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_rights() {
        for r in Role::ALL {
            assert!(may_invite(Role::Admin, r));
            assert!(!may_invite(Role::Defender, r));
        }
        for staff in [Role::Officer, Role::Coordinator] {
            assert!(may_invite(staff, Role::Defender));
            assert!(!may_invite(staff, Role::Officer));
            assert!(!may_invite(staff, Role::Admin));
        }
    }
}
