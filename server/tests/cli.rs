//! The `hotline-server` binary as an operator runs it: first run, the
//! printed pin and admin invite, a client connecting, shutdown on SIGTERM,
//! and a second run on the same data directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hotline_client::connection::{self, ServerInfo};
use hotline_proto::{CertPin, IdentityKeyPair, Invite, Role};

const BIN: &str = env!("CARGO_BIN_EXE_hotline-server");

/// What the server printed before "Press Ctrl-C to stop.".
struct Banner {
    addr: String,
    pin: CertPin,
    invite: Option<Invite>,
    created_certificate: bool,
}

/// The server process; killed if a test fails before stopping it.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn start(data_dir: &Path) -> (ServerProcess, Banner) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let child = ServerProcess(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Banner {
        addr: String::new(),
        pin: CertPin::from_bytes([0; 32]),
        invite: None,
        created_certificate: false,
    };
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its banner");
        if let Some(rest) = line.split(" listening on ").nth(1) {
            banner.addr = rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
        } else if let Some(pin) = line.strip_prefix("certificate pin (clients check this): ") {
            banner.pin = pin.parse().expect("a pin");
        } else if line.trim_start().starts_with("hotline:") {
            banner.invite = Some(line.trim().parse().expect("a valid invite"));
        } else if line.contains("created a new TLS certificate") {
            banner.created_certificate = true;
        } else if line.starts_with("Press Ctrl-C") {
            return (child, banner);
        }
    }
}

fn terminate(mut child: ServerProcess) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    for _ in 0..100 {
        if let Some(status) = child.0.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not stop within 10 s of SIGTERM");
}

#[tokio::test]
async fn first_run_prints_pin_and_admin_invite_and_serves_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (child, banner) = start(&data);
    assert!(banner.created_certificate);
    let invite = banner.invite.expect("first run prints an admin invite");
    assert_eq!(invite.role, Role::Admin);
    assert_eq!(invite.cert_pin, banner.pin);
    assert_eq!(invite.server_addr, banner.addr);

    // A client enrolls with the printed invite and authenticates.
    let (admin, _) = IdentityKeyPair::generate().expect("randomness");
    let session = connection::enroll(&invite, &admin).await.expect("enrolls");
    assert_eq!(session.role(), Role::Admin);
    assert_eq!(session.status().await.expect("status").role, Role::Admin);

    // `fingerprint` works beside the running server and agrees.
    let out = Command::new(BIN)
        .arg("fingerprint")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        banner.pin.to_string()
    );

    // `invite` on the host refuses clearly while the server holds the store.
    let out = Command::new(BIN)
        .args(["invite", "--role", "officer", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is held by another process (a running hotline-server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    session.close().await;
    assert!(terminate(child).success(), "clean exit on SIGTERM");

    // Second run: same certificate, the admin is known, no new invite.
    let (child, banner2) = start(&data);
    assert!(!banner2.created_certificate);
    assert_eq!(banner2.pin, banner.pin);
    assert!(banner2.invite.is_none());
    let info = ServerInfo {
        addr: banner2.addr.clone(),
        name: invite.server_name.clone(),
        pin: banner2.pin,
    };
    let session = connection::authenticate(&info, &admin)
        .await
        .expect("still enrolled");
    assert_eq!(session.role(), Role::Admin);
    session.close().await;
    assert!(terminate(child).success());

    // With the server stopped, `invite` on the host works.
    let out = Command::new(BIN)
        .args(["invite", "--role", "officer", "--ttl", "2h", "--data-dir"])
        .arg(&data)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("hotline:"))
        .expect("an invite line");
    let officer: Invite = line.trim().parse().expect("valid invite");
    assert_eq!(officer.role, Role::Officer);
    assert_eq!(officer.cert_pin, banner.pin);
}

#[test]
fn a_bad_configuration_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "listen = \"0.0.0.0:4433\"\n").expect("write");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public_addr"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing created on refusal"
    );
}

fn run(args: &[&str], data: &Path, key: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "off");
    if let Some(k) = key {
        cmd.arg("--master-key-file").arg(k);
    }
    cmd.output().expect("runs")
}

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

#[test]
fn master_keys_verify_and_rollback_detection_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("usb").join("master.key");
    std::fs::create_dir_all(key.parent().expect("parent")).expect("mkdir");

    // init with a newly generated key file on "other media".
    let out = run(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(key.exists());
    // Make some records: two host invites.
    for _ in 0..2 {
        let out = run(&["invite", "--role", "officer"], &data, Some(&key));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["checkpoint"], &data, Some(&key));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_checkpoint = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        old_checkpoint.starts_with("hotline-checkpoint:1:"),
        "{old_checkpoint}"
    );
    let old_copy = files(&data);

    let out = run(&["invite", "--role", "officer"], &data, Some(&key));
    assert!(out.status.success());
    let out = run(&["checkpoint"], &data, Some(&key));
    let new_checkpoint = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let out = run(
        &["verify", "--checkpoint", &new_checkpoint],
        &data,
        Some(&key),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The record of the certificate (made by init), then three invites.
    assert!(text.contains("store verified: 4 records"), "{text}");
    assert!(text.contains("no rollback"), "{text}");

    // Wrong, missing and truncated keys: refused, non-zero, nothing changed.
    let before = files(&data);
    let wrong = dir.path().join("wrong.key");
    let out = run(
        &[
            "init",
            "--generate-key-file",
            wrong.to_str().expect("utf-8"),
        ],
        &dir.path().join("other"),
        None,
    );
    assert!(out.status.success());
    let truncated = dir.path().join("truncated.key");
    std::fs::write(&truncated, &std::fs::read(&key).expect("key")[..20]).expect("write");
    for (k, says) in [
        (wrong.as_path(), "wrong master key"),
        (
            dir.path().join("nowhere.key").as_path(),
            "cannot read the master key file",
        ),
        (truncated.as_path(), "truncated or not a master key"),
    ] {
        // A free port: a listener elsewhere on this machine at the default
        // address must not decide what this checks.
        for cmd in [&["serve", "--listen", "127.0.0.1:0"][..], &["verify"][..]] {
            let out = run(cmd, &data, Some(k));
            assert!(!out.status.success(), "{cmd:?} with {}", k.display());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(says), "{cmd:?}: {err}");
            if k == wrong.as_path() {
                // The key file and the store it does not open are named.
                assert!(err.contains(&k.display().to_string()), "{cmd:?}: {err}");
                assert!(err.contains(&data.display().to_string()), "{cmd:?}: {err}");
            }
        }
    }
    assert!(files(&data) == before, "a refused key changed the store");

    // Roll the store back to the older copy: verify alone cannot tell,
    // the exported newer checkpoint can.
    std::fs::remove_dir_all(&data).expect("remove");
    for (path, bytes) in &old_copy {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("restore");
    }
    let out = run(&["verify"], &data, Some(&key));
    assert!(out.status.success());
    let out = run(
        &["verify", "--checkpoint", &new_checkpoint],
        &data,
        Some(&key),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rolled back"), "{err}");
    let out = run(
        &["verify", "--checkpoint", &old_checkpoint],
        &data,
        Some(&key),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Tampering: delete a record from the segment file (checksums made
    // right, as an attacker who knows the format would); verify names it.
    {
        use hotline_server::log::segment;
        let path = data.join("log").join(segment::file_name(1));
        let bytes = std::fs::read(&path).expect("segment");
        let (frames, _) = segment::parse_frames(&bytes);
        let mut out = bytes[..segment::HEADER_LEN].to_vec();
        for f in frames
            .iter()
            .filter(|f| f.seq != 1 || f.kind != segment::KIND_RECORD)
        {
            segment::encode_frame(f.kind, f.seq, &bytes[f.payload.clone()], &mut out);
        }
        std::fs::write(&path, out).expect("write");
    }
    let out = run(&["verify"], &data, Some(&key));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fails verification at record 1"), "{err}");
    let out = run(&["serve", "--listen", "127.0.0.1:0"], &data, Some(&key));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fails verification at record 1"));
}

/// A lock on `<data_dir>/lock` held by any process (here an operator's
/// `flock`) is named as such, with the file and how to find the holder:
/// not blamed on a hotline-server that is not running.
#[test]
fn a_lock_held_by_another_tool_is_named_with_how_to_find_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    let out = run(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock = data.join("lock");
    let mut holder = ServerProcess(
        // --no-fork: the killed process is the one holding the lock.
        Command::new("flock")
            .arg("--no-fork")
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .expect("flock runs"),
    );
    // Wait until the tool holds the lock.
    let mut held = false;
    for _ in 0..100 {
        let probe = Command::new("flock")
            .args(["-n", "-s"])
            .arg(&lock)
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

    let out = run(&["invite", "--role", "officer"], &data, Some(&key));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("held by another process"), "{err}");
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert!(err.contains("fuser -v") && err.contains("lsof"), "{err}");
    assert!(!err.contains("another hotline-server process"), "{err}");
    let _ = holder.0.kill();
    let _ = holder.0.wait();

    // Once the tool lets go, the same command works.
    let out = run(&["invite", "--role", "officer"], &data, Some(&key));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn outside_development_a_master_key_is_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args([
            "--listen",
            "0.0.0.0:0",
            "--public-addr",
            "hotline.example.org:4433",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "off")
        .env_remove("HOTLINE_MASTER_KEY")
        .env_remove("HOTLINE_MASTER_PASSPHRASE")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no master key"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing created");
}

/// Logs written to a file or a pipe are plain text: no terminal colour
/// codes for an operator's `grep` to trip on.
#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let child = ServerProcess(child);
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let listening = line.contains("listening");
        seen.push(line);
        if listening {
            break;
        }
    }
    drop(child);
    assert!(seen.iter().any(|l| l.contains("listening")), "{seen:?}");
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes in a piped log: {seen:?}"
    );
}

