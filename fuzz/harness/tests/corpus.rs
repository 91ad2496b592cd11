//! The fuzz corpora in the normal suite: every file of every
//! `fuzz/corpus/<target>/` goes through its target's check, so that what
//! a fuzzer once found (and was fixed) stays fixed; and the seeds the real
//! encoders make pass too.
//!
//! `HOTLINE_BLESS=1 cargo test -p hotline-fuzz-harness --test corpus`
//! writes the seeds into the corpora (as `seed-<name>`; one already there
//! is left as it is).

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use hotline_fuzz_harness::TARGETS;

mod seeds;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/")
        .to_owned()
}

/// Runs `check` on `bytes`; the panic message if it panicked.
fn run(check: fn(&[u8]), bytes: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| check(bytes))).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".into())
    })
}

#[test]
fn every_file_of_every_corpus_passes_its_check() {
    let corpus = fuzz_dir().join("corpus");
    let mut failures = Vec::new();
    let mut files = 0;
    for (name, check) in TARGETS {
        let dir = corpus.join(name);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!(
                    "{}: target {name} has no corpus: {e}",
                    dir.display()
                ));
                continue;
            }
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("entry").path()).collect();
        paths.sort();
        if paths.is_empty() {
            failures.push(format!("{}: the corpus of {name} is empty", dir.display()));
        }
        for path in paths {
            let bytes = std::fs::read(&path).expect("corpus file");
            files += 1;
            if let Err(why) = run(*check, &bytes) {
                failures.push(format!("{}: {why}", path.display()));
            }
        }
    }
    // Nothing in fuzz/corpus or fuzz/fuzz_targets that is not a target here.
    let names: BTreeSet<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    for (dir, ext) in [("corpus", None), ("fuzz_targets", Some(".rs"))] {
        for e in std::fs::read_dir(fuzz_dir().join(dir)).expect("fuzz dir") {
            let file = e.expect("entry").file_name().to_string_lossy().into_owned();
            let stem = ext.map_or(file.as_str(), |x| file.trim_end_matches(x));
            if !names.contains(stem) {
                failures.push(format!("fuzz/{dir}/{file}: not a target of the harness"));
            }
        }
    }
    for name in &names {
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        match std::fs::read_to_string(&target) {
            Ok(src) => assert!(
                src.contains(&format!("hotline_fuzz_harness::{name}::check(")),
                "{}: does not call the harness's {name}::check",
                target.display()
            ),
            Err(e) => failures.push(format!("{}: {e}", target.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {files} corpus files or targets failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_seeds_made_by_the_real_encoders_pass_their_checks() {
    let bless = std::env::var_os("HOTLINE_BLESS").is_some();
    let mut failures = Vec::new();
    let all = seeds::all();
    for (name, _) in TARGETS {
        assert!(
            all.iter().any(|s| s.target == *name),
            "no seed for target {name}"
        );
    }
    for s in all {
        let check = TARGETS
            .iter()
            .find(|(n, _)| *n == s.target)
            .map(|(_, c)| *c)
            .expect("a known target");
        if let Err(why) = run(check, &s.bytes) {
            failures.push(format!("{}/{}: {why}", s.target, s.name));
        }
        if bless {
            let dir = fuzz_dir().join("corpus").join(s.target);
            std::fs::create_dir_all(&dir).expect("corpus dir");
            // Some seeds hold fresh randomness (nonces, salts): one
            // already there is kept, so that blessing adds, not churns.
            let file = dir.join(format!("seed-{}", s.name));
            if !file.exists() {
                std::fs::write(file, &s.bytes).expect("write seed");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seeds failed:\n{}",
        failures.join("\n")
    );
}
