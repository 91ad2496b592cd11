//! Seeds for the fuzz corpora: small, well-formed inputs made by the real
//! encoders (and the server's golden files), each with its selector byte.

use std::path::Path;

use hotline_client::history::{Entry, fuzz_encode_history};
use hotline_client::keystore;
use hotline_client::messenger::Device;
use hotline_client::outbox::Outgoing;
use hotline_client::{Profile, StateDir};
use hotline_fuzz_harness::case_event::CaseKeys;
use hotline_fuzz_harness::e2e::{Keys, NOW, PREKEY_ID};
use hotline_fuzz_harness::log_record::{SEQ, record_key};
use hotline_proto::alert::{
    AlertContent, AlertInfo, AlertOrigin, AlertStatus, CloseReason, EscalationTier, Priority, Push,
};
use hotline_proto::auth::Nonce;
use hotline_proto::case::content::CaseEventContent;
use hotline_proto::case::seal::{self as case_seal, CaseKey};
use hotline_proto::case::{
    CaseControl, CaseId, CaseState, CaseSync, CaseUpdate, CaseUpdateKind, LegalHold,
    SignedCaseEvent, erasure,
};
use hotline_proto::e2e::content::{Category, CheckinOffer, Message, Programme};
use hotline_proto::e2e::envelope::{self, Content};
use hotline_proto::e2e::prekey::{Prekey, PrekeyKind};
use hotline_proto::e2e::replay::ReplayGuard;
use hotline_proto::e2e::roster::{Roster, RosterEntry};
use hotline_proto::e2e::suite::DeterministicRandomness;
use hotline_proto::frame;
use hotline_proto::message::{
    Challenge, DeliveryState, DeviceInfo, DutyEntry, InboxItem, PrekeyBundle, Request, Response,
    RosterStanding, SetupRequest, StatusInfo, Welcome, encode_setup_response,
};
use hotline_proto::{CertPin, ErrorCode, IdentityKeyPair, Invite, InviteToken, Role, WireError};
use hotline_server::log::record::{self, Checkpoint, MAIN_KEY_ID};
use zeroize::Zeroizing;

/// One seed: its target, a name for its file, and the bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: &str, selector: u8, body: &[u8]) -> Seed {
    let mut bytes = vec![selector];
    bytes.extend_from_slice(body);
    Seed {
        target,
        name: name.to_owned(),
        bytes,
    }
}

pub fn all() -> Vec<Seed> {
    let keys = Keys::new();
    let mut out = Vec::new();
    setup(&keys, &mut out);
    requests(&keys, &mut out);
    responses(&keys, &mut out);
    e2e(&keys, &mut out);
    invites(&keys, &mut out);
    log_records(&mut out);
    store(&mut out);
    config(&mut out);
    client_files(&mut out);
    case_events(&mut out);
    out
}

/// A case event by the case target's author, under its key.
fn case_event(control: CaseControl, note: &str) -> SignedCaseEvent {
    let keys = CaseKeys::new();
    let draft = hotline_proto::case::seal::EventDraft {
        control,
        ..CaseKeys::draft()
    };
    let content = CaseEventContent {
        timestamp: NOW,
        note: note.into(),
        language: "en".into(),
        ..Default::default()
    };
    let mut rng = DeterministicRandomness::new(note.as_bytes());
    case_seal::seal(&keys.author, &keys.key, &draft, &content, &mut rng).expect("seals")
}

fn case_events(out: &mut Vec<Seed>) {
    let t = "case_event";
    let open = case_event(
        CaseControl {
            state: Some(CaseState::Open),
            ..CaseControl::default()
        },
        "opened",
    );
    let closed = case_event(
        CaseControl {
            state: Some(CaseState::Closed),
            legal_hold: Some(LegalHold::Set),
            ledger: false,
        },
        "closed",
    );
    let ledger = case_event(
        CaseControl {
            state: Some(CaseState::Open),
            legal_hold: None,
            ledger: true,
        },
        "ledger",
    );
    out.push(seed(t, "event", 0, &open.encode()));
    out.push(seed(t, "event-closed-legal-hold", 0, &closed.encode()));
    out.push(seed(t, "event-body", 1, &open.body));
    out.push(seed(t, "event-body-ledger", 1, &ledger.body));
    // A CaseEventContent by hand: timestamp (field 1) NOW, note (3) "a
    // note", one rotated_out (8) device id.
    let mut content = vec![0x08];
    let mut v = NOW;
    while v >= 0x80 {
        content.push((v as u8) | 0x80);
        v >>= 7;
    }
    content.push(v as u8);
    content.extend_from_slice(&[0x1a, 6]);
    content.extend_from_slice(b"a note");
    content.extend_from_slice(&[0x42, 16]);
    content.extend_from_slice(&[0x65; 16]);
    out.push(seed(t, "content", 2, &content));
    out.push(seed(
        t,
        "content-padded",
        3,
        &envelope::pad(&content).expect("pads"),
    ));
}

