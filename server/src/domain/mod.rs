//! The server's current state, derived from the event log.
//!
//! Events are what happened; [`State`] is what is true now. State is
//! rebuilt by applying events in log order, and saved as sealed snapshots
//! so that a start does not replay the whole log.

pub mod alerts;
pub mod cases;
pub mod checkins;
pub mod devices;
pub mod mailbox;
pub mod rota;

/// The relocation lifecycle lives in the protocol crate: every client
/// checks stage moves with the same table (docs/cases.md).
pub use hotline_proto::case::relocation;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hotline_proto::{DeviceId, Role};

use alerts::{AlertEvent, Alerts};
use cases::{CaseEvent, Cases};
use checkins::{CheckinEvent, Checkins};
use devices::{Device, InviteRecord, RosterView};
use mailbox::{MailEvent, Mailbox};

/// An event contradicts the state it is applied to: the log is
/// inconsistent (damaged, or written by a bug). Never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the log contradicts the state: {0}")]
pub struct ApplyError(pub &'static str);

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
    /// A defender device enrolled before panic keys existed registered
    /// one.
    PanicKeyRegistered {
        /// Which device.
        device_id: DeviceId,
        /// Its panic key.
        key: hotline_proto::IdentityPublicKey,
    },
    /// Something happened to the roster, prekeys or envelopes.
    Mail(MailEvent),
    /// Something happened to an alert.
    Alert(AlertEvent),
    /// A check-in schedule changed, or a defender checked in.
    Checkin(CheckinEvent),
    /// Something happened to a case (issue 12).
    Case(CaseEvent),
    /// A staff device went on or off duty.
    Duty {
        /// Which.
        device: DeviceId,
        /// On duty.
        on: bool,
    },
    /// The store's own TLS certificate was recorded (its pin), or, with
    /// `None`, deliberately let go (`accept-new-cert` with the certificate
    /// and key removed: the next start makes a new one). A record in the
    /// chained, signed log, so that its absence cannot be faked by
    /// deleting a file.
    CertificatePinned {
        /// The SHA-256 of the certificate clients pin; `None`: let go.
        pin: Option<[u8; 32]>,
    },
    /// Several events recorded as one log record (one sequence number),
    /// applied in order: what must be durable together, such as an SOS's
    /// message, the alert and its first page.
    Batch(Vec<Event>),
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
    pub on_duty: BTreeSet<DeviceId>,
    /// Staff devices not revoked, with their roles: who an escalation step
    /// can page, without a walk over every defender's device.
    pub staff: BTreeMap<DeviceId, Role>,
    /// Check-in schedules.
    pub checkins: Checkins,
    /// The newest roster, as the server reads it (derived from
    /// `mailbox.roster`).
    pub roster: Option<RosterView>,
    /// What the log records of the store's TLS certificate.
    pub certificate: CertificateRecord,
    /// Cases: metadata only.
    pub cases: Cases,
    /// The sequence number of the last event applied.
    pub applied_seq: u64,
}

/// What the log records of the store's own TLS certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CertificateRecord {
    /// Nothing: a store written before the log recorded it (or one with
    /// no certificate yet).
    #[default]
    Never,
    /// The certificate with this pin is the store's.
    Pinned([u8; 32]),
    /// Let go on purpose: the next start makes a new one.
    LetGo,
}

