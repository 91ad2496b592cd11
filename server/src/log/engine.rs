//! The storage engine under the log: ordered bytes by sequence number,
//! made durable on request. The log seals, chains and checks; the engine
//! only stores, so it can be replaced without touching either.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

/// The engine failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// An I/O error (disk full, device error).
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// The engine found its files damaged.
    #[error("storage files are damaged: {0}")]
    Corrupt(String),
    /// Another process holds the store's files (a running server, or a
    /// tool holding a lock on them).
    #[error(
        "the store is held by another process (a running hotline-server, or a tool holding its lock)"
    )]
    Locked,
    /// A segment file is damaged at a named place; nothing was changed.
    #[error("the log's files are damaged: {0}")]
    Damaged(#[from] Damage),
}

/// Where and how a store's files were found damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}, in {segment} at offset {offset}")]
pub struct Damage {
    /// The first record that cannot be read as written.
    pub seq: u64,
    /// The segment file's name.
    pub segment: String,
    /// The byte offset in it.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// An item read back from the engine.
pub type Item = Result<(u64, Vec<u8>), EngineError>;

/// Ordered, durable storage of log records, checkpoints and snapshots.
pub trait LogEngine: Send + Sync + 'static {
    /// Stores `records` and, if given, a checkpoint, atomically, and
    /// returns only once they would survive a power loss.
    fn append(
        &self,
        records: &[(u64, Vec<u8>)],
        checkpoint: Option<(u64, Vec<u8>)>,
    ) -> Result<(), EngineError>;
    /// The record stored under `seq`.
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, EngineError>;
    /// Records from `from` on, in key order.
    fn scan(&self, from: u64) -> Box<dyn Iterator<Item = Item> + '_>;
    /// The record with the highest sequence number.
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError>;
    /// Every stored checkpoint, in order.
    fn checkpoints(&self) -> Box<dyn Iterator<Item = Item> + '_>;
    /// The newest stored checkpoint. Engines that can find it without
    /// reading the others do: a running log asks for it (at a heal, for
    /// an export), and that must not cost more as the log grows.
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        let mut latest = None;
        for item in self.checkpoints() {
            latest = Some(item?);
        }
        Ok(latest)
    }
    /// Stores a state snapshot taken at `seq`, durably, replacing older ones.
    fn put_snapshot(&self, seq: u64, bytes: &[u8]) -> Result<(), EngineError>;
    /// The newest snapshot.
    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError>;
    /// Removes every snapshot (they are derived; `rebuild` makes new ones).
    fn clear_snapshots(&self) -> Result<(), EngineError>;
    /// After a failed append: re-reads what the files hold (anything
    /// written but not acknowledged is treated as lost and cut off) and
    /// returns the last record held (sequence number and stored bytes),
    /// as read back from the disk.
    fn reread_tail(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        self.last()
    }
    /// After a failed append: a small durable write beside the log, to
    /// learn whether the disk takes writes again. Leaves nothing behind.
    fn probe_write(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The records of another engine up to `limit` only, read-only: for
/// serving the sound records before a damaged one.
pub struct Prefix {
    inner: std::sync::Arc<dyn LogEngine>,
    limit: u64,
}

impl std::fmt::Debug for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefix")
            .field("limit", &self.limit)
            .finish()
    }
}

impl Prefix {
    /// `inner`'s records `1..=limit`, and its checkpoints up to `limit`.
    pub fn new(inner: std::sync::Arc<dyn LogEngine>, limit: u64) -> Prefix {
        Prefix { inner, limit }
    }
}

