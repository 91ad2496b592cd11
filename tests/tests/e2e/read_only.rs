//! `hotline-server --read-only`: a damaged store is served up to its last
//! sound record, reads answered, every write refused with a clear error,
//! and not one byte of the data directory changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hotline_client::connection::{self, ServerInfo};
use hotline_proto::alert::Priority;
use hotline_proto::{ErrorCode, Role};
use hotline_server::{Config, DataDir, RunningServer};
use hotline_tests::TestServer;

/// Every file under `dir`, by path.
fn all_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

fn segment(data: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .expect("log dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "hlog"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_served_read_only_answers_reads_refuses_writes_and_changes_nothing() {
    let mut server = TestServer::start().await;
    let data = server.config().data_dir.clone();
    let (admin_id, _admin) = server.enroll(Role::Admin).await;
    let (officer_id, officer) = server.enroll(Role::Officer).await;
    let (defender_id, defender) = server.enroll(Role::Defender).await;
    let (_, other) = server.enroll(Role::Defender).await;
    let first = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    let listed_before: Vec<u64> = officer
        .alerts(false)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed_before, vec![first.id]);
    drop((officer, defender, other));
    server.stop().await;
    let sound_len = std::fs::metadata(segment(&data)).expect("segment").len();

    // A later SOS, whose record is then damaged on disk.
    server.start_again().await;
    let (_, late) = server.enroll(Role::Defender).await;
    late.raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    drop(late);
    server.stop().await;
    let seg = segment(&data);
    let mut bytes = std::fs::read(&seg).expect("read");
    assert!(bytes.len() as u64 > sound_len + 64);
    bytes[sound_len as usize + 40] ^= 0x01;
    std::fs::write(&seg, &bytes).expect("flip one byte");
    let before = all_files(&data);

    // A normal start refuses it (and names the damage); read-only serves.
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..server.config().clone()
    };
    assert!(DataDir::open(&config, server.key()).is_err(), "refused");
    let (dir, left_out) = DataDir::open_read_only(&config, server.key()).expect("read-only");
    let (first_bad, _) = left_out.expect("the damage is named");
    assert!(first_bad > 1);
    let running = RunningServer::start_with(config.clone(), dir)
        .await
        .expect("serves read-only");
    let info = ServerInfo {
        addr: running.local_addr().to_string(),
        name: config.server_name.clone(),
        pin: running.cert_pin(),
    };
    let officer = connection::authenticate(&info, &officer_id)
        .await
        .expect("the officer signs in");
    let listed: Vec<u64> = officer
        .alerts(false)
        .await
        .expect("alerts are served")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, listed_before, "the alerts before the damage");
    let admin = connection::authenticate(&info, &admin_id)
        .await
        .expect("admin");
    let storage = admin.status().await.expect("status").storage.expect("st");
    assert!(storage.read_only, "admins see the store is read-only");
    // Every write is refused, clearly.
    let defender = connection::authenticate(&info, &defender_id)
        .await
        .expect("the defender signs in");
    let refused = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect_err("nothing can be saved");
    assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    assert!(refused.to_string().contains("read-only"), "{refused}");
    assert!(
        officer.set_duty(true).await.is_err(),
        "a duty change is refused"
    );
    drop((officer, admin, defender));
    running.shutdown().await;

    // Not one byte of the data directory changed.
    let after = all_files(&data);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no file created or removed"
    );
    for (path, old) in &before {
        assert!(after[path] == *old, "{path:?} changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_serving_says_which_records_are_missing_when_the_newest_were_lost() {
    let mut server = TestServer::start().await;
    let data = server.config().data_dir.clone();
    let (officer_id, officer) = server.enroll(Role::Officer).await;
    let (_, defender) = server.enroll(Role::Defender).await;
    let first = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    drop((officer, defender));
    server.stop().await;
    let sound_len = std::fs::metadata(segment(&data)).expect("segment").len();

    // A later SOS, acknowledged; then the newest part of the log is lost
    // (cut at a frame boundary: no damage is left to find in the files).
    server.start_again().await;
    let (_, late) = server.enroll(Role::Defender).await;
    late.raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    drop(late);
    server.stop().await;
    let seg = segment(&data);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open");
    f.set_len(sound_len).expect("cut");
    drop(f);

    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..server.config().clone()
    };
    let (dir, left_out) = DataDir::open_read_only(&config, server.key()).expect("read-only");
    let (first_missing, why) = left_out.expect("the loss is named, not 'no damage found'");
    assert!(first_missing > 1);
    assert!(why.contains("missing"), "{why}");
    assert!(why.contains("chain.head"), "{why}");
    // What is there is still served.
    let running = RunningServer::start_with(config.clone(), dir)
        .await
        .expect("serves read-only");
    let info = ServerInfo {
        addr: running.local_addr().to_string(),
        name: config.server_name.clone(),
        pin: running.cert_pin(),
    };
    let officer = connection::authenticate(&info, &officer_id)
        .await
        .expect("the officer signs in");
    let listed: Vec<u64> = officer
        .alerts(false)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, vec![first.id]);
    drop(officer);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_serving_is_refused_beside_a_running_server_and_keeps_a_start_out() {
    let mut server = TestServer::start().await;
    let data = server.config().data_dir.clone();
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..server.config().clone()
    };
    let Err(err) = DataDir::open_read_only(&config, server.key()) else {
        panic!("refused while a server writes the store");
    };
    assert!(err.to_string().contains("held by another process"), "{err}");
    server.stop().await;

    // While it serves read-only, a normal start is refused in turn.
    let before = all_files(&data);
    let (dir, _) = DataDir::open_read_only(&config, server.key()).expect("read-only");
    let Err(err) = DataDir::open(&config, server.key()) else {
        panic!("a normal start is refused while read-only serving runs");
    };
    assert!(err.to_string().contains("held by another process"), "{err}");
    drop(dir);
    assert_eq!(before, all_files(&data), "nothing changed");
    DataDir::open(&config, server.key()).expect("a normal start once it stopped");
}
