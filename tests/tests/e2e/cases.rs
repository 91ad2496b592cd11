//! Cases through a real server (docs/protocol.md, section 9.3 and 9.7):
//! staff append real sealed and signed events and sync them back, a
//! defender asks for a case, two staff members erase a closed one and its
//! records are shredded on disk; every hostile input the server can tell
//! is refused and changes nothing.

use std::time::Duration;

use hotline_client::connection::{Session, authenticate};
use hotline_proto::alert::Push;
use hotline_proto::case::erasure::{Closing, ErasureStep, sign_erasure};
use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
use hotline_proto::case::{
    CaseControl, CaseId, CaseState, CaseSync, CaseUpdateKind, LegalHold, MAX_EVENT_BODY_LEN,
    SignedCaseEvent,
};
use hotline_proto::e2e::content::Message;
use hotline_proto::e2e::envelope::{self, Content, Recipient, SignedEnvelope};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_proto::e2e::roster::{Roster, RosterEntry};
use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};
use hotline_proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN};
use hotline_proto::message::{Request, Response};
use hotline_proto::{ErrorCode, IdentityKeyPair, Role, Signature};
use hotline_tests::TestServer;

/// An enrolled, connected device.
pub struct Member {
    pub key: IdentityKeyPair,
    pub session: Session,
    pub role: Role,
}

/// A server with an admin, an officer, two coordinators and a defender;
/// the staff are on a roster (version 1).
pub struct Team {
    pub server: TestServer,
    pub admin: Member,
    pub officer: Member,
    pub coordinator: Member,
    pub coordinator2: Member,
    pub defender: Member,
}

pub async fn member(server: &TestServer, role: Role) -> Member {
    let (key, session) = server.enroll(role).await;
    Member { key, session, role }
}

pub async fn team_with(adjust: impl FnOnce(&mut hotline_server::Config)) -> Team {
    let server = TestServer::start_with(adjust).await;
    let admin = member(&server, Role::Admin).await;
    let officer = member(&server, Role::Officer).await;
    let coordinator = member(&server, Role::Coordinator).await;
    let coordinator2 = member(&server, Role::Coordinator).await;
    let defender = member(&server, Role::Defender).await;
    let now = hotline_server::unix_now();
    let roster = Roster {
        version: 1,
        issued_at: now,
        expires_at: now + 3600,
        previous_hash: [0; 32],
        entries: [&admin, &officer, &coordinator, &coordinator2]
            .iter()
            .map(|m| RosterEntry {
                device_id: m.key.device_id(),
                role: m.role,
                identity_key: m.key.public_key(),
                valid_from: 0,
                valid_until: now + 3600,
            })
            .collect(),
    }
    .sign(&OrgKeyPair::from_seed(&[77; 32]));
    admin.session.put_roster(roster).await.expect("roster");
    Team {
        server,
        admin,
        officer,
        coordinator,
        coordinator2,
        defender,
    }
}

pub async fn team() -> Team {
    team_with(|_| {}).await
}

pub fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    hotline_proto::identity::fill_random(&mut id).expect("randomness");
    id
}

pub fn open() -> CaseControl {
    CaseControl {
        state: Some(CaseState::Open),
        ..CaseControl::default()
    }
}

pub fn close() -> CaseControl {
    CaseControl {
        state: Some(CaseState::Closed),
        ..CaseControl::default()
    }
}

/// A real event: `note` sealed under `key` (epoch `epoch`) and signed by
/// `author`.
pub fn event(
    author: &IdentityKeyPair,
    key: &CaseKey,
    case_id: CaseId,
    event_id: [u8; 16],
    epoch: u32,
    control: CaseControl,
    note: &str,
) -> SignedCaseEvent {
    seal(
        author,
        key,
        &EventDraft {
            case_id,
            event_id,
            roster_version: 1,
            epoch,
            control,
        },
        &CaseEventContent {
            timestamp: hotline_server::unix_now(),
            note: note.into(),
            ..CaseEventContent::default()
        },
        &mut SystemRandomness,
    )
    .expect("sealed")
}

pub async fn append(m: &Member, e: &SignedCaseEvent) -> Response {
    m.session
        .request(&Request::AppendCaseEvent(e.clone()))
        .await
        .expect("answered")
}

pub fn accepted(r: &Response) -> (u64, bool) {
    match r {
        Response::CaseEventAccepted {
            position,
            duplicate,
        } => (*position, *duplicate),
        other => panic!("not accepted: {other:?}"),
    }
}

pub fn code(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

pub fn detail(r: &Response) -> String {
    match r {
        Response::Error(e) => e.detail.clone(),
        other => panic!("not refused: {other:?}"),
    }
}

/// `sync_cases` on a raw stream: every frame until the stream finishes,
/// or the one error.
pub async fn sync(m: &Member, after: u64) -> Result<Vec<CaseSync>, Response> {
    let (mut send, mut recv) = m.session.connection().open_bi().await.expect("stream");
    let bytes = frame::encode(&Request::SyncCases { after }.encode()).expect("frame");
    send.write_all(&bytes).await.expect("write");
    let _ = send.finish();
    let all = tokio::time::timeout(
        Duration::from_secs(20),
        recv.read_to_end(64 * (HEADER_LEN + MAX_FRAME_LEN)),
    )
    .await
    .expect("in time")
    .expect("read");
    let mut rest = all.as_slice();
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (payload, after) = frame::split(rest, MAX_FRAME_LEN).expect("a frame");
        match Response::decode(payload).expect("a response") {
            Response::CaseSync(s) => frames.push(s),
            other => return Err(other),
        }
        rest = after;
    }
    Ok(frames)
}

/// Every update after `after`, one frame or many.
pub async fn updates(m: &Member, after: u64) -> Vec<hotline_proto::case::CaseUpdate> {
    sync(m, after)
        .await
        .expect("synced")
        .into_iter()
        .flat_map(|f| f.updates)
        .collect()
}