impl LogEngine for Prefix {
    fn append(
        &self,
        _records: &[(u64, Vec<u8>)],
        _checkpoint: Option<(u64, Vec<u8>)>,
    ) -> Result<(), EngineError> {
        Err(EngineError::Io("the log is open read-only".into()))
    }
    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, EngineError> {
        if seq > self.limit {
            return Ok(None);
        }
        self.inner.get(seq)
    }
    fn scan(&self, from: u64) -> Box<dyn Iterator<Item = Item> + '_> {
        let limit = self.limit;
        Box::new(
            self.inner
                .scan(from)
                .take_while(move |i| i.as_ref().map_or(true, |(s, _)| *s <= limit)),
        )
    }
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        if self.limit == 0 {
            return Ok(None);
        }
        Ok(self.inner.get(self.limit)?.map(|b| (self.limit, b)))
    }
    fn checkpoints(&self) -> Box<dyn Iterator<Item = Item> + '_> {
        let limit = self.limit;
        Box::new(
            self.inner
                .checkpoints()
                .filter(move |i| i.as_ref().map_or(true, |(s, _)| *s <= limit)),
        )
    }
    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        match self.inner.latest_checkpoint()? {
            Some((seq, bytes)) if seq <= self.limit => Ok(Some((seq, bytes))),
            None => Ok(None),
            // Past the damage: the newest one before it.
            Some(_) => {
                let mut latest = None;
                for item in self.checkpoints() {
                    latest = Some(item?);
                }
                Ok(latest)
            }
        }
    }
    fn put_snapshot(&self, _seq: u64, _bytes: &[u8]) -> Result<(), EngineError> {
        Err(EngineError::Io("the log is open read-only".into()))
    }
    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        Ok(None)
    }
    fn clear_snapshots(&self) -> Result<(), EngineError> {
        Err(EngineError::Io("the log is open read-only".into()))
    }
}

const RECORD: u8 = b'r';
const CHECKPOINT: u8 = b'c';

fn key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(k: &[u8]) -> Result<u64, EngineError> {
    let b: [u8; 8] = k
        .get(k.len().saturating_sub(8)..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| EngineError::Corrupt("a key of the wrong length".into()))?;
    Ok(u64::from_be_bytes(b))
}

fn from_sled(e: sled::Error) -> EngineError {
    match e {
        sled::Error::Corruption { .. } => EngineError::Corrupt("sled reported corruption".into()),
        // Files sled cannot read as its own: damage, not a failing disk.
        sled::Error::Unsupported(why) | sled::Error::ReportableBug(why) => {
            EngineError::Corrupt(format!("sled cannot read its files: {why}"))
        }
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
        {
            EngineError::Locked
        }
        other => EngineError::Io(other.to_string()),
    }
}

/// The engine on sled 0.34, the layout before segment files: one tree `chain` holding records (`r` ||
/// seq) and checkpoints (`c` || seq), so that both are written by one
/// atomic batch; one tree `snapshots`.
///
/// sled's `flush` writes with `sync_file_range`, which does not flush the
/// device's volatile cache nor the file's metadata; after every flush the
/// engine calls `fdatasync` on sled's data file, which does.
///
/// The server no longer stores the log here
/// ([`super::segments::SegmentEngine`] does); this engine remains to read
/// stores of the earlier layout, always through a copy (sled's recovery
/// may rewrite the files it opens), for their migration.
#[derive(Debug)]
pub struct SledEngine {
    db: sled::Db,
    chain: sled::Tree,
    snapshots: sled::Tree,
    data_file: Mutex<File>,
}

/// How long `open` waits for a lock held by a store being dropped in this
/// process (sled's worker threads release it a moment after the drop).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens (or creates) a sled database in `dir`, flushed by its user (no
/// background flush), waiting up to [`LOCK_WAIT`] for a lock held by a
/// database being dropped in this process; sled's panics on some damaged
/// files are reported as damage.
fn open_sled(dir: &Path, cache_bytes: u64) -> Result<sled::Db, EngineError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(None);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|_| EngineError::Corrupt("sled could not read its files".into()))?;
        match opened.map_err(from_sled) {
            Ok(db) => return Ok(db),
            Err(EngineError::Locked) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Removes the snapshot files sled began and never finished in the cache
/// `dir` (`snap.<lsn>.generating`; sled renames a finished one to
/// `snap.<lsn>`). Only while no sled has `dir` open: the data directory's
/// lock is held. Best effort: a file that cannot be removed is left (and
/// logged without its path's content beyond the cache's).
fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(
                    "an unfinished snapshot file of the cache (left by a failed write) was removed"
                ),
                Err(e) => tracing::warn!(error = %e,
                    "an unfinished snapshot file of the cache could not be removed"),
            }
        }
    }
}

