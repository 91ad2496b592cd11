//! Alerts: raising one (defenders), listing, claiming, resolving and
//! calling them off, duty, and the live watch for pages (staff).

use std::time::{Duration, Instant};

use anyhow::bail;
use hotline_client::StateDir;
use hotline_client::history::History;
use hotline_client::messenger::{Device, Flushed, Sent};
use hotline_proto::alert::{AlertInfo, AlertOrigin, AlertStatus, CloseReason, Priority, Push};
use hotline_proto::e2e::content::Category;
use hotline_proto::message::DutyEntry;
use hotline_proto::time::time_of_day;

use super::alert_view::{self, raised};
use super::messages::{
    Fate, fate, fetch_new, fetch_new_listing, finish, mark_shown, send_over, show,
};
use super::panic::flush_panic_outbox;
use super::unlock::{connect, open_device, use_panic_key};

/// How often an offline `sos` tries again, at most.
const SOS_RETRY_EVERY: Duration = Duration::from_secs(5);

/// `hotline sos`: queues the SOS (adding it to one still waiting, if
/// any), then tries to raise it for up to `wait` seconds, saying all along
/// that nobody has been alerted yet. Exits 0 once raised, with status 3
/// (queued) if it never got through.
pub(super) async fn sos(
    state: &StateDir,
    message: Option<&str>,
    priority: Priority,
    category: &str,
    wait: u64,
) -> anyhow::Result<()> {
    // Only defenders raise an SOS: say so before anything is written.
    if let Ok(role) = state.load_profile().and_then(|p| p.role())
        && role.is_staff()
    {
        bail!(
            "only defenders raise an SOS; to write to the team, use `hotline send`, or `hotline reply --alert N` in an alert's thread"
        );
    }
    let text = match message.map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => default_sos_text().to_owned(),
    };
    // A category that is not one of the list is never a reason to refuse:
    // it goes as "other", the word typed kept at the head of the text.
    let (category, text) = match Category::from_name(category) {
        Some(c) => (c, text),
        None => {
            let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
            eprintln!(
                "WARNING: {category:?} is not a category ({}): raising it as \"other\"",
                names.join(", ")
            );
            (Category::Other, format!("({}) {text}", category.trim()))
        }
    };
    let body = text;
    // An SOS queued by an earlier run without the passphrase went first
    // (briefly: this one must not wait for it), in `run_command`.
    if use_panic_key(state) {
        match sos_with_panic_key(state, priority, category, &body, wait).await {
            PanicOutcome::Done(result) => return result,
            // The server does not know this panic key (a registration
            // that never completed): the passphrase still works.
            PanicOutcome::Refused(e) => {
                eprintln!("WARNING: the panic key was refused ({e}); using the passphrase instead")
            }
        }
    }
    let mut device = match open_device(state) {
        Ok(d) => d,
        // A wrong or stale passphrase (a launcher script, a shaking hand)
        // must not cost the SOS: the panic key raises it.
        Err(e) if !use_panic_key(state) && hotline_client::sos::has_panic_key(state) => {
            eprintln!(
                "WARNING: this device could not be unlocked ({e}); raising the SOS with the panic key instead"
            );
            return match sos_with_panic_key(state, priority, category, &body, wait).await {
                PanicOutcome::Done(result) => result,
                PanicOutcome::Refused(refused) => Err(anyhow::anyhow!(
                    "{e}; and the panic key was refused ({refused}). NOBODY HAS BEEN ALERTED: \
                     try again with the right passphrase, or reach the hotline another way"
                )),
            };
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "{e}. NOBODY HAS BEEN ALERTED: try again with the right passphrase, or reach the hotline another way"
            ));
        }
    };
    let (mine, merged) = device.queue_sos(body.as_bytes(), category, priority)?;
    if merged {
        eprintln!(
            "added to the SOS already waiting in this device's outbox: both go out together, as one alert"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut superseded_before = false;
    let last = loop {
        // While it tries, a countdown says that nobody knows yet.
        let (flushed, session) = {
            let attempt = sos_attempt(&mut device, mine, deadline);
            tokio::pin!(attempt);
            let mut ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                SOS_RETRY_EVERY,
            );
            loop {
                tokio::select! {
                    f = &mut attempt => break f,
                    _ = ticks.tick() => countdown(deadline, QUEUED),
                }
            }
        };
        // Said first; the session is closed after.
        let done = match fate(&device, &flushed, mine)? {
            Fate::Settled(Sent::Alert(a)) => {
                raised(&a);
                Some(Ok(()))
            }
            Fate::Settled(Sent::Dropped { reason, .. }) => Some(Err(anyhow::anyhow!(
                "{reason}. It was removed from the outbox and will not be sent again"
            ))),
            Fate::Settled(Sent::Message { .. } | Sent::CaseRequested { .. }) => Some(Ok(())),
            Fate::SentElsewhere(e) => {
                println!(
                    "alert {} raised: your SOS was sent by another hotline command running at the same time (`hotline alerts` shows it)",
                    e.thread
                );
                Some(Ok(()))
            }
            Fate::Gone => Some(Err(anyhow::anyhow!(
                "the SOS was removed from the outbox by another command; NOBODY HAS BEEN ALERTED"
            ))),
            Fate::Waiting => None,
        };
        if let Some(session) = session {
            finish(&mut device, session).await;
        }
        if let Some(done) = done {
            return done;
        }
        let why = flushed
            .stopped
            .as_ref()
            .map_or_else(|| "it could not be sent".to_owned(), ToString::to_string);
        let left = deadline.saturating_duration_since(Instant::now());
        // A refusal a retry cannot fix (no root pinned, say) ends the
        // wait at once: the person must hear it now.
        // Superseded (other connections of this device opened meanwhile):
        // the SOS tries again on a connection of its own.
        let retry_may_help = flushed
            .stopped
            .as_ref()
            .is_none_or(|e| e.is_transient() || e.is_superseded());
        if left.is_zero() || !retry_may_help {
            break flushed;
        }
        eprintln!("NOBODY HAS BEEN ALERTED YET: {why}");
        device.release();
        let superseded = flushed.stopped.as_ref().is_some_and(|e| e.is_superseded());
        let pause = sos_pause(left, superseded, &mut superseded_before);
        eprintln!("  {} ({QUEUED})", next_try(pause, left));
        tokio::time::sleep(pause).await;
        // A deliberate retry: the server is tried again, not taken as
        // still out of reach.
        hotline_client::connection::try_again_now();
        if let Err(e) = device.hold() {
            // The SOS is queued: say so, never a bare error.
            break Flushed {
                settled: Vec::new(),
                stopped: Some(e),
            };
        }
    };
    println!("NOBODY HAS BEEN ALERTED YET.");
    Err(super::messages::queued(&device, mine, &last, "Your SOS"))
}

