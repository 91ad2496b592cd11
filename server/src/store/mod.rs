//! Durable server state: enrolled devices and pending invites.
//!
//! [`LogStore`] keeps it, and implements the [`Store`] trait, on the
//! encrypted event log: every change is an event appended to the log, and
//! the state handlers read is derived from the log (see [`crate::domain`]).
//! Every method that changes state returns only after its event is on
//! disk, so a client is never told "done" about something a crash could
//! lose.

pub mod alerts;
pub mod codec;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hotline_proto::{DeviceId, IdentityPublicKey, Role};
use ring::aead::{Aad, NONCE_LEN, Nonce};
use tracing::{info, warn};

use crate::domain::devices::{Device, EnrollOutcome, InviteRecord, RevokeOutcome};
use crate::domain::mailbox::{MailEvent, StoredPrekey};
use crate::domain::{ApplyError, Event, State};
use crate::log::engine::{EngineError, LogEngine, SledEngine};
use crate::log::keys::{self, KdfParams, KeyError, KeySource, StoreKeys};
use crate::log::{Entry, Log, LogError, RecordKey, Verified};

/// The store could not do what was asked; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (disk full, I/O error).
    #[error("storage failed: {0}")]
    Io(String),
    /// Another process (probably a running server) holds the store open.
    #[error("the data directory is in use by another hotline-server process")]
    Locked,
    /// A stored record does not decode: the store is damaged.
    #[error("the store is damaged: {0}")]
    Corrupt(String),
}

impl From<ApplyError> for StoreError {
    fn from(e: ApplyError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<codec::CodecError> for StoreError {
    fn from(e: codec::CodecError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<LogError> for StoreError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Engine(EngineError::Locked) => StoreError::Locked,
            LogError::Engine(EngineError::Corrupt(m)) => StoreError::Corrupt(m),
            LogError::Tampered { .. } => StoreError::Corrupt(e.to_string()),
            other => StoreError::Io(other.to_string()),
        }
    }
}

/// Durable server state. Implementations must make every change durable
/// before returning from the method that made it.
pub trait Store: Send + Sync + 'static {
    /// Saves a new invite under the digest of its token.
    fn put_invite(&self, token_digest: [u8; 32], invite: &InviteRecord) -> Result<(), StoreError>;

    /// Spends the invite and enrolls `identity_key`, atomically: either both
    /// happen or neither.
    fn enroll(
        &self,
        token_digest: [u8; 32],
        identity_key: IdentityPublicKey,
        now: u64,
    ) -> Result<EnrollOutcome, StoreError>;

    /// The device with this id.
    fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError>;

    /// Every enrolled device, revoked ones included.
    fn devices(&self) -> Result<Vec<Device>, StoreError>;

    /// Revokes a device, refusing to revoke the last active admin.
    fn revoke(&self, id: &DeviceId, now: u64) -> Result<RevokeOutcome, StoreError>;

    /// Stores a roster if its version is higher than the stored one's;
    /// otherwise returns the stored version.
    fn put_roster(&self, version: u64, bytes: Vec<u8>) -> Result<Result<(), u64>, StoreError>;

