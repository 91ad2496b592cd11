//! The master key, the keys derived from it, and the store header.
//!
//! The master key never lies unprotected beside the store. It comes from a
//! key file kept on other media, from the environment, or from a
//! passphrase through Argon2id (parameters in the header). Everything else
//! is derived from it with HKDF-SHA256, salted with the store's random id:
//!
//! ```text
//! master ──HKDF(salt = store id)──┬─ "hotline/1 record key"      ChaCha20-Poly1305, log records
//!                                 ├─ "hotline/1 snapshot key"    ChaCha20-Poly1305, state snapshots
//!                                 ├─ "hotline/1 keyring key"     ChaCha20-Poly1305, wraps per-case subkeys
//!                                 ├─ "hotline/1 index key"       HMAC-SHA256, keyed hashes of ids
//!                                 ├─ "hotline/1 checkpoint key"  Ed25519 seed, signs checkpoints
//!                                 ├─ "hotline/1 tls key"         ChaCha20-Poly1305, the TLS private key
//!                                 └─ "hotline/1 header check"    HMAC-SHA256 over the header
//! ```
//!
//! The header (`<data_dir>/store.header`) is read and checked against the
//! key before anything else in the data directory is opened, so a wrong key
//! is refused without a single byte of the store being touched.

use std::fs;
use std::path::{Path, PathBuf};

use hotline_proto::identity::{fill_random, hex, unhex};
use prost::Message;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::signature::{Ed25519KeyPair, KeyPair};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

/// Bytes in the master key.
pub const MASTER_KEY_LEN: usize = 32;
/// Bytes in the store id.
pub const STORE_ID_LEN: usize = 16;
const HEADER_MAGIC: &[u8; 8] = b"HLSTORE1";
/// The environment variable holding a hex master key.
pub const MASTER_KEY_ENV: &str = "HOTLINE_MASTER_KEY";
/// The environment variable holding a master passphrase.
pub const MASTER_PASSPHRASE_ENV: &str = "HOTLINE_MASTER_PASSPHRASE";
/// Shortest master passphrase accepted when a store is created.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Why the master key or the header could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key does not open this store.
    #[error(
        "wrong master key: it does not open this store (or the store header was altered). Nothing was changed"
    )]
    WrongKey,
    /// No key source was given.
    #[error(
        "no master key: pass --master-key-file FILE, set {MASTER_KEY_ENV} (64 hex digits) or \
         {MASTER_PASSPHRASE_ENV}, or use --passphrase to be asked"
    )]
    Missing,
    /// The key file could not be read.
    #[error("cannot read the master key file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file or variable does not hold a key.
    #[error("{0} is truncated or not a master key (expected 32 bytes, or 64 hex digits)")]
    Malformed(String),
    /// The store was created with another kind of key.
    #[error("this store's master key comes from {expected}, but {given} was given")]
    WrongKind {
        /// The kind the store needs.
        expected: &'static str,
        /// The kind given.
        given: &'static str,
    },
    /// A new passphrase is too short.
    #[error("the master passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    /// The header file is damaged.
    #[error("the store header {0} is damaged or not a hotline store header")]
    BadHeader(PathBuf),
    /// The header's check fails, but the master key is the store's (it
    /// derives the signing key the header names): the header was altered.
    #[error(
        "store.header is damaged: {0} fails its check, but the master key is right (it derives \
         the store's signing key). Restore store.header from any backup of this store (it never \
         changes and holds no secret). Nothing was changed"
    )]
    HeaderDamaged(PathBuf),
    /// The data directory does not exist.
    #[error("the data directory {0} does not exist")]
    DataDirMissing(PathBuf),
    /// The store has data but no header: refusing to start a new one over it.
    #[error("{0} holds a store but its header store.header is missing; restore it from backup")]
    HeaderMissing(PathBuf),
    /// Writing the header failed.
    #[error("cannot write {path}: {source}")]
    WriteHeader {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key derivation function failed.
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Randomness,
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A file holding 32 raw bytes or 64 hex digits, on media other than
    /// the data directory's.
    File(PathBuf),
    /// The hex key itself (from [`MASTER_KEY_ENV`]).
    Hex(Zeroizing<String>),
    /// A passphrase, stretched with Argon2id.
    Passphrase(Zeroizing<String>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "KeySource::File({})", p.display()),
            KeySource::Hex(_) => f.write_str("KeySource::Hex(..)"),
            KeySource::Passphrase(_) => f.write_str("KeySource::Passphrase(..)"),
        }
    }
}