/// How long an SOS waits before it tries again, with `left` until it gives
/// up: at once the first time its connection was superseded (another
/// connection of this device opened meanwhile; the place is there to
/// take, and an SOS is short-lived), else [`SOS_RETRY_EVERY`] at most, so
/// that two commands of one device do not push each other out in a loop.
fn sos_pause(left: Duration, superseded: bool, superseded_before: &mut bool) -> Duration {
    if superseded && !*superseded_before {
        *superseded_before = true;
        return Duration::ZERO;
    }
    left.min(SOS_RETRY_EVERY)
}

/// What happens next to an SOS that waits `pause` before its next try,
/// with `left` until it gives up: `trying again in 5 s; giving up in 9 s`,
/// or, when that try is the last (the time is up when it starts), `one
/// last try in 4 s`. Seconds are rounded up, so that nothing reads "at
/// once" or "in 0 s" unless it is (a superseded connection's immediate
/// retry).
fn next_try(pause: Duration, left: Duration) -> String {
    let secs = |d: Duration| d.as_millis().div_ceil(1000);
    let when = match secs(pause) {
        0 => "at once".to_owned(),
        n => format!("in {n} s"),
    };
    if pause >= left {
        format!("one last try {when}")
    } else {
        format!("trying again {when}; giving up in {} s", secs(left))
    }
}

/// What stopping does to an SOS in the outbox, and to one sent without
/// the passphrase (which cannot be queued).
const QUEUED: &str = "Ctrl-C stops; the SOS stays in the outbox";
const NOT_QUEUED: &str = "Ctrl-C stops and nothing is queued; left to run, the SOS is queued on this device when it gives up";

/// Says, while an SOS is still trying, that nobody knows yet and how
/// long it keeps trying.
fn countdown(deadline: Instant, stopping: &str) {
    eprintln!(
        "NOBODY HAS BEEN ALERTED YET: still trying to reach the server; giving up in {} s ({stopping})",
        deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .div_ceil(1000)
    );
}

/// One try at raising the SOS `mine` (and sending whatever else waits):
/// the network part of `hotline sos`, connecting within what is left
/// until `deadline` (at least a few seconds). The state lock is let go
/// while connecting, so that a second `sos` typed meanwhile can add to
/// the waiting SOS.
async fn sos_attempt(
    device: &mut Device,
    mine: [u8; 16],
    deadline: Instant,
) -> (Flushed, Option<hotline_client::Session>) {
    device.release();
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(2));
    let connected = match tokio::time::timeout(left, device.connect()).await {
        Ok(c) => c,
        Err(_) => Err(hotline_client::ClientError::Unreachable {
            addr: device
                .state()
                .server(device.profile())
                .map(|s| s.addr)
                .unwrap_or_default(),
            reason: "no answer (timed out)".into(),
        }),
    };
    let relocked = device.hold();
    let session = match (connected, relocked) {
        (_, Err(e)) | (Err(e), _) => {
            let flushed = Flushed {
                settled: Vec::new(),
                stopped: Some(e),
            };
            return (flushed, None);
        }
        (Ok(s), Ok(())) => s,
    };
    let flushed = if device.is_waiting(mine) {
        send_over(device, &session, Some(mine)).await
    } else {
        Flushed {
            settled: Vec::new(),
            stopped: None,
        }
    };
    (flushed, Some(session))
}

/// What became of an SOS sent with the panic key.
enum PanicOutcome {
    /// Raised, or given up on: the command's result.
    Done(anyhow::Result<()>),
    /// The server does not know the panic key: try the passphrase.
    Refused(hotline_client::ClientError),
}

