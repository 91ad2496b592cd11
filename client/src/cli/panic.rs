//! The panic outbox seen from the commands: an SOS queued on this device
//! without the passphrase goes out first, with the panic key.

use std::time::Duration;

use hotline_client::StateDir;

use super::alert_view::raised;

/// Sends the SOS waiting in the panic outbox (queued by an earlier run
/// without the passphrase), first of anything, and says what became of
/// it. Never fails the command that called it: if it cannot go yet, it
/// stays queued and that is said.
pub(super) async fn flush_panic_outbox(state: &StateDir, within: Duration) {
    match hotline_client::panic_outbox::pending(state) {
        Ok(None) => return,
        Ok(Some(_)) => {}
        Err(e) => {
            eprintln!("WARNING: {e}");
            return;
        }
    }
    eprintln!("sending the SOS waiting on this device (queued earlier without the passphrase)");
    let flushed = tokio::time::timeout(within, hotline_client::panic_outbox::flush(state))
        .await
        .unwrap_or_else(|_| {
            Err(hotline_client::ClientError::Unreachable {
                addr: state
                    .load_profile()
                    .and_then(|p| state.server(&p))
                    .map(|s| s.addr)
                    .unwrap_or_default(),
                reason: "no answer (timed out)".into(),
            })
        });
    match flushed {
        Ok(Some((alert, warnings))) => {
            for w in warnings {
                eprintln!("WARNING: {w}");
            }
            println!(
                "sent the SOS that was waiting on this device: the team was paged, alert #{}",
                alert.id
            );
            raised(&alert);
        }
        Ok(None) => {}
        Err(e) => eprintln!(
            "NOBODY HAS BEEN ALERTED YET: the SOS waiting on this device could not be sent ({e}); \
             it stays queued and goes out with the next run"
        ),
    }
}
