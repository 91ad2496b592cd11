//! The statistics tombstone of a case (what stays of it in the ledger
//! when it is erased) and the figures the ledger's tombstones add up to
//! (`hotline case stats`). Pure.
//!
//! A tombstone holds counts and codes only: the number of people the case
//! covered (not removed), each relocation's final stage number, the
//! country of origin, the programme, the months it was opened and closed.
//! Never a name, a place, a text or an id other than the case's.

use std::collections::BTreeMap;

use hotline_proto::case::content::StatisticsTombstone;
use hotline_proto::case::relocation::Stage;

use super::fields::{PROGRAMMES, Value, case_field, entity, person_field};
use super::model::{CaseView, Register};
use super::replica::CaseFile;

/// "YYYY-MM" of a server time (empty for 0: not known).
fn month(t: u64) -> String {
    if t == 0 {
        return String::new();
    }
    hotline_proto::time::date(t).chars().take(7).collect()
}

/// The tombstone of the case `view` shows.
pub fn tombstone(view: &CaseView) -> StatisticsTombstone {
    let removed = |p: &Vec<u8>| {
        view.field(entity::PERSON, p, person_field::REMOVED)
            .and_then(Register::value)
            .and_then(Value::number)
            == Some(1)
    };
    let people = view.people.iter().filter(|p| !removed(p)).count();
    let programme = view
        .case_value(case_field::PROGRAMME)
        .and_then(Value::number)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0);
    let country = view
        .case_value(case_field::COUNTRY)
        .and_then(Value::text)
        .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()))
        .map(str::to_owned)
        .unwrap_or_default();
    StatisticsTombstone {
        case_id: view.case_id.as_bytes().to_vec().into(),
        people: u32::try_from(people).unwrap_or(u32::MAX),
        relocation_outcomes: view
            .relocations
            .iter()
            .filter_map(|r| outcome(view, r))
            .map(|s| u32::from(s.number()))
            .collect(),
        country_of_origin: country,
        programme,
        // A request declined (never opened): the month it was made.
        opened_month: month(
            view.opened
                .map(|(t, _)| t)
                .or(view.request.as_ref().map(|r| r.at))
                .unwrap_or(0),
        ),
        closed_month: month(view.closed_at.unwrap_or(0)),
    }
}

/// A relocation's outcome for the statistics: the stage it closed from
/// (returned, resettled), or its stage when it was not closed (cancelled,
/// or still under way when the case closed). `None`: no single stage (in
/// conflict, or none).
fn outcome(view: &CaseView, relocation: &[u8]) -> Option<Stage> {
    let stage = view.stage(relocation)?;
    if stage != Stage::Closed {
        return Some(stage);
    }
    view.stage_history
        .get(relocation)
        .and_then(|moves| moves.iter().rev().find(|m| m.to == Stage::Closed))
        .and_then(|m| m.from)
        .or(Some(stage))
}

/// The tombstones the ledger's events hold (those this device can read),
/// one per case (a case written twice counts once: the newest, in the
/// server's position order, so a tombstone written again after the case
/// changed replaces the stale one).
pub fn tombstones(ledger: &CaseFile) -> Vec<StatisticsTombstone> {
    let mut by_case: BTreeMap<Vec<u8>, StatisticsTombstone> = BTreeMap::new();
    let mut events: Vec<_> = ledger.events.iter().collect();
    events.sort_by_key(|e| e.position);
    for e in events {
        let Ok((_, content)) = e
            .event
            .open(&e.author_key, |_, epoch| ledger.keys.get(&epoch).cloned())
        else {
            continue;
        };
        if let Some(t) = content.tombstone {
            by_case.insert(t.case_id.to_vec(), t);
        }
    }
    by_case.into_values().collect()
}

fn count_lines(title: &str, counts: &BTreeMap<String, usize>) -> Vec<String> {
    let mut out = vec![format!("{title}:")];
    let width = counts.keys().map(String::len).max().unwrap_or(0);
    for (k, n) in counts {
        out.push(format!("  {k:<width$}  {n}"));
    }
    out
}

