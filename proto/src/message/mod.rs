//! The messages of protocol version 1, as domain types.
//!
//! Each type has `encode` (to a frame payload) and `decode` (from one). A
//! decoded value always has every field it needs, of the right length and
//! in range; anything else is a [`DecodeError`] naming the field.
//!
//! This file holds what a request stream carries, [`Request`] and
//! [`Response`], with [`RequestKind`] and their encoding. The types they
//! carry live in one file per domain and are re-exported here:
//!
//! * `setup`: the exchange that opens a connection ([`Challenge`],
//!   [`SetupRequest`], [`Welcome`] or a refusal).
//! * `devices`: [`StatusInfo`], the admins' [`DeviceInfo`] list and the
//!   staff's [`DutyEntry`] list.
//! * `messaging`: [`PrekeyBundle`], [`InboxItem`], [`DeliveryState`] and
//!   the limits on one request.
//!
//! Alerts, duty and check-ins carry the types of [`crate::alert`]; invites
//! those of [`crate::invite`].

use prost::Message as _;

use crate::alert::{AlertInfo, CloseReason, Priority};
use crate::case::{CaseId, CaseSync, SignedCaseEvent};
use crate::e2e::envelope::SignedEnvelope;
use crate::e2e::prekey::SignedPrekey;
use crate::e2e::roster::SignedRoster;
use crate::error::{DecodeError, WireError};
use crate::identity::{DeviceId, IdentityPublicKey, Signature};
use crate::invite::Invite;
use crate::pb;
use crate::role::Role;

pub use crate::invite::MAX_INVITE_TTL_SECS;
pub use devices::{DeviceInfo, DutyEntry, StatusInfo, StorageInfo};
pub use messaging::{
    DeliveryState, InboxItem, MAX_IDS_PER_REQUEST, MAX_INBOX_BATCH, MAX_PREKEYS_PER_REQUEST,
    PrekeyBundle,
};
pub use setup::{
    Challenge, RosterStanding, SetupRequest, SetupResponse, Welcome, decode_setup_response,
    encode_setup_response,
};

mod devices;
mod messaging;
mod setup;

/// A request from an authenticated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Who am I, and is the server there?
    Status,
    /// Make a one-time invite for a new device.
    CreateInvite {
        /// The role the new device gets.
        role: Role,
        /// Lifetime in seconds, 1 to [`MAX_INVITE_TTL_SECS`].
        ttl_seconds: u64,
    },
    /// List every enrolled device (admins only).
    ListDevices,
    /// Revoke a device (admins only).
    RevokeDevice {
        /// The device to revoke.
        device_id: DeviceId,
    },
    /// Store a roster signed offline by the organisation root (admins only).
    PutRoster(SignedRoster),
    /// A stored roster: the newest, or an older one the server accepted.
    GetRoster {
        /// The version asked for; 0: the newest.
        version: u64,
    },
    /// Publish this device's prekeys.
    PublishPrekeys(Vec<SignedPrekey>),
    /// One prekey for each listed device.
    FetchPrekeys(Vec<DeviceId>),
    /// The last-resort prekey of each listed device (read, never taken).
    FetchLastResortPrekeys(Vec<DeviceId>),
    /// Store an envelope for its recipients.
    SendEnvelope(SignedEnvelope),
    /// Hand an envelope to the server as a reply in an alert's thread,
    /// naming the alert so that the server can refuse a reply in a duress
    /// alert's thread (the same request kind as [`Request::SendEnvelope`]).
    SendInThread {
        /// The envelope.
        envelope: SignedEnvelope,
        /// The alert whose thread it answers (never 0).
        alert_id: u64,
    },
    /// Envelopes for this device after `after`.
    FetchInbox {
        /// The last id already held.
        after: u64,
        /// At most this many (1 to [`MAX_INBOX_BATCH`]).
        limit: u32,
    },
    /// Everything up to `up_to` is safely stored by the device.
    AckInbox {
        /// The highest id held.
        up_to: u64,
    },
    /// A defender raises an alert; the envelope says what happened.
    RaiseAlert {
        /// How urgent.
        priority: Priority,
        /// The end-to-end encrypted message, sealed to the staff; `None`
        /// when the device had no verified roster to seal to (on the wire:
        /// absent, or with an empty body).
        envelope: Option<SignedEnvelope>,
        /// An open SOS alert of this device to join rather than raise a
        /// new one (SOSes queued together on the device); 0: none.
        join_alert: u64,
    },
    /// Alerts this device may see.
    ListAlerts {
        /// Only those still open.
        open_only: bool,
    },
    /// Claim an alert (staff).
    ClaimAlert {
        /// Which.
        alert_id: u64,
    },
    /// Close an alert.
    CloseAlert {
        /// Which.
        alert_id: u64,
        /// Why.
        reason: CloseReason,
    },
    /// Go on or off duty (staff).
    SetDuty {
        /// On duty.
        on_duty: bool,
    },
    /// This device received the page for an alert.
    AlertDelivered {
        /// Which.
        alert_id: u64,
    },
    /// A defender sets (interval 0: stops) its safety check-ins.
    SetCheckin {
        /// Seconds between check-ins.
        interval_secs: u64,
        /// Seconds of grace after a missed one before the alert.
        grace_secs: u64,
        /// Tag of the normal code ([`crate::alert::CheckinKey::tag`]).
        code_digest: [u8; 32],
        /// Tag of the duress code.
        duress_digest: [u8; 32],
    },
    /// A check-in with the tag of the code typed.
    Checkin {
        /// The tag.
        code_digest: [u8; 32],
    },
    /// These inbox items were shown to the person.
    MarkRead(Vec<u64>),
    /// How far did these envelopes (sent by this device) get?
    Delivery(Vec<u64>),
    /// Who is on duty now, and this device's own duty state (staff).
    DutyStatus,
    /// A defender device without a panic key registers one.
    RegisterPanicKey(IdentityPublicKey),
    /// Staff append an event to a case (opening it if new).
    AppendCaseEvent(SignedCaseEvent),
    /// Staff: every case update after this sync position.
    SyncCases {
        /// The last position already held (0: none).
        after: u64,
    },
    /// A defender asks for help; the envelope is sealed to the staff.
    RequestCase(SignedEnvelope),
    /// Staff ask that a closed case be erased, with the device's erasure
    /// signature of step 1 ([`crate::case::erasure`]).
    RequestCaseErasure(CaseId, Signature),
    /// A second, distinct coordinator or admin confirms an erasure, with
    /// its erasure signature of step 2.
    ConfirmCaseErasure(CaseId, Signature),
}

