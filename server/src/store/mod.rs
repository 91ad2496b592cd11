//! Durability: every change is an event, committed to the encrypted log
//! and flushed before the answer.
//!
//! [`LogStore`] keeps the server's state on the log: each operation takes
//! the state lock, asks the domain what the change is (the pure decisions
//! of [`crate::domain`]), then stages the event (sealed under the key it
//! belongs to, chained, applied to the state) and waits for the flush
//! outside the lock, so that concurrent writers share one `fdatasync`. A
//! client is never told "done" about something a crash could lose.
//!
//! This file opens, replays and commits; the operations live with their
//! domain: `devices.rs`, `mailbox.rs`, `alerts.rs`, `checkins.rs`; then
//! `snapshot.rs`, `verify.rs` and `codec/` (every stored form). The
//! storage engine underneath is behind [`crate::log::engine::LogEngine`].

pub mod alerts;
mod backup;
pub mod cases;
pub mod certificate;
mod checkins;
pub mod codec;
mod devices;
mod mailbox;
mod migrate;
mod recover;
mod snapshot;
mod verify;

pub use crate::files::LOCK_FILE;
/// [`restore`] with the final rename through the log's file operations.
pub use backup::restore_with_fs;
pub use backup::{BackupReport, backup, in_use, restore, running_checkpoint};
pub use mailbox::RosterRefused;
pub use recover::{
    CutContents, RecoverReport, RecoveryPlan, keep_head_written_by_recovery, plan_recovery,
    recover_truncate_after_copy, undo_commands,
};
pub use snapshot::SNAPSHOT_EVERY;
pub use verify::{VerifyReport, verify_store, verify_store_in};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::info;

use crate::domain::{ApplyError, Event, State};
use crate::log::engine::{EngineError, LogEngine};
use crate::log::keys::{self, KdfParams, KeyError, KeySource, StoreKeys};
use crate::log::segments::{self, MAX_SEGMENT_BYTES, Mode, SegmentEngine};
use crate::log::{Entry, Log, LogError, RecordKey};

/// The store could not do what was asked; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (disk full, I/O error).
    #[error("storage failed: {0}")]
    Io(String),
    /// Another process holds the data directory's lock: a running
    /// server, or any tool holding `<data_dir>/lock` (an operator's
    /// `flock`, a backup tool). The binary names the file and how to find
    /// the process.
    #[error(
        "the data directory is held by another process \
         (a running hotline-server, or a tool holding its lock file)"
    )]
    Locked,
    /// A stored record does not decode: the store is damaged.
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    /// The disk is full or failing: nothing was saved, and writes are
    /// refused until the log heals by itself (reads go on).
    #[error("storage is full or failing; nothing was saved: {0}")]
    Degraded(String),
    /// The store is served read-only (a recovery choice): nothing can be
    /// saved.
    #[error("the store is served read-only; nothing can be saved")]
    ReadOnly,
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
            LogError::Engine(EngineError::Damaged(d)) => StoreError::Corrupt(d.to_string()),
            LogError::Tampered { .. } => StoreError::Corrupt(e.to_string()),
            LogError::Degraded { reason } => StoreError::Degraded(reason),
            LogError::ReadOnly => StoreError::ReadOnly,
            other => StoreError::Io(other.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------

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

/// Paths of the store's files inside a data directory: the log's
/// segment files ...
fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// ... the snapshot cache (sled; rebuildable) ...
fn cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cache")
}

/// ... and the store of the earlier layout (sled holding the log), kept
/// after its migration until the operator removes it.
fn old_store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

fn keyring_path(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::log::KEYRING_FILE)
}

/// Takes the data directory's lock ([`crate::files::LOCK_FILE`]), held
/// for as long as the value lives: refused ([`StoreError::Locked`]) while
/// another process holds it, before anything of the log is read.
pub(crate) fn take_lock(data_dir: &Path) -> Result<crate::files::DataDirLock, OpenError> {
    match crate::files::lock_data_dir(data_dir) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(StoreError::Locked.into()),
        Err(e) => Err(StoreError::Io(format!("cannot lock the data directory: {e}")).into()),
    }
}

/// Whether a server of the earlier version (which holds only sled's lock
/// on `cache/db`) runs on `data_dir`.
fn in_use_by_earlier_version(data_dir: &Path) -> bool {
    !crate::files::data_dir_locked(data_dir) && backup::in_use(data_dir)
}

