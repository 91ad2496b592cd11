//! Alerts and their escalation, as pure state: no I/O, no clock of its own.
//!
//! An alert is raised by a defender with a priority (the category travels
//! end-to-end encrypted with the message; the server does not need it).
//! Until an officer acknowledges it, it climbs the escalation policy for
//! its priority: each step pages a tier of staff and waits; a step with
//! nobody to page is passed at once; the steps repeat a set number of
//! rounds, after which the alert stays open and paged.
//!
//! Every decision is an [`AlertEvent`] appended to the log before anyone
//! is notified, and the current step is part of the derived state. A
//! restart therefore resumes an escalation from its last recorded step:
//! no step is lost, none is repeated. This module is the state machine
//! and the policy.

use std::collections::{BTreeMap, BTreeSet};

use hotline_proto::{DeviceId, Role};

use super::ApplyError;

pub use hotline_proto::alert::{AlertContent, AlertOrigin, Priority};

/// Who a step pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Officers on duty now.
    OnDuty,
    /// The backup officers (on the rota's backup list).
    Backup,
    /// Coordinators.
    Coordinators,
    /// Every staff device.
    Everyone,
}

/// One escalation step: page a tier, then wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Who to page.
    pub tier: Tier,
    /// Seconds to wait for an acknowledgement before the next step.
    pub wait_secs: u64,
}

/// The escalation policy for one priority.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// How many times the whole sequence runs (at least 1).
    pub rounds: u32,
}

/// The policies for every priority.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policies {
    /// For immediate danger.
    pub immediate: Policy,
    /// For urgent alerts.
    pub urgent: Policy,
    /// For routine alerts.
    pub routine: Policy,
}

fn step(tier: Tier, minutes: u64) -> Step {
    Step {
        tier,
        wait_secs: minutes * 60,
    }
}

impl Default for Policies {
    /// Immediate danger: on-duty officers, 2 minutes; backup, 3; coordinators,
    /// 5; everyone, 5; three rounds. Urgent: 10, 15, 30, 30 minutes, two
    /// rounds. Routine: on duty for an hour, coordinators for four, then
    /// everyone.
    fn default() -> Self {
        Policies {
            immediate: Policy {
                steps: vec![
                    step(Tier::OnDuty, 2),
                    step(Tier::Backup, 3),
                    step(Tier::Coordinators, 5),
                    step(Tier::Everyone, 5),
                ],
                rounds: 3,
            },
            urgent: Policy {
                steps: vec![
                    step(Tier::OnDuty, 10),
                    step(Tier::Backup, 15),
                    step(Tier::Coordinators, 30),
                    step(Tier::Everyone, 30),
                ],
                rounds: 2,
            },
            routine: Policy {
                steps: vec![
                    step(Tier::OnDuty, 60),
                    step(Tier::Coordinators, 240),
                    step(Tier::Everyone, 480),
                ],
                rounds: 1,
            },
        }
    }
}

impl Policies {
    /// The policy for `priority`.
    pub fn for_priority(&self, priority: Priority) -> &Policy {
        match priority {
            Priority::Immediate => &self.immediate,
            Priority::Urgent => &self.urgent,
            Priority::Routine => &self.routine,
        }
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// Raised, nobody has claimed it.
    Raised,
    /// Claimed by one officer.
    Acknowledged {
        /// Who holds it.
        by: DeviceId,
    },
    /// Closed by staff.
    Resolved,
    /// Called off by the defender or staff; `false_alarm` if it never was one.
    Cancelled {
        /// It was a false alarm.
        false_alarm: bool,
    },
}

impl AlertState {
    /// Whether the alert still needs someone.
    pub fn is_open(&self) -> bool {
        matches!(self, AlertState::Raised | AlertState::Acknowledged { .. })
    }
}

/// The largest alert id: ids are drawn at random from 1 to this (seven
/// digits, short enough to type as `#N`), never a log position.
pub const MAX_ALERT_ID: u64 = 9_999_999;

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Its id: random (1 to [`MAX_ALERT_ID`]), or, for an alert stored
    /// before ids were random, the log sequence number that raised it.
    pub id: u64,
    /// The defender's device.
    pub defender: DeviceId,
    /// How urgent.
    pub priority: Priority,
    /// When it was raised.
    pub raised_at: u64,
    /// Where it stands.
    pub state: AlertState,
    /// Every device paged so far (who must hear the all clear).
    pub paged: BTreeSet<DeviceId>,
    /// The escalation position last recorded: `(round, step)`, and when.
    pub position: Option<(u32, usize, u64)>,
    /// The policy ran all its rounds.
    pub exhausted: bool,
    /// The inbox id of the alert's end-to-end encrypted message (0: none).
    pub envelope_id: u64,
    /// What raised it.
    pub origin: AlertOrigin,
    /// Devices that confirmed they received the page.
    pub delivered: BTreeSet<DeviceId>,
    /// A missed check-in alert: when the defender checked in after it.
    pub checked_in_at: Option<u64>,
    /// The device that closed it (none for alerts closed before this was
    /// recorded, or still open).
    pub closed_by: Option<DeviceId>,
    /// What the server can tell of its message (sealed to the current
    /// roster, to an expired one, or none).
    pub content: AlertContent,
    /// The inbox ids of the messages of later SOSes of its defender that
    /// joined it (the defender had as many open SOS alerts as a device
    /// may), oldest first.
    pub joined: Vec<u64>,
    /// When its staff were last paged again because its defender raised
    /// again (see [`REPAGE_SECS`]).
    pub repaged_at: Option<u64>,
}

/// The shortest time between two pages of one alert's staff caused by its
/// defender raising again: a loop of SOSes cannot buzz a phone more often.
pub const REPAGE_SECS: u64 = 60;

