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
