//! libFuzzer entry point of [`tracebench_fuzz::logfmt_tags`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::logfmt_tags(data));
