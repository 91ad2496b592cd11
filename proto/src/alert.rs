//! Alerts as the wire carries them: priority, status, the summary staff
//! see, and server pushes.

use prost::Message as _;

use crate::error::DecodeError;
use crate::identity::DeviceId;
use crate::pb;

/// How urgent an alert is: decides how fast it escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Immediate danger.
    Immediate,
    /// Urgent.
    Urgent,
    /// Routine.
    Routine,
}

impl Priority {
    pub(crate) fn to_wire(self) -> i32 {
        (match self {
            Priority::Immediate => pb::Priority::Immediate,
            Priority::Urgent => pb::Priority::Urgent,
            Priority::Routine => pb::Priority::Routine,
        }) as i32
    }

    pub(crate) fn from_wire(v: i32) -> Result<Priority, DecodeError> {
        match pb::Priority::try_from(v) {
            Ok(pb::Priority::Immediate) => Ok(Priority::Immediate),
            Ok(pb::Priority::Urgent) => Ok(Priority::Urgent),
            Ok(pb::Priority::Routine) => Ok(Priority::Routine),
            _ => Err(DecodeError::Invalid("priority")),
        }
    }

    /// A lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Immediate => "immediate",
            Priority::Urgent => "urgent",
            Priority::Routine => "routine",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Priority {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "immediate" | "immediate-danger" => Ok(Priority::Immediate),
            "urgent" => Ok(Priority::Urgent),
            "routine" => Ok(Priority::Routine),
            _ => Err(DecodeError::Invalid("priority")),
        }
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    /// Raised; nobody claimed it yet.
    Raised,
    /// Claimed by one staff device.
    Acknowledged,
    /// Handled.
    Resolved,
    /// Called off.
    Cancelled,
    /// Never was one.
    FalseAlarm,
}

impl AlertStatus {
    fn to_wire(self) -> i32 {
        (match self {
            AlertStatus::Raised => pb::AlertStatus::Raised,
            AlertStatus::Acknowledged => pb::AlertStatus::Acknowledged,
            AlertStatus::Resolved => pb::AlertStatus::Resolved,
            AlertStatus::Cancelled => pb::AlertStatus::Cancelled,
            AlertStatus::FalseAlarm => pb::AlertStatus::FalseAlarm,
        }) as i32
    }

    fn from_wire(v: i32) -> Result<AlertStatus, DecodeError> {
        match pb::AlertStatus::try_from(v) {
            Ok(pb::AlertStatus::Raised) => Ok(AlertStatus::Raised),
            Ok(pb::AlertStatus::Acknowledged) => Ok(AlertStatus::Acknowledged),
            Ok(pb::AlertStatus::Resolved) => Ok(AlertStatus::Resolved),
            Ok(pb::AlertStatus::Cancelled) => Ok(AlertStatus::Cancelled),
            Ok(pb::AlertStatus::FalseAlarm) => Ok(AlertStatus::FalseAlarm),
            _ => Err(DecodeError::Invalid("status")),
        }
    }

    /// A lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Raised => "raised",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
            AlertStatus::Cancelled => "cancelled",
            AlertStatus::FalseAlarm => "false alarm",
        }
    }
}

impl std::fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why an alert is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Handled (staff).
    Resolved,
    /// Called off.
    Cancelled,
    /// Never was one.
    FalseAlarm,
}

impl CloseReason {
    pub(crate) fn to_wire(self) -> i32 {
        (match self {
            CloseReason::Resolved => pb::CloseReason::Resolved,
            CloseReason::Cancelled => pb::CloseReason::Cancelled,
            CloseReason::FalseAlarm => pb::CloseReason::FalseAlarm,
        }) as i32
    }

