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
    let mine = match alert {
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
            let what = Outgoing::Reply {
                alert: alert_id,
                to: a.defender,
            };
            let mine = device.queue_item(message.as_bytes(), what)?;
            session.close().await;
            mine
        }
        None => device.queue_item(message.as_bytes(), Outgoing::Message { to })?,
    };
    if let Some(settled) = deliver(&mut device, Some(mine)).await? {
        for (id, s) in settled {
            match s {
                Sent::Message { id: server_id, .. } => println!(
                    "message {server_id} sent, end-to-end encrypted, to the staff on the signed roster"
                ),
                Sent::Dropped { reason, .. } if id == mine => {
                    bail!("{reason}. It was removed from the outbox and will not be sent again")
                }
                _ => {}
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

/// `hotline outbox`: lists what waits, in the order it will go; then
/// sends it, unless `list_only`. `--drop N` removes item N instead.
pub(super) async fn outbox(
    state: &StateDir,
    list_only: bool,
    drop: Option<usize>,
) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    if let Some(n) = drop {
        let Some(index) = n.checked_sub(1) else {
            bail!("items are numbered from 1, as `hotline outbox --list` shows them");
        };
        let gone = device.drop_pending(index)?;
        println!(
            "removed item {n} ({}, written {}): it will not be sent",
            describe(&gone.what),
            date(gone.created_at)
        );
        return Ok(());
    }
    let waiting = device.pending();
    if waiting.is_empty() {
        println!("nothing waiting to be sent");
        return Ok(());
    }
    for (i, w) in waiting.iter().enumerate() {
        println!(
            "{:>3}  {:<28} written {}  {} bytes",
            i + 1,
            describe(&w.what),
            date(w.created_at),
            w.len
        );
    }
    if list_only {
        return Ok(());
    }
    if let Some(settled) = deliver(&mut device, None).await? {
        let sent = settled
            .iter()
            .filter(|(_, s)| !matches!(s, Sent::Dropped { .. }))
            .count();
        println!("sent {sent} of {} item(s)", waiting.len());
        for (_, s) in settled {
            if let Sent::Alert(a) = s {
                println!(
                    "  alert {} raised ({}); {} paged",
                    a.id, a.priority, a.paged
                );
            }
        }
    }
    Ok(())
}

/// What an outbox item is, in a few words.
fn describe(what: &Outgoing) -> String {
    match what {
        Outgoing::Message { to: None } => "a message to the staff".into(),
        Outgoing::Message { to: Some(_) } => "a message to one device".into(),
        Outgoing::Reply { alert, .. } => format!("a reply in alert #{alert}"),
        Outgoing::Alert(p) => format!("an SOS ({p})"),
    }
}

/// `hotline inbox` (and `hotline messages`).
pub(super) async fn inbox(state: &StateDir) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let session = device.connect().await?;
    super::unlock::after_unlock(device.state(), &session).await;
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
        let panic = if m.via_panic_key {
            " (SOS sent with the panic key, without the passphrase)"
        } else {
            ""
        };
        println!("[{}] from {who}{thread}{panic}:", date(m.timestamp));
        println!("  {}", String::from_utf8_lossy(&m.body));
    }
    if !shown.is_empty() {
        session.mark_read(shown).await?;
    }
    session.close().await;
    Ok(())
}

/// Sends what the outbox holds, and says plainly what could not be sent
/// and was removed (but for `mine`, the command's own item, which the
/// command reports itself). If the server cannot be reached, says what is waiting
/// and returns `None`: it goes out on the next command that reaches the
/// server.
pub(super) async fn deliver(
    device: &mut Device,
    mine: Option<[u8; 16]>,
) -> Result<Option<Vec<([u8; 16], Sent)>>, ClientError> {
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
    super::unlock::after_unlock(device.state(), &session).await;
    device.sync_prekeys(&session).await?;
    let settled = device.flush_tracked(&session).await?;
    session.close().await;
    for (id, s) in &settled {
        if let Sent::Dropped { what, reason, .. } = s
            && Some(*id) != mine
        {
            eprintln!(
                "NOT SENT: {} was removed from the outbox: {reason}",
                describe(what)
            );
        }
    }
    for w in device.take_warnings() {
        eprintln!("WARNING: {w}");
    }
    Ok(Some(settled))
}
