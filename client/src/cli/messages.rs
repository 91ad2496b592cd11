//! End-to-end messages: sending (and replying in an alert's thread), the
//! outbox, delivery states, the inbox and the kept history.
//!
//! A command that writes something either sends it now (exit 0), or says
//! plainly that it waits in the outbox and exits with [`super::Queued`]
//! (status 3); if it can never be sent it is removed and the command
//! fails (status 1). Never an error and a later send.

use anyhow::bail;
use hotline_client::history::Entry;
use hotline_client::messenger::{Device, Flushed, Sent};
use hotline_client::outbox::Outgoing;
use hotline_client::{ClientError, Session, StateDir};
use hotline_proto::DeviceId;
use hotline_proto::alert::AlertInfo;
use hotline_proto::e2e::content::Kind;

use super::Queued;
use super::date::date_time;
use super::unlock::{connect, open_device};

/// `hotline send` (and `hotline reply`).
pub(super) async fn send(
    state: &StateDir,
    message: &str,
    to: Option<String>,
    alert: Option<u64>,
) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let to = match to {
        Some(named) => Some(recipient(&mut device, &named).await?),
        None => None,
    };
    let (mine, flushed) = match alert {
        Some(alert_id) => {
            // Threads need the alert's defender: this asks the server
            // before anything is queued.
            let session = device.connect().await?;
            let found = session
                .alerts(false)
                .await?
                .into_iter()
                .find(|a| a.id == alert_id);
            let Some(a) = found else {
                bail!("no alert {alert_id} visible to this device; nothing was sent");
            };
            if !a.origin.shown_to_defender() {
                bail!(
                    "alert {alert_id} is a {} alert: its defender's device must never receive anything about it (the person holding it may be a coercer). Nothing was sent. Write to the team instead (`hotline send`), and reach the defender only by a channel your duress procedure allows",
                    a.origin.as_str()
                );
            }
            let what = Outgoing::Reply {
                alert: alert_id,
                to: a.defender,
            };
            let mine = device.queue_item(message.as_bytes(), what)?;
            let flushed = send_over(&mut device, &session, Some(mine)).await;
            finish(&mut device, session).await;
            (mine, flushed)
        }
        None => {
            if let Some(to) = to
                && device.profile().role()?.is_staff()
            {
                // The duress rule: nothing reaches a defender's device
                // while it has an open duress alert (checked before
                // anything is queued; offline, it cannot be checked).
                let session = device.connect().await.ok();
                let checked = super::coerced::refuse_if_coerced(
                    &device,
                    session.as_ref(),
                    &[to],
                    "sent",
                    (
                        "Once online, send it again.",
                        "Once the alert is resolved, send it again; write to the team meanwhile (`hotline send` without --to).",
                    ),
                )
                .await;
                if let Some(s) = session {
                    s.close().await;
                }
                checked?;
            }
            let mine = device.queue_item(message.as_bytes(), Outgoing::Message { to })?;
            (mine, deliver(&mut device, Some(mine)).await)
        }
    };
    let defender = !device.profile().role()?.is_staff();
    let also = match (to, alert) {
        (Some(to), _) => format!(" and to {}", device.shown(&to)),
        (None, Some(alert)) if !defender => format!(" and to the defender of alert #{alert}"),
        (None, Some(alert)) => format!(", in the thread of your alert #{alert}"),
        (None, None) => String::new(),
    };
    match fate(&device, &flushed, mine)? {
        Fate::Settled(Sent::Message { id, .. } | Sent::CaseRequested { id, .. }) => println!(
            "message {id} sent, end-to-end encrypted, to the staff on the signed roster{also}"
        ),
        Fate::Settled(Sent::Dropped { reason, .. }) => {
            bail!("{reason}. It was removed from the outbox and will not be sent again")
        }
        Fate::Settled(Sent::Alert(_)) => {}
        Fate::SentElsewhere(e) => println!(
            "message {} sent, end-to-end encrypted (by another hotline command running at the same time)",
            e.server_id
        ),
        Fate::Gone => {
            bail!("the message was removed from the outbox by another command; it was not sent")
        }
        Fate::Waiting => return Err(queued(&device, mine, &flushed, "The message")),
    }
    Ok(())
}

