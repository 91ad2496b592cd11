//! Alerts: raising one (defenders), listing, claiming, resolving and
//! calling them off, duty, and the live watch for pages (staff).

use std::time::Duration;

use anyhow::bail;
use hotline_client::StateDir;
use hotline_client::messenger::Sent;
use hotline_client::outbox::Outgoing;
use hotline_proto::DeviceId;
use hotline_proto::alert::{AlertOrigin, CloseReason, Priority, Push};
use hotline_proto::message::DutyEntry;

use super::date::{date, late};
use super::messages::deliver;
use super::unlock::{connect, open_device, passphrase};

/// `hotline sos`.
pub(super) async fn sos(
    state: &StateDir,
    message: &str,
    priority: Priority,
    category: &str,
) -> anyhow::Result<()> {
    // Only defenders raise an SOS: say so before anything is written.
    if let Ok(role) = state.load_profile().and_then(|p| p.role())
        && role.is_staff()
    {
        bail!(
            "only defenders raise an SOS; to write to the team, use `hotline send`, or `hotline reply --alert N` in an alert's thread"
        );
    }
    let mut device = open_device(state)?;
    let body = format!("category: {category}\n{message}");
    let mine = device.queue_item(body.as_bytes(), Outgoing::Alert(priority))?;
    if let Some(settled) = deliver(&mut device, Some(mine)).await? {
        for (id, s) in settled {
            if let Sent::Dropped { reason, .. } = &s
                && id == mine
            {
                bail!("{reason}. It was removed from the outbox and will not be sent again");
            }
            if let Sent::Alert(alert) = s {
                println!(
                    "alert {} raised ({}); {} duty staff paged. You will be contacted.",
                    alert.id, alert.priority, alert.paged
                );
            }
        }
    }
    Ok(())
}

/// `hotline alerts`.
pub(super) async fn list(state: &StateDir, all: bool) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let alerts = session.alerts(!all).await?;
    if alerts.is_empty() {
        println!("no open alerts");
    }
    let now = hotline_client::unix_now();
    for a in alerts {
        let holder = a
            .holder
            .map(|h| format!(" held by {h}"))
            .unwrap_or_default();
        println!(
            "#{:<6} {:<9} {:<15} {:<12} {:>5} min  defender {}  paged {}{holder}{}",
            a.id,
            a.priority,
            a.origin.as_str(),
            a.status,
            now.saturating_sub(a.raised_at) / 60,
            a.defender,
            a.paged,
            late(a.checked_in_at)
        );
    }
    session.close().await;
    Ok(())
}

/// `hotline ack`.
pub(super) async fn ack(state: &StateDir, alert: u64) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let origin = session
        .alerts(false)
        .await?
        .into_iter()
        .find(|a| a.id == alert)
        .map(|a| a.origin);
    match session.claim_alert(alert).await? {
        Ok(()) => println!("{}", claimed_words(alert, origin)),
        Err(holder) => bail!("alert {alert} is already held by device {holder}"),
    }
    session.close().await;
    Ok(())
}

/// What `ack` says the defender learns of a claim.
fn claimed_words(alert: u64, origin: Option<AlertOrigin>) -> String {
    match origin {
        Some(o) if !o.shown_to_defender() => format!(
            "you hold alert {alert}; the defender is NOT told: this alert is never shown on their device, and nothing you send in its thread reaches them"
        ),
        _ => format!(
            "you hold alert {alert}; the defender sees it as acknowledged, held by your device, in `hotline alerts`, and no message unless you send one"
        ),
    }
}

/// `hotline resolve`.
pub(super) async fn resolve(state: &StateDir, alert: u64) -> anyhow::Result<()> {
    let session = connect(state).await?;
    session.close_alert(alert, CloseReason::Resolved).await?;
    println!("alert {alert} resolved");
    session.close().await;
    Ok(())
}

/// `hotline cancel`.
pub(super) async fn cancel(state: &StateDir, alert: u64, false_alarm: bool) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let reason = if false_alarm {
        CloseReason::FalseAlarm
    } else {
        CloseReason::Cancelled
    };
    session.close_alert(alert, reason).await?;
    println!("alert {alert} called off; everyone paged gets the all clear");
    session.close().await;
    Ok(())
}

