//! The async shell, and the only code that touches quinn: binding, the
//! accept loop, the escalation tick and graceful shutdown (here); who may
//! hold a connection, per address, per device and in total (`budget.rs`);
//! a connection's set-up and one task per request stream (`connection.rs`);
//! pushes to live connections (`push.rs`, `registry.rs`); the per
//! connection rate limit (`rate.rs`); the certificate and QUIC/TLS
//! settings (`tls.rs`). What to answer and what to push is the request
//! layer's ([`crate::requests`]); this layer sends it.

mod budget;
mod connection;
mod push;
mod rate;
mod registry;
mod storage;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hotline_proto::{CertPin, ErrorCode, Invite, Role, WireError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{Config, ConfigError};
use crate::log::keys::{KdfParams, KeySource};
use crate::requests::{self, Shared};
use crate::store::{Create, LogStore, OpenError, StoreError};
use registry::Registry;
use tls::{TlsError, TlsIdentity};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS identity could not be loaded or created.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] OpenError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The disk holding the data directory is full (or over its quota):
    /// the store cannot even be opened. A store that opens is served
    /// degraded instead (reads go on, writes wait for space).
    #[error(
        "the disk holding {dir} is full: {free} bytes free; free space and start again ({source})"
    )]
    DiskFull {
        /// The data directory.
        dir: std::path::PathBuf,
        /// Free bytes on its filesystem (as far as known).
        free: u64,
        /// What failed.
        source: Box<StartError>,
    },
    /// The UDP address is taken by another process (another server).
    #[error(
        "cannot listen on {addr}: the address is already in use (another hotline-server, \
         or another program, holds this UDP port); nothing in the data directory was changed"
    )]
    AddrInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What every connection task shares: the request context and the live
/// connections that pushes go to.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) shared: Shared,
    pub(crate) registry: Arc<Registry>,
}

/// The data directory opened: its store and TLS identity.
#[derive(Debug)]
pub struct DataDir {
    /// The store.
    pub store: Arc<LogStore>,
    /// The TLS identity.
    pub tls: TlsIdentity,
}

impl DataDir {
    /// Opens the data directory named in `config` with the master key from
    /// `key`, creating the directory, its store and its development
    /// certificate on first use.
    ///
    /// The key is checked against the store header before anything else in
    /// the directory is opened: a wrong key changes nothing.
    pub fn open(config: &Config, key: &KeySource) -> Result<DataDir, StartError> {
        Self::open_with(config, key, Create::IfMissing(KdfParams::default()))
    }

    /// Like [`DataDir::open`], with control over store creation. Fails
    /// with [`StartError::DiskFull`] if the store cannot be opened for
    /// lack of space.
    pub fn open_with(
        config: &Config,
        key: &KeySource,
        create: Create,
    ) -> Result<DataDir, StartError> {
        Self::open_unmapped(config, key, create)
            .map_err(|e| storage::name_disk_full(&config.data_dir, e))
    }

    fn open_unmapped(
        config: &Config,
        key: &KeySource,
        create: Create,
    ) -> Result<DataDir, StartError> {
        config.validate()?;
        if create == Create::Never && !config.data_dir.exists() {
            return Err(OpenError::from(crate::log::keys::KeyError::DataDirMissing(
                config.data_dir.clone(),
            ))
            .into());
        }
        if create == Create::Never && !crate::log::keys::exists(&config.data_dir) {
            return Err(OpenError::from(crate::log::keys::KeyError::HeaderMissing(
                config.data_dir.clone(),
            ))
            .into());
        }
        crate::files::create_private_dir(&config.data_dir).map_err(|source| {
            StartError::DataDir {
                path: config.data_dir.clone(),
                source,
            }
        })?;
        // The lock before anything is created in the directory: two first
        // starts never both write the header or the TLS certificate.
        let lock = crate::store::take_lock(&config.data_dir)?;
        let keys = crate::store::open_keys(&config.data_dir, key, create)?;
        // An existing certificate is checked (and must be one QUIC
        // accepts) before the store is opened and anything in it written;
        // a missing one is made only once the store has opened and
        // verified: a refused start creates nothing.
        let existing = TlsIdentity::load_existing(config, &keys)?;
        if let Some(tls) = &existing {
            tls.server_config(&config.limits)?;
        }
        let store = LogStore::open_locked(
            &config.data_dir,
            keys,
            config.limits.store_cache_bytes,
            config
                .dangerous_log_file_ops
                .clone()
                .unwrap_or_else(crate::log::fs::real),
            lock,
        )?;
        let tls = match config.tls_cert {
            Some(_) => {
                existing.ok_or_else(|| TlsError::Config("no configured certificate".into()))?
            }
            None => Self::own_certificate(config, &store, existing)?,
        };
        Ok(DataDir {
            store: Arc::new(store),
            tls,
        })
    }

