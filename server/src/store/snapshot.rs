//! Snapshots: the state sealed under the snapshot key and saved in the
//! engine, so that a start replays only the records after it. A snapshot
//! can always be rebuilt from the log; a damaged one is ignored.

use ring::aead::{Aad, NONCE_LEN, Nonce};
use tracing::warn;

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
        let (seq, plain) = {
            let state = self.lock();
            (state.applied_seq, codec::encode_snapshot(&state))
        };
        if seq == 0 {
            return Ok(());
        }
        // Every submitted record is applied under the state lock, so the
        // head at this moment may be later than `seq`; find seq's hash by
        // waiting for durability and reading the chain.
        self.log.wait_for(seq)?;
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
        *last = seq;
        Ok(())
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