/// What a case event's signature covers (docs/protocol.md, section 7.2).
fn signed(body: &[u8]) -> Vec<u8> {
    let mut m = hotline_proto::case::SIGNATURE_LABEL.to_vec();
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// A request for a case, sealed to the team's staff.
fn request_envelope(t: &Team, text: &str) -> SignedEnvelope {
    let prekey = EncryptionKeyPair::from_secret(&[5; 32]).expect("a key");
    let to: Vec<Recipient> = [&t.officer, &t.coordinator, &t.coordinator2, &t.admin]
        .iter()
        .map(|m| Recipient {
            device_id: m.key.device_id(),
            prekey_id: 1,
            key: prekey.public_key(),
        })
        .collect();
    let content = Content {
        message_id: random_id(),
        counter: 1,
        timestamp: hotline_server::unix_now(),
        message: Message::chat(text, "en"),
        thread: 0,
        sender_label: String::new(),
    };
    envelope::seal(&t.defender.key, 0, &to, &content, &mut SystemRandomness).expect("seal")
}

#[tokio::test]
async fn an_opened_case_syncs_to_another_staff_device_byte_for_byte_with_a_push() {
    let t = team().await;
    // Staff, but not on the roster: not told of case activity.
    let late = member(&t.server, Role::Officer).await;
    let key = CaseKey::from_bytes([9; 32]);
    let case = CaseId::from_bytes(random_id());
    let opening = event(
        &t.officer.key,
        &key,
        case,
        random_id(),
        1,
        open(),
        "family of four",
    );
    let r = append(&t.officer, &opening).await;
    assert_eq!(accepted(&r), (1, false));
    // The other staff devices hear of it.
    let push = t
        .coordinator
        .session
        .next_push(Duration::from_secs(5))
        .await
        .expect("push");
    assert_eq!(push, Some(Push::Cases(1)));
    for quiet in [&late, &t.defender, &t.officer] {
        assert_eq!(
            quiet
                .session
                .next_push(Duration::from_millis(300))
                .await
                .expect("no push"),
            None,
            "neither the author, nor a device off the roster, nor a defender"
        );
    }

    let frames = sync(&t.coordinator, 0).await.expect("synced");
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    assert_eq!((f.cursor, f.more), (1, false));
    assert_eq!(f.retention_secs, 365 * 86_400);
    assert_eq!(f.updates.len(), 1);
    assert_eq!(f.updates[0].case_id, case);
    assert_eq!(f.updates[0].position, 1);
    match &f.updates[0].kind {
        CaseUpdateKind::Event { event, author_key } => {
            assert_eq!(event, &opening, "the same bytes");
            assert_eq!(*author_key, t.officer.key.public_key());
            // The coordinator, holding the key, reads it.
            let (_, content) = event
                .open(author_key, |_, _| Some(key.clone()))
                .expect("opens");
            assert_eq!(content.note, "family of four");
        }
        other => panic!("{other:?}"),
    }
    // Nothing after the cursor.
    assert!(updates(&t.coordinator, 1).await.is_empty());
}

#[tokio::test]
async fn every_hostile_event_the_server_can_tell_is_refused_and_changes_nothing() {
    let t = team().await;
    let k1 = CaseKey::from_bytes([1; 32]);
    let case = CaseId::from_bytes(random_id());
    let first = event(&t.officer.key, &k1, case, random_id(), 1, open(), "opened");
    assert_eq!(accepted(&append(&t.officer, &first).await), (1, false));

    // A forged signature.
    let mut forged = event(
        &t.officer.key,
        &k1,
        case,
        random_id(),
        1,
        CaseControl::default(),
        "forged",
    );
    forged.signature = Signature::from_bytes([7; 64]);
    assert_eq!(
        code(&append(&t.officer, &forged).await),
        Some(ErrorCode::BadSignature)
    );
    // Signed by another staff device than the session's.
    let theirs = event(
        &t.coordinator.key,
        &k1,
        case,
        random_id(),
        1,
        CaseControl::default(),
        "theirs",
    );
    assert_eq!(
        code(&append(&t.officer, &theirs).await),
        Some(ErrorCode::InvalidArgument)
    );
    // A staff device the roster does not list.
    let late = member(&t.server, Role::Officer).await;
    let r = append(
        &late,
        &event(
            &late.key,
            &k1,
            case,
            random_id(),
            1,
            CaseControl::default(),
            "x",
        ),
    )
    .await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    assert_eq!(detail(&r), "this device is not on the staff roster");
    assert_eq!(
        sync(&late, 0).await.map(|_| ()).map_err(|e| code(&e)),
        Err(Some(ErrorCode::Forbidden))
    );
    // A defender may neither write nor read, and the answer is the same
    // whether the case exists or not.
    let known = append(
        &t.defender,
        &event(
            &t.defender.key,
            &k1,
            case,
            [3; 16],
            1,
            CaseControl::default(),
            "x",
        ),
    )
    .await;
    let unknown = append(
        &t.defender,
        &event(
            &t.defender.key,
            &k1,
            CaseId::from_bytes(random_id()),
            [3; 16],
            1,
            CaseControl::default(),
            "x",
        ),
    )
    .await;
    assert_eq!(code(&known), Some(ErrorCode::Forbidden));
    assert_eq!(known, unknown);
    let synced = sync(&t.defender, 0).await.expect_err("refused");
    assert_eq!(code(&synced), Some(ErrorCode::Forbidden));
    assert_eq!(
        synced,
        sync(&t.defender, 1_000_000).await.expect_err("refused")
    );
    // A replay: the same position, nothing new.
    assert_eq!(accepted(&append(&t.officer, &first).await), (1, true));
    // The same event id with other bytes.
    let header = first.header_unverified().expect("reads");
    let reused = event(
        &t.officer.key,
        &k1,
        case,
        header.event_id,
        1,
        CaseControl::default(),
        "other",
    );
    let r = append(&t.officer, &reused).await;
    assert_eq!(code(&r), Some(ErrorCode::InvalidArgument));
    assert!(detail(&r).contains("event id reused"), "{r:?}");
    // An oversized body, an undecodable one.
    let big = SignedCaseEvent {
        author: t.officer.key.device_id(),
        body: vec![0; MAX_EVENT_BODY_LEN + 1],
        signature: Signature::from_bytes([0; 64]),
    };
    assert_eq!(
        code(&append(&t.officer, &big).await),
        Some(ErrorCode::Malformed)
    );
    let body = b"not a case event".to_vec();
    let garbage = SignedCaseEvent {
        author: t.officer.key.device_id(),
        signature: t.officer.key.sign(&signed(&body)),
        body,
    };
    assert_eq!(
        code(&append(&t.officer, &garbage).await),
        Some(ErrorCode::Malformed)
    );
    // Two rotations race: the first opens epoch 2, the second is refused;
    // an event still under epoch 1 must be sealed again.
    let k2 = CaseKey::from_bytes([2; 32]);
    let k2b = CaseKey::from_bytes([3; 32]);
    let rotation = event(
        &t.officer.key,
        &k2,
        case,
        random_id(),
        2,
        CaseControl::default(),
        "r",
    );
    assert_eq!(accepted(&append(&t.officer, &rotation).await), (2, false));
    let racing = event(
        &t.coordinator.key,
        &k2b,
        case,
        random_id(),
        2,
        CaseControl::default(),
        "r",
    );
    let r = append(&t.coordinator, &racing).await;
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(
        detail(&r),
        "another key holds this epoch: open the next epoch"
    );
    let stale = event(
        &t.coordinator.key,
        &k1,
        case,
        random_id(),
        1,
        CaseControl::default(),
        "late",
    );
    let r = append(&t.coordinator, &stale).await;
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(
        detail(&r),
        "the case key was rotated: seal again under the newest key"
    );
    // An unknown case that the event does not open.
    let r = append(
        &t.officer,
        &event(
            &t.officer.key,
            &k1,
            CaseId::from_bytes(random_id()),
            random_id(),
            1,
            CaseControl::default(),
            "x",
        ),
    )
    .await;
    assert_eq!(code(&r), Some(ErrorCode::NotFound));
    // Only the opening and the rotation were stored.
    let all = updates(&t.admin, 0).await;
    assert_eq!(
        all.iter().map(|u| u.position).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[tokio::test]
async fn a_defender_asks_for_a_case_and_sees_nothing_of_others() {
    let t = team().await;
    let envelope = request_envelope(&t, "we need to leave the country");
    let r = t
        .defender
        .session
        .request(&Request::RequestCase(envelope.clone()))
        .await
        .expect("answered");
    let Response::CaseRequestAccepted {
        case_id,
        envelope_id,
        duplicate: false,
    } = r
    else {
        panic!("{r:?}");
    };
    // Staff see it as requested, with the envelope's digest, and find the
    // envelope in their inbox.
    let all = updates(&t.coordinator, 0).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].case_id, case_id);
    assert_eq!(
        all[0].kind,
        CaseUpdateKind::Requested {
            defender: t.defender.key.device_id(),
            envelope_digest: envelope.digest(),
        }
    );
    let inbox = t
        .officer
        .session
        .request(&Request::FetchInbox {
            after: 0,
            limit: 10,
        })
        .await
        .expect("inbox");
    let Response::Inbox(items) = inbox else {
        panic!("{inbox:?}");
    };
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].envelope, envelope);
    // The same envelope again: the same case.
    let again = t
        .defender
        .session
        .request(&Request::RequestCase(envelope))
        .await
        .expect("answered");
    assert_eq!(
        again,
        Response::CaseRequestAccepted {
            case_id,
            envelope_id,
            duplicate: true
        }
    );
    // Four more wait; a sixth is refused, with what the defender can do.
    for n in 0..4 {
        let r = t
            .defender
            .session
            .request(&Request::RequestCase(request_envelope(
                &t,
                &format!("help {n}"),
            )))
            .await
            .expect("answered");
        assert!(
            matches!(
                r,
                Response::CaseRequestAccepted {
                    duplicate: false,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    let r = t
        .defender
        .session
        .request(&Request::RequestCase(request_envelope(&t, "once more")))
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(
        detail(&r),
        "you already have 5 requests waiting for the team; they will answer them"
    );
    assert_eq!(updates(&t.officer, 0).await.len(), 5);
    // Once staff decline one, the defender may ask again.
    let decline = event(
        &t.officer.key,
        &CaseKey::from_bytes([4; 32]),
        case_id,
        random_id(),
        1,
        close(),
        "declined: referred to a partner",
    );
    assert!(matches!(
        append(&t.officer, &decline).await,
        Response::CaseEventAccepted { .. }
    ));
    let r = t
        .defender
        .session
        .request(&Request::RequestCase(request_envelope(&t, "now")))
        .await
        .expect("answered");
    assert!(
        matches!(
            r,
            Response::CaseRequestAccepted {
                duplicate: false,
                ..
            }
        ),
        "{r:?}"
    );
    // A defender reads no case: the answer names no case, whatever exists.
    let other = member(&t.server, Role::Defender).await;
    let mine = sync(&t.defender, 0).await.expect_err("refused");
    let theirs = sync(&other, 0).await.expect_err("refused");
    assert_eq!(mine, theirs);
    assert_eq!(code(&mine), Some(ErrorCode::Forbidden));
}

/// Opens and closes a case as the officer; its id and the key.
async fn closed_case(t: &Team) -> (CaseId, CaseKey) {
    let key = CaseKey::from_bytes(random_id().repeat(2).try_into().expect("32 bytes"));
    let case = CaseId::from_bytes(random_id());
    for (control, note) in [(open(), "Zofia"), (close(), "settled")] {
        let e = event(&t.officer.key, &key, case, random_id(), 1, control, note);
        accepted(&append(&t.officer, &e).await);
    }
    (case, key)
}

/// The event that closed `case` (a made-up one if it is not closed) and
/// the signature of its pending erasure request, as a staff device syncs
/// them (section 9.7).
async fn erasure_state(t: &Team, case: CaseId) -> (Closing, Option<Signature>) {
    let mut closing = None;
    let mut request = None;
    for u in updates(&t.coordinator, 0).await {
        if u.case_id != case {
            continue;
        }
        match &u.kind {
            CaseUpdateKind::Event { event, .. } => {
                let h = event.header_unverified().expect("reads");
                if let Some(s) = h.control.state {
                    closing = (s == CaseState::Closed).then_some(Closing {
                        author: h.author,
                        event_id: h.event_id,
                    });
                    request = None;
                }
            }
            CaseUpdateKind::ErasureRequested { signature, .. } => request = *signature,
            _ => {}
        }
    }
    let closing = closing.unwrap_or(Closing {
        author: hotline_proto::DeviceId::from_bytes([0; 16]),
        event_id: [0; 16],
    });
    (closing, request)
}

/// `request_case_erasure` signed by `by` over the case's closing (section
/// 9.7).
async fn ask_erasure(t: &Team, by: &IdentityKeyPair, case: CaseId) -> Request {
    let (closing, _) = erasure_state(t, case).await;
    Request::RequestCaseErasure(
        case,
        sign_erasure(by, &case, ErasureStep::Request, &closing),
    )
}

/// `confirm_case_erasure` signed by `by` over the case's closing and the
/// pending request's signature.
async fn confirm_erasure(t: &Team, by: &IdentityKeyPair, case: CaseId) -> Request {
    let (closing, request) = erasure_state(t, case).await;
    let request = request.unwrap_or(Signature::from_bytes([0; 64]));
    Request::ConfirmCaseErasure(
        case,
        sign_erasure(by, &case, ErasureStep::Confirm(request), &closing),
    )
}

#[tokio::test]
async fn retention_and_a_legal_hold_keep_a_case_from_erasure() {
    let mut t = team().await;
    let (case, key) = closed_case(&t).await;
    let r = t
        .officer
        .session
        .request(&ask_erasure(&t, &t.officer.key, case).await)
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(
        detail(&r),
        "closed 0 days ago; the retention period is 365 days"
    );
    t.server.restart_with(|c| c.cases.retention_days = 0).await;
    // Sessions died with the restart: reconnect the staff we need.
    let info = t.server.info();
    t.officer.session = authenticate(&info, &t.officer.key)
        .await
        .expect("reconnects");
    t.coordinator.session = authenticate(&info, &t.coordinator.key)
        .await
        .expect("reconnects");
    // An officer may not set a legal hold; a coordinator may.
    let hold = |author: &IdentityKeyPair| {
        event(
            author,
            &key,
            case,
            random_id(),
            1,
            CaseControl {
                legal_hold: Some(LegalHold::Set),
                ..CaseControl::default()
            },
            "hold",
        )
    };
    let r = append(&t.officer, &hold(&t.officer.key)).await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    accepted(&append(&t.coordinator, &hold(&t.coordinator.key)).await);
    let r = t
        .officer
        .session
        .request(&ask_erasure(&t, &t.officer.key, case).await)
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(detail(&r), "the case is under a legal hold");
    // Positions continued across the restart: opening, closing, hold.
    let all = updates(&t.coordinator, 0).await;
    assert_eq!(
        all.iter().map(|u| u.position).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn two_staff_members_erase_a_closed_case_and_its_records_are_shredded() {
    let mut t = team_with(|c| c.cases.retention_days = 0).await;
    let (case, _) = closed_case(&t).await;
    let (kept, _) = closed_case(&t).await;
    // Asked for by a coordinator ...
    let r = t
        .coordinator
        .session
        .request(&ask_erasure(&t, &t.coordinator.key, case).await)
        .await
        .expect("answered");
    assert_eq!(
        r,
        Response::CaseErasure {
            case_id: case,
            requested_by: t.coordinator.key.device_id(),
            erased: false
        }
    );
    // ... not confirmed by the same device, nor by an officer ...
    let r = t
        .coordinator
        .session
        .request(&confirm_erasure(&t, &t.coordinator.key, case).await)
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(detail(&r), "a second staff member must confirm");
    let r = t
        .officer
        .session
        .request(&confirm_erasure(&t, &t.officer.key, case).await)
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    // ... a confirmation without a request is refused ...
    let r = t
        .coordinator2
        .session
        .request(&confirm_erasure(&t, &t.coordinator2.key, kept).await)
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    // ... nor by a confirmation that is not this device's signature of
    // this step of this case (BAD_SIGNATURE, nothing changed) ...
    let (closing, request) = erasure_state(&t, case).await;
    let request = request.expect("asked for");
    for forged in [
        Request::ConfirmCaseErasure(
            case,
            sign_erasure(
                &t.coordinator.key,
                &case,
                ErasureStep::Confirm(request),
                &closing,
            ),
        ),
        Request::ConfirmCaseErasure(
            case,
            sign_erasure(&t.coordinator2.key, &case, ErasureStep::Request, &closing),
        ),
        Request::ConfirmCaseErasure(
            case,
            sign_erasure(
                &t.coordinator2.key,
                &kept,
                ErasureStep::Confirm(request),
                &closing,
            ),
        ),
    ] {
        let r = t
            .coordinator2
            .session
            .request(&forged)
            .await
            .expect("answered");
        assert_eq!(code(&r), Some(ErrorCode::BadSignature), "{r:?}");
        assert_eq!(
            detail(&r),
            "the erasure is not signed by this device's identity key over this closing of the case (sync: it may have been reopened and closed again since)"
        );
    }
    let r = t
        .officer
        .session
        .request(&Request::RequestCaseErasure(
            kept,
            sign_erasure(
                &t.coordinator.key,
                &kept,
                ErasureStep::Request,
                &erasure_state(&t, kept).await.0,
            ),
        ))
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::BadSignature), "{r:?}");
    // ... and a second coordinator erases it.
    let r = t
        .coordinator2
        .session
        .request(&confirm_erasure(&t, &t.coordinator2.key, case).await)
        .await
        .expect("answered");
    assert_eq!(
        r,
        Response::CaseErasure {
            case_id: case,
            requested_by: t.coordinator.key.device_id(),
            erased: true
        }
    );
    // Sync: the erasure, and no event of the case any more.
    let all = updates(&t.officer, 0).await;
    assert!(
        all.iter()
            .all(|u| u.case_id != case || matches!(u.kind, CaseUpdateKind::Erased { .. }))
    );
    let erased: Vec<_> = all.iter().filter(|u| u.case_id == case).collect();
    assert_eq!(erased.len(), 1);
    assert_eq!(
        erased[0].kind,
        CaseUpdateKind::Erased {
            requested_by: t.coordinator.key.device_id(),
            confirmed_by: t.coordinator2.key.device_id(),
            request_signature: Some(request),
            confirm_signature: Some(sign_erasure(
                &t.coordinator2.key,
                &case,
                ErasureStep::Confirm(request),
                &closing
            )),
            closing: Some(closing),
        }
    );
    // The other case's erasure was never asked for: the forged request
    // changed nothing.
    assert!(
        all.iter()
            .all(|u| u.case_id != kept || matches!(u.kind, CaseUpdateKind::Event { .. }))
    );
    assert_eq!(all.iter().filter(|u| u.case_id == kept).count(), 2);
    let last = all.last().expect("updates").position;
    // Writing to it is refused.
    let r = append(
        &t.officer,
        &event(
            &t.officer.key,
            &CaseKey::from_bytes([5; 32]),
            case,
            random_id(),
            1,
            open(),
            "again",
        ),
    )
    .await;
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(detail(&r), "this case was erased");

    // On disk: the store, opened with the server's own code, reads the
    // case's two records as shredded, the other case's as events; the
    // chain verifies.
    t.server.stop().await;
    let data = t.server.config().data_dir.clone();
    let report = hotline_server::store::verify_store(&data, t.server.key(), 1 << 20, None)
        .expect("the store verifies");
    assert_eq!(report.verified.shredded, 2);
    let keys = hotline_server::store::open_keys(
        &data,
        t.server.key(),
        hotline_server::store::Create::Never,
    )
    .expect("keys");
    let (store, _) = hotline_server::store::LogStore::open_read_only(&data, keys).expect("opens");
    let (head, _) = store.log().head();
    let mut shredded = 0;
    let mut case_events = 0;
    for seq in 1..=head {
        match store.log().read(seq).expect("reads") {
            Some(hotline_server::log::Entry::Shredded) => shredded += 1,
            Some(hotline_server::log::Entry::Event(bytes)) => {
                if let Ok(hotline_server::domain::Event::Case(
                    hotline_server::domain::cases::CaseEvent::Appended { header, .. },
                )) = hotline_server::store::codec::decode_event(&bytes)
                {
                    assert_eq!(header.case_id, kept, "only the kept case's events read");
                    case_events += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!((shredded, case_events), (2, 2));
    drop(store);

    // A restart keeps everything: positions continue, the dedup holds.
    t.server.start_again().await;
    let info = t.server.info();
    t.officer.session = authenticate(&info, &t.officer.key)
        .await
        .expect("reconnects");
    let again = updates(&t.officer, 0).await;
    assert_eq!(again, all, "the same updates after a restart");
    let next = event(
        &t.officer.key,
        &CaseKey::from_bytes([6; 32]),
        CaseId::from_bytes(random_id()),
        random_id(),
        1,
        open(),
        "next",
    );
    assert_eq!(
        accepted(&append(&t.officer, &next).await),
        (last + 1, false)
    );
    assert_eq!(accepted(&append(&t.officer, &next).await), (last + 1, true));
}

/// Many large events: a sync answer comes in several frames of at most
/// one frame's size each, in order, with nothing lost.
#[tokio::test]
async fn a_large_sync_comes_in_several_frames() {
    let t = team().await;
    let key = CaseKey::from_bytes([8; 32]);
    let case = CaseId::from_bytes(random_id());
    let big = "x".repeat(60_000);
    accepted(
        &append(
            &t.officer,
            &event(&t.officer.key, &key, case, random_id(), 1, open(), &big),
        )
        .await,
    );
    for _ in 0..9 {
        let e = event(
            &t.officer.key,
            &key,
            case,
            random_id(),
            1,
            CaseControl::default(),
            &big,
        );
        accepted(&append(&t.officer, &e).await);
    }
    let frames = sync(&t.coordinator, 0).await.expect("synced");
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert!(frames.iter().all(|f| !f.more), "one answer holds all");
    assert!(
        frames.iter().all(|f| f.retention_secs == 365 * 86_400),
        "every frame says the retention"
    );
    let positions: Vec<u64> = frames
        .iter()
        .flat_map(|f| f.updates.iter().map(|u| u.position))
        .collect();
    assert_eq!(positions, (1..=10).collect::<Vec<_>>());
    assert_eq!(frames.last().expect("frames").cursor, 10);
}

/// `body` with an extra length-delimited field `tag` of `len` bytes:
/// protobuf readers skip it, so the header still reads.
fn padded_body(body: &[u8], tag: u32, len: usize) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut out = body.to_vec();
    encode_key(tag, WireType::LengthDelimited, &mut out);
    encode_varint(len as u64, &mut out);
    out.resize(out.len() + len, 0x5a);
    out
}

/// Issue 12, point 1: a body that is not the canonical encoding of its
/// fields (an unknown field riding along, a field twice) is refused as
/// malformed, even when signed by its author, and changes nothing; the
/// canonical one is then accepted.
#[tokio::test]
async fn a_case_event_body_that_is_not_canonical_is_refused() {
    let t = team().await;
    let key = CaseKey::from_bytes([4; 32]);
    let case = CaseId::from_bytes(random_id());
    let real = event(&t.officer.key, &key, case, random_id(), 1, open(), "o");
    assert!(real.body_is_canonical());
    let junk = padded_body(&real.body, 15, 60_000);
    // A field twice: the case id again (a reader keeps the last).
    let twice = padded_body(&real.body, 2, 16);
    for body in [junk, twice] {
        let e = SignedCaseEvent {
            author: t.officer.key.device_id(),
            signature: t.officer.key.sign(&signed(&body)),
            body,
        };
        assert!(e.header_unverified().is_ok(), "the header reads");
        let r = append(&t.officer, &e).await;
        assert_eq!(code(&r), Some(ErrorCode::Malformed));
        assert_eq!(
            detail(&r),
            "the case event's body is not the canonical encoding of its fields"
        );
    }
    assert!(
        updates(&t.coordinator, 0).await.is_empty(),
        "nothing stored"
    );
    assert_eq!(accepted(&append(&t.officer, &real).await), (1, false));
}

/// Issue 12, point 2: sync answers nobody reads hold at most one frame
/// per stream in the server (each frame is built after the one before is
/// written), and once the request timeout passes the streams are reset
/// and nothing is held; the server then answers syncs as before.
#[tokio::test]
async fn sync_answers_nobody_reads_hold_one_frame_per_stream_and_time_out() {
    let t = team_with(|c| c.limits.request_timeout_secs = 2).await;
    let key = CaseKey::from_bytes([8; 32]);
    let case = CaseId::from_bytes(random_id());
    let big = "x".repeat(60_000);
    accepted(
        &append(
            &t.officer,
            &event(&t.officer.key, &key, case, random_id(), 1, open(), &big),
        )
        .await,
    );
    // About 2.6 MB of updates: 11 frames, more than a stream's receive
    // window lets through unread.
    for _ in 0..39 {
        let e = event(
            &t.officer.key,
            &key,
            case,
            random_id(),
            1,
            CaseControl::default(),
            &big,
        );
        accepted(&append(&t.officer, &e).await);
    }
    let running = t.server.server();
    assert_eq!(running.case_sync_frames_held(), 0);
    const STREAMS: usize = 8;
    let mut unread = Vec::new();
    for _ in 0..STREAMS {
        let (mut send, recv) = t
            .coordinator
            .session
            .connection()
            .open_bi()
            .await
            .expect("stream");
        let bytes = frame::encode(&Request::SyncCases { after: 0 }.encode()).expect("frame");
        send.write_all(&bytes).await.expect("write");
        let _ = send.finish();
        unread.push((send, recv));
    }
    // While nobody reads: at most one frame per stream is held (before,
    // each answer was built whole, 11 frames, before its first write).
    let mut most = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(running.case_sync_frames_held());
    }
    assert!(
        (1..=STREAMS).contains(&most),
        "{most} frames held for {STREAMS} streams"
    );
    // Past the timeout the streams are reset and nothing is held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(running.case_sync_frames_held(), 0);
    for (_send, mut recv) in unread {
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            recv.read_to_end(64 * (HEADER_LEN + MAX_FRAME_LEN)),
        )
        .await
        .expect("the stream ends");
        assert!(
            matches!(
                read,
                Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)))
                    if code.into_inner() == u64::from(ErrorCode::Unavailable.to_u32())
            ),
            "reset as unavailable, never finished: {read:?}"
        );
    }
    // A reader that reads gets everything.
    let positions: Vec<u64> = updates(&t.coordinator, 0)
        .await
        .iter()
        .map(|u| u.position)
        .collect();
    assert_eq!(positions, (1..=40).collect::<Vec<_>>());
}

/// Issue 12, point 3: after a requested case is erased, a resend of the
/// request is answered byte for byte as before (the same case id,
/// `duplicate`), creates nothing, and says the same after a restart.
#[tokio::test]
async fn a_request_resent_after_its_case_was_erased_gets_the_same_answer() {
    let mut t = team_with(|c| c.cases.retention_days = 0).await;
    let envelope = request_envelope(&t, "we need to leave");
    let ask = Request::RequestCase(envelope);
    let first = t.defender.session.request(&ask).await.expect("answered");
    let Response::CaseRequestAccepted { case_id, .. } = first else {
        panic!("{first:?}");
    };
    let before = t.defender.session.request(&ask).await.expect("answered");
    assert!(matches!(
        before,
        Response::CaseRequestAccepted {
            duplicate: true,
            ..
        }
    ));
    // Declined, then erased by two staff members.
    let key = CaseKey::from_bytes([6; 32]);
    let declined = event(&t.officer.key, &key, case_id, random_id(), 1, close(), "d");
    accepted(&append(&t.officer, &declined).await);
    let req = ask_erasure(&t, &t.officer.key, case_id).await;
    let r = t.officer.session.request(&req).await.expect("answered");
    assert!(matches!(r, Response::CaseErasure { .. }), "{r:?}");
    let req = confirm_erasure(&t, &t.coordinator.key, case_id).await;
    let r = t.coordinator.session.request(&req).await.expect("answered");
    assert!(matches!(r, Response::CaseErasure { .. }), "{r:?}");
    let last = updates(&t.officer, 0)
        .await
        .last()
        .expect("updates")
        .position;
    let after = t.defender.session.request(&ask).await.expect("answered");
    assert_eq!(after.encode(), before.encode(), "byte for byte");
    assert!(
        updates(&t.officer, last).await.is_empty(),
        "nothing new for the staff"
    );
    // The same after a restart (the state from its snapshot).
    t.server.restart().await;
    let info = t.server.info();
    t.defender.session = authenticate(&info, &t.defender.key)
        .await
        .expect("reconnects");
    let restarted = t.defender.session.request(&ask).await.expect("answered");
    assert_eq!(restarted.encode(), before.encode(), "byte for byte");
}

/// Issue 12, point 5: the second opener of the ledger (its epoch 1 taken
/// by another key) is told to open the next epoch, before its ledger flag
/// is looked at, and doing so is accepted.
#[tokio::test]
async fn a_second_ledger_opener_is_told_to_open_the_next_epoch() {
    let t = team().await;
    let ledger = CaseId::from_bytes(random_id());
    let opening = CaseControl {
        state: Some(CaseState::Open),
        ledger: true,
        ..CaseControl::default()
    };
    let (k1, k2) = (CaseKey::from_bytes([1; 32]), CaseKey::from_bytes([2; 32]));
    let first = event(&t.officer.key, &k1, ledger, random_id(), 1, opening, "l");
    accepted(&append(&t.officer, &first).await);
    let second = event(
        &t.coordinator.key,
        &k2,
        ledger,
        random_id(),
        1,
        opening,
        "l",
    );
    let r = append(&t.coordinator, &second).await;
    assert_eq!(code(&r), Some(ErrorCode::FailedPrecondition));
    assert_eq!(
        detail(&r),
        "another key holds this epoch: open the next epoch"
    );
    // Under the case's own key, the ledger flag is what is wrong.
    let flagged = event(
        &t.coordinator.key,
        &k1,
        ledger,
        random_id(),
        1,
        opening,
        "l",
    );
    let r = append(&t.coordinator, &flagged).await;
    assert_eq!(code(&r), Some(ErrorCode::InvalidArgument));
    assert_eq!(
        detail(&r),
        "only the event that opens a case may mark it the ledger"
    );
    let next = event(
        &t.coordinator.key,
        &k2,
        ledger,
        random_id(),
        2,
        CaseControl::default(),
        "rotated",
    );
    assert_eq!(accepted(&append(&t.coordinator, &next).await), (2, false));
}

/// Review 2, finding E1: erasure signatures decide one closing. A seized
/// server that kept a step-1 signature of a request a reopening dropped,
/// and a confirmation of that request, cannot use them once the case was
/// closed again: the server refuses both (`BAD_SIGNATURE`, nothing
/// stored), and the case is still there for every staff device.
#[tokio::test]
async fn an_erasure_signature_of_an_earlier_closing_is_refused_after_a_reopening() {
    let t = team_with(|c| c.cases.retention_days = 0).await;
    let (case, key) = closed_case(&t).await;
    let (first, _) = erasure_state(&t, case).await;
    let old = sign_erasure(&t.officer.key, &case, ErasureStep::Request, &first);
    let r = t
        .officer
        .session
        .request(&Request::RequestCaseErasure(case, old))
        .await
        .expect("answered");
    assert!(
        matches!(r, Response::CaseErasure { erased: false, .. }),
        "{r:?}"
    );
    let kept_confirm = sign_erasure(
        &t.coordinator2.key,
        &case,
        ErasureStep::Confirm(old),
        &first,
    );
    // Reopened (the request is dropped) and closed again.
    for control in [open(), close()] {
        let e = event(
            &t.coordinator.key,
            &key,
            case,
            random_id(),
            1,
            control,
            "again",
        );
        accepted(&append(&t.coordinator, &e).await);
    }
    let (second, pending) = erasure_state(&t, case).await;
    assert_ne!(first, second);
    assert_eq!(pending, None, "the reopening dropped the request");
    let before = updates(&t.coordinator, 0).await;
    let r = t
        .officer
        .session
        .request(&Request::RequestCaseErasure(case, old))
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::BadSignature), "{r:?}");
    assert_eq!(updates(&t.coordinator, 0).await, before, "nothing stored");
    // A fresh request of the new closing; the kept confirmation does not
    // confirm it.
    let r = t
        .coordinator
        .session
        .request(&ask_erasure(&t, &t.coordinator.key, case).await)
        .await
        .expect("answered");
    assert!(
        matches!(r, Response::CaseErasure { erased: false, .. }),
        "{r:?}"
    );
    let r = t
        .coordinator2
        .session
        .request(&Request::ConfirmCaseErasure(case, kept_confirm))
        .await
        .expect("answered");
    assert_eq!(code(&r), Some(ErrorCode::BadSignature), "{r:?}");
    let all = updates(&t.officer, 0).await;
    assert!(
        all.iter()
            .all(|u| u.case_id != case || !matches!(u.kind, CaseUpdateKind::Erased { .. }))
    );
    assert_eq!(
        all.iter()
            .filter(|u| u.case_id == case && matches!(u.kind, CaseUpdateKind::Event { .. }))
            .count(),
        4,
        "every event of the case is still there"
    );
    // The erasure request that stands names the new closing.
    let named: Vec<_> = all
        .iter()
        .filter_map(|u| match &u.kind {
            CaseUpdateKind::ErasureRequested { closing, .. } if u.case_id == case => *closing,
            _ => None,
        })
        .collect();
    assert_eq!(named, [second]);
}

