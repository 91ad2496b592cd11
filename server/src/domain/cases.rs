//! Cases, as the server sees them: metadata only (docs/cases.md, "What
//! the server learns"; docs/protocol.md, section 9.3 and 9.7).
//!
//! A case's content is sealed end to end under a key the server never
//! holds. The server keeps what it must see to enforce the rules: each
//! case's coarse state and times, who opened or asked for it, its legal
//! hold and ledger flag, its key epochs and their commitments, and, per
//! accepted event, its sync position, log sequence number, author, event
//! id, time, ciphertext size and the digest of its signed body (to tell a
//! resend from a reused event id). The event bytes themselves stay in the
//! log, under the case's subkey; sync reads them back by sequence number.
//!
//! `decide_*` functions check a request against the state and say which
//! event records it; [`Cases::apply`] folds a recorded event in. Both are
//! pure.

use std::collections::{BTreeMap, HashMap};

use hotline_proto::case::erasure::{Closing, ErasureStep, verify_erasure};
use hotline_proto::case::{CaseId, CaseState, EventHeader, ID_LEN, LegalHold, SignedCaseEvent};
use hotline_proto::identity::{IdentityPublicKey, Signature};
use hotline_proto::{DeviceId, Role};

use super::ApplyError;

/// Cases in state requested one defender device may have at once.
pub const MAX_REQUESTED_PER_DEFENDER: u32 = 5;

/// Seconds in a day (retention is configured in days).
pub const DAY_SECS: u64 = 86_400;

/// Something that happened to a case, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseEvent {
    /// A staff event was accepted. Its record is sealed under the case's
    /// subkey, so erasing the case shreds it.
    Appended {
        /// Its sync position.
        position: u64,
        /// The server's time of acceptance.
        at: u64,
        /// The event, as signed.
        event: SignedCaseEvent,
        /// What the server reads of it (derived from `event`, never
        /// stored apart from it).
        header: EventHeader,
    },
    /// A defender asked for a case. Since issue 12 (point 4) its record
    /// is sealed under the case's subkey, so erasing the case shreds the
    /// link between the defender device and the case; it follows the
    /// main-key record holding the request's envelope and its
    /// [`CaseEvent::RequestDigest`]. Older stores hold it under the main
    /// key, with the envelope, and still read.
    Requested {
        /// Its sync position.
        position: u64,
        /// When.
        at: u64,
        /// The case id the server drew.
        case_id: CaseId,
        /// The defender device.
        defender: DeviceId,
        /// `SignedEnvelope::digest()` of the request.
        envelope_digest: [u8; 32],
    },
    /// The case a request envelope made, by its digest (a main-key
    /// record, written with the envelope, before the subkey record of
    /// [`CaseEvent::Requested`]): what the server keeps of a request after
    /// its case is erased, so a resend is answered as before. Names no
    /// defender; takes no sync position (its position is 0).
    RequestDigest {
        /// The case.
        case_id: CaseId,
        /// `SignedEnvelope::digest()` of the request.
        envelope_digest: [u8; 32],
    },
    /// A staff device asked for the case's erasure.
    ErasureRequested {
        /// Its sync position.
        position: u64,
        /// When.
        at: u64,
        /// The case.
        case_id: CaseId,
        /// Who asked.
        by: DeviceId,
        /// Its erasure signature, step 1 (checked when decided; `None`: a
        /// record stored before signatures existed).
        signature: Option<Signature>,
        /// The event that closed the case, which the signature covers
        /// (`None`: a record stored before erasures named it).
        closing: Option<Closing>,
    },
    /// The case was erased (its subkey is destroyed right after this
    /// record is durable).
    Erased {
        /// Its sync position: above every position of the case, so the
        /// counter never goes back when the case's records are shredded.
        position: u64,
        /// When.
        at: u64,
        /// The case.
        case_id: CaseId,
        /// Who asked.
        requested_by: DeviceId,
        /// Who confirmed.
        confirmed_by: DeviceId,
        /// The requester's erasure signature, step 1 (`None`: stored
        /// before signatures existed).
        request_signature: Option<Signature>,
        /// The confirmer's erasure signature, step 2 (as above).
        confirm_signature: Option<Signature>,
        /// The event that closed the case, which both signatures cover
        /// (`None`: a record stored before erasures named it).
        closing: Option<Closing>,
    },
}

impl CaseEvent {
    /// The sync position the event takes (0: a
    /// [`CaseEvent::RequestDigest`], which takes none).
    pub fn position(&self) -> u64 {
        match self {
            CaseEvent::RequestDigest { .. } => 0,
            CaseEvent::Appended { position, .. }
            | CaseEvent::Requested { position, .. }
            | CaseEvent::ErasureRequested { position, .. }
            | CaseEvent::Erased { position, .. } => *position,
        }
    }

    /// The case it concerns.
    pub fn case_id(&self) -> CaseId {
        match self {
            CaseEvent::Appended { header, .. } => header.case_id,
            CaseEvent::Requested { case_id, .. }
            | CaseEvent::RequestDigest { case_id, .. }
            | CaseEvent::ErasureRequested { case_id, .. }
            | CaseEvent::Erased { case_id, .. } => *case_id,
        }
    }
}

/// What the server keeps of one accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// Its sync position.
    pub position: u64,
    /// The log record holding its bytes.
    pub seq: u64,
    /// Its author.
    pub author: DeviceId,
    /// Its id.
    pub event_id: [u8; ID_LEN],
    /// When it was accepted.
    pub at: u64,
    /// Its ciphertext's length (its size bucket).
    pub size: u64,
    /// SHA-256 of its signed body (a resend has the same).
    pub body_digest: [u8; 32],
}

/// A defender's request that made the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestMeta {
    /// Its sync position.
    pub position: u64,
    /// When.
    pub at: u64,
    /// The defender device.
    pub defender: DeviceId,
    /// The request envelope's digest.
    pub envelope_digest: [u8; 32],
}

/// A pending erasure request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureRequest {
    /// Its sync position.
    pub position: u64,
    /// When.
    pub at: u64,
    /// Who asked.
    pub by: DeviceId,
    /// Its erasure signature, step 1 (`None`: stored before signatures
    /// existed).
    pub signature: Option<Signature>,
    /// The closing it covers (`None`: stored before erasures named it;
    /// such a request is never confirmed, a new one replaces it).
    pub closing: Option<Closing>,
}

/// One case's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its coarse state.
    pub state: CaseState,
    /// When it was opened or asked for.
    pub created_at: u64,
    /// The staff device that opened it, or the defender device that
    /// asked for it.
    pub creator: DeviceId,
    /// The defender's request, for a case a defender asked for.
    pub requested: Option<RequestMeta>,
    /// When the event that closed it was accepted (while closed).
    pub closed_at: Option<u64>,
    /// Under a legal hold: never erased.
    pub legal_hold: bool,
    /// The statistics ledger: never closed nor erased.
    pub ledger: bool,
    /// The commitment of each epoch's key, epoch 1 first (empty for a
    /// case no staff event touched yet).
    pub epochs: Vec<[u8; 32]>,
    /// Its accepted events, in position order.
    pub events: Vec<EventMeta>,
    /// A pending erasure request.
    pub erasure: Option<ErasureRequest>,
}

impl Case {
    /// The current epoch (0: none yet).
    pub fn epoch(&self) -> u32 {
        u32::try_from(self.epochs.len()).unwrap_or(u32::MAX)
    }
}

/// What remains of an erased case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasedCase {
    /// The erasure's sync position.
    pub position: u64,
    /// When.
    pub at: u64,
    /// Who asked.
    pub requested_by: DeviceId,
    /// Who confirmed.
    pub confirmed_by: DeviceId,
    /// The requester's erasure signature, step 1 (`None`: stored before
    /// signatures existed).
    pub request_signature: Option<Signature>,
    /// The confirmer's erasure signature, step 2 (as above).
    pub confirm_signature: Option<Signature>,
    /// The closing both signatures cover (`None`: stored before erasures
    /// named it).
    pub closing: Option<Closing>,
    /// The digest of the defender's request that made the case, if one
    /// did: a resend of that request is answered as before the erasure
    /// (the same case id, `duplicate`), so the defender's device cannot
    /// tell the case was erased. Names no defender.
    pub envelope_digest: Option<[u8; 32]>,
}

