//! Crash safety: a writer process is killed with SIGKILL at random moments
//! while appending; every record it was told is durable must be there
//! after reopening, and the store must reopen and verify every time.
//!
//! `HOTLINE_CRASH_CYCLES` sets the number of cycles (default 100);
//! `scripts/crash-1000` runs 1,000 in release. Every 50 cycles a line
//! says how far it got.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hotline_proto::identity::hex;
use hotline_server::log::keys::{KeySource, generate_key_file};
use hotline_server::store::{Create, LogStore, open_keys, verify_store};

const WRITER: &str = env!("CARGO_BIN_EXE_crash-writer");

/// A small deterministic generator, so a failing run can be repeated
/// (the seed is printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let cycles: usize = std::env::var("HOTLINE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed = std::env::var("HOTLINE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| hotline_server::unix_now() | 1);
    println!("crash test: {cycles} cycles, seed {seed}");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key_path = dir.path().join("master.key");
    generate_key_file(&key_path).expect("key");
    let key = KeySource::File(key_path.clone());

    let mut acked: HashSet<String> = HashSet::new();
    let mut lost_total = 0usize;
    for cycle in 0..cycles {
        let threads = 1 + (rng.next() % 8) as usize;
        let mut child = Command::new(WRITER)
            .arg(&data)
            .arg(&key_path)
            .arg(threads.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("writer starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it has opened the store, then let it write for a
        // random while before killing it.
        let first = rx.recv_timeout(Duration::from_secs(60));
        assert_eq!(
            first.as_deref(),
            Ok("ready"),
            "cycle {cycle}: writer did not start"
        );
        std::thread::sleep(Duration::from_millis(rng.next() % 60));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        reader.join().expect("reader");
        for line in rx.try_iter() {
            if let Some(d) = line.strip_prefix("ack ") {
                acked.insert(d.to_owned());
            }
        }

        // Reopen: it verifies the whole chain, then check every ack.
        let keys = open_keys(&data, &key, Create::Never).expect("keys open");
        let store = LogStore::open(&data, keys, 4 << 20)
            .unwrap_or_else(|e| panic!("cycle {cycle}: store does not reopen after SIGKILL: {e}"));
        let present: HashSet<String> = store.state().invites.keys().map(|d| hex(d)).collect();
        let lost = acked.iter().filter(|d| !present.contains(*d)).count();
        lost_total += lost;
        assert_eq!(
            lost, 0,
            "cycle {cycle}: {lost} acknowledged records lost (seed {seed})"
        );
        store.close().expect("close");
        drop(store);
        verify_store(&data, &key, 4 << 20, None)
            .unwrap_or_else(|e| panic!("cycle {cycle}: verify fails after SIGKILL: {e}"));
        if (cycle + 1) % 50 == 0 && cycle + 1 < cycles {
            // Progress for long runs (scripts/crash-1000).
            println!(
                "crash test: {} of {cycles} cycles, {} acknowledged records, {lost_total} lost",
                cycle + 1,
                acked.len()
            );
        }
    }
    println!(
        "crash test: {cycles} cycles, {} acknowledged records, {lost_total} lost",
        acked.len()
    );
    assert!(
        acked.len() > cycles,
        "the writer acknowledged too little to test anything"
    );
}
