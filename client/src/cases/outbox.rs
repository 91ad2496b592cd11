//! Writing case events and sending those that wait.
//!
//! An event is sealed under the newest key this device holds for its
//! case, saved in the replica's outbox, then sent. If it cannot be sent
//! now it waits and goes out with the next command that reaches the
//! server, the very same bytes: the server answers a resend as a
//! duplicate, which counts as delivered. An event refused because the case
//! key was rotated is sealed again under the newest key, with the same
//! content and the same event id, and sent again; one refused because
//! another key holds its epoch (a rotation race lost, a second opener)
//! opens the next epoch under a fresh key, sealed again the same way.
//! A failure that may pass keeps the event and those after it, in order;
//! any other refusal removes the event (reported) and the others go on
//! (docs/protocol.md, section 9.5).

use hotline_proto::case::content::CaseEventContent;
use hotline_proto::case::seal::{CaseKey, EventDraft, seal};
use hotline_proto::case::{CaseControl, CaseId, CaseState, EventHeader};
use hotline_proto::e2e::suite::SystemRandomness;
use hotline_proto::identity::fill_random;
use hotline_proto::message::{Request, Response};
use hotline_proto::{ErrorCode, IdentityKeyPair};
use prost::Message;

use super::model::{CaseView, EventId};
use super::replica::{CaseFile, OutboxRow, Replica};
use crate::connection::Session;
use crate::error::ClientError;

/// A fresh random 16-byte id (event, case, person, relocation).
pub fn new_id() -> Result<[u8; 16], ClientError> {
    let mut id = [0u8; 16];
    fill_random(&mut id)
        .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
    Ok(id)
}

/// Seals an event of `file`'s case under the key of the epoch this
/// device writes under ([`CaseFile::write_epoch`]: never a key received
/// for a later epoch) and saves it in the outbox. Returns its event id and
/// the case as it now reads.
pub fn write(
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
    file: &CaseFile,
    control: CaseControl,
    content: &CaseEventContent,
) -> Result<(EventId, CaseView), ClientError> {
    let event_id = new_id()?;
    let row = seal_row(
        identity,
        roster_version,
        file,
        replica.outbox(),
        event_id,
        control,
        content,
    )?;
    let view = replica.queue(file, row)?;
    Ok((event_id, view))
}

/// Seals an event opening `epoch` of `file`'s case (a rotation: the next
/// epoch after [`CaseFile::write_epoch`]) under the key this device drew
/// for it and saves it in the outbox. Returns its event id and the case as
/// it now reads.
pub fn write_opening(
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
    file: &CaseFile,
    epoch: u32,
    control: CaseControl,
    content: &CaseEventContent,
) -> Result<(EventId, CaseView), ClientError> {
    let key = file
        .keys
        .get(&epoch)
        .ok_or_else(|| ClientError::State("the key of the new epoch is not held".into()))?;
    let event_id = new_id()?;
    let row = seal_row_at(
        identity,
        roster_version,
        file,
        (epoch, key),
        event_id,
        control,
        content,
    )?;
    let view = replica.queue(file, row)?;
    Ok((event_id, view))
}

fn seal_row(
    identity: &IdentityKeyPair,
    roster_version: u64,
    file: &CaseFile,
    waiting: &[OutboxRow],
    event_id: EventId,
    control: CaseControl,
    content: &CaseEventContent,
) -> Result<OutboxRow, ClientError> {
    let (epoch, key) = file.write_key(waiting).ok_or_else(|| {
        ClientError::State(
            "this device holds no key for this case yet: another staff device must send it the case key".into(),
        )
    })?;
    seal_row_at(
        identity,
        roster_version,
        file,
        (epoch, key),
        event_id,
        control,
        content,
    )
}

fn seal_row_at(
    identity: &IdentityKeyPair,
    roster_version: u64,
    file: &CaseFile,
    (epoch, key): (u32, &CaseKey),
    event_id: EventId,
    control: CaseControl,
    content: &CaseEventContent,
) -> Result<OutboxRow, ClientError> {
    let event = seal(
        identity,
        key,
        &EventDraft {
            case_id: file.case_id,
            event_id,
            roster_version,
            epoch,
            control,
        },
        content,
        &mut SystemRandomness,
    )
    .map_err(|e| ClientError::State(e.to_string()))?;
    Ok(OutboxRow {
        case_id: file.case_id.as_bytes().to_vec(),
        event: event.encode(),
        content: content.encode_to_vec(),
        written_at: crate::unix_now(),
    })
}

