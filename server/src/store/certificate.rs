//! The server's own TLS certificate, bound to the store.
//!
//! Clients pin the SHA-256 of the certificate in `<data_dir>/tls/cert.pem`.
//! The certificate itself is public and unsigned by anything clients
//! trust, so anyone able to write the data directory could swap it (and
//! `hotline-server fingerprint` would hand the new pin out). Its pin is
//! therefore recorded sealed under the store's master key in
//! `tls/cert.bound` (nonce || ChaCha20-Poly1305 of the 32-byte pin, see
//! [`crate::log::keys::StoreKeys::seal_cert_pin`]); every start,
//! `fingerprint`, `verify`, `backup` and `restore` compares the
//! certificate against it and checks that the sealed private key
//! (`tls/key.sealed`) opens with the store's key and matches the
//! certificate. The pin is also recorded in the store's log (event
//! `CertificatePinned`, chained and signed), so that deleting
//! `tls/cert.bound`, or all three files, cannot make a store look like
//! one made before the record existed: [`check`] with what the log
//! records ([`FromLog`]) refuses a missing record, and a missing
//! certificate in a store that has records. A store made before either
//! record existed gets both on its first normal start ([`bind`], then
//! [`super::LogStore::record_certificate`]); a deliberate change of
//! certificate is accepted with [`accept_new`]
//! (`hotline-server accept-new-cert`), the only way to change it.
//!
//! Checking reads only; nothing here writes except [`bind`],
//! [`super::LogStore::record_certificate`] and [`accept_new`].

use std::path::{Path, PathBuf};

use hotline_proto::CertPin;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Create, OpenError, open_keys, take_lock};
use crate::domain::CertificateRecord;
use crate::log::keys::{KeySource, StoreKeys};

/// The certificate clients pin, inside a data directory.
pub const CERT_FILE: &str = "tls/cert.pem";
/// Its private key, sealed under the store's key.
pub const KEY_FILE: &str = "tls/key.sealed";
/// The certificate's pin, sealed under the store's key.
pub const BINDING_FILE: &str = "tls/cert.bound";

/// Why the store's TLS certificate cannot be trusted or used. Each names
/// the files concerned; none carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// read / write / rename.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0} does not contain a usable certificate")]
    BadCert(PathBuf),
    /// The sealed key does not open with this store's master key.
    #[error(
        "the TLS key {key} does not open with the master key of the store in {store}: \
         it was made for another store, or altered; restore tls/ from this store's backup"
    )]
    KeyNotThisStore {
        /// The sealed key file.
        key: PathBuf,
        /// The data directory.
        store: PathBuf,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "the TLS key {key} does not match the certificate {cert} (pin {pin}) of the store in \
         {store}: a server could not serve with them; restore both from the same backup"
    )]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// The certificate's pin.
        pin: CertPin,
        /// The data directory.
        store: PathBuf,
    },
    /// The certificate is not the one recorded in the store.
    #[error(
        "the TLS certificate {cert} has changed: its pin is {found}, but the store in {store} \
         recorded {recorded} (clients check that one). If you replaced it on purpose, run \
         `hotline-server accept-new-cert` and re-invite every device; otherwise restore \
         tls/cert.pem and tls/key.sealed from a backup taken after the last certificate \
         change (`accept-new-cert`)"
    )]
    Changed {
        /// The certificate file.
        cert: PathBuf,
        /// The pin of the certificate found.
        found: CertPin,
        /// The pin recorded in the store.
        recorded: CertPin,
        /// The data directory.
        store: PathBuf,
    },
    /// The record of the pin does not open: altered, or from another store.
    #[error(
        "{0} does not open with this store's master key: it was altered or comes from another \
         store; restore tls/ from a backup, or run `hotline-server accept-new-cert` if the \
         certificate is the right one"
    )]
    BindingDamaged(PathBuf),
    /// The certificate and key are gone, but the store recorded one.
    #[error(
        "{cert} and {key} are missing, but the store in {store} recorded a certificate \
         (clients check its pin): restore both from a backup taken after the last certificate \
         change (`accept-new-cert`), or run \
         `hotline-server accept-new-cert` to have the next start make a new one \
         (then re-invite every device)"
    )]
    Missing {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The data directory.
        store: PathBuf,
    },
    /// `tls/cert.bound` is gone (or is not the record of the certificate)
    /// although the store's log records the certificate.
    #[error(
        "{path} is missing or is not the record of the certificate, but the log of the store in \
         {store} records the certificate with pin {pin} (clients check that one): restore tls/ \
         from a backup, or run `hotline-server accept-new-cert` if the certificate in tls/ is \
         the right one"
    )]
    BindingMissing {
        /// The record file.
        path: PathBuf,
        /// The pin the log records.
        pin: CertPin,
        /// The data directory.
        store: PathBuf,
    },
    /// The pin could not be sealed.
    #[error("cannot seal the certificate's pin")]
    Seal,
}