/// What happened to alerts, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    /// A defender raised an alert.
    Raised {
        /// Its id (random); 0 in records written before ids were random,
        /// whose id is the log position.
        id: u64,
        /// The defender's device.
        defender: DeviceId,
        /// How urgent.
        priority: Priority,
        /// When.
        at: u64,
        /// The inbox id of its message (0: none).
        envelope_id: u64,
        /// What raised it.
        origin: AlertOrigin,
        /// What the server can tell of its message.
        content: AlertContent,
    },
    /// An escalation step was taken (possibly paging nobody).
    Stepped {
        /// Which alert.
        alert: u64,
        /// Round (from 0).
        round: u32,
        /// Step within the round (from 0).
        step: usize,
        /// The devices paged by this step.
        paged: Vec<DeviceId>,
        /// When.
        at: u64,
    },
    /// The policy ran out of rounds; the alert stays open.
    Exhausted {
        /// Which alert.
        alert: u64,
    },
    /// An officer claimed the alert.
    Acknowledged {
        /// Which alert.
        alert: u64,
        /// Who.
        by: DeviceId,
    },
    /// Staff closed it.
    Resolved {
        /// Which alert.
        alert: u64,
    },
    /// It was called off.
    Cancelled {
        /// Which alert.
        alert: u64,
        /// Never a real alarm.
        false_alarm: bool,
    },
    /// Who closed it (recorded with the close, in the same record).
    ClosedBy {
        /// Which alert.
        alert: u64,
        /// The device that resolved or called it off.
        by: DeviceId,
    },
    /// A paged device confirmed it received the page.
    Delivered {
        /// Which alert.
        alert: u64,
        /// Which device.
        device: DeviceId,
    },
    /// The defender checked in after this missed check-in alert.
    CheckedInLate {
        /// Which alert.
        alert: u64,
        /// When.
        at: u64,
    },
    /// The device holding the alert was revoked: the alert is raised
    /// again and its escalation resumes at the step it had reached, whose
    /// wait starts over at `at`.
    Released {
        /// Which alert.
        alert: u64,
        /// When.
        at: u64,
    },
    /// Its defender raised an SOS while it had as many open SOS alerts as
    /// a device may: the SOS joined this alert (its newest open one)
    /// instead of opening another. A more urgent `priority` raises the
    /// alert's and, while nobody holds it, restarts its escalation under
    /// the stricter policy (a `Stepped` in the same record pages the first
    /// tier).
    Joined {
        /// Which alert.
        alert: u64,
        /// The SOS's priority.
        priority: Priority,
        /// The inbox id of the SOS's message (0: none).
        envelope_id: u64,
        /// When.
        at: u64,
        /// Its staff are paged again now (at most once per [`REPAGE_SECS`]).
        repage: bool,
    },
}

/// Why a change to an alert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// No such alert.
    #[error("no such alert")]
    NotFound,
    /// Another officer holds it.
    #[error("the alert is already held by another officer")]
    HeldBy(DeviceId),
    /// It is closed.
    #[error("the alert is closed")]
    Closed,
    /// This device may not do that to it.
    #[error("this device may not do that to this alert")]
    Forbidden,
}

/// Why an alert was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Handled by staff.
    Resolved,
    /// Called off.
    Cancelled,
    /// Never was one.
    FalseAlarm,
}

/// Why an SOS cannot be raised with the envelope given. Both are the
/// sending client's to fix (seal anew, write less); retrying the same
/// request cannot help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RaiseError {
    /// The same envelope was stored before as a plain message.
    #[error("this message was already sent")]
    SentAsMessage,
    /// The alert's record would not fit in the log.
    #[error("the message is too large to store")]
    TooLarge,
}

/// An SOS as the server receives it: who raises it, how urgent, and its
/// end-to-end encrypted message, if the defender's device could seal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sos {
    /// The defender's device.
    pub defender: DeviceId,
    /// How urgent.
    pub priority: Priority,
    /// The message (checked, with the devices it is sealed to), or `None`
    /// for an alert raised without content.
    pub message: Option<SosMessage>,
    /// What the server can tell of the message ([`AlertContent::None`]
    /// when there is none).
    pub content: AlertContent,
    /// An open SOS alert of `defender` this SOS asks to join (SOSes queued
    /// together on its device), whatever the open-alert limit; 0: none.
    /// An id that names no open SOS alert of `defender` is ignored.
    pub join: u64,
}

/// The end-to-end encrypted message of an SOS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SosMessage {
    /// SHA-256 of the envelope's wire bytes.
    pub digest: [u8; 32],
    /// The devices the envelope is sealed to.
    pub recipients: Vec<DeviceId>,
    /// The envelope's wire bytes.
    pub envelope: Vec<u8>,
}

/// What raising an SOS writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raise {
    /// This envelope raised an alert before (a retry): that alert.
    Again(Alert),
    /// A new alert: the events of its record (its message, then the
    /// alert), to which the escalation steps due now are added.
    New(Vec<super::Event>),
    /// The defender has as many open SOS alerts as a device may: the SOS
    /// joins the newest of them, `alert`. The events of its record (its
    /// message, then [`AlertEvent::Joined`]); a more urgent SOS also
    /// restarts the alert's escalation, whose first step the store adds.
    Joined {
        /// The alert joined.
        alert: u64,
        /// The SOS made the alert more urgent and nobody holds it: its
        /// escalation starts over under the stricter policy.
        escalate: bool,
        /// The events.
        events: Vec<super::Event>,
    },
}

/// Every alert, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alerts {
    /// The alerts.
    pub alerts: BTreeMap<u64, Alert>,
    /// The alerts still escalating (raised, unclaimed, rounds left): the
    /// only ones an escalation check looks at, however long the history.
    escalating: BTreeSet<u64>,
    /// The open alerts (raised or acknowledged): what lists of open alerts
    /// and catch-up pages look at.
    open: BTreeSet<u64>,
}

