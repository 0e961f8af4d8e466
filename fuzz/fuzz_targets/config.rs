//! libFuzzer entry point of [`tracebench_fuzz::config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::config(data));