/// The team's staff as a reader's roster (what its devices check events
/// against): the same entries as the signed one of [`team_with`].
fn staff_roster(t: &Team) -> Roster {
    let now = hotline_server::unix_now();
    Roster {
        version: 1,
        issued_at: now,
        expires_at: now + 3600,
        previous_hash: [0; 32],
        entries: [&t.admin, &t.officer, &t.coordinator, &t.coordinator2]
            .iter()
            .map(|m| RosterEntry {
                device_id: m.key.device_id(),
                role: m.role,
                identity_key: m.key.public_key(),
                valid_from: 0,
                valid_until: now + 3600,
            })
            .collect(),
    }
}

/// `count` events of about 60 KB each, written by the officer into a new
/// case (positions from 1 on a new server).
async fn big_case(t: &Team, count: usize) -> CaseId {
    let key = CaseKey::from_bytes([8; 32]);
    let case = CaseId::from_bytes(random_id());
    let big = "x".repeat(60_000);
    for n in 0..count {
        let control = if n == 0 {
            open()
        } else {
            CaseControl::default()
        };
        let e = event(&t.officer.key, &key, case, random_id(), 1, control, &big);
        accepted(&append(&t.officer, &e).await);
    }
    case
}

/// Issue 12, second review, Y point 1: the request timeout applies to
/// each frame of a sync answer, not to the whole answer: a reader on a
/// slow link, taking each frame later than the timeout allows for the
/// whole answer, still gets every frame and the finish (before, the
/// stream was reset once the whole answer had taken longer).
#[tokio::test]
async fn a_slow_reader_gets_the_whole_sync_answer_past_the_request_timeout() {
    let t = team_with(|c| c.limits.request_timeout_secs = 2).await;
    big_case(&t, 40).await;
    let (mut send, mut recv) = t
        .coordinator
        .session
        .connection()
        .open_bi()
        .await
        .expect("stream");
    let bytes = frame::encode(&Request::SyncCases { after: 0 }.encode()).expect("frame");
    send.write_all(&bytes).await.expect("write");
    let _ = send.finish();
    let started = std::time::Instant::now();
    let mut positions = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        match recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => break,
            Err(e) => panic!("the answer was cut after {positions:?}: {e:?}"),
        }
        let len = frame::payload_len(header, MAX_FRAME_LEN).expect("a length");
        let mut payload = vec![0u8; len];
        recv.read_exact(&mut payload).await.expect("a whole frame");
        match Response::decode(&payload).expect("a response") {
            Response::CaseSync(s) => positions.extend(s.updates.iter().map(|u| u.position)),
            other => panic!("not a sync frame: {other:?}"),
        }
        // A slow link: each frame comes well within the timeout, the
        // whole answer well past it.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(4),
        "the answer took {:?}: not slow enough to test anything",
        started.elapsed()
    );
    assert_eq!(positions, (1..=40).collect::<Vec<_>>());
}

