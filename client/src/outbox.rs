//! The outbox: what this device has written and the server does not have
//! yet. An item is saved before anything is sent and sealed once, so that a
//! retry after a lost answer sends the very same bytes, which the server
//! recognises; it is removed when the server has it.
//!
//! Items live in `device.sealed` as `OutboxRow`s, a stored format that
//! does not change; they are read into `Item`s, which say what they are
//! with [`Outgoing`], and written back here. Sending them is
//! [`crate::messenger::Device::flush`].

use hotline_proto::DeviceId;
use hotline_proto::alert::Priority;
use hotline_proto::case::CaseId;
use hotline_proto::case::key::CaseKey;
use hotline_proto::e2e::content::{Category, CheckinOffer, Kind, Message as Content, Programme};
use hotline_proto::identity::fill_random;
use prost::Message;

use crate::error::ClientError;

/// What an outbox item is, and so where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    /// A message to every staff device on the roster and, with `to`, to
    /// that device too (staff only).
    Message {
        /// The one more device.
        to: Option<DeviceId>,
    },
    /// A message in the thread of an alert, to its defender and every
    /// staff device on the roster (staff).
    Reply {
        /// The alert.
        alert: u64,
        /// Its defender.
        to: DeviceId,
    },
    /// An alert of this priority, raised with the message saying what
    /// happened, which goes to every staff device on the roster
    /// (defenders).
    Alert(Priority),
    /// Case keys (staff, ContentKind CASE_KEYS: `body` holds them, see
    /// [`case_keys_body`]) for every other staff device on the roster or,
    /// with `to`, for that staff device only. Never kept in the history.
    CaseKeys {
        /// The one staff device (`None`: every other staff device).
        to: Option<DeviceId>,
    },
    /// A defender's request for help (CASE_REQUEST) to every staff device
    /// on the roster, sent with `request_case`: the server opens a case
    /// in state requested.
    CaseRequest(Programme),
    /// Something of a case shared with its defender's device `to`
    /// (CASE_SHARE), which also goes to every staff device on the roster
    /// (staff).
    CaseShare {
        /// The case.
        case_id: CaseId,
        /// The defender's device.
        to: DeviceId,
        /// Check-ins suggested for a journey.
        checkin_offer: Option<CheckinOffer>,
    },
    /// A defender's answer about its case (CASE_REPLY) to every staff
    /// device on the roster.
    CaseReply {
        /// The case.
        case_id: CaseId,
    },
}

impl Outgoing {
    /// The device it goes to besides the staff on the roster.
    pub fn to(self) -> Option<DeviceId> {
        match self {
            Outgoing::Message { to } => to,
            Outgoing::Reply { to, .. } | Outgoing::CaseShare { to, .. } => Some(to),
            Outgoing::CaseKeys { to } => to,
            Outgoing::Alert(_) | Outgoing::CaseRequest(_) | Outgoing::CaseReply { .. } => None,
        }
    }

    /// The alert whose thread it belongs to, as envelopes carry it (0:
    /// none).
    pub fn thread(self) -> u64 {
        match self {
            Outgoing::Reply { alert, .. } => alert,
            Outgoing::Message { .. }
            | Outgoing::Alert(_)
            | Outgoing::CaseRequest(_)
            | Outgoing::CaseShare { .. }
            | Outgoing::CaseReply { .. }
            | Outgoing::CaseKeys { .. } => 0,
        }
    }
}

/// The length of one case key in an outbox item's body: case id (16),
/// epoch (4, big-endian), key (32).
const CASE_KEY_LEN: usize = 52;

/// The body of an [`Outgoing::CaseKeys`] item holding `keys`.
pub fn case_keys_body(keys: &[(CaseId, u32, CaseKey)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.len() * CASE_KEY_LEN);
    for (case, epoch, key) in keys {
        out.extend_from_slice(case.as_bytes());
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(key.as_bytes());
    }
    out
}

/// The keys an [`Outgoing::CaseKeys`] item's body holds (`None`: damaged).
pub(crate) fn case_keys_of(body: &[u8]) -> Option<Vec<(CaseId, u32, CaseKey)>> {
    if body.is_empty() || !body.len().is_multiple_of(CASE_KEY_LEN) {
        return None;
    }
    body.chunks(CASE_KEY_LEN)
        .map(|c| {
            let case = CaseId::from_bytes(c[..16].try_into().ok()?);
            let epoch = u32::from_be_bytes(c[16..20].try_into().ok()?);
            let key = CaseKey::from_bytes(c[20..].try_into().ok()?);
            Some((case, epoch, key))
        })
        .collect()
}

