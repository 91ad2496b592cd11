//! Stored forms of cases (issue 12): the case event records and the
//! cases part of a snapshot. Metadata only; an accepted event's signed
//! bytes are stored in its own record, which is sealed under the case's
//! subkey (see `store/cases.rs`).

use std::collections::BTreeMap;

use hotline_proto::Signature;
use hotline_proto::case::erasure::Closing;
use hotline_proto::case::{CaseId, CaseState, SignedCaseEvent};
use prost::Message;

use super::{CodecError, device_id, digest};
use crate::domain::cases::{
    Case, CaseEvent, Cases, ErasedCase, ErasureRequest, EventMeta, RequestMeta,
};

/// Event kinds as stored.
const APPENDED: u32 = 1;
const REQUESTED: u32 = 2;
const ERASURE_REQUESTED: u32 = 3;
const ERASED: u32 = 4;
/// Added in issue 12 (point 4): the case a request envelope made (case id
/// and digest, no position, no defender).
const REQUEST_DIGEST: u32 = 5;

#[derive(Clone, PartialEq, Message)]
pub(super) struct CaseEventRow {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(uint64, tag = "2")]
    position: u64,
    #[prost(uint64, tag = "3")]
    at: u64,
    /// Appended: the `SignedCaseEvent` wire form, as the author sent it.
    #[prost(bytes = "vec", tag = "4")]
    event: Vec<u8>,
    /// Requested, erasure requested and erased: the case.
    #[prost(bytes = "vec", tag = "5")]
    case_id: Vec<u8>,
    /// Requested: the defender; erasure requested and erased: who asked.
    #[prost(bytes = "vec", tag = "6")]
    device: Vec<u8>,
    /// Erased: who confirmed.
    #[prost(bytes = "vec", tag = "7")]
    confirmed_by: Vec<u8>,
    /// Requested and request digest: the envelope's digest.
    #[prost(bytes = "vec", tag = "8")]
    envelope_digest: Vec<u8>,
    /// Added in issue 12 (signed erasure): erasure requested and erased,
    /// the requester's erasure signature (empty: stored before it).
    #[prost(bytes = "vec", tag = "9")]
    signature: Vec<u8>,
    /// Erased: the confirmer's erasure signature (empty: as above).
    #[prost(bytes = "vec", tag = "10")]
    confirm_signature: Vec<u8>,
    /// Added in issue 12 (erasures bound to the closing): erasure
    /// requested and erased, the event that closed the case, which the
    /// signatures cover: its author, then its event id (32 bytes; empty:
    /// stored before).
    #[prost(bytes = "vec", tag = "11")]
    closing: Vec<u8>,
}

fn closing_bytes(c: Option<Closing>) -> Vec<u8> {
    c.map(|c| c.to_bytes().to_vec()).unwrap_or_default()
}

fn closing(bytes: &[u8]) -> Result<Option<Closing>, CodecError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    <[u8; 32]>::try_from(bytes)
        .map(|b| Some(Closing::from_bytes(b)))
        .map_err(|_| CodecError("a case closing of the wrong length"))
}

fn signature_bytes(s: Option<Signature>) -> Vec<u8> {
    s.map(|s| s.as_bytes().to_vec()).unwrap_or_default()
}

fn signature(bytes: &[u8]) -> Result<Option<Signature>, CodecError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    <[u8; 64]>::try_from(bytes)
        .map(|b| Some(Signature::from_bytes(b)))
        .map_err(|_| CodecError("an erasure signature of the wrong length"))
}

fn case_id(bytes: &[u8]) -> Result<CaseId, CodecError> {
    <[u8; 16]>::try_from(bytes)
        .map(CaseId::from_bytes)
        .map_err(|_| CodecError("case id of the wrong length"))
}

