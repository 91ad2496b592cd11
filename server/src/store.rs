//! Durable server state: enrolled devices and pending invites.
//!
//! Handlers see only the [`Store`] trait. [`SledStore`] keeps each kind of
//! record in its own sled tree; the encrypted event log replaces it later
//! behind the same trait. Every method that changes state returns only
//! after the change is flushed to disk, so a client is never told "done"
//! about something a crash could lose.

use std::path::Path;
use std::sync::Mutex;

use hotline_proto::{DeviceId, IdentityPublicKey, Role};
use prost::Message;

/// A device as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Derived from the identity key.
    pub id: DeviceId,
    /// The key it authenticates with.
    pub identity_key: IdentityPublicKey,
    /// What it may do.
    pub role: Role,
    /// When it enrolled (seconds since the Unix epoch).
    pub enrolled_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
}

/// A pending or used invite, stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// The role a device enrolled with it gets.
    pub role: Role,
    /// When it was made.
    pub created_at: u64,
    /// After this it is refused.
    pub expires_at: u64,
    /// When a device used it, if one did.
    pub used_at: Option<u64>,
}

/// What became of an enrollment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// The device is enrolled and the invite is spent.
    Enrolled(Device),
    /// No invite has this token.
    InviteUnknown,
    /// The invite was used before.
    InviteUsed,
    /// The invite expired.
    InviteExpired,
    /// This identity key is already enrolled.
    AlreadyEnrolled,
}

/// What became of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Revoked now, or earlier at the given time (revoking twice is harmless).
    Revoked {
        /// When.
        revoked_at: u64,
    },
    /// No such device.
    NotFound,
    /// It is the last active admin: revoking it would lock everyone out.
    LastAdmin,
}

/// The store could not do what was asked; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (disk full, I/O error).
    #[error("storage failed: {0}")]
    Io(String),
    /// Another process (probably a running server) holds the store open.
    #[error("the data directory is in use by another hotline-server process")]
    Locked,
    /// A stored record does not decode: the store is damaged.
    #[error("the store is damaged: {0}")]
    Corrupt(&'static str),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => {
                StoreError::Corrupt("storage engine reported corruption")
            }
            other => StoreError::Io(other.to_string()),
        }
    }
}

/// Durable server state. Implementations must make every change durable
/// before returning from the method that made it.
pub trait Store: Send + Sync + 'static {
    /// Saves a new invite under the digest of its token.
    fn put_invite(&self, token_digest: [u8; 32], invite: &InviteRecord) -> Result<(), StoreError>;

    /// Spends the invite and enrolls `identity_key`, atomically: either both
    /// happen or neither.
    fn enroll(
        &self,
        token_digest: [u8; 32],
        identity_key: IdentityPublicKey,
        now: u64,
    ) -> Result<EnrollOutcome, StoreError>;

    /// The device with this id.
    fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError>;

    /// Every enrolled device, revoked ones included.
    fn devices(&self) -> Result<Vec<Device>, StoreError>;

    /// Revokes a device, refusing to revoke the last active admin.
    fn revoke(&self, id: &DeviceId, now: u64) -> Result<RevokeOutcome, StoreError>;

    /// Whether any admin device is active.
    fn has_active_admin(&self) -> Result<bool, StoreError> {
        Ok(self
            .devices()?
            .iter()
            .any(|d| d.role == Role::Admin && d.revoked_at.is_none()))
    }
}

// ---------------------------------------------------------------------------
// Record encoding. Private prost structs; the domain types above are what
// the rest of the server sees.

#[derive(Clone, PartialEq, Message)]
struct DeviceRow {
    #[prost(bytes = "vec", tag = "1")]
    identity_key: Vec<u8>,
    #[prost(int32, tag = "2")]
    role: i32,
    #[prost(uint64, tag = "3")]
    enrolled_at: u64,
    #[prost(uint64, tag = "4")]
    revoked_at: u64,
}

#[derive(Clone, PartialEq, Message)]
struct InviteRow {
    #[prost(int32, tag = "1")]
    role: i32,
    #[prost(uint64, tag = "2")]
    created_at: u64,
    #[prost(uint64, tag = "3")]
    expires_at: u64,
    #[prost(uint64, tag = "4")]
    used_at: u64,
}

fn role_code(role: Role) -> i32 {
    match role {
        Role::Defender => 1,
        Role::Officer => 2,
        Role::Coordinator => 3,
        Role::Admin => 4,
    }
}

fn role_from_code(code: i32) -> Result<Role, StoreError> {
    Ok(match code {
        1 => Role::Defender,
        2 => Role::Officer,
        3 => Role::Coordinator,
        4 => Role::Admin,
        _ => return Err(StoreError::Corrupt("unknown role in a stored record")),
    })
}