fn case_sync(keys: &Keys) -> CaseSync {
    let event = case_event(
        CaseControl {
            state: Some(CaseState::Open),
            ..CaseControl::default()
        },
        "opened",
    );
    let case_id = CaseId::from_bytes([0x63; 16]);
    let closing = seed_closing();
    let request_signature =
        erasure::sign_erasure(&keys.me, &case_id, erasure::ErasureStep::Request, &closing);
    CaseSync {
        updates: vec![
            CaseUpdate {
                position: 1,
                case_id,
                at: NOW,
                kind: CaseUpdateKind::Requested {
                    defender: keys.sender.device_id(),
                    envelope_digest: [7; 32],
                },
            },
            CaseUpdate {
                position: 2,
                case_id,
                at: NOW + 1,
                kind: CaseUpdateKind::Event {
                    event,
                    author_key: CaseKeys::new().author.public_key(),
                },
            },
            CaseUpdate {
                position: 3,
                case_id,
                at: NOW + 2,
                kind: CaseUpdateKind::ErasureRequested {
                    requested_by: keys.me.device_id(),
                    signature: Some(request_signature),
                    closing: Some(closing),
                },
            },
            CaseUpdate {
                position: 4,
                case_id,
                at: NOW + 3,
                kind: CaseUpdateKind::Erased {
                    requested_by: keys.me.device_id(),
                    confirmed_by: keys.sender.device_id(),
                    request_signature: Some(request_signature),
                    confirm_signature: Some(erasure::sign_erasure(
                        &keys.sender,
                        &case_id,
                        erasure::ErasureStep::Confirm(request_signature),
                        &closing,
                    )),
                    closing: Some(closing),
                },
            },
        ],
        cursor: 4,
        more: true,
        retention_secs: 365 * 86_400,
    }
}

fn staff_roster(keys: &Keys, version: u64) -> Roster {
    Roster {
        version,
        issued_at: NOW - 10,
        expires_at: NOW + 30 * 24 * 3600,
        previous_hash: [0; 32],
        entries: vec![
            RosterEntry {
                device_id: keys.me.device_id(),
                role: Role::Officer,
                identity_key: keys.me.public_key(),
                valid_from: NOW - 10,
                valid_until: NOW + 3600,
            },
            RosterEntry {
                device_id: keys.sender.device_id(),
                role: Role::Coordinator,
                identity_key: keys.sender.public_key(),
                valid_from: 0,
                valid_until: u64::MAX,
            },
        ],
    }
}

/// A content whose message reads as `body` would in the old form: a first
/// line `category: NAME` makes it an SOS.
fn content(body: &[u8], thread: u64, label: &str) -> Content {
    Content {
        message_id: [0x33; 16],
        counter: 9,
        timestamp: NOW,
        message: Message::from_old_body(body),
        thread,
        sender_label: label.to_owned(),
    }
}

fn sealed(keys: &Keys, c: &Content) -> envelope::SignedEnvelope {
    let mut rng = DeterministicRandomness::new(c.message.text.as_bytes());
    envelope::seal(&keys.sender, 3, &[keys.recipient()], c, &mut rng).expect("seals")
}

fn prekey(keys: &Keys, kind: PrekeyKind, id: u32) -> Prekey {
    Prekey {
        device_id: keys.sender.device_id(),
        kind,
        id,
        public_key: keys.prekey.public_key(),
        created_at: NOW - 100,
        expires_at: NOW + 3600,
    }
}