/// `hotline sos` without the passphrase: raises the alert through the
/// panic key, trying again for up to `wait` seconds while the server
/// cannot be reached, saying all along that nobody has been alerted yet.
/// The outbox is sealed under the passphrase: giving up queues the SOS in
/// the panic outbox instead (QUEUED, status 3).
async fn sos_with_panic_key(
    state: &StateDir,
    priority: Priority,
    category: Category,
    body: &str,
    wait: u64,
) -> PanicOutcome {
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut superseded_before = false;
    // The SOS as sealed by the first try that got that far: every retry
    // raises that same envelope, and giving up queues it.
    let mut kept = None;
    loop {
        // Each try is bounded by what is left (a few seconds at least),
        // and a countdown says meanwhile that nobody knows yet.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2));
        let tried = {
            let attempt = tokio::time::timeout(
                left,
                hotline_client::sos::raise_with_panic_key_keeping(
                    state, priority, category, body, &mut kept,
                ),
            );
            tokio::pin!(attempt);
            let mut ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                SOS_RETRY_EVERY,
            );
            loop {
                tokio::select! {
                    a = &mut attempt => break a,
                    _ = ticks.tick() => countdown(deadline, NOT_QUEUED),
                }
            }
        };
        let tried = tried.unwrap_or_else(|_| {
            Err(hotline_client::ClientError::Unreachable {
                addr: state
                    .load_profile()
                    .and_then(|p| state.server(&p))
                    .map(|s| s.addr)
                    .unwrap_or_default(),
                reason: "no answer (timed out)".into(),
            })
        });
        match tried {
            Ok((alert, warnings)) => {
                for w in warnings {
                    eprintln!("WARNING: {w}");
                }
                raised(&alert);
                return PanicOutcome::Done(Ok(()));
            }
            Err(e) if e.code() == Some(hotline_proto::ErrorCode::BadSignature) => {
                return PanicOutcome::Refused(e);
            }
            Err(e)
                if (e.is_transient() || e.is_superseded())
                    && !deadline.saturating_duration_since(Instant::now()).is_zero() =>
            {
                let left = deadline.saturating_duration_since(Instant::now());
                let pause = sos_pause(left, e.is_superseded(), &mut superseded_before);
                eprintln!("NOBODY HAS BEEN ALERTED YET: {e}");
                eprintln!("  {} (Ctrl-C stops)", next_try(pause, left));
                tokio::time::sleep(pause).await;
                hotline_client::connection::try_again_now();
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some(
                        hotline_proto::ErrorCode::DeviceRevoked
                            | hotline_proto::ErrorCode::UnknownDevice
                    )
                ) =>
            {
                return PanicOutcome::Done(Err(anyhow::anyhow!(
                    "{e}. NOBODY HAS BEEN ALERTED, and nothing can be sent from this device: reach the hotline another way"
                )));
            }
            // Out of time, the server still out of reach or unable to
            // take it now: queued on this device for the next run.
            Err(e) if e.is_transient() || e.is_superseded() => {
                // Never reached the server to seal it: sealed to the
                // staff keys this device keeps.
                let kept = kept.unwrap_or_else(|| {
                    hotline_client::sos::seal_panic_offline(state, priority, category, body)
                });
                return PanicOutcome::Done(queue_panic_sos(state, priority, Some(kept), &e));
            }
            Err(e) => {
                return PanicOutcome::Done(Err(anyhow::anyhow!(
                    "{e}. NOBODY HAS BEEN ALERTED, and nothing was queued (a retry cannot \
                     fix this): reach the hotline another way"
                )));
            }
        }
    }
}

/// Queues an SOS the panic key could not raise (`e`: why) in the panic
/// outbox, with its text as sealed by a try (`kept`), or none, and says
/// so: "QUEUED", exit status 3.
fn queue_panic_sos(
    state: &StateDir,
    priority: Priority,
    kept: Option<hotline_client::sos::SealedSos>,
    e: &hotline_client::ClientError,
) -> anyhow::Result<()> {
    use hotline_client::panic_outbox::{self, Queued as Q};
    let (envelope, warnings) = match kept {
        Some(k) => (k.envelope, k.warnings),
        None => (
            None,
            vec![hotline_client::sos::not_sent_warning(
                "the staff's keys could not be fetched from the server now, and the text is sealed with them",
            )],
        ),
    };
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    match panic_outbox::queue(state, priority, envelope, hotline_client::unix_now()) {
        Ok(queued) => {
            match queued {
                Q::New => {}
                Q::Joined => eprintln!(
                    "added to the SOS already waiting on this device: they go out together, as one alert"
                ),
                Q::Added { waiting } => eprintln!(
                    "kept beside the SOS already waiting on this device: they go out together, \
                     as one alert, every text with its own category ({waiting} SOSes wait)"
                ),
                Q::AddedOldestDropped => eprintln!(
                    "kept beside the SOSes already waiting on this device: this text and the \
                     newest waiting ones will go; WARNING: {} already waited, so the OLDEST \
                     text was dropped and will NOT be sent (its alert is still raised)",
                    panic_outbox::MAX_WAITING
                ),
            }
            println!(
                "QUEUED: NOBODY HAS BEEN ALERTED YET ({e}). Your SOS waits on this device and goes out, \
                 once, with the next hotline command that connects to the server (any of them: \
                 status, sos, outbox, …; with or without the passphrase), or at once through a \
                 running `hotline watch`."
            );
            Err(super::Queued.into())
        }
        Err(qe) => Err(anyhow::anyhow!(
            "{e}. NOBODY HAS BEEN ALERTED, and the SOS could not be queued on this device \
             ({qe}): try again, or reach the hotline another way"
        )),
    }
}

/// The text of an SOS sent without one, in the language of the person's
/// settings (`HOTLINE_LANG`, else the locale), English otherwise.
fn default_sos_text() -> &'static str {
    let lang = ["HOTLINE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|l| !l.is_empty()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if lang.starts_with("fr") {
        "SOS — j'ai besoin d'aide maintenant"
    } else if lang.starts_with("es") {
        "SOS — necesito ayuda ahora"
    } else {
        "SOS — I need help now"
    }
}

