//! The append-only, encrypted, hash-chained event log: the server's source
//! of truth.
//!
//! * [`keys`]: the master key, the keys derived from it, the store header.
//! * [`record`]: how a record and a checkpoint are laid out on disk.
//! * [`keyring`]: per-case subkeys that can be destroyed (crypto-shredding).
//! * [`engine`]: where the bytes go: the [`engine::LogEngine`] seam.
//! * [`segment`]: the segment file format (header, frames, checksums).
//! * [`segments`]: the engine on append-only segment files, with the
//!   snapshot cache (sled) beside them.
//!
//! Appends are group-committed: [`Log::submit`] seals and chains a record
//! at once (in the caller's order) and queues it; [`Ticket::wait`] returns
//! when the batch holding it is on disk. The first waiter to find no commit
//! running becomes the leader: it takes everything queued, writes it as one
//! batch with one flush and one `fdatasync`, and wakes the others. A lone
//! writer commits in its own thread, with no hand-off; many writers share
//! each commit.
//!
//! If the engine fails to make a batch durable (a full disk, an I/O error
//! on write or on `fdatasync`), the log is *degraded*: nothing of that
//! batch, nor of anything queued behind it (it chains to the lost
//! records), is acknowledged; the chain head goes back to the last durable
//! record, so the next record chains to it; and every write is refused at
//! once with [`LogError::Degraded`], while reads go on. [`Log::try_heal`]
//! (called with back-off by the server) re-reads the tail from disk,
//! checks it against the last durable record, makes one small durable
//! write, and lets writes resume: no restart. Each degradation starts a
//! new *generation*, so that a caller holding state derived from records
//! that were lost can tell ([`Log::generation`]).

pub mod engine;
pub mod fs;
pub mod head;
pub mod keyring;
pub mod keys;
pub mod record;
pub mod segment;
pub mod segments;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use engine::{EngineError, LogEngine};
use head::{Head, HeadFile};
use keyring::{Keyring, KeyringError};
use keys::StoreKeys;
use record::{Checkpoint, Hash, MAIN_KEY_ID, RecordError};

/// Largest plaintext a record may hold. A record's event arrived in one
/// protocol frame, so it is far below this; the limit keeps every segment
/// frame small enough that a declared length beyond it is damage, never a
/// torn write ([`segment::MAX_PAYLOAD`]).
pub const MAX_RECORD_LEN: usize = 112 * 1024;
/// A checkpoint is signed at least every this many records ...
pub const CHECKPOINT_EVERY_RECORDS: u64 = 1000;
/// ... and at least this often while records are being written (by the
/// commits) or after they stopped (by [`Log::checkpoint_if_uncovered`],
/// which the server calls about every second).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Envelope kinds inside a record's plaintext.
const KIND_EVENT: u8 = 1;
const KIND_KEY_ERASED: u8 = 2;

/// Which key seals a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKey {
    /// The store's record key.
    Main,
    /// The subkey of one case; see [`Log::case_key`].
    Case(CaseKey),
}

/// The keyed-hash id of a case's subkey.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaseKey([u8; 16]);

impl std::fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaseKey(..)")
    }
}

/// Why the log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The keyring failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// Verification found the store altered. `seq` is the first bad record.
    #[error("the store fails verification{}: {reason}", at_record(.seq))]
    Tampered {
        /// The first record (or checkpoint position) that is wrong.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The log is closed: it takes no more writes.
    #[error("the log is closed")]
    Stopped,
    /// A write failed to reach the disk (full, or failing): nothing of it
    /// was saved, and writes are refused until the log heals by itself.
    #[error("storage is full or failing; nothing was saved ({reason})")]
    Degraded {
        /// Why the last write failed (an I/O error's text: no content).
        reason: String,
    },
    /// The log was opened read-only: it takes no writes.
    #[error("the store is served read-only; nothing can be saved")]
    ReadOnly,
    /// A record was too large.
    #[error("record of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Sealing failed (no randomness).
    #[error("sealing failed: {0}")]
    Seal(#[from] RecordError),
}

impl LogError {
    /// The engine's error, with damage found in its files reported like
    /// any other verification failure: naming the first bad record.
    pub fn from_engine(e: EngineError) -> LogError {
        match e {
            EngineError::Damaged(d) => LogError::Tampered {
                seq: d.seq,
                reason: d.to_string(),
            },
            other => LogError::Engine(other),
        }
    }
}

fn tampered(seq: u64, reason: impl Into<String>) -> LogError {
    LogError::Tampered {
        seq,
        reason: reason.into(),
    }
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An application event.
    Event(Vec<u8>),
    /// A record whose case subkey was destroyed.
    Shredded,
    /// The log's own record of a destroyed subkey.
    KeyErased,
}

/// What a verification walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Records in the chain.
    pub records: u64,
    /// Sequence number of the last record (0 if empty).
    pub head_seq: u64,
    /// Chain hash of the last record.
    pub head: Hash,
    /// Valid checkpoints found.
    pub checkpoints: u64,
    /// Sequence number of the newest checkpoint (0 if none).
    pub last_checkpoint_seq: u64,
    /// Records whose case subkey was destroyed (still chained).
    pub shredded: u64,
    /// Chain hashes at the sequence numbers asked for.
    pub hashes: HashMap<u64, Hash>,
}

/// The first record a read-only open left out, and why.
pub type LeftOut = (u64, String);

/// Why and since when the log refuses writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    /// Unix time of the failure.
    pub since: u64,
    /// The failed operation's error (no content).
    pub reason: String,
}

struct Tail {
    next_seq: u64,
    head: Hash,
    pending: Vec<(u64, Vec<u8>)>,
    durable_seq: u64,
    /// Chain hash of `durable_seq`: where the chain goes back to when a
    /// batch is lost.
    durable_head: Hash,
    /// Set while writes are refused after a failed write.
    degraded: Option<Degraded>,
    /// Bumped by every failed write.
    generation: u64,
    /// For each ended generation, the last record durable when it ended:
    /// tickets of that generation beyond it were lost.
    ended: Vec<u64>,
    /// Opened read-only: every write is refused.
    read_only: bool,
    closing: bool,
    /// A leader is writing a batch.
    committing: bool,
    last_checkpoint_seq: u64,
    last_checkpoint_at: Instant,
}

