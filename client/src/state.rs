//! The client's state directory: the sealed identity key and the profile
//! of the server this device is enrolled with.
//!
//! ```text
//! <home>/identity.key    the sealed Ed25519 seed (see `keystore`)
//! <home>/profile.toml    server address, name, certificate pin, device id, role
//! <home>/checkin.key     the defender's check-in key: 32 random bytes, not
//!                        sealed (check-ins work without the passphrase)
//! <home>/checkin.set     when check-ins were last set up or stopped here
//!                        (8 bytes, big-endian Unix seconds), so `my-case`
//!                        never offers what was already accepted
//! <home>/device.sealed   prekeys, counters, the outbox (see `messenger`)
//! <home>/messages.sealed the message history (see `history`)
//! <home>/rosters.sealed  staff devices: every staff roster accepted, by
//!                        version, for the case checks (see `rosters`)
//! <home>/state.lock      held by a command while it changes the files above
//! <home>/panic.key       a defender device's panic key seed, NOT sealed (see below)
//! <home>/panic.label     its label from the invite, NOT sealed, for an SOS sent with the panic key
//! ```
//!
//! The panic key is stored in the clear (readable by the owner only) on
//! purpose: `hotline sos` and `hotline checkin` must work without the
//! passphrase. It can do nothing but raise an alert and check in (the
//! server refuses it anything else); `docs/threat-model.md` says what a
//! thief of the phone can do with it.
//!
//! The directory is created readable by its owner only. Files are written
//! to a temporary name, synced, then renamed, so a crash never leaves half
//! a file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hotline_proto::alert::CheckinKey;
use hotline_proto::e2e::roster::{Roster, RosterError, SignedRoster};
use hotline_proto::identity::IdentitySeed;
use hotline_proto::{CertPin, DeviceId, IdentityKeyPair, Role};
use serde::{Deserialize, Serialize};

use crate::connection::ServerInfo;
use crate::error::ClientError;
use crate::keystore;

const IDENTITY_FILE: &str = "identity.key";
const PROFILE_FILE: &str = "profile.toml";
const CHECKIN_KEY_FILE: &str = "checkin.key";
const CHECKIN_SET_FILE: &str = "checkin.set";
const LOCK_FILE: &str = "state.lock";

/// An exclusive hold on a state directory: while one command holds it,
/// no other reads and rewrites the device's sealed files (a running
/// `hotline watch` and an `sos` typed meanwhile would otherwise each
/// write back their own copy, and one could lose the other's SOS).
/// Released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct StateLock {
    _file: fs::File,
}
const PANIC_KEY_FILE: &str = "panic.key";
const PANIC_LABEL_FILE: &str = "panic.label";
/// A panic key made for a device enrolled without one, until the server
/// has registered it.
const PENDING_PANIC_KEY_FILE: &str = "panic.key.pending";

/// What a device remembers about its enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `host:port` of the server.
    pub server_addr: String,
    /// TLS server name.
    pub server_name: String,
    /// `sha256:<hex>` of the server certificate.
    pub cert_pin: String,
    /// This device's id (hex).
    pub device_id: String,
    /// This device's role.
    pub role: String,
    /// The organisation root key (hex) pinned at enrollment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_root: Option<String>,
    /// The newest roster accepted: its version ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_version: Option<u64>,
    /// ... and the SHA-256 of its body (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_hash: Option<String>,
    /// Set when this device saw two different rosters with one version, or
    /// a next version that does not chain to the one it accepted: the
    /// highest version concerned. Shown on every command until a roster
    /// that chains to the accepted one clears it (see [`Profile::record_roster`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_alarm: Option<u64>,
}

