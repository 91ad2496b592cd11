//! `hotline-server backup --to DIR` and `restore --from DIR`: a copy of a
//! store, taken while a server may be writing it, that verifies on its
//! own, and its way back into a new data directory.
//!
//! A backup is laid out as a data directory (so `verify -d DIR` checks
//! it): `store.header` (never rewritten), `chain.head` (copied first: the
//! server writes it only after the records it names are durable, so every
//! record it names is in the segments copied after it), the segment files
//! (closed ones are immutable; the open one is copied as it is and cut at
//! its last whole frame: a frame being written at that moment is not in
//! the backup), the keyring (overwritten in place on erasure: read until
//! two reads agree), and the TLS certificate and sealed key. Never the
//! snapshot cache: a start rebuilds it. The backup is then verified (the
//! chain, every seal and signed checkpoint, against its own
//! `chain.head`); a finding caused by a write racing the copy is retried.
//!
//! Nothing in the data directory is opened for writing.

use std::path::{Path, PathBuf};

use super::{Create, OpenError, StoreError, keyring_path, log_dir, open_keys};
use fs2::FileExt;

use crate::log::keys::{KeyError, KeySource, header_path};
use crate::log::record::Checkpoint;
use crate::log::segments::{Mode, SegmentEngine};
use crate::log::{HEAD_FILE, LogError, Verified};

/// What a backup (or a restore) holds, verified.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// Where it is.
    pub dir: PathBuf,
    /// The chain walk's findings.
    pub verified: Verified,
    /// Segment files copied.
    pub segments: usize,
    /// The newest signed checkpoint it holds.
    pub checkpoint: Option<Checkpoint>,
    /// Bytes of a frame being written at the moment of the copy, left out.
    pub left_out_bytes: u64,
    /// The TLS certificate it holds, checked against the store (its key
    /// opens and matches it; it is the one the store recorded): a server
    /// restored from it serves with this pin. `None`: it holds none.
    pub certificate: Option<super::certificate::Checked>,
    /// Set by [`backup`] when the data directory's TLS certificate does
    /// not verify against the store (swapped, key not matching, record
    /// altered): why. The backup then holds no `tls/`; its log is
    /// verified all the same.
    pub certificate_not_taken: Option<String>,
    /// Set when the copy holds no TLS certificate although its log
    /// records one (a backup taken without its certificate): why. A
    /// server started on it refuses until `accept-new-cert` is run; the
    /// caller says so and exits non-zero.
    pub certificate_missing: Option<String>,
    /// The head line (`hotline-checkpoint:1:…`) of the copy's
    /// `chain.head`: kept with the backup, `verify --expect-head` on a
    /// store restored from it passes. `None`: no checkpoint yet.
    pub head_line: Option<String>,
}

/// How many times a copy is taken again when it does not verify (a write
/// raced it) before the finding is reported.
const TRIES: u32 = 3;

fn io(what: &str, path: &Path, e: std::io::Error) -> OpenError {
    StoreError::Io(format!("{what} {}: {e}", path.display())).into()
}

/// The TLS files copied with a store (the snapshot cache never is).
const TLS_FILES: [&str; 3] = [
    super::certificate::CERT_FILE,
    super::certificate::KEY_FILE,
    super::certificate::BINDING_FILE,
];

