//! Cases (docs/cases.md; wire rules in docs/protocol.md, section 9).
//!
//! A case's content travels only as [`SignedCaseEvent`]s: signed by their
//! author's device, sealed under the case key that only staff devices on
//! the roster hold. This module holds the typed wire forms every end
//! shares: what the server may read of an event ([`EventHeader`], read
//! without the key), the case requests' answers ([`CaseSync`],
//! [`CaseUpdate`]), the statistics ledger's id ([`ledger_id`]) and the
//! relocation rules ([`relocation`]). [`key`] holds a case key and its
//! commitment (section 9.2), [`seal`] seals and opens events under it
//! (section 9.1).
//!
//! [`content`] re-exports the protobuf types of what an event *says*
//! ([`content::CaseEventContent`]). Unlike every other wire message they
//! are not parsed into domain types here: only staff clients open them,
//! and a client folds each field with its own checks (an unknown entity,
//! field or value is shown as such, never guessed), as the version rule
//! of section 9 says.

pub mod erasure;
pub mod key;
pub mod relocation;
pub mod seal;

use prost::Message as _;

use crate::error::DecodeError;
use crate::identity::{DeviceId, IdentityPublicKey, Signature};
use crate::pb;

/// The protobuf types of a case event's sealed content (module doc).
pub mod content {
    /// A case key as sent to a staff device (`SealedContent.case_keys`).
    pub use crate::pb::CaseKey as WireCaseKey;
    pub use crate::pb::field_value::Kind as FieldValueKind;
    pub use crate::pb::{
        AlertText, CaseEntity, CaseEventContent, CaseOpening, CaseProgramme, CheckinOffer,
        DefenderReply, FieldChange, FieldValue, IdList, SharedItem, StatisticsTombstone,
    };
}

/// Case event format version.
pub const VERSION: u32 = 1;
/// The signature label of a case event (docs/protocol.md, section 7.2).
pub const SIGNATURE_LABEL: &[u8] = b"hotline/1 case event";
/// The label of a key commitment.
pub const COMMITMENT_LABEL: &[u8] = b"hotline/1 case key";
/// The label of the statistics ledger's case id ([`ledger_id`]).
pub const LEDGER_LABEL: &[u8] = b"hotline/1 ledger";
/// Length of case, event, person and relocation ids.
pub const ID_LEN: usize = 16;
/// The lengths a `CaseEventBody.ciphertext` may have: a padding bucket of
/// the content (1, 4, 16 or 64 KiB) and the 16-byte tag.
/// (The envelope buckets plus 16, written out so that this module does
/// not import the envelope's: [`seal`]'s tests check they agree.)
pub const CIPHERTEXT_LENS: [usize; 4] = [1024 + 16, 4096 + 16, 16384 + 16, 65536 + 16];
/// The largest `SignedCaseEvent.body` a server accepts: the largest
/// padded content (65,536 bytes), its tag, and room for the header
/// fields.
pub const MAX_EVENT_BODY_LEN: usize = 65_536 + 16 + 512;

/// A case id: 16 random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseId([u8; ID_LEN]);

impl CaseId {
    /// The id from its bytes.
    pub fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        CaseId(bytes)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// Parses 16 bytes of field `field`.
    pub fn from_slice(bytes: &[u8], field: &'static str) -> Result<Self, DecodeError> {
        Ok(CaseId(
            bytes.try_into().map_err(|_| DecodeError::Invalid(field))?,
        ))
    }
}

/// The id of the organisation's statistics ledger: the first 16 bytes of
/// `SHA-256("hotline/1 ledger" || 0x00 || org root public key)`, so every
/// client that opens it, online or not, picks the same id.
pub fn ledger_id(org_root: &crate::e2e::org::OrgPublicKey) -> CaseId {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(LEDGER_LABEL);
    ctx.update(&[0]);
    ctx.update(org_root.as_bytes());
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&ctx.finish().as_ref()[..ID_LEN]);
    CaseId(id)
}

/// The case's coarse state, which the server sees and enforces rules by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaseState {
    /// A defender asked; no staff event yet.
    Requested,
    /// Open.
    Open,
    /// Closed (the reason is sealed).
    Closed,
}

