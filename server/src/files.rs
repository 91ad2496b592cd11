//! Private files and directories: created readable by their owner only,
//! and made durable before they are relied on.

use std::io::Write;
use std::path::Path;

/// Creates `dir` (and parents) if missing; a new directory is readable by
/// its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Syncs a directory so that entries created in it survive a power loss.
/// Best effort: some filesystems do not support it.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Syncs a directory, reporting a failure: for steps whose durability a
/// later step relies on (a rename that must not be lost).
pub(crate) fn sync_dir_strict(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to a new file readable by the owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`
/// (`statvfs`), if it can be read.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    fs2::available_space(dir).ok()
}

/// The data directory's lock file: every process that writes the store
/// (a server, `invite`, `checkpoint`, `recover`, a migration) holds an
/// exclusive advisory lock on it for its whole life, taken before it reads
/// the log to write after it.
pub const LOCK_FILE: &str = "lock";

/// How long a lock held by another process is waited for (a server being
/// restarted in the same process releases it as its last handle closes).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The data directory's lock, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    /// The lock on `<data_dir>/lock` (none for a read-only server on a
    /// directory without one).
    _file: Option<std::fs::File>,
    /// The lock on the data directory itself: exclusive for a writer,
    /// shared for a read-only server, so that they keep each other out
    /// even where there is no lock file (right after `restore`) and
    /// the read-only server creates none.
    _dir: Option<std::fs::File>,
    /// A shared lock on the earlier layout's `store/db` (sled's lock
    /// file), if that store is there: a server of the earlier version
    /// cannot start on it meanwhile.
    old_store: Option<std::fs::File>,
}

impl DataDirLock {
    /// Also holds a shared lock on the earlier layout's sled lock file
    /// `db` in `old_store`, if there is one. `Err`: a server of the
    /// earlier version holds it (runs on it). Nothing is created or written:
    /// the file is opened read-only.
    pub(crate) fn hold_old_store(&mut self, old_store: &Path) -> std::io::Result<()> {
        use fs2::FileExt;
        let Ok(file) = std::fs::File::open(old_store.join("db")) else {
            return Ok(());
        };
        FileExt::try_lock_shared(&file)?;
        self.old_store = Some(file);
        Ok(())
    }
}

/// Takes the exclusive lock on `<data_dir>/lock` (creating the file,
/// readable by its owner only). `Ok(None)`: another process holds it.
pub(crate) fn lock_data_dir(data_dir: &Path) -> std::io::Result<Option<DataDirLock>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(data_dir.join(LOCK_FILE))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    if !lock_waiting(&file, deadline)? {
        return Ok(None);
    }
    // A read-only server holds the directory shared (it may have found no
    // lock file to lock): a writer waits for it like for the file.
    let dir = std::fs::File::open(data_dir)?;
    if !lock_waiting(&dir, deadline)? {
        return Ok(None);
    }
    Ok(Some(DataDirLock {
        _file: Some(file),
        _dir: Some(dir),
        old_store: None,
    }))
}

/// Takes an exclusive lock on `file`, waiting until `deadline` while
/// another process holds it: `Ok(false)` if it still does then.
fn lock_waiting(file: &std::fs::File, deadline: std::time::Instant) -> std::io::Result<bool> {
    use fs2::FileExt;
    loop {
        match FileExt::try_lock_exclusive(file) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                if std::time::Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether another process holds the data directory's lock: tested with a
/// shared lock on a read-only handle, released at once; nothing is
/// created or written.
pub(crate) fn data_dir_locked(data_dir: &Path) -> bool {
    use fs2::FileExt;
    let Ok(f) = std::fs::File::open(data_dir.join(LOCK_FILE)) else {
        return false;
    };
    match FileExt::try_lock_shared(&f) {
        Ok(()) => {
            let _ = FileExt::unlock(&f);
            false
        }
        Err(_) => true,
    }
}

/// For a process that only reads the store while serving it (read-only
/// serving): a shared lock on the data directory itself and on
/// `<data_dir>/lock` if there is one, held until dropped, so that no
/// writer starts meanwhile (a writer takes both exclusively). Nothing is
/// created: both are opened read-only. `Err`: a writer holds a lock.
pub(crate) fn share_data_dir_lock(data_dir: &Path) -> std::io::Result<Option<DataDirLock>> {
    use fs2::FileExt;
    let dir = std::fs::File::open(data_dir)?;
    FileExt::try_lock_shared(&dir)?;
    let file = match std::fs::File::open(data_dir.join(LOCK_FILE)) {
        Ok(file) => {
            FileExt::try_lock_shared(&file)?;
            Some(file)
        }
        Err(_) => None,
    };
    Ok(Some(DataDirLock {
        _file: file,
        _dir: Some(dir),
        old_store: None,
    }))
}

/// The whole of the file at `path`, if it is at most `max` bytes: a file
/// of the data directory larger than any such file can be (a damaged or
/// crafted one, a sparse 100 GB file) is refused, naming its size, and
/// never read into memory.
pub(crate) fn read_at_most(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let len = std::fs::metadata(path)?.len();
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes, more than such a file can be ({max} bytes): \
                 it is damaged (or not ours) and was not read",
                path.display()
            ),
        ));
    }
    std::fs::read(path)
}
