//! Faults injected into the log's file operations, not only crashes
//! (`hotline_server::log::fs::FaultFs`): each operation failing with `EIO`
//! or `ENOSPC` at a random point of a stream of concurrent appends, torn
//! writes (a write cut at a random byte, then the process "crashes"), and
//! flipped bytes in closed segments. In every case: nothing acknowledged
//! is lost, nothing unacknowledged is reported as saved, and damage is
//! named.
//!
//! The points are drawn from a seeded generator; the seed is printed
//! (run with `--nocapture`) and `HOTLINE_FAULT_SEED=<seed>` repeats a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hotline_server::log::engine::EngineError;
use hotline_server::log::fs::{self, Fault, FaultFs, Fs, Op, SeededRng};
use hotline_server::log::keys::{self, KdfParams, KeySource, StoreKeys};
use hotline_server::log::segments::{Mode, SegmentEngine};
use hotline_server::log::{Entry, Log, RecordKey};

/// Small segments, so that a stream starts new ones (open, write, sync,
/// directory sync) as well as appending.
const SEGMENT_BYTES: u64 = 4096;
const WRITERS: usize = 4;
const PER_WRITER: usize = 15;

fn keys(dir: &Path) -> Arc<StoreKeys> {
    let key = dir.join("master.key");
    if !key.exists() {
        keys::generate_key_file(&key).expect("key");
    }
    let source = KeySource::File(key);
    let k = if keys::exists(dir) {
        keys::open(dir, &source).expect("open").1
    } else {
        keys::create(dir, &source, KdfParams::default(), 1)
            .expect("create")
            .1
    };
    Arc::new(k)
}

/// Opens the log in `dir` as the store does: the segments, then the chain
/// verified against `chain.head`, then any torn tail set aside.
fn open(dir: &Path, fs: Fs) -> (Arc<SegmentEngine>, Log) {
    let keys = keys(dir);
    let engine = Arc::new(
        SegmentEngine::open_with_fs(
            &dir.join("log"),
            keys.store_id(),
            Mode::Writable {
                max_segment_bytes: SEGMENT_BYTES,
            },
            fs.clone(),
        )
        .expect("the segments open"),
    );
    let (log, _) = Log::open_with_fs(engine.clone(), keys, dir, &[], fs).expect("the log opens");
    engine.set_torn_tail_aside().expect("torn tail set aside");
    (engine, log)
}

fn payload(writer: usize, i: usize) -> Vec<u8> {
    let mut p = format!("writer {writer} record {i} ").into_bytes();
    p.resize(200, b'.');
    p
}

/// What the writers were told.
#[derive(Debug, Default)]
struct Outcome {
    /// Acknowledged: sequence number -> payload.
    acked: BTreeMap<u64, Vec<u8>>,
    /// Refused (the append returned an error).
    refused: Vec<Vec<u8>>,
}

impl Outcome {
    fn record(&mut self, p: Vec<u8>, r: Result<u64, hotline_server::log::LogError>) {
        match r {
            Ok(seq) => {
                assert!(
                    self.acked.insert(seq, p).is_none(),
                    "sequence number {seq} acknowledged twice"
                );
            }
            Err(_) => self.refused.push(p),
        }
    }
}

/// `WRITERS` threads append `PER_WRITER` records each, at once (they
/// share group commits). `on_degraded` runs on this thread whenever the
/// log is degraded (a test lifts the fault and heals there).
fn stream(log: &Log, mut on_degraded: impl FnMut(&Log)) -> Outcome {
    let done = AtomicUsize::new(0);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let done = &done;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..PER_WRITER {
                        let p = payload(w, i);
                        let r = log.append(RecordKey::Main, &p);
                        out.push((p, r));
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    out
                })
            })
            .collect();
        while done.load(Ordering::SeqCst) < WRITERS {
            if log.degraded().is_some() {
                on_degraded(log);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect::<Vec<_>>()
    });
    let mut out = Outcome::default();
    for (p, r) in results {
        out.record(p, r);
    }
    out
}

