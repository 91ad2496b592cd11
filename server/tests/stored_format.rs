//! The stored format, byte for byte: one event of every kind and a small
//! state snapshot, encoded and compared with bytes checked into the
//! repository (`tests/golden/`).
//!
//! A store written by an earlier build must open with this one, so these
//! bytes only ever change on purpose. To write them anew after a
//! deliberate format change (and say why in the commit):
//! `HOTLINE_BLESS=1 cargo test -p hotline-server --test stored_format`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hotline_proto::alert::{AlertContent, AlertOrigin, Priority};
use hotline_proto::{DeviceId, IdentityKeyPair, IdentityPublicKey, Role};
use hotline_server::domain::alerts::AlertEvent;
use hotline_server::domain::checkins::CheckinEvent;
use hotline_server::domain::devices::{Device, InviteRecord};
use hotline_server::domain::mailbox::{MailEvent, StoredPrekey};
use hotline_server::domain::{Event, State};
use hotline_server::store::codec::{decode_event, decode_snapshot, encode_event, encode_snapshot};

fn key(seed: u8) -> IdentityPublicKey {
    IdentityKeyPair::from_seed(&[seed; 32]).public_key()
}

fn device(seed: u8, role: Role) -> Device {
    let identity_key = key(seed);
    Device {
        id: identity_key.device_id(),
        identity_key,
        role,
        enrolled_at: 1_700_000_100,
        revoked_at: None,
        panic_key: None,
        invite_digest: None,
    }
}

fn id(seed: u8) -> DeviceId {
    key(seed).device_id()
}

/// One event of every kind, each with a name and the sequence number it is
/// applied at, in an order that applies cleanly to an empty state (so the
/// same list also builds the snapshot).
fn events() -> Vec<(&'static str, u64, Event)> {
    let officer = id(1);
    let defender = id(2);
    let admin = id(3);
    let prekey = |one_time, id| StoredPrekey {
        one_time,
        id,
        expires_at: 1_800_000_000,
        signed: vec![0xA0, id as u8, 0x5E],
    };
    vec![
        (
            "invite_created",
            1,
            Event::InviteCreated {
                digest: [0x11; 32],
                invite: InviteRecord {
                    role: Role::Officer,
                    created_at: 1_700_000_000,
                    expires_at: 1_700_003_600,
                    used_at: None,
                    bootstrap: None,
                },
            },
        ),
        (
            "device_enrolled",
            2,
            Event::DeviceEnrolled {
                digest: [0x11; 32],
                device: device(1, Role::Officer),
            },
        ),
        (
            "roster_stored",
            3,
            Event::Mail(MailEvent::RosterStored {
                version: 7,
                bytes: b"signed roster bytes".to_vec(),
            }),
        ),
        (
            "prekeys_published",
            4,
            Event::Mail(MailEvent::PrekeysPublished {
                device: officer,
                prekeys: vec![prekey(false, 1), prekey(true, 2), prekey(true, 3)],
            }),
        ),
        (
            "prekey_taken",
            5,
            Event::Mail(MailEvent::PrekeyTaken {
                device: officer,
                id: 2,
            }),
        ),
        (
            "envelope_stored",
            6,
            Event::Mail(MailEvent::EnvelopeStored {
                sender: defender,
                digest: [0x22; 32],
                recipients: vec![officer, defender],
                bytes: b"sealed envelope".to_vec(),
                numbered: false,
            }),
        ),
        (
            "read",
            7,
            Event::Mail(MailEvent::Read {
                device: officer,
                ids: vec![6],
            }),
        ),
        (
            "inbox_acked",
            8,
            Event::Mail(MailEvent::InboxAcked {
                device: officer,
                up_to: 6,
            }),
        ),
        (
            "alert_raised",
            9,
            Event::Alert(AlertEvent::Raised {
                id: 0,
                defender,
                priority: Priority::Immediate,
                at: 1_700_000_200,
                envelope_id: 6,
                origin: AlertOrigin::Sos,
                content: AlertContent::Sealed,
            }),
        ),
        (
            "alert_stepped",
            10,
            Event::Alert(AlertEvent::Stepped {
                alert: 9,
                round: 1,
                step: 2,
                paged: vec![officer, admin],
                at: 1_700_000_260,
            }),
        ),
        (
            "alert_delivered",
            11,
            Event::Alert(AlertEvent::Delivered {
                alert: 9,
                device: officer,
            }),
        ),
        (
            "alert_acknowledged",
            12,
            Event::Alert(AlertEvent::Acknowledged {
                alert: 9,
                by: officer,
            }),
        ),
        (
            "alert_resolved",
            13,
            Event::Alert(AlertEvent::Resolved { alert: 9 }),
        ),
        (
            "alert_raised_missed_checkin",
            14,
            Event::Alert(AlertEvent::Raised {
                id: 0,
                defender,
                priority: Priority::Urgent,
                at: 1_700_000_300,
                envelope_id: 0,
                origin: AlertOrigin::MissedCheckin,
                content: AlertContent::Sealed,
            }),
        ),
        (
            "alert_exhausted",
            15,
            Event::Alert(AlertEvent::Exhausted { alert: 14 }),
        ),
        (
            "alert_cancelled",
            16,
            Event::Alert(AlertEvent::Cancelled {
                alert: 14,
                false_alarm: true,
            }),
        ),
        (
            "alert_raised_duress",
            17,
            Event::Alert(AlertEvent::Raised {
                id: 0,
                defender,
                priority: Priority::Routine,
                at: 1_700_000_400,
                envelope_id: 0,
                origin: AlertOrigin::Duress,
                content: AlertContent::Sealed,
            }),
        ),
        (
            "checkin_set",
            18,
            Event::Checkin(CheckinEvent::Set {
                defender,
                interval_secs: 3600,
                grace_secs: 600,
                code: [0x33; 32],
                duress: [0x44; 32],
                at: 1_700_000_500,
            }),
        ),
        (
            "checkin_missed_alerted",
            19,
            Event::Checkin(CheckinEvent::MissedAlerted {
                defender,
                last: 1_700_000_500,
                alert: None,
            }),
        ),
        (
            "duty",
            20,
            Event::Duty {
                device: officer,
                on: true,
            },
        ),
        (
            "batch",
            21,
            Event::Batch(vec![
                Event::Checkin(CheckinEvent::CheckedIn {
                    defender,
                    at: 1_700_009_000,
                }),
                Event::Duty {
                    device: officer,
                    on: false,
                },
            ]),
        ),
        (
            "device_revoked",
            22,
            Event::DeviceRevoked {
                device_id: officer,
                at: 1_700_010_000,
            },
        ),
    ]
}