    /// The newest roster's wire bytes.
    fn roster(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores prekeys a device published (already verified).
    fn publish_prekeys(
        &self,
        device: DeviceId,
        prekeys: Vec<StoredPrekey>,
    ) -> Result<(), StoreError>;

    /// Hands out one prekey of `device`: a one-time prekey (which is then
    /// gone) or the last-resort prekey. Returns its `SignedPrekey` bytes.
    fn take_prekey(&self, device: &DeviceId, now: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores an envelope for `recipients`; returns its id and whether the
    /// same envelope had been stored before.
    fn store_envelope(
        &self,
        sender: DeviceId,
        digest: [u8; 32],
        recipients: Vec<DeviceId>,
        bytes: Vec<u8>,
    ) -> Result<(u64, bool), StoreError>;

    /// Envelopes waiting for `device` after `after`.
    fn inbox(
        &self,
        device: &DeviceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// `device` holds everything up to `up_to`.
    fn ack_inbox(&self, device: DeviceId, up_to: u64) -> Result<(), StoreError>;

    /// Whether any admin device is active.
    fn has_active_admin(&self) -> Result<bool, StoreError> {
        Ok(self
            .devices()?
            .iter()
            .any(|d| d.role == Role::Admin && d.revoked_at.is_none()))
    }
}

// ---------------------------------------------------------------------------

/// A snapshot is written once this many events followed the last one (by
/// the server's background tick, never on a request's path).
pub const SNAPSHOT_EVERY: u64 = 10_000;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The master key is wrong, missing or unreadable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The log failed verification or could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The derived state could not be rebuilt.
    #[error(transparent)]
    State(#[from] StoreError),
}

/// How the store should treat a missing header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create a new store if the data directory has none.
    IfMissing(KdfParams),
    /// The store must exist.
    Never,
}

/// Paths of the store's files inside a data directory.
fn engine_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

fn keyring_path(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::log::KEYRING_FILE)
}

/// Opens the keys: checks an existing header, or creates one for a new
/// store. Touches nothing else.
pub fn open_keys(
    data_dir: &Path,
    source: &KeySource,
    create: Create,
) -> Result<StoreKeys, OpenError> {
    if keys::exists(data_dir) {
        return Ok(keys::open(data_dir, source)?.1);
    }
    match create {
        Create::Never => Err(KeyError::HeaderMissing(data_dir.to_owned()).into()),
        Create::IfMissing(kdf) => {
            if engine_dir(data_dir).exists() || keyring_path(data_dir).exists() {
                // Data without a header: never start a new store over it.
                return Err(KeyError::HeaderMissing(data_dir.to_owned()).into());
            }
            Ok(keys::create(data_dir, source, kdf, crate::unix_now())?.1)
        }
    }
}

/// The store on the encrypted log, with its state in memory.
pub struct LogStore {
    log: Log,
    state: Mutex<State>,
    snapshot_seq: Mutex<u64>,
    replayed_at_open: u64,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore(..)")
    }
}

fn snapshot_aad(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut a = b"hotline/1 snapshot\0".to_vec();
    a.extend_from_slice(&seq.to_be_bytes());
    a.extend_from_slice(hash);
    a
}

impl LogStore {
    /// Opens the store in `data_dir` with `keys`: verifies the whole log,
    /// loads the newest valid snapshot and replays the events after it.
    pub fn open(data_dir: &Path, keys: StoreKeys, cache_bytes: u64) -> Result<LogStore, OpenError> {
        let engine: Arc<dyn LogEngine> =
            Arc::new(SledEngine::open(&engine_dir(data_dir), cache_bytes).map_err(LogError::from)?);
        let snapshot = engine.latest_snapshot().map_err(LogError::from)?;
        let want: Vec<u64> = snapshot.iter().map(|(seq, _)| *seq).collect();
        let (log, verified) = Log::open(engine, Arc::new(keys), data_dir, &want)?;
        let state = snapshot
            .and_then(|(seq, bytes)| Self::open_snapshot(&log, &verified, seq, &bytes))
            .unwrap_or_default();
        let from = state.applied_seq;
        let mut store = LogStore {
            log,
            state: Mutex::new(state),
            snapshot_seq: Mutex::new(from),
            replayed_at_open: 0,
        };
        let replayed = store.replay(from)?;
        store.replayed_at_open = replayed;
        info!(
            records = verified.records,
            checkpoints = verified.checkpoints,
            replayed,
            "store opened and verified"
        );
        Ok(store)
    }