/// What a sync position holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateRef {
    /// The event of this case at this index of its events.
    Event(CaseId, usize),
    /// The defender's request of this case.
    Requested(CaseId),
    /// The erasure request of this case.
    ErasureRequested(CaseId),
    /// The erasure of this case.
    Erased(CaseId),
}

/// Every case the server knows, with the indexes derived from them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cases {
    /// Cases not erased.
    pub cases: BTreeMap<CaseId, Case>,
    /// Erased cases.
    pub erased: BTreeMap<CaseId, ErasedCase>,
    /// The last sync position given (never goes back).
    pub position: u64,
    /// Derived: (author, event id) -> position of the event.
    pub dedup: HashMap<(DeviceId, [u8; ID_LEN]), (CaseId, usize)>,
    /// Derived: sync position -> what it holds.
    pub updates: BTreeMap<u64, UpdateRef>,
    /// Derived: cases in state requested per defender device.
    pub requested_by_defender: BTreeMap<DeviceId, u32>,
    /// Derived: the case a request envelope made, by its digest.
    pub by_envelope: HashMap<[u8; 32], CaseId>,
}

/// Why an event was not appended; each becomes one wire error
/// (docs/protocol.md, section 9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRefusal {
    /// `INVALID_ARGUMENT`: the event id was used before with other bytes.
    EventIdReused,
    /// `FAILED_PRECONDITION`: the case was erased.
    Erased,
    /// `NOT_FOUND`: no such case, and the event does not open one.
    UnknownCase,
    /// `INVALID_ARGUMENT`: `ledger` on an event that does not open a case.
    LedgerNotNew,
    /// `FAILED_PRECONDITION`: the first staff event of a requested case
    /// must open or decline it.
    RequestedNeedsDecision,
    /// `FAILED_PRECONDITION`: the event is under the case's current
    /// epoch with another key's commitment (a lost race, or a key kept
    /// from the others): the writer opens the next epoch.
    WrongKey,
    /// `FAILED_PRECONDITION`: an older epoch.
    Rotated,
    /// `INVALID_ARGUMENT`: an epoch was skipped.
    EpochSkipped,
    /// `INVALID_ARGUMENT`: only a defender's request makes a case
    /// requested.
    StateRequested,
    /// `FAILED_PRECONDITION`: the case is already open.
    AlreadyOpen,
    /// `FAILED_PRECONDITION`: the case is already closed.
    AlreadyClosed,
    /// `FAILED_PRECONDITION`: the ledger is never closed.
    LedgerClosed,
    /// `FORBIDDEN`: a legal hold by an officer.
    LegalHoldRole,
}

impl AppendRefusal {
    /// The fixed detail (no ids, no content).
    pub fn detail(self) -> &'static str {
        match self {
            AppendRefusal::EventIdReused => "event id reused with other content",
            AppendRefusal::Erased => "this case was erased",
            AppendRefusal::UnknownCase => "no such case",
            AppendRefusal::LedgerNotNew => {
                "only the event that opens a case may mark it the ledger"
            }
            AppendRefusal::RequestedNeedsDecision => {
                "the first staff event of a requested case must open or decline it (epoch 1, state open or closed)"
            }
            AppendRefusal::WrongKey => "another key holds this epoch: open the next epoch",
            AppendRefusal::Rotated => "the case key was rotated: seal again under the newest key",
            AppendRefusal::EpochSkipped => "the event's epoch skips one",
            AppendRefusal::StateRequested => {
                "only a defender's request puts a case in state requested"
            }
            AppendRefusal::AlreadyOpen => "the case is open already",
            AppendRefusal::AlreadyClosed => "the case is closed already",
            AppendRefusal::LedgerClosed => "the statistics ledger is never closed",
            AppendRefusal::LegalHoldRole => "only coordinators and admins set or lift a legal hold",
        }
    }
}

/// A defender already has [`MAX_REQUESTED_PER_DEFENDER`] cases waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRequests;

/// What an accepted append does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// A resend of a stored event: its position, nothing recorded.
    Duplicate(u64),
    /// Record this.
    Record(Box<CaseEvent>),
}

/// The detail of an erasure whose signature does not verify.
pub const BAD_ERASURE_SIGNATURE: &str = "the erasure is not signed by this device's identity key over this closing of the case (sync: it may have been reopened and closed again since)";

/// Why an erasure request or confirmation was refused
/// (`FAILED_PRECONDITION` but [`ErasureRefusal::UnknownCase`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureRefusal {
    /// `NOT_FOUND`.
    UnknownCase,
    /// Erased already.
    Erased,
    /// Not closed.
    NotClosed(CaseState),
    /// Closed too recently.
    Retention {
        /// Whole days since it closed.
        closed_days: u64,
        /// The retention period in days.
        retention_days: u64,
    },
    /// Under a legal hold.
    LegalHold,
    /// The ledger.
    Ledger,
    /// A confirmation without a request.
    NotRequested,
    /// A confirmation by the requesting device.
    SameDevice,
    /// `BAD_SIGNATURE`: the signature does not verify over what it
    /// decides (this case, its closing event, and for a confirmation the
    /// pending request's signature).
    BadSignature,
    /// The event that closed the case could not be read back (the case
    /// changed while it was read).
    ClosingUnknown,
}

impl ErasureRefusal {
    /// The detail (no ids, no content).
    pub fn detail(&self) -> String {
        match self {
            ErasureRefusal::UnknownCase => "no such case".into(),
            ErasureRefusal::Erased => "this case was erased".into(),
            ErasureRefusal::NotClosed(s) => {
                format!("only a closed case can be erased; this one is {}", s.name())
            }
            ErasureRefusal::Retention {
                closed_days,
                retention_days,
            } => format!(
                "closed {closed_days} days ago; the retention period is {retention_days} days"
            ),
            ErasureRefusal::LegalHold => "the case is under a legal hold".into(),
            ErasureRefusal::Ledger => "the statistics ledger is never erased".into(),
            ErasureRefusal::NotRequested => {
                "no erasure of this case was asked for; ask for it first".into()
            }
            ErasureRefusal::SameDevice => "a second staff member must confirm".into(),
            ErasureRefusal::BadSignature => BAD_ERASURE_SIGNATURE.into(),
            ErasureRefusal::ClosingUnknown => {
                "the case changed while its erasure was decided: sync and ask again".into()
            }
        }
    }
}

/// What an erasure request or confirmation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureOutcome {
    /// Already asked (by this device or another): who asked; nothing
    /// recorded.
    Pending(DeviceId),
    /// Record this.
    Record(Box<CaseEvent>),
}

impl Cases {
    fn next_position(&self) -> u64 {
        self.position + 1
    }

