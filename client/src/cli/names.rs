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

/// The device a person named, among those this device knows by name and
/// `more` (ids the server listed): a whole id, its start (as shown next to
/// names), or a name.
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
        Resolved::None => bail!(
            "no device known here matches {text:?}: give at least {} hex digits of its id (as \
             `hotline devices` shows it), or its name (`hotline label` lists them)",
            contacts::MIN_PREFIX_DIGITS
        ),
        Resolved::Many(ids) => {
            let list: Vec<String> = ids.iter().map(|id| device.shown(id)).collect();
            bail!(
                "{text:?} matches {} devices: {}. Give more of the id",
                ids.len(),
                list.join(", ")
            )
        }
    }
}
