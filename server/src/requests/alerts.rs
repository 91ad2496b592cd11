//! Alerts and duty: raising, listing, claiming and closing alerts, going
//! on and off duty, confirming pages; and the pages and all-clears these
//! cause, returned as pushes for the endpoint to send. The escalation tick
//! ([`escalate`]) and the catch-up of a device that connects
//! ([`catch_up`]) return pushes the same way.

use hotline_proto::DeviceId;
use hotline_proto::alert::{
    AlertInfo, AlertStatus, CloseReason, EscalationTier, MAX_JOINED_SHOWN, Push,
};
use hotline_proto::e2e::envelope::SignedEnvelope;
use hotline_proto::message::{DutyEntry, Response};
use tracing::{debug, info, warn};

use super::{PushTo, Reply, RequestError, Session, Shared};
use crate::domain::alerts::{
    Alert, AlertContent, AlertError, AlertState, Close, Priority, RaiseError, Sos, SosMessage, Tier,
};
use crate::store::alerts::Paging;

/// The summary of an alert on the wire, for `viewer`: the alert's message
/// (and those of SOSes that joined it) appear under the ids that device
/// knows them by (its inbox or sent ids).
pub(crate) fn info_for(shared: &Shared, a: &Alert, viewer: &DeviceId) -> AlertInfo {
    let mut out = info(
        shared,
        a,
        shared.store.envelope_id_seen_by(a.envelope_id, viewer),
    );
    out.joined = newest_joined(a)
        .iter()
        .map(|id| shared.store.envelope_id_seen_by(*id, viewer))
        .collect();
    out
}

/// The newest messages that joined `a`, as many as a summary names.
fn newest_joined(a: &Alert) -> &[u64] {
    let from = a.joined.len().saturating_sub(MAX_JOINED_SHOWN);
    &a.joined[from..]
}

/// The summary of an alert on the wire, its message named `envelope_id`;
/// the tier of its last step is read from the escalation policy.
fn info(shared: &Shared, a: &Alert, envelope_id: u64) -> AlertInfo {
    let (status, holder) = match a.state {
        AlertState::Raised => (AlertStatus::Raised, None),
        AlertState::Acknowledged { by } => (AlertStatus::Acknowledged, Some(by)),
        AlertState::Resolved => (AlertStatus::Resolved, None),
        AlertState::Cancelled { false_alarm: false } => (AlertStatus::Cancelled, None),
        AlertState::Cancelled { false_alarm: true } => (AlertStatus::FalseAlarm, None),
    };
    let (round, step, step_at) = a.position.unwrap_or((0, 0, 0));
    let tier = a.position.and_then(|_| {
        let policy = shared.policies.for_priority(a.priority);
        policy.steps.get(step).map(|s| match s.tier {
            Tier::OnDuty => EscalationTier::OnDuty,
            Tier::Backup => EscalationTier::Backup,
            Tier::Coordinators => EscalationTier::Coordinators,
            Tier::Everyone => EscalationTier::Everyone,
        })
    });
    AlertInfo {
        id: a.id,
        defender: a.defender,
        priority: a.priority,
        status,
        holder,
        raised_at: a.raised_at,
        position: (round, u32::try_from(step).unwrap_or(u32::MAX)),
        paged: u32::try_from(a.paged.len()).unwrap_or(u32::MAX),
        envelope_id,
        origin: a.origin,
        checked_in_at: a.checked_in_at,
        paged_now: 0,
        content: a.content,
        tier,
        step_at,
        exhausted: a.exhausted,
        closed_by: a.closed_by,
        joined_count: u32::try_from(a.joined.len()).unwrap_or(u32::MAX),
        joined: Vec::new(),
        joined_now: false,
        paged_again: false,
    }
}

impl From<AlertError> for RequestError {
    fn from(e: AlertError) -> RequestError {
        match e {
            AlertError::NotFound => RequestError::NotFound("no such alert"),
            AlertError::Closed => RequestError::FailedPrecondition("the alert is closed"),
            // A claim on a held alert is an answer (Claim { granted:
            // false }), never this error; anything else held is closed to
            // this device.
            AlertError::HeldBy(_) => {
                RequestError::FailedPrecondition("the alert is held by another officer")
            }
            AlertError::Forbidden => {
                RequestError::Forbidden("your role may not close this alert".into())
            }
        }
    }
}