impl KeySource {
    fn kind(&self) -> i32 {
        match self {
            KeySource::File(_) | KeySource::Hex(_) => KIND_RAW,
            KeySource::Passphrase(_) => KIND_PASSPHRASE,
        }
    }
}

fn kind_name(kind: i32) -> &'static str {
    if kind == KIND_PASSPHRASE {
        "a passphrase"
    } else {
        "a key file or HOTLINE_MASTER_KEY"
    }
}

const KIND_RAW: i32 = 1;
const KIND_PASSPHRASE: i32 = 2;

/// Argon2id parameters, stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about half a second on a small server,
    /// and 64 MiB of memory per guess for an attacker.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    fn in_bounds(&self) -> bool {
        (8 * 1024..=4 * 1024 * 1024).contains(&self.memory_kib)
            && (1..=64).contains(&self.iterations)
            && (1..=16).contains(&self.parallelism)
    }
}

#[derive(Clone, PartialEq, Message)]
struct HeaderBody {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(bytes = "vec", tag = "2")]
    store_id: Vec<u8>,
    #[prost(int32, tag = "3")]
    key_kind: i32,
    #[prost(bytes = "vec", tag = "4")]
    kdf_salt: Vec<u8>,
    #[prost(uint32, tag = "5")]
    kdf_memory_kib: u32,
    #[prost(uint32, tag = "6")]
    kdf_iterations: u32,
    #[prost(uint32, tag = "7")]
    kdf_parallelism: u32,
    #[prost(bytes = "vec", tag = "8")]
    checkpoint_public_key: Vec<u8>,
    #[prost(uint64, tag = "9")]
    created_at: u64,
}

/// The store header: `HLSTORE1` || u32 body length || body (protobuf) ||
/// HMAC-SHA256(header check key, everything before it).
#[derive(Debug, Clone)]
pub struct Header {
    body: HeaderBody,
}

impl Header {
    /// The store's random id.
    pub fn store_id(&self) -> [u8; STORE_ID_LEN] {
        let mut id = [0u8; STORE_ID_LEN];
        id.copy_from_slice(&self.body.store_id);
        id
    }

    /// The public key that verifies checkpoints.
    pub fn checkpoint_public_key(&self) -> &[u8] {
        &self.body.checkpoint_public_key
    }

    fn kdf(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.body.kdf_memory_kib,
            iterations: self.body.kdf_iterations,
            parallelism: self.body.kdf_parallelism,
        }
    }

    fn parse(bytes: &[u8], path: &Path) -> Result<(Header, Vec<u8>, Vec<u8>), KeyError> {
        let bad = || KeyError::BadHeader(path.to_owned());
        let rest = bytes
            .strip_prefix(HEADER_MAGIC.as_slice())
            .ok_or_else(bad)?;
        let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() != len + 32 {
            return Err(bad());
        }
        let (body, mac) = rest.split_at(len);
        let body = HeaderBody::decode(body).map_err(|_| bad())?;
        let kind_ok = body.key_kind == KIND_RAW || body.key_kind == KIND_PASSPHRASE;
        if body.version != 1
            || body.store_id.len() != STORE_ID_LEN
            || !kind_ok
            || body.checkpoint_public_key.len() != 32
        {
            return Err(bad());
        }
        let header = Header { body };
        if header.body.key_kind == KIND_PASSPHRASE
            && (header.body.kdf_salt.len() != 16 || !header.kdf().in_bounds())
        {
            return Err(bad());
        }
        let signed = bytes[..bytes.len() - 32].to_vec();
        Ok((header, signed, mac.to_vec()))
    }
}

