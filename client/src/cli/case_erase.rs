//! `hotline case erase`, `hotline case hold` and `hotline case stats`
//! (staff): erasing a closed case by two distinct staff members (the first
//! writes its statistics tombstone into the ledger, a second coordinator
//! or admin confirms), legal holds, and the figures the ledger keeps.

use anyhow::{Context as _, bail};
use hotline_client::StateDir;
use hotline_client::cases::model::CaseView;
use hotline_client::cases::replica::CaseFile;
use hotline_client::cases::{stats, sync};
use hotline_proto::case::erasure::{ErasureStep, sign_erasure};
use hotline_proto::case::key::CaseKey;
use hotline_proto::case::{CaseControl, CaseId, CaseState, LegalHold, ledger_id};
use hotline_proto::e2e::suite::SystemRandomness;
use hotline_proto::message::{Request, Response};

use super::case_view::short;
use super::cases::Ctx;

/// A day, in seconds.
const DAY: u64 = 86_400;

/// Sends an erasure request or confirmation; the server's answer.
async fn ask(ctx: &Ctx, request: Request) -> anyhow::Result<(bool, hotline_proto::DeviceId)> {
    let session = ctx
        .session
        .as_ref()
        .context("erasing a case needs the server, and this device is offline: nothing was done")?;
    match session.request(&request).await? {
        Response::CaseErasure {
            erased,
            requested_by,
            ..
        } => Ok((erased, requested_by)),
        Response::Error(e) => bail!("the server refused: {}. Nothing was erased", e.detail),
        _ => bail!("the server answered with something else; nothing was erased"),
    }
}

/// The statistics ledger's file; this device opens the ledger (its id
/// derived from the organisation root, so every client picks the same)
/// if no staff device has yet.
async fn ledger(ctx: &mut Ctx) -> anyhow::Result<CaseFile> {
    let root = ctx.device.org_root().context(
        "no organisation root is pinned on this device, so it cannot find the statistics ledger",
    )?;
    let id = ledger_id(&root);
    let mut file = ctx.replica.load(&id)?;
    // Whether the ledger exists is the server's to say, not a key's: it
    // does once an event of it reached this replica in a sync (or this
    // device's own opening waits to be sent). A key held for it without
    // that (a hostile staff device can send one for the ledger's id
    // before anyone opened it) is a candidate at most: the opening below
    // replaces it. Once opened, the key a tombstone is sealed under is
    // the ledger's newest epoch that its events (or this device's own
    // waiting ones) commit to, as for any case (docs/protocol.md, 9.2) —
    // not the newest key held, which may be an older epoch's after a
    // rotation, or a key received for an epoch no event commits to.
    let opened = !file.events.is_empty() || !ctx.replica.waiting(&id).is_empty();
    // A device holding an older epoch's key but not the newest one's
    // writes all the same: the write opens the next epoch itself when
    // that key never came (docs/protocol.md 9.2, "A key that never
    // came"), so a staff device keeping a ledger key to itself blocks no
    // erasure.
    if opened && (file.write_key(ctx.replica.outbox()).is_some() || !file.keys.is_empty()) {
        return Ok(file);
    }
    if opened {
        bail!(
            "another staff device opened the statistics ledger and this device does not hold its key yet (it comes with a command that device runs): try again later. Nothing was erased"
        );
    }
    let key = CaseKey::generate(&mut SystemRandomness);
    // Keys held for a ledger the server does not have are no one's.
    file.keys.clear();
    file.keys.insert(1, key);
    ctx.replica.save(&file)?;
    let control = CaseControl {
        state: Some(CaseState::Open),
        ledger: true,
        ..CaseControl::default()
    };
    let content = ctx.content("");
    ctx.write(&file, control, content, "the statistics ledger was opened")
        .await
        .context("the statistics ledger could not be opened; nothing was erased")?;
    // Its key went out once the server took this device's opening (the
    // flush does it, also for an opening sent later from the outbox):
    // another device may have opened the ledger (same id) first, and its
    // key is the ledger's; this device then opened epoch 2 and sent that.
    Ok(ctx.replica.load(&id)?)
}

/// `hotline case erase CASE` and `hotline case erase CASE --confirm`.
pub(super) async fn erase(state: &StateDir, case: &str, confirm: bool) -> anyhow::Result<()> {
    let mut ctx = Ctx::start(state).await?;
    let r = erase_in(&mut ctx, case, confirm).await;
    ctx.close().await;
    r
}

