//! What a sealed content says: its kind (an SOS, a message, case keys, a
//! case request, share or reply), an SOS's category and priority, the
//! text and the language it is written in, and the case fields of the
//! case kinds. These are fields 7-11 and 20-23 of `SealedContent`; the
//! envelope ([`super::envelope`]) seals and opens them with the rest.
//!
//! The version rule (docs/protocol.md, "The content message"): unknown
//! fields are ignored; an unknown kind or category number is kept and
//! shown with its number, never dropped; an unknown priority number or a
//! language that is not a well-formed tag reads as not given; a missing
//! text reads as empty. A content whose kind is 0 is the old form, whose
//! `body` holds the text (an SOS's category on a first line
//! `category: NAME`): [`Message::from_old_body`] reads it. A case kind
//! (3-6) without the field it needs, or with one malformed, is a
//! malformed content: the envelope is refused, as for any malformed
//! content.

use crate::alert::Priority;
use crate::case::CaseId;
use crate::case::key::CaseKey;
use crate::error::DecodeError;
use crate::pb;

/// The longest language tag a content carries (BCP 47 tags in practice
/// are far shorter; 35 is RFC 5646's minimum buffer for a tag).
pub const MAX_LANGUAGE_LEN: usize = 35;

/// The most case keys one CASE_KEYS content carries (its encoding, at
/// most 61 bytes a key, then fits the largest bucket with room to spare).
pub const MAX_CASE_KEYS: usize = 500;

/// What a content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The text of an SOS.
    Sos,
    /// A conversation message.
    Message,
    /// Case keys, staff to staff devices only (CONTENT_KIND_CASE_KEYS):
    /// for each, the case, the epoch (at least 1) and the key. Between 1
    /// and [`MAX_CASE_KEYS`].
    CaseKeys(Vec<(CaseId, u32, CaseKey)>),
    /// A defender asks the team for help (CONTENT_KIND_CASE_REQUEST); the
    /// words are the message's text.
    CaseRequest {
        /// What they ask for (never 0 on the wire).
        programme: Programme,
    },
    /// Staff tell a defender something of their case
    /// (CONTENT_KIND_CASE_SHARE); the words are the message's text.
    CaseShare {
        /// The case.
        case_id: CaseId,
        /// Check-ins suggested for a journey (`None`: none).
        checkin_offer: Option<CheckinOffer>,
    },
    /// A defender answers something shared with them
    /// (CONTENT_KIND_CASE_REPLY); the words are the message's text.
    CaseReply {
        /// The case.
        case_id: CaseId,
    },
    /// A kind this version does not know, by its number (never 0): shown
    /// as a message, with the number.
    Unknown(i32),
}

impl Kind {
    /// The wire number (`ContentKind`).
    pub fn code(&self) -> i32 {
        match self {
            Kind::Sos => pb::ContentKind::Sos as i32,
            Kind::Message => pb::ContentKind::Message as i32,
            Kind::CaseKeys(_) => pb::ContentKind::CaseKeys as i32,
            Kind::CaseRequest { .. } => pb::ContentKind::CaseRequest as i32,
            Kind::CaseShare { .. } => pb::ContentKind::CaseShare as i32,
            Kind::CaseReply { .. } => pb::ContentKind::CaseReply as i32,
            Kind::Unknown(n) => *n,
        }
    }

    /// Writes the kind and its case fields (20-23) into `into`.
    fn to_wire(&self, into: &mut pb::SealedContent) {
        into.kind = self.code();
        match self {
            Kind::CaseKeys(keys) => {
                into.case_keys = keys
                    .iter()
                    .map(|(case_id, epoch, key)| pb::CaseKey {
                        case_id: case_id.as_bytes().to_vec().into(),
                        epoch: *epoch,
                        key: key.as_bytes().to_vec().into(),
                    })
                    .collect();
            }
            Kind::CaseRequest { programme } => into.programme = programme.code(),
            Kind::CaseShare {
                case_id,
                checkin_offer,
            } => {
                into.case_id = case_id.as_bytes().to_vec().into();
                into.checkin_offer = checkin_offer.map(|o| pb::CheckinOffer {
                    interval_secs: o.interval_secs,
                    grace_secs: o.grace_secs,
                });
            }
            Kind::CaseReply { case_id } => into.case_id = case_id.as_bytes().to_vec().into(),
            Kind::Sos | Kind::Message | Kind::Unknown(_) => {}
        }
    }

