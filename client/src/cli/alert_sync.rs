//! The cases synced for what a staff device shows of an alert: the
//! journey line ("case C-…, relocation to … in transit since …") is read
//! from this device's replica, so `hotline alerts` and `hotline watch`
//! (on a page) bring the replica up to date first, over the connection
//! they hold. What the sync brings is handled as a case command's sync
//! handles it (an erased case's words forgotten, an erasure request
//! noted), so nothing is skipped for the next case command.

use hotline_client::Session;
use hotline_client::cases::{open_replica, sync};
use hotline_client::messenger::Device;
use hotline_proto::DeviceId;
use hotline_proto::case::CaseState;

use super::case_view::short;

/// Syncs this staff device's case replica over `session`. An error
/// leaves the replica as it was (the journey line then reads what it
/// holds); the caller says nothing of it.
pub(super) async fn sync_cases(device: &mut Device, session: &Session) -> anyhow::Result<()> {
    if !device.profile().role()?.is_staff() {
        return Ok(());
    }
    let roster = device.roster(session).await?;
    let mut replica = open_replica(device)?;
    let history = device.history()?;
    let request_text =
        |d: &[u8; 32], who: &DeviceId| super::case_links::request_text(&history, d, who);
    let report = sync::sync_cases(session, &mut replica, &roster, &request_text).await?;
    for w in &report.warnings {
        eprintln!("WARNING: {w}");
    }
    for c in &report.erased {
        if let Err(e) = device.remove_case_texts(c, &report.erased_requests) {
            eprintln!(
                "WARNING: the messages of erased case {} could not be removed from this device's history: {e}",
                short(c.as_bytes())
            );
        }
        if let Err(e) = device.drop_case_items(c) {
            eprintln!(
                "WARNING: the messages about erased case {} waiting to be sent could not be dropped: {e}",
                short(c.as_bytes())
            );
        }
        println!(
            "case {} was erased: its events and keys are gone from this device",
            short(c.as_bytes())
        );
    }
    for c in &report.requested {
        if replica.view(c)?.state == Some(CaseState::Requested) {
            println!("new request from a defender: case {}", short(c.as_bytes()));
        }
    }
    for c in &report.erasure_requested {
        replica.set_erasure_requested(c, true)?;
        println!(
            "erasure of case {} was asked for: a second coordinator or admin must confirm it",
            short(c.as_bytes())
        );
    }
    replica.refold_unreadable()?;
    Ok(())
}
