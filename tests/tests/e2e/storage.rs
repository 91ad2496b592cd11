//! The store on disk: segment files, tamper evidence and damage named
//! without a byte changed, torn writes set aside, the snapshot cache
//! rebuilt, wrong keys, no plaintext, reopen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hotline_proto::Role;
use hotline_server::domain::devices::InviteRecord;
use hotline_server::log::keys::{KeySource, generate_key_file};
use hotline_server::log::segment::{self, SegmentHeader};
use hotline_server::store::{Create, LogStore, OpenError, open_keys, verify_store};

/// A store with `n` invites, closed cleanly. Returns the data directory and key.
pub fn build_store(root: &Path, n: usize) -> (PathBuf, KeySource) {
    build_store_with(root, n, 64 << 20)
}

/// Opens the store as the server does at start-up.
pub fn start_up(data: &Path, key: &KeySource) -> Result<LogStore, OpenError> {
    let keys = open_keys(data, key, Create::Never)?;
    LogStore::open(data, keys, 4 << 20)
}

/// The sequence number verification reports as the first bad record.
fn first_bad(data: &Path, key: &KeySource) -> Option<u64> {
    match verify_store(data, key, 4 << 20, None) {
        Ok(_) => None,
        Err(OpenError::Log(hotline_server::log::LogError::Tampered { seq, .. })) => Some(seq),
        Err(other) => panic!("verification failed with an unexpected error: {other}"),
    }
}

/// A store with `n` invites written in segments of `segment_bytes`,
/// closed cleanly.
pub fn build_store_with(root: &Path, n: usize, segment_bytes: u64) -> (PathBuf, KeySource) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let key_path = root.join("master.key");
    generate_key_file(&key_path).expect("key");
    let key = KeySource::File(key_path);
    let keys = open_keys(&data, &key, Create::IfMissing(Default::default())).expect("keys");
    let store = LogStore::open_with(&data, keys, 4 << 20, segment_bytes).expect("open");
    for i in 0..n {
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&(i as u64).to_be_bytes());
        store
            .put_invite(
                digest,
                &InviteRecord {
                    role: Role::Officer,
                    created_at: i as u64,
                    expires_at: u64::MAX,
                    used_at: None,
                    bootstrap: None,
                },
            )
            .expect("append");
    }
    store.close().expect("close");
    (data, key)
}

/// The segment files of a data directory, oldest first.
pub fn segment_files(data: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(segment::parse_file_name)
                .is_some()
        })
        .collect();
    out.sort();
    out
}

/// Frames as (kind, seq, payload).
type Frames = Vec<(u8, u64, Vec<u8>)>;

/// Every frame of every segment, as (kind, seq, payload), and the store id.
fn read_frames(data: &Path) -> (Frames, [u8; 16]) {
    let mut frames = Vec::new();
    let mut store_id = None;
    for path in segment_files(data) {
        let bytes = std::fs::read(&path).expect("read");
        store_id = Some(SegmentHeader::parse(&bytes).expect("header").store_id);
        let (found, end) = segment::parse_frames(&bytes);
        assert_eq!(end, segment::End::Clean);
        frames.extend(
            found
                .into_iter()
                .map(|f| (f.kind, f.seq, bytes[f.payload].to_vec())),
        );
    }
    (frames, store_id.expect("a segment"))
}

/// Rewrites the log as one segment holding `frames`, with valid
/// checksums: what an attacker who knows the format can do.
fn write_frames(data: &Path, store_id: [u8; 16], frames: &[(u8, u64, Vec<u8>)]) {
    for path in segment_files(data) {
        std::fs::remove_file(path).expect("rm");
    }
    let mut bytes = SegmentHeader {
        store_id,
        first_seq: 1,
    }
    .to_bytes();
    for (kind, seq, payload) in frames {
        segment::encode_frame(*kind, *seq, payload, &mut bytes);
    }
    std::fs::write(data.join("log").join(segment::file_name(1)), bytes).expect("write");
}

