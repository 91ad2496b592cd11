//! The local replica of the cases: what this staff device received of
//! them, kept sealed under the device's storage key like the rest of its
//! state (`StateDir::save_sealed`: written to a temporary file, synced,
//! renamed).
//!
//! ```text
//! <home>/cases/index.sealed      the sync cursor, the server's retention, one
//!                                folded summary per case (what `case list`
//!                                reads), erased case ids, the outbox
//! <home>/cases/<case id>.sealed  one case: every update received (events
//!                                still sealed under their case keys, with
//!                                their author's key), its keys per epoch, the
//!                                defender's request
//! <home>/cases/pending_keys.sealed  keys received for cases no sync listed
//!                                yet (bounded per sender): they join a case
//!                                when a sync lists it
//! ```
//!
//! `case list` opens the index only; a case's file is opened and folded
//! when the case is shown or written to, and its summary is rebuilt
//! whenever it changes. Erasing a case deletes its file and rewrites the
//! index without it.

use std::collections::BTreeMap;

use hotline_proto::DeviceId;
use hotline_proto::case::content::CaseEventContent;
use hotline_proto::case::relocation::Stage;
use hotline_proto::case::seal::{CaseEventError, CaseKey};
use hotline_proto::case::{CaseId, CaseState, EventHeader, SignedCaseEvent};
use hotline_proto::identity::{IdentityPublicKey, hex};
use prost::Message;

use super::fields;
use super::model::{self, CaseView, Opened, RequestInfo, WarningKind};
use crate::error::ClientError;
use crate::rosters::RosterBook;
use crate::state::StateDir;

const INDEX_FILE: &str = "index.sealed";
/// Keys received for cases this device does not know yet.
const PENDING_FILE: &str = "pending_keys.sealed";

/// The most keys of cases this device does not know yet kept from one
/// sender; beyond, further ones are ignored (with a warning). A new staff
/// device is sent every key of every case requested or open before its
/// first sync: this leaves room for thousands of cases.
pub const MAX_PENDING_KEYS_PER_SENDER: usize = 20_000;

/// Keys of cases this device does not know yet (no update of them synced):
/// kept in one sealed file, not as cases, until the server lists the case
/// at a sync (docs/protocol.md, section 9.2, "Receiving keys").
#[derive(Clone, PartialEq, Message)]
struct PendingRow {
    #[prost(message, repeated, tag = "1")]
    keys: Vec<PendingKey>,
}

#[derive(Clone, PartialEq, Message)]
struct PendingKey {
    #[prost(bytes = "vec", tag = "1")]
    case_id: Vec<u8>,
    #[prost(uint32, tag = "2")]
    epoch: u32,
    #[prost(bytes = "vec", tag = "3")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    sender: Vec<u8>,
}
/// The replica's directory inside the state directory.
pub const DIR: &str = "cases";

#[derive(Clone, PartialEq, Message)]
struct IndexRow {
    #[prost(uint64, tag = "1")]
    cursor: u64,
    #[prost(uint64, tag = "2")]
    retention_secs: u64,
    #[prost(message, repeated, tag = "3")]
    summaries: Vec<SummaryRow>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    erased: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "5")]
    outbox: Vec<OutboxRow>,
    /// A sync answered: `retention_secs` is the server's.
    #[prost(bool, tag = "6")]
    synced: bool,
    /// The staff devices on the newest roster this replica has handled
    /// (keys: who to send them to when a roster adds staff).
    #[prost(bytes = "vec", repeated, tag = "7")]
    roster_staff: Vec<Vec<u8>>,
    /// `roster_staff` holds a roster's (none handled yet: false).
    #[prost(bool, tag = "8")]
    roster_known: bool,
    /// Cases whose key must be rotated before this device writes to them
    /// again (a staff device left the roster).
    #[prost(message, repeated, tag = "9")]
    rotations: Vec<RotationRow>,
    /// Cases whose erasure was asked for and not confirmed yet.
    #[prost(bytes = "vec", repeated, tag = "10")]
    erasure_requested: Vec<Vec<u8>>,
    /// Case keys another staff device was seen sending to a staff device
    /// that is not on the roster this replica handled yet (a copy of its
    /// CASE_KEYS came here): not sent again when a roster adds it.
    #[prost(message, repeated, tag = "11")]
    keys_sent: Vec<KeySentRow>,
    /// When and by whom erased cases were erased, as this device learnt
    /// it (absent in replicas written before, and for cases erased before).
    #[prost(message, repeated, tag = "20")]
    erasures: Vec<ErasureRow>,
    /// Added with erasures bound to the closing: the signed request of
    /// each case whose erasure waits (what a confirmation signs over).
    #[prost(message, repeated, tag = "21")]
    erasure_requests: Vec<ErasureRequestRow>,
}

/// A signed erasure request this device synced (docs/protocol.md,
/// section 9.7).
#[derive(Clone, PartialEq, Message)]
pub struct ErasureRequestRow {
    /// The case id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub case_id: Vec<u8>,
    /// The staff device that asked (16 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub requested_by: Vec<u8>,
    /// Its step-1 signature (64 bytes).
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
    /// The closing it covers: author, then event id (32 bytes).
    #[prost(bytes = "vec", tag = "4")]
    pub closing: Vec<u8>,
}

/// A signed erasure request, as a confirmation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureRequestInfo {
    /// Who asked.
    pub requested_by: hotline_proto::DeviceId,
    /// The step-1 signature.
    pub signature: hotline_proto::Signature,
    /// The closing it covers.
    pub closing: hotline_proto::case::erasure::Closing,
}

/// An erased case as this device recorded it: what `case show` says of
/// its id once nothing else of it is kept. No content: the id, a server
/// time and two staff device ids.
#[derive(Clone, PartialEq, Message)]
pub struct ErasureRow {
    /// The case id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub case_id: Vec<u8>,
    /// When it was erased (server time; 0: not known).
    #[prost(uint64, tag = "2")]
    pub at: u64,
    /// The staff device that asked for the erasure (empty: not known).
    #[prost(bytes = "vec", tag = "3")]
    pub requested_by: Vec<u8>,
    /// The staff device that confirmed it (empty: not known).
    #[prost(bytes = "vec", tag = "4")]
    pub confirmed_by: Vec<u8>,
    /// The case's reference when this device held it (empty: none, not
    /// held, or recorded before this field): what staff name it by.
    #[prost(string, tag = "5")]
    pub reference: String,
}

/// A case key seen sent to a device by another staff device.
#[derive(Clone, PartialEq, Message)]
pub struct KeySentRow {
    /// The device it was sealed to (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub device_id: Vec<u8>,
    /// The case id (16 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub case_id: Vec<u8>,
    /// The key's epoch.
    #[prost(uint32, tag = "3")]
    pub epoch: u32,
}

/// The most keys seen sent that a replica remembers (beyond, the oldest
/// go: at worst a key is sent once more, which is harmless).
pub const MAX_KEYS_SENT: usize = 100_000;

/// A case whose key must be rotated: the newest epoch when the device
/// left the roster, and the devices that left.
#[derive(Clone, PartialEq, Message)]
pub struct RotationRow {
    /// The case id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub case_id: Vec<u8>,
    /// The case's newest epoch when the roster dropped the devices: a
    /// newer one (rotated by another staff device) settles it.
    #[prost(uint32, tag = "2")]
    pub epoch: u32,
    /// The devices no longer on the roster (16 bytes each).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub removed: Vec<Vec<u8>>,
}

/// What `case list` shows of a case, folded when the case last changed.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryRow {
    /// The case id (16 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub case_id: Vec<u8>,
    /// Its reference (every head's, joined, in a conflict).
    #[prost(string, tag = "2")]
    pub reference: String,
    /// Its summary.
    #[prost(string, tag = "3")]
    pub summary: String,
    /// `CaseState` wire number (0: nothing known yet).
    #[prost(int32, tag = "4")]
    pub state: i32,
    /// Country of origin.
    #[prost(string, tag = "5")]
    pub country: String,
    /// Risk (0: not set or in conflict).
    #[prost(uint64, tag = "6")]
    pub risk: u64,
    /// The current stage number of each relocation (0: in conflict).
    #[prost(bytes = "vec", tag = "7")]
    pub stages: Vec<u8>,
    /// Coordinator device ids.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub coordinators: Vec<Vec<u8>>,
    /// Fields in conflict.
    #[prost(uint32, tag = "9")]
    pub conflicts: u32,
    /// Newest event's server time.
    #[prost(uint64, tag = "10")]
    pub last_at: u64,
    /// When opened (0: not yet).
    #[prost(uint64, tag = "11")]
    pub opened_at: u64,
    /// When closed (0: not closed).
    #[prost(uint64, tag = "12")]
    pub closed_at: u64,
    /// Under a legal hold.
    #[prost(bool, tag = "13")]
    pub legal_hold: bool,
    /// The statistics ledger.
    #[prost(bool, tag = "14")]
    pub ledger: bool,
    /// Events this device cannot read yet.
    #[prost(uint32, tag = "15")]
    pub unreadable: u32,
    /// Warnings.
    #[prost(uint32, tag = "16")]
    pub warnings: u32,
    /// Events written here and not accepted yet.
    #[prost(uint32, tag = "17")]
    pub waiting: u32,
}

