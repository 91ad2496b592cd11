//! Maintenance commands of the `hotline-server` binary beside a running
//! server on the same data directory: `verify`, `checkpoint` and
//! `backup --to` answer (no "in use"), `restore --from` gives a data
//! directory that verifies, and `--read-only` is for serving only.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hotline-server");

/// The server process; killed when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str], data: &Path, key: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--master-key-file")
        .arg(key)
        .env("RUST_LOG", "off")
        .output()
        .expect("runs")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `hotline-server` on `data` and waits for its banner.
fn serve(data: &Path, key: &Path) -> ServerProcess {
    let mut child = ServerProcess(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--master-key-file")
            .arg(key)
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its banner");
        if line.starts_with("Press Ctrl-C") {
            return child;
        }
    }
}

#[test]
fn verify_checkpoint_and_backup_answer_beside_a_running_server_and_restore_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(&Command::new(BIN)
        .args(["init", "--generate-key-file"])
        .arg(&key)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "off")
        .output()
        .expect("init"));
    for _ in 0..3 {
        ok(&run(&["invite", "--role", "officer"], &data, &key));
    }
    let server = serve(&data, &key);

    let text = ok(&run(&["verify"], &data, &key));
    assert!(text.contains("store verified:"), "{text}");
    let out = run(&["checkpoint"], &data, &key);
    let line = ok(&out);
    assert!(line.starts_with("hotline-checkpoint:1:"), "{line}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the server is running"),
        "says where the checkpoint comes from"
    );
    let backup = dir.path().join("backup");
    let text = ok(&run(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        &key,
    ));
    assert!(text.contains("verified:"), "{text}");
    assert!(text.contains("newest signed checkpoint: record"), "{text}");
    assert!(!backup.join("cache").exists(), "never the snapshot cache");
    // A second backup into the same directory is refused: it is not empty.
    let out = run(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        &key,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    drop(server);

    // Restored into a new directory, it verifies, with the exported
    // checkpoint too.
    let restored = dir.path().join("restored");
    let text = ok(&run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        &key,
    ));
    assert!(text.contains("restored in"), "{text}");
    let text = ok(&run(
        &["verify", "--checkpoint", line.trim()],
        &restored,
        &key,
    ));
    assert!(text.contains("no rollback"), "{text}");

    // --read-only is for serving only.
    let out = run(&["--read-only", "invite", "--role", "officer"], &data, &key);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("for serving only"));
}

/// `restore` never writes beside a live data directory: refused while a
/// server runs on the target, and while another restore onto the same
/// target is running (its copy in `<target>.partial` is left alone).
#[test]
fn restore_is_refused_onto_a_served_directory_and_beside_another_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(&Command::new(BIN)
        .args(["init", "--generate-key-file"])
        .arg(&key)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "off")
        .output()
        .expect("init"));
    let backup = dir.path().join("backup");
    ok(&run(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        &key,
    ));

    // A server runs on the target: refused, naming the lock; nothing in
    // the served directory changes.
    let live = dir.path().join("live");
    ok(&Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&live)
        .arg("--master-key-file")
        .arg(&key)
        .env("RUST_LOG", "off")
        .output()
        .expect("init"));
    let server = serve(&live, &key);
    let before = std::fs::read_dir(&live).expect("ls").count();
    let out = run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &live,
        &key,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("held by another process"), "{err}");
    assert!(
        !dir.path().join("live.partial").exists(),
        "nothing written beside it"
    );
    assert_eq!(std::fs::read_dir(&live).expect("ls").count(), before);
    drop(server);

    // Another restore onto the same target is running (it holds the lock
    // on its copy, `<target>.partial`): refused, and its copy is not
    // touched.
    let target = dir.path().join("restored");
    let partial = dir.path().join("restored.partial");
    std::fs::create_dir(&partial).expect("mkdir");
    std::fs::write(partial.join(".hotline-partial"), b"x").expect("write");
    std::fs::write(partial.join("being-copied"), b"x").expect("write");
    let mut other = ServerProcess(
        Command::new("flock")
            .arg("--no-fork")
            .arg(&partial)
            .args(["sleep", "60"])
            .spawn()
            .expect("flock runs"),
    );
    let mut held = false;
    for _ in 0..100 {
        let probe = Command::new("flock")
            .args(["-n", "-s"])
            .arg(&partial)
            .arg("true")
            .status()
            .expect("flock runs");
        if !probe.success() {
            held = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(held, "flock took the lock");
    let out = run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &target,
        &key,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another backup or restore onto"), "{err}");
    assert!(
        partial.join("being-copied").exists(),
        "the other copy is left alone"
    );
    assert!(!target.exists());
    let _ = other.0.kill();
    let _ = other.0.wait();

    // Once it has gone (interrupted), a restore clears its copy and works.
    let text = ok(&run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &target,
        &key,
    ));
    assert!(text.contains("restored in"), "{text}");
    assert!(!partial.exists());
    assert!(!target.join("being-copied").exists());
    ok(&run(&["verify"], &target, &key));
}

