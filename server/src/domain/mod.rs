//! The server's current state, derived from the event log.
//!
//! Events are what happened; [`State`] is what is true now. State is
//! rebuilt by applying events in log order, and saved as sealed snapshots
//! so that a start does not replay the whole log.

pub mod alerts;
pub mod checkins;
pub mod mailbox;
pub mod rota;

use std::collections::{BTreeMap, HashMap};

use hotline_proto::{DeviceId, IdentityPublicKey, Role};
use prost::Message;

use crate::domain::alerts::{AlertEvent, AlertEventRow, Alerts, AlertsRow};
use crate::domain::checkins::{CheckinEvent, CheckinEventRow, Checkins, CheckinsRow};
use crate::domain::mailbox::{MailEvent, MailEventRow, Mailbox, MailboxRow};
use crate::store::{Device, InviteRecord, StoreError};

/// Something that happened, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An invite was made; stored under the SHA-256 of its token.
    InviteCreated {
        /// SHA-256 of the token.
        digest: [u8; 32],
        /// The invite.
        invite: InviteRecord,
    },
    /// A device enrolled, spending an invite.
    DeviceEnrolled {
        /// The invite spent.
        digest: [u8; 32],
        /// The new device.
        device: Device,
    },
    /// A device was revoked.
    DeviceRevoked {
        /// Which.
        device_id: DeviceId,
        /// When.
        at: u64,
    },
    /// Something happened to the roster, prekeys or envelopes.
    Mail(MailEvent),
    /// Something happened to an alert.
    Alert(AlertEvent),
    /// A check-in schedule changed, or a defender checked in.
    Checkin(CheckinEvent),
    /// A staff device went on or off duty.
    Duty {
        /// Which.
        device: DeviceId,
        /// On duty.
        on: bool,
    },
    /// Several events recorded as one log record (one sequence number),
    /// applied in order: what must be durable together, such as an SOS's
    /// message, the alert and its first page.
    Batch(Vec<Event>),
}

// ---------------------------------------------------------------------------
// Encoding (private prost structs).

#[derive(Clone, PartialEq, Message)]
struct InviteRow {
    #[prost(bytes = "vec", tag = "1")]
    digest: Vec<u8>,
    #[prost(int32, tag = "2")]
    role: i32,
    #[prost(uint64, tag = "3")]
    created_at: u64,
    #[prost(uint64, tag = "4")]
    expires_at: u64,
    #[prost(uint64, tag = "5")]
    used_at: u64,
}

#[derive(Clone, PartialEq, Message)]
struct DeviceRow {
    #[prost(bytes = "vec", tag = "1")]
    identity_key: Vec<u8>,
    #[prost(int32, tag = "2")]
    role: i32,
    #[prost(uint64, tag = "3")]
    enrolled_at: u64,
    #[prost(uint64, tag = "4")]
    revoked_at: u64,
}

#[derive(Clone, PartialEq, Message)]
struct EnrolledRow {
    #[prost(bytes = "vec", tag = "1")]
    digest: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    device: Option<DeviceRow>,
}

#[derive(Clone, PartialEq, Message)]
struct RevokedRow {
    #[prost(bytes = "vec", tag = "1")]
    device_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    at: u64,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(message, tag = "1")]
    InviteCreated(InviteRow),
    #[prost(message, tag = "2")]
    DeviceEnrolled(EnrolledRow),
    #[prost(message, tag = "3")]
    DeviceRevoked(RevokedRow),
    #[prost(message, tag = "4")]
    Mail(MailEventRow),
    #[prost(message, tag = "5")]
    Alert(AlertEventRow),
    #[prost(message, tag = "6")]
    Duty(DutyRow),
    #[prost(message, tag = "7")]
    Checkin(CheckinEventRow),
    #[prost(message, tag = "8")]
    Batch(BatchRow),
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
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, Message)]
struct SnapshotRow {
    #[prost(uint64, tag = "1")]
    applied_seq: u64,
    #[prost(message, repeated, tag = "2")]
    devices: Vec<DeviceRow>,
    #[prost(message, repeated, tag = "3")]
    invites: Vec<InviteRow>,
    #[prost(message, optional, tag = "4")]
    mailbox: Option<MailboxRow>,
    #[prost(message, optional, tag = "5")]
    alerts: Option<AlertsRow>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    on_duty: Vec<Vec<u8>>,
    #[prost(message, optional, tag = "7")]
    checkins: Option<CheckinsRow>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn role_code(role: Role) -> i32 {
    match role {
        Role::Defender => 1,
        Role::Officer => 2,
        Role::Coordinator => 3,
        Role::Admin => 4,
    }
}

fn role_from_code(code: i32) -> Result<Role, StoreError> {
    Ok(match code {
        1 => Role::Defender,
        2 => Role::Officer,
        3 => Role::Coordinator,
        4 => Role::Admin,
        _ => return Err(corrupt("unknown role in a stored record")),
    })
}

fn digest(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| corrupt("invite digest of the wrong length"))
}

