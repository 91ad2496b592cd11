//! The defender's side of a case as staff see it and act on it: the
//! words of a defender's request (found in this device's history by the
//! envelope's digest), the defender's replies (kept only from a defender
//! device linked to the case), `hotline case share` (a CASE_SHARE
//! envelope to the linked defender devices, recorded as a `shared` event
//! of the case), and the case a missed check-in in transit belongs to.
//!
//! The defender's own commands are in `my_case`.

use anyhow::bail;
use hotline_client::StateDir;
use hotline_client::cases::fields::{Value, case_field, entity, relocation_field};
use hotline_client::cases::model::{CaseView, TimelineEntry};
use hotline_client::cases::replica::Replica;
use hotline_client::history::History;
use hotline_client::messenger::{Device, Sent};
use hotline_client::outbox::Outgoing;
use hotline_client::{ClientError, Session};
use hotline_proto::DeviceId;
use hotline_proto::alert::{AlertInfo, AlertOrigin};
use hotline_proto::case::CaseState;
use hotline_proto::case::content::{CheckinOffer as WireCheckinOffer, SharedItem};
use hotline_proto::case::relocation::Stage;
use hotline_proto::e2e::content::{CheckinOffer, Kind};

use super::Queued;
use super::case_view::short;
use super::cases::{Ctx, change, ids_value};
use super::messages::{Fate, fate, send_over};

/// Fetches what waits in this device's inbox (the words of requests,
/// replies), saying only what went wrong: a case command goes on without.
pub(super) async fn fetch_inbox(device: &mut Device, session: &Session) {
    if let Err(e) = super::messages::fetch_new(device, session).await {
        eprintln!("WARNING: new messages could not be fetched: {e}");
    }
}

