//! Server configuration: safe defaults, an optional TOML file, and flags on
//! top (flags win).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The UDP port the server listens on by default.
pub const DEFAULT_PORT: u16 = 4433;

/// Everything the server needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The UDP address to listen on. The default, `127.0.0.1:4433`, is for
    /// development: only this machine can connect. In production, listen on
    /// `0.0.0.0:4433` (or `[::]:4433`) and set `public_addr`.
    pub listen: SocketAddr,
    /// The `host:port` clients should connect to, written into invites.
    /// Required when `listen` is a wildcard address.
    pub public_addr: Option<String>,
    /// The TLS server name put in the development certificate and in
    /// invites. Clients check the certificate by pin, not by name.
    pub server_name: String,
    /// Where the store, the TLS key and certificate live. Created on first
    /// run with owner-only permissions.
    pub data_dir: PathBuf,
    /// Use this PEM certificate chain instead of the generated one.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// A file holding the store's master key (32 bytes, or 64 hex digits),
    /// on media other than the data directory's.
    pub master_key_file: Option<PathBuf>,
    /// With no other key source and a loopback-only listen address, keep a
    /// generated master key in `<data_dir>.insecure-dev-master-key`, beside
    /// the data. For development only: ignored (and start-up refused
    /// without a key) when listening beyond this machine.
    pub insecure_dev_master_key: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Escalation policy per priority (see docs/operations.md).
    pub escalation: crate::domain::alerts::Policies,
    /// Milliseconds between checks for escalation steps that fell due.
    pub escalation_tick_ms: u64,
    /// Weekly duty shifts (see docs/operations.md).
    pub rota: Vec<crate::domain::rota::ShiftConfig>,
    /// The data directory's disk: when to warn (see docs/operations.md).
    pub storage: Storage,
    /// Cases: how long a closed case is kept before it may be erased.
    pub cases: CasesConfig,
    /// For tests only: the file operations the log's durable files are
    /// changed through (a [`crate::log::fs::FaultFs`] makes chosen ones
    /// fail). `None`, the default, is the real file system. No
    /// configuration file or flag can set it.
    #[serde(skip)]
    pub dangerous_log_file_ops: Option<crate::log::fs::Fs>,
}

/// Cases (section `[cases]`; docs/operations.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CasesConfig {
    /// Days a case must have been closed before staff may erase it
    /// (0: at once). Counted from the server's time of the closing event.
    pub retention_days: u64,
}

/// The default retention of closed cases: a year.
pub const DEFAULT_CASE_RETENTION_DAYS: u64 = 365;

impl Default for CasesConfig {
    fn default() -> Self {
        CasesConfig {
            retention_days: DEFAULT_CASE_RETENTION_DAYS,
        }
    }
}

/// How the server watches the disk under its data directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Log a warning (at start, then every `check_every_secs`) when the
    /// data directory's filesystem has fewer free bytes than this.
    pub warn_free_bytes: u64,
    /// Seconds between checks of the free space.
    pub check_every_secs: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            warn_free_bytes: 1 << 30,
            check_every_secs: 60,
        }
    }
}

