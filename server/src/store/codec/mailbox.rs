//! Stored forms of the messaging state: roster, prekeys, envelopes.

use hotline_proto::DeviceId;
use prost::Message;

use super::{CodecError, device_id, device_ids, digest, id_bytes};
use crate::domain::mailbox::{Delivery, MailEvent, Mailbox, StoredEnvelope, StoredPrekey};

#[derive(Clone, PartialEq, Message)]
pub(super) struct PrekeyRow {
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
pub(super) struct MailEventRow {
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
    /// An envelope numbered per device (absent in earlier records: its
    /// ids are its log position).
    #[prost(bool, tag = "9")]
    numbered: bool,
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
    /// Each recipient's inbox id, in the order of `recipients` (absent in
    /// earlier snapshots: the log position).
    #[prost(uint64, repeated, tag = "6")]
    inbox_ids: Vec<u64>,
    /// The sender's sent id (absent in earlier snapshots: the log
    /// position).
    #[prost(uint64, tag = "7")]
    sent_id: u64,
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
pub(super) struct MailboxRow {
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

pub(super) fn event_row(event: &MailEvent) -> MailEventRow {
    let mut row = MailEventRow::default();
    match event {
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
            numbered,
        } => {
            row.kind = STORED;
            row.device = sender.as_bytes().to_vec();
            row.digest = digest.to_vec();
            row.devices = id_bytes(recipients);
            row.bytes = bytes.clone();
            row.numbered = *numbered;
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

pub(super) fn event_from(row: MailEventRow) -> Result<MailEvent, CodecError> {
    Ok(match row.kind {
        // A roster is never stored without its bytes (the server refuses
        // one whose body does not read), and a snapshot holds "no roster"
        // as empty bytes: an empty one here would survive replay and be
        // lost at the next snapshot. Found by fuzzing.
        ROSTER if row.bytes.is_empty() => {
            return Err(CodecError("a roster stored without its bytes"));
        }
        ROSTER => MailEvent::RosterStored {
            version: row.number,
            bytes: row.bytes,
        },
        PUBLISHED => MailEvent::PrekeysPublished {
            device: device_id(&row.device)?,
            prekeys: row.prekeys.iter().map(prekey_from).collect(),
        },
        TAKEN => MailEvent::PrekeyTaken {
            device: device_id(&row.device)?,
            id: u32::try_from(row.number).map_err(|_| CodecError("prekey id out of range"))?,
        },
        STORED => MailEvent::EnvelopeStored {
            sender: device_id(&row.device)?,
            digest: digest(&row.digest)?,
            recipients: device_ids(&row.devices)?,
            bytes: row.bytes,
            numbered: row.numbered,
        },
        READ => MailEvent::Read {
            device: device_id(&row.device)?,
            ids: row.ids,
        },
        ACKED => MailEvent::InboxAcked {
            device: device_id(&row.device)?,
            up_to: row.number,
        },
        _ => return Err(CodecError("unknown messaging event")),
    })
}

pub(super) fn mailbox_row(m: &Mailbox) -> MailboxRow {
    let mut prekeys = Vec::new();
    // Hash maps in a fixed order: the same state, the same bytes.
    let mut devices: Vec<_> = m.prekeys.iter().collect();
    devices.sort_by_key(|(d, _)| **d);
    for (d, p) in devices {
        prekeys.extend(p.last_resort.iter().map(|p| prekey_row(d, p)));
        prekeys.extend(p.one_time.values().map(|p| prekey_row(d, p)));
    }
    MailboxRow {
        roster_version: m.roster.as_ref().map_or(0, |(v, _)| *v),
        roster: m
            .roster
            .as_ref()
            .map(|(_, b)| b.clone())
            .unwrap_or_default(),
        prekeys,
        envelopes: m
            .envelopes
            .iter()
            .map(|(id, e)| EnvelopeRow {
                id: *id,
                bytes: e.bytes.clone(),
                pending: id_bytes(&e.pending),
            })
            .collect(),
        digests: m
            .digests
            .iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .map(|(d, id)| DigestRow {
                digest: d.to_vec(),
                id: *id,
            })
            .collect(),
        acked: m
            .acked
            .iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .map(|(d, up_to)| AckRow {
                device: d.as_bytes().to_vec(),
                up_to: *up_to,
            })
            .collect(),
        delivery: m
            .delivery
            .iter()
            .map(|(id, d)| DeliveryRow {
                id: *id,
                sender: d.sender.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
                recipients: id_bytes(&d.recipients),
                delivered: id_bytes(&d.delivered),
                read: id_bytes(&d.read),
                // Ids equal to the log position (envelopes of earlier
                // builds) are left out, as earlier snapshots have them.
                inbox_ids: if d.inbox_ids.values().all(|n| n == id) {
                    Vec::new()
                } else {
                    d.recipients
                        .iter()
                        .map(|r| d.inbox_ids.get(r).copied().unwrap_or(*id))
                        .collect()
                },
                sent_id: if d.sent_id == *id { 0 } else { d.sent_id },
            })
            .collect(),
    }
}

pub(super) fn mailbox_from(row: MailboxRow) -> Result<Mailbox, CodecError> {
    let mut m = Mailbox::default();
    m.roster = (!row.roster.is_empty()).then_some((row.roster_version, row.roster));
    for p in &row.prekeys {
        let entry = m.prekeys.entry(device_id(&p.device)?).or_default();
        if p.one_time {
            entry.one_time.insert(p.id, prekey_from(p));
        } else {
            entry.last_resort = Some(prekey_from(p));
        }
    }
    for e in row.envelopes {
        let envelope = StoredEnvelope {
            bytes: e.bytes,
            pending: device_ids(&e.pending)?,
        };
        m.envelopes.insert(e.id, envelope);
    }
    for d in row.digests {
        m.digests.insert(digest(&d.digest)?, d.id);
    }
    for a in row.acked {
        m.acked.insert(device_id(&a.device)?, a.up_to);
    }
    for d in row.delivery {
        let recipients: Vec<DeviceId> = device_ids(&d.recipients)?;
        let inbox_ids = match d.inbox_ids.len() {
            0 => recipients.iter().map(|r| (*r, d.id)).collect(),
            n if n == recipients.len() => recipients.iter().copied().zip(d.inbox_ids).collect(),
            _ => return Err(CodecError("inbox ids do not match the recipients")),
        };
        let delivery = Delivery {
            sender: (!d.sender.is_empty())
                .then(|| device_id(&d.sender))
                .transpose()?,
            recipients: recipients.into_iter().collect(),
            delivered: device_ids(&d.delivered)?,
            read: device_ids(&d.read)?,
            inbox_ids,
            sent_id: if d.sent_id == 0 { d.id } else { d.sent_id },
        };
        m.delivery.insert(d.id, delivery);
    }
    Ok(m.with_indexes())
}