    pub(crate) fn from_wire(v: i32) -> Result<CloseReason, DecodeError> {
        match pb::CloseReason::try_from(v) {
            Ok(pb::CloseReason::Resolved) => Ok(CloseReason::Resolved),
            Ok(pb::CloseReason::Cancelled) => Ok(CloseReason::Cancelled),
            Ok(pb::CloseReason::FalseAlarm) => Ok(CloseReason::FalseAlarm),
            _ => Err(DecodeError::Invalid("reason")),
        }
    }
}

/// What raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertOrigin {
    /// The defender raised it.
    Sos,
    /// The defender missed a check-in.
    MissedCheckin,
    /// The defender entered the duress code (never shown to the defender).
    Duress,
    /// The defender's check-in schedule was changed (never shown to the
    /// defender: a coercer may have made the change).
    CheckinChanged,
    /// The defender's check-ins were stopped (never shown to the defender).
    CheckinStopped,
    /// Wrong check-in codes were entered again and again: someone may be
    /// guessing them (never shown to the defender).
    WrongCheckinCodes,
}

impl AlertOrigin {
    fn to_wire(self) -> i32 {
        (match self {
            AlertOrigin::Sos => pb::AlertOrigin::Sos,
            AlertOrigin::MissedCheckin => pb::AlertOrigin::MissedCheckin,
            AlertOrigin::Duress => pb::AlertOrigin::Duress,
            AlertOrigin::CheckinChanged => pb::AlertOrigin::CheckinChanged,
            AlertOrigin::CheckinStopped => pb::AlertOrigin::CheckinStopped,
            AlertOrigin::WrongCheckinCodes => pb::AlertOrigin::WrongCheckinCodes,
        }) as i32
    }

    fn from_wire(v: i32) -> Result<AlertOrigin, DecodeError> {
        match pb::AlertOrigin::try_from(v) {
            Ok(pb::AlertOrigin::Sos) => Ok(AlertOrigin::Sos),
            Ok(pb::AlertOrigin::MissedCheckin) => Ok(AlertOrigin::MissedCheckin),
            Ok(pb::AlertOrigin::Duress) => Ok(AlertOrigin::Duress),
            Ok(pb::AlertOrigin::CheckinChanged) => Ok(AlertOrigin::CheckinChanged),
            Ok(pb::AlertOrigin::CheckinStopped) => Ok(AlertOrigin::CheckinStopped),
            Ok(pb::AlertOrigin::WrongCheckinCodes) => Ok(AlertOrigin::WrongCheckinCodes),
            _ => Err(DecodeError::Invalid("origin")),
        }
    }

    /// A lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertOrigin::Sos => "sos",
            AlertOrigin::MissedCheckin => "missed check-in",
            AlertOrigin::Duress => "DURESS",
            AlertOrigin::CheckinChanged => "check-ins changed",
            AlertOrigin::CheckinStopped => "check-ins stopped",
            AlertOrigin::WrongCheckinCodes => "wrong check-in codes",
        }
    }

    /// Whether the alert's defender may see it: not one their duress code
    /// raised, nor a notice of a schedule change (the person holding the
    /// phone may be a coercer who made it).
    pub fn shown_to_defender(self) -> bool {
        matches!(self, AlertOrigin::Sos | AlertOrigin::MissedCheckin)
    }
}

/// The unkeyed digest a check-in code travelled as before check-in keys:
/// `SHA-256("hotline/1 checkin code\0" || device id || code)`. Computable
/// by anyone from the code and the device id: used only for a schedule
/// set before the device had a [`CheckinKey`], until it is set again.
pub fn checkin_digest(device: &DeviceId, code: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"hotline/1 checkin code\0");
    ctx.update(device.as_bytes());
    ctx.update(code.trim().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The label of a keyed check-in tag (version 2: the unkeyed digest was
/// version 1).
pub const CHECKIN_TAG_LABEL: &[u8] = b"hotline/2 checkin tag\0";

/// A device's secret check-in key: 32 random bytes that never leave the
/// device. Codes reach the server only as tags keyed with it, so the
/// server's copy of them gives nothing to a brute force of the codes.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckinKey([u8; 32]);

impl std::fmt::Debug for CheckinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckinKey(..)")
    }
}

