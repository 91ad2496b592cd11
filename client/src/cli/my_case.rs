//! The defender's commands about their case: `hotline request PROGRAMME
//! "…"` (a CASE_REQUEST to the staff on the roster, sent with
//! `request_case`), `hotline my-case` (exactly what the team shared, the
//! defender's own requests and replies, and a check-in offer with the
//! command that accepts it) and `hotline my-case reply "…"` (a
//! CASE_REPLY to the staff).
//!
//! A defender device holds no case key and never syncs cases: everything
//! shown here comes from its own message history. Nothing else of a case
//! (people, notes, stages, other cases) ever reaches it.

use anyhow::bail;
use hotline_client::StateDir;
use hotline_client::history::Entry;
use hotline_client::messenger::{Device, Sent};
use hotline_client::outbox::Outgoing;
use hotline_proto::case::CaseId;
use hotline_proto::e2e::content::{Kind, Programme};

use super::case_links::duration;
use super::date::date_time;
use super::messages::{Fate, deliver, fate, fetch_new, mark_shown, queued};
use super::request_words::is_decline;
use super::unlock::open_device;

/// What `request` says when the team has the request.
const NEXT: &str = "the team has your request; they will answer here: hotline my-case";

fn defender_only(device: &Device, what: &str) -> anyhow::Result<()> {
    if device.profile().role()?.is_staff() {
        bail!("{what} is for a defender's device; staff use `hotline case …`");
    }
    Ok(())
}

/// `hotline request PROGRAMME "…"`.
pub(super) async fn request(state: &StateDir, programme: &str, text: &str) -> anyhow::Result<()> {
    let Some(programme) = Programme::from_name(programme) else {
        bail!(
            "{programme:?} is not something the team can be asked for; ask for one of: {}",
            Programme::ALL.map(Programme::name).join(", ")
        );
    };
    if text.trim().is_empty() {
        bail!("say in a few words what you need; nothing was sent");
    }
    let mut device = open_device(state)?;
    defender_only(&device, "`hotline request`")?;
    let mine = device.queue_item(text.as_bytes(), Outgoing::CaseRequest(programme))?;
    let flushed = deliver(&mut device, Some(mine)).await;
    match fate(&device, &flushed, mine)? {
        Fate::Settled(Sent::CaseRequested { duplicate, .. }) => {
            let again = if duplicate {
                " (it had reached the team before)"
            } else {
                ""
            };
            println!(
                "your request for {programme} help was sent, end-to-end encrypted, to the staff on the signed roster{again}"
            );
            println!("{NEXT}");
        }
        Fate::Settled(Sent::Dropped { reason, .. }) => {
            bail!("NOT SENT: {reason}. It was removed from the outbox and will not be sent again")
        }
        Fate::Settled(_) | Fate::SentElsewhere(_) => {
            println!("your request for {programme} help was sent, end-to-end encrypted");
            println!("{NEXT}");
        }
        Fate::Gone => {
            bail!("the request was removed from the outbox by another command; it was not sent")
        }
        Fate::Waiting => return Err(queued(&device, mine, &flushed, "Your request")),
    }
    Ok(())
}

/// The entries of this device's history that `my-case` shows: its own
/// requests and replies, and the shares from staff on the roster (a
/// share from any other device is left out, with a warning on standard
/// error).
fn case_entries(device: &Device, entries: &[Entry]) -> Vec<Entry> {
    let (kept, warnings) = kept_entries(&|d| device.shown(d), entries);
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    kept
}

/// [`case_entries`], with the warnings returned; `who` names a device.
fn kept_entries(
    who: &dyn Fn(&hotline_proto::DeviceId) -> String,
    entries: &[Entry],
) -> (Vec<Entry>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for e in entries {
        match (&e.message.kind, e.sent) {
            (Kind::CaseRequest { .. } | Kind::CaseReply { .. }, true) => out.push(e.clone()),
            (Kind::CaseShare { .. }, false) => {
                if e.sender_role.is_some_and(|r| r.is_staff()) {
                    out.push(e.clone());
                } else {
                    warnings.push(format!(
                        "something shared by device {}, which is not staff on the signed roster, was ignored",
                        e.peer.map(|p| who(&p)).unwrap_or_default()
                    ));
                }
            }
            _ => {}
        }
    }
    (out, warnings)
}

