//! How an alert reads to a person woken at 3 a.m.: when (time of day),
//! how urgent, what raised it, the category and first words of the SOS if
//! this device could read them, who raised it and who holds it by name,
//! and where it stands in words, not step numbers.

use hotline_client::history::History;
use hotline_client::messenger::Device;
use hotline_proto::alert::{AlertContent, AlertInfo, AlertOrigin, AlertStatus};
use hotline_proto::e2e::content::Message;
use hotline_proto::time::time_of_day;

use super::date::{date, late};

/// Every SOS text of the alert this device holds, oldest first: the one
/// it was raised with and those that joined it (past the defender's
/// open-alert limit), each made printable and trimmed.
pub(super) fn sos_texts(history: &History, a: &AlertInfo) -> Vec<Message> {
    let mut texts: Vec<(u64, u64, Message)> = history
        .thread(a.id)
        .into_iter()
        .filter(|e| e.sos && (e.sent || e.peer == Some(a.defender)))
        .map(|e| {
            let mut m = e.message.clone();
            m.text = super::screen::printable(m.text.as_bytes())
                .trim()
                .to_owned();
            (e.timestamp, e.server_id, m)
        })
        .collect();
    texts.sort_by_key(|(at, id, _)| (*at, *id));
    texts.into_iter().map(|(_, _, m)| m).collect()
}

/// `(written in fr)`, and the priority the defender chose if it is not
/// the alert's (two SOSes merged offline): what the SOS says about itself
/// besides its category (in the heading) and its words.
fn details(m: &Message, a: &AlertInfo) -> Option<String> {
    let mut parts = Vec::new();
    if !m.language.is_empty() {
        parts.push(format!("written in {}", m.language));
    }
    if let Some(p) = m.priority
        && p != a.priority
    {
        parts.push(format!("the defender chose: {p}"));
    }
    (!parts.is_empty()).then(|| format!("({})", parts.join("; ")))
}

/// `13:02 UTC`, with the date when it was not today.
pub(super) fn when(at: u64, now: u64) -> String {
    if at / 86_400 == now / 86_400 {
        format!("{} UTC", time_of_day(at))
    } else {
        format!("{} {} UTC", date(at), time_of_day(at))
    }
}

/// Minutes, in words.
fn minutes(secs: u64) -> String {
    match secs / 60 {
        0 => "less than a minute".to_owned(),
        1 => "1 min".to_owned(),
        m if m < 120 => format!("{m} min"),
        m => format!("{} h {} min", m / 60, m % 60),
    }
}

/// Where the alert stands, in words.
pub(super) fn state_words(device: &Device, a: &AlertInfo, now: u64) -> String {
    let waiting = minutes(now.saturating_sub(a.raised_at));
    let words = match a.status {
        AlertStatus::Acknowledged => match a.holder {
            Some(h) if h == device.identity().device_id() => "acknowledged, held by YOU".to_owned(),
            Some(h) => format!("acknowledged, held by {}", device.shown(&h)),
            None => "acknowledged".to_owned(),
        },
        AlertStatus::Resolved => format!("resolved{}", by(device, a)),
        AlertStatus::Cancelled => format!("called off{}", by(device, a)),
        AlertStatus::FalseAlarm => format!("called off as a false alarm{}", by(device, a)),
        AlertStatus::Raised if a.exhausted => format!(
            "NOBODY HAS ANSWERED for {waiting}: every escalation step was tried; it stays open until someone claims it"
        ),
        AlertStatus::Raised => match a.tier {
            None => format!("nobody paged yet; raised {waiting} ago"),
            Some(t) if a.position == (0, 0) => format!(
                "paging {} ({} device(s) paged); nobody has answered for {waiting}",
                t.words(),
                a.paged
            ),
            Some(t) => format!(
                "nobody answered for {waiting}; now paging {} ({} device(s) paged so far)",
                t.words(),
                a.paged
            ),
        },
    };
    let mark = match content_mark(device, a).as_str() {
        "" => String::new(),
        m => format!(" {m}"),
    };
    format!("{words}{}{mark}", late(a.checked_in_at))
}