impl SledEngine {
    /// Opens (or creates) the engine's files in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledEngine, EngineError> {
        let db = open_sled(dir, cache_bytes)?;
        let chain = db.open_tree("chain").map_err(from_sled)?;
        let snapshots = db.open_tree("snapshots").map_err(from_sled)?;
        let data_file = File::open(dir.join("db")).map_err(|e| EngineError::Io(e.to_string()))?;
        crate::files::sync_dir(dir);
        Ok(SledEngine {
            db,
            chain,
            snapshots,
            data_file: Mutex::new(data_file),
        })
    }

    fn sync(&self) -> Result<(), EngineError> {
        self.db.flush().map_err(from_sled)?;
        let file = self.data_file.lock().unwrap_or_else(|p| p.into_inner());
        file.sync_data()
            .map_err(|e| EngineError::Io(e.to_string()))?;
        // Values above sled's blob threshold would go to separate files
        // that this does not sync; the log keeps records far below it
        // (`MAX_RECORD_LEN`).
        Ok(())
    }
}

impl SledEngine {
    /// The entry with the highest sequence number under `prefix` (records
    /// or checkpoints).
    fn last_of(&self, prefix: u8) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        match self
            .chain
            .range(key(prefix, 0)..key(prefix + 1, 0))
            .next_back()
        {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(from_sled)?;
                Ok(Some((seq_of(&k)?, v.to_vec())))
            }
        }
    }
}

impl LogEngine for SledEngine {
    fn append(
        &self,
        records: &[(u64, Vec<u8>)],
        checkpoint: Option<(u64, Vec<u8>)>,
    ) -> Result<(), EngineError> {
        if let ([(seq, bytes)], None) = (records, &checkpoint) {
            // One record alone: a plain insert is atomic and cheaper.
            self.chain
                .insert(&key(RECORD, *seq)[..], bytes.as_slice())
                .map_err(from_sled)?;
            return self.sync();
        }
        let mut batch = sled::Batch::default();
        for (seq, bytes) in records {
            batch.insert(&key(RECORD, *seq)[..], bytes.as_slice());
        }
        if let Some((seq, bytes)) = checkpoint {
            batch.insert(&key(CHECKPOINT, seq)[..], bytes);
        }
        self.chain.apply_batch(batch).map_err(from_sled)?;
        self.sync()
    }

    fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self
            .chain
            .get(key(RECORD, seq))
            .map_err(from_sled)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, from: u64) -> Box<dyn Iterator<Item = Item> + '_> {
        Box::new(
            self.chain
                .range(key(RECORD, from)..key(RECORD + 1, 0))
                .map(|kv| {
                    let (k, v) = kv.map_err(from_sled)?;
                    Ok((seq_of(&k)?, v.to_vec()))
                }),
        )
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        self.last_of(RECORD)
    }

    fn checkpoints(&self) -> Box<dyn Iterator<Item = Item> + '_> {
        Box::new(
            self.chain
                .range(key(CHECKPOINT, 0)..key(CHECKPOINT + 1, 0))
                .map(|kv| {
                    let (k, v) = kv.map_err(from_sled)?;
                    Ok((seq_of(&k)?, v.to_vec()))
                }),
        )
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        self.last_of(CHECKPOINT)
    }

    fn put_snapshot(&self, seq: u64, bytes: &[u8]) -> Result<(), EngineError> {
        self.snapshots
            .insert(seq.to_be_bytes(), bytes)
            .map_err(from_sled)?;
        // Older snapshots are superseded.
        for old in self.snapshots.range(..seq.to_be_bytes()).keys() {
            self.snapshots
                .remove(old.map_err(from_sled)?)
                .map_err(from_sled)?;
        }
        self.sync()
    }

    fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        match self.snapshots.iter().next_back() {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(from_sled)?;
                Ok(Some((seq_of(&k)?, v.to_vec())))
            }
        }
    }

    fn clear_snapshots(&self) -> Result<(), EngineError> {
        self.snapshots.clear().map_err(from_sled)?;
        self.sync()
    }
}

