//! Requests from authenticated devices, and who may make them.

pub(crate) mod alerts;
pub(crate) mod messaging;

use hotline_proto::message::{DeviceInfo, Request, Response, StatusInfo};
use hotline_proto::{ErrorCode, Role, WireError};
use tracing::info;

use crate::domain::devices::RevokeOutcome;
use crate::endpoint::Shared;
use crate::endpoint::connection::{Session, store_error};
use crate::store::Store;

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

fn forbidden(what: &str) -> Response {
    Response::Error(WireError::new(
        ErrorCode::Forbidden,
        format!("your role may not {what}"),
    ))
}

/// Answers one request.
pub(crate) async fn handle(
    conn: &quinn::Connection,
    shared: &Shared,
    session: Session,
    req: Request,
) -> Response {
    // Every request re-reads the device, so a revocation takes effect at
    // once even on a connection that was set up before it.
    let id = session.device_id;
    match shared.store_read(|s| s.device(&id)) {
        Ok(Some(d)) if d.revoked_at.is_none() => {}
        Ok(_) => {
            conn.close(
                ErrorCode::DeviceRevoked.to_u32().into(),
                b"this device has been revoked",
            );
            return Response::Error(WireError::new(
                ErrorCode::DeviceRevoked,
                "this device has been revoked",
            ));
        }
        Err(e) => return Response::Error(store_error(e)),
    }
    let kind = req.kind().log_name();
    let response = match req {
        Request::Status => Response::Status(StatusInfo {
            device_id: session.device_id,
            role: session.role,
            server_time: crate::unix_now(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
        }),
        Request::CreateInvite { role, ttl_seconds } => {
            if !may_invite(session.role, role) {
                return forbidden(&format!("invite a {role}"));
            }
            match shared.create_invite(role, ttl_seconds).await {
                Ok(invite) => {
                    info!(role = %role, "invite created");
                    Response::InviteCreated { invite }
                }
                Err(e) => Response::Error(e),
            }
        }
        Request::ListDevices => {
            if session.role != Role::Admin {
                return forbidden("list devices");
            }
            match shared.store_call(|s| s.devices()).await {
                Ok(devices) => Response::DeviceList(
                    devices
                        .into_iter()
                        .map(|d| DeviceInfo {
                            device_id: d.id,
                            role: d.role,
                            enrolled_at: d.enrolled_at,
                            revoked_at: d.revoked_at,
                            identity_key: d.identity_key,
                        })
                        .collect(),
                ),
                Err(e) => Response::Error(store_error(e)),
            }
        }
        Request::PutRoster(_)
        | Request::GetRoster
        | Request::PublishPrekeys(_)
        | Request::FetchPrekeys(_)
        | Request::SendEnvelope(_)
        | Request::FetchInbox { .. }
        | Request::MarkRead(_)
        | Request::Delivery(_)
        | Request::AckInbox { .. } => {
            crate::requests::messaging::handle(shared, session, req).await
        }
        Request::RaiseAlert { .. }
        | Request::ListAlerts { .. }
        | Request::ClaimAlert { .. }
        | Request::CloseAlert { .. }
        | Request::SetDuty { .. }
        | Request::AlertDelivered { .. }
        | Request::SetCheckin { .. }
        | Request::Checkin { .. } => crate::requests::alerts::handle(shared, session, req).await,
        Request::RevokeDevice { device_id } => {
            if session.role != Role::Admin {
                return forbidden("revoke devices");
            }
            let now = crate::unix_now();
            match shared.store_call(move |s| s.revoke(&device_id, now)).await {
                Ok(RevokeOutcome::Revoked { revoked_at }) => {
                    info!("device revoked");
                    shared.registry.disconnect(
                        &device_id,
                        ErrorCode::DeviceRevoked,
                        "this device has been revoked",
                    );
                    Response::DeviceRevoked {
                        device_id,
                        revoked_at,
                    }
                }
                Ok(RevokeOutcome::NotFound) => Response::Error(WireError::new(
                    ErrorCode::NotFound,
                    "no device is enrolled with this id",
                )),
                Ok(RevokeOutcome::LastAdmin) => Response::Error(WireError::new(
                    ErrorCode::FailedPrecondition,
                    "this is the last active admin device; enroll another admin first",
                )),
                Err(e) => Response::Error(store_error(e)),
            }
        }
    };
    tracing::debug!(kind, "request served");
    response
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
