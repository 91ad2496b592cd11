//! End-to-end encryption through a real server: the roster decides who can
//! read, the server cannot, and replays and used keys go nowhere.

use std::io::Write;
use std::sync::{Arc, Mutex};

use hotline_client::StateDir;
use hotline_client::messenger::{Device, Sent};
use hotline_client::outbox::Outgoing;
use hotline_proto::alert::Priority;
use hotline_proto::e2e::content::{Category, Kind, Message};
use hotline_proto::e2e::envelope::{self, Content, EnvelopeError, Recipient, SignedEnvelope};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_proto::e2e::roster::Roster;
use hotline_proto::e2e::suite::SystemRandomness;
use hotline_proto::message::{Request, Response};
use hotline_proto::{ErrorCode, Role};
use hotline_tests::TestServer;

use super::people::{PASS, Person, person, root_key, sign};

struct Org {
    root: OrgKeyPair,
    admin: Person,
}

async fn org(server: &TestServer) -> Org {
    let root = root_key(server);
    let admin = person(server, Role::Admin, "admin", Some(root.public_key())).await;
    Org { root, admin }
}

impl Org {
    async fn sign(&mut self) -> Roster {
        sign(&mut self.admin, &self.root, 3600).await
    }
}

fn bodies(received: &[hotline_client::messenger::Received]) -> Vec<Vec<u8>> {
    received
        .iter()
        .map(|r| r.message.text.clone().into_bytes())
        .collect()
}

#[tokio::test]
async fn a_defenders_message_reaches_every_staff_device_on_the_roster_and_no_one_else() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let mut coordinator = person(&server, Role::Coordinator, "coordinator", Some(root)).await;
    let roster = org.sign().await;
    assert_eq!(roster.entries.len(), 3);
    // Enrolled after the roster was signed: staff, but not on it.
    let mut latecomer = person(&server, Role::Officer, "latecomer", Some(root)).await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;

    defender
        .device
        .send(
            &defender.session,
            b"detained at the northern checkpoint",
            None,
        )
        .await
        .expect("sent");

    for p in [&mut officer, &mut coordinator, &mut org.admin] {
        let got = p.device.receive(&p.session).await.expect("inbox");
        assert_eq!(
            bodies(&got),
            vec![b"detained at the northern checkpoint".to_vec()]
        );
        assert_eq!(got[0].sender, defender.device.identity().device_id());
        assert_eq!(got[0].sender_role, None, "a defender is not on the roster");
    }
    let got = latecomer
        .device
        .receive(&latecomer.session)
        .await
        .expect("inbox");
    assert!(got.is_empty(), "a device off the roster receives nothing");

    // An officer answers; the defender reads it, and so do the other staff.
    officer
        .device
        .send(
            &officer.session,
            b"we are calling your lawyer",
            Some(defender.device.identity().device_id()),
        )
        .await
        .expect("sent");
    let got = defender
        .device
        .receive(&defender.session)
        .await
        .expect("inbox");
    assert_eq!(bodies(&got), vec![b"we are calling your lawyer".to_vec()]);
    assert_eq!(got[0].sender_role, Some(Role::Officer));
    let got = coordinator
        .device
        .receive(&coordinator.session)
        .await
        .expect("inbox");
    assert_eq!(bodies(&got), vec![b"we are calling your lawyer".to_vec()]);
}

/// A roster with no entries.
fn empty_roster(version: u64, issued_at: u64, expires_at: u64) -> Roster {
    Roster {
        version,
        issued_at,
        expires_at,
        previous_hash: [0; 32],
        entries: vec![],
    }
}