/// Reopens `dir` with the real file system and checks: the store
/// verifies; every acknowledged record is there, at its sequence number;
/// a record that is there without having been acknowledged is one whose
/// append was refused, lies after every acknowledged one, and there are
/// at most `unacked_allowed` of them. Returns the records held.
fn check_reopened(dir: &Path, out: &Outcome, unacked_allowed: usize) -> BTreeMap<u64, Vec<u8>> {
    let (engine, log) = open(dir, fs::real());
    hotline_server::log::verify(engine.as_ref(), &keys(dir), dir, &[]).expect("the store verifies");
    let mut held = BTreeMap::new();
    for seq in 1..=log.head().0 {
        match log.read(seq).expect("read") {
            Some(Entry::Event(p)) => {
                held.insert(seq, p);
            }
            other => panic!("record {seq}: {other:?}"),
        }
    }
    for (seq, p) in &out.acked {
        assert_eq!(
            held.get(seq),
            Some(p),
            "acknowledged record {seq} lost after a reopen"
        );
    }
    let last_acked = out.acked.keys().last().copied().unwrap_or(0);
    let unacked: Vec<(&u64, &Vec<u8>)> = held
        .iter()
        .filter(|(seq, _)| !out.acked.contains_key(seq))
        .collect();
    for (seq, p) in &unacked {
        assert!(
            out.refused.contains(p),
            "record {seq} is in the log but its writer was never told anything"
        );
        assert!(
            **seq > last_acked,
            "record {seq} was refused, yet an acknowledged record ({last_acked}) chains after it"
        );
    }
    assert!(
        unacked.len() <= unacked_allowed,
        "{} refused records are in the log (allowed: {unacked_allowed})",
        unacked.len()
    );
    held
}

/// The files of the log directory that hold records (segments).
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seg-"))
        })
        .collect();
    names.sort();
    names
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// The log's files as a read-only open sees them while the log runs:
/// the number of records and whether bytes lie past the last whole frame.
fn as_on_disk(dir: &Path) -> (u64, bool) {
    let ro = SegmentEngine::open(&dir.join("log"), keys(dir).store_id(), Mode::ReadOnly)
        .expect("read-only open");
    let records = hotline_server::log::engine::LogEngine::last(&ro)
        .expect("last")
        .map_or(0, |(seq, _)| seq);
    (records, ro.torn_tail().is_some())
}

#[test]
fn each_operation_failing_with_eio_or_enospc_loses_nothing_acknowledged_and_heals() {
    let mut rng = SeededRng::from_env("each_operation_failing");
    // How many calls of each operation a stream surely makes (a group
    // commit is one write and one sync; a new segment is an open, a
    // write, a sync and a directory sync).
    let cases = [
        (Op::Write, 8),
        (Op::Sync, 8),
        (Op::Open, 2),
        (Op::SyncDir, 2),
    ];
    for (op, calls) in cases {
        for fault in [Fault::Eio, Fault::Enospc] {
            let sticky = rng.next_u64().is_multiple_of(2);
            let nth = rng.range(1, calls);
            let what = format!("{op:?} call {nth} fails with {fault:?} (sticky: {sticky})");
            let dir = tempfile::tempdir().expect("tempdir");
            let faults = FaultFs::new();
            let (engine, log) = open(dir.path(), faults.handle());
            if sticky {
                faults.fail_from(op, nth, fault);
            } else {
                faults.fail_once(op, nth, fault);
            }
            let mut heals = 0;
            let out = stream(&log, |log| {
                // The failed write is cut back at once: a read of the
                // files now (verify, backup) sees the durable records
                // and nothing past them.
                let (records, past_end) = as_on_disk(dir.path());
                assert_eq!(records, log.head().0, "{what}");
                // Only when the sync of the cut-back failed too may the
                // failed write's bytes still be there, overwritten with
                // zeros: an unfinished write, never read as a record.
                assert!(
                    !past_end || op == Op::Sync,
                    "{what}: bytes past the last durable record"
                );
                if sticky && op != Op::SyncDir {
                    // A disk full until freed: the heal's probe fails too.
                    assert!(!log.try_heal().expect("no damage"), "{what}: healed");
                    assert!(log.degraded().is_some());
                }
                faults.lift();
                if log.try_heal().expect("no damage") {
                    heals += 1;
                }
            });
            let fired = faults.injected();
            assert!(!fired.is_empty(), "{what}: never fired");
            assert!(fired.iter().all(|f| f.op == op), "{what}: {fired:?}");
            assert!(
                !out.refused.is_empty(),
                "{what}: no append was refused ({fired:?})"
            );
            // Writes resumed without a reopen.
            faults.lift();
            while log.degraded().is_some() {
                assert!(log.try_heal().expect("no damage"), "{what}");
                heals += 1;
            }
            assert!(heals > 0, "{what}");
            let after = log
                .append(RecordKey::Main, b"after the heal")
                .expect("writes resume");
            let mut out = out;
            out.acked.insert(after, b"after the heal".to_vec());
            drop(log);
            drop(engine);
            // Nothing refused is in the log: the failed batch was cut
            // back, and the chain head went back to the last durable
            // record, so later records overwrote its sequence numbers.
            let held = check_reopened(dir.path(), &out, 0);
            assert_eq!(held.len(), out.acked.len(), "{what}");
        }
    }
}

