//! Connection limits that keep the duty team reachable: a flood of
//! unauthenticated connections from one address, one device opening many
//! connections, and defenders filling the server leave officers and
//! other defenders able to connect and be served.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline_client::connection::{self, Session};
use hotline_proto::alert::Priority;
use hotline_proto::{ALPN, ErrorCode, Role};
use hotline_server::Config;
use hotline_tests::{TestServer, refusal};

/// Small limits, so that a test reaches them: 10 authenticated places of
/// which 2 are staff's, 2 per device, 8 unauthenticated of which 3 per
/// address.
fn small_limits(c: &mut Config) {
    c.limits.max_connections = 10;
    c.limits.staff_reserved_connections = 2;
    c.limits.max_connections_per_device = 2;
    c.limits.max_unauthenticated = 8;
    c.limits.max_unauthenticated_per_address = 3;
}

/// Accepts any certificate: the flooding peer does not care whom it talks
/// to.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A QUIC client configuration speaking `hotline/1` that trusts any
/// certificate.
fn flood_client_config() -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
    quinn::ClientConfig::new(Arc::new(quic))
}

/// The flooding address: another loopback address than the one the
/// legitimate clients use (127.0.0.1).
const FLOODER: &str = "127.0.0.2:0";

/// Opens `n` connections from [`FLOODER`] that complete the QUIC and TLS
/// handshake and then never authenticate. Returns those the server let
/// in (the others are refused during the handshake).
async fn handshakes_that_never_authenticate(
    server: SocketAddr,
    n: usize,
) -> (quinn::Endpoint, Vec<quinn::Connection>) {
    let mut endpoint =
        quinn::Endpoint::client(FLOODER.parse().expect("addr")).expect("flooding socket");
    endpoint.set_default_client_config(flood_client_config());
    let attempts = (0..n).map(|_| {
        let connecting = endpoint.connect(server, "localhost").expect("connect");
        async move { tokio::time::timeout(Duration::from_secs(10), connecting).await }
    });
    let mut open = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        if let Ok(Ok(conn)) = attempt.await {
            open.push(conn);
        }
    }
    (endpoint, open)
}

/// Sends the first packet (a QUIC Initial) of `n` connections from
/// [`FLOODER`] and never answers what the server sends back: handshakes
/// that never finish. Returns the socket, to be kept open meanwhile.
fn handshakes_that_never_finish(server: SocketAddr, n: usize) -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind(FLOODER).expect("raw socket");
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    for _ in 0..n {
        let now = Instant::now();
        let (_, mut conn) = endpoint
            .connect(now, flood_client_config(), server, "localhost")
            .expect("connect");
        let mut buf = Vec::new();
        let transmit = conn
            .poll_transmit(now, 1, &mut buf)
            .expect("an Initial packet to send");
        socket
            .send_to(&buf[..transmit.size], transmit.destination)
            .expect("sent");
    }
    socket
}

/// An officer and a defender, each connected from 127.0.0.1, do what
/// their work needs: status, an alert raised and claimed.
async fn officer_and_defender_are_served(server: &TestServer) -> (Session, Session) {
    let (_, officer) = server.enroll(Role::Officer).await;
    let (_, defender) = server.enroll(Role::Defender).await;
    assert!(officer.status().await.is_ok(), "the officer is served");
    assert!(defender.status().await.is_ok(), "the defender is served");
    let alert = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("the SOS is raised");
    assert_eq!(
        officer.claim_alert(alert.id).await.expect("answered"),
        Ok(()),
        "the officer claims it"
    );
    (officer, defender)
}

