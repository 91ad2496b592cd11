//! A data directory written by an earlier build (`tests/fixtures/store-v1/`,
//! checked in) opens, verifies and serves with this one.
//!
//! The fixture was written by the ignored test below, run on the commit
//! before the server's layout change:
//! `cargo test -p hotline-tests --test e2e -- --ignored write_store_fixture`.
//! It holds the server's data directory, its master key file (a test key,
//! nothing else uses it) and the client homes of the people in it
//! (passphrase [`PASS`]). Tests open copies only: opening a store with
//! sled can change its files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hotline_client::connection::{ServerInfo, authenticate};
use hotline_client::keystore::MIN_ITERATIONS;
use hotline_client::messenger::Device;
use hotline_client::org::{create_org_key, load_org_key, sign_roster};
use hotline_client::outbox::Outgoing;
use hotline_client::{Session, StateDir};
use hotline_proto::Role;
use hotline_proto::alert::{AlertOrigin, AlertStatus, Priority};
use hotline_proto::message::{Request, Response};
use hotline_server::log::keys::KeySource;
use hotline_server::store::{Create, LogStore, open_keys, verify_store};
use hotline_server::{Config, RunningServer};
use hotline_tests::TestServer;

const PASS: &str = "a long test passphrase";

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

async fn person(server: &TestServer, root: &Path, role: Role, name: &str) -> (Device, Session) {
    let path = root.join("org.key");
    let public = load_org_key(&path, PASS).expect("org key").public_key();
    let mut invite = server.invite(role).await;
    invite.org_root = Some(public);
    let state = StateDir::new(root.join(name));
    let session = hotline_client::enroll(&state, &invite, PASS, MIN_ITERATIONS)
        .await
        .expect("enrolls");
    let mut device = Device::open(&state, PASS).expect("unlocks");
    device.sync_prekeys(&session).await.expect("prekeys");
    (device, session)
}

