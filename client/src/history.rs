//! The message history a device keeps: every message it received and
//! opened, and every message and SOS it sent, so that a message does not
//! vanish once it has been shown. It lives in `messages.sealed`, sealed
//! under the device's storage key like the rest of its state (see
//! [`crate::messenger`]), and holds the newest [`MAX_ENTRIES`] entries.
//!
//! Entries are kept in the order this device learnt of them, never by the
//! server's ids (which are opaque to a device).

use hotline_proto::alert::Priority;
use hotline_proto::case::CaseId;
use hotline_proto::e2e::content::{Category, CheckinOffer, Kind, Message, Programme};
use hotline_proto::{DeviceId, Role};
use prost::Message as _;

use crate::error::ClientError;

/// How many entries are kept; the oldest go first.
pub const MAX_ENTRIES: usize = 5_000;

/// One message in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The message id inside the envelope (random, chosen by its sender).
    pub message_id: [u8; 16],
    /// This device sent it (else it received it).
    pub sent: bool,
    /// Received: the sender. Sent: the one device it also went to, if any
    /// (besides the staff on the roster).
    pub peer: Option<DeviceId>,
    /// Received: the sender's role on the roster (`None`: not on it, a
    /// defender).
    pub sender_role: Option<Role>,
    /// The sender's clock when it was sent.
    pub timestamp: u64,
    /// The alert whose thread it belongs to (0: none).
    pub thread: u64,
    /// What it says (kind, an SOS's category and priority, text, language).
    pub message: Message,
    /// The server's id: the inbox id of a message received, the id of a
    /// message sent, the message id of an SOS's alert.
    pub server_id: u64,
    /// It is an SOS (the text an alert was raised with).
    pub sos: bool,
    /// It has been shown to the person (by `inbox`, `messages` or `watch`).
    pub shown: bool,
    /// Received: signed by the sender's panic key (an SOS sent without the
    /// passphrase: whoever held the phone could have sent it).
    pub via_panic_key: bool,
    /// The envelope's digest ([`hotline_proto::e2e::envelope::SignedEnvelope::digest`]),
    /// kept for received envelopes and sent case requests: how a staff
    /// device finds the words of a defender's request a case names
    /// (`None`: not kept, as in entries written before).
    pub digest: Option<[u8; 32]>,
    /// A case request this device sent: the case the server opened for
    /// it (what the team shares about that case answers it).
    pub request_case: Option<CaseId>,
}

/// The history as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: Vec<Entry>,
}

