//! Enrollment with one-time, expiring invites.

use hotline_client::connection;
use hotline_proto::{ErrorCode, IdentityKeyPair, InviteToken, Role};
use hotline_tests::{TestServer, refusal};

#[tokio::test]
async fn an_invite_enrolls_one_device_and_then_never_again() {
    let server = TestServer::start().await;
    let invite = server.invite(Role::Officer).await;

    let (first, _) = IdentityKeyPair::generate().expect("randomness");
    let session = connection::enroll(&invite, &first)
        .await
        .expect("first use enrolls");
    assert_eq!(session.role(), Role::Officer);
    assert_eq!(session.device_id(), first.device_id());

    let (second, _) = IdentityKeyPair::generate().expect("randomness");
    let err = connection::enroll(&invite, &second)
        .await
        .expect_err("second use is refused");
    assert_eq!(refusal(&err), Some(ErrorCode::InviteUsed));
    assert!(err.to_string().contains("already been used"), "{err}");

    // The refused device was not registered.
    let unknown = connection::authenticate(&server.info(), &second)
        .await
        .expect_err("not enrolled");
    assert_eq!(refusal(&unknown), Some(ErrorCode::UnknownDevice));
    // The enrolled one still works.
    let again = connection::authenticate(&server.info(), &first)
        .await
        .expect("authenticates");
    assert_eq!(again.status().await.expect("status").role, Role::Officer);
}

#[tokio::test]
async fn an_expired_invite_is_refused_and_spends_nothing() {
    let server = TestServer::start().await;
    let invite = server
        .server()
        .create_invite(Role::Defender, 1)
        .await
        .expect("invite");
    // Wait until the server's clock has passed the expiry.
    while hotline_server::unix_now() < invite.expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (device, _) = IdentityKeyPair::generate().expect("randomness");
    let err = connection::enroll(&invite, &device)
        .await
        .expect_err("expired");
    assert_eq!(refusal(&err), Some(ErrorCode::InviteExpired));
    assert!(err.to_string().contains("expired"), "{err}");
    let unknown = connection::authenticate(&server.info(), &device)
        .await
        .expect_err("not enrolled");
    assert_eq!(refusal(&unknown), Some(ErrorCode::UnknownDevice));
}

#[tokio::test]
async fn a_forged_invite_token_is_refused() {
    let server = TestServer::start().await;
    let mut invite = server.invite(Role::Admin).await;
    invite.token = InviteToken::random().expect("randomness");
    let (device, _) = IdentityKeyPair::generate().expect("randomness");
    let err = connection::enroll(&invite, &device)
        .await
        .expect_err("unknown token");
    assert_eq!(refusal(&err), Some(ErrorCode::InviteUnknown));
}

#[tokio::test]
async fn an_enrolled_key_cannot_enroll_twice() {
    let server = TestServer::start().await;
    let (identity, _) = server.enroll(Role::Defender).await;
    let invite = server.invite(Role::Admin).await;
    let err = connection::enroll(&invite, &identity)
        .await
        .expect_err("already enrolled");
    assert_eq!(refusal(&err), Some(ErrorCode::AlreadyEnrolled));
    // The admin invite was not spent by the refused attempt.
    let (other, _) = IdentityKeyPair::generate().expect("randomness");
    let admin = connection::enroll(&invite, &other)
        .await
        .expect("invite still valid");
    assert_eq!(admin.role(), Role::Admin);
}

#[tokio::test]
async fn devices_and_invites_survive_a_restart() {
    let mut server = TestServer::start().await;
    let (admin, _) = server.enroll(Role::Admin).await;
    let pending = server.invite(Role::Coordinator).await;
    server.restart().await;

    let session = connection::authenticate(&server.info(), &admin)
        .await
        .expect("admin still enrolled");
    assert_eq!(session.role(), Role::Admin);
    let (coordinator, _) = IdentityKeyPair::generate().expect("randomness");
    let c = connection::enroll(&pending, &coordinator)
        .await
        .expect("pending invite still valid");
    assert_eq!(c.role(), Role::Coordinator);
    assert_eq!(session.devices().await.expect("list").len(), 2);
}

/// Every start with no admin prints an admin invite. Only the newest one
/// enrolls: a banner left in an old terminal or log cannot make a second
/// admin, across a restart too, and the person holding it is told why.
#[tokio::test]
async fn a_new_bootstrap_admin_invite_replaces_the_one_before() {
    let mut server = TestServer::start().await;
    let first = server
        .server()
        .create_bootstrap_invite(3600)
        .await
        .expect("first banner");
    server.restart().await;
    let second = server
        .server()
        .create_bootstrap_invite(3600)
        .await
        .expect("second banner");
    // An admin invite an admin makes is not a bootstrap invite: it stays.
    let made_by_admin = server.invite(Role::Admin).await;

    let (old, _) = IdentityKeyPair::generate().expect("randomness");
    let err = connection::enroll(&first, &old)
        .await
        .expect_err("the replaced banner is refused");
    assert_eq!(refusal(&err), Some(ErrorCode::InviteUsed));
    assert!(err.to_string().contains("replaced by a newer one"), "{err}");

    let (new, _) = IdentityKeyPair::generate().expect("randomness");
    let session = connection::enroll(&second, &new)
        .await
        .expect("the newest banner enrolls");
    assert_eq!(session.role(), Role::Admin);
    let (other, _) = IdentityKeyPair::generate().expect("randomness");
    connection::enroll(&made_by_admin, &other)
        .await
        .expect("an admin's own invite is unaffected");
}

/// An admin learns which invite each device spent (the digest of its
/// token, which the inviting client keeps with the label it gave), across
/// a restart, and the server never logs it, at the most verbose level.
#[tokio::test]
async fn the_device_list_names_the_invite_each_device_spent_and_the_logs_never_do() {
    let logs = crate::messaging::Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime runs every server task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = TestServer::start().await;
    let (admin, _) = server.enroll(Role::Admin).await;
    let invite = server.invite(Role::Officer).await;
    let digest = invite.token.digest();
    let (officer, _) = IdentityKeyPair::generate().expect("randomness");
    connection::enroll(&invite, &officer)
        .await
        .expect("enrolls");
    server.restart().await;
    let session = connection::authenticate(&server.info(), &admin)
        .await
        .expect("admin");
    let listed = session.devices().await.expect("list");
    let officer = listed
        .iter()
        .find(|d| d.device_id == officer.device_id())
        .expect("listed");
    assert_eq!(officer.invite_digest, Some(digest));
    assert!(
        listed.iter().all(|d| d.invite_digest.is_some()),
        "the admin's too"
    );
    session.close().await;
    server.stop().await;

    let logs = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(logs.contains("device enrolled"), "the capture works");
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let upper = hex.to_uppercase();
    assert!(
        !logs.contains(&hex) && !logs.contains(&upper),
        "the logs hold the digest"
    );
    assert!(
        !logs.contains(&format!("{:?}", &digest[..8])),
        "the logs hold the digest"
    );
}
