//! Snapshots: the state sealed under the snapshot key and saved in the
//! engine, so that a start replays only the records after it. A snapshot
//! can always be rebuilt from the log; a damaged one is ignored.

use std::sync::atomic::Ordering;

use ring::aead::{Aad, NONCE_LEN, Nonce};
use tracing::{info, warn};

use super::{LogStore, StoreError, codec};
use crate::domain::State;
use crate::log::{Log, LogError, Verified};

/// A snapshot is written once this many events followed the last one (by
/// the server's background tick, never on a request's path).
pub const SNAPSHOT_EVERY: u64 = 10_000;

fn snapshot_aad(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut a = b"hotline/1 snapshot\0".to_vec();
    a.extend_from_slice(&seq.to_be_bytes());
    a.extend_from_slice(hash);
    a
}

/// A state read for a snapshot, before it is sealed.
struct TakenState {
    seq: u64,
    generation: u64,
    plain: Vec<u8>,
}

impl LogStore {
    /// The state a snapshot holds, if it opens, decodes and matches the
    /// verified log; otherwise `None` (the state is rebuilt from the log).
    pub(super) fn open_snapshot(
        log: &Log,
        verified: &Verified,
        seq: u64,
        bytes: &[u8],
    ) -> Option<State> {
        let Some(hash) = verified.hashes.get(&seq) else {
            warn!("snapshot is beyond the log; rebuilding from the log");
            return None;
        };
        if bytes.len() < NONCE_LEN {
            warn!("snapshot is damaged; rebuilding from the log");
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let mut buf = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let Ok(plain) =
            log.keys()
                .snapshot
                .open_in_place(nonce, Aad::from(snapshot_aad(seq, hash)), &mut buf)
        else {
            warn!("snapshot does not decrypt; rebuilding from the log");
            return None;
        };
        match codec::decode_snapshot(plain) {
            Ok(state) if state.applied_seq == seq => Some(state),
            _ => {
                warn!("snapshot does not decode; rebuilding from the log");
                None
            }
        }
    }

    /// Saves a snapshot if at least `every` events were applied since the
    /// last one; whether it did. Sealing and writing a snapshot of a large
    /// state takes a while, so the server calls this from its background
    /// tick rather than making some request (an SOS, say) wait for it.
    pub fn snapshot_if_due(&self, every: u64) -> Result<bool, StoreError> {
        self.check_readable()?;
        if self.check_writable().is_err() {
            return Ok(false);
        }
        let applied = self.lock().applied_seq;
        let last = *self.snapshot_seq.lock().unwrap_or_else(|p| p.into_inner());
        if applied.saturating_sub(last) < every.max(1) {
            return Ok(false);
        }
        self.snapshot()?;
        Ok(true)
    }

    /// Seals the current state and saves it as the newest snapshot.
    pub fn snapshot(&self) -> Result<(), StoreError> {
        let Ok(mut last) = self.snapshot_seq.try_lock() else {
            return Ok(()); // another writer is taking one
        };
        let Some(taken) = self.take_state() else {
            return Ok(());
        };
        if let Some(seq) = self.seal_and_save(taken)? {
            *last = seq;
        }
        Ok(())
    }

    /// The state's bytes with the sequence number and log generation it
    /// belongs to, read together under the state lock; `None` if there is
    /// nothing to save or the state may hold records that were lost (it
    /// is rebuilt before its next use, and a snapshot taken after that).
    fn take_state(&self) -> Option<TakenState> {
        let state = self.lock();
        if state.applied_seq == 0 || self.needs_resync() {
            return None;
        }
        Some(TakenState {
            seq: state.applied_seq,
            generation: self.state_generation.load(Ordering::SeqCst),
            plain: codec::encode_snapshot(&state),
        })
    }

    /// Seals `taken` against the chain hash of its record and saves it;
    /// the sequence number saved, or `None` if its records were lost
    /// meanwhile (a write failed before they were durable): the record now
    /// at that number is another one, and the state must not be sealed
    /// against it.
    fn seal_and_save(&self, taken: TakenState) -> Result<Option<u64>, StoreError> {
        let TakenState {
            seq,
            generation,
            plain,
        } = taken;
        // Every submitted record is applied under the state lock, so the
        // head at this moment may be later than `seq`; find seq's hash by
        // waiting for durability in the state's generation and reading
        // the chain.
        match self.log.wait_for_in(seq, generation) {
            Ok(()) => {}
            Err(LogError::Degraded { .. }) => {
                info!("a write failed before the state's records were durable: no snapshot taken");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        let hash = self.log.hash_at(seq)?;
        let mut nonce = [0u8; NONCE_LEN];
        hotline_proto::identity::fill_random(&mut nonce)
            .map_err(|_| StoreError::Io("no randomness".into()))?;
        let mut sealed = plain;
        self.log
            .keys()
            .snapshot
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(snapshot_aad(seq, &hash)),
                &mut sealed,
            )
            .map_err(|_| StoreError::Io("sealing failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        self.log
            .engine()
            .put_snapshot(seq, &bytes)
            .map_err(LogError::from)?;
        Ok(Some(seq))
    }

    /// Signs a checkpoint of the durable records if some are not covered
    /// by one yet, and writes it to `chain.head` (see
    /// [`Log::checkpoint_if_uncovered`]): the server's storage watch calls
    /// this about every second, so records written just before the writes
    /// stop are protected by `chain.head` within about a second. Whether
    /// it signed one.
    pub fn checkpoint_if_uncovered(&self) -> Result<bool, StoreError> {
        Ok(self.log.checkpoint_if_uncovered()?)
    }

    /// Discards snapshots and rebuilds the state by replaying the whole
    /// log, then saves a fresh snapshot. Returns the events replayed.
    pub fn rebuild(&self) -> Result<u64, StoreError> {
        self.log
            .engine()
            .clear_snapshots()
            .map_err(LogError::from)?;
        *self.lock() = State::default();
        let n = self
            .replay(0)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        *self.snapshot_seq.lock().unwrap_or_else(|p| p.into_inner()) = 0;
        self.snapshot()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::Event;
    use crate::domain::devices::InviteRecord;
    use crate::log::RecordKey;
    use crate::log::fs::{Fault, FaultFs, Op};
    use hotline_proto::Role;

    fn invite_event(digest: u8) -> Event {
        Event::InviteCreated {
            digest: [digest; 32],
            invite: InviteRecord {
                role: Role::Defender,
                created_at: 1,
                expires_at: 100,
                used_at: None,
                bootstrap: None,
            },
        }
    }

    #[test]
    fn a_state_whose_records_were_lost_is_never_sealed_against_a_reused_sequence_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let faults = FaultFs::new();
        let store = crate::store::open_in_with_fs(dir.path(), faults.handle());
        for d in 1..=3 {
            let state = store.lock();
            store.commit(state, invite_event(d)).expect("durable");
        }
        // Record 4 (invite 4) is submitted and applied, and the state at
        // 4 is taken for a snapshot before its write is attempted ...
        faults.fail_once(Op::Sync, 1, Fault::Eio);
        let ticket = {
            let mut state = store.lock();
            store
                .stage(&mut state, RecordKey::Main, invite_event(4))
                .expect("submitted")
        };
        let taken = store.take_state().expect("taken");
        assert_eq!(taken.seq, 4);
        // ... then the write fails: record 4 is lost.
        assert!(store.wait(ticket).is_err(), "not acknowledged");
        assert!(store.try_heal().expect("heals"));
        // After the heal another record takes number 4 (invite 5).
        {
            let state = store.lock();
            store.commit(state, invite_event(5)).expect("durable");
        }
        assert_eq!(store.lock().applied_seq, 4);
        // The old state must not be sealed against the new record 4.
        assert_eq!(store.seal_and_save(taken).expect("no error"), None);
        drop(store);
        let store = crate::store::open_in(dir.path());
        let state = store.state();
        assert!(state.invites.contains_key(&[5; 32]), "the saved invite");
        assert!(!state.invites.contains_key(&[4; 32]), "the lost invite");
        assert_eq!(state.invites.len(), 4);
    }
}