/// Runs `args` and returns (stdout, stderr), asserting success.
fn ok(args: &[&str], data: &Path, key: &Path) -> (String, String) {
    let out = run(args, data, Some(key));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
    (stdout, stderr)
}

/// The head line `verify` prints (the line after the one announcing it).
fn head_line(verify_stdout: &str) -> String {
    let line = verify_stdout
        .lines()
        .find(|l| l.starts_with("hotline-checkpoint:1:"))
        .unwrap_or_else(|| panic!("no head line in: {verify_stdout}"));
    line.to_owned()
}

#[test]
fn a_rollback_of_chain_head_and_the_log_passes_plain_verify_but_not_the_kept_head_line() {
    use hotline_server::log::segment;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    for _ in 0..2 {
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    let (first, _) = ok(&["verify"], &data, &key);
    for _ in 0..3 {
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    // verify prints both checkpoint positions in words, and the head line.
    let (text, _) = ok(&["verify"], &data, &key);
    assert!(
        text.contains("newest signed checkpoint in the log: record "),
        "{text}"
    );
    assert!(text.contains("; chain.head: record "), "{text}");
    assert!(text.contains("every 1,000 records"), "{text}");
    let kept = head_line(&text);
    assert_ne!(kept, head_line(&first), "the head moved on");
    let kept_seq: u64 = kept.split(':').nth(3).expect("seq").parse().expect("seq");
    // `checkpoint` (no server running) prints the same kind of line.
    let (cp, _) = ok(&["checkpoint"], &data, &key);
    assert!(cp.trim().starts_with("hotline-checkpoint:1:"), "{cp}");

    // The attack, with shell access and no key: an older checkpoint frame
    // from the log copied into both chain.head slots, and the log cut just
    // after that frame.
    let path = data.join("log").join(segment::file_name(1));
    let bytes = std::fs::read(&path).expect("segment");
    let (frames, _) = segment::parse_frames(&bytes);
    let old = frames
        .iter()
        .rfind(|f| f.kind == segment::KIND_CHECKPOINT && f.seq < kept_seq)
        .expect("an older checkpoint in the log");
    let old_seq = old.seq;
    let payload = &bytes[old.payload.clone()];
    std::fs::write(data.join("chain.head"), [payload, payload].concat()).expect("head");
    std::fs::write(&path, &bytes[..old.payload.end]).expect("cut");

    // Plain verify cannot tell (documented in docs/storage.md).
    let (text, _) = ok(&["verify"], &data, &key);
    assert!(
        text.contains(&format!("the last is record {old_seq})")),
        "{text}"
    );
    // The kept head line can, naming both positions.
    for flag in ["--expect-head", "--checkpoint"] {
        let out = run(&["verify", flag, &kept], &data, Some(&key));
        assert!(!out.status.success(), "{flag}: a rollback passed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("rolled back"), "{err}");
        assert!(
            err.contains(&format!(
                "the log ends at record {old_seq} (chain.head: record {old_seq})"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("expected head line is at record {kept_seq}")),
            "{err}"
        );
    }
}

/// A backup prints the head line of what it copied (kept with the
/// backup, `verify --expect-head` passes on it and on its restore); a
/// backup of a damaged stopped store leaves no directory that looks like
/// a backup, and says nothing of a write racing it.
#[test]
fn backup_prints_its_head_line_and_a_failed_backup_leaves_nothing_that_looks_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    for _ in 0..3 {
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    let backup = dir.path().join("bk");
    let (out, _) = ok(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        &key,
    );
    assert!(out.contains("head line of this backup"), "{out}");
    let line = head_line(&out);
    let (verified, _) = ok(&["verify"], &backup, &key);
    assert_eq!(head_line(&verified), line, "the backup's own head line");
    assert!(!dir.path().join("bk.partial").exists());
    // Taken after the backup, the data directory's line would fail on
    // the restore once the server wrote on: the backup's line passes.
    ok(&["invite", "--role", "officer"], &data, &key);
    let restored = dir.path().join("restored");
    ok(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        &key,
    );
    ok(&["verify", "--expect-head", &line], &restored, &key);
    // Onto a directory that is not empty: a usage error, said as such.
    let out = run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        Some(&key),
    );
    let (success, _, err) = said(&out);
    assert!(!success);
    assert!(
        err.contains(
            "is not empty: restore makes a new data directory; give a path that does not exist"
        ),
        "{err}"
    );
    assert!(!err.contains("storage failed"), "{err}");

    // A damaged stopped store: refused at once, and nothing is left.
    let (text, _) = ok(&["verify"], &data, &key);
    spoil_record(&data, last_record(&text) - 1);
    let failed = dir.path().join("bk2");
    let out = Command::new(BIN)
        .args(["backup", "--to", failed.to_str().expect("utf-8")])
        .arg("--data-dir")
        .arg(&data)
        .arg("--master-key-file")
        .arg(&key)
        .env("RUST_LOG", "info")
        .output()
        .expect("runs");
    let (success, stdout, err) = said(&out);
    assert!(!success, "a damaged store backed up: {stdout}");
    assert!(err.contains("no backup was taken"), "{err}");
    assert!(err.contains("was removed"), "{err}");
    assert!(!err.contains("raced"), "no server runs: {err}");
    assert!(!failed.exists(), "a complete-looking backup left");
    assert!(!dir.path().join("bk2.partial").exists());
}

/// A start on a log cut back (with an older chain.head) whose snapshot
/// cache is ahead of it: the records the server had are gone. Said loudly
/// (an ERROR log line and a line in the banner, both record numbers), and
/// the server still serves.
#[test]
fn a_snapshot_cache_ahead_of_the_log_is_reported_as_a_possible_rollback_and_the_server_serves() {
    use hotline_server::log::segment;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    for _ in 0..4 {
        // Each closes with a snapshot of the state at its last record.
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    let (text, _) = ok(&["verify"], &data, &key);
    let had = last_record(&text);
    // The rollback: an older checkpoint into chain.head, the log cut after it.
    let path = data.join("log").join(segment::file_name(1));
    let bytes = std::fs::read(&path).expect("segment");
    let (frames, _) = segment::parse_frames(&bytes);
    let old = frames
        .iter()
        .rfind(|f| f.kind == segment::KIND_CHECKPOINT && f.seq + 2 < had)
        .expect("an older checkpoint in the log");
    let old_seq = old.seq;
    let payload = &bytes[old.payload.clone()];
    std::fs::write(data.join("chain.head"), [payload, payload].concat()).expect("head");
    std::fs::write(&path, &bytes[..old.payload.end]).expect("cut");

    let mut child = ServerProcess(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--master-key-file")
            .arg(&key)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let mut stderr = child.0.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its banner and serves");
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        banner.push(line);
    }
    let status = terminate(child);
    assert!(status.success(), "{status}");
    let banner = banner.join("\n");
    let said = format!(
        "the snapshot cache holds state up to record {had} but the log ends at record {old_seq}"
    );
    assert!(banner.contains("POSSIBLE ROLLBACK"), "{banner}");
    assert!(banner.contains(&said), "{banner}");
    assert!(banner.contains("--expect-head"), "{banner}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).expect("stderr");
    assert!(err.contains("ERROR"), "{err}");
    assert!(err.contains(&said), "{err}");
}

/// `checkpoint` on a stopped store is read-only: it prints chain.head's
/// line (the one `verify` prints) and changes no byte, the snapshot cache
/// included; it says what it did.
#[test]
fn checkpoint_of_a_stopped_store_changes_nothing_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    ok(&["invite", "--role", "officer"], &data, &key);
    let before = files(&data);
    let (line, said) = ok(&["checkpoint"], &data, &key);
    assert_eq!(files(&data), before, "checkpoint changed a byte");
    let (verified, _) = ok(&["verify"], &data, &key);
    assert_eq!(line.trim(), head_line(&verified));
    assert!(said.contains("nothing was written"), "{said}");
    assert!(!said.contains("fresh"), "{said}");
}

/// The upgrade drill with the binary: a data directory of the earlier
/// layout, as an earlier version left it (0755/0644), is migrated at
/// start; the banner (not only the log) says so and that store/ is to be
/// removed once a backup is taken, and the modes are made owner-only.
#[cfg(unix)]
#[test]
fn an_upgrade_says_so_in_the_banner_and_makes_the_old_files_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for e in std::fs::read_dir(from).expect("read").flatten() {
            let p = e.path();
            let target = to.join(e.file_name());
            if p.is_dir() {
                copy_dir(&p, &target);
            } else {
                std::fs::copy(&p, &target).expect("copy");
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
                    .expect("chmod");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-v1"),
        dir.path(),
    );
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut child = ServerProcess(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--master-key-file")
            .arg(&key)
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server prints its banner and serves");
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        banner.push(line);
    }
    assert!(terminate(child).success());
    let banner = banner.join("\n");
    assert!(
        banner.contains("migrated the store from its earlier layout"),
        "{banner}"
    );
    assert!(
        banner.contains("is no longer used: take a backup of the new layout"),
        "{banner}"
    );
    assert!(banner.contains("readable by the owner only"), "{banner}");
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("meta");
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("read")
                    .map(|e| e.expect("entry").path()),
            );
        }
    }
}

/// `invite` says which address its invite names and where it came from,
/// so an operator whose server runs on another port notices before
/// handing it out.
#[test]
fn invite_says_which_address_devices_will_connect_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    let (_, err) = ok(&["invite", "--role", "admin"], &data, &key);
    assert!(
        err.contains("connect to 127.0.0.1:4433 (the default: no -c, -l or --public-addr given)"),
        "{err}"
    );
    assert!(err.contains("give invite the same"), "{err}");
    let (_, err) = ok(
        &["invite", "--role", "admin", "-l", "127.0.0.1:5555"],
        &data,
        &key,
    );
    assert!(
        err.contains("connect to 127.0.0.1:5555 (--listen)"),
        "{err}"
    );
}

