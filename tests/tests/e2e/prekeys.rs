//! Prekeys cannot be drained: a requester gets a few one-time prekeys of a
//! device per hour and then its last-resort prekey, the owner tops up from
//! the server's count, and a defender cannot tell an unknown id from
//! another defender's.

use std::collections::HashSet;

use hotline_proto::e2e::envelope::{self, Content, Recipient};
use hotline_proto::e2e::prekey::PrekeyKind;
use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};
use hotline_proto::frame;
use hotline_proto::identity::IdentityKeyPair;
use hotline_proto::message::{PrekeyBundle, Request, Response};
use hotline_proto::{DeviceId, ErrorCode, Role};
use hotline_tests::{TestServer, decode_response, raw_exchange};

use super::people::{Person, person, root_key, sign};

/// The kind and id of the prekey in a bundle (checked against its owner's
/// signature, as a client does).
fn kind_and_id(bundle: &PrekeyBundle) -> (PrekeyKind, u32) {
    let prekey = bundle
        .prekey
        .as_ref()
        .expect("a prekey")
        .verify(&bundle.identity_key, hotline_server::unix_now())
        .expect("signed by its owner");
    (prekey.kind, prekey.id)
}

async fn fetch(p: &Person, ids: Vec<DeviceId>) -> Vec<PrekeyBundle> {
    match p
        .session
        .request(&Request::FetchPrekeys(ids))
        .await
        .expect("answer")
    {
        Response::PrekeyBundles(b) => b,
        other => panic!("prekey bundles expected, got {other:?}"),
    }
}

/// How many one-time prekeys the server says it holds for `p`.
async fn held(p: &Person) -> u32 {
    p.session
        .publish_prekeys(Vec::new())
        .await
        .expect("asks")
        .expect("the server says")
}

#[tokio::test]
async fn a_prekey_drain_leaves_one_time_prekeys_for_others_and_gets_the_last_resort_key() {
    let server = TestServer::start().await;
    assert_eq!(server.config().limits.one_time_prekeys_per_hour, 2);
    let officer = person(&server, Role::Officer, "officer", None).await;
    let drainer = person(&server, Role::Defender, "drainer", None).await;
    let other = person(&server, Role::Defender, "other", None).await;
    let target = officer.device.identity().device_id();
    assert_eq!(held(&officer).await, 20);

    // One request naming the officer 256 times is answered once.
    let bundles = fetch(&drainer, vec![target; 256]).await;
    assert_eq!(bundles.len(), 1, "a device listed twice is answered once");
    let mut drained = vec![kind_and_id(&bundles[0])];
    // And asking again and again gets the last-resort key past the limit.
    for _ in 0..30 {
        let bundles = fetch(&drainer, vec![target, target]).await;
        assert_eq!(bundles.len(), 1);
        drained.push(kind_and_id(&bundles[0]));
    }
    let one_time: Vec<u32> = drained
        .iter()
        .filter(|(k, _)| *k == PrekeyKind::OneTime)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        one_time.len(),
        2,
        "two one-time prekeys an hour: {drained:?}"
    );
    assert!(
        drained[2..]
            .iter()
            .all(|(k, _)| *k == PrekeyKind::LastResort),
        "then the last-resort key: {drained:?}"
    );
    assert_eq!(held(&officer).await, 18, "only what was handed out is gone");

    // Another defender still gets a one-time prekey, not one of those.
    let (kind, id) = kind_and_id(&fetch(&other, vec![target]).await[0]);
    assert_eq!(kind, PrekeyKind::OneTime);
    assert!(!one_time.contains(&id));
    assert_eq!(held(&officer).await, 17);
}

#[tokio::test]
async fn after_a_drain_the_owner_tops_up_from_the_servers_count() {
    let server = TestServer::start().await;
    let mut officer = person(&server, Role::Officer, "officer", None).await;
    let target = officer.device.identity().device_id();
    // Three defenders take what the limit lets each take: six.
    let mut taken = HashSet::new();
    for name in ["d1", "d2", "d3"] {
        let d = person(&server, Role::Defender, name, None).await;
        for _ in 0..2 {
            let (kind, id) = kind_and_id(&fetch(&d, vec![target]).await[0]);
            assert_eq!(kind, PrekeyKind::OneTime);
            taken.insert(id);
        }
    }
    assert_eq!(taken.len(), 6);
    assert_eq!(held(&officer).await, 14);
    // The officer's own count still says 20; it tops up from the server's.
    let before = officer.device.prekey_ids().len();
    let published = officer
        .device
        .sync_prekeys(&officer.session)
        .await
        .expect("sync");
    assert_eq!(published, 6);
    assert_eq!(held(&officer).await, 20);
    // The drained keys' private halves are kept: whoever took one may
    // still seal to it.
    let ids: HashSet<u32> = officer.device.prekey_ids().into_iter().collect();
    assert_eq!(ids.len(), before + 6);
    assert!(taken.is_subset(&ids));
    // Nothing more to do once the server holds enough.
    let published = officer
        .device
        .sync_prekeys(&officer.session)
        .await
        .expect("sync");
    assert_eq!(published, 0);
}

/// The framed answer to `req`, as the bytes the server sent.
async fn raw_answer(p: &Person, req: &Request) -> Vec<u8> {
    let bytes = frame::encode(&req.encode()).expect("frame");
    raw_exchange(p.session.connection(), &bytes)
        .await
        .expect("an answer")
}