struct Shared {
    engine: Arc<dyn LogEngine>,
    /// `None` for a log opened read-only.
    head_file: Mutex<Option<HeadFile>>,
    keys: Arc<StoreKeys>,
    tail: Mutex<Tail>,
    /// Signalled when a batch is durable (or failed).
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the running commit to finish.
    fn wait_done<'a>(&'a self, tail: MutexGuard<'a, Tail>) -> MutexGuard<'a, Tail> {
        self.done.wait(tail).unwrap_or_else(|p| p.into_inner())
    }
}

/// The log. Dropping it (or [`Log::close`]) commits what is pending and
/// signs a final checkpoint.
pub struct Log {
    shared: Arc<Shared>,
    keyring: Mutex<Keyring>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Log(..)")
    }
}

/// A submitted record; [`Ticket::wait`] blocks until it is durable.
#[derive(Debug)]
#[must_use = "a record is not durable until its ticket is waited on"]
pub struct Ticket {
    seq: u64,
    generation: u64,
}

impl Ticket {
    /// The record's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Blocks until the record is on disk.
    pub fn wait(self, log: &Log) -> Result<u64, LogError> {
        log.wait_durable(self.seq, Some(self.generation))?;
        Ok(self.seq)
    }
}

impl Log {
    /// Verifies the whole chain in `engine` and opens the log for appends.
    /// `want` lists sequence numbers whose chain hashes the caller needs
    /// (for snapshots).
    pub fn open(
        engine: Arc<dyn LogEngine>,
        keys: Arc<StoreKeys>,
        dir: &std::path::Path,
        want: &[u64],
    ) -> Result<(Log, Verified), LogError> {
        Self::open_with_fs(engine, keys, dir, want, fs::real())
    }

    /// [`Log::open`], writing `chain.head` and the keyring through `fs`
    /// (give the engine the same, [`segments::SegmentEngine::open_with_fs`]).
    pub fn open_with_fs(
        engine: Arc<dyn LogEngine>,
        keys: Arc<StoreKeys>,
        dir: &std::path::Path,
        want: &[u64],
        fs: fs::Fs,
    ) -> Result<(Log, Verified), LogError> {
        // Verify with the keyring and head file opened read-only: a store
        // refused here gets no file created or changed.
        let (verified, erased_live) = {
            let keyring = Keyring::open(&dir.join(KEYRING_FILE), &keys, false)?;
            let (_, head) = HeadFile::open(
                &dir.join(HEAD_FILE),
                false,
                &keys.checkpoint_public_key(),
                &keys.store_id(),
            )
            .map_err(|e| LogError::Engine(EngineError::Io(e.to_string())))?;
            walk_against_head(engine.as_ref(), &keys, &keyring, want, head, dir)?
        };
        let mut keyring = Keyring::open_with_fs(&dir.join(KEYRING_FILE), &keys, true, fs.clone())?;
        let (head_file, _) = HeadFile::open_with_fs(
            &dir.join(HEAD_FILE),
            true,
            &keys.checkpoint_public_key(),
            &keys.store_id(),
            fs,
        )
        .map_err(|e| LogError::Engine(EngineError::Io(e.to_string())))?;
        let head_file = head_file
            .ok_or_else(|| LogError::Engine(EngineError::Io("head file not writable".into())))?;
        // Finish an erasure that a crash interrupted after its record.
        for key_id in erased_live {
            keyring.erase(&key_id)?;
        }
        let log = Log::at_head(engine, keys, keyring, Some(head_file), &verified);
        Ok((log, verified))
    }

    /// The log whose records `verified` describes, ready to append after
    /// its head; read-only if it has no `head_file`.
    fn at_head(
        engine: Arc<dyn LogEngine>,
        keys: Arc<StoreKeys>,
        keyring: Keyring,
        head_file: Option<HeadFile>,
        verified: &Verified,
    ) -> Log {
        let tail = Tail {
            next_seq: verified.head_seq + 1,
            head: verified.head,
            pending: Vec::new(),
            durable_seq: verified.head_seq,
            durable_head: verified.head,
            degraded: None,
            generation: 0,
            ended: Vec::new(),
            read_only: head_file.is_none(),
            closing: false,
            committing: false,
            last_checkpoint_seq: verified.last_checkpoint_seq,
            last_checkpoint_at: Instant::now(),
        };
        let shared = Arc::new(Shared {
            engine,
            head_file: Mutex::new(head_file),
            keys,
            tail: Mutex::new(tail),
            done: Condvar::new(),
        });
        Log {
            shared,
            keyring: Mutex::new(keyring),
        }
    }

    /// Opens the records of `engine` (opened read-only, up to any damage
    /// in its files) for reading only: they are walked as
    /// [`verify_prefix`] does, and if a record fails (a seal, the chain),
    /// only the records before it are kept. Nothing is opened for writing
    /// and nothing is written; every write is refused
    /// ([`LogError::ReadOnly`]). Returns the log, what it holds, and the
    /// first record left out, if one was, with why.
    pub fn open_read_only(
        engine: Arc<dyn LogEngine>,
        keys: Arc<StoreKeys>,
        dir: &std::path::Path,
    ) -> Result<(Log, Verified, Option<LeftOut>), LogError> {
        let keyring = Keyring::open(&dir.join(KEYRING_FILE), &keys, false)?;
        let (engine, verified, bad): (Arc<dyn LogEngine>, Verified, _) =
            match walk(engine.as_ref(), &keys, &keyring, &[]) {
                Ok((v, _)) => (engine, v, None),
                Err(LogError::Tampered { seq, reason }) if seq >= 1 => {
                    let prefix: Arc<dyn LogEngine> = Arc::new(engine::Prefix::new(engine, seq - 1));
                    let (v, _) = walk(prefix.as_ref(), &keys, &keyring, &[])?;
                    (prefix, v, Some((seq, reason)))
                }
                Err(e) => return Err(e),
            };
        let log = Log::at_head(engine, keys, keyring, None, &verified);
        Ok((log, verified, bad))
    }

    fn keyring(&self) -> MutexGuard<'_, Keyring> {
        self.keyring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subkey id of `case_id`, creating the subkey (durably) if needed.
    pub fn case_key(&self, case_id: &[u8]) -> Result<CaseKey, LogError> {
        let id = self.shared.keys.index_id(b"case", case_id);
        self.keyring().create(id, &self.shared.keys)?;
        Ok(CaseKey(id))
    }

    /// Whether the subkey of `case_id` exists (made and not destroyed).
    pub fn has_case_key(&self, case_id: &[u8]) -> bool {
        let id = self.shared.keys.index_id(b"case", case_id);
        self.keyring().contains(&id)
    }

