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

use hotline_proto::case::{
    CaseId, CaseState, EventHeader, ID_LEN, LegalHold, SignedCaseEvent,
};
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
    /// A defender asked for a case (recorded with the request's envelope,
    /// in one record under the main key).
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
    },
}

impl CaseEvent {
    /// The sync position the event takes.
    pub fn position(&self) -> u64 {
        match self {
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
    /// `INVALID_ARGUMENT`: the commitment is not the epoch's.
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
            AppendRefusal::LedgerNotNew => "only the event that opens a case may mark it the ledger",
            AppendRefusal::RequestedNeedsDecision => {
                "the first staff event of a requested case must open or decline it (epoch 1, state open or closed)"
            }
            AppendRefusal::WrongKey => "sealed under a key that is not the case's",
            AppendRefusal::Rotated => {
                "the case key was rotated: seal again under the newest key"
            }
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

/// What an accepted append does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// A resend of a stored event: its position, nothing recorded.
    Duplicate(u64),
    /// Record this.
    Record(CaseEvent),
}

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
    Record(CaseEvent),
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
                if control.ledger {
                    return Err(AppendRefusal::LedgerNotNew);
                }
                if c.state == CaseState::Requested
                    && (header.epoch != 1
                        || !matches!(control.state, Some(CaseState::Open | CaseState::Closed)))
                {
                    return Err(AppendRefusal::RequestedNeedsDecision);
                }
            }
        }
        // (6) Epochs.
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
        Ok(AppendOutcome::Record(CaseEvent::Appended {
            position: self.next_position(),
            at: now,
            event: event.clone(),
            header: header.clone(),
        }))
    }

    /// Decides a defender's request for a case: `Ok(Err(case))` if the
    /// same envelope made `case` before; `Err(())` if the defender already
    /// has [`MAX_REQUESTED_PER_DEFENDER`] cases waiting.
    pub fn decide_request(
        &self,
        defender: DeviceId,
        envelope_digest: [u8; 32],
        case_id: CaseId,
        now: u64,
    ) -> Result<Result<CaseEvent, CaseId>, ()> {
        if let Some(existing) = self.by_envelope.get(&envelope_digest) {
            return Ok(Err(*existing));
        }
        if self
            .requested_by_defender
            .get(&defender)
            .is_some_and(|n| *n >= MAX_REQUESTED_PER_DEFENDER)
        {
            return Err(());
        }
        Ok(Ok(CaseEvent::Requested {
            position: self.next_position(),
            at: now,
            case_id,
            defender,
            envelope_digest,
        }))
    }

    /// The checks both erasure steps make.
    fn erasable(
        &self,
        case_id: &CaseId,
        now: u64,
        retention_days: u64,
    ) -> Result<&Case, ErasureRefusal> {
        if self.erased.contains_key(case_id) {
            return Err(ErasureRefusal::Erased);
        }
        let case = self
            .cases
            .get(case_id)
            .ok_or(ErasureRefusal::UnknownCase)?;
        if case.state != CaseState::Closed {
            return Err(ErasureRefusal::NotClosed(case.state));
        }
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
        if case.ledger {
            return Err(ErasureRefusal::Ledger);
        }
        Ok(case)
    }

    /// Decides a staff device's request to erase a case.
    pub fn decide_erasure_request(
        &self,
        case_id: CaseId,
        by: DeviceId,
        now: u64,
        retention_days: u64,
    ) -> Result<ErasureOutcome, ErasureRefusal> {
        let case = self.erasable(&case_id, now, retention_days)?;
        if let Some(pending) = case.erasure {
            return Ok(ErasureOutcome::Pending(pending.by));
        }
        Ok(ErasureOutcome::Record(CaseEvent::ErasureRequested {
            position: self.next_position(),
            at: now,
            case_id,
            by,
        }))
    }

    /// Decides a confirmation of a case's erasure by `by` (a coordinator
    /// or admin: the role table says so).
    pub fn decide_erasure_confirm(
        &self,
        case_id: CaseId,
        by: DeviceId,
        now: u64,
        retention_days: u64,
    ) -> Result<CaseEvent, ErasureRefusal> {
        let case = self.erasable(&case_id, now, retention_days)?;
        let pending = case.erasure.ok_or(ErasureRefusal::NotRequested)?;
        if pending.by == by {
            return Err(ErasureRefusal::SameDevice);
        }
        Ok(CaseEvent::Erased {
            position: self.next_position(),
            at: now,
            case_id,
            requested_by: pending.by,
            confirmed_by: by,
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
            CaseEvent::ErasureRequested {
                position,
                at,
                case_id,
                by,
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
            } => {
                if self.erased.contains_key(case_id) {
                    return Err(ApplyError("a case erased twice"));
                }
                if let Some(case) = self.cases.remove(case_id) {
                    if case.state == CaseState::Requested {
                        decrement(&mut self.requested_by_defender, &case.creator);
                    }
                    if let Some(r) = case.requested {
                        self.by_envelope.remove(&r.envelope_digest);
                        self.updates.remove(&r.position);
                    }
                    if let Some(e) = case.erasure {
                        self.updates.remove(&e.position);
                    }
                    for e in &case.events {
                        self.dedup.remove(&(e.author, e.event_id));
                        self.updates.remove(&e.position);
                    }
                }
                self.erased.insert(
                    *case_id,
                    ErasedCase {
                        position: *position,
                        at: *at,
                        requested_by: *requested_by,
                        confirmed_by: *confirmed_by,
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
                out.updates.insert(e.position, UpdateRef::ErasureRequested(*id));
            }
            for (i, e) in case.events.iter().enumerate() {
                out.dedup.insert((e.author, e.event_id), (*id, i));
                out.updates.insert(e.position, UpdateRef::Event(*id, i));
            }
        }
        for (id, e) in &erased {
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