/// Issue 12, second review, Y point 1: a sync whose answer is cut after
/// some frames keeps what those frames brought, moves its cursor to the
/// last one's, and the next sync resumes there: the frames already
/// applied are not fetched again (before, everything applied was thrown
/// away and the next sync started from the same cursor, so on a slow
/// link a large backlog never got through).
#[tokio::test]
async fn a_cut_sync_keeps_the_frames_it_applied_and_the_next_resumes_after_them() {
    use hotline_client::cases::replica::Replica;
    use hotline_client::cases::sync::sync_cases_each;
    let mut t = team().await;
    let case = big_case(&t, 40).await;
    let roster = staff_roster(&t);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = hotline_client::StateDir::new(dir.path());
    let mut replica = Replica::open(&state, &[3; 32]).expect("replica");

    // The link fails after the third frame.
    let conn = t.coordinator.session.connection().clone();
    let mut frames = 0;
    let mut cut_at = 0;
    let cut = sync_cases_each(
        &t.coordinator.session,
        &mut replica,
        &roster,
        &|_, _| None,
        &mut |f| {
            // The last frame applied whole (one already received may
            // still be read after the close).
            frames += 1;
            cut_at = f.cursor;
            if frames == 3 {
                conn.close(0u32.into(), b"the link failed");
            }
        },
    )
    .await;
    assert!(cut.is_err(), "the sync was cut: {cut:?}");
    assert!(0 < cut_at && cut_at < 40, "cut at {cut_at}");
    assert_eq!(
        replica.cursor(),
        cut_at,
        "the cursor of the last frame applied"
    );
    let held = replica.load(&case).expect("the case").events;
    assert_eq!(
        held.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=cut_at).collect::<Vec<_>>(),
        "what the frames applied brought is kept"
    );
    drop(replica);

    // Reopened (as the next command would) and reconnected: the next sync
    // asks from there, and gets only the rest.
    let mut replica = Replica::open(&state, &[3; 32]).expect("replica");
    assert_eq!(replica.cursor(), cut_at, "kept on disk");
    t.coordinator.session = authenticate(&t.server.info(), &t.coordinator.key)
        .await
        .expect("reconnects");
    let mut first = None;
    let report = sync_cases_each(
        &t.coordinator.session,
        &mut replica,
        &roster,
        &|_, _| None,
        &mut |f| {
            if first.is_none() {
                first = f.updates.first().map(|u| u.position);
            }
        },
    )
    .await
    .expect("synced");
    assert_eq!(first, Some(cut_at + 1), "nothing applied is fetched again");
    assert_eq!(report.events as u64, 40 - cut_at);
    assert_eq!(replica.cursor(), 40);
    assert_eq!(replica.load(&case).expect("the case").events.len(), 40);
}

