//! The marker scan shared by the seizure tests (`tests/tests/case_markers.rs`
//! and `client/tests/case_markers.rs`, which include this file with
//! `#[path = "…"] mod markers;`): the log lines a process writes, captured,
//! and the search of bytes and of a directory for marker strings in the
//! forms they could leak in (UTF-8 and UTF-16LE).
//!
//! One file for both: the client's tests cannot depend on `hotline-tests`.

use std::path::Path;
use std::sync::{Arc, Mutex};

/// Every log line the process writes.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The forms each of `markers` could leak in.
pub fn needles(markers: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for m in markers {
        out.push((format!("{m} (UTF-8)"), m.as_bytes().to_vec()));
        let utf16: Vec<u8> = m.encode_utf16().flat_map(u16::to_le_bytes).collect();
        out.push((format!("{m} (UTF-16LE)"), utf16));
    }
    out
}

/// The markers found in `bytes`.
pub fn found_in(markers: &[&str], bytes: &[u8]) -> Vec<String> {
    needles(markers)
        .into_iter()
        .filter(|(_, n)| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        .map(|(name, _)| name)
        .collect()
}

/// Every file under `dir` holding one of `markers`, with the markers.
pub fn scan_dir(markers: &[&str], dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut hits = Vec::new();
    let mut files = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files += 1;
                let found = found_in(markers, &bytes);
                if !found.is_empty() {
                    hits.push((path.display().to_string(), found));
                }
            }
        }
    }
    assert!(files > 0, "no file scanned under {}", dir.display());
    hits
}

/// Asserts what a seizure of the server gives up: no file under `data`
/// and no line of `logs` holds one of `markers` (at least two), the logs
/// were captured at their most verbose level (each request kind of
/// `kinds` logged, and DEBUG lines), and the same scan catches a marker
/// planted in a file in UTF-8, in a file in UTF-16LE and in a log line,
/// so it would catch a leak.
pub fn assert_nothing_leaked(markers: &[&str], data: &Path, logs: &Captured, kinds: &[&str]) {
    let hits = scan_dir(markers, data);
    assert!(hits.is_empty(), "markers on the server's disk: {hits:?}");
    let captured = logs.0.lock().expect("not poisoned").clone();
    let text = String::from_utf8_lossy(&captured);
    assert!(
        kinds
            .iter()
            .all(|k| text.contains(&format!("kind=\"{k}\"")))
            && text.contains("DEBUG"),
        "the server's logs were captured at their most verbose level: {}",
        &text[..text.len().min(3000)]
    );
    assert_eq!(
        found_in(markers, &captured),
        Vec::<String>::new(),
        "markers in the logs"
    );

    let planted = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        planted.path().join("clear.txt"),
        format!("..{}..", markers[1]),
    )
    .expect("write");
    let utf16: Vec<u8> = markers[markers.len() - 1]
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::create_dir_all(planted.path().join("sub")).expect("mkdir");
    std::fs::write(planted.path().join("sub/wide.bin"), utf16).expect("write");
    let found = scan_dir(markers, planted.path());
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found_in(
            markers,
            format!("2026 TRACE note=\"{}\"", markers[0]).as_bytes()
        ),
        vec![format!("{} (UTF-8)", markers[0])]
    );
}