impl Drop for CheckinKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl CheckinKey {
    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> CheckinKey {
        CheckinKey(bytes)
    }

    /// Its bytes (to store on the device).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The tag a code travels as:
    /// `HMAC-SHA256(key, "hotline/2 checkin tag\0" || device id || code)`,
    /// the code with surrounding whitespace removed.
    pub fn tag(&self, device: &DeviceId, code: &str) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(CHECKIN_TAG_LABEL);
        ctx.update(device.as_bytes());
        ctx.update(code.trim().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// An alert as staff (and its defender) see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertInfo {
    /// Its id.
    pub id: u64,
    /// The defender's device.
    pub defender: DeviceId,
    /// How urgent.
    pub priority: Priority,
    /// Where it stands.
    pub status: AlertStatus,
    /// Who holds it, while acknowledged.
    pub holder: Option<DeviceId>,
    /// When it was raised.
    pub raised_at: u64,
    /// The escalation round and step last taken.
    pub position: (u32, u32),
    /// How many devices were paged so far.
    pub paged: u32,
    /// The alert's message as the asking device numbers it: its inbox id
    /// for a recipient, its sent id for the defender who raised it (0:
    /// none).
    pub envelope_id: u64,
    /// What raised it.
    pub origin: AlertOrigin,
    /// A missed check-in alert: when the defender checked in after it.
    pub checked_in_at: Option<u64>,
    /// In the answer to a raise only: how many of the `paged` devices had
    /// a live connection when the page was pushed to them (the others get
    /// it when they next connect). 0 elsewhere.
    pub paged_now: u32,
    /// What the server can tell of its message.
    pub content: AlertContent,
    /// Who the escalation step last taken paged (`None`: none taken).
    pub tier: Option<EscalationTier>,
    /// When that step was taken (0: none).
    pub step_at: u64,
    /// The policy ran all its rounds and nobody claimed the alert.
    pub exhausted: bool,
    /// The device that resolved or called it off, when recorded.
    pub closed_by: Option<DeviceId>,
    /// How many later SOSes of its defender joined it (past the device's
    /// open-alert limit).
    pub joined_count: u32,
    /// The newest of their messages ([`MAX_JOINED_SHOWN`] at most, oldest
    /// first), as the asking device numbers them.
    pub joined: Vec<u64>,
    /// In the answer to a raise only: the SOS joined this open alert
    /// instead of opening one. False elsewhere.
    pub joined_now: bool,
    /// With `joined_now`: the join paged the alert's staff again now
    /// (`paged_now` counts those reached at once); false: they were paged
    /// less than a minute before and are not paged again (the SOS's text
    /// reaches them all the same).
    pub paged_again: bool,
}

/// The most joined messages an [`AlertInfo`] names: a defender raising in
/// a loop must not make alert lists too large to answer.
pub const MAX_JOINED_SHOWN: usize = 8;

/// Who an escalation step pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscalationTier {
    /// The staff on duty now.
    OnDuty,
    /// Officers not on duty.
    Backup,
    /// Coordinators.
    Coordinators,
    /// Every staff device on the roster.
    Everyone,
}

impl EscalationTier {
    fn to_wire(tier: Option<EscalationTier>) -> i32 {
        (match tier {
            None => pb::EscalationTier::Unspecified,
            Some(EscalationTier::OnDuty) => pb::EscalationTier::OnDuty,
            Some(EscalationTier::Backup) => pb::EscalationTier::Backup,
            Some(EscalationTier::Coordinators) => pb::EscalationTier::Coordinators,
            Some(EscalationTier::Everyone) => pb::EscalationTier::Everyone,
        }) as i32
    }