    /// The kind of a content whose `kind` is not 0, with its case fields;
    /// a case kind without the field it needs, or with one malformed, is
    /// refused. Case fields on a kind that has none are ignored.
    fn from_wire(c: &pb::SealedContent) -> Result<Kind, DecodeError> {
        let case_id = || CaseId::from_slice(&c.case_id, "case_id");
        Ok(match pb::ContentKind::try_from(c.kind) {
            Ok(pb::ContentKind::Sos) => Kind::Sos,
            Ok(pb::ContentKind::Message) => Kind::Message,
            Ok(pb::ContentKind::CaseKeys) => {
                if c.case_keys.is_empty() {
                    return Err(DecodeError::Missing("case_keys"));
                }
                if c.case_keys.len() > MAX_CASE_KEYS {
                    return Err(DecodeError::Invalid("case_keys"));
                }
                let keys = c
                    .case_keys
                    .iter()
                    .map(|k| {
                        let key: [u8; 32] = k
                            .key
                            .as_ref()
                            .try_into()
                            .map_err(|_| DecodeError::Invalid("case_keys.key"))?;
                        if k.epoch == 0 {
                            return Err(DecodeError::Invalid("case_keys.epoch"));
                        }
                        Ok((
                            CaseId::from_slice(&k.case_id, "case_keys.case_id")?,
                            k.epoch,
                            CaseKey::from_bytes(key),
                        ))
                    })
                    .collect::<Result<_, _>>()?;
                Kind::CaseKeys(keys)
            }
            Ok(pb::ContentKind::CaseRequest) => Kind::CaseRequest {
                programme: Programme::from_code(c.programme)
                    .ok_or(DecodeError::Missing("programme"))?,
            },
            Ok(pb::ContentKind::CaseShare) => Kind::CaseShare {
                case_id: case_id()?,
                checkin_offer: match &c.checkin_offer {
                    None => None,
                    Some(o) if o.interval_secs == 0 => {
                        return Err(DecodeError::Invalid("checkin_offer"));
                    }
                    Some(o) => Some(CheckinOffer {
                        interval_secs: o.interval_secs,
                        grace_secs: o.grace_secs,
                    }),
                },
            },
            Ok(pb::ContentKind::CaseReply) => Kind::CaseReply {
                case_id: case_id()?,
            },
            Ok(pb::ContentKind::Unspecified) | Err(_) => Kind::Unknown(c.kind),
        })
    }
}

/// What a defender asks for in a case request (`CaseProgramme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Programme {
    /// Leaving the country for a host country.
    Relocation,
    /// Legal help.
    Legal,
    /// Medical help.
    Medical,
    /// Subsistence for the defender and family.
    Subsistence,
    /// A programme this version does not know, by its number (never 0):
    /// shown with the number.
    Unknown(i32),
}

impl Programme {
    /// Every programme a defender can pick, in the order offered.
    pub const ALL: [Programme; 4] = [
        Programme::Relocation,
        Programme::Legal,
        Programme::Medical,
        Programme::Subsistence,
    ];

    /// The wire number (`CaseProgramme`).
    pub fn code(self) -> i32 {
        match self {
            Programme::Relocation => pb::CaseProgramme::Relocation as i32,
            Programme::Legal => pb::CaseProgramme::Legal as i32,
            Programme::Medical => pb::CaseProgramme::Medical as i32,
            Programme::Subsistence => pb::CaseProgramme::Subsistence as i32,
            Programme::Unknown(n) => n,
        }
    }

