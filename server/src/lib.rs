//! The hotline server.
//!
//! # Layout
//!
//! The modules follow a connection's data path:
//!
//! * [`config`]: defaults, the TOML file and validation.
//! * [`tls`]: the server's certificate (created on first run) and the
//!   QUIC/TLS settings: TLS 1.3 only, ALPN `hotline/1`, no 0-RTT.
//! * [`server`]: the endpoint, the accept loop and shutdown.
//! * `connection`: one connection: challenge, set-up (enroll or
//!   authenticate), then one task per request stream.
//! * [`handler`]: what each request does and which roles may make it.
//! * [`store`]: durable state ([`store::LogStore`]), kept as
//!   [`state`] derived from the encrypted, hash-chained event [`log`].
//!
//! `main.rs` is a thin command line over [`server::RunningServer`]; tests
//! start the same server on `127.0.0.1:0`.

pub mod config;
pub mod domain;
pub mod endpoint;
mod files;
pub mod log;
pub mod requests;
pub mod store;

pub use config::Config;
pub use endpoint::{DataDir, RunningServer, StartError};

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
