//! Cases on the store: each accepted staff event is one record sealed
//! under the case's subkey (`Log::case_key`), so erasing the case
//! (`Log::erase_case`) shreds it; requests, erasure requests and erasures
//! are main-key records without content. The state keeps metadata only;
//! a sync reads each event's bytes back from the log by sequence number.

use hotline_proto::case::erasure::Closing;
use hotline_proto::case::{
    CaseId, CaseState, CaseUpdate, CaseUpdateKind, EventHeader, SignedCaseEvent,
};
use hotline_proto::{DeviceId, IdentityPublicKey, Role, Signature};

use super::{LogStore, StoreError};
use crate::domain::Event;
use crate::domain::cases::{
    AppendOutcome, AppendRefusal, CaseEvent, ErasureOutcome, ErasureRefusal, TooManyRequests,
    UpdateRef, body_digest,
};
use crate::domain::mailbox::MailEvent;
use crate::log::{Entry, RecordKey};

/// What an update adds to a sync answer beyond its event's body, at most
/// (signature, ids, the author's key, times, protobuf tags and lengths).
pub const UPDATE_OVERHEAD: usize = 512;

/// One page of case updates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CasePage {
    /// In position order.
    pub updates: Vec<CaseUpdate>,
    /// The position of the last update looked at (`after` if none).
    pub cursor: u64,
    /// Updates exist after `cursor`.
    pub more: bool,
}

/// A request accepted for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseRequested {
    /// The case.
    pub case_id: CaseId,
    /// The envelope's sent id.
    pub envelope_id: u64,
    /// The same envelope made the case before.
    pub duplicate: bool,
    /// The new update's position (0 for a duplicate).
    pub position: u64,
}

impl LogStore {
    /// Appends a staff event whose signature, author and roster standing
    /// were checked: `Ok((position, duplicate))`, or why not.
    pub fn append_case_event(
        &self,
        event: SignedCaseEvent,
        header: EventHeader,
        role: Role,
        now: u64,
    ) -> Result<Result<(u64, bool), AppendRefusal>, StoreError> {
        self.check_readable()?;
        let mut state = self.lock();
        let digest = body_digest(&event.body);
        let record = match state
            .cases
            .decide_append(&event, &header, digest, role, now)
        {
            Err(r) => return Ok(Err(r)),
            Ok(AppendOutcome::Duplicate(position)) => return Ok(Ok((position, true))),
            Ok(AppendOutcome::Record(record)) => *record,
        };
        let position = record.position();
        let key = self.log.case_key(header.case_id.as_bytes())?;
        let ticket = self.stage(&mut state, RecordKey::Case(key), Event::Case(record))?;
        drop(state);
        self.wait(ticket)?;
        Ok(Ok((position, false)))
    }

