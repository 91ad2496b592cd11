//! Cases (docs/protocol.md, section 9.3 and 9.7): staff append sealed,
//! signed events and sync them back; a defender asks for a case; two staff
//! members erase a closed one. The server checks what it can see (the
//! signature, the author, the roster, the epoch and commitment, the
//! coarse state) and never anything of the content, which it cannot read.
//!
//! Logs name the request kind and its outcome only: never a case id, an
//! event id, a size or anything else of one case.

use hotline_proto::Signature;
use hotline_proto::alert::Push;
use hotline_proto::case::{CaseId, CaseSync, SignedCaseEvent};
use hotline_proto::e2e::envelope::SignedEnvelope;
use hotline_proto::message::Response;
use hotline_proto::{DeviceId, Role};
use tracing::debug;

use super::{PushTo, Reply, RequestError, Session, Shared, messaging};
use crate::domain::cases::{AppendRefusal, ErasureRefusal};
use crate::domain::devices::CaseStaffRefusal;

/// Frames of one `sync_cases` answer, at most; past them the last frame
/// says `more` and the client asks again after its `cursor`.
pub const MAX_SYNC_FRAMES: usize = 64;
/// The bytes of updates one frame may hold: a frame, less room for the
/// answer's own fields.
pub const SYNC_FRAME_BUDGET: usize = hotline_proto::frame::MAX_FRAME_LEN - 4096;

/// What a refused requested count tells a defender (their own count only).
const TOO_MANY_REQUESTS: &str =
    "you already have 5 requests waiting for the team; they will answer them";

fn append_error(r: AppendRefusal) -> RequestError {
    let detail = r.detail();
    match r {
        AppendRefusal::EventIdReused
        | AppendRefusal::LedgerNotNew
        | AppendRefusal::EpochSkipped
        | AppendRefusal::StateRequested => RequestError::InvalidArgument(detail),
        AppendRefusal::UnknownCase => RequestError::NotFound(detail),
        AppendRefusal::LegalHoldRole => RequestError::Forbidden(detail.into()),
        AppendRefusal::Erased
        | AppendRefusal::RequestedNeedsDecision
        | AppendRefusal::Rotated
        | AppendRefusal::WrongKey
        | AppendRefusal::AlreadyOpen
        | AppendRefusal::AlreadyClosed
        | AppendRefusal::LedgerClosed => RequestError::FailedPrecondition(detail),
    }
}

fn erasure_error(r: ErasureRefusal) -> RequestError {
    match r {
        ErasureRefusal::UnknownCase => RequestError::NotFound("no such case"),
        ErasureRefusal::BadSignature => {
            RequestError::BadSignature(crate::domain::cases::BAD_ERASURE_SIGNATURE)
        }
        other => RequestError::FailedPreconditionDetail(other.detail()),
    }
}

/// Staff on the newest roster only, by the readers' rule (docs/protocol.md,
/// section 9.3): no roster is `FAILED_PRECONDITION` (an admin can sign
/// one); a device not enrolled as staff, or whose roster entry (with the
/// identity key it enrolled with) is missing or not of a staff role,
/// `FORBIDDEN` "this device is not on the staff roster"; an entry not
/// valid at `at` (the server's time of the request, the time an event is
/// recorded with), `FORBIDDEN` naming that. The role of the entry is
/// what the device may do with cases.
fn require_case_staff(shared: &Shared, session: Session, at: u64) -> Result<Role, RequestError> {
    let standing = shared.store_read(|s| {
        let state = s.lock();
        let enrolled = state
            .devices
            .get(&session.device_id)
            .filter(|_| state.staff.contains_key(&session.device_id))
            .map(|d| d.identity_key);
        Ok(state.roster.as_ref().map(|r| {
            enrolled
                .ok_or(CaseStaffRefusal::NotStaff)
                .and_then(|key| r.case_staff_at(&session.device_id, &key, at))
        }))
    })?;
    match standing {
        None => Err(RequestError::FailedPrecondition(
            "no staff roster is stored yet: cases need one; ask an admin to sign a roster (hotline org sign-roster)",
        )),
        Some(Ok(role)) => Ok(role),
        Some(Err(CaseStaffRefusal::NotStaff)) => Err(RequestError::Forbidden(
            "this device is not on the staff roster".into(),
        )),
        Some(Err(CaseStaffRefusal::NotValidNow)) => Err(RequestError::Forbidden(
            "this device is not on the staff roster now: its entry's dates do not include this time".into(),
        )),
    }
}

/// Every staff device on the newest roster but `except`: who hears of a
/// new case update (a device the roster does not list may not read cases,
/// so it is not told of their activity either).
fn staff_push(
    shared: &Shared,
    except: DeviceId,
    position: u64,
) -> Result<Vec<PushTo>, RequestError> {
    if position == 0 {
        return Ok(Vec::new());
    }
    let devices: Vec<DeviceId> = shared.store_read(|s| {
        let state = s.lock();
        let Some(roster) = state.roster.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(state
            .staff
            .keys()
            .copied()
            .filter(|d| *d != except && roster.members.contains(d))
            .collect())
    })?;
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![PushTo {
        devices,
        push: Push::Cases(position),
    }])
}