impl SummaryRow {
    /// The case id.
    pub fn id(&self) -> Option<CaseId> {
        CaseId::from_slice(&self.case_id, "case_id").ok()
    }

    /// The state.
    pub fn state(&self) -> Option<CaseState> {
        CaseState::from_wire(self.state, "state").ok().flatten()
    }

    fn of(view: &CaseView, waiting: usize) -> SummaryRow {
        let opened_at = view.opened.map_or(0, |o| o.0);
        SummaryRow {
            case_id: view.case_id.as_bytes().to_vec(),
            reference: view.case_text(fields::case_field::REFERENCE),
            summary: summary_of(view),
            state: view.state.map_or(0, CaseState::to_wire),
            country: view.case_text(fields::case_field::COUNTRY),
            risk: view
                .case_value(fields::case_field::RISK)
                .and_then(fields::Value::number)
                .unwrap_or(0),
            stages: view
                .relocations
                .iter()
                .map(|r| view.stage(r).map_or(0, Stage::number))
                .collect(),
            coordinators: view.coordinators(),
            conflicts: u32::try_from(view.conflicts().len()).unwrap_or(u32::MAX),
            last_at: view.last_at,
            opened_at: if opened_at == 0 {
                view.request.as_ref().map_or(0, |r| r.at)
            } else {
                opened_at
            },
            closed_at: view.closed_at.unwrap_or(0),
            legal_hold: view.legal_hold,
            ledger: view.ledger,
            unreadable: u32::try_from(view.unreadable).unwrap_or(u32::MAX),
            warnings: u32::try_from(view.warnings.len()).unwrap_or(u32::MAX),
            waiting: u32::try_from(waiting).unwrap_or(u32::MAX),
        }
    }
}

/// A case's summary; without one, the words of the defender's request it
/// answers (when this device holds them), so that a request reads in the
/// list.
fn summary_of(view: &CaseView) -> String {
    let summary = view.case_text(fields::case_field::SUMMARY);
    if !summary.is_empty() {
        return summary;
    }
    let text = view
        .request
        .as_ref()
        .and_then(|r| r.text.clone())
        .or_else(|| {
            view.opening
                .as_ref()
                .map(|o| o.request_text.clone())
                .filter(|t| !t.is_empty())
        });
    text.map(|t| format!("request: {t}")).unwrap_or_default()
}

/// A case event written here and not accepted by the server yet.
#[derive(Clone, PartialEq, Message)]
pub struct OutboxRow {
    /// The case.
    #[prost(bytes = "vec", tag = "1")]
    pub case_id: Vec<u8>,
    /// The signed event, as sent (`SignedCaseEvent` wire form).
    #[prost(bytes = "vec", tag = "2")]
    pub event: Vec<u8>,
    /// Its content (`CaseEventContent`), to seal it again under a newer
    /// key with the same event id.
    #[prost(bytes = "vec", tag = "3")]
    pub content: Vec<u8>,
    /// When it was written (this device's clock).
    #[prost(uint64, tag = "4")]
    pub written_at: u64,
}

impl OutboxRow {
    /// The signed event.
    pub fn signed(&self) -> Result<SignedCaseEvent, ClientError> {
        SignedCaseEvent::decode(&self.event)
            .map_err(|_| ClientError::State("the case outbox is damaged".into()))
    }

    /// Its content.
    pub fn content(&self) -> Result<CaseEventContent, ClientError> {
        CaseEventContent::decode(self.content.as_slice())
            .map_err(|_| ClientError::State("the case outbox is damaged".into()))
    }
}

#[derive(Clone, PartialEq, Message)]
struct CaseFileRow {
    #[prost(bytes = "vec", tag = "1")]
    case_id: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    updates: Vec<UpdateRow>,
    #[prost(message, repeated, tag = "3")]
    keys: Vec<KeyRow>,
    #[prost(message, optional, tag = "4")]
    request: Option<RequestRow>,
    /// (author || event id) of this device's own events whose server time
    /// is still this device's estimate (set when the server accepted
    /// them; the sync's record of them settles it once).
    #[prost(bytes = "vec", repeated, tag = "5")]
    unsettled: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct UpdateRow {
    #[prost(uint64, tag = "1")]
    position: u64,
    #[prost(uint64, tag = "2")]
    at: u64,
    #[prost(bytes = "vec", tag = "3")]
    event: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    author_key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct KeyRow {
    #[prost(uint32, tag = "1")]
    epoch: u32,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    commitment: Vec<u8>,
    /// The staff device that sent it, for a key of an epoch no event of
    /// which is held yet (empty: drawn here, or kept before senders were).
    #[prost(bytes = "vec", tag = "4")]
    sender: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct RequestRow {
    #[prost(bytes = "vec", tag = "1")]
    defender: Vec<u8>,
    #[prost(uint64, tag = "2")]
    at: u64,
    #[prost(bytes = "vec", tag = "3")]
    digest: Vec<u8>,
    #[prost(string, optional, tag = "4")]
    text: Option<String>,
}

/// An event received, still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its sync position.
    pub position: u64,
    /// When the server accepted it.
    pub at: u64,
    /// The event.
    pub event: SignedCaseEvent,
    /// Its author's identity key, as the server sent it and the roster
    /// confirmed.
    pub author_key: IdentityPublicKey,
}

/// One case as the replica holds it.
#[derive(Debug, Clone)]
pub struct CaseFile {
    /// The case.
    pub case_id: CaseId,
    /// Events received, in position order.
    pub events: Vec<StoredEvent>,
    /// Its keys, by epoch.
    pub keys: BTreeMap<u32, CaseKey>,
    /// The defender's request, if it started as one.
    pub request: Option<RequestInfo>,
    /// (author, event id) of every event in `events`, with the position
    /// and time it was first held with.
    held: BTreeMap<([u8; 16], [u8; 16]), (u64, u64)>,
    /// Own events accepted by the server whose time is an estimate.
    unsettled: std::collections::BTreeSet<([u8; 16], [u8; 16])>,
    /// Other keys received for an epoch of which no event is held yet,
    /// oldest first (`keys` holds the first), each with its sender: the
    /// first event of the epoch says which is the case's
    /// (docs/protocol.md, section 9.2). At most one per sender.
    candidates: BTreeMap<u32, Vec<(Option<DeviceId>, CaseKey)>>,
    /// Who sent the key `keys` holds for an epoch of which no event is
    /// held yet (`None`: drawn here, or not known).
    senders: BTreeMap<u32, Option<DeviceId>>,
}

fn sender_of(bytes: &[u8]) -> Option<DeviceId> {
    <[u8; 16]>::try_from(bytes).ok().map(DeviceId::from_bytes)
}

/// What [`CaseFile::add_checked`] made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// New: added.
    New,
    /// Held already with this position and time: nothing changed.
    Replay,
    /// One of this device's own events, accepted with an estimated time,
    /// coming back from the sync at the position the server answered: its
    /// time is now the server's.
    Settled,
    /// Held already with another position or time: the first is kept and
    /// this one ignored (a server rewriting what it sent).
    Rewritten,
    /// Its header cannot be read: not added.
    Unreadable,
}

fn damaged(what: &str) -> ClientError {
    ClientError::State(format!("the case replica is damaged ({what})"))
}

impl CaseFile {
    /// An empty case.
    pub fn new(case_id: CaseId) -> Self {
        CaseFile {
            case_id,
            events: Vec::new(),
            keys: BTreeMap::new(),
            request: None,
            held: BTreeMap::new(),
            unsettled: Default::default(),
            candidates: BTreeMap::new(),
            senders: BTreeMap::new(),
        }
    }

    fn from_row(row: CaseFileRow) -> Result<Self, ClientError> {
        let case_id =
            CaseId::from_slice(&row.case_id, "case_id").map_err(|_| damaged("case id"))?;
        let mut events = Vec::with_capacity(row.updates.len());
        for u in row.updates {
            events.push(StoredEvent {
                position: u.position,
                at: u.at,
                event: SignedCaseEvent::decode(&u.event).map_err(|_| damaged("event"))?,
                author_key: <[u8; 32]>::try_from(u.author_key.as_slice())
                    .ok()
                    .map(IdentityPublicKey::from_bytes)
                    .ok_or_else(|| damaged("author key"))?,
            });
        }
        let mut keys = BTreeMap::new();
        let mut candidates: BTreeMap<u32, Vec<(Option<DeviceId>, CaseKey)>> = BTreeMap::new();
        let mut senders = BTreeMap::new();
        for k in row.keys {
            let bytes: [u8; 32] = k.key.as_slice().try_into().map_err(|_| damaged("key"))?;
            let sender = sender_of(&k.sender);
            // The first row of an epoch is its key; later ones (rows of
            // the same epoch) are the candidates still waiting.
            match keys.entry(k.epoch) {
                std::collections::btree_map::Entry::Occupied(_) => candidates
                    .entry(k.epoch)
                    .or_default()
                    .push((sender, CaseKey::from_bytes(bytes))),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(CaseKey::from_bytes(bytes));
                    if sender.is_some() {
                        senders.insert(k.epoch, sender);
                    }
                }
            }
        }
        let request = match row.request {
            None => None,
            Some(r) => Some(RequestInfo {
                defender: DeviceId::from_bytes(
                    r.defender
                        .as_slice()
                        .try_into()
                        .map_err(|_| damaged("request"))?,
                ),
                at: r.at,
                envelope_digest: r
                    .digest
                    .as_slice()
                    .try_into()
                    .map_err(|_| damaged("request"))?,
                text: r.text,
            }),
        };
        let mut held = BTreeMap::new();
        for e in &events {
            if let Ok(h) = e.event.header_unverified() {
                held.entry((*e.event.author.as_bytes(), h.event_id))
                    .or_insert((e.position, e.at));
            }
        }
        let mut unsettled = std::collections::BTreeSet::new();
        for u in &row.unsettled {
            let (author, id) = u.split_at(u.len().min(16));
            let (Ok(author), Ok(id)) = (author.try_into(), id.try_into()) else {
                return Err(damaged("unsettled event"));
            };
            unsettled.insert((author, id));
        }
        Ok(CaseFile {
            case_id,
            events,
            keys,
            request,
            held,
            unsettled,
            candidates,
            senders,
        })
    }

