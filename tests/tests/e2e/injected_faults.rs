//! A full disk, injected: the same walk as `full_disk.rs`, with `ENOSPC`
//! injected into every write of the log's files from some point on
//! (`hotline_server::log::fs::FaultFs`) instead of a small tmpfs, so that
//! it runs unprivileged. The server, QUIC, TLS, clients and store are the
//! real ones; only the write system call is told to fail. While writes
//! fail, `status` and the alert list answer, an SOS is refused with the
//! clear "nothing was saved" error, and admins see the storage degraded;
//! once the fault is lifted the server heals by itself, the retried SOS is
//! accepted without a restart, and every acknowledged write is there,
//! after a restart too.

use std::time::Duration;

use hotline_proto::alert::Priority;
use hotline_proto::{ErrorCode, Role};
use hotline_server::log::fs::{Fault, FaultFs, Op};
use hotline_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_full_disk_refuses_writes_keeps_reads_and_heals_without_a_restart() {
    let faults = FaultFs::new();
    let handle = faults.handle();
    let mut server = TestServer::start_with(|c| {
        c.dangerous_log_file_ops = Some(handle);
        c.escalation_tick_ms = 100;
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

    // The disk is full from now on: every write of the log's files fails
    // with ENOSPC (the heal's probe included) until the fault is lifted.
    faults.fail_from(Op::Write, 1, Fault::Enospc);
    let failed = officer
        .set_duty(false)
        .await
        .expect_err("nothing can be saved");
    assert_eq!(failed.code(), Some(ErrorCode::Unavailable), "{failed}");
    let refused = second
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect_err("an SOS cannot be saved on a full disk");
    assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    assert!(refused.is_transient(), "the device keeps it and retries");
    assert!(
        refused.to_string().contains("storage is full or failing")
            && refused.to_string().contains("nothing was saved"),
        "{refused}"
    );
    // Reads go on: status (admins see the storage degraded, with why),
    // the alert list (without the refused SOS), signing in.
    let status = admin.status().await.expect("status answers while full");
    let storage = status.storage.expect("storage");
    let (since, reason) = storage.degraded.expect("admins see it degraded");
    assert!(since > 0, "{reason}");
    assert!(reason.contains("No space left"), "{reason}");
    // Officers see that writes are refused and since when, never why or
    // the free space; a defender's device learns nothing of it.
    let officer_status = officer.status().await.expect("status");
    let officer_storage = officer_status
        .storage
        .clone()
        .expect("the duty team sees the storage");
    assert_eq!(officer_storage.degraded, Some((since, String::new())));
    assert_eq!(officer_storage.free_bytes, None);
    assert_eq!(officer_storage.warn_below, None);
    let defender_status = second.status().await.expect("status");
    assert!(defender_status.storage.is_none(), "not for defenders");
    let alerts = officer
        .alerts(true)
        .await
        .expect("alerts answer while full");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].id, first.id);
    let again = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("signing in needs no write");
    assert_eq!(again.alerts(true).await.expect("alerts").len(), 1);
    drop(again);
    // The server tries to heal by itself and is refused by the disk: it
    // stays degraded, and an SOS retried meanwhile is still refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while faults.injected().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heal was tried: {:?}",
            faults.injected()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = admin.status().await.expect("status").storage.expect("st");
    assert!(st.degraded.is_some(), "healed while the disk was full");
    assert!(
        second
            .raise_alert_with(Priority::Immediate, None)
            .await
            .is_err()
    );

    // Space returns: the server heals by itself, no restart.
    faults.lift();
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
    let ids: Vec<u64> = officer
        .alerts(true)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids.len(), 2, "the first SOS and the retried one: {ids:?}");
    assert!(ids.contains(&first.id) && ids.contains(&retried.id));
    // The refused duty change is not there (the state went back to the
    // disk's): the officer is still on duty.
    let officer_id = officer_status.device_id;
    let on_duty = |duty: Vec<hotline_proto::message::DutyEntry>| {
        duty.iter()
            .find(|d| d.device_id == officer_id)
            .expect("the officer")
            .declared
    };
    assert!(on_duty(officer.duty_status().await.expect("duty")));

    // After a restart (on the real file system), every acknowledged write
    // is there and the store verifies.
    server
        .restart_with(|c| c.dangerous_log_file_ops = None)
        .await;
    let officer = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("signs in after the restart");
    let mut after: Vec<u64> = officer
        .alerts(true)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    after.sort();
    let mut want = vec![first.id, retried.id];
    want.sort();
    assert_eq!(after, want);
    assert!(on_duty(officer.duty_status().await.expect("duty")));
    drop(officer);
    server.stop().await;
    let report =
        hotline_server::store::verify_store(&server.config().data_dir, server.key(), 1 << 20, None)
            .expect("the store verifies");
    assert!(report.verified.records > 0);
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files_under(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under").to_owned();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

/// The unprivileged twin of `full_disk.rs`'s
/// `a_server_started_on_a_full_disk_serves_reads_refuses_writes_and_heals`:
/// the disk is "full" (every write of the log's files fails with ENOSPC
/// from the first call) when the server starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_on_an_injected_full_disk_serves_reads_refuses_writes_and_heals() {
    let mut server = TestServer::start_with(|c| c.escalation_tick_ms = 100).await;
    let data = server.config().data_dir.clone();
    let (admin_identity, admin) = server.enroll(Role::Admin).await;
    let (officer_identity, officer) = server.enroll(Role::Officer).await;
    let (_, defender) = server.enroll(Role::Defender).await;
    let (second_identity, second) = server.enroll(Role::Defender).await;
    officer.set_duty(true).await.expect("on duty");
    let first = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised while there is room");
    drop((admin, officer, defender, second));
    server.stop().await;

    // The disk is full while the server is down (a supervisor restarts
    // it): every write of the log's files fails, the start's included.
    let cache_before = files_under(&data.join("cache"));
    assert!(
        !cache_before.is_empty(),
        "the first run saved a snapshot cache"
    );
    let log_before = files_under(&data.join("log"));
    let faults = FaultFs::new();
    faults.fail_from(Op::Write, 1, Fault::Enospc);
    let handle = faults.handle();
    server
        .restart_with(|c| c.dangerous_log_file_ops = Some(handle))
        .await;
    assert!(
        faults
            .injected()
            .iter()
            .any(|i| i.op == Op::Write && i.fault == Fault::Enospc),
        "the start wrote nothing through the file operations: {:?}",
        faults.injected()
    );

    // It serves: sign-in, status and the alert list need no write.
    let admin = hotline_client::connection::authenticate(&server.info(), &admin_identity)
        .await
        .expect("an admin signs in on a full disk");
    let officer = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("an officer signs in on a full disk");
    let second = hotline_client::connection::authenticate(&server.info(), &second_identity)
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
    // An SOS is refused with the documented error, never acknowledged.
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
    // Nothing was moved aside, the log's files hold what they held, and
    // no probe file lies around.
    let names: Vec<String> = std::fs::read_dir(&data)
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("damaged")),
        "something was moved aside: {names:?}"
    );
    // (sled does its own I/O, outside the seam, on a disk with room: it
    // may add a snapshot file of its own; what it held is still there.)
    let cache_after = files_under(&data.join("cache"));
    for name in cache_before.keys() {
        assert!(
            cache_after.contains_key(name),
            "the snapshot cache is not where it was: {} is gone",
            name.display()
        );
    }
    assert_eq!(files_under(&data.join("log")), log_before);

    // Space returns: writes resume without a restart.
    faults.lift();
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
    let retried = second
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
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids.contains(&first.id) && ids.contains(&retried.id),
        "{ids:?}"
    );
    drop((admin, officer, second));

    // After a restart on the real file system, every acknowledged write
    // is there and the store verifies.
    server
        .restart_with(|c| c.dangerous_log_file_ops = None)
        .await;
    let officer = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("signs in after the restart");
    let mut after: Vec<u64> = officer
        .alerts(true)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    after.sort();
    let mut want = vec![first.id, retried.id];
    want.sort();
    assert_eq!(after, want);
    drop(officer);
    server.stop().await;
    assert!(!data.join("log").join("probe.tmp").exists());
    let report = hotline_server::store::verify_store(&data, server.key(), 1 << 20, None)
        .expect("the store verifies");
    assert!(report.verified.records > 0);
}