    /// Seals `event` as the next record and queues it for commit. The
    /// order of `submit` calls is the order of the log.
    pub fn submit(&self, key: RecordKey, event: &[u8]) -> Result<Ticket, LogError> {
        let mut plain = Vec::with_capacity(1 + event.len());
        plain.push(KIND_EVENT);
        plain.extend_from_slice(event);
        self.submit_raw(key, &plain)
    }

    fn submit_raw(&self, key: RecordKey, plain: &[u8]) -> Result<Ticket, LogError> {
        if plain.len() > MAX_RECORD_LEN {
            return Err(LogError::TooLarge(plain.len()));
        }
        // Lock order: keyring, then tail.
        let keyring = self.keyring();
        let (aead, key_id) = match key {
            RecordKey::Main => (&self.shared.keys.record, MAIN_KEY_ID),
            RecordKey::Case(CaseKey(id)) => match keyring.get(&id) {
                Some(k) => (k, id),
                None => return Err(LogError::Keyring(KeyringError::Damaged)),
            },
        };
        let mut tail = self.shared.lock();
        refuse_writes(&tail)?;
        let seq = tail.next_seq;
        let stored = record::seal(aead, key_id, seq, &tail.head, plain)?;
        tail.head = record::chain_hash(seq, &stored);
        tail.next_seq += 1;
        tail.pending.push((seq, stored));
        Ok(Ticket {
            seq,
            generation: tail.generation,
        })
    }

    /// Appends one event and waits until it is durable.
    pub fn append(&self, key: RecordKey, event: &[u8]) -> Result<u64, LogError> {
        self.submit(key, event)?.wait(self)
    }

    /// Blocks until every record up to `seq` is durable.
    pub fn wait_for(&self, seq: u64) -> Result<(), LogError> {
        self.wait_durable(seq, None)
    }

    /// Blocks until every record up to `seq`, submitted in `generation`
    /// ([`Log::generation`] when they were submitted), is durable. Fails
    /// if a write failed since and `seq` was not durable by then: a
    /// record now at `seq` is another one.
    pub fn wait_for_in(&self, seq: u64, generation: u64) -> Result<(), LogError> {
        self.wait_durable(seq, Some(generation))
    }

    /// Signs a checkpoint of the durable head (with whatever is pending)
    /// and writes it to `chain.head`, if a durable record is not covered
    /// by a checkpoint yet: commits sign one at most every
    /// [`CHECKPOINT_EVERY`] while records are written, but not when the
    /// writes stop, so the server calls this about every second. Returns
    /// whether it signed one. Nothing happens while degraded, read-only
    /// or closing.
    pub fn checkpoint_if_uncovered(&self) -> Result<bool, LogError> {
        let mut tail = self.shared.lock();
        loop {
            if tail.closing || tail.read_only || tail.degraded.is_some() {
                return Ok(false);
            }
            if tail.committing {
                tail = self.shared.wait_done(tail);
                continue;
            }
            if tail.durable_seq <= tail.last_checkpoint_seq {
                return Ok(false);
            }
            let tail = commit(&self.shared, tail, true);
            return match &tail.degraded {
                Some(_) => Err(degraded_error(&tail)),
                None => Ok(true),
            };
        }
    }

    /// Whether the log is closed.
    pub fn is_stopped(&self) -> bool {
        self.shared.lock().closing
    }

    /// Why writes are refused, since when, if they are.
    pub fn degraded(&self) -> Option<Degraded> {
        self.shared.lock().degraded.clone()
    }

