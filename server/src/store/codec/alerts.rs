//! Stored forms of alerts.

use prost::Message;

use super::{
    CodecError, content, content_from, device_id, device_ids, id_bytes, origin, origin_from,
    priority, priority_from,
};
use crate::domain::alerts::{Alert, AlertEvent, AlertState, Alerts};

#[derive(Clone, PartialEq, Message)]
pub(super) struct AlertEventRow {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(uint64, tag = "2")]
    alert: u64,
    #[prost(bytes = "vec", tag = "3")]
    device: Vec<u8>,
    #[prost(uint32, tag = "4")]
    priority: u32,
    #[prost(uint64, tag = "5")]
    at: u64,
    #[prost(uint64, tag = "6")]
    number: u64,
    #[prost(uint32, tag = "7")]
    round: u32,
    #[prost(uint32, tag = "8")]
    step: u32,
    #[prost(bytes = "vec", repeated, tag = "9")]
    devices: Vec<Vec<u8>>,
    #[prost(bool, tag = "10")]
    flag: bool,
    #[prost(uint32, tag = "11")]
    origin: u32,
    /// What the server can tell of a raised alert's message (0: sealed to
    /// the current roster, as every alert stored before this field).
    #[prost(uint32, tag = "12")]
    content: u32,
}

#[derive(Clone, PartialEq, Message)]
struct AlertRow {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bytes = "vec", tag = "2")]
    defender: Vec<u8>,
    #[prost(uint32, tag = "3")]
    priority: u32,
    #[prost(uint64, tag = "4")]
    raised_at: u64,
    #[prost(uint32, tag = "5")]
    state: u32,
    #[prost(bytes = "vec", tag = "6")]
    holder: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    paged: Vec<Vec<u8>>,
    #[prost(bool, tag = "8")]
    positioned: bool,
    #[prost(uint32, tag = "9")]
    round: u32,
    #[prost(uint32, tag = "10")]
    step: u32,
    #[prost(uint64, tag = "11")]
    step_at: u64,
    #[prost(bool, tag = "12")]
    exhausted: bool,
    #[prost(uint64, tag = "13")]
    envelope_id: u64,
    #[prost(bytes = "vec", repeated, tag = "14")]
    delivered: Vec<Vec<u8>>,
    #[prost(uint32, tag = "15")]
    origin: u32,
    /// When the defender checked in after this missed check-in alert (0:
    /// not yet; absent in earlier snapshots).
    #[prost(uint64, tag = "16")]
    checked_in_at: u64,
    #[prost(uint32, tag = "17")]
    content: u32,
    /// The device that closed it (empty: not recorded).
    #[prost(bytes = "vec", tag = "18")]
    closed_by: Vec<u8>,
    /// The inbox ids of the messages of SOSes that joined it (absent in
    /// earlier snapshots: none).
    #[prost(uint64, repeated, tag = "19")]
    joined: Vec<u64>,
    /// When its staff were last paged again for a join (0: never; absent
    /// in earlier snapshots).
    #[prost(uint64, tag = "20")]
    repaged_at: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct AlertsRow {
    #[prost(message, repeated, tag = "1")]
    alerts: Vec<AlertRow>,
}

