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