impl CaseState {
    /// The wire number.
    pub fn to_wire(self) -> i32 {
        match self {
            CaseState::Requested => pb::CaseState::Requested as i32,
            CaseState::Open => pb::CaseState::Open as i32,
            CaseState::Closed => pb::CaseState::Closed as i32,
        }
    }

    /// `None` for 0 (unchanged); an unknown number is invalid.
    pub fn from_wire(n: i32, field: &'static str) -> Result<Option<Self>, DecodeError> {
        match pb::CaseState::try_from(n) {
            Ok(pb::CaseState::Unspecified) => Ok(None),
            Ok(pb::CaseState::Requested) => Ok(Some(CaseState::Requested)),
            Ok(pb::CaseState::Open) => Ok(Some(CaseState::Open)),
            Ok(pb::CaseState::Closed) => Ok(Some(CaseState::Closed)),
            Err(_) => Err(DecodeError::Invalid(field)),
        }
    }

    /// In words.
    pub fn name(self) -> &'static str {
        match self {
            CaseState::Requested => "requested",
            CaseState::Open => "open",
            CaseState::Closed => "closed",
        }
    }
}

/// A change of the legal hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegalHold {
    /// Set: the case cannot be erased.
    Set,
    /// Lifted.
    Lifted,
}

/// The server-visible part of a case event (`CaseControl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaseControl {
    /// The state the event moves the case to (`None`: unchanged).
    pub state: Option<CaseState>,
    /// A change of the legal hold (`None`: unchanged).
    pub legal_hold: Option<LegalHold>,
    /// The first event of the statistics ledger.
    pub ledger: bool,
}

impl CaseControl {
    /// The wire form (`None` when nothing is set, as writers leave it).
    pub(crate) fn to_wire(self) -> Option<pb::CaseControl> {
        if self == CaseControl::default() {
            return None;
        }
        Some(pb::CaseControl {
            state: self.state.map_or(0, CaseState::to_wire),
            legal_hold: match self.legal_hold {
                None => 0,
                Some(LegalHold::Set) => pb::LegalHold::Set as i32,
                Some(LegalHold::Lifted) => pb::LegalHold::Lifted as i32,
            },
            ledger: self.ledger,
        })
    }

    fn from_wire(m: Option<pb::CaseControl>) -> Result<Self, DecodeError> {
        let Some(m) = m else {
            return Ok(CaseControl::default());
        };
        Ok(CaseControl {
            state: CaseState::from_wire(m.state, "control.state")?,
            legal_hold: match pb::LegalHold::try_from(m.legal_hold) {
                Ok(pb::LegalHold::Unspecified) => None,
                Ok(pb::LegalHold::Set) => Some(LegalHold::Set),
                Ok(pb::LegalHold::Lifted) => Some(LegalHold::Lifted),
                Err(_) => return Err(DecodeError::Invalid("control.legal_hold")),
            },
            ledger: m.ledger,
        })
    }
}

/// A case event as it travels: the exact signed body and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCaseEvent {
    /// Whose identity key verifies the signature.
    pub author: DeviceId,
    /// A `CaseEventBody`, as signed.
    pub body: Vec<u8>,
    /// Ed25519 over `"hotline/1 case event" || 0x00 || body`.
    pub signature: Signature,
}

/// What anyone may read of a case event without its key: the fields of
/// `CaseEventBody` outside the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// The case.
    pub case_id: CaseId,
    /// The author's id for this event.
    pub event_id: [u8; ID_LEN],
    /// The author (equal to [`SignedCaseEvent::author`]).
    pub author: DeviceId,
    /// The roster the author was on.
    pub roster_version: u64,
    /// The case key epoch (at least 1).
    pub epoch: u32,
    /// The commitment to that epoch's key.
    pub key_commitment: [u8; 32],
    /// What the server must see.
    pub control: CaseControl,
    /// The ciphertext's length (with its tag): what its size bucket is.
    pub ciphertext_len: usize,
}

impl SignedCaseEvent {
    /// The wire form.
    pub(crate) fn to_wire(&self) -> pb::SignedCaseEvent {
        pb::SignedCaseEvent {
            author: self.author.as_bytes().to_vec().into(),
            body: self.body.clone().into(),
            signature: self.signature.as_bytes().to_vec().into(),
        }
    }