/// What the records served read-only lack compared with `chain.head` (as
/// `verify` checks it): the first record missing and why, if the head
/// file names a checkpoint beyond the last record (the newest segments
/// were lost), is damaged, or is missing while the log has checkpoints.
/// A chain that differs from the signed checkpoint is not served at all.
fn missing_after(
    log: &Log,
    verified: &crate::log::Verified,
    head: crate::log::head::Head,
) -> Result<Option<(u64, String)>, OpenError> {
    use crate::log::head::Head;
    let next = verified.head_seq + 1;
    Ok(match head {
        Head::Checkpoint(cp) if cp.seq > verified.head_seq => Some((
            next,
            format!(
                "{}: chain.head holds a signed checkpoint at {} \
                 (the newest segment files were lost or cut)",
                crate::log::missing_records(next, cp.seq),
                cp.seq
            ),
        )),
        Head::Checkpoint(cp) => {
            if log.hash_at(cp.seq)? != cp.head {
                return Err(LogError::Tampered {
                    seq: cp.seq,
                    reason: "the chain differs from chain.head's signed checkpoint: not served"
                        .into(),
                }
                .into());
            }
            None
        }
        Head::Damaged => Some((
            next,
            format!(
                "chain.head is damaged: whether records after {} are missing cannot be checked",
                verified.head_seq
            ),
        )),
        Head::Empty if verified.checkpoints > 0 => Some((
            next,
            format!(
                "chain.head is missing: whether records after {} are missing cannot be checked",
                verified.head_seq
            ),
        )),
        Head::Empty => None,
    })
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
        Create::Never if !data_dir.exists() => {
            Err(KeyError::DataDirMissing(data_dir.to_owned()).into())
        }
        Create::Never => Err(KeyError::HeaderMissing(data_dir.to_owned()).into()),
        Create::IfMissing(kdf) => {
            if old_store_dir(data_dir).exists()
                || log_dir(data_dir).exists()
                || keyring_path(data_dir).exists()
            {
                // Data without a header: never start a new store over it.
                return Err(KeyError::HeaderMissing(data_dir.to_owned()).into());
            }
            Ok(keys::create(data_dir, source, kdf, crate::unix_now())?.1)
        }
    }
}

/// The warning for a snapshot cache holding state up to record `cached`
/// when the log ends at record `end`.
fn snapshot_ahead_message(cached: u64, end: u64) -> String {
    format!(
        "the snapshot cache holds state up to record {cached} but the log ends at record {end}: \
         records {}..{cached} that this server had are gone: a rollback of the data directory or \
         a lost write (or a `recover` that gave them up). Check with `hotline-server verify \
         --expect-head LINE` and your kept head lines; the cache was moved aside, the state \
         rebuilt from the log, and the server serves",
        end + 1
    )
}

/// The store on the encrypted log, with its state in memory.
pub struct LogStore {
    log: Log,
    state: Mutex<State>,
    snapshot_seq: Mutex<u64>,
    replayed_at_open: u64,
    /// The log generation the state was derived in ([`Log::generation`]).
    state_generation: AtomicU64,
    /// An event was applied to the state but its record refused.
    state_dirty: AtomicBool,
    /// The data directory's lock, held while the store is open for
    /// writing (`None` when served read-only).
    _lock: Option<crate::files::DataDirLock>,
    /// Found at open: the snapshot cache held state up to record `.0`, but
    /// the log ends at record `.1` (see [`LogStore::snapshot_ahead_of_log`]).
    snapshot_ahead: Option<(u64, u64)>,
    /// What the operator should read at start (a migration done, the old
    /// layout to remove): printed in the start banner.
    start_notes: Vec<String>,
    /// The rosters the log holds, read back from it when an older version
    /// is asked for ([`LogStore::roster_of_version`]); not part of the
    /// state (nothing stored changes).
    older_rosters: Mutex<mailbox::OlderRosters>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore(..)")
    }
}

impl LogStore {
    /// Opens the store in `data_dir` with `keys`: verifies the whole log,
    /// loads the newest valid snapshot and replays the events after it. A
    /// store of the earlier layout (sled only) is migrated first.
    pub fn open(data_dir: &Path, keys: StoreKeys, cache_bytes: u64) -> Result<LogStore, OpenError> {
        Self::open_with(data_dir, keys, cache_bytes, MAX_SEGMENT_BYTES)
    }

    /// [`LogStore::open`], starting a new segment file every
    /// `max_segment_bytes` (tests use small segments).
    pub fn open_with(
        data_dir: &Path,
        keys: StoreKeys,
        cache_bytes: u64,
        max_segment_bytes: u64,
    ) -> Result<LogStore, OpenError> {
        Self::open_with_fs(
            data_dir,
            keys,
            cache_bytes,
            max_segment_bytes,
            crate::log::fs::real(),
        )
    }