#[test]
fn a_sync_failure_whose_cut_back_fails_too_is_cut_by_the_heal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultFs::new();
    let (engine, log) = open(dir.path(), faults.handle());
    for i in 0..5 {
        log.append(RecordKey::Main, &payload(9, i))
            .expect("durable");
    }
    // fdatasync fails after the write reached the file, and cutting the
    // file back fails as well.
    faults.fail_once(Op::Sync, 1, Fault::Eio);
    faults.fail_once(Op::SetLen, 1, Fault::Enospc);
    let err = log
        .append(RecordKey::Main, b"never acknowledged")
        .expect_err("refused");
    assert!(err.to_string().contains("nothing was saved"), "{err}");
    // The rule that applies (docs/storage.md): the written frame of
    // record 6 could not be cut off, so it was overwritten with zeros in
    // place: a reader of the files (verify, backup) sees 5 records and an
    // unfinished write after them, never a record 6 whose writer was told
    // "nothing was saved" ...
    assert_eq!(as_on_disk(dir.path()), (5, true));
    // ... and the heal cuts it off before anything else.
    assert!(log.try_heal().expect("no damage"));
    assert_eq!(as_on_disk(dir.path()), (5, false));
    assert_eq!(
        log.append(RecordKey::Main, b"after").expect("resumes"),
        6,
        "the next record takes the lost one's number"
    );
    drop(log);
    drop(engine);
    let mut out = Outcome::default();
    for i in 0..5 {
        out.acked.insert(i as u64 + 1, payload(9, i));
    }
    out.acked.insert(6, b"after".to_vec());
    out.refused.push(b"never acknowledged".to_vec());
    let held = check_reopened(dir.path(), &out, 0);
    assert_eq!(held.len(), 6);
}

