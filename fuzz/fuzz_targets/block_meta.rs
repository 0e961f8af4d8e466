//! libFuzzer entry point of [`tracebench_fuzz::block_meta`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::block_meta(data));