    fn from_wire(v: i32) -> Result<Option<EscalationTier>, DecodeError> {
        match pb::EscalationTier::try_from(v) {
            Ok(pb::EscalationTier::Unspecified) => Ok(None),
            Ok(pb::EscalationTier::OnDuty) => Ok(Some(EscalationTier::OnDuty)),
            Ok(pb::EscalationTier::Backup) => Ok(Some(EscalationTier::Backup)),
            Ok(pb::EscalationTier::Coordinators) => Ok(Some(EscalationTier::Coordinators)),
            Ok(pb::EscalationTier::Everyone) => Ok(Some(EscalationTier::Everyone)),
            Err(_) => Err(DecodeError::Invalid("tier")),
        }
    }

    /// Who it pages, in words.
    pub fn words(self) -> &'static str {
        match self {
            EscalationTier::OnDuty => "the staff on duty",
            EscalationTier::Backup => "the backup officers",
            EscalationTier::Coordinators => "the coordinators",
            EscalationTier::Everyone => "every staff device",
        }
    }
}

/// What the server can tell of an alert's message: whether the defender's
/// device sealed it to the roster the server holds, to an older one that
/// a newer roster replaced (staff who joined since cannot read it), to
/// one that had expired, or could not seal it at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertContent {
    /// Sealed to the current roster (or, for check-in alerts, no message
    /// by nature).
    Sealed,
    /// Sealed to the newest roster, which had expired (or, from a server
    /// that does not tell the two apart, to an expired or replaced one).
    ExpiredRoster,
    /// Sealed to a roster older than the newest the server held when the
    /// SOS was raised (replaced, not expired: a defender's device that
    /// sealed it offline, or before it saw the new roster). Staff devices
    /// the newer roster added cannot read its text. On the wire:
    /// `ALERT_CONTENT_EXPIRED_ROSTER` with `older_roster` set.
    OlderRoster,
    /// Raised without content: the defender's device had no verified
    /// roster to seal to.
    None,
}

impl AlertContent {
    fn to_wire(self) -> i32 {
        (match self {
            AlertContent::Sealed => pb::AlertContent::Sealed,
            AlertContent::ExpiredRoster | AlertContent::OlderRoster => {
                pb::AlertContent::ExpiredRoster
            }
            AlertContent::None => pb::AlertContent::None,
        }) as i32
    }

    fn from_wire(v: i32, older_roster: bool) -> Result<AlertContent, DecodeError> {
        match pb::AlertContent::try_from(v) {
            Ok(pb::AlertContent::Sealed) => Ok(AlertContent::Sealed),
            Ok(pb::AlertContent::ExpiredRoster) if older_roster => Ok(AlertContent::OlderRoster),
            Ok(pb::AlertContent::ExpiredRoster) => Ok(AlertContent::ExpiredRoster),
            Ok(pb::AlertContent::None) => Ok(AlertContent::None),
            Err(_) => Err(DecodeError::Invalid("content")),
        }
        // `older_roster` qualifies an expired-roster mark only: set with any
        // other, the message is malformed (what decodes encodes the same).
        .and_then(|c| match c {
            AlertContent::Sealed | AlertContent::None if older_roster => {
                Err(DecodeError::Invalid("older_roster"))
            }
            c => Ok(c),
        })
    }

    /// A mark for staff, empty when there is nothing to say. Never casts
    /// doubt on the SOS itself: the server raised it for the defender's
    /// enrolled device; only who can read its text is in question.
    pub fn mark(self) -> &'static str {
        match self {
            AlertContent::Sealed => "",
            AlertContent::ExpiredRoster => {
                "[text sealed to the staff roster after it had EXPIRED: staff added since cannot read it]"
            }
            AlertContent::OlderRoster => {
                "[text sealed to an earlier staff roster (the defender's device had not seen the newest): staff devices added since cannot read it]"
            }
            AlertContent::None => "[NO TEXT: the defender's device had no roster to seal to]",
        }
    }
}

