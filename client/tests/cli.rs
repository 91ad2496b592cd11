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
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("server"),
        ..Config::default()
    };
    let key = dir.join("master.key");
    hotline_server::log::keys::generate_key_file(&key).expect("key file");
    RunningServer::start(config, &hotline_server::log::keys::KeySource::File(key))
        .await
        .expect("server starts")
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