/// `body` (written without a control) with an empty `control` (field 8,
/// `42 00`) put where its field number places it, before the nonce.
fn with_empty_control(body: &[u8]) -> Vec<u8> {
    use prost::encoding::{WireType, decode_key, decode_varint};
    let mut rest = body;
    loop {
        let before = body.len() - rest.len();
        let (tag, wire) = decode_key(&mut rest).expect("a key");
        if tag > 8 {
            let mut out = body[..before].to_vec();
            out.extend_from_slice(&[0x42, 0x00]);
            out.extend_from_slice(&body[before..]);
            return out;
        }
        match wire {
            WireType::Varint => {
                decode_varint(&mut rest).expect("a varint");
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut rest).expect("a length") as usize;
                rest = &rest[len..];
            }
            other => panic!("a body holds no {other:?}"),
        }
    }
}

/// Issue 12, second review, Y point 6: an empty `control` (`42 00`, a
/// field at its default, which writers leave out) is refused as not
/// canonical, even signed by its author, and changes nothing (before, it
/// was stored: decoded and encoded again it gives the same bytes).
#[tokio::test]
async fn an_event_with_an_empty_control_is_refused_as_not_canonical() {
    let t = team().await;
    let key = CaseKey::from_bytes([4; 32]);
    let case = CaseId::from_bytes(random_id());
    accepted(
        &append(
            &t.officer,
            &event(&t.officer.key, &key, case, random_id(), 1, open(), "o"),
        )
        .await,
    );
    let plain = event(
        &t.officer.key,
        &key,
        case,
        random_id(),
        1,
        CaseControl::default(),
        "a note",
    );
    let body = with_empty_control(&plain.body);
    assert_eq!(body.len(), plain.body.len() + 2);
    let e = SignedCaseEvent {
        author: t.officer.key.device_id(),
        signature: t.officer.key.sign(&signed(&body)),
        body,
    };
    let header = e.header_unverified().expect("the header reads");
    assert_eq!(header.control, CaseControl::default());
    let r = append(&t.officer, &e).await;
    assert_eq!(code(&r), Some(ErrorCode::Malformed));
    assert_eq!(
        detail(&r),
        "the case event's body is not the canonical encoding of its fields"
    );
    assert_eq!(updates(&t.coordinator, 0).await.len(), 1, "nothing stored");
    assert_eq!(accepted(&append(&t.officer, &plain).await), (2, false));
}

