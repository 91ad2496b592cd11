//! Helpers for the end-to-end tests: a real server on `127.0.0.1:0` over a
//! temporary data directory, and real clients.
//!
//! Nothing here stands in for a component: the server is the same
//! [`RunningServer`] that `hotline-server serve` runs, and clients speak
//! real QUIC and TLS to it.

use std::time::Duration;

use hotline_client::connection::{ServerInfo, Session};
use hotline_client::{ClientError, connection};
use hotline_proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN};
use hotline_proto::message::Response;
use hotline_proto::{IdentityKeyPair, Invite, Role};
use hotline_server::log::keys::{KeySource, generate_key_file};
use hotline_server::{Config, RunningServer};
use tempfile::TempDir;

/// A server running on loopback over its own temporary data directory.
#[derive(Debug)]
pub struct TestServer {
    server: Option<RunningServer>,
    config: Config,
    key: KeySource,
    /// Kept so the directory lives as long as the server.
    pub dir: TempDir,
}

/// Sends test logs to the test harness's captured output, through the
/// server's own set-up (no peer address at any level).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::new(
        std::env::var("RUST_LOG").unwrap_or_else(|_| "hotline_server=debug".into()),
    );
    let _ =
        tracing_subscriber::util::SubscriberInitExt::try_init(hotline_server::logging::subscriber(
            filter,
            tracing_subscriber::fmt::TestWriter::new(),
            false,
        ));
}

impl TestServer {
    /// Starts a server with default limits.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after letting `adjust` change its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        init_logs();
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.limits.store_cache_bytes = 4 * 1024 * 1024;
        adjust(&mut config);
        // The master key lives outside the data directory, as in production.
        let key_path = dir.path().join("master.key");
        generate_key_file(&key_path).expect("key file");
        let key = KeySource::File(key_path);
        let server = RunningServer::start(config.clone(), &key)
            .await
            .expect("server starts");
        TestServer {
            server: Some(server),
            config,
            key,
            dir,
        }
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The master key source.
    pub fn key(&self) -> &KeySource {
        &self.key
    }

    /// Stops the server (committing and closing its store). The port is
    /// kept for [`TestServer::start_again`].
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            self.config.listen = s.local_addr();
            s.shutdown().await;
        }
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// What a client needs to reach this server.
    pub fn info(&self) -> ServerInfo {
        ServerInfo {
            addr: self.server().local_addr().to_string(),
            name: self.config.server_name.clone(),
            pin: self.server().cert_pin(),
        }
    }

    /// A one-time invite made on the server side, valid for an hour.
    pub async fn invite(&self, role: Role) -> Invite {
        self.server()
            .create_invite(role, 3600)
            .await
            .expect("invite")
    }

    /// A new device of `role`, enrolled and connected.
    pub async fn enroll(&self, role: Role) -> (IdentityKeyPair, Session) {
        let invite = self.invite(role).await;
        let (identity, _seed) = IdentityKeyPair::generate().expect("randomness");
        let session = connection::enroll(&invite, &identity)
            .await
            .expect("enrollment succeeds");
        (identity, session)
    }

    /// Stops the server and starts it again on the same data directory
    /// (and the same port, so invites and profiles stay valid).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Stops the server, changes its configuration, and starts it again.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        self.stop().await;
        adjust(&mut self.config);
        self.start_again().await;
    }

    /// Starts the server again after [`TestServer::stop`], on the same data
    /// directory and port.
    pub async fn start_again(&mut self) {
        assert!(self.server.is_none(), "server is already running");
        // The port was just released; retry briefly in case the OS lags.
        for _ in 0..50 {
            match RunningServer::start(self.config.clone(), &self.key).await {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("server did not restart");
    }
}

/// Writes `bytes` as they are on a new stream of `conn`, finishes it and
/// reads the whole answer (at most one maximal frame).
pub async fn raw_exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    // The server may stop reading early (an oversized header); that is not
    // the answer we test, so write errors are ignored.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    tokio::time::timeout(
        Duration::from_secs(10),
        recv.read_to_end(HEADER_LEN + MAX_FRAME_LEN),
    )
    .await
    .map_err(|_| "no answer".to_owned())?
    .map_err(|e| e.to_string())
}

/// Decodes a framed [`Response`].
pub fn decode_response(bytes: &[u8]) -> Response {
    let payload = frame::decode_exact(bytes, MAX_FRAME_LEN).expect("one frame");
    Response::decode(payload).expect("a valid response")
}

/// The server's error code in a client error, for assertions.
pub fn refusal(e: &ClientError) -> Option<hotline_proto::ErrorCode> {
    e.code()
}
