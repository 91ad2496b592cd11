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

pub use crate::domain::checkins::{GUESS_WINDOW_SECS, WRONG_CODES_ALLOWED};

/// How long each check-in of a device past the limit waits before it is
/// answered: right, wrong and duress alike, so that the wait tells
/// nothing, and 10,000 four-digit codes take over five hours.
pub const GUESS_DELAY: Duration = Duration::from_secs(2);

/// When each slowed device's next check-in may be answered. The wrong
/// codes themselves are counted in the log (`CheckinEvent::WrongCode`):
/// a thief holding a phone (the panic key needs no passphrase) must not be
/// able to try codes at network speed until one works and keep the missed
/// check-ins quiet, nor get fresh guesses from a restart of the server.
/// Only these turns live in memory: after a restart a slowed device's
/// next check-in waits one [`GUESS_DELAY`] from then.
#[derive(Debug, Default)]
pub struct Guesses(Mutex<HashMap<DeviceId, tokio::time::Instant>>);

impl Guesses {
    /// How long this check-in of a slowed `device` waits before it is
    /// handled: a turn [`GUESS_DELAY`] after the last one handed out, so
    /// that check-ins sent side by side on many streams wait one after
    /// another rather than together.
    fn turn(&self, device: &DeviceId) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = tokio::time::Instant::now();
        let next = map.entry(*device).or_insert(start);
        let turn = (*next).max(start) + GUESS_DELAY;
        *next = turn;
        turn - start
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
    let slowed = shared.store_read(|s| s.over_guess_limit(&me, now))?;
    if slowed {
        tokio::time::sleep(shared.guesses.turn(&me)).await;
    }
    // A wrong code is recorded, and the one that reaches the limit raises
    // the staff's notice in its record: the answer is the same whatever
    // the count.
    let (kind, late) = shared
        .store_call(move |s| s.checkin(me, code_digest, now))
        .await?;
    if kind == CheckinKind::Wrong
        && !slowed
        && shared.store_read(|s| s.over_guess_limit(&me, now))?
    {
        warn!("repeated wrong check-in codes: staff alerted");
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