/// "(the last is record N)" in `verify`'s output.
fn last_record(verify_stdout: &str) -> u64 {
    let at = verify_stdout
        .find("(the last is record ")
        .unwrap_or_else(|| panic!("no last record in: {verify_stdout}"));
    verify_stdout[at + "(the last is record ".len()..]
        .split(')')
        .next()
        .expect("number")
        .parse()
        .expect("number")
}

/// Rewrites record `seq`'s frame with its last payload byte flipped and
/// the frame's checksums made right: the frame reads, the record does not
/// open (as after a careful attacker or a bit flip inside the sealed data).
fn spoil_record(data: &Path, seq: u64) {
    use hotline_server::log::segment;
    for e in std::fs::read_dir(data.join("log")).expect("log") {
        let path = e.expect("entry").path();
        let bytes = std::fs::read(&path).expect("segment");
        let (frames, _) = segment::parse_frames(&bytes);
        if !frames
            .iter()
            .any(|f| f.kind == segment::KIND_RECORD && f.seq == seq)
        {
            continue;
        }
        let mut out = bytes[..segment::HEADER_LEN].to_vec();
        for f in &frames {
            let mut payload = bytes[f.payload.clone()].to_vec();
            if f.kind == segment::KIND_RECORD && f.seq == seq {
                *payload.last_mut().expect("payload") ^= 1;
            }
            segment::encode_frame(f.kind, f.seq, &payload, &mut out);
        }
        std::fs::write(&path, out).expect("write");
        return;
    }
    panic!("record {seq} not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_says_what_it_gives_up_changes_nothing_unconfirmed_and_cuts_with_yes() {
    use hotline_proto::alert::Priority;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("data.insecure-dev-master-key");
    let (child, banner) = start(&data);
    let (admin, _) = IdentityKeyPair::generate().expect("randomness");
    let admin = connection::enroll(&banner.invite.expect("admin invite"), &admin)
        .await
        .expect("admin enrolls");
    let invite = admin
        .create_invite(Role::Defender, 3600)
        .await
        .expect("invite");
    admin.close().await;

    // A defender sets a check-in schedule, raises an alert and checks in
    // twice; the schedule's record is then damaged.
    let (identity, _) = IdentityKeyPair::generate().expect("randomness");
    let defender = connection::enroll(&invite, &identity)
        .await
        .expect("enrolls");
    let kept = last_record(&ok(&["verify"], &data, &key).0);
    let ck = hotline_client::state::StateDir::new_checkin_key().expect("randomness");
    defender
        .set_checkin(6 * 3600, 1800, &ck, "4711", "0815")
        .await
        .expect("schedule");
    defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    for _ in 0..2 {
        defender
            .checkin(Some(&ck), "4711")
            .await
            .expect("checked in");
    }
    defender.close().await;
    assert!(terminate(child).success());
    let last = last_record(&ok(&["verify"], &data, &key).0);
    assert!(last >= kept + 4, "{kept} {last}");
    spoil_record(&data, kept + 1);
    let before = files(&data);

    // The dry run says what goes, and changes no byte.
    let (text, _) = ok(
        &["recover", "--truncate-after-copy", "--dry-run"],
        &data,
        &key,
    );
    let n = last - kept;
    for want in [
        format!("fails verification at record {}", kept + 1),
        format!("give up {n} record(s): records {} to {last}", kept + 1),
        format!("keep records 1 to {kept} (the log ends in log/"),
        "1 alert(s) raised, 0 message(s), 2 check-in(s)".into(),
        format!("(in the {} record(s) that open with the master key)", n - 1),
        "1 record could not be read (damaged, cut short or not in the files): it may be an SOS"
            .into(),
        "the records given up that open were written from ".into(),
        format!("chain.head signs the log up to record {last}"),
        "dry run: nothing was changed".into(),
    ] {
        assert!(text.contains(&want), "{want:?} not in:\n{text}");
    }
    // The period's end is the later of the newest time the records given
    // up record and chain.head's signature, which bounds those without a
    // time of their own.
    let from = time_after(&text, "the records given up that open were written from ");
    let to_end = time_after(&text, &format!("{from} to "));
    let recorded = time_after(&text, ": the times they record run to ");
    let signed = time_after(
        &text,
        "records without a time of their own, such as messages and claims, were written before ",
    );
    assert!(
        text.contains(&format!(
            "were written before {signed} (chain.head's signature at record {last})"
        )),
        "{text}"
    );
    assert_eq!(to_end, recorded.clone().max(signed.clone()), "{text}");
    assert!(from <= recorded, "{text}");
    assert!(
        files(&data) == before,
        "the dry run changed the data directory"
    );

    // Without a terminal and without --yes: the summary, then a refusal.
    let out = run(&["recover", "--truncate-after-copy"], &data, Some(&key));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 alert(s) raised"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not confirmed: nothing was changed"), "{err}");
    assert!(
        files(&data) == before,
        "an unconfirmed recover changed the data directory"
    );

    // With --yes: cut, the copy kept aside, and the rest verifies.
    let (text, _) = ok(&["recover", "--truncate-after-copy", "--yes"], &data, &key);
    assert!(
        text.contains(&format!("cut the log before record {}", kept + 1)),
        "{text}"
    );
    let copy = std::fs::read_dir(&data)
        .expect("data")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("recovered-"))
        })
        .expect("the copy is kept");
    assert!(copy.join("chain.head").exists());
    let (text, _) = ok(&["verify"], &data, &key);
    assert_eq!(last_record(&text), kept);
}

