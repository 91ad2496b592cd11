//! Who may do what: a request from a device becomes calls on the store,
//! and their outcome becomes an answer and the pushes it causes.
//!
//! Nothing here touches the network. [`handle`] takes the request context
//! and returns a [`Reply`]: the endpoint sends its pushes, then its
//! response, and closes the connection if it says so. The escalation tick
//! and the catch-up on connect use the same pushes
//! (`alerts::escalate`, `alerts::catch_up`).
//!
//! The order of a request: the device is re-read (a revoked device is
//! answered `DEVICE_REVOKED` and its connection closed), the role table
//! ([`allowed`]) is consulted, then the one exhaustive `dispatch` calls
//! the request's function in the file of its domain: `devices.rs`,
//! `messaging.rs`, `alerts.rs`, `checkins.rs`. Every refusal is a
//! [`RequestError`], turned into the wire error in one place.

pub(crate) mod alerts;
pub(crate) mod cases;
pub mod checkins;
pub(crate) mod devices;
#[cfg(test)]
mod limits_doc;
mod messaging;
pub mod protocol_doc;

use std::sync::Arc;

use hotline_proto::alert::Push;
use hotline_proto::message::{Request, RequestKind, Response};
use hotline_proto::{CertPin, DeviceId, ErrorCode, Role, WireError};
use tracing::{debug, warn};

use crate::config::{Config, Limits};
use crate::domain::alerts::Policies;
use crate::domain::devices::Device;
use crate::domain::rota::Shift;
use crate::store::{LogStore, StoreError};

/// Which devices have a live, authenticated connection right now. The
/// endpoint knows (it holds the connections); the request layer asks, to
/// tell a defender how many staff devices its page reached at once.
pub trait Presence: Send + Sync + std::fmt::Debug {
    /// Whether `device` has at least one live connection.
    fn is_connected(&self, device: &DeviceId) -> bool;
}

/// No device connected: the presence of a context without an endpoint
/// (an invite made on the server host, unit tests).
#[derive(Debug)]
struct Nobody;

impl Presence for Nobody {
    fn is_connected(&self, _: &DeviceId) -> bool {
        false
    }
}

/// What every request sees: the store and the server's rules.
#[derive(Debug)]
pub struct Shared {
    pub(crate) store: Arc<LogStore>,
    /// Who is connected now (see [`Shared::with_presence`]).
    pub(crate) presence: Arc<dyn Presence>,
    pub(crate) limits: Limits,
    pub(crate) policies: Policies,
    pub(crate) rota: Vec<Shift>,
    /// Wrong check-in codes per device (see `checkins::Guesses`).
    pub(crate) guesses: checkins::Guesses,
    /// One-time prekeys handed out per requester and target (see
    /// `messaging::PrekeyBudget`).
    pub(crate) prekey_budget: messaging::PrekeyBudget,
    /// What an invite says about this server.
    pin: CertPin,
    advertised_addr: String,
    server_name: String,
    /// The data directory (for the free space admins see in `status`).
    pub(crate) data_dir: Option<std::path::PathBuf>,
    /// Free space under this is low (`storage.warn_free_bytes`), as
    /// admins are told in `status`.
    pub(crate) warn_free_bytes: u64,
    /// Days a closed case is kept before it may be erased
    /// (`cases.retention_days`).
    pub(crate) case_retention_days: u64,
    /// Frames of case sync answers built and not yet written (each
    /// stream holds one at a time: [`cases::next_sync_frame`]).
    pub(crate) sync_frames_held: Arc<std::sync::atomic::AtomicUsize>,
}

impl Shared {
    /// The request context of a server with `config`, serving `store`
    /// under the certificate `pin`, reachable at `advertised_addr`.
    pub fn new(
        store: Arc<LogStore>,
        config: &Config,
        pin: CertPin,
        advertised_addr: String,
    ) -> Shared {
        Shared {
            store,
            presence: Arc::new(Nobody),
            limits: config.limits.clone(),
            policies: config.escalation.clone(),
            // Validated with the configuration before the server starts.
            rota: crate::domain::rota::parse(&config.rota).unwrap_or_default(),
            guesses: checkins::Guesses::default(),
            prekey_budget: messaging::PrekeyBudget::new(config.limits.one_time_prekeys_per_hour),
            pin,
            advertised_addr,
            server_name: config.server_name.clone(),
            data_dir: Some(config.data_dir.clone()),
            warn_free_bytes: config.storage.warn_free_bytes,
            case_retention_days: config.cases.retention_days,
            sync_frames_held: Arc::default(),
        }
    }

    /// Frames of case sync answers built past their first and not yet
    /// written: at most one per stream sending such an answer.
    pub fn sync_frames_held(&self) -> usize {
        self.sync_frames_held
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This context, asking `presence` who is connected.
    pub fn with_presence(self, presence: Arc<dyn Presence>) -> Shared {
        Shared { presence, ..self }
    }

    /// The certificate pin clients must see.
    pub fn pin(&self) -> CertPin {
        self.pin
    }

    /// Runs a (blocking) store operation without stalling other tasks.
    ///
    /// On a multi-threaded runtime (the server's) the calling worker
    /// thread runs it in place and hands its other tasks to another
    /// thread: no wait for a blocking-pool thread to wake, which is on the
    /// path of every SOS. Elsewhere (a single-threaded test runtime) it
    /// goes to the blocking pool. Either way the caller continues on a
    /// worker thread.
    pub(crate) async fn store_call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&LogStore) -> Result<T, StoreError> + Send + 'static,
    {
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            // A panic in the store (sled has some on damaged files) is an
            // error for this request, as it is from the blocking pool.
            let result = tokio::task::block_in_place(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&self.store)))
                    .unwrap_or_else(|_| Err(StoreError::Io("store task failed".into())))
            });
            // A call that waited for the disk has handed this thread's
            // worker role to another thread; what the task does next
            // (answer, page) wakes connections, which from outside a
            // worker costs a system call each. Continue on a worker.
            tokio::task::yield_now().await;
            return result;
        }
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| StoreError::Io("store task failed".into()))?
    }

    /// Runs a store read that touches only the in-memory state (no disk).
    ///
    /// It still waits for the state lock, which a writer holds while it
    /// seals a record (up to 112 KiB) and a snapshot holds while it encodes
    /// the whole state: on a large store that is far from short, and a
    /// worker thread blocked on it stalls every connection it serves. So
    /// when the lock is taken, a multi-threaded runtime's worker hands its
    /// other tasks to another thread first (as [`Shared::store_call`]
    /// does); when it is free (nearly always) the read runs in place,
    /// without that hand-over's cost.
    pub(crate) fn store_read<T>(
        &self,
        f: impl FnOnce(&LogStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.store.state_is_busy()
            || tokio::runtime::Handle::try_current()
                .map(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread)
                .unwrap_or(true)
        {
            return f(&self.store);
        }
        tokio::task::block_in_place(|| f(&self.store))
    }

    /// Refuses a staff device that is not on the newest roster
    /// (`FAILED_PRECONDITION`: an admin can fix it by signing a roster
    /// that lists it): it could not read what it would claim or answer.
    /// Says what to ask an admin.
    pub(crate) fn require_on_roster(&self, session: Session) -> Result<(), RequestError> {
        if !session.role.is_staff() || self.store_read(|s| s.may_read_alerts(&session.device_id))? {
            return Ok(());
        }
        Err(RequestError::FailedPrecondition(
            "this device is not on the organisation's signed roster, so it cannot read alerts, claim them or answer defenders; ask an admin to sign a new roster (hotline org sign-roster) that lists it",
        ))
    }

    /// The enrolled device `id` (revoked or not).
    pub(crate) fn enrolled_device(&self, id: DeviceId) -> Result<Device, RequestError> {
        self.store_read(|s| s.device(&id))?
            .ok_or(RequestError::UnknownDevice)
    }
}

