//! What the server keeps for end-to-end messaging, derived from the log:
//! the newest signed roster, each device's published prekeys, and
//! envelopes waiting for their recipients.
//!
//! Ids that devices see are never log positions (which would show them
//! how many records anything else wrote, a duress check-in included):
//! each recipient numbers the envelopes it receives 1, 2, 3, ... (its
//! inbox ids) and each sender the envelopes it sends (its sent ids).
//! Envelopes stored before this numbering keep their log position as both
//! ids, and a device's next inbox id is always above every id it has seen
//! or acknowledged, so cursors held by devices stay valid.
//!
//! The server can open none of it. It keeps the roster only to serve it
//! (clients check the organisation's signature), checks that prekeys and
//! envelopes are signed by the device that sends them, and routes
//! envelopes by the recipient ids written in them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hotline_proto::DeviceId;

use super::ApplyError;

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
    /// Derived from `delivery`: each device's inbox ids, with the envelope
    /// (log position) each names.
    inbox_ids: HashMap<DeviceId, BTreeMap<u64, u64>>,
    /// Derived from `delivery`: each sender's sent ids, with the envelope
    /// each names.
    sent_ids: HashMap<DeviceId, BTreeMap<u64, u64>>,
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
    /// Each recipient's inbox id for it.
    pub inbox_ids: BTreeMap<DeviceId, u64>,
    /// The sender's sent id for it.
    pub sent_id: u64,
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
        /// Numbered per device (inbox and sent ids); `false` in records
        /// written before, whose ids are the log position.
        numbered: bool,
    },
    /// A device showed these envelopes to its person.
    Read {
        /// The device.
        device: DeviceId,
        /// The envelopes' inbox ids on that device.
        ids: Vec<u64>,
    },
    /// A device acknowledged its inbox up to an inbox id.
    InboxAcked {
        /// The device.
        device: DeviceId,
        /// The id.
        up_to: u64,
    },
}