fn encode_device(d: &Device) -> Vec<u8> {
    DeviceRow {
        identity_key: d.identity_key.as_bytes().to_vec(),
        role: role_code(d.role),
        enrolled_at: d.enrolled_at,
        revoked_at: d.revoked_at.unwrap_or(0),
    }
    .encode_to_vec()
}

fn decode_device(key: &[u8], bytes: &[u8]) -> Result<Device, StoreError> {
    let row = DeviceRow::decode(bytes).map_err(|_| StoreError::Corrupt("device record"))?;
    let identity: [u8; 32] = row
        .identity_key
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt("device record"))?;
    let identity_key = IdentityPublicKey::from_bytes(identity);
    let id = identity_key.device_id();
    if key != id.as_bytes() {
        return Err(StoreError::Corrupt("device record under the wrong id"));
    }
    Ok(Device {
        id,
        identity_key,
        role: role_from_code(row.role)?,
        enrolled_at: row.enrolled_at,
        revoked_at: (row.revoked_at != 0).then_some(row.revoked_at),
    })
}

fn encode_invite(i: &InviteRecord) -> Vec<u8> {
    InviteRow {
        role: role_code(i.role),
        created_at: i.created_at,
        expires_at: i.expires_at,
        used_at: i.used_at.unwrap_or(0),
    }
    .encode_to_vec()
}

fn decode_invite(bytes: &[u8]) -> Result<InviteRecord, StoreError> {
    let row = InviteRow::decode(bytes).map_err(|_| StoreError::Corrupt("invite record"))?;
    Ok(InviteRecord {
        role: role_from_code(row.role)?,
        created_at: row.created_at,
        expires_at: row.expires_at,
        used_at: (row.used_at != 0).then_some(row.used_at),
    })
}

// ---------------------------------------------------------------------------

/// The store on sled: one tree of devices keyed by device id, one of
/// invites keyed by token digest.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    devices: sled::Tree,
    invites: sled::Tree,
    /// Serialises revocations so the last-admin check cannot race.
    revoke_lock: Mutex<()>,
}