/// What a request asks, without its arguments: the rows of the role table
/// and the names in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// [`Request::Status`].
    Status,
    /// [`Request::CreateInvite`].
    CreateInvite,
    /// [`Request::ListDevices`].
    ListDevices,
    /// [`Request::RevokeDevice`].
    RevokeDevice,
    /// [`Request::PutRoster`].
    PutRoster,
    /// [`Request::GetRoster`].
    GetRoster,
    /// [`Request::PublishPrekeys`].
    PublishPrekeys,
    /// [`Request::FetchPrekeys`].
    FetchPrekeys,
    /// [`Request::SendEnvelope`].
    SendEnvelope,
    /// [`Request::FetchInbox`].
    FetchInbox,
    /// [`Request::AckInbox`].
    AckInbox,
    /// [`Request::RaiseAlert`].
    RaiseAlert,
    /// [`Request::ListAlerts`].
    ListAlerts,
    /// [`Request::ClaimAlert`].
    ClaimAlert,
    /// [`Request::CloseAlert`].
    CloseAlert,
    /// [`Request::SetDuty`].
    SetDuty,
    /// [`Request::AlertDelivered`].
    AlertDelivered,
    /// [`Request::SetCheckin`].
    SetCheckin,
    /// [`Request::Checkin`].
    Checkin,
    /// [`Request::MarkRead`].
    MarkRead,
    /// [`Request::Delivery`].
    Delivery,
    /// [`Request::DutyStatus`].
    DutyStatus,
    /// [`Request::RegisterPanicKey`].
    RegisterPanicKey,
    /// [`Request::AppendCaseEvent`].
    AppendCaseEvent,
    /// [`Request::SyncCases`].
    SyncCases,
    /// [`Request::RequestCase`].
    RequestCase,
    /// [`Request::RequestCaseErasure`].
    RequestCaseErasure,
    /// [`Request::ConfirmCaseErasure`].
    ConfirmCaseErasure,
}

impl RequestKind {
    /// Every kind, in the order of the `.proto` file's request fields.
    pub const ALL: [RequestKind; 28] = [
        RequestKind::Status,
        RequestKind::CreateInvite,
        RequestKind::ListDevices,
        RequestKind::RevokeDevice,
        RequestKind::PutRoster,
        RequestKind::GetRoster,
        RequestKind::PublishPrekeys,
        RequestKind::FetchPrekeys,
        RequestKind::SendEnvelope,
        RequestKind::FetchInbox,
        RequestKind::AckInbox,
        RequestKind::RaiseAlert,
        RequestKind::ListAlerts,
        RequestKind::ClaimAlert,
        RequestKind::CloseAlert,
        RequestKind::SetDuty,
        RequestKind::AlertDelivered,
        RequestKind::SetCheckin,
        RequestKind::Checkin,
        RequestKind::MarkRead,
        RequestKind::Delivery,
        RequestKind::DutyStatus,
        RequestKind::RegisterPanicKey,
        RequestKind::AppendCaseEvent,
        RequestKind::SyncCases,
        RequestKind::RequestCase,
        RequestKind::RequestCaseErasure,
        RequestKind::ConfirmCaseErasure,
    ];

