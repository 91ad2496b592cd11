//! `hotline-server recover --truncate-after-copy`: the operator's choice
//! to give up what follows the first damage in the log, keeping a copy.
//!
//! Everything from the first bad frame to the end of the log (the rest of
//! that segment, every later segment, and `chain.head`) is copied into
//! `<data_dir>/recovered-<unix time>/` and synced; only then are the
//! segments cut at the bad frame and `chain.head` rewritten with the
//! newest checkpoint that remains. The store is then verified. Nothing is
//! deleted that is not in the copy, so putting the copied files back
//! undoes it.

use std::path::{Path, PathBuf};

use tracing::warn;

use super::{Create, OpenError, StoreError, cache_dir, log_dir, open_keys, verify_store};
use crate::log::engine::LogEngine;
use crate::log::head::HeadFile;
use crate::log::keys::KeySource;
use crate::log::record::Checkpoint;
use crate::log::segment;
use crate::log::segments::{self, Mode, SegmentEngine};
use crate::log::{HEAD_FILE, LogError};

/// What a recovery did.
#[derive(Debug, Clone)]
pub struct RecoverReport {
    /// Records kept (all verified).
    pub kept: u64,
    /// Where the cut-off bytes were copied, if anything was cut.
    pub copied_to: Option<PathBuf>,
    /// The first record given up, if anything was cut.
    pub first_cut: Option<u64>,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> OpenError + '_ {
    move |e| StoreError::Io(format!("{what}: {e}")).into()
}