/// Limits on what one peer may consume.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Authenticated connections held at once, staff and defenders
    /// together; past it a newly authenticated connection is closed with
    /// `UNAVAILABLE`. Connections still in set-up count separately
    /// (`max_unauthenticated`).
    pub max_connections: usize,
    /// Of `max_connections`, the places only staff devices (officers,
    /// coordinators, admins) may take, so that defenders' connections
    /// cannot keep the duty team out.
    pub staff_reserved_connections: usize,
    /// Authenticated connections one device may hold at once; when it opens
    /// one more, its oldest is closed with `SUPERSEDED`.
    pub max_connections_per_device: usize,
    /// Connections in the handshake or set-up (not yet authenticated) held
    /// at once; more are refused during the handshake.
    pub max_unauthenticated: usize,
    /// Of `max_unauthenticated`, how many one IPv4 address (or one IPv6
    /// /64 prefix) may hold; more are refused during the handshake.
    pub max_unauthenticated_per_address: usize,
    /// Request streams a connection may have open at once.
    pub max_streams_per_connection: u32,
    /// Requests a connection may make in a burst.
    pub request_burst: u32,
    /// Requests per second a connection may sustain after the burst.
    pub requests_per_second: u32,
    /// Seconds of silence after which a connection is dropped. Clients send
    /// keep-alives well within it.
    pub idle_timeout_secs: u64,
    /// Seconds a new connection has to enroll or authenticate.
    pub auth_timeout_secs: u64,
    /// Seconds a request stream may take to arrive in full.
    pub request_timeout_secs: u64,
    /// Bytes of memory the store may use for its cache.
    pub store_cache_bytes: u64,
    /// One-time prekeys of one target device that one requesting device
    /// gets per hour; past that it gets the target's last-resort prekey,
    /// so that no one can drain another device's one-time prekeys.
    pub one_time_prekeys_per_hour: u32,
    /// Open SOS alerts one defender's device may have; an SOS beyond that
    /// is not refused but joins the device's newest open alert (its text
    /// kept with it, its staff paged again at most once a minute). 0: no
    /// limit.
    pub open_alerts_per_device: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            staff_reserved_connections: 256,
            max_connections_per_device: 8,
            max_unauthenticated: 1024,
            max_unauthenticated_per_address: 32,
            max_streams_per_connection: 16,
            request_burst: 50,
            requests_per_second: 10,
            idle_timeout_secs: 60,
            auth_timeout_secs: 10,
            request_timeout_secs: 30,
            store_cache_bytes: 64 * 1024 * 1024,
            one_time_prekeys_per_hour: 2,
            open_alerts_per_device: 3,
        }
    }
}

impl Limits {
    /// [`Limits::idle_timeout_secs`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    /// [`Limits::auth_timeout_secs`] as a duration.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.auth_timeout_secs)
    }
    /// [`Limits::request_timeout_secs`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

impl Limits {
    /// The connection limits in effect, in one line for the start-up log
    /// (numbers only: no address).
    pub fn connection_summary(&self) -> String {
        format!(
            "max_connections={} (staff_reserved_connections={}), max_connections_per_device={}, max_unauthenticated={}, max_unauthenticated_per_address={}, max_streams_per_connection={}, request_burst={}, requests_per_second={}",
            self.max_connections,
            self.staff_reserved_connections,
            self.max_connections_per_device,
            self.max_unauthenticated,
            self.max_unauthenticated_per_address,
            self.max_streams_per_connection,
            self.request_burst,
            self.requests_per_second,
        )
    }
}

/// `, the default` after a value equal to its default: a refusal must
/// say where a value the operator never wrote comes from.
fn default_mark<T: PartialEq>(value: T, default: T) -> &'static str {
    if value == default {
        ", the default"
    } else {
        ""
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            public_addr: None,
            server_name: "localhost".to_owned(),
            data_dir: PathBuf::from("hotline-data"),
            tls_cert: None,
            tls_key: None,
            master_key_file: None,
            insecure_dev_master_key: true,
            limits: Limits::default(),
            escalation: crate::domain::alerts::Policies::default(),
            escalation_tick_ms: 1000,
            rota: Vec::new(),
            storage: Storage::default(),
            cases: CasesConfig::default(),
            dangerous_log_file_ops: None,
        }
    }
}