impl Alerts {
    /// Applies an event recorded at log position `seq`.
    pub fn apply(&mut self, seq: u64, event: &AlertEvent) -> Result<(), ApplyError> {
        match event {
            AlertEvent::Raised {
                id,
                defender,
                priority,
                at,
                envelope_id,
                origin,
                content,
            } => {
                let id = if *id == 0 { seq } else { *id };
                if self.alerts.contains_key(&id) {
                    return Err(ApplyError("two alerts with one id"));
                }
                self.escalating.insert(id);
                self.open.insert(id);
                self.alerts.insert(
                    id,
                    Alert {
                        id,
                        defender: *defender,
                        priority: *priority,
                        raised_at: *at,
                        state: AlertState::Raised,
                        paged: BTreeSet::new(),
                        position: None,
                        exhausted: false,
                        envelope_id: *envelope_id,
                        origin: *origin,
                        delivered: BTreeSet::new(),
                        checked_in_at: None,
                        closed_by: None,
                        content: *content,
                        joined: Vec::new(),
                        repaged_at: None,
                    },
                );
            }
            AlertEvent::Stepped {
                alert,
                round,
                step,
                paged,
                at,
            } => {
                let a = self
                    .alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("a step for an unknown alert"))?;
                a.paged.extend(paged.iter().copied());
                a.position = Some((*round, *step, *at));
            }
            AlertEvent::Exhausted { alert } => {
                self.escalating.remove(alert);
                self.alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?
                    .exhausted = true;
            }
            AlertEvent::Acknowledged { alert, by } => {
                self.escalating.remove(alert);
                self.alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?
                    .state = AlertState::Acknowledged { by: *by };
            }
            AlertEvent::Resolved { alert } => {
                self.escalating.remove(alert);
                self.open.remove(alert);
                self.alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?
                    .state = AlertState::Resolved;
            }
            AlertEvent::Cancelled { alert, false_alarm } => {
                self.escalating.remove(alert);
                self.open.remove(alert);
                self.alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?
                    .state = AlertState::Cancelled {
                    false_alarm: *false_alarm,
                };
            }
            AlertEvent::Delivered { alert, device } => {
                self.alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?
                    .delivered
                    .insert(*device);
            }
            AlertEvent::CheckedInLate { alert, at } => {
                self.alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?
                    .checked_in_at = Some(*at);
            }
            AlertEvent::ClosedBy { alert, by } => {
                self.alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?
                    .closed_by = Some(*by);
            }
            AlertEvent::Released { alert, at } => {
                let a = self
                    .alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("an unknown alert"))?;
                if !matches!(a.state, AlertState::Acknowledged { .. }) {
                    return Err(ApplyError("a release of an alert nobody holds"));
                }
                a.state = AlertState::Raised;
                if let Some((round, step, _)) = a.position {
                    a.position = Some((round, step, *at));
                }
                if !a.exhausted {
                    self.escalating.insert(*alert);
                }
            }
            AlertEvent::Joined {
                alert,
                priority,
                envelope_id,
                at,
                repage,
            } => {
                let a = self
                    .alerts
                    .get_mut(alert)
                    .ok_or(ApplyError("a join of an unknown alert"))?;
                if !a.state.is_open() {
                    return Err(ApplyError("a join of a closed alert"));
                }
                if *envelope_id != 0 {
                    a.joined.push(*envelope_id);
                }
                if *repage {
                    a.repaged_at = Some(*at);
                }
                // Immediate sorts first: more urgent only. The escalation
                // starts over under the stricter policy (a step index of
                // the calmer one may not exist in it), now if nobody holds
                // the alert, else when it is released.
                if *priority < a.priority {
                    a.priority = *priority;
                    a.position = Some((0, 0, *at));
                    if a.state == AlertState::Raised {
                        a.exhausted = false;
                        self.escalating.insert(*alert);
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether `id` can be given to a new alert.
    pub fn is_free(&self, id: u64) -> bool {
        (1..=MAX_ALERT_ID).contains(&id) && !self.alerts.contains_key(&id)
    }

    /// The events releasing every open alert `holder` holds, at `now`
    /// (its device is being revoked).
    pub fn release_held_by(&self, holder: &DeviceId, now: u64) -> Vec<AlertEvent> {
        self.open()
            .filter(|a| a.state == AlertState::Acknowledged { by: *holder })
            .map(|a| AlertEvent::Released {
                alert: a.id,
                at: now,
            })
            .collect()
    }

    /// The alerts given, with the indexes derived from their states (as
    /// when a snapshot is read).
    pub fn from_alerts(alerts: impl IntoIterator<Item = Alert>) -> Alerts {
        let mut out = Alerts::default();
        for a in alerts {
            if a.state == AlertState::Raised && !a.exhausted {
                out.escalating.insert(a.id);
            }
            if a.state.is_open() {
                out.open.insert(a.id);
            }
            out.alerts.insert(a.id, a);
        }
        out
    }

    /// The open alerts (raised or acknowledged), in no particular order
    /// (ids are random).
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.iter().filter_map(|id| self.alerts.get(id))
    }

    /// The event for `by` claiming `alert`, or why not. Claiming an alert
    /// one already holds is harmless.
    pub fn acknowledge(&self, alert: u64, by: DeviceId) -> Result<Option<AlertEvent>, AlertError> {
        let a = self.alerts.get(&alert).ok_or(AlertError::NotFound)?;
        match a.state {
            AlertState::Raised => Ok(Some(AlertEvent::Acknowledged { alert, by })),
            AlertState::Acknowledged { by: holder } if holder == by => Ok(None),
            AlertState::Acknowledged { by: holder } => Err(AlertError::HeldBy(holder)),
            AlertState::Resolved | AlertState::Cancelled { .. } => Err(AlertError::Closed),
        }
    }

    /// The event for `by` (of `role`) closing `alert` as `how`, with the
    /// devices paged so far (who must hear the all clear), or why not.
    /// Staff may resolve or cancel; the alert's defender may cancel (or
    /// call a false alarm). To a defender, other defenders' alerts do not
    /// exist, and neither does the one their duress code raised: a coerced
    /// defender can neither call it off nor learn of it.
    pub fn close(
        &self,
        alert: u64,
        by: DeviceId,
        role: Role,
        how: Close,
    ) -> Result<(AlertEvent, Vec<DeviceId>), AlertError> {
        let a = self.alerts.get(&alert).ok_or(AlertError::NotFound)?;
        // To a defender, only their own alerts exist: another defender's
        // must answer as an unknown id does (else a defender could probe
        // which ids are alerts), and so must the one their duress code
        // raised.
        if !role.is_staff() && (a.defender != by || !a.origin.shown_to_defender()) {
            return Err(AlertError::NotFound);
        }
        if !a.state.is_open() {
            return Err(AlertError::Closed);
        }
        let allowed = match how {
            Close::Resolved => role.is_staff(),
            Close::Cancelled | Close::FalseAlarm => role.is_staff() || a.defender == by,
        };
        if !allowed {
            return Err(AlertError::Forbidden);
        }
        let event = match how {
            Close::Resolved => AlertEvent::Resolved { alert },
            Close::Cancelled => AlertEvent::Cancelled {
                alert,
                false_alarm: false,
            },
            Close::FalseAlarm => AlertEvent::Cancelled {
                alert,
                false_alarm: true,
            },
        };
        Ok((event, a.paged.iter().copied().collect()))
    }

    /// When the next escalation step of `alert` is due, if one is.
    pub fn next_due(&self, alert: &Alert, policies: &Policies) -> Option<u64> {
        if alert.state != AlertState::Raised || alert.exhausted {
            return None;
        }
        let policy = policies.for_priority(alert.priority);
        match alert.position {
            None => Some(alert.raised_at),
            Some((_, step, at)) => Some(at.saturating_add(policy.steps.get(step)?.wait_secs)),
        }
    }

    /// The escalation events due at `now` for every open alert, in order.
    /// `members(tier)` lists the devices a tier pages at this moment. A
    /// step that pages nobody is taken and passed at once.
    pub fn escalate(
        &self,
        policies: &Policies,
        now: u64,
        members: impl Fn(Tier) -> Vec<DeviceId>,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for id in &self.escalating {
            self.escalate_into(*id, policies, now, &members, &mut events);
        }
        events
    }

    /// The escalation events due at `now` for alert `id` alone (a new
    /// alert's first steps, without looking at any other).
    pub fn escalate_alert(
        &self,
        id: u64,
        policies: &Policies,
        now: u64,
        members: impl Fn(Tier) -> Vec<DeviceId>,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        self.escalate_into(id, policies, now, &members, &mut events);
        events
    }

    fn escalate_into(
        &self,
        id: u64,
        policies: &Policies,
        now: u64,
        members: &impl Fn(Tier) -> Vec<DeviceId>,
        events: &mut Vec<AlertEvent>,
    ) {
        let Some(alert) = self.alerts.get(&id) else {
            return;
        };
        let Some(mut due) = self.next_due(alert, policies) else {
            return;
        };
        let policy = policies.for_priority(alert.priority);
        let mut position = alert.position.map(|(r, s, _)| (r, s));
        while due <= now {
            let next = match position {
                None => Some((0, 0)),
                Some((r, s)) if s + 1 < policy.steps.len() => Some((r, s + 1)),
                Some((r, _)) if r + 1 < policy.rounds.max(1) => Some((r + 1, 0)),
                Some(_) => None,
            };
            let Some((round, step)) = next else {
                events.push(AlertEvent::Exhausted { alert: alert.id });
                break;
            };
            let Some(s) = policy.steps.get(step) else {
                events.push(AlertEvent::Exhausted { alert: alert.id });
                break;
            };
            let paged = members(s.tier);
            let at = due.max(alert.raised_at);
            events.push(AlertEvent::Stepped {
                alert: alert.id,
                round,
                step,
                paged: paged.clone(),
                at,
            });
            position = Some((round, step));
            // Nobody to page: pass the step at once.
            due = if paged.is_empty() {
                at
            } else {
                at.saturating_add(s.wait_secs)
            };
        }
    }
}

/// One staff device's duty state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DutyState {
    /// Which.
    pub device: DeviceId,
    /// Its role.
    pub role: Role,
    /// It went on duty and has not gone off since.
    pub declared: bool,
    /// The rota has it on shift now.
    pub on_shift: bool,
    /// Not on the newest roster: it is not paged.
    pub off_roster: bool,
}

impl super::State {
    /// `event` (a revocation of `revoked`, with the releases of the alerts
    /// it held) with each release whose current step now pages nobody
    /// (its only reader was the revoked device) made due at once: a step
    /// with nobody to page is passed at once, here as anywhere, rather
    /// than waiting out its time with nobody paged.
    pub fn hasten_empty_releases(
        &self,
        event: super::Event,
        revoked: &DeviceId,
        policies: &Policies,
        on_shift: &[DeviceId],
    ) -> super::Event {
        let super::Event::Batch(events) = event else {
            return event;
        };
        let hasten = |e: super::Event| -> super::Event {
            let super::Event::Alert(AlertEvent::Released { alert, at }) = e else {
                return e;
            };
            let step = self.alerts.alerts.get(&alert).and_then(|a| {
                let (_, step, _) = a.position?;
                policies.for_priority(a.priority).steps.get(step).copied()
            });
            let at = match step {
                Some(s)
                    if self
                        .tier_members(on_shift, s.tier)
                        .iter()
                        .all(|d| d == revoked || !self.may_read_alerts(d)) =>
                {
                    at.saturating_sub(s.wait_secs)
                }
                _ => at,
            };
            super::Event::Alert(AlertEvent::Released { alert, at })
        };
        super::Event::Batch(events.into_iter().map(hasten).collect())
    }