    fn to_row(&self) -> CaseFileRow {
        CaseFileRow {
            case_id: self.case_id.as_bytes().to_vec(),
            updates: self
                .events
                .iter()
                .map(|e| UpdateRow {
                    position: e.position,
                    at: e.at,
                    event: e.event.encode(),
                    author_key: e.author_key.as_bytes().to_vec(),
                })
                .collect(),
            keys: self
                .keys
                .iter()
                .map(|(e, k)| (e, self.senders.get(e).copied().flatten(), k))
                .chain(
                    self.candidates
                        .iter()
                        .flat_map(|(e, ks)| ks.iter().map(move |(s, k)| (e, *s, k))),
                )
                .map(|(epoch, sender, k)| KeyRow {
                    epoch: *epoch,
                    key: k.as_bytes().to_vec(),
                    commitment: k.commitment(&self.case_id, *epoch).to_vec(),
                    sender: sender.map(|d| d.as_bytes().to_vec()).unwrap_or_default(),
                })
                .collect(),
            request: self.request.as_ref().map(|r| RequestRow {
                defender: r.defender.as_bytes().to_vec(),
                at: r.at,
                digest: r.envelope_digest.to_vec(),
                text: r.text.clone(),
            }),
            unsettled: self
                .unsettled
                .iter()
                .map(|(a, id)| [a.as_slice(), id.as_slice()].concat())
                .collect(),
        }
    }

    /// Adds an event unless one with its author and id is held (a replay).
    /// Returns whether it was added.
    pub fn add(&mut self, e: StoredEvent) -> bool {
        self.add_checked(e) == Held::New
    }

    /// Adds one of this device's own events that the server accepted at
    /// `e.position`; `e.at` is this device's estimate of the server's
    /// time, which the sync's record of the event settles once.
    pub fn add_accepted(&mut self, e: StoredEvent) -> Held {
        let key = e
            .event
            .header_unverified()
            .ok()
            .map(|h| (*e.event.author.as_bytes(), h.event_id));
        let held = self.add_checked(e);
        if let (Held::New, Some(key)) = (held, key) {
            self.unsettled.insert(key);
        }
        held
    }

    /// Adds an event unless one with its author and id is held. The
    /// position and time an (author, event id) was first held with stay:
    /// a re-send with others is [`Held::Rewritten`] and changes nothing,
    /// except the one settling of an own event's estimated time
    /// ([`Held::Settled`]).
    pub fn add_checked(&mut self, e: StoredEvent) -> Held {
        let Ok(h) = e.event.header_unverified() else {
            return Held::Unreadable;
        };
        let key = (*e.event.author.as_bytes(), h.event_id);
        let Some(first) = self.held.get(&key).copied() else {
            self.settle_key(h.epoch, &h.key_commitment);
            self.held.insert(key, (e.position, e.at));
            self.events.push(e);
            return Held::New;
        };
        if first == (e.position, e.at) {
            self.unsettled.remove(&key);
            return Held::Replay;
        }
        if first.0 != e.position || !self.unsettled.remove(&key) {
            return Held::Rewritten;
        }
        self.held.insert(key, (e.position, e.at));
        if let Some(x) = self.events.iter_mut().find(|x| {
            x.event.author == e.event.author
                && x.event
                    .header_unverified()
                    .is_ok_and(|xh| xh.event_id == h.event_id)
        }) {
            x.at = e.at;
        }
        Held::Settled
    }

    /// The key held for `epoch` whose commitment is `commitment`, among
    /// the epoch's key and its candidates; else the epoch's key (which
    /// then fails the event's check).
    pub fn key_for(&self, epoch: u32, commitment: &[u8; 32]) -> Option<CaseKey> {
        self.candidates
            .get(&epoch)
            .into_iter()
            .flatten()
            .map(|(_, k)| k)
            .chain(self.keys.get(&epoch))
            .find(|k| k.commitment(&self.case_id, epoch) == *commitment)
            .or_else(|| self.keys.get(&epoch))
            .cloned()
    }

    /// Every key held for `epoch`: its key, then the candidates.
    pub fn keys_of(&self, epoch: u32) -> Vec<&CaseKey> {
        self.keys
            .get(&epoch)
            .into_iter()
            .chain(
                self.candidates
                    .get(&epoch)
                    .into_iter()
                    .flatten()
                    .map(|(_, k)| k),
            )
            .collect()
    }

    /// An event of `epoch` committing to `commitment` is held: of several
    /// keys held for the epoch, the one it commits to stays and the others
    /// go. With one key, or none matching, nothing changes.
    fn settle_key(&mut self, epoch: u32, commitment: &[u8; 32]) {
        // Only the epoch's first event decides: a later one committing to
        // another key is ignored by the fold (one key per epoch).
        if !self.candidates.contains_key(&epoch)
            || self
                .events
                .iter()
                .any(|e| e.event.header_unverified().is_ok_and(|h| h.epoch == epoch))
        {
            return;
        }
        let case = self.case_id;
        if let Some(k) = self
            .keys_of(epoch)
            .into_iter()
            .find(|k| k.commitment(&case, epoch) == *commitment)
            .cloned()
        {
            self.keys.insert(epoch, k);
            self.candidates.remove(&epoch);
            self.senders.remove(&epoch);
        }
    }

    /// Drops the key held for `epoch` whose commitment is `commitment`
    /// (this device's own, refused: another key holds the epoch); the
    /// oldest candidate left, if any, becomes the epoch's key.
    pub fn drop_key(&mut self, epoch: u32, commitment: &[u8; 32]) {
        let case = self.case_id;
        let matches = |k: &CaseKey| k.commitment(&case, epoch) == *commitment;
        if let Some(c) = self.candidates.get_mut(&epoch) {
            c.retain(|(_, k)| !matches(k));
        }
        if self.keys.get(&epoch).is_some_and(matches) {
            self.keys.remove(&epoch);
            self.senders.remove(&epoch);
        }
        let next = self.candidates.get_mut(&epoch).and_then(|c| {
            if self.keys.contains_key(&epoch) || c.is_empty() {
                None
            } else {
                Some(c.remove(0))
            }
        });
        if let Some((sender, k)) = next {
            self.keys.insert(epoch, k);
            if sender.is_some() {
                self.senders.insert(epoch, sender);
            }
        }
        if self.candidates.get(&epoch).is_some_and(Vec::is_empty) {
            self.candidates.remove(&epoch);
        }
    }

    /// Makes `key`, drawn by this device to open `epoch`, the epoch's key;
    /// a key held for it before (received from a device that may open the
    /// epoch first) stays as a candidate.
    pub fn take_own_key(&mut self, epoch: u32, key: CaseKey) {
        let sender = self.senders.remove(&epoch).flatten();
        if let Some(old) = self.keys.insert(epoch, key)
            && self.keys.get(&epoch) != Some(&old)
        {
            self.candidates
                .entry(epoch)
                .or_default()
                .insert(0, (sender, old));
        }
    }