    /// The data directory's own certificate, checked against what the
    /// opened store's log records (a store that recorded one, or holds
    /// records, never gets a new one silently); made if there is none and
    /// that is no loss; then recorded, in `tls/cert.bound` and in the log,
    /// if it is not yet. Recording is best-effort on a full disk: the
    /// server serves, and the next start records it.
    fn own_certificate(
        config: &Config,
        store: &LogStore,
        existing: Option<TlsIdentity>,
    ) -> Result<TlsIdentity, StartError> {
        let keys = store.log().keys();
        let checked =
            crate::store::certificate::check(&config.data_dir, keys, store.certificate_facts())
                .map_err(TlsError::from)?;
        let (tls, bound, in_log) = match (existing, checked) {
            (Some(tls), Some(c)) => (tls, c.bound, c.in_log),
            // None, and that is no loss (the check says so): made now.
            (None, None) => (TlsIdentity::create(config, keys)?, false, false),
            // Only if the files changed under the lock: never a new one.
            _ => {
                return Err(TlsError::Config(
                    "the TLS files in the data directory changed during the start".into(),
                )
                .into());
            }
        };
        if !bound {
            // Under the data directory's lock, held since the store opened.
            match crate::store::certificate::bind(&config.data_dir, keys, &tls.pin) {
                Ok(()) => tracing::info!(
                    "recorded the TLS certificate's pin in tls/cert.bound: a changed certificate is now refused"
                ),
                Err(e) if storage::is_disk_full(&e) => {
                    tracing::warn!(
                        "the disk is full: the TLS certificate's pin is not recorded yet (the next start records it): {e}"
                    );
                    return Ok(tls);
                }
                Err(e) => return Err(TlsError::from(e).into()),
            }
        }
        if !in_log {
            match store.record_certificate(Some(&tls.pin)) {
                Ok(()) => tracing::info!(
                    "recorded the TLS certificate's pin in the log: its record cannot be removed unnoticed"
                ),
                Err(e @ (StoreError::Degraded(_) | StoreError::ReadOnly)) => tracing::warn!(
                    "the TLS certificate's pin is not recorded in the log yet (the next start records it): {e}"
                ),
                Err(e) if storage::is_disk_full(&e) => tracing::warn!(
                    "the disk is full: the TLS certificate's pin is not recorded in the log yet (the next start records it): {e}"
                ),
                Err(e) => return Err(StartError::Store(e.into())),
            }
        }
        Ok(tls)
    }

