//! Per-case subkeys, kept so that they can really be destroyed.
//!
//! Records that belong to one case (one defender) are sealed under that
//! case's own random subkey. Erasing the case overwrites the subkey in
//! place: its records become unreadable while the chain, which hashes the
//! ciphertext, still verifies.
//!
//! sled is log-structured, so a value removed from it can survive in old
//! segments. The subkeys therefore live in a separate small file of
//! fixed-size slots, and erasing one overwrites its bytes where they are
//! and syncs them (see docs/storage.md for the limits of this on
//! copy-on-write filesystems and flash).
//!
//! ```text
//! file = "HLKRING1" || slot*
//! slot = state (1: 0 free, 1 live) | key id (16) | nonce (12) | wrapped subkey (32) + tag (16)
//! ```
//!
//! A subkey is wrapped with ChaCha20-Poly1305 under the keyring key, with
//! associated data `"hotline/1 keyring\0" || key id`.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use hotline_proto::identity::fill_random;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::fs::{Fs, Open};
use super::keys::StoreKeys;

const MAGIC: &[u8; 8] = b"HLKRING1";
const SLOT_LEN: usize = 1 + 16 + NONCE_LEN + 32 + 16;
const LIVE: u8 = 1;
const FREE: u8 = 0;

/// Why the keyring could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// Reading or writing failed.
    #[error("keyring I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The file was altered or does not belong to this store.
    #[error("the keyring is damaged or belongs to another store")]
    Damaged,
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Randomness,
    /// A write was attempted on a keyring opened for verification.
    #[error("the keyring is open read-only")]
    ReadOnly,
}

/// The live subkeys, by key id.
pub struct Keyring {
    file: Option<File>,
    slots: usize,
    live: HashMap<[u8; 16], (usize, LessSafeKey)>,
    /// Every change to the file goes through it ([`super::fs`]).
    fs: Fs,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring({} live of {} slots)",
            self.live.len(),
            self.slots
        )
    }
}

fn aad(key_id: &[u8]) -> Vec<u8> {
    let mut a = b"hotline/1 keyring\0".to_vec();
    a.extend_from_slice(key_id);
    a
}

impl Keyring {
    /// Opens the keyring at `path`, creating it if missing and `create`.
    /// Without `create`, a missing keyring is an empty one, opened
    /// read-only (for verification, which must not write).
    pub fn open(path: &Path, keys: &StoreKeys, create: bool) -> Result<Keyring, KeyringError> {
        Self::open_with_fs(path, keys, create, super::fs::real())
    }

    /// [`Keyring::open`], opening for writing and writing through `fs`.
    pub fn open_with_fs(
        path: &Path,
        keys: &StoreKeys,
        create: bool,
        fs: Fs,
    ) -> Result<Keyring, KeyringError> {
        if !create && !path.exists() {
            return Ok(Keyring {
                file: None,
                slots: 0,
                live: HashMap::new(),
                fs,
            });
        }
        let mut file = if create {
            fs.open(path, Open::Create)?
        } else {
            File::open(path)?
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            fs.write_at(&file, MAGIC, 0)?;
            fs.sync_all(&file)?;
            if let Some(dir) = path.parent() {
                let _ = fs.sync_dir(dir);
            }
            bytes = MAGIC.to_vec();
        }
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(KeyringError::Damaged)?;
        // A crash can leave a partly written last slot that was never
        // used: ignore a trailing fragment.
        let slots = body.len() / SLOT_LEN;
        let mut live = HashMap::new();
        for (i, slot) in body.chunks_exact(SLOT_LEN).enumerate() {
            match slot[0] {
                FREE => {}
                LIVE => {
                    let mut key_id = [0u8; 16];
                    key_id.copy_from_slice(&slot[1..17]);
                    let nonce: [u8; NONCE_LEN] =
                        slot[17..29].try_into().map_err(|_| KeyringError::Damaged)?;
                    let mut wrapped = Zeroizing::new(slot[29..].to_vec());
                    let raw = keys
                        .keyring
                        .open_in_place(
                            Nonce::assume_unique_for_key(nonce),
                            Aad::from(aad(&key_id)),
                            &mut wrapped,
                        )
                        .map_err(|_| KeyringError::Damaged)?;
                    let key = LessSafeKey::new(
                        UnboundKey::new(&CHACHA20_POLY1305, raw)
                            .map_err(|_| KeyringError::Damaged)?,
                    );
                    live.insert(key_id, (i, key));
                }
                _ => return Err(KeyringError::Damaged),
            }
        }
        Ok(Keyring {
            file: Some(file),
            slots,
            live,
            fs,
        })
    }

    /// The subkey with this id, if it is live.
    pub fn get(&self, key_id: &[u8; 16]) -> Option<&LessSafeKey> {
        self.live.get(key_id).map(|(_, k)| k)
    }

    /// Whether a subkey with this id is live.
    pub fn contains(&self, key_id: &[u8; 16]) -> bool {
        self.live.contains_key(key_id)
    }

    /// Creates a subkey under `key_id` (no-op if it exists), durably.
    pub fn create(&mut self, key_id: [u8; 16], keys: &StoreKeys) -> Result<(), KeyringError> {
        if self.live.contains_key(&key_id) {
            return Ok(());
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(raw.as_mut()).map_err(|_| KeyringError::Randomness)?;
        fill_random(&mut nonce).map_err(|_| KeyringError::Randomness)?;
        let mut wrapped = raw.to_vec();
        keys.keyring
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&key_id)),
                &mut wrapped,
            )
            .map_err(|_| KeyringError::Randomness)?;
        let mut slot = Vec::with_capacity(SLOT_LEN);
        slot.push(LIVE);
        slot.extend_from_slice(&key_id);
        slot.extend_from_slice(&nonce);
        slot.extend_from_slice(&wrapped);
        let index = self.free_slot()?;
        let file = self.file.as_ref().ok_or(KeyringError::ReadOnly)?;
        self.fs.write_at(file, &slot, offset(index))?;
        self.fs.sync_data(file)?;
        if index == self.slots {
            self.slots += 1;
        }
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, raw.as_ref()).map_err(|_| KeyringError::Damaged)?,
        );
        self.live.insert(key_id, (index, key));
        Ok(())
    }

    fn free_slot(&self) -> Result<usize, KeyringError> {
        let used: std::collections::HashSet<usize> = self.live.values().map(|(i, _)| *i).collect();
        Ok((0..self.slots)
            .find(|i| !used.contains(i))
            .unwrap_or(self.slots))
    }

    /// Destroys the subkey `key_id`: its slot is overwritten with random
    /// bytes in place and synced. Returns whether it was live.
    pub fn erase(&mut self, key_id: &[u8; 16]) -> Result<bool, KeyringError> {
        let file = self.file.as_ref().ok_or(KeyringError::ReadOnly)?;
        let Some((index, _)) = self.live.remove(key_id) else {
            return Ok(false);
        };
        let mut noise = vec![0u8; SLOT_LEN];
        fill_random(&mut noise).map_err(|_| KeyringError::Randomness)?;
        noise[0] = FREE;
        self.fs.write_at(file, &noise, offset(index))?;
        self.fs.sync_data(file)?;
        Ok(true)
    }
}

fn offset(index: usize) -> u64 {
    (MAGIC.len() + index * SLOT_LEN) as u64
}
