//! A staff device's cold case sync at scale: 1,000 cases × 50 events,
//! from a real server on loopback, next to the floor of the same work
//! done locally.
//!
//! Prints, in one run:
//! * the floor: the readers' checks of every event (its header read, its
//!   signature verified, its key's commitment checked, its content
//!   decrypted and decoded), locally, with the calls the sync makes;
//! * a cold sync: the client library's `sync_cases` into an empty replica
//!   in a temporary home, over real QUIC and TLS from a real server on
//!   127.0.0.1:0 whose store (a temporary data directory, the real log)
//!   holds the events, sealed and signed by four staff devices enrolled
//!   on it and listed on a signed roster; the ratio to the floor (goal:
//!   ≤ 2×);
//! * `case list` over the resulting replica, through the code the
//!   `hotline case list` command runs after the unlock (the replica
//!   opened, the rows printed into a buffer): p50 and p90 of 50 runs
//!   (goal: p50 ≤ 50 ms); the passphrase unlock, which every command
//!   pays once, measured apart.
//!
//! The server's store is filled through its own API
//! (`LogStore::append_case_event`, the same decision and record a
//! request makes) while the server is stopped: through the wire the
//! rate limit (10 requests per second per connection) would take hours.
//! The reader holds every case's key before the sync, as a staff device
//! that received them does.
//!
//! `cargo bench -p hotline-client --bench cases`
//! (`HOTLINE_BENCH_CASES` and `HOTLINE_BENCH_EVENTS` change the sizes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use hotline_client::StateDir;
use hotline_client::cases::fields::{case_field, entity};
use hotline_client::cases::replica::CaseFile;
use hotline_client::cases::{open_replica, sync};
use hotline_client::connection;
use hotline_client::messenger::Device;
use hotline_proto::case::content::{CaseEventContent, FieldChange, FieldValue, FieldValueKind};
use hotline_proto::case::seal::{CaseKey, EventDraft, seal};
use hotline_proto::case::{CaseControl, CaseId, CaseState, SignedCaseEvent};
use hotline_proto::e2e::org::OrgKeyPair;
use hotline_proto::e2e::roster::{Roster, RosterEntry};
use hotline_proto::e2e::suite::SystemRandomness;
use hotline_proto::{IdentityKeyPair, IdentityPublicKey, Role};
use hotline_server::log::keys::{KeySource, generate_key_file};
use hotline_server::store::{Create, LogStore, open_keys};
use hotline_server::{Config, RunningServer};

// The lines `hotline case list` prints, from the command's own source.
#[allow(dead_code, unused_imports)]
#[path = "../src/cli/case_view.rs"]
mod case_view;

const PASSPHRASE: &str = "correct horse battery staple";

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One staff device writing events.
struct Author {
    key: IdentityKeyPair,
    role: Role,
}

fn main() {
    let cases = size("HOTLINE_BENCH_CASES", 1_000);
    let per_case = size("HOTLINE_BENCH_EVENTS", 50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(cases, per_case));
}