/// `append_case_event`: rules 1 to 8 of section 9.3, in order.
pub(super) async fn append(
    shared: &Shared,
    session: Session,
    event: SignedCaseEvent,
) -> Result<Reply, RequestError> {
    // (1) The author is this device.
    if event.author != session.device_id {
        return Err(RequestError::InvalidArgument(
            "a case event must be written by this device",
        ));
    }
    // (2) The header reads, the signature verifies.
    let header = event
        .header_unverified()
        .map_err(|_| RequestError::Malformed("the case event does not decode"))?;
    if !event.body_is_canonical() {
        return Err(RequestError::Malformed(
            "the case event's body is not the canonical encoding of its fields",
        ));
    }
    let author = shared.enrolled_device(session.device_id)?;
    event
        .verify_signature(&author.identity_key)
        .map_err(|_| RequestError::BadSignature("the case event is not signed by this device"))?;
    // (3) Staff on the newest roster at the time the event is recorded
    // with (the readers' rule), naming no newer roster.
    let now = crate::unix_now();
    let role = require_case_staff(shared, session, now)?;
    let newest = shared.store_read(|s| Ok(s.lock().roster.as_ref().map_or(0, |r| r.version)))?;
    if header.roster_version > newest {
        return Err(RequestError::InvalidArgument(
            "the event names a roster newer than the server's",
        ));
    }
    // (4) to (8).
    let outcome = shared
        .store_call(move |s| s.append_case_event(event, header, role, now))
        .await?;
    let (position, duplicate) = match outcome {
        Ok(accepted) => accepted,
        Err(refusal) => {
            debug!("case event refused");
            return Err(append_error(refusal));
        }
    };
    let pushes = if duplicate {
        Vec::new()
    } else {
        staff_push(shared, session.device_id, position)?
    };
    Ok(Reply::with_pushes(
        Response::CaseEventAccepted {
            position,
            duplicate,
        },
        pushes,
    ))
}

/// A frame always holds at least one update: the largest update (an
/// event of the largest body, plus its fixed fields) fits a frame's
/// budget, so a page never ends before its first update.
const _ONE_UPDATE_FITS: () = assert!(
    hotline_proto::case::MAX_EVENT_BODY_LEN + crate::store::cases::UPDATE_OVERHEAD
        <= SYNC_FRAME_BUDGET
);

/// Where the rest of a `sync_cases` answer starts: the endpoint builds
/// each frame after it wrote the one before ([`next_sync_frame`]), so a
/// stream holds one frame at a time however slowly its reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRest {
    /// The position the next frame's updates follow.
    after: u64,
    /// Frames of this answer built so far.
    built: usize,
    /// Said in every frame.
    retention_secs: u64,
}

/// One frame of a sync answer past the first, counted among the frames
/// held (built, not yet written: [`Shared::sync_frames_held`]) until it
/// is dropped.
#[derive(Debug)]
pub struct SyncFrame {
    /// The frame.
    pub response: Response,
    /// What follows it, if anything.
    pub rest: Option<SyncRest>,
    _held: Held,
}