impl Profile {
    /// Parses the text of `profile.toml` (the fields; their values are
    /// checked where they are used). The error is the parser's message.
    pub fn from_toml(text: &str) -> Result<Profile, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| e.message().to_owned())
    }

    /// The server to connect to.
    pub fn server(&self) -> Result<ServerInfo, ClientError> {
        let pin: CertPin = self
            .cert_pin
            .parse()
            .map_err(|_| ClientError::State("profile.toml: cert_pin is not a valid pin".into()))?;
        Ok(ServerInfo {
            addr: self.server_addr.clone(),
            name: self.server_name.clone(),
            pin,
        })
    }

    /// The enrolled role.
    pub fn role(&self) -> Result<Role, ClientError> {
        self.role
            .parse()
            .map_err(|_| ClientError::State("profile.toml: role is not a known role".into()))
    }

    /// The organisation root pinned at enrollment (or with `trust-org`),
    /// if one is.
    pub fn org_root_key(&self) -> Option<hotline_proto::e2e::org::OrgPublicKey> {
        let hex = self.org_root.as_deref()?;
        let bytes: [u8; 32] = hotline_proto::identity::unhex(hex)?.try_into().ok()?;
        Some(hotline_proto::e2e::org::OrgPublicKey::from_bytes(bytes))
    }

    /// Records what checking `signed` against the newest roster accepted
    /// gave: an accepted roster becomes the newest seen; two different
    /// rosters with one version, or a next version that does not chain,
    /// raise the alarm. A roster accepted as the very next version of the
    /// one accepted (its chain link checked) clears an alarm raised at a
    /// lower version: the root's signer carried this device's history on.
    /// Returns whether anything changed (the caller saves the profile).
    pub fn record_roster(
        &mut self,
        signed: &SignedRoster,
        outcome: &Result<Roster, RosterError>,
    ) -> bool {
        match outcome {
            Ok(roster) => {
                if self.roster_version == Some(roster.version) {
                    return false;
                }
                let linked = self
                    .roster_version
                    .is_some_and(|seen| roster.version == seen.saturating_add(1));
                if linked && self.roster_alarm.is_some_and(|at| at < roster.version) {
                    self.roster_alarm = None;
                }
                self.roster_version = Some(roster.version);
                self.roster_hash = Some(hotline_proto::identity::hex(&signed.hash()));
                true
            }
            Err(RosterError::Equivocation(version) | RosterError::BrokenChain(version)) => {
                let at = self.roster_alarm.map_or(*version, |a| a.max(*version));
                let changed = self.roster_alarm != Some(at);
                self.roster_alarm = Some(at);
                changed
            }
            Err(_) => false,
        }
    }

    /// The alarm to show on every command, if two roster histories were
    /// seen (see [`Profile::roster_alarm`]).
    pub fn roster_alarm_text(&self) -> Option<String> {
        self.roster_alarm.map(|version| {
            format!(
                "ROSTER ALARM: this device was shown two different staff rosters signed by your organisation's root key for version {version} (or one that does not follow the roster it accepted). Either the root key is in someone else's hands or the roster was forged: it was NOT accepted: until an admin signs a roster that follows the one this device accepted, messages wait in the outbox and an SOS is raised WITHOUT its text. Tell an admin over another channel (not through this hotline)."
            )
        })
    }

    /// The device id.
    pub fn device_id(&self) -> Result<DeviceId, ClientError> {
        self.device_id
            .parse()
            .map_err(|_| ClientError::State("profile.toml: device_id is not a valid id".into()))
    }
}

/// A client state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    /// `host:port` to connect to instead of the profile's, for this run
    /// only (never saved): see [`StateDir::with_server_addr`].
    server_addr: Option<String>,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_owned();
    move |source| ClientError::Io { what, path, source }
}

impl StateDir {
    /// The state directory at `dir` (not created until something is saved).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateDir {
            dir: dir.into(),
            server_addr: None,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn identity_path(&self) -> PathBuf {
        self.dir.join(IDENTITY_FILE)
    }

    fn profile_path(&self) -> PathBuf {
        self.dir.join(PROFILE_FILE)
    }

    /// Whether a sealed identity key is stored.
    pub fn has_identity(&self) -> bool {
        self.identity_path().exists()
    }

