//! Every stored form: how events are written into log records and how the
//! state is written into snapshots, with one error and one set of code
//! tables.
//!
//! The forms are private prost messages; the domain types know nothing of
//! them. Field numbers and codes never change meaning: a store written by
//! an earlier build must open with this one (`tests/stored_format.rs`
//! holds the bytes of one event of every kind and of a snapshot).

mod alerts;
mod cases;
mod checkins;
mod devices;
mod mailbox;

use hotline_proto::alert::{AlertContent, AlertOrigin, Priority};
use hotline_proto::{DeviceId, Role};
use prost::Message;

use crate::domain::{CertificateRecord, Event, State};

/// A stored record or snapshot does not decode: the store is damaged (or
/// was written by a newer build).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored record does not decode: {0}")]
pub struct CodecError(pub &'static str);

// ---------------------------------------------------------------------------
// Code tables shared by every stored form.

/// Roles as stored.
fn role_code(role: Role) -> i32 {
    match role {
        Role::Defender => 1,
        Role::Officer => 2,
        Role::Coordinator => 3,
        Role::Admin => 4,
    }
}

fn role_from_code(code: i32) -> Result<Role, CodecError> {
    Ok(match code {
        1 => Role::Defender,
        2 => Role::Officer,
        3 => Role::Coordinator,
        4 => Role::Admin,
        _ => return Err(CodecError("unknown role")),
    })
}

/// Priorities as stored.
fn priority(p: Priority) -> u32 {
    match p {
        Priority::Immediate => 1,
        Priority::Urgent => 2,
        Priority::Routine => 3,
    }
}

fn priority_from(v: u32) -> Result<Priority, CodecError> {
    match v {
        1 => Ok(Priority::Immediate),
        2 => Ok(Priority::Urgent),
        3 => Ok(Priority::Routine),
        _ => Err(CodecError("unknown priority")),
    }
}

/// Alert origins as stored.
fn origin(o: AlertOrigin) -> u32 {
    match o {
        AlertOrigin::Sos => 1,
        AlertOrigin::MissedCheckin => 2,
        AlertOrigin::Duress => 3,
        AlertOrigin::CheckinChanged => 4,
        AlertOrigin::CheckinStopped => 5,
        AlertOrigin::WrongCheckinCodes => 6,
    }
}

fn origin_from(v: u32) -> Result<AlertOrigin, CodecError> {
    match v {
        1 => Ok(AlertOrigin::Sos),
        2 => Ok(AlertOrigin::MissedCheckin),
        3 => Ok(AlertOrigin::Duress),
        4 => Ok(AlertOrigin::CheckinChanged),
        5 => Ok(AlertOrigin::CheckinStopped),
        6 => Ok(AlertOrigin::WrongCheckinCodes),
        _ => Err(CodecError("unknown alert origin")),
    }
}

/// What the server can tell of an alert's message, as stored (0, the
/// default of every alert stored before it was recorded: sealed).
fn content(c: AlertContent) -> u32 {
    match c {
        AlertContent::Sealed => 0,
        AlertContent::ExpiredRoster => 1,
        AlertContent::None => 2,
        AlertContent::OlderRoster => 3,
    }
}

fn content_from(v: u32) -> Result<AlertContent, CodecError> {
    match v {
        0 => Ok(AlertContent::Sealed),
        1 => Ok(AlertContent::ExpiredRoster),
        2 => Ok(AlertContent::None),
        3 => Ok(AlertContent::OlderRoster),
        _ => Err(CodecError("unknown alert content")),
    }
}

/// A device id from its stored bytes.
fn device_id(bytes: &[u8]) -> Result<DeviceId, CodecError> {
    <[u8; 16]>::try_from(bytes)
        .map(DeviceId::from_bytes)
        .map_err(|_| CodecError("device id of the wrong length"))
}

/// Device ids from their stored bytes, into any collection.
fn device_ids<C: FromIterator<DeviceId>>(v: &[Vec<u8>]) -> Result<C, CodecError> {
    v.iter().map(|d| device_id(d)).collect()
}

/// Device ids as stored.
fn id_bytes<'a>(ids: impl IntoIterator<Item = &'a DeviceId>) -> Vec<Vec<u8>> {
    ids.into_iter().map(|d| d.as_bytes().to_vec()).collect()
}

/// A SHA-256 digest from its stored bytes.
fn digest(bytes: &[u8]) -> Result<[u8; 32], CodecError> {
    bytes
        .try_into()
        .map_err(|_| CodecError("digest of the wrong length"))
}