/// The forms added for issue 10 (opaque ids, late check-ins, notices of
/// schedule changes, bootstrap invites), applied after [`events`]: each is a new kind or an
/// optional field an earlier record leaves out.
fn events_v2() -> Vec<(&'static str, u64, Event)> {
    let officer = id(1);
    let defender = id(2);
    vec![
        (
            "envelope_stored_numbered",
            23,
            Event::Mail(MailEvent::EnvelopeStored {
                sender: defender,
                digest: [0x55; 32],
                recipients: vec![officer],
                bytes: b"numbered envelope".to_vec(),
                numbered: true,
            }),
        ),
        (
            "alert_raised_random_id",
            24,
            Event::Alert(AlertEvent::Raised {
                id: 4_711_008,
                defender,
                priority: Priority::Urgent,
                at: 1_700_020_000,
                envelope_id: 23,
                origin: AlertOrigin::Sos,
                content: AlertContent::Sealed,
            }),
        ),
        (
            "alert_raised_checkin_changed",
            25,
            Event::Alert(AlertEvent::Raised {
                id: 1_234_567,
                defender,
                priority: Priority::Routine,
                at: 1_700_020_100,
                envelope_id: 0,
                origin: AlertOrigin::CheckinChanged,
                content: AlertContent::Sealed,
            }),
        ),
        (
            "alert_raised_checkin_stopped",
            26,
            Event::Alert(AlertEvent::Raised {
                id: 7_654_321,
                defender,
                priority: Priority::Routine,
                at: 1_700_020_200,
                envelope_id: 0,
                origin: AlertOrigin::CheckinStopped,
                content: AlertContent::Sealed,
            }),
        ),
        (
            "checkin_missed_alerted_with_alert",
            27,
            Event::Checkin(CheckinEvent::MissedAlerted {
                defender,
                last: 1_700_009_000,
                alert: Some(4_711_008),
            }),
        ),
        (
            "alert_checked_in_late",
            28,
            Event::Alert(AlertEvent::CheckedInLate {
                alert: 4_711_008,
                at: 1_700_020_300,
            }),
        ),
        (
            "alert_raised_wrong_checkin_codes",
            29,
            Event::Alert(AlertEvent::Raised {
                id: 2_468_024,
                defender,
                priority: Priority::Urgent,
                at: 1_700_020_400,
                envelope_id: 0,
                origin: AlertOrigin::WrongCheckinCodes,
                content: AlertContent::Sealed,
            }),
        ),
        (
            // A bootstrap admin invite carries its number.
            "bootstrap_invite_created",
            30,
            Event::InviteCreated {
                digest: [0x12; 32],
                invite: InviteRecord {
                    role: Role::Admin,
                    created_at: 1_700_000_000,
                    expires_at: 1_700_086_400,
                    used_at: None,
                    bootstrap: Some(2),
                },
            },
        ),
        (
            "alert_closed_by",
            31,
            Event::Batch(vec![
                Event::Alert(AlertEvent::Resolved { alert: 4_711_008 }),
                Event::Alert(AlertEvent::ClosedBy {
                    alert: 4_711_008,
                    by: officer,
                }),
            ]),
        ),
    ]
}

#[test]
fn the_forms_added_later_encode_to_their_checked_in_bytes() {
    let events = events_v2();
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in self::events().into_iter().chain(events_v2()) {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    let snapshot = encode_snapshot(&state);
    if bless() {
        write_golden(
            "events-v2.hex",
            "Log events of the forms added for opaque ids and check-in notices.",
            &rows,
        );
        write_golden(
            "snapshot-v2.hex",
            "The state after every event in events.hex, then events-v2.hex.",
            &[("snapshot", snapshot.clone())],
        );
    }
    let golden = read_golden("events-v2.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let stored = &read_golden("snapshot-v2.hex")["snapshot"];
    assert_eq!(hex(&snapshot), hex(stored), "the snapshot's stored format");
    assert_eq!(decode_snapshot(stored).expect("decodes"), state);
    // What the new forms mean: the numbered envelope is the officer's
    // inbox id 7 (after the 6 it saw) and the defender's sent id 7; the
    // alert keeps its random id and the late check-in.
    assert_eq!(state.mailbox.id_seen_by(23, &officer_id()), 7);
    assert_eq!(state.mailbox.id_seen_by(23, &id(2)), 7);
    assert_eq!(
        state.alerts.alerts[&4_711_008].checked_in_at,
        Some(1_700_020_300)
    );
}

fn officer_id() -> DeviceId {
    id(1)
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn bless() -> bool {
    std::env::var_os("HOTLINE_BLESS").is_some()
}

/// `name hex` lines, as stored in a golden file.
fn read_golden(file: &str) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(golden_dir().join(file))
        .unwrap_or_else(|e| panic!("golden file {file}: {e}"));
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("a name and hex bytes");
            (name.to_owned(), unhex(hex))
        })
        .collect()
}