/// Counts a frame held while it lives.
#[derive(Debug)]
struct Held(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Held {
    fn new(count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Held {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Held(count.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Builds the frame of a sync answer that follows `rest.after`: one
/// page of at most [`SYNC_FRAME_BUDGET`] bytes of updates, and what
/// follows it (nothing once the updates are all sent, or once the answer
/// has [`MAX_SYNC_FRAMES`] frames: then the frame says `more`).
async fn sync_page(
    shared: &Shared,
    rest: SyncRest,
) -> Result<(Response, Option<SyncRest>), RequestError> {
    let from = rest.after;
    let page = shared
        .store_call(move |s| s.case_updates(from, SYNC_FRAME_BUDGET))
        .await?;
    let built = rest.built + 1;
    let last = !page.more || built == MAX_SYNC_FRAMES;
    // `more` is said once, in the last frame of an answer cut short:
    // the frames before it are followed by the rest on this stream.
    let frame = Response::CaseSync(CaseSync {
        updates: page.updates,
        cursor: page.cursor,
        more: last && page.more,
        retention_secs: rest.retention_secs,
    });
    let next = (!last).then_some(SyncRest {
        after: page.cursor,
        built,
        retention_secs: rest.retention_secs,
    });
    Ok((frame, next))
}

/// The next frame of a sync answer whose previous frame was written. A
/// failure to read the store becomes an error frame that ends the answer.
pub async fn next_sync_frame(shared: &Shared, rest: SyncRest) -> SyncFrame {
    let held = Held::new(&shared.sync_frames_held);
    match sync_page(shared, rest).await {
        Ok((response, rest)) => SyncFrame {
            response,
            rest,
            _held: held,
        },
        Err(e) => SyncFrame {
            response: Response::Error(e.into()),
            rest: None,
            _held: held,
        },
    }
}

/// `sync_cases`: the first frame of every update after `after`, in
/// frames of at most [`SYNC_FRAME_BUDGET`] bytes of updates, at most
/// [`MAX_SYNC_FRAMES`]; the endpoint builds the rest one by one as it
/// writes them.
pub(super) async fn sync(
    shared: &Shared,
    session: Session,
    after: u64,
) -> Result<Reply, RequestError> {
    require_case_staff(shared, session, crate::unix_now())?;
    let retention_secs = shared
        .case_retention_days
        .saturating_mul(crate::domain::cases::DAY_SECS);
    let (first, rest) = sync_page(
        shared,
        SyncRest {
            after,
            built: 0,
            retention_secs,
        },
    )
    .await?;
    Ok(Reply {
        more: rest,
        ..first.into()
    })
}

/// `request_case`: a defender's request, sealed to the staff; stored in
/// their inboxes like `send_envelope`, and a case in state requested.
pub(super) async fn request(
    shared: &Shared,
    session: Session,
    envelope: SignedEnvelope,
) -> Result<Reply, RequestError> {
    let recipients = messaging::check_envelope(shared, session, &envelope)?;
    let digest = envelope.digest();
    let bytes = envelope.encode();
    let defender = session.device_id;
    let devices: Vec<DeviceId> = recipients
        .iter()
        .copied()
        .filter(|d| *d != defender)
        .collect();
    let now = crate::unix_now();
    let outcome = shared
        .store_call(move |s| s.request_case(defender, digest, recipients, bytes, now))
        .await?;
    let Ok(accepted) = outcome else {
        debug!("case request refused: too many waiting");
        return Err(RequestError::FailedPrecondition(TOO_MANY_REQUESTS));
    };
    let mut pushes = Vec::new();
    if !accepted.duplicate {
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
        pushes.extend(staff_push(shared, defender, accepted.position)?);
    }
    Ok(Reply::with_pushes(
        Response::CaseRequestAccepted {
            case_id: accepted.case_id,
            envelope_id: accepted.envelope_id,
            duplicate: accepted.duplicate,
        },
        pushes,
    ))
}

/// `request_case_erasure`: the first of the two staff members. The roster
/// rule first, then the case (section 9.7), whose closing event the
/// signature must cover, under this device's enrolled identity key: the
/// signature travels to every staff device in the sync, which applies the
/// erasure on the strength of it.
pub(super) async fn request_erasure(
    shared: &Shared,
    session: Session,
    case_id: CaseId,
    signature: Signature,
) -> Result<Reply, RequestError> {
    require_case_staff(shared, session, crate::unix_now())?;
    let key = shared.enrolled_device(session.device_id)?.identity_key;
    let by = session.device_id;
    let now = crate::unix_now();
    let retention = shared.case_retention_days;
    let (requested_by, position) = shared
        .store_call(move |s| s.request_case_erasure(case_id, by, key, signature, now, retention))
        .await?
        .map_err(|r| {
            debug!("case erasure request refused");
            erasure_error(r)
        })?;
    Ok(Reply::with_pushes(
        Response::CaseErasure {
            case_id,
            requested_by,
            erased: false,
        },
        staff_push(shared, by, position)?,
    ))
}

/// `confirm_case_erasure`: a second staff member, coordinator or admin,
/// whose signature covers the case, its closing event and the pending
/// request's signature.
pub(super) async fn confirm_erasure(
    shared: &Shared,
    session: Session,
    case_id: CaseId,
    signature: Signature,
) -> Result<Reply, RequestError> {
    let now = crate::unix_now();
    // Readers take a confirmation only from a coordinator or admin by
    // the roster's entry (section 9.7): the server asks the same.
    if !matches!(
        require_case_staff(shared, session, now)?,
        Role::Coordinator | Role::Admin
    ) {
        return Err(RequestError::Forbidden(
            "only a coordinator or an admin on the staff roster confirms an erasure".into(),
        ));
    }
    debug_assert!(matches!(session.role, Role::Coordinator | Role::Admin));
    let key = shared.enrolled_device(session.device_id)?.identity_key;
    let by = session.device_id;
    let retention = shared.case_retention_days;
    let (requested_by, position) = shared
        .store_call(move |s| s.confirm_case_erasure(case_id, by, key, signature, now, retention))
        .await?
        .map_err(|r| {
            debug!("case erasure confirmation refused");
            erasure_error(r)
        })?;
    debug!("case erased");
    Ok(Reply::with_pushes(
        Response::CaseErasure {
            case_id,
            requested_by,
            erased: true,
        },
        staff_push(shared, by, position)?,
    ))
}