/// The words of the defender's request whose envelope has `digest`, if
/// this device received it.
pub(super) fn request_text(history: &History, digest: &[u8; 32]) -> Option<String> {
    history
        .entries()
        .iter()
        .find(|e| {
            !e.sent
                && e.digest.as_ref() == Some(digest)
                && matches!(e.message.kind, Kind::CaseRequest { .. })
        })
        .map(|e| e.message.text.clone())
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
    if let Some(r) = &mut view.request
        && r.text.is_none()
    {
        r.text = request_text(&history, &r.envelope_digest);
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
    file: &mut hotline_client::cases::replica::CaseFile,
    content: &mut hotline_proto::case::content::CaseEventContent,
) -> anyhow::Result<()> {
    let Some(r) = &mut file.request else {
        return Ok(());
    };
    if r.text.is_none() {
        r.text = request_text(&device.history()?, &r.envelope_digest);
    }
    let sets_defenders = content
        .changes
        .iter()
        .any(|c| c.entity == entity::CASE && c.field == case_field::DEFENDERS);
    if !sets_defenders {
        content.changes.push(change(
            view,
            entity::CASE,
            &[],
            case_field::DEFENDERS,
            ids_value(vec![r.defender.as_bytes().to_vec()]),
        ));
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

/// `hotline case list --sync`: syncs (as every other case command does)
/// before the list reads the replica.
pub(super) async fn sync_now(state: &StateDir) -> anyhow::Result<()> {
    Ctx::start(state).await?.close().await;
    Ok(())
}

/// `hotline case share ID "text" [--checkin-every 2h --grace 30m]`: a
/// `shared` event in the case (so every staff member sees what was shared
/// and when), then a CASE_SHARE envelope to each defender device linked
/// to the case (through the outbox: offline, it waits and goes once).
pub(super) async fn share(
    state: &StateDir,
    case: &str,
    text: &str,
    checkin_offer: Option<CheckinOffer>,
) -> anyhow::Result<()> {
    if text.trim().is_empty() {
        bail!("say what to share with the defender; nothing was sent");
    }
    let mut ctx = Ctx::start(state).await?;
    let r = share_in(&mut ctx, case, text, checkin_offer).await;
    ctx.close().await;
    r
}

async fn share_in(
    ctx: &mut Ctx,
    case: &str,
    text: &str,
    checkin_offer: Option<CheckinOffer>,
) -> anyhow::Result<()> {
    let file = ctx.case(case)?;
    let view = ctx.replica.view(&file.case_id)?;
    let id = short(file.case_id.as_bytes());
    let defenders = linked_defenders(&view);
    if defenders.is_empty() {
        bail!(
            "case {id} has no defender device linked, so there is nobody to share with; nothing was sent. Link one first: hotline case set {id} \"defender devices\" DEVICE"
        );
    }
    if view.state != Some(CaseState::Open) {
        bail!(
            "case {id} is {}: only an open case is shared with its defender; nothing was sent",
            view.state.map_or("unknown", CaseState::name)
        );
    }
    refuse_if_duress(ctx, &view, &id).await?;
    let mut content = ctx.content("");
    content.shared = Some(SharedItem {
        text: text.to_owned(),
        checkin_offer: checkin_offer.map(|o| WireCheckinOffer {
            interval_secs: o.interval_secs,
            grace_secs: o.grace_secs,
        }),
    });
    let done = format!("recorded in case {id}: shared with the defender");
    let recorded = ctx.write(&file, Default::default(), content, &done).await;
    let event_queued = match recorded {
        Ok(_) => false,
        Err(e) if e.is::<Queued>() => true,
        Err(e) => return Err(e),
    };
    // The envelopes: one to each linked device (and the staff).
    let mut mine = Vec::new();
    for to in &defenders {
        mine.push(ctx.device.queue_item(
            text.as_bytes(),
            Outgoing::CaseShare {
                case_id: file.case_id,
                to: *to,
                checkin_offer,
            },
        )?);
    }
    let flushed = match &ctx.session {
        Some(session) => send_over(&mut ctx.device, session, None).await,
        None => hotline_client::messenger::Flushed {
            settled: Vec::new(),
            stopped: Some(ClientError::Unreachable {
                addr: String::new(),
                reason: "offline".into(),
            }),
        },
    };
    let mut waiting = false;
    for (to, m) in defenders.iter().zip(&mine) {
        match fate(&ctx.device, &flushed, *m)? {
            Fate::Settled(Sent::Dropped { reason, .. }) => eprintln!(
                "NOT SENT to {}: {reason}. It was removed from the outbox",
                ctx.device.shown(to)
            ),
            Fate::Settled(_) | Fate::SentElsewhere(_) => println!(
                "shared with the defender's device {}, end-to-end encrypted",
                ctx.device.shown(to)
            ),
            Fate::Gone => eprintln!(
                "the share to {} was removed from the outbox by another command; it was not sent",
                ctx.device.shown(to)
            ),
            Fate::Waiting => waiting = true,
        }
    }
    if let Some(o) = checkin_offer {
        println!(
            "the defender is offered check-ins every {} (grace {}) for the journey",
            duration(o.interval_secs),
            duration(o.grace_secs)
        );
    }
    if waiting && let Some(m) = mine.first() {
        return Err(super::messages::queued(
            &ctx.device,
            *m,
            &flushed,
            "The share with the defender",
        ));
    }
    if event_queued {
        return Err(Queued.into());
    }
    Ok(())
}

/// The duress rule (nothing of a duress alert ever reaches the
/// defender's device) for a share: refused if the case links an alert
/// its defender must never hear about, as a reply in that alert's thread
/// is. Whether a linked alert is one can only be asked of the server: a
/// case linking alerts is not shared offline.
async fn refuse_if_duress(ctx: &Ctx, view: &CaseView, id: &str) -> anyhow::Result<()> {
    let mut linked = Vec::new();
    if let Some(r) = view.field(entity::CASE, &[], case_field::ALERTS) {
        for v in r.heads() {
            for a in v.value.ids().unwrap_or_default() {
                if let Ok(b) = <[u8; 8]>::try_from(a.as_slice()) {
                    linked.push(u64::from_be_bytes(b));
                }
            }
        }
    }
    if linked.is_empty() {
        return Ok(());
    }
    let Some(session) = &ctx.session else {
        bail!(
            "case {id} links alerts, and whether one of them must stay hidden from its defender (a duress alert) can only be checked with the server: nothing was shared; try again online"
        );
    };
    let alerts = session.alerts(false).await?;
    if let Some(a) = alerts
        .iter()
        .find(|a| linked.contains(&a.id) && !a.origin.shown_to_defender())
    {
        bail!(
            "case {id} links alert #{}, a {} alert: its defender's device must never receive anything about it (the person holding it may be a coercer). Nothing was shared. Reach the defender only by a channel your duress procedure allows",
            a.id,
            a.origin.as_str()
        );
    }
    Ok(())
}

/// On a staff device, for a missed check-in alert: the case and
/// relocation in transit of its defender, if this device's replica holds
/// one ([`in_transit`]). `None` on a defender's device, for any other
/// alert, or when no case is in transit.
pub(super) fn missed_checkin_case(device: &Device, a: &AlertInfo) -> Option<String> {
    if a.origin != AlertOrigin::MissedCheckin || !device.profile().role().ok()?.is_staff() {
        return None;
    }
    let replica = hotline_client::cases::open_replica(device).ok()?;
    in_transit(&replica, &a.defender)
}

/// What staff see next to a missed check-in of `defender`: the case and
/// relocation in transit it belongs to, from this device's replica (never
/// asked of the server), e.g. "case C-2026-0042, relocation in transit to
/// Montevideo since 2026-05-12". `None`: no open case of this defender
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
            let name = if s.reference.is_empty() {
                short(&s.case_id)
            } else {
                s.reference.clone()
            };
            return Some(format!("case {name}, relocation in transit to {to}{since}"));
        }
    }
    None
}