/// The authenticated device on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Which device.
    pub device_id: DeviceId,
    /// Its role, as enrolled.
    pub role: Role,
    /// Authenticated with the defender's panic key (no passphrase): only
    /// what raising an alert and checking in need is allowed
    /// ([`allowed_with_panic_key`]).
    pub panic: bool,
}

/// A push to send to every live connection of some devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTo {
    /// Who gets it.
    pub devices: Vec<DeviceId>,
    /// What.
    pub push: Push,
}

/// What a request leads to, for the endpoint to send: the pushes first
/// (an SOS pages the officers before the defender hears back), then the
/// response; then, if `close` says so, the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The answer on the request's stream.
    pub response: Response,
    /// Pushes to send before the answer.
    pub pushes: Vec<PushTo>,
    /// Close this connection with this error after answering.
    pub close: Option<WireError>,
    /// Close every connection of these devices (they were revoked).
    pub disconnect: Vec<DeviceId>,
    /// Frames sent after `response` on the same stream, before it
    /// finishes, each built after the one before is written
    /// ([`cases::next_sync_frame`]): only a `sync_cases` answer has more
    /// than one (docs/protocol.md, section 9.3).
    pub more: Option<cases::SyncRest>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply {
            response,
            pushes: Vec::new(),
            close: None,
            disconnect: Vec::new(),
            more: None,
        }
    }
}

impl From<RequestError> for Reply {
    fn from(e: RequestError) -> Reply {
        Response::Error(e.into()).into()
    }
}

impl Reply {
    /// This answer, after these pushes.
    fn with_pushes(response: Response, pushes: Vec<PushTo>) -> Reply {
        Reply {
            pushes,
            ..response.into()
        }
    }
}

/// Why a request was refused. Each variant becomes one wire error code
/// ([`RequestError::code`]); details are fixed English text for operators
/// and never carry ids, names or content.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// `FORBIDDEN`: this role may not make this request, or not on this
    /// object.
    #[error("{0}")]
    Forbidden(String),
    /// `INVALID_ARGUMENT`: well-formed but unacceptable (a client mistake
    /// the person can fix; retrying the same request cannot help).
    #[error("{0}")]
    InvalidArgument(&'static str),
    /// `FAILED_PRECONDITION`: the state forbids it.
    #[error("{0}")]
    FailedPrecondition(&'static str),
    /// `FAILED_PRECONDITION`, with a detail made for the case (a number of
    /// days; never an id or content).
    #[error("{0}")]
    FailedPreconditionDetail(String),
    /// `NOT_FOUND`: the named thing does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// `BAD_SIGNATURE`: a signature does not verify.
    #[error("{0}")]
    BadSignature(&'static str),
    /// `MALFORMED`: something inside the request does not decode.
    #[error("{0}")]
    Malformed(&'static str),
    /// `UNKNOWN_DEVICE`: no device is enrolled with this id.
    #[error("no device is enrolled with this id")]
    UnknownDevice,
    /// `DEVICE_REVOKED`: the device was revoked.
    #[error("this device has been revoked")]
    Revoked,
    /// `INVITE_UNKNOWN`: no invite has this token.
    #[error("this invite is not known to the server")]
    InviteUnknown,
    /// `INVITE_USED`: the invite was used before.
    #[error("this invite has already been used")]
    InviteUsed,
    /// `INVITE_USED`: a newer bootstrap admin invite replaced this one.
    #[error(
        "this admin invite was replaced by a newer one: use the invite the server printed last"
    )]
    InviteReplaced,
    /// `INVITE_EXPIRED`: the invite expired.
    #[error("this invite has expired")]
    InviteExpired,
    /// `ALREADY_ENROLLED`: the identity key is already enrolled.
    #[error("this identity key is already enrolled")]
    AlreadyEnrolled,
    /// `UNAVAILABLE` (the store cannot save now: retry) or `INTERNAL`
    /// (the store is damaged).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `INTERNAL`: a bug on the server's side.
    #[error("server error")]
    Internal(&'static str),
}

impl RequestError {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::Forbidden(_) => ErrorCode::Forbidden,
            RequestError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            RequestError::FailedPrecondition(_) | RequestError::FailedPreconditionDetail(_) => {
                ErrorCode::FailedPrecondition
            }
            RequestError::NotFound(_) => ErrorCode::NotFound,
            RequestError::BadSignature(_) => ErrorCode::BadSignature,
            RequestError::Malformed(_) => ErrorCode::Malformed,
            RequestError::UnknownDevice => ErrorCode::UnknownDevice,
            RequestError::Revoked => ErrorCode::DeviceRevoked,
            RequestError::InviteUnknown => ErrorCode::InviteUnknown,
            RequestError::InviteUsed | RequestError::InviteReplaced => ErrorCode::InviteUsed,
            RequestError::InviteExpired => ErrorCode::InviteExpired,
            RequestError::AlreadyEnrolled => ErrorCode::AlreadyEnrolled,
            RequestError::Store(
                StoreError::Io(_)
                | StoreError::Locked
                | StoreError::Degraded(_)
                | StoreError::ReadOnly,
            ) => ErrorCode::Unavailable,
            RequestError::Store(StoreError::Corrupt(_)) | RequestError::Internal(_) => {
                ErrorCode::Internal
            }
        }
    }
}

impl From<RequestError> for WireError {
    /// The one conversion to the wire. Store failures and bugs are logged
    /// here; the peer learns only that it failed.
    fn from(e: RequestError) -> WireError {
        let code = e.code();
        match &e {
            RequestError::Store(StoreError::Io(_) | StoreError::Locked) => {
                warn!(error = %e, "storage unavailable");
                WireError::new(code, "the server cannot save right now; try again")
            }
            RequestError::Store(StoreError::Degraded(_)) => {
                // The storage watch logs the failure and the healing.
                tracing::debug!("write refused: storage degraded");
                WireError::new(code, DEGRADED_DETAIL)
            }
            RequestError::Store(StoreError::ReadOnly) => WireError::new(code, READ_ONLY_DETAIL),
            RequestError::Store(StoreError::Corrupt(_)) => {
                tracing::error!(error = %e, "store damaged");
                WireError::new(code, "server error")
            }
            RequestError::Internal(what) => {
                tracing::error!(what, "request failed on the server side");
                WireError::new(code, "server error")
            }
            _ => WireError::new(code, e.to_string()),
        }
    }
}