async fn run(cases: usize, per_case: usize) {
    println!(
        "{cases} cases × {per_case} events, written by 4 staff devices (machine load: {})",
        load()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    // The master key outside the data directory, as in production.
    let key_path = dir.path().join("master.key");
    generate_key_file(&key_path).expect("key file");
    let master = KeySource::File(key_path);
    let server = RunningServer::start(config.clone(), &master)
        .await
        .expect("server starts");

    // Four staff devices that write, enrolled over the wire.
    let mut authors = Vec::new();
    let mut sessions = Vec::new();
    for role in [
        Role::Admin,
        Role::Coordinator,
        Role::Coordinator,
        Role::Officer,
    ] {
        let invite = server.create_invite(role, 3600).await.expect("invite");
        let (key, _seed) = IdentityKeyPair::generate().expect("randomness");
        sessions.push(connection::enroll(&invite, &key).await.expect("enrolled"));
        authors.push(Author { key, role });
    }
    // The reader: a staff device enrolled as the `hotline` command does,
    // its state in a temporary home.
    let home = dir.path().join("home");
    let state = StateDir::new(&home);
    let invite = server
        .create_invite(Role::Officer, 3600)
        .await
        .expect("invite");
    hotline_client::enroll(
        &state,
        &invite,
        PASSPHRASE,
        hotline_client::keystore::DEFAULT_ITERATIONS,
    )
    .await
    .expect("reader enrolled")
    .close()
    .await;
    let org = OrgKeyPair::from_seed(&[77; 32]);
    let reader = {
        let mut device = Device::open(&state, PASSPHRASE).expect("unlock");
        device.pin_org_root(org.public_key()).expect("root pinned");
        device
    };
    let now = hotline_server::unix_now();
    let mut entries: Vec<RosterEntry> = authors
        .iter()
        .map(|a| RosterEntry {
            device_id: a.key.device_id(),
            role: a.role,
            identity_key: a.key.public_key(),
            valid_from: 0,
            valid_until: now + 86_400,
        })
        .collect();
    entries.push(RosterEntry {
        device_id: reader.identity().device_id(),
        role: Role::Officer,
        identity_key: reader.identity().public_key(),
        valid_from: 0,
        valid_until: now + 86_400,
    });
    let roster = Roster {
        version: 1,
        issued_at: now,
        expires_at: now + 86_400,
        previous_hash: [0; 32],
        entries,
    }
    .sign(&org);
    sessions[0].put_roster(roster).await.expect("roster stored");
    for s in sessions {
        s.close().await;
    }
    drop(reader);
    config.listen = server.local_addr();
    server.shutdown().await;

    // The events, sealed and signed by the staff devices, stored through
    // the store's API on the stopped server's data directory.
    let start = Instant::now();
    let (keys, events) = fill(&config, &master, &authors, cases, per_case);
    println!(
        "store filled in {:.1} s ({} events)",
        start.elapsed().as_secs_f64(),
        events.len()
    );

    // The floor: the readers' checks of every event, as the sync makes
    // them, and nothing else.
    let start = Instant::now();
    for (event, author_key, case) in &events {
        let header = event.header_unverified().expect("header");
        assert_eq!(header.case_id, *case);
        let key = &keys[&header.case_id];
        black_box(
            event
                .open(author_key, |_, epoch| (epoch == 1).then(|| key.clone()))
                .expect("opens"),
        );
    }
    let floor = start.elapsed();
    println!(
        "verify + decrypt every event locally (floor): {}",
        ms(floor)
    );

    let server = start_again(&config, &master).await;

    // The unlock every command pays (the passphrase's key derivation and
    // the device's sealed state read), then the keys given to the replica.
    let start = Instant::now();
    let mut device = Device::open(&state, PASSPHRASE).expect("unlock");
    let unlock = start.elapsed();
    let mut replica = open_replica(&device).expect("replica");
    let files: Vec<CaseFile> = keys
        .iter()
        .map(|(case, key)| {
            let mut f = CaseFile::new(*case);
            f.keys.insert(1, key.clone());
            f
        })
        .collect();
    replica.save_all(&files).expect("keys saved");
    drop(files);
    let session = device.connect().await.expect("connected");
    let roster = device.roster(&session).await.expect("roster verified");

    // The cold sync.
    let start = Instant::now();
    let report = sync::sync_cases(&session, &mut replica, &roster, &|_, _| None)
        .await
        .expect("synced");
    let synced = start.elapsed();
    assert_eq!(report.events, cases * per_case, "every event stored");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    println!(
        "cold sync from the server over QUIC into an empty replica: {} ({:.2}× the floor; goal ≤ 2×)",
        ms(synced),
        synced.as_secs_f64() / floor.as_secs_f64()
    );
    let readable = replica
        .summaries()
        .iter()
        .filter(|s| s.unreadable == 0 && !s.summary.is_empty())
        .count();
    assert_eq!(readable, cases, "every case folded and readable");
    session.close().await;
    drop(replica);
    server.shutdown().await;

    // `case list`: what the command does after the unlock.
    let mut runs: Vec<Duration> = (0..50)
        .map(|_| {
            let start = Instant::now();
            black_box(list(&device));
            start.elapsed()
        })
        .collect();
    runs.sort();
    println!(
        "case list over {cases} cases from the replica: p50 {}, p90 {} (goal: p50 ≤ 50 ms; the passphrase unlock every command pays first is not included: {})",
        ms(runs[runs.len() / 2]),
        ms(runs[runs.len() * 9 / 10]),
        ms(unlock)
    );
    let _ = device.hold();
}

/// `hotline case list` after the unlock: the replica opened, every row
/// printed (into a buffer).
fn list(device: &Device) -> String {
    let role = device.profile().role().expect("role");
    assert!(role.is_staff());
    let replica = open_replica(device).expect("replica");
    let now = hotline_client::unix_now();
    let rows: Vec<_> = replica.summaries().iter().collect();
    case_view::list_lines(&rows, now)
}

/// Seals `per_case` events of each of `cases` cases (each case opened by
/// one author, edited in turn by all four) and stores them through
/// [`LogStore::append_case_event`], four writers at a time; the case
/// keys and the events with their author's key, in the order stored.
#[allow(clippy::type_complexity)]
fn fill(
    config: &Config,
    master: &KeySource,
    authors: &[Author],
    cases: usize,
    per_case: usize,
) -> (
    std::collections::BTreeMap<CaseId, CaseKey>,
    Vec<(SignedCaseEvent, IdentityPublicKey, CaseId)>,
) {
    let keys = open_keys(&config.data_dir, master, Create::Never).expect("store keys");
    let store =
        LogStore::open(&config.data_dir, keys, config.limits.store_cache_bytes).expect("store");
    let writers = 4;
    let mut out: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let store = &store;
                s.spawn(move || {
                    // Each case's events spread over the whole history,
                    // as cases that live for months are written: event
                    // e of every case, then event e + 1.
                    let mut mine: Vec<CaseWriter> =
                        (w..cases).step_by(writers).map(CaseWriter::new).collect();
                    let mut events = Vec::new();
                    for e in 0..per_case {
                        for case in &mut mine {
                            events.push(case.write(store, authors, e));
                        }
                    }
                    let keys: Vec<_> = mine.into_iter().map(|c| (c.case, c.key)).collect();
                    (keys, events)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let mut keys = std::collections::BTreeMap::new();
    let mut events = Vec::new();
    for (k, e) in out.drain(..) {
        keys.extend(k);
        events.extend(e);
    }
    events.sort_by_key(|(position, ..)| *position);
    // The server's share of a sync: every event read back from the log,
    // in the pages the sync's frames carry (the server's frame budget).
    let start = Instant::now();
    let (mut after, mut read) = (0, 0);
    loop {
        let page = store
            .case_updates(after, hotline_proto::frame::MAX_FRAME_LEN - 4096)
            .expect("read back");
        read += page.updates.len();
        after = page.cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(read, events.len());
    println!(
        "the server's share: reading them back from its log in sync pages: {}",
        ms(start.elapsed())
    );
    (
        keys,
        events
            .into_iter()
            .map(|(_, event, key, case)| (event, key, case))
            .collect(),
    )
}

/// One case being written.
struct CaseWriter {
    n: usize,
    case: CaseId,
    key: CaseKey,
    /// The newest value of each field (its event id), named in `based_on`.
    previous: std::collections::BTreeMap<u32, [u8; 16]>,
}

impl CaseWriter {
    fn new(n: usize) -> CaseWriter {
        let mut id = [0u8; 16];
        hotline_proto::identity::fill_random(&mut id).expect("randomness");
        let mut key = [0u8; 32];
        hotline_proto::identity::fill_random(&mut key).expect("randomness");
        CaseWriter {
            n,
            case: CaseId::from_bytes(id),
            key: CaseKey::from_bytes(key),
            previous: Default::default(),
        }
    }

    /// The case's event `e` (the first opens it), sealed by one of the
    /// authors in turn and stored: its position, the event, its author's
    /// key and its case.
    fn write(
        &mut self,
        store: &LogStore,
        authors: &[Author],
        e: usize,
    ) -> (u64, SignedCaseEvent, IdentityPublicKey, CaseId) {
        let author = &authors[(self.n + e) % authors.len()];
        let mut event_id = [0u8; 16];
        hotline_proto::identity::fill_random(&mut event_id).expect("randomness");
        let field = if e.is_multiple_of(5) {
            case_field::SUMMARY
        } else {
            case_field::REFERENCE
        };
        let content = CaseEventContent {
            timestamp: hotline_server::unix_now(),
            changes: vec![FieldChange {
                entity: entity::CASE,
                entity_id: Vec::new().into(),
                field,
                value: Some(FieldValue {
                    kind: Some(FieldValueKind::Text(format!(
                        "case {}, version {e}",
                        self.n
                    ))),
                }),
                based_on: self
                    .previous
                    .get(&field)
                    .iter()
                    .map(|p| p.to_vec().into())
                    .collect(),
            }],
            note: "a note of ordinary length, as staff write them after a call".into(),
            ..Default::default()
        };
        let draft = EventDraft {
            case_id: self.case,
            event_id,
            roster_version: 1,
            epoch: 1,
            control: CaseControl {
                state: (e == 0).then_some(CaseState::Open),
                ..CaseControl::default()
            },
        };
        let event = seal(
            &author.key,
            &self.key,
            &draft,
            &content,
            &mut SystemRandomness,
        )
        .expect("sealed");
        let header = event.header_unverified().expect("header");
        let (position, duplicate) = store
            .append_case_event(
                event.clone(),
                header,
                author.role,
                hotline_server::unix_now(),
            )
            .expect("stored")
            .expect("accepted");
        assert!(!duplicate);
        self.previous.insert(field, event_id);
        (position, event, author.key.public_key(), self.case)
    }
}

/// Starts the server again on its data directory and port.
async fn start_again(config: &Config, master: &KeySource) -> RunningServer {
    for _ in 0..50 {
        match RunningServer::start(config.clone(), master).await {
            Ok(s) => return s,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the server did not start again");
}

/// The machine's load average over the last minute.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