#[test]
fn a_log_cut_inside_a_record_chain_head_signs_is_named_and_recovered_only_when_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    for _ in 0..4 {
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    let last = last_record(&ok(&["verify"], &data, &key).0);
    // As in a backup: no snapshot cache.
    std::fs::remove_dir_all(data.join("cache")).expect("no cache");
    // As a server stopped between checkpoints leaves it: the log's newest
    // checkpoint before the cut is behind the last record kept.
    drop_checkpoint_frames(&data, &[last - 2, last - 1]);
    // The newest segment cut in the middle of the last record's frame.
    let segment = {
        use hotline_server::log::segment;
        let path = data.join("log").join(segment::file_name(1));
        let bytes = std::fs::read(&path).expect("segment");
        let (frames, _) = segment::parse_frames(&bytes);
        let f = frames
            .iter()
            .find(|f| f.kind == segment::KIND_RECORD && f.seq == last)
            .expect("the last record");
        let cut = f.payload.start + (f.payload.end - f.payload.start) / 2;
        std::fs::write(&path, &bytes[..cut]).expect("cut");
        (segment::file_name(1), f.offset)
    };
    let ends = format!(
        "the log ends in log/{} at byte {}, after record {}",
        segment.0,
        segment.1,
        last - 1
    );
    let before = files(&data);

    // verify and a start name the first missing record and where the
    // files end, and change nothing.
    for cmd in [&["verify"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let out = run(cmd, &data, Some(&key));
        assert!(!out.status.success(), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("record {last} is missing")), "{err}");
        assert!(err.contains(&ends), "{cmd:?}: {err}");
    }
    assert!(
        files(&data) == before,
        "verify or the start changed something"
    );
    assert!(!data.join("cache").exists());

    // --read-only says the same.
    {
        let mut child = ServerProcess(
            Command::new(BIN)
                .args(["--read-only", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(&data)
                .arg("--master-key-file")
                .arg(&key)
                .env("RUST_LOG", "off")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("starts"),
        );
        let stdout = child.0.stdout.take().expect("piped");
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("serving "))
            .expect("says what it serves");
        assert!(
            line.contains(&format!("record {last} is missing")),
            "{line}"
        );
        assert!(line.contains(&ends), "{line}");
        drop(child);
    }
    assert!(
        files(&data) == before,
        "read-only serving changed something"
    );

    // recover: the summary says signed records are gone; without
    // confirmation nothing is created or changed (no cache/ either).
    let (text, _) = ok(
        &["recover", "--truncate-after-copy", "--dry-run"],
        &data,
        &key,
    );
    for want in [
        format!("give up 1 record(s): record {last}"),
        format!(
            "WARNING: chain.head signs the log up to record {last}, but record {last} is not in the log's files"
        ),
        format!(
            "chain.head would be rewritten back to record {} (the last record kept), with a \
             checkpoint the recovery signs",
            last - 1
        ),
    ] {
        assert!(text.contains(&want), "{want:?} not in:\n{text}");
    }
    let out = run(&["recover", "--truncate-after-copy"], &data, Some(&key));
    assert!(!out.status.success());
    assert!(
        files(&data) == before,
        "an unconfirmed recover changed something"
    );
    assert!(!data.join("cache").exists());

    // Confirmed: the incomplete write is kept aside, chain.head rewritten,
    // and the store verifies and starts.
    ok(&["recover", "--truncate-after-copy", "--yes"], &data, &key);
    let (text, _) = ok(&["verify"], &data, &key);
    assert_eq!(last_record(&text), last - 1);
    // The head line verify prints covers every record kept.
    assert_eq!(head_line_seq(&head_line(&text)), last - 1, "{text}");
}

/// The first line of a command's stdout, or its stderr when it failed.
fn said(out: &std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tls/cert.pem` is bound to the store: a substituted certificate is
/// refused by `fingerprint`, a start, `verify` and `backup`, naming the
/// file and both pins; a backup carries and checks the certificate and
/// key; a deliberate change goes through `accept-new-cert`; a store made
/// before the record existed gets it on its next start.
#[test]
fn the_tls_certificate_is_bound_to_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (ok, out, err) = said(&run(&["init"], &data, None));
    assert!(ok, "{err}");
    let pin: CertPin = out
        .lines()
        .find_map(|l| l.strip_prefix("certificate pin: "))
        .expect("init prints the pin")
        .parse()
        .expect("a pin");
    assert!(data.join("tls/cert.bound").exists(), "the pin is recorded");
    let (ok, out, err) = said(&run(&["verify"], &data, None));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("TLS certificate verified: pin {pin}")),
        "{out}"
    );

    // Someone with write access swaps the certificate.
    let cert = data.join("tls/cert.pem");
    let original = std::fs::read(&cert).expect("read");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let other_pin = CertPin::of_certificate(other.cert.der());
    std::fs::write(&cert, other.cert.pem()).expect("write");
    for args in [
        &["fingerprint"][..],
        &["verify"],
        &["invite", "--role", "officer"],
    ] {
        let (ok, out, err) = said(&run(args, &data, None));
        assert!(!ok, "{args:?} refused: {out}");
        assert!(!out.contains(&other_pin.to_string()), "{args:?}: {out}");
        for needle in [
            "has changed",
            &cert.display().to_string(),
            &pin.to_string(),
            &other_pin.to_string(),
            "accept-new-cert",
            "from a backup taken after the last certificate change (`accept-new-cert`)",
        ] {
            assert!(err.contains(needle), "{args:?}: {needle}: {err}");
        }
    }
    let backup = dir.path().join("backup");
    let (ok, out, err) = said(&run(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        None,
    ));
    // The log is still backed up and verified; the certificate problem is
    // reported apart (exit non-zero), naming the data directory's file,
    // and the backup holds no tls/.
    assert!(!ok, "a certificate problem exits non-zero: {out}");
    assert!(out.contains("verified"), "{out}");
    for needle in [
        "has changed",
        "tls/ was NOT taken",
        "accept-new-cert",
        &cert.display().to_string(),
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!err.contains("damaged"), "the log is intact: {err}");
    assert!(
        !err.contains(&backup.join("tls/cert.pem").display().to_string()),
        "names the backup's file: {err}"
    );
    assert!(
        !backup.join("tls").exists(),
        "the swapped certificate taken"
    );
    let dev_key = dir.path().join("data.insecure-dev-master-key");
    // Without its tls/, the backup is refused as a store that lost its
    // certificate (the log records one), with the way out named.
    let (ok, _, err) = said(&run(&["verify"], &backup, Some(&dev_key)));
    assert!(!ok, "a backup without its certificate does not pass");
    assert!(
        err.contains("are missing") && err.contains("accept-new-cert"),
        "{err}"
    );
    // The backup's output does not call it a store that had none yet.
    assert!(!out.contains("had none yet"), "{out}");
    assert!(out.contains("not taken"), "{out}");
    // Restored, the log is there and verified, but the restore says
    // plainly that no server starts on it yet, and exits non-zero.
    let lost = dir.path().join("lost");
    let (ok, out, err) = said(&run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &lost,
        Some(&dev_key),
    ));
    assert!(!ok, "a restore without a certificate exits non-zero: {out}");
    assert!(!out.contains("had none yet"), "{out}");
    assert!(
        !out.contains("rebuilds its snapshot cache and serves"),
        "{out}"
    );
    assert!(out.contains("although its log records one"), "{out}");
    for needle in [
        "restored and verified the log",
        "it has no TLS certificate",
        &format!("hotline-server accept-new-cert -d {}", lost.display()),
        "every device must then be re-invited",
        "earlier backup taken after the last certificate change",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(lost.join("log").is_dir(), "the log is restored");
    let (ok, _, err) = said(&run(&["verify"], &lost, Some(&dev_key)));
    assert!(!ok && err.contains("are missing"), "{err}");
    // The way out it names works on that directory (it has no tls/ at
    // all): accept-new-cert, then a start makes a new certificate.
    let (ok, _, err) = said(&run(&["accept-new-cert"], &lost, Some(&dev_key)));
    assert!(ok, "accept-new-cert on a restore without tls/: {err}");
    let (ok, _, err) = said(&run(
        &["invite", "--role", "officer"],
        &lost,
        Some(&dev_key),
    ));
    assert!(ok, "a start after accept-new-cert: {err}");
    let (ok, out, err) = said(&run(&["fingerprint"], &lost, Some(&dev_key)));
    assert!(ok, "{err}");
    assert_ne!(out.trim(), pin.to_string(), "a new certificate");

    // Put back, it serves again; a backup carries and checks it, and a
    // backup whose certificate was swapped is not restored.
    std::fs::write(&cert, &original).expect("write");
    let _ = std::fs::remove_dir_all(&backup);
    let (ok, out, err) = said(&run(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        None,
    ));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("TLS certificate and key verified: pin {pin}")),
        "{out}"
    );
    assert!(backup.join("tls/cert.bound").exists());
    std::fs::write(backup.join("tls/cert.pem"), other.cert.pem()).expect("write");
    let restored = dir.path().join("restored");
    let (ok, _, err) = said(&run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        Some(&dev_key),
    ));
    assert!(!ok, "a swapped certificate is not restored");
    assert!(err.contains("has changed"), "{err}");
    assert!(!restored.exists());
    std::fs::write(backup.join("tls/cert.pem"), &original).expect("write");
    let (ok, out, err) = said(&run(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        Some(&dev_key),
    ));
    assert!(ok, "{err}");
    assert!(out.contains(&format!("pin {pin}")), "{out}");
    let (ok, out, _) = said(&run(&["fingerprint"], &restored, Some(&dev_key)));
    assert!(ok);
    assert_eq!(
        out.trim(),
        pin.to_string(),
        "the restored server has the same pin"
    );

    // A certificate whose key is not the store's: accept-new-cert names
    // the key file that does not match.
    std::fs::write(&cert, other.cert.pem()).expect("write");
    let (ok, _, err) = said(&run(&["accept-new-cert"], &data, None));
    assert!(!ok);
    assert!(err.contains("does not match"), "{err}");
    assert!(
        err.contains(&data.join("tls/key.sealed").display().to_string()),
        "{err}"
    );

    // A deliberate change: the certificate and key removed, the removal
    // accepted, the next start makes a new one and records it.
    std::fs::remove_file(&cert).expect("rm");
    std::fs::remove_file(data.join("tls/key.sealed")).expect("rm");
    let (ok, _, err) = said(&run(&["invite", "--role", "officer"], &data, None));
    assert!(!ok, "a recorded certificate is never silently replaced");
    assert!(err.contains("are missing"), "{err}");
    let (ok, out, err) = said(&run(&["accept-new-cert"], &data, None));
    assert!(ok, "{err}");
    assert!(out.contains("next start makes a new certificate"), "{out}");
    let (ok, _, err) = said(&run(&["invite", "--role", "officer"], &data, None));
    assert!(ok, "{err}");
    let (ok, out, err) = said(&run(&["fingerprint"], &data, None));
    assert!(ok, "{err}");
    let new_pin: CertPin = out.trim().parse().expect("a pin");
    assert_ne!(new_pin, pin);
    assert!(data.join("tls/cert.bound").exists());

    // tls/cert.bound deleted: the log records the certificate, so the
    // store is not taken for one made before the record existed: a start,
    // invite, verify and fingerprint refuse, naming the file and the way
    // out.
    let bound = data.join("tls/cert.bound");
    let saved = std::fs::read(&bound).expect("read");
    std::fs::remove_file(&bound).expect("rm");
    for args in [
        &["fingerprint"][..],
        &["verify"],
        &["invite", "--role", "officer"],
        &["--listen", "127.0.0.1:0"],
    ] {
        let (ok, out, err) = said(&run_briefly(args, &data));
        assert!(!ok, "{args:?} refused: {out}");
        for needle in [
            &bound.display().to_string(),
            "records the certificate",
            &new_pin.to_string(),
            "accept-new-cert",
        ] {
            assert!(err.contains(needle), "{args:?}: {needle}: {err}");
        }
        assert!(!bound.exists(), "{args:?} did not record it anew");
    }
    std::fs::write(&bound, &saved).expect("put back");
    let (ok, _, err) = said(&run(&["invite", "--role", "officer"], &data, None));
    assert!(ok, "{err}");
    std::fs::write(&cert, other.cert.pem()).expect("write");
    let (ok, _, err) = said(&run(&["fingerprint"], &data, None));
    assert!(!ok && err.contains("has changed"), "{err}");
}

/// Runs the binary (a start, or another command) and gives it 30 s to
/// end; a server still running then is killed and the test fails.
fn run_briefly(args: &[&str], data: &Path) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    for _ in 0..300 {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "{args:?} still running after 30 s: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Someone with write access and no key deletes all three TLS files of a
/// store that has records: nothing makes a new certificate or hands out
/// a new pin; verify, a start, invite and fingerprint refuse, naming
/// what is missing and the way out, and change nothing. The way out
/// (`accept-new-cert`) still works.
#[test]
fn deleting_the_tls_files_of_a_store_with_records_is_refused_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (ok, _, err) = said(&run(&["init"], &data, None));
    assert!(ok, "{err}");
    let (ok, _, err) = said(&run(&["invite", "--role", "officer"], &data, None));
    assert!(ok, "{err}");
    for f in ["tls/cert.pem", "tls/key.sealed", "tls/cert.bound"] {
        std::fs::remove_file(data.join(f)).expect("rm");
    }
    let before = files(&data);
    for args in [
        &["verify"][..],
        &["fingerprint"],
        &["invite", "--role", "officer"],
        &["--listen", "127.0.0.1:0"],
    ] {
        let (ok, out, err) = said(&run_briefly(args, &data));
        assert!(!ok, "{args:?} refused: {out}");
        assert!(!out.contains("pin"), "{args:?} hands out no pin: {out}");
        for needle in [
            "cert.pem",
            "key.sealed",
            "restore",
            "accept-new-cert",
            "from a backup taken after the last certificate change",
        ] {
            assert!(err.contains(needle), "{args:?}: {needle}: {err}");
        }
        assert!(!data.join("tls/cert.pem").exists(), "{args:?} made one");
        // The log, its head and the keys as they were (the snapshot
        // cache may be refreshed by a start that opened the store).
        let kept = |all: Vec<(std::path::PathBuf, Vec<u8>)>| {
            all.into_iter()
                .filter(|(p, _)| !p.ends_with("lock") && !p.starts_with(data.join("cache")))
                .collect::<Vec<_>>()
        };
        assert!(
            kept(files(&data)) == kept(before.clone()),
            "{args:?} created, removed or changed files"
        );
    }
    // The deliberate way: accept-new-cert, then a start makes a new one.
    let (ok, out, err) = said(&run(&["accept-new-cert"], &data, None));
    assert!(ok, "{err}");
    assert!(out.contains("next start makes a new certificate"), "{out}");
    let (ok, out, err) = said(&run(&["verify"], &data, None));
    assert!(ok, "{err}");
    assert!(out.contains("accept-new-cert` let it go"), "{out}");
    let (ok, _, err) = said(&run(&["invite", "--role", "officer"], &data, None));
    assert!(ok, "{err}");
    let (ok, out, err) = said(&run(&["fingerprint"], &data, None));
    assert!(ok, "{err}");
    assert!(out.trim().parse::<CertPin>().is_ok(), "{out}");
    assert!(data.join("tls/cert.bound").exists());
}

/// A master key file readable by group or others is used, with a loud
/// warning naming the file and the fix; none once it is 0600.
#[cfg(unix)]
#[test]
fn a_master_key_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    let (ok, _, err) = said(&run(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        None,
    ));
    assert!(ok, "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, _, err) = said(&run(&["verify"], &data, Some(&key)));
    assert!(ok, "used all the same: {err}");
    assert!(err.contains("WARNING"), "{err}");
    assert!(err.contains("mode 0644"), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (ok, _, err) = said(&run(&["verify"], &data, Some(&key)));
    assert!(ok, "{err}");
    assert!(!err.contains("WARNING"), "{err}");
}

/// `verify`, `backup`, `fingerprint` and `checkpoint` on an existing empty
/// directory create nothing (no development key beside it) and say the
/// directory is empty rather than that a store lost its header.
#[test]
fn read_commands_on_an_empty_directory_create_nothing_and_say_it_is_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let backup = dir.path().join("backup");
    for args in [
        &["verify"][..],
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &["fingerprint"],
        &["checkpoint"],
    ] {
        let (ok, out, err) = said(&run(args, &data, None));
        assert!(!ok, "{args:?} refused: {out}");
        assert!(err.contains("(it is empty)"), "{args:?}: {err}");
        assert!(!err.contains("header"), "{args:?}: {err}");
        assert!(
            !dir.path().join("data.insecure-dev-master-key").exists(),
            "{args:?} made no key file"
        );
        assert!(files(&data).is_empty(), "{args:?} wrote nothing");
        assert!(!backup.exists(), "{args:?}");
    }
}

/// Spawns `hotline-server <args> --data-dir <data> --master-key-file <key>`
/// with its stdout piped.
fn spawn(args: &[&str], data: &Path, key: &Path) -> ServerProcess {
    ServerProcess(
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .arg("--master-key-file")
            .arg(key)
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts"),
    )
}

#[test]
fn a_read_only_server_keeps_a_normal_start_out_even_without_a_lock_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    ok(&["invite", "--role", "officer"], &data, &key);
    let backup = dir.path().join("backup");
    ok(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        &key,
    );
    let restored = dir.path().join("restored");
    ok(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        &key,
    );
    // Whether or not restore leaves a lock file, an operator may remove
    // it: the directory itself is what keeps writers out.
    let _ = std::fs::remove_file(restored.join("lock"));
    let before = files(&restored);

    let mut read_only = spawn(&["--read-only", "--listen", "127.0.0.1:0"], &restored, &key);
    let stdout = read_only.0.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
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
            .expect("the read-only server says what it serves");
        if line.starts_with("serving ") {
            break;
        }
    }
    assert!(
        files(&restored) == before,
        "the read-only server created or changed a file"
    );

    // A normal start (and a writing command) is refused while it serves.
    let mut normal = spawn(&["serve", "--listen", "127.0.0.1:0"], &restored, &key);
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = normal.0.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = status.expect("the normal start was refused, not serving beside it");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(normal.0.stderr.as_mut().expect("piped"), &mut err)
        .expect("stderr");
    assert!(err.contains("held by another process"), "{err}");
    let out = run(&["invite", "--role", "officer"], &restored, Some(&key));
    assert!(
        !out.status.success(),
        "a writer ran beside the read-only server"
    );
    drop(read_only);
    // The refused writers changed nothing but the (empty) lock file they
    // tried to lock.
    let lock = restored.join("lock");
    let after: Vec<_> = files(&restored)
        .into_iter()
        .filter(|(p, _)| *p != lock)
        .collect();
    assert!(after == before, "a refused start changed a file");

    // Once it has stopped, the normal start works.
    let out = run(&["invite", "--role", "officer"], &restored, Some(&key));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_damaged_or_missing_chain_head_is_named_and_recover_rewrites_it_keeping_every_record() {
    for damage in ["both slots flipped", "missing"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let key = dir.path().join("master.key");
        ok(
            &["init", "--generate-key-file", key.to_str().expect("utf-8")],
            &data,
            &key,
        );
        for _ in 0..4 {
            ok(&["invite", "--role", "officer"], &data, &key);
        }
        let last = last_record(&ok(&["verify"], &data, &key).0);
        // As a server stopped between checkpoints leaves it: the log's
        // newest checkpoint is behind its last record.
        drop_checkpoint_frames(&data, &[last - 1, last]);
        let head = data.join("chain.head");
        let original = std::fs::read(&head).expect("chain.head");
        if damage == "missing" {
            std::fs::remove_file(&head).expect("rm");
        } else {
            // One bad sector: both 112-byte slots spoiled.
            let mut spoiled = original.clone();
            for b in spoiled.iter_mut() {
                *b ^= 0x5a;
            }
            std::fs::write(&head, &spoiled).expect("spoil");
        }
        let before = files(&data);

        // verify and a start name the file and what the log still holds.
        for cmd in [&["verify"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
            let out = run(cmd, &data, Some(&key));
            assert!(!out.status.success(), "{damage}: {cmd:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            let named = format!("chain.head ({})", head.display());
            assert!(err.contains(&named), "{damage}: {cmd:?}: {err}");
            assert!(
                err.contains(&format!("records are intact up to record {last}")),
                "{damage}: {err}"
            );
            assert!(err.contains("recover --truncate-after-copy"), "{err}");
            if damage == "missing" {
                assert!(err.contains(") is missing"), "{err}");
                // No file to keep aside, and no "record 0".
                assert!(!err.contains("keeping this file aside"), "{err}");
                assert!(!err.contains("record 0"), "{err}");
            } else {
                assert!(err.contains("both copies fail their checks"), "{err}");
            }
        }
        assert!(
            files(&data) == before,
            "{damage}: verify or start changed something"
        );

        // recover --dry-run says every record is kept and changes nothing.
        let (text, _) = ok(
            &["recover", "--truncate-after-copy", "--dry-run"],
            &data,
            &key,
        );
        assert!(
            text.contains(&format!("keep every record (records 1 to {last})")),
            "{damage}: {text}"
        );
        assert!(
            text.contains("rewrite chain.head from the log's newest checkpoint"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "then sign a checkpoint of record {last} (the last record) into it"
            )),
            "{damage}: {text}"
        );
        assert!(text.contains("rollback of the log"), "{text}");
        assert!(!text.contains("give up"), "{text}");
        assert!(
            files(&data) == before,
            "{damage}: the dry run changed something"
        );

        // recover --yes: chain.head rewritten, the old one kept aside, and
        // the store verifies with every record.
        let out = Command::new(BIN)
            .args(["recover", "--truncate-after-copy", "--yes", "--data-dir"])
            .arg(&data)
            .arg("--master-key-file")
            .arg(&key)
            .env("RUST_LOG", "warn")
            .output()
            .expect("runs");
        let (success, text, log) = said(&out);
        let text = text + &log;
        assert!(success, "{damage}: {text}");
        assert!(text.contains("rewrote chain.head"), "{damage}: {text}");
        // Nothing was cut: no log line says so.
        assert!(!text.contains("cut the log"), "{damage}: {text}");
        assert!(!text.contains("records_cut"), "{damage}: {text}");
        let verified = ok(&["verify"], &data, &key).0;
        assert_eq!(last_record(&verified), last, "{damage}: {verified}");
        // The head line verify prints covers every record kept.
        assert_eq!(
            head_line_seq(&head_line(&verified)),
            last,
            "{damage}: {verified}"
        );
        let aside: Vec<_> = std::fs::read_dir(&data)
            .expect("data")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("recovered-"))
            })
            .collect();
        if damage == "missing" {
            // Nothing to copy: no copy (no empty file) is made.
            assert_eq!(aside, Vec::<std::path::PathBuf>::new(), "{text}");
            assert!(text.contains("nothing was cut"), "{text}");
        } else {
            assert_eq!(aside.len(), 1, "{aside:?}");
            for (path, bytes) in files(&aside[0]) {
                assert!(!bytes.is_empty(), "an empty copy: {}", path.display());
            }
            assert_eq!(
                std::fs::read(aside[0].join("chain.head")).expect("kept aside"),
                before
                    .iter()
                    .find(|(p, _)| *p == head)
                    .expect("was there")
                    .1
            );
        }
        // It serves again.
        ok(&["invite", "--role", "officer"], &data, &key);
    }
}