/// Applies `edit` to the log's frames, as an attacker with the disk would.
fn edit_frames(data: &Path, edit: impl FnOnce(&mut Frames)) {
    let (mut frames, store_id) = read_frames(data);
    edit(&mut frames);
    write_frames(data, store_id, &frames);
}

fn record_at(frames: &[(u8, u64, Vec<u8>)], seq: u64) -> usize {
    frames
        .iter()
        .position(|(k, s, _)| *k == segment::KIND_RECORD && *s == seq)
        .expect("record present")
}

/// Every file under `dir`, with its bytes.
pub fn snapshot_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

#[test]
fn a_reopened_store_has_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store(dir.path(), 2500);
    let state = start_up(&data, &key).expect("reopens").state();
    assert_eq!(state.invites.len(), 2500);
    for i in 0..2500u64 {
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&i.to_be_bytes());
        assert_eq!(state.invites[&digest].created_at, i);
    }
    let report = verify_store(&data, &key, 4 << 20, None).expect("verifies");
    assert_eq!(report.verified.records, 2500);
    assert!(
        report.verified.checkpoints >= 3,
        "checkpoints: {}",
        report.verified.checkpoints
    );
    assert_eq!(
        report.verified.last_checkpoint_seq, 2500,
        "close signs the head"
    );
}

#[test]
fn logical_edits_of_the_segments_are_detected_at_the_first_bad_record() {
    type Edit = Box<dyn Fn(&mut Frames)>;
    let cases: Vec<(&str, u64, Edit)> = vec![
        (
            "changed",
            40,
            Box::new(|f: &mut Frames| {
                let i = record_at(f, 40);
                let last = f[i].2.len() - 1;
                f[i].2[last] ^= 1;
            }),
        ),
        (
            "deleted",
            40,
            Box::new(|f: &mut Frames| {
                let i = record_at(f, 40);
                f.remove(i);
            }),
        ),
        (
            "deleted, later records renumbered",
            40,
            Box::new(|f: &mut Frames| {
                let i = record_at(f, 40);
                f.remove(i);
                for frame in f.iter_mut().skip(i) {
                    if frame.0 == segment::KIND_RECORD {
                        frame.1 -= 1;
                    }
                }
            }),
        ),
        (
            "reordered",
            40,
            Box::new(|f: &mut Frames| {
                let (a, b) = (record_at(f, 40), record_at(f, 41));
                let pa = f[a].2.clone();
                f[a].2 = f[b].2.clone();
                f[b].2 = pa;
            }),
        ),
        (
            "frames swapped",
            40,
            Box::new(|f: &mut Frames| {
                let (a, b) = (record_at(f, 40), record_at(f, 41));
                f.swap(a, b);
            }),
        ),
        (
            "duplicated",
            41,
            Box::new(|f: &mut Frames| {
                let (a, b) = (record_at(f, 40), record_at(f, 41));
                f[b].2 = f[a].2.clone();
            }),
        ),
        (
            "duplicated at the end",
            101,
            Box::new(|f: &mut Frames| {
                let a = record_at(f, 100);
                let copy = f[a].2.clone();
                f.push((segment::KIND_RECORD, 101, copy));
            }),
        ),
        (
            "tail deleted",
            99,
            Box::new(|f: &mut Frames| {
                let i = record_at(f, 99);
                f.truncate(i);
            }),
        ),
        (
            "checkpoint forged",
            100,
            Box::new(|f: &mut Frames| {
                let i = f
                    .iter()
                    .rposition(|(k, s, _)| *k == segment::KIND_CHECKPOINT && *s == 100)
                    .expect("final checkpoint");
                f[i].2[20] ^= 1;
            }),
        ),
    ];
    for (name, expected, edit) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, key) = build_store(dir.path(), 100);
        edit_frames(&data, |f| edit(f));
        assert_eq!(first_bad(&data, &key), Some(expected), "{name}: verify");
        let err = start_up(&data, &key).expect_err(name);
        assert!(
            err.to_string().contains("fails verification"),
            "{name}: start-up says {err}"
        );
    }
}