impl AlertInfo {
    pub(crate) fn to_wire(&self) -> pb::AlertInfo {
        pb::AlertInfo {
            id: self.id,
            defender: self.defender.as_bytes().to_vec().into(),
            priority: self.priority.to_wire(),
            status: self.status.to_wire(),
            holder: self
                .holder
                .map(|h| h.as_bytes().to_vec())
                .unwrap_or_default()
                .into(),
            raised_at: self.raised_at,
            round: self.position.0,
            step: self.position.1,
            paged: self.paged,
            envelope_id: self.envelope_id,
            origin: self.origin.to_wire(),
            checked_in_at: self.checked_in_at.unwrap_or(0),
            paged_now: self.paged_now,
            content: self.content.to_wire(),
            tier: EscalationTier::to_wire(self.tier),
            step_at: self.step_at,
            exhausted: self.exhausted,
            closed_by: self
                .closed_by
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default()
                .into(),
            joined_count: self.joined_count,
            joined: self.joined.clone(),
            joined_now: self.joined_now,
            paged_again: self.paged_again,
            older_roster: self.content == AlertContent::OlderRoster,
        }
    }

    pub(crate) fn from_wire(m: pb::AlertInfo) -> Result<AlertInfo, DecodeError> {
        Ok(AlertInfo {
            id: m.id,
            defender: DeviceId::from_slice(&m.defender, "defender")?,
            priority: Priority::from_wire(m.priority)?,
            status: AlertStatus::from_wire(m.status)?,
            holder: match m.holder.len() {
                0 => None,
                _ => Some(DeviceId::from_slice(&m.holder, "holder")?),
            },
            raised_at: m.raised_at,
            position: (m.round, m.step),
            paged: m.paged,
            envelope_id: m.envelope_id,
            origin: AlertOrigin::from_wire(m.origin)?,
            checked_in_at: (m.checked_in_at != 0).then_some(m.checked_in_at),
            paged_now: m.paged_now,
            content: AlertContent::from_wire(m.content, m.older_roster)?,
            tier: EscalationTier::from_wire(m.tier)?,
            step_at: m.step_at,
            exhausted: m.exhausted,
            closed_by: match m.closed_by.len() {
                0 => None,
                _ => Some(DeviceId::from_slice(&m.closed_by, "closed_by")?),
            },
            joined_count: m.joined_count,
            joined: m.joined,
            joined_now: m.joined_now,
            paged_again: m.paged_again,
        })
    }
}

/// What the server pushes on a stream it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// This device is paged for an alert.
    Alert(AlertInfo),
    /// The alert with this id was called off: all clear.
    AllClear(u64),
    /// A new message waits in this device's inbox, under this inbox id
    /// (nothing readable: the device fetches and opens it).
    Message(u64),
    /// The device holding this alert was revoked: it is raised again and
    /// its escalation resumes (sent to the staff paged for it and on duty).
    Released(AlertInfo),
    /// Staff: case updates up to this sync position wait (nothing
    /// readable; the device syncs).
    Cases(u64),
}