/// How long `open` waits for a lock held by a store being dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// sled's error type inside transactions, with our outcome as the abort.
type TxResult<T> = sled::transaction::ConflictableTransactionResult<T, StoreError>;

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            // Every change is flushed before it is acknowledged; the
            // background flusher would add nothing.
            .flush_every_ms(None);
        // sled's worker threads release the lock of a just-dropped store a
        // moment after the drop (an in-process restart): wait briefly
        // before reporting another process.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(other.into()),
            }
        };
        let devices = db.open_tree("devices")?;
        let invites = db.open_tree("invites")?;
        Ok(SledStore {
            db,
            devices,
            invites,
            revoke_lock: Mutex::new(()),
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

impl Store for SledStore {
    fn put_invite(&self, token_digest: [u8; 32], invite: &InviteRecord) -> Result<(), StoreError> {
        self.invites.insert(token_digest, encode_invite(invite))?;
        self.flush()
    }

    fn enroll(
        &self,
        token_digest: [u8; 32],
        identity_key: IdentityPublicKey,
        now: u64,
    ) -> Result<EnrollOutcome, StoreError> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError::Abort, TransactionError};
        let id = identity_key.device_id();
        let outcome = (&self.invites, &self.devices).transaction(
            |(invites, devices)| -> TxResult<EnrollOutcome> {
                let Some(raw) = invites.get(token_digest)? else {
                    return Ok(EnrollOutcome::InviteUnknown);
                };
                let mut invite = decode_invite(&raw).map_err(Abort)?;
                if invite.used_at.is_some() {
                    return Ok(EnrollOutcome::InviteUsed);
                }
                if now >= invite.expires_at {
                    return Ok(EnrollOutcome::InviteExpired);
                }
                if devices.get(id.as_bytes())?.is_some() {
                    return Ok(EnrollOutcome::AlreadyEnrolled);
                }
                invite.used_at = Some(now);
                let device = Device {
                    id,
                    identity_key,
                    role: invite.role,
                    enrolled_at: now,
                    revoked_at: None,
                };
                invites.insert(&token_digest[..], encode_invite(&invite))?;
                devices.insert(&id.as_bytes()[..], encode_device(&device))?;
                Ok(EnrollOutcome::Enrolled(device))
            },
        );
        let outcome = match outcome {
            Ok(o) => o,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        if matches!(outcome, EnrollOutcome::Enrolled(_)) {
            self.flush()?;
        }
        Ok(outcome)
    }

    fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.devices
            .get(id.as_bytes())?
            .map(|raw| decode_device(id.as_bytes(), &raw))
            .transpose()
    }

    fn devices(&self) -> Result<Vec<Device>, StoreError> {
        self.devices
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode_device(&k, &v)
            })
            .collect()
    }

    fn revoke(&self, id: &DeviceId, now: u64) -> Result<RevokeOutcome, StoreError> {
        let _guard = self
            .revoke_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(mut device) = self.device(id)? else {
            return Ok(RevokeOutcome::NotFound);
        };
        if let Some(revoked_at) = device.revoked_at {
            return Ok(RevokeOutcome::Revoked { revoked_at });
        }
        if device.role == Role::Admin {
            let other_admins = self
                .devices()?
                .iter()
                .filter(|d| d.role == Role::Admin && d.revoked_at.is_none() && d.id != *id)
                .count();
            if other_admins == 0 {
                return Ok(RevokeOutcome::LastAdmin);
            }
        }
        device.revoked_at = Some(now);
        self.devices.insert(id.as_bytes(), encode_device(&device))?;
        self.flush()?;
        Ok(RevokeOutcome::Revoked { revoked_at: now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_proto::IdentityKeyPair;

    fn key(seed: u8) -> IdentityPublicKey {
        IdentityKeyPair::from_seed(&[seed; 32]).public_key()
    }

    fn invite(role: Role, expires_at: u64) -> InviteRecord {
        InviteRecord {
            role,
            created_at: 1,
            expires_at,
            used_at: None,
        }
    }

    #[test]
    fn an_invite_enrolls_once_and_not_after_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        store
            .put_invite([1; 32], &invite(Role::Officer, 100))
            .expect("put");
        store
            .put_invite([2; 32], &invite(Role::Officer, 100))
            .expect("put");

        let EnrollOutcome::Enrolled(d) = store.enroll([1; 32], key(1), 50).expect("enroll") else {
            panic!("first use enrolls");
        };
        assert_eq!(d.role, Role::Officer);
        assert_eq!(
            store.enroll([1; 32], key(2), 51).expect("enroll"),
            EnrollOutcome::InviteUsed
        );
        assert_eq!(
            store.enroll([2; 32], key(1), 51).expect("enroll"),
            EnrollOutcome::AlreadyEnrolled
        );
        assert_eq!(
            store.enroll([2; 32], key(3), 100).expect("enroll"),
            EnrollOutcome::InviteExpired
        );
        assert_eq!(
            store.enroll([9; 32], key(3), 1).expect("enroll"),
            EnrollOutcome::InviteUnknown
        );
        // Failed attempts spent nothing: invite 2 still works before expiry.
        assert!(matches!(
            store.enroll([2; 32], key(3), 99).expect("enroll"),
            EnrollOutcome::Enrolled(_)
        ));
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SledStore::open(dir.path(), 1 << 20).expect("open");
            store
                .put_invite([1; 32], &invite(Role::Admin, 100))
                .expect("put");
            store
                .put_invite([2; 32], &invite(Role::Defender, 100))
                .expect("put");
            store.enroll([1; 32], key(1), 5).expect("enroll");
        }
        let store = SledStore::open(dir.path(), 1 << 20).expect("reopen");
        let devices = store.devices().expect("devices");
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].role, Role::Admin);
        assert_eq!(devices[0].id, key(1).device_id());
        assert!(matches!(
            store.enroll([2; 32], key(2), 6).expect("enroll"),
            EnrollOutcome::Enrolled(_)
        ));
    }

    #[test]
    fn a_dropped_store_can_be_reopened_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..50u8 {
            let store = SledStore::open(dir.path(), 1 << 20).expect("reopen");
            store
                .put_invite([i; 32], &invite(Role::Defender, 100))
                .expect("put");
        }
    }

    #[test]
    fn the_last_admin_cannot_be_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        store
            .put_invite([1; 32], &invite(Role::Admin, 100))
            .expect("put");
        store
            .put_invite([2; 32], &invite(Role::Admin, 100))
            .expect("put");
        store.enroll([1; 32], key(1), 5).expect("enroll");
        store.enroll([2; 32], key(2), 5).expect("enroll");
        let a = key(1).device_id();
        let b = key(2).device_id();
        assert_eq!(
            store.revoke(&a, 7).expect("revoke"),
            RevokeOutcome::Revoked { revoked_at: 7 }
        );
        assert_eq!(
            store.revoke(&a, 8).expect("revoke"),
            RevokeOutcome::Revoked { revoked_at: 7 }
        );
        assert_eq!(
            store.revoke(&b, 9).expect("revoke"),
            RevokeOutcome::LastAdmin
        );
        assert!(store.has_active_admin().expect("read"));
        assert_eq!(
            store.revoke(&key(3).device_id(), 9).expect("revoke"),
            RevokeOutcome::NotFound
        );
    }

    #[test]
    fn a_damaged_record_is_reported_not_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path(), 1 << 20).expect("open");
        let id = key(1).device_id();
        store
            .devices
            .insert(id.as_bytes(), &b"\xff\xff"[..])
            .expect("insert");
        assert!(matches!(store.device(&id), Err(StoreError::Corrupt(_))));
        assert!(matches!(store.devices(), Err(StoreError::Corrupt(_))));
    }
}