/// The snapshot cache: sled 0.34. It holds only what can be rebuilt from
/// the log, so damage to it costs a rebuild.
///
/// A snapshot is kept in parts of at most [`SNAPSHOT_PART`] bytes (tree
/// `snapshot_parts`, key `seq || part number`, both big-endian), written
/// and flushed before its head (tree `snapshot_heads`, key `seq`, value
/// `parts || length`, a u32 and a u64, big-endian) is: a snapshot without
/// a head is a write that did not finish and is never read. Parts stay
/// below sled's blob threshold, so sled keeps them in its own segments,
/// whose space its GC reclaims once they are removed; a whole snapshot as
/// one value became a blob file (`blobs/`) that sled 0.34 never removed,
/// so the cache grew by a snapshot each time. Caches written that way
/// (tree `snapshots`, one value per `seq`) still load until the next
/// snapshot replaces them.
#[derive(Debug)]
pub struct SledCache {
    db: sled::Db,
    legacy: sled::Tree,
    heads: sled::Tree,
    parts: sled::Tree,
}

/// The largest part of a snapshot in the cache: sled splits a leaf above
/// 16 entries, so a leaf of 17 parts (about 68 KiB) stays well below the
/// size at which sled writes a page as a blob file (its 512 KiB segment
/// over 4, about 128 KiB).
pub const SNAPSHOT_PART: usize = 4096;