    /// The programme of wire number `n`; `None` for 0 (not given).
    pub fn from_code(n: i32) -> Option<Programme> {
        Some(match pb::CaseProgramme::try_from(n) {
            Ok(pb::CaseProgramme::Unspecified) => return None,
            Ok(pb::CaseProgramme::Relocation) => Programme::Relocation,
            Ok(pb::CaseProgramme::Legal) => Programme::Legal,
            Ok(pb::CaseProgramme::Medical) => Programme::Medical,
            Ok(pb::CaseProgramme::Subsistence) => Programme::Subsistence,
            Err(_) => Programme::Unknown(n),
        })
    }

    /// The name a person types and sees (`relocation`, `legal`, …);
    /// `other` for an unknown number (see [`std::fmt::Display`]).
    pub fn name(self) -> &'static str {
        match self {
            Programme::Relocation => "relocation",
            Programme::Legal => "legal",
            Programme::Medical => "medical",
            Programme::Subsistence => "subsistence",
            Programme::Unknown(_) => "other",
        }
    }

    /// The programme named `name` (any case), if there is one.
    pub fn from_name(name: &str) -> Option<Programme> {
        let name = name.trim().to_ascii_lowercase();
        Programme::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Programme {
    /// The name; an unknown number as `other (programme 42)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Programme::Unknown(n) => write!(f, "other (programme {n})"),
            p => f.write_str(p.name()),
        }
    }
}

/// Check-ins staff suggest for a defender's journey (`CheckinOffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckinOffer {
    /// How often to check in (at least 1 second on the wire).
    pub interval_secs: u64,
    /// How late a check-in may be before it is missed.
    pub grace_secs: u64,
}

/// What an SOS is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Arrest or detention.
    Arrest,
    /// A physical attack.
    Attack,
    /// Being followed or watched.
    Surveillance,
    /// Having to leave the country.
    LeaveCountry,
    /// Medical.
    Medical,
    /// Legal.
    Legal,
    /// Something else.
    Other,
    /// A category this version does not know, by its number (never 0):
    /// shown as "other" with the number.
    Unknown(i32),
}

impl Category {
    /// Every category a defender can pick, in the order offered.
    pub const ALL: [Category; 7] = [
        Category::Arrest,
        Category::Attack,
        Category::Surveillance,
        Category::LeaveCountry,
        Category::Medical,
        Category::Legal,
        Category::Other,
    ];

    /// The wire number (`SosCategory`).
    pub fn code(self) -> i32 {
        match self {
            Category::Arrest => pb::SosCategory::Arrest as i32,
            Category::Attack => pb::SosCategory::Attack as i32,
            Category::Surveillance => pb::SosCategory::Surveillance as i32,
            Category::LeaveCountry => pb::SosCategory::LeaveCountry as i32,
            Category::Medical => pb::SosCategory::Medical as i32,
            Category::Legal => pb::SosCategory::Legal as i32,
            Category::Other => pb::SosCategory::Other as i32,
            Category::Unknown(n) => n,
        }
    }

    /// The category of wire number `n`; `None` for 0 (not given).
    pub fn from_code(n: i32) -> Option<Category> {
        Some(match pb::SosCategory::try_from(n) {
            Ok(pb::SosCategory::Unspecified) => return None,
            Ok(pb::SosCategory::Arrest) => Category::Arrest,
            Ok(pb::SosCategory::Attack) => Category::Attack,
            Ok(pb::SosCategory::Surveillance) => Category::Surveillance,
            Ok(pb::SosCategory::LeaveCountry) => Category::LeaveCountry,
            Ok(pb::SosCategory::Medical) => Category::Medical,
            Ok(pb::SosCategory::Legal) => Category::Legal,
            Ok(pb::SosCategory::Other) => Category::Other,
            Err(_) => Category::Unknown(n),
        })
    }