    /// The request's name in `docs/protocol.md` (the `.proto` field name).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Status => "status",
            RequestKind::CreateInvite => "create_invite",
            RequestKind::ListDevices => "list_devices",
            RequestKind::RevokeDevice => "revoke_device",
            RequestKind::PutRoster => "put_roster",
            RequestKind::GetRoster => "get_roster",
            RequestKind::PublishPrekeys => "publish_prekeys",
            RequestKind::FetchPrekeys => "fetch_prekeys",
            RequestKind::SendEnvelope => "send_envelope",
            RequestKind::FetchInbox => "fetch_inbox",
            RequestKind::AckInbox => "ack_inbox",
            RequestKind::RaiseAlert => "raise_alert",
            RequestKind::ListAlerts => "list_alerts",
            RequestKind::ClaimAlert => "claim_alert",
            RequestKind::CloseAlert => "close_alert",
            RequestKind::SetDuty => "set_duty",
            RequestKind::AlertDelivered => "alert_delivered",
            RequestKind::SetCheckin => "set_checkin",
            RequestKind::Checkin => "checkin",
            RequestKind::MarkRead => "mark_read",
            RequestKind::Delivery => "delivery",
            RequestKind::DutyStatus => "duty_status",
            RequestKind::RegisterPanicKey => "register_panic_key",
            RequestKind::AppendCaseEvent => "append_case_event",
            RequestKind::SyncCases => "sync_cases",
            RequestKind::RequestCase => "request_case",
            RequestKind::RequestCaseErasure => "request_case_erasure",
            RequestKind::ConfirmCaseErasure => "confirm_case_erasure",
        }
    }

    /// The name logs carry. Both check-in kinds log alike, so that nothing
    /// in a log line sets a check-in apart from a change of schedule.
    pub fn log_name(self) -> &'static str {
        match self {
            RequestKind::SetCheckin | RequestKind::Checkin => "checkin",
            other => other.name(),
        }
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Request {
    /// What it asks, without its arguments.
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Status => RequestKind::Status,
            Request::CreateInvite { .. } => RequestKind::CreateInvite,
            Request::ListDevices => RequestKind::ListDevices,
            Request::RevokeDevice { .. } => RequestKind::RevokeDevice,
            Request::PutRoster(_) => RequestKind::PutRoster,
            Request::GetRoster { .. } => RequestKind::GetRoster,
            Request::PublishPrekeys(_) => RequestKind::PublishPrekeys,
            Request::FetchPrekeys(_) | Request::FetchLastResortPrekeys(_) => {
                RequestKind::FetchPrekeys
            }
            Request::SendEnvelope(_) | Request::SendInThread { .. } => RequestKind::SendEnvelope,
            Request::FetchInbox { .. } => RequestKind::FetchInbox,
            Request::AckInbox { .. } => RequestKind::AckInbox,
            Request::RaiseAlert { .. } => RequestKind::RaiseAlert,
            Request::ListAlerts { .. } => RequestKind::ListAlerts,
            Request::ClaimAlert { .. } => RequestKind::ClaimAlert,
            Request::CloseAlert { .. } => RequestKind::CloseAlert,
            Request::SetDuty { .. } => RequestKind::SetDuty,
            Request::AlertDelivered { .. } => RequestKind::AlertDelivered,
            Request::SetCheckin { .. } => RequestKind::SetCheckin,
            Request::Checkin { .. } => RequestKind::Checkin,
            Request::MarkRead(_) => RequestKind::MarkRead,
            Request::Delivery(_) => RequestKind::Delivery,
            Request::DutyStatus => RequestKind::DutyStatus,
            Request::RegisterPanicKey(_) => RequestKind::RegisterPanicKey,
            Request::AppendCaseEvent(_) => RequestKind::AppendCaseEvent,
            Request::SyncCases { .. } => RequestKind::SyncCases,
            Request::RequestCase(_) => RequestKind::RequestCase,
            Request::RequestCaseErasure(..) => RequestKind::RequestCaseErasure,
            Request::ConfirmCaseErasure(..) => RequestKind::ConfirmCaseErasure,
        }
    }

    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        use pb::request::Kind;
        let kind = match self {
            Request::Status => Kind::Status(pb::StatusRequest {}),
            Request::CreateInvite { role, ttl_seconds } => {
                Kind::CreateInvite(pb::CreateInviteRequest {
                    role: role.to_wire(),
                    ttl_seconds: *ttl_seconds,
                })
            }
            Request::ListDevices => Kind::ListDevices(pb::ListDevicesRequest {}),
            Request::RevokeDevice { device_id } => Kind::RevokeDevice(pb::RevokeDeviceRequest {
                device_id: device_id.as_bytes().to_vec().into(),
            }),
            Request::PutRoster(r) => Kind::PutRoster(pb::PutRosterRequest {
                roster: Some(r.to_wire()),
            }),
            Request::GetRoster { version } => {
                Kind::GetRoster(pb::GetRosterRequest { version: *version })
            }
            Request::PublishPrekeys(p) => Kind::PublishPrekeys(pb::PublishPrekeysRequest {
                prekeys: p.iter().map(SignedPrekey::to_wire).collect(),
            }),
            Request::FetchPrekeys(ids) => Kind::FetchPrekeys(pb::FetchPrekeysRequest {
                device_ids: ids.iter().map(|d| d.as_bytes().to_vec().into()).collect(),
                last_resort: false,
            }),
            Request::FetchLastResortPrekeys(ids) => Kind::FetchPrekeys(pb::FetchPrekeysRequest {
                device_ids: ids.iter().map(|d| d.as_bytes().to_vec().into()).collect(),
                last_resort: true,
            }),
            Request::SendEnvelope(e) => Kind::SendEnvelope(pb::SendEnvelopeRequest {
                envelope: Some(e.to_wire()),
                alert_id: 0,
            }),
            Request::SendInThread { envelope, alert_id } => {
                Kind::SendEnvelope(pb::SendEnvelopeRequest {
                    envelope: Some(envelope.to_wire()),
                    alert_id: *alert_id,
                })
            }
            Request::FetchInbox { after, limit } => Kind::FetchInbox(pb::FetchInboxRequest {
                after: *after,
                limit: *limit,
            }),
            Request::AckInbox { up_to } => Kind::AckInbox(pb::AckInboxRequest { up_to: *up_to }),
            Request::RaiseAlert {
                priority,
                envelope,
                join_alert,
            } => Kind::RaiseAlert(pb::RaiseAlertRequest {
                priority: priority.to_wire(),
                envelope: envelope.as_ref().map(SignedEnvelope::to_wire),
                join_alert: *join_alert,
            }),
            Request::ListAlerts { open_only } => Kind::ListAlerts(pb::ListAlertsRequest {
                open_only: *open_only,
            }),
            Request::ClaimAlert { alert_id } => Kind::ClaimAlert(pb::ClaimAlertRequest {
                alert_id: *alert_id,
            }),
            Request::CloseAlert { alert_id, reason } => Kind::CloseAlert(pb::CloseAlertRequest {
                alert_id: *alert_id,
                reason: reason.to_wire(),
            }),
            Request::SetDuty { on_duty } => Kind::SetDuty(pb::SetDutyRequest { on_duty: *on_duty }),
            Request::AlertDelivered { alert_id } => {
                Kind::AlertDelivered(pb::AlertDeliveredRequest {
                    alert_id: *alert_id,
                })
            }
            Request::SetCheckin {
                interval_secs,
                grace_secs,
                code_digest,
                duress_digest,
            } => Kind::SetCheckin(pb::SetCheckinRequest {
                interval_secs: *interval_secs,
                grace_secs: *grace_secs,
                code_digest: code_digest.to_vec().into(),
                duress_digest: duress_digest.to_vec().into(),
            }),
            Request::Checkin { code_digest } => Kind::Checkin(pb::CheckinRequest {
                code_digest: code_digest.to_vec().into(),
            }),
            Request::MarkRead(ids) => Kind::MarkRead(pb::MarkReadRequest { ids: ids.clone() }),
            Request::Delivery(ids) => Kind::Delivery(pb::DeliveryRequest { ids: ids.clone() }),
            Request::DutyStatus => Kind::DutyStatus(pb::DutyStatusRequest {}),
            Request::RegisterPanicKey(key) => Kind::RegisterPanicKey(pb::RegisterPanicKeyRequest {
                panic_key: key.as_bytes().to_vec().into(),
            }),
            Request::AppendCaseEvent(e) => Kind::AppendCaseEvent(pb::AppendCaseEventRequest {
                event: Some(e.to_wire()),
            }),
            Request::SyncCases { after } => Kind::SyncCases(pb::SyncCasesRequest { after: *after }),
            Request::RequestCase(e) => Kind::RequestCase(pb::RequestCaseRequest {
                envelope: Some(e.to_wire()),
            }),
            Request::RequestCaseErasure(id, signature) => {
                Kind::RequestCaseErasure(pb::RequestCaseErasureRequest {
                    case_id: id.as_bytes().to_vec().into(),
                    signature: signature.as_bytes().to_vec().into(),
                })
            }
            Request::ConfirmCaseErasure(id, signature) => {
                Kind::ConfirmCaseErasure(pb::ConfirmCaseErasureRequest {
                    case_id: id.as_bytes().to_vec().into(),
                    signature: signature.as_bytes().to_vec().into(),
                })
            }
        };
        pb::Request { kind: Some(kind) }.encode_to_vec()
    }

    /// Parses a frame payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        use pb::request::Kind;
        let m = pb::Request::decode(bytes)?;
        Ok(match m.kind.ok_or(DecodeError::Missing("kind"))? {
            Kind::Status(_) => Request::Status,
            Kind::CreateInvite(c) => {
                if c.ttl_seconds == 0 || c.ttl_seconds > MAX_INVITE_TTL_SECS {
                    return Err(DecodeError::Invalid("ttl_seconds"));
                }
                Request::CreateInvite {
                    role: Role::from_wire_field(c.role, "role")?,
                    ttl_seconds: c.ttl_seconds,
                }
            }
            Kind::ListDevices(_) => Request::ListDevices,
            Kind::RevokeDevice(r) => Request::RevokeDevice {
                device_id: DeviceId::from_slice(&r.device_id, "device_id")?,
            },
            Kind::PutRoster(r) => Request::PutRoster(SignedRoster::from_wire(
                r.roster.ok_or(DecodeError::Missing("roster"))?,
            )?),
            Kind::GetRoster(r) => Request::GetRoster { version: r.version },
            Kind::PublishPrekeys(p) => {
                // None: the device only asks how many the server holds.
                if p.prekeys.len() > MAX_PREKEYS_PER_REQUEST {
                    return Err(DecodeError::Invalid("prekeys"));
                }
                Request::PublishPrekeys(
                    p.prekeys
                        .into_iter()
                        .map(SignedPrekey::from_wire)
                        .collect::<Result<_, _>>()?,
                )
            }
            Kind::FetchPrekeys(f) => {
                if f.device_ids.is_empty()
                    || f.device_ids.len() > crate::e2e::envelope::MAX_RECIPIENTS
                {
                    return Err(DecodeError::Invalid("device_ids"));
                }
                let ids = f
                    .device_ids
                    .iter()
                    .map(|d| DeviceId::from_slice(d, "device_ids"))
                    .collect::<Result<_, _>>()?;
                if f.last_resort {
                    Request::FetchLastResortPrekeys(ids)
                } else {
                    Request::FetchPrekeys(ids)
                }
            }
            Kind::SendEnvelope(e) => {
                let envelope =
                    SignedEnvelope::from_wire(e.envelope.ok_or(DecodeError::Missing("envelope"))?)?;
                match e.alert_id {
                    0 => Request::SendEnvelope(envelope),
                    alert_id => Request::SendInThread { envelope, alert_id },
                }
            }
            Kind::FetchInbox(f) => {
                if f.limit == 0 || f.limit > MAX_INBOX_BATCH {
                    return Err(DecodeError::Invalid("limit"));
                }
                Request::FetchInbox {
                    after: f.after,
                    limit: f.limit,
                }
            }
            Kind::AckInbox(a) => Request::AckInbox { up_to: a.up_to },
            Kind::RaiseAlert(r) => Request::RaiseAlert {
                priority: Priority::from_wire(r.priority)?,
                envelope: match r.envelope {
                    Some(e) if !e.body.is_empty() => Some(SignedEnvelope::from_wire(e)?),
                    _ => None,
                },
                join_alert: r.join_alert,
            },
            Kind::ListAlerts(l) => Request::ListAlerts {
                open_only: l.open_only,
            },
            Kind::ClaimAlert(c) => Request::ClaimAlert {
                alert_id: c.alert_id,
            },
            Kind::CloseAlert(c) => Request::CloseAlert {
                alert_id: c.alert_id,
                reason: CloseReason::from_wire(c.reason)?,
            },
            Kind::SetDuty(d) => Request::SetDuty { on_duty: d.on_duty },
            Kind::AlertDelivered(d) => Request::AlertDelivered {
                alert_id: d.alert_id,
            },
            Kind::SetCheckin(c) => Request::SetCheckin {
                interval_secs: c.interval_secs,
                grace_secs: c.grace_secs,
                code_digest: c
                    .code_digest
                    .as_ref()
                    .try_into()
                    .map_err(|_| DecodeError::Invalid("code_digest"))?,
                duress_digest: c
                    .duress_digest
                    .as_ref()
                    .try_into()
                    .map_err(|_| DecodeError::Invalid("duress_digest"))?,
            },
            Kind::Checkin(c) => Request::Checkin {
                code_digest: c
                    .code_digest
                    .as_ref()
                    .try_into()
                    .map_err(|_| DecodeError::Invalid("code_digest"))?,
            },
            Kind::MarkRead(m) if m.ids.len() <= MAX_IDS_PER_REQUEST => Request::MarkRead(m.ids),
            Kind::Delivery(d) if d.ids.len() <= MAX_IDS_PER_REQUEST => Request::Delivery(d.ids),
            Kind::MarkRead(_) | Kind::Delivery(_) => return Err(DecodeError::Invalid("ids")),
            Kind::DutyStatus(_) => Request::DutyStatus,
            Kind::RegisterPanicKey(r) => {
                Request::RegisterPanicKey(IdentityPublicKey::from_slice(&r.panic_key, "panic_key")?)
            }
            Kind::AppendCaseEvent(a) => Request::AppendCaseEvent(SignedCaseEvent::from_wire(
                a.event.ok_or(DecodeError::Missing("event"))?,
            )?),
            Kind::SyncCases(s) => Request::SyncCases { after: s.after },
            Kind::RequestCase(r) => {
                let envelope = r.envelope.ok_or(DecodeError::Missing("envelope"))?;
                if envelope.body.is_empty() {
                    return Err(DecodeError::Missing("envelope"));
                }
                Request::RequestCase(SignedEnvelope::from_wire(envelope)?)
            }
            Kind::RequestCaseErasure(r) => Request::RequestCaseErasure(
                CaseId::from_slice(&r.case_id, "case_id")?,
                Signature::from_slice(&r.signature, "signature")?,
            ),
            Kind::ConfirmCaseErasure(r) => Request::ConfirmCaseErasure(
                CaseId::from_slice(&r.case_id, "case_id")?,
                Signature::from_slice(&r.signature, "signature")?,
            ),
        })
    }
}

