//! What the server keeps for end-to-end messaging, derived from the log:
//! the newest signed roster, each device's published prekeys, and
//! envelopes waiting for their recipients.
//!
//! The server can open none of it. It keeps the roster only to serve it
//! (clients check the organisation's signature), checks that prekeys and
//! envelopes are signed by the device that sends them, and routes
//! envelopes by the recipient ids written in them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hotline_proto::DeviceId;
use prost::Message;

use crate::store::StoreError;

/// A prekey as published: its signed wire form and what the server needs
/// to hand it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrekey {
    /// One-time (handed out once) or last-resort.
    pub one_time: bool,
    /// The owner's id for it.
    pub id: u32,
    /// After this it is not handed out.
    pub expires_at: u64,
    /// The `SignedPrekey` wire bytes.
    pub signed: Vec<u8>,
}

/// One device's prekeys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePrekeys {
    /// The current last-resort prekey.
    pub last_resort: Option<StoredPrekey>,
    /// One-time prekeys not yet handed out, by id.
    pub one_time: BTreeMap<u32, StoredPrekey>,
}

/// An envelope waiting for recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// The `SignedEnvelope` wire bytes.
    pub bytes: Vec<u8>,
    /// Recipients that have not acknowledged it yet.
    pub pending: BTreeSet<DeviceId>,
}

/// Messaging state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The newest roster: its version and `SignedRoster` wire bytes.
    pub roster: Option<(u64, Vec<u8>)>,
    /// Prekeys by device.
    pub prekeys: HashMap<DeviceId, DevicePrekeys>,
    /// Envelopes by id (the log sequence number that stored them).
    pub envelopes: BTreeMap<u64, StoredEnvelope>,
    /// Envelope digests seen, to recognise a retry.
    pub digests: HashMap<[u8; 32], u64>,
    /// The highest id each device acknowledged.
    pub acked: HashMap<DeviceId, u64>,
    /// How far each envelope got, for its sender.
    pub delivery: BTreeMap<u64, Delivery>,
}

/// How far one envelope got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Who sent it.
    pub sender: Option<DeviceId>,
    /// Devices it was sealed to.
    pub recipients: BTreeSet<DeviceId>,
    /// Devices that fetched and stored it.
    pub delivered: BTreeSet<DeviceId>,
    /// Devices that showed it to their person.
    pub read: BTreeSet<DeviceId>,
}

/// Messaging events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailEvent {
    /// A newer roster was uploaded.
    RosterStored {
        /// Its version.
        version: u64,
        /// Its wire bytes.
        bytes: Vec<u8>,
    },
    /// A device published prekeys.
    PrekeysPublished {
        /// The owner.
        device: DeviceId,
        /// The prekeys.
        prekeys: Vec<StoredPrekey>,
    },
    /// A one-time prekey was handed out (and so is gone).
    PrekeyTaken {
        /// The owner.
        device: DeviceId,
        /// Which.
        id: u32,
    },
    /// An envelope was accepted for its recipients.
    EnvelopeStored {
        /// Who sent it.
        sender: DeviceId,
        /// SHA-256 of its wire bytes.
        digest: [u8; 32],
        /// Who may fetch it.
        recipients: Vec<DeviceId>,
        /// Its wire bytes.
        bytes: Vec<u8>,
    },
    /// A device showed these envelopes to its person.
    Read {
        /// The device.
        device: DeviceId,
        /// The envelope ids.
        ids: Vec<u64>,
    },
    /// A device acknowledged its inbox up to an id.
    InboxAcked {
        /// The device.
        device: DeviceId,
        /// The id.
        up_to: u64,
    },
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