    /// The name a person types and sees (`arrest`, `leave-country`, …);
    /// `other` for an unknown number (see [`std::fmt::Display`] for the
    /// form that shows it).
    pub fn name(self) -> &'static str {
        match self {
            Category::Arrest => "arrest",
            Category::Attack => "attack",
            Category::Surveillance => "surveillance",
            Category::LeaveCountry => "leave-country",
            Category::Medical => "medical",
            Category::Legal => "legal",
            Category::Other | Category::Unknown(_) => "other",
        }
    }

    /// The category named `name` (as [`Category::name`] spells it, any
    /// case), if there is one.
    pub fn from_name(name: &str) -> Option<Category> {
        let name = name.trim().to_ascii_lowercase().replace('_', "-");
        Category::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Category {
    /// The name; an unknown number as `other (category 42)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Category::Unknown(n) => write!(f, "other (category {n})"),
            c => f.write_str(c.name()),
        }
    }
}

/// What a content says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// An SOS, a message, or a kind this version does not know.
    pub kind: Kind,
    /// An SOS's category (`None`: not given).
    pub category: Option<Category>,
    /// An SOS's priority as its author chose it (`None`: not given, or a
    /// number this version does not know).
    pub priority: Option<Priority>,
    /// What the author wrote (empty: nothing).
    pub text: String,
    /// The language of `text`, a well-formed BCP 47 tag (empty: not given).
    pub language: String,
}

impl Message {
    /// An SOS.
    pub fn sos(category: Category, priority: Priority, text: &str, language: &str) -> Message {
        Message {
            kind: Kind::Sos,
            category: Some(category),
            priority: Some(priority),
            text: text.to_owned(),
            language: language_tag(language).unwrap_or_default(),
        }
    }

    /// A conversation message.
    pub fn chat(text: &str, language: &str) -> Message {
        Message {
            kind: Kind::Message,
            category: None,
            priority: None,
            text: text.to_owned(),
            language: language_tag(language).unwrap_or_default(),
        }
    }

    /// Case keys for staff devices (at most [`MAX_CASE_KEYS`]: send more
    /// in several envelopes).
    pub fn case_keys(keys: Vec<(CaseId, u32, CaseKey)>) -> Message {
        Message {
            kind: Kind::CaseKeys(keys),
            category: None,
            priority: None,
            text: String::new(),
            language: String::new(),
        }
    }

    /// A defender's request for help.
    pub fn case_request(programme: Programme, text: &str, language: &str) -> Message {
        Message {
            kind: Kind::CaseRequest { programme },
            ..Message::chat(text, language)
        }
    }

    /// Something of a case shared with its defender.
    pub fn case_share(
        case_id: CaseId,
        text: &str,
        language: &str,
        checkin_offer: Option<CheckinOffer>,
    ) -> Message {
        Message {
            kind: Kind::CaseShare {
                case_id,
                checkin_offer,
            },
            ..Message::chat(text, language)
        }
    }

    /// A defender's answer to something shared with them.
    pub fn case_reply(case_id: CaseId, text: &str, language: &str) -> Message {
        Message {
            kind: Kind::CaseReply { case_id },
            ..Message::chat(text, language)
        }
    }

    /// Reads the old form, as clients before the content message wrote
    /// it into `body`: UTF-8 text (invalid bytes read as U+FFFD); an SOS
    /// put its category on a first line `category: NAME`. That line
    /// makes it an SOS of that category; a name this version does not
    /// know reads as [`Category::Other`] and the line is kept in the
    /// text, so nothing the author wrote is lost. No language.
    pub fn from_old_body(body: &[u8]) -> Message {
        let text = String::from_utf8_lossy(body).into_owned();
        if let Some((head, rest)) = text.split_once('\n')
            && let Some(name) = head.strip_prefix("category: ")
        {
            let (category, text) = match Category::from_name(name) {
                Some(c) => (c, rest.to_owned()),
                None => (Category::Other, text.clone()),
            };
            return Message {
                kind: Kind::Sos,
                category: Some(category),
                priority: None,
                text,
                language: String::new(),
            };
        }
        Message {
            kind: Kind::Message,
            category: None,
            priority: None,
            text,
            language: String::new(),
        }
    }

