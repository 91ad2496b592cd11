//! How `hotline case list`, `case show` and `relocation show` read:
//! aligned columns, ages and stages in words, every value of a field in
//! conflict with its author and time, warnings last.

use hotline_client::cases::fields::{self, Value, entity, person_field, relocation_field};
use hotline_client::cases::model::{CaseView, Register};
use hotline_client::cases::replica::SummaryRow;
use hotline_proto::case::CaseState;
use hotline_proto::case::relocation::Stage;
use hotline_proto::identity::hex;

/// How a device (or any 16-byte id) is shown: its name and id start.
pub(super) type Who<'a> = &'a dyn Fn(&[u8]) -> String;

/// "1 change", "3 changes".
pub(super) fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The first 8 hex digits of an id.
pub(super) fn short(id: &[u8]) -> String {
    hex(id).chars().take(8).collect()
}

/// The lines of `case list`: aligned columns, ages in words, a `!` after
/// the id of a case with a conflict.
pub(super) fn list_lines(rows: &[&SummaryRow], now: u64) -> String {
    if rows.is_empty() {
        return "no cases\n".into();
    }
    let mut table: Vec<[String; 7]> = vec![[
        "CASE".into(),
        "REFERENCE".into(),
        "STATE".into(),
        "RISK".into(),
        "STAGE".into(),
        "UPDATED".into(),
        "SUMMARY".into(),
    ]];
    for s in rows {
        let stages: Vec<String> = s
            .stages
            .iter()
            .map(|n| {
                Stage::from_number(*n).map_or_else(|| "conflict".to_owned(), |st| st.to_string())
            })
            .collect();
        let mut id = short(&s.case_id);
        if s.conflicts > 0 {
            id.push('!');
        }
        let mut summary = s.summary.clone();
        if s.unreadable > 0 {
            // Its state is the events' signed control part, read without
            // the key; what it says waits for the keys.
            let why = if s.state() == Some(CaseState::Closed) {
                "a closed case's keys come when it is reopened"
            } else {
                "waiting for its keys from another staff device"
            };
            summary.push_str(&format!(
                " ({} not readable here yet: {why})",
                count(s.unreadable.into(), "event")
            ));
        }
        if s.waiting > 0 {
            summary.push_str(&format!(
                " ({} not sent yet)",
                count(s.waiting.into(), "change")
            ));
        }
        table.push([
            id,
            s.reference.clone(),
            s.state().map_or("?", CaseState::name).to_owned()
                + if s.legal_hold { " (hold)" } else { "" },
            fields::RISKS
                .get(usize::try_from(s.risk).unwrap_or(0).wrapping_sub(1))
                .copied()
                .unwrap_or("")
                .to_owned(),
            stages.join(", "),
            ago(now, s.last_at),
            summary.trim_start().to_owned(),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &table {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.iter().any(|s| s.conflicts > 0) {
        out.push_str("! a field has conflicting values: `hotline case show` lists them\n");
    }
    out
}

/// How long ago `at` was, in words.
pub(super) fn ago(now: u64, at: u64) -> String {
    if at == 0 {
        return "never".into();
    }
    let secs = now.saturating_sub(at);
    let (n, unit) = match secs {
        0..60 => return "just now".into(),
        60..3_600 => (secs / 60, "minute"),
        3_600..86_400 => (secs / 3_600, "hour"),
        86_400..2_592_000 => (secs / 86_400, "day"),
        2_592_000..31_536_000 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

pub(super) fn show_field(
    who: Who<'_>,
    view: &CaseView,
    ent: i32,
    id: &[u8],
    field: u32,
) -> Option<String> {
    let r = view.field(ent, id, field)?;
    // Heads that set equal values are one value (protocol.md 9.5).
    let heads = r.values();
    let shown = |v: &Value| fields::show_value(ent, field, v, who);
    match heads.as_slice() {
        [] => None,
        [one] => Some(shown(&one.value)),
        many => Some(format!(
            "CONFLICT: {}",
            many.iter()
                .map(|h| format!(
                    "{:?} by {} ({})",
                    shown(&h.value),
                    who(h.author.as_bytes()),
                    hotline_proto::time::date_time(h.at)
                ))
                .collect::<Vec<_>>()
                .join(" / ")
        )),
    }
}

/// Why a staff device may not hold a request's words.
pub(super) const WORDS_NOT_HERE: &str = "they were not sealed to this device (most often: the request was sealed to the staff of an earlier roster, before this device joined)";

/// What `case show` says of a request whose words this device does not
/// hold: why, and (while it waits for an answer) who should take it on.
fn words_not_here(view: &CaseView) -> String {
    let why = WORDS_NOT_HERE;
    if view.state == Some(CaseState::Requested) {
        format!(
            "(the request's words are not on this device: {why}; a colleague who reads them should take it on)"
        )
    } else {
        format!("(the request's words are not on this device: {why})")
    }
}

pub(super) fn view_lines(who: Who<'_>, view: &CaseView, waiting: usize) -> Vec<String> {
    let mut out = Vec::new();
    let id = hex(view.case_id.as_bytes());
    let state = view.state.map_or("unknown", CaseState::name);
    out.push(format!(
        "case {id}: {state}{}{}",
        if view.legal_hold {
            ", under a legal hold"
        } else {
            ""
        },
        if view.ledger {
            " (the statistics ledger)"
        } else {
            ""
        }
    ));
    if let Some(reason) = &view.closed_reason {
        out.push(format!("  closed: {reason}"));
    }
    if let Some(r) = &view.request {
        out.push(format!(
            "  requested by {} on {}: {}",
            who(r.defender.as_bytes()),
            hotline_proto::time::date_time(r.at),
            r.text.clone().unwrap_or_else(|| words_not_here(view))
        ));
    }
    for (n, spec) in (1..=8).filter_map(|n| fields::field_spec(entity::CASE, n).map(|s| (n, s))) {
        if let Some(v) = show_field(who, view, entity::CASE, &[], n) {
            out.push(format!("  {}: {v}", spec.name));
        }
    }
    for key in view.unknown_fields() {
        out.push(format!("  {}", fields::field_name(key.0, key.2)));
    }
    if !view.people.is_empty() {
        out.push("people:".into());
        for p in &view.people {
            out.push(format!("  {}", person_line(who, view, p)));
        }
    }
    if !view.relocations.is_empty() {
        out.push("relocations:".into());
        for r in &view.relocations {
            out.extend(relocation_lines(who, view, r));
        }
    }
    if !view.shared.is_empty() {
        out.push("shared with the defender:".into());
        for s in &view.shared {
            out.push(format!(
                "  {} by {}: {}",
                hotline_proto::time::date_time(s.at),
                who(s.author.as_bytes()),
                s.text
            ));
        }
    }
    out.push("timeline:".into());
    for t in &view.timeline {
        out.push(format!(
            "  {}  {}: {}{}",
            hotline_proto::time::date_time(t.at),
            who(t.author.as_bytes()),
            t.what,
            if t.waiting { " (not sent yet)" } else { "" }
        ));
    }
    if view.unreadable > 0 {
        out.push(format!(
            "{} this device cannot read yet (no key)",
            count(view.unreadable as u64, "event")
        ));
    }
    if waiting > 0 {
        out.push(format!(
            "{} made here not sent yet (waiting in the case outbox)",
            count(waiting as u64, "change")
        ));
    }
    for w in &view.warnings {
        out.push(format!("WARNING: {}", w.text));
    }
    out
}

pub(super) fn person_line(who: Who<'_>, view: &CaseView, p: &[u8]) -> String {
    let mut parts = vec![short(p)];
    for n in 1..=6 {
        if let (Some(spec), Some(v)) = (
            fields::field_spec(entity::PERSON, n),
            show_field(who, view, entity::PERSON, p, n),
        ) {
            parts.push(if n == 1 {
                v
            } else {
                format!("{}: {v}", spec.name)
            });
        }
    }
    parts.join(", ")
}

pub(super) fn relocation_lines(who: Who<'_>, view: &CaseView, r: &[u8]) -> Vec<String> {
    let mut out = vec![format!(
        "  relocation {}: {}",
        short(r),
        show_field(who, view, entity::RELOCATION, r, relocation_field::STAGE).unwrap_or_default()
    )];
    for n in 1..=11 {
        if n == relocation_field::STAGE {
            continue;
        }
        let Some(spec) = fields::field_spec(entity::RELOCATION, n) else {
            continue;
        };
        let value = if n == relocation_field::PEOPLE {
            view.field(entity::RELOCATION, r, n)
                .and_then(Register::value)
                .and_then(Value::ids)
                .map(|ids| {
                    ids.iter()
                        .map(|p| person_name(view, p))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
        } else {
            show_field(who, view, entity::RELOCATION, r, n)
        };
        if let Some(v) = value {
            out.push(format!("    {}: {v}", spec.name));
        }
    }
    for m in view
        .stage_history
        .get(r)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let note = if m.note.is_empty() {
            String::new()
        } else {
            format!(": {}", m.note)
        };
        out.push(format!(
            "    {} {} by {}{note}",
            hotline_proto::time::date_time(m.at),
            m.to,
            who(m.author.as_bytes())
        ));
    }
    out
}

pub(super) fn person_name(view: &CaseView, p: &[u8]) -> String {
    view.field(entity::PERSON, p, person_field::NAME)
        .and_then(Register::value)
        .and_then(Value::text)
        .map_or_else(|| short(p), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_client::cases::fields::case_field;
    use hotline_client::cases::model::Opened;
    use hotline_proto::DeviceId;
    use hotline_proto::case::content::{
        CaseEventContent, FieldChange, FieldValue, FieldValueKind, IdList,
    };
    use hotline_proto::case::{CaseControl, CaseId, EventHeader};

    fn row(id: u8, reference: &str) -> SummaryRow {
        SummaryRow {
            case_id: [id; 16].to_vec(),
            reference: reference.into(),
            ..Default::default()
        }
    }

    #[test]
    fn ages_read_in_words() {
        assert_eq!(ago(1_000, 990), "just now");
        assert_eq!(ago(10_000, 10_000 - 60), "1 minute ago");
        assert_eq!(ago(1_000_000, 1_000_000 - 3 * 86_400), "3 days ago");
        assert_eq!(ago(5, 0), "never");
    }

    #[test]
    fn the_list_is_aligned_and_marks_conflicts() {
        let mut a = row(0xab, "C-1");
        a.summary = "first".into();
        a.state = CaseState::Open.to_wire();
        a.risk = 3;
        a.stages = vec![Stage::InTransit.number()];
        a.last_at = 1_000_000 - 11 * 86_400;
        a.conflicts = 1;
        let mut b = row(0xcd, "");
        b.summary = "second".into();
        b.state = CaseState::Closed.to_wire();
        b.last_at = 1_000_000;
        let text = list_lines(&[&a, &b], 1_000_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "CASE       REFERENCE  STATE   RISK  STAGE       UPDATED      SUMMARY"
        );
        assert_eq!(
            lines[1],
            "abababab!  C-1        open    high  in transit  11 days ago  first"
        );
        assert_eq!(
            lines[2],
            "cdcdcdcd              closed                    just now     second"
        );
        assert!(lines[3].starts_with("! a field has conflicting values"));
    }

    fn ev(n: u8, author: u8, changes: Vec<FieldChange>, note: &str) -> Opened {
        Opened {
            position: u64::from(n),
            at: 1_795_910_400 + u64::from(n) * 60,
            header: EventHeader {
                case_id: CaseId::from_bytes([9; 16]),
                event_id: [n; 16],
                author: DeviceId::from_bytes([author; 16]),
                roster_version: 1,
                epoch: 1,
                key_commitment: [0; 32],
                control: CaseControl {
                    state: (n == 1).then_some(CaseState::Open),
                    ..CaseControl::default()
                },
                ciphertext_len: 1040,
            },
            content: CaseEventContent {
                timestamp: 1,
                changes,
                note: note.into(),
                ..Default::default()
            },
        }
    }

    fn set(ent: i32, id: &[u8], field: u32, kind: FieldValueKind, based_on: &[u8]) -> FieldChange {
        FieldChange {
            entity: ent,
            entity_id: id.to_vec().into(),
            field,
            value: Some(FieldValue { kind: Some(kind) }),
            based_on: based_on.iter().map(|b| vec![*b; 16].into()).collect(),
        }
    }

    #[test]
    fn a_case_reads_with_both_values_of_a_conflict_its_stages_and_its_warnings() {
        let stage = |s: Stage, b: &[u8]| {
            set(
                entity::RELOCATION,
                &[3; 16],
                relocation_field::STAGE,
                FieldValueKind::Number(u64::from(s.number())),
                b,
            )
        };
        let events = [
            ev(
                1,
                1,
                vec![
                    set(
                        entity::CASE,
                        &[],
                        case_field::SUMMARY,
                        FieldValueKind::Text("first".into()),
                        &[],
                    ),
                    set(
                        entity::PERSON,
                        &[4; 16],
                        person_field::NAME,
                        FieldValueKind::Text("Ana".into()),
                        &[],
                    ),
                    set(
                        entity::RELOCATION,
                        &[3; 16],
                        relocation_field::PEOPLE,
                        FieldValueKind::Ids(IdList {
                            ids: vec![vec![4; 16].into()],
                        }),
                        &[],
                    ),
                    stage(Stage::Requested, &[]),
                ],
                "",
            ),
            ev(
                2,
                1,
                vec![set(
                    entity::CASE,
                    &[],
                    case_field::SUMMARY,
                    FieldValueKind::Text("from Kyiv".into()),
                    &[1],
                )],
                "",
            ),
            ev(
                3,
                2,
                vec![set(
                    entity::CASE,
                    &[],
                    case_field::SUMMARY,
                    FieldValueKind::Text("from Lviv".into()),
                    &[1],
                )],
                "",
            ),
            ev(4, 2, vec![stage(Stage::Assessed, &[1])], "risk confirmed"),
            ev(5, 1, vec![stage(Stage::Hosted, &[4])], ""),
            ev(
                6,
                1,
                vec![set(
                    entity::CASE,
                    &[],
                    40,
                    FieldValueKind::Text("?".into()),
                    &[],
                )],
                "",
            ),
        ];
        let view = CaseView::fold(CaseId::from_bytes([9; 16]), &events);
        let who = |id: &[u8]| format!("dev{}", id[0]);
        let text = view_lines(&who, &view, 1).join("\n");
        let expect = [
            "case 09090909090909090909090909090909: open",
            "  summary: CONFLICT: \"from Kyiv\" by dev1 (2026-11-29 00:02 UTC) / \"from Lviv\" by dev2 (2026-11-29 00:03 UTC)",
            "  a field this version does not know (entity 1, field 40)",
            "people:\n  04040404, Ana",
            "relocations:\n  relocation 03030303: assessed\n    people: Ana",
            "    2026-11-29 00:01 UTC requested by dev1\n    2026-11-29 00:04 UTC assessed by dev2: risk confirmed",
            "  2026-11-29 00:04 UTC  dev2: moved relocation 03030303 from requested to assessed; note: risk confirmed",
            "1 change made here not sent yet (waiting in the case outbox)",
            "WARNING: relocation 03030303: a move to hosted was ignored (a relocation that is assessed can move to: approved, cancelled); the stage stays",
        ];
        for e in expect {
            assert!(text.contains(e), "missing {e:?} in:\n{text}");
        }
    }
}