/// The server's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The request was refused; nothing changed.
    Error(WireError),
    /// Answer to [`Request::Status`].
    Status(StatusInfo),
    /// Answer to [`Request::CreateInvite`].
    InviteCreated {
        /// The invite to hand over.
        invite: Invite,
    },
    /// Answer to [`Request::ListDevices`].
    DeviceList(Vec<DeviceInfo>),
    /// Answer to [`Request::RevokeDevice`].
    DeviceRevoked {
        /// The revoked device.
        device_id: DeviceId,
        /// When, seconds since the Unix epoch.
        revoked_at: u64,
    },
    /// A change was saved.
    Done,
    /// Answer to [`Request::PublishPrekeys`] (on the wire, a `Done` that
    /// carries the count): the prekeys were saved, and the server now holds
    /// this many unexpired one-time prekeys of the device.
    PrekeysPublished {
        /// Unexpired one-time prekeys the server holds for the device.
        one_time: u32,
    },
    /// Answer to [`Request::GetRoster`].
    Roster(Option<SignedRoster>),
    /// Answer to [`Request::FetchPrekeys`].
    PrekeyBundles(Vec<PrekeyBundle>),
    /// Answer to [`Request::SendEnvelope`].
    EnvelopeAccepted {
        /// The server's sequence number for it.
        id: u64,
        /// It had been accepted before.
        duplicate: bool,
    },
    /// Answer to [`Request::FetchInbox`].
    Inbox(Vec<InboxItem>),
    /// Answer to [`Request::AppendCaseEvent`].
    CaseEventAccepted {
        /// The event's sync position.
        position: u64,
        /// It had been accepted before (a resend).
        duplicate: bool,
    },
    /// One frame of the answer to [`Request::SyncCases`] (several may
    /// follow on the same stream until it finishes).
    CaseSync(CaseSync),
    /// Answer to [`Request::RequestCase`].
    CaseRequestAccepted {
        /// The new case (or, for a resend, the same one).
        case_id: CaseId,
        /// The envelope's sent id.
        envelope_id: u64,
        /// The same envelope was sent before.
        duplicate: bool,
    },
    /// Answer to [`Request::RequestCaseErasure`] and
    /// [`Request::ConfirmCaseErasure`].
    CaseErasure {
        /// Which case.
        case_id: CaseId,
        /// Who asked for the erasure.
        requested_by: DeviceId,
        /// Erased now (false: waiting for a confirmation).
        erased: bool,
    },
    /// Answer to [`Request::ListAlerts`] (and [`Request::RaiseAlert`]: the
    /// new alert alone).
    Alerts(Vec<AlertInfo>),
    /// Answer to [`Request::Delivery`].
    Delivery(Vec<DeliveryState>),
    /// Answer to [`Request::DutyStatus`].
    Duty(Vec<DutyEntry>),
    /// Answer to [`Request::ClaimAlert`].
    Claim {
        /// This device now holds the alert.
        granted: bool,
        /// Who holds it.
        holder: DeviceId,
    },
}

