//! Alerts through a real server: pages pushed to on-duty officers, caught
//! up on reconnect, one claim, escalation in order across a restart, and
//! the all clear.

use std::time::Duration;

use hotline_client::keystore::MIN_ITERATIONS;
use hotline_client::org::{create_org_key, load_org_key, sign_roster};
use hotline_proto::Role;
use hotline_proto::alert::{AlertInfo, AlertStatus, CheckinKey, CloseReason, Priority, Push};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_server::domain::alerts::{Policies, Policy, Step, Tier};
use hotline_tests::TestServer;

pub(crate) use super::people::{PASS, Person, person};

/// A staffed hotline: an admin holding the organisation root, two
/// officers, a coordinator, a defender, and a signed roster.
pub(crate) struct Hotline {
    pub(crate) admin: Person,
    pub(crate) root: OrgKeyPair,
    pub(crate) first: Person,
    pub(crate) second: Person,
    pub(crate) coordinator: Person,
    pub(crate) defender: Person,
}

pub(crate) async fn hotline(server: &TestServer) -> Hotline {
    let path = server.dir.path().join("org.key");
    let public = create_org_key(&path, PASS, MIN_ITERATIONS).expect("org key");
    let root = load_org_key(&path, PASS).expect("loads");
    let mut admin = person(server, Role::Admin, "admin", Some(public)).await;
    let first = person(server, Role::Officer, "first", Some(public)).await;
    let second = person(server, Role::Officer, "second", Some(public)).await;
    let coordinator = person(server, Role::Coordinator, "coordinator", Some(public)).await;
    sign_roster(
        &admin.session,
        &mut admin.device,
        &root,
        hotline_server::unix_now(),
        3600,
    )
    .await
    .expect("roster");
    let defender = person(server, Role::Defender, "defender", Some(public)).await;
    Hotline {
        admin,
        root,
        first,
        second,
        coordinator,
        defender,
    }
}

/// Every push that arrives within `wait`.
async fn pushes(p: &Person, wait: Duration) -> Vec<Push> {
    let mut out = Vec::new();
    while let Some(push) = p.session.next_push(wait).await.expect("push") {
        out.push(push);
    }
    out
}

/// The next page, which must arrive within `wait` (word of new messages,
/// pushed as every message is, is passed over).
pub(crate) async fn page(p: &Person, wait: Duration) -> AlertInfo {
    loop {
        match p.session.next_push(wait).await.expect("push") {
            Some(Push::Alert(a)) => return a,
            Some(Push::Message(_)) => {}
            other => panic!("expected a page, got {other:?}"),
        }
    }
}

