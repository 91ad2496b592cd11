//! How an alert reads to a person woken at 3 a.m.: when (time of day),
//! how urgent, what raised it, the category and first words of the SOS if
//! this device could read them, who raised it and who holds it by name,
//! and where it stands in words, not step numbers.

use hotline_client::history::History;
use hotline_client::messenger::Device;
use hotline_proto::alert::{AlertInfo, AlertOrigin, AlertStatus};
use hotline_proto::e2e::content::Message;
use hotline_proto::time::time_of_day;

use super::date::{date, late};

/// What the SOS an alert was raised with says (category, priority the
/// defender chose, language, text, made printable and trimmed), if this
/// device holds it: sealed as the content message, or in the old form
/// (`category: arrest` on the first line of the text).
pub(super) fn sos_text(history: &History, a: &AlertInfo) -> Option<Message> {
    // This device's own SOS, or the one the defender sent it: never a
    // staff message in the same thread.
    let first = history.thread(a.id).into_iter().find(|e| {
        e.sos
            && if e.sent {
                true
            } else {
                e.peer == Some(a.defender)
            }
    })?;
    let mut m = first.message.clone();
    m.text = super::screen::printable(m.text.as_bytes())
        .trim()
        .to_owned();
    Some(m)
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
    let mark = match a.content.mark() {
        "" => String::new(),
        m => format!(" {m}"),
    };
    format!("{words}{}{mark}", late(a.checked_in_at))
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

/// What raised it: `SOS: arrest`, `missed check-in`, `DURESS`.
fn what(a: &AlertInfo, text: Option<&Message>) -> String {
    match (a.origin, text.and_then(|m| m.category)) {
        (AlertOrigin::Sos, Some(category)) => format!("SOS: {category}"),
        (AlertOrigin::Sos, _) => "SOS".to_owned(),
        (origin, _) => origin.as_str().to_owned(),
    }
}

/// The alert in four lines at most: a heading, the SOS's words (if this
/// device holds them), whether the defender raised it again, and where it
/// stands.
pub(super) fn lines(device: &Device, history: &History, a: &AlertInfo, now: u64) -> Vec<String> {
    let text = sos_text(history, a);
    let mut out = vec![format!(
        "#{:<8} {:<16} {:<9}  {:<22} from {}",
        a.id,
        when(a.raised_at, now),
        a.priority,
        what(a, text.as_ref()),
        device.shown(&a.defender)
    )];
    if let Some(m) = &text {
        let details = details(m, a);
        let words = match m.text.lines().next() {
            Some(first) => {
                let more = if m.text.lines().nth(1).is_some() {
                    " […]"
                } else {
                    ""
                };
                Some(format!("\"{first}\"{more}"))
            }
            None => None,
        };
        let line: Vec<String> = words.into_iter().chain(details).collect();
        if !line.is_empty() {
            out.push(format!("          {}", line.join(" ")));
        }
    }
    if a.joined_count > 0 {
        // Past its open-alert limit the defender's further SOSes joined
        // this alert: their words are in its thread.
        out.push(format!(
            "          the defender raised it again {} more time(s); every text is in `hotline messages`",
            a.joined_count
        ));
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
