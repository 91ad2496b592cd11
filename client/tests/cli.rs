//! The `hotline` binary as a person uses it, against a real server.

use std::path::Path;
use std::process::{Command, Output};

use hotline_proto::Role;
use hotline_server::{Config, RunningServer};

const BIN: &str = env!("CARGO_BIN_EXE_hotline");
const PASS: &str = "a long test passphrase";

fn hotline(home: &Path, pass: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env("HOTLINE_PASSPHRASE", pass)
        .env("RUST_LOG", "off")
        .output()
        .expect("the client binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn server(dir: &Path) -> RunningServer {
    hotline_server::log::keys::generate_key_file(&dir.join("master.key")).expect("key file");
    server_on(dir, "127.0.0.1:0".parse().expect("addr")).await
}

/// The server of `dir` (its key file made already) listening on `listen`.
async fn server_on(dir: &Path, listen: std::net::SocketAddr) -> RunningServer {
    let config = Config {
        listen,
        data_dir: dir.join("server"),
        ..Config::default()
    };
    let key = hotline_server::log::keys::KeySource::File(dir.join("master.key"));
    // A port just released may take a moment to be free again.
    for _ in 0..50 {
        if let Ok(s) = RunningServer::start(config.clone(), &key).await {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the server does not start");
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_start_enroll_status_invite_devices_revoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let admin_home = dir.path().join("admin");
    let invite = server
        .create_invite(Role::Admin, 600)
        .await
        .expect("invite")
        .to_string();

    let out = hotline(&admin_home, PASS, &["enroll", &invite]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Enrolled as admin"),
        "{}",
        stdout(&out)
    );

    let out = hotline(&admin_home, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("role: admin"), "{}", stdout(&out));
    assert!(stdout(&out).contains(&server.cert_pin().to_string()));

    // The same invite again, from another device: refused, said plainly.
    let out = hotline(&dir.path().join("other"), PASS, &["enroll", &invite]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already been used"),
        "{}",
        stderr(&out)
    );

    // Invite a defender from the admin's client; the defender enrolls.
    let out = hotline(
        &admin_home,
        PASS,
        &["invite", "--role", "defender", "--ttl", "1h"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let defender_invite = text
        .lines()
        .find(|l| l.trim_start().starts_with("hotline:"))
        .expect("an invite line")
        .trim()
        .to_owned();
    let defender_home = dir.path().join("defender");
    let out = hotline(&defender_home, PASS, &["enroll", &defender_invite]);
    assert!(out.status.success(), "{}", stderr(&out));
    let defender_id = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("device id: "))
        .expect("device id printed")
        .to_owned();

    // The defender may not list devices.
    let out = hotline(&defender_home, PASS, &["devices"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("role does not allow"),
        "{}",
        stderr(&out)
    );

    // The admin sees both devices, revokes the defender.
    let out = hotline(&admin_home, PASS, &["devices"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&defender_id));
    assert!(stdout(&out).contains("(this device)"));
    let out = hotline(&admin_home, PASS, &["revoke", &defender_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&defender_home, PASS, &["status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mistakes_are_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let home = dir.path().join("officer");

    // Not enrolled yet.
    let out = hotline(&home, PASS, &["status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("hotline enroll"), "{}", stderr(&out));

    // Not an invite.
    let out = hotline(&home, PASS, &["enroll", "hello"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a valid invite"),
        "{}",
        stderr(&out)
    );

    // A passphrase too short to protect the key.
    let invite = server
        .create_invite(Role::Officer, 600)
        .await
        .expect("invite")
        .to_string();
    let out = hotline(&home, "short", &["enroll", &invite]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 8 characters"),
        "{}",
        stderr(&out)
    );

    let out = hotline(&home, PASS, &["enroll", &invite]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The wrong passphrase.
    let out = hotline(&home, "not the passphrase", &["status"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );

    // A profile whose pin no longer matches the server (an impostor).
    let profile = home.join("profile.toml");
    let text = std::fs::read_to_string(&profile).expect("profile");
    let pin = server.cert_pin().to_string();
    let forged = format!("sha256:{}", "0".repeat(64));
    std::fs::write(&profile, text.replace(&pin, &forged)).expect("write");
    let out = hotline(&home, PASS, &["status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
}

fn invite_line(o: &Output) -> String {
    stdout(o)
        .lines()
        .find(|l| l.trim_start().starts_with("hotline:"))
        .expect("an invite line")
        .trim()
        .to_owned()
}

fn hotline_org(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env("HOTLINE_PASSPHRASE", PASS)
        .env(
            "HOTLINE_ORG_PASSPHRASE",
            "the organisation's own passphrase",
        )
        .env("RUST_LOG", "off")
        .output()
        .expect("the client binary runs")
}

/// An admin with an organisation root, an officer invited by the admin
/// (on the signed roster) and a defender invited by the officer: their
/// home directories under `dir`.
async fn organisation(
    dir: &Path,
    server: &RunningServer,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let admin = dir.join("admin");
    let invite = server
        .create_invite(Role::Admin, 600)
        .await
        .expect("invite")
        .to_string();
    assert!(hotline(&admin, PASS, &["enroll", &invite]).status.success());

    // The admin creates the organisation root offline and pins it.
    let key = dir.join("org.key");
    let out = hotline_org(
        &admin,
        &["org", "init", "--out", key.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("fingerprint:"), "{}", stdout(&out));

    // An officer, invited by the admin's client: the invite carries the root.
    let out = hotline(&admin, PASS, &["invite", "--role", "officer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let officer_invite: hotline_proto::Invite = invite_line(&out).parse().expect("invite");
    assert!(
        officer_invite.org_root.is_some(),
        "the invite carries the organisation root"
    );
    let officer = dir.join("officer");
    assert!(
        hotline(&officer, PASS, &["enroll", &officer_invite.to_string()])
            .status
            .success()
    );

    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 staff devices"), "{}", stdout(&out));

    // The officer invites a defender.
    let out = hotline(&officer, PASS, &["invite", "--role", "defender"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let defender = dir.join("defender");
    assert!(
        hotline(&defender, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    (admin, officer, defender)
}

#[tokio::test(flavor = "multi_thread")]
async fn organisation_roster_and_an_end_to_end_message_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    // The officer publishes its prekeys the first time it checks its inbox.
    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("no new messages"));

    let out = hotline(
        &defender,
        PASS,
        &["send", "they took my phone, call me at the office"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let message_id = stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("message id")
        .to_owned();
    let out = hotline(&defender, PASS, &["delivery", &message_id]);
    assert!(
        stdout(&out).contains("delivered to 0 of 2 devices, read on 0"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("they took my phone, call me at the office"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("from defender"), "{}", stdout(&out));
    // The defender sees it delivered to and read on the officer's device.
    let out = hotline(&defender, PASS, &["delivery", &message_id]);
    assert!(
        stdout(&out).contains("delivered to 1 of 2 devices, read on 1"),
        "{}",
        stdout(&out)
    );
    // Read once: the next look finds nothing new.
    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(stdout(&out).contains("no new messages"), "{}", stdout(&out));

    // A message to a mistyped device id can never be sent: the command
    // fails, says it was removed, and nothing is left waiting.
    let out = hotline(
        &defender,
        PASS,
        &["send", "--to", "07070707070707070707070707070707", "hello"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("removed from the outbox and will not be sent again"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&defender, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    let out = hotline(&defender, PASS, &["outbox", "--drop", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no item 1"), "{}", stderr(&out));

    // Staff do not raise an SOS: said before anything is queued, in the
    // words of the commands.
    let out = hotline(&officer, PASS, &["sos", "--category", "other", "test"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only defenders raise an SOS"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("outbox"), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["outbox"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));

    // SOS: the officer on duty is paged; one claim holds it.
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--category", "arrest", "police at the door"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("1 duty staff paged"), "{text}");
    let id = text.split_whitespace().nth(1).expect("alert id").to_owned();
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(stdout(&out).contains(&format!("#{id}")), "{}", stdout(&out));
    assert!(stdout(&out).contains("raised"), "{}", stdout(&out));
    assert!(hotline(&officer, PASS, &["ack", &id]).status.success());
    let out = hotline(&admin, PASS, &["ack", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already held"), "{}", stderr(&out));
    let out = hotline(&defender, PASS, &["alerts"]);
    assert!(stdout(&out).contains("acknowledged"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["messages"]);
    assert!(
        stdout(&out).contains("police at the door"),
        "{}",
        stdout(&out)
    );
    // The officer answers in the alert's thread; the defender sees which alert.
    let out = hotline(
        &officer,
        PASS,
        &["reply", "--alert", &id, "a lawyer is on the way"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&defender, PASS, &["messages"]);
    assert!(
        stdout(&out).contains("a lawyer is on the way"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!("[alert #{id}]")),
        "{}",
        stdout(&out)
    );
    assert!(hotline(&officer, PASS, &["resolve", &id]).status.success());
    let out = hotline(&defender, PASS, &["alerts"]);
    assert!(stdout(&out).contains("no open alerts"), "{}", stdout(&out));

    // Check-ins: the duress code looks exactly like the normal one.
    let out = hotline(
        &defender,
        PASS,
        &[
            "checkin-setup",
            "--every",
            "6h",
            "--code",
            "4711",
            "--duress-code",
            "0815",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let normal = hotline(&defender, PASS, &["checkin", "--code", "4711"]);
    let duress = hotline(&defender, PASS, &["checkin", "--code", "0815"]);
    assert!(normal.status.success() && duress.status.success());
    assert_eq!(normal.stdout, duress.stdout);
    assert_eq!(normal.stderr, duress.stderr);
    let out = hotline(&defender, PASS, &["alerts"]);
    assert!(stdout(&out).contains("no open alerts"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(stdout(&out).contains("DURESS"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_shows_pages_live_and_rides_out_a_server_restart() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());

    let mut watch = Command::new(BIN)
        .arg("--home")
        .arg(&officer)
        .arg("watch")
        .env("HOTLINE_PASSPHRASE", PASS)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("watch starts");
    let (tx, lines) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(watch.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(watch.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("watch never printed {what:?}; it printed {seen:?}");
    };
    wait_for("watching for alerts");

    let sos = |text: &str| {
        let out = hotline(&defender, PASS, &["sos", "--category", "threat", text]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .split_whitespace()
            .nth(1)
            .expect("alert id")
            .to_owned()
    };
    let first = sos("followed since the airport");
    wait_for(&format!("ALERT #{first} "));

    // The server goes down and comes back on the same address: the watch
    // keeps going and the next page reaches it.
    server.shutdown().await;
    wait_for("reconnecting");
    let server = server_on(dir.path(), addr).await;
    wait_for("reconnected");
    // (The first page may show again: if the server went down before its
    // confirmation arrived, it is pushed again on reconnection.)
    let second = sos("they are at the door");
    wait_for(&format!("ALERT #{second} "));

    let _ = watch.kill();
    let _ = watch.wait();
    server.shutdown().await;
}

/// The `hotline` binary with no passphrase in its environment and nothing
/// on its standard input: what a defender's panic-stricken thumb runs.
fn hotline_without_passphrase(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("HOTLINE_PASSPHRASE")
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the client binary runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn sos_and_checkin_need_no_passphrase_through_the_panic_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    // The officer publishes its prekeys and goes on duty.
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let out = hotline(
        &defender,
        PASS,
        &[
            "checkin-setup",
            "--every",
            "6h",
            "--code",
            "4711",
            "--duress-code",
            "0815",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Without the passphrase, anything else cannot unlock the device...
    let out = hotline_without_passphrase(&defender, &["inbox"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    // ... but an SOS goes out at once, and a check-in too.
    let out = hotline_without_passphrase(
        &defender,
        &["sos", "--category", "arrest", "they are taking me away"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 duty staff paged"),
        "{}",
        stdout(&out)
    );
    let out = hotline_without_passphrase(&defender, &["checkin", "--code", "4711"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("checked in"), "{}", stdout(&out));

    // The officer reads it, marked as sent with the panic key.
    let out = hotline(&officer, PASS, &["messages"]);
    assert!(
        stdout(&out).contains("they are taking me away"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("panic key"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(stdout(&out).contains("sos"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_are_warned_of_the_roster_expiring_and_of_not_being_on_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    // A month-long roster: nothing to say.
    let out = hotline(&officer, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("staff roster: expires"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("this device is on it"),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));

    // The admin renews it for two days only: every staff command warns.
    let key = dir.path().join("org.key");
    let out = hotline_org(
        &admin,
        &[
            "org",
            "sign-roster",
            "--key",
            key.to_str().expect("utf-8"),
            "--valid",
            "2d",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [&["status"][..], &["alerts"][..]] {
        let out = hotline(&officer, PASS, args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("WARNING: the staff roster expires in "),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("hotline org sign-roster"));
    }

    // An officer enrolled after the roster is told it is not on it, and
    // what to ask, when it goes on duty and in its status.
    let out = hotline(&admin, PASS, &["invite", "--role", "officer"]);
    let late = dir.path().join("late");
    assert!(
        hotline(&late, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let out = hotline(&late, PASS, &["status"]);
    assert!(
        stdout(&out).contains("this device is NOT on it"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("NOT on the organisation's signed roster"));
    let out = hotline(&late, PASS, &["duty", "on"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("you will not be paged"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("hotline org sign-roster"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sos_from_a_device_with_no_root_is_raised_without_its_text_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    // People first, no organisation root yet.
    let admin = dir.path().join("admin");
    let invite = server
        .create_invite(Role::Admin, 600)
        .await
        .expect("invite")
        .to_string();
    assert!(hotline(&admin, PASS, &["enroll", &invite]).status.success());
    let out = hotline(&admin, PASS, &["invite", "--role", "officer"]);
    let officer = dir.path().join("officer");
    assert!(
        hotline(&officer, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let out = hotline(&officer, PASS, &["invite", "--role", "defender"]);
    let defender = dir.path().join("defender");
    let out = hotline(&defender, PASS, &["enroll", &invite_line(&out)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("without the passphrase"),
        "{}",
        stdout(&out)
    );
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());

    let out = hotline_without_passphrase(&defender, &["sos", "they are here"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("1 duty staff paged"), "{text}");
    assert!(
        text.contains("could NOT be protected and was NOT sent, but the alert WAS raised"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("no organisation root is pinned"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(stdout(&out).contains("[NO TEXT"), "{}", stdout(&out));
}
