//! Target `store_codec`: what the server reads back from its store when it
//! opens it: events (selector 0), snapshots (selector 1), and an event
//! applied on top of a snapshot as replay does (selector 2: a 2-byte
//! big-endian snapshot length, the snapshot, then the event).

use hotline_server::domain::State;
use hotline_server::store::codec::{decode_event, decode_snapshot, encode_event, encode_snapshot};

use crate::{round_trip, select};

pub fn check(data: &[u8]) {
    let Some((which, bytes)) = select(data, 3) else {
        return;
    };
    match which {
        0 => {
            if let Ok(event) = decode_event(bytes) {
                round_trip("Event", &event, encode_event, decode_event);
                // Replayed onto an empty store: applied or refused, never a panic.
                let _ = State::default().apply(1, &event);
            }
        }
        1 => {
            if let Ok(state) = decode_snapshot(bytes) {
                round_trip("snapshot", &state, encode_snapshot, decode_snapshot);
            }
        }
        _ => {
            let Some((len, rest)) = bytes.split_first_chunk::<2>() else {
                return;
            };
            let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
            let (snapshot, event) = rest.split_at(len);
            let (Ok(mut state), Ok(event)) = (decode_snapshot(snapshot), decode_event(event))
            else {
                return;
            };
            let seq = state.applied_seq.saturating_add(1);
            if state.apply(seq, &event).is_err() {
                // Refused: replay stops and the store is reported damaged.
                return;
            }
            // What an applied event leaves is a state a snapshot can hold.
            round_trip(
                "snapshot after an event",
                &state,
                encode_snapshot,
                decode_snapshot,
            );
        }
    }
}
