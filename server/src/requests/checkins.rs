//! Safety check-ins: a defender sets a schedule, then checks in with the
//! normal code or, under coercion, the duress code. Both answer alike.

use hotline_proto::message::Response;

use super::{Reply, RequestError, Session, Shared};
use crate::domain::checkins::CheckinKind;

/// The longest check-in interval: 30 days.
pub const MAX_INTERVAL_SECS: u64 = 30 * 86_400;

/// Sets (interval 0: stops) the defender's check-in schedule, with the
/// tags of the normal and the duress code. A change or a stop raises a
/// routine notice to staff, never shown to the defender.
pub(super) async fn set(
    shared: &Shared,
    session: Session,
    interval_secs: u64,
    grace_secs: u64,
    code_digest: [u8; 32],
    duress_digest: [u8; 32],
) -> Result<Reply, RequestError> {
    if interval_secs != 0
        && (code_digest == duress_digest || !(1..=MAX_INTERVAL_SECS).contains(&interval_secs))
    {
        return Err(RequestError::InvalidArgument(
            "the interval must be 1 second to 30 days, and the duress code must differ from the normal code",
        ));
    }
    let me = session.device_id;
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
        .await?;
    Ok(Response::Done.into())
}

pub(super) async fn checkin(
    shared: &Shared,
    session: Session,
    code_digest: [u8; 32],
) -> Result<Reply, RequestError> {
    let me = session.device_id;
    let now = crate::unix_now();
    let (kind, late) = shared
        .store_call(move |s| s.checkin(me, code_digest, now))
        .await?;
    match kind {
        // Normal and duress answer alike; the duress alert pages on the
        // next escalation tick, so the answer's timing is the same. A
        // late check-in is shown on its missed check-in alert to the
        // staff it paged, for either code alike.
        CheckinKind::Normal | CheckinKind::Duress => {
            let pushes = late
                .map(|a| super::alerts::to_each(shared, &a, a.paged.iter().copied().collect()))
                .unwrap_or_default();
            Ok(Reply::with_pushes(Response::Done, pushes))
        }
        CheckinKind::Wrong => Err(RequestError::InvalidArgument(
            "that is not your check-in code",
        )),
    }
}