#[tokio::test]
async fn rosters_not_signed_by_the_pinned_root_or_rolled_back_are_refused() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let _officer = person(&server, Role::Officer, "officer", Some(root)).await;
    org.sign().await;
    org.sign().await; // version 2
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;
    defender
        .device
        .roster(&defender.session)
        .await
        .expect("v2 accepted");

    // An admin (or the server's operator) uploads a roster signed by
    // another key: the defender refuses it and sends nothing.
    // It chains to the stored roster: the server checks that much, not
    // who signed it.
    let impostor = OrgKeyPair::from_seed(&[66; 32]);
    let now = hotline_server::unix_now();
    let current = defender
        .session
        .get_roster()
        .await
        .expect("roster")
        .expect("stored");
    let mut forged = empty_roster(9, now, now + 3600);
    forged.previous_hash = current.hash();
    let forged = forged.sign(&impostor);
    let stored = org
        .admin
        .session
        .request(&Request::PutRoster(forged))
        .await
        .expect("answer");
    assert_eq!(
        stored,
        Response::Done,
        "the server cannot tell; clients can"
    );
    let err = defender
        .device
        .send(&defender.session, b"hello", None)
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("not signed by your organisation's root key"),
        "{err}"
    );

    // A rollback to version 1 is refused even though the root signed it.
    let now = hotline_server::unix_now();
    let v1 = empty_roster(1, now, now + 3600).sign(&org.root);
    let err = defender
        .device
        .accept_roster(&root, &v1)
        .expect_err("rollback");
    assert!(err.to_string().contains("rollback refused"), "{err}");

    // An expired roster is refused.
    let expired = empty_roster(10, 1, 2).sign(&org.root);
    let err = defender
        .device
        .accept_roster(&root, &expired)
        .expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn a_roster_that_does_not_chain_is_refused_by_the_server_and_by_clients() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let _officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let v1 = org.sign().await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;
    defender
        .device
        .roster(&defender.session)
        .await
        .expect("v1 accepted");
    let stored_v1 = defender
        .session
        .get_roster()
        .await
        .expect("roster")
        .expect("stored");
    assert_eq!(v1.previous_hash, [0; 32], "the first roster names none");

    // Signed by the real root, one version up, but naming no predecessor
    // (all zeros) or another one: the server refuses both and keeps v1.
    let now = hotline_server::unix_now();
    let unchained = empty_roster(2, now, now + 3600).sign(&org.root);
    let mut elsewhere = empty_roster(2, now, now + 3600);
    elsewhere.previous_hash = [0x42; 32];
    for roster in [unchained.clone(), elsewhere.sign(&org.root)] {
        let err = org
            .admin
            .session
            .put_roster(roster)
            .await
            .expect_err("refused");
        assert_eq!(
            hotline_tests::refusal(&err),
            Some(ErrorCode::FailedPrecondition),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("not the hash of the roster it replaces"),
            "{err}"
        );
    }
    assert_eq!(
        defender.session.get_roster().await.expect("roster"),
        Some(stored_v1.clone()),
        "the server still serves v1"
    );

    // A client shown the unchained v2 (by a server that stored it anyway)
    // refuses it, raises the alarm, and keeps v1.
    let err = defender
        .device
        .accept_roster(&root, &unchained)
        .expect_err("does not chain");
    assert!(err.to_string().contains("does not chain"), "{err}");
    assert_eq!(defender.device.profile().roster_alarm, Some(2));
    assert_eq!(defender.device.profile().roster_version, Some(1));
    let on_disk = defender.state.load_profile().expect("profile");
    assert_eq!(on_disk.roster_alarm, Some(2), "the alarm lasts");
    assert!(
        on_disk
            .roster_alarm_text()
            .expect("alarm")
            .contains("ROSTER ALARM")
    );

    // The admin's properly chained v2 is stored; the defender, who saw
    // another v2, accepts it but keeps the alarm: two rosters carry
    // version 2. A v3 chained to the v2 it accepted clears it.
    org.sign().await;
    defender
        .device
        .roster(&defender.session)
        .await
        .expect("the chained v2 is accepted");
    assert_eq!(defender.device.profile().roster_alarm, Some(2));
    let v3 = org.sign().await;
    assert_eq!(v3.version, 3);
    defender
        .device
        .roster(&defender.session)
        .await
        .expect("v3 accepted");
    assert_eq!(defender.device.profile().roster_alarm, None);
    assert_eq!(defender.device.profile().roster_version, Some(3));
}

#[tokio::test]
async fn two_rosters_with_one_version_raise_the_alarm_and_the_second_is_refused() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let _officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let v1 = org.sign().await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;
    defender
        .device
        .roster(&defender.session)
        .await
        .expect("v1 accepted");
    // The root signs another version 1 (a second admin machine, or a
    // stolen key): the defender refuses it and the alarm is up.
    let mut other = v1.clone();
    other.entries.clear();
    let err = defender
        .device
        .accept_roster(&root, &other.sign(&org.root))
        .expect_err("equivocation");
    assert!(err.to_string().contains("two different rosters"), "{err}");
    assert_eq!(defender.device.profile().roster_alarm, Some(1));
    assert_eq!(
        defender.device.profile().roster_hash,
        Some(hotline_proto::identity::hex(
            &defender
                .session
                .get_roster()
                .await
                .expect("roster")
                .expect("stored")
                .hash()
        )),
        "the first one stays the one accepted"
    );
}