/// One item waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// The id the envelope carries, chosen when the item was written.
    pub(crate) message_id: [u8; 16],
    /// The text (UTF-8), or in an item written before the content
    /// message, the old form (an SOS's category on its first line).
    pub(crate) body: Vec<u8>,
    /// An SOS's category (`None`: not given, or an item of the old form).
    pub(crate) category: Option<Category>,
    /// The language of the text, a BCP 47 tag (empty: not given).
    pub(crate) language: String,
    /// What it is.
    pub(crate) what: Outgoing,
    /// When it was written, seconds since the Unix epoch.
    pub(crate) created_at: u64,
    /// The envelope as first sealed, sent as is on every retry; `None`
    /// until it is sealed.
    pub(crate) sealed: Option<Vec<u8>>,
}

impl Item {
    /// A new item, with a fresh message id, not sealed yet, written in
    /// the language of this device's settings ([`crate::language`]).
    pub(crate) fn new(body: &[u8], what: Outgoing, now: u64) -> Result<Item, ClientError> {
        let mut message_id = [0u8; 16];
        fill_random(&mut message_id)
            .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
        Ok(Item {
            message_id,
            body: body.to_vec(),
            category: None,
            language: crate::language(),
            what,
            created_at: now,
            sealed: None,
        })
    }

    /// Reads a stored row. Only the forms this client writes are items;
    /// anything else means the file is damaged.
    pub(crate) fn from_row(row: &OutboxRow) -> Result<Item, ClientError> {
        let damaged = || ClientError::State("device.sealed is damaged".into());
        let message_id = row
            .message_id
            .as_slice()
            .try_into()
            .map_err(|_| damaged())?;
        let to = match row.to.len() {
            0 => None,
            _ => Some(DeviceId::from_bytes(
                row.to.as_slice().try_into().map_err(|_| damaged())?,
            )),
        };
        let what = match (row.case_kind, row.alert, row.thread, to) {
            (0, ..) => Self::what_of(row.alert, row.thread, to).ok_or_else(damaged)?,
            (3, 0, 0, to) => {
                case_keys_of(&row.body).ok_or_else(damaged)?;
                Outgoing::CaseKeys { to }
            }
            (4, 0, 0, None) => {
                Outgoing::CaseRequest(Programme::from_code(row.programme).ok_or_else(damaged)?)
            }
            (5, 0, 0, Some(to)) => Outgoing::CaseShare {
                case_id: CaseId::from_slice(&row.case_id, "case_id").map_err(|_| damaged())?,
                to,
                checkin_offer: (row.offer_interval > 0).then_some(CheckinOffer {
                    interval_secs: row.offer_interval,
                    grace_secs: row.offer_grace,
                }),
            },
            (6, 0, 0, None) => Outgoing::CaseReply {
                case_id: CaseId::from_slice(&row.case_id, "case_id").map_err(|_| damaged())?,
            },
            _ => return Err(damaged()),
        };
        Ok(Item {
            message_id,
            body: row.body.clone(),
            category: Category::from_code(row.category),
            language: row.language.clone(),
            what,
            created_at: row.created_at,
            sealed: (!row.sealed.is_empty()).then(|| row.sealed.clone()),
        })
    }

    /// What a row without case fields (as every row was before cases) is.
    fn what_of(alert: u32, thread: u64, to: Option<DeviceId>) -> Option<Outgoing> {
        Some(match (alert, thread, to) {
            (0, 0, to) => Outgoing::Message { to },
            (0, alert, Some(to)) => Outgoing::Reply { alert, to },
            (1, 0, None) => Outgoing::Alert(Priority::Immediate),
            (2, 0, None) => Outgoing::Alert(Priority::Urgent),
            (3, 0, None) => Outgoing::Alert(Priority::Routine),
            _ => return None,
        })
    }

    /// The row it is stored as.
    pub(crate) fn to_row(&self) -> OutboxRow {
        OutboxRow {
            message_id: self.message_id.to_vec(),
            body: self.body.clone(),
            to: self
                .what
                .to()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default(),
            alert: match self.what {
                Outgoing::Message { .. }
                | Outgoing::Reply { .. }
                | Outgoing::CaseRequest(_)
                | Outgoing::CaseShare { .. }
                | Outgoing::CaseReply { .. }
                | Outgoing::CaseKeys { .. } => 0,
                Outgoing::Alert(Priority::Immediate) => 1,
                Outgoing::Alert(Priority::Urgent) => 2,
                Outgoing::Alert(Priority::Routine) => 3,
            },
            created_at: self.created_at,
            sealed: self.sealed.clone().unwrap_or_default(),
            thread: self.what.thread(),
            category: self.category.map_or(0, Category::code),
            language: self.language.clone(),
            ..self.case_fields()
        }
    }

