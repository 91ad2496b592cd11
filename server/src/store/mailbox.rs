//! End-to-end messaging on the store: the roster, prekeys, envelopes and
//! how far each got.

use hotline_proto::DeviceId;
use hotline_proto::e2e::roster::SignedRoster;
use hotline_proto::message::DeliveryState;

use super::{LogStore, StoreError};
use crate::domain::Event;
use crate::domain::mailbox::{MailEvent, StoredPrekey};
use crate::log::{Entry, RecordKey};

/// The rosters read back from the log so far, by version, and the last
/// record read ([`LogStore::roster_of_version`]).
#[derive(Debug, Default)]
pub(crate) struct OlderRosters {
    /// The log generation they were read in: read again in a new one.
    generation: u64,
    /// The last record read.
    scanned: u64,
    /// The rosters found.
    rosters: std::collections::BTreeMap<u64, Vec<u8>>,
}

/// Why [`LogStore::put_roster`] did not store a roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterRefused {
    /// A roster with this or a higher version (given) is already stored.
    NotNewer(u64),
    /// Its `previous_hash` is not the hash of the stored roster (or not all
    /// zeros, when none is stored).
    BrokenChain,
}

impl LogStore {
    /// Stores a roster (its wire `bytes`, its `version` and `previous_hash`
    /// already read) if its version is higher than the stored one's and
    /// its `previous_hash` is the SHA-256 of the stored roster's body (all
    /// zeros for the first); otherwise says why not. Both are
    /// checked under the state's lock, so two uploads cannot both pass
    /// against the same predecessor.
    pub fn put_roster(
        &self,
        version: u64,
        previous_hash: [u8; 32],
        bytes: Vec<u8>,
    ) -> Result<Result<(), RosterRefused>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let expected = match &state.mailbox.roster {
            Some((current, _)) if *current >= version => {
                return Ok(Err(RosterRefused::NotNewer(*current)));
            }
            Some((_, stored)) => SignedRoster::decode(stored)
                .map_err(|_| StoreError::Corrupt("a stored roster does not decode".into()))?
                .hash(),
            None => [0; 32],
        };
        if previous_hash != expected {
            return Ok(Err(RosterRefused::BrokenChain));
        }
        self.commit(
            state,
            Event::Mail(MailEvent::RosterStored { version, bytes }),
        )?;
        Ok(Ok(()))
    }

    /// The newest roster's wire bytes.
    pub fn roster(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_readable()?;
        Ok(self.lock().mailbox.roster.as_ref().map(|(_, b)| b.clone()))
    }

    /// The wire bytes of the roster of `version` this server accepted
    /// (the newest, or an older one read back from the log); `None` if it
    /// never accepted one of that version. Reads only: the rosters found
    /// are kept in memory, and each record is read once per process (the
    /// next call reads on from where the last one stopped).
    pub fn roster_of_version(&self, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_readable()?;
        let (newest, head, generation) = {
            let state = self.lock();
            let newest = state.mailbox.roster.clone();
            (newest, self.log.head().0, self.log.generation())
        };
        match &newest {
            Some((v, bytes)) if *v == version => return Ok(Some(bytes.clone())),
            // Rosters only move forward: none newer than the newest.
            Some((v, _)) if *v < version => return Ok(None),
            None => return Ok(None),
            Some(_) => {}
        }
        let mut index = self
            .older_rosters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if index.generation != generation {
            *index = OlderRosters {
                generation,
                ..OlderRosters::default()
            };
        }
        if let Some(bytes) = index.rosters.get(&version) {
            return Ok(Some(bytes.clone()));
        }
        if index.scanned < head {
            let from = index.scanned;
            let mut found = Vec::new();
            let mut last = from;
            self.log.replay(from, |seq, entry| {
                last = seq;
                if let Entry::Event(bytes) = entry {
                    // Only roster records matter here; any other event
                    // is skipped undecoded when it cannot be one.
                    if let Ok(Event::Mail(MailEvent::RosterStored { version, bytes })) =
                        super::codec::decode_event(&bytes)
                    {
                        found.push((version, bytes));
                    }
                }
                Ok(())
            })?;
            index.scanned = last.max(from);
            for (v, bytes) in found {
                index.rosters.entry(v).or_insert(bytes);
            }
        }
        Ok(index.rosters.get(&version).cloned())
    }

    /// Stores prekeys a device published (already verified).
    pub fn publish_prekeys(
        &self,
        device: DeviceId,
        prekeys: Vec<StoredPrekey>,
    ) -> Result<(), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let event = Event::Mail(MailEvent::PrekeysPublished { device, prekeys });
        self.commit(state, event)?;
        Ok(())
    }

    /// How many unexpired one-time prekeys of `device` are left.
    pub fn one_time_prekeys_left(&self, device: &DeviceId, now: u64) -> Result<u32, StoreError> {
        self.check_readable()?;
        let left = self.lock().mailbox.one_time_left(device, now);
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }

    /// Hands out the last-resort prekey of `device` (never used up).
    /// Returns its `SignedPrekey` bytes.
    pub fn last_resort_prekey(
        &self,
        device: &DeviceId,
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        Ok(state
            .mailbox
            .last_resort_for(device, now)
            .map(|p| p.signed.clone()))
    }

    /// Hands out one prekey of `device`: a one-time prekey (which is then
    /// gone) or the last-resort prekey. Returns its `SignedPrekey` bytes.
    pub fn take_prekey(&self, device: &DeviceId, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .take_prekey_marked(device, now)?
            .map(|(bytes, _)| bytes))
    }

    /// As [`LogStore::take_prekey`], and says whether the prekey handed
    /// out was a one-time prekey.
    pub fn take_prekey_marked(
        &self,
        device: &DeviceId,
        now: u64,
    ) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let Some(prekey) = state.mailbox.prekey_for(device, now).cloned() else {
            return Ok(None);
        };
        if prekey.one_time {
            let taken = MailEvent::PrekeyTaken {
                device: *device,
                id: prekey.id,
            };
            self.commit(state, Event::Mail(taken))?;
        }
        Ok(Some((prekey.signed, prekey.one_time)))
    }

    /// Stores an envelope for `recipients`; returns its sent id (the
    /// sender's own numbering, never a log position) and whether the same
    /// envelope had been stored before.
    pub fn store_envelope(
        &self,
        sender: DeviceId,
        digest: [u8; 32],
        recipients: Vec<DeviceId>,
        bytes: Vec<u8>,
    ) -> Result<(u64, bool), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        if let Some(seq) = state.mailbox.digests.get(&digest) {
            return Ok((state.mailbox.id_seen_by(*seq, &sender), true));
        }
        let stored = MailEvent::EnvelopeStored {
            sender,
            digest,
            recipients,
            bytes,
            numbered: true,
        };
        let mut state = state;
        let ticket = self.stage(&mut state, RecordKey::Main, Event::Mail(stored))?;
        let id = state.mailbox.id_seen_by(ticket.seq(), &sender);
        drop(state);
        self.wait(ticket)?;
        Ok((id, false))
    }

    /// The id under which each of `devices` finds the envelope with this
    /// digest in its inbox (0 where there is none: an unknown envelope).
    pub fn inbox_ids_of(&self, digest: &[u8; 32], devices: &[DeviceId]) -> Vec<u64> {
        let state = self.lock();
        match state.mailbox.digests.get(digest) {
            Some(seq) => devices
                .iter()
                .map(|d| state.mailbox.id_seen_by(*seq, d))
                .collect(),
            None => vec![0; devices.len()],
        }
    }

    /// Envelopes waiting for `device` after `after`, at most `limit`.
    pub fn inbox(
        &self,
        device: &DeviceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.check_readable()?;
        Ok(self.lock().mailbox.inbox(device, after, limit))
    }

    /// The highest inbox id `device` has been given or acknowledged.
    pub fn last_inbox_id(&self, device: &DeviceId) -> Result<u64, StoreError> {
        self.check_readable()?;
        Ok(self.lock().mailbox.last_inbox_id(device))
    }

    /// `device` holds everything up to its inbox id `up_to`.
    pub fn ack_inbox(&self, device: DeviceId, up_to: u64) -> Result<(), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        if state
            .mailbox
            .acked
            .get(&device)
            .is_some_and(|a| *a >= up_to)
        {
            return Ok(());
        }
        self.commit(state, Event::Mail(MailEvent::InboxAcked { device, up_to }))?;
        Ok(())
    }

    /// Records that `device` showed these envelopes (its inbox ids) to its
    /// person.
    pub fn mark_read(&self, device: DeviceId, ids: Vec<u64>) -> Result<(), StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let ids: Vec<u64> = ids
            .into_iter()
            .filter(|id| {
                state
                    .mailbox
                    .envelope_of_inbox_id(&device, *id)
                    .and_then(|seq| state.mailbox.delivery.get(&seq))
                    .is_some_and(|d| d.recipients.contains(&device) && !d.read.contains(&device))
            })
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.commit(state, Event::Mail(MailEvent::Read { device, ids }))?;
        Ok(())
    }

    /// How far the envelopes `sender` sent with these sent ids got (others
    /// are left out).
    pub fn delivery(
        &self,
        sender: &DeviceId,
        ids: &[u64],
    ) -> Result<Vec<DeliveryState>, StoreError> {
        self.check_readable()?;
        let state = self.lock();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(ids
            .iter()
            .filter_map(|id| {
                let seq = state.mailbox.envelope_of_sent_id(sender, *id)?;
                let d = state.mailbox.delivery.get(&seq)?;
                (d.sender == Some(*sender)).then(|| DeliveryState {
                    id: *id,
                    recipients: count(d.recipients.len()),
                    delivered: count(d.delivered.len()),
                    read: count(d.read.len()),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use hotline_proto::e2e::org::OrgKeyPair;
    use hotline_proto::e2e::roster::{Roster, SignedRoster};

    fn signed(version: u64, previous: Option<&SignedRoster>) -> SignedRoster {
        Roster {
            version,
            issued_at: 1,
            expires_at: u64::MAX,
            previous_hash: previous.map_or([0; 32], SignedRoster::hash),
            entries: vec![],
        }
        .sign(&OrgKeyPair::from_seed(&[9; 32]))
    }

    /// A reader checks a case event against the roster version it names:
    /// every version the server accepted is served, before and after a
    /// reopen, and reading them changes nothing stored.
    #[test]
    fn every_roster_version_accepted_is_served_and_none_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open_in(dir.path());
        assert_eq!(store.roster_of_version(1).expect("reads"), None);
        let v1 = signed(1, None);
        let v2 = signed(2, Some(&v1));
        for r in [&v1, &v2] {
            let body = r.read_unverified().expect("reads");
            store
                .put_roster(body.version, body.previous_hash, r.encode())
                .expect("stores")
                .expect("accepted");
        }
        assert_eq!(
            store.roster_of_version(1).expect("reads"),
            Some(v1.encode())
        );
        // A roster stored after the first read is found too.
        let v4 = signed(4, Some(&v2));
        store
            .put_roster(4, v2.hash(), v4.encode())
            .expect("stores")
            .expect("accepted");
        for (v, want) in [
            (1, Some(&v1)),
            (2, Some(&v2)),
            (3, None),
            (4, Some(&v4)),
            (5, None),
        ] {
            assert_eq!(
                store.roster_of_version(v).expect("reads"),
                want.map(SignedRoster::encode),
                "version {v}"
            );
        }
        let head = store.log().head();
        store.close().expect("closes");
        drop(store);
        let store = crate::store::open_in(dir.path());
        assert_eq!(
            store.roster_of_version(2).expect("reads"),
            Some(v2.encode())
        );
        assert_eq!(
            store.roster_of_version(1).expect("reads"),
            Some(v1.encode())
        );
        assert_eq!(store.log().head(), head, "reading wrote nothing");
    }
}