/// What staff must know of who can read the alert's text: for a text
/// sealed to a roster a newer one replaced (raised offline, or before the
/// defender's device saw the newer roster), whether this device can read
/// it (the server gave it the envelope: `envelope_id` is not 0) and how
/// the staff the newer roster added read it: a device that reads it opens
/// a case from the alert, which copies the words into the case
/// (docs/cases.md, "A case from an alert"). Never "expired" unless the
/// roster had expired, and never a word of doubt about the SOS itself.
pub(super) fn content_mark(device: &Device, a: &AlertInfo) -> String {
    if a.content != AlertContent::OlderRoster {
        return a.content.mark().to_owned();
    }
    // The roster the phone sealed to is not told to staff (the server
    // tells only that it was replaced): the current one is named.
    let earlier = match device.profile().roster_version {
        Some(v) => format!("an earlier staff roster than the current one (v{v})"),
        None => "an earlier staff roster than the current one".to_owned(),
    };
    let case = super::alert_copy::case_holding(device, a.id);
    match (a.envelope_id == 0, case) {
        (true, Some(case)) => format!(
            "[this device cannot read the alert itself: the defender's phone sealed its text to {earlier}, before this device was on it; its text is in case {case}: `hotline case show {case}`]"
        ),
        (true, None) => format!(
            "[this device cannot read its text: the defender's phone sealed it to {earlier}, before this device was on it. A colleague who reads it can copy it into a case: `hotline case open --from-alert {}`; this device then reads it in `hotline case show`]",
            a.id
        ),
        (false, Some(case)) => format!(
            "[the defender's phone sealed this text to {earlier}: staff added since cannot read it in the alert; its text is in case {case}]"
        ),
        (false, None) => format!(
            "[the defender's phone sealed this text to {earlier}: staff added since cannot read it; `hotline case open --from-alert {}` copies it into a case they read]",
            a.id
        ),
    }
}

/// ` by …`: who closed it, when the server recorded it. A call-off by the
/// defender's own device is named as such: it may have been coerced.
fn by(device: &Device, a: &AlertInfo) -> String {
    match a.closed_by {
        None => String::new(),
        Some(d) if d == device.identity().device_id() => " by you".to_owned(),
        Some(d) if d == a.defender => {
            format!(" by the defender's own device ({})", device.shown(&d))
        }
        Some(d) => format!(" by {}", device.shown(&d)),
    }
}

/// What raised it: `SOS: arrest`, `missed check-in`, `DURESS`; an SOS
/// that others joined names the category of each of its texts, oldest
/// first, once each (`SOS: threat+medical`).
fn what(a: &AlertInfo, texts: &[Message]) -> String {
    let mut categories = Vec::new();
    for c in texts.iter().filter_map(|m| m.category) {
        let c = c.to_string();
        if !categories.contains(&c) {
            categories.push(c);
        }
    }
    match a.origin {
        AlertOrigin::Sos if categories.is_empty() => "SOS".to_owned(),
        AlertOrigin::Sos => format!("SOS: {}", categories.join("+")),
        origin => origin.as_str().to_owned(),
    }
}

/// What raised the alert and who, as far as this device can tell now:
/// `SOS: arrest from Ana P. (3f9a1c2e)`. A page comes before its text (and
/// the name its sender gives), so a watch says this again once fetched.
pub(super) fn what_and_who(device: &Device, history: &History, a: &AlertInfo) -> String {
    format!(
        "{} from {}",
        what(a, &sos_texts(history, a)),
        device.shown(&a.defender)
    )
}

/// The first line of `m`'s words in quotes, `[…]` if there is more.
fn quoted(m: &Message) -> Option<String> {
    let first = m.text.lines().next()?;
    let more = if m.text.lines().nth(1).is_some() {
        " […]"
    } else {
        ""
    };
    Some(format!("\"{first}\"{more}"))
}

