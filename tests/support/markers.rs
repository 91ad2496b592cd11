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
