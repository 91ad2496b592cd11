//! Events built with the real sealing, for the unit tests of this module.

use hotline_proto::IdentityKeyPair;
use hotline_proto::case::content::{CaseEventContent, FieldChange, FieldValue, FieldValueKind};
use hotline_proto::case::seal::{CaseKey, EventDraft, seal};
use hotline_proto::case::{CaseControl, CaseId, CaseState, SignedCaseEvent};
use hotline_proto::e2e::suite::SystemRandomness;

/// A staff device's identity.
pub(crate) fn staff(n: u8) -> IdentityKeyPair {
    IdentityKeyPair::from_seed(&[n; 32])
}

/// A case field set to text.
pub(crate) fn set_text(field: u32, text: &str, based_on: &[[u8; 16]]) -> FieldChange {
    FieldChange {
        entity: super::fields::entity::CASE,
        entity_id: Vec::new().into(),
        field,
        value: Some(FieldValue {
            kind: Some(FieldValueKind::Text(text.into())),
        }),
        based_on: based_on.iter().map(|b| b.to_vec().into()).collect(),
    }
}

/// An event of `case` sealed under `key` (epoch `epoch`) by `author`.
pub(crate) fn event(
    author: &IdentityKeyPair,
    key: &CaseKey,
    case: CaseId,
    event_id: [u8; 16],
    epoch: u32,
    state: Option<CaseState>,
    fill: impl FnOnce(&mut CaseEventContent),
) -> SignedCaseEvent {
    let control = CaseControl {
        state,
        ..CaseControl::default()
    };
    event_with(author, key, case, event_id, (epoch, 1), control, fill)
}

/// Like [`event`], with its (epoch, roster version) and control.
pub(crate) fn event_with(
    author: &IdentityKeyPair,
    key: &CaseKey,
    case: CaseId,
    event_id: [u8; 16],
    (epoch, roster_version): (u32, u64),
    control: CaseControl,
    fill: impl FnOnce(&mut CaseEventContent),
) -> SignedCaseEvent {
    let mut content = CaseEventContent {
        timestamp: 1_800_000_000,
        ..Default::default()
    };
    fill(&mut content);
    seal(
        author,
        key,
        &EventDraft {
            case_id: case,
            event_id,
            roster_version,
            epoch,
            control,
        },
        &content,
        &mut SystemRandomness,
    )
    .expect("sealed")
}