    /// Writes fields 7-11 and 20-23 of `into` (and leaves `body` empty).
    pub(crate) fn to_wire(&self, into: &mut pb::SealedContent) {
        self.kind.to_wire(into);
        into.category = self.category.map_or(0, Category::code);
        into.priority = self.priority.map_or(0, Priority::to_wire);
        into.text = self.text.clone();
        into.language = self.language.clone();
    }

    /// Reads a content as the version rule says. Fails only on a case
    /// kind without the field it needs or with one malformed (a malformed
    /// `text`, not UTF-8, is refused by the protobuf decoder before this).
    pub(crate) fn from_wire(content: &pb::SealedContent) -> Result<Message, DecodeError> {
        if content.kind == 0 {
            return Ok(Message::from_old_body(&content.body));
        }
        Ok(Message {
            kind: Kind::from_wire(content)?,
            category: Category::from_code(content.category),
            priority: Priority::from_wire(content.priority).ok(),
            text: content.text.clone(),
            language: language_tag(&content.language).unwrap_or_default(),
        })
    }
}

/// `tag` if it is a well-formed BCP 47 language tag as this protocol
/// takes them: 1 to [`MAX_LANGUAGE_LEN`] characters, subtags of 1 to 8
/// ASCII letters or digits separated by `-`, the first 2 to 8 letters.
/// The case is kept as given (tags compare case-insensitively).
pub fn language_tag(tag: &str) -> Option<String> {
    if tag.is_empty() || tag.len() > MAX_LANGUAGE_LEN {
        return None;
    }
    let mut subtags = tag.split('-');
    let first = subtags.next()?;
    let first_ok = (2..=8).contains(&first.len()) && first.bytes().all(|b| b.is_ascii_alphabetic());
    let rest_ok =
        subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    (first_ok && rest_ok).then(|| tag.to_owned())
}