    /// At start, before anything is written: one small durable write (the
    /// engine's probe). If the disk does not take it (full, failing), the
    /// log starts degraded, exactly as after a failed write: reads go on,
    /// writes are refused, and [`Log::try_heal`] lets them resume once the
    /// disk takes writes again. Returns whether writes work.
    pub fn probe_at_start(&self) -> bool {
        let mut tail = self.shared.lock();
        if tail.read_only || tail.closing {
            return false;
        }
        if tail.degraded.is_some() {
            return false;
        }
        match self.shared.engine.probe_write() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the data directory's disk does not take writes at start: \
                     serving reads, refusing writes until it does (checked with back-off)"
                );
                tail.degraded = Some(Degraded {
                    since: crate::unix_now(),
                    reason: e.to_string(),
                });
                false
            }
        }
    }

    /// Whether the log was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.shared.lock().read_only
    }

    /// How many times a write failed since the log was opened. State
    /// derived from records submitted in an earlier generation may hold
    /// records that were lost: rebuild it from the durable records.
    pub fn generation(&self) -> u64 {
        self.shared.lock().generation
    }

    /// After a failed write: re-reads the tail from disk (whatever was
    /// written but not synced is treated as lost and cut off), checks
    /// that the last record there is the last durable one, and makes one
    /// small durable write (the head file rewritten, or a probe). On
    /// success writes resume. Returns `Ok(true)` if the log healed (or
    /// was not degraded), `Ok(false)` if the disk still fails (the reason
    /// is updated).
    pub fn try_heal(&self) -> Result<bool, LogError> {
        let mut tail = self.shared.lock();
        if tail.degraded.is_none() {
            return Ok(true);
        }
        while tail.committing {
            tail = self.shared.wait_done(tail);
        }
        let (durable_seq, durable_head) = (tail.durable_seq, tail.durable_head);
        let generation = tail.generation;
        // The disk may be slow to fail: readers (which take this lock for
        // a moment) must not wait for it. While degraded nothing is
        // submitted or committed, so the tail cannot move meanwhile.
        drop(tail);
        let probe = (|| -> Result<(), LogError> {
            // The tail as the disk holds it now (anything past the last
            // durable record cut off), checked against the chain head.
            let held = self
                .shared
                .engine
                .reread_tail()
                .map_err(LogError::from_engine)?;
            let agrees = match &held {
                None => durable_seq == 0,
                Some((seq, stored)) => {
                    *seq == durable_seq && record::chain_hash(*seq, stored) == durable_head
                }
            };
            if !agrees {
                return Err(tampered(
                    held.as_ref().map_or(1, |(seq, _)| *seq),
                    format!(
                        "after a failed write the last record on disk is not the last \
                         durable one ({durable_seq})"
                    ),
                ));
            }
            self.shared.engine.probe_write()?;
            // Rewrite the head file with the newest durable checkpoint
            // (its write may be what failed).
            if let Some(cp) = self.latest_checkpoint()? {
                write_head(&self.shared, &cp)?;
            }
            Ok(())
        })();
        let mut tail = self.shared.lock();
        if tail.generation != generation || tail.durable_seq != durable_seq {
            // Not expected while degraded; try again on the next round.
            return Ok(false);
        }
        match probe {
            Ok(()) => {
                let since = tail.degraded.take().map_or(0, |d| d.since);
                tracing::warn!(
                    degraded_for_s = crate::unix_now().saturating_sub(since),
                    "the log's storage works again; writes resume"
                );
                Ok(true)
            }
            Err(e @ LogError::Tampered { .. }) => Err(e),
            Err(e) => {
                if let Some(d) = tail.degraded.as_mut() {
                    d.reason = e.to_string();
                }
                Ok(false)
            }
        }
    }

    /// The chain hash of durable record `seq`.
    pub fn hash_at(&self, seq: u64) -> Result<Hash, LogError> {
        let stored = self
            .shared
            .engine
            .get(seq)?
            .ok_or_else(|| tampered(seq, "record missing"))?;
        Ok(record::chain_hash(seq, &stored))
    }

    fn wait_durable(&self, seq: u64, generation: Option<u64>) -> Result<(), LogError> {
        let mut tail = self.shared.lock();
        let generation = generation.unwrap_or(tail.generation);
        loop {
            if generation != tail.generation {
                // A write failed after this record was submitted: it is
                // durable only if it was before the failed batch.
                let durable_then = tail.ended.get(generation as usize).copied().unwrap_or(0);
                if seq <= durable_then {
                    return Ok(());
                }
                return Err(degraded_error(&tail));
            }
            if tail.durable_seq >= seq {
                return Ok(());
            }
            if tail.degraded.is_some() {
                return Err(degraded_error(&tail));
            }
            if tail.committing {
                tail = self.shared.wait_done(tail);
            } else {
                tail = commit(&self.shared, tail, false);
            }
        }
    }

    /// Destroys a case's subkey: records a `KeyErased` entry (durably),
    /// then overwrites the subkey. Its records stay in the chain, unreadable.
    pub fn erase_case(&self, key: CaseKey) -> Result<(), LogError> {
        let mut plain = vec![KIND_KEY_ERASED];
        plain.extend_from_slice(&key.0);
        self.submit_raw(RecordKey::Main, &plain)?.wait(self)?;
        self.keyring().erase(&key.0)?;
        Ok(())
    }

    /// The last submitted record's sequence number and chain hash.
    pub fn head(&self) -> (u64, Hash) {
        let tail = self.shared.lock();
        (tail.next_seq - 1, tail.head)
    }

    /// Reads and opens record `seq`.
    pub fn read(&self, seq: u64) -> Result<Option<Entry>, LogError> {
        let Some(stored) = self.shared.engine.get(seq)? else {
            return Ok(None);
        };
        let keyring = self.keyring();
        open_entry(&self.shared.keys, &keyring, seq, &stored).map(Some)
    }

    /// Calls `f` for every record after `from`, in order.
    pub fn replay(
        &self,
        from: u64,
        mut f: impl FnMut(u64, Entry) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let keyring = self.keyring();
        for item in self.shared.engine.scan(from + 1) {
            let (seq, stored) = item?;
            f(seq, open_entry(&self.shared.keys, &keyring, seq, &stored)?)?;
        }
        Ok(())
    }

    /// The newest checkpoint in the store.
    /// Reads that one only (the engine finds it without reading the others).
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, LogError> {
        let Some((seq, bytes)) = self.shared.engine.latest_checkpoint()? else {
            return Ok(None);
        };
        Checkpoint::from_bytes(&bytes)
            .map(Some)
            .ok_or_else(|| tampered(seq, "checkpoint is malformed"))
    }

    /// The engine (for snapshots).
    pub fn engine(&self) -> &dyn LogEngine {
        self.shared.engine.as_ref()
    }

    /// The keys (for snapshots).
    pub fn keys(&self) -> &StoreKeys {
        &self.shared.keys
    }

    /// Closes a log that was only opened (nothing submitted) without
    /// writing anything: no final checkpoint (for a start that stops
    /// before serving, e.g. because another process holds the store).
    pub fn discard(self) {
        self.shared.lock().closing = true;
    }

    /// Commits what is pending and signs a final checkpoint of the head.
    /// Later writes fail with [`LogError::Stopped`].
    pub fn close(&self) -> Result<(), LogError> {
        let mut tail = self.shared.lock();
        if tail.closing || tail.read_only {
            tail.closing = true;
            return match &tail.degraded {
                Some(_) => Err(degraded_error(&tail)),
                None => Ok(()),
            };
        }
        tail.closing = true;
        loop {
            if tail.degraded.is_some() {
                return Err(degraded_error(&tail));
            }
            if tail.committing {
                tail = self.shared.wait_done(tail);
                continue;
            }
            let head_seq = tail.next_seq - 1;
            if tail.durable_seq == head_seq && tail.last_checkpoint_seq == head_seq {
                return Ok(());
            }
            tail = commit(&self.shared, tail, true);
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn open_entry(
    keys: &StoreKeys,
    keyring: &Keyring,
    seq: u64,
    stored: &[u8],
) -> Result<Entry, LogError> {
    let header = record::header(stored).map_err(|e| tampered(seq, e.to_string()))?;
    let key = if header.key_id == MAIN_KEY_ID {
        &keys.record
    } else {
        match keyring.get(&header.key_id) {
            Some(k) => k,
            None => return Ok(Entry::Shredded),
        }
    };
    let plain = record::open(key, seq, stored).map_err(|e| tampered(seq, e.to_string()))?;
    match plain.split_first() {
        Some((&KIND_EVENT, body)) => Ok(Entry::Event(body.to_vec())),
        Some((&KIND_KEY_ERASED, body)) if body.len() == 16 => Ok(Entry::KeyErased),
        _ => Err(tampered(seq, "unknown record kind")),
    }
}

/// Walks the whole store: sequence numbers contiguous from 1, every
/// `prev_hash` equal to the previous record's chain hash, every record
/// authentic under its key (or its key recorded as erased), every
/// checkpoint signed and matching the chain, and none beyond its end.
///
/// Returns the findings and the erased keys that are still live (an
/// erasure a crash interrupted).
fn walk(
    engine: &dyn LogEngine,
    keys: &StoreKeys,
    keyring: &Keyring,
    want: &[u64],
) -> Result<(Verified, Vec<[u8; 16]>), LogError> {
    let store_id = keys.store_id();
    let public_key = keys.checkpoint_public_key();
    let mut checkpoints = BTreeMap::new();
    for item in engine.checkpoints() {
        let (seq, bytes) = item?;
        let cp = Checkpoint::from_bytes(&bytes)
            .ok_or_else(|| tampered(seq, "checkpoint is malformed"))?;
        if cp.seq != seq || !cp.verify(&public_key, &store_id) {
            return Err(tampered(seq, "checkpoint signature does not verify"));
        }
        checkpoints.insert(seq, cp);
    }
    let wanted: HashSet<u64> = want.iter().copied().collect();
    let mut v = Verified {
        head: record::genesis(&store_id),
        ..Verified::default()
    };
    let mut erased: HashSet<[u8; 16]> = HashSet::new();
    let mut missing_key: Vec<(u64, [u8; 16])> = Vec::new();
    for item in engine.scan(1) {
        let (seq, stored) = item?;
        let expected = v.head_seq + 1;
        if seq != expected {
            return Err(tampered(
                expected,
                if seq > expected {
                    "record missing (deleted)"
                } else {
                    "record out of order"
                },
            ));
        }
        let header = record::header(&stored).map_err(|e| tampered(seq, e.to_string()))?;
        if header.prev_hash != v.head {
            return Err(tampered(
                seq,
                "chain broken: record altered, reordered or duplicated",
            ));
        }
        if header.key_id != MAIN_KEY_ID && !keyring.contains(&header.key_id) {
            missing_key.push((seq, header.key_id));
            v.shredded += 1;
        } else {
            let key = if header.key_id == MAIN_KEY_ID {
                &keys.record
            } else {
                keyring
                    .get(&header.key_id)
                    .ok_or_else(|| tampered(seq, "key vanished"))?
            };
            let plain =
                record::open(key, seq, &stored).map_err(|e| tampered(seq, e.to_string()))?;
            match plain.split_first() {
                Some((&KIND_EVENT, _)) => {}
                Some((&KIND_KEY_ERASED, body)) if body.len() == 16 => {
                    let mut id = [0u8; 16];
                    id.copy_from_slice(body);
                    erased.insert(id);
                }
                _ => return Err(tampered(seq, "unknown record kind")),
            }
        }
        v.head = record::chain_hash(seq, &stored);
        v.head_seq = seq;
        v.records += 1;
        if wanted.contains(&seq) {
            v.hashes.insert(seq, v.head);
        }
        if let Some(cp) = checkpoints.get(&seq) {
            if cp.head != v.head {
                return Err(tampered(seq, "chain does not match the signed checkpoint"));
            }
            v.checkpoints += 1;
            v.last_checkpoint_seq = seq;
        }
    }
    if let Some((&seq, _)) = checkpoints.range(v.head_seq + 1..).next() {
        return Err(tampered(
            v.head_seq + 1,
            format!(
                "records {}..={seq} were deleted: a signed checkpoint covers them",
                v.head_seq + 1
            ),
        ));
    }
    // A record whose key is gone is only legitimate if the log says the
    // key was erased.
    if let Some((seq, _)) = missing_key.iter().find(|(_, id)| !erased.contains(id)) {
        return Err(tampered(
            *seq,
            "record sealed under a key missing from the keyring",
        ));
    }
    let erased_live = erased
        .into_iter()
        .filter(|id| keyring.contains(id))
        .collect();
    Ok((v, erased_live))
}

/// Writes everything pending as one batch, as the leader. Called with the
/// tail locked and no commit running; unlocks while writing; returns the
/// lock. `force_checkpoint` signs the head even if none is due.
fn commit<'a>(
    shared: &'a Shared,
    mut tail: MutexGuard<'a, Tail>,
    force_checkpoint: bool,
) -> MutexGuard<'a, Tail> {
    tail.committing = true;
    let batch = std::mem::take(&mut tail.pending);
    let last = batch.last().map_or(tail.durable_seq, |(s, _)| *s);
    let due = force_checkpoint
        || last - tail.last_checkpoint_seq >= CHECKPOINT_EVERY_RECORDS
        || (last > tail.last_checkpoint_seq
            && tail.last_checkpoint_at.elapsed() >= CHECKPOINT_EVERY);
    // Everything pending was taken, so `head` is the hash of `last`.
    let checkpoint =
        (due && last > tail.last_checkpoint_seq).then(|| sign_checkpoint(shared, last, tail.head));
    drop(tail);

    let mut result = shared
        .engine
        .append(&batch, checkpoint.map(|cp| (cp.seq, cp.to_bytes())));
    let engine_done = result.is_ok();
    // The head file follows the engine: it never names a checkpoint that
    // is not durable there.
    if let (Ok(()), Some(cp)) = (&result, &checkpoint) {
        result = write_head(shared, cp);
    }

    let mut tail = shared.lock();
    tail.committing = false;
    match result {
        Ok(()) => {
            tail.durable_seq = last;
            tail.durable_head = batch.last().map_or(tail.durable_head, |(seq, stored)| {
                record::chain_hash(*seq, stored)
            });
            if let Some(cp) = checkpoint {
                tail.last_checkpoint_seq = cp.seq;
                tail.last_checkpoint_at = Instant::now();
            }
        }
        Err(e) if engine_done => {
            // The batch is durable in the segments; only the head file's
            // copy of its checkpoint failed (it keeps the previous one).
            tail.durable_seq = last;
            tail.durable_head = batch.last().map_or(tail.durable_head, |(seq, stored)| {
                record::chain_hash(*seq, stored)
            });
            if let Some(cp) = checkpoint {
                tail.last_checkpoint_seq = cp.seq;
                tail.last_checkpoint_at = Instant::now();
            }
            degrade(&mut tail, &e);
        }
        Err(e) => degrade(&mut tail, &e),
    }
    shared.done.notify_all();
    tail
}

