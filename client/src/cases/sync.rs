//! Fetching case updates (`sync_cases`) and applying them to the replica
//! with the readers' checks of docs/protocol.md, section 9.5.
//!
//! An event is stored only if its signature verifies under the identity
//! key the server sent AND the newest roster this device holds lists that
//! key for the author as a staff device; anything else is skipped with a
//! warning and the sync goes on. Events are stored still sealed: those
//! this device holds no key for yet are kept and counted.

use std::collections::{BTreeMap, BTreeSet};

use hotline_proto::case::seal::CaseEventError;
use hotline_proto::case::{CaseId, CaseSync, CaseUpdate, CaseUpdateKind};
use hotline_proto::e2e::roster::Roster;
use hotline_proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN};
use hotline_proto::message::{Request, Response};
use tokio::time::timeout;

use super::model::RequestInfo;
use super::replica::{CaseFile, Replica, StoredEvent};
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
    /// Cases whose erasure was asked for (waiting for a second staff
    /// member).
    pub erasure_requested: Vec<CaseId>,
    /// Updates skipped, in words (never their content).
    pub warnings: Vec<String>,
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

/// Fetches every update after the replica's cursor (asking again while
/// the server says there are more) and applies them.
///
/// Each case file changed is written once, with the cursor after it, at
/// the end (or each time the files held pass [`WRITE_AFTER_BYTES`]): a
/// stop before that leaves the cursor where it was, and the next sync
/// fetches the same updates again.
///
/// `roster` is the newest roster this device holds; `request_text` finds
/// the words of a defender's request by its envelope digest, if this
/// device holds the envelope.
pub async fn sync_cases(
    session: &Session,
    replica: &mut Replica,
    roster: &Roster,
    request_text: &dyn Fn(&[u8; 32]) -> Option<String>,
) -> Result<SyncReport, ClientError> {
    let mut report = SyncReport::default();
    let mut files: BTreeMap<CaseId, CaseFile> = BTreeMap::new();
    let mut cursor = replica.cursor();
    let mut retention = replica.retention_secs().unwrap_or(0);
    // Bounded: each round moves the cursor forward or stops.
    for _ in 0..10_000 {
        let after = cursor;
        let mut more = false;
        // Each frame applied as it comes, while the server reads the next.
        let fetched = fetch_each(session, after, |f| {
            apply_held(
                replica,
                &f.updates,
                roster,
                request_text,
                &mut report,
                &mut files,
            )?;
            more = f.more;
            cursor = cursor.max(f.cursor);
            retention = f.retention_secs;
            Ok(())
        })
        .await;
        if let Err(e) = fetched {
            // What was applied but not saved must not stay in this run's
            // folds: the next sync fetches it again.
            for case in files.keys() {
                replica.unfold(case);
            }
            return Err(e);
        }
        let held: usize = files
            .values()
            .flat_map(|f| &f.events)
            .map(|e| e.event.body.len())
            .sum();
        if held > WRITE_AFTER_BYTES {
            replica.save_all(files.values())?;
            files.clear();
            replica.set_cursor(cursor, retention)?;
        }
        if !more || cursor <= after {
            break;
        }
    }
    replica.save_all(files.values())?;
    replica.set_cursor(cursor, retention)?;
    Ok(report)
}

/// Whether `roster` lists `key` as the identity key of `author`, a staff
/// device.
fn on_staff_roster(
    roster: &Roster,
    author: &hotline_proto::DeviceId,
    key: &hotline_proto::IdentityPublicKey,
) -> bool {
    roster
        .entries
        .iter()
        .any(|e| e.device_id == *author && e.role.is_staff() && e.identity_key == *key)
}

/// Applies updates to the replica (each case's file written once).
pub fn apply(
    replica: &mut Replica,
    updates: &[CaseUpdate],
    roster: &Roster,
    request_text: &dyn Fn(&[u8; 32]) -> Option<String>,
    report: &mut SyncReport,
) -> Result<(), ClientError> {
    let mut files: BTreeMap<CaseId, CaseFile> = BTreeMap::new();
    apply_held(replica, updates, roster, request_text, report, &mut files)?;
    replica.save_all(files.values())
}

