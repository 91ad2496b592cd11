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

#[path = "requests/alerts.rs"]
mod alert_requests;
#[path = "store/alerts.rs"]
pub mod alerting;
#[path = "domain/alerts.rs"]
pub mod alerts;
#[path = "domain/checkins.rs"]
pub mod checkins;
pub mod config;
#[path = "endpoint/connection.rs"]
mod connection;
#[path = "requests/mod.rs"]
pub mod handler;
pub mod log;
#[path = "domain/mailbox.rs"]
pub mod mailbox;
#[path = "requests/messaging.rs"]
mod messaging;
#[path = "endpoint/rate.rs"]
mod rate;
#[path = "endpoint/registry.rs"]
mod registry;
#[path = "domain/rota.rs"]
pub mod rota;
#[path = "endpoint/mod.rs"]
pub mod server;
#[path = "domain/mod.rs"]
pub mod state;
#[path = "store/mod.rs"]
pub mod store;
#[path = "endpoint/tls.rs"]
pub mod tls;

pub use config::Config;
pub use server::{DataDir, RunningServer, StartError};

use std::path::Path;

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates `dir` (and parents) if missing; a new directory is readable by
/// its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Syncs a directory so that entries created in it survive a power loss.
/// Best effort: some filesystems do not support it.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