fn setup(keys: &Keys, out: &mut Vec<Seed>) {
    let t = "setup";
    let mut two = frame::encode(b"hello").expect("frame");
    two.extend(frame::encode(b"").expect("frame"));
    out.push(seed(t, "frames", 0, &[[0].as_slice(), &two].concat()));
    let challenge = Challenge {
        nonce: Nonce([7; 32]),
    };
    out.push(seed(
        t,
        "challenge-frame",
        0,
        &[
            [1].as_slice(),
            &frame::encode(&challenge.encode()).expect("frame"),
        ]
        .concat(),
    ));
    out.push(seed(t, "challenge", 1, &challenge.encode()));
    let requests = [
        (
            "auth",
            SetupRequest::Auth {
                device_id: keys.me.device_id(),
                signature: keys.me.sign(b"transcript"),
            },
        ),
        (
            "panic-auth",
            SetupRequest::PanicAuth {
                device_id: keys.me.device_id(),
                signature: keys.me.sign(b"transcript"),
            },
        ),
        (
            "enroll",
            SetupRequest::Enroll {
                token: InviteToken::from_bytes([4; 32]),
                identity_key: keys.me.public_key(),
                signature: keys.me.sign(b"enroll"),
                panic_key: Some(keys.sender.public_key()),
            },
        ),
    ];
    for (name, r) in requests {
        out.push(seed(t, name, 2, &r.encode()));
    }
    let welcome = Ok(Welcome {
        device_id: keys.me.device_id(),
        role: Role::Defender,
        server_time: NOW,
        panic: false,
        roster_expires_at: Some(NOW + 10),
        roster_standing: RosterStanding::OnRoster,
    });
    out.push(seed(t, "welcome", 3, &encode_setup_response(&welcome)));
    let refused = Err(WireError::new(ErrorCode::DeviceRevoked, "revoked"));
    out.push(seed(t, "refused", 3, &encode_setup_response(&refused)));
}

fn case_content(message: Message) -> Content {
    Content {
        message_id: [0x34; 16],
        counter: 10,
        timestamp: NOW,
        message,
        thread: 0,
        sender_label: String::new(),
    }
}

/// Every case kind of content (section 7.7), as a sender writes it.
fn case_contents() -> Vec<(&'static str, Content)> {
    let case_id = CaseId::from_bytes([0x63; 16]);
    vec![
        (
            "case-keys",
            case_content(Message::case_keys(vec![
                (case_id, 1, CaseKey::from_bytes([0x62; 32])),
                (case_id, 2, CaseKey::from_bytes([0x66; 32])),
            ])),
        ),
        (
            "case-request",
            case_content(Message::case_request(
                Programme::Relocation,
                "we must leave",
                "en",
            )),
        ),
        (
            "case-share",
            case_content(Message::case_share(
                case_id,
                "your visa is ready",
                "en",
                Some(CheckinOffer {
                    interval_secs: 3600,
                    grace_secs: 600,
                }),
            )),
        ),
        (
            "case-reply",
            case_content(Message::case_reply(case_id, "thank you", "en")),
        ),
    ]
}