/// Whether sled's `blobs/` in `dir` holds any file: never in a cache of
/// parts (no page reaches the blob threshold), always in one that stored
/// a snapshot as one value.
fn holds_blob_files(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("blobs"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

fn part_key(seq: u64, part: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&seq.to_be_bytes());
    k[8..].copy_from_slice(&part.to_be_bytes());
    k
}

fn seq_of_part(k: &[u8]) -> Result<u64, EngineError> {
    let b: [u8; 8] = k
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .filter(|_| k.len() == 12)
        .ok_or_else(|| EngineError::Corrupt("a snapshot part's key of the wrong length".into()))?;
    Ok(u64::from_be_bytes(b))
}

impl SledCache {
    /// Opens (or creates) the cache in `dir` (the data directory's own
    /// lock, `<data_dir>/lock`, is taken before it).
    ///
    /// A cache holding blob files (`blobs/`) is of the earlier form, with
    /// every snapshot it ever took: its newest snapshot is read, its files
    /// are removed (sled's `db` first: a stop part way leaves a cache
    /// without one, which opens empty and is replaced again), and a new
    /// cache is started holding that snapshot alone, so later opens read
    /// one snapshot, not every one.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledCache, EngineError> {
        let cache = Self::open_as_is(dir, cache_bytes)?;
        if !holds_blob_files(dir) {
            return Ok(cache);
        }
        let kept = cache.latest_snapshot()?;
        drop(cache);
        let io = |e: std::io::Error| EngineError::Io(e.to_string());
        match std::fs::remove_file(dir.join("db")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        std::fs::remove_dir_all(dir).map_err(io)?;
        let cache = Self::open_as_is(dir, cache_bytes)?;
        if let Some((seq, bytes)) = kept {
            cache.put_snapshot(seq, &bytes)?;
        }
        tracing::info!(cache = %dir.display(),
            "the snapshot cache held every snapshot it took (blob files); it was replaced by one holding the newest");
        Ok(cache)
    }

    /// Opens the cache in `dir` as it is (no replacement of the earlier
    /// form).
    ///
    /// A snapshot file sled failed to finish (`snap.<lsn>.generating`,
    /// left by a write refused on a full disk) is removed before sled
    /// opens, and again if opening fails: sled would otherwise read the
    /// empty file as its newest snapshot and call the cache damaged.
    fn open_as_is(dir: &Path, cache_bytes: u64) -> Result<SledCache, EngineError> {
        crate::files::create_private_dir(dir).map_err(|e| EngineError::Io(e.to_string()))?;
        remove_unfinished_snapshots(dir);
        let db = open_sled(dir, cache_bytes).inspect_err(|_| remove_unfinished_snapshots(dir))?;
        let legacy = db.open_tree("snapshots").map_err(from_sled)?;
        let heads = db.open_tree("snapshot_heads").map_err(from_sled)?;
        let parts = db.open_tree("snapshot_parts").map_err(from_sled)?;
        Ok(SledCache {
            db,
            legacy,
            heads,
            parts,
        })
    }

    /// Stores a snapshot taken at `seq`, replacing older ones: its parts,
    /// then its head, then the older snapshots' heads and every part no
    /// head names are removed (each step flushed before the next).
    pub fn put_snapshot(&self, seq: u64, bytes: &[u8]) -> Result<(), EngineError> {
        let flush = || self.db.flush().map(|_| ()).map_err(from_sled);
        // Parts an unfinished write at this `seq` left behind.
        self.heads.remove(seq.to_be_bytes()).map_err(from_sled)?;
        self.remove_parts_of(seq)?;
        let mut count: u32 = 0;
        for chunk in bytes.chunks(SNAPSHOT_PART) {
            self.parts
                .insert(part_key(seq, count), chunk)
                .map_err(from_sled)?;
            count = count
                .checked_add(1)
                .ok_or_else(|| EngineError::Io("a snapshot too large for the cache".into()))?;
        }
        flush()?;
        let mut head = [0u8; 12];
        head[..4].copy_from_slice(&count.to_be_bytes());
        head[4..].copy_from_slice(&(bytes.len() as u64).to_be_bytes());
        self.heads
            .insert(seq.to_be_bytes(), &head[..])
            .map_err(from_sled)?;
        flush()?;
        // Older snapshots are superseded.
        for old in self.heads.range(..seq.to_be_bytes()).keys() {
            self.heads
                .remove(old.map_err(from_sled)?)
                .map_err(from_sled)?;
        }
        self.legacy.clear().map_err(from_sled)?;
        let mut orphans = Vec::new();
        for k in self.parts.iter().keys() {
            let s = seq_of_part(&k.map_err(from_sled)?)?;
            if orphans.last() != Some(&s)
                && !self
                    .heads
                    .contains_key(s.to_be_bytes())
                    .map_err(from_sled)?
            {
                orphans.push(s);
            }
        }
        for s in orphans {
            self.remove_parts_of(s)?;
        }
        flush()
    }

    fn remove_parts_of(&self, seq: u64) -> Result<(), EngineError> {
        for k in self.parts.scan_prefix(seq.to_be_bytes()).keys() {
            self.parts
                .remove(k.map_err(from_sled)?)
                .map_err(from_sled)?;
        }
        Ok(())
    }

    /// The newest snapshot: the newest head's parts only, all of them or
    /// [`EngineError::Corrupt`] (never part of a snapshot). Without a head,
    /// a snapshot of the earlier one-value form, if any.
    pub fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        let Some(kv) = self.heads.iter().next_back() else {
            return match self.legacy.iter().next_back() {
                None => Ok(None),
                Some(kv) => {
                    let (k, v) = kv.map_err(from_sled)?;
                    Ok(Some((seq_of(&k)?, v.to_vec())))
                }
            };
        };
        let (k, head) = kv.map_err(from_sled)?;
        let seq = seq_of(&k)?;
        let incomplete = || EngineError::Corrupt(format!("the snapshot at {seq} is incomplete"));
        let (count, len) = match (head.get(..4), head.get(4..)) {
            (Some(c), Some(l)) if head.len() == 12 => (
                u32::from_be_bytes(c.try_into().map_err(|_| incomplete())?),
                u64::from_be_bytes(l.try_into().map_err(|_| incomplete())?),
            ),
            _ => return Err(incomplete()),
        };
        // The head's length is checked against its parts, never trusted
        // for an allocation (a crafted cache must not abort a start).
        if len > u64::from(count) * SNAPSHOT_PART as u64 {
            return Err(incomplete());
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).map_err(|_| incomplete())?);
        let mut next: u32 = 0;
        for kv in self.parts.scan_prefix(seq.to_be_bytes()) {
            let (k, v) = kv.map_err(from_sled)?;
            if k.as_ref() != part_key(seq, next) || next >= count {
                return Err(incomplete());
            }
            bytes.extend_from_slice(&v);
            next += 1;
        }
        if next != count || bytes.len() as u64 != len {
            return Err(incomplete());
        }
        Ok(Some((seq, bytes)))
    }

    /// Removes part `part` of the snapshot at `seq`, as a write that
    /// did not finish would have left it missing (tests only).
    #[cfg(test)]
    pub(crate) fn remove_part(&self, seq: u64, part: u32) {
        self.parts.remove(part_key(seq, part)).expect("remove");
        self.db.flush().expect("flush");
    }

    /// Removes every snapshot.
    pub fn clear_snapshots(&self) -> Result<(), EngineError> {
        self.heads.clear().map_err(from_sled)?;
        self.parts.clear().map_err(from_sled)?;
        self.legacy.clear().map_err(from_sled)?;
        self.db.flush().map_err(from_sled)?;
        Ok(())
    }
}

