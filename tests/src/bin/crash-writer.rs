//! A store writer for the crash test: appends invites from several threads
//! and prints `ack <hex digest>` for each one only after the store said it
//! is durable. The crash test kills it with SIGKILL at a random moment.
//!
//! Usage: crash-writer <data_dir> <key_file> <threads>

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use hotline_proto::Role;
use hotline_proto::identity::{fill_random, hex};
use hotline_server::domain::devices::InviteRecord;
use hotline_server::log::keys::KeySource;
use hotline_server::store::{Create, LogStore, open_keys};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, data_dir, key_file, threads] = args.as_slice() else {
        eprintln!("usage: crash-writer <data_dir> <key_file> <threads>");
        std::process::exit(2);
    };
    let data_dir = PathBuf::from(data_dir);
    let threads: usize = threads.parse().expect("thread count");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let keys = open_keys(
        &data_dir,
        &KeySource::File(key_file.into()),
        Create::IfMissing(Default::default()),
    )
    .expect("keys");
    let store = Arc::new(LogStore::open(&data_dir, keys, 4 << 20).expect("store opens"));
    println!("ready");
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                loop {
                    let mut digest = [0u8; 32];
                    fill_random(&mut digest).expect("randomness");
                    let invite = InviteRecord {
                        role: Role::Defender,
                        created_at: 1,
                        expires_at: u64::MAX,
                        used_at: None,
                        bootstrap: None,
                    };
                    store.put_invite(digest, &invite).expect("durable append");
                    // One write per line, so lines never interleave.
                    let line = format!("ack {}\n", hex(&digest));
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).expect("stdout");
                    out.flush().expect("stdout");
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