/// A data directory's TLS certificate, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The certificate's pin (what clients check).
    pub pin: CertPin,
    /// Whether `tls/cert.bound` holds a record of it (`false`: a store
    /// made before the record existed; the next normal start records it).
    pub bound: bool,
    /// Whether the store's log records it (only known when the caller
    /// read the log).
    pub in_log: bool,
}

/// A TLS file, at most 1 MiB (a certificate chain, a sealed key and the
/// 60-byte record are far smaller: a larger file is never read whole).
fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    crate::files::read_at_most(path, 1 << 20).map_err(|source| CertError::Io {
        what: "read",
        path: path.to_owned(),
        source,
    })
}

/// The certificate chain in `cert` and the pin of its first certificate.
pub fn read_chain(cert: &Path) -> Result<(Vec<CertificateDer<'static>>, CertPin), CertError> {
    let pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CertError::BadCert(cert.to_owned()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| CertError::BadCert(cert.to_owned()))?;
    let pin = CertPin::of_certificate(leaf.as_ref());
    Ok((chain, pin))
}

/// Whether `key` is the private key of the chain's first certificate.
/// `Ok(false)`: it is a usable key of another certificate.
pub fn key_matches(chain: &[CertificateDer<'static>], key: &PrivateKeyDer<'static>) -> bool {
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain.to_vec(), key.clone_key(), &provider).is_ok()
}

/// The pin recorded in `dir`, if there is a record.
fn recorded(dir: &Path, keys: &StoreKeys) -> Result<Option<CertPin>, CertError> {
    let path = dir.join(BINDING_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let sealed = read(&path)?;
    let pin = keys
        .open_cert_pin(&sealed)
        .ok_or(CertError::BindingDamaged(path))?;
    Ok(Some(CertPin::from_bytes(pin)))
}

/// The certificate and key in `dir` (a data directory or a backup) with
/// the store's keys, without the record check: the key opens with this
/// store's key and matches the certificate.
fn check_pair(dir: &Path, keys: &StoreKeys) -> Result<CertPin, CertError> {
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    let (chain, pin) = read_chain(&cert)?;
    let der = keys
        .open_tls_key(&read(&key)?)
        .ok_or_else(|| CertError::KeyNotThisStore {
            key: key.clone(),
            store: dir.to_owned(),
        })?;
    let mismatch = || CertError::KeyMismatch {
        key: key.clone(),
        cert: cert.clone(),
        pin,
        store: dir.to_owned(),
    };
    let private = PrivateKeyDer::try_from(der).map_err(|_| mismatch())?;
    if !key_matches(&chain, &private) {
        return Err(mismatch());
    }
    Ok(pin)
}

/// The pin sealed in `tls/cert.bound` by `accept-new-cert` when the
/// certificate and key were removed on purpose: "let go, the next start
/// makes a new one" (no certificate has this pin).
const LET_GO: [u8; 32] = [0; 32];

/// What the caller read of the store's log, for [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromLog {
    /// The log holds records. Every store that has records had a
    /// certificate (a start makes or checks it before the first record),
    /// so its absence is then a loss, never a first start.
    pub has_records: bool,
    /// What the log records of the certificate; `None`: not read (the
    /// caller holds only the keys, or a server is running).
    pub record: Option<CertificateRecord>,
}