impl Mailbox {
    /// Applies an event recorded at `seq`.
    pub fn apply(&mut self, seq: u64, event: &MailEvent) -> Result<(), ApplyError> {
        match event {
            MailEvent::RosterStored { version, bytes } => {
                if self.roster.as_ref().is_some_and(|(v, _)| v >= version) {
                    return Err(ApplyError("a roster stored over a newer one"));
                }
                self.roster = Some((*version, bytes.clone()));
            }
            // A device holding no prekey has no entry (a snapshot cannot
            // hold an empty one, so replay must not make one either).
            MailEvent::PrekeysPublished { prekeys, .. } if prekeys.is_empty() => {}
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
                let keys = self
                    .prekeys
                    .get_mut(device)
                    .ok_or(ApplyError("a prekey taken that was not there"))?;
                keys.one_time
                    .remove(id)
                    .ok_or(ApplyError("a prekey taken that was not there"))?;
                if keys.one_time.is_empty() && keys.last_resort.is_none() {
                    self.prekeys.remove(device);
                }
            }
            MailEvent::EnvelopeStored {
                sender,
                digest,
                recipients,
                bytes,
                numbered,
            } => {
                // Its log position names it in every index: one already
                // taken (a snapshot that holds records past its own
                // position) would leave the old ids pointing at the new
                // envelope. Found by fuzzing.
                if self.delivery.contains_key(&seq) || self.envelopes.contains_key(&seq) {
                    return Err(ApplyError("an envelope stored at a position already taken"));
                }
                if self.digests.insert(*digest, seq).is_some() {
                    return Err(ApplyError("an envelope stored twice"));
                }
                let recipients: BTreeSet<DeviceId> = recipients.iter().copied().collect();
                let inbox_ids = recipients
                    .iter()
                    .map(|r| {
                        (
                            *r,
                            if *numbered {
                                self.next_inbox_id(r)
                            } else {
                                seq
                            },
                        )
                    })
                    .collect();
                let sent_id = if *numbered {
                    self.sent_ids
                        .get(sender)
                        .and_then(|m| m.keys().next_back())
                        .map_or(1, |last| last + 1)
                } else {
                    seq
                };
                let delivery = Delivery {
                    sender: Some(*sender),
                    recipients: recipients.clone(),
                    inbox_ids,
                    sent_id,
                    ..Delivery::default()
                };
                self.index(seq, &delivery);
                self.delivery.insert(seq, delivery);
                self.envelopes.insert(
                    seq,
                    StoredEnvelope {
                        bytes: bytes.clone(),
                        pending: recipients,
                    },
                );
            }
            MailEvent::Read { device, ids } => {
                for id in ids {
                    let Some(seq) = self.envelope_of_inbox_id(device, *id) else {
                        continue;
                    };
                    if let Some(d) = self.delivery.get_mut(&seq)
                        && d.recipients.contains(device)
                    {
                        d.read.insert(*device);
                    }
                }
            }
            MailEvent::InboxAcked { device, up_to } => {
                let up_to = *up_to;
                let acked = self.acked.entry(*device).or_default();
                let before = *acked;
                if up_to <= before {
                    return Ok(()); // nothing new: acks only move forward
                }
                *acked = up_to;
                // Only what this ack adds: the ids up to the previous one
                // were marked then (the history is never walked again).
                let new: Vec<u64> = self
                    .inbox_ids
                    .get(device)
                    .map(|m| m.range(before + 1..=up_to).map(|(_, seq)| *seq).collect())
                    .unwrap_or_default();
                for seq in new {
                    if let Some(d) = self.delivery.get_mut(&seq) {
                        d.delivered.insert(*device);
                    }
                    if let Some(e) = self.envelopes.get_mut(&seq) {
                        e.pending.remove(device);
                        if e.pending.is_empty() {
                            self.envelopes.remove(&seq);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Envelopes for `device` with an inbox id above `after` (and above
    /// what it acknowledged), at most `limit`, with their inbox ids.
    pub fn inbox(&self, device: &DeviceId, after: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
        let from = after.max(self.acked.get(device).copied().unwrap_or(0));
        let Some(ids) = self.inbox_ids.get(device) else {
            return Vec::new();
        };
        ids.range(from.saturating_add(1)..)
            .filter_map(|(id, seq)| {
                let e = self.envelopes.get(seq)?;
                e.pending.contains(device).then(|| (*id, e.bytes.clone()))
            })
            .take(limit)
            .collect()
    }

    /// The highest inbox id `device` has been given or acknowledged (0:
    /// none): no acknowledgement goes past it.
    pub fn last_inbox_id(&self, device: &DeviceId) -> u64 {
        let last = self
            .inbox_ids
            .get(device)
            .and_then(|m| m.keys().next_back().copied())
            .unwrap_or(0);
        last.max(self.acked.get(device).copied().unwrap_or(0))
    }

    /// The inbox id `device` will give the next envelope it receives: above
    /// every inbox id it has and every id it acknowledged.
    fn next_inbox_id(&self, device: &DeviceId) -> u64 {
        self.last_inbox_id(device).saturating_add(1)
    }

    /// Adds the ids of the envelope at `seq` to the indexes.
    fn index(&mut self, seq: u64, d: &Delivery) {
        for (device, id) in &d.inbox_ids {
            self.inbox_ids.entry(*device).or_default().insert(*id, seq);
        }
        if let Some(sender) = d.sender {
            self.sent_ids
                .entry(sender)
                .or_default()
                .insert(d.sent_id, seq);
        }
    }

    /// The mailbox with `delivery` states and the other parts given, with
    /// the id indexes derived from them (as when a snapshot is read).
    pub fn with_indexes(mut self) -> Mailbox {
        self.inbox_ids.clear();
        self.sent_ids.clear();
        let delivery = std::mem::take(&mut self.delivery);
        for (seq, d) in &delivery {
            self.index(*seq, d);
        }
        self.delivery = delivery;
        self
    }

    /// The envelope (log position) `device`'s inbox id `id` names.
    pub fn envelope_of_inbox_id(&self, device: &DeviceId, id: u64) -> Option<u64> {
        self.inbox_ids.get(device)?.get(&id).copied()
    }

    /// The envelope (log position) `sender`'s sent id `id` names.
    pub fn envelope_of_sent_id(&self, sender: &DeviceId, id: u64) -> Option<u64> {
        self.sent_ids.get(sender)?.get(&id).copied()
    }

    /// The id `viewer` knows the envelope at `seq` by: its sent id if it
    /// sent it, else its inbox id if it received it, else 0.
    pub fn id_seen_by(&self, seq: u64, viewer: &DeviceId) -> u64 {
        let Some(d) = self.delivery.get(&seq) else {
            return 0;
        };
        if d.sender == Some(*viewer) {
            return d.sent_id;
        }
        d.inbox_ids.get(viewer).copied().unwrap_or(0)
    }

    /// How many unexpired one-time prekeys of `device` are left to hand out.
    pub fn one_time_left(&self, device: &DeviceId, now: u64) -> usize {
        self.prekeys.get(device).map_or(0, |keys| {
            keys.one_time
                .values()
                .filter(|p| p.expires_at > now)
                .count()
        })
    }

    /// The unexpired last-resort prekey of `device`, if it has one.
    pub fn last_resort_for(&self, device: &DeviceId, now: u64) -> Option<&StoredPrekey> {
        let keys = self.prekeys.get(device)?;
        keys.last_resort.as_ref().filter(|p| p.expires_at > now)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(b: u8) -> DeviceId {
        DeviceId::from_bytes([b; 16])
    }

    /// Found by fuzzing (fuzz/corpus/store_codec/crash-envelope-position-taken):
    /// an envelope applied at a log position that a snapshot already holds
    /// one at replaced it and left the old one's ids pointing at it.
    #[test]
    fn an_envelope_at_a_position_already_taken_is_refused() {
        let mut m = Mailbox::default();
        let stored = |n: u8, recipient: DeviceId| MailEvent::EnvelopeStored {
            sender: dev(9),
            digest: [n; 32],
            recipients: vec![recipient],
            bytes: vec![n],
            numbered: true,
        };
        m.apply(23, &stored(1, dev(1))).expect("apply");
        let before = m.clone();
        assert_eq!(
            m.apply(23, &stored(2, dev(2))),
            Err(ApplyError("an envelope stored at a position already taken"))
        );
        assert_eq!(m, before, "nothing changed");
        assert_eq!(m.envelope_of_inbox_id(&dev(1), 1), Some(23));
        assert_eq!(m.envelope_of_inbox_id(&dev(2), 1), None);
    }

    /// Found by fuzzing (fuzz/corpus/store_codec/crash-empty-prekeys): an
    /// empty list of prekeys published, or the last one-time prekey of a
    /// device without a last-resort one taken, left an empty entry that a
    /// snapshot does not hold, so replay and snapshot disagreed.
    #[test]
    fn a_device_without_prekeys_has_no_entry() {
        let mut m = Mailbox::default();
        m.apply(
            1,
            &MailEvent::PrekeysPublished {
                device: dev(1),
                prekeys: Vec::new(),
            },
        )
        .expect("apply");
        assert!(m.prekeys.is_empty());
        let one = StoredPrekey {
            one_time: true,
            id: 3,
            expires_at: 10,
            signed: vec![3],
        };
        m.apply(
            2,
            &MailEvent::PrekeysPublished {
                device: dev(1),
                prekeys: vec![one],
            },
        )
        .expect("apply");
        m.apply(
            3,
            &MailEvent::PrekeyTaken {
                device: dev(1),
                id: 3,
            },
        )
        .expect("apply");
        assert!(m.prekeys.is_empty(), "{:?}", m.prekeys);
        assert_eq!(
            m.apply(
                4,
                &MailEvent::PrekeyTaken {
                    device: dev(1),
                    id: 3
                }
            ),
            Err(ApplyError("a prekey taken that was not there"))
        );
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
            numbered: false,
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
    }

    /// Found by the end-to-end property test: an acknowledgement of
    /// u64::MAX left no inbox id for the device's next envelope, and
    /// storing one overflowed (a panic after its record was written, in a
    /// debug build). The server now refuses such an ack; one in a log
    /// written before that is replayed without a panic.
    #[test]
    fn an_envelope_after_an_ack_of_the_largest_id_is_stored() {
        let mut m = Mailbox::default();
        let (a, s) = (dev(1), dev(9));
        m.apply(
            10,
            &MailEvent::InboxAcked {
                device: a,
                up_to: u64::MAX,
            },
        )
        .expect("apply");
        m.apply(
            11,
            &MailEvent::EnvelopeStored {
                sender: s,
                digest: [1; 32],
                recipients: vec![a],
                bytes: vec![1],
                numbered: true,
            },
        )
        .expect("apply");
        assert_eq!(m.inbox(&a, 0, 10), vec![(u64::MAX, vec![1])]);
    }

    #[test]
    fn devices_see_their_own_numbering_never_log_positions() {
        let mut m = Mailbox::default();
        let (a, b, s) = (dev(1), dev(2), dev(9));
        let stored = |n: u8, recipients: Vec<DeviceId>, numbered| MailEvent::EnvelopeStored {
            sender: s,
            digest: [n; 32],
            recipients,
            bytes: vec![n],
            numbered,
        };
        // A record of an earlier build keeps its log position as its ids.
        m.apply(40, &stored(1, vec![a], false)).expect("apply");
        assert_eq!(m.inbox(&a, 0, 10), vec![(40, vec![1])]);
        // b acknowledged up to 50 under the old numbering.
        m.apply(
            41,
            &MailEvent::InboxAcked {
                device: b,
                up_to: 50,
            },
        )
        .expect("apply");
        // Numbered envelopes, far apart in the log: ids count per device,
        // above every id the device has seen or acknowledged.
        m.apply(100, &stored(2, vec![a, b], true)).expect("apply");
        m.apply(5000, &stored(3, vec![a], true)).expect("apply");
        assert_eq!(
            m.inbox(&a, 0, 10),
            vec![(40, vec![1]), (41, vec![2]), (42, vec![3])]
        );
        assert_eq!(m.inbox(&a, 40, 10).len(), 2, "the cursor `after` works");
        assert_eq!(m.inbox(&b, 0, 10), vec![(51, vec![2])]);
        // The sender counts what it sent: 40 (old), then 41, 42.
        assert_eq!(m.id_seen_by(100, &s), 41);
        assert_eq!(m.id_seen_by(5000, &s), 42);
        assert_eq!(m.envelope_of_sent_id(&s, 42), Some(5000));
        assert_eq!(m.id_seen_by(100, &b), 51);
        assert_eq!(m.id_seen_by(100, &dev(7)), 0, "not its message");
        // Reads and acks are in the device's own numbering.
        m.apply(
            5001,
            &MailEvent::Read {
                device: b,
                ids: vec![51],
            },
        )
        .expect("apply");
        assert_eq!(m.delivery[&100].read, [b].into());
        m.apply(
            5002,
            &MailEvent::InboxAcked {
                device: a,
                up_to: 41,
            },
        )
        .expect("apply");
        assert_eq!(m.inbox(&a, 0, 10), vec![(42, vec![3])]);
        assert_eq!(m.delivery[&100].delivered, [a].into());
        // A snapshot holds the numbering; the indexes are derived again.
        let again = m.clone().with_indexes();
        assert_eq!(again, m);
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
        m.apply(1, &published).expect("apply");
        assert_eq!(m.prekey_for(&a, 10).map(|p| p.id), Some(2));
        m.apply(2, &MailEvent::PrekeyTaken { device: a, id: 2 })
            .expect("apply");
        assert_eq!(m.prekey_for(&a, 10).map(|p| p.id), Some(3));
        assert_eq!(m.one_time_left(&a, 10), 1);
        assert_eq!(m.one_time_left(&a, 60), 0, "an expired one is not counted");
        assert_eq!(m.last_resort_for(&a, 10).map(|p| p.id), Some(1));
        assert_eq!(m.one_time_left(&dev(9), 10), 0);
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
