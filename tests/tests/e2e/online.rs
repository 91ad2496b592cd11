//! Maintenance without downtime: `verify` and `backup` while the server
//! takes writes report no damage and change no byte of the data directory
//! (beyond the server's own appends); the backup verifies, and restored
//! into a new directory it gives a server that serves the alerts up to
//! the backup point.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hotline_client::connection::{self, ServerInfo};
use hotline_proto::Role;
use hotline_proto::alert::Priority;
use hotline_server::{Config, RunningServer};
use hotline_tests::TestServer;

/// Every file under `dir` (not the snapshot cache, which the server
/// rewrites), by path.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").to_owned();
            if rel.starts_with("cache") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_verify_while_the_server_writes_and_the_restored_copy_serves() {
    let mut server = TestServer::start_with(|c| {
        c.limits.request_burst = 10_000;
        c.limits.requests_per_second = 10_000;
    })
    .await;
    let data = server.config().data_dir.clone();
    let (officer_identity, officer) = server.enroll(Role::Officer).await;
    for _ in 0..5 {
        let (_, defender) = server.enroll(Role::Defender).await;
        defender
            .raise_alert_with(Priority::Immediate, None)
            .await
            .expect("raised");
    }
    let pin = server.info().pin;
    // A writer that goes on while verify and backup run: a new defender
    // raises an SOS, again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let invites: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..100 {
            v.push(server.invite(Role::Defender).await);
        }
        v
    };
    let (_, duty_officer) = server.enroll(Role::Officer).await;
    let writer = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut raised = 0u32;
            let mut invites = invites.into_iter();
            let mut on = false;
            while !stop.load(Ordering::SeqCst) {
                if let Some(invite) = invites.next() {
                    let (identity, _) = hotline_proto::IdentityKeyPair::generate().expect("rng");
                    let s = connection::enroll(&invite, &identity)
                        .await
                        .expect("enroll");
                    s.raise_alert_with(Priority::Urgent, None)
                        .await
                        .expect("raised while verify and backup run");
                    raised += 1;
                }
                on = !on;
                duty_officer.set_duty(on).await.expect("duty");
            }
            raised
        })
    };
    // The server signs a checkpoint at least every second while it writes.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let before = files(&data);

    let key = server.key().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let backup_dir = dir.path().join("backup");
    let (verified, backup) = {
        let (data, key, backup_dir) = (data.clone(), key.clone(), backup_dir.clone());
        tokio::task::spawn_blocking(move || {
            let v = hotline_server::store::verify_store(&data, &key, 1 << 20, None)
                .expect("verify while the server writes reports no damage");
            let b = hotline_server::store::backup(&data, &key, &backup_dir)
                .expect("backup while the server writes");
            (v, b)
        })
        .await
        .expect("task")
    };
    assert!(verified.verified.records > 0);
    assert!(backup.verified.records >= verified.verified.records);
    assert!(
        backup.checkpoint.is_some(),
        "the backup holds a signed checkpoint"
    );
    assert!(
        !backup_dir.join("cache").exists(),
        "the snapshot cache is never copied"
    );

    let seen_before: Vec<u64> = officer
        .alerts(false)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    assert!(seen_before.len() >= 5);

    // Nothing in the live data directory changed but the server's own
    // appends: every file is as it was, or (the open segment, chain.head's
    // two slots aside) grew by appends only.
    let after = files(&data);
    for (path, old) in &before {
        let new = after
            .get(path)
            .unwrap_or_else(|| panic!("{path:?} vanished"));
        if path.ends_with("chain.head") {
            continue; // the server signs checkpoints into it as it writes
        }
        assert!(
            new.starts_with(old),
            "{path:?} changed other than by the server's appends"
        );
        if !path.starts_with("log") {
            assert_eq!(new, old, "{path:?} changed");
        }
    }
    stop.store(true, Ordering::SeqCst);
    let raised = writer.await.expect("writer");
    assert!(raised > 0);
    server.stop().await;

    // Restored into a new directory: it verifies and serves the alerts
    // up to the backup point.
    let restored = dir.path().join("restored");
    let report = hotline_server::store::restore(&backup_dir, &key, &restored).expect("restore");
    assert_eq!(report.verified.head_seq, backup.verified.head_seq);
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: restored.clone(),
        ..Config::default()
    };
    let running = RunningServer::start(config.clone(), &key)
        .await
        .expect("the restored store serves");
    // An officer of the old server signs in to the restored one (same
    // certificate, same devices) and sees the alerts raised before the
    // backup.
    let info = ServerInfo {
        addr: running.local_addr().to_string(),
        name: config.server_name.clone(),
        pin: running.cert_pin(),
    };
    assert_eq!(running.cert_pin(), pin, "the certificate came along");
    let officer = connection::authenticate(&info, &officer_identity)
        .await
        .expect("the officer signs in to the restored server");
    let seen_after: Vec<u64> = officer
        .alerts(false)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    for id in &seen_before {
        assert!(
            seen_after.contains(id),
            "an alert listed before the backup was taken is served: {id}"
        );
    }
    running.shutdown().await;
    // And it verifies after serving.
    hotline_server::store::verify_store(&restored, &key, 1 << 20, None).expect("verifies");
}