impl Push {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let kind = match self {
            Push::Alert(a) => pb::push::Kind::Alert(a.to_wire()),
            Push::AllClear(id) => pb::push::Kind::AllClear(*id),
            Push::Message(id) => pb::push::Kind::Message(*id),
            Push::Released(a) => pb::push::Kind::Released(a.to_wire()),
            Push::Cases(p) => pb::push::Kind::Cases(*p),
        };
        pb::Push { kind: Some(kind) }.encode_to_vec()
    }

    /// Parses a frame payload.
    pub fn decode(bytes: &[u8]) -> Result<Push, DecodeError> {
        match pb::Push::decode(bytes)?
            .kind
            .ok_or(DecodeError::Missing("kind"))?
        {
            pb::push::Kind::Alert(a) => Ok(Push::Alert(AlertInfo::from_wire(a)?)),
            pb::push::Kind::AllClear(id) => Ok(Push::AllClear(id)),
            pb::push::Kind::Message(id) => Ok(Push::Message(id)),
            pb::push::Kind::Released(a) => Ok(Push::Released(AlertInfo::from_wire(a)?)),
            pb::push::Kind::Cases(p) => Ok(Push::Cases(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_in_tag_needs_the_device_key() {
        // RFC 4231-style check with ring's HMAC computed independently:
        // the tag is HMAC-SHA256 over label || device id || trimmed code.
        let device = DeviceId::from_bytes([7; 16]);
        let key = CheckinKey::from_bytes([9; 32]);
        let mut msg = CHECKIN_TAG_LABEL.to_vec();
        msg.extend_from_slice(device.as_bytes());
        msg.extend_from_slice(b"4711");
        let expected = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[9; 32]),
            &msg,
        );
        assert_eq!(key.tag(&device, " 4711\n"), expected.as_ref());
        // Another key, another tag; and never the unkeyed digest.
        let other = CheckinKey::from_bytes([8; 32]);
        assert_ne!(key.tag(&device, "4711"), other.tag(&device, "4711"));
        assert_ne!(key.tag(&device, "4711"), checkin_digest(&device, "4711"));
        assert_eq!(format!("{key:?}"), "CheckinKey(..)");
    }

    /// A text sealed to a replaced roster travels as "expired roster" with
    /// `older_roster` set: this version reads it back as such, and a
    /// reader that does not know the field (an older client) still reads
    /// the expired-roster mark it knew, never a decoding error.
    #[test]
    fn a_text_sealed_to_a_replaced_roster_round_trips_and_older_readers_see_an_old_roster() {
        for content in [
            AlertContent::Sealed,
            AlertContent::ExpiredRoster,
            AlertContent::OlderRoster,
            AlertContent::None,
        ] {
            let wire = content.to_wire();
            let older = content == AlertContent::OlderRoster;
            assert_eq!(AlertContent::from_wire(wire, older), Ok(content));
        }
        assert_eq!(
            AlertContent::OlderRoster.to_wire(),
            pb::AlertContent::ExpiredRoster as i32
        );
        assert_eq!(
            AlertContent::from_wire(pb::AlertContent::ExpiredRoster as i32, false),
            Ok(AlertContent::ExpiredRoster)
        );
        assert!(!AlertContent::OlderRoster.mark().contains("EXPIRED"));
        // Set with any other mark: malformed, never read as one of them.
        for other in [pb::AlertContent::Sealed, pb::AlertContent::None] {
            assert!(AlertContent::from_wire(other as i32, true).is_err());
        }
    }

    #[test]
    fn pushes_round_trip() {
        let info = AlertInfo {
            id: 7,
            defender: DeviceId::from_bytes([1; 16]),
            priority: Priority::Immediate,
            status: AlertStatus::Acknowledged,
            holder: Some(DeviceId::from_bytes([2; 16])),
            raised_at: 100,
            position: (1, 2),
            paged: 3,
            envelope_id: 6,
            origin: AlertOrigin::Duress,
            checked_in_at: Some(120),
            paged_now: 2,
            content: AlertContent::ExpiredRoster,
            tier: Some(EscalationTier::Backup),
            step_at: 110,
            exhausted: true,
            closed_by: Some(DeviceId::from_bytes([5; 16])),
            joined_count: 9,
            joined: vec![11, 12],
            joined_now: true,
            paged_again: true,
        };
        for p in [
            Push::Alert(info.clone()),
            Push::AllClear(7),
            Push::Message(9),
            Push::Released(info),
        ] {
            assert_eq!(Push::decode(&p.encode()), Ok(p));
        }
        assert!(Push::decode(&[]).is_err());
        for o in [
            AlertOrigin::CheckinChanged,
            AlertOrigin::CheckinStopped,
            AlertOrigin::WrongCheckinCodes,
        ] {
            assert_eq!(AlertOrigin::from_wire(o.to_wire()), Ok(o));
            assert!(!o.shown_to_defender());
        }
        assert_eq!("Urgent".parse::<Priority>(), Ok(Priority::Urgent));
    }
}
