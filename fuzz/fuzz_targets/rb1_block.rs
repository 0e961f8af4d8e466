//! libFuzzer entry point of [`tracebench_fuzz::rb1_block`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::rb1_block(data));
