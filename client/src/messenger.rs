//! End-to-end messaging on a device: its prekeys, the roster it trusts,
//! sealing messages to the right devices and opening what arrives.
//!
//! Local secrets (private prekeys, the message counter, the replay guard,
//! the inbox position) live in `device.sealed` in the state directory,
//! sealed under a key derived from the identity seed, and are rewritten
//! atomically. A one-time prekey's private half is deleted as soon as the
//! message it opened has been handed to the caller. Messages received and
//! sent are kept in the history (`messages.sealed`, see [`crate::history`]),
//! saved before the server is told they are held.
//!
//! Several commands may run at once on one device (a `hotline watch` and
//! an `sos`): a command that changes the state holds the directory's lock
//! ([`Device::hold`]), which re-reads the files, and lets go of it
//! ([`Device::release`]) while it only waits.

use hotline_proto::alert::{AlertInfo, Priority};
use hotline_proto::e2e::content::{Category, Message as ContentMessage};
use hotline_proto::e2e::envelope::{
    self, Content, EnvelopeError, MAX_BODY_LEN, Recipient, SignedEnvelope,
};
use hotline_proto::e2e::org::OrgPublicKey;
use hotline_proto::e2e::prekey::{Prekey, PrekeyKind, SignedPrekey};
use hotline_proto::e2e::replay::ReplayGuard;
use hotline_proto::e2e::roster::{Roster, SeenRoster, SignedRoster};
use hotline_proto::e2e::suite::{EncryptionKeyPair, SystemRandomness};
use hotline_proto::identity::{hex, unhex};
use hotline_proto::message::{MAX_INBOX_BATCH, PrekeyBundle};
use hotline_proto::{DeviceId, IdentityKeyPair, Role};
use prost::Message;

use crate::connection::Session;
use crate::contacts::{Contact, ContactRow};
use crate::error::ClientError;
use crate::history::{Entry, History};
use crate::keystore::StorageKey;
use crate::outbox::{Item, OutboxRow, Outgoing};
use crate::state::{Profile, StateDir, StateLock};

const DEVICE_FILE: &str = "device.sealed";
const HISTORY_FILE: &str = "messages.sealed";
/// One-time prekeys kept published.
pub const ONE_TIME_PREKEYS: usize = 20;
/// Lifetime of a prekey.
pub const PREKEY_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// A last-resort prekey is replaced when it has less than this left.
pub const ROTATE_BEFORE_SECS: u64 = 7 * 24 * 3600;

#[derive(Clone, PartialEq, Message)]
struct LocalPrekeyRow {
    #[prost(bool, tag = "1")]
    one_time: bool,
    #[prost(uint32, tag = "2")]
    id: u32,
    #[prost(uint64, tag = "3")]
    expires_at: u64,
    #[prost(bytes = "vec", tag = "4")]
    secret: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct DeviceRow {
    #[prost(uint32, tag = "1")]
    next_prekey_id: u32,
    #[prost(uint64, tag = "2")]
    counter: u64,
    #[prost(uint64, tag = "3")]
    inbox_after: u64,
    #[prost(message, repeated, tag = "4")]
    prekeys: Vec<LocalPrekeyRow>,
    #[prost(bytes = "vec", tag = "5")]
    replay: Vec<u8>,
    #[prost(message, repeated, tag = "6")]
    outbox: Vec<OutboxRow>,
    /// Devices known by name (see `contacts`).
    #[prost(message, repeated, tag = "20")]
    contacts: Vec<ContactRow>,
    /// The label this device's invite gave it (empty: none).
    #[prost(string, tag = "21")]
    own_label: String,
    /// The labels of the invites this device made with `--label`, until
    /// the device that used one is seen in the server's device list.
    #[prost(message, repeated, tag = "22")]
    invite_labels: Vec<InviteLabelRow>,
}

/// The label given to an invite this device made, by the invite's digest.
#[derive(Clone, PartialEq, Message)]
struct InviteLabelRow {
    /// SHA-256 of the invite's token (what the server keeps of it).
    #[prost(bytes = "vec", tag = "1")]
    digest: Vec<u8>,
    #[prost(string, tag = "2")]
    label: String,
    /// When the invite stops enrolling.
    #[prost(uint64, tag = "3")]
    expires_at: u64,
}

/// How long after an invite expired its label is kept for the device that
/// used it to be seen in the server's device list.
pub const INVITE_LABEL_KEPT_SECS: u64 = 90 * 24 * 3600;

/// What sending one queued item gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// A message: the server's id for it, and whether it had it already.
    Message {
        /// The server's id.
        id: u64,
        /// It was a retry of something the server already had.
        duplicate: bool,
    },
    /// An alert was raised (or found raised already).
    Alert(AlertInfo),
    /// A defender's case request was taken: the server's case for it and
    /// the envelope's id.
    CaseRequested {
        /// The case the server opened (in state requested).
        case_id: hotline_proto::case::CaseId,
        /// The envelope's id.
        id: u64,
        /// It was a retry of something the server already had.
        duplicate: bool,
    },
    /// The item can never be sent (the server refused it for good, or it
    /// cannot be sealed): it was removed from the outbox, so that it does
    /// not stand in front of what follows.
    Dropped {
        /// What it was.
        what: Outgoing,
        /// The server's refusal, if it was one.
        code: Option<hotline_proto::ErrorCode>,
        /// Why, for the person.
        reason: String,
    },
}

/// What a flush did: the items it settled, in order, and what stopped it
/// before the outbox was empty, if anything did. Items settled before the
/// stop were sent (or removed) all the same.
#[derive(Debug)]
pub struct Flushed {
    /// Each item settled, with its message id (as [`Device::queue_item`]
    /// returned it).
    pub settled: Vec<([u8; 16], Sent)>,
    /// Why the rest is still waiting (the network, the server busy, ...).
    pub stopped: Option<ClientError>,
}

/// An item waiting in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// What it is.
    pub what: Outgoing,
    /// When it was written, seconds since the Unix epoch.
    pub created_at: u64,
    /// Its text's length in bytes.
    pub len: usize,
}

/// An unlocked, enrolled device.
pub struct Device {
    identity: IdentityKeyPair,
    storage: StorageKey,
    state: StateDir,
    profile: Profile,
    /// The stored state; its `replay` and `outbox` are rewritten from the
    /// fields below on every save.
    local: DeviceRow,
    replay: ReplayGuard,
    outbox: Vec<Item>,
    warnings: Vec<String>,
    /// The state directory's lock, while this device holds it.
    lock: Option<StateLock>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// An envelope opened from the inbox: what it says, its message id and
/// the SHA-256 of its wire form.
type Opened = (Received, [u8; 16], [u8; 32]);

/// A message received and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The server's id for it (to mark it read).
    pub id: u64,
    /// The sending device.
    pub sender: DeviceId,
    /// Its role on the roster, or `None` for a device not on it (a defender).
    pub sender_role: Option<Role>,
    /// The sender's clock when it sent.
    pub timestamp: u64,
    /// The alert the message belongs to (0: none).
    pub thread: u64,
    /// What it says (kind, an SOS's category and priority, text,
    /// language), in the new form or read from the old.
    pub message: ContentMessage,
    /// The label the sender gave itself (empty: none).
    pub sender_label: String,
    /// Signed by the sender's panic key: an SOS sent without the
    /// passphrase (whoever held the phone could send it).
    pub via_panic_key: bool,
}

fn bad_label(label: &str) -> String {
    format!(
        "{label:?} cannot be a name: 1 to {} bytes, no control characters, no spaces at either end",
        hotline_proto::invite::MAX_LABEL_BYTES
    )
}

fn refused(e: impl std::fmt::Display) -> ClientError {
    ClientError::State(e.to_string())
}

impl Device {
    /// Unlocks the device in `state` with `passphrase`.
    pub fn open(state: &StateDir, passphrase: &str) -> Result<Device, ClientError> {
        let profile = state.load_profile()?;
        let (identity, storage) = state.unlock(passphrase)?;
        if identity.device_id() != profile.device_id()? {
            return Err(ClientError::State(
                "the identity key does not match the profile (state directory damaged)".into(),
            ));
        }
        let (local, replay, outbox, warnings) = read_local(state, &storage)?;
        let mut device = Device {
            identity,
            storage,
            state: state.clone(),
            profile,
            local,
            replay,
            outbox,
            warnings,
            lock: None,
        };
        // An outbox written by an earlier version has no note beside it.
        device.note_waiting_sos();
        Ok(device)
    }