/// One of the defender's requests, or a case the team opened with them,
/// as `my-case` lists it under its number (what `my-case reply --case N`
/// names): the request (if it was one) and what was shared and replied
/// about its case, oldest first.
struct Group<'a> {
    /// The case (`None`: a request the server's answer to was not kept).
    case: Option<CaseId>,
    request: Option<&'a Entry>,
    items: Vec<&'a Entry>,
}

/// `entries` (as [`case_entries`] keeps them, oldest first) grouped by
/// request or case, numbered from 1 in the order this device first held
/// them (a new request or case comes last: numbers do not move).
fn groups(entries: &[Entry]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for e in entries {
        match e.message.kind {
            Kind::CaseRequest { .. } => {
                // The same request held twice (the server's one case for
                // it): one group.
                match out
                    .iter_mut()
                    .find(|g| g.case.is_some() && g.case == e.request_case)
                {
                    Some(g) => {
                        g.request.get_or_insert(e);
                    }
                    None => out.push(Group {
                        case: e.request_case,
                        request: Some(e),
                        items: Vec::new(),
                    }),
                }
            }
            Kind::CaseShare { case_id, .. } | Kind::CaseReply { case_id } => {
                match out.iter_mut().find(|g| g.case == Some(case_id)) {
                    Some(g) => g.items.push(e),
                    None => out.push(Group {
                        case: Some(case_id),
                        request: None,
                        items: vec![e],
                    }),
                }
            }
            _ => {}
        }
    }
    out
}

