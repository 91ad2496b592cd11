//! Duress, end to end: nothing the defender's device can observe tells a
//! duress check-in from a normal one (ids, answers, sizes), nothing about a
//! duress alert reaches that device, the server holds no check-in value a
//! brute force of the codes could use, and staff hear of schedule changes
//! and late check-ins.

use std::collections::HashSet;
use std::time::Duration;

use hotline_client::StateDir;
use hotline_client::messenger::Sent;
use hotline_client::outbox::Outgoing;
use hotline_proto::alert::{AlertOrigin, CheckinKey, CloseReason, Priority, Push, checkin_digest};
use hotline_proto::message::{Request, Response};
use hotline_proto::{ErrorCode, Role};
use hotline_server::log::Entry;
use hotline_server::store::{Create, LogStore, codec, open_keys};
use hotline_tests::TestServer;

use super::alerts::{Person, hotline, page, person, quick_policy};

/// Sends a message to the staff on the roster; returns the id the
/// defender's device is told.
async fn send(p: &mut Person, text: &str) -> u64 {
    p.device
        .queue(text.as_bytes(), Outgoing::Message { to: None })
        .expect("queue");
    match p.device.flush(&p.session).await.expect("sent").as_slice() {
        [Sent::Message { id, .. }] => *id,
        other => panic!("expected one message sent, got {other:?}"),
    }
}

/// The exact bytes of the server's answer to `req`.
async fn answer(p: &Person, req: &Request) -> Vec<u8> {
    p.session.request(req).await.expect("an answer").encode()
}

fn checkin(p: &Person, key: &CheckinKey, code: &str) -> Request {
    Request::Checkin {
        code_digest: key.tag(&p.session.device_id(), code),
    }
}

