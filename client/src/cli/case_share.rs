//! `hotline case share` (staff): something of a case told to its
//! defender, recorded in the case as a `shared` event (so every staff
//! member sees what was shared and when) and sent as a CASE_SHARE
//! envelope to each defender device linked to the case, through the
//! outbox. Also `case list --sync`.

use anyhow::bail;
use hotline_client::ClientError;
use hotline_client::StateDir;
use hotline_client::cases::fields::{case_field, entity};
use hotline_client::cases::model::CaseView;
use hotline_client::messenger::Sent;
use hotline_client::outbox::Outgoing;
use hotline_proto::case::CaseState;
use hotline_proto::case::content::{CheckinOffer as WireCheckinOffer, SharedItem};
use hotline_proto::e2e::content::CheckinOffer;

use super::Queued;
use super::case_links::{duration, linked_defenders};
use super::case_view::short;
use super::cases::Ctx;
use super::messages::{Fate, fate, send_over};

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
    let r = share_in(&mut ctx, case, text, checkin_offer, false).await;
    ctx.close().await;
    r
}

/// What a defender's device is told when staff decline their request
/// (the words live with how a defender's device names its requests).
pub(super) use super::request_words::DECLINE_NOTICE;

/// `hotline case close ID --reason "…" [--no-notice]`. Closing a
/// defender's request declines it: its defender is then told, in neutral
/// words (never the internal reason), unless `notice` is false. Offline,
/// the notice waits in the outbox behind the closing event.
pub(super) async fn close(
    state: &StateDir,
    case: &str,
    reason: String,
    notice: bool,
    taken_on_ok: bool,
) -> anyhow::Result<()> {
    let mut ctx = Ctx::start(state).await?;
    let r = match refuse_if_taken_on_since(&ctx, case, taken_on_ok) {
        Ok(()) => close_in(&mut ctx, case, reason, notice).await,
        Err(e) => Err(e),
    };
    ctx.close().await;
    r
}

/// A request this device showed as waiting before this command's sync,
/// taken on since by a colleague, is not closed unawares: the person is
/// told who took it on and when, and how to close the open case anyway
/// (the same words as when the two answers race offline).
fn refuse_if_taken_on_since(ctx: &Ctx, case: &str, taken_on_ok: bool) -> anyhow::Result<()> {
    if taken_on_ok {
        return Ok(());
    }
    let file = ctx.case(case)?;
    if !ctx.was_requested_before(&file.case_id)
        || ctx.replica.view(&file.case_id)?.state != Some(CaseState::Open)
    {
        return Ok(());
    }
    let Some((CaseState::Open, who, at)) = ctx.winning_answer(&file.case_id) else {
        return Ok(());
    };
    let s = short(file.case_id.as_bytes());
    bail!(
        "request {s} was taken on by {who} at {} while you were looking at it: the case is open. Nothing was closed. To close the open case anyway: hotline case close {s} --reason … --taken-on-ok",
        super::date::date_time(at)
    )
}

/// Whether closing `view` (open) leaves its defender waiting for an
/// answer that never comes: the case came from a defender's request,
/// links a defender device, and nothing was ever shared with it.
fn leaves_defender_waiting(view: &CaseView) -> bool {
    view.state == Some(CaseState::Open)
        && view.request.is_some()
        && view.shared.is_empty()
        && !linked_defenders(view).is_empty()
}

async fn close_in(ctx: &mut Ctx, case: &str, reason: String, notice: bool) -> anyhow::Result<()> {
    let before = ctx
        .case(case)
        .and_then(|f| Ok(ctx.replica.view(&f.case_id)?));
    let waiting = before.as_ref().is_ok_and(leaves_defender_waiting);
    let (declined, r) =
        super::cases::write_in(ctx, case, super::cases::Write::Close(reason)).await?;
    let declined = match declined {
        Some(c) => Some(c),
        // An open case that came from a request and never told its
        // defender anything: told as a decline is, or the defender's
        // device waits for the team's answer for ever.
        None if waiting && (r.is_ok() || r.as_ref().is_err_and(|e| e.is::<Queued>())) => {
            before.ok().map(|v| v.case_id)
        }
        None => None,
    };
    let Some(case_id) = declined else {
        return r;
    };
    match r {
        Ok(()) if notice => decline_notice(ctx, &case_id).await,
        Err(e) if notice && e.is::<Queued>() => {
            // Offline, whether the defender's device may be reached cannot
            // be checked: the decline waits, its notice is not sent.
            if let Err(refused) = decline_notice(ctx, &case_id).await {
                eprintln!("{refused}");
            }
            Err(e)
        }
        Ok(()) => {
            println!(
                "the defender was not told (--no-notice): their device shows the request as waiting for the team's answer"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// After a request was declined (closed as its first staff event): the
/// neutral [`DECLINE_NOTICE`] shared with the requesting device, recorded
/// in the case as any share is.
async fn decline_notice(
    ctx: &mut Ctx,
    case_id: &hotline_proto::case::CaseId,
) -> anyhow::Result<()> {
    let case = hotline_proto::identity::hex(case_id.as_bytes());
    share_in(ctx, &case, DECLINE_NOTICE, None, true).await
}

async fn share_in(
    ctx: &mut Ctx,
    case: &str,
    text: &str,
    checkin_offer: Option<CheckinOffer>,
    declined: bool,
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
    if view.state != Some(CaseState::Open) && !declined {
        bail!(
            "case {id} is {}: only an open case is shared with its defender; nothing was sent",
            view.state.map_or("unknown", CaseState::name)
        );
    }
    let again = if declined {
        (
            "The decline is recorded; the defender was not told: their device shows the request as waiting for the team's answer.",
            "The decline is recorded; the defender was not told: their device shows the request as waiting for the team's answer.",
        )
    } else {
        (
            "Once online, share again.",
            "Once the alert is resolved, share again.",
        )
    };
    super::coerced::refuse_if_coerced(
        &ctx.device,
        ctx.session.as_ref(),
        &defenders,
        if declined {
            "sent to their device"
        } else {
            "shared"
        },
        again,
    )
    .await?;
    refuse_if_duress(ctx, &view, &id).await?;
    let mut content = ctx.content("");
    content.shared = Some(SharedItem {
        text: text.to_owned(),
        checkin_offer: checkin_offer.map(|o| WireCheckinOffer {
            interval_secs: o.interval_secs,
            grace_secs: o.grace_secs,
        }),
    });
    let done = if declined {
        format!("recorded in case {id}: the defender is told the request was closed: \"{text}\"")
    } else {
        format!("recorded in case {id}: shared with the defender")
    };
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
                addr: ctx
                    .device
                    .state()
                    .server(ctx.device.profile())
                    .map(|s| s.addr)
                    .unwrap_or_default(),
                reason: "no connection in this command".into(),
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