/// A store of the earlier layout (sled only) is not backed up by
/// `backup`, which would find no segments: it says to migrate first, and
/// creates nothing.
#[test]
fn a_store_of_the_earlier_layout_is_not_backed_up_and_the_operator_is_told_why() {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read").flatten() {
            let p = e.path();
            if p.is_dir() {
                copy_dir(&p, &to.join(e.file_name()));
            } else {
                std::fs::copy(&p, to.join(e.file_name())).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-v1"),
        dir.path(),
    );
    let data = dir.path().join("data");
    let key = hotline_server::log::keys::KeySource::File(dir.path().join("master.key"));
    let before = files(&data);
    let to = dir.path().join("backup");
    let err = hotline_server::store::backup(&data, &key, &to).expect_err("refused");
    assert!(err.to_string().contains("earlier layout"), "{err}");
    assert!(!to.exists(), "nothing created");
    assert_eq!(files(&data), before, "nothing changed");
}

/// A restore that fails midway (here: a backup file it cannot read) leaves
/// no half-restored data directory where a server could be started; a
/// later restore, with the backup repaired, makes a whole one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_midway_leaves_no_data_directory_behind() {
    let mut server = TestServer::start().await;
    let (_, defender) = server.enroll(Role::Defender).await;
    defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    drop(defender);
    server.stop().await;
    let data = server.config().data_dir.clone();
    let key = server.key().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let backup_dir = dir.path().join("backup");
    hotline_server::store::backup(&data, &key, &backup_dir).expect("backup");

    // The TLS key (copied after the segments) cannot be read.
    let sealed = backup_dir.join("tls/key.sealed");
    let saved = std::fs::read(&sealed).expect("read");
    std::fs::remove_file(&sealed).expect("rm");
    std::fs::create_dir(&sealed).expect("unreadable as a file");
    let restored = dir.path().join("restored");
    hotline_server::store::restore(&backup_dir, &key, &restored).expect_err("fails midway");
    assert!(
        !restored.exists(),
        "no half-restored data directory: {:?}",
        std::fs::read_dir(&restored).map(|d| d.count())
    );

    std::fs::remove_dir(&sealed).expect("rmdir");
    std::fs::write(&sealed, saved).expect("repair");
    let report = hotline_server::store::restore(&backup_dir, &key, &restored).expect("restore");
    assert_eq!(report.dir, restored);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    hotline_server::store::verify_store(&restored, &key, 1 << 20, None).expect("verifies");
}

/// A restore whose final rename (of `<to>.partial` to `to`, through the
/// log's file operations) fails says so and leaves no data directory
/// where a server could be started; a later restore makes a whole one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_final_rename_fails_leaves_no_data_directory_behind() {
    use hotline_server::log::fs::{Fault, FaultFs, Op};
    let mut server = TestServer::start().await;
    let (_, defender) = server.enroll(Role::Defender).await;
    defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    drop(defender);
    server.stop().await;
    let data = server.config().data_dir.clone();
    let key = server.key().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let backup_dir = dir.path().join("backup");
    hotline_server::store::backup(&data, &key, &backup_dir).expect("backup");
    let restored = dir.path().join("restored");
    let faults = FaultFs::new();
    faults.fail_from(Op::Rename, 1, Fault::Eio);
    let err = hotline_server::store::restore_with_fs(&backup_dir, &key, &restored, faults.handle())
        .expect_err("the rename fails");
    assert!(
        err.to_string().contains("cannot rename the restored copy"),
        "{err}"
    );
    assert_eq!(faults.calls(Op::Rename), 1);
    assert!(!restored.exists(), "no data directory was made");
    let report = hotline_server::store::restore(&backup_dir, &key, &restored).expect("restore");
    assert_eq!(report.dir, restored);
    hotline_server::store::verify_store(&restored, &key, 1 << 20, None).expect("verifies");
}

/// A backup target that reaches into the data directory through a
/// symbolic link (or `..`) is refused like a plain path inside it.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_into_the_data_directory_through_a_link_is_refused() {
    let mut server = TestServer::start().await;
    server.stop().await;
    let data = server.config().data_dir.clone();
    let key = server.key().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&data, &link).expect("symlink");
    let before = files(&data);
    for to in [link.join("bk"), link.join("new").join("bk")] {
        let err = hotline_server::store::backup(&data, &key, &to).expect_err("refused");
        assert!(
            err.to_string().contains("outside the data directory"),
            "{err}"
        );
    }
    let name = data.file_name().expect("name");
    let dotted = data.join("..").join(name).join("bk");
    let err = hotline_server::store::backup(&link, &key, &dotted).expect_err("refused");
    assert!(
        err.to_string().contains("outside the data directory"),
        "{err}"
    );
    assert_eq!(
        files(&data),
        before,
        "nothing created in the data directory"
    );
}