impl Mailbox {
    /// Applies an event recorded at `seq`.
    pub fn apply(&mut self, seq: u64, event: &MailEvent) -> Result<(), StoreError> {
        match event {
            MailEvent::RosterStored { version, bytes } => {
                if self.roster.as_ref().is_some_and(|(v, _)| v >= version) {
                    return Err(corrupt("a roster stored over a newer one"));
                }
                self.roster = Some((*version, bytes.clone()));
            }
            MailEvent::PrekeysPublished { device, prekeys } => {
                let entry = self.prekeys.entry(*device).or_default();
                for p in prekeys {
                    if p.one_time {
                        entry.one_time.insert(p.id, p.clone());
                    } else if entry.last_resort.as_ref().is_none_or(|l| l.id != p.id) {
                        entry.last_resort = Some(p.clone());
                    }
                }
            }
            MailEvent::PrekeyTaken { device, id } => {
                self.prekeys
                    .get_mut(device)
                    .and_then(|p| p.one_time.remove(id))
                    .ok_or_else(|| corrupt("a prekey taken that was not there"))?;
            }
            MailEvent::EnvelopeStored {
                sender,
                digest,
                recipients,
                bytes,
            } => {
                if self.digests.insert(*digest, seq).is_some() {
                    return Err(corrupt("an envelope stored twice"));
                }
                self.delivery.insert(
                    seq,
                    Delivery {
                        sender: Some(*sender),
                        recipients: recipients.iter().copied().collect(),
                        ..Delivery::default()
                    },
                );
                self.envelopes.insert(
                    seq,
                    StoredEnvelope {
                        bytes: bytes.clone(),
                        pending: recipients.iter().copied().collect(),
                    },
                );
            }
            MailEvent::Read { device, ids } => {
                for id in ids {
                    if let Some(d) = self.delivery.get_mut(id)
                        && d.recipients.contains(device)
                    {
                        d.read.insert(*device);
                    }
                }
            }
            MailEvent::InboxAcked { device, up_to } => {
                let acked = self.acked.entry(*device).or_default();
                let before = *acked;
                if *up_to <= before {
                    return Ok(()); // nothing new: acks only move forward
                }
                *acked = *up_to;
                // Only what this ack adds: the ids up to the previous one
                // were marked then (the history is never walked again).
                let new = before + 1..=*up_to;
                for (_, d) in self.delivery.range_mut(new.clone()) {
                    if d.recipients.contains(device) {
                        d.delivered.insert(*device);
                    }
                }
                let done: Vec<u64> = self
                    .envelopes
                    .range_mut(new)
                    .filter_map(|(id, e)| {
                        e.pending.remove(device);
                        e.pending.is_empty().then_some(*id)
                    })
                    .collect();
                for id in done {
                    self.envelopes.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// Envelopes for `device` with an id above `after` (and above what it
    /// acknowledged), at most `limit`.
    pub fn inbox(&self, device: &DeviceId, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let from = after.max(self.acked.get(device).copied().unwrap_or(0));
        self.envelopes
            .range(from + 1..)
            .filter(|(_, e)| e.pending.contains(device))
            .take(limit)
            .map(|(id, e)| (*id, e.bytes.clone()))
            .collect()
    }

    /// The prekey to hand out for `device` now: the lowest-numbered unexpired
    /// one-time prekey, else the last-resort prekey if unexpired.
    pub fn prekey_for(&self, device: &DeviceId, now: u64) -> Option<&StoredPrekey> {
        let keys = self.prekeys.get(device)?;
        keys.one_time
            .values()
            .find(|p| p.expires_at > now)
            .or(keys.last_resort.as_ref().filter(|p| p.expires_at > now))
    }
}

// ---------------------------------------------------------------------------
// Encoding.

#[derive(Clone, PartialEq, Message)]
pub(crate) struct PrekeyRow {
    #[prost(bool, tag = "1")]
    one_time: bool,
    #[prost(uint32, tag = "2")]
    id: u32,
    #[prost(uint64, tag = "3")]
    expires_at: u64,
    #[prost(bytes = "vec", tag = "4")]
    signed: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    device: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct MailEventRow {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(uint64, tag = "2")]
    number: u64,
    #[prost(bytes = "vec", tag = "3")]
    bytes: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    device: Vec<u8>,
    #[prost(message, repeated, tag = "5")]
    prekeys: Vec<PrekeyRow>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    devices: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "7")]
    digest: Vec<u8>,
    #[prost(uint64, repeated, tag = "8")]
    ids: Vec<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct DeliveryRow {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bytes = "vec", tag = "2")]
    sender: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    recipients: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    delivered: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "5")]
    read: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct EnvelopeRow {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bytes = "vec", tag = "2")]
    bytes: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pending: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct DigestRow {
    #[prost(bytes = "vec", tag = "1")]
    digest: Vec<u8>,
    #[prost(uint64, tag = "2")]
    id: u64,
}

