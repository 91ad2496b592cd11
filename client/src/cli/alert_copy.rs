//! An alert's SOS texts copied into the case opened from it (`hotline case
//! open --from-alert N`), so that every staff device holding the case key
//! reads them: among them staff a newer roster added after the defender's
//! device sealed the SOS to the roster it had (an SOS raised offline),
//! who cannot open the alert's own envelope (docs/cases.md, "A case from
//! an alert"; docs/protocol.md 9.4, `CaseOpening.alert_texts`).

use hotline_client::history::History;
use hotline_proto::alert::AlertInfo;
use hotline_proto::case::content::AlertText;

/// The most bytes of SOS text one opening carries: the opening is sealed
/// in 64 KiB at most, with the case's first fields beside the texts.
const BUDGET: usize = 48_000;

/// The SOS texts of alert `a` this device holds (the one it was raised
/// with and those that joined it), oldest first, within [`BUDGET`]: the
/// newest are kept when they do not all fit, and the newest alone is cut
/// to fit if it is longer. The second value counts the texts left out or
/// cut (they stay in `hotline messages --alert N` on this device).
pub(super) fn texts(history: &History, a: &AlertInfo) -> (Vec<AlertText>, usize) {
    let mut all: Vec<AlertText> = history
        .thread(a.id)
        .into_iter()
        .filter(|e| e.sos && !e.sent && e.peer == Some(a.defender))
        .map(|e| AlertText {
            text: e.message.text.clone(),
            category: e.message.category.map_or(0, |c| c.code()),
            language: e.message.language.clone(),
            written_at: e.timestamp,
            via_panic_key: e.via_panic_key,
        })
        .collect();
    all.sort_by_key(|t| t.written_at);
    let mut kept = Vec::new();
    let mut left = BUDGET;
    let mut short = 0;
    for mut t in all.into_iter().rev() {
        if t.text.len() <= left {
            left -= t.text.len();
            kept.push(t);
        } else if kept.is_empty() {
            let mut end = left;
            while !t.text.is_char_boundary(end) {
                end -= 1;
            }
            t.text.truncate(end);
            left = 0;
            short += 1;
            kept.push(t);
        } else {
            short += 1;
        }
    }
    kept.reverse();
    (kept, short)
}

/// How a copied text reads in `hotline case show`: `the defender's SOS
/// (arrest; written in fr; sent with the panic key), written 2026-05-10
/// 03:12 UTC: "…"`, each line of the text indented below.
pub(super) fn lines(from_alert: u64, texts: &[AlertText]) -> Vec<String> {
    let mut out = Vec::new();
    for t in texts {
        let mut about = Vec::new();
        if let Some(c) = hotline_proto::e2e::content::Category::from_code(t.category) {
            about.push(c.to_string());
        }
        if !t.language.is_empty() {
            about.push(format!(
                "written in {}",
                super::screen::printable(t.language.as_bytes())
            ));
        }
        if t.via_panic_key {
            about.push("sent with the panic key".to_owned());
        }
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join("; "))
        };
        out.push(format!(
            "  SOS of alert #{from_alert}{about}, written {}:",
            hotline_proto::time::date_time(t.written_at)
        ));
        let text = super::screen::printable(t.text.as_bytes());
        for line in text.trim().lines() {
            out.push(format!("    {line}"));
        }
    }
    out
}

/// The case on this staff device's replica that holds alert `alert`'s
/// SOS texts (opened from it with its words), named as staff type it: its
/// reference, or the first digits of its id. `None` on a defender's
/// device, or when no case holds them.
pub(super) fn case_holding(
    device: &hotline_client::messenger::Device,
    alert: u64,
) -> Option<String> {
    if !device.profile().role().ok()?.is_staff() {
        return None;
    }
    let replica = hotline_client::cases::open_replica(device).ok()?;
    for s in replica.summaries() {
        let Some(case_id) = s.id() else { continue };
        let Ok(view) = replica.view(&case_id) else {
            continue;
        };
        if view
            .opening
            .as_ref()
            .is_some_and(|o| o.from_alert == alert && !o.alert_texts.is_empty())
        {
            return Some(if s.reference.is_empty() {
                super::case_view::short(case_id.as_bytes())
            } else {
                s.reference.clone()
            });
        }
    }
    None
}
