//! The store on disk: tamper evidence, wrong keys, no plaintext, reopen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hotline_proto::Role;
use hotline_server::domain::devices::InviteRecord;
use hotline_server::log::keys::{KeySource, generate_key_file};
use hotline_server::store::{Create, LogStore, OpenError, open_keys, verify_store};

/// A store with `n` invites, closed cleanly. Returns the data directory and key.
pub fn build_store(root: &Path, n: usize) -> (PathBuf, KeySource) {
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let key_path = root.join("master.key");
    generate_key_file(&key_path).expect("key");
    let key = KeySource::File(key_path);
    let keys = open_keys(&data, &key, Create::IfMissing(Default::default())).expect("keys");
    let store = LogStore::open(&data, keys, 4 << 20).expect("open");
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

fn record_key(seq: u64) -> Vec<u8> {
    let mut k = vec![b'r'];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Opens the store's sled database directly, as an attacker with the disk
/// would, and applies `edit` to the chain tree.
fn edit_chain(data: &Path, edit: impl FnOnce(&sled::Tree)) {
    let db = sled::open(data.join("store")).expect("sled opens");
    let chain = db.open_tree("chain").expect("tree");
    edit(&chain);
    db.flush().expect("flush");
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

/// Writes the files taken by [`snapshot_files`] of `from` into
/// `root/data`, and returns that directory.
fn restore(files: &BTreeMap<PathBuf, Vec<u8>>, from: &Path, root: &Path) -> PathBuf {
    let data = root.join("data");
    for (path, bytes) in files {
        let target = data.join(path.strip_prefix(from).expect("inside"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, bytes).expect("copy");
    }
    data
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
fn logical_edits_through_sled_are_detected_at_the_first_bad_record() {
    type Edit = Box<dyn Fn(&sled::Tree)>;
    let cases: Vec<(&str, u64, Edit)> = vec![
        (
            "changed",
            40,
            Box::new(|t: &sled::Tree| {
                let mut v = t
                    .get(record_key(40))
                    .expect("get")
                    .expect("present")
                    .to_vec();
                let last = v.len() - 1;
                v[last] ^= 1;
                t.insert(record_key(40), v).expect("insert");
            }),
        ),
        (
            "deleted",
            40,
            Box::new(|t: &sled::Tree| {
                t.remove(record_key(40)).expect("remove");
            }),
        ),
        (
            "reordered",
            40,
            Box::new(|t: &sled::Tree| {
                let a = t.get(record_key(40)).expect("get").expect("present");
                let b = t.get(record_key(41)).expect("get").expect("present");
                t.insert(record_key(40), b).expect("insert");
                t.insert(record_key(41), a).expect("insert");
            }),
        ),
        (
            "duplicated",
            41,
            Box::new(|t: &sled::Tree| {
                let a = t.get(record_key(40)).expect("get").expect("present");
                t.insert(record_key(41), a).expect("insert");
            }),
        ),
        (
            "duplicated at the end",
            101,
            Box::new(|t: &sled::Tree| {
                let a = t.get(record_key(100)).expect("get").expect("present");
                t.insert(record_key(101), a).expect("insert");
            }),
        ),
        (
            "tail deleted",
            99,
            Box::new(|t: &sled::Tree| {
                t.remove(record_key(100)).expect("remove");
                t.remove(record_key(99)).expect("remove");
            }),
        ),
        (
            "checkpoint forged",
            100,
            Box::new(|t: &sled::Tree| {
                let mut k = vec![b'c'];
                k.extend_from_slice(&100u64.to_be_bytes());
                let mut v = t.get(&k).expect("get").expect("final checkpoint").to_vec();
                v[20] ^= 1;
                t.insert(k, v).expect("insert");
            }),
        ),
    ];
    for (name, expected, edit) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, key) = build_store(dir.path(), 100);
        edit_chain(&data, |t| edit(t));
        assert_eq!(first_bad(&data, &key), Some(expected), "{name}: verify");
        let err = start_up(&data, &key).expect_err(name);
        assert!(
            err.to_string().contains("fails verification"),
            "{name}: start-up says {err}"
        );
    }
}

#[test]
fn flipped_bytes_in_the_store_files_are_detected_without_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pristine, key) = build_store(dir.path(), 300);
    let files = snapshot_files(&pristine);
    let db_path = pristine.join("store").join("db");
    let db = files[&db_path].clone();
    // Flip bytes where our records are: find each stored record in sled's
    // file (sled may hold several copies of a page; change every copy, as
    // an attacker would).
    let records: Vec<Vec<u8>> = {
        let sled = sled::open(pristine.join("store")).expect("sled");
        let chain = sled.open_tree("chain").expect("tree");
        (1..=300u64)
            .map(|s| {
                chain
                    .get(record_key(s))
                    .expect("get")
                    .expect("present")
                    .to_vec()
            })
            .collect()
    };
    let mut detected = 0;
    for (i, rec) in records.iter().enumerate().step_by(37) {
        let places: Vec<usize> = db
            .windows(rec.len())
            .enumerate()
            .filter(|(_, w)| *w == rec.as_slice())
            .map(|(at, _)| at)
            .collect();
        if places.is_empty() {
            continue;
        }
        for offset in [1, rec.len() / 2, rec.len() - 1] {
            let trial = tempfile::tempdir().expect("tempdir");
            let data = restore(&files, &pristine, trial.path());
            let mut bad = db.clone();
            for at in &places {
                bad[at + offset] ^= 0x20;
            }
            std::fs::write(data.join("store").join("db"), &bad).expect("write");
            let verdict = first_bad(&data, &key);
            assert!(
                verdict.is_some(),
                "record {} byte {offset}: flip not detected by verify",
                i + 1
            );
            assert!(
                start_up(&data, &key).is_err(),
                "record {} byte {offset}: start-up accepted it",
                i + 1
            );
            detected += 1;
        }
    }
    assert!(detected >= 9, "only {detected} flips were placed");

    // Anywhere else in the file: either nothing that matters changed (all
    // 300 records are there) or the damage is reported. Never a panic, and
    // never fewer records without an error.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..40 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state % db.len() as u64) as usize;
        let trial = tempfile::tempdir().expect("tempdir");
        let data = restore(&files, &pristine, trial.path());
        let mut bad = db.clone();
        bad[at] ^= 0x01;
        std::fs::write(data.join("store").join("db"), &bad).expect("write");
        match verify_store(&data, &key, 4 << 20, None) {
            Ok(report) => assert_eq!(
                report.verified.records, 300,
                "offset {at}: records lost silently"
            ),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        match start_up(&data, &key) {
            Ok(store) => assert_eq!(store.state().invites.len(), 300, "offset {at}"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
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
    use hotline_server::log::engine::SledEngine;
    use hotline_server::log::{Log, RecordKey};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let key = KeySource::File(dir.path().join("master.key"));
    generate_key_file(&dir.path().join("master.key")).expect("key");
    let keys = open_keys(&data, &key, Create::IfMissing(Default::default())).expect("keys");
    let engine = Arc::new(SledEngine::open(&data.join("store"), 4 << 20).expect("engine"));
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
    use hotline_server::log::engine::SledEngine;
    use hotline_server::log::{Entry, Log, RecordKey};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    generate_key_file(&dir.path().join("master.key")).expect("key");
    let key = KeySource::File(dir.path().join("master.key"));
    let open = || {
        let keys = open_keys(&data, &key, Create::IfMissing(Default::default())).expect("keys");
        let engine = Arc::new(SledEngine::open(&data.join("store"), 4 << 20).expect("engine"));
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
