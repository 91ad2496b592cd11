//! The checks behind the fuzz targets in `fuzz/fuzz_targets/`.
//!
//! Each target is one call to a `check` function here, which feeds the
//! bytes to a family of decoders and asserts properties (not only "no
//! panic"): what decodes re-encodes to something that decodes to the same
//! value, lengths are respected, a limit is never exceeded. A property that
//! fails panics, which libFuzzer reports as a crash.
//!
//! The first byte of an input picks the decoder within a family (taken
//! modulo the number of decoders); the rest is what that decoder reads.
//!
//! The normal test suite compiles this crate too and replays every file of
//! `fuzz/corpus/<target>/` through the same `check`
//! (`tests/corpus.rs`), so what a fuzzer once found stays found. See
//! `fuzz/README.md`.

pub mod case_event;
pub mod client_files;
pub mod config;
pub mod e2e;
pub mod invite;
pub mod log_record;
pub mod request;
pub mod response;
pub mod setup;
pub mod store_codec;

use std::fmt::Debug;

/// A fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs` and
/// the directory `fuzz/corpus/<name>/`) and its check.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("setup", setup::check),
    ("request", request::check),
    ("response", response::check),
    ("e2e", e2e::check),
    ("invite", invite::check),
    ("log_record", log_record::check),
    ("store_codec", store_codec::check),
    ("config", config::check),
    ("client_files", client_files::check),
    ("case_event", case_event::check),
];

/// Splits off the selector byte: which of `n` decoders, and its input.
pub(crate) fn select(data: &[u8], n: u8) -> Option<(u8, &[u8])> {
    let (first, rest) = data.split_first()?;
    Some((first % n, rest))
}

/// What decoded once must survive its encoder: `decode(encode(v)) == v`,
/// and the encoding of that is the same bytes again (one canonical form).
pub(crate) fn round_trip<T, E>(
    what: &str,
    value: &T,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, E>,
) -> Vec<u8>
where
    T: PartialEq + Debug,
    E: Debug,
{
    let encoded = encode(value);
    let again = match decode(&encoded) {
        Ok(v) => v,
        Err(e) => panic!("{what}: its own encoding does not decode: {e:?}"),
    };
    assert_eq!(&again, value, "{what}: decode(encode(x)) differs from x");
    assert_eq!(encode(&again), encoded, "{what}: encoding is not stable");
    encoded
}