/// What a writer is told while the server's storage is full or failing.
pub const DEGRADED_DETAIL: &str =
    "the server's storage is full or failing: nothing was saved; try again later";
/// What a writer is told while the store is served read-only.
pub const READ_ONLY_DETAIL: &str =
    "the server is in read-only recovery: nothing can be saved; try again later";

/// The role table: whether a device of `role` may make a request of
/// `kind` at all. Finer rules (whose alert, whose envelope, which role an
/// invite is for) belong to the request's function. `docs/protocol.md`
/// §4.2 shows the same table; a unit test holds the two together.
pub fn allowed(role: Role, kind: RequestKind) -> bool {
    use RequestKind as K;
    let defender = role == Role::Defender;
    let staff = role.is_staff();
    let admin = role == Role::Admin;
    match kind {
        K::Status
        | K::GetRoster
        | K::PublishPrekeys
        | K::FetchPrekeys
        | K::SendEnvelope
        | K::FetchInbox
        | K::AckInbox
        | K::ListAlerts
        | K::CloseAlert
        | K::AlertDelivered
        | K::MarkRead
        | K::Delivery => true,
        K::CreateInvite
        | K::ClaimAlert
        | K::SetDuty
        | K::DutyStatus
        | K::AppendCaseEvent
        | K::SyncCases
        | K::RequestCaseErasure => staff,
        K::ConfirmCaseErasure => matches!(role, Role::Coordinator | Role::Admin),
        K::ListDevices | K::RevokeDevice | K::PutRoster => admin,
        K::RaiseAlert | K::SetCheckin | K::Checkin | K::RegisterPanicKey | K::RequestCase => {
            defender
        }
    }
}

/// Whether a session authenticated with a defender's panic key may make
/// a request of `kind`: raising an alert and checking in, and what sealing
/// the SOS's text needs (the roster and the staff's prekeys, both public
/// and signed). Nothing that reads or changes anything else: no inbox, no
/// messages, no alerts list, no cancelling, no check-in schedule.
/// `docs/protocol.md` §4.2 shows it as the "defender (panic key)" column.
pub fn allowed_with_panic_key(kind: RequestKind) -> bool {
    use RequestKind as K;
    match kind {
        K::RaiseAlert | K::Checkin | K::GetRoster | K::FetchPrekeys => true,
        K::Status
        | K::CreateInvite
        | K::ListDevices
        | K::RevokeDevice
        | K::PutRoster
        | K::PublishPrekeys
        | K::SendEnvelope
        | K::FetchInbox
        | K::AckInbox
        | K::ListAlerts
        | K::ClaimAlert
        | K::CloseAlert
        | K::SetDuty
        | K::AlertDelivered
        | K::SetCheckin
        | K::MarkRead
        | K::Delivery
        | K::DutyStatus
        | K::RegisterPanicKey
        | K::AppendCaseEvent
        | K::SyncCases
        | K::RequestCase
        | K::RequestCaseErasure
        | K::ConfirmCaseErasure => false,
    }
}

/// What a request of `kind` does, as a refusal names it ("officers may
/// not set up check-ins"): the person reads the command they typed, not
/// the request's name on the wire.
fn action(kind: RequestKind) -> &'static str {
    use RequestKind as K;
    match kind {
        K::Status => "ask for their status",
        K::CreateInvite => "invite devices",
        K::ListDevices => "list devices",
        K::RevokeDevice => "revoke devices",
        K::PutRoster => "upload the roster",
        K::GetRoster => "fetch the roster",
        K::PublishPrekeys => "publish prekeys",
        K::FetchPrekeys => "fetch prekeys",
        K::SendEnvelope => "send messages",
        K::FetchInbox => "read their inbox",
        K::AckInbox => "acknowledge their inbox",
        K::RaiseAlert => "raise an SOS (only defenders do)",
        K::ListAlerts => "list alerts",
        K::ClaimAlert => "claim alerts",
        K::CloseAlert => "close alerts",
        K::SetDuty => "go on or off duty",
        K::AlertDelivered => "confirm pages",
        K::SetCheckin => "set up check-ins (only defenders do)",
        K::Checkin => "check in (only defenders do)",
        K::MarkRead => "mark messages read",
        K::Delivery => "ask how far messages got",
        K::DutyStatus => "see who is on duty",
        K::AppendCaseEvent => "write to cases",
        K::SyncCases => "read cases",
        K::RequestCase => "ask for help with a case (only defenders do)",
        K::RequestCaseErasure => "ask for a case to be erased",
        K::ConfirmCaseErasure => "confirm a case's erasure (only coordinators and admins do)",
        K::RegisterPanicKey => "register a panic key (only defenders do)",
    }
}

/// Answers one request's payload (the frame's bytes) from the device of
/// `session`. A revoked device is answered `DEVICE_REVOKED` before its
/// payload is even decoded: it can fix nothing else, so it must not be
/// told of a mistake in its request first.
pub async fn handle_payload(shared: &Shared, session: Session, payload: &[u8]) -> Reply {
    if let Err(reply) = still_enrolled(shared, session) {
        return *reply;
    }
    match Request::decode(payload) {
        Err(e) => {
            debug!(error = %e, "undecodable request");
            Response::Error(e.into()).into()
        }
        Ok(req) => handle(shared, session, req).await,
    }
}

/// `Ok` if the device of `session` is still enrolled, else the answer to
/// give it: `DEVICE_REVOKED`, closing the connection (or the store's
/// error). Every request re-reads the device, so a revocation takes effect
/// at once even on a connection that was set up before it.
fn still_enrolled(shared: &Shared, session: Session) -> Result<(), Box<Reply>> {
    match shared.store_read(|s| s.device(&session.device_id)) {
        Ok(Some(d)) if d.revoked_at.is_none() => Ok(()),
        Ok(_) => {
            let e = WireError::from(RequestError::Revoked);
            Err(Box::new(Reply {
                close: Some(e.clone()),
                ..Response::Error(e).into()
            }))
        }
        Err(e) => Err(Box::new(RequestError::from(e).into())),
    }
}

/// Answers one request from the device of `session`.
pub async fn handle(shared: &Shared, session: Session, req: Request) -> Reply {
    if let Err(reply) = still_enrolled(shared, session) {
        return *reply;
    }
    let kind = req.kind();
    if !allowed(session.role, kind) {
        debug!(kind = kind.log_name(), "refused by the role table");
        return RequestError::Forbidden(format!("{}s may not {}", session.role, action(kind)))
            .into();
    }
    if session.panic && !allowed_with_panic_key(kind) {
        debug!(kind = kind.log_name(), "refused to a panic-key session");
        return RequestError::Forbidden(format!(
            "the panic key may only raise an alert or check in, not {}; unlock the device with its passphrase",
            action(kind)
        ))
        .into();
    }
    let reply = dispatch(shared, session, req)
        .await
        .unwrap_or_else(Reply::from);
    debug!(kind = kind.log_name(), "request served");
    reply
}

