//! The message history a device keeps: every message it received and
//! opened, and every message and SOS it sent, so that a message does not
//! vanish once it has been shown. It lives in `messages.sealed`, sealed
//! under the device's storage key like the rest of its state (see
//! [`crate::messenger`]), and holds the newest [`MAX_ENTRIES`] entries.
//!
//! Entries are kept in the order this device learnt of them, never by the
//! server's ids (which are opaque to a device).

use hotline_proto::{DeviceId, Role};
use prost::Message;

use crate::error::ClientError;

/// How many entries are kept; the oldest go first.
pub const MAX_ENTRIES: usize = 5_000;

/// One message in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The message id inside the envelope (random, chosen by its sender).
    pub message_id: [u8; 16],
    /// This device sent it (else it received it).
    pub sent: bool,
    /// Received: the sender. Sent: the one device it also went to, if any
    /// (besides the staff on the roster).
    pub peer: Option<DeviceId>,
    /// Received: the sender's role on the roster (`None`: not on it, a
    /// defender).
    pub sender_role: Option<Role>,
    /// The sender's clock when it was sent.
    pub timestamp: u64,
    /// The alert whose thread it belongs to (0: none).
    pub thread: u64,
    /// The message.
    pub body: Vec<u8>,
    /// The server's id: the inbox id of a message received, the id of a
    /// message sent, the message id of an SOS's alert.
    pub server_id: u64,
    /// It is an SOS (the text an alert was raised with).
    pub sos: bool,
    /// It has been shown to the person (by `inbox`, `messages` or `watch`).
    pub shown: bool,
    /// Received: signed by the sender's panic key (an SOS sent without the
    /// passphrase: whoever held the phone could have sent it).
    pub via_panic_key: bool,
}

/// The history as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, Message)]
struct EntryRow {
    #[prost(bytes = "vec", tag = "1")]
    message_id: Vec<u8>,
    #[prost(bool, tag = "2")]
    sent: bool,
    #[prost(bytes = "vec", tag = "3")]
    peer: Vec<u8>,
    /// The sender's role ("" : not on the roster).
    #[prost(string, tag = "4")]
    role: String,
    #[prost(uint64, tag = "5")]
    timestamp: u64,
    #[prost(uint64, tag = "6")]
    thread: u64,
    #[prost(bytes = "vec", tag = "7")]
    body: Vec<u8>,
    #[prost(uint64, tag = "8")]
    server_id: u64,
    #[prost(bool, tag = "9")]
    sos: bool,
    #[prost(bool, tag = "10")]
    shown: bool,
    #[prost(bool, tag = "11")]
    via_panic_key: bool,
}

#[derive(Clone, PartialEq, Message)]
struct HistoryFile {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<EntryRow>,
}