/// An entry as stored. Fields 12-15 came with the content message; a
/// row without them (kind 0) was written before, with the text, and an
/// SOS's category line, in `body`, and reads as the old form.
#[derive(Clone, PartialEq, prost::Message)]
struct EntryRow {
    #[prost(bytes = "vec", tag = "1")]
    message_id: Vec<u8>,
    #[prost(bool, tag = "2")]
    sent: bool,
    #[prost(bytes = "vec", tag = "3")]
    peer: Vec<u8>,
    /// The sender's role ("" : not on the roster).
    #[prost(string, tag = "4")]
    role: String,
    #[prost(uint64, tag = "5")]
    timestamp: u64,
    #[prost(uint64, tag = "6")]
    thread: u64,
    #[prost(bytes = "vec", tag = "7")]
    body: Vec<u8>,
    #[prost(uint64, tag = "8")]
    server_id: u64,
    #[prost(bool, tag = "9")]
    sos: bool,
    #[prost(bool, tag = "10")]
    shown: bool,
    #[prost(bool, tag = "11")]
    via_panic_key: bool,
    /// `ContentKind` (0: the old form, see above).
    #[prost(int32, tag = "12")]
    kind: i32,
    /// `SosCategory` (0: none).
    #[prost(int32, tag = "13")]
    category: i32,
    /// `Priority` (0: none).
    #[prost(int32, tag = "14")]
    priority: i32,
    #[prost(string, tag = "15")]
    language: String,
    /// Fields 16-20 came with cases (absent in rows written before, and
    /// in rows of kinds without them): the case of a share or a reply.
    #[prost(bytes = "vec", tag = "16")]
    case_id: Vec<u8>,
    /// A case request's `CaseProgramme` (0: none).
    #[prost(int32, tag = "17")]
    programme: i32,
    /// A share's check-in offer: interval (0: no offer) and grace.
    #[prost(uint64, tag = "18")]
    offer_interval: u64,
    #[prost(uint64, tag = "19")]
    offer_grace: u64,
    /// The envelope's digest (empty: not kept).
    #[prost(bytes = "vec", tag = "20")]
    digest: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HistoryFile {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<EntryRow>,
}

impl History {
    /// Reads the stored form.
    pub(crate) fn decode(bytes: &[u8]) -> Result<History, ClientError> {
        let damaged = || ClientError::State("messages.sealed is damaged".into());
        let file = HistoryFile::decode(bytes).map_err(|_| damaged())?;
        let mut entries = Vec::with_capacity(file.entries.len());
        for row in file.entries {
            entries.push(Entry {
                message_id: row
                    .message_id
                    .as_slice()
                    .try_into()
                    .map_err(|_| damaged())?,
                sent: row.sent,
                peer: match row.peer.len() {
                    0 => None,
                    _ => Some(DeviceId::from_bytes(
                        row.peer.as_slice().try_into().map_err(|_| damaged())?,
                    )),
                },
                sender_role: match row.role.as_str() {
                    "" => None,
                    r => Some(r.parse().map_err(|_| damaged())?),
                },
                timestamp: row.timestamp,
                thread: row.thread,
                message: message_of(&row),
                server_id: row.server_id,
                sos: row.sos,
                shown: row.shown,
                via_panic_key: row.via_panic_key,
                request_case: match (row.kind, row.case_id.len()) {
                    (4, 16) => CaseId::from_slice(&row.case_id, "case_id").ok(),
                    _ => None,
                },
                digest: match row.digest.len() {
                    0 => None,
                    _ => Some(row.digest.as_slice().try_into().map_err(|_| damaged())?),
                },
            });
        }
        Ok(History { entries })
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        HistoryFile {
            entries: self
                .entries
                .iter()
                .map(|e| EntryRow {
                    message_id: e.message_id.to_vec(),
                    sent: e.sent,
                    peer: e.peer.map(|p| p.as_bytes().to_vec()).unwrap_or_default(),
                    role: e.sender_role.map(|r| r.to_string()).unwrap_or_default(),
                    timestamp: e.timestamp,
                    thread: e.thread,
                    body: e.message.text.as_bytes().to_vec(),
                    server_id: e.server_id,
                    sos: e.sos,
                    shown: e.shown,
                    via_panic_key: e.via_panic_key,
                    // Never 0, which would read back as the old form.
                    kind: e.message.kind.code(),
                    category: e.message.category.map_or(0, Category::code),
                    priority: match e.message.priority {
                        None => 0,
                        Some(Priority::Immediate) => 1,
                        Some(Priority::Urgent) => 2,
                        Some(Priority::Routine) => 3,
                    },
                    language: e.message.language.clone(),
                    digest: e.digest.map(|d| d.to_vec()).unwrap_or_default(),
                    ..case_fields(&e.message.kind, e.request_case)
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Adds `entry`, unless the same message (same direction and id) is
    /// held already: a message recorded twice (a retry after a crash)
    /// shows once.
    pub(crate) fn add(&mut self, entry: Entry) {
        if self
            .entries
            .iter()
            .any(|e| e.sent == entry.sent && e.message_id == entry.message_id)
        {
            return;
        }
        self.entries.push(entry);
        if self.entries.len() > MAX_ENTRIES {
            let extra = self.entries.len() - MAX_ENTRIES;
            self.entries.drain(..extra);
        }
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries of the thread of `alert`, oldest first.
    pub fn thread(&self, alert: u64) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.thread == alert).collect()
    }

    /// Marks the received messages with these ids as shown; returns how
    /// many changed.
    pub(crate) fn mark_shown(&mut self, ids: &[[u8; 16]]) -> usize {
        let mut n = 0;
        for e in &mut self.entries {
            if !e.sent && !e.shown && ids.contains(&e.message_id) {
                e.shown = true;
                n += 1;
            }
        }
        n
    }

    /// Files a received message outside any thread whose inbox id is
    /// `envelope_id` (the text an alert was raised with, as staff receive
    /// it) in the thread of `alert`; returns whether one was.
    pub(crate) fn link(&mut self, envelope_id: u64, alert: u64) -> bool {
        let mut changed = false;
        for e in &mut self.entries {
            if !e.sent && e.thread == 0 && envelope_id != 0 && e.server_id == envelope_id {
                e.thread = alert;
                e.sos = true;
                changed = true;
            }
        }
        changed
    }
}

/// The case fields (16-19) of a row (a request's field 16: the case the
/// server opened for it) holding a content of `kind`.
fn case_fields(kind: &Kind, request_case: Option<CaseId>) -> EntryRow {
    let mut row = EntryRow::default();
    match kind {
        Kind::CaseRequest { programme } => {
            row.programme = programme.code();
            row.case_id = request_case
                .map(|c| c.as_bytes().to_vec())
                .unwrap_or_default();
        }
        Kind::CaseShare {
            case_id,
            checkin_offer,
        } => {
            row.case_id = case_id.as_bytes().to_vec();
            if let Some(o) = checkin_offer {
                row.offer_interval = o.interval_secs;
                row.offer_grace = o.grace_secs;
            }
        }
        Kind::CaseReply { case_id } => row.case_id = case_id.as_bytes().to_vec(),
        Kind::Sos | Kind::Message | Kind::CaseKeys(_) | Kind::Unknown(_) => {}
    }
    row
}

/// The kind of a stored row whose `kind` is not 0, with its case fields
/// (16-19). A case kind whose fields do not read (only a damaged file
/// holds one) reads as a kind this version does not know, never lost.
/// Case keys are never kept in the history: a row of that kind reads
/// as unknown.
fn kind_of(row: &EntryRow) -> Kind {
    let case_id = || CaseId::from_slice(&row.case_id, "case_id").ok();
    let n = row.kind;
    let known = match n {
        1 => Some(Kind::Sos),
        2 => Some(Kind::Message),
        4 => Programme::from_code(row.programme).map(|programme| Kind::CaseRequest { programme }),
        5 => case_id().map(|case_id| Kind::CaseShare {
            case_id,
            checkin_offer: (row.offer_interval > 0).then_some(CheckinOffer {
                interval_secs: row.offer_interval,
                grace_secs: row.offer_grace,
            }),
        }),
        6 => case_id().map(|case_id| Kind::CaseReply { case_id }),
        _ => None,
    };
    known.unwrap_or(Kind::Unknown(n))
}

impl History {
    /// Removes from the history what an erased case leaves in it: the
    /// defender's replies (CASE_REPLY) and the items shared with them
    /// (CASE_SHARE) that name `case`, and the defender's request
    /// (CASE_REQUEST) that `is_request` picks (a request names no case:
    /// the case names its envelope's digest, `RequestInfo::envelope_digest`,
    /// which the sync reports in `SyncReport::erased_requests`). Returns
    /// how many entries went; the caller saves the history.
    ///
    /// An entry matches only while its kind is whole: rows stored before
    /// the history kept case kinds read back as kinds this version does not
    /// know, and are not matched.
    pub fn remove_case_texts(
        &mut self,
        case: &hotline_proto::case::CaseId,
        is_request: impl Fn(&Entry) -> bool,
    ) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| match &e.message.kind {
            Kind::CaseReply { case_id } | Kind::CaseShare { case_id, .. } => case_id != case,
            Kind::CaseRequest { .. } => !is_request(e),
            _ => true,
        });
        before - self.entries.len()
    }
}

/// The message of a stored row: fields 12-19 and the text in `body`, or
/// the old form when `kind` is 0.
fn message_of(row: &EntryRow) -> Message {
    if row.kind == 0 {
        return Message::from_old_body(&row.body);
    }
    Message {
        kind: kind_of(row),
        category: Category::from_code(row.category),
        priority: match row.priority {
            1 => Some(Priority::Immediate),
            2 => Some(Priority::Urgent),
            3 => Some(Priority::Routine),
            _ => None,
        },
        text: String::from_utf8_lossy(&row.body).into_owned(),
        language: row.language.clone(),
    }
}

/// What the fuzz targets read `messages.sealed` with: [`History::decode`],
/// and the bytes the device would write back.
#[doc(hidden)]
pub fn fuzz_history_file(plain: &[u8]) -> Result<Vec<u8>, ClientError> {
    History::decode(plain).map(|h| h.encode())
}

/// The bytes of a history holding `entries`, added as the device adds
/// them: seeds for the fuzz targets.
#[doc(hidden)]
pub fn fuzz_encode_history(entries: Vec<Entry>) -> Vec<u8> {
    let mut h = History::default();
    for e in entries {
        h.add(e);
    }
    h.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erased_cases_replies_shares_and_request_leave_the_history() {
        use hotline_proto::case::CaseId;
        use hotline_proto::e2e::content::Programme;
        let (case, other) = (CaseId::from_bytes([1; 16]), CaseId::from_bytes([2; 16]));
        let mut h = History::default();
        let with = |n: u8, kind: Kind| {
            let mut e = entry(n, false);
            e.message.kind = kind;
            e
        };
        h.add(entry(1, false));
        h.add(with(2, Kind::CaseReply { case_id: case }));
        h.add(with(
            3,
            Kind::CaseShare {
                case_id: case,
                checkin_offer: None,
            },
        ));
        h.add(with(4, Kind::CaseReply { case_id: other }));
        let programme = Programme::Legal;
        h.add(with(5, Kind::CaseRequest { programme }));
        h.add(with(6, Kind::CaseRequest { programme }));
        assert_eq!(h.remove_case_texts(&case, |e| e.message_id == [5; 16]), 3);
        let left: Vec<u8> = h.entries().iter().map(|e| e.message_id[0]).collect();
        assert_eq!(left, [1, 4, 6]);
    }

    fn entry(n: u8, sent: bool) -> Entry {
        Entry {
            message_id: [n; 16],
            sent,
            peer: Some(DeviceId::from_bytes([7; 16])),
            sender_role: (!sent).then_some(Role::Officer),
            timestamp: 1000 + u64::from(n),
            thread: u64::from(n % 2),
            message: Message {
                kind: if n.is_multiple_of(3) {
                    Kind::Sos
                } else {
                    Kind::Message
                },
                category: (n.is_multiple_of(3)).then_some(Category::Unknown(40 + i32::from(n))),
                priority: (n.is_multiple_of(3)).then_some(Priority::Urgent),
                text: format!("text {n}"),
                language: "fr".into(),
            },
            server_id: u64::from(n) * 10,
            sos: false,
            via_panic_key: false,
            shown: false,
            digest: None,
            request_case: None,
        }
    }

    #[test]
    fn a_history_reads_back_as_written_and_holds_each_message_once() {
        let mut h = History::default();
        h.add(entry(1, false));
        h.add(entry(2, true));
        h.add(entry(1, false)); // recorded again after a crash
        h.add(entry(1, true)); // the same id, the other way: another message
        assert_eq!(h.entries().len(), 3);
        assert_eq!(h.mark_shown(&[[1; 16]]), 1);
        assert!(!h.link(20, 99), "a sent message is not linked");
        let back = History::decode(&h.encode()).expect("reads back");
        assert_eq!(back, h);
        assert_eq!(back.thread(1).len(), 2);
        assert!(back.entries()[0].shown);
        assert!(History::decode(&[0xff, 0xff]).is_err());
        let mut h = History::default();
        h.add(entry(3, false));
        assert_eq!(History::decode(&h.encode()).expect("reads back"), h);
    }

    /// A history written before the content message (no fields 12-15,
    /// an SOS's category on the first line of its body) still reads: the
    /// SOS with its category, the message as it was.
    #[test]
    fn a_history_of_the_old_form_reads_with_its_categories() {
        let old = HistoryFile {
            entries: vec![
                EntryRow {
                    message_id: vec![1; 16],
                    body: b"category: arrest\nthey took him".to_vec(),
                    sos: true,
                    ..Default::default()
                },
                EntryRow {
                    message_id: vec![2; 16],
                    body: b"we are on it".to_vec(),
                    ..Default::default()
                },
            ],
        }
        .encode_to_vec();
        let h = History::decode(&old).expect("reads");
        let sos = &h.entries()[0].message;
        assert_eq!(
            (&sos.kind, sos.category, sos.text.as_str()),
            (&Kind::Sos, Some(Category::Arrest), "they took him")
        );
        let reply = &h.entries()[1].message;
        assert_eq!(
            (&reply.kind, reply.text.as_str()),
            (&Kind::Message, "we are on it")
        );
    }

    /// The stored form, spelled out: devices keep histories written by
    /// earlier versions, so it must not change. Rows written before the
    /// content message (no fields 12-15) read as the old form, and are
    /// written back as they were, the kind of content added after.
    #[test]
    fn the_stored_form_does_not_change() {
        let old = concat!(
            "0a39",
            "0a1001010101010101010101010101010101",
            "1a1007070707070707070707070707070707",
            "22076f666669636572",
            "28e907",
            "3001",
            "3a03010101",
            "400a",
            "0a22",
            "0a1002020202020202020202020202020202",
            "1001",
            "28ea07",
            "3a03020202",
            "4014",
            "4801",
            "5001",
        );
        let h = History::decode(&hotline_proto::identity::unhex(old).expect("hex")).expect("reads");
        let mut first = entry(1, false);
        first.message = Message::from_old_body(&[1, 1, 1]);
        let mut sent = entry(2, true);
        sent.peer = None;
        sent.sos = true;
        sent.shown = true;
        sent.sender_role = None;
        sent.message = Message::from_old_body(&[2, 2, 2]);
        assert_eq!(h.entries(), &[first, sent]);
        let expected = concat!(
            "0a3b",
            "0a1001010101010101010101010101010101",
            "1a1007070707070707070707070707070707",
            "22076f666669636572",
            "28e907",
            "3001",
            "3a03010101",
            "400a",
            "6002", // kind: message
            "0a24",
            "0a1002020202020202020202020202020202",
            "1001",
            "28ea07",
            "3a03020202",
            "4014",
            "4801",
            "5001",
            "6002",
        );
        assert_eq!(hotline_proto::identity::hex(&h.encode()), expected);
        // A new entry: every content field, after the old ones.
        let mut h = History::default();
        let mut sos = entry(3, true);
        sos.peer = None;
        h.add(sos);
        let expected = concat!(
            "0a2d",
            "0a1003030303030303030303030303030303",
            "1001",
            "28eb07",
            "3001",
            "3a06746578742033", // body: the text, "text 3"
            "401e",
            "6001",     // kind: SOS
            "682b",     // category 43 (unknown)
            "7002",     // priority: urgent
            "7a026672", // language "fr"
        );
        assert_eq!(hotline_proto::identity::hex(&h.encode()), expected);
    }

    /// A case request, share (with a check-in offer) and reply read back
    /// whole from the history: their kind, case, programme, offer and
    /// envelope digest, never as a kind this version does not know.
    #[test]
    fn case_requests_shares_and_replies_read_back_whole() {
        let case = CaseId::from_bytes([9; 16]);
        let kinds = [
            Message::case_request(Programme::Relocation, "we must leave", "en"),
            Message::case_share(
                case,
                "travel booked for 12 May",
                "en",
                Some(CheckinOffer {
                    interval_secs: 7200,
                    grace_secs: 1800,
                }),
            ),
            Message::case_share(case, "approved", "", None),
            Message::case_reply(case, "thank you", "es"),
        ];
        let mut h = History::default();
        for (i, m) in kinds.iter().enumerate() {
            let mut e = entry(10 + i as u8, i % 2 == 0);
            e.message = m.clone();
            e.digest = Some([i as u8 + 1; 32]);
            e.request_case = (i == 0).then_some(case);
            h.add(e);
        }
        let back = History::decode(&h.encode()).expect("reads back");
        assert_eq!(back, h);
        for (e, m) in back.entries().iter().zip(&kinds) {
            assert_eq!(&e.message.kind, &m.kind);
            assert!(!matches!(e.message.kind, Kind::Unknown(_)));
        }
    }

    /// The stored form of a case share received (fields 16, 18, 19, 20
    /// after the old ones), spelled out: it must not change.
    #[test]
    fn the_stored_form_of_a_case_share_does_not_change() {
        let mut e = entry(4, false);
        e.peer = None;
        e.sender_role = None;
        e.message = Message::case_share(
            CaseId::from_bytes([9; 16]),
            "ok",
            "",
            Some(CheckinOffer {
                interval_secs: 60,
                grace_secs: 30,
            }),
        );
        e.digest = Some([5; 32]);
        let mut h = History::default();
        h.add(e);
        let expected = concat!(
            "0a59",
            "0a1004040404040404040404040404040404",
            "28ec07",
            "3a026f6b", // body: the text, "ok"
            "4028",
            "6005",                                   // kind: case share
            "82011009090909090909090909090909090909", // 16: case id
            "90013c",                                 // 18: offer interval 60
            "98011e",                                 // 19: grace 30
            "a20120",                                 // 20: the envelope's digest
            "0505050505050505050505050505050505050505050505050505050505050505",
        );
        assert_eq!(hotline_proto::identity::hex(&h.encode()), expected);
        assert_eq!(
            History::decode(&hotline_proto::identity::unhex(expected).expect("hex"))
                .expect("reads"),
            h
        );
    }

    #[test]
    fn the_oldest_entries_go_first() {
        let mut h = History::default();
        for i in 0..(MAX_ENTRIES + 3) {
            let mut e = entry(0, false);
            e.message_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            h.add(e);
        }
        assert_eq!(h.entries().len(), MAX_ENTRIES);
        assert_eq!(h.entries()[0].message_id[..8], 3u64.to_be_bytes());
    }
}