    /// Parses the outer wrapper only (the body is read by
    /// [`SignedCaseEvent::header_unverified`] or opened after the
    /// signature is checked).
    pub(crate) fn from_wire(m: pb::SignedCaseEvent) -> Result<Self, DecodeError> {
        if m.body.is_empty() {
            return Err(DecodeError::Missing("body"));
        }
        if m.body.len() > MAX_EVENT_BODY_LEN {
            return Err(DecodeError::Invalid("body"));
        }
        Ok(SignedCaseEvent {
            author: DeviceId::from_slice(&m.author, "author")?,
            body: m.body.to_vec(),
            signature: Signature::from_slice(&m.signature, "signature")?,
        })
    }

    /// The encoded wire form.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// Decodes the encoded wire form (wrapper only).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_wire(pb::SignedCaseEvent::decode(bytes)?)
    }

    /// Checks the signature under the author's identity key (which must
    /// derive the author's id).
    pub fn verify_signature(&self, author_key: &IdentityPublicKey) -> Result<(), DecodeError> {
        if author_key.device_id() != self.author {
            return Err(DecodeError::Invalid("author"));
        }
        author_key
            .verify(
                &crate::e2e::signed_message(SIGNATURE_LABEL, &self.body),
                &self.signature,
            )
            .map_err(|_| DecodeError::Invalid("signature"))
    }

    /// Reads the header without the key and without checking the
    /// signature (the caller checks it: the server with the author's
    /// enrolled key). Fails on a version other than 1, an author inside
    /// the body other than the one outside it, a wrong length (ids 16
    /// bytes, commitment 32, nonce 12), epoch 0, a control holding an
    /// unknown number, or a ciphertext whose length is not one of
    /// [`CIPHERTEXT_LENS`] (empty included). A control moving the case to
    /// requested reads: the server refuses it with its rules (section
    /// 9.3), as it refuses any move the case's state does not allow.
    /// Whether the body is the canonical encoding of its fields: decoded
    /// and encoded again, it gives the same bytes (fields in number
    /// order, each once, none at its default, no unknown field), and it
    /// holds no empty `control` (`42 00`: a message field at its default,
    /// which writers leave out). A server stores only such bodies and
    /// readers skip any other (docs/protocol.md, sections 9.1 and 9.3,
    /// rule 2), so a body's length follows from its fields and a sync
    /// frame's size from the events it holds.
    pub fn body_is_canonical(&self) -> bool {
        pb::CaseEventBody::decode(self.body.as_slice()).is_ok_and(|b| {
            b.control
                .as_ref()
                .is_none_or(|c| *c != pb::CaseControl::default())
                && b.encode_to_vec() == self.body
        })
    }

    pub fn header_unverified(&self) -> Result<EventHeader, DecodeError> {
        let b = pb::CaseEventBody::decode(self.body.as_slice())?;
        if b.version != VERSION {
            return Err(DecodeError::UnsupportedVersion(b.version));
        }
        let author = DeviceId::from_slice(&b.author, "author")?;
        if author != self.author {
            return Err(DecodeError::Invalid("author"));
        }
        if b.epoch == 0 {
            return Err(DecodeError::Invalid("epoch"));
        }
        if b.nonce.len() != 12 {
            return Err(DecodeError::Invalid("nonce"));
        }
        if b.ciphertext.is_empty() {
            return Err(DecodeError::Missing("ciphertext"));
        }
        if !CIPHERTEXT_LENS.contains(&b.ciphertext.len()) {
            return Err(DecodeError::Invalid("ciphertext"));
        }
        Ok(EventHeader {
            case_id: CaseId::from_slice(&b.case_id, "case_id")?,
            event_id: b
                .event_id
                .as_ref()
                .try_into()
                .map_err(|_| DecodeError::Invalid("event_id"))?,
            author,
            roster_version: b.roster_version,
            epoch: b.epoch,
            key_commitment: b
                .key_commitment
                .as_ref()
                .try_into()
                .map_err(|_| DecodeError::Invalid("key_commitment"))?,
            control: CaseControl::from_wire(b.control)?,
            ciphertext_len: b.ciphertext.len(),
        })
    }
}

