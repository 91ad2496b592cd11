//! The duress rule for everything staff send to a defender's device (a
//! case share, a journey's check-in offer, a decline notice, a message
//! `--to` a defender): refused while that device has an open alert its
//! defender must never hear about — duress, check-ins changed or
//! stopped, wrong check-in codes (`AlertOrigin::shown_to_defender` is
//! false): the phone may be in a coercer's hands. Only the server knows
//! the open alerts: offline, nothing is sent (a share waits for nothing:
//! the person types it again online).

use anyhow::bail;
use hotline_client::Session;
use hotline_client::messenger::Device;
use hotline_proto::alert::AlertInfo;
use hotline_proto::identity::DeviceId;

/// The open alerts of `devices` whose defender must not be reached: the
/// server's answer (staff see every alert).
pub(super) async fn open_hidden_alerts(
    session: &Session,
    devices: &[DeviceId],
) -> anyhow::Result<Vec<AlertInfo>> {
    Ok(session
        .alerts(true)
        .await?
        .into_iter()
        .filter(|a| devices.contains(&a.defender) && !a.origin.shown_to_defender())
        .collect())
}

/// What a staff member is told of one such alert (`case show`, and the
/// refusal).
pub(super) fn alert_words(device: &Device, a: &AlertInfo) -> String {
    format!(
        "{} has an open {} alert (#{}): their phone may be in someone else's hands",
        device.shown(&a.defender),
        a.origin.as_str(),
        a.id
    )
}

/// Refuses (with nothing sent) if one of `to` has an open alert its
/// defender must never hear about, or if that cannot be asked (no
/// session). `what` names what was not sent ("shared", "sent"); the
/// pair says what to do next, offline and while the alert is open.
pub(super) async fn refuse_if_coerced(
    device: &Device,
    session: Option<&Session>,
    to: &[DeviceId],
    what: &str,
    (again_online, again_resolved): (&str, &str),
) -> anyhow::Result<()> {
    let Some(session) = session else {
        bail!(
            "could not reach the server to check that {} has no open duress alert (their phone may be in someone else's hands): nothing was {what}. {again_online}",
            names(device, to)
        );
    };
    if let Some(a) = open_hidden_alerts(session, to).await?.first() {
        bail!(
            "{}. Nothing was {what}. {again_resolved}",
            alert_words(device, a)
        );
    }
    Ok(())
}

fn names(device: &Device, to: &[DeviceId]) -> String {
    let shown: Vec<String> = to.iter().map(|d| device.shown(d)).collect();
    match shown.as_slice() {
        [one] => format!("the defender's device {one}"),
        _ => format!("the defender's devices {}", shown.join(", ")),
    }
}
