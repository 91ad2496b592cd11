//! The outbox seen from the commands: an SOS queued with the passphrase
//! (the server could not be reached when it was raised) goes out first,
//! with every command that connects, before that command's own work.

use std::time::Duration;

use hotline_client::messenger::Sent;
use hotline_client::{ClientError, StateDir};

use super::alert_view::raised;
use super::unlock::{keep_unlocked, open_device};

/// Sends the SOSes waiting in this device's outbox, oldest first, and
/// says what became of each; the other items wait for the command that
/// sends them. Needs the passphrase: without it at hand (no terminal, no
/// `HOTLINE_PASSPHRASE`) nothing is tried here and the command says what
/// it needs. Never fails the command that called it: what cannot go yet
/// stays queued, and that is said. The device stays unlocked for the
/// command (it is not unlocked twice).
///
/// Returns, when the device could not be unlocked (no passphrase at
/// hand, or a wrong one) and SOSes wait in its outbox as recorded beside
/// it ([`hotline_client::sos_waiting`]), what the person must hear: how
/// many wait, and why this run could not send them.
pub(super) async fn send_waiting_sos(state: &StateDir, within: Duration) -> Option<String> {
    let mut device = match open_device(state) {
        Ok(device) => device,
        Err(e) => {
            let waiting = hotline_client::sos_waiting::count(state);
            return (waiting > 0).then(|| {
                format!(
                    "{} (This run could not unlock the device: {e}.)",
                    hotline_client::sos_waiting::notice(waiting)
                )
            });
        }
    };
    // A defender device keeps the staff's public keys fresh, for an SOS
    // raised with the panic key while the server is out of reach.
    let keys_due = hotline_client::sos::has_panic_key(state)
        && hotline_client::staff_keys::due(state, hotline_client::unix_now());
    if !device.has_waiting_sos() {
        if keys_due {
            // Briefly: offline, the command must not wait twice.
            refresh_staff_keys(&device, within.min(Duration::from_secs(5))).await;
        }
        keep_unlocked(device);
        return None;
    }
    eprintln!("sending the SOS waiting in this device's outbox first");
    let sent = tokio::time::timeout(within, async {
        let session = device.connect().await?;
        let flushed = device.flush_sos_report(&session).await;
        if keys_due && flushed.stopped.is_none() {
            keep_staff_keys(device.state(), &session).await;
        }
        session.close().await;
        Ok::<_, ClientError>(flushed)
    })
    .await
    .unwrap_or_else(|_| {
        Err(ClientError::Unreachable {
            addr: device
                .state()
                .server(device.profile())
                .map(|s| s.addr)
                .unwrap_or_default(),
            reason: "no answer (timed out)".into(),
        })
    });
    let stopped = match sent {
        Ok(flushed) => {
            for w in device.take_warnings() {
                eprintln!("WARNING: {w}");
            }
            for (_, s) in &flushed.settled {
                if let Sent::Alert(a) = s {
                    println!(
                        "sent the SOS that was waiting in this device's outbox: the team was paged, alert #{}",
                        a.id
                    );
                    raised(a);
                }
            }
            flushed.stopped
        }
        Err(e) => Some(e),
    };
    if let Some(e) = stopped
        && device.has_waiting_sos()
    {
        eprintln!(
            "NOBODY HAS BEEN ALERTED YET: the SOS waiting in this device's outbox could not be sent ({e}); \
             it stays queued and goes out with the next command that connects"
        );
    }
    keep_unlocked(device);
    None
}

/// Connects (within `within`) and keeps the staff's keys fresh; a failure
/// is only a warning (the keys kept before stay).
async fn refresh_staff_keys(device: &hotline_client::messenger::Device, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        // Out of reach: the command says so itself.
        if let Ok(session) = device.connect().await {
            keep_staff_keys(device.state(), &session).await;
            session.close().await;
        }
    })
    .await;
}

/// Keeps the staff's public keys over `session` for an SOS raised
/// offline with the panic key ([`hotline_client::staff_keys`]).
async fn keep_staff_keys(state: &StateDir, session: &hotline_client::Session) {
    if let Err(e) = hotline_client::staff_keys::refresh(state, session).await {
        eprintln!(
            "WARNING: the staff's keys could not be kept on this device for an SOS raised offline without the passphrase: {e}"
        );
    }
}