/// The alert in four lines at most: a heading, the SOS's words (if this
/// device holds them), whether the defender raised it again, and where it
/// stands.
pub(super) fn lines(device: &Device, history: &History, a: &AlertInfo, now: u64) -> Vec<String> {
    let texts = sos_texts(history, a);
    let mut out = vec![format!(
        "#{:<8} {:<16} {:<9}  {:<22} from {}",
        a.id,
        when(a.raised_at, now),
        a.priority,
        what(a, &texts),
        device.shown(&a.defender)
    )];
    if a.joined_count == 0 {
        if let Some(m) = texts.first() {
            let line: Vec<String> = quoted(m).into_iter().chain(details(m, a)).collect();
            if !line.is_empty() {
                out.push(format!("          {}", line.join(" ")));
            }
        }
    } else {
        // Past its open-alert limit the defender's further SOSes joined
        // this alert: the newest words are shown (the alert's priority is
        // the most urgent of them, so no single press's choice is named),
        // the others are in its thread.
        if let Some(m) = texts.last() {
            let line: Vec<String> = quoted(m)
                .into_iter()
                .chain((!m.language.is_empty()).then(|| format!("(written in {})", m.language)))
                .collect();
            if !line.is_empty() {
                out.push(format!("          newest: {}", line.join(" ")));
            }
        }
        out.push(format!(
            "          the defender raised it again {} more time(s); every text: `hotline messages --alert {}`",
            a.joined_count, a.id
        ));
    }
    if let Some(case) = super::case_links::alert_case(device, a) {
        out.push(format!("          {case}"));
    }
    out.push(format!("          {}", state_words(device, a, now)));
    out
}

/// The header row of a list of alerts.
pub(super) fn header() -> String {
    format!(
        "{:<9} {:<16} {:<9}  {:<22} {}",
        "ALERT", "RAISED", "PRIORITY", "WHAT", "FROM / WHERE IT STANDS"
    )
}

/// What a defender hears of a text sealed to a roster a newer one
/// replaced: the team was paged all the same.
const OLDER_ROSTER: &str = "Your text was sealed to the staff list this device had; the list has changed since: staff added since read it once a colleague passes it on. The team was paged all the same.";

/// Says that the SOS joined the defender's open alert `a` (past its
/// open-alert limit): whether its staff were paged again now or, paged
/// less than a minute before, have its new text all the same; and that
/// an officer is on it if one holds it.
pub(super) fn joined(a: &AlertInfo) {
    println!(
        "alert {} joined: your SOS was added to this open alert of yours ({}), with its text; no new alert was opened.",
        a.id, a.priority
    );
    match a.content {
        AlertContent::Sealed => {}
        AlertContent::ExpiredRoster => println!(
            "Your text was sealed to an expired staff roster: some staff may not be able to read it."
        ),
        AlertContent::OlderRoster => println!("{OLDER_ROSTER}"),
        AlertContent::None => {
            println!(
                "Your text could NOT be protected and was NOT sent, but the team knows you need help."
            )
        }
    }
    if a.status == AlertStatus::Acknowledged {
        println!("An officer is on it: they hold this alert, and your new text goes to them.");
    }
    let later = a.paged.saturating_sub(a.paged_now);
    if a.paged_again && a.paged_now > 0 {
        println!(
            "Its staff were paged again now: {} staff device(s) received the page now; {later} more get it when they connect. You will be contacted.",
            a.paged_now
        );
    } else if a.paged_again {
        println!(
            "Its staff were paged again, but NONE OF THEM IS CONNECTED now: {later} staff device(s) get the page when they connect, and it goes on to more staff until someone answers."
        );
    } else {
        println!(
            "Its staff were paged less than a minute ago, so they were not paged again; your new text is delivered to them."
        );
    }
}

/// Says that alert `a` was raised, and how many staff devices got the
/// page now and how many get it when they connect.
pub(super) fn raised(a: &AlertInfo) {
    if a.joined_now {
        return joined(a);
    }
    println!("alert {} raised ({}).", a.id, a.priority);
    match a.content {
        AlertContent::Sealed => {}
        AlertContent::ExpiredRoster => println!(
            "Your text was sealed to an expired staff roster: some staff may not be able to read it."
        ),
        AlertContent::OlderRoster => println!("{OLDER_ROSTER}"),
        AlertContent::None => println!(
            "Your text could NOT be protected and was NOT sent, but the alert WAS raised: the team knows you need help."
        ),
    }
    let later = a.paged.saturating_sub(a.paged_now);
    if a.paged_now > 0 {
        println!(
            "{} staff device(s) received the page now; {later} more get it when they connect. You will be contacted.",
            a.paged_now
        );
    } else if later > 0 {
        println!(
            "NONE OF THE STAFF PAGED SO FAR IS CONNECTED: nobody has seen your alert yet. {later} staff device(s) get the page when they connect, and it goes on to more staff (backup officers, then coordinators) until someone answers."
        );
    } else {
        println!(
            "NO STAFF DEVICE HAS BEEN PAGED YET: the alert is raised on the server and escalates until someone answers."
        );
    }
}