/// The keys derived from the master key.
pub struct StoreKeys {
    store_id: [u8; STORE_ID_LEN],
    pub(crate) record: LessSafeKey,
    pub(crate) snapshot: LessSafeKey,
    pub(crate) keyring: LessSafeKey,
    index: hmac::Key,
    pub(crate) signing: Ed25519KeyPair,
    check: hmac::Key,
    tls: LessSafeKey,
}

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKeys(..)")
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let info = [info];
    // Expanding 32 bytes from SHA-256 never exceeds HKDF's limit.
    prk.expand(&info, Len(32))
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("32 bytes is within HKDF-SHA256's output limit");
    out
}

fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("32-byte ChaCha20 key"))
}

impl StoreKeys {
    fn derive(master: &[u8; MASTER_KEY_LEN], store_id: [u8; STORE_ID_LEN]) -> StoreKeys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &store_id).extract(master);
        let signing_seed = expand(&prk, b"hotline/1 checkpoint key");
        StoreKeys {
            store_id,
            record: aead_key(&expand(&prk, b"hotline/1 record key")),
            snapshot: aead_key(&expand(&prk, b"hotline/1 snapshot key")),
            keyring: aead_key(&expand(&prk, b"hotline/1 keyring key")),
            index: hmac::Key::new(
                hmac::HMAC_SHA256,
                expand(&prk, b"hotline/1 index key").as_ref(),
            ),
            signing: Ed25519KeyPair::from_seed_unchecked(signing_seed.as_ref())
                .expect("a 32-byte seed is a valid Ed25519 key"),
            check: hmac::Key::new(
                hmac::HMAC_SHA256,
                expand(&prk, b"hotline/1 header check").as_ref(),
            ),
            tls: aead_key(&expand(&prk, b"hotline/1 tls key")),
        }
    }

    /// The store's id.
    pub fn store_id(&self) -> [u8; STORE_ID_LEN] {
        self.store_id
    }

    /// A keyed hash of an identifier, for use as an index key: the raw id
    /// never appears on disk.
    pub fn index_id(&self, domain: &[u8], id: &[u8]) -> [u8; 16] {
        let mut ctx = hmac::Context::with_key(&self.index);
        ctx.update(&(domain.len() as u32).to_be_bytes());
        ctx.update(domain);
        ctx.update(id);
        let tag = ctx.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }

    fn tls_aad(&self) -> Vec<u8> {
        let mut aad = b"hotline/1 tls key\0".to_vec();
        aad.extend_from_slice(&self.store_id);
        aad
    }

    /// Seals the TLS private key (DER) for storage: nonce || ciphertext.
    pub fn seal_tls_key(&self, der: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce).ok()?;
        let mut body = der.to_vec();
        self.tls
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.tls_aad()),
                &mut body,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Opens a sealed TLS private key.
    pub fn open_tls_key(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let mut body = body.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let len = self
            .tls
            .open_in_place(nonce, Aad::from(self.tls_aad()), &mut body)
            .ok()?
            .len();
        body.truncate(len);
        Some(body)
    }

    fn cert_pin_aad(&self) -> Vec<u8> {
        let mut aad = b"hotline/1 tls certificate pin\0".to_vec();
        aad.extend_from_slice(&self.store_id);
        aad
    }

    /// Seals the pin (SHA-256) of the store's TLS certificate, binding the
    /// certificate to the store: nonce || ciphertext || tag. Distinct from
    /// a sealed TLS key by its associated data.
    pub fn seal_cert_pin(&self, pin: &[u8; 32]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce).ok()?;
        let mut body = pin.to_vec();
        self.tls
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.cert_pin_aad()),
                &mut body,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Opens a sealed certificate pin; `None` if it was altered, or sealed
    /// under another store's key.
    pub fn open_cert_pin(&self, sealed: &[u8]) -> Option<[u8; 32]> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let mut body = body.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let pin = self
            .tls
            .open_in_place(nonce, Aad::from(self.cert_pin_aad()), &mut body)
            .ok()?;
        <[u8; 32]>::try_from(&pin[..]).ok()
    }

    /// The checkpoint verification key.
    pub fn checkpoint_public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.signing.public_key().as_ref());
        out
    }
}