    /// Fields 10-14 of the row (all absent but for the case kinds).
    fn case_fields(&self) -> OutboxRow {
        let mut row = OutboxRow::default();
        match self.what {
            Outgoing::CaseRequest(p) => {
                row.case_kind = 4;
                row.programme = p.code();
            }
            Outgoing::CaseShare {
                case_id,
                checkin_offer,
                ..
            } => {
                row.case_kind = 5;
                row.case_id = case_id.as_bytes().to_vec();
                if let Some(o) = checkin_offer {
                    row.offer_interval = o.interval_secs;
                    row.offer_grace = o.grace_secs;
                }
            }
            Outgoing::CaseReply { case_id } => {
                row.case_kind = 6;
                row.case_id = case_id.as_bytes().to_vec();
            }
            Outgoing::CaseKeys { .. } => row.case_kind = 3,
            Outgoing::Message { .. } | Outgoing::Reply { .. } | Outgoing::Alert(_) => {}
        }
        row
    }

    /// What the item says, as it is sealed: an alert is an SOS (its
    /// category and text from the old form when the item has no category:
    /// see [`Content::from_old_body`]), anything else a message.
    pub(crate) fn content(&self) -> Content {
        let text = String::from_utf8_lossy(&self.body);
        match self.what {
            Outgoing::Alert(priority) => {
                let (category, text) = match self.category {
                    Some(c) => (Some(c), text.into_owned()),
                    None => {
                        let old = Content::from_old_body(&self.body);
                        (old.category, old.text)
                    }
                };
                Content {
                    kind: Kind::Sos,
                    category,
                    priority: Some(priority),
                    text,
                    language: self.language.clone(),
                }
            }
            Outgoing::Message { .. } | Outgoing::Reply { .. } => {
                Content::chat(&text, &self.language)
            }
            // Checked when the row was read or the item made.
            Outgoing::CaseKeys { .. } => {
                Content::case_keys(case_keys_of(&self.body).unwrap_or_default())
            }
            Outgoing::CaseRequest(p) => Content::case_request(p, &text, &self.language),
            Outgoing::CaseShare {
                case_id,
                checkin_offer,
                ..
            } => Content::case_share(case_id, &text, &self.language, checkin_offer),
            Outgoing::CaseReply { case_id } => Content::case_reply(case_id, &text, &self.language),
        }
    }
}

/// An outbox item as stored in `device.sealed`. The format must not
/// change: devices hold items written by earlier versions.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct OutboxRow {
    #[prost(bytes = "vec", tag = "1")]
    message_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    body: Vec<u8>,
    /// The one more device (empty: none).
    #[prost(bytes = "vec", tag = "3")]
    to: Vec<u8>,
    /// 0: a message; 1, 2, 3: an alert of priority immediate, urgent, routine.
    #[prost(uint32, tag = "4")]
    alert: u32,
    #[prost(uint64, tag = "5")]
    created_at: u64,
    /// The sealed envelope (empty: not sealed yet).
    #[prost(bytes = "vec", tag = "6")]
    sealed: Vec<u8>,
    /// The alert a reply belongs to (0: none).
    #[prost(uint64, tag = "7")]
    thread: u64,
    /// An alert's `SosCategory` (0: none; rows written before the content
    /// message have none and carry it in `body`).
    #[prost(int32, tag = "8")]
    category: i32,
    /// The language of the text, a BCP 47 tag (empty: not given).
    #[prost(string, tag = "9")]
    language: String,
    /// Fields 10-14 came with cases; rows written before have none.
    /// The case kind (`ContentKind` 3 case keys, whose keys are in
    /// `body`; 4 request, 5 share, 6 reply; 0: not
    /// a case item).
    #[prost(int32, tag = "10")]
    case_kind: i32,
    /// A share's or reply's case.
    #[prost(bytes = "vec", tag = "11")]
    case_id: Vec<u8>,
    /// A request's `CaseProgramme`.
    #[prost(int32, tag = "12")]
    programme: i32,
    /// A share's check-in offer: interval (0: none) and grace, seconds.
    #[prost(uint64, tag = "13")]
    offer_interval: u64,
    #[prost(uint64, tag = "14")]
    offer_grace: u64,
}

