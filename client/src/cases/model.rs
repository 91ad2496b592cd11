//! The fold: a case's accepted events, in the server's position order,
//! made into what staff read (docs/protocol.md, section 9.5). Pure: no
//! I/O, no clock.
//!
//! Every field is a multi-value register ([`Register`]): a value's
//! version id is the id of the event that set it, and a value names in
//! `based_on` the versions it replaces. The "heads" are the values no
//! other value names; two heads or more are a conflict, shown with every
//! head until a change names them all.

use std::collections::{BTreeMap, BTreeSet};

use hotline_proto::DeviceId;
use hotline_proto::case::content::{CaseEventContent, CaseOpening};
use hotline_proto::case::relocation::{self, Stage};

use hotline_proto::case::{CaseId, CaseState, EventHeader, ID_LEN, LegalHold};

use super::fields::{
    Value, case_field, entity, field_name, field_spec, raw, relocation_field, stage_of,
};

/// An event id (and so a value's version id).
pub type EventId = [u8; ID_LEN];

/// One value of a field, as an event set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The event that set it: the value's version id.
    pub event_id: EventId,
    /// Who set it.
    pub author: DeviceId,
    /// The author's clock.
    pub timestamp: u64,
    /// When the server accepted it.
    pub at: u64,
    /// The value.
    pub value: Value,
    /// The versions it replaces.
    pub based_on: Vec<EventId>,
}

/// A field's values: a multi-value register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Register {
    versions: Vec<Version>,
    replaced: BTreeSet<EventId>,
    /// Where the first version set by each event id is in `versions`.
    by_id: BTreeMap<EventId, usize>,
}

impl Register {
    fn set(&mut self, v: Version) {
        for b in &v.based_on {
            if *b != v.event_id {
                self.replaced.insert(*b);
            }
        }
        self.by_id.entry(v.event_id).or_insert(self.versions.len());
        self.versions.push(v);
    }

    /// The values no other value replaces, in the order they came.
    pub fn heads(&self) -> Vec<&Version> {
        self.versions
            .iter()
            .filter(|v| !self.replaced.contains(&v.event_id))
            .collect()
    }

    /// The ids of the heads: what a change of this field names in
    /// `based_on` (all of them: it resolves a conflict).
    pub fn head_ids(&self) -> Vec<EventId> {
        self.heads().iter().map(|v| v.event_id).collect()
    }

    /// The heads with distinct values, in the order they came: heads
    /// that set equal values are one value (the first of them stands for
    /// the others), never a conflict (docs/protocol.md, section 9.5).
    pub fn values(&self) -> Vec<&Version> {
        let mut out: Vec<&Version> = Vec::new();
        for h in self.heads() {
            if !out.iter().any(|o| o.value == h.value) {
                out.push(h);
            }
        }
        out
    }

    /// The value when the heads hold exactly one (all heads equal).
    pub fn value(&self) -> Option<&Value> {
        match self.values().as_slice() {
            [one] => Some(&one.value),
            _ => None,
        }
    }

    /// More than one distinct value among the heads.
    pub fn is_conflict(&self) -> bool {
        self.values().len() > 1
    }

    /// The version set by `event`.
    pub fn version(&self, event: &EventId) -> Option<&Version> {
        self.by_id.get(event).and_then(|i| self.versions.get(*i))
    }

    /// Every value ever set, in the order they came.
    pub fn history(&self) -> &[Version] {
        &self.versions
    }
}

/// Which field of what: (entity, entity id, field).
pub type FieldKey = (i32, Vec<u8>, u32);

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A stage move the lifecycle does not allow: the stage stayed.
    IllegalStageMove,
    /// A stage number this version does not know: the stage stayed.
    UnknownStage,
    /// An event set one field twice: the second was ignored.
    FieldSetTwice,
    /// An event failed the readers' checks (signature, roster, key,
    /// decryption): it was skipped.
    Skipped,
    /// An event of a state the server should not have accepted.
    Inconsistent,
}

/// Something a reader of the case must see: a kind, the event it is
/// about, and the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What it is.
    pub kind: WarningKind,
    /// The event (`None`: not tied to one).
    pub event: Option<EventId>,
    /// In words (never the content of a field).
    pub text: String,
}

/// One stage move of a relocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMove {
    /// The event.
    pub event_id: EventId,
    /// The stage before (`None`: the relocation started).
    pub from: Option<Stage>,
    /// The stage after.
    pub to: Stage,
    /// Who moved it.
    pub author: DeviceId,
    /// The author's clock.
    pub timestamp: u64,
    /// When the server accepted it.
    pub at: u64,
    /// The event's note.
    pub note: String,
}

/// One line of the timeline: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The event.
    pub event_id: EventId,
    /// Who.
    pub author: DeviceId,
    /// The author's clock.
    pub timestamp: u64,
    /// When the server accepted it.
    pub at: u64,
    /// What, in words (field names and stages; a note's text).
    pub what: String,
    /// Written on this device and not accepted by the server yet (`at` is
    /// then this device's clock).
    pub waiting: bool,
}

/// Something shared with the defender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The event.
    pub event_id: EventId,
    /// Who shared it.
    pub author: DeviceId,
    /// When.
    pub at: u64,
    /// What.
    pub text: String,
    /// A check-in offer, (interval, grace) in seconds.
    pub checkin_offer: Option<(u64, u64)>,
}

/// A defender's request the case answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The defender device.
    pub defender: DeviceId,
    /// When the server accepted it.
    pub at: u64,
    /// The digest of its envelope.
    pub envelope_digest: [u8; 32],
    /// What the defender wrote, when this device holds it.
    pub text: Option<String>,
}

