//! What a sealed content says: its kind (an SOS, a message), an SOS's
//! category and priority, the text and the language it is written in.
//! These are fields 7-11 of `SealedContent`; the envelope
//! ([`super::envelope`]) seals and opens them with the rest.
//!
//! The version rule (docs/protocol.md, "The content message"): unknown
//! fields are ignored; an unknown kind or category number is kept and
//! shown with its number, never dropped; an unknown priority number or a
//! language that is not a well-formed tag reads as not given; a missing
//! text reads as empty. A content whose kind is 0 is the old form, whose
//! `body` holds the text (an SOS's category on a first line
//! `category: NAME`): [`Message::from_old_body`] reads it.

use crate::alert::Priority;
use crate::pb;

/// The longest language tag a content carries (BCP 47 tags in practice
/// are far shorter; 35 is RFC 5646's minimum buffer for a tag).
pub const MAX_LANGUAGE_LEN: usize = 35;

/// What a content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The text of an SOS.
    Sos,
    /// A conversation message.
    Message,
    /// A kind this version does not know, by its number (never 0): shown
    /// as a message, with the number.
    Unknown(i32),
}

impl Kind {
    fn to_wire(self) -> i32 {
        match self {
            Kind::Sos => pb::ContentKind::Sos as i32,
            Kind::Message => pb::ContentKind::Message as i32,
            Kind::Unknown(n) => n,
        }
    }

    fn from_wire(n: i32) -> Kind {
        match pb::ContentKind::try_from(n) {
            Ok(pb::ContentKind::Sos) => Kind::Sos,
            Ok(pb::ContentKind::Message) => Kind::Message,
            _ => Kind::Unknown(n),
        }
    }
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

    /// Writes fields 7-11 of `into` (and leaves `body` empty).
    pub(crate) fn to_wire(&self, into: &mut pb::SealedContent) {
        into.kind = self.kind.to_wire();
        into.category = self.category.map_or(0, Category::code);
        into.priority = self.priority.map_or(0, Priority::to_wire);
        into.text = self.text.clone();
        into.language = self.language.clone();
    }

    /// Reads a content as the version rule says; never fails (a malformed
    /// `text`, not UTF-8, is refused by the protobuf decoder before this).
    pub(crate) fn from_wire(content: &pb::SealedContent) -> Message {
        if content.kind == 0 {
            return Message::from_old_body(&content.body);
        }
        Message {
            kind: Kind::from_wire(content.kind),
            category: Category::from_code(content.category),
            priority: Priority::from_wire(content.priority).ok(),
            text: content.text.clone(),
            language: language_tag(&content.language).unwrap_or_default(),
        }
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
        let m = Message::from_wire(&c);
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
        let m = Message::from_wire(&c);
        assert_eq!(m, Message::chat("", "es"));
    }

    #[test]
    fn the_old_form_reads_with_its_category_and_loses_nothing() {
        let old = |body: &[u8]| {
            Message::from_wire(&pb::SealedContent {
                body: body.to_vec().into(),
                ..Default::default()
            })
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
        assert_eq!(Message::from_wire(&c).language, "");
    }
}
