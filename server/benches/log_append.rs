//! Durable appends per second: the encrypted, chained, group-committed log
//! (on segment files) with 1, 8 and 64 concurrent writers, next to a plain
//! file append + `fdatasync` (the baseline) and raw sled (the earlier
//! engine), measured in the same run on the same disk.
//!
//! `cargo bench -p hotline-server --bench log_append`
//! (`HOTLINE_BENCH_SECS` sets the time per measurement, default 3).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotline_server::log::keys::{self, KdfParams, KeySource};
use hotline_server::log::segments::{MAX_SEGMENT_BYTES, Mode, SegmentEngine};
use hotline_server::log::{Log, RecordKey};

const RECORD: usize = 1024;

fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("HOTLINE_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    )
}

fn sled_db(dir: &Path) -> sled::Db {
    sled::Config::new()
        .path(dir)
        .cache_capacity(64 << 20)
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(None)
        .open()
        .expect("sled opens")
}

/// Raw sled, one writer: insert then `flush` (sync_file_range only), and
/// optionally `fdatasync` of sled's file (what durability needs).
fn raw_sled(dir: &Path, fdatasync: bool) -> f64 {
    let db = sled_db(dir);
    let tree = db.open_tree("raw").expect("tree");
    let file = File::open(dir.join("db")).expect("db file");
    let value = vec![0x5au8; RECORD];
    let deadline = Instant::now() + secs();
    let start = Instant::now();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        n += 1;
        tree.insert(n.to_be_bytes(), value.as_slice())
            .expect("insert");
        db.flush().expect("flush");
        if fdatasync {
            file.sync_data().expect("fdatasync");
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// A plain file, one writer: append then `fdatasync`.
fn raw_file(dir: &Path) -> f64 {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw"))
        .expect("file");
    let value = vec![0x5au8; RECORD];
    let deadline = Instant::now() + secs();
    let start = Instant::now();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        n += 1;
        file.write_all(&value).expect("write");
        file.sync_data().expect("fdatasync");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The log, `writers` threads appending as fast as their commits return.
fn log_appends(dir: &Path, writers: usize) -> f64 {
    let key = dir.join("master.key");
    keys::generate_key_file(&key).expect("key");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (_, store_keys) =
        keys::create(&data, &KeySource::File(key), KdfParams::default(), 0).expect("keys");
    let engine = Arc::new(
        SegmentEngine::open(
            &data.join("log"),
            store_keys.store_id(),
            Mode::Writable {
                max_segment_bytes: MAX_SEGMENT_BYTES,
            },
        )
        .expect("engine"),
    );
    let (log, _) = Log::open(engine, Arc::new(store_keys), &data, &[]).expect("log");
    let log = Arc::new(log);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (log, stop, count) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&count));
            std::thread::spawn(move || {
                let value = vec![0x5au8; RECORD];
                while !stop.load(Ordering::Relaxed) {
                    log.append(RecordKey::Main, &value).expect("append");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(secs());
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    let rate = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    log.close().expect("close");
    rate
}

fn main() {
    // Benchmarks run on the disk of the build directory, not a tmpfs.
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tmp = || tempfile::tempdir_in(base).expect("tempdir");
    println!(
        "durable appends of {RECORD}-byte records, {:.0} s per figure",
        secs().as_secs_f64()
    );
    let raw_file = raw_file(tmp().path());
    println!(
        "plain file append + fdatasync,             1 writer: {raw_file:>9.0} /s   <- baseline"
    );
    let raw_flush = raw_sled(tmp().path(), false);
    println!("raw sled insert + flush (sync_file_range), 1 writer: {raw_flush:>9.0} /s");
    let raw_sync = raw_sled(tmp().path(), true);
    println!("raw sled insert + flush + fdatasync,       1 writer: {raw_sync:>9.0} /s");
    let mut rates = Vec::new();
    for writers in [1, 8, 64] {
        let rate = log_appends(tmp().path(), writers);
        rates.push(rate);
        println!("hotline log (sealed, chained, fdatasync), {writers:>2} writers: {rate:>9.0} /s");
    }
    println!();
    println!(
        "1 writer / baseline: {:.0}% (goal >= 80%)",
        rates[0] / raw_file * 100.0
    );
    println!(
        "64 writers / 1 writer: {:.1}x (goal >= 5x)",
        rates[2] / rates[0]
    );
    println!("8 writers / 1 writer: {:.1}x", rates[1] / rates[0]);
}