/// After a failed write: nothing past the last durable record is kept
/// (the batch and everything queued behind it chain to lost records), the
/// chain head goes back to that record, and writes are refused until
/// [`Log::try_heal`] succeeds.
fn degrade(tail: &mut Tail, e: &EngineError) {
    tracing::warn!(
        error = %e,
        lost = tail.next_seq - 1 - tail.durable_seq,
        "a log write failed to reach the disk: nothing of it was acknowledged; \
         writes are refused until the storage works again (reads go on)"
    );
    let durable = tail.durable_seq;
    tail.ended.push(durable);
    tail.generation += 1;
    tail.next_seq = durable + 1;
    tail.head = tail.durable_head;
    tail.pending.clear();
    if tail.degraded.is_none() {
        tail.degraded = Some(Degraded {
            since: crate::unix_now(),
            reason: e.to_string(),
        });
    }
}

fn degraded_error(tail: &Tail) -> LogError {
    match &tail.degraded {
        Some(d) => LogError::Degraded {
            reason: d.reason.clone(),
        },
        None if tail.read_only => LogError::ReadOnly,
        None if tail.closing => LogError::Stopped,
        // A later generation healed already: this record was still lost.
        None => LogError::Degraded {
            reason: "an earlier write failed".into(),
        },
    }
}

