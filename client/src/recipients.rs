//! Who a message is sealed to: the prekey bundles the server hands out,
//! kept only where their keys check out against the signed roster.

use hotline_proto::DeviceId;
use hotline_proto::e2e::envelope::Recipient;
use hotline_proto::e2e::roster::Roster;
use hotline_proto::message::PrekeyBundle;

use crate::error::ClientError;

/// Keeps only recipients whose keys check out: staff keys must be the
/// roster's (its members at `at`: now, or an expired roster's last valid
/// moment); any other device only if it is the explicit `to` of a staff
/// sender (the server cannot add one); and every prekey must be signed by
/// its device's identity key and unexpired at `now`.
pub fn check_bundles(
    roster: &Roster,
    bundles: Vec<PrekeyBundle>,
    to: Option<DeviceId>,
    sender_is_staff: bool,
    at: u64,
    now: u64,
) -> Result<Vec<Recipient>, ClientError> {
    let mut out = Vec::new();
    for b in bundles {
        if b.identity_key.device_id() != b.device_id {
            return Err(ClientError::State(
                "the server sent a key that does not match its device".into(),
            ));
        }
        match roster.member(&b.device_id, at) {
            Some(entry) if entry.identity_key == b.identity_key => {}
            Some(_) => {
                return Err(ClientError::State(
                    "the server sent a staff key that differs from the signed roster".into(),
                ));
            }
            None if Some(b.device_id) == to && sender_is_staff => {}
            None => continue, // not on the roster, not asked for: never a recipient
        }
        let Some(signed) = b.prekey else { continue };
        let prekey = signed
            .verify(&b.identity_key, now)
            .map_err(|e| ClientError::State(e.to_string()))?;
        out.push(Recipient {
            device_id: b.device_id,
            prekey_id: prekey.id,
            key: prekey.public_key,
        });
    }
    if out.is_empty() {
        return Err(ClientError::State(
            "no recipient has published keys yet".into(),
        ));
    }
    Ok(out)
}