/// The files in the log directory whose name starts with `prefix`, with
/// their contents.
fn log_files_starting(data_dir: &std::path::Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(data_dir.join("log"))
        .expect("log directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_ending_in_an_incomplete_write_starts_on_a_full_disk_and_sets_it_aside_once_healed() {
    let faults = FaultFs::new();
    let handle = faults.handle();
    let mut server = TestServer::start_with(|c| {
        c.dangerous_log_file_ops = Some(handle);
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
        .expect("raised");
    drop((admin, officer, defender));
    server.stop().await;

    // Killed mid-write: the newest segment ends in bytes that never made
    // a whole record (never acknowledged).
    let data_dir = server.config().data_dir.clone();
    let (newest, whole) = log_files_starting(&data_dir, "seg-")
        .pop()
        .expect("a segment");
    let seg = data_dir.join("log").join(&newest);
    let mut torn = whole.clone();
    torn.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&seg, &torn).expect("tear the tail");

    // Restarted while the disk is full: it starts, serving reads.
    faults.fail_from(Op::Write, 1, Fault::Enospc);
    server.start_again().await;
    let admin = hotline_client::connection::authenticate(&server.info(), &admin_identity)
        .await
        .expect("signing in needs no write");
    let officer = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("signing in needs no write");
    let defender = hotline_client::connection::authenticate(&server.info(), &defender_identity)
        .await
        .expect("signing in needs no write");
    let storage = admin.status().await.expect("status").storage.expect("st");
    let (_, reason) = storage.degraded.expect("it starts degraded");
    assert!(reason.contains("No space left"), "{reason}");
    let alerts = officer.alerts(true).await.expect("alerts answer");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].id, first.id);
    let refused = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect_err("nothing can be saved on a full disk");
    assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    assert!(refused.is_transient(), "{refused}");
    // The heal is tried (and refused) a few times: no copy of the
    // incomplete write is left, empty or partial, and the segment keeps it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while faults.injected().len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heal was tried: {:?}",
            faults.injected()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(log_files_starting(&data_dir, "torn-after"), vec![]);
    assert_eq!(std::fs::read(&seg).expect("segment"), torn);

    // Space returns: the server heals by itself, the incomplete write is
    // set aside once (whole), and writes resume.
    faults.lift();
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
    officer
        .set_duty(false)
        .await
        .expect("writes resume once space returns");
    let aside = log_files_starting(&data_dir, "torn-after");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].0.ends_with(".bin"), "{aside:?}");
    assert_eq!(aside[0].1, vec![0u8; 4096]);

    drop((admin, officer, defender));
    server
        .restart_with(|c| c.dangerous_log_file_ops = None)
        .await;
    let officer = hotline_client::connection::authenticate(&server.info(), &officer_identity)
        .await
        .expect("signs in after the restart");
    let mut ids: Vec<u64> = officer
        .alerts(true)
        .await
        .expect("alerts")
        .iter()
        .map(|a| a.id)
        .collect();
    ids.sort();
    let mut want = vec![first.id, retried.id];
    want.sort();
    want.dedup();
    assert_eq!(ids, want);
    let me = officer.status().await.expect("status").device_id;
    let duty = officer.duty_status().await.expect("duty");
    let mine = duty
        .iter()
        .find(|d| d.device_id == me)
        .expect("the officer");
    assert!(
        !mine.declared,
        "the duty change made after the heal is kept"
    );
    drop(officer);
    server.stop().await;
    assert_eq!(log_files_starting(&data_dir, "torn-after").len(), 1);
    hotline_server::store::verify_store(&data_dir, server.key(), 1 << 20, None)
        .expect("the store verifies");
}