    /// Every staff device on duty now (declared, or in `on_shift`), and
    /// `me` (if staff) whether on duty or not, ordered by device id.
    pub fn duty_status(&self, on_shift: &[DeviceId], me: DeviceId) -> Vec<DutyState> {
        let mut out: Vec<DutyState> = self
            .staff
            .iter()
            .map(|(id, role)| DutyState {
                device: *id,
                role: *role,
                declared: self.on_duty.contains(id),
                on_shift: on_shift.contains(id),
                off_roster: !self.may_read_alerts(id),
            })
            .filter(|d| d.declared || d.on_shift || d.device == me)
            .collect();
        out.sort_by_key(|d| d.device);
        out
    }

    /// The devices tier `tier` pages now; `on_shift` lists the devices
    /// the rota has on duty at this moment.
    ///
    /// Only staff who can read the alert are paged: those on the newest
    /// roster the server holds ([`super::State::may_read_alerts`]).
    pub fn tier_members(&self, on_shift: &[DeviceId], tier: Tier) -> Vec<DeviceId> {
        let staff = self.staff.iter().filter(|(id, _)| self.may_read_alerts(id));
        let on_duty = |id: &DeviceId| self.on_duty.contains(id) || on_shift.contains(id);
        match tier {
            Tier::OnDuty => {
                // Walk the (few) devices on duty, not the whole staff.
                let on: BTreeSet<DeviceId> = self
                    .on_duty
                    .iter()
                    .chain(on_shift)
                    .filter(|id| self.staff.contains_key(id) && self.may_read_alerts(id))
                    .copied()
                    .collect();
                on.into_iter().collect()
            }
            Tier::Backup => staff
                .filter(|(id, role)| **role == Role::Officer && !on_duty(id))
                .map(|(id, _)| *id)
                .collect(),
            Tier::Coordinators => staff
                .filter(|(_, role)| **role == Role::Coordinator)
                .map(|(id, _)| *id)
                .collect(),
            Tier::Everyone => staff.map(|(id, _)| *id).collect(),
        }
    }

