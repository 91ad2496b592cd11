//! The order of a start: the UDP address is bound, and the data
//! directory's lock taken, before anything in the data directory is
//! created or written. A start that fails leaves every byte as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hotline_proto::Role;
use hotline_server::{RunningServer, StartError};
use hotline_tests::TestServer;

/// Every file under `dir` with its bytes, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.insert(path.strip_prefix(dir).expect("under").to_owned(), bytes);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_port_in_use_says_so_and_changes_nothing_in_the_data_dir() {
    let mut server = TestServer::start().await;
    let (_, admin) = server.enroll(Role::Admin).await;
    drop(admin);
    server.stop().await;
    let data = server.config().data_dir.clone();
    let before = files_under(&data);
    assert!(before.keys().any(|p| p.starts_with("log")), "{before:?}");
    // Another program holds the port now.
    let taken = std::net::UdpSocket::bind(server.config().listen).expect("take the port");
    let err = RunningServer::start(server.config().clone(), server.key())
        .await
        .expect_err("the port is in use");
    assert!(matches!(err, StartError::AddrInUse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("already in use") && text.contains(&server.config().listen.to_string()),
        "{text}"
    );
    let after = files_under(&data);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "files were created or removed"
    );
    for (name, bytes) in &before {
        assert!(after[name] == *bytes, "{} changed", name.display());
    }
    drop(taken);
    server.start_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_creates_nothing_while_another_process_holds_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let lock = data.join("lock");
    // Another process (flock(1), the same flock(2) lock) holds the
    // data directory's lock.
    let mut holder = match std::process::Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["sleep", "30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("skipped: flock(1) is not available: {e}");
            return;
        }
    };
    while !lock.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let key_path = dir.path().join("master.key");
    hotline_server::log::keys::generate_key_file(&key_path).expect("key");
    let config = hotline_server::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.clone(),
        ..hotline_server::Config::default()
    };
    let err = RunningServer::start(
        config,
        &hotline_server::log::keys::KeySource::File(key_path),
    )
    .await
    .expect_err("the lock is held");
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(err.to_string().contains("held by another process"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&data)
        .expect("data")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["lock"], "created without the lock: {names:?}");
}
