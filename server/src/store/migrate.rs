//! The upgrade from the earlier layout, where sled held the log
//! (`<data_dir>/store/`, tree `chain`), to segment files (`<data_dir>/log/`).
//!
//! sled's recovery may rewrite the files it opens, so the old directory is
//! never opened: a copy of it is. The copy is verified in full (chain,
//! checkpoints, `chain.head`), its records and checkpoints are written to
//! segments in `log.migrating/`, the new layout is verified, and it must
//! reach the same chain head and derive the same state; only then is
//! `log.migrating/` renamed to `log/`. A failure at any step leaves the
//! data directory as it was (apart from the staging directory, which the
//! next attempt starts afresh). The old `store/` is never changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::{OpenError, StoreError, apply_entry, log_dir, old_store_dir};
use crate::domain::State;
use crate::log::engine::{LogEngine, SledEngine};
use crate::log::fs::Fs;
use crate::log::keys::StoreKeys;
use crate::log::segments::{MAX_SEGMENT_BYTES, Mode, SegmentEngine};
use crate::log::{LogError, Verified};

/// A copy of a directory, removed when dropped.
pub(super) struct TempCopy {
    path: PathBuf,
}

impl TempCopy {
    /// Copies `from` into a new directory `at` (which must not exist).
    pub(super) fn of(from: &Path, at: PathBuf) -> std::io::Result<TempCopy> {
        crate::files::create_private_dir(&at)?;
        let copy = TempCopy { path: at };
        copy_dir(from, &copy.path)?;
        Ok(copy)
    }