#[derive(Clone, PartialEq, Message)]
struct AckRow {
    #[prost(bytes = "vec", tag = "1")]
    device: Vec<u8>,
    #[prost(uint64, tag = "2")]
    up_to: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct MailboxRow {
    #[prost(uint64, tag = "1")]
    roster_version: u64,
    #[prost(bytes = "vec", tag = "2")]
    roster: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    prekeys: Vec<PrekeyRow>,
    #[prost(message, repeated, tag = "4")]
    envelopes: Vec<EnvelopeRow>,
    #[prost(message, repeated, tag = "5")]
    digests: Vec<DigestRow>,
    #[prost(message, repeated, tag = "6")]
    acked: Vec<AckRow>,
    #[prost(message, repeated, tag = "7")]
    delivery: Vec<DeliveryRow>,
}

fn device(bytes: &[u8]) -> Result<DeviceId, StoreError> {
    Ok(DeviceId::from_bytes(
        bytes
            .try_into()
            .map_err(|_| corrupt("device id of the wrong length"))?,
    ))
}

fn prekey_row(device: &DeviceId, p: &StoredPrekey) -> PrekeyRow {
    PrekeyRow {
        one_time: p.one_time,
        id: p.id,
        expires_at: p.expires_at,
        signed: p.signed.clone(),
        device: device.as_bytes().to_vec(),
    }
}

fn prekey_from(r: &PrekeyRow) -> StoredPrekey {
    StoredPrekey {
        one_time: r.one_time,
        id: r.id,
        expires_at: r.expires_at,
        signed: r.signed.clone(),
    }
}

const ROSTER: u32 = 1;
const PUBLISHED: u32 = 2;
const TAKEN: u32 = 3;
const STORED: u32 = 4;
const ACKED: u32 = 5;
const READ: u32 = 6;

impl MailEvent {
    pub(crate) fn to_row(&self) -> MailEventRow {
        let mut row = MailEventRow::default();
        match self {
            MailEvent::RosterStored { version, bytes } => {
                row.kind = ROSTER;
                row.number = *version;
                row.bytes = bytes.clone();
            }
            MailEvent::PrekeysPublished { device, prekeys } => {
                row.kind = PUBLISHED;
                row.device = device.as_bytes().to_vec();
                row.prekeys = prekeys.iter().map(|p| prekey_row(device, p)).collect();
            }
            MailEvent::PrekeyTaken { device, id } => {
                row.kind = TAKEN;
                row.device = device.as_bytes().to_vec();
                row.number = u64::from(*id);
            }
            MailEvent::EnvelopeStored {
                sender,
                digest,
                recipients,
                bytes,
            } => {
                row.kind = STORED;
                row.device = sender.as_bytes().to_vec();
                row.digest = digest.to_vec();
                row.devices = recipients.iter().map(|d| d.as_bytes().to_vec()).collect();
                row.bytes = bytes.clone();
            }
            MailEvent::Read { device, ids } => {
                row.kind = READ;
                row.device = device.as_bytes().to_vec();
                row.ids = ids.clone();
            }
            MailEvent::InboxAcked { device, up_to } => {
                row.kind = ACKED;
                row.device = device.as_bytes().to_vec();
                row.number = *up_to;
            }
        }
        row
    }