    fn open_snapshot(log: &Log, verified: &Verified, seq: u64, bytes: &[u8]) -> Option<State> {
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

    fn replay(&self, from: u64) -> Result<u64, OpenError> {
        let mut state = self.lock();
        let mut count = 0;
        self.log.replay(from, |seq, entry| {
            if let Entry::Event(bytes) = entry {
                let event = codec::decode_event(&bytes).map_err(|e| LogError::Tampered {
                    seq,
                    reason: e.to_string(),
                })?;
                state.apply(seq, &event).map_err(|e| LogError::Tampered {
                    seq,
                    reason: e.to_string(),
                })?;
            }
            state.applied_seq = seq;
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `event` and applies it, in one step under the state lock
    /// (so log order is apply order), then waits for it to be durable
    /// outside the lock (so concurrent writers share a flush).
    pub(crate) fn commit(
        &self,
        mut state: MutexGuard<'_, State>,
        event: Event,
    ) -> Result<u64, StoreError> {
        let ticket = self.stage(&mut state, event)?;
        drop(state);
        self.wait(ticket)
    }

    /// Appends `event` and applies it, without waiting for it to be
    /// durable: for several events that must be acknowledged together (one
    /// flush for all), followed by [`LogStore::wait`] on the last ticket
    /// after the state lock is released.
    pub(crate) fn stage(
        &self,
        state: &mut MutexGuard<'_, State>,
        event: Event,
    ) -> Result<crate::log::Ticket, StoreError> {
        let ticket = self
            .log
            .submit(RecordKey::Main, &codec::encode_event(&event))?;
        state.apply(ticket.seq(), &event)?;
        Ok(ticket)
    }

    /// Appends an `event` already applied to `state` at `seq`, the sequence
    /// number it must get (the next one: callers hold the state lock, under
    /// which every record is submitted). Fails, leaving the store unusable,
    /// if the log disagrees.
    pub(crate) fn submit_applied(
        &self,
        _state: &MutexGuard<'_, State>,
        seq: u64,
        event: &Event,
    ) -> Result<crate::log::Ticket, StoreError> {
        let ticket = self
            .log
            .submit(RecordKey::Main, &codec::encode_event(event))?;
        if ticket.seq() != seq {
            return Err(StoreError::Corrupt(
                "log order differs from state order".into(),
            ));
        }
        Ok(ticket)
    }

    /// The sequence number the next record will get (stable while the
    /// state lock is held).
    pub(crate) fn next_seq(&self, _state: &MutexGuard<'_, State>) -> u64 {
        self.log.head().0 + 1
    }

    /// Waits until `ticket` (and every record before it) is durable.
    pub(crate) fn wait(&self, ticket: crate::log::Ticket) -> Result<u64, StoreError> {
        Ok(ticket.wait(&self.log)?)
    }

    /// Saves a snapshot if at least `every` events were applied since the
    /// last one; whether it did. Sealing and writing a snapshot of a large
    /// state takes a while, so the server calls this from its background
    /// tick rather than making some request (an SOS, say) wait for it.
    pub fn snapshot_if_due(&self, every: u64) -> Result<bool, StoreError> {
        self.check_running()?;
        let applied = self.lock().applied_seq;
        let last = *self.snapshot_seq.lock().unwrap_or_else(|p| p.into_inner());
        if applied.saturating_sub(last) < every.max(1) {
            return Ok(false);
        }
        self.snapshot()?;
        Ok(true)
    }

    /// Records that `device` showed these envelopes to its person.
    pub fn mark_read(&self, device: DeviceId, ids: Vec<u64>) -> Result<(), StoreError> {
        self.check_running()?;
        let state = self.lock();
        let ids: Vec<u64> =
            ids.into_iter()
                .filter(|id| {
                    state.mailbox.delivery.get(id).is_some_and(|d| {
                        d.recipients.contains(&device) && !d.read.contains(&device)
                    })
                })
                .collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.commit(state, Event::Mail(MailEvent::Read { device, ids }))?;
        Ok(())
    }

    /// How far the envelopes `sender` sent with these ids got (others are
    /// left out).
    pub fn delivery(
        &self,
        sender: &DeviceId,
        ids: &[u64],
    ) -> Result<Vec<hotline_proto::message::DeliveryState>, StoreError> {
        self.check_running()?;
        let state = self.lock();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(ids
            .iter()
            .filter_map(|id| {
                let d = state.mailbox.delivery.get(id)?;
                (d.sender == Some(*sender)).then(|| hotline_proto::message::DeliveryState {
                    id: *id,
                    recipients: count(d.recipients.len()),
                    delivered: count(d.delivered.len()),
                    read: count(d.read.len()),
                })
            })
            .collect())
    }

    /// The devices with these ids, as far as they are enrolled.
    pub fn devices_by_id(&self, ids: &[DeviceId]) -> Result<Vec<Option<Device>>, StoreError> {
        self.check_running()?;
        let state = self.lock();
        Ok(ids
            .iter()
            .map(|id| state.devices.get(id).cloned())
            .collect())
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

    /// How many log records the last open replayed (the rest came from
    /// the snapshot).
    pub fn replayed_at_open(&self) -> u64 {
        self.replayed_at_open
    }

    /// The log underneath (for case keys and verification).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// A copy of the current state.
    pub fn state(&self) -> State {
        self.lock().clone()
    }

    /// Saves a snapshot if the log grew since the last one, commits what is
    /// pending, signs a final checkpoint and closes. Later writes fail.
    pub fn close(&self) -> Result<(), StoreError> {
        let applied = self.lock().applied_seq;
        if applied > *self.snapshot_seq.lock().unwrap_or_else(|p| p.into_inner()) {
            self.snapshot()?;
        }
        self.log.close()?;
        Ok(())
    }

    pub(crate) fn check_running(&self) -> Result<(), StoreError> {
        if self.log.is_stopped() {
            return Err(LogError::Stopped.into());
        }
        Ok(())
    }
}

impl Store for LogStore {
    fn put_invite(&self, token_digest: [u8; 32], invite: &InviteRecord) -> Result<(), StoreError> {
        let state = self.lock();
        if state.invites.contains_key(&token_digest) {
            return Err(StoreError::Corrupt("invite token collision".into()));
        }
        self.commit(
            state,
            Event::InviteCreated {
                digest: token_digest,
                invite: invite.clone(),
            },
        )?;
        Ok(())
    }

    fn enroll(
        &self,
        token_digest: [u8; 32],
        identity_key: IdentityPublicKey,
        now: u64,
    ) -> Result<EnrollOutcome, StoreError> {
        self.check_running()?;
        let state = self.lock();
        let Some(invite) = state.invites.get(&token_digest) else {
            return Ok(EnrollOutcome::InviteUnknown);
        };
        if invite.used_at.is_some() {
            return Ok(EnrollOutcome::InviteUsed);
        }
        if now >= invite.expires_at {
            return Ok(EnrollOutcome::InviteExpired);
        }
        let id = identity_key.device_id();
        if state.devices.contains_key(&id) {
            return Ok(EnrollOutcome::AlreadyEnrolled);
        }
        let device = Device {
            id,
            identity_key,
            role: invite.role,
            enrolled_at: now,
            revoked_at: None,
        };
        self.commit(
            state,
            Event::DeviceEnrolled {
                digest: token_digest,
                device: device.clone(),
            },
        )?;
        Ok(EnrollOutcome::Enrolled(device))
    }

    fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.check_running()?;
        Ok(self.lock().devices.get(id).cloned())
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.check_running()?;
        Ok(self.lock().devices.values().cloned().collect())
    }

    fn revoke(&self, id: &DeviceId, now: u64) -> Result<RevokeOutcome, StoreError> {
        self.check_running()?;
        let state = self.lock();
        let Some(device) = state.devices.get(id) else {
            return Ok(RevokeOutcome::NotFound);
        };
        if let Some(revoked_at) = device.revoked_at {
            return Ok(RevokeOutcome::Revoked { revoked_at });
        }
        if device.role == Role::Admin
            && !state
                .devices
                .values()
                .any(|d| d.role == Role::Admin && d.revoked_at.is_none() && d.id != *id)
        {
            return Ok(RevokeOutcome::LastAdmin);
        }
        self.commit(
            state,
            Event::DeviceRevoked {
                device_id: *id,
                at: now,
            },
        )?;
        Ok(RevokeOutcome::Revoked { revoked_at: now })
    }

    fn put_roster(&self, version: u64, bytes: Vec<u8>) -> Result<Result<(), u64>, StoreError> {
        self.check_running()?;
        let state = self.lock();
        if let Some((current, _)) = &state.mailbox.roster
            && *current >= version
        {
            return Ok(Err(*current));
        }
        self.commit(
            state,
            Event::Mail(MailEvent::RosterStored { version, bytes }),
        )?;
        Ok(Ok(()))
    }

    fn roster(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_running()?;
        Ok(self.lock().mailbox.roster.as_ref().map(|(_, b)| b.clone()))
    }

    fn publish_prekeys(
        &self,
        device: DeviceId,
        prekeys: Vec<StoredPrekey>,
    ) -> Result<(), StoreError> {
        self.check_running()?;
        let state = self.lock();
        self.commit(
            state,
            Event::Mail(MailEvent::PrekeysPublished { device, prekeys }),
        )?;
        Ok(())
    }

    fn take_prekey(&self, device: &DeviceId, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_running()?;
        let state = self.lock();
        let Some(prekey) = state.mailbox.prekey_for(device, now).cloned() else {
            return Ok(None);
        };
        if prekey.one_time {
            let taken = MailEvent::PrekeyTaken {
                device: *device,
                id: prekey.id,
            };
            self.commit(state, Event::Mail(taken))?;
        }
        Ok(Some(prekey.signed))
    }

    fn store_envelope(
        &self,
        sender: DeviceId,
        digest: [u8; 32],
        recipients: Vec<DeviceId>,
        bytes: Vec<u8>,
    ) -> Result<(u64, bool), StoreError> {
        self.check_running()?;
        let state = self.lock();
        if let Some(id) = state.mailbox.digests.get(&digest) {
            return Ok((*id, true));
        }
        let stored = MailEvent::EnvelopeStored {
            sender,
            digest,
            recipients,
            bytes,
        };
        let seq = self.commit(state, Event::Mail(stored))?;
        Ok((seq, false))
    }

    fn inbox(
        &self,
        device: &DeviceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.check_running()?;
        Ok(self.lock().mailbox.inbox(device, after, limit))
    }

    fn ack_inbox(&self, device: DeviceId, up_to: u64) -> Result<(), StoreError> {
        self.check_running()?;
        let state = self.lock();
        if state
            .mailbox
            .acked
            .get(&device)
            .is_some_and(|a| *a >= up_to)
        {
            return Ok(());
        }
        self.commit(state, Event::Mail(MailEvent::InboxAcked { device, up_to }))?;
        Ok(())
    }
}

/// What `hotline-server verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The chain walk's findings.
    pub verified: Verified,
    /// The exported checkpoint checked against the store, if one was given.
    pub external_checkpoint: Option<u64>,
}

/// Checks a whole store: the header against the key, every record, the
/// chain, every checkpoint, and optionally a checkpoint exported earlier
/// (which detects a rollback to an older copy of the store).
pub fn verify_store(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
    exported: Option<&str>,
) -> Result<VerifyReport, OpenError> {
    let keys = open_keys(data_dir, key, Create::Never)?;
    let external =
        match exported {
            None => None,
            Some(text) => {
                let (store_id, cp) = crate::log::record::Checkpoint::parse_export(text)
                    .ok_or_else(|| LogError::Tampered {
                        seq: 0,
                        reason: "the exported checkpoint is not in the expected format".into(),
                    })?;
                if store_id != keys.store_id() {
                    return Err(LogError::Tampered {
                        seq: 0,
                        reason: "the exported checkpoint belongs to another store".into(),
                    }
                    .into());
                }
                if !cp.verify(&keys.checkpoint_public_key(), &store_id) {
                    return Err(LogError::Tampered {
                        seq: cp.seq,
                        reason: "the exported checkpoint's signature does not verify".into(),
                    }
                    .into());
                }
                Some(cp)
            }
        };
    let engine = SledEngine::open(&engine_dir(data_dir), cache_bytes).map_err(LogError::from)?;
    let want: Vec<u64> = external.iter().map(|cp| cp.seq).collect();
    let verified = crate::log::verify(&engine, &keys, data_dir, &want)?;
    if let Some(cp) = external {
        match verified.hashes.get(&cp.seq) {
            Some(hash) if *hash == cp.head => {}
            Some(_) => {
                return Err(LogError::Tampered {
                    seq: cp.seq,
                    reason:
                        "the store differs from the exported checkpoint (replaced or rewritten)"
                            .into(),
                }
                .into());
            }
            None => {
                return Err(LogError::Tampered {
                    seq: verified.head_seq + 1,
                    reason: format!(
                        "rolled back: the store ends at record {} but the exported checkpoint covers record {}",
                        verified.head_seq, cp.seq
                    ),
                }
                .into());
            }
        }
    }
    Ok(VerifyReport {
        external_checkpoint: external.map(|cp| cp.seq),
        verified,
    })
}

/// A store in `dir` (created on first use, with a key file beside it),
/// for unit tests of the layers above.
#[cfg(test)]
pub(crate) fn open_in(dir: &Path) -> LogStore {
    let key = dir.join("master.key");
    if !key.exists() {
        keys::generate_key_file(&key).expect("key");
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let keys = open_keys(
        &data,
        &KeySource::File(key),
        Create::IfMissing(KdfParams::default()),
    )
    .expect("keys");
    LogStore::open(&data, keys, 1 << 20).expect("open")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_proto::IdentityKeyPair;

    fn open(dir: &Path) -> LogStore {
        open_in(dir)
    }

    fn invite(role: Role, expires_at: u64) -> InviteRecord {
        InviteRecord {
            role,
            created_at: 1,
            expires_at,
            used_at: None,
        }
    }

    fn key(seed: u8) -> IdentityPublicKey {
        IdentityKeyPair::from_seed(&[seed; 32]).public_key()
    }

    #[test]
    fn an_invite_enrolls_once_and_not_after_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store
            .put_invite([1; 32], &invite(Role::Officer, 100))
            .expect("put");
        store
            .put_invite([2; 32], &invite(Role::Officer, 100))
            .expect("put");
        let EnrollOutcome::Enrolled(d) = store.enroll([1; 32], key(1), 50).expect("enroll") else {
            panic!("first use enrolls");
        };
        assert_eq!(d.role, Role::Officer);
        assert_eq!(
            store.enroll([1; 32], key(2), 51).expect("enroll"),
            EnrollOutcome::InviteUsed
        );
        assert_eq!(
            store.enroll([2; 32], key(1), 51).expect("enroll"),
            EnrollOutcome::AlreadyEnrolled
        );
        assert_eq!(
            store.enroll([2; 32], key(3), 100).expect("enroll"),
            EnrollOutcome::InviteExpired
        );
        assert_eq!(
            store.enroll([9; 32], key(3), 1).expect("enroll"),
            EnrollOutcome::InviteUnknown
        );
        assert!(matches!(
            store.enroll([2; 32], key(3), 99).expect("enroll"),
            EnrollOutcome::Enrolled(_)
        ));
    }

    #[test]
    fn the_last_admin_cannot_be_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store
            .put_invite([1; 32], &invite(Role::Admin, 100))
            .expect("put");
        store
            .put_invite([2; 32], &invite(Role::Admin, 100))
            .expect("put");
        store.enroll([1; 32], key(1), 5).expect("enroll");
        store.enroll([2; 32], key(2), 5).expect("enroll");
        let (a, b) = (key(1).device_id(), key(2).device_id());
        assert_eq!(
            store.revoke(&a, 7).expect("revoke"),
            RevokeOutcome::Revoked { revoked_at: 7 }
        );
        assert_eq!(
            store.revoke(&a, 8).expect("revoke"),
            RevokeOutcome::Revoked { revoked_at: 7 }
        );
        assert_eq!(
            store.revoke(&b, 9).expect("revoke"),
            RevokeOutcome::LastAdmin
        );
        assert_eq!(
            store.revoke(&key(3).device_id(), 9).expect("revoke"),
            RevokeOutcome::NotFound
        );
    }

    #[test]
    fn a_start_replays_only_what_the_snapshot_does_not_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        for i in 0..100u8 {
            store
                .put_invite([i; 32], &invite(Role::Defender, 1000))
                .expect("put");
        }
        store.close().expect("close");
        drop(store);

        let store = open(dir.path());
        assert_eq!(
            store.replayed_at_open(),
            0,
            "everything came from the snapshot"
        );
        assert_eq!(store.state().invites.len(), 100);
        for i in 100..105u8 {
            store
                .put_invite([i; 32], &invite(Role::Defender, 1000))
                .expect("put");
        }
        // Dropped without a snapshot (as in a crash after the appends).
        drop(store);

        let store = open(dir.path());
        assert_eq!(store.replayed_at_open(), 5);
        // Not due until `every` events followed the last snapshot.
        assert!(!store.snapshot_if_due(6).expect("check"));
        assert!(store.snapshot_if_due(5).expect("snapshot"));
        assert!(!store.snapshot_if_due(1).expect("nothing new"));
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.replayed_at_open(), 0, "the due snapshot holds all");
        let before = store.state();
        assert_eq!(before.invites.len(), 105);
        // A full rebuild from the log arrives at the same state.
        assert_eq!(store.rebuild().expect("rebuild"), 105);
        assert_eq!(store.state(), before);
        drop(store);

        // A damaged snapshot is ignored and the state rebuilt from the log.
        let db = sled::open(dir.path().join("data").join("store")).expect("sled");
        let snaps = db.open_tree("snapshots").expect("tree");
        let (k, v) = snaps.iter().next_back().expect("one").expect("read");
        let mut bad = v.to_vec();
        bad[20] ^= 1;
        snaps.insert(k, bad).expect("insert");
        db.flush().expect("flush");
        drop(snaps);
        drop(db);
        let store = open(dir.path());
        assert_eq!(store.replayed_at_open(), 105);
        assert_eq!(store.state(), before);
    }
}
