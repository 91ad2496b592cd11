//! What a case's fields are: the entities, their field numbers, names
//! and value kinds (docs/protocol.md, section 9.4), values as events set
//! them, and how each reads in words. Pure.

use hotline_proto::case::content::{FieldChange, FieldValueKind};
use hotline_proto::case::relocation::Stage;

/// Entity numbers (`CaseEntity`).
pub mod entity {
    /// The case itself (entity id empty).
    pub const CASE: i32 = 1;
    /// A person of the case.
    pub const PERSON: i32 = 2;
    /// A relocation of the case.
    pub const RELOCATION: i32 = 3;
}

/// Field numbers of the case (entity 1).
pub mod case_field {
    /// Reference (text).
    pub const REFERENCE: u32 = 1;
    /// Summary (text).
    pub const SUMMARY: u32 = 2;
    /// Country of origin (text, ISO alpha-2).
    pub const COUNTRY: u32 = 3;
    /// Risk level (number 1-4).
    pub const RISK: u32 = 4;
    /// Programme (number, `CaseProgramme`).
    pub const PROGRAMME: u32 = 5;
    /// Coordinators (ids: staff devices).
    pub const COORDINATORS: u32 = 6;
    /// Defender devices (ids).
    pub const DEFENDERS: u32 = 7;
    /// Linked alerts (ids: 8-byte big-endian alert ids).
    pub const ALERTS: u32 = 8;
}

/// Field numbers of a person (entity 2).
pub mod person_field {
    /// Name (text).
    pub const NAME: u32 = 1;
    /// Relationship (number 1-6).
    pub const RELATIONSHIP: u32 = 2;
    /// Year of birth (number).
    pub const BORN: u32 = 3;
    /// Travel document (number 1-4).
    pub const DOCUMENT: u32 = 4;
    /// Specific needs (text).
    pub const NEEDS: u32 = 5;
    /// Removed (number 1).
    pub const REMOVED: u32 = 6;
}

/// Field numbers of a relocation (entity 3).
pub mod relocation_field {
    /// People covered (ids: person ids).
    pub const PEOPLE: u32 = 1;
    /// Origin (text).
    pub const ORIGIN: u32 = 2;
    /// Host country (text, ISO alpha-2).
    pub const HOST_COUNTRY: u32 = 3;
    /// Host city (text).
    pub const HOST_CITY: u32 = 4;
    /// Planned departure (YYYY-MM-DD).
    pub const PLANNED_DEPARTURE: u32 = 5;
    /// Planned arrival.
    pub const PLANNED_ARRIVAL: u32 = 6;
    /// Actual departure.
    pub const ACTUAL_DEPARTURE: u32 = 7;
    /// Actual arrival.
    pub const ACTUAL_ARRIVAL: u32 = 8;
    /// Accommodation (text).
    pub const ACCOMMODATION: u32 = 9;
    /// Stage (number: relocation stage numbers).
    pub const STAGE: u32 = 10;
    /// Hosted until (YYYY-MM-DD).
    pub const HOSTED_UNTIL: u32 = 11;
}

/// What kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `FieldValue.text`.
    Text,
    /// `FieldValue.number`.
    Number,
    /// `FieldValue.ids`.
    Ids,
}

/// A field this version knows: its name for users and its value kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Its name, as commands take it and `case show` prints it.
    pub name: &'static str,
    /// The kind its values have.
    pub kind: ValueKind,
}