/// The configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is out of range or values contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file. Keys that are absent keep their defaults; unknown
    /// keys are an error (a typo must not silently fall back to a default).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
    }

    /// Whether this is a development set-up: listening on loopback only.
    pub fn is_dev(&self) -> bool {
        self.listen.ip().is_loopback()
    }

    /// Where the insecure development master key is kept.
    pub fn insecure_dev_key_path(&self) -> PathBuf {
        let mut p = self.data_dir.clone().into_os_string();
        p.push(".insecure-dev-master-key");
        PathBuf::from(p)
    }

    /// The `host:port` to put in invites.
    pub fn advertised_addr(&self, bound: SocketAddr) -> String {
        self.public_addr
            .clone()
            .unwrap_or_else(|| bound.to_string())
    }

    /// Checks values and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if self.listen.ip().is_unspecified() && self.public_addr.is_none() {
            return Err(ConfigError::Invalid(
                "listening on a wildcard address needs public_addr (the host:port clients connect to)".into(),
            ));
        }
        if self.server_name.is_empty() || self.server_name.len() > 253 {
            return Err(ConfigError::Invalid(
                "server_name must be 1 to 253 characters".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together".into(),
            ));
        }
        let zero: Vec<&str> = [
            ("max_connections", l.max_connections == 0),
            ("staff_reserved_connections", false),
            (
                "max_connections_per_device",
                l.max_connections_per_device == 0,
            ),
            ("max_unauthenticated", l.max_unauthenticated == 0),
            (
                "max_unauthenticated_per_address",
                l.max_unauthenticated_per_address == 0,
            ),
            (
                "max_streams_per_connection",
                l.max_streams_per_connection == 0,
            ),
            ("request_burst", l.request_burst == 0),
            ("requests_per_second", l.requests_per_second == 0),
            ("auth_timeout_secs", l.auth_timeout_secs == 0),
            ("request_timeout_secs", l.request_timeout_secs == 0),
        ]
        .into_iter()
        .filter_map(|(key, is_zero)| is_zero.then_some(key))
        .collect();
        if !zero.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{} in [limits] must be greater than zero",
                zero.join(", ")
            )));
        }
        let defaults = Limits::default();
        if l.staff_reserved_connections >= l.max_connections {
            return Err(ConfigError::Invalid(format!(
                "staff_reserved_connections ({}{}) must be less than max_connections ({}{}): defenders need places too; set both in [limits]",
                l.staff_reserved_connections,
                default_mark(
                    l.staff_reserved_connections,
                    defaults.staff_reserved_connections
                ),
                l.max_connections,
                default_mark(l.max_connections, defaults.max_connections),
            )));
        }
        if l.max_connections_per_device > l.max_connections - l.staff_reserved_connections {
            return Err(ConfigError::Invalid(format!(
                "max_connections_per_device ({}{}) must be at most max_connections ({}{}) less staff_reserved_connections ({}{})",
                l.max_connections_per_device,
                default_mark(
                    l.max_connections_per_device,
                    defaults.max_connections_per_device
                ),
                l.max_connections,
                default_mark(l.max_connections, defaults.max_connections),
                l.staff_reserved_connections,
                default_mark(
                    l.staff_reserved_connections,
                    defaults.staff_reserved_connections
                ),
            )));
        }
        if l.max_unauthenticated_per_address > l.max_unauthenticated {
            return Err(ConfigError::Invalid(format!(
                "max_unauthenticated_per_address ({}{}) must be at most max_unauthenticated ({}{})",
                l.max_unauthenticated_per_address,
                default_mark(
                    l.max_unauthenticated_per_address,
                    defaults.max_unauthenticated_per_address
                ),
                l.max_unauthenticated,
                default_mark(l.max_unauthenticated, defaults.max_unauthenticated),
            )));
        }
        if !(5..=600).contains(&l.idle_timeout_secs) {
            return Err(ConfigError::Invalid(
                "idle_timeout_secs must be between 5 and 600".into(),
            ));
        }
        crate::domain::rota::parse(&self.rota).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if !(10..=60_000).contains(&self.escalation_tick_ms) {
            return Err(ConfigError::Invalid(
                "escalation_tick_ms must be between 10 and 60000".into(),
            ));
        }
        for p in [
            &self.escalation.immediate,
            &self.escalation.urgent,
            &self.escalation.routine,
        ] {
            if p.steps.is_empty() || p.rounds == 0 {
                return Err(ConfigError::Invalid(
                    "every escalation policy needs steps and at least one round".into(),
                ));
            }
        }
        if l.store_cache_bytes < 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "store_cache_bytes must be at least 1 MiB".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_and_valid() {
        let c = Config::default();
        assert!(c.listen.ip().is_loopback());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn file_values_override_defaults_and_typos_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:5000\"\npublic_addr = \"hotline.example.org:5000\"\n[limits]\nauth_timeout_secs = 5\n",
        )
        .expect("write");
        let c = Config::from_file(&path).expect("parses");
        assert_eq!(c.listen.port(), 5000);
        assert_eq!(c.limits.auth_timeout_secs, 5);
        assert_eq!(c.limits.max_streams_per_connection, 16);
        assert_eq!(c.limits.one_time_prekeys_per_hour, 2, "the default");
        assert!(c.validate().is_ok());

        std::fs::write(&path, "lisen = \"0.0.0.0:5000\"\n").expect("write");
        assert!(matches!(
            Config::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn a_rota_in_the_file_names_its_time_zones_and_a_bad_one_stops_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.toml");
        let rota = |zone: &str| {
            format!(
                "[[rota]]\ndevice = \"{}\"\ndays = [\"mon\"]\nstart = \"08:00\"\nend = \"16:00\"\ntime_zone = \"{zone}\"\n",
                "ab".repeat(16)
            )
        };
        std::fs::write(&path, rota("America/Mexico_City")).expect("write");
        let c = Config::from_file(&path).expect("parses");
        assert_eq!(c.rota[0].time_zone.as_deref(), Some("America/Mexico_City"));
        assert!(c.validate().is_ok());
        std::fs::write(&path, rota("Mars/Olympus_Mons")).expect("write");
        let e = Config::from_file(&path)
            .expect("parses")
            .validate()
            .expect_err("unknown zone");
        assert!(e.to_string().contains("rota shift 1"), "{e}");
    }

    #[test]
    fn contradictory_connection_limits_stop_the_start() {
        let with = |f: fn(&mut Limits)| {
            let mut c = Config::default();
            f(&mut c.limits);
            c.validate()
        };
        for (bad, why) in [
            (
                with(|l| l.staff_reserved_connections = l.max_connections),
                "reserve equal to the total",
            ),
            (
                with(|l| {
                    l.max_connections = 10;
                    l.staff_reserved_connections = 8;
                    l.max_connections_per_device = 3;
                }),
                "a device may hold more than defenders' share",
            ),
            (
                with(|l| l.max_unauthenticated_per_address = l.max_unauthenticated + 1),
                "per address above the total",
            ),
            (
                with(|l| l.max_connections_per_device = 0),
                "zero per device",
            ),
            (with(|l| l.max_unauthenticated = 0), "zero unauthenticated"),
            (
                with(|l| l.max_unauthenticated_per_address = 0),
                "zero per address",
            ),
        ] {
            assert!(matches!(bad, Err(ConfigError::Invalid(_))), "{why}");
        }
        assert!(
            with(|l| {
                l.max_connections = 10;
                l.staff_reserved_connections = 0;
                l.max_connections_per_device = 10;
            })
            .is_ok(),
            "no reserve and one device may fill the rest: allowed"
        );
    }

    /// A refusal names the key at fault, every one of them, and a value
    /// the operator did not write is said to be the default.
    #[test]
    fn a_refused_limit_is_named_with_the_value_in_effect() {
        let with = |f: fn(&mut Limits)| {
            let mut c = Config::default();
            f(&mut c.limits);
            c.validate().expect_err("refused").to_string()
        };
        let e = with(|l| l.max_connections_per_device = 0);
        assert!(
            e.contains("max_connections_per_device in [limits] must be greater than zero"),
            "{e}"
        );
        let e = with(|l| {
            l.requests_per_second = 0;
            l.request_burst = 0;
        });
        assert!(
            e.contains("request_burst, requests_per_second in [limits]"),
            "{e}"
        );
        let e = with(|l| l.max_connections = 4);
        assert!(
            e.contains("staff_reserved_connections (256, the default) must be less than max_connections (4)"),
            "{e}"
        );
        let e = with(|l| {
            l.max_connections = 300;
            l.max_connections_per_device = 60;
        });
        assert!(
            e.contains("max_connections_per_device (60) must be at most max_connections (300) less staff_reserved_connections (256, the default)"),
            "{e}"
        );
        let e = with(|l| l.max_unauthenticated_per_address = 2000);
        assert!(e.contains("max_unauthenticated (1024, the default)"), "{e}");
        let line = Limits::default().connection_summary();
        for want in [
            "max_connections=4096",
            "staff_reserved_connections=256",
            "max_connections_per_device=8",
            "max_unauthenticated_per_address=32",
        ] {
            assert!(line.contains(want), "{want} missing from {line}");
        }
    }

    #[test]
    fn wildcard_listen_needs_a_public_address() {
        let c = Config {
            listen: "0.0.0.0:4433".parse().expect("addr"),
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
    }
}