/// Seals `body` from `sender` to `to`'s next prekey, by hand (as a client
/// would), so a test can hold the exact envelope.
async fn seal_by_hand(
    sender: &Person,
    to: &Person,
    roster_version: u64,
    body: &[u8],
) -> (SignedEnvelope, u32) {
    let content = Content {
        message_id: [0x5a; 16],
        counter: 1,
        timestamp: hotline_server::unix_now(),
        message: Message::chat(&String::from_utf8_lossy(body), "en"),
        thread: 0,
        sender_label: String::new(),
    };
    let padded = envelope::pad(&sealed_content(&content, &content.message_id)).expect("fits");
    seal_padded_by_hand(sender, to, roster_version, &padded).await
}

/// `SealedContent` as `docs/protocol.md` §5 defines it, encoded here
/// rather than by the crate under test, so that a test can break it (or
/// write what another client, older or newer, would).
#[derive(Clone, PartialEq, prost::Message)]
struct WireSealedContent {
    #[prost(bytes = "vec", tag = "1")]
    message_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    counter: u64,
    #[prost(uint64, tag = "3")]
    timestamp: u64,
    #[prost(bytes = "vec", tag = "4")]
    body: Vec<u8>,
    #[prost(uint64, tag = "5")]
    thread: u64,
    #[prost(string, tag = "6")]
    sender_label: String,
    #[prost(int32, tag = "7")]
    kind: i32,
    #[prost(int32, tag = "8")]
    category: i32,
    #[prost(int32, tag = "9")]
    priority: i32,
    #[prost(string, tag = "10")]
    text: String,
    #[prost(string, tag = "11")]
    language: String,
    /// A field a later version might add (attachments are to come).
    #[prost(bytes = "vec", tag = "20")]
    later: Vec<u8>,
}

/// `EnvelopeBody` as `docs/protocol.md` defines it (the wrapped keys kept
/// as raw bytes: a test only rewrites the sender).
#[derive(Clone, PartialEq, prost::Message)]
struct WireEnvelopeBody {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(uint32, tag = "2")]
    suite: u32,
    #[prost(bytes = "vec", tag = "3")]
    sender: Vec<u8>,
    #[prost(uint64, tag = "4")]
    roster_version: u64,
    #[prost(bytes = "vec", repeated, tag = "5")]
    recipients: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "6")]
    nonce: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    ciphertext: Vec<u8>,
}

