//! `hotline-server verify`: checks a whole store without serving it.

use std::path::Path;

use super::{Create, OpenError, engine_dir, open_keys};
use crate::log::engine::SledEngine;
use crate::log::keys::KeySource;
use crate::log::{LogError, Verified};

/// What `hotline-server verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The chain walk's findings.
    pub verified: Verified,
    /// The exported checkpoint checked against the store, if one was given.
    pub external_checkpoint: Option<u64>,
}

/// Checks a whole store: the header against the key, every record, the
/// chain, every checkpoint, and optionally a checkpoint exported earlier
/// (which detects a rollback to an older copy of the store).
pub fn verify_store(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
    exported: Option<&str>,
) -> Result<VerifyReport, OpenError> {
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
    let engine = SledEngine::open(&engine_dir(data_dir), cache_bytes).map_err(LogError::from)?;
    let want: Vec<u64> = external.iter().map(|cp| cp.seq).collect();
    let verified = crate::log::verify(&engine, &keys, data_dir, &want)?;
    if let Some(cp) = external {
        match verified.hashes.get(&cp.seq) {
            Some(hash) if *hash == cp.head => {}
            Some(_) => {
                return Err(LogError::Tampered {
                    seq: cp.seq,
                    reason:
                        "the store differs from the exported checkpoint (replaced or rewritten)"
                            .into(),
                }
                .into());
            }
            None => {
                return Err(LogError::Tampered {
                    seq: verified.head_seq + 1,
                    reason: format!(
                        "rolled back: the store ends at record {} but the exported checkpoint covers record {}",
                        verified.head_seq, cp.seq
                    ),
                }
                .into());
            }
        }
    }
    Ok(VerifyReport {
        external_checkpoint: external.map(|cp| cp.seq),
        verified,
    })
}