impl From<RaiseError> for RequestError {
    fn from(e: RaiseError) -> RequestError {
        match e {
            RaiseError::SentAsMessage => {
                RequestError::InvalidArgument("this message was already sent; seal the alert anew")
            }
            RaiseError::TooLarge => {
                RequestError::InvalidArgument("the message is too large to store")
            }
        }
    }
}

/// The pages of escalation steps just taken.
fn pages(shared: &Shared, pagings: Vec<Paging>) -> Vec<PushTo> {
    let mut out = Vec::new();
    for p in pagings {
        debug!(paged = p.paged.len(), "escalation step");
        out.extend(to_each(shared, &p.alert, p.paged));
    }
    out
}

/// The alert pushed to `devices`, each seeing the alert's message under
/// its own id (one push for all when there is no message).
pub(crate) fn to_each(shared: &Shared, a: &Alert, devices: Vec<DeviceId>) -> Vec<PushTo> {
    if a.envelope_id == 0 && a.joined.is_empty() {
        return vec![PushTo {
            push: Push::Alert(info(shared, a, 0)),
            devices,
        }];
    }
    let ids = shared.store.envelope_ids_seen_by(a.envelope_id, &devices);
    devices
        .into_iter()
        .zip(ids)
        .map(|(d, id)| {
            let mut info = info(shared, a, id);
            info.joined = newest_joined(a)
                .iter()
                .map(|j| shared.store.envelope_id_seen_by(*j, &d))
                .collect();
            PushTo {
                push: Push::Alert(info),
                devices: vec![d],
            }
        })
        .collect()
}

/// What the server can tell of an SOS's message sealed to roster
/// `version` at `now`: sealed to the newest roster it holds, to an older
/// one a newer roster replaced (staff added since cannot read it: never
/// called expired, which it need not be), or to the newest after it had
/// expired.
fn content_of(shared: &Shared, version: Option<u64>, now: u64) -> AlertContent {
    let Some(version) = version else {
        return AlertContent::Sealed;
    };
    let newest = shared.store_read(|s| s.newest_roster());
    match newest {
        Ok(Some(r)) => sealed_for(version, r.version, r.expires_at, now),
        _ => AlertContent::Sealed,
    }
}

/// [`content_of`]'s rule, for a text sealed to roster `version` when the
/// newest roster is `newest`, valid until `expires_at`.
fn sealed_for(version: u64, newest: u64, expires_at: u64, now: u64) -> AlertContent {
    if version < newest {
        AlertContent::OlderRoster
    } else if now >= expires_at {
        AlertContent::ExpiredRoster
    } else {
        AlertContent::Sealed
    }
}