fn write_golden(file: &str, header: &str, rows: &[(&str, Vec<u8>)]) {
    let mut text =
        format!("# {header}\n# Written by tests/stored_format.rs; never edited by hand.\n");
    for (name, bytes) in rows {
        text.push_str(&format!("{name} {}\n", hex(bytes)));
    }
    std::fs::create_dir_all(golden_dir()).expect("golden dir");
    std::fs::write(golden_dir().join(file), text).expect("write golden file");
}

#[test]
fn every_event_kind_encodes_to_the_checked_in_bytes() {
    let events = events();
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    if bless() {
        write_golden("events.hex", "One log event of every kind.", &rows);
    }
    let golden = read_golden("events.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(
            hex(&encode_event(event)),
            hex(stored),
            "event {name} encodes differently from the stored format"
        );
        assert_eq!(
            &decode_event(stored).expect("stored bytes decode"),
            event,
            "stored bytes of {name} decode to something else"
        );
    }
}

#[test]
fn a_snapshot_encodes_to_the_checked_in_bytes() {
    let mut state = State::default();
    for (name, seq, event) in events() {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    // Every part of the state holds something.
    assert_eq!(state.devices.len(), 1);
    assert_eq!(state.invites.len(), 1);
    assert!(state.mailbox.roster.is_some());
    assert_eq!(
        state.mailbox.envelopes.len(),
        1,
        "the defender has not acked"
    );
    assert_eq!(state.alerts.alerts.len(), 3);
    assert_eq!(state.checkins.schedules.len(), 1);
    let encoded = encode_snapshot(&state);
    if bless() {
        write_golden(
            "snapshot.hex",
            "The state after every event in events.hex, as a snapshot.",
            &[("snapshot", encoded.clone())],
        );
    }
    let stored = &read_golden("snapshot.hex")["snapshot"];
    assert_eq!(
        hex(&encoded),
        hex(stored),
        "the snapshot encodes differently from the stored format"
    );
    assert_eq!(
        decode_snapshot(stored).expect("stored snapshot decodes"),
        state
    );
}

/// The forms added for issue 10 (an SOS always gets through), in a file
/// of their own so that `events.hex` and `snapshot.hex` stay as they were:
/// a defender device enrolled with a panic key (`DeviceRow.panic_key`,
/// field 5), alerts raised without content and sealed to an expired
/// roster (`AlertEventRow.content`, field 12), an alert released when its
/// holder is revoked (alert event kind 9), a panic key registered later
/// (event kind 9), and a snapshot holding them (`AlertRow.content`,
/// field 17).
fn sos_events() -> Vec<(&'static str, u64, Event)> {
    let mut defender = device(2, Role::Defender);
    defender.panic_key = Some(key(9));
    let officer = id(1);
    let invite = |role| InviteRecord {
        role,
        created_at: 1_700_000_000,
        expires_at: 1_700_003_600,
        used_at: None,
        bootstrap: None,
    };
    vec![
        (
            "invite_defender",
            1,
            Event::InviteCreated {
                digest: [0x12; 32],
                invite: invite(Role::Defender),
            },
        ),
        (
            "device_enrolled_with_panic_key",
            2,
            Event::DeviceEnrolled {
                digest: [0x12; 32],
                device: defender.clone(),
            },
        ),
        (
            "invite_officer",
            3,
            Event::InviteCreated {
                digest: [0x11; 32],
                invite: invite(Role::Officer),
            },
        ),
        (
            "officer_enrolled",
            4,
            Event::DeviceEnrolled {
                digest: [0x11; 32],
                device: device(1, Role::Officer),
            },
        ),
        (
            "alert_raised_without_content",
            5,
            Event::Alert(AlertEvent::Raised {
                // 0: the log position, as in records of earlier builds.
                id: 0,
                defender: defender.id,
                priority: Priority::Immediate,
                at: 1_700_000_200,
                envelope_id: 0,
                origin: AlertOrigin::Sos,
                content: AlertContent::None,
            }),
        ),
        (
            "alert_raised_sealed_to_an_expired_roster",
            6,
            Event::Alert(AlertEvent::Raised {
                // 0: the log position, as in records of earlier builds.
                id: 0,
                defender: defender.id,
                priority: Priority::Urgent,
                at: 1_700_000_300,
                envelope_id: 6,
                origin: AlertOrigin::Sos,
                content: AlertContent::ExpiredRoster,
            }),
        ),
        (
            "alert_stepped",
            7,
            Event::Alert(AlertEvent::Stepped {
                alert: 6,
                round: 0,
                step: 0,
                paged: vec![officer],
                at: 1_700_000_300,
            }),
        ),
        (
            "alert_acknowledged",
            8,
            Event::Alert(AlertEvent::Acknowledged {
                alert: 6,
                by: officer,
            }),
        ),
        (
            "alert_released",
            9,
            Event::Batch(vec![
                Event::DeviceRevoked {
                    device_id: officer,
                    at: 1_700_000_400,
                },
                Event::Alert(AlertEvent::Released {
                    alert: 6,
                    at: 1_700_000_400,
                }),
            ]),
        ),
        (
            "invite_older_defender",
            10,
            Event::InviteCreated {
                digest: [0x13; 32],
                invite: invite(Role::Defender),
            },
        ),
        (
            "device_enrolled_without_panic_key",
            11,
            Event::DeviceEnrolled {
                digest: [0x13; 32],
                device: device(3, Role::Defender),
            },
        ),
        (
            "panic_key_registered",
            12,
            Event::PanicKeyRegistered {
                device_id: id(3),
                key: key(8),
            },
        ),
    ]
}

#[test]
fn the_forms_added_for_sos_delivery_encode_to_their_checked_in_bytes() {
    let events = sos_events();
    let mut state = State::default();
    for (name, seq, event) in &events {
        state
            .apply(*seq, event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    // What the forms carry reaches the state.
    let defender = state.devices.get(&id(2)).expect("defender");
    assert_eq!(defender.panic_key, Some(key(9)));
    let released = &state.alerts.alerts[&6];
    assert_eq!(
        released.state,
        hotline_server::domain::alerts::AlertState::Raised
    );
    assert_eq!(released.position, Some((0, 0, 1_700_000_400)));
    assert_eq!(released.content, AlertContent::ExpiredRoster);
    assert_eq!(state.alerts.alerts[&5].content, AlertContent::None);
    assert_eq!(state.devices[&id(3)].panic_key, Some(key(8)));

    let mut rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    rows.push(("snapshot", encode_snapshot(&state)));
    if bless() {
        write_golden(
            "sos.hex",
            "Forms added for issue 10: panic keys, alert content marks, released alerts; then the snapshot after them.",
            &rows,
        );
    }
    let golden = read_golden("sos.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per form");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(
            hex(&encode_event(event)),
            hex(stored),
            "event {name} encodes differently from the stored format"
        );
        assert_eq!(
            &decode_event(stored).expect("stored bytes decode"),
            event,
            "stored bytes of {name} decode to something else"
        );
    }
    // A snapshot lists invites in digest order: one state, one encoding.
    let stored = &golden["snapshot"];
    assert_eq!(hex(&encode_snapshot(&state)), hex(stored), "the snapshot");
    assert_eq!(decode_snapshot(stored).expect("decodes"), state);
}

/// The forms added for issue 11 (a hostile enrolled device), applied after
/// [`events`] and [`events_v2`]: each a new kind, or a snapshot part that
/// earlier snapshots leave out.
fn events_i11() -> Vec<(&'static str, u64, Event)> {
    let defender = id(2);
    vec![
        (
            "checkin_wrong_code",
            32,
            Event::Checkin(CheckinEvent::WrongCode {
                defender,
                at: 1_700_030_000,
            }),
        ),
        (
            "checkin_wrong_code_again",
            33,
            Event::Checkin(CheckinEvent::WrongCode {
                defender,
                at: 1_700_030_060,
            }),
        ),
        (
            "alert_raised_sos_to_join",
            34,
            Event::Alert(AlertEvent::Raised {
                id: 3_141_592,
                defender,
                priority: Priority::Urgent,
                at: 1_700_030_100,
                envelope_id: 0,
                origin: AlertOrigin::Sos,
                content: AlertContent::None,
            }),
        ),
        (
            // An SOS past the open-alert limit joins the newest open
            // alert: its message, then the join, in one record.
            "alert_joined",
            35,
            Event::Batch(vec![
                Event::Mail(MailEvent::EnvelopeStored {
                    sender: defender,
                    digest: [0x66; 32],
                    recipients: vec![id(1)],
                    bytes: b"joined envelope".to_vec(),
                    numbered: true,
                }),
                Event::Alert(AlertEvent::Joined {
                    alert: 3_141_592,
                    priority: Priority::Immediate,
                    envelope_id: 35,
                    at: 1_700_030_200,
                    repage: true,
                }),
            ]),
        ),
    ]
}

#[test]
fn the_forms_of_issue_11_encode_to_their_checked_in_bytes() {
    let events = events_i11();
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in self::events()
        .into_iter()
        .chain(events_v2())
        .chain(events_i11())
    {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    let snapshot = encode_snapshot(&state);
    if bless() {
        write_golden(
            "events-i11.hex",
            "Log events of the forms added for issue 11 (hostile enrolled devices).",
            &rows,
        );
        write_golden(
            "snapshot-i11.hex",
            "The state after every event in events.hex, events-v2.hex, then events-i11.hex.",
            &[("snapshot", snapshot.clone())],
        );
    }
    let golden = read_golden("events-i11.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let stored = &read_golden("snapshot-i11.hex")["snapshot"];
    assert_eq!(hex(&snapshot), hex(stored), "the snapshot's stored format");
    assert_eq!(decode_snapshot(stored).expect("decodes"), state);
    // What the new forms mean: the joined alert keeps the join's message,
    // its more urgent priority and when its staff were paged again; two
    // wrong check-in codes in one window, kept in the snapshot.
    let joined = &state.alerts.alerts[&3_141_592];
    assert_eq!(joined.joined, vec![35]);
    assert_eq!(joined.priority, Priority::Immediate);
    assert_eq!(joined.repaged_at, Some(1_700_030_200));
    assert_eq!(state.checkins.wrong_codes(&id(2), 1_700_030_100), 2);
    assert_eq!(
        state.checkins.wrong_codes(
            &id(2),
            1_700_030_000 + hotline_server::domain::checkins::GUESS_WINDOW_SECS
        ),
        0,
        "the window ends"
    );
}

/// The record of the store's TLS certificate (issue 13): let go, then
/// pinned, applied after every earlier form.
fn events_i13() -> Vec<(&'static str, u64, Event)> {
    vec![
        (
            "certificate_let_go",
            36,
            Event::CertificatePinned { pin: None },
        ),
        (
            "certificate_pinned",
            37,
            Event::CertificatePinned {
                pin: Some([0x7c; 32]),
            },
        ),
    ]
}

#[test]
fn the_certificate_record_of_issue_13_encodes_to_its_checked_in_bytes() {
    use hotline_server::domain::CertificateRecord;
    let events = events_i13();
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in self::events()
        .into_iter()
        .chain(events_v2())
        .chain(events_i11())
    {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    assert_eq!(state.certificate, CertificateRecord::Never);
    let before = encode_snapshot(&state);
    assert_eq!(
        hex(&before),
        hex(&read_golden("snapshot-i11.hex")["snapshot"]),
        "a state with no certificate record keeps the earlier snapshot bytes"
    );
    for (name, seq, event) in events_i13() {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    assert_eq!(state.certificate, CertificateRecord::Pinned([0x7c; 32]));
    let snapshot = encode_snapshot(&state);
    if bless() {
        write_golden(
            "events-i13.hex",
            "Log events of the forms added for issue 13 (the record of the TLS certificate).",
            &rows,
        );
        write_golden(
            "snapshot-i13.hex",
            "The state after every event in events.hex, events-v2.hex, events-i11.hex, then events-i13.hex.",
            &[("snapshot", snapshot.clone())],
        );
    }
    let golden = read_golden("events-i13.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let stored = &read_golden("snapshot-i13.hex")["snapshot"];
    assert_eq!(hex(&snapshot), hex(stored), "the snapshot's stored format");
    assert_eq!(decode_snapshot(stored).expect("decodes"), state);
    // A pin of the wrong length is a damaged record, never a let-go.
    let mut bad = golden["certificate_pinned"].clone();
    bad.truncate(bad.len() - 1);
    assert!(decode_event(&bad).is_err());
}

/// The segment file format (issue 13): a header and one frame of each
/// kind, byte for byte, and the frames read back from their bytes.
#[test]
fn the_segment_file_format_is_the_stored_one() {
    use hotline_server::log::segment::{self, End, KIND_CHECKPOINT, KIND_RECORD, SegmentHeader};
    let header = SegmentHeader {
        store_id: [0x5a; 16],
        first_seq: 1,
    }
    .to_bytes();
    let record = |seq: u64| -> Vec<u8> { (0..40u8).map(|i| i ^ seq as u8).collect() };
    let checkpoint: Vec<u8> = vec![0xcc; 112];
    let mut frames = Vec::new();
    let mut rows: Vec<(&str, Vec<u8>)> = vec![("header", header.clone())];
    for (name, kind, seq, payload) in [
        ("record_1", KIND_RECORD, 1, record(1)),
        ("record_2", KIND_RECORD, 2, record(2)),
        ("checkpoint_2", KIND_CHECKPOINT, 2, checkpoint.clone()),
    ] {
        let mut frame = Vec::new();
        segment::encode_frame(kind, seq, &payload, &mut frame);
        frames.push((kind, seq, payload));
        rows.push((name, frame));
    }
    if bless() {
        write_golden(
            "segment.hex",
            "Segment file format of issue 13: a header (store id 5a.., first seq 1), two record frames and a checkpoint frame.",
            &rows,
        );
    }
    let golden = read_golden("segment.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per form");
    for (name, bytes) in &rows {
        assert_eq!(hex(bytes), hex(&golden[*name]), "{name}");
    }
    let file: Vec<u8> = rows.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(SegmentHeader::parse(&file).expect("header").first_seq, 1);
    let (found, end) = segment::parse_frames(&file);
    assert_eq!(end, End::Clean);
    let found: Vec<(u8, u64, Vec<u8>)> = found
        .into_iter()
        .map(|f| (f.kind, f.seq, file[f.payload].to_vec()))
        .collect();
    assert_eq!(found, frames);
}

/// Randomness that is the same every run, for the sealed case events
/// of the goldens (their nonce).
struct Fixed;

impl hotline_proto::e2e::suite::Randomness for Fixed {
    fn fill(&mut self, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = 0xa0 ^ i as u8;
        }
    }
}

/// A real sealed and signed case event (fixed nonce), as stored.
fn case_event(
    author: u8,
    case: [u8; 16],
    event_id: u8,
    control: hotline_proto::case::CaseControl,
) -> (
    hotline_proto::case::SignedCaseEvent,
    hotline_proto::case::EventHeader,
) {
    use hotline_proto::case::CaseId;
    use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
    let event = seal(
        &IdentityKeyPair::from_seed(&[author; 32]),
        &CaseKey::from_bytes([0x6b; 32]),
        &EventDraft {
            case_id: CaseId::from_bytes(case),
            event_id: [event_id; 16],
            roster_version: 1,
            epoch: 1,
            control,
        },
        &CaseEventContent {
            timestamp: 1_700_000_900,
            note: "a sealed note".into(),
            ..CaseEventContent::default()
        },
        &mut Fixed,
    )
    .expect("sealed");
    let header = event.header_unverified().expect("reads");
    (event, header)
}

/// The case records of issue 12: a defender's request, staff events
/// (opening, closing, the ledger, a legal hold), an erasure request and
/// an erasure, applied after every earlier form.
fn events_i12() -> Vec<(&'static str, u64, Event)> {
    use hotline_proto::case::{CaseControl, CaseId, CaseState, LegalHold};
    use hotline_server::domain::cases::CaseEvent;
    let state = |s| CaseControl {
        state: Some(s),
        ..CaseControl::default()
    };
    let appended = |position, at, (event, header)| {
        Event::Case(CaseEvent::Appended {
            position,
            at,
            event,
            header,
        })
    };
    let (a, b, c, d) = ([0xa1; 16], [0xb2; 16], [0xc3; 16], [0xd4; 16]);
    vec![
        (
            "case_requested",
            38,
            Event::Case(CaseEvent::Requested {
                position: 1,
                at: 1_700_001_000,
                case_id: CaseId::from_bytes(a),
                defender: id(3),
                envelope_digest: [0x4e; 32],
            }),
        ),
        (
            "case_event_opening",
            39,
            appended(
                2,
                1_700_001_100,
                case_event(2, a, 1, state(CaseState::Open)),
            ),
        ),
        (
            "case_event_closing",
            40,
            appended(
                3,
                1_700_001_200,
                case_event(2, a, 2, state(CaseState::Closed)),
            ),
        ),
        (
            "case_erasure_requested",
            41,
            Event::Case(CaseEvent::ErasureRequested {
                position: 4,
                at: 1_700_001_300,
                case_id: CaseId::from_bytes(a),
                by: id(2),
                signature: None,
                closing: None,
            }),
        ),
        (
            "case_erased",
            42,
            Event::Case(CaseEvent::Erased {
                position: 5,
                at: 1_700_001_400,
                case_id: CaseId::from_bytes(a),
                requested_by: id(2),
                confirmed_by: id(4),
                request_signature: None,
                confirm_signature: None,
                closing: None,
            }),
        ),
        (
            "case_event_ledger",
            43,
            appended(
                6,
                1_700_001_500,
                case_event(
                    2,
                    b,
                    3,
                    CaseControl {
                        state: Some(CaseState::Open),
                        ledger: true,
                        ..CaseControl::default()
                    },
                ),
            ),
        ),
        (
            "case_event_legal_hold",
            44,
            appended(
                7,
                1_700_001_600,
                case_event(
                    4,
                    b,
                    4,
                    CaseControl {
                        legal_hold: Some(LegalHold::Set),
                        ..CaseControl::default()
                    },
                ),
            ),
        ),
        (
            "case_requested_waiting",
            45,
            Event::Case(CaseEvent::Requested {
                position: 8,
                at: 1_700_001_700,
                case_id: CaseId::from_bytes(c),
                defender: id(3),
                envelope_digest: [0x5e; 32],
            }),
        ),
        (
            "case_event_opening_d",
            46,
            appended(
                9,
                1_700_001_800,
                case_event(2, d, 5, state(CaseState::Open)),
            ),
        ),
        (
            "case_event_closing_d",
            47,
            appended(
                10,
                1_700_001_900,
                case_event(2, d, 6, state(CaseState::Closed)),
            ),
        ),
        (
            "case_erasure_requested_d",
            48,
            Event::Case(CaseEvent::ErasureRequested {
                position: 11,
                at: 1_700_002_000,
                case_id: CaseId::from_bytes(d),
                by: id(2),
                signature: None,
                closing: None,
            }),
        ),
    ]
}

#[test]
fn the_case_records_of_issue_12_encode_to_their_checked_in_bytes() {
    let events = events_i12();
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in self::events()
        .into_iter()
        .chain(events_v2())
        .chain(events_i11())
        .chain(events_i13())
    {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    assert_eq!(
        hex(&encode_snapshot(&state)),
        hex(&read_golden("snapshot-i13.hex")["snapshot"]),
        "a state with no case keeps the earlier snapshot bytes"
    );
    for (name, seq, event) in events_i12() {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    assert_eq!(state.cases.cases.len(), 3, "b, c and d; a was erased");
    assert_eq!(state.cases.erased.len(), 1);
    assert_eq!(state.cases.position, 11);
    let snapshot = encode_snapshot(&state);
    if bless() {
        write_golden(
            "events-i12.hex",
            "Log events of the forms added for issue 12 (cases: requests, sealed staff events, erasure requests, erasures).",
            &rows,
        );
        write_golden(
            "snapshot-i12b.hex",
            "The state after every event in events.hex, events-v2.hex, events-i11.hex, events-i13.hex, then events-i12.hex, as written since an erased case keeps its request's digest (issue 12, point 3).",
            &[("snapshot", snapshot.clone())],
        );
    }
    let golden = read_golden("events-i12.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let stored = &read_golden("snapshot-i12b.hex")["snapshot"];
    assert_eq!(hex(&snapshot), hex(stored), "the snapshot's stored format");
    assert_eq!(decode_snapshot(stored).expect("decodes"), state);
    // The form written before an erased case kept its request's digest
    // still reads: the same state, but for that digest.
    let mut without_digest = state.clone();
    for erased in without_digest.cases.erased.values_mut() {
        erased.envelope_digest = None;
    }
    let without_digest_cases = hotline_server::domain::cases::Cases::with_indexes(
        without_digest.cases.position,
        without_digest.cases.cases.clone(),
        without_digest.cases.erased.clone(),
    );
    without_digest.cases = without_digest_cases;
    let older = &read_golden("snapshot-i12.hex")["snapshot"];
    assert_eq!(decode_snapshot(older).expect("decodes"), without_digest);
    // A stored case event whose signed bytes were cut is a damaged
    // record, never a guess.
    let mut bad = golden["case_event_opening"].clone();
    bad.truncate(bad.len() - 3);
    assert!(decode_event(&bad).is_err());
}

/// The case record added by issue 12, point 4: the case a request
/// envelope made, by its digest (main key, no defender, no position). The
/// request itself keeps its form (`case_requested` in events-i12.hex) and
/// is now sealed under the case's subkey; the older main-key ones still
/// read.
#[test]
fn the_case_request_digest_of_issue_12_encodes_to_its_checked_in_bytes() {
    use hotline_proto::case::CaseId;
    use hotline_server::domain::cases::CaseEvent;
    let events = [(
        "case_request_digest",
        Event::Case(CaseEvent::RequestDigest {
            case_id: CaseId::from_bytes([0xa1; 16]),
            envelope_digest: [0x4e; 32],
        }),
    )];
    let rows: Vec<(&str, Vec<u8>)> = events.iter().map(|(n, e)| (*n, encode_event(e))).collect();
    if bless() {
        write_golden(
            "events-i12b.hex",
            "Log events of the forms added for issue 12, point 4 (the case a request envelope made, by its digest).",
            &rows,
        );
    }
    let golden = read_golden("events-i12b.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    // The older request form, under the main key, reads as before.
    let older = &read_golden("events-i12.hex")["case_requested"];
    assert!(matches!(
        decode_event(older).expect("decodes"),
        Event::Case(CaseEvent::Requested { .. })
    ));
}

/// The erasure records with their signatures (issue 12, signed erasure):
/// the requester's signature on an erasure request, both on an erasure,
/// as optional trailing fields, so the unsigned forms in events-i12.hex
/// read as before. The snapshots keep them (a pending request's and an
/// erased case's).
#[test]
fn the_signed_erasure_records_of_issue_12_encode_to_their_checked_in_bytes() {
    use hotline_proto::case::CaseId;
    use hotline_server::domain::cases::CaseEvent;
    let d = CaseId::from_bytes([0xd4; 16]);
    // The signatures of that form covered the case and the step only
    // (`label || 0x00 || case_id || step`); erasures now sign their
    // closing too (events-i12e.hex), but these records keep reading.
    let old_form = |seed: u8, step: u8| {
        let mut m = b"hotline/1 case erasure\x00".to_vec();
        m.extend_from_slice(d.as_bytes());
        m.push(step);
        IdentityKeyPair::from_seed(&[seed; 32]).sign(&m)
    };
    let request_signature = old_form(2, 1);
    let confirm_signature = old_form(4, 2);
    let events = [
        (
            "case_erasure_requested_signed",
            49,
            Event::Case(CaseEvent::ErasureRequested {
                position: 12,
                at: 1_700_002_100,
                case_id: d,
                by: id(2),
                signature: Some(request_signature),
                closing: None,
            }),
        ),
        (
            "case_erased_signed",
            50,
            Event::Case(CaseEvent::Erased {
                position: 13,
                at: 1_700_002_200,
                case_id: d,
                requested_by: id(2),
                confirmed_by: id(4),
                request_signature: Some(request_signature),
                confirm_signature: Some(confirm_signature),
                closing: None,
            }),
        ),
    ];
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in self::events()
        .into_iter()
        .chain(events_v2())
        .chain(events_i11())
        .chain(events_i13())
        .chain(events_i12())
    {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    let mut snapshots = Vec::new();
    for (name, seq, event) in &events {
        state
            .apply(*seq, event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
        snapshots.push((*name, encode_snapshot(&state), state.clone()));
    }
    assert_eq!(
        state.cases.erased[&d].confirm_signature,
        Some(confirm_signature)
    );
    if bless() {
        write_golden(
            "events-i12c.hex",
            "Log events of the forms added for issue 12's signed erasure (an erasure request and an erasure with their Ed25519 signatures).",
            &rows,
        );
        write_golden(
            "snapshot-i12c.hex",
            "The state after every event in events.hex, events-v2.hex, events-i11.hex, events-i13.hex, events-i12.hex, then each event of events-i12c.hex (snapshots named after it).",
            &snapshots
                .iter()
                .map(|(n, bytes, _)| (*n, bytes.clone()))
                .collect::<Vec<_>>(),
        );
    }
    let golden = read_golden("events-i12c.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let golden = read_golden("snapshot-i12c.hex");
    for (name, bytes, state) in &snapshots {
        let stored = &golden[*name];
        assert_eq!(hex(bytes), hex(stored), "snapshot after {name}");
        assert_eq!(&decode_snapshot(stored).expect("decodes"), state);
    }
    // An unsigned request still reads, without a signature.
    let older = &read_golden("events-i12.hex")["case_erased"];
    assert!(matches!(
        decode_event(older).expect("decodes"),
        Event::Case(CaseEvent::Erased {
            request_signature: None,
            confirm_signature: None,
            ..
        })
    ));
}

/// The form added for issue 12 (walk-through 2, L): an enrollment that
/// keeps the digest of the invite it spent in the device
/// (`DeviceRow.invite_digest`, field 6, an optional trailing field), so
/// that the admin device that made the invite can name the device. The
/// enrollment in events.hex, written without it, still reads, and leaves
/// the device without one (and snapshot.hex as it was).
#[test]
fn the_invite_digest_kept_with_a_device_encodes_to_its_checked_in_bytes() {
    let digest = [0x5a; 32];
    let enrolled = Device {
        invite_digest: Some(digest),
        ..device(7, Role::Coordinator)
    };
    let events = [
        (
            "invite_created",
            1,
            Event::InviteCreated {
                digest,
                invite: InviteRecord {
                    role: Role::Coordinator,
                    created_at: 1_700_000_000,
                    expires_at: 1_700_003_600,
                    used_at: None,
                    bootstrap: None,
                },
            },
        ),
        (
            "device_enrolled_with_invite_digest",
            2,
            Event::DeviceEnrolled {
                digest,
                device: enrolled.clone(),
            },
        ),
    ];
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in &events {
        state
            .apply(*seq, event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    assert_eq!(state.devices[&enrolled.id].invite_digest, Some(digest));
    let snapshot = encode_snapshot(&state);
    if bless() {
        write_golden(
            "events-i12-invite.hex",
            "Log events of the form added for issue 12, walk-through 2 (an enrollment keeping its invite's digest in the device).",
            &rows,
        );
        write_golden(
            "snapshot-i12-invite.hex",
            "The state after the events of events-i12-invite.hex, as a snapshot.",
            &[("snapshot", snapshot.clone())],
        );
    }
    let golden = read_golden("events-i12-invite.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let stored = &read_golden("snapshot-i12-invite.hex")["snapshot"];
    assert_eq!(hex(&snapshot), hex(stored), "the snapshot's stored format");
    assert_eq!(decode_snapshot(stored).expect("decodes"), state);
    // The older enrollment reads without a kept digest.
    let older = &read_golden("events.hex")["device_enrolled"];
    assert!(matches!(
        decode_event(older).expect("decodes"),
        Event::DeviceEnrolled {
            device: Device {
                invite_digest: None,
                ..
            },
            ..
        }
    ));
    // An enrollment whose device names another invite than the one it
    // spends is a damaged record, never a guess.
    let other = Event::DeviceEnrolled {
        digest: [0x11; 32],
        device: enrolled,
    };
    assert!(decode_event(&encode_event(&other)).is_err());
}

/// An alert whose SOS text was sealed to a roster a newer one replaced
/// (issue 12, walk-through 2: it was stored, and shown, as "expired"):
/// stored content code 3, after the issue 10 forms it builds on.
fn events_i12_older_roster() -> Vec<(&'static str, u64, Event)> {
    let defender = id(2);
    vec![(
        "alert_raised_sealed_to_a_replaced_roster",
        40,
        Event::Alert(AlertEvent::Raised {
            id: 0x5eed,
            defender,
            priority: Priority::Immediate,
            at: 1_700_000_500,
            envelope_id: 40,
            origin: AlertOrigin::Sos,
            content: AlertContent::OlderRoster,
        }),
    )]
}

#[test]
fn an_alert_sealed_to_a_replaced_roster_encodes_to_its_checked_in_bytes() {
    let events = events_i12_older_roster();
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in sos_events().into_iter().chain(events_i12_older_roster()) {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    assert_eq!(
        state.alerts.alerts[&0x5eed].content,
        AlertContent::OlderRoster
    );
    // The alerts stored before keep what they were.
    assert_eq!(state.alerts.alerts[&6].content, AlertContent::ExpiredRoster);
    let snapshot = encode_snapshot(&state);
    if bless() {
        write_golden(
            "events-i12-older-roster.hex",
            "Log events of the form added in issue 12, walk-through 2 (an SOS text sealed to a replaced roster, content code 3).",
            &rows,
        );
        write_golden(
            "snapshot-i12-older-roster.hex",
            "The state after every event in sos.hex, then events-i12-older-roster.hex.",
            &[("snapshot", snapshot.clone())],
        );
    }
    let golden = read_golden("events-i12-older-roster.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let stored = &read_golden("snapshot-i12-older-roster.hex")["snapshot"];
    assert_eq!(hex(&snapshot), hex(stored), "the snapshot's stored format");
    assert_eq!(decode_snapshot(stored).expect("decodes"), state);
}

/// The erasure records naming the closing their signatures cover (issue
/// 12, review 2, finding E1): the event that closed the case (its
/// author, then its event id) as an optional trailing field of the
/// erasure request and erasure rows, and of the snapshot's pending
/// request and erased case, so the forms of events-i12.hex and
/// events-i12c.hex read as before (without a closing).
#[test]
fn the_erasure_records_naming_their_closing_encode_to_their_checked_in_bytes() {
    use hotline_proto::case::CaseId;
    use hotline_proto::case::erasure::{Closing, ErasureStep, sign_erasure};
    use hotline_server::domain::cases::CaseEvent;
    let d = CaseId::from_bytes([0xd4; 16]);
    let closing = Closing {
        author: id(2),
        event_id: [6; 16],
    };
    let request_signature = sign_erasure(
        &IdentityKeyPair::from_seed(&[2; 32]),
        &d,
        ErasureStep::Request,
        &closing,
    );
    let confirm_signature = sign_erasure(
        &IdentityKeyPair::from_seed(&[4; 32]),
        &d,
        ErasureStep::Confirm(request_signature),
        &closing,
    );
    let events = [
        (
            "case_erasure_requested_closing",
            49,
            Event::Case(CaseEvent::ErasureRequested {
                position: 12,
                at: 1_700_002_100,
                case_id: d,
                by: id(2),
                signature: Some(request_signature),
                closing: Some(closing),
            }),
        ),
        (
            "case_erased_closing",
            50,
            Event::Case(CaseEvent::Erased {
                position: 13,
                at: 1_700_002_200,
                case_id: d,
                requested_by: id(2),
                confirmed_by: id(4),
                request_signature: Some(request_signature),
                confirm_signature: Some(confirm_signature),
                closing: Some(closing),
            }),
        ),
    ];
    let rows: Vec<(&str, Vec<u8>)> = events
        .iter()
        .map(|(n, _, e)| (*n, encode_event(e)))
        .collect();
    let mut state = State::default();
    for (name, seq, event) in self::events()
        .into_iter()
        .chain(events_v2())
        .chain(events_i11())
        .chain(events_i13())
        .chain(events_i12())
    {
        state
            .apply(seq, &event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
    }
    let mut snapshots = Vec::new();
    for (name, seq, event) in &events {
        state
            .apply(*seq, event)
            .unwrap_or_else(|e| panic!("{name} applies: {e}"));
        snapshots.push((*name, encode_snapshot(&state), state.clone()));
    }
    assert_eq!(state.cases.erased[&d].closing, Some(closing));
    if bless() {
        write_golden(
            "events-i12e.hex",
            "Log events of the forms added for issue 12's erasures bound to their closing (an erasure request and an erasure naming the event that closed the case).",
            &rows,
        );
        write_golden(
            "snapshot-i12e.hex",
            "The state after every event in events.hex, events-v2.hex, events-i11.hex, events-i13.hex, events-i12.hex, then each event of events-i12e.hex (snapshots named after it).",
            &snapshots
                .iter()
                .map(|(n, bytes, _)| (*n, bytes.clone()))
                .collect::<Vec<_>>(),
        );
    }
    let golden = read_golden("events-i12e.hex");
    assert_eq!(golden.len(), rows.len(), "one golden line per event");
    for (name, _, event) in &events {
        let stored = &golden[*name];
        assert_eq!(hex(&encode_event(event)), hex(stored), "event {name}");
        assert_eq!(&decode_event(stored).expect("decodes"), event, "{name}");
    }
    let golden = read_golden("snapshot-i12e.hex");
    for (name, bytes, state) in &snapshots {
        let stored = &golden[*name];
        assert_eq!(hex(bytes), hex(stored), "snapshot after {name}");
        assert_eq!(&decode_snapshot(stored).expect("decodes"), state);
    }
}