/// `hotline alerts`: the open alerts (every one with `--all`), oldest
/// first, under a header row: when, how urgent, what (the SOS's category
/// and words when this device can read them), from whom by name, and
/// where each stands in words.
pub(super) async fn list(state: &StateDir, all: bool) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let session = device.connect().await?;
    let alerts = session.alerts(!all).await?;
    // What came for this device is opened and kept (not marked shown):
    // an SOS's words are among it.
    if !alerts.is_empty()
        && let Err(e) = fetch_new(&mut device, &session).await
    {
        eprintln!("WARNING: new messages could not be fetched: {e}");
    }
    // A staff device names the journey of an alert's defender from its
    // case replica: brought up to date first (offline or failing, the
    // list reads what the replica holds, and says nothing more).
    if !alerts.is_empty() {
        let _ = super::alert_sync::sync_cases(&mut device, &session).await;
    }
    super::unlock::warn_staff(&session);
    session.close().await;
    print_alerts(&device, &alerts, all);
    Ok(())
}

/// A watch on a staff device fetches the roster the server holds now
/// (under the state directory's lock), so that what a page says of "the
/// current roster" is not the one the watch began with. A failure is
/// said by the case commands, not here.
async fn refresh_roster(device: &mut Device, session: &hotline_client::Session) {
    if !device.profile().role().is_ok_and(|r| r.is_staff()) || device.hold().is_err() {
        return;
    }
    let _ = device.roster(session).await;
    device.release();
}

/// After a page (or the open alerts listed by `watch`) was printed: the
/// cases synced, then the journey line of each of `alerts` that the sync
/// changed, said with the alert's number (the page never waits for it).
async fn journey_after_sync(
    device: &mut Device,
    session: &hotline_client::Session,
    alerts: &[AlertInfo],
) {
    let me = device.identity().device_id();
    let staff = device.profile().role().is_ok_and(|r| r.is_staff());
    let alerts: Vec<&AlertInfo> = alerts.iter().filter(|a| a.defender != me).collect();
    if !staff || alerts.is_empty() {
        return;
    }
    let before: Vec<Option<String>> = alerts
        .iter()
        .map(|a| super::case_links::alert_case(device, a))
        .collect();
    // Under the state directory's lock, as every write of a watch.
    if device.hold().is_err() {
        return;
    }
    let synced = super::alert_sync::sync_cases(device, session).await;
    device.release();
    if synced.is_err() {
        return;
    }
    for (a, before) in alerts.iter().zip(before) {
        let after = super::case_links::alert_case(device, a);
        if after == before {
            continue;
        }
        let line = after.unwrap_or_else(|| {
            "no open case of this defender has a relocation in transit now".into()
        });
        println!(
            "[{} UTC] ALERT #{}: {line}",
            time_of_day(hotline_client::unix_now()),
            a.id
        );
    }
}

/// A list of alerts under its header row, or a line saying there is none.
fn print_alerts(device: &Device, alerts: &[AlertInfo], all: bool) {
    if alerts.is_empty() {
        println!(
            "no open alerts{}",
            if all { " and none closed" } else { "" }
        );
        return;
    }
    let history = device.history().unwrap_or_default();
    let now = hotline_client::unix_now();
    println!("{}", alert_view::header());
    for a in alerts {
        for line in alert_view::lines(device, &history, a, now) {
            println!("{line}");
        }
    }
}