/// Copies the store in `data_dir` into the new directory `to` (which
/// must not exist, or be empty) and verifies the copy. Works while a
/// server runs on `data_dir`; changes nothing there.
///
/// The copy is written into `<to>.partial` and renamed to `to` only once
/// its log verified and reached the disk: a failed backup never leaves a
/// complete-looking `to`; `<to>.partial` is removed on failure. A TLS
/// certificate that does not match the store's record does not stop the
/// backup of the log: the copy is made without `tls/`, and
/// [`BackupReport::certificate_not_taken`] says why (the caller exits
/// non-zero).
pub fn backup(data_dir: &Path, key: &KeySource, to: &Path) -> Result<BackupReport, OpenError> {
    if !data_dir.is_dir() {
        return Err(KeyError::DataDirMissing(data_dir.to_owned()).into());
    }
    let keys = open_keys(data_dir, key, Create::Never)?;
    if !log_dir(data_dir).exists() && super::old_store_dir(data_dir).exists() {
        return Err(StoreError::Io(
            "the store is in the earlier layout (store/): start the server once to migrate it, \
             then back it up (or copy the stopped data directory whole)"
                .into(),
        )
        .into());
    }
    if inside(data_dir, to)? {
        return Err(StoreError::Io("the backup must be outside the data directory".into()).into());
    }
    if to.exists() {
        let mut entries = std::fs::read_dir(to).map_err(|e| io("cannot read", to, e))?;
        if entries.next().is_some() {
            return Err(StoreError::Io(format!(
                "{} is not empty: give a new directory",
                to.display()
            ))
            .into());
        }
    }
    refuse_link(to)?;
    let partial = partial_path(to)?;
    // Held until the backup ends: a second backup onto the same target is
    // refused instead of clearing or mixing into this one's copy.
    let (_copying, leftover) = lock_partial(to, &partial)?;
    if leftover {
        tracing::warn!("removing a copy left by an interrupted backup");
        clear_dir(&partial)?;
    }
    let taken = backup_into(data_dir, key, &keys, &partial);
    let mut report = match taken {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let renamed = (|| {
        unmark(&partial)?;
        refuse_link(to)?;
        if to.exists() {
            std::fs::remove_dir(to).map_err(|e| io("cannot replace", to, e))?;
        }
        std::fs::rename(&partial, to).map_err(|e| io("cannot rename the copy to", to, e))?;
        let parent = parent_of(to);
        crate::files::sync_dir_strict(&parent).map_err(|e| io("cannot sync", &parent, e))
    })();
    if let Err(e) = renamed {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    report.dir = to.to_owned();
    Ok(report)
}

/// [`backup`]'s copy into `partial` (an empty directory), verified and
/// made durable.
fn backup_into(
    data_dir: &Path,
    key: &KeySource,
    keys: &crate::log::keys::StoreKeys,
    partial: &Path,
) -> Result<BackupReport, OpenError> {
    let mut tries = 0;
    loop {
        tries += 1;
        clear(partial)?;
        let copied = copy_store(data_dir, partial)?;
        match check(partial, keys).and_then(|found| sign_end(partial, keys, found)) {
            Ok((verified, checkpoint)) => {
                let (certificate, certificate_not_taken) = match super::certificate::check(
                    partial,
                    keys,
                    super::certificate::FromLog::UNREAD,
                ) {
                    Ok(c) => (c, None),
                    Err(in_copy) => {
                        // Named by the data directory's files (what the
                        // operator fixes), unless they changed since.
                        let reason = match super::certificate::check(
                            data_dir,
                            keys,
                            super::certificate::FromLog::UNREAD,
                        ) {
                            Err(e) => e.to_string(),
                            Ok(_) => in_copy.to_string(),
                        };
                        let tls = partial.join("tls");
                        if tls.exists() {
                            std::fs::remove_dir_all(&tls)
                                .map_err(|e| io("cannot remove", &tls, e))?;
                        }
                        (None, Some(reason))
                    }
                };
                let certificate_missing = match (&certificate, &certificate_not_taken) {
                    // Read in the data directory (the copy is locked by
                    // this backup): its files are the copy's.
                    (None, None) => certificate_lost(data_dir, key, keys)?,
                    _ => None,
                };
                sync_tree(partial)?;
                let head_line = match crate::log::read_head(keys, partial)? {
                    crate::log::head::Head::Checkpoint(cp) => Some(cp.export(&keys.store_id())),
                    _ => None,
                };
                return Ok(BackupReport {
                    dir: partial.to_owned(),
                    verified,
                    segments: copied.0,
                    checkpoint,
                    left_out_bytes: copied.1,
                    certificate,
                    certificate_not_taken,
                    certificate_missing,
                    head_line,
                });
            }
            // Only a running server's write can race the copy: a stopped
            // store's finding is reported at once.
            Err(e @ LogError::Tampered { .. }) if tries < TRIES && in_use(data_dir) => {
                tracing::info!(error = %e, "the copy raced a write; copying again");
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes a new data directory `to` from the backup in `from`: the backup
/// is verified, copied, and the copy verified. A server started on `to`
/// (with the same master key) rebuilds its snapshot cache and serves.
pub fn restore(from: &Path, key: &KeySource, to: &Path) -> Result<BackupReport, OpenError> {
    restore_with_fs(from, key, to, crate::log::fs::real())
}

/// [`restore`], with the rename of `<to>.partial` to `to` (and the sync
/// of their parent directory) made through `fs` (tests inject faults
/// there). If that rename fails, `to` is not made (a later restore
/// starts over from the backup).
pub fn restore_with_fs(
    from: &Path,
    key: &KeySource,
    to: &Path,
    fs: crate::log::fs::Fs,
) -> Result<BackupReport, OpenError> {
    if !from.is_dir() {
        return Err(KeyError::DataDirMissing(from.to_owned()).into());
    }
    let keys = open_keys(from, key, Create::Never)?;
    check(from, &keys)?;
    check_certificate(from, &keys)?;
    // Written into `<to>.partial`, made durable, and only then renamed to
    // `to`: a crash or a failure midway never leaves a half-restored data
    // directory where a server could be started.
    if in_use(to) {
        // A server (or any tool) holds the target's lock: never write
        // beside a live data directory.
        return Err(StoreError::Locked.into());
    }
    if to.exists() {
        let mut entries = std::fs::read_dir(to).map_err(|e| io("cannot read", to, e))?;
        if entries.next().is_some() {
            return Err(StoreError::Io(format!(
                "{} is not empty: give a new directory",
                to.display()
            ))
            .into());
        }
    }
    refuse_link(to)?;
    let partial = partial_path(to)?;
    // Held until the restore ends: a second restore onto the same target
    // is refused instead of clearing or mixing into this one's copy.
    let (_restoring, leftover) = lock_partial(to, &partial)?;
    if leftover {
        tracing::warn!("removing a restore's copy left by an interrupted restore");
        clear_dir(&partial)?;
    }
    let copied = copy_store(from, &partial)?;
    let (verified, checkpoint) = check(&partial, &keys)?;
    let certificate = check_certificate(&partial, &keys)?;
    let certificate_missing = match certificate {
        // Read in the backup (the copy is locked by this restore): the
        // copy holds the same log and files.
        None => certificate_lost(from, key, &keys)?,
        Some(_) => None,
    };
    sync_tree(&partial)?;
    unmark(&partial)?;
    let renamed = (|| {
        refuse_link(to)?;
        if to.exists() {
            std::fs::remove_dir(to).map_err(|e| io("cannot replace", to, e))?;
        }
        fs.rename(&partial, to)
            .map_err(|e| io("cannot rename the restored copy to", to, e))
    })();
    if let Err(e) = renamed {
        // Still this tool's leftover: the next restore clears it.
        let _ = std::fs::write(partial.join(PARTIAL_MARKER), MARKER_TEXT);
        return Err(e);
    }
    let parent = parent_of(to);
    fs.sync_dir(&parent)
        .map_err(|e| io("cannot sync", &parent, e))?;
    Ok(BackupReport {
        dir: to.to_owned(),
        verified,
        segments: copied.0,
        checkpoint,
        left_out_bytes: copied.1,
        certificate,
        certificate_not_taken: None,
        certificate_missing,
        head_line: match crate::log::read_head(&keys, to)? {
            crate::log::head::Head::Checkpoint(cp) => Some(cp.export(&keys.store_id())),
            _ => None,
        },
    })
}

/// The TLS certificate and key in a copy, checked against the store: a
/// copy whose server could not serve, or would serve another pin, is
/// never called verified.
fn check_certificate(
    dir: &Path,
    keys: &crate::log::keys::StoreKeys,
) -> Result<Option<super::certificate::Checked>, OpenError> {
    super::certificate::check(dir, keys, super::certificate::FromLog::UNREAD).map_err(|e| {
        StoreError::Corrupt(format!("the TLS certificate does not verify: {e}")).into()
    })
}

/// The file `backup` and `restore` write first into the `<to>.partial`
/// they create: only a `.partial` carrying it is ever cleared as a
/// leftover of an interrupted run. Removed just before the rename.
pub const PARTIAL_MARKER: &str = ".hotline-partial";
const MARKER_TEXT: &[u8] = b"made by hotline-server backup/restore\n";

/// Refuses `path` if it is a symbolic link (never followed, written
/// through or replaced) or something other than a directory.
fn refuse_link(path: &Path) -> Result<(), OpenError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot read", path, e)),
        Ok(m) if m.file_type().is_symlink() => Err(StoreError::Io(format!(
            "{} is a symbolic link: refused (it is never followed or removed); remove it \
             yourself and give a new directory",
            path.display()
        ))
        .into()),
        Ok(m) if !m.is_dir() => Err(StoreError::Io(format!(
            "{} exists and is not a directory: refused; remove it yourself",
            path.display()
        ))
        .into()),
        Ok(_) => Ok(()),
    }
}

/// Why the store in `dir` (a data directory or a backup), which holds no
/// TLS certificate, cannot serve:
/// its log records a certificate (or records, which every store had a
/// certificate for) and no removal accepted with `accept-new-cert`.
/// `None`: the log says it had none, or let it go (or cannot be read
/// that way; `verify` then names it). Reads only.
fn certificate_lost(
    dir: &Path,
    key: &KeySource,
    keys: &crate::log::keys::StoreKeys,
) -> Result<Option<String>, OpenError> {
    let Some(facts) = super::certificate::read_log(dir, open_keys(dir, key, Create::Never)?) else {
        return Ok(None);
    };
    Ok(super::certificate::check(dir, keys, facts)
        .err()
        .map(|e| e.to_string()))
}

/// Takes an exclusive `flock` on the directory `<to>.partial`: held by a
/// backup or restore for its whole run. A missing `.partial` is created
/// (never through a symbolic link) and marked with [`PARTIAL_MARKER`];
/// an existing one is refused while another run holds it, and refused
/// unless it is a real directory carrying the marker (a symbolic link or
/// anything else is never removed or written through). Returns the lock
/// and whether the `.partial` is a leftover of an interrupted run (to be
/// cleared). The lock is on the directory itself, so the rename that ends
/// a run leaves no lock file behind.
fn lock_partial(to: &Path, partial: &Path) -> Result<(std::fs::File, bool), OpenError> {
    refuse_link(partial)?;
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    let made = match builder.create(partial) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io("cannot create", partial, e)),
    };
    let dir = std::fs::File::open(partial).map_err(|e| io("cannot open", partial, e))?;
    // What was opened is the real directory checked (not a symbolic link
    // put in its place since).
    refuse_link(partial)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let opened = dir.metadata().map_err(|e| io("cannot read", partial, e))?;
        let named =
            std::fs::symlink_metadata(partial).map_err(|e| io("cannot read", partial, e))?;
        if opened.dev() != named.dev() || opened.ino() != named.ino() {
            return Err(StoreError::Io(format!(
                "{} changed while it was being opened: refused; check it and try again",
                partial.display()
            ))
            .into());
        }
    }
    match FileExt::try_lock_exclusive(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
            return Err(StoreError::Io(format!(
                "another backup or restore onto {} is running (it holds {}): wait for it to \
                 finish",
                to.display(),
                partial.display()
            ))
            .into());
        }
        Err(e) => return Err(io("cannot lock", partial, e)),
    }
    let marker = partial.join(PARTIAL_MARKER);
    if made {
        std::fs::write(&marker, MARKER_TEXT).map_err(|e| io("cannot write", &marker, e))?;
        return Ok((dir, false));
    }
    match std::fs::symlink_metadata(&marker) {
        Ok(m) if m.is_file() => Ok((dir, true)),
        _ => Err(StoreError::Io(format!(
            "{} exists and was not made by hotline-server: remove it yourself",
            partial.display()
        ))
        .into()),
    }
}

