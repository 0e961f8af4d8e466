//! libFuzzer entry point of [`tracebench_fuzz::rb2_block`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::rb2_block(data));
