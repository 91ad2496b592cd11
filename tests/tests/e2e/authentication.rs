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
