//! `hotline-server verify`: checks a whole store without serving it.

use std::path::{Path, PathBuf};

use super::{Create, OpenError, log_dir, migrate, old_store_dir, open_keys};
use crate::log::engine::{Damage, EngineError, LogEngine};
use crate::log::keys::{KeyError, KeySource, StoreKeys};
use crate::log::segments::{Mode, SegmentEngine, TornTail};
use crate::log::{LogError, Verified};

/// What `hotline-server verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The chain walk's findings.
    pub verified: Verified,
    /// The exported checkpoint checked against the store, if one was given.
    pub external_checkpoint: Option<u64>,
    /// An incomplete final write (never acknowledged) at the end of the
    /// newest segment, left in place: the next start copies it aside and
    /// cuts it off.
    pub torn_tail: Option<TornTail>,
    /// Whether the store is in the earlier layout (sled only), verified
    /// through a temporary copy; the next start migrates it.
    pub old_layout: bool,
    /// The newest signed checkpoint in `chain.head` (which the log
    /// reaches and agrees with), as verified.
    pub head: Option<crate::log::record::Checkpoint>,
    /// The head line of [`Self::head`] (`Checkpoint::export`), for the
    /// operator to keep elsewhere and give back to `verify --expect-head`.
    pub head_line: Option<String>,
    /// The directory the earlier layout's copy was made in (removed once
    /// verified): beside the data directory, or `--tmp-dir`.
    pub old_copy_in: Option<PathBuf>,
}

/// Damage found in the segment files, with what a read-only inspection of
/// the records before it finds: they verify (said so), or the first of
/// them that does not (then that is the first bad record).
fn damage_report(data_dir: &Path, keys: &StoreKeys, damage: Damage) -> LogError {
    let prefix = SegmentEngine::open_until_damage(&log_dir(data_dir), keys.store_id())
        .map_err(LogError::from_engine)
        .and_then(|(engine, _)| crate::log::verify_prefix(&engine, keys, data_dir));
    match prefix {
        Ok(v) => {
            let mut reason = damage.to_string();
            if v.records > 0 {
                reason.push_str(&format!(
                    "; records 1 to {} before it verify (chain, seals, checkpoints)",
                    v.head_seq
                ));
            }
            LogError::Tampered {
                seq: damage.seq,
                reason,
            }
        }
        Err(LogError::Tampered { seq, reason }) => LogError::Tampered {
            seq,
            reason: format!("{reason}; the files are also damaged further on: {damage}"),
        },
        Err(other) => other,
    }
}

/// Checks a whole store: the header against the key, every record, the
/// chain, every checkpoint, and optionally a checkpoint exported earlier
/// (which detects a rollback to an older copy of the store).
///
/// Writes nothing: the segments, header, `chain.head` and keyring are only
/// read, the snapshot cache is not opened, and no file is created in the
/// data directory. A store of the earlier layout is verified through a
/// copy beside the data directory (see [`verify_store_in`]).
pub fn verify_store(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
    exported: Option<&str>,
) -> Result<VerifyReport, OpenError> {
    verify_store_in(data_dir, key, cache_bytes, exported, None)
}