/// What `hotline case stats` prints: cases, people, relocation outcomes,
/// countries of origin, programmes, months opened and closed.
pub fn lines(tombstones: &[StatisticsTombstone]) -> Vec<String> {
    if tombstones.is_empty() {
        return vec!["no erased case in the statistics ledger yet".into()];
    }
    let people: u64 = tombstones.iter().map(|t| u64::from(t.people)).sum();
    let mut out = vec![format!(
        "erased cases: {}, people covered: {people}",
        tombstones.len()
    )];
    let mut outcomes = BTreeMap::new();
    let mut countries = BTreeMap::new();
    let mut programmes = BTreeMap::new();
    let mut opened = BTreeMap::new();
    let mut closed = BTreeMap::new();
    let or_unknown = |s: &str| {
        if s.is_empty() {
            "not known".to_owned()
        } else {
            s.to_owned()
        }
    };
    for t in tombstones {
        for o in &t.relocation_outcomes {
            let name = u8::try_from(*o)
                .ok()
                .and_then(Stage::from_number)
                .map_or_else(
                    || format!("stage {o}"),
                    |s| match s {
                        // Written so by a version that kept the last stage.
                        Stage::Closed => "closed (outcome not recorded)".to_owned(),
                        s => s.name().to_owned(),
                    },
                );
            *outcomes.entry(name).or_insert(0) += 1;
        }
        *countries
            .entry(or_unknown(&t.country_of_origin))
            .or_insert(0) += 1;
        let p = usize::try_from(t.programme)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| PROGRAMMES.get(i))
            .map_or_else(|| "not given".to_owned(), |p| (*p).to_owned());
        *programmes.entry(p).or_insert(0) += 1;
        *opened.entry(or_unknown(&t.opened_month)).or_insert(0) += 1;
        *closed.entry(or_unknown(&t.closed_month)).or_insert(0) += 1;
    }
    if !outcomes.is_empty() {
        out.extend(count_lines("relocations by outcome", &outcomes));
    }
    out.extend(count_lines("cases by country of origin", &countries));
    out.extend(count_lines("cases by programme", &programmes));
    out.extend(count_lines("cases by month opened", &opened));
    out.extend(count_lines("cases by month closed", &closed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::fields::relocation_field;
    use crate::cases::model::Opened;
    use hotline_proto::DeviceId;
    use hotline_proto::case::content::{CaseEventContent, FieldChange, FieldValue, FieldValueKind};
    use hotline_proto::case::{CaseControl, CaseId, EventHeader};

    /// A case whose one relocation went through `stages` (each move
    /// based on the one before).
    fn relocation_through(stages: &[Stage]) -> CaseView {
        let events: Vec<Opened> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = u8::try_from(i + 1).expect("few");
                Opened {
                    position: u64::from(n),
                    at: 1_000 + u64::from(n),
                    header: EventHeader {
                        case_id: CaseId::from_bytes([9; 16]),
                        event_id: [n; 16],
                        author: DeviceId::from_bytes([1; 16]),
                        roster_version: 1,
                        epoch: 1,
                        key_commitment: [0; 32],
                        control: CaseControl::default(),
                        ciphertext_len: 1040,
                    },
                    content: CaseEventContent {
                        changes: vec![FieldChange {
                            entity: entity::RELOCATION,
                            entity_id: vec![3; 16].into(),
                            field: relocation_field::STAGE,
                            value: Some(FieldValue {
                                kind: Some(FieldValueKind::Number(u64::from(s.number()))),
                            }),
                            based_on: if i == 0 {
                                Vec::new()
                            } else {
                                vec![vec![n - 1; 16].into()]
                            },
                        }],
                        ..Default::default()
                    },
                }
            })
            .collect();
        CaseView::fold(CaseId::from_bytes([9; 16]), &events)
    }

    #[test]
    fn a_relocation_counts_by_its_outcome_not_by_closed() {
        use Stage::*;
        let path = [Requested, Assessed, Approved, TravelBooked, InTransit];
        let path = [&path[..], &[Arrived, Hosted, Extended]].concat();
        for (end, counted) in [
            (vec![Resettled, Closed], Resettled),
            (vec![Returned, Closed], Returned),
            (vec![Resettled], Resettled),
            (vec![Cancelled], Cancelled),
            (vec![], Extended),
        ] {
            let view = relocation_through(&[&path[..], &end].concat());
            assert!(view.warnings.is_empty(), "{:?}", view.warnings);
            let t = tombstone(&view);
            assert_eq!(t.relocation_outcomes, [u32::from(counted.number())]);
            let text = lines(&[t]).join("\n");
            assert!(
                text.contains(&format!("relocations by outcome:\n  {}  1", counted.name())),
                "{text}"
            );
        }
        // A tombstone written by an older version (closed kept) says so.
        let old = StatisticsTombstone {
            relocation_outcomes: vec![u32::from(Closed.number())],
            ..Default::default()
        };
        assert!(
            lines(&[old])
                .join("\n")
                .contains("closed (outcome not recorded)  1")
        );
    }

    #[test]
    fn the_figures_count_cases_people_outcomes_countries_and_months() {
        let t = |people, outcomes: Vec<u32>, country: &str, programme, opened: &str| {
            StatisticsTombstone {
                case_id: vec![people as u8; 16].into(),
                people,
                relocation_outcomes: outcomes,
                country_of_origin: country.into(),
                programme,
                opened_month: opened.into(),
                closed_month: "2027-01".into(),
            }
        };
        let lines = lines(&[
            t(
                3,
                vec![u32::from(Stage::Resettled.number())],
                "UA",
                1,
                "2026-05",
            ),
            t(1, vec![], "UA", 2, "2026-06"),
            t(2, vec![99], "", 0, ""),
        ]);
        let text = lines.join("\n");
        assert_eq!(lines[0], "erased cases: 3, people covered: 6");
        assert!(
            text.contains("relocations by outcome:\n  resettled  1\n  stage 99   1"),
            "{text}"
        );
        assert!(text.contains("  UA         2"), "{text}");
        assert!(text.contains("  not known  1"), "{text}");
        assert!(text.contains("  legal       1"), "{text}");
        assert!(text.contains("  2027-01  3"), "{text}");
        assert_eq!(
            super::lines(&[]),
            ["no erased case in the statistics ledger yet"]
        );
    }

    /// A defender's request declined (closed as its first staff event,
    /// never opened): its month is the month the request was made, not
    /// "not known".
    #[test]
    fn a_declined_request_counts_in_the_month_it_was_made() {
        use super::super::model::RequestInfo;
        let case = CaseId::from_bytes([9; 16]);
        // 2026-11-29 (request), declined 2027-01-05.
        let (asked, declined) = (1_795_910_400, 1_799_107_200);
        let mut view = CaseView::fold(
            case,
            &[Opened {
                position: 2,
                at: declined,
                header: EventHeader {
                    case_id: case,
                    event_id: [1; 16],
                    author: DeviceId::from_bytes([1; 16]),
                    roster_version: 1,
                    epoch: 1,
                    key_commitment: [0; 32],
                    control: CaseControl {
                        state: Some(hotline_proto::case::CaseState::Closed),
                        ..Default::default()
                    },
                    ciphertext_len: 1040,
                },
                content: CaseEventContent {
                    note: "not ours".into(),
                    ..Default::default()
                },
            }],
        );
        view.requested(RequestInfo {
            defender: DeviceId::from_bytes([2; 16]),
            at: asked,
            envelope_digest: [3; 32],
            text: None,
        });
        assert!(view.opened.is_none());
        let t = tombstone(&view);
        assert_eq!(t.opened_month, "2026-11");
        assert_eq!(t.closed_month, "2027-01");
        let text = lines(&[t]).join("\n");
        assert!(
            text.contains("cases by month opened:\n  2026-11  1"),
            "{text}"
        );
        assert!(
            !text.contains("cases by month opened:\n  not known"),
            "{text}"
        );
    }
}