/// Flips one bit of `path` at `at`.
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}

/// Verify and start-up both refuse the store in `data`, naming a record
/// and `segment`, and change no byte and no file name.
fn refused_naming(data: &Path, key: &KeySource, segment: &Path, what: &str) -> u64 {
    let name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    let before = snapshot_files(data);
    let err = verify_store(data, key, 4 << 20, None).expect_err(what);
    let OpenError::Log(hotline_server::log::LogError::Tampered { seq, .. }) = &err else {
        panic!("{what}: verify says {err}")
    };
    let seq = *seq;
    let text = err.to_string();
    assert!(
        text.contains(&name) && text.contains("offset") && text.contains(&format!("record {seq}")),
        "{what}: verify says {text}"
    );
    assert!(
        snapshot_files(data) == before,
        "{what}: verify changed the data directory"
    );
    let err = start_up(data, key).expect_err(what).to_string();
    assert!(
        err.contains(&name) && err.contains(&format!("record {seq}")),
        "{what}: start-up says {err}"
    );
    assert!(
        snapshot_files(data) == before,
        "{what}: start-up changed the data directory"
    );
    seq
}

#[test]
fn a_flipped_byte_in_a_segment_is_named_changes_nothing_and_restoring_it_makes_the_store_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store_with(dir.path(), 300, 8 << 10);
    let segments = segment_files(&data);
    assert!(segments.len() >= 4, "several segments: {}", segments.len());
    let pristine = snapshot_files(&data.join("log"));
    let whole = |why: &str| {
        let report = verify_store(&data, &key, 4 << 20, None).expect(why);
        assert_eq!(report.verified.records, 300, "{why}");
        assert_eq!(
            start_up(&data, &key).expect(why).state().invites.len(),
            300,
            "{why}"
        );
    };

    // The drill: one byte in the middle of a closed segment.
    let closed = &segments[1];
    let middle = std::fs::read(closed).expect("read").len() / 2;
    flip(closed, middle);
    let seq = refused_naming(&data, &key, closed, "closed segment");
    let first_in_it =
        segment::parse_file_name(closed.file_name().and_then(|n| n.to_str()).expect("name"))
            .expect("seg");
    assert!(
        seq > first_in_it,
        "the first bad record is inside that segment: {seq}"
    );
    let said = verify_store(&data, &key, 4 << 20, None)
        .expect_err("damaged")
        .to_string();
    assert!(
        said.contains(&format!("records 1 to {} before it verify", seq - 1)),
        "verify inspects the records before the damage: {said}"
    );
    flip(closed, middle);
    whole("the byte restored");

    // One byte of the last frame of the newest segment (the final checkpoint).
    let newest = segments.last().expect("newest");
    let last = std::fs::read(newest).expect("read").len() - 1;
    flip(newest, last);
    refused_naming(&data, &key, newest, "newest segment");
    flip(newest, last);
    whole("the byte restored");

    // A segment header.
    flip(&segments[2], 20);
    refused_naming(&data, &key, &segments[2], "segment header");
    flip(&segments[2], 20);

    // Anywhere in any closed segment: always named, never a change.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..12 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let seg = &segments[(state % (segments.len() as u64 - 1)) as usize];
        let at = ((state >> 20) % std::fs::read(seg).expect("read").len() as u64) as usize;
        flip(seg, at);
        refused_naming(&data, &key, seg, &format!("byte {at}"));
        flip(seg, at);
    }
    assert!(snapshot_files(&data.join("log")) == pristine);
    whole("every byte restored");
}