/// What a case update in a sync carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseUpdateKind {
    /// An event, with its author's identity key as enrolled.
    Event {
        /// The event.
        event: SignedCaseEvent,
        /// The author's enrolled identity key.
        author_key: IdentityPublicKey,
    },
    /// A defender asked for a case.
    Requested {
        /// The defender device.
        defender: DeviceId,
        /// SHA-256 of the request's `SignedEnvelope` wire form.
        envelope_digest: [u8; 32],
    },
    /// Erasure was asked for, waiting for a second staff member.
    ErasureRequested {
        /// Who asked.
        requested_by: DeviceId,
        /// Its erasure signature, step 1 ([`erasure`]; `None`: a request
        /// stored before signatures existed).
        signature: Option<Signature>,
        /// The closing the signature covers (`None`: a request stored
        /// before erasures named it).
        closing: Option<erasure::Closing>,
    },
    /// The case was erased.
    Erased {
        /// Who asked.
        requested_by: DeviceId,
        /// Who confirmed.
        confirmed_by: DeviceId,
        /// The requester's erasure signature, step 1 (`None`: an erasure
        /// stored before signatures existed).
        request_signature: Option<Signature>,
        /// The confirmer's erasure signature, step 2 (`None`: as above).
        confirm_signature: Option<Signature>,
        /// The closing both signatures cover (`None`: an erasure stored
        /// before erasures named it).
        closing: Option<erasure::Closing>,
    },
}

/// One update of a sync (`CaseUpdate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseUpdate {
    /// Its sync position.
    pub position: u64,
    /// The case.
    pub case_id: CaseId,
    /// When the server accepted it.
    pub at: u64,
    /// What it is.
    pub kind: CaseUpdateKind,
}

fn device(bytes: &[u8], field: &'static str) -> Result<DeviceId, DecodeError> {
    DeviceId::from_slice(bytes, field)
}

/// An erasure signature field: empty is none (stored before signatures
/// existed), 64 bytes a signature, any other length invalid.
fn optional_signature(bytes: &[u8], field: &'static str) -> Result<Option<Signature>, DecodeError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Signature::from_slice(bytes, field).map(Some)
}

fn signature_bytes(s: &Option<Signature>) -> Vec<u8> {
    s.map(|s| s.as_bytes().to_vec()).unwrap_or_default()
}

/// The closing fields of an erasure update: both empty is none, both 16
/// bytes a closing, anything else invalid.
fn optional_closing(
    author: &[u8],
    event_id: &[u8],
) -> Result<Option<erasure::Closing>, DecodeError> {
    if author.is_empty() && event_id.is_empty() {
        return Ok(None);
    }
    Ok(Some(erasure::Closing {
        author: device(author, "closing_author")?,
        event_id: event_id
            .try_into()
            .map_err(|_| DecodeError::Invalid("closing_event_id"))?,
    }))
}

fn closing_bytes(c: &Option<erasure::Closing>) -> (Vec<u8>, Vec<u8>) {
    c.map(|c| (c.author.as_bytes().to_vec(), c.event_id.to_vec()))
        .unwrap_or_default()
}

impl CaseUpdate {
    /// The wire form.
    pub(crate) fn to_wire(&self) -> pb::CaseUpdate {
        use pb::case_update::Kind;
        let mut author_identity_key = Vec::new();
        let kind = match &self.kind {
            CaseUpdateKind::Event { event, author_key } => {
                author_identity_key = author_key.as_bytes().to_vec();
                Kind::Event(event.to_wire())
            }
            CaseUpdateKind::Requested {
                defender,
                envelope_digest,
            } => Kind::Requested(pb::CaseRequested {
                defender: defender.as_bytes().to_vec().into(),
                envelope_digest: envelope_digest.to_vec().into(),
            }),
            CaseUpdateKind::ErasureRequested {
                requested_by,
                signature,
                closing,
            } => {
                let (closing_author, closing_event_id) = closing_bytes(closing);
                Kind::ErasureRequested(pb::CaseErasureRequested {
                    requested_by: requested_by.as_bytes().to_vec().into(),
                    signature: signature_bytes(signature).into(),
                    closing_author: closing_author.into(),
                    closing_event_id: closing_event_id.into(),
                })
            }
            CaseUpdateKind::Erased {
                requested_by,
                confirmed_by,
                request_signature,
                confirm_signature,
                closing,
            } => {
                let (closing_author, closing_event_id) = closing_bytes(closing);
                Kind::Erased(pb::CaseErased {
                    requested_by: requested_by.as_bytes().to_vec().into(),
                    confirmed_by: confirmed_by.as_bytes().to_vec().into(),
                    request_signature: signature_bytes(request_signature).into(),
                    confirm_signature: signature_bytes(confirm_signature).into(),
                    closing_author: closing_author.into(),
                    closing_event_id: closing_event_id.into(),
                })
            }
        };
        pb::CaseUpdate {
            position: self.position,
            case_id: self.case_id.as_bytes().to_vec().into(),
            at: self.at,
            kind: Some(kind),
            author_identity_key: author_identity_key.into(),
        }
    }