/// Path of the header in a data directory.
pub fn header_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store.header")
}

fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>, KeyError> {
    let bytes = Zeroizing::new(fs::read(path).map_err(|source| KeyError::ReadFile {
        path: path.to_owned(),
        source,
    })?);
    let name = format!("the key file {}", path.display());
    if bytes.len() == MASTER_KEY_LEN {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        key.copy_from_slice(&bytes);
        return Ok(key);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Malformed(name.clone()))?;
    parse_hex_key(text.trim(), name)
}

fn parse_hex_key(text: &str, name: String) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>, KeyError> {
    let raw = Zeroizing::new(unhex(text).ok_or_else(|| KeyError::Malformed(name.clone()))?);
    let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    if raw.len() != MASTER_KEY_LEN {
        return Err(KeyError::Malformed(name));
    }
    key.copy_from_slice(&raw);
    Ok(key)
}

fn stretch(
    passphrase: &str,
    salt: &[u8],
    kdf: KdfParams,
) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>, KeyError> {
    let params = argon2::Params::new(
        kdf.memory_kib,
        kdf.iterations,
        kdf.parallelism,
        Some(MASTER_KEY_LEN),
    )
    .map_err(|e| KeyError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
    Ok(key)
}

fn master_key(
    source: &KeySource,
    header: &Header,
) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>, KeyError> {
    match source {
        KeySource::File(path) => read_key_file(path),
        KeySource::Hex(text) => parse_hex_key(text.trim(), MASTER_KEY_ENV.to_owned()),
        KeySource::Passphrase(p) => stretch(p, &header.body.kdf_salt, header.kdf()),
    }
}

/// After the header's check failed: whether the master key is
/// nonetheless this store's, so that the header (not the key) is what
/// changed. The key derives the store's checkpoint signing key, whose
/// public half the header names: with the header's store id, or with the
/// store id every segment header of `log/` carries (checksummed on its
/// own), if the header's differs. A wrong key matches neither. Reads only.
fn key_is_right(master: &[u8; MASTER_KEY_LEN], header: &Header, data_dir: &Path) -> bool {
    let named = header.checkpoint_public_key();
    if StoreKeys::derive(master, header.store_id())
        .checkpoint_public_key()
        .as_slice()
        == named
    {
        return true;
    }
    let Ok(entries) = fs::read_dir(data_dir.join("log")) else {
        return false;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .and_then(super::segment::parse_file_name)
            .is_none()
        {
            continue;
        }
        let mut head = [0u8; super::segment::HEADER_LEN];
        let read = fs::File::open(entry.path())
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
        if read.is_err() {
            continue;
        }
        if let Ok(seg) = super::segment::SegmentHeader::parse(&head)
            && seg.store_id != header.store_id()
        {
            return StoreKeys::derive(master, seg.store_id)
                .checkpoint_public_key()
                .as_slice()
                == named;
        }
    }
    false
}

/// Opens the keys of an existing store: reads the header, derives the keys
/// and checks them against it. Reads only; writes nothing.
pub fn open(data_dir: &Path, source: &KeySource) -> Result<(Header, StoreKeys), KeyError> {
    let path = header_path(data_dir);
    if !data_dir.exists() {
        return Err(KeyError::DataDirMissing(data_dir.to_owned()));
    }
    let bytes = fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            KeyError::HeaderMissing(data_dir.to_owned())
        } else {
            KeyError::ReadFile {
                path: path.clone(),
                source: e,
            }
        }
    })?;
    let (header, signed, mac) = Header::parse(&bytes, &path)?;
    if header.body.key_kind != source.kind() {
        return Err(KeyError::WrongKind {
            expected: kind_name(header.body.key_kind),
            given: kind_name(source.kind()),
        });
    }
    let master = master_key(source, &header)?;
    let keys = StoreKeys::derive(&master, header.store_id());
    if hmac::verify(&keys.check, &signed, &mac).is_err() {
        return Err(if key_is_right(&master, &header, data_dir) {
            KeyError::HeaderDamaged(path)
        } else {
            KeyError::WrongKey
        });
    }
    if keys.checkpoint_public_key().as_slice() != header.checkpoint_public_key() {
        return Err(KeyError::WrongKey);
    }
    Ok((header, keys))
}