#[test]
fn the_only_segment_cut_below_its_header_is_named_and_recovered_when_confirmed() {
    for cut in ["10 bytes", "zeroed"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let key = dir.path().join("master.key");
        ok(
            &["init", "--generate-key-file", key.to_str().expect("utf-8")],
            &data,
            &key,
        );
        for _ in 0..3 {
            ok(&["invite", "--role", "officer"], &data, &key);
        }
        let last = last_record(&ok(&["verify"], &data, &key).0);
        let name = hotline_server::log::segment::file_name(1);
        let seg = data.join("log").join(&name);
        let whole = std::fs::read(&seg).expect("segment");
        let spoiled = if cut == "zeroed" {
            vec![0u8; whole.len()]
        } else {
            whole[..10].to_vec()
        };
        std::fs::write(&seg, &spoiled).expect("spoil");
        let before = files(&data);

        for cmd in [&["verify"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
            let out = run(cmd, &data, Some(&key));
            assert!(!out.status.success(), "{cut}: {cmd:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!(
                    "log/{name}, holds no whole header ({} bytes",
                    spoiled.len()
                )),
                "{cut}: {cmd:?}: {err}"
            );
            assert!(
                err.contains(&format!("records 1 to {last} are missing")),
                "{err}"
            );
        }
        assert!(
            files(&data) == before,
            "{cut}: verify or start changed something"
        );

        let (text, _) = ok(
            &["recover", "--truncate-after-copy", "--dry-run"],
            &data,
            &key,
        );
        assert!(
            text.contains(&format!("give up {last} record(s): records 1 to {last}")),
            "{cut}: {text}"
        );
        assert!(
            text.contains(&format!("keep no record: log/{name} goes whole")),
            "{text}"
        );
        assert!(
            files(&data) == before,
            "{cut}: the dry run changed something"
        );

        let (text, _) = ok(&["recover", "--truncate-after-copy", "--yes"], &data, &key);
        assert!(
            text.contains("the store verifies with 0 records"),
            "{cut}: {text}"
        );
        assert!(!seg.exists());
        let kept: Vec<_> = std::fs::read_dir(&data)
            .expect("data")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("recovered-"))
            })
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            std::fs::read(kept[0].join(format!("{name}.from-0"))).expect("copied aside"),
            spoiled
        );
        ok(&["verify"], &data, &key);
    }
}