/// What became of one waiting event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The server has it (`duplicate`: it had it already).
    Accepted {
        /// Its sync position.
        position: u64,
        /// A resend of an event the server had.
        duplicate: bool,
    },
    /// Refused for good: removed from the outbox.
    Refused {
        /// What the event was, in words ("a note", "closing the case").
        what: String,
        /// The reason, from the server.
        why: String,
    },
    /// This device's decline of a defender's request, not sent: another
    /// staff device took the request on at the same time (its opening
    /// holds the case's first epoch). Removed from the outbox: the case
    /// is open, and closing it is the person's call, not this device's.
    DeclineLost,
}

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Events settled, by case and event id.
    pub settled: Vec<(CaseId, EventId, Fate)>,
    /// Events still waiting.
    pub waiting: usize,
    /// Why sending stopped (the server could not be reached, or a key
    /// this device does not hold yet), if it did.
    pub stopped: Option<String>,
    /// Key epochs this flush opened with a fresh key (another key held
    /// the epoch its event was sealed under), by case: each key goes to
    /// the roster's staff devices once the event opening it was accepted
    /// (it is then in [`Flushed::settled`] as accepted).
    pub opened: Vec<(CaseId, u32, EventId)>,
    /// Events written while this device was not on the roster they named,
    /// sealed again naming the newest (by case, key epoch and event id):
    /// the keys this device sent then were ignored by staff devices that
    /// did not list it yet, so the key of each goes again once its event
    /// is accepted.
    pub relisted: Vec<(CaseId, u32, EventId)>,
    /// This device's taking on of a defender's request (its first staff
    /// event, opening the case) that found the request answered by
    /// another staff device at the same time: sealed again without its
    /// state change (by case and event id). The caller says what the
    /// other did (took it on too, or declined it).
    pub take_ons_lost: Vec<(CaseId, EventId)>,
    /// Of [`Flushed::opened`], the epochs opened because the key of the
    /// epoch before never reached this device (its opener kept it, or
    /// lost it: docs/protocol.md 9.2, "A key that never came").
    pub never_came: Vec<(CaseId, u32, EventId)>,
}

/// The most times one event is sealed again in one flush (each time, a
/// newer key epoch); beyond, it waits for the next flush.
const MAX_RESEALS: usize = 4;

/// A failure that may pass (docs/protocol.md, section 9.5): no answer
/// (the connection, the server unreachable), `UNAVAILABLE` (storage
/// full, a restart), `RATE_LIMITED`, `INTERNAL`, `FAILED_PRECONDITION`
/// naming the roster (the server holds none yet: an admin signs one), and
/// `FORBIDDEN` "not on the staff roster" ([`not_on_roster`]). The event,
/// and every event after it, wait in order.
fn transient(e: &ClientError) -> bool {
    if not_on_roster(e) {
        return true;
    }
    match e.code() {
        Some(ErrorCode::Unavailable | ErrorCode::RateLimited | ErrorCode::Internal) => true,
        Some(ErrorCode::FailedPrecondition) => {
            matches!(e, ClientError::Refused(w) if w.detail.contains("roster"))
        }
        Some(_) => false,
        None => !matches!(e, ClientError::Refused(_)),
    }
}

/// `FORBIDDEN` "this device is not on the staff roster": this device,
/// connected (so enrolled and not revoked), is not staff on the newest
/// roster the server holds: not listed yet (an admin has not signed the
/// roster adding it) or dropped from it. Either way an admin can settle
/// it, and the person keeps what they wrote: it waits.
fn not_on_roster(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused(w) if w.code == ErrorCode::Forbidden && w.detail.contains("not on the staff roster"))
}

/// What the person is told when the events wait because this device is
/// not on the roster the server holds.
pub const NOT_ON_ROSTER: &str = "this device is not on the staff roster the server holds; ask an admin to sign a roster listing it (hotline org sign-roster)";

/// An event under an epoch older than the case's: sealed again under the
/// newest key held.
fn rotated(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused(w) if w.code == ErrorCode::FailedPrecondition && w.detail.contains("rotated"))
}

/// An event under the case's current epoch with another key's commitment
/// (a rotation race lost, a second opener, a key kept to itself): this
/// device opens the next epoch with a fresh key.
fn another_key(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused(w) if w.code == ErrorCode::FailedPrecondition && w.detail.contains("open the next epoch"))
}

/// What a waiting event was, in words, for a refusal shown to the person.
pub fn describe(control: &CaseControl, content: &CaseEventContent) -> String {
    let what = match (control.state, control.ledger) {
        (_, true) => "opening the statistics ledger",
        (Some(CaseState::Open), _) => "opening (or reopening) the case",
        (Some(CaseState::Closed), _) => "closing (or declining) the case",
        (Some(CaseState::Requested), _) => "a request",
        (None, _) if control.legal_hold.is_some() => "a legal hold change",
        (None, _) if content.tombstone.is_some() => "an erased case's statistics",
        (None, _) if content.shared.is_some() => "the record of an item shared with a defender",
        (None, _) if !content.rotated_out.is_empty() => "a new case key (a rotation)",
        (None, _) if !content.changes.is_empty() => "a change of the case's fields",
        (None, _) if !content.note.is_empty() => "a note",
        (None, _) => "a case event",
    };
    what.to_owned()
}