/// The BCP 47 tag of a POSIX locale name (`fr_FR.UTF-8` → `fr-FR`,
/// `es` → `es`); `None` for `C`, `POSIX` or anything that does not make
/// a tag.
pub fn language_of_locale(locale: &str) -> Option<String> {
    let name = locale.split(['.', '@']).next().unwrap_or_default();
    if name.eq_ignore_ascii_case("c") || name.eq_ignore_ascii_case("posix") {
        return None;
    }
    language_tag(&name.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn wire(m: &Message) -> pb::SealedContent {
        let mut c = pb::SealedContent::default();
        m.to_wire(&mut c);
        c
    }

    #[test]
    fn every_category_round_trips_by_name_and_by_number() {
        for c in Category::ALL {
            assert_eq!(Category::from_name(c.name()), Some(c));
            assert_eq!(Category::from_code(c.code()), Some(c));
        }
        assert_eq!(
            Category::from_name("Leave_Country"),
            Some(Category::LeaveCountry)
        );
        assert_eq!(Category::from_name("kidnap"), None);
        assert_eq!(Category::from_code(0), None);
    }

    #[test]
    fn an_unknown_category_kind_or_priority_is_kept_or_read_as_not_given() {
        let mut c = wire(&Message::sos(Category::Arrest, Priority::Urgent, "x", "fr"));
        c.category = 42;
        c.kind = 9;
        c.priority = 77;
        let m = Message::from_wire(&c).expect("reads");
        assert_eq!(m.category, Some(Category::Unknown(42)));
        assert_eq!(
            m.category.map(|c| c.to_string()).as_deref(),
            Some("other (category 42)")
        );
        assert_eq!(m.kind, Kind::Unknown(9));
        assert_eq!(m.priority, None);
        assert_eq!(m.text, "x");
        assert_eq!(m.language, "fr");
    }

    #[test]
    fn unknown_fields_are_ignored_and_a_missing_text_reads_as_empty() {
        let mut bytes = wire(&Message::chat("", "es")).encode_to_vec();
        // Field 99, varint 1, and field 12 (reserved for attachments), bytes.
        bytes.extend_from_slice(&[0x98, 0x06, 0x01, 0x62, 0x02, 0xab, 0xcd]);
        let c = pb::SealedContent::decode(bytes.as_slice()).expect("decodes");
        let m = Message::from_wire(&c).expect("reads");
        assert_eq!(m, Message::chat("", "es"));
    }

    #[test]
    fn the_old_form_reads_with_its_category_and_loses_nothing() {
        let old = |body: &[u8]| {
            Message::from_wire(&pb::SealedContent {
                body: body.to_vec().into(),
                ..Default::default()
            })
            .expect("reads")
        };
        let m = old(b"category: arrest\nthey took my brother");
        assert_eq!(m.kind, Kind::Sos);
        assert_eq!(m.category, Some(Category::Arrest));
        assert_eq!(m.text, "they took my brother");
        assert_eq!(m.language, "");
        let m = old(b"category: kidnap\nhelp");
        assert_eq!(m.category, Some(Category::Other));
        assert_eq!(m.text, "category: kidnap\nhelp");
        let m = old(b"see you at 5");
        assert_eq!(m.kind, Kind::Message);
        assert_eq!((m.category, m.text.as_str()), (None, "see you at 5"));
    }

    #[test]
    fn language_tags_are_checked_and_locales_become_tags() {
        for good in ["en", "fr", "es", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert_eq!(language_tag(good).as_deref(), Some(good));
        }
        for bad in [
            "",
            "e",
            "en_US",
            "fr-",
            "-fr",
            "en US",
            "toolongtag9",
            &"a-b".repeat(20),
        ] {
            assert_eq!(language_tag(bad), None, "{bad:?}");
        }
        assert_eq!(language_of_locale("fr_FR.UTF-8").as_deref(), Some("fr-FR"));
        assert_eq!(language_of_locale("es").as_deref(), Some("es"));
        assert_eq!(language_of_locale("C.UTF-8"), None);
        assert_eq!(language_of_locale("POSIX"), None);
        // A bad tag on the wire reads as not given; the message stays.
        let mut c = wire(&Message::chat("hi", "en"));
        c.language = "en US".into();
        assert_eq!(Message::from_wire(&c).expect("reads").language, "");
    }

    fn case_id(n: u8) -> CaseId {
        CaseId::from_bytes([n; 16])
    }

    fn round_trip(m: &Message) -> Result<Message, DecodeError> {
        let bytes = wire(m).encode_to_vec();
        Message::from_wire(&pb::SealedContent::decode(bytes.as_slice()).expect("decodes"))
    }

    #[test]
    fn every_case_kind_round_trips_with_its_fields() {
        let keys = vec![
            (case_id(1), 1, CaseKey::from_bytes([7; 32])),
            (case_id(2), 3, CaseKey::from_bytes([8; 32])),
        ];
        let offer = CheckinOffer {
            interval_secs: 3600,
            grace_secs: 600,
        };
        for m in [
            Message::case_keys(keys),
            Message::case_request(Programme::Relocation, "we must leave", "fr"),
            Message::case_request(Programme::Unknown(42), "x", ""),
            Message::case_share(case_id(3), "your visa is ready", "en", Some(offer)),
            Message::case_share(case_id(3), "the flight is booked", "en", None),
            Message::case_reply(case_id(3), "thank you", "es"),
        ] {
            assert_eq!(round_trip(&m), Ok(m.clone()));
        }
        let c = wire(&Message::case_share(case_id(3), "t", "", Some(offer)));
        assert_eq!(c.kind, 5);
        assert_eq!(c.case_id.as_ref(), &[3; 16]);
        assert_eq!(c.checkin_offer.map(|o| o.interval_secs), Some(3600));
        assert_eq!(wire(&Message::case_keys(vec![])).kind, 3);
        assert_eq!(
            wire(&Message::case_request(Programme::Legal, "", "")).programme,
            2
        );
        assert_eq!(wire(&Message::case_reply(case_id(1), "", "")).kind, 6);
    }

    #[test]
    fn a_case_kind_without_its_field_or_with_one_malformed_is_refused() {
        let keys = || Message::case_keys(vec![(case_id(1), 1, CaseKey::from_bytes([7; 32]))]);
        let share = || Message::case_share(case_id(3), "t", "", None);
        let refused = |m: Message, f: &dyn Fn(&mut pb::SealedContent)| {
            let mut c = wire(&m);
            f(&mut c);
            Message::from_wire(&c)
        };
        assert_eq!(
            refused(keys(), &|c| c.case_keys.clear()),
            Err(DecodeError::Missing("case_keys"))
        );
        assert_eq!(
            refused(keys(), &|c| c.case_keys[0].epoch = 0),
            Err(DecodeError::Invalid("case_keys.epoch"))
        );
        assert_eq!(
            refused(keys(), &|c| c.case_keys[0].key = vec![7; 31].into()),
            Err(DecodeError::Invalid("case_keys.key"))
        );
        assert_eq!(
            refused(keys(), &|c| c.case_keys[0].case_id = vec![].into()),
            Err(DecodeError::Invalid("case_keys.case_id"))
        );
        assert_eq!(
            refused(keys(), &|c| {
                let k = c.case_keys[0].clone();
                c.case_keys = vec![k; MAX_CASE_KEYS + 1];
            }),
            Err(DecodeError::Invalid("case_keys"))
        );
        assert_eq!(
            refused(Message::case_request(Programme::Medical, "t", ""), &|c| {
                c.programme = 0
            }),
            Err(DecodeError::Missing("programme"))
        );
        assert_eq!(
            refused(share(), &|c| c.case_id = vec![].into()),
            Err(DecodeError::Invalid("case_id"))
        );
        assert_eq!(
            refused(share(), &|c| {
                c.checkin_offer = Some(pb::CheckinOffer {
                    interval_secs: 0,
                    grace_secs: 60,
                })
            }),
            Err(DecodeError::Invalid("checkin_offer"))
        );
        assert_eq!(
            refused(Message::case_reply(case_id(3), "t", ""), &|c| {
                c.case_id = vec![3; 17].into()
            }),
            Err(DecodeError::Invalid("case_id"))
        );
        // Case fields on a kind that has none are ignored.
        let mut c = wire(&Message::chat("hi", "en"));
        c.case_id = vec![1; 3].into();
        c.programme = 9;
        assert_eq!(Message::from_wire(&c), Ok(Message::chat("hi", "en")));
        // A kind after these is still shown with its number.
        let mut c = wire(&Message::chat("a later kind", ""));
        c.kind = 7;
        assert_eq!(Message::from_wire(&c).map(|m| m.kind), Ok(Kind::Unknown(7)));
    }

    #[test]
    fn programmes_round_trip_by_name_and_by_number() {
        for p in Programme::ALL {
            assert_eq!(Programme::from_name(p.name()), Some(p));
            assert_eq!(Programme::from_code(p.code()), Some(p));
        }
        assert_eq!(Programme::from_code(0), None);
        assert_eq!(Programme::from_name("Legal"), Some(Programme::Legal));
        assert_eq!(Programme::Unknown(9).to_string(), "other (programme 9)");
    }
}