fn requests(keys: &Keys, out: &mut Vec<Seed>) {
    let env = sealed(keys, &content(b"hello", 0, ""));
    let case_request = sealed(keys, &case_contents()[1].1);
    let roster = staff_roster(keys, 1).sign(&keys.root);
    let all = [
        ("status", Request::Status),
        (
            "create-invite",
            Request::CreateInvite {
                role: Role::Officer,
                ttl_seconds: 3600,
            },
        ),
        ("list-devices", Request::ListDevices),
        (
            "revoke-device",
            Request::RevokeDevice {
                device_id: keys.me.device_id(),
            },
        ),
        ("put-roster", Request::PutRoster(roster)),
        ("get-roster", Request::GetRoster { version: 0 }),
        (
            "publish-prekeys",
            Request::PublishPrekeys(vec![
                prekey(keys, PrekeyKind::LastResort, 1).sign(&keys.sender),
                prekey(keys, PrekeyKind::OneTime, 2).sign(&keys.sender),
            ]),
        ),
        (
            "fetch-prekeys",
            Request::FetchPrekeys(vec![keys.me.device_id(), keys.sender.device_id()]),
        ),
        ("send-envelope", Request::SendEnvelope(env.clone())),
        (
            "send-in-thread",
            Request::SendInThread {
                envelope: env.clone(),
                alert_id: 5,
            },
        ),
        (
            "fetch-inbox",
            Request::FetchInbox {
                after: 3,
                limit: 10,
            },
        ),
        ("ack-inbox", Request::AckInbox { up_to: 9 }),
        (
            "raise-alert",
            Request::RaiseAlert {
                priority: Priority::Immediate,
                envelope: Some(env),
                join_alert: 0,
            },
        ),
        (
            "raise-alert-empty",
            Request::RaiseAlert {
                priority: Priority::Routine,
                envelope: None,
                join_alert: 0,
            },
        ),
        ("list-alerts", Request::ListAlerts { open_only: true }),
        ("claim-alert", Request::ClaimAlert { alert_id: 2 }),
        (
            "close-alert",
            Request::CloseAlert {
                alert_id: 2,
                reason: CloseReason::FalseAlarm,
            },
        ),
        ("set-duty", Request::SetDuty { on_duty: true }),
        ("alert-delivered", Request::AlertDelivered { alert_id: 2 }),
        (
            "set-checkin",
            Request::SetCheckin {
                interval_secs: 3600,
                grace_secs: 600,
                code_digest: [1; 32],
                duress_digest: [2; 32],
            },
        ),
        (
            "checkin",
            Request::Checkin {
                code_digest: [1; 32],
            },
        ),
        ("mark-read", Request::MarkRead(vec![1, 2, 3])),
        ("delivery", Request::Delivery(vec![4])),
        ("duty-status", Request::DutyStatus),
        (
            "register-panic-key",
            Request::RegisterPanicKey(keys.sender.public_key()),
        ),
        (
            "append-case-event",
            Request::AppendCaseEvent(case_event(
                CaseControl {
                    state: Some(CaseState::Open),
                    ..CaseControl::default()
                },
                "opened",
            )),
        ),
        ("sync-cases", Request::SyncCases { after: 17 }),
        ("request-case", Request::RequestCase(case_request.clone())),
        (
            "request-case-erasure",
            Request::RequestCaseErasure(
                CaseId::from_bytes([0x63; 16]),
                erasure::sign_erasure(
                    &IdentityKeyPair::from_seed(&[0x63; 32]),
                    &CaseId::from_bytes([0x63; 16]),
                    erasure::ErasureStep::Request,
                    &seed_closing(),
                ),
            ),
        ),
        (
            "confirm-case-erasure",
            Request::ConfirmCaseErasure(
                CaseId::from_bytes([0x63; 16]),
                erasure::sign_erasure(
                    &IdentityKeyPair::from_seed(&[0x64; 32]),
                    &CaseId::from_bytes([0x63; 16]),
                    erasure::ErasureStep::Confirm(hotline_proto::Signature::from_bytes([0x63; 64])),
                    &seed_closing(),
                ),
            ),
        ),
    ];
    for (name, r) in all {
        out.push(Seed {
            target: "request",
            name: name.to_owned(),
            bytes: r.encode(),
        });
    }
}

fn alert(keys: &Keys) -> AlertInfo {
    AlertInfo {
        id: 12,
        defender: keys.sender.device_id(),
        priority: Priority::Urgent,
        status: AlertStatus::Acknowledged,
        holder: Some(keys.me.device_id()),
        raised_at: NOW,
        position: (1, 2),
        paged: 3,
        envelope_id: 4,
        origin: AlertOrigin::MissedCheckin,
        checked_in_at: Some(NOW + 5),
        paged_now: 1,
        content: AlertContent::ExpiredRoster,
        tier: Some(EscalationTier::Backup),
        step_at: NOW + 1,
        exhausted: false,
        closed_by: None,
        joined_count: 2,
        joined: vec![13, 14],
        joined_now: true,
        paged_again: false,
    }
}