const CASE_FIELDS: [(u32, FieldSpec); 8] = [
    (1, spec("reference", ValueKind::Text)),
    (2, spec("summary", ValueKind::Text)),
    (3, spec("country", ValueKind::Text)),
    (4, spec("risk", ValueKind::Number)),
    (5, spec("programme", ValueKind::Number)),
    (6, spec("coordinators", ValueKind::Ids)),
    (7, spec("defender devices", ValueKind::Ids)),
    (8, spec("linked alerts", ValueKind::Ids)),
];
const PERSON_FIELDS: [(u32, FieldSpec); 6] = [
    (1, spec("name", ValueKind::Text)),
    (2, spec("relationship", ValueKind::Number)),
    (3, spec("born", ValueKind::Number)),
    (4, spec("document", ValueKind::Number)),
    (5, spec("needs", ValueKind::Text)),
    (6, spec("removed", ValueKind::Number)),
];
const RELOCATION_FIELDS: [(u32, FieldSpec); 11] = [
    (1, spec("people", ValueKind::Ids)),
    (2, spec("origin", ValueKind::Text)),
    (3, spec("host country", ValueKind::Text)),
    (4, spec("host city", ValueKind::Text)),
    (5, spec("planned departure", ValueKind::Text)),
    (6, spec("planned arrival", ValueKind::Text)),
    (7, spec("actual departure", ValueKind::Text)),
    (8, spec("actual arrival", ValueKind::Text)),
    (9, spec("accommodation", ValueKind::Text)),
    (10, spec("stage", ValueKind::Number)),
    (11, spec("hosted until", ValueKind::Text)),
];

const fn spec(name: &'static str, kind: ValueKind) -> FieldSpec {
    FieldSpec { name, kind }
}

fn table(entity: i32) -> &'static [(u32, FieldSpec)] {
    match entity {
        entity::CASE => &CASE_FIELDS,
        entity::PERSON => &PERSON_FIELDS,
        entity::RELOCATION => &RELOCATION_FIELDS,
        _ => &[],
    }
}

/// The field `field` of `entity`, if this version knows it.
pub fn field_spec(entity: i32, field: u32) -> Option<FieldSpec> {
    table(entity)
        .iter()
        .find(|(n, _)| *n == field)
        .map(|(_, s)| *s)
}

/// The number of the field of `entity` named `name` (as users type it:
/// any case, `-` or `_` for spaces).
pub fn field_by_name(entity: i32, name: &str) -> Option<(u32, FieldSpec)> {
    let name = name.trim().to_lowercase().replace(['-', '_'], " ");
    let name = match name.as_str() {
        "country of origin" | "origin country" => "country",
        "risk level" => "risk",
        "year of birth" => "born",
        "travel document" => "document",
        "specific needs" => "needs",
        "city" => "host city",
        "to" => "host country",
        other => other,
    };
    table(entity).iter().find(|(_, s)| s.name == name).copied()
}

/// A value as an event set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A number.
    Number(u64),
    /// A list of ids.
    Ids(Vec<Vec<u8>>),
    /// A value kind this version does not know (or none at all).
    Unknown,
}

impl Value {
    pub(crate) fn from_change(change: &FieldChange) -> Value {
        match change.value.as_ref().and_then(|v| v.kind.as_ref()) {
            Some(FieldValueKind::Text(t)) => Value::Text(t.clone()),
            Some(FieldValueKind::Number(n)) => Value::Number(*n),
            Some(FieldValueKind::Ids(l)) => Value::Ids(l.ids.iter().map(|i| i.to_vec()).collect()),
            None => Value::Unknown,
        }
    }

    fn kind(&self) -> Option<ValueKind> {
        match self {
            Value::Text(_) => Some(ValueKind::Text),
            Value::Number(_) => Some(ValueKind::Number),
            Value::Ids(_) => Some(ValueKind::Ids),
            Value::Unknown => None,
        }
    }

    /// The text, if it is text.
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The number, if it is one.
    pub fn number(&self) -> Option<u64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The ids, if it is a list of ids.
    pub fn ids(&self) -> Option<&[Vec<u8>]> {
        match self {
            Value::Ids(ids) => Some(ids),
            _ => None,
        }
    }
}

/// Risk levels, by number.
pub const RISKS: [&str; 4] = ["low", "medium", "high", "critical"];
/// Programmes, by number (`CaseProgramme`).
pub const PROGRAMMES: [&str; 4] = ["relocation", "legal", "medical", "subsistence"];
/// Relationships, by number.
pub const RELATIONSHIPS: [&str; 6] = [
    "self",
    "spouse or partner",
    "child",
    "parent",
    "sibling",
    "other",
];
/// Travel document states, by number.
pub const DOCUMENTS: [&str; 4] = ["none", "valid", "expired", "applied for"];

