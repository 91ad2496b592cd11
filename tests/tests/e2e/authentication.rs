//! Authentication on every connection: nonce, channel binding, signature.

use std::time::Duration;

use hotline_client::connection::{self, ServerInfo};
use hotline_client::{ClientError, Session};
use hotline_proto::auth::{self, ChannelBinding, Nonce};
use hotline_proto::frame;
use hotline_proto::message::{Request, SetupRequest, decode_setup_response};
use hotline_proto::{ALPN, DeviceId, ErrorCode, IdentityKeyPair, Role, Signature};
use hotline_tests::{TestServer, raw_exchange, refusal};

#[tokio::test]
async fn status_authenticates_and_reports_role() {
    let server = TestServer::start().await;
    let (identity, _) = server.enroll(Role::Coordinator).await;
    let session = connection::authenticate(&server.info(), &identity)
        .await
        .expect("authenticates");
    let status = session.status().await.expect("status");
    assert_eq!(status.device_id, identity.device_id());
    assert_eq!(status.role, Role::Coordinator);
    assert_eq!(status.server_version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn an_unknown_device_is_refused() {
    let server = TestServer::start().await;
    let (stranger, _) = IdentityKeyPair::generate().expect("randomness");
    let err = connection::authenticate(&server.info(), &stranger)
        .await
        .expect_err("refused");
    assert_eq!(refusal(&err), Some(ErrorCode::UnknownDevice));
}

/// Connects, and authenticates as `device_id` with whatever signature
/// `sign` makes from this connection's nonce and channel binding.
async fn auth_with(
    server: &TestServer,
    device_id: DeviceId,
    sign: impl FnOnce(&Nonce, &ChannelBinding) -> Signature,
) -> Result<Session, ClientError> {
    let conn = connection::connect_with_alpn(&server.info(), ALPN)
        .await
        .expect("connects");
    let (nonce, binding) = connection::challenge(&conn).await.expect("challenge");
    let signature = sign(&nonce, &binding);
    connection::setup(
        conn,
        &SetupRequest::Auth {
            device_id,
            signature,
        },
    )
    .await
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    let server = TestServer::start().await;
    let (victim, _) = server.enroll(Role::Officer).await;
    let (attacker, _) = IdentityKeyPair::generate().expect("randomness");
    // Claim the victim's id, sign with the attacker's key.
    let id = victim.device_id();
    let err = auth_with(&server, id, |n, b| {
        attacker.sign(&auth::device_auth_transcript(n, b, &id))
    })
    .await
    .expect_err("refused");
    assert_eq!(refusal(&err), Some(ErrorCode::BadSignature));
}

#[tokio::test]
async fn a_signature_for_another_connection_is_refused() {
    let server = TestServer::start().await;
    let (device, _) = server.enroll(Role::Officer).await;
    let id = device.device_id();

    // The right key, but over a transcript with another channel binding
    // (what a relaying attacker would have to present).
    let err = auth_with(&server, id, |n, _| {
        device.sign(&auth::device_auth_transcript(
            n,
            &ChannelBinding([0; 32]),
            &id,
        ))
    })
    .await
    .expect_err("refused");
    assert_eq!(refusal(&err), Some(ErrorCode::BadSignature));

    // And with a nonce other than this connection's.
    let err = auth_with(&server, id, |_, b| {
        device.sign(&auth::device_auth_transcript(&Nonce([7; 32]), b, &id))
    })
    .await
    .expect_err("refused");
    assert_eq!(refusal(&err), Some(ErrorCode::BadSignature));

    // The honest signature over the same connection's values works.
    let session = auth_with(&server, id, |n, b| {
        device.sign(&auth::device_auth_transcript(n, b, &id))
    })
    .await
    .expect("authenticates");
    assert_eq!(session.device_id(), id);
}

#[tokio::test]
async fn a_revoked_device_is_cut_off_and_refused() {
    let server = TestServer::start().await;
    let (_, admin) = server.enroll(Role::Admin).await;
    let (lost_phone, session) = server.enroll(Role::Officer).await;
    assert!(session.status().await.is_ok());

    admin.revoke(lost_phone.device_id()).await.expect("revoked");

    // The open connection is closed by the server...
    let closed = tokio::time::timeout(Duration::from_secs(5), session.connection().closed())
        .await
        .expect("connection closed promptly");
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c)
        if c.error_code.into_inner() == u64::from(ErrorCode::DeviceRevoked.to_u32()))
    );
    // ...and a new one is refused.
    let err = connection::authenticate(&server.info(), &lost_phone)
        .await
        .expect_err("refused");
    assert_eq!(refusal(&err), Some(ErrorCode::DeviceRevoked));
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[tokio::test]
async fn nothing_is_reachable_before_authentication() {
    let server = TestServer::start().await;
    let conn = connection::connect_with_alpn(&server.info(), ALPN)
        .await
        .expect("connects");
    // A request where the set-up message belongs.
    let bytes = frame::encode(&Request::ListDevices.encode()).expect("frame");
    let answer = raw_exchange(&conn, &bytes).await.expect("an answer");
    let payload = frame::decode_exact(&answer, frame::MAX_SETUP_FRAME_LEN).expect("one frame");
    let err = decode_setup_response(payload)
        .expect("decodes")
        .expect_err("refused");
    assert_eq!(err.code, ErrorCode::Malformed);
    // And the connection is closed.
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed");
    assert!(matches!(
        closed,
        quinn::ConnectionError::ApplicationClosed(_)
    ));
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_auth_timeout() {
    let server = TestServer::start_with(|c| c.limits.auth_timeout_secs = 1).await;
    let conn = connection::connect_with_alpn(&server.info(), ALPN)
        .await
        .expect("connects");
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("closed");
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(ref c)
        if c.error_code.into_inner() == u64::from(ErrorCode::AuthTimeout.to_u32()))
    );
}

