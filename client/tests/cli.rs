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

/// A server of `dir` (with a new key file) where one defender device may
/// have `open_alerts` open SOS alerts before further ones join its newest.
async fn server_with_open_alerts(dir: &Path, open_alerts: u32) -> RunningServer {
    hotline_server::log::keys::generate_key_file(&dir.join("master.key")).expect("key file");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("server"),
        ..Config::default()
    };
    config.limits.open_alerts_per_device = open_alerts;
    let key = hotline_server::log::keys::KeySource::File(dir.join("master.key"));
    RunningServer::start(config, &key).await.expect("server")
}

/// The server of `dir` (its key file made already) listening on `listen`.
async fn server_on(dir: &Path, listen: std::net::SocketAddr) -> RunningServer {
    server_configured(dir, listen, |_| {}).await
}

/// [`server_on`], after letting `adjust` change the configuration.
async fn server_configured(
    dir: &Path,
    listen: std::net::SocketAddr,
    adjust: impl FnOnce(&mut Config),
) -> RunningServer {
    let mut config = Config {
        listen,
        data_dir: dir.join("server"),
        ..Config::default()
    };
    adjust(&mut config);
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
    // No staff device is connected: the defender is told nobody has
    // seen it yet, and how many get it when they connect.
    assert!(
        text.contains("NONE OF THE STAFF PAGED SO FAR IS CONNECTED")
            && text.contains("1 staff device(s) get the page when they connect"),
        "{text}"
    );
    let id = text.split_whitespace().nth(1).expect("alert id").to_owned();
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(stdout(&out).contains(&format!("#{id}")), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("paging the staff on duty"),
        "{}",
        stdout(&out)
    );
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
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let watch = Watch::start(&officer);
    let wait_for = |what: &str| watch.wait_for(what);

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
    drop(watch);
    server.shutdown().await;
}

/// Two `hotline watch` of one device, with the server allowing one
/// connection per device: the newer one takes the place; the older says it
/// was superseded and is NOT connected, waits (10 s, growing while it keeps
/// being pushed out, so two watches do not fight), and comes back: an
/// officer's pager is never silenced for good. A defender's SOS likewise
/// takes its device's place from the defender's own watch: it is raised,
/// never kept out.
#[tokio::test(flavor = "multi_thread")]
async fn a_superseded_watch_says_so_and_comes_back_once_its_place_is_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.limits.max_connections_per_device = 1;
    })
    .await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let first = Watch::start(&officer);
    first.wait_for("open alerts");
    let second = Watch::start(&officer);
    second.wait_for("open alerts");

    // The officer's pager is never silenced for good: the superseded watch
    // says so, and comes back on its own once the other is gone.
    let line = first.wait_for("superseded");
    assert!(
        line.contains("NOT CONNECTED") && line.contains("reconnecting in 10 s"),
        "{line}"
    );
    drop(second);
    first.wait_for("reconnected");
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--category", "arrest", "at the door"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    first.wait_for("ALERT #");

    // A defender's SOS is never kept out by its own watch: it takes the
    // device's one place; the defender's watch says so and comes back
    // once the SOS is done, and the officer's watch is left alone.
    let defender_watch = Watch::start(&defender);
    defender_watch.wait_for("open alerts");
    let out = hotline(&defender, PASS, &["sos", "--category", "attack", "again"]);
    assert!(out.status.success(), "{}", stderr(&out));
    defender_watch.wait_for("superseded");
    defender_watch.wait_for("reconnected");
    assert!(
        first
            .lines_for(std::time::Duration::from_secs(3))
            .iter()
            .all(|l| !l.contains("reconnect") && !l.contains("superseded")),
        "the officer's watch is left alone"
    );
    drop(first);
    server.shutdown().await;
}

/// The line of `out` that starts with `label`, without it.
fn field(out: &Output, label: &str) -> String {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {}", stdout(out)))
        .trim()
        .to_owned()
}