fn new_key() -> CheckinKey {
    StateDir::new_checkin_key().expect("randomness")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_answers_and_sizes_do_not_tell_a_duress_check_in_from_a_normal_one() {
    let server = TestServer::start_with(|c| c.escalation_tick_ms = 100).await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let key = new_key();
    h.defender
        .session
        .set_checkin(6 * 3600, 1800, &key, "4711", "0815")
        .await
        .expect("schedule");
    let list = Request::ListAlerts { open_only: false };
    let inbox = Request::FetchInbox {
        after: 0,
        limit: 100,
    };
    let alerts_before = answer(&h.defender, &list).await;
    let inbox_before = answer(&h.defender, &inbox).await;

    // Messages sent between check-ins of either kind: what the phone is
    // told is the same.
    let mut ids = vec![send(&mut h.defender, "one").await];
    let mut answers = Vec::new();
    for code in ["4711", "0815", "4711", "0815", "4711"] {
        let req = checkin(&h.defender, &key, code);
        answers.push((req.encode().len(), answer(&h.defender, &req).await));
        ids.push(send(&mut h.defender, "again").await);
    }
    // Ids count this device's own messages: no gap after a duress code,
    // and no trace of what anyone else did.
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6], "sent ids: {ids:?}");
    // Requests of one size, answers byte for byte the same.
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "check-in requests and answers differ: {answers:?}"
    );
    assert_eq!(answer(&h.defender, &list).await, alerts_before);
    assert_eq!(answer(&h.defender, &inbox).await, inbox_before);

    // The duress codes did raise alerts, which staff see.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let duress: Vec<u64> = h
        .first
        .session
        .alerts(false)
        .await
        .expect("alerts")
        .into_iter()
        .filter(|a| a.origin == AlertOrigin::Duress)
        .map(|a| a.id)
        .collect();
    assert_eq!(duress.len(), 2);

    // Another defender's ids start at 1 whatever the server did before.
    let root = h.root.public_key();
    let mut other = person(&server, Role::Defender, "other", Some(root)).await;
    assert_eq!(send(&mut other, "hello").await, 1);

    // Alert ids are random, not positions: two SOSes around a duress
    // check-in are not numbered in sequence.
    let first = h
        .defender
        .device
        .raise_alert(&h.defender.session, Priority::Urgent, b"category: other\na")
        .await
        .expect("sos");
    let req = checkin(&h.defender, &key, "0815");
    answer(&h.defender, &req).await;
    let second = h
        .defender
        .device
        .raise_alert(&h.defender.session, Priority::Urgent, b"category: other\nb")
        .await
        .expect("sos");
    for id in [first.id, second.id] {
        assert!((1..=9_999_999).contains(&id), "alert id {id}");
    }
    assert!(
        first.id.abs_diff(second.id) > 3,
        "alert ids {} and {} look like positions",
        first.id,
        second.id
    );
    // The defender's own SOS names its message by the defender's own id.
    assert_eq!(first.envelope_id, 7);
    assert_eq!(second.envelope_id, 8);
    let _ = (&h.admin, &h.second, &h.coordinator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_byte_about_a_duress_alert_reaches_the_defenders_device() {
    let server = TestServer::start_with(|c| c.escalation_tick_ms = 100).await;
    let mut h = hotline(&server).await;
    let root = h.root.public_key();
    // Two defenders with the same history, but for the code they type.
    let mut coerced = std::mem::replace(
        &mut h.defender,
        person(&server, Role::Defender, "calm", Some(root)).await,
    );
    let calm = &mut h.defender;
    let (ck, mk) = (new_key(), new_key());
    for (p, k) in [(&coerced, &ck), (&*calm, &mk)] {
        p.session
            .set_checkin(6 * 3600, 1800, k, "4711", "0815")
            .await
            .expect("schedule");
    }
    assert_eq!(send(&mut coerced, "all fine").await, 1);
    assert_eq!(send(calm, "all fine").await, 1);
    h.first.session.set_duty(true).await.expect("on duty");
    let duress_answer = answer(&coerced, &checkin(&coerced, &ck, "0815")).await;
    let normal_answer = answer(calm, &checkin(calm, &mk, "4711")).await;
    assert_eq!(duress_answer, normal_answer);

    // The officer is paged, reads both messages alike, and claims the alert.
    let duress = page(&h.first, Duration::from_secs(3)).await;
    assert_eq!(duress.origin, AlertOrigin::Duress);
    assert_eq!(duress.defender, coerced.session.device_id());
    let got = h
        .first
        .device
        .receive(&h.first.session)
        .await
        .expect("inbox");
    assert_eq!(got.len(), 2);
    h.first
        .session
        .mark_read(got.iter().map(|r| r.id).collect())
        .await
        .expect("read");
    assert!(
        h.first
            .session
            .claim_alert(duress.id)
            .await
            .expect("claim")
            .is_ok()
    );

    // A reply in the duress alert's thread is refused by the server (this
    // client names the thread; the staff command refuses even earlier).
    h.first
        .device
        .queue(
            b"we got your duress signal",
            Outgoing::Reply {
                alert: duress.id,
                to: coerced.session.device_id(),
            },
        )
        .expect("queue");
    match h
        .first
        .device
        .flush(&h.first.session)
        .await
        .expect("flush")
        .as_slice()
    {
        [Sent::Dropped { code, .. }] => {
            assert_eq!(*code, Some(ErrorCode::FailedPrecondition));
        }
        other => panic!("the reply must be refused, got {other:?}"),
    }
    h.first
        .session
        .close_alert(duress.id, CloseReason::Resolved)
        .await
        .expect("resolved");

    // Everything the two phones can ask: byte for byte the same.
    for req in [
        Request::ListAlerts { open_only: false },
        Request::ListAlerts { open_only: true },
        Request::FetchInbox {
            after: 0,
            limit: 100,
        },
        Request::Delivery(vec![1]),
    ] {
        assert_eq!(
            answer(&coerced, &req).await,
            answer(calm, &req).await,
            "{req:?}"
        );
    }
    match coerced
        .session
        .request(&Request::FetchInbox {
            after: 0,
            limit: 100,
        })
        .await
        .expect("inbox")
    {
        Response::Inbox(items) => assert!(items.is_empty(), "nothing reached the phone"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        answer(&coerced, &checkin(&coerced, &ck, "4711")).await,
        answer(calm, &checkin(calm, &mk, "4711")).await
    );
    // No page, no all clear: nothing is pushed to either phone.
    for p in [&coerced, &*calm] {
        let push = p
            .session
            .next_push(Duration::from_millis(300))
            .await
            .expect("push");
        assert_eq!(push, None);
    }
    // The duress alert does not exist for the coerced phone.
    let err = coerced
        .session
        .close_alert(duress.id, CloseReason::Cancelled)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    let _ = (&h.admin, &h.second, &h.coordinator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_or_stopping_check_ins_is_announced_to_staff_never_to_the_defender() {
    let server = TestServer::start_with(|c| c.escalation_tick_ms = 100).await;
    let h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let d = &h.defender;
    let key = new_key();
    d.session
        .set_checkin(6 * 3600, 1800, &key, "4711", "0815")
        .await
        .expect("set");
    // Setting a first schedule is nothing to report.
    assert_eq!(
        h.first
            .session
            .next_push(Duration::from_millis(600))
            .await
            .expect("push"),
        None
    );
    let list = Request::ListAlerts { open_only: false };
    let seen = answer(d, &list).await;

    // A change: the officer on duty is told.
    let before = answer(d, &Request::Status).await.len();
    d.session
        .set_checkin(24 * 3600, 1800, &key, "1111", "2222")
        .await
        .expect("changed");
    let changed = page(&h.first, Duration::from_secs(3)).await;
    assert_eq!(changed.origin, AlertOrigin::CheckinChanged);
    assert_eq!(changed.priority, Priority::Routine);
    assert_eq!(changed.defender, d.session.device_id());

    // Stopped: told too.
    d.session
        .set_checkin(0, 0, &key, "-", "--")
        .await
        .expect("stopped");
    let stopped = page(&h.first, Duration::from_secs(3)).await;
    assert_eq!(stopped.origin, AlertOrigin::CheckinStopped);
    let all = h.first.session.alerts(true).await.expect("alerts");
    assert!(all.iter().any(|a| a.id == changed.id));
    assert!(all.iter().any(|a| a.id == stopped.id));

    // The phone (maybe in a coercer's hands) sees none of it.
    assert_eq!(answer(d, &list).await, seen);
    assert_eq!(answer(d, &Request::Status).await.len(), before);
    let err = d
        .session
        .close_alert(stopped.id, CloseReason::Cancelled)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_check_in_is_recorded_on_the_missed_check_in_alert() {
    let server = TestServer::start_with(|c| {
        c.escalation = quick_policy();
        c.escalation_tick_ms = 100;
    })
    .await;
    let h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let key = new_key();
    h.defender
        .session
        .set_checkin(2, 0, &key, "4711", "0815")
        .await
        .expect("schedule");
    let missed = page(&h.first, Duration::from_secs(6)).await;
    assert_eq!(missed.origin, AlertOrigin::MissedCheckin);
    assert_eq!(missed.checked_in_at, None);

    let before = hotline_server::unix_now();
    h.defender
        .session
        .checkin(Some(&key), "4711")
        .await
        .expect("late check-in");
    // The officer paged for it is shown the alert again, with the time.
    let mut noted = None;
    while let Some(push) = h
        .first
        .session
        .next_push(Duration::from_secs(2))
        .await
        .expect("push")
    {
        if let Push::Alert(a) = push
            && a.id == missed.id
            && a.checked_in_at.is_some()
        {
            noted = a.checked_in_at;
            break;
        }
    }
    let at = noted.expect("the late check-in is pushed on the alert");
    assert!(at >= before && at <= hotline_server::unix_now());
    let listed = h.first.session.alerts(false).await.expect("alerts");
    let a = listed.iter().find(|a| a.id == missed.id).expect("listed");
    assert_eq!(a.checked_in_at, Some(at));
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}

/// Every 32-byte string that a brute force of four-digit codes computes
/// from the code and public data alone (the device id): the unkeyed
/// digest and a bare SHA-256.
fn brute_force_table(device: &hotline_proto::DeviceId) -> HashSet<[u8; 32]> {
    let mut out = HashSet::new();
    for n in 0..10_000 {
        let code = format!("{n:04}");
        out.insert(checkin_digest(device, &code));
        let mut bare = [0u8; 32];
        bare.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, code.as_bytes()).as_ref());
        out.insert(bare);
    }
    out
}

fn holds_any(bytes: &[u8], table: &HashSet<[u8; 32]>) -> bool {
    bytes.windows(32).any(|w| {
        let mut a = [0u8; 32];
        a.copy_from_slice(w);
        table.contains(&a)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_holds_no_check_in_value_computable_from_the_code_alone() {
    let mut server = TestServer::start().await;
    let (_identity, defender) = server.enroll(Role::Defender).await;
    let me = defender.device_id();
    let key = new_key();
    defender
        .set_checkin(3600, 600, &key, "4711", "0815")
        .await
        .expect("schedule");
    defender.checkin(Some(&key), "4711").await.expect("normal");
    defender.checkin(Some(&key), "0815").await.expect("duress");
    defender
        .set_checkin(7200, 600, &key, "1234", "9876")
        .await
        .expect("changed");
    defender.close().await;
    server.stop().await;

    let data = server.config().data_dir.clone();
    let keys = open_keys(&data, server.key(), Create::Never).expect("keys");
    let store = LogStore::open(&data, keys, 4 << 20).expect("open");
    let table = brute_force_table(&me);
    // The state in memory (as a dump would show it) and its snapshot form.
    let state = store.state();
    let schedule = &state.checkins.schedules[&me];
    assert_eq!(schedule.code, key.tag(&me, "1234"), "a keyed tag is held");
    assert_eq!(schedule.duress, key.tag(&me, "9876"));
    assert!(!table.contains(&schedule.code) && !table.contains(&schedule.duress));
    assert!(!holds_any(&codec::encode_snapshot(&state), &table));
    // Every record of the log, opened.
    let mut records = 0;
    store
        .log()
        .replay(0, |_, entry| {
            if let Entry::Event(bytes) = entry {
                assert!(!holds_any(&bytes, &table), "a record holds a digest");
                records += 1;
            }
            Ok(())
        })
        .expect("replay");
    assert!(records > 0);
}

/// A thief holding the phone (the panic key needs no passphrase) must not
/// try codes at network speed until one works and so keep missed
/// check-ins quiet. After five wrong codes in an hour staff get an urgent
/// alert the phone never sees, and every further check-in of that device,
/// right or wrong, waits before it is answered; the answers themselves do
/// not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_check_in_codes_alerts_staff_and_is_slowed() {
    use hotline_server::requests::checkins::{GUESS_DELAY, WRONG_CODES_ALLOWED};
    let server = TestServer::start_with(|c| c.escalation_tick_ms = 100).await;
    let h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let key = new_key();
    h.defender
        .session
        .set_checkin(6 * 3600, 1800, &key, "4711", "0815")
        .await
        .expect("schedule");
    let wrong = answer(&h.defender, &checkin(&h.defender, &key, "0000")).await;
    for guess in 1..WRONG_CODES_ALLOWED {
        let again = answer(
            &h.defender,
            &checkin(&h.defender, &key, &format!("{guess:04}")),
        )
        .await;
        assert_eq!(again, wrong, "every wrong code is answered alike");
    }
    let paged = page(&h.first, Duration::from_secs(5)).await;
    assert_eq!(paged.origin, AlertOrigin::WrongCheckinCodes);
    assert_eq!(paged.priority, Priority::Urgent);
    assert!(
        h.defender
            .session
            .alerts(false)
            .await
            .expect("alerts")
            .is_empty(),
        "the phone never sees it"
    );
    // Slowed now: the right code too (the wait tells nothing), and it
    // still checks in.
    let started = std::time::Instant::now();
    h.defender
        .session
        .checkin(Some(&key), "4711")
        .await
        .expect("checks in");
    assert!(started.elapsed() >= GUESS_DELAY);
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}

/// The wrong codes are counted in the log, not only in memory (issue 11):
/// a guesser who waits for a restart of the server, or causes one, gets no
/// fresh guesses. Four wrong codes, a restart, and the fifth still alerts
/// staff, and the device's check-ins are slowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_check_in_codes_still_count_after_a_server_restart() {
    use hotline_server::requests::checkins::{GUESS_DELAY, WRONG_CODES_ALLOWED};
    let mut server = TestServer::start_with(|c| c.escalation_tick_ms = 100).await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let key = new_key();
    h.defender
        .session
        .set_checkin(6 * 3600, 1800, &key, "4711", "0815")
        .await
        .expect("schedule");
    let wrong = answer(&h.defender, &checkin(&h.defender, &key, "0000")).await;
    for guess in 1..WRONG_CODES_ALLOWED - 1 {
        let again = answer(
            &h.defender,
            &checkin(&h.defender, &key, &format!("{guess:04}")),
        )
        .await;
        assert_eq!(again, wrong, "every wrong code is answered alike");
    }
    server.restart().await;
    for p in [&mut h.first, &mut h.defender] {
        p.session = p.device.connect().await.expect("reconnects");
    }
    // Not slowed yet: four wrong codes are below the limit.
    let started = std::time::Instant::now();
    let again = answer(&h.defender, &checkin(&h.defender, &key, "9999")).await;
    assert_eq!(again, wrong, "the fifth wrong code is answered alike");
    assert!(started.elapsed() < GUESS_DELAY);
    let paged = page(&h.first, Duration::from_secs(5)).await;
    assert_eq!(
        paged.origin,
        AlertOrigin::WrongCheckinCodes,
        "the wrong codes before the restart still count"
    );
    let started = std::time::Instant::now();
    h.defender
        .session
        .checkin(Some(&key), "4711")
        .await
        .expect("checks in");
    assert!(started.elapsed() >= GUESS_DELAY, "slowed");
    // And after another restart, still slowed (the count stays at the
    // limit for the rest of the hour).
    server.restart().await;
    h.defender.session = h.defender.device.connect().await.expect("reconnects");
    let started = std::time::Instant::now();
    h.defender
        .session
        .checkin(Some(&key), "4711")
        .await
        .expect("checks in");
    assert!(started.elapsed() >= GUESS_DELAY, "still slowed");
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}