#[test]
fn a_crash_before_the_heal_never_keeps_a_record_whose_sync_and_cut_back_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultFs::new();
    let (engine, log) = open(dir.path(), faults.handle());
    let mut out = Outcome::default();
    for i in 0..5 {
        let p = payload(8, i);
        let r = log.append(RecordKey::Main, &p);
        out.record(p, r);
    }
    faults.fail_once(Op::Sync, 1, Fault::Enospc);
    faults.fail_once(Op::SetLen, 1, Fault::Enospc);
    let p = b"told: nothing was saved".to_vec();
    let r = log.append(RecordKey::Main, &p);
    assert!(r.is_err());
    out.record(p.clone(), r);
    // The process dies before the heal.
    faults.crash();
    drop(log);
    drop(engine);
    // The frame that could not be cut off was overwritten with zeros in
    // place: the next start finds an unfinished write after record 5 (set
    // aside, never damage) and holds no record its writer was told was
    // not saved.
    let held = check_reopened(dir.path(), &out, 0);
    assert_eq!(held.len(), 5);
    assert_eq!(held.get(&6), None);
    let aside: Vec<PathBuf> = std::fs::read_dir(dir.path().join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains("torn-after-5-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the unfinished write is set aside: {aside:?}"
    );
    // Named with a UTC time a person reads: torn-after-5-20261130T193105Z.bin.
    let name = aside[0].file_name().and_then(|n| n.to_str()).expect("name");
    let time = name
        .strip_prefix("torn-after-5-")
        .and_then(|n| n.strip_suffix(".bin"))
        .expect("the pattern");
    assert!(is_file_time(time), "{name}");
    assert!(
        std::fs::read(&aside[0])
            .expect("read")
            .iter()
            .all(|b| *b == 0),
        "only zeros were set aside"
    );
}

#[test]
fn a_crash_before_the_heal_can_keep_a_record_whose_sync_cut_back_and_overwrite_all_failed() {
    // The residual case (docs/storage.md, "What is not promised"): when
    // the overwrite with zeros fails as well, the frame may stay whole in
    // the file, and a start after a crash holds it as record 6, after
    // every acknowledged record. Its writer was told it was not saved and
    // retries (an SOS is then stored a second time, never lost).
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultFs::new();
    let (engine, log) = open(dir.path(), faults.handle());
    let mut out = Outcome::default();
    for i in 0..5 {
        let p = payload(7, i);
        let r = log.append(RecordKey::Main, &p);
        out.record(p, r);
    }
    faults.fail_once(Op::Sync, 1, Fault::Eio);
    faults.fail_once(Op::SetLen, 1, Fault::Eio);
    // The write of the frame succeeds; the second write (the zeros) fails.
    faults.fail_once(Op::Write, 2, Fault::Eio);
    let p = b"told: nothing was saved".to_vec();
    let r = log.append(RecordKey::Main, &p);
    assert!(r.is_err());
    out.record(p.clone(), r);
    faults.crash();
    drop(log);
    drop(engine);
    let held = check_reopened(dir.path(), &out, 1);
    assert_eq!(held.get(&6), Some(&p));
}

#[test]
fn the_logs_write_path_renames_nothing() {
    // The seam has `rename` (the operations that rename, such as
    // recover's chain.head replacement, can move onto it), but appends,
    // new segments, torn-tail set-aside and the heal rename nothing: a
    // rename fault cannot reach an acknowledgement.
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultFs::new();
    let (engine, log) = open(dir.path(), faults.handle());
    faults.fail_from(Op::Rename, 1, Fault::Eio);
    let out = stream(&log, |_| panic!("degraded without a fault"));
    assert_eq!(out.acked.len(), WRITERS * PER_WRITER);
    assert_eq!(faults.calls(Op::Rename), 0);
    drop(log);
    drop(engine);
    check_reopened(dir.path(), &out, 0);
}