/// (a) A pre-auth flood from one address, of handshakes that complete and
/// of handshakes that never finish, held open: an officer and a defender
/// still connect, raise and claim. The flood holds at most its address's
/// share, and its places come back when set-up times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_auth_flood_from_one_address_leaves_officers_and_defenders_served() {
    let server = TestServer::start_with(|c| {
        small_limits(c);
        c.limits.auth_timeout_secs = 20;
    })
    .await;
    let addr = server.server().local_addr();
    let _raw = handshakes_that_never_finish(addr, 20);
    let (flood_endpoint, flood) = handshakes_that_never_authenticate(addr, 30).await;
    assert!(
        flood.len() <= 3,
        "one address holds at most its share: {} let in",
        flood.len()
    );
    // More than the whole authenticated budget tried (30 > 10): under one
    // shared pool, this alone would have locked everyone out.
    let started = Instant::now();
    let (officer, defender) = officer_and_defender_are_served(&server).await;
    // The flood was held open all along.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "within the flood"
    );
    assert!(
        flood.iter().all(|c| c.close_reason().is_none()),
        "the flood is still open"
    );
    // Set-up times out: the flood's places are given back, and the server
    // tells it why.
    for conn in &flood {
        let closed = tokio::time::timeout(Duration::from_secs(30), conn.closed())
            .await
            .expect("closed at the set-up deadline");
        match closed {
            quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(
                c.error_code.into_inner(),
                u64::from(ErrorCode::AuthTimeout.to_u32())
            ),
            other => panic!("expected AUTH_TIMEOUT, got {other:?}"),
        }
    }
    let (_again, reopened) = handshakes_that_never_authenticate(addr, 1).await;
    assert_eq!(reopened.len(), 1, "the address's places came back");
    flood_endpoint.close(0u32.into(), b"");
    assert!(officer.status().await.is_ok());
    assert!(defender.status().await.is_ok());
}

/// The QUIC close code of a closed connection, if the server closed it
/// with one.
fn close_code(conn: &quinn::Connection) -> Option<u64> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

/// (b) One device opening more connections than its limit, and more than
/// the defenders' share of the server: it keeps at most its limit (its
/// oldest closed with SUPERSEDED), and an officer and another defender
/// connect and are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_opening_many_connections_keeps_its_limit_and_locks_no_one_out() {
    let server = TestServer::start_with(small_limits).await;
    let (identity, first) = server.enroll(Role::Defender).await;
    let mut sessions = vec![first];
    // 12 connections: over the device's 2 and the defenders' 8.
    for _ in 0..11 {
        let s = connection::authenticate(&server.info(), &identity)
            .await
            .expect("a device always gets in, in place of its oldest");
        sessions.push(s);
    }
    // Closes reach the clients a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = sessions
            .iter()
            .filter(|s| s.connection().close_reason().is_none())
            .count();
        if open <= 2 || Instant::now() > deadline {
            assert_eq!(open, 2, "the device holds its limit, no more");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let superseded = u64::from(ErrorCode::Superseded.to_u32());
    for s in &sessions[..10] {
        assert_eq!(
            close_code(s.connection()),
            Some(superseded),
            "the oldest are closed as superseded"
        );
    }
    // What a superseded client is told.
    let err = sessions[0].status().await.expect_err("closed");
    assert_eq!(refusal(&err), Some(ErrorCode::Superseded), "{err}");
    assert!(!err.is_transient(), "the client does not fight back");
    // The newest two still serve.
    for s in &sessions[10..] {
        assert!(s.status().await.is_ok());
    }
    officer_and_defender_are_served(&server).await;
}