#[test]
fn a_missing_segment_is_named_and_putting_it_back_makes_the_store_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store_with(dir.path(), 200, 8 << 10);
    let segments = segment_files(&data);
    let kept = std::fs::read(&segments[1]).expect("read");
    std::fs::remove_file(&segments[1]).expect("rm");
    let err = refused_naming(&data, &key, &segments[2], "missing segment");
    assert!(err > 1);
    let text = verify_store(&data, &key, 4 << 20, None)
        .expect_err("missing")
        .to_string();
    assert!(text.contains("segment is missing"), "{text}");
    std::fs::write(&segments[1], kept).expect("restore");
    assert_eq!(
        start_up(&data, &key).expect("whole").state().invites.len(),
        200
    );
}

#[test]
fn an_incomplete_final_write_is_set_aside_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store(dir.path(), 50);
    let newest = segment_files(&data).pop().expect("segment");
    let written = std::fs::read(&newest).expect("read");
    // A crash in the middle of a write: a frame cut short.
    let mut frame = Vec::new();
    segment::encode_frame(segment::KIND_RECORD, 51, &[0x5a; 300], &mut frame);
    let torn = &frame[..frame.len() - 123];
    let mut bytes = written.clone();
    bytes.extend_from_slice(torn);
    std::fs::write(&newest, &bytes).expect("write");

    // verify reports it and writes nothing.
    let before = snapshot_files(&data);
    let report = verify_store(&data, &key, 4 << 20, None).expect("verifies");
    assert_eq!(report.verified.records, 50);
    assert_eq!(report.torn_tail.map(|t| t.bytes), Some(torn.len() as u64));
    assert!(snapshot_files(&data) == before, "verify wrote");

    // A start keeps the bytes aside, cuts them off, and serves everything.
    let store = start_up(&data, &key).expect("starts");
    assert_eq!(store.state().invites.len(), 50);
    let aside: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("torn-after-50-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).expect("aside"), torn);
    assert_eq!(std::fs::read(&newest).expect("segment"), written);
    // And goes on writing.
    store
        .put_invite(
            [0xee; 32],
            &InviteRecord {
                role: Role::Officer,
                created_at: 1,
                expires_at: u64::MAX,
                used_at: None,
                bootstrap: None,
            },
        )
        .expect("append");
    drop(store);
    assert_eq!(
        start_up(&data, &key)
            .expect("reopens")
            .state()
            .invites
            .len(),
        51
    );
    assert_eq!(
        verify_store(&data, &key, 4 << 20, None)
            .expect("verifies")
            .verified
            .records,
        51
    );
}

#[test]
fn a_lost_or_damaged_snapshot_cache_costs_a_rebuild_never_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store(dir.path(), 200);
    let expected = {
        let store = start_up(&data, &key).expect("opens");
        assert_eq!(store.replayed_at_open(), 0, "the snapshot holds it all");
        store.state()
    };
    // Deleted.
    std::fs::remove_dir_all(data.join("cache")).expect("rm");
    let store = start_up(&data, &key).expect("rebuilds");
    assert_eq!(store.replayed_at_open(), 200);
    assert_eq!(store.state(), expected);
    store.close().expect("close");
    drop(store);

    // Bytes flipped all over sled's files: verify does not look at them
    // (and changes nothing); a start serves the same state.
    let cache_files: Vec<PathBuf> = snapshot_files(&data.join("cache")).into_keys().collect();
    for path in &cache_files {
        let mut bytes = std::fs::read(path).expect("read");
        for at in (0..bytes.len()).step_by(97) {
            bytes[at] ^= 0x41;
        }
        std::fs::write(path, bytes).expect("write");
    }
    let before = snapshot_files(&data);
    verify_store(&data, &key, 4 << 20, None).expect("the log is sound");
    assert!(snapshot_files(&data) == before, "verify wrote");
    let store = start_up(&data, &key).expect("starts");
    assert_eq!(store.state(), expected);
    drop(store);
    // Whatever sled made of it, nothing was deleted: a cache that did not
    // open or verify is kept beside the new one.
    let names: Vec<String> = std::fs::read_dir(&data)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "cache"), "{names:?}");
}

