//! Requests about alerts and duty, and the pages and all-clears they push.

use hotline_proto::alert::{AlertInfo, AlertStatus, CloseReason, Push};
use hotline_proto::e2e::envelope::SignedEnvelope;
use hotline_proto::frame;
use hotline_proto::message::{Request, Response};
use hotline_proto::{DeviceId, ErrorCode, Role, WireError};
use tracing::{Instrument, debug, info, info_span};

use crate::domain::alerts::{Alert, AlertError, AlertState, Priority};
use crate::domain::checkins::CheckinKind;
use crate::endpoint::Shared;
use crate::endpoint::connection::{Session, store_error};
use crate::endpoint::registry::Registry;
use crate::store::alerts::{Close, CloseOutcome};
use std::future::Future;
use std::task::{Context, Waker};

fn refuse(code: ErrorCode, detail: &str) -> Response {
    Response::Error(WireError::new(code, detail))
}

/// The summary of an alert on the wire.
pub(crate) fn info(a: &Alert) -> AlertInfo {
    let (status, holder) = match a.state {
        AlertState::Raised => (AlertStatus::Raised, None),
        AlertState::Acknowledged { by } => (AlertStatus::Acknowledged, Some(by)),
        AlertState::Resolved => (AlertStatus::Resolved, None),
        AlertState::Cancelled { false_alarm: false } => (AlertStatus::Cancelled, None),
        AlertState::Cancelled { false_alarm: true } => (AlertStatus::FalseAlarm, None),
    };
    let (round, step, _) = a.position.unwrap_or((0, 0, 0));
    AlertInfo {
        id: a.id,
        defender: a.defender,
        priority: a.priority,
        status,
        holder,
        raised_at: a.raised_at,
        position: (round, u32::try_from(step).unwrap_or(u32::MAX)),
        paged: u32::try_from(a.paged.len()).unwrap_or(u32::MAX),
        envelope_id: a.envelope_id,
        origin: a.origin,
    }
}

/// Answers one alert or duty request.
pub(crate) async fn handle(shared: &Shared, session: Session, req: Request) -> Response {
    let me = session.device_id;
    let result: Result<Response, WireError> = match req {
        Request::RaiseAlert { priority, envelope } => {
            raise(shared, session, priority, envelope).await
        }
        Request::ListAlerts { open_only } => shared
            .store_call(move |s| s.alerts_for(&me, session.role, open_only))
            .await
            .map(|a| Response::Alerts(a.iter().map(info).collect()))
            .map_err(store_error),
        Request::ClaimAlert { alert_id } => {
            if !session.role.is_staff() {
                return refuse(ErrorCode::Forbidden, "your role may not claim alerts");
            }
            match shared
                .store_call(move |s| s.claim_alert(alert_id, me))
                .await
            {
                Ok(Ok(holder)) => {
                    info!("alert claimed");
                    Ok(Response::Claim {
                        granted: true,
                        holder,
                    })
                }
                Ok(Err(AlertError::HeldBy(holder))) => Ok(Response::Claim {
                    granted: false,
                    holder,
                }),
                Ok(Err(AlertError::NotFound)) => Ok(refuse(ErrorCode::NotFound, "no such alert")),
                Ok(Err(AlertError::Closed)) => {
                    Ok(refuse(ErrorCode::FailedPrecondition, "the alert is closed"))
                }
                Err(e) => Err(store_error(e)),
            }
        }
        Request::CloseAlert { alert_id, reason } => {
            let how = match reason {
                CloseReason::Resolved => Close::Resolved,
                CloseReason::Cancelled => Close::Cancelled,
                CloseReason::FalseAlarm => Close::FalseAlarm,
            };
            match shared
                .store_call(move |s| s.close_alert(alert_id, me, session.role, how))
                .await
            {
                Ok(CloseOutcome::Closed(paged)) => {
                    info!("alert closed");
                    push(&shared.registry, &paged, &Push::AllClear(alert_id));
                    Ok(Response::Done)
                }
                Ok(CloseOutcome::Forbidden) => Ok(refuse(
                    ErrorCode::Forbidden,
                    "your role may not close this alert",
                )),
                Ok(CloseOutcome::Refused(AlertError::NotFound)) => {
                    Ok(refuse(ErrorCode::NotFound, "no such alert"))
                }
                Ok(CloseOutcome::Refused(_)) => {
                    Ok(refuse(ErrorCode::FailedPrecondition, "the alert is closed"))
                }
                Err(e) => Err(store_error(e)),
            }
        }
        Request::SetDuty { on_duty } => {
            if !session.role.is_staff() {
                return refuse(ErrorCode::Forbidden, "your role has no duty");
            }
            let done = shared.store_call(move |s| s.set_duty(me, on_duty)).await;
            if done.is_ok() && on_duty {
                // Someone new to page: steps that had nobody may now reach them.
                escalate(shared).await;
            }
            done.map(|()| Response::Done).map_err(store_error)
        }
        Request::SetCheckin {
            interval_secs,
            grace_secs,
            code_digest,
            duress_digest,
        } => {
            if session.role != Role::Defender {
                return refuse(ErrorCode::Forbidden, "check-ins are for defenders");
            }
            if interval_secs != 0
                && (code_digest == duress_digest || !(1..=30 * 86_400).contains(&interval_secs))
            {
                return refuse(
                    ErrorCode::InvalidArgument,
                    "the interval must be 1 second to 30 days, and the duress code must differ from the normal code",
                );
            }
            let now = crate::unix_now();
            shared
                .store_call(move |s| {
                    s.set_checkin(
                        me,
                        interval_secs,
                        grace_secs,
                        code_digest,
                        duress_digest,
                        now,
                    )
                })
                .await
                .map(|()| Response::Done)
                .map_err(store_error)
        }
        Request::Checkin { code_digest } => {
            let now = crate::unix_now();
            match shared
                .store_call(move |s| s.checkin(me, code_digest, now))
                .await
            {
                // Normal and duress answer alike; the alert pages on the
                // next escalation tick, so the answer's timing is the same.
                Ok(CheckinKind::Normal | CheckinKind::Duress) => Ok(Response::Done),
                Ok(CheckinKind::Wrong) => Ok(refuse(
                    ErrorCode::InvalidArgument,
                    "that is not your check-in code",
                )),
                Err(e) => Err(store_error(e)),
            }
        }
        Request::AlertDelivered { alert_id } => shared
            .store_call(move |s| s.alert_delivered(alert_id, me))
            .await
            .map(|()| Response::Done)
            .map_err(store_error),
        _ => Err(WireError::new(ErrorCode::Internal, "server error")),
    };
    result.unwrap_or_else(Response::Error)
}