/// The position an event written here and not accepted yet is folded at
/// (after every accepted one).
pub const WAITING: u64 = u64::MAX;

/// An opened event, ready to fold.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// Its sync position.
    pub position: u64,
    /// When the server accepted it.
    pub at: u64,
    /// Its header.
    pub header: EventHeader,
    /// What it says.
    pub content: CaseEventContent,
}

/// A case as its events say.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseView {
    /// The case.
    pub case_id: CaseId,
    /// Its state (`None`: no event and no request held yet).
    pub state: Option<CaseState>,
    /// The note of the event that closed it, while closed.
    pub closed_reason: Option<String>,
    /// When it was closed (server time), while closed.
    pub closed_at: Option<u64>,
    /// Under a legal hold.
    pub legal_hold: bool,
    /// The statistics ledger.
    pub ledger: bool,
    /// When it was opened (server time) and by whom.
    pub opened: Option<(u64, DeviceId)>,
    /// The opening event's content.
    pub opening: Option<CaseOpening>,
    /// The defender's request, if it started as one.
    pub request: Option<RequestInfo>,
    /// The newest event's server time.
    pub last_at: u64,
    /// Every field's register.
    pub fields: BTreeMap<FieldKey, Register>,
    /// Person ids, in the order they first appeared.
    pub people: Vec<Vec<u8>>,
    /// Relocation ids, in the order they first appeared.
    pub relocations: Vec<Vec<u8>>,
    /// Stage moves per relocation id.
    pub stage_history: BTreeMap<Vec<u8>, Vec<StageMove>>,
    /// Who did what, in order.
    pub timeline: Vec<TimelineEntry>,
    /// What was shared with the defender.
    pub shared: Vec<Shared>,
    /// The envelope digests of the defender's replies the case's events
    /// record (each shown once, however many staff recorded it).
    pub replies: BTreeSet<[u8; 32]>,
    /// For each digest in `replies`, what the first event recording it
    /// says: a device holding the envelope compares it with what it
    /// received (docs/protocol.md, section 9.5).
    pub recorded_replies: BTreeMap<[u8; 32], RecordedReply>,
    /// What a reader must see.
    pub warnings: Vec<Warning>,
    /// Events held that this device cannot read yet (no key).
    pub unreadable: usize,
    /// Events folded, by (event id, author): two authors may draw one id,
    /// and each is its own event (as the server and the replica count
    /// them).
    seen: BTreeSet<(EventId, [u8; ID_LEN])>,
    /// `people` as a set (the fold looks each change up in it).
    people_set: BTreeSet<Vec<u8>>,
    /// `relocations` as a set.
    relocations_set: BTreeSet<Vec<u8>>,
    /// The key commitment of each epoch, as its first event folded (in
    /// position order) committed to; the last is the newest epoch opened.
    epochs: BTreeMap<u32, [u8; 32]>,
}

/// A defender's reply as the first event recording its envelope digest
/// says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedReply {
    /// The recording event.
    pub event_id: EventId,
    /// The staff device that recorded it.
    pub author: DeviceId,
    /// The defender device it names (as recorded: any bytes).
    pub defender: Vec<u8>,
    /// The words it records.
    pub text: String,
    /// What the recording event's timeline line says of it.
    pub line: String,
}

/// One conflict: a field with more than one head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict<'a> {
    /// Which field.
    pub key: &'a FieldKey,
    /// Its heads.
    pub heads: Vec<&'a Version>,
}