    /// Stores a defender's request envelope for `recipients` (as
    /// `store_envelope` does) and makes a case in state requested, in one
    /// record; the same envelope again answers the same case.
    pub fn request_case(
        &self,
        defender: DeviceId,
        digest: [u8; 32],
        recipients: Vec<DeviceId>,
        bytes: Vec<u8>,
        now: u64,
    ) -> Result<Result<CaseRequested, TooManyRequests>, StoreError> {
        self.check_readable()?;
        let mut state = self.lock();
        let mut case_id = CaseId::from_bytes(random_id()?);
        while state.cases.cases.contains_key(&case_id) || state.cases.erased.contains_key(&case_id)
        {
            case_id = CaseId::from_bytes(random_id()?);
        }
        let requested = match state.cases.decide_request(defender, digest, case_id, now) {
            Err(too_many) => return Ok(Err(too_many)),
            Ok(Err(existing)) => {
                let envelope_id = state
                    .mailbox
                    .digests
                    .get(&digest)
                    .map_or(0, |seq| state.mailbox.id_seen_by(*seq, &defender));
                return Ok(Ok(CaseRequested {
                    case_id: existing,
                    envelope_id,
                    duplicate: true,
                    position: 0,
                }));
            }
            Ok(Ok(requested)) => requested,
        };
        let position = requested.position();
        let case_id = requested.case_id();
        // What remains after an erasure goes under the main key: the
        // envelope (staff inboxes hold it) and the digest's case. What
        // links the defender to the case goes under the case's subkey,
        // after them, so erasing the case shreds it.
        let known = state.mailbox.digests.get(&digest).copied();
        let mut main = Vec::new();
        if known.is_none() {
            main.push(Event::Mail(MailEvent::EnvelopeStored {
                sender: defender,
                digest,
                recipients,
                bytes,
                numbered: true,
            }));
        }
        if !state.cases.by_envelope.contains_key(&digest) {
            main.push(Event::Case(CaseEvent::RequestDigest {
                case_id,
                envelope_digest: digest,
            }));
        }
        let envelope_seq = match main.len() {
            0 => None,
            1 => Some(self.stage(&mut state, RecordKey::Main, main.remove(0))?),
            _ => Some(self.stage(&mut state, RecordKey::Main, Event::Batch(main))?),
        }
        .map(|t| t.seq());
        let key = self.log.case_key(case_id.as_bytes())?;
        let ticket = self.stage(&mut state, RecordKey::Case(key), Event::Case(requested))?;
        let envelope_id = match known.or(envelope_seq) {
            Some(seq) => state.mailbox.id_seen_by(seq, &defender),
            None => 0,
        };
        drop(state);
        self.wait(ticket)?;
        Ok(Ok(CaseRequested {
            case_id,
            envelope_id,
            duplicate: false,
            position,
        }))
    }

    /// A staff device asks for a case's erasure: who asked (this device,
    /// or the one that asked before), and the new update's position (0 if
    /// nothing was recorded). The signature must cover the event that
    /// closed the case, read back from the log here.
    pub fn request_case_erasure(
        &self,
        case_id: CaseId,
        by: DeviceId,
        key: IdentityPublicKey,
        signature: Signature,
        now: u64,
        retention_days: u64,
    ) -> Result<Result<(DeviceId, u64), ErasureRefusal>, StoreError> {
        self.check_readable()?;
        // The closing is read without the lock; if the case took an event
        // meanwhile, it is read again.
        for _ in 0..3 {
            let found = self.case_closing(&case_id)?;
            let state = self.lock();
            let events = state.cases.cases.get(&case_id).map(|c| c.events.len());
            if let Some((_, count)) = found
                && events != Some(count)
            {
                continue;
            }
            return match state.cases.decide_erasure_request(
                case_id,
                by,
                &key,
                signature,
                found.map(|(c, _)| c),
                now,
                retention_days,
            ) {
                Err(r) => Ok(Err(r)),
                Ok(ErasureOutcome::Pending(who)) => Ok(Ok((who, 0))),
                Ok(ErasureOutcome::Record(record)) => {
                    let position = record.position();
                    self.commit(state, Event::Case(*record))?;
                    Ok(Ok((by, position)))
                }
            };
        }
        Ok(Err(ErasureRefusal::ClosingUnknown))
    }

    /// The event that closed `case_id` (the last of its events that
    /// changes its state, read back from the log, once durable), with the
    /// number of its events then; `None` if the case is not closed.
    fn case_closing(&self, case_id: &CaseId) -> Result<Option<(Closing, usize)>, StoreError> {
        let (seqs, generation) = {
            let state = self.lock();
            let Some(case) = state.cases.cases.get(case_id) else {
                return Ok(None);
            };
            if case.state != CaseState::Closed {
                return Ok(None);
            }
            let seqs: Vec<u64> = case.events.iter().map(|e| e.seq).collect();
            (seqs, self.log.generation())
        };
        if let Some(newest) = seqs.iter().max() {
            self.log.wait_for_in(*newest, generation)?;
        }
        for seq in seqs.iter().rev() {
            let Some(Entry::Event(bytes)) = self.log.read(*seq)? else {
                return Err(StoreError::Corrupt(
                    "a case event's record is missing".into(),
                ));
            };
            let Event::Case(CaseEvent::Appended { header, .. }) =
                super::codec::decode_event(&bytes)?
            else {
                return Err(StoreError::Corrupt(
                    "a case event's record holds another event".into(),
                ));
            };
            if let Some(to) = header.control.state {
                return Ok((to == CaseState::Closed).then_some((
                    Closing {
                        author: header.author,
                        event_id: header.event_id,
                    },
                    seqs.len(),
                )));
            }
        }
        Ok(None)
    }

