//! A staff device's case replica at scale: 1,000 cases × 50 events.
//!
//! Prints, in one run:
//! * the floor: verifying and decrypting every event locally;
//! * a cold sync's local half: the same events applied to an empty
//!   replica in frames as the server sends them (checks, sealed storage,
//!   each case folded once per frame), without the network;
//! * `case list` from the replica (opening the index and going through
//!   every summary): p50 and p90 of 50 runs. Goal: p50 ≤ 50 ms.
//!
//! `cargo bench -p hotline-client --bench cases`
//! (`HOTLINE_BENCH_CASES` and `HOTLINE_BENCH_EVENTS` change the sizes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use hotline_client::StateDir;
use hotline_client::cases::fields::{case_field, entity};
use hotline_client::cases::replica::{CaseFile, Replica};
use hotline_client::cases::sync::{SyncReport, apply};
use hotline_proto::IdentityKeyPair;
use hotline_proto::Role;
use hotline_proto::case::content::{CaseEventContent, FieldChange, FieldValue, FieldValueKind};
use hotline_proto::case::seal::{CaseKey, EventDraft, seal};
use hotline_proto::case::{CaseControl, CaseId, CaseState, CaseUpdate, CaseUpdateKind};
use hotline_proto::e2e::roster::{Roster, RosterEntry};
use hotline_proto::e2e::suite::SystemRandomness;

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let cases = size("HOTLINE_BENCH_CASES", 1_000);
    let per_case = size("HOTLINE_BENCH_EVENTS", 50);
    let author = IdentityKeyPair::from_seed(&[1; 32]);
    let roster = Roster {
        version: 1,
        issued_at: 0,
        expires_at: u64::MAX,
        previous_hash: [0; 32],
        entries: vec![RosterEntry {
            device_id: author.device_id(),
            role: Role::Coordinator,
            identity_key: author.public_key(),
            valid_from: 0,
            valid_until: u64::MAX,
        }],
    };
    let mut updates = Vec::with_capacity(cases * per_case);
    let mut keys = Vec::with_capacity(cases);
    let mut position = 0u64;
    for c in 0..cases {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(c as u64).to_be_bytes());
        let case = CaseId::from_bytes(id);
        let key = CaseKey::from_bytes([(c % 251) as u8; 32]);
        let mut previous: Option<[u8; 16]> = None;
        for e in 0..per_case {
            let mut event_id = [0u8; 16];
            event_id[..8].copy_from_slice(&(c as u64).to_be_bytes());
            event_id[8..].copy_from_slice(&(e as u64).to_be_bytes());
            let content = CaseEventContent {
                timestamp: 1_800_000_000 + e as u64,
                changes: vec![FieldChange {
                    entity: entity::CASE,
                    entity_id: Vec::new().into(),
                    field: case_field::SUMMARY,
                    value: Some(FieldValue {
                        kind: Some(FieldValueKind::Text(format!("summary {c} version {e}"))),
                    }),
                    based_on: previous.iter().map(|p| p.to_vec().into()).collect(),
                }],
                note: "a note of ordinary length, as staff write them".into(),
                ..Default::default()
            };
            let control = CaseControl {
                state: (e == 0).then_some(CaseState::Open),
                ..CaseControl::default()
            };
            let draft = EventDraft {
                case_id: case,
                event_id,
                roster_version: 1,
                epoch: 1,
                control,
            };
            let event =
                seal(&author, &key, &draft, &content, &mut SystemRandomness).expect("sealed");
            position += 1;
            updates.push(CaseUpdate {
                position,
                case_id: case,
                at: 1_800_000_000 + position,
                kind: CaseUpdateKind::Event {
                    event,
                    author_key: author.public_key(),
                },
            });
            previous = Some(event_id);
        }
        keys.push((case, key));
    }
    println!("{cases} cases × {per_case} events");

    // The floor: verify and decrypt every event.
    let start = Instant::now();
    for u in &updates {
        if let CaseUpdateKind::Event { event, author_key } = &u.kind {
            let key = &keys[(u.position as usize - 1) / per_case].1;
            black_box(
                event
                    .open(author_key, |_, _| Some(key.clone()))
                    .expect("opens"),
            );
        }
    }
    let floor = start.elapsed();
    println!("verify + decrypt every event (floor): {}", ms(floor));

    // A cold sync's local half: frames of 262,144 bytes at most.
    let dir = tempfile::tempdir().expect("tempdir");
    let state = StateDir::new(dir.path());
    let storage = [7u8; 32];
    let mut replica = Replica::open(&state, &storage).expect("replica");
    let mut files = Vec::new();
    for (case, key) in &keys {
        let mut f = CaseFile::new(*case);
        f.keys.insert(1, key.clone());
        files.push(f);
    }
    replica.save_all(&files).expect("keys saved");
    // About 200 events of 1,300 bytes fit a frame of 262,144 bytes; the
    // index is saved once per answer of at most 64 frames.
    let per_frame = 262_144 / 1_300;
    let start = Instant::now();
    let mut report = SyncReport::default();
    for answer in updates.chunks(per_frame * 64) {
        for frame in answer.chunks(per_frame) {
            apply(&mut replica, frame, &roster, &|_| None, &mut report).expect("applied");
        }
        let last = answer.last().map_or(0, |u| u.position);
        replica.set_cursor(last, 0).expect("cursor");
    }
    let sync = start.elapsed();
    assert_eq!(report.events, cases * per_case);
    println!(
        "cold sync into the replica, without the network ({} frames): {} ({:.1}× the floor)",
        updates.len().div_ceil(per_frame),
        ms(sync),
        sync.as_secs_f64() / floor.as_secs_f64()
    );

    // `case list`: open the index, go through every summary.
    let mut runs: Vec<Duration> = (0..50)
        .map(|_| {
            let start = Instant::now();
            let r = Replica::open(&state, &storage).expect("replica");
            let shown = r
                .summaries()
                .iter()
                .filter(|s| s.state() == Some(CaseState::Open))
                .map(|s| s.summary.len() + s.reference.len() + s.stages.len())
                .sum::<usize>();
            black_box(shown);
            start.elapsed()
        })
        .collect();
    runs.sort();
    println!(
        "case list over {} cases from the replica: p50 {}, p90 {} (goal: p50 ≤ 50 ms)",
        replica.summaries().len(),
        ms(runs[runs.len() / 2]),
        ms(runs[runs.len() * 9 / 10])
    );
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
