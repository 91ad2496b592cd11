#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_fuzz_harness::e2e::check(data));
