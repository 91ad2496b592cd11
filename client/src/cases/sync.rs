//! Fetching case updates (`sync_cases`) and applying them to the replica
//! with the readers' checks of docs/protocol.md, section 9.5.
//!
//! An event is stored only if its signature verifies under the identity
//! key the server sent AND the roster of the event's version (exactly
//! that one: fetched from the server first if this device does not hold
//! it; the sync stops before the event if it cannot be had) lists that
//! key for the author as a staff device valid at the event's server time;
//! anything else is skipped with a warning and the sync goes on. Events
//! are stored still sealed: those this device holds no key for yet are
//! kept and counted. What the server says without a signature (a request,
//! an erasure, an event's position and time) never overrides what the
//! signed events held here say.

use std::collections::{BTreeMap, BTreeSet};

use hotline_proto::case::erasure::{Closing, ErasureStep, verify_erasure};
use hotline_proto::case::seal::CaseEventError;
use hotline_proto::case::{CaseId, CaseState, CaseSync, CaseUpdate, CaseUpdateKind, LegalHold};
use hotline_proto::e2e::org::OrgPublicKey;
use hotline_proto::e2e::roster::Roster;
use hotline_proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN};
use hotline_proto::message::{Request, Response};
use hotline_proto::{DeviceId, Role, Signature};
use tokio::time::timeout;

use super::model::RequestInfo;
use super::replica::{CaseFile, Held, Replica, StoredEvent};
use crate::connection::{REQUEST_TIMEOUT, Session};
use crate::error::ClientError;

/// The most frames one answer may carry (the server sends at most 64).
const MAX_FRAMES: usize = 64;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Events stored (new to this device).
    pub events: usize,
    /// Cases that changed.
    pub changed: BTreeSet<CaseId>,
    /// Cases asked for by defenders, new here.
    pub requested: Vec<CaseId>,
    /// Cases erased (their events and keys deleted here).
    pub erased: Vec<CaseId>,
    /// The envelope digests of the defenders' requests of the cases
    /// erased: what finds those requests in the message history
    /// ([`crate::history::History::remove_case_texts`]).
    pub erased_requests: Vec<[u8; 32]>,
    /// Cases whose erasure was asked for (waiting for a second staff
    /// member).
    pub erasure_requested: Vec<CaseId>,
    /// Updates skipped, in words (never their content): at most
    /// [`MAX_WARNINGS`], then one line counting the others.
    pub warnings: Vec<String>,
    /// Warnings left off beyond [`MAX_WARNINGS`].
    pub left_off: usize,
    /// Requests waiting (a case in state requested, no event), by
    /// defender device: counted once per sync when a request comes.
    waiting_requests: Option<BTreeMap<DeviceId, usize>>,
    /// Staff roster versions that case events name, that this device does
    /// not hold and the server did not give: the sync stopped before the
    /// first such event (nothing after it applied; the next sync tries
    /// again). Empty: the sync went to the end.
    pub waiting_for_rosters: BTreeSet<u64>,
}

/// The most requests waiting for the team one defender device may have
/// (the server's own limit, docs/protocol.md 9.3): an unsigned
/// `requested` update beyond it is ignored, with a warning.
pub const MAX_REQUESTS_PER_DEFENDER: usize = 5;

/// The most requests waiting for the team this device keeps, of all
/// defenders: `requested` updates are not signed, and a server could
/// otherwise make cases without end.
pub const MAX_REQUESTS_WAITING: usize = 1_000;

/// Requests waiting on `replica` (cases whose summary says requested) and
/// in `files` (loaded by this sync), by defender device.
fn waiting_requests(
    replica: &Replica,
    files: &BTreeMap<CaseId, CaseFile>,
) -> Result<BTreeMap<DeviceId, usize>, ClientError> {
    let mut ids: BTreeSet<CaseId> = replica
        .summaries()
        .iter()
        .filter(|s| s.state() == Some(CaseState::Requested))
        .filter_map(|s| s.id())
        .collect();
    ids.extend(
        files
            .iter()
            .filter(|(_, f)| f.request.is_some() && f.events.is_empty())
            .map(|(c, _)| *c),
    );
    let mut counts: BTreeMap<DeviceId, usize> = BTreeMap::new();
    for c in ids {
        let request = match files.get(&c) {
            Some(f) => f.events.is_empty().then(|| f.request.clone()).flatten(),
            None => replica.load(&c)?.request,
        };
        if let Some(r) = request {
            *counts.entry(r.defender).or_default() += 1;
        }
    }
    Ok(counts)
}

/// The most warnings one sync reports one by one; the others are counted
/// ("… and N more"): a server sending many bad updates cannot flood the
/// person's screen or this device's memory.
pub const MAX_WARNINGS: usize = 20;

impl SyncReport {
    /// Adds a warning, or counts it once [`MAX_WARNINGS`] are held.
    pub fn warn(&mut self, warning: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(warning);
            return;
        }
        self.left_off += 1;
        let line = format!(
            "… and {} more warning(s) of this sync like those above",
            self.left_off
        );
        if self.left_off == 1 {
            self.warnings.push(line);
        } else if let Some(last) = self.warnings.last_mut() {
            *last = line;
        }
    }
}

fn protocol(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(e.to_string())
}

/// Sends `sync_cases { after }` and reads every frame of the answer until
/// the server finishes the stream.
pub async fn fetch(session: &Session, after: u64) -> Result<Vec<CaseSync>, ClientError> {
    let mut frames = Vec::new();
    fetch_each(session, after, |f| {
        frames.push(f);
        Ok(())
    })
    .await?;
    Ok(frames)
}

/// [`fetch`], handing each frame to `each` as soon as it is read (while
/// the server prepares the next): how many frames were read.
pub async fn fetch_each(
    session: &Session,
    after: u64,
    mut each: impl FnMut(CaseSync) -> Result<(), ClientError>,
) -> Result<usize, ClientError> {
    let framed = frame::encode(&Request::SyncCases { after }.encode()).map_err(protocol)?;
    let conn = session.connection();
    let lost = |e: &dyn std::fmt::Display| ClientError::ConnectionLost(e.to_string());
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
    send.write_all(&framed).await.map_err(|e| lost(&e))?;
    let _ = send.finish();
    let mut frames = 0usize;
    loop {
        let mut header = [0u8; HEADER_LEN];
        let read = timeout(REQUEST_TIMEOUT, recv.read_exact(&mut header))
            .await
            .map_err(|_| ClientError::ConnectionLost("the server did not answer in time".into()))?;
        match read {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) if frames > 0 => break,
            Err(quinn::ReadExactError::FinishedEarly(_)) => {
                return Err(protocol("the case sync ended inside a frame"));
            }
            Err(quinn::ReadExactError::ReadError(e)) => return Err(lost(&e)),
        }
        let len = frame::payload_len(header, MAX_FRAME_LEN).map_err(protocol)?;
        let mut payload = vec![0u8; len];
        timeout(REQUEST_TIMEOUT, recv.read_exact(&mut payload))
            .await
            .map_err(|_| ClientError::ConnectionLost("the server did not answer in time".into()))?
            .map_err(|e| lost(&e))?;
        frames += 1;
        if frames > MAX_FRAMES {
            return Err(protocol("the case sync sent more frames than allowed"));
        }
        match Response::decode(&payload).map_err(protocol)? {
            Response::CaseSync(s) => each(s)?,
            Response::Error(e) => return Err(ClientError::Refused(e)),
            _ => return Err(protocol("an answer of the wrong kind")),
        }
    }
    Ok(frames)
}

/// Event bytes a sync holds in memory before it writes the case files it
/// changed and moves the cursor (then goes on): each file is written once
/// per sync below this, instead of once per frame.
const WRITE_AFTER_BYTES: usize = 64 << 20;

/// How long a sync goes on applying frames without writing them: on a
/// slow link, what came is saved at least this often (at a frame's end),
/// so a stop loses little.
const WRITE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Fetches every update after the replica's cursor (asking again while
/// the server says there are more) and applies them.
///
/// Each case file changed is written once, with the cursor after it, at
/// the end (or each time the files held pass [`WRITE_AFTER_BYTES`] or
/// [`WRITE_AFTER`] has passed, at the end of a frame). If the answer is
/// cut (the link fails, the server resets the stream or ends it with an
/// error), every frame applied whole is saved and the cursor moves to the
/// last one's: the next sync resumes there and fetches none of them
/// again (docs/protocol.md, section 9.3). Only a failure to apply or save
/// leaves the cursor where it was.
///
/// `roster` is the newest roster this device holds (remembered in the
/// replica with those accepted before); `request_text` finds the words of
/// a defender's request by its envelope digest, if this device holds the
/// envelope and it was sent by the request's defender device.
///
/// An event names the roster version its author wrote it under. This
/// one fetches no roster: at an event naming a version this device does
/// not hold, the sync stops (it is never dropped as "not on the roster",
/// nor is its case folded without it) and the report says which versions
/// it waits for ([`SyncReport::waiting_for_rosters`]);
/// [`sync_cases_pinned`] fetches them.
pub async fn sync_cases(
    session: &Session,
    replica: &mut Replica,
    roster: &Roster,
    request_text: &dyn Fn(&[u8; 32], &DeviceId) -> Option<String>,
) -> Result<SyncReport, ClientError> {
    sync_inner(session, replica, roster, None, request_text, &mut |_| {}).await
}

