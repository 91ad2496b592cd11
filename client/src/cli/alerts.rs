//! Alerts: raising one (defenders), listing, claiming, resolving and
//! calling them off, duty, and the live watch for pages (staff).

use std::time::Duration;

use anyhow::bail;
use hotline_client::StateDir;
use hotline_client::messenger::Sent;
use hotline_client::outbox::Outgoing;
use hotline_proto::alert::{CloseReason, Priority, Push};

use super::date::date;
use super::messages::deliver;
use super::unlock::{connect, open_device, passphrase, use_panic_key};

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
    let body = format!("category: {category}\n{message}");
    if use_panic_key(state) {
        // No passphrase: the panic key raises it now or says it could not.
        match hotline_client::sos::raise_with_panic_key(state, priority, body.as_bytes()).await {
            Ok((alert, warnings)) => {
                for w in warnings {
                    eprintln!("WARNING: {w}");
                }
                print_raised(&alert);
                return Ok(());
            }
            // The server does not know this panic key (a registration that
            // never completed): the passphrase still works.
            Err(e) if e.code() == Some(hotline_proto::ErrorCode::BadSignature) => {
                eprintln!("WARNING: the panic key was refused ({e}); using the passphrase instead");
            }
            Err(e) => {
                bail!("{e}. NOBODY HAS BEEN ALERTED: try again, or call the hotline by another way")
            }
        }
    }
    let mut device = open_device(state)?;
    let mine = device.queue_item(body.as_bytes(), Outgoing::Alert(priority))?;
    if let Some(settled) = deliver(&mut device, Some(mine)).await? {
        for (id, s) in settled {
            if let Sent::Dropped { reason, .. } = &s
                && id == mine
            {
                bail!("{reason}. It was removed from the outbox and will not be sent again");
            }
            if let Sent::Alert(alert) = s {
                print_raised(&alert);
            }
        }
    }
    Ok(())
}

/// What the defender is told of an alert raised.
fn print_raised(alert: &hotline_proto::alert::AlertInfo) {
    use hotline_proto::alert::AlertContent;
    println!(
        "alert {} raised ({}); {} duty staff paged. You will be contacted.",
        alert.id, alert.priority, alert.paged
    );
    match alert.content {
        AlertContent::Sealed => {}
        AlertContent::ExpiredRoster => println!(
            "Your text was sealed to an expired staff roster: some staff may not be able to read it."
        ),
        AlertContent::None => println!(
            "Your text could NOT be protected and was NOT sent, but the alert WAS raised: the team knows you need help."
        ),
    }
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
        let mark = match a.content.mark() {
            "" => String::new(),
            m => format!("  {m}"),
        };
        println!(
            "#{:<6} {:<9} {:<15} {:<12} {:>5} min  defender {}  paged {}{holder}{mark}",
            a.id,
            a.priority,
            a.origin.as_str(),
            a.status,
            now.saturating_sub(a.raised_at) / 60,
            a.defender,
            a.paged
        );
    }
    session.close().await;
    Ok(())
}

/// `hotline ack`.
pub(super) async fn ack(state: &StateDir, alert: u64) -> anyhow::Result<()> {
    let session = connect(state).await?;
    match session.claim_alert(alert).await? {
        Ok(()) => println!("you hold alert {alert}; the defender sees it is claimed"),
        Err(holder) => bail!("alert {alert} is already held by device {holder}"),
    }
    session.close().await;
    Ok(())
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

/// `hotline duty on|off`.
pub(super) async fn duty(state: &StateDir, on: bool) -> anyhow::Result<()> {
    let session = connect(state).await?;
    session.set_duty(on).await?;
    println!("you are {} duty", if on { "on" } else { "off" });
    if on && session.roster_standing() == hotline_proto::message::RosterStanding::NotOnRoster {
        println!(
            "BUT you will not be paged: this device is not on the organisation's signed roster. Ask an admin to run `hotline org sign-roster`."
        );
    }
    session.close().await;
    Ok(())
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
        if !away {
            super::unlock::warn_staff(&session);
        }
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
                        date(a.raised_at), a.id, a.priority, a.origin.as_str(), a.defender, a.status, a.position.0 + 1, a.position.1 + 1, a.paged,
                        match a.content.mark() { "" => String::new(), m => format!(" {m}") }
                    ),
                    Push::AllClear(id) => println!("all clear: alert #{id} was called off"),
                    Push::Released(a) => println!(
                        "{bell}[{}] ALERT #{} {} is BACK: the device holding it was revoked; nobody holds it now and escalation resumes. Claim it with `hotline ack {}`",
                        date(a.raised_at), a.id, a.priority, a.id
                    ),
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