/// Refuses a write on a closed, read-only or degraded log.
fn refuse_writes(tail: &Tail) -> Result<(), LogError> {
    if tail.read_only {
        return Err(LogError::ReadOnly);
    }
    if tail.closing {
        return Err(LogError::Stopped);
    }
    if let Some(d) = &tail.degraded {
        return Err(LogError::Degraded {
            reason: d.reason.clone(),
        });
    }
    Ok(())
}

fn write_head(shared: &Shared, cp: &Checkpoint) -> Result<(), EngineError> {
    match shared
        .head_file
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
    {
        Some(f) => f.write(cp).map_err(|e| EngineError::Io(e.to_string())),
        None => Err(EngineError::Io("the log is open read-only".into())),
    }
}

fn sign_checkpoint(shared: &Shared, seq: u64, head: Hash) -> Checkpoint {
    Checkpoint::sign(
        &shared.keys.signing,
        &shared.keys.store_id(),
        seq,
        head,
        crate::unix_now(),
    )
}

/// The keyring's file name in the store directory.
pub const KEYRING_FILE: &str = "keyring";
/// The head file's name in the store directory.
pub const HEAD_FILE: &str = "chain.head";

/// Verifies a store without opening it for appends: the same walk as
/// start-up. `want` lists sequence numbers whose chain hashes to return.
pub fn verify(
    engine: &dyn LogEngine,
    keys: &StoreKeys,
    dir: &std::path::Path,
    want: &[u64],
) -> Result<Verified, LogError> {
    let head = read_head(keys, dir)?;
    verify_against(engine, keys, dir, want, head)
}

/// Reads `chain.head` (read-only). For a store a server is writing, read
/// it before the segments: the server writes it only after the records
/// it names are durable, so every record it names is then in the
/// segments read after it.
pub fn read_head(keys: &StoreKeys, dir: &std::path::Path) -> Result<Head, LogError> {
    let (_, head) = HeadFile::open(
        &dir.join(HEAD_FILE),
        false,
        &keys.checkpoint_public_key(),
        &keys.store_id(),
    )
    .map_err(|e| LogError::Engine(EngineError::Io(e.to_string())))?;
    Ok(head)
}

/// [`verify`] against a `head` read earlier ([`read_head`]).
pub fn verify_against(
    engine: &dyn LogEngine,
    keys: &StoreKeys,
    dir: &std::path::Path,
    want: &[u64],
    head: Head,
) -> Result<Verified, LogError> {
    let keyring = Keyring::open(&dir.join(KEYRING_FILE), keys, false)?;
    walk_against_head(engine, keys, &keyring, want, head, dir).map(|(v, _)| v)
}

/// Verifies the records an engine holds (for the records before damage
/// found in the files), without the check against `chain.head`, which
/// covers records beyond them. Reads only.
pub fn verify_prefix(
    engine: &dyn LogEngine,
    keys: &StoreKeys,
    dir: &std::path::Path,
) -> Result<Verified, LogError> {
    let keyring = Keyring::open(&dir.join(KEYRING_FILE), keys, false)?;
    walk(engine, keys, &keyring, &[]).map(|(v, _)| v)
}

/// Calls `f` for every record of a verified store, in order, opened with
/// its key (reading the keyring without changing it): for comparing the
/// state two copies of a store derive, without opening either for writes.
pub fn entries(
    engine: &dyn LogEngine,
    keys: &StoreKeys,
    dir: &std::path::Path,
    mut f: impl FnMut(u64, Entry) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let keyring = Keyring::open(&dir.join(KEYRING_FILE), keys, false)?;
    for item in engine.scan(1) {
        let (seq, stored) = item?;
        f(seq, open_entry(keys, &keyring, seq, &stored)?)?;
    }
    Ok(())
}

/// Opens stored records with the store's keys (reading the keyring
/// without changing it), whether or not they are part of a chain that
/// verifies: for saying what a recovery would give up. Each item is the
/// record's entry, or why it does not open (damaged, or not this store's).
pub fn open_stored<'a>(
    keys: &StoreKeys,
    dir: &std::path::Path,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<Vec<Result<Entry, LogError>>, LogError> {
    let keyring = Keyring::open(&dir.join(KEYRING_FILE), keys, false)?;
    Ok(records
        .into_iter()
        .map(|(seq, stored)| open_entry(keys, &keyring, seq, stored))
        .collect())
}

/// [`walk`], then checks that the chain reaches the head file's
/// checkpoint and agrees with it.
fn walk_against_head(
    engine: &dyn LogEngine,
    keys: &StoreKeys,
    keyring: &Keyring,
    want: &[u64],
    head: Head,
    dir: &std::path::Path,
) -> Result<(Verified, Vec<[u8; 16]>), LogError> {
    let cp = match head {
        Head::Empty => None,
        Head::Checkpoint(cp) => Some(cp),
        Head::Damaged => {
            // The records are checked all the same: what the operator is
            // told names the file and what the log still holds.
            let (verified, _) = walk(engine, keys, keyring, want)?;
            return Err(tampered(
                0,
                head_unusable(
                    dir,
                    "is damaged: both copies fail their checks",
                    true,
                    &verified,
                ),
            ));
        }
    };
    let mut want = want.to_vec();
    want.extend(cp.map(|cp| cp.seq));
    let (verified, erased) = walk(engine, keys, keyring, &want)?;
    if let Some(cp) = cp {
        match verified.hashes.get(&cp.seq) {
            Some(h) if *h == cp.head => {}
            Some(_) => {
                return Err(tampered(
                    cp.seq,
                    "the chain differs from the head file's signed checkpoint",
                ));
            }
            None => {
                return Err(tampered(
                    verified.head_seq + 1,
                    format!(
                        "{}: the head file holds a signed checkpoint at {}",
                        missing_records(verified.head_seq + 1, cp.seq),
                        cp.seq
                    ),
                ));
            }
        }
    } else if verified.records > 0 && verified.checkpoints > 0 {
        return Err(tampered(
            0,
            head_unusable(dir, "is missing", false, &verified),
        ));
    }
    Ok((verified, erased))
}

