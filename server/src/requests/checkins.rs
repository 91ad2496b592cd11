//! Safety check-ins: a defender sets a schedule, then checks in with the
//! normal code or, under coercion, the duress code. Both answer alike.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hotline_proto::DeviceId;
use hotline_proto::message::Response;
use tracing::warn;

use super::{Reply, RequestError, Session, Shared};
use crate::domain::checkins::CheckinKind;

/// Wrong check-in codes a device may send in [`GUESS_WINDOW_SECS`] before
/// staff are alerted and every check-in of that device is slowed.
pub const WRONG_CODES_ALLOWED: u32 = 5;
/// The window the wrong codes are counted in.
pub const GUESS_WINDOW_SECS: u64 = 3600;
/// How long each check-in of a device past the limit waits before it is
/// answered: right, wrong and duress alike, so that the wait tells
/// nothing, and 10,000 four-digit codes take over five hours.
pub const GUESS_DELAY: Duration = Duration::from_secs(2);

/// Wrong check-in codes per device, in memory: a thief holding a phone
/// (the panic key needs no passphrase) must not be able to try codes at
/// network speed until one works and keep the missed check-ins quiet.
#[derive(Debug, Default)]
pub struct Guesses(Mutex<HashMap<DeviceId, (u64, u32)>>);

impl Guesses {
    /// Whether `device` is past the limit now (its check-ins are slowed).
    fn slowed(&self, device: &DeviceId, now: u64) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(device).is_some_and(|(since, n)| {
            now.saturating_sub(*since) < GUESS_WINDOW_SECS && *n >= WRONG_CODES_ALLOWED
        })
    }

    /// Counts a wrong code; true exactly when this one reaches the limit.
    fn wrong(&self, device: DeviceId, now: u64) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(device).or_insert((now, 0));
        if now.saturating_sub(entry.0) >= GUESS_WINDOW_SECS {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 == WRONG_CODES_ALLOWED
    }
}

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
    // A grace without bound would keep a missed check-in quiet for ever.
    if interval_secs != 0
        && (code_digest == duress_digest
            || !(1..=MAX_INTERVAL_SECS).contains(&interval_secs)
            || grace_secs > MAX_INTERVAL_SECS)
    {
        return Err(RequestError::InvalidArgument(
            "the interval must be 1 second to 30 days, the grace at most 30 days, and the duress code must differ from the normal code",
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
    if shared.guesses.slowed(&me, now) {
        tokio::time::sleep(GUESS_DELAY).await;
    }
    let (kind, late) = shared
        .store_call(move |s| s.checkin(me, code_digest, now))
        .await?;
    if kind == CheckinKind::Wrong && shared.guesses.wrong(me, now) {
        // The answer stays the same; staff hear of it.
        warn!("repeated wrong check-in codes: staff alerted");
        shared
            .store_call(move |s| s.wrong_checkin_codes(me, now))
            .await?;
    }
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