/// The word for number `n` (1-based) of `names`.
fn named(names: &[&'static str], n: u64) -> Option<&'static str> {
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| names.get(i).copied())
}

/// The number (1-based) of `word` in `names`, as users type it.
pub fn number_of(names: &[&str], word: &str) -> Option<u64> {
    let w = word.trim().to_lowercase().replace(['-', '_'], " ");
    let w = match w.as_str() {
        "spouse" | "partner" => "spouse or partner",
        "applied" => "applied for",
        other => other,
    }
    .to_owned();
    names.iter().position(|n| *n == w).map(|i| i as u64 + 1)
}

/// A value in words, for `field` of `entity` (`ids` shows a device, person
/// or alert id).
pub fn show_value(entity: i32, field: u32, value: &Value, ids: &dyn Fn(&[u8]) -> String) -> String {
    let Some(spec) = field_spec(entity, field) else {
        return format!("{} (a field this version does not know)", raw(value));
    };
    if value.kind() != Some(spec.kind) {
        return "a value this version does not know".into();
    }
    let names: Option<&[&'static str]> = match (entity, field) {
        (entity::CASE, case_field::RISK) => Some(&RISKS),
        (entity::CASE, case_field::PROGRAMME) => Some(&PROGRAMMES),
        (entity::PERSON, person_field::RELATIONSHIP) => Some(&RELATIONSHIPS),
        (entity::PERSON, person_field::DOCUMENT) => Some(&DOCUMENTS),
        _ => None,
    };
    match value {
        Value::Number(n) if (entity, field) == (entity::RELOCATION, relocation_field::STAGE) => {
            stage_of(*n).map_or_else(|| format!("stage {n} (not known here)"), |s| s.to_string())
        }
        Value::Number(n) if (entity, field) == (entity::PERSON, person_field::REMOVED) => {
            if *n == 1 {
                "yes".into()
            } else {
                format!("{n} (not known here)")
            }
        }
        Value::Number(n) => match names {
            Some(names) => {
                named(names, *n).map_or_else(|| format!("{n} (not known here)"), str::to_owned)
            }
            None => n.to_string(),
        },
        Value::Text(t) => t.clone(),
        Value::Ids(list) if (entity, field) == (entity::CASE, case_field::ALERTS) => list
            .iter()
            .map(|a| match <[u8; 8]>::try_from(a.as_slice()) {
                Ok(b) => format!("#{}", u64::from_be_bytes(b)),
                Err(_) => "an alert id this version does not read".into(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Ids(list) => list.iter().map(|i| ids(i)).collect::<Vec<_>>().join(", "),
        Value::Unknown => "a value this version does not know".into(),
    }
}

pub(crate) fn raw(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Number(n) => n.to_string(),
        Value::Ids(l) => format!("{} ids", l.len()),
        Value::Unknown => "a value this version does not know".into(),
    }
}

pub(crate) fn stage_of(n: u64) -> Option<Stage> {
    u8::try_from(n).ok().and_then(Stage::from_number)
}

/// A field's name in words, known or not.
pub fn field_name(entity: i32, field: u32) -> String {
    match field_spec(entity, field) {
        Some(s) => s.name.to_owned(),
        None => format!("a field this version does not know (entity {entity}, field {field})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_read_as_users_type_them() {
        assert_eq!(number_of(&RISKS, "High"), Some(3));
        assert_eq!(number_of(&RELATIONSHIPS, "partner"), Some(2));
        assert_eq!(number_of(&DOCUMENTS, "applied-for"), Some(4));
        assert_eq!(
            field_by_name(entity::CASE, "Risk"),
            Some((4, CASE_FIELDS[3].1))
        );
        assert_eq!(
            field_by_name(entity::PERSON, "year-of-birth").map(|f| f.0),
            Some(3)
        );
        assert_eq!(field_by_name(entity::CASE, "nonsense"), None);
        assert_eq!(
            show_value(1, 4, &Value::Number(4), &|_| String::new()),
            "critical"
        );
        assert_eq!(
            show_value(1, 4, &Value::Number(9), &|_| String::new()),
            "9 (not known here)"
        );
        assert_eq!(
            show_value(
                1,
                8,
                &Value::Ids(vec![7u64.to_be_bytes().to_vec()]),
                &|_| String::new()
            ),
            "#7"
        );
    }
}