fn pages(pushes: &[Push]) -> Vec<u64> {
    pushes
        .iter()
        .filter_map(|p| match p {
            Push::Alert(a) => Some(a.id),
            Push::AllClear(_) | Push::Message(_) | Push::Released(_) | Push::Cases(_) => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_every_connected_officer_on_duty_and_an_offline_one_on_reconnect() {
    let server = TestServer::start().await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    h.second.session.set_duty(true).await.expect("on duty");
    // The second officer's phone is off.
    h.second.session.close().await;

    let alert = h
        .defender
        .device
        .raise_alert(
            &h.defender.session,
            Priority::Immediate,
            b"category: arrest\nthey are at my door",
        )
        .await
        .expect("raised");
    assert_eq!(alert.status, AlertStatus::Raised);
    assert_eq!(alert.paged, 2, "both on-duty officers paged at once");

    let got = pushes(&h.first, Duration::from_secs(2)).await;
    assert_eq!(pages(&got), vec![alert.id]);
    // The coordinator is not on duty: not paged yet.
    assert!(pages(&pushes(&h.coordinator, Duration::from_millis(300)).await).is_empty());

    // The offline officer connects and gets the page.
    h.second.session = h.second.device.connect().await.expect("reconnects");
    let got = pushes(&h.second, Duration::from_secs(2)).await;
    assert_eq!(pages(&got), vec![alert.id]);
    // Once confirmed, it is not pushed again on the next connection.
    h.second.session = h.second.device.connect().await.expect("reconnects");
    assert!(
        pushes(&h.second, Duration::from_millis(300))
            .await
            .is_empty()
    );

    // The message itself is end-to-end encrypted, readable by staff.
    let msgs = h
        .first
        .device
        .receive(&h.first.session)
        .await
        .expect("inbox");
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].message.text.contains("at my door"));

    // One officer claims it; the second claim is refused and names the holder.
    assert_eq!(
        h.first.session.claim_alert(alert.id).await.expect("claim"),
        Ok(())
    );
    let me = h.first.device.identity().device_id();
    assert_eq!(
        h.second.session.claim_alert(alert.id).await.expect("claim"),
        Err(me)
    );
    // The defender sees who holds it.
    let mine = h.defender.session.alerts(true).await.expect("alerts");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].status, AlertStatus::Acknowledged);
    assert_eq!(mine[0].holder, Some(me));
    // A defender cannot claim.
    assert!(h.defender.session.claim_alert(alert.id).await.is_err());

    // A second defender raises one too: staff see both, each defender
    // only its own.
    let mut other = person(
        &server,
        Role::Defender,
        "other-defender",
        Some(h.root.public_key()),
    )
    .await;
    let second = other
        .device
        .raise_alert(
            &other.session,
            Priority::Urgent,
            b"category: surveillance\nfollowed home",
        )
        .await
        .expect("raised");
    assert_ne!(second.id, alert.id);
    assert_eq!(h.first.session.alerts(true).await.expect("alerts").len(), 2);
    let theirs = other.session.alerts(false).await.expect("alerts");
    assert_eq!(
        theirs.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    let mine = h.defender.session.alerts(false).await.expect("alerts");
    assert_eq!(
        mine.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![alert.id]
    );
    let _ = (&h.admin, &h.root);
}