/// Why `chain.head` cannot be used (`what`: "is damaged: ...", "is
/// missing"), naming the file and what the log's records, all verified,
/// still hold, and the way forward. `present`: the file exists (and is
/// kept aside by the recovery). Starts with [`HEAD_UNUSABLE`].
pub fn head_unusable(
    dir: &std::path::Path,
    what: &str,
    present: bool,
    verified: &Verified,
) -> String {
    let signed = match verified.last_checkpoint_seq {
        0 => ", with no checkpoint among them".to_owned(),
        m => format!(", signed by the checkpoint at record {m}"),
    };
    format!(
        "{HEAD_UNUSABLE}{}) {what}; the log's records are intact up to record {}{signed}. \
         `hotline-server recover --truncate-after-copy` rewrites it from the log's newest \
         checkpoint{} (see docs/operations.md)",
        dir.join(HEAD_FILE).display(),
        verified.head_seq,
        if present {
            ", keeping this file aside"
        } else {
            ""
        },
    )
}

/// " at record N", or nothing for 0 (a fault of `chain.head` itself, not
/// of a record).
fn at_record(seq: &u64) -> String {
    match seq {
        0 => String::new(),
        n => format!(" at record {n}"),
    }
}

/// How the reason of a [`LogError::Tampered`] at record 0 starts when
/// `chain.head` is damaged or missing while the records are sound.
pub const HEAD_UNUSABLE: &str = "chain.head (";

