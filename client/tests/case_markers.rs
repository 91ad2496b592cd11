//! What a seized server gives up of a case written through the real
//! `hotline` commands: nothing readable. A person's name, a host city and
//! a hotel typed into `hotline case person add` and `hotline relocation
//! start` travel through a real server logging at its most verbose level
//! (`trace`, every line captured); afterwards no file under the server's
//! data directory and no log line holds them, in UTF-8 or UTF-16LE, while
//! another staff device reads them back. The same scan finds them when
//! planted, so it would catch a leak.
//!
//! A test binary of its own: it installs the process's log subscriber
//! before the server starts.

use std::path::Path;
use std::process::{Command, Output};

use hotline_proto::Role;
use hotline_server::{Config, RunningServer};

#[path = "../../tests/support/markers.rs"]
mod markers;

const BIN: &str = env!("CARGO_BIN_EXE_hotline");
const PASS: &str = "a long test passphrase";
const NAME: &str = "Zofia Kowalczyk-MARKER";
const CITY: &str = "Montevideo-MARKER";
const HOTEL: &str = "Hotel Bellevue-MARKER";
/// Every marker the scan looks for.
const MARKERS: [&str; 3] = [NAME, CITY, HOTEL];

fn hotline(home: &Path, args: &[&str]) -> Output {
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `hotline` with `args`, which must succeed; its standard output.
fn ok(home: &Path, args: &[&str]) -> String {
    let out = hotline(home, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn invite_line(text: &str) -> String {
    text.lines()
        .find(|l| l.trim_start().starts_with("hotline:"))
        .expect("an invite line")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_and_places_typed_into_the_client_reach_no_server_file_and_no_log_line() {
    let logs = markers::Captured::default();
    tracing::subscriber::set_global_default(hotline_server::logging::subscriber(
        tracing_subscriber::EnvFilter::new("trace"),
        logs.clone(),
        false,
    ))
    .expect("the first subscriber of this process");

    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("master.key");
    hotline_server::log::keys::generate_key_file(&key_file).expect("key file");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("server"),
        ..Config::default()
    };
    let server = RunningServer::start(
        config,
        &hotline_server::log::keys::KeySource::File(key_file),
    )
    .await
    .expect("server");

    // An admin with the organisation root, and an officer on its roster.
    let admin = dir.path().join("admin");
    let officer = dir.path().join("officer");
    let invite = server
        .create_invite(Role::Admin, 600)
        .await
        .expect("invite")
        .to_string();
    ok(&admin, &["enroll", &invite]);
    let org_key = dir.path().join("org.key");
    let org_key = org_key.to_str().expect("utf-8");
    ok(&admin, &["org", "init", "--out", org_key]);
    let out = ok(&admin, &["invite", "--role", "officer"]);
    ok(&officer, &["enroll", &invite_line(&out)]);
    let out = ok(&admin, &["org", "sign-roster", "--key", org_key]);
    assert!(out.contains("2 staff devices"), "{out}");
    for h in [&admin, &officer] {
        ok(h, &["inbox"]);
    }

    // The officer types the markers in, as a person would.
    ok(
        &officer,
        &[
            "case",
            "open",
            "--summary",
            "a family",
            "--reference",
            "C-1",
        ],
    );
    ok(
        &officer,
        &[
            "case",
            "person",
            "add",
            "C-1",
            "--name",
            NAME,
            "--relationship",
            "self",
            "--needs",
            &format!("near the {HOTEL}"),
        ],
    );
    let out = ok(
        &officer,
        &[
            "relocation",
            "start",
            "C-1",
            "--people",
            NAME,
            "--origin",
            "Kharkiv",
            "--to",
            "UY",
            "--city",
            CITY,
            "--accommodation",
            HOTEL,
        ],
    );
    let relocation = out
        .split_whitespace()
        .nth(1)
        .expect("relocation id")
        .to_owned();
    ok(
        &officer,
        &[
            "relocation",
            "advance",
            "C-1",
            &relocation,
            "assessed",
            "--note",
            &format!("{NAME} may stay at the {HOTEL} in {CITY}"),
        ],
    );
    ok(
        &officer,
        &["case", "note", "C-1", &format!("{NAME} called")],
    );
    // They went through the server: the admin's device reads them.
    let shown = ok(&admin, &["relocation", "show", "C-1", &relocation]);
    for m in [NAME, CITY, HOTEL] {
        assert!(
            shown.contains(m),
            "{m} read back by another device: {shown}"
        );
    }

    // A snapshot and the closing checkpoint are written at stop.
    server.shutdown().await;

    markers::assert_nothing_leaked(
        &MARKERS,
        &dir.path().join("server"),
        &logs,
        &["append_case_event", "sync_cases"],
    );
}