async fn raise(
    shared: &Shared,
    session: Session,
    priority: Priority,
    envelope: SignedEnvelope,
) -> Result<Response, WireError> {
    if session.role != Role::Defender {
        return Ok(refuse(ErrorCode::Forbidden, "only defenders raise alerts"));
    }
    let recipients =
        match crate::requests::messaging::check_envelope(shared, session, &envelope).await? {
            Ok(r) => r,
            Err(refusal) => return Ok(refusal),
        };
    let digest = envelope.digest();
    let bytes = envelope.encode();
    let me = session.device_id;
    let now = crate::unix_now();
    let policies = shared.policies.clone();
    let on_shift = crate::domain::rota::on_shift(&shared.rota, now);
    let (alert, pagings) = shared
        .store_call(move |s| {
            s.raise_alert(
                me, priority, digest, recipients, bytes, &policies, &on_shift, now,
            )
        })
        .await
        .map_err(store_error)?;
    // The alert is durable: page before answering the defender.
    notify(&shared.registry, pagings);
    info!(priority = %priority, "alert raised");
    Ok(Response::Alerts(vec![info(&alert)]))
}

fn notify(registry: &Registry, pagings: Vec<crate::store::alerts::Paging>) {
    for p in pagings {
        debug!(paged = p.paged.len(), "escalation step");
        push(registry, &p.paged, &Push::Alert(info(&p.alert)));
    }
}

/// Takes the escalation steps that are due and pages their devices.
pub(crate) async fn escalate(shared: &Shared) {
    let policies = shared.policies.clone();
    let now = crate::unix_now();
    let on_shift = crate::domain::rota::on_shift(&shared.rota, now);
    match shared
        .store_call(move |s| s.escalate(&policies, &on_shift, now))
        .await
    {
        Ok(pagings) => notify(&shared.registry, pagings),
        Err(e) => tracing::warn!(error = %e, "escalation check failed"),
    }
}

/// Pages a device that just connected with the alerts it has not yet
/// confirmed receiving.
pub(crate) async fn catch_up(shared: &Shared, device: DeviceId) {
    if let Ok(alerts) = shared
        .store_call(move |s| s.undelivered_pages(&device))
        .await
    {
        for a in alerts {
            push(&shared.registry, &[device], &Push::Alert(info(&a)));
        }
    }
}

/// Sends `push` to every live connection of `devices`, each on its own
/// unidirectional stream. Devices offline now get pages when they connect.
///
/// A page nearly always goes out at once (a stream is free and it fits the
/// flow-control window): that first attempt is made here, saving a task's
/// trip through the scheduler on the way to a duty officer; a page that
/// has to wait is finished by a task of its own.
pub(crate) fn push(registry: &Registry, devices: &[DeviceId], push: &Push) {
    let Ok(bytes) = frame::encode(&push.encode()) else {
        return;
    };
    for device in devices {
        for conn in registry.connections(device) {
            let bytes = bytes.clone();
            let mut send = Box::pin(
                async move {
                    if let Ok(mut stream) = conn.open_uni().await
                        && stream.write_all(&bytes).await.is_ok()
                    {
                        let _ = stream.finish();
                    }
                }
                .instrument(info_span!("push")),
            );
            // Polling with a waker that does nothing is allowed: a pending
            // future registers the task's real waker when polled again.
            let mut cx = Context::from_waker(Waker::noop());
            if send.as_mut().poll(&mut cx).is_pending() {
                tokio::spawn(send);
            }
        }
    }
}