pub(super) fn event_row(event: &AlertEvent) -> AlertEventRow {
    let mut r = AlertEventRow::default();
    match event {
        AlertEvent::Raised {
            id,
            defender,
            priority: p,
            at,
            envelope_id,
            origin: o,
            content: c,
        } => {
            r.kind = 1;
            r.alert = *id;
            r.origin = origin(*o);
            r.content = content(*c);
            r.device = defender.as_bytes().to_vec();
            r.priority = priority(*p);
            r.at = *at;
            r.number = *envelope_id;
        }
        AlertEvent::Stepped {
            alert,
            round,
            step,
            paged,
            at,
        } => {
            r.kind = 2;
            r.alert = *alert;
            r.round = *round;
            r.step = u32::try_from(*step).unwrap_or(u32::MAX);
            r.devices = id_bytes(paged);
            r.at = *at;
        }
        AlertEvent::Exhausted { alert } => {
            r.kind = 3;
            r.alert = *alert;
        }
        AlertEvent::Acknowledged { alert, by } => {
            r.kind = 4;
            r.alert = *alert;
            r.device = by.as_bytes().to_vec();
        }
        AlertEvent::Resolved { alert } => {
            r.kind = 5;
            r.alert = *alert;
        }
        AlertEvent::Cancelled { alert, false_alarm } => {
            r.kind = 6;
            r.alert = *alert;
            r.flag = *false_alarm;
        }
        AlertEvent::ClosedBy { alert, by } => {
            r.kind = 10;
            r.alert = *alert;
            r.device = by.as_bytes().to_vec();
        }
        AlertEvent::Delivered { alert, device } => {
            r.kind = 7;
            r.alert = *alert;
            r.device = device.as_bytes().to_vec();
        }
        AlertEvent::CheckedInLate { alert, at } => {
            r.kind = 8;
            r.alert = *alert;
            r.at = *at;
        }
        AlertEvent::Joined {
            alert,
            priority: p,
            envelope_id,
            at,
            repage,
        } => {
            r.kind = 11;
            r.alert = *alert;
            r.priority = priority(*p);
            r.number = *envelope_id;
            r.at = *at;
            r.flag = *repage;
        }
        AlertEvent::Released { alert, at } => {
            r.kind = 9;
            r.alert = *alert;
            r.at = *at;
        }
    }
    r
}

pub(super) fn event_from(r: AlertEventRow) -> Result<AlertEvent, CodecError> {
    Ok(match r.kind {
        1 => AlertEvent::Raised {
            id: r.alert,
            defender: device_id(&r.device)?,
            priority: priority_from(r.priority)?,
            at: r.at,
            envelope_id: r.number,
            origin: origin_from(r.origin)?,
            content: content_from(r.content)?,
        },
        2 => AlertEvent::Stepped {
            alert: r.alert,
            round: r.round,
            step: r.step as usize,
            paged: device_ids(&r.devices)?,
            at: r.at,
        },
        3 => AlertEvent::Exhausted { alert: r.alert },
        4 => AlertEvent::Acknowledged {
            alert: r.alert,
            by: device_id(&r.device)?,
        },
        5 => AlertEvent::Resolved { alert: r.alert },
        6 => AlertEvent::Cancelled {
            alert: r.alert,
            false_alarm: r.flag,
        },
        7 => AlertEvent::Delivered {
            alert: r.alert,
            device: device_id(&r.device)?,
        },
        8 => AlertEvent::CheckedInLate {
            alert: r.alert,
            at: r.at,
        },
        9 => AlertEvent::Released {
            alert: r.alert,
            at: r.at,
        },
        10 => AlertEvent::ClosedBy {
            alert: r.alert,
            by: device_id(&r.device)?,
        },
        11 => AlertEvent::Joined {
            alert: r.alert,
            priority: priority_from(r.priority)?,
            envelope_id: r.number,
            at: r.at,
            repage: r.flag,
        },
        _ => return Err(CodecError("unknown alert event")),
    })
}

pub(super) fn alerts_row(alerts: &Alerts) -> AlertsRow {
    AlertsRow {
        alerts: alerts
            .alerts
            .values()
            .map(|a| {
                let (state, holder) = match a.state {
                    AlertState::Raised => (1, Vec::new()),
                    AlertState::Acknowledged { by } => (2, by.as_bytes().to_vec()),
                    AlertState::Resolved => (3, Vec::new()),
                    AlertState::Cancelled { false_alarm: false } => (4, Vec::new()),
                    AlertState::Cancelled { false_alarm: true } => (5, Vec::new()),
                };
                let (round, step, step_at) = a.position.unwrap_or((0, 0, 0));
                AlertRow {
                    id: a.id,
                    defender: a.defender.as_bytes().to_vec(),
                    priority: priority(a.priority),
                    raised_at: a.raised_at,
                    state,
                    holder,
                    paged: id_bytes(&a.paged),
                    positioned: a.position.is_some(),
                    round,
                    step: u32::try_from(step).unwrap_or(u32::MAX),
                    step_at,
                    exhausted: a.exhausted,
                    envelope_id: a.envelope_id,
                    delivered: id_bytes(&a.delivered),
                    origin: origin(a.origin),
                    checked_in_at: a.checked_in_at.unwrap_or(0),
                    closed_by: a
                        .closed_by
                        .map(|d| d.as_bytes().to_vec())
                        .unwrap_or_default(),
                    content: content(a.content),
                    joined: a.joined.clone(),
                    repaged_at: a.repaged_at.unwrap_or(0),
                }
            })
            .collect(),
    }
}