/// (c) Defenders filling every place that is not reserved: further
/// defenders are turned away at set-up with UNAVAILABLE (a code the
/// client retries later), and officers still connect into the staff
/// reserve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staff_reserve_lets_officers_in_when_defenders_fill_the_rest() {
    let server = TestServer::start_with(|c| {
        c.limits.max_connections = 4;
        c.limits.staff_reserved_connections = 2;
        c.limits.max_connections_per_device = 1;
    })
    .await;
    // Enrolled beforehand, then gone: the devices that come back below.
    let mut enrolled = Vec::new();
    for role in [
        Role::Defender,
        Role::Defender,
        Role::Defender,
        Role::Defender,
        Role::Officer,
        Role::Officer,
    ] {
        let (identity, session) = server.enroll(role).await;
        session.close().await;
        enrolled.push(identity);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info = server.info();
    let connect = |i: usize| connection::authenticate(&info, &enrolled[i]);
    // Two defenders fill the places that are not reserved.
    let first = connect(0).await.expect("a place");
    let second = connect(1).await.expect("a place");
    for turned_away in [2, 3] {
        let err = connect(turned_away).await.expect_err("no place left");
        assert_eq!(refusal(&err), Some(ErrorCode::Unavailable), "{err}");
        assert!(err.is_transient(), "{err}");
    }
    // Officers use the reserve.
    let officer = connect(4).await.expect("the reserve");
    let second_officer = connect(5).await.expect("the reserve");
    assert!(officer.status().await.is_ok());
    assert!(second_officer.status().await.is_ok());
    // The defenders connected are served, and can page them.
    assert!(second.status().await.is_ok());
    let alert = first
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    assert_eq!(
        officer.claim_alert(alert.id).await.expect("answered"),
        Ok(())
    );
    // When a defender leaves, another gets its place.
    second.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let back = connect(2).await.expect("a place again");
    assert!(back.status().await.is_ok());
}

/// Refusals are logged, at any level, without the address they came from
/// or the device they concern: a flood of handshakes and one device's
/// superseded connections, logged at trace level, leave no trace of
/// 127.0.0.2 or of a client's port, and the refusal line is there.
#[tokio::test]
async fn refusals_are_logged_without_addresses_even_at_trace_level() {
    let logs = crate::messaging::Captured::default();
    let writer = logs.clone();
    let subscriber = hotline_server::logging::subscriber(
        tracing_subscriber::EnvFilter::new("trace"),
        move || writer.clone(),
        false,
    );
    // The test's runtime runs every server task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = TestServer::start_with(|c| {
        small_limits(c);
        c.limits.max_connections = 4;
        c.limits.staff_reserved_connections = 2;
        c.limits.max_connections_per_device = 1;
    })
    .await;
    let addr = server.server().local_addr();
    let raw = handshakes_that_never_finish(addr, 5);
    let (flood_endpoint, flood) = handshakes_that_never_authenticate(addr, 10).await;
    let mut ports = vec![
        raw.local_addr().expect("bound").port(),
        flood_endpoint.local_addr().expect("bound").port(),
    ];
    assert!(flood.len() <= 3);
    let (late, early) = server.enroll(Role::Defender).await;
    ports.push(early.local_addr().expect("bound").port());
    early.close().await;
    let (identity, first) = server.enroll(Role::Defender).await;
    let second = connection::authenticate(&server.info(), &identity)
        .await
        .expect("supersedes the first");
    let (_, other) = server.enroll(Role::Defender).await;
    for s in [&first, &second, &other] {
        ports.push(s.local_addr().expect("bound").port());
    }
    // The defenders' two places are taken.
    let err = connection::authenticate(&server.info(), &late)
        .await
        .expect_err("no place left");
    assert_eq!(refusal(&err), Some(ErrorCode::Unavailable), "{err}");
    let _ = first.status().await;
    flood_endpoint.close(0u32.into(), b"");
    server.stop().await;

    let logs = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    for line in [
        "connections refused during the handshake",
        "oldest connection of the device superseded",
        "authenticated connection refused",
    ] {
        assert!(logs.contains(line), "the logs lack {line:?}:\n{logs}");
    }
    let server_port = addr.port();
    for line in logs.lines() {
        assert!(!line.contains("127.0.0.2"), "the flood's address: {line}");
        if line.contains("listening") && line.contains(&format!("127.0.0.1:{server_port}")) {
            continue;
        }
        assert!(!line.contains("127.0.0.1"), "a client's IP: {line}");
        for port in &ports {
            let port = format!(":{port}");
            let named = line
                .match_indices(&port)
                .any(|(i, _)| !line[i + port.len()..].starts_with(|c: char| c.is_ascii_digit()));
            assert!(!named, "a client's port {port}: {line}");
        }
    }
}