/// [`verify_store`], with the directory where a store of the earlier
/// layout is copied to be read (sled's recovery may write what it opens):
/// `tmp_dir`, or by default the directory holding the data directory (its
/// filesystem, not the system's temporary directory, often a small tmpfs
/// in RAM). Its free space is checked first; the copy is removed after.
pub fn verify_store_in(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
    exported: Option<&str>,
    tmp_dir: Option<&Path>,
) -> Result<VerifyReport, OpenError> {
    if !data_dir.is_dir() {
        return Err(KeyError::DataDirMissing(data_dir.to_owned()).into());
    }
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
    let _ = cache_bytes; // the snapshot cache is not needed to verify
    // A server may be writing this store: a record or checkpoint written
    // while it is read can make one walk see a frame half-written or the
    // head file ahead of the segments read before it. Such a finding is
    // looked at again; damage is damage on every try.
    let mut tries = 0;
    loop {
        tries += 1;
        match verify_once(data_dir, &keys, external, tmp_dir) {
            Err(OpenError::Log(LogError::Tampered { .. })) if tries < ONLINE_TRIES => {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            other => return other,
        }
    }
}

/// How many times a walk is tried before its finding is reported.
const ONLINE_TRIES: u32 = 3;

fn verify_once(
    data_dir: &Path,
    keys: &StoreKeys,
    external: Option<crate::log::record::Checkpoint>,
    tmp_dir: Option<&Path>,
) -> Result<VerifyReport, OpenError> {
    let old_layout = !log_dir(data_dir).exists() && old_store_dir(data_dir).exists();
    // Before the segments: see `crate::log::read_head`.
    let head = crate::log::read_head(keys, data_dir)?;
    let mut old_copy = None;
    let mut torn_tail = None;
    let mut log_end = None;
    let engine: Box<dyn LogEngine> = if old_layout {
        let (engine, copy) =
            migrate::open_old_copy(data_dir, &migrate::old_copy_parent(data_dir, tmp_dir))?;
        old_copy = Some(copy);
        Box::new(engine)
    } else {
        let engine = match SegmentEngine::open(&log_dir(data_dir), keys.store_id(), Mode::ReadOnly)
        {
            Ok(e) => e,
            Err(EngineError::Damaged(d)) => return Err(damage_report(data_dir, keys, d).into()),
            Err(e) => return Err(LogError::from_engine(e).into()),
        };
        torn_tail = engine.torn_tail();
        log_end = engine.end();
        Box::new(engine)
    };
    let head_seq = match head {
        crate::log::head::Head::Checkpoint(cp) => Some(cp.seq),
        _ => None,
    };
    let want: Vec<u64> = external.iter().map(|cp| cp.seq).collect();
    let verified = crate::log::verify_against(engine.as_ref(), keys, data_dir, &want, head);
    drop(engine);
    drop(old_copy);
    let verified = verified.map_err(|e| with_log_end(e, log_end, torn_tail.as_ref()))?;
    if let Some(cp) = external {
        match verified.hashes.get(&cp.seq) {
            Some(hash) if *hash == cp.head => {}
            Some(_) => {
                return Err(LogError::Tampered {
                    seq: cp.seq,
                    reason: format!(
                        "the log differs from the expected head line at record {} (the log ends at record {}): \
                         the store was replaced or rewritten",
                        cp.seq, verified.head_seq
                    ),
                }
                .into());
            }
            None => {
                return Err(LogError::Tampered {
                    seq: verified.head_seq + 1,
                    reason: format!(
                        "rolled back: the log ends at record {} (chain.head: {}) but the expected head line \
                         is at record {}, signed {}: {} gone, and chain.head was \
                         rolled back with the log",
                        verified.head_seq,
                        match head_seq {
                            Some(seq) => format!("record {seq}"),
                            None => "none".into(),
                        },
                        cp.seq,
                        hotline_proto::time::date_time(cp.time),
                        if verified.head_seq + 1 == cp.seq {
                            format!("record {}, acknowledged since then, is", cp.seq)
                        } else {
                            format!(
                                "records {} to {}, acknowledged since then, are",
                                verified.head_seq + 1,
                                cp.seq
                            )
                        },
                    ),
                }
                .into());
            }
        }
    }
    let head = match head {
        crate::log::head::Head::Checkpoint(cp) => Some(cp),
        _ => None,
    };
    Ok(VerifyReport {
        external_checkpoint: external.map(|cp| cp.seq),
        verified,
        torn_tail,
        old_layout,
        head,
        head_line: head.map(|cp| cp.export(&keys.store_id())),
        old_copy_in: old_layout.then(|| migrate::old_copy_parent(data_dir, tmp_dir)),
    })
}

/// A finding of records missing at the end (`chain.head` covers records
/// past the last one in the files) with where the log's files end added,
/// so the operator can look there. `end` is [`SegmentEngine::end`].
pub(crate) fn with_log_end(
    e: LogError,
    end: Option<(String, u64, u64)>,
    torn: Option<&TornTail>,
) -> LogError {
    match e {
        LogError::Tampered { seq, reason }
            if seq > 0 && seq > end.as_ref().map_or(0, |(_, _, records)| *records) =>
        {
            LogError::Tampered {
                seq,
                reason: format!("{reason}; {}", ends_at(end, torn)),
            }
        }
        other => other,
    }
}

/// "the log ends in log/seg-….hlog at byte N, after record M", with an
/// incomplete write after it if there is one.
pub(crate) fn ends_at(end: Option<(String, u64, u64)>, torn: Option<&TornTail>) -> String {
    let Some((segment, offset, records)) = end else {
        return match torn {
            // The only segment's header is incomplete (cut short or
            // zeroed): it holds no record the log can read.
            Some(t) if t.offset == 0 => format!(
                "the log's only segment file, log/{}, holds no whole header ({} bytes: \
                 shorter than a segment header, or zeros only), so no record can be read from it",
                t.segment, t.bytes
            ),
            _ => "the log holds no segment file".into(),
        };
    };
    let mut text = if records == 0 {
        format!("the log ends in log/{segment} at byte {offset}, before any record")
    } else {
        format!("the log ends in log/{segment} at byte {offset}, after record {records}")
    };
    if let Some(t) = torn {
        text.push_str(&format!(
            " (followed by an incomplete write of {} bytes)",
            t.bytes
        ));
    }
    text
}