fn responses(keys: &Keys, out: &mut Vec<Seed>) {
    let t = "response";
    let env = sealed(keys, &content(b"hi", 0, ""));
    let invite = sample_invite(keys);
    let all = [
        (
            "error",
            Response::Error(WireError::new(ErrorCode::Forbidden, "not allowed")),
        ),
        (
            "status",
            Response::Status(StatusInfo {
                device_id: keys.me.device_id(),
                role: Role::Admin,
                server_time: NOW,
                server_version: "0.1.0".into(),
                storage: Some(hotline_proto::message::StorageInfo {
                    degraded: Some((NOW - 30, "No space left on device".into())),
                    free_bytes: Some(4096),
                    read_only: false,
                    warn_below: None,
                }),
            }),
        ),
        ("invite-created", Response::InviteCreated { invite }),
        (
            "device-list",
            Response::DeviceList(vec![DeviceInfo {
                device_id: keys.me.device_id(),
                role: Role::Officer,
                enrolled_at: NOW,
                revoked_at: Some(NOW + 1),
                identity_key: keys.me.public_key(),
                invite_digest: None,
            }]),
        ),
        (
            "device-revoked",
            Response::DeviceRevoked {
                device_id: keys.me.device_id(),
                revoked_at: NOW,
            },
        ),
        ("done", Response::Done),
        (
            "prekeys-published",
            Response::PrekeysPublished { one_time: 20 },
        ),
        (
            "roster",
            Response::Roster(Some(staff_roster(keys, 2).sign(&keys.root))),
        ),
        ("no-roster", Response::Roster(None)),
        (
            "prekey-bundles",
            Response::PrekeyBundles(vec![PrekeyBundle {
                device_id: keys.sender.device_id(),
                identity_key: keys.sender.public_key(),
                role: Role::Officer,
                prekey: Some(prekey(keys, PrekeyKind::OneTime, 3).sign(&keys.sender)),
            }]),
        ),
        (
            "envelope-accepted",
            Response::EnvelopeAccepted {
                id: 8,
                duplicate: true,
            },
        ),
        (
            "inbox",
            Response::Inbox(vec![InboxItem {
                id: 1,
                envelope: env,
                sender_identity_key: keys.sender.public_key(),
                sender_panic_key: Some(keys.me.public_key()),
            }]),
        ),
        ("alerts", Response::Alerts(vec![alert(keys)])),
        (
            "delivery",
            Response::Delivery(vec![DeliveryState {
                id: 1,
                recipients: 3,
                delivered: 2,
                read: 1,
            }]),
        ),
        (
            "duty",
            Response::Duty(vec![DutyEntry {
                device_id: keys.me.device_id(),
                role: Role::Officer,
                declared: true,
                on_shift: false,
                off_roster: false,
            }]),
        ),
        (
            "claim",
            Response::Claim {
                granted: false,
                holder: keys.me.device_id(),
            },
        ),
        (
            "case-event-accepted",
            Response::CaseEventAccepted {
                position: 9,
                duplicate: true,
            },
        ),
        ("case-sync", Response::CaseSync(case_sync(keys))),
        (
            "case-request-accepted",
            Response::CaseRequestAccepted {
                case_id: CaseId::from_bytes([0x63; 16]),
                envelope_id: 11,
                duplicate: false,
            },
        ),
        (
            "case-erasure",
            Response::CaseErasure {
                case_id: CaseId::from_bytes([0x63; 16]),
                requested_by: keys.me.device_id(),
                erased: true,
            },
        ),
    ];
    for (name, r) in all {
        out.push(seed(t, name, 0, &r.encode()));
    }
    let pushes = [
        ("push-alert", Push::Alert(alert(keys))),
        ("push-all-clear", Push::AllClear(12)),
        ("push-message", Push::Message(40)),
        ("push-released", Push::Released(alert(keys))),
        ("push-cases", Push::Cases(21)),
    ];
    for (name, p) in pushes {
        out.push(seed(t, name, 1, &p.encode()));
    }
}

fn e2e(keys: &Keys, out: &mut Vec<Seed>) {
    let t = "e2e";
    let plain = sealed(keys, &content(b"category: arrest\nhelp", 0, ""));
    let labelled_env = sealed(keys, &content(&[0xE2, 0x82, 0xAC, 0x20], 9, "field team"));
    out.push(seed(t, "envelope", 0, &plain.encode()));
    out.push(seed(t, "envelope-body", 1, &plain.body));
    out.push(seed(t, "envelope-body-labelled", 1, &labelled_env.body));
    // The SealedContent a sender writes, before and after padding.
    let text = hotline_proto::fuzzing::encode_content(&content(b"category: arrest\nhelp", 0, ""));
    out.push(seed(t, "content-text", 2, &text));
    let labelled = hotline_proto::fuzzing::encode_content(&content(b"on our way", 7, "field team"));
    out.push(seed(t, "content-labelled", 2, &labelled));
    // The old form, as clients before the content message wrote it: the
    // text (and an SOS's category line) in `body`, field 4.
    let mut old = vec![0x0a, 16];
    old.extend_from_slice(&[0x33; 16]);
    old.extend_from_slice(&[0x10, 9, 0x22, 21]);
    old.extend_from_slice(b"category: arrest\nhelp");
    out.push(seed(t, "content-old-form", 2, &old));
    out.push(seed(
        t,
        "content-padded",
        3,
        &envelope::pad(&labelled).expect("pads"),
    ));
    out.push(seed(
        t,
        "roster",
        4,
        &staff_roster(keys, 3).sign(&keys.root).encode(),
    ));
    // The body alone: verified under the pinned root by the check.
    let body = staff_roster(keys, 4).sign(&keys.root).body;
    out.push(seed(t, "roster-body", 4, &body));
    let p = prekey(keys, PrekeyKind::OneTime, PREKEY_ID).sign(&keys.sender);
    out.push(seed(t, "prekey", 5, &p.encode()));
    out.push(seed(t, "prekey-body", 5, &p.body));
    for (name, c) in case_contents() {
        let bytes = hotline_proto::fuzzing::encode_content(&c);
        out.push(seed(t, &format!("content-{name}"), 2, &bytes));
        out.push(seed(
            t,
            &format!("envelope-{name}"),
            0,
            &sealed(keys, &c).encode(),
        ));
    }
    let mut guard = ReplayGuard::default();
    guard.check_and_record([1; 16], NOW, NOW).expect("new");
    guard.check_and_record([2; 16], NOW - 60, NOW).expect("new");
    out.push(seed(t, "replay-guard", 6, &guard.encode()));
}