async fn erase_in(ctx: &mut Ctx, case: &str, confirm: bool) -> anyhow::Result<()> {
    if ctx.session.is_none() {
        bail!("erasing a case needs the server, and this device is offline: nothing was done");
    }
    let file = ctx.case(case)?;
    let id = file.case_id;
    let s = short(id.as_bytes());
    let view = ctx.replica.view(&id)?;
    // The request that made the case, whose words go from the history
    // with the case.
    let requests: Vec<[u8; 32]> = ctx
        .replica
        .load(&id)?
        .request
        .map(|r| r.envelope_digest)
        .into_iter()
        .collect();
    if view.ledger {
        bail!("the statistics ledger is never erased");
    }
    // Both steps check what this device can see before signing: each
    // signature decides the erasure of the case as closed by one event
    // (docs/protocol.md, section 9.7).
    erasable_here(ctx, &view, &s)?;
    let closing = sync::closing_of(&file).with_context(|| {
        format!("this device does not hold the event that closed case {s}: nothing was done")
    })?;
    if confirm {
        // Confirming is the last word before the case is gone for good:
        // a device that cannot read all of it cannot check what it would
        // erase (docs/protocol.md, section 9.7).
        if view.unreadable > 0 {
            bail!(
                "this device cannot read all of case {s} ({} event(s) not readable here yet: their key comes from another staff device), so it cannot check what it would erase: a staff device that reads it must confirm. Nothing was erased",
                view.unreadable
            );
        }
        let Some(request) = ctx.replica.erasure_request(&id) else {
            bail!(
                "no signed erasure request of case {s} has reached this device: ask for it (`hotline case erase {s}`) or sync again. Nothing was confirmed"
            );
        };
        if request.closing != closing {
            bail!(
                "the erasure asked for names an earlier closing of case {s} than the one this device holds (it was reopened since): ask for it again. Nothing was confirmed"
            );
        }
        let signature = sign_erasure(
            ctx.device.identity(),
            &id,
            ErasureStep::Confirm(request.signature),
            &closing,
        );
        let (erased, _) = ask(ctx, Request::ConfirmCaseErasure(id, signature)).await?;
        if !erased {
            bail!("the server did not erase case {s}; nothing was erased");
        }
        ctx.replica.erase(&id)?;
        let me = ctx.me();
        ctx.replica
            .record_erasure(&id, hotline_client::unix_now(), None, Some(me))?;
        ctx.forget_texts(&id, &requests);
        println!(
            "case {s} erased: the server destroyed its key, and every staff device deletes its copy and keys at its next sync (this one did). Its statistics stay in the ledger (`hotline case stats`)"
        );
        return Ok(());
    }
    // Its statistics tombstone is made of what the case says: a device
    // that cannot read all of it would write wrong figures.
    if view.unreadable > 0 {
        bail!(
            "this device cannot read all of case {s} yet (its keys come from another staff device): it cannot write the case's statistics, so nothing was done. A staff device that reads it can ask for its erasure"
        );
    }
    // The tombstone first: once the case is erased nothing of it can be
    // counted any more.
    // A tombstone written before (an erasure asked for, then the case
    // reopened and closed again) stays only if it still says what the
    // case says now; else a fresh one is written, and the newest counts.
    let ledger = ledger(ctx).await?;
    let fresh = stats::tombstone(&view);
    let held = stats::tombstones(&ledger).contains(&fresh);
    if !held {
        let mut content = ctx.content("");
        content.tombstone = Some(fresh);
        ctx.write(
            &ledger,
            CaseControl::default(),
            content,
            &format!("the statistics of case {s} were written to the ledger"),
        )
        .await
        .context("the statistics tombstone could not be written; nothing was erased")?;
    }
    let signature = sign_erasure(ctx.device.identity(), &id, ErasureStep::Request, &closing);
    let (erased, _) = ask(ctx, Request::RequestCaseErasure(id, signature)).await?;
    if erased {
        ctx.replica.erase(&id)?;
        let me = ctx.me();
        ctx.replica
            .record_erasure(&id, hotline_client::unix_now(), Some(me), None)?;
        ctx.forget_texts(&id, &requests);
        println!("case {s} erased");
        return Ok(());
    }
    ctx.replica.set_erasure_requested(&id, true)?;
    println!(
        "erasure of case {s} asked for: a coordinator or an admin other than this device must confirm it (`hotline case erase {s} --confirm`); until then nothing is erased"
    );
    Ok(())
}

