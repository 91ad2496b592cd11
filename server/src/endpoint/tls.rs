//! The server's TLS identity and QUIC endpoint configuration.
//!
//! On first run a key pair and a self-signed certificate are created in
//! `<data_dir>/tls/`. Clients do not trust it through any CA: they pin the
//! SHA-256 of the certificate, which reaches them inside their invite.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotline_proto::{ALPN, CertPin};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Config, Limits};
use crate::log::keys::StoreKeys;

/// The certificate chain and key the server presents.
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The pin of the end-entity certificate.
    pub pin: CertPin,
    /// True when the certificate was created by this call.
    pub created: bool,
    /// True when the data directory's own certificate has no record in
    /// the store yet (just created, or a store made before the record
    /// existed): a normal start records it
    /// ([`crate::store::certificate`]).
    pub unbound: bool,
}

/// Why the TLS identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path} does not contain a usable {what}")]
    BadPem {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The certificate could not be generated.
    #[error("cannot generate the development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls or quinn refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(String),
    /// The data directory's certificate or key is not the store's.
    #[error(transparent)]
    Certificate(#[from] crate::store::certificate::CertError),
    /// A configured key does not belong to the configured certificate.
    #[error("the TLS key {key} does not match the certificate {cert} (pin {pin})")]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// The certificate's pin.
        pin: CertPin,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Io { what, path, source }
}

impl TlsIdentity {
    /// Loads the configured certificate, or the development one from the
    /// data directory, creating it on first run. The generated private key
    /// is stored sealed under the store's keys (`tls/key.sealed`), so a
    /// seized disk does not give it away.
    pub fn load_or_create(config: &Config, keys: &StoreKeys) -> Result<TlsIdentity, TlsError> {
        match Self::load_existing(config, keys)? {
            Some(identity) => Ok(identity),
            None => Self::create(config, keys),
        }
    }

    /// Loads the configured certificate, or the data directory's own one
    /// if it has one (checked against the store); `None` when the data
    /// directory has no certificate yet. Reads only.
    pub fn load_existing(
        config: &Config,
        keys: &StoreKeys,
    ) -> Result<Option<TlsIdentity>, TlsError> {
        if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
            let key_pem = fs::read(key).map_err(io("cannot read", key))?;
            let key_der =
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::BadPem {
                    what: "private key",
                    path: key.to_owned(),
                })?;
            let identity = Self::load(cert, key_der, false)?;
            if !crate::store::certificate::key_matches(&identity.chain, &identity.key) {
                return Err(TlsError::KeyMismatch {
                    key: key.to_owned(),
                    cert: cert.to_owned(),
                    pin: identity.pin,
                });
            }
            return Ok(Some(identity));
        }
        let dir = config.data_dir.join("tls");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.sealed");
        // The key opens with this store's key and matches the certificate,
        // which is the one the store recorded; a recorded certificate that
        // is gone is refused, never silently replaced by a new one.
        let checked = crate::store::certificate::check(
            &config.data_dir,
            keys,
            crate::store::certificate::FromLog::UNREAD,
        )?;
        if !cert.exists() && !key.exists() {
            return Ok(None);
        }
        let unbound = checked.is_none_or(|c| !c.bound);
        let sealed = crate::files::read_at_most(&key, 1 << 20).map_err(io("cannot read", &key))?;
        let der = keys.open_tls_key(&sealed).ok_or_else(|| TlsError::BadPem {
            what: "sealed private key for this store",
            path: key.clone(),
        })?;
        let key_der = PrivateKeyDer::try_from(der).map_err(|_| TlsError::BadPem {
            what: "private key",
            path: key.clone(),
        })?;
        let mut identity = Self::load(&cert, key_der, false)?;
        identity.unbound = unbound;
        Ok(Some(identity))
    }

    /// Makes the data directory's development certificate and its sealed
    /// key. Called only once the store has opened and verified (a refused
    /// start creates nothing), and only when [`TlsIdentity::load_existing`]
    /// found none. The certificate is checked with QUIC before anything is
    /// written.
    pub fn create(config: &Config, keys: &StoreKeys) -> Result<TlsIdentity, TlsError> {
        let dir = config.data_dir.join("tls");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.sealed");
        let mut names = vec![config.server_name.clone(), "localhost".to_owned()];
        if !config.listen.ip().is_unspecified() {
            names.push(config.listen.ip().to_string());
        }
        names.dedup();
        let generated = rcgen::generate_simple_self_signed(names)?;
        let der = generated.signing_key.serialize_der();
        let sealed = keys
            .seal_tls_key(&der)
            .ok_or_else(|| TlsError::Config("cannot seal the TLS key".into()))?;
        let leaf = CertificateDer::from(generated.cert.der().to_vec());
        let identity = TlsIdentity {
            pin: CertPin::of_certificate(leaf.as_ref()),
            chain: vec![leaf],
            key: PrivateKeyDer::try_from(der)
                .map_err(|_| TlsError::Config("generated key".into()))?,
            created: true,
            unbound: true,
        };
        // QUIC must accept it before anything is written.
        identity.server_config(&config.limits)?;
        crate::files::create_private_dir(&dir).map_err(io("cannot create", &dir))?;
        // Key first: a crash in between leaves a key without a certificate,
        // which the next start reports instead of silently replacing.
        crate::files::write_private(&key, &sealed).map_err(io("cannot write", &key))?;
        crate::files::write_private(&cert, generated.cert.pem().as_bytes())
            .map_err(io("cannot write", &cert))?;
        crate::files::sync_dir(&dir);
        Ok(identity)
    }

    /// The pin of the server's certificate, read without any key (the
    /// certificate is public).
    pub fn certificate_pin(config: &Config) -> Result<CertPin, TlsError> {
        let cert = config
            .tls_cert
            .clone()
            .unwrap_or_else(|| config.data_dir.join("tls").join("cert.pem"));
        Ok(Self::read_chain(&cert)?.1)
    }

    fn read_chain(cert: &Path) -> Result<(Vec<CertificateDer<'static>>, CertPin), TlsError> {
        let cert_pem =
            crate::files::read_at_most(cert, 1 << 20).map_err(io("cannot read", cert))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError::BadPem {
                what: "certificate",
                path: cert.to_owned(),
            })?;
        let leaf = chain.first().ok_or_else(|| TlsError::BadPem {
            what: "certificate",
            path: cert.to_owned(),
        })?;
        let pin = CertPin::of_certificate(leaf.as_ref());
        Ok((chain, pin))
    }

    fn load(
        cert: &Path,
        key: PrivateKeyDer<'static>,
        created: bool,
    ) -> Result<TlsIdentity, TlsError> {
        let (chain, pin) = Self::read_chain(cert)?;
        Ok(TlsIdentity {
            chain,
            key,
            pin,
            created,
            unbound: false,
        })
    }

    /// The quinn server configuration: TLS 1.3 only with the ring provider,
    /// ALPN `hotline/1`, no 0-RTT, and the transport limits.
    pub fn server_config(&self, limits: &Limits) -> Result<quinn::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        // 0-RTT data can be replayed by the network: never accept it.
        tls.max_early_data_size = 0;
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(limits.max_streams_per_connection.into())
            // Clients have nothing to send on unidirectional streams yet.
            .max_concurrent_uni_streams(0u32.into())
            .max_idle_timeout(Some(
                limits
                    .idle_timeout()
                    .try_into()
                    .map_err(|_| TlsError::Config("idle timeout out of range".into()))?,
            ));
        server.transport_config(Arc::new(transport));
        // Defenders move between networks: keep connections across address
        // changes (the default, stated here on purpose).
        server.migration(true);
        Ok(server)
    }
}