/// What a new seal of `row`'s event makes of it.
#[derive(Debug)]
enum Resealed {
    /// Sealed again: this row replaced it in the outbox.
    Row(OutboxRow),
    /// The key it needs is not held yet: it waits.
    Waits,
    /// A decline of a request that someone took on at the same time: not
    /// sent, removed from the outbox.
    DeclineLost,
    /// The next epoch would be past the last one (`u32::MAX`): refused
    /// here, for good.
    Exhausted,
}

/// Why an event cannot be sealed into a later epoch: its case's key
/// epochs are used up (`u32::MAX`).
pub const EPOCHS_EXHAUSTED: &str =
    "the case has used every key epoch there is (4,294,967,295): no newer case key can be opened";

/// The epoch after `epoch`, if there is one (`u32::MAX` has none).
pub fn next_epoch(epoch: u32) -> Option<u32> {
    epoch.checked_add(1)
}

/// The control of an event sealed again into a later epoch. An opening
/// (epoch 1, its content's `opening` set or the ledger's, state OPEN or
/// CLOSED) finds the
/// case existing by then (another device opened it, or took its request
/// on): its state change and ledger flag go (its content stays). `None`:
/// it declined a request (CLOSED), which is not sent at all: two people
/// disagree, and the case is open. Any other event keeps its control.
fn control_after_opening(h: &EventHeader, content: &CaseEventContent) -> Option<CaseControl> {
    let mut control = h.control;
    if h.epoch == 1 && (content.opening.is_some() || control.ledger) {
        match control.state {
            Some(CaseState::Closed) => return None,
            Some(CaseState::Open) => {
                control.state = None;
                control.ledger = false;
            }
            _ => {}
        }
    }
    Some(control)
}

/// Whether a waiting event declines a defender's request (its first
/// staff event, closing it): its notice to the defender, waiting in the
/// device's outbox, must not go before the decline is accepted.
pub fn is_decline(row: &OutboxRow) -> bool {
    let (Ok(signed), Ok(content)) = (row.signed(), row.content()) else {
        return false;
    };
    signed
        .header_unverified()
        .is_ok_and(|h| control_after_opening(&h, &content).is_none())
}

/// Seals `row`'s event again for the answer `e`, if it is one that a
/// new seal answers: under the key of the next epoch (rotated), or under
/// a fresh key opening the next epoch (another key holds the epoch).
///
/// `may_open`: this device fetched its inbox and synced the cases in this
/// command; lacking the key of the epoch it must write under, it opens
/// the next epoch itself instead of waiting.
#[allow(clippy::too_many_arguments)]
fn reseal(
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
    row: &OutboxRow,
    h: &EventHeader,
    e: &ClientError,
    may_open: bool,
    out: &mut Flushed,
) -> Result<Resealed, ClientError> {
    let case = h.case_id;
    let mut file = replica.load(&case)?;
    let content = row.content()?;
    let Some(control) = control_after_opening(h, &content) else {
        replica.drop_waiting(&h.event_id)?;
        return Ok(Resealed::DeclineLost);
    };
    if file.request.is_some()
        && h.control.state == Some(CaseState::Open)
        && control.state.is_none()
        && !out.take_ons_lost.contains(&(case, h.event_id))
    {
        out.take_ons_lost.push((case, h.event_id));
    }
    if another_key(e) {
        // The server's current epoch is the event's: this device's key
        // for it is not the case's. It goes, and this device opens the
        // next epoch itself: never waiting for another device's key.
        let Some(next) = next_epoch(h.epoch) else {
            return Ok(Resealed::Exhausted);
        };
        file.drop_key(h.epoch, &h.key_commitment);
        let new = open_epoch(
            replica,
            identity,
            roster_version,
            &mut file,
            next,
            h,
            control,
            &content,
        )?;
        out.opened.push((case, next, h.event_id));
        return Ok(Resealed::Row(new));
    }
    // The server's epoch is past the event's: the newest one that events
    // held here commit to, or else the next one; never a key received for
    // an epoch beyond (docs/protocol.md, section 9.2).
    let Some(after) = next_epoch(h.epoch) else {
        return Ok(Resealed::Exhausted);
    };
    let epoch = file.newest_epoch().max(after);
    if let Some(key) = file.keys.get(&epoch) {
        let new = seal_row_at(
            identity,
            roster_version,
            &file,
            (epoch, key),
            h.event_id,
            control,
            &content,
        )?;
        replica.replace_waiting(&h.event_id, new.clone())?;
        return Ok(Resealed::Row(new));
    }
    if !may_open {
        return Ok(Resealed::Waits);
    }
    // This device synced its inbox and the cases in this command and
    // still holds no key of that epoch: whoever opened it kept its key to
    // itself (or lost it). It opens the next epoch under a fresh key,
    // which goes to the roster's staff devices once accepted: one device
    // cannot keep the others out of a case (docs/protocol.md, 9.2).
    let Some(next) = next_epoch(epoch) else {
        return Ok(Resealed::Exhausted);
    };
    let new = open_epoch(
        replica,
        identity,
        roster_version,
        &mut file,
        next,
        h,
        control,
        &content,
    )?;
    out.opened.push((case, next, h.event_id));
    out.never_came.push((case, next, h.event_id));
    Ok(Resealed::Row(new))
}