    /// Parses the wire form.
    pub(crate) fn from_wire(m: pb::CaseUpdate) -> Result<Self, DecodeError> {
        use pb::case_update::Kind;
        let kind = match m.kind.ok_or(DecodeError::Missing("kind"))? {
            Kind::Event(e) => CaseUpdateKind::Event {
                event: SignedCaseEvent::from_wire(e)?,
                author_key: IdentityPublicKey::from_slice(
                    &m.author_identity_key,
                    "author_identity_key",
                )?,
            },
            Kind::Requested(r) => CaseUpdateKind::Requested {
                defender: device(&r.defender, "defender")?,
                envelope_digest: r
                    .envelope_digest
                    .as_ref()
                    .try_into()
                    .map_err(|_| DecodeError::Invalid("envelope_digest"))?,
            },
            Kind::ErasureRequested(r) => CaseUpdateKind::ErasureRequested {
                requested_by: device(&r.requested_by, "requested_by")?,
                signature: optional_signature(&r.signature, "signature")?,
                closing: optional_closing(&r.closing_author, &r.closing_event_id)?,
            },
            Kind::Erased(r) => CaseUpdateKind::Erased {
                requested_by: device(&r.requested_by, "requested_by")?,
                confirmed_by: device(&r.confirmed_by, "confirmed_by")?,
                request_signature: optional_signature(&r.request_signature, "request_signature")?,
                confirm_signature: optional_signature(&r.confirm_signature, "confirm_signature")?,
                closing: optional_closing(&r.closing_author, &r.closing_event_id)?,
            },
        };
        Ok(CaseUpdate {
            position: m.position,
            case_id: CaseId::from_slice(&m.case_id, "case_id")?,
            at: m.at,
            kind,
        })
    }
}

/// One frame of the answer to `sync_cases`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaseSync {
    /// In sync order.
    pub updates: Vec<CaseUpdate>,
    /// The position to ask after next time.
    pub cursor: u64,
    /// More exist after `cursor` than this answer carried.
    pub more: bool,
    /// The server's retention of closed cases, in seconds.
    pub retention_secs: u64,
}

impl CaseSync {
    /// The wire form.
    pub(crate) fn to_wire(&self) -> pb::CaseSync {
        pb::CaseSync {
            updates: self.updates.iter().map(CaseUpdate::to_wire).collect(),
            cursor: self.cursor,
            more: self.more,
            retention_secs: self.retention_secs,
        }
    }