/// Flips one byte in the middle of record `seq`'s payload, as a bad
/// sector does (the frame's checksum then fails); returns the segment.
fn flip_in_record(data: &Path, seq: u64) {
    use hotline_server::log::segment;
    let path = data.join("log").join(segment::file_name(1));
    let mut bytes = std::fs::read(&path).expect("segment");
    let (frames, _) = segment::parse_frames(&bytes);
    let f = frames
        .iter()
        .find(|f| f.kind == segment::KIND_RECORD && f.seq == seq)
        .expect("the record");
    bytes[f.payload.start + (f.payload.end - f.payload.start) / 2] ^= 0x10;
    std::fs::write(&path, &bytes).expect("flip");
}

#[test]
fn recover_counts_every_record_after_a_flipped_byte_in_a_payload() {
    for crash in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let key = dir.path().join("master.key");
        ok(
            &["init", "--generate-key-file", key.to_str().expect("utf-8")],
            &data,
            &key,
        );
        for _ in 0..3 {
            ok(&["invite", "--role", "officer"], &data, &key);
        }
        let early = last_record(&ok(&["verify"], &data, &key).0);
        let old_head = std::fs::read(data.join("chain.head")).expect("chain.head");
        for _ in 0..5 {
            ok(&["invite", "--role", "officer"], &data, &key);
        }
        let last = last_record(&ok(&["verify"], &data, &key).0);
        if crash {
            // chain.head behind the log, as after a crash between the
            // segment's sync and the head's write.
            std::fs::write(data.join("chain.head"), &old_head).expect("old head");
        }
        std::fs::remove_dir_all(data.join("cache")).expect("no cache");
        let victim = early - 1;
        assert!(victim > 1);
        flip_in_record(&data, victim);
        let before = files(&data);

        let (text, _) = ok(
            &["recover", "--truncate-after-copy", "--dry-run"],
            &data,
            &key,
        );
        let n = last - victim + 1;
        assert!(
            text.contains(&format!(
                "give up {n} record(s): records {victim} to {last}\n"
            )),
            "crash {crash}: {text}"
        );
        assert!(!text.contains("at least"), "{text}");
        assert!(
            !text.contains("WARNING"),
            "no signed record is absent: {text}"
        );
        assert!(
            text.contains("1 record could not be read"),
            "only the flipped one: {text}"
        );
        assert!(
            text.contains(&format!("(in the {} record(s) that open", n - 1)),
            "{text}"
        );
        assert!(
            text.contains("the records given up that open were written from"),
            "{text}"
        );
        assert!(!text.contains("no time can be read"), "{text}");
        assert!(files(&data) == before, "the dry run changed something");

        let (text, _) = ok(&["recover", "--truncate-after-copy", "--yes"], &data, &key);
        assert!(
            text.contains(&format!("cut the log before record {victim}")),
            "{text}"
        );
        assert_eq!(last_record(&ok(&["verify"], &data, &key).0), victim - 1);
    }
}

/// Starts the server on `data` with `key`, reads its banner until it
/// serves, stops it, and returns (banner, stderr).
fn start_and_stop(data: &Path, key: &Path) -> (String, String) {
    let mut child = ServerProcess(
        Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--master-key-file")
            .arg(key)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let mut stderr = child.0.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its banner and serves");
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        banner.push(line);
    }
    // How it ends (a SIGTERM that came before its handler was installed)
    // is not what this reads.
    let _ = terminate(child);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).expect("stderr");
    (banner.join("\n"), err)
}