#[cfg(test)]
mod cache_size_tests {
    use super::{EngineError, SNAPSHOT_PART, SledCache, part_key, seq_of_part};
    use std::path::Path;

    /// Files and bytes under `dir` (recursively), and of them in `blobs/`.
    fn du(dir: &Path) -> (u64, u64, u64) {
        let (mut files, mut bytes, mut blobs) = (0, 0, 0);
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                let (f, b, bl) = du(&e.path());
                files += f;
                bytes += b;
                blobs += bl + if e.file_name() == "blobs" { f } else { 0 };
            } else {
                files += 1;
                bytes += m.len();
            }
        }
        (files, bytes, blobs)
    }

    fn snapshot_bytes(n: u64, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// A copy of `from` at `to`, as a crash would leave it (a copy of
    /// the files while the cache is open, without a clean close).
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir") {
            let e = e.expect("entry");
            if e.metadata().expect("metadata").is_dir() {
                copy_dir(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
    }

    const LEN: usize = 1 << 20;
    const SNAPSHOTS: u64 = 50;
    /// The bound, whatever the number of snapshots: a few snapshots' worth
    /// (sled writes a part again when it rewrites its leaf, and reuses a
    /// segment once what it held is stale and no thread still sees it),
    /// measured at 5 to 10 MiB for 1 MiB snapshots alone, up to 14 MiB
    /// with other tests' sled databases busy at the same time. Each
    /// snapshot as one value grew the cache by one blob file a time: 11
    /// MiB after 10 snapshots, 24 MiB after 20, 49 MiB after 40.
    const BOUND_BYTES: u64 = 24 * LEN as u64;
    /// sled's `conf` and `db`, and `snap.*` after a crash.
    const BOUND_FILES: u64 = 4;

    #[test]
    fn many_snapshots_keep_the_cache_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        let cache = SledCache::open(&path, 1 << 20).expect("open");
        for n in 1..=SNAPSHOTS {
            cache
                .put_snapshot(n * 10_000, &snapshot_bytes(n, LEN))
                .expect("put");
            let (files, bytes, blobs) = du(&path);
            assert_eq!(blobs, 0, "after {n} snapshots");
            assert!(
                files <= BOUND_FILES && bytes <= BOUND_BYTES,
                "after {n} snapshots: {files} files, {bytes} bytes"
            );
        }
        drop(cache);
        let cache = SledCache::open(&path, 1 << 20).expect("reopen");
        assert_eq!(
            cache.latest_snapshot().expect("read"),
            Some((SNAPSHOTS * 10_000, snapshot_bytes(SNAPSHOTS, LEN)))
        );
    }

    #[test]
    fn many_snapshots_with_a_crash_after_each_keep_the_cache_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut path = dir.path().join("cache-0");
        let mut cache = SledCache::open(&path, 1 << 20).expect("open");
        for n in 1..=SNAPSHOTS {
            cache
                .put_snapshot(n * 10_000, &snapshot_bytes(n, LEN))
                .expect("put");
            // The crash: the files as they are, the process gone without
            // closing sled (the old handle is leaked, never dropped).
            let crashed = dir.path().join(format!("cache-{n}"));
            copy_dir(&path, &crashed);
            std::mem::forget(cache);
            let _ = std::fs::remove_dir_all(&path);
            path = crashed;
            cache = SledCache::open(&path, 1 << 20).expect("reopen");
            assert_eq!(
                cache.latest_snapshot().expect("read"),
                Some((n * 10_000, snapshot_bytes(n, LEN))),
                "after {n} snapshots"
            );
            let (files, bytes, blobs) = du(&path);
            assert_eq!(blobs, 0, "after {n} snapshots");
            assert!(
                files <= BOUND_FILES && bytes <= BOUND_BYTES,
                "after {n} snapshots and crashes: {files} files, {bytes} bytes"
            );
        }
    }

    #[test]
    fn a_crafted_snapshot_length_is_refused_without_allocating_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SledCache::open(dir.path(), 1 << 20).expect("open");
        cache.put_snapshot(10, b"state at 10").expect("put");
        // One part, but a length no part count can hold.
        let mut head = 1u32.to_be_bytes().to_vec();
        head.extend_from_slice(&u64::MAX.to_be_bytes());
        cache
            .heads
            .insert(10u64.to_be_bytes(), head)
            .expect("insert");
        assert!(matches!(
            cache.latest_snapshot(),
            Err(EngineError::Corrupt(why)) if why.contains("incomplete")
        ));
    }

    #[test]
    fn a_snapshot_missing_a_part_is_never_half_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SledCache::open(dir.path(), 1 << 20).expect("open");
        cache
            .put_snapshot(10, &snapshot_bytes(1, 50_000))
            .expect("put");
        cache
            .put_snapshot(20, &snapshot_bytes(2, 50_000))
            .expect("put");
        cache.remove_part(20, 12);
        assert!(matches!(
            cache.latest_snapshot(),
            Err(EngineError::Corrupt(why)) if why.contains("incomplete")
        ));
        // The last part gone: the length no longer adds up either.
        cache
            .put_snapshot(30, &snapshot_bytes(3, 50_000))
            .expect("put");
        cache.remove_part(30, 50_000 / SNAPSHOT_PART as u32);
        assert!(matches!(
            cache.latest_snapshot(),
            Err(EngineError::Corrupt(_))
        ));
    }

    #[test]
    fn parts_written_without_their_head_are_ignored_and_then_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SledCache::open(dir.path(), 1 << 20).expect("open");
        cache
            .put_snapshot(10, &snapshot_bytes(1, 30_000))
            .expect("put");
        // A write at 20 stopped before its head: only some parts.
        for part in 0..3u32 {
            cache
                .parts
                .insert(part_key(20, part), &[7u8; SNAPSHOT_PART][..])
                .expect("insert");
        }
        cache.db.flush().expect("flush");
        drop(cache);
        let cache = SledCache::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(
            cache.latest_snapshot().expect("read"),
            Some((10, snapshot_bytes(1, 30_000)))
        );
        cache
            .put_snapshot(30, &snapshot_bytes(3, 30_000))
            .expect("put");
        let seqs: Vec<u64> = cache
            .parts
            .iter()
            .keys()
            .map(|k| seq_of_part(&k.expect("key")).expect("seq"))
            .collect();
        assert!(seqs.iter().all(|s| *s == 30), "{seqs:?}");
        assert_eq!(cache.heads.len(), 1);
    }

    #[test]
    fn a_cache_holding_a_snapshot_as_one_value_still_loads_and_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SledCache::open(dir.path(), 1 << 20).expect("open");
        // As the earlier version stored it: one value in `snapshots`.
        cache
            .legacy
            .insert(5u64.to_be_bytes(), snapshot_bytes(5, 300_000))
            .expect("insert");
        cache.db.flush().expect("flush");
        drop(cache);
        let cache = SledCache::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(
            cache.latest_snapshot().expect("read"),
            Some((5, snapshot_bytes(5, 300_000)))
        );
        cache
            .put_snapshot(6, &snapshot_bytes(6, 300_000))
            .expect("put");
        assert!(cache.legacy.is_empty());
        assert_eq!(
            cache.latest_snapshot().expect("read"),
            Some((6, snapshot_bytes(6, 300_000)))
        );
        cache.clear_snapshots().expect("clear");
        assert_eq!(cache.latest_snapshot().expect("read"), None);
    }

    #[test]
    fn a_cache_grown_by_the_earlier_form_is_replaced_by_one_holding_the_newest_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        let cache = SledCache::open(&path, 1 << 20).expect("open");
        // As the earlier version did: each snapshot one value, the older
        // removed.
        for n in 1..=SNAPSHOTS {
            cache
                .legacy
                .insert(n.to_be_bytes(), snapshot_bytes(n, LEN))
                .expect("insert");
            for old in cache.legacy.range(..n.to_be_bytes()).keys() {
                cache.legacy.remove(old.expect("key")).expect("remove");
            }
            cache.db.flush().expect("flush");
        }
        drop(cache);
        let (_, bytes, blobs) = du(&path);
        assert!(
            blobs >= SNAPSHOTS && bytes > SNAPSHOTS * LEN as u64,
            "{blobs} blobs, {bytes} bytes"
        );
        let cache = SledCache::open(&path, 1 << 20).expect("reopen");
        let (files, bytes, blobs) = du(&path);
        assert_eq!(blobs, 0);
        assert!(
            files <= BOUND_FILES && bytes <= BOUND_BYTES,
            "{files} files, {bytes} bytes"
        );
        assert_eq!(
            cache.latest_snapshot().expect("read"),
            Some((SNAPSHOTS, snapshot_bytes(SNAPSHOTS, LEN)))
        );
        drop(cache);
        // And it stays so.
        let cache = SledCache::open(&path, 1 << 20).expect("reopen");
        assert_eq!(
            cache.latest_snapshot().expect("read"),
            Some((SNAPSHOTS, snapshot_bytes(SNAPSHOTS, LEN)))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start on a full disk left sled's unfinished snapshot file in the
    /// cache; after the disk heals, the next open removes it and keeps the
    /// cache (its snapshot still there), instead of reading the empty file
    /// as sled's newest snapshot and calling the cache damaged.
    #[test]
    fn an_unfinished_snapshot_file_is_removed_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        {
            let c = SledCache::open(&cache, 1 << 20).expect("cache");
            c.put_snapshot(7, b"state at 7").expect("snapshot");
        }
        // The newest name sled could give: read first if left.
        let unfinished = cache.join("snap.FFFFFFFFFFFFFFF0.generating");
        std::fs::write(&unfinished, b"").expect("write");
        let c = SledCache::open(&cache, 1 << 20).expect("opens");
        assert!(!unfinished.exists(), "the unfinished file stayed");
        assert_eq!(
            c.latest_snapshot().expect("read"),
            Some((7, b"state at 7".to_vec()))
        );
        let left: Vec<_> = std::fs::read_dir(&cache)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".generating"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