pub(super) fn event_row(event: &CaseEvent) -> CaseEventRow {
    let mut r = CaseEventRow {
        position: event.position(),
        ..CaseEventRow::default()
    };
    match event {
        CaseEvent::Appended { at, event, .. } => {
            r.kind = APPENDED;
            r.at = *at;
            r.event = event.encode();
        }
        CaseEvent::Requested {
            at,
            case_id,
            defender,
            envelope_digest,
            ..
        } => {
            r.kind = REQUESTED;
            r.at = *at;
            r.case_id = case_id.as_bytes().to_vec();
            r.device = defender.as_bytes().to_vec();
            r.envelope_digest = envelope_digest.to_vec();
        }
        CaseEvent::RequestDigest {
            case_id,
            envelope_digest,
        } => {
            r.kind = REQUEST_DIGEST;
            r.case_id = case_id.as_bytes().to_vec();
            r.envelope_digest = envelope_digest.to_vec();
        }
        CaseEvent::ErasureRequested {
            at,
            case_id,
            by,
            signature,
            closing,
            ..
        } => {
            r.kind = ERASURE_REQUESTED;
            r.closing = closing_bytes(*closing);
            r.at = *at;
            r.case_id = case_id.as_bytes().to_vec();
            r.device = by.as_bytes().to_vec();
            r.signature = signature_bytes(*signature);
        }
        CaseEvent::Erased {
            at,
            case_id,
            requested_by,
            confirmed_by,
            request_signature,
            confirm_signature,
            closing,
            ..
        } => {
            r.kind = ERASED;
            r.closing = closing_bytes(*closing);
            r.at = *at;
            r.case_id = case_id.as_bytes().to_vec();
            r.device = requested_by.as_bytes().to_vec();
            r.confirmed_by = confirmed_by.as_bytes().to_vec();
            r.signature = signature_bytes(*request_signature);
            r.confirm_signature = signature_bytes(*confirm_signature);
        }
    }
    r
}

pub(super) fn event_from(r: CaseEventRow) -> Result<CaseEvent, CodecError> {
    if r.kind == REQUEST_DIGEST {
        if r.position != 0 {
            return Err(CodecError("a request digest with a position"));
        }
        return Ok(CaseEvent::RequestDigest {
            case_id: case_id(&r.case_id)?,
            envelope_digest: digest(&r.envelope_digest)?,
        });
    }
    if r.position == 0 {
        return Err(CodecError("a case event without a position"));
    }
    Ok(match r.kind {
        APPENDED => {
            let event = SignedCaseEvent::decode(&r.event)
                .map_err(|_| CodecError("a stored case event does not decode"))?;
            let header = event
                .header_unverified()
                .map_err(|_| CodecError("a stored case event's header does not decode"))?;
            CaseEvent::Appended {
                position: r.position,
                at: r.at,
                event,
                header,
            }
        }
        REQUESTED => CaseEvent::Requested {
            position: r.position,
            at: r.at,
            case_id: case_id(&r.case_id)?,
            defender: device_id(&r.device)?,
            envelope_digest: digest(&r.envelope_digest)?,
        },
        ERASURE_REQUESTED => CaseEvent::ErasureRequested {
            position: r.position,
            at: r.at,
            case_id: case_id(&r.case_id)?,
            by: device_id(&r.device)?,
            signature: signature(&r.signature)?,
            closing: closing(&r.closing)?,
        },
        ERASED => CaseEvent::Erased {
            position: r.position,
            at: r.at,
            case_id: case_id(&r.case_id)?,
            requested_by: device_id(&r.device)?,
            confirmed_by: device_id(&r.confirmed_by)?,
            request_signature: signature(&r.signature)?,
            confirm_signature: signature(&r.confirm_signature)?,
            closing: closing(&r.closing)?,
        },
        _ => return Err(CodecError("unknown case event")),
    })
}

// ---------------------------------------------------------------------------
// Snapshot part.