impl History {
    /// Reads the stored form.
    pub(crate) fn decode(bytes: &[u8]) -> Result<History, ClientError> {
        let damaged = || ClientError::State("messages.sealed is damaged".into());
        let file = HistoryFile::decode(bytes).map_err(|_| damaged())?;
        let mut entries = Vec::with_capacity(file.entries.len());
        for row in file.entries {
            entries.push(Entry {
                message_id: row
                    .message_id
                    .as_slice()
                    .try_into()
                    .map_err(|_| damaged())?,
                sent: row.sent,
                peer: match row.peer.len() {
                    0 => None,
                    _ => Some(DeviceId::from_bytes(
                        row.peer.as_slice().try_into().map_err(|_| damaged())?,
                    )),
                },
                sender_role: match row.role.as_str() {
                    "" => None,
                    r => Some(r.parse().map_err(|_| damaged())?),
                },
                timestamp: row.timestamp,
                thread: row.thread,
                body: row.body,
                server_id: row.server_id,
                sos: row.sos,
                shown: row.shown,
                via_panic_key: row.via_panic_key,
            });
        }
        Ok(History { entries })
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        HistoryFile {
            entries: self
                .entries
                .iter()
                .map(|e| EntryRow {
                    message_id: e.message_id.to_vec(),
                    sent: e.sent,
                    peer: e.peer.map(|p| p.as_bytes().to_vec()).unwrap_or_default(),
                    role: e.sender_role.map(|r| r.to_string()).unwrap_or_default(),
                    timestamp: e.timestamp,
                    thread: e.thread,
                    body: e.body.clone(),
                    server_id: e.server_id,
                    sos: e.sos,
                    shown: e.shown,
                    via_panic_key: e.via_panic_key,
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Adds `entry`, unless the same message (same direction and id) is
    /// held already: a message recorded twice (a retry after a crash)
    /// shows once.
    pub(crate) fn add(&mut self, entry: Entry) {
        if self
            .entries
            .iter()
            .any(|e| e.sent == entry.sent && e.message_id == entry.message_id)
        {
            return;
        }
        self.entries.push(entry);
        if self.entries.len() > MAX_ENTRIES {
            let extra = self.entries.len() - MAX_ENTRIES;
            self.entries.drain(..extra);
        }
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries of the thread of `alert`, oldest first.
    pub fn thread(&self, alert: u64) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.thread == alert).collect()
    }

    /// Marks the received messages with these ids as shown; returns how
    /// many changed.
    pub(crate) fn mark_shown(&mut self, ids: &[[u8; 16]]) -> usize {
        let mut n = 0;
        for e in &mut self.entries {
            if !e.sent && !e.shown && ids.contains(&e.message_id) {
                e.shown = true;
                n += 1;
            }
        }
        n
    }

    /// Files a received message outside any thread whose inbox id is
    /// `envelope_id` (the text an alert was raised with, as staff receive
    /// it) in the thread of `alert`; returns whether one was.
    pub(crate) fn link(&mut self, envelope_id: u64, alert: u64) -> bool {
        let mut changed = false;
        for e in &mut self.entries {
            if !e.sent && e.thread == 0 && envelope_id != 0 && e.server_id == envelope_id {
                e.thread = alert;
                e.sos = true;
                changed = true;
            }
        }
        changed
    }
}

/// What the fuzz targets read `messages.sealed` with: [`History::decode`],
/// and the bytes the device would write back.
#[doc(hidden)]
pub fn fuzz_history_file(plain: &[u8]) -> Result<Vec<u8>, ClientError> {
    History::decode(plain).map(|h| h.encode())
}

/// The bytes of a history holding `entries`, added as the device adds
/// them: seeds for the fuzz targets.
#[doc(hidden)]
pub fn fuzz_encode_history(entries: Vec<Entry>) -> Vec<u8> {
    let mut h = History::default();
    for e in entries {
        h.add(e);
    }
    h.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, sent: bool) -> Entry {
        Entry {
            message_id: [n; 16],
            sent,
            peer: Some(DeviceId::from_bytes([7; 16])),
            sender_role: (!sent).then_some(Role::Officer),
            timestamp: 1000 + u64::from(n),
            thread: u64::from(n % 2),
            body: vec![n; 3],
            server_id: u64::from(n) * 10,
            sos: false,
            via_panic_key: false,
            shown: false,
        }
    }

    #[test]
    fn a_history_reads_back_as_written_and_holds_each_message_once() {
        let mut h = History::default();
        h.add(entry(1, false));
        h.add(entry(2, true));
        h.add(entry(1, false)); // recorded again after a crash
        h.add(entry(1, true)); // the same id, the other way: another message
        assert_eq!(h.entries().len(), 3);
        assert_eq!(h.mark_shown(&[[1; 16]]), 1);
        assert!(!h.link(20, 99), "a sent message is not linked");
        let back = History::decode(&h.encode()).expect("reads back");
        assert_eq!(back, h);
        assert_eq!(back.thread(1).len(), 2);
        assert!(back.entries()[0].shown);
        assert!(History::decode(&[0xff, 0xff]).is_err());
    }

    /// The stored form, spelled out: devices keep histories written by
    /// earlier versions, so it must not change.
    #[test]
    fn the_stored_form_does_not_change() {
        let mut h = History::default();
        h.add(entry(1, false));
        let mut sent = entry(2, true);
        sent.peer = None;
        sent.sos = true;
        sent.shown = true;
        h.add(sent);
        let expected = concat!(
            "0a39",
            "0a1001010101010101010101010101010101",
            "1a1007070707070707070707070707070707",
            "22076f666669636572",
            "28e907",
            "3001",
            "3a03010101",
            "400a",
            "0a22",
            "0a1002020202020202020202020202020202",
            "1001",
            "28ea07",
            "3a03020202",
            "4014",
            "4801",
            "5001",
        );
        assert_eq!(hotline_proto::identity::hex(&h.encode()), expected);
        assert_eq!(
            History::decode(&hotline_proto::identity::unhex(expected).expect("hex"))
                .expect("reads"),
            h
        );
    }

    #[test]
    fn the_oldest_entries_go_first() {
        let mut h = History::default();
        for i in 0..(MAX_ENTRIES + 3) {
            let mut e = entry(0, false);
            e.message_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            h.add(e);
        }
        assert_eq!(h.entries().len(), MAX_ENTRIES);
        assert_eq!(h.entries()[0].message_id[..8], 3u64.to_be_bytes());
    }
}
