//! An SOS always gets through, and only staff who can read it answer it:
//! an expired roster or no pinned root still raises the alert; the panic
//! key raises one (and checks in) without the passphrase and can do
//! nothing else; staff off the signed roster are neither paged nor allowed
//! to claim or answer; revoking the holder of an alert gives it back to
//! the team and its escalation resumes.

use std::time::Duration;

use hotline_client::{ClientError, StateDir};
use hotline_proto::alert::{AlertContent, AlertInfo, AlertStatus, Priority, Push};
use hotline_proto::e2e::content::Category;
use hotline_proto::message::{Request, Response, RosterStanding};
use hotline_proto::{ErrorCode, Role};
use hotline_server::domain::alerts::{Policies, Policy, Step, Tier};
use hotline_tests::TestServer;

use super::people::{Person, person, root_key, sign};

/// The first push within `wait`.
async fn push(p: &Person, wait: Duration) -> Option<Push> {
    p.session.next_push(wait).await.expect("push")
}

/// The first page within `wait`, skipping other pushes.
async fn page(p: &Person, wait: Duration) -> Option<AlertInfo> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match p.session.next_push(left).await.expect("push") {
            Some(Push::Alert(a)) => return Some(a),
            Some(_) => continue,
            None => return None,
        }
    }
}

/// A server whose every priority pages `tiers` in turn, `wait_secs` each,
/// once, and looks for due steps every 100 ms.
async fn stepping_server(tiers: &[Tier], wait_secs: u64) -> TestServer {
    let policy = Policy {
        steps: tiers.iter().map(|&tier| Step { tier, wait_secs }).collect(),
        rounds: 1,
    };
    TestServer::start_with(|c| {
        c.escalation = Policies {
            immediate: policy.clone(),
            urgent: policy.clone(),
            routine: policy,
        };
        c.escalation_tick_ms = 100;
    })
    .await
}