    /// [`LogStore::open_with`], changing the log's durable files only
    /// through `fs` (tests inject faults there: [`crate::log::fs`]).
    pub fn open_with_fs(
        data_dir: &Path,
        keys: StoreKeys,
        cache_bytes: u64,
        max_segment_bytes: u64,
        fs: crate::log::fs::Fs,
    ) -> Result<LogStore, OpenError> {
        // The data directory's lock first, before the log is read: a second
        // process that scanned the log while this one appended would
        // append at a stale end and overwrite what was acknowledged.
        let lock = take_lock(data_dir)?;
        Self::open_locked_with(data_dir, keys, cache_bytes, max_segment_bytes, fs, lock)
    }

    /// [`LogStore::open`] for a caller that already holds the data
    /// directory's lock ([`take_lock`]); the store keeps it.
    pub(crate) fn open_locked(
        data_dir: &Path,
        keys: StoreKeys,
        cache_bytes: u64,
        fs: crate::log::fs::Fs,
        lock: crate::files::DataDirLock,
    ) -> Result<LogStore, OpenError> {
        Self::open_locked_with(data_dir, keys, cache_bytes, MAX_SEGMENT_BYTES, fs, lock)
    }

    fn open_locked_with(
        data_dir: &Path,
        keys: StoreKeys,
        cache_bytes: u64,
        max_segment_bytes: u64,
        fs: crate::log::fs::Fs,
        mut lock: crate::files::DataDirLock,
    ) -> Result<LogStore, OpenError> {
        // A server of the earlier version holds sled's lock on store/: it
        // would go on acknowledging into store/, which this version no
        // longer reads. Held shared from here on, so it cannot start either.
        if old_store_dir(data_dir).exists() {
            lock.hold_old_store(&old_store_dir(data_dir)).map_err(|e| {
                if e.kind() == fs2::lock_contended_error().kind() {
                    StoreError::Io(
                        "a server of the earlier version is running on this data directory \
                             (it holds store/): stop the old server first"
                            .into(),
                    )
                } else {
                    StoreError::Io(format!("cannot lock store/db: {e}"))
                }
            })?;
        }
        // The segments are read and verified before anything in the data
        // directory is opened for writing (sled's open rewrites its files):
        // a store refused for damage is left exactly as it was.
        let mut cache = None;
        if migrate::needed(data_dir) {
            cache = Some(migrate::migrate(data_dir, &keys, fs.clone(), || {
                segments::open_cache(&cache_dir(data_dir), cache_bytes)
                    .map_err(|e| LogError::from_engine(e).into())
            })?);
        }
        if log_dir(data_dir).exists() {
            // A staging directory beside log/ is moved aside, never deleted.
            migrate::clear_staging(data_dir)?;
        }
        let mut start_notes = Vec::new();
        if cache.is_some() {
            start_notes.push(
                "migrated the store from its earlier layout (store/) to segment files (log/): \
                 the same chain head and state, checked; store/ is kept untouched"
                    .to_owned(),
            );
            match migrate::tighten_modes(data_dir) {
                Ok(0) => {}
                Ok(n) => {
                    info!(
                        changed = n,
                        "made the data directory (store/ included) readable by the owner only \
                         (0700 directories, 0600 files): an earlier version had left them open"
                    );
                    start_notes.push(format!(
                        "made {n} directories and files in the data directory (store/ included) \
                         readable by the owner only (0700/0600): an earlier version had left them \
                         readable by others"
                    ));
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "cannot make the data directory and store/ readable by the owner only"
                    );
                    start_notes.push(format!(
                        "WARNING: cannot make the data directory and store/ readable by the owner \
                         only ({e}): run chmod -R go-rwx on them"
                    ));
                }
            }
        }
        if old_store_dir(data_dir).exists() {
            info!(
                "the store's earlier layout (store/) was migrated to log/ and is no longer used; \
                 remove it once a backup of the new layout is taken"
            );
            start_notes.push(format!(
                "{} (the earlier layout) is no longer used: take a backup of the new layout \
                 (hotline-server backup --to DIR), then remove it",
                old_store_dir(data_dir).display()
            ));
        }
        let engine = Arc::new(
            SegmentEngine::open_with_fs(
                &log_dir(data_dir),
                keys.store_id(),
                Mode::Writable { max_segment_bytes },
                fs.clone(),
            )
            .map_err(LogError::from_engine)?,
        );
        let (log, mut verified) =
            Log::open_with_fs(engine.clone(), Arc::new(keys), data_dir, &[], fs.clone())
                .map_err(|e| verify::with_log_end(e, engine.end(), engine.torn_tail().as_ref()))?;
        // Why the state is rebuilt from the log rather than loaded from a
        // snapshot, if the cache was lost, damaged or cannot be opened.
        let migrated = cache.is_some();
        let mut cache_note = None;
        let cache = match cache {
            Some(c) => Some(c),
            None => {
                let existed = cache_dir(data_dir).exists();
                match segments::open_cache_noting_with_fs(&cache_dir(data_dir), cache_bytes, &fs) {
                    Ok((c, moved)) => {
                        cache_note = match moved {
                            Some(to) => Some(format!(
                                "was damaged and was moved aside to {}",
                                to.display()
                            )),
                            None if !existed => Some("was missing".to_owned()),
                            None => None,
                        };
                        Some(c)
                    }
                    Err(EngineError::Locked) => {
                        // Another process has the store: leave without a write.
                        log.discard();
                        return Err(LogError::from_engine(EngineError::Locked).into());
                    }
                    Err(e) => {
                        // A full disk or an I/O error says nothing about the
                        // cache: it stays where it is, and the server runs
                        // without it (the next snapshot tries again).
                        tracing::warn!(
                            cache = %cache_dir(data_dir).display(),
                            error = %e,
                            "the snapshot cache cannot be opened; running without it \
                             (nothing was moved; the state is rebuilt from the log in memory)"
                        );
                        cache_note = Some(format!("cannot be opened ({e})"));
                        None
                    }
                }
            }
        };
        match cache {
            Some(c) => engine.set_cache(c),
            None => engine.run_without_cache(&cache_dir(data_dir), cache_bytes),
        }
        // The chain verified, up to chain.head's checkpoint: an incomplete
        // final write after it was never acknowledged.
        set_torn_tail_aside_or_defer(&engine)?;
        let snapshot = match engine.latest_snapshot() {
            Ok(s) => s,
            Err(e @ EngineError::Corrupt(_)) => {
                tracing::warn!(error = %e, "the snapshot cache does not read; rebuilding");
                let moved = engine
                    .reset_cache(&cache_dir(data_dir), cache_bytes)
                    .map_err(LogError::from_engine)?;
                cache_note = Some(match moved {
                    Some(to) => format!("does not read and was moved aside to {}", to.display()),
                    None => "does not read".to_owned(),
                });
                None
            }
            Err(e) => {
                // Not damage (an I/O error): the cache stays where it is.
                tracing::warn!(error = %e, "the snapshot cache cannot be read now; rebuilding");
                cache_note = Some(format!("cannot be read now ({e})"));
                None
            }
        };
        if let Some((seq, _)) = &snapshot
            && *seq <= verified.head_seq
        {
            verified.hashes.insert(*seq, log.hash_at(*seq)?);
        }
        // A snapshot cache ahead of the log: the log lost records this
        // server once had (a backup never carries the cache, so a restore
        // never does this). Said loudly; the store still serves.
        let snapshot_ahead = snapshot
            .as_ref()
            .map(|(seq, _)| *seq)
            .filter(|seq| *seq > verified.head_seq)
            .map(|seq| (seq, verified.head_seq));
        if let Some((cached, end)) = snapshot_ahead {
            tracing::error!(
                snapshot_record = cached,
                log_end = end,
                "{}",
                snapshot_ahead_message(cached, end)
            );
        }
        let had_snapshot = snapshot.is_some();
        let state =
            snapshot.and_then(|(seq, bytes)| Self::open_snapshot(&log, &verified, seq, &bytes));
        if had_snapshot && state.is_none() {
            let moved = engine
                .reset_cache(&cache_dir(data_dir), cache_bytes)
                .map_err(LogError::from_engine)?;
            cache_note = Some(match moved {
                Some(to) => format!(
                    "held a snapshot that does not match the log, and was moved aside to {}",
                    to.display()
                ),
                None => "held a snapshot that does not match the log".to_owned(),
            });
        }
        if migrated {
            cache_note = None;
        }
        let state = state.unwrap_or_default();
        let from = state.applied_seq;
        let mut store = LogStore {
            log,
            state: Mutex::new(state),
            snapshot_seq: Mutex::new(from),
            replayed_at_open: 0,
            state_generation: AtomicU64::new(0),
            state_dirty: AtomicBool::new(false),
            _lock: Some(lock),
            snapshot_ahead,
            start_notes,
            older_rosters: Mutex::default(),
        };
        let started = std::time::Instant::now();
        let replayed = store.replay(from)?;
        store.replayed_at_open = replayed;
        if let Some(why) = cache_note.filter(|_| verified.records > 0) {
            tracing::warn!(
                cache = %cache_dir(data_dir).display(),
                records = replayed,
                took_ms = started.elapsed().as_millis() as u64,
                "the snapshot cache {why}: the state was rebuilt from the log"
            );
        }
        info!(
            records = verified.records,
            checkpoints = verified.checkpoints,
            replayed,
            "store opened and verified"
        );
        Ok(store)
    }

    /// Opens the store in `data_dir` for reading only, up to its last
    /// sound record (a recovery choice for a damaged store): the segments
    /// are read up to the first damaged frame, the records before it
    /// walked (chain, seals, checkpoints) and, if one fails, only those
    /// before it kept; the state is built in memory by replaying them.
    /// Nothing in the data directory is opened for writing or changed: no
    /// torn tail is cut, no snapshot cache is opened, no file is created.
    /// Every write is refused ([`StoreError::ReadOnly`]). Returns the store
    /// and, if records were left out, the first of them and why.
    pub fn open_read_only(
        data_dir: &Path,
        keys: StoreKeys,
    ) -> Result<(LogStore, Option<(u64, String)>), OpenError> {
        if !log_dir(data_dir).exists() && old_store_dir(data_dir).exists() {
            return Err(StoreError::Io(
                "the store is in the earlier layout (store/): start it normally once to migrate it"
                    .into(),
            )
            .into());
        }
        // A server beside it would go on writing: what is served here would
        // be stale while looking current. Refused while another process
        // holds the data directory; a shared lock held from here on keeps
        // a normal start out while this one serves (nothing is created or
        // written: the lock file is opened read-only, if it exists).
        let shared = match crate::files::share_data_dir_lock(data_dir) {
            Ok(lock) if !in_use_by_earlier_version(data_dir) => lock,
            Ok(_) => return Err(StoreError::Locked.into()),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                return Err(StoreError::Locked.into());
            }
            Err(e) => {
                return Err(StoreError::Io(format!("cannot lock the data directory: {e}")).into());
            }
        };
        let head = crate::log::read_head(&keys, data_dir)?;
        let (engine, damage) =
            SegmentEngine::open_until_damage(&log_dir(data_dir), keys.store_id())
                .map_err(LogError::from_engine)?;
        let log_end = verify::ends_at(engine.end(), engine.torn_tail().as_ref());
        let (log, verified, bad) = Log::open_read_only(Arc::new(engine), Arc::new(keys), data_dir)?;
        let left_out = match (bad, damage) {
            (Some(bad), _) => Some(bad),
            (None, Some(d)) => Some((d.seq, d.to_string())),
            (None, None) => None,
        };
        let left_out = match left_out {
            Some(l) => Some(l),
            // Where the files end, next to what chain.head says is missing.
            None => missing_after(&log, &verified, head)?
                .map(|(seq, why)| (seq, format!("{why}; {log_end}"))),
        };
        let store = LogStore {
            log,
            state: Mutex::new(State::default()),
            snapshot_seq: Mutex::new(0),
            replayed_at_open: 0,
            state_generation: AtomicU64::new(0),
            state_dirty: AtomicBool::new(false),
            _lock: shared,
            snapshot_ahead: None,
            start_notes: Vec::new(),
            older_rosters: Mutex::default(),
        };
        let replayed = store.replay(0)?;
        tracing::warn!(
            records = verified.records,
            replayed,
            left_out = left_out.as_ref().map(|(seq, _)| *seq),
            "store opened READ-ONLY: reads are served, every write is refused"
        );
        Ok((
            LogStore {
                replayed_at_open: replayed,
                ..store
            },
            left_out,
        ))
    }

    /// If the snapshot cache found at open held state up to a record
    /// beyond the log's end: the operator's warning (records this server
    /// once had are gone: a rollback of the data directory, or a lost
    /// write). The cache was moved aside and the state rebuilt from the
    /// log; the store serves.
    pub fn snapshot_ahead_of_log(&self) -> Option<String> {
        self.snapshot_ahead
            .map(|(cached, end)| snapshot_ahead_message(cached, end))
    }

    /// What this open did or found that the operator should read at
    /// start (a migration and its checks, `store/` to remove once a
    /// backup is taken, modes tightened): one line each.
    pub fn start_notes(&self) -> &[String] {
        &self.start_notes
    }

    fn replay(&self, from: u64) -> Result<u64, OpenError> {
        let mut state = self.lock();
        let mut count = 0;
        self.log.replay(from, |seq, entry| {
            apply_entry(&mut state, seq, entry)?;
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }

    /// Whether another thread holds the state lock at this moment (a
    /// reader would wait for it).
    pub(crate) fn state_is_busy(&self) -> bool {
        matches!(
            self.state.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
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
        let ticket = self.stage(&mut state, RecordKey::Main, event)?;
        drop(state);
        self.wait(ticket)
    }

    /// Appends `event`, sealed under `key` (the store's record key, or
    /// the subkey of the case it belongs to, which erasing the case
    /// destroys), and applies it, without waiting for it to be durable:
    /// for several events that must be acknowledged together (one flush
    /// for all), followed by [`LogStore::wait`] on the last ticket after
    /// the state lock is released.
    pub(crate) fn stage(
        &self,
        state: &mut MutexGuard<'_, State>,
        key: RecordKey,
        event: Event,
    ) -> Result<crate::log::Ticket, StoreError> {
        if self.needs_resync() {
            self.resync_locked(state)?;
        }
        let ticket = self.log.submit(key, &codec::encode_event(&event))?;
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
        let ticket = match self
            .log
            .submit(RecordKey::Main, &codec::encode_event(event))
        {
            Ok(t) => t,
            Err(e) => {
                // Applied but not logged: the state is rebuilt before
                // it is read or written again.
                self.state_dirty.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        };
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
        if self.log.is_read_only() {
            // Nothing was written, nothing is.
            self.log.close()?;
            return Ok(());
        }
        let applied = self.lock().applied_seq;
        if applied > *self.snapshot_seq.lock().unwrap_or_else(|p| p.into_inner())
            && let Err(e) = self.snapshot()
        {
            // The snapshot is a cache (the next start replays the log):
            // its failure (a full disk) must not keep the log from
            // closing with a signed checkpoint.
            tracing::warn!(error = %e, "no snapshot saved at close; the next start replays the log");
        }
        self.log.close()?;
        Ok(())
    }

    /// The read check: the store is open (a degraded or read-only store
    /// still answers reads), and the state holds no record that a failed
    /// write lost (rebuilt from the durable log first if it may).
    pub(crate) fn check_readable(&self) -> Result<(), StoreError> {
        if self.log.is_stopped() {
            return Err(LogError::Stopped.into());
        }
        if self.needs_resync() {
            let mut state = self.lock();
            self.resync_locked(&mut state)?;
        }
        Ok(())
    }

    /// The write check: [`LogStore::check_readable`], and the log takes
    /// writes (not degraded, not read-only). For paths that decide and
    /// apply before they submit: refused here, nothing is applied.
    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        self.check_readable()?;
        if self.log.is_read_only() {
            return Err(StoreError::ReadOnly);
        }
        if let Some(d) = self.log.degraded() {
            return Err(StoreError::Degraded(d.reason));
        }
        Ok(())
    }

    fn needs_resync(&self) -> bool {
        self.state_dirty.load(Ordering::SeqCst)
            || self.state_generation.load(Ordering::SeqCst) != self.log.generation()
    }

    /// Rebuilds `state` from the durable records alone (after a failed
    /// write, it may hold events whose records were lost).
    fn resync_locked(&self, state: &mut State) -> Result<(), StoreError> {
        let generation = self.log.generation();
        if !self.needs_resync() {
            return Ok(());
        }
        let mut fresh = State::default();
        self.log
            .replay(0, |seq, entry| apply_entry(&mut fresh, seq, entry))?;
        *state = fresh;
        self.state_generation.store(generation, Ordering::SeqCst);
        self.state_dirty.store(false, Ordering::SeqCst);
        info!(
            applied = state.applied_seq,
            "the state was rebuilt from the durable log after a write failed"
        );
        Ok(())
    }

    /// At start, before anything is written: checks that the disk takes
    /// a small durable write; if not (full, failing), the store serves
    /// degraded, as after a failed write, until it heals. Returns whether
    /// writes work.
    pub fn probe_at_start(&self) -> bool {
        self.log.probe_at_start()
    }

    /// What an admin sees of the store's storage.
    pub fn storage_state(&self) -> StorageState {
        StorageState {
            degraded: self.log.degraded(),
            read_only: self.log.is_read_only(),
        }
    }

    /// After a failed write: rebuilds the state from the durable records,
    /// then lets the log try to heal ([`Log::try_heal`]). `Ok(true)` once
    /// writes are taken again (or were never refused).
    pub fn try_heal(&self) -> Result<bool, StoreError> {
        if self.log.degraded().is_none() {
            return Ok(true);
        }
        // The state is rebuilt before writes can resume: while the log is
        // degraded nothing is written, so it stays the durable state.
        {
            let mut state = self.lock();
            self.resync_locked(&mut state)?;
        }
        Ok(self.log.try_heal()?)
    }
}

/// Free bytes for the server on the filesystem holding `dir` (the data
/// directory), if they can be read.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    crate::files::free_bytes(dir)
}

/// The store's storage, as admins see it in `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageState {
    /// Why and since when writes are refused, if they are.
    pub degraded: Option<crate::log::Degraded>,
    /// Served read-only (a recovery choice).
    pub read_only: bool,
}