impl Response {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        use pb::response::Kind;
        let kind = match self {
            Response::Error(e) => Kind::Error(e.to_wire()),
            Response::Status(s) => Kind::Status(s.to_wire()),
            Response::InviteCreated { invite } => Kind::InviteCreated(pb::InviteCreated {
                invite: invite.to_string(),
                expires_at: invite.expires_at,
            }),
            Response::DeviceList(devices) => Kind::DeviceList(pb::DeviceList {
                devices: devices.iter().map(DeviceInfo::to_wire).collect(),
            }),
            Response::DeviceRevoked {
                device_id,
                revoked_at,
            } => Kind::DeviceRevoked(pb::DeviceRevoked {
                device_id: device_id.as_bytes().to_vec().into(),
                revoked_at: *revoked_at,
            }),
            Response::Done => Kind::Done(pb::Done {
                one_time_prekeys: None,
            }),
            Response::PrekeysPublished { one_time } => Kind::Done(pb::Done {
                one_time_prekeys: Some(*one_time),
            }),
            Response::Roster(r) => Kind::Roster(pb::RosterResponse {
                roster: r.as_ref().map(SignedRoster::to_wire),
            }),
            Response::PrekeyBundles(b) => Kind::PrekeyBundles(pb::PrekeyBundles {
                bundles: b.iter().map(PrekeyBundle::to_wire).collect(),
            }),
            Response::EnvelopeAccepted { id, duplicate } => {
                Kind::EnvelopeAccepted(pb::EnvelopeAccepted {
                    id: *id,
                    duplicate: *duplicate,
                })
            }
            Response::Alerts(a) => Kind::Alerts(pb::AlertList {
                alerts: a.iter().map(AlertInfo::to_wire).collect(),
            }),
            Response::Delivery(states) => Kind::Delivery(pb::DeliveryList {
                states: states.iter().copied().map(DeliveryState::to_wire).collect(),
            }),
            Response::Duty(entries) => Kind::Duty(pb::DutyList {
                entries: entries.iter().copied().map(DutyEntry::to_wire).collect(),
            }),
            Response::Claim { granted, holder } => Kind::Claim(pb::ClaimResult {
                granted: *granted,
                holder: holder.as_bytes().to_vec().into(),
            }),
            Response::Inbox(items) => Kind::Inbox(pb::Inbox {
                items: items.iter().map(InboxItem::to_wire).collect(),
            }),
            Response::CaseEventAccepted {
                position,
                duplicate,
            } => Kind::CaseEventAccepted(pb::CaseEventAccepted {
                position: *position,
                duplicate: *duplicate,
            }),
            Response::CaseSync(s) => Kind::CaseSync(s.to_wire()),
            Response::CaseRequestAccepted {
                case_id,
                envelope_id,
                duplicate,
            } => Kind::CaseRequestAccepted(pb::CaseRequestAccepted {
                case_id: case_id.as_bytes().to_vec().into(),
                envelope_id: *envelope_id,
                duplicate: *duplicate,
            }),
            Response::CaseErasure {
                case_id,
                requested_by,
                erased,
            } => Kind::CaseErasure(pb::CaseErasure {
                case_id: case_id.as_bytes().to_vec().into(),
                requested_by: requested_by.as_bytes().to_vec().into(),
                erased: *erased,
            }),
        };
        pb::Response { kind: Some(kind) }.encode_to_vec()
    }

    /// Parses a frame payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        use pb::response::Kind;
        let m = pb::Response::decode(bytes)?;
        Ok(match m.kind.ok_or(DecodeError::Missing("kind"))? {
            Kind::Error(e) => Response::Error(WireError::from_wire(e)),
            Kind::Status(s) => Response::Status(StatusInfo::from_wire(s)?),
            Kind::InviteCreated(c) => Response::InviteCreated {
                invite: c.invite.parse()?,
            },
            Kind::DeviceList(l) => Response::DeviceList(
                l.devices
                    .into_iter()
                    .map(DeviceInfo::from_wire)
                    .collect::<Result<_, _>>()?,
            ),
            Kind::DeviceRevoked(r) => Response::DeviceRevoked {
                device_id: DeviceId::from_slice(&r.device_id, "device_id")?,
                revoked_at: r.revoked_at,
            },
            Kind::Done(d) => match d.one_time_prekeys {
                None => Response::Done,
                Some(one_time) => Response::PrekeysPublished { one_time },
            },
            Kind::Roster(r) => Response::Roster(r.roster.map(SignedRoster::from_wire).transpose()?),
            Kind::PrekeyBundles(b) => Response::PrekeyBundles(
                b.bundles
                    .into_iter()
                    .map(PrekeyBundle::from_wire)
                    .collect::<Result<_, _>>()?,
            ),
            Kind::EnvelopeAccepted(a) => Response::EnvelopeAccepted {
                id: a.id,
                duplicate: a.duplicate,
            },
            Kind::Alerts(a) => Response::Alerts(
                a.alerts
                    .into_iter()
                    .map(AlertInfo::from_wire)
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Delivery(d) => {
                Response::Delivery(d.states.into_iter().map(DeliveryState::from_wire).collect())
            }
            Kind::Duty(d) => Response::Duty(
                d.entries
                    .into_iter()
                    .map(DutyEntry::from_wire)
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Claim(c) => Response::Claim {
                granted: c.granted,
                holder: DeviceId::from_slice(&c.holder, "holder")?,
            },
            Kind::Inbox(i) => Response::Inbox(
                i.items
                    .into_iter()
                    .map(InboxItem::from_wire)
                    .collect::<Result<_, _>>()?,
            ),
            Kind::CaseEventAccepted(a) => Response::CaseEventAccepted {
                position: a.position,
                duplicate: a.duplicate,
            },
            Kind::CaseSync(s) => Response::CaseSync(CaseSync::from_wire(s)?),
            Kind::CaseRequestAccepted(a) => Response::CaseRequestAccepted {
                case_id: CaseId::from_slice(&a.case_id, "case_id")?,
                envelope_id: a.envelope_id,
                duplicate: a.duplicate,
            },
            Kind::CaseErasure(e) => Response::CaseErasure {
                case_id: CaseId::from_slice(&e.case_id, "case_id")?,
                requested_by: DeviceId::from_slice(&e.requested_by, "requested_by")?,
                erased: e.erased,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use crate::identity::IdentityKeyPair;
    use crate::invite::{CertPin, InviteToken};

    /// `RequestKind::ALL` is every request of the wire format: each field of
    /// the `.proto` file's `Request.kind` oneof, by name and number, once.
    /// A request added to the schema but not to `ALL` (and so missing from
    /// the server's role table test) fails here.
    #[test]
    fn every_request_of_the_schema_has_a_kind() {
        let schema = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proto/hotline/v1/hotline.proto"
        ));
        let body = schema
            .split("message Request {")
            .nth(1)
            .and_then(|s| s.split("oneof kind {").nth(1))
            .and_then(|s| s.split('}').next())
            .expect("the Request message and its oneof");
        let fields: Vec<(String, usize)> = body
            .lines()
            .filter_map(|l| {
                let l = l.trim().trim_end_matches(';');
                let (lhs, number) = l.split_once('=')?;
                let name = lhs.split_whitespace().nth(1)?.to_owned();
                Some((name, number.trim().parse().ok()?))
            })
            .collect();
        let kinds: Vec<(String, usize)> = RequestKind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| (k.name().to_owned(), i + 1))
            .collect();
        assert_eq!(fields, kinds);
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let pair = IdentityKeyPair::from_seed(&[6; 32]);
        for r in [
            Request::Status,
            Request::CreateInvite {
                role: Role::Defender,
                ttl_seconds: 3600,
            },
            Request::ListDevices,
            Request::RevokeDevice {
                device_id: pair.device_id(),
            },
            Request::RegisterPanicKey(pair.public_key()),
        ] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        let invite = Invite {
            server_addr: "127.0.0.1:1".into(),
            server_name: "localhost".into(),
            cert_pin: CertPin::from_bytes([3; 32]),
            token: InviteToken::from_bytes([4; 32]),
            role: Role::Admin,
            expires_at: 99,
            org_root: None,
            label: None,
        };
        for r in [
            Response::Error(WireError::new(ErrorCode::Forbidden, "no")),
            Response::Status(StatusInfo {
                device_id: pair.device_id(),
                role: Role::Officer,
                server_time: 5,
                server_version: "0.1.0".into(),
                storage: None,
            }),
            Response::Status(StatusInfo {
                device_id: pair.device_id(),
                role: Role::Admin,
                server_time: 5,
                server_version: "0.1.0".into(),
                storage: Some(StorageInfo {
                    degraded: Some((4, "disk full".into())),
                    free_bytes: Some(0),
                    read_only: false,
                    warn_below: None,
                }),
            }),
            Response::InviteCreated { invite },
            Response::DeviceList(vec![
                DeviceInfo {
                    device_id: pair.device_id(),
                    role: Role::Admin,
                    enrolled_at: 1,
                    revoked_at: None,
                    identity_key: pair.public_key(),
                    invite_digest: Some([9; 32]),
                },
                DeviceInfo {
                    device_id: pair.device_id(),
                    role: Role::Defender,
                    enrolled_at: 1,
                    revoked_at: Some(2),
                    identity_key: pair.public_key(),
                    invite_digest: None,
                },
            ]),
            Response::DeviceRevoked {
                device_id: pair.device_id(),
                revoked_at: 7,
            },
        ] {
            assert_eq!(Response::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn e2e_requests_and_responses_round_trip() {
        use crate::e2e::envelope::{Content, Recipient, seal};
        use crate::e2e::org::OrgKeyPair;
        use crate::e2e::prekey::{Prekey, PrekeyKind};
        use crate::e2e::roster::Roster;
        use crate::e2e::suite::{EncryptionKeyPair, SystemRandomness};

        let pair = IdentityKeyPair::from_seed(&[6; 32]);
        let key = EncryptionKeyPair::derive(&[1; 32]);
        let prekey = Prekey {
            device_id: pair.device_id(),
            kind: PrekeyKind::LastResort,
            id: 1,
            public_key: key.public_key(),
            created_at: 1,
            expires_at: 2,
        }
        .sign(&pair);
        let roster = Roster {
            version: 1,
            issued_at: 1,
            expires_at: 2,
            previous_hash: [0; 32],
            entries: vec![],
        }
        .sign(&OrgKeyPair::from_seed(&[2; 32]));
        let envelope = seal(
            &pair,
            1,
            &[Recipient {
                device_id: pair.device_id(),
                prekey_id: 1,
                key: key.public_key(),
            }],
            &Content {
                message_id: [0; 16],
                counter: 0,
                timestamp: 0,
                message: crate::e2e::content::Message::chat("", "en"),
                thread: 0,
                sender_label: String::new(),
            },
            &mut SystemRandomness,
        )
        .expect("seal");
        for r in [
            Request::PutRoster(roster.clone()),
            Request::GetRoster { version: 0 },
            Request::GetRoster { version: 3 },
            Request::PublishPrekeys(vec![prekey.clone()]),
            Request::FetchPrekeys(vec![pair.device_id()]),
            Request::FetchLastResortPrekeys(vec![pair.device_id()]),
            Request::SendEnvelope(envelope.clone()),
            Request::SendInThread {
                envelope: envelope.clone(),
                alert_id: 4_711_008,
            },
            Request::FetchInbox {
                after: 3,
                limit: 10,
            },
            Request::AckInbox { up_to: 3 },
        ] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        for r in [
            Response::Done,
            Response::PrekeysPublished { one_time: 0 },
            Response::PrekeysPublished { one_time: 20 },
            Response::Roster(None),
            Response::Roster(Some(roster)),
            Response::PrekeyBundles(vec![PrekeyBundle {
                device_id: pair.device_id(),
                identity_key: pair.public_key(),
                role: Role::Officer,
                prekey: Some(prekey),
            }]),
            Response::EnvelopeAccepted {
                id: 4,
                duplicate: true,
            },
            Response::Inbox(vec![InboxItem {
                id: 4,
                envelope,
                sender_identity_key: pair.public_key(),
                sender_panic_key: Some(pair.public_key()),
            }]),
        ] {
            assert_eq!(Response::decode(&r.encode()), Ok(r));
        }
        assert_eq!(
            Request::decode(&Request::FetchInbox { after: 0, limit: 0 }.encode()),
            Err(DecodeError::Invalid("limit"))
        );
        // An empty list only asks for the count.
        assert_eq!(
            Request::decode(&Request::PublishPrekeys(vec![]).encode()),
            Ok(Request::PublishPrekeys(vec![]))
        );
    }

    /// An SOS raised without content: the envelope absent, or present
    /// with an empty body, both decode as none; an envelope with a body
    /// is kept.
    #[test]
    fn an_alert_may_be_raised_without_an_envelope() {
        let none = Request::RaiseAlert {
            priority: Priority::Immediate,
            envelope: None,
            join_alert: 0,
        };
        assert_eq!(Request::decode(&none.encode()), Ok(none.clone()));
        let empty = pb::Request {
            kind: Some(pb::request::Kind::RaiseAlert(pb::RaiseAlertRequest {
                priority: Priority::Immediate.to_wire(),
                envelope: Some(pb::SignedEnvelope::default()),
                join_alert: 0,
            })),
        };
        assert_eq!(Request::decode(&empty.encode_to_vec()), Ok(none));
        let pair = IdentityKeyPair::from_seed(&[6; 32]);
        let some = Request::RaiseAlert {
            priority: Priority::Urgent,
            envelope: Some(SignedEnvelope {
                sender: pair.device_id(),
                body: vec![1, 2, 3],
                signature: pair.sign(b"x"),
            }),
            join_alert: 4_821_937,
        };
        assert_eq!(Request::decode(&some.encode()), Ok(some));
    }

    #[test]
    fn missing_and_wrong_fields_are_named() {
        assert_eq!(Request::decode(&[]), Err(DecodeError::Missing("kind")));
        assert_eq!(
            Request::decode(&[0xff, 0xff, 0xff]),
            Err(DecodeError::Protobuf)
        );
        let bad_ttl = pb::Request {
            kind: Some(pb::request::Kind::CreateInvite(pb::CreateInviteRequest {
                role: Role::Officer.to_wire(),
                ttl_seconds: MAX_INVITE_TTL_SECS + 1,
            })),
        };
        assert_eq!(
            Request::decode(&bad_ttl.encode_to_vec()),
            Err(DecodeError::Invalid("ttl_seconds"))
        );
        let short_id = pb::Request {
            kind: Some(pb::request::Kind::RevokeDevice(pb::RevokeDeviceRequest {
                device_id: vec![1, 2, 3].into(),
            })),
        };
        assert_eq!(
            Request::decode(&short_id.encode_to_vec()),
            Err(DecodeError::Invalid("device_id"))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep over random-looking inputs.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            let _ = SetupRequest::decode(&bytes);
            let _ = decode_setup_response(&bytes);
            let _ = Challenge::decode(&bytes);
            let _ = Invite::from_bytes(&bytes);
        }
    }
}