    /// A coordinator or admin confirms a case's erasure: the erasure is
    /// recorded, then the case's subkey destroyed, so every record of its
    /// events reads as shredded. Who asked, and the update's position.
    pub fn confirm_case_erasure(
        &self,
        case_id: CaseId,
        by: DeviceId,
        key: IdentityPublicKey,
        signature: Signature,
        now: u64,
        retention_days: u64,
    ) -> Result<Result<(DeviceId, u64), ErasureRefusal>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let record = match state.cases.decide_erasure_confirm(
            case_id,
            by,
            &key,
            signature,
            now,
            retention_days,
        ) {
            Err(r) => return Ok(Err(r)),
            Ok(record) => record,
        };
        let position = record.position();
        let CaseEvent::Erased { requested_by, .. } = record else {
            return Err(StoreError::Corrupt(
                "an erasure decided as another event".into(),
            ));
        };
        self.commit(state, Event::Case(record))?;
        self.shred_case(&case_id)?;
        // The snapshot cache must not keep the erased case's metadata
        // until the next snapshot falls due: replace it now. A failure
        // (a full disk) leaves the older one, which the next start
        // replays past; the erasure itself is done.
        if let Err(e) = self.snapshot() {
            tracing::warn!(error = %e, "no snapshot after a case erasure; the next one replaces the cache");
        }
        Ok(Ok((requested_by, position)))
    }

    /// Destroys the subkey of an erased case (again: nothing happens if
    /// it is gone).
    fn shred_case(&self, case_id: &CaseId) -> Result<(), StoreError> {
        if !self.log.has_case_key(case_id.as_bytes()) {
            return Ok(());
        }
        let key = self.log.case_key(case_id.as_bytes())?;
        self.log.erase_case(key)?;
        Ok(())
    }

    /// Destroys the subkeys of erased cases that a stop between the
    /// erasure's record and the key's destruction left behind; how many.
    /// Called at start, once the store takes writes.
    pub fn finish_case_erasures(&self) -> Result<usize, StoreError> {
        if self.check_writable().is_err() {
            return Ok(0);
        }
        let erased: Vec<CaseId> = self.lock().cases.erased.keys().copied().collect();
        let mut done = 0;
        for id in erased {
            if self.log.has_case_key(id.as_bytes()) {
                self.shred_case(&id)?;
                done += 1;
            }
        }
        Ok(done)
    }

    /// The last case sync position given.
    pub fn case_position(&self) -> Result<u64, StoreError> {
        self.check_readable()?;
        Ok(self.lock().cases.position)
    }

    /// Case updates after `after`, as many as fit `budget` bytes (at
    /// least one), each event read back from the log.
    pub fn case_updates(&self, after: u64, budget: usize) -> Result<CasePage, StoreError> {
        self.check_readable()?;
        // What to send, read under the lock; the events' bytes are read
        // from the log after it is released.
        enum Pending {
            Event {
                position: u64,
                case_id: CaseId,
                at: u64,
                seq: u64,
                author_key: hotline_proto::IdentityPublicKey,
            },
            Ready(CaseUpdate),
        }
        let mut pending = Vec::new();
        let mut cursor = after;
        let mut more = false;
        // The newest record to read, and the log's generation then: an
        // update is in the state from the moment its record is staged,
        // before it is durable; the page waits for it (a sync never
        // hands out what a failed write may yet lose, nor reads a record
        // not written yet).
        let mut newest = 0;
        let generation;
        {
            let state = self.lock();
            generation = self.log.generation();
            let cases = &state.cases;
            let mut size = 0usize;
            for (position, what) in cases.updates.range(after.saturating_add(1)..) {
                let (item, bytes) = match *what {
                    UpdateRef::Event(case_id, index) => {
                        let Some(meta) =
                            cases.cases.get(&case_id).and_then(|c| c.events.get(index))
                        else {
                            return Err(StoreError::Corrupt(
                                "a case update without its event".into(),
                            ));
                        };
                        newest = newest.max(meta.seq);
                        let Some(author) = state.devices.get(&meta.author) else {
                            return Err(StoreError::Corrupt(
                                "a case event of an unknown author".into(),
                            ));
                        };
                        (
                            Pending::Event {
                                position: *position,
                                case_id,
                                at: meta.at,
                                seq: meta.seq,
                                author_key: author.identity_key,
                            },
                            usize::try_from(meta.size).unwrap_or(usize::MAX),
                        )
                    }
                    UpdateRef::Requested(case_id) => {
                        let Some(r) = cases.cases.get(&case_id).and_then(|c| c.requested) else {
                            return Err(StoreError::Corrupt(
                                "a case update without its request".into(),
                            ));
                        };
                        (
                            Pending::Ready(CaseUpdate {
                                position: *position,
                                case_id,
                                at: r.at,
                                kind: CaseUpdateKind::Requested {
                                    defender: r.defender,
                                    envelope_digest: r.envelope_digest,
                                },
                            }),
                            0,
                        )
                    }
                    UpdateRef::ErasureRequested(case_id) => {
                        let Some(e) = cases.cases.get(&case_id).and_then(|c| c.erasure) else {
                            return Err(StoreError::Corrupt(
                                "a case update without its erasure request".into(),
                            ));
                        };
                        (
                            Pending::Ready(CaseUpdate {
                                position: *position,
                                case_id,
                                at: e.at,
                                kind: CaseUpdateKind::ErasureRequested {
                                    requested_by: e.by,
                                    signature: e.signature,
                                    closing: e.closing,
                                },
                            }),
                            0,
                        )
                    }
                    UpdateRef::Erased(case_id) => {
                        let Some(e) = cases.erased.get(&case_id) else {
                            return Err(StoreError::Corrupt(
                                "a case update without its erasure".into(),
                            ));
                        };
                        (
                            Pending::Ready(CaseUpdate {
                                position: *position,
                                case_id,
                                at: e.at,
                                kind: CaseUpdateKind::Erased {
                                    requested_by: e.requested_by,
                                    confirmed_by: e.confirmed_by,
                                    request_signature: e.request_signature,
                                    confirm_signature: e.confirm_signature,
                                    closing: e.closing,
                                },
                            }),
                            0,
                        )
                    }
                };
                // A first sifting by the sizes the state holds (a lower
                // bound for a stored event: its ciphertext's length); the
                // real sizes are added up as the events are read below.
                size = size.saturating_add(bytes.saturating_add(UPDATE_OVERHEAD));
                if !pending.is_empty() && size > budget {
                    more = true;
                    break;
                }
                pending.push(item);
                cursor = *position;
            }
        }
        if newest > 0 {
            self.log.wait_for_in(newest, generation)?;
        }
        // The real sizes: each event's signed body as stored, plus the
        // most the rest of its update takes. Events are read one at a
        // time and the page ends before the one that would pass the
        // budget, so a page never holds more than `budget` bytes of
        // updates, whatever bodies were stored (before bodies had to be
        // canonical, a small ciphertext could ride in a large body).
        let mut updates = Vec::with_capacity(pending.len());
        let mut size = 0usize;
        let mut last = after;
        for item in pending {
            let (position, update) = match item {
                Pending::Ready(u) => (u.position, Some(u)),
                Pending::Event {
                    position,
                    case_id,
                    at,
                    seq,
                    author_key,
                } => match self.log.read(seq)? {
                    Some(Entry::Event(bytes)) => {
                        let Event::Case(CaseEvent::Appended { event, .. }) =
                            super::codec::decode_event(&bytes)?
                        else {
                            return Err(StoreError::Corrupt(
                                "a case event's record holds another event".into(),
                            ));
                        };
                        (
                            position,
                            Some(CaseUpdate {
                                position,
                                case_id,
                                at,
                                kind: CaseUpdateKind::Event { event, author_key },
                            }),
                        )
                    }
                    // Erased since the lock was released: it is gone.
                    Some(Entry::Shredded) => (position, None),
                    _ => {
                        return Err(StoreError::Corrupt(
                            "a case event's record is missing".into(),
                        ));
                    }
                },
            };
            if let Some(update) = update {
                let bytes = update_size(&update);
                if size.saturating_add(bytes) > budget {
                    if updates.is_empty() {
                        // Cannot be: one update is at most
                        // MAX_EVENT_BODY_LEN + UPDATE_OVERHEAD bytes, far
                        // below any budget a sync uses (asserted at
                        // compile time in requests::cases).
                        return Err(StoreError::Corrupt(
                            "a case update larger than a sync frame".into(),
                        ));
                    }
                    return Ok(CasePage {
                        updates,
                        cursor: last,
                        more: true,
                    });
                }
                size += bytes;
                updates.push(update);
            }
            last = position;
        }
        Ok(CasePage {
            updates,
            cursor,
            more,
        })
    }
}

