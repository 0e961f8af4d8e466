//! libFuzzer entry point of [`tracebench_fuzz::otlp_json`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::otlp_json(data));