/// Opens epoch `next` of `file`'s case under a fresh key this device
/// draws, seals the waiting event `h` again under it (same event id and
/// content), and keeps both: the key on disk before the event that needs
/// it.
#[allow(clippy::too_many_arguments)]
fn open_epoch(
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
    file: &mut CaseFile,
    next: u32,
    h: &EventHeader,
    control: CaseControl,
    content: &CaseEventContent,
) -> Result<OutboxRow, ClientError> {
    let fresh = CaseKey::generate(&mut SystemRandomness);
    file.take_own_key(next, fresh.clone());
    let new = seal_row_at(
        identity,
        roster_version,
        file,
        (next, &fresh),
        h.event_id,
        control,
        content,
    )?;
    replica.save(file)?;
    replica.replace_waiting(&h.event_id, new.clone())?;
    Ok(new)
}

/// `row`'s event sealed again naming `roster_version` (same event id,
/// epoch, key, control and content), replacing it in the outbox; `None`
/// if its key is not held (it goes as it is).
fn renamed_roster(
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
    row: &OutboxRow,
    h: &EventHeader,
) -> Result<Option<OutboxRow>, ClientError> {
    let file = replica.load(&h.case_id)?;
    let Some(key) = file
        .key_for(h.epoch, &h.key_commitment)
        .filter(|k| k.commitment(&h.case_id, h.epoch) == h.key_commitment)
    else {
        return Ok(None);
    };
    let new = seal_row_at(
        identity,
        roster_version,
        &file,
        (h.epoch, &key),
        h.event_id,
        h.control,
        &row.content()?,
    )?;
    replica.replace_waiting(&h.event_id, new.clone())?;
    Ok(Some(new))
}

async fn append(session: &Session, row: &OutboxRow) -> Result<(u64, bool), ClientError> {
    match session
        .request(&Request::AppendCaseEvent(row.signed()?))
        .await?
    {
        Response::CaseEventAccepted {
            position,
            duplicate,
        } => Ok((position, duplicate)),
        Response::Error(e) => Err(ClientError::Refused(e)),
        _ => Err(ClientError::Protocol("an answer of the wrong kind".into())),
    }
}