/// Removes [`PARTIAL_MARKER`] from a finished copy before its rename.
fn unmark(partial: &Path) -> Result<(), OpenError> {
    let marker = partial.join(PARTIAL_MARKER);
    std::fs::remove_file(&marker).map_err(|e| io("cannot remove", &marker, e))
}

/// Removes everything inside `dir` but [`PARTIAL_MARKER`], keeping `dir`
/// itself (whose lock a run holds). Symbolic links inside are removed,
/// never followed.
fn clear_dir(dir: &Path) -> Result<(), OpenError> {
    for e in std::fs::read_dir(dir).map_err(|e| io("cannot read", dir, e))? {
        let e = e.map_err(|e| io("cannot read", dir, e))?;
        if e.file_name() == PARTIAL_MARKER {
            continue;
        }
        let p = e.path();
        let kind = e.file_type().map_err(|e| io("cannot read", &p, e))?;
        if kind.is_dir() {
            std::fs::remove_dir_all(&p).map_err(|e| io("cannot remove", &p, e))?;
        } else {
            std::fs::remove_file(&p).map_err(|e| io("cannot remove", &p, e))?;
        }
    }
    Ok(())
}

/// Removes what an earlier try of [`backup`] copied into `to` (only the
/// files it writes).
fn clear(to: &Path) -> Result<(), OpenError> {
    for sub in ["log", "tls"] {
        let d = to.join(sub);
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(|e| io("cannot clear", &d, e))?;
        }
    }
    for p in [
        header_path(to),
        to.join(HEAD_FILE),
        to.join(crate::log::KEYRING_FILE),
    ] {
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| io("cannot clear", &p, e))?;
        }
    }
    Ok(())
}

