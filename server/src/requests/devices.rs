//! Devices: set-up (enroll with an invite, or authenticate), status,
//! invites, the device list and revocation.

use hotline_proto::auth::{self, ChannelBinding, Nonce};
use hotline_proto::message::{DeviceInfo, Response, SetupRequest, StatusInfo, Welcome};
use hotline_proto::{DeviceId, Invite, InviteToken, Role};
use tracing::info;

use super::{Reply, RequestError, Session, Shared};
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

/// The set-up step of a connection: enrolls a new device with an invite,
/// or authenticates an enrolled one. `nonce` and `binding` are this
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
            Ok(Welcome {
                device_id,
                role: device.role,
                server_time: now,
            })
        }
        SetupRequest::Enroll {
            token,
            identity_key,
            signature,
        } => {
            let transcript = auth::enroll_transcript(nonce, binding, &identity_key, &token);
            identity_key.verify(&transcript, &signature).map_err(|_| {
                RequestError::BadSignature("the enrollment signature does not verify")
            })?;
            let digest = token.digest();
            let outcome = shared
                .store_call(move |s| s.enroll(digest, identity_key, now))
                .await?;
            match outcome {
                EnrollOutcome::Enrolled(device) => {
                    info!(role = %device.role, "device enrolled");
                    Ok(Welcome {
                        device_id: device.id,
                        role: device.role,
                        server_time: now,
                    })
                }
                EnrollOutcome::InviteUnknown => Err(RequestError::InviteUnknown),
                EnrollOutcome::InviteUsed => Err(RequestError::InviteUsed),
                EnrollOutcome::InviteReplaced => Err(RequestError::InviteReplaced),
                EnrollOutcome::InviteExpired => Err(RequestError::InviteExpired),
                EnrollOutcome::AlreadyEnrolled => Err(RequestError::AlreadyEnrolled),
            }
        }
    }
}

pub(super) fn status(session: Session) -> Result<Reply, RequestError> {
    Ok(Response::Status(StatusInfo {
        device_id: session.device_id,
        role: session.role,
        server_time: crate::unix_now(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
    .into())
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
        })
        .collect();
    Ok(Response::DeviceList(list).into())
}

pub(super) async fn revoke(shared: &Shared, device_id: DeviceId) -> Result<Reply, RequestError> {
    let now = crate::unix_now();
    match shared
        .store_call(move |s| s.revoke(&device_id, now))
        .await?
    {
        RevokeOutcome::Revoked { revoked_at } => {
            info!("device revoked");
            Ok(Reply {
                disconnect: vec![device_id],
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