    /// Where the copy is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    crate::files::create_private_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A unique name for a temporary directory under `parent`.
pub(super) fn temp_name(parent: &Path, what: &str) -> PathBuf {
    let mut r = [0u8; 8];
    let _ = hotline_proto::identity::fill_random(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    parent.join(format!("hotline-{what}-{}-{hex}", std::process::id()))
}

/// Where the copy of the earlier layout's `store/` is made: `tmp_dir` if
/// given, else the directory that holds `data_dir` (the same filesystem,
/// never the system's temporary directory, often a small tmpfs in RAM),
/// and never inside the data directory (a verify creates nothing there).
pub(super) fn old_copy_parent(data_dir: &Path, tmp_dir: Option<&Path>) -> PathBuf {
    if let Some(dir) = tmp_dir {
        return dir.to_owned();
    }
    let absolute = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    match absolute.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Room kept free beyond the copy's own size.
const COPY_MARGIN: u64 = 64 << 20;

/// Bytes of the files under `dir`.
fn size_of_dir(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        total += if kind.is_dir() {
            size_of_dir(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}

/// Refuses a copy of `need` bytes into `parent`, which has `free` bytes
/// free, unless it leaves [`COPY_MARGIN`]: the words say how much is
/// needed, where, and what to do.
pub(super) fn check_room(parent: &Path, need: u64, free: Option<u64>) -> Result<(), StoreError> {
    let mib = |b: u64| b.div_ceil(1 << 20);
    match free {
        Some(free) if free < need.saturating_add(COPY_MARGIN) => Err(StoreError::Io(format!(
            "the store is in the earlier layout (store/, {} MiB), which is read through a \
             temporary copy, and {} has only {} MiB free ({} MiB needed): free space there, \
             or name a directory on a filesystem with room with --tmp-dir",
            mib(need),
            parent.display(),
            mib(free),
            mib(need.saturating_add(COPY_MARGIN)),
        ))),
        _ => Ok(()),
    }
}

/// Opens a copy of the earlier layout's sled directory in `data_dir`,
/// under `parent` (never the original: opening may rewrite it), once
/// `parent` is known to have room for it.
pub(super) fn open_old_copy(
    data_dir: &Path,
    parent: &Path,
) -> Result<(SledEngine, TempCopy), OpenError> {
    let old = old_store_dir(data_dir);
    let need = size_of_dir(&old)
        .map_err(|e| StoreError::Io(format!("cannot read {}: {e}", old.display())))?;
    if !parent.is_dir() {
        return Err(StoreError::Io(format!(
            "the store is in the earlier layout (store/), which is read through a temporary \
             copy, and {} is not a directory to put it in: name an existing one with --tmp-dir",
            parent.display()
        ))
        .into());
    }
    check_room(parent, need, crate::files::free_bytes(parent))?;
    let copy = TempCopy::of(&old, temp_name(parent, "old-store")).map_err(|e| {
        StoreError::Io(format!(
            "cannot copy the old store (store/) into {}: {e}",
            parent.display()
        ))
    })?;
    // A small cache: the copy is read once, in order.
    let engine = SledEngine::open(copy.path(), 16 << 20).map_err(LogError::from_engine)?;
    Ok((engine, copy))
}

/// The state a verified store derives, replayed from its first record.
fn derived_state(
    engine: &dyn LogEngine,
    keys: &StoreKeys,
    data_dir: &Path,
) -> Result<State, OpenError> {
    let mut state = State::default();
    crate::log::entries(engine, keys, data_dir, |seq, entry| {
        apply_entry(&mut state, seq, entry)
    })?;
    Ok(state)
}

/// Whether `data_dir` holds a store of the earlier layout and no segment
/// directory yet.
pub(super) fn needed(data_dir: &Path) -> bool {
    !log_dir(data_dir).exists() && old_store_dir(data_dir).exists()
}

/// Migrates the store of the earlier layout in `data_dir` (see the module
/// documentation), writing the new layout, syncing it and renaming it
/// into place through `fs` ([`crate::log::fs`]). The old store is copied
/// (beside `data_dir`, see [`old_copy_parent`]) and verified before
/// anything in `data_dir` changes;
/// `take_lock` is then called to hold the data directory against another
/// process while the new layout is written. Returns what it returned.
pub(super) fn migrate<L>(
    data_dir: &Path,
    keys: &StoreKeys,
    fs: Fs,
    take_lock: impl FnOnce() -> Result<L, OpenError>,
) -> Result<L, OpenError> {
    info!("migrating the store from its earlier layout (store/) to segment files (log/)");
    let (old, _copy) = open_old_copy(data_dir, &old_copy_parent(data_dir, None))?;
    let before = crate::log::verify(&old, keys, data_dir, &[])?;
    let old_state = derived_state(&old, keys, data_dir)?;
    let lock = take_lock()?;
    if !needed(data_dir) {
        // Another process migrated it meanwhile.
        return Ok(lock);
    }

    let staging = data_dir.join("log.migrating");
    clear_staging(data_dir)?;
    crate::files::create_private_dir(&staging)
        .map_err(|e| StoreError::Io(format!("cannot create log.migrating: {e}")))?;
    let new = SegmentEngine::open_with_fs(
        &staging,
        keys.store_id(),
        Mode::Writable {
            max_segment_bytes: MAX_SEGMENT_BYTES,
        },
        fs.clone(),
    )
    .map_err(LogError::from_engine)?;
    copy_log(&old, &new)?;
    drop(new);
    drop(old);

    let new = SegmentEngine::open(&staging, keys.store_id(), Mode::ReadOnly)
        .map_err(LogError::from_engine)?;
    let after = crate::log::verify(&new, keys, data_dir, &[])?;
    same_chain(&before, &after)?;
    if derived_state(&new, keys, data_dir)? != old_state {
        return Err(StoreError::Corrupt(
            "migration check failed: the new layout derives another state; nothing was switched"
                .into(),
        )
        .into());
    }
    drop(new);
    // Strict: the rename must be on disk before anything is acknowledged
    // into log/ (a lost rename would leave those records in a staging
    // directory).
    fs.sync_dir(&staging)
        .map_err(|e| StoreError::Io(format!("cannot sync log.migrating: {e}")))?;
    fs.rename(&staging, &log_dir(data_dir))
        .map_err(|e| StoreError::Io(format!("cannot move log.migrating to log: {e}")))?;
    fs.sync_dir(data_dir).map_err(|e| {
        StoreError::Io(format!(
            "cannot sync the data directory after the migration: {e}"
        ))
    })?;
    info!(
        records = after.records,
        checkpoints = after.checkpoints,
        "migration done: same chain head and state; the old store/ is kept untouched"
    );
    Ok(lock)
}

/// Deals with a `log.migrating/` left in `data_dir`: with no `log/`, it
/// is an interrupted migration (the rename to `log/` is synced before
/// anything is written into it), removed to start afresh; beside a
/// `log/` it is renamed aside to `log.migrating.<unix time>/`, never
/// deleted.
pub(super) fn clear_staging(data_dir: &Path) -> Result<(), OpenError> {
    let staging = data_dir.join("log.migrating");
    if !staging.exists() {
        return Ok(());
    }
    if log_dir(data_dir).exists() {
        let aside = data_dir.join(format!("log.migrating.{}", crate::unix_now()));
        warn!("log.migrating/ found beside log/: moving it aside, not deleting it");
        std::fs::rename(&staging, &aside)
            .map_err(|e| StoreError::Io(format!("cannot move log.migrating aside: {e}")))?;
        crate::files::sync_dir_strict(data_dir)
            .map_err(|e| StoreError::Io(format!("cannot sync the data directory: {e}")))?;
    } else {
        warn!("removing log.migrating/ left by an interrupted migration");
        std::fs::remove_dir_all(&staging)
            .map_err(|e| StoreError::Io(format!("cannot remove log.migrating: {e}")))?;
    }
    Ok(())
}

/// Copies every record and checkpoint, each checkpoint right after the
/// record it signs, as the log wrote them.
fn copy_log(old: &SledEngine, new: &SegmentEngine) -> Result<(), OpenError> {
    let mut checkpoints = BTreeMap::new();
    for item in old.checkpoints() {
        let (seq, bytes) = item.map_err(LogError::from_engine)?;
        checkpoints.insert(seq, bytes);
    }
    let mut batch = Vec::new();
    for item in old.scan(1) {
        let (seq, bytes) = item.map_err(LogError::from_engine)?;
        batch.push((seq, bytes));
        let cp = checkpoints.remove(&seq).map(|b| (seq, b));
        if cp.is_some() || batch.len() >= 1000 {
            new.append(&batch, cp).map_err(LogError::from_engine)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        new.append(&batch, None).map_err(LogError::from_engine)?;
    }
    if !checkpoints.is_empty() {
        return Err(StoreError::Corrupt(
            "migration check failed: a checkpoint lies beyond the last record".into(),
        )
        .into());
    }
    Ok(())
}

fn same_chain(before: &Verified, after: &Verified) -> Result<(), OpenError> {
    if (
        before.records,
        before.head_seq,
        before.head,
        before.checkpoints,
    ) != (after.records, after.head_seq, after.head, after.checkpoints)
    {
        return Err(StoreError::Corrupt(
            "migration check failed: the new layout has another chain head; nothing was switched"
                .into(),
        )
        .into());
    }
    Ok(())
}

/// Takes away group and other permissions from everything in the data
/// directory, the earlier layout's `store/` included (an earlier version
/// wrote 0755/0644): directories become 0700, files 0600, as every file
/// this version makes; symbolic links are not followed. Called once a
/// migration is done. Returns how many
/// modes it changed; never changes a file's bytes.
pub(super) fn tighten_modes(data_dir: &Path) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fn tighten(path: &Path, changed: &mut usize) -> std::io::Result<()> {
            let meta = std::fs::symlink_metadata(path)?;
            if meta.file_type().is_symlink() {
                return Ok(());
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let private = if meta.is_dir() { 0o700 } else { 0o600 };
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
                *changed += 1;
            }
            if meta.is_dir() {
                for entry in std::fs::read_dir(path)? {
                    tighten(&entry?.path(), changed)?;
                }
            }
            Ok(())
        }
        let mut changed = 0;
        tighten(data_dir, &mut changed)?;
        Ok(changed)
    }
    #[cfg(not(unix))]
    {
        let _ = data_dir;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Create, LogStore, open_keys};
    use super::*;
    use crate::log::keys::KeySource;
    use fs2::FileExt;

    /// A copy of the checked-in store of the earlier layout; returns the
    /// data directory and its key.
    fn fixture(dir: &Path) -> (PathBuf, KeySource) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-v1");
        copy_dir(&from, dir).expect("copy the fixture");
        (dir.join("data"), KeySource::File(dir.join("master.key")))
    }

    fn open(data: &Path, key: &KeySource) -> Result<LogStore, OpenError> {
        let keys = open_keys(data, key, Create::Never).expect("keys");
        LogStore::open(data, keys, 4 << 20)
    }

    #[test]
    fn a_running_server_of_the_earlier_version_stops_the_migration_before_the_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, key) = fixture(dir.path());
        // The old server holds sled's lock on store/db, as sled 0.34 takes it.
        let old = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(data.join("store").join("db"))
            .expect("db");
        old.try_lock_exclusive().expect("the old server's lock");
        let err = open(&data, &key).expect_err("refused");
        assert!(
            err.to_string().contains("stop the old server first"),
            "{err}"
        );
        assert!(!data.join("log").exists(), "nothing migrated");
        assert!(!data.join("log.migrating").exists(), "nothing staged");
        // Once it stopped, the migration runs, and an old server cannot
        // start on store/ while the new one runs.
        drop(old);
        let store = open(&data, &key).expect("migrates");
        let again = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(data.join("store").join("db"))
            .expect("db");
        assert!(
            again.try_lock_exclusive().is_err(),
            "the old server is kept out"
        );
        drop(store);
        assert!(again.try_lock_exclusive().is_ok());
    }

    /// Every file under `dir` with its bytes.
    fn bytes_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(dir).expect("dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                out.extend(bytes_of(&p));
            } else {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            }
        }
        out
    }

    #[test]
    fn a_migration_whose_write_sync_or_rename_fails_switches_nothing_and_the_next_start_migrates() {
        use crate::log::fs::{Fault, FaultFs, Op};
        let mut heads = Vec::new();
        for (op, fault) in [
            (Op::Write, Fault::Enospc),
            (Op::Sync, Fault::Eio),
            (Op::SyncDir, Fault::Eio),
            (Op::Rename, Fault::Eio),
            (Op::Rename, Fault::Enospc),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (data, key) = fixture(dir.path());
            let old_store = bytes_of(&data.join("store"));
            let faults = FaultFs::new();
            faults.fail_from(op, 1, fault);
            let keys = open_keys(&data, &key, Create::Never).expect("keys");
            let err =
                LogStore::open_with_fs(&data, keys, 4 << 20, MAX_SEGMENT_BYTES, faults.handle())
                    .expect_err("the start is refused");
            assert!(!faults.injected().is_empty(), "{op:?}: never fired ({err})");
            // Nothing was switched: no log/, the old store unchanged.
            assert!(!data.join("log").exists(), "{op:?}");
            assert_eq!(bytes_of(&data.join("store")), old_store, "{op:?}");
            // The next start (the fault gone) migrates afresh.
            let store = open(&data, &key).expect("migrates");
            heads.push(store.log.head());
            drop(store);
            assert!(!data.join("log.migrating").exists(), "{op:?}");
            assert_eq!(bytes_of(&data.join("store")), old_store, "{op:?}");
        }
        assert!(heads[0].0 > 0);
        assert!(heads.iter().all(|h| *h == heads[0]), "{heads:?}");
    }

    #[test]
    fn a_staging_directory_beside_log_is_moved_aside_never_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, key) = fixture(dir.path());
        drop(open(&data, &key).expect("migrates"));
        let staging = data.join("log.migrating");
        std::fs::create_dir(&staging).expect("mkdir");
        std::fs::write(staging.join("seg-00000000000000000001.hlog"), b"records").expect("write");
        drop(open(&data, &key).expect("opens"));
        assert!(!staging.exists());
        let aside: Vec<PathBuf> = std::fs::read_dir(&data)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("log.migrating."))
            })
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(
            std::fs::read(aside[0].join("seg-00000000000000000001.hlog")).expect("kept"),
            b"records"
        );
    }
    fn listing(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_earlier_layout_is_verified_through_a_copy_beside_the_data_directory_with_room_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, key) = fixture(dir.path());
        // By default beside the data directory (its filesystem), not in
        // the system's temporary directory, and never inside it.
        assert_eq!(old_copy_parent(&data, None), dir.path());
        let beside = listing(dir.path());
        let inside = listing(&data);
        let report = super::super::verify_store(&data, &key, 4 << 20, None).expect("verifies");
        assert!(report.old_layout);
        assert_eq!(report.old_copy_in.as_deref(), Some(dir.path()));
        assert_eq!(listing(dir.path()), beside, "the copy is removed");
        assert_eq!(
            listing(&data),
            inside,
            "nothing is made in the data directory"
        );
        // --tmp-dir: there, and removed after.
        let tmp = dir.path().join("scratch");
        std::fs::create_dir(&tmp).expect("mkdir");
        let report = super::super::verify_store_in(&data, &key, 4 << 20, None, Some(&tmp))
            .expect("verifies");
        assert_eq!(report.old_copy_in.as_deref(), Some(tmp.as_path()));
        assert!(listing(&tmp).is_empty(), "the copy is removed");
        // A --tmp-dir that is not a directory is named, and nothing is made.
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").expect("write");
        let err = super::super::verify_store_in(&data, &key, 4 << 20, None, Some(&file))
            .expect_err("no directory");
        assert!(err.to_string().contains("--tmp-dir"), "{err}");
        assert!(err.to_string().contains("a-file"), "{err}");
        // Too little room: refused before copying, in words.
        let err = check_room(&tmp, 300 << 20, Some(100 << 20)).expect_err("no room");
        let words = err.to_string();
        for part in [
            "300 MiB",
            "100 MiB free",
            "364 MiB needed",
            "--tmp-dir",
            "scratch",
        ] {
            assert!(words.contains(part), "{part}: {words}");
        }
        assert!(check_room(&tmp, 300 << 20, Some(1 << 30)).is_ok());
    }
}