#[derive(Clone, PartialEq, Message)]
struct EventMetaRow {
    #[prost(uint64, tag = "1")]
    position: u64,
    #[prost(uint64, tag = "2")]
    seq: u64,
    #[prost(bytes = "vec", tag = "3")]
    author: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    event_id: Vec<u8>,
    #[prost(uint64, tag = "5")]
    at: u64,
    #[prost(uint64, tag = "6")]
    size: u64,
    #[prost(bytes = "vec", tag = "7")]
    body_digest: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct CaseRow {
    #[prost(bytes = "vec", tag = "1")]
    case_id: Vec<u8>,
    /// 1 requested, 2 open, 3 closed.
    #[prost(uint32, tag = "2")]
    state: u32,
    #[prost(uint64, tag = "3")]
    created_at: u64,
    #[prost(bytes = "vec", tag = "4")]
    creator: Vec<u8>,
    /// The defender's request (position 0: none).
    #[prost(uint64, tag = "5")]
    requested_position: u64,
    #[prost(uint64, tag = "6")]
    requested_at: u64,
    #[prost(bytes = "vec", tag = "7")]
    envelope_digest: Vec<u8>,
    #[prost(bool, tag = "8")]
    closed: bool,
    #[prost(uint64, tag = "9")]
    closed_at: u64,
    #[prost(bool, tag = "10")]
    legal_hold: bool,
    #[prost(bool, tag = "11")]
    ledger: bool,
    #[prost(bytes = "vec", repeated, tag = "12")]
    epochs: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "13")]
    events: Vec<EventMetaRow>,
    /// A pending erasure request (position 0: none).
    #[prost(uint64, tag = "14")]
    erasure_position: u64,
    #[prost(uint64, tag = "15")]
    erasure_at: u64,
    #[prost(bytes = "vec", tag = "16")]
    erasure_by: Vec<u8>,
    /// Added in issue 12 (signed erasure): the pending request's erasure
    /// signature (empty: none, or stored before it).
    #[prost(bytes = "vec", tag = "17")]
    erasure_signature: Vec<u8>,
    /// Added in issue 12 (erasures bound to the closing): the event that
    /// closed the case, which the pending request's signature covers (32
    /// bytes: author, event id; empty: none, or stored before).
    #[prost(bytes = "vec", tag = "18")]
    erasure_closing: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ErasedRow {
    #[prost(bytes = "vec", tag = "1")]
    case_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    position: u64,
    #[prost(uint64, tag = "3")]
    at: u64,
    #[prost(bytes = "vec", tag = "4")]
    requested_by: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    confirmed_by: Vec<u8>,
    /// Added in issue 12 (point 3): the digest of the request that made
    /// the case (empty: none, or a snapshot written before it).
    #[prost(bytes = "vec", tag = "6")]
    envelope_digest: Vec<u8>,
    /// Added in issue 12 (signed erasure): the two erasure signatures
    /// (empty: stored before them).
    #[prost(bytes = "vec", tag = "7")]
    request_signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "8")]
    confirm_signature: Vec<u8>,
    /// Added in issue 12 (erasures bound to the closing): the closing the
    /// signatures cover (empty: stored before).
    #[prost(bytes = "vec", tag = "9")]
    closing: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct CasesRow {
    #[prost(uint64, tag = "1")]
    position: u64,
    #[prost(message, repeated, tag = "2")]
    cases: Vec<CaseRow>,
    #[prost(message, repeated, tag = "3")]
    erased: Vec<ErasedRow>,
}

fn state_code(s: CaseState) -> u32 {
    match s {
        CaseState::Requested => 1,
        CaseState::Open => 2,
        CaseState::Closed => 3,
    }
}

fn state_from(v: u32) -> Result<CaseState, CodecError> {
    match v {
        1 => Ok(CaseState::Requested),
        2 => Ok(CaseState::Open),
        3 => Ok(CaseState::Closed),
        _ => Err(CodecError("unknown case state")),
    }
}