/// Raises an SOS: with its message if the device sealed one, without
/// content if it could not (no verified roster). Never refused for the
/// roster's state: an expired roster is marked, not refused.
pub(super) async fn raise(
    shared: &Shared,
    session: Session,
    priority: Priority,
    envelope: Option<SignedEnvelope>,
    join_alert: u64,
) -> Result<Reply, RequestError> {
    let now = crate::unix_now();
    let mut sealed_to = None;
    let (message, content) = match envelope {
        Some(envelope) => {
            let recipients = super::messaging::check_envelope(shared, session, &envelope)?;
            let content = content_of(shared, envelope.roster_version_unverified().ok(), now);
            sealed_to = Some((envelope.digest(), recipients.clone()));
            let message = SosMessage {
                recipients,
                digest: envelope.digest(),
                envelope: envelope.encode(),
            };
            (Some(message), content)
        }
        None => (None, AlertContent::None),
    };
    let sos = Sos {
        defender: session.device_id,
        priority,
        message,
        content,
        join: join_alert,
    };
    let policies = shared.policies.clone();
    let on_shift = crate::domain::rota::on_shift(&shared.rota, now);
    let open_limit = shared.limits.open_alerts_per_device;
    let (alert, pagings) = shared
        .store_call(move |s| s.raise_alert(sos, &policies, &on_shift, now, open_limit))
        .await??;
    // How many of the devices paged are online now, so that the page is
    // pushed to them at once; the others get it when they connect. (A
    // raise repeated with the same envelope counts the same way.)
    let me = session.device_id;
    let mut answer = info_for(shared, &alert, &me);
    // Did this SOS join an open alert rather than raise it? Its message is
    // then not the alert's own (an SOS without a message can only have
    // joined an alert that has one).
    let joined = match &sealed_to {
        Some((digest, _)) => {
            let mine = shared.store_read(|s| Ok(s.inbox_ids_of(digest, &[me])))?;
            mine.first().is_some_and(|id| *id != answer.envelope_id)
        }
        None => alert.content != AlertContent::None,
    };
    let paged_again = !pagings.is_empty();
    let paged_now = if joined && !paged_again {
        0
    } else {
        alert
            .paged
            .iter()
            .filter(|d| shared.presence.is_connected(d))
            .count()
    };
    if joined {
        info!(priority = %priority, paged_again, "SOS joined an open alert");
    } else {
        info!(priority = %priority, "alert raised");
    }
    answer.paged_now = u32::try_from(paged_now).unwrap_or(u32::MAX);
    answer.joined_now = joined;
    answer.paged_again = joined && paged_again;
    let mut pushes = pages(shared, pagings);
    // The text of a joined SOS reaches its recipients online now every
    // time, as any stored message does, whether or not the page went out
    // again (it is throttled; the words are not). A retry pushes it again:
    // a client shows what it has not shown yet, once.
    if joined && let Some((digest, recipients)) = sealed_to {
        let devices: Vec<DeviceId> = recipients.into_iter().filter(|d| *d != me).collect();
        let ids = shared.store_read(|s| Ok(s.inbox_ids_of(&digest, &devices)))?;
        pushes.extend(
            devices
                .into_iter()
                .zip(ids)
                .filter(|(_, inbox_id)| *inbox_id != 0)
                .map(|(d, inbox_id)| PushTo {
                    devices: vec![d],
                    push: Push::Message(inbox_id),
                }),
        );
    }
    // The alert is durable: the pages go out before the defender's answer.
    Ok(Reply::with_pushes(Response::Alerts(vec![answer]), pushes))
}

pub(super) async fn list(
    shared: &Shared,
    session: Session,
    open_only: bool,
) -> Result<Reply, RequestError> {
    let me = session.device_id;
    let mut alerts = shared
        .store_call(move |s| s.alerts_for(&me, session.role, open_only))
        .await?;
    // The answer must fit one frame however long the history: every open
    // alert, then the most recently raised closed ones, oldest first.
    if alerts.len() > MAX_LISTED_ALERTS {
        let open = alerts.iter().filter(|a| a.state.is_open()).count();
        let mut closed_left = MAX_LISTED_ALERTS.saturating_sub(open);
        let mut kept: Vec<Alert> = alerts
            .into_iter()
            .rev()
            .filter(|a| {
                a.state.is_open()
                    || closed_left.checked_sub(1).is_some_and(|left| {
                        closed_left = left;
                        true
                    })
            })
            .collect();
        kept.reverse();
        alerts = kept;
    }
    Ok(Response::Alerts(alerts.iter().map(|a| info_for(shared, a, &me)).collect()).into())
}

/// The most alerts one answer lists: what fits a frame, at the largest an
/// `AlertInfo` can be (about 150 bytes with its tags), with room to spare.
pub const MAX_LISTED_ALERTS: usize = 1500;