/// How `g` stands for the defender: waiting, answered, or closed by the
/// team (its newest share is the decline notice).
fn standing(g: &Group<'_>) -> &'static str {
    match g.items.iter().rev().find(|e| !e.sent) {
        None if g.request.is_some() => "waiting for the team's answer",
        None => "",
        Some(e) if is_decline(e) => "the team closed this request",
        Some(_) => "the team answered",
    }
}

/// The heading line of group number `n`.
fn heading(n: usize, g: &Group<'_>) -> String {
    match g.request {
        Some(e) => {
            let Kind::CaseRequest { programme } = e.message.kind else {
                return format!("  {n}. ");
            };
            format!(
                "  {n}. {}  {programme}: {} ({})",
                date_time(e.timestamp),
                e.message.text,
                standing(g)
            )
        }
        None => format!("  {n}. what the team shares with you"),
    }
}

/// The lines of `my-case` for `entries` (as [`case_entries`] keeps them,
/// oldest first): each request or case under its number, with what was
/// shared and replied about it. `checkins_set`: when check-ins were last
/// set up or stopped on this device; an offer older than that is not
/// offered again.
fn lines(entries: &[Entry], checkins_set: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    let groups = groups(entries);
    if groups.iter().all(|g| g.request.is_none()) {
        out.push(
            "you have asked the team for nothing yet (`hotline request relocation|legal|medical|subsistence \"…\"`)"
                .into(),
        );
    }
    if groups.is_empty() {
        out.push("nothing shared with you yet".into());
        return out;
    }
    out.push("your requests, and what the team shared with you (newest last):".into());
    let mut offer = None;
    for (i, g) in groups.iter().enumerate() {
        out.push(heading(i + 1, g));
        for e in &g.items {
            let who = if e.sent { "you replied" } else { "the team" };
            out.push(format!(
                "       {}  {who}: {}",
                date_time(e.timestamp),
                e.message.text
            ));
            if let Kind::CaseShare {
                checkin_offer: Some(o),
                ..
            } = e.message.kind
            {
                out.push(format!(
                    "           check-ins offered for your journey: every {}, {} grace",
                    duration(o.interval_secs),
                    duration(o.grace_secs)
                ));
                if offer.is_none_or(|(_, at)| e.timestamp >= at) {
                    offer = Some((o, e.timestamp));
                }
            }
        }
    }
    match (offer, checkins_set) {
        // Set up, changed or stopped: the file keeps only when (never
        // whether they run, which the phone does not show).
        (Some((o, offered)), Some(set)) if set >= offered => out.push(format!(
            "check-ins were last set up or changed on this device on {}, after the team's newest offer (to set them as offered again: hotline checkin-setup --every {} --grace {})",
            date_time(set),
            duration(o.interval_secs),
            duration(o.grace_secs)
        )),
        (Some((o, _)), _) => out.push(format!(
            "to accept the check-ins offered: hotline checkin-setup --every {} --grace {}",
            duration(o.interval_secs),
            duration(o.grace_secs)
        )),
        (None, _) => {}
    }
    out.push(if groups.len() > 1 {
        "to answer the team about one of them: hotline my-case reply --case NUMBER \"…\" (NUMBER as listed above)".into()
    } else {
        "to answer the team: hotline my-case reply \"…\"".into()
    });
    out
}

/// The case a reply goes to: the one of `groups` numbered `handle`, or
/// the only one there is. Never a guess: with more than one and no
/// number, or a number that names none, the reply is refused with the
/// list and the exact command to type.
fn reply_case(groups: &[Group<'_>], handle: Option<&str>) -> anyhow::Result<CaseId> {
    let list = || {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| heading(i + 1, g))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let group = match (handle, groups) {
        (_, []) => bail!(
            "there is nothing to reply to yet: the team has shared nothing with this device, and it has no request the team holds. To ask for help: hotline request relocation|legal|medical|subsistence \"…\""
        ),
        (None, [one]) => one,
        (None, _) => bail!(
            "you have {} requests or cases with the team: say which one this reply is about. Nothing was sent.\n{}\nType: hotline my-case reply --case NUMBER \"…\" (for example: hotline my-case reply --case 1 \"…\")",
            groups.len(),
            list()
        ),
        (Some(h), _) => {
            let n = h.trim().trim_start_matches('#').parse::<usize>().ok();
            match n.and_then(|n| n.checked_sub(1)).and_then(|i| groups.get(i)) {
                Some(g) => g,
                None => bail!(
                    "{h:?} is not one of the numbers `hotline my-case` lists; nothing was sent. They are:\n{}\nType: hotline my-case reply --case NUMBER \"…\"",
                    list()
                ),
            }
        }
    };
    group.case.ok_or_else(|| {
        anyhow::anyhow!(
            "the team's answer to this request did not reach this device, so a reply cannot name it; nothing was sent. The team answers in: hotline my-case"
        )
    })
}

/// `hotline my-case`: fetched first when the server can be reached (what
/// waits in the outbox goes first), else from what this device holds.
pub(super) async fn show(state: &StateDir) -> anyhow::Result<()> {
    let mut device = open_device(state)?;
    defender_only(&device, "`hotline my-case`")?;
    let session = match device.connect().await {
        Ok(session) => {
            super::unlock::after_unlock(device.state(), &session).await;
            let flushed = super::messages::send_over(&mut device, &session, None).await;
            if let Some(e) = &flushed.stopped {
                eprintln!(
                    "NOT SENT YET: {} item(s) still wait in the outbox: {e}",
                    device.pending().len()
                );
            }
            if let Err(e) = fetch_new(&mut device, &session).await {
                eprintln!("WARNING: new messages could not be fetched: {e}");
            }
            Some(session)
        }
        Err(e) => {
            eprintln!("offline ({e}); showing what this device holds");
            None
        }
    };
    let history = device.history()?;
    let entries = case_entries(&device, history.entries());
    let checkins_set = state.load_checkin_set().unwrap_or_else(|e| {
        eprintln!("WARNING: {e}");
        None
    });
    for l in lines(&entries, checkins_set) {
        println!("{l}");
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

/// `hotline my-case reply [--case N] "…"`: to the staff, about the
/// request or case numbered `handle` in `my-case` (needed only when there
/// is more than one).
pub(super) async fn reply(
    state: &StateDir,
    handle: Option<&str>,
    text: &str,
) -> anyhow::Result<()> {
    if text.trim().is_empty() {
        bail!("the reply is empty; nothing was sent");
    }
    let mut device = open_device(state)?;
    defender_only(&device, "`hotline my-case reply`")?;
    // What has arrived since counts: a case shared with this device since
    // `my-case` was read is one of them.
    if let Ok(session) = device.connect().await {
        if let Err(e) = fetch_new(&mut device, &session).await {
            eprintln!("WARNING: new messages could not be fetched: {e}");
        }
        session.close().await;
    }
    let history = device.history()?;
    let entries = case_entries(&device, history.entries());
    let case_id = reply_case(&groups(&entries), handle)?;
    let mine = device.queue_item(text.as_bytes(), Outgoing::CaseReply { case_id })?;
    let flushed = deliver(&mut device, Some(mine)).await;
    match fate(&device, &flushed, mine)? {
        Fate::Settled(Sent::Dropped { reason, .. }) => {
            bail!("NOT SENT: {reason}. It was removed from the outbox and will not be sent again")
        }
        Fate::Settled(_) | Fate::SentElsewhere(_) => {
            println!("your reply was sent, end-to-end encrypted, to the staff on the signed roster")
        }
        Fate::Gone => {
            bail!("the reply was removed from the outbox by another command; it was not sent")
        }
        Fate::Waiting => return Err(queued(&device, mine, &flushed, "Your reply")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_proto::e2e::content::{CheckinOffer, Message};

    fn entry(n: u8, sent: bool, message: Message) -> Entry {
        Entry {
            message_id: [n; 16],
            sent,
            peer: None,
            sender_role: None,
            timestamp: 1_795_910_400 + u64::from(n) * 60,
            thread: 0,
            message,
            server_id: u64::from(n),
            sos: false,
            shown: false,
            via_panic_key: false,
            digest: None,
            request_case: None,
        }
    }

    #[test]
    fn my_case_reads_requests_answers_and_the_command_that_accepts_an_offer() {
        let case = CaseId::from_bytes([5; 16]);
        let mut req = entry(
            1,
            true,
            Message::case_request(Programme::Relocation, "we must leave", ""),
        );
        req.request_case = Some(case);
        let share = entry(
            2,
            false,
            Message::case_share(
                case,
                "travel booked for 12 May",
                "",
                Some(CheckinOffer {
                    interval_secs: 7200,
                    grace_secs: 1800,
                }),
            ),
        );
        let reply = entry(3, true, Message::case_reply(case, "thank you", ""));
        let l = lines(&[req.clone(), share.clone(), reply.clone()], None);
        assert_eq!(
            l,
            vec![
                "your requests, and what the team shared with you (newest last):",
                "  1. 2026-11-29 00:01 UTC  relocation: we must leave (the team answered)",
                "       2026-11-29 00:02 UTC  the team: travel booked for 12 May",
                "           check-ins offered for your journey: every 2h, 30m grace",
                "       2026-11-29 00:03 UTC  you replied: thank you",
                "to accept the check-ins offered: hotline checkin-setup --every 2h --grace 30m",
                "to answer the team: hotline my-case reply \"…\"",
            ]
        );
        let l = lines(&[req.clone()], None);
        assert!(l[1].ends_with("(waiting for the team's answer)"), "{l:?}");
        assert_eq!(lines(&[], None)[1], "nothing shared with you yet");
        // Check-ins set up after the offer: it is not offered again; an
        // offer newer than the set-up is.
        let l = lines(
            &[req.clone(), share.clone(), reply.clone()],
            Some(share.timestamp),
        );
        assert!(!l.concat().contains("to accept"), "{l:?}");
        assert!(
            l.contains(&"check-ins were last set up or changed on this device on 2026-11-29 00:02 UTC, after the team's newest offer (to set them as offered again: hotline checkin-setup --every 2h --grace 30m)".to_owned()),
            "{l:?}"
        );
        let l = lines(&[req, share.clone(), reply], Some(share.timestamp - 1));
        assert!(
            l.concat().contains("to accept the check-ins offered"),
            "{l:?}"
        );
    }

    /// A share whose sender is not staff on the roster is ignored with a
    /// warning naming the device; a staff share, the device's own
    /// requests and replies are kept; chat messages are not case items.
    #[test]
    fn a_share_from_a_device_not_on_the_staff_roster_is_ignored_with_a_warning() {
        let case = CaseId::from_bytes([5; 16]);
        let mut forged = entry(1, false, Message::case_share(case, "FORGED", "", None));
        forged.peer = Some(hotline_proto::DeviceId::from_bytes([9; 16]));
        let mut staff = entry(2, false, Message::case_share(case, "real", "", None));
        staff.sender_role = Some(hotline_proto::Role::Officer);
        let chat = entry(3, false, Message::chat("hello", ""));
        let reply = entry(4, true, Message::case_reply(case, "ok", ""));
        let (kept, warnings) = kept_entries(&|_| "dev9".into(), &[forged, staff, chat, reply]);
        assert_eq!(
            kept.iter().map(|e| e.message_id[0]).collect::<Vec<_>>(),
            vec![2, 4]
        );
        assert_eq!(
            warnings,
            vec![
                "something shared by device dev9, which is not staff on the signed roster, was ignored"
            ]
        );
        assert!(!lines(&kept, None).concat().contains("FORGED"));
    }

    /// Two requests: each under its number with what concerns it; the
    /// decline notice sits under the request it closes; a reply needs the
    /// number, is refused without it (listing them), and goes to the case
    /// the number names, never the newest share's.
    #[test]
    fn two_requests_are_numbered_and_a_reply_goes_to_the_one_named() {
        let open = CaseId::from_bytes([5; 16]);
        let declined = CaseId::from_bytes([6; 16]);
        let mut reloc = entry(
            1,
            true,
            Message::case_request(Programme::Relocation, "we must leave the city now", ""),
        );
        reloc.request_case = Some(open);
        let mut legal = entry(
            2,
            true,
            Message::case_request(Programme::Legal, "a lawyer for my brother", ""),
        );
        legal.request_case = Some(declined);
        let share = entry(
            3,
            false,
            Message::case_share(open, "travel booked", "", None),
        );
        let decline = entry(
            4,
            false,
            Message::case_share(
                declined,
                crate::cli::request_words::DECLINE_NOTICE,
                "",
                None,
            ),
        );
        let all = [reloc.clone(), legal.clone(), share, decline];
        let l = lines(&all, None);
        assert_eq!(
            l[1],
            "  1. 2026-11-29 00:01 UTC  relocation: we must leave the city now (the team answered)"
        );
        assert_eq!(l[2], "       2026-11-29 00:03 UTC  the team: travel booked");
        assert_eq!(
            l[3],
            "  2. 2026-11-29 00:02 UTC  legal: a lawyer for my brother (the team closed this request)"
        );
        assert!(l[4].contains("The team has closed this request"), "{l:?}");
        assert!(
            l.last().is_some_and(|x| x.contains("--case NUMBER")),
            "{l:?}"
        );
        let g = groups(&all);
        let refused = reply_case(&g, None).expect_err("two: a number is needed");
        let said = refused.to_string();
        assert!(said.contains("you have 2 requests or cases"), "{said}");
        assert!(
            said.contains("  1. 2026-11-29 00:01 UTC  relocation"),
            "{said}"
        );
        assert!(said.contains("hotline my-case reply --case 1"), "{said}");
        assert_eq!(reply_case(&g, Some("1")).expect("1"), open);
        assert_eq!(reply_case(&g, Some("2")).expect("2"), declined);
        assert!(reply_case(&g, Some("3")).is_err());
        assert!(reply_case(&g, Some("legal")).is_err());
        // The same request held twice is one.
        assert_eq!(groups(&[reloc.clone(), reloc.clone()]).len(), 1);
        // One only: no number needed.
        assert_eq!(reply_case(&groups(&all[..1]), None).expect("one"), open);
        // The decline notice names the request from the defender's copy.
        assert_eq!(
            crate::cli::request_words::share_named(
                &all,
                &declined,
                crate::cli::request_words::DECLINE_NOTICE
            )
            .as_deref(),
            Some(
                "the team closed your legal request of 2026-11-29 00:02 UTC (\"a lawyer for my brother\")"
            )
        );
        assert_eq!(
            crate::cli::request_words::first_words("one two three four five six seven eight nine"),
            "one two three four five six seven eight…"
        );
    }
}
