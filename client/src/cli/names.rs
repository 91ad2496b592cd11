//! What a person types for a device or an alert: the start of an id, a
//! name, `#35`.

use anyhow::bail;
use hotline_client::contacts::{self, Contact, Resolved};
use hotline_client::messenger::Device;
use hotline_proto::DeviceId;

/// An alert id as a person types it: `35` or `#35`.
pub(super) fn parse_alert_id(text: &str) -> Result<u64, String> {
    let digits = text.trim().trim_start_matches('#');
    match digits.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!(
            "{text:?} is not an alert id: give its number as `hotline alerts` shows it, such as 35 or #35"
        )),
    }
}

/// The one rule for naming a device, said the same way by every command
/// that takes one (and in the README).
pub(super) const DEVICE_RULE: &str = "give at least 4 hex digits of its id (its start, as `hotline devices` and the names shown next to ids show it) that match no other device known here, its whole id, or its name (`hotline label` lists the names known here)";

/// The device a person named, among those this device knows by name and
/// `more` (ids known otherwise: the server's device list, a roster, the
/// alerts): a whole id, its start (as shown next to names), or a name.
pub(super) fn device_arg(
    device: &Device,
    text: &str,
    more: &[DeviceId],
) -> anyhow::Result<DeviceId> {
    let known: Vec<Contact> = device.contacts();
    let mut candidates: Vec<(DeviceId, Option<&Contact>)> =
        known.iter().map(|c| (c.device_id, Some(c))).collect();
    for id in more {
        if !known.iter().any(|c| c.device_id == *id) {
            candidates.push((*id, None));
        }
    }
    match contacts::resolve(text, candidates) {
        Resolved::One(id) => Ok(id),
        other => bail!(refusal(text, &other, |id| device.shown(id))),
    }
}

/// What a person is told when `text` names no device, or several.
fn refusal(text: &str, resolved: &Resolved, shown: impl Fn(&DeviceId) -> String) -> String {
    match resolved {
        Resolved::Many(ids) => {
            let list: Vec<String> = ids.iter().map(shown).collect();
            let hex = text.trim().chars().all(|c| c.is_ascii_hexdigit());
            format!(
                "ambiguous: {text:?} matches {} devices known here: {}; {}",
                ids.len(),
                list.join(", "),
                if hex {
                    "give more hex digits of its id"
                } else {
                    "name it by at least 4 hex digits of its id instead"
                }
            )
        }
        _ => format!("no device known here matches {text:?}: {DEVICE_RULE}"),
    }
}

/// The devices this device knows of ([`Device::known_device_ids`]), and,
/// through `session`, those the server lists: every enrolled device for
/// an admin (the labels of the invites this device made name those that
/// used them), the alerts' defenders for staff.
pub(super) async fn known_devices(
    device: &mut Device,
    session: Option<&hotline_client::Session>,
) -> Vec<DeviceId> {
    let mut ids = device.known_device_ids();
    if let Some(session) = session {
        if session.role() == hotline_proto::Role::Admin
            && let Ok(listed) = session.devices().await
        {
            learn_invite_labels(device, &listed);
            ids.extend(listed.iter().map(|d| d.device_id));
        }
        if session.role().is_staff()
            && let Ok(alerts) = session.alerts(false).await
        {
            ids.extend(alerts.iter().map(|a| a.defender));
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Names the devices of the server's list that used an invite this device
/// labelled; a failure to save is a warning (the names come again with
/// the next list).
pub(super) fn learn_invite_labels(
    device: &mut Device,
    listed: &[hotline_proto::message::DeviceInfo],
) {
    match device.learn_invite_labels(listed, hotline_client::unix_now()) {
        Ok(named) => {
            for (id, label) in named {
                let short = &id.to_string()[..contacts::SHOWN_ID_DIGITS];
                println!("device {short} enrolled with the invite labelled {label:?}");
            }
        }
        Err(e) => eprintln!("warning: the labels of this device's invites were not saved ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_of_several_devices_is_ambiguous_and_lists_them() {
        let a = DeviceId::from_bytes([0xab; 16]);
        let mut bytes = [0xab; 16];
        bytes[2] = 0x01;
        let b = DeviceId::from_bytes(bytes);
        let shown = |id: &DeviceId| id.to_string()[..8].to_owned();
        assert_eq!(
            refusal("abab", &Resolved::Many(vec![a, b]), shown),
            "ambiguous: \"abab\" matches 2 devices known here: abababab, abab01ab; give more hex digits of its id"
        );
        assert_eq!(
            refusal("Cleo", &Resolved::Many(vec![a, b]), shown),
            "ambiguous: \"Cleo\" matches 2 devices known here: abababab, abab01ab; name it by at least 4 hex digits of its id instead"
        );
        let none = refusal("cleo", &Resolved::None, shown);
        assert!(
            none.starts_with("no device known here matches \"cleo\": give at least 4 hex digits of its id (its start"),
            "{none}"
        );
    }
}
