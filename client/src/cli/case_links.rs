//! The defender's side of a case as staff devices read it: the words of
//! a defender's request (found in this device's history by the
//! envelope's digest), the defender devices linked to a case, the
//! defender's replies (kept only from a linked device), and the case a
//! missed check-in in transit belongs to. Nothing here is sent anywhere:
//! it reads this device's history and case replica.
//!
//! Sharing with the defender is `case_share`; the defender's own
//! commands are `my_case`.

use hotline_client::cases::fields::{Value, case_field, entity, relocation_field};
use hotline_client::cases::model::{CaseView, TimelineEntry};
use hotline_client::cases::replica::{CaseFile, Replica};
use hotline_client::history::{Entry, History};
use hotline_client::messenger::Device;
use hotline_proto::DeviceId;
use hotline_proto::alert::AlertInfo;
use hotline_proto::case::CaseState;
use hotline_proto::case::content::{
    CaseEventContent, FieldChange, FieldValue, FieldValueKind, IdList,
};
use hotline_proto::case::relocation::Stage;
use hotline_proto::e2e::content::Kind;

use super::case_view::short;

/// The device that sent the request whose envelope has `digest`, if this
/// device received it: the envelope's authenticated sender (its
/// signature verified when it was opened), whatever the server says.
pub(super) fn request_sender(history: &History, digest: &[u8; 32]) -> Option<DeviceId> {
    received_request(history, digest).and_then(|e| e.peer)
}

/// The defender's request this device received in the envelope with
/// `digest`, whoever sent it.
fn received_request<'h>(history: &'h History, digest: &[u8; 32]) -> Option<&'h Entry> {
    history.entries().iter().find(|e| {
        !e.sent
            && e.digest.as_ref() == Some(digest)
            && matches!(e.message.kind, Kind::CaseRequest { .. })
    })
}

/// [`received_request`], only if `defender` sent it (the device the
/// server's `requested` update names): the server cannot give another
/// device's request to a device of its own (docs/protocol.md, section
/// 9.6).
fn request_from<'h>(
    history: &'h History,
    digest: &[u8; 32],
    defender: &DeviceId,
) -> Option<&'h Entry> {
    received_request(history, digest).filter(|e| e.peer.as_ref() == Some(defender))
}

/// The words of the defender's request whose envelope has `digest`, if
/// this device received it and it was sent by `defender` ([`request_from`]).
pub(super) fn request_text(
    history: &History,
    digest: &[u8; 32],
    defender: &DeviceId,
) -> Option<String> {
    request_from(history, digest, defender).map(|e| e.message.text.clone())
}

/// The programme the defender asked for in the request whose envelope
/// has `digest`, if this device received it from `defender` (`None`: not
/// held, sent by another device, or a programme this version does not
/// know).
pub(super) fn request_programme(
    history: &History,
    digest: &[u8; 32],
    defender: &DeviceId,
) -> Option<u64> {
    request_from(history, digest, defender).and_then(|e| match e.message.kind {
        Kind::CaseRequest { programme } => u64::try_from(programme.code()).ok(),
        _ => None,
    })
}

/// The warning shown when the request a case's `requested` update names
/// was sent by another device than the one the update names (a server
/// that tries to take a defender's request for a device of its own).
pub(super) fn request_sender_warning(
    device: &Device,
    named: &DeviceId,
    sender: &DeviceId,
) -> String {
    format!(
        "WARNING: the server says device {} asked for this case, but the request it names was sent by device {}: its words are not used here and answering it links no defender device",
        device.shown(named),
        device.shown(sender)
    )
}