#[test]
fn verify_of_a_missing_directory_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nonexistent");
    let key = KeySource::File(dir.path().join("master.key"));
    let err = verify_store(&missing, &key, 4 << 20, None).expect_err("missing");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!err.to_string().contains("backup"), "{err}");
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn wrong_missing_and_truncated_master_keys_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store(dir.path(), 50);
    let KeySource::File(good_path) = &key else {
        unreachable!("build_store uses a key file")
    };
    let good = std::fs::read_to_string(good_path).expect("key");
    let other = dir.path().join("other.key");
    generate_key_file(&other).expect("key");
    let truncated = dir.path().join("truncated.key");
    std::fs::write(&truncated, &good.as_bytes()[..40]).expect("write");
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, b"").expect("write");

    let before = snapshot_files(&data);
    let cases: Vec<(KeySource, &str)> = vec![
        (KeySource::File(other), "wrong master key"),
        (
            KeySource::File(dir.path().join("missing.key")),
            "cannot read the master key file",
        ),
        (KeySource::File(truncated), "truncated or not a master key"),
        (KeySource::File(empty), "truncated or not a master key"),
        (
            KeySource::Hex(zeroize::Zeroizing::new("00".repeat(32))),
            "wrong master key",
        ),
        (
            KeySource::Passphrase(zeroize::Zeroizing::new("a long passphrase here".into())),
            "comes from a key file",
        ),
    ];
    for (source, says) in cases {
        let err = start_up(&data, &source).expect_err("refused");
        assert!(err.to_string().contains(says), "{source:?}: {err}");
        let err = verify_store(&data, &source, 4 << 20, None).expect_err("refused");
        assert!(err.to_string().contains(says), "{source:?}: {err}");
        assert!(
            snapshot_files(&data) == before,
            "{source:?}: the store's bytes changed"
        );
    }
    // The right key still opens it.
    assert_eq!(
        start_up(&data, &key).expect("opens").state().invites.len(),
        50
    );
}

