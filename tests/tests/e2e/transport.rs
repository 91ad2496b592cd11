//! The transport's defences: ALPN, frame limits, garbage, stream limits.

use std::time::Duration;

use hotline_client::ClientError;
use hotline_client::connection;
use hotline_proto::frame::{self, MAX_FRAME_LEN, MAX_SETUP_FRAME_LEN};
use hotline_proto::message::{Request, Response, decode_setup_response};
use hotline_proto::{ALPN, ErrorCode, Role};
use hotline_tests::{TestServer, decode_response, raw_exchange};

#[tokio::test]
async fn a_connection_with_another_alpn_is_refused() {
    let server = TestServer::start().await;
    let err = connection::connect_with_alpn(&server.info(), b"h3")
        .await
        .expect_err("refused during the handshake");
    // rustls answers with the no_application_protocol alert.
    assert!(matches!(err, ClientError::IncompatibleServer), "{err:?}");
    // The server goes on serving.
    let (_, session) = server.enroll(Role::Defender).await;
    assert!(session.status().await.is_ok());
}

#[tokio::test]
async fn an_oversized_frame_gets_an_error_and_a_closed_stream_and_nothing_else_breaks() {
    let server = TestServer::start().await;
    let (_, bystander) = server.enroll(Role::Officer).await;
    let (_, session) = server.enroll(Role::Defender).await;

    // A header announcing one byte more than the limit, and a little data.
    let announced = u32::try_from(MAX_FRAME_LEN + 1).expect("fits");
    let mut bytes = announced.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 100]);
    let answer = raw_exchange(session.connection(), &bytes)
        .await
        .expect("an answer, then end of stream");
    match decode_response(&answer) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::FrameTooLarge),
        other => panic!("expected an error, got {other:?}"),
    }
    // A header announcing 4 GiB: refused from the header alone.
    let answer = raw_exchange(session.connection(), &[0xff; 4])
        .await
        .expect("answer");
    assert!(
        matches!(decode_response(&answer), Response::Error(e) if e.code == ErrorCode::FrameTooLarge)
    );

    // The same connection still serves, and so does everyone else.
    assert!(session.status().await.is_ok());
    assert!(bystander.status().await.is_ok());
}

#[tokio::test]
async fn a_garbage_frame_gets_an_error_and_a_closed_stream_and_nothing_else_breaks() {
    let server = TestServer::start().await;
    let (_, bystander) = server.enroll(Role::Officer).await;
    let (_, session) = server.enroll(Role::Defender).await;

    let garbage: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(7919) % 251) as u8 | 0x80)
        .collect();
    let cases: Vec<Vec<u8>> = vec![
        frame::encode(&garbage).expect("frame"), // well framed, not protobuf
        garbage.clone(),                         // not even framed: a huge length
        vec![0, 0, 0, 10, 1, 2],                 // truncated
        {
            let mut b = frame::encode(&Request::Status.encode()).expect("frame");
            b.push(0); // trailing byte after the frame
            b
        },
        frame::encode(&[]).expect("frame"), // empty message: no request kind
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let answer = raw_exchange(session.connection(), bytes)
            .await
            .expect("an answer");
        match decode_response(&answer) {
            Response::Error(e) => assert!(
                matches!(e.code, ErrorCode::Malformed | ErrorCode::FrameTooLarge),
                "case {i}: {e}"
            ),
            other => panic!("case {i}: expected an error, got {other:?}"),
        }
    }
    assert!(session.status().await.is_ok());
    assert!(bystander.status().await.is_ok());
}

#[tokio::test]
async fn an_oversized_set_up_frame_closes_the_unauthenticated_connection() {
    let server = TestServer::start().await;
    let conn = connection::connect_with_alpn(&server.info(), ALPN)
        .await
        .expect("connects");
    let announced = u32::try_from(MAX_SETUP_FRAME_LEN + 1).expect("fits");
    let answer = raw_exchange(&conn, &announced.to_be_bytes())
        .await
        .expect("answer");
    let payload = frame::decode_exact(&answer, MAX_SETUP_FRAME_LEN).expect("one frame");
    let err = decode_setup_response(payload)
        .expect("decodes")
        .expect_err("refused");
    assert_eq!(err.code, ErrorCode::FrameTooLarge);
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed");
    assert!(matches!(
        closed,
        quinn::ConnectionError::ApplicationClosed(_)
    ));
    // Others are unaffected.
    let (_, session) = server.enroll(Role::Defender).await;
    assert!(session.status().await.is_ok());
}