    /// Takes the state directory's lock (waiting while another command
    /// holds it) and re-reads the state, which another command may have
    /// changed meanwhile. Held until [`Device::release`] or the end.
    pub fn hold(&mut self) -> Result<(), ClientError> {
        if self.lock.is_none() {
            self.lock = Some(self.state.lock()?);
            self.reload()?;
        }
        Ok(())
    }

    /// Lets go of the state directory's lock (another command may now
    /// change the state; [`Device::hold`] reads it again).
    pub fn release(&mut self) {
        self.lock = None;
    }

    /// Re-reads the profile and the sealed state from disk.
    fn reload(&mut self) -> Result<(), ClientError> {
        self.profile = self.state.load_profile()?;
        let (local, replay, outbox, warnings) = read_local(&self.state, &self.storage)?;
        self.local = local;
        self.replay = replay;
        self.outbox = outbox;
        self.warnings.extend(warnings);
        Ok(())
    }

    /// This device's identity.
    pub fn identity(&self) -> &IdentityKeyPair {
        &self.identity
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The key this device's state is sealed under (the case replica is
    /// sealed under it too).
    pub(crate) fn storage_key(&self) -> &crate::keystore::StorageKey {
        &self.storage
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Connects and authenticates.
    pub async fn connect(&self) -> Result<Session, ClientError> {
        crate::connection::authenticate(&self.state.server(&self.profile)?, &self.identity).await
    }

    fn save(&mut self) -> Result<(), ClientError> {
        self.local.replay = self.replay.encode();
        self.local.outbox = self.outbox.iter().map(Item::to_row).collect();
        let bytes = self.local.encode_to_vec();
        self.state.save_sealed(DEVICE_FILE, &self.storage, &bytes)?;
        self.note_waiting_sos();
        Ok(())
    }

    /// Records beside the outbox how many SOSes wait in it, for commands
    /// run without the passphrase ([`crate::sos_waiting`]). A failure is
    /// only a warning: the outbox itself is saved.
    fn note_waiting_sos(&mut self) {
        let n = self
            .outbox
            .iter()
            .filter(|i| matches!(i.what, Outgoing::Alert(_)))
            .count();
        if let Err(e) = crate::sos_waiting::record(&self.state, n) {
            self.warnings.push(format!(
                "could not note that an SOS waits in the outbox (for commands run without the passphrase): {e}"
            ));
        }
    }

    /// Warnings collected while receiving (keys that did not match), to
    /// show the person loudly.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The label this device's invite gave it, which it puts in what it
    /// seals.
    pub fn own_label(&self) -> Option<&str> {
        (!self.local.own_label.is_empty()).then_some(self.local.own_label.as_str())
    }

    /// Sets the label this device puts in what it seals (from its invite).
    pub fn set_own_label(&mut self, label: &str) -> Result<(), ClientError> {
        hotline_proto::invite::check_label(label)
            .map_err(|_| ClientError::State(bad_label(label)))?;
        self.local.own_label = label.to_owned();
        self.save()
    }

    /// Every device this one knows something about by name.
    pub fn contacts(&self) -> Vec<Contact> {
        self.local
            .contacts
            .iter()
            .filter_map(Contact::from_row)
            .collect()
    }

    /// What this device knows of `id` by name.
    pub fn contact(&self, id: &DeviceId) -> Option<Contact> {
        self.local
            .contacts
            .iter()
            .filter_map(Contact::from_row)
            .find(|c| c.device_id == *id)
    }

    /// How `id` is shown to this device's person: `Ana P. (3f9a1c2e)`.
    pub fn shown(&self, id: &DeviceId) -> String {
        crate::contacts::shown(id, self.contact(id).as_ref())
    }

    /// Names device `id` for this device's person (`None`: forgets the
    /// name). Saved at once.
    pub fn set_name(&mut self, id: DeviceId, name: Option<&str>) -> Result<(), ClientError> {
        if let Some(name) = name {
            hotline_proto::invite::check_label(name)
                .map_err(|_| ClientError::State(bad_label(name)))?;
        }
        let mut contact = self.contact(&id).unwrap_or(Contact::unnamed(id));
        contact.name = name.map(str::to_owned);
        self.put_contact(contact);
        self.save()
    }

    /// Records the label a sender gave itself (saved with the inbox).
    fn learn_label(&mut self, id: DeviceId, label: &str) {
        let mut contact = self.contact(&id).unwrap_or(Contact::unnamed(id));
        if contact.label.as_deref() != Some(label) {
            contact.label = Some(label.to_owned());
            self.put_contact(contact);
        }
    }

    /// Remembers `label`, given to the invite whose token has `digest`
    /// (valid until `expires_at`), so that the device that uses it is
    /// named so once the server lists it ([`Device::learn_invite_labels`]).
    /// Saved at once.
    pub fn remember_invite_label(
        &mut self,
        digest: [u8; 32],
        label: &str,
        expires_at: u64,
    ) -> Result<(), ClientError> {
        hotline_proto::invite::check_label(label)
            .map_err(|_| ClientError::State(bad_label(label)))?;
        self.local.invite_labels.push(InviteLabelRow {
            digest: digest.to_vec(),
            label: label.to_owned(),
            expires_at,
        });
        self.save()
    }

    /// Names each device of the server's list that enrolled with an
    /// invite this device labelled (the server lists the invite's digest
    /// with the device), and forgets the labels of invites matched, or
    /// expired more than [`INVITE_LABEL_KEPT_SECS`] ago. Returns the
    /// devices named now, with the label. Saved if anything changed.
    pub fn learn_invite_labels(
        &mut self,
        listed: &[hotline_proto::message::DeviceInfo],
        now: u64,
    ) -> Result<Vec<(DeviceId, String)>, ClientError> {
        let before = self.local.invite_labels.len();
        let mut named = Vec::new();
        let rows = std::mem::take(&mut self.local.invite_labels);
        for row in rows {
            let used_by = listed
                .iter()
                .find(|d| d.invite_digest.is_some_and(|g| g[..] == row.digest[..]));
            match used_by {
                Some(d) => {
                    let mut contact = self
                        .contact(&d.device_id)
                        .unwrap_or(Contact::unnamed(d.device_id));
                    contact.invited_as = Some(row.label.clone());
                    self.put_contact(contact);
                    named.push((d.device_id, row.label));
                }
                None if row.expires_at.saturating_add(INVITE_LABEL_KEPT_SECS) < now => {}
                None => self.local.invite_labels.push(row),
            }
        }
        if !named.is_empty() || self.local.invite_labels.len() != before {
            self.save()?;
        }
        Ok(named)
    }

    /// The devices this one knows of without asking the server: those
    /// known by name, the staff of every roster it accepted (a staff
    /// device), and those its kept messages came from or went to.
    pub fn known_device_ids(&self) -> Vec<DeviceId> {
        let mut ids: Vec<DeviceId> = self.contacts().iter().map(|c| c.device_id).collect();
        if self.profile.role().is_ok_and(|r| r.is_staff())
            && let Ok(book) = crate::rosters::RosterBook::load(&self.state, &self.storage)
        {
            ids.extend(book.device_ids());
        }
        if let Ok(history) = self.history() {
            ids.extend(history.entries().iter().filter_map(|e| e.peer));
        }
        ids.sort();
        ids.dedup();
        ids
    }

    fn put_contact(&mut self, contact: Contact) {
        let row = contact.to_row();
        match self
            .local
            .contacts
            .iter_mut()
            .find(|r| r.device_id == row.device_id)
        {
            Some(r) => *r = row,
            None => self.local.contacts.push(row),
        }
    }

    /// Ids of the private prekeys this device still holds.
    pub fn prekey_ids(&self) -> Vec<u32> {
        self.local.prekeys.iter().map(|p| p.id).collect()
    }

    /// The pinned organisation root.
    pub fn org_root(&self) -> Option<OrgPublicKey> {
        self.profile.org_root_key()
    }

    /// Pins an organisation root (when none is pinned yet).
    pub fn pin_org_root(&mut self, root: OrgPublicKey) -> Result<(), ClientError> {
        match self.org_root() {
            Some(pinned) if pinned != root => Err(ClientError::State(
                "another organisation root is already pinned; refusing to replace it".into(),
            )),
            _ => {
                self.profile.org_root = Some(hex(root.as_bytes()));
                self.state.save_profile(&self.profile)
            }
        }
    }

    /// Pins `root` in place of whatever is pinned (the person has compared
    /// fingerprints and asked for it). The roster accepted under the old
    /// root is forgotten: only one the new root signed is trusted now.
    pub fn replace_org_root(&mut self, root: OrgPublicKey) -> Result<(), ClientError> {
        if self.org_root() != Some(root) {
            self.profile.roster_version = None;
            self.profile.roster_hash = None;
        }
        self.profile.org_root = Some(hex(root.as_bytes()));
        self.state.save_profile(&self.profile)
    }

    /// Makes sure this device has a fresh last-resort prekey and enough
    /// one-time prekeys published. Returns how many were published.
    ///
    /// How many one-time prekeys are left is the server's count, not this
    /// device's: others take them (and may take more than they use). The
    /// private halves of keys handed out stay here until they expire, so
    /// an envelope sealed to one still opens.
    pub async fn sync_prekeys(&mut self, session: &Session) -> Result<usize, ClientError> {
        let now = crate::unix_now();
        self.local.prekeys.retain(|p| p.expires_at > now);
        let mut new = Vec::new();
        let need_last_resort = !self
            .local
            .prekeys
            .iter()
            .any(|p| !p.one_time && p.expires_at > now + ROTATE_BEFORE_SECS);
        if need_last_resort {
            new.push(self.new_prekey(PrekeyKind::LastResort, now));
        }
        let mut count = new.len();
        // Keep the private halves before publishing: a crash after the server
        // took them must not leave public keys nobody can use.
        if !new.is_empty() {
            self.save()?;
        }
        // Publishing nothing still answers the server's count.
        let held = match session.publish_prekeys(new).await? {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            // A server that does not say: this device's own count.
            None => self.local.prekeys.iter().filter(|p| p.one_time).count(),
        };
        let mut top_up = Vec::new();
        for _ in held..ONE_TIME_PREKEYS {
            top_up.push(self.new_prekey(PrekeyKind::OneTime, now));
        }
        if top_up.is_empty() {
            return Ok(count);
        }
        count += top_up.len();
        self.save()?;
        session.publish_prekeys(top_up).await?;
        Ok(count)
    }

    fn new_prekey(&mut self, kind: PrekeyKind, now: u64) -> SignedPrekey {
        let pair = EncryptionKeyPair::generate(&mut SystemRandomness);
        let id = self.local.next_prekey_id;
        self.local.next_prekey_id = self.local.next_prekey_id.wrapping_add(1).max(1);
        let prekey = Prekey {
            device_id: self.identity.device_id(),
            kind,
            id,
            public_key: pair.public_key(),
            created_at: now,
            expires_at: now + PREKEY_LIFETIME_SECS,
        };
        self.local.prekeys.push(LocalPrekeyRow {
            one_time: kind == PrekeyKind::OneTime,
            id,
            expires_at: prekey.expires_at,
            secret: pair.secret_bytes().to_vec(),
        });
        prekey.sign(&self.identity)
    }

    /// Fetches the roster and accepts it only if it verifies against the
    /// pinned root, has not expired and is not older than one seen before.
    pub async fn roster(&mut self, session: &Session) -> Result<Roster, ClientError> {
        let root = self.org_root().ok_or_else(|| {
            ClientError::State(
                "no organisation root is pinned on this device; ask an admin for its fingerprint"
                    .into(),
            )
        })?;
        let signed = session.get_roster().await?.ok_or_else(|| {
            ClientError::State("the organisation has not published a staff roster yet".into())
        })?;
        self.accept_roster(&root, &signed)
    }

    fn seen_roster(&self) -> Option<SeenRoster> {
        let version = self.profile.roster_version?;
        let hash: [u8; 32] = unhex(self.profile.roster_hash.as_deref()?)?
            .try_into()
            .ok()?;
        Some(SeenRoster { version, hash })
    }

    /// Verifies `signed` and remembers it as the newest seen; two rosters
    /// with one version, or a next version that does not chain to the one
    /// accepted, are refused and raise the alarm ([`Profile::record_roster`]).
    pub fn accept_roster(
        &mut self,
        root: &OrgPublicKey,
        signed: &SignedRoster,
    ) -> Result<Roster, ClientError> {
        let outcome = signed.verify(root, crate::unix_now(), self.seen_roster());
        if self.profile.record_roster(signed, &outcome) {
            self.state.save_profile(&self.profile)?;
        }
        let roster = outcome.map_err(refused)?;
        self.remember_for_cases(&roster);
        Ok(roster)
    }

    /// A staff device keeps every roster it accepts, by version: case
    /// events are checked against the roster they were written under
    /// (docs/protocol.md, section 9.5).
    /// A failure to save it never stops what accepted the roster (a
    /// message, an SOS): it is a warning, and the case sync saves it again.
    fn remember_for_cases(&mut self, roster: &Roster) {
        if !self.profile.role().is_ok_and(|r| r.is_staff()) {
            return;
        }
        if let Err(e) =
            crate::rosters::RosterBook::remember_accepted(&self.state, &self.storage, roster)
        {
            self.warnings.push(format!(
                "the staff roster was accepted but not saved for the cases ({e})"
            ));
        }
    }

    /// Seals `message` for the staff on the roster (and `to`, for staff),
    /// under `message_id`.
    async fn seal(
        &mut self,
        session: &Session,
        message: ContentMessage,
        to: Option<DeviceId>,
        message_id: [u8; 16],
        thread: u64,
    ) -> Result<SignedEnvelope, ClientError> {
        let roster = self.roster(session).await?;
        let now = crate::unix_now();
        let me = self.identity.device_id();
        let case_keys = matches!(message.kind, hotline_proto::e2e::content::Kind::CaseKeys(_));
        // Case keys go to staff devices only. Those for one device (a
        // roster added it) are sealed to the other staff devices too: the
        // copy tells them the device was sent the keys, so they do not
        // send them again (docs/protocol.md, section 9.2, "New staff").
        let mut ids: Vec<DeviceId> = roster
            .members(now)
            .filter(|e| !case_keys || e.role.is_staff())
            .map(|e| e.device_id)
            .filter(|d| *d != me)
            .collect();
        if case_keys && to.is_some_and(|t| !ids.contains(&t)) {
            // The device they were for is no longer staff on the roster.
            ids.clear();
        }
        if let Some(to) = to
            && !ids.contains(&to)
            && to != me
            && !case_keys
        {
            ids.push(to);
        }
        if ids.is_empty() {
            return Err(ClientError::State("nobody on the roster to send to".into()));
        }
        let bundles = session.fetch_prekeys(ids).await?;
        let recipients = self.check_bundles(&roster, bundles, to, now)?;
        if case_keys
            && let Some(to) = to
            && !recipients.iter().any(|r| r.device_id == to)
        {
            // Kept in the outbox and tried again: the keys are for it.
            return Err(ClientError::State(
                "no recipient has published keys yet (the staff device the case keys are for)"
                    .into(),
            ));
        }
        self.local.counter += 1;
        let content = Content {
            message_id,
            counter: self.local.counter,
            timestamp: now,
            message,
            thread,
            sender_label: self.local.own_label.clone(),
        };
        envelope::seal(
            &self.identity,
            roster.version,
            &recipients,
            &content,
            &mut SystemRandomness,
        )
        .map_err(|e| match e {
            EnvelopeError::TooLarge => ClientError::TooLarge,
            other => refused(other),
        })
    }

    /// Puts `body` in the outbox as `what`, saved on disk before anything
    /// is sent. Returns how many items are pending.
    ///
    /// A message too long to seal is refused here, before anything is
    /// queued. The text of an alert is cut to fit instead, with a warning:
    /// an SOS is never refused for its length.
    pub fn queue(&mut self, body: &[u8], what: Outgoing) -> Result<usize, ClientError> {
        self.queue_item(body, what).map(|_| self.outbox.len())
    }

    /// Like [`Device::queue`]; returns the item's message id.
    pub fn queue_item(&mut self, body: &[u8], what: Outgoing) -> Result<[u8; 16], ClientError> {
        self.queue_with(body, what, None)
    }

    /// Like [`Device::queue_item`], for an SOS of `category`.
    fn queue_with(
        &mut self,
        body: &[u8],
        what: Outgoing,
        category: Option<Category>,
    ) -> Result<[u8; 16], ClientError> {
        // The words of a request, share or reply: at most
        // MAX_CASE_TEXT_LEN bytes, which always fit the envelope and the
        // case event that records them (docs/protocol.md, section 9.6).
        let case_text = matches!(
            what,
            Outgoing::CaseRequest(_) | Outgoing::CaseShare { .. } | Outgoing::CaseReply { .. }
        );
        if case_text && body.len() > envelope::MAX_CASE_TEXT_LEN {
            return Err(ClientError::State(format!(
                "the text is too long ({} bytes; at most {} for a request, a share or a reply): nothing was queued",
                body.len(),
                envelope::MAX_CASE_TEXT_LEN
            )));
        }
        let body = if body.len() <= MAX_BODY_LEN {
            body
        } else if matches!(what, Outgoing::Alert(_)) {
            self.warnings.push(format!(
                "the alert's text was too long and was cut to its first {MAX_BODY_LEN} bytes"
            ));
            envelope::cut_to_fit(body)
        } else {
            return Err(ClientError::State(format!(
                "the message is too long ({} bytes; at most {MAX_BODY_LEN}): nothing was queued",
                body.len()
            )));
        };
        let mut item = Item::new(body, what, crate::unix_now())?;
        item.category = category;
        let id = item.message_id;
        self.outbox.push(item);
        self.save()?;
        Ok(id)
    }

    /// Queues an SOS of `category` like [`Device::queue_item`], an item
    /// of its own (its text, category, language and priority kept as the
    /// defender gave them). SOSes waiting together go out as one alert:
    /// the first raises it, the others join it (`RaiseAlert.join_alert`,
    /// see [`Device::flush_tracked`]), so staff read every text under its
    /// own category. Returns the item's message id and whether another
    /// SOS was waiting (this one then joins its alert).
    pub fn queue_sos(
        &mut self,
        body: &[u8],
        category: Category,
        priority: Priority,
    ) -> Result<([u8; 16], bool), ClientError> {
        let waiting = self
            .outbox
            .iter()
            .any(|i| matches!(i.what, Outgoing::Alert(_)));
        let id = self.queue_with(body, Outgoing::Alert(priority), Some(category))?;
        Ok((id, waiting))
    }

    /// Queues case keys (ContentKind CASE_KEYS, at most
    /// [`hotline_proto::e2e::content::MAX_CASE_KEYS`]) for every other
    /// staff device on the roster or, with `to`, for that staff device
    /// only; saved on disk (sealed) before anything is sent, sent and
    /// retried like a message, never kept in the history.
    pub fn queue_case_keys(
        &mut self,
        keys: &[(
            hotline_proto::case::CaseId,
            u32,
            hotline_proto::case::key::CaseKey,
        )],
        to: Option<DeviceId>,
    ) -> Result<[u8; 16], ClientError> {
        if keys.is_empty() || keys.len() > hotline_proto::e2e::content::MAX_CASE_KEYS {
            return Err(ClientError::State(
                "between 1 and 500 case keys go in one envelope".into(),
            ));
        }
        let body = crate::outbox::case_keys_body(keys);
        let item = Item::new(&body, Outgoing::CaseKeys { to }, crate::unix_now())?;
        let id = item.message_id;
        self.outbox.push(item);
        self.save()?;
        Ok(id)
    }

    /// Drops from the outbox what would still go out about an erased
    /// case (docs/protocol.md, section 9.7): its shared items (CASE_SHARE)
    /// and its keys (CASE_KEYS). An item of keys that also holds other
    /// cases' keys is queued again without the erased case's (a fresh
    /// item: the one sealed before held them). Saved if anything changed;
    /// returns how many items were dropped.
    pub fn drop_case_items(
        &mut self,
        case: &hotline_proto::case::CaseId,
    ) -> Result<usize, ClientError> {
        let mut dropped = 0;
        let mut again = Vec::new();
        let now = crate::unix_now();
        let mut kept = Vec::with_capacity(self.outbox.len());
        for item in std::mem::take(&mut self.outbox) {
            match item.what {
                Outgoing::CaseShare { case_id, .. } if case_id == *case => dropped += 1,
                Outgoing::CaseKeys { to } => {
                    let keys = crate::outbox::case_keys_of(&item.body).unwrap_or_default();
                    if !keys.iter().any(|(c, ..)| c == case) {
                        kept.push(item);
                        continue;
                    }
                    dropped += 1;
                    let rest: Vec<_> = keys.into_iter().filter(|(c, ..)| c != case).collect();
                    if !rest.is_empty() {
                        let body = crate::outbox::case_keys_body(&rest);
                        again.push(Item::new(&body, Outgoing::CaseKeys { to }, now)?);
                    }
                }
                _ => kept.push(item),
            }
        }
        self.outbox = kept;
        self.outbox.extend(again);
        if dropped > 0 {
            self.save()?;
        }
        Ok(dropped)
    }

    /// Whether the item `id` (as queued) still waits in the outbox.
    pub fn is_waiting(&self, id: [u8; 16]) -> bool {
        self.outbox.iter().any(|i| i.message_id == id)
    }

    /// The message history (see [`crate::history`]).
    pub fn history(&self) -> Result<History, ClientError> {
        match self.state.load_sealed(HISTORY_FILE, &self.storage)? {
            Some(bytes) => History::decode(&bytes),
            None => Ok(History::default()),
        }
    }

    fn save_history(&self, history: &History) -> Result<(), ClientError> {
        self.state
            .save_sealed(HISTORY_FILE, &self.storage, &history.encode())
    }

    /// Removes from the history the words of an erased case: its
    /// replies and shared items, and the defender's requests whose
    /// envelope digest is in `requests` (docs/protocol.md, section 9.7).
    /// The history is saved only if something went. Returns how many
    /// entries went.
    pub fn remove_case_texts(
        &self,
        case: &hotline_proto::case::CaseId,
        requests: &[[u8; 32]],
    ) -> Result<usize, ClientError> {
        let mut history = self.history()?;
        let removed =
            history.remove_case_texts(case, |e| e.digest.is_some_and(|d| requests.contains(&d)));
        if removed > 0 {
            self.save_history(&history)?;
        }
        Ok(removed)
    }

    /// What this device sent as the item `id`, if the history holds it
    /// (another command may have sent it).
    pub fn sent_entry(&self, id: [u8; 16]) -> Result<Option<Entry>, ClientError> {
        Ok(self
            .history()?
            .entries()
            .iter()
            .find(|e| e.sent && e.message_id == id)
            .cloned())
    }

    /// The messages received and not shown to the person yet, oldest
    /// first.
    pub fn unshown(&self) -> Result<Vec<Entry>, ClientError> {
        Ok(self
            .history()?
            .entries()
            .iter()
            .filter(|e| !e.sent && !e.shown)
            .cloned()
            .collect())
    }

    /// Records that these received messages (by message id) were shown.
    pub fn mark_shown(&mut self, ids: &[[u8; 16]]) -> Result<(), ClientError> {
        let mut history = self.history()?;
        if history.mark_shown(ids) > 0 {
            self.save_history(&history)?;
        }
        Ok(())
    }

    /// Files the message alert `a` was raised with, if this device
    /// received it, in the alert's thread. The device that raised it knows
    /// that message by its own sent id, which says nothing about what it
    /// received: its own alerts are left alone (a staff message received
    /// under the same number would otherwise pass for its SOS).
    pub fn link_alert(&mut self, a: &AlertInfo) -> Result<(), ClientError> {
        if a.defender == self.identity.device_id() {
            return Ok(());
        }
        let mut history = self.history()?;
        // The SOS that raised it, and those that joined it later (past
        // the defender's open-alert limit): all in the alert's thread.
        let mut changed = history.link(a.envelope_id, a.id);
        for joined in &a.joined {
            changed |= history.link(*joined, a.id);
        }
        if changed {
            self.save_history(&history)?;
        }
        Ok(())
    }

    /// The items waiting in the outbox, in the order they will go.
    pub fn pending(&self) -> Vec<Waiting> {
        let mut items: Vec<Waiting> = self
            .outbox
            .iter()
            .map(|i| Waiting {
                what: i.what,
                created_at: i.created_at,
                len: i.body.len(),
            })
            .collect();
        // As a flush sends them: alerts first.
        items.sort_by_key(|w| !matches!(w.what, Outgoing::Alert(_)));
        items
    }

    /// The message ids of the items waiting, in the order of
    /// [`Device::pending`].
    pub fn pending_ids(&self) -> Vec<[u8; 16]> {
        let mut items: Vec<&Item> = self.outbox.iter().collect();
        items.sort_by_key(|i| !matches!(i.what, Outgoing::Alert(_)));
        items.iter().map(|i| i.message_id).collect()
    }

    /// Removes the item at `index` of [`Device::pending`] from the
    /// outbox, for good; returns what it was.
    pub fn drop_pending(&mut self, index: usize) -> Result<Waiting, ClientError> {
        self.outbox
            .sort_by_key(|i| !matches!(i.what, Outgoing::Alert(_)));
        if index >= self.outbox.len() {
            return Err(ClientError::State(format!(
                "there is no item {} in the outbox ({} waiting)",
                index + 1,
                self.outbox.len()
            )));
        }
        let item = self.outbox.remove(index);
        self.save()?;
        Ok(Waiting {
            what: item.what,
            created_at: item.created_at,
            len: item.body.len(),
        })
    }

    /// Sends everything in the outbox, each exactly once, alerts first
    /// (an SOS never waits behind messages), then the rest, oldest first.
    /// An item is sealed once and kept until the server has it, so a retry
    /// after a lost answer sends the same bytes and the server recognises
    /// them. An item that can never be sent (the server refused it for
    /// good, or it cannot be sealed) is removed and reported as
    /// [`Sent::Dropped`], and the items behind it go on. Any other failure
    /// (the network, the server busy) stops the flush, keeping what is
    /// left for the next one.
    pub async fn flush(&mut self, session: &Session) -> Result<Vec<Sent>, ClientError> {
        Ok(self
            .flush_tracked(session)
            .await?
            .into_iter()
            .map(|(_, s)| s)
            .collect())
    }

    /// [`Device::flush`], with the message id of each item it settled (as
    /// [`Device::queue_item`] returned it).
    pub async fn flush_tracked(
        &mut self,
        session: &Session,
    ) -> Result<Vec<([u8; 16], Sent)>, ClientError> {
        let flushed = self.flush_report(session).await;
        match flushed.stopped {
            Some(e) => Err(e),
            None => Ok(flushed.settled),
        }
    }

    /// [`Device::flush_tracked`], reporting what was settled also when
    /// the flush stops part way (the items sent before the stop were
    /// sent, and the person must hear so). Each message and SOS sent is
    /// added to the history.
    pub async fn flush_report(&mut self, session: &Session) -> Flushed {
        let mut settled = Vec::new();
        let stopped = self.flush_into(session, &mut settled, false).await.err();
        Flushed { settled, stopped }
    }

    /// Whether an SOS waits in the outbox.
    pub fn has_waiting_sos(&self) -> bool {
        self.outbox
            .iter()
            .any(|i| matches!(i.what, Outgoing::Alert(_)))
    }

    /// [`Device::flush_report`] for the SOSes only: each SOS waiting in
    /// the outbox goes, oldest first, and every other item stays where it
    /// is (for the command that sends them).
    pub async fn flush_sos_report(&mut self, session: &Session) -> Flushed {
        let mut settled = Vec::new();
        let stopped = self.flush_into(session, &mut settled, true).await.err();
        Flushed { settled, stopped }
    }

    async fn flush_into(
        &mut self,
        session: &Session,
        settled: &mut Vec<([u8; 16], Sent)>,
        only_sos: bool,
    ) -> Result<(), ClientError> {
        // Alerts first; a stable sort keeps each kind in its order.
        if self
            .outbox
            .iter()
            .any(|i| matches!(i.what, Outgoing::Alert(_)))
        {
            self.outbox
                .sort_by_key(|i| !matches!(i.what, Outgoing::Alert(_)));
            self.save()?;
        }
        // The SOSes that waited together go out as one alert: the first
        // raises it (or joins the device's open one), the others join it,
        // each with its own text, category and language.
        let mut join = 0;
        while let Some(item) = self.outbox.first().cloned() {
            if only_sos && !matches!(item.what, Outgoing::Alert(_)) {
                break;
            }
            let outcome = match self.send_item(session, &item, join).await {
                Ok(sent) => sent,
                Err(e) => match Self::never_sendable(session, &e) {
                    Some(code) => Sent::Dropped {
                        what: item.what,
                        code,
                        reason: e.to_string(),
                    },
                    None => return Err(e),
                },
            };
            // Into the history before it leaves the outbox: a crash in
            // between sends it again, which the server and the history
            // both recognise.
            if let Some(entry) = sent_entry(&item, &outcome) {
                let mut history = self.history()?;
                history.add(entry);
                self.save_history(&history)?;
            }
            if let Sent::Alert(a) = &outcome
                && join == 0
            {
                join = a.id;
            }
            self.outbox.remove(0);
            self.save()?;
            settled.push((item.message_id, outcome));
        }
        Ok(())
    }

    /// Seals an SOS from the outbox as [`crate::sos::seal_sos`] does:
    /// to an expired roster, or to nobody (the alert then goes without
    /// its text), rather than not at all. Warnings go to the person.
    async fn seal_alert(
        &mut self,
        session: &Session,
        item: &Item,
    ) -> Result<Option<SignedEnvelope>, ClientError> {
        let now = crate::unix_now();
        let content = Content {
            message_id: item.message_id,
            counter: self.local.counter + 1,
            timestamp: now,
            message: item.content(),
            thread: 0,
            sender_label: self.local.own_label.clone(),
        };
        let me = self.identity.device_id();
        let sealed = crate::sos::seal_sos(
            session,
            &self.state,
            &mut self.profile,
            me,
            &self.identity,
            content,
            now,
        )
        .await?;
        self.warnings.extend(sealed.warnings);
        if let Some(env) = &sealed.envelope {
            self.local.counter += 1;
            if let Some(first) = self.outbox.first_mut() {
                first.sealed = Some(env.encode());
            }
            self.save()?;
        }
        Ok(sealed.envelope)
    }

    /// Seals the first item of the outbox, `item` (once), and sends it.
    /// An SOS is raised even when its text cannot be sealed
    /// ([`Device::seal_alert`]), joining the open alert `join` of this
    /// device if not 0.
    async fn send_item(
        &mut self,
        session: &Session,
        item: &Item,
        join: u64,
    ) -> Result<Sent, ClientError> {
        if let Outgoing::Alert(priority) = item.what {
            // Never dropped for its text: sealed bytes that no longer
            // decode, a text too large to seal, or an envelope the server
            // refuses for good, and the alert goes without it (the person
            // is told the text was not sent).
            let envelope = match &item.sealed {
                Some(sealed) => match SignedEnvelope::decode(sealed) {
                    Ok(env) => Some(env),
                    Err(e) => {
                        self.warnings.push(crate::sos::not_sent_warning(&format!(
                            "its sealed form is damaged: {e}"
                        )));
                        None
                    }
                },
                None => match self.seal_alert(session, item).await {
                    Err(ClientError::TooLarge) => {
                        self.warnings
                            .push(crate::sos::not_sent_warning("it is too large to seal"));
                        None
                    }
                    other => other?,
                },
            };
            return crate::sos::raise_text_or_alone_joining(
                session,
                priority,
                envelope,
                join,
                &mut self.warnings,
            )
            .await
            .map(Sent::Alert);
        }
        let envelope = match &item.sealed {
            Some(sealed) => SignedEnvelope::decode(sealed).map_err(refused)?,
            None => {
                let sealed = self
                    .seal(
                        session,
                        item.content(),
                        item.what.to(),
                        item.message_id,
                        item.what.thread(),
                    )
                    .await;
                let env = match sealed {
                    // Case keys with no other staff device to go to: the
                    // keys stay in the case replica, and staff a later
                    // roster adds get them then.
                    Err(ClientError::State(why))
                        if matches!(item.what, Outgoing::CaseKeys { .. })
                            && why.starts_with("nobody on the roster") =>
                    {
                        return Ok(Sent::Dropped {
                            what: item.what,
                            code: None,
                            reason: "no other staff device on the roster to send case keys to"
                                .into(),
                        });
                    }
                    other => other?,
                };
                if let Some(first) = self.outbox.first_mut() {
                    first.sealed = Some(env.encode());
                }
                self.save()?;
                env
            }
        };
        // A message or a reply (an alert went above). A reply names its
        // alert to the server, which refuses it if that alert must stay
        // hidden from its defender.
        let a = match item.what {
            Outgoing::Reply { alert, .. } => session.send_in_thread(envelope, alert).await?,
            Outgoing::CaseRequest(_) => {
                let (case_id, a) = session.request_case(envelope).await?;
                return Ok(Sent::CaseRequested {
                    case_id,
                    id: a.id,
                    duplicate: a.duplicate,
                });
            }
            _ => session.send_envelope(envelope).await?,
        };
        Ok(Sent::Message {
            id: a.id,
            duplicate: a.duplicate,
        })
    }

    /// Whether `e`, met sending an item, means it can never be sent: the
    /// server's refusal for a reason a retry cannot fix (anything but
    /// UNAVAILABLE, RATE_LIMITED, INTERNAL), while sealing (an unknown
    /// recipient) or sending, or an item too large to seal. Returns the
    /// server's code, if there was one. A connection the server closed
    /// with a code (a revocation, a shutdown) says nothing about the item.
    fn never_sendable(
        session: &Session,
        e: &ClientError,
    ) -> Option<Option<hotline_proto::ErrorCode>> {
        use hotline_proto::ErrorCode::{Internal, RateLimited, Unavailable};
        match e {
            ClientError::Refused(w)
                if session.connection().close_reason().is_none()
                    && !matches!(w.code, Unavailable | RateLimited | Internal) =>
            {
                Some(Some(w.code))
            }
            ClientError::TooLarge => Some(None),
            _ => None,
        }
    }

    /// The outcome of the item `id` among those a flush settled; an error
    /// saying so if it was dropped.
    fn outcome(settled: Vec<([u8; 16], Sent)>, id: [u8; 16]) -> Result<Sent, ClientError> {
        match settled.into_iter().find(|(i, _)| *i == id) {
            Some((_, Sent::Dropped { code, reason, .. })) => {
                Err(ClientError::Dropped { code, reason })
            }
            Some((_, sent)) => Ok(sent),
            None => Err(ClientError::Protocol("the item was not settled".into())),
        }
    }

    /// Sends `body` now, through the outbox: a defender writes to every
    /// staff device on the roster; staff write to every staff device on the
    /// roster and, with `to`, to that device too. Returns the server's id.
    pub async fn send(
        &mut self,
        session: &Session,
        body: &[u8],
        to: Option<DeviceId>,
    ) -> Result<u64, ClientError> {
        let mine = self.queue_item(body, Outgoing::Message { to })?;
        let settled = self.flush_tracked(session).await?;
        match Self::outcome(settled, mine)? {
            Sent::Message { id, .. } => Ok(id),
            _ => Err(ClientError::Protocol("the message was not sent".into())),
        }
    }

    /// Raises an alert (defenders), through the outbox: `body` (what
    /// happened) goes end-to-end encrypted to the staff on the roster, as
    /// an SOS whose category, if `body` begins with a line
    /// `category: NAME`, is read from it as from the old form (see
    /// [`ContentMessage::from_old_body`]; [`Device::queue_sos`] takes the
    /// category apart); the server sees only the priority.
    pub async fn raise_alert(
        &mut self,
        session: &Session,
        priority: Priority,
        body: &[u8],
    ) -> Result<AlertInfo, ClientError> {
        let mine = self.queue_item(body, Outgoing::Alert(priority))?;
        let settled = self.flush_tracked(session).await?;
        match Self::outcome(settled, mine)? {
            Sent::Alert(a) => Ok(a),
            _ => Err(ClientError::Protocol("the alert was not raised".into())),
        }
    }

    /// Keeps only recipients whose keys check out (see [`check_bundles`]).
    fn check_bundles(
        &self,
        roster: &Roster,
        bundles: Vec<PrekeyBundle>,
        to: Option<DeviceId>,
        now: u64,
    ) -> Result<Vec<Recipient>, ClientError> {
        crate::recipients::check_bundles(
            roster,
            bundles,
            to,
            self.profile.role()?.is_staff(),
            now,
            now,
        )
    }

    /// Fetches, verifies and opens everything waiting, then tells the
    /// server it is held. Envelopes seen before are dropped (replays).
    pub async fn receive(&mut self, session: &Session) -> Result<Vec<Received>, ClientError> {
        let roster = match self.org_root() {
            Some(_) => Some(self.roster_for_reading(session).await?),
            None => None,
        };
        let mut received = Vec::new();
        loop {
            let items = session
                .fetch_inbox(self.local.inbox_after, MAX_INBOX_BATCH)
                .await?;
            if items.is_empty() {
                break;
            }
            let mut opened = Vec::new();
            // Who each CASE_KEYS envelope was sealed to (by digest).
            let mut sealed_to: std::collections::BTreeMap<[u8; 32], Vec<DeviceId>> =
                Default::default();
            for item in items {
                if let Some((r, message_id)) = self.open_one(
                    roster.as_ref().map(|(r, at)| (r, *at)),
                    &item.envelope,
                    &item.sender_identity_key,
                    item.sender_panic_key.as_ref(),
                )? {
                    if matches!(
                        r.message.kind,
                        hotline_proto::e2e::content::Kind::CaseKeys(_)
                    ) {
                        sealed_to.insert(
                            item.envelope.digest(),
                            item.envelope.recipients_unverified().unwrap_or_default(),
                        );
                    }
                    opened.push((
                        Received { id: item.id, ..r },
                        message_id,
                        item.envelope.digest(),
                    ));
                }
                self.local.inbox_after = self.local.inbox_after.max(item.id);
            }
            let opened = self.take_case_keys(opened, &sealed_to)?;
            // Kept before the server is told they are held.
            if !opened.is_empty() {
                let mut history = self.history()?;
                for (r, message_id, digest) in &opened {
                    history.add(Entry {
                        message_id: *message_id,
                        sent: false,
                        peer: Some(r.sender),
                        sender_role: r.sender_role,
                        timestamp: r.timestamp,
                        thread: r.thread,
                        message: r.message.clone(),
                        server_id: r.id,
                        sos: false,
                        shown: false,
                        via_panic_key: r.via_panic_key,
                        digest: Some(*digest),
                        request_case: None,
                    });
                }
                self.save_history(&history)?;
            }
            received.extend(opened.into_iter().map(|(r, _, _)| r));
            self.save()?;
            match session.ack_inbox(self.local.inbox_after).await {
                Ok(()) => {}
                // The server cannot write now (its storage is full, or it
                // serves read-only): what was fetched is kept here and
                // shown all the same; the next fetch goes on from this
                // device's own cursor, and a later acknowledgement covers
                // these too.
                Err(ClientError::Refused(e)) if e.code == hotline_proto::ErrorCode::Unavailable => {
                    self.warnings.push(format!(
                        "the server could not record that these messages arrived ({e}); they are kept on this device"
                    ));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(received)
    }

    /// Takes the CASE_KEYS envelopes out of what was just opened: their
    /// keys go to the case replica ([`crate::cases::keys::keep_received`]);
    /// they are never shown as messages nor kept in the history. Returns
    /// the rest.
    fn take_case_keys(
        &mut self,
        opened: Vec<Opened>,
        sealed_to: &std::collections::BTreeMap<[u8; 32], Vec<DeviceId>>,
    ) -> Result<Vec<Opened>, ClientError> {
        use hotline_proto::e2e::content::Kind;
        let (keys, rest): (Vec<_>, Vec<_>) = opened
            .into_iter()
            .partition(|(r, _, _)| matches!(r.message.kind, Kind::CaseKeys(_)));
        // Staff of any roster this device holds, not only the current
        // one: keys sent by a staff member revoked since they sent them
        // are the only copy of that case's key when nobody else held it
        // (each key is checked against the commitment of the events it
        // opens, so a key from anyone can open nothing else).
        let past_staff = if keys.is_empty() {
            Vec::new()
        } else {
            crate::rosters::RosterBook::load(&self.state, &self.storage)
                .map(|b| b.device_ids())
                .unwrap_or_default()
        };
        let received = keys
            .into_iter()
            .filter_map(|(r, _, digest)| match r.message.kind {
                Kind::CaseKeys(keys) => Some(crate::cases::keys::KeysReceived {
                    sender: r.sender,
                    from_staff: r.sender_role.is_some_and(Role::is_staff)
                        || past_staff.contains(&r.sender),
                    keys,
                    recipients: sealed_to.get(&digest).cloned().unwrap_or_default(),
                }),
                _ => None,
            })
            .collect();
        let warnings = crate::cases::keys::keep_received(
            &self.state,
            &self.storage,
            self.profile.role()?.is_staff(),
            received,
        );
        self.warnings.extend(warnings);
        Ok(rest)
    }

    /// The roster to check senders against when reading, and the moment
    /// whose members count: now, or, once it has expired, its last valid
    /// moment (with a warning): an SOS sealed to an expired roster, and
    /// the replies to it, must still be read.
    async fn roster_for_reading(
        &mut self,
        session: &Session,
    ) -> Result<(Roster, u64), ClientError> {
        let root = self.org_root().ok_or_else(|| {
            ClientError::State("no organisation root is pinned on this device".into())
        })?;
        let signed = session.get_roster().await?.ok_or_else(|| {
            ClientError::State("the organisation has not published a staff roster yet".into())
        })?;
        let now = crate::unix_now();
        let outcome = signed.verify_even_if_expired(&root, self.seen_roster());
        if self.profile.record_roster(&signed, &outcome) {
            self.state.save_profile(&self.profile)?;
        }
        let roster = outcome.map_err(refused)?;
        self.remember_for_cases(&roster);
        if now >= roster.expires_at {
            self.warnings.push(
                "the staff roster has expired: messages are checked against its last members; an admin must sign a new one"
                    .into(),
            );
            let at = roster.last_valid_moment();
            return Ok((roster, at));
        }
        Ok((roster, now))
    }

    /// Opens one envelope, returning it with its message id. `Ok(None)`
    /// for one that must be dropped (a replay, a sender a defender must
    /// not trust, one not for this device). `roster` comes with the moment
    /// whose members count.
    fn open_one(
        &mut self,
        roster: Option<(&Roster, u64)>,
        env: &SignedEnvelope,
        sender_key: &hotline_proto::IdentityPublicKey,
        panic_key: Option<&hotline_proto::IdentityPublicKey>,
    ) -> Result<Option<(Received, [u8; 16])>, ClientError> {
        let now = crate::unix_now();
        if sender_key.device_id() != env.sender {
            self.warnings.push(format!(
                "the server presented an identity key that is not device {}'s: a message was dropped (possible impersonation)",
                env.sender
            ));
            return Ok(None);
        }
        let on_roster = roster.and_then(|(r, at)| r.member(&env.sender, at));
        if let Some(entry) = on_roster
            && entry.identity_key != *sender_key
        {
            self.warnings.push(format!(
                "device {}'s key differs from the signed roster: a message was dropped",
                env.sender
            ));
            return Ok(None);
        }
        // A defender trusts only staff on the signed roster.
        if on_roster.is_none() && !self.profile.role()?.is_staff() {
            self.warnings
                .push("a message from a device not on the staff roster was dropped".into());
            return Ok(None);
        }
        let me = self.identity.device_id();
        let mut used = None;
        let local = &self.local.prekeys;
        let key_for = |id| {
            let p = local.iter().find(|p| p.id == id)?;
            let secret: [u8; 32] = p.secret.as_slice().try_into().ok()?;
            used = Some((id, p.one_time));
            EncryptionKeyPair::from_secret(&secret)
        };
        // A defender's SOS sent without the passphrase is signed by its
        // panic key, which the server presents next to its identity key.
        let panic_signed = match panic_key {
            Some(k) if on_roster.is_none() && env.verify_signature(sender_key).is_err() => {
                env.verify_signed_by(k).is_ok().then_some(*k)
            }
            _ => None,
        };
        let opened = match &panic_signed {
            Some(k) => env.open_signed_by(k, &me, key_for),
            None => env.open(sender_key, &me, key_for),
        };
        let opened = match opened {
            Ok(o) => o,
            Err(
                EnvelopeError::NotForMe
                | EnvelopeError::KeyGone
                | EnvelopeError::Undecryptable
                | EnvelopeError::BadSignature,
            ) => {
                return Ok(None);
            }
            // A malformed envelope (padding, sizes, fields) is dropped
            // with a warning: one bad message never stops the others.
            Err(e) => {
                self.warnings.push(format!(
                    "a malformed message from device {} was dropped ({e})",
                    env.sender
                ));
                return Ok(None);
            }
        };
        // A one-time prekey opens exactly one envelope.
        if let Some((id, true)) = used {
            self.local.prekeys.retain(|p| p.id != id);
        }
        if self
            .replay
            .check_and_record(opened.content.message_id, opened.content.timestamp, now)
            .is_err()
        {
            return Ok(None);
        }
        if !opened.content.sender_label.is_empty() {
            self.learn_label(opened.sender, &opened.content.sender_label);
        }
        let message_id = opened.content.message_id;
        Ok(Some((
            Received {
                id: 0,
                sender: opened.sender,
                sender_role: on_roster.map(|e| e.role),
                timestamp: opened.content.timestamp,
                thread: opened.content.thread,
                message: opened.content.message,
                sender_label: opened.content.sender_label,
                via_panic_key: panic_signed.is_some(),
            },
            message_id,
        )))
    }
}

/// The device's sealed state as stored: its row, replay guard and outbox
/// (and warnings about items that could not be read).
fn read_local(
    state: &StateDir,
    storage: &StorageKey,
) -> Result<(DeviceRow, ReplayGuard, Vec<Item>, Vec<String>), ClientError> {
    decode_local(state.load_sealed(DEVICE_FILE, storage)?.as_deref())
}

/// The device's state from the opened bytes of `device.sealed` (`None`:
/// there is no such file yet).
fn decode_local(
    bytes: Option<&[u8]>,
) -> Result<(DeviceRow, ReplayGuard, Vec<Item>, Vec<String>), ClientError> {
    let local = match bytes {
        Some(bytes) => DeviceRow::decode(bytes)
            .map_err(|_| ClientError::State("device.sealed is damaged".into()))?,
        None => DeviceRow {
            next_prekey_id: 1,
            ..DeviceRow::default()
        },
    };
    let replay = ReplayGuard::decode(&local.replay)
        .ok_or_else(|| ClientError::State("device.sealed is damaged".into()))?;
    // An item this client cannot read (only a bug writes one) is
    // dropped with a warning rather than locking the device: an
    // outbox must never stand between a defender and an SOS.
    let mut warnings = Vec::new();
    let outbox = local
        .outbox
        .iter()
        .filter_map(|row| match Item::from_row(row) {
            Ok(item) => Some(item),
            Err(_) => {
                warnings.push(
                    "an unreadable item was dropped from the outbox (device.sealed is damaged)"
                        .to_owned(),
                );
                None
            }
        })
        .collect();
    Ok((local, replay, outbox, warnings))
}

/// The history entry of an item the server took: what was sent, to which
/// thread (an SOS: its alert's), under which server id.
fn sent_entry(item: &Item, outcome: &Sent) -> Option<Entry> {
    let (server_id, thread, sos) = match outcome {
        // Keys are never kept in the history.
        Sent::Message { .. } if matches!(item.what, Outgoing::CaseKeys { .. }) => return None,
        Sent::Message { id, .. } | Sent::CaseRequested { id, .. } => {
            (*id, item.what.thread(), false)
        }
        Sent::Alert(a) => (a.envelope_id, a.id, true),
        Sent::Dropped { .. } => return None,
    };
    // A request keeps the case the server opened for it, so that what
    // the team shares about that case reads as its answer; and its
    // envelope's digest.
    let (request_case, digest) = match outcome {
        Sent::CaseRequested { case_id, .. } => (
            Some(*case_id),
            item.sealed
                .as_deref()
                .and_then(|b| SignedEnvelope::decode(b).ok())
                .map(|e| e.digest()),
        ),
        _ => (None, None),
    };
    Some(Entry {
        message_id: item.message_id,
        sent: true,
        peer: item.what.to(),
        sender_role: None,
        timestamp: item.created_at,
        thread,
        message: item.content(),
        server_id,
        sos,
        shown: true,
        via_panic_key: false,
        digest,
        request_case,
    })
}

/// What the fuzz targets read `device.sealed` with: [`decode_local`], and
/// the bytes [`Device::save`] would write back (items that could not be
/// read left out, as the device leaves them out), with the warnings.
#[doc(hidden)]
pub fn fuzz_device_file(plain: &[u8]) -> Result<(Vec<u8>, Vec<String>), ClientError> {
    let (mut local, replay, outbox, warnings) = decode_local(Some(plain))?;
    // What the device does with its contacts and prekeys once open.
    let _known: Vec<Contact> = local
        .contacts
        .iter()
        .filter_map(Contact::from_row)
        .collect();
    for p in &local.prekeys {
        if let Ok(secret) = <[u8; 32]>::try_from(p.secret.as_slice()) {
            let _key = EncryptionKeyPair::from_secret(&secret);
        }
    }
    local.replay = replay.encode();
    local.outbox = outbox.iter().map(Item::to_row).collect();
    Ok((local.encode_to_vec(), warnings))
}

#[cfg(test)]
mod tests {
    use hotline_proto::CertPin;

    use super::*;
    use crate::keystore::MIN_ITERATIONS;

    const PASS: &str = "a long test passphrase";

    /// An enrolled device's state directory, without a server.
    fn enrolled(dir: &std::path::Path) -> StateDir {
        let state = StateDir::new(dir.join("home"));
        let (pair, seed) = IdentityKeyPair::generate().expect("randomness");
        state
            .save_identity(&seed, PASS, MIN_ITERATIONS)
            .expect("identity");
        state
            .save_profile(&Profile {
                server_addr: "127.0.0.1:9".into(),
                server_name: "localhost".into(),
                cert_pin: CertPin::from_bytes([1; 32]).to_string(),
                device_id: pair.device_id().to_string(),
                role: "defender".into(),
                org_root: None,
                roster_version: None,
                roster_hash: None,
                roster_alarm: None,
            })
            .expect("profile");
        state
    }

    /// The label of an invite names the device the server lists with its
    /// digest, kept over a reopen; a label nobody used yet waits, and is
    /// forgotten 90 days after its invite expired.
    #[test]
    fn an_invites_label_names_the_device_that_used_it() {
        use hotline_proto::message::DeviceInfo;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = enrolled(dir.path());
        let mut device = Device::open(&state, PASS).expect("open");
        device
            .remember_invite_label([1; 32], "Cleo", 1_000)
            .expect("kept");
        device
            .remember_invite_label([2; 32], "Dan", 1_000)
            .expect("kept");
        let cleo = IdentityKeyPair::from_seed(&[7; 32]);
        let listed = |digest: Option<[u8; 32]>| DeviceInfo {
            device_id: cleo.device_id(),
            role: Role::Officer,
            enrolled_at: 900,
            revoked_at: None,
            identity_key: cleo.public_key(),
            invite_digest: digest,
        };
        // Listed without a digest (an older server): nothing is named.
        assert!(
            device
                .learn_invite_labels(&[listed(None)], 2_000)
                .expect("learn")
                .is_empty()
        );
        assert_eq!(
            device
                .learn_invite_labels(&[listed(Some([1; 32]))], 2_000)
                .expect("learn"),
            vec![(cleo.device_id(), "Cleo".to_owned())]
        );
        let reopened = Device::open(&state, PASS).expect("open");
        assert_eq!(
            reopened.shown(&cleo.device_id()),
            format!("Cleo ({})", &cleo.device_id().to_string()[..8])
        );
        assert_eq!(reopened.local.invite_labels.len(), 1, "Dan's waits");
        let mut device = reopened;
        device
            .learn_invite_labels(&[], 1_000 + INVITE_LABEL_KEPT_SECS)
            .expect("learn");
        assert_eq!(device.local.invite_labels.len(), 1, "not yet forgotten");
        device
            .learn_invite_labels(&[], 1_001 + INVITE_LABEL_KEPT_SECS)
            .expect("learn");
        assert!(
            Device::open(&state, PASS)
                .expect("open")
                .local
                .invite_labels
                .is_empty()
        );
    }

    /// A staff device keeps every roster it accepts for the case checks
    /// (the roster of an event's version); a defender's keeps none.
    #[test]
    fn a_staff_device_keeps_each_roster_it_accepts_for_the_cases() {
        use hotline_proto::e2e::org::OrgKeyPair;
        use hotline_proto::e2e::roster::RosterEntry;
        let root = OrgKeyPair::from_seed(&[3; 32]);
        let dir = tempfile::tempdir().expect("tempdir");
        let state = enrolled(dir.path());
        let mut profile = state.load_profile().expect("profile");
        let staff = IdentityKeyPair::from_seed(&[1; 32]);
        let roster = |version: u64, previous_hash: [u8; 32]| {
            Roster {
                version,
                issued_at: 0,
                expires_at: u64::MAX,
                previous_hash,
                entries: vec![RosterEntry {
                    device_id: staff.device_id(),
                    role: Role::Officer,
                    identity_key: staff.public_key(),
                    valid_from: 0,
                    valid_until: u64::MAX,
                }],
            }
            .sign(&root)
        };
        let v1 = roster(1, [0; 32]);
        let v2 = roster(2, v1.hash());
        // A defender's device: nothing kept.
        let mut defender = Device::open(&state, PASS).expect("opens");
        defender.accept_roster(&root.public_key(), &v1).expect("v1");
        let versions = |d: &Device| {
            crate::rosters::RosterBook::load(d.state(), d.storage_key())
                .expect("book")
                .versions()
        };
        assert!(versions(&defender).is_empty());
        profile.role = "officer".into();
        profile.roster_version = None;
        profile.roster_hash = None;
        state.save_profile(&profile).expect("profile");
        let mut officer = Device::open(&state, PASS).expect("opens");
        officer.accept_roster(&root.public_key(), &v1).expect("v1");
        officer.accept_roster(&root.public_key(), &v2).expect("v2");
        assert_eq!(versions(&officer), [1, 2]);
    }

    /// A `hotline watch` keeps its device open for hours while other
    /// commands run: when it takes the state lock again it sees the SOS
    /// another command queued meanwhile, and what it saves keeps it.
    #[test]
    fn a_device_holding_the_lock_again_sees_and_keeps_what_another_command_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = enrolled(dir.path());
        let mut watch = Device::open(&state, PASS).expect("opens");
        {
            let mut sos = Device::open(&state, PASS).expect("opens");
            sos.hold().expect("lock");
            sos.queue_sos(b"help", Category::Other, Priority::Immediate)
                .expect("queued");
        }
        watch.hold().expect("lock");
        assert_eq!(watch.pending().len(), 1, "the SOS is seen");
        watch
            .queue(b"a note", Outgoing::Message { to: None })
            .expect("queued");
        watch.release();
        let mut later = Device::open(&state, PASS).expect("opens");
        later.hold().expect("lock");
        let kinds: Vec<Outgoing> = later.pending().iter().map(|w| w.what).collect();
        assert_eq!(
            kinds,
            vec![
                Outgoing::Alert(Priority::Immediate),
                Outgoing::Message { to: None }
            ]
        );
    }

    /// Two SOSes typed before either went out are two items, each with
    /// its own text, category and priority (issue 12, third walk-through:
    /// merged into one, the second's category was lost); the second says
    /// it joins the first.
    #[test]
    fn an_sos_typed_while_another_waits_keeps_its_own_category() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = enrolled(dir.path());
        let mut device = Device::open(&state, PASS).expect("opens");
        let (first, joins) = device
            .queue_sos(b"bleeding", Category::Medical, Priority::Routine)
            .expect("queued");
        assert!(!joins);
        let (second, joins) = device
            .queue_sos(b"they are back", Category::Arrest, Priority::Immediate)
            .expect("queued");
        assert!(joins);
        assert_ne!(first, second);
        let waiting = device.pending();
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting[0].what, Outgoing::Alert(Priority::Routine));
        assert_eq!(waiting[1].what, Outgoing::Alert(Priority::Immediate));
        assert_eq!(device.outbox[0].body, b"bleeding");
        assert_eq!(device.outbox[0].category, Some(Category::Medical));
        assert_eq!(device.outbox[1].body, b"they are back");
        assert_eq!(device.outbox[1].category, Some(Category::Arrest));
    }

    /// An SOS whose sealed text the server refuses for good (here an
    /// envelope whose signature does not verify, as a server would refuse
    /// one it can never accept) is raised without its text, never dropped,
    /// and the person is told the text was not sent (issue 11).
    #[tokio::test(flavor = "multi_thread")]
    async fn an_sos_whose_text_is_refused_for_good_is_raised_without_it() {
        use hotline_proto::Signature;
        use hotline_proto::alert::AlertContent;
        let dir = tempfile::tempdir().expect("tempdir");
        hotline_server::log::keys::generate_key_file(&dir.path().join("master.key"))
            .expect("key file");
        let config = hotline_server::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("server"),
            ..hotline_server::Config::default()
        };
        let key = hotline_server::log::keys::KeySource::File(dir.path().join("master.key"));
        let server = hotline_server::RunningServer::start(config, &key)
            .await
            .expect("server");
        let invite = server
            .create_invite(Role::Defender, 600)
            .await
            .expect("invite");
        let state = StateDir::new(dir.path().join("defender"));
        let session = crate::enroll(&state, &invite, PASS, MIN_ITERATIONS)
            .await
            .expect("enrolled");
        let mut device = Device::open(&state, PASS).expect("opens");
        let mine = device
            .queue_item(
                b"they are at the door",
                Outgoing::Alert(Priority::Immediate),
            )
            .expect("queued");
        // Sealed earlier (say before a lost answer); the server will never
        // take these bytes.
        let refused_for_good = SignedEnvelope {
            sender: device.identity.device_id(),
            body: vec![1, 2, 3],
            signature: Signature::from_bytes([0; 64]),
        };
        device.outbox[0].sealed = Some(refused_for_good.encode());
        device.save().expect("saved");

        let settled = device.flush_tracked(&session).await.expect("flushed");
        match settled.as_slice() {
            [(id, Sent::Alert(a))] if *id == mine => {
                assert_eq!(a.content, AlertContent::None, "raised without its text");
                assert_eq!(a.priority, Priority::Immediate);
            }
            other => panic!("the SOS was not raised: {other:?}"),
        }
        let warnings = device.take_warnings();
        assert!(
            warnings.iter().any(|w| w.contains("NOT sent")),
            "the person is told the text was not sent: {warnings:?}"
        );
        assert!(device.outbox.is_empty(), "nothing left to send");
        session.close().await;
        server.shutdown().await;
    }
}