#[cfg(test)]
mod tests {
    use hotline_proto::identity::{hex, unhex};

    use super::*;

    /// Rows as this client has always written them (the protobuf bytes
    /// spelled out, not produced by `OutboxRow`): each reads back as the
    /// right item and is written back byte for byte.
    #[test]
    fn stored_rows_read_back_as_items_and_write_back_identically() {
        let id = "0a10".to_owned() + &"11".repeat(16); // message_id
        let body = "1203686921"; // body "hi!"
        let to = "1a10".to_owned() + &"22".repeat(16); // to
        let created = "28e807"; // created_at 1000
        let defender = DeviceId::from_bytes([0x22; 16]);
        let cases = [
            (
                format!("{id}{body}{created}"),
                Outgoing::Message { to: None },
            ),
            (
                format!("{id}{body}{to}{created}"),
                Outgoing::Message { to: Some(defender) },
            ),
            (
                format!("{id}{body}{to}{created}382a"), // thread 42
                Outgoing::Reply {
                    alert: 42,
                    to: defender,
                },
            ),
            (
                format!("{id}{body}2001{created}"), // alert 1
                Outgoing::Alert(Priority::Immediate),
            ),
            (
                format!("{id}{body}2002{created}"),
                Outgoing::Alert(Priority::Urgent),
            ),
            (
                format!("{id}{body}2003{created}3203aabbcc"), // sealed already
                Outgoing::Alert(Priority::Routine),
            ),
        ];
        for (stored, what) in cases {
            let bytes = unhex(&stored).expect("hex");
            let row = OutboxRow::decode(bytes.as_slice()).expect("a row");
            let item = Item::from_row(&row).expect("an item");
            assert_eq!(item.what, what, "{stored}");
            assert_eq!(item.message_id, [0x11; 16]);
            assert_eq!(item.body, b"hi!");
            assert_eq!(item.created_at, 1000);
            assert_eq!(
                item.sealed.is_some(),
                stored.ends_with("aabbcc"),
                "{stored}"
            );
            assert_eq!(hex(&item.to_row().encode_to_vec()), stored);
        }
    }

    /// An SOS queued before the content message (its category on the
    /// first line of `body`, no field 8) is sealed as an SOS of that
    /// category; one queued now keeps its category and language in fields
    /// 8 and 9, and reads back the same.
    #[test]
    fn an_sos_queued_before_the_content_message_is_sealed_with_its_category() {
        let old = OutboxRow {
            message_id: vec![0x11; 16],
            body: b"category: medical\nshot in the leg".to_vec(),
            alert: 2,
            created_at: 1000,
            ..Default::default()
        };
        let item = Item::from_row(&old).expect("an item");
        let content = item.content();
        assert_eq!(content.kind, Kind::Sos);
        assert_eq!(content.category, Some(Category::Medical));
        assert_eq!(content.priority, Some(Priority::Urgent));
        assert_eq!(content.text, "shot in the leg");
        assert_eq!(item.to_row(), old, "written back as it was");

        let mut item =
            Item::new(b"shot in the leg", Outgoing::Alert(Priority::Routine), 1).expect("item");
        item.category = Some(Category::Medical);
        item.language = "es".into();
        let row = item.to_row();
        assert_eq!((row.category, row.language.as_str()), (5, "es"));
        let back = Item::from_row(&OutboxRow::decode(row.encode_to_vec().as_slice()).expect("row"))
            .expect("item");
        assert_eq!(back, item);
        assert_eq!(
            back.content(),
            Content::sos(
                Category::Medical,
                Priority::Routine,
                "shot in the leg",
                "es"
            )
        );
        let message = Item::new(b"hola", Outgoing::Message { to: None }, 1).expect("item");
        assert_eq!(message.content().kind, Kind::Message);
        assert_eq!(message.content().category, None);
    }