#[tokio::test]
async fn a_burst_of_requests_beyond_the_limit_is_slowed_not_dropped() {
    let server = TestServer::start_with(|c| {
        c.limits.request_burst = 5;
        c.limits.requests_per_second = 1;
    })
    .await;
    let (_, session) = server.enroll(Role::Defender).await;
    let mut limited = 0;
    for _ in 0..10 {
        match session.request(&Request::Status).await.expect("an answer") {
            Response::Status(_) => {}
            Response::Error(e) if e.code == ErrorCode::RateLimited => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited >= 4, "only {limited} of 10 requests were limited");
    // The connection survives and recovers after a pause.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(session.status().await.is_ok());
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such() {
    // A UDP socket that swallows everything: no QUIC answer ever comes.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let info = hotline_client::ServerInfo {
        addr: silent.local_addr().expect("addr").to_string(),
        name: "localhost".into(),
        pin: hotline_proto::CertPin::from_bytes([0; 32]),
    };
    let err = connection::connect_with_alpn(&info, ALPN)
        .await
        .expect_err("no server");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot reach the server"), "{err}");

    let info = hotline_client::ServerInfo {
        addr: "no-such-host.invalid:4433".into(),
        ..info
    };
    let err = connection::connect_with_alpn(&info, ALPN)
        .await
        .expect_err("no such host");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_session_survives_a_change_of_network_address() {
    let server = TestServer::start().await;
    let (_, session) = server.enroll(Role::Defender).await;
    let before = session.local_addr().expect("bound");
    assert!(session.status().await.is_ok());
    // The phone moves from Wi-Fi to mobile data: a new local socket.
    session.rebind().expect("rebinds");
    let after = session.local_addr().expect("bound");
    assert_ne!(before.port(), after.port(), "a different socket");
    // The same session, no new handshake, keeps working.
    for _ in 0..3 {
        assert!(session.status().await.is_ok());
    }
    assert!(session.connection().close_reason().is_none());
}

#[tokio::test]
async fn an_envelope_too_large_to_store_is_refused_clearly() {
    let server = TestServer::start().await;
    let (identity, session) = server.enroll(Role::Defender).await;
    // Within the frame limit, beyond what the server stores.
    let envelope = hotline_proto::e2e::envelope::SignedEnvelope {
        sender: identity.device_id(),
        body: vec![0u8; 120 * 1024],
        signature: identity.sign(b"not over this body"),
    };
    match session
        .request(&Request::SendEnvelope(envelope))
        .await
        .expect("answer")
    {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.detail.contains("too large"), "{}", e.detail);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(session.status().await.is_ok());
}

/// Logs never carry a client's address, at any level: connections that
/// are refused, enrol, authenticate, send garbage and move to another
/// network, all logged at trace level, and not one line names a client's
/// IP or port. The server's own lines are still there.
#[tokio::test]
async fn no_client_address_reaches_the_logs_even_at_trace_level() {
    let logs = crate::messaging::Captured::default();
    let writer = logs.clone();
    let subscriber = hotline_server::logging::subscriber(
        tracing_subscriber::EnvFilter::new("trace"),
        move || writer.clone(),
        false,
    );
    // The test's runtime runs every server task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = TestServer::start().await;
    let server_port = server.server().local_addr().port();
    let mut clients = Vec::new();
    // Refused during the handshake.
    let _ = connection::connect_with_alpn(&server.info(), b"h3").await;
    let (_, defender) = server.enroll(Role::Defender).await;
    let (_, officer) = server.enroll(Role::Officer).await;
    for session in [&defender, &officer] {
        clients.push(session.local_addr().expect("bound"));
        assert!(session.status().await.is_ok());
    }
    // Garbage, then a move to another network (connection migration).
    let _ = raw_exchange(defender.connection(), &[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
    defender.rebind().expect("rebinds");
    clients.push(defender.local_addr().expect("bound"));
    for _ in 0..3 {
        assert!(defender.status().await.is_ok());
    }
    defender.close().await;
    officer.close().await;
    server.stop().await;

    let logs = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    // The server's own lines, from info to debug, are kept.
    for line in [
        "listening",
        "device authenticated",
        "connected",
        "undecodable request",
    ] {
        assert!(logs.contains(line), "the logs lack {line:?}:\n{logs}");
    }
    for line in logs.lines() {
        // The one address the server prints is its own, once, at start.
        if line.contains("listening") && line.contains(&format!("127.0.0.1:{server_port}")) {
            continue;
        }
        assert!(!line.contains("127.0.0.1"), "a client's IP: {line}");
        for client in &clients {
            let port = format!(":{}", client.port());
            let named = line
                .match_indices(&port)
                .any(|(i, _)| !line[i + port.len()..].starts_with(|c: char| c.is_ascii_digit()));
            assert!(!named, "a client's port {}: {line}", client.port());
        }
    }
}