fn invite_row(digest: &[u8; 32], i: &InviteRecord) -> InviteRow {
    InviteRow {
        digest: digest.to_vec(),
        role: role_code(i.role),
        created_at: i.created_at,
        expires_at: i.expires_at,
        used_at: i.used_at.unwrap_or(0),
    }
}

fn invite_from(row: &InviteRow) -> Result<([u8; 32], InviteRecord), StoreError> {
    Ok((
        digest(&row.digest)?,
        InviteRecord {
            role: role_from_code(row.role)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: (row.used_at != 0).then_some(row.used_at),
        },
    ))
}

fn device_row(d: &Device) -> DeviceRow {
    DeviceRow {
        identity_key: d.identity_key.as_bytes().to_vec(),
        role: role_code(d.role),
        enrolled_at: d.enrolled_at,
        revoked_at: d.revoked_at.unwrap_or(0),
    }
}

fn device_from(row: &DeviceRow) -> Result<Device, StoreError> {
    let key: [u8; 32] = row
        .identity_key
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("identity key of the wrong length"))?;
    let identity_key = IdentityPublicKey::from_bytes(key);
    Ok(Device {
        id: identity_key.device_id(),
        identity_key,
        role: role_from_code(row.role)?,
        enrolled_at: row.enrolled_at,
        revoked_at: (row.revoked_at != 0).then_some(row.revoked_at),
    })
}

impl Event {
    /// The bytes stored (sealed) in the log.
    pub fn encode(&self) -> Vec<u8> {
        let kind = match self {
            Event::InviteCreated { digest, invite } => {
                Kind::InviteCreated(invite_row(digest, invite))
            }
            Event::DeviceEnrolled { digest, device } => Kind::DeviceEnrolled(EnrolledRow {
                digest: digest.to_vec(),
                device: Some(device_row(device)),
            }),
            Event::DeviceRevoked { device_id, at } => Kind::DeviceRevoked(RevokedRow {
                device_id: device_id.as_bytes().to_vec(),
                at: *at,
            }),
            Event::Mail(m) => Kind::Mail(m.to_row()),
            Event::Alert(a) => Kind::Alert(a.to_row()),
            Event::Checkin(c) => Kind::Checkin(c.to_row()),
            Event::Duty { device, on } => Kind::Duty(DutyRow {
                device: device.as_bytes().to_vec(),
                on: *on,
            }),
            Event::Batch(events) => Kind::Batch(BatchRow {
                events: events.iter().map(Event::encode).collect(),
            }),
        };
        EventRow { kind: Some(kind) }.encode_to_vec()
    }

