//! The devices this one knows by name: the label each gave itself (from
//! its invite, carried in what it seals), the label this device gave the
//! invite it enrolled with (`hotline invite --label`, matched by the
//! invite's digest the server lists with the device), and the name this
//! device's person chose (`hotline label`). Kept only in the sealed device
//! state: the server never sees a name.
//!
//! A label is the sender's own word (a hostile device can claim any), and
//! which invite a device used is the server's word, so a device is always
//! shown with the start of its id next to its name, and the id is what
//! resolves: a name a person set wins over the invite's label, which wins
//! over the device's own.

use hotline_proto::DeviceId;
use prost::Message;

/// Hex digits of a device id shown next to a name, and the fewest a
/// person may type to name a device.
pub const SHOWN_ID_DIGITS: usize = 8;
/// The fewest hex digits accepted as the start of a device id.
pub const MIN_PREFIX_DIGITS: usize = 4;

#[derive(Clone, PartialEq, Message)]
pub(crate) struct ContactRow {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) device_id: Vec<u8>,
    /// As the device describes itself (empty: none seen).
    #[prost(string, tag = "2")]
    label: String,
    /// As this device's person named it (empty: not named).
    #[prost(string, tag = "3")]
    name: String,
    /// The label this device gave the invite it enrolled with (empty:
    /// none, or not matched yet).
    #[prost(string, tag = "4")]
    invited_as: String,
}

/// A device this one knows something about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Which.
    pub device_id: DeviceId,
    /// The label it gave itself, if it sent one.
    pub label: Option<String>,
    /// The name this device's person gave it.
    pub name: Option<String>,
    /// The label this device gave the invite it enrolled with.
    pub invited_as: Option<String>,
}

impl Contact {
    /// What to call it: the person's name for it, else the label of the
    /// invite it enrolled with, else its own label.
    pub fn called(&self) -> Option<&str> {
        self.name
            .as_deref()
            .or(self.invited_as.as_deref())
            .or(self.label.as_deref())
    }

    /// Nothing known of it by name.
    pub fn unnamed(device_id: DeviceId) -> Contact {
        Contact {
            device_id,
            label: None,
            name: None,
            invited_as: None,
        }
    }

    pub(crate) fn from_row(row: &ContactRow) -> Option<Contact> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Some(Contact {
            device_id: DeviceId::from_bytes(row.device_id.as_slice().try_into().ok()?),
            label: some(&row.label),
            name: some(&row.name),
            invited_as: some(&row.invited_as),
        })
    }

    pub(crate) fn to_row(&self) -> ContactRow {
        ContactRow {
            device_id: self.device_id.as_bytes().to_vec(),
            label: self.label.clone().unwrap_or_default(),
            name: self.name.clone().unwrap_or_default(),
            invited_as: self.invited_as.clone().unwrap_or_default(),
        }
    }
}

/// How a device is shown: `Ana P. (3f9a1c2e)`, or `3f9a1c2e` alone.
pub fn shown(device_id: &DeviceId, contact: Option<&Contact>) -> String {
    let short = &device_id.to_string()[..SHOWN_ID_DIGITS];
    match contact.and_then(Contact::called) {
        Some(name) => format!("{name} ({short})"),
        None => short.to_owned(),
    }
}

/// What a person's words for a device came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Exactly this device.
    One(DeviceId),
    /// Nothing known matches.
    None,
    /// These all match: the person must say more.
    Many(Vec<DeviceId>),
}

/// Resolves what a person typed for a device — a whole id, the start of
/// one (at least [`MIN_PREFIX_DIGITS`] hex digits), or a name or label
/// (any case) — among `known` devices (with what this device knows of
/// them). A whole id resolves to itself, known or not.
pub fn resolve<'a>(
    text: &str,
    known: impl IntoIterator<Item = (DeviceId, Option<&'a Contact>)>,
) -> Resolved {
    let text = text.trim();
    if let Ok(id) = text.parse::<DeviceId>() {
        return Resolved::One(id);
    }
    let lower = text.to_lowercase();
    let is_prefix = text.len() >= MIN_PREFIX_DIGITS
        && text.len() < 32
        && text.chars().all(|c| c.is_ascii_hexdigit());
    let mut by_id = Vec::new();
    let mut by_name = Vec::new();
    for (id, contact) in known {
        if is_prefix && id.to_string().starts_with(&lower) {
            by_id.push(id);
        }
        let names = contact
            .into_iter()
            .flat_map(|c| {
                [
                    c.name.as_deref(),
                    c.invited_as.as_deref(),
                    c.label.as_deref(),
                ]
            })
            .flatten();
        if names.into_iter().any(|n| n.to_lowercase() == lower) {
            by_name.push(id);
        }
    }
    // An id prefix is what the person read off the screen: it wins.
    let mut found = if by_id.is_empty() { by_name } else { by_id };
    found.sort();
    found.dedup();
    match found.len() {
        0 => Resolved::None,
        1 => Resolved::One(found[0]),
        _ => Resolved::Many(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(byte: u8) -> DeviceId {
        DeviceId::from_bytes([byte; 16])
    }

    #[test]
    fn ids_prefixes_and_names_resolve_and_ambiguity_is_reported() {
        let ana = Contact {
            device_id: id(0xab),
            label: Some("Ana P.".into()),
            name: None,
            invited_as: None,
        };
        let maria = Contact {
            device_id: id(0xac),
            label: Some("Ana P.".into()),
            name: Some("Maria".into()),
            invited_as: None,
        };
        let known = || [(ana.device_id, Some(&ana)), (maria.device_id, Some(&maria))];
        assert_eq!(resolve("abab", known()), Resolved::One(id(0xab)));
        assert_eq!(resolve("ACAC", known()), Resolved::One(id(0xac)));
        assert_eq!(resolve(" maria ", known()), Resolved::One(id(0xac)));
        // Both call themselves "Ana P.": the person must say which.
        assert_eq!(
            resolve("ana p.", known()),
            Resolved::Many(vec![id(0xab), id(0xac)])
        );
        assert_eq!(resolve("aba", known()), Resolved::None, "too short");
        assert_eq!(resolve("ffff", known()), Resolved::None);
        let whole = id(0x07).to_string();
        assert_eq!(resolve(&whole, known()), Resolved::One(id(0x07)));
        assert_eq!(shown(&id(0xac), Some(&maria)), "Maria (acacacac)");
        assert_eq!(shown(&id(0x07), None), "07070707");
    }

    /// The label an admin gave the invite a device enrolled with names
    /// it (below a name given here, above the device's own label).
    #[test]
    fn the_invites_label_names_a_device_below_a_name_given_here() {
        let cleo = Contact {
            device_id: id(0xc1),
            label: Some("someone".into()),
            name: None,
            invited_as: Some("Cleo".into()),
        };
        assert_eq!(cleo.called(), Some("Cleo"));
        assert_eq!(shown(&cleo.device_id, Some(&cleo)), "Cleo (c1c1c1c1)");
        assert_eq!(
            resolve("cleo", [(cleo.device_id, Some(&cleo))]),
            Resolved::One(id(0xc1))
        );
        let renamed = Contact {
            name: Some("Cleo M.".into()),
            ..cleo
        };
        assert_eq!(renamed.called(), Some("Cleo M."));
    }
}