    pub(crate) fn from_row(row: MailEventRow) -> Result<MailEvent, StoreError> {
        Ok(match row.kind {
            ROSTER => MailEvent::RosterStored {
                version: row.number,
                bytes: row.bytes,
            },
            PUBLISHED => MailEvent::PrekeysPublished {
                device: device(&row.device)?,
                prekeys: row.prekeys.iter().map(prekey_from).collect(),
            },
            TAKEN => MailEvent::PrekeyTaken {
                device: device(&row.device)?,
                id: u32::try_from(row.number).map_err(|_| corrupt("prekey id out of range"))?,
            },
            STORED => MailEvent::EnvelopeStored {
                sender: device(&row.device)?,
                digest: row
                    .digest
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("digest of the wrong length"))?,
                recipients: row
                    .devices
                    .iter()
                    .map(|d| device(d))
                    .collect::<Result<_, _>>()?,
                bytes: row.bytes,
            },
            READ => MailEvent::Read {
                device: device(&row.device)?,
                ids: row.ids,
            },
            ACKED => MailEvent::InboxAcked {
                device: device(&row.device)?,
                up_to: row.number,
            },
            _ => return Err(corrupt("unknown messaging event")),
        })
    }
}

impl Mailbox {
    pub(crate) fn to_row(&self) -> MailboxRow {
        let mut prekeys = Vec::new();
        for (d, p) in &self.prekeys {
            prekeys.extend(p.last_resort.iter().map(|p| prekey_row(d, p)));
            prekeys.extend(p.one_time.values().map(|p| prekey_row(d, p)));
        }
        MailboxRow {
            roster_version: self.roster.as_ref().map_or(0, |(v, _)| *v),
            roster: self
                .roster
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_default(),
            prekeys,
            envelopes: self
                .envelopes
                .iter()
                .map(|(id, e)| EnvelopeRow {
                    id: *id,
                    bytes: e.bytes.clone(),
                    pending: e.pending.iter().map(|d| d.as_bytes().to_vec()).collect(),
                })
                .collect(),
            digests: self
                .digests
                .iter()
                .map(|(d, id)| DigestRow {
                    digest: d.to_vec(),
                    id: *id,
                })
                .collect(),
            acked: self
                .acked
                .iter()
                .map(|(d, up_to)| AckRow {
                    device: d.as_bytes().to_vec(),
                    up_to: *up_to,
                })
                .collect(),
            delivery: self
                .delivery
                .iter()
                .map(|(id, d)| DeliveryRow {
                    id: *id,
                    sender: d.sender.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
                    recipients: d.recipients.iter().map(|x| x.as_bytes().to_vec()).collect(),
                    delivered: d.delivered.iter().map(|x| x.as_bytes().to_vec()).collect(),
                    read: d.read.iter().map(|x| x.as_bytes().to_vec()).collect(),
                })
                .collect(),
        }
    }