/// [`sync_cases`], fetching the roster versions events name that this
/// device does not hold from the server (`GetRoster` by version) and
/// checking each under the pinned `root` (its signature, its version, and
/// that the next version held names its hash) before the events
/// (section 9.5). What the server cannot give stops the sync as in
/// [`sync_cases`].
pub async fn sync_cases_pinned(
    session: &Session,
    replica: &mut Replica,
    roster: &Roster,
    root: Option<&OrgPublicKey>,
    request_text: &dyn Fn(&[u8; 32], &DeviceId) -> Option<String>,
) -> Result<SyncReport, ClientError> {
    sync_inner(session, replica, roster, root, request_text, &mut |_| {}).await
}

/// [`sync_cases`] without a pinned root (older roster versions are not
/// fetched), calling `on_frame` with each frame once it is applied (and
/// before the next is read).
pub async fn sync_cases_each(
    session: &Session,
    replica: &mut Replica,
    roster: &Roster,
    request_text: &dyn Fn(&[u8; 32], &DeviceId) -> Option<String>,
    on_frame: &mut dyn FnMut(&CaseSync),
) -> Result<SyncReport, ClientError> {
    sync_inner(session, replica, roster, None, request_text, on_frame).await
}

/// The roster versions the events of `updates` name that `replica` does
/// not hold (0, "no roster", is never fetched).
fn rosters_missing(replica: &Replica, updates: &[CaseUpdate]) -> BTreeSet<u64> {
    updates
        .iter()
        .filter_map(|u| match &u.kind {
            CaseUpdateKind::Event { event, .. } if !replica.is_erased(&u.case_id) => {
                event.header_unverified().ok().map(|h| h.roster_version)
            }
            _ => None,
        })
        .filter(|v| *v != 0 && !replica.rosters().holds(*v))
        .collect()
}

/// Fetches every staff roster version up to `newest` that this device
/// does not hold yet (each checked as [`fetch_roster_version`] does, and
/// kept): the rosters name who was staff when, which a reader needs for
/// case events (section 9.5) and for case keys sent by a staff member
/// revoked since (section 9.2). Each version is fetched once per device;
/// at most 1,000 in one call. Returns the versions it could not get.
pub async fn fill_rosters(
    session: &Session,
    replica: &mut Replica,
    root: &OrgPublicKey,
    newest: u64,
) -> Result<Vec<u64>, ClientError> {
    let mut missing = Vec::new();
    let wanted: Vec<u64> = (1..=newest)
        .rev()
        .filter(|v| !replica.rosters().holds(*v))
        .take(1_000)
        .collect();
    for v in wanted {
        if fetch_roster_version(session, replica, root, v)
            .await?
            .is_err()
        {
            missing.push(v);
        }
    }
    Ok(missing)
}

/// Fetches the roster of `version` from the server, checks it under
/// `root` (signature, version, and that the next version this device
/// holds names its hash) and keeps it. `Ok(Err(why))`: not obtained.
async fn fetch_roster_version(
    session: &Session,
    replica: &mut Replica,
    root: &OrgPublicKey,
    version: u64,
) -> Result<Result<(), String>, ClientError> {
    let signed = match session.get_roster_version(version).await {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(Err("the server holds no roster".into())),
        Err(e) => return Ok(Err(format!("the server did not give it: {e}"))),
    };
    // An old roster has often expired: what matters is that the root
    // signed it, under this version.
    let roster = match signed.verify_even_if_expired(root, None) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("the roster the server gave is refused: {e}"))),
    };
    if roster.version != version {
        return Ok(Err(format!(
            "the server gave version {} instead",
            roster.version
        )));
    }
    if replica
        .rosters()
        .expected_hash(version)
        .is_some_and(|h| h != signed.hash())
    {
        return Ok(Err(format!(
            "the roster the server gave is not the one version {} this device holds follows: refused",
            version.saturating_add(1)
        )));
    }
    replica.remember_roster(&roster)?;
    Ok(Ok(()))
}

async fn sync_inner(
    session: &Session,
    replica: &mut Replica,
    roster: &Roster,
    root: Option<&OrgPublicKey>,
    request_text: &dyn Fn(&[u8; 32], &DeviceId) -> Option<String>,
    on_frame: &mut dyn FnMut(&CaseSync),
) -> Result<SyncReport, ClientError> {
    let mut report = SyncReport::default();
    // Roster versions the server could not give in this sync, with why.
    let mut unavailable: BTreeMap<u64, String> = BTreeMap::new();
    replica.remember_roster(roster)?;
    let mut files: BTreeMap<CaseId, CaseFile> = BTreeMap::new();
    let mut cursor = replica.cursor();
    let mut retention = replica.retention_secs().unwrap_or(0);
    let mut saved_at = std::time::Instant::now();
    // Bounded: each round moves the cursor forward or stops.
    for _ in 0..10_000 {
        let after = cursor;
        let mut more = false;
        // Set when applying or saving failed (not the link).
        let mut failed_here = false;
        // Set when a frame names roster versions not held: it is not
        // applied, and this sync fetches them, then asks again.
        let mut need: BTreeSet<u64> = BTreeSet::new();
        // Each frame applied as it comes, while the server reads the next.
        let fetched = fetch_each(session, after, |f| {
            let missing = rosters_missing(replica, &f.updates);
            if !missing.is_empty() {
                need = missing;
                return Err(ClientError::State("case events wait for rosters".into()));
            }
            let checks = Checks {
                roster,
                retention_secs: Some(f.retention_secs),
                now: crate::unix_now(),
            };
            let applied = apply_held(
                replica,
                &f.updates,
                &checks,
                request_text,
                &mut report,
                &mut files,
            );
            if let Err(e) = applied {
                failed_here = true;
                return Err(e);
            }
            more = f.more;
            cursor = cursor.max(f.cursor);
            retention = f.retention_secs;
            let held: usize = files
                .values()
                .flat_map(|f| &f.events)
                .map(|e| e.event.body.len())
                .sum();
            if held > WRITE_AFTER_BYTES || saved_at.elapsed() >= WRITE_AFTER {
                let saved = replica
                    .save_all(files.values())
                    .and_then(|()| replica.set_cursor(cursor, retention));
                if let Err(e) = saved {
                    failed_here = true;
                    return Err(e);
                }
                files.clear();
                saved_at = std::time::Instant::now();
            }
            on_frame(&f);
            Ok(())
        })
        .await;
        if !need.is_empty() {
            // What came before that frame was applied whole: kept.
            replica.save_all(files.values())?;
            files.clear();
            replica.set_cursor(cursor, retention)?;
            let fresh: Vec<u64> = need
                .iter()
                .copied()
                .filter(|v| !unavailable.contains_key(v))
                .collect();
            if fresh.is_empty() {
                let list = need
                    .iter()
                    .map(|v| format!("v{v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let why = need
                    .iter()
                    .filter_map(|v| unavailable.get(v))
                    .next()
                    .cloned()
                    .unwrap_or_default();
                report.warn(format!(
                    "case events wait for staff roster {list}, which this device does not hold and could not get ({why}): the case sync stops before them and tries again next time; the cases may be further along than shown here"
                ));
                report.waiting_for_rosters = need;
                return Ok(report);
            }
            for v in fresh {
                let got = match root {
                    Some(root) => fetch_roster_version(session, replica, root, v).await?,
                    None => Err("no organisation root is pinned on this device".into()),
                };
                if let Err(why) = got {
                    unavailable.insert(v, why);
                }
            }
            continue;
        }
        if let Err(e) = fetched {
            if failed_here {
                // What was applied but not saved must not stay in this
                // run's folds: the next sync fetches it again.
                for case in files.keys() {
                    replica.unfold(case);
                }
                return Err(e);
            }
            // The answer was cut: every frame applied whole is kept, and
            // the next sync resumes after the last one.
            replica.save_all(files.values())?;
            replica.set_cursor(cursor, retention)?;
            return Err(e);
        }
        if !more || cursor <= after {
            break;
        }
    }
    replica.save_all(files.values())?;
    replica.set_cursor(cursor, retention)?;
    Ok(report)
}

/// What the readers' checks of a batch of updates go by.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    /// The newest roster this device accepted.
    pub roster: &'a Roster,
    /// The server's retention of closed cases, as it states it in the
    /// sync (`None`: not known).
    pub retention_secs: Option<u64>,
    /// This device's clock.
    pub now: u64,
}

fn short(case: &CaseId) -> String {
    hotline_proto::identity::hex(case.as_bytes())
        .chars()
        .take(8)
        .collect()
}

#[cfg(test)]
const DAY: u64 = 86_400;

/// The event that closed `file`'s case, as this replica holds it: the
/// last event (in position order) that changes the state, if it closed
/// the case (`None`: open, requested, or no such event held). What an
/// erasure signs (docs/protocol.md, section 9.7).
pub fn closing_of(file: &CaseFile) -> Option<Closing> {
    let mut events: Vec<&StoredEvent> = file.events.iter().collect();
    events.sort_by_key(|e| e.position);
    let last = events
        .iter()
        .rev()
        .filter_map(|e| e.event.header_unverified().ok())
        .find(|h| h.control.state.is_some())?;
    (last.control.state == Some(CaseState::Closed)).then_some(Closing {
        author: last.author,
        event_id: last.event_id,
    })
}

/// Why an erasure, signed by two staff members over `closing` (the event
/// that closed the case), is not applied to `file` (`None`: it is). The
/// signatures decide one closing: this device refuses an erasure whose
/// closing its replica shows superseded — a later event reopened the case
/// (the server drops an erasure request then, so an older signature is a
/// replay), or the named event did not close it — and one of a case under
/// a legal hold as its replica holds it, or of the statistics ledger. A
/// device that never saw the closing, or what superseded it (offline
/// since before, its events shredded since), applies it: the residue
/// docs/threat-model.md names.
fn superseded(file: &CaseFile, ledger: Option<CaseId>, closing: &Closing) -> Option<String> {
    if ledger == Some(file.case_id) {
        return Some("the statistics ledger".into());
    }
    let mut events: Vec<&StoredEvent> = file.events.iter().collect();
    events.sort_by_key(|e| e.position);
    let (mut seen, mut reopened, mut hold, mut is_ledger) = (false, false, false, false);
    for e in events {
        let Ok(h) = e.event.header_unverified() else {
            continue;
        };
        is_ledger |= h.control.ledger;
        if h.author == closing.author && h.event_id == closing.event_id {
            if h.control.state != Some(CaseState::Closed) {
                return Some("not closed by the event its erasure names".into());
            }
            seen = true;
        } else if seen && h.control.state.is_some() {
            reopened = true;
        }
        match h.control.legal_hold {
            Some(LegalHold::Set) => hold = true,
            Some(LegalHold::Lifted) => hold = false,
            None => {}
        }
    }
    if is_ledger {
        return Some("the statistics ledger".into());
    }
    if reopened {
        return Some("reopened after the closing its erasure names".into());
    }
    if hold {
        return Some("under a legal hold".into());
    }
    None
}

/// Checks an erasure's two signatures against `roster` (the newest this
/// device accepted): both present with the closing they cover, the
/// requester a staff device, the confirmer a coordinator or an admin, two
/// distinct devices, step 1 under the requester's key over the case and
/// the closing, step 2 under the confirmer's key over the case, the
/// closing and step 1's signature. The closing, or why not.
fn signed_erasure(
    case: &CaseId,
    closing: Option<&Closing>,
    (requested_by, request_signature): (&DeviceId, Option<&Signature>),
    (confirmed_by, confirm_signature): (&DeviceId, Option<&Signature>),
    roster: &Roster,
) -> Result<Closing, &'static str> {
    let (Some(closing), Some(request_signature), Some(confirm_signature)) =
        (closing, request_signature, confirm_signature)
    else {
        return Err("it does not carry both signatures and the closing they cover");
    };
    if requested_by == confirmed_by {
        return Err("asked for and confirmed by the same device");
    }
    let staff = |d: &DeviceId| {
        roster
            .entries
            .iter()
            .find(|e| e.device_id == *d && e.role.is_staff())
    };
    let Some(requester) = staff(requested_by) else {
        return Err("asked for by a device not on the staff roster");
    };
    let Some(confirmer) = staff(confirmed_by) else {
        return Err("confirmed by a device not on the staff roster");
    };
    if !matches!(confirmer.role, Role::Coordinator | Role::Admin) {
        return Err("confirmed by a device that is not a coordinator or an admin");
    }
    if !verify_erasure(
        &requester.identity_key,
        case,
        ErasureStep::Request,
        closing,
        request_signature,
    ) || !verify_erasure(
        &confirmer.identity_key,
        case,
        ErasureStep::Confirm(*request_signature),
        closing,
        confirm_signature,
    ) {
        return Err("a signature does not verify");
    }
    Ok(*closing)
}

