//! libFuzzer entry point of [`tracebench_fuzz::otlp_gzip`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::otlp_gzip(data));