#[tokio::test]
async fn a_client_refuses_a_server_whose_certificate_does_not_match_the_pin() {
    let server = TestServer::start().await;
    let (identity, _) = server.enroll(Role::Defender).await;
    // Another server, with its own certificate, at the address the client trusts.
    let impostor = TestServer::start().await;
    let info = ServerInfo {
        addr: impostor.info().addr,
        ..server.info()
    };
    let err = connection::authenticate(&info, &identity)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, hotline_client::ClientError::PinMismatch),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not match"), "{err}");
    // The real server is still fine.
    assert!(
        connection::authenticate(&server.info(), &identity)
            .await
            .is_ok()
    );
}

/// Keeps the `EXPORTER_SECRET` a TLS stack logs for a connection.
#[derive(Debug, Default)]
struct ExporterSecret(std::sync::Mutex<Option<Vec<u8>>>);

impl rustls::KeyLog for ExporterSecret {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "EXPORTER_SECRET" {
            *self.0.lock().expect("lock") = Some(secret.to_vec());
        }
    }
    fn will_log(&self, label: &str) -> bool {
        label == "EXPORTER_SECRET"
    }
}

/// Accepts whatever certificate (this test checks the exporter, not the
/// pin), still checking the handshake signatures.
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

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
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The published channel-binding computation (docs/test-vectors/
/// channel-binding.txt: exporter secret in, binding out) is what a real
/// TLS stack exports on a real connection to the server, for each suite
/// the server may negotiate: an implementation in another QUIC stack can
/// trust the vector.
#[tokio::test]
async fn the_channel_binding_vector_matches_a_real_tls_exporter() {
    use std::sync::Arc;
    let server = TestServer::start().await;
    let all = rustls::crypto::ring::default_provider().cipher_suites;
    // QUIC's initial packets need TLS_AES_128_GCM_SHA256: each suite is
    // offered first, with that one after it.
    let initial = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let mut hashes = std::collections::BTreeSet::new();
    for suite in all {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![suite, initial];
        provider.cipher_suites.dedup_by_key(|s| s.suite());
        let algorithms = provider.signature_verification_algorithms;
        let log = Arc::new(ExporterSecret::default());
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms)))
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.key_log = log.clone();
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let conn = endpoint
            .connect(server.info().addr.parse().expect("addr"), "localhost")
            .expect("connect")
            .await
            .expect("handshake");
        let mut exported = [0u8; auth::CHANNEL_BINDING_LEN];
        conn.export_keying_material(&mut exported, auth::EXPORTER_LABEL, auth::EXPORTER_CONTEXT)
            .expect("exported");
        let secret = log
            .0
            .lock()
            .expect("lock")
            .clone()
            .expect("the secret was logged");
        hashes.insert(secret.len());
        let hash = match secret.len() {
            32 => auth::SuiteHash::Sha256,
            48 => auth::SuiteHash::Sha384,
            n => panic!("an exporter secret of {n} bytes"),
        };
        assert_eq!(
            auth::channel_binding_from_exporter_secret(hash, &secret),
            ChannelBinding(exported),
            "suite {:?}",
            suite.suite()
        );
        conn.close(0u32.into(), b"");
    }
    assert_eq!(
        hashes.into_iter().collect::<Vec<_>>(),
        vec![32, 48],
        "both hashes a suite may have were exercised"
    );
}