    /// Keeps `key`, sent by `sender`, as a key of `epoch` waiting for an
    /// event of it to say which is the case's: at most one per sender (a
    /// sender's newer key replaces its older one), so that no sender can
    /// push out another's. Returns whether it replaced one of the same
    /// sender's.
    fn add_candidate(&mut self, epoch: u32, key: CaseKey, sender: DeviceId) -> bool {
        let sender = Some(sender);
        match self.keys.entry(epoch) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(key);
                self.senders.insert(epoch, sender);
                return false;
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if self.senders.get(&epoch) == Some(&sender) {
                    o.insert(key);
                    return true;
                }
            }
        }
        let c = self.candidates.entry(epoch).or_default();
        let before = c.len();
        c.retain(|(s, _)| *s != sender);
        let replaced = c.len() != before;
        c.push((sender, key));
        replaced
    }

    /// Keeps a key received for `epoch` from `sender` if it is the case's
    /// (docs/protocol.md, section 9.2): the commitment of the case's
    /// events of that epoch decides; with no such event held yet, it is
    /// kept (one per sender) and checked when they come.
    pub fn add_key(&mut self, epoch: u32, key: CaseKey, sender: DeviceId) -> KeyOutcome {
        let committed = self
            .events
            .iter()
            .filter_map(|e| e.event.header_unverified().ok())
            .find(|h| h.epoch == epoch)
            .map(|h| h.key_commitment);
        let mine = key.commitment(&self.case_id, epoch);
        if self.keys_of(epoch).contains(&&key) {
            return KeyOutcome::AlreadyHeld;
        }
        match committed {
            Some(c) if c != mine => KeyOutcome::Mismatch,
            // The events say this one is the case's: it replaces any other
            // held.
            Some(_) => {
                self.keys.insert(epoch, key);
                self.candidates.remove(&epoch);
                self.senders.remove(&epoch);
                KeyOutcome::Kept
            }
            None if !self.keys.contains_key(&epoch) => {
                self.add_candidate(epoch, key, sender);
                KeyOutcome::Kept
            }
            // No event says which is the case's yet: every candidate waits
            // for the first one that does, one per sender.
            None => KeyOutcome::Candidate {
                replaced: self.add_candidate(epoch, key, sender),
            },
        }
    }

    /// The newest epoch this device holds a key for, with its key.
    pub fn newest_key(&self) -> Option<(u32, &CaseKey)> {
        self.keys.iter().next_back().map(|(e, k)| (*e, k))
    }

    /// The epoch this device writes under (docs/protocol.md, section
    /// 9.2): the newest one that an event held, or one of `waiting` (this
    /// device's events not accepted yet, of any case), commits to; 1 when
    /// none does yet. A key received for a later epoch is a candidate
    /// only, never written under: a hostile staff device could send one
    /// for a far-off epoch, which the server refuses ("skips one"). A
    /// device opens the next epoch itself ([`CaseFile::take_own_key`]).
    pub fn write_epoch(&self, waiting: &[OutboxRow]) -> u32 {
        let mine = waiting
            .iter()
            .filter(|w| w.case_id == self.case_id.as_bytes())
            .filter_map(|w| w.signed().ok()?.header_unverified().ok())
            .map(|h| h.epoch)
            .max()
            .unwrap_or(0);
        self.newest_epoch().max(mine).max(1)
    }

    /// The key of [`CaseFile::write_epoch`], if this device holds it.
    pub fn write_key(&self, waiting: &[OutboxRow]) -> Option<(u32, &CaseKey)> {
        let epoch = self.write_epoch(waiting);
        self.keys.get(&epoch).map(|k| (epoch, k))
    }

    /// The newest epoch any held event is sealed under (0: none).
    pub fn newest_epoch(&self) -> u32 {
        self.events
            .iter()
            .filter_map(|e| e.event.header_unverified().ok())
            .map(|h| h.epoch)
            .max()
            .unwrap_or(0)
    }

    /// Opens every event it can and folds them with `waiting` (events
    /// written here, not accepted yet, folded last). Events without a key
    /// are counted; events that fail to open are warnings.
    pub fn view(&self, waiting: &[OutboxRow]) -> CaseView {
        let mut view = self.fold_stored();
        fold_waiting(&mut view, waiting);
        view
    }

    /// The fold of the events received (and the request), without the
    /// events waiting to be sent.
    pub fn fold_stored(&self) -> CaseView {
        let mut view = CaseView::new(self.case_id);
        if let Some(r) = &self.request {
            view.requested(r.clone());
        }
        for e in &self.events {
            let commitment = e.event.header_unverified().map(|h| h.key_commitment);
            let opened = e.event.open(&e.author_key, |_, epoch| match &commitment {
                Ok(c) => self.key_for(epoch, c),
                Err(_) => self.keys.get(&epoch).cloned(),
            });
            fold_one(&mut view, e, opened);
        }
        view
    }
}

/// Folds one received event into `view`, opened (or not) by the caller.
pub fn fold_one(
    view: &mut CaseView,
    e: &StoredEvent,
    opened: Result<(EventHeader, CaseEventContent), CaseEventError>,
) {
    // Signed by its author (a bad signature is a warning of its own):
    // its epoch must not go back, nor bring a second key for an epoch.
    if !matches!(opened, Err(CaseEventError::BadSignature))
        && let Ok(h) = e.event.header_unverified()
        && !view.admit_epoch(h.event_id, h.epoch, &h.key_commitment)
    {
        return;
    }
    match opened {
        Ok((header, content)) => view.apply(&Opened {
            position: e.position,
            at: e.at,
            header,
            content,
        }),
        // Stored only after the readers' checks: its signed header counts.
        Err(CaseEventError::NoKey) => match e.event.header_unverified() {
            Ok(h) => view.sealed(&h, e.at),
            Err(_) => view.unreadable += 1,
        },
        Err(err) => {
            let id = e.event.header_unverified().ok().map(|h| h.event_id);
            view.warn(
                WarningKind::Skipped,
                id,
                format!("an event was skipped: {err}"),
            );
        }
    }
}

/// Folds the case's events waiting to be sent into `view`, after the
/// others.
fn fold_waiting(view: &mut CaseView, waiting: &[OutboxRow]) {
    let case = view.case_id;
    for w in waiting.iter().filter(|w| w.case_id == case.as_bytes()) {
        let (Ok(signed), Ok(content)) = (w.signed(), w.content()) else {
            continue;
        };
        if let Ok(header) = signed.header_unverified() {
            view.apply(&Opened {
                position: model::WAITING,
                at: w.written_at,
                header,
                content,
            });
        }
    }
}

/// What became of a case key received from another staff device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Kept: the case's events of that epoch commit to it, or none is
    /// held yet (checked when they come: an event that does not match is
    /// a warning of its case).
    Kept,
    /// This device held that very key.
    AlreadyHeld,
    /// The case's events of that epoch commit to another key: not kept.
    Mismatch,
    /// Another key is held for that epoch and no event tells which is the
    /// case's yet: both are kept until one does, at most one per sender
    /// (`replaced`: this sender's earlier key for the epoch went).
    Candidate {
        /// The sender had sent another key for the epoch: this newer one
        /// replaced it.
        replaced: bool,
    },
    /// The case was erased: no key of it is kept.
    Erased,
    /// The case is not known here yet: the key waits, outside the cases,
    /// until a sync lists the case.
    Pending,
    /// The case is not known here yet and its sender has
    /// [`MAX_PENDING_KEYS_PER_SENDER`] keys waiting so already: ignored.
    TooMany,
}

/// The replica: the index in memory, case files read on demand.
pub struct Replica {
    dir: StateDir,
    key: [u8; 32],
    index: IndexRow,
    /// Cases folded in this run (received events only), kept so that a
    /// sync folds each new event once instead of refolding its case.
    folded: BTreeMap<CaseId, CaseView>,
    /// `index.erased` as a set.
    erased: std::collections::BTreeSet<CaseId>,
    /// Where each case's row is in `index.summaries`.
    summary_at: BTreeMap<CaseId, usize>,
    /// The staff rosters this device accepted, by version.
    rosters: RosterBook,
    /// The device's state directory (where the roster book is).
    home: StateDir,
    /// The id of the organisation's statistics ledger, when the root is
    /// known.
    ledger: Option<CaseId>,
    /// Keys of cases not known yet (read on first use), and whether they
    /// changed since read.
    pending: Option<(PendingRow, bool)>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").finish_non_exhaustive()
    }
}

fn file_name(case: &CaseId) -> String {
    format!("{}.sealed", hex(case.as_bytes()))
}

impl Replica {
    /// Opens the replica in `state`, sealed under `key` (the device's
    /// storage key); empty if there is none yet.
    pub fn open(state: &StateDir, key: &[u8; 32]) -> Result<Replica, ClientError> {
        let dir = StateDir::new(state.path().join(DIR));
        let index = match dir.load_sealed(INDEX_FILE, key)? {
            None => IndexRow::default(),
            Some(bytes) => IndexRow::decode(bytes.as_slice()).map_err(|_| damaged("index"))?,
        };
        let rosters = RosterBook::load(state, key)?;
        let mut replica = Replica {
            dir,
            key: *key,
            index,
            folded: BTreeMap::new(),
            erased: Default::default(),
            summary_at: BTreeMap::new(),
            rosters,
            home: state.clone(),
            ledger: None,
            pending: None,
        };
        replica.reindex();
        Ok(replica)
    }