/// The snapshot part of `cases`; `None` when nothing of cases was ever
/// recorded, so a store without cases keeps its earlier snapshot bytes.
pub(super) fn cases_row(cases: &Cases) -> Option<CasesRow> {
    if cases.is_empty() {
        return None;
    }
    Some(CasesRow {
        position: cases.position,
        cases: cases
            .cases
            .iter()
            .map(|(id, c)| CaseRow {
                case_id: id.as_bytes().to_vec(),
                state: state_code(c.state),
                created_at: c.created_at,
                creator: c.creator.as_bytes().to_vec(),
                requested_position: c.requested.map_or(0, |r| r.position),
                requested_at: c.requested.map_or(0, |r| r.at),
                envelope_digest: c
                    .requested
                    .map(|r| r.envelope_digest.to_vec())
                    .unwrap_or_default(),
                closed: c.closed_at.is_some(),
                closed_at: c.closed_at.unwrap_or(0),
                legal_hold: c.legal_hold,
                ledger: c.ledger,
                epochs: c.epochs.iter().map(|e| e.to_vec()).collect(),
                events: c
                    .events
                    .iter()
                    .map(|e| EventMetaRow {
                        position: e.position,
                        seq: e.seq,
                        author: e.author.as_bytes().to_vec(),
                        event_id: e.event_id.to_vec(),
                        at: e.at,
                        size: e.size,
                        body_digest: e.body_digest.to_vec(),
                    })
                    .collect(),
                erasure_position: c.erasure.map_or(0, |e| e.position),
                erasure_at: c.erasure.map_or(0, |e| e.at),
                erasure_by: c
                    .erasure
                    .map(|e| e.by.as_bytes().to_vec())
                    .unwrap_or_default(),
                erasure_signature: signature_bytes(c.erasure.and_then(|e| e.signature)),
                erasure_closing: closing_bytes(c.erasure.and_then(|e| e.closing)),
            })
            .collect(),
        erased: cases
            .erased
            .iter()
            .map(|(id, e)| ErasedRow {
                case_id: id.as_bytes().to_vec(),
                position: e.position,
                at: e.at,
                requested_by: e.requested_by.as_bytes().to_vec(),
                confirmed_by: e.confirmed_by.as_bytes().to_vec(),
                envelope_digest: e.envelope_digest.map(|d| d.to_vec()).unwrap_or_default(),
                request_signature: signature_bytes(e.request_signature),
                confirm_signature: signature_bytes(e.confirm_signature),
                closing: closing_bytes(e.closing),
            })
            .collect(),
    })
}

pub(super) fn cases_from(row: CasesRow) -> Result<Cases, CodecError> {
    let mut cases = BTreeMap::new();
    for r in row.cases {
        let id = case_id(&r.case_id)?;
        let creator = device_id(&r.creator)?;
        let case = Case {
            state: state_from(r.state)?,
            created_at: r.created_at,
            creator,
            requested: if r.requested_position == 0 {
                None
            } else {
                Some(RequestMeta {
                    position: r.requested_position,
                    at: r.requested_at,
                    defender: creator,
                    envelope_digest: digest(&r.envelope_digest)?,
                })
            },
            closed_at: r.closed.then_some(r.closed_at),
            legal_hold: r.legal_hold,
            ledger: r.ledger,
            epochs: r
                .epochs
                .iter()
                .map(|e| digest(e))
                .collect::<Result<_, _>>()?,
            events: r
                .events
                .iter()
                .map(|e| {
                    Ok(EventMeta {
                        position: e.position,
                        seq: e.seq,
                        author: device_id(&e.author)?,
                        event_id: e
                            .event_id
                            .as_slice()
                            .try_into()
                            .map_err(|_| CodecError("event id of the wrong length"))?,
                        at: e.at,
                        size: e.size,
                        body_digest: digest(&e.body_digest)?,
                    })
                })
                .collect::<Result<_, CodecError>>()?,
            erasure: if r.erasure_position == 0 {
                None
            } else {
                Some(ErasureRequest {
                    position: r.erasure_position,
                    at: r.erasure_at,
                    by: device_id(&r.erasure_by)?,
                    signature: signature(&r.erasure_signature)?,
                    closing: closing(&r.erasure_closing)?,
                })
            },
        };
        if cases.insert(id, case).is_some() {
            return Err(CodecError("a case stored twice in a snapshot"));
        }
    }
    let mut erased = BTreeMap::new();
    for r in row.erased {
        let id = case_id(&r.case_id)?;
        if cases.contains_key(&id) {
            return Err(CodecError("a case both kept and erased in a snapshot"));
        }
        erased.insert(
            id,
            ErasedCase {
                position: r.position,
                at: r.at,
                requested_by: device_id(&r.requested_by)?,
                confirmed_by: device_id(&r.confirmed_by)?,
                request_signature: signature(&r.request_signature)?,
                confirm_signature: signature(&r.confirm_signature)?,
                closing: closing(&r.closing)?,
                envelope_digest: if r.envelope_digest.is_empty() {
                    None
                } else {
                    Some(digest(&r.envelope_digest)?)
                },
            },
        );
    }
    Ok(Cases::with_indexes(row.position, cases, erased))
}