/// Finds the first damage in the store and where its frame starts.
fn first_damage(
    data_dir: &Path,
    keys: &crate::log::keys::StoreKeys,
) -> Result<Option<(u64, String, u64)>, OpenError> {
    let engine = match SegmentEngine::open(&log_dir(data_dir), keys.store_id(), Mode::ReadOnly) {
        Ok(e) => e,
        Err(crate::log::engine::EngineError::Damaged(d)) => {
            return Ok(Some((d.seq, d.segment, d.offset)));
        }
        Err(e) => return Err(LogError::from_engine(e).into()),
    };
    match crate::log::verify(&engine, keys, data_dir, &[]) {
        Ok(_) => Ok(None),
        Err(LogError::Tampered { seq, reason }) => match engine.frame_of(seq) {
            Some((name, offset)) => Ok(Some((seq, name, offset))),
            // Past the end (records missing that chain.head covers): no
            // frame to cut; nothing here can repair it.
            None => Err(LogError::Tampered { seq, reason }.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// See the module documentation. Refuses while a server holds the store.
pub fn recover_truncate_after_copy(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
) -> Result<RecoverReport, OpenError> {
    let keys = open_keys(data_dir, key, Create::Never)?;
    // Hold the data directory against a running server (and one of the
    // earlier version, which holds only the cache's lock).
    let _lock = super::take_lock(data_dir)?;
    let _cache =
        segments::open_cache(&cache_dir(data_dir), cache_bytes).map_err(LogError::from_engine)?;
    let Some((seq, name, offset)) = first_damage(data_dir, &keys)? else {
        let report = verify_store(data_dir, key, cache_bytes, None)?;
        return Ok(RecoverReport {
            kept: report.verified.records,
            copied_to: None,
            first_cut: None,
        });
    };
    let log = log_dir(data_dir);
    let aside = data_dir.join(format!("recovered-{}", crate::unix_now()));
    crate::files::create_private_dir(&aside).map_err(io("cannot create the copy directory"))?;
    let first = segment::parse_file_name(&name)
        .ok_or_else(|| StoreError::Corrupt("a segment has an unexpected name".into()))?;
    let mut later = Vec::new();
    for entry in std::fs::read_dir(&log).map_err(io("cannot list the segments"))? {
        let entry = entry.map_err(io("cannot list the segments"))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(f) = segment::parse_file_name(&file)
            && f > first
        {
            later.push(file);
        }
    }
    later.sort();
    // 1. The copy, synced, before anything changes.
    let bytes = std::fs::read(log.join(&name)).map_err(io("cannot read the segment"))?;
    let cut = if (offset as usize) < segment::HEADER_LEN {
        0
    } else {
        offset as usize
    };
    crate::files::write_private(
        &aside.join(format!("{name}.from-{cut}")),
        bytes.get(cut..).unwrap_or(&[]),
    )
    .map_err(io("cannot write the copy"))?;
    for file in &later {
        let b = std::fs::read(log.join(file)).map_err(io("cannot read a segment"))?;
        crate::files::write_private(&aside.join(file), &b).map_err(io("cannot write the copy"))?;
    }
    let head = data_dir.join(HEAD_FILE);
    if head.exists() {
        let b = std::fs::read(&head).map_err(io("cannot read chain.head"))?;
        crate::files::write_private(&aside.join(HEAD_FILE), &b)
            .map_err(io("cannot write the copy"))?;
    }
    crate::files::sync_dir_strict(&aside).map_err(io("cannot sync the copy"))?;
    crate::files::sync_dir_strict(data_dir).map_err(io("cannot sync the data directory"))?;
    // 2. The cut.
    for file in &later {
        std::fs::remove_file(log.join(file)).map_err(io("cannot remove a copied segment"))?;
    }
    if cut == 0 {
        std::fs::remove_file(log.join(&name)).map_err(io("cannot remove a copied segment"))?;
    } else {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(log.join(&name))
            .map_err(io("cannot open the segment"))?;
        f.set_len(cut as u64)
            .map_err(io("cannot cut the segment"))?;
        f.sync_all().map_err(io("cannot sync the segment"))?;
    }
    crate::files::sync_dir_strict(&log).map_err(io("cannot sync the segments"))?;
    // 3. chain.head: the newest checkpoint that remains.
    let engine = SegmentEngine::open(&log, keys.store_id(), Mode::ReadOnly)
        .map_err(LogError::from_engine)?;
    let mut newest = None;
    for item in engine.checkpoints() {
        let (_, b) = item.map_err(LogError::from_engine)?;
        newest = Checkpoint::from_bytes(&b);
    }
    drop(engine);
    // Written beside it, synced, then renamed over it: a crash leaves
    // either the old head or the new one, never none.
    let new_head = data_dir.join(format!("{HEAD_FILE}.new"));
    if new_head.exists() {
        std::fs::remove_file(&new_head).map_err(io("cannot replace chain.head"))?;
    }
    let (file, _) = HeadFile::open(
        &new_head,
        true,
        &keys.checkpoint_public_key(),
        &keys.store_id(),
    )
    .map_err(io("cannot write chain.head"))?;
    if let (Some(mut file), Some(cp)) = (file, newest) {
        file.write(&cp).map_err(io("cannot write chain.head"))?;
    }
    std::fs::File::open(&new_head)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot sync chain.head"))?;
    std::fs::rename(&new_head, &head).map_err(io("cannot replace chain.head"))?;
    crate::files::sync_dir_strict(data_dir).map_err(io("cannot sync the data directory"))?;
    warn!(
        first_cut = seq,
        "recovery cut the log at the first damage; the rest was copied aside"
    );
    // 4. Verify what remains.
    let report = verify_store(data_dir, key, cache_bytes, None)?;
    Ok(RecoverReport {
        kept: report.verified.records,
        copied_to: Some(aside),
        first_cut: Some(seq),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fs2::FileExt;

    fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn recovery_is_refused_while_another_process_holds_the_data_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(crate::store::open_in(dir.path()));
        let data = dir.path().join("data");
        let key = KeySource::File(dir.path().join("master.key"));
        // Another writer (say `invite`) holds the lock, before it opened
        // the snapshot cache.
        let other = std::fs::File::open(data.join(crate::files::LOCK_FILE)).expect("lock file");
        other.try_lock_exclusive().expect("lock");
        let before = files(&data);
        let err = recover_truncate_after_copy(&data, &key, 1 << 20).expect_err("refused");
        assert!(err.to_string().contains("held by another process"), "{err}");
        assert_eq!(files(&data), before, "nothing changed");
        drop(other);
        let report = recover_truncate_after_copy(&data, &key, 1 << 20).expect("recovers");
        assert_eq!(report.first_cut, None);
        assert!(!data.join(format!("{HEAD_FILE}.new")).exists());
    }
}