/// What became of the item a command queued.
pub(super) enum Fate {
    /// This command settled it.
    Settled(Sent),
    /// Another command running at the same time sent it.
    SentElsewhere(Entry),
    /// Another command removed it unsent (`hotline outbox --drop`).
    Gone,
    /// It still waits in the outbox.
    Waiting,
}

/// What became of `mine` after `flushed`.
pub(super) fn fate(device: &Device, flushed: &Flushed, mine: [u8; 16]) -> anyhow::Result<Fate> {
    if let Some((_, s)) = flushed.settled.iter().find(|(id, _)| *id == mine) {
        return Ok(Fate::Settled(s.clone()));
    }
    if device.is_waiting(mine) {
        return Ok(Fate::Waiting);
    }
    Ok(match device.sent_entry(mine)? {
        Some(e) => Fate::SentElsewhere(e),
        None => Fate::Gone,
    })
}

/// Says plainly that `what` (the item `mine`) was not sent and waits in
/// the outbox, and why; the command then exits with status 3.
pub(super) fn queued(
    device: &Device,
    mine: [u8; 16],
    flushed: &Flushed,
    what: &str,
) -> anyhow::Error {
    // A device the server no longer knows, or revoked, will never send
    // what waits: saying it "goes out with the next command" would be a
    // lie to someone who may be in danger.
    if let Some(e) = &flushed.stopped
        && matches!(
            e.code(),
            Some(hotline_proto::ErrorCode::DeviceRevoked | hotline_proto::ErrorCode::UnknownDevice)
        )
    {
        return anyhow::anyhow!(
            "{e}. NOTHING WAS SENT, and nothing ever will be from this device: reach the hotline another way"
        );
    }
    let why = flushed
        .stopped
        .as_ref()
        .map_or_else(|| "it could not be sent".to_owned(), ToString::to_string);
    let place = device
        .pending_ids()
        .iter()
        .position(|id| *id == mine)
        .map(|i| format!(" as item {}", i + 1))
        .unwrap_or_default();
    println!("NOT SENT YET: {why}");
    let network = flushed
        .stopped
        .as_ref()
        .is_none_or(hotline_client::ClientError::is_transient);
    if network {
        println!(
            "{what} waits in this device's outbox{place} and goes out, once, with the next hotline command that reaches the server (`hotline outbox` tries now; `hotline outbox --drop N` removes item N)."
        );
    } else {
        // Not the network: the next command will not send it either,
        // until what stopped it is put right.
        println!(
            "{what} waits in this device's outbox{place} and goes out, once, with the first hotline command after that is put right (`hotline outbox` tries; `hotline outbox --drop N` removes item N)."
        );
    }
    Queued.into()
}

