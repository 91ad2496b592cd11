//! The relocation lifecycle (issue 12): the stages a relocation moves
//! through, and which move is allowed from which stage. Pure: no I/O, no
//! clock. A stage is stored as [`Stage::number`] in field 10 of a
//! relocation in the case events; every client checks each move with
//! [`transition`] when it writes and when it folds (docs/protocol.md 9.5).
//!
//! ```text
//! requested → assessed → approved → travel booked → in transit → arrived
//!   → hosted → (extended → extended …) → returned | resettled → closed
//! cancelled: from requested … extended (not after an outcome)
//! ```
//!
//! Decisions (docs/cases.md says why):
//!
//! * "extended" repeats: hosted → extended → extended …, each extension a
//!   new period; from hosted or extended the relocation ends in
//!   "returned" or "resettled".
//! * "returned" and "resettled" are outcomes: they are followed only by
//!   "closed". Cancelling would throw away an outcome that happened (and
//!   that the statistics tombstone keeps).
//! * "cancelled" and "closed" are final: nothing follows them.
//! * No stage is skipped and none is repeated except "extended"; there is
//!   no way back (a wrong move is corrected by a note, for now).

use std::fmt;
use std::str::FromStr;

/// A stage of a relocation. [`Stage::number`] is its stored and wire
/// value: fixed forever, never reused (0 is not a stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Asked for, by the defender or by staff (1).
    Requested,
    /// Staff have assessed the risk and the need (2).
    Assessed,
    /// Approved by the organisation (3).
    Approved,
    /// Travel is booked (4).
    TravelBooked,
    /// The people covered are travelling (5).
    InTransit,
    /// They arrived in the host country (6).
    Arrived,
    /// They are hosted (accommodation in place) (7).
    Hosted,
    /// The hosting was extended for a further period; may repeat (8).
    Extended,
    /// Outcome: they went back to the country of origin (9).
    Returned,
    /// Outcome: they settled elsewhere for good (10).
    Resettled,
    /// Finished and filed (11). Final.
    Closed,
    /// Called off before an outcome (12). Final.
    Cancelled,
}

/// The rules, in one place: each stage and the stages it may move to, in
/// the order a user reads them. Every stage has exactly one row.
const RULES: [(Stage, &[Stage]); 12] = {
    use Stage::*;
    [
        (Requested, &[Assessed, Cancelled]),
        (Assessed, &[Approved, Cancelled]),
        (Approved, &[TravelBooked, Cancelled]),
        (TravelBooked, &[InTransit, Cancelled]),
        (InTransit, &[Arrived, Cancelled]),
        (Arrived, &[Hosted, Cancelled]),
        (Hosted, &[Extended, Returned, Resettled, Cancelled]),
        (Extended, &[Extended, Returned, Resettled, Cancelled]),
        (Returned, &[Closed]),
        (Resettled, &[Closed]),
        (Closed, &[]),
        (Cancelled, &[]),
    ]
};

impl Stage {
    /// Every stage, in lifecycle order.
    pub const ALL: [Stage; 12] = [
        Stage::Requested,
        Stage::Assessed,
        Stage::Approved,
        Stage::TravelBooked,
        Stage::InTransit,
        Stage::Arrived,
        Stage::Hosted,
        Stage::Extended,
        Stage::Returned,
        Stage::Resettled,
        Stage::Closed,
        Stage::Cancelled,
    ];

    /// The stored and wire value of the stage; never reused.
    pub fn number(self) -> u8 {
        match self {
            Stage::Requested => 1,
            Stage::Assessed => 2,
            Stage::Approved => 3,
            Stage::TravelBooked => 4,
            Stage::InTransit => 5,
            Stage::Arrived => 6,
            Stage::Hosted => 7,
            Stage::Extended => 8,
            Stage::Returned => 9,
            Stage::Resettled => 10,
            Stage::Closed => 11,
            Stage::Cancelled => 12,
        }
    }

    /// The stage with this stored or wire value; `None` for a number that
    /// is not a stage (0, or one from a newer version).
    pub fn from_number(number: u8) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.number() == number)
    }

    /// The stage's name for users, in English words ("travel booked").
    pub fn name(self) -> &'static str {
        match self {
            Stage::Requested => "requested",
            Stage::Assessed => "assessed",
            Stage::Approved => "approved",
            Stage::TravelBooked => "travel booked",
            Stage::InTransit => "in transit",
            Stage::Arrived => "arrived",
            Stage::Hosted => "hosted",
            Stage::Extended => "extended",
            Stage::Returned => "returned",
            Stage::Resettled => "resettled",
            Stage::Closed => "closed",
            Stage::Cancelled => "cancelled",
        }
    }

    /// Whether nothing can follow this stage.
    pub fn is_final(self) -> bool {
        allowed_next(self).is_empty()
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The stages a relocation at `stage` may move to, in the order users
/// read them; empty for a final stage.
pub fn allowed_next(stage: Stage) -> &'static [Stage] {
    RULES
        .iter()
        .find(|(from, _)| *from == stage)
        .map_or(&[], |(_, next)| *next)
}