    pub(crate) fn from_row(row: MailboxRow) -> Result<Mailbox, StoreError> {
        let mut m = Mailbox {
            roster: (!row.roster.is_empty()).then_some((row.roster_version, row.roster)),
            ..Mailbox::default()
        };
        for p in &row.prekeys {
            let entry = m.prekeys.entry(device(&p.device)?).or_default();
            if p.one_time {
                entry.one_time.insert(p.id, prekey_from(p));
            } else {
                entry.last_resort = Some(prekey_from(p));
            }
        }
        for e in row.envelopes {
            m.envelopes.insert(
                e.id,
                StoredEnvelope {
                    bytes: e.bytes,
                    pending: e
                        .pending
                        .iter()
                        .map(|d| device(d))
                        .collect::<Result<_, _>>()?,
                },
            );
        }
        for d in row.digests {
            let digest: [u8; 32] = d
                .digest
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("digest of the wrong length"))?;
            m.digests.insert(digest, d.id);
        }
        for a in row.acked {
            m.acked.insert(device(&a.device)?, a.up_to);
        }
        let set = |v: &[Vec<u8>]| {
            v.iter()
                .map(|d| device(d))
                .collect::<Result<BTreeSet<_>, _>>()
        };
        for d in row.delivery {
            m.delivery.insert(
                d.id,
                Delivery {
                    sender: (!d.sender.is_empty())
                        .then(|| device(&d.sender))
                        .transpose()?,
                    recipients: set(&d.recipients)?,
                    delivered: set(&d.delivered)?,
                    read: set(&d.read)?,
                },
            );
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(b: u8) -> DeviceId {
        DeviceId::from_bytes([b; 16])
    }

    #[test]
    fn envelopes_wait_until_every_recipient_acknowledges() {
        let mut m = Mailbox::default();
        let (a, b, c) = (dev(1), dev(2), dev(3));
        let stored = |n: u8, recipients: Vec<DeviceId>| MailEvent::EnvelopeStored {
            sender: dev(9),
            digest: [n; 32],
            recipients,
            bytes: format!("env{n}").into_bytes(),
        };
        let ack = |device, up_to| MailEvent::InboxAcked { device, up_to };
        m.apply(10, &stored(1, vec![a, b])).expect("apply");
        assert_eq!(m.inbox(&a, 0, 10), vec![(10, b"env1".to_vec())]);
        assert!(m.inbox(&c, 0, 10).is_empty());
        m.apply(11, &ack(a, 10)).expect("apply");
        assert!(m.inbox(&a, 0, 10).is_empty());
        assert_eq!(m.inbox(&b, 0, 10).len(), 1);
        m.apply(12, &ack(b, 10)).expect("apply");
        assert!(m.envelopes.is_empty(), "forgotten once everyone has it");
        assert!(
            m.digests.contains_key(&[1; 32]),
            "still recognised as a retry"
        );
        // A later envelope: an old or repeated ack changes nothing; a new
        // one marks only what it adds.
        m.apply(13, &stored(2, vec![a, c])).expect("apply");
        m.apply(14, &ack(a, 10)).expect("apply");
        m.apply(15, &ack(a, 5)).expect("apply");
        assert_eq!(m.acked[&a], 10);
        assert_eq!(m.inbox(&a, 0, 10), vec![(13, b"env2".to_vec())]);
        assert!(!m.delivery[&13].delivered.contains(&a));
        m.apply(16, &ack(a, 13)).expect("apply");
        assert!(m.inbox(&a, 0, 10).is_empty());
        assert_eq!(m.delivery[&13].delivered, [a].into());
        assert_eq!(m.delivery[&10].delivered, [a, b].into());
        assert_eq!(m.inbox(&c, 0, 10).len(), 1, "c still has it");
        // Round trip through events and snapshots.
        let round = Mailbox::from_row(m.to_row()).expect("decodes");
        assert_eq!(round, m);
    }

    #[test]
    fn one_time_prekeys_first_then_the_last_resort() {
        let mut m = Mailbox::default();
        let a = dev(1);
        let p = |one_time, id, expires_at| StoredPrekey {
            one_time,
            id,
            expires_at,
            signed: vec![id as u8],
        };
        let published = MailEvent::PrekeysPublished {
            device: a,
            prekeys: vec![p(false, 1, 100), p(true, 2, 100), p(true, 3, 50)],
        };
        let row = published.to_row();
        assert_eq!(MailEvent::from_row(row).expect("decodes"), published);
        m.apply(1, &published).expect("apply");
        assert_eq!(m.prekey_for(&a, 10).map(|p| p.id), Some(2));
        m.apply(2, &MailEvent::PrekeyTaken { device: a, id: 2 })
            .expect("apply");
        assert_eq!(m.prekey_for(&a, 10).map(|p| p.id), Some(3));
        assert_eq!(
            m.prekey_for(&a, 60).map(|p| p.id),
            Some(1),
            "expired one-time skipped"
        );
        assert_eq!(m.prekey_for(&a, 100), None);
        assert!(
            m.apply(3, &MailEvent::PrekeyTaken { device: a, id: 2 })
                .is_err()
        );
    }
}