    /// The join of an SOS of `defender` (of `priority`, its message stored
    /// as inbox id `envelope_id`, 0: none, by the `events` given) into its
    /// newest open SOS alert, if it has `open_limit` open SOS alerts or
    /// more; `None` if it may open another.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &self,
        defender: DeviceId,
        priority: Priority,
        envelope_id: u64,
        now: u64,
        open_limit: u32,
        wanted: u64,
        events: Vec<super::Event>,
    ) -> Option<Raise> {
        // Asked for by the device (SOSes queued together): that open SOS
        // alert of its own, if it is one.
        let asked = (wanted != 0)
            .then(|| {
                self.alerts.open().find(|a| {
                    a.id == wanted && a.defender == defender && a.origin == AlertOrigin::Sos
                })
            })
            .flatten();
        if let Some(target) = asked {
            return Some(self.join_into(target, priority, envelope_id, now, events));
        }
        if open_limit == 0 {
            return None;
        }
        let mut open = 0usize;
        let mut newest: Option<&Alert> = None;
        for a in self
            .alerts
            .open()
            .filter(|a| a.defender == defender && a.origin == AlertOrigin::Sos)
        {
            open += 1;
            // Raised in the same second: the later record (its message's
            // inbox id is the record's sequence number) is the newer.
            if newest.is_none_or(|n| {
                (a.raised_at, a.envelope_id, a.id) > (n.raised_at, n.envelope_id, n.id)
            }) {
                newest = Some(a);
            }
        }
        let target = newest.filter(|_| open >= open_limit as usize)?;
        Some(self.join_into(target, priority, envelope_id, now, events))
    }

    /// The join of an SOS (of `priority`, its message inbox id
    /// `envelope_id`, 0: none, by the `events` given) into the open alert
    /// `target`: [`State::join`]'s rules once the alert is chosen.
    fn join_into(
        &self,
        target: &Alert,
        priority: Priority,
        envelope_id: u64,
        now: u64,
        mut events: Vec<super::Event>,
    ) -> Raise {
        let more_urgent = priority < target.priority;
        // Its staff were last paged when it was raised, or paged again.
        let last_paged = target.repaged_at.unwrap_or(target.raised_at);
        let repage = more_urgent || now >= last_paged.saturating_add(REPAGE_SECS);
        events.push(super::Event::Alert(AlertEvent::Joined {
            alert: target.id,
            priority,
            envelope_id,
            at: now,
            repage,
        }));
        Raise::Joined {
            alert: target.id,
            escalate: more_urgent && target.state == AlertState::Raised,
            events,
        }
    }