    /// Parses the wire form: positions strictly increasing, and `cursor`
    /// not before the last of them (a client resuming after `cursor` must
    /// never skip an update it was sent). An event whose body is malformed
    /// is kept here (its wrapper is well formed): the reader skips it
    /// alone, with a warning, and the sync goes on.
    pub(crate) fn from_wire(m: pb::CaseSync) -> Result<Self, DecodeError> {
        let updates: Vec<CaseUpdate> = m
            .updates
            .into_iter()
            .map(CaseUpdate::from_wire)
            .collect::<Result<_, _>>()?;
        if updates.windows(2).any(|w| w[0].position >= w[1].position) {
            return Err(DecodeError::Invalid("position"));
        }
        if updates.last().is_some_and(|u| u.position > m.cursor) {
            return Err(DecodeError::Invalid("cursor"));
        }
        Ok(CaseSync {
            updates,
            cursor: m.cursor,
            more: m.more,
            retention_secs: m.retention_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdentityKeyPair;

    fn author() -> IdentityKeyPair {
        IdentityKeyPair::from_seed(&[5; 32])
    }

    /// A well-formed body by [`author`].
    fn body() -> pb::CaseEventBody {
        pb::CaseEventBody {
            version: VERSION,
            case_id: vec![1; 16].into(),
            event_id: vec![2; 16].into(),
            author: author().device_id().as_bytes().to_vec().into(),
            roster_version: 3,
            epoch: 1,
            key_commitment: vec![4; 32].into(),
            control: CaseControl {
                state: Some(CaseState::Open),
                ..CaseControl::default()
            }
            .to_wire(),
            nonce: vec![6; 12].into(),
            ciphertext: vec![7; 1024 + 16].into(),
        }
    }

    fn signed(b: &pb::CaseEventBody) -> SignedCaseEvent {
        let body = b.encode_to_vec();
        let signature = author().sign(&crate::e2e::signed_message(SIGNATURE_LABEL, &body));
        SignedCaseEvent {
            author: author().device_id(),
            body,
            signature,
        }
    }

    fn header_of(change: impl FnOnce(&mut pb::CaseEventBody)) -> Result<EventHeader, DecodeError> {
        let mut b = body();
        change(&mut b);
        signed(&b).header_unverified()
    }

    #[test]
    fn a_well_formed_header_reads_without_the_key() {
        let h = header_of(|_| {}).expect("header");
        assert_eq!(h.case_id, CaseId::from_bytes([1; 16]));
        assert_eq!(h.event_id, [2; 16]);
        assert_eq!(h.author, author().device_id());
        assert_eq!((h.roster_version, h.epoch), (3, 1));
        assert_eq!(h.key_commitment, [4; 32]);
        assert_eq!(h.control.state, Some(CaseState::Open));
        assert_eq!(h.ciphertext_len, 1040);
        let e = signed(&body());
        assert_eq!(e.verify_signature(&author().public_key()), Ok(()));
        let other = IdentityKeyPair::from_seed(&[6; 32]);
        assert!(e.verify_signature(&other.public_key()).is_err());
    }

    type Change = Box<dyn FnOnce(&mut pb::CaseEventBody)>;

    #[test]
    fn every_malformed_header_is_refused() {
        let other = IdentityKeyPair::from_seed(&[6; 32]).device_id();
        let cases: Vec<(Change, DecodeError)> = vec![
            (
                Box::new(|b| b.version = 2),
                DecodeError::UnsupportedVersion(2),
            ),
            (
                Box::new(|b| b.version = 0),
                DecodeError::UnsupportedVersion(0),
            ),
            (
                Box::new(move |b| b.author = other.as_bytes().to_vec().into()),
                DecodeError::Invalid("author"),
            ),
            (
                Box::new(|b| b.author = vec![].into()),
                DecodeError::Invalid("author"),
            ),
            (Box::new(|b| b.epoch = 0), DecodeError::Invalid("epoch")),
            (
                Box::new(|b| b.case_id = vec![1; 15].into()),
                DecodeError::Invalid("case_id"),
            ),
            (
                Box::new(|b| b.case_id = vec![].into()),
                DecodeError::Invalid("case_id"),
            ),
            (
                Box::new(|b| b.event_id = vec![2; 17].into()),
                DecodeError::Invalid("event_id"),
            ),
            (
                Box::new(|b| b.key_commitment = vec![4; 31].into()),
                DecodeError::Invalid("key_commitment"),
            ),
            (
                Box::new(|b| b.nonce = vec![6; 24].into()),
                DecodeError::Invalid("nonce"),
            ),
            (
                Box::new(|b| b.ciphertext = vec![].into()),
                DecodeError::Missing("ciphertext"),
            ),
            (
                Box::new(|b| b.ciphertext = vec![7; 16].into()),
                DecodeError::Invalid("ciphertext"),
            ),
            (
                Box::new(|b| b.ciphertext = vec![7; 1024].into()),
                DecodeError::Invalid("ciphertext"),
            ),
            (
                Box::new(|b| b.ciphertext = vec![7; 1041].into()),
                DecodeError::Invalid("ciphertext"),
            ),
            (
                Box::new(|b| {
                    b.control = Some(pb::CaseControl {
                        state: 9,
                        ..Default::default()
                    })
                }),
                DecodeError::Invalid("control.state"),
            ),
            (
                Box::new(|b| {
                    b.control = Some(pb::CaseControl {
                        legal_hold: 3,
                        ..Default::default()
                    })
                }),
                DecodeError::Invalid("control.legal_hold"),
            ),
        ];
        for (i, (change, want)) in cases.into_iter().enumerate() {
            assert_eq!(header_of(change), Err(want), "case {i}");
        }
        // Not a CaseEventBody at all.
        let mut e = signed(&body());
        e.body = vec![0xff, 0xff, 0xff];
        assert!(e.header_unverified().is_err());
        // A move to requested reads (the server's rules refuse it).
        let h = header_of(|b| {
            b.control = Some(pb::CaseControl {
                state: pb::CaseState::Requested as i32,
                ..Default::default()
            })
        })
        .expect("reads");
        assert_eq!(h.control.state, Some(CaseState::Requested));
        // Every bucket's length is accepted.
        for len in CIPHERTEXT_LENS {
            assert!(header_of(|b| b.ciphertext = vec![7; len].into()).is_ok());
        }
    }

    #[test]
    fn the_wrapper_refuses_an_empty_or_oversized_body_and_bad_lengths() {
        let good = signed(&body());
        assert_eq!(SignedCaseEvent::decode(&good.encode()), Ok(good.clone()));
        let wire = |f: &dyn Fn(&mut pb::SignedCaseEvent)| {
            let mut m = good.to_wire();
            f(&mut m);
            SignedCaseEvent::decode(&m.encode_to_vec())
        };
        assert_eq!(
            wire(&|m| m.body = vec![].into()),
            Err(DecodeError::Missing("body"))
        );
        assert_eq!(
            wire(&|m| m.body = vec![0; MAX_EVENT_BODY_LEN + 1].into()),
            Err(DecodeError::Invalid("body"))
        );
        assert!(wire(&|m| m.body = vec![0; MAX_EVENT_BODY_LEN].into()).is_ok());
        assert_eq!(
            wire(&|m| m.author = vec![1; 15].into()),
            Err(DecodeError::Invalid("author"))
        );
        assert_eq!(
            wire(&|m| m.signature = vec![1; 63].into()),
            Err(DecodeError::Invalid("signature"))
        );
    }

    #[test]
    fn the_ledger_id_depends_on_the_org_root_alone() {
        let a = crate::e2e::org::OrgKeyPair::from_seed(&[1; 32]).public_key();
        let b = crate::e2e::org::OrgKeyPair::from_seed(&[2; 32]).public_key();
        assert_eq!(ledger_id(&a), ledger_id(&a));
        assert_ne!(ledger_id(&a), ledger_id(&b));
    }

    fn updates() -> Vec<CaseUpdate> {
        let case_id = CaseId::from_bytes([1; 16]);
        let d = |n: u8| IdentityKeyPair::from_seed(&[n; 32]).device_id();
        vec![
            CaseUpdate {
                position: 1,
                case_id,
                at: 10,
                kind: CaseUpdateKind::Requested {
                    defender: d(9),
                    envelope_digest: [3; 32],
                },
            },
            CaseUpdate {
                position: 2,
                case_id,
                at: 11,
                kind: CaseUpdateKind::Event {
                    event: signed(&body()),
                    author_key: author().public_key(),
                },
            },
            CaseUpdate {
                position: 5,
                case_id,
                at: 12,
                kind: CaseUpdateKind::ErasureRequested {
                    requested_by: d(5),
                    signature: Some(Signature::from_bytes([5; 64])),
                    closing: Some(erasure::Closing {
                        author: d(4),
                        event_id: [4; 16],
                    }),
                },
            },
            CaseUpdate {
                position: 6,
                case_id,
                at: 13,
                kind: CaseUpdateKind::Erased {
                    requested_by: d(5),
                    confirmed_by: d(6),
                    request_signature: Some(Signature::from_bytes([5; 64])),
                    confirm_signature: None,
                    closing: None,
                },
            },
        ]
    }

    /// Through the wire: encoded and decoded again.
    fn through_the_wire(s: &CaseSync) -> Result<CaseSync, DecodeError> {
        let bytes = s.to_wire().encode_to_vec();
        CaseSync::from_wire(pb::CaseSync::decode(bytes.as_slice())?)
    }

    #[test]
    fn a_case_sync_round_trips_every_kind_of_update() {
        let s = CaseSync {
            updates: updates(),
            cursor: 6,
            more: true,
            retention_secs: 365 * 86_400,
        };
        assert_eq!(through_the_wire(&s), Ok(s));
        let empty = CaseSync {
            cursor: 42,
            ..CaseSync::default()
        };
        assert_eq!(through_the_wire(&empty), Ok(empty));
    }

    #[test]
    fn a_malformed_case_sync_is_refused() {
        let base = CaseSync {
            updates: updates(),
            cursor: 6,
            more: false,
            retention_secs: 0,
        };
        let refused = |f: &dyn Fn(&mut pb::CaseSync)| {
            let mut m = base.to_wire();
            f(&mut m);
            CaseSync::from_wire(m)
        };
        assert_eq!(
            refused(&|m| m.updates[0].kind = None),
            Err(DecodeError::Missing("kind"))
        );
        assert_eq!(
            refused(&|m| m.updates[0].case_id = vec![1; 8].into()),
            Err(DecodeError::Invalid("case_id"))
        );
        assert_eq!(
            refused(&|m| m.updates[1].author_identity_key = vec![].into()),
            Err(DecodeError::Invalid("author_identity_key"))
        );
        assert!(matches!(
            refused(&|m| {
                if let Some(pb::case_update::Kind::Requested(r)) = &mut m.updates[0].kind {
                    r.envelope_digest = vec![3; 31].into();
                }
            }),
            Err(DecodeError::Invalid("envelope_digest"))
        ));
        assert!(matches!(
            refused(&|m| {
                if let Some(pb::case_update::Kind::Erased(r)) = &mut m.updates[3].kind {
                    r.confirmed_by = vec![].into();
                }
            }),
            Err(DecodeError::Invalid("confirmed_by"))
        ));
        assert!(matches!(
            refused(&|m| {
                if let Some(pb::case_update::Kind::Erased(r)) = &mut m.updates[3].kind {
                    r.confirm_signature = vec![6; 63].into();
                }
            }),
            Err(DecodeError::Invalid("confirm_signature"))
        ));
        // A closing is both of its fields, 16 bytes each, or neither.
        assert!(matches!(
            refused(&|m| {
                if let Some(pb::case_update::Kind::ErasureRequested(r)) = &mut m.updates[2].kind {
                    r.closing_event_id = vec![].into();
                }
            }),
            Err(DecodeError::Invalid("closing_event_id"))
        ));
        assert!(matches!(
            refused(&|m| {
                if let Some(pb::case_update::Kind::Erased(r)) = &mut m.updates[3].kind {
                    r.closing_author = vec![4; 16].into();
                }
            }),
            Err(DecodeError::Invalid("closing_event_id"))
        ));
        assert_eq!(
            refused(&|m| m.updates[2].position = 2),
            Err(DecodeError::Invalid("position"))
        );
        assert_eq!(
            refused(&|m| m.cursor = 5),
            Err(DecodeError::Invalid("cursor"))
        );
        // An event whose body is malformed is kept in the frame: its
        // reader skips it alone.
        let kept = refused(&|m| {
            if let Some(pb::case_update::Kind::Event(e)) = &mut m.updates[1].kind {
                e.body = vec![0xff].into();
            }
        })
        .expect("the frame reads");
        let CaseUpdateKind::Event { event, .. } = &kept.updates[1].kind else {
            panic!("an event");
        };
        assert!(event.header_unverified().is_err());
    }

    /// Issue 12, second review, Y point 6: an empty `control` (`42 00`)
    /// decodes and encodes again to the same bytes, yet is a field at its
    /// default: not canonical. Left out, or holding a value, it is.
    #[test]
    fn an_empty_control_is_not_canonical() {
        let mut b = body();
        b.control = None;
        assert!(signed(&b).body_is_canonical(), "left out");
        assert!(signed(&body()).body_is_canonical(), "with a state");
        b.control = Some(pb::CaseControl::default());
        let e = signed(&b);
        assert!(
            e.body.windows(2).any(|w| w == [0x42, 0x00]),
            "the empty control is on the wire"
        );
        assert!(e.header_unverified().is_ok(), "the header still reads");
        assert!(!e.body_is_canonical());
    }
}
