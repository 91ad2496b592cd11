#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_fuzz_harness::case_event::check(data));