pub(crate) fn quick_policy() -> Policies {
    let policy = Policy {
        steps: vec![
            Step {
                tier: Tier::OnDuty,
                wait_secs: 1,
            },
            Step {
                tier: Tier::Backup,
                wait_secs: 1,
            },
            Step {
                tier: Tier::Coordinators,
                wait_secs: 1,
            },
        ],
        rounds: 1,
    };
    Policies {
        immediate: policy.clone(),
        urgent: policy.clone(),
        routine: policy,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_alerts_escalate_in_order_and_resume_after_a_restart() {
    let mut server = TestServer::start_with(|c| {
        c.escalation = quick_policy();
        c.escalation_tick_ms = 100;
    })
    .await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    // `second` is off duty: the backup tier.

    let alert = h
        .defender
        .device
        .raise_alert(
            &h.defender.session,
            Priority::Immediate,
            b"followed by a car",
        )
        .await
        .expect("raised");
    // Step 1: the on-duty officer, at once.
    assert_eq!(
        pages(&pushes(&h.first, Duration::from_millis(500)).await),
        vec![alert.id]
    );
    // Step 2, a second later: the backup officer.
    let a = page(&h.second, Duration::from_secs(5)).await;
    assert!(a.id == alert.id && a.position == (0, 1), "{a:?}");

    // The server goes down before the coordinators' step is due, and comes
    // back after it should have happened.
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.start_again().await;
    for p in [
        &mut h.first,
        &mut h.second,
        &mut h.coordinator,
        &mut h.defender,
    ] {
        p.session = p.device.connect().await.expect("reconnects");
    }
    // Step 3 is taken once, on resuming: the coordinator is paged. (Pages
    // are delivered at least once: the step's push and the catch-up on
    // connecting can both reach a device that connects just then.)
    let mut got = pages(&pushes(&h.coordinator, Duration::from_secs(3)).await);
    got.dedup();
    assert_eq!(got, vec![alert.id]);
    // The officers, who confirmed their pages, are not paged again.
    assert!(
        pushes(&h.first, Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert!(
        pushes(&h.second, Duration::from_millis(300))
            .await
            .is_empty()
    );
    let state = &h.defender.session.alerts(false).await.expect("alerts")[0];
    assert_eq!(state.position, (0, 2), "the last step, taken once");
    assert_eq!(state.paged, 3);

    // Cancelling sends the all clear to everyone paged.
    h.defender
        .session
        .close_alert(alert.id, CloseReason::FalseAlarm)
        .await
        .expect("cancelled");
    for p in [&h.first, &h.second, &h.coordinator] {
        let got = pushes(p, Duration::from_secs(2)).await;
        assert_eq!(got, vec![Push::AllClear(alert.id)]);
    }
    let state = &h.defender.session.alerts(false).await.expect("alerts")[0];
    assert_eq!(state.status, AlertStatus::FalseAlarm);
    let _ = (&h.admin, &h.root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_check_in_raises_an_alert_by_itself() {
    let server = TestServer::start_with(|c| {
        c.escalation = quick_policy();
        c.escalation_tick_ms = 100;
    })
    .await;
    let h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let key = CheckinKey::from_bytes([7; 32]);
    h.defender
        .session
        .set_checkin(1, 0, &key, "4711", "0815")
        .await
        .expect("schedule set");
    // Nobody checks in: within a couple of seconds the officer is paged.
    let a = page(&h.first, Duration::from_secs(5)).await;
    assert_eq!(a.origin, hotline_proto::alert::AlertOrigin::MissedCheckin);
    assert_eq!(a.defender, h.defender.device.identity().device_id());
    // One alert per lapse, not one per tick.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = h.first.session.alerts(true).await.expect("alerts");
    assert_eq!(open.len(), 1);
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duress_check_in_looks_normal_and_silently_raises_an_immediate_alert() {
    let server = TestServer::start_with(|c| c.escalation_tick_ms = 100).await;
    let h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let d = &h.defender;
    let key = CheckinKey::from_bytes([7; 32]);
    d.session
        .set_checkin(6 * 3600, 1800, &key, "4711", "0815")
        .await
        .expect("schedule set");

    // On the wire, the two check-ins are the same size...
    let me = d.device.identity().device_id();
    let normal = hotline_proto::message::Request::Checkin {
        code_digest: key.tag(&me, "4711"),
    };
    let duress = hotline_proto::message::Request::Checkin {
        code_digest: key.tag(&me, "0815"),
    };
    assert_eq!(normal.encode().len(), duress.encode().len());
    // ...and get the same answer.
    let a1 = d.session.request(&normal).await.expect("answer");
    let a2 = d.session.request(&duress).await.expect("answer");
    assert_eq!(a1, a2);
    assert_eq!(a1.encode(), a2.encode());
    // A wrong code is refused (the defender sees a typo, not a duress).
    assert!(d.session.checkin(Some(&key), "1234").await.is_err());

    // The duty officer is paged with an immediate-danger duress alert...
    let a = page(&h.first, Duration::from_secs(3)).await;
    assert_eq!(a.origin, hotline_proto::alert::AlertOrigin::Duress);
    assert_eq!(a.priority, Priority::Immediate);
    // ...which the defender's own screen never shows, and which the
    // defender cannot call off.
    assert!(d.session.alerts(false).await.expect("alerts").is_empty());
    let err = d
        .session
        .close_alert(a.id, CloseReason::Cancelled)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some(hotline_proto::ErrorCode::NotFound));
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_on_a_rota_shift_is_paged_without_going_on_duty() {
    let mut server = TestServer::start().await;
    let mut h = hotline(&server).await;
    let officer = h.first.device.identity().device_id().to_string();
    server
        .restart_with(|c| {
            // Two shifts a day, every day: the officer is always on one.
            let shift = |start: &str, end: &str| hotline_server::domain::rota::ShiftConfig {
                device: officer.clone(),
                days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                    .map(String::from)
                    .to_vec(),
                start: start.into(),
                end: end.into(),
                // Named zones come from the IANA database (Istanbul: +03:00).
                time_zone: Some("Europe/Istanbul".into()),
                utc_offset: None,
            };
            c.rota = vec![shift("00:00", "12:00"), shift("12:00", "00:00")];
        })
        .await;
    for p in [&mut h.first, &mut h.second, &mut h.defender] {
        p.session = p.device.connect().await.expect("reconnects");
    }
    let alert = h
        .defender
        .device
        .raise_alert(&h.defender.session, Priority::Urgent, b"need to talk")
        .await
        .expect("raised");
    // Nobody said `duty on`: the rota's officer is on duty, the other not.
    assert_eq!(alert.paged, 1);
    assert_eq!(
        pages(&pushes(&h.first, Duration::from_secs(1)).await),
        vec![alert.id]
    );
    assert!(pages(&pushes(&h.second, Duration::from_millis(300)).await).is_empty());
    let _ = (&h.admin, &h.root, &h.coordinator);
}

/// A client mistake in an alert request (an envelope too large to store,
/// or one already sent as a plain message) is answered INVALID_ARGUMENT:
/// the defender's client is told retrying cannot help, instead of
/// UNAVAILABLE ("try again"), which an outbox keeps retrying forever.
/// Nothing is raised, and the defender's next SOS goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_mistake_in_an_alert_is_invalid_argument_and_raises_nothing() {
    use hotline_proto::e2e::envelope::SignedEnvelope;
    use hotline_proto::message::{Request, Response};
    use hotline_proto::{ErrorCode, Signature};

    let server = TestServer::start().await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let refusal = |r: Response| match r {
        Response::Error(e) => e.code,
        other => panic!("expected a refusal, got {other:?}"),
    };

    // Too large to store (the size is checked before the signature).
    let huge = SignedEnvelope {
        sender: h.defender.session.device_id(),
        body: vec![0; 97 * 1024],
        signature: Signature::from_bytes([0; 64]),
    };
    let answer = h
        .defender
        .session
        .request(&Request::RaiseAlert {
            priority: Priority::Immediate,
            envelope: Some(huge),
            join_alert: 0,
        })
        .await
        .expect("answered");
    assert_eq!(refusal(answer), ErrorCode::InvalidArgument);

    // The very envelope of a message sent before, as an alert: the
    // officer's inbox gives back the exact bytes the defender signed.
    h.defender
        .device
        .send(&h.defender.session, b"category: other\nhello", None)
        .await
        .expect("sent");
    let envelope = match h
        .first
        .session
        .request(&Request::FetchInbox {
            after: 0,
            limit: 10,
        })
        .await
        .expect("inbox")
    {
        Response::Inbox(mut items) => items.pop().expect("the message").envelope,
        other => panic!("unexpected answer {other:?}"),
    };
    let answer = h
        .defender
        .session
        .request(&Request::RaiseAlert {
            priority: Priority::Immediate,
            envelope: Some(envelope),
            join_alert: 0,
        })
        .await
        .expect("answered");
    assert_eq!(refusal(answer), ErrorCode::InvalidArgument);

    assert!(
        h.first
            .session
            .alerts(false)
            .await
            .expect("alerts")
            .is_empty(),
        "nothing was raised"
    );
    // No page (the message sent above is pushed, as every message is).
    let got = pushes(&h.first, Duration::from_millis(300)).await;
    assert!(pages(&got).is_empty(), "{got:?}");
    let alert = h
        .defender
        .device
        .raise_alert(
            &h.defender.session,
            Priority::Immediate,
            b"category: other\nSOS",
        )
        .await
        .expect("the next SOS goes through");
    assert_eq!(page(&h.first, Duration::from_secs(5)).await.id, alert.id);
    assert!(
        h.defender.device.pending().is_empty(),
        "nothing left to retry"
    );
}

/// Nothing in the outbox stands between a defender and an SOS: an item
/// refused while it is sealed (a message to a mistyped device id) is
/// removed and reported in the same run that raises the SOS, which goes
/// first anyway; a message too long to seal is refused before it is
/// queued; an SOS too long is cut to fit, never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsendable_item_never_stands_between_a_defender_and_an_sos() {
    use hotline_client::messenger::Sent;
    use hotline_client::outbox::Outgoing;
    use hotline_proto::DeviceId;
    use hotline_proto::e2e::envelope::MAX_BODY_LEN;

    let server = TestServer::start().await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let d = &mut h.defender;

    let mistyped = DeviceId::from_bytes([7; 16]);
    d.device
        .queue(b"call my lawyer", Outgoing::Message { to: Some(mistyped) })
        .expect("queued");
    let long = vec![b'x'; MAX_BODY_LEN + 1];
    assert!(
        d.device
            .queue(&long, Outgoing::Message { to: None })
            .is_err(),
        "too long to seal: refused before it is queued"
    );
    assert_eq!(d.device.pending().len(), 1);
    d.device
        .queue(
            b"category: arrest\nthey are here",
            Outgoing::Alert(Priority::Immediate),
        )
        .expect("queued");
    assert!(
        matches!(d.device.pending()[0].what, Outgoing::Alert(_)),
        "the SOS is listed first"
    );

    let settled = d.device.flush(&d.session).await.expect("one flush");
    let alert = match &settled[..] {
        [
            Sent::Alert(alert),
            Sent::Dropped {
                what: Outgoing::Message { .. },
                code: Some(_),
                reason,
            },
        ] => {
            assert!(!reason.is_empty());
            alert.clone()
        }
        other => panic!("the SOS first, then the message dropped: {other:?}"),
    };
    assert_eq!(page(&h.first, Duration::from_secs(5)).await.id, alert.id);
    assert!(
        h.defender.device.pending().is_empty(),
        "nothing left behind"
    );

    // An SOS longer than a message may be is cut to fit, with a warning.
    let mut long_sos = b"category: other\n".to_vec();
    long_sos.extend(std::iter::repeat_n(b'y', MAX_BODY_LEN + 100));
    let alert = h
        .defender
        .device
        .raise_alert(&h.defender.session, Priority::Urgent, &long_sos)
        .await
        .expect("a long SOS is raised");
    assert_eq!(page(&h.first, Duration::from_secs(5)).await.id, alert.id);
    assert!(
        h.defender
            .device
            .take_warnings()
            .iter()
            .any(|w| w.contains("cut")),
        "the defender is told the text was cut"
    );
}

/// One defender raising alerts in a loop cannot page the team again and
/// again nor fill the open-alert list staff see (issue 11): past
/// `limits.open_alerts_per_device` open SOS alerts, an SOS is not refused
/// but joins the defender's newest open alert (the defender's client is
/// answered with it, as for any SOS), its text reaches staff, and the
/// alert's staff are paged again at most once a minute, unless the SOS
/// is more urgent, which raises the alert's priority and pages at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_defender_raising_in_a_loop_joins_its_newest_alert_and_pages_at_most_once_a_minute() {
    let server = TestServer::start_with(|c| {
        c.limits.open_alerts_per_device = 2;
        c.escalation_tick_ms = 100;
    })
    .await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let raise = |p: Priority, text: &'static str| (p, text);
    let mut raised = Vec::new();
    for (priority, text) in [
        raise(Priority::Urgent, "one"),
        raise(Priority::Urgent, "two"),
        raise(Priority::Urgent, "three"),
        raise(Priority::Urgent, "four"),
    ] {
        let a = h
            .defender
            .device
            .raise_alert(&h.defender.session, priority, text.as_bytes())
            .await
            .expect("an SOS is never refused");
        let got = pages(&pushes(&h.first, Duration::from_millis(700)).await);
        raised.push((a, got));
    }
    let (one, two) = (raised[0].0.id, raised[1].0.id);
    assert_ne!(one, two);
    assert_eq!(raised[0].1, vec![one], "paged");
    assert_eq!(raised[1].1, vec![two], "paged");
    assert_eq!(raised[2].0.id, two, "the third joins the newest open alert");
    assert_eq!(raised[3].0.id, two, "so does the fourth");
    for r in &raised[2..] {
        assert!(
            r.1.is_empty(),
            "its staff, paged when it was raised, are not paged again within the minute: {:?}",
            r.1
        );
    }
    // More urgent: the alert becomes so, and its staff hear at once.
    let five = h
        .defender
        .device
        .raise_alert(&h.defender.session, Priority::Immediate, b"five")
        .await
        .expect("raised");
    assert_eq!((five.id, five.priority), (two, Priority::Immediate));
    assert_eq!(five.joined_count, 3, "three SOSes joined it");
    assert_eq!(
        five.joined.len(),
        3,
        "their messages, as the defender numbers them"
    );
    let paged = page(&h.first, Duration::from_secs(2)).await;
    assert_eq!((paged.id, paged.priority), (two, Priority::Immediate));
    // Two open alerts, staff's list and the defender's alike.
    let open = |l: Vec<AlertInfo>| l.iter().map(|a| a.id).collect::<Vec<_>>();
    let staff = open(h.first.session.alerts(true).await.expect("alerts"));
    assert_eq!(staff.len(), 2, "{staff:?}");
    let mine = open(h.defender.session.alerts(true).await.expect("alerts"));
    assert_eq!(mine.len(), 2, "{mine:?}");
    // Every text reached the officer.
    let texts: Vec<String> = h
        .first
        .device
        .receive(&h.first.session)
        .await
        .expect("inbox")
        .into_iter()
        .map(|r| r.message.text)
        .collect();
    for t in ["one", "two", "three", "four", "five"] {
        assert!(texts.iter().any(|x| x == t), "{t} in {texts:?}");
    }
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}

/// The join never reveals a duress alert (issue 11): only SOS alerts
/// count and are joined, so a defender whose newest open alert is the one
/// its duress code raised gets the answer it would get without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duress_alert_neither_counts_nor_is_joined_by_a_later_sos() {
    let server = TestServer::start_with(|c| {
        c.limits.open_alerts_per_device = 1;
        c.escalation_tick_ms = 100;
    })
    .await;
    let mut h = hotline(&server).await;
    h.first.session.set_duty(true).await.expect("on duty");
    let key = CheckinKey::from_bytes([7; 32]);
    h.defender
        .session
        .set_checkin(6 * 3600, 1800, &key, "4711", "0815")
        .await
        .expect("schedule set");
    // A duress alert before any SOS: it does not count.
    h.defender
        .session
        .checkin(Some(&key), "0815")
        .await
        .expect("looks normal");
    let first = h
        .defender
        .device
        .raise_alert(&h.defender.session, Priority::Urgent, b"first")
        .await
        .expect("raised");
    // Another duress alert, now the newest open one of this defender.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.defender
        .session
        .checkin(Some(&key), "0815")
        .await
        .expect("looks normal");
    let again = h
        .defender
        .device
        .raise_alert(&h.defender.session, Priority::Urgent, b"again")
        .await
        .expect("raised");
    assert_eq!(
        again.id, first.id,
        "joined the SOS alert, not the duress one"
    );
    assert_eq!(again.origin, first.origin);
    let mine = h.defender.session.alerts(false).await.expect("alerts");
    assert_eq!(
        mine.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![first.id],
        "the defender sees one alert"
    );
    // Staff see the SOS and both duress alerts, none of them joined.
    let staff = h.first.session.alerts(true).await.expect("alerts");
    assert_eq!(staff.len(), 3, "{staff:?}");
    let _ = (&h.admin, &h.root, &h.second, &h.coordinator);
}