    /// Rebuilds the erased set and the summaries' positions from the index.
    fn reindex(&mut self) {
        self.erased = self
            .index
            .erased
            .iter()
            .filter_map(|e| CaseId::from_slice(e, "case_id").ok())
            .collect();
        self.summary_at = self
            .index
            .summaries
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.id()?, i)))
            .collect();
    }

    /// Names the organisation's statistics ledger (from the pinned root):
    /// an erasure of it is never applied.
    pub fn set_ledger(&mut self, ledger: CaseId) {
        self.ledger = Some(ledger);
    }

    /// The statistics ledger's id, when the root is known.
    pub fn ledger(&self) -> Option<CaseId> {
        self.ledger
    }

    /// Remembers a roster this device accepted (saved if new).
    pub fn remember_roster(
        &mut self,
        roster: &hotline_proto::e2e::roster::Roster,
    ) -> Result<(), ClientError> {
        self.rosters.remember(roster, &self.home, &self.key)
    }

    /// The staff rosters this device accepted.
    pub fn rosters(&self) -> &RosterBook {
        &self.rosters
    }

    fn save_index(&self) -> Result<(), ClientError> {
        self.dir
            .save_sealed(INDEX_FILE, &self.key, &self.index.encode_to_vec())
    }

    /// The sync position to ask after.
    pub fn cursor(&self) -> u64 {
        self.index.cursor
    }

    /// The server's retention of closed cases, in seconds, as last said
    /// (`None`: no sync answered yet).
    pub fn retention_secs(&self) -> Option<u64> {
        self.index.synced.then_some(self.index.retention_secs)
    }

    /// Records how far the sync got (saved).
    pub fn set_cursor(&mut self, cursor: u64, retention_secs: u64) -> Result<(), ClientError> {
        self.index.cursor = self.index.cursor.max(cursor);
        self.index.retention_secs = retention_secs;
        self.index.synced = true;
        self.save_index()
    }

    /// The staff devices of the newest roster this replica handled
    /// (`None`: none handled yet).
    pub fn roster_staff(&self) -> Option<Vec<DeviceId>> {
        self.index.roster_known.then(|| {
            self.index
                .roster_staff
                .iter()
                .filter_map(|d| <[u8; 16]>::try_from(d.as_slice()).ok())
                .map(DeviceId::from_bytes)
                .collect()
        })
    }

    /// Records the staff devices of the newest roster handled (saved).
    pub fn set_roster_staff(&mut self, staff: &[DeviceId]) -> Result<(), ClientError> {
        self.index.roster_staff = staff.iter().map(|d| d.as_bytes().to_vec()).collect();
        self.index.roster_known = true;
        self.save_index()
    }

    /// Records that another staff device sent the key of each of `keys`
    /// to each of `devices` (in an envelope the server stored for them, a
    /// copy of which came here), for the devices not on the roster this
    /// replica handled: a roster that adds one of them does not make this
    /// device send those keys again (saved). Nothing before the first
    /// roster is handled (that one sends nothing).
    pub fn record_keys_sent(
        &mut self,
        devices: &[DeviceId],
        keys: &[(CaseId, u32)],
    ) -> Result<(), ClientError> {
        let Some(handled) = self.roster_staff() else {
            return Ok(());
        };
        let mut added = false;
        for d in devices.iter().filter(|d| !handled.contains(d)) {
            for (case, epoch) in keys {
                let row = KeySentRow {
                    device_id: d.as_bytes().to_vec(),
                    case_id: case.as_bytes().to_vec(),
                    epoch: *epoch,
                };
                if !self.index.keys_sent.contains(&row) {
                    self.index.keys_sent.push(row);
                    added = true;
                }
            }
        }
        if !added {
            return Ok(());
        }
        let over = self.index.keys_sent.len().saturating_sub(MAX_KEYS_SENT);
        self.index.keys_sent.drain(..over);
        self.save_index()
    }

    /// The keys another staff device was seen sending to `device`.
    pub fn keys_sent_to(&self, device: &DeviceId) -> std::collections::BTreeSet<(CaseId, u32)> {
        self.index
            .keys_sent
            .iter()
            .filter(|r| r.device_id == device.as_bytes())
            .filter_map(|r| Some((CaseId::from_slice(&r.case_id, "case_id").ok()?, r.epoch)))
            .collect()
    }

    /// Forgets the keys seen sent to `devices` (a roster listing them was
    /// handled): saved if anything went.
    pub fn forget_keys_sent(&mut self, devices: &[DeviceId]) -> Result<(), ClientError> {
        let before = self.index.keys_sent.len();
        self.index
            .keys_sent
            .retain(|r| !devices.iter().any(|d| r.device_id == d.as_bytes()));
        if self.index.keys_sent.len() == before {
            return Ok(());
        }
        self.save_index()
    }

    /// The case's pending rotation, if its key must be rotated before
    /// this device writes to it.
    pub fn rotation(&self, case: &CaseId) -> Option<&RotationRow> {
        self.index
            .rotations
            .iter()
            .find(|r| r.case_id == case.as_bytes())
    }

    /// Marks every case held (not the erased) for a rotation of its key:
    /// `removed` left the roster (saved).
    pub fn mark_rotations(&mut self, removed: &[DeviceId]) -> Result<(), ClientError> {
        let ids: Vec<CaseId> = self.index.summaries.iter().filter_map(|s| s.id()).collect();
        for case in ids {
            let file = self.load(&case)?;
            if file.newest_epoch() == 0 && file.keys.is_empty() {
                continue;
            }
            let epoch = file.write_epoch(&self.index.outbox);
            let id = case.as_bytes().to_vec();
            let at = match self.index.rotations.iter().position(|r| r.case_id == id) {
                Some(i) => i,
                None => {
                    self.index.rotations.push(RotationRow {
                        case_id: id,
                        epoch,
                        removed: Vec::new(),
                    });
                    self.index.rotations.len() - 1
                }
            };
            let row = &mut self.index.rotations[at];
            for d in removed {
                if !row.removed.iter().any(|r| r == d.as_bytes()) {
                    row.removed.push(d.as_bytes().to_vec());
                }
            }
        }
        self.save_index()
    }

    /// The case's rotation is done (by this device or another): saved.
    pub fn rotated(&mut self, case: &CaseId) -> Result<(), ClientError> {
        self.index
            .rotations
            .retain(|r| r.case_id != case.as_bytes());
        self.save_index()
    }

    /// Records that the erasure of `case` was asked for (or, `false`,
    /// that it no longer waits): saved.
    pub fn set_erasure_requested(
        &mut self,
        case: &CaseId,
        waiting: bool,
    ) -> Result<(), ClientError> {
        let id = case.as_bytes().to_vec();
        self.index.erasure_requested.retain(|c| *c != id);
        if waiting && !self.is_erased(case) {
            self.index.erasure_requested.push(id);
        } else {
            self.index.erasure_requests.retain(|r| r.case_id != id);
        }
        self.save_index()
    }

    /// Remembers a signed erasure request of `case` (saved), replacing
    /// one held before.
    pub fn set_erasure_request(
        &mut self,
        case: &CaseId,
        requested_by: hotline_proto::DeviceId,
        signature: hotline_proto::Signature,
        closing: hotline_proto::case::erasure::Closing,
    ) -> Result<(), ClientError> {
        if self.is_erased(case) {
            return Ok(());
        }
        let id = case.as_bytes().to_vec();
        self.index.erasure_requests.retain(|r| r.case_id != id);
        self.index.erasure_requests.push(ErasureRequestRow {
            case_id: id,
            requested_by: requested_by.as_bytes().to_vec(),
            signature: signature.as_bytes().to_vec(),
            closing: closing.to_bytes().to_vec(),
        });
        self.save_index()
    }

    /// The signed erasure request of `case` this device synced, if any.
    pub fn erasure_request(&self, case: &CaseId) -> Option<ErasureRequestInfo> {
        let r = self
            .index
            .erasure_requests
            .iter()
            .find(|r| r.case_id == case.as_bytes())?;
        Some(ErasureRequestInfo {
            requested_by: hotline_proto::DeviceId::from_bytes(
                r.requested_by.as_slice().try_into().ok()?,
            ),
            signature: hotline_proto::Signature::from_bytes(
                r.signature.as_slice().try_into().ok()?,
            ),
            closing: hotline_proto::case::erasure::Closing::from_bytes(
                r.closing.as_slice().try_into().ok()?,
            ),
        })
    }

    /// Whether the erasure of `case` was asked for and waits for a
    /// confirmation.
    pub fn erasure_requested(&self, case: &CaseId) -> bool {
        self.index
            .erasure_requested
            .iter()
            .any(|c| c == case.as_bytes())
    }

    /// Every case's summary.
    pub fn summaries(&self) -> &[SummaryRow] {
        &self.index.summaries
    }

    /// Whether `case` was erased.
    pub fn is_erased(&self, case: &CaseId) -> bool {
        self.erased.contains(case)
    }

    /// The cases erased, each with what this device recorded of its
    /// erasure (`None`: erased before such records were kept).
    pub fn erased_cases(&self) -> Vec<(CaseId, Option<ErasureRow>)> {
        self.erased
            .iter()
            .map(|c| {
                let row = self
                    .index
                    .erasures
                    .iter()
                    .find(|r| r.case_id == c.as_bytes())
                    .cloned();
                (*c, row)
            })
            .collect()
    }

    /// Records when (server time) and by whom (`None`: not known, or not
    /// signed) `case` was erased; an erasure recorded already is kept.
    pub fn record_erasure(
        &mut self,
        case: &CaseId,
        at: u64,
        requested_by: Option<DeviceId>,
        confirmed_by: Option<DeviceId>,
    ) -> Result<(), ClientError> {
        let bytes = |d: Option<DeviceId>| d.map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        if let Some(row) = self
            .index
            .erasures
            .iter_mut()
            .find(|r| r.case_id == case.as_bytes())
        {
            // Kept as recorded; only what the record does not say yet
            // (a row `erase` started with the case's reference) is added.
            if row.at != 0 || !row.requested_by.is_empty() || !row.confirmed_by.is_empty() {
                return Ok(());
            }
            row.at = at;
            row.requested_by = bytes(requested_by);
            row.confirmed_by = bytes(confirmed_by);
            return self.save_index();
        }
        self.index.erasures.push(ErasureRow {
            case_id: case.as_bytes().to_vec(),
            at,
            requested_by: bytes(requested_by),
            confirmed_by: bytes(confirmed_by),
            reference: String::new(),
        });
        self.save_index()
    }

    /// The case's file (empty if none is held).
    pub fn load(&self, case: &CaseId) -> Result<CaseFile, ClientError> {
        match self.dir.load_sealed(&file_name(case), &self.key)? {
            None => Ok(CaseFile::new(*case)),
            Some(bytes) => CaseFile::from_row(
                CaseFileRow::decode(bytes.as_slice()).map_err(|_| damaged("case file"))?,
            ),
        }
    }

    /// Folds a case: its file and its events waiting in the outbox.
    pub fn view(&self, case: &CaseId) -> Result<CaseView, ClientError> {
        Ok(self.load(case)?.view(&self.index.outbox))
    }

    /// Saves a case's file and its refolded summary.
    pub fn save(&mut self, file: &CaseFile) -> Result<CaseView, ClientError> {
        self.write_file(file)?;
        self.folded.remove(&file.case_id);
        self.refresh(file)
    }

    /// Saves several cases' files and refolds their summaries in memory;
    /// the index (summaries and cursor together) is saved by
    /// [`Replica::set_cursor`]. A crash in between leaves the cursor
    /// where it was: the next sync fetches the same updates again, finds
    /// the events held, and refolds the summaries.
    pub fn save_all<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a CaseFile>,
    ) -> Result<(), ClientError> {
        let files: Vec<&CaseFile> = files.into_iter().collect();
        let mut sealed = Vec::with_capacity(files.len());
        for file in &files {
            if self.is_erased(&file.case_id) {
                return Err(ClientError::State("this case was erased".into()));
            }
            sealed.push((file_name(&file.case_id), file.to_row().encode_to_vec()));
        }
        // Written together: their flushes to disk overlap.
        self.dir.save_sealed_many(&self.key, &sealed)?;
        for file in files {
            self.summarise(file);
        }
        // The keys taken into those files leave the keys waiting only now.
        self.save_pending()
    }

    fn write_file(&self, file: &CaseFile) -> Result<(), ClientError> {
        if self.is_erased(&file.case_id) {
            return Err(ClientError::State("this case was erased".into()));
        }
        self.dir.save_sealed(
            &file_name(&file.case_id),
            &self.key,
            &file.to_row().encode_to_vec(),
        )
    }

    /// Refolds a case's summary (after the outbox changed) and saves the
    /// index.
    fn refresh(&mut self, file: &CaseFile) -> Result<CaseView, ClientError> {
        let view = self.summarise(file);
        self.save_index()?;
        Ok(view)
    }

    /// Refolds a case's summary in memory.
    fn summarise(&mut self, file: &CaseFile) -> CaseView {
        let mut view = self.prepare(file).clone();
        fold_waiting(&mut view, &self.index.outbox);
        let waiting = self.waiting(&file.case_id).len();
        let row = SummaryRow::of(&view, waiting);
        match self
            .summary_at
            .get(&file.case_id)
            .and_then(|i| self.index.summaries.get_mut(*i))
        {
            Some(s) => *s = row,
            None => {
                self.summary_at
                    .insert(file.case_id, self.index.summaries.len());
                self.index.summaries.push(row);
            }
        }
        view
    }

    /// The fold of `file`'s received events, folded now unless this run
    /// folded it already; [`Replica::fold_added`] then adds each event
    /// received after.
    pub fn prepare(&mut self, file: &CaseFile) -> &CaseView {
        self.folded
            .entry(file.case_id)
            .or_insert_with(|| file.fold_stored())
    }

    /// Folds an event just added to a case prepared with
    /// [`Replica::prepare`] (opened by the caller, once).
    pub fn fold_added(
        &mut self,
        e: &StoredEvent,
        case: &CaseId,
        opened: Result<(EventHeader, CaseEventContent), CaseEventError>,
    ) {
        if let Some(view) = self.folded.get_mut(case) {
            fold_one(view, e, opened);
        }
    }

    /// Refolds the summary of `case` if it differs from what the case's
    /// file folds to now (keys kept meanwhile through another handle on
    /// the replica, such as the inbox's, or by an older client), and then
    /// saves the index. Returns whether the summary changed.
    pub fn refold_if_stale(&mut self, case: &CaseId) -> Result<bool, ClientError> {
        if self.is_erased(case) {
            return Ok(false);
        }
        let file = self.load(case)?;
        let mut view = file.fold_stored();
        fold_waiting(&mut view, &self.index.outbox);
        let row = SummaryRow::of(&view, self.waiting(case).len());
        let current = self
            .summary_at
            .get(case)
            .and_then(|i| self.index.summaries.get(*i));
        if current == Some(&row) {
            return Ok(false);
        }
        self.folded.remove(case);
        self.refresh(&file)?;
        Ok(true)
    }

    /// [`Replica::refold_if_stale`] for every case whose summary counts
    /// events this device could not read: those its keys may now open.
    /// Returns how many summaries changed.
    pub fn refold_unreadable(&mut self) -> Result<usize, ClientError> {
        let cases: Vec<CaseId> = self
            .index
            .summaries
            .iter()
            .filter(|s| s.unreadable > 0)
            .filter_map(SummaryRow::id)
            .collect();
        let mut changed = 0;
        for c in cases {
            if self.refold_if_stale(&c)? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Forgets this run's fold of `case` (its request changed).
    pub fn unfold(&mut self, case: &CaseId) {
        self.folded.remove(case);
    }

    /// Deletes a case's events, keys and summary, and any of its events
    /// waiting to be sent; remembers that it was erased (with its
    /// reference, when it had one).
    pub fn erase(&mut self, case: &CaseId) -> Result<(), ClientError> {
        self.folded.remove(case);
        self.dir.remove_private(&file_name(case))?;
        let id = case.as_bytes().to_vec();
        // Its reference stays with the erasure record (sealed like the
        // rest of the index): staff who name it so are told it was erased.
        let reference = self
            .index
            .summaries
            .iter()
            .find(|s| s.case_id == id)
            .map(|s| s.reference.clone())
            .unwrap_or_default();
        if !reference.is_empty() {
            match self.index.erasures.iter_mut().find(|r| r.case_id == id) {
                Some(row) => row.reference = reference,
                None => self.index.erasures.push(ErasureRow {
                    case_id: id.clone(),
                    reference,
                    ..Default::default()
                }),
            }
        }
        self.index.summaries.retain(|s| s.case_id != id);
        self.index.outbox.retain(|o| o.case_id != id);
        self.index.rotations.retain(|r| r.case_id != id);
        self.index.erasure_requested.retain(|c| *c != id);
        self.index.erasure_requests.retain(|r| r.case_id != id);
        let (row, dirty) = self.pending_mut()?;
        if row.keys.iter().any(|p| p.case_id == id) {
            row.keys.retain(|p| p.case_id != id);
            *dirty = true;
        }
        self.save_pending()?;
        if self.erased.insert(*case) {
            self.index.erased.push(id);
        }
        self.reindex();
        self.save_index()
    }

    /// Keeps a case key received for `epoch` if it is the case's
    /// (docs/protocol.md, section 9.2): the commitment of the case's events
    /// of that epoch decides; with no such event held yet, it is kept and
    /// checked when they come. `sender`: the staff device that sent it;
    /// of keys waiting for an epoch's first event, one per sender is kept.
    pub fn add_key(
        &mut self,
        case: &CaseId,
        epoch: u32,
        key: CaseKey,
        sender: DeviceId,
    ) -> Result<KeyOutcome, ClientError> {
        if self.is_erased(case) {
            return Ok(KeyOutcome::Erased);
        }
        if !self.knows(case) {
            return self.add_pending(case, epoch, &key, sender);
        }
        let mut file = self.load(case)?;
        let outcome = file.add_key(epoch, key, sender);
        if matches!(outcome, KeyOutcome::Kept | KeyOutcome::Candidate { .. }) {
            self.save(&file)?;
        }
        Ok(outcome)
    }

    /// Whether this device knows `case`: a sync listed it, or it was
    /// written here.
    pub fn knows(&self, case: &CaseId) -> bool {
        self.summary_at.contains_key(case)
    }

    fn pending_mut(&mut self) -> Result<&mut (PendingRow, bool), ClientError> {
        if self.pending.is_none() {
            let row = match self.dir.load_sealed(PENDING_FILE, &self.key)? {
                None => PendingRow::default(),
                Some(bytes) => {
                    PendingRow::decode(bytes.as_slice()).map_err(|_| damaged("keys waiting"))?
                }
            };
            self.pending = Some((row, false));
        }
        Ok(self.pending.get_or_insert_with(Default::default))
    }

    /// Keeps a key of a case not known yet, outside the cases: one per
    /// (case, epoch, sender), at most [`MAX_PENDING_KEYS_PER_SENDER`] per
    /// sender. Saved by [`Replica::save_pending`].
    fn add_pending(
        &mut self,
        case: &CaseId,
        epoch: u32,
        key: &CaseKey,
        sender: DeviceId,
    ) -> Result<KeyOutcome, ClientError> {
        let (row, dirty) = self.pending_mut()?;
        let (c, k, s) = (case.as_bytes(), key.as_bytes(), sender.as_bytes());
        if row
            .keys
            .iter()
            .any(|p| p.case_id == c && p.epoch == epoch && p.key == k)
        {
            return Ok(KeyOutcome::AlreadyHeld);
        }
        if let Some(p) = row
            .keys
            .iter_mut()
            .find(|p| p.case_id == c && p.epoch == epoch && p.sender == s)
        {
            p.key = k.to_vec();
            *dirty = true;
            return Ok(KeyOutcome::Pending);
        }
        if row.keys.iter().filter(|p| p.sender == s).count() >= MAX_PENDING_KEYS_PER_SENDER {
            return Ok(KeyOutcome::TooMany);
        }
        row.keys.push(PendingKey {
            case_id: c.to_vec(),
            epoch,
            key: k.to_vec(),
            sender: s.to_vec(),
        });
        *dirty = true;
        Ok(KeyOutcome::Pending)
    }

    /// Writes the keys of cases not known yet, if they changed.
    pub fn save_pending(&mut self) -> Result<(), ClientError> {
        if let Some((row, dirty)) = &mut self.pending
            && *dirty
        {
            self.dir
                .save_sealed(PENDING_FILE, &self.key, &row.encode_to_vec())?;
            *dirty = false;
        }
        Ok(())
    }

    /// Adds to `file` the keys waiting for its case (a sync lists it now)
    /// and takes them out of the keys waiting (saved with the case files,
    /// after them: [`Replica::save_all`]).
    pub fn take_pending(&mut self, file: &mut CaseFile) -> Result<(), ClientError> {
        let case = file.case_id;
        let (row, dirty) = self.pending_mut()?;
        if !row.keys.iter().any(|p| p.case_id == case.as_bytes()) {
            return Ok(());
        }
        let (mine, rest): (Vec<PendingKey>, Vec<PendingKey>) = std::mem::take(&mut row.keys)
            .into_iter()
            .partition(|p| p.case_id == case.as_bytes());
        row.keys = rest;
        *dirty = true;
        for p in mine {
            let (Ok(key), Some(sender)) =
                (<[u8; 32]>::try_from(p.key.as_slice()), sender_of(&p.sender))
            else {
                continue;
            };
            file.add_key(p.epoch, CaseKey::from_bytes(key), sender);
        }
        Ok(())
    }

    /// Deletes a case whose opening the server refused (it never existed
    /// anywhere else): its file, summary and waiting events. Unlike
    /// [`Replica::erase`], it is not remembered.
    pub fn forget(&mut self, case: &CaseId) -> Result<(), ClientError> {
        self.folded.remove(case);
        self.dir.remove_private(&file_name(case))?;
        let id = case.as_bytes().to_vec();
        self.index.summaries.retain(|s| s.case_id != id);
        self.index.outbox.retain(|o| o.case_id != id);
        self.reindex();
        self.save_index()
    }

    /// The case's events waiting to be sent.
    pub fn waiting(&self, case: &CaseId) -> Vec<&OutboxRow> {
        self.index
            .outbox
            .iter()
            .filter(|o| o.case_id == case.as_bytes())
            .collect()
    }

    /// Every event waiting to be sent, oldest first.
    pub fn outbox(&self) -> &[OutboxRow] {
        &self.index.outbox
    }

    /// Puts an event in the outbox (saved before it is sent) and refolds
    /// its case's summary.
    pub fn queue(&mut self, file: &CaseFile, row: OutboxRow) -> Result<CaseView, ClientError> {
        // The case's file (its key) is on disk before the event that
        // needs it is.
        self.write_file(file)?;
        self.index.outbox.push(row);
        self.refresh(file)
    }

    /// Replaces a waiting event (sealed again under a newer key).
    pub fn replace_waiting(
        &mut self,
        event_id: &[u8; 16],
        row: OutboxRow,
    ) -> Result<(), ClientError> {
        for o in &mut self.index.outbox {
            if o.signed()?
                .header_unverified()
                .is_ok_and(|h| h.event_id == *event_id)
            {
                *o = row;
                break;
            }
        }
        self.save_index()
    }

    /// Removes a waiting event the server refused for good.
    pub fn drop_waiting(&mut self, event_id: &[u8; 16]) -> Result<(), ClientError> {
        self.index.outbox.retain(|o| {
            o.signed()
                .ok()
                .and_then(|s| s.header_unverified().ok())
                .is_none_or(|h| h.event_id != *event_id)
        });
        self.save_index()
    }

    /// Removes a waiting event the server accepted: it is added to its
    /// case's events first (`accepted`: its position and time), so nothing
    /// the server acknowledged leaves the replica.
    pub fn accepted(
        &mut self,
        row: &OutboxRow,
        position: u64,
        at: u64,
        author_key: IdentityPublicKey,
    ) -> Result<(), ClientError> {
        let signed = row.signed()?;
        let case = CaseId::from_slice(&row.case_id, "case_id").map_err(|_| damaged("outbox"))?;
        if self.is_erased(&case) {
            self.index.outbox.retain(|o| o != row);
            return self.save_index();
        }
        let mut file = self.load(&case)?;
        file.add_accepted(StoredEvent {
            position,
            at,
            event: signed,
            author_key,
        });
        file.events.sort_by_key(|e| e.position);
        self.index.outbox.retain(|o| o != row);
        self.save(&file).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::testing::{event, staff};

    #[test]
    fn a_case_survives_a_reopen_and_its_summary_is_in_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let key = [4u8; 32];
        let case = CaseId::from_bytes([1; 16]);
        let (me, ck) = (staff(1), CaseKey::from_bytes([2; 32]));
        let mut r = Replica::open(&state, &key).expect("open");
        assert_eq!(r.retention_secs(), None);
        let mut file = CaseFile::new(case);
        file.keys.insert(1, ck.clone());
        let e = event(&me, &ck, case, [5; 16], 1, Some(CaseState::Open), |c| {
            c.changes
                .push(crate::cases::testing::set_text(2, "a summary", &[]));
        });
        assert!(file.add(StoredEvent {
            position: 1,
            at: 10,
            event: e.clone(),
            author_key: me.public_key(),
        }));
        assert!(!file.add(StoredEvent {
            position: 2,
            at: 10,
            event: e,
            author_key: me.public_key(),
        }));
        r.save(&file).expect("save");
        r.set_cursor(1, 86_400).expect("cursor");
        let r = Replica::open(&state, &key).expect("reopen");
        assert_eq!(r.cursor(), 1);
        assert_eq!(r.retention_secs(), Some(86_400));
        assert_eq!(r.summaries().len(), 1);
        assert_eq!(r.summaries()[0].summary, "a summary");
        assert_eq!(r.summaries()[0].state(), Some(CaseState::Open));
        let v = r.view(&case).expect("view");
        assert_eq!(v.case_text(fields::case_field::SUMMARY), "a summary");
        // Nothing readable on disk.
        for f in std::fs::read_dir(dir.path().join(DIR)).expect("dir") {
            let bytes = std::fs::read(f.expect("entry").path()).expect("read");
            assert!(!bytes.windows(9).any(|w| w == b"a summary"));
        }
        // The wrong storage key opens nothing.
        assert!(Replica::open(&state, &[5u8; 32]).is_err());
    }

    #[test]
    fn events_without_their_key_are_counted_and_wrong_keys_warned() {
        let case = CaseId::from_bytes([1; 16]);
        let me = staff(1);
        let ck = CaseKey::from_bytes([2; 32]);
        let mut file = CaseFile::new(case);
        let e = event(&me, &ck, case, [5; 16], 1, Some(CaseState::Open), |_| {});
        file.add(StoredEvent {
            position: 1,
            at: 1,
            event: e,
            author_key: me.public_key(),
        });
        assert_eq!(file.view(&[]).unreadable, 1);
        file.keys.insert(1, CaseKey::from_bytes([3; 32]));
        let v = file.view(&[]);
        assert_eq!(v.unreadable, 0);
        assert_eq!(v.warnings[0].kind, WarningKind::Skipped);
        file.keys.insert(1, ck);
        assert_eq!(file.view(&[]).state, Some(CaseState::Open));
    }

    #[test]
    fn erasing_a_case_deletes_its_file_summary_and_waiting_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let key = [4u8; 32];
        let case = CaseId::from_bytes([1; 16]);
        let me = staff(1);
        let ck = CaseKey::from_bytes([2; 32]);
        let mut r = Replica::open(&state, &key).expect("open");
        let mut file = CaseFile::new(case);
        file.keys.insert(1, ck.clone());
        r.save(&file).expect("save");
        let e = event(&me, &ck, case, [6; 16], 1, None, |c| {
            c.note = "later".into()
        });
        r.queue(
            &file,
            OutboxRow {
                case_id: case.as_bytes().to_vec(),
                event: e.encode(),
                content: CaseEventContent::default().encode_to_vec(),
                written_at: 1,
            },
        )
        .expect("queue");
        assert!(dir.path().join(DIR).join(file_name(&case)).exists());
        r.erase(&case).expect("erase");
        assert!(!dir.path().join(DIR).join(file_name(&case)).exists());
        let r = Replica::open(&state, &key).expect("reopen");
        assert!(r.summaries().is_empty());
        assert!(r.outbox().is_empty());
        assert!(r.is_erased(&case));
        assert!(r.load(&case).expect("load").keys.is_empty());
    }

    /// Walk-through 3 (WA6): an erased case's reference stays in this
    /// device's sealed erasure record, with when and by whom; a record
    /// written before the field decodes with no reference.
    #[test]
    fn an_erased_cases_reference_is_kept_with_its_erasure_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let key = [4u8; 32];
        let case = CaseId::from_bytes([1; 16]);
        let mut r = Replica::open(&state, &key).expect("open");
        r.index.summaries.push(SummaryRow {
            case_id: case.as_bytes().to_vec(),
            reference: "C-2026-0070".into(),
            ..Default::default()
        });
        r.reindex();
        r.erase(&case).expect("erase");
        let by = staff(1).device_id();
        r.record_erasure(&case, 77, Some(by), None)
            .expect("recorded");
        let r = Replica::open(&state, &key).expect("reopen");
        let rows = r.erased_cases();
        let row = rows[0].1.clone().expect("a record");
        assert_eq!(row.reference, "C-2026-0070");
        assert_eq!(row.at, 77);
        assert_eq!(row.requested_by, by.as_bytes().to_vec());
        // The form written before: fields 1-4 only.
        let old = ErasureRow {
            case_id: vec![1; 16],
            at: 5,
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(
            ErasureRow::decode(old.as_slice())
                .expect("decodes")
                .reference,
            ""
        );
    }

    #[test]
    fn a_received_key_is_kept_only_if_the_events_of_its_epoch_commit_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut r = Replica::open(&state, &[4u8; 32]).expect("open");
        let case = CaseId::from_bytes([1; 16]);
        let me = staff(1);
        let (right, wrong) = (CaseKey::from_bytes([2; 32]), CaseKey::from_bytes([3; 32]));
        let (opener, hostile) = (DeviceId::from_bytes([8; 16]), DeviceId::from_bytes([9; 16]));
        // A case a sync listed.
        r.save(&CaseFile::new(case)).expect("known");
        // No event yet: a bogus key first, then the real one; both are kept
        // (also across a reopen).
        assert_eq!(
            r.add_key(&case, 1, wrong.clone(), hostile).expect("add"),
            KeyOutcome::Kept
        );
        assert_eq!(
            r.add_key(&case, 1, wrong.clone(), hostile).expect("add"),
            KeyOutcome::AlreadyHeld
        );
        assert_eq!(
            r.add_key(&case, 1, right.clone(), opener).expect("add"),
            KeyOutcome::Candidate { replaced: false }
        );
        assert_eq!(
            r.add_key(&case, 1, right.clone(), opener).expect("add"),
            KeyOutcome::AlreadyHeld
        );
        let mut r = Replica::open(&state, &[4u8; 32]).expect("reopen");
        assert_eq!(r.load(&case).expect("load").keys_of(1).len(), 2);
        // An event of epoch 1 under the real key arrives: it reads, and the
        // bogus key goes.
        let mut file = r.load(&case).expect("load");
        file.add(StoredEvent {
            position: 1,
            at: 1,
            event: event(&me, &right, case, [5; 16], 1, Some(CaseState::Open), |_| {}),
            author_key: me.public_key(),
        });
        let v = r.save(&file).expect("save");
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(v.state, Some(CaseState::Open));
        assert_eq!(r.load(&case).expect("load").keys_of(1), [&right]);
        assert_eq!(
            r.add_key(&case, 1, CaseKey::from_bytes([6; 32]), hostile)
                .expect("add"),
            KeyOutcome::Mismatch
        );
        assert_eq!(
            r.add_key(&case, 1, right.clone(), opener).expect("add"),
            KeyOutcome::AlreadyHeld
        );
        assert_eq!(r.view(&case).expect("view").state, Some(CaseState::Open));
        // An erased case takes no key back.
        r.erase(&case).expect("erase");
        assert_eq!(
            r.add_key(&case, 1, wrong, hostile).expect("add"),
            KeyOutcome::Erased
        );
        assert!(!dir.path().join(DIR).join(file_name(&case)).exists());
    }

    #[test]
    fn one_sender_cannot_push_out_another_senders_key_for_an_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut r = Replica::open(&state, &[4u8; 32]).expect("open");
        let case = CaseId::from_bytes([1; 16]);
        let me = staff(1);
        let key = |n: u8| CaseKey::from_bytes([n; 32]);
        let (opener, hostile) = (DeviceId::from_bytes([8; 16]), DeviceId::from_bytes([9; 16]));
        // A case a sync listed.
        r.save(&CaseFile::new(case)).expect("known");
        // The real key comes first; then a hostile staff device sends
        // twelve others, before any event of the epoch is held.
        assert_eq!(
            r.add_key(&case, 2, key(10), opener).expect("add"),
            KeyOutcome::Kept
        );
        assert_eq!(
            r.add_key(&case, 2, key(11), hostile).expect("add"),
            KeyOutcome::Candidate { replaced: false }
        );
        for n in 12..23 {
            assert_eq!(
                r.add_key(&case, 2, key(n), hostile).expect("add"),
                KeyOutcome::Candidate { replaced: true }
            );
        }
        // One key per sender: the real one stays (also across a reopen),
        // and the hostile sender's newest.
        let r = Replica::open(&state, &[4u8; 32]).expect("reopen");
        let file = r.load(&case).expect("load");
        assert_eq!(file.keys_of(2), [&key(10), &key(22)]);
        // The epoch's event, under the real key, reads.
        let mut file = file;
        file.keys.insert(1, key(1));
        file.add(StoredEvent {
            position: 2,
            at: 1,
            event: event(&me, &key(10), case, [5; 16], 2, None, |c| {
                c.note = "under the real key".into()
            }),
            author_key: me.public_key(),
        });
        assert_eq!(file.keys_of(2), [&key(10)]);
        let v = file.view(&[]);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(v.unreadable, 0);
        // The same sender sending its key again for an epoch it sent one
        // for replaces its own, never another's: the real key, sent
        // first by the opener, then a hostile key in the first place.
        let mut r = Replica::open(&state, &[4u8; 32]).expect("reopen");
        let other = CaseId::from_bytes([2; 16]);
        r.save(&CaseFile::new(other)).expect("known");
        r.add_key(&other, 1, key(30), hostile).expect("add");
        r.add_key(&other, 1, key(31), opener).expect("add");
        r.add_key(&other, 1, key(32), hostile).expect("add");
        assert_eq!(
            r.load(&other).expect("load").keys_of(1),
            [&key(32), &key(31)]
        );
    }

    #[test]
    fn an_event_under_an_older_epoch_or_a_second_key_of_an_epoch_is_ignored_with_a_warning() {
        let case = CaseId::from_bytes([1; 16]);
        let (me, dropped) = (staff(1), staff(2));
        let key = |n: u8| CaseKey::from_bytes([n; 32]);
        let mut file = CaseFile::new(case);
        for (e, k) in [(1, key(1)), (2, key(2))] {
            file.keys.insert(e, k);
        }
        let mut position = 0;
        let mut add =
            |file: &mut CaseFile, author: &hotline_proto::IdentityKeyPair, k, epoch, note: &str| {
                position += 1;
                let note = note.to_owned();
                file.add(StoredEvent {
                    position,
                    at: position,
                    event: event(
                        author,
                        &k,
                        case,
                        [position as u8; 16],
                        epoch,
                        (position == 1).then_some(CaseState::Open),
                        |c| c.note = note,
                    ),
                    author_key: author.public_key(),
                });
            };
        add(&mut file, &me, key(1), 1, "one");
        add(&mut file, &me, key(2), 2, "two");
        // Injected (a dropped device and a server that broke the rules):
        // under epoch 1 after epoch 2 opened, and under a second key of
        // epoch 2 (one this device holds as a candidate, so it would open).
        add(&mut file, &dropped, key(1), 1, "back-dated");
        file.candidates.insert(2, vec![(None, key(9))]);
        add(&mut file, &dropped, key(9), 2, "second key");
        add(&mut file, &me, key(2), 2, "three");
        let v = file.view(&[]);
        let notes: Vec<&str> = v.timeline.iter().map(|t| t.what.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("three")), "{notes:?}");
        assert!(!notes.iter().any(|n| n.contains("back-dated")), "{notes:?}");
        assert!(!notes.iter().any(|n| n.contains("second key")), "{notes:?}");
        let warnings: Vec<&str> = v.warnings.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("older than epoch 2"), "{warnings:?}");
        assert!(warnings[1].contains("an epoch has one key"), "{warnings:?}");
        assert_eq!(v.unreadable, 0);
    }
}