/// Whether a relocation at `from` may move to `to`.
pub fn transition(from: Stage, to: Stage) -> Result<(), IllegalTransition> {
    if allowed_next(from).contains(&to) {
        Ok(())
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// A move the lifecycle does not allow. Its message names the current
/// stage and the stages allowed next, so the user knows what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct IllegalTransition {
    /// The relocation's current stage.
    pub from: Stage,
    /// The stage asked for.
    pub to: Stage,
}

impl IllegalTransition {
    /// The stages that are allowed from the current one.
    pub fn allowed(&self) -> &'static [Stage] {
        allowed_next(self.from)
    }
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed = self.allowed();
        if allowed.is_empty() {
            write!(
                f,
                "a relocation that is {} cannot move any more: {} is final",
                self.from, self.from
            )
        } else {
            write!(
                f,
                "a relocation that is {} can move to: {}",
                self.from,
                words(allowed)
            )
        }
    }
}

/// A stage name that is not one of the stages. The message lists the
/// stages; it does not repeat what was typed (errors may reach a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a relocation stage; the stages are: {}", words(&Stage::ALL))]
pub struct UnknownStage;

impl FromStr for Stage {
    type Err = UnknownStage;

    /// Reads a stage name as a user types it: any case, words separated
    /// by spaces, hyphens or underscores ("travel booked",
    /// "Travel-Booked", "in_transit").
    fn from_str(input: &str) -> Result<Stage, UnknownStage> {
        let normalised = input
            .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
        Stage::ALL
            .into_iter()
            .find(|s| s.name() == normalised)
            .ok_or(UnknownStage)
    }
}