#[test]
fn no_plaintext_reaches_the_disk() {
    use hotline_server::log::segments::{Mode, SegmentEngine};
    use hotline_server::log::{Log, RecordKey};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let key = KeySource::File(dir.path().join("master.key"));
    generate_key_file(&dir.path().join("master.key")).expect("key");
    let keys = open_keys(&data, &key, Create::IfMissing(Default::default())).expect("keys");
    let engine = Arc::new(
        SegmentEngine::open(
            &data.join("log"),
            keys.store_id(),
            Mode::Writable {
                max_segment_bytes: 4096,
            },
        )
        .expect("engine"),
    );
    let (log, _) = Log::open(engine, Arc::new(keys), &data, &[]).expect("log");
    let marker = b"MARKER-7f3a-Maria-Gonzalez-Tegucigalpa";
    let case = log.case_key(b"case-42").expect("case key");
    for i in 0..200 {
        let mut event = marker.to_vec();
        event.extend_from_slice(format!(" #{i}").as_bytes());
        let key = if i % 2 == 0 {
            RecordKey::Main
        } else {
            RecordKey::Case(case)
        };
        log.append(key, &event).expect("append");
    }
    log.close().expect("close");
    drop(log);
    for (path, bytes) in snapshot_files(&data) {
        for needle in [&marker[..], b"MARKER", b"Maria", b"Tegucigalpa", b"case-42"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?} in clear",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn erasing_a_case_shreds_its_records_and_the_chain_still_verifies() {
    use hotline_server::log::segments::{Mode, SegmentEngine};
    use hotline_server::log::{Entry, Log, RecordKey};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    generate_key_file(&dir.path().join("master.key")).expect("key");
    let key = KeySource::File(dir.path().join("master.key"));
    let open = || {
        let keys = open_keys(&data, &key, Create::IfMissing(Default::default())).expect("keys");
        let engine = Arc::new(
            SegmentEngine::open(
                &data.join("log"),
                keys.store_id(),
                Mode::Writable {
                    max_segment_bytes: 4096,
                },
            )
            .expect("engine"),
        );
        Log::open(engine, Arc::new(keys), &data, &[]).expect("log")
    };
    let (log, _) = open();
    let case_a = log.case_key(b"case-a").expect("key");
    let case_b = log.case_key(b"case-b").expect("key");
    let a1 = log
        .append(RecordKey::Case(case_a), b"a: arrested at home")
        .expect("append");
    let m = log.append(RecordKey::Main, b"main record").expect("append");
    let b1 = log
        .append(RecordKey::Case(case_b), b"b: relocation to host")
        .expect("append");
    let a2 = log
        .append(RecordKey::Case(case_a), b"a: lawyer paid")
        .expect("append");
    assert_eq!(
        log.read(a1).expect("read"),
        Some(Entry::Event(b"a: arrested at home".to_vec()))
    );

    log.erase_case(case_a).expect("erase");
    assert_eq!(log.read(a1).expect("read"), Some(Entry::Shredded));
    assert_eq!(log.read(a2).expect("read"), Some(Entry::Shredded));
    assert_eq!(
        log.read(m).expect("read"),
        Some(Entry::Event(b"main record".to_vec()))
    );
    assert_eq!(
        log.read(b1).expect("read"),
        Some(Entry::Event(b"b: relocation to host".to_vec()))
    );
    log.close().expect("close");
    drop(log);

    // After a restart: still shredded, still verifying, other cases intact.
    let report = verify_store(&data, &key, 4 << 20, None).expect("the chain still verifies");
    assert_eq!(report.verified.shredded, 2);
    let (log, verified) = open();
    assert_eq!(verified.records, 5);
    assert_eq!(log.read(a1).expect("read"), Some(Entry::Shredded));
    assert_eq!(
        log.read(b1).expect("read"),
        Some(Entry::Event(b"b: relocation to host".to_vec()))
    );
    log.close().expect("close");
    drop(log);

    // Losing the keyring is not an erasure: case b's records have no
    // erasure on record, so this is reported as damage.
    std::fs::remove_file(data.join("keyring")).expect("remove");
    let err = verify_store(&data, &key, 4 << 20, None).expect_err("damage");
    assert!(
        err.to_string().contains("missing from the keyring"),
        "{err}"
    );
}

#[tokio::test]
async fn a_seized_data_directory_shows_no_keys_or_ids_in_clear() {
    let mut server = hotline_tests::TestServer::start().await;
    let (admin, session) = server.enroll(Role::Admin).await;
    let (defender, _) = server.enroll(Role::Defender).await;
    session.revoke(defender.device_id()).await.expect("revoke");
    let data = server.config().data_dir.clone();
    server.stop().await;
    for (path, bytes) in snapshot_files(&data) {
        assert!(
            !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
            "{} holds a private key in clear",
            path.display()
        );
        for who in [&admin, &defender] {
            for needle in [
                &who.public_key().as_bytes()[..],
                &who.device_id().as_bytes()[..],
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds a device key or id in clear",
                    path.display()
                );
            }
        }
    }
    // And the store still has them, for whoever holds the key.
    server.start_again().await;
    let session = hotline_client::connection::authenticate(&server.info(), &admin)
        .await
        .expect("admin authenticates");
    assert_eq!(session.devices().await.expect("list").len(), 2);
}

