//! A full disk degrades the server, then it heals by itself: on a real,
//! small filesystem (tmpfs, which needs root to mount; skipped with a
//! printed reason otherwise), filled by a ballast file. While it is full,
//! `status` and the alert list answer, an SOS is refused with the clear
//! "nothing was saved" error (the defender's device keeps it and retries),
//! and admins see the storage degraded; once the ballast is gone the
//! retried SOS is accepted without a restart, and the store verifies.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hotline_proto::alert::Priority;
use hotline_proto::{ErrorCode, Role};
use hotline_tests::TestServer;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        // SAFETY of the environment: only root may mount.
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("cannot run id: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not root: a tmpfs cannot be mounted".into());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `path` with a ballast file until a write
/// fails for lack of space.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("ballast");
    let mut chunk = vec![0xA5u8; 1 << 20];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(_) if chunk.len() > 512 => chunk.truncate(chunk.len() / 2),
            Err(_) => break,
        }
    }
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_heals_without_a_restart() {
    let outer = tempfile::tempdir().expect("tempdir");
    let disk = outer.path().join("disk");
    let mount = match Tmpfs::mount(&disk, "24m") {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let data = disk.join("data");
    let mut server = TestServer::start_with(|c| {
        c.data_dir = data.clone();
        c.escalation_tick_ms = 100;
        // Room for the SOSes that fit in the segment's last page.
        c.limits.request_burst = 10_000;
        c.limits.requests_per_second = 10_000;
    })
    .await;
    let (_, admin) = server.enroll(Role::Admin).await;
    let (officer_identity, officer) = server.enroll(Role::Officer).await;
    let (_, defender) = server.enroll(Role::Defender).await;
    let (_, second) = server.enroll(Role::Defender).await;
    officer.set_duty(true).await.expect("on duty");
    let first = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised while there is room");
    let storage = admin
        .status()
        .await
        .expect("status")
        .storage
        .expect("admins see the storage");
    assert!(storage.degraded.is_none());
    assert!(storage.free_bytes.is_some_and(|b| b > 0));

    let ballast = disk.join("ballast");
    fill(&ballast);
    // A few small records may still fit in the segment's last page: the
    // officer goes off and on duty until the first write that needs space
    // fails ...
    let mut acknowledged = 0;
    let failed = loop {
        match officer.set_duty(acknowledged % 2 == 1).await {
            Ok(()) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 5000, "a full disk never refused a write");
    };
    assert_eq!(failed.code(), Some(ErrorCode::Unavailable), "{failed}");
    // ... and from then on an SOS cannot be saved: refused, with the clear
    // error, never acknowledged.
    let refused = second
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect_err("nothing can be saved on a full disk");
    assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    assert!(refused.is_transient(), "the device keeps it and retries");
    assert!(
        refused.to_string().contains("storage is full or failing")
            && refused.to_string().contains("nothing was saved"),
        "{refused}"
    );
    // Reads go on: status, the alert list (without the refused SOS).
    let status = admin.status().await.expect("status answers while full");
    let storage = status.storage.expect("storage");
    let (since, reason) = storage.degraded.expect("admins see it degraded");
    assert!(storage.free_bytes.is_some());
    assert!(since > 0 && !reason.is_empty());
    // Officers see that writes are refused and since when, not why or
    // the free space.
    let officer_status = officer.status().await.expect("status");
    let officer_storage = officer_status.storage.expect("the duty team sees it");
    assert_eq!(officer_storage.degraded, Some((since, String::new())));
    assert_eq!(officer_storage.free_bytes, None);
    let alerts = officer
        .alerts(true)
        .await
        .expect("alerts answer while full");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].id, first.id);
    // An officer who reconnects now signs in and reads (and is given the
    // pages already stored).
    let again = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("signing in needs no write");
    assert_eq!(again.alerts(true).await.expect("alerts").len(), 1);
    drop(again);
    // Still refused on a retry while full.
    assert!(
        second
            .raise_alert_with(Priority::Immediate, None)
            .await
            .is_err()
    );

    // Space returns: the server heals by itself, no restart.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let st = admin.status().await.expect("status").storage.expect("st");
        if st.degraded.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not heal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let retried = second
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("the retried SOS is accepted once space returns");
    let alerts = officer.alerts(true).await.expect("alerts");
    let ids: Vec<u64> = alerts.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 2, "the first SOS and the retried one: {ids:?}");
    assert!(ids.contains(&first.id) && ids.contains(&retried.id));
    // The duty changes acknowledged before the disk filled are there; the
    // refused one is not (the server's state went back to the disk's).
    let expected = if acknowledged == 0 {
        true
    } else {
        (acknowledged - 1) % 2 == 1
    };
    let duty = officer.duty_status().await.expect("duty");
    let officer_id = officer_status.device_id;
    let entry = duty
        .iter()
        .find(|d| d.device_id == officer_id)
        .expect("the officer");
    assert_eq!(entry.declared, expected, "after {acknowledged} changes");

    // Every acknowledged write is there after a restart, and the store
    // verifies.
    server.restart().await;
    server.stop().await;
    let report = hotline_server::store::verify_store(&data, server.key(), 1 << 20, None)
        .expect("the store verifies");
    assert!(report.verified.records > 0);
    drop(mount);
}