/// The device a person named with `--to`: a whole id, the start of one or
/// a name, among the devices known here (by name, on a roster, in the
/// kept messages), or else among those the server lists too (every device
/// for an admin, the alerts' defenders for staff).
async fn recipient(device: &mut Device, named: &str) -> anyhow::Result<DeviceId> {
    if let Ok(id) = super::names::device_arg(device, named, &device.known_device_ids()) {
        return Ok(id);
    }
    let session = device.connect().await?;
    let seen = super::names::known_devices(device, Some(&session)).await;
    session.close().await;
    super::names::device_arg(device, named, &seen)
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
    sos_too: bool,
) -> anyhow::Result<()> {
    // An SOS queued on this device without the passphrase went first, in
    // `run_command` (unless only listing or dropping).
    let mut device = open_device(state)?;
    if let Some(n) = drop {
        let Some(index) = n.checked_sub(1) else {
            bail!("items are numbered from 1, as `hotline outbox --list` shows them");
        };
        // Numbers move when an SOS is queued (SOSes go first): an SOS is
        // dropped only when the person says so knowingly.
        if let Some(w) = device.pending().get(index)
            && matches!(w.what, Outgoing::Alert(_))
            && !sos_too
        {
            bail!(
                "item {n} is an SOS (written {}). Nothing was removed: an SOS dropped never alerts anyone. \
                 Check `hotline outbox --list`; to drop it all the same: hotline outbox --drop {n} --sos-too",
                date_time(w.created_at)
            );
        }
        let gone = device.drop_pending(index)?;
        println!(
            "removed item {n} ({}, written {}): it will not be sent",
            describe(&gone.what),
            date_time(gone.created_at)
        );
        return Ok(());
    }
    // Still there: the server could not take it yet (said above).
    for panic in hotline_client::panic_outbox::pending(state).unwrap_or_default() {
        println!(
            "an SOS queued without the passphrase (written {}) waits on this device; it goes out first, with the next command that reaches the server",
            date_time(panic.created_at)
        );
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
            date_time(w.created_at),
            w.len
        );
    }
    if list_only {
        return Ok(());
    }
    let flushed = deliver(&mut device, None).await;
    let sent = flushed
        .settled
        .iter()
        .filter(|(_, s)| !matches!(s, Sent::Dropped { .. }))
        .count();
    println!("sent {sent} of {} item(s)", waiting.len());
    let left = device.pending().len();
    if left > 0 {
        let why = flushed
            .stopped
            .as_ref()
            .map_or_else(|| "it could not be sent".to_owned(), ToString::to_string);
        println!("NOT SENT YET: {why}");
        println!("{left} item(s) still wait in the outbox.");
        return Err(Queued.into());
    }
    Ok(())
}

/// What an outbox item is, in a few words.
pub(super) fn describe(what: &Outgoing) -> String {
    match what {
        Outgoing::Message { to: None } => "a message to the staff".into(),
        Outgoing::Message { to: Some(_) } => "a message to one device".into(),
        Outgoing::Reply { alert, .. } => format!("a reply in alert #{alert}"),
        Outgoing::Alert(p) => format!("an SOS ({p})"),
        Outgoing::CaseKeys { .. } => "case keys for staff devices".into(),
        Outgoing::CaseRequest(p) => format!("a request for {p} help"),
        Outgoing::CaseShare { case_id, .. } => format!(
            "a share of case {}",
            super::case_view::short(case_id.as_bytes())
        ),
        Outgoing::CaseReply { .. } => "a reply about your case".into(),
    }
}

/// `hotline inbox`: the messages not shown yet (fetched now, or kept
/// from before), then marked shown; they stay in `hotline messages`.
pub(super) async fn inbox(state: &StateDir) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let session = device.connect().await?;
    super::unlock::after_unlock(device.state(), &session).await;
    let waiting = device.pending().len();
    if waiting > 0 {
        let flushed = send_over(&mut device, &session, None).await;
        let left = device.pending().len();
        if let Some(e) = &flushed.stopped {
            eprintln!("NOT SENT YET: {left} item(s) still wait in the outbox: {e}");
        }
    }
    fetch_new(&mut device, &session).await?;
    let new = device.unshown()?;
    if new.is_empty() {
        println!("no new messages");
    }
    for e in &new {
        print!("{}", show(&device, e));
    }
    mark_shown(&mut device, &session, &new).await?;
    session.close().await;
    Ok(())
}

