//! The panic outbox seen from the commands: an SOS queued on this device
//! without the passphrase goes out first, with the panic key.

use std::time::Duration;

use hotline_client::StateDir;

use super::alert_view::raised;

/// How many SOSes wait in the panic outbox (none if its file does not
/// read: that was said when it was tried).
pub(super) fn panic_sos_waiting(state: &StateDir) -> usize {
    hotline_client::panic_outbox::pending(state).map_or(0, |w| w.len())
}

/// Sends the SOSes waiting in the panic outbox (queued by an earlier run
/// without the passphrase), oldest first, before anything else, and says
/// what became of each. Never fails the command that called it: what
/// cannot go yet stays queued, and that is said. Returns how many were
/// sent.
pub(super) async fn flush_panic_outbox(state: &StateDir, within: Duration) -> usize {
    let count = match hotline_client::panic_outbox::pending(state) {
        Ok(waiting) if waiting.is_empty() => return 0,
        Ok(waiting) => waiting.len(),
        Err(e) => {
            eprintln!("WARNING: {e}");
            return 0;
        }
    };
    if count == 1 {
        eprintln!("sending the SOS waiting on this device (queued earlier without the passphrase)");
    } else {
        eprintln!(
            "sending the {count} SOSes waiting on this device, oldest first (queued earlier without the passphrase)"
        );
    }
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
    let mut sent = 0;
    let (stopped, left) = match flushed {
        Ok(f) => {
            sent = f.sent.len();
            for (alert, warnings) in f.sent {
                for w in warnings {
                    eprintln!("WARNING: {w}");
                }
                if alert.joined_now {
                    println!(
                        "sent the SOS that was waiting on this device: added to alert #{}",
                        alert.id
                    );
                } else {
                    println!(
                        "sent the SOS that was waiting on this device: the team was paged, alert #{}",
                        alert.id
                    );
                }
                raised(&alert);
            }
            (f.stopped, f.left)
        }
        Err(e) => {
            let left = hotline_client::panic_outbox::pending(state).map_or(count, |w| w.len());
            (Some(e), left)
        }
    };
    if let Some(e) = stopped
        && left > 0
    {
        eprintln!(
            "NOBODY HAS BEEN ALERTED YET: {} could not be sent ({e}); {} with the next command \
             that connects",
            if left == 1 {
                "the SOS waiting on this device".to_owned()
            } else {
                format!("the {left} SOSes waiting on this device")
            },
            if left == 1 {
                "it stays queued on this device and goes out"
            } else {
                "they stay queued on this device and go out"
            },
        );
    }
    sent
}