/// An envelope from `sender` sealed to device `to` under a key of no one's.
fn envelope_to(sender: &Person, to: DeviceId) -> Request {
    let key = EncryptionKeyPair::generate(&mut SystemRandomness).public_key();
    let content = Content {
        message_id: [7; 16],
        counter: 1,
        timestamp: hotline_server::unix_now(),
        message: hotline_proto::e2e::content::Message::chat("hello", "en"),
        thread: 0,
        sender_label: String::new(),
    };
    let env = envelope::seal(
        sender.device.identity(),
        0,
        &[Recipient {
            device_id: to,
            prekey_id: 1,
            key,
        }],
        &content,
        &mut SystemRandomness,
    )
    .expect("seal");
    Request::SendEnvelope(env)
}

#[tokio::test]
async fn unknown_and_forbidden_recipients_answer_alike_for_a_defender() {
    let server = TestServer::start().await;
    let admin = person(&server, Role::Admin, "admin", None).await;
    let officer = person(&server, Role::Officer, "officer", None).await;
    let asker = person(&server, Role::Defender, "asker", None).await;
    let active = person(&server, Role::Defender, "active", None).await;
    let gone = person(&server, Role::Defender, "gone", None).await;
    admin
        .session
        .revoke(gone.device.identity().device_id())
        .await
        .expect("revoked");
    let (unknown, _) = IdentityKeyPair::generate().expect("randomness");
    let unknown = unknown.device_id();
    let active = active.device.identity().device_id();
    let gone = gone.device.identity().device_id();

    let fetch_of = |id| Request::FetchPrekeys(vec![id]);
    let answers = [
        raw_answer(&asker, &fetch_of(unknown)).await,
        raw_answer(&asker, &fetch_of(active)).await,
        raw_answer(&asker, &fetch_of(gone)).await,
    ];
    assert_eq!(answers[0], answers[1], "unknown and another defender");
    assert_eq!(answers[0], answers[2], "unknown and a revoked defender");
    match decode_response(&answers[0]) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden),
        other => panic!("{other:?}"),
    }
    let answers = [
        raw_answer(&asker, &envelope_to(&asker, unknown)).await,
        raw_answer(&asker, &envelope_to(&asker, active)).await,
        raw_answer(&asker, &envelope_to(&asker, gone)).await,
    ];
    assert_eq!(answers[0], answers[1], "unknown and another defender");
    assert_eq!(answers[0], answers[2], "unknown and a revoked defender");
    match decode_response(&answers[0]) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::Forbidden),
        other => panic!("{other:?}"),
    }
    // A staff device still gets the precise answer.
    match decode_response(&raw_answer(&officer, &Request::FetchPrekeys(vec![unknown])).await) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::NotFound),
        other => panic!("{other:?}"),
    }
    match decode_response(&raw_answer(&officer, &envelope_to(&officer, unknown)).await) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::NotFound),
        other => panic!("{other:?}"),
    }
    // A defender's own device and staff devices are still reachable.
    let me = asker.device.identity().device_id();
    let staff = officer.device.identity().device_id();
    assert_eq!(fetch(&asker, vec![me, staff]).await.len(), 2);
}

/// Found by the protocol audit: a `fetch_prekeys` refused for one device
/// had already taken the one-time prekeys of the devices before it. Bad
/// input changes nothing: every device is checked first.
#[tokio::test]
async fn a_refused_fetch_takes_no_prekey_of_anyone() {
    let server = TestServer::start().await;
    let officer = person(&server, Role::Officer, "officer", None).await;
    let defender = person(&server, Role::Defender, "defender", None).await;
    let other = person(&server, Role::Defender, "other", None).await;
    assert_eq!(held(&officer).await, 20);
    let ids = vec![
        officer.device.identity().device_id(),
        other.device.identity().device_id(),
    ];
    let err = defender
        .session
        .fetch_prekeys(ids)
        .await
        .expect_err("another defender is not a recipient");
    assert_eq!(err.code(), Some(hotline_proto::ErrorCode::Forbidden));
    assert_eq!(held(&officer).await, 20, "nothing was taken");
}

/// Revoking a staff device before a new roster is signed must not cut
/// defenders off: their messages and SOS texts go to the staff still
/// active on the roster (a revoked device is left out, not refused).
#[tokio::test]
async fn a_revoked_staff_device_on_the_roster_does_not_stop_a_defender() {
    use hotline_client::outbox::Outgoing;
    use hotline_proto::alert::Priority;
    let server = TestServer::start().await;
    let root = root_key(&server);
    let root_public = root.public_key();
    let mut admin = person(&server, Role::Admin, "admin", Some(root_public)).await;
    let officer = person(&server, Role::Officer, "officer", Some(root_public)).await;
    let gone = person(&server, Role::Officer, "gone", Some(root_public)).await;
    sign(&mut admin, &root, 3600).await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root_public)).await;
    admin
        .session
        .revoke(gone.device.identity().device_id())
        .await
        .expect("revoked");
    defender
        .device
        .queue(b"still reaching the team", Outgoing::Message { to: None })
        .expect("queued");
    let sent = defender
        .device
        .flush(&defender.session)
        .await
        .expect("sent");
    assert!(
        matches!(
            sent.as_slice(),
            [hotline_client::messenger::Sent::Message { .. }]
        ),
        "{sent:?}"
    );
    let alert = defender
        .device
        .raise_alert(&defender.session, Priority::Immediate, b"help")
        .await
        .expect("raised");
    assert_eq!(alert.content, hotline_proto::alert::AlertContent::Sealed);
    let _ = officer;
}
