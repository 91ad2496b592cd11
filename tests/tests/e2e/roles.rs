//! Who may do what.

use hotline_proto::{ErrorCode, IdentityKeyPair, Role};
use hotline_tests::{TestServer, refusal};

#[tokio::test]
async fn a_defender_cannot_perform_admin_actions() {
    let server = TestServer::start().await;
    let (admin_id, admin) = server.enroll(Role::Admin).await;
    let (_, defender) = server.enroll(Role::Defender).await;
    let before = admin.devices().await.expect("list");

    let err = defender.devices().await.expect_err("forbidden");
    assert_eq!(refusal(&err), Some(ErrorCode::Forbidden));
    let err = defender
        .revoke(admin_id.device_id())
        .await
        .expect_err("forbidden");
    assert_eq!(refusal(&err), Some(ErrorCode::Forbidden));
    for role in Role::ALL {
        let err = defender
            .create_invite(role, 3600)
            .await
            .expect_err("forbidden");
        assert_eq!(
            refusal(&err),
            Some(ErrorCode::Forbidden),
            "inviting a {role}"
        );
    }

    // Nothing changed: same devices, none revoked, the admin still works.
    let after = admin.devices().await.expect("list");
    assert_eq!(before, after);
    assert!(after.iter().all(|d| d.revoked_at.is_none()));
    assert!(admin.status().await.is_ok());
}

#[tokio::test]
async fn duty_staff_may_invite_defenders_only() {
    let server = TestServer::start().await;
    for staff in [Role::Officer, Role::Coordinator] {
        let (_, session) = server.enroll(staff).await;
        let invite = session
            .create_invite(Role::Defender, 600)
            .await
            .expect("may invite a defender");
        assert_eq!(invite.role, Role::Defender);
        assert_eq!(invite.cert_pin, server.server().cert_pin());
        let (device, _) = IdentityKeyPair::generate().expect("randomness");
        let defender = hotline_client::connection::enroll(&invite, &device)
            .await
            .expect("enrolls");
        assert_eq!(defender.role(), Role::Defender);
        for role in [Role::Officer, Role::Coordinator, Role::Admin] {
            let err = session
                .create_invite(role, 600)
                .await
                .expect_err("forbidden");
            assert_eq!(refusal(&err), Some(ErrorCode::Forbidden));
        }
        let err = session.devices().await.expect_err("forbidden");
        assert_eq!(refusal(&err), Some(ErrorCode::Forbidden));
    }
}

#[tokio::test]
async fn admins_list_and_revoke_but_never_the_last_admin() {
    let server = TestServer::start().await;
    let (first_id, first) = server.enroll(Role::Admin).await;
    let (officer_id, _) = server.enroll(Role::Officer).await;

    let listed = first.devices().await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .any(|d| d.device_id == officer_id.device_id() && d.role == Role::Officer)
    );

    let err = first
        .revoke(first_id.device_id())
        .await
        .expect_err("last admin");
    assert_eq!(refusal(&err), Some(ErrorCode::FailedPrecondition));
    let (unknown, _) = IdentityKeyPair::generate().expect("randomness");
    let err = first
        .revoke(unknown.device_id())
        .await
        .expect_err("unknown device");
    assert_eq!(refusal(&err), Some(ErrorCode::NotFound));

    let revoked_at = first.revoke(officer_id.device_id()).await.expect("revoked");
    let listed = first.devices().await.expect("list");
    let officer = listed
        .iter()
        .find(|d| d.device_id == officer_id.device_id())
        .expect("still listed");
    assert_eq!(officer.revoked_at, Some(revoked_at));
    // Revoking again is harmless and reports the original time.
    assert_eq!(
        first
            .revoke(officer_id.device_id())
            .await
            .expect("idempotent"),
        revoked_at
    );
}