/// The most a file of a store can hold: a segment
/// ([`crate::log::segments::MAX_SEGMENT_FILE_BYTES`]), `chain.head`
/// ([`crate::log::head::HEAD_FILE_BYTES`]), or any other (header, keyring,
/// TLS files) 64 MiB: a larger one is damaged or crafted and never read
/// whole.
fn most_bytes(file: &Path) -> u64 {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with("seg-") {
        crate::log::segments::MAX_SEGMENT_FILE_BYTES
    } else if name == HEAD_FILE {
        crate::log::head::HEAD_FILE_BYTES
    } else {
        64 << 20
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), OpenError> {
    let bytes = crate::files::read_at_most(from, most_bytes(from))
        .map_err(|e| io("cannot read", from, e))?;
    crate::files::write_private(to, &bytes).map_err(|e| io("cannot write", to, e))
}

/// Copies a store's files; returns the segments copied and the bytes of
/// an incomplete final frame left out.
fn copy_store(data_dir: &Path, to: &Path) -> Result<(usize, u64), OpenError> {
    copy_file(&header_path(data_dir), &header_path(to))?;
    // chain.head before the segments (see the module documentation).
    let head = data_dir.join(HEAD_FILE);
    if head.exists() {
        copy_file(&head, &to.join(HEAD_FILE))?;
    }
    let src_log = log_dir(data_dir);
    let dst_log = log_dir(to);
    let mut segments = 0;
    let mut left_out = 0;
    if src_log.is_dir() {
        crate::files::create_private_dir(&dst_log).map_err(|e| io("cannot create", &dst_log, e))?;
        let mut names: Vec<String> = std::fs::read_dir(&src_log)
            .map_err(|e| io("cannot read", &src_log, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| crate::log::segment::parse_file_name(n).is_some())
            .collect();
        names.sort();
        for name in &names {
            copy_file(&src_log.join(name), &dst_log.join(name))?;
            segments += 1;
        }
        // The open segment may end in a frame being written: leave it out
        // of the copy (never out of the data directory).
        if let Some(newest) = names.last() {
            let path = dst_log.join(newest);
            let (end, len) =
                crate::log::segment::end_of_file(&path).map_err(|e| io("cannot read", &path, e))?;
            if let crate::log::segment::End::Torn { offset } = end {
                left_out = len - offset;
                if offset < crate::log::segment::HEADER_LEN as u64 {
                    std::fs::remove_file(&path).map_err(|e| io("cannot cut", &path, e))?;
                    segments -= 1;
                } else {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| io("cannot cut", &path, e))?;
                    f.set_len(offset).map_err(|e| io("cannot cut", &path, e))?;
                }
            }
        }
    }
    copy_keyring(&keyring_path(data_dir), &keyring_path(to))?;
    for f in TLS_FILES {
        let src = data_dir.join(f);
        if src.exists() {
            let dst = to.join(f);
            if let Some(parent) = dst.parent() {
                crate::files::create_private_dir(parent)
                    .map_err(|e| io("cannot create", parent, e))?;
            }
            copy_file(&src, &dst)?;
        }
    }
    Ok((segments, left_out))
}

/// The keyring is overwritten in place when a case is erased: it is read
/// until two reads in a row agree.
fn copy_keyring(from: &Path, to: &Path) -> Result<(), OpenError> {
    if !from.exists() {
        return Ok(());
    }
    let mut last = std::fs::read(from).map_err(|e| io("cannot read", from, e))?;
    for _ in 0..10 {
        let again = std::fs::read(from).map_err(|e| io("cannot read", from, e))?;
        if again == last {
            return crate::files::write_private(to, &again).map_err(|e| io("cannot write", to, e));
        }
        last = again;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(StoreError::Io("the keyring kept changing while it was copied; try again".into()).into())
}

/// Verifies a store directory read-only: the chain against its own
/// `chain.head`; returns the findings and its newest checkpoint.
pub(super) fn check(
    dir: &Path,
    keys: &crate::log::keys::StoreKeys,
) -> Result<(Verified, Option<Checkpoint>), LogError> {
    let head = crate::log::read_head(keys, dir)?;
    let engine = SegmentEngine::open(&log_dir(dir), keys.store_id(), Mode::ReadOnly)
        .map_err(LogError::from_engine)?;
    let verified = crate::log::verify_against(&engine, keys, dir, &[], head)?;
    // The newest checkpoint in one read (the segment engine finds it
    // without reading the others).
    let newest = crate::log::engine::LogEngine::latest_checkpoint(&engine)
        .map_err(LogError::from_engine)?
        .map(|(seq, bytes)| {
            Checkpoint::from_bytes(&bytes).ok_or_else(|| LogError::Tampered {
                seq,
                reason: "checkpoint is malformed".into(),
            })
        })
        .transpose()?;
    Ok((verified, newest))
}

/// Makes the copy's `chain.head` cover every record it holds: when its
/// signed checkpoint is behind the copy's last record (records a running
/// server wrote since its last checkpoint), a checkpoint of the copy's
/// end is signed with the store's key and written into the copy's
/// `chain.head` (its older slot; the log's segments are not changed), and
/// the copy is verified again against it. So the head line a backup
/// prints covers every record in it. `found`: [`check`]'s findings.
/// `recover` uses it too, for the records it keeps.
pub(super) fn sign_end(
    dir: &Path,
    keys: &crate::log::keys::StoreKeys,
    found: (Verified, Option<Checkpoint>),
) -> Result<(Verified, Option<Checkpoint>), LogError> {
    let verified = &found.0;
    let behind = match crate::log::read_head(keys, dir)? {
        crate::log::head::Head::Checkpoint(cp) => cp.seq < verified.head_seq,
        _ => false,
    };
    if !behind {
        return Ok(found);
    }
    let cp = Checkpoint::sign(
        &keys.signing,
        &keys.store_id(),
        verified.head_seq,
        verified.head,
        crate::unix_now(),
    );
    let path = dir.join(HEAD_FILE);
    let write = |path: &Path| -> std::io::Result<()> {
        let (file, _) = crate::log::head::HeadFile::open(
            path,
            true,
            &keys.checkpoint_public_key(),
            &keys.store_id(),
        )?;
        match file {
            Some(mut f) => f.write(&cp),
            None => Err(std::io::Error::other(
                "chain.head was not opened for writing",
            )),
        }
    };
    write(&path).map_err(|e| {
        LogError::Engine(crate::log::engine::EngineError::Io(format!(
            "cannot write {}: {e}",
            path.display()
        )))
    })?;
    check(dir, keys)
}

/// Makes the copy durable: every file and directory synced. A failure is
/// reported: a copy is never called verified unless it reached the disk.
fn sync_tree(dir: &Path) -> Result<(), OpenError> {
    for e in std::fs::read_dir(dir).map_err(|e| io("cannot read", dir, e))? {
        let p = e.map_err(|e| io("cannot read", dir, e))?.path();
        if p.is_dir() {
            sync_tree(&p)?;
        } else {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("cannot sync", &p, e))?;
        }
    }
    crate::files::sync_dir_strict(dir).map_err(|e| io("cannot sync", dir, e))
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `<to>.partial`, beside `to`.
fn partial_path(to: &Path) -> Result<PathBuf, OpenError> {
    let name = to.file_name().ok_or_else(|| {
        StoreError::Io(format!("{}: give the new directory's name", to.display()))
    })?;
    let mut partial = name.to_owned();
    partial.push(".partial");
    Ok(parent_of(to).join(partial))
}

/// `path` with every symbolic link and `..` resolved; for a path that
/// does not exist yet, its nearest existing ancestor's, joined with the
/// rest.
fn resolved(path: &Path) -> Result<PathBuf, OpenError> {
    if path.exists() {
        return path
            .canonicalize()
            .map_err(|e| io("cannot resolve", path, e));
    }
    let name = path.file_name().ok_or_else(|| {
        StoreError::Io(format!(
            "{}: give the backup directory's path plainly",
            path.display()
        ))
    })?;
    Ok(resolved(&parent_of(path))?.join(name))
}

/// Whether `to` lies inside `data_dir`, both resolved (symbolic links,
/// `..`, relative paths).
fn inside(data_dir: &Path, to: &Path) -> Result<bool, OpenError> {
    Ok(resolved(to)?.starts_with(resolved(data_dir)?))
}

/// If a server holds the store in `data_dir` (the snapshot cache's lock),
/// the newest checkpoint it signed, read from `chain.head` without
/// opening anything for writing, with its export line; `None` if no
/// server runs there.
pub fn running_checkpoint(
    data_dir: &Path,
    key: &KeySource,
) -> Result<Option<(Checkpoint, String)>, OpenError> {
    if !in_use(data_dir) {
        return Ok(None);
    }
    let keys = open_keys(data_dir, key, Create::Never)?;
    match crate::log::read_head(&keys, data_dir)? {
        crate::log::head::Head::Checkpoint(cp) => {
            let line = cp.export(&keys.store_id());
            Ok(Some((cp, line)))
        }
        crate::log::head::Head::Empty => {
            Err(StoreError::Io("the store is empty: nothing to checkpoint yet".into()).into())
        }
        crate::log::head::Head::Damaged => Err(LogError::Tampered {
            seq: 0,
            reason: "the head file is damaged".into(),
        }
        .into()),
    }
}

/// Whether a process holds the data directory's lock
/// ([`crate::files::LOCK_FILE`]) or the snapshot cache's (sled's exclusive
/// `flock` on `cache/db`, all an earlier version holds): tested with a
/// shared lock on a read-only handle, released at once; nothing is
/// written.
pub fn in_use(data_dir: &Path) -> bool {
    if crate::files::data_dir_locked(data_dir) {
        return true;
    }
    let Ok(f) = std::fs::File::open(super::cache_dir(data_dir).join("db")) else {
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