/// Writes the fixture: a hotline with an admin, an officer, a coordinator,
/// a defender and a revoked officer; a roster; a message; an SOS claimed
/// by the officer and its reply; a check-in schedule and a check-in; a
/// restart, and a record after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the checked-in fixture; run by hand on purpose"]
async fn write_store_fixture() {
    let mut server = TestServer::start().await;
    let root = server.dir.path().to_owned();
    create_org_key(&root.join("org.key"), PASS, MIN_ITERATIONS).expect("org key");
    let org = load_org_key(&root.join("org.key"), PASS).expect("loads");
    let (mut admin_dev, admin) = person(&server, &root, Role::Admin, "admin").await;
    let (mut officer_dev, officer) = person(&server, &root, Role::Officer, "officer").await;
    let (_, coordinator) = person(&server, &root, Role::Coordinator, "coordinator").await;
    let (_, leaver) = person(&server, &root, Role::Officer, "leaver").await;
    sign_roster(
        &admin,
        &mut admin_dev,
        &org,
        hotline_server::unix_now(),
        30 * 86_400,
    )
    .await
    .expect("roster");
    let (mut defender_dev, defender) = person(&server, &root, Role::Defender, "defender").await;
    officer.set_duty(true).await.expect("on duty");
    defender_dev
        .send(&defender, b"category: other\nhello from the fixture", None)
        .await
        .expect("message");
    let sos = defender_dev
        .raise_alert(
            &defender,
            Priority::Immediate,
            b"category: arrest\nfixture SOS",
        )
        .await
        .expect("SOS");
    assert!(officer.claim_alert(sos.id).await.expect("claim").is_ok());
    let got = officer_dev.receive(&officer).await.expect("inbox");
    assert_eq!(got.len(), 2);
    officer
        .mark_read(got.iter().map(|r| r.id).collect())
        .await
        .expect("read");
    officer_dev
        .queue(
            b"we are on it",
            Outgoing::Reply {
                alert: sos.id,
                to: defender.device_id(),
            },
        )
        .expect("queue");
    officer_dev.flush(&officer).await.expect("reply");
    // As clients before check-in keys set it: unkeyed digests.
    let me = defender.device_id();
    let set = Request::SetCheckin {
        interval_secs: 3600,
        grace_secs: 600,
        code_digest: hotline_proto::alert::checkin_digest(&me, "1234"),
        duress_digest: hotline_proto::alert::checkin_digest(&me, "9999"),
    };
    defender.request(&set).await.expect("schedule");
    defender.checkin(None, "1234").await.expect("check-in");
    admin.revoke(leaver.device_id()).await.expect("revoke");
    let _ = coordinator.status().await.expect("status");
    server.restart().await;
    let info = server.info();
    let officer = authenticate(&info, officer_dev.identity())
        .await
        .expect("officer again");
    officer.set_duty(false).await.expect("off duty");
    server.stop().await;

    let out = fixture();
    let _ = std::fs::remove_dir_all(&out);
    for part in [
        "data",
        "master.key",
        "admin",
        "officer",
        "coordinator",
        "defender",
        "org.key",
    ] {
        let from = root.join(part);
        if from.is_dir() {
            copy_dir(&from, &out.join(part));
        } else {
            std::fs::create_dir_all(&out).expect("mkdir");
            std::fs::copy(&from, out.join(part)).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_written_by_an_earlier_build_opens_verifies_and_serves() {
    hotline_tests::init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture(), dir.path());
    let data = dir.path().join("data");
    let key = KeySource::File(dir.path().join("master.key"));

    // Verifies: every record, the chain and the checkpoints.
    let report = verify_store(&data, &key, 4 << 20, None).expect("the old store verifies");
    assert!(report.verified.records > 20, "{:?}", report.verified);

    // Opens from its snapshot, and a full replay of the log (every event
    // decoded and applied by this build) arrives at the same state.
    {
        let keys = open_keys(&data, &key, Create::Never).expect("keys");
        let store = LogStore::open(&data, keys, 4 << 20).expect("the old store opens");
        let from_snapshot = store.state();
        let replayed = store.rebuild().expect("rebuild from the log");
        assert_eq!(replayed, report.verified.records);
        assert_eq!(store.state(), from_snapshot);
        store.close().expect("close");
    }

    // Serves: the people in it authenticate and find what they left.
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("loopback"),
        data_dir: data.clone(),
        ..Config::default()
    };
    let server = RunningServer::start(config.clone(), &key)
        .await
        .expect("the old store serves");
    let person = |name: &str| {
        StateDir::new(dir.path().join(name))
            .load_identity(PASS)
            .expect("identity")
    };
    let old_profile = StateDir::new(dir.path().join("officer"))
        .load_profile()
        .expect("profile");
    assert_eq!(
        old_profile.cert_pin,
        server.cert_pin().to_string(),
        "the certificate is the one clients pinned"
    );
    let info = ServerInfo {
        addr: server.local_addr().to_string(),
        name: config.server_name.clone(),
        pin: server.cert_pin(),
    };
    let admin = authenticate(&info, &person("admin")).await.expect("admin");
    let devices = admin.devices().await.expect("devices");
    assert_eq!(devices.len(), 5);
    assert_eq!(devices.iter().filter(|d| d.revoked_at.is_some()).count(), 1);

    let officer = authenticate(&info, &person("officer"))
        .await
        .expect("officer");
    // The claimed SOS. (The fixture's check-in schedule, an hour long,
    // has lapsed by the time this runs: the server rightly raises a
    // missed-check-in alert beside it.)
    let alerts = officer.alerts(false).await.expect("alerts");
    let sos: Vec<_> = alerts
        .iter()
        .filter(|a| a.origin == AlertOrigin::Sos)
        .collect();
    assert_eq!(sos.len(), 1, "{alerts:?}");
    assert_eq!(sos[0].status, AlertStatus::Acknowledged);
    assert_eq!(sos[0].holder, Some(officer.device_id()));
    assert!(
        alerts
            .iter()
            .all(|a| a.origin == AlertOrigin::Sos || a.origin == AlertOrigin::MissedCheckin),
        "{alerts:?}"
    );

    // The defender's inbox still holds the officer's reply, as stored.
    let defender = authenticate(&info, &person("defender"))
        .await
        .expect("defender");
    match defender
        .request(&Request::FetchInbox {
            after: 0,
            limit: 10,
        })
        .await
        .expect("inbox")
    {
        Response::Inbox(items) => {
            assert_eq!(items.len(), 1, "the reply");
            assert_eq!(items[0].envelope.sender, officer.device_id());
        }
        other => panic!("unexpected answer {other:?}"),
    }

    // And the old store takes new records: the check-in still counts, the
    // admin signs a new roster (the fixture's may have expired), and a new
    // SOS pages the officer on duty.
    // A schedule of unkeyed digests is still accepted until the defender
    // sets it again.
    defender.checkin(None, "1234").await.expect("check-in");
    officer.set_duty(true).await.expect("on duty");
    let org = load_org_key(&dir.path().join("org.key"), PASS).expect("org key");
    let mut admin_dev =
        Device::open(&StateDir::new(dir.path().join("admin")), PASS).expect("unlock");
    sign_roster(
        &admin,
        &mut admin_dev,
        &org,
        hotline_server::unix_now(),
        3600,
    )
    .await
    .expect("a new roster over the old one");
    // Staff prekeys in the fixture expire 30 days after it was written:
    // the staff devices publish fresh ones, as their clients do.
    for name in ["admin", "officer", "coordinator"] {
        let mut staff = Device::open(&StateDir::new(dir.path().join(name)), PASS).expect("unlock");
        let session = authenticate(&info, staff.identity()).await.expect("staff");
        staff.sync_prekeys(&session).await.expect("prekeys");
        session.close().await;
    }
    let mut dev = Device::open(&StateDir::new(dir.path().join("defender")), PASS).expect("unlock");
    let sos = dev
        .raise_alert(
            &defender,
            Priority::Urgent,
            b"category: other\nafter the upgrade",
        )
        .await
        .expect("a new SOS");
    // Pages for the lapsed check-in may come first; the SOS's follows.
    let mut paged = Vec::new();
    while let Some(push) = officer
        .next_push(Duration::from_secs(5))
        .await
        .expect("push")
    {
        if let hotline_proto::alert::Push::Alert(a) = push {
            paged.push(a.id);
            if a.id == sos.id {
                break;
            }
        }
    }
    assert!(
        paged.contains(&sos.id),
        "the officer on duty is paged: {paged:?}"
    );
    server.shutdown().await;
    assert!(verify_store(&data, &key, 4 << 20, None).is_ok());
}

/// The state a store of the earlier layout derives, read through a copy
/// of its sled directory with this build's own decoder (not through the
/// migration under test).
fn state_of_old_layout(data: &Path, key: &KeySource) -> hotline_server::domain::State {
    use hotline_server::log::engine::SledEngine;
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(&data.join("store"), copy.path());
    let keys = open_keys(data, key, Create::Never).expect("keys");
    let engine = SledEngine::open(copy.path(), 4 << 20).expect("sled copy");
    let mut state = hotline_server::domain::State::default();
    hotline_server::log::entries(&engine, &keys, data, |seq, entry| {
        if let hotline_server::log::Entry::Event(bytes) = entry {
            let event = hotline_server::store::codec::decode_event(&bytes).expect("decodes");
            state.apply(seq, &event).expect("applies");
        }
        state.applied_seq = seq;
        Ok(())
    })
    .expect("entries");
    state
}

#[test]
fn the_earlier_layout_migrates_with_the_same_head_and_state_and_its_files_untouched() {
    let checked_in = crate::storage::snapshot_files(&fixture());
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture(), dir.path());
    let data = dir.path().join("data");
    let key = KeySource::File(dir.path().join("master.key"));
    let before = crate::storage::snapshot_files(&data);
    assert!(
        !data.join("log").exists(),
        "the fixture is of the earlier layout"
    );

    // verify works through a temporary copy and writes nothing here.
    let old = verify_store(&data, &key, 4 << 20, None).expect("the old store verifies");
    assert!(old.old_layout);
    assert!(
        crate::storage::snapshot_files(&data) == before,
        "verify changed the data directory"
    );
    let old_state = state_of_old_layout(&data, &key);

    // The first start migrates.
    let keys = open_keys(&data, &key, Create::Never).expect("keys");
    let store = LogStore::open(&data, keys, 4 << 20).expect("migrates and opens");
    assert_eq!(
        store.log().head(),
        (old.verified.head_seq, old.verified.head),
        "the same chain head"
    );
    assert_eq!(store.state(), old_state, "the same derived state");
    store.close().expect("close");
    drop(store);
    assert!(data.join("log").is_dir());
    assert!(!data.join("log.migrating").exists());

    // The old files are byte for byte as they were, and still there.
    let after = crate::storage::snapshot_files(&data);
    for (path, bytes) in before
        .iter()
        .filter(|(p, _)| p.starts_with(data.join("store")))
    {
        assert!(after.get(path) == Some(bytes), "{} changed", path.display());
    }

    // The new layout verifies to the same head; a second start does not
    // migrate again and finds everything.
    let new = verify_store(&data, &key, 4 << 20, None).expect("the new layout verifies");
    assert!(!new.old_layout);
    assert_eq!(new.verified.records, old.verified.records);
    assert_eq!(
        (new.verified.head_seq, new.verified.head),
        (old.verified.head_seq, old.verified.head)
    );
    let keys = open_keys(&data, &key, Create::Never).expect("keys");
    let store = LogStore::open(&data, keys, 4 << 20).expect("opens again");
    assert_eq!(store.state(), old_state);
    drop(store);

    // The checked-in fixture itself was never touched.
    assert!(crate::storage::snapshot_files(&fixture()) == checked_in);
}