fn words(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lifecycle as the issue and docs/cases.md describe it, written
    /// out independently of `RULES`: every legal move, and only those.
    const EXPECTED_LEGAL: &[(&str, &str)] = &[
        ("requested", "assessed"),
        ("requested", "cancelled"),
        ("assessed", "approved"),
        ("assessed", "cancelled"),
        ("approved", "travel booked"),
        ("approved", "cancelled"),
        ("travel booked", "in transit"),
        ("travel booked", "cancelled"),
        ("in transit", "arrived"),
        ("in transit", "cancelled"),
        ("arrived", "hosted"),
        ("arrived", "cancelled"),
        ("hosted", "extended"),
        ("hosted", "returned"),
        ("hosted", "resettled"),
        ("hosted", "cancelled"),
        ("extended", "extended"),
        ("extended", "returned"),
        ("extended", "resettled"),
        ("extended", "cancelled"),
        ("returned", "closed"),
        ("resettled", "closed"),
    ];

    /// Every stage's name, written out independently of `Stage::name`.
    const NAMES: [&str; 12] = [
        "requested",
        "assessed",
        "approved",
        "travel booked",
        "in transit",
        "arrived",
        "hosted",
        "extended",
        "returned",
        "resettled",
        "closed",
        "cancelled",
    ];

    fn stage(name: &str) -> Stage {
        Stage::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no stage named {name:?}"))
    }

    fn expected_next(from: &str) -> Vec<&'static str> {
        EXPECTED_LEGAL
            .iter()
            .filter(|(f, _)| *f == from)
            .map(|(_, t)| *t)
            .collect()
    }

    #[test]
    fn every_pair_of_stages_is_allowed_exactly_when_expected() {
        let mut legal = 0;
        let mut illegal = 0;
        for from in NAMES {
            for to in NAMES {
                let expected = EXPECTED_LEGAL.contains(&(from, to));
                let got = transition(stage(from), stage(to));
                assert_eq!(
                    got.is_ok(),
                    expected,
                    "{from} -> {to}: expected {}",
                    if expected { "legal" } else { "illegal" }
                );
                if expected {
                    legal += 1;
                } else {
                    illegal += 1;
                    let err = got.expect_err("illegal");
                    assert_eq!((err.from, err.to), (stage(from), stage(to)));
                }
            }
        }
        assert_eq!(legal, EXPECTED_LEGAL.len());
        assert_eq!(legal + illegal, 12 * 12);
    }

    #[test]
    fn allowed_next_lists_the_expected_stages_in_reading_order() {
        for from in NAMES {
            let got: Vec<&str> = allowed_next(stage(from)).iter().map(|s| s.name()).collect();
            assert_eq!(got, expected_next(from), "from {from}");
        }
    }

    #[test]
    fn the_error_names_the_current_stage_and_the_allowed_next_ones() {
        let err = transition(Stage::InTransit, Stage::Hosted).expect_err("skips arrived");
        assert_eq!(
            err.to_string(),
            "a relocation that is in transit can move to: arrived, cancelled"
        );
        let err = transition(Stage::Hosted, Stage::Closed).expect_err("needs an outcome");
        assert_eq!(
            err.to_string(),
            "a relocation that is hosted can move to: extended, returned, resettled, cancelled"
        );
        let err = transition(Stage::Returned, Stage::Cancelled).expect_err("outcome reached");
        assert_eq!(
            err.to_string(),
            "a relocation that is returned can move to: closed"
        );
        let err = transition(Stage::Closed, Stage::Requested).expect_err("final");
        assert_eq!(
            err.to_string(),
            "a relocation that is closed cannot move any more: closed is final"
        );
        let err = transition(Stage::Cancelled, Stage::Closed).expect_err("final");
        assert_eq!(
            err.to_string(),
            "a relocation that is cancelled cannot move any more: cancelled is final"
        );
    }

    #[test]
    fn every_illegal_move_names_exactly_the_allowed_next_stages() {
        for from in NAMES {
            let next = expected_next(from);
            for to in NAMES {
                if next.contains(&to) {
                    continue;
                }
                let message = transition(stage(from), stage(to))
                    .expect_err("illegal")
                    .to_string();
                let wanted = if next.is_empty() {
                    format!("a relocation that is {from} cannot move any more: {from} is final")
                } else {
                    format!(
                        "a relocation that is {from} can move to: {}",
                        next.join(", ")
                    )
                };
                assert_eq!(message, wanted, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn final_stages_are_closed_and_cancelled_only() {
        let finals: Vec<&str> = Stage::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(Stage::name)
            .collect();
        assert_eq!(finals, ["closed", "cancelled"]);
    }

    #[test]
    fn every_stage_has_one_row_in_the_table() {
        for s in Stage::ALL {
            assert_eq!(RULES.iter().filter(|(f, _)| *f == s).count(), 1, "{s}");
        }
    }

    #[test]
    fn stored_numbers_are_fixed_and_round_trip() {
        let numbers: Vec<(u8, &str)> = Stage::ALL
            .into_iter()
            .map(|s| (s.number(), s.name()))
            .collect();
        assert_eq!(
            numbers,
            [
                (1, "requested"),
                (2, "assessed"),
                (3, "approved"),
                (4, "travel booked"),
                (5, "in transit"),
                (6, "arrived"),
                (7, "hosted"),
                (8, "extended"),
                (9, "returned"),
                (10, "resettled"),
                (11, "closed"),
                (12, "cancelled"),
            ]
        );
        for n in 0..=u8::MAX {
            match Stage::from_number(n) {
                Some(s) => assert_eq!(s.number(), n),
                None => assert!(n == 0 || n > 12, "{n} has no stage"),
            }
        }
    }

    #[test]
    fn names_parse_in_any_case_with_spaces_hyphens_or_underscores() {
        for s in Stage::ALL {
            assert_eq!(s.name().parse::<Stage>(), Ok(s));
            assert_eq!(s.name().to_uppercase().parse::<Stage>(), Ok(s));
        }
        for typed in [
            "travel booked",
            "travel-booked",
            "Travel Booked",
            "TRAVEL_BOOKED",
            "  travel   booked ",
            "travel - booked",
        ] {
            assert_eq!(typed.parse::<Stage>(), Ok(Stage::TravelBooked), "{typed:?}");
        }
        assert_eq!("In-Transit".parse::<Stage>(), Ok(Stage::InTransit));
    }

    #[test]
    fn unknown_names_are_refused_with_the_list_of_stages() {
        for typed in [
            "",
            "   ",
            "travelbooked",
            "booked",
            "transit",
            "settled",
            "canceled",
            "7",
        ] {
            let err = typed.parse::<Stage>().expect_err(typed);
            assert_eq!(
                err.to_string(),
                "not a relocation stage; the stages are: requested, assessed, approved, \
                 travel booked, in transit, arrived, hosted, extended, returned, resettled, \
                 closed, cancelled"
            );
        }
        // The message does not echo what was typed.
        let err = "Hotel Azur".parse::<Stage>().expect_err("unknown");
        assert!(!err.to_string().contains("Hotel"));
    }
}
