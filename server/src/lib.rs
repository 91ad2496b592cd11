//! The hotline server: a QUIC endpoint that carries end-to-end encrypted
//! messages, alerts and check-ins between devices, and keeps its state in
//! an encrypted, tamper-evident log.
//!
//! # Layout
//!
//! One room per layer; read top to bottom, the tree is the path of a
//! request. Every domain (devices, messaging, alerts, check-ins) has a file
//! of the same name on each layer it touches.
//!
//! ```text
//! main.rs, config.rs   the command line; defaults, the TOML file, validation
//! endpoint/            the async shell, the only code that touches quinn
//!   mod.rs             bind, accept loop, escalation tick, shutdown; DataDir, RunningServer
//!   connection.rs      one connection: challenge and set-up, then one task per request stream
//!   push.rs            pushes to every live connection of their devices
//!   registry.rs        the live connections of each device
//!   rate.rs            the per-connection token bucket
//!   tls.rs             the certificate (made on first run) and the QUIC/TLS settings
//!   storage.rs         the storage watch: heals a degraded log with back-off, warns on low disk
//! requests/            who may do what; wire types <-> domain calls; no quinn
//!   mod.rs             the context (Shared, Session), Reply, RequestError, the role
//!                      table and the one exhaustive dispatch
//!   devices.rs         set-up (enroll, authenticate), status, invites, device list, revoke
//!   messaging.rs       roster, prekeys, envelopes, inbox, delivery
//!   alerts.rs          raise, list, claim, close, duty, pages; the escalation tick's pages
//!   checkins.rs        check-in schedules and check-ins
//!   cases.rs           case events, the (multi-frame) case sync, defenders' requests, erasure
//! store/               durability: decide (domain) -> stage under a key -> wait for the flush
//!   mod.rs             LogStore: open, replay, commit, stage, wait; StoreError, OpenError
//!   devices.rs, mailbox.rs, alerts.rs, checkins.rs    each domain's operations
//!   cases.rs           case events under the case's subkey, erasure by crypto-shredding
//!   snapshot.rs        sealed snapshots of the state
//!   verify.rs          `hotline-server verify` (reads only)
//!   migrate.rs         the upgrade from the sled-only layout, through a verified copy
//!   recover.rs         `hotline-server recover --truncate-after-copy`
//!   backup.rs          `backup --to`, `restore --from` (while a server runs), online `checkpoint`
//!   codec/             every stored form: events and snapshots, one error, one set of tables
//! domain/              pure: events in, decisions out; no I/O, no clock, no prost
//!   mod.rs             Event, State, apply, ApplyError
//!   devices.rs, mailbox.rs, alerts.rs, checkins.rs, rota.rs
//!   cases.rs           cases as the server sees them: metadata only, the append and erasure rules
//!   relocation.rs      the relocation lifecycle: stages, their stored numbers, legal moves
//! log/                 the sealed, hash-chained log, its keys and its storage engine
//!                      (append-only segment files; sled only for snapshots)
//!   fs.rs              the one seam for the log's file changes; FaultFs for tests
//! files.rs             private files and directories
//! logging.rs           the diagnostic output (stderr): filter, and no peer address at any level
//! ```
//!
//! Each layer uses only the layers below it (`tests/tests/layout.rs` in
//! the workspace checks that, and that no two modules import each other
//! in a circle). `main.rs` is a thin command line over
//! [`RunningServer`]; tests start the same server on `127.0.0.1:0`.

pub mod config;
pub mod domain;
pub mod endpoint;
mod files;
pub mod log;
pub mod logging;
pub mod requests;
pub mod store;

pub use config::Config;
pub use endpoint::{BoundSocket, DataDir, RunningServer, StartError};

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` (Unix time) as a UTC time a person reads and names sort by, for
/// the names of files and directories the server sets aside:
/// `20261130T193105Z`. Times outside what can be shown fall back to the
/// seconds themselves.
pub fn file_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || secs.to_string(),
            |t| t.strftime("%Y%m%dT%H%M%SZ").to_string(),
        )
}

/// [`file_time`] of now.
pub fn file_time_now() -> String {
    file_time(unix_now())
}

#[cfg(test)]
mod file_time_tests {
    #[test]
    fn names_read_as_utc_times_and_sort() {
        assert_eq!(super::file_time(0), "19700101T000000Z");
        assert_eq!(super::file_time(1_796_067_102), "20261130T193142Z");
        assert!(super::file_time(999_999_999) < super::file_time(1_000_000_000));
    }
}