/// The defender devices linked to a case (field 7; every head's, while
/// in conflict).
pub(super) fn linked_defenders(view: &CaseView) -> Vec<DeviceId> {
    let mut out = Vec::new();
    if let Some(r) = view.field(entity::CASE, &[], case_field::DEFENDERS) {
        for v in r.heads() {
            for id in v.value.ids().unwrap_or_default() {
                if let Ok(b) = <[u8; 16]>::try_from(id.as_slice()) {
                    let d = DeviceId::from_bytes(b);
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
            }
        }
    }
    out
}

/// Adds to `view` what this device holds of the defender's side: the
/// request's words (when the sync could not find them) and, in the
/// timeline, each reply from a defender device linked to the case. A
/// reply from any other device is left out, with a warning naming it.
pub(super) fn add_defender_side(device: &Device, view: &mut CaseView) -> anyhow::Result<()> {
    let history = device.history()?;
    if let Some(r) = &mut view.request {
        match request_sender(&history, &r.envelope_digest) {
            Some(sender) if sender != r.defender => {
                eprintln!("{}", request_sender_warning(device, &r.defender, &sender));
                r.text = None;
            }
            _ if r.text.is_none() => {
                r.text = request_text(&history, &r.envelope_digest, &r.defender);
            }
            _ => {}
        }
    }
    // No request known here, but the opening event copied one: shown
    // from there.
    if view.request.is_none()
        && let Some(o) = &view.opening
        && let (Ok(digest), Ok(defender)) = (
            <[u8; 32]>::try_from(o.request_digest.as_ref()),
            <[u8; 16]>::try_from(o.requested_by.as_ref()),
        )
    {
        view.request = Some(hotline_client::cases::model::RequestInfo {
            defender: DeviceId::from_bytes(defender),
            at: o.requested_at,
            envelope_digest: digest,
            text: None,
        });
    }
    // Not received here (a device that joined later): the words the
    // opening event copied from the request, for the same envelope.
    if let (Some(r), Some(o)) = (&mut view.request, &view.opening)
        && r.text.is_none()
        && !o.request_text.is_empty()
        && o.request_digest.as_ref() == r.envelope_digest.as_slice()
    {
        r.text = Some(o.request_text.clone());
    }
    let linked = linked_defenders(view);
    for e in history.entries() {
        let Kind::CaseReply { case_id } = &e.message.kind else {
            continue;
        };
        if e.sent || *case_id != view.case_id {
            continue;
        }
        let Some(sender) = e.peer else { continue };
        // Recorded as a case event (here or by other staff): shown once,
        // from there, if the event says what this device received. The
        // recording is a staff device's word: a sender or words other
        // than the envelope's (whose sender signed it) are not shown,
        // the envelope is, with a warning naming the recording device.
        if let Some(d) = e.digest
            && view.replies.contains(&d)
        {
            let Some(recorded) = view.recorded_replies.get(&d) else {
                continue;
            };
            if recorded.defender == sender.as_bytes() && recorded.text == e.message.text {
                continue;
            }
            eprintln!(
                "WARNING: device {} recorded in this case a reply of the defender that does not match the one this device received from device {}: the one received is shown",
                device.shown(&recorded.author),
                device.shown(&sender)
            );
            let (event_id, line) = (recorded.event_id, recorded.line.clone());
            for t in view.timeline.iter_mut().filter(|t| t.event_id == event_id) {
                t.what = t.what.replace(
                    &line,
                    "recorded a reply of the defender that does not match the one sent (not shown)",
                );
            }
        }
        if !linked.contains(&sender) {
            eprintln!(
                "WARNING: a reply about this case from device {}, which is not a defender device linked to it, was ignored",
                device.shown(&sender)
            );
            continue;
        }
        view.timeline.push(TimelineEntry {
            event_id: e.message_id,
            author: sender,
            timestamp: e.timestamp,
            // The defender's clock: the server's time of an envelope is
            // not kept here.
            at: e.timestamp,
            what: format!("replied: {}", e.message.text),
            waiting: false,
        });
    }
    view.timeline.sort_by_key(|t| t.at);
    Ok(())
}

/// Before the first staff event of a case a defender requested: the
/// request's words from this device's history (if the sync could not find
/// them), and the requesting device linked as the case's defender device
/// (unless the event sets that field), so that what staff share reaches it.
pub(super) fn complete_request(
    device: &Device,
    view: &CaseView,
    file: &mut CaseFile,
    content: &mut CaseEventContent,
) -> anyhow::Result<()> {
    let Some(r) = &mut file.request else {
        return Ok(());
    };
    let history = device.history()?;
    // The server's `requested` update is not signed: the request's words
    // are used, and its device linked, only if this device holds the
    // envelope and its authenticated sender is the device the update
    // names.
    let sender = request_sender(&history, &r.envelope_digest);
    if let Some(s) = sender
        && s != r.defender
    {
        eprintln!("{}", request_sender_warning(device, &r.defender, &s));
    }
    let genuine = sender == Some(r.defender);
    r.text = genuine
        .then(|| request_text(&history, &r.envelope_digest, &r.defender))
        .flatten();
    // The programme asked for becomes the case's (field 5), unless this
    // change sets it or the case has one.
    let programme = request_programme(&history, &r.envelope_digest, &r.defender);
    if let Some(p) = programme.and_then(|p| i32::try_from(p).ok()) {
        // `answer_request` completes the opening with the rest.
        content.opening = Some(hotline_proto::case::content::CaseOpening {
            requested_programme: p,
            ..Default::default()
        });
    }
    let sets_programme = content
        .changes
        .iter()
        .any(|c| c.entity == entity::CASE && c.field == case_field::PROGRAMME);
    if !sets_programme
        && view
            .field(entity::CASE, &[], case_field::PROGRAMME)
            .is_none()
        && let Some(p) = programme
    {
        content.changes.push(FieldChange {
            entity: entity::CASE,
            entity_id: Vec::new().into(),
            field: case_field::PROGRAMME,
            value: Some(FieldValue {
                kind: Some(FieldValueKind::Number(p)),
            }),
            based_on: Vec::new(),
        });
    }
    let sets_defenders = content
        .changes
        .iter()
        .any(|c| c.entity == entity::CASE && c.field == case_field::DEFENDERS);
    if !sets_defenders && genuine {
        content.changes.push(FieldChange {
            entity: entity::CASE,
            entity_id: Vec::new().into(),
            field: case_field::DEFENDERS,
            value: Some(FieldValue {
                kind: Some(FieldValueKind::Ids(IdList {
                    ids: vec![r.defender.as_bytes().to_vec().into()],
                })),
            }),
            based_on: view
                .field(entity::CASE, &[], case_field::DEFENDERS)
                .map(|f| {
                    f.head_ids()
                        .into_iter()
                        .map(|h| h.to_vec().into())
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(())
}

/// A duration as `checkin-setup` takes it: 2h, 30m, 1d, 90s.
pub(super) fn duration(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// On a staff device, for any alert of a defender (an SOS, a missed
/// check-in, a duress check-in, …): the case and relocation in transit of
/// that defender, if this device's replica holds one ([`in_transit`]): a
/// duty officer paged about someone on the road needs the journey first.
/// `None` on a defender's device, or when no case is in transit.
pub(super) fn alert_case(device: &Device, a: &AlertInfo) -> Option<String> {
    if !device.profile().role().ok()?.is_staff() {
        return None;
    }
    let replica = hotline_client::cases::open_replica(device).ok()?;
    in_transit(&replica, &a.defender)
}

/// What staff see next to a missed check-in of `defender`: the case and
/// relocation in transit it belongs to, from this device's replica (never
/// asked of the server), e.g. "case C-2026-0042, relocation to
/// Montevideo in transit since 2026-05-12, arrival planned 2026-05-13"
/// (the date of the move to in transit; the planned arrival if known).
/// `None`: no open case of this defender
/// has a relocation in transit.
pub(super) fn in_transit(replica: &Replica, defender: &DeviceId) -> Option<String> {
    for s in replica.summaries() {
        if s.state() != Some(CaseState::Open) || !s.stages.contains(&Stage::InTransit.number()) {
            continue;
        }
        let Some(case_id) = s.id() else { continue };
        let Ok(view) = replica.view(&case_id) else {
            continue;
        };
        if !linked_defenders(&view).contains(defender) {
            continue;
        }
        for r in &view.relocations {
            if view.stage(r) != Some(Stage::InTransit) {
                continue;
            }
            let text = |f| {
                view.field(entity::RELOCATION, r, f)
                    .and_then(|reg| reg.value())
                    .and_then(Value::text)
                    .map(str::to_owned)
            };
            let to = text(relocation_field::HOST_CITY)
                .or_else(|| text(relocation_field::HOST_COUNTRY))
                .unwrap_or_else(|| "its host country".into());
            let since = view
                .stage_history
                .get(r)
                .and_then(|moves| moves.iter().rev().find(|m| m.to == Stage::InTransit))
                .map(|m| format!(" since {}", hotline_proto::time::date(m.at)))
                .unwrap_or_default();
            let arrival = text(relocation_field::PLANNED_ARRIVAL)
                .map(|a| format!(", arrival planned {a}"))
                .unwrap_or_default();
            let name = if s.reference.is_empty() {
                short(&s.case_id)
            } else {
                s.reference.clone()
            };
            return Some(format!(
                "case {name}, relocation to {to} in transit{since}{arrival}"
            ));
        }
    }
    None
}

/// On a staff device: the defender's request `case_id`, if staff
/// declined it (closed it as their first event, never opened it) and it
/// links `sender`: who declined it and when, in words ("declined by
/// officer-1 on 2026-11-30 21:04 UTC"). The case shows `sender`'s replies
/// then, as any case linking them does.
pub(super) fn declined(
    device: &Device,
    case_id: &hotline_proto::case::CaseId,
    sender: &DeviceId,
) -> Option<String> {
    let replica = hotline_client::cases::open_replica(device).ok()?;
    if replica.is_erased(case_id) {
        return None;
    }
    let view = replica.view(case_id).ok()?;
    if view.opened.is_some()
        || view.state != Some(CaseState::Closed)
        || view.request.is_none()
        || !linked_defenders(&view).contains(sender)
    {
        return None;
    }
    let by = view
        .timeline
        .iter()
        .rev()
        .find(|t| t.what.starts_with("declined the request"))
        .map(|t| {
            if t.author == device.identity().device_id() {
                "you".to_owned()
            } else {
                device.shown(&t.author)
            }
        })
        .unwrap_or_else(|| "a staff member".to_owned());
    let when = view
        .closed_at
        .map(|t| format!(" on {}", super::date::date_time(t)))
        .unwrap_or_default();
    Some(format!("declined by {by}{when}"))
}

/// Why a request's case is not on this device: not synced here yet (a
/// request's words and case go with an erasure, so it is never erased).
pub(super) const REQUEST_NOT_SYNCED: &str = "a request not synced here yet";

/// How a case is named to staff: its reference with the start of its id
/// when this device holds it (or kept it with its erasure), else the
/// start of its id.
pub(super) fn case_name(device: &Device, case_id: &hotline_proto::case::CaseId) -> String {
    let s = super::case_view::short(case_id.as_bytes());
    let reference = hotline_client::cases::open_replica(device)
        .ok()
        .and_then(|r| {
            r.summaries()
                .iter()
                .find(|row| row.case_id == case_id.as_bytes())
                .map(|row| row.reference.clone())
                .or_else(|| {
                    r.erased_cases()
                        .into_iter()
                        .find(|(c, _)| c == case_id)
                        .and_then(|(_, row)| row.map(|row| row.reference))
                })
        });
    match reference {
        Some(r) if !r.is_empty() => format!("{r} ({s})"),
        _ => s,
    }
}

/// Why a staff device cannot show a defender's reply or request in a
/// case: it must then be shown with its words where messages are shown
/// (`inbox`, `messages`, `watch`), never only as a pointer to a case that
/// would not show it. `None`: the case shows it.
pub(super) fn not_in_a_case(
    device: &Device,
    case_id: Option<&hotline_proto::case::CaseId>,
    digest: Option<&[u8; 32]>,
    sender: Option<DeviceId>,
) -> Option<&'static str> {
    let Ok(replica) = hotline_client::cases::open_replica(device) else {
        return Some("this device's cases could not be read");
    };
    let case_id = match case_id {
        Some(c) => *c,
        // A request names no case: the case that holds its digest.
        None => {
            let digest = digest?;
            let found = replica
                .summaries()
                .iter()
                .filter_map(|s| s.id())
                .find(|id| {
                    replica
                        .load(id)
                        .ok()
                        .and_then(|f| f.request)
                        .is_some_and(|r| r.envelope_digest == *digest)
                });
            return match found {
                Some(_) => None,
                None => Some(REQUEST_NOT_SYNCED),
            };
        }
    };
    if replica.is_erased(&case_id) {
        return Some("a case erased on this device");
    }
    if !replica
        .summaries()
        .iter()
        .any(|s| s.case_id == case_id.as_bytes())
    {
        return Some("a case this device does not hold (unknown here, not synced yet, or erased)");
    }
    let Ok(view) = replica.view(&case_id) else {
        return Some("a case this device could not read");
    };
    if view.opened.is_none() {
        return Some(match (view.unreadable, &view.request) {
            (n, _) if n > 0 => "a case this device cannot read yet (no key)",
            (_, Some(_)) if view.state == Some(CaseState::Closed) => {
                "a request staff declined, which does not link this defender's device"
            }
            (_, Some(_)) => "a request not opened as a case yet",
            (_, None) => "a case this device holds nothing of yet",
        });
    }
    match sender {
        Some(s) if !linked_defenders(&view).contains(&s) => {
            Some("a case that does not link this defender's device")
        }
        _ => None,
    }
}

/// The defender's replies about `view`'s case that this device received
/// from a defender device linked to it, and that no event of the case
/// records yet (nor one waiting to be sent): the first staff device that
/// attaches a reply records it, so that staff who join later read it.
pub(super) fn unrecorded_replies(history: &History, view: &CaseView) -> Vec<CaseEventContent> {
    let linked = linked_defenders(view);
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for e in history.entries() {
        let Kind::CaseReply { case_id } = &e.message.kind else {
            continue;
        };
        let (Some(sender), Some(digest)) = (e.peer, e.digest) else {
            continue;
        };
        if e.sent
            || *case_id != view.case_id
            || !linked.contains(&sender)
            || view.replies.contains(&digest)
            || !seen.insert(digest)
        {
            continue;
        }
        out.push(CaseEventContent {
            timestamp: hotline_client::unix_now(),
            reply: Some(hotline_proto::case::content::DefenderReply {
                defender: sender.as_bytes().to_vec().into(),
                envelope_digest: digest.to_vec().into(),
                sent_at: e.timestamp,
                text: e.message.text.clone(),
                language: e.message.language.clone(),
            }),
            ..Default::default()
        });
    }
    out
}