/// What kind of master key the store in `data_dir` needs, as advice to
/// give when none was given (the header does not record a key file's path).
pub fn needed_key(data_dir: &Path) -> String {
    let path = header_path(data_dir);
    let kind = fs::read(&path)
        .ok()
        .and_then(|b| Header::parse(&b, &path).ok())
        .map(|(h, _, _)| h.body.key_kind);
    match kind {
        Some(KIND_PASSPHRASE) => format!(
            "no master key given: this store was created with a passphrase; \
             give it with --passphrase or {MASTER_PASSPHRASE_ENV}"
        ),
        Some(_) => format!(
            "no master key given: this store was created with a key file; \
             give it with --master-key-file (or the key in {MASTER_KEY_ENV})"
        ),
        None => format!(
            "no master key given, and the store header {} does not read",
            path.display()
        ),
    }
}

/// Whether the data directory already has a store header.
pub fn exists(data_dir: &Path) -> bool {
    header_path(data_dir).exists()
}

/// Creates the header of a new store keyed by `source`.
pub fn create(
    data_dir: &Path,
    source: &KeySource,
    kdf: KdfParams,
    now: u64,
) -> Result<(Header, StoreKeys), KeyError> {
    let mut store_id = [0u8; STORE_ID_LEN];
    fill_random(&mut store_id).map_err(|_| KeyError::Randomness)?;
    let mut salt = vec![0u8; 16];
    let mut body = HeaderBody {
        version: 1,
        store_id: store_id.to_vec(),
        key_kind: source.kind(),
        kdf_salt: Vec::new(),
        kdf_memory_kib: 0,
        kdf_iterations: 0,
        kdf_parallelism: 0,
        checkpoint_public_key: Vec::new(),
        created_at: now,
    };
    if let KeySource::Passphrase(p) = source {
        if p.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(KeyError::WeakPassphrase);
        }
        if !kdf.in_bounds() {
            return Err(KeyError::Kdf("Argon2 parameters out of range".into()));
        }
        fill_random(&mut salt).map_err(|_| KeyError::Randomness)?;
        body.kdf_salt = salt;
        body.kdf_memory_kib = kdf.memory_kib;
        body.kdf_iterations = kdf.iterations;
        body.kdf_parallelism = kdf.parallelism;
    }
    let mut header = Header { body };
    let master = master_key(source, &header)?;
    let keys = StoreKeys::derive(&master, store_id);
    header.body.checkpoint_public_key = keys.checkpoint_public_key().to_vec();
    let encoded = header.body.encode_to_vec();
    let mut bytes = Vec::with_capacity(12 + encoded.len() + 32);
    bytes.extend_from_slice(HEADER_MAGIC);
    bytes.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&encoded);
    let mac = hmac::sign(&keys.check, &bytes);
    bytes.extend_from_slice(mac.as_ref());
    let path = header_path(data_dir);
    crate::files::write_private(&path, &bytes)
        .map_err(|source| KeyError::WriteHeader { path, source })?;
    crate::files::sync_dir(data_dir);
    Ok((header, keys))
}