fn sealed_content(content: &Content, message_id: &[u8]) -> Vec<u8> {
    use prost::Message;
    WireSealedContent {
        message_id: message_id.to_vec(),
        counter: content.counter,
        timestamp: content.timestamp,
        thread: content.thread,
        sender_label: content.sender_label.clone(),
        kind: 2,
        text: content.message.text.clone(),
        language: content.message.language.clone(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Seals already padded bytes (well formed or not) to `to`'s next prekey.
async fn seal_padded_by_hand(
    sender: &Person,
    to: &Person,
    roster_version: u64,
    padded: &[u8],
) -> (SignedEnvelope, u32) {
    let to_id = to.device.identity().device_id();
    let Response::PrekeyBundles(bundles) = sender
        .session
        .request(&Request::FetchPrekeys(vec![to_id]))
        .await
        .expect("answer")
    else {
        panic!("prekey bundles expected");
    };
    let prekey = bundles[0]
        .prekey
        .clone()
        .expect("published")
        .verify(&bundles[0].identity_key, hotline_server::unix_now())
        .expect("valid");
    let env = envelope::seal_padded(
        sender.device.identity(),
        roster_version,
        &[Recipient {
            device_id: to_id,
            prekey_id: prekey.id,
            key: prekey.public_key,
        }],
        padded,
        &mut SystemRandomness,
    )
    .expect("seal");
    (env, prekey.id)
}

async fn send_raw(p: &Person, env: &SignedEnvelope) -> (u64, bool) {
    match p
        .session
        .request(&Request::SendEnvelope(env.clone()))
        .await
        .expect("answer")
    {
        Response::EnvelopeAccepted { id, duplicate } => (id, duplicate),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn replays_are_refused_across_a_restart_and_a_used_one_time_prekey_opens_nothing_again() {
    let mut server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let roster = org.sign().await;
    let defender = person(&server, Role::Defender, "defender", Some(root)).await;

    let (env, prekey_id) = seal_by_hand(&defender, &officer, roster.version, b"first").await;
    let (id, duplicate) = send_raw(&defender, &env).await;
    assert!(!duplicate);
    assert!(officer.device.prekey_ids().contains(&prekey_id));
    let got = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    assert_eq!(bodies(&got), vec![b"first".to_vec()]);
    // The one-time prekey's private half is gone, on disk too.
    assert!(!officer.device.prekey_ids().contains(&prekey_id));
    let reloaded =
        Device::open(&StateDir::new(server.dir.path().join("officer")), PASS).expect("unlock");
    assert!(!reloaded.prekey_ids().contains(&prekey_id));
    let me = officer.device.identity().device_id();
    assert_eq!(
        env.open(&defender.device.identity().public_key(), &me, |_| None),
        Err(EnvelopeError::KeyGone)
    );

    // After a restart, the same envelope is recognised and not delivered.
    server.restart().await;
    let defender_session = defender.device.connect().await.expect("reconnects");
    let defender = Person {
        session: defender_session,
        ..defender
    };
    officer.session = officer.device.connect().await.expect("reconnects");
    assert_eq!(send_raw(&defender, &env).await, (id, true));
    let got = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    assert!(got.is_empty(), "a replayed envelope is not delivered again");
}

#[tokio::test]
async fn a_tampered_envelope_is_refused_by_the_server_and_by_the_recipient() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let roster = org.sign().await;
    let defender = person(&server, Role::Defender, "defender", Some(root)).await;
    let (env, _) = seal_by_hand(&defender, &officer, roster.version, b"x").await;
    let mut bad = env.clone();
    let at = bad.body.len() - 5;
    bad.body[at] ^= 1;
    match defender
        .session
        .request(&Request::SendEnvelope(bad))
        .await
        .expect("answer")
    {
        Response::Error(e) => assert_eq!(e.code, hotline_proto::ErrorCode::BadSignature),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        officer
            .device
            .receive(&officer.session)
            .await
            .expect("inbox")
            .is_empty()
    );
}

/// A signed but malformed envelope is one defender's to send; it must never
/// cost an officer the messages after it. Four kinds reach the officer's
/// device and are dropped there with a warning naming their sender (bad
/// padding, a padded length that is no bucket, a short message id, a
/// sender label with control characters); an inner sender that is not the
/// signer the server refuses.
#[tokio::test]
async fn a_malformed_envelope_of_any_kind_never_hides_the_next_message() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let roster = org.sign().await;
    let defender = person(&server, Role::Defender, "defender", Some(root)).await;
    let other = person(&server, Role::Defender, "other", Some(root)).await;
    let content = |n: u8| Content {
        message_id: [n; 16],
        counter: u64::from(n),
        timestamp: hotline_server::unix_now(),
        message: Message::chat(&format!("message {n}"), "en"),
        thread: 0,
        sender_label: String::new(),
    };
    let v = roster.version;

    // Non-zero padding after the content.
    let mut padded = envelope::pad(&sealed_content(&content(1), &[1; 16])).expect("fits");
    *padded.last_mut().expect("padded") = 1;
    let (nonzero_padding, _) = seal_padded_by_hand(&defender, &officer, v, &padded).await;
    // A padded length that is no bucket size.
    let mut padded = envelope::pad(&sealed_content(&content(2), &[2; 16])).expect("fits");
    padded.push(0);
    let (odd_length, _) = seal_padded_by_hand(&defender, &officer, v, &padded).await;
    // A message id of 8 bytes instead of 16.
    let padded = envelope::pad(&sealed_content(&content(3), &[3; 8])).expect("fits");
    let (short_id, _) = seal_padded_by_hand(&defender, &officer, v, &padded).await;
    // A sender label that would drive the officer's terminal.
    let escape = Content {
        sender_label: "Ana\u{1b}[2J".into(),
        ..content(4)
    };
    let padded = envelope::pad(&sealed_content(&escape, &[4; 16])).expect("fits");
    let (bad_label, _) = seal_padded_by_hand(&defender, &officer, v, &padded).await;
    // An inner sender other than the signer, correctly signed.
    let (good, _) = seal_by_hand(&defender, &officer, v, b"m").await;
    let mut body = <WireEnvelopeBody as prost::Message>::decode(good.body.as_slice())
        .expect("an envelope body");
    body.sender = other.device.identity().device_id().as_bytes().to_vec();
    let body = prost::Message::encode_to_vec(&body);
    let mut signed = b"hotline/1 envelope\0".to_vec();
    signed.extend_from_slice(&body);
    let other_sender = SignedEnvelope {
        signature: defender.device.identity().sign(&signed),
        body,
        ..good
    };

    for bad in [&nonzero_padding, &odd_length, &short_id, &bad_label] {
        send_raw(&defender, bad).await;
    }
    match defender
        .session
        .request(&Request::SendEnvelope(other_sender))
        .await
        .expect("answer")
    {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::Malformed, "{e:?}"),
        other => panic!("the server stored an envelope with another inner sender: {other:?}"),
    }
    let (valid, _) = seal_by_hand(&defender, &officer, v, b"the one that matters").await;
    send_raw(&defender, &valid).await;

    let got = officer
        .device
        .receive(&officer.session)
        .await
        .expect("the inbox opens despite the malformed envelopes");
    assert_eq!(bodies(&got), vec![b"the one that matters".to_vec()]);
    let warnings = officer.device.take_warnings();
    let sender = defender.device.identity().device_id().to_string();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("malformed") && w.contains(&sender))
            .count(),
        4,
        "{warnings:?}"
    );
    // And on the next run, nothing is stuck.
    assert!(
        officer
            .device
            .receive(&officer.session)
            .await
            .expect("the next run opens its inbox too")
            .is_empty()
    );
}