/// Issue 12, second review, Y point 3: the server takes a case request
/// from a device only by the rule every reader applies to its events:
/// its entry on the roster has a staff role and is valid at the server's
/// time. An officer whose entry expired is refused (before, the server
/// stored its event and every reader ignored it: an acknowledged write
/// lost), and a coordinator the roster lists as an officer may not set a
/// legal hold; both change nothing, and a valid entry still writes.
#[tokio::test]
async fn the_server_applies_the_readers_roster_rule_role_and_dates() {
    let server = TestServer::start().await;
    let admin = member(&server, Role::Admin).await;
    let officer = member(&server, Role::Officer).await;
    let coordinator = member(&server, Role::Coordinator).await;
    let listed_as_officer = member(&server, Role::Coordinator).await;
    let now = hotline_server::unix_now();
    let entry = |m: &Member, role: Role, from: u64, until: u64| RosterEntry {
        device_id: m.key.device_id(),
        role,
        identity_key: m.key.public_key(),
        valid_from: from,
        valid_until: until,
    };
    let roster = Roster {
        version: 1,
        issued_at: now,
        expires_at: now + 3600,
        previous_hash: [0; 32],
        entries: vec![
            entry(&admin, Role::Admin, 0, now + 3600),
            // Expired ten minutes ago.
            entry(&officer, Role::Officer, 0, now - 600),
            entry(&coordinator, Role::Coordinator, 0, now + 3600),
            entry(&listed_as_officer, Role::Officer, 0, now + 3600),
        ],
    }
    .sign(&OrgKeyPair::from_seed(&[77; 32]));
    admin.session.put_roster(roster).await.expect("roster");

    let key = CaseKey::from_bytes([8; 32]);
    let case = CaseId::from_bytes(random_id());
    let expired = event(&officer.key, &key, case, random_id(), 1, open(), "o");
    let r = append(&officer, &expired).await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    assert_eq!(
        detail(&r),
        "this device is not on the staff roster now: its entry's dates do not include this time"
    );
    assert!(
        matches!(sync(&officer, 0).await, Err(Response::Error(e)) if e.code == ErrorCode::Forbidden),
        "nor does it read"
    );
    assert!(updates(&coordinator, 0).await.is_empty(), "nothing stored");

    let opening = event(&coordinator.key, &key, case, random_id(), 1, open(), "o");
    assert_eq!(accepted(&append(&coordinator, &opening).await), (1, false));
    let hold = CaseControl {
        legal_hold: Some(LegalHold::Set),
        ..CaseControl::default()
    };
    let by_roster_officer = event(
        &listed_as_officer.key,
        &key,
        case,
        random_id(),
        1,
        hold,
        "h",
    );
    let r = append(&listed_as_officer, &by_roster_officer).await;
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    assert_eq!(
        detail(&r),
        "only coordinators and admins set or lift a legal hold"
    );
    let note = event(
        &listed_as_officer.key,
        &key,
        case,
        random_id(),
        1,
        CaseControl::default(),
        "n",
    );
    assert_eq!(
        accepted(&append(&listed_as_officer, &note).await),
        (2, false)
    );
    assert_eq!(updates(&admin, 0).await.len(), 2);
}