    /// Opens the data directory named in `config` for reading only, up to
    /// its last sound record (see [`LogStore::open_read_only`]): creates
    /// and changes nothing, so the TLS certificate must be there already.
    /// Returns, if records were left out, the first of them and why.
    pub fn open_read_only(
        config: &Config,
        key: &KeySource,
    ) -> Result<(DataDir, Option<(u64, String)>), StartError> {
        config.validate()?;
        let keys = crate::store::open_keys(&config.data_dir, key, Create::Never)?;
        let own_cert = config.data_dir.join("tls").join("cert.pem");
        if config.tls_cert.is_none() && !own_cert.exists() {
            return Err(StartError::Store(
                StoreError::Io(
                    "no TLS certificate in the data directory: read-only serving creates nothing"
                        .into(),
                )
                .into(),
            ));
        }
        let tls = TlsIdentity::load_existing(config, &keys)?.ok_or_else(|| {
            StartError::Store(
                StoreError::Io(
                    "no TLS certificate in the data directory: read-only serving creates nothing"
                        .into(),
                )
                .into(),
            )
        })?;
        let (store, left_out) = LogStore::open_read_only(&config.data_dir, keys)?;
        if config.tls_cert.is_none() {
            // What the log records of the certificate, as a start checks it.
            crate::store::certificate::check(
                &config.data_dir,
                store.log().keys(),
                store.certificate_facts(),
            )
            .map_err(TlsError::from)?;
        }
        Ok((
            DataDir {
                store: Arc::new(store),
                tls,
            },
            left_out,
        ))
    }

    /// Makes a one-time invite without a running server (on the server
    /// host, for the first admin). An admin invite made this way is a
    /// bootstrap invite: it replaces every earlier one.
    pub async fn create_invite(
        &self,
        config: &Config,
        role: Role,
        ttl_seconds: u64,
    ) -> Result<Invite, WireError> {
        let shared = Shared::new(
            Arc::clone(&self.store),
            config,
            self.tls.pin,
            config.advertised_addr(config.listen),
        );
        requests::devices::make_invite(&shared, role, ttl_seconds, role == Role::Admin)
            .await
            .map_err(WireError::from)
    }
}

/// The UDP socket a server will listen on, bound before its data
/// directory is opened ([`RunningServer::bind`]).
#[derive(Debug)]
pub struct BoundSocket(std::net::UdpSocket);

/// A server accepting connections in the background.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    node: Arc<Node>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// How often a running server repeats its roster-expiry warning.
const ROSTER_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Logs a warning if the newest roster expires within a week or has
/// expired: an expired roster does not stop SOSes, but it must be renewed,
/// and the log is where the operator looks. Carries no id, name or key.
fn warn_roster_expiry(shared: &Shared) {
    if let Ok(Some(r)) = shared.store_read(|s| s.newest_roster())
        && let Some(w) =
            hotline_proto::e2e::roster::expiry_warning(Some(r.expires_at), crate::unix_now())
    {
        warn!("{w}");
    }
}

impl RunningServer {
    /// Binds the UDP socket, then opens the data directory and starts
    /// serving: a start that cannot listen changes nothing in the data
    /// directory.
    pub async fn start(config: Config, key: &KeySource) -> Result<RunningServer, StartError> {
        let socket = Self::bind(config.listen)?;
        let data = DataDir::open(&config, key)?;
        Self::start_bound(config, data, socket).await
    }