fn code(e: &ClientError) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_roster_still_raises_the_alert_pages_the_team_and_marks_it() {
    let server = TestServer::start().await;
    let root = root_key(&server);
    let public = root.public_key();
    let mut admin = person(&server, Role::Admin, "admin", Some(public)).await;
    let officer = person(&server, Role::Officer, "officer", Some(public)).await;
    sign(&mut admin, &root, 2).await;
    let mut defender = person(&server, Role::Defender, "defender", Some(public)).await;
    officer.session.set_duty(true).await.expect("on duty");
    // The roster runs out; nobody renewed it.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let alert = defender
        .device
        .raise_alert(
            &defender.session,
            Priority::Immediate,
            b"category: arrest\nthey are at the door",
        )
        .await
        .expect("an expired roster does not stop an SOS");
    assert_eq!(alert.status, AlertStatus::Raised);
    assert_eq!(alert.paged, 1, "the officer on duty is paged");
    assert_eq!(alert.content, AlertContent::ExpiredRoster);
    assert_ne!(alert.envelope_id, 0, "the text went with it");
    let warnings = defender.device.take_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("EXPIRED")),
        "the defender is warned: {warnings:?}"
    );

    // Staff see the mark on the page and in the list, and can read it.
    let got = page(&officer, Duration::from_secs(3)).await.expect("paged");
    assert_eq!(
        (got.id, got.content),
        (alert.id, AlertContent::ExpiredRoster)
    );
    let listed = officer.session.alerts(true).await.expect("alerts");
    assert_eq!(listed[0].content, AlertContent::ExpiredRoster);
    let mut officer = officer;
    let read = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    assert!(
        read.iter().any(|m| m.message.text.contains("at the door")),
        "{read:?}"
    );
    let _ = &defender.state;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_root_pinned_the_alert_is_raised_without_content_and_the_defender_told() {
    let server = TestServer::start().await;
    // The README's old order: people first, the root later.
    let mut defender = person(&server, Role::Defender, "defender", None).await;
    let officer = person(&server, Role::Officer, "officer", None).await;
    officer.session.set_duty(true).await.expect("on duty");

    let alert = defender
        .device
        .raise_alert(&defender.session, Priority::Immediate, b"help")
        .await
        .expect("raised without a root");
    assert_eq!(alert.status, AlertStatus::Raised);
    assert_eq!(alert.content, AlertContent::None);
    assert_eq!(alert.envelope_id, 0, "no text was sent");
    assert_eq!(alert.paged, 1);
    let warnings = defender.device.take_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("NOT sent") && w.contains("no organisation root")),
        "the defender is told: {warnings:?}"
    );
    let got = page(&officer, Duration::from_secs(3)).await.expect("paged");
    assert_eq!((got.id, got.content), (alert.id, AlertContent::None));

    // Pressing again while it is open is the same alert, not a second one.
    let again = defender
        .device
        .raise_alert(&defender.session, Priority::Immediate, b"help")
        .await
        .expect("raised");
    assert_eq!(again.id, alert.id);
    assert_eq!(officer.session.alerts(true).await.expect("alerts").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_key_raises_an_alert_and_checks_in_and_does_nothing_else() {
    let server = TestServer::start().await;
    let root = root_key(&server);
    let public = root.public_key();
    let mut admin = person(&server, Role::Admin, "admin", Some(public)).await;
    let mut officer = person(&server, Role::Officer, "officer", Some(public)).await;
    sign(&mut admin, &root, 3600).await;
    let defender = person(&server, Role::Defender, "defender", Some(public)).await;
    officer.session.set_duty(true).await.expect("on duty");
    // As `hotline checkin-setup` does: a check-in key kept on the device.
    let checkin_key = StateDir::new_checkin_key().expect("key");
    defender
        .session
        .set_checkin(3600, 600, &checkin_key, "1234", "9999")
        .await
        .expect("check-ins set");
    defender
        .state
        .save_checkin_key(&checkin_key)
        .expect("key saved");
    assert!(
        hotline_client::sos::has_panic_key(&defender.state),
        "a defender's device gets a panic key at enrollment"
    );
    assert!(
        admin.state.load_panic_key().expect("reads").is_none(),
        "staff devices get none"
    );

    // No passphrase anywhere below.
    let (alert, warnings) = hotline_client::sos::raise_with_panic_key(
        &defender.state,
        Priority::Immediate,
        Category::Arrest,
        "they took my phone",
    )
    .await
    .expect("raised with the panic key");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!((alert.paged, alert.content), (1, AlertContent::Sealed));
    let got = page(&officer, Duration::from_secs(3)).await.expect("paged");
    assert_eq!(got.id, alert.id);
    // Staff read it, marked as sent with the panic key.
    let read = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    let sos = read
        .iter()
        .find(|m| m.message.text.contains("took my phone"))
        .expect("the SOS text is readable");
    assert!(sos.via_panic_key);
    hotline_client::sos::checkin_with_panic_key(&defender.state, Some(&checkin_key), "1234")
        .await
        .expect("checked in with the panic key");

    // The panic session may do nothing else.
    let profile = defender.state.load_profile().expect("profile");
    let key = defender
        .state
        .load_panic_key()
        .expect("reads")
        .expect("a panic key");
    let panic = hotline_client::connection::authenticate_panic(
        &profile.server().expect("server"),
        profile.device_id().expect("id"),
        &key,
    )
    .await
    .expect("panic session");
    assert!(panic.is_panic());
    let refused = [
        Request::Status,
        Request::ListAlerts { open_only: false },
        Request::FetchInbox {
            after: 0,
            limit: 10,
        },
        Request::AckInbox { up_to: 0 },
        Request::CloseAlert {
            alert_id: alert.id,
            reason: hotline_proto::alert::CloseReason::Cancelled,
        },
        Request::SetCheckin {
            interval_secs: 0,
            grace_secs: 0,
            code_digest: [1; 32],
            duress_digest: [2; 32],
        },
        Request::MarkRead(vec![1]),
        Request::Delivery(vec![1]),
        Request::AlertDelivered { alert_id: alert.id },
    ];
    for req in refused {
        match panic.request(&req).await.expect("answered") {
            Response::Error(e) => {
                assert_eq!(e.code, ErrorCode::Forbidden, "{req:?}");
                assert!(e.detail.contains("panic key"), "{}", e.detail);
            }
            other => panic!("{req:?} answered {other:?} to the panic key"),
        }
    }
    // Nothing was changed: the alert is still open, check-ins still on.
    let open = officer.session.alerts(true).await.expect("alerts");
    assert_eq!(open.len(), 1);
    hotline_client::sos::checkin_with_panic_key(&defender.state, Some(&checkin_key), "1234")
        .await
        .expect("still checking in");
    panic.close().await;

    // A panic proof for a device without a panic key, or signed with
    // another key, is refused.
    let bogus = hotline_proto::IdentityKeyPair::from_seed(&[42; 32]);
    let err = hotline_client::connection::authenticate_panic(
        &profile.server().expect("server"),
        officer.device.identity().device_id(),
        &bogus,
    )
    .await
    .expect_err("staff have no panic key");
    assert_eq!(code(&err), Some(ErrorCode::BadSignature));
    let err = hotline_client::connection::authenticate_panic(
        &profile.server().expect("server"),
        profile.device_id().expect("id"),
        &bogus,
    )
    .await
    .expect_err("another key");
    assert_eq!(code(&err), Some(ErrorCode::BadSignature));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_off_the_roster_are_neither_paged_nor_allowed_to_claim_or_answer() {
    let server = TestServer::start().await;
    let root = root_key(&server);
    let public = root.public_key();
    let mut admin = person(&server, Role::Admin, "admin", Some(public)).await;
    let on = person(&server, Role::Officer, "on-roster", Some(public)).await;
    sign(&mut admin, &root, 3600).await;
    // Enrolled after the last roster was signed.
    let mut late = person(&server, Role::Officer, "late", Some(public)).await;
    let mut defender = person(&server, Role::Defender, "defender", Some(public)).await;
    assert_eq!(late.session.roster_standing(), RosterStanding::NotOnRoster);
    on.session.set_duty(true).await.expect("on duty");
    late.session.set_duty(true).await.expect("on duty");

    let alert = defender
        .device
        .raise_alert(&defender.session, Priority::Immediate, b"help")
        .await
        .expect("raised");
    assert_eq!(alert.paged, 1, "only the officer who can read it");
    assert_eq!(
        page(&on, Duration::from_secs(3)).await.map(|a| a.id),
        Some(alert.id)
    );
    assert!(
        page(&late, Duration::from_millis(500)).await.is_none(),
        "the officer off the roster is not paged"
    );
    // It may not claim, which would stop the escalation.
    let err = late
        .session
        .claim_alert(alert.id)
        .await
        .expect_err("claim refused");
    assert_eq!(code(&err), Some(ErrorCode::FailedPrecondition));
    assert!(err.to_string().contains("sign-roster"), "{err}");
    // Nor answer the defender, who would drop the reply.
    let defender_id = defender.device.identity().device_id();
    let err = late
        .device
        .send(&late.session, b"we are coming", Some(defender_id))
        .await
        .expect_err("reply refused");
    assert_eq!(code(&err), Some(ErrorCode::FailedPrecondition), "{err}");
    // The officer on the roster claims it.
    assert_eq!(
        on.session.claim_alert(alert.id).await.expect("claim"),
        Ok(())
    );

    // Once an admin signs a roster that lists it, it is paged like anyone.
    sign(&mut admin, &root, 3600).await;
    late.session = late.device.connect().await.expect("reconnects");
    assert_eq!(late.session.roster_standing(), RosterStanding::OnRoster);
    let _ = defender.device.take_warnings();
    let second = defender
        .device
        .raise_alert(&defender.session, Priority::Immediate, b"again")
        .await
        .expect("raised");
    assert_eq!(second.paged, 2);
    let _ = &mut defender;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_holder_gives_the_alert_back_and_its_escalation_resumes() {
    let server = stepping_server(&[Tier::OnDuty, Tier::Backup, Tier::Coordinators], 1).await;
    let root = root_key(&server);
    let public = root.public_key();
    let mut admin = person(&server, Role::Admin, "admin", Some(public)).await;
    let lost = person(&server, Role::Officer, "lost-phone", Some(public)).await;
    let colleague = person(&server, Role::Officer, "colleague", Some(public)).await;
    let coordinator = person(&server, Role::Coordinator, "coordinator", Some(public)).await;
    sign(&mut admin, &root, 3600).await;
    let mut defender = person(&server, Role::Defender, "defender", Some(public)).await;
    lost.session.set_duty(true).await.expect("on duty");
    colleague.session.set_duty(true).await.expect("on duty");

    let alert = defender
        .device
        .raise_alert(&defender.session, Priority::Immediate, b"help")
        .await
        .expect("raised");
    assert_eq!(alert.paged, 2);
    assert!(page(&colleague, Duration::from_secs(3)).await.is_some());
    let lost_id = lost.device.identity().device_id();
    assert_eq!(
        lost.session.claim_alert(alert.id).await.expect("claim"),
        Ok(())
    );
    // Held: the escalation stops, the colleague's claim names the holder.
    assert_eq!(
        colleague
            .session
            .claim_alert(alert.id)
            .await
            .expect("claim"),
        Err(lost_id)
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        page(&coordinator, Duration::from_millis(300))
            .await
            .is_none(),
        "no escalation while held"
    );

    // The officer's phone is lost: the admin revokes it.
    admin.session.revoke(lost_id).await.expect("revoked");
    // The team hears the alert is back.
    match push(&colleague, Duration::from_secs(3)).await {
        Some(Push::Released(a)) => {
            assert_eq!(
                (a.id, a.status, a.holder),
                (alert.id, AlertStatus::Raised, None)
            );
        }
        other => panic!("expected the release notice, got {other:?}"),
    }
    let listed = colleague.session.alerts(true).await.expect("alerts");
    assert_eq!(listed[0].status, AlertStatus::Raised);
    assert_eq!(listed[0].holder, None);
    // The escalation resumes where it stood: nobody is backup (both
    // officers were on duty), so the coordinators are paged next.
    let got = page(&coordinator, Duration::from_secs(5))
        .await
        .expect("the escalation resumed");
    assert_eq!(got.id, alert.id);
    // And a colleague can claim it now.
    assert_eq!(
        colleague
            .session
            .claim_alert(alert.id)
            .await
            .expect("claim"),
        Ok(())
    );
    let _ = &mut defender;
}

/// A walk-through found a duress alert paged to one officer only, held by
/// that officer, revoked: nobody else had been paged or was on duty, so
/// nobody heard it was back until its wait ran out. The whole team hears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_released_by_its_only_reader_is_announced_to_the_whole_team() {
    let server = stepping_server(&[Tier::OnDuty, Tier::Backup], 600).await;
    let root = root_key(&server);
    let public = root.public_key();
    let mut admin = person(&server, Role::Admin, "admin", Some(public)).await;
    let lost = person(&server, Role::Officer, "only-one", Some(public)).await;
    let colleague = person(&server, Role::Officer, "off-duty", Some(public)).await;
    sign(&mut admin, &root, 3600).await;
    let mut defender = person(&server, Role::Defender, "defender", Some(public)).await;
    lost.session.set_duty(true).await.expect("on duty");
    let alert = defender
        .device
        .raise_alert(&defender.session, Priority::Immediate, b"help")
        .await
        .expect("raised");
    assert_eq!(alert.paged, 1, "only the officer on duty");
    let lost_id = lost.device.identity().device_id();
    assert_eq!(
        lost.session.claim_alert(alert.id).await.expect("claim"),
        Ok(())
    );
    admin.session.revoke(lost_id).await.expect("revoked");
    match push(&colleague, Duration::from_secs(3)).await {
        Some(Push::Released(a)) => assert_eq!((a.id, a.holder), (alert.id, None)),
        other => panic!("the off-duty colleague was not told: {other:?}"),
    }
    // Nobody is left on duty: the step is passed at once, not waited out
    // (600 s here), and the backup officer is paged.
    let paged = page(&colleague, Duration::from_secs(3))
        .await
        .expect("the backup step is taken at once");
    assert_eq!(paged.id, alert.id);
    // The defender, told its alert was held, hears it is not any more.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut told = false;
    while let Some(p) = push(
        &defender,
        until.saturating_duration_since(tokio::time::Instant::now()),
    )
    .await
    {
        if let Push::Released(a) = p {
            assert_eq!((a.id, a.holder), (alert.id, None));
            told = true;
            break;
        }
    }
    assert!(told, "the defender was not told its alert is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolled_without_a_panic_key_registers_one_with_its_passphrase() {
    let server = TestServer::start().await;
    // Enrolled the old way: no panic key.
    let (identity, session) = server.enroll(Role::Defender).await;
    let info = server.info();
    let bogus = hotline_proto::IdentityKeyPair::from_seed(&[42; 32]);
    let err = hotline_client::connection::authenticate_panic(&info, identity.device_id(), &bogus)
        .await
        .expect_err("no panic key yet");
    assert_eq!(code(&err), Some(ErrorCode::BadSignature));

    // Its next run with the passphrase gives it one.
    let state = StateDir::new(server.dir.path().join("old-defender"));
    assert!(
        hotline_client::sos::ensure_panic_key(&state, &session)
            .await
            .expect("registered")
    );
    assert!(
        !hotline_client::sos::ensure_panic_key(&state, &session)
            .await
            .expect("nothing to do"),
        "once"
    );
    let key = state.load_panic_key().expect("reads").expect("a panic key");
    let panic = hotline_client::connection::authenticate_panic(&info, identity.device_id(), &key)
        .await
        .expect("the panic key now opens a panic session");
    assert!(panic.is_panic());
    // Registering it again is harmless; replacing it is refused, and a
    // panic session may not register one.
    session
        .register_panic_key(key.public_key())
        .await
        .expect("the same key again");
    let err = session
        .register_panic_key(bogus.public_key())
        .await
        .expect_err("another key");
    assert_eq!(code(&err), Some(ErrorCode::FailedPrecondition));
    let err = panic
        .register_panic_key(bogus.public_key())
        .await
        .expect_err("not from a panic session");
    assert_eq!(code(&err), Some(ErrorCode::Forbidden));
    // Staff have none.
    let (_, officer) = server.enroll(Role::Officer).await;
    let err = officer
        .register_panic_key(bogus.public_key())
        .await
        .expect_err("staff");
    assert_eq!(code(&err), Some(ErrorCode::Forbidden));
}

/// An SOS's category, the priority the defender chose and the language
/// of its text (this device's settings) reach the officer, sealed in the
/// content message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sos_category_priority_and_language_reach_the_officer() {
    use hotline_client::messenger::Sent;
    use hotline_proto::e2e::content::Kind;
    let server = TestServer::start().await;
    let root = root_key(&server);
    let public = root.public_key();
    let mut admin = person(&server, Role::Admin, "admin", Some(public)).await;
    let mut officer = person(&server, Role::Officer, "officer", Some(public)).await;
    sign(&mut admin, &root, 3600).await;
    let mut defender = person(&server, Role::Defender, "defender", Some(public)).await;
    defender
        .device
        .queue_sos(
            b"a car follows us",
            Category::Surveillance,
            Priority::Urgent,
        )
        .expect("queued");
    let sent = defender
        .device
        .flush(&defender.session)
        .await
        .expect("sent");
    let alert = match sent.as_slice() {
        [Sent::Alert(a)] => a.clone(),
        other => panic!("one alert expected: {other:?}"),
    };
    assert_eq!(alert.priority, Priority::Urgent);
    let read = officer
        .device
        .receive(&officer.session)
        .await
        .expect("inbox");
    let sos = read
        .iter()
        .find(|m| m.message.text == "a car follows us")
        .expect("the SOS reaches the officer");
    assert_eq!(sos.message.kind, Kind::Sos);
    assert_eq!(sos.message.category, Some(Category::Surveillance));
    assert_eq!(sos.message.priority, Some(Priority::Urgent));
    assert_eq!(sos.message.language, hotline_client::language());
    assert!(!sos.message.language.is_empty());
}