pub(super) fn alerts_from(row: AlertsRow) -> Result<Alerts, CodecError> {
    let mut alerts = Vec::with_capacity(row.alerts.len());
    for r in row.alerts {
        let state = match r.state {
            1 => AlertState::Raised,
            2 => AlertState::Acknowledged {
                by: device_id(&r.holder)?,
            },
            3 => AlertState::Resolved,
            4 => AlertState::Cancelled { false_alarm: false },
            5 => AlertState::Cancelled { false_alarm: true },
            _ => return Err(CodecError("unknown alert state")),
        };
        alerts.push(Alert {
            id: r.id,
            defender: device_id(&r.defender)?,
            priority: priority_from(r.priority)?,
            raised_at: r.raised_at,
            state,
            paged: device_ids(&r.paged)?,
            position: r
                .positioned
                .then_some((r.round, r.step as usize, r.step_at)),
            exhausted: r.exhausted,
            envelope_id: r.envelope_id,
            origin: origin_from(r.origin)?,
            delivered: device_ids(&r.delivered)?,
            checked_in_at: (r.checked_in_at != 0).then_some(r.checked_in_at),
            closed_by: match r.closed_by.len() {
                0 => None,
                _ => Some(device_id(&r.closed_by)?),
            },
            content: content_from(r.content)?,
            joined: r.joined,
            repaged_at: (r.repaged_at != 0).then_some(r.repaged_at),
        });
    }
    // An alert listed twice would be indexed from one row and kept from
    // the other (a closed alert left escalating). Found by fuzzing.
    let ids: std::collections::BTreeSet<u64> = alerts.iter().map(|a| a.id).collect();
    if ids.len() != alerts.len() {
        return Err(CodecError("an alert stored twice in a snapshot"));
    }
    Ok(Alerts::from_alerts(alerts))
}

#[cfg(test)]
mod tests {
    use hotline_proto::DeviceId;
    use hotline_proto::alert::{AlertContent, AlertOrigin, Priority};

    use super::*;

    /// Found by fuzzing (fuzz/corpus/store_codec/crash-alert-twice): a
    /// snapshot listing one alert twice, raised then resolved, read back
    /// with the resolved alert still escalating.
    #[test]
    fn a_snapshot_listing_an_alert_twice_is_refused() {
        let raised = Alert {
            id: 6,
            defender: DeviceId::from_bytes([5; 16]),
            priority: Priority::Immediate,
            raised_at: 10,
            state: AlertState::Raised,
            paged: Default::default(),
            position: None,
            exhausted: false,
            envelope_id: 0,
            origin: AlertOrigin::Sos,
            delivered: Default::default(),
            checked_in_at: None,
            closed_by: None,
            content: AlertContent::None,
            joined: Vec::new(),
            repaged_at: None,
        };
        let resolved = Alert {
            state: AlertState::Resolved,
            ..raised.clone()
        };
        let rows = |a: &Alert| alerts_row(&Alerts::from_alerts([a.clone()])).alerts;
        let twice = AlertsRow {
            alerts: [rows(&raised), rows(&resolved)].concat(),
        };
        assert_eq!(
            alerts_from(twice),
            Err(CodecError("an alert stored twice in a snapshot"))
        );
        let once = AlertsRow {
            alerts: rows(&resolved),
        };
        assert_eq!(alerts_from(once), Ok(Alerts::from_alerts([resolved])));
    }
}
