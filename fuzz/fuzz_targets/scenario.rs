//! libFuzzer entry point of [`tracebench_fuzz::scenario`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::scenario(data));