/// The files under `dir`, by path relative to it, with their bytes.
fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.insert(path.strip_prefix(dir).expect("under").to_owned(), bytes);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_on_a_full_disk_serves_reads_refuses_writes_and_heals() {
    let outer = tempfile::tempdir().expect("tempdir");
    let disk = outer.path().join("disk");
    let mount = match Tmpfs::mount(&disk, "24m") {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let data = disk.join("data");
    let mut server = TestServer::start_with(|c| {
        c.data_dir = data.clone();
        c.escalation_tick_ms = 100;
    })
    .await;
    let (admin_identity, admin) = server.enroll(Role::Admin).await;
    let (officer_identity, officer) = server.enroll(Role::Officer).await;
    let (defender_identity, defender) = server.enroll(Role::Defender).await;
    officer.set_duty(true).await.expect("on duty");
    let first = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised while there is room");
    drop((admin, officer, defender));
    server.stop().await;

    // The disk fills while the server is down (a supervisor restarts it).
    let cache_before = files_under(&data.join("cache"));
    assert!(
        !cache_before.is_empty(),
        "the first run saved a snapshot cache"
    );
    let ballast = disk.join("ballast");
    fill(&ballast);
    server.start_again().await;

    // It serves: sign-in, status and the alert list need no write.
    let admin = hotline_client::connection::authenticate(&server.info(), &admin_identity)
        .await
        .expect("an admin signs in on a full disk");
    let officer = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("an officer signs in on a full disk");
    let defender = hotline_client::connection::authenticate(&server.info(), &defender_identity)
        .await
        .expect("a defender signs in on a full disk");
    let storage = admin.status().await.expect("status").storage.expect("st");
    let (since, reason) = storage
        .degraded
        .expect("the admin sees writes refused from the start");
    assert!(since > 0);
    assert!(reason.contains("No space left"), "{reason}");
    let alerts = officer.alerts(true).await.expect("alerts answer");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].id, first.id);
    // A write is refused with the documented error, never acknowledged.
    let refused = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect_err("nothing can be saved on a full disk");
    assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    assert!(refused.is_transient(), "the device keeps it and retries");
    assert!(
        refused.to_string().contains("nothing was saved"),
        "{refused}"
    );
    // The healthy snapshot cache was left where it was, and no probe file
    // lies around.
    let names: Vec<String> = std::fs::read_dir(&data)
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("cache.damaged")),
        "the cache was moved aside: {names:?}"
    );
    // (sled's open may have grown its file with zeros before it failed:
    // what it held is still there.)
    let cache_after = files_under(&data.join("cache"));
    assert_eq!(
        cache_after.keys().collect::<Vec<_>>(),
        cache_before.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &cache_before {
        assert!(
            cache_after[name].starts_with(bytes),
            "{} changed",
            name.display()
        );
    }
    assert!(!data.join("log").join("probe.tmp").exists());

    // Space returns: writes resume without a restart.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while admin
        .status()
        .await
        .expect("status")
        .storage
        .expect("st")
        .degraded
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not heal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let retried = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("the retried SOS is accepted once space returns");
    let ids: Vec<u64> = officer
        .alerts(true)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    assert!(
        ids.contains(&first.id) && ids.contains(&retried.id),
        "{ids:?}"
    );
    drop((admin, officer, defender));
    server.stop().await;
    assert!(!data.join("log").join("probe.tmp").exists());
    // No unfinished snapshot file of sled's is left in the cache by the
    // start on the full disk (issue 13, I3).
    let unfinished: Vec<_> = files_under(&data.join("cache"))
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".generating"))
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:?}");
    let report = hotline_server::store::verify_store(&data, server.key(), 1 << 20, None)
        .expect("the store verifies");
    assert!(report.verified.records > 0);
    drop(mount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_open_the_store_on_a_full_disk_says_so_in_words() {
    let outer = tempfile::tempdir().expect("tempdir");
    let disk = outer.path().join("disk");
    let mount = match Tmpfs::mount(&disk, "8m") {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    fill(&disk.join("ballast"));
    let key_path = outer.path().join("master.key");
    hotline_server::log::keys::generate_key_file(&key_path).expect("key");
    let data = disk.join("data");
    let config = hotline_server::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.clone(),
        ..hotline_server::Config::default()
    };
    // A new store cannot be created on a full disk.
    let err = hotline_server::RunningServer::start(
        config,
        &hotline_server::log::keys::KeySource::File(key_path),
    )
    .await
    .expect_err("no store fits");
    let text = err.to_string();
    assert!(
        text.contains(&format!("the disk holding {} is full", data.display()))
            && text.contains("bytes free")
            && text.contains("free space and start again"),
        "{text}"
    );
    drop(mount);
}

/// A store whose certificate has no record yet (as one written before the
/// record existed), started on a full disk: it opens, verifies and
/// serves; recording the pin waits (no `cert.bound.new` left behind, no
/// new certificate), and the first start with room records it in
/// `tls/cert.bound` and in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_its_certificate_record_starts_on_a_full_disk_and_records_it_later() {
    use hotline_server::domain::CertificateRecord;
    use hotline_server::endpoint::tls::TlsIdentity;
    use hotline_server::log::keys::{KdfParams, KeySource, generate_key_file};
    use hotline_server::store::{Create, LogStore, open_keys};
    use hotline_server::{Config, RunningServer};

    let outer = tempfile::tempdir().expect("tempdir");
    let disk = outer.path().join("disk");
    let _mount = match Tmpfs::mount(&disk, "24m") {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let data = disk.join("data");
    let key_path = outer.path().join("master.key");
    generate_key_file(&key_path).expect("key file");
    let key = KeySource::File(key_path);
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.clone(),
        ..Config::default()
    };
    config.limits.store_cache_bytes = 4 << 20;
    // The store and its certificate, without any record of the pin.
    std::fs::create_dir(&data).expect("data dir");
    let keys = open_keys(&data, &key, Create::IfMissing(KdfParams::default())).expect("keys");
    let store = LogStore::open(&data, keys, 4 << 20).expect("store");
    let pin = TlsIdentity::create(&config, store.log().keys())
        .expect("certificate")
        .pin;
    store.close().expect("close");
    drop(store);
    let bound = data.join("tls/cert.bound");
    assert!(!bound.exists());

    let ballast = disk.join("ballast");
    fill(&ballast);
    let server = RunningServer::start(config.clone(), &key)
        .await
        .expect("a full disk does not stop the start");
    assert_eq!(
        server.cert_pin(),
        pin,
        "the same certificate, not a new one"
    );
    server.shutdown().await;
    assert!(!bound.exists(), "nothing recorded on a full disk");
    assert!(
        !data.join("tls/cert.bound.new").exists(),
        "no half-written record left behind"
    );

    std::fs::remove_file(&ballast).expect("free the disk");
    let server = RunningServer::start(config.clone(), &key)
        .await
        .expect("starts with room");
    assert_eq!(server.cert_pin(), pin);
    server.shutdown().await;
    assert!(bound.exists(), "recorded once there is room");
    let keys = open_keys(&data, &key, Create::Never).expect("keys");
    let store = LogStore::open(&data, keys, 4 << 20).expect("store");
    assert_eq!(
        store.state().certificate,
        CertificateRecord::Pinned(*pin.as_bytes()),
        "and in the log"
    );
    store.close().expect("close");
}