    /// Decides an event whose signature, author and roster standing were
    /// checked (rules 4 to 7 of docs/protocol.md, section 9.3). `role` is
    /// the author's enrolled role; `body_digest` the SHA-256 of its body.
    pub fn decide_append(
        &self,
        event: &SignedCaseEvent,
        header: &EventHeader,
        body_digest: [u8; 32],
        role: Role,
        now: u64,
    ) -> Result<AppendOutcome, AppendRefusal> {
        // (4) A resend, or a reused id.
        if let Some((case_id, index)) = self.dedup.get(&(header.author, header.event_id)) {
            let meta = &self.cases[case_id].events[*index];
            return if meta.body_digest == body_digest {
                Ok(AppendOutcome::Duplicate(meta.position))
            } else {
                Err(AppendRefusal::EventIdReused)
            };
        }
        // (5) The case.
        if self.erased.contains_key(&header.case_id) {
            return Err(AppendRefusal::Erased);
        }
        let control = header.control;
        let case = self.cases.get(&header.case_id);
        match case {
            None => {
                if header.epoch != 1 || control.state != Some(CaseState::Open) {
                    return Err(AppendRefusal::UnknownCase);
                }
            }
            Some(c) => {
                if c.state == CaseState::Requested
                    && (header.epoch != 1
                        || !matches!(control.state, Some(CaseState::Open | CaseState::Closed)))
                {
                    return Err(AppendRefusal::RequestedNeedsDecision);
                }
            }
        }
        // (6) Epochs: a second opener of a case (its epoch 1 taken by
        // another key) is told so here, before anything else of its
        // control is looked at.
        if let Some(c) = case {
            let current = c.epoch();
            if header.epoch == current {
                if c.epochs[current as usize - 1] != header.key_commitment {
                    return Err(AppendRefusal::WrongKey);
                }
            } else if header.epoch < current {
                return Err(AppendRefusal::Rotated);
            } else if header.epoch > current.saturating_add(1) {
                return Err(AppendRefusal::EpochSkipped);
            }
            if control.ledger {
                return Err(AppendRefusal::LedgerNotNew);
            }
        }
        // (7) Control.
        if let Some(to) = control.state {
            let from = case.map(|c| c.state);
            match (to, from) {
                (CaseState::Requested, _) => return Err(AppendRefusal::StateRequested),
                (CaseState::Open, None | Some(CaseState::Requested | CaseState::Closed)) => {}
                (CaseState::Open, Some(CaseState::Open)) => return Err(AppendRefusal::AlreadyOpen),
                (CaseState::Closed, _) if case.is_some_and(|c| c.ledger) => {
                    return Err(AppendRefusal::LedgerClosed);
                }
                (CaseState::Closed, Some(CaseState::Requested | CaseState::Open)) => {}
                (CaseState::Closed, None) => return Err(AppendRefusal::UnknownCase),
                (CaseState::Closed, Some(CaseState::Closed)) => {
                    return Err(AppendRefusal::AlreadyClosed);
                }
            }
        }
        if control.legal_hold.is_some() && !matches!(role, Role::Coordinator | Role::Admin) {
            return Err(AppendRefusal::LegalHoldRole);
        }
        Ok(AppendOutcome::Record(Box::new(CaseEvent::Appended {
            position: self.next_position(),
            at: now,
            event: event.clone(),
            header: header.clone(),
        })))
    }

    /// Decides a defender's request for a case: `Ok(Err(case))` if the
    /// same envelope made `case` before; [`TooManyRequests`] if the
    /// defender already has [`MAX_REQUESTED_PER_DEFENDER`] cases waiting.
    pub fn decide_request(
        &self,
        defender: DeviceId,
        envelope_digest: [u8; 32],
        case_id: CaseId,
        now: u64,
    ) -> Result<Result<CaseEvent, CaseId>, TooManyRequests> {
        let mut case_id = case_id;
        if let Some(existing) = self.by_envelope.get(&envelope_digest) {
            if self.cases.contains_key(existing) || self.erased.contains_key(existing) {
                return Ok(Err(*existing));
            }
            // The digest's record is durable but not the case's (the
            // server stopped between the two): the request was never
            // answered; the case is made now, under the digest's id.
            case_id = *existing;
        }
        if self
            .requested_by_defender
            .get(&defender)
            .is_some_and(|n| *n >= MAX_REQUESTED_PER_DEFENDER)
        {
            return Err(TooManyRequests);
        }
        Ok(Ok(CaseEvent::Requested {
            position: self.next_position(),
            at: now,
            case_id,
            defender,
            envelope_digest,
        }))
    }

    /// The checks both erasure steps make first, in this order: erased
    /// already, no such case, the ledger, not closed.
    pub fn closed_case(&self, case_id: &CaseId) -> Result<&Case, ErasureRefusal> {
        if self.erased.contains_key(case_id) {
            return Err(ErasureRefusal::Erased);
        }
        let case = self.cases.get(case_id).ok_or(ErasureRefusal::UnknownCase)?;
        if case.ledger {
            return Err(ErasureRefusal::Ledger);
        }
        if case.state != CaseState::Closed {
            return Err(ErasureRefusal::NotClosed(case.state));
        }
        Ok(case)
    }

    /// The checks both steps make after the signature: the retention
    /// period, then the legal hold.
    fn erasable_now(case: &Case, now: u64, retention_days: u64) -> Result<(), ErasureRefusal> {
        let closed_at = case.closed_at.unwrap_or(0);
        let closed_secs = now.saturating_sub(closed_at);
        if closed_secs < retention_days.saturating_mul(DAY_SECS) {
            return Err(ErasureRefusal::Retention {
                closed_days: closed_secs / DAY_SECS,
                retention_days,
            });
        }
        if case.legal_hold {
            return Err(ErasureRefusal::LegalHold);
        }
        Ok(())
    }

    /// Decides a staff device's request to erase a case: `signature` must
    /// be `key`'s (the device's enrolled identity key) over the case and
    /// `closing`, the event that closed it (docs/protocol.md, section
    /// 9.7), which the store reads back from the log (the state keeps no
    /// control of events): `None` if it could not.
    #[allow(clippy::too_many_arguments)]
    pub fn decide_erasure_request(
        &self,
        case_id: CaseId,
        by: DeviceId,
        key: &IdentityPublicKey,
        signature: Signature,
        closing: Option<Closing>,
        now: u64,
        retention_days: u64,
    ) -> Result<ErasureOutcome, ErasureRefusal> {
        let case = self.closed_case(&case_id)?;
        let closing = closing.ok_or(ErasureRefusal::ClosingUnknown)?;
        if !verify_erasure(key, &case_id, ErasureStep::Request, &closing, &signature) {
            return Err(ErasureRefusal::BadSignature);
        }
        Self::erasable_now(case, now, retention_days)?;
        // A request stored before erasures named the closing is replaced.
        if let Some(pending) = case.erasure
            && pending.closing.is_some()
        {
            return Ok(ErasureOutcome::Pending(pending.by));
        }
        Ok(ErasureOutcome::Record(Box::new(
            CaseEvent::ErasureRequested {
                position: self.next_position(),
                at: now,
                case_id,
                by,
                signature: Some(signature),
                closing: Some(closing),
            },
        )))
    }

    /// Decides a confirmation of a case's erasure by `by` (a coordinator
    /// or admin: the role table says so): `signature` must be `key`'s over
    /// the case, its closing event and the pending request's signature.
    pub fn decide_erasure_confirm(
        &self,
        case_id: CaseId,
        by: DeviceId,
        key: &IdentityPublicKey,
        signature: Signature,
        now: u64,
        retention_days: u64,
    ) -> Result<CaseEvent, ErasureRefusal> {
        let case = self.closed_case(&case_id)?;
        // Only a signed request that names the closing is confirmed (a
        // reopening dropped any request of an earlier closing).
        let pending = case.erasure.ok_or(ErasureRefusal::NotRequested)?;
        let closing = pending.closing.ok_or(ErasureRefusal::NotRequested)?;
        let request_signature = pending.signature.ok_or(ErasureRefusal::NotRequested)?;
        if !verify_erasure(
            key,
            &case_id,
            ErasureStep::Confirm(request_signature),
            &closing,
            &signature,
        ) {
            return Err(ErasureRefusal::BadSignature);
        }
        Self::erasable_now(case, now, retention_days)?;
        if pending.by == by {
            return Err(ErasureRefusal::SameDevice);
        }
        Ok(CaseEvent::Erased {
            position: self.next_position(),
            at: now,
            case_id,
            requested_by: pending.by,
            confirmed_by: by,
            request_signature: Some(request_signature),
            confirm_signature: Some(signature),
            closing: Some(closing),
        })
    }