impl FromLog {
    /// Nothing read from the log: the files are checked against each
    /// other and `tls/cert.bound` only.
    pub const UNREAD: FromLog = FromLog {
        has_records: false,
        record: None,
    };
}

/// What the log of the store in `data_dir` records of the certificate,
/// read without creating or changing anything (as read-only serving
/// reads it); `None` when it cannot be read that way: a server holds the
/// store, or it is damaged or in the earlier layout (the caller then
/// checks the files only).
pub fn read_log(data_dir: &Path, keys: StoreKeys) -> Option<FromLog> {
    if super::in_use(data_dir) {
        return None;
    }
    // Quietly: this is a look at one record, not read-only serving.
    let (store, left_out) =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            super::LogStore::open_read_only(data_dir, keys)
        })
        .ok()?;
    left_out.is_none().then(|| store.certificate_facts())
}

/// Checks the TLS files of `dir` (a data directory or a backup) against
/// its store: the sealed key opens and matches the certificate, and the
/// certificate is the one recorded (in the log, when `log` carries its
/// record, and in `tls/cert.bound`). `None`: the directory has neither a
/// certificate nor a key, and that is no loss: none made yet, a removal
/// accepted with `accept-new-cert`, or the server uses configured files.
/// A store that recorded a certificate, or holds records, is refused
/// ([`CertError::Missing`]). Reads only.
pub fn check(dir: &Path, keys: &StoreKeys, log: FromLog) -> Result<Option<Checked>, CertError> {
    let in_log = match log.record {
        Some(CertificateRecord::Pinned(pin)) => Some(CertPin::from_bytes(pin)),
        _ => None,
    };
    let file = recorded(dir, keys)?;
    let let_go = match log.record {
        Some(CertificateRecord::LetGo) => true,
        // The log says nothing yet (or was not read): the file's word.
        Some(CertificateRecord::Never) | None => file == Some(CertPin::from_bytes(LET_GO)),
        Some(CertificateRecord::Pinned(_)) => false,
    };
    let file = file.filter(|p| *p != CertPin::from_bytes(LET_GO));
    if !dir.join(CERT_FILE).exists() && !dir.join(KEY_FILE).exists() {
        if !let_go && (file.is_some() || in_log.is_some() || log.has_records) {
            // Never silently replaced by a new certificate.
            return Err(CertError::Missing {
                cert: dir.join(CERT_FILE),
                key: dir.join(KEY_FILE),
                store: dir.to_owned(),
            });
        }
        return Ok(None);
    }
    // The record first: a swapped certificate is named as such (with both
    // pins), not only as one its key does not match.
    let cert = dir.join(CERT_FILE);
    let found = if cert.exists() {
        Some(read_chain(&cert)?.1)
    } else {
        None
    };
    if let (Some(found), Some(recorded)) = (found, in_log.or(file))
        && found != recorded
    {
        return Err(CertError::Changed {
            cert,
            found,
            recorded,
            store: dir.to_owned(),
        });
    }
    if let Some(pin) = in_log
        && file != Some(pin)
    {
        // The log records the certificate, so this store wrote its record
        // too: a record removed (or an older one put back) is refused,
        // never taken for a store that predates it.
        return Err(CertError::BindingMissing {
            path: dir.join(BINDING_FILE),
            pin,
            store: dir.to_owned(),
        });
    }
    let pin = check_pair(dir, keys)?;
    Ok(Some(Checked {
        pin,
        bound: file.is_some(),
        in_log: in_log.is_some(),
    }))
}

/// Records `pin` as the store's certificate in `dir`: written to a new
/// file, synced, and renamed over the record (a crash leaves the old
/// record or the new one). The caller holds the data directory's lock.
pub(crate) fn bind(dir: &Path, keys: &StoreKeys, pin: &CertPin) -> Result<(), CertError> {
    let path = dir.join(BINDING_FILE);
    let tmp = dir.join(format!("{BINDING_FILE}.new"));
    let sealed = keys.seal_cert_pin(pin.as_bytes()).ok_or(CertError::Seal)?;
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| CertError::Io { what, path, source }
    };
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(io("remove", &tmp))?;
    }
    // A restored backup that was taken without its certificate has no
    // tls/ at all (`accept-new-cert` then records the letting go here).
    let tls = dir.join("tls");
    crate::files::create_private_dir(&tls).map_err(io("create", &tls))?;
    // A failed write (a full disk) leaves no `.new` file behind.
    let written = crate::files::write_private(&tmp, &sealed)
        .map_err(io("write", &tmp))
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(io("rename", &path)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    crate::files::sync_dir_strict(&tls).map_err(io("sync", &tls))
}