#[test]
fn a_write_torn_at_a_random_byte_then_a_crash_keeps_every_acknowledged_record() {
    let mut rng = SeededRng::from_env("a_write_torn");
    for round in 0..8 {
        let dir = tempfile::tempdir().expect("tempdir");
        let faults = FaultFs::new();
        let (engine, log) = open(dir.path(), faults.handle());
        let nth = rng.range(1, 10);
        let keep = rng.range(0, 600) as usize;
        let what = format!("round {round}: write {nth} torn after {keep} bytes");
        faults.fail_once(Op::Write, nth, Fault::Torn { keep });
        let out = stream(&log, |_| {});
        assert!(faults.crashed(), "{what}: never torn");
        // The process image is dropped: nothing more reaches the disk
        // (the crashed file operations refuse every call, the final
        // checkpoint included).
        drop(log);
        drop(engine);
        let left = snapshot(dir.path());
        // What a start finds: an incomplete final write, if the tear was
        // in a segment (a torn chain.head slot is passed over).
        let ro = SegmentEngine::open(
            &dir.path().join("log"),
            keys(dir.path()).store_id(),
            Mode::ReadOnly,
        )
        .expect("read-only open");
        let torn = ro.torn_tail();
        drop(ro);
        assert_eq!(snapshot(dir.path()), left, "{what}: a read-only open wrote");
        // A start: the torn tail is copied aside first, then cut off.
        let (engine, log) = open(dir.path(), fs::real());
        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path().join("log"))
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("torn-"))
            })
            .collect();
        match &torn {
            None => assert!(aside.is_empty(), "{what}: {aside:?}"),
            Some(t) => {
                let seg = dir.path().join("log").join(&t.segment);
                let before = &left[&seg];
                assert_eq!(aside.len(), 1, "{what}: {aside:?}");
                assert_eq!(
                    std::fs::read(&aside[0]).expect("aside"),
                    before[t.offset as usize..].to_vec(),
                    "{what}"
                );
                if t.offset > 0 {
                    assert_eq!(
                        std::fs::read(&seg).expect("seg"),
                        before[..t.offset as usize].to_vec(),
                        "{what}"
                    );
                } else {
                    assert!(!seg.exists(), "{what}");
                }
            }
        }
        drop(log);
        drop(engine);
        // At most one record per writer was in flight at the crash: a
        // record whose whole frame reached the file before the tear is
        // kept (its writer was told nothing before the crash; in this
        // simulation it got an error), as after any crash; nothing
        // acknowledged is lost.
        check_reopened(dir.path(), &out, WRITERS);
    }
}

#[test]
fn a_flipped_byte_in_a_closed_segment_is_named_and_nothing_changes() {
    let mut rng = SeededRng::from_env("a_flipped_byte");
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, log) = open(dir.path(), fs::real());
    for i in 0..80 {
        log.append(RecordKey::Main, &payload(0, i))
            .expect("durable");
    }
    drop(log);
    drop(engine);
    let key = KeySource::File(dir.path().join("master.key"));
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 3, "{segments:?}");
    let closed = &segments[..segments.len() - 1];
    for round in 0..8 {
        let seg = &closed[rng.range(0, closed.len() as u64 - 1) as usize];
        let name = seg
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let len = std::fs::metadata(seg).expect("meta").len();
        let offset = rng.range(0, len - 1);
        let mask = 1u8 << rng.range(0, 7);
        let what = format!("round {round}: {name} offset {offset} mask {mask:#x}");
        fs::flip_byte(seg, offset, mask).expect("flip");
        let damaged = snapshot(dir.path());
        for mode in [
            Mode::ReadOnly,
            Mode::Writable {
                max_segment_bytes: SEGMENT_BYTES,
            },
        ] {
            let err =
                SegmentEngine::open(&dir.path().join("log"), keys(dir.path()).store_id(), mode)
                    .expect_err(&what);
            let EngineError::Damaged(d) = err else {
                panic!("{what}: {err}")
            };
            assert_eq!(d.segment, name, "{what}: {d}");
            assert!(d.offset <= offset, "{what}: {d}");
            assert!(d.seq >= 1, "{what}: {d}");
        }
        // `verify` refuses, naming the segment and the offset.
        let report = hotline_server::store::verify_store(dir.path(), &key, 1 << 20, None)
            .expect_err(&what)
            .to_string();
        assert!(report.contains(&name), "{what}: {report}");
        assert!(report.contains("offset"), "{what}: {report}");
        assert_eq!(snapshot(dir.path()), damaged, "{what}: a byte changed");
        // The byte restored: whole again.
        fs::flip_byte(seg, offset, mask).expect("restore");
        hotline_server::store::verify_store(dir.path(), &key, 1 << 20, None).expect(&what);
    }
    let (_, log) = open(dir.path(), fs::real());
    assert_eq!(log.head().0, 80);
}

/// Whether `s` is a UTC time as set-aside names carry it: `20261130T193105Z`.
fn is_file_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}