impl State {
    /// Applies the event recorded at `seq`. An event that contradicts the
    /// state means the log is inconsistent: an error, never a guess.
    pub fn apply(&mut self, seq: u64, event: &Event) -> Result<(), ApplyError> {
        match event {
            Event::InviteCreated { digest, invite } => {
                if self.invites.insert(*digest, invite.clone()).is_some() {
                    return Err(ApplyError("an invite recorded twice"));
                }
            }
            Event::DeviceEnrolled { digest, device } => {
                let invite = self
                    .invites
                    .get_mut(digest)
                    .ok_or(ApplyError("enrollment with an unknown invite"))?;
                if invite.used_at.is_some() || self.devices.contains_key(&device.id) {
                    return Err(ApplyError("enrollment with a used invite or a known key"));
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
                    .ok_or(ApplyError("revocation of an unknown device"))?;
                device.revoked_at = Some(*at);
                self.staff.remove(device_id);
            }
            Event::PanicKeyRegistered { device_id, key } => {
                let device = self
                    .devices
                    .get_mut(device_id)
                    .ok_or(ApplyError("a panic key for an unknown device"))?;
                if device.panic_key.is_some() || device.role != Role::Defender {
                    return Err(ApplyError("a second panic key, or one for staff"));
                }
                device.panic_key = Some(*key);
            }
            Event::Mail(m) => {
                self.mailbox.apply(seq, m)?;
                if let MailEvent::RosterStored { bytes, .. } = m {
                    self.roster = RosterView::read(bytes);
                }
            }
            Event::Alert(a) => self.alerts.apply(seq, a)?,
            Event::Checkin(c) => self.checkins.apply(c)?,
            Event::Case(c) => self.cases.apply(seq, c)?,
            Event::Batch(events) => {
                for e in events {
                    if matches!(e, Event::Batch(_)) {
                        return Err(ApplyError("a batch inside a batch"));
                    }
                    self.apply(seq, e)?;
                }
            }
            Event::CertificatePinned { pin } => {
                self.certificate = match pin {
                    Some(pin) => CertificateRecord::Pinned(*pin),
                    None => CertificateRecord::LetGo,
                };
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

    /// The state a snapshot holds, with the indexes derived from it.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        applied_seq: u64,
        devices: Vec<Device>,
        invites: HashMap<[u8; 32], InviteRecord>,
        mailbox: Mailbox,
        alerts: Alerts,
        on_duty: BTreeSet<DeviceId>,
        checkins: Checkins,
    ) -> State {
        let mut state = State {
            applied_seq,
            invites,
            roster: mailbox
                .roster
                .as_ref()
                .and_then(|(_, bytes)| RosterView::read(bytes)),
            mailbox,
            alerts,
            on_duty,
            checkins,
            ..State::default()
        };
        for device in devices {
            if device.role.is_staff() && device.revoked_at.is_none() {
                state.staff.insert(device.id, device.role);
            }
            state.devices.insert(device.id, device);
        }
        state
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
                panic_key: None,
                invite_digest: None,
            };
            let invite = InviteRecord {
                role,
                created_at: 1,
                expires_at: 100,
                used_at: None,
                bootstrap: None,
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
        // A snapshot holds no index: it is derived again from the devices.
        let parts = State::from_parts(
            state.applied_seq,
            state.devices.values().cloned().collect(),
            state.invites.clone(),
            Mailbox::default(),
            Alerts::default(),
            BTreeSet::new(),
            Checkins::default(),
        );
        assert_eq!(parts, state);
    }

    /// Enrolls the device of seed `n` with `role` (and `panic`) at `seq`.
    #[allow(clippy::result_large_err)] // a test's refusal, read once
    fn enroll_at(
        state: &mut State,
        seq: u64,
        n: u8,
        role: Role,
        panic: Option<hotline_proto::IdentityPublicKey>,
    ) -> Result<DeviceId, devices::EnrollOutcome> {
        let key = IdentityKeyPair::from_seed(&[n; 32]).public_key();
        let invite = InviteRecord {
            role,
            created_at: 1,
            expires_at: 100,
            used_at: None,
            bootstrap: None,
        };
        state
            .apply(
                seq,
                &Event::InviteCreated {
                    digest: [n; 32],
                    invite,
                },
            )
            .expect("invite");
        match state.decide_enroll([n; 32], key, panic, 5) {
            (devices::EnrollOutcome::Enrolled(d), Some(event)) => {
                state.apply(seq + 1, &event).expect("enroll");
                Ok(d.id)
            }
            (other, _) => Err(other),
        }
    }

    #[test]
    fn a_panic_key_comes_only_with_a_defender_and_only_once() {
        let mut state = State::default();
        let panic = IdentityKeyPair::from_seed(&[50; 32]).public_key();
        let other = IdentityKeyPair::from_seed(&[51; 32]).public_key();
        assert_eq!(
            enroll_at(&mut state, 1, 1, Role::Officer, Some(panic)),
            Err(devices::EnrollOutcome::PanicKeyNotForStaff)
        );
        let defender = enroll_at(&mut state, 3, 2, Role::Defender, Some(panic)).expect("enrolls");
        assert_eq!(state.devices[&defender].panic_key, Some(panic));
        // Registering it again changes nothing; another is refused.
        assert_eq!(state.decide_panic_key(&defender, panic), Ok(None));
        assert_eq!(state.decide_panic_key(&defender, other), Err(()));
        let old = enroll_at(&mut state, 5, 3, Role::Defender, None).expect("enrolls");
        let event = state
            .decide_panic_key(&old, other)
            .expect("allowed")
            .expect("an event");
        state.apply(7, &event).expect("applies");
        assert_eq!(state.devices[&old].panic_key, Some(other));
        assert!(state.apply(8, &event).is_err(), "a second one contradicts");
        let officer = enroll_at(&mut state, 9, 4, Role::Officer, None).expect("enrolls");
        assert_eq!(state.decide_panic_key(&officer, other), Err(()));
    }

    /// Once a roster exists, only the staff it lists are paged (and may
    /// claim); before, every staff device counts. Revoking the holder of
    /// an alert releases it in the same record.
    #[test]
    fn only_roster_staff_are_paged_and_a_revoked_holder_lets_go() {
        use alerts::{AlertEvent, AlertState, Tier};
        use hotline_proto::e2e::org::OrgKeyPair;
        use hotline_proto::e2e::roster::{Roster, RosterEntry};

        let mut state = State::default();
        let listed = enroll_at(&mut state, 1, 1, Role::Officer, None).expect("enrolls");
        let late = enroll_at(&mut state, 3, 2, Role::Officer, None).expect("enrolls");
        let _admin = enroll_at(&mut state, 5, 3, Role::Admin, None).expect("enrolls");
        assert_eq!(
            state.tier_members(&[], Tier::Everyone).len(),
            3,
            "no roster yet: every staff device counts"
        );
        let key = IdentityKeyPair::from_seed(&[1; 32]).public_key();
        let roster = Roster {
            version: 1,
            issued_at: 1,
            expires_at: 10,
            previous_hash: [0; 32],
            entries: vec![RosterEntry {
                device_id: listed,
                role: Role::Officer,
                identity_key: key,
                valid_from: 0,
                valid_until: 10,
            }],
        }
        .sign(&OrgKeyPair::from_seed(&[9; 32]));
        state
            .apply(
                7,
                &Event::Mail(MailEvent::RosterStored {
                    version: 1,
                    bytes: roster.encode(),
                }),
            )
            .expect("roster");
        // Expired or not, the roster decides.
        assert_eq!(state.tier_members(&[], Tier::Everyone), vec![listed]);
        state
            .apply(
                8,
                &Event::Duty {
                    device: late,
                    on: true,
                },
            )
            .expect("duty");
        assert!(state.tier_members(&[], Tier::OnDuty).is_empty());
        assert!(state.may_read_alerts(&listed) && !state.may_read_alerts(&late));

        let raise = Event::Alert(AlertEvent::Raised {
            id: 0,
            defender: DeviceId::from_bytes([7; 16]),
            priority: alerts::Priority::Immediate,
            at: 20,
            envelope_id: 0,
            origin: alerts::AlertOrigin::Sos,
            content: alerts::AlertContent::None,
        });
        state.apply(9, &raise).expect("raise");
        state
            .apply(
                10,
                &Event::Alert(AlertEvent::Acknowledged {
                    alert: 9,
                    by: listed,
                }),
            )
            .expect("claim");
        let (_, event) = state.decide_revoke(&listed, 30);
        let event = event.expect("revoked");
        assert!(
            matches!(&event, Event::Batch(e) if e.len() == 2),
            "revocation and release in one record: {event:?}"
        );
        state.apply(11, &event).expect("applies");
        assert_eq!(state.alerts.alerts[&9].state, AlertState::Raised);
        // Every device the roster lists is gone: a stale roster must not
        // leave alerts paging nobody, so every staff device counts again.
        assert!(state.may_read_alerts(&late));
        assert_eq!(state.tier_members(&[], Tier::OnDuty), vec![late]);
    }

    #[test]
    fn events_apply_in_order_and_contradictions_are_refused() {
        let key = IdentityKeyPair::from_seed(&[1; 32]).public_key();
        let device = Device {
            id: key.device_id(),
            identity_key: key,
            role: Role::Officer,
            enrolled_at: 5,
            revoked_at: None,
            panic_key: None,
            invite_digest: None,
        };
        let events = [
            Event::InviteCreated {
                digest: [2; 32],
                invite: InviteRecord {
                    role: Role::Officer,
                    created_at: 1,
                    expires_at: 100,
                    used_at: None,
                    bootstrap: None,
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
            state.apply(i as u64 + 1, e).expect("applies");
        }
        assert_eq!(state.devices[&device.id].revoked_at, Some(9));
        assert_eq!(state.invites[&[2; 32]].used_at, Some(5));
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
                    bootstrap: None,
                },
            },
            Event::Duty {
                device: device.id,
                on: true,
            },
        ]);
        state.apply(9, &batch).expect("applies");
        assert!(state.invites.contains_key(&[5; 32]));
        assert!(state.on_duty.contains(&device.id));
        assert_eq!(state.applied_seq, 9);
        let nested = Event::Batch(vec![batch]);
        assert!(state.apply(10, &nested).is_err(), "no batch in a batch");
    }
}