/// The most bytes `update` takes in a sync frame: its event's body as
/// stored, plus [`UPDATE_OVERHEAD`] for everything else (fixed-size ids,
/// keys, a signature, numbers and protobuf tags).
fn update_size(update: &CaseUpdate) -> usize {
    match &update.kind {
        CaseUpdateKind::Event { event, .. } => event.body.len().saturating_add(UPDATE_OVERHEAD),
        _ => UPDATE_OVERHEAD,
    }
}

fn random_id() -> Result<[u8; 16], StoreError> {
    let mut id = [0u8; 16];
    hotline_proto::identity::fill_random(&mut id)
        .map_err(|_| StoreError::Io("no randomness".into()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use hotline_proto::IdentityKeyPair;
    use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
    use hotline_proto::case::{CaseControl, CaseState};
    use hotline_proto::e2e::suite::SystemRandomness;

    use super::*;

    /// A staff member's keys, by number.
    fn key(n: u8) -> IdentityKeyPair {
        IdentityKeyPair::from_seed(&[n; 32])
    }

    /// `by` asks for the erasure of `case`, signing its closing as the
    /// store holds it.
    fn ask(
        store: &LogStore,
        case: CaseId,
        by: &IdentityKeyPair,
        now: u64,
    ) -> Result<Result<(DeviceId, u64), ErasureRefusal>, StoreError> {
        use hotline_proto::case::erasure::{ErasureStep, sign_erasure};
        let closing = store.case_closing(&case).expect("reads").expect("closed").0;
        let sig = sign_erasure(by, &case, ErasureStep::Request, &closing);
        store.request_case_erasure(case, by.device_id(), by.public_key(), sig, now, 0)
    }

    /// The signature `by` confirms the pending request of `case` with.
    fn confirm_signature(store: &LogStore, case: CaseId, by: &IdentityKeyPair) -> Signature {
        use hotline_proto::case::erasure::{ErasureStep, sign_erasure};
        let state = store.state();
        let c = &state.cases.cases[&case];
        let request = c.erasure.and_then(|e| e.signature).expect("asked");
        sign_erasure(
            by,
            &case,
            ErasureStep::Confirm(request),
            &c.erasure.and_then(|e| e.closing).expect("named"),
        )
    }

    /// `by` confirms the pending request of `case`.
    fn confirm(
        store: &LogStore,
        case: CaseId,
        by: &IdentityKeyPair,
        now: u64,
    ) -> Result<Result<(DeviceId, u64), ErasureRefusal>, StoreError> {
        let sig = confirm_signature(store, case, by);
        store.confirm_case_erasure(case, by.device_id(), by.public_key(), sig, now, 0)
    }

    fn sealed(
        author: &IdentityKeyPair,
        case_id: CaseId,
        id: u8,
        state: Option<CaseState>,
    ) -> (SignedCaseEvent, EventHeader) {
        let e = seal(
            author,
            &CaseKey::from_bytes([7; 32]),
            &EventDraft {
                case_id,
                event_id: [id; 16],
                roster_version: 1,
                epoch: 1,
                control: CaseControl {
                    state,
                    ..CaseControl::default()
                },
            },
            &CaseEventContent {
                note: "sealed".into(),
                ..CaseEventContent::default()
            },
            &mut SystemRandomness,
        )
        .expect("sealed");
        let h = e.header_unverified().expect("reads");
        (e, h)
    }

    /// An erased case's records read as shredded; a restart, a snapshot
    /// rebuild and the next position all agree with the server that
    /// erased it, and the other case is intact.
    #[test]
    fn an_erasure_survives_a_restart_and_a_rebuild_and_positions_never_go_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open_in(dir.path());
        let a = IdentityKeyPair::from_seed(&[1; 32]);
        let invite = crate::domain::devices::InviteRecord {
            role: Role::Officer,
            created_at: 1,
            expires_at: u64::MAX,
            used_at: None,
            bootstrap: None,
        };
        store.put_invite([1; 32], &invite).expect("invite");
        store.enroll([1; 32], a.public_key(), 2).expect("enrolled");
        let (gone, kept) = (CaseId::from_bytes([1; 16]), CaseId::from_bytes([2; 16]));
        let mut n = 0;
        for (case, state) in [
            (gone, Some(CaseState::Open)),
            (kept, Some(CaseState::Open)),
            (gone, None),
            (gone, Some(CaseState::Closed)),
        ] {
            n += 1;
            let (e, h) = sealed(&a, case, n, state);
            let (position, duplicate) = store
                .append_case_event(e, h, Role::Officer, 10)
                .expect("stored")
                .expect("accepted");
            assert_eq!((position, duplicate), (u64::from(n), false));
        }
        let (b, c) = (key(2), key(3));
        assert_eq!(
            ask(&store, gone, &b, 20).expect("stored"),
            Ok((b.device_id(), 5))
        );
        assert_eq!(
            confirm(&store, gone, &c, 21).expect("stored"),
            Ok((b.device_id(), 6))
        );
        assert!(!store.log().has_case_key(gone.as_bytes()));
        let live = store.state();
        let page = store.case_updates(0, 1 << 20).expect("reads");
        assert_eq!(
            page.updates.iter().map(|u| u.position).collect::<Vec<_>>(),
            vec![2, 6]
        );
        let shredded = (1..=store.log().head().0)
            .filter(|seq| matches!(store.log().read(*seq), Ok(Some(Entry::Shredded))))
            .count();
        assert_eq!(shredded, 3, "the erased case's three events");
        // A rebuild from the log alone reaches the same state.
        store.rebuild().expect("rebuilds");
        assert_eq!(store.state().cases, live.cases);
        store.close().expect("closes");
        drop(store);
        let store = crate::store::open_in(dir.path());
        assert_eq!(store.state().cases, live.cases);
        let (e, h) = sealed(&a, kept, 9, None);
        assert_eq!(
            store
                .append_case_event(e, h, Role::Officer, 30)
                .expect("stored"),
            Ok((7, false)),
            "the counter continues"
        );
        // The kept case's first event is still a duplicate after all that.
        let (e, h) = sealed(&a, kept, 2, Some(CaseState::Open));
        assert_eq!(
            store
                .append_case_event(e, h, Role::Officer, 30)
                .expect("stored"),
            Err(AppendRefusal::EventIdReused),
            "sealed again (another nonce): other bytes, same id"
        );
    }

    /// Issue 12, point 1: bodies stored before they had to be canonical
    /// (a small ciphertext in a body padded with an unknown field) never
    /// make a sync frame pass its budget: each page is sized by the
    /// bodies' real length, and every update still arrives.
    #[test]
    fn sync_pages_fit_their_budget_whatever_bodies_were_stored() {
        use hotline_proto::case::{CaseSync, MAX_EVENT_BODY_LEN};
        use hotline_proto::message::Response;
        use prost::encoding::{WireType, encode_key, encode_varint};

        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open_in(dir.path());
        let a = IdentityKeyPair::from_seed(&[1; 32]);
        let invite = crate::domain::devices::InviteRecord {
            role: Role::Officer,
            created_at: 1,
            expires_at: u64::MAX,
            used_at: None,
            bootstrap: None,
        };
        store.put_invite([1; 32], &invite).expect("invite");
        store.enroll([1; 32], a.public_key(), 2).expect("enrolled");
        let case = CaseId::from_bytes([1; 16]);
        for n in 1..=10u8 {
            let state = (n == 1).then_some(CaseState::Open);
            let (mut e, _) = sealed(&a, case, n, state);
            let pad = MAX_EVENT_BODY_LEN - e.body.len() - 4;
            encode_key(15, WireType::LengthDelimited, &mut e.body);
            encode_varint(pad as u64, &mut e.body);
            e.body.resize(e.body.len() + pad, 0);
            assert!(e.body.len() <= MAX_EVENT_BODY_LEN);
            assert!(!e.body_is_canonical());
            let h = e.header_unverified().expect("reads");
            assert_eq!(h.ciphertext_len, 1_040, "a small ciphertext");
            store
                .append_case_event(e, h, Role::Officer, 10)
                .expect("stored")
                .expect("accepted");
        }
        // The budget of requests::cases::SYNC_FRAME_BUDGET.
        let budget = hotline_proto::frame::MAX_FRAME_LEN - 4096;
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let page = store.case_updates(after, budget).expect("reads");
            let frame = Response::CaseSync(CaseSync {
                updates: page.updates.clone(),
                cursor: page.cursor,
                more: page.more,
                retention_secs: u64::MAX,
            })
            .encode();
            assert!(
                frame.len() <= hotline_proto::frame::MAX_FRAME_LEN,
                "a frame of {} bytes",
                frame.len()
            );
            assert!(!page.updates.is_empty());
            seen.extend(page.updates.iter().map(|u| u.position));
            after = page.cursor;
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    }

    /// Issue 12, point 4: what links a defender device to the case it
    /// asked for is sealed under the case's subkey, so an erasure shreds
    /// it; the main key keeps the digest's case without the defender.
    /// Waiting counts are right after a restart and a rebuild, and an
    /// erased case no longer counts.
    #[test]
    fn an_erasure_shreds_the_link_between_a_defender_and_its_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open_in(dir.path());
        let a = IdentityKeyPair::from_seed(&[1; 32]);
        let defender = DeviceId::from_bytes([9; 16]);
        let staff = vec![a.device_id()];
        let first = store
            .request_case(defender, [0x4e; 32], staff.clone(), b"one".to_vec(), 5)
            .expect("stored")
            .expect("accepted");
        let second = store
            .request_case(defender, [0x4f; 32], staff.clone(), b"two".to_vec(), 6)
            .expect("stored")
            .expect("accepted");
        assert_eq!(store.state().cases.requested_by_defender[&defender], 2);
        // The first is declined and erased.
        let e = seal(
            &a,
            &CaseKey::from_bytes([7; 32]),
            &EventDraft {
                case_id: first.case_id,
                event_id: [1; 16],
                roster_version: 1,
                epoch: 1,
                control: CaseControl {
                    state: Some(CaseState::Closed),
                    ..CaseControl::default()
                },
            },
            &CaseEventContent::default(),
            &mut SystemRandomness,
        )
        .expect("sealed");
        let h = e.header_unverified().expect("reads");
        store
            .append_case_event(e, h, Role::Officer, 7)
            .expect("stored")
            .expect("accepted");
        let (b, c) = (key(2), key(3));
        ask(&store, first.case_id, &b, 8)
            .expect("stored")
            .expect("asked");
        confirm(&store, first.case_id, &c, 9)
            .expect("stored")
            .expect("erased");
        // No record readable on the server names the defender with the
        // erased case; the digest's case is still readable.
        let mut digests = 0;
        for seq in 1..=store.log().head().0 {
            let Ok(Some(Entry::Event(bytes))) = store.log().read(seq) else {
                continue;
            };
            let event = crate::store::codec::decode_event(&bytes).expect("decodes");
            let events = match event {
                Event::Batch(events) => events,
                other => vec![other],
            };
            for event in events {
                match event {
                    Event::Case(CaseEvent::Requested { case_id, .. }) => {
                        assert_ne!(case_id, first.case_id, "the link is shredded");
                    }
                    Event::Case(CaseEvent::RequestDigest { case_id, .. })
                        if case_id == first.case_id =>
                    {
                        digests += 1;
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(digests, 1);
        let live = store.state();
        assert_eq!(live.cases.requested_by_defender[&defender], 1);
        // The same answer to a resend, the same counts, after a rebuild
        // and a restart.
        let resend = |store: &LogStore| {
            store
                .request_case(defender, [0x4e; 32], staff.clone(), b"one".to_vec(), 10)
                .expect("stored")
                .expect("answered")
        };
        let answer = resend(&store);
        assert_eq!(
            (answer.case_id, answer.duplicate, answer.envelope_id),
            (first.case_id, true, first.envelope_id)
        );
        store.rebuild().expect("rebuilds");
        assert_eq!(store.state().cases, live.cases);
        store.close().expect("closes");
        drop(store);
        let store = crate::store::open_in(dir.path());
        assert_eq!(store.state().cases, live.cases);
        assert_eq!(resend(&store), answer);
        assert_eq!(
            store.state().cases.cases[&second.case_id]
                .requested
                .map(|r| r.defender),
            Some(defender)
        );
    }

    /// A sync that runs while an accepted event's record is staged but
    /// not yet durable waits for it, and neither reads the store as
    /// damaged nor hands out what is not durable.
    #[test]
    fn a_sync_waits_for_an_event_staged_but_not_yet_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open_in(dir.path());
        let a = IdentityKeyPair::from_seed(&[1; 32]);
        let invite = crate::domain::devices::InviteRecord {
            role: Role::Officer,
            created_at: 1,
            expires_at: u64::MAX,
            used_at: None,
            bootstrap: None,
        };
        store.put_invite([1; 32], &invite).expect("invite");
        store.enroll([1; 32], a.public_key(), 2).expect("enrolled");
        let case = CaseId::from_bytes([1; 16]);
        let (e, h) = sealed(&a, case, 1, Some(CaseState::Open));
        // As append_case_event does, but the writer has not waited yet.
        let mut state = store.lock();
        let record = match state
            .cases
            .decide_append(&e, &h, body_digest(&e.body), Role::Officer, 10)
            .expect("accepted")
        {
            AppendOutcome::Record(r) => *r,
            AppendOutcome::Duplicate(_) => panic!("new"),
        };
        let key = store.log().case_key(case.as_bytes()).expect("key");
        let ticket = store
            .stage(&mut state, RecordKey::Case(key), Event::Case(record))
            .expect("staged");
        drop(state);
        let page = store.case_updates(0, 1 << 20).expect("reads");
        assert_eq!(page.updates.len(), 1);
        assert!(store.check_readable().is_ok(), "not taken as damaged");
        store.wait(ticket).expect("durable");
    }

    /// A stop between the erasure's record and the key's destruction: the
    /// next start's `finish_case_erasures` destroys the key.
    #[test]
    fn an_erasure_interrupted_before_the_key_is_destroyed_is_finished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open_in(dir.path());
        let a = IdentityKeyPair::from_seed(&[1; 32]);
        let case = CaseId::from_bytes([1; 16]);
        for (n, state) in [(1, CaseState::Open), (2, CaseState::Closed)] {
            let (e, h) = sealed(&a, case, n, Some(state));
            store
                .append_case_event(e, h, Role::Officer, 10)
                .expect("stored")
                .expect("accepted");
        }
        ask(&store, case, &key(2), 20)
            .expect("stored")
            .expect("asked");
        // The record only, as if the server stopped right after it.
        let c = key(3);
        let sig = confirm_signature(&store, case, &c);
        let state = store.lock();
        let record = state
            .cases
            .decide_erasure_confirm(case, c.device_id(), &c.public_key(), sig, 21, 0)
            .expect("allowed");
        store.commit(state, Event::Case(record)).expect("durable");
        assert!(store.log().has_case_key(case.as_bytes()));
        store.close().expect("closes");
        drop(store);
        let store = crate::store::open_in(dir.path());
        assert_eq!(store.finish_case_erasures().expect("finishes"), 1);
        assert!(!store.log().has_case_key(case.as_bytes()));
        assert_eq!(store.finish_case_erasures().expect("nothing left"), 0);
    }
}