/// The entries of `data` whose names start with `prefix`.
fn entries_starting(data: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(data)
        .expect("data")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_confirmed_recovery_is_not_taken_for_a_rollback_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    // Each closes with a snapshot of the state at its last record.
    for _ in 0..6 {
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    let last = last_record(&ok(&["verify"], &data, &key).0);
    assert!(data.join("cache").exists());
    let victim = last - 4;
    flip_in_record(&data, victim);
    let (text, _) = ok(&["recover", "--truncate-after-copy", "--yes"], &data, &key);
    assert!(
        text.contains(&format!("cut the log before record {victim}")),
        "{text}"
    );
    // The snapshot cache (ahead of the log now) went with the copy.
    let copy = entries_starting(&data, "recovered-");
    assert_eq!(copy.len(), 1, "{copy:?}");
    // Named with a UTC time a person reads: recovered-20261130T193105Z.
    let name = copy[0].file_name().and_then(|n| n.to_str()).expect("name");
    let time = name.strip_prefix("recovered-").expect("prefix").as_bytes();
    assert!(
        time.len() == 16
            && time[..8].iter().all(u8::is_ascii_digit)
            && time[8] == b'T'
            && time[9..15].iter().all(u8::is_ascii_digit)
            && time[15] == b'Z',
        "{name}"
    );
    assert!(copy[0].join("cache").is_dir(), "the cache is in the copy");
    assert!(!data.join("cache").exists());

    let (banner, err) = start_and_stop(&data, &key);
    assert!(!banner.contains("POSSIBLE ROLLBACK"), "{banner}");
    assert!(!err.contains("ERROR"), "{err}");
    assert!(!err.contains("holds state up to record"), "{err}");
    assert_eq!(
        entries_starting(&data, "cache.damaged-"),
        Vec::<std::path::PathBuf>::new()
    );
    // The state was rebuilt from the log: the store verifies.
    ok(&["verify"], &data, &key);
}

/// The commands `recover` prints to undo it: the lines between "stop the
/// server and run:" and "then run".
fn undo_commands(recover_stdout: &str) -> Vec<String> {
    recover_stdout
        .lines()
        .skip_while(|l| !l.starts_with("To undo this recovery"))
        .skip(1)
        .take_while(|l| !l.starts_with("then run"))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The log's segments and chain.head, byte for byte.
fn log_and_head(data: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut all = files(&data.join("log"));
    all.push((
        data.join("chain.head"),
        std::fs::read(data.join("chain.head")).expect("chain.head"),
    ));
    all
}

#[test]
fn the_commands_recover_prints_undo_it() {
    for whole in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let key = dir.path().join("master.key");
        ok(
            &["init", "--generate-key-file", key.to_str().expect("utf-8")],
            &data,
            &key,
        );
        for _ in 0..6 {
            ok(&["invite", "--role", "officer"], &data, &key);
        }
        let last = last_record(&ok(&["verify"], &data, &key).0);
        if whole {
            // The only segment's header zeroed: the whole file goes aside.
            let path = data
                .join("log")
                .join(hotline_server::log::segment::file_name(1));
            let mut bytes = std::fs::read(&path).expect("segment");
            bytes[..8].fill(0);
            std::fs::write(&path, &bytes).expect("zero");
        } else {
            flip_in_record(&data, last - 3);
        }
        let before = log_and_head(&data);
        let verify_before = run(&["verify"], &data, Some(&key));
        assert!(!verify_before.status.success());

        let (text, _) = ok(&["recover", "--truncate-after-copy", "--yes"], &data, &key);
        assert!(text.contains("the commands are printed after it"), "{text}");
        let commands = undo_commands(&text);
        assert_eq!(commands.len(), 1, "one guarded line: {text}");
        assert!(log_and_head(&data) != before);
        // Run from another directory, and first on a copy of the store
        // written to after the recovery (as a start would): the checks
        // stop it before it copies anything.
        let written = dir.path().join("written");
        copy_tree(&data, &written);
        ok(&["invite", "--role", "officer"], &written, &key);
        let after_write = log_and_head(&written);
        let c = commands[0].replace(
            &std::fs::canonicalize(&data)
                .expect("abs")
                .display()
                .to_string(),
            &std::fs::canonicalize(&written)
                .expect("abs")
                .display()
                .to_string(),
        );
        let out = Command::new("sh")
            .args(["-c", &c])
            .current_dir("/")
            .output()
            .expect("sh");
        assert!(!out.status.success(), "{c}");
        assert!(
            log_and_head(&written) == after_write,
            "whole {whole}: the undo copied over a store written to since"
        );
        for c in &commands {
            let out = Command::new("sh")
                .args(["-c", c])
                .current_dir("/")
                .output()
                .expect("sh");
            assert!(out.status.success(), "{c}: {out:?}");
        }
        assert!(
            log_and_head(&data) == before,
            "whole {whole}: the printed commands did not put the store back: {text}"
        );
        let verify_after = run(&["verify"], &data, Some(&key));
        assert_eq!(
            String::from_utf8_lossy(&verify_after.stderr),
            String::from_utf8_lossy(&verify_before.stderr)
        );
        assert_eq!(verify_after.status.code(), verify_before.status.code());
    }
}

/// Flips one byte in the middle of record `seq`'s payload in whichever
/// segment holds it; returns where (to flip it back with [`flip_at`]), or
/// `None` if no record frame has `seq`.
fn flip_in_any_segment(data: &Path, seq: u64) -> Option<(std::path::PathBuf, usize)> {
    use hotline_server::log::segment;
    for e in std::fs::read_dir(data.join("log")).expect("log") {
        let path = e.expect("entry").path();
        let bytes = std::fs::read(&path).expect("segment");
        let (frames, _) = segment::parse_frames(&bytes);
        if let Some(f) = frames
            .iter()
            .find(|f| f.kind == segment::KIND_RECORD && f.seq == seq)
        {
            let at = f.payload.start + (f.payload.end - f.payload.start) / 2;
            flip_at(&path, at);
            return Some((path, at));
        }
    }
    None
}

/// Flips the byte at `at` in `path`.
fn flip_at(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("segment");
    bytes[at] ^= 0x10;
    std::fs::write(path, &bytes).expect("flip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_names_every_kind_given_up_the_period_and_an_unreadable_record_that_may_be_an_sos()
{
    use hotline_proto::alert::Priority;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("data.insecure-dev-master-key");
    let (child, banner) = start(&data);
    let (admin, _) = IdentityKeyPair::generate().expect("randomness");
    let admin = connection::enroll(&banner.invite.expect("admin invite"), &admin)
        .await
        .expect("admin enrolls");
    let officer_invite = admin
        .create_invite(Role::Officer, 3600)
        .await
        .expect("invite");
    let defender_invite = admin
        .create_invite(Role::Defender, 3600)
        .await
        .expect("invite");
    admin.close().await;
    let (officer, _) = IdentityKeyPair::generate().expect("randomness");
    let officer = connection::enroll(&officer_invite, &officer)
        .await
        .expect("officer enrolls");
    officer.set_duty(true).await.expect("on duty");
    let (defender, _) = IdentityKeyPair::generate().expect("randomness");
    let defender = connection::enroll(&defender_invite, &defender)
        .await
        .expect("defender enrolls");
    // The SOS, then an officer claims it and goes off duty.
    let alert = defender
        .raise_alert_with(Priority::Immediate, None)
        .await
        .expect("raised");
    officer
        .claim_alert(alert.id)
        .await
        .expect("answered")
        .expect("claimed");
    officer.set_duty(false).await.expect("off duty");
    defender.close().await;
    officer.close().await;
    assert!(terminate(child).success());
    let last = last_record(&ok(&["verify"], &data, &key).0);

    // The SOS's record: the first whose damage takes the raised alert
    // with it (damage before it gives the alert up readable).
    let dry = |data: &Path| {
        ok(
            &["recover", "--truncate-after-copy", "--dry-run"],
            data,
            &key,
        )
        .0
    };
    let mut sos = None;
    for seq in 2..=last {
        let Some((path, at)) = flip_in_any_segment(&data, seq) else {
            continue;
        };
        let text = dry(&data);
        flip_at(&path, at);
        if !text.contains("\n    1 alert(s) raised\n") {
            sos = Some(seq);
            break;
        }
    }
    let sos = sos.expect("the SOS's record");
    assert!(sos > 2);
    assert!(flip_in_any_segment(&data, sos).is_some());
    let text = dry(&data);
    for want in [
        // Every kind given up, in words: the claim and both duty changes
        // came after the SOS and are given up with it.
        "every kind of event in the records given up that open:",
        "    1 claim(s) of an alert by an officer\n",
        "    1 duty change(s): an officer going off duty\n",
        // The period, to the second (neither the claim nor the duty
        // change records a time: the records kept and chain.head's
        // signature bound them).
        " record(s) given up that open records a time of its own (messages and claims, for \
         instance, do not): they were written after ",
        " (the newest time in the records kept) and before ",
        // The unreadable record, plainly.
        "1 record could not be read (damaged, cut short or not in the files): it may be an SOS; \
         tell the duty team to check alerts raised between ",
        " with the defenders",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("alert(s) raised\n    "), "{text}");
    assert!(
        text.contains(&format!("(chain.head's signature at record {last})")),
        "{text}"
    );
    assert!(!text.contains("no time can be read"), "{text}");
    // The period runs from the newest time kept to chain.head's signature.
    let after = time_after(&text, "they were written after ");
    let before = time_after(&text, " (the newest time in the records kept) and before ");
    assert!(after <= before, "{text}");
    // Times carry seconds: "2026-11-30 19:31:42 UTC".
    let at = text
        .find("check alerts raised between ")
        .expect("the window")
        + "check alerts raised between ".len();
    let window = &text[at..];
    let t1 = &window[..23];
    assert!(
        t1.ends_with(" UTC") && t1.as_bytes()[13] == b':' && t1.as_bytes()[16] == b':',
        "{window}"
    );
    assert!(window[23..].starts_with(" and "), "{window}");
}

/// `verify` piped into a reader that closes early (`verify | head -2`)
/// ends quietly with the status of SIGPIPE, without a panic message.
#[test]
fn verify_into_a_pipe_closed_early_ends_without_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    let mut child = Command::new(BIN)
        .arg("verify")
        .arg("--data-dir")
        .arg(&data)
        .arg("--master-key-file")
        .arg(&key)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    // The reader closes before the first line is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
    // Through a shell pipe into `head -1`: the same.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' verify --data-dir '{}' --master-key-file '{}' | head -1 >/dev/null",
            BIN,
            data.display(),
            key.display()
        ))
        .env("RUST_LOG", "off")
        .output()
        .expect("sh runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// Rewrites the first segment without its checkpoint frames of `seqs`
/// (every record kept): the log as a server leaves it when it stops
/// before it checkpoints those records.
fn drop_checkpoint_frames(data: &Path, seqs: &[u64]) {
    use hotline_server::log::segment;
    let path = data.join("log").join(segment::file_name(1));
    let bytes = std::fs::read(&path).expect("segment");
    let (frames, end) = segment::parse_frames(&bytes);
    assert_eq!(end, segment::End::Clean);
    let mut out = bytes[..segment::HEADER_LEN].to_vec();
    let mut dropped = 0;
    for f in &frames {
        if f.kind == segment::KIND_CHECKPOINT && seqs.contains(&f.seq) {
            dropped += 1;
            continue;
        }
        out.extend_from_slice(&bytes[f.offset as usize..f.payload.end]);
    }
    assert_eq!(dropped, seqs.len(), "{frames:?}");
    std::fs::write(&path, out).expect("write");
}

/// The time (`2026-11-30 19:31:42 UTC`, 23 characters) right after the
/// first `prefix` in `text`; in this form, times sort as strings.
fn time_after(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in:\n{text}"))
        + prefix.len();
    let t = text[at..].get(..23).expect("a time").to_owned();
    assert!(
        t.ends_with(" UTC") && t.as_bytes()[13] == b':',
        "{t:?} in:\n{text}"
    );
    t
}

/// The record a head line (`hotline-checkpoint:1:<id>:<seq>:…`) signs.
fn head_line_seq(line: &str) -> u64 {
    line.split(':')
        .nth(3)
        .expect("seq")
        .parse()
        .expect("number")
}

/// A store whose `chain.head` is behind its last records (as a running
/// server's is for up to a second): the backup's head line covers every
/// record in the backup, and passes `verify --expect-head` on it and on a
/// store restored from it. The data directory is not changed.
#[test]
fn a_backup_head_line_covers_every_record_in_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    ok(&["invite", "--role", "officer"], &data, &key);
    let old_head = std::fs::read(data.join("chain.head")).expect("read");
    for _ in 0..3 {
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    // chain.head as it was before the last records were signed.
    std::fs::write(data.join("chain.head"), &old_head).expect("write");
    let (text, _) = ok(&["verify"], &data, &key);
    let last = last_record(&text);
    assert!(
        head_line_seq(&head_line(&text)) < last,
        "the data directory's head is behind: {text}"
    );
    let before = files(&data);

    let backup = dir.path().join("bk");
    let (out, _) = ok(
        &["backup", "--to", backup.to_str().expect("utf-8")],
        &data,
        &key,
    );
    let line = head_line(&out);
    assert_eq!(head_line_seq(&line), last, "{out}");
    assert!(files(&data) == before, "the data directory changed");
    let (verified, _) = ok(&["verify", "--expect-head", &line], &backup, &key);
    assert_eq!(head_line(&verified), line, "{verified}");
    let restored = dir.path().join("restored");
    ok(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &restored,
        &key,
    );
    ok(&["verify", "--expect-head", &line], &restored, &key);
}

/// A copy of the directory tree `from` at `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// Files of the data directory far larger than any such file can be (a
/// sparse 200 GB `chain.head`, `tls/cert.bound`) are refused by `backup`
/// and `verify`, naming the file and its size, never read into memory.
#[test]
fn oversized_files_are_named_and_never_read_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    ok(&["invite", "--role", "officer"], &data, &key);
    let huge = 200u64 << 30;
    for file in ["chain.head", "tls/cert.bound"] {
        let copy = dir.path().join(format!("copy-{}", file.replace('/', "-")));
        copy_tree(&data, &copy);
        std::fs::OpenOptions::new()
            .write(true)
            .open(copy.join(file))
            .expect("open")
            .set_len(huge)
            .expect("sparse");
        let backup = dir.path().join(format!("bk-{}", file.replace('/', "-")));
        for args in [
            vec!["backup", "--to", backup.to_str().expect("utf-8")],
            vec!["verify"],
        ] {
            let out = run(&args, &copy, Some(&key));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{file} {args:?}");
            assert!(
                err.contains(&huge.to_string()) && err.contains(file),
                "{file} {args:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
        assert!(!backup.exists());
    }
}

/// After a recovery that only rewrote a damaged `chain.head`, the printed
/// undo puts the damaged file back only while nothing was written since:
/// once a start or a command wrote records, it stops before copying.
#[test]
fn the_undo_of_a_chain_head_rewrite_stops_once_the_store_was_written_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    ok(
        &["init", "--generate-key-file", key.to_str().expect("utf-8")],
        &data,
        &key,
    );
    for _ in 0..3 {
        ok(&["invite", "--role", "officer"], &data, &key);
    }
    let head = data.join("chain.head");
    let mut bytes = std::fs::read(&head).expect("chain.head");
    let half = bytes.len() / 2;
    bytes[50] ^= 0x55;
    bytes[half + 50] ^= 0x55;
    std::fs::write(&head, &bytes).expect("damage both slots");
    let (text, _) = ok(&["recover", "--truncate-after-copy", "--yes"], &data, &key);
    let commands = undo_commands(&text);
    assert_eq!(commands.len(), 1, "{text}");
    assert!(commands[0].contains("cmp -s"), "{}", commands[0]);

    // Written to since (as a start would): the undo stops, chain.head kept.
    let written = dir.path().join("written");
    copy_tree(&data, &written);
    ok(&["invite", "--role", "officer"], &written, &key);
    let head_now = std::fs::read(written.join("chain.head")).expect("chain.head");
    let c = commands[0].replace(
        &std::fs::canonicalize(&data)
            .expect("abs")
            .display()
            .to_string(),
        &std::fs::canonicalize(&written)
            .expect("abs")
            .display()
            .to_string(),
    );
    let out = Command::new("sh").args(["-c", &c]).output().expect("sh");
    assert!(!out.status.success(), "{c}");
    assert_eq!(
        std::fs::read(written.join("chain.head")).expect("chain.head"),
        head_now
    );
    ok(&["verify"], &written, &key);

    // Nothing written since: it puts the damaged file back.
    let out = Command::new("sh")
        .args(["-c", &commands[0]])
        .output()
        .expect("sh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&head).expect("chain.head"), bytes);
}

/// A case erased by two staff members (issue 12): the `hotline-server
/// verify` binary passes on the store and counts the case's records as
/// shredded; the store opens again with the case erased.
#[test]
fn verify_passes_after_a_case_is_erased_and_counts_its_records_shredded() {
    use hotline_proto::case::seal::{CaseEventContent, CaseKey, EventDraft, seal};
    use hotline_proto::case::{CaseControl, CaseId, CaseState};
    use hotline_proto::e2e::suite::SystemRandomness;
    use hotline_server::log::keys::KeySource;
    use hotline_server::store::{Create, LogStore, open_keys};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    // A data directory as an operator makes it (store, certificate).
    let out = Command::new(BIN)
        .args(["init", "--generate-key-file"])
        .arg(&key)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "off")
        .output()
        .expect("init");
    assert!(out.status.success(), "{out:?}");
    let source = KeySource::File(key.clone());
    let keys = open_keys(&data, &source, Create::Never).expect("keys");
    let store = LogStore::open(&data, keys, 1 << 20).expect("opens");
    let author = IdentityKeyPair::from_seed(&[1; 32]);
    let case = CaseId::from_bytes([9; 16]);
    for (n, state) in [(1u8, CaseState::Open), (2, CaseState::Closed)] {
        let event = seal(
            &author,
            &CaseKey::from_bytes([3; 32]),
            &EventDraft {
                case_id: case,
                event_id: [n; 16],
                roster_version: 1,
                epoch: 1,
                control: CaseControl {
                    state: Some(state),
                    ..CaseControl::default()
                },
            },
            &CaseEventContent {
                note: "sealed".into(),
                ..CaseEventContent::default()
            },
            &mut SystemRandomness,
        )
        .expect("sealed");
        let header = event.header_unverified().expect("reads");
        store
            .append_case_event(event, header, Role::Officer, 100)
            .expect("stored")
            .expect("accepted");
    }
    use hotline_proto::case::erasure::{Closing, ErasureStep, sign_erasure};
    let (asked, confirmed) = (
        IdentityKeyPair::from_seed(&[2; 32]),
        IdentityKeyPair::from_seed(&[3; 32]),
    );
    // The erasure signs the event that closed the case (event 2).
    let closing = Closing {
        author: author.device_id(),
        event_id: [2; 16],
    };
    let request = sign_erasure(&asked, &case, ErasureStep::Request, &closing);
    store
        .request_case_erasure(case, asked.device_id(), asked.public_key(), request, 200, 0)
        .expect("stored")
        .expect("asked");
    let confirm = sign_erasure(&confirmed, &case, ErasureStep::Confirm(request), &closing);
    store
        .confirm_case_erasure(
            case,
            confirmed.device_id(),
            confirmed.public_key(),
            confirm,
            201,
            0,
        )
        .expect("stored")
        .expect("erased");
    store.close().expect("closes");
    drop(store);

    let (stdout, _) = ok(&["verify"], &data, &key);
    assert!(stdout.contains("2 records shredded"), "{stdout}");
    let keys = open_keys(&data, &source, Create::Never).expect("keys");
    let store = LogStore::open(&data, keys, 1 << 20).expect("opens again");
    assert!(store.state().cases.erased.contains_key(&case));
    assert!(store.state().cases.cases.is_empty());
}