#[test]
fn recover_truncate_after_copy_keeps_a_copy_of_what_it_cuts_and_leaves_a_sound_store() {
    use hotline_server::store::{plan_recovery, recover_truncate_after_copy};
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store_with(dir.path(), 300, 8 << 10);
    let segments = segment_files(&data);
    let damaged = &segments[2];
    let middle = std::fs::read(damaged).expect("read").len() / 2;
    flip(damaged, middle);
    let bad_bytes = std::fs::read(damaged).expect("read");
    let later: Vec<(PathBuf, Vec<u8>)> = segments[3..]
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).expect("read")))
        .collect();
    let seq = refused_naming(&data, &key, damaged, "before recovery");

    let plan = plan_recovery(&data, &key).expect("plans").expect("damage");
    let report = recover_truncate_after_copy(&data, &key, 4 << 20, &plan).expect("recovers");
    assert_eq!(report.first_cut, Some(seq));
    assert_eq!(report.kept, seq - 1);
    let copy = report.copied_to.expect("a copy");
    // The segment up to the cut plus the copy is the damaged segment, and
    // every later segment is in the copy, whole.
    let kept = std::fs::read(damaged).expect("read");
    let name = damaged.file_name().and_then(|n| n.to_str()).expect("name");
    let tail = std::fs::read(copy.join(format!("{name}.from-{}", kept.len()))).expect("copy");
    assert_eq!([kept, tail].concat(), bad_bytes);
    for (path, bytes) in &later {
        assert!(!path.exists(), "{} still in the log", path.display());
        let copied = copy.join(path.file_name().expect("name"));
        assert_eq!(&std::fs::read(copied).expect("copied"), bytes);
    }
    // What remains verifies and serves, and takes new records.
    let store = start_up(&data, &key).expect("starts");
    assert_eq!(store.state().invites.len() as u64, seq - 1);
    store
        .put_invite(
            [0xee; 32],
            &InviteRecord {
                role: Role::Officer,
                created_at: 1,
                expires_at: u64::MAX,
                used_at: None,
                bootstrap: None,
            },
        )
        .expect("append");
    drop(store);
    assert_eq!(
        verify_store(&data, &key, 4 << 20, None)
            .expect("verifies")
            .verified
            .records,
        seq
    );
}

#[test]
fn a_start_refused_for_a_missing_head_file_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store(dir.path(), 30);
    std::fs::remove_file(data.join("chain.head")).expect("rm");
    let before = snapshot_files(&data);
    let err = start_up(&data, &key).expect_err("refused");
    assert!(
        err.to_string().contains("chain.head (") && err.to_string().contains(") is missing"),
        "{err}"
    );
    assert!(
        snapshot_files(&data) == before,
        "a file was created or changed"
    );
}

#[test]
fn a_start_refused_for_a_missing_log_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store(dir.path(), 30);
    let log = data.join("log");
    let moved = dir.path().join("log-elsewhere");
    std::fs::rename(&log, &moved).expect("mv");
    let before = snapshot_files(&data);
    let err = start_up(&data, &key).expect_err("refused");
    assert!(err.to_string().contains("are missing"), "{err}");
    assert!(!log.exists(), "the log directory was created");
    assert!(snapshot_files(&data) == before);
    std::fs::rename(&moved, &log).expect("mv back");
    assert_eq!(
        start_up(&data, &key).expect("whole").state().invites.len(),
        30
    );
}

/// The data directory as a crash would leave it at this moment (every
/// file but the snapshot cache, which a start rebuilds), copied to `to`.
fn crash_image(data: &Path, to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                if entry.file_name() != "cache" {
                    copy(&entry.path(), &target);
                }
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    copy(data, to);
}