/// What this device checks before it signs either step: the case is
/// closed, under no legal hold, and past the retention period as it last
/// synced it.
fn erasable_here(ctx: &Ctx, view: &CaseView, s: &str) -> anyhow::Result<()> {
    match view.state {
        Some(CaseState::Closed) => {}
        Some(other) => bail!(
            "case {s} is {}: only a closed case can be erased (`hotline case close`). Nothing was done",
            state_word(other)
        ),
        None => bail!("this device cannot read case {s} yet: nothing was done"),
    }
    if view.legal_hold {
        bail!(
            "case {s} is under a legal hold: it cannot be erased until a coordinator or an admin lifts it (`hotline case hold {s} --lift`). Nothing was done"
        );
    }
    let retention = ctx.replica.retention_secs().unwrap_or(0);
    let closed = view.closed_at.unwrap_or(0);
    let now = hotline_client::unix_now();
    if closed.saturating_add(retention) > now {
        bail!(
            "case {s} was closed {} day(s) ago; the retention period is {} day(s): it can be erased from {}. Nothing was done",
            now.saturating_sub(closed) / DAY,
            retention / DAY,
            hotline_proto::time::date(closed.saturating_add(retention))
        );
    }
    Ok(())
}

fn state_word(s: CaseState) -> &'static str {
    match s {
        CaseState::Requested => "requested",
        CaseState::Open => "open",
        CaseState::Closed => "closed",
    }
}

/// `hotline case hold CASE [--lift]`.
pub(super) async fn hold(
    state: &StateDir,
    case: &str,
    lift: bool,
    note: Option<&str>,
) -> anyhow::Result<()> {
    let mut ctx = Ctx::start(state).await?;
    let file = ctx.case(case)?;
    let s = short(file.case_id.as_bytes());
    let view = ctx.replica.view(&file.case_id)?;
    if view.ledger {
        bail!("the statistics ledger takes no legal hold");
    }
    if lift && !view.legal_hold {
        bail!("case {s} is not under a legal hold; nothing was written");
    }
    if !lift && view.legal_hold {
        bail!("case {s} is under a legal hold already; nothing was written");
    }
    let control = CaseControl {
        legal_hold: Some(if lift {
            LegalHold::Lifted
        } else {
            LegalHold::Set
        }),
        ..CaseControl::default()
    };
    let content = ctx.content(note.unwrap_or(""));
    let done = if lift {
        format!("legal hold on case {s} lifted")
    } else {
        format!(
            "case {s} is under a legal hold: it cannot be erased until a coordinator or an admin lifts it"
        )
    };
    let r = ctx.write(&file, control, content, &done).await;
    ctx.close().await;
    r.map(|_| ())
}

/// `hotline case stats`: the figures of the erased cases, from the
/// statistics ledger's tombstones.
pub(super) async fn show_stats(state: &StateDir) -> anyhow::Result<()> {
    let ctx = Ctx::start(state).await?;
    let root = ctx.device.org_root().context(
        "no organisation root is pinned on this device, so it cannot find the statistics ledger",
    )?;
    let file = ctx.replica.load(&ledger_id(&root))?;
    // A tombstone counts once its case is erased (a case still held here
    // is waiting for its erasure to be confirmed).
    let held = |t: &hotline_proto::case::content::StatisticsTombstone| {
        CaseId::from_slice(&t.case_id, "case_id").is_ok_and(|c| {
            ctx.replica
                .summaries()
                .iter()
                .any(|s| s.case_id == c.as_bytes())
        })
    };
    // A case held whose erasure is no longer asked for (reopened since)
    // is neither: its tombstone waits for a fresh request.
    let asked = |t: &hotline_proto::case::content::StatisticsTombstone| {
        CaseId::from_slice(&t.case_id, "case_id").is_ok_and(|c| ctx.replica.erasure_requested(&c))
    };
    let (held_cases, erased): (Vec<_>, Vec<_>) =
        stats::tombstones(&file).into_iter().partition(|t| held(t));
    let waiting: Vec<_> = held_cases.into_iter().filter(|t| asked(t)).collect();
    for l in stats::lines(&erased) {
        println!("{l}");
    }
    if !waiting.is_empty() {
        println!(
            "{} more case(s) wait for their erasure to be confirmed (not counted above)",
            waiting.len()
        );
    }
    // Every event of the ledger this device cannot open (no key of its
    // epoch: the ledger's first key, or one of a later epoch after a
    // rotation, has not arrived) may hold tombstones not counted above.
    if ctx.replica.view(&file.case_id)?.unreadable > 0 {
        println!("this device does not hold the ledger's key yet: these figures may be incomplete");
    }
    ctx.close().await;
    Ok(())
}
