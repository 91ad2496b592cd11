//! The server's diagnostic output: the lines it prints on standard error
//! (not the sealed event log, which is `log/`). One set-up, used by the
//! `hotline-server` binary and by the tests that start a server.
//!
//! Logs never carry a client's address, at any level. The transport
//! libraries print peer addresses in lines of their own (quinn-proto at
//! trace and debug level, quinn-udp in a warning about a failed send), so
//! whatever the filter asks for:
//!
//! * a line from the server's own crates (targets `hotline_*`) follows the
//!   filter (`RUST_LOG`); none of them carries an address but the
//!   server's own listening one;
//! * a line from any other crate passes only at `ERROR` level (their error
//!   lines name no address), and quinn-udp's never (its warning names the
//!   destination of a failed send). Spans of other crates are dropped the
//!   same way, so their fields never appear in the context of a line.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};

/// The filter when `RUST_LOG` is unset: the server's lines at `info`.
pub const DEFAULT_FILTER: &str = "info";

/// Whether a line or span from `metadata` may be printed, whatever the
/// filter asks for: the server's own always, another crate's only at
/// `ERROR` level, quinn-udp's never.
pub fn may_print(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    if target.starts_with("hotline") {
        return true;
    }
    if target == "quinn_udp" || target.starts_with("quinn_udp::") {
        return false;
    }
    *metadata.level() == Level::ERROR
}

/// The filter from `RUST_LOG`, or [`DEFAULT_FILTER`] when it is unset or
/// does not parse.
pub fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// A subscriber that prints what `filter` selects and [`may_print`]
/// allows to `writer` (with colours if `ansi`).
pub fn subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .with_filter(filter.and(filter_fn(may_print))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn other_crates_pass_only_errors_and_quinn_udp_nothing_even_at_trace() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = subscriber(EnvFilter::new("trace"), move || writer.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "hotline_server::endpoint", "own trace line");
            tracing::debug!(target: "quinn_proto::connection", "peer 192.0.2.7:4242 debug");
            tracing::warn!(target: "quinn_proto::connection", "peer 192.0.2.7:4242 warn");
            tracing::error!(target: "quinn_proto::connection", "a quinn error");
            tracing::warn!(target: "quinn_udp", "sendmsg error destination 192.0.2.7:4242");
            tracing::error!(target: "quinn_udp", "destination 192.0.2.7:4242");
            let span = tracing::info_span!(target: "quinn", "drive", remote = "192.0.2.7:4242");
            let _entered = span.enter();
            tracing::info!(target: "hotline_server", "own line inside a quinn span");
        });
        let out = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(out.contains("own trace line"), "{out}");
        assert!(out.contains("a quinn error"), "{out}");
        assert!(out.contains("own line inside a quinn span"), "{out}");
        assert!(!out.contains("192.0.2.7"), "{out}");
        assert!(!out.contains("drive"), "{out}");
    }
}