/// The newest segment, and where its last record frame starts and which
/// record it holds.
fn last_record_frame(data: &Path) -> (PathBuf, usize, u64) {
    let newest = segment_files(data).pop().expect("segment");
    let bytes = std::fs::read(&newest).expect("read");
    let (frames, end) = segment::parse_frames(&bytes);
    assert_eq!(end, segment::End::Clean);
    let last = frames
        .iter()
        .rev()
        .find(|f| f.kind == segment::KIND_RECORD)
        .expect("a record");
    (newest, last.offset as usize, last.seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_saved_just_before_the_server_goes_quiet_is_protected_by_chain_head() {
    let server = hotline_tests::TestServer::start().await;
    let data = server.config().data_dir.clone();
    let (_, defender) = server.enroll(Role::Defender).await;
    // An SOS, acknowledged, and then nothing more is written.
    defender
        .raise_alert_with(hotline_proto::alert::Priority::Immediate, None)
        .await
        .expect("raised");
    let (_, _, last_seq) = last_record_frame(&data);
    // Within about a second of going quiet, the server signs a checkpoint
    // of it into chain.head.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, _, still_last) = last_record_frame(&data);
    assert_eq!(still_last, last_seq, "nothing else was written");
    let keys = open_keys(&data, server.key(), Create::Never).expect("keys");
    let hotline_server::log::head::Head::Checkpoint(cp) =
        hotline_server::log::read_head(&keys, &data).expect("head")
    else {
        panic!("chain.head holds no checkpoint")
    };
    assert_eq!(
        cp.seq, last_seq,
        "chain.head covers the last acknowledged record"
    );

    // The server crashes now; then the SOS's sector reads back as zeros
    // (the whole end of the file from its frame on): not an unfinished
    // write to cut off, but damage, refused without a byte changed.
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("data");
    crash_image(&data, &image);
    let (newest, at, seq) = last_record_frame(&image);
    let mut bytes = std::fs::read(&newest).expect("read");
    for b in &mut bytes[at..] {
        *b = 0;
    }
    std::fs::write(&newest, &bytes).expect("write");
    let before = snapshot_files(&image);
    let key = server.key().clone();
    let err = start_up(&image, &key)
        .expect_err("refused: an acknowledged SOS is missing")
        .to_string();
    assert!(
        err.contains(&format!("record {seq}")) || err.contains(&format!("{seq}..")),
        "{err}"
    );
    assert!(
        snapshot_files(&image) == before,
        "the start changed nothing"
    );
    assert!(
        !std::fs::read_dir(image.join("log")).expect("dir").any(|e| e
            .expect("e")
            .file_name()
            .to_string_lossy()
            .starts_with("torn-")),
        "nothing was set aside as a torn write"
    );
}

#[test]
fn a_flipped_bit_in_the_last_frames_length_is_damage_named_never_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store(dir.path(), 50);
    // A crash image whose last frame is record 51 (acknowledged, and
    // covered by a checkpoint only in chain.head or not at all).
    let store = start_up(&data, &key).expect("open");
    store
        .put_invite(
            [0xee; 32],
            &InviteRecord {
                role: Role::Defender,
                created_at: 1,
                expires_at: u64::MAX,
                used_at: None,
                bootstrap: None,
            },
        )
        .expect("saved");
    let image_dir = tempfile::tempdir().expect("tempdir");
    let image = image_dir.path().join("data");
    crash_image(&data, &image);
    drop(store);
    let (newest, at, seq) = last_record_frame(&image);
    assert_eq!(seq, 51);
    let whole = std::fs::read(&newest).expect("read");
    for bit in [4, 12, 16] {
        // The length grows past the end of the file (up to 64 KiB more).
        let mut bytes = whole.clone();
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("len"));
        bytes[at..at + 4].copy_from_slice(&(len ^ (1 << bit)).to_le_bytes());
        std::fs::write(&newest, &bytes).expect("write");
        let found = refused_naming(&image, &key, &newest, &format!("len bit {bit}"));
        assert_eq!(found, 51);
        let err = start_up(&image, &key).expect_err("refused").to_string();
        assert!(
            err.contains("header's checksum") && err.contains(&format!("offset {at}")),
            "{err}"
        );
    }
    std::fs::write(&newest, &whole).expect("restore");
    assert_eq!(
        start_up(&image, &key).expect("whole").state().invites.len(),
        51
    );
}

#[test]
fn a_newest_segment_whose_header_reads_back_as_zeros_is_damage_when_frames_follow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, key) = build_store_with(dir.path(), 300, 8 << 10);
    let newest = segment_files(&data).pop().expect("segment");
    let mut bytes = std::fs::read(&newest).expect("read");
    for b in &mut bytes[..segment::HEADER_LEN] {
        *b = 0;
    }
    std::fs::write(&newest, &bytes).expect("write");
    refused_naming(&data, &key, &newest, "zeroed header");
}
