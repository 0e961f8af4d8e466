//! libFuzzer entry point of [`tracebench_fuzz::wire_split`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tracebench_fuzz::wire_split(data));