    /// Whether this directory holds an enrolled device.
    pub fn is_enrolled(&self) -> bool {
        self.profile_path().exists()
    }

    fn ensure_dir(&self) -> Result<(), ClientError> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&self.dir).map_err(io("cannot create", &self.dir))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
        self.ensure_dir()?;
        let tmp = path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io("cannot write", &tmp))?;
        f.write_all(bytes).map_err(io("cannot write", &tmp))?;
        f.sync_all().map_err(io("cannot write", &tmp))?;
        fs::rename(&tmp, path).map_err(io("cannot write", path))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Writes `bytes` to the file `name` of the state directory,
    /// owner-only and atomically (for files that must open without the
    /// passphrase: hold nothing readable in them).
    pub(crate) fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
        self.write_atomic(&self.dir.join(name), bytes)
    }

    /// Removes the file `name` of the state directory (nothing if absent).
    pub(crate) fn remove_private(&self, name: &str) -> Result<(), ClientError> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("cannot remove", &path)(e))
            }
            _ => {
                if let Ok(d) = fs::File::open(&self.dir) {
                    let _ = d.sync_all();
                }
                Ok(())
            }
        }
    }

    /// The check-in key, if this device has one (a schedule set by an
    /// earlier client used unkeyed digests). Readable without the
    /// passphrase, on purpose: a check-in must not wait for it.
    pub fn load_checkin_key(&self) -> Result<Option<CheckinKey>, ClientError> {
        let path = self.dir.join(CHECKIN_KEY_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => zeroize::Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            ClientError::State("checkin.key is damaged: run `hotline checkin-setup` again".into())
        })?;
        Ok(Some(CheckinKey::from_bytes(key)))
    }

    /// A new random check-in key (not saved: see [`StateDir::save_checkin_key`]).
    pub fn new_checkin_key() -> Result<CheckinKey, ClientError> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        hotline_proto::identity::fill_random(key.as_mut())
            .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
        Ok(CheckinKey::from_bytes(*key))
    }

    /// Saves the check-in key (owner-only, written atomically).
    pub fn save_checkin_key(&self, key: &CheckinKey) -> Result<(), ClientError> {
        self.write_atomic(&self.dir.join(CHECKIN_KEY_FILE), key.as_bytes())
    }

    /// When check-ins were last set up or stopped on this device (`None`:
    /// never, or by a client that did not record it).
    pub fn load_checkin_set(&self) -> Result<Option<u64>, ClientError> {
        let path = self.dir.join(CHECKIN_SET_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        let at: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
            ClientError::State("checkin.set is damaged: run `hotline checkin-setup` again".into())
        })?;
        Ok(Some(u64::from_be_bytes(at)))
    }

    /// Records that check-ins were set up or stopped at `at` (owner-only,
    /// written atomically).
    pub fn save_checkin_set(&self, at: u64) -> Result<(), ClientError> {
        self.write_atomic(&self.dir.join(CHECKIN_SET_FILE), &at.to_be_bytes())
    }

    /// Takes the directory's lock, waiting while another command holds it.
    pub fn lock(&self) -> Result<StateLock, ClientError> {
        self.ensure_dir()?;
        let path = self.dir.join(LOCK_FILE);
        let mut opts = fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(io("cannot open", &path))?;
        fs2::FileExt::lock_exclusive(&file).map_err(io("cannot lock", &path))?;
        Ok(StateLock { _file: file })
    }

    /// Seals and saves the identity seed under `passphrase`.
    pub fn save_identity(
        &self,
        seed: &IdentitySeed,
        passphrase: &str,
        iterations: u32,
    ) -> Result<(), ClientError> {
        let sealed = keystore::seal(seed, passphrase, iterations)?;
        self.write_atomic(&self.identity_path(), &sealed)
    }

    /// Opens the identity key with `passphrase`.
    pub fn load_identity(&self, passphrase: &str) -> Result<IdentityKeyPair, ClientError> {
        Ok(self.unlock(passphrase)?.0)
    }

    /// Opens the identity key and derives the device storage key.
    pub fn unlock(
        &self,
        passphrase: &str,
    ) -> Result<(IdentityKeyPair, keystore::StorageKey), ClientError> {
        let path = self.identity_path();
        let sealed = fs::read(&path).map_err(io("cannot read", &path))?;
        Ok(keystore::open_with_storage_key(&sealed, passphrase)?)
    }

    /// Saves `plain` sealed under `key` as `name` (nonce || ciphertext).
    pub fn save_sealed(&self, name: &str, key: &[u8; 32], plain: &[u8]) -> Result<(), ClientError> {
        use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
        let mut nonce = [0u8; 12];
        hotline_proto::identity::fill_random(&mut nonce)
            .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
        let k = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, key)
                .map_err(|_| ClientError::State("bad key".into()))?,
        );
        let mut body = plain.to_vec();
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut body,
        )
        .map_err(|_| ClientError::State("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        self.write_atomic(&self.dir.join(name), &out)
    }

    /// [`StateDir::save_sealed`] for many files at once: each sealed and
    /// written to its temporary file and flushed to disk, several at a
    /// time (the disk merges their flushes), then each renamed into place,
    /// then the directory flushed once. A failure leaves each file either
    /// as it was or as saved.
    pub fn save_sealed_many(
        &self,
        key: &[u8; 32],
        files: &[(String, Vec<u8>)],
    ) -> Result<(), ClientError> {
        /// Files written and flushed at the same time, at most.
        const AT_ONCE: usize = 16;
        // A name given twice is saved once, with its last content.
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_slice()))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        if files.is_empty() {
            return Ok(());
        }
        self.ensure_dir()?;
        let chunk = files.len().div_ceil(AT_ONCE);
        std::thread::scope(|s| {
            let writers: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || -> Result<(), ClientError> {
                        for (name, plain) in part {
                            let sealed = self.seal(name, key, plain)?;
                            self.write_tmp(&self.dir.join(name), &sealed)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            writers.into_iter().try_for_each(|w| {
                w.join().map_err(|_| {
                    ClientError::State("a thread writing the case files failed".into())
                })?
            })
        })?;
        for (name, _) in &files {
            let path = self.dir.join(name);
            fs::rename(path.with_extension("tmp"), &path).map_err(io("cannot write", &path))?;
        }
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// `plain` sealed under `key` for the file `name`: nonce, ciphertext
    /// and tag, as [`StateDir::save_sealed`] writes it.
    fn seal(&self, name: &str, key: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, ClientError> {
        use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
        let mut nonce = [0u8; 12];
        hotline_proto::identity::fill_random(&mut nonce)
            .map_err(|_| ClientError::State("the system random number generator failed".into()))?;
        let k = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, key)
                .map_err(|_| ClientError::State("bad key".into()))?,
        );
        let mut out = Vec::with_capacity(12 + plain.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = k
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut out[12..],
            )
            .map_err(|_| ClientError::State("sealing failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Writes `bytes` to `path` with the extension `tmp`, owner-only, and
    /// flushes it to disk (the first half of [`StateDir::write_atomic`]).
    fn write_tmp(&self, path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
        let tmp = path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io("cannot write", &tmp))?;
        f.write_all(bytes).map_err(io("cannot write", &tmp))?;
        f.sync_all().map_err(io("cannot write", &tmp))?;
        Ok(())
    }

    /// Loads what [`StateDir::save_sealed`] saved; `None` if there is none.
    pub fn load_sealed(&self, name: &str, key: &[u8; 32]) -> Result<Option<Vec<u8>>, ClientError> {
        use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
        let path = self.dir.join(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        let damaged = || ClientError::State(format!("{} is damaged", path.display()));
        if bytes.len() < 12 {
            return Err(damaged());
        }
        let (nonce, body) = bytes.split_at(12);
        let k = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| damaged())?);
        let mut body = body.to_vec();
        let len = k
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?,
                Aad::from(name.as_bytes()),
                &mut body,
            )
            .map_err(|_| damaged())?
            .len();
        body.truncate(len);
        Ok(Some(body))
    }

    /// Saves a defender device's panic key seed, in the clear (owner-only
    /// file): it must open without the passphrase.
    pub fn save_panic_key(&self, seed: &IdentitySeed) -> Result<(), ClientError> {
        self.write_atomic(&self.dir.join(PANIC_KEY_FILE), seed.as_ref())
    }

    /// Saves a panic key the server has not registered yet.
    pub fn save_pending_panic_key(&self, seed: &IdentitySeed) -> Result<(), ClientError> {
        self.write_atomic(&self.dir.join(PENDING_PANIC_KEY_FILE), seed.as_ref())
    }

    /// The panic key saved by [`StateDir::save_pending_panic_key`], if any.
    pub fn load_pending_panic_key(&self) -> Result<Option<IdentityKeyPair>, ClientError> {
        self.load_key_file(PENDING_PANIC_KEY_FILE)
    }

    /// Makes the pending panic key this device's panic key (the server
    /// registered it).
    pub fn promote_pending_panic_key(&self) -> Result<(), ClientError> {
        let from = self.dir.join(PENDING_PANIC_KEY_FILE);
        let to = self.dir.join(PANIC_KEY_FILE);
        fs::rename(&from, &to).map_err(io("cannot write", &to))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Saves the device's label where an SOS sent with the panic key (no
    /// passphrase) can read it, so that staff see the SOS by name.
    pub fn save_panic_label(&self, label: &str) -> Result<(), ClientError> {
        self.write_atomic(&self.dir.join(PANIC_LABEL_FILE), label.as_bytes())
    }

    /// The label saved by [`StateDir::save_panic_label`]; none if it is
    /// missing or not a valid label.
    pub fn load_panic_label(&self) -> Option<String> {
        let label = String::from_utf8(fs::read(self.dir.join(PANIC_LABEL_FILE)).ok()?).ok()?;
        hotline_proto::invite::check_label(&label).ok()?;
        Some(label)
    }

    /// The panic key, if this device has one.
    pub fn load_panic_key(&self) -> Result<Option<IdentityKeyPair>, ClientError> {
        self.load_key_file(PANIC_KEY_FILE)
    }

    fn load_key_file(&self, name: &str) -> Result<Option<IdentityKeyPair>, ClientError> {
        let path = self.dir.join(name);
        let bytes = match fs::read(&path) {
            Ok(b) => zeroize::Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::State(format!("{} is damaged", path.display())))?;
        let seed = zeroize::Zeroizing::new(seed);
        Ok(Some(IdentityKeyPair::from_seed(&seed)))
    }

    /// Removes the panic key (after a failed enrollment).
    pub fn remove_panic_key(&self) -> Result<(), ClientError> {
        let path = self.dir.join(PANIC_KEY_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("cannot remove", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes the identity key (after a failed enrollment).
    pub fn remove_identity(&self) -> Result<(), ClientError> {
        let path = self.identity_path();
        fs::remove_file(&path).map_err(io("cannot remove", &path))
    }

    /// Saves the profile.
    pub fn save_profile(&self, profile: &Profile) -> Result<(), ClientError> {
        let text = toml::to_string(profile)
            .map_err(|e| ClientError::State(format!("cannot encode profile: {e}")))?;
        self.write_atomic(&self.profile_path(), text.as_bytes())
    }

    /// Connects to `addr` (`host:port`) instead of the server address in
    /// the profile, for as long as this value is used; the profile is
    /// not changed. The server's certificate must still match the pinned
    /// one, and the TLS server name stays the profile's (a restored server
    /// serves the same certificate on a new address).
    pub fn with_server_addr(mut self, addr: String) -> StateDir {
        self.server_addr = Some(addr);
        self
    }

    /// The server to connect to: the profile's, at the address given
    /// with [`StateDir::with_server_addr`] if any.
    pub fn server(&self, profile: &Profile) -> Result<ServerInfo, ClientError> {
        let mut server = profile.server()?;
        if let Some(addr) = &self.server_addr {
            server.addr = addr.clone();
        }
        Ok(server)
    }

    /// Loads the profile.
    pub fn load_profile(&self) -> Result<Profile, ClientError> {
        let path = self.profile_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::State(format!(
                    "this device is not enrolled yet (no {}). Run `hotline enroll <invite>` first",
                    path.display()
                )));
            }
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        Profile::from_toml(&text)
            .map_err(|e| ClientError::State(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_saved_together_read_back_each_under_its_own_name_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path().join("home"));
        let key = [3u8; 32];
        state
            .save_sealed("old.sealed", &key, b"before")
            .expect("saved");
        let files: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| (format!("f{i}.sealed"), format!("content {i}").into_bytes()))
            .chain([
                ("old.sealed".to_owned(), b"between".to_vec()),
                ("old.sealed".to_owned(), b"after".to_vec()),
            ])
            .collect();
        state.save_sealed_many(&key, &files).expect("saved");
        for (name, plain) in &files[..40] {
            assert_eq!(
                state.load_sealed(name, &key).expect("read").as_ref(),
                Some(plain)
            );
        }
        assert_eq!(
            state.load_sealed("old.sealed", &key).expect("read"),
            Some(b"after".to_vec())
        );
        // Sealed under the name: a file moved under another name is damaged.
        std::fs::copy(
            state.path().join("f1.sealed"),
            state.path().join("f2.sealed"),
        )
        .expect("copy");
        assert!(state.load_sealed("f2.sealed", &key).is_err());
        let names: Vec<String> = std::fs::read_dir(state.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 41, "no temporary file left: {names:?}");
        assert!(names.iter().all(|n| n.ends_with(".sealed")));
    }

    #[test]
    fn identity_and_profile_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path().join("home"));
        assert!(!state.is_enrolled());
        let (pair, seed) = IdentityKeyPair::generate().expect("randomness");
        state
            .save_identity(&seed, "a long passphrase", keystore::MIN_ITERATIONS)
            .expect("save");
        let profile = Profile {
            server_addr: "127.0.0.1:4433".into(),
            server_name: "localhost".into(),
            cert_pin: CertPin::from_bytes([1; 32]).to_string(),
            device_id: pair.device_id().to_string(),
            role: "officer".into(),
            org_root: None,
            roster_version: None,
            roster_hash: None,
            roster_alarm: None,
        };
        state.save_profile(&profile).expect("save");
        assert!(state.is_enrolled());
        assert_eq!(state.load_profile().expect("load"), profile);
        assert_eq!(
            state
                .load_identity("a long passphrase")
                .expect("open")
                .device_id(),
            pair.device_id()
        );
        assert!(matches!(
            state.load_identity("another passphrase"),
            Err(ClientError::Keystore(
                keystore::KeystoreError::WrongPassphrase
            ))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(state.path().join(IDENTITY_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "identity key readable by others");
        }
    }

    /// While one command holds the lock, another waits; it gets the lock
    /// once the first lets go.
    #[test]
    fn a_second_command_waits_for_the_lock() {
        use std::time::Duration;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path().join("home"));
        let held = state.lock().expect("lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let other = state.clone();
        let waiter = std::thread::spawn(move || {
            let _lock = other.lock().expect("lock");
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "it waits while the lock is held"
        );
        drop(held);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("it gets the lock once released");
        waiter.join().expect("joins");
    }

    #[test]
    fn a_missing_profile_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = StateDir::new(dir.path())
            .load_profile()
            .expect_err("no profile");
        assert!(err.to_string().contains("hotline enroll"));
    }
}