/// A writer that keeps everything the server logs.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_server_sees_no_message_content_on_disk_or_in_its_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime runs every server task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    org.sign().await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;
    let marker = "MARKER-91c2 Ana Lucia at Hotel Miramar room 12";
    defender
        .device
        .send(&defender.session, marker.as_bytes(), None)
        .await
        .expect("sent");
    officer
        .device
        .send(
            &officer.session,
            b"MARKER-91c2 reply",
            Some(defender.device.identity().device_id()),
        )
        .await
        .expect("sent");
    assert_eq!(
        officer
            .device
            .receive(&officer.session)
            .await
            .expect("inbox")
            .len(),
        1
    );
    let data = server.config().data_dir.clone();
    server.stop().await;

    let logs = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(logs.contains("device authenticated"), "the capture works");
    for needle in ["MARKER", "Ana Lucia", "Miramar"] {
        assert!(!logs.contains(needle), "the logs hold {needle:?}");
    }
    for (path, bytes) in crate::storage::snapshot_files(&data) {
        for needle in [&b"MARKER"[..], b"Ana Lucia", b"Miramar"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?}",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// The outbox's rule: an item the server refuses in a way retrying cannot
/// fix is dropped (and the refusal shown), so what was written after it is
/// not stuck behind it.
#[tokio::test]
async fn an_item_the_server_refuses_for_good_leaves_the_outbox() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    org.sign().await;

    // Only defenders raise alerts.
    officer
        .device
        .queue(b"not mine to raise", Outgoing::Alert(Priority::Urgent))
        .expect("queued");
    officer
        .device
        .queue(b"written after it", Outgoing::Message { to: None })
        .expect("queued");
    // One flush: the alert is refused for good, removed and reported;
    // the message behind it goes.
    let sent = officer
        .device
        .flush(&officer.session)
        .await
        .expect("the flush goes on past a refused item");
    match &sent[..] {
        [
            Sent::Dropped {
                what: Outgoing::Alert(_),
                code: Some(ErrorCode::Forbidden),
                reason,
            },
            Sent::Message { .. },
        ] => assert!(reason.contains("only defenders"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(officer.device.pending().is_empty());
}

#[tokio::test]
async fn a_message_written_while_the_network_is_down_is_delivered_once_when_it_returns() {
    let mut server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    org.sign().await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;

    // The network goes away.
    server.stop().await;
    assert!(defender.device.connect().await.is_err());
    let pending = defender
        .device
        .queue(b"written in the dark", Outgoing::Message { to: None })
        .expect("queued on disk");
    assert_eq!(pending, 1);
    // The outbox survives the client restarting too.
    let mut defender_device =
        Device::open(&StateDir::new(server.dir.path().join("defender")), PASS).expect("unlock");
    assert_eq!(defender_device.pending().len(), 1);

    // It comes back: the next flush sends it, once.
    server.start_again().await;
    let session = defender_device.connect().await.expect("reconnects");
    let sent = defender_device.flush(&session).await.expect("flushed");
    assert_eq!(sent.len(), 1);
    assert!(defender_device.pending().is_empty());
    assert!(
        defender_device
            .flush(&session)
            .await
            .expect("flushed")
            .is_empty()
    );
    defender.session = session;

    officer.session = officer.device.connect().await.expect("reconnects");
    let got = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    assert_eq!(bodies(&got), vec![b"written in the dark".to_vec()]);
    assert!(
        officer
            .device
            .receive(&officer.session)
            .await
            .expect("inbox")
            .is_empty()
    );
}

/// A flush that stops part way (here: the server's rate limit) still
/// reports every item it sent, keeps the rest, and sends each of those
/// once on the next connection: the person hears of everything that went
/// out, and nothing goes out twice. Each message sent is in the sender's
/// history, and each received in the recipient's.
#[tokio::test]
async fn a_flush_stopped_part_way_reports_every_item_it_sent() {
    let server = TestServer::start_with(|c| {
        c.limits.request_burst = 12;
        c.limits.requests_per_second = 1;
    })
    .await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    org.sign().await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;
    for i in 0..6 {
        defender
            .device
            .queue(
                format!("note {i}").as_bytes(),
                Outgoing::Message { to: None },
            )
            .expect("queued");
    }
    let flushed = defender.device.flush_report(&defender.session).await;
    let code = flushed.stopped.as_ref().and_then(|e| e.code());
    assert_eq!(code, Some(ErrorCode::RateLimited), "{:?}", flushed.stopped);
    let first = flushed.settled.len();
    assert!((1..6).contains(&first), "sent {first} before the stop");
    assert!(flushed.settled.iter().all(|(_, s)| matches!(
        s,
        Sent::Message {
            duplicate: false,
            ..
        }
    )));
    assert_eq!(defender.device.pending().len(), 6 - first);

    // A new connection sends the rest, each once.
    let session = defender.device.connect().await.expect("connects");
    let rest = defender.device.flush_report(&session).await;
    assert!(rest.stopped.is_none(), "{:?}", rest.stopped);
    assert_eq!(rest.settled.len(), 6 - first);
    assert!(defender.device.pending().is_empty());
    let got = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    let mut bodies = bodies(&got);
    bodies.sort();
    let expected: Vec<Vec<u8>> = (0..6).map(|i| format!("note {i}").into_bytes()).collect();
    assert_eq!(bodies, expected, "each note once");
    // Both ends keep them.
    let kept = |d: &Device, sent: bool| {
        d.history()
            .expect("history")
            .entries()
            .iter()
            .filter(|e| e.sent == sent)
            .count()
    };
    assert_eq!(kept(&defender.device, true), 6);
    assert_eq!(kept(&officer.device, false), 6);
}

/// Found auditing the protocol: an inbox answer had no byte cap, so four
/// envelopes of the largest size waiting made every fetch of the inbox
/// fail ("response too large"): any defender could silence an officer's
/// inbox. The answer now stops before the frame is full and the client
/// fetches on.
#[tokio::test]
async fn large_messages_never_jam_an_inbox() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    org.sign().await;
    let mut defender = person(&server, Role::Defender, "defender", Some(root)).await;
    let big = |n: u8| vec![b'a' + n; envelope::MAX_BODY_LEN];
    for n in 0..5 {
        defender
            .device
            .queue(&big(n), Outgoing::Message { to: None })
            .expect("queued");
    }
    defender
        .device
        .queue(b"and a short one", Outgoing::Message { to: None })
        .expect("queued");
    let sent = defender
        .device
        .flush(&defender.session)
        .await
        .expect("sent");
    assert_eq!(sent.len(), 6);
    officer
        .device
        .sync_prekeys(&officer.session)
        .await
        .expect("prekeys");
    let got = officer
        .device
        .receive(&officer.session)
        .await
        .expect("the inbox opens");
    let mut want: Vec<Vec<u8>> = (0..5).map(big).collect();
    want.push(b"and a short one".to_vec());
    assert_eq!(bodies(&got), want);
}

/// What other clients seal reaches the officer: an SOS of the old form
/// (the text in `body`, its category on the first line: what clients
/// before the content message sealed, and what servers hold today), and
/// from a later version an SOS with a category number, a priority number,
/// a kind and a field this version does not know. Nothing is dropped:
/// the old form reads with its category, the unknown category as "other"
/// with its number, the unknown kind with its number.
#[tokio::test]
async fn contents_of_the_old_form_and_of_a_later_version_reach_the_officer() {
    use prost::Message as _;
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let mut officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let roster = org.sign().await;
    let defender = person(&server, Role::Defender, "defender", Some(root)).await;
    let now = hotline_server::unix_now();
    let old = WireSealedContent {
        message_id: vec![1; 16],
        counter: 1,
        timestamp: now,
        body: b"category: arrest\nthey took my brother".to_vec(),
        ..Default::default()
    };
    let later = WireSealedContent {
        message_id: vec![2; 16],
        counter: 2,
        timestamp: now,
        kind: 1,
        category: 42,
        priority: 9,
        text: "levaram meu irmão".into(),
        language: "pt-BR".into(),
        later: vec![1, 2, 3],
        ..Default::default()
    };
    let unknown_kind = WireSealedContent {
        message_id: vec![3; 16],
        counter: 3,
        timestamp: now,
        kind: 77,
        text: "a poll: are you safe?".into(),
        ..Default::default()
    };
    for c in [&old, &later, &unknown_kind] {
        let padded = envelope::pad(&c.encode_to_vec()).expect("fits");
        let (env, _) = seal_padded_by_hand(&defender, &officer, roster.version, &padded).await;
        send_raw(&defender, &env).await;
    }

    let got = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    assert!(officer.device.take_warnings().is_empty());
    let by_text = |t: &str| {
        got.iter()
            .find(|r| r.message.text == t)
            .unwrap_or_else(|| panic!("{t:?} was dropped: {got:?}"))
            .message
            .clone()
    };
    assert_eq!(
        by_text("they took my brother"),
        Message {
            kind: Kind::Sos,
            category: Some(Category::Arrest),
            priority: None,
            text: "they took my brother".into(),
            language: String::new(),
        }
    );
    let m = by_text("levaram meu irmão");
    assert_eq!(m.kind, Kind::Sos);
    assert_eq!(m.category, Some(Category::Unknown(42)));
    assert_eq!(
        m.category.map(|c| c.to_string()).as_deref(),
        Some("other (category 42)")
    );
    assert_eq!(m.priority, None, "an unknown priority reads as not given");
    assert_eq!(m.language, "pt-BR");
    assert_eq!(by_text("a poll: are you safe?").kind, Kind::Unknown(77));
    // And the officer's device keeps them as read.
    let history = officer.device.history().expect("history");
    assert_eq!(
        history
            .entries()
            .iter()
            .filter(|e| !e.sent)
            .map(|e| e.message.category)
            .collect::<Vec<_>>(),
        vec![Some(Category::Arrest), Some(Category::Unknown(42)), None]
    );
}

/// `GetRoster` by version (docs/protocol.md, section 9.5): a reader
/// checks a case event against the roster version it names, so the
/// server answers every version it accepted (the newest for 0); a version
/// it never accepted is a clear NOT_FOUND.
#[tokio::test]
async fn every_roster_version_accepted_is_served_by_version_and_none_other() {
    let server = TestServer::start().await;
    let mut org = org(&server).await;
    let root = org.root.public_key();
    let _officer = person(&server, Role::Officer, "officer", Some(root)).await;
    let v1 = org.sign().await;
    let v2 = org.sign().await;
    let v3 = org.sign().await;
    let defender = person(&server, Role::Defender, "defender", Some(root)).await;
    let session = &defender.session;
    let newest = session.get_roster().await.expect("newest").expect("stored");
    assert_eq!(newest.read_unverified().expect("reads").version, 3);
    for (version, want) in [(1, &v1), (2, &v2), (3, &v3)] {
        let got = session
            .get_roster_version(version)
            .await
            .expect("served")
            .expect("stored");
        let got = got
            .verify_even_if_expired(&root, None)
            .expect("signed by the root");
        assert_eq!(&got, want, "version {version}");
    }
    assert_eq!(
        session.get_roster_version(0).await.expect("newest"),
        Some(newest.clone())
    );
    for missing in [4, u64::MAX] {
        let err = session
            .get_roster_version(missing)
            .await
            .expect_err("never accepted");
        assert_eq!(
            hotline_tests::refusal(&err),
            Some(ErrorCode::NotFound),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("never accepted a roster of this version"),
            "{err}"
        );
    }
}