    fn set_state(&mut self, case_id: &CaseId, to: CaseState, at: u64) {
        let Some(case) = self.cases.get_mut(case_id) else {
            return;
        };
        let from = case.state;
        if from == CaseState::Requested && to != CaseState::Requested {
            decrement(&mut self.requested_by_defender, &case.creator);
        }
        case.state = to;
        match to {
            CaseState::Closed if from != CaseState::Closed => case.closed_at = Some(at),
            CaseState::Closed => {}
            _ => {
                case.closed_at = None;
                // A reopened case is no longer one to erase.
                if let Some(e) = case.erasure.take() {
                    self.updates.remove(&e.position);
                }
            }
        }
    }

    /// Folds in an event recorded at log sequence number `seq`.
    pub fn apply(&mut self, seq: u64, event: &CaseEvent) -> Result<(), ApplyError> {
        if let CaseEvent::RequestDigest {
            case_id,
            envelope_digest,
        } = event
        {
            if let Some(other) = self.by_envelope.get(envelope_digest)
                && other != case_id
            {
                return Err(ApplyError("a request digest of two cases"));
            }
            self.by_envelope.insert(*envelope_digest, *case_id);
            return Ok(());
        }
        let position = event.position();
        if position <= self.position {
            return Err(ApplyError("a case position that goes back"));
        }
        match event {
            CaseEvent::Appended {
                position,
                at,
                event,
                header,
            } => {
                if self.erased.contains_key(&header.case_id) {
                    return Err(ApplyError("an event of an erased case"));
                }
                if self.dedup.contains_key(&(header.author, header.event_id)) {
                    return Err(ApplyError("a case event stored twice"));
                }
                let case = self.cases.entry(header.case_id).or_insert_with(|| Case {
                    state: CaseState::Open,
                    created_at: *at,
                    creator: header.author,
                    requested: None,
                    closed_at: None,
                    legal_hold: false,
                    ledger: header.control.ledger,
                    epochs: Vec::new(),
                    events: Vec::new(),
                    erasure: None,
                });
                let current = case.epoch();
                if header.epoch == current.saturating_add(1) {
                    case.epochs.push(header.key_commitment);
                } else if header.epoch > current {
                    return Err(ApplyError("a case epoch skipped"));
                }
                match header.control.legal_hold {
                    Some(LegalHold::Set) => case.legal_hold = true,
                    Some(LegalHold::Lifted) => case.legal_hold = false,
                    None => {}
                }
                let index = case.events.len();
                case.events.push(EventMeta {
                    position: *position,
                    seq,
                    author: header.author,
                    event_id: header.event_id,
                    at: *at,
                    size: header.ciphertext_len as u64,
                    body_digest: body_digest(&event.body),
                });
                self.dedup
                    .insert((header.author, header.event_id), (header.case_id, index));
                self.updates
                    .insert(*position, UpdateRef::Event(header.case_id, index));
                if let Some(to) = header.control.state {
                    self.set_state(&header.case_id, to, *at);
                }
            }
            CaseEvent::Requested {
                position,
                at,
                case_id,
                defender,
                envelope_digest,
            } => {
                if self.cases.contains_key(case_id) || self.erased.contains_key(case_id) {
                    return Err(ApplyError("a case requested twice"));
                }
                self.cases.insert(
                    *case_id,
                    Case {
                        state: CaseState::Requested,
                        created_at: *at,
                        creator: *defender,
                        requested: Some(RequestMeta {
                            position: *position,
                            at: *at,
                            defender: *defender,
                            envelope_digest: *envelope_digest,
                        }),
                        closed_at: None,
                        legal_hold: false,
                        ledger: false,
                        epochs: Vec::new(),
                        events: Vec::new(),
                        erasure: None,
                    },
                );
                *self.requested_by_defender.entry(*defender).or_insert(0) += 1;
                self.by_envelope.insert(*envelope_digest, *case_id);
                self.updates
                    .insert(*position, UpdateRef::Requested(*case_id));
            }
            CaseEvent::RequestDigest { .. } => {
                return Err(ApplyError("a request digest applied as a position"));
            }
            CaseEvent::ErasureRequested {
                position,
                at,
                case_id,
                by,
                signature,
                closing,
            } => {
                // After a crypto-shredding, a replay no longer sees the
                // case's events: the request is kept only for a case it
                // knows (the erasure that follows removes it anyway).
                if let Some(case) = self.cases.get_mut(case_id) {
                    if let Some(old) = case.erasure.take() {
                        self.updates.remove(&old.position);
                    }
                    case.erasure = Some(ErasureRequest {
                        position: *position,
                        at: *at,
                        by: *by,
                        signature: *signature,
                        closing: *closing,
                    });
                    self.updates
                        .insert(*position, UpdateRef::ErasureRequested(*case_id));
                }
            }
            CaseEvent::Erased {
                position,
                at,
                case_id,
                requested_by,
                confirmed_by,
                request_signature,
                confirm_signature,
                closing,
            } => {
                if self.erased.contains_key(case_id) {
                    return Err(ApplyError("a case erased twice"));
                }
                let mut envelope_digest = None;
                if let Some(case) = self.cases.remove(case_id) {
                    if case.state == CaseState::Requested {
                        decrement(&mut self.requested_by_defender, &case.creator);
                    }
                    // The digest keeps naming the case: a resend of the
                    // request is answered as before the erasure, so the
                    // defender learns nothing of it.
                    if let Some(r) = case.requested {
                        self.updates.remove(&r.position);
                        envelope_digest = Some(r.envelope_digest);
                    }
                    if let Some(e) = case.erasure {
                        self.updates.remove(&e.position);
                    }
                    for e in &case.events {
                        self.dedup.remove(&(e.author, e.event_id));
                        self.updates.remove(&e.position);
                    }
                }
                // A replay that could not read the request (shredded)
                // knows its digest from the main-key record.
                if envelope_digest.is_none() {
                    envelope_digest = self
                        .by_envelope
                        .iter()
                        .find(|(_, c)| *c == case_id)
                        .map(|(d, _)| *d);
                }
                self.erased.insert(
                    *case_id,
                    ErasedCase {
                        position: *position,
                        at: *at,
                        requested_by: *requested_by,
                        confirmed_by: *confirmed_by,
                        request_signature: *request_signature,
                        confirm_signature: *confirm_signature,
                        closing: *closing,
                        envelope_digest,
                    },
                );
                self.updates.insert(*position, UpdateRef::Erased(*case_id));
            }
        }
        self.position = position;
        Ok(())
    }

    /// The cases a snapshot holds, with the indexes derived from them.
    pub fn with_indexes(
        position: u64,
        cases: BTreeMap<CaseId, Case>,
        erased: BTreeMap<CaseId, ErasedCase>,
    ) -> Cases {
        let mut out = Cases {
            position,
            ..Cases::default()
        };
        for (id, case) in &cases {
            if let Some(r) = case.requested {
                out.by_envelope.insert(r.envelope_digest, *id);
                out.updates.insert(r.position, UpdateRef::Requested(*id));
            }
            if case.state == CaseState::Requested {
                *out.requested_by_defender.entry(case.creator).or_insert(0) += 1;
            }
            if let Some(e) = case.erasure {
                out.updates
                    .insert(e.position, UpdateRef::ErasureRequested(*id));
            }
            for (i, e) in case.events.iter().enumerate() {
                out.dedup.insert((e.author, e.event_id), (*id, i));
                out.updates.insert(e.position, UpdateRef::Event(*id, i));
            }
        }
        for (id, e) in &erased {
            if let Some(d) = e.envelope_digest {
                out.by_envelope.insert(d, *id);
            }
            out.updates.insert(e.position, UpdateRef::Erased(*id));
        }
        out.cases = cases;
        out.erased = erased;
        out
    }

    /// Whether nothing of cases was ever recorded.
    pub fn is_empty(&self) -> bool {
        self.position == 0
    }
}