/// Writes a new random master key to `path` (64 hex digits), readable by
/// the owner only. Refuses to overwrite.
pub fn generate_key_file(path: &Path) -> Result<(), KeyError> {
    let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    fill_random(key.as_mut()).map_err(|_| KeyError::Randomness)?;
    let text = Zeroizing::new(format!("{}\n", hex(key.as_ref())));
    crate::files::write_private(path, text.as_bytes()).map_err(|source| KeyError::WriteHeader {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_kdf() -> KdfParams {
        KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// The sealed certificate pin (`tls/cert.bound`) is a stored form:
    /// the checked-in bytes open with the keys of a fixed master key and
    /// store id, and with no other store's; a sealed TLS key does not
    /// open as a pin (distinct associated data).
    #[test]
    fn the_sealed_certificate_pin_is_the_stored_form() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/tls-cert-bound.hex");
        let keys = StoreKeys::derive(&[7u8; MASTER_KEY_LEN], [9u8; STORE_ID_LEN]);
        let pin = [0xa5u8; 32];
        if std::env::var_os("HOTLINE_BLESS").is_some() {
            let sealed = keys.seal_cert_pin(&pin).expect("seal");
            let hex: String = sealed.iter().map(|b| format!("{b:02x}")).collect();
            fs::write(
                &golden,
                format!(
                    "# tls/cert.bound: a certificate pin (32 x a5) sealed under master key 32 x 07, \
                     store id 16 x 09.\n# Written by keys.rs's tests; never edited by hand.\n\
                     sealed {hex}\n"
                ),
            )
            .expect("write golden");
        }
        let text = fs::read_to_string(&golden).expect("golden file");
        let hex = text
            .lines()
            .find_map(|l| l.strip_prefix("sealed "))
            .expect("a sealed row");
        let sealed: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(keys.open_cert_pin(&sealed), Some(pin));
        let other = StoreKeys::derive(&[7u8; MASTER_KEY_LEN], [8u8; STORE_ID_LEN]);
        assert_eq!(other.open_cert_pin(&sealed), None);
        let tls_key = keys.seal_tls_key(&pin).expect("seal");
        assert_eq!(keys.open_cert_pin(&tls_key), None);
        assert_eq!(keys.open_tls_key(&sealed), None);
    }

    #[test]
    fn a_key_file_opens_its_store_and_no_other_key_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("master.key");
        generate_key_file(&key).expect("key file");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("mkdir");
        let source = KeySource::File(key.clone());
        let (_, created) = create(&data, &source, KdfParams::default(), 1).expect("create");
        let (_, opened) = open(&data, &source).expect("open");
        assert_eq!(
            created.checkpoint_public_key(),
            opened.checkpoint_public_key()
        );

        let other = dir.path().join("other.key");
        generate_key_file(&other).expect("key file");
        assert!(matches!(
            open(&data, &KeySource::File(other)),
            Err(KeyError::WrongKey)
        ));
        let hex_key = fs::read_to_string(&key).expect("read");
        assert!(open(&data, &KeySource::Hex(Zeroizing::new(hex_key.clone()))).is_ok());
        assert!(matches!(
            open(
                &data,
                &KeySource::Hex(Zeroizing::new(hex_key[..63].to_owned()))
            ),
            Err(KeyError::Malformed(_))
        ));
        fs::write(&key, &hex_key.as_bytes()[..40]).expect("truncate");
        assert!(matches!(open(&data, &source), Err(KeyError::Malformed(_))));
        fs::remove_file(&key).expect("remove");
        assert!(matches!(
            open(&data, &source),
            Err(KeyError::ReadFile { .. })
        ));
        assert!(matches!(
            open(
                &data,
                &KeySource::Passphrase(Zeroizing::new("long enough passphrase".into()))
            ),
            Err(KeyError::WrongKind { .. })
        ));
    }

    #[test]
    fn a_passphrase_store_needs_the_same_passphrase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pass = |s: &str| KeySource::Passphrase(Zeroizing::new(s.to_owned()));
        assert!(matches!(
            create(dir.path(), &pass("short"), small_kdf(), 1),
            Err(KeyError::WeakPassphrase)
        ));
        create(dir.path(), &pass("correct horse battery"), small_kdf(), 1).expect("create");
        assert!(open(dir.path(), &pass("correct horse battery")).is_ok());
        assert!(matches!(
            open(dir.path(), &pass("correct horse batterz")),
            Err(KeyError::WrongKey)
        ));
    }

    #[test]
    fn any_change_to_the_header_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("k");
        generate_key_file(&key).expect("key");
        create(dir.path(), &KeySource::File(key.clone()), small_kdf(), 1).expect("create");
        let path = header_path(dir.path());
        let good = fs::read(&path).expect("read");
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x04;
            fs::write(&path, &bad).expect("write");
            let r = open(dir.path(), &KeySource::File(key.clone()));
            assert!(
                matches!(
                    r,
                    Err(KeyError::WrongKey
                        | KeyError::HeaderDamaged(_)
                        | KeyError::BadHeader(_)
                        | KeyError::WrongKind { .. })
                ),
                "byte {i}: {r:?}"
            );
        }
        fs::write(&path, &good[..good.len() - 1]).expect("write");
        assert!(matches!(
            open(dir.path(), &KeySource::File(key.clone())),
            Err(KeyError::BadHeader(_))
        ));
        fs::write(&path, &good).expect("write");
        assert!(open(dir.path(), &KeySource::File(key)).is_ok());
    }

    /// A byte changed in the header with the right key is named as a
    /// damaged header (restore it), not as a wrong key: in its check, and
    /// in its store id (the segments name the store); a wrong key is never
    /// told the header is damaged.
    #[test]
    fn a_damaged_header_is_told_apart_from_a_wrong_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("k");
        generate_key_file(&key).expect("key");
        let other = dir.path().join("other");
        generate_key_file(&other).expect("key");
        let (header, _) =
            create(dir.path(), &KeySource::File(key.clone()), small_kdf(), 1).expect("create");
        let id = header.store_id();
        fs::create_dir(dir.path().join("log")).expect("mkdir");
        let segment = super::super::segment::SegmentHeader {
            store_id: id,
            first_seq: 1,
        };
        fs::write(
            dir.path()
                .join("log")
                .join(super::super::segment::file_name(1)),
            segment.to_bytes(),
        )
        .expect("segment");
        let path = header_path(dir.path());
        let good = fs::read(&path).expect("read");
        let id_at = good
            .windows(id.len())
            .position(|w| w == id)
            .expect("the store id in the header");
        let mut damaged = 0;
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x04;
            fs::write(&path, &bad).expect("write");
            let right = open(dir.path(), &KeySource::File(key.clone()));
            if i >= good.len() - 32 || (id_at..id_at + id.len()).contains(&i) {
                assert!(
                    matches!(right, Err(KeyError::HeaderDamaged(_))),
                    "byte {i}: {right:?}"
                );
            }
            if matches!(right, Err(KeyError::HeaderDamaged(_))) {
                damaged += 1;
                let msg = right.expect_err("err").to_string();
                assert!(msg.contains("store.header is damaged"), "{msg}");
                assert!(msg.contains("backup"), "{msg}");
            }
            let wrong = open(dir.path(), &KeySource::File(other.clone()));
            assert!(
                !matches!(wrong, Ok(_) | Err(KeyError::HeaderDamaged(_))),
                "byte {i}, another key: {wrong:?}"
            );
        }
        assert!(damaged >= 32 + id.len(), "{damaged}");
        fs::write(&path, &good).expect("write");
        assert!(matches!(
            open(dir.path(), &KeySource::File(other)),
            Err(KeyError::WrongKey)
        ));
        assert!(open(dir.path(), &KeySource::File(key)).is_ok());
    }

    #[test]
    fn index_ids_are_keyed_and_domain_separated() {
        let a = StoreKeys::derive(&[1; 32], [9; 16]);
        let b = StoreKeys::derive(&[2; 32], [9; 16]);
        assert_ne!(a.index_id(b"case", b"x"), b.index_id(b"case", b"x"));
        assert_ne!(a.index_id(b"case", b"x"), a.index_id(b"device", b"x"));
        assert_eq!(a.index_id(b"case", b"x"), a.index_id(b"case", b"x"));
    }
}