/// A device enrolled before the root existed pins it from what `org show`
/// prints; a pasted fingerprint is refused with what to paste instead, and
/// another root replaces the pinned one only when asked to, after both
/// fingerprints are shown.
#[tokio::test(flavor = "multi_thread")]
async fn a_root_is_pinned_from_its_public_key_never_its_fingerprint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let admin = dir.path().join("admin");
    let early = dir.path().join("early");
    for home in [&admin, &early] {
        let invite = server
            .create_invite(Role::Admin, 600)
            .await
            .expect("invite")
            .to_string();
        assert!(hotline(home, PASS, &["enroll", &invite]).status.success());
    }
    let key = dir.path().join("org.key");
    let out = hotline_org(
        &admin,
        &["org", "init", "--out", key.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A second `org init` on the same device writes nothing.
    let again = dir.path().join("org2.key");
    let out = hotline_org(
        &admin,
        &["org", "init", "--out", again.to_str().expect("utf-8")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already trusts an organisation root"),
        "{}",
        stderr(&out)
    );
    assert!(!again.exists(), "no second key file was left behind");

    // `org show` prints the pinned root again, from the device or the key file.
    let shown = hotline_org(&admin, &["org", "show"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let public_key = field(&shown, "public key:");
    let fingerprint = field(&shown, "fingerprint:");
    let from_file = hotline_org(
        &early,
        &["org", "show", "--key", key.to_str().expect("utf-8")],
    );
    assert_eq!(field(&from_file, "public key:"), public_key);
    let out = hotline_org(&early, &["org", "show"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no organisation root is pinned"),
        "{}",
        stderr(&out)
    );

    // The fingerprint without its spaces is 64 hex digits too: the
    // server's roster, signed by the real root, refuses it.
    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&early, PASS, &["trust-org", &fingerprint.replace(' ', "")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not signed by this key") && stderr(&out).contains("fingerprint"),
        "{}",
        stderr(&out)
    );

    // The fingerprint, however pasted, is refused and nothing is pinned.
    let out = hotline(&early, PASS, &["trust-org", &fingerprint]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("fingerprint, not its public key")
            && stderr(&out).contains("hotline org show"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&early, PASS, &["trust-org", &format!("'{fingerprint}'")]);
    assert!(!out.status.success());
    assert!(!hotline_org(&early, &["org", "show"]).status.success());

    // The public key pins, and shows the fingerprint to compare.
    let out = hotline(&early, PASS, &["trust-org", &public_key]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&fingerprint), "{}", stdout(&out));

    // Another root: refused without --replace, both fingerprints shown.
    let other_key = dir.path().join("other.key");
    let other = hotline_org(
        &dir.path().join("nobody"),
        &["org", "init", "--out", other_key.to_str().expect("utf-8")],
    );
    assert!(other.status.success(), "{}", stderr(&other));
    let other_public = field(&other, "public key:");
    let other_fingerprint = field(&other, "fingerprint:");
    let out = hotline(&early, PASS, &["trust-org", &other_public]);
    assert!(!out.status.success());
    for shown in [&fingerprint, &other_fingerprint, &"--replace".to_owned()] {
        assert!(stderr(&out).contains(shown.as_str()), "{}", stderr(&out));
    }
    assert_eq!(
        field(&hotline_org(&early, &["org", "show"]), "public key:"),
        public_key
    );
    let out = hotline(&early, PASS, &["trust-org", &other_public, "--replace"]);
    assert!(
        !out.status.success(),
        "the server's roster is not signed by it"
    );
    let out = hotline(
        &early,
        PASS,
        &["trust-org", &other_public, "--replace", "--force"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        field(&hotline_org(&early, &["org", "show"]), "public key:"),
        other_public
    );
}

/// A woken officer can tell whether they are on duty, and anyone on the
/// team who else is; going off duty with nobody left says so.
#[tokio::test(flavor = "multi_thread")]
async fn duty_shows_ones_own_state_and_who_is_on_duty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    let officer_id = field(&hotline(&officer, PASS, &["status"]), "device id:");

    let out = hotline(&officer, PASS, &["duty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("you are off duty"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("WARNING: nobody who can be paged is on duty"),
        "{}",
        stdout(&out)
    );

    let out = hotline(&officer, PASS, &["duty", "on"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("you are ON duty (said `duty on`)"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("WARNING"), "{}", stdout(&out));

    let out = hotline(&admin, PASS, &["duty", "who"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("you are off duty"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(&officer_id[..8]) && l.contains("officer")),
        "{text}"
    );

    let out = hotline(&officer, PASS, &["duty", "off"]);
    assert!(
        stdout(&out).contains("WARNING: nobody who can be paged is on duty"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&admin, PASS, &["duty", "who"]);
    assert!(
        stdout(&out).contains("nobody else is on duty"),
        "{}",
        stdout(&out)
    );

    // Who is on duty is the team's business, not a defender's.
    let out = hotline(&defender, PASS, &["duty", "who"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("may not see who is on duty"),
        "{}",
        stderr(&out)
    );
}

/// People, not hex: a device invited with a label is shown by it (next to
/// the start of its id) to those it writes to; a person may name a device
/// for themselves; the start of an id, a name, and `#35` are accepted
/// where ids were.
#[tokio::test(flavor = "multi_thread")]
async fn labels_names_prefixes_and_hash_alert_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());

    // A control character never reaches anyone's terminal.
    let out = hotline(
        &officer,
        PASS,
        &["invite", "--role", "defender", "--label", "Ana\u{1b}[2J"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be a label"),
        "{}",
        stderr(&out)
    );

    let out = hotline(
        &officer,
        PASS,
        &["invite", "--role", "defender", "--label", "Ana P. (Bogotá)"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ana = dir.path().join("ana");
    assert!(
        hotline(&ana, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let ana_id = field(&hotline(&ana, PASS, &["status"]), "device id:");
    let out = hotline(&ana, PASS, &["send", "I am safe for now"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(
        stdout(&out).contains(&format!("from defender Ana P. (Bogotá) ({})", &ana_id[..8])),
        "{}",
        stdout(&out)
    );
    // The officer answers her by her name, or the start of her id.
    for to in ["Ana P. (Bogotá)", &ana_id[..8]] {
        let out = hotline(&officer, PASS, &["send", "--to", to, "we are on it"]);
        assert!(out.status.success(), "{to}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("and to Ana P. (Bogotá) ({})", &ana_id[..8])),
            "{}",
            stdout(&out)
        );
    }
    // The officer's own name for her wins, and is found by that name.
    let out = hotline(&officer, PASS, &["label", &ana_id[..8], "Ana (journalist)"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["label", "ana (JOURNALIST)"]);
    assert_eq!(
        stdout(&out).trim(),
        format!("Ana (journalist) ({})", &ana_id[..8])
    );
    let out = hotline(&officer, PASS, &["label"]);
    assert!(
        stdout(&out).contains("calls itself \"Ana P. (Bogotá)\""),
        "{}",
        stdout(&out)
    );
    let out = hotline(&officer, PASS, &["label", "nobody-here", "x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no device known here matches"),
        "{}",
        stderr(&out)
    );

    // An alert id is taken with or without '#'.
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let out = hotline(&ana, PASS, &["sos", "they are here"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("alert id")
        .to_owned();
    let out = hotline(&officer, PASS, &["ack", &format!("#{id}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["ack", "#x1"]);
    assert!(
        stderr(&out).contains("is not an alert id"),
        "{}",
        stderr(&out)
    );

    // An admin revokes by the one rule for naming a device (at least 4
    // hex digits of its id, or its name), never by fewer digits.
    let out = hotline(&admin, PASS, &["revoke", &ana_id[..3]]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("give at least 4 hex digits of its id"),
        "{}",
        stderr(&out)
    );
    // Output into a pipe closed early (`| head`) ends quietly, without a
    // panic and a backtrace.
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(&officer)
        .arg("label")
        .env("HOTLINE_PASSPHRASE", PASS)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("ends");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));

    // Four digits name it as they do everywhere else.
    let out = hotline(&admin, PASS, &["revoke", &ana_id[..4]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&ana_id[..8]) && stdout(&out).contains(" revoked ("),
        "{}",
        stdout(&out)
    );

    // The revoked device is told plainly that nothing it queues will go.
    let out = hotline(&ana, PASS, &["sos", "--wait", "5", "after revocation"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing ever will be from this device"),
        "{}",
        stderr(&out)
    );
}

/// The number after the first word of a line such as "message 3 sent ...".
fn second_word(o: &Output) -> u64 {
    stdout(o)
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("a number in {:?}", stdout(o)))
}

#[tokio::test(flavor = "multi_thread")]
async fn duress_from_the_command_line_leaves_no_trace_on_the_phone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());

    let setup = |every: &str, code: &str, duress: &str| {
        hotline(
            &defender,
            PASS,
            &[
                "checkin-setup",
                "--every",
                every,
                "--code",
                code,
                "--duress-code",
                duress,
            ],
        )
    };
    let out = setup("6h", "4711", "0815");
    assert!(out.status.success(), "{}", stderr(&out));
    // The check-in key stays on the phone, readable without the passphrase.
    let key = std::fs::read(defender.join("checkin.key")).expect("checkin.key");
    assert_eq!(key.len(), 32);

    // Sends between check-ins: ids and words are the same after a normal
    // and after a duress code, and count only this phone's messages.
    let mut ids = Vec::new();
    let mut outputs = Vec::new();
    for code in ["4711", "0815", "4711", "0815"] {
        let out = hotline(&defender, PASS, &["send", "still here"]);
        assert!(out.status.success(), "{}", stderr(&out));
        ids.push(second_word(&out));
        let out = hotline(&defender, PASS, &["checkin", "--code", code]);
        assert!(out.status.success(), "{}", stderr(&out));
        outputs.push((out.stdout, out.stderr));
    }
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");

    // Staff see the duress alerts; the phone sees nothing.
    let out = hotline(&officer, PASS, &["alerts"]);
    let listed = stdout(&out);
    let duress_id = listed
        .lines()
        .find(|l| l.contains("DURESS"))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.trim_start_matches('#').to_owned())
        .unwrap_or_else(|| panic!("a duress alert in {listed}"));
    let out = hotline(&officer, PASS, &["ack", &duress_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the defender is NOT told"),
        "{}",
        stdout(&out)
    );
    // A reply in its thread is refused before anything is sent.
    let out = hotline(
        &officer,
        PASS,
        &["reply", "--alert", &duress_id, "we got your signal"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Nothing was sent"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    let out = hotline(&defender, PASS, &["inbox"]);
    assert!(stdout(&out).contains("no new messages"), "{}", stdout(&out));
    let out = hotline(&defender, PASS, &["alerts", "--all"]);
    assert!(stdout(&out).contains("no open alerts"), "{}", stdout(&out));

    // A coercer stops the check-ins: the phone says what it always said;
    // staff see it.
    let out = setup("off", "", "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "check-ins stopped");
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(
        stdout(&out).contains("check-ins stopped"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["alerts", "--all"]);
    assert!(stdout(&out).contains("no open alerts"), "{}", stdout(&out));
}

/// A `hotline watch` running on `home`, and a way to wait for a line it
/// prints (stdout or stderr).
struct Watch {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watch {
    fn start(home: &Path) -> Watch {
        Watch::start_with(home, &[])
    }

    /// [`Watch::start`], with `args` after `watch`.
    fn start_with(home: &Path, args: &[&str]) -> Watch {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .arg("--home")
            .arg(home)
            .arg("watch")
            .args(args)
            .env("HOTLINE_PASSPHRASE", PASS)
            .env("RUST_LOG", "off")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("watch starts");
        let (tx, lines) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let w = Watch { child, lines };
        w.wait_for("watching for alerts and messages");
        w
    }

    /// The next line containing `what`, within 30 s (lines before it are
    /// passed over).
    fn wait_for(&self, what: &str) -> String {
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("watch never printed {what:?}; it printed {seen:?}");
    }

    /// Every line printed within `wait`.
    fn lines_for(&self, wait: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                // Both pipes closed: the watch ended.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left);
                    break;
                }
            }
        }
        seen
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The alert id from `sos` output ("alert N raised ...").
fn alert_id(o: &Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("alert "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no alert raised: {} {}", stdout(o), stderr(o)))
        .to_owned()
}

/// Offline, `sos` keeps trying for the time given, says in capitals that
/// nobody has been alerted, and exits 3 (queued), not 1; a second SOS
/// typed meanwhile joins the first; a message is queued with the same
/// words and status; the outbox lists and drops items; and once the
/// server is back, the two SOSes raise one alert, whose thread holds
/// both texts.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_sos_says_nobody_is_alerted_and_two_become_one_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    server.shutdown().await;

    let started = std::time::Instant::now();
    let out = hotline(
        &defender,
        PASS,
        &[
            "sos",
            "--wait",
            "3",
            "--category",
            "arrest",
            "police at the door",
        ],
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("NOBODY HAS BEEN ALERTED YET"), "{all}");
    assert!(all.contains("giving up in"), "a countdown: {all}");
    assert!(all.contains("waits in this device's outbox"), "{all}");
    assert!(!all.contains("error:"), "{all}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    let out = hotline(
        &defender,
        PASS,
        &[
            "sos",
            "--wait",
            "0",
            "--priority",
            "urgent",
            "they took my phone",
        ],
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("added to the SOS already waiting"), "{all}");
    assert!(all.contains("NOBODY HAS BEEN ALERTED YET"), "{all}");

    // A third, without text, in French: it joins them too.
    let out = Command::new(BIN)
        .arg("--home")
        .arg(&defender)
        .args(["sos", "--wait", "0"])
        .env("HOTLINE_PASSPHRASE", PASS)
        .env("HOTLINE_LANG", "fr")
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("added to the SOS already waiting"));

    // A message offline: queued, said so, status 3.
    let out = hotline(&defender, PASS, &["send", "a note for later"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("NOT SENT YET"), "{}", stdout(&out));
    let out = hotline(&defender, PASS, &["outbox", "--list"]);
    let list = stdout(&out);
    // Each SOS waits with its own category and priority (issue 12, third
    // walk-through): they go out together, as one alert.
    assert!(list.contains("  1  an SOS (immediate)"), "{list}");
    assert!(list.contains("  2  an SOS (urgent)"), "{list}");
    assert!(list.contains("  3  an SOS (immediate)"), "{list}");
    assert!(list.contains("  4  a message to the staff"), "{list}");
    assert!(!list.contains("  5  "), "{list}");
    // The message was "item 1" when queued; the SOS came first since.
    // Dropping item 1 now would cost the SOS: refused, nothing removed.
    let out = hotline(&defender, PASS, &["outbox", "--drop", "1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("item 1 is an SOS") && stderr(&out).contains("--sos-too"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&defender, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("  1  an SOS"), "{}", stdout(&out));
    let out = hotline(&defender, PASS, &["outbox", "--drop", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&defender, PASS, &["outbox", "--list"]);
    assert!(!stdout(&out).contains("  4  "), "{}", stdout(&out));

    // Back up: one `outbox` sends the three SOSes, which raise one alert.
    let server = server_on(dir.path(), addr).await;
    let out = hotline(&defender, PASS, &["outbox"]);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("sent 3 of 3"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["alerts", "--all"]);
    let alerts: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let id = alerts[0][1..]
        .split_whitespace()
        .next()
        .expect("id")
        .to_owned();
    let out = hotline(&officer, PASS, &["messages", "--alert", &id]);
    let thread = stdout(&out);
    assert!(thread.contains("police at the door"), "{thread}");
    assert!(thread.contains("they took my phone"), "{thread}");
    assert!(thread.contains("j'ai besoin d'aide"), "{thread}");
    // Nothing waits, and nothing more goes out.
    let out = hotline(&defender, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    server.shutdown().await;
}

/// `sos` without text sends a default one, and says how many staff
/// devices got the page now and how many get it later; messages are
/// pushed to running watches and shown in their threads, both ways; and
/// the thread is kept on the device after `inbox` has shown it.
#[tokio::test(flavor = "multi_thread")]
async fn watch_shows_messages_in_their_threads_and_the_device_keeps_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for staff in [&admin, &officer] {
        assert!(hotline(staff, PASS, &["inbox"]).status.success()); // prekeys
        assert!(hotline(staff, PASS, &["duty", "on"]).status.success());
    }
    assert!(hotline(&defender, PASS, &["inbox"]).status.success()); // prekeys
    let officer_watch = Watch::start(&officer);
    let defender_watch = Watch::start(&defender);

    // Two on duty, one of them connected.
    let out = hotline(&defender, PASS, &["sos"]);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out)
            .contains("1 staff device(s) received the page now; 1 more get it when they connect"),
        "{}",
        stdout(&out)
    );
    let id = alert_id(&out);
    officer_watch.wait_for(&format!("ALERT #{id} "));
    // The alert's text, filed in its thread: the default text.
    officer_watch.wait_for(&format!("[alert #{id}]:"));
    officer_watch.wait_for("SOS — I need help now");

    // The defender follows up; the officer's watch shows it in the thread.
    let out = hotline(
        &defender,
        PASS,
        &["reply", "--alert", &id, "they are breaking the door"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let heading = officer_watch.wait_for(&format!("[alert #{id}]:"));
    assert!(heading.contains("from defender"), "{heading}");
    officer_watch.wait_for("they are breaking the door");

    // The officer answers; the defender's watch shows it in the thread.
    let out = hotline(
        &officer,
        PASS,
        &["reply", "--alert", &id, "a lawyer is on the way"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let heading = defender_watch.wait_for(&format!("[alert #{id}]:"));
    assert!(heading.contains("from officer"), "{heading}");
    defender_watch.wait_for("a lawyer is on the way");
    // The defender's watch hears that someone has the alert, and how it
    // ended.
    assert!(hotline(&officer, PASS, &["ack", &id]).status.success());
    let line = defender_watch.wait_for(&format!("your alert #{id}"));
    assert!(
        line.contains("acknowledged") && line.contains("Someone is on it"),
        "{line}"
    );
    assert!(hotline(&officer, PASS, &["resolve", &id]).status.success());
    let line = defender_watch.wait_for("all clear");
    assert!(
        line.contains(&format!("alert #{id} was resolved")),
        "{line}"
    );
    drop(defender_watch);
    drop(officer_watch);

    // Shown by the watch: nothing new for `inbox`; but the thread is kept.
    let out = hotline(&defender, PASS, &["inbox"]);
    assert!(stdout(&out).contains("no new messages"), "{}", stdout(&out));
    let out = hotline(&defender, PASS, &["messages", "--alert", &id]);
    let thread = stdout(&out);
    for text in [
        "your SOS",
        "SOS — I need help now",
        "they are breaking the door",
        "a lawyer is on the way",
    ] {
        assert!(thread.contains(text), "{text:?} missing from {thread}");
    }
    // And again: kept, not consumed.
    let again = hotline(&defender, PASS, &["messages", "--alert", &id]);
    assert_eq!(stdout(&again), thread);
    // `reply` and `messages` are in the help, with the exit statuses.
    let help = Command::new(BIN).arg("--help").output().expect("help");
    let help = stdout(&help);
    for word in ["reply", "messages", "3 queued"] {
        assert!(help.contains(word), "{word:?} missing from {help}");
    }
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
        stdout(&out).contains("1 staff device(s) get the page when they connect"),
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
    assert!(stdout(&out).contains("SOS"), "{}", stdout(&out));

    // A wrong passphrase (a stale launcher script, a shaking hand) does
    // not cost the SOS: the panic key raises it, and says so.
    let out = hotline(&defender, "not the passphrase", &["sos", "second"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("raising the SOS with the panic key instead"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("raised"), "{}", stdout(&out));
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
        stdout(&out).contains("NOT on the signed roster, so NOT paged"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("hotline org sign-roster"));
    // Colleagues are not misled: it is listed as not paged, and does not
    // count as someone covering.
    let out = hotline(&officer, PASS, &["duty", "who"]);
    assert!(
        stdout(&out).contains("NOT on the signed roster, so NOT paged"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("WARNING: nobody who can be paged is on duty"),
        "{}",
        stdout(&out)
    );
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
    assert!(
        text.contains("1 staff device(s) get the page when they connect"),
        "{text}"
    );
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

/// What a tired officer reads: `alerts` under a header row, and a `watch`
/// that starts with what is already open; each alert with the time of day,
/// what happened (the SOS's category and words), who by name, and where
/// it stands in words; an all clear that says how it ended.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_watch_read_as_words_names_and_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_, officer, _) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    let out = hotline(
        &officer,
        PASS,
        &["invite", "--role", "defender", "--label", "Ana P."],
    );
    let ana = dir.path().join("ana");
    assert!(
        hotline(&ana, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let ana_id = field(&hotline(&ana, PASS, &["status"]), "device id:");

    // Nobody is on duty: the first step has nobody and is passed at once.
    // Sent with the panic key (no passphrase), as a first contact: staff
    // still see it by the name the invite gave.
    let out = hotline_without_passphrase(
        &ana,
        &[
            "sos",
            "--category",
            "arrest",
            "police at the door\nthey have my laptop",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = alert_id(&out);

    let out = hotline(&officer, PASS, &["alerts"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ALERT") && lines[0].contains("RAISED"),
        "{text}"
    );
    assert!(lines[1].starts_with(&format!("#{id}")), "{text}");
    for want in [
        " UTC ",
        "immediate",
        "SOS: arrest",
        &format!("from Ana P. ({})", &ana_id[..8]),
    ] {
        assert!(lines[1].contains(want), "{want:?} missing from {text}");
    }
    assert!(lines[2].contains("\"police at the door\" […]"), "{text}");
    assert!(
        lines[3].contains("now paging the backup officers"),
        "{text}"
    );

    // A watch begun later starts with what is open.
    let watch = Watch::start(&officer);
    watch.wait_for("open alerts right now:");
    let line = watch.wait_for(&format!("#{id}"));
    assert!(line.contains("Ana P."), "{line}");
    watch.wait_for("\"police at the door\"");
    watch.wait_for("now paging the backup officers");

    assert!(hotline(&officer, PASS, &["ack", &id]).status.success());
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(
        stdout(&out).contains("acknowledged, held by YOU"),
        "{}",
        stdout(&out)
    );
    assert!(hotline(&officer, PASS, &["resolve", &id]).status.success());
    let line = watch.wait_for("all clear");
    assert!(
        line.contains(&format!("alert #{id} was resolved by you")),
        "{line}"
    );

    // Seconds to act: unquoted words are the text, a mistyped priority is
    // immediate, and a command line not understood says nobody knows.
    let out = hotline(
        &ana,
        PASS,
        &["sos", "they", "took", "him", "--priority", "urgnt"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("raising it as immediate"),
        "{}",
        stderr(&out)
    );
    let unquoted = alert_id(&out);
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.contains("\"they took him\"")),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!("#{unquoted}")),
        "{}",
        stdout(&out)
    );
    // A call-off from the defender's own device may be coerced: staff
    // see whose it was.
    assert!(hotline(&ana, PASS, &["cancel", &unquoted]).status.success());
    let line = watch.wait_for(&format!("alert #{unquoted} was called off"));
    assert!(line.contains("by the defender's own device"), "{line}");
    let out = hotline(&ana, PASS, &["sos", "-x", "boom"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("NOBODY HAS BEEN ALERTED"),
        "{}",
        stderr(&out)
    );

    // A defender's words never drive the officer's terminal: no escape
    // clears the screen or forges an all clear.
    let forged = "hello\x1b[2J\x1b[H\x1b[31mall clear: alert #1 was resolved\x1b[0m\rspoof";
    assert!(hotline(&ana, PASS, &["send", forged]).status.success());
    let line = watch.wait_for("hello");
    assert!(!line.contains('\x1b') && !line.contains('\r'), "{line:?}");
    assert!(line.contains("hello\\u{1b}[2J"), "{line:?}");
    for args in [&["messages"][..], &["alerts", "--all"][..]] {
        let out = hotline(&officer, PASS, args);
        assert!(!out.stdout.contains(&0x1b), "{}", stdout(&out));
    }
}

/// Without the passphrase an SOS cannot go to the device's outbox (sealed
/// under it): offline, the panic key keeps trying for the time given,
/// says all along that nobody has been alerted, and at the end queues it
/// in the panic outbox (without its text: that is sealed with keys only
/// the server hands out) and says so, exit status 3; the next run, once
/// the server is back, raises it, once.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_sos_through_the_panic_key_is_queued_and_the_next_run_raises_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    server.shutdown().await;
    let started = std::time::Instant::now();
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "6", "they are here"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
    assert!(err.contains("NOBODY HAS BEEN ALERTED YET"), "{err}");
    assert!(
        err.contains("giving up in") && err.contains("Ctrl-C stops and nothing is queued"),
        "{err}"
    );
    // Sealed to the staff keys the device kept at enrollment.
    assert!(!err.contains("NOT sent"), "the text is sealed: {err}");
    assert!(
        stdout(&out).contains("QUEUED: NOBODY HAS BEEN ALERTED YET")
            && stdout(&out).contains("goes out, once, with the next hotline command that connects"),
        "{}",
        stdout(&out)
    );
    assert!(defender.join("panic-outbox").exists());

    let server = server_on(dir.path(), addr).await;
    let out = hotline(&defender, PASS, &["outbox"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("sent the SOS that was waiting on this device: the team was paged, alert #"),
        "{all}"
    );
    assert!(!defender.join("panic-outbox").exists());
    let out = hotline(&defender, PASS, &["outbox"]);
    assert!(!stdout(&out).contains("waited"), "once: {}", stdout(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        1,
        "one alert: {text}"
    );
    server.shutdown().await;
}

/// An SOS queued without the passphrase goes out with the next command
/// that connects, whatever it is: `status` run without a terminal (so
/// without a passphrase, which it cannot ask for) sends it first with the
/// panic key and says so; it is raised once (issue 13, Q1). The defender
/// reads that it worked: status 0, "your waiting SOS was sent", and what
/// the rest of status needs (issue 12, walk-through: it exited 1 with
/// "cannot ask for the passphrase").
#[tokio::test(flavor = "multi_thread")]
async fn a_queued_panic_sos_is_sent_by_status_even_without_the_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    server.shutdown().await;
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "they are here"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(defender.join("panic-outbox").exists());

    let server = server_on(dir.path(), addr).await;
    let out = hotline_without_passphrase(&defender, &["status"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out)
            .contains("sent the SOS that was waiting on this device: the team was paged, alert #"),
        "{all}"
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        stdout(&out).contains("your waiting SOS was sent")
            && stdout(&out).contains("needs the passphrase"),
        "{all}"
    );
    assert!(!all.contains("error"), "{all}");
    assert!(!defender.join("panic-outbox").exists());
    // Once: the next command sends nothing more.
    let out = hotline(&defender, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("was waiting"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        1,
        "one alert: {text}"
    );
    server.shutdown().await;
}

/// An SOS queued with the passphrase (the server could not be reached)
/// goes out with the next command that connects, WHATEVER it is: each
/// command below, run once after an SOS was queued, raises it first and
/// says so (even a command the defender may not use, or one that then
/// fails), and staff read every SOS's words, each raised once (issue 12,
/// walk-through: `status` said "connected" and sent nothing).
#[tokio::test(flavor = "multi_thread")]
async fn a_queued_sos_is_sent_first_by_every_command_that_connects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_open_alerts(dir.path(), 100).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    // Nothing answers there: an SOS raised through it waits in the outbox.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let dead = dead.local_addr().expect("addr").to_string();
    let bogus_root = "ab".repeat(32);
    let commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["inbox"],
        vec!["messages"],
        vec!["alerts"],
        vec!["delivery", "1"],
        vec!["send", "a note"],
        vec!["reply", "--alert", "1", "a note"],
        vec!["my-case"],
        vec!["my-case", "reply", "a note"],
        vec!["request", "legal", "we need a lawyer"],
        vec!["checkin"],
        vec!["checkin-setup", "--every", "1h"],
        vec!["duty"],
        vec!["ack", "1"],
        vec!["resolve", "1"],
        vec!["cancel", "1"],
        vec!["invite", "--role", "defender"],
        vec!["devices"],
        vec!["revoke", "00000000"],
        vec!["trust-org", &bogus_root],
        vec!["case", "list", "--sync"],
        vec!["case", "show", "00000000"],
        vec!["relocation", "show", "00000000", "00000000"],
        vec!["outbox"],
        vec!["watch"],
    ];
    for (n, command) in commands.iter().enumerate() {
        let words = format!("queued sos number {n} before {}", command.join(" "));
        let out = hotline(
            &defender,
            PASS,
            &["--server", &dead, "sos", "--wait", "0", &words],
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{command:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        if command[0] == "watch" {
            // Sent before it starts watching (its outbox, empty below,
            // says so: the lines before "watching" are passed over).
            drop(Watch::start(&defender));
        } else {
            let out = hotline(&defender, PASS, command);
            let sent = format!("{}{}", stdout(&out), stderr(&out));
            assert!(
                sent.contains("sent the SOS that was waiting in this device's outbox")
                    || command[0] == "outbox" && sent.contains("sent from the outbox: an SOS"),
                "{command:?} did not send the waiting SOS: {sent}"
            );
        }
        let out = hotline(&defender, PASS, &["outbox", "--list"]);
        assert!(
            stdout(&out).contains("nothing waiting"),
            "{command:?}: {}",
            stdout(&out)
        );
    }
    // Each raised once, and staff read the words of every one.
    let out = hotline(&officer, PASS, &["alerts", "--all"]);
    let alerts = stdout(&out);
    assert_eq!(
        alerts.lines().filter(|l| l.starts_with('#')).count(),
        commands.len(),
        "{alerts}"
    );
    let out = hotline(&officer, PASS, &["messages"]);
    let read = stdout(&out);
    for (n, command) in commands.iter().enumerate() {
        let words = format!("queued sos number {n} before {}", command.join(" "));
        assert!(read.contains(&words), "staff cannot read {words:?}: {read}");
    }
    server.shutdown().await;
}

/// An SOS raised with the panic key while the server is down keeps its
/// words: the defender device kept the staff's public keys (any command
/// run with the passphrase while connected), seals the text to them,
/// queues it sealed (never the plain text) and the next command sends
/// it; staff read the words (issue 12, walk-through: staff saw "NO TEXT").
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_raised_offline_without_the_passphrase_keeps_its_words_for_the_staff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    let out = hotline(&defender, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(defender.join("staff-keys").exists());
    server.shutdown().await;

    let words = "test queued panic sos";
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", words]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        !all.contains("NOT sent"),
        "the text is sealed and waits: {all}"
    );
    let queued = std::fs::read(defender.join("panic-outbox")).expect("queued");
    assert!(
        !queued.windows(words.len()).any(|w| w == words.as_bytes()),
        "never the plain text on the phone"
    );

    let server = server_on(dir.path(), addr).await;
    let out = hotline_without_passphrase(&defender, &["status"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(stdout(&out).contains("your waiting SOS was sent"), "{all}");
    assert!(!all.contains("NOT sent"), "{all}");
    let out = hotline(&officer, PASS, &["alerts"]);
    let alerts = stdout(&out);
    assert_eq!(
        alerts.lines().filter(|l| l.starts_with('#')).count(),
        1,
        "{alerts}"
    );
    assert!(!alerts.contains("NO TEXT"), "{alerts}");
    let out = hotline(&officer, PASS, &["messages"]);
    assert!(
        stdout(&out).contains(words),
        "staff read the words: {}",
        stdout(&out)
    );
    server.shutdown().await;
}

/// A device that keeps no staff keys (they are kept at enrollment and by
/// any command run with the passphrase; removed here) says exactly that
/// when an SOS raised offline with the panic key cannot be sealed, never
/// that it has no roster.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_panic_sos_without_kept_staff_keys_says_exactly_why_its_text_is_not_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, _officer, defender) = organisation(dir.path(), &server).await;
    server.shutdown().await;
    // Enrolled after the roster was signed: it keeps the staff keys.
    assert!(defender.join("staff-keys").exists());
    std::fs::remove_file(defender.join("staff-keys")).expect("remove");
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "help"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("was NOT sent") && err.contains("keeps no staff keys yet"),
        "{err}"
    );
    assert!(!err.contains("no roster"), "{err}");
}

/// On the defender's own device, its SOS reads as its SOS: a staff message
/// it received under the same number as the SOS's sent id (each device
/// counts from 1) was shown as the SOS's text and filed in its thread.
#[tokio::test(flavor = "multi_thread")]
async fn a_defenders_own_sos_is_never_confused_with_a_message_it_received() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    assert!(hotline(&defender, PASS, &["inbox"]).status.success());
    let defender_id = field(&hotline(&defender, PASS, &["status"]), "device id:");
    let out = hotline(
        &officer,
        PASS,
        &[
            "send",
            "--to",
            &defender_id,
            "staff note: your lawyer is Mr X",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(hotline(&defender, PASS, &["inbox"]).status.success());
    let out = hotline(&defender, PASS, &["sos", "men with guns outside"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = alert_id(&out);
    // Something new arrives: fetching it is when alerts' messages are filed.
    let out = hotline(
        &officer,
        PASS,
        &["send", "--to", &defender_id, "a second note"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = hotline(&defender, PASS, &["alerts"]);
    let text = stdout(&out);
    assert!(text.contains("\"men with guns outside\""), "{text}");
    assert!(!text.contains("staff note"), "{text}");
    let out = hotline(&defender, PASS, &["messages", "--alert", &id]);
    assert!(!stdout(&out).contains("staff note"), "{}", stdout(&out));
}

/// Copies the directory `from` to `to` (made), files and subdirectories.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A server put back to an old copy of its store (seized and restored,
/// or its operator lying) serves a second roster with a version the
/// defender already accepted: the defender's every command and its
/// status carry the alarm, and the second roster is not used.
#[tokio::test(flavor = "multi_thread")]
async fn two_rosters_with_one_version_raise_an_alarm_on_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    let out = hotline(&defender, PASS, &["send", "first message"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("ALARM"), "{}", stderr(&out));

    // The store as it is with roster version 1.
    server.shutdown().await;
    copy_dir(&dir.path().join("server"), &dir.path().join("server-v1"));
    let server = server_on(dir.path(), addr).await;

    // Version 2, which the defender accepts.
    let key = dir.path().join("org.key");
    let key = key.to_str().expect("utf-8");
    let out = hotline_org(&admin, &["org", "sign-roster", "--key", key]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&defender, PASS, &["send", "second message"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The server is put back to the old store, and a different version 2
    // is signed over it.
    server.shutdown().await;
    std::fs::remove_dir_all(dir.path().join("server")).expect("rm");
    std::fs::rename(dir.path().join("server-v1"), dir.path().join("server")).expect("mv");
    let server = server_on(dir.path(), addr).await;
    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key, "--valid", "2d"],
    );
    // The admin's own device saw the first version 2 too.
    assert!(stderr(&out).contains("ROSTER ALARM"), "{}", stderr(&out));

    // The defender refuses it, loudly: its message is not sealed to it
    // and waits in the outbox.
    let out = hotline(&defender, PASS, &["send", "third message"]);
    assert!(
        stdout(&out).contains("NOT SENT YET: two different rosters carry version 2"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("WARNING: ROSTER ALARM"),
        "{}",
        stderr(&out)
    );
    // Every later command says so, and so does the status.
    for args in [&["inbox"][..], &["alerts"][..]] {
        let out = hotline(&defender, PASS, args);
        assert!(
            stderr(&out).contains("WARNING: ROSTER ALARM"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = hotline(&defender, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("staff roster: ROSTER ALARM"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("WARNING: ROSTER ALARM"));
    server.shutdown().await;
}

/// The SOS's category and the language it is written in reach the
/// officer's alert view and messages. An SOS from another client, with a
/// category number this version does not know, shows as "other" with its
/// number, never dropped; and an SOS sealed the way clients did before
/// the content message (its category on the first line of the text in
/// `body`, as servers hold them today) still reads with its category.
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_category_and_language_reach_staff_from_this_client_another_and_an_old_one() {
    use hotline_client::messenger::{Device, Sent};
    use hotline_proto::alert::Priority;
    use hotline_proto::e2e::content::Category;
    use hotline_proto::e2e::envelope::{self, Recipient};
    use hotline_proto::e2e::suite::SystemRandomness;
    use prost::Message as _;

    /// `SealedContent` as clients wrote it before the content message.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldSealedContent {
        #[prost(bytes = "vec", tag = "1")]
        message_id: Vec<u8>,
        #[prost(uint64, tag = "2")]
        counter: u64,
        #[prost(uint64, tag = "3")]
        timestamp: u64,
        #[prost(bytes = "vec", tag = "4")]
        body: Vec<u8>,
    }

    let dir = tempfile::tempdir().expect("tempdir");
    // Four SOSes of one defender, each its own alert.
    let server = server_with_open_alerts(dir.path(), 4).await;
    let (_, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys

    // This client, in French.
    let out = Command::new(BIN)
        .arg("--home")
        .arg(&defender)
        .args([
            "sos",
            "--category",
            "surveillance",
            "on me suit depuis la gare",
        ])
        .env("HOTLINE_PASSPHRASE", PASS)
        .env("HOTLINE_LANG", "fr_FR.UTF-8")
        .env("RUST_LOG", "off")
        .output()
        .expect("the client binary runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let french = alert_id(&out);
    // A word that is no category is never refused: "other", the word kept.
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--category", "kidnap", "they took Leo"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"kidnap\" is not a category"),
        "{}",
        stderr(&out)
    );
    let typo = alert_id(&out);

    // Another client, which knows a category this one does not (42).
    let state = hotline_client::StateDir::new(&defender);
    let mut device = Device::open(&state, PASS).expect("opens");
    device.hold().expect("lock");
    let session = device.connect().await.expect("connects");
    device
        .queue_sos(
            b"um carro nos segue",
            Category::Unknown(42),
            Priority::Urgent,
        )
        .expect("queued");
    let later = match device.flush(&session).await.expect("sent").as_slice() {
        [Sent::Alert(a)] => a.id.to_string(),
        other => panic!("one alert expected, got {other:?}"),
    };

    // A client of before the content message, sealing to the officer.
    let roster = session
        .get_roster()
        .await
        .expect("roster")
        .expect("signed")
        .read_unverified()
        .expect("reads");
    let officer_entry = roster
        .entries
        .iter()
        .find(|e| e.role == Role::Officer)
        .expect("the officer is on the roster");
    let bundles = session
        .fetch_prekeys(vec![officer_entry.device_id])
        .await
        .expect("prekeys");
    let now = hotline_client::unix_now();
    let prekey = bundles[0]
        .prekey
        .clone()
        .expect("published")
        .verify(&bundles[0].identity_key, now)
        .expect("valid");
    let old = OldSealedContent {
        message_id: vec![0x0d; 16],
        counter: 1,
        timestamp: now,
        body: b"category: arrest\nthey took my brother".to_vec(),
    }
    .encode_to_vec();
    let env = envelope::seal_padded(
        device.identity(),
        roster.version,
        &[Recipient {
            device_id: officer_entry.device_id,
            prekey_id: prekey.id,
            key: prekey.public_key,
        }],
        &envelope::pad(&old).expect("fits"),
        &mut SystemRandomness,
    )
    .expect("sealed");
    let old_alert = session
        .raise_alert_with(Priority::Immediate, Some(env))
        .await
        .expect("raised")
        .id
        .to_string();
    session.close().await;
    drop(device);

    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The lines of one alert: its heading and the lines under it.
    let alert = |id: &str| -> String {
        let mut lines = text
            .lines()
            .skip_while(|l| !l.starts_with(&format!("#{id} ")));
        let head = lines
            .next()
            .unwrap_or_else(|| panic!("#{id} missing: {text}"));
        std::iter::once(head)
            .chain(lines.take_while(|l| l.starts_with(' ')))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let shown = alert(&french);
    for want in [
        "SOS: surveillance",
        "\"on me suit depuis la gare\"",
        "(written in fr-FR)",
    ] {
        assert!(shown.contains(want), "{want:?} missing from {shown}");
    }
    let shown = alert(&typo);
    for want in ["SOS: other", "\"(kidnap) they took Leo\""] {
        assert!(shown.contains(want), "{want:?} missing from {shown}");
    }
    let shown = alert(&later);
    for want in [
        "SOS: other (category 42)",
        "urgent",
        "\"um carro nos segue\"",
    ] {
        assert!(shown.contains(want), "{want:?} missing from {shown}");
    }
    let shown = alert(&old_alert);
    for want in ["SOS: arrest", "\"they took my brother\""] {
        assert!(shown.contains(want), "{want:?} missing from {shown}");
    }
    assert!(!shown.contains("category: arrest"), "{shown}");

    // The messages view says it too.
    let out = hotline(&officer, PASS, &["messages"]);
    let text = stdout(&out);
    for want in [
        "(category surveillance, written in fr-FR)",
        "on me suit depuis la gare",
        "category other (category 42)",
        "um carro nos segue",
        "(category arrest)",
        "they took my brother",
    ] {
        assert!(text.contains(want), "{want:?} missing from {text}");
    }
    server.shutdown().await;
}

/// The check-in key is saved before the server is given tags made with it
/// (issue 11): when it cannot be saved (a full disk; a crash at that
/// moment is the same), the server must not be left holding a schedule
/// this device can no longer answer, whose missed check-ins the defender
/// could not stop. Once the disk is fixed, set-up and check-ins work.
#[tokio::test(flavor = "multi_thread")]
async fn a_check_in_key_that_cannot_be_saved_leaves_no_schedule_the_defender_cannot_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    // Something in the way of writing the key file.
    let obstacle = defender.join("checkin.tmp");
    std::fs::create_dir_all(obstacle.join("in-the-way")).expect("obstacle");
    let out = hotline(
        &defender,
        PASS,
        &[
            "checkin-setup",
            "--every",
            "1s",
            "--grace",
            "1s",
            "--code",
            "4711",
            "--duress-code",
            "0815",
        ],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    let refusal = stderr(&out);
    // Past the interval, the grace and an escalation tick: no check-in
    // was due, so none was missed.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("missed check-in"),
        "a schedule the defender cannot answer: {}",
        stdout(&out)
    );
    assert!(refusal.contains("check-in key"), "{refusal}");
    std::fs::remove_dir_all(&obstacle).expect("clear");
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
    let out = hotline(&defender, PASS, &["checkin", "--code", "4711"]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.shutdown().await;
}

/// Past the open-alert limit a defender's SOS joins its newest open alert
/// (issue 11): the defender is told it was raised, as always; the officer
/// sees one alert that says it was raised again, and reads every text.
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_past_the_open_alert_limit_joins_the_open_alert_and_staff_read_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_open_alerts(dir.path(), 1).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    let sos = |text: &str| {
        let out = hotline(&defender, PASS, &["sos", "--category", "threat", text]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .split_whitespace()
            .nth(1)
            .expect("alert id")
            .to_owned()
    };
    let first = sos("a car outside since noon");
    let second = sos("they are at the door now");
    assert_eq!(first, second, "the second SOS joined the first alert");
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        1,
        "one alert: {text}"
    );
    assert!(text.contains("raised it again 1 more time(s)"), "{text}");
    let out = hotline(&officer, PASS, &["messages"]);
    let text = stdout(&out);
    for want in ["a car outside since noon", "they are at the door now"] {
        assert!(text.contains(want), "{want:?} missing from {text}");
    }
    server.shutdown().await;
}

/// Six quick SOSes with an open-alert limit of two (issue 11 walk-through):
/// the officer's running watch shows every text, each in its alert's
/// thread, although the re-page of the joined alert is throttled to once a
/// minute; the defender is told truthfully that its SOS was added to its
/// open alert, and whether its staff were paged again now or had been a
/// moment before, and that an officer is on it once one holds it; and
/// `alerts` names the category of every text, not just the first, with
/// no single press's priority passed off as the defender's choice.
#[tokio::test(flavor = "multi_thread")]
async fn every_text_of_sos_that_joined_an_open_alert_reaches_the_watch_and_the_defender_hears_the_truth()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_with_open_alerts(dir.path(), 2).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let watch = Watch::start(&officer);
    watch.wait_for("open alerts");
    let sos = |priority: &str, category: &str, text: &str| {
        let out = hotline(
            &defender,
            PASS,
            &["sos", "--priority", priority, "--category", category, text],
        );
        assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
        (alert_id(&out), stdout(&out))
    };
    let texts = [
        ("urgent", "surveillance", "police outside the office"),
        ("urgent", "surveillance", "they are coming up the stairs"),
        ("immediate", "arrest", "they took Ali"),
        ("immediate", "medical", "he is bleeding"),
        ("immediate", "medical", "we need a doctor"),
        ("immediate", "attack", "they are beating him"),
    ];
    let mut answers = Vec::new();
    for (priority, category, text) in texts {
        answers.push(sos(priority, category, text));
    }
    let (first, said) = &answers[0];
    assert!(said.contains("raised (urgent)"), "{said}");
    let (second, said) = &answers[1];
    assert_ne!(first, second);
    assert!(said.contains("raised (urgent)"), "{said}");
    for (id, said) in &answers[2..] {
        assert_eq!(
            id, second,
            "past the limit, each SOS joined the newest alert"
        );
        assert!(
            said.contains(&format!(
                "alert {second} joined: your SOS was added to this open alert of yours"
            )),
            "{said}"
        );
        assert!(!said.contains("raised ("), "{said}");
    }
    // The first join (more urgent) paged the staff again; the next ones,
    // within the minute, did not, and say so.
    assert!(
        answers[2]
            .1
            .contains("Its staff were paged again now: 1 staff device(s) received the page now"),
        "{}",
        answers[2].1
    );
    for (_, said) in &answers[3..] {
        assert!(
            said.contains("paged less than a minute ago, so they were not paged again")
                && !said.contains("received the page now"),
            "{said}"
        );
    }
    // Every text reaches the officer's watch, in its alert's thread.
    let lines = watch.lines_for(std::time::Duration::from_secs(6));
    for (i, (_, _, text)) in texts.iter().enumerate() {
        let at = lines
            .iter()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} never shown: {lines:#?}"));
        let alert = if i == 0 { first } else { second };
        assert!(
            lines[..at]
                .iter()
                .rev()
                .find(|l| l.contains("from defender"))
                .is_some_and(|h| h.contains(&format!("[alert #{alert}]"))),
            "{text:?} not in the thread of alert {alert}: {lines:#?}"
        );
    }
    // The alert list names what every text is about.
    let out = hotline(&officer, PASS, &["alerts"]);
    let listed = stdout(&out);
    let row = listed
        .lines()
        .find(|l| l.starts_with(&format!("#{second}")))
        .unwrap_or_else(|| panic!("{listed}"));
    for category in ["surveillance", "arrest", "medical", "attack"] {
        assert!(row.contains(category), "{category} missing from {row}");
    }
    assert!(
        listed.contains("newest: \"they are beating him\""),
        "{listed}"
    );
    assert!(!listed.contains("the defender chose"), "{listed}");
    assert!(
        listed.contains(&format!("`hotline messages --alert {second}`")),
        "{listed}"
    );
    // Once an officer holds it, a further SOS hears so.
    assert!(hotline(&officer, PASS, &["ack", second]).status.success());
    let (id, said) = sos("immediate", "attack", "still here");
    assert_eq!(&id, second);
    assert!(said.contains("An officer is on it"), "{said}");
    watch.wait_for("still here");
    drop(watch);
    server.shutdown().await;
}

/// After a restart, a watch shows what came while it was away once, the
/// text of an alert closed meanwhile marked as an earlier alert (not a
/// new emergency), and each open alert once, although the server pushes
/// its unconfirmed page again as the watch lists the open alerts.
#[tokio::test(flavor = "multi_thread")]
async fn a_reconnecting_watch_marks_old_texts_and_prints_each_open_alert_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for staff in [&admin, &officer] {
        assert!(hotline(staff, PASS, &["inbox"]).status.success()); // prekeys
        assert!(hotline(staff, PASS, &["duty", "on"]).status.success());
    }
    // Raised and resolved while the admin's watch is not running: its
    // text waits, unshown.
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--category", "threat", "an old scare"],
    );
    let old = alert_id(&out);
    assert!(hotline(&officer, PASS, &["resolve", &old]).status.success());
    let watch = Watch::start(&admin);
    let lines = watch.lines_for(std::time::Duration::from_secs(4));
    let at = lines
        .iter()
        .position(|l| l.contains("an old scare"))
        .unwrap_or_else(|| panic!("the old text is not shown: {lines:#?}"));
    assert!(
        lines[..at]
            .iter()
            .any(|l| l.contains(&format!("[alert #{old}, resolved")) && l.contains("not a new one")),
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("an old scare")).count(),
        1,
        "{lines:#?}"
    );

    // A new alert while the server is down for the watch: it is listed
    // once on reconnection, not listed and paged again.
    server.shutdown().await;
    watch.wait_for("reconnecting");
    let server = server_on(dir.path(), addr).await;
    watch.wait_for("reconnected");
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--category", "arrest", "taken at the border"],
    );
    let new = alert_id(&out);
    watch.wait_for(&format!("ALERT #{new} "));
    drop(watch);
    // The admin's watch never confirmed... restart it: the page it
    // confirmed is not pushed again; the open alert is listed once.
    server.shutdown().await;
    let server = server_on(dir.path(), addr).await;
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--category", "attack", "a second one"],
    );
    let newer = alert_id(&out);
    let watch = Watch::start(&admin);
    let lines = watch.lines_for(std::time::Duration::from_secs(5));
    for id in [&new, &newer] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("#{id} ")))
                .count(),
            1,
            "alert {id} listed once: {lines:#?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains(&format!("ALERT #{id} "))),
            "alert {id} listed, then paged again: {lines:#?}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.contains("an old scare")),
        "shown already, not again: {lines:#?}"
    );
    drop(watch);
    server.shutdown().await;
}

/// A page reaches a watch before the SOS's text (and the name its sender
/// gives): once the text is fetched, the watch says what the alert is
/// about and who sent it by name (issue 11 walk-through).
#[tokio::test(flavor = "multi_thread")]
async fn a_page_in_watch_is_followed_by_its_category_and_the_senders_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let out = hotline(
        &admin,
        PASS,
        &["invite", "--role", "defender", "--label", "Ana P."],
    );
    let ana = dir.path().join("ana");
    assert!(
        hotline(&ana, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let watch = Watch::start(&officer);
    watch.wait_for("open alerts");
    let out = hotline(&ana, PASS, &["sos", "--category", "arrest", "at the door"]);
    let id = alert_id(&out);
    watch.wait_for(&format!("ALERT #{id} — claim it"));
    let line = watch.wait_for(&format!("ALERT #{id}: "));
    assert!(
        line.contains("SOS: arrest") && line.contains("from Ana P. ("),
        "{line}"
    );
    drop(watch);
    server.shutdown().await;
}

/// On a server whose disk is full (a real tmpfs filled by a ballast file;
/// skipped with a reason when not root, as mounting needs it), `hotline
/// sos` says in capitals that nobody has been alerted, with the server's
/// reason, and keeps the SOS; an admin's `hotline status` shows the
/// storage degraded; once space returns the server heals by itself and the
/// defender's retry raises the alert.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_full_disk_sos_says_nobody_is_alerted_and_the_retry_succeeds_once_space_returns() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    std::fs::create_dir_all(&data).expect("mkdir");
    let root = Command::new("id").arg("-u").output().expect("id");
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        println!("skipped: not root: a tmpfs cannot be mounted");
        return;
    }
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&data)
        .status()
        .expect("mount runs");
    if !mounted.success() {
        println!("skipped: mount failed");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.limits.request_burst = 10_000;
        c.limits.requests_per_second = 10_000;
    })
    .await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let out = hotline(&admin, PASS, &["status"]);
    assert!(
        stdout(&out).contains("server storage: ok"),
        "{}",
        stdout(&out)
    );

    // Fill the disk, then write until a write needs space and fails.
    let ballast = data.join("ballast");
    {
        let mut f = std::fs::File::create(&ballast).expect("ballast");
        let mut chunk = vec![0x5Au8; 1 << 20];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(_) if chunk.len() > 512 => chunk.truncate(chunk.len() / 2),
                Err(_) => break,
            }
        }
    }
    let mut tries = 0;
    loop {
        let word = if tries % 2 == 0 { "off" } else { "on" };
        if !hotline(&officer, PASS, &["duty", word]).status.success() {
            break;
        }
        tries += 1;
        assert!(tries < 500, "a full disk never refused a write");
    }

    let out = hotline(
        &defender,
        PASS,
        &["sos", "--wait", "2", "--category", "arrest", "at the door"],
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "queued, not failed: {all}");
    assert!(all.contains("NOBODY HAS BEEN ALERTED YET"), "{all}");
    assert!(
        all.contains("storage is full or failing"),
        "the server's reason: {all}"
    );
    assert!(all.contains("waits in this device's outbox"), "{all}");
    let out = hotline(&admin, PASS, &["status"]);
    assert!(
        stdout(&out).contains("server storage: DEGRADED since"),
        "{}",
        stdout(&out)
    );

    // Space returns: no restart; the retry raises the alert.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let out = hotline(&defender, PASS, &["sos", "--wait", "60", "still here"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("raised"), "{all}");
    let out = hotline(&admin, PASS, &["status"]);
    assert!(
        stdout(&out).contains("server storage: ok"),
        "{}",
        stdout(&out)
    );
    server.shutdown().await;
}

/// An SOS queued offline that, once sent from the outbox, joins the
/// defender's open alert (past the open-alert limit) is reported as
/// joined, the way `sos` says it, never as a new alert raised (a second
/// walk-through of issue 11).
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_sent_from_the_outbox_that_joined_an_open_alert_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let limit = |c: &mut Config| c.limits.open_alerts_per_device = 1;
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), limit).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    let out = hotline(&defender, PASS, &["sos", "--category", "arrest", "first"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let open = alert_id(&out);
    server.shutdown().await;
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--wait", "0", "queued while down"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let server = server_configured(dir.path(), addr, limit).await;
    let out = hotline(&defender, PASS, &["outbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains(&format!(
            "sent from the outbox: an SOS; alert {open} joined"
        )) && said.contains("no new alert was opened"),
        "{said}"
    );
    assert!(!said.contains("raised ("), "{said}");
    server.shutdown().await;
}

/// A server serving read-only (a recovery choice) refuses every write,
/// the confirmation that a page or message was shown included: `hotline
/// watch` says so and keeps watching on its connection, listing the open
/// alerts, rather than reconnecting in a tight loop that buries the
/// officer's screen and floods the server (an operator walk-through found
/// 1,500 reconnections in 9 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_watch_on_a_read_only_server_keeps_watching_instead_of_reconnecting_in_a_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    let out = hotline(
        &defender,
        PASS,
        &["sos", "--category", "arrest", "before the damage"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = alert_id(&out);
    server.shutdown().await;

    let config = Config {
        listen: addr,
        data_dir: dir.path().join("server"),
        ..Config::default()
    };
    let key = hotline_server::log::keys::KeySource::File(dir.path().join("master.key"));
    let mut running = None;
    for _ in 0..50 {
        let (data, _) = hotline_server::DataDir::open_read_only(&config, &key).expect("read-only");
        if let Ok(s) = RunningServer::start_with(config.clone(), data).await {
            running = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let read_only = running.expect("serves read-only");
    let watch = Watch::start(&officer);
    // The SOS's text is fetched and shown; confirming it is a write,
    // refused: said once, and the watch goes on to list the open alerts.
    watch.wait_for("before the damage");
    let listed = watch.wait_for("open alerts right now");
    assert!(!listed.is_empty());
    let lines = watch.lines_for(std::time::Duration::from_secs(4));
    assert!(
        lines.iter().any(|l| l.contains(&format!("#{id}"))),
        "the open alert is listed: {lines:#?}"
    );
    let reconnects = lines.iter().filter(|l| l.contains("reconnect")).count();
    assert!(reconnects <= 1, "no reconnection loop: {lines:#?}");
    drop(watch);
    read_only.shutdown().await;
}

/// An admin's `hotline status` says in words when the server's free space
/// is under its warning threshold (`storage.warn_free_bytes`), and not
/// when it is above.
#[tokio::test(flavor = "multi_thread")]
async fn an_admins_status_flags_free_space_under_the_warning_threshold() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    // No disk has this much free: the server is under its threshold.
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.storage.warn_free_bytes = 1 << 60;
    })
    .await;
    let admin = dir.path().join("admin");
    let invite = server
        .create_invite(Role::Admin, 600)
        .await
        .expect("invite")
        .to_string();
    assert!(hotline(&admin, PASS, &["enroll", &invite]).status.success());
    let out = hotline(&admin, PASS, &["status"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("server storage: ok;")
            && text.contains("free: LOW, under the warning threshold of 1048576.0 TiB"),
        "{text}"
    );
    let addr = server.local_addr();
    server.shutdown().await;
    // A threshold of 1 byte: no disk with a store on it is under it.
    let server = server_configured(dir.path(), addr, |c| c.storage.warn_free_bytes = 1).await;
    let out = hotline(&admin, PASS, &["status"]);
    let text = stdout(&out);
    assert!(text.contains("server storage: ok;"), "{text}");
    assert!(!text.contains("LOW"), "{text}");
    server.shutdown().await;
}

/// The restore drill: a device is pointed at a restored server on another
/// address with `--server` (or `HOTLINE_SERVER`) for one run, without
/// editing its profile; the pinned certificate is still checked.
#[tokio::test(flavor = "multi_thread")]
async fn server_points_one_run_at_a_restored_server_and_the_pin_still_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_a = server(dir.path()).await;
    let home = dir.path().join("admin");
    let invite = server_a
        .create_invite(Role::Admin, 600)
        .await
        .expect("invite")
        .to_string();
    let out = hotline(&home, PASS, &["enroll", &invite]);
    assert!(out.status.success(), "{}", stderr(&out));
    let profile = std::fs::read(home.join("profile.toml")).expect("profile");

    // Backed up while it runs, restored into a new directory, served on
    // another address.
    let key = hotline_server::log::keys::KeySource::File(dir.path().join("master.key"));
    let backup = dir.path().join("backup");
    hotline_server::store::backup(&dir.path().join("server"), &key, &backup).expect("backup");
    let restored = dir.path().join("restored");
    hotline_server::store::restore(&backup, &key, &restored).expect("restore");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: restored,
        ..Config::default()
    };
    let server_b = RunningServer::start(config, &key)
        .await
        .expect("restored server");
    assert_eq!(server_b.cert_pin(), server_a.cert_pin(), "same certificate");
    let addr_b = server_b.local_addr().to_string();
    assert_ne!(addr_b, server_a.local_addr().to_string());
    server_a.shutdown().await;

    let out = hotline(&home, PASS, &["--server", &addr_b, "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("connected to {addr_b}")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("role: admin"), "{}", stdout(&out));
    let out = Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .arg("status")
        .env("HOTLINE_PASSPHRASE", PASS)
        .env("HOTLINE_SERVER", &addr_b)
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("connected to {addr_b}")));
    assert_eq!(
        std::fs::read(home.join("profile.toml")).expect("profile"),
        profile,
        "the profile is not changed"
    );

    // Another server at that address fails the pin check.
    let other = tempfile::tempdir().expect("tempdir");
    let server_c = server(other.path()).await;
    let addr_c = server_c.local_addr().to_string();
    let out = hotline(&home, PASS, &["--server", &addr_c, "status"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not match the one in your invite"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&home, PASS, &["--server", "no-port", "status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("host:port"), "{}", stderr(&out));
    server_c.shutdown().await;
    server_b.shutdown().await;
}

/// During a full disk the duty team is told, not only admins: an
/// officer's `status` says writes (SOSes included) are refused, without
/// the free space or the error; a running `watch` prints a banner once,
/// a watch started during it says so at once, and both say once when it
/// heals (issue 13, I1b).
#[tokio::test(flavor = "multi_thread")]
async fn on_a_full_disk_staff_status_and_watch_say_sos_are_refused_and_when_it_heals() {
    use hotline_server::log::fs::{Fault, FaultFs, Op};
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let faults = FaultFs::new();
    let handle = faults.handle();
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.dangerous_log_file_ops = Some(handle);
    })
    .await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let out = hotline(&officer, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("server storage"),
        "nothing to say while it is ok: {}",
        stdout(&out)
    );
    let watch = Watch::start_with(&officer, &["--storage-check-every", "1"]);

    // The disk is full: the defender's SOS bounces.
    faults.fail_from(Op::Write, 1, Fault::Enospc);
    let out = hotline(&defender, PASS, &["sos", "--wait", "1", "at the door"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = hotline(&officer, PASS, &["status"]);
    let text = stdout(&out);
    assert!(
        text.contains("server storage: DEGRADED since")
            && text.contains("SOSes are being refused")
            && text.contains("tell an admin"),
        "{text}"
    );
    assert!(
        !text.contains("free") && !text.contains("No space"),
        "no free space or error for officers: {text}"
    );
    let banner = watch.wait_for("server storage: DEGRADED since");
    assert!(banner.contains("SOSes are being refused"), "{banner}");
    // A watch started during it says so at once.
    let late = Watch::start_with(&admin, &["--storage-check-every", "1"]);
    late.wait_for("server storage: DEGRADED since");
    // Once per change: no second banner while it stays so.
    let more = watch.lines_for(std::time::Duration::from_secs(3));
    assert!(
        !more.iter().any(|l| l.contains("server storage")),
        "banner spam: {more:?}"
    );

    // Space returns: the server heals by itself, and the watches say so.
    faults.lift();
    watch.wait_for("server storage: ok again");
    late.wait_for("server storage: ok again");
    let out = hotline(&officer, PASS, &["status"]);
    assert!(!stdout(&out).contains("server storage"), "{}", stdout(&out));
    drop(watch);
    drop(late);
    server.shutdown().await;
}

/// A defender's SOS on the panic path (no passphrase) while the server's
/// disk is full is not lost: its text is sealed (the staff's last-resort
/// prekeys, as taking a one-time prekey cannot be saved), it is queued on
/// the device (owner-only, no plaintext), exit 3 "QUEUED", and the next
/// run after the disk heals raises it, with its text, once (issue 13,
/// I1a).
#[tokio::test(flavor = "multi_thread")]
async fn on_a_full_disk_a_panic_key_sos_is_queued_and_raised_once_by_the_next_run() {
    use hotline_server::log::fs::{Fault, FaultFs, Op};
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let faults = FaultFs::new();
    let handle = faults.handle();
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.dangerous_log_file_ops = Some(handle);
    })
    .await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());

    faults.fail_from(Op::Write, 1, Fault::Enospc);
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "3", "police at the door"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("QUEUED: NOBODY HAS BEEN ALERTED YET"), "{all}");
    assert!(all.contains("storage is full or failing"), "{all}");
    assert!(!all.contains("NOT sent"), "its text was sealed: {all}");
    let queued = defender.join("panic-outbox");
    let bytes = std::fs::read(&queued).expect("queued on the device");
    assert!(
        !bytes.windows(b"police".len()).any(|w| w == b"police"),
        "no plaintext in the panic outbox"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&queued)
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
    }
    // A second SOS with newer words: its text is kept beside the first's
    // (issue 13, Q2), never dropped.
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "they took my phone"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("they go out together, as one alert"), "{all}");
    assert!(!all.contains("NOT be sent"), "{all}");

    // Space returns; the server heals; the next run raises both, once.
    faults.lift();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while stdout(&hotline(&admin, PASS, &["status"])).contains("DEGRADED") {
        assert!(std::time::Instant::now() < deadline, "never healed");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = hotline(&defender, PASS, &["outbox"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("sent the SOS that was waiting on this device: the team was paged, alert #"),
        "{all}"
    );
    assert_eq!(
        all.matches("sent the SOS that was waiting").count(),
        2,
        "each queued SOS goes: {all}"
    );
    assert!(!queued.exists());
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "x"]);
    assert!(
        !stderr(&out).contains("waiting on this device"),
        "sent once: {}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["alerts"]);
    let text = stdout(&out);
    let alerts = text.lines().filter(|l| l.starts_with('#')).count();
    // The two queued SOSes (one alert: the second joined the first,
    // issue 12, third walk-through) and the last one typed now ("x").
    assert_eq!(alerts, 2, "{text}");
    let out = hotline(&officer, PASS, &["messages"]);
    for said in ["police at the door", "they took my phone"] {
        assert!(
            stdout(&out).contains(said),
            "{said:?} reached staff: {}",
            stdout(&out)
        );
    }
    server.shutdown().await;
}

/// A defender's running `hotline watch` (with the passphrase) sends an SOS
/// that a `sos` without the passphrase queued meanwhile, once the server
/// can take it, without another command being run.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_watch_sends_the_sos_queued_without_the_passphrase() {
    use hotline_server::log::fs::{Fault, FaultFs, Op};
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let faults = FaultFs::new();
    let handle = faults.handle();
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.dangerous_log_file_ops = Some(handle);
    })
    .await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    let watch = Watch::start_with(&defender, &["--storage-check-every", "1"]);
    faults.fail_from(Op::Write, 1, Fault::Enospc);
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "help"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(defender.join("panic-outbox").exists());
    faults.lift();
    let line = watch.wait_for("sent the SOS that was waiting on this device");
    assert!(line.contains("the team was paged, alert #"), "{line}");
    assert!(!defender.join("panic-outbox").exists());
    let out = hotline(&officer, PASS, &["alerts"]);
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with('#')).count(),
        1,
        "one alert: {text}"
    );
    drop(watch);
    server.shutdown().await;
}

/// The short case id in a line "case 1a2b3c4d opened".
fn opened_case(o: &Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("case ")?.strip_suffix(" opened"))
        .expect("a case opened")
        .to_owned()
}

/// Invites a staff device of `role` from `admin`, enrolls it in `home`,
/// signs a new roster and publishes the new device's prekeys.
fn join_staff(admin: &Path, home: &Path, role: &str, key: &Path, staff: usize) {
    let out = hotline(admin, PASS, &["invite", "--role", role]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(home, PASS, &["enroll", &invite_line(&out)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline_org(
        admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(
        stdout(&out).contains(&format!("{staff} staff devices")),
        "{}",
        stdout(&out)
    );
    let out = hotline(home, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("a directory") {
            let p = e.expect("an entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("readable");
                out.push((p, bytes));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn case_keys_reach_staff_later_staff_read_the_history_and_a_removed_device_not_what_follows()
{
    use hotline_client::StateDir;
    use hotline_client::cases::{fields::case_field, open_replica, sync};
    use hotline_client::messenger::Device;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--summary",
            "Family of Zofia-MARKER",
            "--country",
            "UA",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);

    // The admin's device reads it: the key came in a CASE_KEYS envelope,
    // which is never shown as a message.
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Family of Zofia-MARKER"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("cannot read"), "{}", stdout(&out));
    let out = hotline(&admin, PASS, &["messages"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("from officer"), "{}", stdout(&out));
    for h in [&admin, &officer] {
        let history = Device::open(&StateDir::new(h), PASS)
            .expect("opens")
            .history()
            .expect("history");
        assert!(
            history.entries().iter().all(|e| !matches!(
                e.message.kind,
                hotline_proto::e2e::content::Kind::CaseKeys(_)
            )),
            "case keys are never kept in the history"
        );
    }

    // A coordinator joins later, on a new roster: the officer's next
    // command sees the roster add it and sends it the keys, so it reads
    // the whole history.
    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("1 event this device cannot read yet"),
        "{}",
        stdout(&out)
    );
    let out = hotline(
        &officer,
        PASS,
        &["case", "note", &case, "met them at the border"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the keys of 1 case(s) go to them"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("Family of Zofia-MARKER"), "{shown}");
    assert!(shown.contains("met them at the border"), "{shown}");
    assert!(!shown.contains("cannot read"), "{shown}");

    // The coordinator's device leaves: revoked, and off the next roster.
    let out = hotline(&coordinator, PASS, &["status"]);
    let coordinator_id = field(&out, "device id: ");
    let out = hotline(&admin, PASS, &["revoke", &coordinator_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline_org(
        &admin,
        &[
            "org",
            "sign-roster",
            "--key",
            dir.path().join("org.key").to_str().expect("utf-8"),
        ],
    );
    assert!(stdout(&out).contains("2 staff devices"), "{}", stdout(&out));
    // The officer's next write opens epoch 2 first; the admin reads it.
    let out = hotline(
        &officer,
        PASS,
        &["case", "note", &case, "moved to Montevideo-MARKER"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("a new case key (epoch 2)"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("moved to Montevideo-MARKER"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("cannot read"), "{}", stdout(&out));

    // The device that left, handed every event (as a seized or careless
    // server would hand them), reads those before it left and not the two
    // after (the rotation and the note).
    let mut officer_device = Device::open(&StateDir::new(&officer), PASS).expect("opens");
    let session = officer_device.connect().await.expect("connects");
    let roster = officer_device.roster(&session).await.expect("roster");
    let frames = sync::fetch(&session, 0).await.expect("fetched");
    session.close().await;
    drop(officer_device);
    let removed = Device::open(&StateDir::new(&coordinator), PASS).expect("opens");
    let mut replica = open_replica(&removed).expect("replica");
    let mut report = sync::SyncReport::default();
    for f in &frames {
        sync::apply(&mut replica, &f.updates, &roster, &|_, _| None, &mut report).expect("applied");
    }
    let id = replica
        .summaries()
        .iter()
        .find_map(|s| {
            s.id()
                .filter(|c| hotline_proto::identity::hex(c.as_bytes()).starts_with(&case))
        })
        .expect("the case");
    let view = replica.view(&id).expect("view");
    assert_eq!(view.unreadable, 2);
    assert_eq!(
        view.case_text(case_field::SUMMARY),
        "Family of Zofia-MARKER"
    );
    drop((replica, removed));
    server.shutdown().await;
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(
        shown.contains("2 events this device cannot read yet (no key)"),
        "{shown}"
    );
    assert!(shown.contains("met them at the border"), "{shown}");
    assert!(!shown.contains("Montevideo"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_distinct_staff_erase_a_closed_case_and_only_its_statistics_remain() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let markers = [
        "Zofia Kowalczyk-MARKER",
        "Montevideo-MARKER",
        "Hotel Bellevue-MARKER",
    ];
    let open = |summary: &str| {
        let out = hotline(
            &officer,
            PASS,
            &[
                "case",
                "open",
                "--summary",
                summary,
                "--country",
                "UA",
                "--programme",
                "relocation",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        opened_case(&out)
    };
    let case = open("the Kowalczyk family");
    for args in [
        vec![
            "case",
            "person",
            "add",
            &case,
            "--name",
            markers[0],
            "--relationship",
            "self",
        ],
        vec![
            "case",
            "person",
            "add",
            &case,
            "--name",
            "a child",
            "--relationship",
            "child",
        ],
    ] {
        let out = hotline(&officer, PASS, &args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(
        &officer,
        PASS,
        &[
            "relocation",
            "start",
            &case,
            "--people",
            markers[0],
            "--origin",
            "Kharkiv",
            "--to",
            "UY",
            "--city",
            markers[1],
            "--accommodation",
            markers[2],
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(
        stderr(&out).contains("only a closed case can be erased"),
        "{}",
        stderr(&out)
    );
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "settled"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A legal hold blocks the erasure; an officer may not lift it.
    let out = hotline(&admin, PASS, &["case", "hold", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--erasable"]);
    assert!(!stdout(&out).contains(&case), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("under a legal hold"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "hold", &case, "--lift"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only coordinators and admins"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&admin, PASS, &["case", "hold", &case, "--lift"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--erasable"]);
    assert!(stdout(&out).contains(&case), "{}", stdout(&out));

    // The officer asks; nobody may confirm their own request, and an
    // officer may not confirm.
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the statistics of case"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("must confirm it"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["case", "erase", &case, "--confirm"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the server refused"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "list", "--erasable"]);
    assert!(
        stdout(&out).contains("waits for a second coordinator or admin"),
        "{}",
        stdout(&out)
    );

    // The same person asking and confirming is refused.
    let other = open("another family");
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &other, "--reason", "declined"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "erase", &other]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "erase", &other, "--confirm"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a second staff member must confirm"),
        "{}",
        stderr(&out)
    );

    // The admin, a distinct coordinator or admin, confirms the first.
    let out = hotline(&admin, PASS, &["case", "erase", &case, "--confirm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("case {case} erased")),
        "{}",
        stdout(&out)
    );
    // The officer's device deletes its copy at its next sync; the
    // statistics stay in the ledger.
    let out = hotline(&officer, PASS, &["case", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("was erased"), "{}", stdout(&out));
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["case", "stats"]);
        let s = stdout(&out);
        assert!(s.contains("erased cases: 1, people covered: 2"), "{s}");
        assert!(s.contains("requested  1"), "{s}");
        assert!(s.contains("  UA  1"), "{s}");
        assert!(s.contains("1 more case(s) wait for their erasure"), "{s}");
        let out = hotline(h, PASS, &["case", "show", &case]);
        assert!(!out.status.success());
        for (path, bytes) in files_under(h) {
            let name = path.to_string_lossy();
            assert!(!name.contains(&case), "{name} is the erased case's file");
            for m in markers {
                assert!(
                    !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                    "{name} holds {m}"
                );
            }
        }
    }

    // The server: the chain verifies, the case's records are shredded,
    // and no event of the case can be read any more.
    let data = dir.path().join("server");
    server.shutdown().await;
    let key = hotline_server::log::keys::KeySource::File(dir.path().join("master.key"));
    let report = hotline_server::store::verify_store(&data, &key, 1 << 20, None)
        .expect("the store verifies");
    assert!(
        report.verified.shredded >= 5,
        "{:?}",
        report.verified.shredded
    );
    let keys = hotline_server::store::open_keys(&data, &key, hotline_server::store::Create::Never)
        .expect("keys");
    let (store, _) = hotline_server::store::LogStore::open_read_only(&data, keys).expect("opens");
    let (head, _) = store.log().head();
    for seq in 1..=head {
        if let Some(hotline_server::log::Entry::Event(bytes)) =
            store.log().read(seq).expect("reads")
            && let Ok(hotline_server::domain::Event::Case(
                hotline_server::domain::cases::CaseEvent::Appended { header, .. },
            )) = hotline_server::store::codec::decode_event(&bytes)
        {
            assert!(
                !hotline_proto::identity::hex(header.case_id.as_bytes()).starts_with(&case),
                "an event of the erased case still reads"
            );
        }
    }
}

/// The walk-through's flaw: a staff device that did not sync between a
/// case's closing and its erasure never sees the closing (shredded), yet
/// deletes the case, because the erasure is signed by the two staff
/// members; its statistics count the case. And its finding 9: a reopening
/// clears the erasure asked for before (as on the server), and asking
/// again after the case changed writes a fresh tombstone, which is the
/// one counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_device_offline_from_before_the_closing_to_after_the_erasure_deletes_the_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    let markers = [
        "Zofia Kowalczyk-MARKER",
        "Montevideo-MARKER",
        "Hotel Bellevue-MARKER",
    ];
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--summary",
            "the Kowalczyk family",
            "--country",
            "UA",
            "--programme",
            "relocation",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    let ok = |home: &Path, args: &[&str]| {
        let out = hotline(home, PASS, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    ok(
        &officer,
        &[
            "case",
            "person",
            "add",
            &case,
            "--name",
            markers[0],
            "--relationship",
            "self",
        ],
    );
    ok(
        &officer,
        &[
            "relocation",
            "start",
            &case,
            "--people",
            markers[0],
            "--origin",
            "Kharkiv",
            "--to",
            "UY",
            "--city",
            markers[1],
            "--accommodation",
            markers[2],
        ],
    );
    // The coordinator's device reads the case, then goes offline.
    let out = ok(&coordinator, &["case", "show", &case]);
    assert!(stdout(&out).contains(markers[0]), "{}", stdout(&out));

    // The officer closes it and asks for its erasure ...
    ok(&officer, &["case", "close", &case, "--reason", "settled"]);
    let out = ok(&officer, &["case", "erase", &case]);
    assert!(stdout(&out).contains("must confirm it"), "{}", stdout(&out));
    // ... then reopens it: the request is gone, here as on the server.
    ok(&officer, &["case", "reopen", &case]);
    let out = ok(&officer, &["case", "list", "--erasable"]);
    assert!(
        !stdout(&out).contains("waits for a second"),
        "{}",
        stdout(&out)
    );
    ok(
        &officer,
        &[
            "case",
            "person",
            "add",
            &case,
            "--name",
            "a child",
            "--relationship",
            "child",
        ],
    );
    ok(&officer, &["case", "close", &case, "--reason", "settled"]);
    let out = ok(&officer, &["case", "list", "--erasable"]);
    assert!(stdout(&out).contains(&case), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains("waits for a second"),
        "{}",
        stdout(&out)
    );
    let out = ok(&officer, &["case", "stats"]);
    assert!(
        !stdout(&out).contains("wait for their erasure"),
        "{}",
        stdout(&out)
    );
    // The request was dropped with the reopening: this device knows it
    // and signs nothing (a confirmation names the request it confirms).
    let out = hotline(&admin, PASS, &["case", "erase", &case, "--confirm"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no signed erasure request of case"),
        "{}",
        stderr(&out)
    );
    // Asked for again: the case changed (a second person), so a fresh
    // tombstone is written; the admin confirms.
    let out = ok(&officer, &["case", "erase", &case]);
    assert!(
        stdout(&out).contains("the statistics of case"),
        "{}",
        stdout(&out)
    );
    let out = ok(&admin, &["case", "erase", &case, "--confirm"]);
    assert!(
        stdout(&out).contains(&format!("case {case} erased")),
        "{}",
        stdout(&out)
    );

    // The coordinator's device comes back: it never saw the closing, and
    // deletes the case all the same; its statistics count it once, with
    // both people.
    let out = ok(&coordinator, &["case", "stats"]);
    assert!(
        stdout(&out).contains(&format!("case {case} was erased")),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("kept"), "{}", stderr(&out));
    for h in [&coordinator, &officer, &admin] {
        let out = ok(h, &["case", "stats"]);
        let s = stdout(&out);
        assert!(s.contains("erased cases: 1, people covered: 2"), "{s}");
        assert!(!s.contains("wait for their erasure"), "{s}");
        let out = hotline(h, PASS, &["case", "show", &case]);
        assert!(!out.status.success());
        for (path, bytes) in files_under(h) {
            let name = path.to_string_lossy();
            assert!(!name.contains(&case), "{name} is the erased case's file");
            for m in markers {
                assert!(
                    !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                    "{name} holds {m}"
                );
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_case_takes_its_request_share_and_reply_out_of_staff_histories() {
    use hotline_client::StateDir;
    use hotline_client::messenger::Device;
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let markers = [
        "ERASE-REQUEST-WORDS",
        "ERASE-SHARE-WORDS",
        "ERASE-REPLY-WORDS",
    ];
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", &format!("we need {}", markers[0])],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, markers[0]);
    let out = hotline(&officer, PASS, &["case", "set", &case, "reference", "E-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "share", &case, markers[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&defender, PASS, &["my-case", "reply", markers[2]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let texts = |h: &Path| -> Vec<String> {
        Device::open(&StateDir::new(h), PASS)
            .expect("opens")
            .history()
            .expect("history")
            .entries()
            .iter()
            .map(|e| e.message.text.clone())
            .collect()
    };
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["case", "show", &case]);
        // The reply is in the case (as a reply received, or as the reply
        // a staff device recorded into the case for later staff).
        assert!(
            stdout(&out).contains(&format!("replied: {}", markers[2]))
                || stdout(&out).contains("a reply of defender device")
                    && stdout(&out).contains(markers[2]),
            "{}",
            stdout(&out)
        );
        // Before the erasure the history holds the request and the reply
        // (and the officer its share).
        let held = texts(h);
        for m in [markers[0], markers[2]] {
            assert!(held.iter().any(|t| t.contains(m)), "{m}: {held:?}");
        }
    }
    assert!(texts(&officer).iter().any(|t| t.contains(markers[1])));

    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "settled"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The admin confirms (its copy goes at once), the officer's goes at
    // its next sync.
    let out = hotline(&admin, PASS, &["case", "erase", &case, "--confirm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    assert!(stdout(&out).contains("was erased"), "{}", stdout(&out));
    for h in [&officer, &admin] {
        let held = texts(h);
        for m in markers {
            assert!(!held.iter().any(|t| t.contains(m)), "{m}: {held:?}");
        }
        let out = hotline(h, PASS, &["messages"]);
        for m in markers {
            assert!(!stdout(&out).contains(m), "{}", stdout(&out));
        }
        for (path, bytes) in files_under(h) {
            for m in markers {
                assert!(
                    !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                    "{} holds {m}",
                    path.display()
                );
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_staff_rotating_one_case_at_once_both_land_and_the_loser_opens_the_next_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(&officer, PASS, &["case", "open", "--summary", "a family"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    let key = dir.path().join("org.key");
    let coordinator = dir.path().join("coordinator");
    join_staff(&admin, &coordinator, "coordinator", &key, 3);
    // Both staff devices see the roster with the coordinator (the officer
    // sends it the case key), then without it.
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "show", &case]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    assert!(stdout(&out).contains("a family"), "{}", stdout(&out));
    let out = hotline(&coordinator, PASS, &["status"]);
    let coordinator_id = field(&out, "device id: ");
    let out = hotline(&admin, PASS, &["revoke", &coordinator_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(stdout(&out).contains("2 staff devices"), "{}", stdout(&out));
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "show", &case]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Offline, the officer writes: its rotation and its note wait.
    server.shutdown().await;
    let out = hotline(&officer, PASS, &["case", "note", &case, "written offline"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("a new case key (epoch 2)"),
        "{}",
        stdout(&out)
    );
    // Meanwhile the admin rotates first.
    let server = server_on(dir.path(), addr).await;
    let out = hotline(&admin, PASS, &["case", "note", &case, "written online"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("a new case key (epoch 2)"),
        "{}",
        stdout(&out)
    );

    // The officer's rotation is answered "another key holds this epoch":
    // it drops its own key for epoch 2, opens epoch 3 itself (never
    // waiting for the admin's key) and sends both its events under it.
    // The admin's key for epoch 2, received while the officer held its
    // own, is kept: the admin's event commits to it.
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("it opened a new case key (epoch 3)"),
        "{shown}"
    );
    assert!(shown.contains("written online"), "{shown}");
    assert!(shown.contains("written offline"), "{shown}");
    assert!(!shown.contains("not sent yet"), "{shown}");
    assert!(!shown.contains("cannot read"), "{shown}");
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("NOT SAVED"), "{}", stderr(&out));
    // Nothing waits any more, and a second look shows the same.
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(shown.contains("written online"), "{shown}");
    assert!(shown.contains("written offline"), "{shown}");
    assert!(!shown.contains("not sent yet"), "{shown}");
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    // The admin reads both after syncing (epoch 3's key came from the
    // officer once the server took its event).
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(shown.contains("written online"), "{shown}");
    assert!(shown.contains("written offline"), "{shown}");
    assert!(!shown.contains("cannot read"), "{shown}");
    assert!(!shown.contains("skipped"), "{shown}");
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_staff_taking_on_one_request_at_once_both_land_and_the_second_opens_epoch_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", "a lawyer TAKEN-TWICE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut case = String::new();
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "list", "--sync", "--state", "requested"]);
        case = case_of(&out, "TAKEN-TWICE");
    }
    // Offline, the officer takes it on; meanwhile the admin does too.
    server.shutdown().await;
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &case, "reference", "REF-OFFICER"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let server = server_on(dir.path(), addr).await;
    let out = hotline(
        &admin,
        PASS,
        &["case", "set", &case, "summary", "SUMMARY-ADMIN"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the case is open"),
        "{}",
        stdout(&out)
    );
    // The officer's opening is answered "another key holds this epoch":
    // its change goes again, without the opening, under epoch 2.
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("it opened a new case key (epoch 2)"),
        "{shown}"
    );
    for word in ["REF-OFFICER", "SUMMARY-ADMIN"] {
        assert!(shown.contains(word), "{word}: {shown}");
    }
    assert!(!shown.contains("not sent yet"), "{shown}");
    assert!(!shown.contains("cannot read"), "{shown}");
    assert!(!stderr(&out).contains("NOT SAVED"), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    for word in ["REF-OFFICER", "SUMMARY-ADMIN"] {
        assert!(shown.contains(word), "{word}: {shown}");
    }
    assert!(!shown.contains("cannot read"), "{shown}");
    assert!(!shown.contains("skipped"), "{shown}");
    // The officer's epoch 1 key, sent before its opening lost, is said in
    // words a coordinator reads, not as keys "not kept".
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "case {case}: a key from a staff device that lost a race to open the case (or to renew its key) was not needed"
        )),
        "{said}"
    );
    assert!(!said.contains("were not kept"), "{said}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decline_that_loses_to_a_take_on_is_not_sent_and_says_the_case_is_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", "a lawyer DECLINE-RACE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut case = String::new();
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "list", "--sync", "--state", "requested"]);
        case = case_of(&out, "DECLINE-RACE");
    }
    // Offline, the officer declines it; meanwhile the admin takes it on.
    server.shutdown().await;
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "not-ours"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let server = server_on(dir.path(), addr).await;
    let out = hotline(&admin, PASS, &["case", "set", &case, "summary", "TAKEN-ON"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The officer's decline is not sent: the person is told, once, what
    // happened and what to type if they still mean it.
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert_eq!(
        said.matches("took it on at the same time (").count(),
        1,
        "{said}"
    );
    assert!(
        said.contains(&format!("NOT SAVED: your decline of request {case}: "))
            && said.contains(&format!(
                "; the case is open — close it if you still mean to (hotline case close {case} --reason …)"
            )),
        "{said}"
    );
    let shown = stdout(&out);
    assert!(shown.contains("TAKEN-ON"), "{shown}");
    assert!(!shown.contains("not-ours"), "{shown}");
    // Both read the case as open (not closed by the decline), and nothing
    // waits on the officer's device.
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "list", "--sync", "--state", "open"]);
        assert!(stdout(&out).contains("TAKEN-ON"), "{}", stdout(&out));
        let out = hotline(h, PASS, &["case", "list", "--state", "closed"]);
        assert!(!stdout(&out).contains("TAKEN-ON"), "{}", stdout(&out));
        assert!(!stderr(&out).contains("wait"), "{}", stderr(&out));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staff_device_not_yet_on_the_signed_roster_keeps_its_case_changes_until_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    // A coordinator is enrolled; the admin has not signed a roster with it.
    let out = hotline(&admin, PASS, &["invite", "--role", "coordinator"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let coordinator = dir.path().join("coordinator");
    let out = hotline(&coordinator, PASS, &["enroll", &invite_line(&out)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &coordinator,
        PASS,
        &["case", "open", "--summary", "NOT-YET-LISTED"],
    );
    // Kept, waiting (exit 3), and said once, in words that say what to do.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let case = stdout(&out)
        .lines()
        .find_map(|l| {
            l.strip_prefix("case ")?
                .strip_suffix(" opened (on this device only)")
        })
        .unwrap_or_else(|| panic!("opened here: {}", stdout(&out)))
        .to_owned();
    let said = stderr(&out);
    let told = "case change(s) wait: this device is not on the staff roster the server holds; ask an admin to sign a roster listing it (hotline org sign-roster)";
    assert_eq!(said.matches(told).count(), 1, "{said}");
    assert!(!said.contains("NOT SAVED"), "{said}");
    // Another command: still waiting, said once again, nothing lost.
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    let said = stderr(&out);
    assert_eq!(said.matches(&format!("1 {told}")).count(), 1, "{said}");
    assert!(stdout(&out).contains("NOT-YET-LISTED"), "{}", stdout(&out));
    // The admin signs a roster listing it: the case lands, and staff read it.
    let key = dir.path().join("org.key");
    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(stdout(&out).contains("3 staff devices"), "{}", stdout(&out));
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wait"), "{}", stderr(&out));
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "show", &case]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("NOT-YET-LISTED"), "{}", stdout(&out));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_refused_for_good_is_shown_once_and_does_not_block_those_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(&officer, PASS, &["case", "open", "--summary", "a family"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    assert!(stdout(&out).contains("a family"), "{}", stdout(&out));

    // Offline, the officer closes the case and writes a note after it.
    server.shutdown().await;
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "closed offline"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "note", &case, "written after"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Meanwhile the admin closes it first.
    let server = server_on(dir.path(), addr).await;
    let out = hotline(
        &admin,
        PASS,
        &["case", "close", &case, "--reason", "closed online"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The officer's close is refused for good: said once, loudly, and
    // removed; the note behind it lands.
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "NOT SAVED: closing (or declining) the case in case {}",
            &case[..8]
        )),
        "{err}"
    );
    assert!(err.contains("the case is closed already"), "{err}");
    let shown = stdout(&out);
    assert!(shown.contains("written after"), "{shown}");
    assert!(!shown.contains("not sent yet"), "{shown}");
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(!stderr(&out).contains("NOT SAVED"), "{}", stderr(&out));
    assert!(stdout(&out).contains("written after"), "{}", stdout(&out));
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(shown.contains("written after"), "{shown}");
    assert!(shown.contains("closed online"), "{shown}");
    assert!(!shown.contains("closed offline"), "{shown}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_reopened_is_read_by_staff_who_joined_while_it_was_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "a closed family"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "no longer needed"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Within the retention period (a year by default) nothing is written,
    // and the day it becomes possible is named.
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the retention period is 365 day(s): it can be erased from"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "stats"]);
    assert!(stdout(&out).contains("no erased case"), "{}", stdout(&out));
    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    // A closed case's keys are not sent to staff who join...
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("2 events this device cannot read yet"),
        "{}",
        stdout(&out)
    );
    // ... until it is reopened: the reopening device sends them all.
    let out = hotline(&officer, PASS, &["case", "reopen", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(shown.contains("a closed family"), "{shown}");
    assert!(shown.contains("no longer needed"), "{shown}");
    assert!(!shown.contains("cannot read"), "{shown}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn case_keys_from_a_defender_are_ignored_with_a_warning_and_never_shown() {
    use hotline_client::StateDir;
    use hotline_client::messenger::{Device, Sent};
    use hotline_proto::case::CaseId;
    use hotline_proto::case::key::CaseKey;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer, &defender] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    // A defender's device sends a CASE_KEYS envelope to the staff.
    let mut device = Device::open(&StateDir::new(&defender), PASS).expect("opens");
    let session = device.connect().await.expect("connects");
    device
        .queue_case_keys(
            &[(CaseId::from_bytes([9; 16]), 1, CaseKey::from_bytes([7; 32]))],
            None,
        )
        .expect("queued");
    let sent = device.flush(&session).await.expect("flushed");
    assert!(
        matches!(sent.as_slice(), [Sent::Message { .. }]),
        "{sent:?}"
    );
    session.close().await;
    drop(device);

    let out = hotline(&admin, PASS, &["case", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("case keys from 1 sender(s) not on the staff roster were ignored"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&admin, PASS, &["messages"]);
    assert!(!stdout(&out).contains("from defender"), "{}", stdout(&out));
    server.shutdown().await;
}

/// The first word of the line of `out` holding `marker` (a case's short
/// id in `hotline case list`).
fn case_of(out: &Output, marker: &str) -> String {
    let text = stdout(out);
    text.lines()
        .find(|l| l.contains(marker))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.trim_end_matches('!').to_owned())
        .unwrap_or_else(|| panic!("a case with {marker:?} in {text}"))
}

/// The device id `hotline status` prints for `home`.
fn device_id(home: &Path) -> String {
    let out = hotline(home, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    field(&out, "device id:")
}

/// The defender's side of a case, from the command line, against a real
/// server: a request made offline lands once, staff read its words and
/// open it, the defender sees exactly what was shared (and nothing of the
/// case's people, notes, places or another defender's case), accepts the
/// check-ins offered for the journey with the command `my-case` prints, a
/// missed check-in in transit names the case on the staff device only, and
/// a reply reaches the case only from a defender device linked to it.
#[tokio::test(flavor = "multi_thread")]
async fn a_defender_requests_help_sees_only_what_is_shared_and_replies() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.escalation_tick_ms = 100;
    })
    .await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for staff in [&admin, &officer] {
        let out = hotline(staff, PASS, &["inbox"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(&officer, PASS, &["invite", "--role", "defender"]);
    let other = dir.path().join("other-defender");
    assert!(
        hotline(&other, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let defender_id = device_id(&defender);

    // Staff cannot make a request; a defender cannot ask for a programme
    // that does not exist.
    let out = hotline(&officer, PASS, &["request", "legal", "x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("defender's device"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&defender, PASS, &["request", "holiday", "x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("relocation, legal, medical, subsistence"),
        "{}",
        stderr(&out)
    );

    // Offline: the request waits in the outbox (status 3), and the next
    // command that reaches the server sends it, once.
    let unreachable = ["--server", "127.0.0.1:9"];
    let out = hotline(
        &defender,
        PASS,
        &[
            unreachable[0],
            unreachable[1],
            "request",
            "relocation",
            "we must leave MARKER-REQUEST",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("NOT SENT YET"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Your request waits"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("sent from the outbox: your request"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out)
            .contains("relocation: we must leave MARKER-REQUEST (waiting for the team's answer)"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["outbox"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    // Online, the defender is told what happens next.
    let out = hotline(
        &other,
        PASS,
        &["request", "legal", "a lawyer for OTHER-REQUEST"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the team has your request; they will answer here: hotline my-case"),
        "{}",
        stdout(&out)
    );

    // Staff: the request's words, once; the inbox points to it rather
    // than showing it as a chat message.
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    assert_eq!(
        listed
            .matches("request: we must leave MARKER-REQUEST")
            .count(),
        1,
        "{listed}"
    );
    let case = case_of(&out, "MARKER-REQUEST");
    let other_case = case_of(&out, "OTHER-REQUEST");
    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(
        stdout(&out).contains("asked for relocation help: a new case request"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("MARKER-REQUEST"), "{}", stdout(&out));

    // The officer opens it (which links the defender's device), and fills it.
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &case, "reference", "C-2026-0042"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("accepted: the case is open"),
        "{}",
        stdout(&out)
    );
    // The admin's first case sync: only the request still waiting is
    // news, not the one the officer accepted.
    let out = hotline(&admin, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("new request from a defender: case {other_case}")),
        "{}",
        stdout(&out)
    );
    assert!(
        !stdout(&out).contains(&format!("new request from a defender: case {case}")),
        "{}",
        stdout(&out)
    );
    // The programme the defender asked for is the case's (no `case set
    // … programme` needed for the statistics).
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("programme: relocation"),
        "{}",
        stdout(&out)
    );
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "case",
            "person",
            "add",
            &case,
            "--name",
            "MARKER-NAME",
            "--relationship",
            "self",
        ],
        vec!["case", "note", &case, "MARKER-NOTE about the family"],
    ];
    for s in &steps {
        let out = hotline(&officer, PASS, s);
        assert!(out.status.success(), "{s:?}: {}", stderr(&out));
    }
    let out = hotline(
        &officer,
        PASS,
        &[
            "relocation",
            "start",
            &case,
            "--people",
            "MARKER-NAME",
            "--origin",
            "MARKER-ORIGIN",
            "--to",
            "UY",
            "--city",
            "MARKER-CITY",
            "--accommodation",
            "MARKER-HOTEL",
            "--arrive",
            "2027-05-13",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let relocation = stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("relocation id")
        .to_owned();
    for stage in ["assessed", "approved", "travel booked"] {
        let out = hotline(
            &officer,
            PASS,
            &["relocation", "advance", &case, &relocation, stage],
        );
        assert!(out.status.success(), "{stage}: {}", stderr(&out));
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "share", &case, "travel booked for 12 May"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("shared with the defender's device"),
        "{}",
        stdout(&out)
    );
    // In transit: check-ins offered for the journey.
    let out = hotline(
        &officer,
        PASS,
        &[
            "relocation",
            "advance",
            &case,
            &relocation,
            "in transit",
            "--checkin-every",
            "1s",
            "--grace",
            "1s",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("offered check-ins every 1s (grace 1s)"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(shown.contains("we must leave MARKER-REQUEST"), "{shown}");
    assert!(
        shown.contains("shared with the defender: travel booked for 12 May"),
        "{shown}"
    );

    // Another defender's case, with its own share.
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &other_case, "summary", "OTHER-CASE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "share", &other_case, "OTHER-SHARE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The defender sees exactly what was shared, and nothing else.
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mine = stdout(&out);
    let lines: Vec<&str> = mine.lines().collect();
    assert_eq!(lines.len(), 7, "{mine}");
    assert_eq!(
        lines[0],
        "your requests, and what the team shared with you (newest last):"
    );
    assert!(
        lines[1].ends_with("relocation: we must leave MARKER-REQUEST (the team answered)"),
        "{mine}"
    );
    assert!(lines[1].starts_with("  1. "), "{mine}");
    assert!(
        lines[2].ends_with("the team: travel booked for 12 May"),
        "{mine}"
    );
    assert!(
        lines[3].contains("the team: Your journey has started"),
        "{mine}"
    );
    assert_eq!(
        lines[4],
        "           check-ins offered for your journey: every 1s, 1s grace"
    );
    let accept = "hotline checkin-setup --every 1s --grace 1s";
    assert_eq!(
        lines[5],
        format!("to accept the check-ins offered: {accept}")
    );
    assert_eq!(lines[6], "to answer the team: hotline my-case reply \"…\"");
    for marker in [
        "MARKER-NAME",
        "MARKER-NOTE",
        "MARKER-CITY",
        "MARKER-ORIGIN",
        "MARKER-HOTEL",
        "UY",
        "C-2026-0042",
        "OTHER",
        &case,
        "in transit",
        "assessed",
    ] {
        assert!(!mine.contains(marker), "{marker} in {mine}");
        assert!(
            !stderr(&out).contains(marker),
            "{marker} in {}",
            stderr(&out)
        );
    }
    // The command it prints works.
    let mut args: Vec<&str> = accept.split_whitespace().skip(1).collect();
    args.extend(["--code", "4711", "--duress-code", "0815"]);
    let out = hotline(&defender, PASS, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    // Accepted: never offered again.
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(!stdout(&out).contains("to accept"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("after the team's newest offer"),
        "{}",
        stdout(&out)
    );

    // Nobody checks in: the missed check-in names the case on staff.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let out = hotline(&officer, PASS, &["alerts"]);
    let alerts = stdout(&out);
    assert!(alerts.contains("missed check-in"), "{alerts}");
    assert!(
        alerts.contains("case C-2026-0042, relocation to MARKER-CITY in transit since "),
        "{alerts}"
    );
    assert!(alerts.contains(", arrival planned 2027-05-13"), "{alerts}");
    // A duress check-in on the road names the journey too, on staff.
    let out = hotline(&defender, PASS, &["checkin", "--code", "0815"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    let alerts = stdout(&out);
    let duress: Vec<&str> = alerts
        .lines()
        .skip_while(|l| !l.contains("DURESS"))
        .take(3)
        .collect();
    assert!(
        duress
            .iter()
            .any(|l| l.contains("case C-2026-0042, relocation to MARKER-CITY in transit since ")),
        "{alerts}"
    );
    // ... and nothing of the case (nor of the duress) on the defender's device.
    for args in [&["alerts", "--all"][..], &["messages"], &["my-case"]] {
        let out = hotline(&defender, PASS, args);
        // Shares are shown by my-case alone, never again as messages.
        let shared_text = if args == ["messages"] {
            "travel booked for 12 May"
        } else {
            "C-2026-0042"
        };
        for marker in [
            "C-2026-0042",
            "MARKER-CITY",
            "relocation in transit",
            "DURESS",
            "duress",
            &case,
            shared_text,
        ] {
            assert!(!stdout(&out).contains(marker), "{args:?}: {}", stdout(&out));
        }
    }

    // The defender replies; staff read it in the case's timeline.
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "thank you MARKER-REPLY"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert_eq!(
        stdout(&out).matches("thank you MARKER-REPLY").count(),
        1,
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("recorded a reply of defender device"),
        "{}",
        stdout(&out)
    );
    // Shared offline: refused, since whether the defender's device has
    // an open duress alert can only be asked of the server; nothing
    // waits, nothing is recorded, nothing reaches the defender.
    let out = hotline(
        &officer,
        PASS,
        &[
            "--server",
            "127.0.0.1:9",
            "case",
            "share",
            &case,
            "MARKER-OFFLINE-SHARE",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("has no open duress alert")
            && stderr(&out).contains("nothing was shared. Once online, share again."),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("MARKER-OFFLINE-SHARE"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(
        !stdout(&out).contains("MARKER-OFFLINE-SHARE"),
        "{}",
        stdout(&out)
    );
    // A reply from a device not linked to the case: ignored, with a
    // warning. (A reply received while its sender was linked is recorded
    // in the case, and stays in its history.)
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "set",
            &other_case,
            "defender devices",
            &defender_id,
            "--drop-requester",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&other, PASS, &["my-case", "reply", "OTHER-REPLY"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", &other_case]);
    assert!(!stdout(&out).contains("OTHER-REPLY"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("which is not a defender device linked to it, was ignored"),
        "{}",
        stderr(&out)
    );
    // Five requests waiting for the team at most: the sixth is refused
    // in words, and does not wait in the outbox.
    for n in 1..=5 {
        let out = hotline(&other, PASS, &["request", "medical", &format!("need {n}")]);
        assert!(out.status.success(), "{n}: {}", stderr(&out));
    }
    let out = hotline(&other, PASS, &["request", "medical", "need 6"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("you already have 5 requests waiting for the team"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&other, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    // A share to a case with no defender device linked is refused, saying how.
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "no defender yet"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list"]);
    let lone = case_of(&out, "no defender yet");
    let out = hotline(&officer, PASS, &["case", "share", &lone, "hello"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no defender device linked")
            && stderr(&out).contains("defender devices"),
        "{}",
        stderr(&out)
    );
}

/// The duress rule holds for cases: a case opened from a duress alert
/// (which links the defender's device) is never shared with that device;
/// the defender's my-case and inbox stay as they were.
#[tokio::test(flavor = "multi_thread")]
async fn a_case_linking_a_duress_alert_is_never_shared_with_the_defender() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
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
    let before = hotline(&defender, PASS, &["my-case"]);
    assert!(before.status.success(), "{}", stderr(&before));
    let out = hotline(&defender, PASS, &["checkin", "--code", "0815"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    let duress = stdout(&out)
        .lines()
        .find(|l| l.contains("DURESS"))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.trim_start_matches('#').to_owned())
        .unwrap_or_else(|| panic!("a duress alert in {}", stdout(&out)));
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--from-alert",
            &duress,
            "--summary",
            "DURESS-CASE",
            "--reference",
            "C-1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "share", "C-1", "MARKER-SHARE we are coming"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Nothing was shared"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["case", "show", "C-1"]);
    assert!(!stdout(&out).contains("MARKER-SHARE"), "{}", stdout(&out));
    let after = hotline(&defender, PASS, &["my-case"]);
    assert_eq!(stdout(&after), stdout(&before));
    let out = hotline(&defender, PASS, &["inbox"]);
    assert!(stdout(&out).contains("no new messages"), "{}", stdout(&out));
}

/// The events of a case as `case show` lists them in its timeline on the
/// device of `home` (after its sync).
fn timeline_len(home: &Path, case: &str) -> usize {
    let out = hotline(home, PASS, &["case", "show", case]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .skip_while(|l| *l != "timeline:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .count()
}

/// Issue 12, "Must show": an SOS grows into a case opened by the officer
/// from its alert; a coordinator (another staff device, which got the case
/// key) adds the defender and two family members, starts their relocation
/// and moves it through every stage with a note each; the officer's
/// device shows each stage with its date, author and note; a move the
/// lifecycle does not allow is refused naming the stages allowed next, and
/// nothing reaches the server.
#[tokio::test(flavor = "multi_thread")]
async fn an_officer_opens_a_case_from_an_alert_a_coordinator_adds_the_family_and_a_relocation_runs_every_stage()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(&coordinator, PASS, &["status"]);
    let coordinator_id = field(&out, "device id: ");

    let out = hotline(&defender, PASS, &["sos", "they are at the door"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alert = alert_id(&out);
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--from-alert",
            &alert,
            "--summary",
            "family must leave",
            "--reference",
            "C-2026-0007",
            "--programme",
            "relocation",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    opened_case(&out);

    // The coordinator got the key with the opening: it reads the case and
    // adds the people.
    let out = hotline(&coordinator, PASS, &["case", "show", "C-2026-0007"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("family must leave"), "{shown}");
    assert!(!shown.contains("cannot read"), "{shown}");
    for (name, relationship) in [
        ("Ana Defender", "self"),
        ("Boris Spouse", "spouse or partner"),
        ("Clara Child", "child"),
    ] {
        let out = hotline(
            &coordinator,
            PASS,
            &[
                "case",
                "person",
                "add",
                "C-2026-0007",
                "--name",
                name,
                "--relationship",
                relationship,
            ],
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stdout(&out).contains("added to case"), "{}", stdout(&out));
    }
    let out = hotline(
        &coordinator,
        PASS,
        &[
            "relocation",
            "start",
            "C-2026-0007",
            "--people",
            "Ana Defender, Boris Spouse, Clara Child",
            "--origin",
            "Kharkiv",
            "--to",
            "UY",
            "--city",
            "Montevideo",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(requested)"), "{}", stdout(&out));
    let relocation = stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("relocation id")
        .to_owned();
    let stages = [
        "assessed",
        "approved",
        "travel booked",
        "in transit",
        "arrived",
        "hosted",
        "extended",
        "resettled",
        "closed",
    ];
    let mut from = "requested";
    for stage in stages {
        let note = format!("note on {stage}");
        if stage == "extended" {
            // From hosted, a step back is refused, with the allowed next
            // stages in words; nothing is written or sent.
            let before = timeline_len(&admin, "C-2026-0007");
            let out = hotline(
                &coordinator,
                PASS,
                &[
                    "relocation",
                    "advance",
                    "C-2026-0007",
                    &relocation,
                    "travel booked",
                ],
            );
            assert!(!out.status.success());
            assert!(
                stderr(&out).contains(
                    "a relocation that is hosted can move to: extended, returned, resettled, cancelled"
                ),
                "{}",
                stderr(&out)
            );
            assert_eq!(timeline_len(&admin, "C-2026-0007"), before);
        }
        let out = hotline(
            &coordinator,
            PASS,
            &[
                "relocation",
                "advance",
                "C-2026-0007",
                &relocation,
                stage,
                "--note",
                &note,
            ],
        );
        assert!(out.status.success(), "{stage}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("moved from {from} to {stage}")),
            "{}",
            stdout(&out)
        );
        from = stage;
    }
    // Closed is final: any move is refused, and nothing is sent.
    let before = timeline_len(&admin, "C-2026-0007");
    for stage in ["cancelled", "extended"] {
        let out = hotline(
            &coordinator,
            PASS,
            &["relocation", "advance", "C-2026-0007", &relocation, stage],
        );
        assert!(!out.status.success());
        assert!(
            stderr(&out)
                .contains("a relocation that is closed cannot move any more: closed is final"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(timeline_len(&admin, "C-2026-0007"), before);

    // The officer's device shows every stage, with its date, its author
    // and its note, in order.
    let out = hotline(
        &officer,
        PASS,
        &["relocation", "show", "C-2026-0007", &relocation],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(!shown.contains("WARNING"), "{shown}");
    assert!(!shown.contains("next:"), "closed is final: {shown}");
    for name in ["Ana Defender", "Boris Spouse", "Clara Child"] {
        assert!(shown.contains(name), "{name} in {shown}");
    }
    let lines: Vec<&str> = shown.lines().collect();
    let mut at = 0;
    for stage in std::iter::once("requested").chain(stages) {
        let found = lines[at..]
            .iter()
            .position(|l| {
                l.contains(&format!(" UTC {stage} by "))
                    && l.contains(&coordinator_id[..8])
                    && (stage == "requested" || l.ends_with(&format!(": note on {stage}")))
            })
            .unwrap_or_else(|| {
                panic!("stage {stage} in order, dated, by the coordinator, with its note: {shown}")
            });
        let line = lines[at + found];
        assert!(
            line.trim_start().starts_with("20") && line.contains(':'),
            "a date: {line}"
        );
        at += found + 1;
    }
    // The case alone shows its relocations (found by the maintainer's own
    // walk-through: the relocation id was required).
    let all = hotline(&officer, PASS, &["relocation", "show", "C-2026-0007"]);
    assert!(all.status.success(), "{}", stderr(&all));
    assert_eq!(stdout(&all), shown);
    // The case links the alert it grew from.
    let out = hotline(&officer, PASS, &["case", "show", "C-2026-0007"]);
    assert!(
        stdout(&out).contains(&format!("#{}", alert.trim_start_matches('#'))),
        "{}",
        stdout(&out)
    );
    // Said back by the reference the person typed, with the id's start.
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", "C-2026-0007", "--reason", "resettled"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("case C-2026-0007 (") && stdout(&out).contains(") closed"),
        "{}",
        stdout(&out)
    );
    server.shutdown().await;
}

/// How many times `needle` appears in `hay`.
fn occurrences(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// Issue 12, "Must show": with the server down, `case note` and `case
/// set` are kept in the case outbox (exit 3, said in words); the next
/// command once the server is back sends them, and the other staff device
/// sees each change once. A copy of the device taken while they waited (an
/// answer lost after the server stored them) sends them again: the server
/// recognises each as a duplicate and nothing is doubled.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_offline_lands_once_when_the_network_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "before", "--reference", "C-1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "show", "C-1"]);
    assert!(stdout(&out).contains("summary: before"), "{}", stdout(&out));

    server.shutdown().await;
    let out = hotline(&officer, PASS, &["case", "note", "C-1", "MET-AT-BORDER"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("note added to case")
            && stdout(&out).contains("(on this device only)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("not sent yet")
            && stderr(&out).contains("1 change(s) wait in this device's case outbox")
            && stderr(&out).contains("go out with the next command that reaches the server"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "set", "C-1", "summary", "after"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 change(s) wait in this device's case outbox"),
        "{}",
        stderr(&out)
    );
    // The device as it reads offline: both changes shown, marked unsent.
    let out = hotline(&officer, PASS, &["case", "show", "C-1"]);
    let shown = stdout(&out);
    assert!(shown.contains("summary: after"), "{shown}");
    assert!(
        shown.contains("2 changes made here not sent yet (waiting in the case outbox)"),
        "{shown}"
    );
    // The device as it was with both changes waiting, kept for later.
    let copy = dir.path().join("officer-copy");
    copy_dir(&officer, &copy);

    // The server is back: the officer's next command sends them.
    let server = server_on(dir.path(), addr).await;
    let out = hotline(&officer, PASS, &["case", "show", "C-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("not sent yet"), "{}", stdout(&out));
    let out = hotline(&admin, PASS, &["case", "show", "C-1"]);
    let seen = stdout(&out);
    assert!(seen.contains("summary: after"), "{seen}");
    assert_eq!(occurrences(&seen, "MET-AT-BORDER"), 1, "{seen}");
    let events = timeline_len(&admin, "C-1");

    // The copy still holds both in its outbox and sends them again: the
    // server had them, so the copy is told so and nothing is doubled.
    let out = hotline(&copy, PASS, &["case", "show", "C-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("not sent yet"), "{all}");
    assert!(!all.contains("NOT SAVED"), "{all}");
    assert!(
        all.contains("2 case change(s) were already on the server (sent before); each counts once"),
        "{all}"
    );
    assert_eq!(occurrences(&stdout(&out), "MET-AT-BORDER"), 1, "{all}");
    let out = hotline(&admin, PASS, &["case", "show", "C-1"]);
    assert_eq!(
        occurrences(&stdout(&out), "MET-AT-BORDER"),
        1,
        "{}",
        stdout(&out)
    );
    assert_eq!(timeline_len(&admin, "C-1"), events);
    server.shutdown().await;
}

/// Issue 12, "Must show": two staff devices read a case, go offline and
/// each sets its summary to something else; once both are back, both
/// devices show the field in conflict with both values, their authors and
/// times (and `case list` marks the case); one person settles it by
/// setting it again, and both devices show one value and no conflict.
#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_edits_of_one_field_are_both_kept_and_shown_as_a_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "first", "--reference", "C-1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let officer_id = field(&hotline(&officer, PASS, &["status"]), "device id: ");
    let admin_id = field(&hotline(&admin, PASS, &["status"]), "device id: ");
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "show", "C-1"]);
        assert!(stdout(&out).contains("summary: first"), "{}", stdout(&out));
    }

    server.shutdown().await;
    for (h, value) in [(&officer, "from Kyiv"), (&admin, "from Lviv")] {
        let out = hotline(h, PASS, &["case", "set", "C-1", "summary", value]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    }
    let server = server_on(dir.path(), addr).await;
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["case", "show", "C-1"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["case", "show", "C-1"]);
        let shown = stdout(&out);
        let line = shown
            .lines()
            .find(|l| l.trim_start().starts_with("summary:"))
            .unwrap_or_else(|| panic!("a summary in {shown}"));
        assert!(line.contains("CONFLICT"), "{shown}");
        for (value, author) in [("from Kyiv", &officer_id), ("from Lviv", &admin_id)] {
            let part = line
                .split(" / ")
                .find(|p| p.contains(&format!("\"{value}\" by ")))
                .unwrap_or_else(|| panic!("{value} in {line}"));
            assert!(part.contains(&author[..8]), "{value} by its author: {line}");
            assert!(part.contains(" UTC)"), "{value} with its time: {line}");
        }
        let out = hotline(h, PASS, &["case", "list", "--sync"]);
        let listed = stdout(&out);
        assert!(
            listed.lines().any(|l| l
                .split_whitespace()
                .next()
                .is_some_and(|w| w.ends_with('!'))
                && l.contains("C-1")),
            "{listed}"
        );
        assert!(
            listed.contains("! a field has conflicting values"),
            "{listed}"
        );
    }

    // The admin settles it.
    let out = hotline(
        &admin,
        PASS,
        &["case", "set", "C-1", "summary", "from Kyiv, via Lviv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["case", "show", "C-1"]);
        let shown = stdout(&out);
        assert!(shown.contains("summary: from Kyiv, via Lviv"), "{shown}");
        assert!(!shown.contains("CONFLICT"), "{shown}");
        let out = hotline(h, PASS, &["case", "list", "--sync"]);
        let listed = stdout(&out);
        assert!(!listed.contains('!'), "{listed}");
    }
    server.shutdown().await;
}

/// A defender's words are never shown nowhere: a reply about a case a
/// staff device does not hold (never synced there, or erased) is shown in
/// `inbox` and `messages` with its words, saying why, and how to answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_about_a_case_this_device_does_not_hold_is_shown_with_its_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let defender_id = device_id(&defender);
    let out = hotline(&defender, PASS, &["request", "relocation", "we must leave"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = case_of(&out, "we must leave");
    let out = hotline(&officer, PASS, &["case", "set", &case, "reference", "C-1"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The admin's device never synced the case.
    let out = hotline(&defender, PASS, &["my-case", "reply", "MARKER-FIRST reply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("MARKER-FIRST reply"), "{shown}");
    assert!(shown.contains("so no case here shows it"), "{shown}");
    assert!(
        shown.contains(&format!("hotline send --to {defender_id}")),
        "{shown}"
    );
    // The officer's device holds the case: the inbox points to it, and
    // the case shows the words.
    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(!stdout(&out).contains("MARKER-FIRST"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("(`hotline case show {case}`)")),
        "{}",
        stdout(&out)
    );
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("MARKER-FIRST reply"),
        "{}",
        stdout(&out)
    );

    // Erased: the next reply is shown with its words, on every staff device.
    for (h, args) in [
        (
            &officer,
            vec!["case", "close", &case, "--reason", "settled"],
        ),
        (&officer, vec!["case", "erase", &case]),
        (&admin, vec!["case", "erase", &case, "--confirm"]),
        (&officer, vec!["case", "list", "--sync"]),
    ] {
        let out = hotline(h, PASS, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "are you still there? MARKER-AFTER"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["inbox"]);
    let shown = stdout(&out);
    assert!(
        shown.contains("are you still there? MARKER-AFTER"),
        "{shown}"
    );
    assert!(shown.contains("erased"), "{shown}");
    assert!(
        shown.contains(&format!("hotline send --to {defender_id}")),
        "{shown}"
    );
    let out = hotline(&officer, PASS, &["messages"]);
    assert!(
        stdout(&out).contains("are you still there? MARKER-AFTER"),
        "{}",
        stdout(&out)
    );
    // The answer reaches the defender.
    let out = hotline(
        &officer,
        PASS,
        &["send", "--to", &defender_id, "MARKER-ANSWER we are here"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&defender, PASS, &["inbox"]);
    assert!(
        stdout(&out).contains("MARKER-ANSWER we are here"),
        "{}",
        stdout(&out)
    );
}

/// A case opened from an alert: a mistyped alert id is refused, the
/// alert's defender is linked, a second case for the same alert needs
/// --again; a staff device is refused as a defender device, and a name
/// that matches nobody says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_case_from_an_alert_checks_the_alert_and_its_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let defender_id = device_id(&defender);
    let admin_id = device_id(&admin);
    let out = hotline(&defender, PASS, &["sos", "--category", "threat", "help"]);
    let alert = alert_id(&out);

    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--from-alert",
            "9999999",
            "--summary",
            "typo",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no alert 9999999 visible to this device"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "list"]);
    assert!(!stdout(&out).contains("typo"), "{}", stdout(&out));

    // Offline: refused, saying why.
    let out = hotline(
        &officer,
        PASS,
        &[
            "--server",
            "127.0.0.1:9",
            "case",
            "open",
            "--from-alert",
            &alert,
            "--summary",
            "offline",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--from-alert needs the server"),
        "{}",
        stderr(&out)
    );

    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--from-alert", &alert, "--summary", "first"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains(&defender_id[..8]),
        "the alert's defender is linked: {}",
        stdout(&out)
    );
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--from-alert",
            &alert,
            "--summary",
            "second",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("case {case} already links alert {alert}")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--again"), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--from-alert",
            &alert,
            "--summary",
            "second",
            "--again",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A staff device is not a defender device.
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &case, "defender devices", &admin_id[..8]],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is a staff device on the roster"),
        "{}",
        stderr(&out)
    );
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "set",
            &case,
            "defender devices",
            "nobody-by-that-name",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no device known here matches"),
        "{}",
        stderr(&out)
    );
    // A person's name that matches nobody says so.
    let out = hotline(
        &officer,
        PASS,
        &[
            "relocation",
            "start",
            &case,
            "--people",
            "Nobody Known",
            "--origin",
            "Kharkiv",
            "--to",
            "UY",
            "--city",
            "Montevideo",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no person of this case is named \"Nobody Known\""),
        "{}",
        stderr(&out)
    );
}

/// A declined request: the defender's device is told in neutral words
/// (never the internal reason) and shows the request as answered, unless
/// staff close it with --no-notice.
#[tokio::test(flavor = "multi_thread")]
async fn a_declined_request_is_answered_on_the_defenders_device_in_neutral_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    for text in ["a lawyer MARKER-ONE", "a lawyer MARKER-TWO"] {
        let out = hotline(&defender, PASS, &["request", "legal", text]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let one = case_of(&out, "MARKER-ONE");
    let two = case_of(&out, "MARKER-TWO");
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "close",
            &one,
            "--reason",
            "INTERNAL-REASON not credible",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the defender is told the request was closed"),
        "{}",
        stdout(&out)
    );
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "close",
            &two,
            "--reason",
            "duplicate",
            "--no-notice",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the defender was not told"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mine = stdout(&out);
    assert!(
        mine.contains("legal: a lawyer MARKER-ONE (the team closed this request)"),
        "{mine}"
    );
    assert!(
        mine.contains(
            "the team: The team has closed this request. They may contact you another way."
        ),
        "{mine}"
    );
    assert!(
        mine.contains("legal: a lawyer MARKER-TWO (waiting for the team's answer)"),
        "{mine}"
    );
    assert!(!mine.contains("INTERNAL-REASON"), "{mine}");
    // Other staff see what the defender was told.
    let out = hotline(&admin, PASS, &["case", "show", &one]);
    assert!(
        stdout(&out).contains("The team has closed this request"),
        "{}",
        stdout(&out)
    );
}

/// Staff who join later get the whole history: the case list reads what
/// the keys they receive open, the request's words come from the opening
/// event, and the defender's replies from the events that recorded them
/// (each shown once).
#[tokio::test(flavor = "multi_thread")]
async fn new_staff_read_the_request_and_the_defenders_replies_and_list_the_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "relocation", "we must leave MARKER-REQ"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, "MARKER-REQ");
    let out = hotline(&officer, PASS, &["case", "set", &case, "reference", "C-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "thank you, we are ready MARKER-REPLY"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The first staff device that attaches the reply records it.
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("recorded in case {case}: a reply of its defender")),
        "{}",
        stdout(&out)
    );
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert_eq!(
        stdout(&out).matches("MARKER-REPLY").count(),
        1,
        "{}",
        stdout(&out)
    );
    // The admin received it too: it is not recorded twice.
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    assert!(
        !stdout(&out).contains("recorded in case"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stdout(&out).matches("MARKER-REPLY").count(),
        1,
        "{}",
        stdout(&out)
    );

    // A coordinator joins and syncs before any key reaches it.
    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    assert!(
        stdout(&out).contains("not readable here yet"),
        "{}",
        stdout(&out)
    );
    // The officer's next command sends it the keys; its next sync reads.
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &coordinator,
        PASS,
        &["case", "list", "--sync", "--state", "open"],
    );
    let listed = stdout(&out);
    assert!(listed.contains(&case), "{listed}");
    assert!(listed.contains("C-7"), "{listed}");
    assert!(!listed.contains("not readable"), "{listed}");
    let out = hotline(&coordinator, PASS, &["case", "list"]);
    assert!(!stdout(&out).contains("not readable"), "{}", stdout(&out));
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(shown.contains("we must leave MARKER-REQ"), "{shown}");
    assert!(!shown.contains("words are not on this device"), "{shown}");
    assert_eq!(shown.matches("MARKER-REPLY").count(), 1, "{shown}");
}

/// Issue 12 (walk-through finding 1): two staff move one relocation's
/// stage while offline (one cancels it, the other assesses it); the stage
/// is in conflict, and `relocation advance` settles it, either by choosing
/// one of the conflicting stages or by moving on from one of them; both
/// devices then show one stage and no conflict. A stage that is neither is
/// refused, and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_relocation_stage_in_conflict_is_settled_by_an_advance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "s", "--reference", "C-9"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "person",
            "add",
            "C-9",
            "--name",
            "Ana",
            "--relationship",
            "self",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &[
            "relocation",
            "start",
            "C-9",
            "--people",
            "Ana",
            "--origin",
            "Kharkiv",
            "--to",
            "UY",
            "--city",
            "Montevideo",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rel = stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("relocation id")
        .to_owned();
    let out = hotline(&admin, PASS, &["relocation", "show", "C-9", &rel]);
    assert!(out.status.success(), "{}", stderr(&out));

    server.shutdown().await;
    for (h, stage) in [(&admin, "cancelled"), (&officer, "assessed")] {
        let out = hotline(h, PASS, &["relocation", "advance", "C-9", &rel, stage]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    }
    let server = server_on(dir.path(), addr).await;
    for h in [&officer, &admin, &officer] {
        let out = hotline(h, PASS, &["case", "show", "C-9"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(&officer, PASS, &["relocation", "show", "C-9", &rel]);
    assert!(stdout(&out).contains("CONFLICT"), "{}", stdout(&out));

    // Neither stage nor a move from one: refused, nothing written.
    let before = timeline_len(&officer, "C-9");
    let out = hotline(
        &officer,
        PASS,
        &["relocation", "advance", "C-9", &rel, "hosted"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is neither one of those stages nor a move allowed from one of them"),
        "{}",
        stderr(&out)
    );
    assert_eq!(timeline_len(&officer, "C-9"), before);

    // Choosing one of them settles the conflict on every device.
    let out = hotline(
        &officer,
        PASS,
        &[
            "relocation",
            "advance",
            "C-9",
            &rel,
            "assessed",
            "--note",
            "agreed by phone",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("stage conflict")
            && stdout(&out).contains("settled: assessed chosen"),
        "{}",
        stdout(&out)
    );
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["relocation", "show", "C-9", &rel]);
        let shown = stdout(&out);
        assert!(!shown.contains("CONFLICT"), "{shown}");
        assert!(!shown.contains("WARNING"), "{shown}");
        assert!(shown.contains(&format!("{rel}: assessed")), "{shown}");
    }
    // Each device names its own moves "you"; the other its name or id.
    let officer_id = device_id(&officer);
    let out = hotline(&officer, PASS, &["relocation", "show", "C-9", &rel]);
    assert!(
        stdout(&out).contains(" assessed by you (") || stdout(&out).contains(" assessed by you, "),
        "{}",
        stdout(&out)
    );
    let out = hotline(&admin, PASS, &["relocation", "show", "C-9", &rel]);
    let shown = stdout(&out);
    assert!(shown.contains(" cancelled by you ("), "{shown}");
    assert!(
        shown
            .lines()
            .filter(|l| l.contains(" assessed by "))
            .all(|l| !l.contains("you") && l.contains(&officer_id[..8])),
        "{shown}"
    );
    // And the relocation moves on as usual.
    let out = hotline(
        &admin,
        PASS,
        &["relocation", "advance", "C-9", &rel, "approved"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("moved from assessed to approved"),
        "{}",
        stdout(&out)
    );
    server.shutdown().await;
}

/// Issue 12 (walk-through finding 3): what a tired person mistypes is
/// refused with the real rule, and nothing is written: a year of birth
/// before 1900 or after this year, a country that is not an ISO 3166-1
/// code, an arrival before the departure, a person named by part of a
/// name or by a name two people share.
#[tokio::test(flavor = "multi_thread")]
async fn case_input_is_checked_against_the_real_rules_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "s", "--reference", "C-3"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["Boris Spouse", "Ana", "ana"] {
        let out = hotline(
            &officer,
            PASS,
            &[
                "case",
                "person",
                "add",
                "C-3",
                "--name",
                name,
                "--relationship",
                "other",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let before = timeline_len(&officer, "C-3");
    let this_year: u32 = {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        // Days to civil year, good enough away from New Year's Eve.
        (1970 + secs / 31_556_952) as u32
    };
    let next_year = (this_year + 1).to_string();
    for born in ["1880", next_year.as_str()] {
        let out = hotline(
            &officer,
            PASS,
            &[
                "case",
                "person",
                "add",
                "C-3",
                "--name",
                "Clara",
                "--relationship",
                "child",
                "--born",
                born,
            ],
        );
        assert!(!out.status.success(), "{born}");
        assert!(
            stderr(&out).contains(&format!(
                "a year of birth is a year from 1900 to {this_year}"
            )),
            "{born}: {}",
            stderr(&out)
        );
    }
    let start = |people: &str, to: &str, depart: &str, arrive: &str| {
        hotline(
            &officer,
            PASS,
            &[
                "relocation",
                "start",
                "C-3",
                "--people",
                people,
                "--origin",
                "Kharkiv",
                "--to",
                to,
                "--city",
                "Montevideo",
                "--depart",
                depart,
                "--arrive",
                arrive,
            ],
        )
    };
    let refused = [
        (
            start("Boris Spouse", "XX", "2027-01-02", "2027-01-03"),
            "XX is not an ISO 3166-1 country code",
        ),
        (
            start("Boris Spouse", "UY", "2027-01-02", "2027-01-01"),
            "the planned arrival (2027-01-01) is before the planned departure (2027-01-02)",
        ),
        (
            start("Boris", "UY", "2027-01-02", "2027-01-03"),
            "no person of this case is named exactly \"Boris\"; give the full name or the id of: Boris Spouse (",
        ),
        (
            start("Zoe", "UY", "2027-01-02", "2027-01-03"),
            "no person of this case is named \"Zoe\"",
        ),
        (
            start("ANA", "UY", "2027-01-02", "2027-01-03"),
            "ambiguous: 2 people of this case are named \"ANA\": Ana (",
        ),
    ];
    for (out, said) in refused {
        assert!(!out.status.success(), "{said}");
        assert!(stderr(&out).contains(said), "{said}: {}", stderr(&out));
    }
    assert_eq!(timeline_len(&officer, "C-3"), before);
    // The same, right: accepted.
    let out = start("Boris Spouse", "uy", "2027-01-02", "2027-01-02");
    assert!(out.status.success(), "{}", stderr(&out));
    server.shutdown().await;
}

/// Issue 12 (walk-through findings 4 and 6): the statistics ledger is no
/// case to work on: `case list` does not show it, and closing or changing
/// it is refused on the device before anything is written (the server
/// would refuse it, and it would wait in the outbox forever). `case list
/// --erasable` syncs first, so a retention period changed on the server
/// shows at once.
#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_is_not_listed_nor_changed_and_erasable_follows_the_servers_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |_| {}).await;
    let addr = server.local_addr();
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "s", "--reference", "C-5"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", "C-5", "--reason", "done"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--erasable"]);
    assert!(!stdout(&out).contains(&case), "{}", stdout(&out));

    // The server's retention becomes 0 days: --erasable shows the case
    // without --sync.
    server.shutdown().await;
    let server = server_configured(dir.path(), addr, |c| c.cases.retention_days = 0).await;
    let out = hotline(&officer, PASS, &["case", "list", "--erasable"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&case), "{}", stdout(&out));

    // Asking for the erasure writes the tombstone: the ledger exists.
    let out = hotline(&officer, PASS, &["case", "erase", "C-5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["invite", "--role", "officer"]);
    let invite: hotline_proto::Invite = invite_line(&out).parse().expect("invite");
    let ledger = hotline_proto::case::ledger_id(&invite.org_root.expect("a root"));
    let ledger = hotline_proto::identity::hex(ledger.as_bytes());
    let ledger = &ledger[..8];
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["case", "list", "--sync"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(&case), "{}", stdout(&out));
        assert!(!stdout(&out).contains(ledger), "{}", stdout(&out));
        let out = hotline(h, PASS, &["case", "stats"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let before = timeline_len(&officer, ledger);
    for args in [
        vec!["case", "close", ledger, "--reason", "tidy"],
        vec!["case", "note", ledger, "hello"],
    ] {
        let out = hotline(&officer, PASS, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the statistics ledger is never closed or changed"),
            "{}",
            stderr(&out)
        );
    }
    let out = hotline(&officer, PASS, &["outbox"]);
    assert!(!stdout(&out).contains("case change"), "{}", stdout(&out));
    assert_eq!(timeline_len(&officer, ledger), before);
    server.shutdown().await;
}

/// Walk-through 2, L: an admin names devices the same way in every
/// command. A device `hotline devices` lists is named by 4 hex digits of
/// its id in `hotline label`; the device that took an invite made with
/// `--label Cleo` is named Cleo in `hotline devices` before it ever wrote
/// (the server lists the invite's digest with it), `revoke Cleo` finds
/// it, and revoking it again says when it was revoked and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_names_invited_devices_by_their_invite_label_or_4_digits_and_revokes_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let admin = dir.path().join("admin");
    let invite = server
        .create_invite(Role::Admin, 600)
        .await
        .expect("invite")
        .to_string();
    assert!(hotline(&admin, PASS, &["enroll", &invite]).status.success());

    // An officer invited with a label, and a defender without one.
    let out = hotline(
        &admin,
        PASS,
        &["invite", "--role", "officer", "--label", "Cleo"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("`hotline devices` here names it \"Cleo\""),
        "{}",
        stdout(&out)
    );
    let cleo = dir.path().join("cleo");
    let out = hotline(&cleo, PASS, &["enroll", &invite_line(&out)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cleo_id = field(&out, "device id:");
    let out = hotline(&admin, PASS, &["invite", "--role", "defender"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dan = dir.path().join("dan");
    let out = hotline(&dan, PASS, &["enroll", &invite_line(&out)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dan_id = field(&out, "device id:");

    // 4 hex digits of a device the server lists name it, though it never
    // wrote to the admin.
    let out = hotline(&admin, PASS, &["label", &dan_id[..4], "Dan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is now called \"Dan\""),
        "{}",
        stdout(&out)
    );

    // The admin's list names both: Cleo by the invite's label.
    let out = hotline(&admin, PASS, &["devices"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = |id: &str| {
        stdout(&out)
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} listed: {}", stdout(&out)))
            .to_owned()
    };
    assert!(
        line(&cleo_id).trim_end().ends_with("Cleo"),
        "{}",
        stdout(&out)
    );
    assert!(
        line(&dan_id).trim_end().ends_with("Dan"),
        "{}",
        stdout(&out)
    );

    // Revoked by the invite's label.
    let out = hotline(&admin, PASS, &["revoke", "Cleo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("device Cleo ({}) revoked", &cleo_id[..8])),
        "{}",
        stdout(&out)
    );
    let listed = stdout(&hotline(&admin, PASS, &["devices"]));
    // Twice: said, nothing changed (the revocation time stays the first).
    let out = hotline(&admin, PASS, &["revoke", &cleo_id[..6]]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "device Cleo ({}) was already revoked on ",
            &cleo_id[..8]
        )) && stderr(&out).contains("nothing changed"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("revoked ("), "{}", stdout(&out));
    assert_eq!(stdout(&hotline(&admin, PASS, &["devices"])), listed);
    // A name nobody has: the one rule, said as everywhere.
    let out = hotline(&admin, PASS, &["label", "Zed", "Z"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "no device known here matches \"Zed\": give at least 4 hex digits of its id (its start"
        ),
        "{}",
        stderr(&out)
    );
    server.shutdown().await;
}
/// Issue 12 (second walk-through, K1): a staff device that joins later
/// and syncs before any case key reaches it announces only the request
/// that still waits as new; a request already taken on, and a case staff
/// opened, are open cases waiting for their keys (said once, listed as
/// such, never listed as requests), and read in full once the keys come.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_staff_device_announces_only_waiting_requests_and_says_which_cases_wait_for_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    // A request the officer takes on, a case the officer opens, and a
    // second request nobody answered yet.
    let out = hotline(
        &defender,
        PASS,
        &["request", "relocation", "we must leave MARKER-TAKEN"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    let taken = case_of(&out, "MARKER-TAKEN");
    let out = hotline(&officer, PASS, &["case", "set", &taken, "reference", "C-9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "Family of Zofia-OPENED"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let opened = opened_case(&out);
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", "a lawyer please MARKER-WAITING"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    let waiting = case_of(&out, "MARKER-WAITING");

    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert_eq!(
        said.matches("new request from a defender").count(),
        1,
        "{said}"
    );
    assert!(
        said.contains(&format!("new request from a defender: case {waiting}")),
        "{said}"
    );
    assert!(
        said.contains("2 case(s) waiting for their keys from another staff device"),
        "{said}"
    );
    for case in [&taken, &opened] {
        let line = said
            .lines()
            .find(|l| l.starts_with(case.as_str()))
            .unwrap_or_else(|| panic!("{case} listed in {said}"));
        assert!(line.contains("open"), "{line}");
        assert!(
            line.contains("waiting for its keys from another staff device"),
            "{line}"
        );
    }
    let out = hotline(
        &coordinator,
        PASS,
        &["case", "list", "--state", "requested"],
    );
    let listed = stdout(&out);
    assert!(listed.contains(&waiting), "{listed}");
    assert!(!listed.contains(&taken), "{listed}");
    assert!(!listed.contains(&opened), "{listed}");
    // Said once: a command that brings nothing new does not repeat it.
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    assert!(
        !stdout(&out).contains("waiting for their keys"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("new request"), "{}", stdout(&out));

    // The officer's next command sends the keys; the coordinator's next
    // sync reads both cases in full.
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    let listed = stdout(&out);
    assert!(!listed.contains("not readable"), "{listed}");
    assert!(!listed.contains("waiting for"), "{listed}");
    assert!(listed.contains("C-9"), "{listed}");
    assert!(listed.contains("Family of Zofia-OPENED"), "{listed}");
    server.shutdown().await;
}

/// The envelopes from `senders` waiting in `home`'s inbox on the server
/// (none fetched: the device's own cursor is not moved).
async fn envelopes_waiting_from(home: &Path, senders: &[&str]) -> usize {
    use hotline_client::StateDir;
    use hotline_client::messenger::Device;
    let device = Device::open(&StateDir::new(home), PASS).expect("opens");
    let session = device.connect().await.expect("connects");
    let items = session.fetch_inbox(0, 100).await.expect("inbox");
    session.close().await;
    items
        .iter()
        .filter(|i| {
            let from = hotline_proto::identity::hex(i.envelope.sender.as_bytes());
            senders.iter().any(|s| from.starts_with(s))
        })
        .count()
}

/// Issue 12 (second walk-through, K2): when a roster adds a staff
/// device, the first staff device to see it sends the case keys, sealed
/// to the new device and copied to the other staff devices; another that
/// holds the same keys then sends none (one envelope reaches the new
/// device, not one per staff device), and the new device reads the case.
/// A device that saw no copy still sends: a key is never left unsent.
#[tokio::test(flavor = "multi_thread")]
async fn case_keys_for_a_new_staff_device_are_sent_once_by_the_first_staff_device_to_see_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "Family of Zofia-ONCE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    // Both staff devices hold the case's key.
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("Family of Zofia-ONCE"),
        "{}",
        stdout(&out)
    );
    let (admin_id, officer_id) = (device_id(&admin), device_id(&officer));

    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    assert!(
        stdout(&out).contains("the keys of 1 case(s) go to them"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&admin, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("go to them"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("another staff device sent them the case keys already"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        envelopes_waiting_from(&coordinator, &[&admin_id, &officer_id]).await,
        1,
        "one CASE_KEYS envelope for the new device"
    );
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(shown.contains("Family of Zofia-ONCE"), "{shown}");
    assert!(!shown.contains("cannot read"), "{shown}");

    // A fourth staff device: this time the admin's device sees the roster
    // first and sends; the officer's, which then has the copy, sends none.
    let second = dir.path().join("second");
    join_staff(
        &admin,
        &second,
        "coordinator",
        &dir.path().join("org.key"),
        4,
    );
    let out = hotline(&admin, PASS, &["case", "list", "--sync"]);
    assert!(
        stdout(&out).contains("the keys of 1 case(s) go to them"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    assert!(!stdout(&out).contains("go to them"), "{}", stdout(&out));
    assert_eq!(
        envelopes_waiting_from(&second, &[&admin_id, &officer_id]).await,
        1,
        "one CASE_KEYS envelope for the new device"
    );
    let out = hotline(&second, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("Family of Zofia-ONCE"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("cannot read"), "{}", stdout(&out));
    server.shutdown().await;
}

/// Issue 12 (second walk-through, K3): after the statistics ledger's key
/// was rotated (a staff device left the roster), a device that holds the
/// ledger's first key and not the new one says that `case stats` may be
/// incomplete, instead of counting the tombstones it can read as all.
#[tokio::test(flavor = "multi_thread")]
async fn case_stats_says_it_may_be_incomplete_while_the_ledgers_newest_key_has_not_arrived() {
    use hotline_client::StateDir;
    use hotline_client::cases::{open_replica, sync};
    use hotline_client::messenger::Device;

    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    // A case closed before the coordinator joins: its keys are not sent
    // to it, so it can neither list it as erasable nor ask its erasure
    // (the statistics would be made of nothing).
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "closed before"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let closed = opened_case(&out);
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &closed, "--reason", "done"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key = dir.path().join("org.key");
    let coordinator = dir.path().join("coordinator");
    join_staff(&admin, &coordinator, "coordinator", &key, 3);
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    assert!(
        stdout(&out).contains("1 closed case(s) this device cannot read"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&coordinator, PASS, &["case", "list", "--erasable"]);
    assert!(!stdout(&out).contains(&closed), "{}", stdout(&out));
    let out = hotline(&coordinator, PASS, &["case", "erase", &closed]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read all of case"),
        "{}",
        stderr(&out)
    );
    // Nor can it confirm a colleague's erasure of it (walk-through 3,
    // WA4): it cannot check what it would erase, and nothing is erased.
    let out = hotline(&officer, PASS, &["case", "erase", &closed]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&coordinator, PASS, &["case", "erase", &closed, "--confirm"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "this device cannot read all of case {closed}"
        )) && stderr(&out).contains(
            "so it cannot check what it would erase: a staff device that reads it must confirm. Nothing was erased"
        ),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "show", &closed]);
    assert!(stdout(&out).contains("closed before"), "{}", stdout(&out));
    // A device that reads it confirms.
    let out = hotline(&admin, PASS, &["case", "erase", &closed, "--confirm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let erase = |summary: &str| {
        let out = hotline(&officer, PASS, &["case", "open", "--summary", summary]);
        assert!(out.status.success(), "{}", stderr(&out));
        let case = opened_case(&out);
        let out = hotline(
            &officer,
            PASS,
            &["case", "close", &case, "--reason", "done"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = hotline(&officer, PASS, &["case", "erase", &case]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = hotline(&admin, PASS, &["case", "erase", &case, "--confirm"]);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    // The ledger is opened (epoch 1); the admin holds its key.
    erase("a first family");
    let out = hotline(&admin, PASS, &["case", "stats"]);
    assert!(
        !stdout(&out).contains("may be incomplete"),
        "{}",
        stdout(&out)
    );

    // The coordinator leaves: the officer's next tombstone opens epoch 2.
    let coordinator_id = device_id(&coordinator);
    let out = hotline(&admin, PASS, &["revoke", &coordinator_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(stdout(&out).contains("2 staff devices"), "{}", stdout(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "a second family"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let second = opened_case(&out);
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &second, "--reason", "done"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "erase", &second]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("a new case key (epoch 2)"),
        "{}",
        stdout(&out)
    );

    // The admin's device syncs the ledger's events before the new key
    // reaches it (its inbox not fetched), then works offline.
    let mut admin_device = Device::open(&StateDir::new(&admin), PASS).expect("opens");
    let session = admin_device.connect().await.expect("connects");
    let roster = admin_device.roster(&session).await.expect("roster");
    let mut replica = open_replica(&admin_device).expect("replica");
    sync::sync_cases(&session, &mut replica, &roster, &|_, _| None)
        .await
        .expect("synced");
    session.close().await;
    drop((replica, admin_device));
    server.shutdown().await;
    let out = hotline(&admin, PASS, &["case", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "this device does not hold the ledger's key yet: these figures may be incomplete"
        ),
        "{}",
        stdout(&out)
    );
}

/// The `#N` id of the only alert `hotline alerts` lists in `out`.
fn listed_alert(out: &Output) -> String {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix('#'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no alert listed: {}", stdout(out)))
        .to_owned()
}

/// Issue 12, walk-through 2 (S1): a defender raises an SOS offline (with
/// the panic key, sealed to the staff keys its device kept: roster v1);
/// meanwhile the admin signs roster v2, adding a coordinator. When the
/// SOS arrives, no staff device calls it EXPIRED (it was: a duty officer
/// reads that as "ignore"): the officer reads that its text was sealed
/// to an earlier roster and how to pass it on; the coordinator, who
/// cannot read it, is told so and how it will; the officer opens a case
/// from the alert, which copies the SOS's words, and the coordinator
/// reads them in `case show`.
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_sealed_to_a_replaced_roster_is_never_called_expired_and_new_staff_read_it_in_its_case()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    // The defender's device keeps the staff keys of roster v1.
    let out = hotline(&defender, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(defender.join("staff-keys").exists());
    server.shutdown().await;

    let words = "offline sos sealed to roster one";
    let out = hotline_without_passphrase(
        &defender,
        &["sos", "--wait", "1", "--category", "arrest", words],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Meanwhile the admin adds a coordinator: roster v2.
    let server = server_on(dir.path(), addr).await;
    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    // The SOS arrives.
    let out = hotline_without_passphrase(&defender, &["status"]);
    assert!(
        stdout(&out).contains("your waiting SOS was sent"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The officer: no EXPIRED; what is true, and what to do.
    let out = hotline(&officer, PASS, &["alerts"]);
    let seen = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!seen.contains("EXPIRED"), "{seen}");
    assert!(!seen.to_lowercase().contains("expired"), "{seen}");
    assert!(
        seen.contains("the defender's phone sealed this text to an earlier staff roster")
            && seen.contains("staff added since cannot read it"),
        "{seen}"
    );
    let id = listed_alert(&out);
    assert!(
        seen.contains(&format!("hotline case open --from-alert {id}")),
        "{seen}"
    );
    let out = hotline(&officer, PASS, &["messages", "--alert", &id]);
    assert!(stdout(&out).contains(words), "{}", stdout(&out));

    // The coordinator added since: told it cannot read it, and how.
    let out = hotline(&coordinator, PASS, &["alerts"]);
    let seen = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!seen.to_lowercase().contains("expired"), "{seen}");
    assert!(
        seen.contains("this device cannot read its text")
            && seen.contains(&format!("hotline case open --from-alert {id}")),
        "{seen}"
    );
    assert!(!seen.contains(words), "{seen}");

    // The officer opens a case from the alert: its words go into it.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--from-alert",
            &id,
            "--summary",
            "arrest reported offline",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("the case holds the SOS text of alert {id}")),
        "{}",
        stdout(&out)
    );
    let case = opened_case(&out);
    // The coordinator reads them in the case.
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    let shown = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(shown.contains(words), "{shown}");
    assert!(
        shown.contains(&format!("SOS of alert #{id} (arrest;"))
            && shown.contains("sent with the panic key)"),
        "{shown}"
    );
    server.shutdown().await;
}

/// Issue 12, walk-through 2 (S2): an SOS raised with the passphrase while
/// the server cannot be reached waits in the device's outbox, which only
/// the passphrase opens. `hotline status` without the passphrase says so
/// (it said nothing), exit status 3, and so does any other command; the
/// note beside the outbox holds a count and nothing of the SOS; once a
/// command with the passphrase sent it, nothing more is said. A duress
/// check-in leaves the same (nothing) as a normal one.
#[tokio::test(flavor = "multi_thread")]
async fn status_without_the_passphrase_says_an_sos_queued_with_it_is_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
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
    // A normal and a duress check-in leave the same: nothing waiting.
    let mut after = Vec::new();
    for code in ["4711", "0815"] {
        let out = hotline(&defender, PASS, &["checkin", "--code", code]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!defender.join("sos-waiting").exists());
        let out = hotline_without_passphrase(&defender, &["status"]);
        after.push((out.status.code(), stdout(&out), stderr(&out)));
    }
    assert_eq!(
        after[0], after[1],
        "a duress check-in shows as a normal one"
    );
    assert!(!after[0].1.contains("waiting"), "{:?}", after[0]);

    // Nothing answers there: the SOS waits in the outbox.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let dead = dead.local_addr().expect("addr").to_string();
    let words = "queued with the passphrase";
    let out = hotline(
        &defender,
        PASS,
        &["--server", &dead, "sos", "--wait", "0", words],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let note = std::fs::read(defender.join("sos-waiting")).expect("noted");
    assert_eq!(note, b"1\n", "a count, nothing of the SOS");

    let out = hotline_without_passphrase(&defender, &["status"]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{said}{}", stderr(&out));
    assert!(
        said.contains("1 SOS is waiting in this device's outbox, NOT SENT YET")
            && said.contains("NOBODY HAS BEEN ALERTED")
            && said.contains("needs the passphrase")
            && said.contains("hotline status"),
        "{said}"
    );
    let out = hotline_without_passphrase(&defender, &["inbox"]);
    assert!(
        stderr(&out).contains("1 SOS is waiting in this device's outbox"),
        "{}",
        stderr(&out)
    );

    // With the passphrase, any command sends it first; then nothing waits.
    let out = hotline(&defender, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("sent the SOS that was waiting in this device's outbox"),
        "{}",
        stdout(&out)
    );
    assert!(!defender.join("sos-waiting").exists());
    let out = hotline_without_passphrase(&defender, &["status"]);
    assert!(
        !format!("{}{}", stdout(&out), stderr(&out)).contains("SOS is waiting"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&officer, PASS, &["messages"]);
    assert!(stdout(&out).contains(words), "{}", stdout(&out));
    server.shutdown().await;
}

/// Walk-through R, point 1: a defender with two requests (one accepted
/// and shared with, one declined after it) sees each under its number,
/// with the decline notice under the request it closes and naming it; a
/// reply without a number is refused with the list and the command to
/// type; a reply by number reaches the case it names on staff devices,
/// never the declined one (before: it went to the newest share's case).
#[tokio::test(flavor = "multi_thread")]
async fn a_defender_with_two_requests_replies_to_the_one_named_and_the_decline_names_its_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    for (programme, text) in [
        ("relocation", "we must leave R-OPEN"),
        ("legal", "a lawyer R-DECLINED"),
    ] {
        let out = hotline(&defender, PASS, &["request", programme, text]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let open = case_of(&out, "R-OPEN");
    let declined = case_of(&out, "R-DECLINED");
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &open, "reference", "C-R-1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "share", &open, "SHARED-OPEN"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Declined after the share: its notice is the newest thing shared.
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &declined, "--reason", "not ours"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The notice names the request it closes, from the defender's copy.
    let out = hotline(&defender, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the team closed your legal request of ")
            && stdout(&out).contains("(\"a lawyer R-DECLINED\") (`hotline my-case`)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out)
            .contains("the team shared something with you about your relocation request of "),
        "{}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mine = stdout(&out);
    let lines: Vec<&str> = mine.lines().collect();
    let first = lines
        .iter()
        .position(|l| {
            l.starts_with("  1. ")
                && l.ends_with("relocation: we must leave R-OPEN (the team answered)")
        })
        .unwrap_or_else(|| panic!("{mine}"));
    assert!(
        lines[first + 1].ends_with("the team: SHARED-OPEN"),
        "{mine}"
    );
    assert!(
        lines[first + 2].starts_with("  2. ")
            && lines[first + 2]
                .ends_with("legal: a lawyer R-DECLINED (the team closed this request)"),
        "{mine}"
    );
    assert!(
        lines[first + 3].ends_with(
            "the team: The team has closed this request. They may contact you another way."
        ),
        "{mine}"
    );
    assert!(
        mine.contains(
            "to answer the team about one of them: hotline my-case reply --case NUMBER \"…\""
        ),
        "{mine}"
    );
    assert!(!mine.contains("not ours"), "{mine}");

    // No number with two: refused, listing them, nothing queued.
    let out = hotline(&defender, PASS, &["my-case", "reply", "R-NO-NUMBER"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let said = stderr(&out);
    for words in [
        "you have 2 requests or cases with the team: say which one this reply is about. Nothing was sent.",
        "relocation: we must leave R-OPEN (the team answered)",
        "legal: a lawyer R-DECLINED (the team closed this request)",
        "hotline my-case reply --case 1 \"…\"",
    ] {
        assert!(said.contains(words), "{words}: {said}");
    }
    let out = hotline(&defender, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "--case", "3", "R-BAD"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // By number: the reply reaches the open case, not the declined one.
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "--case", "1", "R-REPLY-FOR-OPEN"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for h in [&officer, &admin] {
        let out = hotline(h, PASS, &["case", "show", &open]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("R-REPLY-FOR-OPEN"),
            "{}",
            stdout(&out)
        );
        let out = hotline(h, PASS, &["case", "show", &declined]);
        assert!(
            !stdout(&out).contains("R-REPLY-FOR-OPEN"),
            "{}",
            stdout(&out)
        );
        assert!(
            !stderr(&out).contains("R-REPLY-FOR-OPEN"),
            "{}",
            stderr(&out)
        );
        for args in [&["inbox"][..], &["messages"]] {
            let out = hotline(h, PASS, args);
            assert!(!stdout(&out).contains("R-NO-NUMBER"), "{}", stdout(&out));
            assert!(!stdout(&out).contains("R-BAD"), "{}", stdout(&out));
        }
    }
    server.shutdown().await;
}

/// Walk-through R, point 3: a decline that loses to another decline says
/// "already declined by …" (never "someone took it on"); a taking on that
/// loses to a decline says the request was declined, by whom, and how to
/// take it on after all. The defender is told once that the request was
/// closed.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_to_a_request_that_loses_to_a_decline_says_it_was_declined_and_by_whom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    for text in ["a lawyer TWICE-DECLINED", "a lawyer TAKE-ON-LOST"] {
        let out = hotline(&defender, PASS, &["request", "legal", text]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (mut twice, mut lost) = (String::new(), String::new());
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "list", "--sync", "--state", "requested"]);
        twice = case_of(&out, "TWICE-DECLINED");
        lost = case_of(&out, "TAKE-ON-LOST");
    }
    // Offline, the officer declines one and takes the other on; meanwhile
    // the admin declines both.
    server.shutdown().await;
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &twice, "--reason", "officer-reason"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &lost, "summary", "OFFICER-SUMMARY"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let server = server_on(dir.path(), addr).await;
    for case in [&twice, &lost] {
        let out = hotline(
            &admin,
            PASS,
            &["case", "close", case, "--reason", "admin-reason"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(&officer, PASS, &["case", "show", &twice]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    let declined =
        format!("NOT SAVED: your decline of request {twice}: it was already declined by ");
    assert_eq!(said.matches(&declined).count(), 1, "{said}");
    assert!(!said.contains("took it on"), "{said}");
    let taken = format!("NOTE: you did not take on request {lost}: it was declined by ");
    assert_eq!(said.matches(&taken).count(), 1, "{said}");
    assert!(
        said.contains(&format!(
            "to take it on after all: hotline case reopen {lost}"
        )),
        "{said}"
    );
    // Said once: the next command is quiet.
    let out = hotline(&officer, PASS, &["case", "list"]);
    assert!(!stderr(&out).contains("declined by"), "{}", stderr(&out));
    // Both read both requests as declined (closed), by the admin's reason.
    for h in [&admin, &officer] {
        let out = hotline(h, PASS, &["case", "show", &lost]);
        assert!(stdout(&out).contains("admin-reason"), "{}", stdout(&out));
        let out = hotline(h, PASS, &["case", "list", "--sync", "--state", "open"]);
        assert!(!stdout(&out).contains(&lost), "{}", stdout(&out));
        assert!(!stdout(&out).contains(&twice), "{}", stdout(&out));
    }
    // The defender is told once per request that it was closed.
    let out = hotline(&defender, PASS, &["my-case"]);
    let mine = stdout(&out);
    assert_eq!(
        mine.matches("The team has closed this request").count(),
        2,
        "{mine}"
    );
    server.shutdown().await;
}

/// Walk-through R, point 2: a defender's reply about a request staff
/// declined is shown to staff as what it is (declined, by whom, when),
/// with its words and the command that takes the request on after all —
/// never as "a request not opened as a case yet".
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_about_a_declined_request_says_who_declined_it_and_how_to_reopen_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", "a lawyer R2-REQUEST"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, "R2-REQUEST");
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "not ours"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &admin,
        PASS,
        &["case", "list", "--sync", "--state", "closed"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "please R2-REPLY-WORDS"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let officer_name = {
        let out = hotline(&admin, PASS, &["devices"]);
        let id = device_id(&officer);
        assert!(stdout(&out).contains(&id[..8]), "{}", stdout(&out));
        id[..8].to_owned()
    };
    let out = hotline(&admin, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains(&format!("replied about their request {case}, declined by ")),
        "{shown}"
    );
    assert!(shown.contains(&officer_name), "{shown}");
    assert!(
        shown.contains(&format!(
            "To take the request on after all: hotline case reopen {case}."
        )),
        "{shown}"
    );
    assert!(shown.contains("  please R2-REPLY-WORDS"), "{shown}");
    assert!(!shown.contains("not opened as a case yet"), "{shown}");
    // The case shows it too, as the notice says; and the command offered
    // takes the request on.
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    assert!(stdout(&out).contains("R2-REPLY-WORDS"), "{}", stdout(&out));
    let out = hotline(&admin, PASS, &["case", "reopen", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "open"],
    );
    assert!(stdout(&out).contains(&case), "{}", stdout(&out));
    server.shutdown().await;
}

/// Walk-through R, point 5: an erased case's id, given to `case show`,
/// says that the case was erased, when and by whom (from the signed
/// erasure), and that only its statistics remain — not "no case".
#[tokio::test(flavor = "multi_thread")]
async fn an_erased_cases_id_says_when_and_by_whom_it_was_erased() {
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &officer,
        PASS,
        &["case", "open", "--summary", "s", "--reference", "C-ER-1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = opened_case(&out);
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "done"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "erase", &case, "--confirm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let officer_id = device_id(&officer);
    let admin_id = device_id(&admin);
    for (h, who) in [
        (
            &officer,
            format!(
                "(asked for by you ({}), confirmed by {})",
                &officer_id[..8],
                &admin_id[..8]
            ),
        ),
        (&admin, format!("(confirmed by you ({}))", &admin_id[..8])),
    ] {
        // By its id, and (walk-through 3, WA6) by its reference, which
        // this device's erasure record kept.
        for named in [&case[..4], "C-ER-1", "c-er-1"] {
            let out = hotline(h, PASS, &["case", "show", named]);
            assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
            let said = stderr(&out);
            assert!(
                said.contains(&format!("case C-ER-1 ({case}) was erased on ")),
                "{said}"
            );
            assert!(said.contains(&who), "{who}: {said}");
            assert!(
                said.contains("nothing of it is kept but its statistics, without names or places (`hotline case stats`)"),
                "{said}"
            );
            assert!(!said.contains("no case"), "{said}");
        }
    }
    server.shutdown().await;
}

/// The full id of the case whose short id `hotline case open` printed, as
/// `home`'s replica holds it.
fn full_case_id(home: &Path, short: &str) -> hotline_proto::case::CaseId {
    use hotline_client::StateDir;
    use hotline_client::messenger::Device;
    let device = Device::open(&StateDir::new(home), PASS).expect("opens");
    let replica = hotline_client::cases::open_replica(&device).expect("replica");
    let row = replica
        .summaries()
        .iter()
        .find(|s| hotline_proto::identity::hex(&s.case_id).starts_with(short))
        .expect("the case is held");
    hotline_proto::case::CaseId::from_slice(&row.case_id, "case_id").expect("an id")
}

/// Opens a case from `home` with `summary`; its short id.
fn open_case_as(home: &Path, summary: &str) -> String {
    let out = hotline(
        home,
        PASS,
        &["case", "open", "--summary", summary, "--country", "UA"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    opened_case(&out)
}

/// Review 2, finding E3: a hostile staff device sends every other staff
/// device a key for the statistics ledger's id before anyone opened it.
/// The ledger exists when the server holds it, not when a key for it is
/// held: the erasure opens it all the same (before, the tombstone went
/// out without the opening, the server answered "no such case", and
/// erasure was blocked on every device that got the key).
#[tokio::test(flavor = "multi_thread")]
async fn a_key_for_a_ledger_nobody_opened_does_not_block_erasure() {
    use hotline_client::StateDir;
    use hotline_client::messenger::Device;
    use hotline_proto::case::key::CaseKey;

    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let case = open_case_as(&officer, "to be erased");
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "settled"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The admin's device, hostile here, sends the bogus ledger key.
    let mut hostile = Device::open(&StateDir::new(&admin), PASS).expect("opens");
    let root = hostile.org_root().expect("a root");
    let session = hostile.connect().await.expect("connects");
    hostile
        .queue_case_keys(
            &[(
                hotline_proto::case::ledger_id(&root),
                1,
                CaseKey::from_bytes([7; 32]),
            )],
            None,
        )
        .expect("queued");
    hostile.flush(&session).await.expect("flushed");
    session.close().await;
    drop(hostile);
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("must confirm it"), "{}", stdout(&out));
    let out = hotline(&admin, PASS, &["case", "erase", &case, "--confirm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("case {case} erased")),
        "{}",
        stdout(&out)
    );
    server.shutdown().await;
}

/// Review 2, finding E4: what still waits in a staff device's outbox
/// about a case erased meanwhile (an item shared with its defender, its
/// keys) is dropped when the device learns of the erasure, and the
/// device says how many; another case's keys in the same item still go.
#[tokio::test(flavor = "multi_thread")]
async fn an_erased_cases_shares_and_keys_waiting_in_the_outbox_are_dropped_not_sent() {
    use hotline_client::StateDir;
    use hotline_client::messenger::Device;
    use hotline_client::outbox::Outgoing;
    use hotline_proto::case::key::CaseKey;

    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer, &defender] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let case = open_case_as(&officer, "to be erased");
    let kept = open_case_as(&officer, "kept");
    let out = hotline(
        &officer,
        PASS,
        &["case", "close", &case, "--reason", "settled"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "erase", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Written on the officer's device and not sent yet (offline, say).
    let (gone, other) = (full_case_id(&officer, &case), full_case_id(&officer, &kept));
    let to = Device::open(&StateDir::new(&defender), PASS)
        .expect("opens")
        .identity()
        .device_id();
    let admin_id = Device::open(&StateDir::new(&admin), PASS)
        .expect("opens")
        .identity()
        .device_id();
    let marker = "LEFTOVER-SHARE-MARKER";
    let mut device = Device::open(&StateDir::new(&officer), PASS).expect("opens");
    device
        .queue(
            marker.as_bytes(),
            Outgoing::CaseShare {
                case_id: gone,
                to,
                checkin_offer: None,
            },
        )
        .expect("queued");
    device
        .queue_case_keys(
            &[
                (gone, 1, CaseKey::from_bytes([7; 32])),
                (other, 1, CaseKey::from_bytes([8; 32])),
            ],
            Some(admin_id),
        )
        .expect("queued");
    assert_eq!(device.pending().len(), 2);
    drop(device);
    // The admin confirms; the officer's next command learns of it.
    let out = hotline(&admin, PASS, &["case", "erase", &case, "--confirm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("case {case} erased")),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "2 message(s) about erased case {case} that waited to be sent"
        )),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    // The other case's key went; nothing of the erased case did.
    let device = Device::open(&StateDir::new(&officer), PASS).expect("opens");
    assert!(device.pending().is_empty(), "{:?}", device.pending().len());
    let out = hotline(&defender, PASS, &["inbox"]);
    assert!(!stdout(&out).contains(marker), "{}", stdout(&out));
    server.shutdown().await;
}

/// Issue 12, second review, Y point 2: a hostile server announces a
/// request that names a device of its own as the defender, with the
/// digest of another defender's real request. The staff device holding
/// that envelope sees it was sent by another device: the case shows no
/// words, a warning names both devices, and taking the request on links
/// no defender device (before, the server's device was linked and every
/// share of the case went to it).
#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_server_announces_for_another_device_links_nothing_and_warns() {
    use hotline_client::StateDir;
    use hotline_client::cases::{open_replica, sync};
    use hotline_client::messenger::Device;
    use hotline_proto::case::{CaseId, CaseUpdate, CaseUpdateKind};
    use hotline_proto::e2e::content::Kind;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for staff in [&admin, &officer] {
        let out = hotline(staff, PASS, &["inbox"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // The server's own device: a defender it enrolled.
    let out = hotline(&officer, PASS, &["invite", "--role", "defender"]);
    let mallory = dir.path().join("mallory");
    assert!(
        hotline(&mallory, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let out = hotline(
        &defender,
        PASS,
        &["request", "relocation", "we must leave MARKER-GENUINE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The forged announcement, handed to the officer's device as the
    // server's sync would hand it.
    let mallory_id = Device::open(&StateDir::new(&mallory), PASS)
        .expect("opens")
        .identity()
        .device_id();
    let mut officer_device = Device::open(&StateDir::new(&officer), PASS).expect("opens");
    let digest = officer_device
        .history()
        .expect("history")
        .entries()
        .iter()
        .find(|e| matches!(e.message.kind, Kind::CaseRequest { .. }))
        .and_then(|e| e.digest)
        .expect("the genuine request's digest");
    let session = officer_device.connect().await.expect("connects");
    let roster = officer_device.roster(&session).await.expect("roster");
    session.close().await;
    let forged = CaseId::from_bytes([0x5e; 16]);
    let forged_hex = hotline_proto::identity::hex(forged.as_bytes());
    {
        let mut replica = open_replica(&officer_device).expect("replica");
        let history = officer_device.history().expect("history");
        let mut report = sync::SyncReport::default();
        let words = |d: &[u8; 32], who: &hotline_proto::DeviceId| {
            history
                .entries()
                .iter()
                .find(|e| e.digest.as_ref() == Some(d) && e.peer.as_ref() == Some(who))
                .map(|e| e.message.text.clone())
        };
        sync::apply(
            &mut replica,
            &[CaseUpdate {
                position: 1_000,
                case_id: forged,
                at: hotline_client::unix_now(),
                kind: CaseUpdateKind::Requested {
                    defender: mallory_id,
                    envelope_digest: digest,
                },
            }],
            &roster,
            &words,
            &mut report,
        )
        .expect("applied");
        assert_eq!(report.requested, vec![forged]);
        let (cursor, retention) = (replica.cursor(), replica.retention_secs());
        replica
            .set_cursor(cursor, retention.unwrap_or(0))
            .expect("index saved");
    }
    drop(officer_device);

    let out = hotline(&officer, PASS, &["case", "show", &forged_hex]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("MARKER-GENUINE"),
        "the words are not shown under another device: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(
            "(the request's words are not on this device: they were not sealed to this device"
        ),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("the request it names was sent by device"),
        "{}",
        stderr(&out)
    );
    // Taking it on links nothing, with the same warning.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "set",
            &forged_hex,
            "reference",
            "C-FORGED",
            "--without-words",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("accepted: the case is open"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("answering it links no defender device"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["case", "share", &forged_hex, "hello"]);
    assert!(!out.status.success(), "shared with: {}", stdout(&out));
    assert!(
        stderr(&out).contains("has no defender device linked"),
        "{}",
        stderr(&out)
    );
    // The server's device received nothing of the case.
    let out = hotline(&mallory, PASS, &["my-case"]);
    assert!(!stdout(&out).contains("hello"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("MARKER"), "{}", stdout(&out));
}

/// Issue 12, second review, Y point 5: a defender's reply longer than a
/// case text may be (65,274 bytes) is refused before it is queued, saying
/// the limit; one of exactly that length is sent, and the staff device
/// that takes the case on records it in the case without an error (the
/// recording event has room for it), and later commands go on.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_over_the_case_text_limit_is_refused_and_the_longest_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for staff in [&admin, &officer] {
        let out = hotline(staff, PASS, &["inbox"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", "a lawyer MARKER-LONG"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let limit = hotline_proto::e2e::envelope::MAX_CASE_TEXT_LEN;
    assert_eq!(limit, 65_274);
    let too_long = "y".repeat(limit + 1);
    let out = hotline(&defender, PASS, &["my-case", "reply", &too_long]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(
            "(65275 bytes; at most 65274 for a request, a share or a reply): nothing was queued"
        ),
        "{}",
        stderr(&out)
    );
    let out = hotline(&defender, PASS, &["outbox"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));

    // The officer takes the request on (linking the defender's device).
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case = case_of(&out, "MARKER-LONG");
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &case, "reference", "C-LONG"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let longest = format!("MARKER-REPLY{}", "z".repeat(limit - 12));
    let out = hotline(&defender, PASS, &["my-case", "reply", &longest]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("too long to record"),
        "{}",
        stderr(&out)
    );
    let out = hotline(&admin, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("MARKER-REPLY"),
        "the reply is in the case: {}",
        stdout(&out)
    );
}

/// Issue 12, second review, Y point 4: a staff device records a
/// defender's reply first, under the reply's real envelope digest but
/// with other words. A staff device holding the genuine envelope shows
/// the words the defender sent (the envelope's signed sender and text),
/// not the recorded ones, with a warning naming the recording device
/// (before, the first recording hid the received copy: the forged words
/// were all anyone saw).
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_recorded_with_other_words_shows_the_genuine_one_and_names_the_recorder() {
    use hotline_client::StateDir;
    use hotline_client::cases::open_replica;
    use hotline_client::messenger::Device;
    use hotline_proto::case::content::DefenderReply;
    use hotline_proto::case::seal::{CaseEventContent, EventDraft, seal};
    use hotline_proto::case::{CaseControl, CaseId};
    use hotline_proto::e2e::content::Kind;
    use hotline_proto::e2e::suite::SystemRandomness;
    use hotline_proto::message::{Request, Response};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for staff in [&admin, &officer] {
        let out = hotline(staff, PASS, &["inbox"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(&defender, PASS, &["request", "legal", "a lawyer MARKER-R4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, "MARKER-R4");
    let out = hotline(&officer, PASS, &["case", "set", &case, "reference", "C-R4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The admin's device holds the case key; then the defender replies.
    let out = hotline(&admin, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "the genuine words MARKER-GENUINE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The admin's device, before any other staff device records the
    // reply, records it with other words.
    let mut admin_device = Device::open(&StateDir::new(&admin), PASS).expect("opens");
    let reply = admin_device
        .history()
        .expect("history")
        .entries()
        .iter()
        .find(|e| !e.sent && matches!(e.message.kind, Kind::CaseReply { .. }))
        .cloned()
        .expect("the reply");
    let replica = open_replica(&admin_device).expect("replica");
    let case_id: CaseId = replica
        .summaries()
        .iter()
        .find_map(|s| {
            s.id()
                .filter(|c| hotline_proto::identity::hex(c.as_bytes()).starts_with(&case))
        })
        .expect("the case");
    let file = replica.load(&case_id).expect("the case file");
    let (epoch, key) = file.newest_key().expect("the case key");
    let session = admin_device.connect().await.expect("connects");
    let roster = admin_device.roster(&session).await.expect("roster");
    let forged = seal(
        admin_device.identity(),
        key,
        &EventDraft {
            case_id,
            event_id: [0x4f; 16],
            roster_version: roster.version,
            epoch,
            control: CaseControl::default(),
        },
        &CaseEventContent {
            timestamp: hotline_client::unix_now(),
            reply: Some(DefenderReply {
                defender: reply.peer.expect("sender").as_bytes().to_vec().into(),
                envelope_digest: reply.digest.expect("digest").to_vec().into(),
                sent_at: reply.timestamp,
                text: "we no longer need help FORGED".into(),
                language: String::new(),
            }),
            ..Default::default()
        },
        &mut SystemRandomness,
    )
    .expect("sealed");
    let r = session
        .request(&Request::AppendCaseEvent(forged))
        .await
        .expect("answered");
    assert!(matches!(r, Response::CaseEventAccepted { .. }), "{r:?}");
    session.close().await;
    drop(admin_device);

    let admin_status = hotline(&admin, PASS, &["status"]);
    let admin_name = field(&admin_status, "device id:");
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("replied: the genuine words MARKER-GENUINE"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("FORGED"), "{}", stdout(&out));
    let warning = stderr(&out);
    assert!(
        warning.contains("recorded in this case a reply of the defender that does not match the one this device received"),
        "{warning}"
    );
    assert!(
        warning.contains(&admin_name[..8]),
        "names the recording device ({admin_name}): {warning}"
    );
}

/// Issue 12, second review, Y point 5: a defender's reply whose words fit
/// its envelope but not the case event that would record them (another
/// client's, past the 65,274-byte limit) is skipped with a warning, and
/// the replies after it are still recorded (before, recording it failed
/// on every command and no later reply was ever recorded).
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_too_long_to_record_is_skipped_and_the_next_is_recorded() {
    use hotline_client::StateDir;
    use hotline_client::cases::open_replica;
    use hotline_client::messenger::Device;
    use hotline_client::recipients::check_bundles;
    use hotline_proto::case::CaseId;
    use hotline_proto::e2e::content::{Kind, Message};
    use hotline_proto::e2e::envelope::{self, Content};
    use hotline_proto::e2e::suite::SystemRandomness;

    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for staff in [&admin, &officer] {
        let out = hotline(staff, PASS, &["inbox"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", "a lawyer MARKER-SKIP"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, "MARKER-SKIP");
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &case, "reference", "C-SKIP"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Another client's reply: the longest words its envelope holds.
    let mut device = Device::open(&StateDir::new(&defender), PASS).expect("opens");
    let case_id: CaseId = device
        .history()
        .expect("history")
        .entries()
        .iter()
        .find_map(|e| e.request_case)
        .expect("the request's case");
    let session = device.connect().await.expect("connects");
    let roster = device.roster(&session).await.expect("roster");
    let now = hotline_client::unix_now();
    let staff: Vec<_> = roster.members(now).map(|e| e.device_id).collect();
    let bundles = session.fetch_prekeys(staff).await.expect("prekeys");
    let to = check_bundles(&roster, bundles, None, false, now, now).expect("recipients");
    let content = |len: usize| Content {
        message_id: [0x6c; 16],
        counter: 1_000,
        timestamp: now,
        message: Message::case_reply(case_id, &"w".repeat(len), ""),
        thread: 0,
        sender_label: String::new(),
    };
    let longest = (60_000..65_532)
        .rev()
        .find(|len| {
            envelope::seal(
                device.identity(),
                roster.version,
                &to,
                &content(*len),
                &mut SystemRandomness,
            )
            .is_ok()
        })
        .expect("some length fits");
    assert!(
        longest > hotline_proto::e2e::envelope::MAX_CASE_TEXT_LEN,
        "{longest}"
    );
    let sealed = envelope::seal(
        device.identity(),
        roster.version,
        &to,
        &content(longest),
        &mut SystemRandomness,
    )
    .expect("sealed");
    session.send_envelope(sealed).await.expect("sent");
    session.close().await;
    drop(device);
    let out = hotline(
        &defender,
        PASS,
        &["my-case", "reply", "a short one MARKER-AFTER"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is too long to record in the case"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("could not be recorded"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("MARKER-AFTER"), "{}", stdout(&out));
    // The short reply is recorded in the case (for staff who join later).
    let officer_device = Device::open(&StateDir::new(&officer), PASS).expect("opens");
    let history = officer_device.history().expect("history");
    let after = history
        .entries()
        .iter()
        .find(|e| {
            matches!(e.message.kind, Kind::CaseReply { .. })
                && e.message.text.contains("MARKER-AFTER")
        })
        .and_then(|e| e.digest)
        .expect("the short reply");
    let replica = open_replica(&officer_device).expect("replica");
    let view = replica.view(&case_id).expect("view");
    assert!(view.replies.contains(&after), "recorded");
    assert_eq!(view.replies.len(), 1, "the long one is not");
}

/// A hostile staff device (a real enrolled one, driven through the
/// library): it appends an event opening the case's next key epoch under a
/// key it keeps to itself, and sends that key to nobody. Returns the epoch
/// it opened.
async fn open_an_epoch_and_keep_its_key(home: &Path, case: Option<&str>) -> u32 {
    use hotline_client::StateDir;
    use hotline_client::cases::open_replica;
    use hotline_client::messenger::Device;
    use hotline_proto::case::content::CaseEventContent;
    use hotline_proto::case::seal::{CaseKey, EventDraft, seal};
    use hotline_proto::e2e::suite::SystemRandomness;
    use hotline_proto::message::{Request, Response};

    let mut device = Device::open(&StateDir::new(home), PASS).expect("opens");
    let session = device.connect().await.expect("connects");
    let roster = device.roster(&session).await.expect("roster");
    let mut replica = open_replica(&device).expect("replica");
    hotline_client::cases::sync::sync_cases(&session, &mut replica, &roster, &|_, _| None)
        .await
        .expect("synced");
    let id = match case {
        Some(prefix) => replica
            .summaries()
            .iter()
            .find_map(|s| {
                s.id()
                    .filter(|c| hotline_proto::identity::hex(c.as_bytes()).starts_with(prefix))
            })
            .expect("the case"),
        None => replica.ledger().expect("the ledger's id"),
    };
    let epoch = replica.load(&id).expect("load").newest_epoch() + 1;
    assert!(epoch > 1, "the hostile device synced the case");
    let mut event_id = [0u8; 16];
    hotline_proto::identity::fill_random(&mut event_id).expect("randomness");
    let event = seal(
        device.identity(),
        &CaseKey::generate(&mut SystemRandomness),
        &EventDraft {
            case_id: id,
            event_id,
            roster_version: roster.version,
            epoch,
            control: Default::default(),
        },
        &CaseEventContent {
            timestamp: hotline_client::unix_now(),
            note: "kept to itself".into(),
            ..Default::default()
        },
        &mut SystemRandomness,
    )
    .expect("sealed");
    let answer = session
        .request(&Request::AppendCaseEvent(event))
        .await
        .expect("answered");
    assert!(
        matches!(answer, Response::CaseEventAccepted { .. }),
        "{answer:?}"
    );
    session.close().await;
    epoch
}

#[tokio::test(flavor = "multi_thread")]
async fn a_staff_device_keeping_a_new_case_key_to_itself_locks_nobody_out_of_a_case_or_the_ledger()
{
    let dir = tempfile::tempdir().expect("tempdir");
    hotline_server::log::keys::generate_key_file(&dir.path().join("master.key")).expect("key");
    let server = server_configured(dir.path(), "127.0.0.1:0".parse().expect("addr"), |c| {
        c.cases.retention_days = 0;
    })
    .await;
    let addr = server.local_addr();
    let (admin, officer, _defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let key = dir.path().join("org.key");
    let coordinator = dir.path().join("coordinator");
    join_staff(&admin, &coordinator, "coordinator", &key, 3);
    let ok = |home: &Path, args: &[&str]| {
        let out = hotline(home, PASS, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let open = |summary: &str| opened_case(&ok(&officer, &["case", "open", "--summary", summary]));
    let a = open("the first family");
    let b = open("the second family");
    let c = open("the third family");
    // The ledger exists: the officer asks to erase a closed case (its
    // statistics go into the ledger, which it opens).
    ok(&officer, &["case", "close", &c, "--reason", "settled"]);
    ok(&officer, &["case", "erase", &c]);
    for h in [&admin, &officer, &coordinator] {
        let out = ok(h, &["case", "list"]);
        assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    }

    // The admin's device turns hostile: it opens epoch 2 of case A and
    // keeps the key to itself.
    assert_eq!(open_an_epoch_and_keep_its_key(&admin, Some(&a)).await, 2);

    // Offline, the officer writes to case A (under epoch 1, all it knows)
    // and then to case B.
    server.shutdown().await;
    let out = hotline(
        &officer,
        PASS,
        &["case", "note", &a, "written offline in A"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "note", &b, "written offline in B"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let server = server_configured(dir.path(), addr, |c| c.cases.retention_days = 0).await;

    // Back online: case A's change waits for epoch 2's key, which never
    // comes; it does not hold case B's back, and once the inbox and the
    // cases are synced the officer opens epoch 3 itself.
    let out = ok(&officer, &["case", "show", &b]);
    assert!(
        stdout(&out).contains("written offline in B"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("not sent yet"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "the key of epoch 2 never reached this device: it opened a new case key (epoch 3)"
        ),
        "{}",
        stdout(&out)
    );
    let out = ok(&officer, &["case", "show", &a]);
    assert!(
        stdout(&out).contains("written offline in A"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("not sent yet"), "{}", stdout(&out));
    // A change written online now goes under epoch 3 at once.
    let out = ok(&officer, &["case", "note", &a, "written online in A"]);
    assert!(
        !stdout(&out).contains("on this device only"),
        "{}",
        stdout(&out)
    );

    // The coordinator reads both (epoch 3's key came from the officer);
    // only the hostile device's own event stays unreadable.
    let out = ok(&coordinator, &["case", "show", &a]);
    let shown = stdout(&out);
    assert!(shown.contains("written offline in A"), "{shown}");
    assert!(shown.contains("written online in A"), "{shown}");
    assert!(
        shown.contains("1 events this device cannot read yet")
            || shown.contains("1 event this device cannot read yet"),
        "{shown}"
    );
    let out = ok(&coordinator, &["case", "show", &b]);
    assert!(
        stdout(&out).contains("written offline in B"),
        "{}",
        stdout(&out)
    );

    // The same done to the statistics ledger: an erasure still works.
    assert_eq!(open_an_epoch_and_keep_its_key(&admin, None).await, 2);
    ok(&officer, &["case", "close", &b, "--reason", "settled"]);
    let out = ok(&officer, &["case", "erase", &b]);
    assert!(
        stdout(&out).contains("opens a new one (epoch 3)"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("must confirm it"), "{}", stdout(&out));
    let out = ok(&admin, &["case", "erase", &b, "--confirm"]);
    assert!(
        stdout(&out).contains(&format!("case {b} erased")),
        "{}",
        stdout(&out)
    );
    let out = ok(&coordinator, &["case", "stats"]);
    assert!(stdout(&out).contains("erased cases: 1"), "{}", stdout(&out));
    server.shutdown().await;
}

/// Issue 12, WB 1: a defender with an open duress alert receives nothing
/// from staff — not a share of their other case (not linked to the
/// alert), not a message `--to` their device; `case show` names the
/// alert; once it is resolved, the share goes.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_shared_with_a_defender_whose_duress_alert_is_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    let defender_id = field(&hotline(&defender, PASS, &["status"]), "device id:");
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
    // The defender's relocation case, linked to their device.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--summary",
            "RELOCATION-CASE",
            "--reference",
            "C-2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", "C-2", "defender devices", &defender_id],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "share", "C-2", "SHARE-BEFORE"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", "C-2"]);
    assert!(!stdout(&out).contains("DURESS"), "{}", stdout(&out));
    let before = hotline(&defender, PASS, &["my-case"]);
    assert!(
        stdout(&before).contains("SHARE-BEFORE"),
        "{}",
        stdout(&before)
    );
    // The duress check-in.
    let out = hotline(&defender, PASS, &["checkin", "--code", "0815"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    let duress = stdout(&out)
        .lines()
        .find(|l| l.contains("DURESS"))
        .and_then(|l| l.split_whitespace().next())
        .map(|w| w.trim_start_matches('#').to_owned())
        .unwrap_or_else(|| panic!("a duress alert in {}", stdout(&out)));
    let words =
        format!("has an open DURESS alert (#{duress}): their phone may be in someone else's hands");
    // A share of the other case: refused, nothing waits or is recorded.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "share",
            "C-2",
            "MARKER-HOST meets you at the station",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&words)
            && stderr(&out)
                .contains("Nothing was shared. Once the alert is resolved, share again."),
        "{}",
        stderr(&out)
    );
    // A message to the device: refused the same way.
    let out = hotline(
        &officer,
        PASS,
        &["send", "--to", &defender_id, "MARKER-NOTE we are here"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&words) && stderr(&out).contains("Nothing was sent."),
        "{}",
        stderr(&out)
    );
    let out = hotline(&officer, PASS, &["outbox", "--list"]);
    assert!(stdout(&out).contains("nothing waiting"), "{}", stdout(&out));
    // case show says why, to staff.
    let out = hotline(&officer, PASS, &["case", "show", "C-2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&words), "{}", stdout(&out));
    assert!(!stdout(&out).contains("MARKER-HOST"), "{}", stdout(&out));
    // Nothing reached the defender's device.
    let after = hotline(&defender, PASS, &["my-case"]);
    assert_eq!(stdout(&after), stdout(&before));
    let out = hotline(&defender, PASS, &["messages"]);
    assert!(!stdout(&out).contains("MARKER"), "{}", stdout(&out));
    // Resolved: the share goes, and case show no longer warns.
    assert!(hotline(&officer, PASS, &["ack", &duress]).status.success());
    assert!(
        hotline(&officer, PASS, &["resolve", &duress])
            .status
            .success()
    );
    let out = hotline(&officer, PASS, &["case", "share", "C-2", "SHARE-AFTER"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", "C-2"]);
    assert!(!stdout(&out).contains(&words), "{}", stdout(&out));
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(stdout(&out).contains("SHARE-AFTER"), "{}", stdout(&out));
    server.shutdown().await;
}

/// Issue 12, WB 2: the paged officer sees the journey of the alert's
/// defender although they never ran a case command: `watch` prints the
/// page, then syncs the cases and names the journey; `alerts` syncs
/// before it lists, so the line follows the relocation (not "in transit"
/// once it arrived).
#[tokio::test(flavor = "multi_thread")]
async fn a_paged_officer_who_ran_no_case_command_sees_the_journey_and_it_stays_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let defender_id = field(&hotline(&defender, PASS, &["status"]), "device id:");
    let ok = |args: &[&str]| {
        let out = hotline(&admin, PASS, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    ok(&[
        "case",
        "open",
        "--summary",
        "a family",
        "--reference",
        "C-7",
    ]);
    ok(&["case", "set", "C-7", "defender devices", &defender_id]);
    ok(&[
        "case",
        "person",
        "add",
        "C-7",
        "--name",
        "MARKER-NAME",
        "--relationship",
        "self",
    ]);
    let out = ok(&[
        "relocation",
        "start",
        "C-7",
        "--people",
        "MARKER-NAME",
        "--origin",
        "MARKER-ORIGIN",
        "--to",
        "PL",
        "--city",
        "MARKER-CITY",
        "--arrive",
        "2027-05-13",
    ]);
    let relocation = stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("relocation id")
        .to_owned();
    for stage in ["assessed", "approved", "travel booked", "in transit"] {
        ok(&["relocation", "advance", "C-7", &relocation, stage]);
    }
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let watch = Watch::start(&officer);
    watch.wait_for("no open alerts right now");
    let out = hotline(&defender, PASS, &["sos", "MARKER-SOS"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = alert_id(&out);
    watch.wait_for(&format!("ALERT #{id} — claim it"));
    let line = watch.wait_for("relocation to MARKER-CITY in transit since ");
    assert!(line.contains("case C-7, "), "{line}");
    drop(watch);
    // The relocation arrives: the officer's list follows it.
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(
        stdout(&out).contains("case C-7, relocation to MARKER-CITY in transit since "),
        "{}",
        stdout(&out)
    );
    ok(&["relocation", "advance", "C-7", &relocation, "arrived"]);
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("MARKER-SOS"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("in transit"), "{}", stdout(&out));
    server.shutdown().await;
}

/// Issue 12, WB 3: an SOS sealed to a replaced roster is labelled as
/// what it is — the defender's phone sealed it to an earlier roster than
/// the current one, named by its version as the server holds it now (a
/// running watch does not keep the version it began with) — and, once a
/// case holds its text, points to that case, also in `messages --alert`.
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_sealed_to_an_earlier_roster_names_the_current_roster_and_the_case_holding_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success());
    assert!(hotline(&defender, PASS, &["status"]).status.success());
    server.shutdown().await;
    let words = "MARKER-OFFLINE-SOS";
    let out = hotline_without_passphrase(
        &defender,
        &["sos", "--wait", "1", "--category", "arrest", words],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let server = server_on(dir.path(), addr).await;
    assert!(hotline(&officer, PASS, &["duty", "on"]).status.success());
    let watch = Watch::start_with(&officer, &["--storage-check-every", "1"]);
    watch.wait_for("no open alerts right now");
    // Meanwhile the admin adds a coordinator: roster v2.
    let coordinator = dir.path().join("coordinator");
    join_staff(
        &admin,
        &coordinator,
        "coordinator",
        &dir.path().join("org.key"),
        3,
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let out = hotline_without_passphrase(&defender, &["status"]);
    assert!(
        stdout(&out).contains("your waiting SOS was sent"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let line = watch.wait_for("sealed this text to");
    assert!(
        line.contains(
            "[the defender's phone sealed this text to an earlier staff roster than the current one (v2): staff added since cannot read it; `hotline case open --from-alert "
        ),
        "{line}"
    );
    assert!(!line.contains("this device holds"), "{line}");
    drop(watch);
    let out = hotline(&officer, PASS, &["alerts"]);
    let id = listed_alert(&out);
    // A case holds its text: the label points there.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "open",
            "--from-alert",
            &id,
            "--summary",
            "arrest reported offline",
            "--reference",
            "C-9",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["alerts"]);
    assert!(
        stdout(&out)
            .contains("staff added since cannot read it in the alert; its text is in case C-9]"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("--from-alert"), "{}", stdout(&out));
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&coordinator, PASS, &["alerts"]);
    assert!(
        stdout(&out).contains(
            "[this device cannot read the alert itself: the defender's phone sealed its text to an earlier staff roster than the current one (v2), before this device was on it; its text is in case C-9: `hotline case show C-9`]"
        ),
        "{}",
        stdout(&out)
    );
    let out = hotline(&coordinator, PASS, &["messages", "--alert", &id]);
    assert!(
        stdout(&out).contains(&format!(
            "no messages in the thread of alert #{id} on this device; its SOS text is in case C-9: hotline case show C-9"
        )),
        "{}",
        stdout(&out)
    );
    let out = hotline(&coordinator, PASS, &["case", "show", "C-9"]);
    assert!(stdout(&out).contains(words), "{}", stdout(&out));
    server.shutdown().await;
}

/// Issue 12, walk-through 3 (WA1): a colleague takes on a request while
/// another staff member, whose last view showed it waiting, closes it
/// as a decline: the close is refused, naming who took it on, and
/// nothing is closed; closing the open case anyway takes a flag, and its
/// defender (never told anything of the case) is told it was closed
/// instead of waiting for the team's answer for ever.
#[tokio::test(flavor = "multi_thread")]
async fn closing_a_request_a_colleague_took_on_since_is_refused_and_the_defender_is_told_once_closed()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "relocation", "we must leave MARKER-RACE"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The officer sees it waiting.
    let out = hotline(
        &officer,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, "MARKER-RACE");
    // The admin takes it on.
    let out = hotline(&admin, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["case", "set", &case, "risk", "low"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("accepted: the case is open"),
        "{}",
        stdout(&out)
    );
    // The officer declines what it last saw as a request.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "close",
            &case,
            "--reason",
            "declining: out of scope",
        ],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!("request {case} was taken on by"))
            && said.contains("while you were looking at it: the case is open. Nothing was closed.")
            && said.contains(&format!(
                "hotline case close {case} --reason … --taken-on-ok"
            )),
        "{said}"
    );
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains(": open"),
        "nothing was closed: {}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["my-case"]);
    assert!(
        stdout(&out).contains("waiting for the team's answer"),
        "{}",
        stdout(&out)
    );
    // Closing it anyway, knowingly: the defender is told, in neutral
    // words, as for a decline.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "close",
            &case,
            "--reason",
            "out of scope after all",
            "--taken-on-ok",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the defender is told the request was closed"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&defender, PASS, &["my-case"]);
    let mine = stdout(&out);
    assert!(
        mine.contains("The team has closed this request. They may contact you another way."),
        "{mine}"
    );
    assert!(!mine.contains("out of scope"), "{mine}");
}

/// Issue 12, walk-through 3 (WA2): setting a case's "defender devices"
/// to another defender's device would drop the one that made the
/// request (and send what is shared to someone else): refused, naming
/// who is dropped and who added, unless --drop-requester says so; the
/// case still says who requested it.
#[tokio::test(flavor = "multi_thread")]
async fn setting_defender_devices_without_the_requester_is_refused_unless_said_explicitly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(&officer, PASS, &["invite", "--role", "defender"]);
    let eli = dir.path().join("eli");
    assert!(
        hotline(&eli, PASS, &["enroll", &invite_line(&out)])
            .status
            .success()
    );
    let dana_id = device_id(&defender);
    let eli_id = device_id(&eli);
    let out = hotline(
        &defender,
        PASS,
        &["request", "subsistence", "food money MARKER-DANA"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    let case = case_of(&out, "MARKER-DANA");
    let out = hotline(&officer, PASS, &["case", "set", &case, "risk", "low"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &case, "defender devices", &eli_id],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    let said = stderr(&out);
    assert!(
        said.contains("this would drop")
            && said.contains("the device that made the request")
            && said.contains(&format!("and add {}", &eli_id[..8]))
            && said.contains("Nothing was written")
            && said.contains("--drop-requester"),
        "{said}"
    );
    // Nothing changed: a share still goes to the requester only.
    let out = hotline(&officer, PASS, &["case", "share", &case, "SHARED-ONE"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&eli, PASS, &["inbox"]);
    assert!(!stdout(&out).contains("SHARED-ONE"), "{}", stdout(&out));
    // Adding Eli beside Dana drops nobody.
    let both = format!("{dana_id},{eli_id}");
    let out = hotline(
        &officer,
        PASS,
        &["case", "set", &case, "defender devices", &both],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Said explicitly, Dana is dropped; the case still says she asked.
    let out = hotline(
        &officer,
        PASS,
        &[
            "case",
            "set",
            &case,
            "defender devices",
            &eli_id,
            "--drop-requester",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("requested by") && stdout(&out).contains("MARKER-DANA"),
        "{}",
        stdout(&out)
    );
}

/// Issue 12, walk-through 3 (WA3): a staff device added by a later
/// roster does not hold a waiting request's words: taking it on is
/// refused (a colleague who reads them should), `case show` says why;
/// with --without-words it is taken on and the case says its words were
/// not copied.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_whose_words_this_device_lacks_is_taken_on_only_when_said_explicitly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "legal", "a lawyer MARKER-WORDS"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key = dir.path().join("org.key");
    let coordinator = dir.path().join("coordinator");
    join_staff(&admin, &coordinator, "coordinator", &key, 3);
    let out = hotline(&officer, PASS, &["case", "list", "--sync"]);
    let case = case_of(&out, "MARKER-WORDS");
    let out = hotline(&coordinator, PASS, &["case", "list", "--sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&coordinator, PASS, &["case", "set", &case, "risk", "high"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "this device does not hold the words of request {case}"
        )) && said.contains("sealed to the staff of an earlier roster")
            && said.contains("A colleague who reads them should take it on; nothing was written")
            && said.contains("--without-words"),
        "{said}"
    );
    let out = hotline(&coordinator, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains(": requested")
            && stdout(&out).contains("sealed to the staff of an earlier roster")
            && stdout(&out).contains("a colleague who reads them should take it on"),
        "{}",
        stdout(&out)
    );
    let out = hotline(
        &coordinator,
        PASS,
        &["case", "note", &case, "taking it on", "--without-words"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("accepted: the case is open"),
        "{}",
        stdout(&out)
    );
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(
        stdout(&out).contains("taken on without the request's words"),
        "{}",
        stdout(&out)
    );
}

/// Issue 12, walk-through 3 (WA7): a brand-new request that reached a
/// staff device's inbox before its case was synced there reads as a new
/// request and points to where it is answered (not "a case this device
/// does not hold … or erased", nor a message to send).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_request_not_synced_yet_reads_as_a_new_request_in_the_inbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let out = hotline(
        &defender,
        PASS,
        &["request", "relocation", "we must leave MARKER-NEW"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&admin, PASS, &["inbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains(&format!(
            "a new request from defender {} for relocation help (its words are below): `hotline case list --sync --state requested`",
            &device_id(&defender)[..8]
        )),
        "{shown}"
    );
    assert!(shown.contains("MARKER-NEW"), "{shown}");
    assert!(!shown.contains("or erased"), "{shown}");
    assert!(!shown.contains("hotline send --to"), "{shown}");
}

/// Staff turnover never rewrites case history (docs/protocol.md, section
/// 9.5): a staff device added by one roster takes on a defender's request,
/// is revoked and left off the next roster; a staff device added later,
/// which never held the roster the events were written under, fetches
/// that roster version from the server, checks it under the root, and
/// reads the case as everyone else does: open, with the reference, taken
/// on by the device that left.
#[tokio::test(flavor = "multi_thread")]
async fn a_staff_device_added_later_reads_the_events_of_one_revoked_since() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    let key = dir.path().join("org.key");
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let leaver = dir.path().join("leaver");
    join_staff(&admin, &leaver, "coordinator", &key, 3);
    let out = hotline(&defender, PASS, &["request", "legal", "a lawyer TURNOVER"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &leaver,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, "TURNOVER");
    let out = hotline(
        &leaver,
        PASS,
        &["case", "set", &case, "reference", "C-2026-0060"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(stdout(&out).contains("C-2026-0060"), "{}", stdout(&out));

    // The leaver is revoked and left off the next roster.
    let out = hotline(&leaver, PASS, &["status"]);
    let leaver_id = field(&out, "device id: ");
    let out = hotline(&admin, PASS, &["revoke", &leaver_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(stdout(&out).contains("2 staff devices"), "{}", stdout(&out));

    // A staff device joins on a newer roster still; the officer's next
    // command sends it the case keys.
    let late = dir.path().join("late");
    join_staff(&admin, &late, "coordinator", &key, 3);

    // A sync that cannot get the roster the leaver wrote under (here: no
    // root to check it with) stops before those events: it never drops
    // them as "not on the staff roster", nor shows the case as waiting.
    {
        use hotline_client::StateDir;
        use hotline_client::cases::{open_replica, sync};
        use hotline_client::messenger::Device;
        let mut device = Device::open(&StateDir::new(&late), PASS).expect("opens");
        let session = device.connect().await.expect("connects");
        let roster = device.roster(&session).await.expect("roster");
        let mut replica = open_replica(&device).expect("replica");
        let report = sync::sync_cases(&session, &mut replica, &roster, &|_, _| None)
            .await
            .expect("synced");
        session.close().await;
        assert!(report.waiting_for_rosters.contains(&2), "{report:?}");
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("case events wait for staff roster v2")),
            "{:?}",
            report.warnings
        );
        assert!(
            report
                .warnings
                .iter()
                .all(|w| !w.contains("not on the staff roster")),
            "{:?}",
            report.warnings
        );
        for s in replica.summaries() {
            if let Some(id) = s.id() {
                assert_ne!(
                    replica.view(&id).expect("view").state,
                    Some(hotline_proto::case::CaseState::Requested)
                );
            }
        }
    }
    let out = hotline(&officer, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&late, PASS, &["case", "show", &case]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains(&case), "{shown}");
    assert!(
        shown.lines().next().is_some_and(|l| l.ends_with(": open")),
        "{shown}"
    );
    assert!(shown.contains("reference: C-2026-0060"), "{shown}");
    assert!(
        shown.contains(&format!("{}: accepted the request", &leaver_id[..8])),
        "{shown}"
    );
    assert!(!shown.contains("cannot read"), "{shown}");
    assert!(
        !stderr(&out).contains("not on the staff roster"),
        "{}",
        stderr(&out)
    );
    server.shutdown().await;
}

/// `hotline` with the passphrase and the client's connection log on
/// (each real try at the server logs "connecting to the server").
fn hotline_counting_connects(home: &Path, pass: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env("RUST_LOG", "hotline_client::connection=debug")
        .stdin(std::process::Stdio::null());
    match pass {
        Some(p) => cmd.env("HOTLINE_PASSPHRASE", p),
        None => cmd.env_remove("HOTLINE_PASSPHRASE"),
    };
    cmd.output().expect("the client binary runs")
}

/// Issue 12, third walk-through (WC 3 and 5): `status` without the
/// passphrase while SOSes queued with the panic key wait and the server
/// is down says they are queued and exits 3 (QUEUED), never "error:
/// cannot ask for the passphrase"; the words for two waiting SOSes agree
/// ("they stay queued … and go out").
#[tokio::test(flavor = "multi_thread")]
async fn status_without_the_passphrase_offline_says_the_panic_sos_is_queued_and_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, _officer, defender) = organisation(dir.path(), &server).await;
    server.shutdown().await;
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "men outside"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "at the door"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let out = hotline_without_passphrase(&defender, &["status"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        stdout(&out).contains("NOBODY HAS BEEN ALERTED YET")
            && stdout(&out).contains("still waits on this device"),
        "{all}"
    );
    assert!(!all.contains("error"), "{all}");
    assert!(!all.contains("cannot ask for the passphrase"), "{all}");
    assert!(
        stderr(&out).contains("they stay queued on this device and go out with the next command"),
        "{all}"
    );
    assert!(defender.join("panic-outbox").exists());
}

/// Issue 12, third walk-through (WC 4): an offline command tries the
/// server once: the SOS waiting without the passphrase, the one waiting
/// in the outbox and the command itself no longer each wait for their
/// own connect timeout.
#[tokio::test(flavor = "multi_thread")]
async fn an_offline_command_tries_the_server_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, _officer, defender) = organisation(dir.path(), &server).await;
    server.shutdown().await;
    // An SOS queued with the panic key: each command tries to send it
    // first, then does its own work.
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "first"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = hotline_counting_connects(&defender, Some(PASS), &["send", "a note"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(err.matches("connecting to the server").count(), 1, "{err}");
    let out = hotline_counting_connects(&defender, Some(PASS), &["status"]);
    let err = stderr(&out);
    assert_eq!(err.matches("connecting to the server").count(), 1, "{err}");
}

/// Issue 12, third walk-through (WC 5): a mistyped command is answered
/// with the one meant.
#[test]
fn a_mistyped_command_suggests_the_right_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = hotline(dir.path(), PASS, &["my-cases"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'my-case'"), "{}", stderr(&out));
}

/// The officer's open alerts as listed (one line per alert), and the
/// thread of the only one.
fn only_alert_and_thread(officer: &Path) -> (String, String) {
    let out = hotline(officer, PASS, &["alerts", "--all"]);
    let listed = stdout(&out);
    let alerts: Vec<&str> = listed.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(alerts.len(), 1, "one alert: {listed}");
    let id = alerts[0][1..]
        .split_whitespace()
        .next()
        .expect("id")
        .to_owned();
    let out = hotline(officer, PASS, &["messages", "--alert", &id]);
    (listed, stdout(&out))
}

/// Issue 12, third walk-through (WC 1): two SOSes typed offline with the
/// passphrase, of two categories, go out as one alert that names both
/// categories, and the thread shows each text under its own category
/// (merged into one text, the second's category, "arrest", was lost).
#[tokio::test(flavor = "multi_thread")]
async fn two_sos_typed_offline_are_one_alert_and_each_keeps_its_category() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    server.shutdown().await;
    let args = [
        "sos",
        "--wait",
        "0",
        "--category",
        "medical",
        "bleeding, need doctor",
    ];
    let out = hotline(&defender, PASS, &args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let args = [
        "sos",
        "--wait",
        "0",
        "--category",
        "arrest",
        "they are back",
    ];
    let out = hotline(&defender, PASS, &args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("added to the SOS already waiting"),
        "{}",
        stderr(&out)
    );

    let server = server_on(dir.path(), addr).await;
    let out = hotline(&defender, PASS, &["status"]);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    let (listed, thread) = only_alert_and_thread(&officer);
    assert!(
        listed.contains("medical") && listed.contains("arrest"),
        "both categories: {listed}"
    );
    assert!(thread.contains("bleeding, need doctor"), "{thread}");
    assert!(thread.contains("they are back"), "{thread}");
    assert!(thread.contains("category arrest"), "{thread}");
    assert!(thread.contains("category medical"), "{thread}");
    server.shutdown().await;
}

/// Issue 12, third walk-through (WC 2): two SOSes typed offline without
/// the passphrase (the panic key) go out as one alert, as `hotline sos
/// --help` and the README say: both texts, one page.
#[tokio::test(flavor = "multi_thread")]
async fn two_panic_sos_typed_offline_are_one_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let addr = server.local_addr();
    let (_admin, officer, defender) = organisation(dir.path(), &server).await;
    assert!(hotline(&officer, PASS, &["inbox"]).status.success()); // prekeys
    let out = hotline(&defender, PASS, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.shutdown().await;
    let args = [
        "sos",
        "--wait",
        "1",
        "--category",
        "attack",
        "men outside with sticks",
    ];
    let out = hotline_without_passphrase(&defender, &args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = hotline_without_passphrase(&defender, &["sos", "--wait", "1", "breaking the door"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("as one alert"), "{}", stderr(&out));

    let server = server_on(dir.path(), addr).await;
    let out = hotline_without_passphrase(&defender, &["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("sent the SOS that was waiting on this device: added to alert #"),
        "{}",
        stdout(&out)
    );
    let (listed, thread) = only_alert_and_thread(&officer);
    assert!(listed.contains("attack"), "{listed}");
    assert!(thread.contains("men outside with sticks"), "{thread}");
    assert!(thread.contains("breaking the door"), "{thread}");
    server.shutdown().await;
}

/// The maintainer's walk of the final binaries: a coordinator takes a
/// request on (its case key goes to the other staff in CASE_KEYS) and is
/// revoked before any other staff device ran a command; the keys it sent
/// are the only copy of that case's key. An officer whose first command
/// comes after the new roster still takes them (the sender was staff on a
/// roster the officer holds, and each key must match the commitment of
/// the events it opens): the case reads in full, nothing is "ignored".
#[tokio::test(flavor = "multi_thread")]
async fn case_keys_sent_by_a_staff_member_revoked_since_still_open_the_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (admin, officer, defender) = organisation(dir.path(), &server).await;
    let key = dir.path().join("org.key");
    for h in [&admin, &officer] {
        assert!(hotline(h, PASS, &["inbox"]).status.success());
    }
    let leaver = dir.path().join("leaver");
    join_staff(&admin, &leaver, "coordinator", &key, 3);
    let out = hotline(&defender, PASS, &["request", "legal", "a lawyer ONLY-COPY"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(
        &leaver,
        PASS,
        &["case", "list", "--sync", "--state", "requested"],
    );
    let case = case_of(&out, "ONLY-COPY");
    let out = hotline(
        &leaver,
        PASS,
        &["case", "set", &case, "reference", "C-2026-0061"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline(&leaver, PASS, &["status"]);
    let leaver_id = field(&out, "device id: ");
    let out = hotline(&admin, PASS, &["revoke", &leaver_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hotline_org(
        &admin,
        &["org", "sign-roster", "--key", key.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = hotline(&officer, PASS, &["case", "show", "C-2026-0061"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("reference: C-2026-0061"), "{shown}");
    assert!(
        shown.contains(&format!("{}: accepted the request", &leaver_id[..8])),
        "{shown}"
    );
    assert!(
        !stderr(&out).contains("not on the staff roster were ignored"),
        "{}",
        stderr(&out)
    );
    server.shutdown().await;
}

/// Walk-through 3: `checkin-setup` with the same code twice was refused
/// with all three rules at once ("the interval must be …, the grace …,
/// and the duress code must differ …"): a defender setting codes under
/// stress is told the one thing that is wrong, and nothing is set.
#[tokio::test(flavor = "multi_thread")]
async fn checkin_setup_names_the_one_rule_a_defender_broke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path()).await;
    let (_admin, _officer, defender) = organisation(dir.path(), &server).await;
    let setup = |every: &str, grace: &str, code: &str, duress: &str| {
        hotline(
            &defender,
            PASS,
            &[
                "checkin-setup",
                "--every",
                every,
                "--grace",
                grace,
                "--code",
                code,
                "--duress-code",
                duress,
            ],
        )
    };
    let out = setup("6h", "30m", "4711", "4711");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the duress code must differ from the normal code")
            && !stderr(&out).contains("interval")
            && stderr(&out).contains("nothing was set"),
        "{}",
        stderr(&out)
    );
    let out = setup("31d", "30m", "4711", "0815");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("up to 30 days") && !stderr(&out).contains("duress"),
        "{}",
        stderr(&out)
    );
    // Nothing was set: the phone records no set-up time.
    assert!(!defender.join("checkin.set").exists());
    let out = setup("6h", "30m", "4711", "0815");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(defender.join("checkin.set").exists());
    server.shutdown().await;
}