fn decrement(counts: &mut BTreeMap<DeviceId, u32>, who: &DeviceId) {
    if let Some(n) = counts.get_mut(who) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(who);
        }
    }
}

/// SHA-256 of a signed event body.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use hotline_proto::IdentityKeyPair;
    use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
    use hotline_proto::case::{CaseControl, LegalHold};
    use hotline_proto::e2e::suite::SystemRandomness;

    use super::*;

    /// The closing erasures of `case` sign now, as the store would read
    /// it (a made-up one when it is not closed: the checks before the
    /// signature refuse first).
    fn closing_now(w: &World, case: CaseId) -> Closing {
        w.closings.get(&case).copied().unwrap_or(Closing {
            author: DeviceId::from_bytes([0; 16]),
            event_id: [0; 16],
        })
    }

    /// `by` asks for the erasure of `case`, signing its closing.
    fn ask(
        w: &World,
        case: CaseId,
        by: &hotline_proto::IdentityKeyPair,
        now: u64,
        retention: u64,
    ) -> Result<ErasureOutcome, ErasureRefusal> {
        let closing = closing_now(w, case);
        let sig =
            hotline_proto::case::erasure::sign_erasure(by, &case, ErasureStep::Request, &closing);
        w.cases.decide_erasure_request(
            case,
            by.device_id(),
            &by.public_key(),
            sig,
            Some(closing),
            now,
            retention,
        )
    }

    /// `by` confirms the pending request of `case`.
    fn confirm(
        w: &World,
        case: CaseId,
        by: &hotline_proto::IdentityKeyPair,
        now: u64,
        retention: u64,
    ) -> Result<CaseEvent, ErasureRefusal> {
        let closing = closing_now(w, case);
        let cases = &w.cases;
        let request = cases
            .cases
            .get(&case)
            .and_then(|c| c.erasure)
            .and_then(|e| e.signature)
            .unwrap_or(Signature::from_bytes([0; 64]));
        let sig = hotline_proto::case::erasure::sign_erasure(
            by,
            &case,
            ErasureStep::Confirm(request),
            &closing,
        );
        cases.decide_erasure_confirm(case, by.device_id(), &by.public_key(), sig, now, retention)
    }

    const CASE_BYTES: [u8; 16] = [1; 16];

    fn the_case() -> CaseId {
        CaseId::from_bytes(CASE_BYTES)
    }

    struct World {
        cases: Cases,
        seq: u64,
        keys: Vec<CaseKey>,
        /// The event that closed each closed case (what the store reads
        /// back from the log).
        closings: BTreeMap<CaseId, Closing>,
    }

    fn staff(n: u8) -> IdentityKeyPair {
        IdentityKeyPair::from_seed(&[n; 32])
    }

    fn event(
        author: &IdentityKeyPair,
        key: &CaseKey,
        case_id: CaseId,
        id: u8,
        epoch: u32,
        control: CaseControl,
        note: &str,
    ) -> (SignedCaseEvent, EventHeader) {
        let e = seal(
            author,
            key,
            &EventDraft {
                case_id,
                event_id: [id; 16],
                roster_version: 1,
                epoch,
                control,
            },
            &CaseEventContent {
                note: note.into(),
                ..CaseEventContent::default()
            },
            &mut SystemRandomness,
        )
        .expect("sealed");
        let h = e.header_unverified().expect("reads");
        (e, h)
    }

    fn open() -> CaseControl {
        CaseControl {
            state: Some(CaseState::Open),
            ..CaseControl::default()
        }
    }

    fn close() -> CaseControl {
        CaseControl {
            state: Some(CaseState::Closed),
            ..CaseControl::default()
        }
    }

    impl World {
        fn new() -> World {
            World {
                cases: Cases::default(),
                seq: 0,
                keys: (0..4).map(|n| CaseKey::from_bytes([n + 40; 32])).collect(),
                closings: BTreeMap::new(),
            }
        }

        /// Decides and, if accepted, applies `e` as `role` at `now`.
        fn append(
            &mut self,
            e: &(SignedCaseEvent, EventHeader),
            role: Role,
            now: u64,
        ) -> Result<(u64, bool), AppendRefusal> {
            match self
                .cases
                .decide_append(&e.0, &e.1, body_digest(&e.0.body), role, now)?
            {
                AppendOutcome::Duplicate(p) => Ok((p, true)),
                AppendOutcome::Record(r) => {
                    self.seq += 1;
                    let p = r.position();
                    self.cases.apply(self.seq, &r).expect("applies");
                    match e.1.control.state {
                        Some(CaseState::Closed) => {
                            self.closings.insert(
                                e.1.case_id,
                                Closing {
                                    author: e.1.author,
                                    event_id: e.1.event_id,
                                },
                            );
                        }
                        Some(_) => {
                            self.closings.remove(&e.1.case_id);
                        }
                        None => {}
                    }
                    Ok((p, false))
                }
            }
        }

        fn record(&mut self, r: CaseEvent) {
            self.seq += 1;
            self.cases.apply(self.seq, &r).expect("applies");
        }
    }

    #[test]
    fn a_case_opens_at_epoch_one_only_and_positions_increase() {
        let mut w = World::new();
        let a = staff(1);
        let k = w.keys[0].clone();
        // Unknown case: only an opening at epoch 1.
        let not_open = event(&a, &k, the_case(), 1, 1, CaseControl::default(), "x");
        assert_eq!(
            w.append(&not_open, Role::Officer, 10),
            Err(AppendRefusal::UnknownCase)
        );
        let at_two = event(&a, &k, the_case(), 2, 2, open(), "x");
        assert_eq!(
            w.append(&at_two, Role::Officer, 10),
            Err(AppendRefusal::UnknownCase)
        );
        let closing = event(&a, &k, the_case(), 3, 1, close(), "x");
        assert_eq!(
            w.append(&closing, Role::Officer, 10),
            Err(AppendRefusal::UnknownCase)
        );
        let opening = event(&a, &k, the_case(), 4, 1, open(), "opened");
        assert_eq!(w.append(&opening, Role::Officer, 10), Ok((1, false)));
        let note = event(&a, &k, the_case(), 5, 1, CaseControl::default(), "a note");
        assert_eq!(w.append(&note, Role::Officer, 11), Ok((2, false)));
        let case = &w.cases.cases[&the_case()];
        assert_eq!(case.state, CaseState::Open);
        assert_eq!(case.epochs, vec![k.commitment(&the_case(), 1)]);
        assert_eq!(case.events.len(), 2);
        assert_eq!(w.cases.updates.len(), 2);
        // A position that goes back contradicts the state.
        let stale = CaseEvent::ErasureRequested {
            position: 2,
            at: 1,
            case_id: the_case(),
            by: a.device_id(),
            signature: None,
            closing: None,
        };
        assert!(w.cases.apply(9, &stale).is_err());
    }

    #[test]
    fn a_resend_is_a_duplicate_and_a_reused_id_is_refused() {
        let mut w = World::new();
        let a = staff(1);
        let k = w.keys[0].clone();
        let opening = event(&a, &k, the_case(), 4, 1, open(), "opened");
        assert_eq!(w.append(&opening, Role::Officer, 10), Ok((1, false)));
        let before = w.cases.clone();
        assert_eq!(w.append(&opening, Role::Officer, 12), Ok((1, true)));
        assert_eq!(w.cases, before, "nothing recorded");
        // Same id, other bytes (sealed again: another nonce).
        let again = event(&a, &k, the_case(), 4, 1, CaseControl::default(), "other");
        assert_eq!(
            w.append(&again, Role::Officer, 12),
            Err(AppendRefusal::EventIdReused)
        );
        // The same id by another author is another event.
        let b = staff(2);
        let theirs = event(&b, &k, the_case(), 4, 1, CaseControl::default(), "theirs");
        assert_eq!(w.append(&theirs, Role::Officer, 12), Ok((2, false)));
    }

    #[test]
    fn epochs_open_once_and_older_ones_are_refused() {
        let mut w = World::new();
        let a = staff(1);
        let b = staff(2);
        let (k1, k2, k2b) = (w.keys[0].clone(), w.keys[1].clone(), w.keys[2].clone());
        w.append(
            &event(&a, &k1, the_case(), 1, 1, open(), "o"),
            Role::Officer,
            1,
        )
        .expect("opens");
        // The same epoch under another key.
        let wrong = event(&a, &k2, the_case(), 2, 1, CaseControl::default(), "w");
        assert_eq!(
            w.append(&wrong, Role::Officer, 2),
            Err(AppendRefusal::WrongKey)
        );
        // Skipping an epoch.
        let skip = event(&a, &k2, the_case(), 3, 3, CaseControl::default(), "s");
        assert_eq!(
            w.append(&skip, Role::Officer, 2),
            Err(AppendRefusal::EpochSkipped)
        );
        // Two rotations race: the first opens epoch 2, the second (another
        // key for epoch 2) is told to open the next epoch.
        let first = event(&a, &k2, the_case(), 4, 2, CaseControl::default(), "r1");
        let second = event(&b, &k2b, the_case(), 5, 2, CaseControl::default(), "r2");
        assert_eq!(w.append(&first, Role::Officer, 3), Ok((2, false)));
        assert_eq!(
            w.append(&second, Role::Officer, 3),
            Err(AppendRefusal::WrongKey)
        );
        // An event still under epoch 1 must be sealed again.
        let old = event(&b, &k1, the_case(), 6, 1, CaseControl::default(), "late");
        assert_eq!(
            w.append(&old, Role::Officer, 4),
            Err(AppendRefusal::Rotated)
        );
        assert_eq!(w.cases.cases[&the_case()].epoch(), 2);
    }

    #[test]
    fn state_moves_follow_the_rules() {
        let mut w = World::new();
        let a = staff(1);
        let k = w.keys[0].clone();
        w.append(
            &event(&a, &k, the_case(), 1, 1, open(), "o"),
            Role::Officer,
            1,
        )
        .expect("opens");
        let reopen = event(&a, &k, the_case(), 2, 1, open(), "again");
        assert_eq!(
            w.append(&reopen, Role::Officer, 2),
            Err(AppendRefusal::AlreadyOpen)
        );
        let req = CaseControl {
            state: Some(CaseState::Requested),
            ..CaseControl::default()
        };
        let requested = event(&a, &k, the_case(), 3, 1, req, "r");
        assert_eq!(
            w.append(&requested, Role::Officer, 2),
            Err(AppendRefusal::StateRequested)
        );
        let closing = event(&a, &k, the_case(), 4, 1, close(), "done");
        w.append(&closing, Role::Officer, 50).expect("closes");
        assert_eq!(w.cases.cases[&the_case()].closed_at, Some(50));
        let twice = event(&a, &k, the_case(), 5, 1, close(), "done");
        assert_eq!(
            w.append(&twice, Role::Officer, 51),
            Err(AppendRefusal::AlreadyClosed)
        );
        // A note on a closed case keeps its closing time.
        w.append(
            &event(&a, &k, the_case(), 6, 1, CaseControl::default(), "n"),
            Role::Officer,
            60,
        )
        .expect("a note");
        assert_eq!(w.cases.cases[&the_case()].closed_at, Some(50));
        w.append(
            &event(&a, &k, the_case(), 7, 1, open(), "reopened"),
            Role::Officer,
            70,
        )
        .expect("reopens");
        assert_eq!(w.cases.cases[&the_case()].closed_at, None);
        // Ledger: only on an opening event, never closed.
        let ledger_late = event(
            &a,
            &k,
            the_case(),
            8,
            1,
            CaseControl {
                ledger: true,
                ..CaseControl::default()
            },
            "l",
        );
        assert_eq!(
            w.append(&ledger_late, Role::Officer, 71),
            Err(AppendRefusal::LedgerNotNew)
        );
        let ledger_id = CaseId::from_bytes([9; 16]);
        let ledger = event(
            &a,
            &k,
            ledger_id,
            9,
            1,
            CaseControl {
                state: Some(CaseState::Open),
                ledger: true,
                ..CaseControl::default()
            },
            "ledger",
        );
        w.append(&ledger, Role::Officer, 72)
            .expect("the ledger opens");
        assert!(w.cases.cases[&ledger_id].ledger);
        let close_ledger = event(&a, &k, ledger_id, 10, 1, close(), "x");
        assert_eq!(
            w.append(&close_ledger, Role::Admin, 73),
            Err(AppendRefusal::LedgerClosed)
        );
    }

    #[test]
    fn only_coordinators_and_admins_set_a_legal_hold() {
        let mut w = World::new();
        let a = staff(1);
        let k = w.keys[0].clone();
        w.append(
            &event(&a, &k, the_case(), 1, 1, open(), "o"),
            Role::Officer,
            1,
        )
        .expect("opens");
        let hold = |id| {
            event(
                &a,
                &k,
                the_case(),
                id,
                1,
                CaseControl {
                    legal_hold: Some(LegalHold::Set),
                    ..CaseControl::default()
                },
                "h",
            )
        };
        assert_eq!(
            w.append(&hold(2), Role::Officer, 2),
            Err(AppendRefusal::LegalHoldRole)
        );
        w.append(&hold(3), Role::Coordinator, 2)
            .expect("a coordinator");
        assert!(w.cases.cases[&the_case()].legal_hold);
        let lift = event(
            &a,
            &k,
            the_case(),
            4,
            1,
            CaseControl {
                legal_hold: Some(LegalHold::Lifted),
                ..CaseControl::default()
            },
            "l",
        );
        w.append(&lift, Role::Admin, 3).expect("an admin");
        assert!(!w.cases.cases[&the_case()].legal_hold);
    }

    #[test]
    fn a_defender_request_waits_for_a_staff_decision_and_counts() {
        let mut w = World::new();
        let defender = DeviceId::from_bytes([7; 16]);
        let mut ids = Vec::new();
        for n in 0..MAX_REQUESTED_PER_DEFENDER as u8 {
            let id = CaseId::from_bytes([100 + n; 16]);
            let r = w
                .cases
                .decide_request(defender, [n; 32], id, 5)
                .expect("allowed")
                .expect("new");
            w.record(r);
            ids.push(id);
        }
        // The same envelope again: the same case.
        assert_eq!(
            w.cases
                .decide_request(defender, [0; 32], CaseId::from_bytes([1; 16]), 6),
            Ok(Err(ids[0]))
        );
        // A sixth waiting request is refused; another defender's is not.
        assert_eq!(
            w.cases
                .decide_request(defender, [99; 32], CaseId::from_bytes([2; 16]), 6),
            Err(TooManyRequests)
        );
        let other = DeviceId::from_bytes([8; 16]);
        assert!(
            w.cases
                .decide_request(other, [98; 32], CaseId::from_bytes([3; 16]), 6)
                .is_ok()
        );
        // Staff: the first event must open or decline (epoch 1).
        let a = staff(1);
        let k = w.keys[0].clone();
        let note = event(&a, &k, ids[0], 1, 1, CaseControl::default(), "n");
        assert_eq!(
            w.append(&note, Role::Officer, 7),
            Err(AppendRefusal::RequestedNeedsDecision)
        );
        let declined = event(&a, &k, ids[0], 2, 1, close(), "declined");
        w.append(&declined, Role::Officer, 7).expect("declined");
        assert_eq!(w.cases.cases[&ids[0]].state, CaseState::Closed);
        assert_eq!(w.cases.requested_by_defender[&defender], 4);
        // One waiting request fewer: one more may come.
        assert!(
            w.cases
                .decide_request(defender, [97; 32], CaseId::from_bytes([4; 16]), 8)
                .expect("allowed")
                .is_ok()
        );
        let opened = event(&a, &k, ids[1], 3, 1, open(), "taken on");
        w.append(&opened, Role::Officer, 8).expect("opened");
        assert_eq!(w.cases.requested_by_defender[&defender], 3);
    }

    /// Issue 12, point 5: a second opener of a case, and a writer under
    /// the current epoch with another key, are told to open the next
    /// epoch (`FAILED_PRECONDITION`), before anything else of their
    /// control is looked at; the next epoch then takes.
    #[test]
    fn a_second_opener_is_told_to_open_the_next_epoch() {
        let mut w = World::new();
        let (a, b) = (staff(1), staff(2));
        let (k1, k2) = (w.keys[0].clone(), w.keys[1].clone());
        let ledger = CaseControl {
            state: Some(CaseState::Open),
            ledger: true,
            ..CaseControl::default()
        };
        w.append(
            &event(&a, &k1, the_case(), 1, 1, ledger, "o"),
            Role::Officer,
            1,
        )
        .expect("the first opener");
        // The second opener of the ledger: its epoch 1 is taken.
        let second = event(&b, &k2, the_case(), 1, 1, ledger, "o2");
        assert_eq!(
            w.append(&second, Role::Officer, 2),
            Err(AppendRefusal::WrongKey)
        );
        // The same without the ledger flag: the same answer, not "open
        // already".
        let plain = event(&b, &k2, the_case(), 2, 1, open(), "o3");
        assert_eq!(
            w.append(&plain, Role::Officer, 2),
            Err(AppendRefusal::WrongKey)
        );
        assert_eq!(
            AppendRefusal::WrongKey.detail(),
            "another key holds this epoch: open the next epoch"
        );
        // An opener under the case's own key is past rule 6: the ledger
        // flag is then what is wrong.
        let late = event(&b, &k1, the_case(), 3, 1, ledger, "o4");
        assert_eq!(
            w.append(&late, Role::Officer, 2),
            Err(AppendRefusal::LedgerNotNew)
        );
        // The loser opens the next epoch with a fresh key.
        let next = event(&b, &k2, the_case(), 4, 2, CaseControl::default(), "n");
        assert_eq!(w.append(&next, Role::Officer, 3), Ok((2, false)));
    }

    /// Issue 12, point 3: after a requested case is erased, a resend of
    /// its request is answered as before (the same case, a duplicate),
    /// also from a snapshot, and the erased case no longer counts as
    /// waiting.
    #[test]
    fn a_request_resent_after_its_case_was_erased_is_answered_as_before() {
        let mut w = World::new();
        let defender = DeviceId::from_bytes([7; 16]);
        let digest = [0x4e; 32];
        let r = w
            .cases
            .decide_request(defender, digest, the_case(), 1)
            .expect("allowed")
            .expect("new");
        w.record(r);
        let before = w
            .cases
            .decide_request(defender, digest, CaseId::from_bytes([1; 16]), 2);
        assert_eq!(before, Ok(Err(the_case())));
        let (a, c) = (staff(1), staff(2));
        let k = w.keys[0].clone();
        w.append(
            &event(&a, &k, the_case(), 1, 1, close(), "declined"),
            Role::Officer,
            2,
        )
        .expect("declined");
        match ask(&w, the_case(), &a, 3, 0).expect("asked") {
            ErasureOutcome::Record(r) => w.record(*r),
            ErasureOutcome::Pending(_) => panic!("asked once"),
        }
        let erased = confirm(&w, the_case(), &c, 4, 0).expect("confirmed");
        w.record(erased);
        assert!(w.cases.erased.contains_key(&the_case()));
        let after = w
            .cases
            .decide_request(defender, digest, CaseId::from_bytes([2; 16]), 5);
        assert_eq!(after, before, "the same answer after the erasure");
        assert!(!w.cases.requested_by_defender.contains_key(&defender));
        // The state a snapshot keeps answers the same.
        let again = Cases::with_indexes(
            w.cases.position,
            w.cases.cases.clone(),
            w.cases.erased.clone(),
        );
        assert_eq!(again, w.cases);
        assert_eq!(
            again.decide_request(defender, digest, CaseId::from_bytes([3; 16]), 6),
            before
        );
    }

    /// Issue 12, point 4: a stop between the request's digest record
    /// and its case's record leaves a digest without a case; the resend
    /// makes the case then, under the digest's id.
    #[test]
    fn a_request_digest_without_its_case_is_finished_by_the_resend() {
        let mut w = World::new();
        let defender = DeviceId::from_bytes([7; 16]);
        let digest = [0x4e; 32];
        w.cases
            .apply(
                1,
                &CaseEvent::RequestDigest {
                    case_id: the_case(),
                    envelope_digest: digest,
                },
            )
            .expect("applies");
        assert_eq!(w.cases.position, 0, "it takes no position");
        let r = w
            .cases
            .decide_request(defender, digest, CaseId::from_bytes([1; 16]), 2)
            .expect("allowed")
            .expect("made now");
        assert_eq!(r.case_id(), the_case());
        w.record(r);
        assert_eq!(w.cases.requested_by_defender[&defender], 1);
        assert_eq!(
            w.cases
                .decide_request(defender, digest, CaseId::from_bytes([2; 16]), 3),
            Ok(Err(the_case()))
        );
        // A digest naming another case contradicts the state.
        let other = CaseEvent::RequestDigest {
            case_id: CaseId::from_bytes([3; 16]),
            envelope_digest: digest,
        };
        assert!(w.cases.apply(3, &other).is_err());
    }

    #[test]
    fn erasure_takes_two_staff_members_and_every_condition() {
        let mut w = World::new();
        let (a, c, d) = (staff(1), staff(2), staff(3));
        let k = w.keys[0].clone();
        let retention = 30;
        let day = DAY_SECS;
        assert_eq!(
            ask(&w, the_case(), &a, 1, retention),
            Err(ErasureRefusal::UnknownCase)
        );
        w.append(
            &event(&a, &k, the_case(), 1, 1, open(), "o"),
            Role::Officer,
            day,
        )
        .expect("opens");
        assert_eq!(
            ask(&w, the_case(), &a, day, retention),
            Err(ErasureRefusal::NotClosed(CaseState::Open))
        );
        w.append(
            &event(&a, &k, the_case(), 2, 1, close(), "c"),
            Role::Officer,
            2 * day,
        )
        .expect("closes");
        let refused = ask(&w, the_case(), &a, 14 * day, retention).expect_err("too early");
        assert_eq!(
            refused.detail(),
            "closed 12 days ago; the retention period is 30 days"
        );
        let later = 40 * day;
        // Under a legal hold.
        let hold = event(
            &c,
            &k,
            the_case(),
            3,
            1,
            CaseControl {
                legal_hold: Some(LegalHold::Set),
                ..CaseControl::default()
            },
            "h",
        );
        w.append(&hold, Role::Coordinator, 3 * day).expect("held");
        assert_eq!(
            ask(&w, the_case(), &a, later, retention),
            Err(ErasureRefusal::LegalHold)
        );
        let lift = event(
            &c,
            &k,
            the_case(),
            4,
            1,
            CaseControl {
                legal_hold: Some(LegalHold::Lifted),
                ..CaseControl::default()
            },
            "l",
        );
        w.append(&lift, Role::Coordinator, 3 * day).expect("lifted");
        // No confirmation without a request.
        assert_eq!(
            confirm(&w, the_case(), &c, later, retention),
            Err(ErasureRefusal::NotRequested)
        );
        let ErasureOutcome::Record(asked) =
            ask(&w, the_case(), &a, later, retention).expect("asked")
        else {
            panic!("a record");
        };
        w.record(*asked);
        // Asked again, by it or another: who asked first.
        assert_eq!(
            ask(&w, the_case(), &a, later, retention),
            Ok(ErasureOutcome::Pending(a.device_id()))
        );
        assert_eq!(
            ask(&w, the_case(), &d, later, retention),
            Ok(ErasureOutcome::Pending(a.device_id()))
        );
        assert_eq!(
            confirm(&w, the_case(), &a, later, retention),
            Err(ErasureRefusal::SameDevice)
        );
        let erased = confirm(&w, the_case(), &c, later, retention).expect("confirmed");
        let position = erased.position();
        w.record(erased);
        // The case's events left the state; the marker and the counter stay.
        assert!(!w.cases.cases.contains_key(&the_case()));
        assert!(w.cases.dedup.is_empty());
        assert_eq!(
            w.cases.updates.values().collect::<Vec<_>>(),
            vec![&UpdateRef::Erased(the_case())]
        );
        assert_eq!(w.cases.position, position);
        assert_eq!(
            ask(&w, the_case(), &a, later, retention),
            Err(ErasureRefusal::Erased)
        );
        let after = event(&a, &k, the_case(), 9, 1, CaseControl::default(), "x");
        assert_eq!(
            w.append(&after, Role::Officer, later),
            Err(AppendRefusal::Erased)
        );
        // Even a resend of one of its events: they left the dedup index.
        let again = event(&a, &k, the_case(), 1, 1, open(), "o");
        assert_eq!(
            w.append(&again, Role::Officer, later),
            Err(AppendRefusal::Erased)
        );
    }

    /// A replay after the shredding sees the main-key records only (the
    /// request, the erasure request, the erasure), not the case's events:
    /// it must reach the same state as the live server, and the next
    /// position must be the same.
    #[test]
    fn a_replay_without_the_shredded_events_reaches_the_same_state() {
        let mut live = World::new();
        let defender = DeviceId::from_bytes([7; 16]);
        let a = staff(1);
        let c = staff(2);
        let k = live.keys[0].clone();
        let requested = live
            .cases
            .decide_request(defender, [5; 32], the_case(), 1)
            .expect("allowed")
            .expect("new");
        let mut main = vec![requested.clone()];
        live.record(requested);
        live.append(
            &event(&a, &k, the_case(), 1, 1, close(), "declined"),
            Role::Officer,
            2,
        )
        .expect("declined");
        let ErasureOutcome::Record(asked) = ask(&live, the_case(), &a, 3, 0).expect("asked") else {
            panic!("a record");
        };
        main.push(*asked.clone());
        live.record(*asked);
        let erased = confirm(&live, the_case(), &c, 4, 0).expect("confirmed");
        main.push(erased.clone());
        live.record(erased);
        let mut replayed = Cases::default();
        for (n, e) in main.iter().enumerate() {
            replayed.apply(n as u64 + 10, e).expect("applies");
        }
        assert_eq!(replayed, live.cases);
        assert!(replayed.requested_by_defender.is_empty());
    }

    /// Review 2, finding E1: an erasure signature decides one closing of
    /// the case. A step-1 signature kept from before a reopening (the
    /// request was dropped then) does not ask for the erasure of the case
    /// closed again, and a confirmation signed over one request does not
    /// confirm another; both are `BAD_SIGNATURE`, nothing recorded. The
    /// closing is kept in the records, so a replay reaches the same state.
    #[test]
    fn an_erasure_signature_of_an_earlier_closing_or_request_is_refused() {
        let mut w = World::new();
        let (a, c, d) = (staff(1), staff(2), staff(3));
        let k = w.keys[0].clone();
        w.append(
            &event(&a, &k, the_case(), 1, 1, open(), "o"),
            Role::Officer,
            1,
        )
        .expect("opens");
        w.append(
            &event(&a, &k, the_case(), 2, 1, close(), "c"),
            Role::Officer,
            2,
        )
        .expect("closes");
        let first = closing_now(&w, the_case());
        assert_eq!(
            first,
            Closing {
                author: a.device_id(),
                event_id: [2; 16]
            }
        );
        let old = hotline_proto::case::erasure::sign_erasure(
            &a,
            &the_case(),
            ErasureStep::Request,
            &first,
        );
        let ErasureOutcome::Record(asked) = ask(&w, the_case(), &a, 3, 0).expect("asked") else {
            panic!("a record");
        };
        w.record(*asked);
        // A confirmation of that request, refused at the time (a second
        // coordinator was still deciding): the seized server keeps it.
        let kept_confirm = hotline_proto::case::erasure::sign_erasure(
            &c,
            &the_case(),
            ErasureStep::Confirm(old),
            &first,
        );
        // Reopened (the request is dropped), then closed again.
        w.append(
            &event(&c, &k, the_case(), 3, 1, open(), "r"),
            Role::Coordinator,
            4,
        )
        .expect("reopens");
        assert!(!w.closings.contains_key(&the_case()));
        w.append(
            &event(&c, &k, the_case(), 4, 1, close(), "c2"),
            Role::Coordinator,
            5,
        )
        .expect("closes again");
        let second = closing_now(&w, the_case());
        assert_ne!(second, first);
        let before = w.cases.clone();
        assert_eq!(
            w.cases.decide_erasure_request(
                the_case(),
                a.device_id(),
                &a.public_key(),
                old,
                Some(second),
                6,
                0
            ),
            Err(ErasureRefusal::BadSignature)
        );
        // A fresh request, by another device; the old confirmation does
        // not confirm it.
        let ErasureOutcome::Record(asked) = ask(&w, the_case(), &d, 6, 0).expect("asked") else {
            panic!("a record");
        };
        w.record(*asked);
        assert_eq!(
            w.cases.decide_erasure_confirm(
                the_case(),
                c.device_id(),
                &c.public_key(),
                kept_confirm,
                7,
                0
            ),
            Err(ErasureRefusal::BadSignature)
        );
        assert_eq!(ErasureRefusal::BadSignature.detail(), BAD_ERASURE_SIGNATURE);
        let erased = confirm(&w, the_case(), &c, 7, 0).expect("confirmed");
        let CaseEvent::Erased { closing, .. } = &erased else {
            panic!("an erasure");
        };
        assert_eq!(*closing, Some(second));
        w.record(erased);
        assert_eq!(w.cases.erased[&the_case()].closing, Some(second));
        assert_ne!(before, w.cases);
    }

    /// Review 2, findings 5.9 and 5.2: the ledger's refusal is reachable
    /// (it comes before "not closed", which every ledger is), and the
    /// signature is checked after the case's state, before the retention
    /// period and the legal hold.
    #[test]
    fn erasure_refusals_come_in_the_documented_order() {
        let mut w = World::new();
        let a = staff(1);
        let k = w.keys[0].clone();
        let ledger = CaseControl {
            state: Some(CaseState::Open),
            ledger: true,
            ..CaseControl::default()
        };
        w.append(
            &event(&a, &k, the_case(), 1, 1, ledger, "l"),
            Role::Officer,
            1,
        )
        .expect("opens the ledger");
        let refused = ask(&w, the_case(), &a, 2, 0).expect_err("the ledger");
        assert_eq!(refused, ErasureRefusal::Ledger);
        assert_eq!(refused.detail(), "the statistics ledger is never erased");
        // A closed case: a bad signature is refused before the retention.
        let other = CaseId::from_bytes([0x77; 16]);
        w.append(&event(&a, &k, other, 2, 1, open(), "o"), Role::Officer, 1)
            .expect("opens");
        w.append(&event(&a, &k, other, 3, 1, close(), "c"), Role::Officer, 1)
            .expect("closes");
        let forged = Signature::from_bytes([1; 64]);
        assert_eq!(
            w.cases.decide_erasure_request(
                other,
                a.device_id(),
                &a.public_key(),
                forged,
                Some(closing_now(&w, other)),
                2,
                30
            ),
            Err(ErasureRefusal::BadSignature)
        );
        assert!(matches!(
            ask(&w, other, &a, 2, 30),
            Err(ErasureRefusal::Retention { .. })
        ));
    }
}