    /// Binds the UDP socket the server will listen on: done first, before
    /// the data directory is opened.
    pub fn bind(addr: SocketAddr) -> Result<BoundSocket, StartError> {
        std::net::UdpSocket::bind(addr)
            .map(BoundSocket)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AddrInUse => StartError::AddrInUse { addr },
                _ => StartError::Bind { addr, source },
            })
    }

    /// Starts serving an already opened data directory (binding its
    /// address now: prefer [`RunningServer::bind`] before opening it).
    pub async fn start_with(config: Config, data: DataDir) -> Result<RunningServer, StartError> {
        let socket = Self::bind(config.listen)?;
        Self::start_bound(config, data, socket).await
    }

    /// Starts serving an opened data directory on a socket bound by
    /// [`RunningServer::bind`].
    pub async fn start_bound(
        config: Config,
        data: DataDir,
        socket: BoundSocket,
    ) -> Result<RunningServer, StartError> {
        let server_config = data.tls.server_config(&config.limits)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_config),
            socket.0,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = endpoint.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let store = Arc::clone(&data.store);
        // A disk that is full at start: serve reads, refuse writes, heal
        // by itself (the storage watch), as for a running server.
        if !store.log().is_read_only() {
            let s = Arc::clone(&store);
            let _ = tokio::task::spawn_blocking(move || {
                if s.probe_at_start() {
                    // A stop between a case's erasure record and the
                    // destruction of its key: destroy it now.
                    if let Err(e) = s.finish_case_erasures() {
                        tracing::warn!(error = %e, "a case key left by an erasure could not be destroyed yet");
                    }
                }
            })
            .await;
        }
        let registry: Arc<Registry> = Arc::default();
        let node = Arc::new(Node {
            shared: Shared::new(
                data.store,
                &config,
                data.tls.pin,
                config.advertised_addr(local_addr),
            )
            .with_presence(Arc::clone(&registry) as Arc<dyn requests::Presence>),
            registry,
        });
        // Escalation: check for due steps on a steady tick. Steps are
        // derived from the log, so a restart picks up where it stopped.
        // The same tick saves a snapshot when one is due.
        // At shutdown it is told to stop and awaited, never aborted: an
        // aborted tick could leave a store call running on its own, still
        // holding the store open after the server says it stopped.
        let (stop_ticker, mut ticker_stopped) = oneshot::channel::<()>();
        let ticker = {
            let node = Arc::clone(&node);
            let tick = Duration::from_millis(config.escalation_tick_ms);
            tokio::spawn(
                async move {
                    let mut interval = tokio::time::interval(tick);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut roster_check = tokio::time::Instant::now() + ROSTER_CHECK_EVERY;
                    loop {
                        tokio::select! {
                            _ = interval.tick() => {}
                            _ = &mut ticker_stopped => break,
                        }
                        if tokio::time::Instant::now() >= roster_check {
                            warn_roster_expiry(&node.shared);
                            roster_check += ROSTER_CHECK_EVERY;
                        }
                        let pages = requests::alerts::escalate(&node.shared).await;
                        push::send(&node.registry, &pages);
                        // Snapshots are taken here, off every request's path.
                        if let Err(e) = node
                            .shared
                            .store_call(|s| s.snapshot_if_due(crate::store::SNAPSHOT_EVERY))
                            .await
                        {
                            tracing::warn!(error = %e, "snapshot failed");
                        }
                    }
                }
                .instrument(info_span!("escalation")),
            )
        };
        let (stop_watch, watch_stopped) = oneshot::channel::<()>();
        let watch = storage::spawn(
            Arc::clone(&store),
            config.data_dir.clone(),
            config.storage.clone(),
            watch_stopped,
        );
        let (stop, stopped) = oneshot::channel();
        let task = {
            let node = Arc::clone(&node);
            tokio::spawn(
                async move {
                    accept_loop(endpoint, node, stopped).await;
                    let _ = stop_ticker.send(());
                    let _ = ticker.await;
                    let _ = stop_watch.send(());
                    let _ = watch.await;
                    // Connections are closed: save a snapshot and sign a final
                    // checkpoint.
                    match tokio::task::spawn_blocking(move || store.close()).await {
                        Ok(Ok(())) => info!("store closed"),
                        Ok(Err(e)) => tracing::error!(error = %e, "store did not close cleanly"),
                        Err(_) => tracing::error!("store close task failed"),
                    }
                }
                .instrument(info_span!("server")),
            )
        };
        info!(addr = %local_addr, "listening");
        // What an operator checks first when someone is kept out.
        info!(
            limits = %node.shared.limits.connection_summary(),
            "connection limits in effect"
        );
        warn_roster_expiry(&node.shared);
        Ok(RunningServer {
            local_addr,
            node,
            stop: Some(stop),
            task,
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The pin clients must see.
    pub fn cert_pin(&self) -> CertPin {
        self.node.shared.pin()
    }

    /// Makes a one-time invite, as an admin's `hotline invite` would.
    pub async fn create_invite(&self, role: Role, ttl_seconds: u64) -> Result<Invite, WireError> {
        requests::devices::make_invite(&self.node.shared, role, ttl_seconds, false)
            .await
            .map_err(WireError::from)
    }

    /// Makes the bootstrap admin invite a start with no admin prints: it
    /// replaces every earlier one, so only the newest banner enrolls.
    pub async fn create_bootstrap_invite(&self, ttl_seconds: u64) -> Result<Invite, WireError> {
        requests::devices::make_invite(&self.node.shared, Role::Admin, ttl_seconds, true)
            .await
            .map_err(WireError::from)
    }

    /// What the store's open did or found that the operator should read
    /// (migration, the old layout to remove): one line each.
    pub fn start_notes(&self) -> Vec<String> {
        self.node.shared.store.start_notes().to_vec()
    }

    /// If the store found its snapshot cache ahead of its log at start:
    /// the warning (records this server had are gone).
    pub fn snapshot_ahead_of_log(&self) -> Option<String> {
        self.node.shared.store.snapshot_ahead_of_log()
    }

    /// Why writes are refused (a full or failing disk), if they are.
    pub fn storage_degraded(&self) -> Option<String> {
        self.node
            .shared
            .store
            .storage_state()
            .degraded
            .map(|d| d.reason)
    }

    /// Whether writes are refused (a full or failing disk, or read-only
    /// serving).
    pub fn writes_refused(&self) -> bool {
        let st = self.node.shared.store.storage_state();
        st.degraded.is_some() || st.read_only
    }

    /// Whether an admin device is enrolled and not revoked.
    pub async fn has_active_admin(&self) -> Result<bool, StoreError> {
        self.node.shared.store_call(|s| s.has_active_admin()).await
    }

    /// Stops accepting, closes every connection, and waits (a few seconds
    /// at most) for them to end.
    /// Frames of case sync answers built and not yet written (at most
    /// one per stream sending such an answer, however slowly its reader
    /// reads): what a test can measure of the memory sync answers pin.
    pub fn case_sync_frames_held(&self) -> usize {
        self.node.shared.sync_frames_held()
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Serves until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        info!("shutting down");
        self.shutdown().await;
    }
}

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How often, at most, refusals during the handshake are logged (with
/// their count): a flood must not flood the log too.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts refusals during the handshake and logs them now and then. Holds
/// no address: only how many, and the last reason.
#[derive(Debug, Default)]
struct Refusals {
    since_logged: u64,
    logged_at: Option<tokio::time::Instant>,
}

impl Refusals {
    fn note(&mut self, why: budget::Refusal) {
        self.since_logged += 1;
        let now = tokio::time::Instant::now();
        if self
            .logged_at
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
        {
            warn!(
                refused = self.since_logged,
                reason = %why,
                "connections refused during the handshake"
            );
            self.since_logged = 0;
            self.logged_at = Some(now);
        }
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, node: Arc<Node>, mut stop: oneshot::Receiver<()>) {
    let budget = Arc::new(budget::Budget::new(budget::BudgetLimits::from(
        &node.shared.limits,
    )));
    let mut refusals = Refusals::default();
    loop {
        let incoming = tokio::select! {
            _ = &mut stop => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        // The address is used here, to count, and never logged or kept
        // once its count is back to zero.
        let ip = incoming.remote_address().ip();
        let preauth = match budget.admit(ip, incoming.remote_address_validated()) {
            budget::Admission::Admitted(preauth) => preauth,
            budget::Admission::ValidateFirst => {
                if let Err(e) = incoming.retry() {
                    // Only a peer that already validated cannot be asked
                    // again; `admit` does not ask those.
                    e.into_incoming().refuse();
                }
                continue;
            }
            budget::Admission::Refused(why) => {
                refusals.note(why);
                incoming.refuse();
                continue;
            }
        };
        let node = Arc::clone(&node);
        tokio::spawn(connection::serve(incoming, node, preauth));
    }
    // Unavailable: clients may come back (a watching officer reconnects).
    endpoint.close(
        ErrorCode::Unavailable.to_u32().into(),
        b"server shutting down",
    );
    if tokio::time::timeout(SHUTDOWN_GRACE, endpoint.wait_idle())
        .await
        .is_err()
    {
        debug!("connections still open at shutdown");
    }
}