/// "record 54 is missing" or "records 54 to 60 are missing", as an
/// operator reads it.
pub fn missing_records(first: u64, last: u64) -> String {
    if first >= last {
        format!("record {first} is missing")
    } else {
        format!("records {first} to {last} are missing")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_records_read_as_words() {
        assert_eq!(super::missing_records(54, 54), "record 54 is missing");
        assert_eq!(
            super::missing_records(54, 60),
            "records 54 to 60 are missing"
        );
    }

    use super::engine::Item;
    use super::segments::{MAX_SEGMENT_BYTES, Mode, SegmentEngine};
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The segment engine, with appends that fail on demand (a full disk, a
    /// dying device).
    struct Failing {
        inner: SegmentEngine,
        fail: AtomicBool,
        /// A failing append leaves bytes past the acknowledged end (as a
        /// write whose `fdatasync` failed does).
        unsynced: AtomicBool,
        /// Checkpoints read through the engine.
        checkpoints_read: std::sync::atomic::AtomicUsize,
    }

    fn no_space() -> EngineError {
        EngineError::Io(std::io::Error::from_raw_os_error(28).to_string())
    }

    impl LogEngine for Failing {
        fn append(
            &self,
            records: &[(u64, Vec<u8>)],
            cp: Option<(u64, Vec<u8>)>,
        ) -> Result<(), EngineError> {
            if self.fail.load(Ordering::SeqCst) {
                if self.unsynced.load(Ordering::SeqCst)
                    && let Some(name) = self.inner.segment_names().last()
                {
                    use std::io::Write as _;
                    let path = self.inner.dir().join(name);
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(path)
                        .expect("segment");
                    f.write_all(b"written but never synced").expect("write");
                }
                return Err(no_space());
            }
            self.inner.append(records, cp)
        }
        fn reread_tail(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
            self.inner.reread_tail()
        }
        fn probe_write(&self) -> Result<(), EngineError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(no_space());
            }
            LogEngine::probe_write(&self.inner)
        }
        fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, EngineError> {
            self.inner.get(seq)
        }
        fn scan(&self, from: u64) -> Box<dyn Iterator<Item = Item> + '_> {
            self.inner.scan(from)
        }
        fn last(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
            self.inner.last()
        }
        fn checkpoints(&self) -> Box<dyn Iterator<Item = Item> + '_> {
            Box::new(self.inner.checkpoints().inspect(|_| {
                self.checkpoints_read.fetch_add(1, Ordering::SeqCst);
            }))
        }
        fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
            let latest = self.inner.latest_checkpoint()?;
            self.checkpoints_read
                .fetch_add(usize::from(latest.is_some()), Ordering::SeqCst);
            Ok(latest)
        }
        fn put_snapshot(&self, seq: u64, bytes: &[u8]) -> Result<(), EngineError> {
            self.inner.put_snapshot(seq, bytes)
        }
        fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
            self.inner.latest_snapshot()
        }
        fn clear_snapshots(&self) -> Result<(), EngineError> {
            self.inner.clear_snapshots()
        }
    }

    fn segments(dir: &std::path::Path, keys: &StoreKeys) -> SegmentEngine {
        SegmentEngine::open(
            &dir.join("log"),
            keys.store_id(),
            Mode::Writable {
                max_segment_bytes: MAX_SEGMENT_BYTES,
            },
        )
        .expect("engine")
    }

    fn keys(dir: &std::path::Path) -> Arc<StoreKeys> {
        let key = dir.join("master.key");
        if !key.exists() {
            keys::generate_key_file(&key).expect("key");
        }
        let source = keys::KeySource::File(key);
        let k = if keys::exists(dir) {
            keys::open(dir, &source).expect("open").1
        } else {
            keys::create(dir, &source, keys::KdfParams::default(), 1)
                .expect("create")
                .1
        };
        Arc::new(k)
    }

    /// A [`Failing`] engine over new segments in `dir`, not failing yet.
    fn failing(dir: &std::path::Path) -> Arc<Failing> {
        Arc::new(Failing {
            inner: segments(dir, &keys(dir)),
            fail: AtomicBool::new(false),
            unsynced: AtomicBool::new(false),
            checkpoints_read: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    #[test]
    fn the_newest_checkpoint_is_found_without_reading_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = failing(dir.path());
        let (log, _) = Log::open(engine.clone(), keys(dir.path()), dir.path(), &[]).expect("open");
        for i in 0..50u8 {
            log.append(RecordKey::Main, &[i]).expect("durable");
            // Covered by the commit itself or now: one checkpoint each.
            log.checkpoint_if_uncovered().expect("signed");
        }
        assert_eq!(engine.inner.checkpoints().count(), 50);
        // A running log asks for the newest (a heal, an export): one
        // read, however many checkpoints the log holds.
        engine.checkpoints_read.store(0, Ordering::SeqCst);
        let newest = log.latest_checkpoint().expect("read").expect("one");
        assert_eq!(newest.seq, 50);
        assert_eq!(engine.checkpoints_read.load(Ordering::SeqCst), 1);
        log.close().expect("close");
    }

    #[test]
    fn a_failed_write_degrades_the_log_and_it_heals_without_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = failing(dir.path());
        let (log, _) = Log::open(engine.clone(), keys(dir.path()), dir.path(), &[]).expect("open");
        for i in 0..10u8 {
            log.append(RecordKey::Main, &[i]).expect("durable");
        }
        let (_, head_before) = log.head();
        // The disk fills: the write reaches the file but not the disk.
        engine.fail.store(true, Ordering::SeqCst);
        engine.unsynced.store(true, Ordering::SeqCst);
        let err = log
            .append(RecordKey::Main, b"lost")
            .expect_err("not acknowledged");
        assert!(matches!(err, LogError::Degraded { .. }), "{err}");
        assert!(err.to_string().contains("nothing was saved"), "{err}");
        let degraded = log.degraded().expect("degraded");
        assert!(degraded.reason.contains("No space"), "{}", degraded.reason);
        // The lost record is not in the chain: the head is the last durable one.
        assert_eq!(log.head(), (10, head_before));
        assert_eq!(log.generation(), 1);
        // Writes are refused at once; reads go on.
        assert!(matches!(
            log.submit(RecordKey::Main, b"refused"),
            Err(LogError::Degraded { .. })
        ));
        assert_eq!(log.read(10).expect("read"), Some(Entry::Event(vec![9])));
        assert_eq!(log.read(11).expect("read"), None);
        // Healing fails while the disk is still full ...
        assert!(!log.try_heal().expect("still failing"));
        assert!(log.degraded().is_some());
        // ... and succeeds once there is room: no restart.
        engine.fail.store(false, Ordering::SeqCst);
        assert!(log.try_heal().expect("heals"));
        assert!(log.degraded().is_none());
        // The next record chains to the last durable one.
        assert_eq!(log.append(RecordKey::Main, b"after").expect("writes"), 11);
        for i in 12..=20u64 {
            assert_eq!(log.append(RecordKey::Main, &[i as u8]).expect("w"), i);
        }
        let v = verify(&engine.inner, &keys(dir.path()), dir.path(), &[]).expect("verifies");
        assert_eq!(v.records, 20);
        drop(log);
        drop(engine);

        // A restart sees exactly the acknowledged records, verified.
        let engine = Arc::new(segments(dir.path(), &keys(dir.path())));
        let (log, verified) = Log::open(engine, keys(dir.path()), dir.path(), &[]).expect("reopen");
        assert_eq!(verified.records, 20);
        // The unsynced bytes were cut off before the next write (nothing
        // was left for the restart to set aside as a torn tail).
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("log"))
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with("seg-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(
            log.read(11).expect("read"),
            Some(Entry::Event(b"after".to_vec()))
        );
        for seq in 1..=10u64 {
            assert_eq!(
                log.read(seq).expect("read"),
                Some(Entry::Event(vec![(seq - 1) as u8]))
            );
        }
    }

    #[test]
    fn records_written_before_the_writes_stop_are_covered_by_chain_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Arc::new(segments(dir.path(), &keys(dir.path())));
        let (log, _) = Log::open(engine, keys(dir.path()), dir.path(), &[]).expect("open");
        for i in 0..3u8 {
            log.append(RecordKey::Main, &[i]).expect("durable");
        }
        let head_seq = || match read_head(&keys(dir.path()), dir.path()).expect("head") {
            Head::Checkpoint(cp) => cp.seq,
            _ => 0,
        };
        // Written within a second of the open: no commit signed one.
        assert!(head_seq() < 3);
        // What the storage watch calls about every second.
        assert!(log.checkpoint_if_uncovered().expect("signed"));
        assert_eq!(head_seq(), 3);
        assert!(!log.checkpoint_if_uncovered().expect("nothing new"));
        let cps: Vec<u64> = log
            .engine()
            .checkpoints()
            .map(|i| i.expect("cp").0)
            .collect();
        assert_eq!(cps.last(), Some(&3), "in the segments too");
    }

    #[test]
    fn writers_queued_behind_a_failed_batch_are_refused_and_never_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = failing(dir.path());
        let (log, _) = Log::open(engine.clone(), keys(dir.path()), dir.path(), &[]).expect("open");
        log.append(RecordKey::Main, b"first").expect("durable");
        // Three records submitted together; the batch holding them fails.
        let tickets: Vec<_> = (0..3u8)
            .map(|i| log.submit(RecordKey::Main, &[i]).expect("submitted"))
            .collect();
        engine.fail.store(true, Ordering::SeqCst);
        for t in tickets {
            assert!(matches!(t.wait(&log), Err(LogError::Degraded { .. })));
        }
        engine.fail.store(false, Ordering::SeqCst);
        assert!(log.try_heal().expect("heals"));
        // Their sequence numbers are taken by the next records, and the
        // old tickets of the lost ones never read as durable.
        let lost = Ticket {
            seq: 2,
            generation: 0,
        };
        assert_eq!(log.append(RecordKey::Main, b"next").expect("w"), 2);
        assert_eq!(log.append(RecordKey::Main, b"then").expect("w"), 3);
        assert!(
            lost.wait(&log).is_err(),
            "a lost record is never acknowledged"
        );
        let durable = Ticket {
            seq: 1,
            generation: 0,
        };
        assert_eq!(durable.wait(&log).expect("durable before the failure"), 1);
        let v = verify(&engine.inner, &keys(dir.path()), dir.path(), &[]).expect("verifies");
        assert_eq!(v.records, 3);
    }

    #[test]
    fn concurrent_writers_share_commits_and_keep_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Arc::new(segments(dir.path(), &keys(dir.path())));
        let (log, _) = Log::open(engine, keys(dir.path()), dir.path(), &[]).expect("open");
        let log = Arc::new(log);
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    (0..50u8)
                        .map(|i| log.append(RecordKey::Main, &[t, i]).expect("append"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=400).collect::<Vec<_>>(),
            "every append got its own place"
        );
        // Each writer's records are in its own order.
        let mut last = [None::<u8>; 8];
        log.replay(0, |_, entry| {
            let Entry::Event(e) = entry else {
                panic!("event")
            };
            let (t, i) = (e[0] as usize, e[1]);
            assert!(last[t].is_none_or(|p| p < i));
            last[t] = Some(i);
            Ok(())
        })
        .expect("replay");
    }
}
