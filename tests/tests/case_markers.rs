//! What a seized server gives up of a case: nothing readable. Real staff
//! events whose sealed content holds marker names and places go through a
//! real server logging at its most verbose level (`trace`); afterwards
//! no file under the data directory and no log line holds a marker, in
//! UTF-8 or UTF-16LE. The same scan finds a marker planted on purpose, so
//! it would catch a leak.
//!
//! A test binary of its own: it installs the process's log subscriber
//! (capturing every line) before the server starts.

use std::time::Duration;

use hotline_proto::Role;
use hotline_proto::case::content::{CaseEntity, FieldChange, FieldValue, FieldValueKind};
use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
use hotline_proto::case::{CaseControl, CaseId, CaseState};
use hotline_proto::e2e::content::Message;
use hotline_proto::e2e::envelope::{self, Content, Recipient};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_proto::e2e::roster::{Roster, RosterEntry};
use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};
use hotline_proto::message::{Request, Response};
use hotline_tests::TestServer;

#[path = "../support/markers.rs"]
mod markers;

const MARKERS: [&str; 3] = [
    "Zofia Kowalczyk-MARKER",
    "Hotel Bellevue-MARKER",
    "Montevideo-MARKER",
];

fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    hotline_proto::identity::fill_random(&mut id).expect("randomness");
    id
}

fn text(entity: CaseEntity, entity_id: &[u8], field: u32, value: &str) -> FieldChange {
    FieldChange {
        entity: entity as i32,
        entity_id: entity_id.to_vec().into(),
        field,
        value: Some(FieldValue {
            kind: Some(FieldValueKind::Text(value.into())),
        }),
        based_on: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_file_and_no_log_line_holds_a_case_s_names_or_places() {
    let logs = markers::Captured::default();
    tracing::subscriber::set_global_default(hotline_server::logging::subscriber(
        tracing_subscriber::EnvFilter::new("trace"),
        logs.clone(),
        false,
    ))
    .expect("the first subscriber of this process");

    let mut server = TestServer::start().await;
    let (admin_key, admin) = server.enroll(Role::Admin).await;
    let (officer_key, officer) = server.enroll(Role::Officer).await;
    let (coordinator_key, coordinator) = server.enroll(Role::Coordinator).await;
    let (defender_key, defender) = server.enroll(Role::Defender).await;
    let now = hotline_server::unix_now();
    let staff = [
        (&admin_key, Role::Admin),
        (&officer_key, Role::Officer),
        (&coordinator_key, Role::Coordinator),
    ];
    let roster = Roster {
        version: 1,
        issued_at: now,
        expires_at: now + 3600,
        previous_hash: [0; 32],
        entries: staff
            .iter()
            .map(|(k, role)| RosterEntry {
                device_id: k.device_id(),
                role: *role,
                identity_key: k.public_key(),
                valid_from: 0,
                valid_until: now + 3600,
            })
            .collect(),
    }
    .sign(&OrgKeyPair::from_seed(&[5; 32]));
    admin.put_roster(roster).await.expect("roster");

    // Staff write the case: a person's name, a hotel, a city, in fields
    // and in notes.
    let key = CaseKey::from_bytes([0x33; 32]);
    let case = CaseId::from_bytes(random_id());
    let person = random_id();
    let relocation = random_id();
    let contents = [
        (
            CaseControl {
                state: Some(CaseState::Open),
                ..CaseControl::default()
            },
            CaseEventContent {
                changes: vec![
                    text(
                        CaseEntity::Case,
                        &[],
                        2,
                        "Zofia Kowalczyk-MARKER needs to leave",
                    ),
                    text(CaseEntity::Person, &person, 1, "Zofia Kowalczyk-MARKER"),
                ],
                note: "opened for Zofia Kowalczyk-MARKER".into(),
                ..CaseEventContent::default()
            },
        ),
        (
            CaseControl::default(),
            CaseEventContent {
                changes: vec![
                    text(CaseEntity::Relocation, &relocation, 4, "Montevideo-MARKER"),
                    text(
                        CaseEntity::Relocation,
                        &relocation,
                        9,
                        "Hotel Bellevue-MARKER",
                    ),
                ],
                note: "Hotel Bellevue-MARKER in Montevideo-MARKER".into(),
                ..CaseEventContent::default()
            },
        ),
    ];
    for (control, content) in &contents {
        let event = seal(
            &officer_key,
            &key,
            &EventDraft {
                case_id: case,
                event_id: random_id(),
                roster_version: 1,
                epoch: 1,
                control: *control,
            },
            content,
            &mut SystemRandomness,
        )
        .expect("sealed");
        let r = officer
            .request(&Request::AppendCaseEvent(event))
            .await
            .expect("answered");
        assert!(matches!(r, Response::CaseEventAccepted { .. }), "{r:?}");
    }
    // A defender asks for help naming them too.
    let prekey = EncryptionKeyPair::from_secret(&[5; 32]).expect("a key");
    let to: Vec<Recipient> = staff
        .iter()
        .map(|(k, _)| Recipient {
            device_id: k.device_id(),
            prekey_id: 1,
            key: prekey.public_key(),
        })
        .collect();
    let request = envelope::seal(
        &defender_key,
        0,
        &to,
        &Content {
            message_id: random_id(),
            counter: 1,
            timestamp: now,
            message: Message::chat(
                "Zofia Kowalczyk-MARKER, at the Hotel Bellevue-MARKER in Montevideo-MARKER",
                "en",
            ),
            thread: 0,
            sender_label: String::new(),
        },
        &mut SystemRandomness,
    )
    .expect("sealed");
    let r = defender
        .request(&Request::RequestCase(request))
        .await
        .expect("answered");
    assert!(matches!(r, Response::CaseRequestAccepted { .. }), "{r:?}");
    // Another staff device reads it all back.
    let r = coordinator
        .request(&Request::SyncCases { after: 0 })
        .await
        .expect("answered");
    let Response::CaseSync(sync) = r else {
        panic!("{r:?}");
    };
    assert_eq!(sync.updates.len(), 3);

    // A snapshot and the closing checkpoint are written at stop.
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let data = server.config().data_dir.clone();
    markers::assert_nothing_leaked(
        &MARKERS,
        &data,
        &logs,
        &["append_case_event", "request_case"],
    );
}