/// `hotline duty on|off`: changes this device's state, then says where
/// that leaves the team.
pub(super) async fn duty(state: &StateDir, on: bool) -> anyhow::Result<()> {
    let session = connect(state).await?;
    session.set_duty(on).await?;
    let entries = session.duty_status().await?;
    let me = session.device_id();
    session.close().await;
    print_duty(&entries, me, false);
    Ok(())
}

/// `hotline duty` (own state) and `hotline duty who` (everyone on duty).
pub(super) async fn duty_show(state: &StateDir, everyone: bool) -> anyhow::Result<()> {
    let session = connect(state).await?;
    let entries = session.duty_status().await?;
    let me = session.device_id();
    session.close().await;
    print_duty(&entries, me, everyone);
    Ok(())
}

fn print_duty(entries: &[DutyEntry], me: DeviceId, everyone: bool) {
    let mine = entries.iter().find(|e| e.device_id == me);
    let why = |e: &DutyEntry| match (e.declared, e.on_shift) {
        (true, true) => "said `duty on`, and on shift by the rota",
        (true, false) => "said `duty on`",
        (false, true) => "on shift by the rota",
        (false, false) => "",
    };
    match mine {
        Some(e) if e.on_duty() => {
            println!("you are ON duty ({}): new alerts page you first", why(e))
        }
        _ => println!("you are off duty: alerts reach you only if nobody on duty answers"),
    }
    let others: Vec<&DutyEntry> = entries
        .iter()
        .filter(|e| e.on_duty() && e.device_id != me)
        .collect();
    if everyone {
        if others.is_empty() {
            println!("nobody else is on duty now");
        } else {
            println!("also on duty now:");
            for e in &others {
                println!("  {}  {:<11}  {}", e.device_id, e.role.as_str(), why(e));
            }
        }
    } else {
        println!(
            "{} other staff device(s) on duty now (`hotline duty who`)",
            others.len()
        );
    }
    if mine.is_none_or(|e| !e.on_duty()) && others.is_empty() {
        println!(
            "WARNING: nobody is on duty. A new alert goes straight to the backup officers, \
             then the coordinators."
        );
    }
}

/// `hotline watch`: pages and all clears as they arrive. A dropped
/// connection (network change, server restart) is retried with backoff
/// for as long as it takes; pages sent meanwhile are pushed again by the
/// server on reconnection, so none is missed. Refusals (a revoked device)
/// end it.
pub(super) async fn watch(state: &StateDir) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    const FIRST_RETRY: Duration = Duration::from_secs(1);
    const LAST_RETRY: Duration = Duration::from_secs(30);
    state.load_profile()?;
    // Asked once: reconnecting at 3 a.m. must not wait for a person.
    let pass = zeroize::Zeroizing::new(passphrase("Passphrase: ", false)?);
    let bell = if std::io::stdout().is_terminal() {
        "\x07"
    } else {
        ""
    };
    println!("watching for alerts (Ctrl-C to stop)");
    let mut retry = FIRST_RETRY;
    let mut away = false;
    loop {
        let connected = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            c = hotline_client::connect(state, &pass) => c,
        };
        let session = match connected {
            Ok(s) => s,
            Err(e) if e.is_transient() => {
                eprintln!("{e}; trying again in {} s", retry.as_secs());
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(LAST_RETRY);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if away {
            println!("reconnected; pages sent while away follow");
        }
        retry = FIRST_RETRY;
        let lost = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break None,
                // Shown first, confirmed after: a confirmed page was seen.
                push = session.next_push_shown(Duration::from_secs(3600), |push| match push {
                    Push::Alert(a) => println!(
                        "{bell}[{}] ALERT #{} {} {} from defender {}: {} (step {}.{}, {} paged){}",
                        date(a.raised_at), a.id, a.priority, a.origin.as_str(), a.defender, a.status, a.position.0 + 1, a.position.1 + 1, a.paged, late(a.checked_in_at)
                    ),
                    Push::AllClear(id) => println!("all clear: alert #{id} was called off"),
                }) => match push {
                    Ok(_) => {}
                    Err(e) => break Some(e),
                },
            }
        };
        match lost {
            None => {
                session.close().await;
                return Ok(());
            }
            Some(e) if e.is_transient() => {
                eprintln!("{e}; reconnecting");
                away = true;
            }
            Some(e) => return Err(e.into()),
        }
    }
}