    /// Case keys wait in the outbox as a row marked with field 10 = 3, their
    /// keys in `body`; they read back as the same keys, sealed as a
    /// CASE_KEYS content. A marked row whose body does not hold whole keys
    /// is damage.
    #[test]
    fn case_keys_wait_as_a_marked_row_and_read_back_as_the_same_keys() {
        let keys = vec![
            (CaseId::from_bytes([1; 16]), 1, CaseKey::from_bytes([7; 32])),
            (CaseId::from_bytes([2; 16]), 3, CaseKey::from_bytes([8; 32])),
        ];
        let to = DeviceId::from_bytes([0x22; 16]);
        for what in [
            Outgoing::CaseKeys { to: None },
            Outgoing::CaseKeys { to: Some(to) },
        ] {
            let item = Item::new(&case_keys_body(&keys), what, 1).expect("item");
            let row = item.to_row();
            assert_eq!(row.case_kind, 3);
            let back =
                Item::from_row(&OutboxRow::decode(row.encode_to_vec().as_slice()).expect("row"))
                    .expect("item");
            assert_eq!(back, item);
            assert_eq!(back.content(), Content::case_keys(keys.clone()));
            assert_eq!(back.what.thread(), 0);
        }
        let mut bad = Item::new(&case_keys_body(&keys), Outgoing::CaseKeys { to: None }, 1)
            .expect("item")
            .to_row();
        bad.body.pop();
        assert!(matches!(Item::from_row(&bad), Err(ClientError::State(_))));
        bad.body.clear();
        assert!(matches!(Item::from_row(&bad), Err(ClientError::State(_))));
    }

    /// A case request, share and reply wait in the outbox with their
    /// case fields (10-14), read back as they were and seal as their kind.
    #[test]
    fn case_items_read_back_and_seal_as_their_kind() {
        let case_id = CaseId::from_bytes([7; 16]);
        let whats = [
            Outgoing::CaseRequest(Programme::Legal),
            Outgoing::CaseShare {
                case_id,
                to: DeviceId::from_bytes([3; 16]),
                checkin_offer: Some(CheckinOffer {
                    interval_secs: 7200,
                    grace_secs: 1800,
                }),
            },
            Outgoing::CaseReply { case_id },
        ];
        for what in whats {
            let item = Item::new(b"words", what, 1).expect("item");
            let row = OutboxRow::decode(item.to_row().encode_to_vec().as_slice()).expect("row");
            let back = Item::from_row(&row).expect("item");
            assert_eq!(back, item);
            let content = back.content();
            assert_eq!(content.text, "words");
            match (what, content.kind) {
                (Outgoing::CaseRequest(p), Kind::CaseRequest { programme }) => {
                    assert_eq!(p, programme)
                }
                (
                    Outgoing::CaseShare {
                        checkin_offer: o, ..
                    },
                    Kind::CaseShare {
                        case_id: c,
                        checkin_offer,
                    },
                ) => assert_eq!((c, checkin_offer), (case_id, o)),
                (Outgoing::CaseReply { .. }, Kind::CaseReply { case_id: c }) => {
                    assert_eq!(c, case_id)
                }
                other => panic!("sealed as the wrong kind: {other:?}"),
            }
        }
        // The stored form of a reply, spelled out: fields 10 and 11 after
        // the old ones. It must not change.
        let mut reply = Item::new(b"ok", Outgoing::CaseReply { case_id }, 1000).expect("item");
        reply.message_id = [0x11; 16];
        reply.language = String::new();
        assert_eq!(
            hex(&reply.to_row().encode_to_vec()),
            concat!(
                "0a1011111111111111111111111111111111",
                "12026f6b",                             // body "ok"
                "28e807",                               // created_at 1000
                "5006",                                 // 10: case kind 6, a reply
                "5a1007070707070707070707070707070707", // 11: case id
            )
        );
        // A share to nobody, or a request in a thread, is damage.
        let mut row = Item::new(b"x", Outgoing::CaseReply { case_id }, 1)
            .expect("item")
            .to_row();
        row.case_kind = 5;
        assert!(Item::from_row(&row).is_err());
    }

    #[test]
    fn rows_this_client_never_writes_are_damage() {
        let good = Item::new(b"x", Outgoing::Message { to: None }, 1)
            .expect("item")
            .to_row();
        let bad = [
            OutboxRow {
                alert: 4,
                ..good.clone()
            },
            OutboxRow {
                alert: 1,
                thread: 3,
                ..good.clone()
            },
            OutboxRow {
                thread: 3,
                ..good.clone()
            },
            OutboxRow {
                to: vec![1, 2, 3],
                ..good.clone()
            },
            OutboxRow {
                message_id: vec![1; 15],
                ..good.clone()
            },
        ];
        for row in bad {
            assert!(
                matches!(Item::from_row(&row), Err(ClientError::State(_))),
                "{row:?}"
            );
        }
        assert!(Item::from_row(&good).is_ok());
    }
}