// ---------------------------------------------------------------------------
// Events.

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(message, tag = "1")]
    InviteCreated(devices::InviteRow),
    #[prost(message, tag = "2")]
    DeviceEnrolled(devices::EnrolledRow),
    #[prost(message, tag = "3")]
    DeviceRevoked(devices::RevokedRow),
    #[prost(message, tag = "4")]
    Mail(mailbox::MailEventRow),
    #[prost(message, tag = "5")]
    Alert(alerts::AlertEventRow),
    #[prost(message, tag = "6")]
    Duty(DutyRow),
    #[prost(message, tag = "7")]
    Checkin(checkins::CheckinEventRow),
    #[prost(message, tag = "8")]
    Batch(BatchRow),
    #[prost(message, tag = "9")]
    PanicKeyRegistered(devices::PanicKeyRow),
    #[prost(message, tag = "10")]
    CertificatePinned(CertificateRow),
    /// Issue 12.
    #[prost(message, tag = "11")]
    Case(cases::CaseEventRow),
}

/// The store's TLS certificate as recorded: its 32-byte pin, or no bytes
/// for "let go".
#[derive(Clone, PartialEq, Message)]
struct CertificateRow {
    #[prost(bytes = "vec", tag = "1")]
    pin: Vec<u8>,
}

fn certificate_row(pin: Option<&[u8; 32]>) -> CertificateRow {
    CertificateRow {
        pin: pin.map(|p| p.to_vec()).unwrap_or_default(),
    }
}

fn certificate_from(row: &CertificateRow) -> Result<Option<[u8; 32]>, CodecError> {
    match row.pin.len() {
        0 => Ok(None),
        _ => <[u8; 32]>::try_from(row.pin.as_slice())
            .map(Some)
            .map_err(|_| CodecError("certificate pin of the wrong length")),
    }
}