    /// Parses stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Event, StoreError> {
        let row = EventRow::decode(bytes).map_err(|_| corrupt("event does not decode"))?;
        Ok(match row.kind.ok_or_else(|| corrupt("event of no kind"))? {
            Kind::InviteCreated(r) => {
                let (digest, invite) = invite_from(&r)?;
                Event::InviteCreated { digest, invite }
            }
            Kind::DeviceEnrolled(r) => Event::DeviceEnrolled {
                digest: digest(&r.digest)?,
                device: device_from(
                    r.device
                        .as_ref()
                        .ok_or_else(|| corrupt("enrollment without device"))?,
                )?,
            },
            Kind::DeviceRevoked(r) => Event::DeviceRevoked {
                device_id: DeviceId::from_bytes(
                    r.device_id
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt("device id of the wrong length"))?,
                ),
                at: r.at,
            },
            Kind::Mail(m) => Event::Mail(MailEvent::from_row(m)?),
            Kind::Alert(a) => Event::Alert(AlertEvent::from_row(a).map_err(corrupt)?),
            Kind::Checkin(c) => Event::Checkin(CheckinEvent::from_row(c).map_err(corrupt)?),
            Kind::Duty(d) => Event::Duty {
                device: DeviceId::from_bytes(
                    d.device
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt("device id of the wrong length"))?,
                ),
                on: d.on,
            },
            Kind::Batch(b) => Event::Batch(
                b.events
                    .iter()
                    .map(|e| match Event::decode(e)? {
                        Event::Batch(_) => Err(corrupt("a batch inside a batch")),
                        other => Ok(other),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// What is true now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Enrolled devices, revoked ones included.
    pub devices: BTreeMap<DeviceId, Device>,
    /// Invites by token digest, used ones included.
    pub invites: HashMap<[u8; 32], InviteRecord>,
    /// Roster, prekeys and envelopes.
    pub mailbox: Mailbox,
    /// Alerts.
    pub alerts: Alerts,
    /// Staff devices on duty now.
    pub on_duty: std::collections::BTreeSet<DeviceId>,
    /// Staff devices not revoked, with their roles: who an escalation step
    /// can page, without a walk over every defender's device.
    pub staff: BTreeMap<DeviceId, Role>,
    /// Check-in schedules.
    pub checkins: Checkins,
    /// The sequence number of the last event applied.
    pub applied_seq: u64,
}

impl State {
    /// Applies the event recorded at `seq`. An event that contradicts the
    /// state means the log is inconsistent: an error, never a guess.
    pub fn apply(&mut self, seq: u64, event: &Event) -> Result<(), StoreError> {
        match event {
            Event::InviteCreated { digest, invite } => {
                if self.invites.insert(*digest, invite.clone()).is_some() {
                    return Err(corrupt("an invite recorded twice"));
                }
            }
            Event::DeviceEnrolled { digest, device } => {
                let invite = self
                    .invites
                    .get_mut(digest)
                    .ok_or_else(|| corrupt("enrollment with an unknown invite"))?;
                if invite.used_at.is_some() || self.devices.contains_key(&device.id) {
                    return Err(corrupt("enrollment with a used invite or a known key"));
                }
                invite.used_at = Some(device.enrolled_at);
                if device.role.is_staff() && device.revoked_at.is_none() {
                    self.staff.insert(device.id, device.role);
                }
                self.devices.insert(device.id, device.clone());
            }
            Event::DeviceRevoked { device_id, at } => {
                let device = self
                    .devices
                    .get_mut(device_id)
                    .ok_or_else(|| corrupt("revocation of an unknown device"))?;
                device.revoked_at = Some(*at);
                self.staff.remove(device_id);
            }
            Event::Mail(m) => self.mailbox.apply(seq, m)?,
            Event::Alert(a) => self.alerts.apply(seq, a).map_err(corrupt)?,
            Event::Checkin(c) => self.checkins.apply(c).map_err(corrupt)?,
            Event::Batch(events) => {
                for e in events {
                    if matches!(e, Event::Batch(_)) {
                        return Err(corrupt("a batch inside a batch"));
                    }
                    self.apply(seq, e)?;
                }
            }
            Event::Duty { device, on } => {
                if *on {
                    self.on_duty.insert(*device);
                } else {
                    self.on_duty.remove(device);
                }
            }
        }
        self.applied_seq = seq;
        Ok(())
    }

    /// The snapshot bytes (sealed before they are stored).
    pub fn encode(&self) -> Vec<u8> {
        SnapshotRow {
            applied_seq: self.applied_seq,
            devices: self.devices.values().map(device_row).collect(),
            invites: self.invites.iter().map(|(d, i)| invite_row(d, i)).collect(),
            mailbox: Some(self.mailbox.to_row()),
            alerts: Some(self.alerts.to_row()),
            on_duty: self.on_duty.iter().map(|d| d.as_bytes().to_vec()).collect(),
            checkins: Some(self.checkins.to_row()),
        }
        .encode_to_vec()
    }

    /// Parses snapshot bytes.
    pub fn decode(bytes: &[u8]) -> Result<State, StoreError> {
        let row = SnapshotRow::decode(bytes).map_err(|_| corrupt("snapshot does not decode"))?;
        let mut state = State {
            applied_seq: row.applied_seq,
            mailbox: row
                .mailbox
                .map(Mailbox::from_row)
                .transpose()?
                .unwrap_or_default(),
            alerts: row
                .alerts
                .map(Alerts::from_row)
                .transpose()
                .map_err(corrupt)?
                .unwrap_or_default(),
            on_duty: row
                .on_duty
                .iter()
                .map(|d| {
                    <[u8; 16]>::try_from(d.as_slice())
                        .map(DeviceId::from_bytes)
                        .map_err(|_| corrupt("device id of the wrong length"))
                })
                .collect::<Result<_, _>>()?,
            checkins: row
                .checkins
                .map(Checkins::from_row)
                .transpose()
                .map_err(corrupt)?
                .unwrap_or_default(),
            ..State::default()
        };
        for d in &row.devices {
            let device = device_from(d)?;
            if device.role.is_staff() && device.revoked_at.is_none() {
                state.staff.insert(device.id, device.role);
            }
            state.devices.insert(device.id, device);
        }
        for i in &row.invites {
            let (digest, invite) = invite_from(i)?;
            state.invites.insert(digest, invite);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_proto::IdentityKeyPair;

    #[test]
    fn staff_index_follows_enrolments_and_revocations_and_snapshots() {
        let mut state = State::default();
        let mut seq = 0;
        let mut enroll = |state: &mut State, n: u8, role: Role| {
            let key = IdentityKeyPair::from_seed(&[n; 32]).public_key();
            let device = Device {
                id: key.device_id(),
                identity_key: key,
                role,
                enrolled_at: 5,
                revoked_at: None,
            };
            let invite = InviteRecord {
                role,
                created_at: 1,
                expires_at: 100,
                used_at: None,
            };
            seq += 2;
            state
                .apply(
                    seq - 1,
                    &Event::InviteCreated {
                        digest: [n; 32],
                        invite,
                    },
                )
                .expect("invite");
            state
                .apply(
                    seq,
                    &Event::DeviceEnrolled {
                        digest: [n; 32],
                        device: device.clone(),
                    },
                )
                .expect("enroll");
            device.id
        };
        let officer = enroll(&mut state, 1, Role::Officer);
        let coordinator = enroll(&mut state, 2, Role::Coordinator);
        let _defender = enroll(&mut state, 3, Role::Defender);
        assert_eq!(
            state.staff,
            [(officer, Role::Officer), (coordinator, Role::Coordinator)].into()
        );
        state
            .apply(
                99,
                &Event::DeviceRevoked {
                    device_id: officer,
                    at: 9,
                },
            )
            .expect("revoke");
        assert_eq!(state.staff, [(coordinator, Role::Coordinator)].into());
        assert_eq!(State::decode(&state.encode()).expect("decode"), state);
    }

    #[test]
    fn events_and_snapshots_round_trip() {
        let key = IdentityKeyPair::from_seed(&[1; 32]).public_key();
        let device = Device {
            id: key.device_id(),
            identity_key: key,
            role: Role::Officer,
            enrolled_at: 5,
            revoked_at: None,
        };
        let events = [
            Event::InviteCreated {
                digest: [2; 32],
                invite: InviteRecord {
                    role: Role::Officer,
                    created_at: 1,
                    expires_at: 100,
                    used_at: None,
                },
            },
            Event::DeviceEnrolled {
                digest: [2; 32],
                device: device.clone(),
            },
            Event::DeviceRevoked {
                device_id: device.id,
                at: 9,
            },
        ];
        let mut state = State::default();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(&Event::decode(&e.encode()).expect("decodes"), e);
            state.apply(i as u64 + 1, e).expect("applies");
        }
        assert_eq!(state.devices[&device.id].revoked_at, Some(9));
        assert_eq!(state.invites[&[2; 32]].used_at, Some(5));
        assert_eq!(State::decode(&state.encode()).expect("decodes"), state);
        // Replaying an enrollment is an inconsistency, not a no-op.
        assert!(state.apply(4, &events[1]).is_err());

        // A batch is one record: round trip, applied in order, no nesting.
        let batch = Event::Batch(vec![
            Event::InviteCreated {
                digest: [5; 32],
                invite: InviteRecord {
                    role: Role::Defender,
                    created_at: 1,
                    expires_at: 100,
                    used_at: None,
                },
            },
            Event::Duty {
                device: device.id,
                on: true,
            },
        ]);
        assert_eq!(Event::decode(&batch.encode()).expect("decodes"), batch);
        state.apply(9, &batch).expect("applies");
        assert!(state.invites.contains_key(&[5; 32]));
        assert!(state.on_duty.contains(&device.id));
        assert_eq!(state.applied_seq, 9);
        let nested = Event::Batch(vec![batch]);
        assert!(Event::decode(&nested.encode()).is_err());
    }
}