pub(super) async fn claim(
    shared: &Shared,
    session: Session,
    alert_id: u64,
) -> Result<Reply, RequestError> {
    shared.require_on_roster(session)?;
    let me = session.device_id;
    match shared
        .store_call(move |s| s.claim_alert(alert_id, me))
        .await?
    {
        Ok(holder) => {
            info!("alert claimed");
            // A defender in danger hears that someone has it.
            let pushes = match shared.store_read(|s| s.alert(alert_id))? {
                Some(a) if a.origin.shown_to_defender() => vec![PushTo {
                    push: Push::Alert(info_for(shared, &a, &a.defender)),
                    devices: vec![a.defender],
                }],
                _ => Vec::new(),
            };
            Ok(Reply::with_pushes(
                Response::Claim {
                    granted: true,
                    holder,
                },
                pushes,
            ))
        }
        Err(AlertError::HeldBy(holder)) => Ok(Response::Claim {
            granted: false,
            holder,
        }
        .into()),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn close(
    shared: &Shared,
    session: Session,
    alert_id: u64,
    reason: CloseReason,
) -> Result<Reply, RequestError> {
    let how = match reason {
        CloseReason::Resolved => Close::Resolved,
        CloseReason::Cancelled => Close::Cancelled,
        CloseReason::FalseAlarm => Close::FalseAlarm,
    };
    let me = session.device_id;
    match shared
        .store_call(move |s| s.close_alert(alert_id, me, session.role, how))
        .await?
    {
        Ok(mut paged) => {
            info!("alert closed");
            // The defender hears it too (unless it closed it itself, or
            // the alert is one it must never learn of).
            if let Some(a) = shared.store_read(|s| s.alert(alert_id))?
                && a.origin.shown_to_defender()
                && a.defender != me
            {
                paged.push(a.defender);
            }
            let all_clear = PushTo {
                devices: paged,
                push: Push::AllClear(alert_id),
            };
            Ok(Reply::with_pushes(Response::Done, vec![all_clear]))
        }
        Err(e) => Err(e.into()),
    }
}

/// Who is on duty now (declared or on shift), and the asking device's own
/// entry whether on duty or not.
pub(super) async fn duty_status(shared: &Shared, session: Session) -> Result<Reply, RequestError> {
    let on_shift = crate::domain::rota::on_shift(&shared.rota, crate::unix_now());
    let me = session.device_id;
    let entries = shared.store_read(|s| s.duty_status(&on_shift, me))?;
    let entries = entries
        .into_iter()
        .map(|d| DutyEntry {
            device_id: d.device,
            role: d.role,
            declared: d.declared,
            on_shift: d.on_shift,
            off_roster: d.off_roster,
        })
        .collect();
    Ok(Response::Duty(entries).into())
}

pub(super) async fn set_duty(
    shared: &Shared,
    session: Session,
    on_duty: bool,
) -> Result<Reply, RequestError> {
    let me = session.device_id;
    shared.store_call(move |s| s.set_duty(me, on_duty)).await?;
    // Someone new to page: steps that had nobody may now reach them.
    let pushes = if on_duty {
        escalate(shared).await
    } else {
        Vec::new()
    };
    Ok(Reply::with_pushes(Response::Done, pushes))
}

pub(super) async fn delivered(
    shared: &Shared,
    session: Session,
    alert_id: u64,
) -> Result<Reply, RequestError> {
    let me = session.device_id;
    shared
        .store_call(move |s| s.alert_delivered(alert_id, me))
        .await?;
    Ok(Response::Done.into())
}

/// Takes the escalation steps that are due (raising alerts for missed
/// check-ins first); returns their pages.
pub(crate) async fn escalate(shared: &Shared) -> Vec<PushTo> {
    let policies = shared.policies.clone();
    let now = crate::unix_now();
    let on_shift = crate::domain::rota::on_shift(&shared.rota, now);
    match shared
        .store_call(move |s| s.escalate(&policies, &on_shift, now))
        .await
    {
        Ok(pagings) => pages(shared, pagings),
        Err(e) => {
            warn!(error = %e, "escalation check failed");
            Vec::new()
        }
    }
}

/// The pages a device that just connected has not confirmed receiving.
pub(crate) async fn catch_up(shared: &Shared, device: DeviceId) -> Vec<PushTo> {
    match shared
        .store_call(move |s| s.undelivered_pages(&device))
        .await
    {
        Ok(alerts) => alerts
            .iter()
            .map(|a| PushTo {
                devices: vec![device],
                push: Push::Alert(info_for(shared, a, &device)),
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "catch-up failed");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text sealed to a roster a newer one replaced is told apart from
    /// one sealed to an expired roster: an officer must never read
    /// "expired" on an SOS sealed offline to the roster the defender's
    /// device had (issue 12, walk-through 2).
    #[test]
    fn a_replaced_roster_is_not_an_expired_one() {
        assert_eq!(sealed_for(1, 2, 1_000, 500), AlertContent::OlderRoster);
        assert_eq!(sealed_for(1, 2, 1_000, 2_000), AlertContent::OlderRoster);
        assert_eq!(sealed_for(2, 2, 1_000, 500), AlertContent::Sealed);
        assert_eq!(sealed_for(2, 2, 1_000, 1_000), AlertContent::ExpiredRoster);
    }
}