    /// A defender raising `sos` at `now` as alert `id` (random, free), in
    /// the record that will get sequence number `seq`. An envelope that
    /// raised an alert before is a retry and returns that alert; one
    /// stored before as a plain message is refused. An SOS without content
    /// while the same defender's earlier one without content is still open
    /// is that one again (a retry cannot be told from a second press, and
    /// the team is on it).
    ///
    /// A defender may have at most `open_limit` open SOS alerts (0: no
    /// limit). An SOS beyond that is not refused: it joins the newest of
    /// them ([`Raise::Joined`]), its message kept with that alert, its
    /// priority raising the alert's, its staff paged again at most once
    /// per [`REPAGE_SECS`]. Only SOS alerts count and are joined: a duress
    /// alert (or any alert its device never sees) changes nothing that
    /// device can observe.
    pub fn decide_raise(
        &self,
        sos: Sos,
        seq: u64,
        id: u64,
        now: u64,
        open_limit: u32,
    ) -> Result<Raise, RaiseError> {
        let Sos {
            defender,
            priority,
            message,
            content,
            join: wanted,
        } = sos;
        let Some(SosMessage {
            digest,
            recipients,
            envelope,
        }) = message
        else {
            // The same press again, as long as the open one is at least as
            // urgent (Immediate sorts first): a more urgent SOS is never
            // folded into a calmer one.
            if let Some(open) = self.alerts.open().find(|a| {
                a.defender == defender
                    && a.origin == AlertOrigin::Sos
                    && a.content == AlertContent::None
                    && a.priority <= priority
            }) {
                return Ok(Raise::Again(open.clone()));
            }
            if let Some(joined) =
                self.join(defender, priority, 0, now, open_limit, wanted, Vec::new())
            {
                return Ok(joined);
            }
            return Ok(Raise::New(vec![super::Event::Alert(AlertEvent::Raised {
                id,
                defender,
                priority,
                at: now,
                envelope_id: 0,
                origin: AlertOrigin::Sos,
                content: AlertContent::None,
            })]));
        };
        if let Some(envelope_id) = self.mailbox.digests.get(&digest).copied() {
            return self
                .alerts
                .alerts
                .values()
                .find(|a| a.envelope_id == envelope_id || a.joined.contains(&envelope_id))
                .map(|a| Raise::Again(a.clone()))
                .ok_or(RaiseError::SentAsMessage);
        }
        let stored = super::Event::Mail(super::mailbox::MailEvent::EnvelopeStored {
            sender: defender,
            digest,
            recipients: recipients.clone(),
            bytes: envelope.clone(),
            numbered: true,
        });
        if let Some(joined) = self.join(
            defender,
            priority,
            seq,
            now,
            open_limit,
            wanted,
            vec![stored],
        ) {
            return Ok(joined);
        }
        Ok(Raise::New(vec![
            super::Event::Mail(super::mailbox::MailEvent::EnvelopeStored {
                sender: defender,
                digest,
                recipients,
                bytes: envelope,
                numbered: true,
            }),
            super::Event::Alert(AlertEvent::Raised {
                id,
                defender,
                priority,
                at: now,
                envelope_id: seq,
                origin: AlertOrigin::Sos,
                content,
            }),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(b: u8) -> DeviceId {
        DeviceId::from_bytes([b; 16])
    }

    fn policies() -> Policies {
        Policies {
            immediate: Policy {
                steps: vec![
                    Step {
                        tier: Tier::OnDuty,
                        wait_secs: 60,
                    },
                    Step {
                        tier: Tier::Backup,
                        wait_secs: 60,
                    },
                    Step {
                        tier: Tier::Coordinators,
                        wait_secs: 60,
                    },
                ],
                rounds: 2,
            },
            ..Policies::default()
        }
    }

    fn members(tier: Tier) -> Vec<DeviceId> {
        match tier {
            Tier::OnDuty => vec![dev(1)],
            Tier::Backup => vec![],
            Tier::Coordinators => vec![dev(3)],
            Tier::Everyone => vec![dev(1), dev(3)],
        }
    }

    /// Alerts holding alert 1, raised by a defender at `at`.
    fn raised(priority: Priority, at: u64) -> Alerts {
        let mut alerts = Alerts::default();
        let event = AlertEvent::Raised {
            id: 0,
            defender: dev(9),
            priority,
            at,
            envelope_id: 0,
            origin: AlertOrigin::Sos,
            content: AlertContent::Sealed,
        };
        alerts.apply(1, &event).expect("raise");
        alerts
    }

    fn run(alerts: &mut Alerts, now: u64) -> Vec<AlertEvent> {
        let events = alerts.escalate(&policies(), now, members);
        for (i, e) in events.iter().enumerate() {
            alerts.apply(1000 + now + i as u64, e).expect("apply");
        }
        events
    }

    fn steps(events: &[AlertEvent]) -> Vec<(u32, usize)> {
        events
            .iter()
            .filter_map(|e| match e {
                AlertEvent::Stepped { round, step, .. } => Some((*round, *step)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn escalation_runs_its_steps_in_order_skipping_empty_tiers() {
        let mut alerts = raised(Priority::Immediate, 100);
        // At once: on-duty officers are paged.
        assert_eq!(steps(&run(&mut alerts, 100)), vec![(0, 0)]);
        assert_eq!(alerts.alerts[&1].paged, [dev(1)].into());
        // Nothing more until the wait is over.
        assert!(run(&mut alerts, 159).is_empty());
        // The backup tier is empty: passed at once to coordinators.
        assert_eq!(steps(&run(&mut alerts, 160)), vec![(0, 1), (0, 2)]);
        assert_eq!(alerts.alerts[&1].paged, [dev(1), dev(3)].into());
        // The second round, then exhaustion.
        assert_eq!(steps(&run(&mut alerts, 220)), vec![(1, 0)]);
        let last = run(&mut alerts, 1000);
        assert_eq!(steps(&last), vec![(1, 1), (1, 2)]);
        assert_eq!(last.last(), Some(&AlertEvent::Exhausted { alert: 1 }));
        assert!(
            run(&mut alerts, 5000).is_empty(),
            "exhausted alerts stay open, unpaged"
        );
        assert_eq!(alerts.alerts[&1].state, AlertState::Raised);
    }

    #[test]
    fn a_late_run_catches_up_without_repeating_a_step() {
        // As after a restart: the state holds the last recorded step; one
        // run takes every step that fell due while the server was down.
        let mut alerts = raised(Priority::Immediate, 100);
        assert_eq!(steps(&run(&mut alerts, 100)), vec![(0, 0)]);
        let mut again = alerts.clone();
        assert_eq!(steps(&run(&mut again, 165)), vec![(0, 1), (0, 2)]);
        assert!(run(&mut again, 165).is_empty(), "nothing taken twice");
    }

    #[test]
    fn one_officer_claims_and_escalation_stops() {
        let mut alerts = raised(Priority::Urgent, 0);
        run(&mut alerts, 0);
        let claim = alerts
            .acknowledge(1, dev(1))
            .expect("claim")
            .expect("an event");
        alerts.apply(2, &claim).expect("apply");
        assert_eq!(
            alerts.acknowledge(1, dev(3)),
            Err(AlertError::HeldBy(dev(1)))
        );
        assert_eq!(alerts.acknowledge(1, dev(1)), Ok(None));
        assert!(run(&mut alerts, 100_000).is_empty());
        alerts
            .apply(3, &AlertEvent::Resolved { alert: 1 })
            .expect("apply");
        assert_eq!(alerts.acknowledge(1, dev(3)), Err(AlertError::Closed));
        assert_eq!(alerts.acknowledge(7, dev(3)), Err(AlertError::NotFound));
    }

    /// Revoking the holder releases the alert: raised again, no holder,
    /// and its escalation resumes at the step it had reached, that step's
    /// wait starting over. Nothing else is released.
    #[test]
    fn a_released_alert_is_raised_again_and_resumes_at_its_step() {
        let mut alerts = raised(Priority::Immediate, 100);
        assert_eq!(steps(&run(&mut alerts, 100)), vec![(0, 0)]);
        let claim = alerts
            .acknowledge(1, dev(1))
            .expect("claim")
            .expect("an event");
        alerts.apply(2, &claim).expect("apply");
        assert!(run(&mut alerts, 400).is_empty(), "held: no escalation");
        assert!(alerts.release_held_by(&dev(3), 500).is_empty());

        let released = alerts.release_held_by(&dev(1), 500);
        assert_eq!(released, vec![AlertEvent::Released { alert: 1, at: 500 }]);
        alerts.apply(3, &released[0]).expect("apply");
        let a = &alerts.alerts[&1];
        assert_eq!(a.state, AlertState::Raised);
        assert_eq!(a.position, Some((0, 0, 500)));
        // The on-duty step's wait (60 s) starts over at the release...
        assert!(run(&mut alerts, 559).is_empty());
        // ... then the next steps: backup (nobody, passed at once), then
        // the coordinators.
        assert_eq!(steps(&run(&mut alerts, 560)), vec![(0, 1), (0, 2)]);
        assert!(alerts.alerts[&1].paged.contains(&dev(3)));
        // A release of an alert nobody holds contradicts the log.
        assert!(alerts.apply(9, &released[0]).is_err());
    }

    #[test]
    fn only_alerts_still_escalating_are_looked_at_and_a_snapshot_keeps_that() {
        let raise = |alerts: &mut Alerts, id: u64| {
            let event = AlertEvent::Raised {
                id: 0,
                defender: dev(9),
                priority: Priority::Immediate,
                at: 100,
                envelope_id: 0,
                origin: AlertOrigin::Sos,
                content: AlertContent::Sealed,
            };
            alerts.apply(id, &event).expect("raise");
        };
        let mut alerts = Alerts::default();
        for id in 1..=4 {
            raise(&mut alerts, id);
        }
        let closing = [
            (
                1,
                AlertEvent::Acknowledged {
                    alert: 1,
                    by: dev(1),
                },
            ),
            (2, AlertEvent::Resolved { alert: 2 }),
            (
                3,
                AlertEvent::Cancelled {
                    alert: 3,
                    false_alarm: true,
                },
            ),
        ];
        for (seq, e) in &closing {
            alerts.apply(10 + seq, e).expect("apply");
        }
        let due: Vec<u64> = alerts
            .escalate(&policies(), 100, members)
            .iter()
            .filter_map(|e| match e {
                AlertEvent::Stepped { alert, .. } => Some(*alert),
                _ => None,
            })
            .collect();
        assert_eq!(
            due,
            vec![4],
            "claimed, resolved and cancelled alerts stay quiet"
        );
        // One alert's first steps, without the others'.
        raise(&mut alerts, 5);
        assert_eq!(
            steps(&alerts.escalate_alert(5, &policies(), 100, members)),
            vec![(0, 0)]
        );
        assert!(
            alerts
                .escalate_alert(1, &policies(), 100, members)
                .is_empty()
        );
        // The index is rebuilt from a snapshot, exhausted alerts left out.
        alerts
            .apply(20, &AlertEvent::Exhausted { alert: 4 })
            .expect("apply");
        let restored = Alerts::from_alerts(alerts.alerts.values().cloned());
        assert_eq!(restored, alerts);
        assert_eq!(restored.escalating, [5].into());
        // Claimed alerts stay open; resolved and cancelled ones do not.
        let open: Vec<u64> = restored.open().map(|a| a.id).collect();
        assert_eq!(open, vec![1, 4, 5]);
    }

    #[test]
    fn who_may_close_which_alert_and_a_duress_alert_hides_from_its_defender() {
        let defender = dev(9);
        let mut alerts = raised(Priority::Urgent, 0);
        run(&mut alerts, 0);
        let duress = AlertEvent::Raised {
            id: 0,
            defender,
            priority: Priority::Immediate,
            at: 0,
            envelope_id: 0,
            origin: AlertOrigin::Duress,
            content: AlertContent::Sealed,
        };
        alerts.apply(2, &duress).expect("raise");
        // The defender cancels their own SOS, but may not resolve it, and
        // another defender may do neither.
        assert_eq!(
            alerts.close(1, defender, Role::Defender, Close::Resolved),
            Err(AlertError::Forbidden)
        );
        // Another defender's alert answers as an unknown id does.
        assert_eq!(
            alerts.close(1, dev(8), Role::Defender, Close::Cancelled),
            Err(AlertError::NotFound)
        );
        let (event, paged) = alerts
            .close(1, defender, Role::Defender, Close::FalseAlarm)
            .expect("cancel");
        assert_eq!(
            event,
            AlertEvent::Cancelled {
                alert: 1,
                false_alarm: true
            }
        );
        assert_eq!(
            paged,
            alerts.alerts[&1].paged.iter().copied().collect::<Vec<_>>()
        );
        alerts.apply(3, &event).expect("apply");
        assert_eq!(
            alerts.close(1, dev(1), Role::Officer, Close::Resolved),
            Err(AlertError::Closed)
        );
        // The duress alert does not exist for its defender; staff close it.
        assert_eq!(
            alerts.close(2, defender, Role::Defender, Close::Cancelled),
            Err(AlertError::NotFound)
        );
        assert!(
            alerts
                .close(2, dev(1), Role::Officer, Close::Resolved)
                .is_ok()
        );
        assert_eq!(
            alerts.close(7, dev(1), Role::Officer, Close::Resolved),
            Err(AlertError::NotFound)
        );
    }
}

#[cfg(test)]
mod raise_without_content {
    use super::*;
    use crate::domain::State;

    fn sos(priority: Priority) -> Sos {
        Sos {
            defender: DeviceId::from_bytes([7; 16]),
            priority,
            message: None,
            content: AlertContent::None,
            join: 0,
        }
    }

    /// A walk-through of the code found a more urgent SOS without text
    /// folded into an open calmer one (no new page, the calmer policy): a
    /// repeat is only one at least as urgent as the open alert.
    #[test]
    fn a_more_urgent_sos_without_text_is_a_new_alert() {
        let mut state = State::default();
        let Ok(Raise::New(events)) = state.decide_raise(sos(Priority::Routine), 1, 11, 100, 3)
        else {
            panic!("a first SOS is new");
        };
        for e in &events {
            state.apply(1, e).expect("apply");
        }
        assert!(matches!(
            state.decide_raise(sos(Priority::Routine), 2, 12, 101, 3),
            Ok(Raise::Again(a)) if a.id == 11
        ));
        assert!(matches!(
            state.decide_raise(sos(Priority::Immediate), 2, 12, 101, 3),
            Ok(Raise::New(_))
        ));
    }
}

#[cfg(test)]
mod open_alert_limit {
    use super::*;
    use crate::domain::State;

    fn sos(priority: Priority, digest: u8) -> Sos {
        Sos {
            defender: DeviceId::from_bytes([7; 16]),
            priority,
            message: Some(SosMessage {
                digest: [digest; 32],
                recipients: vec![DeviceId::from_bytes([1; 16])],
                envelope: vec![digest; 8],
            }),
            content: AlertContent::Sealed,
            join: 0,
        }
    }

    fn apply(state: &mut State, seq: u64, raise: &Raise) {
        let events = match raise {
            Raise::New(events) | Raise::Joined { events, .. } => events,
            Raise::Again(_) => return,
        };
        for e in events {
            state.apply(seq, e).expect("apply");
        }
    }

    /// Past the limit an SOS joins the newest open SOS alert, its
    /// message kept with it; its staff are paged again at most once per
    /// REPAGE_SECS; a retry of a joined SOS is recognised; closing one
    /// alert makes room for a new one.
    #[test]
    fn sos_past_the_limit_joins_and_repages_at_most_once_a_minute() {
        let mut state = State::default();
        let mut seq = 1;
        let mut raise = |state: &mut State, p: Priority, d: u8, now: u64| {
            seq += 1;
            let r = state
                .decide_raise(sos(p, d), seq, 100 + seq, now, 2)
                .expect("never refused");
            apply(state, seq, &r);
            r
        };
        assert!(matches!(
            raise(&mut state, Priority::Urgent, 1, 1000),
            Raise::New(_)
        ));
        assert!(matches!(
            raise(&mut state, Priority::Urgent, 2, 1001),
            Raise::New(_)
        ));
        let newest = 103;
        let repaged = |r: &Raise| match r {
            Raise::Joined { alert, events, .. } => {
                assert_eq!(*alert, newest, "the newest open alert");
                events.iter().any(|e| {
                    matches!(
                        e,
                        super::super::Event::Alert(AlertEvent::Joined { repage: true, .. })
                    )
                })
            }
            other => panic!("expected a join: {other:?}"),
        };
        // Its staff were paged when it was raised (1001): not again within
        // the minute after, then once, then not within the minute after.
        assert!(!repaged(&raise(&mut state, Priority::Urgent, 3, 1002)));
        assert!(repaged(&raise(&mut state, Priority::Urgent, 4, 1061)));
        assert!(!repaged(&raise(&mut state, Priority::Urgent, 5, 1062)));
        assert_eq!(state.alerts.alerts[&newest].joined, vec![4, 5, 6]);
        assert_eq!(state.alerts.open().count(), 2);
        // A retry of a joined SOS is that alert again, not an error.
        assert!(matches!(
            state.decide_raise(sos(Priority::Urgent, 4), 99, 199, 1063, 2),
            Ok(Raise::Again(a)) if a.id == newest
        ));
        // More urgent: paged again whatever the minute, and the alert
        // becomes that urgent, its escalation starting over.
        let r = raise(&mut state, Priority::Immediate, 6, 1064);
        assert!(matches!(r, Raise::Joined { escalate: true, .. }));
        assert!(repaged(&r));
        assert_eq!(state.alerts.alerts[&newest].priority, Priority::Immediate);
        assert_eq!(state.alerts.alerts[&newest].position, Some((0, 0, 1064)));
        // Room again once one is closed.
        state
            .apply(
                50,
                &super::super::Event::Alert(AlertEvent::Resolved { alert: 102 }),
            )
            .expect("apply");
        assert!(matches!(
            raise(&mut state, Priority::Urgent, 7, 1065),
            Raise::New(_)
        ));
    }

    /// Two alerts raised in the same second: the later one is the newest,
    /// whatever their random ids (the earlier with the larger id here).
    #[test]
    fn the_newest_of_alerts_raised_in_one_second_is_the_later() {
        let mut state = State::default();
        for (seq, id, digest) in [(2, 900, 1), (3, 100, 2)] {
            let r = state
                .decide_raise(sos(Priority::Urgent, digest), seq, id, 1000, 2)
                .expect("raised");
            assert!(matches!(r, Raise::New(_)));
            apply(&mut state, seq, &r);
        }
        let r = state
            .decide_raise(sos(Priority::Urgent, 3), 4, 500, 1000, 2)
            .expect("joined");
        assert!(
            matches!(r, Raise::Joined { alert: 100, .. }),
            "joins the later: {r:?}"
        );
    }

    /// Issue 12, third walk-through (WC 1, 2): an SOS that names an open
    /// SOS alert of its own device (queued together with the SOS that
    /// raised it) joins it whatever the limit, its text kept with it; an
    /// id that names no open SOS alert of that device (unknown, closed, or
    /// another device's) is ignored: the SOS raises its own alert.
    #[test]
    fn an_sos_joins_the_open_alert_its_device_names() {
        let mut state = State::default();
        let first = state
            .decide_raise(sos(Priority::Urgent, 1), 2, 102, 1000, 3)
            .expect("never refused");
        assert!(matches!(first, Raise::New(_)));
        apply(&mut state, 2, &first);
        let mut joining = sos(Priority::Immediate, 2);
        joining.join = 102;
        let joined = state
            .decide_raise(joining, 3, 103, 1001, 3)
            .expect("never refused");
        assert!(
            matches!(
                joined,
                Raise::Joined {
                    alert: 102,
                    escalate: true,
                    ..
                }
            ),
            "{joined:?}"
        );
        apply(&mut state, 3, &joined);
        assert_eq!(state.alerts.alerts[&102].joined, vec![3]);
        assert_eq!(state.alerts.alerts[&102].priority, Priority::Immediate);
        assert_eq!(state.alerts.open().count(), 1);
        // Not an open SOS alert of this device: a new alert.
        for wanted in [999, 0] {
            let mut other = sos(Priority::Urgent, 3);
            other.join = wanted;
            assert!(matches!(
                state.decide_raise(other, 4, 104, 1002, 3),
                Ok(Raise::New(_))
            ));
        }
        let mut elsewhere = sos(Priority::Urgent, 3);
        elsewhere.defender = DeviceId::from_bytes([8; 16]);
        elsewhere.join = 102;
        assert!(matches!(
            state.decide_raise(elsewhere, 4, 104, 1002, 3),
            Ok(Raise::New(_))
        ));
    }
}