fn short(id: &[u8]) -> String {
    id.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl CaseView {
    /// Whether an event (signed by its author, folded in position order)
    /// under `epoch` committing to `commitment` may be folded: epochs only
    /// move forward, and an epoch has one key (docs/protocol.md, 9.5,
    /// "Epochs"). An event under an epoch older than the newest opened
    /// before it, or committing to another key than its epoch's first
    /// event, is not, with a warning; the server refuses both, so only a
    /// server that broke the rules (or an injected event) sends one.
    pub fn admit_epoch(&mut self, event: EventId, epoch: u32, commitment: &[u8; 32]) -> bool {
        let newest = self.epochs.keys().next_back().copied().unwrap_or(0);
        let why = match self.epochs.get(&epoch) {
            _ if epoch < newest => format!(
                "an event under key epoch {epoch}, older than epoch {newest} which the case had opened before it, was ignored"
            ),
            Some(c) if c == commitment => return true,
            Some(_) => format!(
                "an event committing to another key than the one of key epoch {epoch} was ignored (an epoch has one key)"
            ),
            None => {
                self.epochs.insert(epoch, *commitment);
                return true;
            }
        };
        self.warn(WarningKind::Skipped, Some(event), why);
        false
    }

    /// An empty view of `case_id`.
    pub fn new(case_id: CaseId) -> Self {
        CaseView {
            case_id,
            state: None,
            closed_reason: None,
            closed_at: None,
            legal_hold: false,
            ledger: false,
            opened: None,
            opening: None,
            request: None,
            last_at: 0,
            fields: BTreeMap::new(),
            people: Vec::new(),
            relocations: Vec::new(),
            stage_history: BTreeMap::new(),
            timeline: Vec::new(),
            shared: Vec::new(),
            replies: BTreeSet::new(),
            recorded_replies: BTreeMap::new(),
            warnings: Vec::new(),
            unreadable: 0,
            seen: BTreeSet::new(),
            people_set: BTreeSet::new(),
            relocations_set: BTreeSet::new(),
            epochs: BTreeMap::new(),
        }
    }

    /// Folds a case's events (in position order) into its view.
    pub fn fold<'a>(case_id: CaseId, events: impl IntoIterator<Item = &'a Opened>) -> Self {
        let mut view = CaseView::new(case_id);
        for e in events {
            view.apply(e);
        }
        view
    }

    /// A defender's request for this case.
    pub fn requested(&mut self, request: RequestInfo) {
        if self.state.is_none() {
            self.state = Some(CaseState::Requested);
        }
        self.last_at = self.last_at.max(request.at);
        self.request = Some(request);
    }

    /// An event this device cannot open yet (no key): counted, and its
    /// control part — signed and outside the ciphertext, what the server
    /// sees and enforces — still moves the case's state, legal hold and
    /// ledger flag, so that a staff device whose keys have not arrived
    /// shows an open case as open, not as the request it began as
    /// (docs/cases.md, "Keys and rotation"). Nothing of its content, and
    /// no timeline entry.
    pub fn sealed(&mut self, header: &EventHeader, at: u64) {
        self.unreadable += 1;
        if header.case_id != self.case_id {
            return;
        }
        self.last_at = self.last_at.max(at);
        if header.control.ledger {
            self.ledger = true;
        }
        match header.control.state {
            Some(CaseState::Open) => {
                self.state = Some(CaseState::Open);
                self.closed_reason = None;
                self.closed_at = None;
            }
            Some(CaseState::Closed) => {
                self.state = Some(CaseState::Closed);
                self.closed_at = Some(at);
            }
            Some(CaseState::Requested) | None => {}
        }
        match header.control.legal_hold {
            Some(LegalHold::Set) => self.legal_hold = true,
            Some(LegalHold::Lifted) => self.legal_hold = false,
            None => {}
        }
    }

    /// A warning that is not about an event's content (a skipped event).
    pub fn warn(&mut self, kind: WarningKind, event: Option<EventId>, text: String) {
        self.warnings.push(Warning { kind, event, text });
    }

    /// Whether an event with this id (by any author) was folded.
    pub fn has(&self, event: &EventId) -> bool {
        self.seen
            .range((*event, [0; ID_LEN])..=(*event, [u8::MAX; ID_LEN]))
            .next()
            .is_some()
    }

    /// Whether `author`'s event `event` was folded.
    pub fn has_from(&self, author: &DeviceId, event: &EventId) -> bool {
        self.seen.contains(&(*event, *author.as_bytes()))
    }

    /// Folds the next event. An (author, event id) already folded is
    /// ignored (a replay); an event of another case too.
    pub fn apply(&mut self, e: &Opened) {
        let id = e.header.event_id;
        if e.header.case_id != self.case_id || !self.seen.insert((id, *e.header.author.as_bytes()))
        {
            return;
        }
        let c = &e.content;
        let author = e.header.author;
        self.last_at = self.last_at.max(e.at);
        let mut what: Vec<String> = Vec::new();
        if e.header.control.ledger {
            self.ledger = true;
        }
        if let Some(opening) = &c.opening {
            self.opening = Some(opening.clone());
        }
        match e.header.control.state {
            Some(CaseState::Open) => {
                match self.state {
                    Some(CaseState::Closed) => what.push("reopened the case".into()),
                    Some(CaseState::Open) => self.warn(
                        WarningKind::Inconsistent,
                        Some(id),
                        "an event opened a case that was already open".into(),
                    ),
                    Some(CaseState::Requested) => {
                        what.push("accepted the request: opened the case".into())
                    }
                    None => what.push("opened the case".into()),
                }
                if self.opened.is_none() {
                    self.opened = Some((e.at, author));
                }
                self.state = Some(CaseState::Open);
                self.closed_reason = None;
                self.closed_at = None;
            }
            Some(CaseState::Closed) => {
                if self.state == Some(CaseState::Requested) {
                    what.push(format!("declined the request: {}", c.note));
                } else {
                    what.push(format!("closed the case: {}", c.note));
                }
                self.state = Some(CaseState::Closed);
                self.closed_reason = Some(c.note.clone());
                self.closed_at = Some(e.at);
            }
            Some(CaseState::Requested) => self.warn(
                WarningKind::Inconsistent,
                Some(id),
                "an event moved the case back to requested; ignored".into(),
            ),
            None => {}
        }
        match e.header.control.legal_hold {
            Some(LegalHold::Set) => {
                self.legal_hold = true;
                what.push("set a legal hold".into());
            }
            Some(LegalHold::Lifted) => {
                self.legal_hold = false;
                what.push("lifted the legal hold".into());
            }
            None => {}
        }
        let mut set: BTreeSet<FieldKey> = BTreeSet::new();
        for change in &c.changes {
            let key: FieldKey = (change.entity, change.entity_id.to_vec(), change.field);
            if !set.insert(key.clone()) {
                self.warn(
                    WarningKind::FieldSetTwice,
                    Some(id),
                    format!(
                        "an event set {} twice; the second value was ignored",
                        field_name(key.0, key.2)
                    ),
                );
                continue;
            }
            let based_on: Vec<EventId> = change
                .based_on
                .iter()
                .filter_map(|b| b.as_ref().try_into().ok())
                .collect();
            let value = Value::from_change(change);
            if (key.0, key.2) == (entity::RELOCATION, relocation_field::STAGE) {
                match self.stage_move(&key, &value, &based_on) {
                    Ok(from) => {
                        let to = value.number().and_then(stage_of).expect("checked");
                        what.push(match from {
                            None => format!("started relocation {}", short(&key.1)),
                            Some(f) => {
                                format!("moved relocation {} from {f} to {to}", short(&key.1))
                            }
                        });
                        self.stage_history
                            .entry(key.1.clone())
                            .or_default()
                            .push(StageMove {
                                event_id: id,
                                from,
                                to,
                                author,
                                timestamp: c.timestamp,
                                at: e.at,
                                note: c.note.clone(),
                            });
                    }
                    Err(w) => {
                        self.warn(w.0, Some(id), w.1);
                        continue;
                    }
                }
            } else {
                what.push(match key.0 {
                    entity::CASE => format!("set {}", field_name(key.0, key.2)),
                    entity::PERSON => format!(
                        "set {} of person {}",
                        field_name(key.0, key.2),
                        short(&key.1)
                    ),
                    entity::RELOCATION => format!(
                        "set {} of relocation {}",
                        field_name(key.0, key.2),
                        short(&key.1)
                    ),
                    other => format!(
                        "set a field this version does not know (entity {other}, field {})",
                        key.2
                    ),
                });
            }
            match key.0 {
                entity::PERSON if self.people_set.insert(key.1.clone()) => {
                    self.people.push(key.1.clone())
                }
                entity::RELOCATION if self.relocations_set.insert(key.1.clone()) => {
                    self.relocations.push(key.1.clone())
                }
                _ => {}
            }
            self.fields.entry(key).or_default().set(Version {
                event_id: id,
                author,
                timestamp: c.timestamp,
                at: e.at,
                value,
                based_on,
            });
        }
        if let Some(s) = &c.shared {
            what.push(format!("shared with the defender: {}", s.text));
            self.shared.push(Shared {
                event_id: id,
                author,
                at: e.at,
                text: s.text.clone(),
                checkin_offer: s
                    .checkin_offer
                    .as_ref()
                    .map(|o| (o.interval_secs, o.grace_secs)),
            });
        }
        let mut reply_again = false;
        if let Some(r) = &c.reply {
            match <[u8; 32]>::try_from(r.envelope_digest.as_ref()) {
                Ok(digest) if self.replies.insert(digest) => {
                    let line = format!(
                        "recorded a reply of defender device {}, written {}: {}",
                        short(&r.defender),
                        hotline_proto::time::date_time(r.sent_at),
                        r.text
                    );
                    self.recorded_replies.insert(
                        digest,
                        RecordedReply {
                            event_id: id,
                            author,
                            defender: r.defender.to_vec(),
                            text: r.text.clone(),
                            line: line.clone(),
                        },
                    );
                    what.push(line);
                }
                Ok(_) => reply_again = true,
                Err(_) => self.warn(
                    WarningKind::Inconsistent,
                    Some(id),
                    "an event recorded a defender's reply without its envelope digest; it was not shown".into(),
                ),
            }
        }
        if c.tombstone.is_some() {
            what.push("recorded the statistics of an erased case".into());
        }
        if !c.rotated_out.is_empty() {
            what.push(format!(
                "changed the case key ({} devices left the roster)",
                c.rotated_out.len()
            ));
        }
        let closing = e.header.control.state == Some(CaseState::Closed);
        let stage_note = c
            .changes
            .iter()
            .any(|ch| (ch.entity, ch.field) == (entity::RELOCATION, relocation_field::STAGE));
        if !c.note.is_empty() && !closing {
            if stage_note {
                what.push(format!("note: {}", c.note));
            } else {
                what.push(format!("wrote: {}", c.note));
            }
        }
        if what.is_empty() {
            // A reply another staff device recorded first: shown once.
            if reply_again {
                return;
            }
            what.push("changed nothing this version shows".into());
        }
        self.timeline.push(TimelineEntry {
            event_id: id,
            author,
            timestamp: c.timestamp,
            at: e.at,
            what: what.join("; "),
            waiting: e.position == WAITING,
        });
    }

    /// Checks a stage change: `Ok(from)` if it may be applied.
    fn stage_move(
        &self,
        key: &FieldKey,
        value: &Value,
        based_on: &[EventId],
    ) -> Result<Option<Stage>, (WarningKind, String)> {
        let Some(to) = value.number().and_then(stage_of) else {
            return Err((
                WarningKind::UnknownStage,
                format!(
                    "relocation {}: a stage this version does not know ({}); the stage stays",
                    short(&key.1),
                    raw(value)
                ),
            ));
        };
        let reg = self.fields.get(key);
        let stage_at = |v: &Version| v.value.number().and_then(stage_of);
        if based_on.is_empty() {
            return if to == Stage::Requested {
                Ok(None)
            } else {
                Err((
                    WarningKind::IllegalStageMove,
                    format!(
                        "relocation {}: a relocation starts as requested, not {to}; the stage stays",
                        short(&key.1)
                    ),
                ))
            };
        }
        // `based_on` is a set (docs/protocol.md, section 9.5): an id named
        // twice counts once. The values it names that this device holds;
        // ids it does not hold count for nothing.
        let mut named: Vec<&EventId> = Vec::with_capacity(based_on.len());
        for b in based_on {
            if !named.contains(&b) {
                named.push(b);
            }
        }
        let held: Vec<&Version> = named
            .iter()
            .filter_map(|b| reg.and_then(|r| r.version(b)))
            .collect();
        // The stages it replaces, as its author saw them; the current ones
        // if this device holds none of them with a stage it knows.
        let mut from: Vec<Stage> = held.iter().copied().filter_map(stage_at).collect();
        if from.is_empty() {
            from = reg
                .map(|r| r.heads().into_iter().filter_map(stage_at).collect())
                .unwrap_or_default();
        }
        if let Some(ok) = from
            .iter()
            .find(|f| relocation::transition(**f, to).is_ok())
        {
            return Ok(Some(*ok));
        }
        // Settling a conflict of stages (it names two distinct values
        // this device holds, or more): choosing one of the conflicting
        // stages is legal too.
        if held.len() > 1 && from.contains(&to) {
            return Ok(Some(to));
        }
        let why = match from.first() {
            Some(f) => relocation::transition(*f, to)
                .err()
                .map_or_else(String::new, |e| e.to_string()),
            None => "no stage is held to move from".into(),
        };
        Err((
            WarningKind::IllegalStageMove,
            format!(
                "relocation {}: a move to {to} was ignored ({why}); the stage stays",
                short(&key.1)
            ),
        ))
    }

    /// A field's register.
    pub fn field(&self, entity: i32, entity_id: &[u8], field: u32) -> Option<&Register> {
        self.fields.get(&(entity, entity_id.to_vec(), field))
    }

    /// A case field's single value (`None`: unset or in conflict).
    pub fn case_value(&self, field: u32) -> Option<&Value> {
        self.field(entity::CASE, &[], field)
            .and_then(Register::value)
    }

    /// A case text field: its value, or every head's joined with " | "
    /// in a conflict.
    pub fn case_text(&self, field: u32) -> String {
        match self.field(entity::CASE, &[], field) {
            None => String::new(),
            Some(r) => r
                .values()
                .iter()
                .map(|v| v.value.text().unwrap_or("?").to_owned())
                .collect::<Vec<_>>()
                .join(" | "),
        }
    }

    /// A relocation's current stage (`None`: none, or in conflict).
    pub fn stage(&self, relocation: &[u8]) -> Option<Stage> {
        self.field(entity::RELOCATION, relocation, relocation_field::STAGE)
            .and_then(Register::value)
            .and_then(Value::number)
            .and_then(stage_of)
    }

    /// Every field in conflict.
    pub fn conflicts(&self) -> Vec<Conflict<'_>> {
        self.fields
            .iter()
            .filter(|(_, r)| r.is_conflict())
            .map(|(key, r)| Conflict {
                key,
                heads: r.values(),
            })
            .collect()
    }

    /// Fields this version does not know, by (entity, field).
    pub fn unknown_fields(&self) -> Vec<&FieldKey> {
        self.fields
            .keys()
            .filter(|(e, _, f)| field_spec(*e, *f).is_none())
            .collect()
    }

    /// The coordinators (union of the heads' ids).
    pub fn coordinators(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        if let Some(r) = self.field(entity::CASE, &[], case_field::COORDINATORS) {
            for v in r.heads() {
                for id in v.value.ids().unwrap_or_default() {
                    if !out.contains(id) {
                        out.push(id.clone());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::fields::show_value;
    use hotline_proto::case::CaseControl;
    use hotline_proto::case::content::{FieldChange, FieldValue, FieldValueKind, SharedItem};

    const CASE: [u8; 16] = [9; 16];
    const REL: [u8; 16] = [3; 16];

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 16])
    }

    fn ev(n: u8, author: u8, position: u64, changes: Vec<FieldChange>) -> Opened {
        Opened {
            position,
            at: 1_000 + position,
            header: EventHeader {
                case_id: CaseId::from_bytes(CASE),
                event_id: [n; 16],
                author: dev(author),
                roster_version: 1,
                epoch: 1,
                key_commitment: [0; 32],
                control: CaseControl::default(),
                ciphertext_len: 1040,
            },
            content: CaseEventContent {
                timestamp: 500 + position,
                changes,
                ..Default::default()
            },
        }
    }

    fn with_state(mut e: Opened, s: CaseState, note: &str) -> Opened {
        e.header.control.state = Some(s);
        e.content.note = note.into();
        e
    }

    fn text(field: u32, t: &str, based_on: &[u8]) -> FieldChange {
        FieldChange {
            entity: entity::CASE,
            entity_id: Vec::new().into(),
            field,
            value: Some(FieldValue {
                kind: Some(FieldValueKind::Text(t.into())),
            }),
            based_on: based_on.iter().map(|b| vec![*b; 16].into()).collect(),
        }
    }

    fn stage(s: Stage, based_on: &[u8]) -> FieldChange {
        FieldChange {
            entity: entity::RELOCATION,
            entity_id: REL.to_vec().into(),
            field: relocation_field::STAGE,
            value: Some(FieldValue {
                kind: Some(FieldValueKind::Number(u64::from(s.number()))),
            }),
            based_on: based_on.iter().map(|b| vec![*b; 16].into()).collect(),
        }
    }

    fn fold(events: &[Opened]) -> CaseView {
        CaseView::fold(CaseId::from_bytes(CASE), events)
    }

    fn summaries(v: &CaseView) -> Vec<String> {
        v.field(entity::CASE, &[], case_field::SUMMARY)
            .map(|r| {
                r.heads()
                    .iter()
                    .map(|h| h.value.text().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn two_concurrent_edits_of_one_field_are_both_kept_and_shown_as_a_conflict() {
        let v = fold(&[
            with_state(
                ev(1, 1, 1, vec![text(2, "first", &[])]),
                CaseState::Open,
                "",
            ),
            ev(2, 1, 2, vec![text(2, "from laptop", &[1])]),
            ev(3, 2, 3, vec![text(2, "from phone", &[1])]),
        ]);
        assert_eq!(summaries(&v), ["from laptop", "from phone"]);
        let conflicts = v.conflicts();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].heads[0].author, dev(1));
        assert_eq!(conflicts[0].heads[1].author, dev(2));
        assert_eq!(v.case_text(case_field::SUMMARY), "from laptop | from phone");
        assert_eq!(v.case_value(case_field::SUMMARY), None);
    }

    /// Walk-through 3 (WA5): two concurrent edits that set the same
    /// value (a take-on racing a decline, both copying the programme)
    /// are one value: no conflict; a later change still names both.
    #[test]
    fn two_concurrent_edits_setting_equal_values_are_one_value_not_a_conflict() {
        let v = fold(&[
            with_state(
                ev(1, 1, 1, vec![text(2, "first", &[])]),
                CaseState::Open,
                "",
            ),
            ev(2, 1, 2, vec![text(2, "same", &[1])]),
            ev(3, 2, 3, vec![text(2, "same", &[1])]),
        ]);
        assert!(v.conflicts().is_empty());
        assert_eq!(v.case_text(case_field::SUMMARY), "same");
        assert_eq!(
            v.case_value(case_field::SUMMARY).and_then(Value::text),
            Some("same")
        );
        let r = v.field(entity::CASE, &[], case_field::SUMMARY);
        assert_eq!(r.map(|r| r.head_ids().len()), Some(2));
        assert_eq!(r.map(|r| r.values().len()), Some(1));
    }

    #[test]
    fn a_change_naming_every_head_resolves_the_conflict_and_one_naming_some_does_not() {
        let base = vec![
            with_state(
                ev(1, 1, 1, vec![text(2, "first", &[])]),
                CaseState::Open,
                "",
            ),
            ev(2, 1, 2, vec![text(2, "a", &[1])]),
            ev(3, 2, 3, vec![text(2, "b", &[1])]),
        ];
        let mut partial = base.clone();
        partial.push(ev(4, 1, 4, vec![text(2, "c", &[2])]));
        assert_eq!(summaries(&fold(&partial)), ["b", "c"]);
        let mut resolved = base;
        resolved.push(ev(4, 1, 4, vec![text(2, "agreed", &[2, 3])]));
        let v = fold(&resolved);
        assert_eq!(summaries(&v), ["agreed"]);
        assert!(v.conflicts().is_empty());
        assert_eq!(
            v.field(entity::CASE, &[], case_field::SUMMARY)
                .map(|r| r.history().len()),
            Some(4)
        );
    }

    #[test]
    fn a_replayed_event_is_ignored() {
        let e1 = with_state(
            ev(1, 1, 1, vec![text(2, "first", &[])]),
            CaseState::Open,
            "",
        );
        let e2 = ev(2, 1, 2, vec![text(2, "second", &[1])]);
        let once = fold(&[e1.clone(), e2.clone()]);
        let twice = fold(&[e1.clone(), e2.clone(), e1, e2]);
        assert_eq!(once, twice);
        assert_eq!(twice.timeline.len(), 2);
        assert_eq!(summaries(&twice), ["second"]);
    }

    #[test]
    fn a_change_based_on_an_event_not_seen_yet_replaces_it_when_it_comes() {
        // Event 3 names event 2, which the server placed after it.
        let v = fold(&[
            with_state(
                ev(1, 1, 1, vec![text(2, "first", &[])]),
                CaseState::Open,
                "",
            ),
            ev(3, 2, 2, vec![text(2, "newest", &[2])]),
            ev(2, 1, 3, vec![text(2, "older", &[1])]),
        ]);
        assert_eq!(summaries(&v), ["newest"]);
        assert!(v.conflicts().is_empty());
    }

    #[test]
    fn every_relocation_stage_in_order_is_recorded_with_date_author_and_note() {
        let path = [
            Stage::Requested,
            Stage::Assessed,
            Stage::Approved,
            Stage::TravelBooked,
            Stage::InTransit,
            Stage::Arrived,
            Stage::Hosted,
            Stage::Extended,
            Stage::Extended,
            Stage::Resettled,
            Stage::Closed,
        ];
        let mut events = vec![with_state(ev(1, 1, 1, vec![]), CaseState::Open, "")];
        let mut prev: Option<u8> = None;
        for (i, s) in path.iter().enumerate() {
            let n = 10 + i as u8;
            let based: Vec<u8> = prev.into_iter().collect();
            let mut e = ev(n, 1 + (i % 2) as u8, 2 + i as u64, vec![stage(*s, &based)]);
            e.content.note = format!("step {i}");
            events.push(e);
            prev = Some(n);
        }
        let v = fold(&events);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(v.stage(&REL), Some(Stage::Closed));
        let history = &v.stage_history[&REL.to_vec()];
        assert_eq!(history.iter().map(|m| m.to).collect::<Vec<_>>(), path);
        assert_eq!(history[0].from, None);
        assert_eq!(history[4].from, Some(Stage::TravelBooked));
        assert_eq!(history[4].note, "step 4");
        assert_eq!(history[4].author, dev(1));
        assert_eq!(history[5].author, dev(2));
        assert_eq!(history[4].timestamp, 500 + 6);
        assert!(
            v.timeline[5]
                .what
                .contains("from travel booked to in transit")
        );
    }

    #[test]
    fn an_illegal_stage_move_is_a_warning_and_the_stage_stays() {
        let v = fold(&[
            with_state(
                ev(1, 1, 1, vec![stage(Stage::Requested, &[])]),
                CaseState::Open,
                "",
            ),
            ev(2, 1, 2, vec![stage(Stage::Assessed, &[1])]),
            ev(3, 2, 3, vec![stage(Stage::Hosted, &[2])]),
        ]);
        assert_eq!(v.stage(&REL), Some(Stage::Assessed));
        assert_eq!(v.warnings.len(), 1);
        assert_eq!(v.warnings[0].kind, WarningKind::IllegalStageMove);
        assert_eq!(v.warnings[0].event, Some([3; 16]));
        assert!(
            v.warnings[0]
                .text
                .contains("a relocation that is assessed can move to: approved, cancelled"),
            "{}",
            v.warnings[0].text
        );
        assert_eq!(v.stage_history[&REL.to_vec()].len(), 2);
        // A relocation cannot start past requested, nor at an unknown stage.
        let mut unknown = stage(Stage::Requested, &[]);
        unknown.value = Some(FieldValue {
            kind: Some(FieldValueKind::Number(40)),
        });
        let v = fold(&[
            ev(1, 1, 1, vec![stage(Stage::Hosted, &[])]),
            ev(2, 1, 2, vec![unknown]),
        ]);
        assert_eq!(v.stage(&REL), None);
        assert_eq!(
            v.warnings.iter().map(|w| w.kind).collect::<Vec<_>>(),
            [WarningKind::IllegalStageMove, WarningKind::UnknownStage]
        );
    }

    #[test]
    fn concurrent_stage_moves_conflict_and_a_resolution_from_either_is_legal() {
        let v = fold(&[
            ev(1, 1, 1, vec![stage(Stage::Requested, &[])]),
            ev(2, 1, 2, vec![stage(Stage::Assessed, &[1])]),
            ev(3, 2, 3, vec![stage(Stage::Cancelled, &[1])]),
        ]);
        assert_eq!(v.stage(&REL), None);
        assert_eq!(v.conflicts().len(), 1);
        let mut events = vec![
            ev(1, 1, 1, vec![stage(Stage::Requested, &[])]),
            ev(2, 1, 2, vec![stage(Stage::Assessed, &[1])]),
            ev(3, 2, 3, vec![stage(Stage::Cancelled, &[1])]),
        ];
        events.push(ev(4, 1, 4, vec![stage(Stage::Approved, &[2, 3])]));
        let v = fold(&events);
        assert_eq!(v.stage(&REL), Some(Stage::Approved));
        assert!(v.warnings.is_empty());
    }

    #[test]
    fn a_stage_conflict_is_settled_by_choosing_one_of_its_stages() {
        let conflict = || {
            vec![
                ev(1, 1, 1, vec![stage(Stage::Requested, &[])]),
                ev(2, 1, 2, vec![stage(Stage::Assessed, &[1])]),
                ev(3, 2, 3, vec![stage(Stage::Cancelled, &[1])]),
            ]
        };
        // Choosing either stage of the conflict settles it.
        for chosen in [Stage::Assessed, Stage::Cancelled] {
            let mut events = conflict();
            events.push(ev(4, 1, 4, vec![stage(chosen, &[2, 3])]));
            let v = fold(&events);
            assert_eq!(v.stage(&REL), Some(chosen));
            assert!(v.conflicts().is_empty());
            assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        }
        // A stage that is neither one of them nor a legal move from one is
        // still refused: the conflict stays.
        let mut events = conflict();
        events.push(ev(4, 1, 4, vec![stage(Stage::Hosted, &[2, 3])]));
        let v = fold(&events);
        assert_eq!(v.stage(&REL), None);
        assert_eq!(v.warnings[0].kind, WarningKind::IllegalStageMove);
        // Repeating the one stage held is no move (no conflict to settle).
        let mut events = conflict();
        events.truncate(2);
        events.push(ev(4, 1, 4, vec![stage(Stage::Assessed, &[2])]));
        let v = fold(&events);
        assert_eq!(v.warnings[0].kind, WarningKind::IllegalStageMove);
    }

    #[test]
    fn unknown_entities_fields_and_value_kinds_are_kept_and_named() {
        let mut odd_entity = text(1, "x", &[]);
        odd_entity.entity = 9;
        let odd_field = text(40, "y", &[]);
        let mut no_value = text(2, "", &[]);
        no_value.value = Some(FieldValue { kind: None });
        let v = fold(&[ev(1, 1, 1, vec![odd_entity, odd_field, no_value])]);
        let unknown: Vec<(i32, u32)> = v.unknown_fields().iter().map(|k| (k.0, k.2)).collect();
        assert_eq!(unknown, [(1, 40), (9, 1)]);
        assert_eq!(
            field_name(9, 1),
            "a field this version does not know (entity 9, field 1)"
        );
        let summary = v
            .field(entity::CASE, &[], 2)
            .and_then(Register::value)
            .cloned();
        assert_eq!(summary, Some(Value::Unknown));
        assert_eq!(
            show_value(1, 2, &Value::Unknown, &|_| String::new()),
            "a value this version does not know"
        );
        assert!(v.timeline[0].what.contains("entity 9, field 1"));
    }

    /// Several staff recording one reply (one envelope digest): shown
    /// once, by the first event; a reply without a digest is a warning.
    #[test]
    fn a_defenders_reply_recorded_by_several_staff_is_shown_once() {
        let reply = |n: u8, digest: Vec<u8>| {
            let mut e = ev(n, n, u64::from(n), vec![]);
            e.content.reply = Some(hotline_proto::case::content::DefenderReply {
                defender: vec![7; 16].into(),
                envelope_digest: digest.into(),
                sent_at: 1_795_910_400,
                text: "we are ready".into(),
                language: String::new(),
            });
            e
        };
        let v = fold(&[
            with_state(ev(1, 1, 1, vec![]), CaseState::Open, ""),
            reply(2, vec![9; 32]),
            reply(3, vec![9; 32]),
            reply(4, vec![8; 32]),
            reply(5, vec![1; 3]),
        ]);
        let shown: Vec<&str> = v
            .timeline
            .iter()
            .filter(|t| t.what.contains("we are ready"))
            .map(|t| t.what.as_str())
            .collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("recorded a reply of defender device 07070707"));
        assert_eq!(v.replies.len(), 2);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    }

    #[test]
    fn state_reason_hold_and_shared_items_follow_the_events() {
        let mut hold = ev(3, 2, 3, vec![]);
        hold.header.control.legal_hold = Some(LegalHold::Set);
        let mut share = ev(4, 1, 4, vec![]);
        share.content.shared = Some(SharedItem {
            text: "travel booked for 12 May".into(),
            checkin_offer: None,
        });
        let v = fold(&[
            with_state(ev(1, 1, 1, vec![]), CaseState::Open, ""),
            with_state(ev(2, 1, 2, vec![]), CaseState::Closed, "resolved"),
            hold,
            share,
            with_state(ev(5, 1, 5, vec![]), CaseState::Open, ""),
        ]);
        assert_eq!(v.state, Some(CaseState::Open));
        assert_eq!(v.closed_reason, None);
        assert!(v.legal_hold);
        assert_eq!(v.shared.len(), 1);
        let whats: Vec<&str> = v.timeline.iter().map(|t| t.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "opened the case",
                "closed the case: resolved",
                "set a legal hold",
                "shared with the defender: travel booked for 12 May",
                "reopened the case"
            ]
        );
    }

    #[test]
    fn another_authors_event_reusing_an_id_is_kept_and_a_replay_of_either_is_not() {
        let opening = with_state(ev(1, 1, 1, vec![]), CaseState::Open, "");
        let mine = ev(2, 1, 2, vec![text(case_field::REFERENCE, "mine", &[])]);
        // Device 2 drew the same event id: its own event, not a replay.
        let theirs = ev(2, 2, 3, vec![text(case_field::COUNTRY, "SY", &[])]);
        let v = fold(&[opening, mine.clone(), theirs.clone(), mine, theirs]);
        assert_eq!(v.timeline.len(), 3);
        assert_eq!(v.case_text(case_field::REFERENCE), "mine");
        assert_eq!(v.case_text(case_field::COUNTRY), "SY");
        assert!(v.has_from(&dev(2), &[2; 16]));
        assert!(v.has(&[2; 16]));
        assert!(!v.has_from(&dev(3), &[2; 16]));
    }

    fn person_name(id: u32, name: &str) -> FieldChange {
        FieldChange {
            entity: entity::PERSON,
            entity_id: id.to_be_bytes().repeat(4).into(),
            field: crate::cases::fields::person_field::NAME,
            value: Some(FieldValue {
                kind: Some(FieldValueKind::Text(name.into())),
            }),
            based_on: Vec::new(),
        }
    }

    #[test]
    fn an_event_creating_2500_people_folds_with_every_person_once_in_order() {
        let changes: Vec<FieldChange> = (0..2_500).map(|i| person_name(i, "someone")).collect();
        let mut events = vec![with_state(ev(1, 1, 1, changes), CaseState::Open, "")];
        // A second event naming every person again adds no one.
        let again: Vec<FieldChange> = (0..2_500).map(|i| person_name(i, "renamed")).collect();
        events.push(ev(2, 1, 2, again));
        let v = fold(&events);
        assert_eq!(v.people.len(), 2_500);
        assert_eq!(v.people[0], 0u32.to_be_bytes().repeat(4));
        assert_eq!(v.people[2_499], 2_499u32.to_be_bytes().repeat(4));
        assert_eq!(v.fields.len(), 2_500);
        // Both values of each name are heads: nothing named the first.
        assert_eq!(v.conflicts().len(), 2_500);
    }

    #[test]
    fn a_thousand_cases_of_fifty_events_fold_each_event_once() {
        for c in 0..1_000u32 {
            let case = CaseId::from_bytes([9; 16]);
            let mut events = vec![with_state(ev(0, 1, 1, vec![]), CaseState::Open, "")];
            for n in 1..50u8 {
                let prev: Vec<u8> = if n == 1 { vec![] } else { vec![n - 1] };
                events.push(ev(
                    n,
                    1 + n % 3,
                    1 + u64::from(n),
                    vec![text(2, "s", &prev)],
                ));
            }
            let v = CaseView::fold(case, &events);
            assert_eq!(v.timeline.len(), 50, "case {c}");
            assert!(v.conflicts().is_empty());
        }
    }

    #[test]
    fn a_field_set_twice_in_one_event_keeps_the_first() {
        let v = fold(&[ev(1, 1, 1, vec![text(2, "one", &[]), text(2, "two", &[])])]);
        assert_eq!(summaries(&v), ["one"]);
        assert_eq!(v.warnings[0].kind, WarningKind::FieldSetTwice);
    }

    /// Issue 12, second review, Y point 7(d): `based_on` is a set: naming
    /// the one stage held twice is no conflict to settle (before, it
    /// counted as two values and "chose" the stage it was already at);
    /// ids the reader does not hold count for nothing, so naming one
    /// beside the held stage does not make a settlement either.
    #[test]
    fn a_repeated_or_unknown_based_on_id_does_not_settle_a_stage_conflict() {
        let start = || {
            vec![
                ev(1, 1, 1, vec![stage(Stage::Requested, &[])]),
                ev(2, 1, 2, vec![stage(Stage::Assessed, &[1])]),
            ]
        };
        for based_on in [&[2u8, 2][..], &[2, 9][..]] {
            let mut events = start();
            events.push(ev(4, 1, 4, vec![stage(Stage::Assessed, based_on)]));
            let v = fold(&events);
            assert_eq!(
                v.warnings.first().map(|w| w.kind),
                Some(WarningKind::IllegalStageMove),
                "{based_on:?}: {:?}",
                v.warnings
            );
            assert_eq!(
                v.stage_history.get(REL.as_slice()).map(Vec::len),
                Some(2),
                "no third move recorded"
            );
        }
        // A legal move named with a repeated id is still one legal move.
        let mut events = start();
        events.push(ev(4, 1, 4, vec![stage(Stage::Approved, &[2, 2])]));
        let v = fold(&events);
        assert_eq!(v.stage(&REL), Some(Stage::Approved));
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    }
}