fn sample_invite(keys: &Keys) -> Invite {
    Invite {
        server_addr: "hotline.example.org:4433".into(),
        server_name: "hotline.example.org".into(),
        cert_pin: CertPin::from_bytes([0xAA; 32]),
        token: InviteToken::from_bytes([0x0B; 32]),
        role: Role::Defender,
        expires_at: NOW + 3600,
        org_root: Some(keys.root.public_key()),
        label: Some("Amal, Tunis".into()),
    }
}

fn invites(keys: &Keys, out: &mut Vec<Seed>) {
    let invite = sample_invite(keys);
    out.push(seed("invite", "bytes", 0, &invite.to_bytes()));
    out.push(seed("invite", "text", 1, invite.to_string().as_bytes()));
    let bare = Invite {
        org_root: None,
        label: None,
        role: Role::Admin,
        ..invite
    };
    out.push(seed(
        "invite",
        "text-bare",
        1,
        format!("  {bare}\n").as_bytes(),
    ));
}

fn log_records(out: &mut Vec<Seed>) {
    let t = "log_record";
    let key = record_key();
    let prev = record::chain_hash(SEQ - 1, b"previous");
    let stored = record::seal(&key, MAIN_KEY_ID, SEQ, &prev, b"an event").expect("seals");
    out.push(seed(t, "stored", 0, &stored));
    out.push(seed(t, "to-seal", 1, b"an event"));
    let signer = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[9; 32]).expect("key");
    let c = Checkpoint::sign(&signer, &[5; 16], SEQ, prev, NOW);
    out.push(seed(t, "checkpoint", 2, &c.to_bytes()));
    out.push(seed(t, "export", 3, c.export(&[5; 16]).as_bytes()));
    // A segment file: its header, two records and a checkpoint.
    use hotline_server::log::segment::{self, KIND_CHECKPOINT, KIND_RECORD, SegmentHeader};
    let mut file = SegmentHeader {
        store_id: [5; 16],
        first_seq: SEQ,
    }
    .to_bytes();
    segment::encode_frame(KIND_RECORD, SEQ, &stored, &mut file);
    segment::encode_frame(KIND_RECORD, SEQ + 1, &stored, &mut file);
    segment::encode_frame(KIND_CHECKPOINT, SEQ + 1, &c.to_bytes(), &mut file);
    out.push(seed(t, "segment", 4, &file));
    // Cut inside its last frame: a torn write.
    out.push(seed(t, "segment-torn", 4, &file[..file.len() - 7]));
}

fn store(out: &mut Vec<Seed>) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../server/tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&golden)
        .expect("server/tests/golden")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut snapshot = None;
    let mut event = None;
    for file in files {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned();
        if stem == "segment" {
            // The segment format: read by the log_record target above.
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("golden file");
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (name, hex) = line.split_once(' ').expect("name hex");
            let bytes = hotline_proto::identity::unhex(hex.trim()).expect("hex");
            let (selector, kept) = if name.starts_with("snapshot") {
                (1, &mut snapshot)
            } else {
                (0, &mut event)
            };
            if kept.is_none() {
                *kept = Some(bytes.clone());
            }
            out.push(seed(
                "store_codec",
                &format!("{stem}-{name}"),
                selector,
                &bytes,
            ));
        }
    }
    let (snapshot, event) = (
        snapshot.expect("a golden snapshot"),
        event.expect("an event"),
    );
    let len = u16::try_from(snapshot.len()).expect("a small snapshot");
    let body = [len.to_be_bytes().as_slice(), &snapshot, &event].concat();
    out.push(seed("store_codec", "snapshot-then-event", 2, &body));
}

