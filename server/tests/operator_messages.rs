//! The `hotline-server` binary's messages about a missing data directory
//! and a missing master key, as an operator sees them (beside `cli.rs`,
//! which runs the server itself).

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hotline-server");

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("HOTLINE_MASTER_KEY")
        .env_remove("HOTLINE_MASTER_PASSPHRASE")
        .env_remove("HOTLINE_MASTER_KEY_FILE")
        .env_remove("HOTLINE_DATA_DIR")
        .env_remove("HOTLINE_CONFIG")
        .output()
        .expect("runs")
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn verify_of_a_missing_data_directory_says_it_does_not_exist_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nonexistent");
    let out = run(
        &["verify", "-d", missing.to_str().expect("utf-8")],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains("restore it from backup"), "{err}");
    assert!(
        names(dir.path()).is_empty(),
        "created {:?}",
        names(dir.path())
    );
}

#[test]
fn a_key_file_store_given_no_key_is_told_to_give_its_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("other-media.key");
    let out = run(
        &[
            "init",
            "-d",
            data.to_str().expect("utf-8"),
            "--generate-key-file",
            key.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = names(dir.path());
    for command in ["verify", "serve"] {
        // A free port, as above.
        let out = run(
            &[
                command,
                "-d",
                data.to_str().expect("utf-8"),
                "--listen",
                "127.0.0.1:0",
            ],
            dir.path(),
        );
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("created with a key file") && err.contains("--master-key-file"),
            "{command}: {err}"
        );
        assert!(!err.contains("insecure-dev-master-key"), "{command}: {err}");
        assert_eq!(names(dir.path()), before, "{command} created a file");
    }
}

/// Every file under `dir` (names and bytes), sorted.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

/// The drill with the binary: a flipped byte in the log is named by
/// `verify` and by a start, neither changes a byte or a file name, and
/// putting the byte back makes the store whole.
#[test]
fn a_flipped_byte_is_named_by_verify_and_serve_and_restoring_it_repairs_the_store() {
    use hotline_server::log::segment;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    let d = data.to_str().expect("utf-8");
    let k = key.to_str().expect("utf-8");
    let out = run(&["init", "-d", d, "--generate-key-file", k], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..5 {
        let out = run(
            &[
                "invite",
                "--role",
                "officer",
                "-d",
                d,
                "--master-key-file",
                k,
            ],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["verify", "-d", d, "--master-key-file", k], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let seg = data.join("log").join(segment::file_name(1));
    let mut bytes = std::fs::read(&seg).expect("segment");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&seg, &bytes).expect("write");
    let before = files(&data);
    for command in ["verify", "serve"] {
        let out = run(
            &[
                command,
                "-d",
                d,
                "--master-key-file",
                k,
                "--listen",
                "127.0.0.1:0",
            ],
            dir.path(),
        );
        assert!(!out.status.success(), "{command} accepted a damaged store");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("fails verification at record")
                && err.contains("seg-00000000000000000001.hlog")
                && err.contains("offset"),
            "{command}: {err}"
        );
        assert!(
            files(&data) == before,
            "{command} changed the data directory"
        );
    }
    bytes[at] ^= 0x04;
    std::fs::write(&seg, &bytes).expect("restore");
    let out = run(&["verify", "-d", d, "--master-key-file", k], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("store verified"), "{said}");
}

#[test]
fn a_changed_byte_in_store_header_is_named_as_a_damaged_header_not_a_wrong_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("a1");
    let key = dir.path().join("master.key");
    let d = data.to_str().expect("utf-8");
    let k = key.to_str().expect("utf-8");
    let out = run(&["init", "-d", d, "--generate-key-file", k], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = data.join("store.header");
    let good = std::fs::read(&header).expect("read");
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    std::fs::write(&header, &bad).expect("write");
    let before = files(&data);
    for command in ["verify", "serve"] {
        // A free port: a listener elsewhere on this machine at the default
        // address must not decide what this checks.
        let out = run(
            &[
                command,
                "-d",
                d,
                "--master-key-file",
                k,
                "--listen",
                "127.0.0.1:0",
            ],
            dir.path(),
        );
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("store.header is damaged"), "{command}: {err}");
        assert!(err.contains("from any backup"), "{command}: {err}");
        assert!(!err.contains("wrong master key"), "{command}: {err}");
    }
    assert_eq!(files(&data), before, "nothing changed");
    // Put back from a backup (the same bytes), it opens again.
    std::fs::write(&header, &good).expect("write");
    let out = run(&["verify", "-d", d, "--master-key-file", k], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