/// The one dispatch: every request kind, one function each, no catch-all.
async fn dispatch(shared: &Shared, session: Session, req: Request) -> Result<Reply, RequestError> {
    match req {
        Request::Status => devices::status(shared, session),
        Request::CreateInvite { role, ttl_seconds } => {
            devices::create_invite(shared, session, role, ttl_seconds).await
        }
        Request::ListDevices => devices::list(shared).await,
        Request::RevokeDevice { device_id } => devices::revoke(shared, device_id).await,
        Request::PutRoster(roster) => messaging::put_roster(shared, roster).await,
        Request::GetRoster { version } => messaging::get_roster(shared, version).await,
        Request::PublishPrekeys(prekeys) => {
            messaging::publish_prekeys(shared, session, prekeys).await
        }
        Request::FetchPrekeys(devices) => messaging::fetch_prekeys(shared, session, devices).await,
        Request::FetchLastResortPrekeys(devices) => {
            messaging::fetch_last_resort_prekeys(shared, session, devices)
        }
        Request::SendEnvelope(envelope) => {
            messaging::send_envelope(shared, session, envelope, None).await
        }
        Request::SendInThread { envelope, alert_id } => {
            messaging::send_envelope(shared, session, envelope, Some(alert_id)).await
        }
        Request::FetchInbox { after, limit } => {
            messaging::fetch_inbox(shared, session, after, limit).await
        }
        Request::AckInbox { up_to } => messaging::ack_inbox(shared, session, up_to).await,
        Request::MarkRead(ids) => messaging::mark_read(shared, session, ids).await,
        Request::Delivery(ids) => messaging::delivery(shared, session, &ids),
        Request::RaiseAlert {
            priority,
            envelope,
            join_alert,
        } => alerts::raise(shared, session, priority, envelope, join_alert).await,
        Request::ListAlerts { open_only } => alerts::list(shared, session, open_only).await,
        Request::ClaimAlert { alert_id } => alerts::claim(shared, session, alert_id).await,
        Request::CloseAlert { alert_id, reason } => {
            alerts::close(shared, session, alert_id, reason).await
        }
        Request::SetDuty { on_duty } => alerts::set_duty(shared, session, on_duty).await,
        Request::DutyStatus => alerts::duty_status(shared, session).await,
        Request::AlertDelivered { alert_id } => alerts::delivered(shared, session, alert_id).await,
        Request::SetCheckin {
            interval_secs,
            grace_secs,
            code_digest,
            duress_digest,
        } => {
            checkins::set(
                shared,
                session,
                interval_secs,
                grace_secs,
                code_digest,
                duress_digest,
            )
            .await
        }
        Request::Checkin { code_digest } => checkins::checkin(shared, session, code_digest).await,
        Request::RegisterPanicKey(key) => devices::register_panic_key(shared, session, key).await,
        Request::AppendCaseEvent(event) => cases::append(shared, session, event).await,
        Request::SyncCases { after } => cases::sync(shared, session, after).await,
        Request::RequestCase(envelope) => cases::request(shared, session, envelope).await,
        Request::RequestCaseErasure(case_id, signature) => {
            cases::request_erasure(shared, session, case_id, signature).await
        }
        Request::ConfirmCaseErasure(case_id, signature) => {
            cases::confirm_erasure(shared, session, case_id, signature).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hotline_proto::alert::{CloseReason, Priority};
    use hotline_proto::e2e::envelope::SignedEnvelope;
    use hotline_proto::e2e::org::OrgKeyPair;
    use hotline_proto::e2e::roster::Roster;
    use hotline_proto::{IdentityKeyPair, Signature};

    use super::protocol_doc::Column;
    use super::*;
    use crate::domain::devices::{EnrollOutcome, InviteRecord};

    /// The role table of `docs/protocol.md` §4.2: request name -> the
    /// columns marked `yes`.
    fn documented_table() -> BTreeMap<String, Vec<Column>> {
        protocol_doc::role_table(include_str!("../../../docs/protocol.md"))
            .expect("protocol.md has the role table")
    }

    fn key(seed: u8) -> IdentityKeyPair {
        IdentityKeyPair::from_seed(&[seed; 32])
    }

    /// A store in `dir` and the request context over it.
    fn context(dir: &std::path::Path) -> (Arc<LogStore>, Shared) {
        let store = Arc::new(crate::store::open_in(dir));
        let shared = Shared::new(
            Arc::clone(&store),
            &Config::default(),
            CertPin::of_certificate(b"test"),
            "127.0.0.1:1".into(),
        );
        (store, shared)
    }

    /// Enrolls the device of `key(seed)` with `role`.
    fn enroll(store: &LogStore, seed: u8, role: Role) -> IdentityKeyPair {
        let invite = InviteRecord {
            role,
            created_at: 1,
            expires_at: u64::MAX,
            used_at: None,
            bootstrap: None,
        };
        store.put_invite([seed; 32], &invite).expect("invite");
        let outcome = store
            .enroll([seed; 32], key(seed).public_key(), 2)
            .expect("enroll");
        assert!(matches!(outcome, EnrollOutcome::Enrolled(_)));
        key(seed)
    }

    /// A request of `kind` from `me` that passes every rule but the role
    /// table's (a message signed by its sender, a check-in schedule with
    /// two codes, an invite for a defender, ...), so that a refusal
    /// names the role table or nothing.
    fn sample(kind: RequestKind, me: &IdentityKeyPair, other: DeviceId) -> Request {
        let envelope = SignedEnvelope {
            sender: me.device_id(),
            body: vec![1, 2, 3],
            signature: Signature::from_bytes([0; 64]),
        };
        match kind {
            RequestKind::Status => Request::Status,
            RequestKind::CreateInvite => Request::CreateInvite {
                role: Role::Defender,
                ttl_seconds: 3600,
            },
            RequestKind::ListDevices => Request::ListDevices,
            RequestKind::RevokeDevice => Request::RevokeDevice { device_id: other },
            RequestKind::PutRoster => Request::PutRoster(
                Roster {
                    version: 1,
                    issued_at: 1,
                    expires_at: u64::MAX,
                    previous_hash: [0; 32],
                    entries: Vec::new(),
                }
                .sign(&OrgKeyPair::from_seed(&[9; 32])),
            ),
            RequestKind::GetRoster => Request::GetRoster { version: 0 },
            RequestKind::PublishPrekeys => Request::PublishPrekeys(Vec::new()),
            RequestKind::FetchPrekeys => Request::FetchPrekeys(Vec::new()),
            RequestKind::SendEnvelope => Request::SendEnvelope(envelope),
            RequestKind::FetchInbox => Request::FetchInbox {
                after: 0,
                limit: 10,
            },
            RequestKind::AckInbox => Request::AckInbox { up_to: 0 },
            RequestKind::RaiseAlert => Request::RaiseAlert {
                priority: Priority::Immediate,
                envelope: Some(envelope),
                join_alert: 0,
            },
            RequestKind::ListAlerts => Request::ListAlerts { open_only: true },
            RequestKind::ClaimAlert => Request::ClaimAlert { alert_id: 999 },
            RequestKind::CloseAlert => Request::CloseAlert {
                alert_id: 999,
                reason: CloseReason::Cancelled,
            },
            RequestKind::SetDuty => Request::SetDuty { on_duty: true },
            RequestKind::AlertDelivered => Request::AlertDelivered { alert_id: 999 },
            RequestKind::SetCheckin => Request::SetCheckin {
                interval_secs: 3600,
                grace_secs: 60,
                code_digest: [1; 32],
                duress_digest: [2; 32],
            },
            RequestKind::Checkin => Request::Checkin {
                code_digest: [1; 32],
            },
            RequestKind::MarkRead => Request::MarkRead(Vec::new()),
            RequestKind::Delivery => Request::Delivery(Vec::new()),
            RequestKind::DutyStatus => Request::DutyStatus,
            RequestKind::RegisterPanicKey => Request::RegisterPanicKey(key(77).public_key()),
            // A real event opening a new case, sealed and signed by `me`:
            // only the role table or the roster can refuse it.
            RequestKind::AppendCaseEvent => {
                use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
                use hotline_proto::case::{CaseControl, CaseId, CaseState};
                let mut id = [0u8; 16];
                hotline_proto::identity::fill_random(&mut id).expect("randomness");
                Request::AppendCaseEvent(
                    seal(
                        me,
                        &CaseKey::from_bytes([5; 32]),
                        &EventDraft {
                            case_id: CaseId::from_bytes(id),
                            event_id: id,
                            roster_version: 1,
                            epoch: 1,
                            control: CaseControl {
                                state: Some(CaseState::Open),
                                ..CaseControl::default()
                            },
                        },
                        &CaseEventContent::default(),
                        &mut hotline_proto::e2e::suite::SystemRandomness,
                    )
                    .expect("sealed"),
                )
            }
            RequestKind::SyncCases => Request::SyncCases { after: 0 },
            RequestKind::RequestCase => Request::RequestCase(envelope),
            RequestKind::RequestCaseErasure => Request::RequestCaseErasure(
                hotline_proto::case::CaseId::from_bytes([3; 16]),
                hotline_proto::Signature::from_bytes([3; 64]),
            ),
            RequestKind::ConfirmCaseErasure => Request::ConfirmCaseErasure(
                hotline_proto::case::CaseId::from_bytes([3; 16]),
                hotline_proto::Signature::from_bytes([3; 64]),
            ),
        }
    }

    /// The requests of section 9.3 that staff make.
    fn is_case_kind(kind: RequestKind) -> bool {
        matches!(
            kind,
            RequestKind::AppendCaseEvent
                | RequestKind::SyncCases
                | RequestKind::RequestCaseErasure
                | RequestKind::ConfirmCaseErasure
        )
    }

    /// Every role × every request kind over a real store, no QUIC: the
    /// role table in the code is the one in the protocol document, and the
    /// server holds to it: a `no` is FORBIDDEN and changes nothing; a
    /// `yes` is never refused as FORBIDDEN.
    #[tokio::test]
    async fn every_role_and_every_request_follow_the_documented_table() {
        let documented = documented_table();
        let names: Vec<&str> = RequestKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            documented.keys().map(String::as_str).collect::<Vec<_>>(),
            {
                let mut sorted = names.clone();
                sorted.sort_unstable();
                sorted
            },
            "one row per request kind, no more"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let mut seed = 0u8;
        let mut enroll = |role: Role| {
            seed += 1;
            enroll(&store, seed, role)
        };
        // Devices to revoke, and an admin to keep: the last admin is
        // never revoked.
        let spare = enroll(Role::Defender).device_id();
        let _keeper = enroll(Role::Admin);

        let mut checked = 0;
        let columns = Role::ALL
            .into_iter()
            .map(Column::Role)
            .chain([Column::PanicKey]);
        for column in columns {
            let (role, panic) = match column {
                Column::Role(role) => (role, false),
                Column::PanicKey => (Role::Defender, true),
            };
            let me = enroll(role);
            let session = Session {
                device_id: me.device_id(),
                role,
                panic,
            };
            for kind in RequestKind::ALL {
                let documented_yes = documented[kind.name()].contains(&column);
                assert_eq!(
                    allowed(role, kind) && (!panic || allowed_with_panic_key(kind)),
                    documented_yes,
                    "allowed({column:?}, {kind}) differs from docs/protocol.md"
                );
                let before = store.state().applied_seq;
                let reply = handle(&shared, session, sample(kind, &me, spare)).await;
                let code = match &reply.response {
                    Response::Error(e) => Some(e.code),
                    _ => None,
                };
                // Cases are for staff on the newest roster (section 9.3):
                // the roster the admin put here lists nobody, so a case
                // request of staff is refused by that rule, never by the
                // role table.
                let not_on_roster = matches!(
                    &reply.response,
                    Response::Error(e) if e.detail == "this device is not on the staff roster"
                );
                if documented_yes && is_case_kind(kind) && role.is_staff() {
                    assert!(
                        code != Some(ErrorCode::Forbidden) || not_on_roster,
                        "a {role} may make {kind} requests: {:?}",
                        reply.response
                    );
                } else if documented_yes {
                    assert_ne!(
                        code,
                        Some(ErrorCode::Forbidden),
                        "a {role} may make {kind} requests: {:?}",
                        reply.response
                    );
                } else {
                    assert_eq!(
                        code,
                        Some(ErrorCode::Forbidden),
                        "a {role} may not make {kind} requests"
                    );
                    assert_eq!(store.state().applied_seq, before, "nothing changed");
                    assert!(reply.pushes.is_empty() && reply.disconnect.is_empty());
                }
                assert!(reply.close.is_none(), "only a revoked device is closed");
                checked += 1;
            }
        }
        assert_eq!(checked, (Role::ALL.len() + 1) * RequestKind::ALL.len());
    }

    /// A revoked device's request is refused and its connection closed,
    /// whatever it asks.
    #[tokio::test]
    async fn a_schedule_out_of_bounds_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let defender = enroll(&store, 3, Role::Defender);
        let session = Session {
            device_id: defender.device_id(),
            role: Role::Defender,
            panic: false,
        };
        let set = |interval_secs, grace_secs, duress: u8| Request::SetCheckin {
            interval_secs,
            grace_secs,
            code_digest: [1; 32],
            duress_digest: [duress; 32],
        };
        for bad in [
            set(checkins::MAX_INTERVAL_SECS + 1, 60, 2),
            set(3600, checkins::MAX_INTERVAL_SECS + 1, 2),
            set(3600, 60, 1),
        ] {
            let reply = handle(&shared, session, bad).await;
            match reply.response {
                Response::Error(e) => assert_eq!(e.code, ErrorCode::InvalidArgument, "{e:?}"),
                other => panic!("accepted: {other:?}"),
            }
        }
        assert!(
            store.lock().checkins.schedules.is_empty(),
            "nothing was set"
        );
    }

    /// Found by the protocol audit: every alert ever raised went into one
    /// `list_alerts` answer, so after some thousands of alerts the answer
    /// no longer fit a frame and listing (which claiming and replying use)
    /// failed. The open ones and the newest closed ones are listed.
    #[tokio::test]
    async fn a_long_history_of_alerts_still_lists() {
        use crate::domain::alerts::{AlertContent, Close, Policies, Priority, Sos};
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let officer = enroll(&store, 1, Role::Officer);
        let defender = enroll(&store, 2, Role::Defender);
        let raise = |at| {
            let sos = Sos {
                defender: defender.device_id(),
                priority: Priority::Routine,
                message: None,
                content: AlertContent::None,
                join: 0,
            };
            store
                .raise_alert(sos, &Policies::default(), &[], at, 0)
                .expect("stored")
                .expect("raised")
                .0
        };
        // Enough that all of them would not fit one frame (about 60 bytes
        // each here).
        let total = 4500;
        let mut ids = Vec::new();
        for n in 0..total as u64 {
            let a = raise(1000 + n);
            ids.push(a.id);
            if n + 1 < total as u64 {
                store
                    .close_alert(a.id, officer.device_id(), Role::Officer, Close::Resolved)
                    .expect("stored")
                    .expect("closed");
            }
        }
        let session = Session {
            device_id: officer.device_id(),
            role: Role::Officer,
            panic: false,
        };
        let reply = handle(&shared, session, Request::ListAlerts { open_only: false }).await;
        assert!(reply.response.encode().len() <= hotline_proto::frame::MAX_FRAME_LEN);
        let Response::Alerts(listed) = reply.response else {
            panic!("{:?}", reply.response);
        };
        assert_eq!(listed.len(), alerts::MAX_LISTED_ALERTS);
        // The newest, oldest first, the open one last.
        let want = &ids[ids.len() - alerts::MAX_LISTED_ALERTS..];
        assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), want);
    }

    /// Found by the end-to-end property test: `ack_inbox { up_to:
    /// u64::MAX }` was stored, and the next envelope for that device
    /// overflowed its inbox id: the sender was answered UNAVAILABLE (an
    /// SOS with content among them) and the store's state was left half
    /// applied. Such an ack is refused and changes nothing; the device's
    /// messages keep arriving.
    #[tokio::test]
    async fn an_ack_past_the_last_inbox_id_is_refused_and_messages_still_arrive() {
        use hotline_proto::e2e::envelope::{self, Content, Recipient};
        use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};

        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let defender = enroll(&store, 1, Role::Defender);
        let officer = enroll(&store, 2, Role::Officer);
        let as_defender = Session {
            device_id: defender.device_id(),
            role: Role::Defender,
            panic: false,
        };
        let as_officer = Session {
            device_id: officer.device_id(),
            role: Role::Officer,
            panic: false,
        };
        let before = store.state().applied_seq;
        for up_to in [u64::MAX, 1] {
            let reply = handle(&shared, as_defender, Request::AckInbox { up_to }).await;
            assert!(
                matches!(&reply.response, Response::Error(e) if e.code == ErrorCode::InvalidArgument),
                "{:?}",
                reply.response
            );
        }
        assert_eq!(store.state().applied_seq, before, "nothing stored");
        let reply = handle(&shared, as_defender, Request::AckInbox { up_to: 0 }).await;
        assert_eq!(
            reply.response,
            Response::Done,
            "acknowledging nothing is fine"
        );

        let prekey = EncryptionKeyPair::from_secret(&[5; 32]).expect("a key");
        let to = [Recipient {
            device_id: defender.device_id(),
            prekey_id: 1,
            key: prekey.public_key(),
        }];
        let content = Content {
            message_id: [3; 16],
            counter: 1,
            timestamp: 1,
            message: hotline_proto::e2e::content::Message::chat("we are on our way", "en"),
            thread: 0,
            sender_label: String::new(),
        };
        let sealed =
            envelope::seal(&officer, 0, &to, &content, &mut SystemRandomness).expect("seal");
        let reply = handle(&shared, as_officer, Request::SendEnvelope(sealed)).await;
        assert!(
            matches!(reply.response, Response::EnvelopeAccepted { .. }),
            "{:?}",
            reply.response
        );
        let reply = handle(
            &shared,
            as_defender,
            Request::FetchInbox {
                after: 0,
                limit: 10,
            },
        )
        .await;
        let Response::Inbox(items) = reply.response else {
            panic!("{:?}", reply.response);
        };
        assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![1]);
        let reply = handle(&shared, as_defender, Request::AckInbox { up_to: 1 }).await;
        assert_eq!(reply.response, Response::Done);
    }

    #[tokio::test]
    async fn a_revoked_device_is_answered_and_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let me = enroll(&store, 1, Role::Officer);
        store.revoke(&me.device_id(), 3).expect("revoke");
        let session = Session {
            device_id: me.device_id(),
            role: Role::Officer,
            panic: false,
        };
        let reply = handle(&shared, session, Request::Status).await;
        assert!(
            matches!(&reply.response, Response::Error(e) if e.code == ErrorCode::DeviceRevoked)
        );
        assert_eq!(reply.close.map(|e| e.code), Some(ErrorCode::DeviceRevoked));
    }

    /// An envelope signed by its sender but naming another sender inside
    /// its body is refused MALFORMED and not stored: every recipient would
    /// refuse it, and before clients dropped such envelopes one of them
    /// stopped an officer's inbox for good.
    #[tokio::test]
    async fn an_envelope_whose_inner_sender_differs_is_refused() {
        use hotline_proto::e2e::envelope::{self, Content, Recipient};
        use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};

        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        enroll(&store, 1, Role::Defender);
        enroll(&store, 2, Role::Officer);
        let (defender, officer, other) = (key(1), key(2), key(9));
        let prekey = EncryptionKeyPair::from_secret(&[5; 32]).expect("a key");
        let to = [Recipient {
            device_id: officer.device_id(),
            prekey_id: 1,
            key: prekey.public_key(),
        }];
        let content = Content {
            message_id: [3; 16],
            counter: 1,
            timestamp: 1,
            message: hotline_proto::e2e::content::Message::chat("hello", "en"),
            thread: 0,
            sender_label: String::new(),
        };
        let session = Session {
            device_id: defender.device_id(),
            role: Role::Defender,
            panic: false,
        };
        let sign = |body: &[u8]| {
            let mut m = b"hotline/1 envelope\0".to_vec();
            m.extend_from_slice(body);
            defender.sign(&m)
        };
        // Sealed by another device, then signed by the defender.
        let inner = envelope::seal(&other, 1, &to, &content, &mut SystemRandomness).expect("seal");
        let forged = SignedEnvelope {
            sender: defender.device_id(),
            signature: sign(&inner.body),
            body: inner.body,
        };
        let before = store.state().applied_seq;
        let reply = handle(&shared, session, Request::SendEnvelope(forged)).await;
        assert!(
            matches!(&reply.response, Response::Error(e) if e.code == ErrorCode::Malformed),
            "{:?}",
            reply.response
        );
        assert_eq!(store.state().applied_seq, before, "nothing stored");
        // The same, sealed by the defender itself, is accepted.
        let good =
            envelope::seal(&defender, 1, &to, &content, &mut SystemRandomness).expect("seal");
        let reply = handle(&shared, session, Request::SendEnvelope(good)).await;
        assert!(
            matches!(reply.response, Response::EnvelopeAccepted { .. }),
            "{:?}",
            reply.response
        );
    }

    /// A device online now, for the tests of what a request pushes.
    #[derive(Debug)]
    struct Online(Vec<DeviceId>);

    impl Presence for Online {
        fn is_connected(&self, device: &DeviceId) -> bool {
            self.0.contains(device)
        }
    }

    /// A stored message is pushed to its recipients (its inbox id, not
    /// to its sender, not again for a retry); a raised alert says how
    /// many of the devices paged were online to get the page at once.
    #[tokio::test]
    async fn messages_are_pushed_and_a_raise_counts_who_was_paged_now() {
        use hotline_proto::alert::AlertInfo;
        use hotline_proto::e2e::envelope::{self, Content, Recipient};
        use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};

        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let defender = enroll(&store, 1, Role::Defender);
        let online = enroll(&store, 2, Role::Officer).device_id();
        let offline = enroll(&store, 3, Role::Officer).device_id();
        let shared = shared.with_presence(Arc::new(Online(vec![online])));
        store.set_duty(online, true).expect("duty");
        store.set_duty(offline, true).expect("duty");
        let prekey = EncryptionKeyPair::from_secret(&[5; 32]).expect("a key");
        let to: Vec<Recipient> = [online, offline]
            .into_iter()
            .map(|device_id| Recipient {
                device_id,
                prekey_id: 1,
                key: prekey.public_key(),
            })
            .collect();
        let seal = |n: u8| {
            let content = Content {
                message_id: [n; 16],
                counter: u64::from(n),
                timestamp: 1,
                message: hotline_proto::e2e::content::Message::chat("hello", "en"),
                thread: 0,
                sender_label: String::new(),
            };
            envelope::seal(&defender, 1, &to, &content, &mut SystemRandomness).expect("seal")
        };
        let session = Session {
            device_id: defender.device_id(),
            role: Role::Defender,
            panic: false,
        };

        let message = seal(1);
        let reply = handle(&shared, session, Request::SendEnvelope(message.clone())).await;
        let Response::EnvelopeAccepted { id, duplicate } = reply.response else {
            panic!("{:?}", reply.response);
        };
        assert!(!duplicate && id != 0);
        // One push per recipient, each with the id that device's own inbox
        // shows it under.
        assert_eq!(reply.pushes.len(), 2, "{:?}", reply.pushes);
        for (push, device) in reply.pushes.iter().zip([online, offline]) {
            assert_eq!(push.devices, vec![device]);
            let Push::Message(inbox_id) = push.push else {
                panic!("{push:?}");
            };
            let inbox = store.inbox(&device, 0, 10).expect("inbox");
            let ids: Vec<u64> = inbox.iter().map(|(i, _)| *i).collect();
            assert_eq!(ids, vec![inbox_id]);
        }
        let again = handle(&shared, session, Request::SendEnvelope(message)).await;
        assert!(again.pushes.is_empty(), "a retry pushes nothing");

        let raise = Request::RaiseAlert {
            priority: Priority::Immediate,
            envelope: Some(seal(2)),
            join_alert: 0,
        };
        let reply = handle(&shared, session, raise).await;
        let Response::Alerts(alerts) = reply.response else {
            panic!("{:?}", reply.response);
        };
        let [
            AlertInfo {
                paged, paged_now, ..
            },
        ] = alerts.as_slice()
        else {
            panic!("one alert: {alerts:?}");
        };
        assert_eq!((*paged, *paged_now), (2, 1), "two paged, one of them now");
    }

    /// Past the open-alert limit (3 by default) an SOS joins the newest
    /// open alert: its text is pushed to its recipients online every time,
    /// whether the page goes out again (the first join) or is throttled
    /// (the next within the minute); the answer says the SOS joined and
    /// whether the staff were paged again, never that a page went out
    /// when none did.
    #[tokio::test]
    async fn a_joined_sos_pushes_its_text_every_time_and_its_answer_says_what_happened() {
        use hotline_proto::e2e::envelope::{self, Content, Recipient};
        use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};

        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let defender = enroll(&store, 1, Role::Defender);
        let officer = enroll(&store, 2, Role::Officer).device_id();
        let shared = shared.with_presence(Arc::new(Online(vec![officer])));
        store.set_duty(officer, true).expect("duty");
        let prekey = EncryptionKeyPair::from_secret(&[5; 32]).expect("a key");
        let to = vec![Recipient {
            device_id: officer,
            prekey_id: 1,
            key: prekey.public_key(),
        }];
        let seal = |n: u8| {
            let content = Content {
                message_id: [n; 16],
                counter: u64::from(n),
                timestamp: 1,
                message: hotline_proto::e2e::content::Message::chat("help", "en"),
                thread: 0,
                sender_label: String::new(),
            };
            envelope::seal(&defender, 1, &to, &content, &mut SystemRandomness).expect("seal")
        };
        let session = Session {
            device_id: defender.device_id(),
            role: Role::Defender,
            panic: false,
        };
        let raise = |n: u8| {
            let shared = &shared;
            let envelope = seal(n);
            async move {
                let reply = handle(
                    shared,
                    session,
                    Request::RaiseAlert {
                        priority: Priority::Immediate,
                        envelope: Some(envelope),
                        join_alert: 0,
                    },
                )
                .await;
                let Response::Alerts(alerts) = reply.response else {
                    panic!("{:?}", reply.response);
                };
                (alerts[0].clone(), reply.pushes)
            }
        };
        let mut opened = Vec::new();
        for n in 1..=3 {
            let (a, pushes) = raise(n).await;
            assert!(!a.joined_now && !a.paged_again && a.paged_now == 1, "{a:?}");
            assert!(
                pushes.iter().all(|p| matches!(p.push, Push::Alert(_))),
                "an SOS that opens an alert is paged, not pushed as a message: {pushes:?}"
            );
            opened.push(a.id);
        }
        let inbox_ids = |pushes: &[PushTo]| -> Vec<u64> {
            pushes
                .iter()
                .filter_map(|p| match p.push {
                    Push::Message(id) => {
                        assert_eq!(p.devices, vec![officer]);
                        Some(id)
                    }
                    _ => None,
                })
                .collect()
        };
        // Joins within the minute after the alert was raised (and paged)
        // are not paged again: their texts are pushed all the same, and
        // the answer says nobody was paged now.
        let (a, pushes) = raise(4).await;
        assert_eq!(a.id, opened[2], "joined the newest");
        assert!(a.joined_now && !a.paged_again && a.paged_now == 0, "{a:?}");
        assert!(!pushes.iter().any(|p| matches!(p.push, Push::Alert(_))));
        let fourth = inbox_ids(&pushes);
        assert_eq!(fourth.len(), 1, "{pushes:?}");
        let (a, pushes) = raise(5).await;
        assert_eq!(a.id, opened[2]);
        assert!(a.joined_now && !a.paged_again && a.paged_now == 0, "{a:?}");
        assert!(!pushes.iter().any(|p| matches!(p.push, Push::Alert(_))));
        let fifth = inbox_ids(&pushes);
        assert_eq!(fifth.len(), 1, "{pushes:?}");
        let inbox: Vec<u64> = store
            .inbox(&officer, 0, 10)
            .expect("inbox")
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert!(inbox.contains(&fourth[0]) && inbox.contains(&fifth[0]));
        assert_ne!(fourth, fifth);
    }

    /// A revoked device's request that does not even decode is answered
    /// DEVICE_REVOKED (and its connection closed): it can fix nothing
    /// else, so it is not told of the mistake in its bytes first.
    #[tokio::test]
    async fn a_revoked_device_hears_it_is_revoked_before_its_request_is_decoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let _admin = enroll(&store, 1, Role::Admin);
        let me = enroll(&store, 2, Role::Defender);
        let session = Session {
            device_id: me.device_id(),
            role: Role::Defender,
            panic: false,
        };
        let garbage = [0xff_u8, 0xff, 0xff, 0x07];
        let before = handle_payload(&shared, session, &garbage).await;
        match &before.response {
            Response::Error(e) => assert_eq!(e.code, ErrorCode::Malformed),
            other => panic!("undecodable: {other:?}"),
        }
        store.revoke(&me.device_id(), 3).expect("revoke");
        let reply = handle_payload(&shared, session, &garbage).await;
        match &reply.response {
            Response::Error(e) => assert_eq!(e.code, ErrorCode::DeviceRevoked),
            other => panic!("revoked: {other:?}"),
        }
        assert_eq!(
            reply.close.map(|e| e.code),
            Some(ErrorCode::DeviceRevoked),
            "the connection is closed"
        );
    }

    /// An expired prekey is answered INVALID_ARGUMENT (its signature is
    /// good: the device must sign fresh ones), not BAD_SIGNATURE; and
    /// nothing is stored.
    #[tokio::test]
    async fn an_expired_prekey_is_refused_as_expired_not_as_a_bad_signature() {
        use hotline_proto::e2e::prekey::{Prekey, PrekeyKind};
        use hotline_proto::e2e::suite::EncryptionPublicKey;
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let me = enroll(&store, 1, Role::Defender);
        let session = Session {
            device_id: me.device_id(),
            role: Role::Defender,
            panic: false,
        };
        let prekey = |expires_at| {
            Prekey {
                device_id: me.device_id(),
                kind: PrekeyKind::OneTime,
                id: 7,
                public_key: EncryptionPublicKey::from_bytes([9; 32]),
                created_at: 1,
                expires_at,
            }
            .sign(&me)
        };
        let reply = handle(&shared, session, Request::PublishPrekeys(vec![prekey(2)])).await;
        match &reply.response {
            Response::Error(e) => {
                assert_eq!(e.code, ErrorCode::InvalidArgument);
                assert!(e.detail.contains("expired"), "{}", e.detail);
            }
            other => panic!("expired prekey: {other:?}"),
        }
        let now = crate::unix_now();
        assert_eq!(
            store
                .one_time_prekeys_left(&me.device_id(), now)
                .expect("count"),
            0
        );
        // A bad signature is still BAD_SIGNATURE.
        let mut forged = prekey(u64::MAX);
        forged.signature = Signature::from_bytes([0; 64]);
        let reply = handle(&shared, session, Request::PublishPrekeys(vec![forged])).await;
        match &reply.response {
            Response::Error(e) => assert_eq!(e.code, ErrorCode::BadSignature),
            other => panic!("forged prekey: {other:?}"),
        }
    }

    /// `fetch_prekeys` with `last_resort` hands out each device's
    /// last-resort prekey and takes nothing: its one-time prekeys are all
    /// still there for the people who write to it.
    #[tokio::test]
    async fn a_last_resort_fetch_reads_the_last_resort_prekey_and_takes_nothing() {
        use hotline_proto::e2e::prekey::{Prekey, PrekeyKind, SignedPrekey};
        use hotline_proto::e2e::suite::EncryptionPublicKey;
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let staff = enroll(&store, 1, Role::Officer);
        let defender = enroll(&store, 2, Role::Defender);
        let prekey = |kind, id| {
            Prekey {
                device_id: staff.device_id(),
                kind,
                id,
                public_key: EncryptionPublicKey::from_bytes([9; 32]),
                created_at: 1,
                expires_at: u64::MAX,
            }
            .sign(&staff)
        };
        let published = handle(
            &shared,
            Session {
                device_id: staff.device_id(),
                role: Role::Officer,
                panic: false,
            },
            Request::PublishPrekeys(vec![
                prekey(PrekeyKind::LastResort, 1),
                prekey(PrekeyKind::OneTime, 2),
            ]),
        )
        .await;
        assert!(
            matches!(published.response, Response::PrekeysPublished { .. }),
            "{:?}",
            published.response
        );
        let asker = Session {
            device_id: defender.device_id(),
            role: Role::Defender,
            panic: false,
        };
        for _ in 0..3 {
            let reply = handle(
                &shared,
                asker,
                Request::FetchLastResortPrekeys(vec![staff.device_id()]),
            )
            .await;
            let Response::PrekeyBundles(bundles) = &reply.response else {
                panic!("{:?}", reply.response);
            };
            let got: &SignedPrekey = bundles[0].prekey.as_ref().expect("a prekey");
            let got = got.verify(&staff.public_key(), 2).expect("verifies");
            assert_eq!((got.kind, got.id), (PrekeyKind::LastResort, 1));
        }
        let now = crate::unix_now();
        assert_eq!(
            store
                .one_time_prekeys_left(&staff.device_id(), now)
                .expect("count"),
            1,
            "nothing taken"
        );
        // The ordinary fetch still hands out the one-time prekey.
        let reply = handle(
            &shared,
            asker,
            Request::FetchPrekeys(vec![staff.device_id()]),
        )
        .await;
        let Response::PrekeyBundles(bundles) = &reply.response else {
            panic!("{:?}", reply.response);
        };
        let got = bundles[0].prekey.as_ref().expect("a prekey");
        let got = got.verify(&staff.public_key(), 2).expect("verifies");
        assert_eq!(got.kind, PrekeyKind::OneTime);
    }

    /// A read that must wait for the state lock (held here as a long
    /// snapshot or a large write would hold it) does not stall the other
    /// tasks of its worker thread: with one worker, another task still
    /// runs while the read waits.
    #[test]
    fn a_read_waiting_for_the_store_does_not_stall_other_connections() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, shared) = context(dir.path());
        let me = enroll(&store, 1, Role::Defender).device_id();
        let shared = Arc::new(shared);
        let released = Arc::new(AtomicBool::new(false));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = {
            let store = Arc::clone(&store);
            let released = Arc::clone(&released);
            std::thread::spawn(move || {
                let guard = store.lock();
                held_tx.send(()).expect("send");
                std::thread::sleep(std::time::Duration::from_millis(1500));
                released.store(true, Ordering::SeqCst);
                drop(guard);
            })
        };
        held_rx.recv().expect("held");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let other_ran_while_waiting = rt.block_on(async {
            let reader = {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { shared.store_read(|s| s.device(&me)).is_ok() })
            };
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let released = Arc::clone(&released);
            let other = tokio::spawn(async move { !released.load(Ordering::SeqCst) });
            let ran_early = other.await.expect("other task");
            assert!(reader.await.expect("reader"), "the read succeeds");
            ran_early
        });
        holder.join().expect("holder");
        assert!(
            other_ran_while_waiting,
            "another task on the only worker waited for the store read"
        );
    }
}