/// Applies one replayed log entry to `state`.
fn apply_entry(state: &mut State, seq: u64, entry: Entry) -> Result<(), LogError> {
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
    Ok(())
}

/// A store in `dir` (created on first use, with a key file beside it),
/// for unit tests of the layers above.
#[cfg(test)]
pub(crate) fn open_in(dir: &Path) -> LogStore {
    open_in_with_fs(dir, crate::log::fs::real())
}

/// [`open_in`], the log's files changed through `fs` ([`crate::log::fs`]).
#[cfg(test)]
pub(crate) fn open_in_with_fs(dir: &Path, fs: crate::log::fs::Fs) -> LogStore {
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
    LogStore::open_with_fs(&data, keys, 1 << 20, MAX_SEGMENT_BYTES, fs).expect("open")
}

/// Sets the incomplete final write found at open aside. If the disk does
/// not take the copy (full, failing), the store opens all the same: the
/// log serves reads up to its last whole record (nothing acknowledged is
/// in the incomplete bytes), the start's write probe finds the disk
/// failing and the log starts degraded, and the set-aside is done by the
/// first write that succeeds (the heal's probe, or an append), once.
fn set_torn_tail_aside_or_defer(engine: &SegmentEngine) -> Result<(), OpenError> {
    match engine.set_torn_tail_aside() {
        Ok(_) => Ok(()),
        Err(EngineError::Io(e)) => {
            tracing::warn!(
                error = %e,
                "the incomplete final write cannot be set aside now; it is set aside \
                 before the first write (reads are served up to the last whole record)"
            );
            Ok(())
        }
        Err(e) => Err(LogError::from_engine(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::devices::{EnrollOutcome, InviteRecord, RevokeOutcome};
    use hotline_proto::{IdentityKeyPair, IdentityPublicKey, Role};

    fn open(dir: &Path) -> LogStore {
        open_in(dir)
    }

    fn invite(role: Role, expires_at: u64) -> InviteRecord {
        InviteRecord {
            role,
            created_at: 1,
            expires_at,
            used_at: None,
            bootstrap: None,
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
        let db = sled::open(dir.path().join("data").join("cache")).expect("sled");
        // (The snapshot's first part: the cache holds it in parts.)
        let snaps = db.open_tree("snapshot_parts").expect("tree");
        let (k, v) = snaps.iter().next().expect("one").expect("read");
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

    fn reopen(dir: &Path) -> Result<LogStore, OpenError> {
        let data = dir.join("data");
        let keys = open_keys(
            &data,
            &KeySource::File(dir.join("master.key")),
            Create::Never,
        )
        .expect("keys");
        LogStore::open(&data, keys, 1 << 20)
    }

    #[test]
    fn a_held_data_dir_lock_refuses_a_second_open_before_the_log_is_read() {
        use fs2::FileExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store
            .put_invite([1; 32], &invite(Role::Officer, 100))
            .expect("put");
        store.close().expect("close");
        drop(store);
        // Another process (say `invite`) holds the lock but has not opened
        // the snapshot cache yet.
        let data = dir.path().join("data");
        let other = std::fs::File::open(data.join(crate::files::LOCK_FILE)).expect("lock file");
        other.try_lock_exclusive().expect("lock");
        // The log is made unreadable: a refusal before reading it is the
        // lock's, not the damage's.
        let segs: Vec<_> = std::fs::read_dir(data.join("log"))
            .expect("log")
            .map(|e| e.expect("entry").path())
            .collect();
        let saved: Vec<_> = segs
            .iter()
            .map(|p| (p.clone(), std::fs::read(p).expect("read")))
            .collect();
        for p in &segs {
            std::fs::write(p, b"garbage").expect("write");
        }
        let err = reopen(dir.path()).expect_err("refused");
        assert!(
            matches!(err, OpenError::State(StoreError::Locked)),
            "{err:?}"
        );
        assert!(err.to_string().contains("held by another process"), "{err}");
        for (p, b) in saved {
            std::fs::write(p, b).expect("restore");
        }
        drop(other);
        assert_eq!(reopen(dir.path()).expect("open").state().invites.len(), 1);
    }

    #[test]
    fn a_second_open_never_overwrites_what_the_first_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = open(dir.path());
        let err = reopen(dir.path()).expect_err("refused while the first runs");
        assert!(
            matches!(err, OpenError::State(StoreError::Locked)),
            "{err:?}"
        );
        first
            .put_invite([1; 32], &invite(Role::Officer, 100))
            .expect("put");
        // No snapshot cache was moved aside by the refused open.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("data"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("damaged")), "{names:?}");
        drop(first);
        let second = reopen(dir.path()).expect("open after the first");
        second
            .put_invite([2; 32], &invite(Role::Officer, 100))
            .expect("put");
        drop(second);
        let again = reopen(dir.path()).expect("open");
        assert_eq!(
            again.state().invites.len(),
            2,
            "both acknowledged invites kept"
        );
    }

    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Opens the store in `dir` (as [`open_in`]) and returns what it logged.
    fn open_logged(dir: &Path) -> (LogStore, String) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let store = tracing::subscriber::with_default(subscriber, || open_in(dir));
        let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
        (store, text)
    }

    #[test]
    fn a_lost_or_damaged_snapshot_cache_is_rebuilt_with_a_warning_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store
            .put_invite([1; 32], &invite(Role::Officer, 100))
            .expect("put");
        store.close().expect("close");
        drop(store);
        let cache = dir.path().join("data").join("cache");
        let (store, logs) = open_logged(dir.path());
        assert!(
            !logs.contains("rebuilt from the log"),
            "a sound cache is used silently: {logs}"
        );
        store.close().expect("close");
        drop(store);

        // Lost: rebuilt, and the log says so, naming the cache.
        std::fs::remove_dir_all(&cache).expect("remove the cache");
        let (store, logs) = open_logged(dir.path());
        assert!(
            logs.contains("WARN")
                && logs.contains("the snapshot cache was missing")
                && logs.contains("the state was rebuilt from the log")
                && logs.contains(&cache.display().to_string())
                && logs.contains("took_ms="),
            "{logs}"
        );
        assert!(
            store.lock().invites.contains_key(&[1; 32]),
            "the state is back"
        );
        store.close().expect("close");
        drop(store);

        // Damaged (a snapshot that does not decode): moved aside, rebuilt,
        // and the log names where it went.
        let sled = crate::log::engine::SledCache::open(&cache, 1 << 20).expect("cache");
        sled.put_snapshot(u64::MAX, b"not a snapshot").expect("put");
        drop(sled);
        let (store, logs) = open_logged(dir.path());
        let aside: Vec<String> = std::fs::read_dir(dir.path().join("data"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("cache.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        // Named with a UTC time a person reads: cache.damaged-20261130T193105Z.
        let time = aside[0].strip_prefix("cache.damaged-").expect("prefix");
        assert!(
            time.len() == 16
                && time.as_bytes()[8] == b'T'
                && time.ends_with('Z')
                && time.starts_with("20"),
            "{aside:?}"
        );
        assert!(
            logs.contains("moved aside to")
                && logs.contains(&aside[0])
                && logs.contains("the state was rebuilt from the log"),
            "{logs}"
        );
        assert!(
            store.lock().invites.contains_key(&[1; 32]),
            "the state is back"
        );
    }

    #[test]
    fn a_snapshot_missing_a_part_is_ignored_and_the_state_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store
            .put_invite([1; 32], &invite(Role::Officer, 100))
            .expect("put");
        store.close().expect("close");
        drop(store);
        // A write of the newest snapshot that stopped with a part missing.
        let cache = dir.path().join("data").join("cache");
        let sled = crate::log::engine::SledCache::open(&cache, 1 << 20).expect("cache");
        let (seq, _) = sled.latest_snapshot().expect("read").expect("a snapshot");
        sled.remove_part(seq, 0);
        drop(sled);
        let (store, logs) = open_logged(dir.path());
        assert!(
            logs.contains("the snapshot cache does not read")
                && logs.contains("incomplete")
                && logs.contains("the state was rebuilt from the log"),
            "{logs}"
        );
        assert!(
            store.lock().invites.contains_key(&[1; 32]),
            "the state is back"
        );
        assert!(store.replayed_at_open > 0, "replayed from the log");
    }

    #[test]
    fn a_damaged_cache_that_cannot_be_moved_aside_is_left_where_it_is_and_the_store_serves() {
        use crate::log::fs::{Fault, FaultFs, Op};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store
            .put_invite([1; 32], &invite(Role::Officer, 100))
            .expect("put");
        store.close().expect("close");
        drop(store);
        let data = dir.path().join("data");
        let cache = data.join("cache");
        // A snapshot that does not decode: the cache is moved aside ...
        let sled = crate::log::engine::SledCache::open(&cache, 1 << 20).expect("cache");
        sled.put_snapshot(u64::MAX, b"not a snapshot").expect("put");
        drop(sled);
        let aside = || -> Vec<String> {
            std::fs::read_dir(&data)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("cache.damaged-"))
                .collect()
        };
        // ... through the log's file operations: a rename that fails
        // leaves it where it is, and the store still opens and serves.
        let faults = FaultFs::new();
        faults.fail_from(Op::Rename, 1, Fault::Eio);
        let store = open_in_with_fs(dir.path(), faults.handle());
        assert_eq!(
            faults.calls(Op::Rename),
            1,
            "the move went through the seam"
        );
        assert!(aside().is_empty(), "{:?}", aside());
        assert!(cache.exists());
        assert!(
            store.lock().invites.contains_key(&[1; 32]),
            "the state is back"
        );
        store.close().expect("close");
        drop(store);
        // A disk that renames again: moved aside.
        let store = open(dir.path());
        assert_eq!(aside().len(), 1);
        assert!(store.lock().invites.contains_key(&[1; 32]));
    }
}