/// Runs `hotline-server` with `RUST_LOG=info` (so a warning would show).
fn run_logged(args: &[&str], data: &Path, key: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--master-key-file")
        .arg(key)
        .env("RUST_LOG", "info")
        .output()
        .expect("runs")
}

/// A planted `<to>.partial` symbolic link (to a directory of the
/// operator's files) is refused by `backup` and `restore`, naming it: the
/// files it points to are left as they were, nothing is written there, and
/// the target is not made. A `.partial` not made by hotline-server is
/// refused too; a real leftover of an interrupted run is still cleared
/// (with a warning); a normal run warns of no leftover.
#[test]
fn a_planted_partial_symlink_or_foreign_directory_is_refused_and_a_real_leftover_cleared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(&Command::new(BIN)
        .args(["init", "--generate-key-file"])
        .arg(&key)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "off")
        .output()
        .expect("init"));
    let victim = dir.path().join("victim");
    std::fs::create_dir_all(victim.join("sub")).expect("mkdir");
    std::fs::write(victim.join("a.txt"), b"precious").expect("write");
    let intact = |victim: &Path| {
        assert_eq!(
            std::fs::read(victim.join("a.txt")).expect("a.txt is still there"),
            b"precious"
        );
        assert!(victim.join("sub").is_dir(), "victim/sub is still there");
        assert_eq!(std::fs::read_dir(victim).expect("ls").count(), 2);
    };

    // A normal backup: no warning about a leftover.
    let backup = dir.path().join("bk");
    let out = run_logged(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        &key,
    );
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("interrupted"), "{err}");
    assert!(!backup.join(".hotline-partial").exists());

    // backup with a planted symbolic link `<to>.partial`.
    let to = dir.path().join("b9");
    std::os::unix::fs::symlink(&victim, dir.path().join("b9.partial")).expect("symlink");
    let out = run_logged(
        &["backup", "--to", to.to_str().expect("utf-8")],
        &data,
        &key,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("b9.partial is a symbolic link"), "{err}");
    assert!(!err.contains("interrupted"), "{err}");
    intact(&victim);
    assert!(std::fs::symlink_metadata(&to).is_err(), "no backup made");
    assert!(
        std::fs::symlink_metadata(dir.path().join("b9.partial"))
            .expect("the link is left")
            .file_type()
            .is_symlink()
    );

    // restore with a planted symbolic link `<to>.partial`.
    let new = dir.path().join("new9");
    std::os::unix::fs::symlink(&victim, dir.path().join("new9.partial")).expect("symlink");
    let out = run_logged(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &new,
        &key,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("new9.partial is a symbolic link"), "{err}");
    intact(&victim);
    assert!(std::fs::symlink_metadata(&new).is_err(), "nothing restored");

    // A `.partial` directory hotline-server did not make: refused, kept.
    let foreign = dir.path().join("b10.partial");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("mine.txt"), b"mine").expect("write");
    let out = run_logged(
        &[
            "backup",
            "--to",
            dir.path().join("b10").to_str().expect("utf-8"),
        ],
        &data,
        &key,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exists and was not made by hotline-server: remove it yourself"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(foreign.join("mine.txt")).expect("kept"),
        b"mine"
    );

    // A real leftover of an interrupted backup (its marker, part of a
    // copy, a symbolic link inside it): cleared with a warning, the link's
    // target untouched, and the backup taken.
    let left = dir.path().join("b11.partial");
    std::fs::create_dir(&left).expect("mkdir");
    std::fs::write(left.join(".hotline-partial"), b"x").expect("write");
    std::fs::write(left.join("store.header"), b"half").expect("write");
    std::os::unix::fs::symlink(&victim, left.join("log")).expect("symlink");
    let b11 = dir.path().join("b11");
    let out = run_logged(
        &["backup", "--to", b11.to_str().expect("utf-8")],
        &data,
        &key,
    );
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("removing a copy left by an interrupted backup"),
        "{err}"
    );
    intact(&victim);
    assert!(!left.exists());
    assert!(!b11.join(".hotline-partial").exists());
    ok(&run(&["verify"], &b11, &key));

    // A normal restore: no warning about a leftover, no marker left.
    let restored = dir.path().join("restored");
    let out = run_logged(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        &key,
    );
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("interrupted"), "{err}");
    assert!(!restored.join(".hotline-partial").exists());
    ok(&run(&["verify"], &restored, &key));
}
