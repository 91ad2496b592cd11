//! How a defender's device names its own requests, from its own copy:
//! "your legal request of 2026-11-29 00:01 UTC ("a lawyer for my…")",
//! and what the team's share or decline notice about one answers. Used by
//! `my-case` and by the message lists (`inbox`, `messages`, `watch`).
//! Pure: it reads history entries only.

use hotline_client::history::Entry;
use hotline_proto::case::CaseId;
use hotline_proto::e2e::content::Kind;

use super::date::date_time;

/// What a defender's device is told when staff decline their request:
/// neutral words, never the internal reason.
pub(super) const DECLINE_NOTICE: &str =
    "The team has closed this request. They may contact you another way.";

/// The defender's first words of a request: at most 8 words and 60
/// characters.
pub(super) fn first_words(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = words.iter().take(8).copied().collect::<Vec<_>>().join(" ");
    let mut cut = words.len() > 8;
    if out.chars().count() > 60 {
        out = out.chars().take(60).collect();
        cut = true;
    }
    if cut {
        out.push('…');
    }
    out
}

/// A request as the defender knows it, from their own copy: "your legal
/// request of 2026-11-29 00:01 UTC ("a lawyer…")".
pub(super) fn request_named(e: &Entry) -> String {
    let programme = match e.message.kind {
        Kind::CaseRequest { programme } => programme.to_string(),
        _ => String::new(),
    };
    format!(
        "your {programme} request of {} (\"{}\")",
        date_time(e.timestamp),
        first_words(&e.message.text)
    )
}

/// Whether `e` is the team's notice that they closed (declined) the
/// request.
pub(super) fn is_decline(e: &Entry) -> bool {
    !e.sent && matches!(e.message.kind, Kind::CaseShare { .. }) && e.message.text == DECLINE_NOTICE
}

/// On a defender's device: what the team's share or decline notice about
/// `case` answers, named from the defender's own request ("the team closed
/// your legal request of …"). `None`: not about one of their requests.
pub(super) fn share_named(entries: &[Entry], case: &CaseId, text: &str) -> Option<String> {
    let request = entries.iter().find(|e| {
        e.sent
            && matches!(e.message.kind, Kind::CaseRequest { .. })
            && e.request_case.as_ref() == Some(case)
    })?;
    Some(if text == DECLINE_NOTICE {
        format!("the team closed {}", request_named(request))
    } else {
        format!(
            "the team shared something with you about {}",
            request_named(request)
        )
    })
}
