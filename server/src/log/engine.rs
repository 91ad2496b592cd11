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
        match self
            .chain
            .range(key(RECORD, 0)..key(RECORD + 1, 0))
            .next_back()
        {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(from_sled)?;
                Ok(Some((seq_of(&k)?, v.to_vec())))
            }
        }
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
        match self
            .chain
            .range(key(CHECKPOINT, 0)..key(CHECKPOINT + 1, 0))
            .next_back()
        {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(from_sled)?;
                Ok(Some((seq_of(&k)?, v.to_vec())))
            }
        }
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

/// The snapshot cache: sled 0.34, one tree `snapshots`. It holds only
/// what can be rebuilt from the log, so damage to it costs a rebuild.
#[derive(Debug)]
pub struct SledCache {
    db: sled::Db,
    snapshots: sled::Tree,
}

impl SledCache {
    /// Opens (or creates) the cache in `dir` (the data directory's own
    /// lock, `<data_dir>/lock`, is taken before it).
    /// A snapshot file sled failed to finish (`snap.<lsn>.generating`,
    /// left by a write refused on a full disk) is removed before sled
    /// opens, and again if opening fails: sled would otherwise read the
    /// empty file as its newest snapshot and call the cache damaged.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledCache, EngineError> {
        crate::files::create_private_dir(dir).map_err(|e| EngineError::Io(e.to_string()))?;
        remove_unfinished_snapshots(dir);
        let opened = open_sled(dir, cache_bytes).and_then(|db| {
            let snapshots = db.open_tree("snapshots").map_err(from_sled)?;
            Ok(SledCache { db, snapshots })
        });
        if opened.is_err() {
            remove_unfinished_snapshots(dir);
        }
        opened
    }

    /// Stores a snapshot taken at `seq`, replacing older ones.
    pub fn put_snapshot(&self, seq: u64, bytes: &[u8]) -> Result<(), EngineError> {
        self.snapshots
            .insert(seq.to_be_bytes(), bytes)
            .map_err(from_sled)?;
        for old in self.snapshots.range(..seq.to_be_bytes()).keys() {
            self.snapshots
                .remove(old.map_err(from_sled)?)
                .map_err(from_sled)?;
        }
        self.db.flush().map_err(from_sled)?;
        Ok(())
    }

    /// The newest snapshot.
    pub fn latest_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, EngineError> {
        match self.snapshots.iter().next_back() {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(from_sled)?;
                Ok(Some((seq_of(&k)?, v.to_vec())))
            }
        }
    }

    /// Removes every snapshot.
    pub fn clear_snapshots(&self) -> Result<(), EngineError> {
        self.snapshots.clear().map_err(from_sled)?;
        self.db.flush().map_err(from_sled)?;
        Ok(())
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
