//! End-to-end messages: sending (and replying in an alert's thread), the
//! outbox, delivery states and the inbox.

use anyhow::bail;
use hotline_client::messenger::{Device, Sent};
use hotline_client::outbox::Outgoing;
use hotline_client::{ClientError, StateDir};
use hotline_proto::DeviceId;

use super::date::date;
use super::unlock::{connect, open_device};

/// `hotline send` (and `hotline reply`).
pub(super) async fn send(
    state: &StateDir,
    message: &str,
    to: Option<DeviceId>,
    alert: Option<u64>,
) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    match alert {
        Some(alert_id) => {
            // Threads need the alert's defender: this asks the server.
            let session = device.connect().await?;
            let found = session
                .alerts(false)
                .await?
                .into_iter()
                .find(|a| a.id == alert_id);
            let Some(a) = found else {
                bail!("no alert {alert_id} visible to this device");
            };
            device.queue(
                message.as_bytes(),
                Outgoing::Reply {
                    alert: alert_id,
                    to: a.defender,
                },
            )?;
            session.close().await;
        }
        None => {
            device.queue(message.as_bytes(), Outgoing::Message { to })?;
        }
    }
    if let Some(sent) = deliver(&mut device).await? {
        for s in sent {
            if let Sent::Message { id, .. } = s {
                println!(
                    "message {id} sent, end-to-end encrypted, to the staff on the signed roster"
                );
            }
        }
    }
    Ok(())
}

/// `hotline delivery`.
pub(super) async fn delivery(state: &StateDir, ids: Vec<u64>) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let states = session.delivery(ids).await?;
    if states.is_empty() {
        println!("no such messages sent by this device");
    }
    for d in states {
        println!(
            "message {}: delivered to {} of {} devices, read on {}",
            d.id, d.delivered, d.recipients, d.read
        );
    }
    session.close().await;
    Ok(())
}

/// `hotline outbox`.
pub(super) async fn outbox(state: &StateDir) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    if device.pending().is_empty() {
        println!("nothing waiting to be sent");
    } else if deliver(&mut device).await?.is_some() {
        println!("everything waiting was sent");
    }
    Ok(())
}

/// `hotline inbox` (and `hotline messages`).
pub(super) async fn inbox(state: &StateDir) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let session = device.connect().await?;
    device.sync_prekeys(&session).await?;
    let waiting = device.pending().len();
    if waiting > 0 {
        device.flush(&session).await?;
        println!("sent {waiting} item(s) that were waiting in the outbox");
    }
    let messages = device.receive(&session).await?;
    for w in device.take_warnings() {
        eprintln!("WARNING: {w}");
    }
    if messages.is_empty() {
        println!("no new messages");
    }
    let shown: Vec<u64> = messages.iter().map(|m| m.id).collect();
    for m in messages {
        let who = match m.sender_role {
            Some(role) => format!("{role} {}", m.sender),
            None => format!("defender {}", m.sender),
        };
        let thread = if m.thread != 0 {
            format!(" [alert #{}]", m.thread)
        } else {
            String::new()
        };
        println!("[{}] from {who}{thread}:", date(m.timestamp));
        println!("  {}", String::from_utf8_lossy(&m.body));
    }
    if !shown.is_empty() {
        session.mark_read(shown).await?;
    }
    session.close().await;
    Ok(())
}

/// Sends what the outbox holds. If the server cannot be reached, says what
/// is waiting and returns `None`: it goes out on the next command that
/// reaches the server.
pub(super) async fn deliver(device: &mut Device) -> Result<Option<Vec<Sent>>, ClientError> {
    let session = match device.connect().await {
        Ok(s) => s,
        Err(ClientError::Unreachable { .. } | ClientError::ConnectionLost(_)) => {
            let n = device.pending().len();
            println!(
                "the server cannot be reached: {n} item(s) waiting in the outbox, sent as soon as it can be (try `hotline outbox`)"
            );
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    device.sync_prekeys(&session).await?;
    let sent = device.flush(&session).await?;
    session.close().await;
    Ok(Some(sent))
}