/// Sends every waiting event, oldest first. A failure that may pass
/// ([`transient`]) stops the flush: the event and those after it wait, in
/// order. An event refused under a key that is not the case's newest is
/// sealed again and resent ([`reseal`]). Any other refusal is for good:
/// the event leaves the outbox, is reported ([`Fate::Refused`]), and the
/// flush goes on with the next.
///
/// An event written while this device was not on the roster it names
/// (`unlisted(version)`: a roster this device holds of that version does
/// not list it as staff, or it holds none of it), with a newer roster
/// `roster_version` out since, is sealed again naming that roster (same
/// event id, key and content): readers check the author against the
/// roster an event names, and would ignore it.
///
/// An event that waits for a key (or was sealed again too often) holds
/// the events of its own case after it, never those of other cases.
/// `may_open`: this device fetched its inbox and synced the cases in this
/// command ([`reseal`]).
pub async fn flush(
    session: &Session,
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
    unlisted: &dyn Fn(u64) -> bool,
    may_open: bool,
) -> Result<Flushed, ClientError> {
    let mut out = Flushed::default();
    let mut declines_lost: Vec<CaseId> = Vec::new();
    let rows: Vec<OutboxRow> = replica.outbox().to_vec();
    let mut rows = rows.into_iter();
    // Cases whose events wait behind one that waits for a key.
    let mut held: std::collections::BTreeSet<Vec<u8>> = Default::default();
    'rows: while let Some(mut row) = rows.next() {
        if held.contains(&row.case_id) {
            out.waiting += 1;
            continue;
        }
        let mut header = row
            .signed()?
            .header_unverified()
            .map_err(|_| ClientError::State("the case outbox is damaged".into()))?;
        if header.roster_version < roster_version
            && unlisted(header.roster_version)
            && !unlisted(roster_version)
            && let Some(new) = renamed_roster(replica, identity, roster_version, &row, &header)?
        {
            row = new;
            header = row
                .signed()?
                .header_unverified()
                .map_err(|_| ClientError::State("the case outbox is damaged".into()))?;
            out.relisted
                .push((header.case_id, header.epoch, header.event_id));
        }
        let case = header.case_id;
        // The notice of a decline that lost its race (recorded as a
        // `shared` event behind it): not sent either, as the decline.
        if declines_lost.contains(&case) && row.content()?.shared.is_some() {
            replica.drop_waiting(&header.event_id)?;
            continue;
        }
        let mut result = append(session, &row).await;
        let mut reseals = 0;
        while let Err(e) = &result
            && (rotated(e) || another_key(e))
        {
            if reseals == MAX_RESEALS {
                out.stopped = Some(format!(
                    "the case key changed {MAX_RESEALS} times while this device sent one event: it waits for the next command"
                ));
                break;
            }
            reseals += 1;
            let new = match reseal(
                replica,
                identity,
                roster_version,
                &row,
                &header,
                e,
                may_open,
                &mut out,
            )? {
                Resealed::Row(new) => new,
                Resealed::Waits => {
                    out.stopped = Some(
                        "the case key was rotated and this device does not hold the new key yet: the event waits".into(),
                    );
                    break;
                }
                Resealed::Exhausted => {
                    let what = describe(&header.control, &row.content()?);
                    replica.drop_waiting(&header.event_id)?;
                    out.settled.push((
                        case,
                        header.event_id,
                        Fate::Refused {
                            what,
                            why: EPOCHS_EXHAUSTED.into(),
                        },
                    ));
                    continue 'rows;
                }
                Resealed::DeclineLost => {
                    out.settled.push((case, header.event_id, Fate::DeclineLost));
                    break;
                }
            };
            row = new;
            header = row
                .signed()?
                .header_unverified()
                .map_err(|_| ClientError::State("the case outbox is damaged".into()))?;
            result = append(session, &row).await;
        }
        if let Err(e) = &result
            && (rotated(e) || another_key(e))
        {
            // The loop above ended on a decline that lost (not sent, and
            // settled: its notice is not sent either), or on an event that
            // waits: it holds its own case's events after it, and the
            // others go on.
            if out
                .settled
                .iter()
                .any(|(_, id, f)| *id == header.event_id && matches!(f, Fate::DeclineLost))
            {
                declines_lost.push(case);
            } else if !out.settled.iter().any(|(_, id, _)| *id == header.event_id) {
                held.insert(row.case_id.clone());
                out.waiting += 1;
            }
            continue;
        }
        match result {
            Ok((position, duplicate)) => {
                replica.accepted(&row, position, session.server_time(), identity.public_key())?;
                out.settled.push((
                    case,
                    header.event_id,
                    Fate::Accepted {
                        position,
                        duplicate,
                    },
                ));
            }
            Err(e) if transient(&e) => {
                out.stopped = Some(if not_on_roster(&e) {
                    NOT_ON_ROSTER.to_owned()
                } else {
                    e.to_string()
                });
                out.waiting += 1 + rows.len();
                return Ok(out);
            }
            Err(e) => {
                let what = describe(&header.control, &row.content()?);
                replica.drop_waiting(&header.event_id)?;
                out.settled.push((
                    case,
                    header.event_id,
                    Fate::Refused {
                        what,
                        why: e.to_string(),
                    },
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::fields::case_field;
    use crate::cases::testing::{set_text, staff};
    use crate::state::StateDir;
    use hotline_proto::WireError;
    use hotline_proto::case::CaseState;
    use hotline_proto::case::seal::CaseKey;

    fn setup() -> (tempfile::TempDir, Replica, CaseFile) {
        let dir = tempfile::tempdir().expect("tempdir");
        let replica = Replica::open(&StateDir::new(dir.path()), &[1; 32]).expect("open");
        let mut file = CaseFile::new(CaseId::from_bytes([7; 16]));
        file.keys.insert(1, CaseKey::from_bytes([2; 32]));
        (dir, replica, file)
    }

    fn content(summary: &str) -> CaseEventContent {
        CaseEventContent {
            timestamp: 1,
            changes: vec![set_text(case_field::SUMMARY, summary, &[])],
            ..Default::default()
        }
    }

    #[test]
    fn a_written_event_waits_in_the_outbox_and_reads_in_the_case_before_it_is_sent() {
        let (_dir, mut replica, file) = setup();
        let me = staff(1);
        let control = CaseControl {
            state: Some(CaseState::Open),
            ..CaseControl::default()
        };
        let (id, view) =
            write(&mut replica, &me, 1, &file, control, &content("offline")).expect("written");
        assert_eq!(view.case_text(case_field::SUMMARY), "offline");
        assert!(view.timeline[0].waiting);
        assert_eq!(replica.outbox().len(), 1);
        assert_eq!(replica.summaries()[0].waiting, 1);
        // Accepted: it moves into the case's events, and stays there.
        let row = replica.outbox()[0].clone();
        replica
            .accepted(&row, 12, 99, me.public_key())
            .expect("accepted");
        assert!(replica.outbox().is_empty());
        let held = replica.load(&file.case_id).expect("load");
        assert_eq!(held.events.len(), 1);
        assert_eq!(held.events[0].position, 12);
        let v = replica.view(&file.case_id).expect("view");
        assert!(v.has(&id));
        assert!(!v.timeline[0].waiting);
        assert_eq!(v.case_text(case_field::SUMMARY), "offline");
        assert_eq!(replica.summaries()[0].waiting, 0);
    }

    #[test]
    fn a_reseal_under_a_newer_key_keeps_the_event_id_and_the_content() {
        let (_dir, mut replica, mut file) = setup();
        let me = staff(1);
        let (id, _) = write(
            &mut replica,
            &me,
            1,
            &file,
            CaseControl::default(),
            &content("x"),
        )
        .expect("written");
        file.keys.insert(2, CaseKey::from_bytes([3; 32]));
        let old = replica.outbox()[0].clone();
        let row = seal_row_at(
            &me,
            1,
            &file,
            (2, &CaseKey::from_bytes([3; 32])),
            id,
            CaseControl::default(),
            &old.content().expect("content"),
        )
        .expect("sealed");
        replica.replace_waiting(&id, row).expect("replaced");
        assert_eq!(replica.outbox().len(), 1);
        let h = replica.outbox()[0]
            .signed()
            .expect("signed")
            .header_unverified()
            .expect("header");
        assert_eq!((h.event_id, h.epoch), (id, 2));
        let (_, c) = replica.outbox()[0]
            .signed()
            .expect("signed")
            .open(&me.public_key(), |_, e| file.keys.get(&e).cloned())
            .expect("opens under the new key");
        assert_eq!(c, content("x"));
    }

    #[test]
    fn failures_that_may_pass_keep_the_event_and_every_other_refusal_removes_it() {
        let refused =
            |code, detail: &str| ClientError::Refused(WireError::new(code, detail.to_owned()));
        // Sealed again: under the newest key, or under a fresh next epoch.
        let rotated_away = refused(
            ErrorCode::FailedPrecondition,
            "the case key was rotated: seal again under the newest key",
        );
        assert!(rotated(&rotated_away) && !another_key(&rotated_away));
        let lost = refused(
            ErrorCode::FailedPrecondition,
            "another key holds this epoch: open the next epoch",
        );
        assert!(another_key(&lost) && !rotated(&lost));
        // May pass: they wait, with everything after them.
        for e in [
            refused(ErrorCode::Unavailable, "storage full"),
            refused(ErrorCode::RateLimited, "slow down"),
            refused(ErrorCode::Internal, "store damaged"),
            refused(
                ErrorCode::FailedPrecondition,
                "no staff roster is stored yet: cases need one; ask an admin to sign a roster (hotline org sign-roster)",
            ),
            // Enrolled, not yet on a signed roster (or dropped from it):
            // an admin settles it, and the person keeps their writes.
            refused(
                ErrorCode::Forbidden,
                "this device is not on the staff roster",
            ),
            ClientError::ConnectionLost("gone".into()),
        ] {
            assert!(transient(&e), "{e}");
        }
        // For good: each leaves the outbox and the flush goes on.
        for (code, detail) in [
            (ErrorCode::FailedPrecondition, "this case was erased"),
            (ErrorCode::FailedPrecondition, "the case is open already"),
            (ErrorCode::FailedPrecondition, "the case is closed already"),
            (
                ErrorCode::FailedPrecondition,
                "the statistics ledger is never closed",
            ),
            (
                ErrorCode::FailedPrecondition,
                "the first staff event of a requested case must open or decline it (epoch 1, state open or closed)",
            ),
            (ErrorCode::InvalidArgument, "the event's epoch skips one"),
            (
                ErrorCode::Forbidden,
                "only coordinators and admins set a legal hold",
            ),
            (ErrorCode::NotFound, "no such case"),
            (ErrorCode::Malformed, "no"),
            (ErrorCode::BadSignature, "no"),
        ] {
            let e = refused(code, detail);
            assert!(
                !transient(&e) && !rotated(&e) && !another_key(&e),
                "{code:?} {detail}"
            );
        }
    }

    fn header(row: &OutboxRow) -> EventHeader {
        row.signed()
            .expect("signed")
            .header_unverified()
            .expect("header")
    }

    #[test]
    fn a_key_received_for_a_far_off_epoch_is_never_written_under() {
        let (_dir, mut replica, file) = setup();
        replica.save(&file).expect("save");
        let me = staff(1);
        // A hostile staff device sends a key for epoch 9, no event of it.
        replica
            .add_key(
                &file.case_id,
                9,
                CaseKey::from_bytes([9; 32]),
                hotline_proto::DeviceId::from_bytes([9; 16]),
            )
            .expect("kept as a key of epoch 9");
        let held = replica.load(&file.case_id).expect("load");
        assert_eq!(held.newest_key().map(|(e, _)| e), Some(9));
        write(
            &mut replica,
            &me,
            1,
            &held,
            CaseControl::default(),
            &content("x"),
        )
        .expect("written");
        assert_eq!(header(&replica.outbox()[0]).epoch, 1);
        // Answered "rotated" (the server's epoch is past 1): sealed again
        // under epoch 2's key, never epoch 9's; without epoch 2's, it waits.
        let rotated_away = ClientError::Refused(WireError::new(
            ErrorCode::FailedPrecondition,
            "the case key was rotated: seal again under the newest key".to_owned(),
        ));
        let row = replica.outbox()[0].clone();
        let mut out = Flushed::default();
        let r = reseal(
            &mut replica,
            &me,
            1,
            &row,
            &header(&row),
            &rotated_away,
            false,
            &mut out,
        )
        .expect("resealed");
        assert!(matches!(r, Resealed::Waits), "{r:?}");
        let mut held = replica.load(&file.case_id).expect("load");
        held.keys.insert(2, CaseKey::from_bytes([4; 32]));
        replica.save(&held).expect("save");
        let Resealed::Row(new) = reseal(
            &mut replica,
            &me,
            1,
            &row,
            &header(&row),
            &rotated_away,
            false,
            &mut out,
        )
        .expect("resealed") else {
            panic!("a new seal");
        };
        assert_eq!(header(&new).epoch, 2);
        // The next write follows the waiting event's epoch.
        let held = replica.load(&file.case_id).expect("load");
        write(
            &mut replica,
            &me,
            1,
            &held,
            CaseControl::default(),
            &content("y"),
        )
        .expect("written");
        assert_eq!(header(&replica.outbox()[1]).epoch, 2);
    }

    #[test]
    fn a_decline_sealed_again_is_not_sent_and_a_take_on_loses_only_its_state() {
        let (_dir, mut replica, file) = setup();
        let me = staff(1);
        let mut answer = content("taken or declined");
        answer.opening = Some(hotline_proto::case::content::CaseOpening {
            request_digest: vec![5; 32].into(),
            ..Default::default()
        });
        let lost = ClientError::Refused(WireError::new(
            ErrorCode::FailedPrecondition,
            "another key holds this epoch: open the next epoch".to_owned(),
        ));
        let closed = CaseControl {
            state: Some(CaseState::Closed),
            ..CaseControl::default()
        };
        write(&mut replica, &me, 1, &file, closed, &answer).expect("written");
        let row = replica.outbox()[0].clone();
        let mut out = Flushed::default();
        let r = reseal(
            &mut replica,
            &me,
            1,
            &row,
            &header(&row),
            &lost,
            false,
            &mut out,
        )
        .expect("resealed");
        assert!(matches!(r, Resealed::DeclineLost), "{r:?}");
        assert!(replica.outbox().is_empty(), "the decline is not sent");
        assert!(out.opened.is_empty());
        // A take-on that lost goes again without its state change.
        let open = CaseControl {
            state: Some(CaseState::Open),
            ..CaseControl::default()
        };
        write(&mut replica, &me, 1, &file, open, &answer).expect("written");
        let row = replica.outbox()[0].clone();
        let Resealed::Row(new) = reseal(
            &mut replica,
            &me,
            1,
            &row,
            &header(&row),
            &lost,
            false,
            &mut out,
        )
        .expect("resealed") else {
            panic!("a new seal");
        };
        assert_eq!(
            (header(&new).epoch, header(&new).control),
            (2, CaseControl::default())
        );
        // A close of epoch 1 that is not an opening keeps its state.
        let h = EventHeader {
            control: closed,
            ..header(&new)
        };
        let plain = content("close");
        assert_eq!(
            control_after_opening(&EventHeader { epoch: 1, ..h }, &plain),
            Some(closed)
        );
    }

    #[test]
    fn a_lost_opening_opens_the_next_epoch_under_a_fresh_key_without_its_opening_control() {
        let (_dir, mut replica, file) = setup();
        let me = staff(1);
        let control = CaseControl {
            state: Some(CaseState::Open),
            ledger: true,
            ..CaseControl::default()
        };
        let (id, _) =
            write(&mut replica, &me, 1, &file, control, &content("first")).expect("written");
        let row = replica.outbox()[0].clone();
        let h = row
            .signed()
            .expect("signed")
            .header_unverified()
            .expect("header");
        let lost = ClientError::Refused(WireError::new(
            ErrorCode::FailedPrecondition,
            "another key holds this epoch: open the next epoch".to_owned(),
        ));
        let mut out = Flushed::default();
        let Resealed::Row(new) =
            reseal(&mut replica, &me, 1, &row, &h, &lost, false, &mut out).expect("resealed")
        else {
            panic!("a new seal");
        };
        let nh = new
            .signed()
            .expect("signed")
            .header_unverified()
            .expect("header");
        assert_eq!((nh.event_id, nh.epoch), (id, 2));
        assert_eq!(nh.control, CaseControl::default());
        assert_eq!(out.opened, [(file.case_id, 2, id)]);
        // Its own key for epoch 1 is gone; epoch 2's is held and opens it,
        // with the same content.
        let held = replica.load(&file.case_id).expect("load");
        assert!(!held.keys.contains_key(&1));
        let (_, c) = new
            .signed()
            .expect("signed")
            .open(&me.public_key(), |_, e| held.keys.get(&e).cloned())
            .expect("opens under the new key");
        assert_eq!(c, content("first"));
        assert_eq!(replica.outbox(), [new]);
        // A later event of the current epoch keeps its control.
        let hold = CaseControl {
            state: Some(CaseState::Closed),
            ..CaseControl::default()
        };
        let mut file2 = held.clone();
        file2.keys.insert(3, CaseKey::from_bytes([9; 32]));
        // (Epoch 3 opened by this device: written under it.)
        let (_, _) =
            write_opening(&mut replica, &me, 1, &file2, 3, hold, &content("x")).expect("written");
        // A key received for epoch 4 (another device's rotation in
        // flight) stays as a candidate once this device opens epoch 4.
        let mut file3 = replica.load(&file.case_id).expect("load");
        file3.keys.insert(4, CaseKey::from_bytes([10; 32]));
        replica.save(&file3).expect("save");
        let row = replica.outbox()[1].clone();
        let h = row
            .signed()
            .expect("signed")
            .header_unverified()
            .expect("header");
        let Resealed::Row(new) =
            reseal(&mut replica, &me, 1, &row, &h, &lost, false, &mut out).expect("resealed")
        else {
            panic!("a new seal");
        };
        let nh = new
            .signed()
            .expect("signed")
            .header_unverified()
            .expect("header");
        assert_eq!((nh.epoch, nh.control), (4, hold));
        let held = replica.load(&file.case_id).expect("load");
        assert_eq!(held.keys_of(4).len(), 2);
        assert_eq!(held.keys_of(4)[1], &CaseKey::from_bytes([10; 32]));
        assert!(!held.keys.contains_key(&3));
    }

    #[test]
    fn no_epoch_is_opened_past_the_last_one() {
        assert_eq!(next_epoch(7), Some(8));
        assert_eq!(next_epoch(u32::MAX), None);
        let (_dir, mut replica, mut file) = setup();
        let me = staff(1);
        file.keys.insert(u32::MAX, CaseKey::from_bytes([5; 32]));
        write_opening(
            &mut replica,
            &me,
            1,
            &file,
            u32::MAX,
            CaseControl::default(),
            &content("last"),
        )
        .expect("written");
        let row = replica.outbox()[0].clone();
        let mut out = Flushed::default();
        for answer in [
            "another key holds this epoch: open the next epoch",
            "the case key was rotated: seal again under the newest key",
        ] {
            let e = ClientError::Refused(WireError::new(
                ErrorCode::FailedPrecondition,
                answer.to_owned(),
            ));
            // Never wrapped to epoch 0 nor a panic: refused here.
            let r = reseal(
                &mut replica,
                &me,
                1,
                &row,
                &header(&row),
                &e,
                true,
                &mut out,
            )
            .expect("answered");
            assert!(matches!(r, Resealed::Exhausted), "{answer}: {r:?}");
        }
        assert!(out.opened.is_empty());
    }
}