#[derive(Clone, PartialEq, Message)]
struct BatchRow {
    #[prost(bytes = "vec", repeated, tag = "1")]
    events: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct DutyRow {
    #[prost(bytes = "vec", tag = "1")]
    device: Vec<u8>,
    #[prost(bool, tag = "2")]
    on: bool,
}

#[derive(Clone, PartialEq, Message)]
struct EventRow {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11")]
    kind: Option<Kind>,
}

/// The bytes of `event` as stored (sealed) in a log record.
pub fn encode_event(event: &Event) -> Vec<u8> {
    let kind = match event {
        Event::InviteCreated { digest, invite } => {
            Kind::InviteCreated(devices::invite_row(digest, invite))
        }
        Event::DeviceEnrolled { digest, device } => {
            Kind::DeviceEnrolled(devices::enrolled_row(digest, device))
        }
        Event::DeviceRevoked { device_id, at } => {
            Kind::DeviceRevoked(devices::revoked_row(device_id, *at))
        }
        Event::PanicKeyRegistered { device_id, key } => {
            Kind::PanicKeyRegistered(devices::panic_key_row(device_id, key))
        }
        Event::Mail(m) => Kind::Mail(mailbox::event_row(m)),
        Event::Alert(a) => Kind::Alert(alerts::event_row(a)),
        Event::Checkin(c) => Kind::Checkin(checkins::event_row(c)),
        Event::Case(c) => Kind::Case(cases::event_row(c)),
        Event::Duty { device, on } => Kind::Duty(DutyRow {
            device: device.as_bytes().to_vec(),
            on: *on,
        }),
        Event::CertificatePinned { pin } => Kind::CertificatePinned(certificate_row(pin.as_ref())),
        Event::Batch(events) => Kind::Batch(BatchRow {
            events: events.iter().map(encode_event).collect(),
        }),
    };
    EventRow { kind: Some(kind) }.encode_to_vec()
}

/// Parses the bytes of a log record's event.
pub fn decode_event(bytes: &[u8]) -> Result<Event, CodecError> {
    let row = EventRow::decode(bytes).map_err(|_| CodecError("event does not decode"))?;
    Ok(match row.kind.ok_or(CodecError("event of no kind"))? {
        Kind::InviteCreated(r) => {
            let (digest, invite) = devices::invite_from(&r)?;
            Event::InviteCreated { digest, invite }
        }
        Kind::DeviceEnrolled(r) => {
            let (digest, device) = devices::enrolled_from(&r)?;
            Event::DeviceEnrolled { digest, device }
        }
        Kind::DeviceRevoked(r) => Event::DeviceRevoked {
            device_id: device_id(&r.device_id)?,
            at: r.at,
        },
        Kind::PanicKeyRegistered(r) => {
            let (device_id, key) = devices::panic_key_from(&r)?;
            Event::PanicKeyRegistered { device_id, key }
        }
        Kind::Mail(m) => Event::Mail(mailbox::event_from(m)?),
        Kind::Alert(a) => Event::Alert(alerts::event_from(a)?),
        Kind::Checkin(c) => Event::Checkin(checkins::event_from(c)?),
        Kind::Case(c) => Event::Case(cases::event_from(c)?),
        Kind::Duty(d) => Event::Duty {
            device: device_id(&d.device)?,
            on: d.on,
        },
        Kind::CertificatePinned(c) => Event::CertificatePinned {
            pin: certificate_from(&c)?,
        },
        Kind::Batch(b) => Event::Batch(
            b.events
                .iter()
                .map(|e| match decode_event(e)? {
                    Event::Batch(_) => Err(CodecError("a batch inside a batch")),
                    other => Ok(other),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

// ---------------------------------------------------------------------------
// Snapshots.

#[derive(Clone, PartialEq, Message)]
struct SnapshotRow {
    #[prost(uint64, tag = "1")]
    applied_seq: u64,
    #[prost(message, repeated, tag = "2")]
    devices: Vec<devices::DeviceRow>,
    #[prost(message, repeated, tag = "3")]
    invites: Vec<devices::InviteRow>,
    #[prost(message, optional, tag = "4")]
    mailbox: Option<mailbox::MailboxRow>,
    #[prost(message, optional, tag = "5")]
    alerts: Option<alerts::AlertsRow>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    on_duty: Vec<Vec<u8>>,
    #[prost(message, optional, tag = "7")]
    checkins: Option<checkins::CheckinsRow>,
    /// Absent: nothing recorded (every snapshot written before issue 13).
    #[prost(message, optional, tag = "8")]
    certificate: Option<CertificateRow>,
    /// Absent: no case was ever recorded (every snapshot written before
    /// issue 12).
    #[prost(message, optional, tag = "9")]
    cases: Option<cases::CasesRow>,
}

/// The bytes of a snapshot of `state` (sealed before they are stored).
pub fn encode_snapshot(state: &State) -> Vec<u8> {
    SnapshotRow {
        applied_seq: state.applied_seq,
        devices: state.devices.values().map(devices::device_row).collect(),
        // In digest order, so that one state always gives the same bytes.
        invites: {
            let mut all: Vec<_> = state.invites.iter().collect();
            all.sort_by_key(|(digest, _)| **digest);
            all.into_iter()
                .map(|(d, i)| devices::invite_row(d, i))
                .collect()
        },
        mailbox: Some(mailbox::mailbox_row(&state.mailbox)),
        alerts: Some(alerts::alerts_row(&state.alerts)),
        on_duty: id_bytes(&state.on_duty),
        checkins: Some(checkins::checkins_row(&state.checkins)),
        certificate: match &state.certificate {
            CertificateRecord::Never => None,
            CertificateRecord::Pinned(pin) => Some(certificate_row(Some(pin))),
            CertificateRecord::LetGo => Some(certificate_row(None)),
        },
        cases: cases::cases_row(&state.cases),
    }
    .encode_to_vec()
}

/// Parses snapshot bytes.
pub fn decode_snapshot(bytes: &[u8]) -> Result<State, CodecError> {
    let row = SnapshotRow::decode(bytes).map_err(|_| CodecError("snapshot does not decode"))?;
    let devices = row
        .devices
        .iter()
        .map(devices::device_from)
        .collect::<Result<Vec<_>, _>>()?;
    // A device listed twice would be indexed from one row and kept from
    // the other (a revoked device left among the staff). Found by fuzzing.
    let ids: std::collections::BTreeSet<DeviceId> = devices.iter().map(|d| d.id).collect();
    if ids.len() != devices.len() {
        return Err(CodecError("a device stored twice in a snapshot"));
    }
    let invites = row
        .invites
        .iter()
        .map(devices::invite_from)
        .collect::<Result<_, _>>()?;
    let certificate = match &row.certificate {
        None => CertificateRecord::Never,
        Some(c) => match certificate_from(c)? {
            Some(pin) => CertificateRecord::Pinned(pin),
            None => CertificateRecord::LetGo,
        },
    };
    let mut state = State::from_parts(
        row.applied_seq,
        devices,
        invites,
        row.mailbox
            .map(mailbox::mailbox_from)
            .transpose()?
            .unwrap_or_default(),
        row.alerts
            .map(alerts::alerts_from)
            .transpose()?
            .unwrap_or_default(),
        device_ids(&row.on_duty)?,
        row.checkins
            .map(checkins::checkins_from)
            .transpose()?
            .unwrap_or_default(),
    );
    state.certificate = certificate;
    state.cases = row
        .cases
        .map(cases::cases_from)
        .transpose()?
        .unwrap_or_default();
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_forms_are_refused_not_guessed() {
        let duty = Event::Duty {
            device: DeviceId::from_bytes([7; 16]),
            on: true,
        };
        let batch = Event::Batch(vec![duty.clone()]);
        assert_eq!(decode_event(&encode_event(&batch)), Ok(batch.clone()));
        let nested = Event::Batch(vec![batch]);
        assert_eq!(
            decode_event(&encode_event(&nested)),
            Err(CodecError("a batch inside a batch"))
        );
        // A device id cut short, an event of no kind, bytes that are not
        // a record at all.
        let mut short = DutyRow {
            device: vec![7; 15],
            on: true,
        };
        let row = EventRow {
            kind: Some(Kind::Duty(short.clone())),
        };
        assert!(decode_event(&row.encode_to_vec()).is_err());
        short.device.push(7);
        let row = EventRow {
            kind: Some(Kind::Duty(short)),
        };
        assert_eq!(decode_event(&row.encode_to_vec()), Ok(duty));
        assert_eq!(
            decode_event(&EventRow { kind: None }.encode_to_vec()),
            Err(CodecError("event of no kind"))
        );
        assert!(decode_event(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_snapshot(&[0xff, 0xff, 0xff]).is_err());
        assert_eq!(role_from_code(9), Err(CodecError("unknown role")));
    }

    /// Found by fuzzing (fuzz/corpus/store_codec/crash-empty-roster): a
    /// stored roster with no bytes decoded, and a snapshot taken after it
    /// read back with no roster at all.
    #[test]
    fn a_roster_stored_without_its_bytes_is_refused() {
        use crate::domain::mailbox::MailEvent;
        let empty = Event::Mail(MailEvent::RosterStored {
            version: 7,
            bytes: Vec::new(),
        });
        assert_eq!(
            decode_event(&encode_event(&empty)),
            Err(CodecError("a roster stored without its bytes"))
        );
        let stored = Event::Mail(MailEvent::RosterStored {
            version: 7,
            bytes: b"signed roster bytes".to_vec(),
        });
        assert_eq!(decode_event(&encode_event(&stored)), Ok(stored.clone()));
        // What replay builds from it survives a snapshot.
        let mut state = State::default();
        state.apply(1, &stored).expect("applies");
        assert_eq!(decode_snapshot(&encode_snapshot(&state)), Ok(state));
    }

    /// Found by fuzzing (fuzz/corpus/store_codec/crash-device-twice): a
    /// snapshot listing one device twice, as staff then revoked, read back
    /// with the revoked device among the staff.
    #[test]
    fn a_snapshot_listing_a_device_twice_is_refused() {
        use crate::domain::devices::Device;
        let officer = Device {
            id: DeviceId::from_bytes([4; 16]),
            identity_key: hotline_proto::IdentityKeyPair::from_seed(&[4; 32]).public_key(),
            role: Role::Officer,
            enrolled_at: 10,
            revoked_at: None,
            panic_key: None,
            invite_digest: None,
        };
        let revoked = Device {
            revoked_at: Some(20),
            ..officer.clone()
        };
        let row = SnapshotRow {
            devices: vec![devices::device_row(&officer), devices::device_row(&revoked)],
            ..SnapshotRow::default()
        };
        assert_eq!(
            decode_snapshot(&row.encode_to_vec()),
            Err(CodecError("a device stored twice in a snapshot"))
        );
        let once = SnapshotRow {
            devices: vec![devices::device_row(&revoked)],
            ..SnapshotRow::default()
        };
        let state = decode_snapshot(&once.encode_to_vec()).expect("decodes");
        assert!(state.staff.is_empty(), "a revoked device is not staff");
    }

    #[test]
    fn every_code_table_reads_back_what_it_writes() {
        for r in Role::ALL {
            assert_eq!(role_from_code(role_code(r)), Ok(r));
        }
        for p in [Priority::Immediate, Priority::Urgent, Priority::Routine] {
            assert_eq!(priority_from(priority(p)), Ok(p));
        }
        for o in [
            AlertOrigin::Sos,
            AlertOrigin::MissedCheckin,
            AlertOrigin::Duress,
            AlertOrigin::CheckinChanged,
            AlertOrigin::CheckinStopped,
            AlertOrigin::WrongCheckinCodes,
        ] {
            assert_eq!(origin_from(origin(o)), Ok(o));
        }
        for c in [
            AlertContent::Sealed,
            AlertContent::ExpiredRoster,
            AlertContent::OlderRoster,
            AlertContent::None,
        ] {
            assert_eq!(content_from(content(c)), Ok(c));
        }
        // Stored codes are fixed: 3 came with issue 12 (a text sealed to
        // a replaced roster); earlier records keep reading as they did.
        assert_eq!(content(AlertContent::OlderRoster), 3);
        assert_eq!(content_from(1), Ok(AlertContent::ExpiredRoster));
        assert!(priority_from(0).is_err() && origin_from(7).is_err() && content_from(4).is_err());
    }
}