/// `hotline messages [--alert N]`: the messages this device holds (all,
/// or the thread of alert N), after fetching what is new if the server
/// can be reached.
pub(super) async fn messages(state: &StateDir, alert: Option<u64>) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    let session = match device.connect().await {
        Ok(session) => {
            if let Err(e) = fetch_new(&mut device, &session).await {
                eprintln!("WARNING: new messages could not be fetched: {e}");
            }
            Some(session)
        }
        Err(e) => {
            eprintln!("offline ({e}); showing the messages this device holds");
            None
        }
    };
    let history = device.history()?;
    let entries: Vec<Entry> = match alert {
        Some(n) => history.thread(n).into_iter().cloned().collect(),
        None => history.entries().to_vec(),
    };
    match (entries.is_empty(), alert) {
        (true, Some(n)) => match super::alert_copy::case_holding(&device, n) {
            // Sealed to a roster before this device's: its words were
            // copied into a case this device reads.
            Some(case) => println!(
                "no messages in the thread of alert #{n} on this device; its SOS text is in case {case}: hotline case show {case}"
            ),
            None => println!("no messages in the thread of alert #{n} on this device"),
        },
        (true, None) => println!("no messages on this device"),
        _ => {}
    }
    for e in &entries {
        print!("{}", show(&device, e));
    }
    let unshown: Vec<Entry> = entries.into_iter().filter(|e| !e.shown).collect();
    match &session {
        Some(s) => mark_shown(&mut device, s, &unshown).await?,
        None => device.mark_shown(&unshown.iter().map(|e| e.message_id).collect::<Vec<_>>())?,
    }
    if let Some(s) = session {
        s.close().await;
    }
    Ok(())
}

/// Fetches, opens and keeps what waits for this device, and files the
/// text of each alert (as staff receive it) in the alert's thread.
pub(super) async fn fetch_new(device: &mut Device, session: &Session) -> Result<(), ClientError> {
    fetch_new_listing(device, session).await.map(|_| ())
}

/// [`fetch_new`], returning the alerts it listed to file what came in
/// their threads (empty if nothing came).
pub(super) async fn fetch_new_listing(
    device: &mut Device,
    session: &Session,
) -> Result<Vec<AlertInfo>, ClientError> {
    match device.sync_prekeys(session).await {
        Ok(_) => {}
        // The server cannot write now (storage full, or read-only): keys
        // are topped up next time; what waits is still read and shown.
        Err(ClientError::Refused(e)) if e.code == hotline_proto::ErrorCode::Unavailable => {
            eprintln!("WARNING: this device's keys could not be topped up now: {e}");
        }
        Err(e) => return Err(e),
    }
    let received = device.receive(session).await;
    for w in device.take_warnings() {
        eprintln!("WARNING: {w}");
    }
    let mut alerts = Vec::new();
    if !received?.is_empty() {
        alerts = session.alerts(false).await?;
        for a in &alerts {
            device.link_alert(a)?;
        }
    }
    Ok(alerts)
}

/// Records `entries` as shown, here and (for those received) to their
/// senders.
pub(super) async fn mark_shown(
    device: &mut Device,
    session: &Session,
    entries: &[Entry],
) -> Result<(), ClientError> {
    if entries.is_empty() {
        return Ok(());
    }
    device.mark_shown(&entries.iter().map(|e| e.message_id).collect::<Vec<_>>())?;
    let read: Vec<u64> = entries
        .iter()
        .filter(|e| !e.sent)
        .map(|e| e.server_id)
        .collect();
    if !read.is_empty() {
        session.mark_read(read).await?;
    }
    Ok(())
}