impl super::LogStore {
    /// Records in the log that the certificate with `pin` is the store's
    /// (`None`: let go on purpose, the next start makes a new one). The
    /// record is chained and signed like every other, so deleting
    /// `tls/cert.bound` cannot make the store look as if it predated it.
    pub fn record_certificate(&self, pin: Option<&CertPin>) -> Result<(), super::StoreError> {
        let state = self.lock();
        let event = crate::domain::Event::CertificatePinned {
            pin: pin.map(|p| *p.as_bytes()),
        };
        self.commit(state, event).map(|_| ())
    }

    /// What the log says of the certificate, for [`check`].
    pub fn certificate_facts(&self) -> FromLog {
        let state = self.lock();
        FromLog {
            has_records: state.applied_seq > 0,
            record: Some(state.certificate),
        }
    }
}

/// What `accept-new-cert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// The certificate in the data directory is now the store's.
    Recorded {
        /// The pin recorded before, if there was a readable record.
        before: Option<CertPin>,
        /// The pin recorded now.
        now: CertPin,
    },
    /// There was no certificate and key: the record was removed, and the
    /// next start makes a new certificate and records it.
    NextStartMakesOne {
        /// The pin recorded before, if there was a readable record.
        before: Option<CertPin>,
    },
}

/// `hotline-server accept-new-cert`: after a deliberate change, records
/// the certificate now in `data_dir` as the store's (its key must open
/// with the store's master key and match it), in `tls/cert.bound` and in
/// the log; with no certificate and key there, records that the
/// certificate was let go, so that the next start makes a new one. The
/// only way to change the store's certificate. Refused while another
/// process holds the data directory, or if the store does not open.
pub fn accept_new(
    data_dir: &Path,
    key: &KeySource,
    cache_bytes: u64,
) -> Result<Accepted, AcceptError> {
    let keys = open_keys(data_dir, key, Create::Never)?;
    let lock = take_lock(data_dir)?;
    // A record that does not open is replaced, as a changed one is.
    let before = recorded(data_dir, &keys)
        .unwrap_or(None)
        .filter(|p| *p != CertPin::from_bytes(LET_GO));
    let gone = !data_dir.join(CERT_FILE).exists() && !data_dir.join(KEY_FILE).exists();
    let now = if gone {
        None
    } else {
        Some(check_pair(data_dir, &keys)?)
    };
    let store =
        super::LogStore::open_locked(data_dir, keys, cache_bytes, crate::log::fs::real(), lock)?;
    let before = match store.certificate_facts().record {
        Some(CertificateRecord::Pinned(pin)) => Some(CertPin::from_bytes(pin)),
        _ => before,
    };
    // The file first, then the log. A failure in between (a crash, a
    // full disk) leaves the file ahead of the log: for a first record the
    // next start completes it; for a replaced or released certificate the
    // log still names the old pin and the next start refuses the change
    // ("has changed" or "missing") until `accept-new-cert` is run again.
    bind(
        data_dir,
        store.log().keys(),
        &now.unwrap_or(CertPin::from_bytes(LET_GO)),
    )?;
    store
        .record_certificate(now.as_ref())
        .map_err(|e| AcceptError::Open(e.into()))?;
    store.close().map_err(|e| AcceptError::Open(e.into()))?;
    Ok(match now {
        Some(now) => Accepted::Recorded { before, now },
        None => Accepted::NextStartMakesOne { before },
    })
}

/// Why `accept-new-cert` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The store could not be opened (wrong key, or in use).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The certificate or key is not usable with this store.
    #[error(transparent)]
    Cert(#[from] CertError),
}