fn config(out: &mut Vec<Seed>) {
    let full = r#"listen = "0.0.0.0:4433"
public_addr = "hotline.example.org:4433"
server_name = "hotline.example.org"
data_dir = "/var/lib/hotline"
tls_cert = "/etc/hotline/cert.pem"
tls_key = "/etc/hotline/key.pem"
master_key_file = "/etc/hotline/master.key"
insecure_dev_master_key = false
escalation_tick_ms = 500

[limits]
max_connections = 300
requests_per_second = 5
idle_timeout_secs = 30
"#;
    out.push(Seed {
        target: "config",
        name: "full".into(),
        bytes: full.as_bytes().to_vec(),
    });
    out.push(Seed {
        target: "config",
        name: "dev".into(),
        bytes: b"listen = \"127.0.0.1:0\"\n".to_vec(),
    });
}

fn client_files(out: &mut Vec<Seed>) {
    let t = "client_files";
    let dir = tempfile::tempdir().expect("tempdir");
    let state = StateDir::new(dir.path().join("home"));
    let seed_bytes = Zeroizing::new([0x61; 32]);
    let pair = IdentityKeyPair::from_seed(&seed_bytes);
    const PASS: &str = "a long fuzz passphrase";
    state
        .save_identity(&seed_bytes, PASS, keystore::MIN_ITERATIONS)
        .expect("identity");
    let profile = Profile {
        server_addr: "127.0.0.1:4433".into(),
        server_name: "localhost".into(),
        cert_pin: CertPin::from_bytes([1; 32]).to_string(),
        device_id: pair.device_id().to_string(),
        role: "defender".into(),
        org_root: None,
        roster_version: Some(3),
        roster_hash: Some(hotline_proto::identity::hex(&[2; 32])),
        roster_alarm: None,
    };
    state.save_profile(&profile).expect("profile");
    let mut device = Device::open(&state, PASS).expect("opens");
    device
        .queue(b"a note", Outgoing::Message { to: None })
        .expect("queued");
    device
        .queue_sos(b"help", Category::Medical, Priority::Immediate)
        .expect("queued");
    device
        .set_name(
            IdentityKeyPair::from_seed(&[0x62; 32]).device_id(),
            Some("Officer Lina"),
        )
        .expect("named");
    let (_, storage) = state.unlock(PASS).expect("unlocks");
    let plain = state
        .load_sealed("device.sealed", &storage)
        .expect("reads")
        .expect("written");
    let profile_text = std::fs::read(dir.path().join("home/profile.toml")).expect("profile");
    let sealed_key = std::fs::read(dir.path().join("home/identity.key")).expect("key file");
    out.push(seed(t, "profile", 0, &profile_text));
    out.push(seed(t, "device", 1, &plain));
    let history = fuzz_encode_history(vec![
        Entry {
            message_id: [1; 16],
            sent: true,
            peer: None,
            sender_role: None,
            timestamp: NOW,
            thread: 4,
            message: Message::sos(Category::Arrest, Priority::Immediate, "help", "fr"),
            server_id: 9,
            sos: true,
            shown: true,
            via_panic_key: false,
            digest: None,
            request_case: None,
        },
        Entry {
            message_id: [2; 16],
            sent: false,
            peer: Some(pair.device_id()),
            sender_role: Some(Role::Officer),
            timestamp: NOW + 5,
            thread: 4,
            message: Message::chat("on our way", "es"),
            server_id: 10,
            sos: false,
            shown: false,
            via_panic_key: true,
            digest: None,
            request_case: None,
        },
    ]);
    out.push(seed(t, "history", 2, &history));
    out.push(seed(t, "identity-key", 3, &sealed_key));
}

/// The closing the erasure seeds sign.
fn seed_closing() -> erasure::Closing {
    erasure::Closing {
        author: IdentityKeyPair::from_seed(&[0x63; 32]).device_id(),
        event_id: [0x65; 16],
    }
}