/// `hotline ack`.
pub(super) async fn ack(state: &StateDir, alert: u64) -> anyhow::Result<()> {
    let device = open_device(state)?;
    let session = device.connect().await?;
    super::unlock::warn_staff(&session);
    let origin = session
        .alerts(false)
        .await?
        .into_iter()
        .find(|a| a.id == alert)
        .map(|a| a.origin);
    match session.claim_alert(alert).await? {
        Ok(()) => println!("{}", claimed_words(alert, origin)),
        Err(holder) => bail!(
            "alert {alert} is already held by {}: ask them, or see `hotline alerts`",
            device.shown(&holder)
        ),
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
            "you hold alert {alert}; the defender's device is told it is acknowledged and held by your device (a running `hotline watch` shows it at once), but gets no message unless you send one"
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
    let device = open_device(state)?;
    let session = device.connect().await?;
    session.set_duty(on).await?;
    let entries = session.duty_status().await?;
    super::unlock::warn_staff(&session);
    session.close().await;
    print_duty(&device, &entries, false);
    Ok(())
}

/// `hotline duty` (own state) and `hotline duty who` (everyone on duty).
pub(super) async fn duty_show(state: &StateDir, everyone: bool) -> anyhow::Result<()> {
    let device = open_device(state)?;
    let session = device.connect().await?;
    let entries = session.duty_status().await?;
    super::unlock::warn_staff(&session);
    session.close().await;
    print_duty(&device, &entries, everyone);
    Ok(())
}

fn print_duty(device: &Device, entries: &[DutyEntry], everyone: bool) {
    let me = device.identity().device_id();
    let mine = entries.iter().find(|e| e.device_id == me);
    let why = |e: &DutyEntry| match (e.declared, e.on_shift) {
        (true, true) => "said `duty on`, and on shift by the rota",
        (true, false) => "said `duty on`",
        (false, true) => "on shift by the rota",
        (false, false) => "",
    };
    const NOT_PAGED: &str = "NOT on the signed roster, so NOT paged";
    match mine {
        Some(e) if e.on_duty() && e.off_roster => println!(
            "you are on duty ({}), BUT this device is {NOT_PAGED}: ask an admin to run `hotline org sign-roster`",
            why(e)
        ),
        Some(e) if e.on_duty() => {
            println!("you are ON duty ({}): new alerts page you first", why(e))
        }
        _ => println!("you are off duty: alerts reach you only if nobody on duty answers"),
    }
    let others: Vec<&DutyEntry> = entries
        .iter()
        .filter(|e| e.on_duty() && e.device_id != me)
        .collect();
    let paged_first = |e: &&&DutyEntry| !e.off_roster;
    if everyone {
        if others.is_empty() {
            println!("nobody else is on duty now");
        } else {
            let on = mine.is_some_and(|e| e.on_duty());
            println!(
                "{}",
                if on {
                    "also on duty now:"
                } else {
                    "on duty now:"
                }
            );
            for e in &others {
                let off = if e.off_roster {
                    format!("; {NOT_PAGED}")
                } else {
                    String::new()
                };
                println!(
                    "  {:<32}  {:<11}  {}{off}",
                    device.shown(&e.device_id),
                    e.role.as_str(),
                    why(e)
                );
            }
        }
    } else {
        println!(
            "{} other staff device(s) on duty now (`hotline duty who`)",
            others.iter().filter(paged_first).count()
        );
    }
    if mine.is_none_or(|e| !e.on_duty() || e.off_roster) && !others.iter().any(|e| paged_first(&e))
    {
        println!(
            "WARNING: nobody who can be paged is on duty. A new alert goes straight to the backup \
             officers, then the coordinators."
        );
    }
}

/// `hotline watch`: pages, all clears and messages as they arrive. A
/// dropped connection (network change, server restart) is retried with
/// backoff for as long as it takes; pages sent meanwhile are pushed again
/// by the server on reconnection, and messages wait in the inbox, so none
/// is missed. Refusals (a revoked device) end it.
///
/// On each connection it first sends what waits in the outbox and shows
/// the messages not shown yet; then each message pushed is fetched,
/// opened, kept and shown in its thread. The state lock is held only
/// while doing so, so that other commands run meanwhile.
pub(super) async fn watch(state: &StateDir, storage_check_every: Duration) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    const FIRST_RETRY: Duration = Duration::from_secs(1);
    const LAST_RETRY: Duration = Duration::from_secs(30);
    // Superseded (this device opened more connections than the server
    // allows, so it closed this, its oldest): the pager must not die, so
    // it comes back, but after a wait that grows while it keeps being
    // pushed out, so that two watches of one device do not fight.
    const FIRST_SUPERSEDED_WAIT: Duration = Duration::from_secs(10);
    const LAST_SUPERSEDED_WAIT: Duration = Duration::from_secs(120);
    // A connection that lasted this long ends a run of supersedings.
    const SETTLED: Duration = Duration::from_secs(600);
    // A connection lost sooner than this after it was made is not
    // retried at once: the wait before the next try grows.
    const SHORT_LIVED: Duration = Duration::from_secs(10);
    state.load_profile()?;
    // Asked once: reconnecting at 3 a.m. must not wait for a person.
    let pass = super::unlock::device_passphrase()?;
    let mut device = Device::open(state, &pass)?;
    let bell = if std::io::stdout().is_terminal() {
        "\x07"
    } else {
        ""
    };
    println!("watching for alerts and messages (Ctrl-C to stop)");
    let mut retry = FIRST_RETRY;
    let mut superseded_wait = FIRST_SUPERSEDED_WAIT;
    let mut away = false;
    // The alerts as last shown (listed or paged), so that a page pushed
    // again unchanged (on reconnection, or while the open alerts are
    // listed) is not printed twice; and their states as last heard, so
    // that a message of a closed alert says so.
    let mut pages_shown = PagesShown::default();
    let mut states = Alerts::default();
    // The server's storage as last told (kept across reconnections, so
    // that each change is said once).
    let mut storage_seen = StorageSeen::default();
    loop {
        // Each (re)connection of the watch really tries the server.
        hotline_client::connection::try_again_now();
        let connected = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            c = device.connect() => c,
        };
        let session = match connected {
            Ok(s) => s,
            Err(e) if e.is_superseded() => {
                if !wait_superseded(&e, &mut superseded_wait, LAST_SUPERSEDED_WAIT).await {
                    return Ok(());
                }
                away = true;
                continue;
            }
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
        let connected_at = Instant::now();
        // An SOS queued on this device without the passphrase goes first.
        flush_panic_outbox(state, Duration::from_secs(20)).await;
        // What waits in the outbox goes out now, and what came meanwhile
        // is shown.
        // What changed while away is heard anew.
        states.clear();
        let mut lost = match catch_up(&mut device, &session, &mut states).await {
            Err(e) if gone(&session, &e) => Some(e),
            Err(e) => {
                // A request refused on a live connection (the server's
                // storage full, or read-only): the pages still come.
                eprintln!("WARNING: {e}; still watching");
                None
            }
            _ => None,
        };
        // What is open now, so that nothing raised before the watch began
        // (or while it was away) goes unseen.
        if lost.is_none() {
            // The roster as the server holds it now (a page names the
            // current roster's version).
            refresh_roster(&mut device, &session).await;
            match session.alerts(true).await {
                Ok(open) if open.is_empty() => println!("no open alerts right now"),
                Ok(open) => {
                    println!("open alerts right now:");
                    print_alerts(&device, &open, false);
                    for a in &open {
                        pages_shown.note(a);
                    }
                    journey_after_sync(&mut device, &session, &open).await;
                }
                Err(e) if gone(&session, &e) => lost = Some(e),
                Err(e) => eprintln!("WARNING: the open alerts could not be listed: {e}"),
            }
        }
        // Staff hear when the server's storage stops taking writes (SOSes
        // bounce) and when it heals: its state is asked for now and then
        // every `storage_check_every`, between pushes (a push being read
        // is never cut short for it).
        let check_storage = session.role() != hotline_proto::Role::Defender;
        let mut next_check = Instant::now();
        while lost.is_none() {
            // An SOS queued meanwhile without the passphrase (by a `sos`
            // that gave up) goes out through this running watch.
            if session.role() == hotline_proto::Role::Defender && Instant::now() >= next_check {
                next_check = Instant::now() + storage_check_every;
                if hotline_client::panic_outbox::pending(state).is_ok_and(|w| !w.is_empty()) {
                    flush_panic_outbox(state, Duration::from_secs(20)).await;
                }
            }
            if check_storage && Instant::now() >= next_check {
                next_check = Instant::now() + storage_check_every;
                // The roster as the server holds it now: what a page says
                // of "the current roster" must not be the one this watch
                // began with. A failure is said by the case commands.
                refresh_roster(&mut device, &session).await;
                match session.status().await {
                    Ok(status) => {
                        if let Some(line) = storage_seen.note(status.storage.as_ref()) {
                            println!(
                                "{bell}[{} UTC] {line}",
                                time_of_day(hotline_client::unix_now())
                            );
                        }
                    }
                    Err(e) if gone(&session, &e) => {
                        lost = Some(e);
                        continue;
                    }
                    Err(_) => {}
                }
            }
            let wait = if check_storage || session.role() == hotline_proto::Role::Defender {
                next_check
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10))
            } else {
                Duration::from_secs(3600)
            };
            // Whether a page was printed now: its journey line follows
            // once the cases are synced (once per page printed).
            let mut paged = false;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {
                    session.close().await;
                    return Ok(());
                }
                // Shown first, confirmed after: a confirmed page was seen.
                push = session.next_push_shown(wait, |push| {
                    let now = hotline_client::unix_now();
                    let history = History::default();
                    match push {
                        // This device's own alert: someone has it.
                        Push::Alert(a) if a.defender == device.identity().device_id() => println!(
                            "{bell}[{} UTC] your alert #{}: {}. Someone is on it.",
                            time_of_day(now),
                            a.id,
                            alert_view::state_words(&device, a, now)
                        ),
                        // Shown already as it stands (listed on connecting,
                        // or pushed again): not printed twice.
                        Push::Alert(a) if !pages_shown.note(a) => {}
                        Push::Alert(a) => {
                            paged = true;
                            println!(
                                "{bell}[{} UTC] ALERT #{} — claim it: hotline ack {}",
                                time_of_day(now),
                                a.id,
                                a.id
                            );
                            for line in alert_view::lines(&device, &history, a, now) {
                                println!("{line}");
                            }
                        }
                        // Case updates are fetched by the case commands.
                        Push::Cases(_) => {}
                        Push::Released(a) if a.defender == device.identity().device_id() => println!(
                            "{bell}[{} UTC] your alert #{}: the staff member who held it can no longer answer; it is back with the team and they are being paged again.",
                            time_of_day(now),
                            a.id
                        ),
                        Push::Released(a) => {
                            println!(
                                "{bell}[{} UTC] ALERT #{} is BACK: the device holding it was revoked; nobody holds it now and escalation resumes. Claim it: hotline ack {}",
                                time_of_day(now), a.id, a.id
                            );
                            for line in alert_view::lines(&device, &history, a, now) {
                                println!("{line}");
                            }
                        }
                        Push::AllClear(_) | Push::Message(_) => {}
                    }
                }) => {
                    let shown = match push {
                        Ok(Some(Push::AllClear(id))) => {
                            // Closed: heard anew for a message in its thread.
                            states.remove(&id);
                            all_clear(&device, &session, id).await;
                            Ok(())
                        }
                        Ok(Some(Push::Message(_))) => {
                            show_new(&mut device, &session, None, bell, &mut states).await
                        }
                        // The alert's text reaches staff as a message:
                        // shown in the alert's thread.
                        Ok(Some(Push::Alert(a))) => {
                            states.insert(a.id, a.clone());
                            let before = alert_view::what_and_who(&device, &History::default(), &a);
                            let shown = show_new(&mut device, &session, Some(&a), bell, &mut states).await;
                            // Its text fetched: what it is about and who
                            // sent it by name, if the page could not say.
                            if shown.is_ok() && a.defender != device.identity().device_id() {
                                let after = device
                                    .history()
                                    .map(|h| alert_view::what_and_who(&device, &h, &a))
                                    .unwrap_or_default();
                                if !after.is_empty() && after != before {
                                    println!(
                                        "[{} UTC] ALERT #{}: {after}",
                                        time_of_day(hotline_client::unix_now()),
                                        a.id
                                    );
                                }
                            }
                            if shown.is_ok() && paged {
                                journey_after_sync(&mut device, &session, std::slice::from_ref(&a)).await;
                            }
                            shown
                        }
                        Ok(_) => Ok(()),
                        Err(e) => Err(e),
                    };
                    match shown {
                        Ok(()) => {}
                        Err(e) if gone(&session, &e) => lost = Some(e),
                        Err(e) if e.is_transient() => {
                            eprintln!("WARNING: {e}; still watching");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if let Some(e) = lost {
            if connected_at.elapsed() >= SETTLED {
                superseded_wait = FIRST_SUPERSEDED_WAIT;
            }
            if e.is_superseded() {
                if !wait_superseded(&e, &mut superseded_wait, LAST_SUPERSEDED_WAIT).await {
                    return Ok(());
                }
            } else if connected_at.elapsed() < SHORT_LIVED {
                // Lost again soon after connecting: wait before the next
                // try, longer each time, rather than hammer the server.
                eprintln!("{e}; NOT CONNECTED: reconnecting in {} s", retry.as_secs());
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(LAST_RETRY);
            } else {
                retry = FIRST_RETRY;
                eprintln!("{e}; reconnecting");
            }
            away = true;
        }
    }
}

/// The server's storage as a watch last heard it: `(degraded since,
/// read-only)`, once heard.
#[derive(Default)]
struct StorageSeen(Option<(Option<u64>, bool)>);

impl StorageSeen {
    /// Notes the storage a status answer gave (`None`: the server told
    /// nothing of it), and returns what to say if it changed: a banner
    /// when it stops taking writes (also the first time, if it is so
    /// already), another when it heals; nothing while it stays the same.
    fn note(&mut self, storage: Option<&hotline_proto::message::StorageInfo>) -> Option<String> {
        let s = storage?;
        let now = (s.degraded.as_ref().map(|(since, _)| *since), s.read_only);
        let before = self.0.replace(now);
        if before == Some(now) {
            return None;
        }
        match super::devices::staff_storage_line(s) {
            Some(line) => Some(line),
            None if before.is_some() => Some(
                "server storage: ok again — writes and SOSes are accepted again \
                 (SOSes kept on defenders' devices go out when they retry)"
                    .to_owned(),
            ),
            None => None,
        }
    }
}

/// Whether `e` means the watch's connection is gone (rather than one
/// request refused on a connection that still carries pages).
fn gone(session: &hotline_client::Session, e: &hotline_client::ClientError) -> bool {
    (e.is_transient() || e.is_superseded())
        && (session.connection().close_reason().is_some()
            || !matches!(e, hotline_client::ClientError::Refused(_)))
}

/// Tells the person this watch was pushed out by newer connections of the
/// same device and waits `wait` (doubled for the next time, up to `last`)
/// before it reconnects. False if Ctrl-C ended the watch meanwhile.
async fn wait_superseded(
    e: &hotline_client::ClientError,
    wait: &mut Duration,
    last: Duration,
) -> bool {
    eprintln!(
        "WARNING: this watch was superseded: {e}. NOT CONNECTED: reconnecting in {} s; pages sent meanwhile will follow",
        wait.as_secs()
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => return false,
        _ = tokio::time::sleep(*wait) => {}
    }
    *wait = (*wait * 2).min(last);
    true
}

/// Says an alert was closed, and how (resolved, called off, a false
/// alarm), as far as this device may see it.
async fn all_clear(device: &Device, session: &hotline_client::Session, id: u64) {
    let now = hotline_client::unix_now();
    let how = match session.alerts(false).await {
        Ok(all) => all
            .iter()
            .find(|a| a.id == id)
            .map(|a| alert_view::state_words(device, a, now)),
        Err(_) => None,
    };
    println!(
        "[{} UTC] all clear: alert #{id} {}",
        time_of_day(now),
        how.map_or_else(|| "is closed".to_owned(), |h| format!("was {h}"))
    );
}

/// Alerts by id, as this watch last heard of them.
type Alerts = std::collections::HashMap<u64, AlertInfo>;

/// The alerts a watch has put in front of its person, as they stood then.
#[derive(Default)]
struct PagesShown(std::collections::HashMap<u64, PageState>);

/// What of a page a watch compares: its state, escalation step, priority,
/// devices paged and SOSes joined.
type PageState = (AlertStatus, (u32, u32), Priority, u32, u32);

impl PagesShown {
    /// Notes that `a` is shown as it stands; false if it was shown so
    /// already (the same state, escalation step, priority, number of
    /// devices paged and of SOSes joined): a page pushed again unchanged.
    fn note(&mut self, a: &AlertInfo) -> bool {
        let now = (a.status, a.position, a.priority, a.paged, a.joined_count);
        self.0.insert(a.id, now) != Some(now)
    }
}

/// On (re)connecting: sends what waits in the outbox, then shows what
/// came while away, each message of a closed alert marked as such.
async fn catch_up(
    device: &mut Device,
    session: &hotline_client::Session,
    states: &mut Alerts,
) -> Result<(), hotline_client::ClientError> {
    device.hold()?;
    if !device.pending().is_empty() {
        let flushed = send_over(device, session, None).await;
        if let Some(e) = flushed.stopped {
            eprintln!(
                "NOT SENT YET: {} item(s) still wait in the outbox: {e}",
                device.pending().len()
            );
        }
    }
    device.release();
    show_new(device, session, None, "", states).await
}

/// Fetches what waits for this device, keeps it, and shows each message
/// not shown yet, in its thread; `link` files an alert's text (its
/// envelope id, the alert) in the alert's thread (the text of an SOS that
/// joined an open alert, pushed without a page, is filed by the listing
/// of alerts that comes with anything received). A message of a closed
/// alert is headed by the alert's state, so that an old emergency does not
/// read as a new one. A failure that is not the network's is shown and
/// the watch goes on.
async fn show_new(
    device: &mut Device,
    session: &hotline_client::Session,
    link: Option<&AlertInfo>,
    bell: &str,
    states: &mut Alerts,
) -> Result<(), hotline_client::ClientError> {
    device.hold()?;
    let result = async {
        for a in fetch_new_listing(device, session).await? {
            states.insert(a.id, a);
        }
        if let Some(a) = link {
            device.link_alert(a)?;
        }
        let new = device.unshown()?;
        // Kept from before (fetched by another command): the alerts'
        // states are heard now.
        if new
            .iter()
            .any(|e| e.thread != 0 && !states.contains_key(&e.thread))
        {
            for a in session.alerts(false).await? {
                states.insert(a.id, a);
            }
        }
        let now = hotline_client::unix_now();
        for e in &new {
            if let Some(a) = states.get(&e.thread)
                && !matches!(a.status, AlertStatus::Raised | AlertStatus::Acknowledged)
            {
                println!(
                    "[alert #{}, {}: an earlier alert, not a new one]",
                    a.id,
                    alert_view::state_words(device, a, now)
                );
                print!("{}", show(device, e));
            } else {
                print!("{bell}{}", show(device, e));
            }
        }
        mark_shown(device, session, &new).await
    }
    .await;
    device.release();
    match result {
        Err(e) if !e.is_transient() => {
            eprintln!("WARNING: messages could not be shown: {e}");
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_proto::alert::AlertContent;

    /// An SOS pushed out by another connection of its device tries again
    /// at once, once; after that, and after any other failure, it waits
    /// its usual pause (never past its deadline).
    #[test]
    fn a_superseded_sos_tries_again_at_once_the_first_time() {
        let mut before = false;
        let left = Duration::from_secs(60);
        assert_eq!(sos_pause(left, true, &mut before), Duration::ZERO);
        assert_eq!(sos_pause(left, true, &mut before), SOS_RETRY_EVERY);
        let mut before = false;
        assert_eq!(sos_pause(left, false, &mut before), SOS_RETRY_EVERY);
        assert_eq!(
            sos_pause(Duration::from_secs(2), false, &mut before),
            Duration::from_secs(2)
        );
        assert_eq!(sos_pause(left, true, &mut before), Duration::ZERO);
    }

    /// The line after a failed try reads sensibly to its end: no
    /// "trying again" when the next try is the last, no "at once" a
    /// second before giving up.
    #[test]
    fn the_sos_retry_line_reads_sensibly_at_the_end() {
        let s = Duration::from_secs;
        assert_eq!(
            next_try(s(5), s(9)),
            "trying again in 5 s; giving up in 9 s"
        );
        assert_eq!(next_try(s(5), s(5)), "one last try in 5 s");
        assert_eq!(
            next_try(Duration::from_millis(900), Duration::from_millis(900)),
            "one last try in 1 s"
        );
        assert_eq!(
            next_try(Duration::from_millis(4200), Duration::from_millis(4200)),
            "one last try in 5 s"
        );
        assert_eq!(
            next_try(Duration::ZERO, s(30)),
            "trying again at once; giving up in 30 s"
        );
        assert_eq!(
            next_try(Duration::ZERO, Duration::ZERO),
            "one last try at once"
        );
    }

    /// A watch says the storage stopped taking writes once (also when it
    /// starts so), and once when it heals; never while nothing changes.
    #[test]
    fn a_watch_says_each_storage_change_once() {
        use hotline_proto::message::StorageInfo;
        let ok = StorageInfo::default();
        let degraded = StorageInfo {
            degraded: Some((1_700_000_000, String::new())),
            ..StorageInfo::default()
        };
        let mut seen = StorageSeen::default();
        assert_eq!(seen.note(Some(&ok)), None, "ok at start: nothing to say");
        assert_eq!(seen.note(None), None, "told nothing");
        let banner = seen.note(Some(&degraded)).expect("a banner");
        assert!(
            banner.contains("DEGRADED since") && banner.contains("SOSes are being refused"),
            "{banner}"
        );
        assert_eq!(seen.note(Some(&degraded)), None, "no banner spam");
        let healed = seen.note(Some(&ok)).expect("the heal is said");
        assert!(healed.contains("ok again"), "{healed}");
        assert_eq!(seen.note(Some(&ok)), None);
        // A watch started while degraded says so at once.
        let mut seen = StorageSeen::default();
        assert!(seen.note(Some(&degraded)).is_some());
    }

    /// A page pushed again unchanged is not shown twice; one that moved
    /// on (another step, another SOS joined) is.
    #[test]
    fn a_page_is_shown_again_only_when_it_changed() {
        let mut shown = PagesShown::default();
        let mut a = AlertInfo {
            id: 7,
            defender: hotline_proto::DeviceId::from_bytes([1; 16]),
            priority: Priority::Urgent,
            status: AlertStatus::Raised,
            holder: None,
            raised_at: 1,
            position: (0, 0),
            paged: 1,
            envelope_id: 3,
            origin: AlertOrigin::Sos,
            checked_in_at: None,
            paged_now: 0,
            content: AlertContent::Sealed,
            tier: None,
            step_at: 0,
            exhausted: false,
            closed_by: None,
            joined_count: 0,
            joined: Vec::new(),
            joined_now: false,
            paged_again: false,
        };
        assert!(shown.note(&a));
        assert!(!shown.note(&a), "the same page again");
        a.joined_count = 1;
        assert!(shown.note(&a), "an SOS joined it");
        a.position = (0, 1);
        assert!(shown.note(&a), "the next escalation step");
    }
}
