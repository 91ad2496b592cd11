//! Writing case events and sending those that wait.
//!
//! An event is sealed under the newest key this device holds for its
//! case, saved in the replica's outbox, then sent. If it cannot be sent
//! now it waits and goes out with the next command that reaches the
//! server, the very same bytes: the server answers a resend as a
//! duplicate, which counts as delivered. An event refused because the case
//! key was rotated is sealed again under the newest key, with the same
//! content and the same event id, and sent again.

use hotline_proto::case::content::CaseEventContent;
use hotline_proto::case::seal::{EventDraft, seal};
use hotline_proto::case::{CaseControl, CaseId};
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

/// Seals an event of `file`'s case under its newest key and saves it in
/// the outbox. Returns its event id and the case as it now reads.
pub fn write(
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
    file: &CaseFile,
    control: CaseControl,
    content: &CaseEventContent,
) -> Result<(EventId, CaseView), ClientError> {
    let event_id = new_id()?;
    let row = seal_row(identity, roster_version, file, event_id, control, content)?;
    let view = replica.queue(file, row)?;
    Ok((event_id, view))
}

fn seal_row(
    identity: &IdentityKeyPair,
    roster_version: u64,
    file: &CaseFile,
    event_id: EventId,
    control: CaseControl,
    content: &CaseEventContent,
) -> Result<OutboxRow, ClientError> {
    let (epoch, key) = file.newest_key().ok_or_else(|| {
        ClientError::State(
            "this device holds no key for this case yet: another staff device must send it the case key".into(),
        )
    })?;
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
    /// Refused for good: removed from the outbox (the reason, from the
    /// server).
    Refused(String),
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
}

fn transient(e: &ClientError) -> bool {
    match e.code() {
        Some(ErrorCode::Unavailable | ErrorCode::RateLimited | ErrorCode::Internal) => true,
        Some(_) => false,
        None => !matches!(e, ClientError::Refused(_)),
    }
}

/// A refusal that a later attempt may not get: the server has no roster
/// yet, or does not serve cases yet. Only a refusal naming the case as
/// erased, or one of another code (the event is wrong, or this device may
/// not write it), removes the event.
fn may_pass_later(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused(w) if w.code == ErrorCode::FailedPrecondition && !w.detail.contains("erased"))
}

fn rotated(e: &ClientError) -> bool {
    matches!(e, ClientError::Refused(w) if w.code == ErrorCode::FailedPrecondition && w.detail.contains("rotated"))
}

/// An event of epoch 2 or more refused as sealed under a key that is not
/// the case's: another staff device opened that epoch first (two
/// rotations at once). It waits for the winner's key and is sealed again.
fn lost_rotation(e: &ClientError, epoch: u32) -> bool {
    epoch > 1
        && matches!(e, ClientError::Refused(w) if w.code == ErrorCode::InvalidArgument && w.detail.contains("not the case's"))
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

/// Sends every waiting event, oldest first. Stops at the first failure
/// that may pass (the connection, the server's storage, a precondition
/// such as the roster): the event and those after it wait. An event
/// refused for good (malformed, forbidden, its case erased) is removed
/// and reported.
pub async fn flush(
    session: &Session,
    replica: &mut Replica,
    identity: &IdentityKeyPair,
    roster_version: u64,
) -> Result<Flushed, ClientError> {
    let mut out = Flushed::default();
    let rows: Vec<OutboxRow> = replica.outbox().to_vec();
    let mut rows = rows.into_iter();
    while let Some(mut row) = rows.next() {
        let signed = row.signed()?;
        let header = signed
            .header_unverified()
            .map_err(|_| ClientError::State("the case outbox is damaged".into()))?;
        let case = header.case_id;
        let mut result = append(session, &row).await;
        if let Err(e) = &result
            && (rotated(e) || lost_rotation(e, header.epoch))
        {
            let file = replica.load(&case)?;
            // A newer key, or (a rotation lost) the winner's key for the
            // same epoch, taken in place of this device's.
            if file.newest_key().is_some_and(|(epoch, key)| {
                epoch > header.epoch
                    || (epoch == header.epoch
                        && key.commitment(&case, epoch) != header.key_commitment)
            }) {
                row = seal_row(
                    identity,
                    roster_version,
                    &file,
                    header.event_id,
                    header.control,
                    &row.content()?,
                )?;
                replica.replace_waiting(&header.event_id, row.clone())?;
                result = append(session, &row).await;
            } else {
                out.stopped = Some(
                    "the case key was rotated and this device does not hold the new key yet: the event waits".into(),
                );
                out.waiting = 1 + rows.len();
                return Ok(out);
            }
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
            Err(e) if transient(&e) || may_pass_later(&e) => {
                out.stopped = Some(e.to_string());
                out.waiting = 1 + rows.len();
                return Ok(out);
            }
            Err(e) => {
                replica.drop_waiting(&header.event_id)?;
                out.settled
                    .push((case, header.event_id, Fate::Refused(e.to_string())));
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
        let row = seal_row(
            &me,
            1,
            &file,
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
    fn refusals_that_may_pass_keep_the_event_and_the_others_remove_it() {
        let refused =
            |code, detail: &str| ClientError::Refused(WireError::new(code, detail.to_owned()));
        let rotated_away = refused(
            ErrorCode::FailedPrecondition,
            "the case key was rotated: seal again under the newest key",
        );
        assert!(rotated(&rotated_away));
        let no_roster = refused(ErrorCode::FailedPrecondition, "no staff roster yet");
        assert!(may_pass_later(&no_roster) && !transient(&no_roster));
        let erased = refused(ErrorCode::FailedPrecondition, "this case was erased");
        assert!(!may_pass_later(&erased) && !transient(&erased));
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
        ] {
            let e = refused(code, "no");
            assert!(!may_pass_later(&e) && !transient(&e), "{code:?}");
        }
        assert!(transient(&refused(ErrorCode::Unavailable, "storage full")));
        assert!(transient(&ClientError::ConnectionLost("gone".into())));
    }
}
