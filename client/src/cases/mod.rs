//! Cases on a staff device (docs/cases.md; wire rules in docs/protocol.md,
//! section 9).
//!
//! * [`fields`]: what a case's fields are (entities, field numbers,
//!   names, value kinds) and how each value reads in words. Pure.
//! * [`model`]: the fold — a case's events made into what staff read
//!   (fields as multi-value registers with their conflicts, people,
//!   relocations and their stage history, timeline, warnings). Pure.
//! * [`replica`]: what this device holds of the cases, sealed on disk:
//!   the sync cursor, the events still sealed under their case keys, the
//!   keys, a folded summary per case (what `case list` reads), erased
//!   case ids and the outbox of events not accepted yet.
//! * [`sync`]: `sync_cases` over a session, the readers' checks
//!   (signature, staff roster), and what each update does to the replica.
//! * [`outbox`]: writing an event (sealed under the case's newest key,
//!   saved before it is sent) and sending what waits.
//! * [`keys`]: case keys among staff devices: sent to staff a roster adds,
//!   rotated when one drops them, and taken out of the inbox.
//! * [`stats`]: the statistics tombstone of a case and the figures the
//!   ledger's tombstones add up to.

pub mod fields;
pub mod keys;
pub mod model;
pub mod outbox;
pub mod replica;
pub mod stats;
pub mod sync;

#[cfg(test)]
pub(crate) mod testing;

use crate::error::ClientError;
use crate::messenger::Device;

/// Opens `device`'s case replica, sealed under its storage key.
pub fn open_replica(device: &Device) -> Result<replica::Replica, ClientError> {
    let mut replica = replica::Replica::open(device.state(), device.storage_key())?;
    if let Some(root) = device.org_root() {
        replica.set_ledger(hotline_proto::case::ledger_id(&root));
    }
    Ok(replica)
}