/// Applies updates to the case files in `files` (loaded from the replica
/// when first touched), without writing them: the caller saves them
/// ([`Replica::save_all`]) before it moves the cursor. An erasure deletes
/// at once.
fn apply_held(
    replica: &mut Replica,
    updates: &[CaseUpdate],
    roster: &Roster,
    request_text: &dyn Fn(&[u8; 32]) -> Option<String>,
    report: &mut SyncReport,
    files: &mut BTreeMap<CaseId, CaseFile>,
) -> Result<(), ClientError> {
    for u in updates {
        if replica.is_erased(&u.case_id) {
            continue;
        }
        match &u.kind {
            CaseUpdateKind::Erased { .. } => {
                files.remove(&u.case_id);
                replica.erase(&u.case_id)?;
                report.changed.remove(&u.case_id);
                report.erased.push(u.case_id);
                continue;
            }
            CaseUpdateKind::ErasureRequested { .. } => {
                report.erasure_requested.push(u.case_id);
                continue;
            }
            CaseUpdateKind::Requested { .. } | CaseUpdateKind::Event { .. } => {}
        }
        let file = match files.entry(u.case_id) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(replica.load(&u.case_id)?),
        };
        match &u.kind {
            CaseUpdateKind::Requested {
                defender,
                envelope_digest,
            } => {
                if file.request.is_none() {
                    report.requested.push(u.case_id);
                }
                replica.unfold(&u.case_id);
                file.request = Some(RequestInfo {
                    defender: *defender,
                    at: u.at,
                    envelope_digest: *envelope_digest,
                    text: request_text(envelope_digest),
                });
                report.changed.insert(u.case_id);
            }
            CaseUpdateKind::Event { event, author_key } => {
                // The header first, then one signature check (with the
                // decryption, when the key is held), then the roster.
                match event.header_unverified() {
                    Err(_) => {
                        report
                            .warnings
                            .push("an event that cannot be read was ignored".into());
                        continue;
                    }
                    Ok(h) if h.case_id != u.case_id => {
                        report
                            .warnings
                            .push("an event filed under another case was ignored".into());
                        continue;
                    }
                    Ok(_) => {}
                }
                let opened = event.open(author_key, |_, epoch| file.keys.get(&epoch).cloned());
                let signed = match &opened {
                    Err(CaseEventError::BadSignature) => false,
                    Err(CaseEventError::NoKey) => event.verify_signature(author_key).is_ok(),
                    _ => true,
                };
                if !signed {
                    report
                        .warnings
                        .push("an event whose signature does not verify was ignored".into());
                    continue;
                }
                if !on_staff_roster(roster, &event.author, author_key) {
                    report.warnings.push(
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
                replica.prepare(file);
                let in_order = file
                    .events
                    .last()
                    .is_none_or(|last| last.position < u.position);
                if file.add(stored.clone()) {
                    report.events += 1;
                    if in_order {
                        replica.fold_added(&stored, &u.case_id, opened);
                    } else {
                        file.events.sort_by_key(|e| e.position);
                        replica.unfold(&u.case_id);
                    }
                } else {
                    // A replay, or this device's own event coming back
                    // with its final position and time: fold it again.
                    file.events.sort_by_key(|e| e.position);
                    replica.unfold(&u.case_id);
                }
                report.changed.insert(u.case_id);
            }
            CaseUpdateKind::Erased { .. } | CaseUpdateKind::ErasureRequested { .. } => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::fields::case_field;
    use crate::cases::testing::{event, set_text, staff};
    use crate::state::StateDir;
    use hotline_proto::Role;
    use hotline_proto::case::CaseState;
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
            // A replay.
            update(5, case, ev(&e1, &a)),
        ];
        let mut report = SyncReport::default();
        apply(
            &mut replica,
            &updates,
            &roster(&[&a, &b]),
            &|_| None,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.events, 2);
        assert_eq!(
            report.warnings,
            [
                "an event signed by a device not on the staff roster was ignored",
                "an event whose signature does not verify was ignored"
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
            apply_held(
                &mut replica,
                &frame,
                &roster(&[&a]),
                &|_| None,
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
    fn a_request_shows_its_text_and_an_erasure_deletes_the_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path());
        let mut replica = Replica::open(&state, &[1; 32]).expect("open");
        let case = CaseId::from_bytes([7; 16]);
        let defender = hotline_proto::DeviceId::from_bytes([5; 16]);
        let mut report = SyncReport::default();
        let lookup = |d: &[u8; 32]| (d == &[9; 32]).then(|| "we must leave".to_owned());
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
                },
            )],
            &roster(&[]),
            &lookup,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.erased, [case]);
        assert!(replica.summaries().is_empty());
        assert!(replica.load(&case).expect("load").request.is_none());
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
            &|_| None,
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
}
