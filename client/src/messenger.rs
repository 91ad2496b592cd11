//! End-to-end messaging on a device: its prekeys, the roster it trusts,
//! sealing messages to the right devices and opening what arrives.
//!
//! Local secrets (private prekeys, the message counter, the replay guard,
//! the inbox position) live in `device.sealed` in the state directory,
//! sealed under a key derived from the identity seed, and are rewritten
//! atomically. A one-time prekey's private half is deleted as soon as the
//! message it opened has been handed to the caller.

use hotline_proto::alert::{AlertInfo, Priority};
use hotline_proto::e2e::envelope::{self, Content, EnvelopeError, Recipient, SignedEnvelope};
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
use crate::error::ClientError;
use crate::keystore::StorageKey;
use crate::outbox::{Item, OutboxRow, Outgoing};
use crate::state::{Profile, StateDir};

const DEVICE_FILE: &str = "device.sealed";
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
}

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
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

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
    /// The message.
    pub body: Vec<u8>,
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
        let local = match state.load_sealed(DEVICE_FILE, &storage)? {
            Some(bytes) => DeviceRow::decode(bytes.as_slice())
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
        Ok(Device {
            identity,
            storage,
            state: state.clone(),
            profile,
            local,
            replay,
            outbox,
            warnings,
        })
    }

    /// This device's identity.
    pub fn identity(&self) -> &IdentityKeyPair {
        &self.identity
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Connects and authenticates.
    pub async fn connect(&self) -> Result<Session, ClientError> {
        crate::connection::authenticate(&self.profile.server()?, &self.identity).await
    }

    fn save(&mut self) -> Result<(), ClientError> {
        self.local.replay = self.replay.encode();
        self.local.outbox = self.outbox.iter().map(Item::to_row).collect();
        let bytes = self.local.encode_to_vec();
        self.state.save_sealed(DEVICE_FILE, &self.storage, &bytes)
    }

    /// Warnings collected while receiving (keys that did not match), to
    /// show the person loudly.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Ids of the private prekeys this device still holds.
    pub fn prekey_ids(&self) -> Vec<u32> {
        self.local.prekeys.iter().map(|p| p.id).collect()
    }

    /// The pinned organisation root.
    pub fn org_root(&self) -> Option<OrgPublicKey> {
        let bytes: [u8; 32] = unhex(self.profile.org_root.as_deref()?)?.try_into().ok()?;
        Some(OrgPublicKey::from_bytes(bytes))
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

    /// Makes sure this device has a fresh last-resort prekey and enough
    /// one-time prekeys published. Returns how many were published.
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
        let one_time = self.local.prekeys.iter().filter(|p| p.one_time).count();
        for _ in one_time..ONE_TIME_PREKEYS {
            new.push(self.new_prekey(PrekeyKind::OneTime, now));
        }
        if new.is_empty() {
            return Ok(0);
        }
        let count = new.len();
        // Keep the private halves before publishing: a crash after the server
        // took them must not leave public keys nobody can use.
        self.save()?;
        session.publish_prekeys(new).await?;
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

    /// Verifies `signed` and remembers it as the newest seen.
    pub fn accept_roster(
        &mut self,
        root: &OrgPublicKey,
        signed: &SignedRoster,
    ) -> Result<Roster, ClientError> {
        let roster = signed
            .verify(root, crate::unix_now(), self.seen_roster())
            .map_err(refused)?;
        if self.profile.roster_version != Some(roster.version) {
            self.profile.roster_version = Some(roster.version);
            self.profile.roster_hash = Some(hex(&signed.hash()));
            self.state.save_profile(&self.profile)?;
        }
        Ok(roster)
    }

    /// Seals `body` for the staff on the roster (and `to`, for staff),
    /// under `message_id`.
    async fn seal(
        &mut self,
        session: &Session,
        body: &[u8],
        to: Option<DeviceId>,
        message_id: [u8; 16],
        thread: u64,
    ) -> Result<SignedEnvelope, ClientError> {
        let roster = self.roster(session).await?;
        let now = crate::unix_now();
        let me = self.identity.device_id();
        let mut ids: Vec<DeviceId> = roster
            .members(now)
            .map(|e| e.device_id)
            .filter(|d| *d != me)
            .collect();
        if let Some(to) = to
            && !ids.contains(&to)
            && to != me
        {
            ids.push(to);
        }
        if ids.is_empty() {
            return Err(ClientError::State("nobody on the roster to send to".into()));
        }
        let bundles = session.fetch_prekeys(ids).await?;
        let recipients = self.check_bundles(&roster, bundles, to, now)?;
        self.local.counter += 1;
        let content = Content {
            message_id,
            counter: self.local.counter,
            timestamp: now,
            body: body.to_vec(),
            thread,
        };
        envelope::seal(
            &self.identity,
            roster.version,
            &recipients,
            &content,
            &mut SystemRandomness,
        )
        .map_err(refused)
    }

    /// Puts `body` in the outbox as `what`, saved on disk before anything
    /// is sent. Returns how many items are pending.
    pub fn queue(&mut self, body: &[u8], what: Outgoing) -> Result<usize, ClientError> {
        self.outbox.push(Item::new(body, what, crate::unix_now())?);
        self.save()?;
        Ok(self.outbox.len())
    }

    /// Items waiting in the outbox: when each was written, and whether it
    /// is an alert.
    pub fn pending(&self) -> Vec<(u64, bool)> {
        self.outbox
            .iter()
            .map(|i| (i.created_at, matches!(i.what, Outgoing::Alert(_))))
            .collect()
    }

    /// Sends everything in the outbox, oldest first, each exactly once: an
    /// item is sealed once and kept until the server has it, so a retry
    /// after a lost answer sends the same bytes and the server recognises
    /// them. Stops at the first failure, keeping what is left, except an
    /// item the server refuses in a way retrying cannot fix, which is
    /// dropped.
    pub async fn flush(&mut self, session: &Session) -> Result<Vec<Sent>, ClientError> {
        let mut sent = Vec::new();
        while let Some(item) = self.outbox.first().cloned() {
            let envelope = match item.sealed {
                Some(sealed) => SignedEnvelope::decode(&sealed).map_err(refused)?,
                None => {
                    let env = self
                        .seal(
                            session,
                            &item.body,
                            item.what.to(),
                            item.message_id,
                            item.what.thread(),
                        )
                        .await?;
                    if let Some(first) = self.outbox.first_mut() {
                        first.sealed = Some(env.encode());
                    }
                    self.save()?;
                    env
                }
            };
            let answer = match item.what {
                Outgoing::Message { .. } | Outgoing::Reply { .. } => session
                    .send_envelope(envelope)
                    .await
                    .map(|a| Sent::Message {
                        id: a.id,
                        duplicate: a.duplicate,
                    }),
                Outgoing::Alert(priority) => session
                    .raise_alert(priority, envelope)
                    .await
                    .map(Sent::Alert),
            };
            let result = match answer {
                Ok(sent) => sent,
                // A refusal the server answered; a connection it closed
                // with a code (a revocation, a shutdown) says nothing about
                // this item, which stays.
                Err(ClientError::Refused(e)) if session.connection().close_reason().is_none() => {
                    return Err(self.refused_item(e));
                }
                Err(e) => return Err(e),
            };
            self.outbox.remove(0);
            self.save()?;
            sent.push(result);
        }
        Ok(sent)
    }

    /// The server answered the first outbox item with a refusal. Unless
    /// retrying may fix it (UNAVAILABLE, RATE_LIMITED, INTERNAL), the item
    /// is dropped from the outbox, so that what was written after it is
    /// not stuck behind it, and the error says so
    /// ([`ClientError::Dropped`]); an item kept for a retry returns the
    /// refusal as it is.
    fn refused_item(&mut self, e: hotline_proto::WireError) -> ClientError {
        use hotline_proto::ErrorCode::{Internal, RateLimited, Unavailable};
        if matches!(e.code, Unavailable | RateLimited | Internal) || self.outbox.is_empty() {
            return ClientError::Refused(e);
        }
        self.outbox.remove(0);
        if let Err(save) = self.save() {
            return save;
        }
        ClientError::Dropped(e)
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
        self.queue(body, Outgoing::Message { to })?;
        match self.flush(session).await?.pop() {
            Some(Sent::Message { id, .. }) => Ok(id),
            _ => Err(ClientError::Protocol("the message was not sent".into())),
        }
    }

    /// Raises an alert (defenders), through the outbox: `body` (what
    /// happened, with its category) goes end-to-end encrypted to the staff
    /// on the roster; the server sees only the priority.
    pub async fn raise_alert(
        &mut self,
        session: &Session,
        priority: Priority,
        body: &[u8],
    ) -> Result<AlertInfo, ClientError> {
        self.queue(body, Outgoing::Alert(priority))?;
        match self.flush(session).await?.pop() {
            Some(Sent::Alert(a)) => Ok(a),
            _ => Err(ClientError::Protocol("the alert was not raised".into())),
        }
    }

    /// Keeps only recipients whose keys check out: staff keys must be the
    /// roster's; any other device only if it is the explicit `to` (the
    /// server cannot add one), and every prekey must be signed by its
    /// device's identity key.
    fn check_bundles(
        &self,
        roster: &Roster,
        bundles: Vec<PrekeyBundle>,
        to: Option<DeviceId>,
        now: u64,
    ) -> Result<Vec<Recipient>, ClientError> {
        let mut out = Vec::new();
        for b in bundles {
            if b.identity_key.device_id() != b.device_id {
                return Err(ClientError::State(
                    "the server sent a key that does not match its device".into(),
                ));
            }
            match roster.member(&b.device_id, now) {
                Some(entry) if entry.identity_key == b.identity_key => {}
                Some(_) => {
                    return Err(ClientError::State(
                        "the server sent a staff key that differs from the signed roster".into(),
                    ));
                }
                None if Some(b.device_id) == to && self.profile.role()?.is_staff() => {}
                None => continue, // not on the roster, not asked for: never a recipient
            }
            let Some(signed) = b.prekey else { continue };
            let prekey = signed.verify(&b.identity_key, now).map_err(refused)?;
            out.push(Recipient {
                device_id: b.device_id,
                prekey_id: prekey.id,
                key: prekey.public_key,
            });
        }
        if out.is_empty() {
            return Err(ClientError::State(
                "no recipient has published keys yet".into(),
            ));
        }
        Ok(out)
    }

    /// Fetches, verifies and opens everything waiting, then tells the
    /// server it is held. Envelopes seen before are dropped (replays).
    pub async fn receive(&mut self, session: &Session) -> Result<Vec<Received>, ClientError> {
        let roster = match self.org_root() {
            Some(_) => Some(self.roster(session).await?),
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
            for item in items {
                if let Some(r) =
                    self.open_one(roster.as_ref(), &item.envelope, &item.sender_identity_key)?
                {
                    received.push(Received { id: item.id, ..r });
                }
                self.local.inbox_after = self.local.inbox_after.max(item.id);
            }
            self.save()?;
            session.ack_inbox(self.local.inbox_after).await?;
        }
        Ok(received)
    }

    /// Opens one envelope. `Ok(None)` for one that must be dropped (a
    /// replay, a sender a defender must not trust, one not for this device).
    fn open_one(
        &mut self,
        roster: Option<&Roster>,
        env: &SignedEnvelope,
        sender_key: &hotline_proto::IdentityPublicKey,
    ) -> Result<Option<Received>, ClientError> {
        let now = crate::unix_now();
        if sender_key.device_id() != env.sender {
            self.warnings.push(format!(
                "the server presented an identity key that is not device {}'s: a message was dropped (possible impersonation)",
                env.sender
            ));
            return Ok(None);
        }
        let on_roster = roster.and_then(|r| r.member(&env.sender, now));
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
        let opened = env.open(sender_key, &me, |id| {
            let p = local.iter().find(|p| p.id == id)?;
            let secret: [u8; 32] = p.secret.as_slice().try_into().ok()?;
            used = Some((id, p.one_time));
            EncryptionKeyPair::from_secret(&secret)
        });
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
            Err(e) => return Err(refused(e)),
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
        Ok(Some(Received {
            id: 0,
            sender: opened.sender,
            sender_role: on_roster.map(|e| e.role),
            timestamp: opened.content.timestamp,
            thread: opened.content.thread,
            body: opened.content.body,
        }))
    }
}