#[test]
fn an_earlier_layout_store_that_fails_verification_is_not_migrated_and_not_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture(), dir.path());
    let data = dir.path().join("data");
    let key = KeySource::File(dir.path().join("master.key"));
    // The head file's newest checkpoint no longer verifies.
    let head = data.join("chain.head");
    let mut bytes = std::fs::read(&head).expect("head");
    for b in bytes.iter_mut() {
        *b ^= 0x01;
    }
    std::fs::write(&head, bytes).expect("write");
    let before = crate::storage::snapshot_files(&data);
    let names = |d: &Path| -> Vec<std::ffi::OsString> {
        let mut n: Vec<_> = std::fs::read_dir(d)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        n.sort();
        n
    };
    let names_before = names(&data);
    let keys = open_keys(&data, &key, Create::Never).expect("keys");
    let err = LogStore::open(&data, keys, 4 << 20).expect_err("refused");
    assert!(
        err.to_string()
            .contains(&format!("chain.head ({}) is damaged", head.display())),
        "{err}"
    );
    let mut after = crate::storage::snapshot_files(&data);
    after.remove(&data.join("lock"));
    assert!(after == before, "bytes changed");
    // The only file a refused start creates is the data directory's
    // (empty) lock file, taken before anything of the store is read.
    let names_after: Vec<_> = names(&data).into_iter().filter(|n| n != "lock").collect();
    assert_eq!(names_after, names_before, "files were created");
    assert_eq!(std::fs::read(data.join("lock")).expect("lock").len(), 0);
}
