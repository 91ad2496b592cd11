//! The storage watch: heals a degraded log with back-off, and warns when
//! the data directory's disk runs low.
//!
//! When a write fails (a full disk, an I/O error), the log refuses writes
//! while reads go on (see `crate::log`). This task asks the store to heal
//! after 1 s, then 2, 4, ... up to 30 s between tries, until a small
//! durable write succeeds; writes then resume without a restart. It also
//! checks the free space of the data directory's filesystem at start and
//! every `storage.check_every_secs`, and logs a warning below
//! `storage.warn_free_bytes`. While the log is healthy it signs, about
//! every second, a checkpoint of any durable records no checkpoint covers
//! yet (so that `chain.head` protects them when the writes stop).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{Instrument as _, info_span, warn};

use super::StartError;
use crate::config::Storage;
use crate::store::LogStore;

/// The first pause before a degraded log tries to heal ...
pub(crate) const HEAL_FIRST: Duration = Duration::from_secs(1);
/// ... doubled after each failed try, up to this.
pub(crate) const HEAL_MAX: Duration = Duration::from_secs(30);

fn check_free(dir: &Path, storage: &Storage) {
    if let Some(free) = crate::files::free_bytes(dir)
        && free < storage.warn_free_bytes
    {
        warn!(
            free_bytes = free,
            warn_below = storage.warn_free_bytes,
            "the data directory's disk is nearly full: free space before writes fail \
             (an SOS cannot be saved on a full disk)"
        );
    }
}

/// Whether `e` (or what it quotes) is a full disk or an exhausted quota
/// (`ENOSPC`, `EDQUOT`). The store's errors carry the I/O error's text.
pub(crate) fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if text.contains("os error 28") || text.contains("os error 122") {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Names a start that failed for lack of space in words, with the free
/// space: [`StartError::DiskFull`]. Any other error is returned as it is.
pub(crate) fn name_disk_full(dir: &Path, e: StartError) -> StartError {
    if matches!(e, StartError::DiskFull { .. }) || !is_disk_full(&e) {
        return e;
    }
    StartError::DiskFull {
        dir: dir.to_owned(),
        free: dir
            .ancestors()
            .find_map(crate::files::free_bytes)
            .unwrap_or(0),
        source: Box::new(e),
    }
}

/// Starts the watch; it ends when `stop` fires (or is dropped), after the
/// store call it may be making.
pub(crate) fn spawn(
    store: Arc<LogStore>,
    data_dir: PathBuf,
    storage: Storage,
    mut stop: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        async move {
            check_free(&data_dir, &storage);
            let check_every = Duration::from_secs(storage.check_every_secs.max(1));
            let mut next_check = tokio::time::Instant::now() + check_every;
            let mut pause = HEAL_FIRST;
            loop {
                let degraded = store.storage_state().degraded.is_some();
                let wait = if degraded { pause } else { HEAL_FIRST };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = &mut stop => break,
                }
                if tokio::time::Instant::now() >= next_check {
                    check_free(&data_dir, &storage);
                    next_check = tokio::time::Instant::now() + check_every;
                }
                if !degraded {
                    pause = HEAL_FIRST;
                    // Records written just before the writes stopped are
                    // covered by a signed checkpoint in chain.head within
                    // about a second (commits sign one only while writing).
                    let s = Arc::clone(&store);
                    if let Ok(Err(e)) =
                        tokio::task::spawn_blocking(move || s.checkpoint_if_uncovered()).await
                    {
                        warn!(error = %e, "the idle checkpoint failed");
                    }
                    continue;
                }
                let s = Arc::clone(&store);
                match tokio::task::spawn_blocking(move || s.try_heal()).await {
                    Ok(Ok(true)) => pause = HEAL_FIRST,
                    Ok(Ok(false)) => pause = (pause * 2).min(HEAL_MAX),
                    Ok(Err(e)) => {
                        // The disk holds something other than what was
                        // acknowledged: stay degraded, say so loudly.
                        tracing::error!(error = %e, "the log cannot heal: writes stay refused");
                        pause = HEAL_MAX;
                    }
                    Err(_) => pause = HEAL_MAX,
                }
            }
        }
        .instrument(info_span!("storage")),
    )
}