/// A message as the commands show it: a heading line (when, who, by the
/// name `device` knows them by, which thread) and the text, indented.
pub(super) fn show(device: &Device, e: &Entry) -> String {
    if let Some(line) = case_words(device, e) {
        let mut out = format!(
            "[{}] {line}\n",
            super::alert_view::when(e.timestamp, hotline_client::unix_now())
        );
        for l in super::screen::printable(e.message.text.as_bytes()).lines() {
            out.push_str("  ");
            out.push_str(l);
            out.push('\n');
        }
        return out;
    }
    if let Some(line) = case_notice(device, e) {
        return format!(
            "[{}] {line}\n",
            super::alert_view::when(e.timestamp, hotline_client::unix_now())
        );
    }
    let thread = if e.thread != 0 {
        format!(" [alert #{}]", e.thread)
    } else {
        String::new()
    };
    let heading = match (e.sent, e.sos) {
        (true, true) => "your SOS".to_owned(),
        (true, false) => "you wrote".to_owned(),
        (false, _) => {
            let sender = e.peer.map(|p| device.shown(&p)).unwrap_or_default();
            match e.sender_role {
                Some(role) => format!("from {role} {sender}"),
                None => format!("from defender {sender}"),
            }
        }
    };
    let panic = if e.via_panic_key {
        " (SOS sent with the panic key, without the passphrase)"
    } else {
        ""
    };
    let mut out = format!(
        "[{}] {heading}{thread}{panic}:\n",
        super::alert_view::when(e.timestamp, hotline_client::unix_now())
    );
    // An SOS says its category and language; a kind this version does not
    // know is shown all the same, with its number.
    let m = &e.message;
    let mut about = Vec::new();
    if let Kind::Unknown(n) = m.kind {
        about.push(format!(
            "a kind of message this version does not know ({n})"
        ));
    }
    if let Some(c) = m.category {
        about.push(format!("category {c}"));
    }
    if !m.language.is_empty() && !about.is_empty() {
        about.push(format!("written in {}", m.language));
    }
    if !about.is_empty() {
        out.push_str(&format!("  ({})\n", about.join(", ")));
    }
    for line in super::screen::printable(m.text.as_bytes()).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// On a staff device, a defender's reply or request that no case on this
/// device shows (erased, unknown, not readable yet, or not linking its
/// sender): the heading of the message shown with its words, saying so and
/// how to answer. A defender's words are never shown nowhere.
fn case_words(device: &Device, e: &Entry) -> Option<String> {
    if e.sent || e.sender_role.is_some() || !device.profile().role().is_ok_and(|r| r.is_staff()) {
        return None;
    }
    let sender = e.peer?;
    // A reply about a request staff declined: what is true, and how to
    // take the request on after all.
    if let Kind::CaseReply { case_id } = &e.message.kind
        && let Some(declined) = super::case_links::declined(device, case_id, &sender)
    {
        let id = super::case_view::short(case_id.as_bytes());
        return Some(format!(
            "defender {} replied about their request {id}, {declined}; their words are below (and in `hotline case show {id}`). To take the request on after all: hotline case reopen {id}. Answer with: hotline send --to {sender} \"…\"",
            device.shown(&sender)
        ));
    }
    let (what, why) = match &e.message.kind {
        Kind::CaseReply { case_id } => (
            format!(
                "replied about case {}",
                super::case_links::case_name(device, case_id)
            ),
            super::case_links::not_in_a_case(device, Some(case_id), None, Some(sender))?,
        ),
        Kind::CaseRequest { programme } => {
            let why = super::case_links::not_in_a_case(device, None, e.digest.as_ref(), None)?;
            // A brand-new request: its case comes with the next case
            // sync, where staff answer it (not by a message).
            if why == super::case_links::REQUEST_NOT_SYNCED {
                return Some(format!(
                    "a new request from defender {} for {programme} help (its words are below): `hotline case list --sync --state requested`",
                    device.shown(&sender)
                ));
            }
            (format!("asked for {programme} help"), why)
        }
        _ => return None,
    };
    Some(format!(
        "defender {} {what}, {why}, so no case here shows it; their words are below. Answer with: hotline send --to {sender} \"…\"",
        device.shown(&sender)
    ))
}

/// A case request, share or reply is not a chat message: it is shown
/// where it belongs (`hotline my-case` on a defender's device, the case on
/// staff devices), and here only as a line pointing there.
fn case_notice(device: &Device, e: &Entry) -> Option<String> {
    let sender = || e.peer.map(|p| device.shown(&p)).unwrap_or_default();
    Some(match (&e.message.kind, e.sent) {
        (Kind::CaseRequest { programme }, true) => {
            format!("you asked the team for {programme} help (`hotline my-case`)")
        }
        (Kind::CaseRequest { programme }, false) => match e.sender_role {
            None => format!(
                "defender {} asked for {programme} help: a new case request (`hotline case list --sync --state requested`)",
                sender()
            ),
            Some(role) => format!(
                "{role} {} sent a case request; only a defender's request makes a case, so it was ignored",
                sender()
            ),
        },
        (Kind::CaseReply { .. }, true) => {
            "you replied to the team about your case (`hotline my-case`)".into()
        }
        (Kind::CaseReply { case_id }, false) => {
            let id = super::case_view::short(case_id.as_bytes());
            format!(
                "defender {} replied about case {id} (`hotline case show {id}`)",
                sender()
            )
        }
        (Kind::CaseShare { case_id, .. }, true) => format!(
            "you shared something of case {} with its defender",
            super::case_view::short(case_id.as_bytes())
        ),
        (Kind::CaseShare { case_id, .. }, false) => match e.sender_role {
            Some(role) if device.profile().role().is_ok_and(|r| r.is_staff()) => {
                let id = super::case_view::short(case_id.as_bytes());
                format!(
                    "{role} {} shared something of case {id} with its defender (`hotline case show {id}`)",
                    sender()
                )
            }
            // Named from the defender's own request: a decline says
            // which request it closes.
            Some(_) => device
                .history()
                .ok()
                .and_then(|h| {
                    super::request_words::share_named(h.entries(), case_id, &e.message.text)
                })
                .map_or_else(
                    || {
                        "the team shared something with you about your case (`hotline my-case`)"
                            .into()
                    },
                    |about| format!("{about} (`hotline my-case`)"),
                ),
            None => format!(
                "something shared by device {}, which is not staff on the signed roster, was ignored",
                sender()
            ),
        },
        _ => return None,
    })
}

/// Connects and sends what the outbox holds (see [`send_over`]). A
/// failure to connect is reported as what stopped the flush: everything
/// stays queued.
pub(super) async fn deliver(device: &mut Device, mine: Option<[u8; 16]>) -> Flushed {
    let session = match device.connect().await {
        Ok(s) => s,
        Err(e) => {
            return Flushed {
                settled: Vec::new(),
                stopped: Some(e),
            };
        }
    };
    let flushed = send_over(device, &session, mine).await;
    // After what it came to send: nothing stands before an SOS.
    super::unlock::after_unlock(device.state(), &session).await;
    finish(device, session).await;
    flushed
}

/// Ends a session that sent: keeps this device's prekeys published (so
/// that answers can reach it; a failure is only a warning), then closes.
pub(super) async fn finish(device: &mut Device, session: Session) {
    if let Err(e) = device.sync_prekeys(&session).await {
        eprintln!("WARNING: this device's keys could not be renewed: {e}");
    }
    session.close().await;
}

/// Sends what the outbox holds over `session` (SOSes first). Says what
/// else it settled: each item sent, and each that could not be sent and
/// was removed (but for `mine`, the command's own item, which the command
/// reports itself).
pub(super) async fn send_over(
    device: &mut Device,
    session: &Session,
    mine: Option<[u8; 16]>,
) -> Flushed {
    let flushed = device.flush_report(session).await;
    for (id, s) in &flushed.settled {
        if Some(*id) == mine {
            continue;
        }
        match s {
            Sent::Dropped { what, reason, .. } => eprintln!(
                "NOT SENT: {} was removed from the outbox: {reason}",
                describe(what)
            ),
            Sent::Message { id, .. } => {
                println!("sent from the outbox: message {id}")
            }
            Sent::CaseRequested { .. } => {
                println!(
                    "sent from the outbox: your request; the team has it and will answer here: hotline my-case"
                )
            }
            // Past the open-alert limit it joined an open alert: said as
            // `sos` says it, never as a new alert.
            Sent::Alert(a) if a.joined_now => {
                print!("sent from the outbox: an SOS; ");
                super::alert_view::joined(a);
            }
            Sent::Alert(a) => println!(
                "sent from the outbox: an SOS, alert {} raised ({}; {} paged)",
                a.id, a.priority, a.paged
            ),
        }
    }
    for w in device.take_warnings() {
        eprintln!("WARNING: {w}");
    }
    flushed
}