/// Applies updates to the replica (each case's file written once), with
/// this device's clock and the retention period it last synced.
pub fn apply(
    replica: &mut Replica,
    updates: &[CaseUpdate],
    roster: &Roster,
    request_text: &dyn Fn(&[u8; 32], &DeviceId) -> Option<String>,
    report: &mut SyncReport,
) -> Result<(), ClientError> {
    let checks = Checks {
        roster,
        retention_secs: replica.retention_secs(),
        now: crate::unix_now(),
    };
    apply_with(replica, updates, &checks, request_text, report)
}

/// Applies updates to the replica (each case's file written once, each
/// case folded once more at most, however its updates come).
pub fn apply_with(
    replica: &mut Replica,
    updates: &[CaseUpdate],
    checks: &Checks<'_>,
    request_text: &dyn Fn(&[u8; 32], &DeviceId) -> Option<String>,
    report: &mut SyncReport,
) -> Result<(), ClientError> {
    let mut files: BTreeMap<CaseId, CaseFile> = BTreeMap::new();
    apply_held(replica, updates, checks, request_text, report, &mut files)?;
    replica.save_all(files.values())
}

/// Applies updates to the case files in `files` (loaded from the replica
/// when first touched), without writing them: the caller saves them
/// ([`Replica::save_all`]) before it moves the cursor. An erasure deletes
/// at once. Each case is folded once more at most, however its updates
/// come.
fn apply_held(
    replica: &mut Replica,
    updates: &[CaseUpdate],
    checks: &Checks<'_>,
    request_text: &dyn Fn(&[u8; 32], &DeviceId) -> Option<String>,
    report: &mut SyncReport,
    files: &mut BTreeMap<CaseId, CaseFile>,
) -> Result<(), ClientError> {
    replica.remember_roster(checks.roster)?;
    // Cases whose events came out of position order, or whose times
    // changed: sorted and folded again once, at the end.
    let mut stale: BTreeSet<CaseId> = BTreeSet::new();
    for u in updates {
        if replica.is_erased(&u.case_id) {
            continue;
        }
        match &u.kind {
            CaseUpdateKind::Erased {
                requested_by,
                confirmed_by,
                request_signature,
                confirm_signature,
                closing,
            } => {
                let signed = signed_erasure(
                    &u.case_id,
                    closing.as_ref(),
                    (requested_by, request_signature.as_ref()),
                    (confirmed_by, confirm_signature.as_ref()),
                    checks.roster,
                );
                // Who erased it is said only when both signed it.
                let by = signed.is_ok().then_some((*requested_by, *confirmed_by));
                let loaded;
                let file = match files.get(&u.case_id) {
                    Some(f) => f,
                    None => {
                        loaded = replica.load(&u.case_id)?;
                        &loaded
                    }
                };
                // Never the server's word alone: without both signatures
                // over the closing, nothing is erased here.
                let refusal = match signed {
                    Ok(closing) => superseded(file, replica.ledger(), &closing),
                    Err(why) => Some(format!(
                        "its erasure is not signed by two staff members on the roster ({why})"
                    )),
                };
                if let Some(why) = refusal {
                    report.warn(format!(
                        "the server says case {} was erased, but here it is {why}: kept",
                        short(&u.case_id)
                    ));
                    continue;
                }
                if let Some(r) = &file.request {
                    report.erased_requests.push(r.envelope_digest);
                }
                files.remove(&u.case_id);
                stale.remove(&u.case_id);
                replica.erase(&u.case_id)?;
                replica.record_erasure(&u.case_id, u.at, by.map(|b| b.0), by.map(|b| b.1))?;
                report.changed.remove(&u.case_id);
                report.erased.push(u.case_id);
                continue;
            }
            CaseUpdateKind::ErasureRequested {
                requested_by,
                signature,
                closing,
            } => {
                // Signed (section 9.7) over the closing, by a staff device
                // on the roster; anything else is not a request.
                let signed = match (signature, closing) {
                    (Some(sig), Some(closing)) => checks.roster.entries.iter().any(|e| {
                        e.device_id == *requested_by
                            && e.role.is_staff()
                            && verify_erasure(
                                &e.identity_key,
                                &u.case_id,
                                ErasureStep::Request,
                                closing,
                                sig,
                            )
                    }),
                    _ => false,
                };
                if let (true, Some(sig), Some(closing)) = (signed, signature, closing) {
                    replica.set_erasure_request(&u.case_id, *requested_by, *sig, *closing)?;
                }
                if signed {
                    report.erasure_requested.push(u.case_id);
                } else {
                    report.warn(format!(
                        "the server says the erasure of case {} was asked for, but the request is not signed by a staff device on the roster: ignored",
                        short(&u.case_id)
                    ));
                }
                continue;
            }
            CaseUpdateKind::Requested { .. } | CaseUpdateKind::Event { .. } => {}
        }
        if matches!(u.kind, CaseUpdateKind::Requested { .. }) && report.waiting_requests.is_none() {
            report.waiting_requests = Some(waiting_requests(replica, files)?);
        }
        let file = match files.entry(u.case_id) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                // Keys received before the case was known join it now.
                let mut file = replica.load(&u.case_id)?;
                replica.take_pending(&mut file)?;
                v.insert(file)
            }
        };
        match &u.kind {
            CaseUpdateKind::Requested {
                defender,
                envelope_digest,
            } => {
                let info = RequestInfo {
                    defender: *defender,
                    at: u.at,
                    envelope_digest: *envelope_digest,
                    text: None,
                };
                match &mut file.request {
                    // The same request again (a sync fetched twice): its
                    // words, if this device holds them now.
                    Some(held)
                        if (held.defender, held.at, held.envelope_digest)
                            == (info.defender, info.at, info.envelope_digest) =>
                    {
                        if held.text.is_none() {
                            held.text = request_text(envelope_digest, defender);
                            if held.text.is_some() {
                                replica.unfold(&u.case_id);
                                report.changed.insert(u.case_id);
                            }
                        }
                        continue;
                    }
                    // Unsigned: it may not replace a request held, nor
                    // turn a case under way into a request.
                    Some(_) => {}
                    None if file.events.is_empty() && replica.waiting(&u.case_id).is_empty() => {
                        let counts = report.waiting_requests.get_or_insert_default();
                        let all: usize = counts.values().sum();
                        let mine = counts.entry(*defender).or_default();
                        if *mine >= MAX_REQUESTS_PER_DEFENDER || all >= MAX_REQUESTS_WAITING {
                            let why = if *mine >= MAX_REQUESTS_PER_DEFENDER {
                                format!(
                                    "one defender device already has {MAX_REQUESTS_PER_DEFENDER} requests waiting here (the most the server allows)"
                                )
                            } else {
                                format!("{MAX_REQUESTS_WAITING} requests already wait here")
                            };
                            report.warn(format!(
                                "the server sent a defender's request for case {}, but {why}: ignored (the defender's words stay in the messages)",
                                short(&u.case_id)
                            ));
                            // Nothing of it is kept: no case file, no
                            // summary.
                            if file.events.is_empty()
                                && file.request.is_none()
                                && file.keys.is_empty()
                            {
                                files.remove(&u.case_id);
                            }
                            continue;
                        }
                        *mine += 1;
                        report.requested.push(u.case_id);
                        replica.unfold(&u.case_id);
                        file.request = Some(RequestInfo {
                            text: request_text(envelope_digest, defender),
                            ..info
                        });
                        report.changed.insert(u.case_id);
                        continue;
                    }
                    None => {}
                }
                report.warn(format!(
                    "the server sent a defender's request for case {}, which this device already holds as a request or a case under way: ignored",
                    short(&u.case_id)
                ));
            }
            CaseUpdateKind::Event { event, author_key } => {
                // The header first, then one signature check (with the
                // decryption, when the key is held), then the roster.
                let header = match event.header_unverified() {
                    Err(_) => {
                        report.warn("an event that cannot be read was ignored".into());
                        continue;
                    }
                    Ok(h) if h.case_id != u.case_id => {
                        report.warn("an event filed under another case was ignored".into());
                        continue;
                    }
                    // No server stores one (section 9.3, rule 2): bytes a
                    // reader would skip, or an empty control.
                    Ok(_) if !event.body_is_canonical() => {
                        report.warnings.push(
                            "an event whose body is not the canonical encoding of its fields was ignored"
                                .into(),
                        );
                        continue;
                    }
                    Ok(h) => h,
                };
                let opened = event.open(author_key, |_, epoch| {
                    file.key_for(epoch, &header.key_commitment)
                });
                let signed = match &opened {
                    Err(CaseEventError::BadSignature) => false,
                    Err(CaseEventError::NoKey) => event.verify_signature(author_key).is_ok(),
                    _ => true,
                };
                if !signed {
                    report.warn("an event whose signature does not verify was ignored".into());
                    continue;
                }
                if !replica.rosters().lists_staff(
                    header.roster_version,
                    &event.author,
                    author_key,
                    u.at,
                ) {
                    report.warn(
                        "an event signed by a device not on the staff roster was ignored".into(),
                    );
                    continue;
                }
                let stored = StoredEvent {
                    position: u.position,
                    at: u.at,
                    event: event.clone(),
                    author_key: *author_key,
                };
                let fresh = !stale.contains(&u.case_id);
                if fresh {
                    replica.prepare(file);
                }
                let in_order = file
                    .events
                    .last()
                    .is_none_or(|last| last.position < u.position);
                let held = file.add_checked(stored.clone());
                if matches!(held, Held::New | Held::Settled)
                    && header.control.state == Some(CaseState::Open)
                {
                    // A reopening drops a pending erasure request on the
                    // server (section 9.7): here too.
                    report.erasure_requested.retain(|c| *c != u.case_id);
                    if replica.erasure_requested(&u.case_id) {
                        replica.set_erasure_requested(&u.case_id, false)?;
                    }
                }
                match held {
                    Held::New => {
                        report.events += 1;
                        if fresh && in_order {
                            replica.fold_added(&stored, &u.case_id, opened);
                        } else {
                            stale.insert(u.case_id);
                            replica.unfold(&u.case_id);
                        }
                        report.changed.insert(u.case_id);
                    }
                    // This device's own event coming back with the
                    // server's time: folded again, once.
                    Held::Settled => {
                        stale.insert(u.case_id);
                        replica.unfold(&u.case_id);
                        report.changed.insert(u.case_id);
                    }
                    Held::Replay | Held::Unreadable => {}
                    Held::Rewritten => report.warn(format!(
                        "the server sent an event of case {} again with another position or time: the first is kept",
                        short(&u.case_id)
                    )),
                }
            }
            CaseUpdateKind::Erased { .. } | CaseUpdateKind::ErasureRequested { .. } => {}
        }
    }
    for case in &stale {
        if let Some(file) = files.get_mut(case) {
            file.events.sort_by_key(|e| e.position);
        }
        replica.unfold(case);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::fields::case_field;
    use crate::cases::testing::{event, event_with, set_text, staff};
    use crate::state::StateDir;
    use hotline_proto::Role;
    use hotline_proto::case::CaseControl;
    use hotline_proto::case::seal::CaseKey;
    use hotline_proto::e2e::roster::RosterEntry;

    fn roster(staff_ids: &[&hotline_proto::IdentityKeyPair]) -> Roster {
        Roster {
            version: 1,
            issued_at: 0,
            expires_at: u64::MAX,
            previous_hash: [0; 32],
            entries: staff_ids
                .iter()
                .map(|k| RosterEntry {
                    device_id: k.device_id(),
                    role: Role::Officer,
                    identity_key: k.public_key(),
                    valid_from: 0,
                    valid_until: u64::MAX,
                })
                .collect(),
        }
    }

    fn update(position: u64, case: CaseId, kind: CaseUpdateKind) -> CaseUpdate {
        CaseUpdate {
            position,
            case_id: case,
            at: 100 + position,
            kind,
        }
    }

    #[test]
    fn events_are_checked_stored_and_folded_and_bad_ones_skipped_without_stopping() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let (a, b, outsider) = (staff(1), staff(2), staff(3));
        let case = CaseId::from_bytes([7; 16]);
        let key = CaseKey::from_bytes([8; 32]);
        let e1 = event(&a, &key, case, [1; 16], 1, Some(CaseState::Open), |c| {
            c.changes.push(set_text(case_field::SUMMARY, "first", &[]));
        });
        let e2 = event(&b, &key, case, [2; 16], 1, None, |c| {
            c.changes
                .push(set_text(case_field::SUMMARY, "second", &[[1; 16]]));
        });
        let forged = event(&outsider, &key, case, [3; 16], 1, None, |c| {
            c.changes
                .push(set_text(case_field::SUMMARY, "forged", &[[2; 16]]));
        });
        let ev = |e: &hotline_proto::case::SignedCaseEvent, k: &hotline_proto::IdentityKeyPair| {
            CaseUpdateKind::Event {
                event: e.clone(),
                author_key: k.public_key(),
            }
        };
        let updates = vec![
            update(1, case, ev(&e1, &a)),
            // Signed by an enrolled device that is not on the staff roster.
            update(2, case, ev(&forged, &outsider)),
            // The key the server sent is not the author's.
            update(3, case, ev(&e2, &a)),
            update(4, case, ev(&e2, &b)),
            // A replay, exactly as sent before: nothing.
            update(1, case, ev(&e1, &a)),
            // A replay at another position: the first kept, a warning.
            update(5, case, ev(&e1, &a)),
        ];
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &updates,
            &roster(&[&a, &b]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.events, 2);
        assert_eq!(
            report.warnings,
            [
                "an event signed by a device not on the staff roster was ignored",
                "an event whose signature does not verify was ignored",
                "the server sent an event of case 07070707 again with another position or time: the first is kept"
            ]
        );
        // Without the key: kept, counted, not readable.
        let s = &replica.summaries()[0];
        assert_eq!(s.unreadable, 2);
        let mut file = replica.load(&case).expect("load");
        file.keys.insert(1, key);
        let view = replica.save(&file).expect("save");
        assert_eq!(view.case_text(case_field::SUMMARY), "second");
        assert_eq!(replica.summaries()[0].summary, "second");
    }

    #[test]
    fn frames_applied_in_memory_reach_the_disk_only_when_saved_with_the_cursor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let case = CaseId::from_bytes([7; 16]);
        let key = CaseKey::from_bytes([8; 32]);
        let mut file = replica.load(&case).expect("load");
        file.keys.insert(1, key.clone());
        replica.save(&file).expect("save");
        let ev = |id: u8, text: &str, based: &[[u8; 16]]| CaseUpdateKind::Event {
            event: event(
                &a,
                &key,
                case,
                [id; 16],
                1,
                (id == 1).then_some(CaseState::Open),
                |c| {
                    c.changes.push(set_text(case_field::SUMMARY, text, based));
                },
            ),
            author_key: a.public_key(),
        };
        let mut report = SyncReport::default();
        let mut files = BTreeMap::new();
        // Two frames with events of one case.
        for frame in [
            vec![update(1, case, ev(1, "first", &[]))],
            vec![update(2, case, ev(2, "second", &[[1; 16]]))],
        ] {
            let r = roster(&[&a]);
            let checks = Checks {
                roster: &r,
                retention_secs: None,
                now: crate::unix_now(),
            };
            apply_held(
                &mut replica,
                &frame,
                &checks,
                &|_, _| None,
                &mut report,
                &mut files,
            )
            .expect("applied");
        }
        assert_eq!(report.events, 2);
        // A stop now: nothing of them on disk, the cursor where it was.
        let reopened = Replica::open(&state, &[1; 32]).expect("open");
        assert!(reopened.load(&case).expect("load").events.is_empty());
        assert_eq!(reopened.cursor(), 0);
        replica.save_all(files.values()).expect("saved");
        replica.set_cursor(2, 0).expect("cursor");
        let reopened = Replica::open(&state, &[1; 32]).expect("open");
        assert_eq!(reopened.load(&case).expect("load").events.len(), 2);
        assert_eq!(reopened.summaries()[0].summary, "second");
        assert_eq!(reopened.cursor(), 2);
    }

    #[test]
    fn a_request_shows_its_text_and_an_erasure_of_it_is_not_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let case = CaseId::from_bytes([7; 16]);
        let defender = hotline_proto::DeviceId::from_bytes([5; 16]);
        let mut report = SyncReport::default();
        let lookup =
            |d: &[u8; 32], _: &DeviceId| (d == &[9; 32]).then(|| "we must leave".to_owned());
        apply(
            &mut replica,
            &[update(
                1,
                case,
                CaseUpdateKind::Requested {
                    defender,
                    envelope_digest: [9; 32],
                },
            )],
            &roster(&[]),
            &lookup,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.requested, [case]);
        let view = replica.view(&case).expect("view");
        assert_eq!(view.state, Some(CaseState::Requested));
        assert_eq!(
            view.request.and_then(|r| r.text).as_deref(),
            Some("we must leave")
        );
        apply(
            &mut replica,
            &[update(
                2,
                case,
                CaseUpdateKind::Erased {
                    requested_by: defender,
                    confirmed_by: defender,
                    request_signature: None,
                    confirm_signature: None,
                    closing: None,
                },
            )],
            &roster(&[]),
            &lookup,
            &mut report,
        )
        .expect("applied");
        // Still a request here: the unsigned erasure is not applied.
        assert!(report.erased.is_empty());
        assert_eq!(
            report.warnings,
            [format!(
                "the server says case {} was erased, but here it is its erasure is not signed by two staff members on the roster (it does not carry both signatures and the closing they cover): kept",
                short(&case)
            )]
        );
        assert_eq!(replica.summaries().len(), 1);
        assert!(replica.load(&case).expect("load").request.is_some());
    }

    #[test]
    fn an_event_under_another_key_or_filed_under_another_case_does_not_stop_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let (case, other) = (CaseId::from_bytes([7; 16]), CaseId::from_bytes([8; 16]));
        let key = CaseKey::from_bytes([8; 32]);
        let mut file = replica.load(&case).expect("load");
        file.keys.insert(1, key.clone());
        replica.save(&file).expect("save");
        let ev = |id: u8, c: CaseId, k: &CaseKey, text: &str, based: &[[u8; 16]]| {
            let e = event(
                &a,
                k,
                c,
                [id; 16],
                1,
                (id == 1).then_some(CaseState::Open),
                |x| {
                    x.changes.push(set_text(case_field::SUMMARY, text, based));
                },
            );
            CaseUpdateKind::Event {
                event: e,
                author_key: a.public_key(),
            }
        };
        let updates = vec![
            update(1, case, ev(1, case, &key, "first", &[])),
            // Sealed under a key that is not the case's.
            update(
                2,
                case,
                ev(2, case, &CaseKey::from_bytes([9; 32]), "forged", &[[1; 16]]),
            ),
            // An event of another case, filed under this one.
            update(3, case, ev(3, other, &key, "elsewhere", &[[1; 16]])),
            update(4, case, ev(4, case, &key, "second", &[[1; 16]])),
        ];
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &updates,
            &roster(&[&a]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(
            report.warnings,
            ["an event filed under another case was ignored"]
        );
        let view = replica.view(&case).expect("view");
        assert_eq!(view.case_text(case_field::SUMMARY), "second");
        assert_eq!(view.warnings.len(), 1);
        assert_eq!(view.warnings[0].event, Some([2; 16]));
        assert_eq!(replica.summaries().len(), 1);
    }

    fn ev_update(
        position: u64,
        at: u64,
        e: &hotline_proto::case::SignedCaseEvent,
        k: &hotline_proto::IdentityKeyPair,
    ) -> CaseUpdate {
        let case = e.header_unverified().expect("header").case_id;
        CaseUpdate {
            position,
            case_id: case,
            at,
            kind: CaseUpdateKind::Event {
                event: e.clone(),
                author_key: k.public_key(),
            },
        }
    }

    fn erased(position: u64, case: CaseId) -> CaseUpdate {
        let d = hotline_proto::DeviceId::from_bytes([5; 16]);
        update(
            position,
            case,
            CaseUpdateKind::Erased {
                requested_by: d,
                confirmed_by: d,
                request_signature: None,
                confirm_signature: None,
                closing: None,
            },
        )
    }

    /// A closing by event `[n; 16]` of `author`.
    fn closed_by(author: &hotline_proto::IdentityKeyPair, n: u8) -> Closing {
        Closing {
            author: author.device_id(),
            event_id: [n; 16],
        }
    }

    /// An erasure of `case` closed by event `[2; 16]` of `requester`,
    /// signed by `requester` (step 1) and `confirmer` (step 2).
    fn signed_erased(
        position: u64,
        case: CaseId,
        requester: &hotline_proto::IdentityKeyPair,
        confirmer: &hotline_proto::IdentityKeyPair,
    ) -> CaseUpdate {
        signed_erased_of(
            position,
            case,
            closed_by(requester, 2),
            requester,
            confirmer,
        )
    }

    /// An erasure of `case` closed by `closing`, signed by `requester`
    /// (step 1) and `confirmer` (step 2).
    fn signed_erased_of(
        position: u64,
        case: CaseId,
        closing: Closing,
        requester: &hotline_proto::IdentityKeyPair,
        confirmer: &hotline_proto::IdentityKeyPair,
    ) -> CaseUpdate {
        use hotline_proto::case::erasure::sign_erasure;
        let request = sign_erasure(requester, &case, ErasureStep::Request, &closing);
        update(
            position,
            case,
            CaseUpdateKind::Erased {
                requested_by: requester.device_id(),
                confirmed_by: confirmer.device_id(),
                request_signature: Some(request),
                confirm_signature: Some(sign_erasure(
                    confirmer,
                    &case,
                    ErasureStep::Confirm(request),
                    &closing,
                )),
                closing: Some(closing),
            },
        )
    }

    /// Finding 9: a reopening synced after an erasure request clears it
    /// (the server dropped it); a request synced after the reopening
    /// stands.
    #[test]
    fn a_reopening_clears_the_erasure_asked_for_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let key = CaseKey::from_bytes([8; 32]);
        let case = CaseId::from_bytes([40; 16]);
        let ev = |n: u8, s: CaseState| {
            event_with(
                &a,
                &key,
                case,
                [n; 16],
                (1, 1),
                control(Some(s), None, false),
                |_| {},
            )
        };
        let asked = |position: u64| {
            update(
                position,
                case,
                CaseUpdateKind::ErasureRequested {
                    requested_by: a.device_id(),
                    signature: Some(hotline_proto::case::erasure::sign_erasure(
                        &a,
                        &case,
                        ErasureStep::Request,
                        &closed_by(&a, 2),
                    )),
                    closing: Some(closed_by(&a, 2)),
                },
            )
        };
        let checks = Checks {
            roster: &roster(&[&a]),
            retention_secs: Some(0),
            now: DAY_1,
        };
        let mut report = SyncReport::default();
        let first = [
            ev_update(1, DAY_1, &ev(1, CaseState::Open), &a),
            ev_update(2, DAY_1, &ev(2, CaseState::Closed), &a),
            asked(3),
        ];
        apply_with(&mut replica, &first, &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.erasure_requested, [case]);
        replica.set_erasure_requested(&case, true).expect("saved");
        let mut report = SyncReport::default();
        let reopened = [ev_update(4, DAY_1, &ev(3, CaseState::Open), &a)];
        apply_with(&mut replica, &reopened, &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(
            (report.events, &report.warnings),
            (1, &Vec::<String>::new())
        );
        assert!(report.erasure_requested.is_empty());
        assert!(!replica.erasure_requested(&case));
        // Closed and asked for again, in one sync: it waits.
        let mut report = SyncReport::default();
        let again = [ev_update(5, DAY_1, &ev(4, CaseState::Closed), &a), asked(6)];
        apply_with(&mut replica, &again, &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.erasure_requested, [case]);
        // Asked for, then reopened, in one sync: it does not.
        let mut report = SyncReport::default();
        let both = [asked(7), ev_update(8, DAY_1, &ev(5, CaseState::Open), &a)];
        apply_with(&mut replica, &both, &checks, &|_, _| None, &mut report).expect("applied");
        assert!(report.erasure_requested.is_empty());
        // A signed request counts; one whose signature is not the
        // requester's is ignored with a warning.
        let signed = |position: u64, by: &hotline_proto::IdentityKeyPair| {
            update(
                position,
                case,
                CaseUpdateKind::ErasureRequested {
                    requested_by: a.device_id(),
                    signature: Some(hotline_proto::case::erasure::sign_erasure(
                        by,
                        &case,
                        ErasureStep::Request,
                        &closed_by(&a, 2),
                    )),
                    closing: Some(closed_by(&a, 2)),
                },
            )
        };
        let mut report = SyncReport::default();
        let requests = [signed(9, &a), signed(10, &staff(2))];
        apply_with(&mut replica, &requests, &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.erasure_requested, [case]);
        assert_eq!(
            report.warnings,
            [format!(
                "the server says the erasure of case {} was asked for, but the request is not signed by a staff device on the roster: ignored",
                short(&case)
            )]
        );
    }

    /// A device that missed a case's closing (shredded since) still
    /// deletes it on an erasure signed by two staff members on its
    /// roster, the confirmer a coordinator or an admin; a forged one (a
    /// signature under another key, over another case, by one device
    /// twice, or confirmed by an officer) is refused, the case kept.
    #[test]
    fn a_signed_erasure_is_applied_to_an_open_case_and_a_forged_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let (officer, coordinator, outsider) = (staff(1), staff(2), staff(3));
        let mut book = roster(&[&officer, &coordinator]);
        book.entries[1].role = Role::Coordinator;
        let key = CaseKey::from_bytes([8; 32]);
        let ids: Vec<CaseId> = (30..37u8).map(|n| CaseId::from_bytes([n; 16])).collect();
        let opening = control(Some(CaseState::Open), None, false);
        // Every case is open here: this device never saw it closed.
        let updates: Vec<CaseUpdate> = ids
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let e = event_with(&officer, &key, *c, [1; 16], (1, 1), opening, |_| {});
                ev_update(i as u64 + 1, DAY_1, &e, &officer)
            })
            .collect();
        let checks = Checks {
            roster: &book,
            retention_secs: Some(30 * DAY),
            now: DAY_1 + DAY,
        };
        let mut report = SyncReport::default();
        apply_with(&mut replica, &updates, &checks, &|_, _| None, &mut report).expect("applied");
        let [
            good,
            unsigned,
            same,
            by_officer,
            by_outsider,
            other_case,
            half,
        ] = ids[..]
        else {
            panic!("seven cases")
        };
        let mut other = signed_erased(105, other_case, &officer, &coordinator);
        if let CaseUpdateKind::Erased {
            confirm_signature, ..
        } = &mut other.kind
        {
            let request = hotline_proto::case::erasure::sign_erasure(
                &officer,
                &good,
                ErasureStep::Request,
                &closed_by(&officer, 2),
            );
            *confirm_signature = Some(hotline_proto::case::erasure::sign_erasure(
                &coordinator,
                &good,
                ErasureStep::Confirm(request),
                &closed_by(&officer, 2),
            ));
        }
        let mut one = signed_erased(106, half, &officer, &coordinator);
        if let CaseUpdateKind::Erased {
            request_signature, ..
        } = &mut one.kind
        {
            *request_signature = None;
        }
        let erasures = vec![
            signed_erased(100, good, &officer, &coordinator),
            erased(101, unsigned),
            signed_erased(102, same, &coordinator, &coordinator),
            signed_erased(103, by_officer, &coordinator, &officer),
            signed_erased(104, by_outsider, &officer, &outsider),
            other,
            one,
        ];
        let mut report = SyncReport::default();
        apply_with(&mut replica, &erasures, &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.erased, [good]);
        let kept = |c: &CaseId, why: &str| {
            format!(
                "the server says case {} was erased, but here it is {why}: kept",
                short(c)
            )
        };
        let forged = |c: &CaseId, why: &str| {
            kept(
                c,
                &format!("its erasure is not signed by two staff members on the roster ({why})"),
            )
        };
        assert_eq!(
            report.warnings,
            [
                forged(
                    &unsigned,
                    "it does not carry both signatures and the closing they cover"
                ),
                forged(&same, "asked for and confirmed by the same device"),
                forged(
                    &by_officer,
                    "confirmed by a device that is not a coordinator or an admin"
                ),
                forged(
                    &by_outsider,
                    "confirmed by a device not on the staff roster"
                ),
                forged(&other_case, "a signature does not verify"),
                forged(
                    &half,
                    "it does not carry both signatures and the closing they cover"
                ),
            ]
        );
        let replica = Replica::open(&state, &[1; 32]).expect("reopen");
        assert!(replica.is_erased(&good));
        assert!(replica.load(&good).expect("load").events.is_empty());
        for c in [unsigned, same, by_officer, by_outsider, other_case, half] {
            assert!(!replica.is_erased(&c));
            assert_eq!(replica.load(&c).expect("load").events.len(), 1);
        }
    }

    fn control(state: Option<CaseState>, hold: Option<LegalHold>, ledger: bool) -> CaseControl {
        CaseControl {
            state,
            legal_hold: hold,
            ledger,
        }
    }

    const DAY_1: u64 = 1_000_000;

    #[test]
    fn an_erasure_is_applied_unless_its_closing_is_superseded_here_and_never_unsigned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let key = CaseKey::from_bytes([8; 32]);
        let ids: Vec<CaseId> = (10..16u8).map(|n| CaseId::from_bytes([n; 16])).collect();
        let [open, recent, held, old, ledger, unknown] = ids[..] else {
            panic!("six cases")
        };
        replica.set_ledger(ledger);
        let mk = |case: CaseId, n: u8, c: CaseControl| {
            event_with(&a, &key, case, [n; 16], (1, 1), c, |_| {})
        };
        let opening = control(Some(CaseState::Open), None, false);
        let closing = control(Some(CaseState::Closed), None, false);
        let mut updates = Vec::new();
        let mut p = 0;
        let mut push = |case: CaseId, n: u8, c: CaseControl, at: u64| {
            p += 1;
            updates.push(ev_update(p, at, &mk(case, n, c), &a));
        };
        push(open, 1, opening, DAY_1);
        push(recent, 1, opening, DAY_1);
        push(recent, 2, closing, DAY_1 + 20 * DAY);
        push(held, 1, opening, DAY_1);
        push(held, 2, control(None, Some(LegalHold::Set), false), DAY_1);
        push(held, 3, closing, DAY_1);
        push(old, 1, opening, DAY_1);
        push(old, 2, closing, DAY_1);
        // The ledger, by its id; and one flagged as a ledger by its opening.
        push(ledger, 1, control(Some(CaseState::Open), None, true), DAY_1);
        let flagged = CaseId::from_bytes([20; 16]);
        push(
            flagged,
            1,
            control(Some(CaseState::Open), None, true),
            DAY_1,
        );
        // A defender's request, declined long ago.
        let declined = CaseId::from_bytes([21; 16]);
        updates.push(update(
            50,
            declined,
            CaseUpdateKind::Requested {
                defender: hotline_proto::DeviceId::from_bytes([5; 16]),
                envelope_digest: [9; 32],
            },
        ));
        updates.push(ev_update(51, DAY_1, &mk(declined, 1, closing), &a));
        let checks = Checks {
            roster: &roster(&[&a]),
            retention_secs: Some(30 * DAY),
            now: DAY_1 + 32 * DAY,
        };
        let mut report = SyncReport::default();
        apply_with(&mut replica, &updates, &checks, &|_, _| None, &mut report).expect("applied");
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        // Review 2, findings E1 and E2: every erasure signed by two staff
        // members over the closing it names. Applied unless this replica
        // shows that closing superseded (a hold in force, the ledger);
        // one naming a closing this device never saw (the case still
        // open here, or unknown) is applied: the accepted residue.
        let mut coordinator = roster(&[&a, &staff(2)]);
        coordinator.entries[1].role = Role::Coordinator;
        let c = staff(2);
        let checks = Checks {
            roster: &coordinator,
            ..checks
        };
        let named = |case: CaseId, n: u8| (case, closed_by(&a, n));
        let erasures: Vec<CaseUpdate> = [
            named(open, 9),
            named(recent, 2),
            named(held, 3),
            named(old, 2),
            named(ledger, 2),
            named(flagged, 2),
            named(unknown, 2),
            named(declined, 1),
        ]
        .iter()
        .enumerate()
        .map(|(i, (case, closing))| signed_erased_of(100 + i as u64, *case, *closing, &a, &c))
        .collect();
        let mut report = SyncReport::default();
        apply_with(&mut replica, &erasures, &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.erased, [open, recent, old, unknown, declined]);
        assert_eq!(report.erased_requests, [[9; 32]]);
        let kept = |c: &CaseId, why: &str| {
            format!(
                "the server says case {} was erased, but here it is {why}: kept",
                short(c)
            )
        };
        assert_eq!(
            report.warnings,
            [
                kept(&held, "under a legal hold"),
                kept(&ledger, "the statistics ledger"),
                kept(&flagged, "the statistics ledger"),
            ]
        );
        // What was kept is still here after a reopen; what was erased is gone.
        let mut replica = Replica::open(&state, &[1; 32]).expect("reopen");
        for c in [held, ledger, flagged] {
            assert!(!replica.is_erased(&c));
            assert!(!replica.load(&c).expect("load").events.is_empty());
        }
        assert!(replica.is_erased(&old) && replica.is_erased(&unknown));
        assert!(replica.load(&old).expect("load").events.is_empty());
        assert_eq!(replica.summaries().len(), 3);
        // The unsigned form (no signatures, no closing) is never applied,
        // whatever the retention the server states: here 0, on a closed
        // case without a hold.
        let plain = CaseId::from_bytes([22; 16]);
        let both = [
            ev_update(200, DAY_1, &mk(plain, 1, opening), &a),
            ev_update(201, DAY_1, &mk(plain, 2, closing), &a),
            erased(202, plain),
        ];
        let zero = Checks {
            retention_secs: Some(0),
            ..checks
        };
        let mut report = SyncReport::default();
        apply_with(&mut replica, &both, &zero, &|_, _| None, &mut report).expect("applied");
        assert!(report.erased.is_empty());
        assert_eq!(
            report.warnings,
            [kept(
                &plain,
                "its erasure is not signed by two staff members on the roster (it does not carry both signatures and the closing they cover)"
            )]
        );
        assert_eq!(replica.load(&plain).expect("load").events.len(), 2);
    }

    /// Review 2, finding E1: a seized server that kept a step-1 signature
    /// of a request dropped by a reopening, and a confirmation of it the
    /// server refused at the time, cannot wipe the case, reopened and
    /// closed again since, from a device that saw the reopening; the
    /// erasure of the new closing is applied.
    #[test]
    fn a_replayed_erasure_of_an_earlier_closing_is_refused_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let (a, c) = (staff(1), staff(2));
        let mut book = roster(&[&a, &c]);
        book.entries[1].role = Role::Coordinator;
        let key = CaseKey::from_bytes([8; 32]);
        let case = CaseId::from_bytes([60; 16]);
        let mk = |n: u8, s: CaseState| {
            event_with(
                &a,
                &key,
                case,
                [n; 16],
                (1, 1),
                control(Some(s), None, false),
                |_| {},
            )
        };
        let checks = Checks {
            roster: &book,
            retention_secs: Some(0),
            now: DAY_1,
        };
        let history = [
            ev_update(1, DAY_1, &mk(1, CaseState::Open), &a),
            ev_update(2, DAY_1, &mk(2, CaseState::Closed), &a),
            ev_update(3, DAY_1, &mk(3, CaseState::Open), &a),
            ev_update(4, DAY_1, &mk(4, CaseState::Closed), &a),
        ];
        let mut report = SyncReport::default();
        apply_with(&mut replica, &history, &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(
            closing_of(&replica.load(&case).expect("load")),
            Some(closed_by(&a, 4))
        );
        let replay = signed_erased_of(5, case, closed_by(&a, 2), &a, &c);
        let mut report = SyncReport::default();
        apply_with(&mut replica, &[replay], &checks, &|_, _| None, &mut report).expect("applied");
        assert!(report.erased.is_empty());
        assert_eq!(
            report.warnings,
            [format!(
                "the server says case {} was erased, but here it is reopened after the closing its erasure names: kept",
                short(&case)
            )]
        );
        assert_eq!(replica.load(&case).expect("load").events.len(), 4);
        let fresh = signed_erased_of(6, case, closed_by(&a, 4), &a, &c);
        let mut report = SyncReport::default();
        apply_with(&mut replica, &[fresh], &checks, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.erased, [case]);
    }

    #[test]
    fn a_held_event_sent_again_with_another_position_or_time_keeps_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let key = CaseKey::from_bytes([8; 32]);
        let case = CaseId::from_bytes([7; 16]);
        let e1 = event(&a, &key, case, [1; 16], 1, Some(CaseState::Open), |_| {});
        let e2 = event(&a, &key, case, [2; 16], 1, Some(CaseState::Closed), |_| {});
        let r = roster(&[&a]);
        let mut report = SyncReport::default();
        let batch = [ev_update(1, 500, &e1, &a), ev_update(2, 600, &e2, &a)];
        apply(&mut replica, &batch, &r, &|_, _| None, &mut report).expect("applied");
        let mut report = SyncReport::default();
        let rewritten = [
            ev_update(1, 500, &e1, &a),
            ev_update(3, 600, &e2, &a),
            ev_update(2, 9, &e2, &a),
        ];
        apply(&mut replica, &rewritten, &r, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.events, 0);
        assert_eq!(report.warnings.len(), 2);
        assert!(report.warnings[0].contains("again with another position or time"));
        let file = replica.load(&case).expect("load");
        let meta: Vec<(u64, u64)> = file.events.iter().map(|e| (e.position, e.at)).collect();
        assert_eq!(meta, [(1, 500), (2, 600)]);
        let mut file = replica.load(&case).expect("load");
        file.keys.insert(1, key.clone());
        assert_eq!(replica.save(&file).expect("save").closed_at, Some(600));
    }

    #[test]
    fn an_own_event_accepted_with_an_estimated_time_is_settled_once_by_the_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let key = CaseKey::from_bytes([8; 32]);
        let case = CaseId::from_bytes([7; 16]);
        let mut file = CaseFile::new(case);
        file.keys.insert(1, key.clone());
        let e1 = event(&a, &key, case, [1; 16], 1, Some(CaseState::Open), |_| {});
        let row = crate::cases::replica::OutboxRow {
            case_id: case.as_bytes().to_vec(),
            event: e1.encode(),
            content: Vec::new(),
            written_at: 1,
        };
        replica.queue(&file, row.clone()).expect("queue");
        replica
            .accepted(&row, 4, 490, a.public_key())
            .expect("accepted");
        let r = roster(&[&a]);
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &[ev_update(4, 500, &e1, &a)],
            &r,
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert!(report.warnings.is_empty());
        assert_eq!(
            replica.view(&case).expect("view").opened.map(|o| o.0),
            Some(500)
        );
        // Settled: another time now is a rewrite.
        apply(
            &mut replica,
            &[ev_update(4, 510, &e1, &a)],
            &r,
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(replica.load(&case).expect("load").events[0].at, 500);
    }

    #[test]
    fn an_unsigned_request_replaces_no_request_and_no_case_under_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let key = CaseKey::from_bytes([8; 32]);
        let (asked, opened) = (CaseId::from_bytes([7; 16]), CaseId::from_bytes([8; 16]));
        let d = hotline_proto::DeviceId::from_bytes([5; 16]);
        let req = |p: u64, case: CaseId, digest: u8| {
            update(
                p,
                case,
                CaseUpdateKind::Requested {
                    defender: d,
                    envelope_digest: [digest; 32],
                },
            )
        };
        let e = event(&a, &key, opened, [1; 16], 1, Some(CaseState::Open), |_| {});
        let r = roster(&[&a]);
        let words = |dg: &[u8; 32], _: &DeviceId| Some(format!("words {}", dg[0]));
        let mut report = SyncReport::default();
        let first = [req(1, asked, 9), ev_update(2, 102, &e, &a)];
        apply(&mut replica, &first, &r, &words, &mut report).expect("applied");
        assert_eq!(report.requested, [asked]);
        let mut report = SyncReport::default();
        // The same request again (a second fetch): silent; another one for
        // the requested case or for an open case: ignored with a warning.
        let again = [req(1, asked, 9), req(3, asked, 6), req(4, opened, 6)];
        apply(&mut replica, &again, &r, &words, &mut report).expect("applied");
        assert!(report.requested.is_empty());
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        assert!(report.warnings[0].contains("already holds"));
        let asked_view = replica.view(&asked).expect("view");
        let request = asked_view.request.expect("request");
        assert_eq!((request.envelope_digest, request.at), ([9; 32], 101));
        assert_eq!(request.text.as_deref(), Some("words 9"));
        assert!(replica.load(&opened).expect("load").request.is_none());
    }

    #[test]
    fn an_event_is_checked_against_the_roster_of_its_version_and_its_validity_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let (a, dropped) = (staff(1), staff(2));
        let key = CaseKey::from_bytes([8; 32]);
        let case = CaseId::from_bytes([7; 16]);
        let v1 = roster(&[&a, &dropped]);
        let mut v2 = roster(&[&a]);
        v2.version = 2;
        // This device accepted v1 (a sync with nothing new), then v2.
        let mut report = SyncReport::default();
        apply(&mut replica, &[], &v1, &|_, _| None, &mut report).expect("applied");
        let opening = event(&a, &key, case, [1; 16], 1, Some(CaseState::Open), |_| {});
        let under = |id: u8, version: u64| {
            event_with(
                &dropped,
                &key,
                case,
                [id; 16],
                (1, version),
                CaseControl::default(),
                |c| c.note = "from the dropped device".into(),
            )
        };
        let mut windowed = roster(&[&a]);
        windowed.version = 3;
        windowed.entries[0].valid_until = 200;
        let late = event_with(
            &a,
            &key,
            case,
            [4; 16],
            (1, 3),
            CaseControl::default(),
            |_| {},
        );
        let updates = [
            ev_update(1, 101, &opening, &a),
            // Written under v1, which listed it: kept.
            ev_update(2, 102, &under(2, 1), &dropped),
            // Claims v2, which dropped it: refused.
            ev_update(3, 103, &under(3, 2), &dropped),
        ];
        apply(&mut replica, &updates, &v2, &|_, _| None, &mut report).expect("applied");
        assert_eq!(report.events, 2);
        assert_eq!(
            report.warnings,
            ["an event signed by a device not on the staff roster was ignored"]
        );
        // An entry no longer valid at the event's server time: refused.
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &[ev_update(4, 250, &late, &a)],
            &windowed,
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.events, 0);
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(replica.rosters().versions(), [1, 2, 3]);
        // Both rosters outlive the process.
        let replica = Replica::open(&state, &[1; 32]).expect("reopen");
        assert_eq!(replica.rosters().versions(), [1, 2, 3]);
        assert_eq!(replica.load(&case).expect("load").events.len(), 2);
    }

    #[test]
    fn updates_out_of_position_order_fold_as_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let a = staff(1);
        let key = CaseKey::from_bytes([8; 32]);
        let case = CaseId::from_bytes([7; 16]);
        let mut file = replica.load(&case).expect("load");
        file.keys.insert(1, key.clone());
        replica.save(&file).expect("save");
        let e = |n: u8, based: &[[u8; 16]]| {
            event(
                &a,
                &key,
                case,
                [n; 16],
                1,
                (n == 1).then_some(CaseState::Open),
                |c| {
                    c.changes
                        .push(set_text(case_field::SUMMARY, &format!("v{n}"), based));
                    c.note = format!("n{n}");
                },
            )
        };
        let (e1, e2, e3) = (e(1, &[]), e(2, &[[1; 16]]), e(3, &[[2; 16]]));
        let updates = [
            ev_update(1, 101, &e1, &a),
            ev_update(3, 103, &e3, &a),
            ev_update(2, 102, &e2, &a),
        ];
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &updates,
            &roster(&[&a]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.events, 3);
        let positions: Vec<u64> = replica
            .load(&case)
            .expect("load")
            .events
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(positions, [1, 2, 3]);
        let view = replica.view(&case).expect("view");
        assert_eq!(view.case_text(case_field::SUMMARY), "v3");
        let notes: Vec<&str> = view.timeline.iter().map(|t| t.what.as_str()).collect();
        assert_eq!(notes.len(), 3);
        assert!(
            notes[1].contains("n2") && notes[2].contains("n3"),
            "{notes:?}"
        );
        assert_eq!(replica.summaries()[0].summary, "v3");
    }

    #[test]
    fn another_authors_event_reusing_an_id_is_stored_and_folded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let (a, b) = (staff(1), staff(2));
        let key = CaseKey::from_bytes([8; 32]);
        let case = CaseId::from_bytes([7; 16]);
        let mut file = replica.load(&case).expect("load");
        file.keys.insert(1, key.clone());
        replica.save(&file).expect("save");
        let e1 = event(&a, &key, case, [1; 16], 1, Some(CaseState::Open), |_| {});
        let mine = event(&a, &key, case, [2; 16], 1, None, |c| c.note = "a".into());
        let theirs = event(&b, &key, case, [2; 16], 1, None, |c| c.note = "b".into());
        let updates = [
            ev_update(1, 101, &e1, &a),
            ev_update(2, 102, &mine, &a),
            ev_update(3, 103, &theirs, &b),
        ];
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &updates,
            &roster(&[&a, &b]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.events, 3);
        let whats: Vec<String> = replica
            .view(&case)
            .expect("view")
            .timeline
            .iter()
            .map(|t| t.what.clone())
            .collect();
        assert_eq!(whats, ["opened the case", "wrote: a", "wrote: b"]);
    }

    /// Issue 12, second review, Y point 6: an event holding an empty
    /// `control` (`42 00`), signed by a staff device on the roster, is not
    /// the canonical encoding of its fields: skipped with a warning (no
    /// server stores one), and the sync goes on.
    #[test]
    fn an_event_with_an_empty_control_is_skipped_with_a_warning() {
        use prost::encoding::{WireType, decode_key, decode_varint};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut replica = Replica::open(&StateDir::new(dir.path()), &[1; 32]).expect("open");
        let a = staff(1);
        let case = CaseId::from_bytes([7; 16]);
        let key = CaseKey::from_bytes([8; 32]);
        let opening = event(&a, &key, case, [1; 16], 1, Some(CaseState::Open), |_| {});
        let plain = event(&a, &key, case, [2; 16], 1, None, |c| {
            c.changes.push(set_text(case_field::SUMMARY, "x", &[]));
        });
        // The empty control (field 8) before the nonce (field 9).
        let mut rest = plain.body.as_slice();
        let at = loop {
            let before = plain.body.len() - rest.len();
            let (tag, wire) = decode_key(&mut rest).expect("a key");
            if tag > 8 {
                break before;
            }
            match wire {
                WireType::Varint => {
                    decode_varint(&mut rest).expect("a varint");
                }
                _ => {
                    let len = usize::try_from(decode_varint(&mut rest).expect("a length"))
                        .expect("a length");
                    rest = &rest[len..];
                }
            }
        };
        let mut body = plain.body[..at].to_vec();
        body.extend_from_slice(&[0x42, 0x00]);
        body.extend_from_slice(&plain.body[at..]);
        let empty = hotline_proto::case::SignedCaseEvent {
            author: a.device_id(),
            signature: a
                .sign(&[hotline_proto::case::SIGNATURE_LABEL, &[0], body.as_slice()].concat()),
            body,
        };
        assert!(empty.header_unverified().is_ok());
        let ev = |e: &hotline_proto::case::SignedCaseEvent| CaseUpdateKind::Event {
            event: e.clone(),
            author_key: a.public_key(),
        };
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &[update(1, case, ev(&opening)), update(2, case, ev(&empty))],
            &roster(&[&a]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.events, 1, "the opening only");
        assert_eq!(
            report.warnings,
            ["an event whose body is not the canonical encoding of its fields was ignored"]
        );
        assert_eq!(replica.load(&case).expect("load").events.len(), 1);
    }

    #[test]
    fn unsigned_requests_beyond_the_servers_limit_make_no_case_and_warnings_are_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let defender = hotline_proto::DeviceId::from_bytes([5; 16]);
        let mut report = SyncReport::default();
        // A server sends 40 requests of one defender device: 5 are taken
        // (the server's own limit), the others make nothing.
        let updates: Vec<CaseUpdate> = (1..=40u8)
            .map(|n| {
                update(
                    u64::from(n),
                    CaseId::from_bytes([n; 16]),
                    CaseUpdateKind::Requested {
                        defender,
                        envelope_digest: [n; 32],
                    },
                )
            })
            .collect();
        apply(
            &mut replica,
            &updates,
            &roster(&[]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.requested.len(), MAX_REQUESTS_PER_DEFENDER);
        assert_eq!(replica.summaries().len(), MAX_REQUESTS_PER_DEFENDER);
        let files = std::fs::read_dir(dir.path().join(super::super::replica::DIR))
            .expect("dir")
            .filter(|e| e.as_ref().expect("entry").file_name() != "index.sealed")
            .count();
        assert_eq!(files, MAX_REQUESTS_PER_DEFENDER, "one file per case taken");
        // 35 warnings: 20 said one by one, the rest counted on one line.
        assert_eq!(
            report.warnings.len(),
            MAX_WARNINGS + 1,
            "{:?}",
            report.warnings
        );
        assert!(report.warnings[0].contains("5 requests waiting"));
        assert_eq!(
            report.warnings[MAX_WARNINGS],
            "… and 15 more warning(s) of this sync like those above"
        );
        assert_eq!(report.left_off, 15);
        // A later sync counts what is held: still no room for that device,
        // room for another.
        let mut report = SyncReport::default();
        let other = hotline_proto::DeviceId::from_bytes([6; 16]);
        apply(
            &mut replica,
            &[
                update(
                    41,
                    CaseId::from_bytes([41; 16]),
                    CaseUpdateKind::Requested {
                        defender,
                        envelope_digest: [41; 32],
                    },
                ),
                update(
                    42,
                    CaseId::from_bytes([42; 16]),
                    CaseUpdateKind::Requested {
                        defender: other,
                        envelope_digest: [42; 32],
                    },
                ),
            ],
            &roster(&[]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.requested, [CaseId::from_bytes([42; 16])]);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    }

    #[test]
    fn keys_of_cases_not_known_make_no_case_until_a_sync_lists_the_case() {
        use hotline_proto::case::seal::CaseKey;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let me = staff(1);
        let sender = me.device_id();
        let key = CaseKey::from_bytes([3; 32]);
        let real = CaseId::from_bytes([200; 16]);
        // 500 keys of random case ids (one CASE_KEYS envelope), and the
        // key of a case this device will sync.
        let mut received: Vec<(CaseId, u32, CaseKey)> = (0..500u16)
            .map(|n| {
                let mut id = [0u8; 16];
                id[..2].copy_from_slice(&n.to_be_bytes());
                (CaseId::from_bytes(id), 1, CaseKey::from_bytes([7; 32]))
            })
            .collect();
        received.push((real, 1, key.clone()));
        let warnings = crate::cases::keys::keep_received(
            &state,
            &[1; 32],
            true,
            vec![crate::cases::keys::KeysReceived {
                sender,
                from_staff: true,
                keys: received,
                recipients: Vec::new(),
            }],
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        // No case, no case file: one file of keys waiting.
        assert!(replica.summaries().is_empty());
        let names: Vec<String> = std::fs::read_dir(dir.path().join(super::super::replica::DIR))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["pending_keys.sealed"]);
        // The server lists the case: its key joins it, and it reads.
        let opening = event(&me, &key, real, [1; 16], 1, Some(CaseState::Open), |c| {
            c.changes = vec![set_text(case_field::SUMMARY, "a family", &[])]
        });
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &[ev_update(1, 1, &opening, &me)],
            &roster(&[&me]),
            &|_, _| None,
            &mut report,
        )
        .expect("applied");
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(replica.summaries().len(), 1);
        let view = replica.view(&real).expect("view");
        assert_eq!(view.unreadable, 0);
        assert_eq!(view.case_text(case_field::SUMMARY), "a family");
        // Across a reopen too (the sync saves the index with its cursor);
        // the other keys still wait, as no case.
        replica.set_cursor(1, 0).expect("cursor");
        let replica = Replica::open(&state, &[1; 32]).expect("reopen");
        assert_eq!(replica.summaries().len(), 1);
        assert_eq!(replica.view(&real).expect("view").unreadable, 0);
    }
}
